//! Sun times and the remembered location over the real server (issue 12, item 1): REST
//! `GET /api/sun`, WebSocket `get_sun_times`, the phone's GPS through `gps-response`, a
//! location set by hand, `location.json` in the data dir. The whole service graph against
//! the camera simulator (the compat rig).

use futures_lite::future::block_on;
use serde_json::{json, Value};

use crate::compat::{is_iso, Rig};

/// Seconds between an ISO answer and a reference instant.
fn off_s(v: &Value, reference: &str) -> f64 {
    let got = skylapse::util::parse_iso8601(v.as_str().unwrap_or_else(|| panic!("{v} not a time")))
        .unwrap();
    let want = skylapse::util::parse_iso8601(reference).unwrap();
    (got - want) as f64 / 1000.0
}

#[test]
fn sun_times_by_rest_and_websocket_from_gps_or_by_hand() {
    let rig = Rig::start("sun");

    // Nothing known yet: a clear error, not a guess.
    let (st, r) = rig.http("GET", "/api/sun?date=2026-12-07", None);
    assert_eq!(st, 400, "{r}");
    assert_eq!(r["error"]["code"], "MISSING_PARAMETER", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("location"),
        "{r}"
    );

    // Given lat/lon: Seattle, 7 Dec 2026, against PyEphem (the reference of src/sun.rs's
    // test `pyephem_47_north_seattle_winter_and_summer`): sunrise 07:43:41, sunset 16:17:55,
    // astronomical dusk 18:09:51 PST.
    let (st, r) = rig.http(
        "GET",
        "/api/sun?lat=47.6062&lon=-122.3321&date=2026-12-07",
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["date"], "2026-12-07");
    assert_eq!(r["lat"], 47.6062);
    assert!(
        off_s(&r["sunrise"], "2026-12-07T07:43:41-08:00").abs() <= 2.0,
        "{r}"
    );
    assert!(
        off_s(&r["sunset"], "2026-12-07T16:17:55-08:00").abs() <= 2.0,
        "{r}"
    );
    assert!(
        off_s(&r["astronomicalDusk"], "2026-12-07T18:09:51-08:00").abs() <= 2.0,
        "{r}"
    );
    for k in [
        "solarNoon",
        "civilDawn",
        "civilDusk",
        "nauticalDawn",
        "nauticalDusk",
        "astronomicalDawn",
    ] {
        assert!(is_iso(&r[k]), "{k}: {r}");
    }
    assert!(r["sunrise"].as_str().unwrap().ends_with('Z'), "{r}");
    assert_eq!(r["locationSource"], "request");

    // Polar night at Longyearbyen: null times with the reason.
    let (st, r) = rig.http(
        "GET",
        "/api/sun?lat=78.2232&lon=15.6267&date=2026-12-21",
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert!(r["sunrise"].is_null() && r["civilDusk"].is_null(), "{r}");
    assert_eq!(r["reasons"]["sunrise"], "alwaysBelow", "{r}");
    assert!(is_iso(&r["nauticalDusk"]), "{r}");

    // Bad input: clear 400s.
    for q in [
        "lat=91&lon=0&date=2026-12-07",
        "lat=47&date=2026-12-07",
        "lat=47&lon=8&date=2026-02-30",
        "lat=abc&lon=8",
    ] {
        let (st, r) = rig.http("GET", &format!("/api/sun?{q}"), None);
        assert_eq!(st, 400, "{q}: {r}");
    }

    block_on(async {
        let mut c = rig.ws().await;
        // The phone's GPS fix (what the UI sends on connect) carries the position.
        let now_ms = skylapse::util::unix_millis(std::time::SystemTime::now());
        c.send(
            "gps-response",
            json!({"timestamp": now_ms, "latitude": -33.8688, "longitude": 151.2093, "accuracy": 12}),
            1,
        )
        .await;
        let r = c.reply(1).await;
        assert_eq!(r["type"], "gps_result", "{r}");
        // Sydney, 7 Dec 2026 (local solar day): sunrise 05:37:01 AEDT, which is 6 Dec in UTC.
        c.send("get_sun_times", json!({"date": "2026-12-07"}), 2)
            .await;
        let r = c.reply(2).await;
        assert_eq!(r["type"], "sun_times", "{r}");
        let d = &r["data"];
        assert_eq!(d["locationSource"], "gps", "{d}");
        assert_eq!(d["lat"], -33.8688);
        assert!(
            off_s(&d["sunrise"], "2026-12-07T05:37:01+11:00").abs() <= 2.0,
            "{d}"
        );
        assert!(
            d["sunrise"]
                .as_str()
                .unwrap()
                .starts_with("2026-12-06T18:37"),
            "{d}"
        );
        // Without a date: today there, and the sun's altitude now.
        c.send("get_sun_times", json!({}), 3).await;
        let d = c.reply(3).await["data"].clone();
        assert!(d["date"].as_str().is_some_and(|s| s.len() == 10), "{d}");
        let alt = d["now"]["altitudeDeg"].as_f64().unwrap();
        assert!((-90.0..=90.0).contains(&alt), "{d}");
    });
    // Remembered in the data dir.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(rig.data_dir().join("location.json")).unwrap())
            .unwrap();
    assert_eq!(saved["source"], "gps");
    assert_eq!(saved["lat"], -33.8688);

    // Set by hand over REST; GET /api/sun with no lat/lon uses it.
    let (st, r) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": 47.0, "lon": 8.0})),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["source"], "manual", "{r}");
    let (st, r) = rig.http("GET", "/api/location", None);
    assert_eq!(
        (st, &r["lat"], &r["known"]),
        (200, &json!(47.0), &json!(true)),
        "{r}"
    );
    let (st, r) = rig.http("GET", "/api/sun?date=2026-06-21", None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["lat"].as_f64(), r["locationSource"].as_str()),
        (Some(47.0), Some("manual"))
    );
    let (st, r) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": 47.0, "lon": 200})),
    );
    assert_eq!(st, 400, "{r}");
}

#[test]
fn sessions_start_and_stop_relative_to_the_sun() {
    let rig = Rig::start("sunsession");
    let start = json!({
        "interval": 10,
        "startAt": {"event": "sunset", "offsetMinutes": -60},
        "stopAt": {"event": "sunrise", "offsetMinutes": 10},
    });
    // No location yet: refused, with what to do.
    let (st, r) = rig.http("POST", "/api/intervalometer/start", Some(start.clone()));
    assert_eq!(st, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("startAt is relative to the sun"),
        "{r}"
    );
    // Polar night: sunset does not happen there.
    let (st, _) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": 89.9, "lon": 0})),
    );
    assert_eq!(st, 200);
    let (st, r) = rig.http("POST", "/api/intervalometer/start", Some(start.clone()));
    let month: u32 = skylapse::util::iso8601(std::time::SystemTime::now())[5..7]
        .parse()
        .unwrap();
    // Near the pole there is a sunset only around the equinoxes.
    if !(3..=4).contains(&month) && !(9..=10).contains(&month) {
        assert_eq!(st, 400, "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("there is no sunset"),
            "{r}"
        );
    }

    let (lat, lon) = (47.0, 8.0);
    let (st, _) = rig.http(
        "POST",
        "/api/location",
        Some(json!({"lat": lat, "lon": lon})),
    );
    assert_eq!(st, 200);
    let before = skylapse::util::unix_millis(std::time::SystemTime::now());
    let (st, r) = rig.http("POST", "/api/intervalometer/start", Some(start));
    let after = skylapse::util::unix_millis(std::time::SystemTime::now());
    assert_eq!(st, 200, "{r}");
    // What the server should have resolved (the sun module is tested against almanacs).
    let here = skylapse::sun::Location::new(lat, lon).unwrap();
    let next = |t: i64, e, off_min: i64| {
        skylapse::sun::next_event(t - off_min * 60_000, e, here).unwrap() + off_min * 60_000
    };
    let want_start = next(before, skylapse::sun::SunEvent::Sunset, -60);
    assert_eq!(
        want_start,
        next(after, skylapse::sun::SunEvent::Sunset, -60),
        "the request straddled the event"
    );
    // REST flattens the session block into `status`.
    let s = &r["status"];
    assert_eq!(s["state"], "scheduled", "{r}");
    let started = skylapse::util::parse_iso8601(s["stats"]["startTime"].as_str().unwrap()).unwrap();
    assert_eq!(started, want_start, "{s}");
    let want_stop = next(want_start, skylapse::sun::SunEvent::Sunrise, 10);
    let stop = skylapse::util::parse_iso8601(s["options"]["stopTime"].as_str().unwrap()).unwrap();
    assert_eq!(stop, want_stop, "{s}");
    assert_eq!(s["options"]["stopCondition"], "stop-at");
    assert_eq!(s["options"]["startAt"]["event"], "sunset", "{s}");
    assert_eq!(s["options"]["stopAt"]["offsetMinutes"], 10.0, "{s}");
    // Frames left: the night between them, one every 10 s.
    let frames = s["framesLeft"].as_u64().unwrap() as i64;
    assert!(
        ((want_stop - want_start) / 10_000 - frames).abs() <= 1,
        "{s}"
    );
    let (st, r) = rig.http("POST", "/api/intervalometer/stop", Some(json!({})));
    assert_eq!(st, 200, "{r}");
}
