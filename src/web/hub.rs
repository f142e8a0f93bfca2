//! The hub: the registry of WebSocket clients and the fan-out of events to them.
//!
//! ```text
//!  Outbound (Publisher) ──▶ Hub::run ──serialize once──▶ push into each subscriber's OutQueue
//!                              │                                     │ (bounded, never awaits)
//!                              └─ StatusSchedule (period + coalesce) ▼
//!                                                            connection writer ──▶ socket
//! ```
//!
//! Every client has a bounded [`OutQueue`]. Pushing never blocks the hub: a newer
//! `status_update` replaces a queued older one (stale status is worthless), and when the queue
//! is full of frames that cannot be dropped the new frame is lost and the client is marked
//! stuck; a client stuck for [`STUCK_LIMIT`] is disconnected, so it reconnects and resyncs
//! from `welcome`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_tungstenite::tungstenite::Utf8Bytes;
use serde_json::{Map, Value};

use super::conns::{PeerKey, Refusal, Refusals};
use crate::app::{App, ClientId, Outbound};
use crate::config::Limits;
use crate::protocol::messages::{TimeSyncRequest, WsClient, WsConnections};
use crate::protocol::{Channel, Event};
use crate::util::iso8601;

/// How long frames may wait for a client's writer to take any before it is disconnected.
pub const STUCK_LIMIT: Duration = Duration::from_secs(10);

/// A status change is broadcast this long after it happens, so a burst becomes one frame.
pub const STATUS_COALESCE: Duration = Duration::from_millis(150);

/// One outgoing frame, serialized once and shared between clients.
#[derive(Debug, Clone)]
pub enum Frame {
    Text(Utf8Bytes),
    /// A `status_update`: replaced by a newer one while still queued.
    Status(Utf8Bytes),
    /// A WebSocket ping (liveness).
    Ping,
    /// Close the connection with this code and reason after the frames before it.
    Close(u16, &'static str),
    /// One text message whose middle is read from a file while it is written, in fragments
    /// (a report): only the chunk being written is in memory.
    Streamed(Arc<StreamedText>),
}

/// `prefix` + the file's `len` bytes + `suffix`, as one WebSocket text message.
#[derive(Debug)]
pub struct StreamedText {
    pub prefix: String,
    pub file: crate::protocol::SharedFile,
    pub len: u64,
    pub suffix: String,
}

/// The size of each fragment of a [`Frame::Streamed`] message.
pub const STREAM_CHUNK: usize = 16 * 1024;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full of undroppable frames; this frame is lost.
    Dropped,
    /// Frames have waited [`STUCK_LIMIT`] without the writer taking any: the client must be
    /// disconnected.
    Stuck,
}

impl Frame {
    /// What the frame holds in memory while queued (its text; control frames count a little).
    pub fn cost(&self) -> usize {
        match self {
            Frame::Text(t) | Frame::Status(t) => t.len() + 16,
            Frame::Ping | Frame::Close(..) => 16,
            Frame::Streamed(s) => s.prefix.len() + s.suffix.len() + STREAM_CHUNK + 16,
        }
    }
}

/// A client's outbound queue, bounded in bytes (and, second, in frames); no I/O, the
/// connection's writer drains it.
///
/// The frame the writer has taken but not finished sending still counts ("in flight"), so a
/// client that does not read holds at most `max_bytes` (or one larger frame, which is let in
/// only when nothing else is queued or in flight, so a big reply is never lost outright).
#[derive(Debug)]
pub struct OutQueue {
    frames: VecDeque<Frame>,
    bytes: usize,
    in_flight: usize,
    max_frames: usize,
    max_bytes: usize,
    /// The first push since the writer last took a frame, while frames were waiting: how long
    /// the client has been making no progress.
    stalled_since: Option<Instant>,
    /// The writer took a frame since the last push.
    progressed: bool,
    closing: bool,
}

impl OutQueue {
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        OutQueue {
            frames: VecDeque::new(),
            bytes: 0,
            in_flight: 0,
            max_frames: max_frames.max(2),
            max_bytes: max_bytes.max(1024),
            stalled_since: None,
            progressed: false,
            closing: false,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes queued plus the frame being written.
    pub fn bytes(&self) -> usize {
        self.bytes + self.in_flight
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn fits(&self, cost: usize) -> bool {
        let empty = self.frames.is_empty() && self.in_flight == 0;
        empty || (self.frames.len() < self.max_frames && self.bytes() + cost <= self.max_bytes)
    }

    fn remove_at(&mut self, i: usize) {
        if let Some(f) = self.frames.remove(i) {
            self.bytes -= f.cost();
        }
    }

    pub fn push(&mut self, now: Instant, frame: Frame) -> Pushed {
        if self.closing {
            return Pushed::Dropped;
        }
        let busy = !self.frames.is_empty() || self.in_flight > 0;
        if !busy || std::mem::take(&mut self.progressed) {
            self.stalled_since = None;
        }
        let stalled = busy && {
            let since = *self.stalled_since.get_or_insert(now);
            now.saturating_duration_since(since) >= STUCK_LIMIT
        };
        match frame {
            Frame::Close(..) => {
                // A close always gets in; nothing after it is sent.
                self.closing = true;
                self.bytes += frame.cost();
                self.frames.push_back(frame);
                return Pushed::Queued;
            }
            Frame::Status(_) => {
                // Only the newest status is worth sending.
                while let Some(i) = self
                    .frames
                    .iter()
                    .position(|f| matches!(f, Frame::Status(_)))
                {
                    self.remove_at(i);
                }
            }
            Frame::Text(_) | Frame::Ping | Frame::Streamed(_) => {}
        }
        if stalled {
            return Pushed::Stuck;
        }
        let cost = frame.cost();
        if !self.fits(cost) {
            // Make room by dropping the oldest status update, if any.
            if let Some(i) = self
                .frames
                .iter()
                .position(|f| matches!(f, Frame::Status(_)))
            {
                self.remove_at(i);
            }
        }
        if !self.fits(cost) {
            return Pushed::Dropped;
        }
        self.bytes += cost;
        self.frames.push_back(frame);
        self.stalled_since.get_or_insert(now);
        Pushed::Queued
    }

    /// Takes the next frame; it counts as in flight until [`sent`](Self::sent).
    pub fn pop(&mut self) -> Option<Frame> {
        let f = self.frames.pop_front()?;
        self.progressed = true;
        self.bytes -= f.cost();
        self.in_flight = f.cost();
        Some(f)
    }

    /// The frame taken by the last `pop` has been written.
    pub fn sent(&mut self) {
        self.in_flight = 0;
    }

    /// The writer is making progress on a long frame (a streamed message's fragment went
    /// out): the client is not stuck.
    pub fn progress(&mut self) {
        self.progressed = true;
    }
}

/// When to send the next `status_update`: every `interval` (scheduled from the previous
/// deadline, never drifting) and [`STATUS_COALESCE`] after a change.
#[derive(Debug, Clone)]
pub struct StatusSchedule {
    interval: Duration,
    next_periodic: Instant,
    pending: Option<Instant>,
}

impl StatusSchedule {
    pub fn new(now: Instant, interval: Duration) -> Self {
        Self::anchored(now, now, interval)
    }

    /// Periodic updates on the grid `anchor + k × interval` (the clock's
    /// [`tick_anchor`](crate::clock::Clock::tick_anchor)), so they share wake-ups with the
    /// other periodic work of the same period (the camera's health checks).
    pub fn anchored(anchor: Instant, now: Instant, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        StatusSchedule {
            interval,
            next_periodic: crate::clock::next_tick(anchor, interval, now),
            pending: None,
        }
    }

    pub fn on_change(&mut self, now: Instant) {
        if self.pending.is_none() {
            self.pending = Some(now + STATUS_COALESCE);
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        match self.pending {
            Some(p) => p.min(self.next_periodic),
            None => self.next_periodic,
        }
    }

    /// True when a status_update is due at `now`; advances the schedule.
    pub fn fire(&mut self, now: Instant) -> bool {
        let mut due = false;
        if self.pending.is_some_and(|p| now >= p) {
            self.pending = None;
            due = true;
        }
        if now >= self.next_periodic {
            due = true;
            // Skip missed slots instead of bursting.
            while self.next_periodic <= now {
                self.next_periodic += self.interval;
            }
        }
        due
    }
}

/// One connected WebSocket client as the hub sees it.
pub struct ClientSlot {
    pub id: ClientId,
    pub addr: SocketAddr,
    pub connected_at: Instant,
    pub connected_wall: SystemTime,
    subs: AtomicU8,
    explicit_subs: AtomicBool,
    last_seen: Mutex<Instant>,
    queue: Mutex<OutQueue>,
    wake: async_channel::Sender<()>,
    kill: async_channel::Sender<Kill>,
    /// Signalled when a write leaves the queue at most half full (the runner waits on it).
    room: async_channel::Sender<()>,
}

/// Why the hub ends a client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Its queue stayed full past [`STUCK_LIMIT`]: drop it now.
    Stuck,
    /// Closed (1013) to admit a newer client: the close frame is queued; drop the connection
    /// if it is not gone within a short grace.
    Evicted,
}

/// The receiving ends a connection task waits on.
pub struct ClientSignals {
    /// Something was queued.
    pub wake: async_channel::Receiver<()>,
    /// The hub gave up on this client (stuck, or evicted for a newer one).
    pub kill: async_channel::Receiver<Kill>,
    /// The queue has room again (see [`ClientSlot::wait_for_room`]).
    pub room: async_channel::Receiver<()>,
}

use crate::sys::lock;

const ALL_CHANNELS: u8 = 0x7f;

impl ClientSlot {
    pub fn push(&self, now: Instant, frame: Frame) -> Pushed {
        let r = lock(&self.queue).push(now, frame);
        match r {
            Pushed::Queued => {
                let _ = self.wake.try_send(());
            }
            Pushed::Dropped => log::debug!("client {} is slow; dropped a frame", self.id.0),
            Pushed::Stuck => {
                log::warn!(
                    "client {} stuck for {}s; disconnecting",
                    self.id.0,
                    STUCK_LIMIT.as_secs()
                );
                let _ = self.kill.try_send(Kill::Stuck);
            }
        }
        r
    }

    pub fn pop(&self) -> Option<Frame> {
        lock(&self.queue).pop()
    }

    /// The writer finished sending the frame it popped.
    pub fn sent(&self) {
        let half = {
            let mut q = lock(&self.queue);
            q.sent();
            q.bytes() <= q.max_bytes() / 2
        };
        if half {
            let _ = self.room.try_send(());
        }
    }

    /// See [`OutQueue::progress`].
    pub fn progress(&self) {
        lock(&self.queue).progress();
    }

    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    pub fn queued_bytes(&self) -> usize {
        lock(&self.queue).bytes()
    }

    /// Waits until the queue is at most half full, so a client that does not read stops
    /// getting its commands run (their replies would only pile up).
    pub async fn wait_for_room(&self, room: &async_channel::Receiver<()>) {
        loop {
            {
                let q = lock(&self.queue);
                if q.bytes() <= q.max_bytes() / 2 {
                    return;
                }
            }
            if room.recv().await.is_err() {
                return;
            }
        }
    }

    pub fn touch(&self, now: Instant) {
        *lock(&self.last_seen) = now;
    }

    pub fn last_seen(&self) -> Instant {
        *lock(&self.last_seen)
    }

    pub fn subscribed(&self, ch: Channel) -> bool {
        self.subs.load(Ordering::Relaxed) & ch.bit() != 0
    }

    /// The first explicit `subscribe` replaces the default (everything); later ones add.
    pub fn subscribe(&self, channels: &[Channel]) {
        let bits = channels.iter().fold(0u8, |b, c| b | c.bit());
        if self.explicit_subs.swap(true, Ordering::Relaxed) {
            self.subs.fetch_or(bits, Ordering::Relaxed);
        } else {
            self.subs.store(bits, Ordering::Relaxed);
        }
    }

    pub fn unsubscribe(&self, channels: &[Channel]) {
        let bits = channels.iter().fold(0u8, |b, c| b | c.bit());
        self.explicit_subs.store(true, Ordering::Relaxed);
        self.subs.fetch_and(!bits, Ordering::Relaxed);
    }

    pub fn subscriptions(&self) -> Vec<&'static str> {
        Channel::ALL
            .into_iter()
            .filter(|c| self.subscribed(*c))
            .map(Channel::as_str)
            .collect()
    }
}

/// The close reason a client evicted for a newer one gets (with code 1013, "try again later").
pub const EVICTED_REASON: &str = "Server at capacity: closed the least active client";

/// The client to close so a newcomer fits: from the address holding the most clients (one
/// device's many connections go before the owner's one), the one silent the longest, then the
/// oldest. Items: (id, address, last heard from, connected at).
pub fn eviction_victim(
    clients: impl Iterator<Item = (ClientId, PeerKey, Instant, Instant)>,
) -> Option<ClientId> {
    let all: Vec<_> = clients.collect();
    let mut per_addr: std::collections::HashMap<PeerKey, usize> = Default::default();
    for (_, addr, _, _) in &all {
        *per_addr.entry(*addr).or_insert(0) += 1;
    }
    all.iter()
        .min_by_key(|(id, addr, seen, since)| {
            (std::cmp::Reverse(per_addr[addr]), *seen, *since, *id)
        })
        .map(|(id, ..)| *id)
}

/// Why a client could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    AtCapacity,
    ShuttingDown,
}

pub struct Hub {
    app: Arc<App>,
    limits: Limits,
    clients: Mutex<BTreeMap<ClientId, Arc<ClientSlot>>>,
    next_id: AtomicU64,
    closing: AtomicBool,
    schedule: Mutex<StatusSchedule>,
    /// Signalled whenever a client leaves (shutdown waits on it).
    left_tx: async_channel::Sender<()>,
    left_rx: async_channel::Receiver<()>,
    /// The server's rate-limited log of refusals and evictions.
    refusals: Arc<Refusals>,
}

impl Hub {
    /// The status period runs on the app clock's tick grid.
    pub fn new(app: Arc<App>) -> Arc<Hub> {
        let limits = app.config.limits.clone();
        let now = app.clock.now();
        let anchor = app.clock.tick_anchor();
        let (left_tx, left_rx) = async_channel::bounded(1);
        Arc::new(Hub {
            schedule: Mutex::new(StatusSchedule::anchored(
                anchor,
                now,
                limits.status_interval,
            )),
            app,
            limits,
            clients: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            left_tx,
            left_rx,
            refusals: Refusals::new(super::LOG_SUMMARY_EVERY),
        })
    }

    pub fn refusals(&self) -> &Arc<Refusals> {
        &self.refusals
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn client_count(&self) -> usize {
        lock(&self.clients).len()
    }

    pub fn client(&self, id: ClientId) -> Option<Arc<ClientSlot>> {
        lock(&self.clients).get(&id).cloned()
    }

    /// Adds a client (with `first` already queued, so nothing can overtake the welcome).
    pub fn register(
        &self,
        addr: SocketAddr,
        first: impl FnOnce(ClientId) -> Frame,
    ) -> Result<(Arc<ClientSlot>, ClientSignals), RegisterError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(RegisterError::ShuttingDown);
        }
        let now = self.app.clock.now();
        let mut clients = lock(&self.clients);
        if clients.len() >= self.limits.max_clients {
            // Never refuse the newcomer: close the least active client of the busiest address.
            let victim = eviction_victim(clients.values().map(|c| {
                (
                    c.id,
                    PeerKey::of(c.addr.ip()),
                    c.last_seen(),
                    c.connected_at,
                )
            }));
            let Some(victim) = victim.and_then(|id| clients.remove(&id)) else {
                return Err(RegisterError::AtCapacity);
            };
            victim.push(now, Frame::Close(1013, EVICTED_REASON));
            let _ = victim.kill.try_send(Kill::Evicted);
            if self.refusals.note(Refusal::WsEvicted, now) {
                log::warn!(
                    "{} WebSocket clients: closed client {} from {} (silent {:.0}s) to admit {addr}",
                    self.limits.max_clients,
                    victim.id.0,
                    victim.addr,
                    now.saturating_duration_since(victim.last_seen())
                        .as_secs_f64()
                );
            }
        }
        let id = ClientId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let (kill_tx, kill_rx) = async_channel::bounded(1);
        let (room_tx, room_rx) = async_channel::bounded(1);
        let slot = Arc::new(ClientSlot {
            id,
            addr,
            connected_at: now,
            connected_wall: self.app.clock.wall(),
            subs: AtomicU8::new(ALL_CHANNELS),
            explicit_subs: AtomicBool::new(false),
            last_seen: Mutex::new(now),
            queue: Mutex::new(OutQueue::new(
                self.limits.outbound_queue,
                self.limits.outbound_queue_bytes,
            )),
            wake: wake_tx,
            kill: kill_tx,
            room: room_tx,
        });
        slot.push(now, first(id));
        clients.insert(id, slot.clone());
        Ok((
            slot,
            ClientSignals {
                wake: wake_rx,
                kill: kill_rx,
                room: room_rx,
            },
        ))
    }

    pub fn unregister(&self, id: ClientId) {
        if lock(&self.clients).remove(&id).is_some() {
            let _ = self.left_tx.try_send(());
        }
    }

    fn slots(&self) -> Vec<Arc<ClientSlot>> {
        lock(&self.clients).values().cloned().collect()
    }

    /// Sends `frame` to every client subscribed to `channel`. Never waits.
    pub fn broadcast(&self, channel: Channel, frame: Frame) {
        let now = self.app.clock.now();
        for slot in self.slots() {
            if slot.subscribed(channel) {
                slot.push(now, frame.clone());
            }
        }
    }

    pub fn send_to(&self, id: ClientId, frame: Frame) -> bool {
        match self.client(id) {
            Some(slot) => slot.push(self.app.clock.now(), frame) == Pushed::Queued,
            None => false,
        }
    }

    /// The status blocks, serialized once, under `data` and at top level.
    pub fn status_frame(&self, kind: &str, extra: Map<String, Value>) -> Value {
        crate::protocol::status_frame(
            kind,
            extra,
            &self.app.status.snapshot(),
            self.app.clock.wall(),
        )
    }

    pub fn broadcast_status(&self) {
        if self.client_count() == 0 {
            return;
        }
        let frame = self.status_frame("status_update", Map::new());
        let text = frame.to_string();
        self.broadcast(Channel::Status, Frame::Status(text.into()));
    }

    fn dispatch(&self, msg: Outbound) {
        match msg {
            Outbound::Event(ev) => self.broadcast_event(&ev),
            Outbound::StatusChanged => {
                lock(&self.schedule).on_change(self.app.clock.now());
            }
            Outbound::EventTo(id, ev) => {
                for frame in ev.to_frames(self.app.clock.wall()) {
                    self.send_value(id, &frame);
                }
            }
            Outbound::EventExcept(id, ev) => {
                let now = self.app.clock.now();
                for frame in ev.to_frames(self.app.clock.wall()) {
                    let frame = Frame::Text(frame.to_string().into());
                    for slot in self.slots() {
                        if slot.id != id && slot.subscribed(ev.channel()) {
                            slot.push(now, frame.clone());
                        }
                    }
                }
            }
            Outbound::TimeSyncRequest(id, req) => {
                let frame = time_sync_request_frame(&req, self.app.clock.wall());
                self.send_value(id, &frame);
            }
            Outbound::ToClient(id, value) => self.send_value(id, &value),
        }
    }

    fn send_value(&self, id: ClientId, frame: &Value) {
        if !self.send_to(id, Frame::Text(frame.to_string().into())) {
            log::debug!("frame for client {} not delivered", id.0);
        }
    }

    /// One frame per wire name of the event, to the subscribers of its channel.
    pub fn broadcast_event(&self, ev: &Event) {
        for frame in ev.to_frames(self.app.clock.wall()) {
            self.broadcast(ev.channel(), Frame::Text(frame.to_string().into()));
        }
    }

    /// The hub's task: fan out what services publish and send status updates on schedule.
    pub async fn run(self: Arc<Self>, outbound: async_channel::Receiver<Outbound>) {
        let clock = self.app.clock.clone();
        let mut open = true;
        loop {
            let deadline = lock(&self.schedule).poll_timeout();
            let timer = clock.sleep_until(deadline);
            let msg = futures_lite::future::or(
                async {
                    if open {
                        Some(outbound.recv().await)
                    } else {
                        futures_lite::future::pending().await
                    }
                },
                async {
                    timer.await;
                    None
                },
            )
            .await;
            match msg {
                Some(Ok(m)) => {
                    self.dispatch(m);
                    // Let the writers drain between messages of a burst, so queues see a
                    // steady trickle rather than the whole burst at once.
                    futures_lite::future::yield_now().await;
                }
                Some(Err(_)) => open = false,
                None => {}
            }
            let due = lock(&self.schedule).fire(clock.now());
            if due {
                self.broadcast_status();
            }
        }
    }

    /// Starts closing every client with `code` (1001 at shutdown) and refuses new ones.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        self.closing.store(true, Ordering::Relaxed);
        let now = self.app.clock.now();
        for slot in self.slots() {
            slot.push(now, Frame::Close(code, reason));
        }
    }

    /// Waits until every client has left, or `timeout` (real time) passed.
    pub async fn wait_empty(&self, timeout: Duration) {
        // Real time on purpose: a bound on shutdown, which a stopped ManualClock must not hold.
        let mut deadline = async_io::Timer::after(timeout);
        while self.client_count() > 0 {
            let left = self.left_rx.recv();
            let timed_out = futures_lite::future::or(
                async {
                    let _ = left.await;
                    false
                },
                async {
                    (&mut deadline).await;
                    true
                },
            )
            .await;
            if timed_out {
                break;
            }
        }
    }

    /// `GET /api/ws/connections`: who is connected, since when, last heard from.
    pub fn connections(&self) -> WsConnections {
        let now = self.app.clock.now();
        let wall = self.app.clock.wall();
        let clients: Vec<WsClient> = self
            .slots()
            .iter()
            .map(|s| {
                let last = s.last_seen();
                let ago = now.saturating_duration_since(last);
                WsClient {
                    id: s.id.0,
                    address: s.addr.to_string(),
                    connected_at: iso8601(s.connected_wall),
                    uptime: now.saturating_duration_since(s.connected_at).as_secs_f64(),
                    last_heartbeat: iso8601(wall.checked_sub(ago).unwrap_or(wall)),
                    last_heartbeat_ago: ago.as_secs_f64(),
                    subscriptions: s.subscriptions().iter().map(|c| c.to_string()).collect(),
                    queued: s.queued(),
                }
            })
            .collect();
        WsConnections {
            count: clients.len(),
            max_clients: self.limits.max_clients,
            clients,
        }
    }
}

/// `time-sync-request`: the payload in `data` (seed 000) and `requestId` at top level too
/// (what the original sends and its clients read).
pub fn time_sync_request_frame(req: &TimeSyncRequest, now: SystemTime) -> Value {
    let data = serde_json::to_value(req).unwrap_or(Value::Null);
    let mut frame = Map::new();
    frame.insert("type".into(), Value::from("time-sync-request"));
    frame.insert("requestId".into(), Value::from(req.request_id.clone()));
    frame.insert("serverTime".into(), Value::from(req.server_time));
    frame.insert("data".into(), data);
    frame.insert("timestamp".into(), Value::from(iso8601(now)));
    Value::Object(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Frame {
        Frame::Text(s.into())
    }

    #[test]
    fn newer_status_replaces_queued_status() {
        let t0 = crate::clock::test_t0();
        let mut q = OutQueue::new(4, 1 << 20);
        q.push(t0, Frame::Status("s1".into()));
        q.push(t0, text("e1"));
        q.push(t0, Frame::Status("s2".into()));
        assert_eq!(q.len(), 2);
        assert!(matches!(q.pop(), Some(Frame::Text(t)) if t.as_str() == "e1"));
        assert!(matches!(q.pop(), Some(Frame::Status(t)) if t.as_str() == "s2"));
    }

    #[test]
    fn full_queue_drops_status_first_then_marks_stuck() {
        let t0 = crate::clock::test_t0();
        let mut q = OutQueue::new(3, 1 << 20);
        q.push(t0, Frame::Status("s".into()));
        q.push(t0, text("a"));
        q.push(t0, text("b"));
        // Full: the status makes room for an event.
        assert_eq!(q.push(t0, text("c")), Pushed::Queued);
        assert_eq!(q.push(t0, text("d")), Pushed::Dropped);
        assert_eq!(q.push(t0 + STUCK_LIMIT / 2, text("e")), Pushed::Dropped);
        assert_eq!(q.push(t0 + STUCK_LIMIT, text("f")), Pushed::Stuck);
        // Draining clears the stuck mark.
        q.pop();
        assert_eq!(q.push(t0 + STUCK_LIMIT * 3, text("g")), Pushed::Queued);
        assert_eq!(q.push(t0 + STUCK_LIMIT * 3, text("h")), Pushed::Dropped);
    }

    #[test]
    fn a_writer_that_takes_nothing_is_stuck_even_while_frames_fit() {
        let t0 = crate::clock::test_t0();
        let mut q = OutQueue::new(100, 1 << 20);
        assert_eq!(q.push(t0, text("a")), Pushed::Queued);
        assert_eq!(q.push(t0 + STUCK_LIMIT / 2, text("b")), Pushed::Queued);
        assert_eq!(q.push(t0 + STUCK_LIMIT, text("c")), Pushed::Stuck);
        // Progress restarts the count from the next push.
        q.pop();
        assert_eq!(q.push(t0 + STUCK_LIMIT * 2, text("d")), Pushed::Queued);
        assert_eq!(
            q.push(t0 + STUCK_LIMIT * 3 - Duration::from_millis(1), text("e")),
            Pushed::Queued
        );
        assert_eq!(q.push(t0 + STUCK_LIMIT * 3, text("f")), Pushed::Stuck);
        // An idle queue (everything sent) is never stuck.
        while q.pop().is_some() {}
        q.sent();
        assert_eq!(q.push(t0 + STUCK_LIMIT * 9, text("g")), Pushed::Queued);
    }

    #[test]
    fn close_always_fits_and_ends_the_queue() {
        let t0 = crate::clock::test_t0();
        let mut q = OutQueue::new(2, 1 << 20);
        q.push(t0, text("a"));
        q.push(t0, text("b"));
        assert_eq!(q.push(t0, Frame::Close(1001, "bye")), Pushed::Queued);
        assert_eq!(q.push(t0, text("c")), Pushed::Dropped);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn queue_is_bounded_in_bytes_counting_the_frame_in_flight() {
        // Regression (issue 9, item 4): queues were bounded in frames, so clients that never
        // read, each asking for a 2.7 MB report, pushed RSS to ~200 MB.
        let t0 = crate::clock::test_t0();
        let big = |n: usize| Frame::Text("x".repeat(n).into());
        let mut q = OutQueue::new(1000, 10_000);
        // One frame larger than the whole budget gets in when nothing else is there...
        assert_eq!(q.push(t0, big(50_000)), Pushed::Queued);
        // ...and nothing else fits next to it, not even while the writer holds it.
        assert_eq!(q.push(t0, big(100)), Pushed::Dropped);
        assert!(q.pop().is_some());
        assert_eq!(q.bytes(), 50_016);
        assert_eq!(q.push(t0, big(100)), Pushed::Dropped);
        q.sent();
        assert_eq!(q.bytes(), 0);
        // Small frames fill up to the byte budget.
        let mut n = 0;
        while q.push(t0, big(984)) == Pushed::Queued {
            n += 1;
        }
        assert_eq!(n, 10, "10 × 1000 bytes fit in 10,000");
        assert_eq!(q.bytes(), 10_000);
    }

    #[test]
    fn eviction_takes_the_busiest_address_then_the_longest_silent() {
        let t0 = crate::clock::test_t0();
        let s = Duration::from_secs;
        let owner = PeerKey::of("192.168.4.2".parse().unwrap());
        let hog = PeerKey::of("192.168.4.66".parse().unwrap());
        let c = |id, addr, seen: u64, since: u64| (ClientId(id), addr, t0 + s(seen), t0 + s(since));
        // The owner has been silent longest, but the hog holds more clients.
        let v = eviction_victim(
            [
                c(1, owner, 0, 0),
                c(2, hog, 5, 1),
                c(3, hog, 3, 2),
                c(4, hog, 9, 3),
            ]
            .into_iter(),
        );
        assert_eq!(v, Some(ClientId(3)));
        // One client per address: the one silent longest, ties to the oldest.
        let v = eviction_victim([c(5, owner, 7, 1), c(6, hog, 7, 0)].into_iter());
        assert_eq!(v, Some(ClientId(6)));
        assert_eq!(eviction_victim(std::iter::empty()), None);
    }

    #[test]
    fn status_schedule_period_and_coalescing() {
        let t0 = crate::clock::test_t0();
        let s10 = Duration::from_secs(10);
        let mut s = StatusSchedule::new(t0, s10);
        assert_eq!(s.poll_timeout(), t0 + s10);
        assert!(!s.fire(t0 + Duration::from_secs(1)));
        // Three changes in a burst: one update, STATUS_COALESCE after the first.
        s.on_change(t0 + Duration::from_secs(2));
        s.on_change(t0 + Duration::from_millis(2050));
        assert_eq!(
            s.poll_timeout(),
            t0 + Duration::from_secs(2) + STATUS_COALESCE
        );
        assert!(s.fire(t0 + Duration::from_secs(2) + STATUS_COALESCE));
        assert_eq!(s.poll_timeout(), t0 + s10);
        assert!(s.fire(t0 + s10));
        // A late wake-up skips missed slots and keeps the grid.
        assert!(s.fire(t0 + Duration::from_secs(35)));
        assert_eq!(s.poll_timeout(), t0 + Duration::from_secs(40));
    }
}
