//! The Wi-Fi machine (sans-IO): the connect flow, the scan flow, and coalesced status refresh.
//!
//! ```text
//!  connect flow (one attempt at a time; a new Connect supersedes the running one)
//!
//!          Connect{ssid,pw} / emit started, Activate
//!   Idle ───────────────────────────────▶ Connecting{ssid, deadline, started, last}
//!   Connected ─────────┘                     │  ActivationStarted → started = true
//!   Failed ────────────┘                     │  DeviceState(Activated, ours)
//!     ▲  ActivationRejected / DeviceState(Failed) / Cancel / NmLost / deadline
//!     ├──────────────────────────────────────┤
//!     │                                      ▼ ReadAddress
//!     │                                   Verifying{ssid, deadline}
//!     │  DeviceState(Failed|Disconnected)    │  Address(Some ip) / emit connected
//!     ├──────────── / deadline ──────────────┤
//!     │                                      ▼
//!   Failed{ssid} (emit connection_failed)  Connected{ssid}
//!
//!  scan flow
//!   Idle ──Scan{refresh}──▶ Waiting{baseline, deadline} ──LastScan ≠ baseline──▶ Idle
//!    │  (RequestScan)            │ ScanRequestFailed / deadline (ListNetworks) ──▶ Idle
//!    └──Scan{!refresh} / ListNetworks──▶ Idle
//! ```
//!
//! Everything is driven by inputs the driver derives from D-Bus signals, with one deadline per
//! flow; there are no fixed sleeps. `Changed` (any NM property change) schedules one coalesced
//! `RefreshStatus` a moment later, so a burst of signals costs one round of reads.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::protocol::Secret;
use crate::wifi::nm::{DeviceState, DeviceStateReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From `network_connect` to a verified address.
    pub connect_timeout: Duration,
    /// From `RequestScan` to listing, when `LastScan` never moves.
    pub scan_timeout: Duration,
    /// How long a burst of property changes is gathered before one status refresh.
    pub refresh_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            connect_timeout: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(5),
            refresh_delay: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `network_connect`, already allowed by policy.
    Connect {
        ssid: String,
        password: Option<Secret>,
    },
    /// NM accepted the activation request.
    ActivationStarted,
    /// NM refused the activation request (the D-Bus error, secret-free).
    ActivationRejected { error: String },
    /// The client device changed state. `ours`: its active connection is the one we started.
    DeviceState {
        state: DeviceState,
        reason: DeviceStateReason,
        ours: bool,
    },
    /// The client interface's address, read after `ReadAddress` (None: none yet).
    Address {
        ip: Option<Ipv4Addr>,
        signal: Option<u8>,
    },
    /// A disconnect or radio-off cut the attempt short.
    Cancel { reason: String },
    /// NetworkManager left the bus.
    NmLost,
    /// `network_scan`.
    Scan { refresh: bool },
    /// `RequestScan` returned; `baseline` is `LastScan` read just before it (None: unknown).
    ScanStarted { baseline: Option<i64> },
    /// `RequestScan` failed (NM rate-limits scans): list what NM already knows.
    ScanRequestFailed,
    /// `LastScan` changed.
    LastScan(i64),
    /// Some NM property changed: refresh the status block soon.
    Changed,
    /// Nothing happened but time passed (the driver's timer fired).
    Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Activate a saved profile for `ssid`, or add one with the password.
    Activate {
        ssid: String,
        password: Option<Secret>,
    },
    /// Read the client interface's IPv4 address and signal, answer with `Input::Address`.
    ReadAddress,
    /// Read `LastScan`, call `RequestScan`, answer with `ScanStarted`/`ScanRequestFailed`.
    RequestScan,
    /// List the access points and answer every waiting scan request.
    ListNetworks,
    /// Re-read the status block.
    RefreshStatus,
    Emit(WifiEvent),
}

/// `network_event`s of the connect flow.
#[derive(Debug, Clone, PartialEq)]
pub enum WifiEvent {
    ConnectionStarted {
        ssid: String,
    },
    Connected {
        ssid: String,
        ip: Ipv4Addr,
        signal: Option<u8>,
    },
    ConnectionFailed {
        ssid: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectState {
    Idle,
    Connecting {
        ssid: String,
        deadline: Instant,
        /// NM accepted the request: device states now belong to this attempt.
        started: bool,
        /// Last device state seen, for the timeout message.
        last: Option<DeviceState>,
    },
    Verifying {
        ssid: String,
        deadline: Instant,
    },
    Connected {
        ssid: String,
    },
    Failed {
        ssid: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScanState {
    Idle,
    Waiting {
        baseline: Option<i64>,
        deadline: Instant,
    },
}

pub struct WifiMachine {
    timing: Timing,
    connect: ConnectState,
    scan: ScanState,
    refresh_due: Option<Instant>,
    actions: std::collections::VecDeque<Action>,
}

impl WifiMachine {
    pub fn new(timing: Timing) -> Self {
        WifiMachine {
            timing,
            connect: ConnectState::Idle,
            scan: ScanState::Idle,
            refresh_due: None,
            actions: Default::default(),
        }
    }

    pub fn connect_state(&self) -> &ConnectState {
        &self.connect
    }

    pub fn scan_state(&self) -> &ScanState {
        &self.scan
    }

    /// The SSID of the attempt in progress, if any.
    pub fn connecting_to(&self) -> Option<&str> {
        match &self.connect {
            ConnectState::Connecting { ssid, .. } | ConnectState::Verifying { ssid, .. } => {
                Some(ssid)
            }
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let connect = match &self.connect {
            ConnectState::Connecting { deadline, .. }
            | ConnectState::Verifying { deadline, .. } => Some(*deadline),
            _ => None,
        };
        let scan = match &self.scan {
            ScanState::Waiting { deadline, .. } => Some(*deadline),
            ScanState::Idle => None,
        };
        [connect, scan, self.refresh_due]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Scan { refresh } => self.on_scan(now, refresh),
            Input::ScanStarted { baseline } => {
                if let ScanState::Waiting { deadline, .. } = self.scan {
                    self.scan = ScanState::Waiting { baseline, deadline };
                }
            }
            Input::ScanRequestFailed => self.finish_scan(),
            Input::LastScan(v) => {
                if let ScanState::Waiting { baseline, .. } = self.scan {
                    if baseline != Some(v) {
                        self.finish_scan();
                    }
                }
            }
            Input::Changed => {
                if self.refresh_due.is_none() {
                    self.refresh_due = Some(now + self.timing.refresh_delay);
                }
                if matches!(self.connect, ConnectState::Verifying { .. }) {
                    self.actions.push_back(Action::ReadAddress);
                }
            }
            Input::NmLost => {
                self.scan = ScanState::Idle;
                self.refresh_due = None;
                self.fail_attempt("NetworkManager left the system bus".into());
            }
            Input::Tick => {}
            other => self.on_connect_input(now, other),
        }
        self.check_deadlines(now);
    }

    fn on_scan(&mut self, now: Instant, refresh: bool) {
        match (&self.scan, refresh) {
            // A scan already runs: this request is answered with it.
            (ScanState::Waiting { .. }, _) => {}
            (ScanState::Idle, true) => {
                self.scan = ScanState::Waiting {
                    baseline: None,
                    deadline: now + self.timing.scan_timeout,
                };
                self.actions.push_back(Action::RequestScan);
            }
            (ScanState::Idle, false) => self.actions.push_back(Action::ListNetworks),
        }
    }

    fn finish_scan(&mut self) {
        if let ScanState::Waiting { .. } = self.scan {
            self.scan = ScanState::Idle;
            self.actions.push_back(Action::ListNetworks);
        }
    }

    fn on_connect_input(&mut self, now: Instant, input: Input) {
        let state = std::mem::replace(&mut self.connect, ConnectState::Idle);
        self.connect = match (state, input) {
            (old, Input::Connect { ssid, password }) => {
                if let ConnectState::Connecting { ssid: prev, .. }
                | ConnectState::Verifying { ssid: prev, .. } = old
                {
                    self.emit(WifiEvent::ConnectionFailed {
                        ssid: prev,
                        error: "superseded by a new connection request".into(),
                    });
                }
                self.emit(WifiEvent::ConnectionStarted { ssid: ssid.clone() });
                self.actions.push_back(Action::Activate {
                    ssid: ssid.clone(),
                    password,
                });
                ConnectState::Connecting {
                    ssid,
                    deadline: now + self.timing.connect_timeout,
                    started: false,
                    last: None,
                }
            }
            (
                ConnectState::Connecting {
                    ssid,
                    deadline,
                    last,
                    ..
                },
                Input::ActivationStarted,
            ) => ConnectState::Connecting {
                ssid,
                deadline,
                started: true,
                last,
            },
            (ConnectState::Connecting { ssid, .. }, Input::ActivationRejected { error }) => {
                self.failed(ssid, error)
            }
            (
                ConnectState::Connecting {
                    ssid,
                    deadline,
                    started: true,
                    ..
                },
                Input::DeviceState {
                    state,
                    reason,
                    ours,
                    ..
                },
            ) => match state {
                DeviceState::Activated if ours => {
                    self.actions.push_back(Action::ReadAddress);
                    ConnectState::Verifying { ssid, deadline }
                }
                DeviceState::Failed => self.failed(ssid, reason.text()),
                _ => ConnectState::Connecting {
                    ssid,
                    deadline,
                    started: true,
                    last: Some(state),
                },
            },
            (
                ConnectState::Verifying { ssid, deadline },
                Input::DeviceState { state, reason, .. },
            ) => match state {
                DeviceState::Failed | DeviceState::Disconnected | DeviceState::Deactivating => {
                    self.failed(ssid, reason.text())
                }
                _ => ConnectState::Verifying { ssid, deadline },
            },
            (ConnectState::Verifying { ssid, deadline }, Input::Address { ip, signal }) => match ip
            {
                Some(ip) => {
                    self.emit(WifiEvent::Connected {
                        ssid: ssid.clone(),
                        ip,
                        signal,
                    });
                    ConnectState::Connected { ssid }
                }
                None => ConnectState::Verifying { ssid, deadline },
            },
            (
                ConnectState::Connecting { ssid, .. } | ConnectState::Verifying { ssid, .. },
                Input::Cancel { reason },
            ) => self.failed(ssid, reason),
            // Inputs that do not concern the current state (late signals, stray addresses).
            (state, _) => state,
        };
    }

    fn check_deadlines(&mut self, now: Instant) {
        let secs = self.timing.connect_timeout.as_secs();
        match &self.connect {
            ConnectState::Connecting {
                ssid,
                deadline,
                last,
                ..
            } if now >= *deadline => {
                let seen = last.map(|s| s.as_str()).unwrap_or("no progress reported");
                let error = format!(
                    "timed out after {secs} s waiting for NetworkManager (last state: {seen})"
                );
                self.connect = self.failed(ssid.clone(), error);
            }
            ConnectState::Verifying { ssid, deadline } if now >= *deadline => {
                let error = format!("connected, but no IPv4 address within {secs} s");
                self.connect = self.failed(ssid.clone(), error);
            }
            _ => {}
        }
        if let ScanState::Waiting { deadline, .. } = self.scan {
            if now >= deadline {
                self.finish_scan();
            }
        }
        if let Some(due) = self.refresh_due {
            if now >= due {
                self.refresh_due = None;
                self.actions.push_back(Action::RefreshStatus);
            }
        }
    }

    fn fail_attempt(&mut self, error: String) {
        if let Some(ssid) = self.connecting_to().map(str::to_string) {
            self.connect = self.failed(ssid, error);
        }
    }

    fn failed(&mut self, ssid: String, error: String) -> ConnectState {
        self.emit(WifiEvent::ConnectionFailed {
            ssid: ssid.clone(),
            error: error.clone(),
        });
        ConnectState::Failed { ssid, error }
    }

    fn emit(&mut self, e: WifiEvent) {
        self.actions.push_back(Action::Emit(e));
    }
}

impl crate::machine::Machine for WifiMachine {
    type Input = Input;
    type Action = Action;
    fn handle_input(&mut self, now: crate::machine::Now, input: Input) {
        self.handle(now.mono, input)
    }
    fn handle_timeout(&mut self, now: crate::machine::Now) {
        self.handle(now.mono, Input::Tick)
    }
    fn poll_action(&mut self) -> Option<Action> {
        WifiMachine::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        WifiMachine::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut WifiMachine) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn connect(m: &mut WifiMachine, t0: Instant) {
        m.handle(
            t0,
            Input::Connect {
                ssid: "Home".into(),
                password: Some(Secret::new("hunter22")),
            },
        );
    }

    fn dev(state: u32, reason: u32, ours: bool) -> Input {
        Input::DeviceState {
            state: DeviceState::from_u32(state),
            reason: DeviceStateReason::from_u32(reason),
            ours,
        }
    }

    #[test]
    fn connect_succeeds_only_after_activation_and_an_address() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        let a = drain(&mut m);
        assert_eq!(
            a[0],
            Action::Emit(WifiEvent::ConnectionStarted {
                ssid: "Home".into()
            })
        );
        assert!(matches!(&a[1], Action::Activate { ssid, password: Some(_) } if ssid == "Home"));
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(30)));

        // The old connection's activation (before NM accepted ours) does not count.
        m.handle(t0, dev(100, 0, false));
        assert!(drain(&mut m).is_empty());
        m.handle(t0, Input::ActivationStarted);
        m.handle(t0 + Duration::from_secs(1), dev(60, 0, true));
        m.handle(t0 + Duration::from_secs(2), dev(100, 0, false));
        assert!(
            drain(&mut m).is_empty(),
            "activated, but not our connection"
        );
        m.handle(t0 + Duration::from_secs(3), dev(100, 0, true));
        assert_eq!(drain(&mut m), vec![Action::ReadAddress]);
        m.handle(
            t0 + Duration::from_secs(3),
            Input::Address {
                ip: None,
                signal: None,
            },
        );
        assert!(drain(&mut m).is_empty());
        // The address arrives by a property change: Changed asks for a new read.
        m.handle(t0 + Duration::from_secs(4), Input::Changed);
        assert_eq!(drain(&mut m), vec![Action::ReadAddress]);
        let ip = Ipv4Addr::new(192, 168, 1, 20);
        m.handle(
            t0 + Duration::from_secs(4),
            Input::Address {
                ip: Some(ip),
                signal: Some(70),
            },
        );
        assert_eq!(
            drain(&mut m),
            vec![Action::Emit(WifiEvent::Connected {
                ssid: "Home".into(),
                ip,
                signal: Some(70)
            })]
        );
        assert_eq!(
            m.connect_state(),
            &ConnectState::Connected {
                ssid: "Home".into()
            }
        );
        // The refresh scheduled by Changed is the only deadline left.
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + Duration::from_secs(4) + Duration::from_millis(100))
        );
    }

    #[test]
    fn device_failure_carries_nm_reason() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        m.handle(t0, Input::ActivationStarted);
        drain(&mut m);
        m.handle(t0 + Duration::from_secs(5), dev(120, 7, false));
        let a = drain(&mut m);
        assert_eq!(a.len(), 1);
        let Action::Emit(WifiEvent::ConnectionFailed { ssid, error }) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(ssid, "Home");
        assert!(error.contains("no secrets"), "{error}");
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn rejected_activation_fails_at_once() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        drain(&mut m);
        m.handle(
            t0,
            Input::ActivationRejected {
                error: "No suitable device found".into(),
            },
        );
        assert!(matches!(
            m.connect_state(),
            ConnectState::Failed { error, .. } if error == "No suitable device found"
        ));
    }

    #[test]
    fn connect_times_out_at_the_deadline_exactly() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        m.handle(t0, Input::ActivationStarted);
        m.handle(t0 + Duration::from_secs(2), dev(60, 0, true));
        drain(&mut m);
        let deadline = m.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Duration::from_secs(30));
        m.handle(deadline - Duration::from_millis(1), Input::Tick);
        assert!(drain(&mut m).is_empty());
        m.handle(deadline, Input::Tick);
        let a = drain(&mut m);
        assert!(
            matches!(&a[..], [Action::Emit(WifiEvent::ConnectionFailed { error, .. })]
                if error.contains("timed out after 30 s") && error.contains("need-auth")),
            "{a:?}"
        );
    }

    #[test]
    fn verifying_times_out_without_address() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        m.handle(t0, Input::ActivationStarted);
        m.handle(t0, dev(100, 0, true));
        drain(&mut m);
        m.handle(t0 + Duration::from_secs(30), Input::Tick);
        assert!(matches!(
            m.connect_state(),
            ConnectState::Failed { error, .. } if error.contains("no IPv4 address")
        ));
    }

    #[test]
    fn new_connect_supersedes_and_cancel_and_nm_loss_fail_the_attempt() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        connect(&mut m, t0);
        drain(&mut m);
        m.handle(
            t0,
            Input::Connect {
                ssid: "Other".into(),
                password: None,
            },
        );
        let a = drain(&mut m);
        assert!(
            matches!(&a[0], Action::Emit(WifiEvent::ConnectionFailed { ssid, .. }) if ssid == "Home")
        );
        assert_eq!(m.connecting_to(), Some("Other"));
        m.handle(
            t0,
            Input::Cancel {
                reason: "Wi-Fi was disabled".into(),
            },
        );
        assert!(matches!(m.connect_state(), ConnectState::Failed { ssid, .. } if ssid == "Other"));
        drain(&mut m);
        connect(&mut m, t0);
        drain(&mut m);
        m.handle(t0, Input::NmLost);
        let a = drain(&mut m);
        assert!(
            matches!(&a[..], [Action::Emit(WifiEvent::ConnectionFailed { error, .. })] if error.contains("left"))
        );
    }

    #[test]
    fn scan_lists_when_last_scan_moves_or_at_the_deadline() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        m.handle(t0, Input::Scan { refresh: false });
        assert_eq!(drain(&mut m), vec![Action::ListNetworks]);

        m.handle(t0, Input::Scan { refresh: true });
        assert_eq!(drain(&mut m), vec![Action::RequestScan]);
        m.handle(t0, Input::Scan { refresh: true });
        assert!(drain(&mut m).is_empty(), "joined the running scan");
        m.handle(
            t0,
            Input::ScanStarted {
                baseline: Some(100),
            },
        );
        m.handle(t0, Input::LastScan(100));
        assert!(drain(&mut m).is_empty(), "same LastScan: not finished");
        m.handle(t0 + Duration::from_secs(2), Input::LastScan(2100));
        assert_eq!(drain(&mut m), vec![Action::ListNetworks]);
        assert_eq!(m.scan_state(), &ScanState::Idle);

        // No LastScan support: the deadline lists.
        m.handle(t0, Input::Scan { refresh: true });
        m.handle(t0, Input::ScanStarted { baseline: None });
        drain(&mut m);
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        m.handle(t0 + Duration::from_secs(5), Input::Tick);
        assert_eq!(drain(&mut m), vec![Action::ListNetworks]);

        // NM refused to scan (rate limit): list at once.
        m.handle(t0, Input::Scan { refresh: true });
        drain(&mut m);
        m.handle(t0, Input::ScanRequestFailed);
        assert_eq!(drain(&mut m), vec![Action::ListNetworks]);
    }

    #[test]
    fn a_burst_of_changes_costs_one_refresh() {
        let t0 = crate::clock::test_t0();
        let mut m = WifiMachine::new(Timing::default());
        for i in 0..10 {
            m.handle(t0 + Duration::from_millis(i), Input::Changed);
        }
        assert!(drain(&mut m).is_empty());
        m.handle(t0 + Duration::from_millis(100), Input::Tick);
        assert_eq!(drain(&mut m), vec![Action::RefreshStatus]);
        assert_eq!(m.poll_timeout(), None);
    }
}
