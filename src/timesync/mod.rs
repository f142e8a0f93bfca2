//! Time sync: the Pi's clock from the phone (and its GPS), the camera's clock from the Pi's.
//!
//! * [`machine`]: the sans-IO machine (offsets, reliability, when to step, camera sync).
//! * [`systime`]: the narrow adapter that steps the system clock (`clock_settime`).
//! * [`zone`]: the local zone's offsets and DST flag at an instant (for Canon's convention).
//! * [`service`]: the driver task and the [`crate::app::Service`] handle.

pub mod machine;
pub mod service;
pub mod systime;
pub mod zone;

pub use machine::{Reliability, TimeSyncConfig, TimeSyncMachine};
pub use service::TimeSyncService;
pub use systime::{LibcClockSetter, ManualClockSetter, SystemTimeSetter};
pub use zone::{LocalZone, PosixZone, Zone, ZoneOffset};
