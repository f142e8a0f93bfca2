//! The camera link machine (sans-IO): is the camera there, and when do we look again?
//!
//! ```text
//!                  SetTarget / Adopt
//!   ┌────────────┐ ───────────────────▶ ┌─────────┐  ProbeOk   ┌───────────┐
//!   │disconnected│                      │ probing │ ─────────▶ │ connected │◀─┐ HealthOk /
//!   └────────────┘ ◀── ClearTarget ──── └─────────┘            └───────────┘──┘ OperationOk
//!                                         ▲     │ ProbeFailed /      │  3 health misses
//!        retry_at reached, SsdpAlive(id), │     │ probe deadline     │  (or ConnectionLost)
//!        SetTarget (re-target)            │     ▼                    ▼
//!                                       ┌─────────┐ ◀────────────────┘
//!                                       │ backoff │   attempt 0 after a loss, +1 per failure
//!                                       └─────────┘
//! ```
//!
//! Deadlines are absolute instants carried by the states. Connected: no deadline here. The
//! control worker, which owns the warm connection, runs the health checks itself on the
//! schedule of [`health_due`] (a check every [`HEALTH_INTERVAL`] on the clock's tick grid,
//! none inside the quiet window around a reserved shot) and reports only what changes the
//! link: a miss, or the first answer after misses. So an idle minute costs the link no
//! wake-up at all (issue 13).
//! Backoff: `Backoff::CAMERA` (5, 10, 20, 40, 60 s, ±10 % jitter from a seeded [`Rng`]),
//! reset on success; an SSDP alive from the target cuts the wait short.

use std::time::{Duration, Instant};

use crate::backoff::{Backoff, Rng};

/// Time between health checks while connected and idle.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Missed health checks in a row that mean the link is lost.
pub const MAX_MISSES: u8 = 3;
/// A probe that has not answered by then counts as failed (the driver's own call timeouts are
/// shorter; this only guards against a lost answer).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(30);
/// No health check may start this long before a reserved shot...
pub const QUIET_BEFORE: Duration = Duration::from_secs(3);
/// ...and one postponed by a shot starts this long after it.
pub const QUIET_AFTER: Duration = Duration::from_millis(200);

/// When the next health check is due, for the worker that runs them.
///
/// `last`: when the camera last answered (any request) or was last checked; `None` (just
/// connected) is now, for fresh status. Otherwise the first point of the grid
/// `anchor + k × HEALTH_INTERVAL` (the clock's tick anchor, where the hub's 10 s
/// status_update falls too) at least half an interval after `last`: 10 s apart while idle,
/// never drifting by the check's own duration. `reserved`: a shot due then; a check that
/// would start less than [`QUIET_BEFORE`] ahead of it (or while it is in flight) waits until
/// `reserved + QUIET_AFTER`, so it queues behind the shot instead of in front of it.
pub fn health_due(
    anchor: Instant,
    now: Instant,
    last: Option<Instant>,
    reserved: Option<Instant>,
) -> Instant {
    let due = match last {
        None => now,
        Some(t) => crate::clock::next_tick(anchor, HEALTH_INTERVAL, t + HEALTH_INTERVAL / 2),
    };
    match reserved {
        Some(shot) if shot + QUIET_AFTER > due && shot < due.max(now) + QUIET_BEFORE => {
            shot + QUIET_AFTER
        }
        _ => due,
    }
}

/// The camera the link aims at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// CCAPI base URL, e.g. `https://192.168.1.2:443/ccapi`.
    pub url: String,
    /// UDN or serial when known (discovery knows it; a manual address does not, yet).
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Disconnected,
    Probing {
        deadline: Instant,
    },
    Connected {
        /// Health checks missed in a row (the worker reports each miss).
        misses: u8,
    },
    Backoff {
        retry_at: Instant,
    },
}

impl State {
    /// The name PROTOCOL.md's `camera.state` uses.
    pub fn name(&self) -> &'static str {
        match self {
            State::Disconnected => "disconnected",
            State::Probing { .. } => "probing",
            State::Connected { .. } => "connected",
            State::Backoff { .. } => "backoff",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Aim at this camera (discovery's primary, configuration, or an address change).
    SetTarget(Target),
    /// Forget the target.
    ClearTarget,
    /// A probe already succeeded elsewhere (manual `connect_to`): adopt the link.
    Adopt(Target),
    /// Discovery heard an SSDP alive from this camera id.
    SsdpAlive {
        id: String,
    },
    /// Retry at once if backing off (the user accepted a new certificate).
    RetryNow,
    ProbeOk {
        id: String,
    },
    ProbeFailed {
        reason: String,
    },
    /// A health check answered (reported after misses only: nothing else to do).
    HealthOk,
    /// A health check failed.
    HealthFailed {
        reason: String,
    },
    /// Another request succeeded: the camera is evidently there (after misses only).
    OperationOk,
    /// Another request found the camera gone (refused, unreachable, timed out).
    ConnectionLost {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Probe `target` (resolve `/ccapi`, read device information) and answer ProbeOk/Failed.
    Probe(Target),
    /// The link came up.
    Connected { id: String },
    /// The link went down.
    Lost { reason: String },
    /// The state changed (for the status block).
    StateChanged,
}

pub struct LinkMachine {
    state: State,
    target: Option<Target>,
    /// Failed attempts since the last success (index into the backoff schedule).
    attempt: u32,
    backoff: Backoff,
    rng: Rng,
    actions: Vec<Action>,
    /// For the status block: the last failure reason.
    last_error: Option<String>,
}

impl LinkMachine {
    pub fn new(backoff: Backoff, rng: Rng) -> Self {
        LinkMachine {
            state: State::Disconnected,
            target: None,
            attempt: 0,
            backoff,
            rng,
            actions: Vec::new(),
            last_error: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// When the next retry is due, while backing off.
    pub fn next_retry_at(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            None
        } else {
            Some(self.actions.remove(0))
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Disconnected => None,
            State::Probing { deadline } => Some(deadline),
            State::Connected { .. } => None,
            State::Backoff { retry_at } => Some(retry_at),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        let before = self.state.name();
        match (&mut self.state, input) {
            (_, Input::SetTarget(t)) => {
                let same = self.target.as_ref() == Some(&t);
                if same && !matches!(self.state, State::Disconnected | State::Backoff { .. }) {
                    // Nothing new: keep the link (discovery repeats itself).
                } else {
                    self.target = Some(t);
                    self.attempt = 0;
                    self.start_probe(now);
                }
            }
            (_, Input::ClearTarget) => {
                self.target = None;
                self.state = State::Disconnected;
            }
            (_, Input::Adopt(t)) => {
                let id = t.id.clone().unwrap_or_default();
                self.target = Some(t);
                self.connected(id);
            }
            (State::Backoff { .. }, Input::SsdpAlive { id }) => {
                if self.target_id() == Some(id.as_str()) {
                    self.start_probe(now);
                }
            }
            (_, Input::SsdpAlive { .. }) => {}
            (State::Backoff { .. }, Input::RetryNow) => self.start_probe(now),
            (_, Input::RetryNow) => {}
            (State::Probing { .. }, Input::ProbeOk { id }) => self.connected(id),
            (State::Probing { .. }, Input::ProbeFailed { reason }) => self.fail(now, reason),
            (_, Input::ProbeOk { .. } | Input::ProbeFailed { .. }) => {
                // A stale answer from before a re-target: ignore.
            }
            (State::Connected { misses }, Input::HealthOk | Input::OperationOk) => {
                *misses = 0;
                self.last_error = None;
            }
            (State::Connected { misses }, Input::HealthFailed { reason }) => {
                *misses = misses.saturating_add(1);
                let lost = *misses >= MAX_MISSES;
                self.last_error = Some(reason.clone());
                if lost {
                    self.lose(now, format!("{MAX_MISSES} health checks missed: {reason}"));
                }
            }
            (_, Input::HealthOk | Input::HealthFailed { .. } | Input::OperationOk) => {}
            (State::Connected { .. }, Input::ConnectionLost { reason }) => self.lose(now, reason),
            (_, Input::ConnectionLost { .. }) => {}
        }
        self.check_deadlines(now);
        if self.state.name() != before {
            self.actions.push(Action::StateChanged);
        }
    }

    /// Feeds the passage of time: call when `poll_timeout()` is reached (or any time).
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.state.name();
        self.check_deadlines(now);
        if self.state.name() != before {
            self.actions.push(Action::StateChanged);
        }
    }

    fn check_deadlines(&mut self, now: Instant) {
        match &mut self.state {
            State::Disconnected => {}
            State::Probing { deadline } => {
                if now >= *deadline {
                    self.fail(now, "camera did not answer the probe".into());
                }
            }
            State::Connected { .. } => {}
            State::Backoff { retry_at } => {
                if now >= *retry_at {
                    self.start_probe(now);
                }
            }
        }
    }

    fn target_id(&self) -> Option<&str> {
        self.target.as_ref().and_then(|t| t.id.as_deref())
    }

    fn start_probe(&mut self, now: Instant) {
        match &self.target {
            Some(t) => {
                self.actions.push(Action::Probe(t.clone()));
                self.state = State::Probing {
                    deadline: now + PROBE_DEADLINE,
                };
            }
            None => self.state = State::Disconnected,
        }
    }

    fn connected(&mut self, id: String) {
        if let Some(t) = &mut self.target {
            if t.id.is_none() && !id.is_empty() {
                t.id = Some(id.clone());
            }
        }
        self.attempt = 0;
        self.last_error = None;
        self.state = State::Connected { misses: 0 };
        self.actions.push(Action::Connected { id });
    }

    fn fail(&mut self, now: Instant, reason: String) {
        let delay = self.backoff.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        self.last_error = Some(reason);
        self.state = State::Backoff {
            retry_at: now + delay,
        };
    }

    fn lose(&mut self, now: Instant, reason: String) {
        self.attempt = 0;
        self.actions.push(Action::Lost {
            reason: reason.clone(),
        });
        self.fail(now, reason);
    }
}

impl crate::machine::Machine for LinkMachine {
    type Input = Input;
    type Action = Action;
    fn handle_input(&mut self, now: crate::machine::Now, input: Input) {
        self.handle(now.mono, input)
    }
    fn handle_timeout(&mut self, now: crate::machine::Now) {
        LinkMachine::handle_timeout(self, now.mono)
    }
    fn poll_action(&mut self) -> Option<Action> {
        LinkMachine::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        LinkMachine::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link connected to the test camera at `t0`, its actions drained.
    fn connected_at(t0: Instant) -> LinkMachine {
        let mut m = exact();
        m.handle(t0, Input::SetTarget(target()));
        m.handle(
            t0,
            Input::ProbeOk {
                id: "uuid:cam".into(),
            },
        );
        drain(&mut m);
        m
    }

    fn exact() -> LinkMachine {
        LinkMachine::new(
            Backoff {
                jitter: 0.0,
                ..Backoff::CAMERA
            },
            Rng::new(0),
        )
    }

    fn target() -> Target {
        Target {
            url: "https://127.0.0.2:443/ccapi".into(),
            id: Some("uuid:cam".into()),
        }
    }

    fn drain(m: &mut LinkMachine) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn health_checks_on_a_grid_stay_on_it_whatever_the_answer_takes() {
        // Regression (issue 5): checks were scheduled 10 s after each *answer*, so they
        // drifted by the check's duration and never shared a wake-up with the hub's tick.
        let anchor = crate::clock::test_t0();
        let ms = Duration::from_millis;
        // Just connected: a check at once (fresh battery, storage, temperature).
        let connected = anchor + ms(190);
        assert_eq!(health_due(anchor, connected, None, None), connected);
        // Answered 40 ms later: the next on the grid, 5…15 s on.
        assert_eq!(
            health_due(anchor, connected, Some(connected + ms(40)), None),
            anchor + s(10)
        );
        for k in 1..4u32 {
            let slot = anchor + s(10) * k;
            // However long the check took, the next one is on the grid.
            for took in [ms(1), ms(40), ms(900)] {
                assert_eq!(
                    health_due(anchor, slot + took, Some(slot + took), None),
                    slot + s(10)
                );
            }
        }
        // An operation at 46 s defers the next check to the grid point 5…15 s later.
        assert_eq!(
            health_due(anchor, anchor + s(46), Some(anchor + s(46)), None),
            anchor + s(60)
        );
    }

    #[test]
    fn set_target_probes_and_the_connected_link_waits_on_nothing() {
        let t0 = crate::clock::test_t0();
        let mut m = exact();
        assert_eq!(m.poll_timeout(), None);
        m.handle(t0, Input::SetTarget(target()));
        assert_eq!(
            drain(&mut m),
            [Action::Probe(target()), Action::StateChanged]
        );
        assert_eq!(m.poll_timeout(), Some(t0 + PROBE_DEADLINE));
        m.handle(
            t0 + s(1),
            Input::ProbeOk {
                id: "uuid:cam".into(),
            },
        );
        assert_eq!(
            drain(&mut m),
            [
                Action::Connected {
                    id: "uuid:cam".into()
                },
                Action::StateChanged
            ]
        );
        // The worker runs the health checks: the machine sleeps until told something.
        assert_eq!(m.poll_timeout(), None);
        m.handle_timeout(t0 + s(3600));
        assert_eq!(drain(&mut m), []);
        assert!(m.is_connected());
    }

    #[test]
    fn three_misses_lose_the_link_and_backoff_doubles_to_the_cap() {
        let t0 = crate::clock::test_t0();
        let mut m = connected_at(t0);
        // A miss then an answer: the count starts again.
        m.handle(
            t0 + s(5),
            Input::HealthFailed {
                reason: "timeout".into(),
            },
        );
        m.handle(t0 + s(6), Input::HealthOk);
        assert_eq!(m.state(), &State::Connected { misses: 0 });
        let mut now = t0;
        for miss in 1..=3u64 {
            now = t0 + s(10 * miss);
            assert!(m.is_connected());
            m.handle(
                now,
                Input::HealthFailed {
                    reason: "timeout".into(),
                },
            );
        }
        assert_eq!(
            drain(&mut m),
            [
                Action::Lost {
                    reason: "3 health checks missed: timeout".into()
                },
                Action::StateChanged
            ]
        );
        assert_eq!(now, t0 + s(30));
        // The whole reconnect schedule: 5, 10, 20, 40, 60, 60 s after each failed probe.
        let mut expected = now;
        for delay in [5, 10, 20, 40, 60, 60] {
            expected += s(delay);
            assert_eq!(m.poll_timeout(), Some(expected));
            assert_eq!(m.next_retry_at(), Some(expected));
            m.handle_timeout(expected - Duration::from_millis(1));
            assert_eq!(drain(&mut m), []);
            m.handle_timeout(expected);
            assert_eq!(
                drain(&mut m),
                [Action::Probe(target()), Action::StateChanged]
            );
            m.handle(
                expected,
                Input::ProbeFailed {
                    reason: "refused".into(),
                },
            );
            assert_eq!(drain(&mut m), [Action::StateChanged]);
        }
        // Success resets the schedule: the next loss starts at 5 s again.
        let back = expected + s(60);
        m.handle_timeout(back);
        drain(&mut m);
        m.handle(
            back,
            Input::ProbeOk {
                id: "uuid:cam".into(),
            },
        );
        drain(&mut m);
        m.handle(
            back + s(1),
            Input::ConnectionLost {
                reason: "reset".into(),
            },
        );
        assert_eq!(m.next_retry_at(), Some(back + s(6)));
    }

    #[test]
    fn ssdp_alive_from_the_target_retries_at_once() {
        let t0 = crate::clock::test_t0();
        let mut m = exact();
        m.handle(t0, Input::SetTarget(target()));
        m.handle(
            t0,
            Input::ProbeFailed {
                reason: "refused".into(),
            },
        );
        m.handle_timeout(t0 + s(5));
        m.handle(
            t0 + s(5),
            Input::ProbeFailed {
                reason: "refused".into(),
            },
        );
        assert_eq!(m.next_retry_at(), Some(t0 + s(15)));
        drain(&mut m);
        // Another camera's alive changes nothing.
        m.handle(
            t0 + s(6),
            Input::SsdpAlive {
                id: "uuid:other".into(),
            },
        );
        assert_eq!(drain(&mut m), []);
        m.handle(
            t0 + s(6),
            Input::SsdpAlive {
                id: "uuid:cam".into(),
            },
        );
        assert_eq!(
            drain(&mut m),
            [Action::Probe(target()), Action::StateChanged]
        );
        assert_eq!(m.state().name(), "probing");
    }

    #[test]
    fn address_change_retargets_immediately() {
        let t0 = crate::clock::test_t0();
        let mut m = connected_at(t0);
        // The same target again is a no-op...
        m.handle(t0 + s(1), Input::SetTarget(target()));
        assert_eq!(drain(&mut m), []);
        // ...a new address probes it now.
        let moved = Target {
            url: "https://127.0.0.3:443/ccapi".into(),
            ..target()
        };
        m.handle(t0 + s(2), Input::SetTarget(moved.clone()));
        assert_eq!(drain(&mut m), [Action::Probe(moved), Action::StateChanged]);
        // A late answer to the old probe is not mistaken for the new one.
        m.handle(t0 + s(2), Input::HealthOk);
        assert_eq!(m.state().name(), "probing");
    }

    #[test]
    fn probe_without_answer_fails_at_its_deadline() {
        let t0 = crate::clock::test_t0();
        let mut m = exact();
        m.handle(t0, Input::SetTarget(target()));
        drain(&mut m);
        m.handle_timeout(t0 + PROBE_DEADLINE);
        assert_eq!(drain(&mut m), [Action::StateChanged]);
        assert_eq!(m.next_retry_at(), Some(t0 + PROBE_DEADLINE + s(5)));
    }

    #[test]
    fn health_check_waits_out_a_reserved_shot() {
        let t0 = crate::clock::test_t0();
        // A shot reserved for 10.1 s: the check due at 10 s would be in flight at the shot,
        // so it moves to 10.1 s + QUIET_AFTER.
        let shot = t0 + Duration::from_millis(10_100);
        let last = Some(t0 + s(1));
        assert_eq!(health_due(t0, t0 + s(2), last, None), t0 + s(10));
        assert_eq!(
            health_due(t0, t0 + Duration::from_millis(9_800), last, Some(shot)),
            shot + QUIET_AFTER
        );
        // Also when the check is late (the worker was busy) and the shot is in flight.
        assert_eq!(
            health_due(t0, t0 + Duration::from_millis(10_150), last, Some(shot)),
            shot + QUIET_AFTER
        );
        // A shot long past, or far ahead, changes nothing.
        assert_eq!(health_due(t0, t0 + s(2), last, Some(t0)), t0 + s(10));
        assert_eq!(
            health_due(t0, t0 + s(2), last, Some(t0 + s(14))),
            t0 + s(10)
        );
    }

    #[test]
    fn operations_count_as_health() {
        let t0 = crate::clock::test_t0();
        let mut m = connected_at(t0);
        m.handle(
            t0 + s(8),
            Input::HealthFailed {
                reason: "timeout".into(),
            },
        );
        assert_eq!(m.state(), &State::Connected { misses: 1 });
        m.handle(t0 + s(9), Input::OperationOk);
        assert_eq!(m.state(), &State::Connected { misses: 0 });
        assert_eq!(m.last_error(), None);
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let t0 = crate::clock::test_t0();
        let mut a = LinkMachine::new(Backoff::CAMERA, Rng::new(42));
        let mut b = LinkMachine::new(Backoff::CAMERA, Rng::new(42));
        for m in [&mut a, &mut b] {
            m.handle(t0, Input::SetTarget(target()));
            m.handle(t0, Input::ProbeFailed { reason: "x".into() });
        }
        assert_eq!(a.next_retry_at(), b.next_retry_at());
        let d = a.next_retry_at().unwrap() - t0;
        assert!(d >= Duration::from_millis(4500) && d < Duration::from_millis(5500));
    }
}
