//! The camera's parts together against the fake camera (real sockets).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ccapi::Timeouts;
use super::tls::Trust;
use super::*;
use crate::app::{Publisher, StatusBoard};
use crate::backoff::Backoff;
use crate::clock::SharedClock;
use crate::protocol::ErrorCode;

fn start_camera(
    opts: DriverOptions,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
) -> (Arc<CameraService>, Arc<dyn CameraControl>, CameraLinkHandle) {
    let c = start(opts, clock, status, publisher);
    (c.service, c.control, c.link)
}

#[test]
fn camera_url_accepts_addresses_and_urls() {
    assert_eq!(
        camera_url("192.168.1.2").as_deref(),
        Some("https://192.168.1.2:443/ccapi")
    );
    assert_eq!(
        camera_url("192.168.1.2:8080").as_deref(),
        Some("http://192.168.1.2:8080/ccapi")
    );
    assert_eq!(
        camera_url("https://10.0.0.1:443/ccapi/").as_deref(),
        Some("https://10.0.0.1:443/ccapi")
    );
    assert_eq!(
        camera_url("http://10.0.0.1:8080").as_deref(),
        Some("http://10.0.0.1:8080/ccapi")
    );
    assert_eq!(camera_url("1.2.3.4:notaport"), None);
    assert_eq!(camera_url(""), None);
}

mod driver_tests {
    use super::*;
    use crate::app::Origin;
    use crate::app::Service;
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::{Clock, SystemClock};
    use crate::protocol::{Command, TakePhoto};

    async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
        futures_lite::future::or(f, async {
            async_io::Timer::after(Duration::from_secs(secs)).await;
            panic!("timed out");
        })
        .await
    }

    #[test]
    fn connects_reports_status_and_maps_a_busy_shutter() {
        let cam = serve(r50_routes("0042"));
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let dir = std::env::temp_dir().join(format!("skylapse-drv-{}", std::process::id()));
        let opts = DriverOptions {
            data_dir: dir,
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                call: Duration::from_secs(2),
                long_poll: Duration::from_secs(2),
                download: Duration::from_secs(2),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff::CAMERA,
            rng_seed: Some(1),
            initial_target: None,
        };
        let (service, control, link) =
            start_camera(opts, Arc::new(SystemClock), status.clone(), publisher);
        let notices = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), None);
        futures_lite::future::block_on(within(10, async {
            match notices.recv().await.unwrap() {
                CameraNotice::Connected { id, info, manual } => {
                    assert_eq!(id, "0042");
                    assert_eq!(info.unwrap().model, "Canon EOS R50");
                    assert!(!manual);
                }
                other => panic!("{other:?}"),
            }
            assert!(control.is_connected());
            let block = status.get("camera");
            assert_eq!(block["connected"], true);
            assert_eq!(block["model"], "Canon EOS R50");
            assert_eq!(block["state"], "connected");
            assert_eq!(block["ip"], "127.0.0.1");
            let cmd = Command::TakePhoto(TakePhoto { af: Some(false) });
            let e = service
                .handle(Origin::Rest, &cmd)
                .unwrap()
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::CameraBusy, "{e}");
            // Still connected: a busy camera is not a lost one.
            assert!(control.is_connected());
            // A shot at an exact instant is sent no earlier than due.
            let due = SystemClock.now() + Duration::from_millis(300);
            let o = control.shoot_at(due, ShotRequest::timed(false)).await;
            assert!(o.sent_at >= due && o.replied_at >= o.sent_at);
        }));
        link.shutdown();
    }
}

mod reconnect_tests {
    use super::*;
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::{Clock, ManualClock};
    use std::sync::atomic::Ordering;

    /// Moves virtual time forward to the next deadline anyone waits on (or by 1 s when
    /// nobody does: a request on the wire, which runs on real sockets) until `rx` yields a
    /// notice. Returns the notice and the virtual time it took.
    async fn run_until_notice(
        clock: &ManualClock,
        rx: &async_channel::Receiver<CameraNotice>,
        limit: Duration,
    ) -> (CameraNotice, Duration) {
        let start = clock.now();
        loop {
            // Real-time grace for the workers' socket I/O to land before time moves on.
            let grace = futures_lite::future::or(async { Some(rx.recv().await) }, async {
                async_io::Timer::after(Duration::from_millis(20)).await;
                None
            });
            if let Some(Ok(n)) = grace.await {
                return (n, clock.now() - start);
            }
            assert!(clock.now() - start <= limit, "no notice within {limit:?}");
            let step = clock
                .next_wakeup()
                .map_or(Duration::from_secs(1), |d| d - clock.now())
                .min(Duration::from_secs(1));
            clock.advance(step);
        }
    }

    #[test]
    fn camera_offline_then_back_reconnects_within_one_backoff_step() {
        let cam = serve(r50_routes("0777"));
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let opts = DriverOptions {
            data_dir: std::env::temp_dir(),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                call: Duration::from_secs(1),
                long_poll: Duration::from_secs(1),
                download: Duration::from_secs(1),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff {
                jitter: 0.0,
                ..Backoff::CAMERA
            },
            rng_seed: Some(7),
            initial_target: None,
        };
        let (_service, control, link) =
            start_camera(opts, Arc::new(clock.clone()), status.clone(), publisher);
        let rx = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), Some("uuid:cam"));
        futures_lite::future::block_on(async {
            let (n, _) = run_until_notice(&clock, &rx, Duration::from_secs(29)).await;
            assert!(
                matches!(&n, CameraNotice::Connected { id, manual: false, .. } if id == "uuid:cam"),
                "{n:?}"
            );
            cam.online.store(false, Ordering::SeqCst);
            // Three health checks on the 10 s grid miss (the first 5…15 s after the last
            // answer): lost 25…35 s of virtual time later.
            let (n, after) = run_until_notice(&clock, &rx, Duration::from_secs(60)).await;
            assert!(matches!(n, CameraNotice::Lost { .. }), "{n:?}");
            assert!(
                after >= Duration::from_secs(25) && after <= Duration::from_secs(35),
                "{after:?}"
            );
            assert_eq!(status.get("camera")["state"], "backoff");
            assert_eq!(status.get("camera")["connected"], false);
            // Back: the first retry, 5 s after the loss, finds it.
            cam.online.store(true, Ordering::SeqCst);
            let (n, after) = run_until_notice(&clock, &rx, Duration::from_secs(60)).await;
            assert!(
                matches!(&n, CameraNotice::Connected { id, manual: false, .. } if id == "uuid:cam"),
                "{n:?}"
            );
            // The first retry (5 s), not the second (15 s); the probe itself runs on real
            // sockets while virtual time may move on.
            assert!(
                after >= Duration::from_secs(5) && after < Duration::from_secs(10),
                "{after:?}"
            );
            assert_eq!(status.get("camera")["state"], "connected");
        });
        link.shutdown();
    }
}

mod fault_tests {
    use super::*;
    use crate::app::{Origin, Service};
    use crate::camera::fake::{r50_routes, serve};
    use crate::clock::{Clock, SystemClock};
    use crate::protocol::{Command, SetCameraSetting};

    #[test]
    fn hung_call_times_out_and_502_says_power_cycle() {
        let mut routes = r50_routes("0500");
        routes.insert(
            "GET /ccapi/ver100/shooting/settings".into(),
            (0, String::new()),
        );
        routes.insert(
            "PUT /ccapi/ver100/shooting/settings/iso".into(),
            (502, "<html>Bad Gateway</html>".into()),
        );
        let list = r#"{"ver100":[{"path":"/ccapi/ver100/deviceinformation","get":true},
            {"path":"/ccapi/ver100/devicestatus/battery","get":true},
            {"path":"/ccapi/ver100/shooting/settings","get":true}]}"#;
        routes.insert("GET /ccapi".into(), (200, list.into()));
        let cam = serve(routes);
        let (publisher, _rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let opts = DriverOptions {
            data_dir: std::env::temp_dir(),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                call: Duration::from_millis(500),
                long_poll: Duration::from_secs(1),
                download: Duration::from_secs(1),
            },
            trust: Trust::ephemeral(false),
            backoff: Backoff::CAMERA,
            rng_seed: Some(3),
            initial_target: None,
        };
        let (service, control, link) =
            start_camera(opts, Arc::new(SystemClock), status.clone(), publisher);
        let rx = control.subscribe();
        link.set_target(&format!("https://{}/ccapi", cam.addr), None);
        futures_lite::future::block_on(async {
            assert!(matches!(
                rx.recv().await,
                Ok(CameraNotice::Connected { .. })
            ));
            let started = SystemClock.now();
            let hung = service
                .handle(Origin::Rest, &Command::GetCameraSettings)
                .unwrap();
            let status_cmd = Command::GetCameraStatus;
            // The service answers other things while the camera hangs.
            let (hung_result, status_reply) = futures_lite::future::zip(hung, async {
                service.handle(Origin::Rest, &status_cmd).unwrap().await
            })
            .await;
            assert_eq!(status_reply.unwrap().data["connected"], true);
            let e = hung_result.unwrap_err();
            assert_eq!(e.code, ErrorCode::CameraTimeout, "{e}");
            // Generous bound: the 500 ms call timeout, not the 5 s hang.
            assert!(SystemClock.now() - started < Duration::from_secs(3));
            let cmd = Command::SetCameraSetting(SetCameraSetting {
                setting: "iso".into(),
                value: serde_json::json!("400"),
            });
            let e = service
                .handle(Origin::Rest, &cmd)
                .unwrap()
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::ConnectionFailed);
            assert!(e.message.contains("power-cycle"), "{e}");
        });
        link.shutdown();
    }
}
