//! The discovery service: starts the driver and the socket readers, answers `discovery_scan`,
//! `get_discovery_status`, `set_primary_camera`, and keeps the `discovery` status block.
//! (`connect_to_ip` is the camera link's: `camera::service`; discovery learns of a manual
//! camera from the link's `Connected { manual: true }` notice.)

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::driver::{self, DiscoveryConfig, Msg};
use super::registry::{Footprint, Input};
use super::ssdp::HttpUrl;
use super::{CameraProber, ProbeInfo};
use crate::app::{Origin, Publisher, Service, StatusBoard};
use crate::camera::CameraNotice;
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::Inbox;
use crate::protocol::messages::{DiscoveryScanStarted, DiscoveryStatus, PrimaryCameraSet};
use crate::protocol::status::DiscoveryBlock;
use crate::protocol::{ApiError, Command, CommandResult, Owner, Reply};

pub struct DiscoveryService {
    inbox: Inbox<Msg>,
    status: StatusBoard,
    wakeups: Arc<AtomicU64>,
    search_addr: Option<std::net::SocketAddr>,
    notify_addr: Option<std::net::SocketAddr>,
    tasks: std::sync::Mutex<Vec<smol::Task<()>>>,
}

impl DiscoveryService {
    /// Binds the sockets, starts the driver ([`crate::driver::run`]) and the socket readers,
    /// and tries the remembered camera (`last-camera.json`) in the background.
    pub fn start(
        config: DiscoveryConfig,
        clock: SharedClock,
        publisher: Publisher,
        status: StatusBoard,
        prober: Arc<dyn CameraProber>,
    ) -> io::Result<Arc<DiscoveryService>> {
        let last = driver::last_camera(&config);
        let p = driver::bind(
            config,
            clock.clone(),
            publisher,
            status.clone(),
            prober.clone(),
        )?;
        let mut tasks = p.exec.readers();
        tasks.push(crate::rt::spawn(async move {
            crate::driver::run(p.machine, p.exec, p.rx, clock).await;
        }));
        if let Some(url) = last {
            // One connect by the link itself; its `Connected { manual }` notice registers it.
            log::info!("discovery: trying the remembered camera at {url}");
            prober.connect(&url.to_string());
        }
        Ok(Arc::new(DiscoveryService {
            inbox: p.inbox,
            status,
            wakeups: p.wakeups,
            search_addr: p.search_addr,
            notify_addr: p.notify_addr,
            tasks: std::sync::Mutex::new(tasks),
        }))
    }

    /// Feeds `input` and returns once the driver has acted on it (its events are out and the
    /// status block shows it).
    async fn apply(&self, input: Input) {
        let (ack, done) = async_channel::bounded(1);
        let msg = Msg::Input {
            input: Box::new(input),
            ack: Some(ack),
        };
        if self.inbox.send(msg).await.is_ok() {
            let _ = done.recv().await;
        }
    }

    /// Forwards what the camera link reports (`CameraControl::subscribe`), so discovery
    /// knows whether a camera is connected (search pace, `connectedCameras`, last good address).
    pub async fn camera_notice(&self, notice: &CameraNotice) {
        match notice {
            CameraNotice::Connected { id, info, manual } => {
                if let (true, Some(info)) = (manual, info) {
                    if let Some(base_url) = HttpUrl::parse(&info.url) {
                        let info = ProbeInfo {
                            id: Some(info.id.clone()),
                            model_name: Some(info.model.clone()),
                            serial_number: Some(info.serial.clone()),
                        };
                        self.apply(Input::ManualConnected { base_url, info }).await;
                    }
                }
                self.apply(Input::LinkUp { id: id.clone() }).await
            }
            CameraNotice::Lost { .. } => self.apply(Input::LinkDown).await,
            CameraNotice::FilesAdded(_) => {}
        }
    }

    /// Spawns a task that feeds every notice from `notices` to [`Self::camera_notice`].
    pub fn follow_camera(self: &Arc<Self>, notices: async_channel::Receiver<CameraNotice>) {
        let me = Arc::downgrade(self);
        let task = crate::rt::spawn(async move {
            while let Ok(n) = notices.recv().await {
                let Some(me) = me.upgrade() else { return };
                me.camera_notice(&n).await;
            }
        });
        self.lock_tasks().push(task);
    }

    /// `discovery_scan`: search now.
    pub async fn scan(&self) {
        self.apply(Input::ScanRequested).await;
    }

    /// `set_primary_camera {uuid}`.
    pub async fn set_primary(&self, uuid: &str) -> CommandResult {
        let (reply, answer) = async_channel::bounded(1);
        let gone = || ApiError::unavailable("discovery has stopped");
        let msg = Msg::SetPrimary {
            uuid: uuid.to_string(),
            reply,
        };
        self.inbox.send(msg).await.map_err(|_| gone())?;
        answer.recv().await.map_err(|_| gone())??;
        Ok(Reply::of(&PrimaryCameraSet {
            uuid: uuid.to_string(),
        }))
    }

    /// The `discovery` status block as it is now.
    pub fn status(&self) -> DiscoveryBlock {
        self.status.discovery().unwrap_or_default()
    }

    /// Registry and queue sizes (tests, diagnostics); the default once the driver stopped.
    pub async fn footprint(&self) -> Footprint {
        let (reply, answer) = async_channel::bounded(1);
        if self.inbox.send(Msg::Footprint(reply)).await.is_err() {
            return Footprint::default();
        }
        answer.recv().await.unwrap_or_default()
    }

    /// Where the search socket is bound (its replies come back here).
    pub fn search_addr(&self) -> Option<std::net::SocketAddr> {
        self.search_addr
    }

    /// How many times the driver task has woken up (frugality checks).
    pub fn driver_wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Where NOTIFYs are received, if the socket could be bound.
    pub fn notify_addr(&self) -> Option<std::net::SocketAddr> {
        self.notify_addr
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<smol::Task<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service for DiscoveryService {
    fn name(&self) -> &'static str {
        "discovery"
    }

    fn owner(&self) -> Owner {
        Owner::Discovery
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        Some(match cmd {
            Command::DiscoveryScan => Box::pin(async move {
                self.scan().await;
                Ok(Reply::of(&DiscoveryScanStarted {
                    success: true,
                    message: "Discovery scan started".into(),
                }))
            }),
            Command::GetDiscoveryStatus => {
                Box::pin(async move { Ok(Reply::of(&DiscoveryStatus(self.status()))) })
            }
            Command::SetPrimaryCamera(r) => Box::pin(self.set_primary(&r.uuid)),
            _ => return None,
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let tasks = std::mem::take(&mut *self.lock_tasks());
        self.inbox.close();
        Box::pin(async move {
            for t in tasks {
                t.cancel().await;
            }
        })
    }
}
