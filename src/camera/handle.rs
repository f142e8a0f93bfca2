//! The camera as other parts hold it: [`CameraHandle`] ([`CameraControl`]: the intervalometer,
//! time sync) and [`CameraLinkHandle`] (discovery, Wi-Fi and `--camera` steer the link).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::link::{Input, Target};
use super::link_driver::LinkMsg;
use super::shared::Shared;
use super::shot::{shoot_at, shoot_then};
use super::{CameraControl, CameraDateTime, CameraInfo, CameraNotice, CameraSettings};
use super::{SettingsApplied, ShotOutcome, ShotRequest};
use crate::clock::BoxFuture;
use crate::protocol::ApiError;

/// A settings PUT refused as busy (the camera writing a frame) is tried again this much later.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// [`CameraControl`] for the intervalometer and time sync.
pub struct CameraHandle {
    pub(crate) cam: Arc<Shared>,
}

impl CameraControl for CameraHandle {
    fn shoot_at(&self, due: Instant, req: ShotRequest) -> BoxFuture<'static, ShotOutcome> {
        shoot_at(&self.cam, due, req)
    }

    fn shoot_at_then(
        &self,
        due: Instant,
        req: ShotRequest,
        done: super::ShotDone,
    ) -> Option<BoxFuture<'static, ()>> {
        shoot_then(&self.cam, due, req, done);
        None
    }

    fn is_connected(&self) -> bool {
        self.cam.is_connected()
    }

    fn settings(&self) -> CameraSettings {
        self.cam.settings()
    }

    fn identity(&self) -> Option<super::ccapi::DeviceInfo> {
        self.cam.session().ok().map(|s| s.info.clone())
    }

    fn subscribe(&self) -> async_channel::Receiver<CameraNotice> {
        self.cam.subscribe()
    }

    fn datetime(&self) -> BoxFuture<'static, Result<CameraDateTime, ApiError>> {
        self.cam.on_control(|s| s.datetime())
    }

    fn thumbnail(&self, path: String) -> BoxFuture<'static, Result<Vec<u8>, ApiError>> {
        self.cam.on_events(move |s| {
            let mut out = Vec::new();
            s.download(&format!("{path}?kind=thumbnail"), &mut out, &mut |_, _| {})?;
            Ok(out)
        })
    }

    fn shooting_settings(&self) -> BoxFuture<'static, Result<serde_json::Value, ApiError>> {
        let cam = self.cam.clone();
        let read = self.cam.on_control(|s| s.settings());
        Box::pin(async move {
            let v = read.await?;
            cam.note_settings(&v);
            Ok(v)
        })
    }

    fn apply_settings(
        &self,
        changes: Vec<(String, String)>,
        deadline: Instant,
    ) -> BoxFuture<'static, SettingsApplied> {
        let cam = self.cam.clone();
        let clock = self.cam.clock.clone();
        let job = self.cam.on_control(move |s| {
            let mut done = SettingsApplied {
                applied: Vec::new(),
                error: None,
            };
            'next: for (key, value) in changes {
                loop {
                    // Checked before each PUT: one PUT is the most a late change can overlap.
                    let now = clock.now();
                    if now >= deadline {
                        done.error = Some("deferred: no time left before the next frame".into());
                        break 'next;
                    }
                    match s.set_setting(&key, &serde_json::Value::from(value.clone())) {
                        Ok(_) => {
                            done.applied.push((key, value));
                            continue 'next;
                        }
                        // Bodies refuse settings while they write the last frame: try again
                        // shortly, within the deadline.
                        Err(e) if e.code == crate::protocol::ErrorCode::CameraBusy => {
                            let until = (now + BUSY_RETRY).min(deadline);
                            while clock.now() < until {
                                clock.park_until(Some(until));
                            }
                        }
                        Err(e) => {
                            done.error = Some(format!("{key} {value}: {}", e.message));
                            break 'next;
                        }
                    }
                }
            }
            Ok(done)
        });
        Box::pin(async move {
            match job.await {
                Ok(done) => {
                    let mut delta = serde_json::Map::new();
                    for (k, v) in &done.applied {
                        delta.insert(k.clone(), serde_json::json!({ "value": v }));
                    }
                    cam.note_settings(&serde_json::Value::Object(delta));
                    done
                }
                Err(e) => SettingsApplied {
                    applied: Vec::new(),
                    error: Some(e.message),
                },
            }
        })
    }

    fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> BoxFuture<'static, Result<(), ApiError>> {
        self.cam
            .on_control(move |s| s.set_datetime(time, std_offset_secs, dst))
    }
}

/// What discovery, Wi-Fi and manual connection use to steer the link.
#[derive(Clone)]
pub struct CameraLinkHandle {
    pub(crate) cam: Arc<Shared>,
}

impl CameraLinkHandle {
    /// Aim at the camera at `url` (CCAPI base) with this UDN; a new address re-targets now.
    pub fn set_target(&self, url: &str, id: Option<&str>) {
        self.cam.tell_link(LinkMsg::Input(Input::SetTarget(Target {
            url: url.to_string(),
            id: id.map(str::to_string),
        })));
    }

    /// Discovery heard an SSDP alive from `id`: retry now if we are backing off from it.
    pub fn ssdp_alive(&self, id: &str) {
        self.cam
            .tell_link(LinkMsg::Input(Input::SsdpAlive { id: id.to_string() }));
    }

    /// Retry now if backing off (after the user accepted a new certificate).
    pub fn retry_now(&self) {
        self.cam.tell_link(LinkMsg::Input(Input::RetryNow));
    }

    pub fn clear_target(&self) {
        self.cam.tell_link(LinkMsg::Input(Input::ClearTarget));
    }

    /// Connects the link to the first of `urls` (CCAPI base URLs) that answers, with one
    /// probe each; resolves once the link is connected (a shot may follow at once) or with
    /// every address's failure (the previous target is then restored).
    pub fn connect(&self, urls: Vec<String>) -> BoxFuture<'static, Result<CameraInfo, ApiError>> {
        self.connect_with(urls, false)
    }

    /// As [`Self::connect`]; `persist`: keep retrying the address if it fails (`--camera`).
    pub fn connect_with(
        &self,
        urls: Vec<String>,
        persist: bool,
    ) -> BoxFuture<'static, Result<CameraInfo, ApiError>> {
        let (reply, rx) = async_channel::bounded(1);
        let sent = self.cam.link.try_send(LinkMsg::Connect {
            urls,
            reply,
            persist,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(ApiError::unavailable("Camera link is busy or stopped"));
            }
            rx.recv()
                .await
                .unwrap_or_else(|_| Err(ApiError::system("Camera link stopped")))
        })
    }

    /// Current link state name (`disconnected`, `probing`, `connected`, `backoff`).
    pub fn state(&self) -> &'static str {
        self.cam.lock().view.state
    }

    /// Stops the link driver and the workers (they finish the job in hand).
    pub fn shutdown(&self) {
        let _ = self.cam.link.try_send(LinkMsg::Shutdown);
        self.cam.control.close();
        self.cam.events.close();
    }
}
