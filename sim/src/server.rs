//! Connection handling for every TCP listener: accept, the connection cap and offline modes,
//! TLS, the request loop (log → faults → route → paced write), and hang-up detection.
//!
//! ```text
//!   accept ─▶ over the cap? RST │ blackhole? hold silently │ else serve:
//!   serve: read request ─▶ log (receive instants) ─▶ faults (latency, respond, reset, hang,
//!          truncate) ─▶ 502 wedge? ─▶ route (raced against client hang-up) ─▶ write
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;

use super::http::{self, read_request, ReadError, Request, Response, Stream};
use super::{
    ccapi, control, faults, ssdp, FaultAction, Listener, OfflineMode, SecondClient, Shared,
};

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: Async<TcpListener>, kind: Listener) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::debug!("camera-sim: accept on {kind:?}: {e}");
                async_io::Timer::after(Duration::from_millis(20)).await;
                continue;
            }
        };
        let me = shared.clone();
        shared.spawn_detached(async move {
            // A bug in a handler must cost one connection, never the whole simulator.
            use futures_lite::FutureExt;
            let served = std::panic::AssertUnwindSafe(connection(me, sock, peer, kind));
            if served.catch_unwind().await.is_err() {
                log::error!("camera-sim: a {kind:?} connection handler panicked");
            }
        });
    }
}

struct ConnCount<'a>(&'a AtomicUsize);
impl Drop for ConnCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(
    shared: Arc<Shared>,
    sock: Async<std::net::TcpStream>,
    peer: SocketAddr,
    kind: Listener,
) {
    let _ = sock.get_ref().set_nodelay(true);
    if kind == Listener::Control || kind == Listener::Description {
        let local = sock.get_ref().local_addr().unwrap_or(peer);
        let epoch = shared.kill.generation();
        let killed = shared.kill.changed_since(epoch);
        let serving = serve(&shared, Stream::Plain(sock), peer, local, kind);
        if kind == Listener::Control {
            serving.await;
        } else {
            futures_lite::future::or(serving, killed).await;
        }
        return;
    }
    let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let _count = ConnCount(&shared.connections);
    let epoch = shared.kill.generation();
    let (offline, max, second) = {
        let g = shared.lock();
        (g.net.offline, g.faults.max_connections, g.second_client)
    };
    if max.is_some_and(|m| n > m) || second == Some(SecondClient::Refuse) {
        http::set_linger_zero(&sock);
        return;
    }
    if offline == Some(OfflineMode::Blackhole) {
        // Hold the socket without a word until the camera changes state.
        shared.kill.changed_since(epoch).await;
        http::set_linger_zero(&sock);
        return;
    }
    let local = sock.get_ref().local_addr().unwrap_or(peer);
    use std::os::fd::AsRawFd;
    let fd = sock.get_ref().as_raw_fd();
    let stream = if kind == Listener::Https {
        let config = shared
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone();
        match Stream::tls(sock, config) {
            Ok(s) => s,
            Err(_) => return,
        }
    } else {
        Stream::Plain(sock)
    };
    let killed = async {
        shared.kill.changed_since(epoch).await;
        // The stream is still open here (the serving future is dropped after this): make its
        // close an RST, as a rebooting camera's would be.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: fd is owned by the stream that is still alive in the other branch.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    };
    futures_lite::future::or(serve(&shared, stream, peer, local, kind), killed).await;
}

async fn serve(
    shared: &Arc<Shared>,
    mut stream: Stream,
    peer: SocketAddr,
    local: SocketAddr,
    kind: Listener,
) {
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut stream, &mut buf, peer, local).await {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, msg)) => {
                let resp = Response::error(status, msg);
                let _ = stream.write_all(&resp.head_bytes(false, false)).await;
                return;
            }
        };
        let seq = shared.log.push(&req, kind);
        let decision = if kind == Listener::Control {
            faults::Decision::default()
        } else {
            let now = shared.now();
            let mut g = shared.lock();
            g.last_activity = now;
            g.faults.decide(&req.method, &req.path)
        };
        if !decision.latency.is_zero() {
            shared.sleep(decision.latency).await;
        }
        let lose_reply = decision.terminal == Some(FaultAction::LoseReply);
        let (forced, truncate) = match decision.terminal {
            Some(FaultAction::Reset) => {
                stream.reset();
                return;
            }
            Some(FaultAction::Hang) => {
                // Say nothing until the client gives up.
                wait_hangup(&mut stream, &mut buf).await;
                return;
            }
            Some(FaultAction::Respond { status, message }) => {
                (Some(Response::error(status, &message)), None)
            }
            Some(FaultAction::TruncateBody(n)) => (None, Some(n)),
            Some(FaultAction::Latency(_) | FaultAction::LoseReply) | None => (None, None),
        };
        let resp = match forced {
            Some(r) => r,
            None if kind != Listener::Description
                && kind != Listener::Control
                && shared.lock().second_client == Some(SecondClient::Busy) =>
            {
                Response::error(503, "Device busy")
            }
            None if kind != Listener::Control && shared.lock().faults.wedged_502 => {
                Response::bytes(
                    502,
                    "text/html",
                    b"<html><body>502 Bad Gateway</body></html>".to_vec(),
                )
            }
            None => {
                // Run the handler, but stop if the client hangs up meanwhile (so a long poll
                // whose client vanished does not keep the poll slot).
                let handler = route(shared, &req, kind);
                let hangup = wait_hangup(&mut stream, &mut buf);
                let raced = futures_lite::future::or(async { Some(handler.await) }, async {
                    hangup.await;
                    None
                })
                .await;
                match raced {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        if lose_reply {
            // The handler ran (the camera did the work); the answer never arrives.
            shared.log.set_status(seq, resp.status);
            stream.reset();
            return;
        }
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        let keep_alive = req.keep_alive;
        let bytes = resp.head_bytes(keep_alive, head_only);
        if let Some(n) = truncate {
            let head_len = bytes.len() - if head_only { 0 } else { resp.body.len() };
            let cut = (head_len + n).min(bytes.len());
            let _ = stream.write_all(&bytes[..cut]).await;
            shared.log.set_status(seq, resp.status);
            stream.reset();
            return;
        }
        let bandwidth = match kind {
            Listener::Https | Listener::Http => shared.lock().bandwidth,
            _ => None,
        };
        if write_paced(&mut stream, &bytes, bandwidth).await.is_err() {
            return;
        }
        shared.log.set_status(seq, resp.status);
        if let (Some(body), false) = (resp.stream, head_only) {
            // One chunk per item until the stream ends (or the client leaves: write fails).
            let mut body = body.0;
            while let Some(part) = futures_lite::StreamExt::next(&mut body).await {
                if part.is_empty() {
                    continue;
                }
                let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
                chunk.extend_from_slice(&part);
                chunk.extend_from_slice(b"\r\n");
                if write_paced(&mut stream, &chunk, bandwidth).await.is_err() {
                    return;
                }
            }
            if stream.write_all(b"0\r\n\r\n").await.is_err() {
                return;
            }
        }
        if !keep_alive {
            return;
        }
    }
}

/// Writes `bytes`, at most `bandwidth` bytes/s when set (real time: a link property).
async fn write_paced(stream: &mut Stream, bytes: &[u8], bandwidth: Option<u64>) -> io::Result<()> {
    let Some(bps) = bandwidth.filter(|b| *b > 0) else {
        return stream.write_all(bytes).await;
    };
    // Chunks of ~20 ms of transfer, so progress is smooth without a wake-up per packet.
    let chunk = ((bps / 50) as usize).clamp(512, 256 * 1024);
    let start = Instant::now();
    let mut sent = 0usize;
    for part in bytes.chunks(chunk) {
        stream.write_all(part).await?;
        sent += part.len();
        let due = start + Duration::from_secs_f64(sent as f64 / bps as f64);
        async_io::Timer::at(due).await;
    }
    Ok(())
}

/// Resolves when the peer closes; keeps any pipelined bytes in `buf` (bounded).
async fn wait_hangup(stream: &mut Stream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() > http::MAX_HEAD + http::MAX_BODY {
            return futures_lite::future::pending().await;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn route(shared: &Arc<Shared>, req: &Request, kind: Listener) -> Response {
    match kind {
        Listener::Https | Listener::Http => ccapi::route(shared, req, kind).await,
        Listener::Description => ssdp::description(shared, req),
        Listener::Control => control::route(shared, req).await,
    }
}
