//! The time sync machine's vocabulary: its tunables, the Pi clock's reliability levels, and
//! the inputs and actions of [`super::machine::TimeSyncMachine`].

use std::time::{Duration, SystemTime};

use crate::app::ClientId;
use crate::protocol::messages::{ReliabilityLost, SyncFailed};
use crate::protocol::{ApiError, ErrorCode, Event};

/// Tunables (defaults are the product's).
#[derive(Debug, Clone)]
pub struct TimeSyncConfig {
    /// Re-ask each connected client this often.
    pub request_interval: Duration,
    /// A request unanswered this long is forgotten (a late answer is rejected).
    pub request_timeout: Duration,
    /// Round trips longer than this give too loose an offset; the sample is refused.
    pub max_rtt: Duration,
    /// Step the Pi clock when it is off by more than this.
    pub step_threshold_ms: i64,
    /// Write the camera clock when it is off by more than this.
    pub camera_threshold_ms: i64,
    /// Crystal drift budget of an unsynchronised Pi, parts per million.
    pub drift_ppm: f64,
    /// Resolution of a client's clock (JavaScript `Date.now()`: 1 ms).
    pub client_resolution_ms: f64,
    /// A GPS fix older than this (or from the future by as much) is stale.
    pub gps_max_age: Duration,
    /// A GPS fix less accurate than this (metres) is refused.
    pub gps_max_accuracy_m: f64,
    /// How often a deferred clock step asks the shot gate again.
    pub step_retry: Duration,
    /// A step deferred this long is abandoned (sync-failed); the next sample tries again.
    pub step_max_deferral: Duration,
    /// A camera read or write that has not answered by then is abandoned.
    pub camera_timeout: Duration,
    /// Most clients tracked at once (the hub allows fewer).
    pub max_clients: usize,
}

impl Default for TimeSyncConfig {
    fn default() -> Self {
        TimeSyncConfig {
            request_interval: Duration::from_secs(600),
            request_timeout: Duration::from_secs(30),
            max_rtt: Duration::from_secs(10),
            step_threshold_ms: 5_000,
            camera_threshold_ms: 2_000,
            drift_ppm: 50.0,
            client_resolution_ms: 1.0,
            gps_max_age: Duration::from_secs(5),
            gps_max_accuracy_m: 50.0,
            step_retry: Duration::from_millis(500),
            step_max_deferral: Duration::from_secs(300),
            camera_timeout: Duration::from_secs(30),
            max_clients: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Gps,
    Manual,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Client => "client",
            Source::Gps => "gps",
            Source::Manual => "manual",
        }
    }
}

/// How far the Pi's clock can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reliability {
    None,
    Low,
    Medium,
    High,
}

impl Reliability {
    pub const HIGH_MS: f64 = 2_000.0;
    pub const MEDIUM_MS: f64 = 10_000.0;
    pub const LOW_MS: f64 = 60_000.0;

    pub fn from_uncertainty_ms(u: f64) -> Reliability {
        if u <= Self::HIGH_MS {
            Reliability::High
        } else if u <= Self::MEDIUM_MS {
            Reliability::Medium
        } else if u <= Self::LOW_MS {
            Reliability::Low
        } else {
            Reliability::None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reliability::None => "none",
            Reliability::Low => "low",
            Reliability::Medium => "medium",
            Reliability::High => "high",
        }
    }
}

/// GPS accuracy as the phone reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GpsAccuracy {
    Metres(f64),
    High,
    Low,
    Unknown,
}

/// How the driver's attempt to step the clock went.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The clock was set; `wall` passed with this input is already the new time.
    Done,
    /// A shot was in flight; try again later.
    Deferred,
    Failed(ApiError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    ClientConnected(ClientId),
    ClientDisconnected(ClientId),
    /// `time-sync-response`; `client` is `None` over REST.
    Response {
        client: Option<ClientId>,
        request_id: Option<String>,
        client_time_ms: i64,
    },
    Gps {
        client: Option<ClientId>,
        fix_time_ms: i64,
        accuracy: GpsAccuracy,
    },
    /// `manual-time-sync`: the user says what time it is.
    Manual {
        client_time_ms: i64,
    },
    Step(StepOutcome),
    CameraConnected,
    CameraLost,
    /// `manual_camera_sync` (manual) or an internal trigger.
    CameraSyncRequested {
        manual: bool,
    },
    /// The camera's clock, read when the Pi's wall clock showed the `wall` of this input.
    CameraRead(Result<SystemTime, ApiError>),
    /// The camera clock was written with the Pi's time at `wall`.
    CameraWritten(Result<(), ApiError>),
    /// A deadline passed (or nothing in particular): the machine checks its timers.
    Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `time-sync-request {requestId, serverTime}` to one client.
    SendRequest {
        client: ClientId,
        request_id: String,
        server_time_ms: i64,
    },
    /// Step the wall clock by `offset_ms` if the shot gate is open (else answer `Deferred`).
    StepClock {
        offset_ms: i64,
    },
    /// Read the camera clock; answer `CameraRead`.
    ReadCamera,
    /// Write the Pi's current time into the camera (zone rules by the driver); answer
    /// `CameraWritten`.
    WriteCamera,
    Event(Event),
}

/// 2020-01-01T00:00:00Z and 2100-01-01T00:00:00Z: any clock reading outside is absurd.
const SANE_MIN_MS: i64 = 1_577_836_800_000;
const SANE_MAX_MS: i64 = 4_102_444_800_000;

pub(super) fn sync_failed(
    component: &str,
    error: impl Into<String>,
    code: Option<ErrorCode>,
) -> Action {
    Action::Event(Event::of(&SyncFailed {
        component: component.into(),
        error: error.into(),
        code,
    }))
}

pub(super) fn reliability_lost(source: &str, reason: impl Into<String>) -> Action {
    Action::Event(Event::of(&ReliabilityLost {
        source: source.into(),
        reason: reason.into(),
    }))
}

pub(super) fn sane(ms: i64, field: &str) -> Result<(), ApiError> {
    if (SANE_MIN_MS..SANE_MAX_MS).contains(&ms) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field} is not a plausible time (must be between 2020 and 2100)"
        )))
    }
}
