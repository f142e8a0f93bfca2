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
//! * A **machine** implements the one contract [`machine::Machine`] (smoltcp/str0m shape):
//!   `handle_input(now, input)`, `handle_timeout(now)`, `poll_action()`, `poll_timeout()`.
//!   No I/O, no clock reads: [`machine::Now`] (monotonic + wall, read together) is passed in.
//!   Machines: camera link, intervalometer session, discovery registry, Wi-Fi, time sync.
//! * The **driver** [`driver::run`] owns a machine, one bounded inbox and one reusable timer
//!   (re-armed only when `poll_timeout()` changes), and hands actions to the service's
//!   [`driver::Executor`] (what the actions mean). Slow effects answer later through the inbox.
//!   Only drivers read time, through [`clock::Clock`] — enforced by `clippy.toml`
//!   (`Instant::now`, `SystemTime::now`, `thread::sleep` are disallowed outside `clock.rs` and
//!   `rt.rs`) — so tests run them on a [`clock::ManualClock`].
//! * Blocking camera I/O runs on [`camera::worker::Worker`]s (a named thread, one socket, a
//!   bounded queue with shots first); they wait through `Clock::park_until` /
//!   `Clock::precise_wait_until`, so a ManualClock drives the shutter's wait too.
//! * The **coordinator** ([`app::App`]) routes commands to [`app::Service`]s, keeps the latest
//!   status blocks ([`app::StatusBoard`]) and publishes events to the **hub** ([`web`]), which
//!   fans them out through bounded per-client queues.
//! * `unsafe` lives only in [`sys`] (`localtime_r`, `getifaddrs`, `sched_setscheduler`);
//!   sockets options and `clock_settime` go through rustix. The crate is `deny(unsafe_code)`.
//!
//! **A `take_photo`**: `Command::TakePhoto` → [`camera::CameraService`] → `shot::shoot_at`
//! (notes the shot as reserved so no health check lands in front of it) → the
//! control worker's queue, ahead of other jobs → `fire`: warm the socket if idle, precise wait
//! on the clock to `due`, press → `ShotOutcome` → reply and `photo_taken` event. One queue
//! and one thread between the command and the socket.
//!
//! **A `connect_to_ip`**: `Command::ConnectToIp` → [`camera::CameraService`] (a camera-link
//! operation, so it works with `--no-discovery` and without discovery's sockets) →
//! `CameraLinkHandle::connect(candidate URLs)` → `LinkMsg::Connect` in the link driver's inbox
//! → `LinkMachine` `SetTarget` → `Action::Probe` → control worker: `Session::connect` (the one
//! TLS connect) → `ProbeDone` → `ProbeOk` → `Action::Connected` → the reply, once the link is
//! up (or every candidate's failure, with the old target restored). Discovery learns of the
//! camera from the link's `CameraNotice::Connected { manual: true }`.
//!
//! **A scheduled shot**: the session machine's `poll_timeout()` (the shot's due time minus the
//! lead) fires the intervalometer driver's one timer → `Action::Shoot` →
//! `intervalometer::driver::SessionExec::perform` → `CameraControl::shoot_at_then` (the same
//! control-worker path as a `take_photo`) → the worker calls back with the `ShotOutcome`
//! straight into the session's inbox (no task between) → `Input::ShotDone` → journal line,
//! status block, `photo_taken`. A ramp's settings change and an auto-ramp measurement start
//! the same way and come back through the same inbox, so neither ever delays a shot.
//!
//! Timing rules: shot *n* is due at `start + n × interval` on the monotonic clock; the wall
//! clock only labels. See `intervalometer`.
//!
//! ## Where this departs from DESIGN.md, and why
//!
//! * **Camera I/O runs on two [`camera::worker::Worker`] threads, not an async driver.** ureq
//!   is blocking, the camera allows two sockets, and a shutter press wants a thread that is
//!   already awake: the control worker parks to ~2 ms before the due time, spins the rest
//!   inside a short SCHED_FIFO window and sends on a warm keep-alive connection; the event
//!   worker owns the second socket for long polls and downloads, so polling can never delay a
//!   shot. The link machine runs in the generic driver as a task on the service executor;
//!   the control worker runs the health checks itself on the 10 s grid and tells the link
//!   only of misses. With no client and no shot in the last minute no event poll is held:
//!   the health check is then one immediate event poll (it carries battery, storage,
//!   temperature and new files), so the idle camera sees one request per check on one
//!   socket. Socket
//!   timeouts inside a blocking call stay real time (ureq's); everything the workers wait for
//!   between calls is on the clock.
//! * **Every service with a machine runs in [`driver::run`].** The camera link, the
//!   intervalometer session ([`intervalometer::driver`]), time sync ([`timesync::exec`]),
//!   discovery ([`discovery::driver`]) and Wi-Fi ([`wifi::driver`]): each is its machine plus an
//!   executor, and none keeps a machine behind a lock. Their slow effects answer through the
//!   one inbox: a shot's outcome is posted by the control worker, ramp changes and thumbnail
//!   measurements are small tasks, camera clock reads/writes and description fetches are short
//!   tasks, every NetworkManager D-Bus call runs on one ordered worker task, and discovery's
//!   sockets are read by one small task each, and a running session's journal fsyncs run on a
//!   short-lived thread; what is quick stays inline (the journal's writes, the `clock_settime` step behind the shot gate, a non-blocking M-SEARCH send, the small
//!   `last-camera.json` write). Power has no machine (it samples sysfs on the shared grid) and
//!   keeps its own small loop.
//! * **Every task runs on one parked executor thread with thread-local timers** ([`rt`]):
//!   the process's main thread runs the services' tasks and the web server alike
//!   ([`rt::run_hosted`]). smol's global executor sits in `async_io::block_on`, which makes
//!   async-io's reactor thread busy-poll with backoff after every event, and every async-io
//!   timer costs that thread two extra wake-ups. With a parked thread, its own timers and the
//!   shared grid below, the idle service with a camera connected went from ~5.5 to ~0.9
//!   context switches per second on x86-64 (board/footprint.sh); with one executor thread
//!   instead of two (services, web) a frame's outcome, its status block and its WebSocket
//!   writes share one wake-up (0.68 → 0.48/s idle with a client; per frame see below).
//! * **Wake-ups per frame** (issue 13; `board/probe.py session --per-thread`, perf
//!   `sched:sched_switch`): in steady state a frame costs the control worker 3 (woken with the
//!   shot, the precise wait, the reply), the event worker 1 (the poll's answer with the file)
//!   and the executor 3 (the hand-over timer, the outcome, the file notice). What was cut: the
//!   second executor thread, an fsync per frame (the journal shares one fsync among a fast
//!   session's records within 5 s, on a short-lived thread so a slow card never holds up a
//!   hand-over, see [`intervalometer::journal`]), notices sent under the
//!   camera lock, and wake-up preemption (the executor and the event worker run SCHED_BATCH,
//!   [`sys::batch_this_thread`]).
//! * **Periodic work shares one 10 s grid** ([`clock::next_tick`]): status broadcasts, health
//!   checks, WebSocket pings and power samples fall on the same instants, one wake-up for all.
//! * **Status blocks travel as JSON values** on the [`app::StatusBoard`] (typed where they
//!   are made), so each service owns its block and the coordinator needs no knowledge of them.
//! * **Commands are routed to the first [`app::Service`] that claims them**; the wiring of
//!   services and their seams is in [`services`], shared by `main` and the end-to-end tests.
//! * **The camera simulator is a peer crate** (`sim/`, `skylapse-sim`): it shares no code with
//!   the product (its own clock, RNG and date arithmetic, its own reading of CCAPI's formats),
//!   and the product depends on it only behind the `demo` feature (on by default, so `--demo`
//!   works out of the box). Tests use it as a dev-dependency. The shipped Pi binary is built
//!   without it (`board/ci-cross.sh`, which fails over 3 MiB on aarch64, 4 MiB on armv7):
//!   `board/size-report.sh --both` measured the stripped ship binary at 2,996,528 bytes
//!   (2.86 MiB) on aarch64 and 3,543,824 on armv7 without `demo`, 3,302,832 and 3,943,992
//!   with it (the simulator, its TLS certificate maker and JPEG renderer: +306 KB). The
//!   optimised Pi builds drop the unwind tables (panic = abort) and link with rust-lld,
//!   folding identical functions and packing relative relocations (DT_RELR: glibc >= 2.36,
//!   Debian 12 / Pi OS bookworm; build.rs). `--demo` and `simulate-night` are desktop
//!   features (`cargo run --release -- --demo`).

#![deny(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod brightness;
pub mod camera;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod driver;
pub mod exposure;
#[doc(hidden)]
pub mod fuzzing;
pub mod intervalometer;
pub mod location;
pub mod logging;
pub mod machine;
pub mod power;
pub mod protocol;
pub mod ramp;
pub mod rt;
pub mod services;
#[cfg(feature = "demo")]
pub mod simulate;
pub mod sun;
pub mod sys;
pub mod systemd;
pub mod timesync;
pub mod util;
pub mod web;
pub mod wifi;
