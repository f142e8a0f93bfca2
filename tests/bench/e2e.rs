//! End-to-end benchmarks through the whole product, in-process: `services::start` (camera
//! driver, discovery, intervalometer, Wi-Fi, time sync, power) + the web `Server`, with the
//! camera simulator in-process as `--demo` runs it, and real WebSocket clients on loopback.
//!
//! 1. Timelapse timing (issue 4): 10 WebSocket clients connected and reading (status
//!    broadcasts running), a session of 300 shots at 250 ms started over a WebSocket command;
//!    from the simulator's request log (receive time of each shutter POST), the error of each
//!    shot against `first + n × interval`: p50, p99, max and the last shot's error. Once with
//!    the simulator answering event polls promptly (20 ms hold), once holding them 30 s.
//! 2. Camera return after an outage (issue 3): simulator offline → online, with and without
//!    an SSDP NOTIFY alive; time until a WebSocket client sees `camera.connected: true`.
//!
//! cargo test --release --test bench -- --ignored --nocapture --test-threads 1 e2e::
//!
//! Reading the figures: the simulator's receive time includes its own wake-up (its thread and
//! the async-io reactor it shares with the service, on the same CPUs). The service's own
//! send-vs-due (printed too) stays in microseconds; on a loaded machine the tail of the
//! receive-time error is the receiving side's scheduling (`perf sched latency` shows it as
//! camera-sim / async-io wake-up delay), not the shot path.
//!
//! BENCH_SHOTS / BENCH_INTERVAL_MS override 300 shots at 250 ms (an interval must exceed the exposure + 0.2 s the camera needs, so 200 ms is refused). BENCH_SIM_RT=1 runs the
//! simulator's thread SCHED_FIFO (if permitted), so that on a loaded machine the stand-in
//! camera, which on the field is a device with its own CPU, is not the one that is late.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::future::{block_on, or};
use futures_lite::StreamExt;
use serde_json::{json, Value};

use skylapse::app::{App, Publisher};
use skylapse::camera::CameraNotice;
use skylapse::clock::{SharedClock, SystemClock};
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

/// Errors (ms) of `times` against `first + n × interval`.
fn errors(times: &[Instant], interval: Duration) -> Vec<f64> {
    let first = times[0];
    times
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let due = first + interval * n as u32;
            if *t >= due {
                (*t - due).as_secs_f64() * 1000.0
            } else {
                -(due - *t).as_secs_f64() * 1000.0
            }
        })
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
    let body_times: Vec<Instant> = presses.iter().map(|q| q.body_at).collect();
    let head_times: Vec<Instant> = presses.iter().map(|q| q.head_at).collect();
    let errs = errors(&body_times, interval);
    let s = stats(&errs);
    let h = stats(&errors(&head_times, interval));
    // Anything else the camera was asked while the session ran (health checks, polls…).
    let others = log.len() - presses.len();
    let stats_block = &ended["data"]["stats"];
    println!(
        "{label}: {} shutter requests at {interval_ms} ms ({} taken, {} successful, {} skipped by the service; {clients} WebSocket clients received {} frames; sim thread {sim_prio}; {:.1} s)",
        presses.len(),
        stats_block["shotsTaken"],
        stats_block["shotsSuccessful"],
        stats_block["shotsSkipped"],
        received.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    println!(
        "{label}: error vs first + n × interval, request fully received (ms): p50 {:.3}  p99 {:.3}  max {:.3}  last {:.3}",
        s.p50, s.p99, s.max, s.last
    );
    println!(
        "{label}:   (head received: p50 {:.3}  p99 {:.3}  max {:.3}  last {:.3}; {others} other camera requests; service's own send-vs-due {})",
        h.p50, h.p99, h.max, h.last, stats_block["timing"]
    );
    let mut worst: Vec<(usize, f64)> = errs.iter().copied().enumerate().collect();
    worst.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let worst: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(n, e)| format!("#{n} {e:+.3}"))
        .collect();
    println!("{label}:   worst shots (ms): {}", worst.join(", "));
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
