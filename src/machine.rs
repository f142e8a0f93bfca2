//! The machine contract: every state machine in skylapse has this one shape (the smoltcp /
//! str0m / quinn shape), written down here once.
//!
//! ```text
//!            handle_input(now, input) ─┐        ┌─▶ poll_action()  → Some(action) … None
//!   driver                             ├─ machine
//!            handle_timeout(now) ──────┘        └─▶ poll_timeout() → the next deadline
//! ```
//!
//! A machine does no I/O and never reads a clock: the driver ([`crate::driver`]) reads
//! [`Now`] through [`crate::clock::Clock`] and passes it in, performs the actions, and sleeps
//! until `poll_timeout()` or the next input. Tests feed inputs at exact instants.
//!
//! Machines: [`crate::camera::link::LinkMachine`], [`crate::intervalometer::session::Session`],
//! [`crate::discovery::registry::Discovery`], [`crate::wifi::machine::WifiMachine`],
//! [`crate::timesync::machine::TimeSyncMachine`].

use std::time::{Instant, SystemTime};

/// The two clocks, read together by the driver at one wake-up. Monotonic `mono` drives every
/// deadline; `wall` only stamps and labels (a machine that does not label ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// Reads both clocks of `clock`.
    pub fn read(clock: &dyn crate::clock::Clock) -> Now {
        Now {
            mono: clock.now(),
            wall: clock.wall(),
        }
    }
}

pub trait Machine {
    type Input;
    type Action;

    /// Feeds one input (a request, an I/O result, a notice) at `now`.
    fn handle_input(&mut self, now: Now, input: Self::Input);

    /// Feeds the passage of time: called when `poll_timeout()` is reached (calling it early
    /// is harmless).
    fn handle_timeout(&mut self, now: Now);

    /// The next thing to do, in order; `None` when there is nothing left.
    fn poll_action(&mut self) -> Option<Self::Action>;

    /// When the machine wants `handle_timeout` next (`None`: only an input can change it).
    fn poll_timeout(&self) -> Option<Instant>;
}
