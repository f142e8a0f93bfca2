//! Exposure arithmetic in stops: Canon's CCAPI shutter (`tv`), aperture (`av`) and `iso`
//! strings ↔ values, the exposure those settings give, and choosing the settings closest to
//! a wanted exposure within limits. Pure functions; no I/O, no clock.
//!
//! The unit is the stop (EV). A setting triple's **exposure** is
//! `X = log2(t) + log2(ISO / 100) − 2·log2(N)`: one stop more doubles the light the frame
//! records. A scene's brightness is measured the same way, so "this frame came out 0.7 EV
//! dark" means "add 0.7 to X".
//!
//! Canon marks settings with rounded numbers (1/125 is really 2^-7 s, f/5.6 is 2^2.5): every
//! marked value is snapped to the nearest third of a stop, the camera's own step, so ladders
//! are evenly spaced and `X` sums exactly.

/// One third of a stop: Canon's default setting increment.
pub const THIRD: f64 = 1.0 / 3.0;

/// Snaps `stops` to the nearest third of a stop.
pub fn snap_third(stops: f64) -> f64 {
    (stops * 3.0).round() / 3.0
}

/// Seconds of a CCAPI shutter speed: `"1/125"`, `"0\"5"` (0.5 s), `"3\"2"`, `"30\""`.
/// `None` for `"bulb"` and anything not understood.
pub fn tv_seconds(tv: &str) -> Option<f64> {
    crate::camera::ccapi::tv_seconds(tv)
}

/// Stops of a shutter speed (log2 of its seconds), snapped to thirds.
pub fn tv_stops(tv: &str) -> Option<f64> {
    tv_seconds(tv).map(|s| snap_third(s.log2()))
}

/// The f-number of a CCAPI aperture: `"f5.6"`, `"f11"`, `"f4.0"`.
pub fn av_number(av: &str) -> Option<f64> {
    let n: f64 = av.trim().strip_prefix('f')?.parse().ok()?;
    (n.is_finite() && (0.5..=128.0).contains(&n)).then_some(n)
}

/// Stops of an aperture (2·log2 N: how much less light than f/1), snapped to thirds.
pub fn av_stops(av: &str) -> Option<f64> {
    av_number(av).map(|n| snap_third(2.0 * n.log2()))
}

/// The ISO of a CCAPI value (`"auto"` and anything else not numeric: `None`).
pub fn iso_number(iso: &str) -> Option<f64> {
    let n: f64 = iso.trim().parse().ok()?;
    (n.is_finite() && (1.0..=10_000_000.0).contains(&n)).then_some(n)
}

/// Stops of an ISO above 100, snapped to thirds.
pub fn iso_stops(iso: &str) -> Option<f64> {
    iso_number(iso).map(|n| snap_third((n / 100.0).log2()))
}

/// A setting triple as CCAPI values, with its parsed stops.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tv: String,
    pub av: String,
    pub iso: String,
}

impl Settings {
    /// The exposure `X` in stops, if all three are understood.
    pub fn exposure(&self) -> Option<f64> {
        Some(tv_stops(&self.tv)? + iso_stops(&self.iso)? - av_stops(&self.av)?)
    }
}

/// What the chooser may use. Ladders are the camera's `ability` lists (any order; values it
/// cannot parse are ignored), limits are inclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub tv_ability: Vec<String>,
    pub av_ability: Vec<String>,
    pub iso_ability: Vec<String>,
    /// Longest shutter speed allowed (seconds): the interval minus the camera's write time.
    pub max_tv_secs: f64,
    /// Shortest shutter speed wanted (seconds); `0` for no limit.
    pub min_tv_secs: f64,
    pub min_iso: f64,
    pub max_iso: f64,
    /// Aperture the session keeps unless `av_ramp` allows moving it.
    pub av: String,
    /// Move the aperture too, within these f-numbers (day end of a holy grail).
    pub av_ramp: Option<(f64, f64)>,
}

/// A ladder of usable values sorted by stops, ascending. `keep` sees the marked value.
fn ladder(
    values: &[String],
    stops: fn(&str) -> Option<f64>,
    keep: impl Fn(&str) -> bool,
) -> Vec<(f64, String)> {
    let mut l: Vec<(f64, String)> = values
        .iter()
        .filter(|v| keep(v))
        .filter_map(|v| stops(v).map(|s| (s, v.clone())))
        .collect();
    l.sort_by(|a, b| a.0.total_cmp(&b.0));
    l.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9);
    l
}

/// Why no setting can give the wanted exposure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// Darker than the darkest setting allowed: the frame will be too bright by this much.
    Bright(f64),
    /// Brighter than the brightest setting allowed: the frame will be too dark by this much.
    Dark(f64),
}

/// The settings closest to exposure `want`, preferring (from bright to dark light) the
/// shortest shutter first: going darker, the shutter lengthens up to `max_tv_secs`, then ISO
/// rises to `max_iso`, then (if allowed) the aperture opens; going brighter it is the reverse.
/// Returns the settings and, when `want` is out of reach, by how much.
pub fn choose(want: f64, limits: &Limits) -> Option<(Settings, Option<Clip>)> {
    // Limits apply to the marked values (a 20" limit keeps 20", which is 2^4.33 s).
    let tvs = ladder(&limits.tv_ability, tv_stops, |v| {
        tv_seconds(v).is_some_and(|t| t <= limits.max_tv_secs && t >= limits.min_tv_secs)
    });
    let isos = ladder(&limits.iso_ability, iso_stops, |v| {
        iso_number(v).is_some_and(|n| n >= limits.min_iso && n <= limits.max_iso)
    });
    let fixed_av = av_stops(&limits.av);
    let avs = match limits.av_ramp {
        Some((lo, hi)) => ladder(&limits.av_ability, av_stops, |v| {
            av_number(v).is_some_and(|n| n >= lo.min(hi) && n <= hi.max(lo))
        }),
        None => match fixed_av {
            Some(s) => vec![(s, limits.av.clone())],
            None => Vec::new(),
        },
    };
    if tvs.is_empty() || isos.is_empty() || avs.is_empty() {
        return None;
    }
    // Brightest light first: the smallest aperture (largest stops) with the base ISO and the
    // shortest shutter is the darkest exposure; walk up the order of preference.
    let av_dark = &avs[avs.len() - 1];
    let darkest = tvs[0].0 + isos[0].0 - av_dark.0;
    let brightest = tvs[tvs.len() - 1].0 + isos[isos.len() - 1].0 - avs[0].0;
    let target = want.clamp(darkest, brightest);
    let clip = if want < darkest - 1e-9 {
        Some(Clip::Bright(darkest - want))
    } else if want > brightest + 1e-9 {
        Some(Clip::Dark(want - brightest))
    } else {
        None
    };
    // The widest aperture that can still get dark enough with the shortest shutter at base
    // ISO: it stops down only in light too bright for everything else.
    let (min_tv, base_iso) = (tvs[0].0, isos[0].0);
    let av = avs
        .iter()
        .find(|a| min_tv + base_iso - a.0 <= target + 1e-9)
        .unwrap_or(av_dark);
    let max_tv = tvs[tvs.len() - 1].0;
    // Then ISO, as low as the shutter allows.
    let mut iso = &isos[0];
    for i in &isos {
        iso = i;
        if max_tv + i.0 - av.0 >= target - 1e-9 {
            break;
        }
    }
    // Then the shutter nearest to what is left.
    let need = target - iso.0 + av.0;
    let tv = tvs
        .iter()
        .min_by(|a, b| (a.0 - need).abs().total_cmp(&(b.0 - need).abs()))
        .unwrap_or(&tvs[0]);
    Some((
        Settings {
            tv: tv.1.clone(),
            av: av.1.clone(),
            iso: iso.1.clone(),
        },
        clip,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon_tv() -> Vec<String> {
        [
            "30\"", "25\"", "20\"", "15\"", "13\"", "10\"", "8\"", "6\"", "5\"", "4\"", "3\"2",
            "2\"5", "2\"", "1\"6", "1\"3", "1\"", "0\"8", "0\"6", "0\"5", "0\"4", "0\"3", "1/4",
            "1/5", "1/6", "1/8", "1/10", "1/13", "1/15", "1/20", "1/25", "1/30", "1/40", "1/50",
            "1/60", "1/80", "1/100", "1/125", "1/160", "1/200", "1/250", "1/320", "1/400", "1/500",
            "1/640", "1/800", "1/1000", "1/1250", "1/1600", "1/2000", "1/2500", "1/3200", "1/4000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn canon_iso() -> Vec<String> {
        [
            "auto", "100", "125", "160", "200", "250", "320", "400", "500", "640", "800", "1000",
            "1250", "1600", "2000", "2500", "3200", "4000", "5000", "6400", "8000", "10000",
            "12800",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn canon_av() -> Vec<String> {
        [
            "f2.8", "f3.2", "f3.5", "f4.0", "f4.5", "f5.0", "f5.6", "f6.3", "f7.1", "f8.0", "f9.0",
            "f10", "f11", "f13", "f14", "f16",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn limits(max_tv: f64) -> Limits {
        Limits {
            tv_ability: canon_tv(),
            av_ability: canon_av(),
            iso_ability: canon_iso(),
            max_tv_secs: max_tv,
            min_tv_secs: 0.0,
            min_iso: 100.0,
            max_iso: 6400.0,
            av: "f2.8".into(),
            av_ramp: None,
        }
    }

    #[test]
    fn marked_values_snap_to_thirds() {
        assert_eq!(tv_stops("1/125"), Some(-7.0));
        assert_eq!(tv_stops("30\""), Some(snap_third(30f64.log2())));
        assert!((tv_stops("1/100").unwrap() - (-7.0 + THIRD)).abs() < 1e-9);
        assert_eq!(av_stops("f5.6"), Some(5.0));
        assert_eq!(av_stops("f4.0"), Some(4.0));
        assert!((av_stops("f11").unwrap() - 7.0).abs() < 1e-9);
        assert_eq!(iso_stops("100"), Some(0.0));
        assert_eq!(iso_stops("6400"), Some(6.0));
        assert!((iso_stops("125").unwrap() - THIRD).abs() < 1e-9);
        for bad in ["auto", "", "f", "fx", "f0", "-5", "bulb"] {
            assert_eq!(
                iso_stops(bad).or(av_stops(bad)).or(tv_stops(bad)),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn exposure_adds_up() {
        let s = Settings {
            tv: "1/125".into(),
            av: "f5.6".into(),
            iso: "400".into(),
        };
        assert_eq!(s.exposure(), Some(-7.0 + 2.0 - 5.0));
    }

    #[test]
    fn darker_light_lengthens_the_shutter_then_raises_iso() {
        let l = limits(20.0);
        // Bright: base ISO, short shutter.
        let (s, clip) = choose(-7.0 + 0.0 - 3.0, &l).unwrap();
        assert_eq!(clip, None);
        assert_eq!(s.iso, "100");
        assert_eq!(s.exposure().map(snap_third), Some(-10.0));
        // Night: shutter at its 20" limit (≈4.33 stops) before ISO rises.
        let want = 4.0 + 3.0 - 3.0; // 4 stops of shutter + 3 of ISO − f/2.8
        let (s, clip) = choose(snap_third(20f64.log2()) + 3.0 - 3.0, &l).unwrap();
        assert_eq!(clip, None);
        assert_eq!(s.tv, "20\"");
        assert_eq!(s.iso, "800");
        let (s, _) = choose(want, &l).unwrap();
        assert!(
            (s.exposure().unwrap() - want).abs() <= THIRD / 2.0 + 1e-9,
            "{s:?}"
        );
    }

    #[test]
    fn every_reachable_exposure_is_met_within_a_sixth_of_a_stop() {
        let l = limits(15.0);
        let mut want = -16.0;
        while want < 10.0 {
            let (s, clip) = choose(want, &l).unwrap();
            let got = s.exposure().unwrap();
            match clip {
                None => assert!((got - want).abs() <= THIRD / 2.0 + 1e-9, "{want}: {s:?}"),
                Some(Clip::Bright(d)) => assert!((want + d - got).abs() < 1e-9),
                Some(Clip::Dark(d)) => assert!((want - d - got).abs() < 1e-9),
            }
            want += 0.05;
        }
    }

    #[test]
    fn out_of_reach_says_by_how_much() {
        let l = limits(1.0);
        let (s, clip) = choose(20.0, &l).unwrap();
        assert_eq!((s.tv.as_str(), s.iso.as_str()), ("1\"", "6400"));
        assert!(
            matches!(clip, Some(Clip::Dark(d)) if (d - (20.0 - (0.0 + 6.0 - 3.0))).abs() < 1e-9)
        );
        let (_, clip) = choose(-40.0, &l).unwrap();
        assert!(matches!(clip, Some(Clip::Bright(_))));
    }

    #[test]
    fn aperture_moves_only_when_allowed_and_last() {
        let mut l = limits(1.0);
        l.av_ramp = Some((2.8, 11.0));
        // Very bright day: stop down beyond 1/4000 at ISO 100.
        let (s, clip) = choose(-12.0 - 7.0, &l).unwrap();
        assert_eq!(clip, None);
        assert_eq!(s.iso, "100");
        assert_eq!(s.tv, "1/4000");
        assert_ne!(s.av, "f2.8");
        // Dim light: wide open first.
        let (s, _) = choose(-3.0, &l).unwrap();
        assert_eq!(s.av, "f2.8");
    }
}
