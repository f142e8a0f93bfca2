//! Benchmarks: `#[ignore]`d tests that print figures (one binary, a module each). Run them in
//! release on a quiet machine, one at a time:
//!
//! `cargo test --release --test bench -- --ignored --nocapture --test-threads 1`
//! (add a module name, e.g. `e2e::`, to run one).
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

#[path = "bench/camera.rs"]
mod camera;
#[path = "bench/e2e.rs"]
mod e2e;
#[path = "bench/hostile.rs"]
mod hostile;
#[path = "bench/intervalometer.rs"]
mod intervalometer;
#[path = "bench/reports.rs"]
mod reports;
#[path = "bench/web.rs"]
mod web;
