//! Session options: interval, stop conditions, overrun policy, bulb; interval validation and
//! the wall-clock arithmetic for "HH:MM" and sun-relative stop/start times; fitting a test
//! shot between frames. Pure functions, no clock reads. `ramp_plan`: keyframed and automatic
//! ramps (the settings a frame is shot with).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use crate::exposure::{av_number, av_stops, iso_stops, tv_seconds, tv_stops};
use crate::protocol::{ApiError, KeyframeSpec, StartIntervalometer, SunRef, TimeSpec};
use crate::ramp::{KeyValues, Keyframe, Keyframes};
use crate::sun::{Location, NoEvent, SunEvent};

mod ramp_plan;

pub use ramp_plan::*;

/// Exposures longer than this need bulb mode (`shutterbutton/manual`).
pub const BULB_THRESHOLD_SECS: f64 = 30.0;
/// Time the camera needs after an exposure to write the file before it accepts the next shot
/// (recommended headroom; less works with small JPEGs and fast cards, with warnings).
pub const CAMERA_WRITE_MARGIN_SECS: f64 = 1.0;
/// Gap after the exposure below which the next press always lands in the camera's write
/// window and is refused: an interval shorter than exposure + this is invalid.
pub const MIN_GAP_SECS: f64 = 0.2;
/// Shortest interval accepted at all.
pub const MIN_INTERVAL_SECS: f64 = 0.1;
/// Longest interval accepted (one day).
pub const MAX_INTERVAL_SECS: f64 = 86_400.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCondition {
    Unlimited,
    /// Stop after this many shots were attempted (successful or failed; skipped slots do not
    /// count).
    AfterShots(u32),
    /// Stop at the next occurrence of this local time ("HH:MM" in the configured zone).
    At {
        hour: u8,
        minute: u8,
    },
    /// Stop once this much time has passed since the first slot.
    Duration(Duration),
    /// Stop at this wall instant (Unix ms), resolved at the start from an ISO-8601 `stopAt`
    /// or a sun event (`{event, offsetMinutes}`).
    Until(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrunPolicy {
    /// Skip every missed slot; shoot at the next slot still ahead (default).
    NextSlot,
    /// Shoot once right away for the missed slots, then back on the grid.
    ImmediatelyOnce,
}

/// What a session does, parsed and checked once.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    pub interval: Duration,
    pub stop: StopCondition,
    pub overrun: OverrunPolicy,
    /// Bulb exposure held on the monotonic clock (exposures over 30 s).
    pub bulb: Option<Duration>,
    pub af: bool,
    /// Exposure of each shot (seconds): announced by the client, else the camera's Tv at
    /// start. Validates the interval and tells how long a shot's reply may take.
    pub exposure: Option<f64>,
    /// `startAt` / `stopAt` as the client gave them, for the echo.
    pub start_at: Option<TimeSpec>,
    pub stop_at: Option<TimeSpec>,
    /// Keyframed Tv/ISO/aperture, resolved at the start.
    pub ramp: Option<RampPlan>,
    /// Automatic ramping from the frames' thumbnails.
    pub auto: Option<AutoPlan>,
}

impl Default for SessionOptions {
    /// One frame a second until stopped (a base for tests and struct updates).
    fn default() -> Self {
        SessionOptions {
            interval: Duration::from_secs(1),
            stop: StopCondition::Unlimited,
            overrun: OverrunPolicy::NextSlot,
            bulb: None,
            af: false,
            exposure: None,
            start_at: None,
            stop_at: None,
            ramp: None,
            auto: None,
        }
    }
}

/// The wire/journal form of [`SessionOptions`] (PROTOCOL.md `options`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionsWire {
    pub interval: f64,
    pub stop_condition: String,
    #[serde(default)]
    pub total_shots: Option<u32>,
    #[serde(default)]
    pub stop_time: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub overrun_policy: Option<String>,
    #[serde(default)]
    pub bulb: Option<f64>,
    #[serde(default)]
    pub af: bool,
    #[serde(default)]
    pub exposure: Option<f64>,
    /// `startAt` / `stopAt` as the client gave them (echoed; the instants are resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<TimeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<TimeSpec>,
    /// The resolved stop instant of a `stopAt` given as ISO-8601 or a sun event, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_ramp: Option<AutoPlan>,
}

impl SessionOptions {
    /// Parses a start request. Old clients that omit `stopCondition` get it inferred from the
    /// fields they sent (shots → stop-after, stopTime → stop-at, duration → duration).
    ///
    /// `stop_at_ms` is `stopAt` resolved by the caller (it needs the start and the location;
    /// see [`resolve_stop_at`]); a "HH:MM" `stopAt` is a stop time like `stopTime`.
    pub fn from_request(
        r: &StartIntervalometer,
        stop_at_ms: Option<i64>,
    ) -> Result<SessionOptions, ApiError> {
        let stop_hhmm = match &r.stop_at {
            Some(TimeSpec::Clock(s)) if parse_hhmm(s).is_some() => Some(s.clone()),
            _ => None,
        };
        let wire = OptionsWire {
            interval: r.interval,
            stop_condition: match &r.stop_condition {
                Some(s) => s.clone(),
                None if r.stop_at.is_some() => "stop-at".into(),
                None if r.shots.is_some() => "stop-after".into(),
                None if r.stop_time.is_some() => "stop-at".into(),
                None if r.duration.is_some() => "duration".into(),
                None => "unlimited".into(),
            },
            total_shots: r.shots,
            stop_time: stop_hhmm.or_else(|| r.stop_time.clone()),
            duration: r.duration,
            overrun_policy: r.overrun_policy.clone(),
            bulb: r.bulb,
            af: r.af.unwrap_or(false),
            exposure: r.exposure.or(r.bulb),
            start_at: r.start_at.clone(),
            stop_at: r.stop_at.clone(),
            stop_at_ms,
            // Keyframes and auto-ramp need the camera and the start: the service sets them.
            ramp: None,
            auto_ramp: None,
        };
        SessionOptions::from_wire(&wire)
    }

    pub fn from_wire(w: &OptionsWire) -> Result<SessionOptions, ApiError> {
        let interval = secs("interval", w.interval, MIN_INTERVAL_SECS, MAX_INTERVAL_SECS)?;
        let stop = match w.stop_condition.as_str() {
            "unlimited" => StopCondition::Unlimited,
            "stop-after" | "shots" => match w.total_shots {
                Some(n) if n > 0 => StopCondition::AfterShots(n),
                _ => return Err(ApiError::invalid("stop-after needs shots ≥ 1")),
            },
            "stop-at" | "time" if w.stop_at_ms.is_some() => {
                StopCondition::Until(w.stop_at_ms.unwrap_or_default())
            }
            "stop-at" | "time" => {
                let t = w.stop_time.as_deref().ok_or_else(|| {
                    ApiError::invalid("stop-at needs stopTime \"HH:MM\" or stopAt")
                })?;
                let (hour, minute) = parse_hhmm(t)
                    .ok_or_else(|| ApiError::invalid("stopTime must be \"HH:MM\" (00:00–23:59)"))?;
                StopCondition::At { hour, minute }
            }
            "duration" => {
                let d = w
                    .duration
                    .ok_or_else(|| ApiError::invalid("duration stop needs duration (seconds)"))?;
                StopCondition::Duration(secs("duration", d, 1.0, 30.0 * 86_400.0)?)
            }
            other => {
                let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
                return Err(ApiError::invalid(format!(
                    "Unknown stopCondition \"{shown}\" (unlimited, stop-after, stop-at, duration)"
                )));
            }
        };
        let overrun = match w.overrun_policy.as_deref() {
            None | Some("next-slot") => OverrunPolicy::NextSlot,
            Some("immediately-once") => OverrunPolicy::ImmediatelyOnce,
            Some(_) => {
                return Err(ApiError::invalid(
                    "overrunPolicy must be \"next-slot\" or \"immediately-once\"",
                ))
            }
        };
        let bulb = match w.bulb {
            None => None,
            Some(b) => Some(secs("bulb", b, 0.1, 3600.0)?),
        };
        if let Some(b) = bulb {
            if b >= interval {
                return Err(ApiError::invalid(format!(
                    "bulb exposure {:.1} s does not fit in the {:.1} s interval",
                    b.as_secs_f64(),
                    interval.as_secs_f64()
                )));
            }
        }
        if let Some(e) = w.exposure {
            if !e.is_finite() || e < 0.0 {
                return Err(ApiError::invalid(
                    "exposure must be a positive number of seconds",
                ));
            }
        }
        Ok(SessionOptions {
            interval,
            stop,
            overrun,
            bulb,
            af: w.af,
            exposure: w.exposure,
            start_at: w.start_at.clone(),
            stop_at: w.stop_at.clone(),
            ramp: w.ramp.clone(),
            auto: w.auto_ramp.clone(),
        })
    }

    pub fn to_wire(&self) -> OptionsWire {
        let (stop_condition, total_shots, stop_time, duration) = match self.stop {
            StopCondition::Unlimited => ("unlimited", None, None, None),
            StopCondition::AfterShots(n) => ("stop-after", Some(n), None, None),
            StopCondition::At { hour, minute } => (
                "stop-at",
                None,
                Some(format!("{hour:02}:{minute:02}")),
                None,
            ),
            StopCondition::Duration(d) => ("duration", None, None, Some(d.as_secs_f64())),
            StopCondition::Until(_) => ("stop-at", None, None, None),
        };
        OptionsWire {
            interval: self.interval.as_secs_f64(),
            stop_condition: stop_condition.into(),
            total_shots,
            stop_time,
            duration,
            overrun_policy: Some(
                match self.overrun {
                    OverrunPolicy::NextSlot => "next-slot",
                    OverrunPolicy::ImmediatelyOnce => "immediately-once",
                }
                .into(),
            ),
            bulb: self.bulb.map(|b| b.as_secs_f64()),
            af: self.af,
            exposure: self.exposure,
            start_at: self.start_at.clone(),
            stop_at: self.stop_at.clone(),
            stop_at_ms: match self.stop {
                StopCondition::Until(ms) => Some(ms),
                _ => None,
            },
            ramp: self.ramp.clone(),
            auto_ramp: self.auto.clone(),
        }
    }
}

fn secs(field: &str, v: f64, min: f64, max: f64) -> Result<Duration, ApiError> {
    if !v.is_finite() || v < min || v > max {
        return Err(ApiError::invalid(format!(
            "{field} must be between {min} and {max} seconds"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// "HH:MM" → (hour, minute).
pub fn parse_hhmm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    (h < 24 && m < 60).then_some((h, m))
}

/// The next wall instant (Unix ms) strictly after `wall_ms` whose local time in the zone
/// `tz_offset_secs` (east of UTC) is hour:minute. A stop time equal to "now" means tomorrow.
pub fn next_occurrence(wall_ms: i64, tz_offset_secs: i32, hour: u8, minute: u8) -> i64 {
    const DAY: i64 = 86_400_000;
    let local = wall_ms + i64::from(tz_offset_secs) * 1000;
    let midnight = local.div_euclid(DAY) * DAY;
    let mut target = midnight + (i64::from(hour) * 3600 + i64::from(minute) * 60) * 1000;
    if target <= local {
        target += DAY;
    }
    target - i64::from(tz_offset_secs) * 1000
}

/// How far ahead a sun-relative time may resolve: beyond this the event does not happen
/// today or tomorrow there (polar day or night), and a session waiting weeks is not meant.
pub const SUN_LOOKAHEAD_MS: i64 = 48 * 3_600_000;
/// Largest `offsetMinutes` accepted (12 h either way).
pub const MAX_SUN_OFFSET_MIN: f64 = 720.0;

/// The first instant after `after_ms` that is `r.event` + `r.offsetMinutes` at `loc`, Unix ms.
/// `field` names the option in errors. Errors: unknown event, no location, an offset out of
/// range, or an event that does not happen within [`SUN_LOOKAHEAD_MS`] (with the reason).
pub fn resolve_sun(
    r: &SunRef,
    after_ms: i64,
    loc: Option<Location>,
    field: &str,
) -> Result<i64, ApiError> {
    let event = SunEvent::parse(&r.event).ok_or_else(|| {
        ApiError::invalid(format!(
            "{field}: {}",
            crate::sun::SunError::Event(r.event.clone())
        ))
    })?;
    if !r.offset_minutes.is_finite() || r.offset_minutes.abs() > MAX_SUN_OFFSET_MIN {
        return Err(ApiError::invalid(format!(
            "{field}: offsetMinutes must be between -{MAX_SUN_OFFSET_MIN} and {MAX_SUN_OFFSET_MIN}"
        )));
    }
    let loc = loc.ok_or_else(|| {
        let e = crate::location::no_location();
        ApiError::new(
            e.code,
            format!("{field} is relative to the sun: {}", e.message),
        )
    })?;
    let offset_ms = (r.offset_minutes * 60_000.0).round() as i64;
    let found = crate::sun::next_event(after_ms - offset_ms, event, loc).map(|t| t + offset_ms);
    match found {
        Some(t) if t - after_ms <= SUN_LOOKAHEAD_MS => Ok(t),
        _ => {
            let date = crate::location::local_solar_date(after_ms, loc);
            let why = match crate::sun::sun_times(date, loc).get(event) {
                Err(NoEvent::AlwaysBelow) => {
                    "the sun stays below that altitude all day (polar night)"
                }
                Err(NoEvent::AlwaysAbove) => {
                    "the sun stays above that altitude all day (polar day or white night)"
                }
                _ => "it does not happen in the next 48 hours",
            };
            let next = found
                .map(|t| format!("; next on {}", &crate::util::iso8601_millis(t)[..10]))
                .unwrap_or_default();
            Err(ApiError::invalid(format!(
                "{field}: there is no {event} at {:.3}, {:.3} on {}: {why}{next}",
                loc.lat,
                loc.lon,
                crate::sun::format_date(date)
            )))
        }
    }
}

/// `stopAt` resolved after the session's first slot (`origin_ms`): `None` for "HH:MM" (a stop
/// time of day, handled like `stopTime`), else the instant, which must come after the start.
pub fn resolve_stop_at(
    spec: &TimeSpec,
    origin_ms: i64,
    loc: Option<Location>,
) -> Result<Option<i64>, ApiError> {
    let at = match spec {
        TimeSpec::Clock(s) if parse_hhmm(s).is_some() => return Ok(None),
        TimeSpec::Clock(s) => crate::util::parse_iso8601(s.trim()).ok_or_else(|| {
            ApiError::invalid("stopAt must be ISO-8601, \"HH:MM\" or {event, offsetMinutes}")
        })?,
        TimeSpec::Sun(r) => resolve_sun(r, origin_ms, loc, "stopAt")?,
    };
    if at <= origin_ms {
        return Err(ApiError::invalid(format!(
            "stopAt {} is not after the start {}",
            crate::util::iso8601_millis(at),
            crate::util::iso8601_millis(origin_ms)
        )));
    }
    Ok(Some(at))
}

/// `startAt`: ISO-8601 (absolute), "HH:MM" (next occurrence) or a sun event (next
/// occurrence at `loc`). Returns Unix ms.
pub fn resolve_start_at(
    spec: &TimeSpec,
    wall_ms: i64,
    tz_offset_secs: i32,
    loc: Option<Location>,
) -> Result<i64, ApiError> {
    match spec {
        TimeSpec::Clock(s) => parse_start_at(s, wall_ms, tz_offset_secs),
        TimeSpec::Sun(r) => resolve_sun(r, wall_ms, loc, "startAt"),
    }
}

/// `startAt`: ISO-8601 (absolute) or "HH:MM" (next occurrence). Returns Unix ms.
pub fn parse_start_at(s: &str, wall_ms: i64, tz_offset_secs: i32) -> Result<i64, ApiError> {
    if let Some((h, m)) = parse_hhmm(s) {
        return Ok(next_occurrence(wall_ms, tz_offset_secs, h, m));
    }
    let at = crate::util::parse_iso8601(s)
        .ok_or_else(|| ApiError::invalid("startAt must be ISO-8601 or \"HH:MM\""))?;
    if at > wall_ms + 7 * 86_400_000 {
        return Err(ApiError::invalid("startAt is more than a week ahead"));
    }
    Ok(at)
}

/// The answer to `validate_interval`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalValidation {
    pub valid: bool,
    pub warnings: Vec<String>,
    /// Seconds: the shortest interval accepted (exposure + a minimal gap).
    pub minimum_interval: f64,
    /// Seconds: exposure + the camera's usual write time; shorter intervals get a warning.
    pub recommended_interval: f64,
    /// Whether the exposure needs bulb mode.
    pub bulb: bool,
}

/// Checks that `interval` leaves room for `exposure` plus the camera's write time: shorter
/// than the exposure plus [`MIN_GAP_SECS`] is invalid (every press would be refused as busy),
/// shorter than exposure + [`CAMERA_WRITE_MARGIN_SECS`] is accepted with a warning.
pub fn validate_interval(interval: f64, exposure: Option<f64>) -> IntervalValidation {
    let mut warnings = Vec::new();
    let exposure = exposure.filter(|e| e.is_finite() && *e >= 0.0);
    let e = exposure.unwrap_or(0.0);
    let minimum = round_ms(
        e + if exposure.is_some() {
            MIN_GAP_SECS
        } else {
            0.0
        },
    )
    .max(MIN_INTERVAL_SECS);
    let recommended = round_ms(e + CAMERA_WRITE_MARGIN_SECS).max(MIN_INTERVAL_SECS);
    let mut valid = true;
    if !interval.is_finite() || interval < MIN_INTERVAL_SECS {
        valid = false;
        warnings.push(format!("Interval must be at least {MIN_INTERVAL_SECS} s"));
    } else if interval > MAX_INTERVAL_SECS {
        valid = false;
        warnings.push("Interval must be at most 24 hours".into());
    } else if let Some(e) = exposure {
        if interval < minimum {
            valid = false;
            warnings.push(format!(
                "Interval {interval} s is too short for the {} exposure: the camera is still exposing or writing when the next shot is due; the minimum is {minimum} s ({recommended} s recommended)",
                exposure_label(e)
            ));
        } else if interval < recommended {
            warnings.push(format!(
                "Interval {interval} s leaves under {CAMERA_WRITE_MARGIN_SECS} s after the {} exposure for the camera to write the file; slow cards, RAW files or noise reduction will make shots skip ({recommended} s recommended)",
                exposure_label(e)
            ));
        }
    } else if interval < CAMERA_WRITE_MARGIN_SECS {
        warnings.push(format!(
            "Intervals under {CAMERA_WRITE_MARGIN_SECS} s only work with fast shutter speeds and a camera that keeps up; late shots skip their slot"
        ));
    }
    let bulb = exposure.is_some_and(|e| e > BULB_THRESHOLD_SECS);
    if bulb {
        warnings.push(format!(
            "Exposures over {BULB_THRESHOLD_SECS} s use bulb mode: set the camera to B and pass bulb"
        ));
    }
    IntervalValidation {
        valid,
        warnings,
        minimum_interval: minimum,
        recommended_interval: recommended,
        bulb,
    }
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// After a test shot's exposure and write, time kept free for its file to be reported and its
/// download to start before the session's next frame is handed to the camera.
pub const TEST_SHOT_DOWNLOAD_MARGIN_SECS: f64 = 0.5;

/// Where a running session's grid stands, for fitting a test shot between its frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridView {
    /// Due time of the next frame not yet handed to the camera.
    pub next_due: Instant,
    /// Due time of the frame before it (`None`: no frame since the session (re)started).
    pub previous_due: Option<Instant>,
    pub interval: Duration,
    /// How long each frame exposes (bulb hold or Tv), if known.
    pub exposure: Option<Duration>,
    /// A frame is with the camera and has not been answered yet.
    pub in_flight: bool,
    /// A frame's file has not been reported yet: a test file now would be taken for it.
    pub awaiting_files: bool,
    /// How far ahead of its due time a frame is handed to the camera.
    pub lead: Duration,
}

/// When a test shot exposing `test_exposure` can fire without touching a session frame: in
/// the gap after the previous frame (its exposure and write done) if what is left of it
/// holds the test's exposure, write and download margin before the next frame's lead time;
/// else in the following gap. `Err` is the plain reason when no gap can ever hold it.
pub fn plan_test_shot(
    now: Instant,
    g: &GridView,
    test_exposure: Duration,
) -> Result<Instant, String> {
    let write = Duration::from_secs_f64(CAMERA_WRITE_MARGIN_SECS);
    let need = test_exposure + write + Duration::from_secs_f64(TEST_SHOT_DOWNLOAD_MARGIN_SECS);
    let frame_exposure = g.exposure.unwrap_or(test_exposure);
    let frame_busy = frame_exposure + write;
    let room = g
        .interval
        .checked_sub(frame_busy + g.lead)
        .unwrap_or(Duration::ZERO);
    if room < need {
        return Err(format!(
            "No room for a test photo during this timelapse: a frame every {} keeps the camera busy {} ({} exposure and writing), and a test photo needs {} free between two frames. Take it after the session, or use a longer interval",
            duration_words(g.interval),
            duration_words(frame_busy),
            exposure_label(frame_exposure.as_secs_f64()),
            duration_words(need),
        ));
    }
    // This gap: once the previous frame is exposed and written (and answered, with its file
    // reported); it must end before the next frame is handed over.
    let busy_now = g.in_flight || g.awaiting_files;
    let start = match g.previous_due {
        Some(p) => now.max(p + frame_busy),
        None => now,
    };
    if !busy_now && start + need + g.lead <= g.next_due {
        return Ok(start);
    }
    // The next gap always holds it (room ≥ need); skip ahead past `now` on the grid.
    let mut next = g.next_due;
    while next + frame_busy < now {
        next += g.interval;
    }
    Ok(now.max(next + frame_busy))
}

/// A duration in words a photographer reads at a glance: `3 s`, `1.5 s`, `2 min 5 s`.
pub fn duration_words(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        let m = (s / 60.0).floor();
        let r = (s - m * 60.0).round();
        if r > 0.0 {
            format!("{m} min {r} s")
        } else {
            format!("{m} min")
        }
    } else {
        let t = format!("{s:.1}");
        format!("{} s", t.trim_end_matches(".0"))
    }
}

/// An exposure as photographers write it: `20"`, `0.5"`, `1/125`.
pub fn exposure_label(secs: f64) -> String {
    if secs >= 0.3 {
        let s = format!("{secs:.1}");
        format!("{}\"", s.trim_end_matches(".0"))
    } else if secs > 0.0 {
        format!("1/{}", (1.0 / secs).round())
    } else {
        "0\"".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(now: Instant, interval_ms: u64) -> GridView {
        GridView {
            next_due: now + Duration::from_millis(interval_ms),
            previous_due: Some(now),
            interval: Duration::from_millis(interval_ms),
            exposure: Some(Duration::from_millis(8)),
            in_flight: false,
            awaiting_files: false,
            lead: Duration::from_millis(300),
        }
    }

    #[test]
    fn test_shot_fits_the_gap_after_the_frame_or_the_next_one() {
        let t0 = crate::clock::test_t0();
        let tv = Duration::from_millis(8);
        // 3 s frames at 1/125: the frame at t0 is written by ~1.008 s; the test needs
        // 1.508 s and must end by 2.7 s: it fires at 1.008 s.
        let g = grid(t0, 3000);
        assert_eq!(
            plan_test_shot(t0, &g, tv),
            Ok(t0 + Duration::from_millis(1008))
        );
        // Asked at 1.5 s: 1.5 + 1.508 > 2.7, so the next gap: 3 s + 1.008 s.
        let at = t0 + Duration::from_millis(1500);
        assert_eq!(
            plan_test_shot(at, &g, tv),
            Ok(t0 + Duration::from_millis(4008))
        );
        // The frame's file not reported yet: not in this gap either.
        let waiting = GridView {
            awaiting_files: true,
            ..g
        };
        assert_eq!(
            plan_test_shot(t0, &waiting, tv),
            Ok(t0 + Duration::from_millis(4008))
        );
        // No frame yet (scheduled start far ahead): right away.
        let scheduled = GridView {
            previous_due: None,
            next_due: t0 + Duration::from_secs(600),
            ..g
        };
        assert_eq!(plan_test_shot(t0, &scheduled, tv), Ok(t0));
    }

    #[test]
    fn test_shot_is_refused_when_no_gap_can_hold_it() {
        let t0 = crate::clock::test_t0();
        // 2 s frames: 2 − 1.008 − 0.3 = 0.69 s of room < 1.508 s.
        let e = plan_test_shot(t0, &grid(t0, 2000), Duration::from_millis(8)).unwrap_err();
        assert!(e.contains("every 2 s") && e.contains("1/125"), "{e}");
        // 20" frames every 25 s: a 20" test photo cannot fit.
        let g = GridView {
            exposure: Some(Duration::from_secs(20)),
            ..grid(t0, 25_000)
        };
        let e = plan_test_shot(t0, &g, Duration::from_secs(20)).unwrap_err();
        assert!(e.contains("20\""), "{e}");
        assert_eq!(duration_words(Duration::from_millis(125_000)), "2 min 5 s");
        assert_eq!(duration_words(Duration::from_millis(1508)), "1.5 s");
    }

    #[test]
    fn next_occurrence_crosses_midnight_and_respects_zone() {
        // 2022-01-01T23:00:00Z, UTC: "01:00" is tomorrow 01:00Z.
        let t = 1_641_078_000_000;
        assert_eq!(next_occurrence(t, 0, 1, 0), t + 2 * 3_600_000);
        // Same instant seen from UTC+2 (local 01:00 on Jan 2): "01:00" is a day later.
        assert_eq!(next_occurrence(t, 7200, 1, 0), t + 24 * 3_600_000);
        // UTC−5 (local 18:00): "19:30" is 90 min away.
        assert_eq!(next_occurrence(t, -5 * 3600, 19, 30), t + 90 * 60_000);
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(parse_hhmm("06:05"), Some((6, 5)));
        assert_eq!(parse_hhmm("6:05"), Some((6, 5)));
        for bad in ["24:00", "12:60", "12", "ab:cd", "1:5", ""] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }

    #[test]
    fn validation_names_the_minimum() {
        let v = validate_interval(1.6, Some(1.5));
        assert!(!v.valid);
        assert_eq!(v.minimum_interval, 1.7);
        assert_eq!(v.recommended_interval, 2.5);
        assert!(
            v.warnings[0].contains("minimum is 1.7 s"),
            "{:?}",
            v.warnings
        );
        // Enough to finish, not to write comfortably: accepted with a warning.
        let v = validate_interval(2.0, Some(1.5));
        assert!(v.valid);
        assert!(
            v.warnings[0].contains("2.5 s recommended"),
            "{:?}",
            v.warnings
        );
        // Issue 14 B3: a 10 s interval at 20" is refused.
        let v = validate_interval(10.0, Some(20.0));
        assert!(
            !v.valid && v.warnings[0].contains("20\""),
            "{:?}",
            v.warnings
        );
        // Short exposures: fast intervals stay possible.
        assert!(validate_interval(0.25, Some(1.0 / 125.0)).valid);
        assert_eq!(exposure_label(1.0 / 125.0), "1/125");
        assert_eq!(exposure_label(0.5), "0.5\"");
        assert_eq!(exposure_label(30.0), "30\"");
        let v = validate_interval(10.0, Some(1.0));
        assert!(v.valid && v.warnings.is_empty());
        let v = validate_interval(60.0, Some(40.0));
        assert!(v.valid && v.bulb);
        assert!(!validate_interval(f64::NAN, None).valid);
        assert!(!validate_interval(0.01, None).valid);
    }

    #[test]
    fn options_round_trip_and_infer_stop_condition() {
        let req: StartIntervalometer =
            serde_json::from_value(serde_json::json!({"interval": 5, "totalShots": 10})).unwrap();
        let o = SessionOptions::from_request(&req, None).unwrap();
        assert_eq!(o.stop, StopCondition::AfterShots(10));
        assert_eq!(SessionOptions::from_wire(&o.to_wire()).unwrap(), o);
        let req: StartIntervalometer = serde_json::from_value(
            serde_json::json!({"interval": 5, "stopCondition": "stop-at", "stopTime": "25:00"}),
        )
        .unwrap();
        assert!(SessionOptions::from_request(&req, None).is_err());
        let req: StartIntervalometer =
            serde_json::from_value(serde_json::json!({"interval": 40, "bulb": 45})).unwrap();
        assert!(SessionOptions::from_request(&req, None).is_err());
    }

    fn sun(event: &str, offset_minutes: f64) -> TimeSpec {
        TimeSpec::Sun(SunRef {
            event: event.into(),
            offset_minutes,
        })
    }

    fn ms(iso: &str) -> i64 {
        crate::util::parse_iso8601(iso).unwrap()
    }

    #[test]
    fn sun_times_resolve_to_the_next_occurrence_with_their_offset() {
        // Seattle, 7 Dec 2026: sunset 16:17:55 PST = 00:17:55Z on the 8th (PyEphem, see
        // sun.rs); sunrise on the 8th about 07:44:36 PST.
        let seattle = Some(Location::new(47.6062, -122.3321).unwrap());
        let noon = ms("2026-12-07T20:00:00Z");
        let t = resolve_start_at(&sun("sunset", -30.0), noon, 0, seattle).unwrap();
        assert!((t - ms("2026-12-07T23:47:55Z")).abs() <= 2_000, "{t}");
        // Asked after today's sunset −30 min: tomorrow's.
        let late = ms("2026-12-08T00:00:00Z");
        let t2 = resolve_start_at(&sun("sunset", -30.0), late, 0, seattle).unwrap();
        assert!((t2 - t - 86_400_000).abs() < 120_000, "{}", t2 - t);
        // Stop at sunrise + 15: the first one after the start.
        let stop = resolve_stop_at(&sun("sunrise", 15.0), t, seattle)
            .unwrap()
            .unwrap();
        assert!(
            (stop - ms("2026-12-08T15:59:36Z")).abs() <= 60_000,
            "{stop}"
        );
        // "HH:MM" stays a time of day; ISO must be after the start.
        assert_eq!(
            resolve_stop_at(&TimeSpec::Clock("06:00".into()), t, None),
            Ok(None)
        );
        let e =
            resolve_stop_at(&TimeSpec::Clock("2026-12-07T10:00:00Z".into()), t, None).unwrap_err();
        assert!(e.message.contains("not after the start"), "{}", e.message);
    }

    #[test]
    fn sun_times_refuse_clearly_without_a_place_or_an_event() {
        let noon = ms("2026-12-21T11:00:00Z");
        let e = resolve_start_at(&sun("sunset", 0.0), noon, 0, None).unwrap_err();
        assert_eq!(e.code, crate::protocol::ErrorCode::MissingParameter);
        assert!(
            e.message.starts_with("startAt is relative to the sun"),
            "{}",
            e.message
        );
        let here = Some(Location::new(47.0, 8.0).unwrap());
        let e = resolve_start_at(&sun("dusk", 0.0), noon, 0, here).unwrap_err();
        assert!(e.message.contains("civilDusk"), "{}", e.message);
        assert!(resolve_start_at(&sun("sunset", 800.0), noon, 0, here).is_err());
        // Longyearbyen at the winter solstice: no sunset for weeks (polar night).
        let svalbard = Some(Location::new(78.2232, 15.6267).unwrap());
        let e = resolve_start_at(&sun("sunset", 0.0), noon, 0, svalbard).unwrap_err();
        assert!(e.message.contains("polar night"), "{}", e.message);
        assert!(e.message.contains("next on 2027-02"), "{}", e.message);
        // Nautical dusk does happen there that day.
        assert!(resolve_start_at(
            &sun("nauticalDusk", 0.0),
            ms("2026-12-21T05:00:00Z"),
            0,
            svalbard
        )
        .is_ok());
    }

    #[test]
    fn sun_stop_round_trips_through_the_journal_form() {
        let req: StartIntervalometer = serde_json::from_value(serde_json::json!({
            "interval": 10,
            "startAt": {"event": "sunset", "offsetMinutes": -60},
            "stopAt": {"event": "nauticalDusk"}
        }))
        .unwrap();
        let o = SessionOptions::from_request(&req, Some(1_000_000)).unwrap();
        assert_eq!(o.stop, StopCondition::Until(1_000_000));
        let w = o.to_wire();
        assert_eq!(w.stop_condition, "stop-at");
        assert_eq!(SessionOptions::from_wire(&w).unwrap(), o);
        let bad: Result<StartIntervalometer, _> =
            serde_json::from_value(serde_json::json!({"interval": 10, "startAt": 5}));
        assert!(bad.is_err());
        let bad: Result<StartIntervalometer, _> = serde_json::from_value(
            serde_json::json!({"interval": 10, "startAt": {"event": "sunset", "offset": 5}}),
        );
        assert!(bad.unwrap_err().to_string().contains("offset"));
    }

    #[test]
    fn auto_ramp_moves_the_aperture_only_between_both_limits() {
        let loc = Location::new(47.0, 8.0).unwrap();
        let ladders = Ladders {
            tv: vec!["1/4000".into(), "1/125".into(), "1\"".into()],
            iso: vec!["100".into(), "6400".into()],
            av: vec!["f2.8".into(), "f5.6".into(), "f11".into(), "f22".into()],
        };
        let spec = |min: Option<&str>, max: Option<&str>| crate::protocol::AutoRampSpec {
            min_av: min.map(str::to_string),
            max_av: max.map(str::to_string),
            ..Default::default()
        };
        let build = |s| AutoPlan::build(&s, loc, "f5.6".into(), ladders.clone());
        // Without limits the aperture stays.
        assert_eq!(build(spec(None, None)).unwrap().limits().av_ramp, None);
        // Both limits: the chooser may move it between them.
        let plan = build(spec(Some("f2.8"), Some("f11"))).unwrap();
        assert_eq!(plan.limits().av_ramp, Some((2.8, 11.0)));
        // A bright day past 1/4000 at ISO 100 stops down, but not beyond f11.
        let (s, _) = crate::exposure::choose(-30.0, &plan.limits()).unwrap();
        assert_eq!(s.av, "f11");
        // One limit, reversed limits or a non-aperture: a clear error.
        for bad in [
            spec(Some("f2.8"), None),
            spec(Some("f11"), Some("f2.8")),
            spec(Some("bulb"), Some("f11")),
        ] {
            let e = build(bad).unwrap_err();
            assert!(e.message.contains("minAv"), "{}", e.message);
        }
    }
}
