//! The camera driver and service against the camera simulator over real loopback sockets.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use skylapse::app::{Origin, Outbound, Publisher, Service, StatusBoard};
use skylapse::backoff::Backoff;
use skylapse::camera::ccapi::Timeouts;
use skylapse::camera::tls::Trust;
use skylapse::camera::{
    CameraControl, CameraLinkHandle, CameraNotice, CameraService, DriverOptions, ShotRequest,
};
use skylapse::clock::{Clock, ManualClock, SharedClock, SystemClock};
use skylapse::protocol::{
    AcceptCertificate, ApiError, Body, Command, CommandResult, ErrorCode, IdRef, SetCameraSetting,
    TakePhoto,
};
use skylapse_sim::{FaultAction, FaultMatch, OfflineMode, Profile, SimConfig, SimHandle};

struct Rig {
    sim: Option<SimHandle>,
    service: Arc<CameraService>,
    control: Arc<dyn CameraControl>,
    link: CameraLinkHandle,
    status: StatusBoard,
    outbound: async_channel::Receiver<Outbound>,
    notices: async_channel::Receiver<CameraNotice>,
    dir: PathBuf,
}

fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("skylapse-camera-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        call: Duration::from_secs(2),
        long_poll: Duration::from_secs(35),
        download: Duration::from_secs(10),
    }
}

fn start_driver(
    sim: SimHandle,
    dir: PathBuf,
    clock: SharedClock,
    trust: Arc<Trust>,
    timeouts: Timeouts,
) -> Rig {
    crate::logs::init();
    let (publisher, outbound) = Publisher::channel();
    let status = StatusBoard::new(publisher.clone());
    let opts = DriverOptions {
        data_dir: dir.clone(),
        timeouts,
        trust,
        backoff: Backoff {
            jitter: 0.0,
            ..Backoff::CAMERA
        },
        rng_seed: Some(0),
        initial_target: None,
    };
    let camera = skylapse::camera::start(opts, clock, status.clone(), publisher);
    let (service, control, link) = (camera.service, camera.control, camera.link);
    let notices = control.subscribe();
    Rig {
        sim: Some(sim),
        service,
        control,
        link,
        status,
        outbound,
        notices,
        dir,
    }
}

fn rig(name: &str, cfg: SimConfig) -> Rig {
    rig_with(name, cfg, Some(2))
}

fn rig_with(name: &str, cfg: SimConfig, max_connections: Option<usize>) -> Rig {
    let sim = SimHandle::start(cfg).expect("simulator starts");
    // The R50 breaks with more than a couple of sockets: make exceeding 2 fail loudly.
    sim.set_max_connections(max_connections);
    let dir = data_dir(name);
    let trust = Trust::load(&dir, false);
    start_driver(sim, dir, Arc::new(SystemClock), trust, timeouts())
}

async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    futures_lite::future::or(f, async {
        async_io::Timer::after(Duration::from_secs(secs)).await;
        panic!("no result within {secs} s");
    })
    .await
}

impl Rig {
    fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator")
    }

    fn url(&self) -> String {
        self.sim().access_url().expect("access URL")
    }

    async fn connect(&self) {
        self.link.set_target(&self.url(), Some(&self.sim().udn()));
        self.expect_connected().await;
    }

    /// Over the camera's plain HTTP service. Downloads use it: the simulator's TLS writer
    /// cannot send bodies over rustls' 64 KiB buffer yet (`sim/http.rs` `TlsStream::write_all`
    /// writes the whole body into the rustls buffer at once and fails on large files).
    async fn connect_http(&self) {
        let url = format!(
            "http://{}/ccapi",
            self.sim().http_addr().expect("HTTP listener")
        );
        self.link.set_target(&url, Some(&self.sim().udn()));
        self.expect_connected().await;
    }

    async fn expect_connected(&self) {
        within(10, async {
            loop {
                match self.notices.recv().await.unwrap() {
                    CameraNotice::Connected { .. } => return,
                    CameraNotice::FilesAdded(_) => {}
                    other => panic!("expected Connected, got {other:?}"),
                }
            }
        })
        .await
    }

    async fn run(&self, cmd: Command) -> CommandResult {
        let fut = self
            .service
            .handle(Origin::Rest, &cmd)
            .expect("camera command");
        within(20, fut).await
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(m) = self.outbound.try_recv() {
            if let Outbound::Event(e) = m {
                if e.event_type() == kind {
                    out.push(e.data);
                }
            }
        }
        out
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.link.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn code(r: CommandResult) -> ErrorCode {
    match r {
        Ok(reply) => panic!("expected an error, got {} {}", reply.kind, reply.data),
        Err(e) => e.code,
    }
}

#[test]
fn connect_photo_and_settings_round_trip() {
    let r = rig("basic", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        let block = r.status.get("camera");
        assert_eq!(block["connected"], true);
        assert_eq!(block["model"], "Canon EOS R50");
        assert_eq!(block["uuid"], r.sim().udn());
        assert_eq!(block["state"], "connected");
        // Reports take the camera's identity from here (it was lost in a merge: always None).
        let identity = r
            .control
            .identity()
            .expect("the connected camera's identity");
        assert_eq!(identity.productname, "Canon EOS R50");
        assert!(!identity.serialnumber.is_empty());

        let settings = r.run(Command::GetCameraSettings).await.unwrap().data;
        assert_eq!(settings["iso"]["value"], "100");
        assert!(settings["iso"]["ability"].as_array().unwrap().len() > 5);

        let set = |value: Value| {
            Command::SetCameraSetting(SetCameraSetting {
                setting: "iso".into(),
                value,
            })
        };
        let ok = r.run(set(json!("400"))).await.unwrap();
        assert_eq!(ok.data["value"], "400");
        let changed = r.events("camera_setting_changed");
        assert_eq!(changed, [json!({"setting": "iso", "value": "400"})]);
        assert_eq!(
            code(r.run(set(json!("12345"))).await),
            ErrorCode::InvalidParameter
        );
        let settings = r.run(Command::GetCameraSettings).await.unwrap().data;
        assert_eq!(settings["iso"]["value"], "400");
        // A name that would leave the settings resource never reaches the camera.
        let bad = Command::SetCameraSetting(SetCameraSetting {
            setting: "../../functions/wificonnection".into(),
            value: json!("x"),
        });
        assert_eq!(code(r.run(bad).await), ErrorCode::InvalidParameter);

        let before = r.sim().status().files.len();
        let reply = r
            .run(Command::TakePhoto(TakePhoto { af: Some(false) }))
            .await;
        assert_eq!(reply.unwrap().data["success"], true);
        // The file appears once the camera has written it (after the reply).
        assert!(r
            .sim()
            .wait_until(Duration::from_secs(5), |s| s.files.len() == before + 1));
        let taken = r.events("photo_taken");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0]["success"], true);

        let battery = r.run(Command::GetCameraBattery).await.unwrap().data;
        assert!(battery["battery"]["level"].is_string(), "{battery}");
        let storage = r.run(Command::GetCameraStorage).await.unwrap().data;
        assert!(
            storage["summary"]["totalMB"].as_u64().unwrap() > 0,
            "{storage}"
        );
        assert_eq!(r.status.get("storage"), storage["summary"]);
        let dt = r.run(Command::GetCameraDatetime).await.unwrap().data;
        // The simulator's clock is the host's: within a few seconds of ours.
        assert!(dt["offsetMs"].as_i64().unwrap().abs() < 5_000, "{dt}");
    });
}

#[test]
fn datetime_write_follows_the_dst_convention() {
    let r = rig("datetime", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        // Sydney summer: standard +10:00, DST on.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        within(5, r.control.set_datetime(t, 10 * 3600, true))
            .await
            .unwrap();
        let (utc_ms, offset_min, dst) = r.sim().camera_time();
        assert!((utc_ms - 1_704_067_200_000).abs() < 2_000, "{utc_ms}");
        assert_eq!((offset_min, dst), (600, true));
        let back = within(5, r.control.datetime()).await.unwrap();
        assert!(back.dst);
        assert!(back.raw.ends_with("+1000"), "{}", back.raw);
        let secs = back
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(secs.abs_diff(1_704_067_200) < 3, "{}", back.raw);
    });
}

#[test]
fn test_photo_is_downloaded_with_progress_then_listed_served_and_deleted() {
    let r = rig("testshot", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect_http().await;
        let shot = r.run(Command::TakeTestPhoto).await.unwrap().data;
        // The original's shape: a numeric id, the metadata URL (clients add /file), the
        // stored name, the camera's path, and the EXIF the simulator wrote into the JPEG.
        let n = shot["id"].as_u64().expect("a numeric id");
        let id = n.to_string();
        let filename = shot["filename"].as_str().unwrap().to_string();
        assert!(filename.ends_with(".JPG"), "{shot}");
        assert_eq!(shot["url"], format!("/api/camera/photos/test/{n}"));
        assert!(
            shot["cameraPath"].as_str().unwrap().ends_with(".JPG"),
            "{shot}"
        );
        assert!(shot["processingTimeMs"].as_u64().is_some(), "{shot}");
        assert_eq!(shot["exif"]["Model"], "Canon EOS R50", "{shot}");
        assert!(shot["exif"]["ISO"].as_u64().is_some(), "{shot}");
        assert!(shot["exif"]["ExposureTime"].as_f64().is_some(), "{shot}");
        assert!(shot["exif"]["ShutterSpeed"].is_string(), "{shot}");
        assert!(shot["exif"]["FNumber"].as_f64().is_some(), "{shot}");
        assert!(shot["exif"]["ImageWidth"].as_u64().unwrap() > 0, "{shot}");
        assert!(shot["exif"]["DateTimeOriginal"].is_string(), "{shot}");
        let stored = r.dir.join("test-photos").join(format!("{n}_{filename}"));
        let bytes = std::fs::read(&stored).unwrap();
        assert_eq!(bytes.len() as u64, shot["size"].as_u64().unwrap());
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
        let progress = r.events("test_photo_download_progress");
        assert!(progress.len() >= 2, "{progress:?}");
        assert_eq!(progress.last().unwrap()["percent"], 100);
        assert_eq!(progress.last().unwrap()["percentage"], 100);
        assert_eq!(progress.last().unwrap()["bytesReceived"], bytes.len());

        let list = r.run(Command::ListTestPhotos).await.unwrap().data;
        assert_eq!(list["photos"][0]["id"], n);
        assert_eq!(list["photos"][0]["exif"], shot["exif"]);
        let file = r
            .run(Command::GetTestPhotoFile(IdRef { id: id.clone() }))
            .await
            .unwrap();
        assert_eq!(file.data["contentType"], "image/jpeg");
        assert_eq!(file.data["size"], bytes.len());
        match file.body {
            Some(Body::File { content_type, path }) => {
                assert_eq!(content_type, "image/jpeg");
                assert_eq!(std::fs::read(path).unwrap(), bytes);
            }
            other => panic!("no body: {other:?}"),
        }
        let traversal = IdRef {
            id: "../camera-pins.json".into(),
        };
        assert_eq!(
            code(r.run(Command::GetTestPhotoFile(traversal)).await),
            ErrorCode::InvalidParameter
        );
        r.run(Command::DeleteTestPhoto(IdRef { id: id.clone() }))
            .await
            .unwrap();
        assert!(!stored.exists());
        assert_eq!(
            code(r.run(Command::DeleteTestPhoto(IdRef { id })).await),
            ErrorCode::NotFound
        );
        // Polling and control together never needed more than the two allowed sockets.
        assert!(r.sim().status().open_connections <= 2);
    });
}

#[test]
fn legacy_and_no_list_bodies_work_too() {
    for (name, profile) in [("legacy", Profile::LegacyVer100), ("r6m3", Profile::R6m3)] {
        let cfg = SimConfig {
            profile,
            ..SimConfig::default()
        };
        let r = rig(name, cfg);
        futures_lite::future::block_on(async {
            r.connect_http().await;
            // Absolute-URL `addedcontents` (legacy) and relative paths both download.
            let shot = r.run(Command::TakeTestPhoto).await;
            let shot = shot.unwrap_or_else(|e| panic!("{name}: {e}")).data;
            assert!(shot["size"].as_u64().unwrap() > 0, "{name}: {shot}");
            let battery = r.run(Command::GetCameraBattery).await.unwrap().data;
            assert!(battery["battery"]["level"].is_string(), "{name}: {battery}");
        });
    }
}

#[test]
fn busy_camera_is_camera_busy_and_recovers() {
    let r = rig("busy", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().add_fault(
            FaultMatch::method_path("POST", "shutterbutton"),
            FaultAction::Respond {
                status: 503,
                message: "Device busy".into(),
            },
            Some(1),
        );
        let photo = || Command::TakePhoto(TakePhoto { af: Some(false) });
        let e = r.run(photo()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::CameraBusy);
        assert!(e.message.contains("Device busy"), "{e}");
        assert!(r.control.is_connected());
        r.run(photo()).await.unwrap();
    });
}

#[test]
fn wedged_web_service_asks_for_a_power_cycle() {
    let r = rig("wedge", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().set_wedged_502(true);
        let e: ApiError = r.run(Command::GetCameraSettings).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ConnectionFailed);
        assert!(e.message.contains("power-cycle"), "{e}");
    });
}

#[test]
fn hung_connection_times_out_without_hanging_the_service() {
    // No connection cap here: the simulator keeps a hung connection open after the client
    // gave up on it (like a camera's leaked socket), which would use up the allowance.
    let r = rig_with("hang", SimConfig::default(), None);
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().add_fault(
            FaultMatch::method_path("GET", "shooting/settings"),
            FaultAction::Hang,
            Some(1),
        );
        let started = Instant::now();
        let hung = r
            .service
            .handle(Origin::Rest, &Command::GetCameraSettings)
            .unwrap();
        let status_cmd = Command::GetCameraStatus;
        let (hung, status) = within(
            10,
            futures_lite::future::zip(hung, async {
                r.service.handle(Origin::Rest, &status_cmd).unwrap().await
            }),
        )
        .await;
        assert_eq!(status.unwrap().data["connected"], true);
        assert_eq!(hung.unwrap_err().code, ErrorCode::CameraTimeout);
        // The 2 s call timeout, with generous slack; never the hang itself.
        assert!(started.elapsed() < Duration::from_secs(6));
        // And the camera is usable again afterwards.
        r.run(Command::GetCameraSettings).await.unwrap();
    });
}

/// Steps virtual time to the next deadline anyone waits on until a notice arrives. Requests
/// on the wire run on real sockets with real-time timeouts: each step first gives them a
/// grace longer than the rig's call timeout (0.5 s) to land, so no answer is overtaken by
/// virtual time.
async fn step_until_notice(
    r: &Rig,
    clock: &ManualClock,
    limit: Duration,
) -> (CameraNotice, Duration) {
    let start = clock.now();
    loop {
        let grace = futures_lite::future::or(async { Some(r.notices.recv().await) }, async {
            async_io::Timer::after(Duration::from_millis(700)).await;
            None
        });
        match grace.await {
            Some(Ok(CameraNotice::FilesAdded(_))) => continue,
            Some(Ok(n)) => return (n, clock.now() - start),
            _ => {}
        }
        assert!(clock.now() - start <= limit, "no notice within {limit:?}");
        let step = clock
            .next_wakeup()
            .map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(clock.now())
            })
            .clamp(Duration::from_millis(1), Duration::from_secs(10));
        clock.advance(step);
    }
}

#[test]
fn offline_camera_is_lost_then_reconnected_within_one_backoff_step() {
    let sim = SimHandle::start(SimConfig::default()).unwrap();
    let dir = data_dir("offline");
    let clock = ManualClock::new(SystemTime::now());
    let short = Timeouts {
        connect: Duration::from_millis(500),
        call: Duration::from_millis(500),
        long_poll: Duration::from_secs(35),
        download: Duration::from_secs(5),
    };
    let r = start_driver(
        sim,
        dir,
        Arc::new(clock.clone()),
        Trust::ephemeral(false),
        short,
    );
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().set_offline(OfflineMode::Blackhole);
        let (n, after) = step_until_notice(&r, &clock, Duration::from_secs(60)).await;
        assert!(matches!(n, CameraNotice::Lost { .. }), "{n:?}");
        // Three health checks on the 10 s grid time out (the first 5…15 s after the last
        // answer).
        assert!(
            after >= Duration::from_secs(25) && after <= Duration::from_secs(35),
            "{after:?}"
        );
        let block = r.status.get("camera");
        assert_eq!(block["state"], "backoff");
        assert!(block["nextRetryAt"].is_string(), "{block}");
        assert_eq!(
            code(r.run(Command::TakePhoto(TakePhoto::default())).await),
            ErrorCode::CameraOffline
        );
        r.sim().set_online().unwrap();
        let (n, after) = step_until_notice(&r, &clock, Duration::from_secs(30)).await;
        assert!(matches!(n, CameraNotice::Connected { .. }), "{n:?}");
        assert!(
            after >= Duration::from_secs(5) && after < Duration::from_secs(10),
            "the first retry, one backoff step: {after:?}"
        );
        r.run(Command::TakePhoto(TakePhoto::default()))
            .await
            .unwrap();
    });
}

#[test]
fn ssdp_alive_cuts_the_backoff_short() {
    let sim = SimHandle::start(SimConfig::default()).unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let short = Timeouts {
        connect: Duration::from_millis(500),
        call: Duration::from_millis(500),
        ..timeouts()
    };
    let r = start_driver(
        sim,
        data_dir("alive"),
        Arc::new(clock.clone()),
        Trust::ephemeral(false),
        short,
    );
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().set_offline(OfflineMode::Refuse);
        let (n, _) = step_until_notice(&r, &clock, Duration::from_secs(60)).await;
        assert!(matches!(n, CameraNotice::Lost { .. }), "{n:?}");
        r.sim().set_online().unwrap();
        // Without moving virtual time at all: the alive alone triggers the attempt.
        let before = clock.now();
        r.link.ssdp_alive(&r.sim().udn());
        r.expect_connected().await;
        assert_eq!(clock.now(), before);
    });
}

#[test]
fn changed_certificate_is_refused_until_accepted() {
    let sim = SimHandle::start(SimConfig::default()).unwrap();
    let dir = data_dir("cert");
    let url = sim.access_url().unwrap();
    let udn = sim.udn();
    // First run: pins on first use, into the data dir.
    let first = start_driver(
        sim,
        dir.clone(),
        Arc::new(SystemClock),
        Trust::load(&dir, false),
        timeouts(),
    );
    futures_lite::future::block_on(first.connect());
    assert!(std::fs::read_to_string(dir.join("camera-pins.json"))
        .unwrap()
        .contains(&udn));
    first.sim().rotate_tls_leaf().unwrap();
    first.link.shutdown();
    let mut first = first;
    let sim = first.sim.take().unwrap();
    // Keep the data dir (and its pin file) for the second run.
    first.dir = PathBuf::new();
    drop(first);
    // Next run (a restart) meets the new certificate.
    let r = start_driver(
        sim,
        dir.clone(),
        Arc::new(SystemClock),
        Trust::load(&dir, false),
        timeouts(),
    );
    futures_lite::future::block_on(async {
        r.link.set_target(&url, Some(&udn));
        within(10, async {
            while r.status.get("camera")["state"] != "backoff" {
                async_io::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        let block = r.status.get("camera");
        assert_eq!(block["connected"], false);
        let err = block["lastError"].as_str().unwrap();
        assert!(err.contains("certificate changed"), "{err}");
        assert!(err.contains("accept the new certificate"), "{err}");
        // The user accepts; the link retries at once and pins the new certificate.
        let ok = r
            .run(Command::AcceptCameraCertificate(AcceptCertificate {
                uuid: None,
            }))
            .await
            .unwrap();
        assert_eq!(ok.data["uuid"], udn);
        r.expect_connected().await;
        assert_eq!(r.status.get("camera")["connected"], true);
    });
}

/// Regression: `connect_to_ip` replied as soon as a discovery probe succeeded (7 ms) while the
/// link connected on its own probe later (~150 ms): a `take_photo` right after a successful
/// `connect_to_ip_result` failed with CAMERA_OFFLINE, and the camera saw two TLS connects.
/// Now the link connects once and the reply waits for it.
#[test]
fn connect_to_ip_replies_once_connected_and_a_photo_follows_at_once() {
    let r = rig("manual", SimConfig::default());
    futures_lite::future::block_on(async {
        let port = r.sim().https_addr().unwrap().port();
        let ok = within(
            10,
            r.run(Command::ConnectToIp(skylapse::protocol::ConnectToIp {
                ip: "127.0.0.1".into(),
                port: Some(skylapse::protocol::Port(port)),
            })),
        )
        .await
        .unwrap();
        assert_eq!(ok.kind, "connect_to_ip_result");
        assert_eq!(
            ok.data["baseUrl"],
            format!("https://127.0.0.1:{port}/ccapi")
        );
        assert_eq!(ok.data["modelName"], "Canon EOS R50");
        assert_eq!(ok.data["uuid"], r.sim().serial_number());
        // No waiting: the link is up when the reply comes.
        assert!(r.control.is_connected());
        r.run(Command::TakePhoto(TakePhoto::default()))
            .await
            .expect("a photo right after connect_to_ip");
        // One TLS connect (one probe: one GET /ccapi), not a discovery probe and a link probe.
        let roots = r
            .sim()
            .requests()
            .iter()
            .filter(|q| q.method == "GET" && q.path == "/ccapi")
            .count();
        assert_eq!(roots, 1, "the camera was probed {roots} times");
        match within(5, r.notices.recv()).await.unwrap() {
            CameraNotice::Connected { manual, .. } => assert!(manual),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn connect_to_ip_to_nothing_says_why_and_leaves_the_link_alone() {
    let r = rig("manual-fail", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free = l.local_addr().unwrap().port();
        drop(l);
        let e = within(
            20,
            r.run(Command::ConnectToIp(skylapse::protocol::ConnectToIp {
                ip: "127.0.0.1".into(),
                port: Some(skylapse::protocol::Port(free)),
            })),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ConnectionFailed, "{e}");
        assert!(
            e.message.starts_with("Failed to connect to camera at"),
            "{e}"
        );
        let details = serde_json::to_value(&e.details).unwrap();
        let attempts = details["attempts"].as_array().unwrap().clone();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        // The link was never touched: still connected, a photo works.
        assert!(r.control.is_connected());
        assert_eq!(r.link.state(), "connected");
        r.run(Command::TakePhoto(TakePhoto::default()))
            .await
            .unwrap();
        // Not an IP literal: refused at the edge.
        let e = r
            .run(Command::ConnectToIp(skylapse::protocol::ConnectToIp {
                ip: "camera.local".into(),
                port: None,
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
    });
}

#[test]
fn bulb_exposure_is_held_and_always_released() {
    let r = rig("bulb", SimConfig::default());
    futures_lite::future::block_on(async {
        r.connect().await;
        r.sim().set_setting("tv", json!("bulb"));
        let due = Instant::now() + Duration::from_millis(300);
        let hold = Duration::from_millis(500);
        let o = within(
            10,
            r.control.shoot_at(
                due,
                ShotRequest {
                    af: false,
                    bulb: Some(hold),
                    exposure: None,
                },
            ),
        )
        .await;
        o.result.unwrap();
        assert!(o.sent_at >= due);
        assert!(o.replied_at - o.sent_at >= hold);
        let log = r.sim().requests();
        let manual: Vec<_> = log
            .iter()
            .filter(|q| q.path.ends_with("shutterbutton/manual"))
            .collect();
        // One release at connect (clears a stuck button), then press and release.
        assert!(manual.len() >= 2);
        let press = manual[manual.len() - 2];
        let release = manual[manual.len() - 1];
        // The camera saw the button held for the bulb time, give or take request latency (the
        // simulator reads each body on its own thread: on a loaded 2-core machine the press
        // can be read up to tens of ms late, so 100 ms; a hold that was not waited for would
        // show about 0).
        let held = release.body_at.duration_since(press.body_at);
        assert!(held + Duration::from_millis(100) >= hold, "{held:?}");
        assert_eq!(format!("{:?}", r.sim().status().button), "Released");
    });
}

/// The next instant someone waits for on `clock`, once a worker parks on it (real-time bound).
async fn next_wait(clock: &ManualClock) -> Instant {
    within(10, async {
        loop {
            if let Some(d) = clock.next_wakeup().filter(|d| *d > clock.now()) {
                return d;
            }
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[test]
fn idle_with_nobody_watching_is_one_request_per_health_check_on_one_socket() {
    // Issue 13: with no client and no shot, no event poll is held; each health check is one
    // immediate event poll on the control socket (it carries battery, storage, temperature
    // and new files too). A client coming back brings the held poll back.
    let sim = SimHandle::start(SimConfig::default()).unwrap();
    sim.set_max_connections(Some(2));
    let clock = ManualClock::new(SystemTime::now());
    let r = start_driver(
        sim,
        data_dir("unwatched"),
        Arc::new(clock.clone()),
        Trust::ephemeral(false),
        timeouts(),
    );
    let polls = |log: &[skylapse_sim::RequestRecord], q: &str| {
        log.iter()
            .filter(|x| x.path.ends_with("/event/polling") && x.query.contains(q))
            .count()
    };
    futures_lite::future::block_on(async {
        r.connect().await;
        // Fresh status at once after connecting: the check's poll (the snapshot).
        assert!(r
            .sim()
            .wait_requests(Duration::from_secs(10), |l| polls(l, "immediately") == 1));
        let seq0 = r.sim().requests().last().map_or(0, |x| x.seq) + 1;
        for k in 1..=3 {
            let due = next_wait(&clock).await;
            assert!(due - clock.now() <= Duration::from_secs(15));
            clock.advance_to(due);
            assert!(
                r.sim()
                    .wait_requests(Duration::from_secs(10), |l| polls(l, "immediately")
                        == 1 + k),
                "health check {k}"
            );
        }
        // The first poll's snapshot brought the status the old reads did (read once the
        // worker has parked again, i.e. has taken the answer in).
        next_wait(&clock).await;
        assert!(
            r.status.get("storage").is_object(),
            "{}",
            r.status.get("storage")
        );
        let idle: Vec<_> = r.sim().requests_since(seq0);
        assert_eq!(idle.len(), 3, "{idle:?}");
        let peers: std::collections::BTreeSet<_> = idle.iter().map(|x| x.peer).collect();
        assert_eq!(peers.len(), 1, "{idle:?}");
        assert_eq!(polls(&r.sim().requests(), "long"), 0);
        // A client watches again: the poll is held for it.
        r.service.client_connected(skylapse::app::ClientId(1));
        assert!(r
            .sim()
            .wait_requests(Duration::from_secs(10), |l| polls(l, "long") == 1));
        // The next health check is the cheap battery read on the control socket (one poll at
        // a time: it must not cancel the held one).
        // (An answer of the held poll defers a check: step until one runs.)
        let seq1 = r.sim().requests().last().map_or(0, |x| x.seq) + 1;
        let battery = |l: &[skylapse_sim::RequestRecord]| {
            l.iter()
                .any(|x| x.seq >= seq1 && x.path.ends_with("/battery"))
        };
        for _ in 0..3 {
            clock.advance_to(next_wait(&clock).await);
            if r.sim().wait_requests(Duration::from_secs(3), battery) {
                break;
            }
        }
        assert!(
            battery(&r.sim().requests()),
            "no health check while watched"
        );
        assert_eq!(polls(&r.sim().requests_since(seq1), "immediately"), 0);
        r.service.client_disconnected(skylapse::app::ClientId(1));
    });
}
