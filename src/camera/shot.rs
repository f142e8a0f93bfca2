//! One exposure at an exact instant: queued ahead of other control jobs, fired on the control
//! worker's warm connection after a precise wait on the clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ccapi::{shutter_timeout, AF_ALLOWANCE};
use super::shared::Shared;
use super::{ShotDone, ShotOutcome, ShotRequest};
use crate::clock::BoxFuture;
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
    // Held by the job and here: a job refused at the door still gets its answer.
    let slot = Arc::new(std::sync::Mutex::new(Some(done)));
    let job_slot = slot.clone();
    // Shots jump the queue: they are the one thing with a deadline.
    let queued = cam.control.spawn_at(Some(due), move || {
        let o = fire(&me, due, req);
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
fn fire(cam: &Shared, due: Instant, req: ShotRequest) -> ShotOutcome {
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
            clock.precise_wait_until(due);
            let timeout = shutter_timeout(call, exposure, req.af);
            match url {
                Ok(url) => match session.press(&url, req.af, timeout) {
                    Ok(()) => ShotOutcome {
                        sent_at: due.max(now),
                        replied_at: clock.now(),
                        result: Ok(()),
                        maybe_taken: false,
                    },
                    Err(e) => ShotOutcome {
                        sent_at: due.max(now),
                        replied_at: clock.now(),
                        result: Err(e.error),
                        maybe_taken: e.maybe_taken,
                    },
                },
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
