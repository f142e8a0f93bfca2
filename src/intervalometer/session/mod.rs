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
//!
//! Here: the states and the timing rules. [`types`]: inputs, actions, records; [`stats`]:
//! counters; `ramp`: settings changes and auto-ramp; `files`: file names and lost replies;
//! `blocks`: what clients see.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::camera::{ShotOutcome, ShotRequest};
use crate::protocol::status::{
    IntervalometerBlock, OutageBlock, SessionBlock, SessionOptionsBlock, SessionStats, TimingStats,
};
use crate::util::iso8601_millis;

mod blocks;
mod files;
mod ramp;
mod stats;
mod types;

pub use stats::{percentile_index, Stats};
pub use types::*;

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
mod tests;
