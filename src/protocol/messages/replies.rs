//! Replies of the web layer, the coordinator, discovery, Wi-Fi, time sync, power and sun.

use serde::{Deserialize, Serialize};

use super::*;

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

/// `set_location`: what is remembered now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocationSet(pub LocationReply);
