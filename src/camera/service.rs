//! The camera's commands (PROTOCOL.md): status, photo, settings, battery, storage, clock,
//! test photos, certificate acceptance.
//!
//! Test photos: shoot, wait for the new file from event polling, download it on the event
//! worker's socket with `test_photo_download_progress` events, keep it in
//! `<data_dir>/test-photos/` with its metadata (EXIF read from the JPEG). Ids are numbers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ccapi::{storage_summary, Session};
use super::driver::{battery_entry, handle_event_delta, shoot_at, CameraLinkHandle, Inner};
use super::{CameraNotice, ShotRequest};
use crate::app::{Origin, Service};
use crate::clock::BoxFuture;
use crate::protocol::messages::{
    CameraBattery, CameraDatetime, CameraSettingChanged, CameraSettingSet, CameraSettingsReply,
    CameraStatus, CameraStorage, CertificateAccepted, PhotoTaken, PhotoTakenReply, TestPhoto,
    TestPhotoDeleted, TestPhotoFile, TestPhotoInfo, TestPhotoInfoReply, TestPhotoProgress,
    TestPhotos,
};
use crate::protocol::{ApiError, Body, Command, CommandResult, ErrorCode, Owner, Reply};
use crate::util::iso8601;

/// How long a test shot waits for the camera to report the new file.
const FILE_WAIT: Duration = Duration::from_secs(15);
/// After a RAW arrives alone, how long to wait for its JPEG twin.
const JPEG_TWIN_WAIT: Duration = Duration::from_millis(1500);
/// Test photos kept at most; older ones are deleted first.
const MAX_TEST_PHOTOS: usize = 50;

pub struct CameraService {
    inner: Arc<Inner>,
    link: CameraLinkHandle,
}

impl CameraService {
    pub(crate) fn new(inner: Arc<Inner>, link: CameraLinkHandle) -> Self {
        CameraService { inner, link }
    }

    fn photos(&self) -> PhotoStore {
        PhotoStore::new(self.inner.data_dir.join("test-photos"))
    }

    /// A photo: the reply goes to the caller; the broadcast to every other client (a client
    /// logs each photo once).
    async fn take_photo(&self, origin: Origin, af: bool) -> CommandResult {
        let outcome = shoot_at(&self.inner, Instant::now(), ShotRequest::timed(af)).await;
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

    /// Shoot, wait for the new file, download it. The waiting and the download run as one job
    /// on the event worker, queued before the shutter is pressed: the worker's own poll (or
    /// this job's) reports the file, and the download starts at once instead of queueing
    /// behind the next 30 s long-poll.
    async fn take_test_photo(&self) -> CommandResult {
        let _one_at_a_time = self.inner.test_shot.lock().await;
        self.inner.session()?;
        let files = self.inner.subscribe();
        let store = self.photos();
        store
            .create()
            .map_err(|e| ApiError::system(format!("Cannot create the test photo folder: {e}")))?;
        let started = Instant::now();
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
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = {
            let inner = self.inner.clone();
            let (store, cancelled) = (store.clone(), cancelled.clone());
            self.inner.on_events(move |s| {
                let path = wait_for_file(&inner, s, &files, &cancelled)?;
                let name = path.rsplit('/').next().unwrap_or("photo").to_string();
                let filename = sanitize(&format!("{stamp}_{name}"));
                let size = download_to(&inner, s, &path, &store, id, &filename)?;
                Ok((path, filename, size))
            })
        };
        // Autofocus off: test shots check framing/exposure of a manually focused night scene.
        let outcome = shoot_at(&self.inner, Instant::now(), ShotRequest::timed(false)).await;
        if let Err(e) = outcome.result {
            cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(e.with_operation("take_test_photo"));
        }
        let (camera_path, filename, size) =
            job.await.map_err(|e| e.with_operation("take_test_photo"))?;
        let exif = if is_jpeg(&filename) {
            let path = store.file(id, &filename);
            read_head(&path)
                .ok()
                .and_then(|b| super::exif::parse(&b).ok())
                .map(|mut e| {
                    // The frame header may sit past the first MiB (maker notes, padding).
                    if e.ImageWidth.is_none() {
                        let size = std::fs::File::open(&path)
                            .ok()
                            .and_then(|mut f| super::exif::frame_size_in(&mut f));
                        if let Some((w, h)) = size {
                            e.ImageWidth = Some(w);
                            e.ImageHeight = Some(h);
                        }
                    }
                    e
                })
        } else {
            None
        };
        let info = TestPhotoInfo {
            id,
            url: format!("/api/camera/photos/test/{id}"),
            file_url: format!("/api/camera/photos/test/{id}/file"),
            filename,
            camera_path: Some(camera_path),
            size,
            timestamp: Some(iso8601(wall)),
            processing_time_ms: Some(started.elapsed().as_millis() as u64),
            exif,
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
    /// clients get the metadata.
    fn test_photo_file(&self, id: &str) -> CommandResult {
        let info = self.test_photo(id)?;
        let path = self.photos().file(info.id, &info.filename);
        let size = std::fs::metadata(&path)
            .map_err(|e| ApiError::system(format!("Cannot read the test photo: {e}")))?
            .len();
        let content_type = if is_jpeg(&info.filename) {
            "image/jpeg"
        } else {
            "application/octet-stream"
        };
        let data = TestPhotoFile {
            id: info.id,
            content_type: content_type.into(),
            size,
        };
        // Streamed from disk by the HTTP layer: a 30 MB RAW never sits in memory.
        Ok(Reply::of(&data).with_body(Body::File { content_type, path }))
    }

    fn accept_certificate(&self, uuid: Option<&str>) -> CommandResult {
        let id = self.inner.trust.accept(uuid)?;
        // Re-probe now: a link backing off after the refusal retries with the pin cleared.
        self.link.retry_now();
        Ok(Reply::of(&CertificateAccepted {
            success: true,
            uuid: id,
        }))
    }
}

/// The first bytes of a file (EXIF and the frame header sit there).
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(super::exif::MAX_SCAN as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// `<data_dir>/test-photos/`: `<id>_<filename>` and its metadata `<id>.json` (written
/// atomically, after the file). Ids are numbers, one more than the highest stored.
#[derive(Clone)]
struct PhotoStore {
    dir: PathBuf,
}

impl PhotoStore {
    fn new(dir: PathBuf) -> PhotoStore {
        PhotoStore { dir }
    }

    fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    fn file(&self, id: u64, filename: &str) -> PathBuf {
        self.dir.join(format!("{id}_{filename}"))
    }

    fn info_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    }

    fn next_id(&self) -> u64 {
        self.ids().first().map_or(1, |m| m + 1)
    }

    fn get(&self, id: u64) -> Option<TestPhotoInfo> {
        let bytes = std::fs::read(self.info_path(id)).ok()?;
        let info: TestPhotoInfo = serde_json::from_slice(&bytes).ok()?;
        (info.id == id && sanitize(&info.filename) == info.filename).then_some(info)
    }

    /// Newest first; unreadable metadata is skipped.
    fn list(&self) -> Vec<TestPhotoInfo> {
        self.ids()
            .into_iter()
            .filter_map(|id| self.get(id))
            .collect()
    }

    fn save_info(&self, info: &TestPhotoInfo) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        crate::util::atomic_write(&self.info_path(info.id), &bytes)
    }

    fn delete(&self, info: &TestPhotoInfo) -> std::io::Result<()> {
        std::fs::remove_file(self.info_path(info.id))?;
        let _ = std::fs::remove_file(self.file(info.id, &info.filename));
        Ok(())
    }

    fn prune(&self, keep: usize) {
        for info in self.list().into_iter().skip(keep) {
            let _ = self.delete(&info);
        }
    }
}

/// On the event worker: the first new file after the shot, preferring a JPEG (RAW+JPEG may
/// arrive in two events). Polls itself when no file has been reported yet.
fn wait_for_file(
    inner: &Inner,
    session: &Session,
    files: &async_channel::Receiver<CameraNotice>,
    cancelled: &AtomicBool,
) -> Result<String, ApiError> {
    // The file appears only after the exposure (and a noise-reduction dark frame as long).
    let exposure = inner
        .settings()
        .exposure_time()
        .unwrap_or(super::ccapi::MAX_TIMED_EXPOSURE);
    let deadline = Instant::now() + FILE_WAIT + exposure * 2;
    let mut fallback: Option<(String, Instant)> = None;
    loop {
        while let Ok(n) = files.try_recv() {
            if let CameraNotice::FilesAdded(list) = n {
                if let Some(jpeg) = list.iter().find(|p| is_jpeg(p)) {
                    return Ok(jpeg.clone());
                }
                if fallback.is_none() {
                    if let Some(first) = list.first() {
                        fallback = Some((first.clone(), Instant::now() + JPEG_TWIN_WAIT));
                    }
                }
            }
        }
        let now = Instant::now();
        if let Some((path, until)) = &fallback {
            if now >= *until || now >= deadline {
                return Ok(path.clone());
            }
        }
        if now >= deadline || cancelled.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                ErrorCode::CameraTimeout,
                "The camera took the test photo but did not report the file",
            ));
        }
        // Hold while waiting for the first file; only peek while waiting for a JPEG twin.
        let hold = fallback.is_none();
        match session.poll_events(hold) {
            Ok(v) => handle_event_delta(inner, &v),
            Err(e) if e.code == ErrorCode::CameraBusy => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => return Err(e),
        }
        if !hold {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// On the event worker: downloads `path` into the store as photo `id` (via a hidden partial
/// file), with `test_photo_download_progress` events.
fn download_to(
    inner: &Inner,
    session: &Session,
    path: &str,
    store: &PhotoStore,
    id: u64,
    filename: &str,
) -> Result<u64, ApiError> {
    let tmp = store.dir.join(format!(".{id}.part"));
    let store_err = |e: std::io::Error| ApiError::system(format!("Cannot store the photo: {e}"));
    let mut f = std::fs::File::create(&tmp).map_err(store_err)?;
    let mut last_step = -1i64;
    let mut progress = |got: u64, total: Option<u64>| {
        // At most ~20 events per download.
        let step = match total {
            Some(t) if t > 0 => (got * 20 / t) as i64,
            _ => (got / (256 * 1024)) as i64,
        };
        if step != last_step {
            last_step = step;
            let percent = total.map(|t| (got * 100).checked_div(t).unwrap_or(100));
            inner.publisher.publish(&TestPhotoProgress {
                photo_id: id,
                bytes_received: got,
                total_bytes: total,
                percent,
                percentage: percent,
            });
        }
    };
    let result = session.download(path, &mut f, &mut progress).and_then(|n| {
        f.flush().and_then(|_| f.sync_all()).map_err(store_err)?;
        std::fs::rename(&tmp, store.file(id, filename)).map_err(store_err)?;
        Ok(n)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn is_jpeg(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.ends_with(".jpg") || l.ends_with(".jpeg")
}

/// Keeps `[A-Za-z0-9._-]` only.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

impl Service for CameraService {
    fn name(&self) -> &'static str {
        "camera"
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
            Command::AcceptCameraCertificate(a) => {
                Box::pin(async move { self.accept_certificate(a.uuid.as_deref()) })
            }
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
