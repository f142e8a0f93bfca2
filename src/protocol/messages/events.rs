//! Event payloads (broadcasts), by the service that sends them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------------------------
// Events: camera

/// A photo: a manual `take_photo` (no session fields) or a session's shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhotoTaken {
    pub success: bool,
    pub timestamp: String,
    pub error: Option<String>,
    /// Session shots only from here on.
    #[serde(flatten)]
    pub shot: Option<ShotInfo>,
}

/// A session's shot, in `photo_taken` / `intervalometer_photo`. It carries the session's
/// counters (`stats`): per-shot progress rides here, not in a status_update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShotInfo {
    pub session_id: String,
    pub title: String,
    pub shot_number: u64,
    pub slot: u64,
    pub scheduled_time: String,
    pub timing_error_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    /// Seconds (the original's `duration`).
    pub duration: Option<f64>,
    pub skipped_before: u64,
    pub late: bool,
    pub file_name: Option<String>,
    pub stats: SessionStats,
    pub remaining_shots: Option<u64>,
    /// Ramped sessions: the settings the frame was shot with and their exposure in stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::intervalometer::schedule::FrameSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_ev: Option<f64>,
}

/// Auto-ramp: a frame's thumbnail was measured (it arrives a little after its `photo_taken`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameMeasured {
    pub session_id: String,
    pub slot: u64,
    /// Mean linear luminance of the thumbnail (0–1).
    pub brightness: f64,
    /// What the auto-ramp aims for at that moment (same scale).
    pub target_brightness: f64,
    /// The exposure the frame was shot with, in stops.
    pub exposure_ev: Option<f64>,
    /// The sun's apparent altitude then, degrees.
    pub sun_altitude: f64,
}

/// A test photo waits for the next gap between a session's frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPhotoScheduled {
    pub at: String,
    pub in_seconds: f64,
}

/// Broadcast of a kept live-view frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LiveViewImageCaptured(pub TestPhotoInfo);

/// The newest frame's thumbnail while a session runs (for the monitor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionFrame {
    /// `frame_<stem>.JPG`, served at `url`.
    pub id: String,
    pub file_name: String,
    pub size: u64,
    pub url: String,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSettingChanged {
    pub setting: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPhotoProgress {
    pub photo_id: u64,
    pub bytes_received: u64,
    pub total_bytes: Option<u64>,
    pub percent: Option<u64>,
    /// = percent (the original's name).
    pub percentage: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Events: intervalometer

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    pub session_id: String,
    pub title: String,
    pub interval: f64,
    pub options: SessionOptionsBlock,
    pub start_time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecovered {
    pub session_id: String,
    pub title: String,
    pub interval: f64,
    pub options: SessionOptionsBlock,
    pub shots_before: usize,
    pub slots_skipped_while_down: u64,
}

/// A failed shot (the original's per-shot `intervalometer_error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShotFailed {
    pub session_id: String,
    pub title: String,
    pub shot_number: u64,
    pub error: String,
    pub timestamp: String,
    pub stats: SessionStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShotRecovered {
    pub session_id: String,
    pub shot_number: u64,
    pub slot: u64,
    pub success: bool,
    pub reply_lost: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhotoOvertime {
    pub session_id: String,
    pub title: String,
    pub shot_number: u64,
    pub interval: f64,
    pub shot_duration: f64,
    pub overtime: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionWarning {
    pub session_id: String,
    pub title: String,
    pub message: String,
    pub fatal: bool,
    /// `true` on the message that says an earlier warning's cause is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
}

/// How a session ended: `session_completed|stopped|error` and the original's
/// `intervalometer_completed|stopped|error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnded {
    pub session_id: String,
    pub title: String,
    /// A sentence: "Shot limit reached", "Stop time reached", "Stopped by user", …
    pub reason: String,
    /// The machine's own reason, when it gave one (an error's cause).
    pub end_reason: Option<String>,
    /// The session's counters, with `endTime`.
    pub stats: SessionStats,
    /// `{interval, stopCondition, totalShots, stopTime (ISO), …}`.
    pub options: SessionOptionsBlock,
    pub status: IntervalometerBlock,
    /// The report saved at the end (same as the session id), null if it could not be saved.
    pub report_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSaved {
    pub report_id: String,
    pub id: String,
    pub session_id: String,
    pub title: String,
    pub report: ReportEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportUpdated {
    pub report_id: String,
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportDeletedEvent {
    pub report_id: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDiscardedEvent {
    pub session_id: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Events: discovery

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraDiscovered {
    pub uuid: String,
    pub model_name: Option<String>,
    pub ip_address: String,
    pub access_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraConnected {
    pub uuid: String,
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraOffline {
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryCameraChanged {
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraIpChanged {
    pub uuid: String,
    #[serde(rename = "oldIP")]
    pub old_ip: String,
    #[serde(rename = "newIP")]
    pub new_ip: String,
    pub old_port: u16,
    pub new_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryCameraReconnected {
    pub uuid: String,
    #[serde(rename = "newIP")]
    pub new_ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryCameraDisconnected {
    pub uuid: String,
}

// ---------------------------------------------------------------------------------------------
// Events: network, time sync, power

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiConnectionStarted {
    pub ssid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiConnected {
    pub ssid: String,
    pub ip: String,
    pub signal: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiConnectionFailed {
    pub ssid: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiSync {
    pub synchronized: bool,
    /// "client", "gps", "manual".
    pub source: String,
    /// Client minus Pi, ms.
    pub offset: i64,
    pub reliability: String,
    /// Whether the Pi's clock was stepped.
    pub stepped: bool,
    #[serde(
        rename = "uncertaintyMs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub uncertainty_ms: Option<i64>,
    /// Set when the sample was not applied (the Pi's time was already reliable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraSync {
    pub success: bool,
    pub previous_time: String,
    pub new_time: String,
    /// Camera minus Pi before the sync, ms.
    pub offset: i64,
    /// Whether the camera's clock was written.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncFailed {
    /// "pi" or "camera".
    pub component: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::protocol::ErrorCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityLost {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerWarning {
    pub kind: String,
    /// "warning" or "critical".
    pub severity: String,
    pub message: String,
}

/// A power warning no longer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PowerWarningCleared(pub PowerWarning);

/// A session's shot (`photo_taken` with the session fields filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionPhoto(pub PhotoTaken);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionCompleted(pub SessionEnded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionStopped(pub SessionEnded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionErrorEvent(pub SessionEnded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnsavedSessionFound(pub UnsavedSession);
