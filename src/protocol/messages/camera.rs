//! Camera replies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CameraStatus(pub CameraBlock);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoTakenReply {
    pub success: bool,
    pub timestamp: String,
}

/// The camera's settings as CCAPI gives them: `{name: {value, ability}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CameraSettingsReply(pub Map<String, Value>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSettingSet {
    pub success: bool,
    pub setting: String,
    /// The value the camera echoed (CCAPI: a string, or an object for some settings).
    pub value: Value,
}

/// One battery as CCAPI's `batterylist` lists it (the original's REST shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatteryEntry {
    pub position: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    /// CCAPI gives it as a string: "full", "half", … (ver100) or "85" (ver110).
    pub level: Option<String>,
    pub quality: Option<String>,
}

/// `GET /api/camera/battery`: CCAPI's `batterylist` (the original's shape) and skylapse's
/// `battery` (the first entry, as the camera status block shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraBattery {
    pub batterylist: Vec<BatteryEntry>,
    pub battery: Option<BatteryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraStorage {
    /// CCAPI's `storagelist` as the camera gave it.
    pub storagelist: Vec<Value>,
    pub summary: Option<StorageBlock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraDatetime {
    /// CCAPI's raw `datetime` string.
    pub datetime: String,
    pub dst: bool,
    /// The instant the camera's clock shows (ISO-8601).
    pub time: String,
    /// Camera minus Pi, ms.
    pub offset_ms: i64,
}

/// EXIF fields of a test photo, with the original's names (read from the JPEG).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct ExifSummary {
    pub ImageWidth: Option<u32>,
    pub ImageHeight: Option<u32>,
    pub ISO: Option<u32>,
    /// Seconds (e.g. 0.008 for 1/125).
    pub ExposureTime: Option<f64>,
    /// As a photographer writes it: "1/125", "30\"" style without the quote: "30".
    pub ShutterSpeed: Option<String>,
    pub FNumber: Option<f64>,
    /// "Auto" or "Manual" (EXIF WhiteBalance).
    pub WhiteBalance: Option<String>,
    /// ISO-8601 (the camera's local time, no zone: EXIF has none).
    pub DateTimeOriginal: Option<String>,
    pub Model: Option<String>,
}

/// A stored test photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPhotoInfo {
    /// Numeric, increasing (the original's ids).
    pub id: u64,
    /// `/api/camera/photos/test/{id}` (clients append `/file` for the bytes).
    pub url: String,
    /// `/api/camera/photos/test/{id}/file`.
    pub file_url: String,
    /// The stored name, `YYYYMMDD_HHMMSS_<camera name>`.
    pub filename: String,
    /// Where the camera keeps the original.
    pub camera_path: Option<String>,
    pub size: u64,
    pub timestamp: Option<String>,
    /// From the press to the file on the Pi.
    pub processing_time_ms: Option<u64>,
    pub exif: Option<ExifSummary>,
    /// What the stored file is: "display" (the camera's display-size image) or "original".
    #[serde(default)]
    pub preview: Option<String>,
    /// The settings it was shot with (raw CCAPI values, as in the camera block).
    #[serde(default)]
    pub settings: Option<crate::camera::CameraSettings>,
}

/// `take_test_photo`: the new photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPhoto {
    pub success: bool,
    #[serde(flatten)]
    pub photo: TestPhotoInfo,
}

/// `capture_liveview`: one live-view frame, kept like a test photo (under
/// `/api/camera/liveview/images/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveViewCaptured {
    pub success: bool,
    #[serde(flatten)]
    pub image: TestPhotoInfo,
}

/// `list_liveview_images`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveViewImages {
    pub images: Vec<TestPhotoInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveViewImageDeleted {
    pub success: bool,
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveViewCleared {
    pub success: bool,
    pub deleted: u64,
}

/// WebSocket answer to `get_liveview_image_file` (REST sends the bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveViewImageFile {
    pub id: u64,
    pub content_type: String,
    pub size: u64,
}

/// `drive_focus`: the step the camera took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FocusDriven {
    pub success: bool,
    pub step: String,
}

/// `get_liveview_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveViewStatus {
    /// Live view is on (or starting) on the camera.
    pub active: bool,
    pub viewers: u64,
    pub max_viewers: u64,
    pub frames_relayed: u64,
    /// The relay's added latency (frame received from the camera → written to a viewer's
    /// socket) over the newest 512 frames, ms.
    pub relay_latency_p50_ms: Option<f64>,
    pub relay_latency_p99_ms: Option<f64>,
    /// `multipart/x-mixed-replace` JPEG stream (`?size=small|medium`).
    pub stream_url: String,
}

/// `get_test_photo`: one photo's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TestPhotoInfoReply(pub TestPhotoInfo);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPhotos {
    pub photos: Vec<TestPhotoInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPhotoDeleted {
    pub success: bool,
    pub message: String,
    pub id: u64,
}

/// WebSocket answer to `get_test_photo_file` (REST sends the bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPhotoFile {
    pub id: u64,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateAccepted {
    pub success: bool,
    pub uuid: String,
    /// Said when the uuid accepted is not the one the refusal named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}
