//! The discovery service: starts the driver, answers `discovery_scan`,
//! `get_discovery_status`, `set_primary_camera`, and keeps the `discovery` status block.
//! (`connect_to_ip` is the camera link's: `camera::service`; discovery learns of a manual
//! camera from the link's `Connected { manual: true }` notice.)

use std::io;
use std::sync::Arc;

use serde_json::{json, Value};

use super::driver::{self, DiscoveryConfig, Shared};
use super::registry::{Footprint, Input};
use super::ssdp::HttpUrl;
use super::{CameraProber, ProbeInfo};
use crate::app::{Origin, Publisher, Service, StatusBoard};
use crate::camera::CameraNotice;
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::{Command, CommandResult, Reply};

pub struct DiscoveryService {
    shared: Arc<Shared>,
    tasks: std::sync::Mutex<Vec<smol::Task<()>>>,
}

impl DiscoveryService {
    /// Binds the sockets, spawns the driver on smol's global executor, and tries the
    /// remembered camera (`last-camera.json`) in the background.
    pub fn start(
        config: DiscoveryConfig,
        clock: SharedClock,
        publisher: Publisher,
        status: StatusBoard,
        prober: Arc<dyn CameraProber>,
    ) -> io::Result<Arc<DiscoveryService>> {
        let (shared, sockets) = Shared::new(config, clock, publisher, status, prober)?;
        let tasks = vec![crate::rt::spawn(driver::run(shared.clone(), sockets))];
        if let Some(url) = shared.last_camera() {
            // One connect by the link itself; its `Connected { manual }` notice registers it.
            log::info!("discovery: trying the remembered camera at {url}");
            shared.prober.connect(&url.to_string());
        }
        Ok(Arc::new(DiscoveryService {
            shared,
            tasks: std::sync::Mutex::new(tasks),
        }))
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
                        self.shared
                            .apply(Input::ManualConnected { base_url, info })
                            .await;
                    }
                }
                self.shared.apply(Input::LinkUp { id: id.clone() }).await
            }
            CameraNotice::Lost { .. } => self.shared.apply(Input::LinkDown).await,
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
        self.shared.apply(Input::ScanRequested).await;
    }

    /// `set_primary_camera {uuid}`.
    pub async fn set_primary(&self, uuid: &str) -> CommandResult {
        self.shared
            .with_machine(|m, _| m.set_primary(uuid))
            .await
            .map(|()| Reply::new("primary_camera_set", json!({ "uuid": uuid })))
    }

    /// The `discovery` status block as it is now.
    pub fn status(&self) -> Value {
        self.shared.status.get("discovery")
    }

    /// Registry and queue sizes (tests, diagnostics).
    pub async fn footprint(&self) -> Footprint {
        self.shared.inspect(|m| m.footprint()).await
    }

    /// Where the search socket is bound (its replies come back here).
    pub fn search_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.search_addr()
    }

    /// How many times the driver task has woken up (frugality checks).
    pub fn driver_wakeups(&self) -> u64 {
        self.shared.wakeups()
    }

    /// Where NOTIFYs are received, if the socket could be bound.
    pub fn notify_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.notify_addr()
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<smol::Task<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service for DiscoveryService {
    fn name(&self) -> &'static str {
        "discovery"
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        Some(match cmd {
            Command::DiscoveryScan => Box::pin(async move {
                self.scan().await;
                Ok(Reply::new(
                    "discovery_scan_started",
                    json!({"success": true, "message": "Discovery scan started"}),
                ))
            }),
            Command::GetDiscoveryStatus => {
                Box::pin(async move { Ok(Reply::new("discovery_status", self.status())) })
            }
            Command::SetPrimaryCamera(r) => Box::pin(self.set_primary(&r.uuid)),
            _ => return None,
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let tasks = std::mem::take(&mut *self.lock_tasks());
        Box::pin(async move {
            for t in tasks {
                t.cancel().await;
            }
        })
    }
}
