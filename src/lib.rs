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
//!
//! ## Where this departs from DESIGN.md, and why
//!
//! * **Camera I/O runs on two dedicated OS threads, not an async driver.** ureq is blocking,
//!   the camera allows two sockets, and a shutter press wants a thread that is already awake:
//!   the control worker sleeps to ~2 ms before the due time, spins the rest inside a short
//!   SCHED_FIFO window and sends on a warm keep-alive connection; the event worker owns the
//!   second socket for long polls and downloads, so polling can never delay a shot. The link
//!   *machine* stays sans-IO and its driver is a small task on its own parked thread.
//! * **Tasks run on parked executors with thread-local timers** ([`rt`]). smol's global
//!   executor sits in `async_io::block_on`, which makes async-io's reactor thread busy-poll
//!   with backoff after every event, and every async-io timer costs that thread two extra
//!   wake-ups. With parked threads, their own timers and the shared grid below, the idle
//!   service with a camera connected went from ~5.5 to ~0.9 context switches per second on
//!   x86-64 (board/footprint.sh).
//! * **Periodic work shares one 10 s grid** ([`clock::next_tick`]): status broadcasts, health
//!   checks, WebSocket pings and power samples fall on the same instants, one wake-up for all.
//! * **Status blocks travel as JSON values** on the [`app::StatusBoard`] (typed where they
//!   are made), so each service owns its block and the coordinator needs no knowledge of them.
//! * **Commands are routed to the first [`app::Service`] that claims them**; the wiring of
//!   services and their seams is in [`services`], shared by `main` and the end-to-end tests.
//! * **The camera simulator is a peer crate** (`sim/`, `skylapse-sim`): it shares no code with
//!   the product (its own clock, RNG and date arithmetic, its own reading of CCAPI's formats),
//!   and the product depends on it only behind the `demo` feature (on by default, so `--demo`
//!   works out of the box). Tests use it as a dev-dependency.

pub mod app;
pub mod backoff;
pub mod camera;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod exposure;
pub mod intervalometer;
pub mod power;
pub mod protocol;
pub mod ramp;
pub mod rt;
pub mod services;
pub mod sun;
pub mod systemd;
pub mod timesync;
pub mod util;
pub mod web;
pub mod wifi;
