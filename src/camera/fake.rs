//! A tiny HTTPS CCAPI responder on loopback for the client's unit tests (TLS pinning, catalog
//! fallback, error mapping). The faithful peer is the simulator (`crate::sim`); this one only
//! answers a fixed route table, so the client can be tested before and apart from it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Route → (status, body); status 0 = never answer.
pub type Routes = HashMap<String, (u16, String)>;

pub struct FakeCamera {
    pub addr: SocketAddr,
    pub cert_der: Vec<u8>,
    /// Cleared: every connection and request is dropped (a camera gone from the network).
    pub online: Arc<AtomicBool>,
}

/// Answers `routes` over HTTPS with a fresh self-signed certificate until the process ends.
pub fn serve(routes: Routes) -> FakeCamera {
    let ck = rcgen::generate_simple_self_signed(vec!["Canon Camera".into()]).unwrap();
    let cert_der = ck.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    let online = Arc::new(AtomicBool::new(true));
    let on = online.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if !on.load(Ordering::SeqCst) {
                continue;
            }
            let (config, routes, on) = (config.clone(), routes.clone(), on.clone());
            std::thread::spawn(move || connection(stream, config, &routes, &on));
        }
    });
    FakeCamera {
        addr,
        cert_der,
        online,
    }
}

fn connection(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &Routes,
    online: &AtomicBool,
) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
    loop {
        let mut line = String::new();
        if tls.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if tls.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if tls.read_exact(&mut body).is_err() {
            return;
        }
        if !online.load(Ordering::SeqCst) {
            return;
        }
        let key = format!("{method} {target}");
        let (status, text) = routes
            .get(&key)
            .cloned()
            .unwrap_or((404, r#"{"message":"URL not found"}"#.into()));
        if status == 0 {
            // A hung camera: read the request, never answer.
            std::thread::park_timeout(std::time::Duration::from_secs(5)); // hang (a test fake)
            return;
        }
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let w = tls.get_mut();
        if w.write_all(resp.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Routes of a small R50-like camera with serial `serial`.
pub fn r50_routes(serial: &str) -> Routes {
    let mut r = Routes::new();
    r.insert(
        "GET /ccapi".into(),
        (
            200,
            r#"{"ver100":[{"path":"/ccapi/ver100/deviceinformation","get":true},
                {"path":"/ccapi/ver100/devicestatus/battery","get":true},
                {"path":"/ccapi/ver100/shooting/control/shutterbutton","post":true}],
               "ver110":[{"path":"/ccapi/ver110/devicestatus/batterylist","get":true}]}"#
                .into(),
        ),
    );
    r.insert(
        "GET /ccapi/ver100/deviceinformation".into(),
        (
            200,
            format!(r#"{{"manufacturer":"Canon","productname":"Canon EOS R50","serialnumber":"{serial}"}}"#),
        ),
    );
    r.insert(
        "GET /ccapi/ver100/devicestatus/battery".into(),
        (
            200,
            r#"{"name":"LP-E17","kind":"battery","level":"half","quality":"good"}"#.into(),
        ),
    );
    r.insert(
        "GET /ccapi/ver110/devicestatus/batterylist".into(),
        (200, r#"{"batterylist":[{"level":"100"}]}"#.into()),
    );
    r.insert(
        "POST /ccapi/ver100/shooting/control/shutterbutton".into(),
        (503, r#"{"message":"Device busy"}"#.into()),
    );
    r
}
