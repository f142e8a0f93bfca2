//! The HTTP message as the server keeps it: a parsed request (head fields, query, body) and a
//! response (status, headers, body), with the small parsing rules they need (percent-decoding,
//! Content-Length, status reasons). No I/O: [`super::http`] reads and writes them.

use std::path::PathBuf;

use super::Web;
use crate::protocol::{rest_error_body, ApiError};

/// A parsed request. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path part of the target, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    /// HTTP/1.x minor version.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the header's comma-separated list contains `token` (case-insensitive).
    pub fn header_has(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key)
                .then(|| percent_decode(v.replace('+', " ").as_bytes()))
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
        })
    }

    pub(super) fn keep_alive(&self) -> bool {
        if self.header_has("connection", "close") {
            false
        } else {
            self.minor >= 1 || self.header_has("connection", "keep-alive")
        }
    }

    /// `Authorization: Bearer X`, or `?token=X` (browsers cannot set headers on WebSockets).
    pub fn bearer_token(&self) -> Option<String> {
        if let Some(auth) = self.header("authorization") {
            let mut parts = auth.splitn(2, ' ');
            if parts
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            {
                return parts.next().map(|t| t.trim().to_string());
            }
        }
        self.query_param("token")
    }

    pub fn accepts_gzip(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == "accept-encoding")
            .flat_map(|(_, v)| v.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let q_zero = parts.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                });
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
            })
    }
}

/// Decodes `%XX`; `None` on a malformed escape.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A response body.
pub enum Payload {
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    File(PathBuf, u64),
    /// `prefix`, then `len` bytes of an open file, then `suffix` (a report's JSON wrapped in
    /// its reply object), streamed in small chunks.
    Wrapped {
        prefix: Vec<u8>,
        file: crate::protocol::SharedFile,
        len: u64,
        suffix: Vec<u8>,
    },
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Payload,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        // Serializing our own types cannot fail (string keys only); `null` if it ever did.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Payload::Bytes(body),
            close: false,
        }
    }

    pub fn error(web: &Web, status: u16, err: &ApiError) -> Response {
        Response::json(status, &rest_error_body(err, web.app.clock.wall()))
    }

    pub fn api_error(web: &Web, err: &ApiError) -> Response {
        Response::error(web, err.code.http_status(), err)
    }

    pub fn not_found(web: &Web) -> Response {
        Response::error(web, 404, &ApiError::not_found("Not found"))
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        421 => "Misdirected Request",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Header fields a request head may have (more: 431).
pub const MAX_HEADERS: usize = 40;

/// A parsed head as the server keeps it (`None`: no method or target).
pub fn to_request(req: &httparse::Request<'_, '_>) -> Option<Request> {
    let method = req.method?.to_string();
    let target = req.path?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    Some(Request {
        method,
        path,
        query,
        minor: req.version.unwrap_or(1),
        headers,
        body: Vec::new(),
    })
}

/// The body length from `Content-Length`: absent is 0; repeated fields (or a list) must all
/// agree (RFC 9112 §6.3: differing values are an unrecoverable error, answered with 400).
pub fn content_length(req: &Request) -> Result<usize, &'static str> {
    let mut len: Option<usize> = None;
    for (_, v) in req.headers.iter().filter(|(n, _)| n == "content-length") {
        for item in v.split(',') {
            let item = item.trim();
            if item.is_empty() || item.len() > 18 || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err("Bad Content-Length");
            }
            let n: usize = item.parse().map_err(|_| "Bad Content-Length")?;
            if len.is_some_and(|l| l != n) {
                return Err("Conflicting Content-Length values");
            }
            len = Some(n);
        }
    }
    Ok(len.unwrap_or(0))
}
