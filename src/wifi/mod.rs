//! Wi-Fi through NetworkManager over D-Bus (zbus).
//!
//! * [`nm`]: minimal zbus proxies and NM's integer types as enums.
//! * [`machine`]: the sans-IO connect/scan machine.
//! * [`driver`]: the smol task that runs the machine against NM's signals.
//! * [`service`]: the coordinator's handle ([`WifiService`]) and the session policy.
//! * [`country`]: the regulatory domain (not NM's: `iw`/sysfs behind a trait).
pub mod country;
pub mod driver;
pub mod machine;
pub mod nm;
pub mod service;

pub use driver::{WifiNotice, WifiOptions};
pub use service::{SessionRunning, WifiService};
