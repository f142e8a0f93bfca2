//! The operating-system seams the rest of the crate shares, and the only place with `unsafe`
//! (the crate is `#![deny(unsafe_code)]` and this module alone allows it): what neither std
//! nor rustix offers — `localtime_r`, `getifaddrs`, `sched_setscheduler`.
//!
//! Also here, written once: the lock that survives a poisoned mutex, a blocking call on a
//! short-lived thread, and SO_REUSEADDR sockets (through rustix).
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Mutex, MutexGuard};

use crate::clock::BoxFuture;

/// Locks `m`; a poisoned lock only means another thread panicked while holding it, and every
/// state kept under our mutexes stays valid between statements, so it is used as is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a blocking `f` on a short-lived named thread and resolves with its result (or with
/// `f` run right here if no thread can be had). Not `smol::unblock`: a thread of blocking's
/// pool never exits once started and wakes every 500 ms while idle.
pub fn off_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> BoxFuture<'static, T> {
    let (tx, rx) = async_channel::bounded(1);
    let f = std::sync::Arc::new(Mutex::new(Some(f)));
    let g = f.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(f) = lock(&g).take() {
                let _ = tx.try_send(f());
            }
        });
    Box::pin(async move {
        if spawned.is_ok() {
            if let Ok(v) = rx.recv().await {
                return v;
            }
        }
        let f = lock(&f)
            .take()
            .expect("the thread did not start, so f is still here");
        f()
    })
}

/// A UDP socket bound with SO_REUSEADDR (another SSDP daemon may own port 1900).
pub fn bind_reuse(addr: SocketAddr) -> io::Result<UdpSocket> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let SocketAddr::V4(_) = addr else {
        return UdpSocket::bind(addr);
    };
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    Ok(UdpSocket::from(fd))
}

/// Sends this socket's multicast out of `iface`.
pub fn set_multicast_if(socket: &UdpSocket, iface: Ipv4Addr) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_ip_multicast_if(socket, &iface)?)
}

/// Sets the system's wall clock (needs CAP_SYS_TIME); the error is the OS's.
pub fn set_realtime_clock(since_epoch: std::time::Duration) -> io::Result<()> {
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(since_epoch.as_secs())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        tv_nsec: since_epoch.subsec_nanos().into(),
    };
    Ok(rustix::time::clock_settime(
        rustix::time::ClockId::Realtime,
        ts,
    )?)
}

/// The C library's local zone at `secs` since the epoch (honours `TZ` and /etc/localtime):
/// (UTC offset in seconds east including DST, DST in force, zone abbreviation).
pub fn localtime(secs: i64) -> Option<(i32, bool, String)> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    let name = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated string owned by libc's zone data.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some((tm.tm_gmtoff as i32, tm.tm_isdst > 0, name))
}

/// One interface address from getifaddrs(3).
struct IfAddr {
    addr: IpAddr,
    flags: u32,
}

/// Every address of every interface (IPv4 and IPv6) with the interface's flags.
fn if_addrs() -> Vec<IfAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifap` with a list we only read and then free exactly once;
    // each sockaddr is read according to its own family.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let ifa = &*p;
            let sa = ifa.ifa_addr;
            if !sa.is_null() {
                let addr = match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                if let Some(addr) = addr {
                    out.push(IfAddr {
                        addr,
                        flags: ifa.ifa_flags,
                    });
                }
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// Every up, multicast-capable, non-loopback IPv4 interface address.
pub fn ipv4_interfaces() -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = if_addrs()
        .into_iter()
        .filter(|a| {
            a.flags & libc::IFF_UP as u32 != 0
                && a.flags & libc::IFF_LOOPBACK as u32 == 0
                && a.flags & libc::IFF_MULTICAST as u32 != 0
        })
        .filter_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every address of this device's interfaces, IPv4 and IPv6, loopback included.
pub fn interface_addrs() -> Vec<IpAddr> {
    if_addrs().into_iter().map(|a| a.addr).collect()
}

/// Raises the soft limit on open files towards `want` (never past the hard limit); returns
/// the soft limit now in force (`u64::MAX` when unlimited), or `None` if it cannot be read.
pub fn raise_nofile(want: u64) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    if soft >= want {
        return Some(soft);
    }
    let raised = want.min(lim.maximum.unwrap_or(u64::MAX));
    let new = Rlimit {
        current: Some(raised),
        maximum: lim.maximum,
    };
    Some(if setrlimit(Resource::Nofile, new).is_ok() {
        raised
    } else {
        soft
    })
}

/// The kernel's host name.
pub fn hostname() -> Option<String> {
    let uname = rustix::system::uname();
    let s = uname.nodename().to_str().ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Device and inode of this process's standard error (systemd's JOURNAL_STREAM names the
/// journal's socket this way).
pub fn stderr_identity() -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(std::io::stderr()).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Some((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// Bytes available to an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// While alive, the calling thread runs SCHED_FIFO (if permitted), so a busy CPU cannot
/// delay the press by a scheduler time slice; the previous policy returns on drop. Best
/// effort: needs CAP_SYS_NICE (the service has it on the Pi); elsewhere nothing changes.
pub struct RealtimeWindow {
    previous: Option<(libc::c_int, libc::sched_param)>,
}

impl RealtimeWindow {
    pub fn enter() -> RealtimeWindow {
        // SAFETY: plain syscalls on the calling thread (pid 0) with owned, initialised params.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old: libc::sched_param = std::mem::zeroed();
            if policy < 0 || libc::sched_getparam(0, &mut old) != 0 {
                return RealtimeWindow { previous: None };
            }
            let rt = libc::sched_param { sched_priority: 10 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt) != 0 {
                realtime_refused(io::Error::last_os_error());
                return RealtimeWindow { previous: None };
            }
            RealtimeWindow {
                previous: Some((policy, old)),
            }
        }
    }
}

/// Puts the calling thread under SCHED_BATCH: it no longer preempts the thread that woke it.
///
/// Why: the service executor (main) and the event worker are woken by other threads many
/// times per frame (a shot's outcome, a file notice); under SCHED_OTHER the woken thread
/// preempts its waker on the waker's core, and both pay an extra context switch for nothing
/// (about 3 per frame on two cores, perf sched_switch). Nothing on these threads is
/// latency-critical to a millisecond: shots fire from the control worker, which stays
/// SCHED_OTHER and runs the press under SCHED_FIFO. Unprivileged, best effort.
pub fn batch_this_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on the calling thread (pid 0) with an owned, initialised param.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r != 0 {
        log::debug!(
            "SCHED_BATCH refused: {} (wake-ups cost a little more)",
            io::Error::last_os_error()
        );
    }
}

/// Says once per process that the shutter cannot run SCHED_FIFO, and what that costs.
fn realtime_refused(e: io::Error) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::warn!(
            "cannot run the shutter press under SCHED_FIFO ({e}; it needs LimitRTPRIO=10 or \
             CAP_SYS_NICE): shots still fire on time when the CPU is idle, but a busy CPU can \
             delay a press by a scheduler time slice (a few ms). Said once."
        );
    }
}

impl Drop for RealtimeWindow {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.previous {
            // SAFETY: restores the policy read in `enter` on the same thread.
            unsafe {
                libc::sched_setscheduler(0, policy, &param);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_sockets_share_a_port() {
        let a = bind_reuse("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_reuse(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }

    #[test]
    fn interface_addresses_include_loopback() {
        assert!(interface_addrs().iter().any(|a| a.is_loopback()));
    }

    #[test]
    fn off_thread_returns_the_value() {
        let v = futures_lite::future::block_on(off_thread("t", || 41 + 1));
        assert_eq!(v, 42);
    }
}
