//! REST: each route of PROTOCOL.md becomes a [`Command`] (through `Command::parse`, so the
//! payload rules and error messages are the WebSocket's) and runs through `Web::execute`.
//! Success is `200` with the reply's `data` (or its raw `body`); failure is
//! `ErrorCode::http_status()` with `{"error":{message,code},"timestamp"}`.

use serde_json::{Map, Value};

use super::http::{method_not_allowed, percent_decode, Payload, Request, Response};
use super::Web;
use crate::app::Origin;
use crate::protocol::{ApiError, Body, Command, ErrorCode};

/// Why a request did not become a command.
#[derive(Debug)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
    Bad(ApiError),
}

impl From<ApiError> for RouteError {
    fn from(e: ApiError) -> Self {
        RouteError::Bad(e)
    }
}

/// The JSON body as an object (empty body → `{}`).
fn body_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            ErrorCode::InvalidMessage,
            "The request body must be a JSON object",
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::InvalidMessage,
            "The request body is not valid JSON",
        )),
    }
}

fn segment(s: &str) -> Result<String, ApiError> {
    percent_decode(s.as_bytes())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
        .ok_or_else(|| ApiError::invalid("Malformed path parameter"))
}

/// Maps method + path (below `/api/`) + body to a command.
pub fn route(req: &Request) -> Result<Command, RouteError> {
    let path = req
        .path
        .strip_prefix("/api/")
        .ok_or(RouteError::NotFound)?
        .trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let m = req.method.as_str();
    let m = if m == "HEAD" { "GET" } else { m };
    let body = || body_object(req);
    let parse = |name: &str, data: Map<String, Value>| -> Result<Command, RouteError> {
        Ok(Command::parse(name, Value::Object(data))?)
    };
    let with = |name: &str, key: &str, value: &str| -> Result<Command, RouteError> {
        let mut data = body()?;
        data.insert(key.into(), Value::from(segment(value)?));
        parse(name, data)
    };
    let empty = Map::new;

    use RouteError::MethodNotAllowed as Nope;
    match (segs.as_slice(), m) {
        (["status"], "GET") => parse("get_status", empty()),
        (["camera", "status"], "GET") => parse("get_camera_status", empty()),
        (["camera", "settings"], "GET") => parse("get_camera_settings", empty()),
        (["camera", "settings", name], "PUT" | "POST") => {
            with("set_camera_setting", "setting", name)
        }
        (["camera", "battery"], "GET") => parse("get_camera_battery", empty()),
        (["camera", "storage"], "GET") => parse("get_camera_storage", empty()),
        (["camera", "datetime"], "GET") => parse("get_camera_datetime", empty()),
        (["camera", "photo"], "POST") => parse("take_photo", body()?),
        (["camera", "photos", "test"], "POST") => parse("take_test_photo", empty()),
        (["camera", "photos", "test"], "GET") => parse("list_test_photos", empty()),
        (["camera", "photos", "test", id, "file"], "GET") => with("get_test_photo_file", "id", id),
        (["camera", "photos", "test", id], "DELETE") => with("delete_test_photo", "id", id),
        (["camera", "certificate", "accept"], "POST") => {
            parse("accept_camera_certificate", body()?)
        }
        (["intervalometer", "start"], "POST") => parse("start_intervalometer", body()?),
        (["intervalometer", "stop"], "POST") => parse("stop_intervalometer", empty()),
        (["intervalometer", "status"], "GET") => parse("get_intervalometer_status", empty()),
        (["intervalometer", "validate"], "POST") => parse("validate_interval", body()?),
        (["timelapse", "reports"], "GET") => parse("get_timelapse_reports", empty()),
        (["timelapse", "reports", id], "GET") => with("get_timelapse_report", "id", id),
        (["timelapse", "reports", id], "DELETE") => with("delete_timelapse_report", "id", id),
        (["timelapse", "reports", id, "title"], "PUT" | "POST") => {
            with("update_report_title", "id", id)
        }
        (["timelapse", "reports", id, "csv"], "GET") => with("get_report_csv", "id", id),
        (["timelapse", "reports", id, "chart.svg"], "GET") => with("get_report_chart", "id", id),
        (["timelapse", "sessions", id, "save"], "POST") => {
            with("save_session_as_report", "sessionId", id)
        }
        (["timelapse", "sessions", id, "discard"], "POST") => {
            with("discard_session", "sessionId", id)
        }
        (["timelapse", "sessions", id, "resume"], "POST") => {
            with("resume_session", "sessionId", id)
        }
        (["timelapse", "unsaved-session"], "GET") => parse("get_unsaved_session", empty()),
        (["discovery", "status"] | ["discovery", "cameras"], "GET") => {
            parse("get_discovery_status", empty())
        }
        (["discovery", "scan"], "POST") => parse("discovery_scan", empty()),
        (["discovery", "connect"], "POST") => parse("connect_to_ip", body()?),
        (["discovery", "primary", uuid], "POST") => with("set_primary_camera", "uuid", uuid),
        (["network", "status"], "GET") => parse("get_network_status", empty()),
        (["network", "wifi", "scan"], "GET") => {
            let mut data = empty();
            if let Some(r) = req.query_param("refresh") {
                data.insert("refresh".into(), Value::from(r == "true" || r == "1"));
            }
            parse("network_scan", data)
        }
        (["network", "wifi", "connect"], "POST") => parse("network_connect", body()?),
        (["network", "wifi", "disconnect"], "POST") => parse("network_disconnect", body()?),
        (["network", "wifi", "country"], "GET") => parse("get_wifi_country", empty()),
        (["network", "wifi", "country"], "POST" | "PUT") => parse("set_wifi_country", body()?),
        (["network", "wifi", "enable"], "POST") => parse("wifi_enable", empty()),
        (["network", "wifi", "disable"], "POST") => parse("wifi_disable", body()?),
        (["system", "status"], "GET") => parse("get_system_status", empty()),
        (["system", "power"], "GET") => parse("get_power_status", empty()),
        (["system", "time"], "GET") => parse("get_system_time", empty()),
        (["system", "time"], "POST") => parse("manual-time-sync", body()?),
        (["timesync", "status"], "GET") => parse("get-time-sync-status", empty()),
        (["timesync", "camera"], "POST") => parse("manual_camera_sync", empty()),
        (["ws", "connections"], "GET") => parse("get_ws_connections", empty()),

        // Known paths, wrong method.
        (["status"], _)
        | (["camera", "status" | "settings" | "battery" | "storage" | "datetime"], _)
        | (["intervalometer", "status"], _)
        | (["timelapse", "reports" | "unsaved-session"], _)
        | (["timelapse", "reports", _, "csv" | "chart.svg"], _)
        | (["camera", "photos", "test", _, "file"], _)
        | (["discovery", "status" | "cameras"], _)
        | (["network", "status"], _)
        | (["network", "wifi", "scan"], _)
        | (["system", "status" | "power"], _)
        | (["timesync", "status"], _)
        | (["ws", "connections"], _) => Err(Nope("GET, HEAD")),
        (["camera", "photos", "test"], _) | (["system", "time"], _) => Err(Nope("GET, POST")),
        (["network", "wifi", "country"], _) => Err(Nope("GET, POST, PUT")),
        (["timelapse", "reports", _], _) | (["camera", "photos", "test", _], _) => {
            Err(Nope("GET, DELETE"))
        }
        (["camera", "settings", _], _) | (["timelapse", "reports", _, "title"], _) => {
            Err(Nope("PUT, POST"))
        }
        (["camera", "photo" | "certificate", ..], _)
        | (["intervalometer", "start" | "stop" | "validate"], _)
        | (["timelapse", "sessions", _, "save" | "discard" | "resume"], _)
        | (["discovery", "scan" | "connect" | "primary", ..], _)
        | (["network", "wifi", "connect" | "disconnect" | "enable" | "disable"], _)
        | (["timesync", "camera"], _) => Err(Nope("POST")),
        _ => Err(RouteError::NotFound),
    }
}

pub async fn handle(web: &Web, req: &Request) -> Response {
    let cmd = match route(req) {
        Ok(c) => c,
        Err(RouteError::NotFound) => return Response::not_found(web),
        Err(RouteError::MethodNotAllowed(allow)) => return method_not_allowed(web, allow),
        Err(RouteError::Bad(e)) => return Response::api_error(web, &e),
    };
    match web.execute(Origin::Rest, &cmd).await {
        Ok(reply) => match reply.body {
            Some(Body::Bytes {
                content_type,
                bytes,
            }) => Response {
                status: 200,
                content_type,
                headers: vec![("Cache-Control", "no-store".into())],
                body: Payload::Bytes(bytes),
                close: false,
            },
            Some(Body::File { content_type, path }) => match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => Response {
                    status: 200,
                    content_type,
                    headers: vec![("Cache-Control", "no-store".into())],
                    body: Payload::File(path, meta.len()),
                    close: false,
                },
                _ => Response::api_error(web, &ApiError::not_found("The file is gone")),
            },
            None => Response::json(200, &reply.data).header("Cache-Control", "no-store"),
        },
        Err(e) => Response::api_error(web, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{IdRef, ReportRef, SetCameraSetting};

    fn req(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: None,
            minor: 1,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn routes_map_to_commands_with_path_parameters() {
        let c = route(&req(
            "PUT",
            "/api/camera/settings/iso",
            r#"{"value":"800"}"#,
        ))
        .unwrap();
        assert_eq!(
            c,
            Command::SetCameraSetting(SetCameraSetting {
                setting: "iso".into(),
                value: Value::from("800")
            })
        );
        let c = route(&req("GET", "/api/timelapse/reports/r%201/csv", "")).unwrap();
        assert_eq!(c, Command::GetReportCsv(ReportRef { id: "r 1".into() }));
        let c = route(&req("GET", "/api/camera/photos/test/7/file", "")).unwrap();
        assert_eq!(c, Command::GetTestPhotoFile(IdRef { id: "7".into() }));
        assert!(matches!(
            route(&req("POST", "/api/camera/certificate/accept", "")).unwrap(),
            Command::AcceptCameraCertificate(_)
        ));
        assert_eq!(
            route(&req("GET", "/api/timelapse/reports/x/chart.svg", "")).unwrap(),
            Command::GetReportChart(ReportRef { id: "x".into() })
        );
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            route(&req("GET", "/api/nope", "")),
            Err(RouteError::NotFound)
        ));
        assert!(matches!(
            route(&req("POST", "/api/camera/status", "")),
            Err(RouteError::MethodNotAllowed(_))
        ));
        let Err(RouteError::Bad(e)) = route(&req("POST", "/api/camera/photo", "{nope")) else {
            panic!()
        };
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        let Err(RouteError::Bad(e)) = route(&req("POST", "/api/discovery/connect", "{}")) else {
            panic!()
        };
        assert_eq!(e.code, ErrorCode::MissingParameter);
    }
}
