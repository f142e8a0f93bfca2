//! The local time zone at an instant: total UTC offset, the zone's *standard* offset and the DST
//! flag. Canon's datetime convention (CCAPI.md §1.4) needs all three: local wall time with DST
//! applied, the standard offset, and `dst: true` during summer time.
//!
//! [`LocalZone`] asks libc (`localtime_r`, which honours `TZ` and /etc/localtime).
//! [`PosixZone`] evaluates a POSIX TZ rule string (`"GMT0BST,M3.5.0/1,M10.5.0"`), so tests and
//! configuration can name an explicit zone, southern hemisphere included, without touching the
//! process environment.

use std::time::SystemTime;

use crate::util::{days_from_civil, unix_millis};

/// What a zone says about one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneOffset {
    /// Seconds east of UTC in effect (standard + DST shift).
    pub utc_offset_secs: i32,
    /// Seconds east of UTC of the zone's standard (winter) time.
    pub std_offset_secs: i32,
    /// Whether summer time is in effect.
    pub dst: bool,
}

/// A time zone the time sync code can ask about any instant.
pub trait Zone: Send + Sync {
    fn at(&self, t: SystemTime) -> ZoneOffset;
    /// A label for status and logs (`"AEDT"` at `t`, `"GMT0BST,…"`).
    fn name(&self, t: SystemTime) -> String;
}

// ---------------------------------------------------------------------------------------------
// libc

/// The process's local zone through `localtime_r`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalZone;

use crate::sys::localtime;

impl Zone for LocalZone {
    fn at(&self, t: SystemTime) -> ZoneOffset {
        let secs = unix_millis(t).div_euclid(1000);
        let Some((off, dst, _)) = localtime(secs) else {
            return ZoneOffset {
                utc_offset_secs: 0,
                std_offset_secs: 0,
                dst: false,
            };
        };
        if !dst {
            return ZoneOffset {
                utc_offset_secs: off,
                std_offset_secs: off,
                dst,
            };
        }
        // The standard offset is the offset at the nearest instant without DST: look up to a
        // year either side, a month at a time (nearest first, in case the zone's rules changed).
        const MONTH: i64 = 30 * 86_400;
        let std = (1..=12)
            .flat_map(|k| [secs - k * MONTH, secs + k * MONTH])
            .find_map(|s| match localtime(s) {
                Some((o, false, _)) => Some(o),
                _ => None,
            })
            // A zone in permanent summer time: assume the usual one-hour shift.
            .unwrap_or(off - 3600);
        ZoneOffset {
            utc_offset_secs: off,
            std_offset_secs: std,
            dst,
        }
    }

    fn name(&self, t: SystemTime) -> String {
        let secs = unix_millis(t).div_euclid(1000);
        localtime(secs).map(|(_, _, n)| n).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// POSIX TZ strings

/// A transition rule `Mm.w.d[/time]`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`,
/// at `time` seconds after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    month: u32,
    week: u32,
    weekday: u32,
    time: i64,
}

/// A zone from a POSIX TZ string, e.g. `"UTC0"`, `"IST-5:30"`, `"GMT0BST,M3.5.0/1,M10.5.0"`,
/// `"AEST-10AEDT,M10.1.0,M4.1.0/3"`. Only the `M` rule form is supported (it is what every
/// current zone uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixZone {
    spec: String,
    /// Seconds east of UTC.
    std_east: i32,
    dst: Option<(i32, Rule, Rule)>,
}

impl PosixZone {
    pub fn parse(spec: &str) -> Result<PosixZone, String> {
        let bad = |why: &str| format!("bad TZ rule {spec:?}: {why}");
        let mut p = Parser {
            s: spec.as_bytes(),
            i: 0,
        };
        p.name().ok_or_else(|| bad("zone name"))?;
        let std_west = p.offset().ok_or_else(|| bad("standard offset"))?;
        let std_east = -std_west as i32;
        if p.done() {
            return Ok(PosixZone {
                spec: spec.to_string(),
                std_east,
                dst: None,
            });
        }
        p.name().ok_or_else(|| bad("summer time name"))?;
        let dst_east = if p.peek() == Some(b',') {
            std_east + 3600
        } else {
            -p.offset().ok_or_else(|| bad("summer time offset"))? as i32
        };
        if !p.eat(b',') {
            return Err(bad("summer time rules (,Mm.w.d,Mm.w.d)"));
        }
        let start = p.rule().ok_or_else(|| bad("start rule"))?;
        if !p.eat(b',') {
            return Err(bad("end rule"));
        }
        let end = p.rule().ok_or_else(|| bad("end rule"))?;
        if !p.done() {
            return Err(bad("trailing characters"));
        }
        Ok(PosixZone {
            spec: spec.to_string(),
            std_east,
            dst: Some((dst_east, start, end)),
        })
    }
}

/// Unix seconds of a rule's transition in `year`, given the offset in effect before it.
fn transition(year: i64, r: Rule, east_before: i32) -> i64 {
    let first = days_from_civil(year, r.month, 1);
    let next = if r.month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, r.month + 1, 1)
    };
    // 1970-01-01 was a Thursday (weekday 4).
    let wd_first = (first + 4).rem_euclid(7);
    let mut day =
        first + (i64::from(r.weekday) - wd_first).rem_euclid(7) + 7 * (i64::from(r.week) - 1);
    while day >= next {
        day -= 7;
    }
    day * 86_400 + r.time - i64::from(east_before)
}

impl Zone for PosixZone {
    fn at(&self, t: SystemTime) -> ZoneOffset {
        let secs = unix_millis(t).div_euclid(1000);
        let standard = ZoneOffset {
            utc_offset_secs: self.std_east,
            std_offset_secs: self.std_east,
            dst: false,
        };
        let Some((dst_east, start, end)) = self.dst else {
            return standard;
        };
        let (year, _, _) =
            crate::util::civil_from_days((secs + i64::from(self.std_east)).div_euclid(86_400));
        let on = transition(year, start, self.std_east);
        let off = transition(year, end, dst_east);
        let in_dst = if on < off {
            // Northern hemisphere: summer inside the year.
            secs >= on && secs < off
        } else {
            // Southern: summer spans the new year.
            !(secs >= off && secs < on)
        };
        if in_dst {
            ZoneOffset {
                utc_offset_secs: dst_east,
                std_offset_secs: self.std_east,
                dst: true,
            }
        } else {
            standard
        }
    }

    fn name(&self, _t: SystemTime) -> String {
        self.spec.clone()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Option<()> {
        let start = self.i;
        if self.eat(b'<') {
            while self.peek()? != b'>' {
                self.i += 1;
            }
            self.i += 1;
            return (self.i - start > 2).then_some(());
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        (self.i - start >= 3).then_some(())
    }
    fn number(&mut self) -> Option<i64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start || self.i - start > 3 {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    /// `[+-]hh[:mm[:ss]]` in seconds (sign as written).
    fn offset(&mut self) -> Option<i64> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let h = self.number()?;
        let mut secs = h * 3600;
        if self.eat(b':') {
            secs += self.number()? * 60;
            if self.eat(b':') {
                secs += self.number()?;
            }
        }
        (secs <= 167 * 3600).then_some(sign * secs)
    }
    fn rule(&mut self) -> Option<Rule> {
        if !self.eat(b'M') {
            return None;
        }
        let month = self.number()? as u32;
        self.eat(b'.').then_some(())?;
        let week = self.number()? as u32;
        self.eat(b'.').then_some(())?;
        let weekday = self.number()? as u32;
        if !(1..=12).contains(&month) || !(1..=5).contains(&week) || weekday > 6 {
            return None;
        }
        let time = if self.eat(b'/') { self.offset()? } else { 7200 };
        Some(Rule {
            month,
            week,
            weekday,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::from_unix_millis;

    fn at(zone: &str, iso: &str) -> ZoneOffset {
        let z = PosixZone::parse(zone).unwrap();
        z.at(from_unix_millis(crate::util::parse_iso8601(iso).unwrap()))
    }

    const LONDON: &str = "GMT0BST,M3.5.0/1,M10.5.0";
    const SYDNEY: &str = "AEST-10AEDT,M10.1.0,M4.1.0/3";

    #[test]
    fn london_summer_and_winter() {
        let s = at(LONDON, "2026-07-01T12:00:00Z");
        assert_eq!(
            (s.utc_offset_secs, s.std_offset_secs, s.dst),
            (3600, 0, true)
        );
        let w = at(LONDON, "2026-01-15T12:00:00Z");
        assert_eq!((w.utc_offset_secs, w.std_offset_secs, w.dst), (0, 0, false));
        // 2026-03-29 01:00 UTC is the spring-forward instant; 2026-10-25 01:00 UTC the fall-back.
        assert!(!at(LONDON, "2026-03-29T00:59:59Z").dst);
        assert!(at(LONDON, "2026-03-29T01:00:00Z").dst);
        assert!(at(LONDON, "2026-10-25T00:59:59Z").dst);
        assert!(!at(LONDON, "2026-10-25T01:00:00Z").dst);
    }

    #[test]
    fn sydney_summer_is_in_january() {
        let s = at(SYDNEY, "2026-01-15T00:00:00Z");
        assert_eq!(
            (s.utc_offset_secs, s.std_offset_secs, s.dst),
            (39600, 36000, true)
        );
        let w = at(SYDNEY, "2026-07-01T00:00:00Z");
        assert_eq!(
            (w.utc_offset_secs, w.std_offset_secs, w.dst),
            (36000, 36000, false)
        );
        // DST ends 2026-04-05 03:00 AEDT = 2026-04-04T16:00Z; starts 2026-10-04 02:00 AEST =
        // 2026-10-03T16:00Z.
        assert!(at(SYDNEY, "2026-04-04T15:59:59Z").dst);
        assert!(!at(SYDNEY, "2026-04-04T16:00:00Z").dst);
        assert!(!at(SYDNEY, "2026-10-03T15:59:59Z").dst);
        assert!(at(SYDNEY, "2026-10-03T16:00:00Z").dst);
        // New Year's Eve in Sydney (still 2026 in UTC, already 2027 locally).
        assert!(at(SYDNEY, "2026-12-31T14:00:00Z").dst);
    }

    #[test]
    fn utc_and_half_hour_zones() {
        let u = at("UTC0", "2026-07-01T00:00:00Z");
        assert_eq!((u.utc_offset_secs, u.std_offset_secs, u.dst), (0, 0, false));
        let india = at("IST-5:30", "2026-07-01T00:00:00Z");
        assert_eq!(
            (india.utc_offset_secs, india.std_offset_secs),
            (19800, 19800)
        );
        // Adelaide: +9:30 standard, +10:30 in (southern) summer.
        let adl = at("ACST-9:30ACDT,M10.1.0,M4.1.0/3", "2026-01-10T00:00:00Z");
        assert_eq!(
            (adl.utc_offset_secs, adl.std_offset_secs, adl.dst),
            (37800, 34200, true)
        );
        // Newfoundland: −3:30 standard, −2:30 summer (northern).
        let nf = at("NST3:30NDT,M3.2.0,M11.1.0", "2026-07-01T00:00:00Z");
        assert_eq!(
            (nf.utc_offset_secs, nf.std_offset_secs, nf.dst),
            (-9000, -12600, true)
        );
    }

    #[test]
    fn bad_rules_are_errors_not_panics() {
        for bad in [
            "",
            "X",
            "GMT",
            "GMT0BST",
            "GMT0BST,M13.1.0,M1.1.0",
            "UTC0junk",
            "<+03",
        ] {
            assert!(PosixZone::parse(bad).is_err(), "{bad}");
        }
        assert!(PosixZone::parse("<+0330>-3:30").is_ok());
    }
}
