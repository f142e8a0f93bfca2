//! The camera link's executor for [`crate::driver::run`]: what the link machine's actions
//! mean (probes on the control worker, connected/lost notices, the status block; the
//! control worker runs the health checks itself), and the manual connection (`connect_to_ip`,
//! `--camera`) that answers only once the link is up or the address failed.
//!
//! ```text
//!   LinkMsg::Connect{urls, reply} ─▶ probe url₁ on the control worker (the link untouched)
//!        │ Session::connect: the one TLS connect          ▼ fails: url₂ …; after the last,
//!        ▼                                                  reply(Err(attempts)), link as it was
//!   ManualProbeDone(session) ─▶ Input::Adopt ─▶ Action::Connected ─▶ settled: reply(Ok(info))
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use super::ccapi::Session;
use super::link::{Action, Input, LinkMachine, Target};
use super::shared::{LinkView, Shared};
use super::{CameraInfo, CameraNotice};
use crate::driver::{Executor, Flow};
use crate::machine::{Machine, Now};
use crate::protocol::{ApiError, ConnectAttempt, ErrorCode, ErrorDetails};

/// What the link driver's inbox carries.
pub(crate) enum LinkMsg {
    Input(Input),
    ProbeDone {
        gen: u64,
        result: Result<Box<Session>, ApiError>,
    },
    /// A manual connection's probe answered.
    ManualProbeDone {
        gen: u64,
        result: Result<Box<Session>, ApiError>,
    },
    /// Connect to the first of `urls` that answers; reply once connected or all failed.
    Connect {
        urls: Vec<String>,
        reply: async_channel::Sender<Result<CameraInfo, ApiError>>,
        /// `--camera`: if every address fails, keep the last as the target and retry it
        /// (the camera may be off at boot); otherwise the old target comes back.
        persist: bool,
    },
    Shutdown,
}

/// A manual connection under way.
struct Pending {
    url: String,
    rest: VecDeque<String>,
    attempts: Vec<ConnectAttempt>,
    reply: async_channel::Sender<Result<CameraInfo, ApiError>>,
    /// The probe succeeded and the link adopted its session.
    adopted: bool,
    persist: bool,
}

pub(crate) struct LinkExec {
    pub cam: Arc<Shared>,
    pub probe_gen: u64,
    /// Generation of the manual connection's probe (a superseded one's answer is dropped).
    manual_gen: u64,
    pending: Option<Pending>,
    /// The address a manual connection made the target: its `Connected` notice says so.
    manual_url: Option<String>,
}

impl LinkExec {
    pub fn new(cam: Arc<Shared>) -> LinkExec {
        LinkExec {
            cam,
            probe_gen: 0,
            manual_gen: 0,
            pending: None,
            manual_url: None,
        }
    }

    /// Probes the pending connection's current address on the control worker, without
    /// touching the link: a failed manual connection leaves a working link alone.
    fn probe_pending(&mut self, m: &mut LinkMachine, now: Now) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        self.manual_gen += 1;
        let gen = self.manual_gen;
        let url = p.url.clone();
        // The scheme is in the URL: "trying https://…" then "trying http://…".
        log::info!("camera: trying {url}");
        let cam = self.cam.clone();
        let pushed = self.cam.control.spawn(move || {
            let result = Session::connect(
                &url,
                None,
                cam.trust.clone(),
                cam.timeouts,
                cam.clock.clone(),
            )
            .map(Box::new);
            cam.tell_link(LinkMsg::ManualProbeDone { gen, result });
        });
        if let Err(e) = pushed {
            self.manual_failed(m, now, e.message);
        }
    }

    /// The current address failed: the next one, or the answer with every reason.
    fn manual_failed(&mut self, m: &mut LinkMachine, now: Now, reason: String) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        p.attempts.push(ConnectAttempt {
            url: p.url.clone(),
            error: reason,
        });
        if let Some(next) = p.rest.pop_front() {
            p.url = next;
            self.probe_pending(m, now);
            return;
        }
        let p = self.pending.take().expect("checked");
        if p.persist {
            // `--camera`: keep trying that address with the link's backoff.
            self.manual_url = Some(p.url.clone());
            m.handle_input(
                now,
                Input::SetTarget(Target {
                    url: p.url,
                    id: None,
                }),
            );
        }
        let _ = p.reply.try_send(Err(ApiError::new(
            ErrorCode::ConnectionFailed,
            "Failed to connect to the camera",
        )
        .with_details(ErrorDetails::Attempts {
            attempts: p.attempts,
        })));
    }

    /// Answers an adopted manual connection once the link is up.
    fn settle_pending(&mut self, m: &mut LinkMachine) {
        let Some(p) = self.pending.as_ref() else {
            return;
        };
        if !p.adopted {
            return; // its probe is on the control worker
        }
        let p = self.pending.take().expect("checked");
        let r = if m.is_connected() && m.target().is_some_and(|t| t.url == p.url) {
            self.cam.info().ok_or_else(|| {
                ApiError::new(ErrorCode::CameraOffline, "Camera link has no session")
            })
        } else {
            Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                "The camera link was pointed elsewhere meanwhile",
            ))
        };
        let _ = p.reply.try_send(r);
    }

    fn update_view(&self, m: &LinkMachine) {
        let view = LinkView {
            state: m.state().name(),
            last_error: m.last_error().map(str::to_string),
            next_retry_at: m.next_retry_at().map(|at| self.cam.wall_label(at)),
        };
        let changed = {
            let mut s = self.cam.lock();
            let changed = s.view.state != view.state
                || s.view.last_error != view.last_error
                || s.view.next_retry_at != view.next_retry_at;
            s.view = view;
            changed
        };
        if changed {
            self.cam.publish_block();
        }
    }

    fn set_connected(&self, up: bool) {
        {
            let mut s = self.cam.lock();
            if up {
                // A health check at once on the control worker: fresh status (battery,
                // storage, temperature); then its own schedule.
                s.last_control = None;
                s.last_check = None;
                s.last_event = None;
                s.health_count = 0;
                s.miss_reported = false;
            }
            s.connected = up;
        }
        if up {
            self.cam.control.wake();
            self.cam.events.wake();
        }
    }
}

impl Executor<LinkMachine> for LinkExec {
    type Msg = LinkMsg;

    async fn on_message(&mut self, m: &mut LinkMachine, now: Now, msg: LinkMsg) -> Flow {
        match msg {
            LinkMsg::Input(i) => {
                if matches!(i, Input::SetTarget(_) | Input::ClearTarget) {
                    self.manual_url = None;
                }
                m.handle_input(now, i)
            }
            LinkMsg::ProbeDone { gen, result } if gen == self.probe_gen => match result {
                Ok(session) => {
                    let id = session.id.clone();
                    self.cam.lock().session = Some(Arc::new(*session));
                    m.handle_input(now, Input::ProbeOk { id });
                }
                Err(e) => m.handle_input(now, Input::ProbeFailed { reason: e.message }),
            },
            LinkMsg::ProbeDone { .. } => {} // from before a re-target
            LinkMsg::Connect {
                urls,
                reply,
                persist,
            } => {
                let mut rest: VecDeque<String> = urls.into();
                let Some(url) = rest.pop_front() else {
                    let _ = reply.try_send(Err(ApiError::invalid("no address to connect to")));
                    return Flow::Continue;
                };
                if let Some(old) = self.pending.take() {
                    let _ = old.reply.try_send(Err(ApiError::new(
                        ErrorCode::ConnectionFailed,
                        "Superseded by a new connection request",
                    )));
                }
                let here = m.is_connected()
                    && m.target()
                        .is_some_and(|t| t.url == url || rest.contains(&t.url));
                if let (true, Some(info)) = (here, self.cam.info()) {
                    // Already connected there: no probe (a third socket would upset a body).
                    let _ = reply.try_send(Ok(info));
                    return Flow::Continue;
                }
                self.pending = Some(Pending {
                    url,
                    rest,
                    attempts: Vec::new(),
                    reply,
                    adopted: false,
                    persist,
                });
                self.probe_pending(m, now);
            }
            LinkMsg::ManualProbeDone { gen, result } if gen == self.manual_gen => match result {
                Ok(session) => {
                    // One TLS connect: the link takes this session as it is.
                    let target = Target {
                        url: session.base_url.clone(),
                        id: Some(session.id.clone()),
                    };
                    self.probe_gen += 1; // an older link probe's answer is stale now
                    self.cam.lock().session = Some(Arc::new(*session));
                    self.manual_url = Some(target.url.clone());
                    if let Some(p) = self.pending.as_mut() {
                        p.url = target.url.clone();
                        p.adopted = true;
                    }
                    m.handle_input(now, Input::Adopt(target));
                }
                Err(e) => {
                    log::info!("manual camera connection: {e}");
                    self.manual_failed(m, now, e.message);
                }
            },
            LinkMsg::ManualProbeDone { .. } => {}
            LinkMsg::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }

    async fn perform(&mut self, m: &mut LinkMachine, now: Now, action: Action) {
        match action {
            Action::Probe(target) => {
                self.probe_gen += 1;
                let gen = self.probe_gen;
                let cam = self.cam.clone();
                let pushed = self.cam.control.spawn(move || {
                    let result = Session::connect(
                        &target.url,
                        target.id.as_deref(),
                        cam.trust.clone(),
                        cam.timeouts,
                        cam.clock.clone(),
                    )
                    .map(Box::new);
                    if let Err(e) = &result {
                        log::info!("camera probe {}: {e}", target.url);
                    }
                    cam.tell_link(LinkMsg::ProbeDone { gen, result });
                });
                if let Err(e) = pushed {
                    m.handle_input(now, Input::ProbeFailed { reason: e.message });
                }
            }
            Action::Connected { id } => {
                log::info!("camera {id} connected");
                self.set_connected(true);
                // Status first, so whoever reacts to the notice sees it.
                self.update_view(m);
                let info = self.cam.info();
                let manual = self.manual_url.is_some();
                self.cam
                    .notify(CameraNotice::Connected { id, info, manual });
            }
            Action::Lost { reason } => {
                log::warn!("camera link lost: {reason}");
                self.set_connected(false);
                self.update_view(m);
                self.cam.notify(CameraNotice::Lost { reason });
            }
            Action::StateChanged => {
                if !m.is_connected() {
                    self.set_connected(false);
                }
            }
        }
    }

    async fn settled(&mut self, m: &mut LinkMachine, _now: Now) -> Flow {
        self.settle_pending(m);
        self.update_view(m);
        Flow::Continue
    }
}
