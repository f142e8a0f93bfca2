//! The wire protocol (`docs/PROTOCOL.md`): the single source of truth for every message.
//!
//! * [`commands`]: the command table (names, aliases, owner, read-only, reply type) and the
//!   typed payloads of client → server commands.
//! * [`messages`]: every reply and event payload, and the table of event aliases.
//! * [`status`]: the typed status blocks.
//! * [`routes`]: the REST routes, each naming a command of the table.
//! * this module: the envelope, errors, and the frames built from the above.
//!
//! Documentation and contracts, both checked against this module by tests:
//! * `docs/PROTOCOL.md`: prose by hand around tables generated from the command table, the
//!   events, the channels, the routes and the error codes (`doc.rs`, test
//!   `protocol::doc::tests::protocol_md_matches_the_tables`).
//! * `docs/PROTOCOL-SHAPES.md`: the JSON shape of every outbound message (every reply of the
//!   command table, every event, status block and envelope), from a sample of each type
//!   (`contracts.rs`, test `protocol::contracts::tests::every_outbound_message_matches_its_contract`).
//!   A new reply or event type needs a `Sample` (else the tests do not compile); a renamed
//!   field fails the test.
//!
//! After a reviewed change: `SKYLAPSE_BLESS=1 cargo test --lib protocol::` regenerates both.
//!
//! Parsing is two steps so every failure gets the message the protocol promises:
//! 1. [`parse_envelope`]: JSON with a string `type` → else "Invalid message format".
//! 2. [`Command::parse`]: known `type` → typed payload; unknown → "Unknown message type: T";
//!    payload of the wrong shape → INVALID_PARAMETER naming the field.
//!
//! Payloads are read from `data`; when a client puts them at top level (seed 002's
//! `{"type":"subscribe","channels":[…]}`) those fields are used instead.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::SystemTime;

use crate::util::iso8601;

pub mod commands;
#[cfg(test)]
mod contracts;
#[cfg(test)]
mod doc;
pub mod messages;
pub mod routes;
pub mod status;

pub use commands::*;
pub use messages::{EventKind, EventPayload, ReplyPayload};

// ---------------------------------------------------------------------------------------------
// Errors

macro_rules! error_codes {
    ($($code:ident),* $(,)?) => {
        /// Error codes of PROTOCOL.md (plus NOT_FOUND and CERTIFICATE_CHANGED for REST and TLS
        /// pinning).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($code),*
        }

        impl ErrorCode {
            /// Every code, in declaration order (`docs/PROTOCOL.md` lists them).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),*];
        }
    };
}

error_codes! {
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
    /// Boxed: an error travels in every `Result` of the camera path; keep it small.
    pub details: Option<Box<ErrorDetails>>,
    /// A reply the WebSocket sends before the error (a client waits for that type; see
    /// `network_scan`). Not part of the error's JSON.
    #[serde(skip)]
    pub reply: Option<Box<Reply>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            code,
            operation: None,
            details: None,
            reply: None,
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
    pub fn with_details(mut self, details: impl Into<ErrorDetails>) -> Self {
        self.details = Some(Box::new(details.into()));
        self
    }
}

/// `error.details`: what a program needs beyond the code, one shape per cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ErrorDetails {
    /// A request refused for a reason a client can act on: `session_running` (a session
    /// runs; `override` names the field that forces the change, if any) or `no_gap` (no gap
    /// between a session's frames for a test photo).
    Refused {
        reason: String,
        #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
        override_with: Option<String>,
    },
    /// The payload field at fault.
    Field { field: String },
    /// A CCAPI answer that was not 2xx: its HTTP status and the camera's own message.
    Camera {
        status: u16,
        #[serde(rename = "cameraMessage")]
        camera_message: String,
    },
    /// `connect_to_ip`: each address tried and why it failed.
    Attempts { attempts: Vec<ConnectAttempt> },
    /// The camera's certificate is not the pinned one (fingerprints).
    Certificate {
        uuid: String,
        pinned: String,
        presented: String,
    },
    /// The interval check that refused a session.
    Interval(crate::intervalometer::schedule::IntervalValidation),
    /// Untyped details; kept so code written against `with_details(json!(…))` still builds.
    /// New code uses a typed variant.
    Other(Value),
}

impl ErrorDetails {
    /// `{reason}`: refused for `reason`.
    pub fn refused(reason: &str) -> Self {
        ErrorDetails::Refused {
            reason: reason.into(),
            override_with: None,
        }
    }
}

impl From<Value> for ErrorDetails {
    fn from(v: Value) -> Self {
        ErrorDetails::Other(v)
    }
}

/// One address `connect_to_ip` tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectAttempt {
    pub url: String,
    pub error: String,
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

/// Serializes as asterisks: a secret never leaves the process by way of serde (the only use
/// is the protocol documentation's example of a command).
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
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

/// A non-JSON REST body (test photo, report CSV, SVG chart), sent as the raw HTTP body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Bytes {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
    /// Streamed from disk by the HTTP layer.
    File {
        content_type: &'static str,
        path: std::path::PathBuf,
    },
    /// The reply's `data` is `{key: <the file's bytes>}`: a JSON document too large to hold in
    /// memory (a report), sent as it is on disk by REST (Content-Length from the file size)
    /// and WebSocket (one text message in fragments). The file was checked to be one JSON
    /// value in UTF-8 when it was opened; `Reply::data` is null until
    /// [`Reply::materialized`], so an `ack`'s `operation_result` carries `result: null` (the
    /// document goes out once, in the reply).
    JsonFile {
        key: &'static str,
        file: SharedFile,
        len: u64,
    },
}

/// An open file shared by the reply's clones; read with positional reads, so its cursor is
/// never in the way.
#[derive(Debug, Clone)]
pub struct SharedFile(pub std::sync::Arc<std::fs::File>);

impl PartialEq for SharedFile {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl SharedFile {
    /// Reads up to `buf.len()` bytes at `offset` (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&*self.0, buf, offset)
    }
}

/// A successful direct reply: `{type: kind, data, id?, timestamp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub kind: &'static str,
    pub data: Value,
    /// REST sends this instead of `data` when set; WebSocket always sends `data`.
    pub body: Option<Body>,
}

impl Reply {
    /// The reply carrying `payload`; its `type` is the payload type's.
    pub fn of<T: ReplyPayload>(payload: &T) -> Self {
        Reply {
            kind: T::KIND,
            data: serde_json::to_value(payload).unwrap_or(Value::Null),
            body: None,
        }
    }

    /// A reply whose REST form is a raw body; `data` describes it for WebSocket clients.
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    /// A reply of type `T` whose data, `{key: …}`, is the file's JSON, streamed ([`Body::JsonFile`]).
    pub fn streamed<T: ReplyPayload>(
        key: &'static str,
        file: std::sync::Arc<std::fs::File>,
        len: u64,
    ) -> Self {
        Reply {
            kind: T::KIND,
            data: Value::Null,
            body: Some(Body::JsonFile {
                key,
                file: SharedFile(file),
                len,
            }),
        }
    }

    /// The reply with a streamed body read into `data` (for in-process callers and tests;
    /// the web layer streams it instead).
    pub fn materialized(mut self) -> Result<Self, ApiError> {
        if let Some(Body::JsonFile { key, file, len }) = &self.body {
            let mut bytes = vec![0u8; usize::try_from(*len).unwrap_or(usize::MAX)];
            let mut at = 0;
            while at < bytes.len() {
                match file.read_at(&mut bytes[at..], at as u64) {
                    Ok(0) => return Err(ApiError::system("The file shrank while being read")),
                    Ok(n) => at += n,
                    Err(e) => return Err(ApiError::system(format!("Cannot read the file: {e}"))),
                }
            }
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::system(format!("The file is not JSON: {e}")))?;
            self.data = json!({ *key: value });
            self.body = None;
        }
        Ok(self)
    }
}

pub type CommandResult = Result<Reply, ApiError>;

/// A broadcast: one event, serialized once and fanned out to subscribers of its channel,
/// under each of its wire names ([`EventKind::wire_names`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub data: Value,
}

impl Event {
    /// The event carrying `payload`.
    pub fn of<T: EventPayload>(payload: &T) -> Self {
        Event {
            kind: T::KIND,
            data: serde_json::to_value(payload).unwrap_or(Value::Null),
        }
    }

    pub fn channel(&self) -> Channel {
        self.kind.channel()
    }

    /// skylapse's name for it.
    pub fn event_type(&self) -> &'static str {
        self.kind.name()
    }

    /// The frames: `{type, eventType, data, timestamp}`, one per wire name.
    pub fn to_frames(&self, now: SystemTime) -> Vec<Value> {
        let ts = iso8601(now);
        self.kind
            .wire_names()
            .iter()
            .map(|(family, name)| {
                json!({
                    "type": family.wire_type(),
                    "eventType": name,
                    "data": self.data,
                    "timestamp": ts,
                })
            })
            .collect()
    }
}

/// `welcome` / `status_update`: the `extra` fields (`welcome`'s own) and every status block,
/// at top level (what the original UI reads) and in `data` (the seeds), from one value.
pub fn status_frame(
    kind: &str,
    extra: Map<String, Value>,
    blocks: &status::StatusBlocks,
    now: SystemTime,
) -> Value {
    let mut data = extra;
    if let Ok(Value::Object(blocks)) = serde_json::to_value(blocks) {
        data.extend(blocks);
    }
    let mut frame = data.clone();
    frame.insert("type".into(), Value::from(kind));
    frame.insert("timestamp".into(), Value::from(iso8601(now)));
    frame.insert("data".into(), Value::Object(data));
    Value::Object(frame)
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
            "start_intervalometer"
            | "start_intervalometer_with_title"
            | "plan_session"
            | "preview_ramp" => json!({"interval": 5}),
            "save_session_as_report" | "discard_session" | "resume_session" => {
                json!({"sessionId": "s"})
            }
            "get_timelapse_report"
            | "delete_timelapse_report"
            | "delete_test_photo"
            | "get_test_photo"
            | "get_test_photo_file"
            | "get_report_csv"
            | "get_report_chart"
            | "delete_liveview_image"
            | "get_liveview_image_file" => {
                json!({"id": "r"})
            }
            "drive_focus" => json!({"step": "near1"}),
            "update_report_title" => json!({"id": "r", "title": "t"}),
            "connect_to_ip" => json!({"ip": "127.0.0.1"}),
            "set_primary_camera" => json!({"uuid": "u"}),
            "network_connect" => json!({"ssid": "s"}),
            "set_wifi_country" => json!({"country": "GB"}),
            "set_location" => json!({"lat": 47.0, "lon": 8.0}),
            "configure_access_point" => json!({"ssid": "skylapse"}),
            "time-sync-response" | "manual-time-sync" => json!({"clientTime": 1}),
            "gps-response" => json!({"timestamp": 1}),
            _ => json!({}),
        };
        for name in command_names() {
            let canonical = spec_of(name).expect("a table row").name;
            Command::parse(name, minimal(canonical)).unwrap_or_else(|e| panic!("{name}: {e}"));
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
