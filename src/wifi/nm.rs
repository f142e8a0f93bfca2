//! Minimal NetworkManager D-Bus proxies (zbus 5, async only) and NM's integer types as enums.
//!
//! Only what skylapse calls is declared. Proxies are built without property caching
//! ([`uncached`]): the driver listens to `PropertiesChanged` itself and reads on demand, so a
//! proxy never holds a stale value or an extra match rule.
//!
//! Secrets: `AddAndActivateConnection` carries the PSK inside the D-Bus message only;
//! `Settings.Connection.GetSettings` never returns secrets (NM keeps them for `GetSecrets`,
//! which skylapse never calls).

use std::collections::HashMap;

use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

pub const NM_BUS_NAME: &str = "org.freedesktop.NetworkManager";
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";
pub const DEVICE_IFACE: &str = "org.freedesktop.NetworkManager.Device";
pub const WIRELESS_IFACE: &str = "org.freedesktop.NetworkManager.Device.Wireless";
pub const ACCESS_POINT_IFACE: &str = "org.freedesktop.NetworkManager.AccessPoint";

/// `a{sa{sv}}` as NM returns it (connection settings).
pub type SettingsMap = HashMap<String, HashMap<String, OwnedValue>>;

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager",
    gen_blocking = false
)]
pub trait NetworkManager {
    fn get_devices(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    fn activate_connection(
        &self,
        connection: &ObjectPath<'_>,
        device: &ObjectPath<'_>,
        specific_object: &ObjectPath<'_>,
    ) -> zbus::Result<OwnedObjectPath>;

    fn add_and_activate_connection(
        &self,
        connection: HashMap<&str, HashMap<&str, Value<'_>>>,
        device: &ObjectPath<'_>,
        specific_object: &ObjectPath<'_>,
    ) -> zbus::Result<(OwnedObjectPath, OwnedObjectPath)>;

    fn deactivate_connection(&self, active_connection: &ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(property)]
    fn state(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn wireless_enabled(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn set_wireless_enabled(&self, value: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn active_connections(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.Device",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait Device {
    #[zbus(signal, name = "StateChanged")]
    fn device_state_changed(&self, new_state: u32, old_state: u32, reason: u32)
        -> zbus::Result<()>;

    #[zbus(property)]
    fn interface(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn device_type(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn state(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn state_reason(&self) -> zbus::Result<(u32, u32)>;

    #[zbus(property, name = "Ip4Config")]
    fn ip4_config(&self) -> zbus::Result<OwnedObjectPath>;

    #[zbus(property)]
    fn active_connection(&self) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.Device.Wireless",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait Wireless {
    fn request_scan(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<()>;

    fn get_all_access_points(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    /// CLOCK_BOOTTIME ms of the last finished scan, -1 if none (NM ≥ 1.12).
    #[zbus(property)]
    fn last_scan(&self) -> zbus::Result<i64>;

    #[zbus(property)]
    fn active_access_point(&self) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.AccessPoint",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait AccessPoint {
    #[zbus(property)]
    fn ssid(&self) -> zbus::Result<Vec<u8>>;

    #[zbus(property)]
    fn strength(&self) -> zbus::Result<u8>;

    #[zbus(property)]
    fn flags(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn wpa_flags(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn rsn_flags(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn frequency(&self) -> zbus::Result<u32>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.Settings",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager/Settings",
    gen_blocking = false
)]
pub trait Settings {
    fn list_connections(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    fn add_connection(
        &self,
        connection: HashMap<&str, HashMap<&str, Value<'_>>>,
    ) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.Settings.Connection",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait Connection {
    /// Settings without secrets (NM never includes them here).
    fn get_settings(&self) -> zbus::Result<SettingsMap>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.IP4Config",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait Ip4Config {
    #[zbus(property)]
    fn address_data(&self) -> zbus::Result<Vec<HashMap<String, OwnedValue>>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager.Connection.Active",
    default_service = "org.freedesktop.NetworkManager",
    gen_blocking = false
)]
pub trait ActiveConnection {
    #[zbus(property)]
    fn state(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn connection(&self) -> zbus::Result<OwnedObjectPath>;
}

/// Builds a proxy at `path` without a property cache.
pub async fn uncached<'a, P>(conn: &zbus::Connection, path: &'a ObjectPath<'a>) -> zbus::Result<P>
where
    P: From<zbus::Proxy<'a>> + zbus::proxy::Defaults,
{
    zbus::proxy::Builder::<P>::new(conn)
        .path(path.clone())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

// ---------------------------------------------------------------------------------------------
// NM's integer types

/// Global NM state (`NMState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NmState {
    Unknown,
    Asleep,
    Disconnected,
    Disconnecting,
    Connecting,
    ConnectedLocal,
    ConnectedSite,
    ConnectedGlobal,
}

impl NmState {
    pub fn from_u32(v: u32) -> NmState {
        match v {
            10 => NmState::Asleep,
            20 => NmState::Disconnected,
            30 => NmState::Disconnecting,
            40 => NmState::Connecting,
            50 => NmState::ConnectedLocal,
            60 => NmState::ConnectedSite,
            70 => NmState::ConnectedGlobal,
            _ => NmState::Unknown,
        }
    }
}

/// Device state (`NMDeviceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Unknown,
    Unmanaged,
    Unavailable,
    Disconnected,
    Prepare,
    Config,
    NeedAuth,
    IpConfig,
    IpCheck,
    Secondaries,
    Activated,
    Deactivating,
    Failed,
}

impl DeviceState {
    pub fn from_u32(v: u32) -> DeviceState {
        use DeviceState::*;
        match v {
            10 => Unmanaged,
            20 => Unavailable,
            30 => Disconnected,
            40 => Prepare,
            50 => Config,
            60 => NeedAuth,
            70 => IpConfig,
            80 => IpCheck,
            90 => Secondaries,
            100 => Activated,
            110 => Deactivating,
            120 => Failed,
            _ => Unknown,
        }
    }

    /// Lower-case name, as `nmcli` prints it; used in `ap0.status`.
    pub fn as_str(self) -> &'static str {
        use DeviceState::*;
        match self {
            Unknown => "unknown",
            Unmanaged => "unmanaged",
            Unavailable => "unavailable",
            Disconnected => "disconnected",
            Prepare => "preparing",
            Config => "configuring",
            NeedAuth => "need-auth",
            IpConfig => "getting-ip",
            IpCheck => "checking-ip",
            Secondaries => "secondaries",
            Activated => "activated",
            Deactivating => "deactivating",
            Failed => "failed",
        }
    }

    /// Between "started activating" and "activated".
    pub fn is_activating(self) -> bool {
        use DeviceState::*;
        matches!(
            self,
            Prepare | Config | NeedAuth | IpConfig | IpCheck | Secondaries
        )
    }
}

/// Active connection state (`NMActiveConnectionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveConnectionState {
    Unknown,
    Activating,
    Activated,
    Deactivating,
    Deactivated,
}

impl ActiveConnectionState {
    pub fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Activating,
            2 => Self::Activated,
            3 => Self::Deactivating,
            4 => Self::Deactivated,
            _ => Self::Unknown,
        }
    }
}

/// Why a device changed state (`NMDeviceStateReason`); the common ones named, the rest kept
/// as their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStateReason {
    None,
    Unknown,
    ConfigFailed,
    IpConfigUnavailable,
    IpConfigExpired,
    NoSecrets,
    SupplicantDisconnect,
    SupplicantConfigFailed,
    SupplicantFailed,
    SupplicantTimeout,
    DhcpStartFailed,
    DhcpError,
    DhcpFailed,
    FirmwareMissing,
    Removed,
    Sleeping,
    ConnectionRemoved,
    UserRequested,
    Carrier,
    SsidNotFound,
    NewActivation,
    IpAddressDuplicate,
    Other(u32),
}

impl DeviceStateReason {
    pub fn from_u32(v: u32) -> Self {
        use DeviceStateReason::*;
        match v {
            0 => None,
            1 => Unknown,
            4 => ConfigFailed,
            5 => IpConfigUnavailable,
            6 => IpConfigExpired,
            7 => NoSecrets,
            8 => SupplicantDisconnect,
            9 => SupplicantConfigFailed,
            10 => SupplicantFailed,
            11 => SupplicantTimeout,
            15 => DhcpStartFailed,
            16 => DhcpError,
            17 => DhcpFailed,
            35 => FirmwareMissing,
            36 => Removed,
            37 => Sleeping,
            38 => ConnectionRemoved,
            39 => UserRequested,
            40 => Carrier,
            53 => SsidNotFound,
            60 => NewActivation,
            64 => IpAddressDuplicate,
            n => Other(n),
        }
    }

    /// Text for people (what `wifi_connection_failed.error` carries).
    pub fn text(self) -> String {
        use DeviceStateReason::*;
        let s = match self {
            None => "no reason given",
            Unknown => "unknown error",
            ConfigFailed => "device configuration failed",
            IpConfigUnavailable => "no IP configuration could be obtained",
            IpConfigExpired => "the IP configuration expired",
            NoSecrets => "the password was not accepted or is missing (no secrets)",
            SupplicantDisconnect => "the access point disconnected (wrong password?)",
            SupplicantConfigFailed => "Wi-Fi configuration failed",
            SupplicantFailed => "the Wi-Fi supplicant failed",
            SupplicantTimeout => "Wi-Fi authentication timed out (wrong password?)",
            DhcpStartFailed => "DHCP could not start",
            DhcpError => "DHCP error",
            DhcpFailed => "no address from DHCP",
            FirmwareMissing => "the Wi-Fi firmware is missing",
            Removed => "the device was removed",
            Sleeping => "NetworkManager is asleep",
            ConnectionRemoved => "the connection profile was removed",
            UserRequested => "disconnected on request",
            Carrier => "the link went down",
            SsidNotFound => "network not found",
            NewActivation => "replaced by a new connection",
            IpAddressDuplicate => "the IP address is already in use on the network",
            Other(n) => return format!("NetworkManager device state reason {n}"),
        };
        s.to_string()
    }
}

// Access point security flags (NM80211ApFlags / NM80211ApSecurityFlags).
const AP_FLAGS_PRIVACY: u32 = 0x1;
const SEC_KEY_MGMT_PSK: u32 = 0x100;
const SEC_KEY_MGMT_802_1X: u32 = 0x200;
const SEC_KEY_MGMT_SAE: u32 = 0x400;
const SEC_KEY_MGMT_OWE: u32 = 0x800;

/// One security label per access point: "Open", "WEP", "WPA", "WPA2", "WPA/WPA2", "WPA3",
/// "WPA2/WPA3", "OWE", "802.1X".
pub fn security_label(flags: u32, wpa_flags: u32, rsn_flags: u32) -> &'static str {
    let all = wpa_flags | rsn_flags;
    if all & SEC_KEY_MGMT_802_1X != 0 {
        return "802.1X";
    }
    if rsn_flags & SEC_KEY_MGMT_SAE != 0 {
        return if rsn_flags & SEC_KEY_MGMT_PSK != 0 {
            "WPA2/WPA3"
        } else {
            "WPA3"
        };
    }
    if rsn_flags & SEC_KEY_MGMT_OWE != 0 {
        return "OWE";
    }
    match (wpa_flags != 0, rsn_flags != 0) {
        (true, true) => {
            // The mock (and some drivers) mirror the same flags in both: call that WPA2.
            if wpa_flags == rsn_flags {
                "WPA2"
            } else {
                "WPA/WPA2"
            }
        }
        (false, true) => "WPA2",
        (true, false) => "WPA",
        (false, false) if flags & AP_FLAGS_PRIVACY != 0 => "WEP",
        (false, false) => "Open",
    }
}

/// Frequency (MHz) → channel number, for the AP's regulatory check and display.
pub fn channel_of(frequency_mhz: u32) -> Option<u32> {
    match frequency_mhz {
        2484 => Some(14),
        2412..=2472 => Some((frequency_mhz - 2407) / 5),
        5000..=5895 => Some((frequency_mhz - 5000) / 5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_labels_follow_the_key_management_bits() {
        assert_eq!(security_label(0, 0, 0), "Open");
        assert_eq!(security_label(1, 0, 0), "WEP");
        assert_eq!(security_label(1, 0, 0x188), "WPA2");
        assert_eq!(security_label(1, 0x144, 0x188), "WPA/WPA2");
        assert_eq!(security_label(1, 0, 0x400), "WPA3");
        assert_eq!(security_label(1, 0, 0x500), "WPA2/WPA3");
        assert_eq!(security_label(1, 0, 0x288), "802.1X");
        assert_eq!(security_label(1, 0x100, 0x100), "WPA2");
    }

    #[test]
    fn states_and_reasons_map_from_nm_numbers() {
        assert_eq!(DeviceState::from_u32(100), DeviceState::Activated);
        assert_eq!(DeviceState::from_u32(120), DeviceState::Failed);
        assert_eq!(DeviceState::from_u32(999), DeviceState::Unknown);
        assert!(DeviceState::from_u32(60).is_activating());
        assert_eq!(NmState::from_u32(70), NmState::ConnectedGlobal);
        assert_eq!(
            ActiveConnectionState::from_u32(2),
            ActiveConnectionState::Activated
        );
        assert_eq!(DeviceStateReason::from_u32(7), DeviceStateReason::NoSecrets);
        assert!(DeviceStateReason::from_u32(53).text().contains("not found"));
        assert_eq!(
            DeviceStateReason::from_u32(4242).text(),
            "NetworkManager device state reason 4242"
        );
    }

    #[test]
    fn channels_from_frequencies() {
        assert_eq!(channel_of(2412), Some(1));
        assert_eq!(channel_of(2462), Some(11));
        assert_eq!(channel_of(2484), Some(14));
        assert_eq!(channel_of(5180), Some(36));
        assert_eq!(channel_of(900), None);
    }
}
