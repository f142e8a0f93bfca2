//! The report files: saved atomically, listed through a summary index (only changed files
//! are read), streamed as they are, checked before they are served.

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervalometer::report::tests::log;

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
        let bytes = include_bytes!("../../../fuzz/regressions/report/latin1-in-an-unknown-field");
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
