//! The WebSocket endpoint (`/ws` and `/`): upgrade checks, then one task per client running
//! four small loops side by side until the connection ends.
//!
//! ```text
//!  upgrade ──Origin/token/version ok──▶ 101 ──register in hub (welcome queued first)
//!     │ refused: 403 / 401 / 426                 │ hub full: the least active client of the
//!     ▼                                          ▼ busiest address gets close 1013 instead
//!  reader: frames → rate limit → parse → ping/subscribe inline, others → runner (FIFO, 8)
//!  runner: (waits while the queue is over half full) Web::execute → reply (+ ack) → queue
//!  writer: queue → socket (one frame at a time; Close ends it)
//!  heartbeat: WS ping every ping_interval; silent past silence_timeout → dropped
//!     │ too many invalid messages → close 1008; frame > max → close 1009;
//!     │ protocol error → close 1002; invalid UTF-8 text → close 1007; stuck → dropped;
//!     │ evicted for a newer client → close 1013, dropped after CLOSE_GRACE
//!     ▼
//!  Open ──close queued──▶ Closing (drain the peer's close reply, bounded) ──▶ Gone
//! ```
//!
//! Bytes that arrived together with the upgrade request are handed to the WebSocket, so a
//! message sent the instant the socket opens is handled.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use async_tungstenite::tungstenite::error::ProtocolError;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use futures_lite::future::{or, pending};
use futures_lite::{AsyncWriteExt, StreamExt};
use serde_json::{json, Map, Value};

use super::conns::Refusal;
use super::http::{Request, Response};
use super::hub::{ClientSlot, Frame, Kill, RegisterError, StreamedText, STREAM_CHUNK};
use super::{Web, VERSION};
use crate::app::{ClientId, Origin};
use crate::config::Limits;
use crate::protocol::messages::{Pong, Subscribed, Unsubscribed, Welcome, WsLimits};
use crate::protocol::{
    ack_frame, command_names, error_frame, parse_envelope, reply_frame, ApiError, Body, Channel,
    Command, ErrorCode, Reply, SharedFile,
};
use crate::util::iso8601;

type Stream = Async<TcpStream>;

/// Commands waiting for the runner, per client.
const COMMAND_QUEUE: usize = 8;

/// How long to wait for the peer's close reply after ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub fn is_upgrade(req: &Request) -> bool {
    req.header_has("upgrade", "websocket")
}

/// Is this browser origin allowed? No Origin (not a browser) is; the page's own host is;
/// anything else only if configured (`--allow-origin`, `*` for any).
pub fn origin_allowed(web: &Web, req: &Request) -> bool {
    let Some(origin) = req.header("origin") else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let allowed = &web.app.config.allow_origins;
    if allowed.iter().any(|a| a == "*" || *a == origin) {
        return true;
    }
    let host = req.header("host").unwrap_or("").trim().to_ascii_lowercase();
    match origin.split_once("://") {
        Some(("http" | "https", h)) => !host.is_empty() && h == host,
        _ => false,
    }
}

/// Validates an upgrade request; `Ok` carries the `Sec-WebSocket-Accept` value.
pub fn check(web: &Web, req: &Request) -> Result<String, Response> {
    let bad = |status: u16, msg: &str| {
        Response::error(web, status, &ApiError::new(ErrorCode::InvalidMessage, msg))
    };
    if req.method != "GET" {
        return Err(bad(405, "WebSocket upgrades use GET"));
    }
    if !req.header_has("connection", "upgrade") {
        return Err(bad(400, "Missing Connection: Upgrade"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(bad(426, "Unsupported WebSocket version").header("Sec-WebSocket-Version", "13"));
    }
    let Some(key) = req.header("sec-websocket-key").filter(|k| !k.is_empty()) else {
        return Err(bad(400, "Missing Sec-WebSocket-Key"));
    };
    if !origin_allowed(web, req) {
        if web
            .hub
            .refusals()
            .note(Refusal::ForeignHost, web.app.clock.now())
        {
            log::info!("refused a WebSocket from a foreign origin");
        }
        return Err(Response::error(
            web,
            403,
            &ApiError::new(ErrorCode::PermissionDenied, "Origin not allowed"),
        ));
    }
    if !web.token_ok(req.bearer_token().as_deref()) {
        return Err(super::http::unauthorized(web));
    }
    Ok(accept_key(key.as_bytes()))
}

/// `Sec-WebSocket-Accept` (RFC 6455 §4.2.2): base64 of the SHA-1 of the key and the GUID.
/// ring's SHA-1 and a few lines of base64, instead of tungstenite's `handshake` feature (its
/// client handshake, the `sha1` and `data-encoding` crates) for this one server-side value.
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(sha1.finish().as_ref())
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A token bucket (sans-IO): `rate` tokens per second, up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate_per_sec),
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub fn ws_limits(l: &Limits) -> WsLimits {
    WsLimits {
        max_clients: l.max_clients,
        max_frame_bytes: l.max_frame_bytes,
        max_invalid_messages: l.max_invalid_messages,
        rate_per_sec: l.rate_per_sec,
        rate_burst: l.rate_burst,
        outbound_queue: l.outbound_queue,
        outbound_queue_bytes: l.outbound_queue_bytes,
        ping_interval_ms: l.ping_interval.as_millis() as u64,
        silence_timeout_ms: l.silence_timeout.as_millis() as u64,
        status_interval_ms: l.status_interval.as_millis() as u64,
    }
}

fn welcome(web: &Web, id: ClientId) -> Frame {
    let welcome = Welcome {
        client_id: id.0,
        message: "Connected to skylapse".into(),
        server_time: iso8601(web.app.clock.wall()),
        version: VERSION.into(),
        available_commands: command_names().into_iter().map(String::from).collect(),
        limits: ws_limits(web.hub.limits()),
    };
    let extra = match serde_json::to_value(&welcome) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Frame::Text(web.hub.status_frame("welcome", extra).to_string().into())
}

/// How the live phase ended.
enum End {
    /// The peer went away, errored, was silent too long, or was stuck: just drop it.
    Gone,
    /// We sent a close frame; wait (bounded) for the peer's reply.
    SentClose,
}

/// Unregisters the client however the task ends (even if the executor drops it).
struct Leave {
    web: Arc<Web>,
    id: ClientId,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.web.hub.unregister(self.id);
        self.web.app.client_disconnected(self.id);
        if churn_log(&self.web) {
            log::info!("client {} left", self.id.0);
        }
    }
}

/// Connect/leave lines are info, but a reconnect loop must not flood the log with them.
fn churn_log(web: &Web) -> bool {
    web.hub
        .refusals()
        .note(Refusal::WsChurn, web.app.clock.now())
}

/// Completes the upgrade and serves the client until it goes.
pub async fn run(
    web: Arc<Web>,
    mut stream: Stream,
    accept_key: String,
    leftover: Vec<u8>,
    peer: SocketAddr,
) {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let limits = web.hub.limits().clone();
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes));
    let ws =
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
    let (mut tx, mut rx) = ws.split();

    let (slot, signals) = match web.hub.register(peer, |id| welcome(&web, id)) {
        Ok(r) => r,
        Err(e) => {
            let (code, reason) = match e {
                RegisterError::AtCapacity => (CloseCode::Again, "Server at capacity"),
                RegisterError::ShuttingDown => (CloseCode::Away, "Server shutting down"),
            };
            log::warn!("refused a WebSocket from {peer}: {reason}");
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            if tx.close(Some(frame)).await.is_ok() {
                drain(&mut rx).await;
            }
            return;
        }
    };
    let id = slot.id;
    if churn_log(&web) {
        log::info!("client {} connected from {peer}", id.0);
    }
    let _leave = Leave {
        web: web.clone(),
        id,
    };
    web.app.client_connected_from(id, peer);

    let (cmd_tx, cmd_rx) = async_channel::bounded::<Pending>(COMMAND_QUEUE);
    let end = or(
        or(
            reader(&web, &slot, &mut rx, &cmd_tx),
            writer(&slot, &mut tx, &signals.wake),
        ),
        or(
            runner(&web, &slot, &cmd_rx, &signals.room),
            or(heartbeat(&web, &slot), async {
                if let Ok(Kill::Evicted) = signals.kill.recv().await {
                    // The close frame is queued: the writer sends it and ends the task with
                    // SentClose, unless the peer does not read; then this grace ends it.
                    let clock = &web.app.clock;
                    clock.sleep_until(clock.now() + CLOSE_GRACE).await;
                }
                End::Gone
            }),
        ),
    )
    .await;
    if let End::SentClose = end {
        drain(&mut rx).await;
    }
}

/// Reads until the peer's close reply or end of stream, at most [`CLOSE_GRACE`].
async fn drain(rx: &mut WebSocketReceiver<Stream>) {
    or(
        async { while let Some(Ok(_)) = rx.next().await {} },
        async {
            async_io::Timer::after(CLOSE_GRACE).await;
        },
    )
    .await;
}

struct Pending {
    cmd: Command,
    id: Option<Value>,
    ack: bool,
}

fn push_json(web: &Web, slot: &ClientSlot, v: &Value) {
    slot.push(web.app.clock.now(), Frame::Text(v.to_string().into()));
}

fn push_result(
    web: &Web,
    slot: &ClientSlot,
    result: &Result<Reply, ApiError>,
    id: Option<&Value>,
    ack: bool,
) {
    let wall = web.app.clock.wall();
    match result {
        Ok(reply) => match &reply.body {
            Some(Body::JsonFile { key, file, len }) => {
                slot.push(
                    web.app.clock.now(),
                    streamed(reply, key, file, *len, id, wall),
                );
            }
            _ => push_json(web, slot, &reply_frame(reply, id, wall)),
        },
        Err(e) => {
            if let Some(reply) = &e.reply {
                push_json(web, slot, &reply_frame(reply, id, wall));
            }
            push_json(web, slot, &error_frame(e, id, wall))
        }
    }
    if ack {
        push_json(web, slot, &ack_frame(result, id, wall));
    }
}

/// The reply frame with `data` = `{key: <file>}` as a streamed message: the frame is
/// serialized around a marker, which the file's bytes replace.
fn streamed(
    reply: &Reply,
    key: &str,
    file: &SharedFile,
    len: u64,
    id: Option<&Value>,
    wall: std::time::SystemTime,
) -> Frame {
    const MARK: &str = "\u{0}skylapse-streamed-body\u{0}";
    let mut frame = reply_frame(reply, id, wall);
    frame["data"] = Value::from(MARK);
    let text = frame.to_string();
    let quoted = Value::from(MARK).to_string();
    // The marker is ours and appears once (an id holding it would be escaped the same way, so
    // take the `data` member's: the first after `"data":`).
    let at = text
        .find(&format!("\"data\":{quoted}"))
        .map(|i| i + "\"data\":".len())
        .unwrap_or(0);
    let (before, after) = text.split_at(at);
    let after = after.strip_prefix(quoted.as_str()).unwrap_or(after);
    Frame::Streamed(Arc::new(StreamedText {
        prefix: format!("{before}{{{}:", Value::from(key)),
        file: file.clone(),
        len,
        suffix: format!("}}{after}"),
    }))
}

async fn reader(
    web: &Web,
    slot: &ClientSlot,
    rx: &mut WebSocketReceiver<Stream>,
    cmd_tx: &async_channel::Sender<Pending>,
) -> End {
    let clock = &web.app.clock;
    let limits = web.hub.limits();
    let mut bucket = TokenBucket::new(limits.rate_per_sec, limits.rate_burst, clock.now());
    let mut invalid: u32 = 0;
    let mut closing = false;
    loop {
        let msg = match rx.next().await {
            None => return End::Gone,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // RFC 6455 §7.4.1: a protocol violation is answered with 1002, text that is
                // not UTF-8 with 1007, an oversized message with 1009, each in a close frame.
                let (code, reason) = match e {
                    WsError::Capacity(_) => (1009, "Message too big"),
                    // The peer just went away (no close handshake): nobody to tell.
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        return End::Gone
                    }
                    WsError::Protocol(_) => (1002, "Protocol error"),
                    WsError::Utf8(_) => (1007, "Invalid UTF-8 in a text message"),
                    _ => return End::Gone,
                };
                log::debug!("client {} closed with {code}: {e}", slot.id.0);
                slot.push(clock.now(), Frame::Close(code, reason));
                // The stream is unusable now; the writer sends the close and ends the task.
                return pending().await;
            }
        };
        let now = clock.now();
        slot.touch(now);
        // Sizes only: a frame may carry a password (network_connect).
        log::trace!("client {} sent a {} byte frame", slot.id.0, msg.len());
        if closing {
            continue;
        }
        let problem = match msg {
            Message::Text(text) => handle_text(web, slot, &mut bucket, now, text.as_str(), cmd_tx),
            Message::Binary(_) => {
                let e = ApiError::new(ErrorCode::InvalidMessage, "Invalid message format");
                push_json(web, slot, &error_frame(&e, None, clock.wall()));
                true
            }
            // Pongs and pings only prove liveness (tungstenite answers pings itself).
            _ => false,
        };
        if problem {
            invalid += 1;
            if invalid > limits.max_invalid_messages {
                if churn_log(web) {
                    log::info!("client {} sent too many invalid messages", slot.id.0);
                }
                slot.push(now, Frame::Close(1008, "Too many invalid messages"));
                closing = true;
            }
        }
    }
}

/// Handles one text frame; returns true when it counts as an invalid message.
fn handle_text(
    web: &Web,
    slot: &ClientSlot,
    bucket: &mut TokenBucket,
    now: Instant,
    text: &str,
    cmd_tx: &async_channel::Sender<Pending>,
) -> bool {
    let wall = web.app.clock.wall();
    if !bucket.take(now) {
        let e = ApiError::new(ErrorCode::RateLimited, "Too many messages; slow down");
        push_json(web, slot, &error_frame(&e, None, wall));
        return true;
    }
    let env = match parse_envelope(text) {
        Ok(env) => env,
        Err(e) => {
            push_json(web, slot, &error_frame(&e, None, wall));
            return true;
        }
    };
    let id = env.id.as_ref();
    let cmd = match Command::parse(&env.kind, env.data) {
        Ok(c) => c,
        Err(e) => {
            push_json(web, slot, &error_frame(&e, id, wall));
            return true;
        }
    };
    match cmd {
        Command::Ping => {
            let reply = Reply::of(&Pong {
                timestamp: iso8601(wall),
            });
            push_result(web, slot, &Ok(reply), id, env.ack);
            false
        }
        Command::Subscribe(ref c) | Command::Unsubscribe(ref c) => {
            let mut channels = Vec::with_capacity(c.channels.len());
            for name in &c.channels {
                match Channel::parse(name) {
                    Some(ch) => channels.push(ch),
                    None => {
                        let known: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                        let shown: String =
                            name.chars().filter(|c| !c.is_control()).take(32).collect();
                        let e = ApiError::invalid(format!(
                            "Unknown channel: {shown} (known: {})",
                            known.join(", ")
                        ));
                        push_result(web, slot, &Err(e), id, env.ack);
                        return true;
                    }
                }
            }
            let names: Vec<String> = channels.iter().map(|c| c.as_str().to_string()).collect();
            let reply = if matches!(cmd, Command::Subscribe(_)) {
                slot.subscribe(&channels);
                let subscriptions = own(slot.subscriptions());
                Reply::of(&Subscribed {
                    channels: names.clone(),
                    subscriptions,
                })
            } else {
                slot.unsubscribe(&channels);
                let subscriptions = own(slot.subscriptions());
                Reply::of(&Unsubscribed {
                    channels: names.clone(),
                    subscriptions,
                })
            };
            let mut frame = reply_frame(&reply, id, wall);
            frame["channels"] = json!(names);
            push_json(web, slot, &frame);
            if env.ack {
                push_json(web, slot, &ack_frame(&Ok(reply), id, wall));
            }
            false
        }
        cmd => {
            let pending = Pending {
                cmd,
                id: env.id.clone(),
                ack: env.ack,
            };
            if cmd_tx.try_send(pending).is_err() {
                let e = ApiError::new(
                    ErrorCode::RateLimited,
                    "Too many commands in progress; wait for the replies",
                );
                push_result(web, slot, &Err(e), id, env.ack);
            }
            false
        }
    }
}

fn own(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(str::to_string).collect()
}

/// Runs commands one after another, in the order they arrived.
async fn runner(
    web: &Arc<Web>,
    slot: &ClientSlot,
    cmd_rx: &async_channel::Receiver<Pending>,
    room: &async_channel::Receiver<()>,
) -> End {
    while let Ok(p) = cmd_rx.recv().await {
        // A client that does not read its replies gets no more commands run until it does.
        slot.wait_for_room(room).await;
        let result = web
            .execute_detached(Origin::WebSocket(slot.id), p.cmd)
            .await;
        push_result(web, slot, &result, p.id.as_ref(), p.ack);
    }
    pending().await
}

async fn writer(
    slot: &ClientSlot,
    tx: &mut WebSocketSender<Stream>,
    wake: &async_channel::Receiver<()>,
) -> End {
    loop {
        let Some(frame) = slot.pop() else {
            if wake.recv().await.is_err() {
                return End::Gone;
            }
            continue;
        };
        let sent = match frame {
            Frame::Text(t) | Frame::Status(t) => tx.send(Message::Text(t)).await,
            Frame::Ping => tx.send(Message::Ping(Default::default())).await,
            Frame::Streamed(s) => send_streamed(slot, tx, &s).await,
            Frame::Close(code, reason) => {
                slot.sent();
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                return match tx.close(Some(frame)).await {
                    Ok(()) => End::SentClose,
                    Err(_) => End::Gone,
                };
            }
        };
        slot.sent();
        if sent.is_err() {
            return End::Gone;
        }
    }
}

/// Sends a [`StreamedText`] as one text message: the prefix in a first fragment, the file in
/// [`STREAM_CHUNK`] continuation fragments, the suffix in the final one. A file that shrank
/// cannot finish the message: an error (the connection is dropped).
async fn send_streamed(
    slot: &ClientSlot,
    tx: &mut WebSocketSender<Stream>,
    s: &StreamedText,
) -> Result<(), WsError> {
    use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use async_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    use async_tungstenite::tungstenite::Bytes;
    let fragment = |data: Vec<u8>, first: bool, last: bool| {
        let op = if first { Data::Text } else { Data::Continue };
        Message::Frame(WsFrame::message(Bytes::from(data), OpCode::Data(op), last))
    };
    tx.send(fragment(s.prefix.clone().into_bytes(), true, false))
        .await?;
    let mut done = 0u64;
    while done < s.len {
        let want = (STREAM_CHUNK as u64).min(s.len - done) as usize;
        let mut chunk = vec![0u8; want];
        let n = s.file.read_at(&mut chunk, done)?;
        if n == 0 {
            return Err(WsError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while being sent",
            )));
        }
        chunk.truncate(n);
        tx.send(fragment(chunk, false, false)).await?;
        done += n as u64;
        slot.progress();
    }
    tx.send(fragment(s.suffix.clone().into_bytes(), false, true))
        .await
}

/// WS ping every `ping_interval`; gone after `silence_timeout` without any frame.
async fn heartbeat(web: &Web, slot: &ClientSlot) -> End {
    let clock = &web.app.clock;
    let limits = web.hub.limits();
    let interval = limits.ping_interval.max(Duration::from_millis(100));
    // From the registration instant (before the welcome was queued), not from this task's
    // first poll, so the schedule does not depend on when the executor gets here; on the
    // clock's tick grid (the first ping 0.5…1.5 intervals in), so a ping shares its wake-up
    // with the hub's status_update instead of costing one of its own (issue 5).
    let mut next_ping = crate::clock::next_tick(
        clock.tick_anchor(),
        interval,
        slot.connected_at + interval / 2,
    );
    loop {
        let silent_at = slot.last_seen() + limits.silence_timeout;
        clock.sleep_until(next_ping.min(silent_at)).await;
        let now = clock.now();
        if now >= slot.last_seen() + limits.silence_timeout {
            if churn_log(web) {
                log::info!(
                    "client {} silent for {:?}; dropping",
                    slot.id.0,
                    limits.silence_timeout
                );
            }
            return End::Gone;
        }
        if now >= next_ping {
            slot.push(now, Frame::Ping);
            while next_ping <= now {
                next_ping += interval;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_bursts_then_refills_at_rate() {
        let t0 = crate::clock::test_t0();
        let mut b = TokenBucket::new(2, 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(400)));
        assert!(b.take(t0 + Duration::from_millis(500)));
        // Long idle refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn accept_key_is_rfc_6455s() {
        // The example of RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        // RFC 4648 §10 test vectors.
        for (input, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), encoded);
        }
    }
}
