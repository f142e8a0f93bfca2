//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes the raw bytes an
//! outside party controls and runs them through the parser the service uses on them, plus the
//! code that reads the parsed result. A panic (the service runs with `panic = "abort"`), an
//! overflow or a broken invariant checked here is a finding. Not an API.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

/// An HTTP request head as the server reads it: httparse with the server's header limit, the
/// request as kept, then everything that inspects it (Content-Length, Host, token, query,
/// gzip, the REST routing into a command).
pub fn http_head(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; crate::web::http::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(data) else {
        return;
    };
    assert!(len <= data.len());
    let Some(mut r) = crate::web::http::to_request(&req) else {
        return;
    };
    let _ = crate::web::http::content_length(&r);
    let _ = r.bearer_token();
    let _ = r.accepts_gzip();
    let _ = r.header_has("connection", "upgrade");
    let _ = r.query_param("id");
    if let Some(h) = r.header("host") {
        let _ = crate::web::host::host_part(h);
    }
    let _ = crate::web::http::percent_decode(r.path.as_bytes());
    r.body = data[len..].to_vec();
    let _ = crate::web::rest::route(&r);
}

/// A WebSocket text message: the envelope, then the command and its payload.
pub fn ws_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(env) = crate::protocol::parse_envelope(text) else {
        return;
    };
    if let Ok(cmd) = crate::protocol::Command::parse(&env.kind, env.data) {
        // What the reader does with it before it is run: its Debug form is what logs show.
        let _ = format!("{cmd:?}");
    }
}

/// An SSDP datagram (NOTIFY or M-SEARCH answer) from anyone on the network.
pub fn ssdp(data: &[u8]) {
    use crate::discovery::ssdp;
    if let Ok(ssdp::SsdpMessage::Announce(a)) = ssdp::parse(data) {
        let _ = a.location.authority();
        let _ = ssdp::location_matches_sender(&a.location, std::net::Ipv4Addr::LOCALHOST.into());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ssdp::uuid_from_usn(text);
        let _ = ssdp::HttpUrl::parse(text);
    }
}

/// A UPnP device description (the XML at an SSDP location).
pub fn description(data: &[u8]) {
    let _ = crate::discovery::description::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::discovery::description::element_text(text, "URLBase");
    }
}

/// A CCAPI JSON body, handed to every reader of camera answers: the API list, device
/// information, storage, event-polling deltas (new files, settings, battery), error bodies.
pub fn ccapi_json(data: &[u8]) {
    use crate::camera::ccapi;
    let _ = ccapi::status_error(503, data);
    let _ = ccapi::status_error(400, data);
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let eps = ccapi::Endpoints::parse(&v);
    let _ = eps.find("shooting/control/shutterbutton");
    let _ = ccapi::DeviceInfo::parse(&v);
    let _ = ccapi::storage_summary(&v);
    if let Some(s) = v.get("storage") {
        let _ = ccapi::storage_summary(s);
    }
    let _ = ccapi::added_contents(&v);
    let _ = crate::camera::battery_entry(&v);
    let mut settings = crate::camera::CameraSettings::default();
    settings.update_from(&v);
    let _ = settings.exposure_time();
    if let Some(tv) = v
        .get("tv")
        .and_then(|t| t.get("value"))
        .and_then(Value::as_str)
    {
        let _ = ccapi::tv_seconds(tv);
    }
    if let Some(dt) = v.get("datetime").and_then(Value::as_str) {
        let _ = ccapi::parse_canon_datetime(dt, v.get("dst") == Some(&Value::Bool(true)));
    }
}

/// The camera's date and time text (`datetime` of `functions/datetime`).
pub fn canon_datetime(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dst in [false, true] {
        if let Some(t) = crate::camera::ccapi::parse_canon_datetime(text, dst) {
            // What the parser accepted formats back without trouble.
            let _ = crate::camera::ccapi::format_canon_datetime(t, 0, dst);
        }
    }
    let _ = crate::camera::ccapi::tv_seconds(text);
}

/// A session journal (a file on the card: torn by power loss, or damaged).
pub fn journal(data: &[u8]) {
    let path = Path::new("/nonexistent/sessions/20260101-000000-fuzz.jsonl");
    if let Ok(log) = crate::intervalometer::journal::parse(data, path) {
        let _ = log.finished();
        let _ = log.last_wall_ms();
        // A replayed journal becomes a report (saving, completion data).
        let r = crate::intervalometer::report::Report::from_log(&log, None, 0);
        let _ = serde_json::to_vec(&r);
    }
}

/// A report file: the streaming scan the index and the stream rely on, the full parse the
/// CSV/chart/rename use. What the scan accepts is UTF-8 throughout (it goes out as a
/// WebSocket text message as it is); on UTF-8 input the two agree on the list entry. (The
/// full parse skips unknown fields without checking their bytes, so it alone may accept a
/// file with a stray Latin-1 byte: found by this target, kept in fuzz/regressions/report.)
pub fn report(data: &[u8]) {
    use crate::intervalometer::report::{scan_report_bytes, to_csv, to_svg, Report};
    let scanned = scan_report_bytes(data);
    let utf8 = std::str::from_utf8(data).is_ok();
    assert!(
        scanned.is_err() || utf8,
        "the scan accepted bytes that are not UTF-8"
    );
    if let Ok(full) = serde_json::from_slice::<Report>(data) {
        let _ = to_csv(&full);
        let _ = to_svg(&full);
        if full.version >= crate::intervalometer::report::REPORT_VERSION && utf8 {
            let entry = scanned.expect("a report the full parse reads is scanned too");
            assert_eq!(entry, full.list_entry());
        }
    }
}

/// The config file (`--config FILE`, JSON), with no flags or environment.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let args = [
        OsString::from("--config"),
        OsString::from("/fuzz/config.json"),
    ];
    let _ = crate::config::Config::parse(&args, &|_| None, &|_| Ok(text.clone()));
}

/// A JPEG from the camera (test photos): its EXIF summary and frame size.
pub fn exif(data: &[u8]) {
    let _ = crate::camera::exif::parse(data);
    let _ = crate::camera::exif::frame_size_in(&mut std::io::Cursor::new(data));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    type Target = fn(&[u8]);

    const TARGETS: [(&str, Target); 10] = [
        ("http_head", http_head),
        ("ws_message", ws_message),
        ("ssdp", ssdp),
        ("description", description),
        ("ccapi_json", ccapi_json),
        ("canon_datetime", canon_datetime),
        ("journal", journal),
        ("report", report),
        ("config", config),
        ("exif", exif),
    ];

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
    }

    /// Every committed seed and every crash found so far (`fuzz/regressions/<target>/`, kept
    /// as regression inputs) goes through its target in plain `cargo test`.
    #[test]
    fn seeds_and_past_crashes_run_clean() {
        let mut ran = 0;
        for (name, target) in TARGETS {
            for sub in ["corpus", "regressions"] {
                let Ok(dir) = std::fs::read_dir(fuzz_dir().join(sub).join(name)) else {
                    continue;
                };
                for e in dir.flatten() {
                    target(&std::fs::read(e.path()).unwrap());
                    ran += 1;
                }
            }
        }
        assert!(
            ran >= 3 * TARGETS.len(),
            "only {ran} seeds: fuzz/corpus is missing"
        );
    }

    /// Writes the seed corpora (`cargo test --lib fuzzing -- --ignored`): inputs of the forms
    /// the service sees, made by the code that writes them where there is one.
    #[test]
    #[ignore = "writes fuzz/corpus"]
    fn write_seed_corpora() {
        use crate::intervalometer::journal::Journal;
        use crate::intervalometer::report::{tests::log, Report};
        use crate::intervalometer::session::{EndKind, JournalEntry};
        let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut add = |t: &'static str, b: &[u8]| seeds.push((t, b.to_vec()));
        for h in [
            "GET / HTTP/1.1\r\nHost: skylapse.local\r\n\r\n",
            "GET /api/timelapse/reports/20250101-000000-ab12?x=1 HTTP/1.1\r\nHost: 192.168.4.1:8080\r\nAuthorization: Bearer s3cret\r\nAccept-Encoding: gzip, br\r\n\r\n",
            "POST /api/camera/settings/iso HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 15\r\nContent-Length: 15\r\n\r\n{\"value\":\"800\"}",
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://localhost\r\n\r\n",
            "PUT /api/timelapse/reports/a%20b/title HTTP/1.0\r\n\r\n{\"title\":\"x\"}",
        ] {
            add("http_head", h.as_bytes());
        }
        for m in [
            r#"{"type":"ping"}"#,
            r#"{"type":"subscribe","data":{"channels":["camera","status"]},"id":1}"#,
            r#"{"type":"start_intervalometer","data":{"interval":20,"shots":3,"stopCondition":"stop-after"},"id":"a","ack":true}"#,
            r#"{"type":"take_photo","requestId":7}"#,
            r#"{"type":"set_camera_setting","data":{"setting":"tv","value":"1/125"}}"#,
            r#"{"type":"network_connect","data":{"ssid":"home","password":"hunter22"}}"#,
            r#"{"type":"update_report_title","data":{"id":"x","title":"Orion"}}"#,
            r#"{"type":"time-sync-response","data":{"clientTime":"2025-01-01T00:00:00.000Z","timezone":"Europe/Paris"}}"#,
        ] {
            add("ws_message", m.as_bytes());
        }
        let usn = "uuid:00000000-0000-0000-0001-0A0B0C0D0E0F::urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
        let loc = "http://192.168.1.2:49152/upnp/CameraDevDesc.xml";
        let st = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
        add("ssdp", format!("HTTP/1.1 200 OK\r\nCache-Control: max-age=1800\r\nEXT:\r\nLocation: {loc}\r\nST: {st}\r\nUSN: {usn}\r\n\r\n").as_bytes());
        add("ssdp", format!("NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nCache-Control: max-age=900\r\nLocation: {loc}\r\nNT: {st}\r\nNTS: ssdp:alive\r\nUSN: {usn}\r\n\r\n").as_bytes());
        add("ssdp", format!("NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nNT: {st}\r\nNTS: ssdp:byebye\r\nUSN: {usn}\r\n\r\n").as_bytes());
        add(
            "description",
            crate::discovery::description::render(
                "00000000-0000-0000-0001-0A0B0C0D0E0F",
                "Canon EOS R50",
                "012345678901",
                "http://192.168.1.2:8080/ccapi",
            )
            .as_bytes(),
        );
        add("description", b"<root><URLBase>http://a/</URLBase><device><UDN>uuid:x&amp;y</UDN><ns:X_accessURL xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">http://10.0.0.2:8080/ccapi/</ns:X_accessURL></device></root>");
        add("description", b"<?xml version=\"1.0\"?><root><device><friendlyName>&lt;&#65;&#x42;&gt;</friendlyName></device></root>");
        for j in [
            r#"{"ver100":[{"path":"http://192.168.1.2:8080/ccapi/ver100/deviceinformation","method":"get"}],"ver110":[{"path":"http://192.168.1.2:8080/ccapi/ver110/shooting/control/shutterbutton","method":"post"}]}"#,
            r#"{"manufacturer":"Canon.Inc","productname":"Canon EOS R50","guid":"00000000-0000-0000-0001-0A0B0C0D0E0F","serialnumber":"012345678901","firmwareversion":"1.1.0","macaddress":"00:11:22:33:44:55"}"#,
            r#"{"storagelist":[{"name":"sd","url":"http://192.168.1.2:8080/ccapi/ver110/contents/sd","accesscapability":"readwrite","maxsize":63864569856,"spacesize":60000000000,"contentsnumber":120}]}"#,
            r#"{"addedcontents":["http://192.168.1.2:8080/ccapi/ver110/contents/sd/100CANON/IMG_0001.CR3"],"tv":{"value":"1/125","ability":["30\"","1/125"]},"av":{"value":"f2.8"},"iso":{"value":"6400"},"battery":{"name":"LP-E17","kind":"battery","level":"full","quality":"good"},"temperature":{"status":"normal"}}"#,
            r#"{"message":"Device busy"}"#,
            r#"{"datetime":"Tue, 01 Jan 2019 01:02:03 +0900","dst":true}"#,
            r#"{"shootingmodedial":{"value":"m"},"tv":{"value":"0\"3"},"exposure":{"value":"+1_1/3"},"wb":{"value":"auto"}}"#,
        ] {
            add("ccapi_json", j.as_bytes());
        }
        for d in [
            "Tue, 01 Jan 2019 01:02:03 +0900",
            "Sat, 31 Dec 2022 23:59:59 -0330",
            "Mon, 29 Feb 2016 12:00:00 +0000",
        ] {
            add("canon_datetime", d.as_bytes());
        }
        let tmp = std::env::temp_dir().join(format!("skylapse-seeds-{}", std::process::id()));
        let l = log(5);
        let mut j = Journal::create(&tmp, &l.header).unwrap();
        for s in &l.shots {
            j.append(&JournalEntry::Shot(s.clone())).unwrap();
        }
        j.append(&JournalEntry::Files {
            slot: 1,
            files: vec!["IMG_0002.CR3".into()],
        })
        .unwrap();
        j.append(&JournalEntry::Taken { slot: 2 }).unwrap();
        j.append(&JournalEntry::End {
            state: EndKind::Stopped,
            reason: Some("user".into()),
            wall_ms: 1_005_000,
        })
        .unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let bytes = std::fs::read(&path).unwrap();
        add("journal", &bytes);
        let first = bytes.split(|b| *b == b'\n').next().unwrap().to_vec();
        add("journal", &first);
        std::fs::remove_dir_all(&tmp).unwrap();
        let r = Report::from_log(&l, None, 2_000_000);
        add("report", &serde_json::to_vec_pretty(&r).unwrap());
        add(
            "report",
            &serde_json::to_vec(&Report::from_log(&log(1), Some("t"), 0)).unwrap(),
        );
        let mut v1 = serde_json::to_value(&r).unwrap();
        v1["version"] = 1.into();
        add("report", v1.to_string().as_bytes());
        for c in [
            r#"{"listen":"0.0.0.0:8080","dataDir":"/var/lib/skylapse","token":"s3cret","demo":true}"#,
            r#"{"camera":"192.168.1.2:443","allowOrigin":["http://example.com"],"log":"info"}"#,
            r#"{"listen":"[::]:80","cameraInsecure":false,"allowHost":["pi.local"]}"#,
        ] {
            add("config", c.as_bytes());
        }
        add("exif", &crate::camera::exif::tests::sample());
        add(
            "exif",
            &[
                0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0x0F, 0xA0, 0x17, 0x70, 1, 1, 0x11, 0, 0xFF, 0xD9,
            ],
        );
        for (i, (target, bytes)) in seeds.iter().enumerate() {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i:02}")), bytes).unwrap();
        }
    }
}
