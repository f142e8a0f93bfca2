//! The real server, in-process on an ephemeral loopback port, against real clients:
//! async-tungstenite for WebSocket, plain TCP for HTTP and for raw frames.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::{self, Message};
use async_tungstenite::WebSocketStream;
use futures_lite::future::{block_on, or};
use futures_lite::StreamExt;
use serde_json::{json, Value};

use skylapse::app::{App, ClientId, Outbound, Publisher, Service};
use skylapse::clock::{BoxFuture, ManualClock, SharedClock, SystemClock};
use skylapse::config::Config;
use skylapse::protocol::{Channel, Command, CommandResult, Event, EventFamily, Reply, Secret};
use skylapse::web::Server;

/// A bound on how long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(5);

struct TestServer {
    addr: SocketAddr,
    clock: Option<ManualClock>,
    app: Arc<App>,
    publisher: Publisher,
    server: Option<Server>,
    stop: async_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts the server on a ManualClock (time moves only when the test says).
    fn manual(config: Config) -> TestServer {
        let clock = ManualClock::new(SystemTime::now());
        Self::start(config, Arc::new(clock.clone()), Some(clock))
    }

    /// Starts the server on the real clock.
    fn real(config: Config) -> TestServer {
        Self::start(config, Arc::new(SystemClock), None)
    }

    fn start(config: Config, clock: SharedClock, manual: Option<ManualClock>) -> TestServer {
        Self::start_with(config, clock, manual, Vec::new())
    }

    fn start_with(
        mut config: Config,
        clock: SharedClock,
        manual: Option<ManualClock>,
        services: Vec<Arc<dyn Service>>,
    ) -> TestServer {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (publisher, outbound) = Publisher::channel();
        let mut app = App::new(Arc::new(config), clock, publisher.clone());
        for service in services {
            app.add_service(service);
        }
        let app = Arc::new(app);
        let ex = Arc::new(smol::Executor::new());
        let (stop, stop_rx) = async_channel::bounded::<()>(1);
        let thread = {
            let ex = ex.clone();
            std::thread::spawn(move || {
                let _ = block_on(ex.run(stop_rx.recv()));
            })
        };
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let server = Server::start(&ex, listener, app.clone(), outbound).unwrap();
        TestServer {
            addr: server.local_addr(),
            clock: manual,
            app,
            publisher,
            server: Some(server),
            stop,
            thread: Some(thread),
        }
    }

    fn clock(&self) -> &ManualClock {
        self.clock.as_ref().expect("a ManualClock server")
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Ws = WebSocketStream<Async<TcpStream>>;

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    or(async { Some(f.await) }, async {
        Timer::after(PATIENCE).await;
        None
    })
    .await
    .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

async fn connect_req(
    addr: SocketAddr,
    req: tungstenite::handshake::client::Request,
) -> Result<Ws, tungstenite::Error> {
    let tcp = Async::<TcpStream>::connect(addr).await.unwrap();
    async_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(s: &TestServer) -> Ws {
    let req = s.url("/ws").into_client_request().unwrap();
    connect_req(s.addr, req).await.expect("websocket connects")
}

/// Connects and consumes the welcome.
async fn connect_welcomed(s: &TestServer) -> (Ws, Value) {
    let mut ws = connect(s).await;
    let w = recv(&mut ws).await;
    assert_eq!(w["type"], "welcome");
    (ws, w)
}

async fn next_message(ws: &mut Ws) -> Message {
    loop {
        let m = within("a message", ws.next())
            .await
            .expect("stream open")
            .expect("no error");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

async fn recv(ws: &mut Ws) -> Value {
    match next_message(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("server sends JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until a frame of `kind` (skipping others, e.g. status updates).
async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = recv(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn send_text(ws: &mut Ws, t: &str) {
    ws.send(Message::text(t.to_string())).await.unwrap();
}

/// Reads until the server's close frame; returns its code and reason.
async fn recv_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match within("a close frame", ws.next()).await {
            Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => panic!("close without a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn marker(s: &TestServer, client: u64, n: u64) {
    // ToClient travels through the same FIFO as StatusChanged and events: when the client sees
    // the marker, the hub has handled everything published before it.
    s.publisher.send(Outbound::ToClient(
        ClientId(client),
        json!({"type": "marker", "n": n}),
    ));
}

fn client_id(welcome: &Value) -> u64 {
    welcome["clientId"].as_u64().expect("numeric clientId")
}

// ---------------------------------------------------------------------------------------------
// WebSocket

#[test]
fn welcome_has_identity_commands_limits_and_status_blocks_twice() {
    let s = TestServer::manual(Config::default());
    s.app.status.set(
        "camera",
        json!({"connected": false, "state": "disconnected"}),
    );
    block_on(async {
        let (_ws, w) = connect_welcomed(&s).await;
        assert!(w["clientId"].is_u64());
        assert!(w["message"].is_string());
        assert!(w["serverTime"].as_str().unwrap().ends_with('Z'));
        assert!(w["timestamp"].is_string());
        assert!(w["version"].as_str().unwrap().starts_with("0.1.0"));
        let cmds: Vec<&str> = w["availableCommands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(cmds.contains(&"take_photo") && cmds.contains(&"time-sync-response"));
        assert_eq!(w["limits"]["maxClients"], 16);
        assert_eq!(w["limits"]["maxFrameBytes"], 65536);
        for block in skylapse::app::STATUS_BLOCKS {
            assert!(w.get(block).is_some(), "top-level {block}");
            assert!(w["data"].get(block).is_some(), "data.{block}");
        }
        assert_eq!(w["camera"]["state"], "disconnected");
        assert_eq!(w["data"]["camera"]["connected"], false);
        assert_eq!(w["data"]["clientId"], w["clientId"]);
    });
}

#[test]
fn status_update_every_period_on_the_clock_and_soon_after_a_change() {
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, w) = connect_welcomed(&s).await;
        // Time stands still: a ping round trip brings no status_update.
        send(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");

        s.clock().advance(Duration::from_secs(10));
        let u = recv(&mut ws).await;
        assert_eq!(u["type"], "status_update");
        assert!(u["data"].get("camera").is_some() && u.get("intervalometer").is_some());

        // A change is broadcast after the coalescing delay, with the new value.
        s.app.status.set("power", json!({"uptime": 42}));
        s.app.status.set("power", json!({"uptime": 43}));
        marker(&s, client_id(&w), 1);
        assert_eq!(recv(&mut ws).await["type"], "marker");
        s.clock().advance(Duration::from_millis(200));
        let u = recv(&mut ws).await;
        assert_eq!(u["type"], "status_update");
        assert_eq!(u["power"]["uptime"], 43);
        assert_eq!(u["data"]["power"]["uptime"], 43);
        // Coalesced: the next frame after a marker is the marker, not a second update.
        marker(&s, client_id(&w), 2);
        assert_eq!(recv(&mut ws).await["type"], "marker");
    });
}

#[test]
fn json_ping_pong_echoes_id_and_ack() {
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, _) = connect_welcomed(&s).await;
        send(&mut ws, json!({"type": "ping", "id": "p1"})).await;
        let p = recv(&mut ws).await;
        assert_eq!(
            (p["type"].as_str(), p["id"].as_str()),
            (Some("pong"), Some("p1"))
        );
        assert!(p["timestamp"].is_string());
        send(
            &mut ws,
            json!({"type": "ping", "requestId": 7, "ack": true}),
        )
        .await;
        let p = recv(&mut ws).await;
        assert_eq!(
            (p["type"].as_str(), p["id"].as_u64()),
            (Some("pong"), Some(7))
        );
        let a = recv(&mut ws).await;
        assert_eq!(a["type"], "operation_result");
        assert_eq!(a["success"], true);
        assert_eq!(a["id"], 7);
        // A command no service claims: SERVICE_UNAVAILABLE, id echoed, ack says failure.
        send(
            &mut ws,
            json!({"type": "get_camera_status", "id": "c9", "ack": true}),
        )
        .await;
        let e = recv(&mut ws).await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["id"], "c9");
        assert_eq!(e["data"]["code"], "SERVICE_UNAVAILABLE");
        assert_eq!(e["error"]["code"], "SERVICE_UNAVAILABLE");
        let a = recv(&mut ws).await;
        assert_eq!(
            (a["type"].as_str(), a["success"].as_bool()),
            (Some("operation_result"), Some(false))
        );
        // get_ws_connections goes through the same command layer as REST.
        send(&mut ws, json!({"type": "get_ws_connections", "id": 1})).await;
        let c = recv(&mut ws).await;
        assert_eq!(c["type"], "ws_connections");
        assert_eq!(c["data"]["count"], 1);
    });
}

#[test]
fn subscriptions_filter_broadcasts() {
    let s = TestServer::manual(Config::default());
    let camera_event = || {
        Event::new(
            Channel::Camera,
            EventFamily::Discovery,
            "camera_connected",
            json!({"ip": "x"}),
        )
    };
    let session_event = || {
        Event::new(
            Channel::Intervalometer,
            EventFamily::Timelapse,
            "session_started",
            json!({}),
        )
    };
    block_on(async {
        let (mut ws, w) = connect_welcomed(&s).await;
        let me = client_id(&w);
        // Default: everything.
        s.publisher.event(session_event());
        let e = recv(&mut ws).await;
        assert_eq!(
            (e["type"].as_str(), e["eventType"].as_str()),
            (Some("timelapse_event"), Some("session_started"))
        );

        send(
            &mut ws,
            json!({"type": "subscribe", "data": {"channels": ["camera"]}, "id": "s"}),
        )
        .await;
        let r = recv(&mut ws).await;
        assert_eq!(r["type"], "subscribed");
        assert_eq!(r["id"], "s");
        assert_eq!(r["channels"], json!(["camera"]));
        assert_eq!(r["data"]["subscriptions"], json!(["camera"]));

        s.publisher.event(session_event());
        s.publisher.event(camera_event());
        marker(&s, me, 1);
        assert_eq!(recv(&mut ws).await["eventType"], "camera_connected");
        assert_eq!(recv(&mut ws).await["type"], "marker");

        // Seed 002 form (channels at top level) and unsubscribe.
        send(
            &mut ws,
            json!({"type": "unsubscribe", "channels": ["camera"]}),
        )
        .await;
        assert_eq!(recv(&mut ws).await["type"], "unsubscribed");
        s.publisher.event(camera_event());
        marker(&s, me, 2);
        assert_eq!(recv(&mut ws).await["type"], "marker");

        send(
            &mut ws,
            json!({"type": "subscribe", "channels": ["camera", "bogus"], "id": 4}),
        )
        .await;
        let e = recv(&mut ws).await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["id"], 4);
        assert_eq!(e["data"]["code"], "INVALID_PARAMETER");
        assert!(e["data"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown channel: bogus"));
    });
}

#[test]
fn malformed_unknown_and_mistyped_messages_get_clear_errors() {
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, _) = connect_welcomed(&s).await;
        send_text(&mut ws, "{not json").await;
        let e = recv(&mut ws).await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["data"]["message"], "Invalid message format");
        assert_eq!(e["error"]["code"], "INVALID_MESSAGE");

        send(&mut ws, json!({"type": "launch_rocket", "id": "r"})).await;
        let e = recv(&mut ws).await;
        assert_eq!(e["data"]["message"], "Unknown message type: launch_rocket");
        assert_eq!(e["data"]["code"], "UNKNOWN_MESSAGE");
        assert_eq!(e["id"], "r");

        send(
            &mut ws,
            json!({"type": "take_photo", "data": {"af": "yes"}, "id": 3}),
        )
        .await;
        let e = recv(&mut ws).await;
        assert_eq!(e["data"]["code"], "INVALID_PARAMETER");
        assert_eq!(e["id"], 3);

        send(
            &mut ws,
            json!({"type": "set_camera_setting", "data": {"value": 1}}),
        )
        .await;
        let e = recv(&mut ws).await;
        assert_eq!(e["data"]["code"], "MISSING_PARAMETER");
        assert!(e["data"]["message"].as_str().unwrap().contains("setting"));

        // Still usable afterwards.
        send(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");
    });
}

#[test]
fn frame_over_64_kib_is_closed_with_1009() {
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, _) = connect_welcomed(&s).await;
        let big = format!(
            "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
            "x".repeat(70 * 1024)
        );
        send_text(&mut ws, &big).await;
        let (code, _) = recv_close(&mut ws).await;
        assert_eq!(code, 1009);
    });
}

#[test]
fn invalid_message_flood_is_closed_with_1008() {
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, w) = connect_welcomed(&s).await;
        let limit = w["limits"]["maxInvalidMessages"].as_u64().unwrap();
        for _ in 0..limit + 5 {
            send_text(&mut ws, "garbage").await;
        }
        let mut errors = 0;
        let code = loop {
            match within("frames", ws.next()).await {
                Some(Ok(Message::Text(_))) => errors += 1,
                Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(code, 1008);
        assert_eq!(
            errors,
            limit + 1,
            "one error per invalid message up to the one past the limit"
        );
    });
}

#[test]
fn message_rate_limit_answers_rate_limited() {
    // The ManualClock does not move, so the bucket never refills: exactly `burst` pass.
    let s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, w) = connect_welcomed(&s).await;
        let burst = w["limits"]["rateBurst"].as_u64().unwrap();
        for _ in 0..burst + 3 {
            send(&mut ws, json!({"type": "ping"})).await;
        }
        let mut pongs = 0;
        let mut limited = 0;
        while pongs + limited < burst + 3 {
            let v = recv(&mut ws).await;
            match v["type"].as_str() {
                Some("pong") => pongs += 1,
                Some("error") => {
                    assert_eq!(v["data"]["code"], "RATE_LIMITED");
                    limited += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((pongs, limited), (burst, 3));
        // Time refills the bucket.
        s.clock().advance(Duration::from_secs(1));
        send(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");
    });
}

#[test]
fn a_seventeenth_client_gets_in_and_the_least_active_of_the_busiest_address_goes() {
    // Regression (issue 9, item 1): 16 idle clients that answer pings held every slot, so the
    // UI got 1013 forever. Now the newcomer is admitted and the least active client of the
    // address holding the most clients is closed with 1013 instead.
    let s = TestServer::manual(Config::default());
    block_on(async {
        let hog: Ipv4Addr = "127.0.0.2".parse().unwrap();
        let mut hogs = Vec::new();
        for _ in 0..16 {
            hogs.push(connect_from(&s, hog).await.0);
            // Distinct "last heard" instants: the first is the least active.
            s.clock().advance(Duration::from_millis(10));
        }
        // A hog speaks up: it is no longer the least active.
        send(&mut hogs[0], json!({"type": "ping"})).await;
        assert_eq!(recv(&mut hogs[0]).await["type"], "pong");
        // The owner, from another address, gets in; hogs[1] (silent longest) makes room.
        let (mut owner, _) = connect_welcomed(&s).await;
        let (code, reason) = recv_close(&mut hogs[1]).await;
        assert_eq!(code, 1013);
        assert_eq!(reason, skylapse::web::hub::EVICTED_REASON);
        // More hogs come back: each evicts a hog, never the owner (one client on its address).
        for i in 0..20 {
            s.clock().advance(Duration::from_millis(10));
            hogs.push(connect_from(&s, hog).await.0);
            if i % 5 == 0 {
                send(&mut owner, json!({"type": "ping", "id": i})).await;
                assert_eq!(recv_type(&mut owner, "pong").await["id"], i);
            }
        }
        let (st, _, body) = http(
            s.addr,
            "GET /api/ws/connections HTTP/1.1\r\nHost: localhost\r\n\r\n",
        );
        assert_eq!(st, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["count"], 16);
        let owners = v["clients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["address"].as_str().unwrap().starts_with("127.0.0.1:"))
            .count();
        assert_eq!(owners, 1, "{v}");
    });
}

/// A TCP connection from `src` (any 127.0.0.0/8 address is this host's on Linux), so tests can
/// play several devices.
fn tcp_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = dst else {
        panic!("IPv4 only")
    };
    // SAFETY: a fresh socket we own; bind/connect read only the sockaddr we build; the fd is
    // handed to TcpStream exactly once (or closed on failure).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sa(src, 0);
        let remote = sa(*dst.ip(), dst.port());
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            panic!("connect from {src}: {e}");
        }
        TcpStream::from_raw_fd(fd)
    }
}

/// A WebSocket client from `src`, welcomed.
async fn connect_from(s: &TestServer, src: Ipv4Addr) -> (Ws, Value) {
    let tcp = Async::new(tcp_from(src, s.addr)).unwrap();
    let req = s.url("/ws").into_client_request().unwrap();
    let (mut ws, _) = async_tungstenite::client_async(req, tcp).await.unwrap();
    let w = recv(&mut ws).await;
    assert_eq!(w["type"], "welcome");
    (ws, w)
}

/// False once the server has closed `tcp` (reads end of stream or reset); never blocks.
fn open_now(tcp: &mut TcpStream) -> bool {
    tcp.set_nonblocking(true).unwrap();
    let mut b = [0u8; 4096];
    let open = loop {
        match tcp.read(&mut b) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    tcp.set_nonblocking(false).unwrap();
    open
}

/// True when the server has closed `tcp` (end of stream or reset) within `wait`.
fn closed_by_server(tcp: &mut TcpStream, wait: Duration) -> bool {
    tcp.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match tcp.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // a response it was owed
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn silent_trickling_and_parked_connections_never_lock_the_owner_out() {
    // Regression (issue 9, item 1): 64 connections that never sent a byte, or sent one every
    // 3 s, or parked a keep-alive, locked the owner out of `/`, `/health` and the WebSocket:
    // the accept loop dropped everything past 64 and never evicted anyone.
    let mut config = Config::default();
    config.limits.max_connections = 12;
    config.limits.max_connections_per_peer = 4;
    let s = TestServer::manual(config);
    let web = s.server.as_ref().unwrap().web().clone();
    let mut hostile: Vec<(Ipv4Addr, TcpStream)> = Vec::new();
    let health = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for a in 2..=4u8 {
        let ip = Ipv4Addr::new(127, 0, 0, a);
        let silent = tcp_from(ip, s.addr);
        let mut trickle = tcp_from(ip, s.addr);
        trickle.write_all(b"GET /hea").unwrap();
        let mut parked = Vec::new();
        for _ in 0..2 {
            let mut k = tcp_from(ip, s.addr);
            k.set_read_timeout(Some(PATIENCE)).unwrap();
            k.write_all(health).unwrap();
            let head = read_http_head(&mut k);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let mut body = vec![0u8; header(&head, "content-length").unwrap().parse().unwrap()];
            k.read_exact(&mut body).unwrap();
            parked.push(k);
        }
        hostile.push((ip, silent));
        hostile.push((ip, trickle));
        hostile.extend(parked.into_iter().map(|k| (ip, k)));
        s.clock().advance(Duration::from_millis(10));
    }
    // The parked keep-alives of the last address were answered after every earlier accept:
    // the table is full.
    assert_eq!(web.http_connections(), 12);

    // The owner (127.0.0.1) loads the page and opens the WebSocket, again and again.
    for i in 0..20 {
        let t0 = Instant::now();
        let (st, _, body) = http(s.addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(st, 200, "try {i}");
        assert!(!body.is_empty());
        block_on(async {
            let (_ws, w) = within("the owner's welcome", connect_welcomed(&s)).await;
            assert_eq!(w["type"], "welcome");
        });
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "try {i}: {:?}",
            t0.elapsed()
        );
        assert!(web.http_connections() <= 12);
    }

    // One address floods: it only ever evicts its own connections.
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    let others_open: Vec<bool> = hostile
        .iter_mut()
        .filter(|(ip, _)| *ip != flooder)
        .map(|(_, tcp)| !closed_by_server(tcp, Duration::from_millis(50)))
        .collect();
    let mut flood: Vec<TcpStream> = (0..10).map(|_| tcp_from(flooder, s.addr)).collect();
    // The flooder's old and new connections: the server closes all but its share of 4.
    let mut theirs: Vec<&mut TcpStream> = hostile
        .iter_mut()
        .filter(|(ip, _)| *ip == flooder)
        .map(|(_, t)| t)
        .chain(flood.iter_mut())
        .collect();
    let t0 = Instant::now();
    loop {
        theirs.retain_mut(|t| open_now(t));
        if theirs.len() == 4 {
            break;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "the flooder still holds {}",
            theirs.len()
        );
        // Wait for the next close (poll(2) reports it as readable).
        use std::os::fd::AsRawFd;
        let mut fds: Vec<libc::pollfd> = theirs
            .iter()
            .map(|t| libc::pollfd {
                fd: t.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a live array of pollfd for sockets we hold open.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
    }
    // The owner's tries may have evicted some of the others' connections; the flood closed
    // none of them.
    let others_after: Vec<bool> = hostile
        .iter_mut()
        .filter(|(ip, _)| *ip != flooder)
        .map(|(_, tcp)| !closed_by_server(tcp, Duration::from_millis(50)))
        .collect();
    assert_eq!(others_open, others_after);
    assert!(
        others_after.iter().any(|o| *o),
        "something of the others was left to test"
    );
    let still = web.http_connections();
    assert!(still <= 12, "{still}");
}

#[test]
fn foreign_origin_is_refused_before_the_upgrade() {
    let config = Config {
        allow_origins: vec!["http://friend.example:3000".into()],
        ..Config::default()
    };
    let s = TestServer::manual(config);
    block_on(async {
        let with_origin = |origin: &str| {
            let mut req = s.url("/ws").into_client_request().unwrap();
            req.headers_mut().insert("Origin", origin.parse().unwrap());
            req
        };
        match connect_req(s.addr, with_origin("http://evil.example")).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
            other => panic!("expected 403, got {:?}", other.map(|_| ())),
        }
        // The page's own host, and a configured origin, are fine.
        let own = format!("http://{}", s.addr);
        assert!(connect_req(s.addr, with_origin(&own)).await.is_ok());
        assert!(
            connect_req(s.addr, with_origin("http://friend.example:3000"))
                .await
                .is_ok()
        );
    });
    // The same rule guards REST changes (cross-site "simple" POSTs need no preflight).
    let (st, _, body) = http(
        s.addr,
        "POST /api/intervalometer/stop HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\n\r\n",
    );
    assert_eq!(st, 403);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "PERMISSION_DENIED");
    let (st, _, _) = http(
        s.addr,
        "POST /api/intervalometer/stop HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\n\r\n",
    );
    assert_eq!(st, 503, "same-origin POST reaches the command layer");
}

#[test]
fn bearer_token_guards_websocket_and_rest_when_set() {
    let config = Config {
        token: Some(Secret::new("s3cret")),
        ..Config::default()
    };
    let s = TestServer::manual(config);
    block_on(async {
        let plain = s.url("/ws").into_client_request().unwrap();
        match connect_req(s.addr, plain).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
        let mut wrong = s.url("/ws").into_client_request().unwrap();
        wrong
            .headers_mut()
            .insert("Authorization", "Bearer s3cres".parse().unwrap());
        assert!(connect_req(s.addr, wrong).await.is_err());
        let mut header = s.url("/ws").into_client_request().unwrap();
        header
            .headers_mut()
            .insert("Authorization", "Bearer s3cret".parse().unwrap());
        assert!(connect_req(s.addr, header).await.is_ok());
        let query = s.url("/ws?token=s3cret").into_client_request().unwrap();
        assert!(connect_req(s.addr, query).await.is_ok());
    });
    let (st, _, _) = http(
        s.addr,
        "GET /api/ws/connections HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(st, 401);
    let (st, _, _) = http(
        s.addr,
        "GET /api/ws/connections HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n\r\n",
    );
    assert_eq!(st, 200);
    let (st, _, _) = http(s.addr, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(st, 200);

    // Off by default.
    let open = TestServer::manual(Config::default());
    block_on(async {
        connect_welcomed(&open).await;
    });
}

/// Raw upgrade request (with optional bytes in the same write) on a blocking socket.
fn raw_upgrade(addr: SocketAddr, then: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(then);
    tcp.write_all(&req).unwrap();
    tcp
}

/// A masked client text frame (payload < 126 bytes).
fn client_frame(text: &str) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one unmasked server frame: (opcode, payload).
fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).unwrap();
    (h[0] & 0x0f, payload)
}

fn read_http_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn a_message_sent_with_the_upgrade_is_handled() {
    // Regression: the Node.js service ignored everything a client sent in its first second,
    // so the web UI's time sync on connect never arrived.
    let s = TestServer::manual(Config::default());
    let mut tcp = raw_upgrade(s.addr, &client_frame(r#"{"type":"ping","id":"early"}"#));
    assert!(read_http_head(&mut tcp).starts_with("HTTP/1.1 101"));
    let (op, welcome) = read_frame(&mut tcp);
    assert_eq!(op, 1);
    let welcome: Value = serde_json::from_slice(&welcome).unwrap();
    assert_eq!(welcome["type"], "welcome");
    let (_, pong) = read_frame(&mut tcp);
    let pong: Value = serde_json::from_slice(&pong).unwrap();
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_str()),
        (Some("pong"), Some("early"))
    );
}

#[test]
fn a_reader_that_never_reads_delays_nobody_and_is_dropped_when_stuck() {
    let s = TestServer::manual(Config::default());
    // The stuck client: upgrades, then never reads a byte (its receive window stays small:
    // the kernel grows it only for a reader).
    let mut stuck = raw_upgrade(s.addr, b"");
    let _live = block_on(async {
        let (mut ws, w) = connect_welcomed(&s).await;
        let me = client_id(&w);
        let pad = "x".repeat(64 * 1024);
        let started = Instant::now();
        // 20 × 20 events of 64 KiB (~26 MB): far more than the stuck socket can buffer.
        for batch in 0..20u64 {
            for i in 0..20u64 {
                s.publisher.event(Event::new(
                    Channel::Camera,
                    EventFamily::Event,
                    "photo_taken",
                    json!({"n": batch * 20 + i, "pad": pad}),
                ));
            }
            for i in 0..20u64 {
                let e = recv(&mut ws).await;
                assert_eq!(e["data"]["n"], batch * 20 + i, "in order, none lost");
            }
        }
        eprintln!(
            "400 broadcasts of 64 KiB to the live client took {:?}",
            started.elapsed()
        );

        // The stuck client's writer has taken nothing while frames waited; after STUCK_LIMIT
        // the next broadcast disconnects it.
        s.clock()
            .advance(skylapse::web::hub::STUCK_LIMIT + Duration::from_secs(1));
        s.publisher.event(Event::new(
            Channel::Camera,
            EventFamily::Event,
            "photo_taken",
            json!({}),
        ));
        marker(&s, me, 1);
        assert_eq!(recv_type(&mut ws, "marker").await["n"], 1);
        ws
    });
    // Its socket reaches end of stream once the buffered bytes are read.
    let mut sink = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let t0 = Instant::now();
    loop {
        match stuck.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("stuck client never disconnected: {e}"),
        }
        assert!(
            t0.elapsed() < PATIENCE * 2,
            "stuck client never disconnected {total}"
        );
    }
    let (st, _, body) = http(
        s.addr,
        "GET /api/ws/connections HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["count"], 1, "only the live client remains: {v}");
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Sends `raw` (with `Connection: close` semantics added by reading to the end) and returns
/// (status, head, body).
fn http(addr: SocketAddr, raw: &str) -> (u16, String, Vec<u8>) {
    http_bytes(addr, raw.as_bytes())
}

fn http_bytes(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(raw).unwrap();
    let head = read_http_head(&mut tcp);
    let status: u16 = head[9..12].parse().unwrap();
    let len = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).unwrap();
    (status, head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn health_is_json_with_version_and_uptime() {
    let s = TestServer::manual(Config::default());
    let (st, head, body) = http(s.addr, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(st, 200);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert!(v["version"].is_string() && v["uptime"].is_number());
}

#[test]
fn static_assets_gzip_and_304() {
    let s = TestServer::manual(Config::default());
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.js")).unwrap();
    let (st, head, body) = http(s.addr, "GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(st, 200);
    assert_eq!(body, on_disk);
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(header(&head, "content-encoding"), None);
    let plain_etag = header(&head, "etag").unwrap().to_string();

    let (st, head, gz) = http(
        s.addr,
        "GET /app.js HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip, br\r\n\r\n",
    );
    assert_eq!(st, 200);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(gz.len() < on_disk.len());
    let gz_etag = header(&head, "etag").unwrap().to_string();
    assert_ne!(gz_etag, plain_etag);

    let (st, head, body) = http(
        s.addr,
        &format!("GET /app.js HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nIf-None-Match: {gz_etag}\r\n\r\n"),
    );
    assert_eq!(st, 304);
    assert!(body.is_empty());
    assert_eq!(header(&head, "etag"), Some(gz_etag.as_str()));

    // `/` is the page; HEAD has no body.
    let (st, head, _) = http(s.addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(st, 200);
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = TestServer::manual(Config::default());
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    // Two pipelined requests in one write, then a third.
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    for expected in [200u16, 404] {
        let head = read_http_head(&mut tcp);
        assert_eq!(head[9..12].parse::<u16>().unwrap(), expected);
        let mut body = vec![0u8; header(&head, "content-length").unwrap().parse().unwrap()];
        tcp.read_exact(&mut body).unwrap();
    }
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_http_head(&mut tcp);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(header(&head, "connection"), Some("close"));
}

#[test]
fn unknown_paths_are_404_json() {
    let s = TestServer::manual(Config::default());
    for path in ["/nope", "/api/nope", "/index.htm"] {
        let (st, head, body) = http(
            s.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert_eq!(st, 404, "{path}");
        assert_eq!(header(&head, "content-type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "NOT_FOUND");
    }
}

#[test]
fn oversize_head_is_431_and_oversize_body_is_413() {
    let s = TestServer::manual(Config::default());
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let (st, _, _) = http(s.addr, &big);
    assert_eq!(st, 431);
    let (st, _, body) = http(
        s.addr,
        "POST /api/camera/photo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 70000\r\n\r\n",
    );
    assert_eq!(st, 413);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "PAYLOAD_TOO_LARGE");
}

#[test]
fn a_slow_head_is_cut_off() {
    let mut config = Config::default();
    config.limits.head_timeout = Duration::from_millis(300);
    let s = TestServer::real(config);
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let t0 = Instant::now();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    // The server closes without an answer once the head timeout passes.
    let n = tcp
        .read(&mut buf)
        .expect("the server closes the connection");
    assert_eq!(n, 0);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "cut too early: {took:?}"
    );
}

#[test]
fn path_traversal_never_escapes() {
    let s = TestServer::manual(Config::default());
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/../Cargo.toml",
        "//etc/passwd",
        "/..\\Cargo.toml",
        "/index.html%00",
    ] {
        let (st, _, _) = http(
            s.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert_eq!(st, 404, "{path}");
    }

    // --static-dir: a directory with a secret next to it and a symlink pointing out.
    let base = std::env::temp_dir().join(format!("skylapse-web-{}", std::process::id()));
    let site = base.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<p>dir</p>").unwrap();
    std::fs::write(base.join("secret.txt"), "secret").unwrap();
    let _ = std::os::unix::fs::symlink(base.join("secret.txt"), site.join("link.txt"));
    let config = Config {
        static_dir: Some(site.clone()),
        ..Config::default()
    };
    let d = TestServer::manual(config);
    let (st, _, body) = http(d.addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((st, body.as_slice()), (200, b"<p>dir</p>".as_slice()));
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/.%2e/secret.txt",
        "/link.txt",
        "/./index.html",
        "/%2fetc%2fpasswd",
    ] {
        let (st, _, body) = http(
            d.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert_eq!(st, 404, "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("secret\""),
            "{path}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn rest_errors_use_the_envelope_and_http_status() {
    let s = TestServer::manual(Config::default());
    let (st, _, body) = http(
        s.addr,
        "GET /api/camera/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(st, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "SERVICE_UNAVAILABLE");
    assert!(v["error"]["message"].as_str().unwrap().contains("Camera"));
    assert!(v["timestamp"].is_string());

    let (st, _, body) = http(
        s.addr,
        "POST /api/discovery/connect HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(st, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "MISSING_PARAMETER");

    let (st, _, body) = http(
        s.addr,
        "POST /api/camera/photo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n{nope",
    );
    assert_eq!(st, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "INVALID_MESSAGE");

    let (st, head, _) = http(
        s.addr,
        "DELETE /api/camera/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(st, 405);
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"));

    // The coordinator's own answer (no service needed) comes through REST too.
    s.app.status.set("power", json!({"uptime": 5}));
    let (st, _, body) = http(
        s.addr,
        "GET /api/system/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["power"]["uptime"], 5);
}

#[test]
fn shutdown_sends_1001_to_clients() {
    let mut s = TestServer::manual(Config::default());
    block_on(async {
        let (mut ws, _) = connect_welcomed(&s).await;
        let server = s.server.take().unwrap();
        let shutdown = server.shutdown(Duration::from_secs(2));
        let (code, _) = futures_lite::future::zip(shutdown, recv_close(&mut ws))
            .await
            .1;
        assert_eq!(code, 1001);
    });
}

/// A camera stand-in whose take_photo waits until the test releases it.
struct SlowPhoto {
    started: async_channel::Sender<()>,
    release: async_channel::Receiver<()>,
    done: async_channel::Sender<()>,
}

impl Service for SlowPhoto {
    fn name(&self) -> &'static str {
        "slow-photo"
    }

    fn handle<'a>(
        &'a self,
        _origin: skylapse::app::Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        if !matches!(cmd, Command::TakePhoto(_)) {
            return None;
        }
        Some(Box::pin(async move {
            let _ = self.started.send(()).await;
            let _ = self.release.recv().await;
            let _ = self.done.send(()).await;
            Ok(Reply::new("photo_taken", json!({"success": true})))
        }))
    }
}

#[test]
fn commands_reach_services_and_a_leaving_client_does_not_cancel_them() {
    let (started_tx, started) = async_channel::unbounded();
    let (release, release_rx) = async_channel::unbounded();
    let (done_tx, done) = async_channel::unbounded();
    let service = Arc::new(SlowPhoto {
        started: started_tx,
        release: release_rx,
        done: done_tx,
    });
    let clock = ManualClock::new(SystemTime::now());
    let s = TestServer::start_with(
        Config::default(),
        Arc::new(clock.clone()),
        Some(clock),
        vec![service],
    );
    block_on(async {
        // Over WebSocket: the reply carries the id.
        let (mut ws, _) = connect_welcomed(&s).await;
        send(&mut ws, json!({"type": "take_photo", "id": "t1"})).await;
        within("the service to start", started.recv())
            .await
            .unwrap();
        release.send(()).await.unwrap();
        let r = recv(&mut ws).await;
        assert_eq!(
            (r["type"].as_str(), r["id"].as_str()),
            (Some("photo_taken"), Some("t1"))
        );
        assert_eq!(r["data"]["success"], true);
        within("completion", done.recv()).await.unwrap();

        // The client leaves while its photo is in progress: the photo still completes.
        send(&mut ws, json!({"type": "take_photo"})).await;
        within("the service to start", started.recv())
            .await
            .unwrap();
        drop(ws);
        release.send(()).await.unwrap();
        within("the orphaned command to finish", done.recv())
            .await
            .unwrap();
    });
    // Over REST, the same service answers.
    let t = std::thread::spawn({
        let release = release.clone();
        let started = started.clone();
        move || {
            block_on(started.recv()).unwrap();
            block_on(release.send(())).unwrap();
        }
    });
    let (st, _, body) = http(
        s.addr,
        "POST /api/camera/photo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n{\"af\":true}",
    );
    t.join().unwrap();
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["success"], true);
}

#[test]
fn websocket_ping_every_interval_and_silent_clients_are_dropped() {
    let s = TestServer::manual(Config::default());
    // A raw client that never answers pings.
    let mut tcp = raw_upgrade(s.addr, b"");
    assert!(read_http_head(&mut tcp).starts_with("HTTP/1.1 101"));
    let (_, welcome) = read_frame(&mut tcp);
    assert!(String::from_utf8_lossy(&welcome).contains("welcome"));
    s.clock().advance(Duration::from_secs(30));
    loop {
        let (op, _) = read_frame(&mut tcp);
        if op == 0x9 {
            break; // WebSocket ping
        }
    }
    // 60 s after its last frame, the silent client is dropped.
    s.clock().advance(Duration::from_secs(31));
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue, // status updates queued before the drop
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("silent client not dropped: {e}"),
        }
    }
}

#[test]
fn the_binary_notifies_systemd_ready_and_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("skylapse-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("notify");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skylapse"))
        .args(["--no-discovery", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let mut buf = [0u8; 64];
    let mut seen = Vec::new();
    while !(seen.iter().any(|m| m == "READY=1")
        && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        let n = sock.recv(&mut buf).expect("notifications arrive");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // SIGTERM: clean exit.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let s = TestServer::manual(Config::default());
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(
        b"POST /api/discovery/connect HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    assert!(read_http_head(&mut tcp).starts_with("HTTP/1.1 100"));
    tcp.write_all(b"{}").unwrap();
    let head = read_http_head(&mut tcp);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[test]
fn a_foreign_host_is_refused_for_pages_rest_and_websocket() {
    // Regression (issue 9, item 2, DNS rebinding): Host was never validated and the Origin
    // check compared Origin with that Host, so `Host: evil.example:P` with
    // `Origin: http://evil.example:P` got a 101 and passed the REST POST check.
    let config = Config {
        allow_hosts: vec!["pi.example".into()],
        ..Config::default()
    };
    let s = TestServer::manual(config);
    let port = s.addr.port();
    let evil = format!("Host: evil.example:{port}\r\nOrigin: http://evil.example:{port}\r\n");
    let (st, _, body) = http(s.addr, &format!("GET / HTTP/1.1\r\n{evil}\r\n"));
    assert_eq!(st, 421);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "PERMISSION_DENIED");
    let (st, _, _) = http(
        s.addr,
        &format!("POST /api/intervalometer/stop HTTP/1.1\r\n{evil}Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(st, 421);
    let (st, _, _) = http(
        s.addr,
        &format!(
            "GET /ws HTTP/1.1\r\n{evil}Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    );
    assert_eq!(st, 421, "no 101 for a foreign host");
    // No Host at all (HTTP/1.1), or two of them: malformed.
    let (st, _, _) = http(s.addr, "GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(st, 400);
    let (st, _, _) = http(
        s.addr,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(st, 400);
    // The device's own names and addresses, and --allow-host, are fine.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "pi.example".to_string(),
    ] {
        let (st, _, _) = http(
            s.addr,
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        assert_eq!(st, 200, "{host}");
    }
    if let Some(name) = skylapse::web::host::hostname() {
        let (st, _, _) = http(
            s.addr,
            &format!("GET /health HTTP/1.1\r\nHost: {name}.local:{port}\r\n\r\n"),
        );
        assert_eq!(st, 200, "{name}.local");
    }
}

#[test]
fn conflicting_content_lengths_are_400() {
    // Regression (issue 9, item 8): duplicate Content-Length fields with different values were
    // accepted (RFC 9112 §6.3: 400), and "+2" parsed as 2.
    let s = TestServer::manual(Config::default());
    // Every answer is a 400: a bad length is INVALID_PARAMETER; agreeing duplicates carry the
    // body `{}` to the command, which then misses its ip (MISSING_PARAMETER).
    for (cl, code) in [
        (
            "Content-Length: 2\r\nContent-Length: 3\r\n",
            "INVALID_PARAMETER",
        ),
        ("Content-Length: 2, 3\r\n", "INVALID_PARAMETER"),
        ("Content-Length: +2\r\n", "INVALID_PARAMETER"),
        ("Content-Length: 0x2\r\n", "INVALID_PARAMETER"),
        (
            "Content-Length: 2\r\nContent-Length: 2\r\n",
            "MISSING_PARAMETER",
        ),
        ("Content-Length: 2, 2\r\n", "MISSING_PARAMETER"),
    ] {
        let (st, _, body) = http(
            s.addr,
            &format!("POST /api/discovery/connect HTTP/1.1\r\nHost: localhost\r\n{cl}\r\n{{}}"),
        );
        assert_eq!(st, 400, "{cl:?}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], code, "{cl:?}");
        if code == "INVALID_PARAMETER" {
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains("Content-Length"), "{msg}");
        }
    }
}

#[test]
fn websocket_protocol_errors_close_with_1002_and_bad_utf8_with_1007() {
    // Regression (issue 9, item 8): protocol errors and invalid UTF-8 text dropped the
    // connection without a close frame.
    let s = TestServer::manual(Config::default());
    let masked = |first: u8, payload: &[u8]| {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut f = vec![first, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    };
    for (frame, code) in [
        // FIN + RSV1 + text: a reserved bit without an extension.
        (masked(0xC1, b"{}"), 1002u16),
        // A continuation with nothing to continue.
        (masked(0x80, b"x"), 1002),
        // Text that is not UTF-8.
        (masked(0x81, b"\xff\xfe\"ping\""), 1007),
    ] {
        let mut tcp = raw_upgrade(s.addr, b"");
        assert!(read_http_head(&mut tcp).starts_with("HTTP/1.1 101"));
        let (_, welcome) = read_frame(&mut tcp);
        assert!(String::from_utf8_lossy(&welcome).contains("welcome"));
        tcp.write_all(&frame).unwrap();
        let (op, payload) = loop {
            let (op, payload) = read_frame(&mut tcp);
            if op == 0x8 {
                break (op, payload);
            }
        };
        assert_eq!(op, 0x8, "a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
    }
}

#[test]
fn refusals_and_client_churn_are_logged_once_per_interval_not_once_each() {
    // Regression (issue 9, item 3): every refused connection logged a warning; 64 held
    // connections and a few reconnect loops wrote 148,745 lines (10 MB) in 20 s.
    let dir = std::env::temp_dir().join(format!("skylapse-logflood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skylapse"))
        .args(["--no-discovery", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..300 {
        let (st, _, _) = http(addr, "GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n");
        assert_eq!(st, 421);
    }
    block_on(async {
        for _ in 0..100 {
            let req = format!("ws://{addr}/ws").into_client_request().unwrap();
            let mut ws = connect_req(addr, req).await.unwrap();
            assert_eq!(recv(&mut ws).await["type"], "welcome");
        }
    });
    let (st, _, _) = http(addr, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(st, 200);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let host_lines = log.lines().filter(|l| l.contains("for host")).count();
    let churn_lines = log
        .lines()
        .filter(|l| l.contains("connected from") || l.contains(" left"))
        .count();
    assert_eq!(host_lines, 1, "{log}");
    assert!(churn_lines <= 8, "{churn_lines} churn lines:\n{log}");
    assert!(log.lines().count() < 20, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
