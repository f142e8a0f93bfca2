//! The camera: CCAPI client (ureq + rustls, certificate pinning), the camera link machine,
//! its driver, and the blocking workers that own the sockets.
//!
//! ```text
//!  CameraLinkHandle ─┐  LinkMsg (one inbox)                 ┌─▶ control Worker (socket 1):
//!  (discovery, Wi-Fi,│─────────────▶ link driver ──────────┤   shots (first), probes,
//!   connect_to_ip)   │              (crate::driver::run on  │   settings …; idle: its own
//!                    │               the service executor)  │   health checks
//!  CameraHandle ─────┤   shots, reads ──────────────────────└─▶ events Worker (socket 2):
//!  CameraService ────┘        ▲ ProbeDone / health misses ◀──   long polls (only while a
//!                                                               client or a shot watches), downloads
//! ```
//!
//! Idle with nobody watching (no client, no shot in the last minute) the camera sees one
//! request per health check on one socket: an immediate event poll, which carries battery,
//! storage, temperature and new files as well (issue 13).
//!
//! | file            | what                                                              |
//! |-----------------|-------------------------------------------------------------------|
//! | `ccapi.rs`      | the CCAPI client (`Session`): requests, error mapping, formats    |
//! | `tls.rs`        | certificate pinning                                               |
//! | `link.rs`       | the link machine (is the camera there; when to look again)        |
//! | `link_driver.rs`| its executor: probes, health checks, notices, manual connection   |
//! | `worker.rs`     | the one blocking-worker abstraction (a thread, a bounded queue)   |
//! | `shared.rs`     | state shared by the parts (session, status block, subscribers)    |
//! | `shot.rs`       | one exposure at an exact instant                                  |
//! | `handle.rs`     | `CameraHandle`, `CameraLinkHandle`                                |
//! | `service.rs`    | the camera's commands, `connect_to_ip` included                   |
//!
//! Other parts (intervalometer, time sync, discovery) talk to the camera only through
//! [`CameraControl`], so they can be tested against a fake and the camera driver stays the one
//! owner of the connection (at most 2 sockets to the body; the R50 breaks with more).

use std::time::{Duration, Instant, SystemTime};

use crate::clock::BoxFuture;
use crate::protocol::ApiError;

/// One exposure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShotRequest {
    /// Autofocus before the exposure (`shutterbutton {"af": true}`).
    pub af: bool,
    /// Bulb: `manual full_press`, hold this long on the monotonic clock, `release`.
    pub bulb: Option<Duration>,
    /// The exposure the caller expects for a timed shot (a session's declared or measured
    /// Tv). The camera answers the press only when the exposure is over, so the driver waits
    /// for the longer of this and the camera's current Tv before it gives up on the reply.
    pub exposure: Option<Duration>,
}

impl ShotRequest {
    /// A timed shot (not bulb) with no expected exposure: the driver uses the camera's Tv.
    pub fn timed(af: bool) -> ShotRequest {
        ShotRequest {
            af,
            bulb: None,
            exposure: None,
        }
    }
}

/// What happened to one exposure, with the driver's monotonic timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotOutcome {
    /// When the request's first byte was handed to the socket.
    pub sent_at: Instant,
    /// When the camera's reply was fully read (for bulb: the release reply).
    pub replied_at: Instant,
    pub result: Result<(), ApiError>,
    /// The press went out but no answer came back (reply timed out or the connection was
    /// cut): the camera may well have taken the picture. If event polling then reports a
    /// file for it, the shot counts as taken (late reply).
    pub maybe_taken: bool,
}

impl ShotOutcome {
    /// A shot that failed before anything reached the camera.
    pub fn not_sent(at: Instant, error: ApiError) -> ShotOutcome {
        ShotOutcome {
            sent_at: at,
            replied_at: at,
            result: Err(error),
            maybe_taken: false,
        }
    }
}

/// The camera's main shooting settings as last reported (event polling, a settings read, or
/// our own change), raw CCAPI values. Part of the `camera` status block, so every client
/// knows them without asking, and the source of the Tv a shot's reply timeout follows.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CameraSettings {
    /// `shootingmodedial` (or `shootingmode` on bodies without a dial): m, av, tv, p, bulb…
    pub mode: Option<String>,
    pub tv: Option<String>,
    pub av: Option<String>,
    pub iso: Option<String>,
    pub wb: Option<String>,
    /// Exposure compensation.
    pub exposure: Option<String>,
    pub drive: Option<String>,
    pub afoperation: Option<String>,
}

impl CameraSettings {
    /// The settings keys tracked, as CCAPI names them.
    pub const KEYS: [&'static str; 9] = [
        "shootingmodedial",
        "shootingmode",
        "tv",
        "av",
        "iso",
        "wb",
        "exposure",
        "drive",
        "afoperation",
    ];

    /// Takes `{"value": …}` of one CCAPI setting; returns whether anything changed. Values
    /// that are not strings (or empty: unavailable in this mode) clear the field.
    pub fn update(&mut self, key: &str, setting: &serde_json::Value) -> bool {
        let value = setting
            .get("value")
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(32).collect::<String>());
        let field = match key {
            "shootingmodedial" => &mut self.mode,
            // Bodies without a mode dial report the mode here; a dial wins when both exist.
            "shootingmode" if self.mode.is_none() => &mut self.mode,
            "tv" => &mut self.tv,
            "av" => &mut self.av,
            "iso" => &mut self.iso,
            "wb" => &mut self.wb,
            "exposure" => &mut self.exposure,
            "drive" => &mut self.drive,
            "afoperation" => &mut self.afoperation,
            _ => return false,
        };
        if *field == value {
            return false;
        }
        *field = value;
        true
    }

    /// Takes every tracked key present in a settings object or an event-polling delta.
    pub fn update_from(&mut self, v: &serde_json::Value) -> bool {
        let mut changed = false;
        for key in Self::KEYS {
            if let Some(s) = v.get(key).filter(|s| s.is_object()) {
                changed |= self.update(key, s);
            }
        }
        changed
    }

    /// The timed exposure the current Tv gives, if known (`None` for bulb or unknown).
    pub fn exposure_time(&self) -> Option<Duration> {
        self.tv
            .as_deref()
            .and_then(ccapi::tv_seconds)
            .map(Duration::from_secs_f64)
    }
}

/// Camera clock as CCAPI reports it (`functions/datetime`).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraDateTime {
    /// The instant the camera's clock shows, already corrected for the DST convention.
    pub time: SystemTime,
    /// Raw `datetime` string, e.g. `Tue, 01 Jan 2019 01:23:45 +0900`.
    pub raw: String,
    pub dst: bool,
}

/// Things the camera driver tells interested parts, asynchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraNotice {
    /// The link is up (after probing) to the camera with this UDN/serial. `manual`: a
    /// manual connection (`connect_to_ip`, `--camera`) aimed it there, not discovery.
    Connected {
        id: String,
        info: Option<CameraInfo>,
        manual: bool,
    },
    /// The link was lost (health checks missed, or connection refused).
    Lost { reason: String },
    /// New files reported by event polling (`addedcontents`), in order.
    FilesAdded(Vec<String>),
}

/// What [`CameraControl::apply_settings`] managed: the changes the camera took, in order,
/// and why it stopped early (a refusal, or no time left before the deadline).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsApplied {
    pub applied: Vec<(String, String)>,
    pub error: Option<String>,
}

/// Where [`CameraControl::shoot_at_then`] delivers a shot's outcome.
pub type ShotDone = Box<dyn FnOnce(ShotOutcome) + Send>;

/// The camera as the rest of skylapse sees it.
pub trait CameraControl: Send + Sync {
    /// Fires a shot as close to `due` (monotonic) as possible. Call it ahead of `due` (a few
    /// hundred ms): the driver then keeps the connection warm, holds back health checks and
    /// polls around `due`, waits precisely, and sends. Resolves when the camera replied.
    fn shoot_at(&self, due: Instant, req: ShotRequest) -> BoxFuture<'static, ShotOutcome>;

    /// As [`Self::shoot_at`], handing the outcome to `done` (on whatever thread finished the
    /// shot; it must not block) instead of a future: the session driver puts it straight into
    /// its inbox. Returns the task that does it when one is needed (the default: `shoot_at`
    /// awaited, run on the caller's executor); the camera link calls `done` from its worker.
    fn shoot_at_then(
        &self,
        due: Instant,
        req: ShotRequest,
        done: ShotDone,
    ) -> Option<BoxFuture<'static, ()>> {
        let shot = self.shoot_at(due, req);
        Some(Box::pin(async move { done(shot.await) }))
    }

    /// Whether the link is up right now.
    fn is_connected(&self) -> bool;

    /// The camera's shooting settings as last reported (empty until the camera told us).
    fn settings(&self) -> CameraSettings;

    /// Who the connected camera is (`deviceinformation`), for reports; `None` when no camera
    /// is connected or the implementation does not know.
    fn identity(&self) -> Option<ccapi::DeviceInfo> {
        None
    }

    /// A bounded stream of notices; a slow reader loses notices rather than blocking the driver.
    fn subscribe(&self) -> async_channel::Receiver<CameraNotice>;

    /// Reads `shooting/settings` (values and `ability` lists).
    fn shooting_settings(&self) -> BoxFuture<'static, Result<serde_json::Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::unavailable(
                "this camera cannot report its settings",
            ))
        })
    }

    /// Sets shooting settings one by one on the control worker (behind any shot queued
    /// first), starting none once `deadline` has passed: a change is deferred rather than
    /// allowed to delay the next frame.
    fn apply_settings(
        &self,
        changes: Vec<(String, String)>,
        _deadline: Instant,
    ) -> BoxFuture<'static, SettingsApplied> {
        drop(changes);
        Box::pin(async {
            SettingsApplied {
                applied: Vec::new(),
                error: Some("this camera cannot change settings".into()),
            }
        })
    }

    /// The 160×120 thumbnail of a file on the card (`/ccapi/…` path), on the event worker.
    fn thumbnail(&self, path: String) -> BoxFuture<'static, Result<Vec<u8>, ApiError>> {
        drop(path);
        Box::pin(async { Err(ApiError::unavailable("this camera cannot send thumbnails")) })
    }

    /// Reads the camera clock.
    fn datetime(&self) -> BoxFuture<'static, Result<CameraDateTime, ApiError>>;

    /// Sets the camera clock to `time` in the zone `tz_offset_secs` (standard offset, seconds
    /// east of UTC) with the `dst` flag, by Canon's convention (local time with DST applied,
    /// standard offset, `dst: true`).
    fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> BoxFuture<'static, Result<(), ApiError>>;
}

/// Who the camera is, as a probe found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    pub id: String,
    pub model: String,
    pub serial: String,
    pub url: String,
    pub ip: String,
    pub port: u16,
}

impl CameraInfo {
    pub(crate) fn of(s: &ccapi::Session) -> CameraInfo {
        let (ip, port) = s.host_port();
        CameraInfo {
            id: s.id.clone(),
            model: s.info.productname.clone(),
            serial: s.info.serialnumber.clone(),
            url: s.base_url.clone(),
            ip,
            port,
        }
    }
}

/// `ip`, `ip:port`, or a URL → the CCAPI base URLs to try, in order. A URL is taken as it
/// is; an address is tried over HTTPS then HTTP on its port (on any port: the scheme is not
/// the port's; no port: HTTPS 443 then HTTP 8080, CCAPI's two services).
pub fn camera_urls(addr: &str) -> Option<Vec<String>> {
    let addr = addr.trim();
    if addr.is_empty() || addr.contains(char::is_whitespace) {
        return None;
    }
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return camera_url(addr).map(|u| vec![u]);
    }
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p.parse::<u16>().ok()?)),
        _ => (addr, None),
    };
    if host.is_empty() {
        return None;
    }
    Some(match port {
        Some(p) => vec![
            format!("https://{host}:{p}/ccapi"),
            format!("http://{host}:{p}/ccapi"),
        ],
        None => vec![
            format!("https://{host}:443/ccapi"),
            format!("http://{host}:8080/ccapi"),
        ],
    })
}

/// `ip`, `ip:port`, or a URL → one CCAPI base URL (the first of [`camera_urls`] for an
/// address: HTTPS).
pub fn camera_url(addr: &str) -> Option<String> {
    let addr = addr.trim();
    if addr.starts_with("http://") || addr.starts_with("https://") {
        if addr.contains(char::is_whitespace) {
            return None;
        }
        let base = addr.trim_end_matches('/');
        return Some(if base.ends_with("/ccapi") {
            base.to_string()
        } else {
            format!("{base}/ccapi")
        });
    }
    camera_urls(addr)?.into_iter().next()
}

/// Knobs for tests and the demo; `from_config` is production.
#[derive(Clone)]
pub struct DriverOptions {
    pub data_dir: std::path::PathBuf,
    pub timeouts: ccapi::Timeouts,
    pub trust: std::sync::Arc<tls::Trust>,
    pub backoff: crate::backoff::Backoff,
    pub rng_seed: Option<u64>,
    /// Connect here at start ("ip[:port]" or a URL): a manual connection.
    pub initial_target: Option<String>,
}

impl DriverOptions {
    pub fn from_config(config: &crate::config::Config) -> DriverOptions {
        DriverOptions {
            data_dir: config.data_dir.clone(),
            timeouts: ccapi::Timeouts::default(),
            trust: tls::Trust::load(&config.data_dir, config.camera_insecure),
            backoff: crate::backoff::Backoff::CAMERA,
            rng_seed: None,
            initial_target: config.camera.clone(),
        }
    }
}

/// The started camera: its commands, its control (shots, clock), and its link.
pub struct Camera {
    pub service: std::sync::Arc<CameraService>,
    pub control: std::sync::Arc<dyn CameraControl>,
    pub link: CameraLinkHandle,
}

/// Starts the camera's workers and link driver (a task on the service executor).
pub fn start(
    opts: DriverOptions,
    clock: crate::clock::SharedClock,
    status: crate::app::StatusBoard,
    publisher: crate::app::Publisher,
) -> Camera {
    use std::sync::Arc;
    let (tx, rx) = crate::driver::inbox(256);
    let (notices, notices_rx) = async_channel::bounded(256);
    let cam = Arc::new(shared::Shared {
        trust: opts.trust.clone(),
        timeouts: opts.timeouts,
        data_dir: opts.data_dir.clone(),
        clock: clock.clone(),
        status,
        publisher,
        state: Default::default(),
        control: worker::Worker::new("camera-control"),
        events: worker::Worker::background(ccapi::EVENTS_THREAD),
        link: tx,
        notices,
        test_shot: async_lock::Mutex::new(()),
    });
    crate::rt::spawn(shared::fan_out(Arc::downgrade(&cam), notices_rx)).detach();
    cam.lock().view.state = "disconnected";
    cam.control.start(clock.clone(), cam.control_idle());
    cam.events.start(clock.clone(), cam.event_idle());
    let rng = match opts.rng_seed {
        Some(s) => crate::backoff::Rng::new(s),
        None => crate::backoff::Rng::from_entropy(),
    };
    let machine = link::LinkMachine::new(opts.backoff, rng);
    let exec = link_driver::LinkExec::new(cam.clone());
    let c = cam.clone();
    // On the service executor, not a thread of its own: its inputs come from that thread (a
    // shot's reservation) or together with a result that wakes it anyway (an operation's
    // outcome), so a thread of its own only added wake-ups (issue 13).
    crate::rt::spawn(async move {
        crate::driver::run(machine, exec, rx, clock).await;
        c.lock().connected = false;
    })
    .detach();
    cam.publish_block();
    let link = CameraLinkHandle { cam: cam.clone() };
    if let Some(t) = opts.initial_target.as_deref() {
        match camera_urls(t) {
            // `--camera`: a manual connection, like `connect_to_ip` (nobody awaits it):
            // HTTPS then HTTP on the given port.
            Some(urls) => drop(link.connect_with(urls, true)),
            None => log::error!("--camera {t:?} is not an address or URL"),
        }
    }
    let service = Arc::new(CameraService::new(cam.clone(), link.clone()));
    let control: Arc<dyn CameraControl> = Arc::new(CameraHandle { cam });
    Camera {
        service,
        control,
        link,
    }
}

pub mod ccapi;
pub mod exif;
mod handle;
pub mod link;
mod link_driver;
pub mod liveview;
mod photos;
pub mod service;
mod shared;
mod shot;
pub mod tls;
pub mod worker;

pub use handle::{CameraHandle, CameraLinkHandle};
pub use service::CameraService;
pub use shared::battery_entry;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
