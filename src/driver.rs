//! The one driver loop every service uses around its machine ([`crate::machine::Machine`]).
//!
//! ```text
//!   inbox (one bounded channel) ──msg──▶ Executor::on_message ──input──▶ machine
//!   one reusable timer (reset only      machine.handle_timeout(now) ◀── poll_timeout()
//!   when the deadline changes) ─────▶
//!   machine.poll_action() ──action──▶ Executor::perform (the service's effects)
//!   all actions done ───────────────▶ Executor::settled (status block, replies; may stop)
//! ```
//!
//! The loop owns the machine, reads time only through [`Clock`](crate::clock::Clock) (so a
//! [`ManualClock`](crate::clock::ManualClock) drives it in tests) and does nothing else: what a
//! service's actions mean lives in its [`Executor`]. An effect that takes long (blocking camera
//! I/O, a D-Bus call that may hang) is started by `perform` and answers later as a message in
//! the same inbox, so the loop never waits on it.

use std::future::Future;
use std::time::Instant;

use futures_lite::future;

use crate::clock::{BoxFuture, SharedClock};
use crate::machine::{Machine, Now};

/// Whether the driver goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// A service's effects: what its machine's actions do, and what its messages mean.
pub trait Executor<M: Machine>: Send {
    /// What the inbox carries: machine inputs, I/O results, commands with a reply channel.
    type Msg: Send + 'static;

    /// One message from the inbox. Most feed the machine (`m.handle_input(now, input)`);
    /// a command that needs an answer may call the machine's own methods and reply.
    fn on_message(
        &mut self,
        m: &mut M,
        now: Now,
        msg: Self::Msg,
    ) -> impl Future<Output = Flow> + Send;

    /// Performs one action. Results that come back at once may be fed to `m` here; slow ones
    /// are sent to the inbox when they are ready.
    fn perform(
        &mut self,
        m: &mut M,
        now: Now,
        action: M::Action,
    ) -> impl Future<Output = ()> + Send;

    /// Every action is done and the driver is about to sleep: publish, answer, or stop.
    fn settled(&mut self, _m: &mut M, _now: Now) -> impl Future<Output = Flow> + Send {
        async { Flow::Continue }
    }

    /// A deadline of the executor's own (a bus to reconnect), merged with the machine's.
    fn own_deadline(&self) -> Option<Instant> {
        None
    }

    /// The timer fired (machine's or own deadline reached).
    fn on_timeout(&mut self, m: &mut M, now: Now) -> impl Future<Output = ()> + Send {
        m.handle_timeout(now);
        async {}
    }
}

/// The inbox's sending side, handed to whoever produces messages.
pub type Inbox<T> = async_channel::Sender<T>;

/// A bounded inbox (no queue grows without bound; a full one pushes back on its senders).
pub fn inbox<T>(capacity: usize) -> (Inbox<T>, async_channel::Receiver<T>) {
    async_channel::bounded(capacity)
}

/// Runs `machine` with `executor` until the inbox closes or the executor says stop; returns
/// both (a service may read the final state).
pub async fn run<M, E>(
    mut machine: M,
    mut executor: E,
    inbox: async_channel::Receiver<E::Msg>,
    clock: SharedClock,
) -> (M, E)
where
    M: Machine + Send,
    M::Action: Send,
    E: Executor<M>,
{
    let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
    loop {
        let now = Now::read(clock.as_ref());
        if step(&mut machine, &mut executor, now).await == Flow::Stop {
            break;
        }
        let deadline = [machine.poll_timeout(), executor.own_deadline()]
            .into_iter()
            .flatten()
            .min();
        if timer.as_ref().map(|t| t.0) != deadline {
            timer = deadline.map(|d| (d, clock.sleep_until(d)));
        }
        let wake = {
            let recv = async { Some(inbox.recv().await) };
            match timer.as_mut() {
                Some((_, t)) => {
                    future::or(recv, async {
                        t.as_mut().await;
                        None
                    })
                    .await
                }
                None => recv.await,
            }
        };
        let now = Now::read(clock.as_ref());
        match wake {
            None => {
                timer = None;
                executor.on_timeout(&mut machine, now).await;
            }
            Some(Ok(msg)) => {
                if executor.on_message(&mut machine, now, msg).await == Flow::Stop {
                    // The message's consequences still happen (a final status, replies).
                    let _ = step(&mut machine, &mut executor, now).await;
                    break;
                }
            }
            Some(Err(_)) => break,
        }
    }
    (machine, executor)
}

/// Performs every action, then lets the executor settle; what settling fed the machine is
/// performed too before the driver sleeps.
async fn step<M, E>(machine: &mut M, executor: &mut E, now: Now) -> Flow
where
    M: Machine + Send,
    M::Action: Send,
    E: Executor<M>,
{
    loop {
        while let Some(action) = machine.poll_action() {
            executor.perform(machine, now, action).await;
        }
        let flow = executor.settled(machine, now).await;
        match machine.poll_action() {
            Some(action) => executor.perform(machine, now, action).await,
            None => return flow,
        }
        if flow == Flow::Stop {
            return flow;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    /// Counts to a limit, one step per deadline 1 s apart; input `0` resets.
    struct Counter {
        n: u32,
        next: Option<Instant>,
        out: Vec<u32>,
    }

    impl Machine for Counter {
        type Input = u32;
        type Action = u32;
        fn handle_input(&mut self, now: Now, input: u32) {
            self.n = input;
            self.next = Some(now.mono + Duration::from_secs(1));
        }
        fn handle_timeout(&mut self, now: Now) {
            if self.next.is_some_and(|d| now.mono >= d) {
                self.n += 1;
                self.out.push(self.n);
                self.next = (self.n < 3).then(|| now.mono + Duration::from_secs(1));
            }
        }
        fn poll_action(&mut self) -> Option<u32> {
            self.out.pop()
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.next
        }
    }

    struct Record(Arc<Mutex<Vec<u32>>>);

    impl Executor<Counter> for Record {
        type Msg = u32;
        async fn on_message(&mut self, m: &mut Counter, now: Now, msg: u32) -> Flow {
            m.handle_input(now, msg);
            Flow::Continue
        }
        async fn perform(&mut self, _m: &mut Counter, _now: Now, a: u32) {
            self.0.lock().unwrap().push(a);
        }
    }

    #[test]
    fn the_loop_feeds_inputs_fires_deadlines_and_stops_when_the_inbox_closes() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = inbox(4);
        let m = Counter {
            n: 0,
            next: None,
            out: Vec::new(),
        };
        let task = smol::spawn(run(m, Record(seen.clone()), rx, Arc::new(clock.clone())));
        smol::block_on(async {
            tx.send(0).await.unwrap();
            for want in 1..=3u32 {
                // Wait for the driver to arm its timer, then jump to it.
                while clock.next_wakeup().is_none() {
                    smol::future::yield_now().await;
                }
                let d = clock.next_wakeup().unwrap();
                clock.advance(d - clock.now());
                while seen.lock().unwrap().len() < want as usize {
                    smol::future::yield_now().await;
                }
            }
            drop(tx);
            let (m, _) = task.await;
            assert_eq!(m.n, 3);
        });
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
    }
}
