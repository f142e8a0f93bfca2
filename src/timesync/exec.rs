//! Time sync's effects for [`crate::driver::run`]: what the machine's actions do and what the
//! service's messages mean.
//!
//! ```text
//!   command (receipt instant read at once) ─Feed{at}─▶ machine.handle(at) ─▶ reply after settle
//!   SendRequest ─▶ the client's queue        StepClock ─▶ shot gate, clock_settime (inline)
//!   ReadCamera / WriteCamera ─▶ a short task ─Input{CameraRead/Written}─▶ the inbox
//!   settled ─▶ the `timesync` block, then the replies (a reply never precedes its status)
//! ```
//!
//! The clock step is one syscall behind the shot gate, so it is done inline; camera reads and
//! writes go over the network and answer through the inbox.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::machine::{Action, Input, StepOutcome, TimeSyncMachine};
use super::systime::SystemTimeSetter;
use super::zone::Zone;
use crate::app::{ClientId, Outbound, Publisher, StatusBoard};
use crate::camera::CameraControl;
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::{Executor, Flow, Inbox};
use crate::machine::{Machine, Now};
use crate::protocol::messages::{SystemTimeReply, TimeSyncRequest};
use crate::protocol::status::{NetInterface, TimesyncBlock};
use crate::protocol::ApiError;
use crate::util::{iso8601, unix_millis};

/// "Is a shot in flight right now?" — the clock is never stepped while it says yes.
pub type ShotGate = Arc<dyn Fn() -> bool + Send + Sync>;

pub type Answer<T> = async_channel::Sender<T>;

/// Where a command's verdict goes.
pub type Verdict = Answer<Result<(), ApiError>>;

/// What the time sync driver's inbox carries.
pub enum Msg {
    /// A machine input, at the instant it happened.
    Input {
        at: Now,
        input: Input,
    },
    /// A command's input (a client's report, a manual sync), fed at its receipt instant `at`
    /// (an offset is measured against it); answered with the machine's verdict once the
    /// status block is out.
    Feed {
        at: Now,
        client: Option<ClientId>,
        input: Input,
        /// A zone label the client sent along (kept as a label only).
        timezone: Option<String>,
        reply: Verdict,
    },
    /// Where a WebSocket client connects from (`None`: it left).
    ClientAddr(ClientId, Option<IpAddr>),
    Status(Answer<TimesyncBlock>),
    SystemTime(Answer<SystemTimeReply>),
    NextDeadline(Answer<Option<Instant>>),
}

pub struct TimeSyncExec {
    pub clock: SharedClock,
    pub status: StatusBoard,
    pub publisher: Publisher,
    pub camera: Option<Arc<dyn CameraControl>>,
    pub setter: Arc<dyn SystemTimeSetter>,
    pub shot_in_flight: ShotGate,
    pub zone: Arc<dyn Zone>,
    /// Where camera reads and writes answer.
    pub inbox: Inbox<Msg>,
    /// Where each WebSocket client connects from (for `piProxyState.state`).
    pub addrs: HashMap<ClientId, IpAddr>,
    /// The interface the last accepted sync came through ("ap0", "wlan0").
    pub proxy_iface: Option<String>,
    /// Command verdicts, sent once the status block is published.
    pub replies: Vec<(Verdict, Result<(), ApiError>)>,
}

impl TimeSyncExec {
    /// The block, with `piProxyState.state` in the original's vocabulary.
    pub fn block(&self, m: &TimeSyncMachine, now: Now) -> TimesyncBlock {
        let mut b = m.status(now.mono, now.wall);
        b.pi_proxy_state.state = match &self.proxy_iface {
            Some(i) if b.pi_proxy_state.valid => format!("{i}-device"),
            _ => "none".into(),
        };
        b
    }

    /// The interface a client reaches the Pi through: the access point's when its address is
    /// in the AP's /24, else the client (Wi-Fi) interface.
    fn iface_of(&self, client: Option<ClientId>) -> String {
        let network = self.status.network();
        let (mut ap, mut sta, mut ap_ip) = ("ap0".to_string(), "wlan0".to_string(), None);
        for (name, i) in network.iter().flat_map(|n| n.interfaces.iter()) {
            match i {
                NetInterface::Ap(a) => {
                    ap = name.clone();
                    ap_ip = a.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
                }
                NetInterface::Client(_) => sta = name.clone(),
            }
        }
        let addr = client.and_then(|c| self.addrs.get(&c).copied());
        match (addr, ap_ip) {
            (Some(IpAddr::V4(a)), Some(IpAddr::V4(b))) if a.octets()[..3] == b.octets()[..3] => ap,
            _ => sta,
        }
    }

    fn system_time(&self, m: &TimeSyncMachine, now: Now) -> SystemTimeReply {
        let wall = now.wall;
        let z = self.zone.at(wall);
        SystemTimeReply {
            current_time: iso8601(wall),
            time: iso8601(wall),
            timestamp: unix_millis(wall),
            unix_ms: unix_millis(wall),
            timezone: self.zone.name(wall),
            utc_offset_seconds: z.utc_offset_secs,
            standard_offset_seconds: z.std_offset_secs,
            dst: z.dst,
            reliability: m.pi_reliability(now.mono).as_str().into(),
            is_synchronized: m.pi_synchronized(now.mono),
        }
    }

    /// Runs a camera call as a short task that answers through the inbox (`missing`: the
    /// answer when this instance has no camera control).
    fn camera_task(
        &self,
        missing: fn(ApiError) -> Input,
        call: impl FnOnce(Arc<dyn CameraControl>) -> BoxFuture<'static, Input> + Send + 'static,
    ) {
        let (camera, clock, inbox) = (self.camera.clone(), self.clock.clone(), self.inbox.clone());
        crate::rt::spawn(async move {
            let input = match camera {
                Some(cam) => call(cam).await,
                None => missing(ApiError::unavailable("no camera control in this instance")),
            };
            let at = Now::read(clock.as_ref());
            let _ = inbox.send(Msg::Input { at, input }).await;
        })
        .detach();
    }
}

impl Executor<TimeSyncMachine> for TimeSyncExec {
    type Msg = Msg;

    async fn on_message(&mut self, m: &mut TimeSyncMachine, now: Now, msg: Msg) -> Flow {
        match msg {
            Msg::Input { at, input } => m.handle_input(at, input),
            Msg::Feed {
                at,
                client,
                input,
                timezone,
                reply,
            } => {
                if timezone.is_some() {
                    m.set_timezone_label(timezone);
                }
                let before = m.last_sync_at();
                let r = m.handle(at.mono, at.wall, input);
                if m.last_sync_at() != before {
                    self.proxy_iface = Some(self.iface_of(client));
                }
                self.replies.push((reply, r));
            }
            Msg::ClientAddr(client, Some(ip)) => {
                self.addrs.insert(client, ip);
            }
            Msg::ClientAddr(client, None) => {
                self.addrs.remove(&client);
            }
            Msg::Status(reply) => {
                let _ = reply.try_send(self.block(m, now));
            }
            Msg::SystemTime(reply) => {
                let _ = reply.try_send(self.system_time(m, now));
            }
            Msg::NextDeadline(reply) => {
                let _ = reply.try_send(m.poll_timeout());
            }
        }
        Flow::Continue
    }

    async fn perform(&mut self, m: &mut TimeSyncMachine, _now: Now, action: Action) {
        match action {
            Action::SendRequest {
                client,
                request_id,
                server_time_ms,
            } => self.publisher.send(Outbound::TimeSyncRequest(
                client,
                TimeSyncRequest {
                    request_id,
                    server_time: server_time_ms,
                },
            )),
            Action::StepClock { offset_ms } => {
                let outcome = if (self.shot_in_flight)() {
                    StepOutcome::Deferred
                } else {
                    let now = unix_millis(self.clock.wall());
                    match self
                        .setter
                        .set(crate::util::from_unix_millis(now + offset_ms))
                    {
                        Ok(()) => {
                            log::info!("stepped the system clock by {offset_ms} ms");
                            StepOutcome::Done
                        }
                        Err(e) => {
                            log::warn!("could not step the system clock: {}", e.message);
                            StepOutcome::Failed(e)
                        }
                    }
                };
                // Read again: after a step the wall clock shows the new time.
                m.handle_input(Now::read(self.clock.as_ref()), Input::Step(outcome));
            }
            Action::ReadCamera => {
                let clock = self.clock.clone();
                self.camera_task(
                    |e| Input::CameraRead(Err(e)),
                    move |cam| {
                        Box::pin(async move {
                            let t0 = clock.now();
                            let r = cam.datetime().await;
                            // The reading is about half a round trip old when it arrives.
                            let half = clock.now().saturating_duration_since(t0) / 2;
                            Input::CameraRead(r.map(|dt| dt.time + half))
                        })
                    },
                )
            }
            Action::WriteCamera => {
                let (clock, zone) = (self.clock.clone(), self.zone.clone());
                self.camera_task(
                    |e| Input::CameraWritten(Err(e)),
                    move |cam| {
                        Box::pin(async move {
                            let t = clock.wall();
                            let z = zone.at(t);
                            let r = cam.set_datetime(t, z.std_offset_secs, z.dst).await;
                            Input::CameraWritten(r)
                        })
                    },
                )
            }
            Action::Event(e) => self.publisher.event(e),
        }
    }

    async fn settled(&mut self, m: &mut TimeSyncMachine, _now: Now) -> Flow {
        // Read again: a step in this turn moved the wall clock the labels are made from.
        let now = Now::read(self.clock.as_ref());
        self.status.set_timesync(Some(self.block(m, now)));
        for (reply, r) in self.replies.drain(..) {
            let _ = reply.try_send(r);
        }
        Flow::Continue
    }
}
