//! The D-Bus side of the Wi-Fi driver: opening the bus (a plain unix socket without zbus's
//! blocking pool) and turning NM's signals into `Signal`s for the driver's inbox.
//!
//! Signals come from two match rules: every signal under `/org/freedesktop/NetworkManager`
//! (PropertiesChanged, Device.StateChanged, NM StateChanged) and `NameOwnerChanged` for NM's
//! bus name, so NM vanishing or (re)appearing is followed without polling.

use std::collections::HashMap;

use futures_lite::StreamExt;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value as ZValue};

use super::nm;

/// What NM said, as the driver needs it.
pub(crate) enum Signal {
    NmOwner(bool),
    DeviceState {
        path: OwnedObjectPath,
        state: u32,
        reason: u32,
    },
    LastScan(i64),
    Changed,
    BusLost(String),
}

/// Subscribes to NM's signals on `conn`; each becomes `wrap(signal)` sent to `tx`. Dropping
/// the tasks cancels the forwarders (and their match rules).
pub(crate) async fn start_forwarders<M: Send + 'static>(
    conn: &zbus::Connection,
    tx: async_channel::Sender<M>,
    wrap: fn(Signal) -> M,
) -> zbus::Result<Vec<smol::Task<()>>> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path_namespace(nm::NM_PATH)?
        .build();
    let mut nm_signals = zbus::MessageStream::for_match_rule(rule, conn, Some(64)).await?;
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let mut owners = dbus
        .receive_name_owner_changed_with_args(&[(0, nm::NM_BUS_NAME)])
        .await?;

    let tx2 = tx.clone();
    let nm_task = crate::rt::spawn(async move {
        while let Some(msg) = nm_signals.next().await {
            let Ok(msg) = msg else { continue };
            if let Some(s) = translate(&msg) {
                for s in s {
                    if tx.send(wrap(s)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx
            .send(wrap(Signal::BusLost("the D-Bus connection closed".into())))
            .await;
    });
    let owner_task = crate::rt::spawn(async move {
        while let Some(sig) = owners.next().await {
            let present = sig.args().map(|a| a.new_owner().is_some()).unwrap_or(false);
            if tx2.send(wrap(Signal::NmOwner(present))).await.is_err() {
                return;
            }
        }
    });
    Ok(vec![nm_task, owner_task])
}

/// Turns one NM signal into driver signals (AP property churn is dropped here).
pub(crate) fn translate(msg: &zbus::Message) -> Option<Vec<Signal>> {
    let header = msg.header();
    let path = header.path()?.to_owned();
    let iface = header.interface()?.to_string();
    let member = header.member()?.to_string();
    match (iface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (changed_iface, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) =
                msg.body().deserialize().ok()?;
            if changed_iface == nm::ACCESS_POINT_IFACE {
                return None;
            }
            let mut out = Vec::new();
            if changed_iface == nm::WIRELESS_IFACE {
                if let Some(ZValue::I64(v)) = changed.get("LastScan").map(|v| &**v) {
                    out.push(Signal::LastScan(*v));
                }
            }
            out.push(Signal::Changed);
            Some(out)
        }
        (nm::DEVICE_IFACE, "StateChanged") => {
            let (state, _old, reason): (u32, u32, u32) = msg.body().deserialize().ok()?;
            Some(vec![Signal::DeviceState {
                path: path.into(),
                state,
                reason,
            }])
        }
        ("org.freedesktop.NetworkManager", "StateChanged" | "DeviceAdded" | "DeviceRemoved") => {
            Some(vec![Signal::Changed])
        }
        _ => None,
    }
}

/// Connects to the bus at `address` (default: the system bus). A `unix:path=` socket is
/// opened here: zbus would open it through `blocking::unblock`, and a thread of that pool
/// (blocking 1.7) never exits once started; it wakes every 500 ms for the rest of the
/// process, 2 wake-ups/s on an idle Pi. Other transports are left to zbus.
pub(crate) async fn open_bus(address: Option<&str>) -> zbus::Result<zbus::Connection> {
    let system;
    let addr = match address {
        Some(a) => a,
        None => {
            system = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".into());
            system.as_str()
        }
    };
    if let Some(path) = unix_socket_path(addr) {
        let stream = std::os::unix::net::UnixStream::connect(path)?;
        return zbus::connection::Builder::async_io_unix_stream(stream)
            .build()
            .await;
    }
    match address {
        Some(a) => zbus::connection::Builder::address(a)?.build().await,
        None => zbus::Connection::system().await,
    }
}

/// The socket path of a plain `unix:path=…` D-Bus address (first of a `;` list; a `guid` key
/// is allowed), or `None` for anything else (escaped values, abstract sockets, TCP…).
fn unix_socket_path(address: &str) -> Option<&str> {
    let first = address.split(';').next()?.trim();
    let keys = first.strip_prefix("unix:")?;
    let mut path = None;
    for kv in keys.split(',') {
        match kv.split_once('=')? {
            ("path", p) if !p.is_empty() && !p.contains('%') => path = Some(p),
            ("guid", _) => {}
            _ => return None,
        }
    }
    path
}

#[cfg(test)]
mod bus_address_tests {
    use super::unix_socket_path;

    #[test]
    fn plain_unix_paths_only() {
        assert_eq!(
            unix_socket_path("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            unix_socket_path("unix:path=/tmp/b,guid=0123;tcp:host=x,port=1"),
            Some("/tmp/b")
        );
        assert_eq!(unix_socket_path("unix:abstract=/tmp/dbus-x"), None);
        assert_eq!(unix_socket_path("unix:path=/tmp/a%20b"), None);
        assert_eq!(unix_socket_path("tcp:host=127.0.0.1,port=1"), None);
        assert_eq!(unix_socket_path("unix:path="), None);
        assert_eq!(unix_socket_path(""), None);
    }
}
