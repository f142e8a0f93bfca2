//! The simulator's pictures over real sockets: every JPEG decodes (zune-jpeg), Exif is there,
//! the sky follows exposure and the sun, drivefocus moves a focus whose figure peaks at the
//! true focus, and live view behaves as CCAPI.md §1.9 / §5.4 say.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use skylapse_sim::time::{ManualClock, SimTime};
use skylapse_sim::{Profile, SimClock, SimConfig, SimHandle, SkyMode};

const WAIT: Duration = Duration::from_secs(10);

fn fast() -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.timing.af = Duration::from_millis(5);
    cfg.timing.settings_cooldown = Duration::from_millis(1);
    cfg.timing.coalesce = Duration::from_millis(5);
    cfg.timing.write_bytes_per_sec = 10_000_000_000;
    cfg.liveview.start = Duration::ZERO;
    cfg.liveview.min_interval = Duration::ZERO;
    cfg
}

/// A simulator on a manual clock (exposures and live-view timers move only when told).
fn manual(cfg: SimConfig) -> (SimHandle, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let sim = SimHandle::start(SimConfig {
        clock: SimClock::Manual(clock.clone()),
        ..cfg
    })
    .expect("simulator starts");
    (sim, clock)
}

/// One request on a fresh connection; (status, head, body).
fn raw(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let b = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (st, _, b) = raw(addr, method, path, body);
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn http(sim: &SimHandle) -> SocketAddr {
    sim.http_addr().expect("http listener")
}

fn put_setting(a: SocketAddr, name: &str, value: &str) {
    let body = json!({ "value": value }).to_string();
    let path = format!("/ccapi/ver100/shooting/settings/{name}");
    assert_eq!(call(a, "PUT", &path, Some(&body)).0, 200, "{name}={value}");
}

fn lv(a: SocketAddr, size: &str, display: &str) -> (u16, Value) {
    let body = format!(r#"{{"liveviewsize":"{size}","cameradisplay":"{display}"}}"#);
    call(a, "POST", "/ccapi/ver100/shooting/liveview", Some(&body))
}

struct Decoded {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

fn decode(bytes: &[u8]) -> Decoded {
    let mut d = zune_jpeg::JpegDecoder::new(io::Cursor::new(bytes));
    let rgb = d.decode().expect("a decodable JPEG");
    let info = d.info().expect("headers");
    assert_eq!(rgb.len(), info.width as usize * info.height as usize * 3);
    Decoded {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    }
}

/// The sRGB decoding a client does to measure light (a table: tests run unoptimised).
fn linear(code: u8) -> f64 {
    static LUT: std::sync::OnceLock<[f64; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0.0; 256];
        for (c, v) in t.iter_mut().enumerate() {
            let s = c as f64 / 255.0;
            *v = if s <= 0.040_45 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            };
        }
        t
    })[usize::from(code)]
}

/// The median of `v` (reordered).
fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

fn luminance(px: &[u8]) -> f64 {
    0.2126 * linear(px[0]) + 0.7152 * linear(px[1]) + 0.0722 * linear(px[2])
}

fn mean_linear(d: &Decoded) -> f64 {
    d.rgb.chunks_exact(3).map(luminance).sum::<f64>() / (d.width * d.height) as f64
}

/// Exif fields read back from the APP1 segment (big- or little-endian TIFF).
#[derive(Debug, Default)]
struct ExifRead {
    model: String,
    datetime_original: String,
    iso: u32,
    exposure: (u32, u32),
    fnumber: (u32, u32),
}

fn read_exif(jpeg: &[u8]) -> ExifRead {
    assert_eq!(
        &jpeg[..4],
        &[0xFF, 0xD8, 0xFF, 0xE1],
        "APP1 right after SOI"
    );
    let len = usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    assert_eq!(&jpeg[6..12], b"Exif\0\0");
    let t = &jpeg[12..4 + len];
    let be = &t[..2] == b"MM";
    let u16_at = |o: usize| {
        let b = [t[o], t[o + 1]];
        if be {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |o: usize| {
        let b = [t[o], t[o + 1], t[o + 2], t[o + 3]];
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    assert_eq!(u16_at(2), 42);
    let mut out = ExifRead::default();
    let mut ifds = vec![u32_at(4) as usize];
    while let Some(ifd) = ifds.pop() {
        for e in 0..usize::from(u16_at(ifd)) {
            let at = ifd + 2 + e * 12;
            let (tag, typ, count, value) = (u16_at(at), u16_at(at + 2), u32_at(at + 4), at + 8);
            let ascii = || {
                let off = if count > 4 {
                    u32_at(value) as usize
                } else {
                    value
                };
                String::from_utf8_lossy(&t[off..off + count as usize])
                    .trim_end_matches('\0')
                    .to_string()
            };
            let rational = || {
                let off = u32_at(value) as usize;
                (u32_at(off), u32_at(off + 4))
            };
            match (tag, typ) {
                (0x0110, 2) => out.model = ascii(),
                (0x9003, 2) => out.datetime_original = ascii(),
                (0x8827, 3) => out.iso = u32::from(u16_at(value)),
                (0x829A, 5) => out.exposure = rational(),
                (0x829D, 5) => out.fnumber = rational(),
                (0x8769, 4) => ifds.push(u32_at(value) as usize),
                _ => {}
            }
        }
    }
    out
}

/// Presses the shutter and drives the manual clock until the file is written; its path.
fn shoot(sim: &SimHandle, clock: &ManualClock) -> String {
    let a = http(sim);
    let before = sim.status().files.len();
    let presser = std::thread::spawn(move || {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    });
    let deadline = std::time::Instant::now() + WAIT;
    while sim.status().files.len() == before || sim.status().engine_busy {
        assert!(std::time::Instant::now() < deadline, "the shot never ended");
        clock.advance(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(presser.join().unwrap().0, 200);
    // Past the post-write cooldown.
    clock.advance(Duration::from_millis(50));
    let f = sim.status().files.last().cloned().unwrap();
    format!("/ccapi/ver130/contents/card1/{f}")
}

#[test]
fn every_jpeg_kind_is_a_real_picture_with_exif() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    sim.set_camera_utc_ms(1_782_000_000_000); // 2026-06-21T00:00:00Z
    put_setting(a, "tv", "2\"");
    put_setting(a, "av", "f5.6");
    put_setting(a, "iso", "1600");
    let path = shoot(&sim, &clock);
    let (_, info) = call(a, "GET", &format!("{path}?kind=info"), None);

    let (st, head, main) = raw(a, "GET", &path, None);
    assert_eq!(st, 200);
    assert!(head.contains("image/jpeg"));
    assert_eq!(main.len() as u64, info["filesize"].as_u64().unwrap());
    let main_picture = decode(&main);
    assert_eq!((main_picture.width, main_picture.height), (1620, 1080));
    let e = read_exif(&main);
    assert_eq!(e.model, "Canon EOS R50");
    assert_eq!(e.datetime_original, "2026:06:21 00:00:00");
    assert_eq!(e.iso, 1600);
    assert_eq!(e.exposure, (2, 1));
    assert_eq!(e.fnumber, (56, 10));

    for (kind, size) in [("thumbnail", (160, 120)), ("display", (1620, 1080))] {
        let (st, head, bytes) = raw(a, "GET", &format!("{path}?kind={kind}"), None);
        assert_eq!(st, 200, "{kind}");
        assert!(head.contains("image/jpeg"), "{kind}");
        assert_eq!(
            &bytes[bytes.len() - 2..],
            &[0xFF, 0xD9],
            "{kind}: no trailing bytes"
        );
        let d = decode(&bytes);
        assert_eq!((d.width, d.height), size, "{kind}");
        assert_eq!(read_exif(&bytes).iso, 1600, "{kind}");
        // A picture, not a flat fill: the sky and the ridge differ.
        let lums: Vec<f64> = d.rgb.chunks_exact(3).map(luminance).collect();
        let (lo, hi) = lums
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        assert!(hi - lo > 0.05, "{kind}: {lo}..{hi}");
        if kind == "display" {
            // The original shows the same picture (padded to the file's size).
            assert!(d.rgb == main_picture.rgb);
            // The RAW's embedded JPEG (kind=embedded) is the display picture.
            let (_, _, embedded) = raw(a, "GET", &format!("{path}?kind=embedded"), None);
            assert!(embedded == bytes);
        }
    }
    // Canon's thumbnail bars: the top and bottom rows are black, the middle is not.
    let (_, _, thumb) = raw(a, "GET", &format!("{path}?kind=thumbnail"), None);
    let t = decode(&thumb);
    let row_mean = |y: usize| {
        t.rgb[y * 160 * 3..(y + 1) * 160 * 3]
            .iter()
            .map(|&c| f64::from(c))
            .sum::<f64>()
            / 480.0
    };
    assert!(row_mean(2) < 2.0 && row_mean(117) < 2.0);
    assert!(row_mean(30) > 10.0);

    // Live view frames at both sizes.
    assert_eq!(lv(a, "small", "on"), (200, json!({})));
    let (st, head, small) = raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None);
    assert_eq!(st, 200);
    assert!(head.contains("image/jpeg"));
    let d = decode(&small);
    assert_eq!((d.width, d.height), (480, 320));
    assert_eq!(lv(a, "medium", "keep").0, 200);
    let (_, _, medium) = raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None);
    let d = decode(&medium);
    assert_eq!((d.width, d.height), (960, 640));
}

#[test]
fn thumbnail_trailing_bytes_knob() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    let path = shoot(&sim, &clock);
    let url = format!("{path}?kind=thumbnail");
    let (_, _, plain) = raw(a, "GET", &url, None);
    assert_eq!(&plain[plain.len() - 2..], &[0xFF, 0xD9]);
    sim.set_sky(|s| s.thumbnail_trailing_bytes = 1000);
    let (st, head, with) = raw(a, "GET", &url, None);
    assert_eq!(st, 200);
    assert!(head.contains(&format!("Content-Length: {}", plain.len() + 1000)));
    // The same picture, then the filler (which holds a stray EOI/SOI pair).
    assert_eq!(&with[..plain.len()], &plain[..]);
    let tail = &with[plain.len()..];
    assert!(tail.windows(2).any(|w| w == [0xFF, 0xD9]));
    assert_eq!(decode(&with[..plain.len()]).width, 160);
    // Other kinds are untouched.
    let (_, _, display) = raw(a, "GET", &format!("{path}?kind=display"), None);
    assert_eq!(&display[display.len() - 2..], &[0xFF, 0xD9]);
}

/// (Tv string, seconds) of the camera's 1/3-stop list between 1/4000 and 30".
fn tvs() -> Vec<(&'static str, f64)> {
    skylapse_sim::state::TV_VALUES
        .iter()
        .filter_map(|t| skylapse_sim::state::tv_seconds(t).map(|s| (*t, s)))
        .collect()
}

/// EV at ISO 100 of an exposure (the standard definition, computed here independently).
fn ev(t: f64, n: f64, iso: f64) -> f64 {
    (n * n / t).log2() - (iso / 100.0).log2()
}

#[test]
fn thumbnail_brightness_doubles_per_ev_until_it_clips() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    sim.set_sky(|s| s.scene_ev = Some(14.0));
    put_setting(a, "av", "f8.0");
    put_setting(a, "iso", "100");
    // From 4 EV under the scene (1/4000 at f/8 is EV 18) to 4 over, in whole stops.
    let mut means = Vec::new();
    for tv in [
        "1/4000", "1/2000", "1/1000", "1/500", "1/250", "1/125", "1/60", "1/30", "1/15",
    ] {
        put_setting(a, "tv", tv);
        let path = shoot(&sim, &clock);
        let (_, _, t) = raw(a, "GET", &format!("{path}?kind=thumbnail"), None);
        means.push((tv, mean_linear(&decode(&t))));
    }
    // Unclipped part: each stop doubles the light (1/60 vs 1/4000 is not exactly 2^6; use
    // the real times).
    for w in means.windows(2) {
        let ((tv0, m0), (tv1, m1)) = (w[0], w[1]);
        let (t0, t1) = (
            skylapse_sim::state::tv_seconds(tv0).unwrap(),
            skylapse_sim::state::tv_seconds(tv1).unwrap(),
        );
        if m1 > 0.25 {
            break; // highlights start to clip from here
        }
        let ratio = (m1 / m0) / (t1 / t0);
        assert!((0.85..1.15).contains(&ratio), "{tv0} → {tv1}: {m0} → {m1}");
    }
    // Far over: clipped at white (thumbnail bars stay black: 106 of 120 rows are picture).
    let (_, last) = means[means.len() - 1];
    assert!(last > 0.75 * 106.0 / 120.0, "{means:?}");
    // And it never gets brighter than white.
    assert!(means.iter().all(|(_, m)| *m <= 106.0 / 120.0 + 1e-9));
}

/// 2026-06-21 at `h:m` UTC, Unix ms.
fn june21(h: i64, m: i64) -> i64 {
    1_782_000_000_000 + (h * 3600 + m * 60) * 1000
}

#[test]
fn the_sky_follows_the_sun_and_a_metered_exposure_looks_the_same_all_day() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    sim.set_sky(|s| {
        s.mode = SkyMode::FollowSun;
        s.latitude = 47.0;
        s.longitude = 8.0;
    });
    put_setting(a, "av", "f5.6");
    // Solar noon at 8° E on 21 June is about 11:30 UTC: altitude 90 − 47 + 23.44.
    sim.set_camera_utc_ms(june21(11, 30));
    let (noon_ev, noon_alt) = sim.scene_light();
    assert!((noon_alt - 66.44).abs() < 0.5, "{noon_alt}");
    assert!((14.5..=15.5).contains(&noon_ev), "{noon_ev}");
    // Local midnight: the sun 19.6° below the horizon, a dark night.
    sim.set_camera_utc_ms(june21(23, 30));
    let (night_ev, night_alt) = sim.scene_light();
    assert!((night_alt + 19.56).abs() < 0.5, "{night_alt}");
    assert_eq!(night_ev, -3.0);
    // The control plane reports the same.
    let state = sim.state_json();
    assert_eq!(state["scene"]["scene_ev"], json!(-3.0));

    // From noon into the night: a fixed exposure gets darker as the sun sinks...
    let isos = [
        100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0, 25600.0,
    ];
    let mut fixed = Vec::new();
    put_setting(a, "iso", "100");
    put_setting(a, "tv", "1/500");
    for (h, m) in [(11, 30), (17, 30), (19, 15), (19, 45)] {
        sim.set_camera_utc_ms(june21(h, m));
        let path = shoot(&sim, &clock);
        let (_, _, t) = raw(a, "GET", &format!("{path}?kind=thumbnail"), None);
        fixed.push(mean_linear(&decode(&t)));
    }
    assert!(fixed.windows(2).all(|w| w[1] < w[0]), "{fixed:?}");
    // ...while an exposure metered for the scene EV the simulator reports keeps the picture
    // in the same range of brightness, from noon to the night.
    for (h, m) in [(11, 30), (17, 30), (19, 15), (19, 45), (20, 30), (23, 30)] {
        sim.set_camera_utc_ms(june21(h, m));
        let (scene_ev, alt) = sim.scene_light();
        let mut best = ("", 0.0, f64::MAX);
        for (tv, t) in tvs() {
            for iso in isos {
                let miss = (ev(t, 5.6, iso) - scene_ev).abs();
                if miss < best.2 {
                    best = (tv, iso, miss);
                }
            }
        }
        assert!(best.2 < 0.2, "no exposure for EV {scene_ev}");
        put_setting(a, "tv", best.0);
        put_setting(a, "iso", &format!("{}", best.1));
        let path = shoot(&sim, &clock);
        let (_, _, t) = raw(a, "GET", &format!("{path}?kind=thumbnail"), None);
        let m = mean_linear(&decode(&t));
        assert!(
            (0.05..0.3).contains(&m),
            "{h}:{m:02} alt {alt:.1} EV {scene_ev:.2}: mean {m}"
        );
    }
}

/// Half-flux radius (pixels) of the brightest star: the flux-weighted mean distance from its
/// centroid of the pixels more than 3σ over the background (median; σ from the median
/// absolute deviation), within `r` pixels of the brightest pixel.
fn half_flux_radius(d: &Decoded, r: usize) -> f64 {
    let lum: Vec<f64> = d.rgb.chunks_exact(3).map(luminance).collect();
    let bg = median(&mut lum.clone());
    let mut dev: Vec<f64> = lum.iter().map(|l| (l - bg).abs()).collect();
    let floor = 3.0 * 1.4826 * median(&mut dev);
    let peak = (0..lum.len())
        .max_by(|&a, &b| lum[a].total_cmp(&lum[b]))
        .unwrap();
    let (px, py) = ((peak % d.width) as isize, (peak / d.width) as isize);
    let r = r as isize;
    let mut pts = Vec::new();
    for y in (py - r).max(0)..(py + r + 1).min(d.height as isize) {
        for x in (px - r).max(0)..(px + r + 1).min(d.width as isize) {
            let f = lum[y as usize * d.width + x as usize] - bg;
            if f > floor {
                pts.push((x as f64, y as f64, f));
            }
        }
    }
    let total: f64 = pts.iter().map(|p| p.2).sum();
    let cx = pts.iter().map(|p| p.0 * p.2).sum::<f64>() / total;
    let cy = pts.iter().map(|p| p.1 * p.2).sum::<f64>() / total;
    pts.iter()
        .map(|p| (p.0 - cx).hypot(p.1 - cy) * p.2)
        .sum::<f64>()
        / total
}

#[test]
fn drivefocus_moves_the_focus_and_the_star_is_smallest_at_true_focus() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    sim.set_sky(|s| s.true_focus = Some(613));
    sim.set_focus_position(613 - 6 * 8);
    // An exposure that keeps the brightest star about at white in live view when sharp,
    // and well over the noise when far out of focus.
    put_setting(a, "tv", "4\"");
    put_setting(a, "av", "f4.5");
    put_setting(a, "iso", "100");
    let (u, v) = sim.brightest_star();
    sim.set_lv_zoom(5, u, v).unwrap();
    assert_eq!(lv(a, "small", "on").0, 200);

    let drive = |value: &str| {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/drivefocus",
            Some(&format!(r#"{{"value":"{value}"}}"#)),
        )
    };
    // Bad values are refused and move nothing.
    for bad in [
        r#"{"value":"near4"}"#,
        r#"{"value":"far"}"#,
        r#"{"value":3}"#,
        "{}",
    ] {
        let r = call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/drivefocus",
            Some(bad),
        );
        assert_eq!(r, (400, json!({"message": "Invalid parameter"})), "{bad}");
    }
    assert_eq!(sim.focus_position(), 565);

    // Sweep through focus in medium steps, measuring the star in each frame.
    let mut sweep = Vec::new();
    for k in 0..=12 {
        if k > 0 {
            assert_eq!(drive("far2"), (200, json!({})));
        }
        let (st, _, jpeg) = raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None);
        assert_eq!(st, 200);
        let d = decode(&jpeg);
        sweep.push((sim.focus_position(), half_flux_radius(&d, 40)));
    }
    assert_eq!(sweep.last().unwrap().0, 613 + 6 * 8);
    let (best, best_hfr) = sweep
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert!((best - 613).abs() <= 8, "best focus at {best}: {sweep:?}");
    // Far from focus the star is several times larger; the figure falls towards the
    // best position from both sides.
    assert!(
        sweep[0].1 > 3.0 * best_hfr && sweep[12].1 > 3.0 * best_hfr,
        "{sweep:?}"
    );
    for w in sweep.windows(2) {
        let toward = (w[1].0 - 613).abs() < (w[0].0 - 613).abs();
        if toward && (w[0].0 - 613).abs() > 8 {
            assert!(w[1].1 < w[0].1, "{sweep:?}");
        }
    }
    // Small and large steps move by 1 and 40, near moves the other way.
    let p = sim.focus_position();
    drive("near1");
    assert_eq!(sim.focus_position(), p - 1);
    drive("near3");
    assert_eq!(sim.focus_position(), p - 41);

    // During an exposure the lens cannot be driven.
    put_setting(a, "tv", "30\"");
    let presser = std::thread::spawn(move || {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    });
    assert!(sim.wait_until(WAIT, |s| s.engine_busy));
    assert_eq!(
        drive("far1"),
        (503, json!({"message": "During shooting or recording"}))
    );
    while sim.status().engine_busy {
        clock.advance(Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(presser.join().unwrap().0, 200);
    assert_eq!(sim.focus_position(), p - 41);

    // The knob: some bodies drive focus only in live view.
    sim.set_liveview_knobs(|k| k.drivefocus_needs_liveview = true);
    clock.advance(Duration::from_secs(1));
    assert_eq!(lv(a, "off", "on").0, 200);
    assert_eq!(
        drive("far1"),
        (503, json!({"message": "Live view not started"}))
    );
}

#[test]
fn live_view_states_black_frames_and_polling_limits() {
    let mut cfg = fast();
    cfg.liveview.start = Duration::from_millis(1200);
    cfg.liveview.recovery = Duration::from_millis(1000);
    let (sim, clock) = manual(cfg);
    let a = http(&sim);
    let flip = || raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None);
    let refused = |r: (u16, String, Vec<u8>)| {
        (
            r.0,
            serde_json::from_slice::<Value>(&r.2).unwrap_or(Value::Null),
        )
    };
    assert_eq!(
        refused(flip()),
        (503, json!({"message": "Live view not started"}))
    );
    // Bad requests.
    for bad in [
        r#"{"liveviewsize":"large","cameradisplay":"on"}"#,
        r#"{"liveviewsize":"small","cameradisplay":"maybe"}"#,
        r#"{"liveviewsize":"small"}"#,
        r#"{"cameradisplay":"on"}"#,
    ] {
        let r = call(a, "POST", "/ccapi/ver100/shooting/liveview", Some(bad));
        assert_eq!(r, (400, json!({"message": "Invalid parameter"})), "{bad}");
    }
    sim.set_liveview_knobs(|k| k.cameradisplay_keep_rejected = true);
    assert_eq!(lv(a, "medium", "keep").0, 400);
    sim.set_liveview_knobs(|k| k.cameradisplay_keep_rejected = false);

    // Starting: black 160×120 frames until lv_start has passed.
    let (st, poll) = call(
        a,
        "GET",
        "/ccapi/ver110/event/polling?timeout=immediately",
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(poll["liveview"]["liveviewsize"], "off");
    assert_eq!(lv(a, "medium", "off"), (200, json!({})));
    let (_, delta) = call(
        a,
        "GET",
        "/ccapi/ver110/event/polling?timeout=immediately",
        None,
    );
    assert_eq!(
        delta["liveview"],
        json!({"liveviewsize": "medium", "cameradisplay": "off"})
    );
    let black = |r: (u16, String, Vec<u8>)| {
        assert_eq!(r.0, 200);
        let d = decode(&r.2);
        (d.width, d.height) == (160, 120) && d.rgb.iter().all(|&c| c < 3)
    };
    assert!(black(flip()));
    clock.advance(Duration::from_millis(1199));
    assert!(black(flip()));
    clock.advance(Duration::from_millis(1));
    let d = decode(&flip().2);
    assert_eq!((d.width, d.height), (960, 640));

    // Polled faster than the body allows (the last frame was just now): 503 Device busy.
    sim.set_liveview_knobs(|k| k.min_interval = Duration::from_secs(60));
    assert_eq!(refused(flip()), (503, json!({"message": "Device busy"})));
    assert_eq!(refused(flip()), (503, json!({"message": "Device busy"})));
    sim.set_liveview_knobs(|k| k.min_interval = Duration::ZERO);
    assert_eq!(flip().0, 200);

    // A shot: black while exposing, black for lv_recovery after it, then frames again.
    put_setting(a, "tv", "4\"");
    let presser = std::thread::spawn(move || {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    });
    let deadline = std::time::Instant::now() + WAIT;
    while sim.state_json()["liveview"]["paused"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the exposure never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(black(flip()));
    // Exactly to the end of the exposure (the capture task's timer), not a moment later.
    while clock.next_wakeup().is_none() {
        assert!(std::time::Instant::now() < deadline, "no exposure timer");
        std::thread::sleep(Duration::from_millis(1));
    }
    let end = clock.next_wakeup().unwrap();
    clock.advance(end.saturating_duration_since(clock.now()));
    assert_eq!(presser.join().unwrap().0, 200);
    assert!(black(flip()));
    // The knob: 503 instead of the black frame.
    sim.set_liveview_knobs(|k| k.not_ready = skylapse_sim::NotReady::Busy);
    assert_eq!(refused(flip()), (503, json!({"message": "Device busy"})));
    clock.advance(Duration::from_millis(1000));
    assert_eq!(decode(&flip().2).width, 960);
    // (The card write and the cooldown after it end too.)
    assert!(sim.wait_until(WAIT, |s| !s.engine_busy));
    clock.advance(Duration::from_millis(10));

    // Off, and off again after a reboot.
    assert_eq!(lv(a, "off", "keep").0, 200);
    assert_eq!(refused(flip()).0, 503);
    assert_eq!(lv(a, "small", "on").0, 200);
    assert_eq!(sim.liveview_size(), Some("small"));
    sim.reboot(Duration::from_millis(100));
    let deadline = std::time::Instant::now() + WAIT;
    while sim.status().power != skylapse_sim::Power::On {
        assert!(std::time::Instant::now() < deadline, "never came back");
        clock.advance(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sim.liveview_size(), None);
}

/// Splits flipdetail frames `FF 00 | type | u32be len | payload | FF FF`.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert_eq!(&b[..2], &[0xFF, 0x00]);
        let kind = b[2];
        let len = u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as usize;
        out.push((kind, b[7..7 + len].to_vec()));
        assert_eq!(&b[7 + len..9 + len], &[0xFF, 0xFF]);
        b = &b[9 + len..];
    }
    out
}

#[test]
fn flipdetail_frames_carry_the_histogram_and_zoom_info() {
    let sim = SimHandle::start(fast()).unwrap();
    let a = http(&sim);
    assert_eq!(lv(a, "medium", "on").0, 200);
    let (st, head, body) = raw(
        a,
        "GET",
        "/ccapi/ver100/shooting/liveview/flipdetail?kind=both",
        None,
    );
    assert_eq!(st, 200);
    assert!(head.contains("application/octet-stream"));
    let f = frames(&body);
    assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 0]);
    let info: Value = serde_json::from_slice(&f[0].1).unwrap();
    let d = decode(&f[1].1);
    assert_eq!((d.width, d.height), (960, 640));
    let h = info["liveviewdata"]["histogram"].as_array().unwrap();
    assert_eq!(h.len(), 4);
    for channel in h {
        let c = channel.as_array().unwrap();
        assert_eq!(c.len(), 256);
        assert_eq!(
            c.iter().map(|n| n.as_u64().unwrap()).sum::<u64>(),
            960 * 640
        );
    }
    assert_eq!(info["liveviewdata"]["zoom"]["magnification"], 1);
    assert_eq!(info["liveviewdata"]["image"]["sizex"], 6000);

    assert_eq!(
        frames(
            &raw(
                a,
                "GET",
                "/ccapi/ver100/shooting/liveview/flipdetail?kind=info",
                None
            )
            .2
        )
        .iter()
        .map(|x| x.0)
        .collect::<Vec<_>>(),
        vec![1]
    );
    let image = raw(
        a,
        "GET",
        "/ccapi/ver100/shooting/liveview/flipdetail?kind=image",
        None,
    )
    .2;
    assert_eq!(frames(&image).len(), 1);
    assert_eq!(
        call(a, "GET", "/ccapi/ver100/shooting/liveview/flipdetail", None).0,
        400
    );
    // The R50 takes an extra parameter; the R6m3 does not.
    let extra = "/ccapi/ver100/shooting/liveview/flipdetail?kind=image&t=1";
    assert_eq!(raw(a, "GET", extra, None).0, 200);
    let r6 = SimHandle::start(SimConfig {
        profile: Profile::R6m3,
        ..fast()
    })
    .unwrap();
    assert_eq!(lv(http(&r6), "medium", "on").0, 200);
    assert_eq!(raw(http(&r6), "GET", extra, None).0, 400);

    // Magnified ×5 around a point set with afframeposition: the info says so, and the
    // picture shows a fifth of the frame.
    sim.set_lv_zoom(5, 0.5, 0.5).unwrap();
    let put = |b: &str| {
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/liveview/afframeposition",
            Some(b),
        )
        .0
    };
    assert_eq!(put(r#"{"positionx":4000,"positiony":1600}"#), 200);
    assert_eq!(put(r#"{"positionx":7000,"positiony":1600}"#), 400);
    assert_eq!(put(r#"{"positionx":"a"}"#), 400);
    let f = frames(
        &raw(
            a,
            "GET",
            "/ccapi/ver100/shooting/liveview/flipdetail?kind=info",
            None,
        )
        .2,
    );
    let info: Value = serde_json::from_slice(&f[0].1).unwrap();
    let z = &info["liveviewdata"]["zoom"];
    assert_eq!(z["magnification"], 5);
    assert_eq!(z["positionwidth"], 1200);
    assert_eq!(z["positionx"], 4000 - 600);
    assert_eq!(z["positiony"], 1600 - 400);
    assert!(sim.set_lv_zoom(3, 0.5, 0.5).is_err());
}

/// Reads one chunk of a chunked body (`None` at the terminating chunk).
fn read_chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let n = usize::from_str_radix(line.trim(), 16).unwrap();
    let mut chunk = vec![0u8; n + 2];
    r.read_exact(&mut chunk).unwrap();
    assert_eq!(&chunk[n..], b"\r\n");
    chunk.truncate(n);
    (n > 0).then_some(chunk)
}

fn open_stream(a: SocketAddr, path: &str) -> (String, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {a}\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    (head, r)
}

#[test]
fn scroll_streams_framed_jpegs_until_deleted_or_live_view_ends() {
    let mut cfg = fast();
    cfg.liveview.scroll_interval = Duration::from_millis(20);
    let sim = SimHandle::start(cfg).unwrap();
    let a = http(&sim);
    assert_eq!(
        call(a, "GET", "/ccapi/ver100/shooting/liveview/scroll", None),
        (503, json!({"message": "Live view not started"}))
    );
    assert_eq!(lv(a, "small", "on").0, 200);
    let (head, mut r) = open_stream(a, "/ccapi/ver100/shooting/liveview/scroll");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"));
    for _ in 0..3 {
        let chunk = read_chunk(&mut r).expect("a frame");
        let f = frames(&chunk);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, 0);
        assert_eq!(decode(&f[0].1).width, 480);
    }
    assert_eq!(
        call(a, "DELETE", "/ccapi/ver100/shooting/liveview/scroll", None),
        (200, json!({}))
    );
    // The stream ends (after the frames already on their way).
    assert!((0..1000).any(|_| read_chunk(&mut r).is_none()));

    // scrolldetail: info then image per chunk; live view off ends it.
    let (_, mut r) = open_stream(a, "/ccapi/ver100/shooting/liveview/scrolldetail");
    let f = frames(&read_chunk(&mut r).unwrap());
    assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 0]);
    assert_eq!(lv(a, "off", "on").0, 200);
    assert!((0..1000).any(|_| read_chunk(&mut r).is_none()));
}

#[test]
fn live_view_frames_are_cached_until_something_visible_changes() {
    let sim = SimHandle::start(fast()).unwrap();
    let a = http(&sim);
    assert_eq!(lv(a, "small", "on").0, 200);
    let flip = || raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None).2;
    let first = flip();
    let n = sim.pictures_rendered();
    for _ in 0..5 {
        assert_eq!(flip(), first);
    }
    assert_eq!(sim.pictures_rendered(), n);
    let r = call(
        a,
        "POST",
        "/ccapi/ver100/shooting/control/drivefocus",
        Some(r#"{"value":"far3"}"#),
    );
    assert_eq!(r.0, 200);
    assert_ne!(flip(), first);
    assert_eq!(sim.pictures_rendered(), n + 1);
    put_setting(a, "iso", "3200");
    flip();
    assert_eq!(sim.pictures_rendered(), n + 2);
}

#[test]
fn live_view_simulates_the_exposure_or_meters_the_scene() {
    let sim = SimHandle::start(fast()).unwrap();
    let a = http(&sim);
    assert_eq!(lv(a, "small", "on").0, 200);
    let mean = || {
        let (_, _, j) = raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None);
        mean_linear(&decode(&j))
    };
    // Daytime settings (1/125, f/8, ISO 100: EV 13) on a night sky (EV −3): black.
    let simulated = mean();
    assert!(simulated < 1e-3, "{simulated}");
    // Brighter settings brighten it, up to the live view's limit (EV 1).
    put_setting(a, "tv", "1/4");
    put_setting(a, "iso", "6400");
    // 1/4 s at f/8, ISO 6400: EV 2, the sky 5 stops under: 0.18 × 2^−5 × its luminance.
    let brighter = mean();
    assert!(
        brighter > 0.003 && brighter > 10.0 * simulated,
        "{simulated} {brighter}"
    );
    put_setting(a, "tv", "30\"");
    let capped = mean(); // EV −4.9 asked, EV 1 shown: one stop over EV 2
    assert!((capped / brighter - 2.0).abs() < 0.4, "{brighter} {capped}");
    // Exposure simulation off: metered for the scene (no brighter than EV 1) whatever the
    // settings.
    sim.set_liveview_knobs(|k| k.exposure_simulation = false);
    put_setting(a, "tv", "1/125");
    put_setting(a, "iso", "100");
    assert!((mean() / capped - 1.0).abs() < 0.1);
}

#[test]
fn scene_knobs_over_the_control_plane() {
    let sim = SimHandle::start(SimConfig {
        control_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..fast()
    })
    .unwrap();
    let c = sim.control_addr().unwrap();
    let patch = |body: &str| call(c, "PATCH", "/_sim/state", Some(body));
    assert_eq!(
        patch(
            r#"{"sky_mode":"sun","latitude":-33.9,"longitude":18.4,"scene_ev":5.5,
               "true_focus":420,"focus_position":400,"focus_steps":[2,10,50],
               "thumbnail_trailing_bytes":16,"lv_zoom":{"magnification":10,"x":0.3,"y":0.4},
               "lv_recovery_ms":3300,"lv_not_ready":"busy","cameradisplay_keep_rejected":true}"#
        )
        .0,
        200
    );
    let (_, s) = call(c, "GET", "/_sim/state", None);
    let scene = &s["scene"];
    assert_eq!(scene["sky_mode"], "sun");
    assert_eq!(scene["latitude"], -33.9);
    assert_eq!(scene["scene_ev"], 5.5);
    assert_eq!(scene["true_focus"], 420);
    assert_eq!(scene["focus_steps"], json!([2, 10, 50]));
    assert_eq!(s["liveview"]["zoom"]["magnification"], 10);
    assert_eq!(s["liveview"]["lv_recovery_ms"], 3300);
    assert_eq!(s["liveview"]["lv_not_ready"], "busy");
    assert_eq!(sim.focus_position(), 400);
    for bad in [
        r#"{"latitude":91}"#,
        r#"{"sky_mode":"dusk"}"#,
        r#"{"scene_ev":"bright"}"#,
        r#"{"true_focus":5000}"#,
        r#"{"focus_steps":[1,2]}"#,
        r#"{"lv_zoom":{"magnification":3}}"#,
        r#"{"lv_not_ready":"maybe"}"#,
        r#"{"thumbnail_trailing_bytes":-1}"#,
    ] {
        assert_eq!(patch(bad).0, 400, "{bad}");
    }
    assert_eq!(patch(r#"{"scene_ev":null}"#).0, 200);
    assert_eq!(sim.sky().scene_ev, None);
}

/// CPU time of the whole process (user + system): loaded machines inflate wall time.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Costs per picture on the simulator's side: wall time per request and CPU time of the
/// process (render + encode + the loopback request around it).
/// `cargo test --release -p skylapse-sim --test scene -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_picture_costs() {
    let (sim, clock) = manual(fast());
    let a = http(&sim);
    let mut paths = Vec::new();
    for _ in 0..20 {
        paths.push(shoot(&sim, &clock));
    }
    let report = |label: &str, n: usize, wall: Duration, cpu: Duration, rendered: u64| {
        println!(
            "{label}: wall {:?}, cpu {:?} per request ({rendered} rendered)",
            wall / n as u32,
            cpu / n as u32
        );
    };
    let time = |label: &str, urls: &[String], repeat: usize| {
        let (t0, c0, n0) = (
            std::time::Instant::now(),
            cpu_time(),
            sim.pictures_rendered(),
        );
        for _ in 0..repeat {
            for u in urls {
                assert_eq!(raw(a, "GET", u, None).0, 200);
            }
        }
        report(
            label,
            urls.len() * repeat,
            t0.elapsed(),
            cpu_time() - c0,
            sim.pictures_rendered() - n0,
        );
    };
    let kind = |k: &str| -> Vec<String> { paths.iter().map(|p| format!("{p}?kind={k}")).collect() };
    time("thumbnail, first request", &kind("thumbnail"), 1);
    time("thumbnail, cached", &kind("thumbnail")[15..], 20);
    time("display, first request", &kind("display")[..5], 1);
    time("original (7 MB padded), display cached", &paths[..5], 1);
    time("original (7 MB padded), first request", &paths[5..10], 1);
    for size in ["medium", "small"] {
        assert_eq!(lv(a, size, "on").0, 200);
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        let n0 = sim.pictures_rendered();
        for _ in 0..10 {
            // A focus change makes every frame new.
            let r = call(
                a,
                "POST",
                "/ccapi/ver100/shooting/control/drivefocus",
                Some(r#"{"value":"far1"}"#),
            );
            assert_eq!(r.0, 200);
            let (t0, c0) = (std::time::Instant::now(), cpu_time());
            assert_eq!(
                raw(a, "GET", "/ccapi/ver100/shooting/liveview/flip", None).0,
                200
            );
            wall += t0.elapsed();
            cpu += cpu_time() - c0;
        }
        let label = format!("live view {size}, new frame");
        report(&label, 10, wall, cpu, sim.pictures_rendered() - n0);
        let flips = vec!["/ccapi/ver100/shooting/liveview/flip".to_string(); 10];
        time(&format!("live view {size}, unchanged frame"), &flips, 5);
    }
}
