//! Ramps: the keyframed ramp's settings change before a frame, and auto-ramp's thumbnail
//! measurement and exposure steps.

use super::*;

impl Session {
    /// Auto-ramp: measures the waiting frame unless one is being measured.
    pub(super) fn next_measure(&mut self) {
        if self.measuring || !self.connected {
            return;
        }
        if let Some((slot, path)) = self.measure_next.take() {
            self.measuring = true;
            self.actions.push_back(Action::Measure { slot, path });
        }
    }

    /// Auto-ramp: a frame's brightness came in; the controller learns it and the next frame's
    /// settings are decided now, in the gap, if a frame is not already with the camera.
    pub(super) fn measured(&mut self, now: Instant, slot: u64, brightness: f64) {
        let Some(&(_, at_ms, exposure)) = self.frame_exposures.iter().find(|f| f.0 == slot) else {
            return;
        };
        let Some(plan) = &self.opts.auto else { return };
        let sun_alt = crate::sun::solar_altitude_deg(at_ms, plan.location);
        if let Some(auto) = self.auto.as_mut() {
            auto.observe(crate::ramp::Frame {
                at_ms,
                exposure,
                brightness,
            });
        }
        self.actions
            .push_back(Action::Journal(JournalEntry::Measured {
                slot,
                brightness,
                sun_alt,
            }));
        if matches!(self.state, State::Running { in_flight: None }) {
            let due = self.due(self.next_slot);
            if now + self.lead < due {
                self.maybe_ramp(now, due);
            }
        }
    }

    /// In the gap before the frame due at `due`: sends the ramp's settings for it when they
    /// differ from the camera's and there is time (else the frame keeps the current ones and
    /// the change waits for the next gap).
    pub(super) fn maybe_ramp(&mut self, now: Instant, due: Instant) {
        if self.change_in_flight || !self.connected {
            return;
        }
        let t_ms = self.wall_ms_of(due).round() as i64;
        let target = match (&self.opts.ramp, &self.opts.auto, &self.auto) {
            (Some(plan), _, _) => plan.target(t_ms),
            (None, Some(plan), Some(auto)) => {
                // The step limit is from the last frame shot, not from a change already made
                // for this gap (a second measurement in one gap must not step twice).
                let Some(current) = self
                    .frame_exposures
                    .back()
                    .map(|f| f.2)
                    .or_else(|| self.known.exposure_ev())
                else {
                    return;
                };
                let alt = crate::sun::solar_altitude_deg(t_ms, plan.location);
                let Some(d) = auto.decide(t_ms, Some(alt), current, &plan.limits()) else {
                    return;
                };
                FrameSettings {
                    tv: Some(d.settings.tv),
                    iso: Some(d.settings.iso),
                    av: Some(d.settings.av),
                }
            }
            _ => return,
        };
        let changes = self.known.changes_to(&target);
        if changes.is_empty() {
            return;
        }
        let Some(deadline) = due.checked_sub(self.lead + RAMP_BUDGET) else {
            return;
        };
        if now >= deadline {
            self.ramp_deferred += 1;
            return;
        }
        self.change_in_flight = true;
        self.actions
            .push_back(Action::ApplySettings { changes, deadline });
    }

    /// Keyframed or automatic ramp.
    pub(super) fn ramped(&self) -> bool {
        self.opts.ramp.is_some() || self.opts.auto.is_some()
    }
}
