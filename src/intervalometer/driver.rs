//! The session's executor for [`crate::driver::run`]: what the session machine's actions mean
//! (hand shots to the camera, change a ramp's settings, fetch and measure a thumbnail, append
//! to the journal, publish events) and the status block after every step.
//!
//! ```text
//!   service: Stop / WallStepped / Shutdown ─┐
//!   camera notices (a forwarding task) ─────┼─▶ inbox (bounded) ─▶ Session machine
//!   control worker: Msg::Shot (no task hop) ┤                          │ Action::Shoot
//!   ramp change / thumbnail measured ───────┘   ◀── perform: shoot_at_then(due, req, inbox)
//! ```
//!
//! One reusable timer (the driver's) covers the machine's deadlines and the journal retry.
//! This is the only intervalometer code that sees the clock (as `Now`, from the driver).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::app::{Publisher, StatusBoard};
use crate::camera::{CameraControl, CameraNotice, ShotOutcome};
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::{Executor, Flow};
use crate::logging::LogLimiter;
use crate::machine::Now;
use crate::protocol::messages::{
    FrameMeasured, PhotoOvertime, PhotoTaken, SessionCompleted, SessionEnded, SessionErrorEvent,
    SessionPhoto, SessionStopped, SessionWarning, ShotFailed, ShotInfo, ShotRecovered,
};
use crate::protocol::status::IntervalometerBlock;
use crate::protocol::ApiError;
use crate::sys::lock;
use crate::util::{iso8601, unix_millis};

use super::report::end_sentence;

use super::journal::Journal;
use super::schedule::GridView;
use super::service::Spawner;
use super::session::{Action, EndKind, Input, JournalEntry, Notice, Session};

/// How often lines held in memory (full card) are retried when no shot does it sooner.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// A wall clock that moved by more than this against the monotonic one was stepped.
const WALL_STEP_MS: i64 = 500;

/// What a running session's inbox carries.
pub enum Msg {
    /// Stop after the shot in flight; answer with the status block once handled.
    Stop(async_channel::Sender<IntervalometerBlock>),
    /// Time sync stepped the wall clock: re-evaluate `stop-at` now.
    WallStepped,
    /// Orderly shutdown: finish the shot in flight, leave the journal open-ended (resumable).
    Shutdown,
    Notice(CameraNotice),
    /// A shot's outcome, sent by the thread that fired it.
    Shot(u64, ShotOutcome),
    Settings(crate::camera::SettingsApplied),
    Measured(u64, Result<f64, String>),
    /// The journal's off-thread fsync finished.
    Synced(std::io::Result<()>),
}

/// The inbox's room: the service's few messages, notices, and at most one shot, one change
/// and one measurement in flight (a result that finds it full is sent from a task instead).
pub const INBOX: usize = 16;

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

/// What a session's executor is given by the service.
pub struct Parts {
    pub journal: Journal,
    pub camera: Arc<dyn CameraControl>,
    pub publisher: Publisher,
    pub status: StatusBoard,
    pub flags: Arc<Flags>,
    /// Runs the small tasks that carry slow results (ramp change, measurement) to the inbox.
    pub spawner: Spawner,
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

/// Sends a result to the inbox without blocking the thread that has it: from a task when
/// the inbox is full, so no result is ever lost.
fn deliver(tx: async_channel::Sender<Msg>, spawner: &Spawner, msg: Msg) {
    if let Err(async_channel::TrySendError::Full(msg)) = tx.try_send(msg) {
        spawner(Box::pin(async move {
            let _ = tx.send(msg).await;
        }));
    }
}

/// A shot's reply path, handed to the camera: the outcome goes straight into the inbox; a
/// shot dropped unfired (the camera worker stopped) is answered as failed.
struct ShotReply {
    slot: u64,
    tx: Option<async_channel::Sender<Msg>>,
    spawner: Spawner,
    /// When the shot was handed over (the failure's stamp if it is dropped).
    at: Instant,
}

impl ShotReply {
    fn send(mut self, outcome: ShotOutcome) {
        if let Some(tx) = self.tx.take() {
            deliver(tx, &self.spawner, Msg::Shot(self.slot, outcome));
        }
    }
}

impl Drop for ShotReply {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let o = ShotOutcome::not_sent(self.at, ApiError::system("Camera worker stopped"));
            deliver(tx, &self.spawner, Msg::Shot(self.slot, o));
        }
    }
}

/// One session's effects and the state the loop keeps between wake-ups.
pub struct SessionExec {
    parts: Parts,
    /// The inbox, weakly: results in flight hold it open, the service's handle decides.
    inbox: async_channel::WeakSender<Msg>,
    /// The slot whose reply is awaited (a late reply to an abandoned one is dropped).
    shot: Option<u64>,
    shutting_down: bool,
    /// The journal holds lines it could not write (full or read-only card): retried on
    /// every append and on this timer, and said once when it starts and once when it ends.
    journal_retry: Option<Instant>,
    /// The session ended but its end line is not on disk yet: the report waits for it.
    end_pending: bool,
    report_saved: bool,
    report_id: Option<String>,
    /// Wall minus monotonic since `reference` (ms) at the last look: a jump is a stepped
    /// wall clock.
    reference: Instant,
    wall_offset: i64,
    stop_replies: Vec<async_channel::Sender<IntervalometerBlock>>,
    notices_out: Vec<Notice>,
    /// Auto-ramp measurements (slot, brightness, sun altitude), published as events.
    measured_out: Vec<(u64, f64, f64)>,
    /// Failed and late shots reach the service log too (a post-mortem from the system's
    /// journal), a few per minute in full and then counted: a camera gone for the night at
    /// a 1 s interval must not fill the card with log lines.
    shot_log: ShotLog,
    exit: Option<Exit>,
}

/// Runs `session` until it ends (its report saved) or is shut down; `rx` is the inbox whose
/// sender the service keeps (`tx` is its weak twin: results in flight hold it open).
pub async fn run(
    session: Session,
    parts: Parts,
    tx: async_channel::WeakSender<Msg>,
    rx: async_channel::Receiver<Msg>,
    clock: SharedClock,
) -> Exit {
    parts.flags.running.store(true, Ordering::SeqCst);
    // Camera notices join the inbox through one small task (they are a channel of the camera).
    let notices = parts.camera.subscribe();
    let subscription = notices.clone();
    let weak = tx.clone();
    (parts.spawner)(Box::pin(async move {
        while let Ok(n) = notices.recv().await {
            let Some(tx) = weak.upgrade() else { break };
            if tx.send(Msg::Notice(n)).await.is_err() {
                break;
            }
        }
    }));
    let start = Now::read(clock.as_ref());
    let exec = SessionExec {
        parts,
        inbox: tx,
        shot: None,
        shutting_down: false,
        journal_retry: None,
        end_pending: false,
        report_saved: false,
        report_id: None,
        reference: start.mono,
        wall_offset: wall_offset(start.mono, start),
        stop_replies: Vec::new(),
        notices_out: Vec::new(),
        measured_out: Vec::new(),
        shot_log: ShotLog::default(),
        exit: None,
    };
    let (mut session, mut exec) = crate::driver::run(session, exec, rx, clock.clone()).await;
    // Ends the forwarding task and frees the camera's subscriber slot now.
    subscription.close();
    match exec.exit {
        Some(exit) => exit,
        None => {
            // The service went away (its inbox closed): as a shutdown.
            exec.shutting_down = true;
            let _ = exec.settled(&mut session, Now::read(clock.as_ref())).await;
            exec.exit.unwrap_or(Exit::Interrupted)
        }
    }
}

impl Executor<Session> for SessionExec {
    type Msg = Msg;

    async fn on_message(&mut self, m: &mut Session, now: Now, msg: Msg) -> Flow {
        self.check_wall(m, now, matches!(msg, Msg::WallStepped));
        match msg {
            Msg::Measured(slot, result) => m.handle(now.mono, Input::Measured { slot, result }),
            Msg::Settings(done) => {
                if let Some(e) = &done.error {
                    log::info!("session {}: ramp: {e}", m.id);
                }
                m.handle(
                    now.mono,
                    Input::SettingsApplied {
                        applied: done.applied,
                        error: done.error,
                    },
                );
            }
            Msg::Shot(slot, outcome) => {
                // A reply to a shot already given up is not the machine's business.
                if self.shot == Some(slot) {
                    self.shot = None;
                    m.handle(now.mono, Input::ShotDone { slot, outcome });
                }
            }
            Msg::Stop(reply) => {
                self.stop_replies.push(reply);
                m.handle(now.mono, Input::Stop);
            }
            Msg::Synced(r) => {
                let r = self.parts.journal.sync_done(r);
                self.journal_state(m, now.mono, r);
            }
            Msg::WallStepped => {}
            Msg::Shutdown => self.shutting_down = true,
            Msg::Notice(CameraNotice::Connected { .. }) => {
                m.handle(now.mono, Input::CameraConnected)
            }
            Msg::Notice(CameraNotice::Lost { reason }) => {
                m.handle(now.mono, Input::CameraLost { reason })
            }
            Msg::Notice(CameraNotice::FilesAdded(files)) => {
                m.handle(now.mono, Input::FilesAdded(files))
            }
        }
        Flow::Continue
    }

    async fn perform(&mut self, m: &mut Session, now: Now, action: Action) {
        match action {
            Action::Shoot { slot, .. } if self.shutting_down => {
                // The process is going down: finish the shot in flight, start no new one (at
                // intervals shorter than the lead time the next shot is handed over as soon
                // as one ends, so shutdown would never get its turn). The slot is not
                // journaled: a resume counts it as skipped.
                log::info!("session {}: shutting down; slot {slot} not shot", m.id);
            }
            Action::Shoot { slot, due, req } => {
                let Some(tx) = self.inbox.upgrade() else {
                    return;
                };
                self.parts
                    .flags
                    .shot_in_flight
                    .store(true, Ordering::SeqCst);
                self.shot = Some(slot);
                let reply = ShotReply {
                    slot,
                    tx: Some(tx),
                    spawner: self.parts.spawner.clone(),
                    at: now.mono,
                };
                // The outcome comes back from the control worker straight into the inbox.
                let task =
                    self.parts
                        .camera
                        .shoot_at_then(due, req, Box::new(move |o| reply.send(o)));
                if let Some(task) = task {
                    (self.parts.spawner)(task);
                }
            }
            Action::Measure { slot, path } => {
                let fetch = self.parts.camera.thumbnail(path);
                self.start(async move {
                    let jpeg = fetch.await.map_err(|e| e.message);
                    let r = jpeg.and_then(|j| crate::brightness::measure(&j).map(|m| m.brightness));
                    Msg::Measured(slot, r)
                });
            }
            Action::ApplySettings { .. } if self.shutting_down => {}
            Action::ApplySettings { changes, deadline } => {
                let change = self.parts.camera.apply_settings(changes, deadline);
                self.start(async move { Msg::Settings(change.await) });
            }
            Action::AbandonShot { slot } => {
                log::warn!("session {}: shot slot {slot} got no reply; given up", m.id);
                self.shot = None;
            }
            Action::Journal(entry) => {
                if let JournalEntry::Measured {
                    slot,
                    brightness,
                    sun_alt,
                } = &entry
                {
                    self.measured_out.push((*slot, *brightness, *sun_alt));
                }
                // The end line is durable before the report is made from the journal; the
                // others are written now and synced off this thread (see `journal`).
                let r = if matches!(entry, JournalEntry::End { .. }) {
                    self.parts.journal.append(&entry)
                } else {
                    self.parts.journal.write_at(&entry, now.mono)
                };
                self.journal_state(m, now.mono, r);
                self.sync_journal(now.mono);
            }
            Action::Notify(n) => self.notices_out.push(n),
        }
    }

    async fn settled(&mut self, m: &mut Session, now: Now) -> Flow {
        // The status block first, then the events: a client that reacts to an event and
        // reads the status sees at least that much.
        let block = m.status_block();
        for tx in self.stop_replies.drain(..) {
            let _ = tx.try_send(block.clone());
        }
        self.parts.status.set_intervalometer(Some(block));
        *lock(&self.parts.flags.grid) = m.grid_view();
        if self.shot.is_none() {
            self.parts
                .flags
                .shot_in_flight
                .store(false, Ordering::SeqCst);
            if m.is_ended() && !self.report_saved {
                // The session is over either way: clients may start anew at once.
                self.parts.flags.running.store(false, Ordering::SeqCst);
                let r = self.parts.journal.flush();
                self.journal_state(m, now.mono, r);
                if self.parts.journal.pending() == 0 {
                    // The journal is complete: the report is made from it; this driver
                    // touches no shared state after this.
                    self.report_saved = true;
                    self.report_id = (self.parts.on_end)(m.id.clone()).await;
                } else if !self.end_pending {
                    // A stopped session must not come back as interrupted because its end
                    // line met a full card: keep it and the report until space returns.
                    self.end_pending = true;
                    self.warn(
                        m,
                        "The end of the session could not be written (the card is full or read-only); it is kept in memory and written, and the report saved, when space returns",
                    );
                }
            }
        }
        for n in std::mem::take(&mut self.notices_out) {
            self.notify(m, now.mono, n);
        }
        for (slot, brightness, sun_alt) in std::mem::take(&mut self.measured_out) {
            self.measured(m, slot, brightness, sun_alt);
        }
        self.shot_log.flush(&m.id, now.mono);
        if self.shot.is_some() {
            return Flow::Continue;
        }
        if m.is_ended() && self.report_saved {
            self.shot_log.finish(&m.id);
            self.exit = Some(Exit::Ended(m.ended().unwrap_or(EndKind::Error)));
            return Flow::Stop;
        }
        if self.shutting_down {
            self.exit = Some(self.shut_down(m, now).await);
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn own_deadline(&self) -> Option<Instant> {
        match (self.journal_retry, self.parts.journal.sync_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn on_timeout(&mut self, m: &mut Session, now: Now) {
        self.check_wall(m, now, false);
        if self.journal_retry.is_some_and(|at| now.mono >= at) {
            let r = self.parts.journal.flush();
            self.journal_state(m, now.mono, r);
        }
        // Records of a fast session waiting for their fsync (see `journal`'s module doc).
        self.sync_journal(now.mono);
        m.handle(now.mono, Input::Tick);
    }
}

impl SessionExec {
    /// Starts the journal's fsync on a short-lived thread when one is wanted (the executor
    /// never waits for the card); the result comes back as `Msg::Synced`.
    fn sync_journal(&mut self, now: Instant) {
        if !self.parts.journal.sync_wanted(now) {
            return;
        }
        match self.parts.journal.begin_sync(now) {
            Ok(file) => self.start(async move {
                Msg::Synced(crate::sys::off_thread("journal-sync", move || file.sync_data()).await)
            }),
            Err(e) => log::warn!("journal fsync not started: {e}"),
        }
    }

    /// Runs a slow effect on a task; its result comes back through the inbox.
    fn start(&self, job: impl std::future::Future<Output = Msg> + Send + 'static) {
        let Some(tx) = self.inbox.upgrade() else {
            return;
        };
        let spawner = self.parts.spawner.clone();
        (self.parts.spawner)(Box::pin(async move {
            let msg = job.await;
            deliver(tx, &spawner, msg);
        }));
    }

    /// Feeds the wall clock to the machine when it was stepped (or time sync says so).
    fn check_wall(&mut self, m: &mut Session, now: Now, told: bool) {
        let offset = wall_offset(self.reference, now);
        let stepped = (offset - self.wall_offset).abs() > WALL_STEP_MS;
        if stepped || told {
            self.wall_offset = offset;
            m.handle(
                now.mono,
                Input::WallClock {
                    wall_ms: unix_millis(now.wall),
                    tz_offset_secs: (self.parts.tz_offset)(now.wall),
                },
            );
        }
    }

    /// The last wake-up before an orderly shutdown: one last journal try, then out.
    async fn shut_down(&mut self, m: &mut Session, now: Now) -> Exit {
        // One last try: an end line that reaches the disk now makes the session stopped
        // (and saved) rather than interrupted at the next start.
        let r = self.parts.journal.flush();
        self.journal_state(m, now.mono, r);
        let pending = self.parts.journal.pending();
        if self.end_pending && pending == 0 {
            self.report_id = (self.parts.on_end)(m.id.clone()).await;
            log::info!(
                "session {}: end written at shutdown (report {:?})",
                m.id,
                self.report_id
            );
            self.shot_log.finish(&m.id);
            return Exit::Ended(m.ended().unwrap_or(EndKind::Error));
        }
        if pending > 0 {
            log::error!(
                "session {}: {pending} journal line(s) could not be written before shutdown (card full or read-only); they are lost{}",
                m.id,
                if self.end_pending {
                    ", and the session will come back as interrupted"
                } else {
                    ""
                }
            );
        }
        *lock(&self.parts.flags.grid) = None;
        self.parts.flags.running.store(false, Ordering::SeqCst);
        self.shot_log.finish(&m.id);
        Exit::Interrupted
    }

    /// Auto-ramp: a frame's brightness against the target, for the live chart.
    fn measured(&self, m: &Session, slot: u64, brightness: f64, sun_alt: f64) {
        let Some(plan) = &m.options().auto else {
            return;
        };
        self.parts.publisher.publish(&FrameMeasured {
            session_id: m.id.clone(),
            slot,
            brightness,
            target_brightness: plan.options().target_log2(Some(sun_alt)).exp2(),
            exposure_ev: m.frame_exposure(slot),
            sun_altitude: sun_alt,
        });
    }

    /// Follows the journal after a write attempt: warns when it starts holding lines in memory
    /// (and when it loses one), says when they are written again, and keeps the retry timer
    /// set while lines wait.
    fn journal_state(&mut self, m: &Session, now: Instant, r: std::io::Result<()>) {
        match r {
            Ok(()) => {
                if self.journal_retry.take().is_some() {
                    log::info!(
                        "session {}: the journal is written again; every record held in memory is on the card",
                        m.id
                    );
                    self.parts.publisher.publish(&SessionWarning {
                        session_id: m.id.clone(),
                        title: m.title.clone(),
                        message: "The session journal is written again: no record was lost".into(),
                        fatal: false,
                        resolved: Some(true),
                    });
                }
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::OutOfMemory {
                    if self.parts.journal.lost() == 1 {
                        self.warn(m, &format!(
                            "Shot records are being lost: {e} (shooting continues; the photos are on the camera's card)"
                        ));
                    }
                } else if self.journal_retry.is_none() {
                    // Photos matter more than the journal: keep shooting, say so once.
                    self.warn(m, &format!(
                        "The session journal cannot be written ({e}); shooting continues and its records are kept in memory until space returns (a power loss meanwhile would lose them)"
                    ));
                }
                if self.journal_retry.is_none_or(|at| now >= at) {
                    self.journal_retry = Some(now + JOURNAL_RETRY);
                }
            }
        }
    }

    fn warn(&self, m: &Session, message: &str) {
        log::warn!("session {}: {message}", m.id);
        self.parts.publisher.publish(&SessionWarning {
            session_id: m.id.clone(),
            title: m.title.clone(),
            message: message.to_string(),
            fatal: false,
            resolved: None,
        });
    }

    fn notify(&mut self, m: &Session, now: Instant, n: Notice) {
        let id = &m.id;
        let title = &m.title;
        let report_id = self.report_id.as_deref();
        let shot_log = &mut self.shot_log;
        let publisher = &self.parts.publisher;
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
                let stats = m.stats_block();
                let timestamp = iso8601(crate::util::from_unix_millis(
                    r.sent_ms.unwrap_or(r.scheduled_ms).round() as i64,
                ));
                if let Some(error) = &r.error {
                    // The original's per-shot failure event.
                    publisher.publish(&ShotFailed {
                        session_id: id.clone(),
                        title: title.clone(),
                        shot_number: r.shot,
                        error: error.clone(),
                        timestamp: timestamp.clone(),
                        stats: stats.clone(),
                    });
                }
                publisher.publish(&SessionPhoto(PhotoTaken {
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
                        remaining_shots: m.remaining_shots(),
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
                publisher.publish(&ShotRecovered {
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
                publisher.publish(&PhotoOvertime {
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
            } => self.warn(m, &format!(
                "{failed} of the last {window} shots failed (last error: {last_error}); the session keeps its schedule"
            )),
            Notice::Ended { kind, reason } => {
                if kind == EndKind::Error {
                    log::error!(
                        "session {id} ended with an error: {}",
                        reason.as_deref().unwrap_or("no reason given")
                    );
                }
                let options = m.options_block();
                let ended = SessionEnded {
                    session_id: id.clone(),
                    title: title.clone(),
                    reason: end_sentence(Some(kind), &options.stop_condition, reason.as_deref()),
                    end_reason: reason,
                    stats: m.stats_block(),
                    options,
                    status: m.status_block(),
                    report_id: report_id.map(str::to_string),
                };
                match kind {
                    EndKind::Completed => publisher.publish(&SessionCompleted(ended)),
                    EndKind::Stopped => publisher.publish(&SessionStopped(ended)),
                    EndKind::Error => publisher.publish(&SessionErrorEvent(ended)),
                }
            }
        }
    }
}

/// Wall minus monotonic since `reference`, in ms: changes only when the wall clock is stepped.
fn wall_offset(reference: Instant, now: Now) -> i64 {
    let mono = now.mono.saturating_duration_since(reference);
    unix_millis(now.wall) - mono.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use std::sync::Mutex;

    /// A spawner that keeps the tasks for the test to run.
    fn keeper() -> (Spawner, Arc<Mutex<Vec<BoxFuture<'static, ()>>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        let spawner: Spawner = Arc::new(move |f| k.lock().unwrap().push(f));
        (spawner, kept)
    }

    fn outcome(at: Instant) -> ShotOutcome {
        ShotOutcome {
            sent_at: at,
            replied_at: at,
            result: Ok(()),
            maybe_taken: false,
        }
    }

    #[test]
    fn a_shot_reply_reaches_the_inbox_once_and_a_dropped_one_says_the_worker_stopped() {
        let (spawner, _) = keeper();
        let (tx, rx) = crate::driver::inbox(INBOX);
        let at = crate::clock::ManualClock::new(SystemTime::UNIX_EPOCH).now();
        let reply = |slot| ShotReply {
            slot,
            tx: Some(tx.clone()),
            spawner: spawner.clone(),
            at,
        };
        reply(3).send(outcome(at));
        drop(reply(4));
        match rx.try_recv() {
            Ok(Msg::Shot(3, o)) => assert!(o.result.is_ok()),
            _ => panic!("the outcome of slot 3 first"),
        }
        match rx.try_recv() {
            Ok(Msg::Shot(4, o)) => {
                let e = o.result.unwrap_err();
                assert!(e.message.contains("worker stopped"), "{}", e.message);
            }
            _ => panic!("a failure for the dropped slot 4"),
        }
        assert!(rx.try_recv().is_err(), "each reply once");
    }

    #[test]
    fn a_result_that_finds_the_inbox_full_waits_on_a_task_and_is_not_lost() {
        let (spawner, kept) = keeper();
        let (tx, rx) = crate::driver::inbox(1);
        tx.try_send(Msg::WallStepped).unwrap();
        deliver(
            tx.clone(),
            &spawner,
            Msg::Shot(
                7,
                outcome(crate::clock::ManualClock::new(SystemTime::UNIX_EPOCH).now()),
            ),
        );
        assert_eq!(kept.lock().unwrap().len(), 1, "handed to a task");
        let task = kept.lock().unwrap().pop().unwrap();
        smol::block_on(async {
            let send = smol::spawn(task);
            assert!(matches!(rx.recv().await, Ok(Msg::WallStepped)));
            send.await;
            assert!(matches!(rx.recv().await, Ok(Msg::Shot(7, _))));
        });
    }
}
