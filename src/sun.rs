//! Sun position, sunrise/sunset and twilight times, offline and pure (issue 12, item 1).
//!
//! Formulas: the NOAA Solar Calculator (NOAA Global Monitoring Laboratory, "General Solar
//! Position Calculations" and its spreadsheet), which implements the low-precision solar
//! theory of Jean Meeus, *Astronomical Algorithms* (2nd ed., ch. 25 and 28): mean longitude and
//! anomaly of the Sun, equation of the centre, apparent longitude, obliquity, then declination
//! and the equation of time. Time is UT throughout (ΔT ≈ 70 s moves the Sun by 3″: negligible).
//! Accuracy of the position is about 0.01° for 1950–2050, degrading slowly outside.
//!
//! * **Altitude** ([`sun_position`], [`solar_altitude_deg`]) is the *apparent* altitude of the
//!   Sun's centre: geometric altitude plus NOAA's standard-atmosphere refraction approximation
//!   (about 0.57° at the horizon, 0 above 85°). Azimuth is degrees clockwise from true north.
//!   Both include the Sun's parallax (8.8″), i.e. they are topocentric.
//! * **Events** are found on the *geometric* altitude of the centre against a threshold that
//!   already includes refraction, as almanacs do: sunrise/sunset −0.833° (34′ refraction + 16′
//!   semidiameter: the upper limb on a sea-level horizon), civil −6°, nautical −12°,
//!   astronomical −18°. No elevation or horizon dip correction.
//! * **Which day** ([`sun_times`]): a date means the *solar day* whose solar noon (upper transit)
//!   falls on that civil date in local mean solar time (UTC + lon/15 h). Its dawns are the
//!   upward crossings between the preceding solar midnight (lower transit) and that noon; its
//!   dusks the downward crossings between the noon and the next solar midnight. So a
//!   photographer at 150°E asking for 2026-12-07 gets that local day's events, although its
//!   dawns and sunrise fall on 2026-12-06 in UTC. An event that does not happen in its half of the solar
//!   day is `None` with a reason: [`NoEvent::AlwaysAbove`] (polar day, or a twilight that
//!   never ends) or [`NoEvent::AlwaysBelow`] (polar night, or a twilight never reached).
//! * **How**: solar noon and midnight from the hour angle (three fixed-point steps on the
//!   equation of time); each crossing by bisection on the full altitude model to under a
//!   second, then rounded to the second. No one-shot hour-angle formula, so it stays exact where
//!   the Sun grazes the threshold at high latitude.
//!
//! Measured (tests below): within 28 s of printed USNO minutes (which carry ±30 s of rounding)
//! and within 3 s of PyEphem for every event tested from the equator to 78°, except where the
//! Sun grazes the threshold near solar midnight, where a few thousandths of a degree move the
//! event by tens of seconds (48 s from a printed USNO minute at Tromsø in May).
//!
//! Nothing here reads a clock or panics: bad input gives NaN, `None` or an error.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;

use crate::util::{civil_from_days, days_from_civil};

// ---------------------------------------------------------------------------------------------
// Location, date and errors

/// A place on Earth: latitude north-positive, longitude east-positive, in degrees (WGS-84 as a
/// phone's GPS gives it). Build it with [`Location::new`]; deserializing validates too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLocation")]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Deserialize)]
struct RawLocation {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawLocation> for Location {
    type Error = SunError;
    fn try_from(r: RawLocation) -> Result<Self, SunError> {
        Location::new(r.lat, r.lon)
    }
}

impl Location {
    /// Latitude in [-90, 90], longitude in [-180, 180], both finite.
    pub fn new(lat: f64, lon: f64) -> Result<Self, SunError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(SunError::Latitude(lat));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(SunError::Longitude(lon));
        }
        Ok(Location { lat, lon })
    }

    /// Whether the fields are in range (they are public, so a struct literal can skip `new`).
    pub fn is_valid(&self) -> bool {
        Location::new(self.lat, self.lon).is_ok()
    }
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SunError {
    Latitude(f64),
    Longitude(f64),
    /// Not a real `YYYY-MM-DD` date in years 1..=9999.
    Date(String),
    /// Not one of the [`SunEvent`] wire names.
    Event(String),
}

impl fmt::Display for SunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SunError::Latitude(v) => {
                write!(
                    f,
                    "latitude must be a number from -90 to 90 degrees, got {v}"
                )
            }
            SunError::Longitude(v) => {
                write!(
                    f,
                    "longitude must be a number from -180 to 180 degrees, got {v}"
                )
            }
            SunError::Date(s) => write!(f, "date must be a real date as YYYY-MM-DD, got {s:?}"),
            SunError::Event(s) => write!(
                f,
                "unknown sun event {s:?} (expected one of {})",
                SunEvent::ALL.map(SunEvent::as_str).join(", ")
            ),
        }
    }
}

impl std::error::Error for SunError {}

/// A calendar date: (year, month 1..=12, day 1..=31).
pub type Date = (i32, u32, u32);

/// Parses `YYYY-MM-DD` (the REST `date=` parameter), refusing impossible dates.
pub fn parse_date(s: &str) -> Result<Date, SunError> {
    let bad = || SunError::Date(s.to_string());
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, m, d) = (
        digits(0..4).ok_or_else(bad)?,
        digits(5..7).ok_or_else(bad)?,
        digits(8..10).ok_or_else(bad)?,
    );
    let date = (y as i32, m, d);
    if day_number(date).is_none() {
        return Err(bad());
    }
    Ok(date)
}

/// `2026-12-07`
pub fn format_date((y, m, d): Date) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 for a real date in years 1..=9999, else `None`. The year range keeps
/// all arithmetic far from overflow and matches the four-digit ISO-8601 form.
fn day_number((y, m, d): Date) -> Option<i64> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(i64::from(y), m, d);
    // An impossible day (Feb 30) normalises to another date: refuse it.
    (civil_from_days(days) == (i64::from(y), m, d)).then_some(days)
}

// ---------------------------------------------------------------------------------------------
// Events

/// A sun event, with the camelCase wire names of the REST/WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SunEvent {
    Sunrise,
    Sunset,
    SolarNoon,
    CivilDawn,
    CivilDusk,
    NauticalDawn,
    NauticalDusk,
    AstronomicalDawn,
    AstronomicalDusk,
}

impl SunEvent {
    pub const ALL: [SunEvent; 9] = [
        SunEvent::AstronomicalDawn,
        SunEvent::NauticalDawn,
        SunEvent::CivilDawn,
        SunEvent::Sunrise,
        SunEvent::SolarNoon,
        SunEvent::Sunset,
        SunEvent::CivilDusk,
        SunEvent::NauticalDusk,
        SunEvent::AstronomicalDusk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SunEvent::Sunrise => "sunrise",
            SunEvent::Sunset => "sunset",
            SunEvent::SolarNoon => "solarNoon",
            SunEvent::CivilDawn => "civilDawn",
            SunEvent::CivilDusk => "civilDusk",
            SunEvent::NauticalDawn => "nauticalDawn",
            SunEvent::NauticalDusk => "nauticalDusk",
            SunEvent::AstronomicalDawn => "astronomicalDawn",
            SunEvent::AstronomicalDusk => "astronomicalDusk",
        }
    }

    pub fn parse(s: &str) -> Option<SunEvent> {
        SunEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The geometric altitude of the Sun's centre, in degrees, at which the event happens
    /// (`None` for solar noon, which is the upper meridian transit).
    pub fn threshold_deg(self) -> Option<f64> {
        match self {
            SunEvent::Sunrise | SunEvent::Sunset => Some(-0.833),
            SunEvent::CivilDawn | SunEvent::CivilDusk => Some(-6.0),
            SunEvent::NauticalDawn | SunEvent::NauticalDusk => Some(-12.0),
            SunEvent::AstronomicalDawn | SunEvent::AstronomicalDusk => Some(-18.0),
            SunEvent::SolarNoon => None,
        }
    }

    /// Dawns and sunrise: the Sun climbing through the threshold, before solar noon.
    pub fn is_rising(self) -> bool {
        matches!(
            self,
            SunEvent::Sunrise
                | SunEvent::CivilDawn
                | SunEvent::NauticalDawn
                | SunEvent::AstronomicalDawn
        )
    }
}

impl std::str::FromStr for SunEvent {
    type Err = SunError;
    fn from_str(s: &str) -> Result<Self, SunError> {
        SunEvent::parse(s).ok_or_else(|| SunError::Event(s.to_string()))
    }
}

impl fmt::Display for SunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event does not happen on a given solar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NoEvent {
    /// The Sun stays above the threshold all that half-day: polar day for sunrise/sunset, a
    /// twilight that never ends (white nights) for dawn/dusk.
    AlwaysAbove,
    /// The Sun stays below the threshold: polar night, or a twilight level never reached.
    AlwaysBelow,
    /// The location or date was out of range (only reachable by skipping [`Location::new`] or
    /// [`parse_date`]).
    InvalidInput,
}

impl NoEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NoEvent::AlwaysAbove => "alwaysAbove",
            NoEvent::AlwaysBelow => "alwaysBelow",
            NoEvent::InvalidInput => "invalidInput",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Solar position (NOAA / Meeus)

/// Where the Sun is in the sky.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SunPosition {
    /// Apparent altitude of the centre (refraction included), degrees.
    pub altitude_deg: f64,
    /// Geometric (topocentric, no refraction) altitude of the centre, degrees.
    pub geometric_altitude_deg: f64,
    /// Degrees clockwise from true north, in [0, 360).
    pub azimuth_deg: f64,
}

/// The Sun's position at `unix_ms` (UTC milliseconds) seen from `loc`. NaN fields for an
/// invalid location.
pub fn sun_position(unix_ms: i64, loc: Location) -> SunPosition {
    if !loc.is_valid() {
        return SunPosition {
            altitude_deg: f64::NAN,
            geometric_altitude_deg: f64::NAN,
            azimuth_deg: f64::NAN,
        };
    }
    let secs = unix_ms as f64 / 1000.0;
    let s = solar_coords(secs);
    let h = hour_angle_deg(secs, s.eot_min, loc.lon).to_radians();
    let (phi, dec) = (loc.lat.to_radians(), s.decl_rad);
    let geo = geometric_altitude(phi, dec, h);
    let az = (h
        .sin()
        .atan2(h.cos() * phi.sin() - dec.tan() * phi.cos())
        .to_degrees()
        + 180.0)
        .rem_euclid(360.0);
    SunPosition {
        altitude_deg: geo + refraction_deg(geo),
        geometric_altitude_deg: geo,
        azimuth_deg: az,
    }
}

/// Apparent altitude of the Sun's centre in degrees (see [`sun_position`]).
pub fn solar_altitude_deg(unix_ms: i64, loc: Location) -> f64 {
    sun_position(unix_ms, loc).altitude_deg
}

struct SolarCoords {
    decl_rad: f64,
    /// Equation of time: apparent minus mean solar time, minutes.
    eot_min: f64,
}

/// Declination and equation of time at `secs` (Unix seconds, UT), NOAA's formulas.
fn solar_coords(secs: f64) -> SolarCoords {
    let jd = secs / 86_400.0 + 2_440_587.5;
    let t = (jd - 2_451_545.0) / 36_525.0; // Julian centuries from J2000.0
    let l0 = (280.46646 + t * (36000.76983 + t * 0.0003032)).rem_euclid(360.0);
    let m = (357.52911 + t * (35999.05029 - 0.0001537 * t)).to_radians();
    let e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t);
    let c = m.sin() * (1.914602 - t * (0.004817 + 0.000014 * t))
        + (2.0 * m).sin() * (0.019993 - 0.000101 * t)
        + (3.0 * m).sin() * 0.000289;
    // Nutation and aberration, shortened: longitude of the Moon's ascending node.
    let omega = (125.04 - 1934.136 * t).to_radians();
    let app_long = (l0 + c - 0.00569 - 0.00478 * omega.sin()).to_radians();
    let eps0 = 23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0;
    let eps = (eps0 + 0.00256 * omega.cos()).to_radians();
    let decl_rad = (eps.sin() * app_long.sin()).clamp(-1.0, 1.0).asin();
    let y = (eps / 2.0).tan().powi(2);
    let l0r = l0.to_radians();
    let eot_rad = y * (2.0 * l0r).sin() - 2.0 * e * m.sin()
        + 4.0 * e * y * m.sin() * (2.0 * l0r).cos()
        - 0.5 * y * y * (4.0 * l0r).sin()
        - 1.25 * e * e * (2.0 * m).sin();
    SolarCoords {
        decl_rad,
        eot_min: 4.0 * eot_rad.to_degrees(),
    }
}

/// Local hour angle of the Sun in degrees, (-180, 180]: 0 at solar noon, ±180 at solar
/// midnight. True solar time = UT + equation of time + 4 min per degree of east longitude.
fn hour_angle_deg(secs: f64, eot_min: f64, lon: f64) -> f64 {
    let ut_deg = secs.rem_euclid(86_400.0) / 240.0; // 240 s of time per degree
    wrap180(ut_deg + eot_min / 4.0 + lon - 180.0)
}

fn wrap180(deg: f64) -> f64 {
    let w = deg.rem_euclid(360.0);
    if w > 180.0 {
        w - 360.0
    } else {
        w
    }
}

/// Topocentric altitude without refraction, degrees, from latitude, declination and hour
/// angle (radians).
fn geometric_altitude(phi: f64, dec: f64, h: f64) -> f64 {
    // Rounding can push the sine a hair past ±1 at the poles; asin would give NaN.
    let geocentric = (phi.sin() * dec.sin() + phi.cos() * dec.cos() * h.cos())
        .clamp(-1.0, 1.0)
        .asin()
        .to_degrees();
    // The Sun's horizontal parallax, 8.794″: tiny, but where the Sun grazes a threshold near
    // solar midnight it moves the event by 10–20 s (measured against PyEphem and USNO).
    geocentric - SOLAR_PARALLAX_DEG * geocentric.to_radians().cos()
}

const SOLAR_PARALLAX_DEG: f64 = 8.794 / 3600.0;

/// NOAA's atmospheric refraction approximation, degrees, for a geometric altitude in degrees.
fn refraction_deg(alt: f64) -> f64 {
    let arcsec = if alt > 85.0 {
        0.0
    } else if alt > 5.0 {
        let t = alt.to_radians().tan();
        58.1 / t - 0.07 / t.powi(3) + 0.000086 / t.powi(5)
    } else if alt > -0.575 {
        1735.0 + alt * (-518.2 + alt * (103.4 + alt * (-12.79 + alt * 0.711)))
    } else {
        -20.772 / alt.to_radians().tan()
    };
    arcsec / 3600.0
}

fn geometric_altitude_at(secs: f64, loc: Location) -> f64 {
    let s = solar_coords(secs);
    let h = hour_angle_deg(secs, s.eot_min, loc.lon).to_radians();
    geometric_altitude(loc.lat.to_radians(), s.decl_rad, h)
}

// ---------------------------------------------------------------------------------------------
// Event times

/// The instant (Unix seconds) near `guess` when the hour angle is `target` degrees (0: solar
/// noon, 180: solar midnight). The guess is within the equation of time (±17 min) of it, and
/// the equation of time barely moves in that span, so three steps converge to microseconds.
fn transit(guess: f64, lon: f64, target: f64) -> f64 {
    let mut t = guess;
    for _ in 0..3 {
        let off = wrap180(hour_angle_deg(t, solar_coords(t).eot_min, lon) - target);
        t -= off * 240.0;
    }
    t
}

/// Solar noon of solar day `day` (days since 1970-01-01 in local mean time), Unix seconds.
fn solar_noon(day: i64, lon: f64) -> f64 {
    // 12:00 local mean time of that date, in UT.
    let mean_noon = day as f64 * 86_400.0 + 43_200.0 - lon * 240.0;
    transit(mean_noon, lon, 0.0)
}

/// One event of solar day `day`, in Unix seconds rounded to the second.
fn event_in_day(day: i64, event: SunEvent, loc: Location) -> Result<f64, NoEvent> {
    let noon = solar_noon(day, loc.lon);
    let Some(threshold) = event.threshold_deg() else {
        return Ok(noon.round());
    };
    let midnight_guess = if event.is_rising() {
        noon - 43_200.0
    } else {
        noon + 43_200.0
    };
    let midnight = transit(midnight_guess, loc.lon, 180.0);
    let f = |t: f64| geometric_altitude_at(t, loc) - threshold;
    let (at_noon, at_midnight) = (f(noon), f(midnight));
    if at_noon < 0.0 {
        return Err(NoEvent::AlwaysBelow);
    }
    if at_midnight >= 0.0 {
        return Err(NoEvent::AlwaysAbove);
    }
    // Bisection between midnight (below) and noon (at or above): it only needs the sign, so it
    // cannot diverge where the Sun grazes the threshold, and 17 halvings of 12 h reach < 1 s.
    let (mut below, mut above) = (midnight, noon);
    for _ in 0..40 {
        if (above - below).abs() < 0.5 {
            break;
        }
        let mid = 0.5 * (below + above);
        if f(mid) < 0.0 {
            below = mid;
        } else {
            above = mid;
        }
    }
    Ok((0.5 * (below + above)).round())
}

fn to_ms(secs: f64) -> i64 {
    // Event seconds are whole and within years 1..=9999, far inside i64 milliseconds.
    secs as i64 * 1000
}

/// The sun events of one date at one place (see the module doc for which solar day that is).
/// Times are Unix milliseconds (UTC), rounded to the second.
#[derive(Debug, Clone, PartialEq)]
pub struct SunTimes {
    pub date: Date,
    pub location: Location,
    pub astronomical_dawn: Option<i64>,
    pub nautical_dawn: Option<i64>,
    pub civil_dawn: Option<i64>,
    pub sunrise: Option<i64>,
    pub solar_noon: Option<i64>,
    pub sunset: Option<i64>,
    pub civil_dusk: Option<i64>,
    pub nautical_dusk: Option<i64>,
    pub astronomical_dusk: Option<i64>,
    /// Why each `None` above is `None`; `None` where the event exists.
    pub reasons: Reasons,
}

/// One reason per event, set exactly where the event's time is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reasons {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub astronomical_dawn: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nautical_dawn: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub civil_dawn: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunrise: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solar_noon: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub civil_dusk: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nautical_dusk: Option<NoEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub astronomical_dusk: Option<NoEvent>,
}

impl SunTimes {
    fn slots(&mut self, e: SunEvent) -> (&mut Option<i64>, &mut Option<NoEvent>) {
        let r = &mut self.reasons;
        match e {
            SunEvent::AstronomicalDawn => (&mut self.astronomical_dawn, &mut r.astronomical_dawn),
            SunEvent::NauticalDawn => (&mut self.nautical_dawn, &mut r.nautical_dawn),
            SunEvent::CivilDawn => (&mut self.civil_dawn, &mut r.civil_dawn),
            SunEvent::Sunrise => (&mut self.sunrise, &mut r.sunrise),
            SunEvent::SolarNoon => (&mut self.solar_noon, &mut r.solar_noon),
            SunEvent::Sunset => (&mut self.sunset, &mut r.sunset),
            SunEvent::CivilDusk => (&mut self.civil_dusk, &mut r.civil_dusk),
            SunEvent::NauticalDusk => (&mut self.nautical_dusk, &mut r.nautical_dusk),
            SunEvent::AstronomicalDusk => (&mut self.astronomical_dusk, &mut r.astronomical_dusk),
        }
    }

    /// The event's time (Unix ms) or why it does not happen.
    pub fn get(&self, e: SunEvent) -> Result<i64, NoEvent> {
        let r = &self.reasons;
        let (time, reason) = match e {
            SunEvent::AstronomicalDawn => (self.astronomical_dawn, r.astronomical_dawn),
            SunEvent::NauticalDawn => (self.nautical_dawn, r.nautical_dawn),
            SunEvent::CivilDawn => (self.civil_dawn, r.civil_dawn),
            SunEvent::Sunrise => (self.sunrise, r.sunrise),
            SunEvent::SolarNoon => (self.solar_noon, r.solar_noon),
            SunEvent::Sunset => (self.sunset, r.sunset),
            SunEvent::CivilDusk => (self.civil_dusk, r.civil_dusk),
            SunEvent::NauticalDusk => (self.nautical_dusk, r.nautical_dusk),
            SunEvent::AstronomicalDusk => (self.astronomical_dusk, r.astronomical_dusk),
        };
        time.ok_or(reason.unwrap_or(NoEvent::InvalidInput))
    }

    /// `{date, lat, lon, sunrise, sunset, solarNoon, civilDawn, …, astronomicalDusk, reasons}`:
    /// times as ISO-8601 UTC (`2026-12-07T16:12:00Z`) or null, and `reasons` naming why each
    /// null is null (`alwaysAbove`, `alwaysBelow`).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("date".into(), json!(format_date(self.date)));
        obj.insert("lat".into(), json!(self.location.lat));
        obj.insert("lon".into(), json!(self.location.lon));
        for e in SunEvent::ALL {
            let v = self.get(e).ok().map(iso8601_seconds);
            obj.insert(e.as_str().into(), json!(v));
        }
        obj.insert("reasons".into(), json!(self.reasons));
        Value::Object(obj)
    }
}

impl Serialize for SunTimes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// `2026-12-07T16:12:00Z`: whole seconds, which is all the precision these times have.
pub fn iso8601_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Sunrise, sunset, solar noon and the three twilights for `date` at `loc`: the solar day whose
/// solar noon falls on `date` in local mean solar time (see the module doc). An invalid date or
/// location gives all `None` with [`NoEvent::InvalidInput`].
pub fn sun_times(date: Date, loc: Location) -> SunTimes {
    let mut out = SunTimes {
        date,
        location: loc,
        astronomical_dawn: None,
        nautical_dawn: None,
        civil_dawn: None,
        sunrise: None,
        solar_noon: None,
        sunset: None,
        civil_dusk: None,
        nautical_dusk: None,
        astronomical_dusk: None,
        reasons: Reasons::default(),
    };
    let day = day_number(date).filter(|_| loc.is_valid());
    for e in SunEvent::ALL {
        let result = match day {
            Some(day) => event_in_day(day, e, loc).map(to_ms),
            None => Err(NoEvent::InvalidInput),
        };
        let (time, reason) = out.slots(e);
        match result {
            Ok(t) => *time = Some(t),
            Err(r) => *reason = Some(r),
        }
    }
    out
}

/// The first `event` strictly after `after_unix_ms` at `loc`, in Unix ms, searching about a
/// year ahead (long enough for any polar night to end); `None` if it does not happen in that
/// time or the input is invalid. For "start 30 min before sunset" when today's has passed.
pub fn next_event(after_unix_ms: i64, event: SunEvent, loc: Location) -> Option<i64> {
    if !loc.is_valid() {
        return None;
    }
    let first_day = day_number((1, 1, 1))?;
    let last_day = day_number((9999, 12, 31))?;
    // The local-mean-time date of `after`; solar day d's events lie within d ± ~12 h 17 min of
    // its noon, so the day before may still hold one that comes after `after`.
    let lmt_day = ((after_unix_ms as f64 / 1000.0 + loc.lon * 240.0) / 86_400.0).floor();
    if !(first_day as f64 + 1.0..=last_day as f64 - 370.0).contains(&lmt_day) {
        return None;
    }
    let start = lmt_day as i64 - 1;
    (start..=start + 368)
        .filter_map(|d| event_in_day(d, event, loc).ok().map(to_ms))
        .find(|&t| t > after_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Rng;
    use crate::util::parse_iso8601;

    /// The issue's bar: within one minute of the reference, asserted per event.
    const TOLERANCE_S: f64 = 60.0;

    fn at(lat: f64, lon: f64) -> Location {
        Location::new(lat, lon).expect("test location is valid")
    }

    fn ms(iso: &str) -> i64 {
        parse_iso8601(iso).unwrap_or_else(|| panic!("bad reference time {iso}"))
    }

    /// Checks `rows` of (event wire name, expected local time in ISO-8601 with its zone offset,
    /// or "alwaysAbove"/"alwaysBelow") against `sun_times`; returns the worst error in seconds.
    fn check(case: &str, date: Date, loc: Location, rows: &[(&str, &str)]) -> f64 {
        let times = sun_times(date, loc);
        let mut worst: f64 = 0.0;
        for &(name, want) in rows {
            let event = SunEvent::parse(name).expect("known event name");
            let got = times.get(event);
            match want {
                "alwaysAbove" => assert_eq!(got, Err(NoEvent::AlwaysAbove), "{case} {name}"),
                "alwaysBelow" => assert_eq!(got, Err(NoEvent::AlwaysBelow), "{case} {name}"),
                iso => {
                    let got = got.unwrap_or_else(|r| panic!("{case} {name}: {r:?}, want {iso}"));
                    let err = (got - ms(iso)) as f64 / 1000.0;
                    assert!(
                        err.abs() <= TOLERANCE_S,
                        "{case} {name}: got {}, want {iso} ({err:+} s)",
                        iso8601_seconds(got)
                    );
                    worst = worst.max(err.abs());
                }
            }
        }
        eprintln!("{case}: worst error {worst} s");
        worst
    }

    // -----------------------------------------------------------------------------------------
    // Published almanac values

    /// U.S. Naval Observatory, Astronomical Applications Dept., "Rise and Set for the Sun for
    /// 2008", Location W121°55′ N37°24′ (Cupertino, CA), Zone 8h West of Greenwich (PST all
    /// year). The line for day 01 as printed, Jan..Dec, rise and set as hhmm (copy of the
    /// table at khuang.blogspot.com/2008/09/sunrise-sunset-time-for-one-year.html).
    #[test]
    fn usno_mid_latitude_north_cupertino_2008() {
        const DAY_01: &str = "01  0722 1700  0711 1732  0638 1802  0552 1831  0512 1858  \
                              0448 1923  0451 1932  0512 1915  0539 1836  0604 1750  \
                              0633 1709  0704 1650";
        let loc = at(37.0 + 24.0 / 60.0, -(121.0 + 55.0 / 60.0));
        let fields: Vec<&str> = DAY_01.split_whitespace().skip(1).collect();
        assert_eq!(fields.len(), 24);
        let hhmm = |s: &str| format!("{}:{}:00-08:00", &s[..2], &s[2..]);
        let mut worst: f64 = 0.0;
        for month in 1..=12u32 {
            let (rise, set) = (
                fields[2 * month as usize - 2],
                fields[2 * month as usize - 1],
            );
            let day = format!("2008-{month:02}-01T");
            let rows = [
                ("sunrise", day.clone() + &hhmm(rise)),
                ("sunset", day + &hhmm(set)),
            ];
            let rows: Vec<(&str, &str)> = rows.iter().map(|(e, t)| (*e, t.as_str())).collect();
            worst = worst.max(check("Cupertino 2008", (2008, month, 1), loc, &rows));
        }
        eprintln!("Cupertino 2008, all months: worst error {worst} s");
    }

    /// USNO "Sun and Moon Data for One Day" for Tromsø (longitude E19.0, latitude N69.5),
    /// Universal Time + 1h, as quoted at answers.com/Q/How_many_hour_of_daylight_in_north_
    /// Norway_in_April: 1 April 2014: begin civil twilight 03:46, sunrise 04:50, sun transit
    /// 11:48, sunset 18:49, end civil twilight 19:53. 30 April 2014: sunrise 02:29, transit
    /// 11:41, sunset 20:58, and no twilight entries (civil twilight never ends: white nights).
    /// 17 May: rises 00:29, sets 23:06; 18 May: rises 00:13 and does not set again until
    /// 23:20 on 25 July (midnight sun).
    #[test]
    fn usno_near_polar_circle_tromso_2014_spring_white_nights_and_midnight_sun() {
        let loc = at(69.5, 19.0);
        let mut worst: f64 = 0.0;
        let mut run = |date, rows: &[(&str, &str)]| {
            worst = worst.max(check("Tromsø 2014", date, loc, rows));
        };
        run(
            (2014, 4, 1),
            &[
                ("civilDawn", "2014-04-01T03:46:00+01:00"),
                ("sunrise", "2014-04-01T04:50:00+01:00"),
                ("solarNoon", "2014-04-01T11:48:00+01:00"),
                ("sunset", "2014-04-01T18:49:00+01:00"),
                ("civilDusk", "2014-04-01T19:53:00+01:00"),
            ],
        );
        run(
            (2014, 4, 30),
            &[
                ("civilDawn", "alwaysAbove"),
                ("sunrise", "2014-04-30T02:29:00+01:00"),
                ("solarNoon", "2014-04-30T11:41:00+01:00"),
                ("sunset", "2014-04-30T20:58:00+01:00"),
                ("civilDusk", "alwaysAbove"),
            ],
        );
        run(
            (2014, 5, 17),
            &[
                ("sunrise", "2014-05-17T00:29:00+01:00"),
                ("sunset", "2014-05-17T23:06:00+01:00"),
            ],
        );
        run(
            (2014, 5, 18),
            &[
                ("sunrise", "2014-05-18T00:13:00+01:00"),
                ("sunset", "alwaysAbove"),
            ],
        );
        run(
            (2014, 6, 21),
            &[("sunrise", "alwaysAbove"), ("sunset", "alwaysAbove")],
        );
        run(
            (2014, 7, 25),
            &[
                ("sunrise", "alwaysAbove"),
                ("sunset", "2014-07-25T23:20:00+01:00"),
            ],
        );
        eprintln!("Tromsø 2014, all dates: worst error {worst} s");
    }

    // -----------------------------------------------------------------------------------------
    // Independent reference: PyEphem. No published tables with nautical and astronomical
    // twilight, or for these places, were reachable offline, so these come from PyEphem 4.2.1
    // (`pip install ephem`), which computes from its own VSOP87-based theory, not from this
    // module. Settings, USNO's conventions: pressure = 0 (no refraction model), Sun's centre
    // at −0°50′ for sunrise/sunset and at −6°/−12°/−18° for the twilights, sea level; the day
    // is the one whose transit follows local mean noon − 3 h. The same script reproduced all
    // 24 USNO Cupertino values above to the printed minute. Times are printed in the local
    // zone of the place, offset included.

    #[test]
    fn pyephem_equator_pontianak() {
        let loc = at(-0.0263, 109.3425);
        check(
            "Pontianak equinox",
            (2026, 3, 20),
            loc,
            &[
                ("astronomicalDawn", "2026-03-20T04:38:15+07:00"),
                ("nauticalDawn", "2026-03-20T05:02:14+07:00"),
                ("civilDawn", "2026-03-20T05:26:14+07:00"),
                ("sunrise", "2026-03-20T05:46:54+07:00"),
                ("solarNoon", "2026-03-20T11:50:09+07:00"),
                ("sunset", "2026-03-20T17:53:24+07:00"),
                ("civilDusk", "2026-03-20T18:14:03+07:00"),
                ("nauticalDusk", "2026-03-20T18:38:03+07:00"),
                ("astronomicalDusk", "2026-03-20T19:02:03+07:00"),
            ],
        );
        check(
            "Pontianak solstice",
            (2026, 6, 21),
            loc,
            &[
                ("astronomicalDawn", "2026-06-21T04:25:38+07:00"),
                ("nauticalDawn", "2026-06-21T04:51:59+07:00"),
                ("civilDawn", "2026-06-21T05:18:12+07:00"),
                ("sunrise", "2026-06-21T05:40:44+07:00"),
                ("solarNoon", "2026-06-21T11:44:22+07:00"),
                ("sunset", "2026-06-21T17:48:00+07:00"),
                ("civilDusk", "2026-06-21T18:10:33+07:00"),
                ("nauticalDusk", "2026-06-21T18:36:46+07:00"),
                ("astronomicalDusk", "2026-06-21T19:03:07+07:00"),
            ],
        );
    }

    #[test]
    fn pyephem_47_north_seattle_winter_and_summer() {
        let loc = at(47.6062, -122.3321);
        check(
            "Seattle December",
            (2026, 12, 7),
            loc,
            &[
                ("astronomicalDawn", "2026-12-07T05:51:43-08:00"),
                ("nauticalDawn", "2026-12-07T06:29:03-08:00"),
                ("civilDawn", "2026-12-07T07:08:03-08:00"),
                ("sunrise", "2026-12-07T07:43:41-08:00"),
                ("solarNoon", "2026-12-07T12:00:54-08:00"),
                ("sunset", "2026-12-07T16:17:55-08:00"),
                ("civilDusk", "2026-12-07T16:53:32-08:00"),
                ("nauticalDusk", "2026-12-07T17:32:31-08:00"),
                ("astronomicalDusk", "2026-12-07T18:09:51-08:00"),
            ],
        );
        // Astronomical dusk after local midnight still belongs to 21 June's solar day.
        check(
            "Seattle June",
            (2026, 6, 21),
            loc,
            &[
                ("astronomicalDawn", "2026-06-21T02:03:07-07:00"),
                ("nauticalDawn", "2026-06-21T03:34:23-07:00"),
                ("civilDawn", "2026-06-21T04:30:50-07:00"),
                ("sunrise", "2026-06-21T05:11:35-07:00"),
                ("solarNoon", "2026-06-21T13:11:13-07:00"),
                ("sunset", "2026-06-21T21:10:49-07:00"),
                ("civilDusk", "2026-06-21T21:51:34-07:00"),
                ("nauticalDusk", "2026-06-21T22:48:01-07:00"),
                ("astronomicalDusk", "2026-06-22T00:19:13-07:00"),
            ],
        );
    }

    /// Sydney, 150°E: the example of "which day". 7 December local is the solar day whose noon
    /// is 01:46 UTC on the 7th; its dawns fall on 6 December in UTC.
    #[test]
    fn pyephem_mid_latitude_south_sydney_local_day() {
        let loc = at(-33.8688, 151.2093);
        check(
            "Sydney",
            (2026, 12, 7),
            loc,
            &[
                ("astronomicalDawn", "2026-12-07T03:54:23+11:00"),
                ("nauticalDawn", "2026-12-07T04:32:51+11:00"),
                ("civilDawn", "2026-12-07T05:08:12+11:00"),
                ("sunrise", "2026-12-07T05:37:01+11:00"),
                ("solarNoon", "2026-12-07T12:46:25+11:00"),
                ("sunset", "2026-12-07T19:56:02+11:00"),
                ("civilDusk", "2026-12-07T20:24:53+11:00"),
                ("nauticalDusk", "2026-12-07T21:00:18+11:00"),
                ("astronomicalDusk", "2026-12-07T21:38:52+11:00"),
            ],
        );
        let sunrise = sun_times((2026, 12, 7), loc)
            .sunrise
            .expect("Sydney has a sunrise");
        assert!(iso8601_seconds(sunrise).starts_with("2026-12-06T18:37"));
    }

    #[test]
    fn pyephem_half_hour_zones_adelaide_and_st_johns() {
        let adelaide = at(-34.9285, 138.6007);
        check(
            "Adelaide January (ACDT, UTC+10:30)",
            (2026, 1, 15),
            adelaide,
            &[
                ("astronomicalDawn", "2026-01-15T04:34:51+10:30"),
                ("nauticalDawn", "2026-01-15T05:13:13+10:30"),
                ("civilDawn", "2026-01-15T05:48:33+10:30"),
                ("sunrise", "2026-01-15T06:17:22+10:30"),
                ("solarNoon", "2026-01-15T13:24:51+10:30"),
                ("sunset", "2026-01-15T20:31:57+10:30"),
                ("civilDusk", "2026-01-15T21:00:43+10:30"),
                ("nauticalDusk", "2026-01-15T21:35:56+10:30"),
                ("astronomicalDusk", "2026-01-15T22:14:09+10:30"),
            ],
        );
        check(
            "Adelaide June (ACST, UTC+9:30)",
            (2026, 6, 21),
            adelaide,
            &[
                ("astronomicalDawn", "2026-06-21T05:52:28+09:30"),
                ("nauticalDawn", "2026-06-21T06:23:19+09:30"),
                ("civilDawn", "2026-06-21T06:55:00+09:30"),
                ("sunrise", "2026-06-21T07:23:09+09:30"),
                ("solarNoon", "2026-06-21T12:17:19+09:30"),
                ("sunset", "2026-06-21T17:11:30+09:30"),
                ("civilDusk", "2026-06-21T17:39:39+09:30"),
                ("nauticalDusk", "2026-06-21T18:11:19+09:30"),
                ("astronomicalDusk", "2026-06-21T18:42:11+09:30"),
            ],
        );
        check(
            "St. John's June (NDT, UTC-2:30)",
            (2026, 6, 21),
            at(47.5615, -52.7126),
            &[
                ("astronomicalDawn", "2026-06-21T01:55:47-02:30"),
                ("nauticalDawn", "2026-06-21T03:26:16-02:30"),
                ("civilDawn", "2026-06-21T04:22:35-02:30"),
                ("sunrise", "2026-06-21T05:03:16-02:30"),
                ("solarNoon", "2026-06-21T13:02:41-02:30"),
                ("sunset", "2026-06-21T21:02:07-02:30"),
                ("civilDusk", "2026-06-21T21:42:48-02:30"),
                ("nauticalDusk", "2026-06-21T22:39:06-02:30"),
                ("astronomicalDusk", "2026-06-22T00:09:33-02:30"),
            ],
        );
    }

    /// 60°N at midsummer: the Sun dips to about −6.4°, so civil dusk happens but nautical and
    /// astronomical twilight never end.
    #[test]
    fn pyephem_helsinki_midsummer_twilight_never_ends() {
        check(
            "Helsinki June",
            (2026, 6, 21),
            at(60.1699, 24.9384),
            &[
                ("astronomicalDawn", "alwaysAbove"),
                ("nauticalDawn", "alwaysAbove"),
                ("civilDawn", "2026-06-21T02:01:43+03:00"),
                ("sunrise", "2026-06-21T03:54:02+03:00"),
                ("solarNoon", "2026-06-21T13:22:02+03:00"),
                ("sunset", "2026-06-21T22:50:03+03:00"),
                ("civilDusk", "2026-06-22T00:42:20+03:00"),
                ("nauticalDusk", "alwaysAbove"),
                ("astronomicalDusk", "alwaysAbove"),
            ],
        );
    }

    /// Polar night: no sunrise in Tromsø in late December, but twilight at noon; in
    /// Longyearbyen and McMurdo not even civil twilight, and nautical twilight only just
    /// (the Sun grazes −12°, the hardest case for a one-shot formula).
    #[test]
    fn pyephem_polar_night_tromso_longyearbyen_mcmurdo() {
        check(
            "Tromsø December",
            (2026, 12, 21),
            at(69.6492, 18.9553),
            &[
                ("astronomicalDawn", "2026-12-21T06:28:19+01:00"),
                ("nauticalDawn", "2026-12-21T07:46:43+01:00"),
                ("civilDawn", "2026-12-21T09:31:15+01:00"),
                ("sunrise", "alwaysBelow"),
                ("solarNoon", "2026-12-21T11:42:13+01:00"),
                ("sunset", "alwaysBelow"),
                ("civilDusk", "2026-12-21T13:53:09+01:00"),
                ("nauticalDusk", "2026-12-21T15:37:42+01:00"),
                ("astronomicalDusk", "2026-12-21T16:56:05+01:00"),
            ],
        );
        check(
            "Longyearbyen December",
            (2026, 12, 21),
            at(78.2232, 15.6267),
            &[
                ("astronomicalDawn", "2026-12-21T07:37:07+01:00"),
                ("nauticalDawn", "2026-12-21T10:58:28+01:00"),
                ("civilDawn", "alwaysBelow"),
                ("sunrise", "alwaysBelow"),
                ("solarNoon", "2026-12-21T11:55:32+01:00"),
                ("sunset", "alwaysBelow"),
                ("civilDusk", "alwaysBelow"),
                ("nauticalDusk", "2026-12-21T12:52:34+01:00"),
                ("astronomicalDusk", "2026-12-21T16:13:55+01:00"),
            ],
        );
        check(
            "McMurdo June",
            (2026, 6, 21),
            at(-77.8419, 166.6863),
            &[
                ("astronomicalDawn", "2026-06-21T08:32:33+12:00"),
                ("nauticalDawn", "2026-06-21T11:32:49+12:00"),
                ("civilDawn", "alwaysBelow"),
                ("sunrise", "alwaysBelow"),
                ("solarNoon", "2026-06-21T12:54:58+12:00"),
                ("sunset", "alwaysBelow"),
                ("civilDusk", "alwaysBelow"),
                ("nauticalDusk", "2026-06-21T14:17:06+12:00"),
                ("astronomicalDusk", "2026-06-21T17:17:22+12:00"),
            ],
        );
    }

    // -----------------------------------------------------------------------------------------
    // Position

    /// timeanddate.com "Day and Night World Map" gives the subsolar point (the Sun at the
    /// zenith) to the arc minute: 2013-10-05 06:40:00 UTC at 4°49′S 77°07′E, and 2013-03-20
    /// 11:01:00 UTC at 0°00′N 16°37′E. There the Sun must be overhead; 40° north along the same
    /// meridian it must stand due south at 50°.
    #[test]
    fn altitude_at_published_subsolar_points() {
        for (iso, lat, lon) in [
            (
                "2013-10-05T06:40:00Z",
                -(4.0 + 49.0 / 60.0),
                77.0 + 7.0 / 60.0,
            ),
            ("2013-03-20T11:01:00Z", 0.0, 16.0 + 37.0 / 60.0),
        ] {
            let t = ms(iso);
            let overhead = sun_position(t, at(lat, lon));
            assert!(overhead.altitude_deg > 89.95, "{iso}: {overhead:?}");
            let north = sun_position(t, at(lat + 40.0, lon));
            assert!(
                (north.geometric_altitude_deg - 50.0).abs() < 0.03,
                "{iso}: {north:?}"
            );
            assert!((north.azimuth_deg - 180.0).abs() < 0.1, "{iso}: {north:?}");
            // Apparent = geometric + refraction (about 0.8′ at 50°).
            let refraction = north.altitude_deg - north.geometric_altitude_deg;
            assert!((refraction - 0.0135).abs() < 0.001, "{refraction}");
        }
    }

    /// Geometric altitude and azimuth against PyEphem 4.2.1 (pressure = 0) at three instants.
    #[test]
    fn position_matches_pyephem() {
        for (iso, lat, lon, alt, az) in [
            (
                "2026-12-07T20:00:00Z",
                47.6062,
                -122.3321,
                19.718150,
                179.776549,
            ),
            (
                "2026-12-06T23:30:00Z",
                -33.8688,
                151.2093,
                58.087371,
                78.284056,
            ),
            (
                "2026-06-21T22:45:00Z",
                69.6492,
                18.9553,
                3.083697,
                359.748796,
            ),
        ] {
            let p = sun_position(ms(iso), at(lat, lon));
            assert!(
                (p.geometric_altitude_deg - alt).abs() < 0.01,
                "{iso}: {p:?}"
            );
            let daz = wrap180(p.azimuth_deg - az);
            assert!(daz.abs() < 0.02, "{iso}: {p:?}");
            assert!(solar_altitude_deg(ms(iso), at(lat, lon)) > p.geometric_altitude_deg);
        }
    }

    // -----------------------------------------------------------------------------------------
    // next_event

    #[test]
    fn next_event_crosses_the_day_boundary() {
        let sydney = at(-33.8688, 151.2093);
        let today = sun_times((2026, 12, 7), sydney);
        let sunset = today.sunset.expect("sunset");
        let tomorrow = sun_times((2026, 12, 8), sydney);
        // After today's sunset (UTC date still the 7th): tomorrow's.
        assert_eq!(
            next_event(sunset + 60_000, SunEvent::Sunset, sydney),
            tomorrow.sunset
        );
        // Strictly after: the sunset itself is not "after" itself, one ms before it is.
        assert_eq!(
            next_event(sunset, SunEvent::Sunset, sydney),
            tomorrow.sunset
        );
        assert_eq!(
            next_event(sunset - 1, SunEvent::Sunset, sydney),
            Some(sunset)
        );
        // Local sunrise of the 8th is on the 7th in UTC (PyEphem: 05:36:38 AEDT).
        let after_sunrise = today.sunrise.expect("sunrise") + 1;
        let next = next_event(after_sunrise, SunEvent::Sunrise, sydney).expect("sunrise");
        assert_eq!(Some(next), tomorrow.sunrise);
        assert!(((next - ms("2026-12-08T05:36:38+11:00")) as f64 / 1000.0).abs() <= 60.0);
        // Solar noon, from local midnight.
        let noon = next_event(ms("2026-12-08T00:00:00+11:00"), SunEvent::SolarNoon, sydney);
        assert_eq!(noon, tomorrow.solar_noon);
    }

    /// USNO (as quoted in the Tromsø test above): after sunrise at 00:13 on 18 May 2014 the
    /// Sun does not set until 23:20 on 25 July (UT+1). A "stop at sunset" planned during the
    /// midnight sun must land there, 68 days on.
    #[test]
    fn next_event_across_the_midnight_sun() {
        let tromso = at(69.5, 19.0);
        let got = next_event(ms("2014-05-18T12:00:00+01:00"), SunEvent::Sunset, tromso)
            .expect("the Sun sets again");
        let err = (got - ms("2014-07-25T23:20:00+01:00")) as f64 / 1000.0;
        assert!(
            err.abs() <= TOLERANCE_S,
            "{} ({err:+} s)",
            iso8601_seconds(got)
        );
        // Never closer than that.
        assert!(
            next_event(got, SunEvent::Sunset, tromso).expect("next") - got < 86_400_000 + 3_600_000
        );
    }

    #[test]
    fn next_event_refuses_bad_input() {
        let bad = Location {
            lat: f64::NAN,
            lon: 0.0,
        };
        assert_eq!(next_event(0, SunEvent::Sunrise, bad), None);
        assert_eq!(next_event(i64::MAX, SunEvent::Sunrise, at(0.0, 0.0)), None);
        assert_eq!(next_event(i64::MIN, SunEvent::Sunrise, at(0.0, 0.0)), None);
    }

    // -----------------------------------------------------------------------------------------
    // Input validation, wire names, JSON

    #[test]
    fn invalid_locations_are_refused_with_a_clear_error() {
        assert_eq!(Location::new(90.5, 0.0), Err(SunError::Latitude(90.5)));
        assert_eq!(Location::new(0.0, -180.5), Err(SunError::Longitude(-180.5)));
        assert!(matches!(
            Location::new(f64::NAN, 0.0),
            Err(SunError::Latitude(_))
        ));
        assert!(matches!(
            Location::new(0.0, f64::INFINITY),
            Err(SunError::Longitude(_))
        ));
        assert!(Location::new(-90.0, 180.0).is_ok());
        assert_eq!(
            Location::new(91.0, 0.0).unwrap_err().to_string(),
            "latitude must be a number from -90 to 90 degrees, got 91"
        );
        // Deserializing validates too (a location remembered in the data dir, a REST body).
        let ok: Location = serde_json::from_str(r#"{"lat":47.5,"lon":-52.7}"#).unwrap();
        assert_eq!(ok, at(47.5, -52.7));
        let err = serde_json::from_str::<Location>(r#"{"lat":47.5,"lon":200}"#).unwrap_err();
        assert!(err.to_string().contains("longitude"), "{err}");
        // A struct literal can skip `new`: nothing panics, nothing is made up.
        let bad = Location {
            lat: 120.0,
            lon: 0.0,
        };
        let t = sun_times((2026, 6, 21), bad);
        for e in SunEvent::ALL {
            assert_eq!(t.get(e), Err(NoEvent::InvalidInput));
        }
        assert!(solar_altitude_deg(0, bad).is_nan());
    }

    #[test]
    fn dates_are_parsed_and_validated() {
        assert_eq!(parse_date("2026-12-07"), Ok((2026, 12, 7)));
        assert_eq!(parse_date("2024-02-29"), Ok((2024, 2, 29)));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-12-07",
            "+026-12-07",
            "0000-01-01",
            "",
        ] {
            assert!(matches!(parse_date(bad), Err(SunError::Date(_))), "{bad}");
        }
        let t = sun_times((2026, 2, 30), at(0.0, 0.0));
        assert_eq!(t.get(SunEvent::SolarNoon), Err(NoEvent::InvalidInput));
        assert_eq!(format_date((2026, 1, 5)), "2026-01-05");
    }

    #[test]
    fn event_wire_names_round_trip() {
        let names = [
            "astronomicalDawn",
            "nauticalDawn",
            "civilDawn",
            "sunrise",
            "solarNoon",
            "sunset",
            "civilDusk",
            "nauticalDusk",
            "astronomicalDusk",
        ];
        for (e, name) in SunEvent::ALL.into_iter().zip(names) {
            assert_eq!(e.as_str(), name);
            assert_eq!(SunEvent::parse(name), Some(e));
            assert_eq!(name.parse::<SunEvent>(), Ok(e));
            assert_eq!(serde_json::to_value(e).unwrap(), json!(name));
            assert_eq!(serde_json::from_value::<SunEvent>(json!(name)).unwrap(), e);
        }
        assert_eq!(SunEvent::parse("Sunset"), None);
        assert!("dusk"
            .parse::<SunEvent>()
            .unwrap_err()
            .to_string()
            .contains("civilDusk"));
        assert_eq!(SunEvent::Sunset.threshold_deg(), Some(-0.833));
        assert_eq!(SunEvent::CivilDawn.threshold_deg(), Some(-6.0));
        assert_eq!(SunEvent::NauticalDusk.threshold_deg(), Some(-12.0));
        assert_eq!(SunEvent::AstronomicalDawn.threshold_deg(), Some(-18.0));
        assert_eq!(SunEvent::SolarNoon.threshold_deg(), None);
    }

    #[test]
    fn json_has_iso_times_nulls_and_reasons() {
        let t = sun_times((2026, 6, 21), at(60.1699, 24.9384));
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v, t.to_json());
        assert_eq!(v["date"], "2026-06-21");
        assert_eq!(v["lat"], 60.1699);
        assert_eq!(v["lon"], 24.9384);
        let sunrise = v["sunrise"].as_str().unwrap();
        assert_eq!(sunrise.len(), "2026-06-21T00:54:02Z".len());
        assert!(
            sunrise.starts_with("2026-06-21T00:5") && sunrise.ends_with('Z'),
            "{sunrise}"
        );
        assert_eq!(ms(sunrise), t.sunrise.unwrap());
        assert_eq!(v["nauticalDusk"], Value::Null);
        assert_eq!(v["astronomicalDawn"], Value::Null);
        assert_eq!(
            v["reasons"],
            json!({
                "astronomicalDawn": "alwaysAbove", "nauticalDawn": "alwaysAbove",
                "nauticalDusk": "alwaysAbove", "astronomicalDusk": "alwaysAbove",
            })
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 13);
        assert_eq!(
            sun_times((2026, 12, 21), at(69.6492, 18.9553)).to_json()["reasons"],
            json!({"sunrise": "alwaysBelow", "sunset": "alwaysBelow"})
        );
    }

    // -----------------------------------------------------------------------------------------
    // Robustness

    /// Any latitude, longitude and date from 1970 to 2100 (fixed seed, plus the edges): nothing
    /// panics, each event has a time or a reason, found events sit on their threshold and in
    /// order, positions are in range.
    #[test]
    fn randomized_sweep_never_panics_and_stays_consistent() {
        let mut rng = Rng::new(0x5EED_0012);
        let first = days_from_civil(1970, 1, 1);
        let span = days_from_civil(2100, 12, 31) - first;
        let mut cases: Vec<(f64, f64, i64)> = vec![
            (90.0, 180.0, 0),
            (-90.0, -180.0, span),
            (90.0, 0.0, span / 2),
            (-90.0, 0.0, 100),
            (0.0, 180.0, 1000),
            (66.5, -180.0, 20_000),
        ];
        for _ in 0..3000 {
            cases.push((
                rng.next_f64() * 180.0 - 90.0,
                rng.next_f64() * 360.0 - 180.0,
                (rng.next_f64() * span as f64) as i64,
            ));
        }
        for (i, &(lat, lon, d)) in cases.iter().enumerate() {
            let loc = at(lat, lon);
            let (y, m, dd) = civil_from_days(first + d);
            let date = (y as i32, m, dd);
            let t = sun_times(date, loc);
            let mut last: Option<i64> = None;
            for e in SunEvent::ALL {
                let (time, reason) = match t.get(e) {
                    Ok(ms) => (Some(ms), None),
                    Err(r) => (None, Some(r)),
                };
                assert_ne!(reason, Some(NoEvent::InvalidInput), "{lat} {lon} {date:?}");
                let Some(ms) = time else { continue };
                if let Some(thr) = e.threshold_deg() {
                    let geo = geometric_altitude_at(ms as f64 / 1000.0, loc);
                    assert!((geo - thr).abs() < 0.02, "{e} {lat} {lon} {date:?}: {geo}");
                }
                if let Some(prev) = last {
                    assert!(
                        ms >= prev - 2000,
                        "{e} out of order at {lat} {lon} {date:?}"
                    );
                }
                last = Some(ms);
            }
            let noon = t.solar_noon.expect("solar noon always exists");
            let mean_noon = (days_from_civil(y, m, dd) * 86_400 + 43_200) as f64 - lon * 240.0;
            assert!((noon as f64 / 1000.0 - mean_noon).abs() < 17.0 * 60.0);
            let p = sun_position(noon, loc);
            assert!((-90.0..=90.0).contains(&p.altitude_deg), "{p:?}");
            assert!((0.0..360.0).contains(&p.azimuth_deg), "{p:?}");
            if i % 10 == 0 {
                let after = noon + (rng.next_f64() * 86_400_000.0) as i64;
                let e = SunEvent::ALL[(rng.next_u64() % 9) as usize];
                if let Some(next) = next_event(after, e, loc) {
                    assert!(
                        next > after && next - after < 370 * 86_400_000,
                        "{e} {lat} {lon}"
                    );
                }
            }
        }
    }
}
