//! Wiring: creates every service, connects their seams, and registers them with the
//! coordinator. `main` calls [`start`]; end-to-end tests call it too, so they run the same
//! graph as the product.
//!
//! ```text
//!   camera driver ──CameraControl──▶ intervalometer, time sync
//!        ▲   └──────CameraNotice───▶ discovery (link up/down), time sync (camera connected)
//!        └──CameraProber (link handle)── discovery (SSDP targets, alive nudges, connect_to_ip)
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
use crate::camera::driver::{CameraDriver, CameraLinkHandle, DriverOptions};
use crate::camera::tls::Trust;
use crate::camera::CameraControl;
use crate::clock::BoxFuture;
use crate::discovery::{CameraProber, DiscoveryConfig, DiscoveryService, ProbeInfo};
use crate::intervalometer::IntervalometerService;
use crate::power::{EstimateInputs, PowerConfig, PowerService};
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
    let (camera_service, camera, camera_link) = CameraDriver::start_with(
        camera_options,
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
    );
    app.add_service(camera_service);

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

    let intervalometer = IntervalometerService::start(
        config.clone(),
        clock.clone(),
        app.status.clone(),
        app.publisher.clone(),
        camera.clone(),
    );
    app.add_service(intervalometer.clone());

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
    fn probe(&self, base_url: &str) -> BoxFuture<'static, Result<ProbeInfo, ApiError>> {
        let probe = self.0.probe(base_url);
        Box::pin(async move {
            let info = probe.await?;
            Ok(ProbeInfo {
                id: Some(info.id),
                model_name: Some(info.model),
                serial_number: Some(info.serial),
            })
        })
    }

    fn target(&self, base_url: &str, id: Option<&str>) {
        self.0.set_target(base_url, id);
    }

    fn ssdp_alive(&self, id: &str) {
        self.0.ssdp_alive(id);
    }
}

/// Once a minute while a session runs: how many shots and how much time the camera battery
/// and the card have left, from what the session has used so far (typed status blocks).
async fn feed_power_estimate(
    status: crate::app::StatusBoard,
    power: Arc<PowerService>,
    clock: crate::clock::SharedClock,
) {
    let mut baseline: Option<(String, f64, Option<f64>, u64)> = None; // (session, freeMB, battery%, shots)
    loop {
        clock
            .sleep_until(clock.now() + Duration::from_secs(60))
            .await;
        let block = status.intervalometer();
        let session = block
            .as_ref()
            .filter(|b| b.running)
            .and_then(|b| b.session.as_ref());
        let Some(session) = session else {
            if baseline.take().is_some() {
                power.set_session_inputs(None);
            }
            continue;
        };
        let id = session.session_id.clone();
        let shots = session.stats.shots_taken;
        let interval = session.options.interval;
        let free_mb = status.storage().map(|s| s.free_mb as f64);
        let battery = status
            .camera()
            .and_then(|c| c.battery)
            .and_then(|b| b.level)
            .and_then(|l| battery_percent(&l));
        let Some(free_mb) = free_mb else { continue };
        if baseline.as_ref().map(|b| &b.0) != Some(&id) {
            baseline = Some((id, free_mb, battery, shots));
            continue;
        }
        let Some((_, free0, battery0, shots0)) = &baseline else {
            continue;
        };
        let used_shots = shots.saturating_sub(*shots0);
        if used_shots == 0 || interval <= 0.0 {
            continue;
        }
        let bytes_per_shot =
            (((free0 - free_mb).max(0.0) * 1_048_576.0) / used_shots as f64) as u64;
        let shots_per_percent = match (battery0, battery) {
            (Some(b0), Some(b)) if *b0 > b => Some(used_shots as f64 / (b0 - b)),
            _ => None,
        };
        power.set_session_inputs(Some(EstimateInputs {
            camera_battery_percent: battery,
            shots_per_percent,
            free_bytes: (free_mb * 1_048_576.0) as u64,
            bytes_per_shot,
            interval: Duration::from_secs_f64(interval),
        }));
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
