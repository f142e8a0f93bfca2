//! Figures for the web server, measured on the real binary (run with the release profile):
//!
//! ```text
//! cargo test --release --test bench -- --ignored --nocapture web::
//! BENCH_IDLE_SECS=60 cargo test --release --test bench -- --ignored --nocapture web::
//! SKYLAPSE_BIN=target/release/skylapse cargo test --test bench -- --ignored --nocapture web::
//! ```
//!
//! Prints: start → first 200 from /health, welcome latency after the upgrade, JSON ping→pong
//! round trips (p50/p99/max over 1,000), idle RSS with one client, idle context switches per
//! second of the whole process (all threads) with one client and no camera.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::Message;
use futures_lite::future::{block_on, or};
use futures_lite::StreamExt;

struct Service {
    child: Child,
    addr: SocketAddr,
    spawned: Instant,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn() -> Service {
    let data = std::env::temp_dir().join(format!("skylapse-bench-{}", std::process::id()));
    let spawned = Instant::now();
    // SKYLAPSE_BIN runs a given binary (e.g. the release build from a debug test harness).
    let bin =
        std::env::var("SKYLAPSE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_skylapse").into());
    let mut child = Command::new(bin)
        .args(["--no-discovery", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
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
        spawned,
    }
}

fn health(addr: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    if tcp
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    tcp.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// (threads, voluntary + nonvoluntary context switches summed over every thread).
fn context_switches(pid: u32) -> (usize, u64) {
    let mut threads = 0;
    let mut total = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let status = t.path().join("status");
            let status = status.to_string_lossy();
            threads += 1;
            total += proc_field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
            total += proc_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        }
    }
    (threads, total)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
#[ignore = "benchmark: cargo test --release --test bench -- --ignored --nocapture web::"]
fn web_figures() {
    let svc = spawn();
    while !health(svc.addr) {}
    let start_to_health = svc.spawned.elapsed();
    println!("start → first 200 from /health: {start_to_health:?} (goal < 50 ms)");
    let pid = svc.child.id();

    block_on(async {
        let tcp = Async::<TcpStream>::connect(svc.addr).await.unwrap();
        let (mut ws, _) = async_tungstenite::client_async(format!("ws://{}/ws", svc.addr), tcp)
            .await
            .expect("upgrade");
        let upgraded = Instant::now();
        let welcome = ws.next().await.unwrap().unwrap();
        let welcome_after = upgraded.elapsed();
        assert!(matches!(&welcome, Message::Text(t) if t.as_str().contains("\"welcome\"")));
        println!("welcome after the upgrade: {welcome_after:?} (goal < 5 ms)");

        // Paced under the per-client rate limit (20/s), as a phone would send them.
        let mut rtts = Vec::with_capacity(1000);
        for i in 0..1000 {
            Timer::after(Duration::from_millis(55)).await;
            let t0 = Instant::now();
            ws.send(Message::text(format!("{{\"type\":\"ping\",\"id\":{i}}}")))
                .await
                .unwrap();
            loop {
                // A status_update may arrive in between (its blocks may hold an "error" field).
                if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                    match t.as_str() {
                        t if t.starts_with("{\"type\":\"pong\"")
                            || t.contains("\"type\":\"pong\"") =>
                        {
                            break
                        }
                        t if t.contains("\"type\":\"error\"") => panic!("{t}"),
                        _ => {}
                    }
                }
            }
            rtts.push(t0.elapsed());
        }
        rtts.sort();
        println!(
            "JSON ping→pong over 1,000: p50 {:?}, p99 {:?}, max {:?} (goal p99 < 1 ms)",
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.99),
            rtts[rtts.len() - 1]
        );

        // Settle, then measure idle with this one client connected (it keeps reading, so it
        // answers the server's WebSocket pings like a browser does).
        Timer::after(Duration::from_secs(1)).await;
        let rss = proc_field(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
        println!(
            "idle RSS with one WebSocket client: {:.2} MiB (goal ≤ 6 MiB)",
            rss as f64 / 1024.0
        );
        let secs: u64 = std::env::var("BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        let (threads, before) = context_switches(pid);
        let mut frames = 0u32;
        or(
            async {
                while let Some(Ok(_)) = ws.next().await {
                    frames += 1;
                }
            },
            async {
                Timer::after(Duration::from_secs(secs)).await;
            },
        )
        .await;
        let (_, after) = context_switches(pid);
        let switches = after - before;
        println!(
            "idle over {secs} s, one client, no camera: {switches} context switches \
             ({:.2}/s) across {threads} threads, {frames} frames received (status_update \
             every 10 s)",
            switches as f64 / secs as f64
        );
    });
}
