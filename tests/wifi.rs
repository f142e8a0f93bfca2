//! Wi-Fi service against python3-dbusmock's NetworkManager template on a private D-Bus.
//!
//! Each test starts its own `dbus-daemon` (a config file in a temp dir, a unix socket there)
//! and its own mock, and kills both on drop. The service reaches the mock through
//! `WifiOptions::bus_address` (in production: the system bus, `DBUS_SYSTEM_BUS_ADDRESS`).
//! Needs Debian's `python3-dbusmock` and `dbus` (dbus-daemon); a test that needs them skips
//! with a message when they are missing. Set SKYLAPSE_PYTHON to pick the interpreter.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_lite::{future, StreamExt};
use serde_json::Value;
use zbus::zvariant::{ObjectPath, Value as ZValue};

use skylapse::app::{Origin, Outbound, Publisher, Service, StatusBoard};
use skylapse::clock::{ManualClock, SharedClock, SystemClock};
use skylapse::protocol::{
    Command, CommandResult, ErrorCode, Event, Force, NetworkConnect, NetworkScan, Secret,
};
use skylapse::wifi::country::{Country, Regulatory};
use skylapse::wifi::machine::Timing;
use skylapse::wifi::{WifiNotice, WifiOptions, WifiService};

const NM: &str = "org.freedesktop.NetworkManager";
const MAIN: &str = "/org/freedesktop";
const MOCK: &str = "org.freedesktop.DBus.Mock";
const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
const WIRELESS: &str = "org.freedesktop.NetworkManager.Device.Wireless";
/// Every await in these tests is bounded by this, so a broken service fails instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Log capture: every record the crate logs, to prove passwords never reach logs (the binary's
// one logger, tests/logs.rs).

fn capture_logs() {
    crate::logs::init();
}

/// Whether any record contained `needle` (secrets must be `watch`ed before they are used, so
/// that no bounded buffer can hide them).
fn logs_contain(needle: &str) -> bool {
    crate::logs::seen(needle) || crate::logs::contains(needle)
}

// ---------------------------------------------------------------------------------------------
// Processes

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> Option<String> {
    let candidates = std::env::var("SKYLAPSE_PYTHON")
        .into_iter()
        .chain(["/usr/bin/python3".to_string(), "python3".to_string()]);
    for py in candidates {
        let ok = Process::new(&py)
            .args(["-c", "import dbusmock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(py);
        }
    }
    None
}

fn have_dbus_daemon() -> bool {
    Process::new("dbus-daemon")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Returns the interpreter, or None after printing why the test skips.
fn prerequisites(test: &str) -> Option<String> {
    let py = python();
    if py.is_none() || !have_dbus_daemon() {
        crate::peer_missing(
            test,
            "needs python3-dbusmock and dbus-daemon (apt-get install -y python3-dbusmock dbus)",
        );
        return None;
    }
    py
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("skylapse-wifi-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private bus with NM's mock on it.
struct MockNm {
    python: String,
    address: String,
    mock: Option<Proc>,
    _bus: Proc,
    dir: TempDir,
}

impl MockNm {
    fn start(python: String, tag: &str) -> MockNm {
        let dir = TempDir::new(tag);
        let socket = dir.0.join("bus");
        let config = dir.0.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("bus config");
        let mut child = Process::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        // The daemon prints its address once it listens.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("bus address");
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "bus address {address:?}");
        let mut nm = MockNm {
            python,
            address,
            mock: None,
            _bus: Proc(child),
            dir,
        };
        nm.start_mock();
        nm
    }

    /// Starts the mock and returns once it owns NM's name (awaited via NameOwnerChanged).
    fn start_mock(&mut self) {
        future::block_on(async {
            let conn = self.control().await;
            let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
            let mut owners = dbus
                .receive_name_owner_changed_with_args(&[(0, NM)])
                .await
                .expect("watch owner");
            let child = Process::new(&self.python)
                .args(["-m", "dbusmock", "--template", "networkmanager"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
                // The mock logs every call with its arguments (the PSK too): not our logs.
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m dbusmock");
            self.mock = Some(Proc(child));
            guard(async {
                while let Some(sig) = owners.next().await {
                    if sig.args().map(|a| a.new_owner().is_some()).unwrap_or(false) {
                        return;
                    }
                }
            })
            .await;
        });
    }

    fn kill_mock(&mut self) {
        self.mock = None;
    }

    async fn control(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .expect("address")
            .build()
            .await
            .expect("control connection")
    }

    fn leases_dir(&self) -> PathBuf {
        self.dir.0.clone()
    }
}

async fn guard<T>(f: impl std::future::Future<Output = T>) -> T {
    future::or(async { Some(f.await) }, async {
        async_io::Timer::after(GUARD).await;
        None
    })
    .await
    .expect("timed out waiting (guard)")
}

/// Calls a method on the mock and returns the reply body.
async fn call<B>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Message
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    conn.call_method(Some(NM), path, Some(iface), method, body)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn call_str<B>(conn: &zbus::Connection, path: &str, method: &str, body: &B) -> String
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    call(conn, path, MOCK, method, body)
        .await
        .body()
        .deserialize::<String>()
        .expect("string reply")
}

/// wlan0 (disconnected) with an IP4Config-able device and LastScan-aware RequestScan.
async fn add_wlan0(conn: &zbus::Connection) -> String {
    let dev = call_str(conn, MAIN, "AddWiFiDevice", &("wlan0", "wlan0", 30i32)).await;
    call(
        conn,
        &dev,
        MOCK,
        "AddProperty",
        &(
            DEVICE,
            "Ip4Config",
            ZValue::from(ObjectPath::from_static_str_unchecked("/")),
        ),
    )
    .await;
    call(
        conn,
        &dev,
        MOCK,
        "AddProperty",
        &(WIRELESS, "LastScan", ZValue::from(1000i64)),
    )
    .await;
    // Like NM: a finished scan moves LastScan (and emits PropertiesChanged).
    call(
        conn,
        &dev,
        MOCK,
        "AddMethod",
        &(
            WIRELESS,
            "RequestScan",
            "a{sv}",
            "",
            "self.Set('org.freedesktop.NetworkManager.Device.Wireless', 'LastScan', \
             dbus.Int64(self.Get('org.freedesktop.NetworkManager.Device.Wireless', 'LastScan') + 1000))",
        ),
    )
    .await;
    dev
}

async fn add_ap(
    conn: &zbus::Connection,
    dev: &str,
    name: &str,
    ssid: &str,
    strength: u8,
    security: u32,
) -> String {
    call_str(
        conn,
        MAIN,
        "AddAccessPoint",
        &(
            dev,
            name,
            ssid,
            "00:11:22:33:44:55",
            2u32,
            2437u32,
            54000u32,
            strength,
            security,
        ),
    )
    .await
}

/// An IP4Config object with one address, set on `dev` (emits PropertiesChanged like NM).
async fn give_address(conn: &zbus::Connection, dev: &str, ip: &str) {
    let path = "/org/freedesktop/NetworkManager/IP4Config/1";
    let mut addr: HashMap<String, ZValue> = HashMap::new();
    addr.insert("address".into(), ZValue::from(ip));
    addr.insert("prefix".into(), ZValue::from(24u32));
    let mut props: HashMap<String, ZValue> = HashMap::new();
    props.insert("AddressData".into(), ZValue::from(vec![addr]));
    let methods: Vec<(String, String, String, String)> = Vec::new();
    call(
        conn,
        MAIN,
        MOCK,
        "AddObject",
        &(
            path,
            "org.freedesktop.NetworkManager.IP4Config",
            props,
            methods,
        ),
    )
    .await;
    call(
        conn,
        dev,
        "org.freedesktop.DBus.Properties",
        "Set",
        &(
            DEVICE,
            "Ip4Config",
            ZValue::from(ObjectPath::from_static_str_unchecked(path)),
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The service under test

struct FakeRegulatory(Mutex<String>);

impl Regulatory for FakeRegulatory {
    fn get(&self) -> skylapse::clock::BoxFuture<'_, Result<Country, String>> {
        let code = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(Country { code, source: "iw" }) })
    }
    fn set<'a>(&'a self, code: &'a str) -> skylapse::clock::BoxFuture<'a, Result<(), String>> {
        *self.0.lock().unwrap() = code.to_string();
        Box::pin(async { Ok(()) })
    }
}

struct Harness {
    service: Arc<WifiService>,
    board: StatusBoard,
    rx: async_channel::Receiver<Outbound>,
    events: VecDeque<Event>,
    session: Arc<std::sync::atomic::AtomicBool>,
}

fn harness(address: &str, leases: &Path, clock: SharedClock, timing: Timing) -> Harness {
    capture_logs();
    let (publisher, rx) = Publisher::channel();
    let board = StatusBoard::new(publisher.clone());
    let session = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = session.clone();
    let options = WifiOptions {
        bus_address: Some(address.to_string()),
        timing,
        leases_dir: leases.to_path_buf(),
        regulatory: Arc::new(FakeRegulatory(Mutex::new("GB".into()))),
        ..WifiOptions::default()
    };
    let service = WifiService::start(
        options,
        clock,
        board.clone(),
        publisher,
        Arc::new(move || s.load(std::sync::atomic::Ordering::SeqCst)),
    );
    Harness {
        service,
        board,
        rx,
        events: VecDeque::new(),
        session,
    }
}

impl Harness {
    async fn run(&self, cmd: Command) -> CommandResult {
        let work = self
            .service
            .handle(Origin::Rest, &cmd)
            .expect("wifi claims the command");
        guard(work).await
    }

    /// Waits until the network block satisfies `pred`, collecting events meanwhile.
    async fn status_until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + GUARD;
        loop {
            let block = self.board.get("network");
            if pred(&block) {
                return block;
            }
            let msg = future::or(async { self.rx.recv().await.ok() }, async {
                async_io::Timer::at(deadline).await;
                None
            })
            .await
            .unwrap_or_else(|| panic!("network status never became {what}: {block}"));
            if let Outbound::Event(e) = msg {
                self.events.push_back(e);
            }
        }
    }

    async fn event(&mut self, kind: &str) -> Event {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(i) = self.events.iter().position(|e| e.event_type() == kind) {
                return self.events.remove(i).expect("present");
            }
            let msg = future::or(async { self.rx.recv().await.ok() }, async {
                async_io::Timer::at(deadline).await;
                None
            })
            .await
            .unwrap_or_else(|| panic!("no {kind} event; saw {:?}", self.events));
            if let Outbound::Event(e) = msg {
                self.events.push_back(e);
            }
        }
    }
}

fn connect_cmd(ssid: &str, password: Option<&str>, force: bool) -> Command {
    Command::NetworkConnect(NetworkConnect {
        ssid: ssid.into(),
        password: password.map(Secret::new),
        force,
    })
}

fn available(b: &Value) -> bool {
    b["available"] == true
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn scan_lists_networks_deduped_with_security_and_known_flags() {
    let Some(py) = prerequisites("scan") else {
        return;
    };
    let nm = MockNm::start(py, "scan");
    future::block_on(async {
        let conn = nm.control().await;
        let dev = add_wlan0(&conn).await;
        add_ap(&conn, &dev, "ap1", "Home", 40, 0x188).await;
        add_ap(&conn, &dev, "ap2", "Home", 85, 0x188).await;
        add_ap(&conn, &dev, "ap3", "Cafe", 60, 0).await;
        add_ap(&conn, &dev, "ap4", "", 99, 0x188).await;
        call_str(
            &conn,
            MAIN,
            "AddWiFiConnection",
            &(dev.as_str(), "cafe", "Cafe", ""),
        )
        .await;

        // On a clock that never moves the scan deadline never comes: only LastScan moving can
        // make this scan return.
        let clock = ManualClock::new(SystemTime::now());
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(clock.clone()),
            Timing::default(),
        );
        // Regression: right after finding NM at start the driver overwrote the fresh block with
        // an "unavailable" one, so `available` stayed false until the next NM signal.
        h.status_until("available", available).await;
        let reply = h
            .run(Command::NetworkScan(NetworkScan { refresh: true }))
            .await
            .expect("scan");
        assert_eq!(reply.kind, "network_scan_result");
        let nets = reply.data["networks"].as_array().expect("networks").clone();
        assert_eq!(nets.len(), 2, "{nets:?}");
        assert_eq!(nets[0]["ssid"], "Home");
        assert_eq!(nets[0]["signal"], 85);
        assert_eq!(nets[0]["security"], "WPA2");
        assert_eq!(nets[0]["frequency"], 2437);
        assert_eq!(nets[0]["known"], false);
        assert_eq!(nets[1]["ssid"], "Cafe");
        assert_eq!(nets[1]["security"], "Open");
        assert_eq!(nets[1]["known"], true);
        // refresh really asked NM to scan.
        let calls = call(&conn, &dev, MOCK, "GetMethodCalls", &("RequestScan",)).await;
        let calls: Vec<(u64, Vec<zbus::zvariant::OwnedValue>)> =
            calls.body().deserialize().expect("calls");
        assert_eq!(calls.len(), 1);
    });
}

#[test]
fn connect_succeeds_after_activation_and_an_address_and_password_stays_secret() {
    let Some(py) = prerequisites("connect") else {
        return;
    };
    let nm = MockNm::start(py, "connect");
    const PW: &str = "pw-connect-7f3a9c";
    crate::logs::watch(PW);
    future::block_on(async {
        let conn = nm.control().await;
        let dev = add_wlan0(&conn).await;
        add_ap(&conn, &dev, "home", "Home", 72, 0x100).await;
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(SystemClock),
            Timing::default(),
        );
        let notices = h.service.notices();
        h.status_until("available", available).await;

        let svc = h.service.clone();
        let pending = smol::spawn(async move {
            let cmd = connect_cmd("Home", Some(PW), false);
            let work = svc.handle(Origin::Rest, &cmd).expect("claimed");
            work.await
        });
        let started = h.event("wifi_connection_started").await;
        assert_eq!(started.data["ssid"], "Home");
        // NM (the mock) activates at once; the service must still wait for an address.
        give_address(&conn, &dev, "192.168.1.50").await;
        let connected = h.event("wifi_connected").await;
        assert_eq!(connected.data["ssid"], "Home");
        assert_eq!(connected.data["ip"], "192.168.1.50");
        assert_eq!(connected.data["signal"], 72);
        let reply = guard(pending).await.expect("connect reply");
        assert_eq!(reply.kind, "network_connect_result");
        assert_eq!(reply.data["success"], true);

        let block = h
            .status_until("wlan0 connected", |b| {
                b["interfaces"]["wlan0"]["connected"] == true
            })
            .await;
        assert_eq!(block["interfaces"]["wlan0"]["network"], "Home");
        assert_eq!(block["interfaces"]["wlan0"]["ip"], "192.168.1.50");
        assert_eq!(block["wifiCountry"]["country"], "GB");

        // The camera link hears about the new address.
        let notice = guard(async {
            loop {
                let n = notices.recv().await.expect("notice");
                let WifiNotice::AddressesChanged { client, .. } = &n;
                if client.is_some() {
                    return n;
                }
            }
        })
        .await;
        assert_eq!(
            notice,
            WifiNotice::AddressesChanged {
                client: Some("192.168.1.50".parse().unwrap()),
                ap: None
            }
        );

        // The PSK went to NM over D-Bus, as wpa-psk…
        let calls = call(
            &conn,
            "/org/freedesktop/NetworkManager",
            MOCK,
            "GetMethodCalls",
            &("AddAndActivateConnection",),
        )
        .await;
        let raw: &[u8] = &calls.data()[..];
        let text = String::from_utf8_lossy(raw);
        assert!(
            text.contains("wpa-psk") && text.contains(PW),
            "settings sent: {text:?}"
        );
        // …and nowhere else (the capture works: the attempt itself was logged).
        assert!(
            logs_contain("connecting to \"Home\""),
            "log capture is not working"
        );
        assert!(!logs_contain(PW), "password reached the logs");
        assert!(!format!("{:?}", h.events).contains(PW));
    });
}

#[test]
fn connect_failure_reports_nm_reason_without_the_password() {
    let Some(py) = prerequisites("connect-fail") else {
        return;
    };
    let nm = MockNm::start(py, "fail");
    const PW: &str = "pw-fail-51d0e2";
    crate::logs::watch(PW);
    future::block_on(async {
        let conn = nm.control().await;
        let dev = add_wlan0(&conn).await;
        add_ap(&conn, &dev, "home", "Home", 60, 0x100).await;
        // NM as it behaves with a wrong password: the device fails with reason 7 (no secrets).
        let code = "d = get_object(args[1])\n\
                    d.Set('org.freedesktop.NetworkManager.Device', 'State', dbus.UInt32(120))\n\
                    d.EmitSignal('org.freedesktop.NetworkManager.Device', 'StateChanged', 'uuu', \
                    [dbus.UInt32(120), dbus.UInt32(60), dbus.UInt32(7)])\n\
                    ret = (dbus.ObjectPath('/org/freedesktop/NetworkManager/Settings/x'), \
                    dbus.ObjectPath('/org/freedesktop/NetworkManager/ActiveConnection/x'))";
        call(
            &conn,
            "/org/freedesktop/NetworkManager",
            MOCK,
            "AddMethod",
            &(NM, "AddAndActivateConnection", "a{sa{sv}}oo", "oo", code),
        )
        .await;
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(SystemClock),
            Timing::default(),
        );
        h.status_until("available", available).await;
        let err = h
            .run(connect_cmd("Home", Some(PW), false))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ConnectionFailed);
        assert!(err.message.contains("no secrets"), "{}", err.message);
        assert!(!err.message.contains(PW));
        let failed = h.event("wifi_connection_failed").await;
        assert_eq!(failed.data["ssid"], "Home");
        assert!(
            failed.data["error"].as_str().unwrap().contains("password"),
            "{}",
            failed.data
        );
        assert!(!logs_contain(PW), "password reached the logs");
    });
}

#[test]
fn connect_without_progress_fails_at_the_deadline() {
    let Some(py) = prerequisites("connect-timeout") else {
        return;
    };
    let nm = MockNm::start(py, "timeout");
    future::block_on(async {
        let conn = nm.control().await;
        let dev = add_wlan0(&conn).await;
        add_ap(&conn, &dev, "home", "Home", 60, 0x100).await;
        // NM accepts the request and then never reports progress.
        let code = "ret = (dbus.ObjectPath('/org/freedesktop/NetworkManager/Settings/x'), \
                    dbus.ObjectPath('/org/freedesktop/NetworkManager/ActiveConnection/x'))";
        call(
            &conn,
            "/org/freedesktop/NetworkManager",
            MOCK,
            "AddMethod",
            &(NM, "AddAndActivateConnection", "a{sa{sv}}oo", "oo", code),
        )
        .await;
        let clock = ManualClock::new(SystemTime::now());
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(clock.clone()),
            Timing::default(),
        );
        h.status_until("available", available).await;
        let svc = h.service.clone();
        let pending = smol::spawn(async move {
            let cmd = connect_cmd("Home", None, false);
            svc.handle(Origin::Rest, &cmd).expect("claimed").await
        });
        h.event("wifi_connection_started").await;
        clock.advance(Duration::from_secs(31));
        let failed = h.event("wifi_connection_failed").await;
        assert!(
            failed.data["error"]
                .as_str()
                .unwrap()
                .contains("timed out after 30 s"),
            "{}",
            failed.data
        );
        let err = guard(pending).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ConnectionFailed);
    });
}

#[test]
fn disconnect_and_radio_off_and_the_session_policy() {
    let Some(py) = prerequisites("disconnect") else {
        return;
    };
    let nm = MockNm::start(py, "disconnect");
    future::block_on(async {
        let conn = nm.control().await;
        let dev = add_wlan0(&conn).await;
        add_ap(&conn, &dev, "home", "Home", 60, 0x100).await;
        give_address(&conn, &dev, "10.0.0.7").await;
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(SystemClock),
            Timing::default(),
        );
        h.status_until("available", available).await;
        h.run(connect_cmd("Home", Some("pw-disc-1234"), false))
            .await
            .expect("connect");
        h.status_until("connected", |b| {
            b["interfaces"]["wlan0"]["connected"] == true
        })
        .await;

        // A session runs: changes are refused unless forced.
        h.session.store(true, std::sync::atomic::Ordering::SeqCst);
        for cmd in [
            Command::NetworkDisconnect(Force { force: false }),
            Command::WifiDisable(Force { force: false }),
            connect_cmd("Home", None, false),
        ] {
            let e = h.run(cmd).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::PermissionDenied);
            assert!(e.message.contains("session"), "{}", e.message);
        }
        assert_eq!(
            h.board.get("network")["interfaces"]["wlan0"]["connected"],
            true
        );

        let r = h
            .run(Command::NetworkDisconnect(Force { force: true }))
            .await
            .expect("forced disconnect");
        assert_eq!(r.data["wasConnected"], true);
        h.status_until("disconnected", |b| {
            b["interfaces"]["wlan0"]["connected"] == false
        })
        .await;

        h.session.store(false, std::sync::atomic::Ordering::SeqCst);
        h.run(Command::WifiDisable(Force { force: false }))
            .await
            .expect("radio off");
        h.status_until("radio off", |b| b["wirelessEnabled"] == false)
            .await;
        let enabled = call(
            &conn,
            "/org/freedesktop/NetworkManager",
            "org.freedesktop.DBus.Properties",
            "Get",
            &(NM, "WirelessEnabled"),
        )
        .await;
        let enabled: zbus::zvariant::OwnedValue = enabled.body().deserialize().expect("bool");
        assert_eq!(bool::try_from(enabled).ok(), Some(false));
        h.run(Command::WifiEnable).await.expect("radio on");
        h.status_until("radio on", |b| b["wirelessEnabled"] == true)
            .await;
    });
}

#[test]
fn access_point_state_and_clients_follow_nm() {
    let Some(py) = prerequisites("ap") else {
        return;
    };
    let nm = MockNm::start(py, "ap");
    future::block_on(async {
        let conn = nm.control().await;
        add_wlan0(&conn).await;
        let ap0 = call_str(&conn, MAIN, "AddWiFiDevice", &("ap0", "ap0", 30i32)).await;
        let ap = add_ap(&conn, &ap0, "self", "skylapse-field", 100, 0x100).await;
        let profile = call_str(
            &conn,
            MAIN,
            "AddWiFiConnection",
            &(ap0.as_str(), "hotspot", "skylapse-field", ""),
        )
        .await;
        let expiry = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        std::fs::write(
            nm.leases_dir().join("dnsmasq-ap0.leases"),
            format!("{expiry} aa:bb:cc:00:11:22 10.42.0.23 EOS-R5 *\n"),
        )
        .unwrap();

        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(SystemClock),
            Timing::default(),
        );
        let b = h.status_until("available", available).await;
        assert_eq!(b["interfaces"]["ap0"]["active"], false);

        call_str(
            &conn,
            MAIN,
            "AddActiveConnection",
            &(
                vec![ap0.as_str()],
                profile.as_str(),
                ap.as_str(),
                "hotspot",
                2u32,
            ),
        )
        .await;
        let b = h
            .status_until("ap up", |b| b["interfaces"]["ap0"]["active"] == true)
            .await;
        assert_eq!(b["interfaces"]["ap0"]["ssid"], "skylapse-field");
        assert_eq!(b["interfaces"]["ap0"]["status"], "activated");
        assert_eq!(b["interfaces"]["ap0"]["clients"][0]["ip"], "10.42.0.23");
        assert_eq!(b["interfaces"]["ap0"]["clients"][0]["hostname"], "EOS-R5");
        // The AP is not the client link.
        assert_eq!(b["interfaces"]["wlan0"]["connected"], false);
        // NM does not signal DHCP leases: an explicit status read picks up a new client.
        std::fs::write(
            nm.leases_dir().join("dnsmasq-ap0.leases"),
            format!(
                "{expiry} aa:bb:cc:00:11:22 10.42.0.23 EOS-R5 *\n\
                 {expiry} 02:00:00:00:00:01 10.42.0.40 phone *\n"
            ),
        )
        .unwrap();
        let s = h.run(Command::GetNetworkStatus).await.expect("status");
        assert_eq!(
            s.data["interfaces"]["ap0"]["clients"][1]["hostname"],
            "phone"
        );

        call(&conn, MAIN, MOCK, "SetDeviceDisconnected", &(ap0.as_str(),)).await;
        let b = h
            .status_until("ap down", |b| b["interfaces"]["ap0"]["active"] == false)
            .await;
        assert_eq!(b["interfaces"]["ap0"]["status"], "disconnected");
    });
}

#[test]
fn networkmanager_leaving_and_returning_is_followed() {
    let Some(py) = prerequisites("nm-gone") else {
        return;
    };
    let mut nm = MockNm::start(py, "gone");
    future::block_on(async {
        let conn = nm.control().await;
        add_wlan0(&conn).await;
        let mut h = harness(
            &nm.address,
            &nm.leases_dir(),
            Arc::new(SystemClock),
            Timing::default(),
        );
        h.status_until("available", available).await;

        nm.kill_mock();
        let b = h
            .status_until("unavailable", |b| b["available"] == false)
            .await;
        assert!(b["error"]
            .as_str()
            .unwrap()
            .contains("NetworkManager is not reachable"));
        let e = h
            .run(Command::NetworkScan(NetworkScan { refresh: true }))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ServiceUnavailable);
        assert!(
            e.message
                .starts_with("NetworkManager is not reachable on the system D-Bus"),
            "{}",
            e.message
        );
        let e = h
            .run(connect_cmd("Home", Some("pw-gone-12345"), false))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ServiceUnavailable);
        // The status read still answers (with available: false).
        let s = h.run(Command::GetNetworkStatus).await.expect("status");
        assert_eq!(s.data["available"], false);

        nm.start_mock();
        h.status_until("available again", available).await;
        // A new NM instance: its devices appear afresh.
        let conn = nm.control().await;
        add_wlan0(&conn).await;
        let r = h
            .run(Command::NetworkScan(NetworkScan { refresh: false }))
            .await
            .expect("scan");
        assert_eq!(r.data["networks"], serde_json::json!([]));
    });
}

/// Without any D-Bus (a laptop, CI without the mock) the service runs and says why it can't help.
#[test]
fn without_a_bus_commands_are_unavailable() {
    let dir = TempDir::new("nobus");
    let address = format!("unix:path={}", dir.0.join("no-such-socket").display());
    future::block_on(async {
        let mut h = harness(&address, &dir.0, Arc::new(SystemClock), Timing::default());
        let b = h
            .status_until("reported", |b| b["available"] == false)
            .await;
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .contains("cannot connect to the system bus"),
            "{b}"
        );
        for cmd in [
            Command::NetworkScan(NetworkScan { refresh: false }),
            connect_cmd("Home", None, false),
            Command::WifiEnable,
        ] {
            let e = h.run(cmd).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::ServiceUnavailable);
            assert!(e
                .message
                .contains("NetworkManager is not reachable on the system D-Bus"));
        }
        // The country is not NM's: it still answers.
        let c = h.run(Command::GetWifiCountry).await.expect("country");
        assert_eq!(c.data["country"], "GB");
    });
}
