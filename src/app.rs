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

use serde_json::Value;
use std::sync::{Arc, Mutex};

use crate::clock::{BoxFuture, SharedClock};
use crate::config::Config;
use crate::protocol::messages::{NetworkScanResult, Status, SystemStatus, TimeSyncRequest};
use crate::protocol::status::{
    CameraBlock, DiscoveryBlock, IntervalometerBlock, NetworkBlock, PowerBlock, StatusBlock,
    StatusBlocks, StorageBlock, TimesyncBlock,
};
use crate::protocol::{ApiError, Command, CommandResult, Event, EventPayload, Owner, Reply};

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
    /// An event for one client only (unsaved_session_found on connect).
    EventTo(ClientId, Event),
    /// An event for every subscribed client but one (the one a reply already told).
    EventExcept(ClientId, Event),
    /// A `time-sync-request` for one client.
    TimeSyncRequest(ClientId, TimeSyncRequest),
    /// A raw frame for one client (tests use it as a marker in the hub's FIFO).
    ToClient(ClientId, Value),
}

impl Outbound {
    /// The frames this message becomes on the wire (events under each of their names), for
    /// tests and diagnostics that read the hub's input; the hub itself routes them.
    pub fn frames(&self, now: std::time::SystemTime) -> Vec<Value> {
        match self {
            Outbound::Event(e) | Outbound::EventTo(_, e) | Outbound::EventExcept(_, e) => {
                e.to_frames(now)
            }
            Outbound::TimeSyncRequest(_, r) => {
                vec![crate::web::hub::time_sync_request_frame(r, now)]
            }
            Outbound::ToClient(_, v) => vec![v.clone()],
            Outbound::StatusChanged => Vec::new(),
        }
    }
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

    /// Broadcasts a typed event (under each of its wire names).
    pub fn publish<T: EventPayload>(&self, payload: &T) {
        self.event(Event::of(payload));
    }

    /// Broadcasts a typed event to every client but `client`.
    pub fn publish_except<T: EventPayload>(&self, client: ClientId, payload: &T) {
        self.send(Outbound::EventExcept(client, Event::of(payload)));
    }

    /// Sends a typed event to one client.
    pub fn publish_to<T: EventPayload>(&self, client: ClientId, payload: &T) {
        self.send(Outbound::EventTo(client, Event::of(payload)));
    }
}

/// The latest snapshot of every status block, typed. Services own their block and replace it
/// whole; the hub hears of it only when a client would see a difference
/// ([`StatusBlock::same_for_clients`]).
#[derive(Clone)]
pub struct StatusBoard {
    blocks: Arc<Mutex<StatusBlocks>>,
    publisher: Publisher,
}

macro_rules! blocks {
    ($($set:ident, $get:ident, $field:ident: $t:ty;)*) => {
        $(
            /// Replaces the block; wakes the hub if a client would see the change.
            pub fn $set(&self, value: Option<$t>) {
                self.replace(|b| &mut b.$field, value);
            }

            pub fn $get(&self) -> Option<$t> {
                self.lock().$field.clone()
            }
        )*
    };
}

impl StatusBoard {
    pub fn new(publisher: Publisher) -> Self {
        StatusBoard {
            blocks: Arc::new(Mutex::new(StatusBlocks::default())),
            publisher,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusBlocks> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn replace<T: StatusBlock>(
        &self,
        slot: impl FnOnce(&mut StatusBlocks) -> &mut Option<T>,
        value: Option<T>,
    ) {
        let shown = {
            let mut b = self.lock();
            let s = slot(&mut b);
            let shown = match (&*s, &value) {
                (Some(old), Some(new)) => !old.same_for_clients(new),
                (None, None) => false,
                _ => true,
            };
            *s = value;
            shown
        };
        if shown {
            self.publisher.send(Outbound::StatusChanged);
        }
    }

    blocks! {
        set_camera, camera, camera: CameraBlock;
        set_discovery, discovery, discovery: DiscoveryBlock;
        set_network, network, network: NetworkBlock;
        set_power, power, power: PowerBlock;
        set_storage, storage, storage: StorageBlock;
        set_temperature, temperature, temperature: String;
        set_intervalometer, intervalometer, intervalometer: IntervalometerBlock;
        set_timesync, timesync, timesync: TimesyncBlock;
    }

    /// All blocks, for `welcome`, `status_update` and `get_status`.
    pub fn snapshot(&self) -> StatusBlocks {
        self.lock().clone()
    }

    /// One block as JSON, by name (tests and diagnostics; services use the typed getters).
    pub fn get(&self, block: &str) -> Value {
        serde_json::to_value(self.snapshot())
            .ok()
            .and_then(|mut v| v.get_mut(block).map(Value::take))
            .unwrap_or(Value::Null)
    }
}

/// A running part of the service that answers some commands.
pub trait Service: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// The commands of this owner (the command table's column) are routed here.
    fn owner(&self) -> Owner;

    /// The work for a command of this service's owner (`None` only for a command it does not
    /// know, which the coordinator reports as a bug).
    fn handle<'a>(
        &'a self,
        origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>>;

    /// A WebSocket client connected (time sync asks for its clock; the intervalometer offers an
    /// unsaved session). Must not block.
    fn client_connected(&self, _client: ClientId) {}

    /// Where a WebSocket client connects from (told just before `client_connected`).
    fn client_address(&self, _client: ClientId, _addr: std::net::SocketAddr) {}

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
    /// The camera's live view (the HTTP stream reads it directly).
    liveview: std::sync::OnceLock<Arc<crate::camera::liveview::LiveView>>,
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
            liveview: std::sync::OnceLock::new(),
        }
    }

    /// Connects the live-view stream to the camera's live view (once).
    pub fn set_liveview(&self, lv: Arc<crate::camera::liveview::LiveView>) {
        let _ = self.liveview.set(lv);
    }

    pub fn liveview(&self) -> Option<Arc<crate::camera::liveview::LiveView>> {
        self.liveview.get().cloned()
    }

    pub fn add_service(&mut self, service: Arc<dyn Service>) {
        self.services.push(service);
    }

    /// Runs a command on the service that owns it (the command table's `owner`).
    pub async fn execute(&self, origin: Origin, cmd: &Command) -> CommandResult {
        let spec = cmd.spec();
        let result = match (spec.owner, cmd) {
            (_, Command::GetStatus) => Ok(Reply::of(&Status(self.status.snapshot()))),
            (_, Command::GetSystemStatus) => Ok(Reply::of(&SystemStatus(self.status.snapshot()))),
            (Owner::Web | Owner::App, _) => Err(ApiError::system(format!(
                "{} is answered by the web layer",
                spec.name
            ))),
            (owner, _) => match self.services.iter().find(|s| s.owner() == owner) {
                None => Err(owner.unavailable()),
                Some(s) => match s.handle(origin, cmd) {
                    Some(work) => work.await,
                    None => Err(ApiError::system(format!(
                        "{} did not answer {}",
                        s.name(),
                        spec.name
                    ))),
                },
            },
        };
        match result {
            Ok(reply) => {
                // The table says what each command answers; a service that answers otherwise
                // would break clients that wait for that type.
                debug_assert_eq!(reply.kind, spec.reply, "reply type of {}", spec.name);
                Ok(reply)
            }
            // Clients of the original wait for `network_scan_result`: they get an empty one
            // with the reason, as well as the error.
            Err(mut e) if matches!(cmd, Command::NetworkScan(_)) && e.reply.is_none() => {
                e.reply = Some(Box::new(Reply::of(&NetworkScanResult {
                    networks: Vec::new(),
                    error: Some(e.message.clone()),
                })));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    pub fn client_connected(&self, client: ClientId) {
        for s in &self.services {
            s.client_connected(client);
        }
    }

    /// A WebSocket client connected from `addr`.
    pub fn client_connected_from(&self, client: ClientId, addr: std::net::SocketAddr) {
        for s in &self.services {
            s.client_address(client, addr);
        }
        self.client_connected(client);
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

/// The SERVICE_UNAVAILABLE answer for a command whose service is not running.
pub fn unavailable(cmd: &Command) -> ApiError {
    cmd.owner().unavailable()
}
