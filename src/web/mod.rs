//! HTTP + WebSocket front end: one port, one command layer for REST and WebSocket.
//!
//! ```text
//!  TcpListener ─accept─▶ http::connection ──(Upgrade: websocket on / or /ws)──▶ ws::run
//!                          │  /health, static assets, /api/* (rest::route)        │
//!                          └──────────────┬──────────────────────────────────────┘
//!                                         ▼
//!                              Web::execute(origin, Command) ──▶ App::execute
//!  Publisher ──Outbound──▶ hub::Hub::run ──bounded per-client queues──▶ ws writers
//! ```
//!
//! [`Server::start`] spawns the accept loop and the hub on a smol executor; tests start the
//! real server this way on 127.0.0.1:0.

pub mod assets;
pub mod http;
pub mod hub;
pub mod rest;
pub mod ws;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, Origin, Outbound};
use crate::protocol::messages::Pong;
use crate::protocol::{ApiError, Command, CommandResult, Reply};
use async_io::Async;

pub use hub::Hub;

/// `0.1.0+<git hash>`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("SKYLAPSE_GIT_HASH"));

/// At most this many HTTP connections at once (WebSocket clients count until upgraded).
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// What every connection shares.
pub struct Web {
    pub app: Arc<App>,
    pub hub: Arc<Hub>,
    /// Monotonic start time (on the app clock), for `/health` uptime.
    pub started: Instant,
    connections: AtomicUsize,
    ex: Arc<smol::Executor<'static>>,
}

impl Web {
    pub fn new(app: Arc<App>, hub: Arc<Hub>, ex: Arc<smol::Executor<'static>>) -> Arc<Web> {
        Arc::new(Web {
            started: app.clock.now(),
            app,
            hub,
            connections: AtomicUsize::new(0),
            ex,
        })
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
        let hub_task = ex.spawn(hub.run(outbound));
        let (stop, stop_rx) = async_channel::bounded(1);
        let accept = ex.spawn(accept_loop(ex.clone(), listener, web.clone(), stop_rx));
        Ok(Server {
            web,
            addr,
            stop,
            accept,
            hub_task,
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
    }
}

async fn accept_loop(
    ex: Arc<smol::Executor<'static>>,
    listener: Async<TcpListener>,
    web: Arc<Web>,
    stop: async_channel::Receiver<()>,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                if web.connections.load(Ordering::Relaxed) >= MAX_HTTP_CONNECTIONS {
                    log::warn!("too many connections; refusing {peer}");
                    continue;
                }
                let _ = stream.get_ref().set_nodelay(true);
                let web = web.clone();
                web.connections.fetch_add(1, Ordering::Relaxed);
                ex.spawn(async move {
                    http::connection(&web, stream, peer).await;
                    web.connections.fetch_sub(1, Ordering::Relaxed);
                })
                .detach();
            }
            Some(Err(e)) => {
                // EMFILE and friends: wait a little instead of spinning.
                log::warn!("accept failed: {e}");
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
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
