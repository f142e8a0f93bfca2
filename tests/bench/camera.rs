//! Shutter request latency on a warm connection (run:
//! `cargo test --release --test bench -- --ignored --nocapture camera::`).
//!
//! latency = the simulator's receive time of the complete `shutterbutton` request − `due`, the
//! instant the service decided to shoot. `shoot_at(due)` is called 300 ms ahead, as the
//! intervalometer does; health checks and the event long-poll run as in production.
//! Goal: p99 < 2 ms on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skylapse::app::{Publisher, StatusBoard};
use skylapse::backoff::Backoff;
use skylapse::camera::ccapi::Timeouts;
use skylapse::camera::tls::Trust;
use skylapse::camera::{CameraNotice, DriverOptions, ShotRequest};
use skylapse::clock::SystemClock;
use skylapse_sim::{ShutterReply, SimConfig, SimHandle};

const SHOTS: usize = 200;
const INTERVAL: Duration = Duration::from_millis(350);
const AHEAD: Duration = Duration::from_millis(300);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<38} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms   (n={})",
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        v.len()
    );
}

fn run(label: &str, https: bool) {
    let sim = SimHandle::start(SimConfig::default()).expect("simulator");
    // Fast card writes and an immediate reply: the camera is ready again well within the
    // interval, so every press is a real shot.
    sim.set_timing(|t| {
        t.write_bytes_per_sec = 2_000_000_000;
        t.shutter_reply = ShutterReply::Immediate;
        t.settings_cooldown = Duration::ZERO;
    });
    let dir = std::env::temp_dir().join(format!("skylapse-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (publisher, _rx) = Publisher::channel();
    let status = StatusBoard::new(publisher.clone());
    let opts = DriverOptions {
        data_dir: dir.clone(),
        timeouts: Timeouts::default(),
        trust: Trust::ephemeral(false),
        backoff: Backoff::CAMERA,
        rng_seed: Some(1),
        initial_target: None,
    };
    let skylapse::camera::Camera {
        service: _service,
        control,
        link,
    } = skylapse::camera::start(opts, Arc::new(SystemClock), status, publisher);
    let notices = control.subscribe();
    let url = if https {
        sim.access_url().expect("https url")
    } else {
        format!("http://{}/ccapi", sim.http_addr().expect("http"))
    };
    link.set_target(&url, Some(&sim.udn()));
    futures_lite::future::block_on(async {
        loop {
            if let CameraNotice::Connected { .. } = notices.recv().await.expect("notice") {
                break;
            }
        }
    });
    sim.clear_requests();
    let start = Instant::now() + Duration::from_millis(500);
    let mut dues = Vec::with_capacity(SHOTS);
    let mut client_send = Vec::new();
    let mut round_trip = Vec::new();
    let mut failures = 0;
    futures_lite::future::block_on(async {
        for n in 0..SHOTS {
            let due = start + INTERVAL * n as u32;
            async_io::Timer::at(due - AHEAD).await;
            let o = control.shoot_at(due, ShotRequest::timed(false)).await;
            if let Err(e) = &o.result {
                if failures == 0 {
                    println!("first failure: shot {n}: {e}");
                }
                failures += 1;
            }
            dues.push(due);
            client_send.push(o.sent_at.saturating_duration_since(due));
            round_trip.push(o.replied_at.saturating_duration_since(o.sent_at));
        }
    });
    let presses: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/shooting/control/shutterbutton"))
        .collect();
    assert_eq!(presses.len(), SHOTS, "one logged press per shot");
    let latency: Vec<Duration> = presses
        .iter()
        .zip(&dues)
        .map(|(r, due)| r.body_at.saturating_duration_since(*due))
        .collect();
    let early = presses
        .iter()
        .zip(&dues)
        .filter(|(r, due)| r.body_at < **due)
        .count();
    println!("--- {label}: {SHOTS} shots, {INTERVAL:?} apart, shoot_at {AHEAD:?} ahead; {failures} failed, {early} received before due");
    summary("due → request received by camera", latency);
    summary("due → first byte handed to socket", client_send);
    summary("request sent → reply read", round_trip);
    link.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore]
fn shutter_latency_on_a_warm_connection() {
    run("HTTPS (TLS 1.3, pinned)", true);
    run("HTTP", false);
}
