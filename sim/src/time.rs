//! The simulator's own time: a clock trait, the real clock, a manual (virtual) clock, a seeded
//! RNG and civil-date arithmetic. The simulator is a peer of the product, not part of it, so it
//! shares none of the product's code; a test that wants both on one virtual clock passes the
//! product's clock in through [`SimTime`] (`SimClock::Shared`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the simulator's timers run on.
pub trait SimTime: Send + Sync + 'static {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time (the camera's clock starts from it).
    fn wall(&self) -> SystemTime;
    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

pub type SharedTime = Arc<dyn SimTime>;

/// Real time: `Instant::now`, `SystemTime::now`, async-io timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealTime;

impl SimTime for RealTime {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }
}

/// Virtual time that only moves when a test (or `POST /_sim/clock`) says so.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

struct ManualState {
    now: Instant,
    wall: SystemTime,
    waiters: Vec<(Instant, Waker)>,
}

impl ManualClock {
    /// Starts at the real `Instant::now()` and the given wall time.
    pub fn new(wall: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                now: Instant::now(),
                wall,
                waiters: Vec::new(),
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
            let (due, pending): (Vec<_>, Vec<_>) =
                s.waiters.drain(..).partition(|(d, _)| *d <= now);
            s.waiters = pending;
            due
        };
        for (_, w) in due {
            w.wake();
        }
    }

    /// The earliest deadline someone sleeps on, if any.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.lock().waiters.iter().map(|(d, _)| *d).min()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SimTime for ManualClock {
    fn now(&self) -> Instant {
        self.lock().now
    }
    fn wall(&self) -> SystemTime {
        self.lock().wall
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(futures_lite::future::poll_fn(
            move |cx: &mut Context<'_>| {
                let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
                if s.now >= deadline {
                    Poll::Ready(())
                } else {
                    s.waiters.push((deadline, cx.waker().clone()));
                    Poll::Pending
                }
            },
        ))
    }
}

/// SplitMix64: small, seeded, reproducible (fault probabilities, serial numbers).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 18_993, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn manual_clock_wakes_only_past_the_deadline() {
        let c = ManualClock::new(UNIX_EPOCH);
        let deadline = c.now() + Duration::from_secs(10);
        let mut f = c.sleep_until(deadline);
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        assert!(f.as_mut().poll(&mut cx).is_pending());
        c.advance(Duration::from_secs(9));
        assert!(f.as_mut().poll(&mut cx).is_pending());
        c.advance(Duration::from_secs(1));
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
