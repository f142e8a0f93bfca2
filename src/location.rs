//! Where the Pi is, and the sun there (issue 12, item 1).
//!
//! * [`LocationStore`]: the last known location, from the phone's GPS (`gps-response`, fed by
//!   time sync) or set by hand (`set_location`), kept in `<data_dir>/location.json` (written
//!   atomically). The latest fix wins whatever its source; a GPS fix within ~1 km of the kept
//!   one is not written again (phones repeat fixes; the SD card need not see each one).
//! * [`SunService`]: `get_sun_times`, `set_location`, `get_location` ([`Owner::Sun`]). Sun times
//!   are computed offline by [`crate::sun`].
//!
//! Sessions resolve sun-relative start/stop times through the same store.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::app::{Origin, Service};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::messages::{LocationReply, LocationSet, SunNow, SunTimesReply};
use crate::protocol::{ApiError, Command, CommandResult, ErrorCode, GetSunTimes, Owner, Reply};
use crate::sun::{self, Location, SunEvent};
use crate::util::{atomic_write, civil_from_days, iso8601_millis, unix_millis};

/// File name in the data directory.
pub const LOCATION_FILE: &str = "location.json";
/// A GPS fix that moved less than this (degrees, ~1 km) from the kept one is not written.
const SAME_PLACE_DEG: f64 = 0.01;

/// A location and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownLocation {
    pub lat: f64,
    pub lon: f64,
    /// "gps" or "manual".
    pub source: String,
    /// When it was learnt, Unix ms (wall).
    pub updated_ms: i64,
}

impl KnownLocation {
    pub fn location(&self) -> Option<Location> {
        Location::new(self.lat, self.lon).ok()
    }
}

/// The remembered location (see the module doc).
pub struct LocationStore {
    path: PathBuf,
    current: Mutex<Option<KnownLocation>>,
}

impl LocationStore {
    /// Loads `<data_dir>/location.json` if it holds a valid location.
    pub fn open(data_dir: &Path) -> Arc<LocationStore> {
        let path = data_dir.join(LOCATION_FILE);
        let current = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<KnownLocation>(&b).ok())
            .filter(|k| k.location().is_some());
        Arc::new(LocationStore {
            path,
            current: Mutex::new(current),
        })
    }

    pub fn get(&self) -> Option<KnownLocation> {
        crate::sys::lock(&self.current).clone()
    }

    pub fn location(&self) -> Option<Location> {
        self.get().and_then(|k| k.location())
    }

    /// Keeps `loc` (from `source`, learnt at `wall_ms`) and writes it atomically. A GPS fix at
    /// the place already kept from GPS changes nothing.
    pub fn set(
        &self,
        loc: Location,
        source: &str,
        wall_ms: i64,
    ) -> Result<KnownLocation, ApiError> {
        let mut cur = crate::sys::lock(&self.current);
        if let Some(k) = cur.as_ref() {
            if source == "gps"
                && k.source == "gps"
                && (k.lat - loc.lat).abs() < SAME_PLACE_DEG
                && (k.lon - loc.lon).abs() < SAME_PLACE_DEG
            {
                return Ok(k.clone());
            }
        }
        let known = KnownLocation {
            lat: loc.lat,
            lon: loc.lon,
            source: source.into(),
            updated_ms: wall_ms,
        };
        let bytes = serde_json::to_vec_pretty(&known)
            .map_err(|e| ApiError::system(format!("cannot encode the location: {e}")))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        atomic_write(&self.path, &bytes)
            .map_err(|e| ApiError::system(format!("cannot save the location: {e}")))?;
        *cur = Some(known.clone());
        Ok(known)
    }
}

/// The location a request names, else the remembered one, else a clear error.
pub fn resolve_location(
    store: &LocationStore,
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<Location, ApiError> {
    match (lat, lon) {
        (Some(lat), Some(lon)) => {
            Location::new(lat, lon).map_err(|e| ApiError::invalid(e.to_string()))
        }
        (Some(_), None) | (None, Some(_)) => Err(ApiError::new(
            ErrorCode::MissingParameter,
            "lat and lon go together: give both or neither",
        )),
        (None, None) => store.location().ok_or_else(no_location),
    }
}

/// The error when a sun time is wanted and no location is known.
pub fn no_location() -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        "No location known: open the app on a phone with location allowed (GPS), or set one by hand (set_location {lat, lon})",
    )
}

/// The date of `wall_ms` in local mean solar time at `loc` (the date whose solar day holds
/// the instant, as [`sun::sun_times`] counts days).
pub fn local_solar_date(wall_ms: i64, loc: Location) -> sun::Date {
    let secs = wall_ms.div_euclid(1000) + (loc.lon * 240.0).round() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (y as i32, m, d)
}

/// The `get_sun_times` reply for `date` at `loc`, with the sun's position at `wall_ms`.
pub fn sun_times_reply(
    date: sun::Date,
    loc: Location,
    source: Option<String>,
    wall_ms: i64,
) -> SunTimesReply {
    let t = sun::sun_times(date, loc);
    let iso = |e: SunEvent| t.get(e).ok().map(sun::iso8601_seconds);
    let pos = sun::sun_position(wall_ms, loc);
    SunTimesReply {
        date: sun::format_date(date),
        lat: loc.lat,
        lon: loc.lon,
        sunrise: iso(SunEvent::Sunrise),
        sunset: iso(SunEvent::Sunset),
        solar_noon: iso(SunEvent::SolarNoon),
        civil_dawn: iso(SunEvent::CivilDawn),
        civil_dusk: iso(SunEvent::CivilDusk),
        nautical_dawn: iso(SunEvent::NauticalDawn),
        nautical_dusk: iso(SunEvent::NauticalDusk),
        astronomical_dawn: iso(SunEvent::AstronomicalDawn),
        astronomical_dusk: iso(SunEvent::AstronomicalDusk),
        reasons: t.reasons,
        location_source: source,
        now: SunNow {
            time: iso8601_millis(wall_ms),
            altitude_deg: round3(pos.altitude_deg),
            azimuth_deg: round3(pos.azimuth_deg),
        },
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn location_reply(k: &KnownLocation) -> LocationReply {
    LocationReply {
        known: true,
        lat: Some(k.lat),
        lon: Some(k.lon),
        source: Some(k.source.clone()),
        updated: Some(iso8601_millis(k.updated_ms)),
    }
}

/// `get_sun_times`, `set_location`, `get_location`.
pub struct SunService {
    store: Arc<LocationStore>,
    clock: SharedClock,
}

impl SunService {
    pub fn new(store: Arc<LocationStore>, clock: SharedClock) -> Arc<SunService> {
        Arc::new(SunService { store, clock })
    }

    fn sun_times(&self, r: &GetSunTimes) -> CommandResult {
        let loc = resolve_location(&self.store, r.lat, r.lon)?;
        let source = match (r.lat, r.lon) {
            (Some(_), Some(_)) => Some("request".to_string()),
            _ => self.store.get().map(|k| k.source),
        };
        let wall_ms = unix_millis(self.clock.wall());
        let date = match r.date.as_deref() {
            Some(d) => sun::parse_date(d.trim()).map_err(|e| ApiError::invalid(e.to_string()))?,
            None => local_solar_date(wall_ms, loc),
        };
        Ok(Reply::of(&sun_times_reply(date, loc, source, wall_ms)))
    }
}

impl Service for SunService {
    fn name(&self) -> &'static str {
        "sun"
    }

    fn owner(&self) -> Owner {
        Owner::Sun
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        let result = match cmd {
            Command::GetSunTimes(r) => self.sun_times(r),
            Command::SetLocation(r) => (|| {
                let loc =
                    Location::new(r.lat, r.lon).map_err(|e| ApiError::invalid(e.to_string()))?;
                let k = self
                    .store
                    .set(loc, "manual", unix_millis(self.clock.wall()))?;
                log::info!("location set by hand");
                Ok(Reply::of(&LocationSet(location_reply(&k))))
            })(),
            Command::GetLocation => Ok(Reply::of(&match self.store.get() {
                Some(k) => location_reply(&k),
                None => LocationReply {
                    known: false,
                    lat: None,
                    lon: None,
                    source: None,
                    updated: None,
                },
            })),
            _ => return None,
        };
        Some(Box::pin(async move { result }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_remembers_across_reopen_and_skips_repeated_gps_fixes() {
        let dir = std::env::temp_dir().join(format!("skylapse-loc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = LocationStore::open(&dir);
        assert!(s.get().is_none());
        let here = Location::new(47.0, 8.0).unwrap();
        s.set(here, "gps", 1000).unwrap();
        // ~100 m away: same place, not rewritten (the stamp stays).
        let near = Location::new(47.0005, 8.0005).unwrap();
        assert_eq!(s.set(near, "gps", 2000).unwrap().updated_ms, 1000);
        // Set by hand: always kept.
        s.set(near, "manual", 3000).unwrap();
        let again = LocationStore::open(&dir);
        let k = again.get().unwrap();
        assert_eq!(
            (k.lat, k.source.as_str(), k.updated_ms),
            (47.0005, "manual", 3000)
        );
        // A corrupt file is ignored, not a panic.
        std::fs::write(dir.join(LOCATION_FILE), b"{\"lat\": 95").unwrap();
        assert!(LocationStore::open(&dir).get().is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn lat_and_lon_go_together_and_fall_back_to_the_store() {
        let dir = std::env::temp_dir().join(format!("skylapse-loc2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = LocationStore::open(&dir);
        assert_eq!(
            resolve_location(&s, None, None).unwrap_err().code,
            ErrorCode::MissingParameter
        );
        assert!(resolve_location(&s, Some(1.0), None).is_err());
        assert!(resolve_location(&s, Some(91.0), Some(0.0)).is_err());
        s.set(Location::new(-33.9, 151.2).unwrap(), "manual", 0)
            .unwrap();
        assert_eq!(resolve_location(&s, None, None).unwrap().lat, -33.9);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn today_is_the_local_solar_date() {
        // 2026-12-06T20:00Z at 150°E is 06:00 on Dec 7 local mean time.
        let ms = crate::util::parse_iso8601("2026-12-06T20:00:00Z").unwrap();
        assert_eq!(
            local_solar_date(ms, Location::new(-33.9, 150.0).unwrap()),
            (2026, 12, 7)
        );
        assert_eq!(
            local_solar_date(ms, Location::new(47.0, 8.0).unwrap()),
            (2026, 12, 6)
        );
    }
}
