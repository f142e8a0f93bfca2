//! The discovery driver: UDP sockets, description fetches, and one timer.
//!
//! One task waits for whichever comes first: a datagram on the search socket, a datagram on
//! the NOTIFY socket, a wake-up (a fetch finished, a command changed the machine), or the
//! machine's next deadline. Every input goes through [`Shared::apply`], which feeds the machine
//! and performs its actions in order under one lock, so events reach the hub before a command's
//! reply does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_io::Async;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use serde_json::json;

use super::description::{self, MAX_DESCRIPTION};
use super::registry::{Action, Discovery, Input, Settings, MANUAL_PREFIX};
use super::ssdp::{self, HttpUrl, MAX_PACKET, MULTICAST_V4, SEARCH_TARGET};
use super::CameraProber;
use crate::app::{Publisher, StatusBoard};
use crate::backoff::Rng;
use crate::clock::SharedClock;
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

/// State shared by the driver task, fetch tasks and the service.
pub struct Shared {
    pub(crate) config: DiscoveryConfig,
    pub(crate) clock: SharedClock,
    pub(crate) publisher: Publisher,
    pub(crate) status: StatusBoard,
    pub(crate) prober: Arc<dyn CameraProber>,
    machine: async_lock::Mutex<Core>,
    /// Wake-ups and fetch results for the driver task.
    driver_tx: async_channel::Sender<ToDriver>,
    /// Turns of the driver loop (each one a wake-up of the task), for frugality checks.
    wakeups: std::sync::atomic::AtomicU64,
    search: Arc<Async<UdpSocket>>,
    notify: Option<Arc<Async<UdpSocket>>>,
}

struct Core {
    machine: Discovery,
    /// What `last-camera.json` holds, to skip rewriting the same thing.
    remembered: Option<String>,
    /// Monotonic ↔ wall anchor for the status block's times. Fixed, so an unchanged
    /// registry renders the same; moved only when the wall clock steps (time sync).
    epoch: (Instant, SystemTime),
}

/// The driver's end of its inbox, for [`run`].
pub struct Sockets {
    driver_rx: async_channel::Receiver<ToDriver>,
}

pub(crate) enum ToDriver {
    /// The machine changed: re-arm the timer.
    Wake,
    /// An input from a fetch task.
    Input(Box<Input>),
}

impl Shared {
    /// Binds the sockets and builds the machine (first search due now). A NOTIFY socket that
    /// cannot be bound is logged and left out; a search socket that cannot be bound is an error.
    pub fn new(
        config: DiscoveryConfig,
        clock: SharedClock,
        publisher: Publisher,
        status: StatusBoard,
        prober: Arc<dyn CameraProber>,
    ) -> io::Result<(Arc<Shared>, Sockets)> {
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
                    log::warn!(
                        "discovery: cannot listen for NOTIFY on {addr}: {e}; searching only"
                    );
                    None
                }
            },
        };
        let now = clock.now();
        let rng = config.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        let machine = Discovery::new(config.settings.clone(), rng, now);
        // In-flight fetches are bounded by the machine, so this inbox never fills for long.
        let (driver_tx, driver_rx) = async_channel::bounded(16);
        let epoch = (now, clock.wall());
        let shared = Arc::new(Shared {
            config,
            clock,
            publisher,
            status,
            prober,
            machine: async_lock::Mutex::new(Core {
                machine,
                remembered: None,
                epoch,
            }),
            driver_tx,
            wakeups: std::sync::atomic::AtomicU64::new(0),
            search,
            notify,
        });
        Ok((shared, Sockets { driver_rx }))
    }

    pub fn search_addr(&self) -> Option<SocketAddr> {
        self.search.get_ref().local_addr().ok()
    }

    /// How many times the driver task has woken up so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn notify_addr(&self) -> Option<SocketAddr> {
        self.notify.as_ref()?.get_ref().local_addr().ok()
    }

    /// Feeds one input, performs the resulting actions, refreshes the status block, and
    /// wakes the driver so it re-arms its timer.
    pub async fn apply(self: &Arc<Self>, input: Input) {
        self.with_machine(|m, now| m.handle(now, input)).await;
    }

    /// [`Self::apply`] from the driver task itself: it re-reads the deadline anyway, so it
    /// does not wake itself (one loop turn per input, not two).
    async fn apply_in_driver(self: &Arc<Self>, input: Input) {
        self.run_machine(|m, now| m.handle(now, input), false).await;
    }

    /// Runs `f` on the machine at `now`, then performs its actions (under the same lock, so
    /// actions from different callers never interleave).
    pub async fn with_machine<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Discovery, Instant) -> T,
    ) -> T {
        self.run_machine(f, true).await
    }

    async fn run_machine<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Discovery, Instant) -> T,
        wake_driver: bool,
    ) -> T {
        let mut core = self.machine.lock().await;
        let now = self.clock.now();
        let out = f(&mut core.machine, now);
        // Status first: whoever reacts to an event below already sees the new block.
        let wall = self.clock.wall();
        let expected = core.epoch.1 + now.saturating_duration_since(core.epoch.0);
        let skew = match wall.duration_since(expected) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if skew > Duration::from_secs(1) {
            core.epoch = (now, wall);
        }
        let (epoch, epoch_wall) = core.epoch;
        self.status
            .set("discovery", core.machine.status(epoch, epoch_wall));
        while let Some(action) = core.machine.poll_action() {
            self.perform(&mut core, action).await;
        }
        drop(core);
        if wake_driver {
            let _ = self.driver_tx.try_send(ToDriver::Wake);
        }
        out
    }

    /// Reads the machine without running it.
    pub async fn inspect<T>(&self, f: impl FnOnce(&Discovery) -> T) -> T {
        f(&self.machine.lock().await.machine)
    }

    async fn perform(self: &Arc<Self>, core: &mut Core, action: Action) {
        match action {
            Action::Search => self.send_search().await,
            Action::FetchDescription(url) => {
                let me = self.clone();
                crate::rt::spawn(async move {
                    let result = me.fetch(&url).await;
                    if let Err(e) = &result {
                        log::debug!("discovery: description {url}: {e}");
                    }
                    let input = Input::DescriptionFetched {
                        location: url,
                        result,
                    };
                    let _ = me.driver_tx.send(ToDriver::Input(Box::new(input))).await;
                })
                .detach();
            }
            Action::Target { base_url, id } => {
                log::info!("discovery: camera {id} at {base_url}");
                let id = (!id.starts_with(MANUAL_PREFIX)).then_some(id.as_str());
                self.prober.target(&base_url.to_string(), id);
            }
            Action::SsdpAlive { id } => self.prober.ssdp_alive(&id),
            Action::Remember { base_url, id } => {
                let url = base_url.to_string();
                if core.remembered.as_deref() != Some(url.as_str()) {
                    self.remember(&url, &id);
                    core.remembered = Some(url);
                }
            }
            Action::Event(e) => self.publisher.event(e.to_event()),
        }
    }

    async fn fetch(&self, url: &HttpUrl) -> Result<description::DeviceDescription, String> {
        let deadline = self.clock.now() + self.config.fetch_timeout;
        let timeout = async {
            self.clock.sleep_until(deadline).await;
            Err(format!("timed out after {:?}", self.config.fetch_timeout))
        };
        let body = future::or(http_get(url, MAX_DESCRIPTION), timeout).await?;
        description::parse(&body).map_err(|e| e.to_string())
    }

    async fn send_search(&self) {
        let cfg = &self.config;
        let interfaces = match &cfg.interfaces {
            Some(list) => list.clone(),
            None => ipv4_interfaces(),
        };
        for target in &cfg.search_targets {
            let packet = ssdp::m_search(*target, &cfg.search_target, cfg.mx);
            let multicast = target.ip().is_multicast();
            if multicast && !interfaces.is_empty() {
                for iface in &interfaces {
                    if let Err(e) = set_multicast_if(self.search.get_ref(), *iface) {
                        log::debug!("discovery: IP_MULTICAST_IF {iface}: {e}");
                        continue;
                    }
                    if let Err(e) = self.search.send_to(&packet, *target).await {
                        log::debug!("discovery: M-SEARCH via {iface} to {target}: {e}");
                    }
                }
            } else if let Err(e) = self.search.send_to(&packet, *target).await {
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

    /// The remembered base URL, if the file exists and makes sense.
    pub fn last_camera(&self) -> Option<HttpUrl> {
        let path = self.config.data_dir.as_ref()?.join(LAST_CAMERA_FILE);
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
}

/// The driver task: waits for packets, wake-ups and the next deadline; never spins.
pub async fn run(shared: Arc<Shared>, sockets: Sockets) {
    let mut search_buf = vec![0u8; MAX_PACKET + 1];
    let mut notify_buf = vec![0u8; MAX_PACKET + 1];
    shared.apply_in_driver(Input::Tick).await;
    loop {
        let deadline = shared.inspect(|m| m.poll_timeout()).await;
        enum Woke {
            Packet(io::Result<(usize, SocketAddr)>, bool),
            Timer,
            Poked,
            Input(Box<Input>),
            Closed,
        }
        let woke = {
            let timer = async {
                match deadline {
                    Some(d) => shared.clock.sleep_until(d).await,
                    None => future::pending::<()>().await,
                }
                Woke::Timer
            };
            let poked = async {
                match sockets.driver_rx.recv().await {
                    Ok(ToDriver::Wake) => Woke::Poked,
                    Ok(ToDriver::Input(i)) => Woke::Input(i),
                    Err(_) => Woke::Closed,
                }
            };
            let search =
                async { Woke::Packet(shared.search.recv_from(&mut search_buf).await, true) };
            let notify = async {
                match &shared.notify {
                    Some(s) => Woke::Packet(s.recv_from(&mut notify_buf).await, false),
                    None => future::pending().await,
                }
            };
            future::or(future::or(search, notify), future::or(timer, poked)).await
        };
        shared
            .wakeups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match woke {
            Woke::Packet(Ok((n, from)), on_search) => {
                let buf = if on_search { &search_buf } else { &notify_buf };
                match ssdp::parse(&buf[..n]) {
                    Ok(ssdp::SsdpMessage::Announce(a))
                        if !ssdp::location_matches_sender(&a.location, from.ip()) =>
                    {
                        log::debug!(
                            "discovery: {from} announced a Location on another host ({}); ignored",
                            a.location
                        );
                    }
                    Ok(msg) => shared.apply_in_driver(Input::Ssdp(msg)).await,
                    Err(e) => log::trace!("discovery: from {from}: {e}"),
                }
            }
            Woke::Packet(Err(e), _) => {
                // ICMP errors from earlier sends surface here; do not spin on them.
                log::debug!("discovery: recv: {e}");
                shared.apply_in_driver(Input::Tick).await;
            }
            Woke::Timer => shared.apply_in_driver(Input::Tick).await,
            Woke::Poked => {}
            Woke::Input(input) => shared.apply_in_driver(*input).await,
            Woke::Closed => return,
        }
    }
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
