//! Live view (CCAPI.md §1.9, §5.4) and the focus drive (§1.6 `drivefocus`).
//!
//! ```text
//!   Off ──POST {liveviewsize: small|medium}──▶ Starting ──lv_start──▶ On
//!   On ──a release exposes──▶ Paused ──exposure over──▶ Recovering ──lv_recovery──▶ On
//!   any ──POST {liveviewsize: off} / sleep / reboot / power off──▶ Off
//!
//!   flip, flipdetail, each scroll frame:
//!     Off ─▶ 503 "Live view not started"
//!     polled faster than lv_min_interval (flip/flipdetail, real time) ─▶ 503 "Device busy"
//!     Starting | Paused | Recovering ─▶ the 160×120 black frame (or 503 "Device busy": knob)
//!     On ─▶ the scene at the current settings, focus and magnification
//! ```
//!
//! Sizes: medium 960×640 [R: SF], small 480×320 (an assumption: the R50's small frame is
//! ~29 KB [R: PMK], its size is not recorded). `large` answers 400 on every profile (the R50
//! does not offer it; the R6m3 advertises it and rejects it [R: OEC]).
//!
//! Magnification: CCAPI.md documents no endpoint that sets it (only flipdetail's `zoom`
//! info), so it is a simulator knob, as if set on the body (`SimHandle::set_lv_zoom`,
//! `PATCH /_sim/state {"lv_zoom":…}`); `PUT …/liveview/afframeposition` moves its centre.
//! Frames show the scene with exposure simulation, brightened no further than
//! `lv_min_ev` (a live view cannot show a 30 s exposure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{BodyStream, Request, Response};
use super::pictures::{self, LvSource, Picture};
use super::scene::{self, Light, View};
use super::{Inner, Shared};

/// Sensor size reported in flipdetail info (R50: 6000×4000).
pub const SENSOR: (f64, f64) = (6000.0, 4000.0);

/// Live-view size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvSize {
    Small,
    Medium,
}

impl LvSize {
    pub fn name(self) -> &'static str {
        match self {
            LvSize::Small => "small",
            LvSize::Medium => "medium",
        }
    }

    pub fn pixels(self) -> (usize, usize) {
        match self {
            LvSize::Small => (480, 320),
            LvSize::Medium => (960, 640),
        }
    }
}

/// What a frame request gets while live view is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    BlackFrame,
    Busy,
}

/// Live-view knobs (`SimConfig::liveview`; runtime `SimHandle::set_liveview_knobs`,
/// `PATCH /_sim/state`).
#[derive(Debug, Clone)]
pub struct LvKnobs {
    /// From enabling to the first real frame (sim clock) [R: PMK ≈ 1.2 s].
    pub start: Duration,
    /// From the end of an exposure to the first real frame again (sim clock).
    pub recovery: Duration,
    /// flip/flipdetail faster than this answer 503 `Device busy` (real time: a link property).
    pub min_interval: Duration,
    /// Time between scroll/scrolldetail frames (real time).
    pub scroll_interval: Duration,
    pub not_ready: NotReady,
    /// `cameradisplay: "keep"` answers 400 (R100) [R: JPN].
    pub cameradisplay_keep_rejected: bool,
    /// flipdetail with any query parameter but `kind` answers 400 (R6m3 rejects `&t=`).
    pub flipdetail_rejects_extra_query: bool,
    /// `drivefocus` with live view off answers 503 `Live view not started` [?].
    pub drivefocus_needs_liveview: bool,
    /// The brightest exposure live view simulates, EV at ISO 100 (≈ 1/30 s, f/4.5, ISO 25600).
    pub min_ev: f64,
    /// Frames follow the Tv/Av/ISO settings (Canon's default "exposure simulation"); off:
    /// they are metered for the scene (still no brighter than `min_ev`).
    pub exposure_simulation: bool,
}

impl Default for LvKnobs {
    fn default() -> Self {
        LvKnobs {
            start: Duration::from_millis(1200),
            recovery: Duration::from_millis(1000),
            min_interval: Duration::from_millis(40),
            scroll_interval: Duration::from_millis(100),
            not_ready: NotReady::BlackFrame,
            cameradisplay_keep_rejected: false,
            flipdetail_rejects_extra_query: false,
            drivefocus_needs_liveview: false,
            min_ev: 1.0,
            exposure_simulation: true,
        }
    }
}

/// The body's magnification and its centre (frame units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zoom {
    /// 1 (whole frame), 5 or 10.
    pub magnification: u8,
    pub u: f64,
    pub v: f64,
}

/// Live-view state (in `CameraState`).
#[derive(Debug, Clone)]
pub struct LiveView {
    pub size: Option<LvSize>,
    /// What `cameradisplay` was last set to (`keep` keeps it).
    pub cameradisplay: &'static str,
    /// Frames are not ready before this (sim clock): starting or recovering.
    pub ready_at: Option<Instant>,
    /// A release is exposing.
    pub paused: bool,
    /// When the last flip/flipdetail was served (real time).
    pub last_frame: Option<Instant>,
    /// Bumped to end scroll streams (DELETE, off, power cycle).
    pub scroll_gen: u64,
    pub zoom: Zoom,
    pub knobs: LvKnobs,
}

impl Default for LiveView {
    fn default() -> Self {
        LiveView {
            size: None,
            cameradisplay: "on",
            ready_at: None,
            paused: false,
            last_frame: None,
            scroll_gen: 0,
            zoom: Zoom {
                magnification: 1,
                u: 0.5,
                v: 0.5,
            },
            knobs: LvKnobs::default(),
        }
    }
}

impl LiveView {
    /// `{"liveviewsize":…, "cameradisplay":…}` as events and the snapshot report it.
    pub fn json(&self) -> Value {
        json!({
            "liveviewsize": self.size.map_or("off", LvSize::name),
            "cameradisplay": self.cameradisplay,
        })
    }

    /// Power cycle / sleep: live view is off.
    pub fn reset(&mut self) {
        self.size = None;
        self.paused = false;
        self.ready_at = None;
        self.scroll_gen += 1;
    }

    /// A release starts exposing (live view goes dark).
    pub fn shot_started(&mut self) {
        if self.size.is_some() {
            self.paused = true;
        }
    }

    /// The exposure ended at `now` (sim clock): frames again after the recovery time.
    pub fn shot_exposed(&mut self, now: Instant) {
        if self.paused {
            self.paused = false;
            let at = now + self.knobs.recovery;
            self.ready_at = Some(self.ready_at.map_or(at, |t| t.max(at)));
        }
    }

    fn ready(&self, now: Instant) -> bool {
        !self.paused && self.ready_at.is_none_or(|t| now >= t)
    }
}

/// `POST shooting/liveview {"liveviewsize":…, "cameradisplay":…}`.
pub(crate) fn post(shared: &Shared, body: &Value) -> Response {
    let size = match body.get("liveviewsize").and_then(Value::as_str) {
        Some("off") => None,
        Some("small") => Some(LvSize::Small),
        Some("medium") => Some(LvSize::Medium),
        _ => return Response::error(400, "Invalid parameter"),
    };
    let display = match body.get("cameradisplay").and_then(Value::as_str) {
        Some("on") => "on",
        Some("off") => "off",
        Some("keep") => "keep",
        _ => return Response::error(400, "Invalid parameter"),
    };
    let now = shared.now();
    let mut g = shared.lock();
    if display == "keep" && g.cam.lv.knobs.cameradisplay_keep_rejected {
        return Response::error(400, "Invalid parameter");
    }
    if g.cam.busy(now) {
        return Response::error(503, "During shooting or recording");
    }
    if size.is_some() && g.cam.temperature.contains("disableliveview") {
        return Response::error(503, "Mode not supported");
    }
    let lv = &mut g.cam.lv;
    if size.is_some() && lv.size.is_none() {
        lv.ready_at = Some(now + lv.knobs.start);
        lv.paused = false;
    }
    if size.is_none() {
        lv.scroll_gen += 1;
        lv.ready_at = None;
    }
    lv.size = size;
    if display != "keep" {
        lv.cameradisplay = display;
    }
    let v = lv.json();
    g.events.emit("liveview", v);
    drop(g);
    shared.touch();
    Response::ok(json!({}))
}

/// What a frame request gets right now.
enum Frame {
    Refused(Response),
    Black,
    Scene(LvSource),
}

fn frame_now(g: &mut Inner, now: Instant, rate_limited: bool) -> Frame {
    let Some(size) = g.cam.lv.size else {
        return Frame::Refused(Response::error(503, "Live view not started"));
    };
    if rate_limited {
        let real = Instant::now();
        let lv = &mut g.cam.lv;
        if lv
            .last_frame
            .is_some_and(|t| real.saturating_duration_since(t) < lv.knobs.min_interval)
        {
            return Frame::Refused(Response::error(503, "Device busy"));
        }
        lv.last_frame = Some(real);
    }
    if !g.cam.lv.ready(now) {
        return match g.cam.lv.knobs.not_ready {
            NotReady::BlackFrame => Frame::Black,
            NotReady::Busy => Frame::Refused(Response::error(503, "Device busy")),
        };
    }
    Frame::Scene(source(g, now, size))
}

/// The scene as live view shows it now.
fn source(g: &Inner, now: Instant, size: LvSize) -> LvSource {
    let cam = &g.cam;
    let utc = cam.clock.utc_ms(now);
    let (scene_ev, sun_alt) = g.world.light_at(utc);
    // Exposure simulation from the settings (bulb: as 30 s), or metered for the scene; no
    // brighter than min_ev either way.
    let t = pictures::tv_exposure(cam).unwrap_or(30.0);
    let f = pictures::fnumber(&cam.setting_str("av"));
    let iso = pictures::iso_for(&cam.setting_str("iso"), t, f, scene_ev);
    let ev = if cam.lv.knobs.exposure_simulation {
        scene::camera_ev(t, f, iso)
    } else {
        scene_ev
    }
    .max(cam.lv.knobs.min_ev);
    let (w, h) = size.pixels();
    let z = cam.lv.zoom;
    LvSource {
        scene: g.world.scene.clone(),
        light: Light {
            scene_ev,
            sun_alt,
            camera_ev: ev,
            iso,
            blur: scene::blur_for_focus(cam.focus.position, g.world.true_focus),
            seed: 0,
        },
        view: View::magnified(w, h, f64::from(z.magnification), z.u, z.v),
    }
}

async fn picture(shared: &Shared, frame: Frame) -> Result<Arc<Picture>, Response> {
    match frame {
        Frame::Refused(r) => Err(r),
        Frame::Black => Ok(pictures::black_frame()),
        Frame::Scene(src) => Ok(pictures::lv_frame(&shared.pictures, src).await),
    }
}

/// `GET shooting/liveview/flip`: one JPEG.
pub(crate) async fn flip(shared: &Arc<Shared>) -> Response {
    let now = shared.now();
    let frame = frame_now(&mut shared.lock(), now, true);
    match picture(shared, frame).await {
        Ok(p) => Response::bytes(200, "image/jpeg", p.jpeg.clone()),
        Err(r) => r,
    }
}

/// `FF 00 | type | u32be length | payload | FF FF` (CCAPI.md §1.9).
fn framed(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF, 0x00, kind]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0xFF, 0xFF]);
}

/// A sensor-coordinate rectangle of frame-unit crop `(u0, v0, uw, vh)`.
fn rect(u0: f64, v0: f64, uw: f64, vh: f64) -> Value {
    json!({
        "positionx": (u0 * SENSOR.0).round() as i64,
        "positiony": (v0 * SENSOR.1).round() as i64,
        "positionwidth": (uw * SENSOR.0).round() as i64,
        "positionheight": (vh * SENSOR.1).round() as i64,
    })
}

/// The incidental-information JSON of flipdetail (keys as in the real capture, CCAPI.md).
fn info_json(g: &Inner, now: Instant, pic: &Picture) -> Value {
    let lv = &g.cam.lv;
    let z = lv.zoom;
    let shown = View::magnified(1, 1, f64::from(z.magnification), z.u, z.v);
    // At 1× the zoom box is where 5× would look.
    let boxed = View::magnified(1, 1, f64::from(z.magnification.max(5)), z.u, z.v);
    let utc = g.cam.clock.utc_ms(now);
    let histogram: Vec<Vec<u32>> = match &pic.histogram {
        Some(h) => h.iter().map(|c| c.to_vec()).collect(),
        None => vec![vec![0; 256]; 4],
    };
    let mut image = rect(shown.u0, shown.v0, shown.uw, shown.vh);
    image["sizex"] = json!(SENSOR.0 as i64);
    image["sizey"] = json!(SENSOR.1 as i64);
    let mut zoom = rect(boxed.u0, boxed.v0, boxed.uw, boxed.vh);
    zoom["magnification"] = json!(z.magnification);
    json!({
        "liveviewdata": {
            "histogram": histogram,
            "afframe": [{
                "status": 0, "select": 1,
                "x": (z.u * SENSOR.0).round() as i64 - 144,
                "y": (z.v * SENSOR.1).round() as i64 - 144,
                "width": 288, "height": 288,
            }],
            "image": image,
            "visible": rect(shown.u0, shown.v0, shown.uw, shown.vh),
            "zoom": zoom,
            "diorama": rect(0.0, 0.0, 0.0, 0.0),
            "systemtime": {"sec": utc.div_euclid(1000), "subsec": utc.rem_euclid(1000)},
        },
        "angleinformation": {"cameraposture": 0, "rolling": 0, "pitching": 0},
    })
}

/// Info frame then image frame (the order of the real capture), per `kind`.
fn detail_bytes(info: Option<&Value>, pic: Option<&Picture>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(i) = info {
        framed(1, &serde_json::to_vec(i).unwrap_or_default(), &mut out);
    }
    if let Some(p) = pic {
        framed(0, &p.jpeg, &mut out);
    }
    out
}

/// `GET shooting/liveview/flipdetail?kind=image|info|both`.
pub(crate) async fn flipdetail(shared: &Arc<Shared>, req: &Request) -> Response {
    let (want_info, want_image) = match req.query_param("kind") {
        Some("image") => (false, true),
        Some("info") => (true, false),
        Some("both") => (true, true),
        _ => return Response::error(400, "Invalid parameter"),
    };
    let now = shared.now();
    let frame = {
        let mut g = shared.lock();
        let extra = req
            .query
            .split('&')
            .any(|kv| !kv.is_empty() && !kv.starts_with("kind="));
        if extra && g.cam.lv.knobs.flipdetail_rejects_extra_query {
            return Response::error(400, "Invalid parameter");
        }
        frame_now(&mut g, now, true)
    };
    let pic = match picture(shared, frame).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let info = want_info.then(|| info_json(&shared.lock(), now, &pic));
    Response::bytes(
        200,
        "application/octet-stream",
        detail_bytes(info.as_ref(), want_image.then_some(&*pic)),
    )
}

/// `GET shooting/liveview/scroll` (framed JPEGs) or `scrolldetail` (info + JPEG per frame):
/// a chunked stream, one frame per chunk every `scroll_interval`, until live view goes off,
/// `DELETE` or the client leaves.
pub(crate) fn scroll(shared: &Arc<Shared>, detail: bool) -> Response {
    let gen = {
        let g = shared.lock();
        if g.cam.lv.size.is_none() {
            return Response::error(503, "Live view not started");
        }
        g.cam.lv.scroll_gen
    };
    let me = shared.clone();
    let frames = futures_lite::stream::unfold(true, move |first| {
        let me = me.clone();
        async move {
            if !first {
                let every = me.lock().cam.lv.knobs.scroll_interval;
                async_io::Timer::after(every).await;
            }
            let now = me.now();
            let frame = {
                let mut g = me.lock();
                if g.cam.lv.scroll_gen != gen {
                    return None;
                }
                frame_now(&mut g, now, false)
            };
            let pic = picture(&me, frame).await.ok()?;
            let info = detail.then(|| info_json(&me.lock(), now, &pic));
            Some((detail_bytes(info.as_ref(), Some(&pic)), false))
        }
    });
    Response::stream(200, "application/octet-stream", BodyStream::new(frames))
}

/// `DELETE shooting/liveview/scroll|scrolldetail`: ends the streams.
pub(crate) fn delete_scroll(shared: &Shared) -> Response {
    shared.lock().cam.lv.scroll_gen += 1;
    shared.touch();
    Response::ok(json!({}))
}

/// `POST shooting/control/drivefocus {"value":"near1".."near3"|"far1".."far3"}`.
pub(crate) fn drivefocus(shared: &Shared, body: &Value) -> Response {
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return Response::error(400, "Invalid parameter");
    };
    let now = shared.now();
    let mut g = shared.lock();
    let mut probe = g.cam.focus.clone();
    if probe.drive(value).is_err() {
        return Response::error(400, "Invalid parameter");
    }
    if g.cam.busy(now) {
        return Response::error(503, "During shooting or recording");
    }
    if g.cam.lv.knobs.drivefocus_needs_liveview && g.cam.lv.size.is_none() {
        return Response::error(503, "Live view not started");
    }
    g.cam.focus = probe;
    drop(g);
    shared.touch();
    Response::ok(json!({}))
}

/// `PUT shooting/liveview/afframeposition {"positionx":…, "positiony":…}` (sensor pixels):
/// moves the AF frame, and with it the magnified area's centre.
pub(crate) fn afframeposition(shared: &Shared, body: &Value) -> Response {
    let coord = |k: &str, max: f64| {
        body.get(k)
            .and_then(Value::as_i64)
            .filter(|v| (0..=max as i64).contains(v))
    };
    let (Some(x), Some(y)) = (coord("positionx", SENSOR.0), coord("positiony", SENSOR.1)) else {
        return Response::error(400, "Invalid parameter");
    };
    let mut g = shared.lock();
    g.cam.lv.zoom.u = x as f64 / SENSOR.0;
    g.cam.lv.zoom.v = y as f64 / SENSOR.1;
    drop(g);
    shared.touch();
    Response::ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_framed_like_the_real_capture() {
        let mut out = Vec::new();
        framed(1, b"{}", &mut out);
        assert_eq!(out, [0xFF, 0x00, 0x01, 0, 0, 0, 2, b'{', b'}', 0xFF, 0xFF]);
    }

    #[test]
    fn a_shot_pauses_live_view_then_it_recovers() {
        let t0 = Instant::now();
        let mut lv = LiveView {
            size: Some(LvSize::Small),
            ..LiveView::default()
        };
        assert!(lv.ready(t0));
        lv.shot_started();
        assert!(!lv.ready(t0 + Duration::from_secs(100)));
        lv.shot_exposed(t0 + Duration::from_secs(2));
        assert!(!lv.ready(t0 + Duration::from_millis(2999)));
        assert!(lv.ready(t0 + Duration::from_millis(3000)));
        // With live view off a shot changes nothing.
        let mut off = LiveView::default();
        off.shot_started();
        off.shot_exposed(t0);
        assert!(!off.paused && off.ready_at.is_none());
    }
}
