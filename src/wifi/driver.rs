//! The Wi-Fi driver: one smol task that owns the D-Bus connection and the [`WifiMachine`],
//! performs its actions through the NM proxies, and turns NM's signals into machine inputs.
//!
//! ```text
//!  service ──Request──┐
//!  D-Bus signals ─────┼──▶ driver loop ──handle(now, input)──▶ WifiMachine
//!  (forwarder tasks)  │         ▲                                   │ poll_action
//!  timer (Clock) ─────┘         └──── perform: zbus calls ◀─────────┘
//! ```
//!
//! Signals come from two match rules: every signal under `/org/freedesktop/NetworkManager`
//! (PropertiesChanged, Device.StateChanged, NM StateChanged) and `NameOwnerChanged` for NM's
//! bus name, so NM vanishing or (re)appearing is followed without polling. Without a system
//! bus at all the driver retries the bus at a slow pace (`bus_retry`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use serde_json::{json, Value};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value as ZValue};

use crate::app::{Publisher, StatusBoard};
use crate::clock::SharedClock;
use crate::protocol::{ApiError, Channel, ErrorCode, Event, EventFamily, Reply, Secret};
use crate::wifi::country::{ap_channel_warning, Regulatory};
use crate::wifi::machine::{Action, ConnectState, Input, Timing, WifiEvent, WifiMachine};
use crate::wifi::nm::{self, DeviceState, DeviceStateReason};

/// Tunables of the Wi-Fi service.
#[derive(Clone)]
pub struct WifiOptions {
    /// D-Bus address of the bus NM is on; None: the system bus (`DBUS_SYSTEM_BUS_ADDRESS`
    /// or the default socket).
    pub bus_address: Option<String>,
    /// The client (station) interface.
    pub client_iface: String,
    /// The access-point interface the camera and phone join.
    pub ap_iface: String,
    pub timing: Timing,
    /// How often to retry when there is no D-Bus at all.
    pub bus_retry: Duration,
    /// NM's dnsmasq lease files (`dnsmasq-<iface>.leases`) for the AP's clients.
    pub leases_dir: PathBuf,
    pub regulatory: Arc<dyn Regulatory>,
}

impl Default for WifiOptions {
    fn default() -> Self {
        WifiOptions {
            bus_address: None,
            client_iface: "wlan0".into(),
            ap_iface: "ap0".into(),
            timing: Timing::default(),
            bus_retry: Duration::from_secs(60),
            leases_dir: PathBuf::from("/var/lib/NetworkManager"),
            regulatory: Arc::new(crate::wifi::country::IwRegulatory::default()),
        }
    }
}

/// Told to the camera link (and anyone else) when the Pi's addresses change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WifiNotice {
    AddressesChanged {
        client: Option<Ipv4Addr>,
        ap: Option<Ipv4Addr>,
    },
}

/// Subscribers to [`WifiNotice`]s; each gets a small bounded queue (a notice is a hint: a
/// subscriber that lags loses old ones, never blocks the driver).
#[derive(Clone, Default)]
pub struct Notices {
    subs: Arc<Mutex<Vec<async_channel::Sender<WifiNotice>>>>,
}

impl Notices {
    pub fn subscribe(&self) -> async_channel::Receiver<WifiNotice> {
        let (tx, rx) = async_channel::bounded(8);
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    fn send(&self, n: WifiNotice) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            let _ = s.try_send(n.clone());
        }
    }
}

/// Scan requests answered by one running scan, at most.
const MAX_SCAN_WAITERS: usize = 32;

pub type Reply1 = async_channel::Sender<Result<Reply, ApiError>>;

/// What the service asks of the driver; each carries its own one-shot reply.
pub enum Request {
    /// Re-read the block (AP clients come from a file NM does not signal about).
    Status {
        reply: Reply1,
    },
    Scan {
        refresh: bool,
        reply: Reply1,
    },
    Connect {
        ssid: String,
        password: Option<Secret>,
        reply: Reply1,
    },
    Disconnect {
        reply: Reply1,
    },
    SetRadio {
        enabled: bool,
        reply: Reply1,
    },
    GetCountry {
        reply: Reply1,
    },
    SetCountry {
        code: String,
        reply: Reply1,
    },
}

enum Signal {
    NmOwner(bool),
    DeviceState {
        path: OwnedObjectPath,
        state: u32,
        reason: u32,
    },
    LastScan(i64),
    Changed,
    BusLost(String),
}

struct Bus {
    conn: zbus::Connection,
    /// Dropping them cancels the forwarders (and their match rules).
    _forwarders: Vec<smol::Task<()>>,
}

pub(crate) struct Driver {
    opts: WifiOptions,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    notices: Notices,
    machine: WifiMachine,
    signals_tx: async_channel::Sender<Signal>,
    signals_rx: async_channel::Receiver<Signal>,
    bus: Option<Bus>,
    nm_present: bool,
    /// Why NM is not usable, for SERVICE_UNAVAILABLE messages.
    unavailable: String,
    bus_retry_at: Option<Instant>,
    /// The active connection our current attempt created.
    our_active: Option<OwnedObjectPath>,
    connect_waiter: Option<Reply1>,
    scan_waiters: Vec<Reply1>,
    addresses: (Option<Ipv4Addr>, Option<Ipv4Addr>),
    country: Option<String>,
}

fn nm_unreachable(why: &str) -> ApiError {
    ApiError::unavailable(format!(
        "NetworkManager is not reachable on the system D-Bus: {why}"
    ))
}

/// Removes a secret from a message that came back from elsewhere (a D-Bus error may quote
/// its input).
fn scrub(msg: String, secret: Option<&Secret>) -> String {
    match secret {
        Some(s) if !s.expose().is_empty() && msg.contains(s.expose()) => {
            msg.replace(s.expose(), "***")
        }
        _ => msg,
    }
}

fn answer(reply: Reply1, result: Result<Reply, ApiError>) {
    let _ = reply.try_send(result);
}

impl Driver {
    pub(crate) fn new(
        opts: WifiOptions,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        notices: Notices,
    ) -> Self {
        let (signals_tx, signals_rx) = async_channel::bounded(64);
        Driver {
            machine: WifiMachine::new(opts.timing),
            opts,
            clock,
            status,
            publisher,
            notices,
            signals_tx,
            signals_rx,
            bus: None,
            nm_present: false,
            unavailable: "not connected yet".into(),
            bus_retry_at: None,
            our_active: None,
            connect_waiter: None,
            scan_waiters: Vec::new(),
            addresses: (None, None),
            country: None,
        }
    }

    pub(crate) async fn run(mut self, requests: async_channel::Receiver<Request>) {
        self.country = self.opts.regulatory.get().await.ok().map(|c| c.code);
        self.connect_bus().await;
        self.republish().await;
        enum Wake {
            Request(Option<Request>),
            Signal(Signal),
            Timer,
        }
        loop {
            let deadline = [self.machine.poll_timeout(), self.bus_retry_at]
                .into_iter()
                .flatten()
                .min();
            let clock = self.clock.clone();
            let timer = async move {
                match deadline {
                    Some(d) => clock.sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
                Wake::Timer
            };
            let wake = futures_lite::future::or(
                futures_lite::future::or(
                    async { Wake::Request(requests.recv().await.ok()) },
                    async {
                        match self.signals_rx.recv().await {
                            Ok(s) => Wake::Signal(s),
                            // We hold a sender ourselves: never closed.
                            Err(_) => std::future::pending().await,
                        }
                    },
                ),
                timer,
            )
            .await;
            match wake {
                Wake::Request(None) => break, // the service was dropped
                Wake::Request(Some(r)) => self.on_request(r).await,
                Wake::Signal(s) => self.on_signal(s).await,
                Wake::Timer => {
                    let now = self.clock.now();
                    if self.bus_retry_at.is_some_and(|t| now >= t) {
                        self.bus_retry_at = None;
                        self.connect_bus().await;
                        self.republish().await;
                    }
                    self.machine.handle(now, Input::Tick);
                }
            }
            self.run_actions().await;
        }
        log::debug!("wifi driver stopped");
    }

    // -----------------------------------------------------------------------------------------
    // Bus and NM presence

    async fn connect_bus(&mut self) {
        let conn = open_bus(self.opts.bus_address.as_deref()).await;
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.set_unavailable(format!("cannot connect to the system bus ({e})"));
                self.bus_retry_at = Some(self.clock.now() + self.opts.bus_retry);
                return;
            }
        };
        match self.start_forwarders(&conn).await {
            Ok(tasks) => {
                self.bus = Some(Bus {
                    conn: conn.clone(),
                    _forwarders: tasks,
                });
            }
            Err(e) => {
                self.set_unavailable(format!("cannot subscribe to NetworkManager signals ({e})"));
                self.bus_retry_at = Some(self.clock.now() + self.opts.bus_retry);
                return;
            }
        }
        let has_owner = match zbus::fdo::DBusProxy::new(&conn).await {
            Ok(p) => p
                .name_has_owner(nm::NM_BUS_NAME.try_into().expect("static bus name"))
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        self.set_nm_present(has_owner).await;
    }

    async fn start_forwarders(&self, conn: &zbus::Connection) -> zbus::Result<Vec<smol::Task<()>>> {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path_namespace(nm::NM_PATH)?
            .build();
        let mut nm_signals = zbus::MessageStream::for_match_rule(rule, conn, Some(64)).await?;
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let mut owners = dbus
            .receive_name_owner_changed_with_args(&[(0, nm::NM_BUS_NAME)])
            .await?;

        let tx = self.signals_tx.clone();
        let nm_task = crate::rt::spawn(async move {
            while let Some(msg) = nm_signals.next().await {
                let Ok(msg) = msg else { continue };
                if let Some(s) = translate(&msg) {
                    for s in s {
                        if tx.send(s).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx
                .send(Signal::BusLost("the D-Bus connection closed".into()))
                .await;
        });
        let tx = self.signals_tx.clone();
        let owner_task = crate::rt::spawn(async move {
            while let Some(sig) = owners.next().await {
                let present = sig.args().map(|a| a.new_owner().is_some()).unwrap_or(false);
                if tx.send(Signal::NmOwner(present)).await.is_err() {
                    return;
                }
            }
        });
        Ok(vec![nm_task, owner_task])
    }

    async fn set_nm_present(&mut self, present: bool) {
        if present == self.nm_present && present {
            return;
        }
        self.nm_present = present;
        let now = self.clock.now();
        if present {
            log::info!("NetworkManager is on the bus");
            self.unavailable.clear();
            self.refresh_status().await;
        } else {
            if self.bus.is_some() {
                self.set_unavailable("the name org.freedesktop.NetworkManager has no owner".into());
            }
            self.machine.handle(now, Input::NmLost);
            for w in self.scan_waiters.drain(..) {
                answer(w, Err(nm_unreachable(&self.unavailable)));
            }
        }
    }

    fn set_unavailable(&mut self, why: String) {
        if self.unavailable != why {
            log::warn!("Wi-Fi management unavailable: NetworkManager is not reachable: {why}");
        }
        self.unavailable = why;
        self.nm_present = false;
        self.publish_status(None);
    }

    fn conn(&self) -> Result<zbus::Connection, ApiError> {
        match &self.bus {
            Some(b) if self.nm_present => Ok(b.conn.clone()),
            _ => Err(nm_unreachable(&self.unavailable)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Inputs

    async fn on_signal(&mut self, s: Signal) {
        let now = self.clock.now();
        match s {
            Signal::NmOwner(present) => self.set_nm_present(present).await,
            Signal::BusLost(why) => {
                self.bus = None;
                self.set_unavailable(why);
                self.machine.handle(now, Input::NmLost);
                for w in self.scan_waiters.drain(..) {
                    answer(w, Err(nm_unreachable(&self.unavailable)));
                }
                self.bus_retry_at = Some(now + self.opts.bus_retry);
            }
            Signal::LastScan(v) => {
                self.machine.handle(now, Input::LastScan(v));
                self.machine.handle(now, Input::Changed);
            }
            Signal::Changed => self.machine.handle(now, Input::Changed),
            Signal::DeviceState {
                path,
                state,
                reason,
            } => {
                self.machine.handle(now, Input::Changed);
                if !self.nm_present {
                    return;
                }
                let Ok(conn) = self.conn() else { return };
                let client = self.client_device(&conn).await;
                if client.as_ref() != Some(&path) {
                    return;
                }
                let state = DeviceState::from_u32(state);
                let ours = if state == DeviceState::Activated {
                    match nm::uncached::<nm::DeviceProxy>(&conn, &path).await {
                        Ok(d) => d.active_connection().await.ok() == self.our_active,
                        Err(_) => false,
                    }
                } else {
                    false
                };
                let input = Input::DeviceState {
                    state,
                    reason: DeviceStateReason::from_u32(reason),
                    ours,
                };
                self.machine.handle(self.clock.now(), input);
            }
        }
    }

    async fn on_request(&mut self, r: Request) {
        let now = self.clock.now();
        match r {
            Request::Status { reply } => {
                self.republish().await;
                let block = self.status.get("network");
                answer(reply, Ok(Reply::new("network_status", block)));
            }
            Request::Scan { refresh, reply } => {
                if let Err(e) = self.conn() {
                    return answer(reply, Err(e));
                }
                if self.scan_waiters.len() >= MAX_SCAN_WAITERS {
                    return answer(
                        reply,
                        Err(ApiError::new(
                            ErrorCode::RateLimited,
                            "too many scan requests are waiting; try again in a few seconds",
                        )),
                    );
                }
                self.scan_waiters.push(reply);
                self.machine.handle(now, Input::Scan { refresh });
            }
            Request::Connect {
                ssid,
                password,
                reply,
            } => {
                if let Err(e) = self.conn() {
                    return answer(reply, Err(e));
                }
                if let Some(old) = self.connect_waiter.take() {
                    answer(
                        old,
                        Err(ApiError::new(
                            ErrorCode::ConnectionFailed,
                            "superseded by a new connection request",
                        )),
                    );
                }
                log::info!("Wi-Fi: connecting to {ssid:?}");
                self.our_active = None;
                self.connect_waiter = Some(reply);
                self.machine.handle(now, Input::Connect { ssid, password });
            }
            Request::Disconnect { reply } => {
                let r = self.disconnect().await;
                answer(reply, r);
            }
            Request::SetRadio { enabled, reply } => {
                let r = self.set_radio(enabled).await;
                answer(reply, r);
            }
            Request::GetCountry { reply } => {
                let r = match self.opts.regulatory.get().await {
                    Ok(c) => {
                        self.country = Some(c.code.clone());
                        self.republish().await;
                        Ok(Reply::new(
                            "wifi_country",
                            json!({"country": c.code, "source": c.source}),
                        ))
                    }
                    Err(e) => Err(ApiError::system(format!(
                        "cannot read the Wi-Fi country: {e}"
                    ))),
                };
                answer(reply, r);
            }
            Request::SetCountry { code, reply } => {
                let r = self.set_country(code).await;
                answer(reply, r);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Actions

    async fn run_actions(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Emit(e) => self.emit(e),
                Action::Activate { ssid, password } => {
                    let input = match self.activate(&ssid, password.as_ref()).await {
                        Ok(active) => {
                            self.our_active = Some(active);
                            Input::ActivationStarted
                        }
                        Err(error) => Input::ActivationRejected {
                            error: scrub(error, password.as_ref()),
                        },
                    };
                    self.machine.handle(self.clock.now(), input);
                    // A device that got there before we listened still counts.
                    if let Some(input) = self.current_device_input().await {
                        self.machine.handle(self.clock.now(), input);
                    }
                }
                Action::ReadAddress => {
                    let (ip, signal) = match self.conn() {
                        Ok(conn) => self.client_address(&conn).await,
                        Err(_) => (None, None),
                    };
                    self.machine
                        .handle(self.clock.now(), Input::Address { ip, signal });
                }
                Action::RequestScan => {
                    let input = self.request_scan().await;
                    self.machine.handle(self.clock.now(), input);
                }
                Action::ListNetworks => {
                    let result = match self.conn() {
                        Ok(conn) => self.list_networks(&conn).await,
                        Err(e) => Err(e),
                    };
                    for w in self.scan_waiters.drain(..) {
                        answer(w, result.clone());
                    }
                }
                Action::RefreshStatus => self.refresh_status().await,
            }
            self.settle_connect_waiter();
        }
    }

    fn settle_connect_waiter(&mut self) {
        let result = match self.machine.connect_state() {
            ConnectState::Connected { ssid } => {
                let (ip, _) = self.addresses;
                Ok(Reply::new(
                    "network_connect_result",
                    json!({"success": true, "ssid": ssid, "ip": ip.map(|i| i.to_string())}),
                ))
            }
            ConnectState::Failed { ssid, error } => Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                format!("Could not connect to {ssid}: {error}"),
            )
            .with_operation("network_connect")),
            _ => return,
        };
        if let Some(w) = self.connect_waiter.take() {
            answer(w, result);
        }
    }

    fn emit(&self, e: WifiEvent) {
        let (kind, data) = match e {
            WifiEvent::ConnectionStarted { ssid } => {
                ("wifi_connection_started", json!({"ssid": ssid}))
            }
            WifiEvent::Connected { ssid, ip, signal } => {
                log::info!("Wi-Fi: connected to {ssid:?} as {ip}");
                (
                    "wifi_connected",
                    json!({"ssid": ssid, "ip": ip.to_string(), "signal": signal}),
                )
            }
            WifiEvent::ConnectionFailed { ssid, error } => {
                log::warn!("Wi-Fi: connecting to {ssid:?} failed: {error}");
                (
                    "wifi_connection_failed",
                    json!({"ssid": ssid, "error": error}),
                )
            }
        };
        self.publisher.event(Event::new(
            Channel::Network,
            EventFamily::Network,
            kind,
            data,
        ));
    }

    /// Starts activation; returns the new active connection path or a secret-free error.
    async fn activate(
        &self,
        ssid: &str,
        password: Option<&Secret>,
    ) -> Result<OwnedObjectPath, String> {
        let conn = self.conn().map_err(|e| e.message)?;
        let device = self
            .client_device(&conn)
            .await
            .ok_or_else(|| format!("no Wi-Fi client device ({}) found", self.opts.client_iface))?;
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        if password.is_none() {
            if let Some(profile) = self.saved_profile(&conn, ssid).await {
                log::debug!("Wi-Fi: activating saved profile {}", profile.as_str());
                return manager
                    .activate_connection(
                        &profile,
                        &device,
                        &ObjectPath::from_static_str_unchecked("/"),
                    )
                    .await
                    .map_err(|e| format!("NetworkManager refused to activate: {}", short(&e)));
            }
        }
        let ap = self
            .strongest_ap(&conn, &device, ssid)
            .await
            .unwrap_or_else(|| OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/")));
        let mut settings: HashMap<&str, HashMap<&str, ZValue<'_>>> = HashMap::new();
        settings.insert(
            "connection",
            HashMap::from([
                ("type", ZValue::from("802-11-wireless")),
                ("id", ZValue::from(ssid)),
            ]),
        );
        settings.insert(
            "802-11-wireless",
            HashMap::from([
                ("ssid", ZValue::from(ssid.as_bytes())),
                ("mode", ZValue::from("infrastructure")),
            ]),
        );
        if let Some(pw) = password {
            // The PSK goes into this D-Bus message and nowhere else.
            settings.insert(
                "802-11-wireless-security",
                HashMap::from([
                    ("key-mgmt", ZValue::from("wpa-psk")),
                    ("psk", ZValue::from(pw.expose())),
                ]),
            );
        }
        manager
            .add_and_activate_connection(settings, &device, &ap)
            .await
            .map(|(_, active)| active)
            .map_err(|e| format!("NetworkManager refused the connection: {}", short(&e)))
    }

    /// The client device's state right now, as a machine input.
    async fn current_device_input(&self) -> Option<Input> {
        let conn = self.conn().ok()?;
        let path = self.client_device(&conn).await?;
        let d = nm::uncached::<nm::DeviceProxy>(&conn, &path).await.ok()?;
        let state = DeviceState::from_u32(d.state().await.ok()?);
        let (_, reason) = d.state_reason().await.unwrap_or((0, 0));
        let ours = d.active_connection().await.ok() == self.our_active && self.our_active.is_some();
        // Only "already activated with our connection" is news; failures arrive as signals.
        (state == DeviceState::Activated && ours).then_some(Input::DeviceState {
            state,
            reason: DeviceStateReason::from_u32(reason),
            ours,
        })
    }

    async fn disconnect(&mut self) -> Result<Reply, ApiError> {
        let conn = self.conn()?;
        let now = self.clock.now();
        self.machine.handle(
            now,
            Input::Cancel {
                reason: "cancelled: disconnect requested".into(),
            },
        );
        let device = self.client_device(&conn).await.ok_or_else(|| {
            ApiError::new(
                ErrorCode::NetworkError,
                format!("no Wi-Fi client device ({}) found", self.opts.client_iface),
            )
        })?;
        let dev = nm::uncached::<nm::DeviceProxy>(&conn, &device)
            .await
            .map_err(dbus_error)?;
        let active = dev.active_connection().await.map_err(dbus_error)?;
        if active.as_str() == "/" {
            return Ok(Reply::new(
                "network_disconnect_result",
                json!({"success": true, "wasConnected": false}),
            ));
        }
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(dbus_error)?;
        manager
            .deactivate_connection(&active)
            .await
            .map_err(dbus_error)?;
        log::info!("Wi-Fi: disconnected {}", self.opts.client_iface);
        Ok(Reply::new(
            "network_disconnect_result",
            json!({"success": true, "wasConnected": true}),
        ))
    }

    async fn set_radio(&mut self, enabled: bool) -> Result<Reply, ApiError> {
        let conn = self.conn()?;
        if !enabled {
            self.machine.handle(
                self.clock.now(),
                Input::Cancel {
                    reason: "cancelled: Wi-Fi was disabled".into(),
                },
            );
        }
        let manager = nm::NetworkManagerProxy::new(&conn)
            .await
            .map_err(dbus_error)?;
        manager
            .set_wireless_enabled(enabled)
            .await
            .map_err(dbus_error)?;
        log::info!(
            "Wi-Fi radio {}",
            if enabled { "enabled" } else { "disabled" }
        );
        let kind = if enabled {
            "wifi_enable_result"
        } else {
            "wifi_disable_result"
        };
        Ok(Reply::new(
            kind,
            json!({"success": true, "enabled": enabled}),
        ))
    }

    async fn set_country(&mut self, code: String) -> Result<Reply, ApiError> {
        self.opts
            .regulatory
            .set(&code)
            .await
            .map_err(|e| ApiError::system(format!("cannot set the Wi-Fi country: {e}")))?;
        let now = self
            .opts
            .regulatory
            .get()
            .await
            .map(|c| c.code)
            .unwrap_or_else(|_| code.clone());
        self.country = Some(now.clone());
        self.republish().await;
        let warning = match self.conn() {
            Ok(conn) => self
                .ap_channel(&conn)
                .await
                .and_then(|(band, ch)| ap_channel_warning(&now, &band, ch)),
            Err(_) => None,
        };
        log::info!("Wi-Fi country set to {now}");
        Ok(Reply::new(
            "wifi_country_set",
            json!({"success": true, "country": now, "persistent": false, "apChannelWarning": warning}),
        ))
    }

    async fn request_scan(&self) -> Input {
        let Ok(conn) = self.conn() else {
            return Input::ScanRequestFailed;
        };
        let Some(device) = self.client_device(&conn).await else {
            return Input::ScanRequestFailed;
        };
        let Ok(w) = nm::uncached::<nm::WirelessProxy>(&conn, &device).await else {
            return Input::ScanRequestFailed;
        };
        let baseline = w.last_scan().await.ok();
        match w.request_scan(HashMap::new()).await {
            Ok(()) => Input::ScanStarted { baseline },
            Err(e) => {
                log::debug!("RequestScan refused ({e}); listing known networks");
                Input::ScanRequestFailed
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    async fn wifi_devices(&self, conn: &zbus::Connection) -> Vec<(OwnedObjectPath, String)> {
        let Ok(manager) = nm::NetworkManagerProxy::new(conn).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in manager.get_devices().await.unwrap_or_default() {
            let Ok(d) = nm::uncached::<nm::DeviceProxy>(conn, &path).await else {
                continue;
            };
            if d.device_type().await.ok() != Some(2) {
                continue; // NM_DEVICE_TYPE_WIFI
            }
            if let Ok(name) = d.interface().await {
                out.push((path, name));
            }
        }
        out
    }

    /// The configured client interface, else the first Wi-Fi device that is not the AP one.
    async fn client_device(&self, conn: &zbus::Connection) -> Option<OwnedObjectPath> {
        let devices = self.wifi_devices(conn).await;
        let named = devices
            .iter()
            .find(|(_, n)| *n == self.opts.client_iface)
            .or_else(|| devices.iter().find(|(_, n)| *n != self.opts.ap_iface));
        named.map(|(p, _)| p.clone())
    }

    async fn saved_profile(&self, conn: &zbus::Connection, ssid: &str) -> Option<OwnedObjectPath> {
        let settings = nm::SettingsProxy::new(conn).await.ok()?;
        for path in settings.list_connections().await.ok()? {
            let Ok(c) = nm::uncached::<nm::ConnectionProxy>(conn, &path).await else {
                continue;
            };
            let Ok(s) = c.get_settings().await else {
                continue;
            };
            let wifi = s.get("802-11-wireless");
            let same_ssid = wifi
                .and_then(|w| w.get("ssid"))
                .and_then(bytes_of)
                .is_some_and(|b| b == ssid.as_bytes());
            let is_ap = wifi
                .and_then(|w| w.get("mode"))
                .and_then(str_of)
                .is_some_and(|m| m == "ap");
            if same_ssid && !is_ap {
                return Some(path);
            }
        }
        None
    }

    async fn known_ssids(&self, conn: &zbus::Connection) -> Vec<Vec<u8>> {
        let Ok(settings) = nm::SettingsProxy::new(conn).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in settings.list_connections().await.unwrap_or_default() {
            let Ok(c) = nm::uncached::<nm::ConnectionProxy>(conn, &path).await else {
                continue;
            };
            if let Ok(s) = c.get_settings().await {
                if let Some(ssid) = s
                    .get("802-11-wireless")
                    .and_then(|w| w.get("ssid"))
                    .and_then(bytes_of)
                {
                    out.push(ssid);
                }
            }
        }
        out
    }

    async fn access_points(
        &self,
        conn: &zbus::Connection,
        device: &OwnedObjectPath,
    ) -> Vec<(OwnedObjectPath, ApInfo)> {
        let Ok(w) = nm::uncached::<nm::WirelessProxy>(conn, device).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in w.get_all_access_points().await.unwrap_or_default() {
            if let Some(info) = read_ap(conn, &path).await {
                out.push((path, info));
            }
        }
        out
    }

    async fn strongest_ap(
        &self,
        conn: &zbus::Connection,
        device: &OwnedObjectPath,
        ssid: &str,
    ) -> Option<OwnedObjectPath> {
        self.access_points(conn, device)
            .await
            .into_iter()
            .filter(|(_, ap)| ap.ssid == ssid.as_bytes())
            .max_by_key(|(_, ap)| ap.strength)
            .map(|(p, _)| p)
    }

    async fn list_networks(&self, conn: &zbus::Connection) -> Result<Reply, ApiError> {
        let device = self.client_device(conn).await.ok_or_else(|| {
            ApiError::new(
                ErrorCode::WifiScanFailed,
                format!("no Wi-Fi client device ({}) found", self.opts.client_iface),
            )
        })?;
        let known = self.known_ssids(conn).await;
        let aps = self.access_points(conn, &device).await;
        let networks = dedupe_networks(aps.into_iter().map(|(_, ap)| ap).collect(), &known);
        Ok(Reply::new(
            "network_scan_result",
            json!({ "networks": networks }),
        ))
    }

    /// The client interface's first IPv4 address and the signal of its network.
    async fn client_address(&self, conn: &zbus::Connection) -> (Option<Ipv4Addr>, Option<u8>) {
        let Some(device) = self.client_device(conn).await else {
            return (None, None);
        };
        let ip = device_ipv4(conn, &device).await;
        let signal = self.client_signal(conn, &device).await;
        (ip, signal)
    }

    async fn client_signal(&self, conn: &zbus::Connection, device: &OwnedObjectPath) -> Option<u8> {
        let w = nm::uncached::<nm::WirelessProxy>(conn, device).await.ok()?;
        if let Ok(ap) = w.active_access_point().await {
            if ap.as_str() != "/" {
                if let Some(info) = read_ap(conn, &ap).await {
                    return Some(info.strength);
                }
            }
        }
        // No ActiveAccessPoint (older NM, the mock): the strongest AP of the active SSID.
        let ssid = active_connection_id(conn, device).await?;
        self.access_points(conn, device)
            .await
            .into_iter()
            .filter(|(_, ap)| ap.ssid == ssid.as_bytes())
            .map(|(_, ap)| ap.strength)
            .max()
    }

    /// The AP profile's band and channel (from its active connection's settings).
    async fn ap_channel(&self, conn: &zbus::Connection) -> Option<(String, u32)> {
        let devices = self.wifi_devices(conn).await;
        let (path, _) = devices.iter().find(|(_, n)| *n == self.opts.ap_iface)?;
        let s = active_settings(conn, path).await?;
        let w = s.get("802-11-wireless")?;
        let band = w.get("band").and_then(str_of).unwrap_or_default();
        let channel = match w.get("channel").map(|v| &**v) {
            Some(ZValue::U32(c)) => *c,
            _ => 0,
        };
        Some((band, channel))
    }

    // -----------------------------------------------------------------------------------------
    // Status block

    /// Publishes the block again: re-read from NM when it is there, else the "unavailable" one.
    async fn republish(&mut self) {
        if self.conn().is_ok() {
            self.refresh_status().await;
        } else {
            self.publish_status(None);
        }
    }

    async fn refresh_status(&mut self) {
        let Ok(conn) = self.conn() else {
            self.publish_status(None);
            return;
        };
        let snapshot = self.read_status(&conn).await;
        let addresses = (snapshot.client_ip, snapshot.ap_ip);
        if addresses != self.addresses {
            self.addresses = addresses;
            self.notices.send(WifiNotice::AddressesChanged {
                client: addresses.0,
                ap: addresses.1,
            });
        }
        self.publish_status(Some(snapshot));
    }

    async fn read_status(&self, conn: &zbus::Connection) -> Snapshot {
        let manager = nm::NetworkManagerProxy::new(conn).await.ok();
        let radio = match &manager {
            Some(m) => m.wireless_enabled().await.ok(),
            None => None,
        };
        let mut snap = Snapshot {
            radio,
            ..Default::default()
        };
        for (path, name) in self.wifi_devices(conn).await {
            let Ok(d) = nm::uncached::<nm::DeviceProxy>(conn, &path).await else {
                continue;
            };
            let state = DeviceState::from_u32(d.state().await.unwrap_or(0));
            let settings = active_settings(conn, &path).await;
            let wifi = settings.as_ref().and_then(|s| s.get("802-11-wireless"));
            let ssid = wifi
                .and_then(|w| w.get("ssid"))
                .and_then(bytes_of)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let ap_mode = wifi
                .and_then(|w| w.get("mode"))
                .and_then(str_of)
                .is_some_and(|m| m == "ap");
            let ip = device_ipv4(conn, &path).await;
            if name == self.opts.ap_iface || (ap_mode && snap.ap.is_none()) {
                snap.ap_ip = ip;
                snap.ap = Some(DeviceSnap {
                    iface: name.clone(),
                    state,
                    ssid: ssid.clone(),
                    ip,
                    signal: None,
                });
            }
            if name == self.opts.client_iface && !ap_mode {
                snap.client_ip = ip;
                let signal = if state == DeviceState::Activated {
                    self.client_signal(conn, &path).await
                } else {
                    None
                };
                snap.client = Some(DeviceSnap {
                    iface: name,
                    state,
                    ssid,
                    ip,
                    signal,
                });
            }
        }
        snap
    }

    /// Builds and stores the `network` block (from `snap`, or "unavailable" when None).
    fn publish_status(&self, snap: Option<Snapshot>) {
        let available = self.nm_present && self.bus.is_some();
        let country = json!({"country": self.country});
        let block = match snap.filter(|_| available) {
            None => json!({
                "available": false,
                "error": format!("NetworkManager is not reachable on the system D-Bus: {}", self.unavailable),
                "interfaces": {
                    self.opts.client_iface.as_str(): {"active": false, "network": null, "ip": null, "signal": null, "connected": false},
                    self.opts.ap_iface.as_str(): {"active": false, "ssid": null, "status": "unknown", "clients": []},
                },
                "wifiCountry": country,
            }),
            Some(s) => {
                let client = match &s.client {
                    Some(c) => {
                        let connected = c.state == DeviceState::Activated;
                        json!({
                            "active": connected,
                            "connected": connected,
                            "network": if connected { json!(c.ssid) } else { Value::Null },
                            "ip": c.ip.map(|i| i.to_string()),
                            "signal": c.signal,
                            "state": c.state.as_str(),
                        })
                    }
                    None => {
                        json!({"active": false, "network": null, "ip": null, "signal": null, "connected": false, "state": "absent"})
                    }
                };
                let ap = match &s.ap {
                    Some(a) => {
                        let up = a.state == DeviceState::Activated;
                        json!({
                            "active": up,
                            "ssid": a.ssid,
                            "status": a.state.as_str(),
                            "ip": a.ip.map(|i| i.to_string()),
                            "interface": a.iface,
                            "clients": read_leases(&self.opts.leases_dir, &a.iface, self.clock.wall()),
                        })
                    }
                    None => {
                        json!({"active": false, "ssid": null, "status": "absent", "clients": []})
                    }
                };
                json!({
                    "available": true,
                    "wirelessEnabled": s.radio,
                    "interfaces": {
                        self.opts.client_iface.as_str(): client,
                        self.opts.ap_iface.as_str(): ap,
                    },
                    "wifiCountry": country,
                })
            }
        };
        self.status.set("network", block);
    }
}

#[derive(Default)]
struct Snapshot {
    radio: Option<bool>,
    client: Option<DeviceSnap>,
    ap: Option<DeviceSnap>,
    client_ip: Option<Ipv4Addr>,
    ap_ip: Option<Ipv4Addr>,
}

struct DeviceSnap {
    iface: String,
    state: DeviceState,
    ssid: Option<String>,
    ip: Option<Ipv4Addr>,
    signal: Option<u8>,
}

fn dbus_error(e: zbus::Error) -> ApiError {
    ApiError::new(
        ErrorCode::NetworkError,
        format!("NetworkManager: {}", short(&e)),
    )
}

/// A D-Bus error's first line, bounded (a mock or a daemon may attach a whole traceback).
fn short(e: &zbus::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(240) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// Turns one NM signal into driver signals (AP property churn is dropped here).
fn translate(msg: &zbus::Message) -> Option<Vec<Signal>> {
    let header = msg.header();
    let path = header.path()?.to_owned();
    let iface = header.interface()?.to_string();
    let member = header.member()?.to_string();
    match (iface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (changed_iface, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) =
                msg.body().deserialize().ok()?;
            if changed_iface == nm::ACCESS_POINT_IFACE {
                return None;
            }
            let mut out = Vec::new();
            if changed_iface == nm::WIRELESS_IFACE {
                if let Some(ZValue::I64(v)) = changed.get("LastScan").map(|v| &**v) {
                    out.push(Signal::LastScan(*v));
                }
            }
            out.push(Signal::Changed);
            Some(out)
        }
        (nm::DEVICE_IFACE, "StateChanged") => {
            let (state, _old, reason): (u32, u32, u32) = msg.body().deserialize().ok()?;
            Some(vec![Signal::DeviceState {
                path: path.into(),
                state,
                reason,
            }])
        }
        ("org.freedesktop.NetworkManager", "StateChanged" | "DeviceAdded" | "DeviceRemoved") => {
            Some(vec![Signal::Changed])
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApInfo {
    pub ssid: Vec<u8>,
    pub strength: u8,
    pub security: &'static str,
    pub frequency: u32,
}

async fn read_ap(conn: &zbus::Connection, path: &OwnedObjectPath) -> Option<ApInfo> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(nm::NM_BUS_NAME)
        .ok()?
        .path(path.as_ref())
        .ok()?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .ok()?;
    let all = props
        .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
            nm::ACCESS_POINT_IFACE,
        ))
        .await
        .ok()?;
    let u32_of = |k: &str| match all.get(k).map(|v| &**v) {
        Some(ZValue::U32(n)) => *n,
        _ => 0,
    };
    let strength = match all.get("Strength").map(|v| &**v) {
        Some(ZValue::U8(n)) => *n,
        _ => 0,
    };
    Some(ApInfo {
        ssid: all.get("Ssid").and_then(bytes_of).unwrap_or_default(),
        strength,
        security: nm::security_label(u32_of("Flags"), u32_of("WpaFlags"), u32_of("RsnFlags")),
        frequency: u32_of("Frequency"),
    })
}

/// One entry per SSID, the strongest kept; hidden (empty or all-zero) SSIDs skipped; strongest
/// first.
pub(crate) fn dedupe_networks(aps: Vec<ApInfo>, known: &[Vec<u8>]) -> Vec<Value> {
    let mut best: Vec<ApInfo> = Vec::new();
    for ap in aps {
        if ap.ssid.is_empty() || ap.ssid.iter().all(|b| *b == 0) {
            continue;
        }
        match best.iter_mut().find(|b| b.ssid == ap.ssid) {
            Some(b) if b.strength >= ap.strength => {}
            Some(b) => *b = ap,
            None => best.push(ap),
        }
    }
    best.sort_by(|a, b| b.strength.cmp(&a.strength).then(a.ssid.cmp(&b.ssid)));
    best.into_iter()
        .map(|ap| {
            json!({
                "ssid": String::from_utf8_lossy(&ap.ssid),
                "signal": ap.strength,
                "security": ap.security,
                "frequency": ap.frequency,
                "channel": nm::channel_of(ap.frequency),
                "known": known.contains(&ap.ssid),
            })
        })
        .collect()
}

async fn device_ipv4(conn: &zbus::Connection, device: &OwnedObjectPath) -> Option<Ipv4Addr> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let cfg = d.ip4_config().await.ok()?;
    if cfg.as_str() == "/" {
        return None;
    }
    let ip4 = nm::uncached::<nm::Ip4ConfigProxy>(conn, &cfg).await.ok()?;
    ip4.address_data()
        .await
        .ok()?
        .iter()
        .find_map(|a| str_of(a.get("address")?)?.parse().ok())
}

async fn active_connection_id(conn: &zbus::Connection, device: &OwnedObjectPath) -> Option<String> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let active = d.active_connection().await.ok()?;
    if active.as_str() == "/" {
        return None;
    }
    let ac = nm::uncached::<nm::ActiveConnectionProxy>(conn, &active)
        .await
        .ok()?;
    ac.id().await.ok()
}

/// Settings (secret-free) of the profile active on `device`.
async fn active_settings(
    conn: &zbus::Connection,
    device: &OwnedObjectPath,
) -> Option<nm::SettingsMap> {
    let d = nm::uncached::<nm::DeviceProxy>(conn, device).await.ok()?;
    let active = d.active_connection().await.ok()?;
    if active.as_str() == "/" {
        return None;
    }
    let ac = nm::uncached::<nm::ActiveConnectionProxy>(conn, &active)
        .await
        .ok()?;
    let profile = ac.connection().await.ok()?;
    let c = nm::uncached::<nm::ConnectionProxy>(conn, &profile)
        .await
        .ok()?;
    c.get_settings().await.ok()
}

fn str_of(v: &OwnedValue) -> Option<String> {
    match &**v {
        ZValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

fn bytes_of(v: &OwnedValue) -> Option<Vec<u8>> {
    match &**v {
        ZValue::Array(a) => a
            .iter()
            .map(|b| match b {
                ZValue::U8(b) => Some(*b),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// AP clients from NM's dnsmasq lease file (`<expiry> <mac> <ip> <hostname> <client-id>`),
/// unexpired leases only. A lease outlives a client that left quietly, so this is "recently
/// joined", not "associated right now".
pub(crate) fn read_leases(
    dir: &std::path::Path,
    iface: &str,
    now: std::time::SystemTime,
) -> Vec<Value> {
    let path = dir.join(format!("dnsmasq-{iface}.leases"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse_leases(&text, now)
}

pub(crate) fn parse_leases(text: &str, now: std::time::SystemTime) -> Vec<Value> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    text.lines()
        .take(256)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let expiry: u64 = f.next()?.parse().ok()?;
            let mac = f.next()?;
            let ip: Ipv4Addr = f.next()?.parse().ok()?;
            let host = f.next().filter(|h| *h != "*");
            // expiry 0 means an infinite lease.
            (expiry == 0 || expiry > now)
                .then(|| json!({"mac": mac, "ip": ip.to_string(), "hostname": host}))
        })
        .collect()
}

/// Connects to the bus at `address` (default: the system bus). A `unix:path=` socket is
/// opened here: zbus would open it through `blocking::unblock`, and a thread of that pool
/// (blocking 1.7) never exits once started; it wakes every 500 ms for the rest of the
/// process, 2 wake-ups/s on an idle Pi. Other transports are left to zbus.
async fn open_bus(address: Option<&str>) -> zbus::Result<zbus::Connection> {
    let system;
    let addr = match address {
        Some(a) => a,
        None => {
            system = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".into());
            system.as_str()
        }
    };
    if let Some(path) = unix_socket_path(addr) {
        let stream = std::os::unix::net::UnixStream::connect(path)?;
        return zbus::connection::Builder::async_io_unix_stream(stream)
            .build()
            .await;
    }
    match address {
        Some(a) => zbus::connection::Builder::address(a)?.build().await,
        None => zbus::Connection::system().await,
    }
}

/// The socket path of a plain `unix:path=…` D-Bus address (first of a `;` list; a `guid` key
/// is allowed), or `None` for anything else (escaped values, abstract sockets, TCP…).
fn unix_socket_path(address: &str) -> Option<&str> {
    let first = address.split(';').next()?.trim();
    let keys = first.strip_prefix("unix:")?;
    let mut path = None;
    for kv in keys.split(',') {
        match kv.split_once('=')? {
            ("path", p) if !p.is_empty() && !p.contains('%') => path = Some(p),
            ("guid", _) => {}
            _ => return None,
        }
    }
    path
}

#[cfg(test)]
mod bus_address_tests {
    use super::unix_socket_path;

    #[test]
    fn plain_unix_paths_only() {
        assert_eq!(
            unix_socket_path("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            unix_socket_path("unix:path=/tmp/b,guid=0123;tcp:host=x,port=1"),
            Some("/tmp/b")
        );
        assert_eq!(unix_socket_path("unix:abstract=/tmp/dbus-x"), None);
        assert_eq!(unix_socket_path("unix:path=/tmp/a%20b"), None);
        assert_eq!(unix_socket_path("tcp:host=127.0.0.1,port=1"), None);
        assert_eq!(unix_socket_path("unix:path="), None);
        assert_eq!(unix_socket_path(""), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(ssid: &str, strength: u8) -> ApInfo {
        ApInfo {
            ssid: ssid.as_bytes().to_vec(),
            strength,
            security: "WPA2",
            frequency: 2437,
        }
    }

    #[test]
    fn scan_list_keeps_the_strongest_per_ssid_and_skips_hidden() {
        let list = dedupe_networks(
            vec![
                ap("Home", 40),
                ap("", 90),
                ap("Home", 70),
                ap("Cafe", 50),
                ap("\0\0", 99),
            ],
            &[b"Cafe".to_vec()],
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["ssid"], "Home");
        assert_eq!(list[0]["signal"], 70);
        assert_eq!(list[0]["known"], false);
        assert_eq!(list[0]["channel"], 6);
        assert_eq!(list[1]["ssid"], "Cafe");
        assert_eq!(list[1]["known"], true);
    }

    #[test]
    fn leases_drop_expired_and_malformed_lines() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let text = "2000 aa:bb:cc:dd:ee:ff 192.168.4.2 phone *\n\
                    500 11:22:33:44:55:66 192.168.4.3 old *\n\
                    garbage\n\
                    0 22:22:22:22:22:22 192.168.4.9 * *\n";
        let clients = parse_leases(text, now);
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0]["hostname"], "phone");
        assert_eq!(clients[1]["hostname"], Value::Null);
    }

    #[test]
    fn scrub_removes_a_quoted_secret() {
        let s = Secret::new("hunter22");
        assert_eq!(
            scrub("bad psk 'hunter22'".into(), Some(&s)),
            "bad psk '***'"
        );
        assert_eq!(scrub("fine".into(), None), "fine");
    }
}
