//! Power and thermal watch: Raspberry Pi detection, firmware throttling and under-voltage flags,
//! SoC temperature, batteries and UPS HATs, uptime; warnings and a shots/time-left estimate.
//!
//! * [`sampler`]: reads one sample from a (configurable) sysfs/procfs root.
//! * [`throttled`]: decodes the firmware's `get_throttled` bits.
//! * [`advice`]: edge-triggered warnings, recommendations, and the session estimate (pure).
//! * [`service`]: samples every 30 s, publishes the `power` block and warning events.

pub mod advice;
pub mod sampler;
pub mod service;
pub mod throttled;

pub use advice::{estimate, CardMeter, Estimate, EstimateInputs, Warning, WarningTracker};
pub use sampler::{PowerConfig, PowerSample, ThrottleCommand};
pub use service::PowerService;
pub use throttled::Throttled;
