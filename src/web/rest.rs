//! REST: each route of PROTOCOL.md becomes a [`Command`] (through `Command::parse`, so the
//! payload rules and error messages are the WebSocket's) and runs through `Web::execute`.
//! Success is `200` with the reply's `data` (or its raw `body`); failure is
//! `ErrorCode::http_status()` with `{"error":{message,code},"timestamp"}`.

use serde_json::{Map, Value};

use super::http::{method_not_allowed, percent_decode, Payload, Request, Response};
use super::Web;
use crate::app::Origin;
use crate::protocol::routes::ROUTES;
use crate::protocol::{ApiError, Body, Command, ErrorCode};

/// Why a request did not become a command.
#[derive(Debug)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed(String),
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

/// A query value typed: `true`/`false`, integers and decimals, else the string.
fn query_value(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match v.parse::<i64>() {
            Ok(n) => Value::from(n),
            // Decimal degrees (`lat=47.37`); "inf"/"NaN" stay strings.
            Err(_) => v
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::from(v), Value::Number),
        },
    }
}

/// Maps method + path (below `/api/`) + body to a command, by the route table
/// ([`crate::protocol::routes::ROUTES`]).
pub fn route(req: &Request) -> Result<Command, RouteError> {
    let path = req
        .path
        .strip_prefix("/api/")
        .ok_or(RouteError::NotFound)?
        .trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let method = match req.method.as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let mut allowed: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        let Some(params) = r.bind(&segs) else {
            continue;
        };
        if r.method != method {
            if !allowed.contains(&r.method) {
                allowed.push(r.method);
            }
            continue;
        }
        let mut data = if r.body {
            body_object(req)?
        } else {
            Map::new()
        };
        for q in r.query {
            if let Some(v) = req.query_param(q) {
                data.insert((*q).to_string(), query_value(&v));
            }
        }
        for (name, value) in params {
            data.insert(name.to_string(), Value::from(segment(value)?));
        }
        return Ok(Command::parse(r.command, Value::Object(data))?);
    }
    if allowed.is_empty() {
        return Err(RouteError::NotFound);
    }
    if allowed.contains(&"GET") {
        allowed.insert(
            allowed.iter().position(|m| *m == "GET").unwrap_or(0) + 1,
            "HEAD",
        );
    }
    Err(RouteError::MethodNotAllowed(allowed.join(", ")))
}

pub async fn handle(web: &Web, req: &Request) -> Response {
    let cmd = match route(req) {
        Ok(c) => c,
        Err(RouteError::NotFound) => return Response::not_found(web),
        Err(RouteError::MethodNotAllowed(allow)) => return method_not_allowed(web, &allow),
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
            Some(Body::JsonFile { key, file, len }) => Response {
                status: 200,
                content_type: "application/json",
                headers: vec![("Cache-Control", "no-store".into())],
                body: Payload::Wrapped {
                    prefix: format!("{{\"{key}\":").into_bytes(),
                    file,
                    len,
                    suffix: b"}".to_vec(),
                },
                close: false,
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
