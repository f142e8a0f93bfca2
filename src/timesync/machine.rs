//! The time sync machine (sans-IO): the Pi's clock from phones (and their GPS), the camera's
//! clock from the Pi's.
//!
//! ```text
//!  clients:   connect ──▶ [request due] ──SendRequest──▶ [pending id, sent at t₀ (mono), W₀ (wall)]
//!                 ▲                                          │ response at t₁: rtt = t₁ − t₀
//!                 └──────── every request_interval ◀─────────┘ offset = clientTime − (W₀ + rtt/2)
//!                                                              uncertainty = rtt/2 + resolution
//!  Pi clock:  sample ──|offset| ≤ 5 s──▶ record sync (pi-sync, no step)
//!                  └──|offset| > 5 s, Pi not High──▶ PiStep::Due ──StepClock──▶ PiStep::Stepping
//!                        (Pi High: ignored, pi-sync        ▲   │ gate closed (shot in flight):
//!                         says so)                         │   ▼ Deferred → Due{retry_at}
//!                                                          └───┘ (gives up after max_deferral)
//!                      Stepping ──Ok──▶ Idle + record sync + camera sync; ──Err──▶ Idle, sync-failed
//!  reliability: uncertainty(now) = base + drift_ppm × (now − synced_at); High ≤ 2 s < Medium
//!               ≤ 10 s < Low ≤ 60 s < None. Falling out of Medium emits reliability-lost.
//!  camera:    Idle ──request──▶ Reading ──|Δ| ≤ 2 s──▶ Idle (camera-sync, unchanged)
//!                                  └──|Δ| > 2 s──▶ Writing ──Ok──▶ Idle (camera-sync)
//!             any error / timeout ──▶ Idle (sync-failed)
//! ```
//!
//! Monotonic instants (`now`) drive every deadline; the wall time passed in is used only to
//! stamp requests, to measure offsets and for labels. A wall step therefore never moves a
//! deadline of this machine (nor the intervalometer's schedule).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::types::{reliability_lost, sane, sync_failed};
pub use super::types::{
    Action, GpsAccuracy, Input, Reliability, Source, StepOutcome, TimeSyncConfig,
};
use crate::app::ClientId;
use crate::protocol::messages::{CameraSync as CameraSyncEvent, PiSync as PiSyncEvent};
use crate::protocol::status::{CameraTimeBlock, PiProxyState, PiTimeBlock, TimesyncBlock};
use crate::protocol::{ApiError, Event};
use crate::util::{iso8601, iso8601_millis, unix_millis};

/// One measurement of the Pi's clock error.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    source: Source,
    /// True time − Pi time.
    offset_ms: i64,
    uncertainty_ms: f64,
}

/// The last good sync of the Pi's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PiSync {
    source: Source,
    at: Instant,
    /// Measured offset before any step.
    offset_ms: i64,
    uncertainty_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum PiStep {
    Idle,
    Due {
        sample: Sample,
        since: Instant,
        retry_at: Instant,
    },
    Stepping {
        sample: Sample,
        since: Instant,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum CameraSync {
    Idle,
    Reading {
        manual: bool,
        deadline: Instant,
    },
    Writing {
        previous: SystemTime,
        offset_ms: i64,
        deadline: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CameraSynced {
    wall: SystemTime,
    offset_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Pending {
    request_id: String,
    sent: Instant,
    server_wall_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct ClientEntry {
    next_request: Instant,
    pending: Option<Pending>,
    /// Phone clock − Pi clock from this client's last accepted sample, and when.
    last_offset: Option<(i64, Instant)>,
}

pub struct TimeSyncMachine {
    cfg: TimeSyncConfig,
    clients: BTreeMap<ClientId, ClientEntry>,
    next_request_id: u64,
    pi: Option<PiSync>,
    /// Level at the last check, to notice decay across a boundary.
    last_level: Reliability,
    step: PiStep,
    camera_connected: bool,
    camera: CameraSync,
    camera_synced: Option<CameraSynced>,
    timezone_label: Option<String>,
    actions: VecDeque<Action>,
}

impl TimeSyncMachine {
    pub fn new(cfg: TimeSyncConfig) -> Self {
        TimeSyncMachine {
            cfg,
            clients: BTreeMap::new(),
            next_request_id: 1,
            pi: None,
            last_level: Reliability::None,
            step: PiStep::Idle,
            camera_connected: false,
            camera: CameraSync::Idle,
            camera_synced: None,
            timezone_label: None,
            actions: VecDeque::new(),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest monotonic deadline: a client request, a pending request's expiry, a step
    /// retry, a camera timeout, or the instant reliability falls to the next level.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self.clients.values().flat_map(|c| {
            let expiry = c
                .pending
                .as_ref()
                .map(|p| p.sent + self.cfg.request_timeout);
            [Some(c.next_request), expiry]
        });
        let step = match &self.step {
            PiStep::Due { retry_at, .. } => Some(*retry_at),
            PiStep::Idle | PiStep::Stepping { .. } => None,
        };
        let camera = match &self.camera {
            CameraSync::Idle => None,
            CameraSync::Reading { deadline, .. } | CameraSync::Writing { deadline, .. } => {
                Some(*deadline)
            }
        };
        clients
            .chain([step, camera, self.next_level_change()])
            .flatten()
            .min()
    }

    /// The Pi's clock uncertainty at `now`, or `None` if it was never synchronised.
    pub fn pi_uncertainty_ms(&self, now: Instant) -> Option<f64> {
        self.pi.map(|p| {
            let elapsed_ms = now.saturating_duration_since(p.at).as_secs_f64() * 1000.0;
            p.uncertainty_ms + self.cfg.drift_ppm * 1e-6 * elapsed_ms
        })
    }

    pub fn pi_reliability(&self, now: Instant) -> Reliability {
        self.pi_uncertainty_ms(now)
            .map_or(Reliability::None, Reliability::from_uncertainty_ms)
    }

    /// Whether the Pi's time is good enough to hand on (to the camera, to labels).
    /// When the Pi's time was last set or confirmed (changes with every accepted sample).
    pub fn last_sync_at(&self) -> Option<Instant> {
        self.pi.map(|p| p.at)
    }

    pub fn pi_synchronized(&self, now: Instant) -> bool {
        self.pi_reliability(now) >= Reliability::Medium
    }

    fn next_level_change(&self) -> Option<Instant> {
        let p = self.pi?;
        let rate = self.cfg.drift_ppm * 1e-6;
        if rate <= 0.0 {
            return None;
        }
        // The boundary below the level seen at the last input (never one already passed, or
        // the driver would spin on a deadline in the past).
        let bound = match self.last_level {
            Reliability::High => Reliability::HIGH_MS,
            Reliability::Medium => Reliability::MEDIUM_MS,
            Reliability::Low => Reliability::LOW_MS,
            Reliability::None => return None,
        };
        // +1 ms so that at the deadline the level has really changed.
        let ms = (bound - p.uncertainty_ms) / rate + 1.0;
        Some(p.at + Duration::from_secs_f64(ms.min(1e12) / 1000.0))
    }

    /// Feeds one input. Errors are edge rejections (the command's reply); everything else
    /// becomes actions and events.
    pub fn handle(&mut self, now: Instant, wall: SystemTime, input: Input) -> Result<(), ApiError> {
        let result = match input {
            Input::ClientConnected(id) => {
                if self.clients.len() < self.cfg.max_clients || self.clients.contains_key(&id) {
                    self.clients.insert(
                        id,
                        ClientEntry {
                            next_request: now,
                            pending: None,
                            last_offset: None,
                        },
                    );
                }
                Ok(())
            }
            Input::ClientDisconnected(id) => {
                self.clients.remove(&id);
                Ok(())
            }
            Input::Response {
                client,
                request_id,
                client_time_ms,
            } => self.on_response(now, client, request_id, client_time_ms),
            Input::Gps {
                client,
                fix_time_ms,
                accuracy,
            } => self.on_gps(now, wall, client, fix_time_ms, accuracy),
            Input::Manual { client_time_ms } => {
                sane(client_time_ms, "clientTime")?;
                let sample = Sample {
                    source: Source::Manual,
                    offset_ms: client_time_ms - unix_millis(wall),
                    // No round trip to measure: allow for the network and the person.
                    uncertainty_ms: 1_000.0,
                };
                self.apply_sample(now, sample, true);
                Ok(())
            }
            Input::Step(outcome) => {
                self.on_step(now, outcome);
                Ok(())
            }
            Input::CameraConnected => {
                self.camera_connected = true;
                self.camera_synced = None;
                if self.pi_synchronized(now) {
                    self.start_camera_sync(now, false);
                }
                Ok(())
            }
            Input::CameraLost => {
                self.camera_connected = false;
                self.camera_synced = None;
                self.camera = CameraSync::Idle;
                Ok(())
            }
            Input::CameraSyncRequested { manual } => {
                self.start_camera_sync(now, manual);
                Ok(())
            }
            Input::CameraRead(r) => {
                self.on_camera_read(now, wall, r);
                Ok(())
            }
            Input::CameraWritten(r) => {
                self.on_camera_written(wall, r);
                Ok(())
            }
            Input::Tick => Ok(()),
        };
        self.check_timers(now, wall);
        result
    }

    pub fn set_timezone_label(&mut self, tz: Option<String>) {
        self.timezone_label = tz;
    }

    fn check_timers(&mut self, now: Instant, wall: SystemTime) {
        // Client requests: expire stale ones, issue due ones.
        for (id, c) in self.clients.iter_mut() {
            if c.pending
                .as_ref()
                .is_some_and(|p| now >= p.sent + self.cfg.request_timeout)
            {
                c.pending = None;
            }
            if now >= c.next_request {
                let request_id = format!("ts-{}", self.next_request_id);
                self.next_request_id += 1;
                // The driver reads `now` and `wall` together and sends at once: the stamp in
                // the frame is the one the offset is computed from.
                let server_wall_ms = unix_millis(wall);
                c.pending = Some(Pending {
                    request_id: request_id.clone(),
                    sent: now,
                    server_wall_ms,
                });
                c.next_request = now + self.cfg.request_interval;
                self.actions.push_back(Action::SendRequest {
                    client: *id,
                    request_id,
                    server_time_ms: server_wall_ms,
                });
            }
        }
        // Step retry (the driver asks the gate again).
        if let PiStep::Due {
            sample,
            since,
            retry_at,
        } = self.step
        {
            if now >= retry_at {
                self.step = PiStep::Stepping { sample, since };
                self.actions.push_back(Action::StepClock {
                    offset_ms: sample.offset_ms,
                });
            }
        }
        // Camera timeout.
        match self.camera {
            CameraSync::Reading { deadline, .. } | CameraSync::Writing { deadline, .. }
                if now >= deadline =>
            {
                self.camera = CameraSync::Idle;
                self.actions.push_back(sync_failed(
                    "camera",
                    "the camera did not answer in time",
                    None,
                ));
            }
            _ => {}
        }
        // Decay across a level boundary.
        let level = self.pi_reliability(now);
        if level < Reliability::Medium && self.last_level >= Reliability::Medium {
            let age = self
                .pi
                .map_or(0, |p| now.saturating_duration_since(p.at).as_secs());
            self.actions.push_back(reliability_lost(
                "pi",
                format!(
                    "no time sync for {} min; the Pi clock may be off by more than {} s",
                    age / 60,
                    (Reliability::MEDIUM_MS / 1000.0) as i64
                ),
            ));
        }
        self.last_level = level;
    }

    fn on_response(
        &mut self,
        now: Instant,
        client: Option<ClientId>,
        request_id: Option<String>,
        client_time_ms: i64,
    ) -> Result<(), ApiError> {
        sane(client_time_ms, "clientTime")?;
        let entry = self.clients.iter_mut().find_map(|(id, c)| {
            let matches = match (&request_id, &c.pending) {
                (Some(rid), Some(p)) => *rid == p.request_id,
                // An old client that does not echo the id: its own pending request.
                (None, Some(_)) => client == Some(*id),
                (_, None) => false,
            };
            matches.then_some(c)
        });
        let Some(c) = entry else {
            return Err(ApiError::invalid(
                "unknown or expired time sync request; a new one follows",
            ));
        };
        let Some(p) = c.pending.take() else {
            return Err(ApiError::invalid("unknown or expired time sync request"));
        };
        let rtt = now.saturating_duration_since(p.sent);
        if rtt > self.cfg.max_rtt {
            return Err(ApiError::invalid(format!(
                "time sync round trip too long ({} ms); sample ignored",
                rtt.as_millis()
            )));
        }
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        let offset_ms = client_time_ms - (p.server_wall_ms + (rtt_ms / 2.0).round() as i64);
        c.last_offset = Some((offset_ms, now));
        let sample = Sample {
            source: Source::Client,
            offset_ms,
            uncertainty_ms: rtt_ms / 2.0 + self.cfg.client_resolution_ms,
        };
        self.apply_sample(now, sample, false);
        Ok(())
    }

    fn on_gps(
        &mut self,
        now: Instant,
        wall: SystemTime,
        client: Option<ClientId>,
        fix_time_ms: i64,
        accuracy: GpsAccuracy,
    ) -> Result<(), ApiError> {
        sane(fix_time_ms, "timestamp")?;
        let lost = |reason: String| reliability_lost("gps", reason);
        let accurate = match accuracy {
            GpsAccuracy::Metres(m) => m.is_finite() && m >= 0.0 && m <= self.cfg.gps_max_accuracy_m,
            GpsAccuracy::High => true,
            GpsAccuracy::Low | GpsAccuracy::Unknown => false,
        };
        if !accurate {
            let shown = match accuracy {
                GpsAccuracy::Metres(m) => format!("{m:.0} m"),
                GpsAccuracy::Low => "low".into(),
                _ => "unknown".into(),
            };
            self.actions
                .push_back(lost(format!("Poor GPS accuracy ({shown})")));
            return Ok(());
        }
        // How old is the fix? Judge by the phone's own clock (its offset from the Pi is known
        // from its last time sync), else by the Pi's if that is trustworthy.
        let pi_ms = unix_millis(wall);
        let recent = self.cfg.request_interval * 2;
        let phone_offset = client
            .and_then(|id| self.clients.get(&id))
            .and_then(|c| c.last_offset)
            .filter(|(_, at)| now.saturating_duration_since(*at) <= recent)
            .map(|(o, _)| o);
        let reference_offset = match phone_offset {
            Some(o) => o,
            None if self.pi_synchronized(now) => 0,
            None => {
                self.actions.push_back(lost(
                    "cannot judge the GPS fix's age: no recent time sync from this phone".into(),
                ));
                return Ok(());
            }
        };
        let age_ms = pi_ms + reference_offset - fix_time_ms;
        let max_age_ms = self.cfg.gps_max_age.as_millis() as i64;
        if age_ms.abs() > max_age_ms {
            self.actions.push_back(lost(format!(
                "Stale GPS fix ({:.1} s old)",
                age_ms as f64 / 1000.0
            )));
            return Ok(());
        }
        // The fix is taken as the time at receipt; its (bounded) age is the uncertainty.
        let sample = Sample {
            source: Source::Gps,
            offset_ms: fix_time_ms - pi_ms,
            uncertainty_ms: age_ms.abs() as f64 + 100.0,
        };
        self.apply_sample(now, sample, false);
        Ok(())
    }

    /// Records a sample or starts a step. `explicit`: the user asked (manual-time-sync), so a
    /// reliable Pi clock does not block the step.
    fn apply_sample(&mut self, now: Instant, s: Sample, explicit: bool) {
        let level = self.pi_reliability(now);
        if s.offset_ms.abs() > self.cfg.step_threshold_ms {
            if level == Reliability::High && !explicit {
                let current = self.pi.map_or("none", |p| p.source.as_str());
                self.actions
                    .push_back(Action::Event(Event::of(&PiSyncEvent {
                        synchronized: true,
                        source: current.into(),
                        offset: s.offset_ms,
                        reliability: level.as_str().into(),
                        stepped: false,
                        uncertainty_ms: None,
                        ignored: Some(format!(
                            "{} says the Pi is {} ms off, but the Pi's time is already reliable",
                            s.source.as_str(),
                            s.offset_ms
                        )),
                    })));
                return;
            }
            match self.step {
                PiStep::Idle => {
                    self.step = PiStep::Due {
                        sample: s,
                        since: now,
                        retry_at: now,
                    };
                }
                // A newer measurement replaces the waiting one.
                PiStep::Due {
                    since, retry_at, ..
                } => {
                    self.step = PiStep::Due {
                        sample: s,
                        since,
                        retry_at,
                    };
                }
                // The step is being made with the previous measurement; the next sample will
                // confirm it.
                PiStep::Stepping { .. } => {}
            }
            return;
        }
        // Small offset: no step; the Pi's time is now known to within |offset| + uncertainty.
        let u = s.offset_ms.abs() as f64 + s.uncertainty_ms;
        let better = self.pi_uncertainty_ms(now).is_none_or(|cur| u < cur);
        if better {
            self.record_sync(now, s, u);
        }
        let level = self.pi_reliability(now);
        self.actions
            .push_back(Action::Event(Event::of(&PiSyncEvent {
                synchronized: level >= Reliability::Medium,
                source: s.source.as_str().into(),
                offset: s.offset_ms,
                reliability: level.as_str().into(),
                stepped: false,
                uncertainty_ms: Some(u.round() as i64),
                ignored: None,
            })));
    }

    fn record_sync(&mut self, now: Instant, s: Sample, u: f64) {
        let was_synced = self.pi_synchronized(now);
        self.pi = Some(PiSync {
            source: s.source,
            at: now,
            offset_ms: s.offset_ms,
            uncertainty_ms: u,
        });
        self.last_level = self.pi_reliability(now);
        if !was_synced
            && self.pi_synchronized(now)
            && self.camera_connected
            && self.camera_synced.is_none()
        {
            self.start_camera_sync(now, false);
        }
    }

    fn on_step(&mut self, now: Instant, outcome: StepOutcome) {
        let PiStep::Stepping { sample, since } = self.step else {
            return; // a late answer to a step that was abandoned
        };
        match outcome {
            StepOutcome::Done => {
                self.step = PiStep::Idle;
                // Requests in flight were stamped with the old clock: move their stamps along.
                for c in self.clients.values_mut() {
                    if let Some(p) = c.pending.as_mut() {
                        p.server_wall_ms += sample.offset_ms;
                    }
                    if let Some((o, _)) = c.last_offset.as_mut() {
                        *o -= sample.offset_ms;
                    }
                }
                self.record_sync(now, sample, sample.uncertainty_ms);
                let level = self.pi_reliability(now);
                self.actions
                    .push_back(Action::Event(Event::of(&PiSyncEvent {
                        synchronized: level >= Reliability::Medium,
                        source: sample.source.as_str().into(),
                        offset: sample.offset_ms,
                        reliability: level.as_str().into(),
                        stepped: true,
                        uncertainty_ms: Some(sample.uncertainty_ms.round() as i64),
                        ignored: None,
                    })));
                // The camera was set from the old time (or never): bring it along.
                if self.camera_connected && self.pi_synchronized(now) {
                    self.start_camera_sync(now, false);
                }
            }
            StepOutcome::Deferred => {
                if now.saturating_duration_since(since) >= self.cfg.step_max_deferral {
                    self.step = PiStep::Idle;
                    self.actions.push_back(sync_failed(
                        "pi",
                        format!(
                            "clock step abandoned: a shot was in flight for {} s",
                            self.cfg.step_max_deferral.as_secs()
                        ),
                        None,
                    ));
                } else {
                    self.step = PiStep::Due {
                        sample,
                        since,
                        retry_at: now + self.cfg.step_retry,
                    };
                }
            }
            StepOutcome::Failed(e) => {
                self.step = PiStep::Idle;
                self.actions
                    .push_back(sync_failed("pi", e.message, Some(e.code)));
            }
        }
    }

    fn start_camera_sync(&mut self, now: Instant, manual: bool) {
        let fail = |error: &str| sync_failed("camera", error, None);
        if !matches!(self.camera, CameraSync::Idle) {
            return; // one at a time; the running one answers
        }
        if !self.camera_connected {
            if manual {
                self.actions.push_back(fail("the camera is not connected"));
            }
            return;
        }
        if !self.pi_synchronized(now) {
            if manual {
                self.actions.push_back(fail(
                    "the Pi's clock is not synchronised yet; open the app on a phone first",
                ));
            }
            return;
        }
        self.camera = CameraSync::Reading {
            manual,
            deadline: now + self.cfg.camera_timeout,
        };
        self.actions.push_back(Action::ReadCamera);
    }

    fn on_camera_read(&mut self, now: Instant, wall: SystemTime, r: Result<SystemTime, ApiError>) {
        let CameraSync::Reading { .. } = self.camera else {
            return;
        };
        match r {
            Err(e) => {
                self.camera = CameraSync::Idle;
                self.actions
                    .push_back(sync_failed("camera", e.message, None));
            }
            Ok(cam) => {
                let offset_ms = unix_millis(cam) - unix_millis(wall);
                if offset_ms.abs() > self.cfg.camera_threshold_ms {
                    self.camera = CameraSync::Writing {
                        previous: cam,
                        offset_ms,
                        deadline: now + self.cfg.camera_timeout,
                    };
                    self.actions.push_back(Action::WriteCamera);
                } else {
                    self.camera = CameraSync::Idle;
                    self.camera_synced = Some(CameraSynced { wall, offset_ms });
                    self.actions
                        .push_back(Action::Event(Event::of(&CameraSyncEvent {
                            success: true,
                            previous_time: iso8601(cam),
                            new_time: iso8601(cam),
                            offset: offset_ms,
                            changed: false,
                        })));
                }
            }
        }
    }

    fn on_camera_written(&mut self, wall: SystemTime, r: Result<(), ApiError>) {
        let CameraSync::Writing {
            previous,
            offset_ms,
            ..
        } = self.camera
        else {
            return;
        };
        self.camera = CameraSync::Idle;
        match r {
            Err(e) => self
                .actions
                .push_back(sync_failed("camera", e.message, None)),
            Ok(()) => {
                self.camera_synced = Some(CameraSynced { wall, offset_ms: 0 });
                self.actions
                    .push_back(Action::Event(Event::of(&CameraSyncEvent {
                        success: true,
                        previous_time: iso8601(previous),
                        new_time: iso8601(wall),
                        offset: offset_ms,
                        changed: true,
                    })));
            }
        }
    }

    /// The `timesync` status block at `now` (`wall` for the labels).
    pub fn status(&self, now: Instant, wall: SystemTime) -> TimesyncBlock {
        let level = self.pi_reliability(now);
        let age = self
            .pi
            .map(|p| now.saturating_duration_since(p.at).as_secs());
        let last_sync = self.pi.map(|p| {
            // The sync's wall label as the Pi's clock shows it now (steps included).
            let ago_ms = now.saturating_duration_since(p.at).as_millis() as i64;
            iso8601_millis(unix_millis(wall) - ago_ms)
        });
        let sync_state = match (&self.pi, level) {
            (None, _) => "none",
            (Some(_), Reliability::High | Reliability::Medium) => "synchronized",
            (Some(_), _) => "stale",
        };
        TimesyncBlock {
            pi: PiTimeBlock {
                is_synchronized: level >= Reliability::Medium,
                reliability: level.as_str().into(),
                last_sync_time: last_sync,
                source: self.pi.map(|p| p.source.as_str().into()),
                offset_ms: self.pi.map(|p| p.offset_ms),
                uncertainty_ms: self.pi_uncertainty_ms(now).map(|u| u.round() as i64),
                step_pending: !matches!(self.step, PiStep::Idle),
            },
            camera: CameraTimeBlock {
                connected: self.camera_connected,
                is_synchronized: self.camera_synced.is_some(),
                last_sync_time: self.camera_synced.map(|c| iso8601(c.wall)),
                offset_ms: self.camera_synced.map(|c| c.offset_ms),
            },
            // `state` in the original's vocabulary is filled in by the service, which knows
            // through which interface the syncing client came.
            pi_proxy_state: PiProxyState {
                state: "none".into(),
                valid: level >= Reliability::Medium,
                age_seconds: age,
                sync_state: sync_state.into(),
            },
            connected_clients: self.clients.len(),
            client_timezone: self.timezone_label.clone(),
        }
    }
}

/// Inputs that answer a command (a client's report, a manual sync) go through
/// [`TimeSyncMachine::handle`], which returns the rejection for the reply; the driver feeds
/// everything else through this contract.
impl crate::machine::Machine for TimeSyncMachine {
    type Input = Input;
    type Action = Action;
    fn handle_input(&mut self, now: crate::machine::Now, input: Input) {
        if let Err(e) = self.handle(now.mono, now.wall, input) {
            log::debug!("time sync: input rejected: {e}");
        }
    }
    fn handle_timeout(&mut self, now: crate::machine::Now) {
        let _ = self.handle(now.mono, now.wall, Input::Tick);
    }
    fn poll_action(&mut self) -> Option<Action> {
        TimeSyncMachine::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        TimeSyncMachine::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::from_unix_millis;

    /// 2026-11-21T23:00:00Z, a plausible Pi wall time.
    const W0: i64 = 1_795_820_400_000;

    struct Rig {
        m: TimeSyncMachine,
        t0: Instant,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                m: TimeSyncMachine::new(TimeSyncConfig::default()),
                t0: crate::clock::test_t0(),
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        /// Feeds `input` at `ms` after t0, with the Pi's wall clock at W0 + ms (+ `wall_skew`).
        fn feed(&mut self, ms: u64, input: Input) -> Result<Vec<Action>, ApiError> {
            let now = self.at(ms);
            let wall = from_unix_millis(W0 + ms as i64);
            self.m.handle(now, wall, input)?;
            Ok(std::iter::from_fn(|| self.m.poll_action()).collect())
        }
        /// Connects client 1 at `ms` and returns the request id it was sent.
        fn connect(&mut self, ms: u64) -> String {
            let a = self.feed(ms, Input::ClientConnected(ClientId(1))).unwrap();
            match &a[..] {
                [Action::SendRequest {
                    request_id,
                    server_time_ms,
                    ..
                }] => {
                    assert_eq!(*server_time_ms, W0 + ms as i64);
                    request_id.clone()
                }
                other => panic!("expected one request, got {other:?}"),
            }
        }
        /// A client whose clock is `phone_offset` ahead of the Pi answers: the request takes
        /// `up` ms to reach it, the answer `down` ms to come back.
        fn respond(
            &mut self,
            sent_ms: u64,
            rid: &str,
            phone_offset: i64,
            up: u64,
            down: u64,
        ) -> Result<Vec<Action>, ApiError> {
            let client_time_ms = W0 + (sent_ms + up) as i64 + phone_offset;
            self.feed(
                sent_ms + up + down,
                Input::Response {
                    client: Some(ClientId(1)),
                    request_id: Some(rid.to_string()),
                    client_time_ms,
                },
            )
        }
        /// Makes the Pi's clock reliable ("high") with a small-offset sample at `ms`.
        fn sync_small(&mut self, ms: u64) {
            let rid = self.connect(ms);
            self.respond(ms, &rid, 300, 20, 20).unwrap();
            assert_eq!(self.m.pi_reliability(self.at(ms + 40)), Reliability::High);
        }
    }

    fn events(actions: &[Action]) -> Vec<(&'static str, serde_json::Value)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some((e.event_type(), e.data.clone())),
                _ => None,
            })
            .collect()
    }

    fn step_of(actions: &[Action]) -> Option<i64> {
        actions.iter().find_map(|a| match a {
            Action::StepClock { offset_ms } => Some(*offset_ms),
            _ => None,
        })
    }

    #[test]
    fn offset_is_corrected_by_half_the_round_trip_even_when_asymmetric() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        // Phone is 10 s ahead; the request takes 100 ms out and 300 ms back.
        let a = r.respond(0, &rid, 10_000, 100, 300).unwrap();
        // rtt = 400: offset = (W0+100+10000) − (W0 + 200) = 9900, within rtt/2 of the truth.
        let offset = step_of(&a).expect("10 s off on an unsynchronised Pi steps");
        assert_eq!(offset, 9_900);
        assert!((offset - 10_000).abs() as f64 <= 200.0 + 1.0);
        // The uncertainty reported after the step is rtt/2 + resolution.
        let a = r.feed(400, Input::Step(StepOutcome::Done)).unwrap();
        let ev = events(&a);
        assert_eq!(ev[0].0, "pi-sync");
        assert_eq!(ev[0].1["stepped"], true);
        assert_eq!(ev[0].1["offset"], 9_900);
        assert_eq!(ev[0].1["uncertaintyMs"], 201);
        assert_eq!(ev[0].1["reliability"], "high");
        assert_eq!(ev[0].1["source"], "client");
    }

    #[test]
    fn step_threshold_is_five_seconds() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        let a = r.respond(0, &rid, 4_900, 50, 50).unwrap();
        assert_eq!(step_of(&a), None);
        let ev = events(&a);
        assert_eq!(ev[0].0, "pi-sync");
        assert_eq!(ev[0].1["stepped"], false);
        // Known to within 4.9 s + 51 ms: "medium", i.e. synchronised but not "high".
        assert_eq!(ev[0].1["reliability"], "medium");

        let mut r = Rig::new();
        let rid = r.connect(0);
        let a = r.respond(0, &rid, 5_200, 50, 50).unwrap();
        assert_eq!(step_of(&a), Some(5_200));
    }

    #[test]
    fn a_reliable_pi_is_not_stepped_by_a_disagreeing_phone_but_manual_sync_is_obeyed() {
        let mut r = Rig::new();
        r.sync_small(0);
        // Another answer, 60 s later, claiming the Pi is 30 s off.
        r.feed(1_000, Input::ClientDisconnected(ClientId(1)))
            .unwrap();
        let rid = r.connect(60_000);
        let a = r.respond(60_000, &rid, 30_000, 20, 20).unwrap();
        assert_eq!(step_of(&a), None);
        let ev = events(&a);
        assert_eq!(ev[0].0, "pi-sync");
        assert!(ev[0].1["ignored"]
            .as_str()
            .unwrap()
            .contains("already reliable"));
        // The user insists.
        let a = r
            .feed(
                70_000,
                Input::Manual {
                    client_time_ms: W0 + 70_000 + 30_000,
                },
            )
            .unwrap();
        assert_eq!(step_of(&a), Some(30_000));
    }

    #[test]
    fn the_step_waits_for_the_shot_gate_and_gives_up_after_the_bound() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        let a = r.respond(0, &rid, 60_000, 10, 10).unwrap();
        assert_eq!(step_of(&a), Some(60_000));
        // Shot in flight: deferred, retried after step_retry, not before.
        let a = r.feed(20, Input::Step(StepOutcome::Deferred)).unwrap();
        assert!(a.is_empty());
        assert_eq!(r.m.poll_timeout(), Some(r.at(520)));
        assert!(r.feed(519, Input::Tick).unwrap().is_empty());
        let a = r.feed(520, Input::Tick).unwrap();
        assert_eq!(step_of(&a), Some(60_000));
        // Still in flight for the whole bound (300 s): abandoned with sync-failed.
        let mut t = 520;
        loop {
            let a = r.feed(t, Input::Step(StepOutcome::Deferred)).unwrap();
            if let Some((kind, data)) = events(&a).first().cloned() {
                assert_eq!(kind, "sync-failed");
                assert_eq!(data["component"], "pi");
                assert!((300_000..301_000).contains(&t), "gave up at {t}");
                break;
            }
            t += 500;
            let a = r.feed(t, Input::Tick).unwrap();
            assert_eq!(step_of(&a), Some(60_000), "retry at {t}");
        }
        assert!(!r.m.status(r.at(t), from_unix_millis(W0)).pi.step_pending);
    }

    #[test]
    fn a_failed_step_says_why() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        r.respond(0, &rid, 60_000, 10, 10).unwrap();
        let e = crate::timesync::systime::settime_error(libc::EPERM);
        let a = r.feed(30, Input::Step(StepOutcome::Failed(e))).unwrap();
        let ev = events(&a);
        assert_eq!(ev[0].0, "sync-failed");
        assert_eq!(
            ev[0].1["error"],
            "skylapse may not set the clock (needs CAP_SYS_TIME)"
        );
        assert_eq!(r.m.pi_reliability(r.at(30)), Reliability::None);
    }

    #[test]
    fn reliability_decays_with_the_drift_budget_and_loss_is_announced() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        // Offset 100 ms, rtt 100 ms → uncertainty 100 + 51 = 151 ms.
        r.respond(0, &rid, 100, 50, 50).unwrap();
        r.feed(200, Input::ClientDisconnected(ClientId(1))).unwrap();
        let h = |hours: f64| (hours * 3_600_000.0) as u64 + 100;
        // 50 ppm: 151 ms + 180 ms/h. High until ~10.27 h, medium until ~54.7 h.
        assert_eq!(r.m.pi_reliability(r.at(h(10.0))), Reliability::High);
        assert_eq!(r.m.pi_reliability(r.at(h(10.5))), Reliability::Medium);
        assert_eq!(r.m.pi_reliability(r.at(h(54.0))), Reliability::Medium);
        assert_eq!(r.m.pi_reliability(r.at(h(55.0))), Reliability::Low);
        // The machine wakes at the level changes (nothing else is pending).
        let first = r.m.poll_timeout().unwrap();
        let d = first.duration_since(r.at(100)).as_secs_f64() / 3600.0;
        assert!((d - 10.27).abs() < 0.01, "{d} h");
        assert!(events(&r.feed(h(10.5), Input::Tick).unwrap()).is_empty());
        // Regression: the next deadline used to stay at the first boundary once it had
        // passed, so the driver spun on a deadline in the past.
        let next = r.m.poll_timeout().unwrap();
        assert!(next > r.at(h(10.5)));
        let d = next.duration_since(r.at(100)).as_secs_f64() / 3600.0;
        assert!((d - 54.72).abs() < 0.01, "{d} h");
        let ev = events(&r.feed(h(55.0), Input::Tick).unwrap());
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, "reliability-lost");
        assert_eq!(ev[0].1["source"], "pi");
        // Once only.
        assert!(events(&r.feed(h(56.0), Input::Tick).unwrap()).is_empty());
    }

    #[test]
    fn unknown_expired_slow_and_absurd_responses_are_rejected() {
        let mut r = Rig::new();
        let rid = r.connect(0);
        let e = r
            .feed(
                10,
                Input::Response {
                    client: Some(ClientId(1)),
                    request_id: Some("ts-999".into()),
                    client_time_ms: W0,
                },
            )
            .unwrap_err();
        assert!(e.message.contains("unknown or expired"));
        let e = r
            .feed(
                10,
                Input::Response {
                    client: Some(ClientId(1)),
                    request_id: Some(rid.clone()),
                    client_time_ms: 42,
                },
            )
            .unwrap_err();
        assert!(e.message.contains("plausible"));
        // Round trip of 11 s: too loose.
        let e = r.respond(0, &rid, 0, 5_500, 5_500).unwrap_err();
        assert!(e.message.contains("round trip"));
        // The request was consumed; a replay is unknown.
        assert!(r.respond(0, &rid, 0, 5, 5).is_err());
        // A fresh request that times out (30 s) is forgotten.
        r.feed(20_000, Input::ClientDisconnected(ClientId(1)))
            .unwrap();
        let rid = r.connect(20_000);
        r.feed(50_000, Input::Tick).unwrap();
        assert!(r.respond(20_000, &rid, 0, 15_000, 15_001).is_err());
    }

    #[test]
    fn clients_are_asked_again_every_interval_and_forgotten_on_disconnect() {
        let mut r = Rig::new();
        r.connect(0);
        assert_eq!(r.m.poll_timeout(), Some(r.at(30_000))); // expiry of the pending request
        r.feed(30_000, Input::Tick).unwrap();
        assert_eq!(r.m.poll_timeout(), Some(r.at(600_000)));
        let a = r.feed(600_000, Input::Tick).unwrap();
        assert!(matches!(
            &a[..],
            [Action::SendRequest {
                client: ClientId(1),
                ..
            }]
        ));
        r.feed(600_001, Input::ClientDisconnected(ClientId(1)))
            .unwrap();
        r.feed(630_001, Input::Tick).unwrap();
        assert_eq!(r.m.poll_timeout(), None);
        assert_eq!(
            r.m.status(r.at(0), from_unix_millis(W0)).connected_clients,
            0
        );
    }

    #[test]
    fn gps_needs_accuracy_and_freshness() {
        let mut r = Rig::new();
        // Without any reference the fix's age cannot be judged.
        let a = r
            .feed(
                0,
                Input::Gps {
                    client: None,
                    fix_time_ms: W0,
                    accuracy: GpsAccuracy::High,
                },
            )
            .unwrap();
        assert_eq!(events(&a)[0].0, "reliability-lost");

        // Phone 2 s ahead of the Pi, learnt from its time sync.
        let rid = r.connect(0);
        r.respond(0, &rid, 2_000, 20, 20).unwrap();
        let gps = |fix_age_ms: i64, accuracy| Input::Gps {
            client: Some(ClientId(1)),
            // At Pi time W0+1000 the phone shows W0+3000; the fix was taken fix_age_ms earlier.
            fix_time_ms: W0 + 3_000 - fix_age_ms,
            accuracy,
        };
        let ev = events(
            &r.feed(1_000, gps(1_000, GpsAccuracy::Metres(80.0)))
                .unwrap(),
        );
        assert_eq!(ev[0].0, "reliability-lost");
        assert_eq!(ev[0].1["reason"], "Poor GPS accuracy (80 m)");
        let ev = events(&r.feed(1_000, gps(1_000, GpsAccuracy::Low)).unwrap());
        assert_eq!(ev[0].0, "reliability-lost");
        let ev = events(&r.feed(1_000, gps(9_000, GpsAccuracy::Metres(5.0))).unwrap());
        assert_eq!(ev[0].0, "reliability-lost");
        assert!(ev[0].1["reason"]
            .as_str()
            .unwrap()
            .starts_with("Stale GPS fix"));
        let ev = events(
            &r.feed(1_000, gps(1_000, GpsAccuracy::Metres(12.0)))
                .unwrap(),
        );
        assert_eq!(ev[0].0, "pi-sync");
        assert_eq!(ev[0].1["offset"], 1_000);
        let ev = events(&r.feed(1_000, gps(0, GpsAccuracy::High)).unwrap());
        assert_eq!(ev[0].0, "pi-sync");
    }

    #[test]
    fn camera_is_written_only_when_more_than_two_seconds_off() {
        let mut r = Rig::new();
        // Connected before the Pi knows the time: nothing is read.
        assert!(r.feed(0, Input::CameraConnected).unwrap().is_empty());
        // The Pi becomes reliable: the camera is read.
        let rid = r.connect(0);
        let a = r.respond(0, &rid, 300, 20, 20).unwrap();
        assert!(a.contains(&Action::ReadCamera));
        // 1.5 s off: left alone.
        let cam = from_unix_millis(W0 + 100 + 1_500);
        let a = r.feed(100, Input::CameraRead(Ok(cam))).unwrap();
        assert!(!a.contains(&Action::WriteCamera));
        let ev = events(&a);
        assert_eq!(ev[0].0, "camera-sync");
        assert_eq!(ev[0].1["changed"], false);
        assert_eq!(ev[0].1["offset"], 1_500);
        // Manual sync; now 3 s off: written.
        let a = r
            .feed(200, Input::CameraSyncRequested { manual: true })
            .unwrap();
        assert_eq!(a, vec![Action::ReadCamera]);
        let cam = from_unix_millis(W0 + 300 - 3_000);
        let a = r.feed(300, Input::CameraRead(Ok(cam))).unwrap();
        assert_eq!(a, vec![Action::WriteCamera]);
        let ev = events(&r.feed(400, Input::CameraWritten(Ok(()))).unwrap());
        assert_eq!(ev[0].0, "camera-sync");
        assert_eq!(ev[0].1["success"], true);
        assert_eq!(ev[0].1["offset"], -3_000);
        assert_eq!(ev[0].1["previousTime"], iso8601_millis(W0 - 2_700));
        assert_eq!(ev[0].1["newTime"], iso8601_millis(W0 + 400));
        let st = r.m.status(r.at(400), from_unix_millis(W0 + 400));
        assert!(st.camera.is_synchronized);
        // A refused write and a silent camera both end in sync-failed.
        r.feed(500, Input::CameraSyncRequested { manual: true })
            .unwrap();
        r.feed(600, Input::CameraRead(Ok(from_unix_millis(W0 - 5_000))))
            .unwrap();
        let ev = events(
            &r.feed(
                700,
                Input::CameraWritten(Err(ApiError::invalid("Invalid parameter"))),
            )
            .unwrap(),
        );
        assert_eq!(ev[0].0, "sync-failed");
        assert_eq!(ev[0].1["component"], "camera");
        r.feed(800, Input::CameraSyncRequested { manual: true })
            .unwrap();
        let ev = events(&r.feed(30_800, Input::Tick).unwrap());
        assert_eq!(ev[0].0, "sync-failed");
    }

    #[test]
    fn manual_camera_sync_explains_why_it_cannot_run() {
        let mut r = Rig::new();
        let ev = events(
            &r.feed(0, Input::CameraSyncRequested { manual: true })
                .unwrap(),
        );
        assert_eq!(ev[0].1["error"], "the camera is not connected");
        r.feed(0, Input::CameraConnected).unwrap();
        let ev = events(
            &r.feed(0, Input::CameraSyncRequested { manual: true })
                .unwrap(),
        );
        assert!(ev[0].1["error"]
            .as_str()
            .unwrap()
            .contains("not synchronised"));
    }

    #[test]
    fn after_a_step_the_camera_follows_and_pending_stamps_move_with_the_clock() {
        let mut r = Rig::new();
        r.feed(0, Input::CameraConnected).unwrap();
        let rid = r.connect(0);
        r.feed(0, Input::ClientConnected(ClientId(2))).unwrap();
        r.respond(0, &rid, 3_600_000, 10, 10).unwrap();
        let a = r.feed(25, Input::Step(StepOutcome::Done)).unwrap();
        assert!(a.contains(&Action::ReadCamera));
        // Client 2's request was stamped before the step; its answer (the phone agrees with
        // the new time) must not look like another hour off.
        let client_time_ms = W0 + 3_600_000 + 40;
        let a = r
            .feed(
                50,
                Input::Response {
                    client: Some(ClientId(2)),
                    request_id: None,
                    client_time_ms,
                },
            )
            .unwrap();
        assert_eq!(step_of(&a), None);
        assert_eq!(events(&a)[0].1["offset"], 15);
    }
}
