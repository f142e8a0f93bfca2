//! The discovery machine's vocabulary: tunables, inputs, actions, the events it emits (and
//! their protocol form), the registry's entries and its footprint counters.

use std::time::{Duration, Instant};

use super::description::DeviceDescription;
use super::ssdp::{HttpUrl, SsdpMessage};
use crate::backoff::Backoff;
use crate::protocol::Event;

/// Tunables; `Default` is the production value.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Searches while no camera is connected: 3 s, 6 s, … capped at 5 min.
    pub search: Backoff,
    /// Search period while a camera is connected (NOTIFYs cover the rest).
    pub connected_search_every: Duration,
    pub max_cameras: usize,
    pub max_pending: usize,
    pub max_in_flight: usize,
    /// Token bucket for description fetches: burst and refill period per token.
    pub fetch_burst: u32,
    pub fetch_every: Duration,
    /// A known, online camera's description is fetched again at most this often (unless its
    /// Location changed).
    pub refetch_after: Duration,
    /// A Location whose description failed is not tried again before this.
    pub failed_retry_after: Duration,
    pub max_failed: usize,
    /// `max-age` is clamped to this range.
    pub min_max_age: Duration,
    pub max_max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            search: Backoff {
                initial: Duration::from_secs(3),
                factor: 2,
                max: Duration::from_secs(300),
                jitter: 0.1,
            },
            connected_search_every: Duration::from_secs(600),
            max_cameras: 32,
            max_pending: 16,
            max_in_flight: 2,
            fetch_burst: 8,
            fetch_every: Duration::from_millis(250),
            refetch_after: Duration::from_secs(60),
            failed_retry_after: Duration::from_secs(60),
            max_failed: 64,
            min_max_age: Duration::from_secs(30),
            max_max_age: Duration::from_secs(86_400),
        }
    }
}

/// What the camera side learned from a successful manual probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeInfo {
    /// UDN (without `uuid:`) or serial number, if the camera told us.
    pub id: Option<String>,
    pub model_name: Option<String>,
    pub serial_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The schedule timer fired (or any wake-up): run due work.
    Tick,
    /// An accepted SSDP packet.
    Ssdp(SsdpMessage),
    /// A description fetch this machine asked for has finished.
    DescriptionFetched {
        location: HttpUrl,
        result: Result<DeviceDescription, String>,
    },
    /// `discovery_scan`: search now.
    ScanRequested,
    /// `connect_to_ip` probed this base URL successfully.
    ManualConnected { base_url: HttpUrl, info: ProbeInfo },
    /// The camera link connected to the camera with this id (UDN or serial).
    LinkUp { id: String },
    /// The camera link lost its camera.
    LinkDown,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send an M-SEARCH on every interface / configured target.
    Search,
    /// GET this description URL and feed back `DescriptionFetched`.
    FetchDescription(HttpUrl),
    /// Point the camera link at this camera.
    Target {
        base_url: HttpUrl,
        id: String,
    },
    /// The primary camera announced itself while the link is down: reconnect now.
    SsdpAlive {
        id: String,
    },
    /// Remember this address as the last good one (`last-camera.json`).
    Remember {
        base_url: HttpUrl,
        id: String,
    },
    Event(DiscoveryEvent),
}

#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryEvent {
    CameraDiscovered {
        uuid: String,
        model_name: Option<String>,
        ip: String,
        access_url: String,
    },
    CameraConnected {
        uuid: String,
        ip: String,
        port: u16,
    },
    CameraOffline {
        uuid: String,
    },
    PrimaryCameraChanged {
        uuid: String,
    },
    CameraIpChanged {
        uuid: String,
        old_ip: String,
        new_ip: String,
        old_port: u16,
        new_port: u16,
    },
    PrimaryCameraReconnected {
        uuid: String,
        ip: String,
    },
    PrimaryCameraDisconnected {
        uuid: String,
    },
}

impl DiscoveryEvent {
    /// The `discovery_event` broadcast of PROTOCOL.md (and the original's camelCase alias).
    pub fn to_event(&self) -> Event {
        use crate::protocol::messages as m;
        match self.clone() {
            DiscoveryEvent::CameraDiscovered {
                uuid,
                model_name,
                ip,
                access_url,
            } => Event::of(&m::CameraDiscovered {
                uuid,
                model_name,
                ip_address: ip,
                access_url,
            }),
            DiscoveryEvent::CameraConnected { uuid, ip, port } => {
                Event::of(&m::CameraConnected { uuid, ip, port })
            }
            DiscoveryEvent::CameraOffline { uuid } => Event::of(&m::CameraOffline { uuid }),
            DiscoveryEvent::PrimaryCameraChanged { uuid } => {
                Event::of(&m::PrimaryCameraChanged { uuid })
            }
            DiscoveryEvent::CameraIpChanged {
                uuid,
                old_ip,
                new_ip,
                old_port,
                new_port,
            } => Event::of(&m::CameraIpChanged {
                uuid,
                old_ip,
                new_ip,
                old_port,
                new_port,
            }),
            DiscoveryEvent::PrimaryCameraReconnected { uuid, ip } => {
                Event::of(&m::PrimaryCameraReconnected { uuid, new_ip: ip })
            }
            DiscoveryEvent::PrimaryCameraDisconnected { uuid } => {
                Event::of(&m::PrimaryCameraDisconnected { uuid })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Ssdp,
    Manual,
}

#[derive(Debug, Clone)]
pub struct Camera {
    pub uuid: String,
    pub model_name: Option<String>,
    pub serial_number: Option<String>,
    pub friendly_name: Option<String>,
    pub access_url: HttpUrl,
    /// Description URL (SSDP cameras).
    pub location: Option<HttpUrl>,
    pub last_seen: Instant,
    pub last_fetch: Option<Instant>,
    /// When the SSDP announcement runs out (`None`: manual, never expires).
    pub expires_at: Option<Instant>,
    pub online: bool,
    /// The camera link is connected to it.
    pub connected: bool,
    pub ever_connected: bool,
    /// `primary_camera_reconnected` was already sent for the current return (so the link
    /// coming up right after an SSDP return does not send it twice).
    pub back_reported: bool,
    pub source: Source,
}

/// Counters that show the bounds hold (and what was dropped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub cameras: usize,
    pub pending: usize,
    pub in_flight: usize,
    pub failed: usize,
    pub dropped_announcements: u64,
    pub evicted: u64,
    pub searches: u64,
}
