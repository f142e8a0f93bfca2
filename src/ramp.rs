//! Exposure that follows the light: keyframed ramps and automatic exposure ramping.
//! Pure arithmetic on wall-clock labels and stops (see [`crate::exposure`]); the session
//! machine asks what the next frame's settings should be and feeds back what each frame
//! measured. No I/O, no clock.
//!
//! ```text
//!   keyframes (time → Tv/ISO/Av/interval)        auto: frames (exposure X, brightness b)
//!            │ interpolate in stops                      │ scene s = log2 b − X
//!            ▼                                           ▼ trend over recent frames
//!        planned X(t) ──────────────┐           predicted scene ŝ(t)
//!                                   ▼                    │
//!                     want = planned X, or target(sun) − ŝ(t)
//!                                   │ at most max_step from the last frame, hysteresis
//!                                   ▼
//!                      settings = exposure::choose(want, limits)
//! ```
//!
//! Brightness is the mean linear luminance of a frame (0 = black, 1 = white), measured on
//! its thumbnail. The target is the brightness a frame should have: `day_target` by day,
//! darker by `night_bias_ev` stops at night (night should look like night), moving linearly
//! with the sun's altitude between `day_altitude` and `night_altitude`.

use crate::exposure::{choose, Clip, Limits, Settings, THIRD};

/// Mean linear luminance (0..1) of 8-bit sRGB-encoded luma samples: what the frame recorded.
pub fn mean_linear_luma(samples: &[u8]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    static TABLE: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0f32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            let c = i as f64 / 255.0;
            *v = if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            } as f32;
        }
        t
    });
    let sum: f64 = samples.iter().map(|&s| f64::from(table[s as usize])).sum();
    Some(sum / samples.len() as f64)
}

/// Share of samples at or above `level` (8-bit): highlight clipping.
pub fn clipped_share(samples: &[u8], level: u8) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().filter(|&&s| s >= level).count() as f64 / samples.len() as f64
}

// ---------------------------------------------------------------------------------------------
// Keyframes

/// Values a keyframe sets (stops for Tv/ISO/Av as in [`crate::exposure`]; interval seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyValues {
    pub tv: Option<f64>,
    pub iso: Option<f64>,
    pub av: Option<f64>,
    pub interval: Option<f64>,
}

/// A keyframe resolved to a wall-clock instant (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyframe {
    pub at_ms: i64,
    pub values: KeyValues,
}

/// Keyframes sorted by time; each parameter is interpolated between the keyframes that set it
/// (in stops for Tv/ISO/Av, linearly in time for the interval) and held before the first and
/// after the last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keyframes(Vec<Keyframe>);

impl Keyframes {
    pub fn new(mut frames: Vec<Keyframe>) -> Keyframes {
        frames.sort_by_key(|k| k.at_ms);
        Keyframes(frames)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The planned values at `t_ms`.
    pub fn at(&self, t_ms: i64) -> KeyValues {
        KeyValues {
            tv: self.param(t_ms, |v| v.tv),
            iso: self.param(t_ms, |v| v.iso),
            av: self.param(t_ms, |v| v.av),
            interval: self.param(t_ms, |v| v.interval),
        }
    }

    fn param(&self, t: i64, get: impl Fn(&KeyValues) -> Option<f64>) -> Option<f64> {
        let mut before: Option<(i64, f64)> = None;
        for k in &self.0 {
            let Some(v) = get(&k.values) else { continue };
            if k.at_ms <= t {
                before = Some((k.at_ms, v));
                continue;
            }
            return Some(match before {
                None => v,
                Some((t0, v0)) => {
                    let f = (t - t0) as f64 / (k.at_ms - t0).max(1) as f64;
                    v0 + (v - v0) * f
                }
            });
        }
        before.map(|(_, v)| v)
    }
}

// ---------------------------------------------------------------------------------------------
// Automatic exposure

/// How automatic ramping behaves (the user's knobs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoOptions {
    /// Brightness of a daytime frame (mean linear luminance; 0.18 ≈ a mid-grey scene).
    pub day_target: f64,
    /// How many stops darker the night target is (positive: darker).
    pub night_bias_ev: f64,
    /// Sun altitude (degrees) at and above which the day target applies...
    pub day_altitude: f64,
    /// ...and at and below which the night target applies.
    pub night_altitude: f64,
    /// Largest exposure change between consecutive frames (stops).
    pub max_step_ev: f64,
    /// Frames of history the scene trend is fitted over.
    pub window: usize,
}

impl Default for AutoOptions {
    fn default() -> Self {
        AutoOptions {
            day_target: 0.18,
            night_bias_ev: 2.0,
            day_altitude: 0.0,
            night_altitude: -12.0,
            max_step_ev: THIRD,
            window: 12,
        }
    }
}

impl AutoOptions {
    /// log2 of the target brightness at sun altitude `alt` (degrees; `None`: day).
    pub fn target_log2(&self, alt: Option<f64>) -> f64 {
        let day = self.day_target.max(1e-6).log2();
        let Some(alt) = alt else { return day };
        let (hi, lo) = (self.day_altitude, self.night_altitude);
        let f = if hi <= lo {
            f64::from(u8::from(alt < hi))
        } else {
            ((hi - alt) / (hi - lo)).clamp(0.0, 1.0)
        };
        day - self.night_bias_ev * f
    }
}

/// One measured frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub at_ms: i64,
    /// The exposure the frame was taken with (stops).
    pub exposure: f64,
    /// Its measured brightness (mean linear luminance, > 0).
    pub brightness: f64,
}

/// What the controller decided for the next frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub settings: Settings,
    /// The exposure those settings give (stops).
    pub exposure: f64,
    /// The exposure the light asked for (before the step limit and the camera's steps).
    pub wanted: f64,
    /// The light is beyond what the limits allow.
    pub clip: Option<Clip>,
}

/// The automatic-ramp controller: remembers recent frames, predicts the scene brightness at
/// the next frame's time from their trend (so a sunset's steady darkening does not lag), and
/// steers toward the target one bounded step at a time.
#[derive(Debug, Clone)]
pub struct AutoRamp {
    opts: AutoOptions,
    frames: std::collections::VecDeque<Frame>,
}

impl AutoRamp {
    pub fn new(opts: AutoOptions) -> AutoRamp {
        AutoRamp {
            opts,
            frames: std::collections::VecDeque::new(),
        }
    }

    pub fn options(&self) -> &AutoOptions {
        &self.opts
    }

    /// Records what a frame measured. Non-positive or non-finite brightness is ignored (a
    /// black thumbnail says nothing about how dark the scene is).
    pub fn observe(&mut self, f: Frame) {
        if !(f.brightness.is_finite() && f.brightness > 0.0 && f.exposure.is_finite()) {
            return;
        }
        if self.frames.len() >= self.opts.window.max(2) {
            self.frames.pop_front();
        }
        self.frames.push_back(f);
    }

    /// The scene's log-brightness (log2 b − X) predicted at `t_ms`: a least-squares line
    /// through the recent frames, or their mean when there are too few to fit a slope.
    pub fn predicted_scene(&self, t_ms: i64) -> Option<f64> {
        let n = self.frames.len();
        if n == 0 {
            return None;
        }
        let t0 = self.frames[0].at_ms;
        let pts: Vec<(f64, f64)> = self
            .frames
            .iter()
            .map(|f| {
                (
                    (f.at_ms - t0) as f64 / 1000.0,
                    f.brightness.log2() - f.exposure,
                )
            })
            .collect();
        let mean_x = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
        let mean_y = pts.iter().map(|p| p.1).sum::<f64>() / n as f64;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        if n < 3 || sxx < 1e-9 {
            return Some(mean_y);
        }
        let sxy: f64 = pts.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let slope = sxy / sxx;
        let x = (t_ms - t0) as f64 / 1000.0;
        Some(mean_y + slope * (x - mean_x))
    }

    /// Settings for the frame at `t_ms` with the sun at `sun_alt`, from `current` (the
    /// exposure of the last frame). With no frame measured yet, the current settings stay.
    pub fn decide(
        &self,
        t_ms: i64,
        sun_alt: Option<f64>,
        current: f64,
        limits: &Limits,
    ) -> Option<Decision> {
        let scene = self.predicted_scene(t_ms);
        let wanted = match scene {
            Some(s) => self.opts.target_log2(sun_alt) - s,
            None => current,
        };
        step_toward(wanted, current, self.opts.max_step_ev, limits)
    }
}

/// The settings for `wanted`, moving at most `max_step` from `current` (stops), with a
/// hysteresis so that noise around a setting's boundary does not flip it back and forth.
pub fn step_toward(wanted: f64, current: f64, max_step: f64, limits: &Limits) -> Option<Decision> {
    let delta = wanted - current;
    // Within half a step (plus a margin) the camera cannot do better: stay.
    let aim = if delta.abs() <= THIRD / 2.0 + 0.05 {
        current
    } else {
        current + delta.clamp(-max_step, max_step)
    };
    let (settings, clip) = choose(aim, limits)?;
    let mut exposure = settings.exposure()?;
    let mut settings = settings;
    // The camera's steps may overshoot the limit (a 1/3-stop ladder and a 0.2-stop limit):
    // then stay rather than jump.
    if (exposure - current).abs() > max_step + 1e-6 {
        if let Some((s, _)) = choose(current, limits) {
            if let Some(x) = s.exposure() {
                settings = s;
                exposure = x;
            }
        }
    }
    let clip = clip.or_else(|| {
        // Reachable in principle but held back by the step limit is not clipping.
        let (_, c) = choose(wanted, limits)?;
        c
    });
    Some(Decision {
        settings,
        exposure,
        wanted,
        clip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn limits(max_tv: f64) -> Limits {
        Limits {
            tv_ability: list(&[
                "30\"", "25\"", "20\"", "15\"", "13\"", "10\"", "8\"", "6\"", "5\"", "4\"", "3\"2",
                "2\"5", "2\"", "1\"6", "1\"3", "1\"", "0\"8", "0\"6", "0\"5", "0\"4", "0\"3",
                "1/4", "1/5", "1/6", "1/8", "1/10", "1/13", "1/15", "1/20", "1/25", "1/30", "1/40",
                "1/50", "1/60", "1/80", "1/100", "1/125", "1/160", "1/200", "1/250", "1/320",
                "1/400", "1/500", "1/640", "1/800", "1/1000", "1/1250", "1/1600", "1/2000",
                "1/2500", "1/3200", "1/4000",
            ]),
            av_ability: list(&["f2.8", "f4.0", "f5.6", "f8.0", "f11"]),
            iso_ability: list(&[
                "100", "125", "160", "200", "250", "320", "400", "500", "640", "800", "1000",
                "1250", "1600", "2000", "2500", "3200", "4000", "5000", "6400",
            ]),
            max_tv_secs: max_tv,
            min_tv_secs: 0.0,
            min_iso: 100.0,
            max_iso: 6400.0,
            av: "f2.8".into(),
            av_ramp: None,
        }
    }

    #[test]
    fn linear_luma_of_black_white_and_mid_grey() {
        assert_eq!(mean_linear_luma(&[0; 10]), Some(0.0));
        assert!((mean_linear_luma(&[255; 10]).unwrap() - 1.0).abs() < 1e-6);
        // sRGB 118 ≈ 18 % grey.
        assert!((mean_linear_luma(&[118]).unwrap() - 0.18).abs() < 0.01);
        assert_eq!(mean_linear_luma(&[]), None);
        assert_eq!(clipped_share(&[255, 255, 10, 0], 250), 0.5);
    }

    #[test]
    fn keyframes_interpolate_in_stops_and_hold_outside() {
        let k = Keyframes::new(vec![
            Keyframe {
                at_ms: 10_000,
                values: KeyValues {
                    tv: Some(-7.0),
                    interval: Some(5.0),
                    ..KeyValues::default()
                },
            },
            Keyframe {
                at_ms: 0,
                values: KeyValues {
                    iso: Some(0.0),
                    ..KeyValues::default()
                },
            },
            Keyframe {
                at_ms: 20_000,
                values: KeyValues {
                    tv: Some(-1.0),
                    iso: Some(6.0),
                    interval: Some(15.0),
                    ..KeyValues::default()
                },
            },
        ]);
        let mid = k.at(15_000);
        assert_eq!(mid.tv, Some(-4.0));
        assert_eq!(mid.iso, Some(4.5));
        assert_eq!(mid.interval, Some(10.0));
        assert_eq!(mid.av, None);
        assert_eq!(k.at(-5).tv, Some(-7.0), "held before the first");
        assert_eq!(k.at(99_000).iso, Some(6.0), "held after the last");
    }

    #[test]
    fn the_target_darkens_with_the_sun() {
        let o = AutoOptions::default();
        let day = o.target_log2(Some(10.0));
        assert_eq!(day, o.day_target.log2());
        assert_eq!(o.target_log2(None), day);
        assert!((o.target_log2(Some(-6.0)) - (day - 1.0)).abs() < 1e-9);
        assert!((o.target_log2(Some(-30.0)) - (day - 2.0)).abs() < 1e-9);
    }

    /// A scene that darkens steadily (a sunset's ~0.1 EV/min) followed frame by frame: the
    /// error stays within a third of a stop and no step exceeds the limit.
    #[test]
    fn a_steady_sunset_is_followed_within_a_third_of_a_stop() {
        let l = limits(9.0);
        let o = AutoOptions {
            night_bias_ev: 0.0,
            ..AutoOptions::default()
        };
        let mut ramp = AutoRamp::new(o);
        let interval_ms = 10_000;
        let scene_at = |t: i64| 0.5 - 0.1 * t as f64 / 60_000.0; // log2 of light at X = 0
        let mut x = choose(o.target_log2(None) - scene_at(0), &l)
            .unwrap()
            .0
            .exposure()
            .unwrap();
        let mut worst: f64 = 0.0;
        let mut max_step: f64 = 0.0;
        for k in 0..360 {
            let t = k * interval_ms;
            let b = 2f64.powf(scene_at(t) + x);
            let err = (b.log2() - o.target_log2(None)).abs();
            if k > 3 {
                worst = worst.max(err);
            }
            ramp.observe(Frame {
                at_ms: t,
                exposure: x,
                brightness: b,
            });
            let d = ramp.decide(t + interval_ms, None, x, &l).unwrap();
            max_step = max_step.max((d.exposure - x).abs());
            x = d.exposure;
        }
        assert!(worst <= THIRD + 1e-9, "worst error {worst}");
        assert!(max_step <= THIRD + 1e-9, "max step {max_step}");
    }

    #[test]
    fn noise_does_not_flip_settings_back_and_forth() {
        let l = limits(9.0);
        let mut ramp = AutoRamp::new(AutoOptions::default());
        let x = -5.0;
        let mut rng = 12345u64;
        let mut changes = 0;
        let mut cur = x;
        for k in 0..200 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((rng >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1; // ±0.05 EV
            let b = 2f64.powf(AutoOptions::default().target_log2(None) + noise + (cur - x));
            ramp.observe(Frame {
                at_ms: k * 5000,
                exposure: cur,
                brightness: b,
            });
            let d = ramp.decide((k + 1) * 5000, None, cur, &l).unwrap();
            if (d.exposure - cur).abs() > 1e-9 {
                changes += 1;
            }
            cur = d.exposure;
        }
        assert!(changes <= 1, "{changes} changes on a steady scene");
    }

    #[test]
    fn out_of_reach_light_is_reported_as_clipping() {
        let l = limits(1.0);
        let ramp = {
            let mut r = AutoRamp::new(AutoOptions::default());
            r.observe(Frame {
                at_ms: 0,
                exposure: 0.0,
                brightness: 1e-6,
            });
            r
        };
        let d = ramp.decide(1000, None, 0.0, &l).unwrap();
        assert!(matches!(d.clip, Some(Clip::Dark(_))), "{d:?}");
        assert!(d.exposure - 0.0 <= THIRD + 1e-9);
    }
}
