//! The executor for service tasks (drivers of discovery, Wi-Fi, time sync, power, the
//! intervalometer), run on one thread that only *parks* between wake-ups.
//!
//! Why not `smol::spawn`: smol's global executor runs its worker in `async_io::block_on`. While
//! any thread sits there, async-io's own reactor thread polls with a 50 µs…10 ms backoff after
//! every I/O event instead of sleeping in epoll: measured, about 1.4 extra context switches per
//! second on an idle Pi with a camera connected (board/footprint.sh). Here the worker uses
//! `futures_lite::future::block_on`, so the reactor thread alone waits in epoll and wakes it.

use std::future::Future;
use std::sync::OnceLock;

static EXECUTOR: smol::Executor<'static> = smol::Executor::new();

/// Spawns a task on the service executor (starting its thread on first use).
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> smol::Task<T> {
    static WORKER: OnceLock<bool> = OnceLock::new();
    let started = *WORKER.get_or_init(|| {
        std::thread::Builder::new()
            .name("skylapse-tasks".into())
            .spawn(|| {
                futures_lite::future::block_on(EXECUTOR.run(futures_lite::future::pending::<()>()))
            })
            .map_err(|e| log::error!("cannot start the task thread ({e}); using smol's"))
            .is_ok()
    });
    if started {
        EXECUTOR.spawn(future)
    } else {
        smol::spawn(future)
    }
}
