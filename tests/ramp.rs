//! Keyframed ramps over the real server against the camera simulator (issue 12, item 3): the
//! session sends each settings change in the gap between frames, every frame is shot with
//! the planned settings (within the camera's third-stop step), the journal/report record
//! them per frame, and no settings PUT is still with the camera when a frame is pressed.

use futures_lite::future::block_on;
use serde_json::json;

use crate::compat::Rig;

const SHUTTER: &str = "/ccapi/ver100/shooting/control/shutterbutton";

#[test]
fn keyframed_ramp_changes_settings_between_frames_and_records_them() {
    let rig = Rig::start("ramp");
    // 8 frames every 2 s; Tv 1/125 → 1/8 (4 stops) and ISO 100 → 400 (2 stops) over 14 s.
    let start = json!({
        "interval": 2,
        "stopCondition": "stop-after",
        "shots": 8,
        "title": "Ramp",
        "keyframes": [
            {"elapsedSeconds": 0, "tv": "1/125", "iso": "100"},
            {"elapsedSeconds": 14, "tv": "1/8", "iso": "400"},
        ],
    });
    // A Tv that cannot fit the interval is refused at the edge.
    let (st, r) = rig.http(
        "POST",
        "/api/intervalometer/start",
        Some(json!({"interval": 2, "keyframes": [{"elapsedSeconds": 0, "tv": "2\""}]})),
    );
    assert_eq!(st, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not fit the interval"),
        "{r}"
    );
    let (st, r) = rig.http(
        "POST",
        "/api/intervalometer/start",
        Some(json!({"interval": 5, "keyframes": [{"elapsedSeconds": 0, "interval": 3}]})),
    );
    assert_eq!(st, 400, "{r}");

    let id = block_on(async {
        let mut c = rig.ws().await;
        c.send("start_intervalometer", start, 1).await;
        let r = c.reply(1).await;
        assert_eq!(r["type"], "intervalometer_start", "{r}");
        let id = r["data"]["sessionId"].as_str().unwrap().to_string();
        c.event("timelapse_event", "session_completed").await;
        id
    });

    let (st, csv) = rig.http_raw("GET", &format!("/api/timelapse/reports/{id}/csv"), None);
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (c_tv, c_iso, c_ev, c_res, c_err) = (
        col("tv"),
        col("iso"),
        col("exposure_ev"),
        col("result"),
        col("timing_error_ms"),
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 8, "{csv}");
    let mut worst_ev: f64 = 0.0;
    let mut worst_timing: f64 = 0.0;
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row[c_res], "ok", "{csv}");
        // The plan: Tv and ISO interpolated in stops (f/8 stays: −6 stops).
        let f = (2.0 * k as f64 / 14.0).min(1.0);
        let planned = (-7.0 + 4.0 * f) + (2.0 * f) - 6.0;
        let got: f64 = row[c_ev]
            .parse()
            .unwrap_or_else(|_| panic!("row {k}: {csv}"));
        worst_ev = worst_ev.max((got - planned).abs());
        worst_timing = worst_timing.max(row[c_err].parse::<f64>().unwrap().abs());
    }
    eprintln!(
        "ramp: worst |EV − plan| = {worst_ev:.3}, worst |timing error| = {worst_timing:.1} ms"
    );
    // Each of Tv and ISO is snapped to the camera's third-stop values: at most 1/6 each.
    assert!(worst_ev <= 1.0 / 3.0 + 1e-6, "{csv}");
    assert_eq!(
        (rows[0][c_tv].as_str(), rows[0][c_iso].as_str()),
        ("1/125", "100"),
        "{csv}"
    );
    assert_eq!(
        (rows[7][c_tv].as_str(), rows[7][c_iso].as_str()),
        ("1/8", "400"),
        "{csv}"
    );
    let (_, settings) = rig.http("GET", "/api/camera/settings", None);
    assert_eq!(settings["tv"]["value"], "1/8", "{settings}");

    // No settings PUT was still with the camera when a frame was pressed.
    let log = rig.sim().requests();
    let presses: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(SHUTTER))
        .collect();
    let puts: Vec<_> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/shooting/settings/"))
        .collect();
    assert!(
        puts.len() >= 7,
        "a change before most frames: {} PUTs",
        puts.len()
    );
    for p in &puts {
        let done = p.responded_at.expect("every PUT answered");
        for s in &presses {
            assert!(
                !(s.head_at >= p.head_at && s.head_at < done),
                "a frame was pressed while a settings PUT was in progress"
            );
        }
    }
}

/// `skylapse simulate-night` through a sunset and a sunrise at 47°N, in December and June
/// (issue 12's bars: p95 brightness error ≤ 1/3 EV, max step ≤ 1/3 EV, no clipped frame).
#[test]
fn simulate_night_follows_sunset_and_sunrise_within_a_third_of_a_stop() {
    let exe = env!("CARGO_BIN_EXE_skylapse");
    let cases = [
        ("2026-12-07", "sunset-60", "sunset+120"),
        ("2026-12-07", "sunrise-120", "sunrise+60"),
        ("2026-06-21", "sunset-60", "sunset+120"),
        ("2026-06-21", "sunrise-120", "sunrise+60"),
    ];
    for (date, start, stop) in cases {
        let t0 = std::time::Instant::now();
        let out = std::process::Command::new(exe)
            .args([
                "simulate-night",
                "--lat",
                "47",
                "--lon",
                "8",
                "--date",
                date,
            ])
            .args(["--start", start, "--stop", stop, "--interval", "10"])
            .output()
            .expect("skylapse runs");
        let took = t0.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).expect("JSON summary last");
        eprintln!("simulate-night {date} {start}..{stop}: {last} in {took:.1?}");
        // 3 h at 10 s.
        assert_eq!(last["frames"], 1080, "{last}");
        assert!(last["p95ErrorEv"].as_f64().unwrap() <= 1.0 / 3.0, "{last}");
        assert!(
            last["maxStepEv"].as_f64().unwrap() <= 1.0 / 3.0 + 1e-3,
            "{last}"
        );
        assert_eq!(last["clippedFrames"], 0, "{last}");
    }
    // Bad input: exit 2 with the usage.
    let out = std::process::Command::new(exe)
        .args([
            "simulate-night",
            "--lat",
            "47",
            "--lon",
            "8",
            "--date",
            "2026-12-07",
        ])
        .args(["--start", "dusk", "--stop", "sunrise", "--interval", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sun event"));
}

/// Auto-ramp on a dark night (the simulator's default sky, EV −3) from settings far too dark
/// for it: each frame's thumbnail is fetched and measured, and the exposure climbs at most
/// 1/3 EV per frame; the report carries each frame's brightness and the sun's altitude.
#[test]
fn auto_ramp_measures_each_frame_and_steps_toward_the_target() {
    let rig = Rig::start("autoramp");
    let start = json!({
        "interval": 3,
        "stopCondition": "stop-after",
        "shots": 9,
        "autoRamp": {"maxStepEv": 0.34},
    });
    // No location: refused (the target follows the sun's altitude).
    let (st, r) = rig.http("POST", "/api/intervalometer/start", Some(start.clone()));
    assert_eq!(st, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("autoRamp follows the sun"),
        "{r}"
    );
    let (st, _) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": 47.0, "lon": 8.0})),
    );
    assert_eq!(st, 200);
    let id = block_on(async {
        let mut c = rig.ws().await;
        c.send("start_intervalometer", start, 1).await;
        let r = c.reply(1).await;
        assert_eq!(r["type"], "intervalometer_start", "{r}");
        let id = r["data"]["sessionId"].as_str().unwrap().to_string();
        c.event("timelapse_event", "session_completed").await;
        id
    });
    let (st, csv) = rig.http_raw("GET", &format!("/api/timelapse/reports/{id}/csv"), None);
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (c_ev, c_b, c_alt) = (col("exposure_ev"), col("brightness"), col("sun_alt"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 9, "{csv}");
    let ev: Vec<f64> = rows.iter().map(|r| r[c_ev].parse().unwrap()).collect();
    let measured = rows.iter().filter(|r| !r[c_b].is_empty()).count();
    eprintln!("auto-ramp exposures {ev:?}, {measured} of 9 frames measured");
    assert!(measured >= 7, "{csv}");
    assert!(rows
        .iter()
        .filter(|r| !r[c_alt].is_empty())
        .all(|r| r[c_alt].parse::<f64>().is_ok()));
    for w in ev.windows(2) {
        assert!(w[1] >= w[0] - 1e-9 && w[1] - w[0] <= 0.34 + 1e-6, "{ev:?}");
    }
    assert!(ev[8] - ev[0] >= 1.0, "the exposure climbed: {ev:?}");
}

/// `plan_session` (`POST /api/intervalometer/plan`, WebSocket `plan_session`) over the real
/// server: the plan a start would make, nothing started. A keyframed plan gives the frames,
/// the duration and each frame's settings snapped to the camera's values, and the session then
/// started with the same payload shoots exactly those settings. Refusals are the start's. An
/// auto-ramp plan through a sunset gives the target brightness (day → night) and the sun's
/// altitude, sampled to at most 500 points; an unlimited plan is drawn over 12 h.
#[test]
fn plan_session_previews_the_start_with_the_sessions_own_plan() {
    let rig = Rig::start("plan");
    let req = json!({
        "interval": 2,
        "stopCondition": "stop-after",
        "shots": 8,
        "keyframes": [
            {"elapsedSeconds": 0, "tv": "1/125", "iso": "100"},
            {"elapsedSeconds": 14, "tv": "1/8", "iso": "400"},
        ],
    });
    let (st, p) = rig.http("POST", "/api/intervalometer/plan", Some(req.clone()));
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["frames"], 8, "{p}");
    assert_eq!(p["ramp"], "keyframes", "{p}");
    assert_eq!(p["durationSeconds"], 14.0, "{p}");
    assert_eq!(p["keyframes"].as_array().unwrap().len(), 2, "{p}");
    assert!(
        p["keyframes"][1]["atMs"].as_i64().unwrap() - p["keyframes"][0]["atMs"].as_i64().unwrap()
            == 14_000
    );
    let pts = p["points"].as_array().unwrap();
    assert_eq!(pts.len(), 8, "{p}");
    for (k, q) in pts.iter().enumerate() {
        let f = (2.0 * k as f64 / 14.0).min(1.0);
        let planned = (-7.0 + 4.0 * f) + (2.0 * f) - 6.0;
        let ev = q["exposureEv"].as_f64().unwrap_or_else(|| panic!("{q}"));
        assert!(
            (ev - planned).abs() <= 1.0 / 3.0 + 1e-6,
            "frame {k}: {ev} vs {planned}"
        );
    }
    let (_, status) = rig.http("GET", "/api/intervalometer/status", None);
    assert_ne!(status["running"], true, "a plan starts nothing: {status}");

    // The start's refusals, word for word.
    for bad in [
        json!({"interval": 2, "keyframes": [{"elapsedSeconds": 0, "tv": "2\""}]}),
        json!({"interval": 5, "keyframes": [{"elapsedSeconds": 0, "interval": 3}]}),
        json!({"interval": 10, "autoRamp": {}}),
    ] {
        let (st, r) = rig.http("POST", "/api/intervalometer/plan", Some(bad.clone()));
        let (st2, r2) = rig.http("POST", "/api/intervalometer/start", Some(bad));
        assert_eq!((st, st2), (400, 400), "{r} {r2}");
        assert_eq!(r["error"]["message"], r2["error"]["message"]);
    }

    // Over the WebSocket, then started: every frame is shot with the plan's settings.
    let id = block_on(async {
        let mut c = rig.ws().await;
        c.send("plan_session", req.clone(), 1).await;
        let r = c.reply(1).await;
        assert_eq!(r["type"], "session_plan", "{r}");
        // Planned a moment later: the times move, the settings do not.
        let settings = |v: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|q| (q["tv"].clone(), q["iso"].clone()))
                .collect()
        };
        assert_eq!(
            settings(&r["data"]["points"]),
            settings(&p["points"]),
            "{r}"
        );
        c.send("start_intervalometer", req, 2).await;
        let r = c.reply(2).await;
        assert_eq!(r["type"], "intervalometer_start", "{r}");
        let id = r["data"]["sessionId"].as_str().unwrap().to_string();
        c.event("timelapse_event", "session_completed").await;
        id
    });
    let (st, csv) = rig.http_raw("GET", &format!("/api/timelapse/reports/{id}/csv"), None);
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (c_tv, c_iso) = (col("tv"), col("iso"));
    let shot: Vec<(String, String)> = lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[c_tv].to_string(), v[c_iso].to_string())
        })
        .collect();
    let planned: Vec<(String, String)> = pts
        .iter()
        .map(|q| {
            (
                q["tv"].as_str().unwrap().to_string(),
                q["iso"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    eprintln!("planned {planned:?}\nshot    {shot:?}");
    assert_eq!(shot, planned, "{csv}");

    // Auto-ramp through a sunset at 47°N: the target falls from the day's to the night's as
    // the sun goes down; 3 h at 10 s sampled to ≤ 500 points.
    let (st, _) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": 47.0, "lon": 8.0})),
    );
    assert_eq!(st, 200);
    let (st, p) = rig.http(
        "POST",
        "/api/intervalometer/plan",
        Some(json!({
            "interval": 10,
            "startAt": {"event": "sunset", "offsetMinutes": -60},
            "stopAt": {"event": "sunset", "offsetMinutes": 120},
            "autoRamp": {"nightBiasEv": 2},
        })),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["ramp"], "auto", "{p}");
    let frames = p["frames"].as_u64().unwrap();
    assert!((1079..=1081).contains(&frames), "{frames}");
    let span = skylapse::util::parse_iso8601(p["stopTime"].as_str().unwrap()).unwrap()
        - skylapse::util::parse_iso8601(p["startTime"].as_str().unwrap()).unwrap();
    assert_eq!(span, 3 * 3_600_000, "{p}");
    let pts = p["points"].as_array().unwrap();
    assert!(pts.len() <= 500 && pts.len() >= 300, "{}", pts.len());
    assert_eq!(p["sampleEvery"], 3);
    assert_eq!(pts.last().unwrap()["frame"].as_u64(), Some(frames - 1));
    let alt = |q: &serde_json::Value| q["sunAltitude"].as_f64().unwrap();
    let target = |q: &serde_json::Value| q["targetBrightness"].as_f64().unwrap();
    let (first, last) = (&pts[0], pts.last().unwrap());
    eprintln!(
        "auto plan: sun {:.1}° → {:.1}°, target {:.3} → {:.3}",
        alt(first),
        alt(last),
        target(first),
        target(last)
    );
    assert!(alt(first) > 0.0 && alt(last) < -12.0, "{first} {last}");
    assert!((target(first) - 0.18).abs() < 1e-9, "{first}");
    assert!((target(last) - 0.18 / 4.0).abs() < 1e-9, "{last}");
    for w in pts.windows(2) {
        assert!(alt(&w[1]) < alt(&w[0]) && target(&w[1]) <= target(&w[0]) + 1e-12);
    }

    // Until stopped: no frame count, the first 12 h drawn (the sun known now).
    let (st, p) = rig.http(
        "POST",
        "/api/intervalometer/plan",
        Some(json!({"interval": 60})),
    );
    assert_eq!(st, 200, "{p}");
    assert!(p["frames"].is_null() && p["endTime"].is_null(), "{p}");
    assert_eq!(p["horizonSeconds"], 43_200.0);
    assert!(p["points"].as_array().unwrap().len() <= 500);
    assert!(p["points"][0]["sunAltitude"].is_number(), "{p}");
    assert!(p["points"][0]["exposureEv"].is_null(), "{p}");
}
