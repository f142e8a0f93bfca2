//! The time sync driver and its [`Service`] handle.
//!
//! Commands and client connects feed the machine at once (so a response's receipt instant is
//! read when it arrives, not when a task gets round to it); one small task sleeps until the
//! machine's next deadline; camera reads and writes run as short tasks that feed their result
//! back. The clock step itself is one syscall, made inline behind the shot gate.

use serde_json::Value;
use std::sync::{Arc, Mutex};

use super::machine::{Action, GpsAccuracy, Input, StepOutcome, TimeSyncConfig, TimeSyncMachine};
use super::systime::SystemTimeSetter;
use super::zone::{LocalZone, Zone};
use crate::app::{ClientId, Origin, Outbound, Publisher, Service, StatusBoard};
use crate::camera::{CameraControl, CameraNotice};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::messages::{
    CameraSyncStarted, GpsResult, ManualTimeSyncResult, SystemTimeReply, TimeSyncRequest,
    TimeSyncResult, TimeSyncStatus, TimeSyncStatusCompat,
};
use crate::protocol::status::{NetInterface, TimesyncBlock};
use crate::protocol::{ApiError, Command, CommandResult, Owner, Reply};
use crate::util::{iso8601, parse_iso8601, unix_millis};

/// "Is a shot in flight right now?" — the clock is never stepped while it says yes.
pub type ShotGate = Arc<dyn Fn() -> bool + Send + Sync>;

struct Inner {
    machine: Mutex<TimeSyncMachine>,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    camera: Option<Arc<dyn CameraControl>>,
    setter: Arc<dyn SystemTimeSetter>,
    shot_in_flight: ShotGate,
    zone: Arc<dyn Zone>,
    /// Tells the driver the next deadline may have changed (capacity 1: wake-ups coalesce).
    wake: async_channel::Sender<()>,
    /// Where each WebSocket client connects from (for `piProxyState.state`).
    addrs: Mutex<std::collections::HashMap<ClientId, std::net::IpAddr>>,
    /// The interface the last accepted sync came through ("ap0", "wlan0").
    proxy_iface: Mutex<Option<String>>,
}

pub struct TimeSyncService {
    inner: Arc<Inner>,
    /// Where a GPS fix's position goes (sun times); set once by the wiring.
    location: std::sync::OnceLock<Arc<crate::location::LocationStore>>,
}

impl TimeSyncService {
    /// Starts the driver (and the camera notice listener when a camera is given), using the
    /// process's local zone for the camera's DST convention.
    pub fn start(
        config: TimeSyncConfig,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        camera: Option<Arc<dyn CameraControl>>,
        setter: Arc<dyn SystemTimeSetter>,
        shot_in_flight: ShotGate,
    ) -> Arc<TimeSyncService> {
        Self::start_with_zone(
            config,
            clock,
            status,
            publisher,
            camera,
            setter,
            shot_in_flight,
            Arc::new(LocalZone),
        )
    }

    /// As [`TimeSyncService::start`] with an explicit zone (tests, or a configured TZ rule).
    #[allow(clippy::too_many_arguments)]
    pub fn start_with_zone(
        config: TimeSyncConfig,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        camera: Option<Arc<dyn CameraControl>>,
        setter: Arc<dyn SystemTimeSetter>,
        shot_in_flight: ShotGate,
        zone: Arc<dyn Zone>,
    ) -> Arc<TimeSyncService> {
        let (wake, woken) = async_channel::bounded(1);
        let inner = Arc::new(Inner {
            machine: Mutex::new(TimeSyncMachine::new(config)),
            clock,
            status,
            publisher,
            camera: camera.clone(),
            setter,
            shot_in_flight,
            zone,
            wake,
            addrs: Mutex::new(std::collections::HashMap::new()),
            proxy_iface: Mutex::new(None),
        });
        inner.publish_status();
        crate::rt::spawn(drive(inner.clone(), woken)).detach();
        if let Some(cam) = camera {
            let notices = cam.subscribe();
            let listener = inner.clone();
            if cam.is_connected() {
                listener.feed(Input::CameraConnected).ok();
            }
            crate::rt::spawn(async move {
                while let Ok(n) = notices.recv().await {
                    match n {
                        CameraNotice::Connected { .. } => {
                            listener.feed(Input::CameraConnected).ok();
                        }
                        CameraNotice::Lost { .. } => {
                            listener.feed(Input::CameraLost).ok();
                        }
                        CameraNotice::FilesAdded(_) => {}
                    }
                }
            })
            .detach();
        }
        Arc::new(TimeSyncService {
            inner,
            location: std::sync::OnceLock::new(),
        })
    }

    /// GPS fixes with a position update `store` as well as the clock.
    pub fn remember_locations(&self, store: Arc<crate::location::LocationStore>) {
        let _ = self.location.set(store);
    }

    /// Keeps a GPS fix's position (whatever the fix's worth as a time source: the sun does
    /// not need metre accuracy). A failure to save is logged, not an error of the command.
    fn keep_position(&self, g: &crate::protocol::GpsResponse) {
        let (Some(store), Some(lat), Some(lon)) = (self.location.get(), g.latitude, g.longitude)
        else {
            return;
        };
        match crate::sun::Location::new(lat, lon) {
            Ok(loc) => {
                if let Err(e) = store.set(loc, "gps", unix_millis(self.inner.clock.wall())) {
                    log::warn!("GPS position not kept: {}", e.message);
                }
            }
            Err(e) => log::warn!("GPS position refused: {e}"),
        }
    }

    /// The machine's next deadline (monotonic), for tests and diagnostics.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        self.inner.lock().poll_timeout()
    }

    /// The `timesync` block as of now.
    pub fn status(&self) -> TimesyncBlock {
        self.inner.block()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, TimeSyncMachine> {
        crate::sys::lock(&self.machine)
    }

    /// The block, with `piProxyState.state` in the original's vocabulary.
    fn block(&self) -> TimesyncBlock {
        let mut b = self.lock().status(self.clock.now(), self.clock.wall());
        let iface = lock(&self.proxy_iface).clone();
        b.pi_proxy_state.state = match iface {
            Some(i) if b.pi_proxy_state.valid => format!("{i}-device"),
            _ => "none".into(),
        };
        b
    }

    fn publish_status(&self) {
        self.status.set_timesync(Some(self.block()));
    }

    /// The interface a client reaches the Pi through: the access point's when its address is
    /// in the AP's /24, else the client (Wi-Fi) interface.
    fn iface_of(&self, client: Option<ClientId>) -> String {
        let network = self.status.network();
        let (mut ap, mut sta, mut ap_ip) = ("ap0".to_string(), "wlan0".to_string(), None);
        for (name, i) in network.iter().flat_map(|n| n.interfaces.iter()) {
            match i {
                NetInterface::Ap(a) => {
                    ap = name.clone();
                    ap_ip =
                        a.ip.as_deref()
                            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
                }
                NetInterface::Client(_) => sta = name.clone(),
            }
        }
        let addr = client.and_then(|c| lock(&self.addrs).get(&c).copied());
        match (addr, ap_ip) {
            (Some(std::net::IpAddr::V4(a)), Some(std::net::IpAddr::V4(b)))
                if a.octets()[..3] == b.octets()[..3] =>
            {
                ap
            }
            _ => sta,
        }
    }

    /// Feeds a sample from `client`; when it set the Pi's time, remembers its interface.
    fn feed_sample(
        self: &Arc<Self>,
        client: Option<ClientId>,
        input: Input,
    ) -> Result<(), ApiError> {
        let before = self.lock().last_sync_at();
        self.feed(input)?;
        if self.lock().last_sync_at() != before {
            *lock(&self.proxy_iface) = Some(self.iface_of(client));
            self.publish_status();
        }
        Ok(())
    }

    /// Feeds one input, performs the resulting actions (feeding back the ones that answer at
    /// once, such as a clock step), publishes the status and wakes the driver.
    fn feed(self: &Arc<Self>, input: Input) -> Result<(), ApiError> {
        let mut next = Some(input);
        let mut first_result = None;
        while let Some(input) = next.take() {
            let actions: Vec<Action> = {
                let mut m = self.lock();
                let r = m.handle(self.clock.now(), self.clock.wall(), input);
                first_result.get_or_insert(r);
                std::iter::from_fn(|| m.poll_action()).collect()
            };
            for a in actions {
                if let Some(answer) = self.perform(a) {
                    // Only StepClock answers inline, and the machine emits one at a time.
                    next = Some(answer);
                }
            }
        }
        self.publish_status();
        let _ = self.wake.try_send(());
        first_result.unwrap_or(Ok(()))
    }

    fn perform(self: &Arc<Self>, action: Action) -> Option<Input> {
        match action {
            Action::SendRequest {
                client,
                request_id,
                server_time_ms,
            } => {
                self.publisher.send(Outbound::TimeSyncRequest(
                    client,
                    TimeSyncRequest {
                        request_id,
                        server_time: server_time_ms,
                    },
                ));
                None
            }
            Action::StepClock { offset_ms } => {
                if (self.shot_in_flight)() {
                    return Some(Input::Step(StepOutcome::Deferred));
                }
                let now = unix_millis(self.clock.wall());
                let target = crate::util::from_unix_millis(now + offset_ms);
                Some(Input::Step(match self.setter.set(target) {
                    Ok(()) => {
                        log::info!("stepped the system clock by {offset_ms} ms");
                        StepOutcome::Done
                    }
                    Err(e) => {
                        log::warn!("could not step the system clock: {}", e.message);
                        StepOutcome::Failed(e)
                    }
                }))
            }
            Action::ReadCamera => {
                let me = self.clone();
                crate::rt::spawn(async move {
                    let r = match &me.camera {
                        Some(cam) => {
                            let t0 = me.clock.now();
                            let r = cam.datetime().await;
                            let half = me.clock.now().saturating_duration_since(t0) / 2;
                            // The reading is about half a round trip old when it arrives.
                            r.map(|dt| dt.time + half)
                        }
                        None => Err(ApiError::unavailable("no camera control in this instance")),
                    };
                    me.feed(Input::CameraRead(r)).ok();
                })
                .detach();
                None
            }
            Action::WriteCamera => {
                let me = self.clone();
                crate::rt::spawn(async move {
                    let r = match &me.camera {
                        Some(cam) => {
                            let t = me.clock.wall();
                            let z = me.zone.at(t);
                            cam.set_datetime(t, z.std_offset_secs, z.dst).await
                        }
                        None => Err(ApiError::unavailable("no camera control in this instance")),
                    };
                    me.feed(Input::CameraWritten(r)).ok();
                })
                .detach();
                None
            }
            Action::Event(e) => {
                self.publisher.event(e);
                None
            }
        }
    }

    fn system_time(&self) -> SystemTimeReply {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let z = self.zone.at(wall);
        let m = self.lock();
        SystemTimeReply {
            current_time: iso8601(wall),
            time: iso8601(wall),
            timestamp: unix_millis(wall),
            unix_ms: unix_millis(wall),
            timezone: self.zone.name(wall),
            utc_offset_seconds: z.utc_offset_secs,
            standard_offset_seconds: z.std_offset_secs,
            dst: z.dst,
            reliability: m.pi_reliability(now).as_str().into(),
            is_synchronized: m.pi_synchronized(now),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn drive(inner: Arc<Inner>, woken: async_channel::Receiver<()>) {
    loop {
        let deadline = inner.lock().poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => {
                    inner.clock.sleep_until(d).await;
                    true
                }
                None => futures_lite::future::pending().await,
            }
        };
        let wake = async {
            let _ = woken.recv().await;
            false
        };
        let timed_out = futures_lite::future::or(timer, wake).await;
        if woken.is_closed() {
            return;
        }
        if timed_out {
            inner.feed(Input::Tick).ok();
        }
    }
}

/// Unix milliseconds from a number or an ISO-8601 / numeric string.
pub fn parse_time_value(v: &Value, field: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid(format!("{field} must be Unix milliseconds or ISO-8601"));
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            parse_iso8601(s)
                .or_else(|| s.parse::<i64>().ok())
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// An IANA zone name as a label: short, and only the characters zone names use.
fn timezone_label(tz: &Option<String>) -> Result<Option<String>, ApiError> {
    match tz {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s)
            if s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::invalid("timezone must be an IANA zone name")),
    }
}

fn request_id(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn gps_accuracy(v: &Option<Value>) -> GpsAccuracy {
    match v {
        Some(Value::Number(n)) => n.as_f64().map_or(GpsAccuracy::Unknown, GpsAccuracy::Metres),
        Some(Value::String(s)) => match s.as_str() {
            "high" => GpsAccuracy::High,
            "low" => GpsAccuracy::Low,
            other => other
                .parse::<f64>()
                .map_or(GpsAccuracy::Unknown, GpsAccuracy::Metres),
        },
        _ => GpsAccuracy::Unknown,
    }
}

impl Service for TimeSyncService {
    fn name(&self) -> &'static str {
        "timesync"
    }

    fn owner(&self) -> Owner {
        Owner::Timesync
    }

    fn client_address(&self, client: ClientId, addr: std::net::SocketAddr) {
        lock(&self.inner.addrs).insert(client, addr.ip());
    }

    fn handle<'a>(
        &'a self,
        origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        let client = match origin {
            Origin::WebSocket(id) => Some(id),
            Origin::Rest | Origin::Internal => None,
        };
        let inner = &self.inner;
        // Everything here is answered without waiting: compute first, then hand back a ready
        // future (the receipt instant of a response must not wait for a poll).
        let result: CommandResult = match cmd {
            Command::TimeSyncResponse(r) => (|| {
                let client_time_ms = parse_time_value(&r.client_time, "clientTime")?;
                if let Some(tz) = timezone_label(&r.timezone)? {
                    inner.lock().set_timezone_label(Some(tz));
                }
                inner.feed_sample(
                    client,
                    Input::Response {
                        client,
                        request_id: request_id(&r.request_id),
                        client_time_ms,
                    },
                )?;
                Ok(Reply::of(&TimeSyncResult { accepted: true }))
            })(),
            Command::GpsResponse(g) => (|| {
                self.keep_position(g);
                let fix_time_ms = parse_time_value(&g.timestamp, "timestamp")?;
                inner.feed_sample(
                    client,
                    Input::Gps {
                        client,
                        fix_time_ms,
                        accuracy: gps_accuracy(&g.accuracy),
                    },
                )?;
                Ok(Reply::of(&GpsResult { received: true }))
            })(),
            Command::ManualTimeSync(m) => (|| {
                let client_time_ms = parse_time_value(&m.client_time, "clientTime")?;
                let tz = timezone_label(&m.timezone)?;
                if tz.is_some() {
                    inner.lock().set_timezone_label(tz.clone());
                }
                inner.feed_sample(client, Input::Manual { client_time_ms })?;
                Ok(Reply::of(&ManualTimeSyncResult {
                    success: true,
                    accepted: true,
                    timezone: tz,
                    // Changing the system zone (timedatectl) is out of scope: the zone is
                    // kept as a label only.
                    timezone_applied: false,
                    current_time: iso8601(inner.clock.wall()),
                }))
            })(),
            Command::ManualCameraSync => inner
                .feed(Input::CameraSyncRequested { manual: true })
                .map(|()| Reply::of(&CameraSyncStarted { started: true })),
            Command::GetTimeSyncStatus => {
                let block = self.status();
                let status = TimeSyncStatusCompat {
                    pi_reliable: block.pi.is_synchronized,
                    last_pi_sync: block.pi.last_sync_time.clone(),
                    last_camera_sync: block.camera.last_sync_time.clone(),
                    sync_source: block.pi.source.clone(),
                };
                Ok(Reply::of(&TimeSyncStatus {
                    block,
                    success: true,
                    status,
                }))
            }
            Command::GetSystemTime => Ok(Reply::of(&inner.system_time())),
            _ => return None,
        };
        Some(Box::pin(async move { result }))
    }

    fn client_connected(&self, client: ClientId) {
        self.inner.feed(Input::ClientConnected(client)).ok();
    }

    fn client_disconnected(&self, client: ClientId) {
        lock(&self.inner.addrs).remove(&client);
        self.inner.feed(Input::ClientDisconnected(client)).ok();
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.wake.close();
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_come_as_millis_or_iso_and_nothing_else() {
        assert_eq!(
            parse_time_value(&json!(1_640_995_201_500i64), "t"),
            Ok(1_640_995_201_500)
        );
        assert_eq!(
            parse_time_value(&json!(1_640_995_201_500.7), "t"),
            Ok(1_640_995_201_500)
        );
        assert_eq!(
            parse_time_value(&json!("2022-01-01T00:00:01.500Z"), "t"),
            Ok(1_640_995_201_500)
        );
        assert_eq!(
            parse_time_value(&json!("1640995201500"), "t"),
            Ok(1_640_995_201_500)
        );
        for bad in [json!(null), json!("soon"), json!([1]), json!(1e300)] {
            let e = parse_time_value(&bad, "clientTime").unwrap_err();
            assert_eq!(
                e.message,
                "clientTime must be Unix milliseconds or ISO-8601"
            );
        }
    }

    #[test]
    fn gps_accuracy_accepts_metres_and_words() {
        assert_eq!(gps_accuracy(&Some(json!(12.5))), GpsAccuracy::Metres(12.5));
        assert_eq!(gps_accuracy(&Some(json!("high"))), GpsAccuracy::High);
        assert_eq!(gps_accuracy(&Some(json!("low"))), GpsAccuracy::Low);
        assert_eq!(gps_accuracy(&Some(json!("8"))), GpsAccuracy::Metres(8.0));
        assert_eq!(gps_accuracy(&Some(json!("meh"))), GpsAccuracy::Unknown);
        assert_eq!(gps_accuracy(&None), GpsAccuracy::Unknown);
    }
}
