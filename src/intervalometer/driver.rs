//! The session driver: one async task per running session. It performs the machine's actions
//! (hand shots to the camera driver, append to the journal, publish events, update the status
//! block) and sleeps on one timer until the next deadline, a shot reply, a camera notice or a
//! control message. It is the only intervalometer code that reads the clock (via `Clock`).

use futures_lite::{future::poll_fn, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use crate::app::{Publisher, StatusBoard};
use crate::camera::{CameraControl, CameraNotice, ShotOutcome};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::{Channel, Event, EventFamily};
use crate::util::{iso8601, unix_millis};

use super::journal::Journal;
use super::schedule::GridView;
use super::session::{Action, EndKind, Input, Notice, Session};

/// A wall clock that moved by more than this against the monotonic one was stepped.
const WALL_STEP_MS: i64 = 500;

/// Messages from the service to a running session.
pub enum Control {
    /// Stop after the shot in flight; answer with the status block once handled.
    Stop(async_channel::Sender<Value>),
    /// Time sync stepped the wall clock: re-evaluate `stop-at` now.
    WallStepped,
    /// Orderly shutdown: finish the shot in flight, leave the journal open-ended (resumable).
    Shutdown,
}

/// Flags the coordinator reads cheaply (policy: no clock step mid-shot, no Wi-Fi change while
/// a session runs).
#[derive(Debug, Default)]
pub struct Flags {
    pub running: AtomicBool,
    pub shot_in_flight: AtomicBool,
    /// Where the session's grid stands (test shots are fitted between frames); `None` when
    /// no session runs.
    pub grid: std::sync::Mutex<Option<GridView>>,
}

/// How the driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ended(EndKind),
    /// Shut down (or its service went away) mid-session: the journal stays resumable.
    Interrupted,
}

pub struct Driver {
    pub session: Session,
    pub journal: Journal,
    pub clock: SharedClock,
    pub camera: Arc<dyn CameraControl>,
    pub publisher: Publisher,
    pub status: StatusBoard,
    pub flags: Arc<Flags>,
    pub control: async_channel::Receiver<Control>,
    pub notices: async_channel::Receiver<CameraNotice>,
    /// The configured zone's UTC offset at a wall time (seconds east).
    pub tz_offset: Arc<dyn Fn(SystemTime) -> i32 + Send + Sync>,
    /// Called once the journal is complete (end line written), before the end is announced:
    /// saves the report, as the original service does at every session end, so a client that
    /// reacts to `session_completed` finds the report (rename, discard) at once.
    pub on_end: OnEnd,
}

/// The session-end hook: saves the report of session `id`; its id when saved.
pub type OnEnd = Arc<dyn Fn(String) -> BoxFuture<'static, Option<String>> + Send + Sync>;

enum Wake {
    Shot(u64, ShotOutcome),
    Control(Control),
    ControlClosed,
    Notice(CameraNotice),
    NoticesClosed,
    Timer,
}

impl Driver {
    pub async fn run(mut self) -> Exit {
        let mut shot: Option<(u64, BoxFuture<'static, ShotOutcome>)> = None;
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        let mut control_open = true;
        let mut notices_open = true;
        let mut shutting_down = false;
        let mut journal_failed = false;
        let reference = self.clock.now();
        let mut wall_offset = self.wall_offset(reference);
        let mut stop_replies: Vec<async_channel::Sender<Value>> = Vec::new();
        // Receivers are !Unpin streams; pin clones of them for polling.
        let mut control = Box::pin(self.control.clone());
        let mut notices = Box::pin(self.notices.clone());
        self.flags.running.store(true, Ordering::SeqCst);
        let mut notices_out: Vec<Notice> = Vec::new();
        let mut report_saved = false;
        let mut report_id: Option<String> = None;
        loop {
            while let Some(action) = self.session.poll_action() {
                match action {
                    Action::Shoot { slot, .. } if shutting_down => {
                        // The process is going down: finish the shot in flight, start no new
                        // one (at intervals shorter than the lead time the next shot is handed
                        // over as soon as one ends, so shutdown would never get its turn). The
                        // slot is not journaled: a resume counts it as skipped.
                        log::info!(
                            "session {}: shutting down; slot {slot} not shot",
                            self.session.id
                        );
                    }
                    Action::Shoot { slot, due, req } => {
                        self.flags.shot_in_flight.store(true, Ordering::SeqCst);
                        shot = Some((slot, self.camera.shoot_at(due, req)));
                    }
                    Action::AbandonShot { slot } => {
                        log::warn!(
                            "session {}: shot slot {slot} got no reply; given up",
                            self.session.id
                        );
                        shot = None;
                    }
                    Action::Journal(entry) => {
                        if let Err(e) = self.journal.append(&entry) {
                            // Photos matter more than the journal: keep shooting, say so once.
                            log::error!("session {}: journal write failed: {e}", self.session.id);
                            if !journal_failed {
                                journal_failed = true;
                                self.warn(&format!(
                                    "The session journal cannot be written ({e}); shooting continues but a power loss would lose the record"
                                ));
                            }
                        }
                    }
                    Action::Notify(n) => notices_out.push(n),
                }
            }
            // The status block first, then the events: a client that reacts to an event and
            // reads the status sees at least that much.
            let now = self.clock.now();
            let block = self.session.status_json(now);
            for tx in stop_replies.drain(..) {
                let _ = tx.try_send(block.clone());
            }
            self.status.set("intervalometer", block);
            *self.flags.grid.lock().unwrap_or_else(|e| e.into_inner()) = self.session.grid_view();
            if shot.is_none() {
                self.flags.shot_in_flight.store(false, Ordering::SeqCst);
                if self.session.is_ended() && !report_saved {
                    // The journal is complete: clients may act on the session (or start anew)
                    // as soon as they hear; this driver touches no shared state after this.
                    self.flags.running.store(false, Ordering::SeqCst);
                    report_saved = true;
                    report_id = (self.on_end)(self.session.id.clone()).await;
                }
            }
            for n in notices_out.drain(..) {
                self.notify(n, report_id.as_deref());
            }
            if shot.is_none() {
                if self.session.is_ended() {
                    break;
                }
                if shutting_down {
                    *self.flags.grid.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.flags.running.store(false, Ordering::SeqCst);
                    return Exit::Interrupted;
                }
            }
            let deadline = self.session.poll_timeout();
            if timer.as_ref().map(|t| t.0) != deadline {
                timer = deadline.map(|d| (d, self.clock.sleep_until(d)));
            }
            let wake = poll_fn(|cx| {
                if let Some((slot, f)) = shot.as_mut() {
                    if let Poll::Ready(o) = f.as_mut().poll(cx) {
                        return Poll::Ready(Wake::Shot(*slot, o));
                    }
                }
                if control_open {
                    if let Poll::Ready(c) = control.poll_next(cx) {
                        return Poll::Ready(c.map_or(Wake::ControlClosed, Wake::Control));
                    }
                }
                if notices_open {
                    if let Poll::Ready(n) = notices.poll_next(cx) {
                        return Poll::Ready(n.map_or(Wake::NoticesClosed, Wake::Notice));
                    }
                }
                if let Some((_, t)) = timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                Poll::Pending
            })
            .await;
            let now = self.clock.now();
            let offset = self.wall_offset(reference);
            let stepped = (offset - wall_offset).abs() > WALL_STEP_MS;
            if stepped || matches!(wake, Wake::Control(Control::WallStepped)) {
                wall_offset = offset;
                let wall = self.clock.wall();
                self.session.handle(
                    now,
                    Input::WallClock {
                        wall_ms: unix_millis(wall),
                        tz_offset_secs: (self.tz_offset)(wall),
                    },
                );
            }
            match wake {
                Wake::Shot(slot, outcome) => {
                    shot = None;
                    self.session.handle(now, Input::ShotDone { slot, outcome });
                }
                Wake::Timer => {
                    timer = None;
                    self.session.handle(now, Input::Tick);
                }
                Wake::Control(Control::Stop(reply)) => {
                    stop_replies.push(reply);
                    self.session.handle(now, Input::Stop);
                }
                Wake::Control(Control::WallStepped) => {}
                Wake::Control(Control::Shutdown) | Wake::ControlClosed => {
                    control_open = false;
                    shutting_down = true;
                }
                Wake::Notice(CameraNotice::Connected { .. }) => {
                    self.session.handle(now, Input::CameraConnected)
                }
                Wake::Notice(CameraNotice::Lost { reason }) => {
                    self.session.handle(now, Input::CameraLost { reason })
                }
                Wake::Notice(CameraNotice::FilesAdded(files)) => {
                    self.session.handle(now, Input::FilesAdded(files))
                }
                Wake::NoticesClosed => notices_open = false,
            }
        }
        Exit::Ended(self.session.ended().unwrap_or(EndKind::Error))
    }

    /// Wall minus monotonic, in ms: changes only when the wall clock is stepped.
    fn wall_offset(&self, reference: Instant) -> i64 {
        let mono = self.clock.now().saturating_duration_since(reference);
        unix_millis(self.clock.wall()) - mono.as_millis() as i64
    }

    fn event(&self, family: EventFamily, kind: &'static str, data: &Value) {
        self.publisher
            .event(Event::new(Channel::Intervalometer, family, kind, data));
    }

    fn warn(&self, message: &str) {
        let data = json!({
            "sessionId": self.session.id,
            "title": self.session.title,
            "message": message,
            "fatal": false,
        });
        self.event(EventFamily::Timelapse, "session_warning", &data);
        self.event(EventFamily::Event, "intervalometer_error", &data);
    }

    fn notify(&self, n: Notice, report_id: Option<&str>) {
        let id = &self.session.id;
        match n {
            Notice::Running => {}
            Notice::Shot(r) => {
                let data = json!({
                    "success": r.ok,
                    "sessionId": id,
                    "shotNumber": r.shot,
                    "slot": r.slot,
                    "error": r.error,
                    "timestamp": iso8601(crate::util::from_unix_millis(
                        r.sent_ms.unwrap_or(r.scheduled_ms).round() as i64)),
                    "scheduledTime": crate::util::iso8601_millis(r.scheduled_ms.round() as i64),
                    "timingErrorMs": r.error_ms,
                    "durationMs": r.duration_ms,
                    "skippedBefore": r.skipped_before,
                    "late": r.late,
                    "fileName": r.files.first(),
                });
                self.event(EventFamily::Event, "photo_taken", &data);
                self.event(EventFamily::Event, "intervalometer_photo", &data);
            }
            Notice::Taken(r) => {
                // A shot first recorded as failed (reply lost) whose file then appeared.
                let data = json!({
                    "sessionId": id,
                    "shotNumber": r.shot,
                    "slot": r.slot,
                    "success": true,
                    "replyLost": true,
                    "message": format!(
                        "Shot {} was taken after all: its reply was lost but the camera saved the file",
                        r.shot
                    ),
                });
                self.event(EventFamily::Timelapse, "shot_recovered", &data);
            }
            Notice::Overtime {
                shot,
                interval_s,
                duration_s,
                overtime_s,
            } => {
                let data = json!({
                    "sessionId": id,
                    "shotNumber": shot,
                    "interval": interval_s,
                    "shotDuration": duration_s,
                    "overtime": overtime_s,
                });
                self.event(EventFamily::Timelapse, "photo_overtime", &data);
            }
            Notice::FailureRateHigh {
                failed,
                window,
                last_error,
            } => self.warn(&format!(
                "{failed} of the last {window} shots failed (last error: {last_error}); the session keeps its schedule"
            )),
            Notice::Ended { kind, reason } => {
                let stats = self.session.status_json(self.clock.now());
                let data = json!({
                    "sessionId": id,
                    "title": self.session.title,
                    "reason": reason,
                    "stats": stats.get("stats"),
                    "status": stats,
                    "reportId": report_id,
                });
                let (snake, camel, legacy) = match kind {
                    EndKind::Completed => (
                        "session_completed",
                        "sessionCompleted",
                        "intervalometer_completed",
                    ),
                    EndKind::Stopped => {
                        ("session_stopped", "sessionStopped", "intervalometer_stopped")
                    }
                    EndKind::Error => ("session_error", "sessionError", "intervalometer_error"),
                };
                self.event(EventFamily::Timelapse, snake, &data);
                self.event(EventFamily::Timelapse, camel, &data);
                self.event(EventFamily::Event, legacy, &data);
            }
        }
    }
}
