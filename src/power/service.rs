//! The power service: one task that samples every `sample_interval` (30 s), publishes the
//! `power` status block (part of `status_update`, not a per-client timer) and announces warnings
//! when they start and when they clear.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::advice::{estimate, Change, EstimateInputs, WarningTracker};
use super::sampler::{
    sample, NoThrottleCommand, PowerConfig, PowerSample, ThrottleCommand, Vcgencmd,
};
use crate::app::{Origin, Publisher, Service, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::messages::{PowerStatus, PowerWarning, PowerWarningCleared};
use crate::protocol::status::{
    PowerBattery, PowerBlock, PowerWarningBlock, Thermal, ThrottledBlock,
};
use crate::protocol::{Command, CommandResult, Owner, Reply};
use crate::util::iso8601;

/// `get_power_status` reuses a sample younger than this instead of reading again.
const FRESH: Duration = Duration::from_secs(2);

struct State {
    tracker: WarningTracker,
    last: Option<(Instant, PowerSample)>,
    session: Option<EstimateInputs>,
}

struct Inner {
    cfg: PowerConfig,
    clock: SharedClock,
    status: StatusBoard,
    publisher: Publisher,
    cmd: Arc<dyn ThrottleCommand>,
    state: Mutex<State>,
    stop: async_channel::Sender<()>,
}

pub struct PowerService {
    inner: Arc<Inner>,
}

impl PowerService {
    /// Starts sampling under `power.root`; `vcgencmd` is the fallback for the throttle flags
    /// when `power.vcgencmd` is set.
    pub fn start(
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        power: PowerConfig,
    ) -> Arc<PowerService> {
        let cmd: Arc<dyn ThrottleCommand> = if power.vcgencmd {
            Arc::new(Vcgencmd)
        } else {
            Arc::new(NoThrottleCommand)
        };
        Self::start_with_command(clock, status, publisher, power, cmd)
    }

    /// As [`PowerService::start`] with an explicit `vcgencmd` stand-in.
    pub fn start_with_command(
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        power: PowerConfig,
        cmd: Arc<dyn ThrottleCommand>,
    ) -> Arc<PowerService> {
        let (stop, stopped) = async_channel::bounded(1);
        let inner = Arc::new(Inner {
            cfg: power,
            clock,
            status,
            publisher,
            cmd,
            state: Mutex::new(State {
                tracker: WarningTracker::default(),
                last: None,
                session: None,
            }),
            stop,
        });
        // The first sample is taken here, so the block is there before any client asks; the
        // task then samples on the clock's tick grid (anchor + n × interval, the first one
        // 0.5…1.5 intervals in), where the hub's status_update falls too (issue 5).
        let first = inner.clock.now();
        let s = sample(&inner.cfg.root, inner.cmd.as_ref());
        inner.apply(first, s);
        crate::rt::spawn(drive(inner.clone(), stopped, first)).detach();
        Arc::new(PowerService { inner })
    }

    /// The running session's camera battery and card figures (`None` when no session runs):
    /// they feed the low-camera-battery and card warnings and the estimate.
    pub fn set_session_inputs(&self, inputs: Option<EstimateInputs>) {
        let mut st = self.inner.lock();
        st.session = inputs;
        // Judge the new figures against the last sample at once.
        if let Some((at, s)) = st.last.clone() {
            drop(st);
            self.inner.apply(at, s);
        }
    }

    /// Samples now (off the async threads), updates the block and the warnings.
    pub async fn sample_now(&self) -> PowerBlock {
        self.inner.sample_and_apply().await
    }
}

/// Samples on a short-lived thread when `vcgencmd` may run (a process: not on the
/// executor); sysfs and procfs reads alone are memory reads, done in place, which spares
/// the executor a thread and a wake-up every sample (issue 13).
async fn sample_off_thread(root: PathBuf, cmd: Arc<dyn ThrottleCommand>) -> PowerSample {
    if !cmd.may_block() {
        return sample(&root, cmd.as_ref());
    }
    crate::sys::off_thread("power-sample", move || sample(&root, cmd.as_ref())).await
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sys::lock(&self.state)
    }

    async fn sample_and_apply(&self) -> PowerBlock {
        let root = self.cfg.root.clone();
        let cmd = self.cmd.clone();
        let s = sample_off_thread(root, cmd).await;
        for p in &s.problems {
            log::debug!("power: {p}");
        }
        self.apply(self.clock.now(), s)
    }

    /// Records a sample, emits warning edges, publishes the block; returns the block.
    fn apply(&self, at: Instant, s: PowerSample) -> PowerBlock {
        let (changes, block) = {
            let mut st = self.lock();
            let session = st.session;
            let changes = st.tracker.update(&s, session.as_ref());
            let block = block(&s, &st.tracker, session.as_ref(), self.clock.wall());
            st.last = Some((at, s));
            (changes, block)
        };
        // The status block first, then the events: a client (or test) that reacts to a
        // warning and reads the block sees the warning in it.
        // Readings move with every sample (uptime, sample time, temperature, charge): they
        // ride the hub's periodic status_update. Only what a client must see at once (a
        // warning, a recommendation, throttling) costs an extra one (issue 5: wake-ups);
        // `PowerBlock::same_for_clients` decides.
        self.status.set_power(Some(block.clone()));
        for c in changes {
            let warning = |w: &super::advice::Warning| PowerWarning {
                kind: w.as_str().into(),
                severity: w.severity().into(),
                message: w.recommendation().into(),
            };
            match c {
                Change::Started(w) => self.publisher.publish(&warning(&w)),
                Change::Cleared(w) => self.publisher.publish(&PowerWarningCleared(warning(&w))),
            }
        }
        block
    }
}

/// The `power` status block.
pub fn block(
    s: &PowerSample,
    tracker: &WarningTracker,
    session: Option<&EstimateInputs>,
    wall: std::time::SystemTime,
) -> PowerBlock {
    PowerBlock {
        is_raspberry_pi: s.is_raspberry_pi,
        model: s.model.clone(),
        // Objects even when empty: the original UI reads `power.thermal.temperature` directly.
        battery: PowerBattery {
            present: s.battery().is_some(),
            supply: s.battery().map(|b| b.block()),
        },
        supplies: s.supplies.iter().map(|b| b.block()).collect(),
        thermal: Thermal {
            temperature: s.temperature_c.map(|t| (t * 10.0).round() / 10.0),
            unit: "C".into(),
        },
        throttled: s.throttled.map(|t| ThrottledBlock {
            source: s.throttled_source.map(str::to_string),
            ..t.block()
        }),
        // Whole seconds.
        uptime: s.uptime_secs.map(|u| u.floor() as u64),
        recommendations: tracker
            .recommendations()
            .into_iter()
            .map(str::to_string)
            .collect(),
        warnings: tracker
            .active()
            .map(|w| PowerWarningBlock {
                kind: w.as_str().into(),
                severity: w.severity().into(),
                message: w.recommendation().into(),
            })
            .collect(),
        estimate: session.map(|i| estimate(i).block()),
        last_sample: iso8601(wall),
    }
}

async fn drive(inner: Arc<Inner>, stopped: async_channel::Receiver<()>, first: Instant) {
    let interval = inner.cfg.sample_interval.max(Duration::from_secs(1));
    let anchor = inner.clock.tick_anchor();
    let mut next = crate::clock::next_tick(anchor, interval, first + interval / 2);
    loop {
        let sleep = async {
            inner.clock.sleep_until(next).await;
            false
        };
        let stop = async {
            let _ = stopped.recv().await;
            true
        };
        if futures_lite::future::or(sleep, stop).await {
            return;
        }
        inner.sample_and_apply().await;
        // Missed slots (a suspended system) are skipped, not caught up in a burst.
        next += interval;
        let now = inner.clock.now();
        if next < now {
            next = crate::clock::next_tick(anchor, interval, now);
        }
    }
}

impl Service for PowerService {
    fn name(&self) -> &'static str {
        "power"
    }

    fn owner(&self) -> Owner {
        Owner::Power
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        match cmd {
            Command::GetPowerStatus => Some(Box::pin(async move {
                let cached = {
                    let now = self.inner.clock.now();
                    let st = self.inner.lock();
                    st.last
                        .as_ref()
                        .filter(|(at, _)| now.saturating_duration_since(*at) < FRESH)
                        .map(|_| ())
                };
                let block = match cached.and_then(|()| self.inner.status.power()) {
                    Some(b) => b,
                    None => self.inner.sample_and_apply().await,
                };
                Ok(Reply::of(&PowerStatus(block)))
            })),
            _ => None,
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.stop.close();
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prompt_fields_wake_the_hub() {
        use crate::protocol::status::StatusBlock;
        let base = PowerBlock {
            uptime: Some(1),
            last_sample: "a".into(),
            thermal: Thermal {
                temperature: Some(50.1),
                unit: "C".into(),
            },
            is_raspberry_pi: true,
            model: Some("Pi".into()),
            ..PowerBlock::default()
        };
        let mut readings = base.clone();
        readings.uptime = Some(31);
        readings.last_sample = "b".into();
        readings.thermal.temperature = Some(50.3);
        assert!(base.same_for_clients(&readings));
        let mut warned = readings.clone();
        warned.warnings.push(PowerWarningBlock {
            kind: "thermal".into(),
            ..PowerWarningBlock::default()
        });
        assert!(!readings.same_for_clients(&warned));
        let mut throttled = readings.clone();
        throttled.throttled = Some(ThrottledBlock::default());
        assert!(!readings.same_for_clients(&throttled));
    }
}
