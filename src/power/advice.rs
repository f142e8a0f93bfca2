//! Warnings, recommendations and the "how long can this session go on" estimate. Pure
//! functions and one small tracker, so every threshold is tested with plain values.
//!
//! ```text
//!  sample + session inputs ──conditions (with hysteresis)──▶ active set
//!  WarningTracker: previous set ──diff──▶ Started(w) / Cleared(w)   (edge-triggered events)
//! ```

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

use super::sampler::PowerSample;

/// What the lead knows about the running session (camera battery and card), for the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateInputs {
    pub camera_battery_percent: Option<f64>,
    /// Shots per percent of camera battery, measured over the session so far.
    pub shots_per_percent: Option<f64>,
    pub free_bytes: u64,
    pub bytes_per_shot: u64,
    pub interval: Duration,
}

/// What one shot costs on the card: free space lost ÷ files written (the card's
/// `contentsnumber`, read together with its free space, so the two always agree), times the
/// files one release writes (RAW+JPEG: 2, from the new-file notices). Bodies that report no
/// file count are measured per release instead. Counted on one card at a time: a card swap
/// (another name or size) or space freed on the card starts a new count but keeps the
/// measured size (it belongs to the camera's settings, not the card), so the estimate does
/// not jump when the card changes. Recent files weigh most.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardMeter {
    card: Option<(String, u64)>,
    base_free_mb: f64,
    base_files: Option<u64>,
    /// Releases since `base_free_mb` was read (used when the card reports no file count).
    releases: u64,
    sum_bytes: f64,
    sum_files: f64,
    /// Files and releases seen in new-file notices (files per release).
    seen_files: u64,
    seen_releases: u64,
}

/// Files the measured size is averaged over (older ones fade out).
const CARD_METER_WINDOW: f64 = 100.0;

impl CardMeter {
    /// The camera reported `files` new files from `releases` shots (RAW+JPEG share a stem).
    pub fn added(&mut self, files: u64, releases: u64) {
        self.releases += releases;
        self.seen_files += files;
        self.seen_releases += releases;
    }

    fn files_per_release(&self) -> f64 {
        if self.seen_releases > 0 && self.seen_files >= self.seen_releases {
            self.seen_files as f64 / self.seen_releases as f64
        } else {
            1.0
        }
    }

    /// The card as the camera reports it now: name, size, free space (MB, rounded: the
    /// rounding telescopes away over successive readings) and the number of files on it.
    pub fn storage(&mut self, name: &str, total_mb: u64, free_mb: f64, files: Option<u64>) {
        let card = (name.to_string(), total_mb);
        let fewer_files = matches!((files, self.base_files), (Some(n), Some(b)) if n < b);
        if self.card.as_ref() != Some(&card) || free_mb > self.base_free_mb + 1.0 || fewer_files {
            self.card = Some(card);
            self.base_free_mb = free_mb;
            self.base_files = files;
            self.releases = 0;
            return;
        }
        if free_mb >= self.base_free_mb {
            return;
        }
        let new_files = match (files, self.base_files) {
            (Some(n), Some(b)) => (n - b) as f64,
            _ => self.releases as f64 * self.files_per_release(),
        };
        if new_files <= 0.0 {
            return; // space went before the count moved: wait for it
        }
        self.sum_bytes += (self.base_free_mb - free_mb) * 1_048_576.0;
        self.sum_files += new_files;
        if self.sum_files > CARD_METER_WINDOW {
            let k = CARD_METER_WINDOW / self.sum_files;
            self.sum_bytes *= k;
            self.sum_files *= k;
        }
        self.base_free_mb = free_mb;
        self.base_files = files;
        self.releases = 0;
    }

    /// Bytes one shot takes, once measured.
    pub fn bytes_per_shot(&self) -> Option<u64> {
        (self.sum_files > 0.0 && self.sum_bytes > 0.0)
            .then(|| (self.sum_bytes / self.sum_files * self.files_per_release()).round() as u64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub shots_by_battery: Option<u64>,
    pub shots_by_card: Option<u64>,
    /// The smaller of the two.
    pub shots_left: Option<u64>,
    pub time_left: Option<Duration>,
    /// `"battery"` or `"card"`.
    pub limited_by: Option<&'static str>,
    /// The measured size of one shot on the card.
    pub bytes_per_shot: Option<u64>,
}

impl Estimate {
    pub fn to_json(&self) -> Value {
        json!({
            "shotsByBattery": self.shots_by_battery,
            "shotsByCard": self.shots_by_card,
            "shotsLeft": self.shots_left,
            "timeLeftSeconds": self.time_left.map(|d| d.as_secs()),
            "limitedBy": self.limited_by,
            "bytesPerShot": self.bytes_per_shot,
        })
    }
}

/// Shots and time left: battery percent × shots per percent, card free bytes ÷ bytes per shot,
/// whichever runs out first, times the interval.
pub fn estimate(i: &EstimateInputs) -> Estimate {
    let by_battery = match (i.camera_battery_percent, i.shots_per_percent) {
        (Some(p), Some(spp)) if p.is_finite() && spp.is_finite() && p >= 0.0 && spp > 0.0 => {
            Some((p.min(100.0) * spp).floor() as u64)
        }
        _ => None,
    };
    let by_card = (i.bytes_per_shot > 0).then(|| i.free_bytes / i.bytes_per_shot);
    let (shots_left, limited_by) = match (by_battery, by_card) {
        (Some(b), Some(c)) if b <= c => (Some(b), Some("battery")),
        (Some(_), Some(c)) => (Some(c), Some("card")),
        (Some(b), None) => (Some(b), Some("battery")),
        (None, Some(c)) => (Some(c), Some("card")),
        (None, None) => (None, None),
    };
    // No session (interval 0): shots are known, time is not.
    let time_left = shots_left
        .filter(|_| !i.interval.is_zero())
        .map(|n| i.interval.saturating_mul(n.min(u32::MAX as u64) as u32));
    Estimate {
        shots_by_battery: by_battery,
        shots_by_card: by_card,
        shots_left,
        time_left,
        limited_by,
        bytes_per_shot: (i.bytes_per_shot > 0).then_some(i.bytes_per_shot),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Warning {
    UnderVoltage,
    Throttled,
    HighTemperature,
    LowPiBattery,
    LowCameraBattery,
    CardNearlyFull,
}

impl Warning {
    pub fn as_str(self) -> &'static str {
        match self {
            Warning::UnderVoltage => "under-voltage",
            Warning::Throttled => "throttled",
            Warning::HighTemperature => "high-temperature",
            Warning::LowPiBattery => "low-pi-battery",
            Warning::LowCameraBattery => "low-camera-battery",
            Warning::CardNearlyFull => "card-nearly-full",
        }
    }

    pub fn severity(self) -> &'static str {
        match self {
            Warning::UnderVoltage | Warning::LowPiBattery | Warning::CardNearlyFull => "critical",
            _ => "warning",
        }
    }

    /// What the user should do.
    pub fn recommendation(self) -> &'static str {
        match self {
            Warning::UnderVoltage => {
                "Under-voltage: use a stronger power supply or a shorter, thicker USB cable"
            }
            Warning::Throttled => "The Pi is throttling: give it shade or airflow, or a heatsink",
            Warning::HighTemperature => "The Pi is running hot: shade it or improve airflow",
            Warning::LowPiBattery => "The Pi's battery is low: connect power or swap the battery",
            Warning::LowCameraBattery => {
                "The camera battery is low: swap it or use a dummy battery"
            }
            Warning::CardNearlyFull => {
                "The memory card is nearly full: free space or swap the card"
            }
        }
    }
}

/// Thresholds; each warning clears only past a second, safer value (no flapping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub temp_high_c: f64,
    pub temp_clear_c: f64,
    pub battery_low_percent: f64,
    pub battery_clear_percent: f64,
    pub card_low_shots: u64,
    pub card_clear_shots: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            temp_high_c: 80.0,
            temp_clear_c: 75.0,
            battery_low_percent: 20.0,
            battery_clear_percent: 25.0,
            card_low_shots: 100,
            card_clear_shots: 150,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Started(Warning),
    Cleared(Warning),
}

/// Remembers which warnings are active, so each is announced when it starts and when it ends.
#[derive(Debug, Clone, Default)]
pub struct WarningTracker {
    pub thresholds: Thresholds,
    active: BTreeSet<Warning>,
}

impl WarningTracker {
    pub fn new(thresholds: Thresholds) -> Self {
        WarningTracker {
            thresholds,
            active: BTreeSet::new(),
        }
    }

    pub fn active(&self) -> impl Iterator<Item = Warning> + '_ {
        self.active.iter().copied()
    }

    /// Feeds one sample (and the session's inputs, if a session runs); returns the edges.
    pub fn update(&mut self, s: &PowerSample, session: Option<&EstimateInputs>) -> Vec<Change> {
        let t = self.thresholds;
        let was = |w| self.active.contains(&w);
        // Above `on` starts it; it stays until below `off` (lower-is-worse values negate).
        let hyst = |w: Warning, v: Option<f64>, on: f64, off: f64| match v {
            Some(v) if was(w) => v > off,
            Some(v) => v >= on,
            None => false,
        };
        let mut now = BTreeSet::new();
        if let Some(th) = s.throttled {
            if th.now().under_voltage {
                now.insert(Warning::UnderVoltage);
            }
            if th.now().throttled
                || th.now().arm_frequency_capped
                || th.now().soft_temperature_limit
            {
                now.insert(Warning::Throttled);
            }
        }
        if hyst(
            Warning::HighTemperature,
            s.temperature_c,
            t.temp_high_c,
            t.temp_clear_c,
        ) {
            now.insert(Warning::HighTemperature);
        }
        let pi_batt = s
            .battery()
            .filter(|b| b.status.as_deref() != Some("Charging"));
        if hyst(
            Warning::LowPiBattery,
            pi_batt.and_then(|b| b.capacity).map(|c| -c),
            -t.battery_low_percent,
            -t.battery_clear_percent,
        ) {
            now.insert(Warning::LowPiBattery);
        }
        if let Some(i) = session {
            if hyst(
                Warning::LowCameraBattery,
                i.camera_battery_percent.map(|c| -c),
                -t.battery_low_percent,
                -t.battery_clear_percent,
            ) {
                now.insert(Warning::LowCameraBattery);
            }
            let shots = estimate(i).shots_by_card.map(|n| -(n as f64));
            if hyst(
                Warning::CardNearlyFull,
                shots,
                -(t.card_low_shots as f64),
                -(t.card_clear_shots as f64),
            ) {
                now.insert(Warning::CardNearlyFull);
            }
        }
        let mut changes: Vec<Change> = now
            .difference(&self.active)
            .map(|w| Change::Started(*w))
            .collect();
        changes.extend(self.active.difference(&now).map(|w| Change::Cleared(*w)));
        self.active = now;
        changes
    }

    pub fn recommendations(&self) -> Vec<&'static str> {
        self.active.iter().map(|w| w.recommendation()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_meter_measures_per_shot_and_survives_a_card_swap() {
        let mut m = CardMeter::default();
        m.storage("sd", 30_000, 20_000.0, Some(10));
        assert_eq!(m.bytes_per_shot(), None);
        // Three JPEGs of ~6.4 MB with freeMB rounded, the notice racing the storage reading:
        // the file count read with the free space keeps them in step.
        m.added(1, 1);
        m.storage("sd", 30_000, 20_000.0, Some(10)); // notice first: nothing moved yet
        m.storage("sd", 30_000, 19_994.0, Some(11));
        m.storage("sd", 30_000, 19_987.0, Some(12)); // reading before the notice
        m.added(1, 1);
        m.added(1, 1);
        m.storage("sd", 30_000, 19_981.0, Some(13));
        let per = m.bytes_per_shot().unwrap() as f64 / 1_048_576.0;
        assert!((per - 19.0 / 3.0).abs() < 0.01, "{per}");
        // Issue 14: a fresh card (more free space, another size) must not make it jump.
        m.storage("sd", 60_000, 59_000.0, Some(0));
        assert_eq!(m.bytes_per_shot().unwrap() as f64 / 1_048_576.0, per);
        m.storage("sd", 60_000, 58_993.0, Some(1));
        let after = m.bytes_per_shot().unwrap() as f64 / 1_048_576.0;
        assert!((after - 26.0 / 4.0).abs() < 0.01, "{after}");
        // Files deleted on the camera: a new baseline, no negative sample.
        m.storage("sd", 60_000, 59_500.0, Some(0));
        assert_eq!(m.bytes_per_shot().unwrap() as f64 / 1_048_576.0, after);
        // RAW+JPEG: two files per release, a shot costs both.
        let mut m = CardMeter::default();
        m.storage("sd", 30_000, 20_000.0, Some(0));
        m.added(2, 1);
        m.storage("sd", 30_000, 19_970.0, Some(2));
        assert_eq!(m.bytes_per_shot(), Some(30 * 1_048_576));
        // A body without a file count: measured per release.
        let mut m = CardMeter::default();
        m.storage("sd", 30_000, 20_000.0, None);
        m.added(1, 1);
        m.storage("sd", 30_000, 19_993.0, None);
        assert_eq!(m.bytes_per_shot(), Some(7 * 1_048_576));
    }

    #[test]
    fn no_session_means_no_time_left() {
        let e = estimate(&EstimateInputs {
            camera_battery_percent: None,
            shots_per_percent: None,
            free_bytes: 100 * 1_048_576,
            bytes_per_shot: 1_048_576,
            interval: Duration::ZERO,
        });
        assert_eq!((e.shots_by_card, e.time_left), (Some(100), None));
        assert_eq!(e.to_json()["bytesPerShot"], 1_048_576);
    }
}
