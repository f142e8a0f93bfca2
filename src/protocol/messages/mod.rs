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

use serde::Serialize;
#[cfg(test)]
use serde_json::Value;

use super::status::{
    CameraBlock, DiscoveryBlock, IntervalometerBlock, NetworkBlock, PowerBlock,
    SessionOptionsBlock, SessionStats, StatusBlocks, StorageBlock, TimesyncBlock,
};
use super::{Channel, EventFamily};
use crate::intervalometer::report::{Report, ReportEntry};
use crate::intervalometer::schedule::{IntervalValidation, OptionsWire};

mod camera;
mod events;
mod frames;
mod replies;
mod session;

pub use camera::*;
pub use events::*;
pub use frames::*;
pub use replies::*;
pub use session::*;

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
