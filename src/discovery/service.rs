//! The discovery service: starts the driver, answers `connect_to_ip`, `discovery_scan`,
//! `get_discovery_status`, `set_primary_camera`, and keeps the `discovery` status block.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use futures_lite::future;
use serde_json::json;

use super::driver::{self, DiscoveryConfig, Shared};
use super::registry::{Footprint, Input};
use super::ssdp::HttpUrl;
use super::{CameraProber, ProbeInfo};
use crate::app::{Origin, Publisher, Service, StatusBoard};
use crate::camera::CameraNotice;
use crate::clock::{BoxFuture, SharedClock};
use crate::protocol::messages::{
    ConnectToIpResult, DiscoveryScanStarted, DiscoveryStatus, LastCameraIp, PrimaryCameraSet,
};
use crate::protocol::status::DiscoveryBlock;
use crate::protocol::{ApiError, Command, CommandResult, ConnectToIp, ErrorCode, Owner, Reply};

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
        let mut tasks = vec![crate::rt::spawn(driver::run(shared.clone(), sockets))];
        if let Some(url) = shared.last_camera() {
            let s = shared.clone();
            tasks.push(crate::rt::spawn(async move {
                match probe(&s, &url).await {
                    Ok(info) => {
                        log::info!("discovery: remembered camera answers at {url}");
                        s.apply(Input::ManualConnected {
                            base_url: url,
                            info,
                        })
                        .await;
                    }
                    Err(e) => log::info!("discovery: remembered camera not at {url}: {e}"),
                }
            }));
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
            CameraNotice::Connected { id } => {
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

    /// `connect_to_ip {ip, port?}`.
    pub async fn connect_to_ip(&self, req: &ConnectToIp) -> CommandResult {
        let ip = parse_ip(&req.ip)?;
        let port = req.port.map(|p| p.0);
        let mut attempts = Vec::new();
        for base in candidates(ip, port) {
            log::info!("connect_to_ip: trying {}", base);
            match probe(&self.shared, &base).await {
                Ok(info) => {
                    self.shared
                        .apply(Input::ManualConnected {
                            base_url: base.clone(),
                            info: info.clone(),
                        })
                        .await;
                    let uuid = self
                        .shared
                        .inspect(|m| m.primary().map(|c| c.uuid.clone()))
                        .await;
                    return Ok(Reply::of(&ConnectToIpResult {
                        success: true,
                        ip: base.host.clone(),
                        port: base.port,
                        base_url: base.to_string(),
                        uuid,
                        model_name: info.model_name,
                    }));
                }
                Err(e) => {
                    log::info!("connect_to_ip: {base}: {}", e.message);
                    attempts.push(json!({"url": base.to_string(), "error": e.message}))
                }
            }
        }
        Err(ApiError::new(
            ErrorCode::ConnectionFailed,
            format!("Failed to connect to camera at {}", req.ip.trim()),
        )
        .with_operation("connect_to_ip")
        .with_details(json!({ "attempts": attempts })))
    }

    /// `set_primary_camera {uuid}`.
    pub async fn set_primary(&self, uuid: &str) -> CommandResult {
        self.shared
            .with_machine(|m, _| m.set_primary(uuid))
            .await
            .map(|()| {
                Reply::of(&PrimaryCameraSet {
                    uuid: uuid.to_string(),
                })
            })
    }

    /// The `discovery` status block as it is now.
    pub fn status(&self) -> DiscoveryBlock {
        self.shared.status.discovery().unwrap_or_default()
    }

    /// The last camera address that answered (`last-camera.json`).
    pub fn last_ip(&self) -> LastCameraIp {
        let url = self.shared.last_camera();
        LastCameraIp {
            last_ip: url.as_ref().map(|u| {
                u.host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            }),
            last_port: url.as_ref().map(|u| u.port),
            base_url: url.map(|u| u.to_string()),
        }
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

    fn owner(&self) -> Owner {
        Owner::Discovery
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        Some(match cmd {
            Command::ConnectToIp(req) => Box::pin(self.connect_to_ip(req)),
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
            Command::GetLastCameraIp => Box::pin(async move { Ok(Reply::of(&self.last_ip())) }),
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

/// An IPv4 or IPv6 literal (IPv6 may come in brackets); nothing else.
fn parse_ip(raw: &str) -> Result<IpAddr, ApiError> {
    let s = raw.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    let bad = || {
        ApiError::invalid("ip must be an IPv4 or IPv6 address")
            .with_operation("connect_to_ip")
            .with_details(json!({"field": "ip"}))
    };
    let ip: IpAddr = s.parse().map_err(|_| bad())?;
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(bad());
    }
    Ok(ip)
}

/// Base URLs to try: HTTPS then HTTP on the given port (on any port: a camera, a proxy or
/// the simulator may serve either), or HTTPS 443 then HTTP 8080.
fn candidates(ip: IpAddr, port: Option<u16>) -> Vec<HttpUrl> {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let url = |scheme: &str, port: u16| HttpUrl::parse(&format!("{scheme}://{host}:{port}/ccapi"));
    let list = match port {
        None => vec![url("https", 443), url("http", 8080)],
        Some(p) => vec![url("https", p), url("http", p)],
    };
    list.into_iter().flatten().collect()
}

async fn probe(shared: &Arc<Shared>, base: &HttpUrl) -> Result<ProbeInfo, ApiError> {
    let timeout = shared.config.probe_timeout;
    let deadline = shared.clock.now() + timeout;
    let work = shared.prober.probe(&base.to_string());
    let expire = async {
        shared.clock.sleep_until(deadline).await;
        Err(ApiError::new(
            ErrorCode::CameraTimeout,
            format!("no answer within {}s", timeout.as_secs()),
        ))
    };
    future::or(work, expire).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_literals_are_accepted() {
        for ok in ["192.168.4.2", " 10.0.0.1 ", "::1", "[fe80::1]", "127.0.0.3"] {
            assert!(parse_ip(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "camera.local",
            "192.168.4",
            "192.168.4.2:443",
            "0.0.0.0",
            "255.255.255.255",
            "239.255.255.250",
            "http://192.168.4.2",
            "1.2.3.4; rm -rf /",
        ] {
            let e = parse_ip(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameter, "{bad}");
        }
    }

    #[test]
    fn candidate_order_follows_the_port() {
        let ip: IpAddr = "192.168.4.2".parse().unwrap();
        let s = |v: Vec<HttpUrl>| v.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(
            s(candidates(ip, None)),
            [
                "https://192.168.4.2:443/ccapi",
                "http://192.168.4.2:8080/ccapi"
            ]
        );
        // HTTPS first on every port, 8080 too (the scheme is not the port's).
        assert_eq!(
            s(candidates(ip, Some(8080))),
            [
                "https://192.168.4.2:8080/ccapi",
                "http://192.168.4.2:8080/ccapi"
            ]
        );
        assert_eq!(
            s(candidates(ip, Some(4443)))[0],
            "https://192.168.4.2:4443/ccapi"
        );
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(s(candidates(v6, Some(443)))[0], "https://[::1]:443/ccapi");
    }
}
