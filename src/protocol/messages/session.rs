//! Intervalometer replies (sessions, reports).

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct IntervalValidationReply(pub IntervalValidation);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalometerStart {
    pub success: bool,
    pub session_id: String,
    pub title: String,
    pub status: IntervalometerBlock,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalometerStop {
    pub success: bool,
    pub status: IntervalometerBlock,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntervalometerStatus(pub IntervalometerBlock);

/// The original's recovery record of a session that was not saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionData {
    /// A sentence ("Interrupted: …", "Stopped by user").
    pub reason: String,
    pub completed_at: String,
    pub options: OptionsWire,
    pub stats: CompletionStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionStats {
    pub start_time: String,
    pub end_time: String,
    pub shots_taken: usize,
    pub shots_successful: usize,
    pub shots_failed: usize,
}

/// A session not saved as a report: interrupted (power loss, crash), or one whose report
/// could not be written at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsavedSession {
    pub session_id: String,
    pub title: String,
    pub start_time: String,
    pub end_time: String,
    /// completed | stopped | error | interrupted
    pub status: String,
    pub interrupted: bool,
    pub can_resume: bool,
    pub options: OptionsWire,
    pub shots_taken: usize,
    pub shots_successful: usize,
    pub shots_failed: usize,
    /// What a client may do: save, discard, resume.
    pub actions: Vec<String>,
    /// = completionData.reason.
    pub reason: String,
    pub completion_data: CompletionData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsavedSessionReply {
    pub unsaved_session: Option<UnsavedSession>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSaved {
    pub success: bool,
    pub session_id: String,
    pub report_id: String,
    pub report: ReportEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDiscarded {
    pub success: bool,
    pub session_id: String,
    /// Whether a report saved at the session's end was deleted with it.
    pub report_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResumed {
    pub success: bool,
    pub session_id: String,
    pub title: String,
    pub status: IntervalometerBlock,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelapseReports {
    pub reports: Vec<ReportEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelapseReport {
    pub report: Report,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportTitleUpdated {
    pub success: bool,
    pub id: String,
    pub report_id: String,
    pub title: String,
    pub report: ReportEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportDeleted {
    pub success: bool,
    pub id: String,
    pub report_id: String,
}

/// WebSocket form of a report's CSV (REST sends the bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCsv {
    pub id: String,
    pub content_type: String,
    pub content: String,
}

/// WebSocket form of a report's SVG chart (REST sends the bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportChart {
    pub id: String,
    pub content_type: String,
    pub content: String,
}

/// `plan_session`: what a start with the same payload would do (nothing is started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPlan {
    /// Seconds between frames.
    pub interval: f64,
    /// The first frame's slot (ISO-8601 UTC), resolved from `startAt` (or now + warm-up).
    pub start_time: String,
    /// The stop instant when the stop condition has one (`stopAt`, stop time, duration).
    pub stop_time: Option<String>,
    /// The last planned frame (null when the session runs until stopped).
    pub end_time: Option<String>,
    /// Frames the session would take (null: until stopped).
    pub frames: Option<u64>,
    /// Seconds from the first frame to the last (null: until stopped).
    pub duration_seconds: Option<f64>,
    /// "keyframes", "auto" or null (fixed settings).
    pub ramp: Option<String>,
    /// Keyframes as resolved (`atMs` set), sorted.
    pub keyframes: Vec<crate::protocol::KeyframeSpec>,
    /// The curve: every `sampleEvery`-th frame (and the last), at most 500 points; an
    /// unlimited session is drawn over its first `horizonSeconds`.
    pub sample_every: u64,
    pub horizon_seconds: Option<f64>,
    pub points: Vec<PlanPoint>,
    /// Whether a location is known (sun altitude and the auto-ramp's target need one).
    pub location_known: bool,
}

/// One point of a [`SessionPlan`] curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPoint {
    /// Frame index from 0.
    pub frame: u64,
    pub time: String,
    /// Keyframed ramps: the planned settings (snapped to the camera's values) and their
    /// exposure in stops (`log2 t + log2 ISO/100 − 2 log2 N`).
    pub tv: Option<String>,
    pub iso: Option<String>,
    pub av: Option<String>,
    pub exposure_ev: Option<f64>,
    /// Auto-ramp: the brightness a frame should have then (mean linear luminance, 0–1).
    pub target_brightness: Option<f64>,
    /// The sun's apparent altitude (degrees) when a location is known.
    pub sun_altitude: Option<f64>,
}
