//! Warnings, recommendations and the "how long can this session go on" estimate. Pure
//! functions and one small tracker, so every threshold is tested with plain values.
//!
//! ```text
//!  sample + session inputs ──conditions (with hysteresis)──▶ active set
//!  WarningTracker: previous set ──diff──▶ Started(w) / Cleared(w)   (edge-triggered events)
//! ```

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub shots_by_battery: Option<u64>,
    pub shots_by_card: Option<u64>,
    /// The smaller of the two.
    pub shots_left: Option<u64>,
    pub time_left: Option<Duration>,
    /// `"battery"` or `"card"`.
    pub limited_by: Option<&'static str>,
}

impl Estimate {
    pub fn block(&self) -> crate::protocol::status::EstimateBlock {
        crate::protocol::status::EstimateBlock {
            shots_by_battery: self.shots_by_battery,
            shots_by_card: self.shots_by_card,
            shots_left: self.shots_left,
            time_left_seconds: self.time_left.map(|d| d.as_secs()),
            limited_by: self.limited_by.map(str::to_string),
        }
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
    let time_left = shots_left.map(|n| i.interval.saturating_mul(n.min(u32::MAX as u64) as u32));
    Estimate {
        shots_by_battery: by_battery,
        shots_by_card: by_card,
        shots_left,
        time_left,
        limited_by,
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
