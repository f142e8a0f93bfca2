//! The Wi-Fi service's vocabulary: its options, the requests the service hands the driver
//! (each with its one-shot reply), and the address notices the driver tells subscribers.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::machine::Timing;
use crate::protocol::{ApiError, Reply, Secret};
use crate::wifi::country::Regulatory;

/// Tunables of the Wi-Fi service.
#[derive(Clone)]
pub struct WifiOptions {
    /// D-Bus address of the bus NM is on; None: the system bus (`DBUS_SYSTEM_BUS_ADDRESS`
    /// or the default socket).
    pub bus_address: Option<String>,
    /// The client (station) interface.
    pub client_iface: String,
    /// The access-point interface the camera and phone join.
    pub ap_iface: String,
    pub timing: Timing,
    /// How often to retry when there is no D-Bus at all.
    pub bus_retry: Duration,
    /// NM's dnsmasq lease files (`dnsmasq-<iface>.leases`) for the AP's clients.
    pub leases_dir: PathBuf,
    pub regulatory: Arc<dyn Regulatory>,
}

impl Default for WifiOptions {
    fn default() -> Self {
        WifiOptions {
            bus_address: None,
            client_iface: "wlan0".into(),
            ap_iface: "ap0".into(),
            timing: Timing::default(),
            bus_retry: Duration::from_secs(60),
            leases_dir: PathBuf::from("/var/lib/NetworkManager"),
            regulatory: Arc::new(crate::wifi::country::IwRegulatory::default()),
        }
    }
}

/// Told to the camera link (and anyone else) when the Pi's addresses change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WifiNotice {
    AddressesChanged {
        client: Option<Ipv4Addr>,
        ap: Option<Ipv4Addr>,
    },
}

/// Subscribers to [`WifiNotice`]s; each gets a small bounded queue (a notice is a hint: a
/// subscriber that lags loses old ones, never blocks the driver).
#[derive(Clone, Default)]
pub struct Notices {
    subs: Arc<Mutex<Vec<async_channel::Sender<WifiNotice>>>>,
}

impl Notices {
    pub fn subscribe(&self) -> async_channel::Receiver<WifiNotice> {
        let (tx, rx) = async_channel::bounded(8);
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    pub(crate) fn send(&self, n: WifiNotice) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            let _ = s.try_send(n.clone());
        }
    }
}

/// Scan requests answered by one running scan, at most.
pub(crate) const MAX_SCAN_WAITERS: usize = 32;

pub type Reply1 = async_channel::Sender<Result<Reply, ApiError>>;

/// What the service asks of the driver; each carries its own one-shot reply.
pub enum Request {
    /// Re-read the block (AP clients come from a file NM does not signal about).
    Status {
        reply: Reply1,
    },
    Scan {
        refresh: bool,
        reply: Reply1,
    },
    Connect {
        ssid: String,
        password: Option<Secret>,
        reply: Reply1,
    },
    Disconnect {
        reply: Reply1,
    },
    SetRadio {
        enabled: bool,
        reply: Reply1,
    },
    GetCountry {
        reply: Reply1,
    },
    /// The saved Wi-Fi profiles.
    Saved {
        reply: Reply1,
    },
    SetCountry {
        code: String,
        reply: Reply1,
    },
}
