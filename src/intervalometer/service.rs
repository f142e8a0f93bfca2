//! [`IntervalometerService`]: the coordinator's handle on sessions and reports.
//!
//! Behaviour choices (documented for clients):
//! * Starting needs a connected camera ("Camera not available", CAMERA_OFFLINE) unless the
//!   start is scheduled (`startAt`): the camera may come up before then. Once running, a lost
//!   camera never stops the session: missed slots are recorded as failed and shooting resumes
//!   on reconnect. Resume after a restart also needs the camera.
//! * Starting a new session while an unsaved one exists saves the old one as a report first
//!   (`report_saved`), so nothing is lost silently.
//! * Stop answers once the machine has taken the stop (state `stopping` while a shot, e.g. a
//!   bulb exposure, is still in flight; `stopped` otherwise).
//! * A finished or interrupted session stays "unsaved" (its journal) until saved or discarded.
//!   It is offered to each client on connect (`timelapse_event/unsaved_session_found` and its
//!   alias) and sits in the `intervalometer` status block as `unsavedSession` (so `welcome`
//!   carries it too).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::app::{ClientId, Origin, Publisher, Service, StatusBoard};
use crate::backoff::Rng;
use crate::camera::CameraControl;
use crate::clock::{BoxFuture, SharedClock};
use crate::config::Config;
use crate::protocol::messages::{
    CompletionData, CompletionStats, IntervalValidationReply, IntervalometerStart,
    IntervalometerStatus, IntervalometerStop, ReportChart, ReportCsv, ReportDeleted,
    ReportDeletedEvent, ReportSaved, ReportTitleUpdated, ReportUpdated, SessionDiscarded,
    SessionDiscardedEvent, SessionRecovered, SessionResumed, SessionSaved, SessionStarted,
    SessionWarning, TimelapseReport, TimelapseReports, UnsavedSession, UnsavedSessionFound,
    UnsavedSessionReply,
};
use crate::protocol::status::IntervalometerBlock;
use crate::protocol::{
    ApiError, Body, Command, CommandResult, ErrorCode, ErrorDetails, Owner, Reply,
    StartIntervalometer,
};
use crate::util::{civil_from_days, iso8601_millis, unix_millis};

use super::driver::{Exit, Flags, Msg, Parts};
use super::journal::{self, Header, Journal, ResumeLine, SessionLog, JOURNAL_VERSION};
use super::report::{check_id, clean_title, to_csv, to_svg, Report, ReportStore};
use super::schedule::{
    resolve_start_at, resolve_stop_at, validate_interval, AutoPlan, FrameSettings, Ladders,
    RampPlan, SessionOptions, StopCondition, CAMERA_WRITE_MARGIN_SECS,
};
use super::session::{Session, Start, DEFAULT_LEAD};

/// Runs a task (smol's global executor in production; a test executor in tests).
pub type Spawner = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

struct Active {
    id: String,
    /// The running session's inbox.
    control: async_channel::Sender<Msg>,
    done: async_channel::Receiver<()>,
}

/// A session whose journal is still in `sessions/`.
#[derive(Debug, Clone)]
struct Unsaved {
    id: String,
    info: UnsavedSession,
    resumable: bool,
}

pub struct IntervalometerService {
    data_dir: PathBuf,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    camera: Arc<dyn CameraControl>,
    spawner: Spawner,
    reports: ReportStore,
    flags: Arc<Flags>,
    /// Fixed UTC offset (seconds east) from time sync; `None` = the system's local zone.
    utc_offset: Arc<Mutex<Option<i32>>>,
    active: Mutex<Option<Active>>,
    unsaved: Mutex<Vec<Unsaved>>,
    /// Serialises commands that change sessions or their files.
    ops: async_lock::Mutex<()>,
    lead: Duration,
    /// Where sun-relative start/stop times are computed (set once by the wiring).
    location: std::sync::OnceLock<Arc<crate::location::LocationStore>>,
    me: Weak<IntervalometerService>,
}

impl IntervalometerService {
    /// Scans `<data_dir>/sessions` for unsaved sessions and returns the service. Sessions run
    /// on smol's global executor.
    pub fn start(
        config: Arc<Config>,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        camera: Arc<dyn CameraControl>,
    ) -> Arc<Self> {
        let spawner: Spawner = Arc::new(|f| crate::rt::spawn(f).detach());
        Self::start_with(config, clock, status, publisher, camera, spawner)
    }

    /// As [`Self::start`], with the executor chosen by the caller.
    pub fn start_with(
        config: Arc<Config>,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        camera: Arc<dyn CameraControl>,
        spawner: Spawner,
    ) -> Arc<Self> {
        let svc = Arc::new_cyclic(|me| IntervalometerService {
            data_dir: config.data_dir.clone(),
            reports: ReportStore::new(&config.data_dir),
            clock,
            status,
            publisher,
            camera,
            spawner,
            flags: Arc::new(Flags::default()),
            utc_offset: Arc::new(Mutex::new(None)),
            active: Mutex::new(None),
            unsaved: Mutex::new(Vec::new()),
            ops: async_lock::Mutex::new(()),
            lead: DEFAULT_LEAD,
            location: std::sync::OnceLock::new(),
            me: me.clone(),
        });
        svc.rescan_unsaved();
        for u in lock(&svc.unsaved).iter() {
            log::info!(
                "found unsaved session {} ({})",
                u.id,
                if u.resumable {
                    "interrupted"
                } else {
                    "finished"
                }
            );
        }
        svc.publish_idle_block();
        svc
    }

    /// Sun-relative `startAt`/`stopAt` are computed at the location `store` remembers.
    pub fn use_location(&self, store: Arc<crate::location::LocationStore>) {
        let _ = self.location.set(store);
    }

    /// A session is scheduled or running (Wi-Fi changes are refused meanwhile).
    pub fn session_running(&self) -> bool {
        self.flags.running.load(Ordering::SeqCst)
    }

    /// A shot is handed to the camera or awaiting its reply (never step the clock now).
    pub fn shot_in_flight(&self) -> bool {
        self.flags.shot_in_flight.load(Ordering::SeqCst)
    }

    /// When a test shot exposing `test_exposure` can fire without touching a frame of the
    /// running session (`None`: no session runs; `Err`: no gap can hold it, in plain words).
    pub fn plan_test_shot(
        &self,
        now: std::time::Instant,
        test_exposure: Duration,
    ) -> Option<Result<std::time::Instant, String>> {
        if !self.session_running() {
            return None;
        }
        let grid = *lock(&self.flags.grid);
        Some(match grid {
            Some(g) => super::schedule::plan_test_shot(now, &g, test_exposure),
            // Running but between states (ending): nothing to fit into.
            None => Err("The timelapse is finishing; try again in a moment".into()),
        })
    }

    /// Time sync stepped the wall clock: the running session re-evaluates `stop-at`.
    pub fn wall_clock_stepped(&self) {
        if let Some(a) = lock(&self.active).as_ref() {
            let _ = a.control.try_send(Msg::WallStepped);
        }
    }

    /// Sets the zone "HH:MM" stop times are read in (seconds east of UTC); `None` = system.
    pub fn set_utc_offset(&self, secs: Option<i32>) {
        *lock(&self.utc_offset) = secs;
    }

    fn tz_fn(&self) -> Arc<dyn Fn(SystemTime) -> i32 + Send + Sync> {
        let o = self.utc_offset.clone();
        Arc::new(move |t| lock(&o).unwrap_or_else(|| local_utc_offset_secs(t)))
    }

    fn tz_now(&self) -> i32 {
        (self.tz_fn())(self.clock.wall())
    }

    fn rescan_unsaved(&self) {
        let active = lock(&self.active)
            .as_ref()
            .filter(|_| self.session_running())
            .map(|a| a.id.clone());
        let list: Vec<Unsaved> = journal::find_all(&self.data_dir)
            .into_iter()
            .filter(|l| Some(&l.header.id) != active.as_ref())
            .map(|l| Unsaved {
                id: l.header.id.clone(),
                info: unsaved_info(&l),
                resumable: !l.finished(),
            })
            .collect();
        *lock(&self.unsaved) = list;
    }

    fn unsaved_info(&self) -> Option<UnsavedSession> {
        lock(&self.unsaved).first().map(|u| u.info.clone())
    }

    /// Status block when no session runs: the last session's block (if any) plus the unsaved
    /// session, or null.
    fn publish_idle_block(&self) {
        if lock(&self.active).is_some() {
            return;
        }
        let unsaved = self.unsaved_info();
        let block = self.status.intervalometer();
        if block.is_none() && unsaved.is_none() {
            return;
        }
        let mut block = block.unwrap_or_else(IntervalometerBlock::idle);
        block.unsaved_session = unsaved;
        self.status.set_intervalometer(Some(block));
    }

    fn new_id(&self) -> String {
        let ms = unix_millis(self.clock.wall());
        let secs = ms.div_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let r = Rng::from_entropy().next_u64() & 0xffff;
        format!(
            "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{r:04x}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }

    fn spawn_driver(&self, session: Session, journal: Journal) -> Active {
        let (tx, rx) = crate::driver::inbox(super::driver::INBOX);
        let (done_tx, done_rx) = async_channel::bounded(1);
        let id = session.id.clone();
        self.flags.running.store(true, Ordering::SeqCst);
        let parts = Parts {
            journal,
            camera: self.camera.clone(),
            publisher: self.publisher.clone(),
            status: self.status.clone(),
            flags: self.flags.clone(),
            spawner: self.spawner.clone(),
            tz_offset: self.tz_fn(),
            on_end: self.on_end_hook(),
        };
        let me = self.me.clone();
        let sid = id.clone();
        let clock = self.clock.clone();
        // The driver holds its inbox weakly: it closes when the service lets go.
        let weak = tx.downgrade();
        (self.spawner)(Box::pin(async move {
            let exit = super::driver::run(session, parts, weak, rx, clock).await;
            log::info!("session {sid} ended: {exit:?}");
            if let Some(svc) = me.upgrade() {
                svc.session_finished(&sid, exit);
            }
            drop(done_tx);
        }));
        Active {
            id,
            control: tx,
            done: done_rx,
        }
    }

    /// The driver's session-end hook: the report is saved at once (see [`Self::auto_save`]).
    fn on_end_hook(&self) -> super::driver::OnEnd {
        let me = self.me.clone();
        Arc::new(move |id: String| {
            let me = me.clone();
            Box::pin(async move {
                let svc = me.upgrade()?;
                svc.auto_save(&id).await
            })
        })
    }

    /// Saves a session that has just ended as a report (the original does so on complete,
    /// stop and error). If it cannot be saved (full card…), the journal stays and the session
    /// is offered as unsaved, with its completion data, like an interrupted one.
    async fn auto_save(&self, id: &str) -> Option<String> {
        let _g = self.ops.lock().await;
        match self.save_report(id, None) {
            Ok(r) => Some(r.id),
            Err(e) => {
                log::error!("session {id} ended but its report could not be saved: {e}");
                let message = format!(
                    "The report could not be saved ({}); the session is kept and can be saved from the list once there is space",
                    e.message
                );
                self.publisher.publish(&SessionWarning {
                    session_id: id.to_string(),
                    title: String::new(),
                    message,
                    fatal: false,
                    resolved: None,
                });
                self.rescan_unsaved();
                self.publish_idle_block();
                None
            }
        }
    }

    fn session_finished(&self, id: &str, _exit: Exit) {
        {
            let mut a = lock(&self.active);
            if a.as_ref().is_some_and(|a| a.id == id) {
                *a = None;
            }
        }
        self.rescan_unsaved();
        self.publish_idle_block();
    }

    // -----------------------------------------------------------------------------------------
    // Commands

    async fn start_session(&self, req: &StartIntervalometer) -> CommandResult {
        let _g = self.ops.lock().await;
        if self.session_running() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "A session is already running; stop it first",
            ));
        }
        let now = self.clock.now();
        let wall_ms = unix_millis(self.clock.wall());
        let tz = self.tz_now();
        let loc = self.location.get().and_then(|l| l.location());
        let start_at = match &req.start_at {
            Some(s) => Some(resolve_start_at(s, wall_ms, tz, loc)?),
            None => None,
        };
        // First slot a lead time ahead (or at startAt) so the camera link can warm up; a ramp
        // also needs the time to set the first frame's values.
        let warm_up = if req.keyframes.is_some() || req.auto_ramp.is_some() {
            self.lead + super::session::RAMP_BUDGET + Duration::from_secs(1)
        } else {
            self.lead
        };
        let delay_ms = start_at
            .map(|at| (at - wall_ms).max(0))
            .unwrap_or(0)
            .max(warm_up.as_millis() as i64);
        let origin_wall_ms = wall_ms + delay_ms;
        let stop_at_ms = match &req.stop_at {
            Some(s) => resolve_stop_at(s, origin_wall_ms, loc)?,
            None => None,
        };
        let mut opts = SessionOptions::from_request(req, stop_at_ms)?;
        let mut settings_now = frame_settings(&self.camera.settings());
        if req.keyframes.is_some() && req.auto_ramp.is_some() {
            return Err(ApiError::invalid("Give keyframes or autoRamp, not both"));
        }
        if req.keyframes.is_some() || req.auto_ramp.is_some() {
            // The ramp picks from the values the camera offers, read now.
            if !self.camera.is_connected() {
                return Err(ApiError::new(
                    ErrorCode::CameraOffline,
                    "A ramp needs the camera connected at the start (to read the values it offers)",
                ));
            }
            let v = self.camera.shooting_settings().await.map_err(|e| {
                ApiError::new(
                    e.code,
                    format!(
                        "Cannot read the camera's settings for the ramp: {}",
                        e.message
                    ),
                )
            })?;
            let max_tv = opts.interval.as_secs_f64() - CAMERA_WRITE_MARGIN_SECS;
            if max_tv <= 0.0 {
                return Err(ApiError::invalid(format!(
                    "A ramp needs an interval over {CAMERA_WRITE_MARGIN_SECS} s (the camera's write time)"
                )));
            }
            let ladders = Ladders::from_abilities(&v, max_tv);
            if let Some(specs) = &req.keyframes {
                let plan = RampPlan::build(specs, origin_wall_ms, tz, loc, ladders, max_tv)?;
                // Reply timeouts and the interval check follow the ramp's longest exposure.
                opts.exposure = match (plan.max_tv_secs(), opts.exposure) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                opts.ramp = Some(plan);
            } else if let Some(spec) = &req.auto_ramp {
                let loc = loc.ok_or_else(|| {
                    let e = crate::location::no_location();
                    ApiError::new(e.code, format!("autoRamp follows the sun: {}", e.message))
                })?;
                let av = v["av"]["value"].as_str().unwrap_or_default().to_string();
                let plan = AutoPlan::build(spec, loc, av, ladders)?;
                // The longest exposure it may choose.
                opts.exposure = Some(max_tv);
                opts.auto = Some(plan);
            }
            settings_now = FrameSettings {
                tv: v["tv"]["value"].as_str().map(str::to_string),
                iso: v["iso"]["value"].as_str().map(str::to_string),
                av: v["av"]["value"].as_str().map(str::to_string),
            };
        }
        // The interval is checked against the camera's current Tv when the client did not
        // announce an exposure (a 10 s interval at 20" cannot work, whatever the client knew).
        if opts.exposure.is_none() && opts.bulb.is_none() {
            opts.exposure = self
                .camera
                .settings()
                .exposure_time()
                .map(|d| d.as_secs_f64());
        }
        let check = validate_interval(opts.interval.as_secs_f64(), opts.exposure);
        if !check.valid {
            return Err(
                ApiError::new(ErrorCode::ValidationFailed, check.warnings.join("; "))
                    .with_details(ErrorDetails::Interval(check)),
            );
        }
        let title = match &req.title {
            Some(t) if !t.trim().is_empty() => clean_title(t)?,
            _ => default_title(wall_ms + i64::from(tz) * 1000),
        };
        if start_at.is_none() && !self.camera.is_connected() {
            return Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not available",
            ));
        }
        // Don't lose an earlier session: save it as a report before starting over.
        let previous: Vec<String> = lock(&self.unsaved).iter().map(|u| u.id.clone()).collect();
        for id in previous {
            if let Err(e) = self.save_report(&id, None) {
                log::warn!("could not save unsaved session {id} before a new start: {e}");
            }
        }
        let base = now + Duration::from_millis(delay_ms as u64);
        let id = self.new_id();
        let identity = self.camera.identity();
        let mut session = Session::new(
            id.clone(),
            title.clone(),
            opts.clone(),
            Start {
                now,
                wall_ms,
                tz_offset_secs: tz,
                base,
                first_slot: 0,
                origin_wall_ms,
                stop_at_wall_ms: None,
                camera_connected: self.camera.is_connected(),
                lead: self.lead,
                settings: settings_now,
            },
            &[],
        );
        let header = Header {
            v: JOURNAL_VERSION,
            id: id.clone(),
            title: title.clone(),
            options: opts.to_wire(),
            created_wall_ms: wall_ms,
            origin_wall_ms,
            stop_at_wall_ms: session.stop_at_wall_ms(),
            tz_offset_secs: tz,
            camera: identity
                .as_ref()
                .map(|i| i.serialnumber.clone())
                .filter(|s| !s.is_empty()),
            camera_info: identity,
            camera_settings: Some(self.camera.settings()).filter(|s| *s != Default::default()),
        };
        let journal = Journal::create(&self.data_dir, &header)
            .map_err(|e| ApiError::system(format!("Cannot create the session journal: {e}")))?;
        // Let the machine take its first step before the driver takes it over.
        session.handle(now, super::session::Input::Tick);
        let status = session.status_block();
        let options = session.options_block();
        let active = self.spawn_driver(session, journal);
        *lock(&self.active) = Some(active);
        self.publisher.publish(&SessionStarted {
            session_id: id.clone(),
            title: title.clone(),
            interval: opts.interval.as_secs_f64(),
            options,
            start_time: iso8601_millis(origin_wall_ms),
        });
        Ok(Reply::of(&IntervalometerStart {
            success: true,
            session_id: id,
            title,
            status,
            message: "Intervalometer started".into(),
        }))
    }

    async fn stop_session(&self) -> CommandResult {
        let control = lock(&self.active)
            .as_ref()
            .filter(|_| self.session_running())
            .map(|a| a.control.clone());
        let Some(control) = control else {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                "No active session",
            ));
        };
        let (tx, rx) = async_channel::bounded(1);
        if control.send(Msg::Stop(tx)).await.is_err() {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                "No active session",
            ));
        }
        let status = rx
            .recv()
            .await
            .unwrap_or_else(|_| IntervalometerBlock::idle());
        Ok(Reply::of(&IntervalometerStop {
            success: true,
            status,
            message: "Intervalometer stopped".into(),
        }))
    }

    fn unsaved_log(&self, id: &str) -> Result<SessionLog, ApiError> {
        check_id(id)?;
        // The driver clears `running` once the journal is complete (before it announces the
        // end), so a client that saves on `session_completed` is not refused.
        if self.session_running() && lock(&self.active).as_ref().is_some_and(|a| a.id == id) {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "The session is still running; stop it first",
            ));
        }
        let path = journal::journal_path(&self.data_dir, id);
        if !path.exists() {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                format!("No unsaved session {id}"),
            ));
        }
        journal::read(&path).map_err(ApiError::system)
    }

    /// Journal → report → atomic write → journal removed. Emits report_saved.
    fn save_report(&self, id: &str, title: Option<&str>) -> Result<Report, ApiError> {
        let log = self.unsaved_log(id)?;
        let title = title.map(clean_title).transpose()?;
        let report = Report::from_log(&log, title.as_deref(), unix_millis(self.clock.wall()));
        self.reports.save(&report)?;
        if let Err(e) = std::fs::remove_file(&log.path) {
            log::warn!("report {id} saved but its journal could not be removed: {e}");
        }
        self.rescan_unsaved();
        self.publish_idle_block();
        self.publisher.publish(&ReportSaved {
            report_id: id.to_string(),
            id: id.to_string(),
            session_id: id.to_string(),
            title: report.title.clone(),
            report: report.list_entry(),
        });
        Ok(report)
    }

    async fn save_session(&self, id: &str, title: Option<&str>) -> CommandResult {
        let _g = self.ops.lock().await;
        // Saved at its end already (clients of the original still press Save): rename only.
        let report = if !self.journal_exists(id) && self.reports.exists(id) {
            match title {
                Some(t) => self.reports.rename(id, t)?,
                None => self.reports.get(id)?,
            }
        } else {
            self.save_report(id, title)?
        };
        Ok(Reply::of(&SessionSaved {
            success: true,
            session_id: id.to_string(),
            report_id: id.to_string(),
            report: report.list_entry(),
        }))
    }

    fn journal_exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && journal::journal_path(&self.data_dir, id).exists()
    }

    async fn discard_session(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        let report_deleted = !self.journal_exists(id) && self.reports.exists(id);
        if report_deleted {
            // The session ended and was saved at once: discarding it deletes that report.
            self.reports.delete(id)?;
            self.publisher.publish(&ReportDeletedEvent {
                report_id: id.to_string(),
                id: id.to_string(),
            });
        } else {
            let log = self.unsaved_log(id)?;
            std::fs::remove_file(&log.path)
                .map_err(|e| ApiError::system(format!("Cannot remove the session journal: {e}")))?;
        }
        self.rescan_unsaved();
        self.publish_idle_block();
        self.publisher.publish(&SessionDiscardedEvent {
            session_id: id.to_string(),
            message: "Session discarded".into(),
        });
        Ok(Reply::of(&SessionDiscarded {
            success: true,
            session_id: id.to_string(),
            report_deleted,
        }))
    }

    async fn resume_session(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        if self.session_running() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "A session is already running",
            ));
        }
        let log = self.unsaved_log(id)?;
        if log.finished() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "This session finished; it can be saved or discarded, not resumed",
            ));
        }
        if !self.camera.is_connected() {
            return Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not available",
            ));
        }
        let opts = SessionOptions::from_wire(&log.header.options)?;
        let now = self.clock.now();
        let wall_ms = unix_millis(self.clock.wall());
        let tz = self.tz_now();
        // The monotonic origin died with the process: map the grid back through wall time.
        let interval_ms = opts.interval.as_secs_f64() * 1000.0;
        let since_origin =
            (wall_ms - log.header.origin_wall_ms) as f64 + self.lead.as_millis() as f64;
        let mut first_slot = (since_origin / interval_ms).ceil().max(0.0) as u64;
        if let Some(last) = log.shots.last() {
            first_slot = first_slot.max(last.slot + 1);
        }
        let slot_wall = log.header.origin_wall_ms as f64 + first_slot as f64 * interval_ms;
        let base = now + Duration::from_secs_f64(((slot_wall - wall_ms as f64) / 1000.0).max(0.0));
        let mut journal = Journal::reopen(&log.path)
            .map_err(|e| ApiError::system(format!("Cannot reopen the session journal: {e}")))?;
        journal
            .append_resume(&ResumeLine {
                wall_ms,
                first_slot,
            })
            .map_err(|e| ApiError::system(format!("Cannot write the session journal: {e}")))?;
        let mut session = Session::new(
            id.to_string(),
            log.header.title.clone(),
            opts.clone(),
            Start {
                now,
                wall_ms,
                tz_offset_secs: tz,
                base,
                first_slot,
                origin_wall_ms: log.header.origin_wall_ms,
                stop_at_wall_ms: log.header.stop_at_wall_ms,
                camera_connected: true,
                lead: self.lead,
                settings: frame_settings(&self.camera.settings()),
            },
            &log.shots,
        );
        let skipped = first_slot - log.shots.last().map(|s| s.slot + 1).unwrap_or(0);
        session.handle(now, super::session::Input::Tick);
        let status = session.status_block();
        let options = session.options_block();
        let active = self.spawn_driver(session, journal);
        *lock(&self.active) = Some(active);
        self.rescan_unsaved();
        self.publisher.publish(&SessionRecovered {
            session_id: id.to_string(),
            title: log.header.title.clone(),
            interval: opts.interval.as_secs_f64(),
            options,
            shots_before: log.shots.len(),
            slots_skipped_while_down: skipped,
        });
        Ok(Reply::of(&SessionResumed {
            success: true,
            session_id: id.to_string(),
            title: log.header.title,
            status,
        }))
    }

    fn intervalometer_status(&self) -> CommandResult {
        let block = self
            .status
            .intervalometer()
            .unwrap_or_else(IntervalometerBlock::idle);
        Ok(Reply::of(&IntervalometerStatus(block)))
    }

    async fn update_title(&self, id: &str, title: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        let r = self.reports.rename(id, title)?;
        self.publisher.publish(&ReportUpdated {
            report_id: id.to_string(),
            id: id.to_string(),
            title: r.title.clone(),
        });
        Ok(Reply::of(&ReportTitleUpdated {
            success: true,
            id: id.to_string(),
            report_id: id.to_string(),
            title: r.title.clone(),
            report: r.list_entry(),
        }))
    }

    async fn delete_report(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        self.reports.delete(id)?;
        self.publisher.publish(&ReportDeletedEvent {
            report_id: id.to_string(),
            id: id.to_string(),
        });
        Ok(Reply::of(&ReportDeleted {
            success: true,
            id: id.to_string(),
            report_id: id.to_string(),
        }))
    }

    async fn run(&self, cmd: &Command) -> CommandResult {
        match cmd {
            Command::ValidateInterval(v) => {
                // No exposure given: the camera's current Tv.
                let tv = self.camera.settings().exposure_time();
                let exposure = v.exposure.or(tv.map(|d| d.as_secs_f64()));
                Ok(Reply::of(&IntervalValidationReply(validate_interval(
                    v.interval, exposure,
                ))))
            }
            Command::StartIntervalometer(req) => self.start_session(req).await,
            Command::StopIntervalometer => self.stop_session().await,
            Command::GetIntervalometerStatus => self.intervalometer_status(),
            Command::GetUnsavedSession => Ok(Reply::of(&UnsavedSessionReply {
                unsaved_session: self.unsaved_info(),
            })),
            Command::SaveSessionAsReport(r) => {
                self.save_session(&r.session_id, r.title.as_deref()).await
            }
            Command::DiscardSession(r) => self.discard_session(&r.session_id).await,
            Command::ResumeSession(r) => self.resume_session(&r.session_id).await,
            // Reading a report file not indexed yet takes a pass over it (seconds for 50 MB on
            // a Pi): on a thread of its own, so the service's other commands keep going.
            Command::GetTimelapseReports => {
                let store = self.reports.clone();
                let reports = crate::sys::off_thread("reports", move || store.list()).await;
                Ok(Reply::of(&TimelapseReports { reports }))
            }
            Command::GetTimelapseReport(r) => {
                // Streamed from the file as it is (`{"report": <file>}`), never parsed here.
                let (store, id) = (self.reports.clone(), r.id.clone());
                let open = crate::sys::off_thread("reports", move || store.open(&id)).await?;
                Ok(Reply::streamed::<TimelapseReport>(
                    "report", open.file, open.len,
                ))
            }
            Command::UpdateReportTitle(u) => {
                let id = u.id.as_deref().or(u.session_id.as_deref()).ok_or_else(|| {
                    ApiError::new(ErrorCode::MissingParameter, "Missing id or sessionId")
                })?;
                self.update_title(id, &u.title).await
            }
            Command::DeleteTimelapseReport(r) => self.delete_report(&r.id).await,
            Command::GetReportCsv(r) => {
                let csv = to_csv(&self.reports.get(&r.id)?);
                let data = ReportCsv {
                    id: r.id.clone(),
                    content_type: "text/csv".into(),
                    content: csv.clone(),
                };
                Ok(Reply::of(&data).with_body(Body::Bytes {
                    content_type: "text/csv; charset=utf-8",
                    bytes: csv.into_bytes(),
                }))
            }
            Command::GetReportChart(r) => {
                let svg = to_svg(&self.reports.get(&r.id)?);
                let data = ReportChart {
                    id: r.id.clone(),
                    content_type: "image/svg+xml".into(),
                    content: svg.clone(),
                };
                Ok(Reply::of(&data).with_body(Body::Bytes {
                    content_type: "image/svg+xml",
                    bytes: svg.into_bytes(),
                }))
            }
            _ => Err(ApiError::unavailable("not an intervalometer command")),
        }
    }
}

impl Service for IntervalometerService {
    fn name(&self) -> &'static str {
        "intervalometer"
    }

    fn owner(&self) -> Owner {
        Owner::Intervalometer
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        use Command::*;
        match cmd {
            ValidateInterval(_)
            | StartIntervalometer(_)
            | StopIntervalometer
            | GetIntervalometerStatus
            | GetUnsavedSession
            | SaveSessionAsReport(_)
            | DiscardSession(_)
            | ResumeSession(_)
            | GetTimelapseReports
            | GetTimelapseReport(_)
            | UpdateReportTitle(_)
            | DeleteTimelapseReport(_)
            | GetReportCsv(_)
            | GetReportChart(_) => Some(Box::pin(self.run(cmd))),
            _ => None,
        }
    }

    fn client_connected(&self, client: ClientId) {
        if let Some(info) = self.unsaved_info() {
            self.publisher
                .publish_to(client, &UnsavedSessionFound(info));
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let active = lock(&self.active)
                .as_ref()
                .map(|a| (a.control.clone(), a.done.clone()));
            if let Some((control, done)) = active {
                let _ = control.send(Msg::Shutdown).await;
                // The driver finishes the shot in flight; the caller bounds how long we wait.
                let _ = done.recv().await;
            }
        })
    }
}

impl crate::camera::service::SessionGate for IntervalometerService {
    fn session_running(&self) -> bool {
        IntervalometerService::session_running(self)
    }

    fn plan_test_shot(
        &self,
        now: std::time::Instant,
        exposure: Duration,
    ) -> Option<Result<std::time::Instant, String>> {
        IntervalometerService::plan_test_shot(self, now, exposure)
    }
}

fn unsaved_info(l: &SessionLog) -> UnsavedSession {
    let ok = l.shots.iter().filter(|s| s.ok).count();
    let stop = SessionOptions::from_wire(&l.header.options)
        .map(|o| o.stop)
        .ok();
    let mut actions = vec!["save".to_string(), "discard".to_string()];
    if !l.finished() {
        actions.push("resume".into());
    }
    let (kind, error) = match &l.end {
        Some((k, r, _)) => (Some(*k), r.as_deref()),
        None => (None, None),
    };
    let reason = super::report::end_sentence(kind, &l.header.options.stop_condition, error);
    let start = iso8601_millis(l.header.origin_wall_ms);
    let end = iso8601_millis(l.last_wall_ms());
    let taken = l.shots.len();
    UnsavedSession {
        session_id: l.header.id.clone(),
        title: l.header.title.clone(),
        start_time: start.clone(),
        end_time: end.clone(),
        status: l
            .end
            .as_ref()
            .map(|e| e.0.as_str())
            .unwrap_or("interrupted")
            .into(),
        interrupted: !l.finished(),
        can_resume: !l.finished()
            && !matches!(stop, Some(StopCondition::AfterShots(n)) if taken as u64 >= u64::from(n)),
        options: l.header.options.clone(),
        shots_taken: taken,
        shots_successful: ok,
        shots_failed: taken - ok,
        actions,
        reason: reason.clone(),
        completion_data: CompletionData {
            reason,
            completed_at: end.clone(),
            options: l.header.options.clone(),
            stats: CompletionStats {
                start_time: start,
                end_time: end,
                shots_taken: taken,
                shots_successful: ok,
                shots_failed: taken - ok,
            },
        },
    }
}

/// The Tv/ISO/Av of the camera's last reported settings.
fn frame_settings(c: &crate::camera::CameraSettings) -> FrameSettings {
    FrameSettings {
        tv: c.tv.clone(),
        iso: c.iso.clone(),
        av: c.av.clone(),
    }
}

fn default_title(local_ms: i64) -> String {
    let iso = iso8601_millis(local_ms);
    format!("Timelapse {} {}", &iso[..10], &iso[11..16])
}

use crate::sys::lock;

/// The system's UTC offset at `t` (seconds east), from the C library's zone data.
pub fn local_utc_offset_secs(t: SystemTime) -> i32 {
    crate::sys::localtime(unix_millis(t).div_euclid(1000)).map_or(0, |(off, _, _)| off)
}
