//! What clients see of a session: the status block, its options and stats, the grid view.

use super::*;

impl Session {
    /// Wall label (Unix ms, fractional) of a monotonic instant.
    pub fn wall_ms_of(&self, t: Instant) -> f64 {
        let (anchor, wall) = self.wall_anchor;
        wall as f64 + signed_ms(t, anchor)
    }

    /// The session's options as clients see them (`stopTime` as the resolved instant).
    pub fn options_block(&self) -> SessionOptionsBlock {
        let wire = self.opts.to_wire();
        SessionOptionsBlock {
            interval: wire.interval,
            stop_condition: wire.stop_condition,
            total_shots: wire.total_shots,
            stop_time: self.stop_at_wall_ms.map(iso8601_millis),
            stop_time_of_day: wire.stop_time,
            duration: wire.duration,
            overrun_policy: wire.overrun_policy,
            bulb: wire.bulb,
            start_at: wire.start_at,
            stop_at: wire.stop_at,
        }
    }

    /// The session's counters (`stats`).
    pub fn stats_block(&self) -> SessionStats {
        let s = &self.stats;
        let next = match self.state {
            State::Scheduled | State::Running { .. } => Some(self.due(self.next_slot)),
            _ => None,
        };
        let label = |ms: f64| iso8601_millis(ms.round() as i64);
        SessionStats {
            start_time: label(self.origin_wall_ms as f64),
            end_time: self.ended_wall_ms.map(label),
            shots_taken: s.shots_taken,
            shots_successful: s.shots_successful,
            shots_failed: s.shots_failed,
            shots_skipped: s.shots_skipped + self.skipped_pending,
            current_shot: s.shots_taken,
            next_shot_time: next.map(|t| label(self.wall_ms_of(t))),
            overtime_shots: s.overtime_shots,
            total_overtime_seconds: s.total_overtime_s,
            max_overtime_seconds: s.max_overtime_s,
            last_shot_duration: s.last_duration_s,
            total_shot_duration_seconds: s.sum_duration_s,
            timing: TimingStats {
                mean_error_ms: s.mean_error_ms(),
                p99_error_ms: s.p99_error_ms(),
                max_error_ms: (s.timed_shots > 0).then_some(s.max_abs_error_ms),
            },
        }
    }

    /// Shots left for a stop-after session.
    pub fn remaining_shots(&self) -> Option<u64> {
        match self.opts.stop {
            StopCondition::AfterShots(n) => {
                Some(u64::from(n).saturating_sub(self.stats.shots_taken))
            }
            _ => None,
        }
    }

    /// The reason the machine gave for its end (an error's cause), if any.
    pub fn end_reason(&self) -> Option<String> {
        match &self.state {
            State::Ended { reason, .. } => reason.clone(),
            _ => None,
        }
    }

    /// The `intervalometer` status block (PROTOCOL.md "Session status").
    pub fn status_block(&self) -> IntervalometerBlock {
        let s = &self.stats;
        let interval = self.opts.interval.as_secs_f64();
        let next = match self.state {
            State::Scheduled | State::Running { .. } => Some(self.due(self.next_slot)),
            _ => None,
        };
        let remaining = self.remaining_shots();
        // Frames still to come under every bounded stop condition (the card and battery are
        // judged against it): slots from the next one up to the end, none past it.
        let frames_left = match (remaining, self.end_deadline, next) {
            (Some(r), _, _) => Some(r),
            (None, Some(end), Some(due)) if due < end => {
                let iv = self.opts.interval.as_nanos().max(1);
                Some(u64::try_from((end - due).as_nanos().div_ceil(iv)).unwrap_or(u64::MAX))
            }
            (None, Some(_), _) => Some(0),
            (None, None, _) => None,
        };
        let end_ms = match (self.opts.stop, self.end_deadline) {
            (_, Some(end)) => Some(self.wall_ms_of(end)),
            (StopCondition::AfterShots(n), _) => next.map(|t| {
                self.wall_ms_of(t)
                    + (u64::from(n).saturating_sub(s.shots_taken + 1)) as f64 * interval * 1000.0
            }),
            _ => None,
        };
        IntervalometerBlock {
            state: self.state_name().into(),
            running: matches!(
                self.state,
                State::Running { .. }
                    | State::Stopping { .. }
                    | State::Finishing { .. }
                    | State::Scheduled
            ),
            session: Some(SessionBlock {
                session_id: self.id.clone(),
                title: self.title.clone(),
                camera_connected: self.connected,
                options: self.options_block(),
                stats: self.stats_block(),
                remaining_shots: self.remaining_shots(),
                frames_left,
                estimated_end_time: end_ms.map(|ms| iso8601_millis(ms.round() as i64)),
                success_rate: (s.shots_taken > 0)
                    .then(|| s.shots_successful as f64 / s.shots_taken as f64),
                average_shot_duration: (s.timed_shots > 0)
                    .then(|| s.sum_duration_s / s.timed_shots as f64),
                end_reason: self.end_reason(),
                // Frames failing in a row now (null when the last frame was taken), and the
                // last such run that ended: what the "camera not answering" banner shows.
                outage: self.outage.as_ref().map(Outage::block),
                last_outage: self.last_outage.as_ref().map(Outage::block),
            }),
            unsaved_session: None,
        }
    }

    /// Where the grid stands, for fitting a test shot between frames (`None` once ended).
    pub fn grid_view(&self) -> Option<crate::intervalometer::schedule::GridView> {
        let in_flight = match self.state {
            State::Scheduled | State::Running { in_flight: None } => false,
            State::Running { in_flight: Some(_) } => true,
            _ => return None,
        };
        Some(crate::intervalometer::schedule::GridView {
            next_due: self.due(self.next_slot),
            previous_due: (self.next_slot > self.base_slot).then(|| self.due(self.next_slot - 1)),
            interval: self.opts.interval,
            exposure: self.exposure_hint(),
            in_flight,
            awaiting_files: !self.pending_files.is_empty() || !self.early_files.is_empty(),
            lead: self.lead,
        })
    }
}
