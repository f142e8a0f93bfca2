//! Time sync service against a fake camera, on a ManualClock whose wall clock the service
//! steps through `ManualClockSetter`.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use skylapse::app::{ClientId, Origin, Outbound, Publisher, Service, StatusBoard};
use skylapse::camera::{CameraControl, CameraDateTime, CameraNotice, ShotOutcome, ShotRequest};
use skylapse::clock::{BoxFuture, Clock, ManualClock};
use skylapse::protocol::{ApiError, Command, ManualTimeSync, TimeSyncResponse};
use skylapse::timesync::systime::DenyClockSetter;
use skylapse::timesync::{
    LocalZone, ManualClockSetter, PosixZone, TimeSyncConfig, TimeSyncService, Zone,
};
use skylapse::util::{from_unix_millis, unix_millis};

/// 2026-11-21T23:00:00Z (summer in Sydney).
const W0: i64 = 1_795_820_400_000;

struct FakeCamera {
    time: Mutex<SystemTime>,
    writes: Mutex<Vec<(SystemTime, i32, bool)>>,
    notices: async_channel::Sender<CameraNotice>,
    rx: async_channel::Receiver<CameraNotice>,
}

impl FakeCamera {
    fn new(time: SystemTime) -> Arc<FakeCamera> {
        let (notices, rx) = async_channel::bounded(8);
        Arc::new(FakeCamera {
            time: Mutex::new(time),
            writes: Mutex::new(Vec::new()),
            notices,
            rx,
        })
    }
}

impl CameraControl for FakeCamera {
    fn shoot_at(
        &self,
        _due: std::time::Instant,
        _r: ShotRequest,
    ) -> BoxFuture<'static, ShotOutcome> {
        unimplemented!("time sync never shoots")
    }
    fn settings(&self) -> skylapse::camera::CameraSettings {
        Default::default()
    }

    fn is_connected(&self) -> bool {
        false
    }
    fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        self.rx.clone()
    }
    fn datetime(&self) -> BoxFuture<'static, Result<CameraDateTime, ApiError>> {
        let t = *self.time.lock().unwrap();
        Box::pin(async move {
            Ok(CameraDateTime {
                time: t,
                raw: String::new(),
                dst: false,
            })
        })
    }
    fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> BoxFuture<'static, Result<(), ApiError>> {
        self.writes
            .lock()
            .unwrap()
            .push((time, std_offset_secs, dst));
        *self.time.lock().unwrap() = time;
        Box::pin(async { Ok(()) })
    }
}

/// Waits (bounded by a generous real-time guard, so a bug fails instead of hanging) for the
/// next outbound message matching `pick`.
async fn next<T>(
    rx: &async_channel::Receiver<Outbound>,
    pick: impl Fn(&Outbound) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let m = rx.recv().await.expect("hub channel open");
            if let Some(t) = pick(&m) {
                return t;
            }
        }
    };
    let guard = async {
        async_io::Timer::after(Duration::from_secs(10)).await;
        panic!("nothing arrived within 10 s");
    };
    futures_lite::future::or(wait, guard).await
}

fn event(kind: &'static str) -> impl Fn(&Outbound) -> Option<Value> {
    move |m| match m {
        Outbound::Event(e) if e.event_type() == kind => Some(e.data.clone()),
        _ => None,
    }
}

fn request_to(client: ClientId) -> impl Fn(&Outbound) -> Option<Value> {
    move |m| match m {
        Outbound::TimeSyncRequest(c, r) if *c == client => serde_json::to_value(r).ok(),
        _ => None,
    }
}

#[test]
fn a_phone_sets_the_pi_clock_after_the_shot_and_the_monotonic_deadlines_do_not_move() {
    smol::block_on(async {
        let clock = ManualClock::new(from_unix_millis(W0));
        let t0 = clock.now();
        let (publisher, rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let camera = FakeCamera::new(from_unix_millis(W0 - 3_600_000 - 4_000));
        let shot = Arc::new(AtomicBool::new(true));
        let gate = shot.clone();
        let svc = TimeSyncService::start_with_zone(
            TimeSyncConfig::default(),
            Arc::new(clock.clone()),
            status.clone(),
            publisher,
            Some(camera.clone() as Arc<dyn CameraControl>),
            Arc::new(ManualClockSetter(clock.clone())),
            Arc::new(move || gate.load(Ordering::SeqCst)),
            Arc::new(PosixZone::parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap()),
        );
        camera
            .notices
            .send(CameraNotice::Connected {
                id: "cam".into(),
                info: None,
                manual: false,
            })
            .await
            .unwrap();

        svc.client_connected(ClientId(7));
        let req = next(&rx, request_to(ClientId(7))).await;
        assert_eq!(req["serverTime"], W0);
        // The phone is an hour ahead; the answer comes 200 ms later (100 ms each way).
        clock.advance(Duration::from_millis(200));
        let answer = Command::TimeSyncResponse(TimeSyncResponse {
            request_id: Some(req["requestId"].clone()),
            client_time: json!(W0 + 100 + 3_600_000),
            server_time: Some(req["serverTime"].clone()),
            timezone: Some("Australia/Sydney".into()),
        });
        svc.handle(Origin::WebSocket(ClientId(7)), &answer)
            .unwrap()
            .await
            .unwrap();
        // A shot is in flight: nothing stepped yet.
        assert_eq!(unix_millis(clock.wall()), W0 + 200);
        assert_eq!(status.get("timesync")["pi"]["stepPending"], true);

        // The shot ends; at the next retry (500 ms) the clock is stepped by exactly the offset.
        shot.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_millis(500));
        let ev = next(&rx, event("pi-sync")).await;
        assert_eq!(ev["stepped"], true);
        assert_eq!(ev["offset"], 3_600_000);
        assert_eq!(unix_millis(clock.wall()), W0 + 700 + 3_600_000);
        assert_eq!(clock.now(), t0 + Duration::from_millis(700));

        // The camera (an hour and 4 s behind) follows, by Canon's convention for Sydney summer:
        // standard offset +10:00 and the DST flag.
        let ev = next(&rx, event("camera-sync")).await;
        assert_eq!(ev["changed"], true);
        let writes = camera.writes.lock().unwrap().clone();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].1, 36_000);
        assert!(writes[0].2);
        assert_eq!(unix_millis(writes[0].0), W0 + 700 + 3_600_000);

        // The machine's own deadline is the next request, 600 s after the first on the
        // monotonic clock: the hour-long wall step did not move it.
        assert_eq!(
            svc.next_deadline().await,
            Some(t0 + Duration::from_secs(600))
        );
        clock.advance(Duration::from_millis(600_000 - 700));
        let req = next(&rx, request_to(ClientId(7))).await;
        assert_eq!(req["serverTime"], W0 + 600_000 + 3_600_000);

        let st = status.get("timesync");
        assert_eq!(st["pi"]["isSynchronized"], true);
        assert_eq!(st["pi"]["source"], "client");
        assert_eq!(st["camera"]["isSynchronized"], true);
        assert_eq!(st["piProxyState"]["valid"], true);
        assert_eq!(st["connectedClients"], 1);
        assert_eq!(st["clientTimezone"], "Australia/Sydney");

        let r = svc
            .handle(Origin::Rest, &Command::GetSystemTime)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(r.kind, "system_time");
        assert_eq!(r.data["utcOffsetSeconds"], 39_600);
        assert_eq!(r.data["standardOffsetSeconds"], 36_000);
        assert_eq!(r.data["dst"], true);
        assert_eq!(r.data["reliability"], "high");
    });
}

#[test]
fn without_the_capability_the_failure_is_clear() {
    smol::block_on(async {
        let clock = ManualClock::new(from_unix_millis(W0));
        let (publisher, rx) = Publisher::channel();
        let svc = TimeSyncService::start(
            TimeSyncConfig::default(),
            Arc::new(clock.clone()),
            StatusBoard::new(publisher.clone()),
            publisher,
            None,
            Arc::new(DenyClockSetter),
            Arc::new(|| false),
        );
        let cmd = Command::ManualTimeSync(ManualTimeSync {
            client_time: json!("2026-11-22T01:00:00.000Z"),
            timezone: Some("Europe/London".into()),
        });
        let r = svc.handle(Origin::Rest, &cmd).unwrap().await.unwrap();
        assert_eq!(r.data["timezoneApplied"], false);
        let ev = next(&rx, event("sync-failed")).await;
        assert_eq!(ev["component"], "pi");
        assert_eq!(
            ev["error"],
            "skylapse may not set the clock (needs CAP_SYS_TIME)"
        );
        assert_eq!(ev["code"], "PERMISSION_DENIED");
        assert_eq!(unix_millis(clock.wall()), W0);

        // Bad input is refused at the edge with a reason.
        for bad in [json!("yesterday"), json!(true), json!(12)] {
            let cmd = Command::ManualTimeSync(ManualTimeSync {
                client_time: bad,
                timezone: None,
            });
            assert!(svc.handle(Origin::Rest, &cmd).unwrap().await.is_err());
        }
        let cmd = Command::ManualTimeSync(ManualTimeSync {
            client_time: json!(W0),
            timezone: Some("Europe/London; rm -rf /".into()),
        });
        assert!(svc.handle(Origin::Rest, &cmd).unwrap().await.is_err());
        // Camera sync without a camera says so.
        svc.handle(Origin::Rest, &Command::ManualCameraSync)
            .unwrap()
            .await
            .unwrap();
        let ev = next(&rx, event("sync-failed")).await;
        assert_eq!(ev["component"], "camera");
    });
}

/// `LocalZone` reads libc's idea of the zone, which follows `TZ`. Changing `TZ` in this process
/// would race other tests, so the test re-runs itself in a child process per zone.
#[test]
fn local_zone_follows_libc_in_both_hemispheres() {
    const MARK: &str = "SKYLAPSE_ZONE_CHILD";
    if let Ok(expect) = std::env::var(MARK) {
        // Child: "<iso instant> <utc offset> <std offset> <dst>".
        let f: Vec<&str> = expect.split(' ').collect();
        let t = from_unix_millis(skylapse::util::parse_iso8601(f[0]).unwrap());
        let z = LocalZone.at(t);
        assert_eq!(z.utc_offset_secs.to_string(), f[1], "{expect}");
        assert_eq!(z.std_offset_secs.to_string(), f[2], "{expect}");
        assert_eq!(z.dst.to_string(), f[3], "{expect}");
        return;
    }
    let cases = [
        (
            "GMT0BST,M3.5.0/1,M10.5.0",
            "2026-07-01T12:00:00Z 3600 0 true",
        ),
        ("GMT0BST,M3.5.0/1,M10.5.0", "2026-01-01T12:00:00Z 0 0 false"),
        (
            "AEST-10AEDT,M10.1.0,M4.1.0/3",
            "2026-01-15T00:00:00Z 39600 36000 true",
        ),
        (
            "AEST-10AEDT,M10.1.0,M4.1.0/3",
            "2026-07-15T00:00:00Z 36000 36000 false",
        ),
        ("UTC0", "2026-07-01T00:00:00Z 0 0 false"),
        ("IST-5:30", "2026-07-01T00:00:00Z 19800 19800 false"),
    ];
    let exe = std::env::current_exe().unwrap();
    for (tz, expect) in cases {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                concat!(
                    module_path!(),
                    "::local_zone_follows_libc_in_both_hemispheres"
                )
                .split_once("::")
                .map_or("", |(_, name)| name),
                "--test-threads=1",
            ])
            .env("TZ", tz)
            .env(MARK, expect)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "TZ={tz}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
