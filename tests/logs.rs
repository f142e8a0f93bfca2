//! One logger for the whole test binary (a process has one global logger): it keeps the
//! recent records in memory, so tests can prove what was (or was not) logged, and prints
//! warnings and errors like `env_logger` would. Secrets are looked for in every record as it
//! is logged (`watch`), so a bounded buffer never hides a leak.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Mutex, Once};

/// Records kept for `contains` (older ones are dropped).
const KEEP: usize = 20_000;

struct Capture;

struct State {
    recent: VecDeque<String>,
    watched: Vec<String>,
    seen: BTreeSet<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    recent: VecDeque::new(),
    watched: Vec::new(),
    seen: BTreeSet::new(),
});
static INIT: Once = Once::new();

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let line = format!("{} {}: {}", r.level(), r.target(), r.args());
        if r.level() <= log::Level::Warn && std::env::var_os("SKYLAPSE_TEST_QUIET").is_none() {
            eprintln!("{line}");
        }
        let mut s = state();
        let hits: Vec<String> = s
            .watched
            .iter()
            .filter(|w| line.contains(w.as_str()))
            .cloned()
            .collect();
        s.seen.extend(hits);
        if s.recent.len() == KEEP {
            s.recent.pop_front();
        }
        s.recent.push_back(line);
    }
    fn flush(&self) {}
}

/// Installs the capture (idempotent). Every record of every crate, at every level.
pub fn init() {
    INIT.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Looks for `needle` in every record from now on (use for secrets).
pub fn watch(needle: &str) {
    init();
    state().watched.push(needle.to_string());
}

/// Whether a watched needle appeared in any record since it was watched.
pub fn seen(needle: &str) -> bool {
    state().seen.contains(needle)
}

/// Whether one of the recent records contains `needle`.
pub fn contains(needle: &str) -> bool {
    state().recent.iter().any(|l| l.contains(needle))
}
