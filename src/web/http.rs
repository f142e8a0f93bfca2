//! HTTP/1.1 on one connection: read a head (httparse) within the limits, route it, answer,
//! repeat while keep-alive holds.
//!
//! ```text
//!  Idle ──first byte (keep-alive timeout)──▶ Head ──complete (head timeout)──▶ Host? ──▶ Body ──▶ Respond
//!   ▲                                          │ >16 KiB → 431, slow → cut off   │ 421/400  │
//!   └──────────────────── keep-alive ◀─────────┴─────────────────────────────────┴──────────┘
//!                                              └─ Upgrade: websocket ──▶ ws::run (never back)
//! ```
//!
//! Timeouts use the app's [`Clock`](crate::clock::Clock), so tests can drive them. Each phase
//! is published to the connection table ([`conns`](super::conns)), which evicts idle and slow
//! connections first when it is full. A connection waiting for bytes holds no read buffer: it
//! waits for readability, then reads into a stack buffer and keeps only what arrived.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::AsyncWriteExt;

use super::conns::{ConnState, Phase, Refusal};
use super::host::HostError;
pub use super::message::*;
use super::{assets, rest, ws, Web, VERSION};
use crate::protocol::messages::Health;
use crate::protocol::{ApiError, ErrorCode};

enum ReadOutcome {
    /// A complete head; the body (if any) is read separately.
    Head(Request, usize),
    /// The peer closed before sending anything.
    Closed,
    Fail(Failure),
}

enum Failure {
    /// Respond with this and close.
    Respond(Response),
    /// Just close (timeout while idle, I/O error).
    Drop,
}

/// Waits (without a buffer) until the socket is readable, then reads what is there into a
/// stack chunk and appends it to `buf`: an idle or trickling connection holds only the bytes it
/// sent. `Ok(None)` when `deadline` passes first; `Ok(Some(0))` at end of stream.
async fn read_more(
    web: &Web,
    stream: &Async<TcpStream>,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> io::Result<Option<usize>> {
    use std::io::Read;
    loop {
        let timer = web.app.clock.sleep_until(deadline);
        let ready =
            futures_lite::future::or(async { stream.readable().await.map(|_| true) }, async {
                timer.await;
                Ok(false)
            })
            .await?;
        if !ready {
            return Ok(None);
        }
        let mut chunk = [0u8; 4096];
        let want = max.min(chunk.len());
        match stream.get_ref().read(&mut chunk[..want]) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(Some(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads one request head into `buf` (which may already hold pipelined bytes).
async fn read_head(
    web: &Web,
    stream: &Async<TcpStream>,
    buf: &mut Vec<u8>,
    first: bool,
    conn: &ConnState,
) -> ReadOutcome {
    let limits = web.hub.limits();
    let now = web.app.clock.now();
    // Waiting for the first byte of a kept-alive connection is idle time; once bytes arrive
    // (or on a fresh connection), the whole head must come within the head timeout.
    let mut started = first || !buf.is_empty();
    let mut deadline = if started {
        now + limits.head_timeout
    } else {
        conn.mark(Phase::Idle, now);
        now + limits.keepalive_timeout
    };
    if !buf.is_empty() {
        conn.mark(Phase::Head, now);
    }
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    conn.mark(Phase::Busy, web.app.clock.now());
                    let request = to_request(&req);
                    return match request {
                        Some(r) => ReadOutcome::Head(r, len),
                        None => ReadOutcome::Fail(Failure::Respond(
                            Response::error(
                                web,
                                400,
                                &ApiError::new(ErrorCode::InvalidMessage, "Bad request"),
                            )
                            .closing(),
                        )),
                    };
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return ReadOutcome::Fail(Failure::Respond(head_too_large(web)));
                }
                Err(_) => {
                    return ReadOutcome::Fail(Failure::Respond(
                        Response::error(
                            web,
                            400,
                            &ApiError::new(ErrorCode::InvalidMessage, "Malformed HTTP request"),
                        )
                        .closing(),
                    ));
                }
            }
        }
        if buf.len() >= limits.max_head_bytes {
            return ReadOutcome::Fail(Failure::Respond(head_too_large(web)));
        }
        let had = buf.len();
        let room = limits.max_head_bytes - had;
        match read_more(web, stream, buf, room, deadline).await {
            Ok(Some(0)) => {
                return if had == 0 {
                    ReadOutcome::Closed
                } else {
                    ReadOutcome::Fail(Failure::Drop)
                };
            }
            Ok(Some(_)) => {
                let now = web.app.clock.now();
                conn.mark(Phase::Head, now);
                if !started {
                    started = true;
                    deadline = now + limits.head_timeout;
                }
            }
            Ok(None) => {
                if started {
                    log::debug!("request head too slow; cutting the connection");
                }
                return ReadOutcome::Fail(Failure::Drop);
            }
            Err(_) => return ReadOutcome::Fail(Failure::Drop),
        }
    }
}

fn head_too_large(web: &Web) -> Response {
    Response::error(
        web,
        431,
        &ApiError::new(ErrorCode::PayloadTooLarge, "Request head too large"),
    )
    .closing()
}

/// Reads the body announced by Content-Length (chunked bodies are refused).
async fn read_body(
    web: &Web,
    stream: &Async<TcpStream>,
    req: &mut Request,
    buf: &mut Vec<u8>,
    conn: &ConnState,
) -> Result<(), Failure> {
    let limits = web.hub.limits();
    if req.header("transfer-encoding").is_some() {
        return Err(Failure::Respond(
            Response::error(
                web,
                411,
                &ApiError::invalid("Chunked request bodies are not supported; send Content-Length"),
            )
            .closing(),
        ));
    }
    let len = content_length(req).map_err(|msg| {
        Failure::Respond(Response::error(web, 400, &ApiError::invalid(msg)).closing())
    })?;
    if len > limits.max_body_bytes {
        return Err(Failure::Respond(
            Response::error(
                web,
                413,
                &ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("Request body over {} bytes", limits.max_body_bytes),
                ),
            )
            .closing(),
        ));
    }
    if len > buf.len() && req.header_has("expect", "100-continue") {
        // curl and others wait for this before sending a body.
        let mut w = stream;
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| Failure::Drop)?;
    }
    let deadline = web.app.clock.now() + limits.head_timeout;
    if buf.len() < len {
        // A slow body is as cheap to evict as a slow head.
        conn.mark(Phase::Head, web.app.clock.now());
    }
    while buf.len() < len {
        let want = len - buf.len();
        match read_more(web, stream, buf, want, deadline).await {
            Ok(Some(n)) if n > 0 => conn.touch(web.app.clock.now()),
            _ => return Err(Failure::Drop),
        }
    }
    conn.mark(Phase::Busy, web.app.clock.now());
    req.body = buf.drain(..len).collect();
    Ok(())
}

/// Serves one TCP connection until it closes, times out, or becomes a WebSocket. `conn` is its
/// entry in the connection table (`id` its key there), where it publishes its phase.
pub async fn connection(
    web: &Arc<Web>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    id: u64,
    conn: &ConnState,
) {
    let local = match stream.get_ref().local_addr() {
        Ok(a) => a.ip(),
        Err(_) => return,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let (mut req, head_len) = match read_head(web, &stream, &mut buf, first, conn).await {
            ReadOutcome::Head(r, n) => (r, n),
            ReadOutcome::Closed => return,
            ReadOutcome::Fail(Failure::Drop) => return,
            ReadOutcome::Fail(Failure::Respond(resp)) => {
                let _ = write_response(web, &stream, &resp, false).await;
                return;
            }
        };
        first = false;
        buf.drain(..head_len);

        if let Err(resp) = check_host(web, &req, local, peer) {
            let _ = write_response(web, &stream, &resp, false).await;
            return;
        }

        if ws::is_upgrade(&req) && (req.path == "/" || req.path == "/ws") {
            match ws::check(web, &req) {
                Ok(key) => {
                    // From here the hub counts it: it leaves the HTTP connection table.
                    web.upgraded(id);
                    let leftover = std::mem::take(&mut buf);
                    ws::run(web.clone(), stream, key, leftover, peer).await;
                }
                Err(resp) => {
                    let _ = write_response(web, &stream, &resp.closing(), false).await;
                }
            }
            return;
        }

        if req.path == super::liveview::STREAM_PATH {
            // A long-lived response, like a WebSocket: the connection is not reused.
            super::liveview::serve(web, &req, stream, id).await;
            return;
        }

        if let Err(f) = read_body(web, &stream, &mut req, &mut buf, conn).await {
            if let Failure::Respond(resp) = f {
                let _ = write_response(web, &stream, &resp, false).await;
            }
            return;
        }
        let keep_alive = req.keep_alive();
        let head_only = req.method == "HEAD";
        let mut resp = route(web, req).await;
        if !keep_alive {
            resp.close = true;
        }
        if write_response(web, &stream, &resp, head_only)
            .await
            .is_err()
            || resp.close
        {
            return;
        }
        // Keep-alive: let go of a buffer that grew for a big request.
        if buf.is_empty() {
            buf = Vec::new();
        }
    }
}

/// Host validation (DNS rebinding): 400 for a missing, repeated or malformed Host, 421 for a
/// name that is not this device's.
fn check_host(
    web: &Web,
    req: &Request,
    local: std::net::IpAddr,
    peer: SocketAddr,
) -> Result<(), Response> {
    let now = web.app.clock.now();
    let repeated = req.headers.iter().filter(|(n, _)| n == "host").count() > 1;
    let verdict = if repeated {
        Err(HostError::Malformed)
    } else {
        web.hosts.check(req.header("host"), local, req.minor, now)
    };
    let Err(e) = verdict else {
        return Ok(());
    };
    if web.hub.refusals().note(Refusal::ForeignHost, now) {
        let shown: String = req
            .header("host")
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        log::warn!("refused a request from {peer} for host {shown:?} ({e:?})");
    }
    let resp = match e {
        HostError::Malformed => Response::error(
            web,
            400,
            &ApiError::new(
                ErrorCode::InvalidMessage,
                "Missing or malformed Host header",
            ),
        ),
        HostError::Foreign => Response::error(
            web,
            421,
            &ApiError::new(
                ErrorCode::PermissionDenied,
                "Unknown host: use the Pi's address or name (or start skylapse with --allow-host)",
            ),
        ),
    };
    Err(resp.closing())
}

async fn route(web: &Arc<Web>, req: Request) -> Response {
    let get = req.method == "GET" || req.method == "HEAD";
    if req.path == "/health" {
        if !get {
            return method_not_allowed(web, "GET, HEAD");
        }
        return health(web);
    }
    if req.path.starts_with("/api/") || req.path == "/api" {
        if !web.token_ok(req.bearer_token().as_deref()) {
            return unauthorized(web);
        }
        // A foreign page can send "simple" cross-site POSTs without a preflight; refuse
        // changes from browser origins that could not open the WebSocket either.
        if !get && !ws::origin_allowed(web, &req) {
            return Response::error(
                web,
                403,
                &ApiError::new(ErrorCode::PermissionDenied, "Origin not allowed"),
            );
        }
        return rest_detached(web, req).await;
    }
    if !get {
        return method_not_allowed(web, "GET, HEAD");
    }
    match &web.app.config.static_dir {
        Some(dir) => assets::serve_dir(web, dir, &req),
        None => assets::serve_embedded(web, &req),
    }
}

/// Runs the REST handler in its own task: evicting (or losing) the connection meanwhile never
/// cancels a command half-way, and the connection's own future stays small while it idles.
async fn rest_detached(web: &Arc<Web>, req: Request) -> Response {
    let (tx, rx) = async_channel::bounded(1);
    let w = web.clone();
    web.spawn_detached(async move {
        let resp = rest::handle(&w, &req).await;
        let _ = tx.send(resp).await;
    });
    match rx.recv().await {
        Ok(r) => r,
        Err(_) => Response::error(web, 500, &ApiError::system("The request was interrupted")),
    }
}

pub fn unauthorized(web: &Web) -> Response {
    Response::error(
        web,
        401,
        &ApiError::new(
            ErrorCode::PermissionDenied,
            "A valid bearer token is required",
        ),
    )
    .header("WWW-Authenticate", "Bearer")
}

pub fn method_not_allowed(web: &Web, allow: &str) -> Response {
    Response::error(
        web,
        405,
        &ApiError::new(ErrorCode::InvalidMessage, "Method not allowed"),
    )
    .header("Allow", allow)
}

fn health(web: &Web) -> Response {
    let uptime = web.app.clock.now().saturating_duration_since(web.started);
    Response::json(
        200,
        &Health {
            status: "ok".into(),
            version: VERSION.into(),
            uptime: uptime.as_secs_f64(),
            clients: web.hub.client_count(),
            timestamp: crate::util::iso8601(web.app.clock.wall()),
        },
    )
    .header("Cache-Control", "no-store")
}

/// Writes a response (head + body) within the head timeout.
pub async fn write_response(
    web: &Web,
    stream: &Async<TcpStream>,
    resp: &Response,
    head_only: bool,
) -> io::Result<()> {
    let len = match &resp.body {
        Payload::Bytes(b) => b.len() as u64,
        Payload::Static(b) => b.len() as u64,
        Payload::File(_, n) => *n,
        Payload::Wrapped {
            prefix,
            len,
            suffix,
            ..
        } => prefix.len() as u64 + len + suffix.len() as u64,
    };
    let mut head = if resp.status == 304 || resp.status == 204 {
        format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))
    } else {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            resp.status,
            reason(resp.status),
            resp.content_type,
            len
        )
    };
    for (n, v) in &resp.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(if resp.close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    // A large body (a 50 MB report over a weak Wi-Fi link) gets time for a slow but moving
    // reader: at least 64 KiB/s on top of the usual allowance.
    let deadline = web.app.clock.now()
        + web
            .hub
            .limits()
            .head_timeout
            .max(web.hub.limits().keepalive_timeout)
        + Duration::from_secs(len / (64 * 1024));
    let timer = web.app.clock.sleep_until(deadline);
    let write = async {
        let mut w = stream;
        if head_only {
            w.write_all(head.as_bytes()).await?;
            return w.flush().await;
        }
        match &resp.body {
            Payload::Bytes(b) => {
                // One write for small answers (fewer syscalls, one TCP segment).
                let mut all = head.into_bytes();
                all.extend_from_slice(b);
                w.write_all(&all).await?;
            }
            Payload::Static(b) => {
                w.write_all(head.as_bytes()).await?;
                w.write_all(b).await?;
            }
            Payload::File(path, n) => {
                w.write_all(head.as_bytes()).await?;
                let f = std::fs::File::open(path)?;
                send_from(
                    &mut w,
                    |buf, at| std::os::unix::fs::FileExt::read_at(&f, buf, at),
                    *n,
                )
                .await?;
            }
            Payload::Wrapped {
                prefix,
                file,
                len,
                suffix,
            } => {
                let mut first = head.into_bytes();
                first.extend_from_slice(prefix);
                w.write_all(&first).await?;
                send_from(&mut w, |buf, at| file.read_at(buf, at), *len).await?;
                w.write_all(suffix).await?;
            }
        }
        w.flush().await
    };
    futures_lite::future::or(write, async {
        timer.await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "response write timed out",
        ))
    })
    .await
}

/// Streams `len` bytes of a file in small chunks (reads from local storage are short; no
/// thread pool); `read_at(buf, offset)` reads the file.
async fn send_from(
    w: &mut &Async<TcpStream>,
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    len: u64,
) -> io::Result<()> {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut done = 0u64;
    while done < len {
        let want = (chunk.len() as u64).min(len - done) as usize;
        let n = read_at(&mut chunk[..want], done)?;
        if n == 0 {
            // The file shrank under us: the Content-Length is now a lie, so cut the connection.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        w.write_all(&chunk[..n]).await?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: query.map(String::from),
            minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn gzip_negotiation() {
        assert!(req(&[("accept-encoding", "gzip, deflate, br")], None).accepts_gzip());
        assert!(req(&[("accept-encoding", "br;q=1.0, GZIP;q=0.5")], None).accepts_gzip());
        assert!(!req(&[("accept-encoding", "gzip;q=0")], None).accepts_gzip());
        assert!(!req(&[("accept-encoding", "identity")], None).accepts_gzip());
        assert!(!req(&[], None).accepts_gzip());
    }

    #[test]
    fn bearer_from_header_or_query() {
        assert_eq!(
            req(&[("authorization", "Bearer abc")], None).bearer_token(),
            Some("abc".into())
        );
        assert_eq!(
            req(&[], Some("x=1&token=a%20b")).bearer_token(),
            Some("a b".into())
        );
        assert_eq!(
            req(&[("authorization", "Basic abc")], None).bearer_token(),
            None
        );
    }

    #[test]
    fn percent_decoding_rejects_bad_escapes() {
        assert_eq!(percent_decode(b"%2e%2E/a").unwrap(), b"../a");
        assert!(percent_decode(b"%2").is_none());
        assert!(percent_decode(b"%zz").is_none());
    }
}
