//! Date and time in Canon's convention: local time with DST applied, the STANDARD offset and a `dst` flag.

use super::*;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Sat, 29 Aug 2020 17:46:19 -0800` for `time` in a zone of standard offset
/// `std_offset_secs`, with one hour added to the shown time when `dst`.
pub fn format_canon_datetime(time: SystemTime, std_offset_secs: i32, dst: bool) -> String {
    let utc = crate::util::unix_millis(time).div_euclid(1000);
    let local = utc + i64::from(std_offset_secs) + if dst { 3600 } else { 0 };
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if std_offset_secs < 0 { '-' } else { '+' };
    let off = std_offset_secs.unsigned_abs() / 60;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        sign,
        off / 60,
        off % 60
    )
}

/// Parses the camera's `datetime` (+ `dst`) into the true instant: shown time − standard
/// offset − 1 h when `dst`.
pub fn parse_canon_datetime(raw: &str, dst: bool) -> Option<SystemTime> {
    // "Www, DD Mon YYYY HH:MM:SS ±HHMM". Every field is checked as ASCII digits of a fixed
    // width and range before any arithmetic: the camera's reply is outside input (issue 9,
    // item 7: a multibyte character in the offset used to panic a byte slice, and huge h/m/s
    // values overflowed).
    let rest = raw.trim().split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, hms, off] = parts[..] else {
        return None;
    };
    let num = |s: &str, width: std::ops::RangeInclusive<usize>| -> Option<i64> {
        (width.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let d = num(day, 1..=2)? as u32;
    let m = MONTHS.iter().position(|x| *x == month)? as u32 + 1;
    let y = num(year, 4..=4)?;
    let mut hms_parts = hms.split(':');
    let (h, mi, se) = (
        num(hms_parts.next()?, 1..=2)?,
        num(hms_parts.next()?, 1..=2)?,
        num(hms_parts.next()?, 1..=2)?,
    );
    if hms_parts.next().is_some() || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let off = off.as_bytes();
    let sign = match off.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = std::str::from_utf8(off.get(1..)?).ok()?;
    let hhmm = num(digits, 4..=4)?;
    let (oh, om) = (hhmm / 100, hhmm % 100);
    if oh > 14 || om > 59 {
        return None;
    }
    let offset = sign * (oh * 3600 + om * 60);
    let local = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se;
    let utc = local - offset - if dst { 3600 } else { 0 };
    Some(crate::util::from_unix_millis(utc * 1000))
}

/// The Pi's zone at `time` per the C library: (standard offset in seconds east, DST in force).
pub fn local_zone(time: SystemTime) -> (i32, bool) {
    let Some((gmtoff, dst, _)) =
        crate::sys::localtime(crate::util::unix_millis(time).div_euclid(1000))
    else {
        return (0, false);
    };
    // tm_gmtoff includes DST; Canon wants the standard offset. (A 1 h DST shift is assumed;
    // Lord Howe's 30 min shift is not represented by CCAPI's flag either.)
    (if dst { gmtoff - 3600 } else { gmtoff }, dst)
}
