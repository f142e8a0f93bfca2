//! The coordinator: routes commands to services, keeps the latest status blocks, publishes
//! events to the hub, and holds cross-machine policy as pure functions.
//!
//! ```text
//!  web (ws/rest) ──Command──▶ App::execute ──▶ first Service that claims it ──▶ CommandResult
//!                                 │
//!  services ──StatusBoard::set──▶ │ (changed?) ──Outbound::StatusChanged──▶ hub (coalesced
//!  services ──Publisher::event──▶ └──────────── Outbound::Event ─────────▶  status_update,
//!                                                                           fan-out)
//! ```
//!
//! A service (camera, intervalometer, discovery, wifi, timesync, power) is a driver task plus a
//! handle implementing [`Service`]. A command no running service claims gets
//! SERVICE_UNAVAILABLE with a message naming the missing part, never a fake success.

use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};

use crate::clock::{BoxFuture, SharedClock};
use crate::config::Config;
use crate::protocol::{ApiError, Command, CommandResult, Event, Reply};

/// Identifies a WebSocket client for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Who sent a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    WebSocket(ClientId),
    Rest,
    /// The service itself (timers, recovery).
    Internal,
}

/// What services send towards the hub. The channel is bounded; see [`Publisher`].
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Broadcast to every client subscribed to the event's channel.
    Event(Event),
    /// A status block changed: the hub sends a coalesced `status_update` soon.
    StatusChanged,
    /// A frame for one client only (time-sync-request, unsaved_session_found on connect).
    ToClient(ClientId, Value),
}

/// Bounded sender towards the hub. Publishing never blocks a machine's driver: if the hub has
/// fallen 1024 messages behind, the message is dropped and logged (clients recover from the
/// next status_update).
#[derive(Clone)]
pub struct Publisher {
    tx: async_channel::Sender<Outbound>,
}

pub const OUTBOUND_CAPACITY: usize = 1024;

impl Publisher {
    pub fn channel() -> (Publisher, async_channel::Receiver<Outbound>) {
        let (tx, rx) = async_channel::bounded(OUTBOUND_CAPACITY);
        (Publisher { tx }, rx)
    }

    pub fn send(&self, msg: Outbound) {
        if let Err(e) = self.tx.try_send(msg) {
            if e.is_full() {
                log::warn!("hub is {OUTBOUND_CAPACITY} messages behind; dropping one");
            }
        }
    }

    pub fn event(&self, event: Event) {
        self.send(Outbound::Event(event));
    }

    pub fn to_client(&self, client: ClientId, frame: Value) {
        self.send(Outbound::ToClient(client, frame));
    }
}

/// The names of the status blocks, in the order `welcome`/`status_update` list them.
pub const STATUS_BLOCKS: [&str; 8] = [
    "camera",
    "discovery",
    "network",
    "power",
    "storage",
    "temperature",
    "intervalometer",
    "timesync",
];

/// The latest snapshot of every status block. Services own their block and replace it whole;
/// an unchanged value does not wake the hub.
#[derive(Clone)]
pub struct StatusBoard {
    blocks: Arc<Mutex<Map<String, Value>>>,
    publisher: Publisher,
}

impl StatusBoard {
    pub fn new(publisher: Publisher) -> Self {
        let mut blocks = Map::new();
        for name in STATUS_BLOCKS {
            blocks.insert(name.to_string(), Value::Null);
        }
        StatusBoard {
            blocks: Arc::new(Mutex::new(blocks)),
            publisher,
        }
    }

    /// Replaces one block; tells the hub only when the value changed.
    pub fn set(&self, block: &str, value: Value) {
        let changed = {
            let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            match b.get(block) {
                Some(old) if *old == value => false,
                _ => {
                    b.insert(block.to_string(), value);
                    true
                }
            }
        };
        if changed {
            self.publisher.send(Outbound::StatusChanged);
        }
    }

    /// Replaces one block without waking the hub: for a value that only moved in fields a
    /// client can wait for until the next periodic `status_update` (a sample's time, uptime).
    pub fn set_quietly(&self, block: &str, value: Value) {
        let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        b.insert(block.to_string(), value);
    }

    pub fn get(&self, block: &str) -> Value {
        let b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        b.get(block).cloned().unwrap_or(Value::Null)
    }

    /// All blocks, for `welcome`, `status_update` and `get_status`.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running part of the service that answers some commands.
pub trait Service: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// Returns `None` when the command is not this service's; otherwise the work to do.
    fn handle<'a>(
        &'a self,
        origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>>;

    /// A WebSocket client connected (time sync asks for its clock; the intervalometer offers an
    /// unsaved session). Must not block.
    fn client_connected(&self, _client: ClientId) {}

    /// A WebSocket client left.
    fn client_disconnected(&self, _client: ClientId) {}

    /// Orderly shutdown (SIGTERM): flush journals, release the camera. Bounded by the caller.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The coordinator.
pub struct App {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub status: StatusBoard,
    pub publisher: Publisher,
    services: Vec<Arc<dyn Service>>,
}

impl App {
    pub fn new(config: Arc<Config>, clock: SharedClock, publisher: Publisher) -> Self {
        let status = StatusBoard::new(publisher.clone());
        App {
            config,
            clock,
            status,
            publisher,
            services: Vec::new(),
        }
    }

    pub fn add_service(&mut self, service: Arc<dyn Service>) {
        self.services.push(service);
    }

    /// Runs a command through the first service that claims it.
    pub async fn execute(&self, origin: Origin, cmd: &Command) -> CommandResult {
        if let Command::GetStatus | Command::GetSystemStatus = cmd {
            return Ok(Reply::new("status", Value::Object(self.status.snapshot())));
        }
        for s in &self.services {
            if let Some(work) = s.handle(origin, cmd) {
                return work.await;
            }
        }
        Err(unavailable(cmd))
    }

    pub fn client_connected(&self, client: ClientId) {
        for s in &self.services {
            s.client_connected(client);
        }
    }

    pub fn client_disconnected(&self, client: ClientId) {
        for s in &self.services {
            s.client_disconnected(client);
        }
    }

    /// Shuts the services down in reverse order of registration: users before what they
    /// use (the intervalometer finishes its shot before the camera link goes down).
    pub async fn shutdown(&self) {
        for s in self.services.iter().rev() {
            s.shutdown().await;
        }
    }
}

/// The SERVICE_UNAVAILABLE answer for a command no running service claims.
pub fn unavailable(cmd: &Command) -> ApiError {
    use Command::*;
    let part = match cmd {
        GetCameraStatus
        | TakePhoto(_)
        | GetCameraSettings
        | SetCameraSetting(_)
        | GetCameraBattery
        | GetCameraStorage
        | GetCameraDatetime
        | TakeTestPhoto
        | ListTestPhotos
        | DeleteTestPhoto(_)
        | AcceptCameraCertificate(_)
        | ConnectToIp(_) => "Camera control",
        ValidateInterval(_)
        | StartIntervalometer(_)
        | StopIntervalometer
        | GetIntervalometerStatus
        | GetUnsavedSession
        | SaveSessionAsReport(_)
        | DiscardSession(_)
        | ResumeSession(_)
        | GetTimelapseReports
        | GetTimelapseReport(_)
        | UpdateReportTitle(_)
        | DeleteTimelapseReport(_) => "The intervalometer",
        DiscoveryScan | GetDiscoveryStatus | SetPrimaryCamera(_) => "Camera discovery",
        GetNetworkStatus | NetworkScan(_) | NetworkConnect(_) | NetworkDisconnect(_)
        | WifiEnable | WifiDisable(_) | GetWifiCountry | SetWifiCountry(_) => {
            "Wi-Fi management (NetworkManager)"
        }
        TimeSyncResponse(_) | GpsResponse(_) | ManualCameraSync | ManualTimeSync(_)
        | GetTimeSyncStatus | GetSystemTime => "Time synchronisation",
        GetPowerStatus => "Power monitoring",
        _ => "This feature",
    };
    ApiError::unavailable(format!("{part} is not available on this skylapse instance"))
}
