//! The camera's blocking worker: one named OS thread that owns one camera socket (a ureq
//! agent's keep-alive connection) and runs jobs from one bounded queue, shots first.
//!
//! ```text
//!   submit(due, job) ──▶ [ shots by due … | other jobs in order ] ──▶ worker thread
//!                          (at most MAX_JOBS; more → CAMERA_BUSY)        │ runs job, sends
//!   when the queue is empty: idle() (a long poll, nothing) ◀─────────────┘ its result back
//! ```
//!
//! ureq is blocking, so camera I/O cannot run on the async executors; this is the one way it
//! leaves them. The thread waits through [`Clock::park_until`], so a `ManualClock` drives
//! its deadlines in tests; blocking calls keep their real-time socket timeouts as a safety net.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::{ApiError, ErrorCode};
use crate::sys::lock;

/// Jobs waiting at most; more is refused (no queue grows without bound).
pub const MAX_JOBS: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

/// What the worker does when its queue is empty.
pub enum Idle {
    /// Look at the queue again at once (the idle work took a while: a long poll).
    Again,
    /// Park until this instant (`None`: until a job arrives).
    Until(Option<Instant>),
}

#[derive(Default)]
struct Queue {
    /// Shots (with their due instant) first, in due order; then other jobs in arrival order.
    jobs: VecDeque<(Option<Instant>, Job)>,
    closed: bool,
}

struct Shared {
    name: &'static str,
    /// Runs under SCHED_BATCH ([`crate::sys::batch_this_thread`]): nothing it does is
    /// latency-critical (the event worker's long polls and downloads).
    background: bool,
    queue: Mutex<Queue>,
    thread: OnceLock<std::thread::Thread>,
}

/// A handle to one worker (cheap to clone).
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// A worker whose thread is not started yet (see [`Worker::start`]).
    pub fn new(name: &'static str) -> Worker {
        Self::with_priority(name, false)
    }

    /// A worker for work that is never latency-critical (see [`crate::sys::batch_this_thread`]).
    pub fn background(name: &'static str) -> Worker {
        Self::with_priority(name, true)
    }

    fn with_priority(name: &'static str, background: bool) -> Worker {
        Worker {
            shared: Arc::new(Shared {
                name,
                background,
                queue: Mutex::new(Queue::default()),
                thread: OnceLock::new(),
            }),
        }
    }

    /// Starts the thread; `idle` runs whenever the queue is empty.
    pub fn start(&self, clock: SharedClock, mut idle: impl FnMut() -> Idle + Send + 'static) {
        let shared = self.shared.clone();
        let mut background = shared.background;
        let spawned = std::thread::Builder::new()
            .name(self.shared.name.into())
            .spawn(move || loop {
                if std::mem::take(&mut background) {
                    crate::sys::batch_this_thread();
                }
                let job = {
                    let mut q = lock(&shared.queue);
                    match q.jobs.pop_front() {
                        Some((_, job)) => Some(job),
                        None if q.closed => return,
                        None => None,
                    }
                };
                match job {
                    Some(job) => job(),
                    None => match idle() {
                        Idle::Again => {}
                        // A job pushed after the check above unparks us at once (the park
                        // token), so nothing is missed.
                        Idle::Until(deadline) => clock.park_until(deadline),
                    },
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = self.shared.thread.set(handle.thread().clone());
            }
            Err(e) => {
                log::error!("cannot start {}: {e}", self.shared.name);
                self.close();
            }
        }
    }

    /// Queues `f` and resolves with its result. `due: Some(_)` is a shot: ahead of ordinary
    /// jobs, behind shots due earlier.
    pub fn submit<T: Send + 'static>(
        &self,
        due: Option<Instant>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<BoxFuture<'static, Result<T, ApiError>>, ApiError> {
        let (tx, rx) = async_channel::bounded(1);
        self.push(
            due,
            Box::new(move || {
                let _ = tx.try_send(f());
            }),
        )?;
        Ok(Box::pin(async move {
            rx.recv()
                .await
                .map_err(|_| ApiError::system("Camera worker stopped"))
        }))
    }

    /// Queues a job whose result is delivered by the job itself.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) -> Result<(), ApiError> {
        self.push(None, Box::new(f))
    }

    /// As [`Self::spawn`], placed as `submit` places it (`due: Some(_)` is a shot).
    pub fn spawn_at(
        &self,
        due: Option<Instant>,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), ApiError> {
        self.push(due, Box::new(f))
    }

    fn push(&self, due: Option<Instant>, job: Job) -> Result<(), ApiError> {
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                return Err(ApiError::unavailable("Camera driver is shutting down"));
            }
            if q.jobs.len() >= MAX_JOBS {
                return Err(ApiError::new(
                    ErrorCode::CameraBusy,
                    "Too many camera requests waiting; try again",
                ));
            }
            match due {
                Some(d) => {
                    let at = q
                        .jobs
                        .iter()
                        .position(|(other, _)| other.is_none_or(|o| o > d))
                        .unwrap_or(q.jobs.len());
                    q.jobs.insert(at, (due, job));
                }
                None => q.jobs.push_back((None, job)),
            }
        }
        self.wake();
        Ok(())
    }

    /// Wakes the thread (new job, or its idle work has something new to do).
    pub fn wake(&self) {
        if let Some(t) = self.shared.thread.get() {
            t.unpark();
        }
    }

    /// Refuses new jobs; the thread finishes the queued ones and exits.
    pub fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::time::{Duration, SystemTime};

    #[test]
    fn bounded_and_shots_go_first() {
        let w = Worker::new("test-worker");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut pending = Vec::new();
        for i in 0..MAX_JOBS {
            let o = order.clone();
            pending.push(w.submit(None, move || lock(&o).push(i)).unwrap());
        }
        assert!(w.submit(None, || ()).is_err());
        let w2 = Worker::new("test-worker-2");
        let t0 = crate::clock::SystemClock.now();
        let o = order.clone();
        let a = w2.submit(None, move || lock(&o).push(100)).unwrap();
        let o = order.clone();
        let b = w2
            .submit(Some(t0 + Duration::from_secs(2)), move || {
                lock(&o).push(202)
            })
            .unwrap();
        let o = order.clone();
        let c = w2
            .submit(Some(t0 + Duration::from_secs(1)), move || {
                lock(&o).push(201)
            })
            .unwrap();
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        w2.start(Arc::new(clock), || Idle::Until(None));
        futures_lite::future::block_on(async {
            a.await.unwrap();
            b.await.unwrap();
            c.await.unwrap();
        });
        assert_eq!(*lock(&order), [201, 202, 100]);
        w2.close();
        assert!(w2.submit(None, || ()).is_err());
    }

    #[test]
    fn idle_waits_on_the_clock() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let w = Worker::new("test-idle");
        let (tx, rx) = std::sync::mpsc::channel();
        let due = clock.now() + Duration::from_secs(30);
        let c = clock.clone();
        w.start(Arc::new(clock.clone()), move || {
            if c.now() >= due {
                let _ = tx.send(());
                Idle::Until(None)
            } else {
                Idle::Until(Some(due))
            }
        });
        // The worker parks on the virtual deadline: only advancing the clock releases it.
        while clock.next_wakeup() != Some(due) {
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err());
        clock.advance(Duration::from_secs(30));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        w.close();
    }
}
