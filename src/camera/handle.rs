//! The camera as other parts hold it: [`CameraHandle`] ([`CameraControl`]: the intervalometer,
//! time sync) and [`CameraLinkHandle`] (discovery, Wi-Fi and `--camera` steer the link).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::link::{Input, Target};
use super::link_driver::LinkMsg;
use super::shared::Shared;
use super::shot::shoot_at;
use super::{CameraControl, CameraDateTime, CameraInfo, CameraNotice, CameraSettings};
use super::{ShotOutcome, ShotRequest};
use crate::clock::BoxFuture;
use crate::protocol::ApiError;

/// [`CameraControl`] for the intervalometer and time sync.
pub struct CameraHandle {
    pub(crate) cam: Arc<Shared>,
}

impl CameraControl for CameraHandle {
    fn shoot_at(&self, due: Instant, req: ShotRequest) -> BoxFuture<'static, ShotOutcome> {
        shoot_at(&self.cam, due, req)
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
