//! Time sync: the Pi's clock from the phone (and its GPS), the camera's clock from the Pi's.
//!
//! * [`machine`]: the sans-IO machine (offsets, reliability, when to step, camera sync);
//!   [`types`]: its tunables, inputs and actions.
//! * [`exec`]: the machine's effects for [`crate::driver::run`] (requests, the clock step,
//!   camera reads and writes, the status block).
//! * [`systime`]: the narrow adapter that steps the system clock (`clock_settime`).
//! * [`zone`]: the local zone's offsets and DST flag at an instant (for Canon's convention).
//! * [`service`]: the [`crate::app::Service`] handle (commands in, replies out).

pub mod exec;
pub mod machine;
pub mod service;
pub mod systime;
pub mod types;
pub mod zone;

pub use machine::{Reliability, TimeSyncConfig, TimeSyncMachine};
pub use service::TimeSyncService;
pub use systime::{LibcClockSetter, ManualClockSetter, SystemTimeSetter};
pub use zone::{LocalZone, PosixZone, Zone, ZoneOffset};
