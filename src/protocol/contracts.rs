//! Contract tests: the JSON shape of every outbound message, fixed in
//! `docs/PROTOCOL-SHAPES.md` so a rename breaks a test, not a client.
//!
//! Each payload type has a [`Sample`]: a representative instance with every optional part
//! filled ([`Mode::Full`]), reduced to a shape (field path → JSON type), and the same instance
//! with the optional parts empty from some depth on ([`Mode::Empty`]): comparing them tells
//! which fields may be null or absent, at every depth. The messages are enumerated from the tables, never from a list kept by
//! hand: every reply of the command table ([`super::COMMANDS`], [`super::messages::REPLIES`]),
//! every [`EventKind`], every status block and the envelopes. A reply or event type without a
//! `Sample` does not compile; a new message without a contract fails
//! `every_outbound_message_matches_its_contract` until its shape is reviewed and blessed:
//!
//! ```text
//! SKYLAPSE_BLESS=1 cargo test --lib protocol::
//! ```

use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

use super::commands::{
    payload_sample, AcceptCertificate, AutoRampSpec, CameraRef, Channels, ConfigureAccessPoint,
    ConnectToIp, DriveFocus, Force, GetSunTimes, GpsResponse, IdRef, KeyframeSpec, LiveViewSize,
    ManualTimeSync, NetworkConnect, NetworkScan, Port, ReportRef, SessionRef, SetCameraSetting,
    SetLocation, StartIntervalometer, SunRef, TakePhoto, TimeSpec, TimeSyncResponse,
    UpdateReportTitle, ValidateInterval, WifiCountry,
};
use super::messages::*;
use super::status::*;
use super::{ack_frame, error_frame, reply_frame, rest_error_body, ApiError, ErrorCode, Event};
use super::{ConnectAttempt, ErrorDetails, Reply, Secret, COMMANDS};
use crate::camera::ccapi::DeviceInfo;
use crate::camera::CameraSettings;
use crate::intervalometer::report::{
    IntervalometerParams, Report, ReportCamera, ReportEntry, ReportMetadata, ResultError, Results,
    SettingValue, ShotError, Summary,
};
use crate::intervalometer::schedule::{
    AutoPlan, FrameSettings, IntervalValidation, Ladders, OptionsWire, RampPlan,
};
use crate::intervalometer::session::FrameLight;
use crate::intervalometer::session::ShotRecord;
use crate::sun::Location;
use crate::sun::Reasons;

/// The golden file, relative to the crate root.
pub(crate) const SHAPES_FILE: &str = "docs/PROTOCOL-SHAPES.md";
/// The environment variable that rewrites golden files instead of comparing them.
pub(crate) const BLESS_VAR: &str = "SKYLAPSE_BLESS";

/// Stands for "any JSON" (a `serde_json::Value` field) in a sample.
const ANY: &str = "<any JSON>";
/// The key a sample map uses for its one entry (`cameras.*.uuid`).
const MAP_KEY: &str = "*";

/// Which sample to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every `Option` is Some, strings non-empty, numbers 1, booleans true.
    Full,
    /// `Option`s nested in fewer than this many others are Some, deeper ones None; strings
    /// empty, numbers 0, booleans false. Lists and maps always have one element, so the
    /// fields of their elements are seen too.
    Empty(u8),
}

/// How deep `Option`s nest in any message (deeper ones are not told apart).
const MAX_OPTION_DEPTH: u8 = 8;

/// A representative instance of a message type, in each [`Mode`].
pub(crate) trait Sample: Sized {
    fn sample(mode: Mode) -> Self;
}

pub(crate) fn to_json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("a sample serializes")
}

impl Sample for String {
    fn sample(mode: Mode) -> Self {
        if mode == Mode::Full { "text" } else { "" }.into()
    }
}

impl Sample for bool {
    fn sample(mode: Mode) -> Self {
        mode == Mode::Full
    }
}

macro_rules! sample_numbers {
    ($($t:ty),*) => { $( impl Sample for $t {
        fn sample(mode: Mode) -> Self { (mode == Mode::Full) as u8 as $t }
    } )* };
}
sample_numbers!(u8, u16, u32, u64, usize, i32, i64, f64);

impl<T: Sample> Sample for Option<T> {
    fn sample(mode: Mode) -> Self {
        match mode {
            Mode::Full => Some(T::sample(mode)),
            Mode::Empty(0) => None,
            Mode::Empty(depth) => Some(T::sample(Mode::Empty(depth - 1))),
        }
    }
}

impl<A: Sample, B: Sample> Sample for (A, B) {
    fn sample(mode: Mode) -> Self {
        (A::sample(mode), B::sample(mode))
    }
}

impl<T: Sample> Sample for Box<T> {
    fn sample(mode: Mode) -> Self {
        Box::new(T::sample(mode))
    }
}

impl<T: Sample> Sample for Vec<T> {
    fn sample(mode: Mode) -> Self {
        vec![T::sample(mode)]
    }
}

impl<T: Sample> Sample for BTreeMap<String, T> {
    fn sample(mode: Mode) -> Self {
        BTreeMap::from([(MAP_KEY.to_string(), T::sample(mode))])
    }
}

impl Sample for Value {
    fn sample(_: Mode) -> Self {
        Value::from(ANY)
    }
}

impl Sample for Map<String, Value> {
    fn sample(_: Mode) -> Self {
        Map::from_iter([(MAP_KEY.to_string(), Value::from(ANY))])
    }
}

/// `Name { field, … }` builds every field from its own sample (a field left out, or one that
/// does not exist, is a compile error); `Name(_)` wraps the inner type's sample.
macro_rules! samples {
    ($( $t:ident $({ $($f:ident),* $(,)? })? $(( $w:tt ))?; )*) => {
        $( samples!(@one $t $({ $($f),* })? $(( $w ))?); )*
    };
    (@one $t:ident { $($f:ident),* }) => {
        impl Sample for $t {
            fn sample(mode: Mode) -> Self {
                $t { $( $f: Sample::sample(mode), )* }
            }
        }
    };
    (@one $t:ident ( $w:tt )) => {
        impl Sample for $t {
            fn sample(mode: Mode) -> Self {
                $t(Sample::sample(mode))
            }
        }
    };
}

/// The network block's interfaces are keyed by name and differ in shape: both are shown.
impl Sample for NetworkBlock {
    fn sample(mode: Mode) -> Self {
        let interfaces = BTreeMap::from([
            (
                "wlan0".to_string(),
                NetInterface::Client(Sample::sample(mode)),
            ),
            ("ap0".to_string(), NetInterface::Ap(Sample::sample(mode))),
        ]);
        NetworkBlock {
            available: Sample::sample(mode),
            error: Sample::sample(mode),
            wireless_enabled: Sample::sample(mode),
            interfaces,
            wifi_country: Sample::sample(mode),
        }
    }
}

impl Sample for Secret {
    fn sample(mode: Mode) -> Self {
        Secret::new(String::sample(mode))
    }
}

/// A time is a clock string or a sun event: the sun form is the one with fields.
impl Sample for TimeSpec {
    fn sample(mode: Mode) -> Self {
        TimeSpec::Sun(Sample::sample(mode))
    }
}

impl Sample for crate::sun::NoEvent {
    fn sample(_: Mode) -> Self {
        crate::sun::NoEvent::AlwaysBelow
    }
}

impl Sample for ErrorCode {
    fn sample(_: Mode) -> Self {
        ErrorCode::CameraOffline
    }
}

samples! {
    // Command payloads (client → server), for the documentation of their fields.
    Channels { channels };
    TakePhoto { af };
    SetCameraSetting { setting, value };
    ValidateInterval { interval, exposure };
    StartIntervalometer { interval, stop_condition, shots, stop_time, duration, title, bulb,
        exposure, overrun_policy, start_at, stop_at, af, keyframes, auto_ramp };
    AutoRampSpec { day_target, night_bias_ev, max_step_ev, max_iso, min_av, max_av };
    SessionRef { session_id, title };
    ReportRef { id };
    UpdateReportTitle { id, session_id, title };
    ConnectToIp { ip, port };
    Port(_);
    CameraRef { uuid };
    NetworkScan { refresh };
    NetworkConnect { ssid, password, force };
    Force { force };
    WifiCountry { country };
    TimeSyncResponse { request_id, client_time, server_time, timezone };
    GpsResponse { timestamp, latitude, longitude, accuracy, source };
    ManualTimeSync { client_time, timezone };
    IdRef { id };
    AcceptCertificate { uuid };
    ConfigureAccessPoint { ssid, passphrase, channel, hidden };
    LiveViewSize { size };
    DriveFocus { step };
    GetSunTimes { lat, lon, date };
    SetLocation { lat, lon };
    SunRef { event, offset_minutes };
    KeyframeSpec { at, elapsed_seconds, tv, iso, av, interval, at_ms };

    // Outbound messages.
    Pong { timestamp };
    Subscribed { channels, subscriptions };
    Unsubscribed { channels, subscriptions };
    Status(_);
    SystemStatus(_);
    WsClient { id, address, connected_at, uptime, last_heartbeat, last_heartbeat_ago, subscriptions, queued };
    WsConnections { count, max_clients, clients };
    CameraStatus(_);
    PhotoTakenReply { success, timestamp };
    CameraSettingsReply(_);
    CameraSettingSet { success, setting, value };
    BatteryEntry { position, name, kind, level, quality };
    CameraBattery { batterylist, battery };
    CameraStorage { storagelist, summary };
    CameraDatetime { datetime, dst, time, offset_ms };
    ExifSummary { ImageWidth, ImageHeight, ISO, ExposureTime, ShutterSpeed, FNumber, WhiteBalance, DateTimeOriginal, Model };
    TestPhotoInfo { id, url, file_url, filename, camera_path, size, timestamp, processing_time_ms, exif, preview, settings };
    TestPhoto { success, photo };
    TestPhotoInfoReply(_);
    TestPhotos { photos };
    TestPhotoDeleted { success, message, id };
    TestPhotoFile { id, content_type, size };
    LiveViewCaptured { success, image };
    LiveViewImages { images };
    LiveViewImageDeleted { success, id };
    LiveViewCleared { success, deleted };
    LiveViewImageFile { id, content_type, size };
    FocusDriven { success, step };
    LiveViewStatus { active, viewers, max_viewers, frames_relayed, relay_latency_p50_ms, relay_latency_p99_ms, stream_url };
    CertificateAccepted { success, uuid, warning };
    IntervalValidationReply(_);
    IntervalometerStart { success, session_id, title, status, message };
    IntervalometerStop { success, status, message };
    IntervalometerStatus(_);
    CompletionData { reason, completed_at, options, stats };
    CompletionStats { start_time, end_time, shots_taken, shots_successful, shots_failed };
    UnsavedSession { session_id, title, start_time, end_time, status, interrupted, can_resume, options, shots_taken, shots_successful, shots_failed, actions, reason, completion_data };
    UnsavedSessionReply { unsaved_session };
    SessionSaved { success, session_id, report_id, report };
    SessionDiscarded { success, session_id, report_deleted };
    SessionResumed { success, session_id, title, status };
    TimelapseReports { reports };
    TimelapseReport { report };
    ReportTitleUpdated { success, id, report_id, title, report };
    ReportDeleted { success, id, report_id };
    ReportCsv { id, content_type, content };
    ReportChart { id, content_type, content };
    ConnectToIpResult { success, ip, port, base_url, uuid, model_name };
    DiscoveryScanStarted { success, message };
    DiscoveryStatus(_);
    PrimaryCameraSet { uuid };
    LastCameraIp { last_ip, last_port, base_url };
    NetworkStatus(_);
    WifiNetwork { ssid, signal, security, frequency, channel, known };
    NetworkScanResult { networks, error };
    NetworkConnectResult { success, ssid, ip };
    NetworkDisconnectResult { success, was_connected };
    WifiEnableResult { success, enabled };
    WifiDisableResult { success, enabled };
    WifiEnabled { enabled };
    SavedNetwork { name, ssid, uuid };
    SavedNetworks { networks };
    WifiCountryReply { country, source };
    WifiCountrySet { success, country, persistent, ap_channel_warning };
    Country { code, name };
    WifiCountries { countries };
    AccessPointConfigured { success, ssid };
    TimeSyncResult { accepted };
    GpsResult { received };
    CameraSyncStarted { started };
    ManualTimeSyncResult { success, accepted, timezone, timezone_applied, current_time };
    TimeSyncStatusCompat { pi_reliable, last_pi_sync, last_camera_sync, sync_source };
    TimeSyncStatus { block, success, status };
    SystemTimeReply { current_time, time, timestamp, unix_ms, timezone, utc_offset_seconds, standard_offset_seconds, dst, reliability, is_synchronized };
    TimeSyncStatusBlock(_);
    PowerStatus(_);
    PhotoTaken { success, timestamp, error, shot };
    ShotInfo { session_id, title, shot_number, slot, scheduled_time, timing_error_ms, duration_ms, duration, skipped_before, late, file_name, stats, remaining_shots, settings, exposure_ev };
    TestPhotoScheduled { at, in_seconds };
    SessionFrame { id, file_name, size, url, timestamp };
    LiveViewImageCaptured(_);
    CameraSettingChanged { setting, value };
    TestPhotoProgress { photo_id, bytes_received, total_bytes, percent, percentage };
    SessionStarted { session_id, title, interval, options, start_time };
    SessionRecovered { session_id, title, interval, options, shots_before, slots_skipped_while_down };
    ShotFailed { session_id, title, shot_number, error, timestamp, stats };
    ShotRecovered { session_id, shot_number, slot, success, reply_lost, message };
    PhotoOvertime { session_id, title, shot_number, interval, shot_duration, overtime, message };
    FrameMeasured { session_id, slot, brightness, target_brightness, exposure_ev, sun_altitude };
    SessionWarning { session_id, title, message, fatal, resolved };
    SessionEnded { session_id, title, reason, end_reason, stats, options, status, report_id };
    ReportSaved { report_id, id, session_id, title, report };
    ReportUpdated { report_id, id, title };
    ReportDeletedEvent { report_id, id };
    SessionDiscardedEvent { session_id, message };
    CameraDiscovered { uuid, model_name, ip_address, access_url };
    CameraConnected { uuid, ip, port };
    CameraOffline { uuid };
    PrimaryCameraChanged { uuid };
    CameraIpChanged { uuid, old_ip, new_ip, old_port, new_port };
    PrimaryCameraReconnected { uuid, new_ip };
    PrimaryCameraDisconnected { uuid };
    WifiConnectionStarted { ssid };
    WifiConnected { ssid, ip, signal };
    WifiConnectionFailed { ssid, error };
    PiSync { synchronized, source, offset, reliability, stepped, uncertainty_ms, ignored };
    CameraSync { success, previous_time, new_time, offset, changed };
    SyncFailed { component, error, code };
    ReliabilityLost { source, reason };
    PowerWarning { kind, severity, message };
    PowerWarningCleared(_);
    SessionPhoto(_);
    SessionCompleted(_);
    SessionStopped(_);
    SessionErrorEvent(_);
    UnsavedSessionFound(_);
    TimeSyncRequest { request_id, server_time };
    ConnectAttempt { url, error };
    WsLimits { max_clients, max_frame_bytes, max_invalid_messages, rate_per_sec, rate_burst,
        outbound_queue, outbound_queue_bytes, ping_interval_ms, silence_timeout_ms,
        status_interval_ms };
    Welcome { client_id, message, server_time, version, available_commands, limits };
    Health { status, version, uptime, clients, timestamp };
    StatusBlocks { camera, discovery, network, power, storage, temperature, intervalometer, timesync };
    CameraBlock { connected, ip, port, model, uuid, serial_number, battery, settings, last_error, state, next_retry_at };
    StorageBlock { mounted, name, total_mb, free_mb, used_mb, percent_used, contents_number };
    CameraRefBlock { uuid, model_name, ip_address };
    DiscoveredCamera { uuid, model_name, serial_number, friendly_name, ip_address, port, access_url, last_seen, online, connected, is_primary, source };
    DiscoveryBlock { is_discovering, total_cameras, connected_cameras, primary_camera, cameras, last_search_at };
    ApClient { mac, ip, hostname };
    ClientInterface { active, connected, network, ip, signal, state };
    ApInterface { active, ssid, status, ip, interface, clients };
    WifiCountryBlock { country };
    SupplyBlock { name, kind, capacity, status, voltage, current, online };
    PowerBattery { present, supply };
    Thermal { temperature, unit };
    ThrottleFlagsBlock { under_voltage, arm_frequency_capped, throttled, soft_temperature_limit };
    ThrottledBlock { raw, current, since_boot, source };
    PowerWarningBlock { kind, severity, message };
    EstimateBlock { shots_by_battery, shots_by_card, shots_left, time_left_seconds, limited_by, bytes_per_shot };
    PowerBlock { is_raspberry_pi, model, battery, supplies, thermal, throttled, uptime, recommendations, warnings, estimate, last_sample };
    SessionOptionsBlock { interval, stop_condition, total_shots, stop_time, stop_time_of_day, duration, overrun_policy, bulb, start_at, stop_at };
    TimingStats { mean_error_ms, p99_error_ms, max_error_ms };
    SessionStats { start_time, end_time, shots_taken, shots_successful, shots_failed, shots_skipped, current_shot, next_shot_time, overtime_shots, total_overtime_seconds, max_overtime_seconds, last_shot_duration, total_shot_duration_seconds, timing };
    SessionBlock { session_id, title, camera_connected, options, stats, remaining_shots, frames_left, estimated_end_time, success_rate, average_shot_duration, end_reason, outage, last_outage };
    OutageBlock { since, until, frames_missed, reason };
    IntervalometerBlock { state, running, session, unsaved_session };
    PiTimeBlock { is_synchronized, reliability, last_sync_time, source, offset_ms, uncertainty_ms, step_pending };
    CameraTimeBlock { connected, is_synchronized, last_sync_time, offset_ms };
    PiProxyState { state, valid, age_seconds, sync_state };
    TimesyncBlock { pi, camera, pi_proxy_state, connected_clients, client_timezone };
    Results { shots_taken, shots_successful, shots_failed, shots_skipped, overtime_shots, success_rate, max_overtime_seconds, total_overtime_seconds, images_captured, images_successful, images_failed, errors, first_image_name, last_image_name };
    ResultError { timestamp, shot_number, error };
    Summary { mean_error_ms, p99_error_ms, max_error_ms, drift_ms, mean_duration_ms };
    ShotError { shot, slot, time, message };
    IntervalometerParams { interval, stop_condition, number_of_shots, stop_at };
    ReportMetadata { completion_reason, saved_at, version, camera_model };
    ReportCamera { id, model, serial, settings };
    Report { version, id, session_id, title, start_time, end_time, duration, saved_at, status, end_reason, options, intervalometer, camera, camera_info, camera_settings, results, errors, summary, metadata, shots };
    SettingValue { value };
    ReportEntry { id, session_id, title, start_time, end_time, duration, saved_at, status, intervalometer, results, summary, metadata };
    ShotRecord { slot, shot, scheduled_ms, sent_ms, replied_ms, error_ms, duration_ms, ok, error, late, skipped_before, files, reply_lost, settings, exposure_ev, light };
    FrameLight { brightness, sun_alt };
    FrameSettings { tv, iso, av };
    OptionsWire { interval, stop_condition, total_shots, stop_time, duration, overrun_policy, bulb, af, exposure, start_at, stop_at, stop_at_ms, ramp, auto_ramp };
    AutoPlan { location, day_target, night_bias_ev, max_step_ev, max_iso, av, av_range, ladders };
    Location { lat, lon };
    RampPlan { keyframes, ladders };
    Ladders { tv, iso, av };
    SunTimesReply { date, lat, lon, sunrise, sunset, solar_noon, civil_dawn, civil_dusk, nautical_dawn, nautical_dusk, astronomical_dawn, astronomical_dusk, reasons, location_source, now };
    SunNow { time, altitude_deg, azimuth_deg };
    Reasons { astronomical_dawn, nautical_dawn, civil_dawn, sunrise, solar_noon, sunset, civil_dusk, nautical_dusk, astronomical_dusk };
    LocationReply { known, lat, lon, source, updated };
    LocationSet(_);
    SessionPlan { interval, start_time, stop_time, end_time, frames, duration_seconds, ramp, keyframes, sample_every, horizon_seconds, points, location_known };
    PlanPoint { frame, time, tv, iso, av, exposure_ev, target_brightness, sun_altitude };
    IntervalValidation { valid, warnings, minimum_interval, recommended_interval, bulb };
    CameraSettings { mode, tv, av, iso, wb, exposure, drive, afoperation };
    DeviceInfo { manufacturer, productname, serialnumber, guid, firmwareversion, macaddress };
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// One field of a shape: its path (`stats.timing.meanErrorMs`, `photos[].id`, `cameras.*`),
/// its JSON type in the full sample, and whether an empty sample had it null, or lacked it
/// where its parent object was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub path: String,
    pub ty: &'static str,
    pub nullable: bool,
    pub optional: bool,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(s) if s == ANY => "any",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path of `v` and its JSON type ("" is `v` itself).
fn paths(prefix: &str, v: &Value, out: &mut BTreeMap<String, &'static str>) {
    out.insert(prefix.to_string(), json_type(v));
    match v {
        Value::Object(fields) => {
            for (k, child) in fields {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                paths(&path, child, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                paths(&format!("{prefix}[]"), first, out);
            }
        }
        _ => {}
    }
}

/// The object a field belongs to; None for the elements of an array (not fields).
fn parent(path: &str) -> Option<&str> {
    if path.ends_with("[]") {
        return None;
    }
    Some(path.rsplit_once('.').map_or("", |(p, _)| p))
}

/// The shape of a message from its samples.
pub(crate) fn shape(sample: impl Fn(Mode) -> Value) -> Vec<Field> {
    let mut full = BTreeMap::new();
    paths("", &sample(Mode::Full), &mut full);
    let empties: Vec<BTreeMap<String, &'static str>> = (0..=MAX_OPTION_DEPTH)
        .map(|depth| {
            let mut m = BTreeMap::new();
            paths("", &sample(Mode::Empty(depth)), &mut m);
            m
        })
        .collect();
    let mut out = Vec::new();
    for (path, ty) in &full {
        let nullable = *ty != "null" && empties.iter().any(|e| e.get(path) == Some(&"null"));
        if path.is_empty() {
            // A message that is not an object (the `temperature` block).
            if *ty != "object" {
                out.push(Field {
                    path: "(value)".into(),
                    ty,
                    nullable,
                    optional: false,
                });
            }
            continue;
        }
        let optional = parent(path).is_some_and(|p| {
            empties
                .iter()
                .any(|e| e.get(p) == Some(&"object") && !e.contains_key(path))
        });
        out.push(Field {
            path: path.clone(),
            ty,
            nullable,
            optional,
        });
    }
    out
}

fn render_fields(fields: &[Field]) -> String {
    let mut s = String::from("| field | type |\n|---|---|\n");
    for f in fields {
        let mut ty = f.ty.to_string();
        if f.nullable {
            ty.push_str(" or null");
        }
        if f.optional {
            ty.push_str(", may be absent");
        }
        s.push_str(&format!("| `{}` | {ty} |\n", f.path));
    }
    s
}

/// The fields of a command's payload: `(path, type)`, the type saying "optional" for a field
/// a client may leave out or send as null. Whether a top-level field may be left out is asked
/// of the parser itself ([`super::Command::parse`] without it).
pub(crate) fn payload_fields(command: &str) -> Vec<(String, String)> {
    let Some(Value::Object(full)) = payload_sample(command, Mode::Full) else {
        return Vec::new();
    };
    let may_omit = |field: &str| {
        let mut without = full.clone();
        without.remove(field);
        super::Command::parse(command, Value::Object(without)).is_ok()
    };
    shape(|mode| payload_sample(command, mode).unwrap_or_default())
        .into_iter()
        .map(|f| {
            let top_level_optional = !f.path.contains(['.', '[']) && may_omit(&f.path);
            let ty = if f.nullable || f.optional || top_level_optional {
                format!("{}, optional", f.ty)
            } else {
                f.ty.to_string()
            };
            (f.path, ty)
        })
        .collect()
}

/// One outbound message: its heading key (unique), a line saying what it is, and its shape.
pub(crate) struct Contract {
    pub key: String,
    pub about: String,
    pub fields: Vec<Field>,
}

impl Contract {
    fn new(key: String, about: String, sample: impl Fn(Mode) -> Value) -> Contract {
        Contract {
            key,
            about,
            fields: shape(sample),
        }
    }

    /// The field at `path`, if the message has it.
    pub fn field(&self, path: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.path == path)
    }
}

fn code_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The frames around payloads, with a sample payload; `data` of a reply or event is shown as
/// an object (its shape is the reply's or the event's below).
fn frames(mode: Mode) -> Vec<(&'static str, &'static str, Value)> {
    let full = mode == Mode::Full;
    let now = SystemTime::UNIX_EPOCH;
    // A string or a number, as the request had it.
    let id = full.then(|| Value::from(ANY));
    let id = id.as_ref();
    let hollow = |mut v: Value, key: &str| {
        if let Some(d) = v.get_mut(key) {
            *d = json!({});
        }
        v
    };
    let pong = Reply::of(&Pong::sample(mode));
    let mut err = ApiError::new(ErrorCode::CameraOffline, "Camera not connected");
    if full {
        err = err
            .with_operation("take_photo")
            .with_details(ErrorDetails::refused("session_running"));
    }
    let event = Event::of(&CameraOffline::sample(mode));
    let mut ack_ok = ack_frame(&Ok(pong.clone()), id, now);
    if let Some(r) = ack_ok.pointer_mut("/data/result") {
        *r = json!({});
    }
    let sync = TimeSyncRequest::sample(mode);
    // `details` has one of the shapes under "Error details".
    let plain_details = |mut v: Value| {
        for p in ["/data/details", "/error/details", "/data/error/details"] {
            if let Some(d) = v.pointer_mut(p) {
                *d = json!({});
            }
        }
        v
    };
    // The blocks' own shapes are under "Status blocks": here they are objects (or null).
    let with_blocks = |kind: &str, extra: Value| {
        let extra = match extra {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut frame = super::status_frame(kind, extra, &StatusBlocks::sample(mode), now);
        for name in StatusBlocks::NAMES {
            if let Some(b) = frame.get_mut(name).filter(|b| b.is_object()) {
                *b = json!({});
            }
            if let Some(b) = frame
                .get_mut("data")
                .and_then(|d| d.get_mut(name))
                .filter(|b| b.is_object())
            {
                *b = json!({});
            }
        }
        frame
    };
    vec![
        (
            "welcome",
            "The first frame on a connection: who the client is, the commands it may send, \
             the limits, then every status block (at top level and in `data`).",
            with_blocks("welcome", to_json(&Welcome::sample(mode))),
        ),
        (
            "status_update",
            "Every status block (at top level and in `data`), every 10 s and after a change \
             a client would show.",
            with_blocks("status_update", json!({})),
        ),
        (
            "reply",
            "Every direct reply: `type` is the reply's, `id` echoes the request's.",
            hollow(reply_frame(&pong, id, now), "data"),
        ),
        (
            "event",
            "Every broadcast, once per wire name: `type` is the family (`event`, \
             `timelapse_event`, `discovery_event`, `network_event`), `eventType` the name.",
            hollow(event.to_frames(now).remove(0), "data"),
        ),
        (
            "error",
            "A failed command: the error under both `data` (seeds) and `error` (the original); \
             `details` is one of the error details below.",
            plain_details(error_frame(&err, id, now)),
        ),
        (
            "operation_result (success)",
            "Sent after the reply when the command asked with `\"ack\": true`; `result` is the \
             reply's payload.",
            ack_ok,
        ),
        (
            "operation_result (failure)",
            "Sent after the error when the command asked with `\"ack\": true`.",
            plain_details(ack_frame(&Err(err.clone()), id, now)),
        ),
        (
            "time-sync-request",
            "Sent to a client after `welcome`; `requestId` and `serverTime` at top level (the \
             original) and in `data` (seed 000).",
            crate::web::hub::time_sync_request_frame(&sync, now),
        ),
        (
            "GET /health",
            "Liveness for supervisors; not behind the token.",
            to_json(&Health::sample(mode)),
        ),
        (
            "REST error",
            "The body of a REST error (the HTTP status follows the code).",
            plain_details(rest_error_body(&err, now)),
        ),
    ]
}

/// Every typed `error.details`, with what it means. A new variant must be named in the match
/// below (or this does not compile); list its sample next to the others.
fn error_details(mode: Mode) -> Vec<(&'static str, &'static str, Value)> {
    let all = [
        ErrorDetails::Refused {
            reason: Sample::sample(mode),
            override_with: Sample::sample(mode),
        },
        ErrorDetails::Field {
            field: Sample::sample(mode),
        },
        ErrorDetails::Camera {
            status: Sample::sample(mode),
            camera_message: Sample::sample(mode),
        },
        ErrorDetails::Attempts {
            attempts: Sample::sample(mode),
        },
        ErrorDetails::Certificate {
            uuid: Sample::sample(mode),
            pinned: Sample::sample(mode),
            presented: Sample::sample(mode),
        },
        ErrorDetails::Interval(Sample::sample(mode)),
    ];
    all.into_iter()
        .filter_map(|d| {
            let (name, about) = match &d {
                ErrorDetails::Refused { .. } => (
                    "Refused",
                    "`reason`: `session_running` (a session runs; `override` names the field \
                     that forces the change, when there is one) or `no_gap` (no gap between a \
                     session's frames for a test photo).",
                ),
                ErrorDetails::Field { .. } => ("Field", "The payload field at fault."),
                ErrorDetails::Camera { .. } => (
                    "Camera",
                    "A camera (CCAPI) answer that was not 2xx: its HTTP status and message.",
                ),
                ErrorDetails::Attempts { .. } => (
                    "Attempts",
                    "`connect_to_ip` failed: each URL tried and why.",
                ),
                ErrorDetails::Certificate { .. } => (
                    "Certificate",
                    "`CERTIFICATE_CHANGED`: the camera and the two SHA-256 fingerprints.",
                ),
                ErrorDetails::Interval(_) => (
                    "Interval",
                    "`VALIDATION_FAILED` of `start_intervalometer`: the interval check.",
                ),
                // Untyped (kept for code not converted yet): no contract.
                ErrorDetails::Other(_) => return None,
            };
            Some((name, about, to_json(&d)))
        })
        .collect()
}

/// Every outbound message, enumerated from the tables: envelopes, status blocks, the reply of
/// every command, every event.
pub(crate) fn contracts() -> Vec<Contract> {
    let mut out = Vec::new();
    for (i, (name, about, _)) in frames(Mode::Full).into_iter().enumerate() {
        out.push(Contract::new(
            format!("frame `{name}`"),
            about.into(),
            |mode| frames(mode).swap_remove(i).2,
        ));
    }

    for (i, (name, about, _)) in error_details(Mode::Full).into_iter().enumerate() {
        out.push(Contract::new(
            format!("details `{name}`"),
            about.into(),
            |mode| error_details(mode).swap_remove(i).2,
        ));
    }

    for name in StatusBlocks::NAMES {
        out.push(Contract::new(
            format!("status `{name}`"),
            format!(
                "In `welcome`, `status_update` (at top level and in `data`) and the `status` \
                 reply: block `{name}` (null until its service publishes it)."
            ),
            |mode| to_json(&StatusBlocks::sample(mode))[name].take(),
        ));
    }

    for (kind, ty) in REPLIES {
        let commands: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.reply == *kind)
            .flat_map(|c| c.names())
            .collect();
        out.push(Contract::new(
            format!("reply `{kind}`"),
            format!("Payload `{ty}`, the answer to {}.", code_list(commands)),
            |mode| reply_sample(kind, mode).expect("every reply has a sample"),
        ));
    }

    for kind in EventKind::ALL {
        let names: Vec<String> = kind
            .wire_names()
            .iter()
            .map(|(family, name)| format!("{}/{name}", family.wire_type()))
            .collect();
        out.push(Contract::new(
            format!("event `{kind:?}`"),
            format!(
                "Payload `{}` on channel `{}`, sent as {}.",
                kind.payload(),
                kind.channel().as_str(),
                code_list(names.iter().map(String::as_str))
            ),
            |mode| kind.sample(mode),
        ));
    }
    out
}

/// `docs/PROTOCOL-SHAPES.md` as the code says it must be.
pub(crate) fn render_shapes() -> String {
    let mut s = String::from(
        "# skylapse protocol: message shapes\n\n\
         <!-- Generated by src/protocol/contracts.rs; do not edit. After a reviewed change: \
         SKYLAPSE_BLESS=1 cargo test --lib protocol:: -->\n\n\
         The JSON shape of every message the server sends (see `PROTOCOL.md` for what they \
         mean). A path is `a.b` for a nested field, `list[]` for the elements of an array, \
         `map.*` for the values of an object keyed by name or id. *or null*: the field is \
         always there but may be null; *may be absent*: the field is left out when it has \
         no value. Numbers may be integers or fractions. These shapes are checked by the \
         contract tests: a change here is a change to every client.\n",
    );
    let mut section = "";
    for c in contracts() {
        let group = c.key.split(' ').next().unwrap_or("");
        if group != section {
            section = match group {
                "frame" => "frame",
                "details" => "details",
                "status" => "status",
                "reply" => "reply",
                _ => "event",
            };
            s.push_str(match section {
                "frame" => "\n## Envelopes\n",
                "details" => "\n## Error details (`details` of an error)\n",
                "status" => "\n## Status blocks\n",
                "reply" => "\n## Replies\n",
                _ => "\n## Events (payload in `data`)\n",
            });
        }
        s.push_str(&format!(
            "\n### {}\n\n{}\n\n{}",
            c.key,
            c.about,
            render_fields(&c.fields)
        ));
    }
    s
}

/// Compares `path` (below the crate root) with `expected`, or rewrites it when blessing.
/// The failure names the sections that differ, with their changed lines.
pub(crate) fn check_golden(path: &str, expected: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os(BLESS_VAR).is_some_and(|v| v == "1") {
        let tmp = file.with_extension("md.tmp");
        std::fs::write(&tmp, expected).expect("write the golden file");
        std::fs::rename(&tmp, &file).expect("replace the golden file");
        return;
    }
    let actual = std::fs::read_to_string(&file).unwrap_or_default();
    if actual == expected {
        return;
    }
    panic!(
        "{path} disagrees with the code:\n{}\nIf the change is intended (a renamed field breaks \
         clients: keep the old name too), regenerate it with\n  \
         {BLESS_VAR}=1 cargo test --lib protocol::\nand review the diff.",
        section_diff(&actual, expected)
    );
}

/// The sections (`### …`, else `## …`) that differ, with the lines only one side has.
fn section_diff(actual: &str, expected: &str) -> String {
    fn sections(text: &str) -> Vec<(String, Vec<&str>)> {
        let mut out: Vec<(String, Vec<&str>)> = vec![("(top)".into(), Vec::new())];
        for line in text.lines() {
            if line.starts_with("## ") || line.starts_with("### ") {
                out.push((line.to_string(), Vec::new()));
            }
            if let Some(last) = out.last_mut() {
                last.1.push(line);
            }
        }
        out
    }
    let (a, e) = (sections(actual), sections(expected));
    fn find<'a>(v: &[(String, Vec<&'a str>)], k: &str) -> Option<Vec<&'a str>> {
        v.iter().find(|(h, _)| h == k).map(|x| x.1.clone())
    }
    let mut report = String::new();
    for (head, lines) in &e {
        match find(&a, head) {
            None => report.push_str(&format!("  missing in the file: {head}\n")),
            Some(old) if old != *lines => {
                report.push_str(&format!("  differs: {head}\n"));
                for l in old.iter().filter(|l| !lines.contains(l)) {
                    report.push_str(&format!("    - {l}\n"));
                }
                for l in lines.iter().filter(|l| !old.contains(l)) {
                    report.push_str(&format!("    + {l}\n"));
                }
            }
            _ => {}
        }
    }
    for (head, _) in &a {
        if find(&e, head).is_none() {
            report.push_str(&format!("  not in the code (removed?): {head}\n"));
        }
    }
    const MAX_LINES: usize = 60;
    let lines = report.lines().count();
    if lines > MAX_LINES {
        report = report
            .lines()
            .take(MAX_LINES)
            .collect::<Vec<_>>()
            .join("\n");
        report.push_str(&format!("\n  … and {} more lines\n", lines - MAX_LINES));
    }
    if report.is_empty() {
        report.push_str("  (only the order of sections or lines differs)\n");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::commands::{command_names, spec_of};

    #[test]
    fn every_outbound_message_matches_its_contract() {
        check_golden(SHAPES_FILE, &render_shapes());
    }

    #[test]
    fn contracts_cover_every_command_reply_and_every_event() {
        let keys: Vec<String> = contracts().into_iter().map(|c| c.key).collect();
        let has = |k: String| assert!(keys.contains(&k), "no contract for {k}");
        for name in command_names() {
            let spec = spec_of(name).expect("a table row");
            assert!(
                reply_sample(spec.reply, Mode::Full).is_some(),
                "{name}: its reply `{}` has no sample",
                spec.reply
            );
            has(format!("reply `{}`", spec.reply));
        }
        for kind in EventKind::ALL {
            has(format!("event `{kind:?}`"));
        }
        for block in StatusBlocks::NAMES {
            has(format!("status `{block}`"));
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "two messages share a heading");
    }

    /// The documented payloads are ones the parser takes: the doc cannot drift from it.
    #[test]
    fn every_payload_sample_parses() {
        for c in COMMANDS {
            for mode in [Mode::Full, Mode::Empty(0)] {
                if let Some(data) = payload_sample(c.name, mode) {
                    if let Err(e) = super::super::Command::parse(c.name, data.clone()) {
                        panic!("{}: {data} does not parse: {e}", c.name);
                    }
                }
            }
        }
    }

    /// The empty sample must not be the full one: otherwise null/absent fields go unseen.
    #[test]
    fn shapes_tell_nullable_and_absent_fields() {
        let c = contracts();
        let get = |k: &str| c.iter().find(|c| c.key == k).expect(k);
        let exif = get("reply `test_photo`").field("exif").expect("exif");
        assert!(exif.nullable && !exif.optional, "{exif:?}");
        let warning = get("reply `camera_certificate_accepted`")
            .field("warning")
            .expect("warning");
        assert!(warning.optional, "{warning:?}");
        // A session's shot: the session fields are flattened in only for a session.
        let shot = get("event `SessionPhoto`")
            .field("shotNumber")
            .expect("shot");
        assert!(shot.optional, "{shot:?}");
        let id = get("frame `reply`").field("id").expect("id");
        assert!(id.optional, "{id:?}");
    }

    /// Where the original service (`/work/shared/PROTOCOL.md`, the issue 10 list) names a field
    /// differently, skylapse sends both names; and the fields its clients read are there.
    #[test]
    fn the_originals_names_are_sent_alongside_skylapses() {
        let c = contracts();
        let check = |key: &str, paths: &[&str]| {
            let m = c
                .iter()
                .find(|m| m.key == key)
                .unwrap_or_else(|| panic!("no contract {key}"));
            for p in paths {
                assert!(m.field(p).is_some(), "{key} lacks `{p}`");
            }
        };
        // Both names.
        check(
            "frame `error`",
            &["data.code", "data.message", "error.code", "error.message"],
        );
        check(
            "frame `time-sync-request`",
            &["requestId", "serverTime", "data.requestId"],
        );
        check("event `TestPhotoProgress`", &["percent", "percentage"]);
        check(
            "reply `test_photo`",
            &[
                "url",
                "fileUrl",
                "filename",
                "cameraPath",
                "size",
                "processingTimeMs",
                "exif.ISO",
                "exif.ExposureTime",
                "exif.ShutterSpeed",
                "exif.FNumber",
                "exif.DateTimeOriginal",
                "exif.Model",
                "exif.ImageWidth",
            ],
        );
        check("reply `report_deleted`", &["id", "reportId"]);
        check("reply `report_title_updated`", &["id", "reportId", "title"]);
        check(
            "reply `system_time`",
            &["currentTime", "time", "timestamp", "unixMs", "timezone"],
        );
        check(
            "reply `manual_time_sync`",
            &["success", "accepted", "currentTime"],
        );
        check(
            "reply `time_sync_status`",
            &[
                "success",
                "status.lastPiSync",
                "status.piReliable",
                "status.syncSource",
                "pi.isSynchronized",
                "piProxyState.state",
            ],
        );
        check(
            "reply `camera_battery`",
            &[
                "batterylist[].level",
                "batterylist[].position",
                "batterylist[].kind",
                "batterylist[].quality",
                "battery.level",
            ],
        );
        check(
            "reply `timelapse_report`",
            &[
                "report.duration",
                "report.intervalometer.interval",
                "report.intervalometer.numberOfShots",
                "report.intervalometer.stopCondition",
                "report.intervalometer.stopAt",
                "report.results.shotsTaken",
                "report.results.imagesCaptured",
                "report.results.imagesSuccessful",
                "report.results.imagesFailed",
                "report.results.errors[].shotNumber",
                "report.results.firstImageName",
                "report.results.lastImageName",
                "report.metadata.completionReason",
                "report.metadata.savedAt",
                "report.metadata.version",
                "report.metadata.cameraModel",
                "report.cameraInfo",
                "report.cameraSettings",
                "report.sessionId",
                "report.id",
            ],
        );
        check(
            "reply `unsaved_session`",
            &[
                "unsavedSession.completionData.reason",
                "unsavedSession.completionData.stats",
                "unsavedSession.completionData.options",
                "unsavedSession.completionData.completedAt",
            ],
        );
        check("reply `last_camera_ip`", &["lastIP"]);
        check("reply `wifi_enabled`", &["enabled"]);
        check("reply `saved_networks`", &["networks[].name"]);
        check(
            "reply `wifi_countries`",
            &["countries[].code", "countries[].name"],
        );
        check(
            "reply `network_scan_result`",
            &[
                "networks[].ssid",
                "networks[].signal",
                "networks[].security",
                "networks[].frequency",
                "networks[].known",
            ],
        );
        check(
            "reply `interval_validation`",
            &["valid", "warnings", "minimumInterval"],
        );
        check(
            "reply `intervalometer_start`",
            &["success", "sessionId", "title", "status"],
        );
        for end in ["SessionCompleted", "SessionStopped", "SessionError"] {
            check(
                &format!("event `{end}`"),
                &[
                    "sessionId",
                    "title",
                    "reason",
                    "stats.endTime",
                    "options.interval",
                    "options.stopCondition",
                    "options.totalShots",
                    "options.stopTime",
                ],
            );
        }
        // The original's event names go out with skylapse's.
        for (kind, names) in [
            (
                EventKind::SessionStarted,
                &[
                    "session_started",
                    "sessionStarted",
                    "intervalometer_started",
                ][..],
            ),
            (
                EventKind::SessionCompleted,
                &[
                    "session_completed",
                    "sessionCompleted",
                    "intervalometer_completed",
                ],
            ),
            (
                EventKind::SessionStopped,
                &[
                    "session_stopped",
                    "sessionStopped",
                    "intervalometer_stopped",
                ],
            ),
            (
                EventKind::SessionError,
                &["session_error", "sessionError", "intervalometer_error"],
            ),
            (
                EventKind::ShotFailed,
                &["shot_failed", "intervalometer_error"],
            ),
            (
                EventKind::SessionPhoto,
                &["photo_taken", "intervalometer_photo"],
            ),
            (
                EventKind::UnsavedSessionFound,
                &["unsaved_session_found", "unsavedSessionFound"],
            ),
            (
                EventKind::CameraIpChanged,
                &["camera_ip_changed", "cameraIPChanged"],
            ),
        ] {
            let sent: Vec<&str> = kind.wire_names().iter().map(|(_, n)| *n).collect();
            for n in names {
                assert!(sent.contains(n), "{kind:?} is not sent as {n}: {sent:?}");
            }
        }
        check("event `ShotFailed`", &["shotNumber", "error", "stats"]);
        check(
            "event `SessionStarted`",
            &["sessionId", "title", "interval", "options"],
        );
        check(
            "event `PhotoOvertime`",
            &["shotNumber", "interval", "shotDuration", "overtime"],
        );
        check(
            "event `SessionPhoto`",
            &[
                "success",
                "shotNumber",
                "error",
                "timestamp",
                "fileName",
                "timingErrorMs",
            ],
        );
        check(
            "event `CameraDiscovered`",
            &["uuid", "modelName", "ipAddress"],
        );
        check("event `CameraConnected`", &["ip", "port"]);
        check("event `CameraIpChanged`", &["uuid", "oldIP", "newIP"]);
        check("event `WifiConnected`", &["ssid", "ip", "signal"]);
        check("event `WifiConnectionFailed`", &["ssid", "error"]);
        check(
            "event `PiSync`",
            &["synchronized", "source", "offset", "reliability"],
        );
        check(
            "event `CameraSync`",
            &["success", "previousTime", "newTime", "offset"],
        );
        check("event `SyncFailed`", &["component", "error"]);
        check("event `ReliabilityLost`", &["source", "reason"]);
        // The blocks' fields the original UI reads (marked * in the original's document).
        check(
            "status `camera`",
            &[
                "connected",
                "ip",
                "port",
                "model",
                "uuid",
                "battery.level",
                "battery.kind",
                "battery.quality",
                "lastError",
                "state",
                "nextRetryAt",
            ],
        );
        check(
            "status `discovery`",
            &[
                "isDiscovering",
                "totalCameras",
                "connectedCameras",
                "primaryCamera.uuid",
                "primaryCamera.modelName",
                "primaryCamera.ipAddress",
                "cameras",
            ],
        );
        check(
            "status `network`",
            &[
                "available",
                "interfaces.wlan0.active",
                "interfaces.wlan0.network",
                "interfaces.wlan0.ip",
                "interfaces.wlan0.signal",
                "interfaces.wlan0.connected",
                "interfaces.ap0.active",
                "interfaces.ap0.ssid",
                "interfaces.ap0.status",
                "interfaces.ap0.clients",
                "wifiCountry.country",
            ],
        );
        check(
            "status `power`",
            &[
                "isRaspberryPi",
                "battery",
                "thermal.temperature",
                "thermal.unit",
                "throttled",
                "uptime",
                "recommendations",
            ],
        );
        check(
            "status `storage`",
            &["mounted", "totalMB", "freeMB", "usedMB", "percentUsed"],
        );
        check("status `temperature`", &["(value)"]);
        check(
            "status `intervalometer`",
            &[
                "sessionId",
                "title",
                "state",
                "running",
                "options.interval",
                "options.stopCondition",
                "options.totalShots",
                "options.stopTime",
                "options.duration",
                "stats.startTime",
                "stats.shotsTaken",
                "stats.shotsSuccessful",
                "stats.shotsFailed",
                "stats.shotsSkipped",
                "stats.currentShot",
                "stats.nextShotTime",
                "stats.overtimeShots",
                "stats.totalOvertimeSeconds",
                "stats.maxOvertimeSeconds",
                "stats.lastShotDuration",
                "stats.timing.meanErrorMs",
                "stats.timing.p99ErrorMs",
                "stats.timing.maxErrorMs",
                "remainingShots",
                "estimatedEndTime",
                "successRate",
                "averageShotDuration",
            ],
        );
        check(
            "status `timesync`",
            &[
                "pi.isSynchronized",
                "pi.reliability",
                "pi.lastSyncTime",
                "camera.isSynchronized",
                "camera.lastSyncTime",
                "piProxyState.state",
                "piProxyState.valid",
                "piProxyState.ageSeconds",
                "connectedClients",
            ],
        );
    }
}
