//! The session journal: `<data_dir>/sessions/<id>.journal`, one JSON object per line.
//!
//! Durability: the header, `resume` and `end` lines are fsynced at once ([`Journal::append`]).
//! While a session runs its lines are written at once ([`Journal::write_at`]: a kill or a
//! crash loses nothing, the page cache survives the process) and fsynced off the executor's
//! thread ([`Journal::begin_sync`]): at once when the last fsync is at least [`SYNC_WINDOW`]
//! old (so every record of a session at 5 s or slower), otherwise with the first line past
//! the window, at the latest 2 × [`SYNC_WINDOW`] after it ([`Journal::sync_due`]). A power
//! cut loses at most the shot in flight, or at 1 s intervals the last ~10 s of records (their
//! photos are on the camera's card either way). Why: an fsync costs about 3 context switches
//! on ext4, twice per frame at first (issue 13); and inline on the executor a slow one (a busy
//! SD card: hundreds of ms) held up the next shot's hand-over (bench e2e saw a shot 396 ms
//! late and a slot skipped).
//! A torn last line (cut mid-write) is ignored on replay and cut off before the journal is
//! appended to again.
//!
//! A full or read-only card (issue 9, item 5): a line that cannot be written is kept in memory
//! (up to [`MAX_PENDING_BYTES`]) and written, in order, by the next append or [`Journal::flush`]
//! once space returns; the bytes a failed write left behind are cut first, so a record is never
//! glued to a partial one. A journal whose header cannot be written is removed again.
//!
//! ```text
//!  Durable ──write or fsync fails──▶ Holding (lines in memory; tail past good_len is torn)
//!     ▲                                   │ append: queued; flush: cut the tail, write all, fsync
//!     └────────────── flush succeeds ─────┘
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::schedule::OptionsWire;
use super::session::{EndKind, JournalEntry, ShotRecord};

pub const JOURNAL_VERSION: u32 = 1;
/// A shot record is fsynced at once only when the last fsync is at least this old (see the
/// module doc); unsynced lines are synced at the latest twice this after the last fsync.
pub const SYNC_WINDOW: Duration = Duration::from_secs(5);
/// A journal larger than this is not read whole (a day of 0.2 s shots is ~80 MB).
const MAX_JOURNAL_BYTES: u64 = 256 * 1024 * 1024;
/// Lines held in memory while the card is full, at most (about 13,000 shot records, 3.6 h at
/// 1 s intervals); past it new shot records are counted as lost. The end line always fits.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub v: u32,
    pub id: String,
    pub title: String,
    pub options: OptionsWire,
    /// When the session was created (Unix ms).
    pub created_wall_ms: i64,
    /// Wall label of slot 0; resume maps the grid back through it.
    pub origin_wall_ms: i64,
    #[serde(default)]
    pub stop_at_wall_ms: Option<i64>,
    #[serde(default)]
    pub tz_offset_secs: i32,
    /// Camera id (UDN/serial) if known at start.
    #[serde(default)]
    pub camera: Option<String>,
    /// The camera's `deviceinformation` at the start (reports' `cameraInfo`).
    #[serde(default)]
    pub camera_info: Option<crate::camera::ccapi::DeviceInfo>,
    /// The camera's main settings at the start (reports' `cameraSettings`).
    #[serde(default)]
    pub camera_settings: Option<crate::camera::CameraSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeLine {
    pub wall_ms: i64,
    pub first_slot: u64,
}

/// A journal replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLog {
    pub header: Header,
    pub shots: Vec<ShotRecord>,
    pub resumes: Vec<ResumeLine>,
    pub end: Option<(EndKind, Option<String>, i64)>,
    /// Lines that did not parse (a torn last line, or damage).
    pub bad_lines: usize,
    pub path: PathBuf,
}

impl SessionLog {
    pub fn finished(&self) -> bool {
        self.end.is_some()
    }

    /// Wall time of the last thing that happened (end, last reply, or creation).
    pub fn last_wall_ms(&self) -> i64 {
        if let Some((_, _, w)) = &self.end {
            return *w;
        }
        self.shots
            .iter()
            .filter_map(|s| s.replied_ms.or(Some(s.scheduled_ms)))
            .fold(self.header.created_wall_ms as f64, f64::max) as i64
    }
}

/// An open journal being appended to.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// File length after the last line known to be complete (written; synced by the next
    /// fsync at the latest).
    good_len: u64,
    /// Lines not on disk yet, oldest first.
    pending: std::collections::VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// A write or sync failed: bytes past `good_len` may be a partial line.
    torn: bool,
    /// Shot records dropped because memory was full too.
    lost: u64,
    /// Lines written since the last fsync (they wait for the next one).
    unsynced: bool,
    /// When the first line waiting for an fsync was written (the backstop's start).
    unsynced_since: Option<Instant>,
    /// When the last off-thread fsync started (everything written before it is durable).
    last_sync: Option<Instant>,
    /// An off-thread fsync runs: when it started and how many lines were written by then.
    sync_in_flight: bool,
    sync_started: Option<(Instant, u64)>,
    /// Lines written to the file so far (tells a finished fsync whether newer lines wait).
    written_lines: u64,
}

pub fn sessions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sessions")
}

pub fn journal_path(data_dir: &Path, id: &str) -> PathBuf {
    sessions_dir(data_dir).join(format!("{id}.journal"))
}

impl Journal {
    /// Creates the journal with its header line, fsyncs it and its directory. If that fails
    /// (full or read-only card) nothing is left behind: no empty, headerless journal.
    pub fn create(data_dir: &Path, header: &Header) -> io::Result<Journal> {
        let dir = sessions_dir(data_dir);
        fs::create_dir_all(&dir)?;
        let path = journal_path(data_dir, &header.id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let mut j = Journal::with_file(file, path.clone(), 0);
        let mut line = serde_json::to_value(header).map_err(io::Error::other)?;
        line["t"] = Value::from("session");
        let written = j
            .write_line(&line)
            .and_then(|()| j.flush())
            .and_then(|()| File::open(&dir)?.sync_all());
        if let Err(e) = written {
            drop(j);
            let _ = fs::remove_file(&path);
            let _ = File::open(&dir).and_then(|d| d.sync_all());
            return Err(e);
        }
        Ok(j)
    }

    fn with_file(file: File, path: PathBuf, good_len: u64) -> Journal {
        Journal {
            file,
            path,
            good_len,
            pending: Default::default(),
            pending_bytes: 0,
            torn: false,
            lost: 0,
            unsynced: false,
            unsynced_since: None,
            last_sync: None,
            sync_in_flight: false,
            sync_started: None,
            written_lines: 0,
        }
    }

    /// Opens an existing journal to continue it, cutting off a torn last line first.
    pub fn reopen(path: &Path) -> io::Result<Journal> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let mut keep = len;
        if len > 0 {
            // Find the last newline; anything after it is a torn line.
            let tail = len.min(1 << 20);
            file.seek(SeekFrom::Start(len - tail))?;
            let mut buf = Vec::with_capacity(tail as usize);
            file.read_to_end(&mut buf)?;
            keep = match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => len - tail + i as u64 + 1,
                None => 0,
            };
            if keep < len {
                log::warn!(
                    "journal {}: cutting a torn last line ({} bytes)",
                    path.display(),
                    len - keep
                );
                file.set_len(keep)?;
                file.sync_all()?;
            }
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Journal::with_file(file, path.to_path_buf(), keep))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line and fsyncs the file before returning. `Err` means it is not on disk
    /// yet: it is held in memory (unless memory is full too, see [`lost`](Self::lost)) and
    /// written by a later append or flush.
    pub fn append(&mut self, entry: &JournalEntry) -> io::Result<()> {
        let v = serde_json::to_value(entry).map_err(io::Error::other)?;
        self.write_line(&v)?;
        self.flush()
    }

    /// Writes a line without an fsync (see the module doc: [`sync_wanted`](Self::sync_wanted)
    /// and [`begin_sync`](Self::begin_sync) make it durable). `now`: the driver's monotonic
    /// time, which starts the window of a line waiting for its fsync.
    pub fn write_at(&mut self, entry: &JournalEntry, now: Instant) -> io::Result<()> {
        let v = serde_json::to_value(entry).map_err(io::Error::other)?;
        self.write_line(&v)?;
        self.write_out(false)?;
        self.unsynced_since.get_or_insert(now);
        Ok(())
    }

    /// Whether an fsync should start now: lines wait, none is in flight, and the last fsync
    /// is at least [`SYNC_WINDOW`] old (or the backstop [`sync_due`](Self::sync_due) passed).
    pub fn sync_wanted(&self, now: Instant) -> bool {
        self.unsynced
            && !self.sync_in_flight
            && (self.last_sync.is_none_or(|t| now >= t + SYNC_WINDOW)
                || self.sync_due().is_some_and(|t| now >= t))
    }

    /// When waiting lines must be synced at the latest (the driver's timer), if any wait.
    pub fn sync_due(&self) -> Option<Instant> {
        if self.sync_in_flight {
            return None;
        }
        self.unsynced_since.map(|t| t + 2 * SYNC_WINDOW)
    }

    /// Starts an fsync of every line written so far: returns a handle of the file for a
    /// blocking `sync_data` off the executor's thread; report its result to
    /// [`sync_done`](Self::sync_done).
    pub fn begin_sync(&mut self, now: Instant) -> io::Result<File> {
        let file = self.file.try_clone()?;
        self.sync_in_flight = true;
        self.sync_started = Some((now, self.written_lines));
        self.unsynced_since = None;
        Ok(file)
    }

    /// The result of the fsync [`begin_sync`](Self::begin_sync) started. Lines written since
    /// wait for the next one; after a failure every line waits again.
    pub fn sync_done(&mut self, result: io::Result<()>) -> io::Result<()> {
        self.sync_in_flight = false;
        let Some((started, lines)) = self.sync_started.take() else {
            return result;
        };
        match result {
            Ok(()) => {
                self.last_sync = Some(started);
                if self.written_lines == lines {
                    self.unsynced = false;
                    self.unsynced_since = None;
                } else if self.unsynced {
                    self.unsynced_since.get_or_insert(started);
                }
                Ok(())
            }
            Err(e) => {
                if self.unsynced {
                    self.unsynced_since.get_or_insert(started);
                }
                Err(e)
            }
        }
    }

    pub fn append_resume(&mut self, r: &ResumeLine) -> io::Result<()> {
        let mut v = serde_json::to_value(r).map_err(io::Error::other)?;
        v["t"] = Value::from("resume");
        self.write_line(&v)?;
        self.flush()
    }

    /// Lines waiting in memory.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Shot records lost because the card and the memory buffer were both full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Queues one line (in memory, in order).
    fn write_line(&mut self, v: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
        line.push(b'\n');
        let is_end = v.get("t").and_then(Value::as_str) == Some("end");
        if !is_end && self.pending_bytes + line.len() > MAX_PENDING_BYTES {
            self.lost += 1;
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the card is full and the journal's memory buffer too",
            ));
        }
        self.pending_bytes += line.len();
        self.pending.push_back(line);
        Ok(())
    }

    /// Writes every line held in memory, then fdatasync: durable before we go on. After a
    /// failed write the partial tail is cut first. `Err` leaves the lines held.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_out(true)
    }

    /// Writes every line held in memory and, with `sync`, fdatasyncs the file.
    fn write_out(&mut self, sync: bool) -> io::Result<()> {
        if self.pending.is_empty() {
            if sync && self.unsynced {
                self.file.sync_data()?;
                self.unsynced = false;
                self.unsynced_since = None;
            }
            return Ok(());
        }
        if self.torn {
            self.file.set_len(self.good_len)?;
            self.file.seek(SeekFrom::Start(self.good_len))?;
            self.torn = false;
        }
        let mut written = 0u64;
        let result = (|| {
            for line in &self.pending {
                self.file.write_all(line)?;
                written += line.len() as u64;
            }
            if sync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.good_len += written;
                self.written_lines += self.pending.len() as u64;
                self.pending.clear();
                self.pending_bytes = 0;
                self.unsynced = !sync;
                if sync {
                    self.unsynced_since = None;
                }
                Ok(())
            }
            Err(e) => {
                // Some bytes may have reached the file: cut them before the next try.
                self.torn = true;
                Err(e)
            }
        }
    }
}

/// Replays a journal. Bad lines are counted and skipped; a journal without a readable header
/// is an error.
pub fn read(path: &Path) -> Result<SessionLog, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_JOURNAL_BYTES {
        return Err(format!("{}: journal too large", path.display()));
    }
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes, path)
}

/// Replays a journal's bytes; `path` names it (its file stem is the session id).
pub fn parse(bytes: &[u8], path: &Path) -> Result<SessionLog, String> {
    let mut lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let header: Header = lines
        .next()
        .and_then(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|v| v.get("t").and_then(Value::as_str) == Some("session"))
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| format!("{}: no session header", path.display()))?;
    // The file name is the session's identity (commands name it, the report is saved under it,
    // the journal is removed by it): a header whose id differs, copied or renamed by hand or
    // left by an old version, made a session that could never be saved (issue 9, item 8).
    let mut header = header;
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        if stem != header.id && super::report::valid_id(stem) {
            log::warn!(
                "journal {}: its header says session {:?}; using the file name",
                path.display(),
                header.id.chars().take(100).collect::<String>()
            );
            header.id = stem.to_string();
        }
    }
    let mut log = SessionLog {
        header,
        shots: Vec::new(),
        resumes: Vec::new(),
        end: None,
        bad_lines: 0,
        path: path.to_path_buf(),
    };
    for line in lines {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            log.bad_lines += 1;
            continue;
        };
        if v.get("t").and_then(Value::as_str) == Some("resume") {
            match serde_json::from_value::<ResumeLine>(v) {
                Ok(r) => {
                    // A resume after an end line means the end was not final.
                    log.end = None;
                    log.resumes.push(r)
                }
                Err(_) => log.bad_lines += 1,
            }
            continue;
        }
        match serde_json::from_value::<JournalEntry>(v) {
            Ok(JournalEntry::Shot(s)) => log.shots.push(s),
            Ok(JournalEntry::Files { slot, files }) => {
                if let Some(s) = log.shots.iter_mut().rev().find(|s| s.slot == slot) {
                    s.files.extend(files);
                }
            }
            Ok(JournalEntry::Measured {
                slot,
                brightness,
                sun_alt,
            }) => {
                if let Some(s) = log.shots.iter_mut().rev().find(|s| s.slot == slot) {
                    s.light = Some(Box::new(super::session::FrameLight {
                        brightness,
                        sun_alt,
                    }));
                }
            }
            Ok(JournalEntry::Taken { slot }) => {
                if let Some(s) = log.shots.iter_mut().rev().find(|s| s.slot == slot) {
                    s.ok = true;
                    s.error = None;
                    s.reply_lost = true;
                }
            }
            Ok(JournalEntry::End {
                state,
                reason,
                wall_ms,
            }) => log.end = Some((state, reason, wall_ms)),
            Err(_) => log.bad_lines += 1,
        }
    }
    if log.bad_lines > 0 {
        log::warn!(
            "journal {}: skipped {} unreadable line(s)",
            path.display(),
            log.bad_lines
        );
    }
    Ok(log)
}

/// Every journal in `<data_dir>/sessions`, newest first; unreadable ones are logged and
/// skipped.
pub fn find_all(data_dir: &Path) -> Vec<SessionLog> {
    let Ok(entries) = fs::read_dir(sessions_dir(data_dir)) else {
        return Vec::new();
    };
    let mut logs: Vec<SessionLog> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("journal"))
        .filter_map(|p| match read(&p) {
            Ok(l) => Some(l),
            Err(e) => {
                log::warn!("skipping session journal: {e}");
                None
            }
        })
        .collect();
    logs.sort_by_key(|l| std::cmp::Reverse(l.header.created_wall_ms));
    logs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervalometer::schedule::{OverrunPolicy, SessionOptions, StopCondition};
    use std::time::Duration;

    pub(crate) fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("skylapse-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn header(id: &str) -> Header {
        Header {
            v: JOURNAL_VERSION,
            id: id.into(),
            title: "Night".into(),
            options: SessionOptions {
                interval: Duration::from_secs(5),
                stop: StopCondition::Unlimited,
                overrun: OverrunPolicy::NextSlot,
                bulb: None,
                af: false,
                exposure: None,
                ..SessionOptions::default()
            }
            .to_wire(),
            created_wall_ms: 1000,
            origin_wall_ms: 1300,
            stop_at_wall_ms: None,
            tz_offset_secs: 0,
            camera: Some("cam".into()),
            camera_info: None,
            camera_settings: None,
        }
    }

    fn shot(slot: u64) -> ShotRecord {
        ShotRecord {
            slot,
            shot: slot + 1,
            scheduled_ms: 1300.0 + slot as f64 * 5000.0,
            sent_ms: Some(1300.5 + slot as f64 * 5000.0),
            replied_ms: Some(1400.0 + slot as f64 * 5000.0),
            error_ms: Some(0.5),
            duration_ms: Some(99.5),
            ok: true,
            error: None,
            late: false,
            skipped_before: 0,
            files: vec![],
            reply_lost: false,
            settings: None,
            exposure_ev: None,
            light: None,
        }
    }

    #[test]
    fn torn_last_line_is_skipped_on_read_and_cut_on_reopen() {
        let dir = tmpdir("torn");
        let mut j = Journal::create(&dir, &header("a")).unwrap();
        j.append(&JournalEntry::Shot(shot(0))).unwrap();
        j.append(&JournalEntry::Files {
            slot: 0,
            files: vec!["IMG_1.CR3".into()],
        })
        .unwrap();
        j.append(&JournalEntry::Shot(shot(1))).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        // Power cut in the middle of the third shot's line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"t":"shot","slot":2,"sho"#).unwrap();
        drop(f);
        let log = read(&path).unwrap();
        assert_eq!(log.shots.len(), 2);
        assert_eq!(log.shots[0].files, ["IMG_1.CR3"]);
        assert_eq!(log.bad_lines, 1);
        assert!(!log.finished());
        let mut j = Journal::reopen(&path).unwrap();
        j.append(&JournalEntry::Shot(shot(3))).unwrap();
        let log = read(&path).unwrap();
        assert_eq!(log.bad_lines, 0);
        let slots: Vec<u64> = log.shots.iter().map(|s| s.slot).collect();
        assert_eq!(slots, [0, 1, 3]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_that_cannot_be_written_wait_in_memory_and_are_never_glued_to_a_partial_line() {
        // Regression (issue 9, item 5): on a full card the partial line written at ENOSPC was
        // glued to the next line once space returned, and records were lost. Here the partial
        // write is made by hand; tests/storage.rs fills a real (tmpfs) file system.
        let dir = tmpdir("full");
        let mut j = Journal::create(&dir, &header("f")).unwrap();
        j.append(&JournalEntry::Shot(shot(0))).unwrap();
        let path = j.path().to_path_buf();
        let len = fs::metadata(&path).unwrap().len();
        // A write that stops part-way (what ENOSPC/EFBIG do) leaves a partial line behind.
        j.torn = true;
        j.file.write_all(br#"{"t":"shot","slot":1,"sh"#).unwrap();
        j.write_line(&serde_json::to_value(JournalEntry::Shot(shot(1))).unwrap())
            .unwrap();
        j.write_line(&serde_json::to_value(JournalEntry::Shot(shot(2))).unwrap())
            .unwrap();
        assert_eq!(j.pending(), 2);
        // Space returns: the next flush cuts the partial line, then writes both.
        j.flush().unwrap();
        assert_eq!(j.pending(), 0);
        let log = read(&path).unwrap();
        assert_eq!(log.bad_lines, 0);
        let slots: Vec<u64> = log.shots.iter().map(|s| s.slot).collect();
        assert_eq!(slots, [0, 1, 2]);
        assert!(fs::metadata(&path).unwrap().len() > len);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_for_held_records_is_bounded_and_the_end_line_always_fits() {
        let dir = tmpdir("bounded");
        let mut j = Journal::create(&dir, &header("b")).unwrap();
        j.torn = true; // pretend the card is full: lines only queue
        let line = serde_json::to_value(JournalEntry::Shot(shot(0))).unwrap();
        let mut n = 0;
        while j.write_line(&line).is_ok() {
            n += 1;
        }
        assert!(n > 1000 && j.pending_bytes <= MAX_PENDING_BYTES, "{n}");
        assert_eq!(j.lost(), 1);
        let end = JournalEntry::End {
            state: EndKind::Stopped,
            reason: None,
            wall_ms: 5,
        };
        j.write_line(&serde_json::to_value(&end).unwrap()).unwrap();
        j.flush().unwrap();
        let log = read(j.path()).unwrap();
        assert_eq!(log.shots.len(), n);
        assert!(log.finished());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_journal_is_known_by_its_file_name_whatever_its_header_says() {
        // Regression (issue 9, item 8): a journal whose header id differed from its file name
        // could never be saved (the save looked for <header id>.journal).
        let dir = tmpdir("renamed");
        let j = Journal::create(&dir, &header("original")).unwrap();
        let moved = sessions_dir(&dir).join("copy-2.journal");
        fs::rename(j.path(), &moved).unwrap();
        let log = read(&moved).unwrap();
        assert_eq!(log.header.id, "copy-2");
        assert_eq!(find_all(&dir)[0].header.id, "copy-2");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_journals_are_skipped_when_listing() {
        let dir = tmpdir("garbage");
        Journal::create(&dir, &header("good")).unwrap();
        fs::write(sessions_dir(&dir).join("bad.journal"), b"\x00\xffnot json").unwrap();
        fs::write(sessions_dir(&dir).join("empty.journal"), b"").unwrap();
        let all = find_all(&dir);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].header.id, "good");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn end_line_marks_finished_and_resume_reopens() {
        let dir = tmpdir("end");
        let mut j = Journal::create(&dir, &header("e")).unwrap();
        j.append(&JournalEntry::End {
            state: EndKind::Stopped,
            reason: None,
            wall_ms: 9000,
        })
        .unwrap();
        let log = read(j.path()).unwrap();
        assert_eq!(log.end, Some((EndKind::Stopped, None, 9000)));
        assert_eq!(log.last_wall_ms(), 9000);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Runs the off-thread fsync the way the driver does (here inline).
    fn sync(j: &mut Journal, now: Instant) {
        let f = j.begin_sync(now).unwrap();
        j.sync_done(f.sync_data()).unwrap();
    }

    #[test]
    fn a_running_sessions_lines_are_written_at_once_and_synced_within_the_window() {
        let dir = tmpdir("window");
        let mut j = Journal::create(&dir, &header("w")).unwrap();
        let t0 = crate::clock::test_t0();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Written at once (a kill loses nothing); the first fsync is wanted at once.
        j.write_at(&JournalEntry::Shot(shot(0)), at(0)).unwrap();
        assert_eq!(read(j.path()).unwrap().shots.len(), 1);
        assert!(j.sync_wanted(at(0)));
        sync(&mut j, at(0));
        assert!(!j.unsynced);
        assert_eq!(j.sync_due(), None);
        // 1 s later: waits (the window), at the latest 2 windows after it was written.
        j.write_at(&JournalEntry::Shot(shot(1)), at(1000)).unwrap();
        j.write_at(
            &JournalEntry::Files {
                slot: 1,
                files: vec!["/ccapi/ver130/contents/card1/100CANON/IMG_0002.JPG".into()],
            },
            at(1200),
        )
        .unwrap();
        assert!(!j.sync_wanted(at(1200)));
        assert_eq!(j.sync_due(), Some(at(11_000)));
        assert_eq!(read(j.path()).unwrap().shots[1].files.len(), 1);
        // Past the window: one fsync for everything written.
        j.write_at(&JournalEntry::Shot(shot(2)), at(5000)).unwrap();
        assert!(j.sync_wanted(at(5000)));
        let f = j.begin_sync(at(5000)).unwrap();
        // A line written while the fsync runs waits for the next one.
        assert!(!j.sync_wanted(at(5100)));
        j.write_at(&JournalEntry::Shot(shot(3)), at(5100)).unwrap();
        j.sync_done(f.sync_data()).unwrap();
        assert!(j.unsynced);
        assert_eq!(j.sync_due(), Some(at(15_100)));
        assert!(!j.sync_wanted(at(9_000)));
        assert!(j.sync_wanted(at(10_000)));
        sync(&mut j, at(10_000));
        assert!(!j.unsynced);
        // A failed fsync leaves the lines waiting.
        j.write_at(&JournalEntry::Shot(shot(4)), at(20_000))
            .unwrap();
        j.begin_sync(at(20_000)).unwrap();
        assert!(j.sync_done(Err(io::Error::other("EIO"))).is_err());
        assert!(j.unsynced);
        assert!(j.sync_wanted(at(20_001)));
        // A slow session (10 s): every record's fsync is wanted at once.
        sync(&mut j, at(20_001));
        for (n, ms) in [(5u64, 30_001u64), (6, 40_001)] {
            j.write_at(&JournalEntry::Shot(shot(n)), at(ms)).unwrap();
            assert!(j.sync_wanted(at(ms)), "record {n}");
            sync(&mut j, at(ms));
        }
        // The end line is synced before `append` returns, with everything before it.
        j.write_at(&JournalEntry::Shot(shot(7)), at(40_500))
            .unwrap();
        j.append(&JournalEntry::End {
            state: EndKind::Completed,
            reason: None,
            wall_ms: 1,
        })
        .unwrap();
        assert!(!j.unsynced);
        assert_eq!(j.sync_due(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
