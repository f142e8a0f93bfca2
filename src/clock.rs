//! The `Clock` seam: the only way drivers read time or sleep.
//!
//! Machines never read the clock; drivers pass `now` in. Drivers read it through this trait so
//! tests can run them on [`ManualClock`], faster than real time, and step the wall clock the way
//! time sync does, without touching the monotonic schedule.
#![allow(clippy::disallowed_methods)] // the real clock: the one place that reads it

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

/// A boxed, sendable future (the crate's one alias for it).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Clock: Send + Sync + 'static {
    /// Monotonic time: schedules, deadlines, timeouts.
    fn now(&self) -> Instant;
    /// Wall-clock time: labels only (report times, "HH:MM" stop times).
    fn wall(&self) -> SystemTime;
    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
    /// The instant periodic work is aligned to (see [`next_tick`]), the same for every caller
    /// of one clock: tasks with the same period then fire on the same instants, and one
    /// wake-up of the reactor thread serves them all (issue 5).
    fn tick_anchor(&self) -> Instant;

    /// Parks the calling (blocking) thread until `deadline` (`None`: indefinitely) or until
    /// it is unparked; may return early, so callers re-check what they wait for. Blocking
    /// workers wait through this, so a [`ManualClock`] drives them too.
    fn park_until(&self, deadline: Option<Instant>);

    /// Blocks the calling thread until `now() >= deadline`, as precisely as the clock can
    /// (the camera's shutter press). The default parks in steps.
    fn precise_wait_until(&self, deadline: Instant) {
        while self.now() < deadline {
            self.park_until(Some(deadline));
        }
    }
}

/// The first `anchor + k × period` (k ≥ 0) strictly after `after`.
pub fn next_tick(anchor: Instant, period: Duration, after: Instant) -> Instant {
    if after < anchor {
        return anchor;
    }
    let period = period.max(Duration::from_millis(1));
    let k = (after - anchor).as_nanos() / period.as_nanos() + 1;
    let offset = u64::try_from(k * period.as_nanos()).unwrap_or(u64::MAX);
    anchor + Duration::from_nanos(offset)
}

pub type SharedClock = Arc<dyn Clock>;

/// An arbitrary starting instant for unit tests of machines (which take time passed in).
#[cfg(test)]
pub(crate) fn test_t0() -> Instant {
    Instant::now()
}

/// The real clock: `Instant::now`, `SystemTime::now`, and async-io timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Decided at the first poll, on the thread that polls.
            match crate::rt::LocalSleep::on_this_thread(deadline) {
                Some(sleep) => sleep.await,
                None => {
                    async_io::Timer::at(deadline).await;
                }
            }
        })
    }
    fn park_until(&self, deadline: Option<Instant>) {
        match deadline {
            None => std::thread::park(),
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
        }
    }
    /// Parks to ~2 ms before `deadline`, then yields and spins the rest: the margin absorbs
    /// the scheduler's wake-up lateness on a loaded Pi; the spin costs ~2 ms of CPU per shot.
    fn precise_wait_until(&self, deadline: Instant) {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let left = deadline - now;
            if left > Duration::from_millis(3) {
                let wake = deadline - Duration::from_millis(2);
                std::thread::sleep(left - Duration::from_millis(2));
                log_wake(wake, deadline);
            } else if left > Duration::from_micros(200) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
    fn tick_anchor(&self) -> Instant {
        static ANCHOR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ANCHOR.get_or_init(Instant::now)
    }
}

/// The log target of the shutter's timing lines (debug level: the e2e benchmark reads them).
pub const TIMING_LOG_TARGET: &str = "skylapse::shot_timing";

/// After the precise wait's sleep: how late the thread woke, and how much of the margin was
/// left. Nothing is formatted unless debug logging is on for [`TIMING_LOG_TARGET`].
fn log_wake(wake: Instant, deadline: Instant) {
    if log::log_enabled!(target: TIMING_LOG_TARGET, log::Level::Debug) {
        let now = Instant::now();
        log::debug!(
            target: TIMING_LOG_TARGET,
            "wake late_ns={} margin_left_ns={}",
            now.saturating_duration_since(wake).as_nanos(),
            deadline.saturating_duration_since(now).as_nanos()
        );
    }
}

/// A clock that only moves when a test says so.
///
/// `advance` moves both clocks; `step_wall` moves only the wall clock (what time sync does).
/// Async sleeps and parked threads ([`Clock::park_until`], the camera worker's precise wait)
/// both wait on it, so a test moves every part of the service, and `next_wakeup` tells it
/// where the next one waits.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

struct ManualState {
    start: Instant,
    now: Instant,
    wall: SystemTime,
    next_id: u64,
    waiters: std::collections::BTreeMap<(Instant, u64), Waker>,
}

impl ManualClock {
    /// Starts at the real `Instant::now()` and the given wall time.
    pub fn new(wall: SystemTime) -> Self {
        let start = Instant::now();
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                start,
                now: start,
                wall,
                next_id: 0,
                waiters: Default::default(),
            })),
        }
    }

    /// Moves monotonic and wall time forward together and wakes due sleepers.
    pub fn advance(&self, by: Duration) {
        let due = {
            let mut s = self.lock();
            s.now += by;
            s.wall += by;
            let now = s.now;
            let later = s.waiters.split_off(&(now, u64::MAX));
            std::mem::replace(&mut s.waiters, later)
        };
        due.into_values().for_each(Waker::wake);
    }

    /// Moves time to `at` (no-op if it is not ahead).
    pub fn advance_to(&self, at: Instant) {
        let now = self.now();
        if at > now {
            self.advance(at - now);
        }
    }

    /// Steps the wall clock only (positive or negative milliseconds), as a time sync would.
    pub fn step_wall(&self, millis: i64) {
        let mut s = self.lock();
        let d = Duration::from_millis(millis.unsigned_abs());
        s.wall = if millis >= 0 { s.wall + d } else { s.wall - d };
    }

    /// The earliest deadline someone waits on (a task or a parked thread), if any: lets a
    /// test jump straight to it.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.lock().waiters.keys().next().map(|(d, _)| *d)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        crate::sys::lock(&self.inner)
    }

    fn register(&self, deadline: Instant, waker: Waker) -> Option<u64> {
        let mut s = self.lock();
        if s.now >= deadline {
            return None;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.waiters.insert((deadline, id), waker);
        Some(id)
    }

    fn unregister(&self, deadline: Instant, id: u64) {
        self.lock().waiters.remove(&(deadline, id));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.lock().now
    }
    fn wall(&self) -> SystemTime {
        self.lock().wall
    }
    fn tick_anchor(&self) -> Instant {
        self.lock().start
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            id: None,
        })
    }
    fn park_until(&self, deadline: Option<Instant>) {
        let waker = Waker::from(Arc::new(crate::rt::ThreadWaker(std::thread::current())));
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                if let Some(id) = self.register(d, waker) {
                    std::thread::park();
                    self.unregister(d, id);
                }
            }
        }
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(id) = self.id.take() {
            self.clock.unregister(self.deadline, id);
        }
        match self.clock.register(self.deadline, cx.waker().clone()) {
            None => Poll::Ready(()),
            Some(id) => {
                self.id = Some(id);
                Poll::Pending
            }
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.clock.unregister(self.deadline, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_is_the_first_grid_point_strictly_after() {
        let a = Instant::now();
        let p = Duration::from_secs(10);
        assert_eq!(next_tick(a, p, a), a + p);
        assert_eq!(next_tick(a, p, a + Duration::from_millis(9_999)), a + p);
        assert_eq!(next_tick(a, p, a + p), a + 2 * p);
        assert_eq!(next_tick(a, p, a + Duration::from_secs(25)), a + 3 * p);
    }

    #[test]
    fn manual_sleep_wakes_only_when_advanced_past_deadline() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let deadline = clock.now() + Duration::from_secs(10);
        let mut fut = clock.sleep_until(deadline);
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(9));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_wakeup(), Some(deadline));
        clock.advance(Duration::from_secs(1));
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn wall_step_leaves_monotonic_time_alone() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let before = clock.now();
        clock.step_wall(-3_600_000);
        assert_eq!(clock.now(), before);
        clock.step_wall(7_200_000);
        assert_eq!(
            clock.wall(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(3600)
        );
    }
}
