//! The narrow adapter that steps the system clock, and a virtual one for tests.
//!
//! Stepping `CLOCK_REALTIME` leaves `CLOCK_MONOTONIC` (what every schedule in skylapse runs on)
//! untouched, so a step never moves the intervalometer.

use std::time::SystemTime;

use crate::clock::{Clock, ManualClock};
use crate::protocol::{ApiError, ErrorCode};
use crate::util::unix_millis;

/// Sets the wall clock. Implementations must be quick (one syscall): callers run them inline.
pub trait SystemTimeSetter: Send + Sync {
    fn set(&self, t: SystemTime) -> Result<(), ApiError>;
}

/// The real thing: `clock_settime(CLOCK_REALTIME)`. Needs CAP_SYS_TIME (the systemd unit grants
/// it with `AmbientCapabilities=CAP_SYS_TIME`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LibcClockSetter;

pub const NO_CAPABILITY: &str = "skylapse may not set the clock (needs CAP_SYS_TIME)";

/// The error a failed `clock_settime` becomes.
pub fn settime_error(errno: i32) -> ApiError {
    if errno == libc::EPERM || errno == libc::EACCES {
        ApiError::new(ErrorCode::PermissionDenied, NO_CAPABILITY)
    } else {
        ApiError::system(format!(
            "setting the clock failed: {}",
            std::io::Error::from_raw_os_error(errno)
        ))
    }
}

impl SystemTimeSetter for LibcClockSetter {
    fn set(&self, t: SystemTime) -> Result<(), ApiError> {
        let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) else {
            return Err(ApiError::invalid("refusing to set the clock before 1970"));
        };
        let r = crate::sys::set_realtime_clock(d);
        r.map_err(|e| settime_error(e.raw_os_error().unwrap_or(0)))
    }
}

/// Steps a [`ManualClock`]'s wall time, as the real setter would step the system's: for tests
/// and the demo mode.
#[derive(Clone)]
pub struct ManualClockSetter(pub ManualClock);

impl SystemTimeSetter for ManualClockSetter {
    fn set(&self, t: SystemTime) -> Result<(), ApiError> {
        let delta = unix_millis(t) - unix_millis(self.0.wall());
        self.0.step_wall(delta);
        Ok(())
    }
}

/// A setter that always refuses, for instances that must never touch the clock (`--demo` on a
/// laptop) and for tests of the error path.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyClockSetter;

impl SystemTimeSetter for DenyClockSetter {
    fn set(&self, _t: SystemTime) -> Result<(), ApiError> {
        Err(settime_error(libc::EPERM))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn eperm_names_the_capability() {
        let e = settime_error(libc::EPERM);
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert_eq!(e.message, NO_CAPABILITY);
        let e = settime_error(libc::EINVAL);
        assert_eq!(e.code, ErrorCode::SystemError);
        assert!(e.message.starts_with("setting the clock failed"));
    }

    #[test]
    fn manual_setter_steps_wall_only() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        let mono = clock.now();
        ManualClockSetter(clock.clone())
            .set(SystemTime::UNIX_EPOCH + Duration::from_secs(5000))
            .unwrap();
        assert_eq!(
            clock.wall(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(5000)
        );
        assert_eq!(clock.now(), mono);
    }
}
