//! The camera simulator as a network peer: real sockets on loopback, a tiny blocking HTTP
//! client, ureq/rustls for HTTPS, raw UDP for SSDP.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use skylapse_sim::time::ManualClock;
use skylapse_sim::{
    DescriptionMode, FaultAction, FaultMatch, OfflineMode, Power, Profile, SecondClient, SimClock,
    SimConfig, SimHandle,
};

const WAIT: Duration = Duration::from_secs(5);

// The handle can be shared between test threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<SimHandle>();
};

fn start(cfg: SimConfig) -> SimHandle {
    SimHandle::start(cfg).expect("simulator starts")
}

fn fast() -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.timing.af = Duration::from_millis(5);
    cfg.timing.settings_cooldown = Duration::from_millis(20);
    cfg.timing.coalesce = Duration::from_millis(5);
    cfg
}

/// One request on a fresh connection (`Connection: close`); (status, headers, body).
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &str,
) -> io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    // Generous: downloads render their pictures, slow in an unoptimised test build.
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let b = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    parse_response(&out)
}

fn parse_response(out: &[u8]) -> io::Result<(u16, String, Vec<u8>)> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no head"))?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status"))?;
    Ok((status, head, out[split + 4..].to_vec()))
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, _, body) = raw(addr, method, path, body, "").expect("request");
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, v)
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    call(addr, "GET", path, None)
}

fn http(sim: &SimHandle) -> SocketAddr {
    sim.http_addr().expect("http listener")
}

#[test]
fn listing_styles_path_url_and_no_list() {
    let sim = start(fast());
    let (st, v) = get(http(&sim), "/ccapi");
    assert_eq!(st, 200);
    let first = &v["ver100"][0];
    assert!(first["path"]
        .as_str()
        .unwrap()
        .starts_with("/ccapi/ver100/"));
    assert!(v["ver110"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "/ccapi/ver110/event/polling" && e["delete"] == true));
    assert_eq!(v["ver120"], json!([]));
    // PMK calls the root with a trailing slash.
    assert_eq!(get(http(&sim), "/ccapi/").1, v);

    let legacy = start(SimConfig {
        profile: Profile::LegacyVer100,
        ..fast()
    });
    let addr = http(&legacy);
    let (_, v) = get(addr, "/ccapi");
    let url = v["ver100"][0]["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("http://{addr}/ccapi/ver100/")),
        "{url}"
    );
    assert!(v["ver100"].as_array().unwrap().iter().any(|e| e["url"]
        .as_str()
        .unwrap()
        .ends_with("/ccapi/ver100/event/polling")));

    let r6 = start(SimConfig {
        profile: Profile::R6m3,
        ..fast()
    });
    let (st, v) = get(http(&r6), "/ccapi");
    assert_eq!(st, 200);
    assert_eq!(v["message"], "No list of APIs");
    let (st, v) = get(http(&r6), "/ccapi/ver100/topurlfordev");
    assert_eq!(st, 200);
    assert!(v["ver100"].as_array().unwrap().len() > 10);
}

#[test]
fn settings_round_trip_invalid_values_and_mode_availability() {
    let sim = start(fast());
    let a = http(&sim);
    let (st, v) = get(a, "/ccapi/ver100/shooting/settings/tv");
    assert_eq!(st, 200);
    assert!(v["ability"].as_array().unwrap().contains(&json!("1/1000")));
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some(r#"{"value":"1/1000"}"#)
        ),
        (200, json!({"value":"1/1000"}))
    );
    assert_eq!(
        get(a, "/ccapi/ver100/shooting/settings/tv").1["value"],
        "1/1000"
    );
    let invalid = (400, json!({"message":"Invalid parameter"}));
    // "8" instead of 8" is refused, as on the camera.
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some(r#"{"value":"8"}"#)
        ),
        invalid
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/colortemperature",
            Some(r#"{"value":3001}"#)
        ),
        invalid
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/colortemperature",
            Some(r#"{"value":3000}"#)
        )
        .0,
        200
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver110/shooting/settings/stillimagequality",
            Some(r#"{"value":{"jpeg":"small2"}}"#)
        ),
        invalid
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver110/shooting/settings/stillimagequality",
            Some(r#"{"value":{"raw":"none","jpeg":"small2"}}"#)
        )
        .0,
        200
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some("{not json")
        ),
        invalid
    );
    // In Av mode the shutter speed is not the user's: it reads blank.
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/shootingmodedial",
            Some(r#"{"value":"av"}"#)
        )
        .0,
        200
    );
    assert_eq!(
        get(a, "/ccapi/ver100/shooting/settings/tv").1,
        json!({"value":"","ability":[]})
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some(r#"{"value":"1/1000"}"#)
        ),
        invalid
    );
    // Unknown path and wrong method.
    assert_eq!(get(a, "/ccapi/ver100/nope").0, 404);
    assert_eq!(
        call(a, "POST", "/ccapi/ver100/deviceinformation", Some("{}")).0,
        405
    );
    // The R50 keeps stillimagequality in ver110 only.
    assert_eq!(
        get(a, "/ccapi/ver100/shooting/settings/stillimagequality").0,
        404
    );
}

#[test]
fn shutter_then_polling_reports_addedcontents_and_file_downloads() {
    let sim = start(fast());
    let a = http(&sim);
    let (st, snap) = get(a, "/ccapi/ver110/event/polling?timeout=immediately");
    assert_eq!(st, 200);
    assert!(snap["tv"]["ability"].is_array() && snap["battery"]["level"].is_string());
    assert_eq!(snap["addedcontents"], json!([]));
    assert_eq!(
        get(a, "/ccapi/ver110/event/polling?timeout=immediately").1,
        json!({})
    );
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":true}"#)
        ),
        (200, json!({}))
    );
    let (st, delta) = get(a, "/ccapi/ver110/event/polling?timeout=long");
    assert_eq!(st, 200);
    let added = delta["addedcontents"].as_array().expect("addedcontents");
    assert_eq!(
        added,
        &vec![json!("/ccapi/ver130/contents/card1/100CANON/IMG_0001.JPG")]
    );
    assert_eq!(delta["storage"]["storagelist"][0]["contentsnumber"], 1);

    let path = added[0].as_str().unwrap();
    let (_, info) = get(a, &format!("{path}?kind=info"));
    let (st, head, bytes) = raw(a, "GET", path, None, "").unwrap();
    assert_eq!(st, 200);
    assert!(head.contains("image/jpeg"));
    assert_eq!(bytes.len() as u64, info["filesize"].as_u64().unwrap());
    assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
    let (st, head, part) = raw(a, "GET", path, None, "Range: bytes=0-99\r\n").unwrap();
    assert_eq!(st, 206);
    assert!(head.contains(&format!("Content-Range: bytes 0-99/{}", bytes.len())));
    assert_eq!(part, bytes[..100].to_vec());
    let (_, listing) = get(a, "/ccapi/ver130/contents/card1/100CANON");
    assert_eq!(listing["path"], json!([path]));
    let (_, n) = get(a, "/ccapi/ver130/contents/card1/100CANON?kind=number");
    assert_eq!(n, json!({"contentsnumber":1,"pagenumber":1}));
    assert_eq!(call(a, "DELETE", path, None), (200, json!({})));
    let (_, delta) = get(a, "/ccapi/ver110/event/polling?timeout=immediately");
    assert_eq!(delta["deletedcontents"], json!([path]));
    assert_eq!(delta["storage"]["storagelist"][0]["contentsnumber"], 0);
    assert_eq!(get(a, path).0, 404);
}

#[test]
fn second_poll_is_already_started_and_delete_releases_the_first() {
    let sim = start(fast());
    let a = http(&sim);
    get(a, "/ccapi/ver110/event/polling?timeout=immediately");
    let held = std::thread::spawn(move || {
        let t = Instant::now();
        (
            get(a, "/ccapi/ver110/event/polling?timeout=long"),
            t.elapsed(),
        )
    });
    assert!(sim.wait_until(WAIT, |s| s.poll_outstanding));
    assert_eq!(
        get(a, "/ccapi/ver110/event/polling?timeout=long"),
        (503, json!({"message":"Already started"}))
    );
    assert_eq!(
        call(a, "DELETE", "/ccapi/ver110/event/polling", None),
        (200, json!({}))
    );
    let ((st, v), took) = held.join().unwrap();
    assert_eq!((st, v), (200, json!({})));
    assert!(took < Duration::from_secs(10), "DELETE released the hold");
    assert!(sim.wait_until(WAIT, |s| !s.poll_outstanding));
    assert_eq!(
        call(a, "DELETE", "/ccapi/ver110/event/polling", None),
        (503, json!({"message":"Not started"}))
    );
    // DELETE reset the session: the next poll is a snapshot again.
    assert!(get(a, "/ccapi/ver110/event/polling?timeout=immediately").1["tv"].is_object());
    // Wrong parameter form for ver110.
    assert_eq!(get(a, "/ccapi/ver110/event/polling?continue=on").0, 400);
    assert_eq!(
        get(a, "/ccapi/ver110/event/polling?timeout=immediate").0,
        400
    );
}

#[test]
fn long_poll_returns_early_on_a_shot_and_times_out_on_virtual_time() {
    let mut cfg = fast();
    cfg.timing.long_poll = Duration::from_secs(3600);
    let sim = start(cfg);
    let a = http(&sim);
    get(a, "/ccapi/ver110/event/polling");
    let held = std::thread::spawn(move || {
        let t = Instant::now();
        (
            get(a, "/ccapi/ver110/event/polling?timeout=long"),
            t.elapsed(),
        )
    });
    assert!(sim.wait_until(WAIT, |s| s.poll_outstanding));
    sim.press_shutter(None).unwrap(); // the body's own button
    let ((st, v), took) = held.join().unwrap();
    assert_eq!(st, 200);
    assert!(
        v["addedcontents"].as_array().is_some_and(|a| a.len() == 1),
        "{v}"
    );
    assert!(took < Duration::from_secs(30));

    // Virtual time: a 30 s long poll ends when the test moves the clock, not before.
    let clock = ManualClock::new(SystemTime::now());
    let sim = start(SimConfig {
        clock: SimClock::Manual(clock.clone()),
        ..fast()
    });
    let a = http(&sim);
    get(a, "/ccapi/ver110/event/polling");
    let held = std::thread::spawn(move || get(a, "/ccapi/ver110/event/polling?timeout=long"));
    assert!(sim.wait_until(WAIT, |s| s.poll_outstanding));
    clock.advance(Duration::from_secs(29));
    assert!(!held.is_finished() && sim.status().poll_outstanding);
    clock.advance(Duration::from_secs(1));
    assert_eq!(held.join().unwrap(), (200, json!({})));
}

#[test]
fn bulb_stays_open_until_release() {
    let clock = ManualClock::new(SystemTime::now());
    let mut cfg = fast();
    cfg.clock = SimClock::Manual(clock.clone());
    cfg.timing.af = Duration::ZERO;
    let sim = start(cfg);
    let a = http(&sim);
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some(r#"{"value":"bulb"}"#)
        )
        .0,
        200
    );
    // One-shot release in bulb is refused (knob default).
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#)
        ),
        (503, json!({"message":"Mode not supported"}))
    );
    let manual = "/ccapi/ver100/shooting/control/shutterbutton/manual";
    assert_eq!(
        call(
            a,
            "POST",
            manual,
            Some(r#"{"action":"full_press","af":false}"#)
        ),
        (200, json!({}))
    );
    clock.advance(Duration::from_secs(300));
    let s = sim.status();
    assert!(
        s.engine_busy && s.files.is_empty(),
        "still exposing after 5 min"
    );
    assert_eq!(
        call(
            a,
            "POST",
            manual,
            Some(r#"{"action":"full_press","af":false}"#)
        ),
        (503, json!({"message":"During shooting or recording"}))
    );
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/iso",
            Some(r#"{"value":"400"}"#)
        ),
        (503, json!({"message":"During shooting or recording"}))
    );
    assert_eq!(
        call(
            a,
            "POST",
            manual,
            Some(r#"{"action":"release","af":false}"#)
        )
        .0,
        200
    );
    // The write runs on the manual clock too.
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_secs(1));
    assert!(sim.wait_until(WAIT, |s| s.files.len() == 1 && !s.engine_busy));
    // Release when idle is harmless.
    assert_eq!(
        call(a, "POST", manual, Some(r#"{"action":"release"}"#)).0,
        200
    );
}

#[test]
fn datetime_uses_standard_offset_plus_dst_flag() {
    let sim = start(fast());
    let a = http(&sim);
    let put = r#"{"datetime":"Sat, 29 Aug 2020 17:46:19 -0800","dst":true}"#;
    assert_eq!(
        call(a, "PUT", "/ccapi/ver100/functions/datetime", Some(put)),
        (200, json!({}))
    );
    let (_, v) = get(a, "/ccapi/ver100/functions/datetime");
    assert_eq!(v["dst"], true);
    let s = v["datetime"].as_str().unwrap();
    assert!(
        s.starts_with("Sat, 29 Aug 2020 17:46:") && s.ends_with(" -0800"),
        "{s}"
    );
    // 17:46:19 PDT = 00:46:19 UTC the next day.
    let (utc, off, dst) = sim.camera_time();
    let expect = 1_598_748_379_000i64; // 2020-08-30T00:46:19Z
    assert!((utc - expect).abs() < 5_000, "{utc} vs {expect}");
    assert_eq!((off, dst), (-480, true));
    for bad in [
        r#"{"datetime":"2020-08-29T17:46:19-08:00","dst":true}"#,
        r#"{"datetime":"Sat, 29 Aug 2020 17:46:19 -0800"}"#,
        r#"{"datetime":"Sat, 29 Aug 2020 25:46:19 -0800","dst":false}"#,
    ] {
        assert_eq!(
            call(a, "PUT", "/ccapi/ver100/functions/datetime", Some(bad)).0,
            400,
            "{bad}"
        );
    }
}

#[test]
fn storage_fills_per_shot_and_full_card_refuses() {
    let mut cfg = fast();
    cfg.timing.settings_cooldown = Duration::ZERO;
    let sim = start(cfg);
    let a = http(&sim);
    let free = |a| {
        get(a, "/ccapi/ver110/devicestatus/storage").1["storagelist"][0]["spacesize"]
            .as_u64()
            .unwrap()
    };
    let before = free(a);
    call(
        a,
        "POST",
        "/ccapi/ver100/shooting/control/shutterbutton",
        Some(r#"{"af":false}"#),
    );
    assert!(sim.wait_until(WAIT, |s| s.files.len() == 1));
    assert_eq!(before - free(a), 7_000_000, "large_fine JPEG");
    sim.set_card_free(1_000);
    assert!(sim.wait_until(WAIT, |s| !s.engine_busy));
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#)
        ),
        (503, json!({"message":"Can not write to card"}))
    );
    sim.set_card_present(false);
    assert_eq!(
        get(a, "/ccapi/ver110/devicestatus/storage").1,
        json!({"storagelist":[]})
    );
}

#[test]
fn battery_drains_per_shot_through_level_bands_and_batterylist_bug() {
    let mut cfg = fast();
    cfg.timing.settings_cooldown = Duration::ZERO;
    let sim = start(cfg);
    let a = http(&sim);
    sim.set_battery_drain_per_shot(30.0);
    let level = |a| get(a, "/ccapi/ver100/devicestatus/battery").1["level"].clone();
    assert_eq!(level(a), "full");
    for (n, want) in [(1, "high"), (2, "half")] {
        assert_eq!(
            call(
                a,
                "POST",
                "/ccapi/ver100/shooting/control/shutterbutton",
                Some(r#"{"af":false}"#)
            )
            .0,
            200
        );
        assert!(sim.wait_until(WAIT, |s| s.files.len() == n && !s.engine_busy));
        assert_eq!(level(a), want);
    }
    // The R50 bug: batterylist says 100 whatever the charge.
    let bl =
        |a| get(a, "/ccapi/ver110/devicestatus/batterylist").1["batterylist"][0]["level"].clone();
    assert_eq!(bl(a), "100");
    sim.set_batterylist_bug(false);
    assert_eq!(bl(a), "40");
}

fn notify_listener() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads NOTIFYs until one with `nts` for the CCAPI service arrives; returns it.
fn next_notify(s: &UdpSocket, nts: &str) -> String {
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = s.recv_from(&mut buf).expect("a NOTIFY");
        let p = String::from_utf8_lossy(&buf[..n]).into_owned();
        if p.contains(&format!("NTS: {nts}")) && p.contains("NT: urn:schemas-canon-com:service") {
            return p;
        }
    }
}

#[test]
fn reboot_sends_byebye_refuses_then_comes_back_alive() {
    let listener = notify_listener();
    let mut cfg = fast();
    cfg.notify_targets = vec![listener.local_addr().unwrap()];
    let sim = start(cfg);
    let a = http(&sim);
    next_notify(&listener, "ssdp:alive");
    sim.set_wedged_502(true);
    assert_eq!(get(a, "/ccapi/ver100/deviceinformation").0, 502);
    sim.reboot(Duration::from_millis(300));
    next_notify(&listener, "ssdp:byebye");
    assert_eq!(sim.status().power, Power::Rebooting);
    assert!(TcpStream::connect(a).is_err(), "refused while rebooting");
    let alive = next_notify(&listener, "ssdp:alive");
    assert!(alive.contains(&sim.description_url()));
    assert!(sim.wait_until(WAIT, |s| s.power == Power::On));
    assert_eq!(
        get(a, "/ccapi/ver100/deviceinformation").0,
        200,
        "wedge cleared"
    );
}

#[test]
fn change_address_moves_listeners_keeps_udn_and_announces() {
    let listener = notify_listener();
    let mut cfg = fast();
    cfg.notify_targets = vec![listener.local_addr().unwrap()];
    let sim = start(cfg);
    next_notify(&listener, "ssdp:alive");
    let old = http(&sim);
    let udn = sim.udn();
    let new_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    sim.change_address(new_ip, true)
        .expect("127.0.0.2 is loopback");
    let new = http(&sim);
    assert_eq!((new.ip(), new.port()), (new_ip, old.port()));
    assert!(TcpStream::connect(old).is_err());
    assert_eq!(get(new, "/ccapi/ver100/deviceinformation").0, 200);
    next_notify(&listener, "ssdp:byebye");
    let alive = next_notify(&listener, "ssdp:alive");
    assert!(alive.contains("Location: http://127.0.0.2:"), "{alive}");
    assert!(alive.contains(&udn));
    let (st, _, xml) = raw(
        sim.description_addr(),
        "GET",
        "/upnp/CameraDevDesc.xml",
        None,
        "",
    )
    .unwrap();
    assert_eq!(st, 200);
    let xml = String::from_utf8(xml).unwrap();
    assert!(xml.contains(&format!("<UDN>{udn}</UDN>")));
    assert!(xml.contains(&format!(
        ">https://127.0.0.2:{}/ccapi<",
        sim.https_addr().unwrap().port()
    )));
}

#[test]
fn offline_refuse_and_blackhole() {
    let sim = start(fast());
    let a = http(&sim);
    sim.set_offline(OfflineMode::Refuse);
    assert!(TcpStream::connect(a).is_err());
    sim.set_online().unwrap();
    assert_eq!(
        get(a, "/ccapi/ver100/deviceinformation").0,
        200,
        "same port again"
    );

    sim.set_offline(OfflineMode::Blackhole);
    let mut s = TcpStream::connect(a).expect("accepted");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /ccapi HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).expect_err("no answer");
    assert!(matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    sim.set_online().unwrap();
    assert_eq!(get(a, "/ccapi/ver100/deviceinformation").0, 200);
}

#[test]
fn faults_forced_status_reset_hang_and_connection_cap() {
    let sim = start(fast());
    let a = http(&sim);
    sim.add_fault(
        FaultMatch::path("shutterbutton"),
        FaultAction::Respond {
            status: 503,
            message: "Device busy".into(),
        },
        Some(2),
    );
    let press = |a| {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    };
    assert_eq!(press(a), (503, json!({"message":"Device busy"})));
    assert_eq!(
        get(a, "/ccapi/ver100/deviceinformation").0,
        200,
        "other paths pass"
    );
    assert_eq!(press(a).0, 503);
    assert_eq!(press(a).0, 200);

    sim.add_fault(
        FaultMatch::path("deviceinformation"),
        FaultAction::Reset,
        Some(1),
    );
    assert!(raw(a, "GET", "/ccapi/ver100/deviceinformation", None, "").is_err());
    sim.add_fault(
        FaultMatch::path("deviceinformation"),
        FaultAction::Hang,
        Some(1),
    );
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /ccapi/ver100/deviceinformation HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(s.read(&mut [0u8; 8]).is_err(), "hung");
    drop(s);
    assert_eq!(get(a, "/ccapi/ver100/deviceinformation").0, 200);

    // ECONNRESET mid-download: head plus 100 body bytes, then RST.
    sim.add_fault(
        FaultMatch::path("cacert"),
        FaultAction::TruncateBody(100),
        Some(1),
    );
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /ccapi/ver100/functions/ssl/cacert HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("{e}"),
        }
    };
    let (st, head, body) = parse_response(&got).unwrap();
    assert_eq!((st, ended), (200, "reset"));
    let full: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(body.len() == 100 && full > 100, "{} of {full}", body.len());

    // The log saw every request, with receive instants in order.
    let log = sim.requests();
    assert!(log
        .iter()
        .any(|r| r.path.ends_with("shutterbutton") && r.status == 503));
    assert!(log.windows(2).all(|w| w[0].head_at <= w[1].head_at));
    assert!(log.iter().all(|r| r.body_at >= r.head_at));

    sim.set_max_connections(Some(1));
    let keep = TcpStream::connect(a).unwrap();
    assert!(sim.wait_until(WAIT, |s| s.open_connections == 1));
    let second = raw(a, "GET", "/ccapi", None, "");
    assert!(second.is_err(), "second connection refused: {second:?}");
    drop(keep);
    assert!(sim.wait_until(WAIT, |s| s.open_connections == 0));
    assert_eq!(get(a, "/ccapi").0, 200);
}

#[test]
fn garbage_input_gets_errors_not_a_crash() {
    let sim = start(fast());
    let a = http(&sim);
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"\x00\xff\xfe garbage\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(parse_response(&out).unwrap().0, 400);
    let body = "{\"af\": \"yes\"}";
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(body)
        ),
        (400, json!({"message":"Invalid parameter"}))
    );
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton/manual",
            Some("[]")
        )
        .0,
        400
    );
    assert_eq!(
        get(a, "/ccapi/ver130/contents/card1/100CANON/../../x").0,
        404
    );
    assert_eq!(get(a, "/ccapi").0, 200);
}

fn msearch(st: &str) -> String {
    format!("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\n\r\n")
}

#[test]
fn ssdp_msearch_reply_over_real_udp() {
    let sim = start(fast());
    let ssdp = sim.ssdp_addr().unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let service = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
    c.send_to(msearch(service).as_bytes(), ssdp).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(from, ssdp);
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
    let header = |name: &str| {
        reply
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_string())
    };
    assert_eq!(header("ST").as_deref(), Some(service));
    assert_eq!(header("Location"), Some(sim.description_url()));
    assert_eq!(header("USN"), Some(format!("{}::{service}", sim.udn())));
    assert!(reply.ends_with("\r\n\r\n"));

    c.send_to(msearch("ssdp:all").as_bytes(), ssdp).unwrap();
    let mut sts = Vec::new();
    for _ in 0..3 {
        let (n, _) = c.recv_from(&mut buf).unwrap();
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        sts.push(
            r.lines()
                .find(|l| l.starts_with("ST:"))
                .unwrap()
                .to_string(),
        );
    }
    assert!(sts.iter().any(|s| s.contains("upnp:rootdevice")));
    assert!(sts.iter().any(|s| s.contains(service)));

    // PMK's doubly escaped packet and other STs get no answer; a valid search still does.
    c.send_to(msearch(service).replace("\r\n", "\\r\\n").as_bytes(), ssdp)
        .unwrap();
    c.send_to(msearch("urn:other:service:Printer:1").as_bytes(), ssdp)
        .unwrap();
    c.send_to(msearch("upnp:rootdevice").as_bytes(), ssdp)
        .unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("ST: upnp:rootdevice"));
}

#[test]
fn description_xml_exact_access_url_form_and_faults() {
    let sim = start(fast());
    let d = sim.description_addr();
    let (st, head, body) = raw(d, "GET", "/upnp/CameraDevDesc.xml", None, "").unwrap();
    assert_eq!(st, 200);
    assert!(head.contains("text/xml"));
    let xml = String::from_utf8(body).unwrap();
    let want = format!(
        "<ns:X_accessURL xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{}</ns:X_accessURL>",
        sim.access_url().unwrap()
    );
    assert!(xml.contains(&want), "{xml}");
    assert!(sim.access_url().unwrap().starts_with("https://127.0.0.1:"));
    assert!(xml.contains("<modelName>Canon EOS R50</modelName>"));
    assert!(xml.contains(&format!(
        "<serialNumber>{}</serialNumber>",
        sim.serial_number()
    )));

    sim.ssdp_knobs(|k| k.description = DescriptionMode::NoAccessUrl);
    let (_, _, body) = raw(d, "GET", "/upnp/CameraDevDesc.xml", None, "").unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("X_accessURL"));
    sim.ssdp_knobs(|k| k.description = DescriptionMode::NotFound);
    assert_eq!(
        raw(d, "GET", "/upnp/CameraDevDesc.xml", None, "")
            .unwrap()
            .0,
        404
    );
    sim.ssdp_knobs(|k| k.description = DescriptionMode::Malformed);
    let (_, _, body) = raw(d, "GET", "/upnp/CameraDevDesc.xml", None, "").unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("</root>"));
}

/// A ureq agent trusting `root` (the camera CA), or verifying nothing when `None`.
fn tls_agent(root: Option<Vec<u8>>) -> ureq::Agent {
    tls_agent_with(root, WAIT)
}

fn tls_agent_with(root: Option<Vec<u8>>, timeout: Duration) -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider);
    tls = match root {
        Some(der) => tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[
            ureq::tls::Certificate::from_der(&der).to_owned(),
        ])),
        None => tls.disable_verification(true),
    };
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The leaf certificate the HTTPS listener presents (rustls client over a std socket).
fn presented_leaf(addr: SocketAddr, ca_der: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /ccapi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn https_chain_verifies_against_the_camera_ca_and_leaf_rotates() {
    let sim = start(SimConfig {
        tls_san: vec!["127.0.0.1".into()],
        ..fast()
    });
    let https = sim.https_addr().unwrap();
    // Insecure client, as every known CCAPI client does.
    let mut r = tls_agent(None)
        .get(&format!("https://{https}/ccapi/ver100/deviceinformation"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["productname"], "Canon EOS R50");
    // The CA served by the camera verifies the chain.
    let mut r = tls_agent(None)
        .get(&format!(
            "https://{https}/ccapi/ver100/functions/ssl/cacert"
        ))
        .call()
        .unwrap();
    let ca = r.body_mut().read_to_vec().unwrap();
    assert_eq!(ca, sim.ca_cert_der());
    let mut r = tls_agent(Some(ca.clone()))
        .get(&format!("https://{https}/ccapi"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.body_mut().read_to_string();

    // Regression: bodies beyond rustls's buffer limit used to fail with WriteZero over TLS.
    let plain = http(&sim);
    call(
        plain,
        "POST",
        "/ccapi/ver100/shooting/control/shutterbutton",
        Some(r#"{"af":false}"#),
    );
    assert!(sim.wait_until(WAIT, |s| s.files.len() == 1));
    // (The original is a rendered picture: an unoptimised test build takes seconds.)
    let mut r = tls_agent_with(None, Duration::from_secs(60))
        .get(&format!(
            "https://{https}/ccapi/ver130/contents/card1/100CANON/IMG_0001.JPG"
        ))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let jpg = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    assert_eq!(jpg.len(), 7_000_000);

    let before = presented_leaf(https, &ca);
    assert_eq!(before, sim.leaf_cert_der());
    sim.rotate_tls_leaf().unwrap();
    let after = presented_leaf(https, &ca);
    assert_ne!(before, after, "a pinned client sees a new certificate");
    assert_eq!(after, sim.leaf_cert_der());
}

/// The request log carries the kernel's receive instant of each HTTPS request (the camera's
/// receive time without the simulator's own wake-up, which `body_at` includes), between the
/// client's write and the simulator's read; plain HTTP has none.
#[test]
fn https_requests_carry_the_kernel_receive_instant() {
    let sim = start(fast());
    let https = sim.https_addr().unwrap();
    let agent = tls_agent(None);
    let url = format!("https://{https}/ccapi/ver100/shooting/settings/iso");
    let press = || {
        let mut r = agent
            .put(&url)
            .header("Content-Type", "application/json")
            .send(r#"{"value":"400"}"#.as_bytes())
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.body_mut().read_to_vec();
    };
    press();
    // On the same (keep-alive) connection: a stamp left over from the first request would be
    // earlier than `before`.
    let before = Instant::now();
    press();
    let log = sim.requests();
    let rec = log.iter().rev().find(|r| r.path.ends_with("iso")).unwrap();
    let rx = rec
        .rx_at
        .expect("an HTTPS request has a kernel receive stamp");
    // The stamp is CLOCK_REALTIME placed on the monotonic clock: allow its rounding.
    let slack = Duration::from_micros(50);
    assert!(
        rx + slack >= before,
        "stamped {:?} before the write",
        before - rx
    );
    assert!(
        rx <= rec.body_at + slack,
        "stamped {:?} after the read",
        rx - rec.body_at
    );
    let (st, _) = call(
        http(&sim),
        "PUT",
        "/ccapi/ver100/shooting/settings/iso",
        Some(r#"{"value":"400"}"#),
    );
    assert_eq!(st, 200);
    let log = sim.requests();
    assert!(log.last().unwrap().rx_at.is_none(), "plain HTTP: no stamp");
}

#[test]
fn legacy_profile_uses_absolute_urls_and_continue_polling() {
    let sim = start(SimConfig {
        profile: Profile::LegacyVer100,
        ..fast()
    });
    let a = http(&sim);
    let (_, st) = get(a, "/ccapi/ver100/devicestatus/storage");
    assert_eq!(
        st["storagelist"][0]["url"],
        format!("http://{a}/ccapi/ver100/contents/sd")
    );
    get(a, "/ccapi/ver100/event/polling");
    assert_eq!(get(a, "/ccapi/ver100/event/polling?timeout=long").0, 400);
    call(
        a,
        "POST",
        "/ccapi/ver100/shooting/control/shutterbutton",
        Some(r#"{"af":false}"#),
    );
    let (_, v) = get(a, "/ccapi/ver100/event/polling?continue=on");
    assert_eq!(
        v["addedcontents"],
        json!([format!(
            "http://{a}/ccapi/ver100/contents/sd/100CANON/IMG_0001.JPG"
        )])
    );
}

#[test]
fn control_plane_over_http() {
    let sim = start(SimConfig {
        control_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..fast()
    });
    let c = sim.control_addr().unwrap();
    let a = http(&sim);
    let (st, v) = call(
        c,
        "POST",
        "/_sim/faults",
        Some(
            r#"{"match":{"path":"battery"},"action":{"status":503,"message":"Device busy"},"count":1}"#,
        ),
    );
    assert_eq!(st, 200);
    assert!(v["id"].is_u64());
    assert_eq!(get(a, "/ccapi/ver100/devicestatus/battery").0, 503);
    assert_eq!(get(a, "/ccapi/ver100/devicestatus/battery").0, 200);
    assert_eq!(
        call(
            c,
            "PATCH",
            "/_sim/state",
            Some(r#"{"battery_percent":10,"temperature":"warning"}"#)
        )
        .0,
        200
    );
    assert_eq!(
        get(a, "/ccapi/ver100/devicestatus/battery").1["level"],
        "low"
    );
    assert_eq!(
        get(a, "/ccapi/ver100/devicestatus/temperature").1["status"],
        "warning"
    );
    assert_eq!(call(c, "POST", "/_sim/press", Some("{}")).0, 200);
    assert!(sim.wait_until(WAIT, |s| s.files.len() == 1));
    let (_, state) = get(c, "/_sim/state");
    assert_eq!(state["files"][0]["path"], "100CANON/IMG_0001.JPG");
    let (_, reqs) = get(c, "/_sim/requests");
    assert!(reqs["requests"].as_array().unwrap().len() >= 4);
    assert_eq!(
        call(c, "POST", "/_sim/clock", Some(r#"{"advance_ms":5}"#)).0,
        400,
        "system clock"
    );
    assert_eq!(
        call(c, "PATCH", "/_sim/state", Some(r#"{"nope":1}"#)).0,
        400
    );
}

#[test]
fn auto_power_off_sleeps_after_idle_and_wake_comes_back() {
    let clock = ManualClock::new(SystemTime::now());
    let listener = notify_listener();
    let mut cfg = fast();
    cfg.clock = SimClock::Manual(clock.clone());
    cfg.notify_targets = vec![listener.local_addr().unwrap()];
    let sim = start(cfg);
    let a = http(&sim);
    next_notify(&listener, "ssdp:alive");
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/functions/autopoweroff",
            Some(r#"{"value":"30"}"#)
        ),
        (200, json!({"value":"30"}))
    );
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_secs(29));
    assert_eq!(sim.status().power, Power::On);
    clock.advance(Duration::from_secs(2));
    next_notify(&listener, "ssdp:byebye");
    assert!(sim.wait_until(WAIT, |s| s.power == Power::Sleeping));
    assert_eq!(sim.status().offline, Some(OfflineMode::Blackhole));
    sim.wake().unwrap();
    next_notify(&listener, "ssdp:alive");
    assert_eq!(get(a, "/ccapi/ver100/deviceinformation").0, 200);
}

#[test]
fn standby_split_raw_jpeg_and_bandwidth_knobs() {
    let mut cfg = fast();
    cfg.timing.settings_cooldown = Duration::ZERO;
    let sim = start(cfg);
    let a = http(&sim);
    sim.set_standby_after_wake(1);
    sim.reboot(Duration::from_millis(10));
    assert!(sim.wait_until(WAIT, |s| s.power == Power::On && s.offline.is_none()));
    let press = |a| {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    };
    assert_eq!(press(a), (503, json!({"message":"Taken in preparation"})));
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver110/shooting/settings/stillimagequality",
            Some(r#"{"value":{"raw":"raw","jpeg":"small2"}}"#)
        )
        .0,
        200
    );
    get(a, "/ccapi/ver110/event/polling");
    sim.set_split_raw_jpeg(Some(Duration::from_millis(300)));
    assert_eq!(press(a).0, 200);
    let (_, first) = get(a, "/ccapi/ver110/event/polling?timeout=long");
    assert_eq!(
        first["addedcontents"],
        json!(["/ccapi/ver130/contents/card1/100CANON/IMG_0001.CR3"])
    );
    let (_, second) = get(a, "/ccapi/ver110/event/polling?timeout=long");
    assert_eq!(
        second["addedcontents"],
        json!(["/ccapi/ver130/contents/card1/100CANON/IMG_0001.JPG"])
    );
    // 400 KB at 4 MB/s takes about 100 ms of paced writes.
    sim.set_bandwidth(Some(4_000_000));
    let t = Instant::now();
    let (st, _, body) = raw(
        a,
        "GET",
        "/ccapi/ver130/contents/card1/100CANON/IMG_0001.JPG",
        None,
        "",
    )
    .unwrap();
    assert_eq!((st, body.len()), (200, 400_000));
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    let (_, _, cr3) = raw(
        a,
        "GET",
        "/ccapi/ver130/contents/card1/100CANON/IMG_0001.CR3",
        None,
        "Range: bytes=0-15\r\n",
    )
    .unwrap();
    assert_eq!(&cr3[4..12], b"ftypcrx ");
}

#[test]
fn ssdp_faults_drop_duplicate_malformed() {
    let sim = start(fast());
    let ssdp = sim.ssdp_addr().unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 2048];
    let service = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
    sim.ssdp_knobs(|k| {
        k.drop_searches = 1;
        k.duplicate_replies = true;
    });
    c.send_to(msearch(service).as_bytes(), ssdp).unwrap(); // dropped
    c.send_to(msearch(service).as_bytes(), ssdp).unwrap(); // answered twice
    let (n1, _) = c.recv_from(&mut buf).unwrap();
    let first = buf[..n1].to_vec();
    let (n2, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(first, buf[..n2].to_vec());
    sim.ssdp_knobs(|k| {
        k.duplicate_replies = false;
        k.malformed_replies = true;
    });
    c.send_to(msearch(service).as_bytes(), ssdp).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("USN:"));
    // Offline cameras are silent; back online they answer.
    sim.set_offline(OfflineMode::Refuse);
    sim.ssdp_knobs(|k| k.malformed_replies = false);
    let seen = sim.status().ssdp_searches;
    c.send_to(msearch(service).as_bytes(), ssdp).unwrap();
    assert!(sim.wait_until(WAIT, |s| s.ssdp_searches == seen + 1));
    sim.set_online().unwrap();
    c.send_to(msearch("upnp:rootdevice").as_bytes(), ssdp)
        .unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("ST: upnp:rootdevice"));
}

/// Reads one response (Content-Length framed) from a keep-alive connection.
fn read_one(s: &mut BufReader<TcpStream>) -> u16 {
    let mut status = 0;
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        s.read_line(&mut line).unwrap();
        if status == 0 {
            status = line.split(' ').nth(1).unwrap().parse().unwrap();
        } else if line == "\r\n" {
            break;
        } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    status
}

/// Benchmark: client write → simulator "request fully received" stamp, warm keep-alive
/// connection on loopback. `cargo test --release -p skylapse-sim --test sim -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_request_receive_latency() {
    let sim = start(fast());
    let a = http(&sim);
    let s = TcpStream::connect(a).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let body = r#"{"value":"400"}"#;
    let req = format!(
        "PUT /ccapi/ver100/shooting/settings/iso HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut sent = Vec::new();
    for _ in 0..2000 {
        let t0 = Instant::now();
        w.write_all(req.as_bytes()).unwrap();
        assert_eq!(read_one(&mut r), 200);
        sent.push(t0);
    }
    let log = sim.requests();
    let mut lat: Vec<Duration> = log
        .iter()
        .zip(&sent)
        .skip(100) // warm-up
        .map(|(rec, t0)| rec.body_at.saturating_duration_since(*t0))
        .collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "request receive latency over {} requests: p50 {:?}  p99 {:?}  max {:?}",
        lat.len(),
        p(0.50),
        p(0.99),
        lat[lat.len() - 1]
    );
}

#[test]
fn clock_drift_and_thermal_gate() {
    let clock = ManualClock::new(SystemTime::now());
    let sim = start(SimConfig {
        clock: SimClock::Manual(clock.clone()),
        ..fast()
    });
    let (t0, _, _) = sim.camera_time();
    sim.set_clock_drift_ppm(1000.0);
    clock.advance(Duration::from_secs(1000));
    let (t1, _, _) = sim.camera_time();
    assert_eq!(t1 - t0, 1_001_000, "1000 ppm over 1000 s = 1 s fast");

    let a = http(&sim);
    sim.set_temperature("disablerelease");
    assert_eq!(
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#)
        )
        .0,
        503
    );
    assert_eq!(
        get(a, "/ccapi/ver100/devicestatus/temperature").1,
        json!({"status":"disablerelease"})
    );
}

#[test]
fn control_plane_power_and_network() {
    let sim = start(SimConfig {
        control_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..fast()
    });
    let c = sim.control_addr().unwrap();
    let a = http(&sim);
    assert_eq!(
        call(c, "POST", "/_sim/network", Some(r#"{"offline":"refuse"}"#)).0,
        200
    );
    assert!(TcpStream::connect(a).is_err());
    assert_eq!(
        call(c, "POST", "/_sim/network", Some(r#"{"offline":null}"#)).0,
        200
    );
    assert_eq!(get(a, "/ccapi").0, 200);
    assert_eq!(
        call(
            c,
            "POST",
            "/_sim/network",
            Some(r#"{"address":"127.0.0.3","keep_ports":false}"#)
        )
        .0,
        200
    );
    let moved = http(&sim);
    assert_eq!(moved.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    assert_eq!(get(moved, "/ccapi").0, 200);
    assert_eq!(
        call(
            c,
            "POST",
            "/_sim/power",
            Some(r#"{"action":"reboot","reboot_ms":50}"#)
        )
        .0,
        200
    );
    assert!(sim.wait_until(WAIT, |s| s.power == Power::On && s.offline.is_none()));
    assert_eq!(get(moved, "/ccapi").0, 200);
    assert_eq!(
        call(c, "POST", "/_sim/wedge", Some(r#"{"on":true}"#)).0,
        200
    );
    assert_eq!(get(moved, "/ccapi").0, 502);
    assert_eq!(
        call(c, "POST", "/_sim/power", Some(r#"{"action":"dance"}"#)).0,
        400
    );
}

#[test]
fn second_client_holds_the_camera() {
    let sim = start(fast());
    let a = http(&sim);
    let d = sim.description_addr();
    let on_service = |d| {
        let (_, _, x) = raw(d, "GET", "/upnp/CameraDevDesc.xml", None, "").unwrap();
        let x = String::from_utf8(x).unwrap();
        x.contains(">1</ns:X_onService>")
    };
    assert!(!on_service(d));
    sim.set_second_client(Some(SecondClient::Busy));
    assert!(on_service(d));
    assert_eq!(get(a, "/ccapi"), (503, json!({"message":"Device busy"})));
    sim.set_second_client(Some(SecondClient::Refuse));
    assert!(raw(a, "GET", "/ccapi", None, "").is_err());
    sim.set_second_client(None);
    assert_eq!(get(a, "/ccapi").0, 200);
    assert!(!on_service(d));
}

#[test]
fn shutter_reply_waits_for_the_exposure_and_file_numbers_roll_over() {
    let clock = ManualClock::new(SystemTime::now());
    let mut cfg = fast();
    cfg.clock = SimClock::Manual(clock.clone());
    cfg.timing.af = Duration::ZERO;
    cfg.timing.settings_cooldown = Duration::ZERO;
    let sim = start(cfg);
    let a = http(&sim);
    assert_eq!(
        call(
            a,
            "PUT",
            "/ccapi/ver100/shooting/settings/tv",
            Some(r#"{"value":"4\""}"#)
        )
        .0,
        200
    );
    sim.patch_state(&json!({"next_file_number": 9999})).unwrap();
    let shot = std::thread::spawn(move || {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    });
    assert!(sim.wait_until(WAIT, |s| s.engine_busy));
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_millis(3_900));
    assert!(!shot.is_finished(), "no reply during the 4 s exposure");
    clock.advance(Duration::from_millis(100));
    assert_eq!(shot.join().unwrap(), (200, json!({})));
    assert!(
        sim.status().files.is_empty(),
        "the card write is still running"
    );
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_secs(1));
    assert!(sim.wait_until(WAIT, |s| s.files == ["100CANON/IMG_9999.JPG"]));
    let shot = std::thread::spawn(move || {
        call(
            a,
            "POST",
            "/ccapi/ver100/shooting/control/shutterbutton",
            Some(r#"{"af":false}"#),
        )
    });
    assert!(sim.wait_until(WAIT, |s| s.engine_busy));
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_secs(4));
    assert_eq!(shot.join().unwrap().0, 200);
    assert!(sim.wait_until(WAIT, |_| clock.next_wakeup().is_some()));
    clock.advance(Duration::from_secs(1));
    assert!(sim.wait_until(WAIT, |s| s.files.len() == 2));
    assert_eq!(sim.status().files[1], "101CANON/IMG_0001.JPG");
    let (_, dirs) = get(a, "/ccapi/ver130/contents/card1");
    assert_eq!(
        dirs["path"],
        json!([
            "/ccapi/ver130/contents/card1/100CANON",
            "/ccapi/ver130/contents/card1/101CANON"
        ])
    );
}

/// Needs a host where multicast works (not every sandbox): run with `--ignored`.
#[test]
#[ignore]
fn ssdp_over_real_multicast() {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let group = std::net::SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), port);
    let sim = start(SimConfig {
        ssdp_multicast: true,
        ssdp_multicast_addr: group,
        ..fast()
    });
    let c = UdpSocket::bind("0.0.0.0:0").unwrap();
    c.set_multicast_ttl_v4(2).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let st = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
    c.send_to(msearch(st).as_bytes(), group).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = c
        .recv_from(&mut buf)
        .expect("a reply through the multicast group");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(reply.contains(&format!("Location: {}", sim.description_url())));
}
