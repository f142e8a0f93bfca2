//! Photos kept on the Pi: the test-photo store (`<data_dir>/test-photos/`), waiting for a
//! shot's file on the card, downloads with progress, EXIF, and session frame previews.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ccapi::Session;
use super::shared::Shared as Inner;
use super::CameraNotice;
use crate::protocol::messages::{ExifSummary, TestPhotoInfo, TestPhotoProgress};
use crate::protocol::{ApiError, ErrorCode};

/// How long a test shot waits for the camera to report the new file.
const FILE_WAIT: Duration = Duration::from_secs(15);
/// After a RAW arrives alone, how long to wait for its JPEG twin.
const JPEG_TWIN_WAIT: Duration = Duration::from_millis(1500);

pub(super) fn wait_for_file(
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
    let clock = inner.clock.as_ref();
    let pause = |d: Duration| clock.precise_wait_until(clock.now() + d);
    let deadline = clock.now() + FILE_WAIT + exposure * 2;
    let mut fallback: Option<(String, Instant)> = None;
    loop {
        while let Ok(n) = files.try_recv() {
            if let CameraNotice::FilesAdded(list) = n {
                if let Some(jpeg) = list.iter().find(|p| is_jpeg(p)) {
                    return Ok(jpeg.clone());
                }
                if fallback.is_none() {
                    if let Some(first) = list.first() {
                        fallback = Some((first.clone(), clock.now() + JPEG_TWIN_WAIT));
                    }
                }
            }
        }
        let now = clock.now();
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
            Ok(v) => inner.handle_event_delta(&v),
            Err(e) if e.code == ErrorCode::CameraBusy => pause(Duration::from_millis(100)),
            Err(e) => return Err(e),
        }
        if !hold {
            pause(Duration::from_millis(100));
        }
    }
}

/// On the event worker: downloads `path` to `<dir>/<id>` (via a hidden partial file), with
/// `test_photo_download_progress` events for photo number `photo`.
pub(super) fn download_to(
    inner: &Inner,
    session: &Session,
    path: &str,
    dir: &Path,
    id: &str,
    photo: u64,
) -> Result<u64, ApiError> {
    let tmp = dir.join(format!(".{id}.part"));
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
                photo_id: photo,
                bytes_received: got,
                total_bytes: total,
                percent,
                percentage: percent,
            });
        }
    };
    let result = session.download(path, &mut f, &mut progress).and_then(|n| {
        f.flush().and_then(|_| f.sync_all()).map_err(store_err)?;
        std::fs::rename(&tmp, dir.join(id)).map_err(store_err)?;
        Ok(n)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The camera's display-size image of `path` (a JPEG of ~1080 px short side, also for RAW
/// files) as photo `id` named `<stamp>_<stem>.JPG`; the original where the body offers no
/// display image. Returns (file name, size, "display" | "original").
pub(super) fn download_preview(
    inner: &Inner,
    session: &Session,
    path: &str,
    store: &PhotoStore,
    id: u64,
    stamp: &str,
    name: &str,
) -> Result<(String, u64, &'static str), ApiError> {
    let stem = name.rsplit_once('.').map_or(name, |(a, _)| a);
    let display = sanitize(&format!("{stamp}_{stem}.JPG"));
    let stored = |filename: &str| format!("{id}_{filename}");
    match download_to(
        inner,
        session,
        &format!("{path}?kind=display"),
        &store.dir,
        &stored(&display),
        id,
    ) {
        Ok(size) => Ok((display, size, "display")),
        Err(e) if e.code == ErrorCode::CameraOffline => Err(e),
        Err(e) => {
            log::debug!("no display image for {path} ({e}); downloading the original");
            let original = sanitize(&format!("{stamp}_{name}"));
            let size = download_to(inner, session, path, &store.dir, &stored(&original), id)?;
            Ok((original, size, "original"))
        }
    }
}

/// The EXIF summary of a stored JPEG (the frame size may sit past the first MiB).
pub(super) fn read_exif(path: &Path) -> Option<ExifSummary> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(super::exif::MAX_SCAN as u64)
        .read_to_end(&mut head)
        .ok()?;
    let mut e = super::exif::parse(&head).ok()?;
    if e.ImageWidth.is_none() {
        let size = std::fs::File::open(path)
            .ok()
            .and_then(|mut f| super::exif::frame_size_in(&mut f));
        if let Some((w, h)) = size {
            e.ImageWidth = Some(w);
            e.ImageHeight = Some(h);
        }
    }
    Some(e)
}

/// `<data_dir>/test-photos/`: `<id>_<filename>` and its metadata `<id>.json` (written
/// atomically, after the file). Ids are numbers, one more than the highest stored.
#[derive(Clone)]
pub(super) struct PhotoStore {
    dir: PathBuf,
}

impl PhotoStore {
    pub(super) fn new(dir: PathBuf) -> PhotoStore {
        PhotoStore { dir }
    }

    pub(super) fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    pub(super) fn file(&self, id: u64, filename: &str) -> PathBuf {
        self.dir.join(format!("{id}_{filename}"))
    }

    pub(super) fn info_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(super) fn ids(&self) -> Vec<u64> {
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

    pub(super) fn next_id(&self) -> u64 {
        self.ids().first().map_or(1, |m| m + 1)
    }

    pub(super) fn get(&self, id: u64) -> Option<TestPhotoInfo> {
        let bytes = std::fs::read(self.info_path(id)).ok()?;
        let info: TestPhotoInfo = serde_json::from_slice(&bytes).ok()?;
        (info.id == id && sanitize(&info.filename) == info.filename).then_some(info)
    }

    /// Newest first; unreadable metadata is skipped.
    pub(super) fn list(&self) -> Vec<TestPhotoInfo> {
        self.ids()
            .into_iter()
            .filter_map(|id| self.get(id))
            .collect()
    }

    pub(super) fn save_info(&self, info: &TestPhotoInfo) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        crate::util::atomic_write(&self.info_path(info.id), &bytes)
    }

    pub(super) fn delete(&self, info: &TestPhotoInfo) -> std::io::Result<()> {
        std::fs::remove_file(self.info_path(info.id))?;
        let _ = std::fs::remove_file(self.file(info.id, &info.filename));
        Ok(())
    }

    pub(super) fn prune(&self, keep: usize) {
        for info in self.list().into_iter().skip(keep) {
            let _ = self.delete(&info);
        }
    }
}

/// Downloads `path` (with its query) to `<dir>/<id>` through a hidden partial file, no events.
pub(super) fn fetch_to(
    session: &Session,
    path: &str,
    dir: &Path,
    id: &str,
) -> Result<u64, ApiError> {
    let tmp = dir.join(format!(".{id}.part"));
    let store_err = |e: std::io::Error| ApiError::system(format!("Cannot store the preview: {e}"));
    let mut f = std::fs::File::create(&tmp).map_err(store_err)?;
    let result = session
        .download(path, &mut f, &mut |_, _| {})
        .and_then(|n| {
            std::fs::rename(&tmp, dir.join(id)).map_err(store_err)?;
            Ok(n)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Keeps the newest `keep` frame previews.
pub(super) fn prune_frames(dir: &Path, keep: usize) {
    for (id, _, _) in list_photos(dir)
        .into_iter()
        .filter(|(id, _, _)| id.starts_with("frame_"))
        .skip(keep)
    {
        let _ = std::fs::remove_file(dir.join(id));
    }
}

/// An IPv4 or IPv6 literal (IPv6 may come in brackets); nothing else.
pub(super) fn is_jpeg(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.ends_with(".jpg") || l.ends_with(".jpeg")
}

/// Keeps `[A-Za-z0-9._-]` only.
pub(super) fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// (id, size, modified), newest first; skips partial downloads.
pub(super) fn list_photos(dir: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    out.push((name, m.len(), m.modified().ok()));
                }
            }
        }
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    out
}
