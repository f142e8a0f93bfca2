//! End-to-end benchmarks through the whole product, in-process: `services::start` (camera
//! driver, discovery, intervalometer, Wi-Fi, time sync, power) + the web `Server`, with the
//! camera simulator in-process as `--demo` runs it, and real WebSocket clients on loopback.
//!
//! 1. Timelapse timing (issues 4 and 13): 10 WebSocket clients connected and reading (status
//!    broadcasts running), a session of 300 shots at 250 ms started over a WebSocket command;
//!    the error of each shutter request against `first + slot × interval`, p50 / p99 / max,
//!    layer by layer (below). Once with the simulator answering event polls promptly (20 ms
//!    hold), once holding them 30 s.
//! 2. Camera return after an outage (issue 3): simulator offline → online, with and without
//!    an SSDP NOTIFY alive; time until a WebSocket client sees `camera.connected: true`.
//!
//! cargo test --release --test bench -- --ignored --nocapture --test-threads 1 e2e::
//!
//! ## The layers of a shot's timing (issue 13)
//!
//! Each press is followed through four clocks, so a late one says where it was late:
//!
//! - **service, sent vs due**: the camera driver's debug line (target
//!   `skylapse::shot_timing`, captured by a logger this benchmark installs; off in production,
//!   where it costs a log-level check) gives the due instant and the instant the request went to
//!   ureq after the precise wait, and how late that wait's sleep woke (its target: due − 2 ms;
//!   then the thread spins under SCHED_FIFO).
//! - **wire**: `tcpdump -i lo --time-stamp-precision=nano` (a peer the project did not write)
//!   on the simulator's HTTPS port; the control connection is the one the presses came on, and
//!   the benchmark checks it carried nothing else during the run (the camera's log of that
//!   connection and the requests seen on the wire must match one to one). A request is two
//!   TLS records (ureq writes the head, then the body), two segments ~50 µs apart; the camera
//!   acts on the last. Retransmitted segments are left out. Stamps are CLOCK_REALTIME, placed
//!   on the monotonic clock by readings of both at the start and stop (the drift is printed;
//!   it was 0.000 ms). lo refuses `-j adapter_unsynced`: these are the host's stamps, taken
//!   in the sender's `write`. Without tcpdump (or root), the column is skipped with a note.
//! - **simulator, kernel receive**: SO_TIMESTAMPNS on the simulator's accepted socket, the
//!   stamp of the bytes that completed the request (`RequestRecord::rx_at`). This is the
//!   camera's receive instant: a camera is a device with its own CPU, not a thread that
//!   shares the service's two cores. **This is the issue's figure** (`bench_e2e` p99).
//! - **simulator, request read**: its `Instant::now()` once its thread has woken and parsed
//!   the request (`body_at`; the figure before issue 13). It adds the simulator's own wake-up
//!   (the async-io reactor on another thread, then its executor, then rustls): p99 0.5-4.6 ms
//!   on this VM, which is where the old 1.07-1.24 ms p99 came from.
//!
//! Grid errors are taken against each layer's own first shot (the clocks differ by a constant);
//! `service` and the `due → …` lines are against the service's due instants. The slot of each
//! press comes from its due instant, so a skipped slot does not shift the shots after it.
//!
//! Measured on this 2-vCPU VM (Firecracker, shared host; another session building on it, no
//! quieter slot to be had), BENCH defaults, 2026-12-07. Load is `uptime`'s 1-minute figure at
//! the end of the run, steal the host's steal time during it (/proc/stat). p50 / p99 / max, ms:
//!
//! ```text
//!   polls    load steal   service sent−due   wire (last segment)  kernel receive      simulator read (old)
//!   held 30s 2.96  570 ms 0.001/0.036/5.441  0.019/0.110/5.446    0.019/0.111/5.447   0.031/2.676/5.496
//!   20 ms    2.73 1430 ms 0.001/0.068/63.73  0.037/0.240/63.77    0.038/0.240/63.77   0.086/3.651/64.59
//!   held 30s 1.80 1000 ms 0.001/0.034/2.500  0.035/0.195/2.453    0.035/0.195/2.453   0.047/1.768/4.391
//!   20 ms    1.15  950 ms 0.001/0.019/0.244  0.028/0.149/0.979    0.028/0.150/0.979   0.071/0.573/2.146
//!   held 30s 2.69  880 ms 0.001/0.012/0.027  0.022/0.065/1.219    0.022/0.065/1.219   0.143/4.057/4.084
//!   20 ms    3.27 1420 ms 0.001/0.092/11.11  (tcpdump parse bug)  0.025/0.119/11.15   0.052/4.594/11.15
//! ```
//!
//! So the issue's p99 ≤ 0.5 ms holds at the camera's socket (0.07-0.24 ms), and the wire
//! agrees with the kernel stamp to the microsecond. The old figure's tail (p99 0.6-4.6 ms
//! here) is the simulator's wake-up, `kernel receive → read`, not the shot path. The service
//! sends within 1-2 µs of due (p50) and 12-92 µs (p99); its few late presses (0-3 a run,
//! always with the host stealing ~1 s of CPU per 75 s run) are either its sleep waking later
//! than the 2 ms margin (woke +7.4 ms, +65.7 ms: the vCPU was not run) or the SCHED_FIFO
//! thread losing its vCPU while it spun (woke on time, sent +4.7 ms). Hand-over is never
//! the cause in these runs: every shot reached the worker ~240 ms ahead (one run before
//! that column existed fired one shot 254.8 ms late with no sleep at all, i.e. handed over
//! after its due: not seen again).
//!
//! What remains is the platform: `cyclictest -m -p 10 -i 1000 -D 60 -h 5000` (rt-tests, a
//! SCHED_FIFO thread's wake-up latency, nothing of ours running; load ~2, 300 ms stolen) saw
//! avg 20 µs, 0.38 % of wake-ups > 0.1 ms, 0.08 % > 0.5 ms, 0.03 % > 1 ms, max 11.5 ms: the
//! service's late presses are of that kind, and a wider spin margin would catch only the
//! sleeps woken 2-3 ms late, not the vCPU lost mid-spin. `service sent → kernel receive`
//! (~0.19 ms: ureq, rustls, two writes, loopback) is nearly constant and cancels out of the
//! grid error.
//!
//! BENCH_SHOTS / BENCH_INTERVAL_MS override 300 shots at 250 ms (an interval must exceed the
//! exposure + 0.2 s the camera needs, so 200 ms is refused). BENCH_SIM_RT=1 runs the
//! simulator's thread SCHED_FIFO (if permitted). BENCH_WIRE_KEEP=1 keeps tcpdump's output.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::future::{block_on, or};
use futures_lite::StreamExt;
use serde_json::{json, Value};

use skylapse::app::{App, Publisher};
use skylapse::camera::CameraNotice;
use skylapse::clock::{SharedClock, SystemClock, TIMING_LOG_TARGET};
use skylapse::config::Config;
use skylapse::services::{self, Running};
use skylapse::web::Server;
use skylapse_sim::{OfflineMode, SimConfig, SimHandle};

type Ws = WebSocketStream<Async<TcpStream>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The product as `main` runs it (`--demo`), on an ephemeral loopback port.
struct Product {
    addr: SocketAddr,
    data_dir: PathBuf,
    running: Option<Running>,
    server: Option<Server>,
    stop: async_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Product {
    fn start(label: &str, sim: SimConfig) -> Product {
        let data_dir =
            std::env::temp_dir().join(format!("skylapse-bench-e2e-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            demo: true,
            ..Config::default()
        };
        let (publisher, outbound) = Publisher::channel();
        let clock: SharedClock = Arc::new(SystemClock);
        let mut app = App::new(Arc::new(config), clock, publisher);
        let options = services::Options {
            sim: Some(sim),
            no_clock_setting: true,
            ..services::Options::default()
        };
        let running = services::start(&mut app, options).expect("services start");
        let app = Arc::new(app);
        // One thread runs the web executor inside `smol::block_on` (which also drives the
        // async-io reactor when idle), like `main`.
        let ex = Arc::new(smol::Executor::new());
        let (stop, stop_rx) = async_channel::bounded::<()>(1);
        let thread = {
            let ex = ex.clone();
            std::thread::Builder::new()
                .name("bench-web".into())
                .spawn(move || {
                    let _ = smol::block_on(ex.run(stop_rx.recv()));
                })
                .unwrap()
        };
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let server = Server::start(&ex, listener, app, outbound).unwrap();
        Product {
            addr: server.local_addr(),
            data_dir,
            running: Some(running),
            server: Some(server),
            stop,
            thread: Some(thread),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn sim(&self) -> &SimHandle {
        self.running().sim.as_ref().expect("demo simulator")
    }

    /// Waits (awaiting the driver's notice) until the camera link is up.
    fn wait_camera_connected(&self, patience: Duration) {
        let notices = self.running().camera.subscribe();
        if self.running().camera.is_connected() {
            return;
        }
        let got = block_on(or(
            async {
                while let Ok(n) = notices.recv().await {
                    if let CameraNotice::Connected { .. } = n {
                        return true;
                    }
                }
                false
            },
            async {
                Timer::after(patience).await;
                false
            },
        ));
        assert!(got, "camera did not connect within {patience:?}");
    }
}

impl Drop for Product {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(r) = self.running.take() {
            r.stop();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

async fn connect(addr: SocketAddr) -> Ws {
    let req = format!("ws://{addr}/ws").into_client_request().unwrap();
    let tcp = Async::<TcpStream>::connect(addr).await.unwrap();
    let (mut ws, _) = async_tungstenite::client_async(req, tcp)
        .await
        .expect("websocket connects");
    let first = next_json(&mut ws).await.expect("welcome");
    assert_eq!(first["type"], "welcome", "first frame: {first}");
    ws
}

/// Next text frame as JSON (answering nothing: tungstenite queues pongs itself).
async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn sim_config(hold: Duration) -> SimConfig {
    let mut cfg = SimConfig {
        notify_interval: Some(Duration::from_secs(60)),
        ..SimConfig::default()
    };
    // A fast card so a shot (exposure + write + cooldown) fits in 250 ms slots.
    cfg.timing.write_bytes_per_sec = 2_000_000_000;
    cfg.timing.settings_cooldown = Duration::from_millis(50);
    cfg.timing.long_poll = hold;
    cfg.timing.short_poll = hold;
    cfg
}

/// Runs the simulator's thread at real-time priority when BENCH_SIM_RT=1 (see module doc).
fn maybe_sim_realtime() -> &'static str {
    if env_u64("BENCH_SIM_RT", 0) == 0 {
        return "normal";
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "normal";
    };
    let mut done = false;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "camera-sim" {
            if let Ok(tid) = t.file_name().to_string_lossy().parse::<i32>() {
                let p = libc::sched_param { sched_priority: 20 };
                // SAFETY: a plain syscall on a thread id of this process.
                done |= unsafe { libc::sched_setscheduler(tid, libc::SCHED_FIFO, &p) } == 0;
            }
        }
    }
    if done {
        "SCHED_FIFO"
    } else {
        "normal (SCHED_FIFO refused)"
    }
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    last: f64,
}

/// Errors (ms) of `times` against `first + slot × interval` (`slots[0]` is 0).
fn errors(times: &[Instant], slots: &[u64], interval: Duration) -> Vec<f64> {
    let first = times[0];
    times
        .iter()
        .zip(slots)
        .map(|(t, &n)| ms(*t, first + interval * n as u32))
        .collect()
}

fn stats(errs: &[f64]) -> Stats {
    let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let pct = |p: f64| abs[((abs.len() as f64 * p).ceil() as usize).clamp(1, abs.len()) - 1];
    Stats {
        p50: pct(0.5),
        p99: pct(0.99),
        max: abs[abs.len() - 1],
        last: errs[errs.len() - 1],
    }
}

/// Captures the camera driver's timing lines ([`TIMING_LOG_TARGET`]), stamped on arrival,
/// and prints warnings (so a refused SCHED_FIFO shows); every other record is refused at
/// `enabled`.
struct PressLog {
    lines: Mutex<Vec<(Instant, String)>>,
}

impl log::Log for PressLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target() == TIMING_LOG_TARGET || m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        let at = Instant::now();
        if r.target() == TIMING_LOG_TARGET {
            lock(&self.lines).push((at, r.args().to_string()));
        } else if r.level() <= log::Level::Warn {
            // Printed as they come: e.g. "cannot run the shutter press under SCHED_FIFO".
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs [`PressLog`] once per process (`None` if another logger got there first).
fn press_log() -> Option<&'static PressLog> {
    static LOG: OnceLock<Option<&'static PressLog>> = OnceLock::new();
    *LOG.get_or_init(|| {
        let log: &'static PressLog = Box::leak(Box::new(PressLog {
            lines: Mutex::new(Vec::new()),
        }));
        log::set_logger(log).ok()?;
        log::set_max_level(log::LevelFilter::Debug);
        Some(log)
    })
}

/// One press as the service saw it: its due instant, the instant it went to ureq, and how
/// late the precise wait's sleep woke (its target: 2 ms before due).
struct Press {
    due: Instant,
    sent: Instant,
    woke_late: Option<f64>,
    /// When the shot was handed to the camera worker, ms before due.
    queued_ahead: Option<f64>,
}

/// Parses the captured lines (see `log_press` in src/camera/shot.rs).
fn presses_logged(lines: &[(Instant, String)]) -> Vec<Press> {
    let field = |line: &str, key: &str| -> Option<i128> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    let shift = |t: Instant, ns: i128| {
        if ns >= 0 {
            t + Duration::from_nanos(ns as u64)
        } else {
            t - Duration::from_nanos((-ns) as u64)
        }
    };
    let mut woke_late = None;
    lines
        .iter()
        .filter_map(|(at, line)| {
            if line.starts_with("wake ") {
                woke_late = field(line, "late_ns").map(|ns| ns as f64 / 1e6);
                return None;
            }
            let due = shift(*at, -field(line, "due_before_line_ns")?);
            Some(Press {
                due,
                sent: shift(due, field(line, "sent_ns")?),
                woke_late: woke_late.take(),
                queued_ahead: field(line, "queued_ns").map(|ns| -(ns as f64) / 1e6),
            })
        })
        .collect()
}

/// tcpdump on loopback, capturing the client→camera segments of the simulator's HTTPS port:
/// a peer the project did not write, with the kernel's timestamp of each segment (taken in
/// the sender's `write`, on loopback the same instant the receiving socket gets it).
struct Wire {
    child: std::process::Child,
    out: PathBuf,
    /// (CLOCK_REALTIME, monotonic) read together at the start, to place stamps on `Instant`.
    anchor: (SystemTime, Instant),
    /// The same at the stop: the two clocks' drift over the capture, corrected linearly.
    end: Option<(SystemTime, Instant)>,
}

/// One client→camera TCP segment with data.
struct Segment {
    at: SystemTime,
    src_port: u16,
    /// The end of its sequence range (absolute, `-S`): a retransmission
    /// ends at or before data already seen.
    seq_end: u64,
}

impl Wire {
    /// `None` (with the reason) when tcpdump is absent or cannot capture.
    fn start(port: u16, label: &str) -> Result<Wire, String> {
        use std::io::BufRead;
        let out = std::env::temp_dir().join(format!(
            "skylapse-bench-wire-{label}-{}.txt",
            std::process::id()
        ));
        // The host's own timestamps: lo has no adapter clock (`-j adapter_unsynced` is
        // refused there and falls back to this anyway).
        let mut child = std::process::Command::new("tcpdump")
            // -S: absolute sequence numbers (relative ones start wherever tcpdump first saw the
            // connection, which broke the retransmission check).
            .args([
                "-i",
                "lo",
                "--time-stamp-precision=nano",
                "-n",
                "-S",
                "-tt",
                "-l",
            ])
            .arg(format!("tcp dst port {port}"))
            .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("tcpdump not run ({e})"))?;
        // Ready once it says "listening on".
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.wait();
                return Err("tcpdump exited before capturing (not permitted?)".into());
            }
            if line.starts_with("listening on") {
                break;
            }
        }
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        Ok(Wire {
            child,
            out,
            anchor: (SystemTime::now(), Instant::now()),
            end: None,
        })
    }

    /// Stops the capture (SIGINT, so it flushes) and returns the data segments.
    fn stop(&mut self) -> Vec<Segment> {
        // Let the last segments reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: a signal to the child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let _ = self.child.wait();
        self.end = Some((SystemTime::now(), Instant::now()));
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        if std::env::var_os("BENCH_WIRE_KEEP").is_some() {
            println!("tcpdump's output kept: {}", self.out.display());
        } else {
            let _ = std::fs::remove_file(&self.out);
        }
        text.lines().filter_map(parse_segment).collect()
    }

    /// Realtime minus monotonic at the stop, less the same at the start (ms).
    fn drift_ms(&self) -> f64 {
        let Some((wall, mono)) = self.end else {
            return 0.0;
        };
        let wall_ms = wall
            .duration_since(self.anchor.0)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        wall_ms - ms(mono, self.anchor.1)
    }

    /// A tcpdump stamp on the monotonic clock (the drift spread linearly over the capture).
    fn instant(&self, at: SystemTime) -> Instant {
        let since = match at.duration_since(self.anchor.0) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        let span = self
            .end
            .map(|(w, _)| {
                w.duration_since(self.anchor.0)
                    .unwrap_or_default()
                    .as_secs_f64()
            })
            .unwrap_or(0.0);
        let correction = if span > 0.0 {
            self.drift_ms() / 1000.0 * since / span
        } else {
            0.0
        };
        let mono = since - correction;
        if mono >= 0.0 {
            self.anchor.1 + Duration::from_secs_f64(mono)
        } else {
            self.anchor.1 - Duration::from_secs_f64(-mono)
        }
    }
}

/// `1765130000.123456789 IP 127.0.0.1.40312 > 127.0.0.1.8443: Flags [P.], …, length 230`
/// → the segment, if it carries data.
fn parse_segment(line: &str) -> Option<Segment> {
    let mut words = line.split_whitespace();
    let (secs, nanos) = words.next()?.split_once('.')?;
    let at = std::time::UNIX_EPOCH + Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    let src = words.nth(1)?;
    let src_port = src.rsplit_once('.')?.1.parse().ok()?;
    let len: usize = line.rsplit_once("length ")?.1.trim().parse().ok()?;
    let seq = line.split_once(" seq ")?.1;
    let seq_end = seq.split_once(':')?.1.split(',').next()?.parse().ok()?;
    (len > 0).then_some(Segment {
        at,
        src_port,
        seq_end,
    })
}

/// Groups one connection's segments into requests: a gap over 20 ms starts a new one (a
/// request's records leave within microseconds; shots are 250 ms apart). First and last
/// segment of each, retransmissions left out (loopback sees a few spurious ones when the
/// receiver is slow to ACK); and how many were left out.
fn requests_on_wire(segs: &[&Segment]) -> (Vec<(SystemTime, SystemTime)>, usize) {
    let mut out: Vec<(SystemTime, SystemTime)> = Vec::new();
    let mut seen = 0;
    let mut retransmitted = 0;
    for s in segs {
        if s.seq_end <= seen {
            retransmitted += 1;
            continue;
        }
        seen = s.seq_end;
        match out.last_mut() {
            Some((_, last))
                if s.at.duration_since(*last).unwrap_or_default() < Duration::from_millis(20) =>
            {
                *last = s.at
            }
            _ => out.push((s.at, s.at)),
        }
    }
    (out, retransmitted)
}

/// Signed `a - b` in ms.
fn ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -(b - a).as_secs_f64() * 1000.0
    }
}

/// `uptime`'s load averages, printed with every figure.
fn load_average() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<&str> = l.split_whitespace().take(3).collect();
    format!("load {}", l.join(" "))
}

/// How many of `v` exceed 0.1, 0.25, 0.5 and 1 ms.
fn over(v: &[f64]) -> String {
    let n = |t: f64| v.iter().filter(|x| x.abs() > t).count();
    format!(
        "> 0.1 ms: {}, > 0.25: {}, > 0.5: {}, > 1: {}",
        n(0.1),
        n(0.25),
        n(0.5),
        n(1.0)
    )
}

/// The host's steal time so far (ms, all CPUs): time this VM's CPUs were runnable but not run.
fn steal_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    let steal: f64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    Some(steal * 10.0) // USER_HZ = 100
}

fn fmt_stats(s: &Stats) -> String {
    format!("p50 {:.3}  p99 {:.3}  max {:.3}", s.p50, s.p99, s.max)
}

fn timelapse(hold: Duration, label: &str) {
    let shots = env_u64("BENCH_SHOTS", 300);
    let interval_ms = env_u64("BENCH_INTERVAL_MS", 250);
    let clients = env_u64("BENCH_CLIENTS", 10) as usize;
    let interval = Duration::from_millis(interval_ms);
    let product = Product::start(&format!("ivt-{}", hold.as_millis()), sim_config(hold));
    let sim_prio = maybe_sim_realtime();
    product.sim().set_max_connections(Some(2)); // an R50 breaks with more
    product.wait_camera_connected(Duration::from_secs(20));
    let addr = product.addr;
    let https_port = product.sim().https_addr().expect("simulator HTTPS").port();
    let press_lines = press_log();
    if let Some(l) = press_lines {
        lock(&l.lines).clear();
    }
    let wire = Wire::start(https_port, &format!("{}", hold.as_millis()));
    let received = Arc::new(AtomicU64::new(0));

    // The clients live on their own thread (they stand for phones, not for the Pi).
    let (done_tx, done_rx) = async_channel::bounded::<Result<Value, String>>(1);
    let client_thread = {
        let received = received.clone();
        std::thread::Builder::new()
            .name("bench-clients".into())
            .spawn(move || {
                let ex = smol::LocalExecutor::new();
                block_on(ex.run(async {
                    let mut readers = Vec::new();
                    for _ in 1..clients {
                        let mut ws = connect(addr).await;
                        let received = received.clone();
                        readers.push(ex.spawn(async move {
                            while next_json(&mut ws).await.is_some() {
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                        }));
                    }
                    // Client 0 starts the session over the WebSocket and waits for its end.
                    let mut ws = connect(addr).await;
                    let cmd = json!({
                        "type": "start_intervalometer",
                        "id": "bench-start",
                        "data": {
                            "interval": interval_ms as f64 / 1000.0,
                            "stopCondition": "stop-after",
                            "shots": shots,
                        }
                    });
                    ws.send(Message::text(cmd.to_string())).await.unwrap();
                    let mut started = false;
                    let outcome = loop {
                        let Some(v) = next_json(&mut ws).await else {
                            break Err("WebSocket closed".to_string());
                        };
                        received.fetch_add(1, Ordering::Relaxed);
                        if v["id"] == "bench-start" {
                            if v["type"] == "error" {
                                break Err(format!("start refused: {v}"));
                            }
                            started = true;
                        }
                        let ended = v["type"] == "timelapse_event"
                            && matches!(
                                v["eventType"].as_str(),
                                Some("session_completed" | "session_stopped" | "session_error")
                            );
                        if started && ended {
                            break Ok(v);
                        }
                    };
                    let _ = done_tx.send(outcome).await;
                    drop(readers);
                }));
            })
            .unwrap()
    };
    let limit = Duration::from_millis(shots * interval_ms + 30_000);
    let t0 = Instant::now();
    let steal0 = steal_ms();
    let outcome = block_on(or(async { done_rx.recv().await.ok() }, async {
        Timer::after(limit).await;
        None
    }));
    let ended = match outcome {
        Some(Ok(v)) => v,
        Some(Err(e)) => panic!("{label}: {e}"),
        None => panic!("{label}: session did not end within {limit:?}"),
    };
    let elapsed = t0.elapsed();
    client_thread.join().unwrap();

    let log = product.sim().requests();
    let presses: Vec<_> = log
        .iter()
        .filter(|q| q.method == "POST" && q.path.ends_with("shooting/control/shutterbutton"))
        .collect();
    assert!(
        presses.len() > 1,
        "{label}: no shutter requests reached the simulator"
    );
    // The service's own account of each press (`None` when the capture failed).
    let logged = press_lines
        .map(|l| presses_logged(&lock(&l.lines)))
        .unwrap_or_default();
    let service = (logged.len() == presses.len()).then_some(&logged);
    // Each press's slot: from its due instant when known (a skipped slot then does not shift
    // every later shot by one interval), else its index.
    let slots: Vec<u64> = match service {
        Some(p) => p
            .iter()
            .map(|q| (ms(q.due, p[0].due) / interval.as_secs_f64() / 1000.0).round() as u64)
            .collect(),
        None => (0..presses.len() as u64).collect(),
    };
    let body_times: Vec<Instant> = presses.iter().map(|q| q.body_at).collect();
    let head_times: Vec<Instant> = presses.iter().map(|q| q.head_at).collect();
    let errs = errors(&body_times, &slots, interval);
    let s = stats(&errs);
    let h = stats(&errors(&head_times, &slots, interval));
    // Anything else the camera was asked while the session ran (health checks, polls…).
    let others = log.len() - presses.len();
    let stats_block = &ended["data"]["stats"];
    println!(
        "{label}: {} shutter requests at {interval_ms} ms ({} taken, {} successful, {} skipped by the service; {clients} WebSocket clients received {} frames; sim thread {sim_prio}; {:.1} s; {})",
        presses.len(),
        stats_block["shotsTaken"],
        stats_block["shotsSuccessful"],
        stats_block["shotsSkipped"],
        received.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        load_average(),
    );
    if let (Some(a), Some(b)) = (steal0, steal_ms()) {
        println!(
            "{label}: the host stole {:.0} ms of CPU from this VM during the run (/proc/stat)",
            b - a
        );
    }
    println!("{label}: per layer, |error| in ms (p50 / p99 / max over the shots):");

    // (a) The service: the instant the press went to ureq against its due instant.
    match service {
        Some(p) => {
            let late: Vec<f64> = p.iter().map(|p| ms(p.sent, p.due)).collect();
            let dues: Vec<Instant> = p.iter().map(|p| p.due).collect();
            let grid_drift = stats(&errors(&dues, &slots, interval)).max;
            println!(
                "{label}:   service, sent vs due           {}  (due instants off their own grid by ≤ {grid_drift:.6}, {} slots without a press; {})",
                fmt_stats(&stats(&late)),
                slots[slots.len() - 1] + 1 - slots.len() as u64,
                over(&late)
            );
            let woke: Vec<f64> = p.iter().filter_map(|p| p.woke_late).collect();
            if !woke.is_empty() {
                println!(
                    "{label}:     its sleep's wake-up, late by {}  ({} of {} presses slept; the spin margin is 2 ms; {})",
                    fmt_stats(&stats(&woke)),
                    woke.len(),
                    p.len(),
                    over(&woke)
                );
            }
        }
        None => println!(
            "{label}:   service: {} press lines for {} presses (another logger installed?): column skipped",
            logged.len(),
            presses.len()
        ),
    }

    // (b) The wire: tcpdump's kernel timestamps of the control connection's segments.
    let control_peer = presses[0].peer;
    let mut wire_body: Option<Vec<Instant>> = None;
    match wire {
        Err(why) => println!("{label}:   wire: {why}: column skipped"),
        Ok(mut wire) => {
            let anchor = wire.anchor.1;
            let segs = wire.stop();
            let control: Vec<&Segment> = segs
                .iter()
                .filter(|g| g.src_port == control_peer.port())
                .collect();
            let (on_wire, retransmitted) = requests_on_wire(&control);
            // Every request the camera logged on that connection during the capture.
            let logged_there: Vec<_> = log
                .iter()
                .filter(|q| q.peer == control_peer && q.head_at > anchor)
                .collect();
            let only_presses = logged_there
                .iter()
                .all(|q| q.path.ends_with("shutterbutton"));
            if on_wire.len() != logged_there.len() || !only_presses {
                println!(
                    "{label}:   wire: {} requests on the control connection, the camera logged {} there ({} presses): column skipped",
                    on_wire.len(),
                    logged_there.len(),
                    presses.len()
                );
            } else {
                let first: Vec<Instant> = on_wire.iter().map(|(a, _)| wire.instant(*a)).collect();
                let last: Vec<Instant> = on_wire.iter().map(|(_, b)| wire.instant(*b)).collect();
                println!(
                    "{label}:   wire, request's last segment  {}  (vs first + slot × interval; the control connection carried the {} presses and nothing else, {retransmitted} retransmitted segments left out; {} segments on the other connection; realtime − monotonic drifted {:+.3} ms over the capture)",
                    fmt_stats(&stats(&errors(&last, &slots, interval))),
                    on_wire.len(),
                    segs.len() - control.len(),
                    wire.drift_ms(),
                );
                println!(
                    "{label}:   wire, request's first segment {}",
                    fmt_stats(&stats(&errors(&first, &slots, interval)))
                );
                if let Some(p) = service {
                    let out: Vec<f64> = p.iter().zip(&first).map(|(p, w)| ms(*w, p.sent)).collect();
                    let whole: Vec<f64> = p.iter().zip(&last).map(|(p, w)| ms(*w, p.due)).collect();
                    println!(
                        "{label}:     service sent → first segment {}  (ureq + rustls + write; clocks placed by one realtime/monotonic reading)",
                        fmt_stats(&stats(&out))
                    );
                    println!(
                        "{label}:     due → last segment           {}",
                        fmt_stats(&stats(&whole))
                    );
                }
                wire_body = Some(last);
            }
        }
    }

    // (c) The simulator: the kernel's receive stamp on its socket, and its own reading
    // after its thread woke and parsed the request.
    let rx: Option<Vec<Instant>> = presses.iter().map(|q| q.rx_at).collect();
    match &rx {
        Some(rx) => println!(
            "{label}:   simulator, kernel receive     {}  (SO_TIMESTAMPNS on its socket, vs first + slot × interval: the camera's receive instant, issue 13's figure)",
            fmt_stats(&stats(&errors(rx, &slots, interval)))
        ),
        None => println!("{label}:   simulator, kernel receive: no SO_TIMESTAMPNS stamps"),
    }
    println!(
        "{label}:   simulator, request read       {}  last {:.3}  (request fully received, after its thread woke; the pre-issue-13 figure)",
        fmt_stats(&s),
        s.last
    );
    println!(
        "{label}:   simulator, head read          {}  ({others} other camera requests; service's own send-vs-due from the session, ms: {})",
        fmt_stats(&h),
        stats_block["timing"]
    );
    if let (Some(rx), Some(p)) = (&rx, service) {
        let out: Vec<f64> = p.iter().zip(rx).map(|(p, r)| ms(*r, p.sent)).collect();
        let whole: Vec<f64> = p.iter().zip(rx).map(|(p, r)| ms(*r, p.due)).collect();
        println!(
            "{label}:     service sent → kernel receive {}  (ureq + rustls + write + loopback)",
            fmt_stats(&stats(&out))
        );
        println!(
            "{label}:     due → kernel receive         {}  (the whole service path; {})",
            fmt_stats(&stats(&whole)),
            over(&whole)
        );
    }
    if let Some(rx) = &rx {
        let wake: Vec<f64> = presses
            .iter()
            .zip(rx)
            .map(|(q, r)| ms(q.body_at, *r))
            .collect();
        println!(
            "{label}:     kernel receive → read       {}  (the simulator's wake-up: reactor, executor, rustls)",
            fmt_stats(&stats(&wake))
        );
    }
    let explain = |errs: &[f64]| -> String {
        let mut worst: Vec<(usize, f64)> = errs.iter().copied().enumerate().collect();
        worst.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let worst: Vec<String> = worst
            .iter()
            .take(5)
            .map(|&(n, e)| {
                let mut w = format!("#{n} {e:+.3}");
                if let Some(p) = service {
                    w += &format!(
                        " (queued {:.3} ahead, woke {:+.3}",
                        p[n].queued_ahead.unwrap_or(f64::NAN),
                        p[n].woke_late.unwrap_or(f64::NAN)
                    );
                    w += &format!(", sent {:+.3}", ms(p[n].sent, p[n].due));
                    if let Some(last) = &wire_body {
                        w += &format!(", wire {:+.3}", ms(last[n], p[n].due));
                    }
                    if let Some(rx) = &rx {
                        w += &format!(", rx {:+.3}", ms(rx[n], p[n].due));
                    }
                    w += &format!(", read {:+.3} after due", ms(presses[n].body_at, p[n].due));
                    // A shot handed over late: when the camera answered the one before (the
                    // session hands the next shot over after that reply at this interval).
                    if let Some(prev) = n.checked_sub(1).and_then(|m| presses[m].responded_at) {
                        w += &format!("; previous reply {:+.3}", ms(prev, p[n].due));
                    }
                    w += ")";
                }
                w
            })
            .collect();
        worst.join(", ")
    };
    if let Some(rx) = &rx {
        println!(
            "{label}:   worst shots by kernel receive (ms vs grid): {}",
            explain(&errors(rx, &slots, interval))
        );
    }
    println!(
        "{label}:   worst shots by request read (ms vs grid): {}",
        explain(&errs)
    );
    drop(product);
}

#[test]
#[ignore]
fn e2e_timelapse_polls_answered_promptly() {
    timelapse(Duration::from_millis(20), "e2e, polls answered in 20 ms");
}

#[test]
#[ignore]
fn e2e_timelapse_long_polls_held() {
    timelapse(Duration::from_secs(30), "e2e, long polls held 30 s");
}

/// A WebSocket client that reports every change of `camera.connected`/`camera.state` from
/// the `status_update`s it receives, with the instant it read them.
fn camera_watcher(addr: SocketAddr) -> async_channel::Receiver<(Instant, bool, String)> {
    let (tx, rx) = async_channel::unbounded();
    std::thread::Builder::new()
        .name("bench-watcher".into())
        .spawn(move || {
            block_on(async {
                let mut ws = connect(addr).await;
                let mut last: Option<(bool, String)> = None;
                while let Some(v) = next_json(&mut ws).await {
                    if v["type"] != "status_update" {
                        continue;
                    }
                    let cam = &v["data"]["camera"];
                    let now = (
                        cam["connected"].as_bool().unwrap_or(false),
                        cam["state"].as_str().unwrap_or("").to_string(),
                    );
                    if last.as_ref() != Some(&now) {
                        last = Some(now.clone());
                        if tx.send((Instant::now(), now.0, now.1)).await.is_err() {
                            return;
                        }
                    }
                }
            })
        })
        .unwrap();
    rx
}

/// Waits for the watcher to report `connected == want`; returns when it saw it.
fn wait_camera(
    rx: &async_channel::Receiver<(Instant, bool, String)>,
    want: bool,
    patience: Duration,
    t0: Instant,
) -> Instant {
    block_on(or(
        async {
            while let Ok((at, connected, state)) = rx.recv().await {
                println!(
                    "  +{:7.3} s  camera block: connected {connected} ({state})",
                    (at - t0).as_secs_f64()
                );
                if connected == want {
                    return Some(at);
                }
            }
            None
        },
        async {
            Timer::after(patience).await;
            None
        },
    ))
    .unwrap_or_else(|| panic!("camera block never said connected == {want} within {patience:?}"))
}

/// Takes the camera off the network and waits until a client sees the link lost. A shot
/// attempt (what `take_photo` does) finds the camera gone at once; otherwise three missed
/// 10 s health checks would.
fn take_camera_down(
    p: &Product,
    rx: &async_channel::Receiver<(Instant, bool, String)>,
    t0: Instant,
) -> Instant {
    p.sim().set_offline(OfflineMode::Refuse);
    let cam = p.running().camera.clone();
    let shot = block_on(cam.shoot_at(Instant::now(), skylapse::camera::ShotRequest::timed(false)));
    assert!(
        shot.result.is_err(),
        "a shot on an offline camera succeeded"
    );
    wait_camera(rx, false, Duration::from_secs(60), t0)
}

#[test]
#[ignore]
fn e2e_camera_return_after_outage() {
    let mut cfg = sim_config(Duration::from_secs(30));
    cfg.notify_interval = None; // NOTIFY only when the benchmark sends one
    let p = Product::start("outage", cfg);
    let t0 = Instant::now();
    p.wait_camera_connected(Duration::from_secs(20));
    let rx = camera_watcher(p.addr);
    wait_camera(&rx, true, Duration::from_secs(10), t0);

    // With SSDP: down long enough for the first retry (5 s step) to fail, so the link waits
    // on a 10 s step; then back online with a NOTIFY alive.
    println!("outage 1: camera refuses connections; back online with an SSDP NOTIFY alive");
    let lost = take_camera_down(&p, &rx, t0);
    block_on(Timer::at(lost + Duration::from_secs(7)));
    let online = Instant::now();
    p.sim().set_online().unwrap();
    p.sim().send_notify(true);
    let back = wait_camera(&rx, true, Duration::from_secs(70), t0);
    println!(
        "outage 1: camera block connected {:.1} ms after online + NOTIFY alive (goal: < 1 s; without the alive the next retry was ~{:.1} s away)",
        (back - online).as_secs_f64() * 1000.0,
        (lost + Duration::from_secs(15)).saturating_duration_since(online).as_secs_f64()
    );

    // Without SSDP: back online at once, silently; the link must return at its first
    // scheduled retry (backoff step 0: 5 s ±10 % after the loss).
    println!("outage 2: camera refuses connections; back online silently (no NOTIFY)");
    let lost = take_camera_down(&p, &rx, t0);
    let online = Instant::now();
    p.sim().set_online().unwrap();
    let back = wait_camera(&rx, true, Duration::from_secs(70), t0);
    println!(
        "outage 2: camera block connected {:.3} s after online, {:.3} s after the loss was shown (goal: within one backoff step, 5 s ±10 %; discovery's M-SEARCH may find it sooner)",
        (back - online).as_secs_f64(),
        (back - lost).as_secs_f64()
    );

    // No SSDP at all (the camera ignores M-SEARCH too): only the backoff timer brings it back.
    println!("outage 3: as 2, and the camera ignores M-SEARCH: the backoff timer alone");
    p.sim().ssdp_knobs(|k| {
        k.drop_searches = u32::MAX;
        k.silent_notify = true;
    });
    let lost = take_camera_down(&p, &rx, t0);
    let online = Instant::now();
    p.sim().set_online().unwrap();
    let back = wait_camera(&rx, true, Duration::from_secs(70), t0);
    println!(
        "outage 3: camera block connected {:.3} s after online, {:.3} s after the loss was shown (goal: within one backoff step, 5 s ±10 %)",
        (back - online).as_secs_f64(),
        (back - lost).as_secs_f64()
    );
}
