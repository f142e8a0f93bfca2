//! NetworkManager calls and reads over one D-Bus connection (`Nm`): what the Wi-Fi
//! executor's slow effects do. Every method may wait on the bus, so the executor runs them on
//! its NM worker ([`super::driver`]), never in the driver loop.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value as ZValue};

use super::driver::WifiOptions;
use super::machine::Input;
use super::nm::{self, DeviceState};
use super::status::{DeviceSnap, Snapshot};
use crate::protocol::messages::{
    NetworkDisconnectResult, NetworkScanResult, SavedNetwork, WifiCountrySet, WifiDisableResult,
    WifiEnableResult, WifiNetwork,
};
use crate::protocol::{ApiError, ErrorCode, Reply, Secret};
use crate::wifi::country::ap_channel_warning;

/// One bus connection to NM and the options that name its interfaces. Cheap to clone into a
/// job.
#[derive(Clone)]
pub(crate) struct Nm {
    pub conn: zbus::Connection,
    pub opts: Arc<WifiOptions>,
}

/// A device's state as NM reports it, with its active connection (whether that is ours is
/// the executor's call: it knows which activation it started).
pub(crate) struct DeviceReport {
    pub state: DeviceState,
    pub reason: u32,
    pub active: Option<OwnedObjectPath>,
}

impl Nm {
    fn conn(&self) -> Result<zbus::Connection, ApiError> {
        Ok(self.conn.clone())
    }

    /// Starts activation; returns the new active connection path or a secret-free error.
    pub async fn activate(
        &self,
        ssid: &str,
        password: Option<&Secret>,
    ) -> Result<OwnedObjectPath, String> {
        let conn = self.conn().map_err(|e| e.message)?;
        let device = self
            .client_device(&conn)
            .await
            .ok_or_else(|| format!("no Wi-Fi client device ({}) found", self.opts.client_iface))?;
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        if password.is_none() {
            if let Some(profile) = self.saved_profile(&conn, ssid).await {
                log::debug!("Wi-Fi: activating saved profile {}", profile.as_str());
                return manager
                    .activate_connection(
                        &profile,
                        &device,
                        &ObjectPath::from_static_str_unchecked("/"),
                    )
                    .await
                    .map_err(|e| format!("NetworkManager refused to activate: {}", short(&e)));
            }
        }
        let ap = self
            .strongest_ap(&conn, &device, ssid)
            .await
            .unwrap_or_else(|| OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/")));
        let mut settings: HashMap<&str, HashMap<&str, ZValue<'_>>> = HashMap::new();
        settings.insert(
            "connection",
            HashMap::from([
                ("type", ZValue::from("802-11-wireless")),
                ("id", ZValue::from(ssid)),
            ]),
        );
        settings.insert(
            "802-11-wireless",
            HashMap::from([
                ("ssid", ZValue::from(ssid.as_bytes())),
                ("mode", ZValue::from("infrastructure")),
            ]),
        );
        if let Some(pw) = password {
            // The PSK goes into this D-Bus message and nowhere else.
            settings.insert(
                "802-11-wireless-security",
                HashMap::from([
                    ("key-mgmt", ZValue::from("wpa-psk")),
                    ("psk", ZValue::from(pw.expose())),
                ]),
            );
        }
        manager
            .add_and_activate_connection(settings, &device, &ap)
            .await
            .map(|(_, active)| active)
            .map_err(|e| format!("NetworkManager refused the connection: {}", short(&e)))
    }

    /// The state of `path` (the client device when `None`; `None` if it is another device).
    pub async fn client_device_state(
        &self,
        path: Option<&OwnedObjectPath>,
    ) -> Option<DeviceReport> {
        let device = self.client_device(&self.conn).await?;
        if path.is_some_and(|p| *p != device) {
            return None;
        }
        let d = nm::uncached::<nm::DeviceProxy>(&self.conn, &device)
            .await
            .ok()?;
        let state = DeviceState::from_u32(d.state().await.ok()?);
        let (_, reason) = d.state_reason().await.unwrap_or((0, 0));
        let active = d.active_connection().await.ok();
        Some(DeviceReport {
            state,
            reason,
            active,
        })
    }

    pub async fn disconnect(&self) -> Result<Reply, ApiError> {
        let conn = self.conn()?;
        let device = self.client_device(&conn).await.ok_or_else(|| {
            ApiError::new(
                ErrorCode::NetworkError,
                format!("no Wi-Fi client device ({}) found", self.opts.client_iface),
            )
        })?;
        let dev = nm::uncached::<nm::DeviceProxy>(&conn, &device)
            .await
            .map_err(dbus_error)?;
        let active = dev.active_connection().await.map_err(dbus_error)?;
        if active.as_str() == "/" {
            return Ok(Reply::of(&NetworkDisconnectResult {
                success: true,
                was_connected: false,
            }));
        }
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(dbus_error)?;
        manager
            .deactivate_connection(&active)
            .await
            .map_err(dbus_error)?;
        log::info!("Wi-Fi: disconnected {}", self.opts.client_iface);
        Ok(Reply::of(&NetworkDisconnectResult {
            success: true,
            was_connected: true,
        }))
    }

    pub async fn set_radio(&self, enabled: bool) -> Result<Reply, ApiError> {
        let conn = self.conn()?;
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(dbus_error)?;
        manager
            .set_wireless_enabled(enabled)
            .await
            .map_err(dbus_error)?;
        log::info!(
            "Wi-Fi radio {}",
            if enabled { "enabled" } else { "disabled" }
        );
        Ok(if enabled {
            Reply::of(&WifiEnableResult {
                success: true,
                enabled,
            })
        } else {
            Reply::of(&WifiDisableResult {
                success: true,
                enabled,
            })
        })
    }

    pub async fn request_scan(&self) -> Input {
        let Ok(conn) = self.conn() else {
            return Input::ScanRequestFailed;
        };
        let Some(device) = self.client_device(&conn).await else {
            return Input::ScanRequestFailed;
        };
        let Ok(w) = nm::uncached::<nm::WirelessProxy>(&conn, &device).await else {
            return Input::ScanRequestFailed;
        };
        let baseline = w.last_scan().await.ok();
        match w.request_scan(HashMap::new()).await {
            Ok(()) => Input::ScanStarted { baseline },
            Err(e) => {
                log::debug!("RequestScan refused ({e}); listing known networks");
                Input::ScanRequestFailed
            }
        }
    }

    async fn wifi_devices(&self, conn: &zbus::Connection) -> Vec<(OwnedObjectPath, String)> {
        let Ok(manager) = nm::NetworkManagerProxy::new(conn).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in manager.get_devices().await.unwrap_or_default() {
            let Ok(d) = nm::uncached::<nm::DeviceProxy>(conn, &path).await else {
                continue;
            };
            if d.device_type().await.ok() != Some(2) {
                continue; // NM_DEVICE_TYPE_WIFI
            }
            if let Ok(name) = d.interface().await {
                out.push((path, name));
            }
        }
        out
    }

    /// The configured client interface, else the first Wi-Fi device that is not the AP one.
    pub async fn client_device(&self, conn: &zbus::Connection) -> Option<OwnedObjectPath> {
        let devices = self.wifi_devices(conn).await;
        let named = devices
            .iter()
            .find(|(_, n)| *n == self.opts.client_iface)
            .or_else(|| devices.iter().find(|(_, n)| *n != self.opts.ap_iface));
        named.map(|(p, _)| p.clone())
    }

    async fn saved_profile(&self, conn: &zbus::Connection, ssid: &str) -> Option<OwnedObjectPath> {
        let settings = nm::SettingsProxy::new(conn).await.ok()?;
        for path in settings.list_connections().await.ok()? {
            let Ok(c) = nm::uncached::<nm::ConnectionProxy>(conn, &path).await else {
                continue;
            };
            let Ok(s) = c.get_settings().await else {
                continue;
            };
            let wifi = s.get("802-11-wireless");
            let same_ssid = wifi
                .and_then(|w| w.get("ssid"))
                .and_then(bytes_of)
                .is_some_and(|b| b == ssid.as_bytes());
            let is_ap = wifi
                .and_then(|w| w.get("mode"))
                .and_then(str_of)
                .is_some_and(|m| m == "ap");
            if same_ssid && !is_ap {
                return Some(path);
            }
        }
        None
    }

    /// Wi-Fi profiles NetworkManager keeps (`connection.id`, SSID, UUID).
    pub async fn saved_networks(&self, conn: &zbus::Connection) -> Vec<SavedNetwork> {
        let Ok(settings) = nm::SettingsProxy::new(conn).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in settings.list_connections().await.unwrap_or_default() {
            let Ok(c) = nm::uncached::<nm::ConnectionProxy>(conn, &path).await else {
                continue;
            };
            let Ok(s) = c.get_settings().await else {
                continue;
            };
            let Some(ssid) = s
                .get("802-11-wireless")
                .and_then(|w| w.get("ssid"))
                .and_then(bytes_of)
            else {
                continue;
            };
            let field = |k: &str| s.get("connection").and_then(|c| c.get(k)).and_then(str_of);
            let ssid = String::from_utf8_lossy(&ssid).into_owned();
            out.push(SavedNetwork {
                name: field("id").unwrap_or_else(|| ssid.clone()),
                ssid,
                uuid: field("uuid").unwrap_or_default(),
            });
        }
        out
    }

    async fn known_ssids(&self, conn: &zbus::Connection) -> Vec<Vec<u8>> {
        let Ok(settings) = nm::SettingsProxy::new(conn).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in settings.list_connections().await.unwrap_or_default() {
            let Ok(c) = nm::uncached::<nm::ConnectionProxy>(conn, &path).await else {
                continue;
            };
            if let Ok(s) = c.get_settings().await {
                if let Some(ssid) = s
                    .get("802-11-wireless")
                    .and_then(|w| w.get("ssid"))
                    .and_then(bytes_of)
                {
                    out.push(ssid);
                }
            }
        }
        out
    }

    async fn access_points(
        &self,
        conn: &zbus::Connection,
        device: &OwnedObjectPath,
    ) -> Vec<(OwnedObjectPath, ApInfo)> {
        let Ok(w) = nm::uncached::<nm::WirelessProxy>(conn, device).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in w.get_all_access_points().await.unwrap_or_default() {
            if let Some(info) = read_ap(conn, &path).await {
                out.push((path, info));
            }
        }
        out
    }

    async fn strongest_ap(
        &self,
        conn: &zbus::Connection,
        device: &OwnedObjectPath,
        ssid: &str,
    ) -> Option<OwnedObjectPath> {
        self.access_points(conn, device)
            .await
            .into_iter()
            .filter(|(_, ap)| ap.ssid == ssid.as_bytes())
            .max_by_key(|(_, ap)| ap.strength)
            .map(|(p, _)| p)
    }

    pub async fn list_networks(&self, conn: &zbus::Connection) -> Result<Reply, ApiError> {
        let device = self.client_device(conn).await.ok_or_else(|| {
            ApiError::new(
                ErrorCode::WifiScanFailed,
                format!("no Wi-Fi client device ({}) found", self.opts.client_iface),
            )
        })?;
        let known = self.known_ssids(conn).await;
        let aps = self.access_points(conn, &device).await;
        let networks = dedupe_networks(aps.into_iter().map(|(_, ap)| ap).collect(), &known);
        Ok(Reply::of(&NetworkScanResult {
            networks,
            error: None,
        }))
    }

    /// The client interface's first IPv4 address and the signal of its network.
    pub async fn client_address(&self, conn: &zbus::Connection) -> (Option<Ipv4Addr>, Option<u8>) {
        let Some(device) = self.client_device(conn).await else {
            return (None, None);
        };
        let ip = device_ipv4(conn, &device).await;
        let signal = self.client_signal(conn, &device).await;
        (ip, signal)
    }

    async fn client_signal(&self, conn: &zbus::Connection, device: &OwnedObjectPath) -> Option<u8> {
        let w = nm::uncached::<nm::WirelessProxy>(conn, device).await.ok()?;
        if let Ok(ap) = w.active_access_point().await {
            if ap.as_str() != "/" {
                if let Some(info) = read_ap(conn, &ap).await {
                    return Some(info.strength);
                }
            }
        }
        // No ActiveAccessPoint (older NM, the mock): the strongest AP of the active SSID.
        let ssid = active_connection_id(conn, device).await?;
        self.access_points(conn, device)
            .await
            .into_iter()
            .filter(|(_, ap)| ap.ssid == ssid.as_bytes())
            .map(|(_, ap)| ap.strength)
            .max()
    }

    /// The AP profile's band and channel (from its active connection's settings).
    async fn ap_channel(&self, conn: &zbus::Connection) -> Option<(String, u32)> {
        let devices = self.wifi_devices(conn).await;
        let (path, _) = devices.iter().find(|(_, n)| *n == self.opts.ap_iface)?;
        let s = active_settings(conn, path).await?;
        let w = s.get("802-11-wireless")?;
        let band = w.get("band").and_then(str_of).unwrap_or_default();
        let channel = match w.get("channel").map(|v| &**v) {
            Some(ZValue::U32(c)) => *c,
            _ => 0,
        };
        Some((band, channel))
    }

    pub async fn read_status(&self, conn: &zbus::Connection) -> Snapshot {
        let manager = nm::NetworkManagerProxy::new(conn).await.ok();
        let radio = match &manager {
            Some(m) => m.wireless_enabled().await.ok(),
            None => None,
        };
        let mut snap = Snapshot {
            radio,
            ..Default::default()
        };
        for (path, name) in self.wifi_devices(conn).await {
            let Ok(d) = nm::uncached::<nm::DeviceProxy>(conn, &path).await else {
                continue;
            };
            let state = DeviceState::from_u32(d.state().await.unwrap_or(0));
            let settings = active_settings(conn, &path).await;
            let wifi = settings.as_ref().and_then(|s| s.get("802-11-wireless"));
            let ssid = wifi
                .and_then(|w| w.get("ssid"))
                .and_then(bytes_of)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let ap_mode = wifi
                .and_then(|w| w.get("mode"))
                .and_then(str_of)
                .is_some_and(|m| m == "ap");
            let ip = device_ipv4(conn, &path).await;
            if name == self.opts.ap_iface || (ap_mode && snap.ap.is_none()) {
                snap.ap_ip = ip;
                snap.ap = Some(DeviceSnap {
                    iface: name.clone(),
                    state,
                    ssid: ssid.clone(),
                    ip,
                    signal: None,
                });
            }
            if name == self.opts.client_iface && !ap_mode {
                snap.client_ip = ip;
                let signal = if state == DeviceState::Activated {
                    self.client_signal(conn, &path).await
                } else {
                    None
                };
                snap.client = Some(DeviceSnap {
                    iface: name,
                    state,
                    ssid,
                    ip,
                    signal,
                });
            }
        }
        snap
    }
}

/// Sets the regulatory domain (no NM needed; with NM, the AP's channel is checked against the
/// new rules): the country now in force (for the status block) and the reply.
pub(crate) async fn set_country(
    opts: &WifiOptions,
    nm: Option<&Nm>,
    code: String,
) -> (Option<String>, Result<Reply, ApiError>) {
    let r = async {
        opts.regulatory
            .set(&code)
            .await
            .map_err(|e| ApiError::system(format!("cannot set the Wi-Fi country: {e}")))?;
        let now = opts
            .regulatory
            .get()
            .await
            .map(|c| c.code)
            .unwrap_or_else(|_| code.clone());
        let warning = match nm {
            Some(nm) => nm
                .ap_channel(&nm.conn)
                .await
                .and_then(|(band, ch)| ap_channel_warning(&now, &band, ch)),
            None => None,
        };
        log::info!("Wi-Fi country set to {now}");
        let reply = Reply::of(&WifiCountrySet {
            success: true,
            country: now.clone(),
            persistent: false,
            ap_channel_warning: warning,
        });
        Ok::<_, ApiError>((now, reply))
    }
    .await;
    let now = r.as_ref().ok().map(|(c, _)| c.clone());
    (now, r.map(|(_, reply)| reply))
}

fn dbus_error(e: zbus::Error) -> ApiError {
    ApiError::new(
        ErrorCode::NetworkError,
        format!("NetworkManager: {}", short(&e)),
    )
}

/// A D-Bus error's first line, bounded (a mock or a daemon may attach a whole traceback).
fn short(e: &zbus::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(240) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApInfo {
    pub ssid: Vec<u8>,
    pub strength: u8,
    pub security: &'static str,
    pub frequency: u32,
}

async fn read_ap(conn: &zbus::Connection, path: &OwnedObjectPath) -> Option<ApInfo> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(nm::NM_BUS_NAME)
        .ok()?
        .path(path.as_ref())
        .ok()?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .ok()?;
    let all = props
        .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
            nm::ACCESS_POINT_IFACE,
        ))
        .await
        .ok()?;
    let u32_of = |k: &str| match all.get(k).map(|v| &**v) {
        Some(ZValue::U32(n)) => *n,
        _ => 0,
    };
    let strength = match all.get("Strength").map(|v| &**v) {
        Some(ZValue::U8(n)) => *n,
        _ => 0,
    };
    Some(ApInfo {
        ssid: all.get("Ssid").and_then(bytes_of).unwrap_or_default(),
        strength,
        security: nm::security_label(u32_of("Flags"), u32_of("WpaFlags"), u32_of("RsnFlags")),
        frequency: u32_of("Frequency"),
    })
}

/// One entry per SSID, the strongest kept; hidden (empty or all-zero) SSIDs skipped; strongest
/// first.
pub(crate) fn dedupe_networks(aps: Vec<ApInfo>, known: &[Vec<u8>]) -> Vec<WifiNetwork> {
    let mut best: Vec<ApInfo> = Vec::new();
    for ap in aps {
        if ap.ssid.is_empty() || ap.ssid.iter().all(|b| *b == 0) {
            continue;
        }
        match best.iter_mut().find(|b| b.ssid == ap.ssid) {
            Some(b) if b.strength >= ap.strength => {}
            Some(b) => *b = ap,
            None => best.push(ap),
        }
    }
    best.sort_by(|a, b| b.strength.cmp(&a.strength).then(a.ssid.cmp(&b.ssid)));
    best.into_iter()
        .map(|ap| WifiNetwork {
            ssid: String::from_utf8_lossy(&ap.ssid).into_owned(),
            signal: ap.strength,
            security: ap.security.into(),
            frequency: ap.frequency,
            channel: nm::channel_of(ap.frequency),
            known: known.contains(&ap.ssid),
        })
        .collect()
}

pub(crate) async fn device_ipv4(
    conn: &zbus::Connection,
    device: &OwnedObjectPath,
) -> Option<Ipv4Addr> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let cfg = d.ip4_config().await.ok()?;
    if cfg.as_str() == "/" {
        return None;
    }
    let ip4 = nm::uncached::<nm::Ip4ConfigProxy>(conn, &cfg).await.ok()?;
    ip4.address_data()
        .await
        .ok()?
        .iter()
        .find_map(|a| str_of(a.get("address")?)?.parse().ok())
}

async fn active_connection_id(conn: &zbus::Connection, device: &OwnedObjectPath) -> Option<String> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let active = d.active_connection().await.ok()?;
    if active.as_str() == "/" {
        return None;
    }
    let ac = nm::uncached::<nm::ActiveConnectionProxy>(conn, &active)
        .await
        .ok()?;
    ac.id().await.ok()
}

/// Settings (secret-free) of the profile active on `device`.
async fn active_settings(
    conn: &zbus::Connection,
    device: &OwnedObjectPath,
) -> Option<nm::SettingsMap> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let active = d.active_connection().await.ok()?;
    if active.as_str() == "/" {
        return None;
    }
    let ac = nm::uncached::<nm::ActiveConnectionProxy>(conn, &active)
        .await
        .ok()?;
    let profile = ac.connection().await.ok()?;
    let c = nm::uncached::<nm::ConnectionProxy>(conn, &profile)
        .await
        .ok()?;
    c.get_settings().await.ok()
}

fn str_of(v: &OwnedValue) -> Option<String> {
    match &**v {
        ZValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

fn bytes_of(v: &OwnedValue) -> Option<Vec<u8>> {
    match &**v {
        ZValue::Array(a) => a
            .iter()
            .map(|b| match b {
                ZValue::U8(b) => Some(*b),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(ssid: &str, strength: u8) -> ApInfo {
        ApInfo {
            ssid: ssid.as_bytes().to_vec(),
            strength,
            security: "WPA2",
            frequency: 2437,
        }
    }

    #[test]
    fn scan_list_keeps_the_strongest_per_ssid_and_skips_hidden() {
        let list = dedupe_networks(
            vec![
                ap("Home", 40),
                ap("", 90),
                ap("Home", 70),
                ap("Cafe", 50),
                ap("\0\0", 99),
            ],
            &[b"Cafe".to_vec()],
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].ssid, "Home");
        assert_eq!(list[0].signal, 70);
        assert!(!list[0].known);
        assert_eq!(list[0].channel, Some(6));
        assert_eq!(list[1].ssid, "Cafe");
        assert!(list[1].known);
    }
}
