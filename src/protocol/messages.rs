//! Server → client: every reply and event payload as a type.
//!
//! A reply payload implements [`ReplyPayload`] (its `type` on the wire is `KIND`, one place);
//! an event payload implements [`EventPayload`], whose [`EventKind`] says on which channel it
//! travels and under which names: one event may go out under several names (skylapse's, the
//! original's camelCase or `intervalometer_*` ones) — [`EventKind::wire_names`] is the one
//! table of those aliases. `Reply::of` and `Event::of` are the only ways to build a reply or
//! an event, so every message the server sends has a type here (or in a module it names).
//!
//! Where the original service and skylapse disagree on a shape, both are sent (a superset).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::status::{
    CameraBlock, DiscoveryBlock, IntervalometerBlock, NetworkBlock, PowerBlock,
    SessionOptionsBlock, SessionStats, StatusBlocks, StorageBlock, TimesyncBlock,
};
use super::{Channel, EventFamily};
use crate::intervalometer::report::{Report, ReportEntry};
use crate::intervalometer::schedule::{IntervalValidation, OptionsWire};

/// A direct reply's payload; `KIND` is its `type`.
pub trait ReplyPayload: Serialize {
    const KIND: &'static str;
}

/// A broadcast's payload; `KIND` says where and under which names it goes.
pub trait EventPayload: Serialize {
    const KIND: EventKind;
}

macro_rules! reply {
    ($($t:ty => $kind:literal;)*) => {
        $( impl ReplyPayload for $t { const KIND: &'static str = $kind; } )*
        /// Every reply `type`, for the documentation check.
        pub const REPLY_KINDS: &[&str] = &[$($kind),*];
        /// Every reply: its `type` and the Rust type of its payload (`docs/PROTOCOL.md`).
        pub const REPLIES: &[(&str, &str)] = &[$(($kind, stringify!($t))),*];

        /// A representative payload of the reply `kind`, for the contract tests
        /// (`super::contracts`): every reply type must have a sample, or this does not compile.
        #[cfg(test)]
        pub(crate) fn reply_sample(kind: &str, mode: super::contracts::Mode) -> Option<Value> {
            use super::contracts::{to_json, Sample};
            match kind {
                $( $kind => Some(to_json(&<$t as Sample>::sample(mode))), )*
                _ => None,
            }
        }
    };
}

macro_rules! event_kinds {
    ($(
        $(#[$doc:meta])*
        $kind:ident($payload:ty) on $channel:ident: [$(($family:ident, $name:literal)),+ $(,)?];
    )*) => {
        /// Every broadcast, with its channel and the names it goes out under.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $( $(#[$doc])* $kind, )*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),*];

            pub fn channel(self) -> Channel {
                match self { $( EventKind::$kind => Channel::$channel, )* }
            }

            /// `(type, eventType)` of each frame this event is sent as, skylapse's first.
            pub fn wire_names(self) -> &'static [(EventFamily, &'static str)] {
                match self { $( EventKind::$kind => &[$((EventFamily::$family, $name)),+], )* }
            }

            /// The Rust type of the payload, for the documentation.
            pub fn payload(self) -> &'static str {
                match self { $( EventKind::$kind => stringify!($payload), )* }
            }

            /// A representative payload, for the contract tests (`super::contracts`).
            #[cfg(test)]
            pub(crate) fn sample(self, mode: super::contracts::Mode) -> Value {
                use super::contracts::{to_json, Sample};
                match self { $( EventKind::$kind => to_json(&<$payload as Sample>::sample(mode)), )* }
            }
        }

        $( impl EventPayload for $payload { const KIND: EventKind = EventKind::$kind; } )*
    };
}

impl EventKind {
    /// skylapse's own name (the first wire name).
    pub fn name(self) -> &'static str {
        self.wire_names()[0].1
    }
}

// ---------------------------------------------------------------------------------------------
// Replies: web and coordinator

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The channels this request named.
    pub channels: Vec<String>,
    /// Every channel the client now receives.
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed {
    pub channels: Vec<String>,
    pub subscriptions: Vec<String>,
}

/// `get_status`: every status block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Status(pub StatusBlocks);

/// `get_system_status` (`GET /api/system/status`): the same blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SystemStatus(pub StatusBlocks);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsClient {
    pub id: u64,
    pub address: String,
    pub connected_at: String,
    pub uptime: f64,
    pub last_heartbeat: String,
    pub last_heartbeat_ago: f64,
    pub subscriptions: Vec<String>,
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsConnections {
    pub count: usize,
    pub max_clients: usize,
    pub clients: Vec<WsClient>,
}

// ---------------------------------------------------------------------------------------------
// Replies: camera

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

// ---------------------------------------------------------------------------------------------
// Replies: intervalometer

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

// ---------------------------------------------------------------------------------------------
// Replies: discovery

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectToIpResult {
    pub success: bool,
    pub ip: String,
    pub port: u16,
    /// The CCAPI base that answered (its scheme tells HTTPS or HTTP).
    pub base_url: String,
    pub uuid: Option<String>,
    pub model_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryScanStarted {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiscoveryStatus(pub DiscoveryBlock);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryCameraSet {
    pub uuid: String,
}

/// `GET /api/discovery/last-ip`: the last camera address that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCameraIp {
    #[serde(rename = "lastIP")]
    pub last_ip: Option<String>,
    pub last_port: Option<u16>,
    pub base_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Replies: Wi-Fi

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NetworkStatus(pub NetworkBlock);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiNetwork {
    pub ssid: String,
    /// 0–100.
    pub signal: u8,
    /// "open", "wpa2", …
    pub security: String,
    /// MHz.
    pub frequency: u32,
    pub channel: Option<u32>,
    /// A saved profile exists for it.
    pub known: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkScanResult {
    pub networks: Vec<WifiNetwork>,
    /// Why the list is empty when scanning is not possible (the original sends the result
    /// with an error; an `error` frame is sent too).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConnectResult {
    pub success: bool,
    pub ssid: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDisconnectResult {
    pub success: bool,
    pub was_connected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiEnableResult {
    pub success: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiDisableResult {
    pub success: bool,
    pub enabled: bool,
}

/// `GET /api/network/wifi/enabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiEnabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNetwork {
    /// The profile's name (the original's field).
    pub name: String,
    pub ssid: String,
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNetworks {
    pub networks: Vec<SavedNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiCountryReply {
    pub country: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WifiCountrySet {
    pub success: bool,
    pub country: String,
    pub persistent: bool,
    pub ap_channel_warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Country {
    pub code: String,
    pub name: String,
}

/// `GET /api/network/wifi/countries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiCountries {
    pub countries: Vec<Country>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessPointConfigured {
    pub success: bool,
    pub ssid: String,
}

// ---------------------------------------------------------------------------------------------
// Replies: time sync and power

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSyncResult {
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsResult {
    pub received: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSyncStarted {
    pub started: bool,
}

/// `manual-time-sync` and `POST /api/system/time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTimeSyncResult {
    /// The original's field.
    pub success: bool,
    pub accepted: bool,
    pub timezone: Option<String>,
    /// The zone is kept as a label; the system zone is not changed.
    pub timezone_applied: bool,
    /// The Pi's time after the sync (the original's field).
    pub current_time: String,
}

/// The original's `GET /api/timesync/status` `status` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSyncStatusCompat {
    pub pi_reliable: bool,
    pub last_pi_sync: Option<String>,
    pub last_camera_sync: Option<String>,
    /// "client", "gps", "manual" or null.
    pub sync_source: Option<String>,
}

/// `get-time-sync-status` / `GET /api/timesync/status`: skylapse's block, plus the
/// original's `{success, status}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSyncStatus {
    #[serde(flatten)]
    pub block: TimesyncBlock,
    pub success: bool,
    pub status: TimeSyncStatusCompat,
}

/// `GET /api/system/time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemTimeReply {
    /// ISO-8601 (the original's field).
    pub current_time: String,
    /// = currentTime (skylapse's name).
    pub time: String,
    /// Unix ms (the original's `timestamp`).
    pub timestamp: i64,
    pub unix_ms: i64,
    /// An IANA name when known, else "UTC±hh:mm".
    pub timezone: String,
    pub utc_offset_seconds: i32,
    pub standard_offset_seconds: i32,
    pub dst: bool,
    pub reliability: String,
    pub is_synchronized: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeSyncStatusBlock(pub TimesyncBlock);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PowerStatus(pub PowerBlock);

/// `get_sun_times` / `GET /api/sun`: event times as ISO-8601 UTC, or null with the reason in
/// `reasons` (`alwaysAbove`: polar day or a twilight that never ends; `alwaysBelow`: polar
/// night or a twilight never reached).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SunTimesReply {
    pub date: String,
    pub lat: f64,
    pub lon: f64,
    pub sunrise: Option<String>,
    pub sunset: Option<String>,
    pub solar_noon: Option<String>,
    pub civil_dawn: Option<String>,
    pub civil_dusk: Option<String>,
    pub nautical_dawn: Option<String>,
    pub nautical_dusk: Option<String>,
    pub astronomical_dawn: Option<String>,
    pub astronomical_dusk: Option<String>,
    pub reasons: crate::sun::Reasons,
    /// "gps", "manual" (the remembered location) or "request" (lat/lon given).
    pub location_source: Option<String>,
    /// The sun as seen from there right now.
    pub now: SunNow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SunNow {
    pub time: String,
    /// Apparent altitude of the sun's centre, degrees.
    pub altitude_deg: f64,
    /// Degrees clockwise from true north.
    pub azimuth_deg: f64,
}

/// `get_location`: the remembered location, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationReply {
    pub known: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// "gps" or "manual".
    pub source: Option<String>,
    pub updated: Option<String>,
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
    pub keyframes: Vec<super::KeyframeSpec>,
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

/// `set_location`: what is remembered now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocationSet(pub LocationReply);

reply! {
    Pong => "pong";
    Subscribed => "subscribed";
    Unsubscribed => "unsubscribed";
    Status => "status";
    SystemStatus => "system_status";
    WsConnections => "ws_connections";
    CameraStatus => "camera_status";
    PhotoTakenReply => "photo_taken";
    CameraSettingsReply => "camera_settings";
    CameraSettingSet => "camera_setting_set";
    CameraBattery => "camera_battery";
    CameraStorage => "camera_storage";
    CameraDatetime => "camera_datetime";
    TestPhoto => "test_photo";
    TestPhotoInfoReply => "test_photo_info";
    TestPhotos => "test_photos";
    TestPhotoDeleted => "test_photo_deleted";
    TestPhotoFile => "test_photo_file";
    LiveViewCaptured => "liveview_capture_result";
    LiveViewImages => "liveview_images";
    LiveViewImageDeleted => "liveview_image_deleted";
    LiveViewCleared => "liveview_cleared";
    LiveViewImageFile => "liveview_image_file";
    FocusDriven => "focus_driven";
    LiveViewStatus => "liveview_status";
    CertificateAccepted => "camera_certificate_accepted";
    IntervalValidationReply => "interval_validation";
    IntervalometerStart => "intervalometer_start";
    IntervalometerStop => "intervalometer_stop";
    IntervalometerStatus => "intervalometer_status";
    UnsavedSessionReply => "unsaved_session";
    SessionSaved => "session_saved";
    SessionDiscarded => "session_discarded";
    SessionResumed => "session_resumed";
    TimelapseReports => "timelapse_reports";
    TimelapseReport => "timelapse_report";
    ReportTitleUpdated => "report_title_updated";
    ReportDeleted => "report_deleted";
    ReportCsv => "report_csv";
    ReportChart => "report_chart";
    ConnectToIpResult => "connect_to_ip_result";
    DiscoveryScanStarted => "discovery_scan_started";
    DiscoveryStatus => "discovery_status";
    PrimaryCameraSet => "primary_camera_set";
    LastCameraIp => "last_camera_ip";
    NetworkStatus => "network_status";
    NetworkScanResult => "network_scan_result";
    NetworkConnectResult => "network_connect_result";
    NetworkDisconnectResult => "network_disconnect_result";
    WifiEnableResult => "wifi_enable_result";
    WifiDisableResult => "wifi_disable_result";
    WifiEnabled => "wifi_enabled";
    SavedNetworks => "saved_networks";
    WifiCountryReply => "wifi_country";
    WifiCountrySet => "wifi_country_set";
    WifiCountries => "wifi_countries";
    AccessPointConfigured => "access_point_configured";
    TimeSyncResult => "time_sync_result";
    GpsResult => "gps_result";
    CameraSyncStarted => "camera_sync_started";
    ManualTimeSyncResult => "manual_time_sync";
    TimeSyncStatus => "time_sync_status";
    SystemTimeReply => "system_time";
    PowerStatus => "power_status";
    SunTimesReply => "sun_times";
    LocationReply => "location";
    LocationSet => "location_set";
    SessionPlan => "session_plan";
}

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
    pub code: Option<super::ErrorCode>,
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

event_kinds! {
    CameraSettingChanged(CameraSettingChanged) on Camera: [(Event, "camera_setting_changed")];
    TestPhotoProgress(TestPhotoProgress) on Camera: [(Event, "test_photo_download_progress")];
    TestPhotoScheduled(TestPhotoScheduled) on Camera: [(Event, "test_photo_scheduled")];
    SessionFrame(SessionFrame) on Camera: [(Event, "session_frame")];
    /// A live-view frame was kept (`capture_liveview`), for the other clients' galleries.
    LiveViewImageCaptured(LiveViewImageCaptured) on Camera: [(Event, "liveview_captured")];
    /// A manual photo or a session's shot (the original's `intervalometer_photo` for the
    /// latter is emitted by [`EventKind::SessionPhoto`]).
    PhotoTaken(PhotoTaken) on Camera: [(Event, "photo_taken")];
    SessionPhoto(SessionPhoto) on Intervalometer:
        [(Event, "photo_taken"), (Event, "intervalometer_photo")];

    SessionStarted(SessionStarted) on Intervalometer: [
        (Timelapse, "session_started"), (Timelapse, "sessionStarted"),
        (Event, "intervalometer_started"),
    ];
    SessionRecovered(SessionRecovered) on Intervalometer:
        [(Timelapse, "session_recovered"), (Event, "intervalometer_started")];
    /// One failed shot (the original's per-shot failure event).
    ShotFailed(ShotFailed) on Intervalometer:
        [(Timelapse, "shot_failed"), (Event, "intervalometer_error")];
    ShotRecovered(ShotRecovered) on Intervalometer: [(Timelapse, "shot_recovered")];
    PhotoOvertime(PhotoOvertime) on Intervalometer: [(Timelapse, "photo_overtime")];
    /// Auto-ramp: a frame's measured brightness and the target (for the live chart).
    FrameMeasured(FrameMeasured) on Intervalometer: [(Timelapse, "frame_measured")];
    SessionWarning(SessionWarning) on Intervalometer:
        [(Timelapse, "session_warning"), (Event, "intervalometer_error")];
    SessionCompleted(SessionCompleted) on Intervalometer: [
        (Timelapse, "session_completed"), (Timelapse, "sessionCompleted"),
        (Event, "intervalometer_completed"),
    ];
    SessionStopped(SessionStopped) on Intervalometer: [
        (Timelapse, "session_stopped"), (Timelapse, "sessionStopped"),
        (Event, "intervalometer_stopped"),
    ];
    SessionError(SessionErrorEvent) on Intervalometer: [
        (Timelapse, "session_error"), (Timelapse, "sessionError"),
        (Event, "intervalometer_error"),
    ];
    UnsavedSessionFound(UnsavedSessionFound) on Intervalometer:
        [(Timelapse, "unsaved_session_found"), (Timelapse, "unsavedSessionFound")];
    ReportSaved(ReportSaved) on Intervalometer:
        [(Timelapse, "report_saved"), (Timelapse, "reportSaved")];
    ReportUpdated(ReportUpdated) on Intervalometer: [(Timelapse, "report_updated")];
    ReportDeleted(ReportDeletedEvent) on Intervalometer: [(Timelapse, "report_deleted")];
    SessionDiscarded(SessionDiscardedEvent) on Intervalometer:
        [(Timelapse, "session_discarded"), (Timelapse, "sessionDiscarded")];

    CameraDiscovered(CameraDiscovered) on Discovery:
        [(Discovery, "camera_discovered"), (Discovery, "cameraDiscovered")];
    CameraConnected(CameraConnected) on Discovery:
        [(Discovery, "camera_connected"), (Discovery, "cameraConnected")];
    CameraOffline(CameraOffline) on Discovery:
        [(Discovery, "camera_offline"), (Discovery, "cameraOffline")];
    PrimaryCameraChanged(PrimaryCameraChanged) on Discovery:
        [(Discovery, "primary_camera_changed"), (Discovery, "primaryCameraChanged")];
    CameraIpChanged(CameraIpChanged) on Discovery:
        [(Discovery, "camera_ip_changed"), (Discovery, "cameraIPChanged")];
    PrimaryCameraReconnected(PrimaryCameraReconnected) on Discovery:
        [(Discovery, "primary_camera_reconnected"), (Discovery, "primaryCameraReconnected")];
    PrimaryCameraDisconnected(PrimaryCameraDisconnected) on Discovery:
        [(Discovery, "primary_camera_disconnected"), (Discovery, "primaryCameraDisconnected")];

    WifiConnectionStarted(WifiConnectionStarted) on Network:
        [(Network, "wifi_connection_started")];
    WifiConnected(WifiConnected) on Network: [(Network, "wifi_connected")];
    WifiConnectionFailed(WifiConnectionFailed) on Network: [(Network, "wifi_connection_failed")];

    PiSync(PiSync) on Timesync: [(Event, "pi-sync")];
    CameraSync(CameraSync) on Timesync: [(Event, "camera-sync")];
    SyncFailed(SyncFailed) on Timesync: [(Event, "sync-failed")];
    ReliabilityLost(ReliabilityLost) on Timesync: [(Event, "reliability-lost")];

    PowerWarning(PowerWarning) on Power: [(Event, "power_warning")];
    PowerWarningCleared(PowerWarningCleared) on Power: [(Event, "power_warning_cleared")];
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

// ---------------------------------------------------------------------------------------------
// Frames that are neither replies nor events

/// `welcome.limits`: what a client must stay within (seeds 001–004).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsLimits {
    pub max_clients: usize,
    pub max_frame_bytes: usize,
    pub max_invalid_messages: u32,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub outbound_queue: usize,
    pub outbound_queue_bytes: usize,
    pub ping_interval_ms: u64,
    pub silence_timeout_ms: u64,
    pub status_interval_ms: u64,
}

/// The first frame a client gets, before the status blocks (`super::status_frame`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    pub client_id: u64,
    pub message: String,
    pub server_time: String,
    pub version: String,
    /// Every command `type` and alias of the command table.
    pub available_commands: Vec<String>,
    pub limits: WsLimits,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// Seconds since the server started.
    pub uptime: f64,
    /// WebSocket clients connected.
    pub clients: usize,
    pub timestamp: String,
}

/// `time-sync-request`: `requestId` at top level (the original) and in `data` (seed 000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSyncRequest {
    pub request_id: String,
    /// Unix ms.
    pub server_time: i64,
}
