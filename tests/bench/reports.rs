//! Issue 9's memory figure for reports, on the real binary: a 50 MB report (126,000 shots by
//! default) in the data folder; the service lists reports (building its index), then sends
//! the report over REST and over the WebSocket while a probe times `/health`.
//!
//! ```text
//! cargo test --release --test bench -- --ignored --nocapture reports::
//! SKYLAPSE_BENCH_SHOTS=20000 cargo test --test bench -- --ignored --nocapture reports::
//! ```
//!
//! Prints, per step: the service's RSS before, its peak during (VmHWM, reset through
//! `/proc/PID/clear_refs` before each step) and the growth (goal < 8 MiB for opening the
//! report), the step's time, the slowest `/health` meanwhile, and the load (`uptime`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures_lite::future::block_on;
use futures_lite::StreamExt;
use skylapse::camera::ccapi::DeviceInfo;
use skylapse::intervalometer::journal::{Header, SessionLog, JOURNAL_VERSION};
use skylapse::intervalometer::report::{Report, ReportStore};
use skylapse::intervalometer::schedule::{OverrunPolicy, SessionOptions, StopCondition};
use skylapse::intervalometer::session::{EndKind, ShotRecord};

const ID: &str = "20260101-200000-bench";

struct Service {
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn spawn(data: &Path) -> Service {
    let bin =
        std::env::var("SKYLAPSE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_skylapse").into());
    let mut child = Command::new(bin)
        .args(["--no-discovery", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn skylapse");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Service {
        child,
        addr,
        data: data.to_path_buf(),
    }
}

fn proc_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A night of `n` shots, a few failed, RAW+JPEG names: about 400 bytes a shot, pretty-printed.
fn write_report(data: &Path, n: u64) -> u64 {
    let shots = (0..n)
        .map(|i| {
            let ok = i % 97 != 5;
            let t = 1_767_297_600_000.0 + i as f64 * 20_000.0;
            ShotRecord {
                slot: i,
                shot: i + 1,
                scheduled_ms: t,
                sent_ms: Some(t + 0.4),
                replied_ms: Some(t + 160.0),
                error_ms: Some(0.4 + (i % 7) as f64 * 0.01),
                duration_ms: Some(159.6),
                ok,
                error: (!ok).then(|| "camera offline: busy (503)".to_string()),
                late: false,
                skipped_before: 0,
                settings: None,
                exposure_ev: None,
                light: None,
                files: vec![
                    format!(
                        "/ccapi/ver110/contents/sd/100CANON/IMG_{:04}.CR3",
                        i % 10_000
                    ),
                    format!(
                        "/ccapi/ver110/contents/sd/100CANON/IMG_{:04}.JPG",
                        i % 10_000
                    ),
                ],
                reply_lost: false,
            }
        })
        .collect();
    let log = SessionLog {
        header: Header {
            v: JOURNAL_VERSION,
            id: ID.into(),
            title: "Milky Way, all night".into(),
            options: SessionOptions {
                interval: Duration::from_secs(20),
                stop: StopCondition::AfterShots(n as u32),
                overrun: OverrunPolicy::NextSlot,
                bulb: None,
                af: false,
                exposure: None,
                ..SessionOptions::default()
            }
            .to_wire(),
            created_wall_ms: 1_767_297_590_000,
            origin_wall_ms: 1_767_297_600_000,
            stop_at_wall_ms: None,
            tz_offset_secs: 0,
            camera: Some("SN123".into()),
            camera_info: Some(DeviceInfo {
                manufacturer: "Canon.Inc".into(),
                productname: "Canon EOS R50".into(),
                serialnumber: "SN123".into(),
                ..DeviceInfo::default()
            }),
            camera_settings: None,
        },
        shots,
        resumes: vec![],
        end: Some((
            EndKind::Completed,
            None,
            1_767_297_600_000 + n as i64 * 20_000,
        )),
        bad_lines: 0,
        path: PathBuf::new(),
    };
    let report = Report::from_log(&log, None, 1_767_297_600_000 + n as i64 * 20_000);
    ReportStore::new(data).save(&report).unwrap();
    std::fs::metadata(data.join(format!("reports/{ID}.json")))
        .unwrap()
        .len()
}

fn get(addr: SocketAddr, path: &str) -> (u16, u64, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    )
    .unwrap();
    // Read the head, then count the body, keeping only its first and last bytes.
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut n = 0u64;
    let mut ends = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        if ends.len() < 64 {
            ends.extend_from_slice(&buf[..k.min(64)]);
        }
        n += k as u64;
        if k >= 16 {
            ends.truncate(32);
            ends.extend_from_slice(&buf[k - 16..k]);
        }
    }
    (status, n, ends)
}

/// Times `/health` every 50 ms until stopped; the slowest answer in µs.
fn health_probe(addr: SocketAddr, stop: Arc<AtomicBool>, worst: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let (st, _, _) = get(addr, "/health");
        assert_eq!(st, 200);
        worst.fetch_max(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Step {
    name: &'static str,
    before_kib: u64,
    peak_kib: u64,
    took: Duration,
    worst_health: Duration,
}

/// Runs `f` with the peak RSS reset before and `/health` probed meanwhile.
fn step(svc: &Service, name: &'static str, f: impl FnOnce()) -> Step {
    let pid = svc.child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let before_kib = proc_kib(pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let probe = {
        let (addr, stop, worst) = (svc.addr, stop.clone(), worst.clone());
        std::thread::spawn(move || health_probe(addr, stop, worst))
    };
    let t0 = Instant::now();
    f();
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    probe.join().unwrap();
    let s = Step {
        name,
        before_kib,
        peak_kib: proc_kib(pid, "VmHWM:"),
        took,
        worst_health: Duration::from_micros(worst.load(Ordering::Relaxed)),
    };
    println!(
        "{:<28} RSS before {:>6.2} MiB, peak {:>6.2} MiB, growth {:>5.2} MiB, {:>6.2} s, slowest /health {:>4} ms",
        s.name,
        s.before_kib as f64 / 1024.0,
        s.peak_kib as f64 / 1024.0,
        s.peak_kib.saturating_sub(s.before_kib) as f64 / 1024.0,
        s.took.as_secs_f64(),
        s.worst_health.as_millis()
    );
    s
}

#[test]
#[ignore = "benchmark: cargo test --release --test bench -- --ignored --nocapture reports::"]
fn a_50_mb_report_opens_over_rest_and_websocket_in_bounded_memory() {
    let shots: u64 = std::env::var("SKYLAPSE_BENCH_SHOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(126_000);
    let data = std::env::temp_dir().join(format!("skylapse-bench-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let size = write_report(&data, shots);
    println!(
        "report: {shots} shots, {:.1} MB on disk",
        size as f64 / 1_000_000.0
    );
    let svc = spawn(&data);
    while get(svc.addr, "/health").0 != 200 {}
    let addr = svc.addr;

    let list = step(&svc, "list (index built)", || {
        let (st, n, _) = get(addr, "/api/timelapse/reports");
        assert_eq!(st, 200);
        assert!(n < 64 * 1024, "a list entry, not the report ({n} bytes)");
    });
    let list2 = step(&svc, "list (from the index)", || {
        assert_eq!(get(addr, "/api/timelapse/reports").0, 200);
    });
    let rest = step(&svc, "open over REST", || {
        let (st, n, ends) = get(addr, &format!("/api/timelapse/reports/{ID}"));
        assert_eq!(st, 200);
        assert_eq!(n, size + "{\"report\":}".len() as u64);
        assert!(ends.starts_with(b"{\"report\":{"), "{ends:?}");
        assert!(ends.ends_with(b"}"));
    });
    let ws = step(&svc, "open over WebSocket", || {
        block_on(async {
            let tcp = Async::<TcpStream>::connect(addr).await.unwrap();
            let config = WebSocketConfig::default().max_message_size(Some(256 << 20));
            let (mut ws, _) = async_tungstenite::client_async_with_config(
                format!("ws://{addr}/ws"),
                tcp,
                Some(config),
            )
            .await
            .unwrap();
            let msg = format!(r#"{{"type":"get_timelapse_report","data":{{"id":"{ID}"}},"id":1}}"#);
            ws.send(Message::text(msg)).await.unwrap();
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("the WebSocket closed")
                };
                if t.as_str().contains("\"type\":\"timelapse_report\"") && t.len() as u64 > size {
                    assert!(t.as_str().starts_with("{\"data\":{\"report\":{"));
                    assert!(t.as_str().ends_with("\"type\":\"timelapse_report\"}"));
                    break;
                }
            }
        })
    });
    let out = std::process::Command::new("uptime").output().unwrap();
    println!("load: {}", String::from_utf8_lossy(&out.stdout).trim());
    let _ = (list, list2);
    for s in [&rest, &ws] {
        let growth = s.peak_kib.saturating_sub(s.before_kib);
        assert!(growth < 8 * 1024, "{}: RSS grew {growth} KiB", s.name);
    }
}
