//! Blocking CCAPI client (ureq 3 + rustls with certificate pinning).
//!
//! A [`Session`] is one camera at one address: two keep-alive agents of one pooled
//! connection each (the driver's control worker and its event/download worker), the
//! endpoint catalog read from `GET /ccapi` (never hard-coded versions), and the identity read
//! from `deviceinformation`. Every call has a timeout; every failure becomes an [`ApiError`]
//! with a PROTOCOL.md code ([`status_error`], [`transport_error`]).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};
use ureq::Agent;

use super::tls::{client_config, PinningConnector, PinningVerifier, Trust};
use super::CameraDateTime;
use crate::clock::SharedClock;
use crate::protocol::{ApiError, ErrorCode, ErrorDetails};
use crate::util::{civil_from_days, days_from_civil};

mod answers;
mod datetime;
mod endpoints;
mod errors;

pub use answers::*;
pub use datetime::*;
pub use endpoints::*;
pub use errors::*;

/// Time limits for camera calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Ordinary calls (status, settings, shutter without long exposures).
    pub call: Duration,
    /// Event long-polls (the camera holds `timeout=long` ~30 s).
    pub long_poll: Duration,
    /// A whole file download.
    pub download: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            call: Duration::from_secs(10),
            long_poll: Duration::from_secs(40),
            download: Duration::from_secs(60),
        }
    }
}

/// Time the camera may spend on autofocus before it exposes (dark scenes hunt for seconds).
pub const AF_ALLOWANCE: Duration = Duration::from_secs(5);
/// Longest timed exposure a Canon body offers (longer ones are bulb).
pub const MAX_TIMED_EXPOSURE: Duration = Duration::from_secs(30);

/// Seconds of a CCAPI shutter speed: `"1/125"`, `"0\"5"` (0.5 s), `"3\"2"` (3.2 s),
/// `"30\""`. `None` for `"bulb"`, empty or anything not understood. (The simulator parses
/// these on its own on purpose: one misreading of the spec should not hide in both.)
pub fn tv_seconds(tv: &str) -> Option<f64> {
    let tv = tv.trim();
    let secs = if let Some((num, den)) = tv.split_once('/') {
        let num: f64 = num.trim().parse().ok()?;
        let den: f64 = den.trim().parse().ok()?;
        if den <= 0.0 {
            return None;
        }
        num / den
    } else if let Some((whole, frac)) = tv.split_once('"') {
        let whole: u32 = whole.trim().parse().ok()?;
        let frac = frac.trim();
        if frac.is_empty() {
            f64::from(whole)
        } else {
            if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 3 {
                return None;
            }
            format!("{whole}.{frac}").parse().ok()?
        }
    } else {
        return None;
    };
    (secs.is_finite() && secs > 0.0 && secs <= 3600.0).then_some(secs)
}

/// How long to wait for the reply to a one-shot press: the camera answers when the exposure
/// is over, after AF, and with long-exposure noise reduction only after a dark frame as long
/// again. `exposure` unknown → the longest timed exposure, so a night shot is never cut off.
pub fn shutter_timeout(call: Duration, exposure: Option<Duration>, af: bool) -> Duration {
    let exposure = exposure.unwrap_or(MAX_TIMED_EXPOSURE);
    call + exposure * 2 + if af { AF_ALLOWANCE } else { Duration::ZERO }
}

/// Largest JSON body accepted from the camera (the first event poll is the biggest).
const MAX_JSON: u64 = 2 * 1024 * 1024;
/// Largest file accepted as a test photo.
pub const MAX_DOWNLOAD: u64 = 200 * 1024 * 1024;
/// The largest live-view frame accepted (a medium frame is ~100-300 KB).
pub const MAX_LV_FRAME: u64 = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The session

/// The event worker's thread name: its requests (long polls, downloads) go over an agent of
/// their own, so each worker keeps its own socket. With one pool for both, ureq hands out
/// the oldest idle connection, so both sockets stayed in use even when only one worker
/// talked to the camera (issue 13: idle on one connection).
pub const EVENTS_THREAD: &str = "camera-events";

/// One camera at one address.
pub struct Session {
    /// The control worker's (and every other thread's) connection.
    agent: Agent,
    /// The event worker's connection.
    events_agent: Agent,
    /// `https://127.0.0.1:443` (scheme, host, port; no path).
    origin: String,
    pub base_url: String,
    pub endpoints: Endpoints,
    pub info: DeviceInfo,
    /// The camera id the link uses: the discovery UDN when given, else the serial number.
    pub id: String,
    pub timeouts: Timeouts,
    trust: Arc<Trust>,
    clock: SharedClock,
}

/// A reply: status and body bytes.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

fn origin_of(url: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid(format!("Not a camera URL: {url}"));
    let i = url.find("://").ok_or_else(bad)?;
    let scheme = &url[..i];
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let rest = &url[i + 3..];
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    Ok(format!("{scheme}://{host}"))
}

impl Session {
    /// Connects: resolves the API list, reads the identity, checks the certificate pin.
    /// `url` is the CCAPI base (`https://ip:443/ccapi`); `id` the discovery UDN if known.
    pub fn connect(
        url: &str,
        id: Option<&str>,
        trust: Arc<Trust>,
        timeouts: Timeouts,
        clock: SharedClock,
    ) -> Result<Session, ApiError> {
        let origin = origin_of(url)?;
        let strict_id = if trust.insecure() {
            None
        } else {
            id.map(str::to_string)
        };
        let verifier = PinningVerifier::new(trust.clone(), strict_id);
        let agent = make_agent(verifier.clone(), timeouts)?;
        let events_agent = make_agent(verifier.clone(), timeouts)?;
        let mut s = Session {
            agent,
            events_agent,
            origin,
            base_url: url.trim_end_matches('/').to_string(),
            endpoints: Endpoints::default(),
            info: DeviceInfo::default(),
            id: String::new(),
            timeouts,
            trust: trust.clone(),
            clock,
        };
        let root = s.request("GET", &format!("{}/ccapi", s.origin), None, timeouts.call)?;
        let mut endpoints = if root.status == 200 {
            serde_json::from_slice::<Value>(&root.body)
                .map(|v| Endpoints::parse(&v))
                .unwrap_or_default()
        } else if root.status == 404 {
            return Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                "This device does not serve CCAPI (GET /ccapi → 404); is CCAPI enabled on the camera?",
            ));
        } else {
            return Err(status_error(root.status, &root.body));
        };
        if endpoints.list.is_empty() {
            // "No list of APIs" (or an empty list): newer firmware lists them here.
            let top = s.get_json_url(
                &format!("{}/ccapi/ver100/topurlfordev", s.origin),
                timeouts.call,
            )?;
            endpoints = Endpoints::parse(&top);
        }
        if endpoints.list.is_empty() {
            return Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                "Camera lists no CCAPI endpoints",
            ));
        }
        s.endpoints = endpoints;
        let info = DeviceInfo::parse(&s.get("deviceinformation")?);
        if info.serialnumber.is_empty() && info.guid.is_empty() && id.is_none() {
            return Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                "Camera reports no serial number; cannot identify it",
            ));
        }
        let serial = if info.serialnumber.is_empty() {
            info.guid.clone()
        } else {
            info.serialnumber.clone()
        };
        s.id = id.map(str::to_string).unwrap_or_else(|| serial.clone());
        if url.starts_with("https") {
            if let Some(fp) = verifier.learned() {
                let ids = [s.id.as_str(), serial.as_str()];
                trust.check_and_pin(&ids, fp).map_err(|r| r.to_error())?;
            }
            if !trust.insecure() {
                verifier.set_id(s.id.clone());
            }
        }
        s.info = info;
        s.release_button();
        Ok(s)
    }

    /// Sends `manual release` (best effort): clears a shutter button left pressed by an
    /// earlier client, and takes the camera out of connection standby, whose first control
    /// call is refused with `Taken in preparation`; that refusal then hits this call, not the
    /// first shot. Retried briefly while the camera says it is busy.
    fn release_button(&self) {
        let Some(e) = self.endpoints.find("shooting/control/shutterbutton/manual") else {
            return;
        };
        let url = self.url(&e.path);
        let body = json!({"action": "release", "af": false});
        for _ in 0..5 {
            match self.call("POST", &url, &body, self.timeouts.call) {
                Err(e) if e.code == ErrorCode::CameraBusy => self.pause(Duration::from_millis(200)),
                Err(e) => {
                    log::debug!("release at connect: {e}");
                    return;
                }
                Ok(_) => return,
            }
        }
    }

    /// Waits on the session's clock (the worker thread's only sleeps: a busy camera's retry).
    fn pause(&self, d: Duration) {
        self.clock.precise_wait_until(self.clock.now() + d);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    /// The URL of `resource` from the catalog.
    pub fn resolve(&self, resource: &str) -> Result<String, ApiError> {
        self.endpoints
            .find(resource)
            .map(|e| self.url(&e.path))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("This camera does not offer {resource}"),
                )
            })
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Answer, ApiError> {
        let mut resp = self.send(method, url, body, timeout)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| transport_error(&e, Some(&self.trust)))?;
        Ok(Answer { status, body })
    }

    /// The agent of the calling worker ([`EVENTS_THREAD`] or any other).
    fn agent(&self) -> &Agent {
        if std::thread::current().name() == Some(EVENTS_THREAD) {
            &self.events_agent
        } else {
            &self.agent
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        let map = |e: ureq::Error| transport_error(&e, Some(&self.trust));
        let agent = self.agent();
        let result = match method {
            "GET" => agent
                .get(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            "DELETE" => agent
                .delete(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            m => {
                let b = if m == "PUT" {
                    agent.put(url)
                } else {
                    agent.post(url)
                };
                let text = body.map(Value::to_string).unwrap_or_else(|| "{}".into());
                b.config()
                    .timeout_global(Some(timeout))
                    .build()
                    .header("Content-Type", "application/json")
                    .send(text.as_bytes())
            }
        };
        result.map_err(map)
    }

    fn json_of(a: Answer) -> Result<Value, ApiError> {
        if !(200..300).contains(&a.status) {
            return Err(status_error(a.status, &a.body));
        }
        if a.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&a.body).map_err(|_| {
            ApiError::new(
                ErrorCode::ConnectionFailed,
                "Camera sent a reply that is not JSON",
            )
        })
    }

    fn get_json_url(&self, url: &str, timeout: Duration) -> Result<Value, ApiError> {
        Self::json_of(self.request("GET", url, None, timeout)?)
    }

    /// GET a catalog resource.
    pub fn get(&self, resource: &str) -> Result<Value, ApiError> {
        let url = self.resolve(resource)?;
        self.get_json_url(&url, self.timeouts.call)
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        Self::json_of(self.request(method, url, Some(body), timeout)?)
    }

    /// `POST shooting/liveview`: live view on at `size` ("small" | "medium") or "off". The
    /// camera's own screen is left as it is (`keep`) where the body accepts that; bodies that
    /// reject `keep` (400, the R100) get `on`.
    pub fn liveview(&self, size: &str) -> Result<(), ApiError> {
        let url = self.resolve("shooting/liveview")?;
        let body = json!({"liveviewsize": size, "cameradisplay": "keep"});
        match self.call("POST", &url, &body, self.timeouts.call) {
            Err(e) if e.code == ErrorCode::InvalidParameter => {
                let body = json!({"liveviewsize": size, "cameradisplay": "on"});
                self.call("POST", &url, &body, self.timeouts.call).map(drop)
            }
            r => r.map(drop),
        }
    }

    /// `GET shooting/liveview/flip`: one live-view JPEG (at most [`MAX_LV_FRAME`] bytes).
    pub fn liveview_frame(&self) -> Result<Vec<u8>, ApiError> {
        let url = self.resolve("shooting/liveview/flip")?;
        let mut resp = self.send("GET", &url, None, self.timeouts.call)?;
        let status = resp.status().as_u16();
        let limit = if (200..300).contains(&status) {
            MAX_LV_FRAME
        } else {
            MAX_JSON
        };
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| transport_error(&e, Some(&self.trust)))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &body));
        }
        if !body.starts_with(&[0xFF, 0xD8]) {
            return Err(ApiError::new(
                ErrorCode::ConnectionFailed,
                "Camera sent a live-view frame that is not a JPEG",
            ));
        }
        Ok(body)
    }

    /// `POST shooting/control/drivefocus {"value": step}` (near1..3, far1..3).
    pub fn drive_focus(&self, step: &str) -> Result<(), ApiError> {
        let url = self.resolve("shooting/control/drivefocus")?;
        self.call("POST", &url, &json!({ "value": step }), self.timeouts.call)
            .map(drop)
    }

    /// The model name for the status block.
    pub fn model(&self) -> &str {
        &self.info.productname
    }

    /// `https` or `http`, host, port of the camera.
    pub fn host_port(&self) -> (String, u16) {
        let rest = self.origin.split("://").nth(1).unwrap_or("");
        let https = self.origin.starts_with("https");
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().unwrap_or(if https { 443 } else { 80 }),
            ),
            _ => (rest.to_string(), if https { 443 } else { 80 }),
        }
    }

    // --- status ---------------------------------------------------------------------------

    /// Battery: ver100 `devicestatus/battery` (ver110 batterylist misreports on the R50);
    /// batterylist only when the camera has no ver100 resource.
    pub fn battery(&self) -> Result<Value, ApiError> {
        if let Some(e) = self.endpoints.find_in("ver100", "devicestatus/battery") {
            let url = self.url(&e.path);
            return self.get_json_url(&url, self.timeouts.call);
        }
        let v = self.get("devicestatus/batterylist")?;
        Ok(v.get("batterylist")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or(Value::Null))
    }

    pub fn storage(&self) -> Result<Value, ApiError> {
        self.get("devicestatus/storage")
    }

    /// `{"status": "normal"}` → "normal".
    pub fn temperature(&self) -> Result<String, ApiError> {
        let v = self.get("devicestatus/temperature")?;
        Ok(v.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }

    pub fn settings(&self) -> Result<Value, ApiError> {
        self.get("shooting/settings")
    }

    /// PUT one setting; returns the camera's echo.
    pub fn set_setting(&self, name: &str, value: &Value) -> Result<Value, ApiError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'/')
            && !name.starts_with('/')
            && !name.contains("//");
        if !valid {
            return Err(ApiError::invalid(format!("Invalid setting name: {name:?}")));
        }
        let resource = format!("shooting/settings/{name}");
        let url = match self.endpoints.find(&resource) {
            Some(e) => self.url(&e.path),
            None => format!("{}/{name}", self.resolve("shooting/settings")?),
        };
        self.call("PUT", &url, &json!({ "value": value }), self.timeouts.call)
    }

    // --- clock ----------------------------------------------------------------------------

    pub fn datetime(&self) -> Result<CameraDateTime, ApiError> {
        let v = self.get("functions/datetime")?;
        let raw = v
            .get("datetime")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let dst = v.get("dst").and_then(Value::as_bool).unwrap_or(false);
        let time = parse_canon_datetime(&raw, dst).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ConnectionFailed,
                format!("Camera clock reading not understood: {raw:?}"),
            )
        })?;
        Ok(CameraDateTime { time, raw, dst })
    }

    pub fn set_datetime(
        &self,
        time: SystemTime,
        std_offset_secs: i32,
        dst: bool,
    ) -> Result<(), ApiError> {
        let url = self.resolve("functions/datetime")?;
        let body = json!({
            "datetime": format_canon_datetime(time, std_offset_secs, dst),
            "dst": dst,
        });
        self.call("PUT", &url, &body, self.timeouts.call)
            .map(|_| ())
    }

    // --- shutter --------------------------------------------------------------------------

    /// URL of the one-shot shutter (resolved ahead of the shot, off the critical path).
    pub fn shutter_url(&self) -> Result<String, ApiError> {
        self.resolve("shooting/control/shutterbutton")
    }

    /// Presses the shutter; `Ok` carries the instant the request went to the socket. The
    /// camera answers after the exposure, so `timeout` must cover it ([`shutter_timeout`]).
    /// Presses the shutter; the caller reads its clock right before (the send instant).
    pub fn press(&self, url: &str, af: bool, timeout: Duration) -> Result<(), PressError> {
        let body = if af {
            r#"{"af":true}"#
        } else {
            r#"{"af":false}"#
        };
        let r = self
            .agent()
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/json")
            .send(body.as_bytes());
        let lost = |e: ureq::Error| PressError {
            maybe_taken: reply_lost(&e),
            error: transport_error(&e, Some(&self.trust)),
        };
        let mut resp = r.map_err(lost)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(lost)?;
        if !(200..300).contains(&status) {
            return Err(PressError {
                error: photo_error(status_error(status, &body)),
                maybe_taken: false,
            });
        }
        Ok(())
    }

    /// `shutterbutton/manual`: one action (`full_press`, `release`, `half_press`).
    pub fn manual(&self, action: &str, af: bool, timeout: Duration) -> Result<(), ApiError> {
        let url = self.resolve("shooting/control/shutterbutton/manual")?;
        self.call("POST", &url, &json!({"action": action, "af": af}), timeout)
            .map(|_| ())
            .map_err(photo_error)
    }

    // --- events and contents ----------------------------------------------------------------

    /// Whether the camera offers event polling at all.
    pub fn has_event_polling(&self) -> bool {
        self.endpoints.find("event/polling").is_some()
    }

    /// One event poll that the camera holds until something changes (ver110+ `timeout=long`,
    /// ver100 `continue=on`). Handles `Already started` by cancelling the stale poll once.
    pub fn poll_events(&self, hold: bool) -> Result<Value, ApiError> {
        let e = self.endpoints.find("event/polling").ok_or_else(|| {
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                "This camera offers no event polling",
            )
        })?;
        let query = match (version_num(&e.version) >= 110, hold) {
            (true, true) => "?timeout=long",
            (true, false) => "?timeout=immediately",
            (false, true) => "?continue=on",
            (false, false) => "",
        };
        let url = format!("{}{query}", self.url(&e.path));
        let timeout = if hold {
            self.timeouts.long_poll
        } else {
            self.timeouts.call
        };
        match self.get_json_url(&url, timeout) {
            Err(err) if camera_message(&err) == Some("Already started") => {
                // A poll of ours from before (timed out here, still pending there).
                let _ = self.request("DELETE", &self.url(&e.path), None, self.timeouts.call);
                self.pause(Duration::from_millis(100));
                self.get_json_url(&url, timeout)
            }
            other => other,
        }
    }

    /// Downloads a file (`/ccapi/...` path) into `out`, reporting (received, total) progress.
    pub fn download(
        &self,
        path: &str,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, ApiError> {
        if !path.starts_with("/ccapi/") || path.contains("..") {
            return Err(ApiError::invalid(format!(
                "Not a camera content path: {path}"
            )));
        }
        let mut resp = self.send("GET", &self.url(path), None, self.timeouts.download)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_vec()
                .unwrap_or_default();
            return Err(status_error(status, &body));
        }
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if total.map(|t| t > MAX_DOWNLOAD).unwrap_or(false) {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "Camera file is too large for a test photo",
            ));
        }
        let mut reader = resp.body_mut().with_config().limit(MAX_DOWNLOAD).reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        progress(0, total);
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                ApiError::new(
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        ErrorCode::CameraTimeout
                    } else {
                        ErrorCode::NetworkError
                    },
                    format!("Download from the camera broke off: {e}"),
                )
            })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| ApiError::system(format!("Cannot store the photo: {e}")))?;
            got += n as u64;
            progress(got, total);
        }
        if let Some(t) = total {
            if got != t {
                return Err(ApiError::new(
                    ErrorCode::NetworkError,
                    format!("Download incomplete: {got} of {t} bytes"),
                ));
            }
        }
        Ok(got)
    }
}

/// The camera's own message in an error from [`status_error`].
pub fn camera_message(e: &ApiError) -> Option<&str> {
    match e.details.as_deref()? {
        ErrorDetails::Camera { camera_message, .. } => Some(camera_message),
        _ => None,
    }
}

/// A refused shot is a failed photo unless the camera was merely busy or gone.
fn photo_error(e: ApiError) -> ApiError {
    match e.code {
        ErrorCode::CameraBusy if !camera_message(&e).map(is_busy_message).unwrap_or(false) => {
            ApiError {
                code: ErrorCode::PhotoFailed,
                ..e
            }
        }
        _ => e,
    }
}

fn make_agent(verifier: Arc<PinningVerifier>, t: Timeouts) -> Result<Agent, ApiError> {
    let tls = client_config(verifier)?;
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(t.connect))
        .timeout_global(Some(t.call))
        // One agent per worker, one socket each: two at most (the R50 breaks with more).
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .max_idle_age(Duration::from_secs(60))
        .max_redirects(0)
        .user_agent(concat!("skylapse/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ().chain(TcpConnector::default()).chain(PinningConnector::new(tls));
    Ok(Agent::with_parts(
        config,
        connector,
        IpLiteralResolver::default(),
    ))
}

/// Answers IP-literal hosts (what SSDP and `--camera` give) without a lookup; names go to
/// ureq's resolver. With a timeout set, ureq's resolver hands *every* lookup, even of
/// "192.168.1.2", to a new thread: one thread and one extra wake-up per camera call (issue 5).
#[derive(Debug, Default)]
struct IpLiteralResolver(DefaultResolver);

impl IpLiteralResolver {
    fn literal(uri: &ureq::http::Uri) -> Option<std::net::SocketAddr> {
        let authority = uri.authority()?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: std::net::IpAddr = host.parse().ok()?;
        let port = authority.port_u16().or(match uri.scheme_str()? {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })?;
        Some(std::net::SocketAddr::new(ip, port))
    }
}

impl Resolver for IpLiteralResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match Self::literal(uri) {
            Some(addr) => {
                let mut v = self.empty();
                v.push(addr);
                Ok(v)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literal_hosts_resolve_without_a_lookup() {
        let at = |u: &str| IpLiteralResolver::literal(&u.parse().unwrap());
        assert_eq!(
            at("https://192.168.1.2:443/ccapi"),
            Some("192.168.1.2:443".parse().unwrap())
        );
        assert_eq!(
            at("http://127.0.0.1/x"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            at("https://[::1]:8443/"),
            Some("[::1]:8443".parse().unwrap())
        );
        assert_eq!(at("https://camera.local/ccapi"), None);
    }

    #[test]
    fn catalog_parses_path_and_url_styles_and_prefers_the_newest() {
        let v = json!({
            "ver100": [
                {"url": "http://192.168.1.2:8080/ccapi/ver100/deviceinformation", "get": true},
                {"path": "/ccapi/ver100/devicestatus/battery", "get": true},
                {"path": "/ccapi/ver100/shooting/settings", "get": true},
                {"path": "/ccapi/ver100/event/polling", "get": true, "delete": true}
            ],
            "ver110": [
                {"path": "/ccapi/ver110/shooting/settings", "get": true},
                {"path": "/ccapi/ver110/event/polling", "get": true, "delete": true},
                {"path": "/ccapi/ver110/devicestatus/batterylist", "get": true}
            ],
            "ver120": [],
            "message": "ignored"
        });
        let e = Endpoints::parse(&v);
        assert_eq!(e.list.len(), 7);
        assert_eq!(
            e.find("deviceinformation").unwrap().path,
            "/ccapi/ver100/deviceinformation"
        );
        assert_eq!(e.find("event/polling").unwrap().version, "ver110");
        assert!(e.find("event/polling").unwrap().delete);
        assert_eq!(
            e.find_in("ver100", "shooting/settings").unwrap().path,
            "/ccapi/ver100/shooting/settings"
        );
        assert!(e.find("shooting/control/shutterbutton").is_none());
        // "No list of APIs" (any non-object or empty shape) → empty → topurlfordev.
        assert!(Endpoints::parse(&json!("No list of APIs")).list.is_empty());
        assert!(Endpoints::parse(&json!({"message": "No list of APIs"}))
            .list
            .is_empty());
    }

    #[test]
    fn errors_map_to_protocol_codes() {
        let busy = status_error(503, br#"{"message":"Device busy"}"#);
        assert_eq!(busy.code, ErrorCode::CameraBusy);
        assert_eq!(
            status_error(503, br#"{"message":"Taken in preparation"}"#).code,
            ErrorCode::CameraBusy
        );
        let other = status_error(503, br#"{"message":"Out of focus"}"#);
        assert!(other.message.contains("Out of focus"));
        assert_eq!(photo_error(other).code, ErrorCode::PhotoFailed);
        assert_eq!(photo_error(busy).code, ErrorCode::CameraBusy);
        let wedged = status_error(502, b"<html>");
        assert!(wedged.message.contains("power-cycle"), "{}", wedged.message);
        let invalid = status_error(400, br#"{"message":"Invalid parameter"}"#);
        assert_eq!(invalid.code, ErrorCode::InvalidParameter);
        assert_eq!(camera_message(&invalid), Some("Invalid parameter"));
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(
            transport_error(&refused, None).code,
            ErrorCode::CameraOffline
        );
        let slow = ureq::Error::Timeout(ureq::Timeout::Global);
        assert_eq!(transport_error(&slow, None).code, ErrorCode::CameraTimeout);
    }

    #[test]
    fn tv_seconds_reads_every_ccapi_form() {
        assert_eq!(tv_seconds("1/125"), Some(1.0 / 125.0));
        assert_eq!(tv_seconds("1/4000"), Some(1.0 / 4000.0));
        assert_eq!(tv_seconds("0\"5"), Some(0.5));
        assert_eq!(tv_seconds("3\"2"), Some(3.2));
        assert_eq!(tv_seconds("20\""), Some(20.0));
        assert_eq!(tv_seconds("30\""), Some(30.0));
        for bad in ["bulb", "", "1/0", "x/2", "\"", "1\"xx", "-1/2", "1/-2", "5"] {
            assert_eq!(tv_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shutter_timeout_follows_the_exposure() {
        // Regression (issue 14 B1): the press had a fixed 10 s timeout, so every exposure of
        // 10 s or longer was counted as failed although the camera wrote the file.
        let call = Duration::from_secs(10);
        let t20 = shutter_timeout(call, Some(Duration::from_secs(20)), false);
        assert!(t20 >= Duration::from_secs(20) + call, "{t20:?}");
        let t30 = shutter_timeout(call, Some(Duration::from_secs(30)), true);
        assert!(t30 >= Duration::from_secs(30) * 2 + AF_ALLOWANCE, "{t30:?}");
        // Unknown Tv: assume the longest timed exposure.
        assert_eq!(
            shutter_timeout(call, None, false),
            shutter_timeout(call, Some(MAX_TIMED_EXPOSURE), false)
        );
    }

    #[test]
    fn added_contents_accepts_urls_and_paths() {
        let v = json!({"addedcontents": [
            "http://192.168.1.2:8080/ccapi/ver100/contents/sd/100CANON/IMG_0041.CR3",
            "/ccapi/ver130/contents/card1/100CANON/IMG_0042.JPG",
            "/ccapi/../etc/passwd",
            7
        ]});
        assert_eq!(
            added_contents(&v),
            [
                "/ccapi/ver100/contents/sd/100CANON/IMG_0041.CR3",
                "/ccapi/ver130/contents/card1/100CANON/IMG_0042.JPG"
            ]
        );
        assert!(added_contents(&json!({})).is_empty());
    }

    #[test]
    fn storage_summary_reads_both_shapes() {
        let v = json!({"storagelist":[{"name":"sd","url":"http://x/ccapi/ver100/contents/sd",
            "maxsize": 4_194_304_000u64, "spacesize": 2_097_152_000u64, "contentsnumber": 42}]});
        let s = storage_summary(&v);
        let s = s.unwrap();
        assert_eq!(s.total_mb, 4000);
        assert_eq!(s.free_mb, 2000);
        assert_eq!(s.percent_used, 50.0);
        assert_eq!(storage_summary(&json!({"storagelist": []})), None);
    }

    #[test]
    fn canon_datetime_uses_standard_offset_and_dst_flag() {
        // The real RP example: PDT (UTC−7) shown as 17:46:19 −0800 with dst:true.
        let t = parse_canon_datetime("Sat, 29 Aug 2020 17:46:19 -0800", true).unwrap();
        let utc = crate::util::unix_millis(t) / 1000;
        // 2020-08-30T00:46:19Z
        assert_eq!(utc, 1_598_748_379);
        assert_eq!(
            format_canon_datetime(t, -8 * 3600, true),
            "Sat, 29 Aug 2020 17:46:19 -0800"
        );
        // Southern hemisphere: Sydney in January is AEDT, standard +1000.
        let jan = crate::util::from_unix_millis(1_704_067_200_000); // 2024-01-01T00:00Z
        let s = format_canon_datetime(jan, 10 * 3600, true);
        assert_eq!(s, "Mon, 01 Jan 2024 11:00:00 +1000");
        assert_eq!(parse_canon_datetime(&s, true), Some(jan));
        assert_eq!(parse_canon_datetime("Tue, 01 Jan 2019 01:23", false), None);
        assert_eq!(parse_canon_datetime("garbage", false), None);
    }

    #[test]
    fn canon_datetime_rejects_multibyte_and_out_of_range_fields_without_panicking() {
        // Regression (issue 9, item 7): the offset's length was checked in bytes and then
        // sliced by byte index, so a multibyte character there panicked the camera thread
        // (and panic = "abort" took the service down); h/m/s could overflow silently.
        for raw in [
            "Tue, 01 Jan 2019 01:23:45 +é00",
            "Tue, 01 Jan 2019 01:23:45 é000",
            "Tue, 01 Jan 2019 01:23:45 +0é0",
            "Tue, 01 Jan 2019 01:23:45 ++100",
            "Tue, 01 Jan 2019 01:23:45 +1500",
            "Tue, 01 Jan 2019 01:23:45 +0060",
            "Tue, 01 Jan 2019 99999999999999999:00:00 +0000",
            "Tue, 01 Jan 2019 3074457345618258602:00:00 +0000",
            "Tue, 01 Jan 2019 24:00:00 +0000",
            "Tue, 01 Jan 2019 01:60:00 +0000",
            "Tue, 01 Jan 2019 01:00:61 +0000",
            "Tue, 01 Jan 2019 -1:00:00 +0000",
            "Tue, 01 Jan 2019 +1:00:00 +0000",
            "Tue, 01 Jan 2019 01:00:00:00 +0000",
            "Tue, 00 Jan 2019 01:00:00 +0000",
            "Tue, 01 Jan 99999999999999 01:00:00 +0000",
            "Tue, 01 Jan -201 01:00:00 +0000",
            "Tue, ０1 Jan 2019 01:00:00 +0000",
        ] {
            assert_eq!(parse_canon_datetime(raw, false), None, "{raw}");
        }
        // The edges that are valid still parse.
        assert!(parse_canon_datetime("Tue, 31 Dec 2019 23:59:60 -1400", true).is_some());
        assert!(parse_canon_datetime("Tue, 1 Jan 2019 0:0:0 +1400", false).is_some());
    }

    #[test]
    fn path_of_strips_scheme_and_host() {
        assert_eq!(path_of("http://a:8080/ccapi/x"), "/ccapi/x");
        assert_eq!(path_of("/ccapi/x"), "/ccapi/x");
        assert_eq!(
            origin_of("https://127.0.0.1:443/ccapi").unwrap(),
            "https://127.0.0.1:443"
        );
        assert!(origin_of("ftp://x/ccapi").is_err());
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;
    use crate::camera::fake::{r50_routes, serve};
    use crate::camera::tls::Fingerprint;

    fn clk() -> crate::clock::SharedClock {
        Arc::new(crate::clock::SystemClock)
    }

    fn t() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            call: Duration::from_secs(2),
            long_poll: Duration::from_secs(2),
            download: Duration::from_secs(2),
        }
    }

    #[test]
    fn pins_on_first_use_refuses_a_new_certificate_until_accepted() {
        let trust = Trust::ephemeral(false);
        let cam = serve(r50_routes("0001"));
        let url = format!("https://{}/ccapi", cam.addr);
        let s = Session::connect(&url, None, trust.clone(), t(), clk()).unwrap();
        assert_eq!(s.id, "0001");
        assert_eq!(s.model(), "Canon EOS R50");
        assert_eq!(trust.pinned("0001"), Some(Fingerprint::of(&cam.cert_der)));
        // ver100 battery, not the ver110 batterylist.
        assert_eq!(s.battery().unwrap()["level"], "half");
        // 503 Device busy → CAMERA_BUSY.
        let url_sh = s.shutter_url().unwrap();
        let e = s
            .press(&url_sh, false, Duration::from_secs(2))
            .unwrap_err()
            .error;
        assert_eq!(e.code, ErrorCode::CameraBusy);

        // The "same camera" (same serial) with another certificate.
        let swapped = serve(r50_routes("0001"));
        let url2 = format!("https://{}/ccapi", swapped.addr);
        // Strict (id known): refused in the handshake.
        let e = Session::connect(&url2, Some("0001"), trust.clone(), t(), clk())
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::CertificateChanged, "{e}");
        // Learn mode (manual address): refused once the camera says who it is.
        let e = Session::connect(&url2, None, trust.clone(), t(), clk())
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::CertificateChanged, "{e}");
        assert!(e.message.contains("accept the new certificate"));
        trust.accept(Some("0001")).unwrap();
        Session::connect(&url2, Some("0001"), trust.clone(), t(), clk()).unwrap();
        assert_eq!(
            trust.pinned("0001"),
            Some(Fingerprint::of(&swapped.cert_der))
        );
        // Insecure mode connects to anything.
        let other = serve(r50_routes("0001"));
        let url3 = format!("https://{}/ccapi", other.addr);
        Session::connect(&url3, Some("0001"), Trust::ephemeral(true), t(), clk()).unwrap();
    }

    #[test]
    fn no_list_of_apis_falls_back_to_topurlfordev() {
        let mut routes = r50_routes("0002");
        let list = routes.remove("GET /ccapi").unwrap();
        routes.insert("GET /ccapi".into(), (200, r#""No list of APIs""#.into()));
        routes.insert("GET /ccapi/ver100/topurlfordev".into(), list);
        let cam = serve(routes);
        let s = Session::connect(
            &format!("https://{}/ccapi", cam.addr),
            None,
            Trust::ephemeral(false),
            t(),
            clk(),
        )
        .unwrap();
        assert_eq!(s.id, "0002");
    }

    #[test]
    fn nothing_listening_is_camera_offline() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = Session::connect(
            &format!("https://{addr}/ccapi"),
            None,
            Trust::ephemeral(false),
            t(),
            clk(),
        )
        .err()
        .unwrap();
        assert_eq!(e.code, ErrorCode::CameraOffline, "{e}");
    }
}
