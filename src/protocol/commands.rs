//! Client → server: the command table and the payload types.
//!
//! [`commands!`] below is the one place where a command is named: its wire name, the aliases
//! the original service (or seed 000) uses, the service that owns it, whether it only reads,
//! and the type of its reply. Everything else is derived from the table: [`Command::parse`],
//! `welcome.availableCommands` ([`command_names`]), routing in the coordinator
//! ([`Command::owner`]), the SERVICE_UNAVAILABLE answer ([`Owner::unavailable`]), the REST
//! routes (`routes.rs` names commands by their table entry) and `docs/PROTOCOL.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::messages::{self as m, ReplyPayload};
use super::{ApiError, ErrorCode, Secret};

/// Who answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// The web layer itself (ping, subscriptions, connections).
    Web,
    /// The coordinator (status snapshots).
    App,
    Camera,
    Intervalometer,
    Discovery,
    Wifi,
    Timesync,
    Power,
    /// Sun times and the remembered location.
    Sun,
}

impl Owner {
    /// The name the documentation uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Web => "web",
            Owner::App => "app",
            Owner::Camera => "camera",
            Owner::Intervalometer => "intervalometer",
            Owner::Discovery => "discovery",
            Owner::Wifi => "wifi",
            Owner::Timesync => "timesync",
            Owner::Power => "power",
            Owner::Sun => "sun",
        }
    }

    pub const SERVICES: [Owner; 7] = [
        Owner::Camera,
        Owner::Intervalometer,
        Owner::Discovery,
        Owner::Wifi,
        Owner::Timesync,
        Owner::Power,
        Owner::Sun,
    ];

    /// The part of skylapse that owns the command, for people.
    pub fn part(self) -> &'static str {
        match self {
            Owner::Web | Owner::App => "The web server",
            Owner::Camera => "Camera control",
            Owner::Intervalometer => "The intervalometer",
            Owner::Discovery => "Camera discovery",
            Owner::Wifi => "Wi-Fi management (NetworkManager)",
            Owner::Timesync => "Time synchronisation",
            Owner::Power => "Power monitoring",
            Owner::Sun => "Sun times and location",
        }
    }

    /// The answer to a command whose service is not running.
    pub fn unavailable(self) -> ApiError {
        ApiError::unavailable(format!(
            "{} is not available on this skylapse instance",
            self.part()
        ))
    }
}

/// Whether a command only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// One row of the command table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandSpec {
    /// The wire name (`type`).
    pub name: &'static str,
    /// Other names accepted for it (the original's, seed 000's, `-`/`_` variants).
    pub aliases: &'static [&'static str],
    pub owner: Owner,
    pub access: Access,
    /// The `type` of the direct reply.
    pub reply: &'static str,
    /// The Rust type of the payload (`data`), for the documentation.
    pub payload: &'static str,
}

impl CommandSpec {
    pub fn read_only(&self) -> bool {
        self.access == Access::Read
    }

    /// The name and every alias.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

fn payload<T: DeserializeOwned>(data: Value) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| {
        // serde's message names the field and the expected type; it never echoes values.
        let msg = e.to_string();
        let code = if msg.starts_with("missing field") {
            ErrorCode::MissingParameter
        } else {
            ErrorCode::InvalidParameter
        };
        ApiError::new(code, format!("Invalid parameters: {msg}"))
    })
}

macro_rules! commands {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($payload:ty))? =
            $name:literal $([$($alias:literal),* $(,)?])?, $owner:ident, $access:ident, $reply:ty;
    )*) => {
        /// Every client → server command, typed.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $( $(#[$doc])* $variant $(($payload))?, )*
        }

        /// The command table (see the module doc).
        pub const COMMANDS: &[CommandSpec] = &[
            $( CommandSpec {
                name: $name,
                aliases: &[$($($alias),*)?],
                owner: Owner::$owner,
                access: Access::$access,
                reply: <$reply as ReplyPayload>::KIND,
                payload: commands!(@payload $($payload)?),
            }, )*
        ];

        impl Command {
            /// Types a payload by its wire name (or an alias).
            pub fn parse(kind: &str, data: Value) -> Result<Command, ApiError> {
                let data = if data.is_null() { Value::Object(Map::new()) } else { data };
                $(
                    if kind == $name $($(|| kind == $alias)*)? {
                        return Ok(commands!(@build $variant data $($payload)?));
                    }
                )*
                // Echo the type only if it is printable (it is already ≤ 64 bytes).
                let shown: String = kind.chars().filter(|c| !c.is_control()).collect();
                Err(ApiError::new(
                    ErrorCode::UnknownMessage,
                    format!("Unknown message type: {shown}"),
                ))
            }

            /// The wire name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Command::$variant { .. } => $name, )*
                }
            }
        }

        /// A representative payload of the command `name` (None: it takes none), for the
        /// documentation of payload fields (`super::contracts`).
        #[cfg(test)]
        pub(crate) fn payload_sample(name: &str, mode: super::contracts::Mode) -> Option<Value> {
            $( if name == $name { return commands!(@sample mode $($payload)?); } )*
            None
        }
    };
    (@sample $mode:ident) => { None };
    (@sample $mode:ident $p:ty) => {
        Some(super::contracts::to_json(&<$p as super::contracts::Sample>::sample($mode)))
    };
    (@payload) => { "Empty" };
    (@payload $p:ty) => { stringify!($p) };
    (@build $variant:ident $data:ident) => { Command::$variant };
    (@build $variant:ident $data:ident $p:ty) => { Command::$variant(payload($data)?) };
}

commands! {
    Ping = "ping" ["heartbeat"], Web, Read, m::Pong;
    Subscribe(Channels) = "subscribe", Web, Write, m::Subscribed;
    Unsubscribe(Channels) = "unsubscribe", Web, Write, m::Unsubscribed;
    GetStatus = "get_status", App, Read, m::Status;
    GetSystemStatus = "get_system_status", App, Read, m::SystemStatus;
    GetWsConnections = "get_ws_connections", Web, Read, m::WsConnections;

    GetCameraStatus = "get_camera_status", Camera, Read, m::CameraStatus;
    TakePhoto(TakePhoto) = "take_photo", Camera, Write, m::PhotoTakenReply;
    GetCameraSettings = "get_camera_settings", Camera, Read, m::CameraSettingsReply;
    SetCameraSetting(SetCameraSetting) = "set_camera_setting", Camera, Write, m::CameraSettingSet;
    GetCameraBattery = "get_camera_battery", Camera, Read, m::CameraBattery;
    GetCameraStorage = "get_camera_storage", Camera, Read, m::CameraStorage;
    GetCameraDatetime = "get_camera_datetime", Camera, Read, m::CameraDatetime;
    TakeTestPhoto = "take_test_photo", Camera, Write, m::TestPhoto;
    ListTestPhotos = "list_test_photos", Camera, Read, m::TestPhotos;
    GetTestPhoto(IdRef) = "get_test_photo", Camera, Read, m::TestPhotoInfoReply;
    DeleteTestPhoto(IdRef) = "delete_test_photo", Camera, Write, m::TestPhotoDeleted;
    /// REST only: the test photo's bytes (`Reply::body`).
    GetTestPhotoFile(IdRef) = "get_test_photo_file", Camera, Read, m::TestPhotoFile;
    AcceptCameraCertificate(AcceptCertificate) = "accept_camera_certificate", Camera, Write, m::CertificateAccepted;
    /// One live-view frame, kept (the stream itself is `GET /api/camera/liveview/stream`).
    CaptureLiveview(LiveViewSize) = "capture_liveview" ["capture-liveview"], Camera, Write, m::LiveViewCaptured;
    ListLiveviewImages = "list_liveview_images", Camera, Read, m::LiveViewImages;
    DeleteLiveviewImage(IdRef) = "delete_liveview_image", Camera, Write, m::LiveViewImageDeleted;
    ClearLiveviewImages = "clear_liveview_images", Camera, Write, m::LiveViewCleared;
    /// REST only: a kept frame's bytes (`Reply::body`).
    GetLiveviewImageFile(IdRef) = "get_liveview_image_file", Camera, Read, m::LiveViewImageFile;
    GetLiveviewStatus = "get_liveview_status", Camera, Read, m::LiveViewStatus;
    /// Focus one step: near1..near3 / far1..far3 (small to large).
    DriveFocus(DriveFocus) = "drive_focus", Camera, Write, m::FocusDriven;

    ValidateInterval(ValidateInterval) = "validate_interval", Intervalometer, Read, m::IntervalValidationReply;
    StartIntervalometer(StartIntervalometer) =
        "start_intervalometer" ["start_intervalometer_with_title"], Intervalometer, Write, m::IntervalometerStart;
    /// What a start with this payload would do, without starting: the resolved start and stop,
    /// frames, and the planned exposure curve (keyframes), the auto-ramp's target brightness
    /// and the sun's altitude, sampled (at most 500 points). Same planning code as the start.
    PlanSession(StartIntervalometer) = "plan_session" ["preview_ramp"], Intervalometer, Read, m::SessionPlan;
    StopIntervalometer = "stop_intervalometer", Intervalometer, Write, m::IntervalometerStop;
    GetIntervalometerStatus = "get_intervalometer_status", Intervalometer, Read, m::IntervalometerStatus;
    GetUnsavedSession = "get_unsaved_session", Intervalometer, Read, m::UnsavedSessionReply;
    SaveSessionAsReport(SessionRef) = "save_session_as_report", Intervalometer, Write, m::SessionSaved;
    DiscardSession(SessionRef) = "discard_session", Intervalometer, Write, m::SessionDiscarded;
    ResumeSession(SessionRef) = "resume_session", Intervalometer, Write, m::SessionResumed;
    GetTimelapseReports = "get_timelapse_reports", Intervalometer, Read, m::TimelapseReports;
    GetTimelapseReport(ReportRef) = "get_timelapse_report", Intervalometer, Read, m::TimelapseReport;
    UpdateReportTitle(UpdateReportTitle) = "update_report_title", Intervalometer, Write, m::ReportTitleUpdated;
    DeleteTimelapseReport(ReportRef) = "delete_timelapse_report", Intervalometer, Write, m::ReportDeleted;
    /// The shots of a report as CSV (`Reply::body`).
    GetReportCsv(ReportRef) = "get_report_csv", Intervalometer, Read, m::ReportCsv;
    /// SVG chart of per-shot timing error and duration (`Reply::body`).
    GetReportChart(ReportRef) = "get_report_chart", Intervalometer, Read, m::ReportChart;

    /// A camera-link operation (works without discovery).
    ConnectToIp(ConnectToIp) = "connect_to_ip", Camera, Write, m::ConnectToIpResult;
    /// The camera's address now, else the last one that answered (`last-camera.json`).
    GetLastCameraIp = "get_last_camera_ip", Camera, Read, m::LastCameraIp;
    DiscoveryScan = "discovery_scan", Discovery, Write, m::DiscoveryScanStarted;
    GetDiscoveryStatus = "get_discovery_status", Discovery, Read, m::DiscoveryStatus;
    SetPrimaryCamera(CameraRef) = "set_primary_camera", Discovery, Write, m::PrimaryCameraSet;


    GetNetworkStatus = "get_network_status", Wifi, Read, m::NetworkStatus;
    NetworkScan(NetworkScan) = "network_scan", Wifi, Read, m::NetworkScanResult;
    NetworkConnect(NetworkConnect) = "network_connect", Wifi, Write, m::NetworkConnectResult;
    NetworkDisconnect(Force) = "network_disconnect", Wifi, Write, m::NetworkDisconnectResult;
    WifiEnable = "wifi_enable", Wifi, Write, m::WifiEnableResult;
    WifiDisable(Force) = "wifi_disable", Wifi, Write, m::WifiDisableResult;
    GetWifiEnabled = "get_wifi_enabled", Wifi, Read, m::WifiEnabled;
    GetSavedNetworks = "get_saved_networks", Wifi, Read, m::SavedNetworks;
    GetWifiCountry = "get_wifi_country", Wifi, Read, m::WifiCountryReply;
    SetWifiCountry(WifiCountry) = "set_wifi_country", Wifi, Write, m::WifiCountrySet;
    GetWifiCountries = "get_wifi_countries", Wifi, Read, m::WifiCountries;
    ConfigureAccessPoint(ConfigureAccessPoint) = "configure_access_point", Wifi, Write, m::AccessPointConfigured;

    TimeSyncResponse(TimeSyncResponse) = "time-sync-response" ["time_sync_response"], Timesync, Write, m::TimeSyncResult;
    GpsResponse(GpsResponse) = "gps-response" ["gps_response"], Timesync, Write, m::GpsResult;
    ManualCameraSync = "manual_camera_sync" ["manual-camera-sync"], Timesync, Write, m::CameraSyncStarted;
    ManualTimeSync(ManualTimeSync) = "manual-time-sync" ["manual_time_sync"], Timesync, Write, m::ManualTimeSyncResult;
    GetTimeSyncStatus = "get-time-sync-status" ["get_time_sync_status"], Timesync, Read, m::TimeSyncStatus;
    /// Pi wall time, zone and reliability (`GET /api/system/time`).
    GetSystemTime = "get_system_time", Timesync, Read, m::SystemTimeReply;

    GetPowerStatus = "get_power_status", Power, Read, m::PowerStatus;

    /// Sun and twilight times for a date and place (`GET /api/sun`); lat/lon default to the
    /// remembered location, the date to today there.
    GetSunTimes(GetSunTimes) = "get_sun_times", Sun, Read, m::SunTimesReply;
    /// Remember a location set by hand (a phone's GPS fix does the same through gps-response).
    SetLocation(SetLocation) = "set_location", Sun, Write, m::LocationSet;
    GetLocation = "get_location", Sun, Read, m::LocationReply;
}

/// `welcome.availableCommands`: every wire name and alias, in table order.
pub fn command_names() -> Vec<&'static str> {
    COMMANDS.iter().flat_map(|c| c.names()).collect()
}

/// The table row of a wire name or alias.
pub fn spec_of(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.names().any(|n| n == name))
}

impl Command {
    /// This command's table row.
    pub fn spec(&self) -> &'static CommandSpec {
        let name = self.name();
        COMMANDS
            .iter()
            .find(|c| c.name == name)
            .expect("every command has a table row")
    }

    pub fn owner(&self) -> Owner {
        self.spec().owner
    }

    /// Commands whose only effect is a read: they never need a policy check.
    pub fn is_read_only(&self) -> bool {
        self.spec().read_only()
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The reply-less empty payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channels {
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TakePhoto {
    #[serde(default)]
    pub af: Option<bool>,
}

/// `capture_liveview {size?}`: small or medium (default: the running stream's, else medium).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveViewSize {
    #[serde(default)]
    pub size: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriveFocus {
    pub step: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetCameraSetting {
    pub setting: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateInterval {
    pub interval: f64,
    #[serde(default)]
    pub exposure: Option<f64>,
}

/// `start_intervalometer` / `start_intervalometer_with_title`. Accepts seed 001's `totalShots`
/// for `shots`, and infers `stopCondition` when an old client leaves it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartIntervalometer {
    /// Seconds between shots.
    pub interval: f64,
    #[serde(default)]
    pub stop_condition: Option<String>,
    #[serde(default, alias = "totalShots")]
    pub shots: Option<u32>,
    /// "HH:MM", next occurrence in the configured time zone.
    #[serde(default)]
    pub stop_time: Option<String>,
    /// Seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub title: Option<String>,
    /// Bulb exposure in seconds (> 30 s exposures).
    #[serde(default)]
    pub bulb: Option<f64>,
    /// Exposure in seconds, for validation only.
    #[serde(default)]
    pub exposure: Option<f64>,
    /// "next-slot" (default) or "immediately-once".
    #[serde(default)]
    pub overrun_policy: Option<String>,
    /// Scheduled start: ISO-8601, "HH:MM" (next occurrence) or `{event, offsetMinutes}` (the
    /// next such sun event at the remembered location).
    #[serde(default)]
    pub start_at: Option<TimeSpec>,
    /// Stop: "HH:MM" (as stopTime), ISO-8601, or `{event, offsetMinutes}` (the first such sun
    /// event after the start). Implies `stopCondition: "stop-at"`.
    #[serde(default)]
    pub stop_at: Option<TimeSpec>,
    /// A keyframed ramp of Tv/ISO/aperture (interpolated in stops between keyframes).
    #[serde(default)]
    pub keyframes: Option<Vec<KeyframeSpec>>,
    /// Automatic exposure ramping from each frame's thumbnail (needs a known location).
    #[serde(default)]
    pub auto_ramp: Option<Box<AutoRampSpec>>,
    /// Autofocus before each shot (default false).
    #[serde(default)]
    pub af: Option<bool>,
}

/// One keyframe of a ramp: when (`at`: ISO-8601, "HH:MM" or `{event, offsetMinutes}`; or
/// `elapsedSeconds` after the first frame) and the CCAPI values it sets (`tv`, `iso`, `av`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyframeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<TimeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av: Option<String>,
    /// Not supported yet (the grid keeps one interval); refused with a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    /// The resolved instant (Unix ms), set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
}

/// `autoRamp`: the user's knobs (defaults: day target 0.18, night 2 EV darker, 1/3 EV per
/// frame at most, ISO up to 6400; the aperture stays where it is unless `minAv`/`maxAv` allow
/// it to move).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoRampSpec {
    #[serde(default)]
    pub day_target: Option<f64>,
    #[serde(default)]
    pub night_bias_ev: Option<f64>,
    #[serde(default)]
    pub max_step_ev: Option<f64>,
    #[serde(default)]
    pub max_iso: Option<f64>,
    /// Let the aperture move too, last (after Tv and ISO), between these two CCAPI values
    /// (`"f2.8"` widest, `"f11"` narrowest); without both it stays where it is.
    #[serde(default)]
    pub min_av: Option<String>,
    #[serde(default)]
    pub max_av: Option<String>,
}

/// A moment as a client names it: a clock time (ISO-8601 or "HH:MM") or a sun event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TimeSpec {
    Clock(String),
    Sun(SunRef),
}

/// `{event: "sunset", offsetMinutes: -30}`: 30 minutes before sunset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SunRef {
    /// A sun event's wire name (`sunset`, `civilDusk`, …; see `crate::sun::SunEvent`).
    pub event: String,
    #[serde(default)]
    pub offset_minutes: f64,
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(TimeSpec::Clock(s)),
            v @ Value::Object(_) => serde_json::from_value(v).map(TimeSpec::Sun).map_err(|e| {
                D::Error::custom(format!("a sun time is {{event, offsetMinutes}}: {e}"))
            }),
            _ => Err(D::Error::custom(
                "a time is ISO-8601, \"HH:MM\" or {event, offsetMinutes}",
            )),
        }
    }
}

impl TimeSpec {
    /// How a person reads it: `sunset-30min`, `21:30`.
    pub fn label(&self) -> String {
        match self {
            TimeSpec::Clock(s) => s.clone(),
            TimeSpec::Sun(r) if r.offset_minutes == 0.0 => r.event.clone(),
            TimeSpec::Sun(r) => format!("{}{:+}min", r.event, r.offset_minutes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRef {
    pub session_id: String,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRef {
    #[serde(alias = "reportId")]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateReportTitle {
    #[serde(default, alias = "reportId")]
    pub id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    pub title: String,
}

/// A port given as a number or as a string ("443" in seed 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .map(Port)
                .ok_or_else(|| D::Error::custom("port must be 1..65535")),
            Value::String(s) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(Port)
                .ok_or_else(|| D::Error::custom("port must be 1..65535")),
            _ => Err(D::Error::custom("port must be a number")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectToIp {
    pub ip: String,
    #[serde(default)]
    pub port: Option<Port>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRef {
    pub uuid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkScan {
    #[serde(default)]
    pub refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConnect {
    pub ssid: String,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Change the Wi-Fi even while a session runs.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Force {
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WifiCountry {
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSyncResponse {
    #[serde(default)]
    pub request_id: Option<Value>,
    /// Client wall time, Unix ms (a number) or ISO-8601 (a string).
    pub client_time: Value,
    #[serde(default)]
    pub server_time: Option<Value>,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsResponse {
    /// Unix ms or ISO-8601.
    pub timestamp: Value,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Metres (a number) or "high"/"low" (seed 000).
    #[serde(default)]
    pub accuracy: Option<Value>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTimeSync {
    /// Unix ms or ISO-8601; the original's `POST /api/system/time` names it `timestamp`.
    #[serde(alias = "timestamp")]
    pub client_time: Value,
    #[serde(default)]
    pub timezone: Option<String>,
}

/// `{id}`: a string or a number (test photo ids are numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdRef {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcceptCertificate {
    /// The camera (UDN/serial) whose new certificate to accept; default: the current one.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// The original's `POST /api/network/accesspoint/configure`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigureAccessPoint {
    pub ssid: String,
    #[serde(default)]
    pub passphrase: Option<Secret>,
    #[serde(default)]
    pub channel: Option<u32>,
    #[serde(default)]
    pub hidden: Option<bool>,
}

/// `get_sun_times`: all optional (see the command table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetSunTimes {
    #[serde(default, alias = "latitude")]
    pub lat: Option<f64>,
    #[serde(default, alias = "longitude")]
    pub lon: Option<f64>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// `set_location`: degrees, north and east positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetLocation {
    #[serde(alias = "latitude")]
    pub lat: f64,
    #[serde(alias = "longitude")]
    pub lon: f64,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(D::Error::custom("id must be a string or a number")),
    }
}
