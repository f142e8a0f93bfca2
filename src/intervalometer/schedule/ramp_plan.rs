//! Ramps as planned at the start: the camera's value ladders, keyframes resolved to settings
//! per frame ([`RampPlan`]), and auto-ramp's limits ([`AutoPlan`]).

use super::*;

// ---------------------------------------------------------------------------------------------
// Keyframed ramps

/// Most keyframes a session takes.
pub const MAX_KEYFRAMES: usize = 64;

/// The settings a frame was shot with (CCAPI values; `None` where unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av: Option<String>,
}

impl FrameSettings {
    /// Exposure in stops (`log2 t + log2 ISO/100 − 2 log2 N`), when all three are known.
    pub fn exposure_ev(&self) -> Option<f64> {
        Some(
            tv_stops(self.tv.as_deref()?)? + iso_stops(self.iso.as_deref()?)?
                - av_stops(self.av.as_deref()?)?,
        )
    }

    /// The (key, value) pairs of `target` that differ from `self`.
    pub fn changes_to(&self, target: &FrameSettings) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, want, have) in [
            ("tv", &target.tv, &self.tv),
            ("iso", &target.iso, &self.iso),
            ("av", &target.av, &self.av),
        ] {
            if let Some(w) = want {
                if have.as_ref() != Some(w) {
                    out.push((key.to_string(), w.clone()));
                }
            }
        }
        out
    }

    /// Takes applied (key, value) pairs.
    pub fn apply(&mut self, changes: &[(String, String)]) {
        for (k, v) in changes {
            match k.as_str() {
                "tv" => self.tv = Some(v.clone()),
                "iso" => self.iso = Some(v.clone()),
                "av" => self.av = Some(v.clone()),
                _ => {}
            }
        }
    }
}

/// The values the camera offers (its `ability` lists), restricted to what a ramp may use:
/// timed shutter speeds that fit the interval, numeric ISOs, every aperture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ladders {
    pub tv: Vec<String>,
    pub iso: Vec<String>,
    pub av: Vec<String>,
}

impl Ladders {
    /// From a CCAPI `shooting/settings` object; `max_tv_secs` is the longest exposure allowed.
    pub fn from_abilities(settings: &serde_json::Value, max_tv_secs: f64) -> Ladders {
        let list = |key: &str, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
            settings[key]["ability"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .filter(|v| keep(v))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ladders {
            tv: list("tv", &|v| {
                tv_seconds(v).is_some_and(|t| t <= max_tv_secs + 1e-9)
            }),
            iso: list("iso", &|v| iso_stops(v).is_some()),
            av: list("av", &|v| av_stops(v).is_some()),
        }
    }
}

/// The ladder value nearest to `want` stops (ties: the first, i.e. the ability's order).
fn nearest(ladder: &[String], stops: fn(&str) -> Option<f64>, want: f64) -> Option<String> {
    ladder
        .iter()
        .filter_map(|v| stops(v).map(|s| ((s - want).abs(), v)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.clone())
}

/// A session's keyframes, resolved to instants, and the camera values they may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RampPlan {
    /// As given, with `atMs` set.
    pub keyframes: Vec<KeyframeSpec>,
    pub ladders: Ladders,
}

impl RampPlan {
    /// Resolves and checks `specs`: each keyframe at `at` (ISO-8601; "HH:MM", the first such
    /// time after the start; a sun event, the first one after 12 h before the start) or at
    /// `elapsedSeconds` after the first frame (`origin_ms`); Tv no longer than
    /// `max_tv_secs` (the interval minus the camera's write time).
    pub fn build(
        specs: &[KeyframeSpec],
        origin_ms: i64,
        tz_offset_secs: i32,
        loc: Option<Location>,
        ladders: Ladders,
        max_tv_secs: f64,
    ) -> Result<RampPlan, ApiError> {
        if specs.is_empty() || specs.len() > MAX_KEYFRAMES {
            return Err(ApiError::invalid(format!(
                "keyframes: give 1 to {MAX_KEYFRAMES} keyframes"
            )));
        }
        let mut out = Vec::with_capacity(specs.len());
        for (i, k) in specs.iter().enumerate() {
            let n = i + 1;
            let bad = |what: String| ApiError::invalid(format!("keyframe {n}: {what}"));
            if k.interval.is_some() {
                return Err(bad(
                    "interval keyframes are not supported yet (the session keeps one interval)"
                        .into(),
                ));
            }
            if k.tv.is_none() && k.iso.is_none() && k.av.is_none() {
                return Err(bad("sets none of tv, iso, av".into()));
            }
            let at_ms = match (&k.at, k.elapsed_seconds) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(bad("give either at or elapsedSeconds".into()))
                }
                (None, Some(s)) if s.is_finite() && (0.0..=30.0 * 86_400.0).contains(&s) => {
                    origin_ms + (s * 1000.0).round() as i64
                }
                (None, Some(_)) => return Err(bad("elapsedSeconds must be 0 to 30 days".into())),
                (Some(TimeSpec::Clock(c)), None) => match parse_hhmm(c) {
                    Some((h, m)) => next_occurrence(origin_ms - 1, tz_offset_secs, h, m),
                    None => crate::util::parse_iso8601(c.trim()).ok_or_else(|| {
                        bad("at must be ISO-8601, \"HH:MM\" or {event, offsetMinutes}".into())
                    })?,
                },
                (Some(TimeSpec::Sun(r)), None) => {
                    resolve_sun(r, origin_ms - 12 * 3_600_000, loc, &format!("keyframe {n}"))?
                }
            };
            if let Some(tv) = &k.tv {
                let secs = tv_seconds(tv)
                    .ok_or_else(|| bad(format!("tv {tv:?} is not a timed shutter speed")))?;
                if secs > max_tv_secs + 1e-9 {
                    return Err(bad(format!(
                        "tv {} does not fit the interval: the longest exposure is {} (the interval minus {CAMERA_WRITE_MARGIN_SECS} s for the camera to write)",
                        exposure_label(secs),
                        exposure_label(max_tv_secs)
                    )));
                }
            }
            if let Some(iso) = &k.iso {
                iso_stops(iso).ok_or_else(|| bad(format!("iso {iso:?} is not a number")))?;
            }
            if let Some(av) = &k.av {
                av_stops(av)
                    .ok_or_else(|| bad(format!("av {av:?} is not an aperture like f5.6")))?;
            }
            out.push(KeyframeSpec {
                at_ms: Some(at_ms),
                ..k.clone()
            });
        }
        for (key, ladder) in [
            ("tv", &ladders.tv),
            ("iso", &ladders.iso),
            ("av", &ladders.av),
        ] {
            let used = out.iter().any(|k| match key {
                "tv" => k.tv.is_some(),
                "iso" => k.iso.is_some(),
                _ => k.av.is_some(),
            });
            if used && ladder.is_empty() {
                return Err(ApiError::invalid(format!(
                    "keyframes set {key}, but the camera offers no {key} value to use (check the mode dial: M for tv and av)"
                )));
            }
        }
        out.sort_by_key(|k| k.at_ms);
        Ok(RampPlan {
            keyframes: out,
            ladders,
        })
    }

    fn curve(&self) -> Keyframes {
        Keyframes::new(
            self.keyframes
                .iter()
                .filter_map(|k| {
                    Some(Keyframe {
                        at_ms: k.at_ms?,
                        values: KeyValues {
                            tv: k.tv.as_deref().and_then(tv_stops),
                            iso: k.iso.as_deref().and_then(iso_stops),
                            av: k.av.as_deref().and_then(av_stops),
                            interval: None,
                        },
                    })
                })
                .collect(),
        )
    }

    /// The settings planned for a frame at `t_ms`: each ramped parameter interpolated in stops
    /// and snapped to the nearest value the camera offers.
    pub fn target(&self, t_ms: i64) -> FrameSettings {
        let v = self.curve().at(t_ms);
        FrameSettings {
            tv: v.tv.and_then(|x| nearest(&self.ladders.tv, tv_stops, x)),
            iso: v.iso.and_then(|x| nearest(&self.ladders.iso, iso_stops, x)),
            av: v.av.and_then(|x| nearest(&self.ladders.av, av_stops, x)),
        }
    }

    /// The longest Tv any keyframe sets (seconds).
    pub fn max_tv_secs(&self) -> Option<f64> {
        self.keyframes
            .iter()
            .filter_map(|k| k.tv.as_deref().and_then(tv_seconds))
            .reduce(f64::max)
    }
}

/// Automatic ramping: where (for the sun's altitude), the user's knobs, the camera's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoPlan {
    pub location: Location,
    pub day_target: f64,
    pub night_bias_ev: f64,
    pub max_step_ev: f64,
    pub max_iso: f64,
    /// The aperture kept (unless `av_range` lets it move).
    pub av: String,
    /// The f-numbers the aperture may move between (widest, narrowest), when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av_range: Option<(f64, f64)>,
    pub ladders: Ladders,
}

impl AutoPlan {
    /// Checks the knobs (defaults where unset).
    pub fn build(
        spec: &crate::protocol::AutoRampSpec,
        location: Location,
        av: String,
        ladders: Ladders,
    ) -> Result<AutoPlan, ApiError> {
        let d = crate::ramp::AutoOptions::default();
        let mut plan = AutoPlan {
            location,
            day_target: spec.day_target.unwrap_or(d.day_target),
            night_bias_ev: spec.night_bias_ev.unwrap_or(d.night_bias_ev),
            max_step_ev: spec.max_step_ev.unwrap_or(d.max_step_ev),
            max_iso: spec.max_iso.unwrap_or(6400.0),
            av,
            av_range: None,
            ladders,
        };
        match (spec.min_av.as_deref(), spec.max_av.as_deref()) {
            (None, None) => {}
            (Some(lo), Some(hi)) => {
                let (Some(a), Some(b)) = (av_number(lo), av_number(hi)) else {
                    return Err(ApiError::invalid(
                        "autoRamp: minAv and maxAv are apertures like \"f2.8\" and \"f11\"",
                    ));
                };
                if a > b {
                    return Err(ApiError::invalid(
                        "autoRamp: minAv is the widest aperture (the smaller f-number), maxAv the narrowest",
                    ));
                }
                plan.av_range = Some((a, b));
            }
            _ => {
                return Err(ApiError::invalid(
                    "autoRamp: give both minAv and maxAv to let the aperture move",
                ))
            }
        }
        if !(0.001..=0.9).contains(&plan.day_target)
            || !(-2.0..=6.0).contains(&plan.night_bias_ev)
            || !(0.1..=3.0).contains(&plan.max_step_ev)
            || !(100.0..=409_600.0).contains(&plan.max_iso)
        {
            return Err(ApiError::invalid(
                "autoRamp: dayTarget 0.001–0.9, nightBiasEv −2–6, maxStepEv 0.1–3, maxIso 100–409600",
            ));
        }
        if plan.ladders.tv.is_empty() || plan.ladders.iso.is_empty() || av_stops(&plan.av).is_none()
        {
            return Err(ApiError::invalid(
                "autoRamp needs the camera in M with a timed shutter speed, a numeric ISO and a known aperture",
            ));
        }
        Ok(plan)
    }

    pub fn options(&self) -> crate::ramp::AutoOptions {
        crate::ramp::AutoOptions {
            day_target: self.day_target,
            night_bias_ev: self.night_bias_ev,
            max_step_ev: self.max_step_ev,
            ..crate::ramp::AutoOptions::default()
        }
    }

    /// The chooser's limits (the Tv ladder already stops at the interval minus the write time).
    pub fn limits(&self) -> crate::exposure::Limits {
        crate::exposure::Limits {
            tv_ability: self.ladders.tv.clone(),
            av_ability: self.ladders.av.clone(),
            iso_ability: self.ladders.iso.clone(),
            max_tv_secs: f64::MAX,
            min_tv_secs: 0.0,
            min_iso: 100.0,
            max_iso: self.max_iso,
            av: self.av.clone(),
            av_ramp: self.av_range,
        }
    }
}
