//! Session reports: `<data_dir>/reports/<id>.json`, written atomically; CSV export of the
//! shots; an SVG chart of per-shot timing error and shot duration (hand-written SVG).

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
pub const LIST_ERRORS: usize = 20;

/// The summary index beside the reports (`reports/.index.json`): one list entry per file,
/// keyed by the file's size, modification time and inode, so listing reads only files that
/// changed since. Rebuilt from the files when missing, stale or unreadable; written atomically.
const INDEX_FILE: &str = ".index.json";
const INDEX_VERSION: u32 = 1;

/// What identifies one version of a report file (an atomic rewrite gives a new inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileKey {
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
    ino: u64,
}

impl FileKey {
    fn of(meta: &fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        FileKey {
            len: meta.len(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    key: FileKey,
    /// `None`: the file is not a readable report (remembered so it is not re-read and
    /// warned about on every listing).
    entry: Option<ReportEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    v: u32,
    reports: BTreeMap<String, IndexEntry>,
}

/// A report file opened for streaming: checked (a version-2 report of this id, valid JSON and
/// UTF-8) when this version of the file was indexed; read with positional reads.
#[derive(Debug, Clone)]
pub struct OpenReport {
    pub file: Arc<fs::File>,
    pub len: u64,
}

/// The reports folder.
#[derive(Debug, Clone)]
pub struct ReportStore {
    dir: PathBuf,
    /// The index as last read or written (`None`: not loaded yet); the lock also serialises
    /// index updates.
    index: Arc<Mutex<Option<Index>>>,
}

impl ReportStore {
    pub fn new(data_dir: &Path) -> ReportStore {
        ReportStore {
            dir: data_dir.join("reports"),
            index: Arc::new(Mutex::new(None)),
        }
    }

    fn path(&self, id: &str) -> Result<PathBuf, ApiError> {
        check_id(id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    pub fn save(&self, report: &Report) -> Result<(), ApiError> {
        let path = self.path(&report.id)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| ApiError::system(format!("Cannot create the reports folder: {e}")))?;
        let bytes = serde_json::to_vec_pretty(report)
            .map_err(|e| ApiError::system(format!("Cannot encode the report: {e}")))?;
        atomic_write(&path, &bytes)
            .map_err(|e| ApiError::system(format!("Cannot write the report: {e}")))
    }

    /// The whole report, parsed (renaming, CSV and chart need it; clients get
    /// [`Self::open`]'s stream instead).
    pub fn get(&self, id: &str) -> Result<Report, ApiError> {
        let path = self.path(id)?;
        read_report(&path).map_err(|e| match e {
            ReadError::Missing => not_found(id),
            ReadError::Bad(m) => ApiError::system(format!("Report {id} is unreadable: {m}")),
        })
    }

    pub fn exists(&self, id: &str) -> bool {
        self.path(id).map(|p| p.exists()).unwrap_or(false)
    }

    /// Opens a report to stream it as it is on disk, without parsing it into memory. A file
    /// not seen before (or changed since) is checked first in one bounded-memory pass; a
    /// version 1 report is upgraded and rewritten once.
    pub fn open(&self, id: &str) -> Result<OpenReport, ApiError> {
        let path = self.path(id)?;
        let mut index = lock(&self.index);
        let index = self.loaded(&mut index);
        for _ in 0..2 {
            let file = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(id)),
                Err(e) => return Err(ApiError::system(format!("Cannot open report {id}: {e}"))),
            };
            let meta = file
                .metadata()
                .map_err(|e| ApiError::system(format!("Cannot open report {id}: {e}")))?;
            let key = FileKey::of(&meta);
            let known = index.reports.get(id).filter(|e| e.key == key);
            let ok = match known {
                Some(e) => e.entry.is_some(),
                None => match self.index_file(id, &file, &meta) {
                    Scanned::Entry(entry) => {
                        index.reports.insert(
                            id.to_string(),
                            IndexEntry {
                                key,
                                entry: Some(*entry),
                            },
                        );
                        self.write_index(index);
                        true
                    }
                    // Rewritten as version 2: open the new file.
                    Scanned::Upgraded => continue,
                    Scanned::Bad(m) => {
                        return Err(ApiError::system(format!("Report {id} is unreadable: {m}")))
                    }
                },
            };
            if !ok {
                return Err(ApiError::system(format!(
                    "Report {id} is unreadable: not a report file"
                )));
            }
            return Ok(OpenReport {
                file: Arc::new(file),
                len: meta.len(),
            });
        }
        Err(ApiError::system(format!(
            "Report {id} is unreadable: it keeps changing"
        )))
    }

    /// Every readable report's list entry, newest first, from the index; files new or changed
    /// since are read once (torn or foreign files are skipped with one log line).
    pub fn list(&self) -> Vec<ReportEntry> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut guard = lock(&self.index);
        let index = self.loaded(&mut guard);
        let mut seen = std::collections::BTreeSet::new();
        let mut changed = false;
        for e in entries.flatten() {
            let p = e.path();
            let Some(id) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| valid_id(id))
                .map(str::to_string)
            else {
                continue;
            };
            let Ok(meta) = fs::metadata(&p) else {
                continue;
            };
            seen.insert(id.clone());
            let key = FileKey::of(&meta);
            if index.reports.get(&id).is_some_and(|e| e.key == key) {
                continue;
            }
            changed = true;
            let scanned = match fs::File::open(&p) {
                Ok(f) => self.index_file(&id, &f, &meta),
                Err(e) => Scanned::Bad(e.to_string()),
            };
            let (key, entry) = match scanned {
                Scanned::Entry(entry) => (key, Some(*entry)),
                Scanned::Upgraded => {
                    // Rewritten as version 2: index the new file.
                    let reread = fs::File::open(&p).and_then(|f| Ok((f.metadata()?, f)));
                    match reread {
                        Ok((meta, f)) => match self.index_file(&id, &f, &meta) {
                            Scanned::Entry(entry) => (FileKey::of(&meta), Some(*entry)),
                            _ => (FileKey::of(&meta), None),
                        },
                        Err(_) => continue,
                    }
                }
                Scanned::Bad(m) => {
                    log::warn!("skipping report {}: {m}", p.display());
                    (key, None)
                }
            };
            index.reports.insert(id, IndexEntry { key, entry });
        }
        let before = index.reports.len();
        index.reports.retain(|id, _| seen.contains(id));
        if changed || index.reports.len() != before {
            self.write_index(index);
        }
        let mut out: Vec<ReportEntry> = index
            .reports
            .values()
            .filter_map(|e| e.entry.clone())
            .collect();
        out.sort_by(|a, b| b.start_time.cmp(&a.start_time));
        out
    }

    /// The index, read from its file on first use (missing or unreadable: empty, so every
    /// report is read once and the index rebuilt).
    fn loaded<'a>(&self, slot: &'a mut Option<Index>) -> &'a mut Index {
        slot.get_or_insert_with(|| {
            let path = self.dir.join(INDEX_FILE);
            let read = fs::File::open(&path).ok().and_then(|f| {
                // The index is small (a few hundred bytes a report); a huge one is not ours.
                let f = std::io::BufReader::new(f).take(64 * 1024 * 1024);
                serde_json::from_reader::<_, Index>(f).ok()
            });
            match read {
                Some(i) if i.v == INDEX_VERSION => i,
                _ => Index {
                    v: INDEX_VERSION,
                    reports: BTreeMap::new(),
                },
            }
        })
    }

    fn write_index(&self, index: &Index) {
        let bytes = match serde_json::to_vec(index) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("cannot encode the report index: {e}");
                return;
            }
        };
        // Only a cache: if it cannot be written, listing reads the files again next time.
        if let Err(e) = atomic_write(&self.dir.join(INDEX_FILE), &bytes) {
            log::debug!("cannot write the report index: {e}");
        }
    }

    /// Reads one report file in a single pass of bounded memory: its list entry, its id
    /// (must match the file name), valid JSON and UTF-8 throughout.
    fn index_file(&self, id: &str, file: &fs::File, meta: &fs::Metadata) -> Scanned {
        if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
            return Scanned::Bad("not a report file".into());
        }
        let head = match scan_report(file) {
            Ok(h) => h,
            Err(m) => return Scanned::Bad(m),
        };
        if head.id != id {
            return Scanned::Bad("id does not match file name".into());
        }
        if head.version < REPORT_VERSION {
            // Written before the superset: upgraded in full once, then streamed like the rest.
            return match self.get(id).and_then(|r| self.save(&r)) {
                Ok(()) => Scanned::Upgraded,
                Err(e) => Scanned::Bad(e.message),
            };
        }
        Scanned::Entry(Box::new(head.into_entry()))
    }

    pub fn rename(&self, id: &str, title: &str) -> Result<Report, ApiError> {
        let mut r = self.get(id)?;
        r.title = clean_title(title)?;
        self.save(&r)?;
        Ok(r)
    }

    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        let path = self.path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(id)),
            Err(e) => Err(ApiError::system(format!("Cannot delete report {id}: {e}"))),
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, format!("Report {id} not found"))
}

enum Scanned {
    Entry(Box<ReportEntry>),
    /// A version 1 file was rewritten as version 2.
    Upgraded,
    Bad(String),
}

/// `results` as a list entry keeps it: the first [`LIST_ERRORS`] errors.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsHead {
    shots_taken: u64,
    shots_successful: u64,
    shots_failed: u64,
    shots_skipped: u64,
    overtime_shots: u64,
    success_rate: Option<f64>,
    max_overtime_seconds: f64,
    total_overtime_seconds: f64,
    #[serde(default)]
    images_captured: u64,
    #[serde(default)]
    images_successful: u64,
    #[serde(default)]
    images_failed: u64,
    #[serde(default, deserialize_with = "first_errors")]
    errors: Vec<ResultError>,
    #[serde(default)]
    first_image_name: Option<String>,
    #[serde(default)]
    last_image_name: Option<String>,
}

/// A report file's fields but its per-shot lists (skipped while parsing, never held).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportHead {
    version: u32,
    id: String,
    title: String,
    start_time: String,
    end_time: String,
    #[serde(default)]
    duration: i64,
    saved_at: String,
    status: String,
    #[serde(default)]
    intervalometer: IntervalometerParams,
    results: ResultsHead,
    summary: Summary,
    #[serde(default)]
    metadata: ReportMetadata,
    // Required like Report's own, so a file without them is not taken for a report.
    #[serde(rename = "shots")]
    _shots: serde::de::IgnoredAny,
    #[serde(rename = "options")]
    _options: serde::de::IgnoredAny,
}

impl ReportHead {
    fn into_entry(self) -> ReportEntry {
        let r = self.results;
        ReportEntry {
            id: self.id.clone(),
            session_id: self.id,
            title: self.title,
            start_time: self.start_time,
            end_time: self.end_time,
            duration: self.duration,
            saved_at: self.saved_at,
            status: self.status,
            intervalometer: self.intervalometer,
            results: Results {
                shots_taken: r.shots_taken,
                shots_successful: r.shots_successful,
                shots_failed: r.shots_failed,
                shots_skipped: r.shots_skipped,
                overtime_shots: r.overtime_shots,
                success_rate: r.success_rate,
                max_overtime_seconds: r.max_overtime_seconds,
                total_overtime_seconds: r.total_overtime_seconds,
                images_captured: r.images_captured,
                images_successful: r.images_successful,
                images_failed: r.images_failed,
                errors: r.errors,
                first_image_name: r.first_image_name,
                last_image_name: r.last_image_name,
            },
            summary: self.summary,
            metadata: self.metadata,
        }
    }
}

/// Keeps the first [`LIST_ERRORS`] elements of a list and skips the rest unparsed.
fn first_errors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ResultError>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<ResultError>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of errors")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while out.len() < LIST_ERRORS {
                match seq.next_element()? {
                    Some(e) => out.push(e),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// Parses a report file's head in one streaming pass (64 KiB buffer; the shot list is skipped
/// without being held), checking the whole file is JSON and UTF-8, so it can be sent as a
/// WebSocket text message as it is.
fn scan_report(file: &fs::File) -> Result<ReportHead, String> {
    let reader = std::io::BufReader::with_capacity(64 * 1024, Utf8Check::new(file));
    let mut de = serde_json::Deserializer::from_reader(reader);
    let head = ReportHead::deserialize(&mut de).map_err(|e| format!("not a report: {e}"))?;
    de.end().map_err(|e| format!("not a report: {e}"))?;
    Ok(head)
}

/// Parses the list entry of report bytes (the fuzz target's view of a report file).
#[doc(hidden)]
pub fn scan_report_bytes(bytes: &[u8]) -> Result<ReportEntry, String> {
    let mut de = serde_json::Deserializer::from_reader(Utf8Check::new(bytes));
    let head = ReportHead::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(head.into_entry())
}

/// A reader that fails (`InvalidData`) on bytes that are not UTF-8, across read boundaries.
struct Utf8Check<R> {
    inner: R,
    /// The start of a character cut by the previous read.
    carry: [u8; 4],
    carried: usize,
}

impl<R> Utf8Check<R> {
    fn new(inner: R) -> Self {
        Utf8Check {
            inner,
            carry: [0; 4],
            carried: 0,
        }
    }
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl<R: std::io::Read> std::io::Read for Utf8Check<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8");
        let n = self.inner.read(buf)?;
        if n == 0 {
            return if self.carried > 0 { Err(bad()) } else { Ok(0) };
        }
        let mut rest = &buf[..n];
        if self.carried > 0 {
            let need = utf8_width(self.carry[0]) - self.carried;
            let take = need.min(rest.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&rest[..take]);
            self.carried += take;
            rest = &rest[take..];
            if take == need {
                std::str::from_utf8(&self.carry[..self.carried]).map_err(|_| bad())?;
                self.carried = 0;
            }
        }
        if let Err(e) = std::str::from_utf8(rest) {
            let valid = e.valid_up_to();
            let tail = &rest[valid..];
            // Only a character cut at the end of this read may wait for the next one.
            if e.error_len().is_some() || tail.len() >= 4 {
                return Err(bad());
            }
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carried = tail.len();
        }
        Ok(n)
    }
}

enum ReadError {
    Missing,
    Bad(String),
}

fn read_report(path: &Path) -> Result<Report, ReadError> {
    let meta = fs::metadata(path).map_err(|_| ReadError::Missing)?;
    if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
        return Err(ReadError::Bad("not a report file".into()));
    }
    let bytes = fs::read(path).map_err(|e| ReadError::Bad(e.to_string()))?;
    let mut r: Report =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Bad(format!("not a report: {e}")))?;
    r.upgrade();
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// CSV

fn csv_field(out: &mut String, s: &str) {
    // Quote everything that could break a row; neutralise spreadsheet formulas.
    let formula = s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err();
    if formula || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_default()
}

pub fn to_csv(r: &Report) -> String {
    let mut out = String::from(
        "shot,slot,scheduled,sent,replied,timing_error_ms,duration_ms,result,error,skipped_before,late,files,tv,iso,av,exposure_ev,brightness,sun_alt\n",
    );
    for s in &r.shots {
        let cells = [
            s.shot.to_string(),
            s.slot.to_string(),
            label(s.scheduled_ms),
            s.sent_ms.map(label).unwrap_or_default(),
            s.replied_ms.map(label).unwrap_or_default(),
            opt_num(s.error_ms),
            opt_num(s.duration_ms),
            if s.ok { "ok" } else { "failed" }.to_string(),
            s.error.clone().unwrap_or_default(),
            s.skipped_before.to_string(),
            s.late.to_string(),
            s.files.join(" "),
            // Ramped sessions: what each frame was shot with (for a deflicker pass).
            s.settings
                .as_ref()
                .and_then(|x| x.tv.clone())
                .unwrap_or_default(),
            s.settings
                .as_ref()
                .and_then(|x| x.iso.clone())
                .unwrap_or_default(),
            s.settings
                .as_ref()
                .and_then(|x| x.av.clone())
                .unwrap_or_default(),
            s.exposure_ev.map(|e| format!("{e:.3}")).unwrap_or_default(),
            s.light
                .as_ref()
                .map(|l| format!("{:.5}", l.brightness))
                .unwrap_or_default(),
            s.light
                .as_ref()
                .map(|l| format!("{:.2}", l.sun_alt))
                .unwrap_or_default(),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, c);
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SVG

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

type SeriesFn = Box<dyn Fn(&ShotRecord) -> Option<f64>>;

/// Two stacked panels over shot number: timing error (ms) and shot duration (ms). Failed
/// shots are marked in red on the x axis. At most ~2000 points per series (evenly thinned).
pub fn to_svg(r: &Report) -> String {
    const W: f64 = 800.0;
    const PANEL_H: f64 = 180.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const GAP: f64 = 50.0;
    let h = TOP + 2.0 * PANEL_H + GAP + 40.0;
    let n = r.shots.len().max(1) as f64;
    let step = (r.shots.len() / 2000).max(1);
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="{LEFT}" y="20" font-size="14">{} — {} shots, mean error {} ms, p99 {} ms</text>"##,
        xml_escape(&r.title),
        r.shots.len(),
        opt_num(r.summary.mean_error_ms),
        opt_num(r.summary.p99_error_ms),
    );
    let panels: [(&str, &str, SeriesFn); 2] = [
        ("Timing error (ms)", "#1f77b4", Box::new(|s| s.error_ms)),
        ("Shot duration (ms)", "#2ca02c", Box::new(|s| s.duration_ms)),
    ];
    for (p, (name, color, value)) in panels.iter().enumerate() {
        let top = TOP + p as f64 * (PANEL_H + GAP);
        let vals: Vec<(usize, f64)> = r
            .shots
            .iter()
            .enumerate()
            .step_by(step)
            .filter_map(|(i, s)| value(s).map(|v| (i, v)))
            .collect();
        let (mut lo, mut hi) = vals.iter().fold((0.0f64, 0.0f64), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        let pad = (hi - lo) * 0.05;
        lo -= if lo < 0.0 { pad } else { 0.0 };
        hi += pad;
        let y = |v: f64| top + PANEL_H - (v - lo) / (hi - lo) * PANEL_H;
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}">{name}</text><rect x="{LEFT}" y="{top}" width="{}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            top - 6.0,
            W - LEFT - RIGHT
        );
        // Enough decimals that the axis of a sub-millisecond error chart is not all "0.00".
        let decimals = match hi - lo {
            r if r >= 10.0 => 1,
            r if r >= 0.1 => 2,
            r if r >= 0.001 => 4,
            _ => 6,
        };
        for v in [lo, 0.0, hi] {
            if v < lo || v > hi {
                continue;
            }
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{v:.decimals$}</text><line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                LEFT - 4.0,
                y(v) + 4.0,
                W - RIGHT,
                y(v),
                y(v)
            );
        }
        if !vals.is_empty() {
            svg.push_str(r#"<polyline fill="none" stroke-width="1" stroke=""#);
            svg.push_str(color);
            svg.push_str(r#"" points=""#);
            for (i, v) in &vals {
                let _ = write!(svg, "{:.1},{:.1} ", x(*i), y(*v));
            }
            svg.push_str(r#""/>"#);
        }
        for (i, s) in r.shots.iter().enumerate().filter(|(_, s)| !s.ok) {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#d62728"><title>shot {} failed</title></circle>"##,
                x(i),
                top + PANEL_H,
                s.shot
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">shot number (1 – {})</text></svg>"#,
        (W + LEFT) / 2.0,
        h - 10.0,
        r.shots.len()
    );
    svg
}

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

    #[test]
    fn csv_has_one_row_per_shot_and_quotes_errors() {
        let csv = to_csv(&Report::from_log(&log(5), None, 0));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with("shot,slot,scheduled"));
        assert!(
            lines[1].starts_with("1,0,1970-01-01T00:16:40.000Z,"),
            "{}",
            lines[1]
        );
        assert!(
            // Not ramped: the settings columns are empty.
            lines[1].ends_with(",ok,,0,false,IMG_1.CR3 IMG_1.JPG,,,,,,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[3].contains(r#",failed,"camera offline: busy, ""503""",0,"#),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn svg_is_well_formed_and_escapes_the_title() {
        let svg = to_svg(&Report::from_log(&log(5), None, 0));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("Stars &lt;&amp;&gt; &quot;night&quot;"));
        assert!(!svg.contains("<&>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("shot 3 failed"));
        // An empty report still renders.
        let empty = to_svg(&Report::from_log(&log(0), None, 0));
        assert!(empty.ends_with("</svg>"));
    }

    #[test]
    fn store_skips_garbage_and_rejects_traversal() {
        let dir = std::env::temp_dir().join(format!("skylapse-reports-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = ReportStore::new(&dir);
        let r = Report::from_log(&log(5), None, 0);
        store.save(&r).unwrap();
        fs::write(
            dir.join("reports/torn.json"),
            br#"{"version":1,"id":"torn","tit"#,
        )
        .unwrap();
        fs::write(dir.join("reports/foreign.json"), br#"{"hello":"world"}"#).unwrap();
        fs::write(dir.join("reports/notes.txt"), b"hi").unwrap();
        let list = store.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, r.id);
        assert_eq!(
            store.rename(&r.id, "  New\n title ").unwrap().title,
            "New title"
        );
        assert_eq!(store.get(&r.id).unwrap().title, "New title");
        for bad in ["../etc/passwd", "a/b", "", "a.json", "..", "x y"] {
            assert_eq!(
                store.get(bad).unwrap_err().code,
                ErrorCode::InvalidParameter,
                "{bad}"
            );
        }
        assert_eq!(
            store.get("nope").unwrap_err().code,
            ErrorCode::SessionNotFound
        );
        store.delete(&r.id).unwrap();
        assert_eq!(
            store.delete(&r.id).unwrap_err().code,
            ErrorCode::SessionNotFound
        );
        fs::remove_dir_all(&dir).unwrap();
    }
    fn store_with(name: &str, reports: &[Report]) -> (PathBuf, ReportStore) {
        let dir = std::env::temp_dir().join(format!("skylapse-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = ReportStore::new(&dir);
        for r in reports {
            store.save(r).unwrap();
        }
        (dir, store)
    }

    fn streamed(open: &OpenReport) -> Vec<u8> {
        let mut out = vec![0u8; open.len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*open.file, &mut out, 0).unwrap();
        out
    }

    #[test]
    fn listing_reads_the_index_not_the_files_until_one_changes() {
        let r = Report::from_log(&log(5), None, 0);
        let (dir, store) = store_with("rep-index", std::slice::from_ref(&r));
        assert_eq!(store.list(), vec![r.list_entry()]);
        let index = dir.join("reports").join(INDEX_FILE);
        assert!(index.exists(), "the index is written beside the reports");
        // Garbage of the same size in the same file with the same mtime: a listing that read
        // the file would skip it; the index still answers.
        let path = dir.join(format!("reports/{}.json", r.id));
        let meta = fs::metadata(&path).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &vec![b'x'; meta.len() as usize], 0).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
        drop(f);
        let fresh = ReportStore::new(&dir);
        assert_eq!(fresh.list().len(), 1, "listed from the index file");
        // Changed (mtime moved): read again, found unreadable, skipped.
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        assert!(fresh.list().is_empty());
        assert!(fresh.open(&r.id).is_err(), "a stale entry is not streamed");
        // A missing or garbage index is rebuilt from the files.
        store.save(&r).unwrap();
        fs::write(&index, b"{nope").unwrap();
        assert_eq!(ReportStore::new(&dir).list(), vec![r.list_entry()]);
        fs::remove_file(&index).unwrap();
        assert_eq!(ReportStore::new(&dir).list(), vec![r.list_entry()]);
        // A deleted report leaves the index.
        store.delete(&r.id).unwrap();
        assert!(store.list().is_empty());
        let idx: Index = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
        assert!(idx.reports.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn list_entries_carry_the_first_errors_only() {
        let mut l = log(LIST_ERRORS as u64 * 3);
        for s in &mut l.shots {
            s.ok = false;
            s.error = Some("camera gone".into());
        }
        let r = Report::from_log(&l, None, 0);
        assert_eq!(r.results.errors.len(), LIST_ERRORS * 3);
        let (dir, store) = store_with("rep-errors", std::slice::from_ref(&r));
        let listed = store.list();
        assert_eq!(listed[0].results.errors.len(), LIST_ERRORS);
        assert_eq!(listed[0].results.images_failed, LIST_ERRORS as u64 * 3);
        assert_eq!(listed[0], r.list_entry());
        assert_eq!(
            store.get(&r.id).unwrap().results.errors.len(),
            LIST_ERRORS * 3
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_streams_the_file_as_it_is_and_refuses_what_is_not_a_report() {
        let r = Report::from_log(&log(5), None, 0);
        let (dir, store) = store_with("rep-open", std::slice::from_ref(&r));
        let open = store.open(&r.id).unwrap();
        let bytes = streamed(&open);
        assert_eq!(
            bytes,
            fs::read(dir.join(format!("reports/{}.json", r.id))).unwrap()
        );
        assert_eq!(serde_json::from_slice::<Report>(&bytes).unwrap(), r);
        assert_eq!(
            store.open("nope").unwrap_err().code,
            ErrorCode::SessionNotFound
        );
        assert_eq!(
            store.open("../x").unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        let reports = dir.join("reports");
        let bad: [(&str, &[u8]); 3] = [
            ("torn", br#"{"version":2,"id":"torn","tit"#),
            ("other", br#"[1,2,3]"#),
            ("trailing", b"{} {}"),
        ];
        for (id, content) in bad {
            fs::write(reports.join(format!("{id}.json")), content).unwrap();
            assert_eq!(
                store.open(id).unwrap_err().code,
                ErrorCode::SystemError,
                "{id}"
            );
        }
        // A Latin-1 byte in a file name deep in the shot list (skipped, never parsed): not
        // UTF-8, so it cannot go out as a WebSocket text message.
        let mut latin = r.clone();
        latin.id = "latin".into();
        let text = serde_json::to_vec(&latin).unwrap();
        let at = text.windows(9).position(|w| w == b"IMG_1.CR3").unwrap();
        let mut text = text;
        text[at + 4] = 0xe9;
        fs::write(reports.join("latin.json"), &text).unwrap();
        let e = store.open("latin").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        // A report whose id is another's is not served under this name.
        let mut copy = serde_json::to_value(&r).unwrap();
        copy["id"] = "elsewhere".into();
        fs::write(reports.join("copy.json"), copy.to_string()).unwrap();
        assert!(store.open("copy").is_err());
        assert_eq!(store.list().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_1_report_is_rewritten_as_version_2_when_opened() {
        let r = Report::from_log(&log(5), None, 2_000_000);
        let mut v = serde_json::to_value(&r).unwrap();
        v["version"] = 1.into();
        v.as_object_mut().unwrap().remove("metadata");
        let (dir, store) = store_with("rep-open-v1", &[]);
        fs::create_dir_all(dir.join("reports")).unwrap();
        fs::write(dir.join(format!("reports/{}.json", r.id)), v.to_string()).unwrap();
        let got: Report = serde_json::from_slice(&streamed(&store.open(&r.id).unwrap())).unwrap();
        assert_eq!(got.version, REPORT_VERSION);
        assert_eq!(got.metadata.completion_reason, "Shot limit reached");
        assert_eq!(
            store.list()[0].metadata.completion_reason,
            "Shot limit reached"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Found by the report fuzz target: serde skips an unknown field without checking its
    /// bytes, so the full parse reads a file the stream could not send as text; the scan
    /// (which decides what is streamed) refuses it.
    #[test]
    fn a_stray_latin1_byte_the_full_parse_skips_is_refused_by_the_scan() {
        let bytes = include_bytes!("../../fuzz/regressions/report/latin1-in-an-unknown-field");
        assert!(serde_json::from_slice::<Report>(bytes).is_ok());
        let e = scan_report_bytes(bytes).unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
    }

    /// Hands out one byte per read, so every multibyte character is cut.
    struct Dribble<'a>(&'a [u8]);
    impl std::io::Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((b, rest)), false) => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn utf8_check_follows_characters_across_reads() {
        let read = |bytes: &[u8]| {
            let mut out = Vec::new();
            Utf8Check::new(Dribble(bytes))
                .read_to_end(&mut out)
                .map(|_| out)
        };
        let text = "Nuit étoilée ✨ 𝄞 ok".as_bytes();
        assert_eq!(read(text).unwrap(), text);
        assert!(read(b"caf\xe9 ").is_err());
        assert!(read(b"cut \xe2\x9c").is_err(), "a character cut by the end");
        assert!(read(b"\xed\xa0\x80").is_err(), "a surrogate");
        let mut whole = Vec::new();
        Utf8Check::new(text).read_to_end(&mut whole).unwrap();
        assert_eq!(whole, text);
    }
}
