//! The counters and timing figures shown in the status block.

use super::*;

/// Counters shown in the status block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub shots_taken: u64,
    pub shots_successful: u64,
    pub shots_failed: u64,
    pub shots_skipped: u64,
    pub overtime_shots: u64,
    pub total_overtime_s: f64,
    pub max_overtime_s: f64,
    pub last_duration_s: Option<f64>,
    pub sum_duration_s: f64,
    pub timed_shots: u64,
    pub sum_abs_error_ms: f64,
    pub max_abs_error_ms: f64,
    recent_errors: VecDeque<f32>,
}

impl Stats {
    pub(super) fn record(&mut self, r: &ShotRecord, interval_s: f64) {
        self.shots_taken += 1;
        self.shots_skipped += r.skipped_before;
        if r.ok {
            self.shots_successful += 1;
        } else {
            self.shots_failed += 1;
        }
        if let Some(d) = r.duration_ms {
            let d = d / 1000.0;
            self.last_duration_s = Some(d);
            self.sum_duration_s += d;
            if d > interval_s {
                self.overtime_shots += 1;
                self.total_overtime_s += d - interval_s;
                self.max_overtime_s = self.max_overtime_s.max(d - interval_s);
            }
        }
        if let Some(e) = r.error_ms {
            let e = e.abs();
            self.timed_shots += 1;
            self.sum_abs_error_ms += e;
            self.max_abs_error_ms = self.max_abs_error_ms.max(e);
            if self.recent_errors.len() == RECENT_ERRORS {
                self.recent_errors.pop_front();
            }
            self.recent_errors.push_back(e as f32);
        }
    }

    pub fn mean_error_ms(&self) -> Option<f64> {
        (self.timed_shots > 0).then(|| self.sum_abs_error_ms / self.timed_shots as f64)
    }

    /// p99 of |error| over the most recent shots (the report has the exact figure).
    pub fn p99_error_ms(&self) -> Option<f64> {
        let mut v: Vec<f32> = self.recent_errors.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(f64::from(v[percentile_index(v.len(), 0.99)]))
    }
}

/// Nearest-rank percentile index into a sorted slice of `len` > 0 values.
pub fn percentile_index(len: usize, p: f64) -> usize {
    ((len as f64 * p).ceil() as usize).clamp(1, len) - 1
}
