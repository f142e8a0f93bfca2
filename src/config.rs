//! Configuration: defaults, then an optional JSON file, then environment, then flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP + WebSocket listen address (`--listen`, default 0.0.0.0:8080).
    pub listen: SocketAddr,
    /// Sessions, reports, pinned certificates, last camera address (`--data-dir`).
    pub data_dir: PathBuf,
    /// Serve this directory instead of the embedded UI (`--static-dir`).
    pub static_dir: Option<PathBuf>,
    /// Optional bearer token for WebSocket and REST (`--token`). Off by default.
    pub token: Option<Secret>,
    /// Extra origins allowed to open the WebSocket (`--allow-origin`, repeatable).
    pub allow_origins: Vec<String>,
    /// env_logger filter (`--log`, or RUST_LOG).
    pub log: Option<String>,
    /// Start the camera simulator in-process and connect to it (`--demo`).
    pub demo: bool,
    /// Turn off camera certificate verification (`--camera-insecure`).
    pub camera_insecure: bool,
    /// Connect to this camera address at start (`--camera`, "ip[:port]" or a URL).
    pub camera: Option<String>,
    pub limits: Limits,
}

/// Protocol limits, reported to clients in `welcome.limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_clients: usize,
    pub max_frame_bytes: usize,
    pub max_invalid_messages: u32,
    /// Messages per second per client (token bucket refill).
    pub rate_per_sec: u32,
    /// Burst size of the token bucket.
    pub rate_burst: u32,
    pub outbound_queue: usize,
    pub ping_interval: Duration,
    pub silence_timeout: Duration,
    pub status_interval: Duration,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub head_timeout: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 16,
            max_frame_bytes: 64 * 1024,
            max_invalid_messages: 10,
            rate_per_sec: 20,
            rate_burst: 40,
            outbound_queue: 64,
            ping_interval: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(60),
            status_interval: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("/var/lib/skylapse"),
            static_dir: None,
            token: None,
            allow_origins: Vec::new(),
            log: None,
            demo: false,
            camera_insecure: false,
            camera: None,
            limits: Limits::default(),
        }
    }
}
