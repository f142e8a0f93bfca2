//! One exposure at an exact instant: queued ahead of other control jobs, fired on the control
//! worker's warm connection after a precise wait on the clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ccapi::{shutter_timeout, AF_ALLOWANCE};
use super::shared::Shared;
use super::{ShotDone, ShotOutcome, ShotRequest};
use crate::clock::{BoxFuture, TIMING_LOG_TARGET};
use crate::protocol::ApiError;
use crate::sys::RealtimeWindow;

/// A shot on a connection idle longer than this sends a cheap request first.
const WARM_AFTER: Duration = Duration::from_secs(4);

/// Queues a shot for `due` (call it a few hundred ms ahead) and resolves with its outcome.
pub(crate) fn shoot_at(
    cam: &Arc<Shared>,
    due: Instant,
    req: ShotRequest,
) -> BoxFuture<'static, ShotOutcome> {
    let (tx, rx) = async_channel::bounded(1);
    shoot_then(
        cam,
        due,
        req,
        Box::new(move |o| {
            let _ = tx.try_send(o);
        }),
    );
    let clock = cam.clock.clone();
    Box::pin(async move {
        rx.recv().await.unwrap_or_else(|_| {
            ShotOutcome::not_sent(clock.now(), ApiError::system("Camera worker stopped"))
        })
    })
}

/// Queues a shot for `due` and calls `done` with its outcome on the thread that finished it
/// (the control worker), with no task in between. `done` is dropped uncalled only if the
/// worker stops with the shot still queued.
pub(crate) fn shoot_then(cam: &Arc<Shared>, due: Instant, req: ShotRequest, done: ShotDone) {
    let clock = cam.clock.clone();
    if let Err(e) = cam.session() {
        return done(ShotOutcome::not_sent(clock.now(), e));
    }
    cam.shot_reserved(due);
    let me = cam.clone();
    // Read only for the debug timing line (the benchmark's): when the shot was handed over.
    let queued =
        log::log_enabled!(target: TIMING_LOG_TARGET, log::Level::Debug).then(|| clock.now());
    // Held by the job and here: a job refused at the door still gets its answer.
    let slot = Arc::new(std::sync::Mutex::new(Some(done)));
    let job_slot = slot.clone();
    // Shots jump the queue: they are the one thing with a deadline.
    let queued = cam.control.spawn_at(Some(due), move || {
        let o = fire(&me, due, req, queued);
        if let Some(done) = crate::sys::lock(&job_slot).take() {
            done(o);
        }
    });
    if let Err(e) = queued {
        if let Some(done) = crate::sys::lock(&slot).take() {
            done(ShotOutcome::not_sent(clock.now(), e));
        }
    }
}

/// Fires one shot at `due` on this (control worker) thread.
fn fire(cam: &Shared, due: Instant, req: ShotRequest, queued: Option<Instant>) -> ShotOutcome {
    let clock = cam.clock.as_ref();
    let now = clock.now();
    let session = match cam.session() {
        Ok(s) => s,
        Err(e) => return ShotOutcome::not_sent(now, e),
    };
    // Keep the socket warm: a connection idle for long may have been closed by the camera;
    // find out now rather than pay a handshake at `due`.
    let idle = cam
        .lock()
        .last_control
        .map(|t| now.duration_since(t) > WARM_AFTER)
        .unwrap_or(true);
    if idle && due > now + Duration::from_millis(30) {
        let _ = session.get("deviceinformation");
    }
    // The camera answers a press only after the exposure: wait for the longer of what the
    // caller expects and what the camera's Tv says (unknown: the longest timed one).
    let exposure = match (req.exposure, cam.settings().exposure_time()) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let call = cam.timeouts.call;
    // Real-time priority for the shot window only.
    let _rt = RealtimeWindow::enter();
    let outcome = match req.bulb {
        None => {
            let url = session.shutter_url();
            let timeout = shutter_timeout(call, exposure, req.af);
            match url {
                Ok(url) => {
                    clock.precise_wait_until(due);
                    // The instant the request goes to ureq (its first byte to the socket a
                    // few µs later), not the due instant: the session's timing stats and
                    // the benchmark read it.
                    let sent_at = clock.now();
                    let pressed = session.press(&url, req.af, timeout);
                    let replied_at = clock.now();
                    log_press(due, queued, sent_at, replied_at, clock.now());
                    match pressed {
                        Ok(()) => ShotOutcome {
                            sent_at,
                            replied_at,
                            result: Ok(()),
                            maybe_taken: false,
                        },
                        Err(e) => ShotOutcome {
                            sent_at,
                            replied_at,
                            result: Err(e.error),
                            maybe_taken: e.maybe_taken,
                        },
                    }
                }
                Err(e) => ShotOutcome::not_sent(clock.now(), e),
            }
        }
        Some(hold) => {
            clock.precise_wait_until(due);
            let sent_at = clock.now();
            let pressed = session.manual(
                "full_press",
                req.af,
                call + if req.af { AF_ALLOWANCE } else { Duration::ZERO },
            );
            if pressed.is_ok() {
                clock.precise_wait_until(sent_at + hold);
            }
            // Always release, even after a failed press: a stuck button blocks the camera.
            // The release may be answered after noise reduction (a dark frame as long).
            let released = session.manual("release", false, call + hold);
            let maybe_taken = pressed.is_ok() && released.is_err();
            ShotOutcome {
                sent_at,
                replied_at: clock.now(),
                result: pressed.and(released),
                maybe_taken,
            }
        }
    };
    cam.lock().last_control = Some(clock.now());
    cam.report(&outcome.result);
    outcome
}

/// One debug line per one-shot press, after the reply (nothing is formatted before the
/// send, and nothing at all unless debug logging is on for this target): when the shot was
/// handed over and how late the request went out, relative to `due`, and how long before
/// this line `due` was, so a reader that stamps the line (the benchmark's logger) can place
/// `due` on its own clock.
fn log_press(
    due: Instant,
    queued: Option<Instant>,
    sent_at: Instant,
    replied_at: Instant,
    now: Instant,
) {
    if log::log_enabled!(target: TIMING_LOG_TARGET, log::Level::Debug) {
        let ns = |a: Instant, b: Instant| signed_ns(a, b);
        log::debug!(
            target: TIMING_LOG_TARGET,
            "press queued_ns={} sent_ns={} replied_ns={} due_before_line_ns={}",
            queued.map_or(0, |q| ns(q, due)),
            ns(sent_at, due),
            ns(replied_at, due),
            ns(now, due)
        );
    }
}

/// `a - b` in nanoseconds, negative when `a` is earlier.
fn signed_ns(a: Instant, b: Instant) -> i128 {
    if a >= b {
        (a - b).as_nanos() as i128
    } else {
        -((b - a).as_nanos() as i128)
    }
}
