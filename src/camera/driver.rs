//! The camera driver: owns the link machine and the CCAPI session; does the camera's I/O.
//!
//! ```text
//!  CameraLinkHandle ─┐                         ┌─▶ control worker thread (socket 1):
//!  (discovery)       │  DriverMsg              │   probes, health checks, shots (queued
//!  CameraHandle ─────┼──────────▶ link task ───┤   first), settings, clock, …
//!  (intervalometer,  │  (smol, one timer,      │
//!   time sync)       │   LinkMachine)          └─▶ event worker thread (socket 2):
//!  CameraService ────┘        ▲                     long-polls events → FilesAdded,
//!                             └── results ──────    test-photo downloads
//! ```
//!
//! ureq is blocking, so camera I/O runs on two dedicated threads, one per allowed socket; the
//! link task only decides. A shot (`CameraControl::shoot_at`, called ~300 ms ahead) goes to
//! the front of the control queue; the worker warms the connection if it sat idle, sleeps to
//! ~2 ms before `due` on the monotonic clock, yields/spins the rest, and sends. Event polling
//! never blocks shots: it has its own socket and reports `CameraNotice::FilesAdded`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::ccapi::{
    added_contents, shutter_timeout, storage_summary, Session, Timeouts, AF_ALLOWANCE,
};
use super::link::{Action, Input, LinkMachine, Target};
use super::service::CameraService;
use super::tls::Trust;
use super::{
    CameraControl, CameraDateTime, CameraNotice, CameraSettings, ShotOutcome, ShotRequest,
};
use crate::app::{Publisher, StatusBoard};
use crate::backoff::{Backoff, Rng};
use crate::clock::{BoxFuture, SharedClock};
use crate::config::Config;
use crate::protocol::{ApiError, ErrorCode};
use crate::util::iso8601;

/// Jobs waiting per worker at most; more is refused (no queue grows without bound).
const MAX_JOBS: usize = 32;
/// Notices buffered per subscriber.
const NOTICE_CAPACITY: usize = 64;
/// A shot on a connection idle longer than this sends a cheap request first.
const WARM_AFTER: Duration = Duration::from_secs(4);
/// Storage and temperature are read on every Nth health check (60 s at 10 s checks).
const SLOW_STATUS_EVERY: u64 = 6;

/// Knobs for tests and the demo; `Default` is production.
#[derive(Clone)]
pub struct DriverOptions {
    pub data_dir: PathBuf,
    pub timeouts: Timeouts,
    pub trust: Arc<Trust>,
    pub backoff: Backoff,
    pub rng_seed: Option<u64>,
    /// Connect here at start ("ip[:port]" or a URL).
    pub initial_target: Option<String>,
}

impl DriverOptions {
    pub fn from_config(config: &Config) -> DriverOptions {
        DriverOptions {
            data_dir: config.data_dir.clone(),
            timeouts: Timeouts::default(),
            trust: Trust::load(&config.data_dir, config.camera_insecure),
            backoff: Backoff::CAMERA,
            rng_seed: None,
            initial_target: config.camera.clone(),
        }
    }
}

/// `ip`, `ip:port`, or a URL → the CCAPI base URL. Port 443 (or none) means HTTPS; other
/// ports HTTP (the camera's plain service is on 8080).
pub fn camera_url(addr: &str) -> Option<String> {
    let addr = addr.trim();
    if addr.is_empty() || addr.contains(char::is_whitespace) {
        return None;
    }
    if addr.starts_with("http://") || addr.starts_with("https://") {
        let base = addr.trim_end_matches('/');
        return Some(if base.ends_with("/ccapi") {
            base.to_string()
        } else {
            format!("{base}/ccapi")
        });
    }
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().ok()?),
        _ => (addr, 443),
    };
    let scheme = if port == 443 { "https" } else { "http" };
    Some(format!("{scheme}://{host}:{port}/ccapi"))
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

fn info_of(s: &Session) -> CameraInfo {
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

// ---------------------------------------------------------------------------------------------
// Worker queues

type Job = Box<dyn FnOnce() + Send>;

enum Popped {
    Job(Job),
    Kicked,
    TimedOut,
    Closed,
}

#[derive(Default)]
struct QueueState {
    /// Shots (with their due instant) first, in due order; then other jobs in arrival order.
    jobs: VecDeque<(Option<Instant>, Job)>,
    kicked: bool,
    closed: bool,
}

#[derive(Default)]
struct JobQueue {
    state: Mutex<QueueState>,
    cv: Condvar,
}

impl JobQueue {
    fn push(&self, job: Job, front: bool) -> Result<(), ApiError> {
        self.push_at(job, front.then(Instant::now))
    }

    /// `due: Some(_)` = a shot: ahead of ordinary jobs, behind shots due earlier.
    fn push_at(&self, job: Job, due: Option<Instant>) -> Result<(), ApiError> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(ApiError::unavailable("Camera driver is shutting down"));
        }
        if s.jobs.len() >= MAX_JOBS {
            return Err(ApiError::new(
                ErrorCode::CameraBusy,
                "Too many camera requests waiting; try again",
            ));
        }
        match due {
            Some(d) => {
                let at = s
                    .jobs
                    .iter()
                    .position(|(other, _)| other.is_none_or(|o| o > d))
                    .unwrap_or(s.jobs.len());
                s.jobs.insert(at, (due, job));
            }
            None => s.jobs.push_back((None, job)),
        }
        self.cv.notify_one();
        Ok(())
    }

    fn kick(&self) {
        lock(&self.state).kicked = true;
        self.cv.notify_one();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_all();
    }

    fn try_pop(&self) -> Option<Job> {
        lock(&self.state).jobs.pop_front().map(|(_, j)| j)
    }

    fn pop(&self, wait: Option<Duration>) -> Popped {
        let deadline = wait.map(|w| Instant::now() + w);
        let mut s = lock(&self.state);
        loop {
            if let Some((_, j)) = s.jobs.pop_front() {
                return Popped::Job(j);
            }
            if s.closed {
                return Popped::Closed;
            }
            if s.kicked {
                s.kicked = false;
                return Popped::Kicked;
            }
            match deadline {
                None => s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Popped::TimedOut;
                    }
                    s = self
                        .cv
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Shared state

enum DriverMsg {
    Input(Input),
    ProbeDone {
        gen: u64,
        result: Result<Box<Session>, ApiError>,
    },
    HealthDone(Result<(), ApiError>),
    Adopt(Box<Session>),
    Shutdown,
}

/// What the status block shows about the link (written by the link task).
#[derive(Default, Clone)]
struct LinkView {
    state: &'static str,
    last_error: Option<String>,
    next_retry_at: Option<String>,
}

pub(crate) struct Inner {
    pub(crate) trust: Arc<Trust>,
    pub(crate) timeouts: Timeouts,
    pub(crate) data_dir: PathBuf,
    pub(crate) clock: SharedClock,
    pub(crate) status: StatusBoard,
    pub(crate) publisher: Publisher,
    session: RwLock<Option<Arc<Session>>>,
    connected: AtomicBool,
    control: JobQueue,
    events: JobQueue,
    to_link: async_channel::Sender<DriverMsg>,
    subscribers: Mutex<Vec<async_channel::Sender<CameraNotice>>>,
    battery: Mutex<Value>,
    /// Main shooting settings as last reported (event polling, reads, our own changes).
    settings: Mutex<CameraSettings>,
    link_view: Mutex<LinkView>,
    last_control: Mutex<Option<Instant>>,
    health_count: AtomicU64,
    /// Link work not finished: inputs not yet handled, probes/health checks on the wire.
    in_flight: AtomicUsize,
    /// The deadline the link task sleeps until (for [`CameraLinkHandle::busy`]).
    next_deadline: Mutex<Option<Instant>>,
    /// Serialises test shots (one at a time).
    pub(crate) test_shot: async_lock::Mutex<()>,
}

impl Inner {
    /// The connected session, or CAMERA_OFFLINE.
    pub(crate) fn session(&self) -> Result<Arc<Session>, ApiError> {
        if !self.connected.load(Ordering::Acquire) {
            return Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not connected",
            ));
        }
        self.session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ApiError::new(ErrorCode::CameraOffline, "Camera not connected"))
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn tell_link(&self, msg: DriverMsg) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.to_link.try_send(msg) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if e.is_full() {
                log::warn!("camera link task is behind; dropped an input");
            }
        }
    }

    /// Pushes a job the link machine waits for (probe, health check), counted in `in_flight`
    /// until its answer has been handed to the link task.
    fn push_link_job(&self, job: Job) -> Result<(), ApiError> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let r = self.control.push(job, false);
        if r.is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        r
    }

    fn link_job_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Feeds an operation's outcome to the link machine.
    fn report(&self, result: &Result<impl Sized, ApiError>) {
        match result {
            Ok(_) => self.tell_link(DriverMsg::Input(Input::OperationOk)),
            Err(e) if e.code == ErrorCode::CameraOffline => {
                self.tell_link(DriverMsg::Input(Input::ConnectionLost {
                    reason: e.message.clone(),
                }))
            }
            Err(_) => {}
        }
    }

    pub(crate) fn notify(&self, n: CameraNotice) {
        lock(&self.subscribers).retain(|tx| match tx.try_send(n.clone()) {
            Ok(()) => true,
            Err(async_channel::TrySendError::Full(_)) => true,
            Err(async_channel::TrySendError::Closed(_)) => false,
        });
    }

    pub(crate) fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        let (tx, rx) = async_channel::bounded(NOTICE_CAPACITY);
        let mut subs = lock(&self.subscribers);
        subs.retain(|s| !s.is_closed());
        subs.push(tx);
        rx
    }

    /// Runs `f` with the session on the control worker; reports the outcome to the link.
    pub(crate) fn on_control<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        self.run_on(false, f)
    }

    /// Runs `f` on the event worker (downloads), between polls.
    pub(crate) fn on_events<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        self.run_on(true, f)
    }

    fn run_on<T: Send + 'static>(
        self: &Arc<Self>,
        events: bool,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (tx, rx) = async_channel::bounded(1);
        let me = self.clone();
        let job: Job = Box::new(move || {
            let r = f(&session);
            if !events {
                *lock(&me.last_control) = Some(Instant::now());
            }
            me.report(&r);
            let _ = tx.try_send(r);
        });
        let queue = if events { &self.events } else { &self.control };
        if let Err(e) = queue.push(job, false) {
            return Box::pin(async move { Err(e) });
        }
        Box::pin(async move {
            rx.recv()
                .await
                .unwrap_or_else(|_| Err(ApiError::system("Camera worker stopped")))
        })
    }

    fn camera_block(&self) -> Value {
        let session = self
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let view = lock(&self.link_view).clone();
        let connected = self.is_connected();
        let (ip, port, model, uuid) = match &session {
            Some(s) => {
                let (ip, port) = s.host_port();
                (
                    json!(ip),
                    json!(port),
                    json!(s.info.productname),
                    json!(s.id),
                )
            }
            None => (Value::Null, Value::Null, Value::Null, Value::Null),
        };
        json!({
            "connected": connected,
            "ip": ip,
            "port": port,
            "model": model,
            "uuid": uuid,
            "battery": lock(&self.battery).clone(),
            "settings": lock(&self.settings).clone(),
            "lastError": view.last_error,
            "state": view.state,
            "nextRetryAt": view.next_retry_at,
        })
    }

    pub(crate) fn publish_block(&self) {
        self.status.set("camera", self.camera_block());
    }

    /// Takes settings from a settings read or an event-polling delta; republishes on change.
    pub(crate) fn note_settings(&self, v: &Value) {
        let changed = lock(&self.settings).update_from(v);
        if changed {
            self.publish_block();
        }
    }

    pub(crate) fn settings(&self) -> CameraSettings {
        lock(&self.settings).clone()
    }

    fn set_battery(&self, v: Value) {
        let b = json!({
            "level": v.get("level").cloned().unwrap_or(Value::Null),
            "kind": v.get("kind").cloned().unwrap_or(Value::Null),
            "quality": v.get("quality").cloned().unwrap_or(Value::Null),
            "name": v.get("name").cloned().unwrap_or(Value::Null),
        });
        *lock(&self.battery) = b;
        self.publish_block();
    }

    /// Fires one shot at `due` on this (control) thread.
    fn fire(&self, due: Instant, req: ShotRequest) -> ShotOutcome {
        let now = Instant::now();
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return ShotOutcome::not_sent(now, e),
        };
        // Keep the socket warm: a connection idle for long may have been closed by the
        // camera; find out now rather than pay a handshake at `due`.
        let idle = lock(&self.last_control)
            .map(|t| now.duration_since(t) > WARM_AFTER)
            .unwrap_or(true);
        if idle && due > now + Duration::from_millis(30) {
            let _ = session.get("deviceinformation");
        }
        // The camera answers a press only after the exposure: wait for the longer of what
        // the caller expects and what the camera's Tv says (unknown: the longest timed one).
        let exposure = match (req.exposure, self.settings().exposure_time()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // Real-time priority for the shot window only (best effort: needs CAP_SYS_NICE, which
        // the service has on the Pi; elsewhere it silently stays a normal thread).
        let _rt = RealtimeWindow::enter();
        let outcome = match req.bulb {
            None => {
                let url = session.shutter_url();
                wait_until(due);
                let timeout = shutter_timeout(self.timeouts.call, exposure, req.af);
                match url {
                    Ok(url) => match session.press(&url, req.af, timeout) {
                        Ok(sent) => ShotOutcome {
                            sent_at: sent,
                            replied_at: Instant::now(),
                            result: Ok(()),
                            maybe_taken: false,
                        },
                        Err(e) => ShotOutcome {
                            sent_at: due.max(now),
                            replied_at: Instant::now(),
                            result: Err(e.error),
                            maybe_taken: e.maybe_taken,
                        },
                    },
                    Err(e) => ShotOutcome::not_sent(Instant::now(), e),
                }
            }
            Some(hold) => {
                wait_until(due);
                let sent_at = Instant::now();
                let timeout = self.timeouts.call;
                let pressed = session.manual(
                    "full_press",
                    req.af,
                    timeout + if req.af { AF_ALLOWANCE } else { Duration::ZERO },
                );
                if pressed.is_ok() {
                    wait_until(sent_at + hold);
                }
                // Always release, even after a failed press: a stuck button blocks the camera.
                // The release may be answered after noise reduction (a dark frame as long).
                let released = session.manual("release", false, timeout + hold);
                let maybe_taken = pressed.is_ok() && released.is_err();
                ShotOutcome {
                    sent_at,
                    replied_at: Instant::now(),
                    result: pressed.and(released),
                    maybe_taken,
                }
            }
        };
        *lock(&self.last_control) = Some(Instant::now());
        self.report(&outcome.result);
        outcome
    }
}

/// While alive, the calling thread runs SCHED_FIFO (if permitted), so a busy CPU cannot
/// delay the press by a scheduler time slice; the previous policy returns on drop.
struct RealtimeWindow {
    previous: Option<(libc::c_int, libc::sched_param)>,
}

impl RealtimeWindow {
    fn enter() -> RealtimeWindow {
        // SAFETY: plain syscalls on the calling thread (pid 0) with owned, initialised params.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old: libc::sched_param = std::mem::zeroed();
            if policy < 0 || libc::sched_getparam(0, &mut old) != 0 {
                return RealtimeWindow { previous: None };
            }
            let rt = libc::sched_param { sched_priority: 10 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt) != 0 {
                return RealtimeWindow { previous: None };
            }
            RealtimeWindow {
                previous: Some((policy, old)),
            }
        }
    }
}

impl Drop for RealtimeWindow {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.previous {
            // SAFETY: restores the policy read in `enter` on the same thread.
            unsafe {
                libc::sched_setscheduler(0, policy, &param);
            }
        }
    }
}

/// Sleeps to ~2 ms before `due`, then yields/spins to it (monotonic clock). The margin
/// absorbs the scheduler's wake-up lateness on a loaded Pi; the spin costs ~2 ms of CPU per
/// shot.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_millis(3) {
            std::thread::sleep(left - Duration::from_millis(2));
        } else if left > Duration::from_micros(200) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

fn control_worker(inner: Arc<Inner>) {
    loop {
        match inner.control.pop(None) {
            Popped::Job(job) => job(),
            Popped::Closed => return,
            Popped::Kicked | Popped::TimedOut => {}
        }
    }
}

fn event_worker(inner: Arc<Inner>) {
    let mut failures = 0u32;
    loop {
        if let Some(job) = inner.events.try_pop() {
            job();
            continue;
        }
        let session = inner.session().ok();
        let Some(session) = session else {
            match inner.events.pop(None) {
                Popped::Job(job) => job(),
                Popped::Closed => return,
                _ => {}
            }
            continue;
        };
        match session.poll_events(true) {
            Ok(v) => {
                failures = 0;
                handle_event_delta(&inner, &v);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                log::debug!("event poll failed: {e}");
                // Back off (1, 2, 4 … 30 s) but stay responsive to jobs and reconnects.
                let wait =
                    Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30));
                match inner.events.pop(Some(wait)) {
                    Popped::Job(job) => job(),
                    Popped::Closed => return,
                    _ => {}
                }
            }
        }
        if lock(&inner.events.state).closed {
            return;
        }
    }
}

/// Files and status changes of one poll answer.
pub(crate) fn handle_event_delta(inner: &Inner, v: &Value) {
    let files = added_contents(v);
    if !files.is_empty() {
        inner.notify(CameraNotice::FilesAdded(files));
    }
    inner.note_settings(v);
    if let Some(b) = v.get("battery").filter(|b| b.is_object()) {
        inner.set_battery(b.clone());
    }
    if let Some(s) = v.get("storage").filter(|s| s.is_object()) {
        inner.status.set("storage", storage_summary(s));
    }
    if let Some(t) = v
        .get("temperature")
        .and_then(|t| t.get("status"))
        .and_then(Value::as_str)
    {
        inner.status.set("temperature", json!(t));
    }
}

// ---------------------------------------------------------------------------------------------
// The link task

struct LinkTask {
    inner: Arc<Inner>,
    machine: LinkMachine,
    rx: async_channel::Receiver<DriverMsg>,
    probe_gen: u64,
}

impl LinkTask {
    async fn run(mut self) {
        let mut handled_input = false;
        loop {
            self.perform_actions();
            self.update_view();
            if handled_input {
                // Only now: the input's consequences (new jobs) are counted themselves.
                self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            let deadline = self.machine.poll_timeout();
            *lock(&self.inner.next_deadline) = deadline;
            let clock = self.inner.clock.clone();
            let msg = match deadline {
                Some(d) => {
                    futures_lite::future::or(async { Some(self.rx.recv().await) }, async move {
                        clock.sleep_until(d).await;
                        None
                    })
                    .await
                }
                None => Some(self.rx.recv().await),
            };
            let now = self.inner.clock.now();
            handled_input = matches!(msg, Some(Ok(_)));
            match msg {
                None => self.machine.handle_timeout(now),
                Some(Err(_)) | Some(Ok(DriverMsg::Shutdown)) => break,
                Some(Ok(DriverMsg::Input(i))) => self.machine.handle(now, i),
                Some(Ok(DriverMsg::ProbeDone { gen, result })) => {
                    if gen != self.probe_gen {
                        continue;
                    }
                    match result {
                        Ok(session) => {
                            let id = session.id.clone();
                            self.install(*session);
                            self.machine.handle(now, Input::ProbeOk { id });
                        }
                        Err(e) => self.machine.handle(
                            now,
                            Input::ProbeFailed {
                                reason: e.message.clone(),
                            },
                        ),
                    }
                }
                Some(Ok(DriverMsg::HealthDone(r))) => match r {
                    Ok(()) => self.machine.handle(now, Input::HealthOk),
                    Err(e) => self.machine.handle(
                        now,
                        Input::HealthFailed {
                            reason: e.message.clone(),
                        },
                    ),
                },
                Some(Ok(DriverMsg::Adopt(session))) => {
                    self.probe_gen += 1;
                    let target = Target {
                        url: session.base_url.clone(),
                        id: Some(session.id.clone()),
                    };
                    self.install(*session);
                    self.machine.handle(now, Input::Adopt(target));
                }
            }
        }
        self.inner.connected.store(false, Ordering::Release);
    }

    fn install(&mut self, session: Session) {
        *self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(session));
    }

    fn perform_actions(&mut self) {
        while let Some(a) = self.machine.poll_action() {
            match a {
                Action::Probe(target) => {
                    self.probe_gen += 1;
                    let gen = self.probe_gen;
                    let inner = self.inner.clone();
                    let job: Job = Box::new(move || {
                        let result = Session::connect(
                            &target.url,
                            target.id.as_deref(),
                            inner.trust.clone(),
                            inner.timeouts,
                        )
                        .map(Box::new);
                        if let Err(e) = &result {
                            log::info!("camera probe {}: {e}", target.url);
                        }
                        inner.tell_link(DriverMsg::ProbeDone { gen, result });
                        inner.link_job_done();
                    });
                    if let Err(e) = self.inner.push_link_job(job) {
                        let now = self.inner.clock.now();
                        self.machine
                            .handle(now, Input::ProbeFailed { reason: e.message });
                    }
                }
                Action::HealthCheck => {
                    let inner = self.inner.clone();
                    let job: Job = Box::new(move || {
                        let r = health_check(&inner);
                        inner.tell_link(DriverMsg::HealthDone(r));
                        inner.link_job_done();
                    });
                    if self.inner.push_link_job(job).is_err() {
                        let now = self.inner.clock.now();
                        self.machine.handle(now, Input::HealthOk);
                    }
                }
                Action::Connected { id } => {
                    log::info!("camera {id} connected");
                    self.inner.connected.store(true, Ordering::Release);
                    self.inner.events.kick();
                    // Status first, so whoever reacts to the notice sees it.
                    self.update_view();
                    self.inner.notify(CameraNotice::Connected { id });
                    // Fresh status right away (battery, storage, temperature).
                    self.inner.health_count.store(0, Ordering::Relaxed);
                    let inner = self.inner.clone();
                    let _ = self.inner.push_link_job(Box::new(move || {
                        let _ = health_check(&inner);
                        inner.link_job_done();
                    }));
                }
                Action::Lost { reason } => {
                    log::warn!("camera link lost: {reason}");
                    self.inner.connected.store(false, Ordering::Release);
                    self.update_view();
                    self.inner.notify(CameraNotice::Lost { reason });
                }
                Action::StateChanged => {
                    if !self.machine.is_connected() {
                        self.inner.connected.store(false, Ordering::Release);
                    }
                }
            }
        }
    }

    fn update_view(&mut self) {
        let now = self.inner.clock.now();
        let wall = self.inner.clock.wall();
        let next = self.machine.next_retry_at().map(|at| {
            let t: SystemTime = wall + at.saturating_duration_since(now);
            // Whole seconds, so the block does not change on every wake-up.
            let ms = crate::util::unix_millis(t);
            iso8601(crate::util::from_unix_millis(ms - ms.rem_euclid(1000)))
        });
        *lock(&self.inner.link_view) = LinkView {
            state: self.machine.state().name(),
            last_error: self.machine.last_error().map(str::to_string),
            next_retry_at: next,
        };
        self.inner.publish_block();
    }
}

/// The cheap request: battery (updates the block); storage and temperature every 6th time.
fn health_check(inner: &Inner) -> Result<(), ApiError> {
    let s = inner
        .session
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::CameraOffline, "no session"))?;
    let battery = s.battery()?;
    *lock(&inner.last_control) = Some(Instant::now());
    inner.set_battery(battery);
    let n = inner.health_count.fetch_add(1, Ordering::Relaxed);
    if n % SLOW_STATUS_EVERY == 0 {
        if let Ok(st) = s.storage() {
            inner.status.set("storage", storage_summary(&st));
        }
        if let Ok(t) = s.temperature() {
            inner.status.set("temperature", json!(t));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Public handles

/// Starts the camera driver.
pub struct CameraDriver;

impl CameraDriver {
    /// Production entry: options from `config` (data dir, `--camera-insecure`, `--camera`).
    pub fn start(
        config: &Config,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
    ) -> (Arc<CameraService>, Arc<dyn CameraControl>, CameraLinkHandle) {
        Self::start_with(DriverOptions::from_config(config), clock, status, publisher)
    }

    pub fn start_with(
        opts: DriverOptions,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
    ) -> (Arc<CameraService>, Arc<dyn CameraControl>, CameraLinkHandle) {
        let (tx, rx) = async_channel::bounded(256);
        let inner = Arc::new(Inner {
            trust: opts.trust.clone(),
            timeouts: opts.timeouts,
            data_dir: opts.data_dir.clone(),
            clock: clock.clone(),
            status,
            publisher,
            session: RwLock::new(None),
            connected: AtomicBool::new(false),
            control: JobQueue::default(),
            events: JobQueue::default(),
            to_link: tx,
            subscribers: Mutex::new(Vec::new()),
            battery: Mutex::new(Value::Null),
            settings: Mutex::new(CameraSettings::default()),
            link_view: Mutex::new(LinkView {
                state: "disconnected",
                ..LinkView::default()
            }),
            last_control: Mutex::new(None),
            health_count: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            next_deadline: Mutex::new(None),
            test_shot: async_lock::Mutex::new(()),
        });
        let rng = match opts.rng_seed {
            Some(s) => Rng::new(s),
            None => Rng::from_entropy(),
        };
        let task = LinkTask {
            inner: inner.clone(),
            machine: LinkMachine::new(opts.backoff, rng).with_health_grid(clock.tick_anchor()),
            rx,
            probe_gen: 0,
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
                log::error!("cannot start {name}: {e}");
            }
        };
        {
            let i = inner.clone();
            spawn("camera-control", Box::new(move || control_worker(i)));
            let i = inner.clone();
            spawn("camera-events", Box::new(move || event_worker(i)));
            spawn(
                "camera-link",
                Box::new(move || crate::rt::block_on(task.run())),
            );
        }
        inner.publish_block();
        let link = CameraLinkHandle {
            inner: inner.clone(),
        };
        if let Some(t) = opts.initial_target.as_deref() {
            match camera_url(t) {
                Some(url) => link.set_target(&url, None),
                None => log::error!("--camera {t:?} is not an address or URL"),
            }
        }
        let service = Arc::new(CameraService::new(inner.clone(), link.clone()));
        let control: Arc<dyn CameraControl> = Arc::new(CameraHandle { inner });
        (service, control, link)
    }
}

/// What discovery (and manual connection) use to steer the link.
#[derive(Clone)]
pub struct CameraLinkHandle {
    inner: Arc<Inner>,
}

impl CameraLinkHandle {
    /// Aim at the camera at `url` (CCAPI base) with this UDN; a new address re-targets now.
    pub fn set_target(&self, url: &str, id: Option<&str>) {
        self.inner
            .tell_link(DriverMsg::Input(Input::SetTarget(Target {
                url: url.to_string(),
                id: id.map(str::to_string),
            })));
    }

    /// Discovery heard an SSDP alive from `id`: retry now if we are backing off from it.
    pub fn ssdp_alive(&self, id: &str) {
        self.inner
            .tell_link(DriverMsg::Input(Input::SsdpAlive { id: id.to_string() }));
    }

    /// Retry now if backing off (after the user accepted a new certificate).
    pub fn retry_now(&self) {
        self.inner.tell_link(DriverMsg::Input(Input::RetryNow));
    }

    pub fn clear_target(&self) {
        self.inner.tell_link(DriverMsg::Input(Input::ClearTarget));
    }

    /// Probes `url` now without changing the link: is it a camera, and which?
    pub fn probe(&self, url: &str) -> BoxFuture<'static, Result<CameraInfo, ApiError>> {
        let url = url.to_string();
        let inner = self.inner.clone();
        run_detached(move || {
            Session::connect(&url, None, inner.trust.clone(), inner.timeouts).map(|s| info_of(&s))
        })
    }

    /// Probes `url` and, if it is a camera, makes it the link's target, connected.
    pub fn connect_to(&self, url: &str) -> BoxFuture<'static, Result<CameraInfo, ApiError>> {
        let url = url.to_string();
        let inner = self.inner.clone();
        run_detached(move || {
            let s = Session::connect(&url, None, inner.trust.clone(), inner.timeouts)?;
            let info = info_of(&s);
            inner.tell_link(DriverMsg::Adopt(Box::new(s)));
            Ok(info)
        })
    }

    /// Link work in flight: an input not yet handled, a deadline passed but not yet acted on,
    /// or a probe/health check on the wire. Tests that step virtual time wait for `false`
    /// before each step.
    pub fn busy(&self) -> bool {
        let now = self.inner.clock.now();
        self.inner.in_flight.load(Ordering::SeqCst) > 0
            || lock(&self.inner.next_deadline).is_some_and(|d| d <= now)
    }

    /// Current link state name (`disconnected`, `probing`, `connected`, `backoff`).
    pub fn state(&self) -> &'static str {
        lock(&self.inner.link_view).state
    }

    pub fn shutdown(&self) {
        self.inner.tell_link(DriverMsg::Shutdown);
        self.inner.control.close();
        self.inner.events.close();
    }
}

/// Runs a blocking probe on a short-lived thread (a manual probe must not wait behind the
/// control queue, and uses its own agent anyway).
fn run_detached<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> BoxFuture<'static, Result<T, ApiError>> {
    let (tx, rx) = async_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("camera-probe".into())
        .spawn(move || {
            let _ = tx.try_send(f());
        });
    Box::pin(async move {
        if let Err(e) = spawned {
            return Err(ApiError::system(format!("cannot start a probe: {e}")));
        }
        rx.recv()
            .await
            .unwrap_or_else(|_| Err(ApiError::system("camera probe stopped")))
    })
}

/// [`CameraControl`] for the intervalometer and time sync.
pub struct CameraHandle {
    inner: Arc<Inner>,
}

impl CameraControl for CameraHandle {
    fn shoot_at(&self, due: Instant, req: ShotRequest) -> BoxFuture<'static, ShotOutcome> {
        shoot_at(&self.inner, due, req)
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    fn settings(&self) -> CameraSettings {
        self.inner.settings()
    }

    fn identity(&self) -> Option<super::ccapi::DeviceInfo> {
        self.inner.session().ok().map(|s| s.info.clone())
    }

    fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        self.inner.subscribe()
    }

    fn datetime(&self) -> BoxFuture<'static, Result<CameraDateTime, ApiError>> {
        self.inner.on_control(|s| s.datetime())
    }

    fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> BoxFuture<'static, Result<(), ApiError>> {
        self.inner
            .on_control(move |s| s.set_datetime(time, std_offset_secs, dst))
    }
}

pub(crate) fn shoot_at(
    inner: &Arc<Inner>,
    due: Instant,
    req: ShotRequest,
) -> BoxFuture<'static, ShotOutcome> {
    let failed = |e: ApiError| ShotOutcome::not_sent(Instant::now(), e);
    if let Err(e) = inner.session() {
        let o = failed(e);
        return Box::pin(async move { o });
    }
    inner.tell_link(DriverMsg::Input(Input::ShotReserved { due }));
    let (tx, rx) = async_channel::bounded(1);
    let me = inner.clone();
    // Shots jump the queue: they are the one thing with a deadline.
    let pushed = inner.control.push_at(
        Box::new(move || {
            let _ = tx.try_send(me.fire(due, req));
        }),
        Some(due),
    );
    if let Err(e) = pushed {
        let o = failed(e);
        return Box::pin(async move { o });
    }
    Box::pin(async move {
        rx.recv()
            .await
            .unwrap_or_else(|_| failed(ApiError::system("Camera worker stopped")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_url_accepts_addresses_and_urls() {
        assert_eq!(
            camera_url("192.168.1.2").as_deref(),
            Some("https://192.168.1.2:443/ccapi")
        );
        assert_eq!(
            camera_url("192.168.1.2:8080").as_deref(),
            Some("http://192.168.1.2:8080/ccapi")
        );
        assert_eq!(
            camera_url("https://10.0.0.1:443/ccapi/").as_deref(),
            Some("https://10.0.0.1:443/ccapi")
        );
        assert_eq!(
            camera_url("http://10.0.0.1:8080").as_deref(),
            Some("http://10.0.0.1:8080/ccapi")
        );
        assert_eq!(camera_url("1.2.3.4:notaport"), None);
        assert_eq!(camera_url(""), None);
    }

    #[test]
    fn job_queue_is_bounded_and_shots_go_first() {
        let q = JobQueue::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..MAX_JOBS {
            let o = order.clone();
            q.push(Box::new(move || lock(&o).push(i)), false).unwrap();
        }
        assert!(q.push(Box::new(|| {}), false).is_err());
        let q2 = JobQueue::default();
        let o = order.clone();
        q2.push(Box::new(move || lock(&o).push(100)), false)
            .unwrap();
        let t0 = Instant::now();
        let o = order.clone();
        q2.push_at(
            Box::new(move || lock(&o).push(202)),
            Some(t0 + Duration::from_secs(2)),
        )
        .unwrap();
        let o = order.clone();
        q2.push_at(
            Box::new(move || lock(&o).push(201)),
            Some(t0 + Duration::from_secs(1)),
        )
        .unwrap();
        lock(&order).clear();
        while let Some(j) = q2.try_pop() {
            j();
        }
        assert_eq!(*lock(&order), [201, 202, 100]);
        q2.close();
        assert!(matches!(q2.pop(None), Popped::Closed));
    }

    #[test]
    fn wait_until_is_not_early() {
        let due = Instant::now() + Duration::from_millis(5);
        wait_until(due);
        assert!(Instant::now() >= due);
    }
}

#[cfg(test)]
mod driver_tests {
    use super::*;
    use crate::app::Origin;
    use crate::app::Service;
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::SystemClock;
    use crate::protocol::{Command, TakePhoto};

    async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
        futures_lite::future::or(f, async {
            async_io::Timer::after(Duration::from_secs(secs)).await;
            panic!("timed out");
        })
        .await
    }

    #[test]
    fn connects_reports_status_and_maps_a_busy_shutter() {
        let cam = serve(r50_routes("0042"));
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let dir = std::env::temp_dir().join(format!("skylapse-drv-{}", std::process::id()));
        let opts = DriverOptions {
            data_dir: dir,
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                call: Duration::from_secs(2),
                long_poll: Duration::from_secs(2),
                download: Duration::from_secs(2),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff::CAMERA,
            rng_seed: Some(1),
            initial_target: None,
        };
        let (service, control, link) =
            CameraDriver::start_with(opts, Arc::new(SystemClock), status.clone(), publisher);
        let notices = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), None);
        futures_lite::future::block_on(within(10, async {
            match notices.recv().await.unwrap() {
                CameraNotice::Connected { id } => assert_eq!(id, "0042"),
                other => panic!("{other:?}"),
            }
            assert!(control.is_connected());
            let block = status.get("camera");
            assert_eq!(block["connected"], true);
            assert_eq!(block["model"], "Canon EOS R50");
            assert_eq!(block["state"], "connected");
            assert_eq!(block["ip"], "127.0.0.1");
            let cmd = Command::TakePhoto(TakePhoto { af: Some(false) });
            let e = service
                .handle(Origin::Rest, &cmd)
                .unwrap()
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::CameraBusy, "{e}");
            // Still connected: a busy camera is not a lost one.
            assert!(control.is_connected());
            // A shot at an exact instant is sent no earlier than due.
            let due = Instant::now() + Duration::from_millis(300);
            let o = control.shoot_at(due, ShotRequest::timed(false)).await;
            assert!(o.sent_at >= due && o.replied_at >= o.sent_at);
        }));
        link.shutdown();
    }
}

#[cfg(test)]
mod reconnect_tests {
    use super::*;
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::{Clock, ManualClock};
    use std::sync::atomic::Ordering;

    /// Moves virtual time forward in 1 s steps until `rx` yields a notice, giving the worker
    /// threads (real time, real sockets) a moment after each step. Returns the notice and the
    /// virtual time it took.
    async fn run_until_notice(
        clock: &ManualClock,
        link: &CameraLinkHandle,
        rx: &async_channel::Receiver<CameraNotice>,
        limit: Duration,
    ) -> (CameraNotice, Duration) {
        let start = clock.now();
        loop {
            if let Ok(n) = rx.try_recv() {
                return (n, clock.now() - start);
            }
            if link.busy() {
                // A probe or health check is on the wire (real time): let it finish.
                async_io::Timer::after(Duration::from_millis(2)).await;
                continue;
            }
            if let Ok(n) = rx.try_recv() {
                return (n, clock.now() - start);
            }
            assert!(clock.now() - start <= limit, "no notice within {limit:?}");
            clock.advance(Duration::from_secs(1));
        }
    }

    #[test]
    fn camera_offline_then_back_reconnects_within_one_backoff_step() {
        let cam = serve(r50_routes("0777"));
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let opts = DriverOptions {
            data_dir: std::env::temp_dir(),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                call: Duration::from_secs(1),
                long_poll: Duration::from_secs(1),
                download: Duration::from_secs(1),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff {
                jitter: 0.0,
                ..Backoff::CAMERA
            },
            rng_seed: Some(7),
            initial_target: None,
        };
        let (_service, control, link) =
            CameraDriver::start_with(opts, Arc::new(clock.clone()), status.clone(), publisher);
        let rx = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), Some("uuid:cam"));
        futures_lite::future::block_on(async {
            let (n, _) = run_until_notice(&clock, &link, &rx, Duration::from_secs(1)).await;
            assert_eq!(
                n,
                CameraNotice::Connected {
                    id: "uuid:cam".into()
                }
            );
            cam.online.store(false, Ordering::SeqCst);
            // Three health checks 10 s apart miss: lost after 30 s of virtual time.
            let (n, after) = run_until_notice(&clock, &link, &rx, Duration::from_secs(60)).await;
            assert!(matches!(n, CameraNotice::Lost { .. }), "{n:?}");
            assert!(
                after >= Duration::from_secs(30) && after <= Duration::from_secs(34),
                "{after:?}"
            );
            assert_eq!(status.get("camera")["state"], "backoff");
            assert_eq!(status.get("camera")["connected"], false);
            // Back: the first retry, 5 s after the loss, finds it.
            cam.online.store(true, Ordering::SeqCst);
            let (n, after) = run_until_notice(&clock, &link, &rx, Duration::from_secs(60)).await;
            assert_eq!(
                n,
                CameraNotice::Connected {
                    id: "uuid:cam".into()
                }
            );
            assert_eq!(after, Duration::from_secs(5));
            assert_eq!(status.get("camera")["state"], "connected");
        });
        link.shutdown();
    }
}

#[cfg(test)]
mod fault_tests {
    use super::*;
    use crate::app::{Origin, Service};
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::SystemClock;
    use crate::protocol::{Command, SetCameraSetting};

    #[test]
    fn hung_call_times_out_and_502_says_power_cycle() {
        let mut routes = r50_routes("0500");
        routes.insert(
            "GET /ccapi/ver100/shooting/settings".into(),
            (0, String::new()),
        );
        routes.insert(
            "PUT /ccapi/ver100/shooting/settings/iso".into(),
            (502, "<html>Bad Gateway</html>".into()),
        );
        let list = r#"{"ver100":[{"path":"/ccapi/ver100/deviceinformation","get":true},
            {"path":"/ccapi/ver100/devicestatus/battery","get":true},
            {"path":"/ccapi/ver100/shooting/settings","get":true}]}"#;
        routes.insert("GET /ccapi".into(), (200, list.into()));
        let cam = serve(routes);
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let opts = DriverOptions {
            data_dir: std::env::temp_dir(),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                call: Duration::from_millis(500),
                long_poll: Duration::from_secs(1),
                download: Duration::from_secs(1),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff::CAMERA,
            rng_seed: Some(3),
            initial_target: None,
        };
        let (service, control, link) =
            CameraDriver::start_with(opts, Arc::new(SystemClock), status.clone(), publisher);
        let rx = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), None);
        futures_lite::future::block_on(async {
            assert!(matches!(
                rx.recv().await,
                Ok(CameraNotice::Connected { .. })
            ));
            let started = Instant::now();
            let hung = service
                .handle(Origin::Rest, &Command::GetCameraSettings)
                .unwrap();
            let status_cmd = Command::GetCameraStatus;
            // The service answers other things while the camera hangs.
            let (hung_result, status_reply) = futures_lite::future::zip(hung, async {
                service.handle(Origin::Rest, &status_cmd).unwrap().await
            })
            .await;
            assert_eq!(status_reply.unwrap().data["connected"], true);
            let e = hung_result.unwrap_err();
            assert_eq!(e.code, ErrorCode::CameraTimeout, "{e}");
            // Generous bound: the 500 ms call timeout, not the 5 s hang.
            assert!(started.elapsed() < Duration::from_secs(3));
            let cmd = Command::SetCameraSetting(SetCameraSetting {
                setting: "iso".into(),
                value: serde_json::json!("400"),
            });
            let e = service
                .handle(Origin::Rest, &cmd)
                .unwrap()
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::ConnectionFailed);
            assert!(e.message.contains("power-cycle"), "{e}");
        });
        link.shutdown();
    }
}
