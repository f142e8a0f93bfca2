//! The time sync [`Service`] handle: commands and client notices go to the driver's inbox
//! ([`crate::driver::run`] with [`super::exec::TimeSyncExec`]), each stamped with the instant
//! it arrived (a response's receipt instant is read when it arrives, not when the driver gets
//! round to it); replies come back once the machine has taken them.

use serde_json::Value;
use std::sync::Arc;

pub use super::exec::ShotGate;
use super::exec::{Msg, TimeSyncExec};
use super::machine::{GpsAccuracy, Input, TimeSyncConfig, TimeSyncMachine};
use super::systime::SystemTimeSetter;
use super::zone::{LocalZone, Zone};
use crate::app::{ClientId, Origin, Publisher, Service, StatusBoard};
use crate::camera::{CameraControl, CameraNotice};
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::Inbox;
use crate::machine::Now;
use crate::protocol::messages::{
    CameraSyncStarted, GpsResult, ManualTimeSyncResult, TimeSyncResult, TimeSyncStatus,
    TimeSyncStatusCompat,
};
use crate::protocol::status::TimesyncBlock;
use crate::protocol::{ApiError, Command, CommandResult, Owner, Reply};
use crate::util::{iso8601, parse_iso8601, unix_millis};

/// Inbox room: client connects and commands (the hub bounds both) and camera answers.
const INBOX: usize = 128;

pub struct TimeSyncService {
    inbox: Inbox<Msg>,
    clock: SharedClock,
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
        let (inbox, rx) = crate::driver::inbox(INBOX);
        let machine = TimeSyncMachine::new(config);
        let exec = TimeSyncExec {
            clock: clock.clone(),
            status,
            publisher,
            camera: camera.clone(),
            setter,
            shot_in_flight,
            zone,
            inbox: inbox.clone(),
            addrs: Default::default(),
            proxy_iface: None,
            replies: Vec::new(),
        };
        // The block is there before the driver's first turn.
        let block = exec.block(&machine, Now::read(clock.as_ref()));
        exec.status.set_timesync(Some(block));
        let driver_clock = clock.clone();
        crate::rt::spawn(async move {
            crate::driver::run(machine, exec, rx, driver_clock).await;
        })
        .detach();
        let svc = TimeSyncService {
            inbox,
            clock,
            location: std::sync::OnceLock::new(),
        };
        if let Some(cam) = camera {
            let notices = cam.subscribe();
            if cam.is_connected() {
                svc.tell(Input::CameraConnected);
            }
            let (inbox, clock) = (svc.inbox.clone(), svc.clock.clone());
            crate::rt::spawn(async move {
                while let Ok(n) = notices.recv().await {
                    let input = match n {
                        CameraNotice::Connected { .. } => Input::CameraConnected,
                        CameraNotice::Lost { .. } => Input::CameraLost,
                        CameraNotice::FilesAdded(_) => continue,
                    };
                    let at = Now::read(clock.as_ref());
                    if inbox.send(Msg::Input { at, input }).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
        Arc::new(svc)
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
                if let Err(e) = store.set(loc, "gps", unix_millis(self.clock.wall())) {
                    log::warn!("GPS position not kept: {}", e.message);
                }
            }
            Err(e) => log::warn!("GPS position refused: {e}"),
        }
    }

    /// Hands a notice (a client came or went) to the driver without waiting. The inbox is
    /// bounded; a full one means the driver is far behind, and the notice is dropped, said.
    fn tell(&self, input: Input) {
        let at = Now::read(self.clock.as_ref());
        if let Err(e) = self.inbox.try_send(Msg::Input { at, input }) {
            if e.is_full() {
                log::warn!("time sync: inbox full; a client notice was dropped");
            }
        }
    }

    /// Asks the driver something and waits for the answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(async_channel::Sender<T>) -> Msg,
    ) -> Result<T, ApiError> {
        let (tx, rx) = async_channel::bounded(1);
        let gone = || ApiError::unavailable("time sync has stopped");
        self.inbox.send(make(tx)).await.map_err(|_| gone())?;
        rx.recv().await.map_err(|_| gone())
    }

    /// Feeds a command's input, stamped now (its receipt instant), and returns a future with
    /// the machine's verdict, answered once the status block reflects it.
    fn feed(
        &self,
        client: Option<ClientId>,
        input: Input,
        timezone: Option<String>,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send + '_ {
        let at = Now::read(self.clock.as_ref());
        async move {
            self.ask(|reply| Msg::Feed {
                at,
                client,
                input,
                timezone,
                reply,
            })
            .await?
        }
    }

    /// The machine's next deadline (monotonic), for tests and diagnostics.
    pub async fn next_deadline(&self) -> Option<std::time::Instant> {
        self.ask(Msg::NextDeadline).await.ok().flatten()
    }

    /// The `timesync` block as of now.
    pub async fn status(&self) -> Result<TimesyncBlock, ApiError> {
        self.ask(Msg::Status).await
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
        let _ = self
            .inbox
            .try_send(Msg::ClientAddr(client, Some(addr.ip())));
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
        // Inputs are stamped here, when the command arrives (a response's receipt instant
        // must not wait for a poll); the future only carries them to the driver.
        Some(match cmd {
            Command::TimeSyncResponse(r) => {
                let parsed = parse_time_value(&r.client_time, "clientTime")
                    .and_then(|t| Ok((t, timezone_label(&r.timezone)?)));
                let fed = parsed.map(|(client_time_ms, tz)| {
                    let input = Input::Response {
                        client,
                        request_id: request_id(&r.request_id),
                        client_time_ms,
                    };
                    self.feed(client, input, tz)
                });
                Box::pin(async move {
                    fed?.await?;
                    Ok(Reply::of(&TimeSyncResult { accepted: true }))
                })
            }
            Command::GpsResponse(g) => {
                self.keep_position(g);
                let fed = parse_time_value(&g.timestamp, "timestamp").map(|fix_time_ms| {
                    let input = Input::Gps {
                        client,
                        fix_time_ms,
                        accuracy: gps_accuracy(&g.accuracy),
                    };
                    self.feed(client, input, None)
                });
                Box::pin(async move {
                    fed?.await?;
                    Ok(Reply::of(&GpsResult { received: true }))
                })
            }
            Command::ManualTimeSync(m) => {
                let parsed = parse_time_value(&m.client_time, "clientTime")
                    .and_then(|t| Ok((t, timezone_label(&m.timezone)?)));
                let fed = parsed.map(|(client_time_ms, tz)| {
                    (
                        self.feed(client, Input::Manual { client_time_ms }, tz.clone()),
                        tz,
                    )
                });
                Box::pin(async move {
                    let (fed, timezone) = fed?;
                    fed.await?;
                    Ok(Reply::of(&ManualTimeSyncResult {
                        success: true,
                        accepted: true,
                        timezone,
                        // Changing the system zone (timedatectl) is out of scope: the zone is
                        // kept as a label only.
                        timezone_applied: false,
                        current_time: iso8601(self.clock.wall()),
                    }))
                })
            }
            Command::ManualCameraSync => {
                let fed = self.feed(client, Input::CameraSyncRequested { manual: true }, None);
                Box::pin(async move {
                    fed.await?;
                    Ok(Reply::of(&CameraSyncStarted { started: true }))
                })
            }
            Command::GetTimeSyncStatus => Box::pin(async move {
                let block = self.status().await?;
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
            }),
            Command::GetSystemTime => {
                Box::pin(async move { Ok(Reply::of(&self.ask(Msg::SystemTime).await?)) })
            }
            _ => return None,
        })
    }

    fn client_connected(&self, client: ClientId) {
        self.tell(Input::ClientConnected(client));
    }

    fn client_disconnected(&self, client: ClientId) {
        let _ = self.inbox.try_send(Msg::ClientAddr(client, None));
        self.tell(Input::ClientDisconnected(client));
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // The driver ends once it has drained what is queued.
        self.inbox.close();
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
