//! The status blocks of `welcome`, `status_update` and `get_status`, typed.
//!
//! Each service owns one block and replaces it whole on the [`crate::app::StatusBoard`]; the
//! board keeps them typed and serializes them once per frame. Services that need another's
//! data read the typed block (never JSON by key).
//!
//! [`StatusBlock::same_for_clients`] says whether a new value changes anything a client
//! shows: only then does the hub send a (coalesced) `status_update`. Counters that move with
//! every shot or sample ride the periodic update and the events instead.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::messages::{BatteryEntry, UnsavedSession};
use crate::camera::CameraSettings;

/// A block on the status board.
pub trait StatusBlock: Serialize + Clone + PartialEq + Send + Sync + 'static {
    /// True when `self` and `other` show the same to a client (no `status_update` needed).
    fn same_for_clients(&self, other: &Self) -> bool {
        self == other
    }
}

/// Every block, in the order `welcome`/`status_update` list them. A block its service has
/// not published yet is null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusBlocks {
    pub camera: Option<CameraBlock>,
    pub discovery: Option<DiscoveryBlock>,
    pub network: Option<NetworkBlock>,
    pub power: Option<PowerBlock>,
    pub storage: Option<StorageBlock>,
    /// The camera's temperature status ("normal", "warning", …).
    pub temperature: Option<String>,
    pub intervalometer: Option<IntervalometerBlock>,
    pub timesync: Option<TimesyncBlock>,
}

impl StatusBlocks {
    /// The names of the blocks, in order.
    pub const NAMES: [&'static str; 8] = [
        "camera",
        "discovery",
        "network",
        "power",
        "storage",
        "temperature",
        "intervalometer",
        "timesync",
    ];
}

// ---------------------------------------------------------------------------------------------
// camera

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraBlock {
    pub connected: bool,
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub model: Option<String>,
    pub uuid: Option<String>,
    pub serial_number: Option<String>,
    pub battery: Option<BatteryEntry>,
    /// The main shooting settings as last reported.
    pub settings: CameraSettings,
    pub last_error: Option<String>,
    /// disconnected | probing | connected | backoff
    pub state: String,
    pub next_retry_at: Option<String>,
}

impl StatusBlock for CameraBlock {
    /// While the link retries, the error text and the next retry time change at every attempt:
    /// clients see them at the next periodic update; state changes go out at once.
    fn same_for_clients(&self, other: &Self) -> bool {
        let quiet = |b: &CameraBlock| CameraBlock {
            last_error: None,
            next_retry_at: None,
            ..b.clone()
        };
        quiet(self) == quiet(other) && self.last_error.is_some() == other.last_error.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageBlock {
    pub mounted: bool,
    pub name: Option<String>,
    #[serde(rename = "totalMB")]
    pub total_mb: u64,
    #[serde(rename = "freeMB")]
    pub free_mb: u64,
    #[serde(rename = "usedMB")]
    pub used_mb: u64,
    pub percent_used: f64,
    pub contents_number: Option<u64>,
}

impl StatusBlock for StorageBlock {
    /// The free space moves with every photo; the card view follows at the periodic update.
    fn same_for_clients(&self, other: &Self) -> bool {
        self.mounted == other.mounted && self.name == other.name
    }
}

impl StatusBlock for String {}

// ---------------------------------------------------------------------------------------------
// discovery

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraRefBlock {
    pub uuid: String,
    pub model_name: Option<String>,
    pub ip_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredCamera {
    pub uuid: String,
    pub model_name: Option<String>,
    pub serial_number: Option<String>,
    pub friendly_name: Option<String>,
    pub ip_address: String,
    pub port: u16,
    pub access_url: String,
    pub last_seen: String,
    pub online: bool,
    pub connected: bool,
    pub is_primary: bool,
    /// "ssdp" or "manual".
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryBlock {
    pub is_discovering: bool,
    pub total_cameras: usize,
    pub connected_cameras: usize,
    pub primary_camera: Option<CameraRefBlock>,
    pub cameras: BTreeMap<String, DiscoveredCamera>,
    pub last_search_at: Option<String>,
}

impl StatusBlock for DiscoveryBlock {
    /// `lastSeen`/`lastSearchAt` move with every SSDP packet and search.
    fn same_for_clients(&self, other: &Self) -> bool {
        let quiet = |b: &DiscoveryBlock| {
            let mut b = b.clone();
            b.last_search_at = None;
            for c in b.cameras.values_mut() {
                c.last_seen.clear();
            }
            b
        };
        quiet(self) == quiet(other)
    }
}

// ---------------------------------------------------------------------------------------------
// network

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApClient {
    pub mac: String,
    pub ip: String,
    pub hostname: Option<String>,
}

/// The client-side interface (`wlan0`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientInterface {
    pub active: bool,
    pub connected: bool,
    pub network: Option<String>,
    pub ip: Option<String>,
    pub signal: Option<u8>,
    /// NetworkManager's device state ("activated", "absent", …); null when unknown.
    pub state: Option<String>,
}

/// The access point (`ap0`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApInterface {
    pub active: bool,
    pub ssid: Option<String>,
    pub status: String,
    pub ip: Option<String>,
    pub interface: Option<String>,
    pub clients: Vec<ApClient>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetInterface {
    Client(ClientInterface),
    Ap(ApInterface),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WifiCountryBlock {
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBlock {
    /// False when NetworkManager cannot be reached (then `error` says why).
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireless_enabled: Option<bool>,
    /// By interface name: the client interface and the access point.
    pub interfaces: BTreeMap<String, NetInterface>,
    pub wifi_country: WifiCountryBlock,
}

impl StatusBlock for NetworkBlock {}

// ---------------------------------------------------------------------------------------------
// power

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupplyBlock {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub capacity: Option<f64>,
    pub status: Option<String>,
    pub voltage: Option<f64>,
    pub current: Option<f64>,
    pub online: Option<bool>,
}

/// `power.battery`: the first battery supply, or `{present: false}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerBattery {
    pub present: bool,
    #[serde(flatten)]
    pub supply: Option<SupplyBlock>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thermal {
    pub temperature: Option<f64>,
    pub unit: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleFlagsBlock {
    pub under_voltage: bool,
    pub arm_frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottledBlock {
    pub raw: String,
    pub current: ThrottleFlagsBlock,
    pub since_boot: ThrottleFlagsBlock,
    /// "sysfs" or "vcgencmd".
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerWarningBlock {
    pub kind: String,
    pub severity: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimateBlock {
    pub shots_by_battery: Option<u64>,
    pub shots_by_card: Option<u64>,
    pub shots_left: Option<u64>,
    pub time_left_seconds: Option<u64>,
    /// "battery" or "card".
    pub limited_by: Option<String>,
    /// Measured bytes per release (free space / this = shots the card holds).
    pub bytes_per_shot: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerBlock {
    pub is_raspberry_pi: bool,
    pub model: Option<String>,
    pub battery: PowerBattery,
    pub supplies: Vec<SupplyBlock>,
    pub thermal: Thermal,
    pub throttled: Option<ThrottledBlock>,
    /// Whole seconds.
    pub uptime: Option<u64>,
    pub recommendations: Vec<String>,
    pub warnings: Vec<PowerWarningBlock>,
    pub estimate: Option<EstimateBlock>,
    pub last_sample: String,
}

impl StatusBlock for PowerBlock {
    /// A sample that only moves readings (time, uptime, temperature, charge) waits for the
    /// periodic update; warnings, throttling and supplies coming or going go out at once.
    fn same_for_clients(&self, other: &Self) -> bool {
        let quiet = |b: &PowerBlock| PowerBlock {
            uptime: None,
            last_sample: String::new(),
            thermal: Thermal::default(),
            battery: PowerBattery {
                present: b.battery.present,
                supply: None,
            },
            supplies: Vec::new(),
            estimate: None,
            ..b.clone()
        };
        quiet(self) == quiet(other) && self.supplies.len() == other.supplies.len()
    }
}

// ---------------------------------------------------------------------------------------------
// intervalometer

/// A session's options as clients see them. `stopTime` is the ISO-8601 instant the session
/// stops at (the original's), `stopTimeOfDay` the "HH:MM" it was asked with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOptionsBlock {
    pub interval: f64,
    pub stop_condition: String,
    pub total_shots: Option<u32>,
    pub stop_time: Option<String>,
    pub stop_time_of_day: Option<String>,
    /// Seconds.
    pub duration: Option<f64>,
    pub overrun_policy: Option<String>,
    pub bulb: Option<f64>,
    /// `startAt` / `stopAt` as asked (a clock time or `{event, offsetMinutes}`); the resolved
    /// instants are `stats.startTime` and `stopTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<crate::protocol::TimeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<crate::protocol::TimeSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimingStats {
    pub mean_error_ms: Option<f64>,
    pub p99_error_ms: Option<f64>,
    pub max_error_ms: Option<f64>,
}

/// A session's counters (`stats` in the block, the shot events and the end events).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    pub start_time: String,
    /// Set once the session ended.
    pub end_time: Option<String>,
    pub shots_taken: u64,
    pub shots_successful: u64,
    pub shots_failed: u64,
    pub shots_skipped: u64,
    pub current_shot: u64,
    pub next_shot_time: Option<String>,
    pub overtime_shots: u64,
    pub total_overtime_seconds: f64,
    pub max_overtime_seconds: f64,
    /// Seconds.
    pub last_shot_duration: Option<f64>,
    /// Seconds (the original's field).
    pub total_shot_duration_seconds: f64,
    pub timing: TimingStats,
}

/// The session part of the `intervalometer` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBlock {
    pub session_id: String,
    pub title: String,
    pub camera_connected: bool,
    pub options: SessionOptionsBlock,
    pub stats: SessionStats,
    pub remaining_shots: Option<u64>,
    /// Frames still to come under any bounded stop condition (shots, duration, stop-at): what
    /// the card and battery are judged against.
    pub frames_left: Option<u64>,
    pub estimated_end_time: Option<String>,
    pub success_rate: Option<f64>,
    pub average_shot_duration: Option<f64>,
    pub end_reason: Option<String>,
    /// Frames failing in a row now (null when the last frame was taken).
    pub outage: Option<OutageBlock>,
    /// The last such run that ended.
    pub last_outage: Option<OutageBlock>,
}

/// A run of failing frames (the camera not answering).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutageBlock {
    pub since: String,
    pub until: Option<String>,
    pub frames_missed: u64,
    pub reason: String,
}

/// `intervalometer`: the running (or last) session, and the unsaved one if any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalometerBlock {
    /// idle | scheduled | running | stopping | completed | stopped | error
    pub state: String,
    pub running: bool,
    #[serde(flatten)]
    pub session: Option<SessionBlock>,
    pub unsaved_session: Option<UnsavedSession>,
}

impl IntervalometerBlock {
    pub fn idle() -> IntervalometerBlock {
        IntervalometerBlock {
            state: "idle".into(),
            running: false,
            session: None,
            unsaved_session: None,
        }
    }
}

impl StatusBlock for IntervalometerBlock {
    /// Per-shot progress (counters, next shot, estimates) goes out in the shot events; a
    /// status_update follows state changes, the camera coming or going, the unsaved session.
    fn same_for_clients(&self, other: &Self) -> bool {
        let quiet = |b: &IntervalometerBlock| {
            let mut b = b.clone();
            if let Some(s) = &mut b.session {
                s.stats = SessionStats::default();
                s.remaining_shots = None;
                s.frames_left = None;
                s.estimated_end_time = None;
                s.success_rate = None;
                s.average_shot_duration = None;
                // The count grows with every missed frame (shot events carry it); the outage
                // starting or ending is what goes out at once.
                for o in [&mut s.outage, &mut s.last_outage].into_iter().flatten() {
                    o.frames_missed = 0;
                }
            }
            b
        };
        quiet(self) == quiet(other)
    }
}

// ---------------------------------------------------------------------------------------------
// timesync

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiTimeBlock {
    pub is_synchronized: bool,
    /// none | low | medium | high
    pub reliability: String,
    pub last_sync_time: Option<String>,
    pub source: Option<String>,
    pub offset_ms: Option<i64>,
    pub uncertainty_ms: Option<i64>,
    pub step_pending: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraTimeBlock {
    pub connected: bool,
    pub is_synchronized: bool,
    pub last_sync_time: Option<String>,
    pub offset_ms: Option<i64>,
}

/// The original's view of which client the Pi's time comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiProxyState {
    /// The original's vocabulary: `none`, `ap0-device` (synced from a phone on the access
    /// point) or `wlan0-device` (from a client reached over the Wi-Fi client interface).
    pub state: String,
    pub valid: bool,
    pub age_seconds: Option<u64>,
    /// skylapse's own: none | synchronized | stale.
    pub sync_state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimesyncBlock {
    pub pi: PiTimeBlock,
    pub camera: CameraTimeBlock,
    pub pi_proxy_state: PiProxyState,
    pub connected_clients: usize,
    pub client_timezone: Option<String>,
}

impl StatusBlock for TimesyncBlock {
    /// The age of the last sync grows every second: it rides the periodic update.
    fn same_for_clients(&self, other: &Self) -> bool {
        let quiet = |b: &TimesyncBlock| {
            let mut b = b.clone();
            b.pi_proxy_state.age_seconds = None;
            b.pi.uncertainty_ms = None;
            b
        };
        quiet(self) == quiet(other)
    }
}
