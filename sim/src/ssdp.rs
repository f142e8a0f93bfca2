//! SSDP responder and UPnP description (CCAPI.md §4): answers M-SEARCH with unicast replies,
//! sends NOTIFY alive/byebye to configured targets (unicast, for sandboxes without multicast)
//! and, when enabled, to 239.255.255.250:1900.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;

use super::http::{Request, Response};
use super::{Power, Shared};

pub const SERVICE_TYPE: &str = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";
pub const DEVICE_TYPE: &str = "urn:schemas-canon-com:device:ICPO-CameraControlAPIService:1";
pub const MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
const SERVER: &str = "Camera OS/1.0 UPnP/1.0 Canon Device Discovery/1.0";

/// What the description server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DescriptionMode {
    #[default]
    Normal,
    /// 404 for the description document.
    NotFound,
    /// Truncated, unparsable XML.
    Malformed,
    /// A valid document without `X_accessURL` (a non-CCAPI mode).
    NoAccessUrl,
}

/// SSDP fault knobs (CCAPI.md §5.6 `ssdp`).
#[derive(Debug, Clone, Default)]
pub struct SsdpKnobs {
    /// Ignore the next N M-SEARCHes.
    pub drop_searches: u32,
    /// Reply with garbage instead of a valid response.
    pub malformed_replies: bool,
    /// Send every reply twice.
    pub duplicate_replies: bool,
    /// Delay before replying (real time; a camera waits up to MX).
    pub reply_delay: Duration,
    /// Send no NOTIFY at all.
    pub silent_notify: bool,
    pub description: DescriptionMode,
    /// Well-formed M-SEARCHes received so far (a statistic, for tests to sync on).
    pub searches_seen: u64,
}

/// Binds the unicast SSDP socket and starts its task (and the periodic alive if asked).
pub(crate) fn start(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    notify_interval: Option<Duration>,
) -> io::Result<SocketAddr> {
    let sock = UdpSocket::bind(addr)?;
    let local = sock.local_addr()?;
    let sock = Arc::new(Async::new(sock)?);
    *shared.ssdp_socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock.clone());
    let me = shared.clone();
    if let Some(t) = shared.spawn(responder(me, sock)) {
        shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .other
            .push(t);
    }
    if let Some(every) = notify_interval.filter(|d| !d.is_zero()) {
        let me = shared.clone();
        if let Some(t) = shared.spawn(async move {
            loop {
                me.sleep(every).await;
                send_notify(&me, true);
            }
        }) {
            shared
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .other
                .push(t);
        }
    }
    Ok(local)
}

/// Joins the multicast group on 0.0.0.0:<port> (SO_REUSEADDR/PORT) and answers there too.
pub(crate) fn start_multicast(shared: &Arc<Shared>) -> io::Result<()> {
    let group = shared.ssdp_multicast_addr;
    let sock = bind_reuse(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port()))?;
    sock.join_multicast_v4(group.ip(), &Ipv4Addr::UNSPECIFIED)?;
    sock.set_multicast_loop_v4(true)?;
    let sock = Arc::new(Async::new(sock)?);
    *shared
        .multicast_socket
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(sock.clone());
    let me = shared.clone();
    if let Some(t) = shared.spawn(responder(me, sock)) {
        shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .other
            .push(t);
    }
    Ok(())
}

fn bind_reuse(addr: SocketAddrV4) -> io::Result<UdpSocket> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket syscalls on a fresh fd that we own; closed on every error path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) < 0
        {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(UdpSocket::from_raw_fd(fd))
    }
}

async fn responder(shared: Arc<Shared>, sock: Arc<Async<UdpSocket>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                async_io::Timer::after(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(st) = parse_msearch(&buf[..n]) else {
            continue;
        };
        let (knobs, up) = {
            let mut g = shared.lock();
            g.ssdp.searches_seen += 1;
            shared.state_cv.notify_all();
            let up = g.cam.power == Power::On && g.net.offline.is_none();
            let knobs = g.ssdp.clone();
            if up && g.ssdp.drop_searches > 0 {
                g.ssdp.drop_searches -= 1;
                continue;
            }
            (knobs, up)
        };
        if !up {
            continue;
        }
        let replies = search_replies(&shared, &st);
        if replies.is_empty() {
            continue;
        }
        if !knobs.reply_delay.is_zero() {
            async_io::Timer::after(knobs.reply_delay).await;
        }
        for r in replies {
            let bytes = if knobs.malformed_replies {
                b"HTTP/1.1 200 OK\r\nLocation http//broken\r\nST:\r\n\x00\xff\r\n".to_vec()
            } else {
                r.into_bytes()
            };
            let times = if knobs.duplicate_replies { 2 } else { 1 };
            for _ in 0..times {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    }
}

/// The ST of a well-formed M-SEARCH, or None.
pub fn parse_msearch(pkt: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(pkt) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    if req.method? != "M-SEARCH" || req.path? != "*" {
        return None;
    }
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    if !get("MAN")?.contains("ssdp:discover") {
        return None;
    }
    get("ST")
}

/// Replies for one ST: the CCAPI service, device, root device, or all three for `ssdp:all`.
fn search_replies(shared: &Shared, st: &str) -> Vec<String> {
    let location = shared.description_url();
    let udn = &shared.udn;
    let targets: Vec<&str> = match st {
        "ssdp:all" => vec!["upnp:rootdevice", DEVICE_TYPE, SERVICE_TYPE],
        s if s == SERVICE_TYPE || s == DEVICE_TYPE || s == "upnp:rootdevice" => vec![s],
        s if s == udn => vec![s],
        _ => vec![],
    };
    targets
        .into_iter()
        .map(|t| {
            let usn = if t == udn {
                udn.to_string()
            } else {
                format!("{udn}::{t}")
            };
            format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=1800\r\nEXT:\r\nLocation: {location}\r\nServer: {SERVER}\r\nST: {t}\r\nUSN: {usn}\r\n\r\n"
            )
        })
        .collect()
}

/// NOTIFY alive/byebye for the CCAPI service to every target (and multicast when enabled).
pub(crate) fn send_notify(shared: &Shared, alive: bool) {
    if shared.lock().ssdp.silent_notify {
        return;
    }
    let unicast = shared
        .ssdp_socket
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let multicast = if shared.ssdp_multicast {
        shared
            .multicast_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    } else {
        None
    };
    let Some(sock) = unicast.or_else(|| multicast.clone()) else {
        return;
    };
    let location = shared.description_url();
    let udn = &shared.udn;
    let nts = if alive { "ssdp:alive" } else { "ssdp:byebye" };
    let mut packets = Vec::new();
    for nt in ["upnp:rootdevice", DEVICE_TYPE, SERVICE_TYPE] {
        let mut p = String::from(
            "NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nCache-Control: max-age=1800\r\n",
        );
        if alive {
            p.push_str(&format!("Location: {location}\r\n"));
        }
        p.push_str(&format!(
            "NT: {nt}\r\nNTS: {nts}\r\nServer: {SERVER}\r\nUSN: {udn}::{nt}\r\n\r\n"
        ));
        packets.push(p);
    }
    let targets = shared
        .notify_targets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for t in &targets {
        for p in &packets {
            let _ = sock.get_ref().send_to(p.as_bytes(), t);
        }
    }
    if let Some(m) = multicast {
        for p in &packets {
            let _ = m
                .get_ref()
                .send_to(p.as_bytes(), shared.ssdp_multicast_addr);
        }
    }
}

/// `GET /upnp/CameraDevDesc.xml`.
pub(crate) fn description(shared: &Shared, req: &Request) -> Response {
    if req.path != "/upnp/CameraDevDesc.xml" {
        return Response::bytes(404, "text/html", b"Not Found".to_vec());
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Response::bytes(405, "text/html", b"Method Not Allowed".to_vec());
    }
    let (mode, on_service, serial, mac, product) = {
        let g = shared.lock();
        (
            g.ssdp.description,
            g.on_service || g.second_client.is_some(),
            g.cam.serial.clone(),
            g.cam.mac.clone(),
            g.cam.profile.product().0,
        )
    };
    let access = shared.access_url();
    match mode {
        DescriptionMode::NotFound => {
            return Response::bytes(404, "text/html", b"Not Found".to_vec())
        }
        DescriptionMode::Malformed => {
            return Response::bytes(
                200,
                "text/xml",
                b"<?xml version=\"1.0\"?>\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\n<device><UDN>uuid:broken".to_vec(),
            )
        }
        _ => {}
    }
    let access_line = match (mode, access) {
        (DescriptionMode::Normal, Some(url)) => format!(
            "<ns:X_accessURL xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{url}</ns:X_accessURL>\n"
        ),
        _ => String::new(),
    };
    let nickname = product.replace("Canon ", "").replace(' ', "");
    let usb = mac.replace(':', "");
    let usb = &usb[usb.len().saturating_sub(4)..];
    let udn = &shared.udn;
    let desc_base = format!("http://{}/upnp/", req.local);
    let xml = format!(
        "<?xml version=\"1.0\"?>\n\
<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\n\
<specVersion><major>1</major><minor>0</minor></specVersion>\n\
<URLBase>{desc_base}</URLBase>\n\
<device>\n\
<deviceType>{DEVICE_TYPE}</deviceType>\n\
<friendlyName>{product}</friendlyName>\n\
<manufacturer>Canon</manufacturer>\n\
<manufacturerURL>http://www.canon.com/</manufacturerURL>\n\
<modelDescription>Canon Digital Camera</modelDescription>\n\
<modelName>{product}</modelName>\n\
<serialNumber>{serial}</serialNumber>\n\
<UDN>{udn}</UDN>\n\
<serviceList>\n\
<service>\n\
<serviceType>{SERVICE_TYPE}</serviceType>\n\
<serviceId>urn:schemas-canon-com:serviceId:ICPO-CameraControlAPIService-1</serviceId>\n\
<SCPDURL>CameraSvcDesc.xml</SCPDURL>\n\
<controlURL>control/CanonCamera/</controlURL>\n\
<eventSubURL></eventSubURL>\n\
<ns:X_targetId xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{udn}</ns:X_targetId>\n\
<ns:X_onService xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{}</ns:X_onService>\n\
{access_line}\
<ns:X_deviceUsbId xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{usb}</ns:X_deviceUsbId>\n\
<ns:X_deviceNickname xmlns:ns=\"urn:schemas-canon-com:schema-upnp\">{nickname}</ns:X_deviceNickname>\n\
</service>\n\
</serviceList>\n\
<presentationURL>/</presentationURL>\n\
</device>\n\
</root>\n",
        if on_service { 1 } else { 0 },
    );
    Response::bytes(200, "text/xml", xml.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msearch_parsing() {
        let ok = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {SERVICE_TYPE}\r\n\r\n"
        );
        assert_eq!(parse_msearch(ok.as_bytes()).as_deref(), Some(SERVICE_TYPE));
        // PMK's bug: literal backslash-r-backslash-n instead of CRLF.
        let bad = ok.replace("\r\n", "\\r\\n");
        assert_eq!(parse_msearch(bad.as_bytes()), None);
        assert_eq!(parse_msearch(b"NOTIFY * HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_msearch(&[0xff, 0x00, 0x13]), None);
    }
}
