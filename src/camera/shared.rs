//! What the camera's parts share: the session (once the link connected), the status block's
//! contents, the notice subscribers — under one mutex — and the two workers.
//!
//! The link driver ([`super::link_driver`]) is the only writer of the session and of
//! `connected`; commands and shots read them here and run their I/O on a worker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::ccapi::{added_contents, storage_summary, Session, Timeouts};
use super::link_driver::LinkMsg;
use super::tls::Trust;
use super::worker::{Idle, Worker};
use super::{CameraInfo, CameraNotice, CameraSettings};
use crate::app::{Publisher, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::{ApiError, ErrorCode};
use crate::sys::lock;

/// Notices buffered per subscriber.
const NOTICE_CAPACITY: usize = 64;
/// Subscribers at most (each is a part of skylapse, not a client: a handful).
const MAX_SUBSCRIBERS: usize = 16;
/// Storage and temperature are read on every Nth health check (60 s at 10 s checks).
const SLOW_STATUS_EVERY: u64 = 6;

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
    pub battery: Value,
    pub settings: CameraSettings,
    pub view: LinkView,
    /// When the control socket last carried a request (a shot warms it if idle longer).
    pub last_control: Option<Instant>,
    pub health_count: u64,
    subscribers: heapless::Vec<async_channel::Sender<CameraNotice>, MAX_SUBSCRIBERS>,
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
    /// Serialises test shots (one at a time).
    pub test_shot: async_lock::Mutex<()>,
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

    /// Feeds an operation's outcome to the link machine.
    pub fn report(&self, result: &Result<impl Sized, ApiError>) {
        use super::link::Input;
        match result {
            Ok(_) => self.tell_link(LinkMsg::Input(Input::OperationOk)),
            Err(e) if e.code == ErrorCode::CameraOffline => {
                self.tell_link(LinkMsg::Input(Input::ConnectionLost {
                    reason: e.message.clone(),
                }))
            }
            Err(_) => {}
        }
    }

    pub fn notify(&self, n: CameraNotice) {
        self.lock()
            .subscribers
            .retain(|tx| match tx.try_send(n.clone()) {
                Ok(()) | Err(async_channel::TrySendError::Full(_)) => true,
                Err(async_channel::TrySendError::Closed(_)) => false,
            });
    }

    pub fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        let (tx, rx) = async_channel::bounded(NOTICE_CAPACITY);
        let mut s = self.lock();
        s.subscribers.retain(|s| !s.is_closed());
        if s.subscribers.push(tx).is_err() {
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

    fn camera_block(&self) -> Value {
        let s = self.lock();
        let (ip, port, model, uuid) = match &s.session {
            Some(session) => {
                let (ip, port) = session.host_port();
                (
                    json!(ip),
                    json!(port),
                    json!(session.info.productname),
                    json!(session.id),
                )
            }
            None => (Value::Null, Value::Null, Value::Null, Value::Null),
        };
        json!({
            "connected": s.connected,
            "ip": ip,
            "port": port,
            "model": model,
            "uuid": uuid,
            "battery": s.battery.clone(),
            "settings": s.settings.clone(),
            "lastError": s.view.last_error,
            "state": s.view.state,
            "nextRetryAt": s.view.next_retry_at,
        })
    }

    pub fn publish_block(&self) {
        self.status.set("camera", self.camera_block());
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
        let b = json!({
            "level": v.get("level").cloned().unwrap_or(Value::Null),
            "kind": v.get("kind").cloned().unwrap_or(Value::Null),
            "quality": v.get("quality").cloned().unwrap_or(Value::Null),
            "name": v.get("name").cloned().unwrap_or(Value::Null),
        });
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
        let files = added_contents(v);
        if !files.is_empty() {
            self.notify(CameraNotice::FilesAdded(files));
        }
        self.note_settings(v);
        if let Some(b) = v.get("battery").filter(|b| b.is_object()) {
            self.set_battery(b);
        }
        if let Some(s) = v.get("storage").filter(|s| s.is_object()) {
            self.status.set("storage", storage_summary(s));
        }
        if let Some(t) = v
            .get("temperature")
            .and_then(|t| t.get("status"))
            .and_then(Value::as_str)
        {
            self.status.set("temperature", json!(t));
        }
    }

    /// The cheap request (on the control worker): battery; storage and temperature on every
    /// 6th check, in the same turn of the worker.
    pub fn health_check(&self) -> Result<(), ApiError> {
        let s = self
            .lock()
            .session
            .clone()
            .ok_or_else(|| ApiError::new(ErrorCode::CameraOffline, "no session"))?;
        let battery = s.battery()?;
        let n = {
            let mut st = self.lock();
            st.last_control = Some(self.clock.now());
            st.health_count += 1;
            st.health_count - 1
        };
        self.set_battery(&battery);
        if n % SLOW_STATUS_EVERY == 0 {
            if let Ok(st) = s.storage() {
                self.status.set("storage", storage_summary(&st));
            }
            if let Ok(t) = s.temperature() {
                self.status.set("temperature", json!(t));
            }
        }
        Ok(())
    }

    /// The event worker's idle work: one long poll (held by the camera until something
    /// changes or its timeout); after failures, wait 1, 2, 4 … 30 s on the clock.
    pub fn event_idle(self: &Arc<Self>) -> impl FnMut() -> Idle + Send + 'static {
        let me = self.clone();
        let mut failures = 0u32;
        move || {
            let Ok(session) = me.session() else {
                failures = 0;
                return Idle::Until(None);
            };
            match session.poll_events(true) {
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
