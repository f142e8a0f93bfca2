//! Discovery's effects for [`crate::driver::run`]: UDP sockets, description fetches, the
//! camera link's target, `last-camera.json` and the status block.
//!
//! ```text
//!   search socket ─┐ reader tasks: datagram → ssdp::parse → Input::Ssdp ─┐
//!   NOTIFY socket ─┘                                                      ├─▶ inbox ─▶ machine
//!   service: scan, link notices, set_primary (acked after settling) ──────┤
//!   fetch task: GET description (timeout on the clock) → DescriptionFetched┘
//!   actions ─▶ M-SEARCH (non-blocking send, inline) · fetch task · prober · event
//! ```
//!
//! The status block goes out before the first action of a turn, so events reach the hub
//! after the block that shows them, and a command's answer after both.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_io::Async;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use serde_json::json;

use super::description::{self, MAX_DESCRIPTION};
use super::registry::{Action, Discovery, Footprint, Input, Settings, MANUAL_PREFIX};
use super::ssdp::{self, HttpUrl, MAX_PACKET, MULTICAST_V4, SEARCH_TARGET};
use super::CameraProber;
use crate::app::{Publisher, StatusBoard};
use crate::backoff::Rng;
use crate::clock::SharedClock;
use crate::driver::{Executor, Flow, Inbox};
use crate::machine::{Machine, Now};
use crate::protocol::ApiError;
use crate::util::{atomic_write, iso8601};

/// Where discovery sends and listens. Tests point it at loopback sockets.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// M-SEARCH destinations. A multicast address is sent once per non-loopback IPv4
    /// interface; a unicast address (tests, the simulator's unicast mode) once.
    pub search_targets: Vec<SocketAddr>,
    /// Local address of the search socket (replies come back to it).
    pub search_bind: SocketAddr,
    /// Where to listen for NOTIFY (`0.0.0.0:1900`, SO_REUSEADDR); `None` turns it off.
    pub notify_listen: Option<SocketAddr>,
    /// Join 239.255.255.250 on the NOTIFY socket (on every interface, at each search).
    pub join_multicast: bool,
    /// Interfaces to search on; `None`: every non-loopback IPv4 interface, found per search.
    pub interfaces: Option<Vec<Ipv4Addr>>,
    pub mx: u8,
    pub search_target: String,
    /// Whole-request timeout of a description fetch.
    pub fetch_timeout: Duration,
    /// Timeout of one manual-connection probe (on top of the prober's own).
    pub probe_timeout: Duration,
    /// Where `last-camera.json` lives; `None`: nothing is remembered.
    pub data_dir: Option<PathBuf>,
    pub settings: Settings,
    /// Seed for search jitter (`None`: from entropy).
    pub seed: Option<u64>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            search_targets: vec![SocketAddr::V4(MULTICAST_V4)],
            search_bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            notify_listen: Some(SocketAddr::from(([0, 0, 0, 0], MULTICAST_V4.port()))),
            join_multicast: true,
            interfaces: None,
            mx: 1,
            search_target: SEARCH_TARGET.to_string(),
            fetch_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(10),
            data_dir: None,
            settings: Settings::default(),
            seed: None,
        }
    }
}

impl DiscoveryConfig {
    /// Production defaults with `last-camera.json` in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        DiscoveryConfig {
            data_dir: Some(data_dir),
            ..Self::default()
        }
    }

    /// Loopback only, for tests: unicast search to `targets`, NOTIFY on an ephemeral
    /// 127.0.0.1 port, no multicast.
    pub fn loopback(targets: Vec<SocketAddr>) -> Self {
        DiscoveryConfig {
            search_targets: targets,
            search_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            notify_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            join_multicast: false,
            interfaces: Some(Vec::new()),
            ..Self::default()
        }
    }
}

/// The last good camera address, kept across restarts.
pub const LAST_CAMERA_FILE: &str = "last-camera.json";

/// What the discovery driver's inbox carries.
pub enum Msg {
    /// An input; `ack` (if any) is answered once its actions are done and the status block
    /// is out, so a caller that awaits it sees the consequences.
    Input {
        input: Box<Input>,
        ack: Option<Answer>,
    },
    SetPrimary {
        uuid: String,
        reply: Answer,
    },
    Footprint(async_channel::Sender<Footprint>),
}

pub type Answer = async_channel::Sender<Result<(), ApiError>>;

/// The discovery machine's effects: M-SEARCH on the search socket (a non-blocking send,
/// done inline), description fetches (short tasks answering through the inbox), the camera
/// link's target, `last-camera.json`, events and the `discovery` status block.
pub struct DiscoveryExec {
    config: DiscoveryConfig,
    clock: SharedClock,
    publisher: Publisher,
    status: StatusBoard,
    prober: Arc<dyn CameraProber>,
    search: Arc<Async<UdpSocket>>,
    notify: Option<Arc<Async<UdpSocket>>>,
    /// Where fetches answer.
    inbox: Inbox<Msg>,
    /// What `last-camera.json` holds, to skip rewriting the same thing.
    remembered: Option<String>,
    /// Monotonic ↔ wall anchor for the status block's times. Fixed, so an unchanged
    /// registry renders the same; moved only when the wall clock steps (time sync).
    epoch: (Instant, SystemTime),
    /// The machine changed since the status block was last published.
    dirty: bool,
    /// Answers owed once the turn settles.
    acks: Vec<(Answer, Result<(), ApiError>)>,
    /// Turns of the driver loop (each one a wake-up of the task), for frugality checks.
    wakeups: Arc<AtomicU64>,
}

/// The sockets and the machine, ready for [`crate::driver::run`]; the service starts them.
pub struct Parts {
    pub machine: Discovery,
    pub exec: DiscoveryExec,
    pub inbox: Inbox<Msg>,
    pub rx: async_channel::Receiver<Msg>,
    pub wakeups: Arc<AtomicU64>,
    pub search_addr: Option<SocketAddr>,
    pub notify_addr: Option<SocketAddr>,
}

/// Binds the sockets and builds the machine (first search due now). A NOTIFY socket that
/// cannot be bound is logged and left out; a search socket that cannot be bound is an error.
pub fn bind(
    config: DiscoveryConfig,
    clock: SharedClock,
    publisher: Publisher,
    status: StatusBoard,
    prober: Arc<dyn CameraProber>,
) -> io::Result<Parts> {
    let search = UdpSocket::bind(config.search_bind)?;
    if let Err(e) = search.set_multicast_ttl_v4(2) {
        log::debug!("discovery: IP_MULTICAST_TTL not set: {e}");
    }
    let search = Arc::new(Async::new(search)?);
    let notify = match config.notify_listen {
        None => None,
        Some(addr) => match bind_reuse(addr).and_then(Async::new) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                log::warn!("discovery: cannot listen for NOTIFY on {addr}: {e}; searching only");
                None
            }
        },
    };
    let now = clock.now();
    let rng = config.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
    let machine = Discovery::new(config.settings.clone(), rng, now);
    // Fetches in flight are bounded by the machine, packets by the readers' pace.
    let (inbox, rx) = crate::driver::inbox(32);
    let wakeups = Arc::new(AtomicU64::new(0));
    let epoch = (now, clock.wall());
    let search_addr = search.get_ref().local_addr().ok();
    let notify_addr = notify.as_ref().and_then(|n| n.get_ref().local_addr().ok());
    let exec = DiscoveryExec {
        config,
        clock,
        publisher,
        status,
        prober,
        search,
        notify,
        inbox: inbox.clone(),
        remembered: None,
        epoch,
        dirty: true,
        acks: Vec::new(),
        wakeups: wakeups.clone(),
    };
    Ok(Parts {
        machine,
        exec,
        inbox,
        rx,
        wakeups,
        search_addr,
        notify_addr,
    })
}

impl DiscoveryExec {
    /// One task per socket: each datagram that parses becomes an input in the inbox.
    pub fn readers(&self) -> Vec<smol::Task<()>> {
        let sockets = std::iter::once(self.search.clone()).chain(self.notify.clone());
        sockets
            .map(|socket| crate::rt::spawn(read_packets(socket, self.inbox.clone())))
            .collect()
    }

    /// Publishes the status block (before any event of this turn, so whoever reacts to an
    /// event already sees it).
    fn publish(&mut self, m: &Discovery) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let (now, wall) = (self.clock.now(), self.clock.wall());
        let expected = self.epoch.1 + now.saturating_duration_since(self.epoch.0);
        let skew = match wall.duration_since(expected) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if skew > Duration::from_secs(1) {
            self.epoch = (now, wall);
        }
        self.status
            .set_discovery(Some(m.status(self.epoch.0, self.epoch.1)));
    }

    fn fetch(&self, url: HttpUrl) {
        let (clock, timeout, inbox) = (
            self.clock.clone(),
            self.config.fetch_timeout,
            self.inbox.clone(),
        );
        crate::rt::spawn(async move {
            let deadline = clock.now() + timeout;
            let expired = async {
                clock.sleep_until(deadline).await;
                Err(format!("timed out after {timeout:?}"))
            };
            let body = future::or(http_get(&url, MAX_DESCRIPTION), expired).await;
            let result = body.and_then(|b| description::parse(&b).map_err(|e| e.to_string()));
            if let Err(e) = &result {
                log::debug!("discovery: description {url}: {e}");
            }
            let input = Input::DescriptionFetched {
                location: url,
                result,
            };
            let _ = inbox
                .send(Msg::Input {
                    input: Box::new(input),
                    ack: None,
                })
                .await;
        })
        .detach();
    }

    /// M-SEARCH to every target. The socket is non-blocking and a send never waits: a full
    /// send buffer drops that packet (the schedule searches again).
    fn send_search(&self) {
        let cfg = &self.config;
        let socket = self.search.get_ref();
        let interfaces = match &cfg.interfaces {
            Some(list) => list.clone(),
            None => ipv4_interfaces(),
        };
        for target in &cfg.search_targets {
            let packet = ssdp::m_search(*target, &cfg.search_target, cfg.mx);
            let multicast = target.ip().is_multicast();
            if multicast && !interfaces.is_empty() {
                for iface in &interfaces {
                    if let Err(e) = set_multicast_if(socket, *iface) {
                        log::debug!("discovery: IP_MULTICAST_IF {iface}: {e}");
                        continue;
                    }
                    if let Err(e) = socket.send_to(&packet, *target) {
                        log::debug!("discovery: M-SEARCH via {iface} to {target}: {e}");
                    }
                }
            } else if let Err(e) = socket.send_to(&packet, *target) {
                log::debug!("discovery: M-SEARCH to {target}: {e}");
            }
        }
        // Interfaces come and go (Wi-Fi changes): (re)join the group on each one.
        if cfg.join_multicast {
            if let Some(n) = &self.notify {
                for iface in &interfaces {
                    let _ = n.get_ref().join_multicast_v4(MULTICAST_V4.ip(), iface);
                }
                if interfaces.is_empty() {
                    let _ = n
                        .get_ref()
                        .join_multicast_v4(MULTICAST_V4.ip(), &Ipv4Addr::UNSPECIFIED);
                }
            }
        }
    }

    fn remember(&self, base_url: &str, id: &str) {
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let body = json!({
            "baseUrl": base_url,
            "uuid": id,
            "savedAt": iso8601(self.clock.wall()),
        });
        let path = dir.join(LAST_CAMERA_FILE);
        let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| atomic_write(&path, &bytes)) {
            log::warn!("discovery: cannot save {}: {e}", path.display());
        }
    }

    fn woke(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

impl Executor<Discovery> for DiscoveryExec {
    type Msg = Msg;

    async fn on_message(&mut self, m: &mut Discovery, now: Now, msg: Msg) -> Flow {
        self.woke();
        self.dirty = true;
        match msg {
            Msg::Input { input, ack } => {
                m.handle_input(now, *input);
                if let Some(ack) = ack {
                    self.acks.push((ack, Ok(())));
                }
            }
            Msg::SetPrimary { uuid, reply } => {
                let r = m.set_primary(&uuid);
                self.acks.push((reply, r));
            }
            Msg::Footprint(reply) => {
                let _ = reply.try_send(m.footprint());
            }
        }
        Flow::Continue
    }

    async fn on_timeout(&mut self, m: &mut Discovery, now: Now) {
        self.woke();
        self.dirty = true;
        m.handle_timeout(now);
    }

    async fn perform(&mut self, m: &mut Discovery, _now: Now, action: Action) {
        self.publish(m);
        match action {
            Action::Search => self.send_search(),
            Action::FetchDescription(url) => self.fetch(url),
            Action::Target { base_url, id } => {
                log::info!("discovery: camera {id} at {base_url}");
                let id = (!id.starts_with(MANUAL_PREFIX)).then_some(id.as_str());
                self.prober.target(&base_url.to_string(), id);
            }
            Action::SsdpAlive { id } => self.prober.ssdp_alive(&id),
            Action::Remember { base_url, id } => {
                let url = base_url.to_string();
                if self.remembered.as_deref() != Some(url.as_str()) {
                    self.remember(&url, &id);
                    self.remembered = Some(url);
                }
            }
            Action::Event(e) => self.publisher.event(e.to_event()),
        }
    }

    async fn settled(&mut self, m: &mut Discovery, _now: Now) -> Flow {
        self.publish(m);
        for (reply, r) in self.acks.drain(..) {
            let _ = reply.try_send(r);
        }
        Flow::Continue
    }
}

/// Reads datagrams from `socket` until the inbox closes; each accepted SSDP message is an
/// input. Receive errors (ICMP errors from earlier sends surface here) are logged, not fed.
async fn read_packets(socket: Arc<Async<UdpSocket>>, inbox: Inbox<Msg>) {
    let mut buf = vec![0u8; MAX_PACKET + 1];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                log::debug!("discovery: recv: {e}");
                continue;
            }
        };
        let input = match ssdp::parse(&buf[..n]) {
            Ok(ssdp::SsdpMessage::Announce(a))
                if !ssdp::location_matches_sender(&a.location, from.ip()) =>
            {
                log::debug!(
                    "discovery: {from} announced a Location on another host ({}); ignored",
                    a.location
                );
                continue;
            }
            Ok(msg) => Input::Ssdp(msg),
            Err(e) => {
                log::trace!("discovery: from {from}: {e}");
                continue;
            }
        };
        let msg = Msg::Input {
            input: Box::new(input),
            ack: None,
        };
        if inbox.send(msg).await.is_err() {
            return;
        }
    }
}

/// The remembered base URL in `data_dir`, if the file exists and makes sense.
pub fn last_camera(config: &DiscoveryConfig) -> Option<HttpUrl> {
    let path = config.data_dir.as_ref()?.join(LAST_CAMERA_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) if b.len() <= 4096 => b,
        Ok(_) => {
            log::warn!("discovery: {} is too large; ignored", path.display());
            return None;
        }
        Err(_) => return None,
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("discovery: {} is not JSON ({e}); ignored", path.display());
            return None;
        }
    };
    let url = value.get("baseUrl")?.as_str().and_then(HttpUrl::parse);
    if url.is_none() {
        log::warn!(
            "discovery: {} has no valid baseUrl; ignored",
            path.display()
        );
    }
    url
}

/// `GET url` over plain HTTP/1.1 with `Connection: close`; the body, at most `limit` bytes.
/// The host must be an IP literal (cameras announce IPs; no DNS lookups on the hot path).
pub async fn http_get(url: &HttpUrl, limit: usize) -> Result<Vec<u8>, String> {
    let ip: IpAddr = url
        .host
        .parse()
        .map_err(|_| format!("host {} is not an IP address", url.host))?;
    let mut stream = Async::<TcpStream>::connect(SocketAddr::new(ip, url.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: skylapse\r\nAccept: text/xml\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    const MAX_HEAD: usize = 8 * 1024;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD + limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        if n == 0 {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated response head".into()),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    if resp.code != Some(200) {
        return Err(format!("HTTP {}", resp.code.unwrap_or(0)));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let body = &buf[head_len..];
    let body = if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body).ok_or("bad chunked body")?
    } else if let Some(len) = header("Content-Length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length")?;
        body.get(..len)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    if body.len() > limit {
        return Err(format!("response larger than {limit} bytes"));
    }
    Ok(body)
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

pub use crate::sys::ipv4_interfaces;
use crate::sys::{bind_reuse, set_multicast_if};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_handles_chunks_and_rejects_garbage() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello world"[..])
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"5\r\nhel"), None);
        assert_eq!(dechunk(b"ffffffffffffffff\r\nx"), None);
    }

    #[test]
    fn interfaces_never_include_loopback() {
        assert!(ipv4_interfaces().iter().all(|ip| !ip.is_loopback()));
    }
}
