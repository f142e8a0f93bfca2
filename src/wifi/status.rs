//! The `network` status block: built from a `Snapshot` of NM's devices (or the
//! "unavailable" block), with the AP's clients from NM's dnsmasq lease file.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use super::nm::DeviceState;
use crate::protocol::status::{
    ApClient, ApInterface, ClientInterface, NetInterface, NetworkBlock, WifiCountryBlock,
};

#[derive(Default)]
pub(crate) struct Snapshot {
    pub radio: Option<bool>,
    pub client: Option<DeviceSnap>,
    pub ap: Option<DeviceSnap>,
    pub client_ip: Option<Ipv4Addr>,
    pub ap_ip: Option<Ipv4Addr>,
}

pub(crate) struct DeviceSnap {
    pub iface: String,
    pub state: DeviceState,
    pub ssid: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub signal: Option<u8>,
}

/// What the block is made of besides the snapshot.
pub(crate) struct BlockInputs<'a> {
    pub available: bool,
    pub country: Option<String>,
    pub client_iface: &'a str,
    pub ap_iface: &'a str,
    pub unavailable: &'a str,
    pub leases_dir: &'a Path,
    pub wall: SystemTime,
}

/// The `network` block from `snap`, or the "unavailable" one (no snapshot, or NM not there).
pub(crate) fn network_block(b: BlockInputs<'_>, snap: Option<Snapshot>) -> NetworkBlock {
    let available = b.available;
    let wifi_country = WifiCountryBlock { country: b.country };
    let mut interfaces = std::collections::BTreeMap::new();
    match snap.filter(|_| available) {
        None => {
            interfaces.insert(
                b.client_iface.to_string(),
                NetInterface::Client(ClientInterface::default()),
            );
            interfaces.insert(
                b.ap_iface.to_string(),
                NetInterface::Ap(ApInterface {
                    status: "unknown".into(),
                    ..ApInterface::default()
                }),
            );
            NetworkBlock {
                available: false,
                error: Some(format!(
                    "NetworkManager is not reachable on the system D-Bus: {}",
                    b.unavailable
                )),
                wireless_enabled: None,
                interfaces,
                wifi_country,
            }
        }
        Some(s) => {
            let client = match &s.client {
                Some(c) => {
                    let connected = c.state == DeviceState::Activated;
                    ClientInterface {
                        active: connected,
                        connected,
                        network: if connected { c.ssid.clone() } else { None },
                        ip: c.ip.map(|i| i.to_string()),
                        signal: c.signal,
                        state: Some(c.state.as_str().into()),
                    }
                }
                None => ClientInterface {
                    state: Some("absent".into()),
                    ..ClientInterface::default()
                },
            };
            let ap = match &s.ap {
                Some(a) => ApInterface {
                    active: a.state == DeviceState::Activated,
                    ssid: a.ssid.clone(),
                    status: a.state.as_str().into(),
                    ip: a.ip.map(|i| i.to_string()),
                    interface: Some(a.iface.clone()),
                    clients: read_leases(b.leases_dir, &a.iface, b.wall),
                },
                None => ApInterface {
                    status: "absent".into(),
                    ..ApInterface::default()
                },
            };
            interfaces.insert(b.client_iface.to_string(), NetInterface::Client(client));
            interfaces.insert(b.ap_iface.to_string(), NetInterface::Ap(ap));
            NetworkBlock {
                available: true,
                error: None,
                wireless_enabled: s.radio,
                interfaces,
                wifi_country,
            }
        }
    }
}

/// AP clients from NM's dnsmasq lease file (`<expiry> <mac> <ip> <hostname> <client-id>`),
/// unexpired leases only. A lease outlives a client that left quietly, so this is "recently
/// joined", not "associated right now".
pub(crate) fn read_leases(dir: &Path, iface: &str, now: SystemTime) -> Vec<ApClient> {
    let path = dir.join(format!("dnsmasq-{iface}.leases"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse_leases(&text, now)
}

pub(crate) fn parse_leases(text: &str, now: SystemTime) -> Vec<ApClient> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    text.lines()
        .take(256)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let expiry: u64 = f.next()?.parse().ok()?;
            let mac = f.next()?;
            let ip: Ipv4Addr = f.next()?.parse().ok()?;
            let host = f.next().filter(|h| *h != "*");
            // expiry 0 means an infinite lease.
            (expiry == 0 || expiry > now).then(|| ApClient {
                mac: mac.to_string(),
                ip: ip.to_string(),
                hostname: host.map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn leases_drop_expired_and_malformed_lines() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let text = "2000 aa:bb:cc:dd:ee:ff 192.168.4.2 phone *\n\
                    500 11:22:33:44:55:66 192.168.4.3 old *\n\
                    garbage\n\
                    0 22:22:22:22:22:22 192.168.4.9 * *\n";
        let clients = parse_leases(text, now);
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].hostname.as_deref(), Some("phone"));
        assert_eq!(clients[1].hostname, None);
    }
}
