//! Wi-Fi through NetworkManager over D-Bus (zbus).
//!
//! * [`nm`]: minimal zbus proxies and NM's integer types as enums.
//! * [`machine`]: the sans-IO connect/scan machine.
//! * [`driver`]: the machine's effects (`WifiExec`) in [`crate::driver::run`], NM's
//!   D-Bus calls on one ordered worker.
//! * [`ops`]: NM calls and reads over one connection; [`bus`]: opening the bus, NM's signals.
//! * [`status`]: the `network` status block; [`types`]: options, requests, notices.
//! * [`service`]: the coordinator's handle ([`WifiService`]) and the session policy.
//! * [`country`]: the regulatory domain (not NM's: `iw`/sysfs behind a trait).
pub mod bus;
pub mod country;
pub mod driver;
pub mod machine;
pub mod nm;
pub mod ops;
pub mod service;
pub mod status;
pub mod types;

pub use driver::{WifiNotice, WifiOptions};
pub use service::{SessionRunning, WifiService};
