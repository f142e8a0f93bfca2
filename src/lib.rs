//! # skylapse — architecture
//!
//! skylapse turns a Raspberry Pi into a field controller for a Canon camera (CCAPI over Wi-Fi).
//! The shape follows `DESIGN.md`: sans-IO state machines, thin smol drivers, one coordinator.
//!
//! ```text
//!  phone/browser ──HTTP/WS──▶ web (http, ws, rest, hub) ─┐
//!                                                        ▼
//!                         app (coordinator: routes commands, owns status snapshots,
//!                              cross-machine policy, publishes events)
//!      ┌─────────────┬──────────────┬─────────────┬────────────┬────────────┐
//!      ▼             ▼              ▼             ▼            ▼            ▼
//!   camera      intervalometer  discovery       wifi       timesync      power
//!   (link)        (session)      (ssdp)        (nm)
//!      │             │              │             │            │            │
//!   ccapi client  camera handle  UDP socket   zbus proxies  clock_settime  sysfs
//! ```
//!
//! * A **machine** is a plain struct with no I/O and no clock reads: inputs carry `now`,
//!   outputs are drained with `poll_action`, `poll_timeout` reports the next deadline.
//! * A **driver** is one small async task per machine: it performs the machine's actions and
//!   sleeps on one timer until the next deadline or input. Only drivers read time, through
//!   [`clock::Clock`], so tests run machines on a [`clock::ManualClock`].
//! * The **coordinator** ([`app::App`]) routes commands to [`app::Service`]s, keeps the latest
//!   status blocks ([`app::StatusBoard`]) and publishes events to the **hub** ([`web`]), which
//!   fans them out through bounded per-client queues.
//!
//! Timing rules: shot *n* is due at `start + n × interval` on the monotonic clock; the wall
//! clock only labels. See `intervalometer`.

pub mod app;
pub mod backoff;
pub mod camera;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod intervalometer;
pub mod power;
pub mod protocol;
pub mod rt;
pub mod services;
pub mod sim;
pub mod systemd;
pub mod timesync;
pub mod util;
pub mod web;
pub mod wifi;
