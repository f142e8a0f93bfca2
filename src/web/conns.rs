//! The HTTP connection table and its admission policy: a new connection is never refused; when
//! the table is full (or its peer holds its share), the connection idle the longest makes room.
//!
//! ```text
//!  accept ──▶ admit(peer, now) ──peer at per_peer?──yes──▶ evict that peer's idlest ──┐
//!                 │                   no                                               │
//!                 ├──table at max?──yes──▶ evict the idlest of all ───────────────────┤
//!                 └──────────────────────no──────────────────────────────────────────▶ admitted
//!
//!  phases of one connection (set by http::connection, read here):
//!    Fresh ──first byte──▶ Head ──complete──▶ Busy (body, handler, response) ──▶ Idle ──▶ Head …
//!                                               └── Upgrade: websocket ──▶ leaves the table
//!  victim order: Fresh, Head and Idle (silent, trickling, parked keep-alives) before Busy;
//!                within a rank, the oldest last activity; then the oldest connection.
//! ```
//!
//! Sans-IO: `now` is passed in; the table holds an opaque handle per connection (the task, in
//! the server) that the caller drops to end an evicted connection. Upgraded WebSockets leave
//! the table: the hub has its own capacity and eviction (`hub::Hub::register`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a connection is doing, as far as eviction cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Accepted, nothing received yet.
    Fresh = 0,
    /// Part of a request head received.
    Head = 1,
    /// Keep-alive: waiting for the next request.
    Idle = 2,
    /// Reading a body, running the handler or writing the response.
    Busy = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Idle,
            _ => Phase::Busy,
        }
    }

    /// Lower is evicted first.
    fn rank(self) -> u8 {
        match self {
            Phase::Fresh | Phase::Head | Phase::Idle => 0,
            Phase::Busy => 1,
        }
    }
}

/// The peer a connection counts against: its IPv4 address, or the /64 of an IPv6 one (one
/// device easily holds many addresses of its prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerKey(u128);

impl PeerKey {
    pub fn of(ip: IpAddr) -> PeerKey {
        match ip {
            IpAddr::V4(v4) => PeerKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => PeerKey(u32::from(v4) as u128),
                None => PeerKey((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
            },
        }
    }
}

/// The part of a connection's state the connection task updates without the table's lock.
#[derive(Debug)]
pub struct ConnState {
    base: Instant,
    phase: AtomicU8,
    /// Nanoseconds after `base` of the last activity (bytes in or out).
    last: AtomicU64,
}

impl ConnState {
    fn new(base: Instant, now: Instant) -> ConnState {
        let s = ConnState {
            base,
            phase: AtomicU8::new(Phase::Fresh as u8),
            last: AtomicU64::new(0),
        };
        s.touch(now);
        s
    }

    /// Enters `phase` at `now` (counts as activity).
    pub fn mark(&self, phase: Phase, now: Instant) {
        self.phase.store(phase as u8, Ordering::Relaxed);
        self.touch(now);
    }

    /// Records activity at `now`.
    pub fn touch(&self, now: Instant) {
        let ns = now.saturating_duration_since(self.base).as_nanos();
        self.last
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn last_active(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

struct Entry<H> {
    peer: PeerKey,
    state: Arc<ConnState>,
    handle: Option<H>,
}

/// Why a connection was evicted (for the log summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// Its peer holds `per_peer` connections and opened another.
    PeerCap,
    /// The table was full.
    Full,
}

/// A connection the caller must end (drop its handle, outside any lock).
pub struct Evicted<H> {
    pub id: u64,
    pub phase: Phase,
    pub idle: Duration,
    pub reason: EvictReason,
    pub handle: Option<H>,
}

/// The outcome of [`ConnTable::admit`].
pub struct Admission<H> {
    pub id: u64,
    pub state: Arc<ConnState>,
    pub evicted: Option<Evicted<H>>,
}

/// Every open HTTP connection (not yet upgraded).
pub struct ConnTable<H> {
    base: Instant,
    max: usize,
    per_peer: usize,
    entries: HashMap<u64, Entry<H>>,
    per_peer_count: HashMap<PeerKey, usize>,
    next_id: u64,
}

impl<H> ConnTable<H> {
    pub fn new(max: usize, per_peer: usize, now: Instant) -> ConnTable<H> {
        ConnTable {
            base: now,
            max: max.max(1),
            per_peer: per_peer.clamp(1, max.max(1)),
            entries: HashMap::new(),
            per_peer_count: HashMap::new(),
            next_id: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn per_peer(&self) -> usize {
        self.per_peer
    }

    /// Connections held by `peer`.
    pub fn count(&self, peer: PeerKey) -> usize {
        self.per_peer_count.get(&peer).copied().unwrap_or(0)
    }

    /// Admits a connection from `peer`, evicting one first if the peer is at its cap or the
    /// table is full. Never refuses.
    pub fn admit(&mut self, peer: PeerKey, now: Instant) -> Admission<H> {
        let evicted = if self.count(peer) >= self.per_peer {
            self.victim(Some(peer), now)
                .map(|id| self.evict(id, now, EvictReason::PeerCap))
        } else if self.entries.len() >= self.max {
            self.victim(None, now)
                .map(|id| self.evict(id, now, EvictReason::Full))
        } else {
            None
        };
        let id = self.next_id;
        self.next_id += 1;
        let state = Arc::new(ConnState::new(self.base, now));
        self.entries.insert(
            id,
            Entry {
                peer,
                state: state.clone(),
                handle: None,
            },
        );
        *self.per_peer_count.entry(peer).or_insert(0) += 1;
        Admission { id, state, evicted }
    }

    /// Stores the connection's handle. Gives it back if the connection is already gone.
    pub fn attach(&mut self, id: u64, handle: H) -> Option<H> {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.handle = Some(handle);
                None
            }
            None => Some(handle),
        }
    }

    /// The connection ended (or upgraded): forget it; its handle, if any, is returned.
    pub fn remove(&mut self, id: u64) -> Option<H> {
        let e = self.entries.remove(&id)?;
        if let Some(n) = self.per_peer_count.get_mut(&e.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer_count.remove(&e.peer);
            }
        }
        e.handle
    }

    /// Evicts the idlest connection of all (file descriptors ran out).
    pub fn evict_idlest(&mut self, now: Instant) -> Option<Evicted<H>> {
        let id = self.victim(None, now)?;
        Some(self.evict(id, now, EvictReason::Full))
    }

    fn evict(&mut self, id: u64, now: Instant, reason: EvictReason) -> Evicted<H> {
        let state = self.entries[&id].state.clone();
        let handle = self.remove(id);
        Evicted {
            id,
            phase: state.phase(),
            idle: now.saturating_duration_since(state.last_active()),
            reason,
            handle,
        }
    }

    /// The connection to evict: among `peer`'s (or everyone's), the lowest phase rank, then
    /// the oldest last activity, then the oldest id.
    fn victim(&self, peer: Option<PeerKey>, _now: Instant) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| peer.is_none_or(|p| e.peer == p))
            .min_by_key(|(id, e)| (e.state.phase().rank(), e.state.last_active(), **id))
            .map(|(id, _)| *id)
    }
}

/// Counts refusals and evictions so the log gets one line per interval, not one per event
/// (a reconnect loop must not fill the SD card).
///
/// ```text
///  note(kind) ──first in window──▶ log it in full, open a window of `interval`
///      │ the next burst-1 in the window: logged in full; more: counted
///      ▼
///  window over (poll_timeout, then flush) ──▶ one summary line ──▶ quiet until the next note
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    burst: u32,
    window_end: Option<Instant>,
    logged: u32,
    suppressed: u64,
    what: &'static str,
}

impl LogLimiter {
    /// Logs up to `burst` events in full per `interval`, then counts.
    pub fn new(what: &'static str, interval: Duration, burst: u32) -> LogLimiter {
        LogLimiter {
            interval,
            burst: burst.max(1),
            window_end: None,
            logged: 0,
            suppressed: 0,
            what,
        }
    }

    /// One more event at `now`; true when this one should be logged in full.
    pub fn note(&mut self, now: Instant) -> bool {
        match self.window_end {
            Some(end) if now < end => {
                if self.logged < self.burst {
                    self.logged += 1;
                    true
                } else {
                    self.suppressed += 1;
                    false
                }
            }
            _ => {
                self.window_end = Some(now + self.interval);
                self.logged = 1;
                true
            }
        }
    }

    /// When [`flush`](Self::flush) has something to say.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.suppressed > 0 {
            self.window_end
        } else {
            None
        }
    }

    /// The summary of a finished window, if anything was held back.
    pub fn flush(&mut self, now: Instant) -> Option<String> {
        let end = self.window_end?;
        if now < end {
            return None;
        }
        self.window_end = None;
        if self.suppressed == 0 {
            return None;
        }
        let n = std::mem::take(&mut self.suppressed);
        Some(format!(
            "{n} more {} in the last {}s",
            self.what,
            self.interval.as_secs()
        ))
    }
}

/// What [`Refusals`] counts, each with its own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An HTTP connection closed to admit a newer one.
    HttpEvicted,
    /// `accept` failed (e.g. out of file descriptors).
    AcceptFailed,
    /// A request whose Host is not this device (421) or is malformed (400), or a WebSocket
    /// from a foreign Origin (403).
    ForeignHost,
    /// A WebSocket client closed to admit a newer one.
    WsEvicted,
    /// WebSocket clients connecting and leaving (info lines a reconnect loop would flood).
    WsChurn,
}

impl Refusal {
    const ALL: [Refusal; 5] = [
        Refusal::HttpEvicted,
        Refusal::AcceptFailed,
        Refusal::ForeignHost,
        Refusal::WsEvicted,
        Refusal::WsChurn,
    ];

    /// Lines logged in full per window before counting starts.
    fn burst(self) -> u32 {
        match self {
            // A page load or two are worth seeing; a reconnect loop is not.
            Refusal::WsChurn => 8,
            Refusal::HttpEvicted | Refusal::WsEvicted => 2,
            Refusal::AcceptFailed | Refusal::ForeignHost => 1,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Refusal::HttpEvicted => "HTTP connection(s) closed to admit newer ones",
            Refusal::AcceptFailed => "failed accept(s)",
            Refusal::ForeignHost => "request(s) refused for their Host or Origin",
            Refusal::WsEvicted => "WebSocket client(s) closed to admit newer ones",
            Refusal::WsChurn => "WebSocket connect/leave line(s) not shown",
        }
    }
}

/// The server's rate-limited log of refusals: [`note`](Self::note) says whether to log this
/// one in full; [`run`](Self::run) writes the summaries when their windows end.
pub struct Refusals {
    limiters: std::sync::Mutex<Vec<LogLimiter>>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl Refusals {
    pub fn new(interval: Duration) -> Arc<Refusals> {
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        Arc::new(Refusals {
            limiters: std::sync::Mutex::new(
                Refusal::ALL
                    .iter()
                    .map(|r| LogLimiter::new(r.what(), interval, r.burst()))
                    .collect(),
            ),
            wake_tx,
            wake_rx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LogLimiter>> {
        self.limiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more `kind` at `now`: true when the caller should log it in full.
    pub fn note(&self, kind: Refusal, now: Instant) -> bool {
        let i = Refusal::ALL.iter().position(|r| *r == kind).unwrap_or(0);
        let (full, first_held) = {
            let mut l = self.lock();
            let held_before = l[i].poll_timeout().is_some();
            let full = l[i].note(now);
            (full, !full && !held_before)
        };
        if first_held {
            // The logger task may be asleep without a deadline: give it this one.
            let _ = self.wake_tx.try_send(());
        }
        full
    }

    /// Writes each window's summary when it ends (a task on the server's executor).
    pub async fn run(self: Arc<Self>, clock: crate::clock::SharedClock) {
        loop {
            let next = self.lock().iter().filter_map(|l| l.poll_timeout()).min();
            match next {
                Some(at) => {
                    futures_lite::future::or(clock.sleep_until(at), async {
                        let _ = self.wake_rx.recv().await;
                    })
                    .await
                }
                None => {
                    if self.wake_rx.recv().await.is_err() {
                        return;
                    }
                }
            }
            let now = clock.now();
            let lines: Vec<String> = self
                .lock()
                .iter_mut()
                .filter_map(|l| l.flush(now))
                .collect();
            for line in lines {
                log::warn!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> PeerKey {
        PeerKey::of(s.parse().unwrap())
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn full_table_evicts_the_idlest_and_admits_the_newest() {
        let t0 = crate::clock::test_t0();
        let mut t: ConnTable<u64> = ConnTable::new(3, 3, t0);
        let a = t.admit(ip("10.0.0.2"), t0);
        let b = t.admit(ip("10.0.0.3"), t0 + ms(1));
        let c = t.admit(ip("10.0.0.4"), t0 + ms(2));
        assert!(a.evicted.is_none() && b.evicted.is_none() && c.evicted.is_none());
        t.attach(a.id, 100);
        // a trickles a byte later than b's last activity: b is now the idlest.
        a.state.mark(Phase::Head, t0 + ms(10));
        let d = t.admit(ip("10.0.0.5"), t0 + ms(20));
        let ev = d.evicted.expect("one evicted");
        assert_eq!(
            (ev.id, ev.reason, ev.phase),
            (b.id, EvictReason::Full, Phase::Fresh)
        );
        assert_eq!(ev.idle, ms(19));
        assert_eq!(t.len(), 3);
        // The handle comes back with the eviction so the caller can end the task.
        c.state.mark(Phase::Busy, t0 + ms(21));
        d.state.mark(Phase::Busy, t0 + ms(22));
        let e = t.admit(ip("10.0.0.6"), t0 + ms(30));
        let ev = e.evicted.unwrap();
        assert_eq!((ev.id, ev.handle), (a.id, Some(100)));
    }

    #[test]
    fn silent_and_parked_connections_go_before_busy_ones() {
        let t0 = crate::clock::test_t0();
        let mut t: ConnTable<()> = ConnTable::new(2, 2, t0);
        let busy = t.admit(ip("10.0.0.2"), t0);
        busy.state.mark(Phase::Busy, t0);
        let idle = t.admit(ip("10.0.0.3"), t0 + ms(1));
        idle.state.mark(Phase::Idle, t0 + ms(50));
        // busy has been quiet longer, but a keep-alive parked for the next request goes first.
        let n = t.admit(ip("10.0.0.4"), t0 + ms(60));
        assert_eq!(n.evicted.unwrap().id, idle.id);
        // With only busy connections left, the idlest busy one goes.
        n.state.mark(Phase::Busy, t0 + ms(61));
        let m = t.admit(ip("10.0.0.5"), t0 + ms(70));
        assert_eq!(m.evicted.unwrap().id, busy.id);
    }

    #[test]
    fn a_peer_at_its_cap_evicts_its_own_connections_only() {
        let t0 = crate::clock::test_t0();
        let mut t: ConnTable<()> = ConnTable::new(10, 2, t0);
        let owner = t.admit(ip("192.168.4.2"), t0);
        let x1 = t.admit(ip("192.168.4.66"), t0 + ms(1));
        let x2 = t.admit(ip("192.168.4.66"), t0 + ms(2));
        assert!(x2.evicted.is_none());
        let x3 = t.admit(ip("192.168.4.66"), t0 + ms(3));
        let ev = x3.evicted.unwrap();
        assert_eq!((ev.id, ev.reason), (x1.id, EvictReason::PeerCap));
        assert_eq!(t.count(ip("192.168.4.66")), 2);
        assert!(t.entries.contains_key(&owner.id), "the owner is untouched");
        t.remove(owner.id);
        assert_eq!(t.count(ip("192.168.4.2")), 0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn ipv6_peers_count_by_prefix_and_mapped_v4_as_v4() {
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff:1"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:0:1::1"));
        assert_eq!(ip("::ffff:10.0.0.2"), ip("10.0.0.2"));
    }

    #[test]
    fn attach_after_remove_gives_the_handle_back() {
        let t0 = crate::clock::test_t0();
        let mut t: ConnTable<u8> = ConnTable::new(2, 2, t0);
        let a = t.admit(ip("10.0.0.2"), t0);
        assert_eq!(t.remove(a.id), None);
        assert_eq!(t.attach(a.id, 7), Some(7));
    }

    #[test]
    fn log_limiter_logs_the_first_then_one_summary_per_window() {
        let t0 = crate::clock::test_t0();
        let s10 = Duration::from_secs(10);
        let mut l = LogLimiter::new("connections evicted", s10, 2);
        assert!(l.note(t0));
        assert!(l.note(t0), "the burst");
        assert_eq!(l.poll_timeout(), None, "nothing held back yet");
        for i in 1..=500 {
            assert!(!l.note(t0 + ms(i)));
        }
        assert_eq!(l.poll_timeout(), Some(t0 + s10));
        assert_eq!(l.flush(t0 + ms(9_999)), None);
        assert_eq!(
            l.flush(t0 + s10).as_deref(),
            Some("500 more connections evicted in the last 10s")
        );
        assert_eq!(l.poll_timeout(), None);
        // Quiet, then a new event is logged in full again.
        assert!(l.note(t0 + s10 * 3));
        assert_eq!(l.flush(t0 + s10 * 4), None);
    }
}
