//! The Wi-Fi service: the [`Service`] handle the coordinator routes network commands to, and
//! the policy that guards the camera's link.
//!
//! Policy: while a timelapse session runs, any change that can drop the Wi-Fi the camera is on
//! (connect, disconnect, radio off, country change) is refused with **PERMISSION_DENIED**
//! (HTTP 403: the request is well-formed, but not allowed in this state) and
//! `details.reason = "session_running"`, unless the client sends `force: true` (the country
//! change has no `force`: stop the session first). One radio carries both the AP and the client
//! link on a Pi, so even a client-side change can move the AP's channel.

use std::sync::Arc;

use crate::app::{ClientId, Origin, Publisher, Service, StatusBoard};
use crate::clock::{BoxFuture, SharedClock};
use crate::driver::Inbox;
use crate::protocol::messages::{Country, NetworkStatus, WifiCountries, WifiEnabled};
use crate::protocol::status::NetworkBlock;
use crate::protocol::{
    ApiError, Command, CommandResult, ErrorCode, ErrorDetails, Owner, Reply, Secret,
};
use crate::wifi::country::{validate_country, COUNTRIES};
use crate::wifi::driver::{self, Msg, Notices, Request, WifiNotice, WifiOptions};

/// Tells whether a timelapse session is running (supplied by the coordinator).
pub type SessionRunning = Arc<dyn Fn() -> bool + Send + Sync>;

pub struct WifiService {
    requests: Inbox<Msg>,
    session_running: SessionRunning,
    status: StatusBoard,
    notices: Notices,
    _driver: smol::Task<()>,
}

impl WifiService {
    /// Starts the driver task on smol's global executor. Without NetworkManager it runs all the
    /// same: commands answer SERVICE_UNAVAILABLE and `network.available` is false until NM
    /// appears on the bus.
    pub fn start(
        options: WifiOptions,
        clock: SharedClock,
        status: StatusBoard,
        publisher: Publisher,
        session_running: SessionRunning,
    ) -> Arc<WifiService> {
        let notices = Notices::default();
        let (tx, task) = driver::start(options, clock, status.clone(), publisher, notices.clone());
        Arc::new(WifiService {
            requests: tx,
            session_running,
            status,
            notices,
            _driver: task,
        })
    }

    /// A stream of [`WifiNotice`]s (addresses changed) for the camera link.
    pub fn notices(&self) -> async_channel::Receiver<WifiNotice> {
        self.notices.subscribe()
    }

    async fn ask(
        &self,
        make: impl FnOnce(async_channel::Sender<CommandResult>) -> Request,
    ) -> CommandResult {
        let (tx, rx) = async_channel::bounded(1);
        let stopped = || ApiError::unavailable("The Wi-Fi driver has stopped");
        self.requests
            .send(Msg::Request(make(tx)))
            .await
            .map_err(|_| stopped())?;
        rx.recv().await.map_err(|_| stopped())?
    }

    /// SERVICE_UNAVAILABLE naming why NetworkManager cannot be used.
    fn unavailable(&self, block: &NetworkBlock) -> ApiError {
        let why = block
            .error
            .clone()
            .unwrap_or_else(|| "NetworkManager does not report the Wi-Fi radio".into());
        ApiError::unavailable(format!(
            "Wi-Fi management (NetworkManager) is not available: {why}"
        ))
    }

    fn guard(&self, what: &str, force: bool) -> Result<(), ApiError> {
        change_allowed(what, (self.session_running)(), force)
    }

    async fn execute(&self, cmd: &Command) -> CommandResult {
        match cmd {
            Command::GetNetworkStatus => match self.ask(|reply| Request::Status { reply }).await {
                Ok(r) => Ok(r),
                // The driver is gone: the last block is still the truth we have.
                Err(_) => Ok(Reply::of(&NetworkStatus(
                    self.status.network().unwrap_or_default(),
                ))),
            },
            Command::GetWifiEnabled => {
                let block = self.status.network().unwrap_or_default();
                match (block.available, block.wireless_enabled) {
                    (true, Some(enabled)) => Ok(Reply::of(&WifiEnabled { enabled })),
                    _ => Err(self.unavailable(&block)),
                }
            }
            Command::GetSavedNetworks => self.ask(|reply| Request::Saved { reply }).await,
            Command::GetWifiCountries => Ok(Reply::of(&WifiCountries {
                countries: COUNTRIES
                    .iter()
                    .map(|(code, name)| Country {
                        code: code.to_string(),
                        name: name.to_string(),
                    })
                    .collect(),
            })),
            Command::ConfigureAccessPoint(c) => {
                validate_ssid(&c.ssid)?;
                if let Some(pw) = &c.passphrase {
                    validate_psk(pw)?;
                }
                let block = self.status.network().unwrap_or_default();
                if !block.available {
                    return Err(self.unavailable(&block));
                }
                // Honest refusal: the access point's profile is set up by the SD image
                // (board/); changing it at run time is not implemented yet.
                Err(ApiError::unavailable(
                    "Configuring the access point is not supported by skylapse yet: its \
                     profile comes from the SD image (board/)",
                )
                .with_operation("configure_access_point"))
            }
            Command::NetworkScan(s) => {
                let refresh = s.refresh;
                self.ask(|reply| Request::Scan { refresh, reply }).await
            }
            Command::NetworkConnect(c) => {
                validate_ssid(&c.ssid)?;
                if let Some(pw) = &c.password {
                    validate_psk(pw)?;
                }
                self.guard("connecting to another network", c.force)?;
                let (ssid, password) = (c.ssid.clone(), c.password.clone());
                self.ask(|reply| Request::Connect {
                    ssid,
                    password,
                    reply,
                })
                .await
            }
            Command::NetworkDisconnect(f) => {
                self.guard("disconnecting the Wi-Fi", f.force)?;
                self.ask(|reply| Request::Disconnect { reply }).await
            }
            Command::WifiEnable => {
                self.ask(|reply| Request::SetRadio {
                    enabled: true,
                    reply,
                })
                .await
            }
            Command::WifiDisable(f) => {
                self.guard("turning the Wi-Fi radio off", f.force)?;
                self.ask(|reply| Request::SetRadio {
                    enabled: false,
                    reply,
                })
                .await
            }
            Command::GetWifiCountry => self.ask(|reply| Request::GetCountry { reply }).await,
            Command::SetWifiCountry(c) => {
                let code = validate_country(&c.country)?;
                self.guard("changing the Wi-Fi country", false)?;
                self.ask(|reply| Request::SetCountry { code, reply }).await
            }
            _ => Err(ApiError::system("not a Wi-Fi command")),
        }
    }
}

impl Service for WifiService {
    fn name(&self) -> &'static str {
        "wifi"
    }

    fn owner(&self) -> Owner {
        Owner::Wifi
    }

    fn handle<'a>(
        &'a self,
        _origin: Origin,
        cmd: &'a Command,
    ) -> Option<BoxFuture<'a, CommandResult>> {
        Some(Box::pin(self.execute(cmd)))
    }

    fn client_connected(&self, _client: ClientId) {}
}

/// The session policy as a pure function (see the module doc).
pub fn change_allowed(what: &str, session_running: bool, force: bool) -> Result<(), ApiError> {
    if session_running && !force {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "A timelapse session is running: {what} could drop the camera's Wi-Fi link. \
                 Stop the session first, or repeat the request with force: true."
            ),
        )
        .with_details(ErrorDetails::Refused {
            reason: "session_running".into(),
            override_with: Some("force".into()),
        }));
    }
    Ok(())
}

/// An SSID is 1–32 bytes.
pub fn validate_ssid(ssid: &str) -> Result<(), ApiError> {
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(ApiError::invalid("ssid must be 1 to 32 bytes long"));
    }
    Ok(())
}

/// A WPA-PSK passphrase is 8–63 printable ASCII characters, or 64 hex digits. The error never
/// repeats the value.
pub fn validate_psk(pw: &Secret) -> Result<(), ApiError> {
    let p = pw.expose();
    let passphrase = (8..=63).contains(&p.len()) && p.bytes().all(|b| (0x20..0x7f).contains(&b));
    let hex = p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit());
    if passphrase || hex {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "password must be 8 to 63 printable ASCII characters (or 64 hex digits)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_blocks_changes_unless_forced() {
        assert!(change_allowed("x", false, false).is_ok());
        assert!(change_allowed("x", true, true).is_ok());
        let e = change_allowed("turning the Wi-Fi radio off", true, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("force: true"));
        let details = serde_json::to_value(e.details).unwrap();
        assert_eq!(details["reason"], "session_running");
        assert_eq!(details["override"], "force");
    }

    #[test]
    fn psk_rules_and_errors_without_the_value() {
        assert!(validate_psk(&Secret::new("12345678")).is_ok());
        assert!(validate_psk(&Secret::new("a".repeat(64))).is_ok());
        let e = validate_psk(&Secret::new("short")).unwrap_err();
        assert!(!e.message.contains("short"));
        assert!(validate_psk(&Secret::new("z".repeat(64))).is_err());
        assert!(validate_psk(&Secret::new("tab\there-is-bad")).is_err());
        assert!(validate_ssid("").is_err());
        assert!(validate_ssid(&"x".repeat(33)).is_err());
        assert!(validate_ssid("Home").is_ok());
    }
}
