//! The session machine: which shot is due when, what to do when one overruns, when to stop.
//! Sans-IO: time comes in with every input, shots go out as actions; it never reads a clock.
//!
//! ```text
//!   Scheduled{start} ──start reached──▶ Running{in_flight: None}
//!        │                               │   ▲  lead time before due(n):
//!        │ Stop                          │   │  Shoot{n,due} ─▶ Running{in_flight: Some(n)}
//!        ▼                               │   └──────────── ShotDone ◀──┘
//!     Ended(Stopped)                     │
//!                 Stop while in flight ──┼──▶ Stopping{in_flight} ──ShotDone──▶ Ended(Stopped)
//!                 stop condition met ────┼──▶ Ended(Completed)
//!                 Fail ──────────────────┴──▶ Ended(Error)
//!
//!   Stopped/Completed with a shot whose reply was lost ──▶ Finishing{until}
//!        ──its file appears, or until (FILE_GRACE)──▶ Ended
//! ```
//!
//! Timing rules (DESIGN.md): slot n is due at `base + (n − base_n) × interval` on the monotonic
//! clock (`base_n` is 0 for a new session and the first slot after a restart for a resumed
//! one); never `previous + interval`. A shot that overruns skips the slots it missed (counted
//! in `shotsSkipped`); with `immediately-once` the most recent missed slot is shot right away,
//! once. While the camera is away, every slot that comes due is recorded as failed with the
//! reason; shooting resumes on the grid when it is back. The wall clock only labels and
//! decides `stop-at`: each [`Input::WallClock`] re-anchors the labels and re-evaluates the stop
//! time; the grid never moves.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::camera::{ShotOutcome, ShotRequest};
use crate::protocol::status::{
    IntervalometerBlock, OutageBlock, SessionBlock, SessionOptionsBlock, SessionStats, TimingStats,
};
use crate::util::iso8601_millis;

use super::schedule::{
    next_occurrence, FrameSettings, OverrunPolicy, SessionOptions, StopCondition,
};

/// How far ahead of its due time a shot is handed to the camera driver (it keeps the link
/// quiet and warm, then waits precisely).
pub const DEFAULT_LEAD: Duration = Duration::from_millis(300);
/// A shot with no reply this long after its due time (plus the bulb hold) is given up as
/// failed, so a hung camera request can never stall the schedule.
pub const SHOT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timer wake-up slack: a slot handled this late is still on time (capped at interval / 4).
const LATE_GRACE: Duration = Duration::from_millis(20);
/// Failure-rate warning: window of recent shots and the share that must fail.
const FAILURE_WINDOW: u32 = 10;
const FAILURE_WARN_COUNT: u32 = 5;
/// Recent timing errors kept for the live p99.
const RECENT_ERRORS: usize = 1024;
/// Shots waiting for their file names; older ones give up.
const PENDING_FILES: usize = 64;
/// How long a session that ended with a lost reply waits for that shot's file (the camera
/// writes it within a second or two of the exposure's end).
pub const FILE_GRACE: Duration = Duration::from_secs(10);
/// A ramp's settings change is sent only if it can start this long before a frame is handed
/// over (and no PUT starts later): time for the last PUT to finish before the frame.
pub const RAMP_BUDGET: Duration = Duration::from_millis(700);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndKind {
    Completed,
    Stopped,
    Error,
}

impl EndKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EndKind::Completed => "completed",
            EndKind::Stopped => "stopped",
            EndKind::Error => "error",
        }
    }
}

/// One slot's outcome, as journaled and reported. Wall times are Unix ms labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShotRecord {
    /// Slot index on the grid (0 = first slot).
    pub slot: u64,
    /// 1-based number of the shot attempt.
    pub shot: u64,
    /// The slot's scheduled wall time.
    pub scheduled_ms: f64,
    /// When the request was sent / the camera replied (absent if nothing was sent).
    #[serde(default)]
    pub sent_ms: Option<f64>,
    #[serde(default)]
    pub replied_ms: Option<f64>,
    /// Send time minus the requested time, ms (positive = late).
    #[serde(default)]
    pub error_ms: Option<f64>,
    /// Reply time minus send time, ms.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// Shot off the grid by the `immediately-once` overrun policy.
    #[serde(default)]
    pub late: bool,
    /// Slots skipped right before this one.
    #[serde(default)]
    pub skipped_before: u64,
    #[serde(default)]
    pub files: Vec<String>,
    /// The camera's answer to the press was lost or came too late, but the camera reported
    /// the file: the shot was taken (counted ok; `error` is cleared).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply_lost: bool,
    /// Ramped sessions: the settings the camera had for this frame, and their exposure in
    /// stops (`log2 t + log2 ISO/100 − 2 log2 N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Box<FrameSettings>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_ev: Option<f64>,
    /// Auto-ramped sessions: what the frame's thumbnail measured, and the sun's altitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light: Option<Box<FrameLight>>,
}

/// A frame's measured brightness (mean linear luminance of its thumbnail) and the sun's
/// altitude (degrees) at its time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameLight {
    pub brightness: f64,
    pub sun_alt: f64,
}

/// What the machine asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand this shot to the camera now; it fires at `due`.
    Shoot {
        slot: u64,
        due: Instant,
        req: ShotRequest,
    },
    /// Append to the journal (fsync).
    Journal(JournalEntry),
    /// Give up on the shot in flight (drop its future): no reply within the timeout.
    AbandonShot { slot: u64 },
    /// Fetch this file's thumbnail and measure it (auto-ramp); answer with
    /// [`Input::Measured`].
    Measure { slot: u64, path: String },
    /// Change these settings (a ramp) before the next frame; start no PUT after `deadline`.
    ApplySettings {
        changes: Vec<(String, String)>,
        deadline: Instant,
    },
    /// Tell clients.
    Notify(Notice),
}

/// Journal lines the machine produces (the header and resume lines come from the service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum JournalEntry {
    Shot(ShotRecord),
    #[serde(rename_all = "camelCase")]
    Files {
        slot: u64,
        files: Vec<String>,
    },
    /// A shot journaled as failed whose file the camera then reported: it was taken and
    /// only its reply was lost. Replay turns that record into a successful one.
    #[serde(rename_all = "camelCase")]
    Taken {
        slot: u64,
    },
    /// Auto-ramp: a frame's thumbnail was measured.
    #[serde(rename_all = "camelCase")]
    Measured {
        slot: u64,
        brightness: f64,
        sun_alt: f64,
    },
    #[serde(rename_all = "camelCase")]
    End {
        state: EndKind,
        #[serde(default)]
        reason: Option<String>,
        wall_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Scheduled start reached.
    Running,
    Shot(ShotRecord),
    /// A shot recorded as failed turned out to be taken (its file appeared).
    Taken(ShotRecord),
    Overtime {
        shot: u64,
        interval_s: f64,
        duration_s: f64,
        overtime_s: f64,
    },
    FailureRateHigh {
        failed: u32,
        window: u32,
        last_error: String,
    },
    Ended {
        kind: EndKind,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A deadline from `poll_timeout` passed (or the driver woke for another reason).
    Tick,
    ShotDone {
        slot: u64,
        outcome: ShotOutcome,
    },
    CameraLost {
        reason: String,
    },
    CameraConnected,
    FilesAdded(Vec<String>),
    /// The wall clock as read now (after a step, or periodically): re-anchors labels and
    /// re-evaluates `stop-at`.
    WallClock {
        wall_ms: i64,
        tz_offset_secs: i32,
    },
    Stop,
    Fail {
        reason: String,
    },
    /// The answer to [`Action::Measure`]: the frame's brightness, or why there is none.
    Measured {
        slot: u64,
        result: Result<f64, String>,
    },
    /// The answer to [`Action::ApplySettings`]: what the camera took, and why it stopped.
    SettingsApplied {
        applied: Vec<(String, String)>,
        error: Option<String>,
    },
}

/// A shot waiting for its file name.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pending {
    slot: u64,
    /// Recorded as failed with a lost reply: its file, if any, proves it was taken.
    uncertain: bool,
}

/// A run of frames that failed in a row (camera lost or not answering), for the "camera not
/// answering since …" banner. Wall times are Unix ms labels.
#[derive(Debug, Clone, PartialEq)]
struct Outage {
    since_ms: f64,
    /// The first frame taken again (set when the run ends).
    until_ms: Option<f64>,
    missed: u64,
    reason: String,
}

impl Outage {
    fn block(&self) -> OutageBlock {
        let label = |ms: f64| iso8601_millis(ms.round() as i64);
        OutageBlock {
            since: label(self.since_ms),
            until: self.until_ms.map(label),
            frames_missed: self.missed,
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct InFlight {
    slot: u64,
    due: Instant,
    late: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Scheduled,
    Running {
        in_flight: Option<InFlight>,
    },
    Stopping {
        in_flight: InFlight,
    },
    /// The session is over but a shot whose reply was lost may still report its file.
    Finishing {
        kind: EndKind,
        reason: Option<String>,
        until: Instant,
    },
    Ended {
        kind: EndKind,
        reason: Option<String>,
    },
}

/// Where a session starts on the grid and on the wall.
#[derive(Debug, Clone)]
pub struct Start {
    pub now: Instant,
    pub wall_ms: i64,
    pub tz_offset_secs: i32,
    /// Monotonic instant of slot `first_slot`.
    pub base: Instant,
    pub first_slot: u64,
    /// Wall label of slot 0 (the session's origin; kept across restarts).
    pub origin_wall_ms: i64,
    /// Resolved `stop-at` target (Unix ms), kept across restarts so a restart or a clock step
    /// never pushes it to the next day.
    pub stop_at_wall_ms: Option<i64>,
    pub camera_connected: bool,
    pub lead: Duration,
    /// The camera's Tv/ISO/Av at the start (what a ramp changes from).
    pub settings: FrameSettings,
}

/// Counters shown in the status block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub shots_taken: u64,
    pub shots_successful: u64,
    pub shots_failed: u64,
    pub shots_skipped: u64,
    pub overtime_shots: u64,
    pub total_overtime_s: f64,
    pub max_overtime_s: f64,
    pub last_duration_s: Option<f64>,
    pub sum_duration_s: f64,
    pub timed_shots: u64,
    pub sum_abs_error_ms: f64,
    pub max_abs_error_ms: f64,
    recent_errors: VecDeque<f32>,
}

impl Stats {
    fn record(&mut self, r: &ShotRecord, interval_s: f64) {
        self.shots_taken += 1;
        self.shots_skipped += r.skipped_before;
        if r.ok {
            self.shots_successful += 1;
        } else {
            self.shots_failed += 1;
        }
        if let Some(d) = r.duration_ms {
            let d = d / 1000.0;
            self.last_duration_s = Some(d);
            self.sum_duration_s += d;
            if d > interval_s {
                self.overtime_shots += 1;
                self.total_overtime_s += d - interval_s;
                self.max_overtime_s = self.max_overtime_s.max(d - interval_s);
            }
        }
        if let Some(e) = r.error_ms {
            let e = e.abs();
            self.timed_shots += 1;
            self.sum_abs_error_ms += e;
            self.max_abs_error_ms = self.max_abs_error_ms.max(e);
            if self.recent_errors.len() == RECENT_ERRORS {
                self.recent_errors.pop_front();
            }
            self.recent_errors.push_back(e as f32);
        }
    }

    pub fn mean_error_ms(&self) -> Option<f64> {
        (self.timed_shots > 0).then(|| self.sum_abs_error_ms / self.timed_shots as f64)
    }

    /// p99 of |error| over the most recent shots (the report has the exact figure).
    pub fn p99_error_ms(&self) -> Option<f64> {
        let mut v: Vec<f32> = self.recent_errors.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(f64::from(v[percentile_index(v.len(), 0.99)]))
    }
}

/// Nearest-rank percentile index into a sorted slice of `len` > 0 values.
pub fn percentile_index(len: usize, p: f64) -> usize {
    ((len as f64 * p).ceil() as usize).clamp(1, len) - 1
}

pub struct Session {
    pub id: String,
    pub title: String,
    opts: SessionOptions,
    state: State,
    base: Instant,
    base_slot: u64,
    lead: Duration,
    next_slot: u64,
    /// Skipped slots waiting to be attributed to the next recorded shot.
    skipped_pending: u64,
    /// `immediately-once`: a late shot is allowed after an on-grid shot only.
    late_allowed: bool,
    wall_anchor: (Instant, i64),
    tz_offset_secs: i32,
    origin_wall_ms: i64,
    stop_at_wall_ms: Option<i64>,
    /// Monotonic end of a duration / stop-at session (no slot at or after it is shot).
    end_deadline: Option<Instant>,
    connected: bool,
    lost_reason: String,
    stats: Stats,
    /// Outcomes of the last shots, newest in bit 0 (1 = failed).
    recent_failures: u32,
    recent_count: u32,
    warned: bool,
    /// Shots waiting for their file names, oldest first.
    pending_files: VecDeque<Pending>,
    /// Files reported while a shot was in flight and no earlier shot awaited a name: they
    /// belong to the shot in flight (its reply is late or lost).
    early_files: Vec<String>,
    /// Failed shots that may have been taken (reply lost): their record, until their file
    /// appears or a later shot succeeds.
    uncertain: VecDeque<ShotRecord>,
    /// Slot and stem of the last named file (RAW+JPEG pairs share a stem).
    last_named: Option<(u64, String)>,
    /// Wall label of the end, once ended.
    ended_wall_ms: Option<f64>,
    /// Frames failing in a row right now, and the last such run that ended.
    outage: Option<Outage>,
    last_outage: Option<Outage>,
    /// The camera's settings as far as the session knows (ramps).
    known: FrameSettings,
    /// A ramp's settings change is with the camera.
    change_in_flight: bool,
    /// Ramp changes that found no time before their frame and waited for the next gap.
    pub ramp_deferred: u64,
    /// Auto-ramp: the controller, a thumbnail being measured, and the recent frames'
    /// (slot, wall time, exposure) to pair measurements with.
    auto: Option<crate::ramp::AutoRamp>,
    measuring: bool,
    /// The newest frame waiting for its turn to be measured.
    measure_next: Option<(u64, String)>,
    frame_exposures: VecDeque<(u64, i64, f64)>,
    actions: VecDeque<Action>,
}

impl Session {
    /// A new or resumed session. `prior` holds shots journaled before a restart.
    pub fn new(
        id: String,
        title: String,
        opts: SessionOptions,
        start: Start,
        prior: &[ShotRecord],
    ) -> Session {
        let mut stats = Stats::default();
        let interval_s = opts.interval.as_secs_f64();
        for r in prior {
            stats.record(r, interval_s);
        }
        let stop_at_wall_ms = match opts.stop {
            StopCondition::At { hour, minute } => {
                Some(start.stop_at_wall_ms.unwrap_or_else(|| {
                    next_occurrence(start.wall_ms, start.tz_offset_secs, hour, minute)
                }))
            }
            StopCondition::Until(ms) => Some(ms),
            _ => None,
        };
        let resumed_skips = prior
            .last()
            .map(|r| start.first_slot.saturating_sub(r.slot + 1))
            .unwrap_or(0);
        let mut s = Session {
            id,
            title,
            opts,
            state: State::Scheduled,
            base: start.base,
            base_slot: start.first_slot,
            lead: start.lead,
            next_slot: start.first_slot,
            skipped_pending: resumed_skips,
            late_allowed: true,
            wall_anchor: (start.now, start.wall_ms),
            tz_offset_secs: start.tz_offset_secs,
            origin_wall_ms: start.origin_wall_ms,
            stop_at_wall_ms,
            end_deadline: None,
            connected: start.camera_connected,
            lost_reason: "camera not connected".into(),
            stats,
            recent_failures: 0,
            recent_count: 0,
            warned: false,
            pending_files: VecDeque::new(),
            early_files: Vec::new(),
            uncertain: VecDeque::new(),
            last_named: None,
            ended_wall_ms: None,
            outage: None,
            last_outage: None,
            known: start.settings.clone(),
            change_in_flight: false,
            ramp_deferred: 0,
            auto: None,
            measuring: false,
            measure_next: None,
            frame_exposures: VecDeque::new(),
            actions: VecDeque::new(),
        };
        s.auto = s
            .opts
            .auto
            .as_ref()
            .map(|a| crate::ramp::AutoRamp::new(a.options()));
        s.compute_end_deadline();
        s
    }

    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Auto-ramp: the exposure (stops) a recent frame was shot with.
    pub fn frame_exposure(&self, slot: u64) -> Option<f64> {
        self.frame_exposures
            .iter()
            .find(|f| f.0 == slot)
            .map(|f| f.2)
    }

    pub fn origin_wall_ms(&self) -> i64 {
        self.origin_wall_ms
    }

    pub fn stop_at_wall_ms(&self) -> Option<i64> {
        self.stop_at_wall_ms
    }

    /// Monotonic due time of a slot.
    pub fn due(&self, slot: u64) -> Instant {
        let k = slot.saturating_sub(self.base_slot);
        self.base + mul(self.opts.interval, k)
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended { .. })
    }

    pub fn ended(&self) -> Option<EndKind> {
        match self.state {
            State::Ended { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub fn shot_in_flight(&self) -> bool {
        matches!(
            self.state,
            State::Running { in_flight: Some(_) } | State::Stopping { .. }
        )
    }

    pub fn state_name(&self) -> &'static str {
        match &self.state {
            State::Scheduled => "scheduled",
            State::Running { .. } => "running",
            State::Stopping { .. } | State::Finishing { .. } => "stopping",
            State::Ended { kind, .. } => kind.as_str(),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Scheduled => Some(
                self.due(self.next_slot)
                    .checked_sub(self.lead)
                    .unwrap_or(self.base),
            ),
            State::Running { in_flight: None } => {
                let due = self.due(self.next_slot);
                let fire = if self.connected {
                    due.checked_sub(self.lead).unwrap_or(due)
                } else {
                    due
                };
                Some(match self.end_deadline {
                    Some(end) => fire.min(end),
                    None => fire,
                })
            }
            // Waiting for the camera's reply (the stop deadline is checked when it arrives),
            // with a watchdog against a request that never returns.
            State::Running { in_flight: Some(f) } | State::Stopping { in_flight: f } => {
                Some(self.reply_deadline(f))
            }
            State::Finishing { until, .. } => Some(*until),
            State::Ended { .. } => None,
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match (&self.state, input) {
            (State::Ended { .. }, _) => {}
            (State::Finishing { .. }, Input::FilesAdded(names)) => {
                self.name_files(names);
                if self.uncertain.is_empty() {
                    self.finish(now);
                }
            }
            (State::Finishing { until, .. }, Input::Tick) if now >= *until => self.finish(now),
            (State::Finishing { .. }, Input::Stop | Input::Fail { .. }) => self.finish(now),
            (State::Finishing { .. }, _) => {}
            (_, Input::Fail { reason }) => self.end(now, EndKind::Error, Some(reason)),
            (_, Input::CameraLost { reason }) => {
                self.connected = false;
                self.lost_reason = format!("camera offline: {reason}");
                if self.outage.is_none() {
                    self.outage = Some(Outage {
                        since_ms: self.wall_ms_of(now),
                        until_ms: None,
                        missed: 0,
                        reason: self.lost_reason.clone(),
                    });
                }
            }
            (_, Input::CameraConnected) => self.connected = true,
            (_, Input::Measured { slot, result }) => {
                self.measuring = false;
                match result {
                    Ok(brightness) => self.measured(now, slot, brightness),
                    Err(e) => log::debug!("session {}: frame {slot} not measured: {e}", self.id),
                }
                self.next_measure();
            }
            (_, Input::SettingsApplied { applied, error }) => {
                self.change_in_flight = false;
                self.known.apply(&applied);
                if error.is_some() {
                    // Tried again in the next gap (the target is recomputed then).
                    self.ramp_deferred += 1;
                }
            }
            (_, Input::FilesAdded(names)) => self.name_files(names),
            (
                _,
                Input::WallClock {
                    wall_ms,
                    tz_offset_secs,
                },
            ) => {
                self.wall_anchor = (now, wall_ms);
                self.tz_offset_secs = tz_offset_secs;
                self.compute_end_deadline();
                self.tick(now);
            }
            (State::Scheduled, Input::Stop) => self.end(now, EndKind::Stopped, None),
            (State::Running { in_flight: None }, Input::Stop) => {
                self.end(now, EndKind::Stopped, None)
            }
            (State::Running { in_flight: Some(f) }, Input::Stop) => {
                self.state = State::Stopping { in_flight: *f };
            }
            (State::Stopping { .. }, Input::Stop) => {}
            (
                State::Running { in_flight: Some(f) } | State::Stopping { in_flight: f },
                Input::Tick,
            ) => {
                let f = *f;
                if now >= self.reply_deadline(&f) {
                    let stopping = matches!(self.state, State::Stopping { .. });
                    self.state = State::Running { in_flight: None };
                    self.actions.push_back(Action::AbandonShot { slot: f.slot });
                    let reason = format!(
                        "no reply from the camera within {} s",
                        SHOT_REPLY_TIMEOUT.as_secs()
                    );
                    let record = self.record(f.slot, None, f.late, Err(reason));
                    self.after_shot(now, record);
                    if stopping {
                        self.end(now, EndKind::Stopped, None);
                    } else {
                        self.tick(now);
                    }
                }
            }
            (State::Scheduled | State::Running { in_flight: None }, Input::Tick) => self.tick(now),
            (
                State::Running { in_flight: Some(f) } | State::Stopping { in_flight: f },
                Input::ShotDone { slot, outcome },
            ) if f.slot == slot => {
                let f = *f;
                let stopping = matches!(self.state, State::Stopping { .. });
                self.state = State::Running { in_flight: None };
                self.shot_done(now, f, outcome, !stopping);
                if stopping {
                    self.end(now, EndKind::Stopped, None);
                } else {
                    self.tick(now);
                }
            }
            // A reply for a shot we are not waiting for (cannot happen with one driver).
            (_, Input::ShotDone { .. }) => {}
        }
    }

    /// When a shot with no reply is given up: the camera answers after the exposure (twice
    /// that with long-exposure noise reduction) and AF, so the watchdog follows them.
    fn reply_deadline(&self, f: &InFlight) -> Instant {
        let exposure = self.exposure_hint();
        f.due + crate::camera::ccapi::shutter_timeout(SHOT_REPLY_TIMEOUT, exposure, self.opts.af)
    }

    /// The exposure each shot takes: bulb hold, else the announced (or camera-read) Tv.
    fn exposure_hint(&self) -> Option<Duration> {
        self.opts.bulb.or_else(|| {
            self.opts
                .exposure
                .filter(|e| e.is_finite() && *e > 0.0 && *e <= 3600.0)
                .map(Duration::from_secs_f64)
        })
    }

    /// Does whatever is due at `now` while no shot is in flight.
    fn tick(&mut self, now: Instant) {
        if let State::Scheduled = self.state {
            if now + self.lead < self.due(self.next_slot) {
                self.maybe_ramp(now, self.due(self.next_slot));
                return;
            }
            self.state = State::Running { in_flight: None };
            self.actions.push_back(Action::Notify(Notice::Running));
        }
        if !matches!(self.state, State::Running { in_flight: None }) {
            return;
        }
        // Missed slots (woken late, or back from a long reply) are skipped, never burst.
        let first_ahead = self.first_slot_not_before(now);
        if first_ahead > self.next_slot {
            let missed = first_ahead - self.next_slot;
            self.skipped_pending += missed;
            self.next_slot = first_ahead;
        }
        if self.stop_reached(now) {
            self.end(now, EndKind::Completed, None);
            return;
        }
        let slot = self.next_slot;
        let due = self.due(slot);
        if !self.connected {
            if now >= due {
                self.next_slot += 1;
                let record = self.record(slot, None, false, Err(self.lost_reason.clone()));
                self.after_shot(now, record);
            }
            return;
        }
        if now + self.lead >= due {
            self.shoot(slot, due, false);
        } else {
            // Auto-ramp decides again when a measurement comes in (see `measured`).
            self.maybe_ramp(now, due);
        }
    }

    /// Auto-ramp: measures the waiting frame unless one is being measured.
    fn next_measure(&mut self) {
        if self.measuring || !self.connected {
            return;
        }
        if let Some((slot, path)) = self.measure_next.take() {
            self.measuring = true;
            self.actions.push_back(Action::Measure { slot, path });
        }
    }

    /// Auto-ramp: a frame's brightness came in; the controller learns it and the next frame's
    /// settings are decided now, in the gap, if a frame is not already with the camera.
    fn measured(&mut self, now: Instant, slot: u64, brightness: f64) {
        let Some(&(_, at_ms, exposure)) = self.frame_exposures.iter().find(|f| f.0 == slot) else {
            return;
        };
        let Some(plan) = &self.opts.auto else { return };
        let sun_alt = crate::sun::solar_altitude_deg(at_ms, plan.location);
        if let Some(auto) = self.auto.as_mut() {
            auto.observe(crate::ramp::Frame {
                at_ms,
                exposure,
                brightness,
            });
        }
        self.actions
            .push_back(Action::Journal(JournalEntry::Measured {
                slot,
                brightness,
                sun_alt,
            }));
        if matches!(self.state, State::Running { in_flight: None }) {
            let due = self.due(self.next_slot);
            if now + self.lead < due {
                self.maybe_ramp(now, due);
            }
        }
    }

    /// In the gap before the frame due at `due`: sends the ramp's settings for it when they
    /// differ from the camera's and there is time (else the frame keeps the current ones and
    /// the change waits for the next gap).
    fn maybe_ramp(&mut self, now: Instant, due: Instant) {
        if self.change_in_flight || !self.connected {
            return;
        }
        let t_ms = self.wall_ms_of(due).round() as i64;
        let target = match (&self.opts.ramp, &self.opts.auto, &self.auto) {
            (Some(plan), _, _) => plan.target(t_ms),
            (None, Some(plan), Some(auto)) => {
                // The step limit is from the last frame shot, not from a change already made
                // for this gap (a second measurement in one gap must not step twice).
                let Some(current) = self
                    .frame_exposures
                    .back()
                    .map(|f| f.2)
                    .or_else(|| self.known.exposure_ev())
                else {
                    return;
                };
                let alt = crate::sun::solar_altitude_deg(t_ms, plan.location);
                let Some(d) = auto.decide(t_ms, Some(alt), current, &plan.limits()) else {
                    return;
                };
                FrameSettings {
                    tv: Some(d.settings.tv),
                    iso: Some(d.settings.iso),
                    av: Some(d.settings.av),
                }
            }
            _ => return,
        };
        let changes = self.known.changes_to(&target);
        if changes.is_empty() {
            return;
        }
        let Some(deadline) = due.checked_sub(self.lead + RAMP_BUDGET) else {
            return;
        };
        if now >= deadline {
            self.ramp_deferred += 1;
            return;
        }
        self.change_in_flight = true;
        self.actions
            .push_back(Action::ApplySettings { changes, deadline });
    }

    /// How late a slot may be handled and still count as on time: timers wake a little after
    /// their deadline, and a slot they are late for must be shot (or failed), not skipped.
    fn late_grace(&self) -> Duration {
        LATE_GRACE.min(self.opts.interval / 4)
    }

    /// First slot at or after `next_slot` whose due time is not past (beyond the grace).
    fn first_slot_not_before(&self, now: Instant) -> u64 {
        let due = self.due(self.next_slot) + self.late_grace();
        if now <= due {
            return self.next_slot;
        }
        let behind = now - due;
        let iv = self.opts.interval.as_nanos().max(1);
        let k = behind.as_nanos().div_ceil(iv);
        self.next_slot + u64::try_from(k).unwrap_or(u64::MAX / 2)
    }

    fn shoot(&mut self, slot: u64, due: Instant, late: bool) {
        self.state = State::Running {
            in_flight: Some(InFlight { slot, due, late }),
        };
        self.next_slot = slot + 1;
        self.actions.push_back(Action::Shoot {
            slot,
            due,
            req: ShotRequest {
                af: self.opts.af,
                bulb: self.opts.bulb,
                exposure: self.exposure_hint().filter(|_| self.opts.bulb.is_none()),
            },
        });
    }

    fn shot_done(&mut self, now: Instant, f: InFlight, outcome: ShotOutcome, may_shoot: bool) {
        let early = std::mem::take(&mut self.early_files);
        // A lost reply with the file already reported: the shot was taken.
        let reply_lost = outcome.result.is_err() && outcome.maybe_taken && !early.is_empty();
        let result = if reply_lost {
            Ok(())
        } else {
            outcome.result.clone().map_err(|e| e.message)
        };
        let mut record = self.record(f.slot, Some((&outcome, f.due)), f.late, result);
        record.reply_lost = reply_lost;
        if record.ok {
            // The camera refuses a press while it writes, so any earlier press it took has
            // reported its file by now: shots still uncertain were not taken.
            self.uncertain.clear();
            self.pending_files.retain(|p| !p.uncertain);
            self.await_files(f.slot, false);
        } else if outcome.maybe_taken {
            self.await_files(f.slot, true);
            if self.uncertain.len() == PENDING_FILES {
                self.uncertain.pop_front();
            }
            self.uncertain.push_back(record.clone());
        }
        let interval_s = self.opts.interval.as_secs_f64();
        if let Some(d) = record.duration_ms.map(|d| d / 1000.0) {
            if d > interval_s {
                self.actions.push_back(Action::Notify(Notice::Overtime {
                    shot: record.shot,
                    interval_s,
                    duration_s: d,
                    overtime_s: d - interval_s,
                }));
            }
        }
        self.late_allowed = !f.late;
        let ok = record.ok;
        self.after_shot(now, record);
        // Files that came before the reply: nothing older was waiting when they arrived, so
        // they are this slot's (dropped if the shot failed outright).
        if ok && !early.is_empty() {
            self.name_files(early);
        }
        // Overrun: the policy decides between skipping and one late shot.
        if may_shoot
            && self.opts.overrun == OverrunPolicy::ImmediatelyOnce
            && self.late_allowed
            && !matches!(self.state, State::Ended { .. } | State::Finishing { .. })
            && !self.stop_reached(now)
            && self.connected
        {
            let first_ahead = self.first_slot_not_before(now);
            if first_ahead > self.next_slot {
                let late_slot = first_ahead - 1;
                self.skipped_pending += late_slot - self.next_slot;
                self.shoot(late_slot, now, true);
            }
        }
    }

    fn record(
        &mut self,
        slot: u64,
        timing: Option<(&ShotOutcome, Instant)>,
        late: bool,
        result: Result<(), String>,
    ) -> ShotRecord {
        let scheduled_ms = self.wall_ms_of(self.due(slot));
        let (sent_ms, replied_ms, error_ms, duration_ms) = match timing {
            Some((o, requested)) => (
                Some(self.wall_ms_of(o.sent_at)),
                Some(self.wall_ms_of(o.replied_at)),
                Some(signed_ms(o.sent_at, requested)),
                Some(signed_ms(o.replied_at, o.sent_at)),
            ),
            None => (None, None, None, None),
        };
        let skipped_before = std::mem::take(&mut self.skipped_pending);
        ShotRecord {
            slot,
            shot: self.stats.shots_taken + 1,
            scheduled_ms,
            sent_ms,
            replied_ms,
            error_ms,
            duration_ms,
            ok: result.is_ok(),
            error: result.err(),
            late,
            skipped_before,
            files: Vec::new(),
            reply_lost: false,
            settings: self.ramped().then(|| Box::new(self.known.clone())),
            exposure_ev: self.ramped().then(|| self.known.exposure_ev()).flatten(),
            light: None,
        }
    }

    /// Keyframed or automatic ramp.
    fn ramped(&self) -> bool {
        self.opts.ramp.is_some() || self.opts.auto.is_some()
    }

    fn after_shot(&mut self, now: Instant, record: ShotRecord) {
        self.stats.record(&record, self.opts.interval.as_secs_f64());
        if let (true, Some(x)) = (record.ok && self.auto.is_some(), record.exposure_ev) {
            if self.frame_exposures.len() == 8 {
                self.frame_exposures.pop_front();
            }
            self.frame_exposures
                .push_back((record.slot, record.scheduled_ms.round() as i64, x));
        }
        if record.ok {
            if let Some(mut o) = self.outage.take() {
                o.until_ms = Some(record.scheduled_ms);
                self.last_outage = Some(o);
            }
        } else {
            let o = self.outage.get_or_insert_with(|| Outage {
                since_ms: record.scheduled_ms,
                until_ms: None,
                missed: 0,
                reason: String::new(),
            });
            o.missed += 1;
            if let Some(e) = &record.error {
                o.reason = e.clone();
            }
        }
        self.recent_failures = (self.recent_failures << 1) | u32::from(!record.ok);
        self.recent_count = (self.recent_count + 1).min(FAILURE_WINDOW);
        let mask = (1u32 << FAILURE_WINDOW) - 1;
        let failed = (self.recent_failures & mask).count_ones();
        if !self.warned && self.recent_count >= FAILURE_WINDOW / 2 && failed >= FAILURE_WARN_COUNT {
            self.warned = true;
            self.actions
                .push_back(Action::Notify(Notice::FailureRateHigh {
                    failed,
                    window: self.recent_count,
                    last_error: record.error.clone().unwrap_or_default(),
                }));
        } else if self.warned && failed <= 1 {
            // Re-arm once the camera has recovered.
            self.warned = false;
        }
        self.actions
            .push_back(Action::Journal(JournalEntry::Shot(record.clone())));
        self.actions.push_back(Action::Notify(Notice::Shot(record)));
        if let StopCondition::AfterShots(n) = self.opts.stop {
            if self.stats.shots_taken >= u64::from(n) {
                self.end(now, EndKind::Completed, None);
            }
        }
    }

    fn stop_reached(&self, now: Instant) -> bool {
        if let StopCondition::AfterShots(n) = self.opts.stop {
            if self.stats.shots_taken >= u64::from(n) {
                return true;
            }
        }
        match self.end_deadline {
            // No slot at or past the end is shot.
            Some(end) => now >= end || self.due(self.next_slot) >= end,
            None => false,
        }
    }

    fn compute_end_deadline(&mut self) {
        let end_wall = match self.opts.stop {
            StopCondition::Duration(d) => {
                Some(self.origin_wall_ms.saturating_add(d.as_millis() as i64))
            }
            StopCondition::At { .. } | StopCondition::Until(_) => self.stop_at_wall_ms,
            _ => None,
        };
        if let StopCondition::Duration(d) = self.opts.stop {
            // Duration is measured on the grid, not the wall: slot 0 + d.
            if self.base_slot == 0 {
                self.end_deadline = Some(self.base + d);
                return;
            }
        }
        self.end_deadline = end_wall.map(|w| {
            let (anchor, anchor_wall) = self.wall_anchor;
            let from_anchor = w - anchor_wall;
            if from_anchor >= 0 {
                anchor + Duration::from_millis(from_anchor as u64)
            } else {
                anchor
                    .checked_sub(Duration::from_millis(from_anchor.unsigned_abs()))
                    .unwrap_or(anchor)
            }
        });
    }

    fn end(&mut self, now: Instant, kind: EndKind, reason: Option<String>) {
        if matches!(self.state, State::Ended { .. } | State::Finishing { .. }) {
            return;
        }
        if kind != EndKind::Error && !self.uncertain.is_empty() {
            // A shot's reply was lost: give its file a moment to show up before the end
            // (and the report) are written.
            self.state = State::Finishing {
                kind,
                reason,
                until: now + FILE_GRACE,
            };
            return;
        }
        self.write_end(now, kind, reason);
    }

    fn finish(&mut self, now: Instant) {
        if let State::Finishing { kind, reason, .. } = &self.state {
            let (kind, reason) = (*kind, reason.clone());
            self.write_end(now, kind, reason);
        }
    }

    fn write_end(&mut self, now: Instant, kind: EndKind, reason: Option<String>) {
        self.state = State::Ended {
            kind,
            reason: reason.clone(),
        };
        self.ended_wall_ms = Some(self.wall_ms_of(now));
        self.actions.push_back(Action::Journal(JournalEntry::End {
            state: kind,
            reason: reason.clone(),
            wall_ms: self.wall_ms_of(now).round() as i64,
        }));
        self.actions
            .push_back(Action::Notify(Notice::Ended { kind, reason }));
    }

    fn await_files(&mut self, slot: u64, uncertain: bool) {
        if self.pending_files.len() == PENDING_FILES {
            self.pending_files.pop_front();
        }
        self.pending_files.push_back(Pending { slot, uncertain });
    }

    /// Assigns file names from event polling to shots, oldest first. RAW+JPEG of one shot
    /// share a stem and go to the same shot. A file for a shot whose reply was lost makes it
    /// count as taken; files arriving while a shot is in flight with no older shot waiting
    /// are kept for that shot.
    fn name_files(&mut self, names: Vec<String>) {
        let mut named: Vec<(u64, Vec<String>)> = Vec::new();
        for name in names {
            let stem = name
                .rsplit('/')
                .next()
                .unwrap_or(&name)
                .rsplit_once('.')
                .map(|(s, _)| s.to_string())
                .unwrap_or_else(|| name.clone());
            let slot = match &self.last_named {
                Some((slot, s)) if *s == stem => Some(*slot),
                _ => match self.pending_files.pop_front() {
                    Some(p) => {
                        if p.uncertain {
                            self.taken_after_all(p.slot);
                        }
                        Some(p.slot)
                    }
                    None if self.shot_in_flight() => {
                        self.early_files.push(name);
                        continue;
                    }
                    None => None,
                },
            };
            let Some(slot) = slot else {
                continue; // a file we did not shoot (a test photo taken by hand)
            };
            self.last_named = Some((slot, stem));
            match named.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, files)) => files.push(name),
                None => named.push((slot, vec![name])),
            }
        }
        for (slot, files) in named {
            if self.auto.is_some() {
                // The JPEG's thumbnail (a RAW's would do too); while one is being fetched (the
                // event worker is often in a long poll), the newest waits its turn.
                let pick = files
                    .iter()
                    .find(|f| f.to_ascii_uppercase().ends_with(".JPG"))
                    .or(files.first());
                if let Some(path) = pick {
                    self.measure_next = Some((slot, path.clone()));
                    self.next_measure();
                }
            }
            self.actions
                .push_back(Action::Journal(JournalEntry::Files { slot, files }));
        }
    }

    /// A failed shot's file appeared: it was taken, only the reply was lost.
    fn taken_after_all(&mut self, slot: u64) {
        let Some(i) = self.uncertain.iter().position(|r| r.slot == slot) else {
            return;
        };
        let Some(mut record) = self.uncertain.remove(i) else {
            return;
        };
        self.stats.shots_failed = self.stats.shots_failed.saturating_sub(1);
        self.stats.shots_successful += 1;
        record.ok = true;
        record.error = None;
        record.reply_lost = true;
        self.actions
            .push_back(Action::Journal(JournalEntry::Taken { slot }));
        self.actions
            .push_back(Action::Notify(Notice::Taken(record)));
    }

    /// Wall label (Unix ms, fractional) of a monotonic instant.
    pub fn wall_ms_of(&self, t: Instant) -> f64 {
        let (anchor, wall) = self.wall_anchor;
        wall as f64 + signed_ms(t, anchor)
    }

    /// The session's options as clients see them (`stopTime` as the resolved instant).
    pub fn options_block(&self) -> SessionOptionsBlock {
        let wire = self.opts.to_wire();
        SessionOptionsBlock {
            interval: wire.interval,
            stop_condition: wire.stop_condition,
            total_shots: wire.total_shots,
            stop_time: self.stop_at_wall_ms.map(iso8601_millis),
            stop_time_of_day: wire.stop_time,
            duration: wire.duration,
            overrun_policy: wire.overrun_policy,
            bulb: wire.bulb,
            start_at: wire.start_at,
            stop_at: wire.stop_at,
        }
    }

    /// The session's counters (`stats`).
    pub fn stats_block(&self) -> SessionStats {
        let s = &self.stats;
        let next = match self.state {
            State::Scheduled | State::Running { .. } => Some(self.due(self.next_slot)),
            _ => None,
        };
        let label = |ms: f64| iso8601_millis(ms.round() as i64);
        SessionStats {
            start_time: label(self.origin_wall_ms as f64),
            end_time: self.ended_wall_ms.map(label),
            shots_taken: s.shots_taken,
            shots_successful: s.shots_successful,
            shots_failed: s.shots_failed,
            shots_skipped: s.shots_skipped + self.skipped_pending,
            current_shot: s.shots_taken,
            next_shot_time: next.map(|t| label(self.wall_ms_of(t))),
            overtime_shots: s.overtime_shots,
            total_overtime_seconds: s.total_overtime_s,
            max_overtime_seconds: s.max_overtime_s,
            last_shot_duration: s.last_duration_s,
            total_shot_duration_seconds: s.sum_duration_s,
            timing: TimingStats {
                mean_error_ms: s.mean_error_ms(),
                p99_error_ms: s.p99_error_ms(),
                max_error_ms: (s.timed_shots > 0).then_some(s.max_abs_error_ms),
            },
        }
    }

    /// Shots left for a stop-after session.
    pub fn remaining_shots(&self) -> Option<u64> {
        match self.opts.stop {
            StopCondition::AfterShots(n) => {
                Some(u64::from(n).saturating_sub(self.stats.shots_taken))
            }
            _ => None,
        }
    }

    /// The reason the machine gave for its end (an error's cause), if any.
    pub fn end_reason(&self) -> Option<String> {
        match &self.state {
            State::Ended { reason, .. } => reason.clone(),
            _ => None,
        }
    }

    /// The `intervalometer` status block (PROTOCOL.md "Session status").
    pub fn status_block(&self) -> IntervalometerBlock {
        let s = &self.stats;
        let interval = self.opts.interval.as_secs_f64();
        let next = match self.state {
            State::Scheduled | State::Running { .. } => Some(self.due(self.next_slot)),
            _ => None,
        };
        let remaining = self.remaining_shots();
        // Frames still to come under every bounded stop condition (the card and battery are
        // judged against it): slots from the next one up to the end, none past it.
        let frames_left = match (remaining, self.end_deadline, next) {
            (Some(r), _, _) => Some(r),
            (None, Some(end), Some(due)) if due < end => {
                let iv = self.opts.interval.as_nanos().max(1);
                Some(u64::try_from((end - due).as_nanos().div_ceil(iv)).unwrap_or(u64::MAX))
            }
            (None, Some(_), _) => Some(0),
            (None, None, _) => None,
        };
        let end_ms = match (self.opts.stop, self.end_deadline) {
            (_, Some(end)) => Some(self.wall_ms_of(end)),
            (StopCondition::AfterShots(n), _) => next.map(|t| {
                self.wall_ms_of(t)
                    + (u64::from(n).saturating_sub(s.shots_taken + 1)) as f64 * interval * 1000.0
            }),
            _ => None,
        };
        IntervalometerBlock {
            state: self.state_name().into(),
            running: matches!(
                self.state,
                State::Running { .. }
                    | State::Stopping { .. }
                    | State::Finishing { .. }
                    | State::Scheduled
            ),
            session: Some(SessionBlock {
                session_id: self.id.clone(),
                title: self.title.clone(),
                camera_connected: self.connected,
                options: self.options_block(),
                stats: self.stats_block(),
                remaining_shots: self.remaining_shots(),
                frames_left,
                estimated_end_time: end_ms.map(|ms| iso8601_millis(ms.round() as i64)),
                success_rate: (s.shots_taken > 0)
                    .then(|| s.shots_successful as f64 / s.shots_taken as f64),
                average_shot_duration: (s.timed_shots > 0)
                    .then(|| s.sum_duration_s / s.timed_shots as f64),
                end_reason: self.end_reason(),
                // Frames failing in a row now (null when the last frame was taken), and the
                // last such run that ended: what the "camera not answering" banner shows.
                outage: self.outage.as_ref().map(Outage::block),
                last_outage: self.last_outage.as_ref().map(Outage::block),
            }),
            unsaved_session: None,
        }
    }

    /// Where the grid stands, for fitting a test shot between frames (`None` once ended).
    pub fn grid_view(&self) -> Option<super::schedule::GridView> {
        let in_flight = match self.state {
            State::Scheduled | State::Running { in_flight: None } => false,
            State::Running { in_flight: Some(_) } => true,
            _ => return None,
        };
        Some(super::schedule::GridView {
            next_due: self.due(self.next_slot),
            previous_due: (self.next_slot > self.base_slot).then(|| self.due(self.next_slot - 1)),
            interval: self.opts.interval,
            exposure: self.exposure_hint(),
            in_flight,
            awaiting_files: !self.pending_files.is_empty() || !self.early_files.is_empty(),
            lead: self.lead,
        })
    }
}

fn mul(d: Duration, k: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(k));
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX / 4),
        (nanos % 1_000_000_000) as u32,
    )
}

/// `a − b` in milliseconds, signed.
pub fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}

impl crate::machine::Machine for Session {
    type Input = Input;
    type Action = Action;
    fn handle_input(&mut self, now: crate::machine::Now, input: Input) {
        self.handle(now.mono, input)
    }
    fn handle_timeout(&mut self, now: crate::machine::Now) {
        self.handle(now.mono, Input::Tick)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Session::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervalometer::schedule::SessionOptions;
    use crate::protocol::{ApiError, ErrorCode};

    const T0_WALL: i64 = 1_641_078_000_000; // 2022-01-01T23:00:00Z

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn opts(interval_ms: u64, stop: StopCondition, overrun: OverrunPolicy) -> SessionOptions {
        SessionOptions {
            interval: ms(interval_ms),
            stop,
            overrun,
            bulb: None,
            af: false,
            exposure: None,
            ..SessionOptions::default()
        }
    }

    fn session(t0: Instant, o: SessionOptions) -> Session {
        Session::new(
            "s1".into(),
            "test".into(),
            o,
            Start {
                now: t0,
                wall_ms: T0_WALL,
                tz_offset_secs: 0,
                base: t0 + ms(1000),
                first_slot: 0,
                origin_wall_ms: T0_WALL + 1000,
                stop_at_wall_ms: None,
                camera_connected: true,
                lead: DEFAULT_LEAD,
                settings: FrameSettings::default(),
            },
            &[],
        )
    }

    fn drain(s: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn shoots(actions: &[Action]) -> Vec<(u64, Instant)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Shoot { slot, due, .. } => Some((*slot, *due)),
                _ => None,
            })
            .collect()
    }

    fn ended(actions: &[Action]) -> Option<EndKind> {
        actions.iter().find_map(|a| match a {
            Action::Notify(Notice::Ended { kind, .. }) => Some(*kind),
            _ => None,
        })
    }

    fn ok(sent: Instant, replied: Instant) -> ShotOutcome {
        ShotOutcome {
            sent_at: sent,
            replied_at: replied,
            result: Ok(()),
            maybe_taken: false,
        }
    }

    /// Runs the machine with a camera that sends exactly on time and replies after
    /// `reply(slot)`; returns the shots it fired (slot, due) until it ends or `until`.
    fn run(
        s: &mut Session,
        t0: Instant,
        until: Instant,
        reply: impl Fn(u64) -> Duration,
    ) -> (Vec<(u64, Instant)>, Vec<Action>) {
        let mut fired = Vec::new();
        let mut all = Vec::new();
        let mut now = t0;
        s.handle(now, Input::Tick);
        loop {
            let actions = drain(s);
            let shots = shoots(&actions);
            all.extend(actions);
            if let Some(&(slot, due)) = shots.first() {
                fired.push((slot, due));
                let sent = due.max(now);
                now = sent + reply(slot);
                s.handle(
                    now,
                    Input::ShotDone {
                        slot,
                        outcome: ok(sent, now),
                    },
                );
                continue;
            }
            match s.poll_timeout() {
                Some(t) if t <= until => {
                    now = now.max(t);
                    s.handle(now, Input::Tick);
                }
                _ => break,
            }
        }
        (fired, all)
    }

    #[test]
    fn shots_fall_on_the_grid_and_are_handed_over_a_lead_time_early() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(2000, StopCondition::AfterShots(5), OverrunPolicy::NextSlot),
        );
        assert_eq!(s.poll_timeout(), Some(t0 + ms(700)));
        s.handle(t0 + ms(699), Input::Tick);
        assert!(shoots(&drain(&mut s)).is_empty());
        let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(150));
        let want: Vec<_> = (0..5).map(|n| (n, t0 + ms(1000 + 2000 * n))).collect();
        assert_eq!(fired, want);
        assert_eq!(ended(&all), Some(EndKind::Completed));
        assert_eq!(s.stats().shots_taken, 5);
        assert_eq!(s.stats().shots_skipped, 0);
    }

    #[test]
    fn due_times_never_accumulate_reply_latency() {
        // Regression: `previous + interval` scheduling drifts by the reply time every shot.
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(
                1000,
                StopCondition::AfterShots(100),
                OverrunPolicy::NextSlot,
            ),
        );
        let (fired, _) = run(&mut s, t0, t0 + ms(1_000_000), |_| ms(333));
        assert_eq!(fired.len(), 100);
        assert_eq!(fired[99].1, t0 + ms(1000 + 99 * 1000));
    }

    #[test]
    fn overrun_skips_missed_slots_without_a_burst() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::AfterShots(4), OverrunPolicy::NextSlot),
        );
        // Shot 1 (slot 1) takes 2.5 s: slots 2 and 3 are missed; next is slot 4.
        let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |slot| {
            if slot == 1 {
                ms(2500)
            } else {
                ms(100)
            }
        });
        let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
        assert_eq!(slots, [0, 1, 4, 5]);
        assert_eq!(fired[2].1, t0 + ms(1000 + 4000));
        assert_eq!(s.stats().shots_skipped, 2);
        let overtime = all
            .iter()
            .any(|a| matches!(a, Action::Notify(Notice::Overtime { shot: 2, .. })));
        assert!(overtime, "the 2.5 s shot in a 1 s interval is overtime");
        let rec = all.iter().find_map(|a| match a {
            Action::Journal(JournalEntry::Shot(r)) if r.slot == 4 => Some(r.clone()),
            _ => None,
        });
        assert_eq!(rec.unwrap().skipped_before, 2);
    }

    #[test]
    fn immediately_once_fires_one_late_shot_then_returns_to_the_grid() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(
                1000,
                StopCondition::AfterShots(5),
                OverrunPolicy::ImmediatelyOnce,
            ),
        );
        let (fired, _) = run(&mut s, t0, t0 + ms(60_000), |slot| {
            if slot == 1 {
                ms(2500)
            } else {
                ms(100)
            }
        });
        // Slot 1 ends at t0+4.5 s; slot 3 (due 4.0 s) is shot late at once, slot 2 skipped;
        // then slot 4 on the grid (due 5 s).
        let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
        assert_eq!(slots, [0, 1, 3, 4, 5]);
        assert_eq!(fired[2].1, t0 + ms(1000 + 1000 + 2500));
        assert_eq!(fired[3].1, t0 + ms(5000));
        assert_eq!(s.stats().shots_skipped, 1);
    }

    #[test]
    fn immediately_once_never_chains_late_shots() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(
                1000,
                StopCondition::AfterShots(4),
                OverrunPolicy::ImmediatelyOnce,
            ),
        );
        // Every shot takes 2.5 s: a late shot is followed by a grid shot, never another late one.
        let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(2500));
        let late: Vec<bool> = all
            .iter()
            .filter_map(|a| match a {
                Action::Journal(JournalEntry::Shot(r)) => Some(r.late),
                _ => None,
            })
            .collect();
        assert_eq!(late, [false, true, false, true]);
        assert_eq!(fired.len(), 4);
    }

    #[test]
    fn duration_stop_excludes_the_slot_at_the_end() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(
                1000,
                StopCondition::Duration(ms(5000)),
                OverrunPolicy::NextSlot,
            ),
        );
        let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(100));
        assert_eq!(fired.len(), 5); // slots at 0..4 s; slot 5 s is the end
        assert_eq!(ended(&all), Some(EndKind::Completed));
    }

    #[test]
    fn stop_at_crosses_midnight() {
        // Start 23:00:00Z, stop "00:00": an hour of 10-minute slots from 23:00:01.
        let t0 = crate::clock::test_t0();
        let o = opts(
            600_000,
            StopCondition::At { hour: 0, minute: 0 },
            OverrunPolicy::NextSlot,
        );
        let mut s = session(t0, o);
        assert_eq!(s.stop_at_wall_ms(), Some(T0_WALL + 3_600_000));
        let (fired, all) = run(&mut s, t0, t0 + ms(10_000_000), |_| ms(100));
        assert_eq!(fired.len(), 6); // 23:00:01, 23:10:01 … 23:50:01
        assert_eq!(ended(&all), Some(EndKind::Completed));
    }

    #[test]
    fn stop_at_is_re_evaluated_when_the_wall_clock_steps_but_the_grid_stays() {
        let t0 = crate::clock::test_t0();
        let o = opts(
            600_000,
            StopCondition::At { hour: 0, minute: 0 },
            OverrunPolicy::NextSlot,
        );
        let mut s = session(t0, o);
        let (fired, _) = run(&mut s, t0, t0 + ms(1_300_000), |_| ms(100));
        assert_eq!(fired.len(), 3);
        // Time sync: the wall clock was 30 min slow. Now it reads 23:51:40 at mono 1_300 s.
        let now = t0 + ms(1_300_000);
        s.handle(
            now,
            Input::WallClock {
                wall_ms: T0_WALL + 1_300_000 + 1_800_000,
                tz_offset_secs: 0,
            },
        );
        // Midnight is now 500 s away on the monotonic clock: slot 3 (1_801 s) is past it.
        let (more, all) = run(&mut s, now, now + ms(10_000_000), |_| ms(100));
        assert!(more.is_empty(), "{more:?}");
        assert_eq!(ended(&all), Some(EndKind::Completed));
        // A step the other way (clock was fast) lets the session run longer, on the same grid.
        let mut s = session(
            t0,
            opts(
                600_000,
                StopCondition::At { hour: 0, minute: 0 },
                OverrunPolicy::NextSlot,
            ),
        );
        run(&mut s, t0, t0 + ms(1_300_000), |_| ms(100));
        s.handle(
            now,
            Input::WallClock {
                wall_ms: T0_WALL + 1_300_000 - 1_800_000,
                tz_offset_secs: 0,
            },
        );
        let (more, _) = run(&mut s, now, now + ms(100_000_000), |_| ms(100));
        let dues: Vec<Instant> = more.iter().map(|f| f.1).collect();
        assert_eq!(
            dues.len(),
            6,
            "slots 3..8 fit before the corrected midnight"
        );
        assert_eq!(dues[0], t0 + ms(1000 + 3 * 600_000));
    }

    #[test]
    fn stop_input_during_a_shot_waits_for_the_reply() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        s.handle(t0 + ms(700), Input::Tick);
        assert_eq!(shoots(&drain(&mut s)).len(), 1);
        s.handle(t0 + ms(1000), Input::Stop);
        assert_eq!(s.state_name(), "stopping");
        assert!(s.shot_in_flight());
        s.handle(
            t0 + ms(1100),
            Input::ShotDone {
                slot: 0,
                outcome: ok(t0 + ms(1000), t0 + ms(1100)),
            },
        );
        let a = drain(&mut s);
        assert_eq!(ended(&a), Some(EndKind::Stopped));
        assert_eq!(s.stats().shots_successful, 1);
        assert!(a
            .iter()
            .any(|x| matches!(x, Action::Journal(JournalEntry::End { .. }))));
    }

    #[test]
    fn bulb_shots_carry_the_exposure_and_are_due_on_the_grid() {
        let t0 = crate::clock::test_t0();
        let mut o = opts(
            60_000,
            StopCondition::AfterShots(2),
            OverrunPolicy::NextSlot,
        );
        o.bulb = Some(ms(45_000));
        let mut s = session(t0, o);
        s.handle(t0 + ms(700), Input::Tick);
        let a = drain(&mut s);
        assert!(
            matches!(
                a.as_slice(),
                [Action::Notify(Notice::Running), Action::Shoot { slot: 0, req: ShotRequest { bulb: Some(b), af: false, .. }, .. }] if *b == ms(45_000)
            ),
            "{a:?}"
        );
        // The release reply comes 45.2 s after the press; not overtime in a 60 s interval.
        s.handle(
            t0 + ms(46_200),
            Input::ShotDone {
                slot: 0,
                outcome: ok(t0 + ms(1000), t0 + ms(46_200)),
            },
        );
        let a = drain(&mut s);
        assert!(!a
            .iter()
            .any(|x| matches!(x, Action::Notify(Notice::Overtime { .. }))));
        assert_eq!(s.poll_timeout(), Some(t0 + ms(61_000) - DEFAULT_LEAD));
    }

    #[test]
    fn camera_lost_marks_slots_failed_and_resumes_on_the_grid() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        let (fired, _) = run(&mut s, t0, t0 + ms(1800), |_| ms(100));
        assert_eq!(fired.len(), 2);
        s.handle(
            t0 + ms(2300),
            Input::CameraLost {
                reason: "health check timed out".into(),
            },
        );
        // Offline: no Shoot, the timer waits for the due time itself.
        assert_eq!(s.poll_timeout(), Some(t0 + ms(3000)));
        let mut failed = Vec::new();
        for k in 3..6 {
            s.handle(t0 + ms(k * 1000), Input::Tick);
            for a in drain(&mut s) {
                assert!(!matches!(a, Action::Shoot { .. }));
                if let Action::Journal(JournalEntry::Shot(r)) = a {
                    failed.push(r);
                }
            }
        }
        assert_eq!(failed.len(), 3);
        assert!(
            failed
                .iter()
                .all(|r| !r.ok
                    && r.error.as_deref() == Some("camera offline: health check timed out"))
        );
        // A high failure rate is announced, once; the session keeps running.
        s.handle(t0 + ms(6000), Input::Tick);
        s.handle(t0 + ms(7000), Input::Tick);
        let a = drain(&mut s);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Notify(Notice::FailureRateHigh { failed: 5, .. }))),
            "{a:?}"
        );
        assert_eq!(s.state_name(), "running");
        s.handle(t0 + ms(7500), Input::CameraConnected);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(8000) - DEFAULT_LEAD));
        s.handle(t0 + ms(7700), Input::Tick);
        assert_eq!(shoots(&drain(&mut s)), [(7, t0 + ms(8000))]);
        assert_eq!(s.stats().shots_failed, 5);
        // The banner's figures: since the loss (2.3 s in), 5 frames missed, still on.
        let st = serde_json::to_value(s.status_block()).unwrap();
        assert_eq!(st["outage"]["framesMissed"], 5, "{st}");
        assert_eq!(st["outage"]["since"], iso8601_millis(T0_WALL + 2300));
        assert!(st["lastOutage"].is_null());
        // The first frame taken again ends it: "camera back", with the span.
        s.handle(
            t0 + ms(8050),
            Input::ShotDone {
                slot: 7,
                outcome: ok(t0 + ms(8000), t0 + ms(8050)),
            },
        );
        let st = serde_json::to_value(s.status_block()).unwrap();
        assert!(st["outage"].is_null(), "{st}");
        assert_eq!(st["lastOutage"]["framesMissed"], 5);
        assert_eq!(st["lastOutage"]["until"], iso8601_millis(T0_WALL + 8000));
    }

    #[test]
    fn frames_left_counts_the_slots_before_the_end_for_every_stop_condition() {
        // Issue 14: card and battery were judged only for shot-count stops.
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(
                3000,
                StopCondition::Duration(ms(60_000)),
                OverrunPolicy::NextSlot,
            ),
        );
        s.handle(t0, Input::Tick);
        // Slots at 0, 3, … 57 s of the 60 s: 20 frames.
        assert_eq!(s.status_block().session.unwrap().frames_left, Some(20));
        s.handle(t0 + ms(700), Input::Tick);
        drain(&mut s);
        assert_eq!(s.status_block().session.unwrap().frames_left, Some(19));
        let mut s = session(
            t0,
            opts(3000, StopCondition::AfterShots(5), OverrunPolicy::NextSlot),
        );
        s.handle(t0, Input::Tick);
        assert_eq!(s.status_block().session.unwrap().frames_left, Some(5));
        let mut s = session(
            t0,
            opts(3000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        s.handle(t0, Input::Tick);
        assert!(s.status_block().session.unwrap().frames_left.is_none());
    }

    #[test]
    fn grid_view_tells_a_test_shot_where_the_frames_are() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(3000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        s.handle(t0, Input::Tick);
        let g = s.grid_view().unwrap();
        assert_eq!(
            (g.next_due, g.previous_due, g.in_flight),
            (t0 + ms(1000), None, false)
        );
        s.handle(t0 + ms(700), Input::Tick);
        drain(&mut s);
        let g = s.grid_view().unwrap();
        assert_eq!(
            (g.next_due, g.previous_due, g.in_flight),
            (t0 + ms(4000), Some(t0 + ms(1000)), true)
        );
        s.handle(
            t0 + ms(1050),
            Input::ShotDone {
                slot: 0,
                outcome: ok(t0 + ms(1000), t0 + ms(1050)),
            },
        );
        // Answered; its file not reported yet.
        let g = s.grid_view().unwrap();
        assert!(!g.in_flight && g.awaiting_files);
        s.handle(
            t0 + ms(1200),
            Input::FilesAdded(vec![
                "/ccapi/ver110/contents/sd/100CANON/IMG_0001.JPG".into()
            ]),
        );
        assert!(!s.grid_view().unwrap().awaiting_files);
        s.handle(t0 + ms(1300), Input::Stop);
        assert_eq!(s.grid_view(), None);
    }

    #[test]
    fn failed_shot_replies_are_recorded_with_the_camera_error() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
        );
        s.handle(t0 + ms(700), Input::Tick);
        drain(&mut s);
        let outcome = ShotOutcome {
            sent_at: t0 + ms(1001),
            replied_at: t0 + ms(1050),
            result: Err(ApiError::new(ErrorCode::CameraBusy, "Device busy")),
            maybe_taken: false,
        };
        s.handle(t0 + ms(1050), Input::ShotDone { slot: 0, outcome });
        let a = drain(&mut s);
        let r = a
            .iter()
            .find_map(|x| match x {
                Action::Notify(Notice::Shot(r)) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert!(!r.ok);
        assert_eq!(r.error.as_deref(), Some("Device busy"));
        assert!((r.error_ms.unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(ended(&a), Some(EndKind::Completed));
    }

    #[test]
    fn file_names_arrive_later_and_pair_raw_with_jpeg() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        run(&mut s, t0, t0 + ms(2800), |_| ms(100));
        s.handle(
            t0 + ms(2900),
            Input::FilesAdded(vec![
                "/ccapi/ver110/contents/card1/100CANON/IMG_0001.CR3".into(),
                "/ccapi/ver110/contents/card1/100CANON/IMG_0001.JPG".into(),
                "/ccapi/ver110/contents/card1/100CANON/IMG_0002.CR3".into(),
            ]),
        );
        let files: Vec<(u64, usize)> = drain(&mut s)
            .into_iter()
            .filter_map(|a| match a {
                Action::Journal(JournalEntry::Files { slot, files }) => Some((slot, files.len())),
                _ => None,
            })
            .collect();
        assert_eq!(files, [(0, 2), (1, 1)]);
    }

    fn lost_reply(sent: Instant, replied: Instant) -> ShotOutcome {
        ShotOutcome {
            sent_at: sent,
            replied_at: replied,
            result: Err(ApiError::new(
                ErrorCode::CameraTimeout,
                "Camera did not answer in time",
            )),
            maybe_taken: true,
        }
    }

    fn img(n: u32) -> String {
        format!("/ccapi/ver110/contents/card1/100CANON/IMG_{n:04}.JPG")
    }

    /// Hands slot `slot` its outcome at `at` after the machine asked to shoot it.
    fn shoot_and_answer(s: &mut Session, now: Instant, outcome: ShotOutcome) -> Vec<Action> {
        s.handle(now, Input::Tick);
        let a = drain(s);
        let (slot, _) = *shoots(&a).first().expect("a shot is due");
        s.handle(outcome.replied_at, Input::ShotDone { slot, outcome });
        drain(s)
    }

    #[test]
    fn a_lost_reply_whose_file_then_appears_counts_as_taken() {
        // Regression (issue 14 B1): a shot whose reply timed out but whose file the camera
        // then reported was still recorded as failed, so the report undercounted the card.
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(30_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        let due = t0 + ms(1000);
        let a = shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(25_000)));
        let failed = a
            .iter()
            .find_map(|a| match a {
                Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert!(!failed.ok);
        assert_eq!(s.stats().shots_failed, 1);
        s.handle(due + ms(26_000), Input::FilesAdded(vec![img(7)]));
        let a = drain(&mut s);
        assert!(
            a.contains(&Action::Journal(JournalEntry::Taken { slot: 0 })),
            "{a:?}"
        );
        assert!(a.contains(&Action::Journal(JournalEntry::Files {
            slot: 0,
            files: vec![img(7)]
        })));
        let taken = a
            .iter()
            .find_map(|a| match a {
                Action::Notify(Notice::Taken(r)) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert!(taken.ok && taken.reply_lost && taken.error.is_none());
        assert_eq!(s.stats().shots_failed, 0);
        assert_eq!(s.stats().shots_successful, 1);
        assert_eq!(s.stats().shots_taken, 1);
    }

    #[test]
    fn files_reported_before_a_lost_reply_make_the_shot_taken() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(30_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        let due = t0 + ms(1000);
        s.handle(due - ms(300), Input::Tick);
        assert_eq!(shoots(&drain(&mut s)).len(), 1);
        // The file shows up while the press is still waiting for its answer...
        s.handle(due + ms(21_000), Input::FilesAdded(vec![img(1)]));
        assert!(drain(&mut s).is_empty());
        // ...which never comes.
        let o = lost_reply(due, due + ms(40_000));
        s.handle(
            o.replied_at,
            Input::ShotDone {
                slot: 0,
                outcome: o,
            },
        );
        let a = drain(&mut s);
        let r = a
            .iter()
            .find_map(|a| match a {
                Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert!(r.ok && r.reply_lost, "{r:?}");
        assert!(a.contains(&Action::Journal(JournalEntry::Files {
            slot: 0,
            files: vec![img(1)]
        })));
        assert_eq!(s.stats().shots_successful, 1);
    }

    #[test]
    fn a_shot_that_was_not_taken_never_claims_a_later_shots_file() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(5_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        // Slot 0: reply lost and no file (the press never reached the camera).
        let d0 = t0 + ms(1000);
        shoot_and_answer(&mut s, d0 - ms(300), lost_reply(d0, d0 + ms(2000)));
        // Slot 1: fine; its file arrives after its reply.
        let d1 = d0 + ms(5000);
        shoot_and_answer(&mut s, d1 - ms(300), ok(d1, d1 + ms(100)));
        s.handle(d1 + ms(400), Input::FilesAdded(vec![img(2)]));
        let a = drain(&mut s);
        assert_eq!(
            a,
            vec![Action::Journal(JournalEntry::Files {
                slot: 1,
                files: vec![img(2)]
            })]
        );
        assert_eq!(s.stats().shots_failed, 1);
        assert_eq!(s.stats().shots_successful, 1);
    }

    #[test]
    fn a_session_ending_on_a_lost_reply_waits_for_that_shots_file() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(2_000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
        );
        let due = t0 + ms(1000);
        let a = shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(500)));
        assert_eq!(ended(&a), None, "the end waits for the file: {a:?}");
        assert_eq!(s.state_name(), "stopping");
        assert_eq!(s.poll_timeout(), Some(due + ms(500) + FILE_GRACE));
        s.handle(due + ms(900), Input::FilesAdded(vec![img(1)]));
        let a = drain(&mut s);
        assert!(a.contains(&Action::Journal(JournalEntry::Taken { slot: 0 })));
        assert_eq!(ended(&a), Some(EndKind::Completed));
        assert_eq!(s.stats().shots_successful, 1);

        // No file at all: the session ends after the grace, the shot stays failed.
        let mut s = session(
            t0,
            opts(2_000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
        );
        shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(500)));
        s.handle(due + ms(500) + FILE_GRACE, Input::Tick);
        assert_eq!(ended(&drain(&mut s)), Some(EndKind::Completed));
        assert_eq!(s.stats().shots_failed, 1);
    }

    #[test]
    fn a_long_exposure_is_not_given_up_before_the_camera_can_answer() {
        // A 30" exposure is answered after ~30 s (60 s with noise reduction): the watchdog
        // must not abandon it at the plain reply timeout.
        let t0 = crate::clock::test_t0();
        let mut o = opts(40_000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
        o.exposure = Some(30.0);
        let mut s = session(t0, o);
        let due = t0 + ms(1000);
        s.handle(due - ms(300), Input::Tick);
        let a = drain(&mut s);
        let req = a
            .iter()
            .find_map(|a| match a {
                Action::Shoot { req, .. } => Some(*req),
                _ => None,
            })
            .unwrap();
        assert_eq!(req.exposure, Some(ms(30_000)));
        let deadline = s.poll_timeout().unwrap();
        assert!(
            deadline >= due + ms(60_000) + SHOT_REPLY_TIMEOUT,
            "{:?}",
            deadline - due
        );
        s.handle(due + ms(61_000), Input::Tick);
        assert!(!drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::AbandonShot { .. })));
    }

    #[test]
    fn resume_continues_on_the_original_grid_and_counts_downtime_as_skipped() {
        // Session origin (slot 0) at wall T; 3 shots journaled; power lost; back at T+10.5 s.
        let interval = ms(1000);
        let prior: Vec<ShotRecord> = (0..3)
            .map(|n| ShotRecord {
                slot: n,
                shot: n + 1,
                scheduled_ms: (T0_WALL + n as i64 * 1000) as f64,
                sent_ms: None,
                replied_ms: None,
                error_ms: Some(0.5),
                duration_ms: Some(100.0),
                ok: true,
                error: None,
                late: false,
                skipped_before: 0,
                files: vec![],
                reply_lost: false,
                settings: None,
                exposure_ev: None,
                light: None,
            })
            .collect();
        let now = crate::clock::test_t0();
        let wall_now = T0_WALL + 10_500;
        let first_slot = 11u64; // first slot whose wall time is ahead: T+11 s
        let base = now + ms(500);
        let mut s = Session::new(
            "s1".into(),
            "t".into(),
            opts(
                interval.as_millis() as u64,
                StopCondition::AfterShots(6),
                OverrunPolicy::NextSlot,
            ),
            Start {
                now,
                wall_ms: wall_now,
                tz_offset_secs: 0,
                base,
                first_slot,
                origin_wall_ms: T0_WALL,
                stop_at_wall_ms: None,
                camera_connected: true,
                lead: DEFAULT_LEAD,
                settings: FrameSettings::default(),
            },
            &prior,
        );
        assert_eq!(s.stats().shots_taken, 3);
        let (fired, all) = run(&mut s, now, now + ms(60_000), |_| ms(100));
        let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
        assert_eq!(
            slots,
            [11, 12, 13],
            "stop-after 6 counts the 3 shots before the restart"
        );
        assert_eq!(fired[1].1, base + interval);
        assert_eq!(
            s.stats().shots_skipped,
            8,
            "slots 3..=10 were lost while down"
        );
        assert_eq!(ended(&all), Some(EndKind::Completed));
        let first = all
            .iter()
            .find_map(|a| match a {
                Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(first.scheduled_ms, (T0_WALL + 11_000) as f64);
    }

    #[test]
    fn a_shot_that_never_returns_is_given_up_and_the_grid_goes_on() {
        let t0 = crate::clock::test_t0();
        // A 1 ms exposure: the watchdog is the reply timeout plus twice that.
        let mut o = opts(10_000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
        o.exposure = Some(0.001);
        let mut s = session(t0, o);
        s.handle(t0 + ms(700), Input::Tick);
        assert_eq!(shoots(&drain(&mut s)).len(), 1);
        let deadline = t0 + ms(1000) + SHOT_REPLY_TIMEOUT + ms(2);
        assert_eq!(s.poll_timeout(), Some(deadline));
        s.handle(deadline - ms(1), Input::Tick);
        assert!(drain(&mut s).is_empty());
        s.handle(deadline, Input::Tick);
        let a = drain(&mut s);
        assert!(a.contains(&Action::AbandonShot { slot: 0 }), "{a:?}");
        assert_eq!(s.stats().shots_failed, 1);
        // Slots 1 and 2 (11 s, 21 s) passed meanwhile; slot 3 (31 s) is handed over now.
        assert_eq!(shoots(&a), [(3, t0 + ms(31_000))]);
        assert_eq!(
            s.stats().shots_skipped,
            0,
            "skips are attributed to the next record"
        );
        // A late reply for the abandoned shot is ignored.
        s.handle(
            t0 + ms(31_100),
            Input::ShotDone {
                slot: 0,
                outcome: ok(t0, t0),
            },
        );
        assert!(s.shot_in_flight());
    }

    #[test]
    fn timers_waking_a_little_late_neither_skip_nor_drop_a_slot() {
        // Regression: a timer that fired 0.3 ms after the due time made the machine count the
        // slot as missed, so a camera that went dark produced skips instead of failed shots and
        // a stop-after session never ended.
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(500, StopCondition::AfterShots(3), OverrunPolicy::NextSlot),
        );
        s.handle(
            t0,
            Input::CameraLost {
                reason: "gone".into(),
            },
        );
        for k in 0..3u64 {
            s.handle(
                t0 + ms(1000 + 500 * k) + Duration::from_micros(300),
                Input::Tick,
            );
        }
        let a = drain(&mut s);
        let failed = a
            .iter()
            .filter(|x| matches!(x, Action::Journal(JournalEntry::Shot(r)) if !r.ok))
            .count();
        assert_eq!(failed, 3);
        assert_eq!(ended(&a), Some(EndKind::Completed));
        assert_eq!(s.stats().shots_skipped, 0);
        // Connected: a tick 5 ms past the due time (lead time lost to a stall) still shoots it.
        let mut s = session(
            t0,
            opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        s.handle(t0 + ms(1005), Input::Tick);
        assert_eq!(shoots(&drain(&mut s)), [(0, t0 + ms(1000))]);
    }

    #[test]
    fn scheduled_start_can_be_stopped_before_it_begins() {
        let t0 = crate::clock::test_t0();
        let mut s = session(
            t0,
            opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
        );
        assert_eq!(s.state_name(), "scheduled");
        s.handle(t0 + ms(100), Input::Stop);
        assert_eq!(ended(&drain(&mut s)), Some(EndKind::Stopped));
        assert_eq!(s.poll_timeout(), None);
    }

    /// A ramp 1/125 → 1/8 over the first 8 s of a 2 s session (frames due at T0+1 s …).
    fn ramped(t0: Instant) -> Session {
        let ladders = crate::intervalometer::schedule::Ladders {
            tv: [
                "1/125", "1/100", "1/80", "1/60", "1/50", "1/40", "1/30", "1/25", "1/20", "1/15",
                "1/13", "1/10", "1/8",
            ]
            .map(String::from)
            .to_vec(),
            iso: vec!["100".into()],
            av: vec!["f8.0".into()],
        };
        let key = |s: f64, tv: &str| crate::protocol::KeyframeSpec {
            at: None,
            elapsed_seconds: Some(s),
            tv: Some(tv.into()),
            iso: None,
            av: None,
            interval: None,
            at_ms: None,
        };
        let plan = crate::intervalometer::schedule::RampPlan::build(
            &[key(0.0, "1/125"), key(8.0, "1/8")],
            T0_WALL + 1000,
            0,
            None,
            ladders,
            1.0,
        )
        .unwrap();
        let mut o = opts(2000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
        o.ramp = Some(plan);
        let mut s = session(t0, o);
        s.known = FrameSettings {
            tv: Some("1/125".into()),
            iso: Some("100".into()),
            av: Some("f8.0".into()),
        };
        s
    }

    fn changes(actions: &[Action]) -> Vec<(Vec<(String, String)>, Instant)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::ApplySettings { changes, deadline } => Some((changes.clone(), *deadline)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_ramp_changes_settings_in_the_gap_with_a_deadline_and_never_holds_a_frame() {
        let t0 = crate::clock::test_t0();
        let mut s = ramped(t0);
        // First frame (T0+1 s): the camera already has 1/125; it is handed over on time.
        s.handle(t0 + ms(700), Input::Tick);
        let a = drain(&mut s);
        assert!(changes(&a).is_empty());
        assert_eq!(shoots(&a), vec![(0, t0 + ms(1000))]);
        // Its reply at +1.1 s: the change for the frame at +3 s (2 s into the ramp: 1/125
        // + 1 stop = 1/60) goes out now, to be started no later than 3 s − lead − budget.
        s.handle(
            t0 + ms(1100),
            Input::ShotDone {
                slot: 0,
                outcome: ok(t0 + ms(1000), t0 + ms(1100)),
            },
        );
        let a = drain(&mut s);
        let c = changes(&a);
        assert_eq!(c.len(), 1, "{a:?}");
        assert_eq!(c[0].0, vec![("tv".to_string(), "1/60".to_string())]);
        assert_eq!(c[0].1, t0 + ms(3000) - DEFAULT_LEAD - RAMP_BUDGET);
        // The frame record carries the settings it was shot with and their exposure.
        let rec = a.iter().find_map(|x| match x {
            Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
            _ => None,
        });
        let rec = rec.unwrap();
        assert_eq!(rec.settings.as_ref().unwrap().tv.as_deref(), Some("1/125"));
        assert!((rec.exposure_ev.unwrap() - (-13.0)).abs() < 1e-9);
        // No second change while one is with the camera; the frame is handed over on time
        // whether or not the change came back.
        s.handle(t0 + ms(2700), Input::Tick);
        let a = drain(&mut s);
        assert!(changes(&a).is_empty());
        assert_eq!(shoots(&a), vec![(1, t0 + ms(3000))]);
        // The change came back after all: known settings follow it.
        s.handle(
            t0 + ms(2800),
            Input::SettingsApplied {
                applied: vec![("tv".into(), "1/60".into())],
                error: None,
            },
        );
        assert_eq!(s.known.tv.as_deref(), Some("1/60"));
        // A reply so late that no time is left before the next frame: the change is
        // deferred (counted), never sent late.
        s.handle(
            t0 + ms(4100),
            Input::ShotDone {
                slot: 1,
                outcome: ok(t0 + ms(3000), t0 + ms(4100)),
            },
        );
        let a = drain(&mut s);
        assert!(changes(&a).is_empty(), "{a:?}");
        assert_eq!(s.ramp_deferred, 1);
        s.handle(t0 + ms(4700), Input::Tick);
        let a = drain(&mut s);
        assert!(changes(&a).is_empty(), "{a:?}");
        assert_eq!(shoots(&a), vec![(2, t0 + ms(5000))]);
    }
}
