//! What the camera's parts share: the session (once the link connected), the status block's
//! contents, the notice subscribers — under one mutex — and the two workers.
//!
//! The link driver ([`super::link_driver`]) is the only writer of the session and of
//! `connected`; commands and shots read them here and run their I/O on a worker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::ccapi::{added_contents, storage_summary, Session, Timeouts};
use super::link_driver::LinkMsg;
use super::tls::Trust;
use super::worker::{Idle, Worker};
use super::{CameraInfo, CameraNotice, CameraSettings};
use crate::app::{Publisher, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::messages::BatteryEntry;
use crate::protocol::status::CameraBlock;
use crate::protocol::{ApiError, ErrorCode};
use crate::sys::lock;

/// One CCAPI battery object (`devicestatus/battery` or a `batterylist` entry), typed. Levels
/// come as strings ("full", "85"); a number is kept as its text.
pub fn battery_entry(v: &Value) -> BatteryEntry {
    let text = |k: &str| match v.get(k) {
        Some(Value::String(s)) => Some(s.chars().take(32).collect()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    BatteryEntry {
        position: text("position").unwrap_or_else(|| "camera".into()),
        name: text("name"),
        kind: text("kind"),
        level: text("level"),
        quality: text("quality"),
    }
}

/// Notices buffered per subscriber.
const NOTICE_CAPACITY: usize = 64;
/// Subscribers at most (each is a part of skylapse, not a client: a handful).
const MAX_SUBSCRIBERS: usize = 16;
/// Storage and temperature are read on every Nth health check (60 s at 10 s checks).
const SLOW_STATUS_EVERY: u64 = 6;
/// Event polling is held open this long after a shot even with no client watching (the
/// shot's file, a test photo's download).
const WATCH_AFTER_SHOT: Duration = Duration::from_secs(60);

/// What the status block shows about the link (written by the link driver).
#[derive(Default, Clone)]
pub(crate) struct LinkView {
    pub state: &'static str,
    pub last_error: Option<String>,
    pub next_retry_at: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub session: Option<Arc<Session>>,
    pub connected: bool,
    pub battery: Option<BatteryEntry>,
    pub settings: CameraSettings,
    pub view: LinkView,
    /// When the control socket last carried a request (a shot warms it if idle longer).
    pub last_control: Option<Instant>,
    /// When the last health check ran (answered or not).
    pub last_check: Option<Instant>,
    /// When an event poll last answered: the camera is evidently there, so the next health
    /// check can wait (a held poll that keeps answering makes some checks unnecessary).
    pub last_event: Option<Instant>,
    pub health_count: u64,
    /// A health miss was reported to the link and no answer since (then the next answer is
    /// reported too; otherwise answers are not news to the link).
    pub miss_reported: bool,
    /// The latest shot reserved (its due instant): health checks keep clear of it.
    pub reserved: Option<Instant>,
    /// WebSocket clients connected (the web layer tells the camera service).
    pub clients: usize,
    /// Event polling stays held until then after a shot.
    pub watch_until: Option<Instant>,
    /// An event poll is in flight on either socket (CCAPI allows one at a time).
    pub polling: bool,
    subscribers: heapless::Vec<async_channel::Sender<CameraNotice>, MAX_SUBSCRIBERS>,
    /// Subscribers read by a camera worker (a test photo waiting for its file): told on the
    /// notifier's thread at once, before the executor's subscribers.
    direct: heapless::Vec<async_channel::Sender<CameraNotice>, MAX_SUBSCRIBERS>,
}

pub(crate) struct Shared {
    pub trust: Arc<Trust>,
    pub timeouts: Timeouts,
    pub data_dir: PathBuf,
    pub clock: SharedClock,
    pub status: StatusBoard,
    pub publisher: Publisher,
    pub state: Mutex<State>,
    /// Socket 1: shots (first), probes, health checks, settings, clock.
    pub control: Worker,
    /// Socket 2: event long-polls, downloads.
    pub events: Worker,
    pub link: async_channel::Sender<LinkMsg>,
    /// Notices on their way to the subscribers ([`Shared::notify`], [`fan_out`]).
    pub notices: async_channel::Sender<CameraNotice>,
    /// Serialises test shots (one at a time).
    pub test_shot: async_lock::Mutex<()>,
}

/// The executor's side of [`Shared::notify`]: hands each notice to every subscriber, in order.
/// Ends when the camera driver is gone.
pub(crate) async fn fan_out(
    cam: std::sync::Weak<Shared>,
    notices: async_channel::Receiver<CameraNotice>,
) {
    while let Ok(n) = notices.recv().await {
        let Some(cam) = cam.upgrade() else { return };
        cam.deliver(n);
    }
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The connected session, or CAMERA_OFFLINE.
    pub fn session(&self) -> Result<Arc<Session>, ApiError> {
        let s = self.lock();
        match (&s.session, s.connected) {
            (Some(session), true) => Ok(session.clone()),
            _ => Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not connected",
            )),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    pub fn info(&self) -> Option<CameraInfo> {
        self.lock().session.as_deref().map(CameraInfo::of)
    }

    pub fn tell_link(&self, msg: LinkMsg) {
        if let Err(e) = self.link.try_send(msg) {
            if e.is_full() {
                log::warn!("camera link driver is behind; dropped an input");
            }
        }
    }

    /// Feeds an operation's outcome to the link machine: a success only when it is news
    /// (health misses were reported), so a shot costs the link no wake-up.
    pub fn report(&self, result: &Result<impl Sized, ApiError>) {
        use super::link::Input;
        match result {
            Ok(_) => {
                if std::mem::take(&mut self.lock().miss_reported) {
                    self.tell_link(LinkMsg::Input(Input::OperationOk));
                }
            }
            Err(e) if e.code == ErrorCode::CameraOffline => {
                self.tell_link(LinkMsg::Input(Input::ConnectionLost {
                    reason: e.message.clone(),
                }))
            }
            Err(_) => {}
        }
    }

    /// Tells every subscriber, through the one notice channel: from a camera worker, one
    /// cross-thread wake-up of the executor, which hands the notice to each subscriber there
    /// ([`fan_out`]). Sent to the half-dozen subscribers straight from the event worker, a
    /// frame's file notice woke the executor once per subscriber, and each wake-up raced the
    /// worker for the channel's lock: about 3 extra context switches per frame (perf
    /// `sched:sched_switch`). Bounded: a notice that finds it full is dropped with a warning.
    /// Direct subscribers ([`Shared::subscribe_direct`]) are told here, on the notifier's
    /// thread, so a worker waiting for a file finds it before it looks again.
    pub fn notify(&self, n: CameraNotice) {
        self.send_to(true, &n);
        if let Err(async_channel::TrySendError::Full(n)) = self.notices.try_send(n) {
            log::warn!("camera notice channel full; dropped {n:?}");
        }
    }

    /// Sends `n` to every (executor-side) subscriber, on the executor's thread.
    fn deliver(&self, n: CameraNotice) {
        self.send_to(false, &n);
    }

    /// Sends `n` to one kind of subscriber, outside the lock (a woken subscriber must not
    /// find it held); forgets the ones that went away.
    fn send_to(&self, direct: bool, n: &CameraNotice) {
        let list = |s: &mut State| {
            if direct {
                &mut s.direct
            } else {
                &mut s.subscribers
            }
            .clone()
        };
        let subscribers = list(&mut self.lock());
        let mut closed = false;
        for tx in &subscribers {
            if let Err(async_channel::TrySendError::Closed(_)) = tx.try_send(n.clone()) {
                closed = true;
            }
        }
        if closed {
            let mut s = self.lock();
            s.subscribers.retain(|tx| !tx.is_closed());
            s.direct.retain(|tx| !tx.is_closed());
        }
    }

    /// Notices for a task on the executor (delivered there by [`fan_out`]).
    pub fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        self.add_subscriber(false)
    }

    /// Notices for a camera worker that reads them synchronously (told by [`Shared::notify`]
    /// on the notifier's thread; no executor in between).
    pub fn subscribe_direct(&self) -> async_channel::Receiver<CameraNotice> {
        self.add_subscriber(true)
    }

    fn add_subscriber(&self, direct: bool) -> async_channel::Receiver<CameraNotice> {
        let (tx, rx) = async_channel::bounded(NOTICE_CAPACITY);
        let mut s = self.lock();
        s.subscribers.retain(|s| !s.is_closed());
        s.direct.retain(|s| !s.is_closed());
        let list = if direct {
            &mut s.direct
        } else {
            &mut s.subscribers
        };
        if list.push(tx).is_err() {
            log::error!("too many camera notice subscribers; this one hears nothing");
        }
        rx
    }

    /// Runs `f` with the session on the control worker; reports the outcome to the link.
    pub fn on_control<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        let me = self.clone();
        self.run_on(&self.control, move |s| {
            let r = f(s);
            me.lock().last_control = Some(me.clock.now());
            me.report(&r);
            r
        })
    }

    /// Runs `f` on the event worker (downloads), between polls.
    pub fn on_events<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        self.run_on(&self.events, f)
    }

    fn run_on<T: Send + 'static>(
        &self,
        worker: &Worker,
        f: impl FnOnce(&Session) -> Result<T, ApiError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        match worker.submit(None, move || f(&session)) {
            Ok(fut) => Box::pin(async move { fut.await? }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn camera_block(&self) -> CameraBlock {
        let s = self.lock();
        let mut block = CameraBlock {
            connected: s.connected,
            battery: s.battery.clone(),
            settings: s.settings.clone(),
            last_error: s.view.last_error.clone(),
            state: s.view.state.to_string(),
            next_retry_at: s.view.next_retry_at.clone(),
            ..CameraBlock::default()
        };
        if let Some(session) = &s.session {
            let (ip, port) = session.host_port();
            block.ip = Some(ip);
            block.port = Some(port);
            block.model = Some(session.info.productname.clone()).filter(|m| !m.is_empty());
            block.uuid = Some(session.id.clone());
            block.serial_number = Some(session.info.serialnumber.clone()).filter(|m| !m.is_empty());
        }
        block
    }

    pub fn publish_block(&self) {
        self.status.set_camera(Some(self.camera_block()));
    }

    /// Takes settings from a settings read or an event-polling delta; republishes on change.
    pub fn note_settings(&self, v: &Value) {
        let changed = self.lock().settings.update_from(v);
        if changed {
            self.publish_block();
        }
    }

    pub fn settings(&self) -> CameraSettings {
        self.lock().settings.clone()
    }

    fn set_battery(&self, v: &Value) {
        let b = Some(battery_entry(v));
        let changed = {
            let mut s = self.lock();
            let changed = s.battery != b;
            s.battery = b;
            changed
        };
        if changed {
            self.publish_block();
        }
    }

    /// Files and status changes of one event-polling answer.
    pub fn handle_event_delta(&self, v: &Value) {
        self.note_settings(v);
        if let Some(b) = v.get("battery").filter(|b| b.is_object()) {
            self.set_battery(b);
        }
        if let Some(s) = v.get("storage").filter(|s| s.is_object()) {
            self.status.set_storage(storage_summary(s));
        }
        if let Some(t) = v
            .get("temperature")
            .and_then(|t| t.get("status"))
            .and_then(Value::as_str)
        {
            self.status.set_temperature(Some(t.to_string()));
        }
        // Last: the session is woken by it, and should find the status already updated.
        let files = added_contents(v);
        if !files.is_empty() {
            self.notify(CameraNotice::FilesAdded(files));
        }
    }

    /// Whether anyone would miss a change the camera reports a few seconds late: a client
    /// is connected, or a shot was (or is about to be) taken. Otherwise no event poll is
    /// held, and the health check's own poll brings the changes (issue 13).
    pub fn watched(&self, now: Instant) -> bool {
        let s = self.lock();
        s.clients > 0 || s.watch_until.is_some_and(|t| now < t)
    }

    /// A shot is due at `due`: health checks keep clear of it and event polling is held.
    pub fn shot_reserved(&self, due: Instant) {
        let started = {
            let mut s = self.lock();
            s.reserved = Some(s.reserved.map_or(due, |r| r.max(due)));
            let until = due + WATCH_AFTER_SHOT;
            let was = s.watch_until.is_some_and(|t| self.clock.now() < t) || s.clients > 0;
            s.watch_until = Some(s.watch_until.map_or(until, |t| t.max(until)));
            !was
        };
        if started {
            self.events.wake();
        }
    }

    /// A WebSocket client came (`+1`) or went (`-1`).
    pub fn clients_changed(&self, came: bool) {
        let first = {
            let mut s = self.lock();
            s.clients = if came {
                s.clients + 1
            } else {
                s.clients.saturating_sub(1)
            };
            came && s.clients == 1
        };
        if first {
            self.events.wake();
        }
    }

    /// The control worker's idle work: the health check when it is due ([`health_due`]),
    /// reported to the link only when it is news. No other thread takes part.
    ///
    /// [`health_due`]: super::link::health_due
    pub fn control_idle(self: &Arc<Self>) -> impl FnMut() -> Idle + Send + 'static {
        let me = self.clone();
        let anchor = me.clock.tick_anchor();
        move || {
            let now = me.clock.now();
            let (due, fresh) = {
                let s = me.lock();
                if !s.connected || s.session.is_none() {
                    return Idle::Until(None); // the link wakes us when it connects
                }
                let last = [s.last_control, s.last_check, s.last_event]
                    .into_iter()
                    .flatten()
                    .max();
                (
                    super::link::health_due(anchor, now, last, s.reserved),
                    last.is_none(),
                )
            };
            if now < due {
                return Idle::Until(Some(due));
            }
            let r = me.health_check();
            me.lock().last_check = Some(me.clock.now());
            // The read right after connecting is for fresh status, not a check: the probe
            // has just answered, and misses are counted from the first scheduled check.
            if !fresh {
                me.report_health(r);
            }
            Idle::Again
        }
    }

    fn report_health(&self, r: Result<(), ApiError>) {
        use super::link::Input;
        match r {
            Ok(()) => {
                if std::mem::take(&mut self.lock().miss_reported) {
                    self.tell_link(LinkMsg::Input(Input::HealthOk));
                }
            }
            Err(e) => {
                self.lock().miss_reported = true;
                self.tell_link(LinkMsg::Input(Input::HealthFailed { reason: e.message }));
            }
        }
    }

    /// The cheap request (on the control worker). Nobody watching and no event poll held: one
    /// immediate event poll, which also brings battery, storage, temperature and new files
    /// (one request in all). Otherwise battery; storage and temperature on every 6th check,
    /// in the same turn of the worker.
    pub fn health_check(&self) -> Result<(), ApiError> {
        let s = self
            .lock()
            .session
            .clone()
            .ok_or_else(|| ApiError::new(ErrorCode::CameraOffline, "no session"))?;
        let now = self.clock.now();
        let watched = self.watched(now);
        if !watched && s.has_event_polling() && self.lock().polling {
            // Nobody watches, but the poll held for the last client is still out: its answer
            // (or its failure, which the next check sees) speaks for the link, and nobody
            // needs a fresh battery reading; a request now would only add to the idle
            // camera's traffic (issue 13: at most 6 requests/min with nobody watching).
            return Ok(());
        }
        let poll_here = !watched && s.has_event_polling() && {
            let mut st = self.lock();
            !std::mem::replace(&mut st.polling, true)
        };
        if poll_here {
            let r = s.poll_events(false);
            {
                let mut st = self.lock();
                st.polling = false;
                if r.is_ok() {
                    st.last_control = Some(self.clock.now());
                }
            }
            if self.watched(self.clock.now()) {
                self.events.wake(); // it waited for this poll to end
            }
            self.handle_event_delta(&r?);
            return Ok(());
        }
        let battery = s.battery()?;
        let (n, poll_held) = {
            let mut st = self.lock();
            st.last_control = Some(self.clock.now());
            st.health_count += 1;
            (st.health_count - 1, st.polling)
        };
        self.set_battery(&battery);
        // Storage and temperature changes arrive with a held event poll: read them only at
        // the first check after a connect, or when no poll is held (issue 13: idle wake-ups).
        if n % SLOW_STATUS_EVERY == 0 && (n == 0 || !poll_held) {
            if let Ok(st) = s.storage() {
                self.status.set_storage(storage_summary(&st));
            }
            if let Ok(t) = s.temperature() {
                self.status.set_temperature(Some(t.to_string()));
            }
        }
        Ok(())
    }

    /// The event worker's idle work while someone watches ([`Shared::watched`]): one long
    /// poll (held by the camera until something changes or its timeout); after failures,
    /// wait 1, 2, 4 … 30 s on the clock. Nobody watching: nothing (the health check polls).
    pub fn event_idle(self: &Arc<Self>) -> impl FnMut() -> Idle + Send + 'static {
        let me = self.clone();
        let mut failures = 0u32;
        move || {
            let Ok(session) = me.session() else {
                failures = 0;
                return Idle::Until(None);
            };
            if !me.watched(me.clock.now()) {
                return Idle::Until(None); // a client or a shot wakes us
            }
            if std::mem::replace(&mut me.lock().polling, true) {
                return Idle::Until(None); // the health check's poll; it wakes us after
            }
            let r = session.poll_events(true);
            {
                let mut s = me.lock();
                s.polling = false;
                if r.is_ok() {
                    s.last_event = Some(me.clock.now());
                }
            }
            match r {
                Ok(v) => {
                    failures = 0;
                    me.handle_event_delta(&v);
                    Idle::Again
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    log::debug!("event poll failed: {e}");
                    let wait =
                        Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30));
                    Idle::Until(Some(me.clock.now() + wait))
                }
            }
        }
    }

    /// Whole seconds of `at` on the wall clock (status labels that do not change on every
    /// wake-up).
    pub fn wall_label(&self, at: Instant) -> String {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let t: SystemTime = wall + at.saturating_duration_since(now);
        let ms = crate::util::unix_millis(t);
        crate::util::iso8601(crate::util::from_unix_millis(ms - ms.rem_euclid(1000)))
    }
}
