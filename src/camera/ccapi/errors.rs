//! CCAPI errors: HTTP status and transport failures as PROTOCOL.md codes, the busy and lost-reply cases.

use serde_json::Value;

use super::*;

/// 503 messages that mean "try again shortly".
pub(super) fn is_busy_message(msg: &str) -> bool {
    matches!(
        msg,
        "Device busy" | "During shooting or recording" | "Taken in preparation"
    )
}

/// Maps a non-2xx CCAPI answer to an error (the body is `{"message": "..."}`).
pub fn status_error(status: u16, body: &[u8]) -> ApiError {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let msg: String = msg.chars().take(200).collect();
    let details = ErrorDetails::Camera {
        status,
        camera_message: msg.clone(),
    };
    let err = match status {
        503 if is_busy_message(&msg) => {
            ApiError::new(ErrorCode::CameraBusy, format!("Camera busy: {msg}"))
        }
        503 if msg.is_empty() => {
            ApiError::new(ErrorCode::CameraBusy, "Camera refused the request (503)")
        }
        503 => ApiError::new(ErrorCode::CameraBusy, format!("Camera refused: {msg}")),
        502 => ApiError::new(
            ErrorCode::ConnectionFailed,
            "camera web service wedged (HTTP 502); power-cycle the camera",
        ),
        400 => ApiError::invalid(if msg.is_empty() {
            "Camera rejected the request as invalid".to_string()
        } else {
            format!("Camera rejected the request: {msg}")
        }),
        401 => ApiError::new(
            ErrorCode::PermissionDenied,
            "Camera requires authentication (Digest), which skylapse does not support yet",
        ),
        404 => ApiError::not_found("Camera does not offer this resource"),
        _ => ApiError::new(
            ErrorCode::ConnectionFailed,
            format!("Camera answered HTTP {status}: {msg}"),
        ),
    };
    err.with_details(details)
}

/// Maps a transport failure. `trust` tells a refused certificate apart from other TLS errors.
pub fn transport_error(e: &ureq::Error, trust: Option<&Trust>) -> ApiError {
    use std::io::ErrorKind as K;
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("certificate") {
        if let Some(r) = trust.and_then(|t| t.last_rejection()) {
            return r.to_error();
        }
    }
    match e {
        ureq::Error::Timeout(t) => ApiError::new(
            ErrorCode::CameraTimeout,
            format!("Camera did not answer in time ({t:?})"),
        ),
        ureq::Error::Io(io) => match io.kind() {
            K::TimedOut | K::WouldBlock => {
                ApiError::new(ErrorCode::CameraTimeout, "Camera did not answer in time")
            }
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::AddrNotAvailable
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown => ApiError::new(
                ErrorCode::CameraOffline,
                format!("Camera not reachable: {io}"),
            ),
            _ => ApiError::new(ErrorCode::NetworkError, format!("Camera link error: {io}")),
        },
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            ApiError::new(ErrorCode::CameraOffline, "Camera not reachable")
        }
        ureq::Error::Tls(m) => ApiError::new(
            ErrorCode::ConnectionFailed,
            format!("TLS with the camera: {m}"),
        ),
        _ => ApiError::new(
            ErrorCode::NetworkError,
            format!("Camera link error: {text}"),
        ),
    }
}

/// A failed press, and whether the camera may have taken the picture anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct PressError {
    pub error: ApiError,
    /// The request may have reached the camera and only the answer is missing.
    pub maybe_taken: bool,
}

/// Whether a transport failure may have happened after the request reached the camera: a
/// timeout, or a connection cut while waiting for the answer. A refused or unreachable
/// connection never carried the request.
pub fn reply_lost(e: &ureq::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            K::TimedOut
                | K::WouldBlock
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
        ),
        _ => false,
    }
}

/// Whether an error means the camera is gone (the link machine should notice).
pub fn is_link_failure(e: &ApiError) -> bool {
    matches!(e.code, ErrorCode::CameraOffline | ErrorCode::CameraTimeout)
}
