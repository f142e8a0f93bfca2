//! SSDP packets: the M-SEARCH we send, and the search replies and NOTIFYs we accept.
//!
//! Everything that arrives is untrusted: a datagram larger than [`MAX_PACKET`], without the
//! Canon CCAPI service in its ST/NT, without a `uuid:` USN, or with a Location that is not a
//! plain `http://host[:port]/path` URL is rejected with a reason and dropped by the caller.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// What we search for (Canon's own sample uses this one).
pub const SEARCH_TARGET: &str = "urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1";

/// The SSDP IPv4 multicast group and port.
pub const MULTICAST_V4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);

/// Largest datagram we look at; real SSDP packets are a few hundred bytes.
pub const MAX_PACKET: usize = 2048;

/// Longest Location / USN we keep.
pub const MAX_FIELD: usize = 512;

/// Default `max-age` when a packet carries none (Canon sends 1800).
pub const DEFAULT_MAX_AGE_SECS: u32 = 1800;

/// The M-SEARCH request, with real CRLF line ends.
///
/// `host` goes in the HOST header (the multicast group, or the unicast target in tests).
pub fn m_search(host: SocketAddr, search_target: &str, mx: u8) -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\n\
         HOST: {host}\r\n\
         MAN: \"ssdp:discover\"\r\n\
         MX: {mx}\r\n\
         ST: {search_target}\r\n\
         \r\n"
    )
    .into_bytes()
}

/// Whether a packet's ST/NT names the Canon CCAPI service (both parts, as Canon's clients do).
pub fn is_ccapi_target(st: &str) -> bool {
    st.contains("schemas-canon-com") && st.contains("ICPO-CameraControlAPIService")
}

/// How a camera told us it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceKind {
    /// `HTTP/1.1 200 OK` answer to our M-SEARCH.
    SearchReply,
    /// `NOTIFY … NTS: ssdp:alive`.
    Alive,
}

/// A camera is (still) there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub kind: AnnounceKind,
    /// The UDN part of the USN, without `uuid:`.
    pub uuid: String,
    /// The description URL.
    pub location: HttpUrl,
    /// Seconds from `Cache-Control: max-age`.
    pub max_age_secs: u32,
}

/// A parsed, accepted SSDP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsdpMessage {
    Announce(Announcement),
    /// `NOTIFY … NTS: ssdp:byebye`.
    ByeBye {
        uuid: String,
    },
}

/// Why a packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsdpError {
    TooLarge(usize),
    Malformed(&'static str),
    /// Valid SSDP, but not a Canon CCAPI service (or a search from another client).
    NotForUs,
}

impl fmt::Display for SsdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SsdpError::TooLarge(n) => write!(f, "packet of {n} bytes exceeds {MAX_PACKET}"),
            SsdpError::Malformed(why) => write!(f, "malformed SSDP packet: {why}"),
            SsdpError::NotForUs => f.write_str("not a Canon CCAPI announcement"),
        }
    }
}

/// Parses a search reply or a NOTIFY.
pub fn parse(packet: &[u8]) -> Result<SsdpMessage, SsdpError> {
    if packet.len() > MAX_PACKET {
        return Err(SsdpError::TooLarge(packet.len()));
    }
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let (is_reply, headers): (bool, &[httparse::Header]) = if packet.starts_with(b"HTTP/") {
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(packet) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(SsdpError::Malformed("truncated")),
            Err(_) => return Err(SsdpError::Malformed("bad response head")),
        }
        if resp.code != Some(200) {
            return Err(SsdpError::NotForUs);
        }
        (true, resp.headers)
    } else {
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(packet) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(SsdpError::Malformed("truncated")),
            Err(_) => return Err(SsdpError::Malformed("bad request head")),
        }
        if req.method != Some("NOTIFY") {
            // Other clients' M-SEARCHes land on the NOTIFY socket too.
            return Err(SsdpError::NotForUs);
        }
        (false, req.headers)
    };
    let header = |name: &str| -> Option<&str> {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let target = if is_reply { header("ST") } else { header("NT") };
    if !target.is_some_and(is_ccapi_target) {
        return Err(SsdpError::NotForUs);
    }
    let usn = header("USN").ok_or(SsdpError::Malformed("no USN"))?;
    let uuid = uuid_from_usn(usn).ok_or(SsdpError::Malformed("USN without uuid"))?;
    if !is_reply {
        match header("NTS") {
            Some(nts) if nts.eq_ignore_ascii_case("ssdp:byebye") => {
                return Ok(SsdpMessage::ByeBye { uuid })
            }
            Some(nts) if nts.eq_ignore_ascii_case("ssdp:alive") => {}
            _ => return Err(SsdpError::Malformed("NOTIFY without ssdp:alive/byebye")),
        }
    }
    let location = header("LOCATION").ok_or(SsdpError::Malformed("no Location"))?;
    let location = HttpUrl::parse(location)
        .filter(|u| u.scheme == Scheme::Http)
        .ok_or(SsdpError::Malformed("Location is not an http URL"))?;
    let max_age_secs = header("CACHE-CONTROL")
        .and_then(max_age)
        .unwrap_or(DEFAULT_MAX_AGE_SECS);
    Ok(SsdpMessage::Announce(Announcement {
        kind: if is_reply {
            AnnounceKind::SearchReply
        } else {
            AnnounceKind::Alive
        },
        uuid,
        location,
        max_age_secs,
    }))
}

/// Whether an announcement's Location may be fetched, given who sent the packet: it must name
/// the sender's own address, so a stranger on the network cannot make us fetch from other
/// hosts (or from services on the Pi itself). Loopback senders (tests, an in-process
/// simulator) may name any loopback address.
pub fn location_matches_sender(location: &HttpUrl, from: std::net::IpAddr) -> bool {
    let Ok(host) = location.host.parse::<std::net::IpAddr>() else {
        return false;
    };
    let canon = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    let (host, from) = (canon(host), canon(from));
    host == from || (host.is_loopback() && from.is_loopback())
}

/// `uuid:XXXX::urn:…` → `XXXX` (also a bare `uuid:XXXX`).
pub fn uuid_from_usn(usn: &str) -> Option<String> {
    let rest = strip_prefix_ignore_case(usn.trim(), "uuid:")?;
    let id = rest.split("::").next()?.trim();
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| id.to_string())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `max-age=1800` out of a Cache-Control value.
fn max_age(cache_control: &str) -> Option<u32> {
    cache_control.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse::<u32>().ok())?
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed `http(s)://host[:port][/path]` URL: just what discovery needs, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    pub scheme: Scheme,
    /// An IP literal (IPv6 without brackets) or a host name.
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(s: &str) -> Option<HttpUrl> {
        let s = s.trim();
        if s.is_empty() || s.len() > MAX_FIELD || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let (scheme, rest) = if let Some(r) = strip_prefix_ignore_case(s, "http://") {
            (Scheme::Http, r)
        } else {
            (Scheme::Https, strip_prefix_ignore_case(s, "https://")?)
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return None;
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            h.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => default_port,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok || port == 0 {
            return None;
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Some(HttpUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// `host:port` for a Host header or a socket (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Rng;

    const REPLY: &str = "HTTP/1.1 200 OK\r\n\
Cache-Control: max-age=1800\r\n\
EXT:\r\n\
Location: http://192.168.1.2:49152/upnp/CameraDevDesc.xml\r\n\
Server: Camera OS/1.0 UPnP/1.0 Canon Device Discovery/1.0\r\n\
ST: urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1\r\n\
USN: uuid:00000000-0000-0000-0001-0A0B0C0D0E0F::urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1\r\n\
\r\n";

    const NOTIFY: &str = "NOTIFY * HTTP/1.1\r\n\
Host: 239.255.255.250:1900\r\n\
Cache-Control: max-age=900\r\n\
Location: http://192.168.1.2:49152/upnp/CameraDevDesc.xml\r\n\
NT: urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1\r\n\
NTS: ssdp:alive\r\n\
USN: uuid:00000000-0000-0000-0001-0A0B0C0D0E0F::urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1\r\n\
\r\n";

    #[test]
    fn m_search_has_real_crlf_and_the_canon_target() {
        // Regression: the Node.js service joined the lines with the literal text "\r\n", so
        // cameras never saw a valid request.
        let p = m_search(SocketAddr::V4(MULTICAST_V4), SEARCH_TARGET, 1);
        let text = String::from_utf8(p.clone()).unwrap();
        assert!(!text.contains("\\r\\n"));
        assert!(text.starts_with("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&p).unwrap().is_complete());
        assert_eq!(req.method, Some("M-SEARCH"));
        let st = req.headers.iter().find(|h| h.name == "ST").unwrap();
        assert_eq!(st.value, SEARCH_TARGET.as_bytes());
        let mx = req.headers.iter().find(|h| h.name == "MX").unwrap();
        assert_eq!(mx.value, b"1");
    }

    #[test]
    fn parses_search_reply_and_notify() {
        let SsdpMessage::Announce(a) = parse(REPLY.as_bytes()).unwrap() else {
            panic!("not an announcement")
        };
        assert_eq!(a.kind, AnnounceKind::SearchReply);
        assert_eq!(a.uuid, "00000000-0000-0000-0001-0A0B0C0D0E0F");
        assert_eq!(a.location.host, "192.168.1.2");
        assert_eq!(a.location.port, 49152);
        assert_eq!(a.location.path, "/upnp/CameraDevDesc.xml");
        assert_eq!(a.max_age_secs, 1800);
        let SsdpMessage::Announce(n) = parse(NOTIFY.as_bytes()).unwrap() else {
            panic!("not an announcement")
        };
        assert_eq!(n.kind, AnnounceKind::Alive);
        assert_eq!(n.max_age_secs, 900);
        let bye = NOTIFY.replace("ssdp:alive", "ssdp:byebye");
        assert_eq!(
            parse(bye.as_bytes()).unwrap(),
            SsdpMessage::ByeBye {
                uuid: "00000000-0000-0000-0001-0A0B0C0D0E0F".into()
            }
        );
    }

    #[test]
    fn other_services_and_searches_are_not_for_us() {
        for other in [
            "ICPO-WFTEOSSystemService",
            "ICPO-SmartPhoneEOSSystemService",
        ] {
            let p = REPLY.replace("ICPO-CameraControlAPIService", other);
            assert_eq!(parse(p.as_bytes()), Err(SsdpError::NotForUs));
        }
        let p = REPLY.replace("schemas-canon-com", "schemas-upnp-org");
        assert_eq!(parse(p.as_bytes()), Err(SsdpError::NotForUs));
        let search = m_search(SocketAddr::V4(MULTICAST_V4), SEARCH_TARGET, 1);
        assert_eq!(parse(&search), Err(SsdpError::NotForUs));
    }

    #[test]
    fn malformed_packets_are_rejected_with_a_reason() {
        let no_usn = REPLY.replace("USN:", "X-USN:");
        assert!(matches!(
            parse(no_usn.as_bytes()),
            Err(SsdpError::Malformed(_))
        ));
        let bad_loc = REPLY.replace("http://192.168.1.2:49152", "ftp://x");
        assert!(matches!(
            parse(bad_loc.as_bytes()),
            Err(SsdpError::Malformed(_))
        ));
        let https_loc = REPLY.replace("http://192", "https://192");
        assert!(matches!(
            parse(https_loc.as_bytes()),
            Err(SsdpError::Malformed(_))
        ));
        let truncated = &REPLY.as_bytes()[..REPLY.len() - 4];
        assert!(matches!(parse(truncated), Err(SsdpError::Malformed(_))));
        let huge = vec![b'A'; MAX_PACKET + 1];
        assert_eq!(parse(&huge), Err(SsdpError::TooLarge(MAX_PACKET + 1)));
    }

    #[test]
    fn location_must_name_the_sender() {
        let at = |h: &str| HttpUrl::parse(&format!("http://{h}:49152/d.xml")).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(location_matches_sender(
            &at("192.168.1.2"),
            ip("192.168.1.2")
        ));
        assert!(location_matches_sender(
            &at("192.168.1.2"),
            ip("::ffff:192.168.1.2")
        ));
        assert!(location_matches_sender(&at("127.0.0.3"), ip("127.0.0.1")));
        assert!(!location_matches_sender(
            &at("127.0.0.1"),
            ip("192.168.1.2")
        ));
        assert!(!location_matches_sender(
            &at("192.168.1.9"),
            ip("192.168.1.2")
        ));
        assert!(!location_matches_sender(
            &at("camera.local"),
            ip("192.168.1.2")
        ));
    }

    #[test]
    fn url_parsing_covers_the_shapes_cameras_use() {
        let u = HttpUrl::parse("http://192.168.1.2:8080/ccapi").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.path.as_str()),
            (Scheme::Http, 8080, "/ccapi")
        );
        let u = HttpUrl::parse("https://[fe80::1]/ccapi").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fe80::1", 443));
        assert_eq!(u.to_string(), "https://[fe80::1]:443/ccapi");
        assert_eq!(HttpUrl::parse("http://h").unwrap().path, "/");
        for bad in [
            "",
            "192.168.1.2",
            "http://",
            "http://a:0/",
            "http://a:99999/",
            "http://user@a/",
            "http://a b/",
            "http://[zz]/",
        ] {
            assert_eq!(HttpUrl::parse(bad), None, "{bad}");
        }
    }

    /// Property: random bytes, random mutations of valid packets and random header soups never
    /// panic, and whatever is accepted satisfies the filters.
    #[test]
    fn random_garbage_never_panics_and_never_passes_the_filter_by_accident() {
        let mut rng = Rng::new(0x55D9);
        for i in 0..20_000u32 {
            let packet: Vec<u8> = match i % 3 {
                0 => {
                    let len = (rng.next_u64() % 3000) as usize;
                    (0..len).map(|_| rng.next_u64() as u8).collect()
                }
                1 => {
                    let base = if rng.next_u64() % 2 == 0 {
                        REPLY
                    } else {
                        NOTIFY
                    };
                    let mut p = base.as_bytes().to_vec();
                    for _ in 0..(1 + rng.next_u64() % 8) {
                        let at = (rng.next_u64() as usize) % p.len();
                        match rng.next_u64() % 3 {
                            0 => p[at] = rng.next_u64() as u8,
                            1 => {
                                p.remove(at);
                            }
                            _ => p.insert(at, rng.next_u64() as u8),
                        }
                    }
                    p
                }
                _ => {
                    let words = [
                        "NOTIFY * HTTP/1.1\r\n",
                        "HTTP/1.1 200 OK\r\n",
                        "NT: urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1\r\n",
                        "ST: ssdp:all\r\n",
                        "USN: uuid:\r\n",
                        "USN: uuid:abc::x\r\n",
                        "Location: http://[::1\r\n",
                        "Location: http://127.0.0.1:1/d.xml\r\n",
                        "NTS: ssdp:alive\r\n",
                        "Cache-Control: max-age=-5\r\n",
                        "\r\n",
                        ":\r\n",
                    ];
                    let n = 1 + rng.next_u64() % 10;
                    (0..n)
                        .flat_map(|_| words[(rng.next_u64() as usize) % words.len()].bytes())
                        .collect()
                }
            };
            if let Ok(msg) = parse(&packet) {
                let text = String::from_utf8_lossy(&packet);
                assert!(text.contains("schemas-canon-com"), "{text}");
                if let SsdpMessage::Announce(a) = msg {
                    assert!(!a.uuid.is_empty() && a.location.scheme == Scheme::Http);
                }
            }
        }
    }
}
