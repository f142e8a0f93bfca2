//! A minimal HTTP/1.1 server over async-io: keep-alive, Content-Length bodies, optional TLS
//! (rustls server driven by hand, since the stack has no async TLS adapter).
//!
//! Only what a camera needs: no chunked request bodies (refused with 411), one request at a
//! time per connection, a hard cap on head and body sizes so a client cannot grow memory.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Largest request head we accept (a camera is not a general web server).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body we accept.
pub const MAX_BODY: usize = 1024 * 1024;

/// A connected socket, plain or TLS.
pub enum Stream {
    Plain(Async<TcpStream>),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    sock: Async<TcpStream>,
    conn: rustls::ServerConnection,
    /// The kernel's receive instant (SO_TIMESTAMPNS) of the last bytes read from the socket.
    last_rx: Option<Instant>,
}

impl Stream {
    pub fn tls(sock: Async<TcpStream>, config: Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        enable_rx_timestamps(&sock);
        Ok(Stream::Tls(Box::new(TlsStream {
            sock,
            conn,
            last_rx: None,
        })))
    }

    /// When the kernel received the last bytes this stream read (TLS streams only; `None`
    /// when the kernel gave no timestamp). Unlike an `Instant::now()` after the read, it does
    /// not include the simulator's own wake-up: a camera is a device with its own CPU, not a
    /// thread that shares the service's.
    pub fn last_rx(&self) -> Option<Instant> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t.last_rx,
        }
    }

    pub fn socket(&self) -> &Async<TcpStream> {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// Reads some plaintext; `Ok(0)` means the peer closed.
    pub async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(out).await,
            Stream::Tls(t) => t.read(out).await,
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Stream::Tls(t) => t.write_all(data).await,
        }
    }

    /// Closes the connection with a TCP RST (SO_LINGER 0), the way a wedged camera does.
    pub fn reset(self) {
        set_linger_zero(self.socket());
        drop(self);
    }
}

/// Asks the kernel to timestamp received data (SO_TIMESTAMPNS, CLOCK_REALTIME).
fn enable_rx_timestamps(sock: &Async<TcpStream>) {
    set_socket_option(sock, libc::SO_TIMESTAMPNS, &(1 as libc::c_int));
}

/// One non-blocking `recvmsg` that also returns the kernel's receive timestamp of the data
/// (for TCP, of the last segment read), placed on the monotonic clock.
fn recv_stamped(sock: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
    use std::os::fd::AsRawFd;
    // Room for one cmsg carrying a timespec (and some slack).
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: iov points into `buf`, control into `control`, both alive for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walks the control buffer the kernel filled, with the libc CMSG macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp.and_then(realtime_to_instant)))
}

/// A CLOCK_REALTIME timestamp (in the recent past) as a monotonic `Instant`, through a
/// reading of both clocks now (a wall-clock step between the two would skew it; the
/// benchmarks that read it run for minutes, the stamps are microseconds old).
fn realtime_to_instant(ts: libc::timespec) -> Option<Instant> {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::new(u64::try_from(ts.tv_sec).ok()?, ts.tv_nsec as u32);
    let (wall, mono) = (std::time::SystemTime::now(), Instant::now());
    match wall.duration_since(at) {
        Ok(ago) => mono.checked_sub(ago),
        // Stamped "after now": the wall clock moved; the read instant is the best we have.
        Err(_) => Some(mono),
    }
}

/// SO_LINGER {on, 0}: the close that follows sends RST instead of FIN.
pub fn set_linger_zero(sock: &Async<TcpStream>) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(sock, libc::SO_LINGER, &linger);
}

/// `setsockopt(SOL_SOCKET, name, value)` on `sock`, best effort.
fn set_socket_option<T>(sock: &Async<TcpStream>, name: libc::c_int, value: &T) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd owned by `sock`; `value` is a live `T` and its exact size is passed.
    unsafe {
        libc::setsockopt(
            sock.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

impl TlsStream {
    async fn flush_tls(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        while self.conn.wants_write() {
            buf.clear();
            self.conn.write_tls(&mut buf)?;
            (&self.sock).write_all(&buf).await?;
        }
        Ok(())
    }

    async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut raw = vec![0u8; 16 * 1024];
        loop {
            match self.conn.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.flush_tls().await?;
            let (n, rx) = self.sock.read_with(|s| recv_stamped(s, &mut raw)).await?;
            if rx.is_some() {
                self.last_rx = rx;
            }
            if n == 0 {
                return Ok(0);
            }
            let mut slice = &raw[..n];
            while !slice.is_empty() {
                self.conn.read_tls(&mut slice)?;
                if let Err(e) = self.conn.process_new_packets() {
                    // Send the alert, then give up on this connection.
                    let _ = self.flush_tls().await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            self.flush_tls().await?;
        }
    }

    async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        // rustls takes only up to its buffer limit per call: encrypt, drain, repeat.
        while !data.is_empty() {
            let n = self.conn.writer().write(data)?;
            data = &data[n..];
            self.flush_tls().await?;
        }
        Ok(())
    }
}

/// One parsed request. `head_at`/`body_at` are real monotonic instants (`Instant::now()`),
/// stamped as soon as the head, then the body, were completely received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub head_at: Instant,
    pub body_at: Instant,
    /// The kernel's receive instant of the bytes that completed the request (TLS only).
    pub rx_at: Option<Instant>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` in the query string (no percent-decoding: CCAPI values are plain).
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }
}

/// What went wrong reading a request.
pub enum ReadError {
    /// The peer closed (or reset) between requests: not an error worth answering.
    Closed,
    /// Bad request: answer with this status and message, then close.
    Bad(u16, &'static str),
}

/// Reads one request from `stream`, using `buf` as the carry-over buffer between requests.
pub async fn read_request(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Request, ReadError> {
    let mut chunk = [0u8; 4096];
    loop {
        // Parse what we have first: a pipelined request may already be buffered.
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    // Stamp first: benchmarks read this instant.
                    let head_at = Instant::now();
                    let head = Head::from(&req);
                    return finish_request(stream, buf, head, head_len, head_at, peer, local).await;
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return Err(ReadError::Bad(431, "Request header too large"));
                    }
                }
                Err(_) => return Err(ReadError::Bad(400, "Bad request")),
            }
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The owned parts of a parsed request head.
struct Head {
    method: String,
    path: String,
    query: String,
    version: u8,
    headers: Vec<(String, String)>,
}

impl Head {
    fn from(req: &httparse::Request<'_, '_>) -> Head {
        let target = req.path.unwrap_or("/");
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target.to_string(), String::new()),
        };
        Head {
            method: req.method.unwrap_or("").to_string(),
            path,
            query,
            version: req.version.unwrap_or(1),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
        }
    }
}

async fn finish_request(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    head: Head,
    head_len: usize,
    head_at: Instant,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Request, ReadError> {
    let Head {
        method,
        path,
        query,
        version,
        headers,
    } = head;
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let chunked = match find("transfer-encoding") {
        None => false,
        Some(v) if v == "identity" => false,
        Some(v) if v == "chunked" => true,
        Some(_) => return Err(ReadError::Bad(411, "Length required")),
    };
    let content_length = match find("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(400, "Bad request"))?,
        None => 0,
    };
    if content_length > MAX_BODY {
        return Err(ReadError::Bad(413, "Payload too large"));
    }
    let keep_alive = match find("connection") {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == 1,
    };
    buf.drain(..head_len);
    if chunked {
        let body = read_chunked(stream, buf).await?;
        return Ok(Request {
            method,
            path,
            query,
            headers,
            body,
            head_at,
            body_at: Instant::now(),
            rx_at: stream.last_rx(),
            peer,
            local,
            keep_alive,
        });
    }
    if content_length > buf.len() && find("expect").is_some_and(|v| v == "100-continue") {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| ReadError::Closed)?;
    }
    let mut chunk = [0u8; 8192];
    while buf.len() < content_length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body_at = if content_length == 0 {
        head_at
    } else {
        Instant::now()
    };
    let body: Vec<u8> = buf.drain(..content_length).collect();
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
        head_at,
        body_at,
        rx_at: stream.last_rx(),
        peer,
        local,
        keep_alive,
    })
}

/// Decodes a chunked body from `buf` (reading more as needed); trailers are skipped.
async fn read_chunked(stream: &mut Stream, buf: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Need a full size line.
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > 1024 {
                return Err(ReadError::Bad(400, "Bad request"));
            }
            fill(stream, buf, &mut chunk).await?;
        };
        let line = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| ReadError::Bad(400, "Bad request"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| ReadError::Bad(400, "Bad request"))?;
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Bad(413, "Payload too large"));
        }
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.drain(..i + 2);
                    if i == 0 {
                        return Ok(body);
                    }
                    continue;
                }
                if buf.len() > MAX_HEAD {
                    return Err(ReadError::Bad(400, "Bad request"));
                }
                fill(stream, buf, &mut chunk).await?;
            }
        }
        while buf.len() < size + 2 {
            fill(stream, buf, &mut chunk).await?;
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(ReadError::Bad(400, "Bad request"));
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

async fn fill(stream: &mut Stream, buf: &mut Vec<u8>, chunk: &mut [u8]) -> Result<(), ReadError> {
    let n = stream.read(chunk).await.map_err(|_| ReadError::Closed)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// A response to write.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A body sent with chunked transfer encoding, one chunk per item, instead of `body`
    /// (live-view scroll streams).
    pub stream: Option<BodyStream>,
}

/// The parts of a streamed body.
pub struct BodyStream(pub std::pin::Pin<Box<dyn futures_lite::Stream<Item = Vec<u8>> + Send>>);

impl BodyStream {
    pub fn new(s: impl futures_lite::Stream<Item = Vec<u8>> + Send + 'static) -> BodyStream {
        BodyStream(Box::pin(s))
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
            stream: None,
        }
    }

    pub fn ok(value: serde_json::Value) -> Response {
        Response::json(200, &value)
    }

    /// A CCAPI error: `{"message": "<token>"}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "message": message }))
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
            stream: None,
        }
    }

    /// A chunked response whose chunks are `stream`'s items.
    pub fn stream(status: u16, content_type: &'static str, stream: BodyStream) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Vec::new(),
            stream: Some(stream),
        }
    }

    pub fn with_header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.to_string(), value));
        self
    }

    /// The head and body as they go on the wire.
    pub fn head_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let length = match self.stream {
            Some(_) => "Transfer-Encoding: chunked".to_string(),
            None => format!("Content-Length: {}", self.body.len()),
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n{length}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            if keep_alive { "keep-alive" } else { "close" }
        );
        for (k, v) in &self.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
