//! HTTP + WebSocket front end: one port, one command layer for REST and WebSocket.
//!
//! ```text
//!  TcpListener ─accept─▶ conns::ConnTable::admit (never refuses: evicts the idlest when full)
//!                          │
//!                          ▼
//!                        http::connection ──(Upgrade: websocket on / or /ws)──▶ ws::run
//!                          │  /health, static assets, /api/* (rest::route)        │
//!                          └──────────────┬──────────────────────────────────────┘
//!                                         ▼
//!                              Web::execute(origin, Command) ──▶ App::execute
//!  Publisher ──Outbound──▶ hub::Hub::run ──bounded per-client queues──▶ ws writers
//! ```
//!
//! [`Server::start`] spawns the accept loop and the hub on a smol executor; tests start the
//! real server this way on 127.0.0.1:0.
//!
//! Nobody on the network can lock the owner out (issue 9): a new connection is never refused
//! (the table evicts the connection idle the longest, a peer at its share evicts its own), an
//! idle connection holds no read buffer, the hub admits a new WebSocket by closing the least
//! active client of the busiest address, every request must name this device in `Host`
//! ([`host`]), and refusals are logged once per [`LOG_SUMMARY_EVERY`], not once each.

pub mod assets;
pub mod conns;
pub mod host;
pub mod http;
pub mod hub;
pub mod liveview;
pub mod message;
pub mod rest;
pub mod ws;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::app::{App, Origin, Outbound};
use crate::protocol::messages::Pong;
use crate::protocol::{ApiError, Command, CommandResult, Reply};
use crate::sys::lock;
use async_io::Async;
pub use conns::{Refusal, Refusals};

pub use hub::Hub;

/// `0.1.0+<git hash>`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("SKYLAPSE_GIT_HASH"));

/// Refusals and evictions are logged in full once per this period, then summed up.
pub const LOG_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// What every connection shares.
pub struct Web {
    pub app: Arc<App>,
    pub hub: Arc<Hub>,
    /// Monotonic start time (on the app clock), for `/health` uptime.
    pub started: Instant,
    /// Open HTTP connections; a connection leaves it when it ends or upgrades.
    conns: Mutex<conns::ConnTable<smol::Task<()>>>,
    pub hosts: host::HostPolicy,
    ex: Arc<smol::Executor<'static>>,
}

impl Web {
    pub fn new(app: Arc<App>, hub: Arc<Hub>, ex: Arc<smol::Executor<'static>>) -> Arc<Web> {
        let limits = &app.config.limits;
        let now = app.clock.now();
        Arc::new(Web {
            started: now,
            conns: Mutex::new(conns::ConnTable::new(
                limits.max_connections,
                limits.max_connections_per_peer,
                now,
            )),
            hosts: host::HostPolicy::new(&app.config.allow_hosts),
            app,
            hub,
            ex,
        })
    }

    /// Open HTTP connections (not counting upgraded WebSockets).
    pub fn http_connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// A connection becomes a WebSocket: it leaves the HTTP table (the hub counts it now) and
    /// its task runs on, detached.
    pub fn upgraded(&self, conn: u64) {
        let task = lock(&self.conns).remove(conn);
        if let Some(t) = task {
            t.detach();
        }
    }

    /// Spawns `fut` on the server's executor, detached.
    pub fn spawn_detached(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.ex.spawn(fut).detach();
    }

    /// Runs a command in its own task: a client that disconnects meanwhile does not cancel
    /// the work (closing a client never stops a session or the camera).
    pub async fn execute_detached(self: &Arc<Self>, origin: Origin, cmd: Command) -> CommandResult {
        let (tx, rx) = async_channel::bounded(1);
        let web = self.clone();
        self.ex
            .spawn(async move {
                let result = web.execute(origin, &cmd).await;
                let _ = tx.send(result).await;
            })
            .detach();
        rx.recv()
            .await
            .unwrap_or_else(|_| Err(ApiError::system("The command was interrupted")))
    }

    /// The one command layer behind REST and WebSocket.
    pub async fn execute(&self, origin: Origin, cmd: &Command) -> CommandResult {
        match cmd {
            Command::Ping => Ok(Reply::of(&Pong {
                timestamp: crate::util::iso8601(self.app.clock.wall()),
            })),
            Command::GetWsConnections => Ok(Reply::of(&self.hub.connections())),
            Command::Subscribe(_) | Command::Unsubscribe(_) if origin == Origin::Rest => Err(
                ApiError::invalid("Subscriptions exist only on a WebSocket connection"),
            ),
            _ => self.app.execute(origin, cmd).await,
        }
    }

    /// Bearer token check (constant time). Off when no token is configured.
    pub fn token_ok(&self, presented: Option<&str>) -> bool {
        match &self.app.config.token {
            None => true,
            Some(t) => {
                presented.is_some_and(|p| constant_time_eq(p.as_bytes(), t.expose().as_bytes()))
            }
        }
    }
}

/// File descriptors kept for everything that is not an HTTP connection (WebSocket clients are
/// counted apart): the camera's sockets, D-Bus, SSDP, journals, reports, the executor.
pub const FD_RESERVE: usize = 96;

/// Raises the soft `RLIMIT_NOFILE` towards `want` (up to the hard limit) and returns how many
/// HTTP connections fit: `max_connections`, or fewer if descriptors are short.
pub fn fit_connections_to_fd_limit(max_connections: usize, max_clients: usize) -> usize {
    let want = (max_connections + max_clients + FD_RESERVE) as u64;
    let Some(soft) = crate::sys::raise_nofile(want) else {
        return max_connections;
    };
    let room = soft.saturating_sub((max_clients + FD_RESERVE) as u64) as usize;
    max_connections.min(room).max(16)
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0 && a.len() == b.len()
}

/// The running server: the accept loop and the hub, on a smol executor.
pub struct Server {
    web: Arc<Web>,
    addr: SocketAddr,
    stop: async_channel::Sender<()>,
    accept: smol::Task<()>,
    hub_task: smol::Task<()>,
    log_task: smol::Task<()>,
}

impl Server {
    /// Starts serving `listener` on `ex`; `outbound` is the receiver from `Publisher::channel`.
    pub fn start(
        ex: &Arc<smol::Executor<'static>>,
        listener: Async<TcpListener>,
        app: Arc<App>,
        outbound: async_channel::Receiver<Outbound>,
    ) -> std::io::Result<Server> {
        let addr = listener.get_ref().local_addr()?;
        let hub = Hub::new(app.clone());
        let web = Web::new(app, hub.clone(), ex.clone());
        let log_task = ex.spawn(hub.refusals().clone().run(web.app.clock.clone()));
        let hub_task = ex.spawn(hub.run(outbound));
        let (stop, stop_rx) = async_channel::bounded(1);
        let accept = ex.spawn(accept_loop(ex.clone(), listener, web.clone(), stop_rx));
        Ok(Server {
            web,
            addr,
            stop,
            accept,
            hub_task,
            log_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn web(&self) -> &Arc<Web> {
        &self.web
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.web.hub
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits (at most `timeout`) for
    /// the clients to go. Services are shut down by the caller (`App::shutdown`).
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.try_send(());
        self.accept.await;
        self.web.hub.close_all(1001, "Server shutting down");
        self.web.hub.wait_empty(timeout).await;
        drop(self.hub_task);
        drop(self.log_task);
    }
}

async fn accept_loop(
    ex: Arc<smol::Executor<'static>>,
    listener: Async<TcpListener>,
    web: Arc<Web>,
    stop: async_channel::Receiver<()>,
) {
    let clock = web.app.clock.clone();
    let refusals = web.hub.refusals().clone();
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => admit(&ex, &web, stream, peer),
            Some(Err(e)) => {
                let now = clock.now();
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                // Out of file descriptors: free one by evicting the idlest connection, so the
                // pending connection gets in at once; anything else: wait a little.
                let evicted = if out_of_fds {
                    lock(&web.conns).evict_idlest(now)
                } else {
                    None
                };
                if refusals.note(Refusal::AcceptFailed, now) {
                    log::warn!(
                        "accept failed: {e}{}",
                        if evicted.is_some() {
                            "; closed the idlest connection to make room"
                        } else {
                            ""
                        }
                    );
                }
                match evicted {
                    Some(ev) => drop(ev.handle),
                    None => clock.sleep_until(now + Duration::from_millis(100)).await,
                }
            }
        }
    }
}

/// Admits an accepted connection (evicting one if the table is full) and starts its task.
fn admit(ex: &smol::Executor<'static>, web: &Arc<Web>, stream: Async<TcpStream>, peer: SocketAddr) {
    let now = web.app.clock.now();
    let key = conns::PeerKey::of(peer.ip());
    let (adm, len, max) = {
        let mut t = lock(&web.conns);
        let adm = t.admit(key, now);
        (adm, t.len(), t.max())
    };
    if let Some(ev) = adm.evicted {
        if web.hub.refusals().note(Refusal::HttpEvicted, now) {
            let why = match ev.reason {
                conns::EvictReason::PeerCap => format!(
                    "{} holds its share of {} connections",
                    peer.ip(),
                    web.app.config.limits.max_connections_per_peer
                ),
                conns::EvictReason::Full => format!("{len} of {max} connections open"),
            };
            log::warn!(
                "{why}: closed a connection ({:?}, idle {:.1}s) to admit {peer}",
                ev.phase,
                ev.idle.as_secs_f64()
            );
        }
        // Ends the evicted connection's task (its socket closes); outside the table's lock,
        // since the task's guard takes it.
        drop(ev.handle);
    }
    let _ = stream.get_ref().set_nodelay(true);
    let id = adm.id;
    let task = ex.spawn(connection_task(web.clone(), stream, peer, id, adm.state));
    let gone = lock(&web.conns).attach(id, task);
    if let Some(t) = gone {
        t.detach();
    }
}

/// Takes the connection out of the table however its task ends.
struct ConnGuard {
    web: Arc<Web>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let task = lock(&self.web.conns).remove(self.id);
        // Our own handle (normal end): let the task finish.
        if let Some(t) = task {
            t.detach();
        }
    }
}

async fn connection_task(
    web: Arc<Web>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    id: u64,
    state: Arc<conns::ConnState>,
) {
    let _guard = ConnGuard {
        web: web.clone(),
        id,
    };
    http::connection(&web, stream, peer, id, &state).await;
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_matches_only_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
