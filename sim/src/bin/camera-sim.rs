//! `camera-sim`: the CCAPI camera simulator as a standalone process (CCAPI.md §5).
//!
//! Prints its addresses, then runs until SIGINT/SIGTERM (or stdin closes with `--stdin-exit`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use skylapse_sim::{Profile, Scheme, SimConfig, SimHandle, SkyMode};

const USAGE: &str = "usage: camera-sim [options]
  --profile r50|legacy_ver100|r6m3      camera body (default r50)
  --https ADDR | --no-https             CCAPI over HTTPS (default 127.0.0.1:0)
  --http ADDR | --no-http               CCAPI over HTTP (default 127.0.0.1:0)
  --description ADDR                    UPnP description server (default 127.0.0.1:0)
  --ssdp ADDR | --no-ssdp               unicast SSDP socket (default 127.0.0.1:0)
  --multicast                           also join 239.255.255.250:1900
  --multicast-group ADDR:PORT           join this group/port instead (implies --multicast)
  --notify ADDR                         send NOTIFY to ADDR (repeatable)
  --notify-interval-ms N                periodic NOTIFY alive
  --control ADDR                        /_sim control plane (default 127.0.0.1:0)
  --advertise https|http                scheme in X_accessURL (default https)
  --seed N                              identity and fault RNG seed (default 1)
  --tz-offset-min N                     camera standard offset from UTC (default 0)
  --dst                                 camera DST flag on
  --short-poll-ms N / --long-poll-ms N  event polling holds (default 10000 / 30000)
  --sky night|sun                       scene brightness: a dark night (default) or the sun's
  --lat DEG / --lon DEG                 the scene's location for --sky sun (default 47 / 8)
  --scene-ev EV                         a fixed scene EV instead
  --true-focus N                        focus position where stars are sharpest (0..1000)
  --stdin-exit                          exit when stdin closes";

fn main() -> ExitCode {
    env_logger::init();
    let mut cfg = SimConfig {
        control_addr: Some("127.0.0.1:0".parse().expect("literal address")),
        ..SimConfig::default()
    };
    let mut stdin_exit = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<String, String> {
            args.next().ok_or_else(|| format!("{name} needs a value"))
        };
        let r: Result<(), String> = (|| {
            let addr = |s: String| -> Result<SocketAddr, String> {
                s.parse().map_err(|_| format!("bad address {s}"))
            };
            let num = |s: String| -> Result<u64, String> {
                s.parse().map_err(|_| format!("bad number {s}"))
            };
            let float = |s: String, lo: f64, hi: f64| -> Result<f64, String> {
                s.parse::<f64>()
                    .ok()
                    .filter(|x| (lo..=hi).contains(x))
                    .ok_or_else(|| format!("bad number {s} (expected {lo}..{hi})"))
            };
            match a.as_str() {
                "--profile" => {
                    let v = value(&a)?;
                    cfg.profile = Profile::parse(&v).ok_or(format!("unknown profile {v}"))?;
                }
                "--https" => cfg.https_addr = Some(addr(value(&a)?)?),
                "--no-https" => cfg.https_addr = None,
                "--http" => cfg.http_addr = Some(addr(value(&a)?)?),
                "--no-http" => cfg.http_addr = None,
                "--description" => cfg.description_addr = addr(value(&a)?)?,
                "--ssdp" => cfg.ssdp_addr = Some(addr(value(&a)?)?),
                "--no-ssdp" => cfg.ssdp_addr = None,
                "--multicast" => cfg.ssdp_multicast = true,
                "--multicast-group" => {
                    let v = value(&a)?;
                    cfg.ssdp_multicast = true;
                    cfg.ssdp_multicast_addr = v.parse().map_err(|_| format!("bad group {v}"))?;
                }
                "--notify" => cfg.notify_targets.push(addr(value(&a)?)?),
                "--notify-interval-ms" => {
                    cfg.notify_interval = Some(Duration::from_millis(num(value(&a)?)?))
                }
                "--control" => cfg.control_addr = Some(addr(value(&a)?)?),
                "--advertise" => {
                    cfg.advertise = match value(&a)?.as_str() {
                        "https" => Scheme::Https,
                        "http" => Scheme::Http,
                        o => return Err(format!("bad scheme {o}")),
                    }
                }
                "--seed" => cfg.seed = num(value(&a)?)?,
                "--tz-offset-min" => {
                    let v = value(&a)?;
                    cfg.tz_offset_min = v.parse().map_err(|_| format!("bad offset {v}"))?;
                }
                "--dst" => cfg.dst = true,
                "--short-poll-ms" => {
                    cfg.timing.short_poll = Duration::from_millis(num(value(&a)?)?)
                }
                "--long-poll-ms" => cfg.timing.long_poll = Duration::from_millis(num(value(&a)?)?),
                "--sky" => {
                    let v = value(&a)?;
                    cfg.sky.mode = SkyMode::parse(&v).ok_or(format!("unknown sky {v}"))?;
                }
                "--lat" => cfg.sky.latitude = float(value(&a)?, -90.0, 90.0)?,
                "--lon" => cfg.sky.longitude = float(value(&a)?, -180.0, 180.0)?,
                "--scene-ev" => cfg.sky.scene_ev = Some(float(value(&a)?, -10.0, 25.0)?),
                "--true-focus" => {
                    cfg.sky.true_focus = Some(float(value(&a)?, 0.0, 1000.0)?.round() as i32)
                }
                "--stdin-exit" => stdin_exit = true,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                o => return Err(format!("unknown option {o}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("camera-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let sim = match SimHandle::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("camera-sim: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let show = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    println!("profile      {}", sim.profile().name());
    println!("udn          {}", sim.udn());
    println!("access_url   {}", sim.access_url().unwrap_or_default());
    println!("https        {}", show(sim.https_addr()));
    println!("http         {}", show(sim.http_addr()));
    println!("description  {}", sim.description_url());
    println!("ssdp         {}", show(sim.ssdp_addr()));
    println!("control      {}", show(sim.control_addr()));

    let (tx, rx) = std::sync::mpsc::channel::<()>();
    if stdin_exit {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = tx.send(());
        });
    }
    std::thread::spawn(move || {
        let signals =
            async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term]);
        if let Ok(mut s) = signals {
            use futures_lite::StreamExt;
            smol::block_on(async { s.next().await });
            let _ = tx.send(());
        }
    });
    let _ = rx.recv();
    sim.shutdown();
    ExitCode::SUCCESS
}
