//! Event polling (CCAPI.md §1.7, §5.5): one session, first poll = snapshot, later polls =
//! coalesced deltas, one outstanding poll, `timeout=immediately|short|long` holds that end
//! early on a change, DELETE cancels.
//!
//! ```text
//!   session not started ──GET──▶ snapshot ──▶ started
//!   started ──GET──▶ pending changes? ──yes──▶ reply (after the coalescing window)
//!                         │no
//!                         ▼
//!                   immediately ─▶ {}        short/long ─▶ hold until change | deadline | DELETE
//!   DELETE: pending poll → it returns {}, DELETE 200 {}; none pending → 503 "Not started"
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::http::{Request, Response};
use super::{Inner, Shared};

/// Paths kept for `addedcontents` when nobody polls (oldest dropped beyond it).
const MAX_PENDING_PATHS: usize = 10_000;
/// Raw change-log entries kept for `/_sim/events`.
const MAX_LOG: usize = 1_000;

#[derive(Default)]
pub struct EventsState {
    /// The snapshot was delivered; later polls get deltas.
    pub session_started: bool,
    /// Changed state keys since the last reply, latest value each.
    pub pending: Map<String, Value>,
    /// New files since the last reply, as `folder/name` (formatted at reply time).
    pub added: VecDeque<String>,
    pub deleted: VecDeque<String>,
    pub poll_outstanding: bool,
    /// Bumped by DELETE and by session resets: a held poll returns `{}`.
    pub cancel_gen: u64,
    /// `(seq, key, value)` raw change log for assertions.
    pub log: VecDeque<(u64, String, Value)>,
    pub log_seq: u64,
    /// Event-loss knob: drop the next N emitted changes.
    pub drop_next: u32,
    /// Knob: report every added file twice (clients must dedupe).
    pub duplicate_added: bool,
    /// Knob: DELETE resets the session so the next poll is a snapshot again.
    pub keep_session_on_delete: bool,
}

impl EventsState {
    fn log(&mut self, key: &str, value: &Value) {
        self.log_seq += 1;
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log
            .push_back((self.log_seq, key.to_string(), value.clone()));
    }

    fn dropped(&mut self) -> bool {
        if self.drop_next > 0 {
            self.drop_next -= 1;
            true
        } else {
            false
        }
    }

    /// Records a changed state key (its full new value).
    pub fn emit(&mut self, key: &str, value: Value) {
        self.log(key, &value);
        if self.dropped() {
            return;
        }
        self.pending.insert(key.to_string(), value);
    }

    /// Records a new file (`folder/name`).
    pub fn emit_added(&mut self, rel: String) {
        self.log("addedcontents", &json!(rel));
        if self.dropped() {
            return;
        }
        push_bounded(&mut self.added, rel.clone());
        if self.duplicate_added {
            push_bounded(&mut self.added, rel);
        }
    }

    pub fn emit_deleted(&mut self, rel: String) {
        self.log("deletedcontents", &json!(rel));
        push_bounded(&mut self.deleted, rel);
    }

    /// A new session (reboot, reconnect): next poll is a snapshot, a held poll returns `{}`.
    pub fn reset_session(&mut self) {
        self.session_started = false;
        self.pending.clear();
        self.cancel_gen += 1;
    }

    fn has_changes(&self) -> bool {
        !self.pending.is_empty() || !self.added.is_empty() || !self.deleted.is_empty()
    }

    /// Takes the pending changes as a reply body.
    fn take(&mut self, contents_root: &str) -> Value {
        let mut o = std::mem::take(&mut self.pending);
        if !self.added.is_empty() {
            let v: Vec<String> = self
                .added
                .drain(..)
                .map(|r| format!("{contents_root}/{r}"))
                .collect();
            o.insert("addedcontents".into(), json!(v));
        }
        if !self.deleted.is_empty() {
            let v: Vec<String> = self
                .deleted
                .drain(..)
                .map(|r| format!("{contents_root}/{r}"))
                .collect();
            o.insert("deletedcontents".into(), json!(v));
        }
        Value::Object(o)
    }
}

fn push_bounded(q: &mut VecDeque<String>, v: String) {
    if q.len() >= MAX_PENDING_PATHS {
        q.pop_front();
    }
    q.push_back(v);
}

/// Emits the current value of a setting.
pub(crate) fn emit_setting(g: &mut Inner, name: &str) {
    if let Some(v) = g.cam.setting_json(name) {
        g.events.emit(name, v);
    }
}

/// Emits storage and recordable (after a shot, a delete, a card change).
pub(crate) fn emit_storage(g: &mut Inner, base: &str) {
    let base = if base.is_empty() && g.cam.profile.absolute_urls() {
        g.last_origin.clone()
    } else {
        base.to_string()
    };
    let s = g.cam.storage_json(&base);
    g.events.emit("storage", s);
    let r = g.cam.recordable_json();
    g.events.emit("recordable", r);
}

/// Clears `poll_outstanding` however the poll ends (reply, hang-up, shutdown).
struct PollSlot<'a>(&'a Shared);
impl Drop for PollSlot<'_> {
    fn drop(&mut self) {
        self.0.lock().events.poll_outstanding = false;
        self.0.touch();
    }
}

enum Hold {
    Now,
    For(Duration),
}

enum Wait {
    /// Changes are pending: reply after the coalescing window.
    Coalesce,
    /// Nothing yet: hold until this (sim clock) deadline.
    Until(std::time::Instant),
}

/// `GET …/event/polling`. `base` is the absolute origin for old bodies ("" otherwise).
pub(crate) async fn poll(
    shared: &Arc<Shared>,
    req: &Request,
    version: &str,
    base: &str,
) -> Response {
    let (wait, cancel_gen) = {
        let mut g = shared.lock();
        let hold = match parse_hold(req, version, &g.timing) {
            Some(h) => h,
            None => return Response::error(400, "Invalid parameter"),
        };
        if g.events.poll_outstanding {
            return Response::error(503, "Already started");
        }
        let root = g.cam.contents_root(base);
        if !g.events.session_started {
            g.events.session_started = true;
            let now = shared.now();
            let mut snap = g.cam.snapshot(now, base);
            // Files not reported yet ride along with the snapshot.
            let changes = g.events.take(&root);
            if let Value::Object(c) = changes {
                for (k, v) in c {
                    if k.ends_with("contents") {
                        snap.insert(k, v);
                    }
                }
            }
            if !snap.contains_key("addedcontents") {
                snap.insert("addedcontents".into(), json!([]));
            }
            return Response::ok(Value::Object(snap));
        }
        // The deadline is fixed while the lock is held, so a test that sees the poll
        // outstanding and advances a manual clock is guaranteed to pass it.
        let wait = if g.events.has_changes() {
            Wait::Coalesce
        } else {
            match hold {
                Hold::Now => return Response::ok(json!({})),
                Hold::For(d) => Wait::Until(shared.now() + d),
            }
        };
        g.events.poll_outstanding = true;
        (wait, g.events.cancel_gen)
    };
    let _slot = PollSlot(shared);
    shared.touch();
    if let Wait::Until(deadline) = wait {
        loop {
            let generation = shared.changed.generation();
            {
                let g = shared.lock();
                if g.events.cancel_gen != cancel_gen {
                    return Response::ok(json!({}));
                }
                if g.events.has_changes() {
                    break;
                }
            }
            let timed_out = futures_lite::future::or(
                async {
                    shared.changed.changed_since(generation).await;
                    false
                },
                async {
                    shared.clock.sleep_until(deadline).await;
                    true
                },
            )
            .await;
            if timed_out {
                let mut g = shared.lock();
                if g.events.cancel_gen != cancel_gen || !g.events.has_changes() {
                    return Response::ok(json!({}));
                }
                let root = g.cam.contents_root(base);
                return Response::ok(g.events.take(&root));
            }
        }
    }
    // Let near-simultaneous changes (RAW + JPEG, storage, battery) land together.
    let coalesce = shared.lock().timing.coalesce;
    if !coalesce.is_zero() {
        async_io::Timer::after(coalesce).await;
    }
    let mut g = shared.lock();
    if g.events.cancel_gen != cancel_gen {
        return Response::ok(json!({}));
    }
    let root = g.cam.contents_root(base);
    Response::ok(g.events.take(&root))
}

/// `DELETE …/event/polling`.
pub(crate) fn delete(shared: &Shared) -> Response {
    let mut g = shared.lock();
    if !g.events.poll_outstanding {
        return Response::error(503, "Not started");
    }
    g.events.cancel_gen += 1;
    if !g.events.keep_session_on_delete {
        g.events.session_started = false;
    }
    drop(g);
    shared.touch();
    Response::ok(json!({}))
}

fn parse_hold(req: &Request, version: &str, timing: &super::Timing) -> Option<Hold> {
    let timeout = req.query_param("timeout");
    let cont = req.query_param("continue");
    if version == "ver100" {
        if timeout.is_some() {
            return None;
        }
        return match cont {
            None | Some("off") => Some(Hold::Now),
            Some("on") => Some(Hold::For(timing.long_poll)),
            Some(_) => None,
        };
    }
    if cont.is_some() {
        return None;
    }
    match timeout {
        None | Some("immediately") => Some(Hold::Now),
        Some("short") => Some(Hold::For(timing.short_poll)),
        Some("long") => Some(Hold::For(timing.long_poll)),
        Some(_) => None,
    }
}
