//! What goes in and out of the session machine: inputs, actions, journal lines, notices,
//! the record of one slot, and where a session starts.

use super::*;

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
