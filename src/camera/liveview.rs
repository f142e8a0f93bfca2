//! Live view (issue 11): one camera stream shared by every viewer, focus drive, and one-shot
//! captures kept like test photos.
//!
//! ```text
//!   Off ──first viewer / capture──▶ Starting ──POST liveview {size}──▶ On ──▶ pump
//!    ▲                                │ refused (session, thermal, busy): viewers get the error
//!    └── LINGER after the last viewer ┴── a session starts: viewers are closed, live view off
//!
//!   pump (one task): frame = GET liveview/flip (control worker, behind any shot)
//!                    → each viewer's one-frame slot (a viewer still busy skips it)
//!                    → wait for every viewer to take it (≤ VIEWER_WAIT), ≥ MIN_FRAME_GAP
//! ```
//!
//! The Pi relays bytes (no decode). A viewer holds at most one frame; the pump fetches the
//! next frame once every viewer has taken the last (a stalled viewer is skipped after
//! [`VIEWER_WAIT`]), so the camera is polled no faster than the slowest viewer and never
//! faster than [`MIN_FRAME_GAP`] (bodies answer 503 "Device busy" when polled fast). Busy
//! answers and the 160×120 black frame a body sends while live view (re)starts are skipped.
//!
//! A running session comes first: live view is refused while one runs, and a session that
//! starts ends the stream (the frames go through the control worker that fires the shots).
//! Focus drive is refused during a session too (it would move the focus of the frames).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::photos::PhotoStore;
use super::service::{CameraService, SessionGate};
use super::shared::Shared as Inner;
use crate::app::Origin;
use crate::clock::BoxFuture;
use crate::protocol::messages::{
    ExifSummary, FocusDriven, LiveViewCaptured, LiveViewCleared, LiveViewImageCaptured,
    LiveViewImageDeleted, LiveViewImageFile, LiveViewImages, LiveViewStatus, TestPhotoInfo,
};
use crate::protocol::{ApiError, Body, Command, CommandResult, ErrorCode, ErrorDetails, Reply};
use crate::util::iso8601;

/// At most this many viewers share the stream (each holds a connection and a frame).
pub const MAX_VIEWERS: usize = 4;
/// Live view stays on this long after the last viewer left (a page reload reuses it).
const LINGER: Duration = Duration::from_secs(5);
/// Never ask the camera for frames closer together than this (≤ 10 fps).
const MIN_FRAME_GAP: Duration = Duration::from_millis(100);
/// A viewer that has not taken its frame by then is skipped for this one.
const VIEWER_WAIT: Duration = Duration::from_secs(1);
/// After a busy answer, wait this long before asking again.
const BUSY_PAUSE: Duration = Duration::from_millis(250);
/// A capture waits this long for a real frame (live view takes ~1.6 s to start, then ~1.2 s
/// to the first frame on an R50).
const CAPTURE_PATIENCE: Duration = Duration::from_secs(8);
/// Busy answers to the start after which the stream gives up (~5 s).
const START_TRIES: u32 = 20;
/// Consecutive failures (not busy) after which the stream gives up.
const MAX_FAILURES: u32 = 5;

/// A live-view size the camera knows.
pub fn parse_size(s: Option<&str>) -> Result<&'static str, ApiError> {
    match s.unwrap_or("medium") {
        "small" => Ok("small"),
        "medium" => Ok("medium"),
        other => Err(ApiError::invalid(format!(
            "Unknown live-view size {:?}: small or medium",
            other.chars().take(16).collect::<String>()
        ))),
    }
}

/// A focus step CCAPI's `drivefocus` takes.
pub fn parse_focus_step(s: &str) -> Result<&'static str, ApiError> {
    const STEPS: [&str; 6] = ["near3", "near2", "near1", "far1", "far2", "far3"];
    STEPS.iter().find(|v| **v == s).copied().ok_or_else(|| {
        ApiError::invalid("Focus step must be near1, near2, near3 (small to large) or far1..far3")
    })
}

/// A frame as the camera sent it, shared by every viewer, with when it arrived (the relay's
/// added latency is measured from there to the viewer's socket).
#[derive(Debug)]
pub struct FrameData {
    pub jpeg: Vec<u8>,
    pub received_at: std::time::Instant,
}

pub type Frame = Arc<FrameData>;

/// Relay latencies kept for the status (the newest).
const LATENCY_SAMPLES: usize = 512;

struct ViewerSlot {
    frames: async_channel::Sender<Frame>,
}

#[derive(Default)]
struct State {
    viewers: BTreeMap<u64, ViewerSlot>,
    /// The pump task runs (live view on or starting).
    pumping: bool,
    size: &'static str,
    /// Frames relayed since start.
    frames: u64,
    /// Frame received → written to a viewer's socket, the newest [`LATENCY_SAMPLES`].
    latencies: std::collections::VecDeque<Duration>,
}

/// The camera's live view, shared by every viewer (see the module doc).
pub struct LiveView {
    inner: Arc<Inner>,
    gate: Arc<OnceLock<Arc<dyn SessionGate>>>,
    state: Mutex<State>,
    /// Viewers acknowledge each frame here (their id; joins and leaves too); the pump waits
    /// on it.
    acks: (async_channel::Sender<u64>, async_channel::Receiver<u64>),
    next_viewer: AtomicU64,
}

/// One viewer of the stream; dropping it leaves.
pub struct Viewer {
    id: u64,
    lv: Arc<LiveView>,
    frames: async_channel::Receiver<Frame>,
}

impl Viewer {
    /// The next frame; `None` when the stream ended (session started, camera gone).
    pub async fn next(&self) -> Option<Frame> {
        let f = self.frames.recv().await.ok()?;
        Some(f)
    }

    /// Tells the pump this viewer wrote `frame` (it may fetch the next).
    pub fn done(&self, frame: &Frame) {
        let took = self
            .lv
            .inner
            .clock
            .now()
            .saturating_duration_since(frame.received_at);
        {
            let mut s = self.lv.lock();
            if s.latencies.len() == LATENCY_SAMPLES {
                s.latencies.pop_front();
            }
            s.latencies.push_back(took);
        }
        let _ = self.lv.acks.0.try_send(self.id);
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.lv.lock().viewers.remove(&self.id);
        let _ = self.lv.acks.0.try_send(self.id);
    }
}

impl LiveView {
    pub(crate) fn new(inner: Arc<Inner>, gate: Arc<OnceLock<Arc<dyn SessionGate>>>) -> Self {
        LiveView {
            inner,
            gate,
            state: Mutex::new(State {
                size: "medium",
                ..State::default()
            }),
            acks: async_channel::bounded(MAX_VIEWERS * 4),
            next_viewer: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session_running(&self) -> bool {
        self.gate.get().is_some_and(|g| g.session_running())
    }

    fn refuse_during_session(&self, what: &str) -> Result<(), ApiError> {
        if self.session_running() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("A timelapse is running: {what} is off so it cannot delay or spoil a frame. Stop the session first"),
            )
            .with_details(ErrorDetails::refused("session_running")));
        }
        Ok(())
    }

    /// Number of viewers now, whether live view is on, frames relayed, and the relay's added
    /// latency (p50, p99) over the newest frames.
    pub fn status(&self) -> (usize, bool, u64, Option<(Duration, Duration)>) {
        let s = self.lock();
        let mut l: Vec<Duration> = s.latencies.iter().copied().collect();
        l.sort_unstable();
        let pct = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
        let lat = (!l.is_empty()).then(|| (pct(0.5), pct(0.99)));
        (s.viewers.len(), s.pumping, s.frames, lat)
    }

    /// Joins the stream (starting live view at `size` if it is off).
    pub fn watch(self: &Arc<Self>, size: &'static str) -> Result<Viewer, ApiError> {
        self.refuse_during_session("Live view")?;
        self.inner.session()?;
        let id = self.next_viewer.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = async_channel::bounded(1);
        let start = {
            let mut s = self.lock();
            if s.viewers.len() >= MAX_VIEWERS {
                return Err(ApiError::new(
                    ErrorCode::CameraBusy,
                    format!("Live view already has {MAX_VIEWERS} viewers; close one first"),
                ));
            }
            s.viewers.insert(id, ViewerSlot { frames: tx });
            let start = !s.pumping;
            if start {
                s.pumping = true;
                s.size = size;
            }
            start
        };
        if start {
            let me = self.clone();
            crate::rt::spawn(async move { me.pump().await }).detach();
        } else {
            // Wake a pump that lingers with no viewer.
            let _ = self.acks.0.try_send(0);
        }
        Ok(Viewer {
            id,
            lv: self.clone(),
            frames: rx,
        })
    }

    /// One frame for a capture: the stream's next one if it runs, else live view is started
    /// for it (and stops after [`LINGER`]).
    pub async fn capture(self: &Arc<Self>) -> Result<Frame, ApiError> {
        let size = self.lock().size;
        // Watching keeps the pump alive until the frame arrives.
        let viewer = self.watch(size)?;
        let deadline = self.inner.clock.now() + CAPTURE_PATIENCE;
        let timeout = self.inner.clock.sleep_until(deadline);
        let frame = futures_lite::future::or(async { viewer.next().await }, async {
            timeout.await;
            None
        })
        .await;
        if let Some(f) = &frame {
            viewer.done(f);
        }
        frame.ok_or_else(|| {
            ApiError::new(
                ErrorCode::CameraBusy,
                "The camera sent no live-view frame in time (is live view refused in this mode, or the camera too hot?)",
            )
        })
    }

    /// Moves the focus one step (live view is started for it where the body needs it).
    pub async fn drive_focus(self: &Arc<Self>, step: &'static str) -> Result<(), ApiError> {
        self.refuse_during_session("Focus drive")?;
        let r = self.inner.on_control(move |s| s.drive_focus(step)).await;
        match r {
            Err(e) if camera_message(&e) == Some("Live view not started") => {
                // Some bodies drive focus only in live view: start it, drive, let it linger.
                let _viewer = self.watch(self.lock().size)?;
                let deadline = self.inner.clock.now() + CAPTURE_PATIENCE;
                loop {
                    match self.inner.on_control(move |s| s.drive_focus(step)).await {
                        Err(e)
                            if camera_message(&e) == Some("Live view not started")
                                && self.inner.clock.now() < deadline =>
                        {
                            self.inner
                                .clock
                                .sleep_until(self.inner.clock.now() + BUSY_PAUSE)
                                .await;
                        }
                        r => return r,
                    }
                }
            }
            r => r,
        }
    }

    /// Ends every viewer's stream (their `next` returns `None`).
    fn close_viewers(&self) {
        self.lock().viewers.clear();
    }

    /// The one task that talks to the camera while live view is on. A viewer that joined
    /// while it was ending (live view off) makes it start over.
    async fn pump(self: Arc<Self>) {
        loop {
            self.pump_once().await;
            let mut s = self.lock();
            if s.viewers.is_empty() || s.pumping {
                return;
            }
            s.pumping = true;
        }
    }

    async fn pump_once(&self) {
        let clock = self.inner.clock.clone();
        let size = self.lock().size;
        let mut started = false;
        let mut failures = 0u32;
        let mut idle_since = None;
        let mut last_fetch = None;
        let reason: Option<String> = loop {
            if self.session_running() {
                self.close_viewers();
                break Some("a session started".into());
            }
            if self.lock().viewers.is_empty() {
                let now = clock.now();
                let since = *idle_since.get_or_insert(now);
                if now >= since + LINGER {
                    break None;
                }
                // Wait for a viewer (acks also come from joins and leaves) or the linger end.
                let wake = clock.sleep_until(since + LINGER);
                futures_lite::future::or(
                    async {
                        let _ = self.acks.1.recv().await;
                    },
                    wake,
                )
                .await;
                continue;
            }
            idle_since = None;
            if !started {
                match self.inner.on_control(move |s| s.liveview(size)).await {
                    Ok(()) => {
                        started = true;
                        failures = 0;
                    }
                    // Busy for a moment after a shot: ask again, for a while.
                    Err(e) if e.code == ErrorCode::CameraBusy && failures < START_TRIES => {
                        failures += 1;
                        clock.sleep_until(clock.now() + BUSY_PAUSE).await;
                        continue;
                    }
                    Err(e) => {
                        log::info!("live view refused by the camera: {e}");
                        self.close_viewers();
                        break Some(e.message);
                    }
                }
            }
            if let Some(t) = last_fetch {
                clock.sleep_until(t + MIN_FRAME_GAP).await;
            }
            last_fetch = Some(clock.now());
            match self.inner.on_control(|s| s.liveview_frame()).await {
                Ok(bytes) if is_restart_frame(&bytes) => {
                    clock.sleep_until(clock.now() + BUSY_PAUSE).await;
                }
                Ok(bytes) => {
                    failures = 0;
                    let frame = FrameData {
                        jpeg: bytes,
                        received_at: clock.now(),
                    };
                    self.deliver(Arc::new(frame)).await;
                }
                Err(e) if camera_message(&e) == Some("Live view not started") => {
                    // Turned off on the body (or by a sleep): start it again.
                    started = false;
                    failures += 1;
                }
                Err(e) if e.code == ErrorCode::CameraBusy => {
                    clock.sleep_until(clock.now() + BUSY_PAUSE).await;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_FAILURES || e.code == ErrorCode::CameraOffline {
                        self.close_viewers();
                        break Some(e.message);
                    }
                    clock.sleep_until(clock.now() + BUSY_PAUSE).await;
                }
            }
        };
        // Drain acks so the next pump starts clean.
        while self.acks.1.try_recv().is_ok() {}
        self.lock().pumping = false;
        if started {
            if let Err(e) = self.inner.on_control(|s| s.liveview("off")).await {
                log::debug!("live view off: {e}");
            }
        }
        match reason {
            Some(r) => log::info!("live view ended: {r}"),
            None => log::debug!("live view off: no viewer for {} s", LINGER.as_secs()),
        }
    }

    /// Hands `frame` to every viewer with room for it, then waits until each one that got it
    /// wrote it (or [`VIEWER_WAIT`]).
    async fn deliver(&self, frame: Frame) {
        let mut waiting = std::collections::BTreeSet::new();
        {
            let mut s = self.lock();
            s.frames += 1;
            for (id, v) in &s.viewers {
                if v.frames.try_send(frame.clone()).is_ok() {
                    waiting.insert(*id);
                }
            }
        }
        let clock = &self.inner.clock;
        let deadline = clock.now() + VIEWER_WAIT;
        while !waiting.is_empty() {
            let timer = clock.sleep_until(deadline);
            let ack = futures_lite::future::or(async { self.acks.1.recv().await.ok() }, async {
                timer.await;
                None
            })
            .await;
            match ack {
                Some(id) => {
                    waiting.remove(&id);
                    // A viewer that left acknowledges too; one that is gone is not waited on.
                    let s = self.lock();
                    waiting.retain(|id| s.viewers.contains_key(id));
                }
                None => break,
            }
        }
    }
}

/// Live-view frames kept at most (oldest deleted first).
const MAX_KEPT_FRAMES: usize = 50;

impl CameraService {
    fn liveview_store(&self) -> PhotoStore {
        PhotoStore::new(self.inner.data_dir.join("liveview"))
    }

    fn liveview_image(&self, id: &str) -> Result<TestPhotoInfo, ApiError> {
        let not_found = || ApiError::not_found(format!("No live-view image {id}"));
        let n: u64 = id.trim().parse().map_err(|_| not_found())?;
        self.liveview_store().get(n).ok_or_else(not_found)
    }

    /// The live-view commands (capture, gallery, status, focus).
    pub(super) fn liveview_command<'a>(
        &'a self,
        origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        let lv = self.liveview.clone();
        Some(match cmd {
            Command::CaptureLiveview(c) => Box::pin(async move {
                let _ = parse_size(c.size.as_deref())?;
                self.capture_liveview(origin)
                    .await
                    .map_err(|e| e.with_operation("capture_liveview"))
            }),
            Command::ListLiveviewImages => Box::pin(async move {
                Ok(Reply::of(&LiveViewImages {
                    images: self.liveview_store().list(),
                }))
            }),
            Command::DeleteLiveviewImage(r) => Box::pin(async move {
                let info = self.liveview_image(&r.id)?;
                self.liveview_store()
                    .delete(&info)
                    .map_err(|e| ApiError::system(format!("Cannot delete the image: {e}")))?;
                Ok(Reply::of(&LiveViewImageDeleted {
                    success: true,
                    id: info.id,
                }))
            }),
            Command::ClearLiveviewImages => Box::pin(async move {
                let store = self.liveview_store();
                let mut deleted = 0;
                for info in store.list() {
                    if store.delete(&info).is_ok() {
                        deleted += 1;
                    }
                }
                Ok(Reply::of(&LiveViewCleared {
                    success: true,
                    deleted,
                }))
            }),
            Command::GetLiveviewImageFile(r) => Box::pin(async move {
                let info = self.liveview_image(&r.id)?;
                let path = self.liveview_store().file(info.id, &info.filename);
                let size = std::fs::metadata(&path)
                    .map_err(|_| ApiError::not_found(format!("No live-view image {}", r.id)))?
                    .len();
                let data = LiveViewImageFile {
                    id: info.id,
                    content_type: "image/jpeg".into(),
                    size,
                };
                Ok(Reply::of(&data).with_body(Body::File {
                    content_type: "image/jpeg",
                    path,
                }))
            }),
            Command::GetLiveviewStatus => Box::pin(async move {
                let (viewers, active, frames, latency) = lv.status();
                let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
                Ok(Reply::of(&LiveViewStatus {
                    active,
                    viewers: viewers as u64,
                    max_viewers: MAX_VIEWERS as u64,
                    frames_relayed: frames,
                    relay_latency_p50_ms: latency.map(|l| ms(l.0)),
                    relay_latency_p99_ms: latency.map(|l| ms(l.1)),
                    stream_url: "/api/camera/liveview/stream".into(),
                }))
            }),
            Command::DriveFocus(d) => Box::pin(async move {
                let step = parse_focus_step(d.step.trim())?;
                lv.drive_focus(step)
                    .await
                    .map_err(|e| e.with_operation("drive_focus"))?;
                Ok(Reply::of(&FocusDriven {
                    success: true,
                    step: step.into(),
                }))
            }),
            _ => return None,
        })
    }

    /// One frame, kept in `<data_dir>/liveview/` (written atomically, metadata after the
    /// file), announced to the other clients.
    async fn capture_liveview(&self, origin: Origin) -> CommandResult {
        let started = self.inner.clock.now();
        let frame = self.liveview.capture().await?;
        let store = self.liveview_store();
        let stored_err =
            |e: std::io::Error| ApiError::system(format!("Cannot store the live-view image: {e}"));
        store.create().map_err(stored_err)?;
        let wall = self.inner.clock.wall();
        let iso = iso8601(wall);
        let digits: String = iso.chars().filter(char::is_ascii_digit).take(14).collect();
        let filename = format!(
            "{}_{}_liveview.JPG",
            &digits[..8.min(digits.len())],
            &digits[8.min(digits.len())..]
        );
        let id = store.next_id();
        crate::util::atomic_write(&store.file(id, &filename), &frame.jpeg).map_err(stored_err)?;
        let mut c = std::io::Cursor::new(frame.jpeg.as_slice());
        let exif = super::exif::frame_size_in(&mut c).map(|(w, h)| ExifSummary {
            ImageWidth: Some(w),
            ImageHeight: Some(h),
            ..ExifSummary::default()
        });
        let info = TestPhotoInfo {
            id,
            url: format!("/api/camera/liveview/images/{id}"),
            file_url: format!("/api/camera/liveview/images/{id}/file"),
            filename,
            camera_path: None,
            size: frame.jpeg.len() as u64,
            timestamp: Some(iso),
            processing_time_ms: Some(
                self.inner
                    .clock
                    .now()
                    .saturating_duration_since(started)
                    .as_millis() as u64,
            ),
            exif,
            preview: Some("liveview".into()),
            settings: Some(self.inner.settings()),
        };
        store.save_info(&info).map_err(stored_err)?;
        store.prune(MAX_KEPT_FRAMES);
        let event = LiveViewImageCaptured(info.clone());
        match origin {
            Origin::WebSocket(client) => self.inner.publisher.publish_except(client, &event),
            Origin::Rest | Origin::Internal => self.inner.publisher.publish(&event),
        }
        Ok(Reply::of(&LiveViewCaptured {
            success: true,
            image: info,
        }))
    }
}

/// The camera's message in a CCAPI error (`details.cameraMessage`).
fn camera_message(e: &ApiError) -> Option<&str> {
    super::ccapi::camera_message(e)
}

/// The 160×120 frame a body sends while live view (re)starts: not a picture of the scene.
fn is_restart_frame(jpeg: &[u8]) -> bool {
    let mut c = std::io::Cursor::new(jpeg);
    super::exif::frame_size_in(&mut c) == Some((160, 120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_focus_steps_are_checked() {
        assert_eq!(parse_size(None).unwrap(), "medium");
        assert_eq!(parse_size(Some("small")).unwrap(), "small");
        assert_eq!(
            parse_size(Some("large")).unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(parse_focus_step("far2").unwrap(), "far2");
        for bad in ["", "far4", "near0", "NEAR1", "far1; x"] {
            assert!(parse_focus_step(bad).is_err(), "{bad}");
        }
    }
}
