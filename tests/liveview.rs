//! Live view and focus from the phone (issue 11), over the real server against the camera
//! simulator (its live view: real JPEGs, the start delay, busy answers when polled fast, the
//! focus drive): the multipart stream shared by several viewers, live view off after the last
//! one leaves, refused while a session runs and ended when one starts, captures kept and
//! served like the original's routes, and the focus drive.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_lite::future::block_on;
use serde_json::json;

use crate::compat::Rig;

const LV_POST: &str = "/ccapi/ver100/shooting/liveview";
const FLIP: &str = "/ccapi/ver100/shooting/liveview/flip";

/// A viewer of `GET /api/camera/liveview/stream`: reads parts as a browser would.
struct Stream {
    r: BufReader<TcpStream>,
    pub status: u16,
    pub content_type: String,
}

impl Stream {
    fn open(rig: &Rig, query: &str) -> Stream {
        let s = TcpStream::connect(rig.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "GET /api/camera/liveview/stream{query} HTTP/1.1\r\nHost: {}\r\n\r\n",
            rig.addr
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
        let mut content_type = String::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-type:") {
                content_type = v.trim().to_string();
            }
        }
        Stream {
            r,
            status,
            content_type,
        }
    }

    /// The body of an error answer.
    fn body(mut self) -> serde_json::Value {
        let mut b = Vec::new();
        let _ = self.r.read_to_end(&mut b);
        serde_json::from_slice(&b).unwrap_or_default()
    }

    /// The next JPEG part; `None` when the stream ended.
    fn frame(&mut self) -> Option<Vec<u8>> {
        let mut len = None;
        loop {
            let mut h = String::new();
            if self.r.read_line(&mut h).ok()? == 0 {
                return None;
            }
            if h.starts_with("--") && h.trim_end().ends_with("--") {
                return None; // the closing boundary
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if h == "\r\n" && len.is_some() {
                break;
            }
        }
        let mut jpeg = vec![0; len?];
        self.r.read_exact(&mut jpeg).ok()?;
        let mut crlf = [0; 2];
        self.r.read_exact(&mut crlf).ok()?;
        Some(jpeg)
    }
}

fn is_jpeg(b: &[u8]) -> bool {
    b.starts_with(&[0xFF, 0xD8]) && b.ends_with(&[0xFF, 0xD9])
}

fn lv_size(rig: &Rig) -> String {
    rig.sim().state_json()["liveview"]["liveviewsize"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

#[test]
fn viewers_share_one_camera_stream_and_live_view_ends_after_the_last() {
    let rig = Rig::start("lv-stream");
    let seq0 = rig.sim().requests().last().map_or(0, |r| r.seq + 1);
    let mut a = Stream::open(&rig, "?size=small");
    assert_eq!(a.status, 200);
    assert!(
        a.content_type.starts_with("multipart/x-mixed-replace"),
        "{}",
        a.content_type
    );
    let mut b = Stream::open(&rig, "");
    assert_eq!(b.status, 200);
    for _ in 0..5 {
        let fa = a.frame().expect("a frame for viewer a");
        let fb = b.frame().expect("a frame for viewer b");
        assert!(is_jpeg(&fa) && is_jpeg(&fb));
    }
    assert_eq!(lv_size(&rig), "small", "the first viewer's size");
    let (_, st) = rig.http("GET", "/api/camera/liveview/status", None);
    assert_eq!(st["viewers"], 2, "{st}");
    assert_eq!(st["active"], true, "{st}");
    // One camera stream: one flip per frame relayed, not one per viewer (each frame went to
    // both), and live view started once.
    let reqs = rig.sim().requests_since(seq0);
    let flips = reqs.iter().filter(|r| r.path == FLIP).count() as u64;
    let relayed = st["framesRelayed"].as_u64().unwrap();
    assert!(
        flips <= relayed + 10,
        "{flips} flips for {relayed} frames relayed"
    );
    let starts = reqs
        .iter()
        .filter(|r| r.path == LV_POST && r.method == "POST")
        .count();
    assert_eq!(starts, 1, "live view started once for two viewers");
    drop(a);
    drop(b);
    // Live view off within the linger (5 s) plus the camera's answer: the sim logs the POST.
    let off = rig.sim().wait_requests(Duration::from_secs(15), |reqs| {
        reqs.iter()
            .filter(|r| r.seq >= seq0 && r.path == LV_POST && r.method == "POST")
            .count()
            >= 2
    });
    assert!(off, "live view was not turned off after the last viewer");
    rig.wait("live view off on the camera", || lv_size(&rig) == "off");
    let (_, st) = rig.http("GET", "/api/camera/liveview/status", None);
    assert_eq!(st["viewers"], 0, "{st}");
    // A bad size is refused before anything reaches the camera.
    let bad = Stream::open(&rig, "?size=huge");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body()["error"]["code"], "INVALID_PARAMETER");
}

#[test]
fn live_view_is_refused_during_a_session_and_a_session_ends_the_stream() {
    let rig = Rig::start("lv-session");
    let mut s = Stream::open(&rig, "");
    assert_eq!(s.status, 200);
    assert!(is_jpeg(&s.frame().expect("a frame")));
    block_on(async {
        let mut c = rig.ws().await;
        c.send(
            "start_intervalometer",
            json!({"interval": 2, "stopCondition": "unlimited"}),
            1,
        )
        .await;
        let r = c.reply(1).await;
        assert_eq!(r["type"], "intervalometer_start", "{r}");
        // The stream ends (frames go through the worker that fires the shots).
        let mut n = 0;
        while s.frame().is_some() {
            n += 1;
            assert!(n < 200, "the stream did not end when the session started");
        }
        // A new viewer is refused with the reason.
        let refused = Stream::open(&rig, "");
        assert_ne!(refused.status, 200);
        let body = refused.body();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("timelapse is running"),
            "{body}"
        );
        // So are a capture and the focus drive.
        c.send("capture_liveview", json!({}), 2).await;
        let r = c.reply(2).await;
        assert_eq!(r["type"], "error", "{r}");
        c.send("drive_focus", json!({"step": "near1"}), 3).await;
        let r = c.reply(3).await;
        assert_eq!(r["type"], "error", "{r}");
        let failed = c.count("timelapse_event", "shot_failed");
        c.send("stop_intervalometer", json!({}), 4).await;
        c.reply(4).await;
        assert_eq!(failed, 0, "no frame failed: {:?}", c.seen);
    });
}

#[test]
fn captures_are_kept_served_listed_and_deleted_and_the_focus_moves() {
    let rig = Rig::start("lv-capture");
    block_on(async {
        let mut a = rig.ws().await;
        let mut b = rig.ws().await;
        a.send("capture_liveview", json!({}), 1).await;
        let r = a.reply(1).await;
        assert_eq!(r["type"], "liveview_capture_result", "{r}");
        assert_eq!(r["data"]["success"], true);
        let id = r["data"]["id"].as_u64().unwrap();
        assert_eq!(
            r["data"]["url"],
            format!("/api/camera/liveview/images/{id}")
        );
        assert!(r["data"]["exif"]["ImageWidth"].as_u64().unwrap() >= 480);
        // The other client hears of it once; the caller gets only its reply.
        let e = b
            .until("liveview_captured", |v| {
                v["eventType"] == "liveview_captured"
            })
            .await;
        assert_eq!(e["data"]["id"], id);
        let (status, bytes) = rig.http_raw(
            "GET",
            &format!("/api/camera/liveview/images/{id}/file"),
            None,
        );
        assert_eq!(status, 200);
        assert!(is_jpeg(&bytes), "the stored frame is a JPEG");
        // Over REST too (the original's route), then the list, delete and clear.
        let (status, r) = rig.http("POST", "/api/camera/liveview/capture", Some(json!({})));
        assert_eq!(status, 200, "{r}");
        let (_, list) = rig.http("GET", "/api/camera/liveview/images", None);
        let ids: Vec<u64> = list["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [id + 1, id], "newest first: {list}");
        let (status, _) = rig.http("DELETE", &format!("/api/camera/liveview/images/{id}"), None);
        assert_eq!(status, 200);
        let (status, _) = rig.http(
            "GET",
            &format!("/api/camera/liveview/images/{id}/file"),
            None,
        );
        assert_eq!(status, 404);
        let (_, cleared) = rig.http("DELETE", "/api/camera/liveview/clear", None);
        assert_eq!(cleared["deleted"], 1, "{cleared}");

        // Focus: each step moves the simulator's focus; a bad step is refused.
        let before = rig.sim().focus_position();
        a.send("drive_focus", json!({"step": "far3"}), 2).await;
        let r = a.reply(2).await;
        assert_eq!(r["type"], "focus_driven", "{r}");
        let far = rig.sim().focus_position();
        assert!(far > before, "far moves the focus out: {before} → {far}");
        a.send("drive_focus", json!({"step": "near1"}), 3).await;
        a.reply(3).await;
        let near = rig.sim().focus_position();
        assert!(near < far, "near moves it back: {far} → {near}");
        a.send("drive_focus", json!({"step": "far9"}), 4).await;
        let r = a.reply(4).await;
        assert_eq!(r["error"]["code"], "INVALID_PARAMETER", "{r}");
        assert_eq!(rig.sim().focus_position(), near);
    });
}
