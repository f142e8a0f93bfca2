//! Frames that are neither replies nor events: the welcome, its limits, /health, time-sync-request.

use serde::{Deserialize, Serialize};

/// `welcome.limits`: what a client must stay within (seeds 001–004).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsLimits {
    pub max_clients: usize,
    pub max_frame_bytes: usize,
    pub max_invalid_messages: u32,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub outbound_queue: usize,
    pub outbound_queue_bytes: usize,
    pub ping_interval_ms: u64,
    pub silence_timeout_ms: u64,
    pub status_interval_ms: u64,
}

/// The first frame a client gets, before the status blocks (`crate::protocol::status_frame`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    pub client_id: u64,
    pub message: String,
    pub server_time: String,
    pub version: String,
    /// Every command `type` and alias of the command table.
    pub available_commands: Vec<String>,
    pub limits: WsLimits,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// Seconds since the server started.
    pub uptime: f64,
    /// WebSocket clients connected.
    pub clients: usize,
    pub timestamp: String,
}

/// `time-sync-request`: `requestId` at top level (the original) and in `data` (seed 000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSyncRequest {
    pub request_id: String,
    /// Unix ms.
    pub server_time: i64,
}
