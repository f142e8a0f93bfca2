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

    fn intervalometer_status(&self) -> CommandResult {
        let block = self
            .status
            .intervalometer()
            .unwrap_or_else(IntervalometerBlock::idle);
        Ok(Reply::of(&IntervalometerStatus(block)))
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
            Command::PlanSession(req) => self.plan_session(req).await,
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
            | PlanSession(_)
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

mod plan;
mod saved;
mod sessions;

use saved::unsaved_info;

/// The system's UTC offset at `t` (seconds east), from the C library's zone data.
pub fn local_utc_offset_secs(t: SystemTime) -> i32 {
    crate::sys::localtime(unix_millis(t).div_euclid(1000)).map_or(0, |(off, _, _)| off)
}
