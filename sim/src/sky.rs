//! The simulated sky's light: the sun's altitude at a place and instant, and the scene
//! brightness (EV at ISO 100) that follows from it.
//!
//! Deliberately simple and independent of the product's own sun code (`src/sun.rs`): the
//! low-precision solar coordinates of the Astronomical Almanac (good to about 0.01° for
//! 1950–2050, far better than a brightness model needs), and a piecewise-linear table from
//! altitude to EV.
//!
//! ```text
//!   altitude (deg)  -90 … -18   -12   -6    -3    0    5    10   20   40   90
//!   scene EV          night    -1.0  3.5   7.0  10   12   13   14   15   15.3
//!                   (knob, default -3: a dark site, no moon)
//! ```

/// The sun's altitude above the horizon in degrees (refraction ignored) at `utc_ms` (Unix
/// ms) seen from `lat_deg` north, `lon_deg` east.
pub fn sun_altitude_deg(utc_ms: i64, lat_deg: f64, lon_deg: f64) -> f64 {
    // Days since J2000.0 (2000-01-01 12:00 TT; the TT−UT difference is irrelevant here).
    let d = utc_ms as f64 / 86_400_000.0 - 10_957.5;
    let rad = std::f64::consts::PI / 180.0;
    let g = (357.529 + 0.985_600_28 * d).rem_euclid(360.0) * rad; // mean anomaly
    let q = (280.459 + 0.985_647_36 * d).rem_euclid(360.0); // mean longitude, deg
    let l = (q + 1.915 * g.sin() + 0.020 * (2.0 * g).sin()) * rad; // ecliptic longitude
    let e = (23.439 - 0.000_000_36 * d) * rad; // obliquity
    let ra = (e.cos() * l.sin()).atan2(l.cos());
    let dec = (e.sin() * l.sin()).asin();
    // Greenwich mean sidereal time (hours) → local hour angle.
    let gmst_h = (18.697_374_558 + 24.065_709_824_419_08 * d).rem_euclid(24.0);
    let ha = gmst_h * 15.0 * rad + lon_deg * rad - ra;
    let lat = lat_deg * rad;
    let s = lat.sin() * dec.sin() + lat.cos() * dec.cos() * ha.cos();
    s.clamp(-1.0, 1.0).asin() / rad
}

/// Scene EV (ISO 100) for a sun altitude: daylight ≈ 14–15, sunset ≈ 10, the end of civil
/// twilight ≈ 3.5, and `night_ev` once the sun is 18° down.
pub fn scene_ev_for_altitude(alt_deg: f64, night_ev: f64) -> f64 {
    const TABLE: [(f64, f64); 10] = [
        (-12.0, -1.0),
        (-6.0, 3.5),
        (-3.0, 7.0),
        (0.0, 10.0),
        (5.0, 12.0),
        (10.0, 13.0),
        (20.0, 14.0),
        (40.0, 15.0),
        (90.0, 15.3),
        (f64::INFINITY, 15.3),
    ];
    if !alt_deg.is_finite() {
        return night_ev;
    }
    // Below -12° fade linearly to the night value at -18° (astronomical twilight's end),
    // whatever that value is (a bright-sky site can be set above -1).
    if alt_deg <= -12.0 {
        let t = ((alt_deg + 18.0) / 6.0).clamp(0.0, 1.0);
        return night_ev + (TABLE[0].1.max(night_ev) - night_ev) * t;
    }
    for w in TABLE.windows(2) {
        let ((a0, e0), (a1, e1)) = (w[0], w[1]);
        if alt_deg <= a1 {
            if !a1.is_finite() {
                return e0;
            }
            return e0 + (e1 - e0) * (alt_deg - a0) / (a1 - a0);
        }
    }
    TABLE[TABLE.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        (crate::time::days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60) * 1000
    }

    #[test]
    fn noon_altitude_matches_the_textbook_value() {
        // June solstice 2026, Greenwich, 12:02 UTC (apparent noon): 90 − 51.48 + 23.44.
        let alt = sun_altitude_deg(utc(2026, 6, 21, 12, 2), 51.48, 0.0);
        assert!((alt - 61.96).abs() < 0.3, "{alt}");
        // December solstice at 47° N, 8° E, local apparent noon ≈ 11:26 UTC: 90 − 47 − 23.44.
        let alt = sun_altitude_deg(utc(2026, 12, 21, 11, 26), 47.0, 8.0);
        assert!((alt - 19.56).abs() < 0.3, "{alt}");
        // Midnight there: far below the horizon.
        assert!(sun_altitude_deg(utc(2026, 12, 21, 23, 26), 47.0, 8.0) < -60.0);
    }

    #[test]
    fn ev_follows_altitude_monotonically_from_night_to_day() {
        let mut last = f64::NEG_INFINITY;
        for tenth in -900..=900 {
            let ev = scene_ev_for_altitude(f64::from(tenth) / 10.0, -3.0);
            assert!(ev >= last - 1e-9, "not monotonic at {tenth}");
            last = ev;
        }
        assert_eq!(scene_ev_for_altitude(-30.0, -3.0), -3.0);
        assert_eq!(scene_ev_for_altitude(0.0, -3.0), 10.0);
        assert!((14.0..=15.3).contains(&scene_ev_for_altitude(30.0, -3.0)));
        assert_eq!(scene_ev_for_altitude(f64::NAN, -3.0), -3.0);
    }
}
