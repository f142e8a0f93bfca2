//! skylapse's integration tests: one binary (ripgrep-style), one module per area, each against
//! real peers over real sockets: the camera simulator, a mock NetworkManager on a private
//! D-Bus, SSDP over UDP, a real browser for the UI, systemd-analyze and dpkg-deb for the board
//! files. A test whose peer is missing skips with a note, or fails when
//! `SKYLAPSE_REQUIRE_PEERS=1` (CI sets it).
//!
//! `cargo test` runs them all; `cargo test --test main camera::` runs one area.

mod board;
mod camera;
mod discovery;
mod e2e;
mod intervalometer;
mod power;
mod storage;
mod timesync;
mod ui;
mod web;
mod wifi;
