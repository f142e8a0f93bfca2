//! Host validation: a request must name this device, so a foreign web page cannot reach the
//! API through DNS rebinding (its own name re-pointed at the Pi's address, after which the
//! browser sends `Host: evil.example` and a matching `Origin`).
//!
//! Accepted `Host` values (the port is ignored): an IP literal that is loopback, the address
//! the connection arrived on or any address of this device's interfaces; `localhost`; the
//! device's host name and `<hostname>.local`; and whatever `--allow-host` adds (`*` turns the
//! check off). An HTTP/1.1 request without `Host` is malformed (RFC 9112 §3.2); HTTP/1.0 may
//! omit it (no browser does).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a miss may re-read the interface addresses and the host name (addresses change
/// when Wi-Fi comes up; a flood of bad Hosts must not turn into a flood of netlink dumps).
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Why a Host was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// HTTP/1.1 without Host, or a Host that is not `name[:port]`.
    Malformed,
    /// A name or address that is not this device's.
    Foreign,
}

struct Known {
    refreshed: Option<Instant>,
    hostname: Option<String>,
    addrs: Vec<IpAddr>,
}

/// The names and addresses this device answers to.
pub struct HostPolicy {
    extra: Vec<String>,
    any: bool,
    known: Mutex<Known>,
}

/// The host part of a `Host` header value, lower-cased, without port or trailing dot.
/// `None` when the value is not `host[:port]` / `[v6][:port]`.
pub fn host_part(value: &str) -> Option<String> {
    let v = value.trim();
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        h.parse::<std::net::Ipv6Addr>().ok()?;
        (h, port)
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    ok.then(|| host.to_ascii_lowercase())
}

impl HostPolicy {
    /// `allow` is `--allow-host` (names or addresses; `*` for any).
    pub fn new(allow: &[String]) -> HostPolicy {
        let extra: Vec<String> = allow
            .iter()
            .filter_map(|a| {
                if a.trim() == "*" {
                    Some("*".to_string())
                } else {
                    host_part(a)
                }
            })
            .collect();
        HostPolicy {
            any: extra.iter().any(|e| e == "*"),
            extra,
            known: Mutex::new(Known {
                refreshed: None,
                hostname: None,
                addrs: Vec::new(),
            }),
        }
    }

    /// Checks a request's `Host` (`None`: absent). `local` is the address the connection
    /// arrived on; `minor` the HTTP/1.x version.
    pub fn check(
        &self,
        host: Option<&str>,
        local: IpAddr,
        minor: u8,
        now: Instant,
    ) -> Result<(), HostError> {
        let Some(value) = host else {
            return if minor >= 1 {
                Err(HostError::Malformed)
            } else {
                Ok(())
            };
        };
        let name = host_part(value).ok_or(HostError::Malformed)?;
        if self.any || self.static_match(&name, local) {
            return Ok(());
        }
        if self.known_match(&name, now, false) || self.known_match(&name, now, true) {
            return Ok(());
        }
        Err(HostError::Foreign)
    }

    fn static_match(&self, name: &str, local: IpAddr) -> bool {
        if let Ok(ip) = name.parse::<IpAddr>() {
            let ip = canonical(ip);
            return ip.is_loopback() || ip == canonical(local) || self.extra_has(name);
        }
        name == "localhost" || name.ends_with(".localhost") || self.extra_has(name)
    }

    fn extra_has(&self, name: &str) -> bool {
        self.extra.iter().any(|e| e == name)
    }

    /// Against the device's host name and addresses; `refresh` re-reads them first (at most
    /// every [`REFRESH_EVERY`]).
    fn known_match(&self, name: &str, now: Instant, refresh: bool) -> bool {
        let mut k = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if refresh || k.refreshed.is_none() {
            let due = k
                .refreshed
                .is_none_or(|t| now.saturating_duration_since(t) >= REFRESH_EVERY);
            if !due {
                return false;
            }
            k.refreshed = Some(now);
            k.hostname = hostname().map(|h| h.to_ascii_lowercase());
            k.addrs = interface_addrs();
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            let ip = canonical(ip);
            return k.addrs.iter().any(|a| canonical(*a) == ip);
        }
        match &k.hostname {
            Some(h) => {
                name == h
                    || name.strip_suffix(".local") == Some(h.as_str())
                    // A fully qualified host name also answers to its first label.
                    || h.split('.').next().is_some_and(|short| {
                        name == short || name.strip_suffix(".local") == Some(short)
                    })
            }
            None => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The kernel's host name.
pub fn hostname() -> Option<String> {
    crate::sys::hostname()
}

/// Every address of this device's interfaces.
pub fn interface_addrs() -> Vec<IpAddr> {
    crate::sys::interface_addrs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn host_part_strips_port_and_rejects_junk() {
        assert_eq!(host_part("Pi.Local:8080").as_deref(), Some("pi.local"));
        assert_eq!(host_part("10.42.0.1").as_deref(), Some("10.42.0.1"));
        assert_eq!(host_part("[fe80::1]:80").as_deref(), Some("fe80::1"));
        assert_eq!(host_part("skylapse.").as_deref(), Some("skylapse"));
        for bad in [
            "",
            ":80",
            "a:b",
            "a:123456",
            "[::1",
            "[zz]",
            "a b",
            "a/b",
            "é.example",
        ] {
            assert_eq!(host_part(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn own_names_and_addresses_pass_foreign_names_do_not() {
        // Regression (issue 9, item 2): Host was never validated, so a rebinding page with
        // Host and Origin both evil.example passed the Origin check.
        let p = HostPolicy::new(&["camera-box.lan".into()]);
        let t = crate::clock::test_t0();
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:8080",
            "127.9.9.9",
            "camera-box.lan",
        ] {
            assert_eq!(p.check(Some(ok), lo(), 1, t), Ok(()), "{ok}");
        }
        // The address the connection arrived on (e.g. the AP's 10.42.0.1).
        let ap: IpAddr = "10.42.0.1".parse().unwrap();
        assert_eq!(p.check(Some("10.42.0.1:8080"), ap, 1, t), Ok(()));
        if let Some(h) = hostname() {
            assert_eq!(p.check(Some(&h), lo(), 1, t), Ok(()));
            assert_eq!(
                p.check(Some(&format!("{h}.local:8080")), lo(), 1, t),
                Ok(())
            );
        }
        for bad in ["evil.example:8080", "10.9.9.9", "localhost.evil.example"] {
            assert_eq!(
                p.check(Some(bad), lo(), 1, t),
                Err(HostError::Foreign),
                "{bad}"
            );
        }
        assert_eq!(p.check(Some("a b"), lo(), 1, t), Err(HostError::Malformed));
        assert_eq!(p.check(None, lo(), 1, t), Err(HostError::Malformed));
        assert_eq!(p.check(None, lo(), 0, t), Ok(()), "HTTP/1.0 may omit Host");
        let any = HostPolicy::new(&["*".into()]);
        assert_eq!(any.check(Some("evil.example"), lo(), 1, t), Ok(()));
    }

    #[test]
    fn interface_addresses_include_loopback() {
        assert!(interface_addrs().iter().any(|a| a.is_loopback()));
    }
}
