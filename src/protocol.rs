//! The wire protocol (PROTOCOL.md): client commands, server frames, error envelope.
//!
//! Parsing is two steps so every failure gets the message the protocol promises:
//! 1. [`parse_envelope`]: JSON with a string `type` → else "Invalid message format".
//! 2. [`Command::parse`]: known `type` → typed payload; unknown → "Unknown message type: T";
//!    payload of the wrong shape → INVALID_PARAMETER naming the field.
//!
//! Payloads are read from `data`; when a client puts them at top level (seed 002's
//! `{"type":"subscribe","channels":[…]}`) those fields are used instead.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::SystemTime;

use crate::util::iso8601;

// ---------------------------------------------------------------------------------------------
// Errors

/// Error codes of PROTOCOL.md (plus NOT_FOUND and CERTIFICATE_CHANGED for REST and TLS pinning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    CameraOffline,
    CameraBusy,
    PhotoFailed,
    CameraTimeout,
    NetworkError,
    ConnectionFailed,
    WifiScanFailed,
    PermissionDenied,
    ServiceUnavailable,
    SystemError,
    InvalidParameter,
    MissingParameter,
    ValidationFailed,
    SessionNotFound,
    RateLimited,
    UnknownMessage,
    InvalidMessage,
    NotFound,
    CertificateChanged,
    PayloadTooLarge,
}

impl ErrorCode {
    /// The HTTP status a REST reply carries for this code.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidParameter | MissingParameter | ValidationFailed | InvalidMessage
            | UnknownMessage => 400,
            PermissionDenied => 403,
            NotFound | SessionNotFound => 404,
            CameraBusy => 409,
            PayloadTooLarge => 413,
            RateLimited => 429,
            CameraOffline | ServiceUnavailable | WifiScanFailed => 503,
            CameraTimeout => 504,
            ConnectionFailed | NetworkError | PhotoFailed | CertificateChanged => 502,
            SystemError => 500,
        }
    }
}

/// An error as the client sees it. `message` is for people; `code` is for programs.
/// Never put secrets in either.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    pub message: String,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            code,
            operation: None,
            details: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SystemError, message)
    }
    pub fn with_operation(mut self, op: impl Into<String>) -> Self {
        self.operation = Some(op.into());
        self
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

// ---------------------------------------------------------------------------------------------
// Secrets

/// A secret string (Wi-Fi password, token). Its `Debug`/`Display` never show the value, so it
/// cannot leak into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that must hand it on (D-Bus, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

// ---------------------------------------------------------------------------------------------
// Client → server

/// A parsed frame before its payload is typed.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: String,
    pub data: Value,
    /// `id` or `requestId`, echoed as `id` on every direct reply (seed 004).
    pub id: Option<Value>,
    /// `"ack": true` asks for an extra `operation_result` (seed 000).
    pub ack: bool,
}

pub fn parse_envelope(text: &str) -> Result<Envelope, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidMessage, "Invalid message format");
    let value: Value = serde_json::from_str(text).map_err(|_| invalid())?;
    let Value::Object(mut obj) = value else {
        return Err(invalid());
    };
    let kind = match obj.remove("type") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s,
        _ => return Err(invalid()),
    };
    let id = obj
        .remove("id")
        .or_else(|| obj.remove("requestId"))
        .filter(|v| !v.is_null());
    if let Some(id) = &id {
        // Ids are echoed back; keep them small and scalar.
        let ok = match id {
            Value::String(s) => s.len() <= 128,
            Value::Number(_) => true,
            _ => false,
        };
        if !ok {
            return Err(invalid());
        }
    }
    let ack = matches!(obj.remove("ack"), Some(Value::Bool(true)));
    let data = match obj.remove("data") {
        Some(Value::Null) | None => Value::Object(obj),
        Some(d) => d,
    };
    Ok(Envelope {
        kind,
        data,
        id,
        ack,
    })
}

/// The reply-less empty payload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Channels {
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TakePhoto {
    #[serde(default)]
    pub af: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetCameraSetting {
    pub setting: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValidateInterval {
    pub interval: f64,
    #[serde(default)]
    pub exposure: Option<f64>,
}

/// `start_intervalometer` / `start_intervalometer_with_title`. Accepts seed 001's `totalShots`
/// for `shots`, and infers `stopCondition` when an old client leaves it out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Scheduled start, ISO-8601 or "HH:MM".
    #[serde(default)]
    pub start_at: Option<String>,
    /// Autofocus before each shot (default false).
    #[serde(default)]
    pub af: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRef {
    pub session_id: String,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportRef {
    #[serde(alias = "reportId")]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateReportTitle {
    #[serde(default, alias = "reportId")]
    pub id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    pub title: String,
}

/// A port given as a number or as a string ("443" in seed 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConnectToIp {
    pub ip: String,
    #[serde(default)]
    pub port: Option<Port>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CameraRef {
    pub uuid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NetworkScan {
    #[serde(default)]
    pub refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetworkConnect {
    pub ssid: String,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Change the Wi-Fi even while a session runs.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Force {
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WifiCountry {
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTimeSync {
    pub client_time: Value,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AcceptCertificate {
    /// The camera (UDN/serial) whose new certificate to accept; default: the current one.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// Every client → server command. `Command::parse` maps the wire names (and their aliases).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Ping,
    Subscribe(Channels),
    Unsubscribe(Channels),
    GetStatus,
    GetCameraStatus,
    TakePhoto(TakePhoto),
    GetCameraSettings,
    SetCameraSetting(SetCameraSetting),
    GetCameraBattery,
    GetCameraStorage,
    GetCameraDatetime,
    TakeTestPhoto,
    ListTestPhotos,
    DeleteTestPhoto(IdRef),
    /// REST only: the test photo's bytes (`Reply::body`).
    GetTestPhotoFile(IdRef),
    AcceptCameraCertificate(AcceptCertificate),
    ValidateInterval(ValidateInterval),
    StartIntervalometer(StartIntervalometer),
    StopIntervalometer,
    GetIntervalometerStatus,
    GetUnsavedSession,
    SaveSessionAsReport(SessionRef),
    DiscardSession(SessionRef),
    ResumeSession(SessionRef),
    GetTimelapseReports,
    GetTimelapseReport(ReportRef),
    UpdateReportTitle(UpdateReportTitle),
    DeleteTimelapseReport(ReportRef),
    /// The shots of a report as CSV (`Reply::body`).
    GetReportCsv(ReportRef),
    /// SVG chart of per-shot timing error and duration (`Reply::body`).
    GetReportChart(ReportRef),
    ConnectToIp(ConnectToIp),
    DiscoveryScan,
    GetDiscoveryStatus,
    SetPrimaryCamera(CameraRef),
    GetNetworkStatus,
    NetworkScan(NetworkScan),
    NetworkConnect(NetworkConnect),
    NetworkDisconnect(Force),
    WifiEnable,
    WifiDisable(Force),
    GetWifiCountry,
    SetWifiCountry(WifiCountry),
    TimeSyncResponse(TimeSyncResponse),
    GpsResponse(GpsResponse),
    ManualCameraSync,
    ManualTimeSync(ManualTimeSync),
    GetTimeSyncStatus,
    /// Pi wall time, zone and reliability (`GET /api/system/time`).
    GetSystemTime,
    GetSystemStatus,
    GetPowerStatus,
    GetWsConnections,
}

/// Wire names the server accepts, reported in `welcome.availableCommands`.
pub const COMMAND_NAMES: &[&str] = &[
    "ping",
    "subscribe",
    "unsubscribe",
    "get_status",
    "get_camera_status",
    "take_photo",
    "get_camera_settings",
    "set_camera_setting",
    "get_camera_battery",
    "get_camera_storage",
    "get_camera_datetime",
    "take_test_photo",
    "list_test_photos",
    "delete_test_photo",
    "get_test_photo_file",
    "accept_camera_certificate",
    "validate_interval",
    "start_intervalometer",
    "start_intervalometer_with_title",
    "stop_intervalometer",
    "get_intervalometer_status",
    "get_unsaved_session",
    "save_session_as_report",
    "discard_session",
    "resume_session",
    "get_timelapse_reports",
    "get_timelapse_report",
    "update_report_title",
    "delete_timelapse_report",
    "get_report_csv",
    "get_report_chart",
    "connect_to_ip",
    "discovery_scan",
    "get_discovery_status",
    "set_primary_camera",
    "get_network_status",
    "network_scan",
    "network_connect",
    "network_disconnect",
    "wifi_enable",
    "wifi_disable",
    "get_wifi_country",
    "set_wifi_country",
    "time-sync-response",
    "gps-response",
    "manual_camera_sync",
    "manual-time-sync",
    "get-time-sync-status",
    "get_system_time",
    "get_system_status",
    "get_power_status",
    "get_ws_connections",
];

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

impl Command {
    /// Types a payload by its wire name.
    pub fn parse(kind: &str, data: Value) -> Result<Command, ApiError> {
        use Command::*;
        let data = if data.is_null() {
            Value::Object(Map::new())
        } else {
            data
        };
        Ok(match kind {
            "ping" | "heartbeat" => Ping,
            "subscribe" => Subscribe(payload(data)?),
            "unsubscribe" => Unsubscribe(payload(data)?),
            "get_status" => GetStatus,
            "get_camera_status" => GetCameraStatus,
            "take_photo" => TakePhoto(payload(data)?),
            "get_camera_settings" => GetCameraSettings,
            "set_camera_setting" => SetCameraSetting(payload(data)?),
            "get_camera_battery" => GetCameraBattery,
            "get_camera_storage" => GetCameraStorage,
            "get_camera_datetime" => GetCameraDatetime,
            "take_test_photo" => TakeTestPhoto,
            "list_test_photos" => ListTestPhotos,
            "delete_test_photo" => DeleteTestPhoto(payload(data)?),
            "get_test_photo_file" => GetTestPhotoFile(payload(data)?),
            "accept_camera_certificate" => AcceptCameraCertificate(payload(data)?),
            "validate_interval" => ValidateInterval(payload(data)?),
            "start_intervalometer" | "start_intervalometer_with_title" => {
                StartIntervalometer(payload(data)?)
            }
            "stop_intervalometer" => StopIntervalometer,
            "get_intervalometer_status" => GetIntervalometerStatus,
            "get_unsaved_session" => GetUnsavedSession,
            "save_session_as_report" => SaveSessionAsReport(payload(data)?),
            "discard_session" => DiscardSession(payload(data)?),
            "resume_session" => ResumeSession(payload(data)?),
            "get_timelapse_reports" => GetTimelapseReports,
            "get_timelapse_report" => GetTimelapseReport(payload(data)?),
            "update_report_title" => UpdateReportTitle(payload(data)?),
            "delete_timelapse_report" => DeleteTimelapseReport(payload(data)?),
            "get_report_csv" => GetReportCsv(payload(data)?),
            "get_report_chart" => GetReportChart(payload(data)?),
            "connect_to_ip" => ConnectToIp(payload(data)?),
            "discovery_scan" => DiscoveryScan,
            "get_discovery_status" => GetDiscoveryStatus,
            "set_primary_camera" => SetPrimaryCamera(payload(data)?),
            "get_network_status" => GetNetworkStatus,
            "network_scan" => NetworkScan(payload(data)?),
            "network_connect" => NetworkConnect(payload(data)?),
            "network_disconnect" => NetworkDisconnect(payload(data)?),
            "wifi_enable" => WifiEnable,
            "wifi_disable" => WifiDisable(payload(data)?),
            "get_wifi_country" => GetWifiCountry,
            "set_wifi_country" => SetWifiCountry(payload(data)?),
            "time-sync-response" | "time_sync_response" => TimeSyncResponse(payload(data)?),
            "gps-response" | "gps_response" => GpsResponse(payload(data)?),
            "manual_camera_sync" | "manual-camera-sync" => ManualCameraSync,
            "manual-time-sync" | "manual_time_sync" => ManualTimeSync(payload(data)?),
            "get-time-sync-status" | "get_time_sync_status" => GetTimeSyncStatus,
            "get_system_time" => GetSystemTime,
            "get_system_status" => GetSystemStatus,
            "get_power_status" => GetPowerStatus,
            "get_ws_connections" => GetWsConnections,
            other => {
                // Echo the type only if it is printable and short (it is already ≤ 64 bytes).
                let shown: String = other.chars().filter(|c| !c.is_control()).collect();
                return Err(ApiError::new(
                    ErrorCode::UnknownMessage,
                    format!("Unknown message type: {shown}"),
                ));
            }
        })
    }

    /// Commands whose only effect is a read: they never need the "ack" echo and may be
    /// answered while a session runs without any policy check.
    pub fn is_read_only(&self) -> bool {
        use Command::*;
        matches!(
            self,
            Ping | GetStatus
                | GetCameraStatus
                | GetCameraSettings
                | GetCameraBattery
                | GetCameraStorage
                | GetCameraDatetime
                | ListTestPhotos
                | GetTestPhotoFile(_)
                | GetReportCsv(_)
                | GetReportChart(_)
                | GetIntervalometerStatus
                | GetUnsavedSession
                | GetTimelapseReports
                | GetTimelapseReport(_)
                | GetDiscoveryStatus
                | GetNetworkStatus
                | GetWifiCountry
                | GetTimeSyncStatus
                | GetSystemTime
                | GetSystemStatus
                | GetPowerStatus
                | GetWsConnections
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Server → client

/// Subscription channels (seed 002/003). Every broadcast belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Camera,
    Intervalometer,
    Discovery,
    Network,
    Timesync,
    Power,
    Status,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Camera,
        Channel::Intervalometer,
        Channel::Discovery,
        Channel::Network,
        Channel::Timesync,
        Channel::Power,
        Channel::Status,
    ];

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Camera => "camera",
            Channel::Intervalometer => "intervalometer",
            Channel::Discovery => "discovery",
            Channel::Network => "network",
            Channel::Timesync => "timesync",
            Channel::Power => "power",
            Channel::Status => "status",
        }
    }

    /// Bit for a subscription set.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The families of broadcast events and their `type` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFamily {
    /// `type: "event"` (photo_taken, pi-sync, camera-sync, …).
    Event,
    /// `type: "timelapse_event"`.
    Timelapse,
    /// `type: "discovery_event"`.
    Discovery,
    /// `type: "network_event"`.
    Network,
}

impl EventFamily {
    pub fn wire_type(self) -> &'static str {
        match self {
            EventFamily::Event => "event",
            EventFamily::Timelapse => "timelapse_event",
            EventFamily::Discovery => "discovery_event",
            EventFamily::Network => "network_event",
        }
    }
}

/// A successful direct reply: `{type: kind, data, id?, timestamp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub kind: &'static str,
    pub data: Value,
    /// A non-JSON body for REST (CSV, SVG, a photo). WebSocket clients get `data` instead.
    pub body: Option<Body>,
}

/// A non-JSON REST body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Bytes {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
}

impl Reply {
    pub fn new(kind: &'static str, data: impl Serialize) -> Self {
        Reply {
            kind,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            body: None,
        }
    }

    /// A reply whose REST form is `body`; `data` is what a WebSocket client gets.
    pub fn with_body(kind: &'static str, data: impl Serialize, body: Body) -> Self {
        Reply {
            body: Some(body),
            ..Reply::new(kind, data)
        }
    }
}

pub type CommandResult = Result<Reply, ApiError>;

/// A broadcast: one event, serialized once and fanned out to subscribers of `channel`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub channel: Channel,
    pub family: EventFamily,
    pub event_type: &'static str,
    pub data: Value,
}

impl Event {
    pub fn new(
        channel: Channel,
        family: EventFamily,
        event_type: &'static str,
        data: impl Serialize,
    ) -> Self {
        Event {
            channel,
            family,
            event_type,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }

    /// The frame: `{type, eventType, data, timestamp}`.
    pub fn to_frame(&self, now: SystemTime) -> Value {
        json!({
            "type": self.family.wire_type(),
            "eventType": self.event_type,
            "data": self.data,
            "timestamp": iso8601(now),
        })
    }
}

/// `{type, data, id?, timestamp}` for a reply.
pub fn reply_frame(reply: &Reply, id: Option<&Value>, now: SystemTime) -> Value {
    let mut frame = json!({
        "type": reply.kind,
        "data": reply.data,
        "timestamp": iso8601(now),
    });
    if let Some(id) = id {
        frame["id"] = id.clone();
    }
    frame
}

/// The error envelope: payload under both `data` (seeds) and `error` (the original service).
pub fn error_frame(err: &ApiError, id: Option<&Value>, now: SystemTime) -> Value {
    let body = serde_json::to_value(err).unwrap_or(Value::Null);
    let mut frame = json!({
        "type": "error",
        "timestamp": iso8601(now),
        "data": body,
        "error": body,
    });
    if let Some(id) = id {
        frame["id"] = id.clone();
    }
    frame
}

/// `operation_result {success, data}` for clients that asked with `"ack": true`.
pub fn ack_frame(result: &CommandResult, id: Option<&Value>, now: SystemTime) -> Value {
    let mut frame = match result {
        Ok(r) => json!({
            "type": "operation_result",
            "success": true,
            "data": {"success": true, "operation": r.kind, "result": r.data},
            "timestamp": iso8601(now),
        }),
        Err(e) => json!({
            "type": "operation_result",
            "success": false,
            "data": {"success": false, "error": e},
            "timestamp": iso8601(now),
        }),
    };
    if let Some(id) = id {
        frame["id"] = id.clone();
    }
    frame
}

/// REST error body: `{"error":{"message","code"},"timestamp"}`.
pub fn rest_error_body(err: &ApiError, now: SystemTime) -> Value {
    json!({"error": err, "timestamp": iso8601(now)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rejects_non_objects_and_missing_type() {
        for bad in [
            "",
            "nonsense",
            "[1,2]",
            "{}",
            r#"{"type":5}"#,
            r#"{"type":""}"#,
        ] {
            let e = parse_envelope(bad).unwrap_err();
            assert_eq!(e.message, "Invalid message format", "{bad}");
        }
    }

    #[test]
    fn payload_comes_from_data_or_top_level() {
        let e = parse_envelope(r#"{"type":"subscribe","channels":["camera"],"id":"a1"}"#).unwrap();
        assert_eq!(e.id, Some(Value::from("a1")));
        let c = Command::parse(&e.kind, e.data).unwrap();
        assert_eq!(
            c,
            Command::Subscribe(Channels {
                channels: vec!["camera".into()]
            })
        );
        let e =
            parse_envelope(r#"{"type":"take_photo","data":{"af":true},"requestId":7}"#).unwrap();
        assert_eq!(e.id, Some(Value::from(7)));
        assert_eq!(
            Command::parse(&e.kind, e.data).unwrap(),
            Command::TakePhoto(TakePhoto { af: Some(true) })
        );
    }

    #[test]
    fn unknown_type_and_wrong_field_types_are_named() {
        let e = Command::parse("launch_rocket", Value::Null).unwrap_err();
        assert_eq!(e.message, "Unknown message type: launch_rocket");
        assert_eq!(e.code, ErrorCode::UnknownMessage);
        let e = Command::parse("take_photo", json!({"af": "yes"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        let e = Command::parse("set_camera_setting", json!({"value": 1})).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingParameter);
        assert!(e.message.contains("setting"));
    }

    #[test]
    fn seed_000_connect_to_ip_with_string_port() {
        let c = Command::parse("connect_to_ip", json!({"ip": "192.168.4.2", "port": "443"}));
        assert_eq!(
            c.unwrap(),
            Command::ConnectToIp(ConnectToIp {
                ip: "192.168.4.2".into(),
                port: Some(Port(443))
            })
        );
        assert!(Command::parse("connect_to_ip", json!({"ip": "x", "port": "99999"})).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let c = Command::parse(
            "network_connect",
            json!({"ssid": "home", "password": "hunter22"}),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter22"), "{shown}");
    }

    #[test]
    fn every_advertised_command_parses_with_its_minimal_payload() {
        let minimal = |name: &str| match name {
            "subscribe" | "unsubscribe" => json!({"channels": []}),
            "set_camera_setting" => json!({"setting": "iso", "value": "100"}),
            "validate_interval" => json!({"interval": 5}),
            "start_intervalometer" | "start_intervalometer_with_title" => json!({"interval": 5}),
            "save_session_as_report" | "discard_session" | "resume_session" => {
                json!({"sessionId": "s"})
            }
            "get_timelapse_report"
            | "delete_timelapse_report"
            | "delete_test_photo"
            | "get_test_photo_file"
            | "get_report_csv"
            | "get_report_chart" => {
                json!({"id": "r"})
            }
            "update_report_title" => json!({"id": "r", "title": "t"}),
            "connect_to_ip" => json!({"ip": "127.0.0.1"}),
            "set_primary_camera" => json!({"uuid": "u"}),
            "network_connect" => json!({"ssid": "s"}),
            "set_wifi_country" => json!({"country": "GB"}),
            "time-sync-response" | "manual-time-sync" => json!({"clientTime": 1}),
            "gps-response" => json!({"timestamp": 1}),
            _ => json!({}),
        };
        for name in COMMAND_NAMES {
            Command::parse(name, minimal(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn error_frame_carries_both_data_and_error() {
        let f = error_frame(
            &ApiError::invalid("bad"),
            Some(&Value::from("x")),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(f["data"]["message"], "bad");
        assert_eq!(f["error"]["code"], "INVALID_PARAMETER");
        assert_eq!(f["id"], "x");
        assert_eq!(f["timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
