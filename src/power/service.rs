//! The power service: one task that samples every `sample_interval` (30 s), publishes the
//! `power` status block (part of `status_update`, not a per-client timer) and announces warnings
//! when they start and when they clear.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::advice::{estimate, Change, EstimateInputs, WarningTracker};
use super::sampler::{
    sample, NoThrottleCommand, PowerConfig, PowerSample, ThrottleCommand, Vcgencmd,
};
use crate::app::{Origin, Publisher, Service, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::{Channel, Command, CommandResult, Event, EventFamily, Reply};
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
    pub async fn sample_now(&self) -> Value {
        self.inner.sample_and_apply().await
    }
}

/// Samples on a short-lived thread (sysfs reads, maybe `vcgencmd`: not on the executor).
async fn sample_off_thread(root: PathBuf, cmd: Arc<dyn ThrottleCommand>) -> PowerSample {
    crate::sys::off_thread("power-sample", move || sample(&root, cmd.as_ref())).await
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sys::lock(&self.state)
    }

    async fn sample_and_apply(&self) -> Value {
        let root = self.cfg.root.clone();
        let cmd = self.cmd.clone();
        let s = sample_off_thread(root, cmd).await;
        for p in &s.problems {
            log::debug!("power: {p}");
        }
        self.apply(self.clock.now(), s)
    }

    /// Records a sample, emits warning edges, publishes the block; returns the block.
    fn apply(&self, at: Instant, s: PowerSample) -> Value {
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
        // warning, a recommendation, throttling) costs an extra one (issue 5: wake-ups).
        if needs_prompt_update(&self.status.get("power"), &block) {
            self.status.set("power", block.clone());
        } else {
            self.status.set_quietly("power", block.clone());
        }
        for c in changes {
            let (kind, w) = match c {
                Change::Started(w) => ("power_warning", w),
                Change::Cleared(w) => ("power_warning_cleared", w),
            };
            self.publisher.event(Event::new(
                Channel::Power,
                EventFamily::Event,
                kind,
                json!({
                    "kind": w.as_str(),
                    "severity": w.severity(),
                    "message": w.recommendation(),
                }),
            ));
        }
        block
    }
}

/// Fields of the `power` block a client must see as soon as they change.
const PROMPT_FIELDS: [&str; 5] = [
    "warnings",
    "recommendations",
    "throttled",
    "isRaspberryPi",
    "model",
];

/// True when the new block differs from the published one in a [`PROMPT_FIELDS`] field (or
/// there was none yet).
fn needs_prompt_update(old: &Value, new: &Value) -> bool {
    old.is_null() || PROMPT_FIELDS.iter().any(|k| old.get(k) != new.get(k))
}

/// The `power` status block.
pub fn block(
    s: &PowerSample,
    tracker: &WarningTracker,
    session: Option<&EstimateInputs>,
    wall: std::time::SystemTime,
) -> Value {
    let warnings: Vec<Value> = tracker
        .active()
        .map(|w| json!({"kind": w.as_str(), "severity": w.severity(), "message": w.recommendation()}))
        .collect();
    json!({
        "isRaspberryPi": s.is_raspberry_pi,
        "model": s.model,
        // Objects even when empty: the original UI reads `power.thermal.temperature` directly.
        "battery": s.battery().map_or_else(|| json!({"present": false}), |b| {
            let mut v = b.to_json();
            v["present"] = json!(true);
            v
        }),
        "supplies": s.supplies.iter().map(|b| b.to_json()).collect::<Vec<_>>(),
        "thermal": {
            "temperature": s.temperature_c.map(|t| (t * 10.0).round() / 10.0),
            "unit": "C",
        },
        "throttled": s.throttled.map(|t| {
            let mut v = t.to_json();
            v["source"] = json!(s.throttled_source);
            v
        }),
        // Whole seconds: the block only changes when something a client shows changes.
        "uptime": s.uptime_secs.map(|u| u.floor() as u64),
        "recommendations": tracker.recommendations(),
        "warnings": warnings,
        "estimate": session.map(|i| estimate(i).to_json()),
        "lastSample": iso8601(wall),
    })
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
                let block = match cached {
                    Some(()) => self.inner.status.get("power"),
                    None => self.inner.sample_and_apply().await,
                };
                Ok(Reply::new("power_status", block))
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
        let base = json!({"uptime": 1, "lastSample": "a", "thermal": {"temperature": 50.1},
            "warnings": [], "recommendations": [], "throttled": null,
            "isRaspberryPi": true, "model": "Pi"});
        assert!(needs_prompt_update(&Value::Null, &base));
        let mut readings = base.clone();
        readings["uptime"] = json!(31);
        readings["lastSample"] = json!("b");
        readings["thermal"]["temperature"] = json!(50.3);
        assert!(!needs_prompt_update(&base, &readings));
        let mut warned = readings.clone();
        warned["warnings"] = json!([{"kind": "thermal"}]);
        assert!(needs_prompt_update(&readings, &warned));
        let mut throttled = readings.clone();
        throttled["throttled"] = json!({"underVoltage": true});
        assert!(needs_prompt_update(&readings, &throttled));
    }
}
