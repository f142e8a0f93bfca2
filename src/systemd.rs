//! systemd integration: `READY=1`, `WATCHDOG=1` and `STOPPING=1` over `$NOTIFY_SOCKET`.
//!
//! The protocol is one unix datagram per notification (sd_notify(3)); the socket path may be a
//! file system path or an abstract name written with a leading '@'. Without `NOTIFY_SOCKET`
//! every call is a no-op, so the service runs the same outside systemd.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go: a path or an abstract name ('@' replaced by the NUL byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl NotifyTarget {
    /// Interprets `$NOTIFY_SOCKET`'s value.
    pub fn parse(value: &str) -> Option<NotifyTarget> {
        if let Some(name) = value.strip_prefix('@') {
            Some(NotifyTarget::Abstract(name.as_bytes().to_vec()))
        } else if value.starts_with('/') {
            Some(NotifyTarget::Path(value.into()))
        } else {
            None
        }
    }

    pub fn from_env() -> Option<NotifyTarget> {
        NotifyTarget::parse(&std::env::var("NOTIFY_SOCKET").ok()?)
    }

    /// Sends one notification (e.g. "READY=1").
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        match self {
            NotifyTarget::Path(p) => sock.send_to(state.as_bytes(), p)?,
            NotifyTarget::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

/// Sends `state` to `$NOTIFY_SOCKET` if set. Failures are logged, never fatal.
pub fn notify(state: &str) {
    if let Some(target) = NotifyTarget::from_env() {
        if let Err(e) = target.notify(state) {
            log::warn!("systemd notify {state:?} failed: {e}");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if the watchdog is meant for us
/// (`$WATCHDOG_PID` unset or equal to our pid).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_abstract_names() {
        assert_eq!(
            NotifyTarget::parse("/run/systemd/notify"),
            Some(NotifyTarget::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifyTarget::parse("@sd-notify-1"),
            Some(NotifyTarget::Abstract(b"sd-notify-1".to_vec()))
        );
        assert_eq!(NotifyTarget::parse("relative"), None);
    }

    #[test]
    fn watchdog_is_half_the_period_and_only_for_our_pid() {
        assert_eq!(
            watchdog_interval_from(Some("20000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval_from(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(watchdog_interval_from(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn notifications_reach_a_path_socket_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("skylapse-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        NotifyTarget::Path(path.clone()).notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("skylapse-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        NotifyTarget::parse(&format!("@{name}"))
            .unwrap()
            .notify("WATCHDOG=1")
            .unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
