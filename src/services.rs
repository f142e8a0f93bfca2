//! Wiring: creates every service, connects their seams, and registers them with the
//! coordinator. `main` calls [`start`]; end-to-end tests call it too, so they run the same
//! graph as the product.
//!
//! ```text
//!   camera driver ──CameraControl──▶ intervalometer, time sync
//!        ▲   └──────CameraNotice───▶ discovery (link up/down), time sync (camera connected)
//!        └──CameraProber (link handle)── discovery (SSDP targets, alive nudges)
//!   intervalometer ──session_running──▶ Wi-Fi policy;  ──shot_in_flight──▶ clock-step gate
//!   time sync (clock stepped) ──wall_clock_stepped──▶ intervalometer (stop-at re-evaluated)
//!   Wi-Fi ──AddressesChanged──▶ camera link retry + discovery search
//!   status board (camera battery, storage, session) ──▶ power estimate of shots/time left
//! ```
//!
//! In `--demo` the camera simulator runs in-process on loopback: discovery finds it by SSDP
//! (unicast to its socket), the link connects over HTTPS, and time sync never steps the real
//! clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::camera::tls::Trust;
use crate::camera::CameraControl;
use crate::camera::{CameraLinkHandle, DriverOptions};
use crate::discovery::{CameraProber, DiscoveryConfig, DiscoveryService};
use crate::intervalometer::IntervalometerService;
use crate::power::{CardMeter, EstimateInputs, PowerConfig, PowerService};
use crate::protocol::ApiError;
use crate::timesync::systime::{DenyClockSetter, LibcClockSetter, SystemTimeSetter};
use crate::timesync::{TimeSyncConfig, TimeSyncService};
use crate::wifi::{WifiNotice, WifiOptions, WifiService};
#[cfg(feature = "demo")]
use skylapse_sim::{SimConfig, SimHandle};

/// What keeps running after [`start`]: handles the process needs until it exits.
pub struct Running {
    /// The in-process camera simulator (`--demo`).
    #[cfg(feature = "demo")]
    pub sim: Option<SimHandle>,
    pub camera_link: CameraLinkHandle,
    pub camera: Arc<dyn CameraControl>,
    pub intervalometer: Arc<IntervalometerService>,
    pub discovery: Option<Arc<DiscoveryService>>,
    pub wifi: Arc<WifiService>,
    pub timesync: Arc<TimeSyncService>,
    pub power: Arc<PowerService>,
    pub location: Arc<crate::location::LocationStore>,
    _tasks: Vec<smol::Task<()>>,
}

impl Running {
    /// Stops the camera driver's threads and the simulator (the services flush in
    /// `App::shutdown`).
    pub fn stop(self) {
        self.camera_link.shutdown();
        #[cfg(feature = "demo")]
        if let Some(sim) = self.sim {
            sim.shutdown();
        }
    }
}

/// Knobs the process does not take from `Config` (tests and benchmarks).
#[derive(Clone, Default)]
pub struct Options {
    /// Simulator settings for `--demo` (default: loopback, R50, periodic NOTIFY).
    #[cfg(feature = "demo")]
    pub sim: Option<SimConfig>,
    /// Discovery settings (default: production multicast; loopback to the sim in demo).
    pub discovery: Option<DiscoveryConfig>,
    /// Turn discovery off (tests that target the camera directly).
    pub no_discovery: bool,
    /// Wi-Fi settings (default: system bus, interfaces from SKYLAPSE_AP_IFACE /
    /// SKYLAPSE_CLIENT_IFACE).
    pub wifi: Option<WifiOptions>,
    /// Root of the sysfs/procfs tree power reads (default `/`).
    pub power_root: Option<PathBuf>,
    /// Never step the system clock (always true in `--demo`).
    pub no_clock_setting: bool,
    /// What steps the wall clock (tests: a `ManualClockSetter` on the App's `ManualClock`).
    /// Overrides the choice above.
    pub clock_setter: Option<Arc<dyn SystemTimeSetter>>,
}

/// Creates and registers every service on `app`.
pub fn start(app: &mut App, options: Options) -> Result<Running, String> {
    let config = app.config.clone();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {:?}: {e}",
            config.data_dir
        )
    })?;
    let clock = app.clock.clone();

    // The camera simulator (demo) comes first: the link and discovery aim at it.
    #[cfg(not(feature = "demo"))]
    if config.demo {
        return Err("--demo needs the built-in camera simulator, and this build has none (built without the `demo` feature)".into());
    }
    #[cfg(feature = "demo")]
    let sim = if config.demo {
        let sim_config = options.sim.clone().unwrap_or_else(|| SimConfig {
            notify_interval: Some(Duration::from_secs(60)),
            // The simulator's /_sim control plane (faults, Tv, power) when asked for: trying
            // the UI against a camera that drops out, and the browser test.
            control_addr: std::env::var("SKYLAPSE_DEMO_CONTROL")
                .ok()
                .and_then(|a| a.parse().ok()),
            ..SimConfig::default()
        });
        let sim = SimHandle::start(sim_config)
            .map_err(|e| format!("cannot start the camera simulator: {e}"))?;
        log::info!(
            "demo: simulated {} at {} (UDN {})",
            "Canon EOS R50",
            sim.access_url().unwrap_or_default(),
            sim.udn()
        );
        if let Some(control) = sim.control_addr() {
            log::info!("demo: simulator control plane at http://{control}/_sim/state");
        }
        Some(sim)
    } else {
        None
    };

    let mut camera_options = DriverOptions::from_config(&config);
    if config.demo {
        // The simulator makes a new certificate at every start: a saved pin would refuse it.
        camera_options.trust = Trust::ephemeral(false);
    }
    let started = crate::camera::start(
        camera_options,
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
    );
    let (camera, camera_link) = (started.control, started.link);
    let camera_service = started.service;
    app.add_service(camera_service.clone());
    app.set_liveview(camera_service.liveview.clone());

    let mut tasks = Vec::new();

    let discovery = if options.no_discovery || config.no_discovery {
        None
    } else {
        // In demo, SSDP stays on loopback and talks to the simulator only.
        #[cfg(feature = "demo")]
        let demo_ssdp: Option<Vec<std::net::SocketAddr>> = sim
            .as_ref()
            .map(|sim| sim.ssdp_addr().into_iter().collect());
        #[cfg(not(feature = "demo"))]
        let demo_ssdp: Option<Vec<std::net::SocketAddr>> = None;
        let discovery_config = match (&options.discovery, demo_ssdp) {
            (Some(d), _) => d.clone(),
            (None, Some(ssdp)) => {
                let mut d = DiscoveryConfig::loopback(ssdp);
                d.data_dir = Some(config.data_dir.clone());
                d
            }
            (None, None) => DiscoveryConfig::new(config.data_dir.clone()),
        };
        let prober = Arc::new(LinkProber(camera_link.clone()));
        match DiscoveryService::start(
            discovery_config,
            clock.clone(),
            app.publisher.clone(),
            app.status.clone(),
            prober,
        ) {
            Ok(d) => {
                d.follow_camera(camera.subscribe());
                #[cfg(feature = "demo")]
                if let (Some(sim), Some(addr)) = (&sim, d.notify_addr()) {
                    sim.set_notify_targets(vec![addr]);
                }
                app.add_service(d.clone());
                Some(d)
            }
            Err(e) => {
                // No UDP (a locked-down sandbox): the camera can still be reached by address.
                log::error!("camera discovery is off: cannot open its sockets: {e}");
                None
            }
        }
    };

    // Where the Pi is (GPS or by hand): sun times and sun-relative sessions.
    let location = crate::location::LocationStore::open(&config.data_dir);
    let intervalometer = IntervalometerService::start(
        config.clone(),
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
        camera.clone(),
    );
    intervalometer.use_location(location.clone());
    app.add_service(intervalometer.clone());
    // A running session comes first: no photo by hand, test photos only between frames.
    camera_service.set_session_gate(intervalometer.clone());
    tasks.push(camera_service.follow_session_frames());

    let wifi_options = options.wifi.clone().unwrap_or_else(|| {
        let mut w = WifiOptions::default();
        if let Ok(ap) = std::env::var("SKYLAPSE_AP_IFACE") {
            w.ap_iface = ap;
        }
        if let Ok(client) = std::env::var("SKYLAPSE_CLIENT_IFACE") {
            w.client_iface = client;
        }
        w
    });
    let running = intervalometer.clone();
    let wifi = WifiService::start(
        wifi_options,
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
        Arc::new(move || running.session_running()),
    );
    app.add_service(wifi.clone());
    {
        // New addresses on the Pi: the camera may have moved with them.
        let notices = wifi.notices();
        let link = camera_link.clone();
        let discovery = discovery.clone();
        tasks.push(crate::rt::spawn(async move {
            while let Ok(notice) = notices.recv().await {
                let WifiNotice::AddressesChanged { .. } = notice;
                link.retry_now();
                if let Some(d) = &discovery {
                    d.scan().await;
                }
            }
        }));
    }

    let setter: Arc<dyn SystemTimeSetter> = if let Some(s) = &options.clock_setter {
        s.clone()
    } else if config.demo || options.no_clock_setting {
        Arc::new(DenyClockSetter)
    } else {
        Arc::new(LibcClockSetter)
    };
    // A step re-evaluates a running session's stop-at at once, not at its next slot.
    let setter: Arc<dyn SystemTimeSetter> = Arc::new(TellSessionOfSteps {
        setter,
        intervalometer: intervalometer.clone(),
    });
    let in_flight = intervalometer.clone();
    let timesync = TimeSyncService::start(
        TimeSyncConfig::default(),
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
        Some(camera.clone()),
        setter,
        Arc::new(move || in_flight.shot_in_flight()),
    );
    app.add_service(timesync.clone());
    timesync.remember_locations(location.clone());
    app.add_service(crate::location::SunService::new(
        location.clone(),
        clock.clone(),
    ));

    let power_config = PowerConfig {
        root: options
            .power_root
            .clone()
            .unwrap_or_else(|| PathBuf::from("/")),
        ..PowerConfig::default()
    };
    let power = PowerService::start(
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
        power_config,
    );
    app.add_service(power.clone());
    tasks.push(crate::rt::spawn(feed_power_estimate(
        app.status.clone(),
        power.clone(),
        app.clock.clone(),
        camera.subscribe(),
    )));

    Ok(Running {
        #[cfg(feature = "demo")]
        sim,
        camera_link,
        camera,
        intervalometer,
        discovery,
        wifi,
        timesync,
        power,
        location,
        _tasks: tasks,
    })
}

/// Steps the clock, then tells the intervalometer (time sync knows nothing of sessions).
struct TellSessionOfSteps {
    setter: Arc<dyn SystemTimeSetter>,
    intervalometer: Arc<IntervalometerService>,
}

impl SystemTimeSetter for TellSessionOfSteps {
    fn set(&self, t: std::time::SystemTime) -> Result<(), ApiError> {
        self.setter.set(t)?;
        self.intervalometer.wall_clock_stepped();
        Ok(())
    }
}

/// Discovery steers the camera link through this.
struct LinkProber(CameraLinkHandle);

impl CameraProber for LinkProber {
    fn target(&self, base_url: &str, id: Option<&str>) {
        self.0.set_target(base_url, id);
    }

    fn ssdp_alive(&self, id: &str) {
        self.0.ssdp_alive(id);
    }

    fn connect(&self, base_url: &str) {
        drop(self.0.connect(vec![base_url.to_string()]));
    }
}

/// How many shots and how much time the camera battery and the card have left. The card
/// figure is free space ÷ the measured size of one shot ([`CardMeter`]: free space lost per
/// shutter release, counted on one card at a time, so a card swap does not make it jump);
/// the battery figure comes from what sessions used. Known figures are published whether a
/// session runs or not (the plan needs them before the start).
async fn feed_power_estimate(
    status: crate::app::StatusBoard,
    power: Arc<PowerService>,
    clock: crate::clock::SharedClock,
    notices: async_channel::Receiver<crate::camera::CameraNotice>,
) {
    let mut card = CardMeter::default();
    // (session, battery %, shots) at the session's first look, and the last measured rate.
    let mut battery_base: Option<(String, f64, u64)> = None;
    let mut shots_per_percent: Option<f64> = None;
    let mut published: Option<EstimateInputs> = None;
    let mut stems: Vec<String> = Vec::new();
    // Storage changes without a notice (a card swap) are seen on the shared 10 s grid.
    let period = Duration::from_secs(10);
    let anchor = clock.tick_anchor();
    let mut next = crate::clock::next_tick(anchor, period, clock.now());
    loop {
        let sleep = clock.sleep_until(next);
        let tick = async {
            sleep.await;
            None
        };
        let notice = async { Some(notices.recv().await) };
        let woke = futures_lite::future::or(notice, tick).await;
        if clock.now() >= next {
            next = crate::clock::next_tick(anchor, period, clock.now());
        }
        match woke {
            Some(Err(_)) => return,
            Some(Ok(crate::camera::CameraNotice::FilesAdded(files))) => {
                // RAW+JPEG of one release share a stem (and may come in two notices).
                let mut releases = 0;
                for f in &files {
                    let name = f.rsplit('/').next().unwrap_or(f);
                    let stem = name.rsplit_once('.').map_or(name, |(a, _)| a).to_string();
                    if !stems.contains(&stem) {
                        releases += 1;
                        stems.push(stem);
                        if stems.len() > 8 {
                            stems.remove(0);
                        }
                    }
                }
                card.added(files.len() as u64, releases);
            }
            Some(Ok(_)) | None => {}
        }
        // The typed blocks of the other services (never JSON read back by key).
        let Some(storage) = status.storage() else {
            continue;
        };
        let free_mb = storage.free_mb as f64;
        card.storage(
            storage.name.as_deref().unwrap_or(""),
            storage.total_mb,
            free_mb,
            storage.contents_number,
        );
        let battery = status
            .camera()
            .and_then(|c| c.battery)
            .and_then(|b| b.level)
            .and_then(|l| battery_percent(&l));
        let block = status.intervalometer();
        let session = block
            .as_ref()
            .filter(|b| b.running)
            .and_then(|b| b.session.as_ref());
        let interval = session.map_or(0.0, |s| s.options.interval);
        if let Some(session) = session {
            let id = session.session_id.clone();
            let shots = session.stats.shots_successful;
            match (&battery_base, battery) {
                (Some((bid, b0, s0)), Some(b)) if *bid == id && *b0 > b && shots > *s0 => {
                    shots_per_percent = Some((shots - s0) as f64 / (b0 - b));
                }
                (Some((bid, _, _)), _) if *bid == id => {}
                (_, Some(b)) => battery_base = Some((id, b, shots)),
                _ => {}
            }
        } else {
            battery_base = None;
        }
        let inputs = card.bytes_per_shot().map(|bytes_per_shot| EstimateInputs {
            camera_battery_percent: battery,
            shots_per_percent,
            free_bytes: (free_mb * 1_048_576.0) as u64,
            bytes_per_shot,
            interval: Duration::from_secs_f64(interval.max(0.0)),
        });
        if inputs != published {
            published = inputs;
            power.set_session_inputs(inputs);
        }
    }
}

/// CCAPI ver100 battery levels are bands, not percentages: the middle of each band.
fn battery_percent(level: &str) -> Option<f64> {
    match level {
        "full" => Some(100.0),
        "high" => Some(70.0),
        "half" => Some(50.0),
        "quarter" => Some(30.0),
        "low" => Some(10.0),
        other => other.parse().ok(),
    }
}
