//! The camera's commands (PROTOCOL.md): status, photo, settings, battery, storage, clock,
//! test photos, certificate acceptance.
//!
//! Test photos: shoot, wait for the new file from event polling, download the camera's
//! display-size image (`?kind=display`, the original where the body has none) on the event
//! worker's socket with `test_photo_download_progress` events, keep it in
//! `<data_dir>/test-photos/` with its metadata (EXIF read from the JPEG). Ids are numbers (the
//! original's); session frame thumbnails keep their `frame_*` names.
//!
//! A running timelapse comes first ([`SessionGate`]): `take_photo` is refused while it runs;
//! a test photo is fired in the next gap between frames that holds its exposure, the write
//! and a download margin (`test_photo_scheduled` tells when), or refused with the reason.
//! While a session runs, every few frames the last frame's thumbnail is fetched for the
//! monitor (`session_frame` events; stored as `frame_*` next to the test photos).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ccapi::storage_summary;
use super::photos::*;
use super::shared::battery_entry;
use super::shared::Shared as Inner;
use super::shot::shoot_at;
use super::{CameraLinkHandle, CameraNotice, ShotRequest};
use crate::app::{Origin, Service};
use crate::clock::BoxFuture;
use crate::protocol::messages::{
    CameraBattery, CameraDatetime, CameraSettingChanged, CameraSettingSet, CameraSettingsReply,
    CameraStatus, CameraStorage, CertificateAccepted, ConnectToIpResult, LastCameraIp, PhotoTaken,
    PhotoTakenReply, SessionFrame, TestPhoto, TestPhotoDeleted, TestPhotoFile, TestPhotoInfo,
    TestPhotoInfoReply, TestPhotoScheduled, TestPhotos,
};
use crate::protocol::{
    ApiError, Body, Command, CommandResult, ConnectToIp, ErrorCode, ErrorDetails, Owner, Reply,
};
use crate::util::iso8601;

/// Test photos kept at most; older ones are deleted first.
const MAX_TEST_PHOTOS: usize = 50;
/// Session frame thumbnails kept (the monitor shows the newest).
const MAX_FRAME_PREVIEWS: usize = 3;
/// At most one frame thumbnail per this long (they cost the camera a download each).
const FRAME_PREVIEW_EVERY: Duration = Duration::from_secs(15);
/// How many times a test shot re-plans its gap before it gives up.
const TEST_SHOT_REPLANS: usize = 4;
/// A planned test shot is handed to the camera this long before it fires.
const TEST_SHOT_LEAD: Duration = Duration::from_millis(300);

/// What the camera's commands need to know of a running timelapse (the intervalometer
/// implements it; wired in `services`).
pub trait SessionGate: Send + Sync {
    /// A session is scheduled or running.
    fn session_running(&self) -> bool;
    /// When a test shot exposing `exposure` can fire between frames: `None` when no session
    /// runs, `Err` with a plain reason when no gap can hold it.
    fn plan_test_shot(&self, now: Instant, exposure: Duration) -> Option<Result<Instant, String>>;
}

pub struct CameraService {
    pub(super) inner: Arc<Inner>,
    link: CameraLinkHandle,
    gate: Arc<OnceLock<Arc<dyn SessionGate>>>,
    /// The camera's live view, shared by every viewer (`liveview.rs`).
    pub liveview: Arc<super::liveview::LiveView>,
}

impl CameraService {
    pub(crate) fn new(inner: Arc<Inner>, link: CameraLinkHandle) -> Self {
        let gate = Arc::new(OnceLock::new());
        CameraService {
            liveview: Arc::new(super::liveview::LiveView::new(inner.clone(), gate.clone())),
            inner,
            link,
            gate,
        }
    }

    /// Connects the running-session checks (once; later calls are ignored).
    pub fn set_session_gate(&self, gate: Arc<dyn SessionGate>) {
        let _ = self.gate.set(gate);
    }

    fn session_running(&self) -> bool {
        self.gate.get().is_some_and(|g| g.session_running())
    }

    fn test_dir(&self) -> PathBuf {
        self.inner.data_dir.join("test-photos")
    }

    fn photos(&self) -> PhotoStore {
        PhotoStore::new(self.test_dir())
    }

    /// A photo: the reply goes to the caller, the broadcast to every other client (a client
    /// logs each photo once).
    async fn take_photo(&self, origin: Origin, af: bool) -> CommandResult {
        if self.session_running() {
            // Issue 14 B4: a photo taken by hand lands in a frame's write window.
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "A timelapse is running: Take photo is off so it cannot cost a frame. Use Test photo, which waits for a gap between frames",
            )
            .with_details(ErrorDetails::refused("session_running"))
            .with_operation("take_photo"));
        }
        let outcome = shoot_at(&self.inner, self.inner.clock.now(), ShotRequest::timed(af)).await;
        let now = iso8601(self.inner.clock.wall());
        let event = PhotoTaken {
            success: outcome.result.is_ok(),
            timestamp: now.clone(),
            error: outcome.result.as_ref().err().map(|e| e.message.clone()),
            shot: None,
        };
        match origin {
            Origin::WebSocket(client) => self.inner.publisher.publish_except(client, &event),
            Origin::Rest | Origin::Internal => self.inner.publisher.publish(&event),
        }
        match outcome.result {
            Ok(()) => Ok(Reply::of(&PhotoTakenReply {
                success: true,
                timestamp: now,
            })),
            Err(e) => Err(e.with_operation("take_photo")),
        }
    }

    async fn set_setting(&self, name: String, value: Value) -> CommandResult {
        let n = name.clone();
        let echo = self
            .inner
            .on_control(move |s| s.set_setting(&n, &value))
            .await
            .map_err(|e| e.with_operation("set_camera_setting"))?;
        let value = echo.get("value").cloned().unwrap_or(Value::Null);
        let mut delta = serde_json::Map::new();
        let mut v = serde_json::Map::new();
        v.insert("value".into(), value.clone());
        delta.insert(name.clone(), Value::Object(v));
        self.inner.note_settings(&Value::Object(delta));
        self.inner.publisher.publish(&CameraSettingChanged {
            setting: name.clone(),
            value: value.clone(),
        });
        Ok(Reply::of(&CameraSettingSet {
            success: true,
            setting: name,
            value,
        }))
    }

    async fn battery(&self) -> CommandResult {
        let v = self.inner.on_control(|s| s.battery()).await?;
        let entry = (!v.is_null()).then(|| battery_entry(&v));
        Ok(Reply::of(&CameraBattery {
            batterylist: entry.iter().cloned().collect(),
            battery: entry,
        }))
    }

    async fn storage(&self) -> CommandResult {
        let v = self.inner.on_control(|s| s.storage()).await?;
        let summary = storage_summary(&v);
        self.inner.status.set_storage(summary.clone());
        Ok(Reply::of(&CameraStorage {
            storagelist: v
                .get("storagelist")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            summary,
        }))
    }

    async fn datetime(&self) -> CommandResult {
        let dt = self.inner.on_control(|s| s.datetime()).await?;
        let offset_ms =
            crate::util::unix_millis(dt.time) - crate::util::unix_millis(self.inner.clock.wall());
        Ok(Reply::of(&CameraDatetime {
            datetime: dt.raw,
            dst: dt.dst,
            time: iso8601(dt.time),
            offset_ms,
        }))
    }

    /// When a test shot may fire: now, or in the next gap of a running session that holds it
    /// (`test_photo_scheduled` tells clients when), or refused with the session's reason.
    async fn test_shot_time(&self) -> Result<Instant, ApiError> {
        let Some(gate) = self.gate.get() else {
            return Ok(self.inner.clock.now());
        };
        // Unknown Tv (bulb, or not reported yet): plan for the longest timed exposure.
        let exposure = self
            .inner
            .settings()
            .exposure_time()
            .unwrap_or(super::ccapi::MAX_TIMED_EXPOSURE);
        let mut announced = false;
        for _ in 0..TEST_SHOT_REPLANS {
            let now = self.inner.clock.now();
            let at = match gate.plan_test_shot(now, exposure) {
                None => return Ok(now),
                Some(Err(reason)) => {
                    return Err(ApiError::new(ErrorCode::ValidationFailed, reason)
                        .with_details(ErrorDetails::refused("no_gap")))
                }
                Some(Ok(at)) => at,
            };
            if at <= now + TEST_SHOT_LEAD {
                return Ok(at.max(now));
            }
            if !announced {
                announced = true;
                let wait = at - now;
                let wall = self.inner.clock.wall() + wait;
                self.inner.publisher.publish(&TestPhotoScheduled {
                    at: iso8601(wall),
                    in_seconds: (wait.as_secs_f64() * 10.0).round() / 10.0,
                });
            }
            // Plan again just before: the session may have moved (a late reply, a stop).
            self.inner.clock.sleep_until(at - TEST_SHOT_LEAD).await;
        }
        Err(ApiError::new(
            ErrorCode::CameraBusy,
            "The timelapse keeps the camera busy; no gap opened for the test photo. Try again",
        ))
    }

    /// Shoot, wait for the new file, download it. The waiting and the download run as one job
    /// on the event worker, queued before the shutter is pressed: the worker's own poll (or
    /// this job's) reports the file, and the download starts at once instead of queueing
    /// behind the next 30 s long-poll.
    async fn take_test_photo(&self) -> CommandResult {
        let _one_at_a_time = self.inner.test_shot.lock().await;
        self.inner.session()?;
        let fire_at = self
            .test_shot_time()
            .await
            .map_err(|e| e.with_operation("take_test_photo"))?;
        self.inner.session()?;
        // Subscribed only now: files of frames shot while waiting are not this photo's. Read
        // by the event worker (`wait_for_file`), so told on the notifier's thread.
        let files = self.inner.subscribe_direct();
        let store = self.photos();
        store
            .create()
            .map_err(|e| ApiError::system(format!("Cannot create the test photo folder: {e}")))?;
        let started = self.inner.clock.now();
        let wall = self.inner.clock.wall();
        // The original's name: YYYYMMDD_HHMMSS_<camera's name>.
        let iso = iso8601(wall);
        let stamp = format!(
            "{}{}{}_{}{}{}",
            &iso[0..4],
            &iso[5..7],
            &iso[8..10],
            &iso[11..13],
            &iso[14..16],
            &iso[17..19]
        );
        let id = store.next_id();
        let settings = self.inner.settings();
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = {
            let inner = self.inner.clone();
            let (store, cancelled) = (store.clone(), cancelled.clone());
            self.inner.on_events(move |s| {
                let path = wait_for_file(&inner, s, &files, &cancelled)?;
                let name = path.rsplit('/').next().unwrap_or("photo").to_string();
                let (filename, size, preview) =
                    download_preview(&inner, s, &path, &store, id, &stamp, &name)?;
                Ok((path, filename, size, preview))
            })
        };
        // Autofocus off: test shots check framing/exposure of a manually focused night scene.
        let outcome = shoot_at(&self.inner, fire_at, ShotRequest::timed(false)).await;
        if let Err(e) = outcome.result {
            cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(e.with_operation("take_test_photo"));
        }
        let (camera_path, filename, size, preview) =
            job.await.map_err(|e| e.with_operation("take_test_photo"))?;
        let exif = is_jpeg(&filename)
            .then(|| read_exif(&store.file(id, &filename)))
            .flatten();
        let info = TestPhotoInfo {
            id,
            url: format!("/api/camera/photos/test/{id}"),
            file_url: format!("/api/camera/photos/test/{id}/file"),
            filename,
            camera_path: Some(camera_path),
            size,
            timestamp: Some(iso8601(wall)),
            processing_time_ms: Some(
                self.inner
                    .clock
                    .now()
                    .saturating_duration_since(started)
                    .as_millis() as u64,
            ),
            exif,
            preview: Some(preview.into()),
            settings: Some(settings),
        };
        store
            .save_info(&info)
            .map_err(|e| ApiError::system(format!("Cannot store the photo: {e}")))?;
        store.prune(MAX_TEST_PHOTOS);
        Ok(Reply::of(&TestPhoto {
            success: true,
            photo: info,
        }))
    }

    /// While a session runs: every few frames, the newest frame's thumbnail for the monitor
    /// (`session_frame {id, url, fileName}`). Runs until the camera driver goes away.
    pub fn follow_session_frames(self: &Arc<Self>) -> smol::Task<()> {
        let me = self.clone();
        let notices = self.inner.subscribe();
        crate::rt::spawn(async move {
            let busy = Arc::new(AtomicBool::new(false));
            let mut last: Option<Instant> = None;
            while let Ok(n) = notices.recv().await {
                let CameraNotice::FilesAdded(list) = n else {
                    continue;
                };
                let now = me.inner.clock.now();
                if !me.session_running()
                    || busy.load(Ordering::SeqCst)
                    || last.is_some_and(|t| now < t + FRAME_PREVIEW_EVERY)
                {
                    continue;
                }
                let Some(path) = list.iter().find(|p| is_jpeg(p)).or(list.first()).cloned() else {
                    continue;
                };
                last = Some(now);
                busy.store(true, Ordering::SeqCst);
                let (inner, busy) = (me.inner.clone(), busy.clone());
                let dir = me.test_dir();
                let job = me.inner.on_events(move |s| {
                    let name = path.rsplit('/').next().unwrap_or("frame").to_string();
                    let stem = name.rsplit_once('.').map_or(name.as_str(), |(a, _)| a);
                    let id = sanitize(&format!("frame_{stem}.JPG"));
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        ApiError::system(format!("Cannot create the preview folder: {e}"))
                    })?;
                    let size = fetch_to(s, &format!("{path}?kind=thumbnail"), &dir, &id)?;
                    Ok((id, name, size))
                });
                let publisher = me.inner.publisher.clone();
                let wall = me.inner.clock.wall();
                let dir = me.test_dir();
                crate::rt::spawn(async move {
                    match job.await {
                        Ok((id, name, size)) => {
                            prune_frames(&dir, MAX_FRAME_PREVIEWS);
                            publisher.publish(&SessionFrame {
                                url: format!("/api/camera/photos/test/{id}/file"),
                                id,
                                file_name: name,
                                size,
                                timestamp: iso8601(wall),
                            });
                        }
                        Err(e) => log::debug!("frame preview skipped: {e}"),
                    }
                    busy.store(false, Ordering::SeqCst);
                    drop(inner);
                })
                .detach();
            }
        })
    }

    fn list_test_photos(&self) -> CommandResult {
        Ok(Reply::of(&TestPhotos {
            photos: self.photos().list(),
        }))
    }

    fn test_photo(&self, id: &str) -> Result<TestPhotoInfo, ApiError> {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::invalid("Invalid test photo id: a number"))?;
        self.photos()
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("No test photo {id}")))
    }

    fn delete_test_photo(&self, id: &str) -> CommandResult {
        let info = self.test_photo(id)?;
        self.photos()
            .delete(&info)
            .map_err(|e| ApiError::system(format!("Cannot delete the test photo: {e}")))?;
        Ok(Reply::of(&TestPhotoDeleted {
            success: true,
            message: "Test photo deleted".into(),
            id: info.id,
        }))
    }

    /// The photo's bytes as the REST body (`GET /api/camera/photos/test/:id/file`); WebSocket
    /// clients get the metadata. Session frame thumbnails (`frame_*`) are served too.
    fn test_photo_file(&self, id: &str) -> CommandResult {
        let (path, name, number) = if id.starts_with("frame_") {
            if sanitize(id) != id {
                return Err(ApiError::invalid("Invalid test photo id"));
            }
            (self.test_dir().join(id), id.to_string(), 0)
        } else {
            let info = self.test_photo(id)?;
            (
                self.photos().file(info.id, &info.filename),
                info.filename,
                info.id,
            )
        };
        let size = std::fs::metadata(&path)
            .map_err(|_| ApiError::not_found(format!("No test photo {id}")))?
            .len();
        let content_type = if is_jpeg(&name) {
            "image/jpeg"
        } else {
            "application/octet-stream"
        };
        let data = TestPhotoFile {
            id: number,
            content_type: content_type.into(),
            size,
        };
        // Streamed from disk by the HTTP layer: a 30 MB RAW never sits in memory.
        Ok(Reply::of(&data).with_body(Body::File { content_type, path }))
    }

    /// `connect_to_ip {ip, port?}`: a camera-link operation (works without discovery). One
    /// probe per candidate address; the reply comes once the link is connected, so a photo
    /// may follow at once, or with every address's failure.
    async fn connect_to_ip(&self, req: &ConnectToIp) -> CommandResult {
        let ip = parse_ip(&req.ip)?;
        let urls = candidates(ip, req.port.map(|p| p.0));
        match self.link.connect(urls).await {
            Ok(info) => Ok(Reply::of(&ConnectToIpResult {
                success: true,
                ip: info.ip,
                port: info.port,
                base_url: info.url,
                uuid: Some(info.id),
                model_name: Some(info.model),
            })),
            // The address in the message; the attempts (each URL and why) kept in `details`.
            Err(e) if e.code == ErrorCode::ConnectionFailed => Err(ApiError {
                details: e.details,
                ..ApiError::new(
                    ErrorCode::ConnectionFailed,
                    format!("Failed to connect to camera at {}", req.ip.trim()),
                )
                .with_operation("connect_to_ip")
            }),
            Err(e) => Err(e.with_operation("connect_to_ip")),
        }
    }

    /// The camera's address now, else the last one discovery remembered.
    fn last_ip(&self) -> LastCameraIp {
        if let Some(c) = self.inner.status.camera().filter(|c| c.connected) {
            if let Some(ip) = c.ip {
                return LastCameraIp {
                    base_url: None,
                    last_ip: Some(ip),
                    last_port: c.port,
                };
            }
        }
        let path = self
            .inner
            .data_dir
            .join(crate::discovery::driver::LAST_CAMERA_FILE);
        let base = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() <= 4096)
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("baseUrl")?.as_str().map(str::to_string));
        let host_port = base.as_deref().and_then(|u| {
            let rest = u.split_once("://")?.1;
            let hp = rest.split('/').next()?;
            let (h, p) = hp.rsplit_once(':')?;
            Some((
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().ok()?,
            ))
        });
        LastCameraIp {
            last_ip: host_port.as_ref().map(|(h, _)| h.clone()),
            last_port: host_port.map(|(_, p)| p),
            base_url: base,
        }
    }

    fn accept_certificate(&self, uuid: Option<&str>) -> CommandResult {
        let (id, warning) = self
            .inner
            .trust
            .accept(uuid)
            .map_err(|e| e.with_operation("accept_camera_certificate"))?;
        // Re-probe now: a link backing off after the refusal retries with the pin cleared.
        self.link.retry_now();
        Ok(Reply::of(&CertificateAccepted {
            success: true,
            uuid: id,
            warning,
        }))
    }
}

/// On the event worker: the first new file after the shot, preferring a JPEG (RAW+JPEG may
/// arrive in two events). Polls itself when no file has been reported yet.
fn parse_ip(raw: &str) -> Result<std::net::IpAddr, ApiError> {
    let s = raw.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    let bad = || {
        ApiError::invalid("ip must be an IPv4 or IPv6 address")
            .with_operation("connect_to_ip")
            .with_details(ErrorDetails::Field { field: "ip".into() })
    };
    let ip: std::net::IpAddr = s.parse().map_err(|_| bad())?;
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(bad());
    }
    Ok(ip)
}

/// Base URLs to try: HTTPS then HTTP on the given port (on any port: the scheme is not the
/// port's), or HTTPS 443 then HTTP 8080.
fn candidates(ip: std::net::IpAddr, port: Option<u16>) -> Vec<String> {
    let host = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let url = |scheme: &str, port: u16| format!("{scheme}://{host}:{port}/ccapi");
    match port {
        None => vec![url("https", 443), url("http", 8080)],
        Some(p) => vec![url("https", p), url("http", p)],
    }
}

impl Service for CameraService {
    fn name(&self) -> &'static str {
        "camera"
    }

    /// A client watches: camera changes reach it at once (event polling held).
    fn client_connected(&self, _client: crate::app::ClientId) {
        self.inner.clients_changed(true);
    }

    fn client_disconnected(&self, _client: crate::app::ClientId) {
        self.inner.clients_changed(false);
    }

    fn owner(&self) -> Owner {
        Owner::Camera
    }

    fn handle<'a>(
        &'a self,
        origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        let inner = &self.inner;
        Some(match cmd {
            Command::GetCameraStatus => {
                let block = inner.status.camera().unwrap_or_default();
                Box::pin(async move { Ok(Reply::of(&CameraStatus(block))) })
            }
            Command::TakePhoto(t) => Box::pin(self.take_photo(origin, t.af.unwrap_or(false))),
            Command::GetCameraSettings => Box::pin(async move {
                let v = inner.on_control(|s| s.settings()).await?;
                inner.note_settings(&v);
                let map = match v {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                Ok(Reply::of(&CameraSettingsReply(map)))
            }),
            Command::SetCameraSetting(s) => {
                Box::pin(self.set_setting(s.setting.clone(), s.value.clone()))
            }
            Command::GetCameraBattery => Box::pin(self.battery()),
            Command::GetCameraStorage => Box::pin(self.storage()),
            Command::GetCameraDatetime => Box::pin(self.datetime()),
            Command::TakeTestPhoto => Box::pin(self.take_test_photo()),
            Command::ListTestPhotos => Box::pin(async move { self.list_test_photos() }),
            Command::GetTestPhoto(r) => {
                Box::pin(async move { Ok(Reply::of(&TestPhotoInfoReply(self.test_photo(&r.id)?))) })
            }
            Command::DeleteTestPhoto(r) => Box::pin(async move { self.delete_test_photo(&r.id) }),
            Command::GetTestPhotoFile(r) => Box::pin(async move { self.test_photo_file(&r.id) }),
            Command::ConnectToIp(req) => Box::pin(self.connect_to_ip(req)),
            Command::GetLastCameraIp => Box::pin(async move { Ok(Reply::of(&self.last_ip())) }),
            Command::AcceptCameraCertificate(a) => {
                Box::pin(async move { self.accept_certificate(a.uuid.as_deref()) })
            }
            Command::CaptureLiveview(_)
            | Command::ListLiveviewImages
            | Command::DeleteLiveviewImage(_)
            | Command::ClearLiveviewImages
            | Command::GetLiveviewImageFile(_)
            | Command::GetLiveviewStatus
            | Command::DriveFocus(_) => return self.liveview_command(origin, cmd),
            _ => return None,
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.link.shutdown();
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_literals_are_accepted() {
        for ok in ["192.168.4.2", " 10.0.0.1 ", "::1", "[fe80::1]", "127.0.0.3"] {
            assert!(parse_ip(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "camera.local",
            "192.168.4",
            "192.168.4.2:443",
            "0.0.0.0",
            "255.255.255.255",
            "239.255.255.250",
            "http://192.168.4.2",
            "1.2.3.4; rm -rf /",
        ] {
            let e = parse_ip(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameter, "{bad}");
        }
    }

    #[test]
    fn candidate_order_follows_the_port() {
        let ip: std::net::IpAddr = "192.168.4.2".parse().unwrap();
        assert_eq!(
            candidates(ip, None),
            [
                "https://192.168.4.2:443/ccapi",
                "http://192.168.4.2:8080/ccapi"
            ]
        );
        // HTTPS first on every port, 8080 too.
        assert_eq!(
            candidates(ip, Some(8080)),
            [
                "https://192.168.4.2:8080/ccapi",
                "http://192.168.4.2:8080/ccapi"
            ]
        );
        assert_eq!(
            candidates(ip, Some(4443))[0],
            "https://192.168.4.2:4443/ccapi"
        );
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        assert_eq!(candidates(v6, Some(443))[0], "https://[::1]:443/ccapi");
    }

    #[test]
    fn ids_cannot_escape_the_folder() {
        assert_eq!(sanitize("../../etc/passwd"), "....etcpasswd");
        assert_eq!(
            sanitize("20260101T000000_IMG_0001.JPG"),
            "20260101T000000_IMG_0001.JPG"
        );
    }

    #[test]
    fn photo_store_numbers_lists_and_prunes_newest_first() {
        let dir = std::env::temp_dir().join(format!("skylapse-tp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = PhotoStore::new(dir.clone());
        store.create().unwrap();
        assert_eq!(store.next_id(), 1);
        for _ in 0..5 {
            let id = store.next_id();
            let filename = format!("20260101_000000_IMG_{id:04}.JPG");
            std::fs::write(store.file(id, &filename), b"x").unwrap();
            store
                .save_info(&TestPhotoInfo {
                    id,
                    url: String::new(),
                    file_url: String::new(),
                    filename,
                    camera_path: None,
                    size: 1,
                    timestamp: None,
                    processing_time_ms: None,
                    exif: None,
                    preview: None,
                    settings: None,
                })
                .unwrap();
        }
        std::fs::write(dir.join(".9.part"), b"x").unwrap();
        std::fs::write(dir.join("7.json"), b"not json").unwrap();
        assert_eq!(store.next_id(), 8);
        let ids: Vec<u64> = store.list().iter().map(|p| p.id).collect();
        assert_eq!(ids, [5, 4, 3, 2, 1]);
        store.prune(3);
        let ids: Vec<u64> = store.list().iter().map(|p| p.id).collect();
        assert_eq!(ids, [5, 4, 3]);
        assert!(!store.file(1, "20260101_000000_IMG_0001.JPG").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
