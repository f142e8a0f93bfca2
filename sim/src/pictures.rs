//! What every JPEG the camera serves shows, and the few pictures kept.
//!
//! ```text
//!   World (knobs: sky mode, location, EV override, night EV, true focus, thumbnail quirks)
//!     + a shot's ShotParams (time, Tv, Av, ISO, focus at the release)  ─┐
//!     + or the camera now (live view: settings, focus, zoom)           ─┴▶ Light + View
//!   Light + View ─▶ key ─▶ cache hit? ─▶ bytes
//!                           │ miss
//!                           ▼
//!          one render at a time (a slot); big pictures on a short-lived thread, so the
//!          simulator's executor keeps answering polls while a 1620×1080 picture renders
//! ```
//!
//! Pictures are made only when a JPEG is requested, and at most `CACHE` (6) are kept.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::jpeg::{self, Exif, Sampling};
use crate::scene::{self, Light, Scene, View};
use crate::state::{tv_seconds, CameraState};

/// Pictures kept (a few live-view frames, the last shot's thumbnail/display/original).
const CACHE: usize = 6;
/// Renders larger than this many pixels run off the simulator's thread.
const OFF_THREAD_PIXELS: usize = 100_000;
/// Display size (CCAPI.md §1.8: R6m3 1620×1080).
pub const DISPLAY: (usize, usize) = (1620, 1080);
/// Thumbnails are 160×120; a 3:2 picture fills 160×106 of it between black bars, as in
/// Canon's Exif thumbnails.
pub const THUMB: (usize, usize) = (160, 120);
const THUMB_PICTURE_ROWS: usize = 106;

/// Where the scene's brightness comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkyMode {
    /// Always night: scene EV = `night_ev`, stars out (the default: framing and focusing on
    /// stars work at any hour in `--demo`).
    #[default]
    Night,
    /// Brightness follows the sun's altitude at the location and the camera clock's date.
    FollowSun,
}

impl SkyMode {
    pub fn parse(s: &str) -> Option<SkyMode> {
        match s {
            "night" => Some(SkyMode::Night),
            "sun" | "follow_sun" => Some(SkyMode::FollowSun),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SkyMode::Night => "night",
            SkyMode::FollowSun => "sun",
        }
    }
}

/// The simulated world and picture knobs (`SimConfig::sky`; runtime: `SimHandle::set_sky`,
/// `PATCH /_sim/state`).
#[derive(Debug, Clone)]
pub struct SkyConfig {
    pub mode: SkyMode,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// A fixed scene EV instead of the sky's (`None`: from the mode).
    pub scene_ev: Option<f64>,
    /// Scene EV of a dark night (sun below −18°).
    pub night_ev: f64,
    /// Focus position where stars are sharpest (`None`: seeded from `SimConfig::seed`).
    pub true_focus: Option<i32>,
    /// Bytes of filler after the EOI of `kind=thumbnail` replies (0: none; CCAPI.md §1.8).
    pub thumbnail_trailing_bytes: usize,
    /// Thumbnails keep Canon's black bars above and below the 3:2 picture.
    pub thumbnail_letterbox: bool,
}

impl Default for SkyConfig {
    fn default() -> Self {
        SkyConfig {
            mode: SkyMode::Night,
            latitude: 47.0,
            longitude: 8.0,
            scene_ev: None,
            night_ev: -3.0,
            true_focus: None,
            thumbnail_trailing_bytes: 0,
            thumbnail_letterbox: true,
        }
    }
}

/// Focus positions run 0 (nearest) ..= FOCUS_MAX (beyond infinity).
pub const FOCUS_MAX: i32 = 1000;

/// The world behind the lens.
pub struct World {
    pub scene: Arc<Scene>,
    pub sky: SkyConfig,
    pub true_focus: i32,
}

impl World {
    pub fn new(sky: SkyConfig, seed: u64) -> World {
        let mut rng = crate::time::Rng::new(seed ^ 0xF0C5);
        let mut seeded = 350 + (rng.next_u64() % 301) as i32;
        // Never start in focus: the lens powers up at 500.
        if (seeded - 500).abs() < 40 {
            seeded += 80;
        }
        World {
            scene: Arc::new(Scene::new(seed)),
            true_focus: sky.true_focus.unwrap_or(seeded).clamp(0, FOCUS_MAX),
            sky,
        }
    }

    /// (scene EV, sun altitude in degrees) at `utc_ms`.
    pub fn light_at(&self, utc_ms: i64) -> (f64, f64) {
        let alt = match self.sky.mode {
            SkyMode::Night => -40.0,
            SkyMode::FollowSun => {
                crate::sky::sun_altitude_deg(utc_ms, self.sky.latitude, self.sky.longitude)
            }
        };
        let ev = match (self.sky.scene_ev, self.sky.mode) {
            (Some(ev), _) => ev,
            (None, SkyMode::Night) => self.sky.night_ev,
            (None, SkyMode::FollowSun) => crate::sky::scene_ev_for_altitude(alt, self.sky.night_ev),
        };
        (ev, alt)
    }
}

/// The lens's focus (CameraState).
#[derive(Debug, Clone)]
pub struct Focus {
    pub position: i32,
    /// Steps of `near1|far1`, `near2|far2`, `near3|far3`.
    pub steps: [i32; 3],
}

impl Default for Focus {
    fn default() -> Self {
        Focus {
            position: 500,
            steps: [1, 8, 40],
        }
    }
}

impl Focus {
    /// `near1`..`near3` / `far1`..`far3`; `Err` (the value) for anything else. Stops at the
    /// ends.
    pub fn drive(&mut self, value: &str) -> Result<(), String> {
        let (sign, n) = if let Some(n) = value.strip_prefix("near") {
            (-1, n)
        } else if let Some(n) = value.strip_prefix("far") {
            (1, n)
        } else {
            return Err(value.to_string());
        };
        let step = match n {
            "1" => self.steps[0],
            "2" => self.steps[1],
            "3" => self.steps[2],
            _ => return Err(value.to_string()),
        };
        self.position = (self.position + sign * step).clamp(0, FOCUS_MAX);
        Ok(())
    }
}

/// What a shot recorded at its release: its pictures and Exif come from these.
#[derive(Debug, Clone, Copy)]
pub struct ShotParams {
    /// When the shutter opened: UTC, and the camera's local wall time (Exif), Unix ms.
    pub utc_ms: i64,
    pub local_ms: i64,
    pub exposure_s: f64,
    pub fnumber: f64,
    pub iso: f64,
    pub focus: i32,
}

/// `"f8.0"` → 8.0 (f/8 when unreadable).
pub fn fnumber(av: &str) -> f64 {
    av.strip_prefix('f')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| *n > 0.0)
        .unwrap_or(8.0)
}

/// The ISO a setting stands for; `auto` meters the scene (100..=25600).
pub fn iso_for(iso: &str, exposure_s: f64, fnumber: f64, scene_ev: f64) -> f64 {
    match iso.parse::<f64>() {
        Ok(n) if n > 0.0 => n,
        _ => {
            let ev100 = scene::camera_ev(exposure_s, fnumber, 100.0);
            (100.0 * (ev100 - scene_ev).exp2())
                .clamp(100.0, 25_600.0)
                .round()
        }
    }
}

/// The release's parameters from the current settings (`exposure_s`: the timed Tv, or the
/// bulb time once it is known).
pub fn shot_params(
    cam: &CameraState,
    world: &World,
    opened: std::time::Instant,
    exposure_s: f64,
) -> ShotParams {
    let utc_ms = cam.clock.utc_ms(opened);
    let (ev, _) = world.light_at(utc_ms);
    let f = fnumber(&cam.setting_str("av"));
    ShotParams {
        utc_ms,
        local_ms: cam.clock.local_ms(opened),
        exposure_s,
        fnumber: f,
        iso: iso_for(&cam.setting_str("iso"), exposure_s, f, ev),
        focus: cam.focus.position,
    }
}

/// Exposure time as an Exif rational: 1/125 → (1, 125), 0"3 → (3, 10), 30" → (30, 1).
pub fn exposure_rational(t: f64) -> (u32, u32) {
    if t.is_nan() || t <= 0.0 {
        return (0, 1);
    }
    if t >= 1.0 {
        let tenths = (t * 10.0).round();
        return if tenths % 10.0 == 0.0 {
            ((tenths / 10.0) as u32, 1)
        } else {
            (tenths as u32, 10)
        };
    }
    let den = (1.0 / t).round();
    if (1.0 / den - t).abs() / t < 0.02 {
        (1, den as u32)
    } else {
        ((t * 10.0).round().max(1.0) as u32, 10)
    }
}

/// An encoded picture; live-view frames also carry their histogram (flipdetail).
pub struct Picture {
    pub jpeg: Vec<u8>,
    /// Y, R, G, B counts of the 8-bit codes (live view only).
    pub histogram: Option<Box<[[u32; 256]; 4]>>,
}

/// The picture cache and the render slot.
pub struct Pictures {
    cache: Cache,
    slot_tx: async_channel::Sender<()>,
    slot_rx: async_channel::Receiver<()>,
    /// Renders done (tests check caching with it).
    renders: Arc<std::sync::atomic::AtomicU64>,
}

type Cache = Arc<Mutex<VecDeque<(u64, Arc<Picture>)>>>;

impl Default for Pictures {
    fn default() -> Self {
        let (slot_tx, slot_rx) = async_channel::bounded(1);
        Pictures {
            cache: Cache::default(),
            slot_tx,
            slot_rx,
            renders: Default::default(),
        }
    }
}

fn cache_get(cache: &Cache, key: u64) -> Option<Arc<Picture>> {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    let at = c.iter().position(|(k, _)| *k == key)?;
    // Most recently used last.
    let hit = c.remove(at)?;
    let pic = hit.1.clone();
    c.push_back(hit);
    Some(pic)
}

fn cache_put(cache: &Cache, key: u64, pic: Arc<Picture>) {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.retain(|(k, _)| *k != key);
    if c.len() >= CACHE {
        c.pop_front();
    }
    c.push_back((key, pic));
}

/// Holds the render slot; frees it when dropped (also when a render's requester went away
/// and its thread finishes alone).
struct Slot(async_channel::Receiver<()>);

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

impl Pictures {
    pub fn renders(&self) -> u64 {
        self.renders.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The picture for `key`, rendering it with `job` when it is not kept.
    async fn get_or_render(
        &self,
        key: u64,
        pixels: usize,
        job: impl FnOnce() -> Picture + Send + 'static,
    ) -> Arc<Picture> {
        if let Some(p) = cache_get(&self.cache, key) {
            return p;
        }
        // One render at a time: a burst of requests cannot pile up threads and buffers.
        let _ = self.slot_tx.send(()).await;
        let slot = Slot(self.slot_rx.clone());
        if let Some(p) = cache_get(&self.cache, key) {
            return p;
        }
        let (cache, renders) = (self.cache.clone(), self.renders.clone());
        let work = move || {
            let pic = Arc::new(job());
            renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cache_put(&cache, key, pic.clone());
            drop(slot);
            pic
        };
        if pixels < OFF_THREAD_PIXELS {
            return work();
        }
        // A short-lived thread (no idle pool left behind); it keeps the slot until done.
        let (tx, rx) = async_channel::bounded(1);
        let work = Arc::new(Mutex::new(Some(work)));
        let for_thread = work.clone();
        let spawned = std::thread::Builder::new()
            .name("camera-sim-render".into())
            .spawn(move || {
                let f = for_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(f) = f {
                    let _ = tx.try_send(f());
                }
            });
        if spawned.is_ok() {
            if let Ok(p) = rx.recv().await {
                return p;
            }
            log::error!("camera-sim: a picture render failed");
        }
        // No thread could start: render here.
        let f = work.lock().unwrap_or_else(|e| e.into_inner()).take();
        match f {
            Some(f) => f(),
            None => Arc::new(Picture {
                jpeg: Vec::new(),
                histogram: None,
            }),
        }
    }
}

fn key_of(parts: &[u64]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Which picture of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Thumbnail,
    Display,
    /// The original JPEG, padded to `len` bytes (the file's nominal size).
    Main {
        len: usize,
    },
}

/// Everything a file's pictures need, read under the state lock.
pub struct FileSource {
    pub scene: Arc<Scene>,
    pub light: Light,
    pub exif: Exif,
    pub seq: u64,
    pub letterbox: bool,
    pub trailing: usize,
}

impl FileSource {
    pub fn new(world: &World, shot: &ShotParams, seq: u64, exif: Exif) -> FileSource {
        let (scene_ev, sun_alt) = world.light_at(shot.utc_ms);
        FileSource {
            scene: world.scene.clone(),
            light: Light {
                scene_ev,
                sun_alt,
                camera_ev: scene::camera_ev(shot.exposure_s, shot.fnumber, shot.iso),
                iso: shot.iso,
                blur: scene::blur_for_focus(shot.focus, world.true_focus),
                seed: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x51,
            },
            exif,
            seq,
            letterbox: world.sky.thumbnail_letterbox,
            trailing: world.sky.thumbnail_trailing_bytes,
        }
    }
}

/// The JPEG bytes of one picture of a file (padded / with trailing bytes as the knobs say).
pub async fn file_jpeg(pictures: &Pictures, src: FileSource, kind: FileKind) -> Vec<u8> {
    let key = |tag: u64| {
        key_of(&[
            tag,
            src.seq,
            src.light.scene_ev.to_bits(),
            src.light.camera_ev.to_bits(),
            src.light.blur.to_bits(),
            u64::from(src.letterbox),
        ])
    };
    let (scene, light, exif, letterbox) = (
        src.scene.clone(),
        src.light,
        src.exif.clone(),
        src.letterbox,
    );
    match kind {
        FileKind::Thumbnail => {
            let pic = pictures
                .get_or_render(key(1), THUMB.0 * THUMB.1, move || Picture {
                    jpeg: thumbnail(&scene, &light, &exif, letterbox),
                    histogram: None,
                })
                .await;
            let bytes = pic.jpeg.clone();
            if src.trailing > 0 {
                return jpeg::with_trailing_bytes(bytes, src.trailing);
            }
            bytes
        }
        FileKind::Display | FileKind::Main { .. } => {
            let display = pictures
                .get_or_render(key(2), DISPLAY.0 * DISPLAY.1, move || Picture {
                    jpeg: still(&scene, &light, &exif, DISPLAY, 90),
                    histogram: None,
                })
                .await;
            let FileKind::Main { len } = kind else {
                return display.jpeg.clone();
            };
            // The original is the display picture padded to the file's size (a 24 MP encode
            // per download would take seconds on the Pi), unless that does not fit.
            if display.jpeg.len() <= len {
                return jpeg::pad_to(display.jpeg.clone(), len);
            }
            let FileSource {
                scene, light, exif, ..
            } = src;
            let pic = pictures
                .get_or_render(key(3), 960 * 640, move || Picture {
                    jpeg: smaller_original(&scene, &light, &exif, len),
                    histogram: None,
                })
                .await;
            jpeg::pad_to(pic.jpeg.clone(), len)
        }
    }
}

fn still(scene: &Scene, light: &Light, exif: &Exif, size: (usize, usize), q: u8) -> Vec<u8> {
    let rgb = scene::render(scene, light, &View::full(size.0, size.1));
    jpeg::encode_rgb(
        &rgb,
        size.0 as u16,
        size.1 as u16,
        q,
        Sampling::S422,
        Some(exif),
    )
}

/// 160×120: the 3:2 picture between black bars (or stretched over the whole, knob off).
pub fn thumbnail(scene: &Scene, light: &Light, exif: &Exif, letterbox: bool) -> Vec<u8> {
    let (w, h) = THUMB;
    let rows = if letterbox { THUMB_PICTURE_ROWS } else { h };
    let picture = scene::render(scene, light, &View::full(w, rows));
    let mut rgb = vec![0u8; w * h * 3];
    let top = (h - rows) / 2;
    rgb[top * w * 3..(top + rows) * w * 3].copy_from_slice(&picture);
    jpeg::encode_rgb(&rgb, w as u16, h as u16, 90, Sampling::S422, Some(exif))
}

/// An original smaller than the display picture when that does not fit the file's nominal
/// size (very noisy scenes at small qualities).
fn smaller_original(scene: &Scene, light: &Light, exif: &Exif, len: usize) -> Vec<u8> {
    let mut last = Vec::new();
    for (size, q) in [((960, 640), 80), ((480, 320), 70), ((240, 160), 60)] {
        last = still(scene, light, exif, size, q);
        if last.len() <= len {
            break;
        }
    }
    last
}

/// A live-view frame request, read under the state lock.
pub struct LvSource {
    pub scene: Arc<Scene>,
    pub light: Light,
    pub view: View,
}

/// The live-view frame for `src` (cached while nothing that shows changes).
pub async fn lv_frame(pictures: &Pictures, src: LvSource) -> Arc<Picture> {
    // Quantised so slow sky changes re-render every few seconds, not every frame.
    let q = |x: f64, step: f64| ((x / step).round() as i64) as u64;
    let LvSource {
        scene,
        mut light,
        view,
    } = src;
    let key = key_of(&[
        4,
        q(light.scene_ev, 0.02),
        q(light.sun_alt, 0.2),
        q(light.camera_ev, 0.01),
        q(light.iso, 1.0),
        light.blur.to_bits(),
        view.u0.to_bits(),
        view.v0.to_bits(),
        view.uw.to_bits(),
        view.width as u64,
        view.height as u64,
    ]);
    light.seed = key;
    let pixels = view.width * view.height;
    pictures
        .get_or_render(key, pixels, move || {
            let rgb = scene::render(&scene, &light, &view);
            let histogram = histogram(&rgb);
            Picture {
                jpeg: jpeg::encode_rgb(
                    &rgb,
                    view.width as u16,
                    view.height as u16,
                    85,
                    Sampling::S422,
                    None,
                ),
                histogram: Some(histogram),
            }
        })
        .await
}

/// The 160×120 black frame live view sends while it (re)starts.
pub fn black_frame() -> Arc<Picture> {
    static BLACK: std::sync::OnceLock<Arc<Picture>> = std::sync::OnceLock::new();
    BLACK
        .get_or_init(|| {
            let (w, h) = THUMB;
            let rgb = vec![0u8; w * h * 3];
            Arc::new(Picture {
                jpeg: jpeg::encode_rgb(&rgb, w as u16, h as u16, 85, Sampling::S422, None),
                histogram: Some(histogram(&rgb)),
            })
        })
        .clone()
}

/// Y (BT.601 luma), R, G, B histograms of 8-bit RGB.
fn histogram(rgb: &[u8]) -> Box<[[u32; 256]; 4]> {
    let mut h = Box::new([[0u32; 256]; 4]);
    for p in rgb.chunks_exact(3) {
        let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
        let y = (299 * r + 587 * g + 114 * b + 500) / 1000;
        h[0][y.min(255) as usize] += 1;
        h[1][r as usize] += 1;
        h[2][g as usize] += 1;
        h[3][b as usize] += 1;
    }
    h
}

/// The Exif of a shot.
pub fn exif_for(model: &str, datetime: String, shot: &ShotParams) -> Exif {
    Exif {
        model: model.to_string(),
        datetime,
        iso: shot.iso.round().clamp(1.0, 65_535.0) as u16,
        exposure: exposure_rational(shot.exposure_s),
        fnumber_x10: (shot.fnumber * 10.0).round() as u32,
    }
}

/// Exposure seconds of a Tv setting (`None`: bulb).
pub fn tv_exposure(cam: &CameraState) -> Option<f64> {
    tv_seconds(&cam.setting_str("tv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_drive_steps_and_stops_at_the_ends() {
        let mut f = Focus::default();
        f.drive("far3").unwrap();
        assert_eq!(f.position, 540);
        f.drive("near2").unwrap();
        f.drive("near1").unwrap();
        assert_eq!(f.position, 531);
        assert!(f.drive("near4").is_err() && f.drive("far").is_err() && f.drive("").is_err());
        for _ in 0..100 {
            f.drive("far3").unwrap();
        }
        assert_eq!(f.position, FOCUS_MAX);
    }

    #[test]
    fn exposure_rationals_read_like_the_camera() {
        assert_eq!(exposure_rational(1.0 / 125.0), (1, 125));
        assert_eq!(exposure_rational(0.3), (3, 10));
        assert_eq!(exposure_rational(30.0), (30, 1));
        assert_eq!(exposure_rational(3.2), (32, 10));
        assert_eq!(exposure_rational(0.25), (1, 4));
    }

    #[test]
    fn auto_iso_meters_the_scene() {
        // 30 s at f/4: EV100 = log2(16/30) ≈ −0.9; a −3 EV scene needs ~4.3× → ISO ~430.
        let iso = iso_for("auto", 30.0, 4.0, -3.0);
        assert!((400.0..470.0).contains(&iso), "{iso}");
        assert_eq!(iso_for("1600", 30.0, 4.0, -3.0), 1600.0);
    }

    #[test]
    fn true_focus_is_seeded_stable_and_never_at_power_on_position() {
        for seed in 0..200 {
            let w = World::new(SkyConfig::default(), seed);
            assert_eq!(
                w.true_focus,
                World::new(SkyConfig::default(), seed).true_focus
            );
            assert!((w.true_focus - 500).abs() >= 40, "seed {seed}");
        }
    }
}
