//! Session reports: what a report holds and how it is made from a session's journal.
//! `store`: `<data_dir>/reports/<id>.json`, written atomically, listed through an index;
//! `export`: CSV of the shots and an SVG chart of timing error and shot duration.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sys::lock;
use std::io::Read as _;

use crate::protocol::{ApiError, ErrorCode};
use crate::util::{atomic_write, iso8601_millis};

use super::journal::SessionLog;
use super::schedule::OptionsWire;
use super::session::{percentile_index, EndKind, ShotRecord};
use crate::camera::ccapi::DeviceInfo;
use crate::camera::CameraSettings;
use std::collections::BTreeMap;

mod export;
mod store;

pub use export::{to_csv, to_svg};
pub use store::*;

/// Report format 2: skylapse's fields plus the original service's (`duration`,
/// `intervalometer`, `results.images*`, `metadata`, `cameraInfo`, `cameraSettings`).
/// Version 1 reports are upgraded when read.
pub const REPORT_VERSION: u32 = 2;
/// `metadata.version`: the original service's report format this one is a superset of.
pub const ORIGINAL_REPORT_FORMAT: &str = "2.0.0";
/// Reports larger than this are not read (a foreign file, not ours).
const MAX_REPORT_BYTES: u64 = 128 * 1024 * 1024;
const MAX_TITLE: usize = 200;

/// Counts (skylapse's names, then the original's `images*`, its error list and file names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub shots_taken: u64,
    pub shots_successful: u64,
    pub shots_failed: u64,
    pub shots_skipped: u64,
    pub overtime_shots: u64,
    pub success_rate: Option<f64>,
    pub max_overtime_seconds: f64,
    pub total_overtime_seconds: f64,
    /// = shotsTaken (the original's name).
    #[serde(default)]
    pub images_captured: u64,
    /// = shotsSuccessful.
    #[serde(default)]
    pub images_successful: u64,
    /// = shotsFailed.
    #[serde(default)]
    pub images_failed: u64,
    /// One entry per failed shot (the original's shape).
    #[serde(default)]
    pub errors: Vec<ResultError>,
    /// File name (no folder) of the first and last image the camera reported.
    #[serde(default)]
    pub first_image_name: Option<String>,
    #[serde(default)]
    pub last_image_name: Option<String>,
}

/// A failed shot as the original lists it under `results.errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultError {
    pub timestamp: String,
    pub shot_number: u64,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Mean of |send time − due time| over shots that were sent.
    pub mean_error_ms: Option<f64>,
    pub p99_error_ms: Option<f64>,
    pub max_error_ms: Option<f64>,
    /// Error of the last on-grid shot minus the first's: what accumulated over the session.
    pub drift_ms: Option<f64>,
    pub mean_duration_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShotError {
    pub shot: u64,
    pub slot: u64,
    pub time: String,
    pub message: String,
}

/// The session's parameters as the original's report names them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalometerParams {
    pub interval: f64,
    pub stop_condition: String,
    /// `stop-after`: the shot limit; otherwise null.
    pub number_of_shots: Option<u32>,
    /// `stop-at`: the resolved stop instant (ISO-8601), not "HH:MM".
    pub stop_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMetadata {
    /// A sentence: "Shot limit reached", "Stopped by user", …
    pub completion_reason: String,
    pub saved_at: String,
    /// [`ORIGINAL_REPORT_FORMAT`].
    pub version: String,
    pub camera_model: Option<String>,
}

/// The camera a session ran with: skylapse's compact view (`report.camera`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCamera {
    pub id: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub settings: Option<CameraSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub id: String,
    /// Same as `id` (seed 000 clients read `sessionId`).
    pub session_id: String,
    pub title: String,
    pub start_time: String,
    pub end_time: String,
    /// End minus start, ms (the original's field).
    #[serde(default)]
    pub duration: i64,
    pub saved_at: String,
    /// completed | stopped | error | interrupted (power lost, saved without resuming).
    pub status: String,
    #[serde(default)]
    pub end_reason: Option<String>,
    pub options: OptionsWire,
    #[serde(default)]
    pub intervalometer: IntervalometerParams,
    #[serde(default)]
    pub camera: Option<ReportCamera>,
    /// CCAPI `deviceinformation` at the start (the original's `cameraInfo`).
    #[serde(default)]
    pub camera_info: Option<DeviceInfo>,
    /// The main settings at the start as CCAPI `{name: {value}}` (the original's shape).
    #[serde(default)]
    pub camera_settings: Option<BTreeMap<String, SettingValue>>,
    pub results: Results,
    pub errors: Vec<ShotError>,
    pub summary: Summary,
    #[serde(default)]
    pub metadata: ReportMetadata,
    pub shots: Vec<ShotRecord>,
}

/// `{"value": …}` of one CCAPI setting, without its ability list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingValue {
    pub value: String,
}

/// The sentence for how a session ended (the original's `reason` / `completionReason`).
pub fn end_sentence(kind: Option<EndKind>, stop: &str, error: Option<&str>) -> String {
    match kind {
        Some(EndKind::Completed) => match stop {
            "stop-after" | "shots" => "Shot limit reached".into(),
            "stop-at" | "time" => "Stop time reached".into(),
            "duration" => "Duration reached".into(),
            _ => "Session completed normally".into(),
        },
        Some(EndKind::Stopped) => "Stopped by user".into(),
        Some(EndKind::Error) => match error {
            Some(e) if !e.is_empty() => format!("Session error: {e}"),
            _ => "Session error".into(),
        },
        None => "Interrupted: the service stopped during the session (power loss or crash)".into(),
    }
}

/// CCAPI-shaped settings (`{"tv": {"value": "30\""}, …}`) from the tracked ones.
pub fn ccapi_settings(s: &CameraSettings) -> BTreeMap<String, SettingValue> {
    let mut m = BTreeMap::new();
    let fields = [
        ("shootingmodedial", &s.mode),
        ("tv", &s.tv),
        ("av", &s.av),
        ("iso", &s.iso),
        ("wb", &s.wb),
        ("exposure", &s.exposure),
        ("drive", &s.drive),
        ("afoperation", &s.afoperation),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_string(), SettingValue { value: v.clone() });
        }
    }
    m
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Whether `id` is safe as a file name: `[A-Za-z0-9_-]{1,100}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Invalid id: use letters, digits, '-' and '_' only",
        ))
    }
}

pub fn clean_title(title: &str) -> Result<String, ApiError> {
    let t: String = title.chars().filter(|c| !c.is_control()).collect();
    let t = t.trim();
    if t.is_empty() {
        return Err(ApiError::invalid("Title must not be empty"));
    }
    Ok(t.chars().take(MAX_TITLE).collect())
}

fn label(ms: f64) -> String {
    iso8601_millis(ms.round() as i64)
}

impl Report {
    /// Builds a report from a replayed journal (a pure function of the journal and the save
    /// time, so it can be streamed or rebuilt at will).
    pub fn from_log(log: &SessionLog, title: Option<&str>, saved_wall_ms: i64) -> Report {
        let h = &log.header;
        let shots = log.shots.clone();
        let (status, end_reason, end_ms, kind) = match &log.end {
            Some((kind, reason, wall)) => (
                kind.as_str().to_string(),
                reason.clone(),
                *wall,
                Some(*kind),
            ),
            None => (
                "interrupted".to_string(),
                Some("the service stopped during the session (power loss or crash)".into()),
                log.last_wall_ms(),
                None,
            ),
        };
        let completion = end_sentence(kind, &h.options.stop_condition, end_reason.as_deref());
        let camera_model = h
            .camera_info
            .as_ref()
            .map(|i| i.productname.clone())
            .filter(|m| !m.is_empty());
        let mut r = Report {
            version: REPORT_VERSION,
            id: h.id.clone(),
            session_id: h.id.clone(),
            title: title.map(str::to_string).unwrap_or_else(|| h.title.clone()),
            start_time: label(h.origin_wall_ms as f64),
            end_time: label(end_ms as f64),
            duration: (end_ms - h.origin_wall_ms).max(0),
            saved_at: iso8601_millis(saved_wall_ms),
            status,
            end_reason,
            options: h.options.clone(),
            intervalometer: IntervalometerParams::default(),
            camera: Some(ReportCamera {
                id: h.camera.clone(),
                model: camera_model.clone(),
                serial: h
                    .camera_info
                    .as_ref()
                    .map(|i| i.serialnumber.clone())
                    .filter(|s| !s.is_empty()),
                settings: h.camera_settings.clone(),
            }),
            camera_info: h.camera_info.clone(),
            camera_settings: h.camera_settings.as_ref().map(ccapi_settings),
            results: tally(&shots, h.options.interval),
            errors: Vec::new(),
            summary: summarize(&shots),
            metadata: ReportMetadata {
                completion_reason: completion,
                saved_at: iso8601_millis(saved_wall_ms),
                version: ORIGINAL_REPORT_FORMAT.into(),
                camera_model,
            },
            shots,
        };
        r.intervalometer = params(&r.options, h.stop_at_wall_ms);
        r.errors = r
            .shots
            .iter()
            .filter_map(|s| {
                s.error.as_ref().map(|m| ShotError {
                    shot: s.shot,
                    slot: s.slot,
                    time: label(s.sent_ms.unwrap_or(s.scheduled_ms)),
                    message: m.clone(),
                })
            })
            .collect();
        r
    }

    /// Fills what a version 1 report (written before the superset) lacks.
    fn upgrade(&mut self) {
        if self.version >= 2 {
            return;
        }
        let ms = crate::util::parse_iso8601;
        if let (Some(a), Some(b)) = (ms(&self.start_time), ms(&self.end_time)) {
            self.duration = (b - a).max(0);
        }
        // Version 1 did not keep the resolved stop instant.
        self.intervalometer = params(&self.options, None);
        let skipped = self.results.shots_skipped;
        let overtime = (
            self.results.overtime_shots,
            self.results.max_overtime_seconds,
            self.results.total_overtime_seconds,
        );
        self.results = tally(&self.shots, self.options.interval);
        self.results.shots_skipped = skipped;
        (
            self.results.overtime_shots,
            self.results.max_overtime_seconds,
            self.results.total_overtime_seconds,
        ) = overtime;
        let kind = match self.status.as_str() {
            "completed" => Some(EndKind::Completed),
            "stopped" => Some(EndKind::Stopped),
            "error" => Some(EndKind::Error),
            _ => None,
        };
        self.metadata = ReportMetadata {
            completion_reason: end_sentence(
                kind,
                &self.options.stop_condition,
                self.end_reason.as_deref(),
            ),
            saved_at: self.saved_at.clone(),
            version: ORIGINAL_REPORT_FORMAT.into(),
            camera_model: None,
        };
        self.version = REPORT_VERSION;
    }

    /// The entry in `timelapse_reports` (no per-shot data; the first [`LIST_ERRORS`] of
    /// `results.errors`).
    pub fn list_entry(&self) -> ReportEntry {
        let mut results = self.results.clone();
        results.errors.truncate(LIST_ERRORS);
        ReportEntry {
            id: self.id.clone(),
            session_id: self.id.clone(),
            title: self.title.clone(),
            start_time: self.start_time.clone(),
            end_time: self.end_time.clone(),
            duration: self.duration,
            saved_at: self.saved_at.clone(),
            status: self.status.clone(),
            intervalometer: self.intervalometer.clone(),
            results,
            summary: self.summary.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// A report without its shots and camera details: the `timelapse_reports` list item
/// (`results.errors` holds the first [`LIST_ERRORS`] failures; `results.imagesFailed` counts
/// them all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    pub id: String,
    pub session_id: String,
    pub title: String,
    pub start_time: String,
    pub end_time: String,
    pub duration: i64,
    pub saved_at: String,
    pub status: String,
    pub intervalometer: IntervalometerParams,
    pub results: Results,
    pub summary: Summary,
    pub metadata: ReportMetadata,
}

fn params(o: &OptionsWire, stop_at_wall_ms: Option<i64>) -> IntervalometerParams {
    IntervalometerParams {
        interval: o.interval,
        stop_condition: o.stop_condition.clone(),
        number_of_shots: o.total_shots,
        stop_at: stop_at_wall_ms.map(iso8601_millis),
    }
}

/// The counts of [`Results`] from the shot records.
fn tally(shots: &[ShotRecord], interval_s: f64) -> Results {
    let ok = shots.iter().filter(|s| s.ok).count() as u64;
    let taken = shots.len() as u64;
    let mut r = Results {
        shots_taken: taken,
        shots_successful: ok,
        shots_failed: taken - ok,
        shots_skipped: shots.iter().map(|s| s.skipped_before).sum(),
        overtime_shots: 0,
        success_rate: (taken > 0).then(|| ok as f64 / taken as f64),
        max_overtime_seconds: 0.0,
        total_overtime_seconds: 0.0,
        images_captured: taken,
        images_successful: ok,
        images_failed: taken - ok,
        errors: shots
            .iter()
            .filter_map(|s| {
                s.error.as_ref().map(|m| ResultError {
                    timestamp: label(s.sent_ms.unwrap_or(s.scheduled_ms)),
                    shot_number: s.shot,
                    error: m.clone(),
                })
            })
            .collect(),
        first_image_name: shots
            .iter()
            .flat_map(|s| s.files.first())
            .next()
            .map(|f| file_name(f)),
        last_image_name: shots
            .iter()
            .rev()
            .flat_map(|s| s.files.first())
            .next()
            .map(|f| file_name(f)),
    };
    for d in shots.iter().filter_map(|s| s.duration_ms) {
        let over = d / 1000.0 - interval_s;
        if over > 0.0 {
            r.overtime_shots += 1;
            r.total_overtime_seconds += over;
            r.max_overtime_seconds = r.max_overtime_seconds.max(over);
        }
    }
    r
}

pub fn summarize(shots: &[ShotRecord]) -> Summary {
    let mut errs: Vec<f64> = shots
        .iter()
        .filter_map(|s| s.error_ms)
        .map(f64::abs)
        .collect();
    errs.sort_by(f64::total_cmp);
    let grid: Vec<f64> = shots
        .iter()
        .filter(|s| !s.late)
        .filter_map(|s| s.error_ms)
        .collect();
    let durations: Vec<f64> = shots.iter().filter_map(|s| s.duration_ms).collect();
    Summary {
        mean_error_ms: (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64),
        p99_error_ms: (!errs.is_empty()).then(|| errs[percentile_index(errs.len(), 0.99)]),
        max_error_ms: errs.last().copied(),
        drift_ms: match (grid.first(), grid.last()) {
            (Some(a), Some(b)) if grid.len() > 1 => Some(b - a),
            _ => None,
        },
        mean_duration_ms: (!durations.is_empty())
            .then(|| durations.iter().sum::<f64>() / durations.len() as f64),
    }
}

/// `results.errors` in list entries holds the first few failures only: a night with the camera
/// gone lists 100k of them (their count is `imagesFailed`; the full list is in the report).
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::intervalometer::journal::{Header, JOURNAL_VERSION};
    use crate::intervalometer::schedule::{OverrunPolicy, SessionOptions, StopCondition};
    use crate::intervalometer::session::EndKind;
    use std::time::Duration;

    pub(crate) fn log(n: u64) -> SessionLog {
        let shots = (0..n)
            .map(|i| ShotRecord {
                slot: i,
                shot: i + 1,
                scheduled_ms: 1_000_000.0 + i as f64 * 1000.0,
                sent_ms: (i != 2).then_some(1_000_000.0 + i as f64 * 1000.0 + 0.2 * i as f64),
                replied_ms: (i != 2).then_some(1_000_100.0 + i as f64 * 1000.0),
                error_ms: (i != 2).then_some(0.2 * i as f64),
                duration_ms: (i != 2).then_some(if i == 3 { 1500.0 } else { 100.0 }),
                ok: i != 2,
                error: (i == 2).then(|| "camera offline: busy, \"503\"".to_string()),
                late: false,
                skipped_before: u64::from(i == 4),
                files: if i == 0 {
                    vec!["IMG_1.CR3".into(), "IMG_1.JPG".into()]
                } else {
                    vec![]
                },
                reply_lost: false,
                settings: None,
                exposure_ev: None,
                light: None,
            })
            .collect();
        SessionLog {
            header: Header {
                v: JOURNAL_VERSION,
                id: "20220101-230000-ab12".into(),
                title: "Stars <&> \"night\"".into(),
                options: SessionOptions {
                    interval: Duration::from_secs(1),
                    stop: StopCondition::AfterShots(5),
                    overrun: OverrunPolicy::NextSlot,
                    bulb: None,
                    af: false,
                    exposure: None,
                    ..SessionOptions::default()
                }
                .to_wire(),
                created_wall_ms: 999_000,
                origin_wall_ms: 1_000_000,
                stop_at_wall_ms: None,
                tz_offset_secs: 0,
                camera: Some("SN123".into()),
                camera_info: Some(DeviceInfo {
                    manufacturer: "Canon.Inc".into(),
                    productname: "Canon EOS R50".into(),
                    serialnumber: "SN123".into(),
                    ..DeviceInfo::default()
                }),
                camera_settings: Some(CameraSettings {
                    tv: Some("30\"".into()),
                    iso: Some("6400".into()),
                    ..CameraSettings::default()
                }),
            },
            shots,
            resumes: vec![],
            end: Some((EndKind::Completed, None, 1_005_000)),
            bad_lines: 0,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn report_counts_and_summary() {
        let r = Report::from_log(&log(5), None, 2_000_000);
        assert_eq!(r.results.shots_taken, 5);
        assert_eq!(r.results.shots_failed, 1);
        assert_eq!(r.results.shots_skipped, 1);
        assert_eq!(r.results.overtime_shots, 1);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.status, "completed");
        let s = &r.summary;
        assert!((s.max_error_ms.unwrap() - 0.8).abs() < 1e-9);
        assert!((s.mean_error_ms.unwrap() - 0.4).abs() < 1e-9);
        assert!((s.drift_ms.unwrap() - 0.8).abs() < 1e-9);
        let mut unfinished = log(3);
        unfinished.end = None;
        assert_eq!(
            Report::from_log(&unfinished, Some("x"), 0).status,
            "interrupted"
        );
    }

    #[test]
    fn report_carries_the_original_services_fields() {
        let r = Report::from_log(&log(5), None, 2_000_000);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["duration"], 5_000);
        assert_eq!(v["intervalometer"]["interval"], 1.0);
        assert_eq!(v["intervalometer"]["stopCondition"], "stop-after");
        assert_eq!(v["intervalometer"]["numberOfShots"], 5);
        assert!(v["intervalometer"]["stopAt"].is_null());
        assert_eq!(v["results"]["imagesCaptured"], 5);
        assert_eq!(v["results"]["imagesSuccessful"], 4);
        assert_eq!(v["results"]["imagesFailed"], 1);
        assert_eq!(v["results"]["errors"][0]["shotNumber"], 3);
        assert!(v["results"]["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("busy"));
        assert!(v["results"]["errors"][0]["timestamp"].is_string());
        assert_eq!(v["results"]["firstImageName"], "IMG_1.CR3");
        assert_eq!(v["results"]["lastImageName"], "IMG_1.CR3");
        assert_eq!(v["metadata"]["completionReason"], "Shot limit reached");
        assert_eq!(v["metadata"]["version"], ORIGINAL_REPORT_FORMAT);
        assert_eq!(v["metadata"]["cameraModel"], "Canon EOS R50");
        assert_eq!(v["cameraInfo"]["serialnumber"], "SN123");
        assert_eq!(v["cameraSettings"]["tv"]["value"], "30\"");
        assert_eq!(v["camera"]["model"], "Canon EOS R50");
        assert_eq!(v["camera"]["settings"]["iso"], "6400");
        // skylapse's own fields are still there.
        assert_eq!(v["results"]["shotsTaken"], 5);
        assert_eq!(v["errors"][0]["shot"], 3);
    }

    #[test]
    fn a_version_1_report_is_upgraded_when_read() {
        let dir = std::env::temp_dir().join(format!("skylapse-rep-v1-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = ReportStore::new(&dir);
        let r = Report::from_log(&log(5), None, 2_000_000);
        let mut v = serde_json::to_value(&r).unwrap();
        v["version"] = 1.into();
        for k in [
            "duration",
            "intervalometer",
            "metadata",
            "cameraInfo",
            "cameraSettings",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
        for k in ["imagesCaptured", "errors", "firstImageName"] {
            v["results"].as_object_mut().unwrap().remove(k);
        }
        fs::create_dir_all(dir.join("reports")).unwrap();
        fs::write(
            dir.join("reports").join(format!("{}.json", r.id)),
            v.to_string(),
        )
        .unwrap();
        let up = store.get(&r.id).unwrap();
        assert_eq!(up.version, REPORT_VERSION);
        assert_eq!(up.duration, 5_000);
        assert_eq!(up.results.images_captured, 5);
        assert_eq!(up.results.errors.len(), 1);
        assert_eq!(up.results.first_image_name.as_deref(), Some("IMG_1.CR3"));
        assert_eq!(up.metadata.completion_reason, "Shot limit reached");
        fs::remove_dir_all(&dir).unwrap();
    }
}
