//! The session driver: one async task per running session. It performs the machine's actions
//! (hand shots to the camera driver, append to the journal, publish events, update the status
//! block) and sleeps on one timer until the next deadline, a shot reply, a camera notice or a
//! control message. It is the only intervalometer code that reads the clock (via `Clock`).

use futures_lite::{future::poll_fn, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use crate::app::{Publisher, StatusBoard};
use crate::camera::{CameraControl, CameraNotice, ShotOutcome};
use crate::clock::{BoxFuture, SharedClock};
use crate::logging::LogLimiter;
use crate::protocol::messages::{
    FrameMeasured, PhotoOvertime, PhotoTaken, SessionCompleted, SessionEnded, SessionErrorEvent,
    SessionPhoto, SessionStopped, SessionWarning, ShotFailed, ShotInfo, ShotRecovered,
};
use crate::protocol::status::IntervalometerBlock;
use crate::util::{iso8601, unix_millis};

use super::report::end_sentence;

use super::journal::Journal;
use super::schedule::GridView;
use super::session::{Action, EndKind, Input, JournalEntry, Notice, Session};

/// How often lines held in memory (full card) are retried when no shot does it sooner.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// A wall clock that moved by more than this against the monotonic one was stepped.
const WALL_STEP_MS: i64 = 500;

/// Messages from the service to a running session.
pub enum Control {
    /// Stop after the shot in flight; answer with the status block once handled.
    Stop(async_channel::Sender<IntervalometerBlock>),
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

/// Rate limits for the per-shot log lines of one session.
struct ShotLog {
    failed: LogLimiter,
    skipped: LogLimiter,
    overtime: LogLimiter,
}

impl Default for ShotLog {
    fn default() -> Self {
        let minute = std::time::Duration::from_secs(60);
        ShotLog {
            failed: LogLimiter::new("failed shot(s)", minute, 5),
            skipped: LogLimiter::new("skip(s)", minute, 3),
            overtime: LogLimiter::new("overtime shot(s)", minute, 3),
        }
    }
}

impl ShotLog {
    /// Writes what is still held back (the session ends).
    fn finish(&mut self, id: &str) {
        for (l, warn) in [
            (&mut self.failed, true),
            (&mut self.skipped, true),
            (&mut self.overtime, false),
        ] {
            match l.finish() {
                Some(line) if warn => log::warn!("session {id}: {line}"),
                Some(line) => log::info!("session {id}: {line}"),
                None => {}
            }
        }
    }

    /// Writes the summaries of windows that ended.
    fn flush(&mut self, id: &str, now: Instant) {
        if let Some(line) = self.failed.flush(now) {
            log::warn!("session {id}: {line}");
        }
        if let Some(line) = self.skipped.flush(now) {
            log::warn!("session {id}: {line}");
        }
        if let Some(line) = self.overtime.flush(now) {
            log::info!("session {id}: {line}");
        }
    }
}

/// The session-end hook: saves the report of session `id`; its id when saved.
pub type OnEnd = Arc<dyn Fn(String) -> BoxFuture<'static, Option<String>> + Send + Sync>;

enum Wake {
    Shot(u64, ShotOutcome),
    Measured(u64, Result<f64, String>),
    Settings(crate::camera::SettingsApplied),
    Control(Control),
    ControlClosed,
    Notice(CameraNotice),
    NoticesClosed,
    Timer,
}

impl Driver {
    pub async fn run(mut self) -> Exit {
        let mut shot: Option<(u64, BoxFuture<'static, ShotOutcome>)> = None;
        // A ramp's settings change with the camera (one at a time).
        let mut change: Option<BoxFuture<'static, crate::camera::SettingsApplied>> = None;
        // Auto-ramp: a frame's thumbnail being fetched and measured (one at a time).
        let mut measure: Option<(u64, BoxFuture<'static, Result<f64, String>>)> = None;
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        let mut control_open = true;
        let mut notices_open = true;
        let mut shutting_down = false;
        // The journal holds lines it could not write (full or read-only card): retried on
        // every append and on this timer, and said once when it starts and once when it ends.
        let mut journal_retry: Option<Instant> = None;
        // The session ended but its end line is not on disk yet: the report waits for it.
        let mut end_pending = false;
        let reference = self.clock.now();
        let mut wall_offset = self.wall_offset(reference);
        let mut stop_replies: Vec<async_channel::Sender<IntervalometerBlock>> = Vec::new();
        // Receivers are !Unpin streams; pin clones of them for polling.
        let mut control = Box::pin(self.control.clone());
        let mut notices = Box::pin(self.notices.clone());
        self.flags.running.store(true, Ordering::SeqCst);
        let mut notices_out: Vec<Notice> = Vec::new();
        // Auto-ramp measurements (slot, brightness, sun altitude), published as events.
        let mut measured_out: Vec<(u64, f64, f64)> = Vec::new();
        let mut report_saved = false;
        let mut report_id: Option<String> = None;
        // Failed and late shots reach the service log too (a post-mortem from the system's
        // journal), a few per minute in full and then counted: a camera gone for the night at
        // a 1 s interval must not fill the card with log lines.
        let mut shot_log = ShotLog::default();
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
                    Action::Measure { slot, path } => {
                        let fetch = self.camera.thumbnail(path);
                        let job: BoxFuture<'static, Result<f64, String>> = Box::pin(async move {
                            let jpeg = fetch.await.map_err(|e| e.message)?;
                            crate::brightness::measure(&jpeg).map(|m| m.brightness)
                        });
                        measure = Some((slot, job));
                    }
                    Action::ApplySettings { .. } if shutting_down => {}
                    Action::ApplySettings { changes, deadline } => {
                        change = Some(self.camera.apply_settings(changes, deadline));
                    }
                    Action::AbandonShot { slot } => {
                        log::warn!(
                            "session {}: shot slot {slot} got no reply; given up",
                            self.session.id
                        );
                        shot = None;
                    }
                    Action::Journal(entry) => {
                        if let JournalEntry::Measured {
                            slot,
                            brightness,
                            sun_alt,
                        } = &entry
                        {
                            measured_out.push((*slot, *brightness, *sun_alt));
                        }
                        let r = self.journal.append(&entry);
                        self.journal_state(r, &mut journal_retry);
                    }
                    Action::Notify(n) => notices_out.push(n),
                }
            }
            // The status block first, then the events: a client that reacts to an event and
            // reads the status sees at least that much.
            let block = self.session.status_block();
            for tx in stop_replies.drain(..) {
                let _ = tx.try_send(block.clone());
            }
            self.status.set_intervalometer(Some(block));
            *self.flags.grid.lock().unwrap_or_else(|e| e.into_inner()) = self.session.grid_view();
            if shot.is_none() {
                self.flags.shot_in_flight.store(false, Ordering::SeqCst);
                if self.session.is_ended() && !report_saved {
                    // The session is over either way: clients may start anew at once.
                    self.flags.running.store(false, Ordering::SeqCst);
                    let r = self.journal.flush();
                    self.journal_state(r, &mut journal_retry);
                    if self.journal.pending() == 0 {
                        // The journal is complete: the report is made from it; this driver
                        // touches no shared state after this.
                        report_saved = true;
                        report_id = (self.on_end)(self.session.id.clone()).await;
                    } else if !end_pending {
                        // A stopped session must not come back as interrupted because its end
                        // line met a full card: keep it and the report until space returns.
                        end_pending = true;
                        self.warn(
                            "The end of the session could not be written (the card is full or read-only); it is kept in memory and written, and the report saved, when space returns",
                        );
                    }
                }
            }
            for n in notices_out.drain(..) {
                self.notify(n, report_id.as_deref(), &mut shot_log);
            }
            for (slot, brightness, sun_alt) in measured_out.drain(..) {
                self.measured(slot, brightness, sun_alt);
            }
            shot_log.flush(&self.session.id, self.clock.now());
            if shot.is_none() {
                if self.session.is_ended() && report_saved {
                    break;
                }
                if shutting_down {
                    // One last try: an end line that reaches the disk now makes the session
                    // stopped (and saved) rather than interrupted at the next start.
                    let r = self.journal.flush();
                    self.journal_state(r, &mut journal_retry);
                    if end_pending && self.journal.pending() == 0 {
                        report_id = (self.on_end)(self.session.id.clone()).await;
                        log::info!(
                            "session {}: end written at shutdown (report {report_id:?})",
                            self.session.id
                        );
                        shot_log.finish(&self.session.id);
                        return Exit::Ended(self.session.ended().unwrap_or(EndKind::Error));
                    }
                    if self.journal.pending() > 0 {
                        log::error!(
                            "session {}: {} journal line(s) could not be written before shutdown (card full or read-only); they are lost{}",
                            self.session.id,
                            self.journal.pending(),
                            if end_pending {
                                ", and the session will come back as interrupted"
                            } else {
                                ""
                            }
                        );
                    }
                    *self.flags.grid.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.flags.running.store(false, Ordering::SeqCst);
                    shot_log.finish(&self.session.id);
                    return Exit::Interrupted;
                }
            }
            let deadline = match (self.session.poll_timeout(), journal_retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if timer.as_ref().map(|t| t.0) != deadline {
                timer = deadline.map(|d| (d, self.clock.sleep_until(d)));
            }
            let wake = poll_fn(|cx| {
                // Before the shot: a change queued ahead of a frame is answered first, so the
                // frame's record carries the settings it was shot with.
                if let Some(f) = change.as_mut() {
                    if let Poll::Ready(done) = f.as_mut().poll(cx) {
                        return Poll::Ready(Wake::Settings(done));
                    }
                }
                if let Some((slot, f)) = measure.as_mut() {
                    if let Poll::Ready(r) = f.as_mut().poll(cx) {
                        return Poll::Ready(Wake::Measured(*slot, r));
                    }
                }
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
                Wake::Measured(slot, result) => {
                    measure = None;
                    self.session.handle(now, Input::Measured { slot, result });
                }
                Wake::Settings(done) => {
                    change = None;
                    if let Some(e) = &done.error {
                        log::info!("session {}: ramp: {e}", self.session.id);
                    }
                    self.session.handle(
                        now,
                        Input::SettingsApplied {
                            applied: done.applied,
                            error: done.error,
                        },
                    );
                }
                Wake::Shot(slot, outcome) => {
                    shot = None;
                    self.session.handle(now, Input::ShotDone { slot, outcome });
                }
                Wake::Timer => {
                    timer = None;
                    if journal_retry.is_some_and(|at| now >= at) {
                        let r = self.journal.flush();
                        self.journal_state(r, &mut journal_retry);
                    }
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
        shot_log.finish(&self.session.id);
        Exit::Ended(self.session.ended().unwrap_or(EndKind::Error))
    }

    /// Follows the journal after a write attempt: warns when it starts holding lines in memory
    /// (and when it loses one), says when they are written again, and keeps `retry` set while
    /// lines wait.
    /// Auto-ramp: a frame's brightness against the target, for the live chart.
    fn measured(&self, slot: u64, brightness: f64, sun_alt: f64) {
        let Some(plan) = &self.session.options().auto else {
            return;
        };
        self.publisher.publish(&FrameMeasured {
            session_id: self.session.id.clone(),
            slot,
            brightness,
            target_brightness: plan.options().target_log2(Some(sun_alt)).exp2(),
            exposure_ev: self.session.frame_exposure(slot),
            sun_altitude: sun_alt,
        });
    }

    fn journal_state(&self, r: std::io::Result<()>, retry: &mut Option<Instant>) {
        let now = self.clock.now();
        match r {
            Ok(()) => {
                if retry.take().is_some() {
                    log::info!(
                        "session {}: the journal is written again; every record held in memory is on the card",
                        self.session.id
                    );
                    self.publisher.publish(&SessionWarning {
                        session_id: self.session.id.clone(),
                        title: self.session.title.clone(),
                        message: "The session journal is written again: no record was lost".into(),
                        fatal: false,
                        resolved: Some(true),
                    });
                }
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::OutOfMemory {
                    if self.journal.lost() == 1 {
                        self.warn(&format!(
                            "Shot records are being lost: {e} (shooting continues; the photos are on the camera's card)"
                        ));
                    }
                } else if retry.is_none() {
                    // Photos matter more than the journal: keep shooting, say so once.
                    self.warn(&format!(
                        "The session journal cannot be written ({e}); shooting continues and its records are kept in memory until space returns (a power loss meanwhile would lose them)"
                    ));
                }
                if retry.is_none_or(|at| now >= at) {
                    *retry = Some(now + JOURNAL_RETRY);
                }
            }
        }
    }

    /// Wall minus monotonic, in ms: changes only when the wall clock is stepped.
    fn wall_offset(&self, reference: Instant) -> i64 {
        let mono = self.clock.now().saturating_duration_since(reference);
        unix_millis(self.clock.wall()) - mono.as_millis() as i64
    }

    fn warn(&self, message: &str) {
        log::warn!("session {}: {message}", self.session.id);
        self.publisher.publish(&SessionWarning {
            session_id: self.session.id.clone(),
            title: self.session.title.clone(),
            message: message.to_string(),
            fatal: false,
            resolved: None,
        });
    }

    fn notify(&self, n: Notice, report_id: Option<&str>, shot_log: &mut ShotLog) {
        let id = &self.session.id;
        let title = &self.session.title;
        let now = self.clock.now();
        match n {
            Notice::Running => {}
            Notice::Shot(r) => {
                if !r.ok && shot_log.failed.note(now) {
                    log::warn!(
                        "session {id}: shot {} (slot {}) failed: {}",
                        r.shot,
                        r.slot,
                        r.error.as_deref().unwrap_or("no reason given")
                    );
                }
                if r.skipped_before > 0 && shot_log.skipped.note(now) {
                    log::warn!(
                        "session {id}: {} slot(s) skipped before shot {} (the previous shot ran \
                         over its interval or the camera was away)",
                        r.skipped_before,
                        r.shot
                    );
                }
                let stats = self.session.stats_block();
                let timestamp = iso8601(crate::util::from_unix_millis(
                    r.sent_ms.unwrap_or(r.scheduled_ms).round() as i64,
                ));
                if let Some(error) = &r.error {
                    // The original's per-shot failure event.
                    self.publisher.publish(&ShotFailed {
                        session_id: id.clone(),
                        title: title.clone(),
                        shot_number: r.shot,
                        error: error.clone(),
                        timestamp: timestamp.clone(),
                        stats: stats.clone(),
                    });
                }
                self.publisher.publish(&SessionPhoto(PhotoTaken {
                    success: r.ok,
                    timestamp,
                    error: r.error.clone(),
                    shot: Some(ShotInfo {
                        session_id: id.clone(),
                        title: title.clone(),
                        shot_number: r.shot,
                        slot: r.slot,
                        scheduled_time: crate::util::iso8601_millis(r.scheduled_ms.round() as i64),
                        timing_error_ms: r.error_ms,
                        duration_ms: r.duration_ms,
                        duration: r.duration_ms.map(|d| d / 1000.0),
                        skipped_before: r.skipped_before,
                        late: r.late,
                        file_name: r.files.first().cloned(),
                        stats,
                        remaining_shots: self.session.remaining_shots(),
                        settings: r.settings.as_deref().cloned(),
                        exposure_ev: r.exposure_ev,
                    }),
                }));
            }
            Notice::Taken(r) => {
                // A shot first recorded as failed (reply lost) whose file then appeared.
                log::info!(
                    "session {id}: shot {} was taken after all (its reply was lost)",
                    r.shot
                );
                self.publisher.publish(&ShotRecovered {
                    session_id: id.clone(),
                    shot_number: r.shot,
                    slot: r.slot,
                    success: true,
                    reply_lost: true,
                    message: format!(
                        "Shot {} was taken after all: its reply was lost but the camera saved the file",
                        r.shot
                    ),
                });
            }
            Notice::Overtime {
                shot,
                interval_s,
                duration_s,
                overtime_s,
            } => {
                if shot_log.overtime.note(now) {
                    log::info!(
                        "session {id}: shot {shot} took {duration_s:.1} s, {overtime_s:.1} s over \
                         the {interval_s} s interval"
                    );
                }
                self.publisher.publish(&PhotoOvertime {
                    session_id: id.clone(),
                    title: title.clone(),
                    shot_number: shot,
                    interval: interval_s,
                    shot_duration: duration_s,
                    overtime: overtime_s,
                    message: format!(
                        "Shot {shot} took {duration_s:.1}s ({overtime_s:.1}s over {interval_s}s interval)"
                    ),
                })
            }
            Notice::FailureRateHigh {
                failed,
                window,
                last_error,
            } => self.warn(&format!(
                "{failed} of the last {window} shots failed (last error: {last_error}); the session keeps its schedule"
            )),
            Notice::Ended { kind, reason } => {
                if kind == EndKind::Error {
                    log::error!(
                        "session {id} ended with an error: {}",
                        reason.as_deref().unwrap_or("no reason given")
                    );
                }
                let options = self.session.options_block();
                let ended = SessionEnded {
                    session_id: id.clone(),
                    title: title.clone(),
                    reason: end_sentence(Some(kind), &options.stop_condition, reason.as_deref()),
                    end_reason: reason,
                    stats: self.session.stats_block(),
                    options,
                    status: self.session.status_block(),
                    report_id: report_id.map(str::to_string),
                };
                match kind {
                    EndKind::Completed => self.publisher.publish(&SessionCompleted(ended)),
                    EndKind::Stopped => self.publisher.publish(&SessionStopped(ended)),
                    EndKind::Error => self.publisher.publish(&SessionErrorEvent(ended)),
                }
            }
        }
    }
}
