//! The intervalometer: drift-free session machine, crash-safe journal, reports.
//!
//! * [`schedule`]: options, stop conditions, interval validation, "HH:MM" arithmetic.
//! * [`session`]: the sans-IO session machine (the timing rules live here).
//! * [`journal`]: one fsynced JSON line per shot; replay tolerates a torn last line.
//! * [`report`]: JSON reports (atomic), CSV export, SVG chart.
//! * [`driver`]: the session's [`crate::driver::Executor`]: one session run by
//!   [`crate::driver::run`] against [`crate::camera::CameraControl`].
//! * [`service`]: [`service::IntervalometerService`], the coordinator's handle.
//!
//! Wiring (main/App):
//! ```text
//! let ivt = IntervalometerService::start(config, clock, app.status.clone(),
//!                                        app.publisher.clone(), camera_control);
//! app.add_service(ivt.clone());
//! // policy: ivt.session_running() (refuse Wi-Fi changes), ivt.shot_in_flight() (no clock
//! // step now); time sync calls ivt.wall_clock_stepped() after stepping the clock and
//! // ivt.set_utc_offset(Some(secs)) when it learns the user's zone.
//! ```
//!
//! Files: `<data_dir>/sessions/<id>.journal` (running or unsaved sessions),
//! `<data_dir>/reports/<id>.json` (saved reports).

pub mod driver;
pub mod journal;
pub mod report;
pub mod schedule;
pub mod service;
pub mod session;

pub use service::IntervalometerService;
