//! The camera simulator: a faithful CCAPI peer (HTTPS + HTTP, UPnP description, SSDP) with
//! fault injection, per CCAPI.md §5. Tests start it in-process with [`SimHandle::start`];
//! `camera-sim` wraps the same handle in a binary.
//!
//! ```text
//!   SimHandle (any thread) ──▶ Shared { Mutex<Inner>, Signal, RequestLog, TLS }
//!                                   ▲
//!   sim thread: smol Executor ──────┤
//!     listeners: CCAPI HTTPS, CCAPI HTTP, description, control      (server.rs, http.rs, tls.rs)
//!     per connection: read ─▶ log ─▶ faults ─▶ route        (ccapi.rs / control.rs / ssdp.rs)
//!     SSDP socket: M-SEARCH replies, NOTIFY alive/byebye                          (ssdp.rs)
//!     capture tasks: AF ─▶ exposure ─▶ write ─▶ events             (shooting.rs, events.rs)
//!     auto power off: idle timer ─▶ sleep (byebye, blackhole)
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use skylapse_sim::{FaultAction, FaultMatch, SimConfig, SimHandle};
//!
//! let sim = SimHandle::start(SimConfig::default())?; // loopback, ephemeral ports, R50
//! let base = sim.access_url().unwrap(); // https://127.0.0.1:<port>/ccapi (as in X_accessURL)
//! sim.add_fault(
//!     FaultMatch::path("shutterbutton"),
//!     FaultAction::Respond { status: 503, message: "Device busy".into() },
//!     Some(2), // twice, then the real handler
//! );
//! sim.reboot(Duration::from_millis(500)); // byebye, refuse 0.5 s, alive
//! let log = sim.requests(); // method, path, status, head_at/body_at (read) and rx_at (kernel) instants
//! # let _ = (base, log);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Timers (poll holds, AF, exposures, bulb, card writes, cooldown, reboot downtime, fault
//! latency, auto power off) run on the configured clock: with a `ManualClock` they only move
//! when the test advances it. Delays that are link or implementation properties stay on real
//! time: event coalescing (`Timing::coalesce`), the SSDP reply delay, bandwidth pacing and the
//! RAW+JPEG split delay. The request log always uses real `Instant::now()`.
//!
//! Pictures (`pictures.rs`, `scene.rs`, `sky.rs`): every JPEG served is a real, decodable
//! picture of one synthetic scene, a ridge line under a sky with ~460 seeded stars (the
//! brightest, magnitude −0.3, alone near the centre), rendered only when requested and kept
//! in a 6-picture cache (a render of more than 100 k pixels runs on a short-lived thread, one
//! render at a time). A pixel's light is `0.18·2^(EV_scene − EV_camera)` times its relative
//! luminance (a metered exposure renders the sky near mid-grey), stars are absolute (they
//! vanish by day), then ISO noise, clipping at black and white and the sRGB curve. Stars blur
//! with the focus error. Sizes: `kind=thumbnail` 160×120 (the 3:2 picture between Canon's
//! black bars), `display`/`embedded` 1620×1080, the original JPEG = the display picture padded
//! with COM segments to the file's nominal size (smaller if it would not fit), Exif (Model,
//! DateTimeOriginal at the shutter opening, ISO, ExposureTime, FNumber) from the shot's own
//! settings (`iso: auto` meters the scene); live view small 480×320, medium 960×640, no Exif.
//!
//! Live view and focus (`liveview.rs`): `shooting/liveview` (sizes, `cameradisplay`),
//! `flip`, `flipdetail` (info frame with the histogram, then the JPEG frame), `scroll` and
//! `scrolldetail` (chunked, one framed frame per chunk, DELETE ends them), `afframeposition`,
//! and `shooting/control/drivefocus` (steps 1/8/40 by default, 400 on other values, 503
//! `During shooting or recording` while the engine is busy). Frames are black 160×120 while
//! live view starts (`lv_start`) and from a release's opening until `lv_recovery` after its
//! exposure; flip/flipdetail faster than `lv_min_interval` answer 503 `Device busy`.
//!
//! Scene and live-view knobs ([`SkyConfig`] and [`LvKnobs`] in [`SimConfig`]; at run time
//! `set_sky`, `set_liveview_knobs`, `set_focus_position`, `set_focus_steps`, `set_lv_zoom`, or
//! `PATCH /_sim/state`, see `control.rs`):
//! * sky mode `night` (default: scene EV = `night_ev`, −3) or `sun` (EV from the sun's
//!   altitude at `latitude`/`longitude` (default 47° N 8° E) and the camera clock: ≈15 by day,
//!   10 at sunset, 3.5 at the end of civil twilight, `night_ev` below −18°); `scene_ev` fixes
//!   the EV whatever the mode;
//! * `true_focus` (seeded in 350..=650, never within 40 of the lens's power-on position 500;
//!   positions run 0..=1000), focus steps;
//! * `thumbnail_trailing_bytes` (0: off; filler with a stray EOI after the thumbnail's EOI),
//!   `thumbnail_letterbox` (on);
//! * live view: `lv_start` 1200 ms and `lv_recovery` 1000 ms (sim clock), `lv_min_interval`
//!   40 ms and `lv_scroll_interval` 100 ms (real time), `lv_not_ready` black frame | 503
//!   `Device busy`, `cameradisplay_keep_rejected` (off), `flipdetail_rejects_extra_query` (on
//!   for r6m3), `drivefocus_needs_liveview` (off), `lv_min_ev` 1.0 (the brightest exposure
//!   live view simulates), `lv_exposure_simulation` (on, Canon's default: frames follow the
//!   Tv/Av/ISO settings, so daytime settings show a black night; off: metered for the scene),
//!   magnification 1/5/10 around a point (`lv_zoom`).
//!
//! Choices where the camera's behaviour is unknown (CCAPI.md [?]; stable, and knobs where
//! noted): unknown path → 404 `{"message":"URL not found"}`; method not in the catalog → 405
//! `{"message":"Method not allowed"}`; malformed JSON or wrong types → 400 `Invalid parameter`;
//! a PUT of a setting unavailable in the current mode → 400 `Invalid parameter` (its ability
//! reads empty); `shutterbutton` with tv=bulb → 503 `Mode not supported` (knob); thermal
//! `disablerelease` → 503 `Mode not supported`; shutter in the post-write cooldown → 503
//! `Device busy`, settings PUT → 503 `During shooting or recording`; `functions/ssl/cacert`
//! serves DER; `kind=chunked` listings answer one plain JSON object; `No list of APIs` is
//! `{"message":"No list of APIs"}` with 200. Live view: the small size is 480×320; a POST
//! without both `liveviewsize` and `cameradisplay`, `large`, or flipdetail without `kind`
//! → 400 `Invalid parameter`; `disableliveview` → 503 `Mode not supported`; scroll frames use
//! flipdetail's framing (type 00); the magnification is a knob only (CCAPI.md documents no
//! endpoint that sets it), `afframeposition` moves its centre. Pictures ignore the dial: the
//! Tv/Av/ISO settings are the exposure in every mode (no AE); AF does not move the focus.

mod ccapi;
mod control;
mod events;
pub mod faults;
mod http;
pub mod jpeg;
pub mod liveview;
pub mod pictures;
pub mod scene;
mod server;
mod shooting;
pub mod sky;
pub mod ssdp;
pub mod state;
pub mod time;
mod tls;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::Async;
use smol::{Executor, Task};

use crate::time::{ManualClock, RealTime, SharedTime};
pub use time::SimTime;

use events::EventsState;
pub use faults::{Action as FaultAction, Match as FaultMatch};
pub use liveview::{LvKnobs, NotReady};
pub use pictures::{SkyConfig, SkyMode};
pub use ssdp::{DescriptionMode, SsdpKnobs};
pub use state::{Button, Power, PowerSource, Profile, RootListing};

use http::Request;

/// Which clock drives the simulator's timers.
#[derive(Clone, Default)]
pub enum SimClock {
    #[default]
    System,
    /// Virtual time: advance it from the test (or `POST /_sim/clock {"advance_ms":…}`).
    Manual(ManualClock),
    /// Someone else's clock (a test running the product and the simulator on one virtual
    /// clock passes the product's through an adapter).
    Shared(SharedTime),
}

/// When `shutterbutton` answers (CCAPI.md §1.6: unknown on real bodies, so a knob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutterReply {
    Immediate,
    AfterAf,
    #[default]
    AfterExposure,
    AfterWrite,
}

impl ShutterReply {
    pub fn parse(s: &str) -> Option<ShutterReply> {
        match s {
            "immediate" => Some(ShutterReply::Immediate),
            "after_af" => Some(ShutterReply::AfterAf),
            "after_exposure" => Some(ShutterReply::AfterExposure),
            "after_write" => Some(ShutterReply::AfterWrite),
            _ => None,
        }
    }
}

/// How a dark camera looks from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineMode {
    /// Listeners closed: connections are refused (ECONNREFUSED).
    Refuse,
    /// Connections are accepted but never answered (timeouts).
    Blackhole,
}

/// Another client (a phone app) holds the camera (CCAPI.md §2.2; the refusal form is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondClient {
    /// Every CCAPI request answers 503 `Device busy`.
    Busy,
    /// CCAPI connections are reset as soon as they are accepted.
    Refuse,
}

/// The scheme `X_accessURL` advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// Camera timing knobs (CCAPI.md §5.4–5.5).
#[derive(Debug, Clone)]
pub struct Timing {
    /// `timeout=short` hold.
    pub short_poll: Duration,
    /// `timeout=long` (and ver100 `continue=on`) hold.
    pub long_poll: Duration,
    /// Near-simultaneous changes land in one poll reply (real time).
    pub coalesce: Duration,
    /// AF time when `af` is requested and AF is not manual.
    pub af: Duration,
    /// Card write speed (bytes/s): write time = shot size / this.
    pub write_bytes_per_sec: u64,
    /// After a write, settings PUTs still get 503 for this long.
    pub settings_cooldown: Duration,
    pub shutter_reply: ShutterReply,
    /// Default downtime of `reboot`.
    pub reboot: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            short_poll: Duration::from_secs(10),
            long_poll: Duration::from_secs(30),
            coalesce: Duration::from_millis(50),
            af: Duration::from_millis(200),
            write_bytes_per_sec: 60_000_000,
            settings_cooldown: Duration::from_millis(400),
            shutter_reply: ShutterReply::AfterExposure,
            reboot: Duration::from_millis(3000),
        }
    }
}

/// Everything needed to start a simulator. `Default` is a loopback test camera: every
/// listener on 127.0.0.1 with an ephemeral port, R50 profile, system clock.
#[derive(Clone)]
pub struct SimConfig {
    pub profile: Profile,
    /// Seeds identity (serial, MAC, UDN) and the fault RNG.
    pub seed: u64,
    /// CCAPI over HTTPS (`None`: disabled).
    pub https_addr: Option<SocketAddr>,
    /// CCAPI over plain HTTP (`None`: disabled).
    pub http_addr: Option<SocketAddr>,
    /// UPnP description server (`/upnp/CameraDevDesc.xml`).
    pub description_addr: SocketAddr,
    /// SSDP socket (unicast; `None`: no SSDP).
    pub ssdp_addr: Option<SocketAddr>,
    /// Also join 239.255.255.250 on 0.0.0.0:1900 and send NOTIFY there.
    pub ssdp_multicast: bool,
    /// The multicast group and port (default 239.255.255.250:1900; tests may pick another
    /// port to stay clear of a system SSDP daemon).
    pub ssdp_multicast_addr: std::net::SocketAddrV4,
    /// Where NOTIFY alive/byebye go (the discovery client's listening sockets).
    pub notify_targets: Vec<SocketAddr>,
    /// Periodic NOTIFY alive (`None`: only on start/wake/reboot/address change).
    pub notify_interval: Option<Duration>,
    /// The `/_sim/...` HTTP control plane (`None`: Rust API only).
    pub control_addr: Option<SocketAddr>,
    pub clock: SimClock,
    /// Scheme in `X_accessURL` (falls back to the enabled one).
    pub advertise: Scheme,
    /// Leaf certificate CN (default "Canon Camera", deliberately not the IP).
    pub tls_common_name: String,
    /// Extra SANs for the leaf (IPs or DNS names); empty like a real camera.
    pub tls_san: Vec<String>,
    pub timing: Timing,
    /// Request log capacity (oldest records dropped beyond it).
    pub request_log_cap: usize,
    /// Camera standard offset from UTC in minutes, and DST flag, at start.
    pub tz_offset_min: i32,
    pub dst: bool,
    /// The scene: sky mode, location, scene EV, true focus, thumbnail quirks.
    pub sky: SkyConfig,
    /// Live-view timing and quirks.
    pub liveview: LvKnobs,
}

impl Default for SimConfig {
    fn default() -> Self {
        let lo = |port| Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        SimConfig {
            profile: Profile::R50,
            seed: 1,
            https_addr: lo(0),
            http_addr: lo(0),
            description_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ssdp_addr: lo(0),
            ssdp_multicast: false,
            ssdp_multicast_addr: ssdp::MULTICAST,
            notify_targets: Vec::new(),
            notify_interval: None,
            control_addr: None,
            clock: SimClock::System,
            advertise: Scheme::Https,
            tls_common_name: "Canon Camera".into(),
            tls_san: Vec::new(),
            timing: Timing::default(),
            request_log_cap: 10_000,
            tz_offset_min: 0,
            dst: false,
            sky: SkyConfig::default(),
            liveview: LvKnobs::default(),
        }
    }
}

/// Which listener served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    Https,
    Http,
    Description,
    Control,
}

/// One logged request. Instants are real `Instant::now()` readings.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub seq: u64,
    pub listener: Listener,
    pub peer: SocketAddr,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The request head was completely received.
    pub head_at: Instant,
    /// The body was completely received (== `head_at` without a body).
    pub body_at: Instant,
    /// When the kernel received the bytes that completed the request (SO_TIMESTAMPNS, HTTPS
    /// only): the camera's receive instant without the simulator's own wake-up, which
    /// `head_at`/`body_at` include (they are read after the simulator's thread has run).
    pub rx_at: Option<Instant>,
    /// Response status; 0 while pending, or when the connection was reset/hung.
    pub status: u16,
    /// When the response was written (None while pending / never).
    pub responded_at: Option<Instant>,
}

pub(crate) struct RequestLog {
    inner: Mutex<LogInner>,
    cv: Condvar,
    cap: usize,
}

struct LogInner {
    records: VecDeque<RequestRecord>,
    next_seq: u64,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, req: &Request, listener: Listener) -> u64 {
        let mut g = self.lock();
        let seq = g.next_seq;
        g.next_seq += 1;
        if g.records.len() >= self.cap {
            g.records.pop_front();
        }
        g.records.push_back(RequestRecord {
            seq,
            listener,
            peer: req.peer,
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            head_at: req.head_at,
            body_at: req.body_at,
            rx_at: req.rx_at,
            status: 0,
            responded_at: None,
        });
        drop(g);
        self.cv.notify_all();
        seq
    }

    fn set_status(&self, seq: u64, status: u16) {
        let mut g = self.lock();
        let first = g.records.front().map_or(0, |r| r.seq);
        if seq >= first {
            if let Some(r) = g.records.get_mut((seq - first) as usize) {
                r.status = status;
                r.responded_at = Some(Instant::now());
            }
        }
        drop(g);
        self.cv.notify_all();
    }

    fn since(&self, seq: u64) -> Vec<RequestRecord> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.seq >= seq)
            .cloned()
            .collect()
    }
}

/// A wake-up broadcast with a generation counter: waiters remember the generation they saw
/// and resolve when it moves.
pub(crate) struct Signal {
    inner: Mutex<(u64, Vec<Waker>)>,
}

impl Signal {
    fn new() -> Signal {
        Signal {
            inner: Mutex::new((0, Vec::new())),
        }
    }

    pub fn generation(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub fn notify(&self) {
        let wakers = {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.0 += 1;
            std::mem::take(&mut g.1)
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn changed_since(&self, generation: u64) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            generation,
            registered: None,
        }
    }
}

pub(crate) struct SignalWait<'a> {
    signal: &'a Signal,
    generation: u64,
    /// The waker this wait left in the signal's list (removed on drop, so waits that end
    /// without a notify, like a closed connection's, do not pile up).
    registered: Option<Waker>,
}

impl Future for SignalWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut g = this.signal.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != this.generation {
            this.registered = None;
            return Poll::Ready(());
        }
        if !g.1.iter().any(|w| w.will_wake(cx.waker())) {
            g.1.push(cx.waker().clone());
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for SignalWait<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.registered.take() {
            let mut g = self.signal.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.1.retain(|x| !x.will_wake(&w));
        }
    }
}

/// Network-facing state: where the listeners are and whether the camera answers.
pub(crate) struct NetState {
    pub https: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub description: SocketAddr,
    pub control: Option<SocketAddr>,
    pub ssdp: Option<SocketAddr>,
    pub offline: Option<OfflineMode>,
}

/// Everything behind the one state lock.
pub(crate) struct Inner {
    pub cam: state::CameraState,
    pub events: EventsState,
    pub faults: faults::Faults,
    pub net: NetState,
    pub ssdp: ssdp::SsdpKnobs,
    pub timing: Timing,
    /// `X_onService` (another client holds the camera).
    pub on_service: bool,
    /// Another client holds the camera (also shows as `X_onService` 1).
    pub second_client: Option<SecondClient>,
    /// Bumped by reboot/power-off: capture tasks of an older boot are abandoned.
    pub boot_epoch: u64,
    pub af_fail_probability: f64,
    pub rng: crate::time::Rng,
    /// `shutterbutton` (one-shot) while tv is bulb: 503 `Mode not supported` (true) or a
    /// zero-length exposure (false).
    pub bulb_oneshot_rejected: bool,
    /// Response body pacing in bytes/s for CCAPI listeners (`None`: as fast as loopback).
    pub bandwidth: Option<u64>,
    /// The next N POST/PUT control calls get 503 `Taken in preparation` (standby → connected).
    pub taken_in_preparation: u32,
    /// `taken_in_preparation` armed with this count on every wake/reboot/power-on (0: off).
    pub standby_after_wake: u32,
    /// RAW+JPEG: report the JPG this long after the CR3 (separate poll replies).
    pub split_raw_jpeg: Option<Duration>,
    /// Last CCAPI request (sim clock), for auto power off.
    pub last_activity: Instant,
    /// `scheme://host:port` of the last CCAPI request: old bodies put absolute URLs in
    /// events (storage) raised outside a request.
    pub last_origin: String,
    /// The scene behind the lens and the picture knobs.
    pub world: pictures::World,
}

pub(crate) struct Shared {
    pub state: Mutex<Inner>,
    /// Notified on every state change (events, poll cancel, button): pollers and capture
    /// tasks re-check.
    pub changed: Signal,
    /// Notified to kill every open CCAPI/description connection (reboot, offline, move).
    pub kill: Signal,
    /// Paired with `state` so blocking test code can wait for a condition.
    pub state_cv: Condvar,
    pub log: RequestLog,
    pub tls: Mutex<tls::TlsMaterial>,
    pub clock: SharedTime,
    pub manual_clock: Option<ManualClock>,
    pub udn: String,
    pub profile: Profile,
    pub advertise: Scheme,
    pub exec: Mutex<Option<Arc<Executor<'static>>>>,
    pub tasks: Mutex<ListenerTasks>,
    pub ssdp_socket: Mutex<Option<Arc<Async<UdpSocket>>>>,
    pub multicast_socket: Mutex<Option<Arc<Async<UdpSocket>>>>,
    pub notify_targets: Mutex<Vec<SocketAddr>>,
    pub ssdp_multicast: bool,
    pub ssdp_multicast_addr: std::net::SocketAddrV4,
    pub connections: AtomicUsize,
    /// Rendered pictures kept, and the one render slot.
    pub pictures: pictures::Pictures,
}

/// A listening socket's accept task, with its fd so it can be shut synchronously.
pub(crate) struct Bound {
    task: Task<()>,
    fd: std::os::fd::RawFd,
}

impl Bound {
    /// Refuses new connections now (the task and socket are dropped later on the executor).
    fn close(self) {
        // SAFETY: the fd belongs to the listener owned by `task`'s future, which is still
        // alive: it is only dropped after the task is cancelled below.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        drop(self.task);
    }
}

#[derive(Default)]
pub(crate) struct ListenerTasks {
    pub https: Option<Bound>,
    pub http: Option<Bound>,
    pub description: Option<Bound>,
    pub other: Vec<Task<()>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Call after mutating state: wakes pollers and blocking waiters.
    pub fn touch(&self) {
        self.changed.notify();
        self.state_cv.notify_all();
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) -> Option<Task<()>> {
        let exec = self
            .exec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some(exec.spawn(fut))
    }

    pub fn spawn_detached(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Some(t) = self.spawn(fut) {
            t.detach();
        }
    }

    pub async fn sleep(&self, d: Duration) {
        let deadline = self.clock.now() + d;
        self.clock.sleep_until(deadline).await;
    }

    /// The CCAPI base URL advertised in `X_accessURL`.
    pub fn access_url(&self) -> Option<String> {
        let g = self.lock();
        let https = g.net.https.map(|a| format!("https://{a}/ccapi"));
        let http = g.net.http.map(|a| format!("http://{a}/ccapi"));
        match self.advertise {
            Scheme::Https => https.or(http),
            Scheme::Http => http.or(https),
        }
    }

    pub fn description_url(&self) -> String {
        format!(
            "http://{}/upnp/CameraDevDesc.xml",
            self.lock().net.description
        )
    }

    // ---- listeners -------------------------------------------------------------------------

    fn bind_listener(self: &Arc<Self>, kind: Listener, addr: SocketAddr) -> io::Result<SocketAddr> {
        let std_listener = TcpListener::bind(addr)?;
        let local = std_listener.local_addr()?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std_listener);
        let listener = Async::new(std_listener)?;
        let me = self.clone();
        let task = self
            .spawn(server::accept_loop(me, listener, kind))
            .ok_or_else(|| io::Error::other("simulator stopped"))?;
        let bound = Some(Bound { task, fd });
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match kind {
            Listener::Https => &mut t.https,
            Listener::Http => &mut t.http,
            Listener::Description => &mut t.description,
            Listener::Control => {
                t.other.extend(bound.map(|b| b.task));
                return Ok(local);
            }
        };
        if let Some(old) = std::mem::replace(slot, bound) {
            old.close();
        }
        Ok(local)
    }

    /// Closes the camera-facing listeners (refuse) and kills their connections.
    pub fn close_camera_listeners(&self) {
        let bound = {
            let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            [t.https.take(), t.http.take(), t.description.take()]
        };
        for b in bound.into_iter().flatten() {
            b.close();
        }
        self.kill.notify();
    }

    /// (Re)binds the camera-facing listeners at the addresses in `net`.
    pub fn open_camera_listeners(self: &Arc<Self>) -> io::Result<()> {
        let (https, http, desc) = {
            let g = self.lock();
            (g.net.https, g.net.http, g.net.description)
        };
        let bound = {
            let t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            (t.https.is_some(), t.http.is_some(), t.description.is_some())
        };
        if let (Some(a), false) = (https, bound.0) {
            let got = self.bind_listener(Listener::Https, a)?;
            self.lock().net.https = Some(got);
        }
        if let (Some(a), false) = (http, bound.1) {
            let got = self.bind_listener(Listener::Http, a)?;
            self.lock().net.http = Some(got);
        }
        if !bound.2 {
            let got = self.bind_listener(Listener::Description, desc)?;
            self.lock().net.description = got;
        }
        Ok(())
    }

    // ---- power and network ----------------------------------------------------------------

    pub fn go_offline(&self, mode: OfflineMode) {
        self.lock().net.offline = Some(mode);
        match mode {
            OfflineMode::Refuse => self.close_camera_listeners(),
            OfflineMode::Blackhole => self.kill.notify(),
        }
        self.touch();
    }

    pub fn go_online(self: &Arc<Self>) -> io::Result<()> {
        self.open_camera_listeners()?;
        self.lock().net.offline = None;
        self.touch();
        Ok(())
    }

    /// Resets what a power cycle clears: polling session, pending press, busy engine, wedge.
    fn reset_volatile(&self, g: &mut Inner) {
        g.boot_epoch += 1;
        g.events.reset_session();
        g.cam.button = state::Button::Released;
        g.cam.engine = state::Engine::Idle;
        g.cam.cooldown_until = None;
        g.cam.lv.reset();
        g.faults.wedged_502 = false;
    }

    pub fn sleep_camera(&self, mode: OfflineMode) {
        ssdp::send_notify(self, false);
        {
            let mut g = self.lock();
            g.cam.power = Power::Sleeping;
            self.reset_volatile(&mut g);
        }
        self.go_offline(mode);
    }

    pub fn wake_camera(self: &Arc<Self>) -> io::Result<()> {
        let now = self.now();
        {
            let mut g = self.lock();
            g.cam.power = Power::On;
            g.last_activity = now;
            g.taken_in_preparation = g.standby_after_wake;
        }
        self.go_online()?;
        ssdp::send_notify(self, true);
        Ok(())
    }

    pub fn power_off(&self) {
        ssdp::send_notify(self, false);
        {
            let mut g = self.lock();
            g.cam.power = Power::Off;
            self.reset_volatile(&mut g);
        }
        self.go_offline(OfflineMode::Refuse);
    }

    /// Byebye, down (refusing) for `down`, then back with an alive.
    pub fn reboot(self: &Arc<Self>, down: Duration) {
        ssdp::send_notify(self, false);
        {
            let mut g = self.lock();
            g.cam.power = Power::Rebooting;
            self.reset_volatile(&mut g);
        }
        self.go_offline(OfflineMode::Refuse);
        let epoch = self.lock().boot_epoch;
        let me = self.clone();
        self.spawn_detached(async move {
            me.sleep(down).await;
            let current = {
                let g = me.lock();
                g.boot_epoch == epoch && g.cam.power == Power::Rebooting
            };
            if !current {
                return;
            }
            if let Err(e) = me.wake_camera() {
                log::warn!("camera-sim: could not come back after reboot: {e}");
            }
        });
    }

    /// Moves the camera-facing listeners to `ip` (same ports if `keep_ports`, else
    /// ephemeral), with byebye before and alive after. Same UDN.
    pub fn change_address(self: &Arc<Self>, ip: IpAddr, keep_ports: bool) -> io::Result<()> {
        ssdp::send_notify(self, false);
        self.close_camera_listeners();
        {
            let mut g = self.lock();
            let mv = |a: SocketAddr| SocketAddr::new(ip, if keep_ports { a.port() } else { 0 });
            g.net.https = g.net.https.map(mv);
            g.net.http = g.net.http.map(mv);
            g.net.description = mv(g.net.description);
            g.net.offline = None;
            g.events.reset_session();
        }
        self.open_camera_listeners()?;
        self.touch();
        ssdp::send_notify(self, true);
        Ok(())
    }
}

/// Auto power off: after `autopoweroff` seconds without a CCAPI request the body sleeps
/// (byebye, then a blackhole: its Wi-Fi is gone). Runs on the sim clock.
async fn auto_power_off(shared: Arc<Shared>) {
    loop {
        let generation = shared.changed.generation();
        let deadline = {
            let g = shared.lock();
            match g.cam.autopoweroff.parse::<u64>() {
                Ok(secs) if g.cam.power == Power::On => {
                    Some(g.last_activity + Duration::from_secs(secs))
                }
                _ => None,
            }
        };
        match deadline {
            None => shared.changed.changed_since(generation).await,
            Some(d) if shared.now() >= d => {
                shared.sleep_camera(OfflineMode::Blackhole);
            }
            Some(d) => {
                futures_lite::future::or(shared.clock.sleep_until(d), async {
                    shared.changed.changed_since(generation).await
                })
                .await
            }
        }
    }
}

// ---- the handle -----------------------------------------------------------------------------

/// A snapshot of the simulator's state for tests (`SimHandle::status`, `wait_until`).
#[derive(Debug, Clone)]
pub struct SimStatus {
    pub power: Power,
    pub offline: Option<OfflineMode>,
    pub poll_outstanding: bool,
    pub engine_busy: bool,
    pub button: Button,
    /// File names on the card, oldest first (e.g. `100CANON/IMG_0001.JPG`).
    pub files: Vec<String>,
    pub battery_percent: f64,
    pub card_free: u64,
    pub wedged_502: bool,
    pub open_connections: usize,
    /// Well-formed M-SEARCHes the SSDP socket received.
    pub ssdp_searches: u64,
}

/// A running simulator. Dropping it stops everything (like [`SimHandle::shutdown`]).
pub struct SimHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    stop: Option<async_channel::Sender<()>>,
}

impl SimHandle {
    /// Binds every listener, starts the simulator thread and sends an SSDP alive.
    pub fn start(cfg: SimConfig) -> io::Result<SimHandle> {
        let (clock, manual): (SharedTime, Option<ManualClock>) = match &cfg.clock {
            SimClock::System => (Arc::new(RealTime), None),
            SimClock::Manual(m) => (Arc::new(m.clone()), Some(m.clone())),
            SimClock::Shared(c) => (c.clone(), None),
        };
        let now = clock.now();
        let utc_ms = crate::time::unix_millis(clock.wall());
        let mut cam = state::CameraState::new(cfg.profile, cfg.seed, now, utc_ms);
        cam.clock.std_offset_min = cfg.tz_offset_min;
        cam.clock.dst = cfg.dst;
        cam.lv.knobs = cfg.liveview.clone();
        // The R6m3 rejects `&t=` on flipdetail (CCAPI.md §1.9).
        cam.lv.knobs.flipdetail_rejects_extra_query |= cfg.profile == Profile::R6m3;
        let mac_hex: String = cam.mac.replace(':', "").to_ascii_uppercase();
        let udn = format!("uuid:00000000-0000-0000-0001-{mac_hex}");
        let tls = tls::TlsMaterial::generate(&cfg.tls_common_name, &cfg.tls_san)?;
        let exec = Arc::new(Executor::new());
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner {
                cam,
                events: EventsState::default(),
                faults: faults::Faults::new(cfg.seed),
                net: NetState {
                    https: cfg.https_addr,
                    http: cfg.http_addr,
                    description: cfg.description_addr,
                    control: None,
                    ssdp: None,
                    offline: None,
                },
                ssdp: ssdp::SsdpKnobs::default(),
                timing: cfg.timing.clone(),
                on_service: false,
                second_client: None,
                boot_epoch: 0,
                af_fail_probability: 0.0,
                rng: crate::time::Rng::new(cfg.seed.wrapping_mul(31).wrapping_add(7)),
                bulb_oneshot_rejected: true,
                bandwidth: None,
                taken_in_preparation: 0,
                standby_after_wake: 0,
                split_raw_jpeg: None,
                last_activity: now,
                last_origin: String::new(),
                world: pictures::World::new(cfg.sky.clone(), cfg.seed),
            }),
            changed: Signal::new(),
            kill: Signal::new(),
            state_cv: Condvar::new(),
            log: RequestLog {
                inner: Mutex::new(LogInner {
                    records: VecDeque::new(),
                    next_seq: 0,
                }),
                cv: Condvar::new(),
                cap: cfg.request_log_cap.max(1),
            },
            tls: Mutex::new(tls),
            clock,
            manual_clock: manual,
            udn,
            profile: cfg.profile,
            advertise: cfg.advertise,
            exec: Mutex::new(Some(exec.clone())),
            tasks: Mutex::new(ListenerTasks::default()),
            ssdp_socket: Mutex::new(None),
            multicast_socket: Mutex::new(None),
            notify_targets: Mutex::new(cfg.notify_targets.clone()),
            ssdp_multicast: cfg.ssdp_multicast,
            ssdp_multicast_addr: cfg.ssdp_multicast_addr,
            connections: AtomicUsize::new(0),
            pictures: pictures::Pictures::default(),
        });

        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let thread_exec = exec.clone();
        let thread = std::thread::Builder::new()
            .name("camera-sim".into())
            .spawn(move || {
                futures_lite::future::block_on(thread_exec.run(async move {
                    let _ = stop_rx.recv().await;
                }));
            })?;
        let handle = SimHandle {
            shared: shared.clone(),
            thread: Some(thread),
            stop: Some(stop_tx),
        };

        shared.open_camera_listeners()?;
        if let Some(addr) = cfg.control_addr {
            let got = shared.bind_listener(Listener::Control, addr)?;
            shared.lock().net.control = Some(got);
        }
        if let Some(addr) = cfg.ssdp_addr {
            let got = ssdp::start(&shared, addr, cfg.notify_interval)?;
            shared.lock().net.ssdp = Some(got);
        }
        if cfg.ssdp_multicast {
            if let Err(e) = ssdp::start_multicast(&shared) {
                log::warn!("camera-sim: multicast SSDP unavailable: {e}");
            }
        }
        let me = shared.clone();
        if let Some(t) = shared.spawn(auto_power_off(me)) {
            shared
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .other
                .push(t);
        }
        ssdp::send_notify(&shared, true);
        Ok(handle)
    }

    // ---- addresses and identity -------------------------------------------------------------

    /// CCAPI HTTPS address (`None` if disabled).
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.shared.lock().net.https
    }

    /// CCAPI plain HTTP address (`None` if disabled).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.shared.lock().net.http
    }

    /// The CCAPI base URL as advertised in `X_accessURL` (e.g. `https://127.0.0.1:41234/ccapi`).
    pub fn access_url(&self) -> Option<String> {
        self.shared.access_url()
    }

    pub fn description_addr(&self) -> SocketAddr {
        self.shared.lock().net.description
    }

    /// `http://<ip>:<port>/upnp/CameraDevDesc.xml`
    pub fn description_url(&self) -> String {
        self.shared.description_url()
    }

    /// The SSDP socket (send M-SEARCH here in unicast tests).
    pub fn ssdp_addr(&self) -> Option<SocketAddr> {
        self.shared.lock().net.ssdp
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.shared.lock().net.control
    }

    /// `https://<addr>/ccapi` when HTTPS is enabled.
    pub fn https_base(&self) -> Option<String> {
        self.https_addr().map(|a| format!("https://{a}/ccapi"))
    }

    /// `http://<addr>/ccapi` when plain HTTP is enabled.
    pub fn http_base(&self) -> Option<String> {
        self.http_addr().map(|a| format!("http://{a}/ccapi"))
    }

    /// `uuid:00000000-0000-0000-0001-<MAC>`
    pub fn udn(&self) -> String {
        self.shared.udn.clone()
    }

    pub fn serial_number(&self) -> String {
        self.shared.lock().cam.serial.clone()
    }

    pub fn profile(&self) -> Profile {
        self.shared.profile
    }

    /// The camera CA certificate (DER), as served at `functions/ssl/cacert`.
    pub fn ca_cert_der(&self) -> Vec<u8> {
        self.shared
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ca_der
            .clone()
    }

    /// The current leaf certificate (DER) the HTTPS listener presents.
    pub fn leaf_cert_der(&self) -> Vec<u8> {
        self.shared
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .leaf_der
            .clone()
    }

    /// The manual clock, when the simulator runs on virtual time.
    pub fn manual_clock(&self) -> Option<ManualClock> {
        self.shared.manual_clock.clone()
    }

    // ---- request log -----------------------------------------------------------------------

    /// Every logged request (bounded by `request_log_cap`), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.since(0)
    }

    pub fn requests_since(&self, seq: u64) -> Vec<RequestRecord> {
        self.shared.log.since(seq)
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().records.clear();
    }

    /// Blocks until `pred` holds for the request log or `timeout` passes (real time).
    pub fn wait_requests(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RequestRecord]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.log.lock();
        loop {
            let (a, b) = g.records.as_slices();
            let all: Vec<RequestRecord> = a.iter().chain(b).cloned().collect();
            if pred(&all) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .shared
                .log
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    // ---- state ----------------------------------------------------------------------------

    pub fn status(&self) -> SimStatus {
        let g = self.shared.lock();
        status_of(&g, &self.shared)
    }

    /// Blocks until `pred` holds for the status or `timeout` passes (real time).
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&SimStatus) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if pred(&status_of(&g, &self.shared)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .shared
                .state_cv
                .wait_timeout(g, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The full state as JSON (what `GET /_sim/state` returns).
    pub fn state_json(&self) -> serde_json::Value {
        control::state_json(&self.shared)
    }

    /// Partial update, same keys as `PATCH /_sim/state` (see `control.rs`).
    pub fn patch_state(&self, patch: &serde_json::Value) -> Result<(), String> {
        control::patch_state(&self.shared, patch)
    }

    pub fn set_battery(&self, percent: f64) {
        let mut g = self.shared.lock();
        g.cam.battery.percent = percent.clamp(0.0, 100.0);
        let v = g.cam.battery_json();
        g.events.emit("battery", v);
        drop(g);
        self.shared.touch();
    }

    pub fn set_battery_drain_per_shot(&self, percent: f64) {
        self.shared.lock().cam.battery.drain_per_shot = percent.max(0.0);
    }

    pub fn set_batterylist_bug(&self, on: bool) {
        self.shared.lock().cam.battery.batterylist_bug = on;
    }

    /// Free bytes on the card.
    pub fn set_card_free(&self, bytes: u64) {
        let mut g = self.shared.lock();
        g.cam.card.free = bytes.min(g.cam.card.max_size);
        events::emit_storage(&mut g, "");
        drop(g);
        self.shared.touch();
    }

    pub fn set_card_present(&self, present: bool) {
        let mut g = self.shared.lock();
        g.cam.card.present = present;
        events::emit_storage(&mut g, "");
        drop(g);
        self.shared.touch();
    }

    pub fn set_temperature(&self, status: &str) {
        let mut g = self.shared.lock();
        g.cam.temperature = status.to_string();
        g.events
            .emit("temperature", serde_json::json!({"status": status}));
        drop(g);
        self.shared.touch();
    }

    /// Sets a setting's value directly (a turned dial), bypassing validation, emitting an event.
    pub fn set_setting(&self, name: &str, value: serde_json::Value) -> bool {
        let mut g = self.shared.lock();
        let Some(s) = g.cam.settings.get_mut(name) else {
            return false;
        };
        s.value = value;
        events::emit_setting(&mut g, name);
        drop(g);
        self.shared.touch();
        true
    }

    pub fn set_root_listing(&self, style: RootListing) {
        self.shared.lock().cam.root_listing = style;
    }

    /// The camera's auto power off (`"30"`, `"60"`, …, `"disable"`), as a client PUT would.
    pub fn set_autopoweroff(&self, value: &str) {
        self.shared.lock().cam.autopoweroff = value.to_string();
        self.shared.touch();
    }

    pub fn set_timing(&self, f: impl FnOnce(&mut Timing)) {
        f(&mut self.shared.lock().timing);
    }

    pub fn set_af_fail_probability(&self, p: f64) {
        self.shared.lock().af_fail_probability = p.clamp(0.0, 1.0);
    }

    /// `X_onService` in the description (1: a client is connected), without refusing anyone.
    pub fn set_on_service(&self, on: bool) {
        self.shared.lock().on_service = on;
    }

    /// Another client holds the camera: `X_onService` 1 and CCAPI calls refused per `mode`.
    pub fn set_second_client(&self, mode: Option<SecondClient>) {
        self.shared.lock().second_client = mode;
    }

    /// A press of the body's own shutter button (no client request); `hold` for bulb.
    pub fn press_shutter(&self, hold: Option<Duration>) -> Result<(), String> {
        shooting::physical_press(&self.shared, hold)
    }

    /// Paces CCAPI response bodies at `bytes_per_sec` (real time); `None` removes the cap.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.shared.lock().bandwidth = bytes_per_sec;
    }

    /// The next `n` POST/PUT calls answer 503 `Taken in preparation` (camera in standby).
    pub fn set_taken_in_preparation(&self, n: u32) {
        self.shared.lock().taken_in_preparation = n;
    }

    /// After every wake/reboot/power-on, the first `n` POST/PUT calls get 503
    /// `Taken in preparation` (the body leaving connection standby). Default 0.
    pub fn set_standby_after_wake(&self, n: u32) {
        self.shared.lock().standby_after_wake = n;
    }

    /// RAW+JPEG: report the JPG `delay` after the CR3, so they land in separate polls.
    pub fn set_split_raw_jpeg(&self, delay: Option<Duration>) {
        self.shared.lock().split_raw_jpeg = delay;
    }

    /// Event loss: the next `n` changes are never reported.
    pub fn drop_next_events(&self, n: u32) {
        self.shared.lock().events.drop_next = n;
    }

    /// Report every new file twice in `addedcontents` (clients must dedupe).
    pub fn set_duplicate_addedcontents(&self, on: bool) {
        self.shared.lock().events.duplicate_added = on;
    }

    /// Whether DELETE of a poll keeps the session (next poll = delta, not snapshot).
    pub fn set_keep_session_on_delete(&self, on: bool) {
        self.shared.lock().events.keep_session_on_delete = on;
    }

    /// `shutterbutton` while tv is bulb: 503 `Mode not supported` (default) or a 0 s shot.
    pub fn set_bulb_oneshot_rejected(&self, on: bool) {
        self.shared.lock().bulb_oneshot_rejected = on;
    }

    /// The raw change log (`seq`, key, value), oldest first (bounded).
    pub fn event_log(&self) -> Vec<(u64, String, serde_json::Value)> {
        self.shared.lock().events.log.iter().cloned().collect()
    }

    // ---- scene, focus, live view -----------------------------------------------------------

    /// The sky and picture knobs now.
    pub fn sky(&self) -> SkyConfig {
        let g = self.shared.lock();
        let mut sky = g.world.sky.clone();
        sky.true_focus = Some(g.world.true_focus);
        sky
    }

    /// Changes the sky and picture knobs (location, mode, scene EV, night EV, true focus,
    /// thumbnail quirks); see [`SkyConfig`].
    pub fn set_sky(&self, f: impl FnOnce(&mut SkyConfig)) {
        let mut g = self.shared.lock();
        let mut sky = g.world.sky.clone();
        sky.true_focus = Some(g.world.true_focus);
        f(&mut sky);
        if let Some(t) = sky.true_focus {
            g.world.true_focus = t.clamp(0, pictures::FOCUS_MAX);
        }
        g.world.sky = sky;
        drop(g);
        self.shared.touch();
    }

    /// (scene EV at ISO 100, sun altitude in degrees) at the camera clock's time now.
    pub fn scene_light(&self) -> (f64, f64) {
        let now = self.shared.now();
        let g = self.shared.lock();
        g.world.light_at(g.cam.clock.utc_ms(now))
    }

    /// The focus position where stars are sharpest.
    pub fn true_focus(&self) -> i32 {
        self.shared.lock().world.true_focus
    }

    /// The lens's focus position (0 ..= [`pictures::FOCUS_MAX`]; `drivefocus` moves it).
    pub fn focus_position(&self) -> i32 {
        self.shared.lock().cam.focus.position
    }

    /// Sets the focus position directly (a turned focus ring).
    pub fn set_focus_position(&self, position: i32) {
        self.shared.lock().cam.focus.position = position.clamp(0, pictures::FOCUS_MAX);
        self.shared.touch();
    }

    /// Steps of `near1|far1`, `near2|far2`, `near3|far3` (default 1, 8, 40).
    pub fn set_focus_steps(&self, steps: [i32; 3]) {
        self.shared.lock().cam.focus.steps = steps.map(|s| s.clamp(1, pictures::FOCUS_MAX));
    }

    /// Where the brightest star is, in frame units (0..1 across, 0..1 down).
    pub fn brightest_star(&self) -> (f64, f64) {
        self.shared.lock().world.scene.brightest
    }

    /// The body's live-view magnification (1, 5 or 10) around (`u`, `v`) in frame units,
    /// as if set on the camera (CCAPI.md documents no endpoint for it).
    pub fn set_lv_zoom(&self, magnification: u8, u: f64, v: f64) -> Result<(), String> {
        control::set_zoom(&mut self.shared.lock(), magnification, u, v)?;
        self.shared.touch();
        Ok(())
    }

    /// Live-view timing and quirk knobs.
    pub fn set_liveview_knobs(&self, f: impl FnOnce(&mut LvKnobs)) {
        f(&mut self.shared.lock().cam.lv.knobs);
    }

    /// `small`, `medium` or `None` (live view off).
    pub fn liveview_size(&self) -> Option<&'static str> {
        self.shared.lock().cam.lv.size.map(liveview::LvSize::name)
    }

    /// Pictures rendered so far (a cached one does not count again).
    pub fn pictures_rendered(&self) -> u64 {
        self.shared.pictures.renders()
    }

    // ---- faults ---------------------------------------------------------------------------

    /// Adds a fault rule; returns its id. `count`: how many times it fires (`None`: forever).
    pub fn add_fault(&self, matcher: FaultMatch, action: FaultAction, count: Option<u32>) -> u64 {
        self.shared.lock().faults.add(matcher, action, count, 1.0)
    }

    /// Like `add_fault`, firing with `probability` (seeded RNG).
    pub fn add_fault_p(
        &self,
        matcher: FaultMatch,
        action: FaultAction,
        count: Option<u32>,
        probability: f64,
    ) -> u64 {
        self.shared
            .lock()
            .faults
            .add(matcher, action, count, probability)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.lock().faults.remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every request answers 502 until `reboot` (the R50's wedged web service).
    pub fn set_wedged_502(&self, on: bool) {
        self.shared.lock().faults.wedged_502 = on;
    }

    /// RST connections beyond `n` concurrent ones (`None`: unlimited).
    pub fn set_max_connections(&self, n: Option<usize>) {
        self.shared.lock().faults.max_connections = n;
    }

    /// Open CCAPI/description connections right now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// All camera-facing listeners go dark (`Refuse`: closed; `Blackhole`: accept, never
    /// answer); open connections are reset; SSDP stays silent.
    pub fn set_offline(&self, mode: OfflineMode) {
        self.shared.go_offline(mode);
    }

    /// Back online on the same addresses (rebinding if needed).
    pub fn set_online(&self) -> io::Result<()> {
        self.shared.go_online()
    }

    /// Auto power off: byebye, then dark in `mode`.
    pub fn sleep(&self, mode: OfflineMode) {
        self.shared.sleep_camera(mode);
    }

    /// Wake from sleep (or power on): back online, alive.
    pub fn wake(&self) -> io::Result<()> {
        self.shared.wake_camera()
    }

    pub fn power_off(&self) {
        self.shared.power_off();
    }

    /// Byebye, refuse for `down` (sim clock), then alive. Files, settings, clock, counter
    /// survive; the polling session, a held press and the 502 wedge do not.
    pub fn reboot(&self, down: Duration) {
        self.shared.reboot(down);
    }

    /// Moves the camera to `ip` (another 127.0.0.x on Linux), same ports if `keep_ports`.
    /// Byebye before, alive after; `X_accessURL` and `Location` follow; same UDN.
    pub fn change_address(&self, ip: IpAddr, keep_ports: bool) -> io::Result<()> {
        self.shared.change_address(ip, keep_ports)
    }

    /// Issues a new TLS leaf (new key, same CA): a client that pinned the old one notices.
    pub fn rotate_tls_leaf(&self) -> io::Result<()> {
        self.shared
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rotate_leaf()
    }

    // ---- camera clock -------------------------------------------------------------------

    /// Camera clock drift in parts per million (positive: camera runs fast).
    pub fn set_clock_drift_ppm(&self, ppm: f64) {
        let mut g = self.shared.lock();
        let now = self.shared.now();
        let utc = g.cam.clock.utc_ms(now);
        g.cam.clock.set_utc(now, utc);
        g.cam.clock.drift_ppm = ppm;
    }

    /// Sets the camera's UTC time (Unix ms).
    pub fn set_camera_utc_ms(&self, utc_ms: i64) {
        let now = self.shared.now();
        self.shared.lock().cam.clock.set_utc(now, utc_ms);
    }

    /// The camera's UTC time (Unix ms) and its (standard offset minutes, dst).
    pub fn camera_time(&self) -> (i64, i32, bool) {
        let now = self.shared.now();
        let g = self.shared.lock();
        (
            g.cam.clock.utc_ms(now),
            g.cam.clock.std_offset_min,
            g.cam.clock.dst,
        )
    }

    /// Advances the manual clock (no-op on the system clock; returns whether it moved).
    pub fn advance(&self, by: Duration) -> bool {
        match &self.shared.manual_clock {
            Some(m) => {
                m.advance(by);
                true
            }
            None => false,
        }
    }

    // ---- SSDP ------------------------------------------------------------------------------

    pub fn ssdp_knobs(&self, f: impl FnOnce(&mut ssdp::SsdpKnobs)) {
        f(&mut self.shared.lock().ssdp);
    }

    /// Sends NOTIFY alive (true) or byebye (false) now.
    pub fn send_notify(&self, alive: bool) {
        ssdp::send_notify(&self.shared, alive);
    }

    pub fn set_notify_targets(&self, targets: Vec<SocketAddr>) {
        *self
            .shared
            .notify_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = targets;
    }

    /// Stops every listener and the simulator thread (also on drop).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Dropping the executor drops every task (listeners, connections, capture tasks).
        let exec = self
            .shared
            .exec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        drop(tasks);
        drop(exec);
        *self
            .shared
            .ssdp_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        *self
            .shared
            .multicast_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn status_of(g: &Inner, shared: &Shared) -> SimStatus {
    SimStatus {
        power: g.cam.power,
        offline: g.net.offline,
        poll_outstanding: g.events.poll_outstanding,
        engine_busy: g.cam.engine != state::Engine::Idle,
        button: g.cam.button,
        files: g
            .cam
            .card
            .files
            .iter()
            .map(|f| format!("{}/{}", f.folder, f.name))
            .collect(),
        battery_percent: g.cam.battery.percent,
        card_free: g.cam.card.free,
        wedged_502: g.faults.wedged_502,
        open_connections: shared.connections.load(Ordering::SeqCst),
        ssdp_searches: g.ssdp.searches_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_waker() -> Waker {
        futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }))
    }

    #[test]
    fn signal_wait_resolves_on_notify_and_cleans_up_when_dropped() {
        let s = Signal::new();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut w = Box::pin(s.changed_since(s.generation()));
        assert!(w.as_mut().poll(&mut cx).is_pending());
        assert_eq!(s.inner.lock().unwrap().1.len(), 1);
        drop(w);
        // Regression: a dropped wait used to leave its waker behind until the next notify.
        assert!(s.inner.lock().unwrap().1.is_empty());
        let mut w = Box::pin(s.changed_since(s.generation()));
        assert!(w.as_mut().poll(&mut cx).is_pending());
        s.notify();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
