//! The Wi-Fi driver: [`crate::driver::run`] with the [`WifiMachine`] and `WifiExec`, the
//! machine's effects against NetworkManager.
//!
//! ```text
//!  service ──Request──┐                            ┌─▶ WifiMachine ──actions──▶ perform
//!  NM signals ────────┼──▶ inbox ──▶ driver loop ──┤                               │
//!  (forwarder tasks)  │    ▲                       └─ bus retry (own deadline)     ▼
//!  NM worker ─results─┘    └──────── job results ◀── NM worker: D-Bus calls, in order
//! ```
//!
//! Every D-Bus call may wait (NM busy, a daemon hanging), so none runs in the loop: `perform`
//! and the request handlers queue a job on the NM worker (one task, a bounded queue, jobs run
//! in order so NM's answers arrive in the order they were asked), and each job answers with a
//! message in the inbox. Without a system bus at all the driver retries the bus at a slow
//! pace (`bus_retry`).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use zbus::zvariant::OwnedObjectPath;

use super::bus::{self, Signal};
use super::machine::{Action, ConnectState, Input, WifiEvent, WifiMachine};
use super::nm::{self, DeviceState, DeviceStateReason};
use super::ops::{self, DeviceReport, Nm};
use super::status::{self, Snapshot};
use super::types::MAX_SCAN_WAITERS;
pub use super::types::{Notices, Reply1, Request, WifiNotice, WifiOptions};
use crate::app::{Publisher, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::{Executor, Flow, Inbox};
use crate::machine::{Machine, Now};
use crate::protocol::messages::{
    NetworkConnectResult, NetworkStatus, SavedNetworks, WifiConnected, WifiConnectionFailed,
    WifiConnectionStarted, WifiCountryReply,
};
use crate::protocol::{ApiError, ErrorCode, Reply, Secret};

/// What the Wi-Fi driver's inbox carries: requests, NM's signals, and the NM worker's answers.
pub(crate) enum Msg {
    Request(Request),
    Signal(Signal),
    /// The bus was opened (with its signal forwarders and whether NM is on it), or why not.
    Bus(Result<(zbus::Connection, Vec<smol::Task<()>>, bool), String>),
    /// A machine input computed by a job.
    Input(Input),
    /// Activation answered (the secret already scrubbed from an error), with the device's
    /// state right after.
    Activated {
        result: Result<OwnedObjectPath, String>,
        device: Option<DeviceReport>,
    },
    /// The client device changed state (a signal, checked against the client device).
    Device(DeviceReport),
    /// A fresh view of NM's devices; `reply` is answered once it is published (with the
    /// network block when `result` is `None`).
    Snapshot {
        snap: Snapshot,
        reply: Option<(Reply1, Option<Result<Reply, ApiError>>)>,
    },
    /// The scan list, for everyone waiting on the scan.
    Listed(Result<Reply, ApiError>),
    /// The regulatory domain was read or set (`country`: the one now in force).
    Country {
        country: Option<String>,
        reply: Option<(Reply1, Result<Reply, ApiError>)>,
    },
    /// A job's answer to a request.
    Reply(Reply1, Result<Reply, ApiError>),
}

/// NM worker jobs waiting at most; more answer "busy" (requests) or are dropped (hints).
const MAX_JOBS: usize = 32;

type Job = BoxFuture<'static, Option<Msg>>;

struct Bus {
    conn: zbus::Connection,
    /// Dropping them cancels the forwarders (and their match rules).
    _forwarders: Vec<smol::Task<()>>,
}

pub(crate) struct WifiExec {
    opts: Arc<WifiOptions>,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    notices: Notices,
    inbox: Inbox<Msg>,
    jobs: async_channel::Sender<Job>,
    bus: Option<Bus>,
    nm_present: bool,
    /// Why NM is not usable, for SERVICE_UNAVAILABLE messages.
    unavailable: String,
    bus_retry_at: Option<Instant>,
    /// The active connection our current attempt created.
    our_active: Option<OwnedObjectPath>,
    connect_waiter: Option<Reply1>,
    /// The address the last successful connection reported (for its reply).
    connected_ip: Option<Ipv4Addr>,
    scan_waiters: Vec<Reply1>,
    addresses: (Option<Ipv4Addr>, Option<Ipv4Addr>),
    country: Option<String>,
    _worker: smol::Task<()>,
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

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        "NetworkManager has too many requests waiting; try again in a few seconds",
    )
}

/// Starts the Wi-Fi driver; returns its inbox and the task (dropping it stops the driver).
pub(crate) fn start(
    opts: WifiOptions,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    notices: Notices,
) -> (Inbox<Msg>, smol::Task<()>) {
    let (inbox, rx) = crate::driver::inbox(64);
    let (jobs, queue) = async_channel::bounded::<Job>(MAX_JOBS);
    let results = inbox.clone();
    let worker = crate::rt::spawn(async move {
        while let Ok(job) = queue.recv().await {
            if let Some(msg) = job.await {
                if results.send(msg).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut exec = WifiExec {
        opts: Arc::new(opts),
        clock: clock.clone(),
        status,
        publisher,
        notices,
        inbox: inbox.clone(),
        jobs,
        bus: None,
        nm_present: false,
        unavailable: "not connected yet".into(),
        bus_retry_at: None,
        our_active: None,
        connect_waiter: None,
        connected_ip: None,
        scan_waiters: Vec::new(),
        addresses: (None, None),
        country: None,
        _worker: worker,
    };
    // The bus first: the first block published says whether NM can be reached.
    exec.connect_bus();
    let opts = exec.opts.clone();
    exec.job(async move {
        let country = opts.regulatory.get().await.ok().map(|c| c.code);
        Some(Msg::Country {
            country,
            reply: None,
        })
    });
    let machine = WifiMachine::new(exec.opts.timing);
    let task = crate::rt::spawn(async move {
        crate::driver::run(machine, exec, rx, clock).await;
        log::debug!("wifi driver stopped");
    });
    (inbox, task)
}

impl WifiExec {
    /// Queues `job` on the NM worker; false if the queue is full (the job is dropped).
    fn job(&self, job: impl std::future::Future<Output = Option<Msg>> + Send + 'static) -> bool {
        self.jobs.try_send(Box::pin(job)).is_ok()
    }

    /// Queues a job that answers `reply`; a full queue answers "busy" at once.
    fn job_for(
        &self,
        reply: Reply1,
        job: impl std::future::Future<Output = Result<Reply, ApiError>> + Send + 'static,
    ) {
        let r = reply.clone();
        if !self.job(async move { Some(Msg::Reply(r, job.await)) }) {
            answer(reply, Err(busy()));
        }
    }

    /// NM, when it is on the bus.
    fn nm(&self) -> Result<Nm, ApiError> {
        match &self.bus {
            Some(b) if self.nm_present => Ok(Nm {
                conn: b.conn.clone(),
                opts: self.opts.clone(),
            }),
            _ => Err(nm_unreachable(&self.unavailable)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Bus and NM presence

    /// Opens the bus on the worker; the answer is [`Msg::Bus`].
    fn connect_bus(&mut self) {
        let address = self.opts.bus_address.clone();
        let inbox = self.inbox.clone();
        let queued = self.job(async move {
            let conn = match bus::open_bus(address.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    return Some(Msg::Bus(Err(format!(
                        "cannot connect to the system bus ({e})"
                    ))))
                }
            };
            let tasks = match bus::start_forwarders(&conn, inbox, Msg::Signal).await {
                Ok(t) => t,
                Err(e) => {
                    return Some(Msg::Bus(Err(format!(
                        "cannot subscribe to NetworkManager signals ({e})"
                    ))))
                }
            };
            let has_owner = match zbus::fdo::DBusProxy::new(&conn).await {
                Ok(p) => p
                    .name_has_owner(nm::NM_BUS_NAME.try_into().expect("static bus name"))
                    .await
                    .unwrap_or(false),
                Err(_) => false,
            };
            Some(Msg::Bus(Ok((conn, tasks, has_owner))))
        });
        if !queued {
            self.bus_retry_at = Some(self.clock.now() + self.opts.bus_retry);
        }
    }

    fn set_nm_present(&mut self, m: &mut WifiMachine, now: Now, present: bool) {
        if present == self.nm_present && present {
            return;
        }
        self.nm_present = present;
        if present {
            log::info!("NetworkManager is on the bus");
            self.unavailable.clear();
            self.refresh_status(None);
        } else {
            if self.bus.is_some() {
                self.set_unavailable("the name org.freedesktop.NetworkManager has no owner".into());
            }
            m.handle_input(now, Input::NmLost);
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

    // -----------------------------------------------------------------------------------------
    // Inputs

    fn on_signal(&mut self, m: &mut WifiMachine, now: Now, s: Signal) {
        match s {
            Signal::NmOwner(present) => self.set_nm_present(m, now, present),
            Signal::BusLost(why) => {
                self.bus = None;
                self.set_unavailable(why);
                m.handle_input(now, Input::NmLost);
                for w in self.scan_waiters.drain(..) {
                    answer(w, Err(nm_unreachable(&self.unavailable)));
                }
                self.bus_retry_at = Some(now.mono + self.opts.bus_retry);
            }
            Signal::LastScan(v) => {
                m.handle_input(now, Input::LastScan(v));
                m.handle_input(now, Input::Changed);
            }
            Signal::Changed => m.handle_input(now, Input::Changed),
            Signal::DeviceState {
                path,
                state,
                reason,
            } => {
                m.handle_input(now, Input::Changed);
                let Ok(nm) = self.nm() else { return };
                // Whether it is the client device, and its connection, are NM's to say.
                let queued = self.job(async move {
                    let client = nm.client_device(&nm.conn).await;
                    if client.as_ref() != Some(&path) {
                        return None;
                    }
                    let state = DeviceState::from_u32(state);
                    let active = if state == DeviceState::Activated {
                        match nm::uncached::<nm::DeviceProxy>(&nm.conn, &path).await {
                            Ok(d) => d.active_connection().await.ok(),
                            Err(_) => None,
                        }
                    } else {
                        None
                    };
                    Some(Msg::Device(DeviceReport {
                        state,
                        reason,
                        active,
                    }))
                });
                if !queued {
                    log::warn!("Wi-Fi: NM worker queue full; a device state change was not read");
                }
            }
        }
    }

    /// Whether `active` is the connection our current attempt created.
    fn ours(&self, active: &Option<OwnedObjectPath>) -> bool {
        self.our_active.is_some() && *active == self.our_active
    }

    fn on_request(&mut self, m: &mut WifiMachine, now: Now, r: Request) {
        match r {
            Request::Status { reply } => match self.nm() {
                Ok(_) => self.refresh_status(Some((reply, None))),
                Err(_) => {
                    self.publish_status(None);
                    let block = self.status.network().unwrap_or_default();
                    answer(reply, Ok(Reply::of(&NetworkStatus(block))));
                }
            },
            Request::Scan { refresh, reply } => {
                if let Err(e) = self.nm() {
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
                m.handle_input(now, Input::Scan { refresh });
            }
            Request::Connect {
                ssid,
                password,
                reply,
            } => {
                if let Err(e) = self.nm() {
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
                m.handle_input(now, Input::Connect { ssid, password });
            }
            Request::Disconnect { reply } => match self.nm() {
                Ok(nm) => {
                    let reason = "cancelled: disconnect requested".into();
                    m.handle_input(now, Input::Cancel { reason });
                    self.job_for(reply, async move { nm.disconnect().await });
                }
                Err(e) => answer(reply, Err(e)),
            },
            Request::SetRadio { enabled, reply } => match self.nm() {
                Ok(nm) => {
                    if !enabled {
                        let reason = "cancelled: Wi-Fi was disabled".into();
                        m.handle_input(now, Input::Cancel { reason });
                    }
                    self.job_for(reply, async move { nm.set_radio(enabled).await });
                }
                Err(e) => answer(reply, Err(e)),
            },
            Request::Saved { reply } => match self.nm() {
                Ok(nm) => self.job_for(reply, async move {
                    Ok(Reply::of(&SavedNetworks {
                        networks: nm.saved_networks(&nm.conn).await,
                    }))
                }),
                Err(e) => answer(reply, Err(e)),
            },
            Request::GetCountry { reply } => {
                let opts = self.opts.clone();
                let r = reply.clone();
                let queued = self.job(async move {
                    let (country, result) = match opts.regulatory.get().await {
                        Ok(c) => (
                            Some(c.code.clone()),
                            Ok(Reply::of(&WifiCountryReply {
                                country: Some(c.code),
                                source: Some(c.source.to_string()),
                            })),
                        ),
                        Err(e) => (
                            None,
                            Err(ApiError::system(format!(
                                "cannot read the Wi-Fi country: {e}"
                            ))),
                        ),
                    };
                    Some(Msg::Country {
                        country,
                        reply: Some((r, result)),
                    })
                });
                if !queued {
                    answer(reply, Err(busy()));
                }
            }
            Request::SetCountry { code, reply } => {
                let (opts, nm) = (self.opts.clone(), self.nm().ok());
                let r = reply.clone();
                let queued = self.job(async move {
                    let (country, result) = ops::set_country(&opts, nm.as_ref(), code).await;
                    Some(Msg::Country {
                        country,
                        reply: Some((r, result)),
                    })
                });
                if !queued {
                    answer(reply, Err(busy()));
                }
            }
        }
    }

    fn settle_connect_waiter(&mut self, m: &WifiMachine) {
        let result = match m.connect_state() {
            ConnectState::Connected { ssid } => {
                let ip = self.connected_ip.or(self.addresses.0);
                Ok(Reply::of(&NetworkConnectResult {
                    success: true,
                    ssid: ssid.clone(),
                    ip: ip.map(|i| i.to_string()),
                }))
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

    fn emit(&mut self, e: WifiEvent) {
        match e {
            WifiEvent::ConnectionStarted { ssid } => {
                self.connected_ip = None;
                self.publisher.publish(&WifiConnectionStarted { ssid })
            }
            WifiEvent::Connected { ssid, ip, signal } => {
                log::info!("Wi-Fi: connected to {ssid:?} as {ip}");
                self.connected_ip = Some(ip);
                self.publisher.publish(&WifiConnected {
                    ssid,
                    ip: ip.to_string(),
                    signal,
                })
            }
            WifiEvent::ConnectionFailed { ssid, error } => {
                log::warn!("Wi-Fi: connecting to {ssid:?} failed: {error}");
                self.publisher
                    .publish(&WifiConnectionFailed { ssid, error })
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Status block

    /// Publishes the block again: re-read from NM when it is there (on the worker), else the
    /// "unavailable" one at once. `reply` is answered once the block is out.
    fn refresh_status(&mut self, reply: Option<(Reply1, Option<Result<Reply, ApiError>>)>) {
        let Ok(nm) = self.nm() else {
            self.publish_status(None);
            if let Some((w, r)) = reply {
                let block = self.status.network().unwrap_or_default();
                answer(w, r.unwrap_or_else(|| Ok(Reply::of(&NetworkStatus(block)))));
            }
            return;
        };
        let r = reply.as_ref().map(|(w, _)| w.clone());
        let queued = self.job(async move {
            let snap = nm.read_status(&nm.conn).await;
            Some(Msg::Snapshot { snap, reply })
        });
        if let (false, Some(w)) = (queued, r) {
            answer(w, Err(busy()));
        }
    }

    fn on_snapshot(&mut self, snap: Snapshot) {
        let addresses = (snap.client_ip, snap.ap_ip);
        if addresses != self.addresses {
            self.addresses = addresses;
            self.notices.send(WifiNotice::AddressesChanged {
                client: addresses.0,
                ap: addresses.1,
            });
        }
        self.publish_status(Some(snap));
    }

    /// Builds and stores the `network` block (from `snap`, or "unavailable" when None).
    fn publish_status(&self, snap: Option<Snapshot>) {
        let inputs = status::BlockInputs {
            available: self.nm_present && self.bus.is_some(),
            country: self.country.clone(),
            client_iface: &self.opts.client_iface,
            ap_iface: &self.opts.ap_iface,
            unavailable: &self.unavailable,
            leases_dir: &self.opts.leases_dir,
            wall: self.clock.wall(),
        };
        self.status
            .set_network(Some(status::network_block(inputs, snap)));
    }
}

impl Executor<WifiMachine> for WifiExec {
    type Msg = Msg;

    async fn on_message(&mut self, m: &mut WifiMachine, now: Now, msg: Msg) -> Flow {
        match msg {
            Msg::Request(r) => self.on_request(m, now, r),
            Msg::Signal(s) => self.on_signal(m, now, s),
            Msg::Bus(Ok((conn, tasks, has_owner))) => {
                self.bus = Some(Bus {
                    conn,
                    _forwarders: tasks,
                });
                self.set_nm_present(m, now, has_owner);
                if !has_owner {
                    self.publish_status(None);
                }
            }
            Msg::Bus(Err(why)) => {
                self.set_unavailable(why);
                self.bus_retry_at = Some(now.mono + self.opts.bus_retry);
            }
            Msg::Input(input) => m.handle_input(now, input),
            Msg::Activated { result, device } => {
                let input = match result {
                    Ok(active) => {
                        self.our_active = Some(active);
                        Input::ActivationStarted
                    }
                    Err(error) => Input::ActivationRejected { error },
                };
                m.handle_input(now, input);
                // A device that got there before we listened still counts; failures arrive
                // as signals.
                if let Some(d) = device {
                    if d.state == DeviceState::Activated && self.ours(&d.active) {
                        let input = Input::DeviceState {
                            state: d.state,
                            reason: DeviceStateReason::from_u32(d.reason),
                            ours: true,
                        };
                        m.handle_input(now, input);
                    }
                }
            }
            Msg::Device(d) => {
                let ours = d.state == DeviceState::Activated && self.ours(&d.active);
                let input = Input::DeviceState {
                    state: d.state,
                    reason: DeviceStateReason::from_u32(d.reason),
                    ours,
                };
                m.handle_input(now, input);
            }
            Msg::Snapshot { snap, reply } => {
                self.on_snapshot(snap);
                if let Some((w, r)) = reply {
                    let block = self.status.network().unwrap_or_default();
                    answer(w, r.unwrap_or_else(|| Ok(Reply::of(&NetworkStatus(block)))));
                }
            }
            Msg::Listed(result) => {
                for w in self.scan_waiters.drain(..) {
                    answer(w, result.clone());
                }
            }
            Msg::Country { country, reply } => {
                if country.is_some() {
                    self.country = country;
                }
                // The block shows the country before the reply goes out.
                match reply {
                    Some((w, r)) => self.refresh_status(Some((w, Some(r)))),
                    None => self.refresh_status(None),
                }
            }
            Msg::Reply(w, r) => answer(w, r),
        }
        Flow::Continue
    }

    async fn perform(&mut self, m: &mut WifiMachine, now: Now, action: Action) {
        match action {
            Action::Emit(e) => self.emit(e),
            Action::Activate { ssid, password } => {
                let nm = match self.nm() {
                    Ok(nm) => nm,
                    Err(e) => {
                        let error = e.message;
                        return m.handle_input(now, Input::ActivationRejected { error });
                    }
                };
                let queued = self.job(async move {
                    let result = nm
                        .activate(&ssid, password.as_ref())
                        .await
                        .map_err(|e| scrub(e, password.as_ref()));
                    let device = nm.client_device_state(None).await;
                    Some(Msg::Activated { result, device })
                });
                if !queued {
                    let error = busy().message;
                    m.handle_input(now, Input::ActivationRejected { error });
                }
            }
            Action::ReadAddress => {
                let queued = match self.nm() {
                    Ok(nm) => self.job(async move {
                        let (ip, signal) = nm.client_address(&nm.conn).await;
                        Some(Msg::Input(Input::Address { ip, signal }))
                    }),
                    Err(_) => false,
                };
                if !queued {
                    m.handle_input(
                        now,
                        Input::Address {
                            ip: None,
                            signal: None,
                        },
                    );
                }
            }
            Action::RequestScan => {
                let queued = match self.nm() {
                    Ok(nm) => self.job(async move { Some(Msg::Input(nm.request_scan().await)) }),
                    Err(_) => false,
                };
                if !queued {
                    m.handle_input(now, Input::ScanRequestFailed);
                }
            }
            Action::ListNetworks => {
                let queued = match self.nm() {
                    Ok(nm) => {
                        self.job(async move { Some(Msg::Listed(nm.list_networks(&nm.conn).await)) })
                    }
                    Err(e) => {
                        for w in self.scan_waiters.drain(..) {
                            answer(w, Err(e.clone()));
                        }
                        true
                    }
                };
                if !queued {
                    for w in self.scan_waiters.drain(..) {
                        answer(w, Err(busy()));
                    }
                }
            }
            Action::RefreshStatus => self.refresh_status(None),
        }
    }

    async fn settled(&mut self, m: &mut WifiMachine, _now: Now) -> Flow {
        self.settle_connect_waiter(m);
        Flow::Continue
    }

    fn own_deadline(&self) -> Option<Instant> {
        self.bus_retry_at
    }

    async fn on_timeout(&mut self, m: &mut WifiMachine, now: Now) {
        if self.bus_retry_at.is_some_and(|t| now.mono >= t) {
            self.bus_retry_at = None;
            self.connect_bus();
        }
        m.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
