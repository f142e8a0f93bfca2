//! The camera: CCAPI client (ureq + rustls, certificate pinning), the camera link machine and
//! its driver.
//!
//! Other parts (intervalometer, time sync, discovery) talk to the camera only through
//! [`CameraControl`], so they can be tested against a fake and the camera driver stays the one
//! owner of the connection (at most 2 sockets to the body; the R50 breaks with more).

use std::time::{Duration, Instant, SystemTime};

use crate::clock::BoxFuture;
use crate::protocol::ApiError;

/// One exposure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShotRequest {
    /// Autofocus before the exposure (`shutterbutton {"af": true}`).
    pub af: bool,
    /// Bulb: `manual full_press`, hold this long on the monotonic clock, `release`.
    pub bulb: Option<Duration>,
}

/// What happened to one exposure, with the driver's monotonic timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotOutcome {
    /// When the request's first byte was handed to the socket.
    pub sent_at: Instant,
    /// When the camera's reply was fully read (for bulb: the release reply).
    pub replied_at: Instant,
    pub result: Result<(), ApiError>,
}

/// Camera clock as CCAPI reports it (`functions/datetime`).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraDateTime {
    /// The instant the camera's clock shows, already corrected for the DST convention.
    pub time: SystemTime,
    /// Raw `datetime` string, e.g. `Tue, 01 Jan 2019 01:23:45 +0900`.
    pub raw: String,
    pub dst: bool,
}

/// Things the camera driver tells interested parts, asynchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraNotice {
    /// The link is up (after probing) to the camera with this UDN/serial.
    Connected { id: String },
    /// The link was lost (health checks missed, or connection refused).
    Lost { reason: String },
    /// New files reported by event polling (`addedcontents`), in order.
    FilesAdded(Vec<String>),
}

/// The camera as the rest of skylapse sees it.
pub trait CameraControl: Send + Sync {
    /// Fires a shot as close to `due` (monotonic) as possible. Call it ahead of `due` (a few
    /// hundred ms): the driver then keeps the connection warm, holds back health checks and
    /// polls around `due`, waits precisely, and sends. Resolves when the camera replied.
    fn shoot_at(&self, due: Instant, req: ShotRequest) -> BoxFuture<'static, ShotOutcome>;

    /// Whether the link is up right now.
    fn is_connected(&self) -> bool;

    /// A bounded stream of notices; a slow reader loses notices rather than blocking the driver.
    fn subscribe(&self) -> async_channel::Receiver<CameraNotice>;

    /// Reads the camera clock.
    fn datetime(&self) -> BoxFuture<'static, Result<CameraDateTime, ApiError>>;

    /// Sets the camera clock to `time` in the zone `tz_offset_secs` (standard offset, seconds
    /// east of UTC) with the `dst` flag, by Canon's convention (local time with DST applied,
    /// standard offset, `dst: true`).
    fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> BoxFuture<'static, Result<(), ApiError>>;
}

pub mod ccapi;
pub mod driver;
pub mod link;
pub mod service;
pub mod tls;

pub use driver::{
    camera_url, CameraDriver, CameraHandle, CameraInfo, CameraLinkHandle, DriverOptions,
};
pub use service::CameraService;
#[cfg(test)]
mod fake;
