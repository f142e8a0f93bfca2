//! Logging: env_logger to standard error, which under systemd is the journal.
//!
//! * When standard error is the journal's stream (`$JOURNAL_STREAM` names its device and
//!   inode, systemd.exec(5)), every line starts with its syslog priority (`<3>` error, `<4>`
//!   warning, `<6>` info, `<7>` debug), so `journalctl -p warning` finds the warnings; the
//!   journal adds its own timestamps. Elsewhere, env_logger's usual format.
//! * The WebSocket library logs whole frames at trace level, and a frame may carry the Wi-Fi
//!   password (`network_connect`): its modules are capped at debug whatever the filter says.
//! * [`LogLimiter`]: a few lines per interval, then one summary, for anything a peer can make
//!   happen over and over.

use std::io::Write;
use std::time::{Duration, Instant};

/// Modules whose trace output may contain secrets; never below debug.
const CAPPED: [&str; 2] = ["tungstenite", "async_tungstenite"];

/// syslog priority of a log level (sd-daemon(3)).
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// One record as the journal's stream wants it: each line of the message prefixed with its
/// priority (a continuation line without a prefix would be stored at info).
pub fn journal_line(level: log::Level, target: &str, message: &str) -> String {
    let p = priority(level);
    let mut out = String::with_capacity(message.len() + target.len() + 8);
    for (i, line) in message.split('\n').enumerate() {
        if i == 0 {
            out.push_str(&format!("<{p}>{target}: {line}\n"));
        } else {
            out.push_str(&format!("<{p}>  {line}\n"));
        }
    }
    out
}

/// Whether `$JOURNAL_STREAM` (`device:inode`) is standard error.
pub fn stderr_is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(v), Some((dev, ino))) = (journal_stream, stderr) else {
        return false;
    };
    let Some((d, i)) = v.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// Installs the logger with `filter` (env_logger syntax).
pub fn init(filter: &str) {
    let mut b = env_logger::Builder::new();
    b.parse_filters(filter);
    let journal = stderr_is_journal(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        crate::sys::stderr_identity(),
    );
    if journal {
        b.format(|buf, r| {
            let line = journal_line(r.level(), r.target(), &r.args().to_string());
            buf.write_all(line.as_bytes())
        });
    }
    let inner = b.build();
    log::set_max_level(inner.filter());
    let _ = log::set_boxed_logger(Box::new(Capped { inner }));
}

/// Whether a record may be logged at all: trace records of [`CAPPED`] modules never are,
/// whatever directive (even `tungstenite::protocol=trace`) enabled them.
pub fn allowed(target: &str, level: log::Level) -> bool {
    level < log::Level::Trace
        || !CAPPED
            .iter()
            .any(|m| target == *m || target.starts_with(&format!("{m}::")))
}

struct Capped {
    inner: env_logger::Logger,
}

impl log::Log for Capped {
    fn enabled(&self, m: &log::Metadata) -> bool {
        allowed(m.target(), m.level()) && self.inner.enabled(m)
    }
    fn log(&self, r: &log::Record) {
        if allowed(r.target(), r.level()) {
            self.inner.log(r);
        }
    }
    fn flush(&self) {
        self.inner.flush();
    }
}

/// Counts events of one kind so the log gets a few lines per interval, not one per event (a
/// reconnect loop or a camera that is gone for the night must not fill the SD card).
///
/// ```text
///  note(kind) ──first in window──▶ log it in full, open a window of `interval`
///      │ the next burst-1 in the window: logged in full; more: counted
///      ▼
///  window over (poll_timeout, then flush) ──▶ one summary line ──▶ quiet until the next note
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    burst: u32,
    window_end: Option<Instant>,
    logged: u32,
    suppressed: u64,
    what: &'static str,
}

impl LogLimiter {
    /// Logs up to `burst` events in full per `interval`, then counts.
    pub fn new(what: &'static str, interval: Duration, burst: u32) -> LogLimiter {
        LogLimiter {
            interval,
            burst: burst.max(1),
            window_end: None,
            logged: 0,
            suppressed: 0,
            what,
        }
    }

    /// One more event at `now`; true when this one should be logged in full.
    pub fn note(&mut self, now: Instant) -> bool {
        match self.window_end {
            Some(end) if now < end => {
                if self.logged < self.burst {
                    self.logged += 1;
                    true
                } else {
                    self.suppressed += 1;
                    false
                }
            }
            _ => {
                self.window_end = Some(now + self.interval);
                self.logged = 1;
                true
            }
        }
    }

    /// When [`flush`](Self::flush) has something to say.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.suppressed > 0 {
            self.window_end
        } else {
            None
        }
    }

    /// The summary of the current window now, whether or not it is over (at the end of what
    /// was being counted).
    pub fn finish(&mut self) -> Option<String> {
        self.window_end.take()?;
        let n = std::mem::take(&mut self.suppressed);
        (n > 0).then(|| format!("{n} more {}", self.what))
    }

    /// The summary of a finished window, if anything was held back.
    pub fn flush(&mut self, now: Instant) -> Option<String> {
        let end = self.window_end?;
        if now < end {
            return None;
        }
        self.window_end = None;
        if self.suppressed == 0 {
            return None;
        }
        let n = std::mem::take(&mut self.suppressed);
        Some(format!(
            "{n} more {} in the last {}s",
            self.what,
            self.interval.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn journal_lines_carry_their_priority_on_every_line() {
        // Regression (issue 9, item 9): warnings reached the journal at priority info, so
        // `journalctl -p warning` showed nothing.
        assert_eq!(
            journal_line(log::Level::Warn, "skylapse::web", "evicted"),
            "<4>skylapse::web: evicted\n"
        );
        assert_eq!(
            journal_line(log::Level::Error, "x", "a\nb"),
            "<3>x: a\n<3>  b\n"
        );
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Trace), 7);
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(stderr_is_journal(Some("8:1234"), Some((8, 1234))));
        assert!(!stderr_is_journal(Some("8:1234"), Some((8, 1235))));
        assert!(!stderr_is_journal(Some("garbage"), Some((8, 1234))));
        assert!(!stderr_is_journal(None, Some((8, 1234))));
    }

    #[test]
    fn secret_bearing_modules_never_log_below_debug() {
        assert!(!allowed("tungstenite::protocol", log::Level::Trace));
        assert!(!allowed("async_tungstenite", log::Level::Trace));
        assert!(allowed("tungstenite::protocol", log::Level::Debug));
        assert!(allowed("skylapse::web::ws", log::Level::Trace));
        assert!(allowed("tungstenitex", log::Level::Trace));
    }

    #[test]
    fn log_limiter_logs_the_first_then_one_summary_per_window() {
        let t0 = crate::clock::test_t0();
        let s10 = Duration::from_secs(10);
        let mut l = LogLimiter::new("connections evicted", s10, 2);
        assert!(l.note(t0));
        assert!(l.note(t0), "the burst");
        assert_eq!(l.poll_timeout(), None, "nothing held back yet");
        for i in 1..=500 {
            assert!(!l.note(t0 + ms(i)));
        }
        assert_eq!(l.poll_timeout(), Some(t0 + s10));
        assert_eq!(l.flush(t0 + ms(9_999)), None);
        assert_eq!(
            l.flush(t0 + s10).as_deref(),
            Some("500 more connections evicted in the last 10s")
        );
        assert_eq!(l.poll_timeout(), None);
        // Quiet, then a new event is logged in full again.
        assert!(l.note(t0 + s10 * 3));
        assert_eq!(l.flush(t0 + s10 * 4), None);
    }
}
