//! The intervalometer: drift-free session machine, crash-safe journal, reports.
//!
//! * [`schedule`]: options, stop conditions, interval validation, "HH:MM" arithmetic.
//! * [`session`]: the sans-IO session machine (the timing rules live here).
//! * [`journal`]: one fsynced JSON line per shot; replay tolerates a torn last line.
//! * [`report`]: JSON reports (atomic), CSV export, SVG chart.
//! * [`driver`]: the async task that runs one session against [`crate::camera::CameraControl`].
//! * [`service`]: [`service::IntervalometerService`], the coordinator's handle.

pub mod driver;
pub mod journal;
pub mod report;
pub mod schedule;
pub mod service;
pub mod session;

pub use service::IntervalometerService;
