//! The executor for every task (drivers of discovery, Wi-Fi, time sync, power, the
//! intervalometer, the camera link; the web server), run on one thread that only *parks*
//! between wake-ups: the process's main thread ([`run_hosted`]), or in tests and tools that do
//! not host it, a `skylapse-tasks` thread started on first use.
//!
//! Why not `smol::spawn`: smol's global executor runs its worker in `async_io::block_on`. While
//! any thread sits there, async-io's own reactor thread polls with a 50 µs…10 ms backoff after
//! every I/O event instead of sleeping in epoll: measured, about 1.4 extra context switches per
//! second on an idle Pi with a camera connected (board/footprint.sh). Here the worker uses
//! our own [`block_on`] (it only parks), so the reactor thread alone waits in epoll and wakes
//! it, for I/O only: [`block_on`] threads (this one, main) keep their own
//! timers and park until the next one, so a sleep costs no reactor wake-ups.
#![allow(clippy::disallowed_methods)] // the executor's own timers read the real clock

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::{LazyLock, OnceLock};

static EXECUTOR: LazyLock<Arc<smol::Executor<'static>>> =
    LazyLock::new(|| Arc::new(smol::Executor::new()));
/// Set by [`host_on_this_thread`]: a thread (the process's main) will run the executor itself.
static HOSTED: AtomicBool = AtomicBool::new(false);

/// The service executor (what [`spawn`] spawns on).
pub fn executor() -> Arc<smol::Executor<'static>> {
    EXECUTOR.clone()
}

/// Says that the calling thread will run the service executor ([`run_hosted`]), so [`spawn`]
/// starts no thread of its own. Call it before the first [`spawn`].
///
/// Why one thread for everything async: a frame's outcome and its file notice reach the
/// session, the status board, the hub and the WebSocket writers; on two executor threads
/// (services, web server) each such event woke both, about 3 extra context switches per frame
/// (board/probe.py session --per-thread). On one, a publication and its socket writes happen
/// in the same wake-up. What runs here must not block for long (the journal's fsync, a small
/// file write, at most); blocking camera I/O has its own workers.
pub fn host_on_this_thread() {
    HOSTED.store(true, Ordering::SeqCst);
}

/// Runs the service executor on this thread until `future` completes (see
/// [`host_on_this_thread`]).
pub fn run_hosted<T>(future: impl Future<Output = T>) -> T {
    block_on(EXECUTOR.run(future))
}

/// Spawns a task on the service executor (starting its thread on first use, unless a thread
/// hosts it).
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> smol::Task<T> {
    if HOSTED.load(Ordering::SeqCst) {
        return EXECUTOR.spawn(future);
    }
    static WORKER: OnceLock<bool> = OnceLock::new();
    let started = *WORKER.get_or_init(|| {
        std::thread::Builder::new()
            .name("skylapse-tasks".into())
            .spawn(|| block_on(EXECUTOR.run(futures_lite::future::pending::<()>())))
            .map_err(|e| log::error!("cannot start the task thread ({e}); using smol's"))
            .is_ok()
    });
    if started {
        EXECUTOR.spawn(future)
    } else {
        smol::spawn(future)
    }
}

// ---------------------------------------------------------------------------------------------
// Thread-local timers
//
// With async-io timers every sleep costs the "async-io" thread two wake-ups (the timerfd fires;
// the next timer is armed, which writes its eventfd) on top of the sleeper's own. A thread
// that runs [`block_on`] keeps its timers itself and parks with a timeout: a timer firing is
// one wake-up of that thread alone (issue 5). [`SystemClock`](crate::clock::SystemClock)
// sleeps use them on such threads and async-io timers everywhere else (tests, smol's pool).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

#[derive(Default)]
struct Timers {
    next_id: u64,
    entries: BTreeMap<(Instant, u64), Waker>,
}

type SharedTimers = Arc<Mutex<Timers>>;

fn lock(t: &SharedTimers) -> MutexGuard<'_, Timers> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static LOCAL_TIMERS: std::cell::RefCell<Option<SharedTimers>> =
        const { std::cell::RefCell::new(None) };
}

pub(crate) struct ThreadWaker(pub(crate) std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, parking between wake-ups until the next of
/// this thread's timers (see [`LocalSleep`]).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let timers = SharedTimers::default();
    LOCAL_TIMERS.with(|t| *t.borrow_mut() = Some(timers.clone()));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LOCAL_TIMERS.with(|t| *t.borrow_mut() = None);
        }
    }
    let _reset = Reset;
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        let now = Instant::now();
        let (due, next) = {
            let mut t = lock(&timers);
            let later = t.entries.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut t.entries, later);
            (due, t.entries.keys().next().map(|(d, _)| *d))
        };
        if !due.is_empty() {
            // Wakes tasks of this thread: no syscall, the next poll runs them.
            due.into_values().for_each(Waker::wake);
            continue;
        }
        match next {
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(now)),
            None => std::thread::park(),
        }
    }
}

/// A sleep on the timers of the [`block_on`] thread that first polls it.
pub(crate) struct LocalSleep {
    timers: SharedTimers,
    deadline: Instant,
    id: Option<u64>,
}

impl LocalSleep {
    /// `None` when this thread does not run [`block_on`] (use an async-io timer then).
    pub(crate) fn on_this_thread(deadline: Instant) -> Option<LocalSleep> {
        LOCAL_TIMERS
            .with(|t| t.borrow().clone())
            .map(|timers| LocalSleep {
                timers,
                deadline,
                id: None,
            })
    }
}

impl Future for LocalSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut t = lock(&this.timers);
        if let Some(id) = this.id.take() {
            t.entries.remove(&(this.deadline, id));
        }
        if Instant::now() >= this.deadline {
            return Poll::Ready(());
        }
        let id = t.next_id;
        t.next_id = t.next_id.wrapping_add(1);
        t.entries.insert((this.deadline, id), cx.waker().clone());
        this.id = Some(id);
        Poll::Pending
    }
}

impl Drop for LocalSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.timers).entries.remove(&(self.deadline, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use std::time::Duration;

    #[test]
    fn local_sleeps_fire_in_order_and_dropped_ones_do_not_linger() {
        let t0 = Instant::now();
        let order = block_on(async {
            let clock = SystemClock;
            // A dropped sleep leaves no entry behind.
            drop(futures_lite::future::or(
                clock.sleep_until(t0 + Duration::from_secs(60)),
                futures_lite::future::ready(()),
            ));
            let order = Arc::new(Mutex::new(Vec::new()));
            let ex = smol::LocalExecutor::new();
            let tasks: Vec<_> = [(2, 40u64), (1, 20)]
                .into_iter()
                .map(|(n, ms)| {
                    let order = order.clone();
                    ex.spawn(async move {
                        clock.sleep_until(t0 + Duration::from_millis(ms)).await;
                        order.lock().unwrap().push(n);
                    })
                })
                .collect();
            // Until both have woken (however late a loaded machine wakes them).
            ex.run(async {
                for t in tasks {
                    t.await;
                }
            })
            .await;
            let timers = LOCAL_TIMERS.with(|t| t.borrow().clone()).unwrap();
            assert!(lock(&timers).entries.is_empty());
            let v = order.lock().unwrap().clone();
            v
        });
        assert!(t0.elapsed() >= Duration::from_millis(40));
        assert_eq!(order, [1, 2]);
        assert!(LocalSleep::on_this_thread(t0).is_none());
    }
}
