//! The `Clock` seam: the only way drivers read time or sleep.
//!
//! Machines never read the clock; drivers pass `now` in. Drivers read it through this trait so
//! tests can run them on [`ManualClock`], faster than real time, and step the wall clock the way
//! time sync does, without touching the monotonic schedule.

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
    fn tick_anchor(&self) -> Instant {
        static ANCHOR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ANCHOR.get_or_init(Instant::now)
    }
}

/// A clock that only moves when a test says so.
///
/// `advance` moves both clocks; `step_wall` moves only the wall clock (what time sync does).
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

struct ManualState {
    start: Instant,
    now: Instant,
    wall: SystemTime,
    waiters: Vec<(Instant, Waker)>,
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
                waiters: Vec::new(),
            })),
        }
    }

    /// Moves monotonic and wall time forward together and wakes due sleepers.
    pub fn advance(&self, by: Duration) {
        let wakers = {
            let mut s = self.lock();
            s.now += by;
            s.wall += by;
            let now = s.now;
            let (due, pending): (Vec<_>, Vec<_>) =
                s.waiters.drain(..).partition(|(d, _)| *d <= now);
            s.waiters = pending;
            due
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Steps the wall clock only (positive or negative milliseconds), as a time sync would.
    pub fn step_wall(&self, millis: i64) {
        let mut s = self.lock();
        let d = Duration::from_millis(millis.unsigned_abs());
        s.wall = if millis >= 0 { s.wall + d } else { s.wall - d };
    }

    /// The earliest deadline someone sleeps on, if any (lets a test jump straight to it).
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.lock().waiters.iter().map(|(d, _)| *d).min()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A poisoned lock only means a test thread panicked; the state itself is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let inner = self.inner.clone();
        Box::pin(ManualSleep { inner, deadline })
    }
}

struct ManualSleep {
    inner: Arc<Mutex<ManualState>>,
    deadline: Instant,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.now >= self.deadline {
            Poll::Ready(())
        } else {
            s.waiters.push((self.deadline, cx.waker().clone()));
            Poll::Pending
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
