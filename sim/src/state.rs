//! The simulated camera's state: identity, API catalog, settings with abilities, battery,
//! storage and files, camera clock, shooting engine, pending events.
//!
//! Plain data with small pure helpers; the routes (`ccapi.rs`) and the capture task
//! (`mod.rs`) mutate it under one lock. Times are passed in (`now`), never read here.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Map, Value};

/// Which camera body the simulator imitates (CCAPI.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// EOS R50: `path` listing, ver110 polling/storage/batterylist, ver130 contents on `card1`.
    R50,
    /// An old body: absolute `url` listing, everything in ver100, `continue=` polling, `sd`.
    LegacyVer100,
    /// EOS R6 Mark III fw 1.1.0: root says `No list of APIs`; the list is at `topurlfordev`.
    R6m3,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "r50" => Some(Profile::R50),
            "legacy_ver100" | "legacy" => Some(Profile::LegacyVer100),
            "r6m3" | "r6m3_fw110" => Some(Profile::R6m3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::R50 => "r50",
            Profile::LegacyVer100 => "legacy_ver100",
            Profile::R6m3 => "r6m3_fw110",
        }
    }

    /// API version hosting the newer resources (polling, storage, stillimagequality).
    pub fn v_new(self) -> &'static str {
        match self {
            Profile::LegacyVer100 => "ver100",
            _ => "ver110",
        }
    }

    pub fn contents_version(self) -> &'static str {
        match self {
            Profile::LegacyVer100 => "ver100",
            _ => "ver130",
        }
    }

    pub fn card_name(self) -> &'static str {
        match self {
            Profile::LegacyVer100 => "sd",
            _ => "card1",
        }
    }

    /// Old bodies list absolute URLs (root listing, storage, contents, addedcontents).
    pub fn absolute_urls(self) -> bool {
        self == Profile::LegacyVer100
    }

    pub fn product(self) -> (&'static str, &'static str, &'static str) {
        // (productname, firmware, battery name)
        match self {
            Profile::R50 => ("Canon EOS R50", "1.1.0", "LP-E17"),
            Profile::LegacyVer100 => ("Canon EOS RP", "1.5.0", "LP-E17"),
            Profile::R6m3 => ("Canon EOS R6 Mark III", "1.1.0", "LP-E6P"),
        }
    }
}

/// How `GET /ccapi` lists the API (CCAPI.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootListing {
    /// `{"path":"/ccapi/ver100/...", get, post, put, delete}` entries.
    Path,
    /// Old firmware: `{"url":"http://host:port/ccapi/ver100/...", ...}` entries.
    Url,
    /// `{"message":"No list of APIs"}`; the list is at `ver100/topurlfordev`.
    NoList,
}

/// One catalog entry: `/ccapi/{version}/{path}` with its methods.
#[derive(Debug, Clone)]
pub struct ApiEntry {
    pub version: &'static str,
    pub path: String,
    pub get: bool,
    pub post: bool,
    pub put: bool,
    pub delete: bool,
}

fn entry(version: &'static str, path: &str, methods: &str) -> ApiEntry {
    ApiEntry {
        version,
        path: path.to_string(),
        get: methods.contains('G'),
        post: methods.contains('P'),
        put: methods.contains('U'),
        delete: methods.contains('D'),
    }
}

/// The API catalog of a profile (only resources the simulator implements).
pub fn catalog(profile: Profile, settings: &BTreeMap<String, Setting>) -> Vec<ApiEntry> {
    let vn = profile.v_new();
    let mut c = vec![
        entry("ver100", "deviceinformation", "G"),
        entry("ver100", "devicestatus/battery", "G"),
        entry("ver100", "devicestatus/lens", "G"),
        entry("ver100", "devicestatus/temperature", "G"),
        entry("ver100", "functions/datetime", "GU"),
        entry("ver100", "functions/autopoweroff", "GU"),
        entry("ver100", "functions/ssl/cacert", "G"),
        entry("ver100", "functions/wificonnection", "P"),
        entry("ver100", "shooting/control/shutterbutton", "P"),
        entry("ver100", "shooting/control/shutterbutton/manual", "P"),
        entry("ver100", "shooting/control/drivefocus", "P"),
        entry("ver100", "shooting/liveview", "P"),
        entry("ver100", "shooting/liveview/flip", "G"),
        entry("ver100", "shooting/liveview/flipdetail", "G"),
        entry("ver100", "shooting/liveview/scroll", "GD"),
        entry("ver100", "shooting/liveview/scrolldetail", "GD"),
        entry("ver100", "shooting/liveview/afframeposition", "U"),
        entry(
            "ver100",
            "shooting/control/ignoreshootingmodedialmode",
            "GP",
        ),
        entry("ver100", "shooting/information/recordable", "G"),
        entry("ver100", "shooting/settings", "G"),
        entry(vn, "devicestatus/storage", "G"),
        entry(vn, "devicestatus/currentstorage", "G"),
        entry(vn, "devicestatus/currentdirectory", "G"),
        entry(vn, "event/polling", "GD"),
    ];
    if profile != Profile::LegacyVer100 {
        c.push(entry("ver110", "devicestatus/batterylist", "G"));
        c.push(entry("ver110", "shooting/settings", "G"));
        c.push(entry("ver110", "functions/networkconnection", "P"));
    }
    if profile == Profile::R6m3 {
        c.push(entry("ver100", "topurlfordev", "G"));
    }
    for (name, s) in settings {
        let version = if s.ver110 { vn } else { "ver100" };
        c.push(entry(version, &format!("shooting/settings/{name}"), "GU"));
    }
    c.push(entry(profile.contents_version(), "contents", "GUD"));
    c
}

/// A setting's allowed values.
#[derive(Debug, Clone)]
pub enum Ability {
    /// One of these strings.
    List(Vec<String>),
    /// An integer in `[min, max]` on `step`.
    Range { min: i64, max: i64, step: i64 },
    /// Compound value: each member is one of its list (`stillimagequality`).
    Members(Vec<(String, Vec<String>)>),
    /// Compound value: each member is a range (`wbshift`).
    MemberRanges(Vec<(String, i64, i64, i64)>),
}

impl Ability {
    pub fn to_json(&self) -> Value {
        match self {
            Ability::List(v) => json!(v),
            Ability::Range { min, max, step } => json!({"min": min, "max": max, "step": step}),
            Ability::Members(m) => {
                let mut o = Map::new();
                for (k, v) in m {
                    o.insert(k.clone(), json!(v));
                }
                Value::Object(o)
            }
            Ability::MemberRanges(m) => {
                let mut o = Map::new();
                for (k, min, max, step) in m {
                    o.insert(k.clone(), json!({"min": min, "max": max, "step": step}));
                }
                Value::Object(o)
            }
        }
    }

    /// Whether `v` is an allowed value (type and membership, range and step).
    pub fn accepts(&self, v: &Value) -> bool {
        match self {
            Ability::List(list) => v.as_str().is_some_and(|s| list.iter().any(|a| a == s)),
            Ability::Range { min, max, step } => v
                .as_i64()
                .is_some_and(|n| n >= *min && n <= *max && (*step <= 0 || (n - min) % step == 0)),
            Ability::Members(m) => {
                let Some(o) = v.as_object() else { return false };
                o.len() == m.len()
                    && m.iter().all(|(k, list)| {
                        o.get(k)
                            .and_then(Value::as_str)
                            .is_some_and(|s| list.iter().any(|a| a == s))
                    })
            }
            Ability::MemberRanges(m) => {
                let Some(o) = v.as_object() else { return false };
                o.len() == m.len()
                    && m.iter().all(|(k, min, max, step)| {
                        o.get(k).and_then(Value::as_i64).is_some_and(|n| {
                            n >= *min && n <= *max && (*step <= 0 || (n - min) % step == 0)
                        })
                    })
            }
        }
    }
}

/// Which shooting modes a setting is available in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    Always,
    /// Aperture: m and av (and fv).
    Av,
    /// Shutter speed: m and tv (and fv).
    Tv,
    /// Exposure compensation: everywhere except m with a fixed ISO.
    Exposure,
    /// Creative settings: not in a+ (scene intelligent auto).
    Creative,
}

#[derive(Debug, Clone)]
pub struct Setting {
    pub value: Value,
    pub ability: Ability,
    pub avail: Avail,
    /// Lives under ver110 (R50) instead of ver100.
    pub ver110: bool,
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub const TV_VALUES: &[&str] = &[
    "bulb", "30\"", "25\"", "20\"", "15\"", "13\"", "10\"", "8\"", "6\"", "5\"", "4\"", "3\"2",
    "2\"5", "2\"", "1\"6", "1\"3", "1\"", "0\"8", "0\"6", "0\"5", "0\"4", "0\"3", "1/4", "1/5",
    "1/6", "1/8", "1/10", "1/13", "1/15", "1/20", "1/25", "1/30", "1/40", "1/50", "1/60", "1/80",
    "1/100", "1/125", "1/160", "1/200", "1/250", "1/320", "1/400", "1/500", "1/640", "1/800",
    "1/1000", "1/1250", "1/1600", "1/2000", "1/2500", "1/3200", "1/4000",
];

/// The default settings of a body, keyed by CCAPI name.
pub fn default_settings(profile: Profile) -> BTreeMap<String, Setting> {
    let mut m = BTreeMap::new();
    let mut add = |name: &str, value: Value, ability: Ability, avail: Avail, ver110: bool| {
        m.insert(
            name.to_string(),
            Setting {
                value,
                ability,
                avail,
                ver110,
            },
        );
    };
    let new = profile != Profile::LegacyVer100;
    add(
        "shootingmodedial",
        json!("m"),
        Ability::List(strs(&["m", "av", "tv", "p", "fv", "a+"])),
        Avail::Always,
        false,
    );
    add(
        "av",
        json!("f8.0"),
        Ability::List(strs(&[
            "f4.5", "f5.0", "f5.6", "f6.3", "f7.1", "f8.0", "f9.0", "f10", "f11", "f13", "f14",
            "f16", "f18", "f20", "f22", "f25", "f29", "f32",
        ])),
        Avail::Av,
        false,
    );
    add(
        "tv",
        json!("1/125"),
        Ability::List(strs(TV_VALUES)),
        Avail::Tv,
        false,
    );
    add(
        "iso",
        json!("100"),
        Ability::List(strs(&[
            "auto", "100", "125", "160", "200", "250", "320", "400", "500", "640", "800", "1000",
            "1250", "1600", "2000", "2500", "3200", "4000", "5000", "6400", "8000", "10000",
            "12800", "16000", "20000", "25600", "32000",
        ])),
        Avail::Creative,
        false,
    );
    add(
        "exposure",
        json!("+0.0"),
        Ability::List(strs(&[
            "-3.0", "-2_2/3", "-2_1/3", "-2.0", "-1_2/3", "-1_1/3", "-1.0", "-0_2/3", "-0_1/3",
            "+0.0", "+0_1/3", "+0_2/3", "+1.0", "+1_1/3", "+1_2/3", "+2.0", "+2_1/3", "+2_2/3",
            "+3.0",
        ])),
        Avail::Exposure,
        false,
    );
    add(
        "wb",
        json!("auto"),
        Ability::List(strs(&[
            "auto",
            "awbwhite",
            "daylight",
            "shade",
            "cloudy",
            "tungsten",
            "whitefluorescent",
            "flash",
            "colortemp",
        ])),
        Avail::Creative,
        false,
    );
    add(
        "colortemperature",
        json!(5200),
        Ability::Range {
            min: 2500,
            max: 10000,
            step: 100,
        },
        Avail::Creative,
        false,
    );
    add(
        "wbshift",
        json!({"ba": 0, "mg": 0}),
        Ability::MemberRanges(vec![("ba".into(), -9, 9, 1), ("mg".into(), -9, 9, 1)]),
        Avail::Creative,
        false,
    );
    add(
        "afoperation",
        json!("oneshot"),
        Ability::List(strs(&["oneshot", "servo", "manual"])),
        Avail::Always,
        false,
    );
    add(
        "afmethod",
        json!("face+tracking"),
        Ability::List(strs(&[
            "face+tracking",
            "spot",
            "1point",
            "expand_cross",
            "expand_around",
            "zone",
        ])),
        Avail::Always,
        false,
    );
    add(
        "stillimagequality",
        json!({"raw": "none", "jpeg": "large_fine"}),
        Ability::Members(vec![
            ("raw".into(), strs(&["none", "raw", "craw"])),
            (
                "jpeg".into(),
                strs(&[
                    "none",
                    "large_fine",
                    "large_normal",
                    "medium_fine",
                    "medium_normal",
                    "small1_fine",
                    "small1_normal",
                    "small2",
                ]),
            ),
        ]),
        Avail::Always,
        new,
    );
    add(
        "stillimageaspectratio",
        json!("3:2"),
        Ability::List(strs(&["3:2", "4:3", "16:9", "1:1"])),
        Avail::Always,
        false,
    );
    add(
        "drive",
        json!("single"),
        Ability::List(strs(&[
            "single",
            "highspeed",
            "lowspeed",
            "self_10sec",
            "self_2sec",
            "self_continuous",
        ])),
        Avail::Always,
        false,
    );
    add(
        "metering",
        json!("evaluative"),
        Ability::List(strs(&[
            "evaluative",
            "partial",
            "spot",
            "center_weighted_average",
        ])),
        Avail::Creative,
        false,
    );
    add(
        "colorspace",
        json!("srgb"),
        Ability::List(strs(&["srgb", "adobe_rgb"])),
        Avail::Creative,
        false,
    );
    add(
        "picturestyle",
        json!("auto"),
        Ability::List(strs(&[
            "auto",
            "standard",
            "portrait",
            "landscape",
            "finedetail",
            "neutral",
            "faithful",
            "monochrome",
            "userdef1",
            "userdef2",
            "userdef3",
        ])),
        Avail::Creative,
        false,
    );
    if new {
        add(
            "shuttermode",
            json!("mechanical"),
            Ability::List(strs(&["mechanical", "elec_1stcurtain", "electronic"])),
            Avail::Always,
            true,
        );
    }
    m
}

impl Setting {
    /// Whether the setting can be used in `mode` (the dial) with `iso` (for `exposure`).
    pub fn available(&self, mode: &str, iso: &str) -> bool {
        match self.avail {
            Avail::Always => true,
            Avail::Av => matches!(mode, "m" | "av" | "fv"),
            Avail::Tv => matches!(mode, "m" | "tv" | "fv"),
            Avail::Exposure => mode != "a+" && !(mode == "m" && iso != "auto"),
            Avail::Creative => mode != "a+",
        }
    }
}

/// Battery band thresholds for the ver100 `level` word.
pub fn battery_level_word(percent: f64) -> &'static str {
    if percent >= 80.0 {
        "full"
    } else if percent >= 60.0 {
        "high"
    } else if percent >= 40.0 {
        "half"
    } else if percent >= 20.0 {
        "quarter"
    } else if percent > 0.0 {
        "low"
    } else {
        "none"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerSource {
    Battery,
    AcAdapter,
    NotInserted,
}

#[derive(Debug, Clone)]
pub struct Battery {
    pub percent: f64,
    pub source: PowerSource,
    pub quality: &'static str,
    /// Percent lost per shot.
    pub drain_per_shot: f64,
    /// The R50 bug: ver110 `batterylist` reports `"100"` whatever the charge.
    pub batterylist_bug: bool,
}

/// A file on the card.
#[derive(Debug, Clone)]
pub struct SimFile {
    pub folder: String,
    pub name: String,
    pub size: u64,
    /// Camera-local wall time of the capture, Unix ms (for `lastmodifieddate`, EXIF).
    pub created_ms: i64,
    pub seq: u64,
    /// Exposure, time and focus of the release (its pictures and Exif).
    pub shot: crate::pictures::ShotParams,
}

impl SimFile {
    pub fn is_raw(&self) -> bool {
        self.name.ends_with(".CR3")
    }
}

#[derive(Debug, Clone)]
pub struct Card {
    pub present: bool,
    pub protected: bool,
    pub max_size: u64,
    pub free: u64,
    pub files: Vec<SimFile>,
    /// Next file number (IMG_0001 …), persists across reboots.
    pub next_number: u32,
    pub folder_number: u32,
}

impl Card {
    pub fn folder(&self) -> String {
        format!("{}CANON", self.folder_number)
    }
}

/// Nominal file sizes per quality (what the card accounting and downloads use).
pub fn jpeg_size(q: &str) -> u64 {
    match q {
        "large_fine" => 7_000_000,
        "large_normal" => 3_500_000,
        "medium_fine" => 3_800_000,
        "medium_normal" => 1_900_000,
        "small1_fine" => 2_400_000,
        "small1_normal" => 1_200_000,
        "small2" => 400_000,
        _ => 0,
    }
}

pub fn raw_size(q: &str) -> u64 {
    match q {
        "raw" => 24_000_000,
        "craw" => 13_000_000,
        _ => 0,
    }
}

/// The shooting engine (CCAPI.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Idle,
    /// AF, exposure (timed or bulb) or card write in progress.
    Busy {
        since: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Released,
    Half,
    /// Full press; `bulb` exposure open since `Instant` when in bulb.
    Full {
        bulb_since: Option<Instant>,
    },
}

/// Camera clock: UTC = `base_utc_ms` + (now − `base_at`) × (1 + drift).
#[derive(Debug, Clone)]
pub struct CameraClock {
    pub base_utc_ms: i64,
    pub base_at: Instant,
    pub drift_ppm: f64,
    /// Standard (non-DST) offset east of UTC, minutes.
    pub std_offset_min: i32,
    pub dst: bool,
}

impl CameraClock {
    pub fn utc_ms(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.base_at).as_secs_f64() * 1000.0;
        self.base_utc_ms + (elapsed * (1.0 + self.drift_ppm / 1e6)).round() as i64
    }

    /// Local wall time in ms (DST applied).
    pub fn local_ms(&self, now: Instant) -> i64 {
        self.utc_ms(now) + i64::from(self.std_offset_min + if self.dst { 60 } else { 0 }) * 60_000
    }

    pub fn set_utc(&mut self, now: Instant, utc_ms: i64) {
        self.base_utc_ms = utc_ms;
        self.base_at = now;
    }

    /// `Tue, 01 Jan 2019 01:23:45 +0900` (local time, standard offset).
    pub fn format(&self, now: Instant) -> String {
        format_ccapi_datetime(self.local_ms(now), self.std_offset_min)
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub fn format_ccapi_datetime(local_ms: i64, offset_min: i32) -> String {
    let secs = local_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = crate::time::civil_from_days(days);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let off = offset_min.unsigned_abs();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        sign,
        off / 60,
        off % 60
    )
}

/// Parses `Www, DD Mon YYYY HH:MM:SS ±HHMM` → (local ms as if UTC, offset minutes).
/// The weekday must be a real day name (it is not checked against the date, like the camera's
/// regex that only checks the shape).
pub fn parse_ccapi_datetime(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    // ASCII only: the byte slicing below must not split a character.
    if !s.is_ascii()
        || b.len() != 31
        || &s[3..5] != ", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
    {
        return None;
    }
    if !DAYS.contains(&&s[0..3]) || b[19] != b':' || b[22] != b':' || b[25] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let d = num(5..7)?;
    let mo = MONTHS.iter().position(|m| *m == &s[8..11])? as u32 + 1;
    let y = num(12..16)?;
    let (h, mi, se) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let sign = match b[26] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(27..29)?, num(29..31)?);
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 || oh > 14 || om > 59 {
        return None;
    }
    let days = crate::time::days_from_civil(y, mo, d as u32);
    // Reject dates like 31 Feb (days_from_civil would roll them over).
    if crate::time::civil_from_days(days) != (y, mo, d as u32) {
        return None;
    }
    let local = (days * 86_400 + h * 3600 + mi * 60 + se) * 1000;
    Some((local, sign * (oh * 60 + om) as i32))
}

/// Tv string → exposure seconds (`None` for bulb or an unknown token).
pub fn tv_seconds(tv: &str) -> Option<f64> {
    if let Some(den) = tv.strip_prefix("1/") {
        return den
            .parse::<f64>()
            .ok()
            .filter(|d| *d > 0.0)
            .map(|d| 1.0 / d);
    }
    if let Some((a, b)) = tv.split_once('"') {
        let whole: f64 = a.parse().ok()?;
        let frac: f64 = if b.is_empty() {
            0.0
        } else {
            format!("0.{b}").parse().ok()?
        };
        return Some(whole + frac);
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Sleeping,
    Off,
    Rebooting,
}

#[derive(Debug, Clone)]
pub struct Lens {
    pub mount: bool,
    pub name: String,
}

/// The whole mutable camera state.
pub struct CameraState {
    pub profile: Profile,
    pub root_listing: RootListing,
    pub serial: String,
    pub mac: String,
    pub guid: String,
    pub settings: BTreeMap<String, Setting>,
    pub ignore_dial: bool,
    pub autopoweroff: String,
    pub battery: Battery,
    pub card: Card,
    pub clock: CameraClock,
    pub temperature: String,
    pub lens: Lens,
    pub engine: Engine,
    pub button: Button,
    /// Settings PUTs and shutter calls get 503 until this instant (after a write).
    pub cooldown_until: Option<Instant>,
    pub power: Power,
    /// Shot counter for the request-independent file sequence.
    pub file_seq: u64,
    pub lv: crate::liveview::LiveView,
    pub focus: crate::pictures::Focus,
}

impl CameraState {
    pub fn new(profile: Profile, seed: u64, now: Instant, utc_ms: i64) -> CameraState {
        let mut rng = crate::time::Rng::new(seed);
        let mac_bytes: Vec<u8> = (0..6).map(|_| rng.next_u64() as u8).collect();
        let mac = mac_bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let serial = format!("{:012}", rng.next_u64() % 1_000_000_000_000);
        let guid = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let settings = default_settings(profile);
        CameraState {
            profile,
            root_listing: match profile {
                Profile::R50 => RootListing::Path,
                Profile::LegacyVer100 => RootListing::Url,
                Profile::R6m3 => RootListing::NoList,
            },
            serial,
            mac,
            guid,
            settings,
            ignore_dial: false,
            autopoweroff: "disable".into(),
            battery: Battery {
                percent: 100.0,
                source: PowerSource::Battery,
                quality: "good",
                drain_per_shot: 0.25,
                batterylist_bug: profile == Profile::R50,
            },
            card: Card {
                present: true,
                protected: false,
                max_size: 32_000_000_000,
                free: 30_000_000_000,
                files: Vec::new(),
                next_number: 1,
                folder_number: 100,
            },
            clock: CameraClock {
                base_utc_ms: utc_ms,
                base_at: now,
                drift_ppm: 0.0,
                std_offset_min: 0,
                dst: false,
            },
            temperature: "normal".into(),
            lens: Lens {
                mount: true,
                name: "RF-S18-45mm F4.5-6.3 IS STM".into(),
            },
            engine: Engine::Idle,
            button: Button::Released,
            cooldown_until: None,
            power: Power::On,
            file_seq: 0,
            lv: Default::default(),
            focus: Default::default(),
        }
    }

    pub fn battery_name(&self) -> &'static str {
        match self.battery.source {
            PowerSource::AcAdapter => "DR-E18",
            PowerSource::NotInserted => "",
            PowerSource::Battery => self.profile.product().2,
        }
    }

    pub fn mode(&self) -> String {
        self.settings
            .get("shootingmodedial")
            .and_then(|s| s.value.as_str())
            .unwrap_or("m")
            .to_string()
    }

    pub fn setting_str(&self, name: &str) -> String {
        self.settings
            .get(name)
            .and_then(|s| s.value.as_str())
            .unwrap_or("")
            .to_string()
    }

    /// `{"value":…, "ability":…}` for one setting, blank when unavailable in the mode.
    pub fn setting_json(&self, name: &str) -> Option<Value> {
        let s = self.settings.get(name)?;
        let mode = self.mode();
        let iso = self.setting_str("iso");
        if !s.available(&mode, &iso) {
            return Some(json!({"value": "", "ability": []}));
        }
        Some(json!({"value": s.value, "ability": s.ability.to_json()}))
    }

    /// All settings visible at an API version (ver100 omits the ver110-only keys).
    pub fn settings_json(&self, version: &str) -> Value {
        let mut o = Map::new();
        for (name, s) in &self.settings {
            if s.ver110 && version == "ver100" {
                continue;
            }
            if let Some(v) = self.setting_json(name) {
                o.insert(name.clone(), v);
            }
        }
        Value::Object(o)
    }

    pub fn battery_json(&self) -> Value {
        match self.battery.source {
            PowerSource::AcAdapter => {
                json!({"name": "DR-E18", "kind": "ac_adapter", "level": "", "quality": ""})
            }
            PowerSource::NotInserted => {
                json!({"name": "", "kind": "not_inserted", "level": "none", "quality": "unknown"})
            }
            PowerSource::Battery => json!({
                "name": self.battery_name(),
                "kind": "battery",
                "level": battery_level_word(self.battery.percent),
                "quality": self.battery.quality,
            }),
        }
    }

    pub fn batterylist_json(&self) -> Value {
        let level = match self.battery.source {
            PowerSource::Battery if self.battery.batterylist_bug => "100".to_string(),
            PowerSource::Battery => format!("{}", self.battery.percent.round().max(0.0) as i64),
            _ => "unknown".to_string(),
        };
        let kind = match self.battery.source {
            PowerSource::Battery => "battery",
            PowerSource::AcAdapter => "ac_adapter",
            PowerSource::NotInserted => "not_inserted",
        };
        json!({"batterylist": [{
            "position": "camera",
            "name": self.battery_name(),
            "kind": kind,
            "level": level,
            "quality": self.battery.quality,
        }]})
    }

    /// Bytes one release writes with the current quality.
    pub fn shot_size(&self) -> u64 {
        let q = self.settings.get("stillimagequality").map(|s| &s.value);
        let raw = q.and_then(|v| v["raw"].as_str()).unwrap_or("none");
        let jpeg = q.and_then(|v| v["jpeg"].as_str()).unwrap_or("large_fine");
        (raw_size(raw) + jpeg_size(jpeg)).max(1)
    }

    pub fn recordable_json(&self) -> Value {
        let shots = if self.card.present {
            self.card.free / self.shot_size()
        } else {
            0
        };
        json!({"recordableshots": shots, "remainingtime": null})
    }

    /// `base` is the absolute `http://host:port` for old bodies, empty otherwise.
    pub fn contents_root(&self, base: &str) -> String {
        format!(
            "{base}/ccapi/{}/contents/{}",
            self.profile.contents_version(),
            self.profile.card_name()
        )
    }

    pub fn file_path(&self, base: &str, f: &SimFile) -> String {
        format!("{}/{}/{}", self.contents_root(base), f.folder, f.name)
    }

    pub fn storage_json(&self, base: &str) -> Value {
        if !self.card.present {
            return json!({"storagelist": []});
        }
        let link = if self.profile.absolute_urls() {
            "url"
        } else {
            "path"
        };
        let mut e = Map::new();
        e.insert("name".into(), json!(self.profile.card_name()));
        e.insert(link.into(), json!(self.contents_root(base)));
        e.insert(
            "accesscapability".into(),
            json!(if self.card.protected {
                "readonly"
            } else {
                "readwrite"
            }),
        );
        e.insert("maxsize".into(), json!(self.card.max_size));
        e.insert("spacesize".into(), json!(self.card.free));
        e.insert("contentsnumber".into(), json!(self.card.files.len()));
        json!({ "storagelist": [Value::Object(e)] })
    }

    pub fn deviceinformation_json(&self) -> Value {
        let (product, firmware, _) = self.profile.product();
        json!({
            "manufacturer": "Canon",
            "productname": product,
            "guid": self.guid,
            "serialnumber": self.serial,
            "macaddress": self.mac,
            "firmwareversion": firmware,
        })
    }

    pub fn datetime_json(&self, now: Instant) -> Value {
        json!({"datetime": self.clock.format(now), "dst": self.clock.dst})
    }

    /// The first-poll snapshot: every event-capable key (CCAPI.md §5.5).
    pub fn snapshot(&self, now: Instant, base: &str) -> Map<String, Value> {
        let mut o = Map::new();
        for name in self.settings.keys() {
            if let Some(v) = self.setting_json(name) {
                o.insert(name.clone(), v);
            }
        }
        o.insert("battery".into(), self.battery_json());
        o.insert("storage".into(), self.storage_json(base));
        o.insert("recordable".into(), self.recordable_json());
        o.insert("temperature".into(), json!({"status": self.temperature}));
        o.insert(
            "lens".into(),
            json!({"mount": self.lens.mount, "name": self.lens.name}),
        );
        o.insert("datetime".into(), self.datetime_json(now));
        o.insert(
            "autopoweroff".into(),
            json!({"value": self.autopoweroff, "ability": ["30","60","180","300","600","disable"]}),
        );
        o.insert("moviemode".into(), json!({"status": "off"}));
        o.insert("liveview".into(), self.lv.json());
        o.insert("recbutton".into(), json!({"status": "off"}));
        o
    }

    /// Whether the engine or the post-write cooldown blocks control calls.
    pub fn busy(&self, now: Instant) -> bool {
        self.engine != Engine::Idle || self.cooldown_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trip_and_rejects() {
        let s = "Sat, 29 Aug 2020 17:46:19 -0800";
        let (local, off) = parse_ccapi_datetime(s).unwrap();
        assert_eq!(off, -480);
        assert_eq!(format_ccapi_datetime(local, off), s);
        assert!(parse_ccapi_datetime("Sat, 29 Aug 2020 17:46:19").is_none());
        assert!(parse_ccapi_datetime("Sat, 31 Feb 2020 17:46:19 -0800").is_none());
        assert!(parse_ccapi_datetime("Xyz, 29 Aug 2020 17:46:19 -0800").is_none());
        assert!(parse_ccapi_datetime("2020-08-29T17:46:19Z").is_none());
        // Regression: multi-byte characters at the slicing positions used to panic.
        assert!(parse_ccapi_datetime("Sa\u{e9}, 29 Aug 2020 17:46:19 -080").is_none());
        assert!(parse_ccapi_datetime(
            "\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}abc"
        )
        .is_none());
    }

    #[test]
    fn tv_parsing() {
        assert_eq!(tv_seconds("1/125"), Some(1.0 / 125.0));
        assert_eq!(tv_seconds("0\"5"), Some(0.5));
        assert_eq!(tv_seconds("3\"2"), Some(3.2));
        assert_eq!(tv_seconds("30\""), Some(30.0));
        assert_eq!(tv_seconds("bulb"), None);
    }

    #[test]
    fn abilities_validate_type_range_and_step() {
        let r = Ability::Range {
            min: 2500,
            max: 10000,
            step: 100,
        };
        assert!(r.accepts(&json!(5200)));
        assert!(!r.accepts(&json!(3001)));
        assert!(!r.accepts(&json!("5200")));
        let q = &default_settings(Profile::R50)["stillimagequality"].ability;
        assert!(q.accepts(&json!({"raw":"none","jpeg":"small2"})));
        assert!(!q.accepts(&json!({"jpeg":"small2"})));
        assert!(!q.accepts(&json!({"raw":"off","jpeg":"small2"})));
    }

    #[test]
    fn battery_bands() {
        assert_eq!(battery_level_word(85.0), "full");
        assert_eq!(battery_level_word(45.0), "half");
        assert_eq!(battery_level_word(0.5), "low");
        assert_eq!(battery_level_word(0.0), "none");
    }
}
