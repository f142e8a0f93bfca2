//! Exponential backoff as data plus arithmetic, with jitter from a seedable RNG.
//!
//! `delay(attempt)` for attempt 0, 1, 2, … is `initial × factor^attempt`, capped at `max`, then
//! spread by ±`jitter` (a fraction). Tests pin the schedule with a fixed seed or `jitter = 0`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: u32,
    pub max: Duration,
    /// Fraction of the delay to spread by, both ways (0.0 = exact schedule).
    pub jitter: f64,
}

impl Backoff {
    /// Camera reconnect (seed 000): 5 s, 10 s, 20 s … capped at 60 s, ±10 %.
    pub const CAMERA: Backoff = Backoff {
        initial: Duration::from_secs(5),
        factor: 2,
        max: Duration::from_secs(60),
        jitter: 0.1,
    };
    /// Web UI reconnect (seed 001): 1 s doubling to 30 s.
    pub const WEB_CLIENT: Backoff = Backoff {
        initial: Duration::from_secs(1),
        factor: 2,
        max: Duration::from_secs(30),
        jitter: 0.0,
    };

    /// The un-jittered delay before retry number `attempt` (0-based).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 0..attempt {
            d = d.saturating_mul(self.factor);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }

    /// The jittered delay before retry number `attempt`.
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let base = self.base_delay(attempt);
        if self.jitter <= 0.0 {
            return base;
        }
        // Uniform in [1 - jitter, 1 + jitter).
        let spread = 1.0 + self.jitter * (2.0 * rng.next_f64() - 1.0);
        base.mul_f64(spread.max(0.0))
    }
}

/// SplitMix64: tiny, seedable, good enough for jitter and simulator fault probabilities.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Seeded from std's per-process random hash keys and the process id (for production
    /// jitter; no clock read).
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Rng(h.finish() | 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_schedule_doubles_to_the_cap() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::CAMERA
        };
        let secs: Vec<u64> = (0..6).map(|a| b.base_delay(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.base_delay(1000), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_is_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for attempt in 0..50 {
            let d = Backoff::CAMERA.delay(attempt % 6, &mut a);
            assert_eq!(d, Backoff::CAMERA.delay(attempt % 6, &mut b));
            let base = Backoff::CAMERA.base_delay(attempt % 6).as_secs_f64();
            assert!(d.as_secs_f64() >= base * 0.9 && d.as_secs_f64() < base * 1.1);
        }
    }
}
