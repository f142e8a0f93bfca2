//! CCAPI routes (CCAPI.md §1): the catalog decides what exists at which version, then each
//! resource reads or changes `CameraState`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::http::{Request, Response};
use super::pictures::{self, FileKind, FileSource};
use super::state::{self, CameraState, RootListing};
use super::{events, liveview, shooting, Listener, Shared};

/// Files per contents page.
const PAGE_SIZE: usize = 100;

pub(crate) async fn route(shared: &Arc<Shared>, req: &Request, kind: Listener) -> Response {
    let scheme = if kind == Listener::Https {
        "https"
    } else {
        "http"
    };
    let origin = format!("{scheme}://{}", req.local);
    let path = req.path.trim_end_matches('/');
    let method = req.method.to_ascii_uppercase();
    if path == "/ccapi" {
        if method != "GET" && method != "HEAD" {
            return Response::error(405, "Method not allowed");
        }
        let g = shared.lock();
        return match g.cam.root_listing {
            RootListing::NoList => Response::ok(json!({"message": "No list of APIs"})),
            style => Response::ok(listing(&g.cam, style, &origin)),
        };
    }
    let Some(rest) = path.strip_prefix("/ccapi/") else {
        return Response::error(404, "URL not found");
    };
    let Some((version, resource)) = rest.split_once('/') else {
        return Response::error(404, "URL not found");
    };
    let base = if shared.profile.absolute_urls() {
        let mut g = shared.lock();
        if g.last_origin != origin {
            g.last_origin = origin.clone();
        }
        origin.clone()
    } else {
        String::new()
    };

    // Catalog lookup: exact resource, or anything under the contents tree.
    let entry = {
        let g = shared.lock();
        let cat = state::catalog(g.cam.profile, &g.cam.settings);
        cat.into_iter().find(|e| {
            e.version == version
                && (e.path == resource
                    || (e.path == "contents" && resource.starts_with("contents/")))
        })
    };
    let Some(entry) = entry else {
        return Response::error(404, "URL not found");
    };
    let allowed = match method.as_str() {
        "GET" | "HEAD" => entry.get,
        "POST" => entry.post,
        "PUT" => entry.put,
        "DELETE" => entry.delete,
        _ => false,
    };
    if !allowed {
        return Response::error(405, "Method not allowed");
    }
    let body = if method == "POST" || method == "PUT" {
        match parse_body(&req.body) {
            Some(v) => v,
            None => return Response::error(400, "Invalid parameter"),
        }
    } else {
        Value::Null
    };

    if method == "POST" || method == "PUT" {
        let mut g = shared.lock();
        if g.taken_in_preparation > 0 {
            g.taken_in_preparation -= 1;
            return Response::error(503, "Taken in preparation");
        }
    }
    if entry.path == "contents" {
        if let Some(fetch) = file_fetch(shared, req, &method, resource) {
            return file_get(&shared.pictures, req, fetch).await;
        }
        return contents(shared, req, &method, resource, &base);
    }
    if let Some(name) = resource.strip_prefix("shooting/settings/") {
        return if method == "PUT" {
            put_setting(shared, name, &body)
        } else {
            match shared.lock().cam.setting_json(name) {
                Some(v) => Response::ok(v),
                None => Response::error(404, "URL not found"),
            }
        };
    }
    let now = shared.now();
    match (method.as_str(), resource) {
        (_, "event/polling") if method == "DELETE" => events::delete(shared),
        (_, "event/polling") => events::poll(shared, req, version, &base).await,
        (_, "shooting/control/shutterbutton") => shooting::shutterbutton(shared, &body).await,
        (_, "shooting/control/shutterbutton/manual") => shooting::manual(shared, &body).await,
        (_, "shooting/control/drivefocus") => liveview::drivefocus(shared, &body),
        (_, "shooting/liveview") => liveview::post(shared, &body),
        (_, "shooting/liveview/flip") => liveview::flip(shared).await,
        (_, "shooting/liveview/flipdetail") => liveview::flipdetail(shared, req).await,
        ("DELETE", "shooting/liveview/scroll" | "shooting/liveview/scrolldetail") => {
            liveview::delete_scroll(shared)
        }
        (_, "shooting/liveview/scroll") => liveview::scroll(shared, false),
        (_, "shooting/liveview/scrolldetail") => liveview::scroll(shared, true),
        (_, "shooting/liveview/afframeposition") => liveview::afframeposition(shared, &body),
        (_, "topurlfordev") => {
            let g = shared.lock();
            Response::ok(listing(&g.cam, RootListing::Path, &origin))
        }
        (_, "deviceinformation") => Response::ok(shared.lock().cam.deviceinformation_json()),
        (_, "devicestatus/battery") => Response::ok(shared.lock().cam.battery_json()),
        (_, "devicestatus/batterylist") => Response::ok(shared.lock().cam.batterylist_json()),
        (_, "devicestatus/lens") => {
            let g = shared.lock();
            Response::ok(json!({"mount": g.cam.lens.mount, "name": g.cam.lens.name}))
        }
        (_, "devicestatus/temperature") => {
            Response::ok(json!({"status": shared.lock().cam.temperature}))
        }
        (_, "devicestatus/storage") => Response::ok(shared.lock().cam.storage_json(&base)),
        (_, "devicestatus/currentstorage") => {
            let g = shared.lock();
            if !g.cam.card.present {
                return Response::error(503, "Card not available");
            }
            Response::ok(link_obj(
                &g.cam,
                g.cam.profile.card_name(),
                g.cam.contents_root(&base),
            ))
        }
        (_, "devicestatus/currentdirectory") => {
            let g = shared.lock();
            if !g.cam.card.present {
                return Response::error(503, "Card not available");
            }
            let folder = g.cam.card.folder();
            let p = format!("{}/{}", g.cam.contents_root(&base), folder);
            Response::ok(link_obj(&g.cam, &folder, p))
        }
        (_, "shooting/information/recordable") => Response::ok(shared.lock().cam.recordable_json()),
        (_, "shooting/settings") => Response::ok(shared.lock().cam.settings_json(version)),
        ("GET" | "HEAD", "functions/datetime") => {
            Response::ok(shared.lock().cam.datetime_json(now))
        }
        ("PUT", "functions/datetime") => put_datetime(shared, &body),
        ("GET" | "HEAD", "functions/autopoweroff") => {
            let g = shared.lock();
            Response::ok(json!({
                "value": g.cam.autopoweroff,
                "ability": ["30","60","180","300","600","disable"],
            }))
        }
        ("PUT", "functions/autopoweroff") => {
            let Some(v) = body.get("value").and_then(Value::as_str) else {
                return Response::error(400, "Invalid parameter");
            };
            if !["30", "60", "180", "300", "600", "disable"].contains(&v) {
                return Response::error(400, "Invalid parameter");
            }
            let mut g = shared.lock();
            g.cam.autopoweroff = v.to_string();
            let ev = json!({"value": v, "ability": ["30","60","180","300","600","disable"]});
            g.events.emit("autopoweroff", ev);
            drop(g);
            shared.touch();
            Response::ok(json!({ "value": v }))
        }
        (_, "functions/ssl/cacert") => {
            let der = shared
                .tls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ca_der
                .clone();
            Response::bytes(200, "application/x-x509-ca-cert", der)
        }
        (_, "functions/wificonnection") | (_, "functions/networkconnection") => {
            if body.get("action").and_then(Value::as_str) != Some("disconnect") {
                return Response::error(400, "Invalid parameter");
            }
            shared.lock().events.reset_session();
            shared.touch();
            Response::json(202, &json!({}))
        }
        ("GET" | "HEAD", "shooting/control/ignoreshootingmodedialmode") => {
            let on = shared.lock().cam.ignore_dial;
            Response::ok(json!({"status": if on { "on" } else { "off" }}))
        }
        ("POST", "shooting/control/ignoreshootingmodedialmode") => {
            let on = match body.get("action").and_then(Value::as_str) {
                Some("on") => true,
                Some("off") => false,
                _ => return Response::error(400, "Invalid parameter"),
            };
            shared.lock().cam.ignore_dial = on;
            Response::ok(json!({}))
        }
        _ => Response::error(404, "URL not found"),
    }
}

fn parse_body(body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(json!({}));
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// `{"ver100":[entry…], "ver110":[…], "ver120":[], "ver130":[…]}` in `path` or `url` style.
fn listing(cam: &CameraState, style: RootListing, origin: &str) -> Value {
    let mut out = Map::new();
    for v in ["ver100", "ver110", "ver120", "ver130"] {
        out.insert(v.to_string(), json!([]));
    }
    for e in state::catalog(cam.profile, &cam.settings) {
        let p = format!("/ccapi/{}/{}", e.version, e.path);
        let item = match style {
            RootListing::Url => json!({
                "url": format!("{origin}{p}"),
                "get": e.get, "post": e.post, "put": e.put, "delete": e.delete,
            }),
            _ => json!({"path": p, "get": e.get, "post": e.post, "put": e.put, "delete": e.delete}),
        };
        if let Some(Value::Array(a)) = out.get_mut(e.version) {
            a.push(item);
        }
    }
    Value::Object(out)
}

/// `{"name":…, "path"|"url": …}`.
fn link_obj(cam: &CameraState, name: &str, link: String) -> Value {
    let key = if cam.profile.absolute_urls() {
        "url"
    } else {
        "path"
    };
    let mut o = Map::new();
    o.insert("name".into(), json!(name));
    o.insert(key.into(), json!(link));
    Value::Object(o)
}

fn put_setting(shared: &Shared, name: &str, body: &Value) -> Response {
    let Some(value) = body.get("value") else {
        return Response::error(400, "Invalid parameter");
    };
    let now = shared.now();
    let mut g = shared.lock();
    if g.cam.busy(now) {
        return Response::error(503, "During shooting or recording");
    }
    let mode = g.cam.mode();
    let iso = g.cam.setting_str("iso");
    let Some(s) = g.cam.settings.get_mut(name) else {
        return Response::error(404, "URL not found");
    };
    // Unavailable in this mode: the ability reads empty, so no value is acceptable.
    if !s.available(&mode, &iso) || !s.ability.accepts(value) {
        return Response::error(400, "Invalid parameter");
    }
    s.value = value.clone();
    let echoed = s.value.clone();
    // Availability of others can follow the dial and ISO: re-emit everything visible.
    if name == "shootingmodedial" || name == "iso" {
        let names: Vec<String> = g.cam.settings.keys().cloned().collect();
        for n in names {
            events::emit_setting(&mut g, &n);
        }
    } else {
        events::emit_setting(&mut g, name);
    }
    if name == "stillimagequality" {
        let r = g.cam.recordable_json();
        g.events.emit("recordable", r);
    }
    drop(g);
    shared.touch();
    Response::ok(json!({ "value": echoed }))
}

fn put_datetime(shared: &Shared, body: &Value) -> Response {
    let (Some(s), Some(dst)) = (
        body.get("datetime").and_then(Value::as_str),
        body.get("dst").and_then(Value::as_bool),
    ) else {
        return Response::error(400, "Invalid parameter");
    };
    let Some((local_ms, offset_min)) = state::parse_ccapi_datetime(s) else {
        return Response::error(400, "Invalid parameter");
    };
    // The string is local wall time with DST applied; the offset is the standard one.
    let utc = local_ms - i64::from(offset_min + if dst { 60 } else { 0 }) * 60_000;
    let now = shared.now();
    let mut g = shared.lock();
    g.cam.clock.set_utc(now, utc);
    g.cam.clock.std_offset_min = offset_min;
    g.cam.clock.dst = dst;
    let v = g.cam.datetime_json(now);
    g.events.emit("datetime", v);
    drop(g);
    shared.touch();
    Response::ok(json!({}))
}

// ---- contents -------------------------------------------------------------------------------

/// A file download to serve once the state lock is released.
struct FileFetch {
    file: state::SimFile,
    source: FileSource,
}

/// A GET of a file's bytes (any `kind` but `info`), read under the lock; `None` for
/// everything else (listings, deletions, info, errors: `contents` answers those).
fn file_fetch(shared: &Shared, req: &Request, method: &str, resource: &str) -> Option<FileFetch> {
    if !(method == "GET" || method == "HEAD") || req.query_param("kind") == Some("info") {
        return None;
    }
    let segs: Vec<&str> = resource
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect();
    let [card, dir, file] = segs.as_slice() else {
        return None;
    };
    let g = shared.lock();
    if *card != g.cam.profile.card_name() || !g.cam.card.present {
        return None;
    }
    let f = g
        .cam
        .card
        .files
        .iter()
        .find(|f| f.folder == *dir && f.name == *file)?
        .clone();
    let exif = pictures::exif_for(
        g.cam.profile.product().0,
        exif_datetime(f.shot.local_ms),
        &f.shot,
    );
    let source = FileSource::new(&g.world, &f.shot, f.seq, exif);
    Some(FileFetch { file: f, source })
}

fn contents(shared: &Shared, req: &Request, method: &str, resource: &str, base: &str) -> Response {
    let segs: Vec<&str> = resource
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect();
    let mut g = shared.lock();
    let link_key = if g.cam.profile.absolute_urls() {
        "url"
    } else {
        "path"
    };
    if method == "PUT" {
        return Response::error(400, "Invalid parameter");
    }
    match segs.as_slice() {
        [] => {
            if method == "DELETE" {
                return Response::error(400, "Invalid parameter");
            }
            let list: Vec<String> = if g.cam.card.present {
                vec![g.cam.contents_root(base)]
            } else {
                vec![]
            };
            Response::ok(json!({ link_key: list }))
        }
        [card] => {
            if *card != g.cam.profile.card_name() || !g.cam.card.present {
                return Response::error(404, "URL not found");
            }
            if method == "DELETE" {
                return Response::error(400, "Invalid parameter");
            }
            let mut dirs: Vec<String> = g.cam.card.files.iter().map(|f| f.folder.clone()).collect();
            dirs.push(g.cam.card.folder());
            dirs.sort();
            dirs.dedup();
            let root = g.cam.contents_root(base);
            let list: Vec<String> = dirs.iter().map(|d| format!("{root}/{d}")).collect();
            Response::ok(json!({ link_key: list }))
        }
        [card, dir] => {
            if *card != g.cam.profile.card_name() || !g.cam.card.present {
                return Response::error(404, "URL not found");
            }
            if method == "DELETE" {
                return Response::error(400, "Invalid parameter");
            }
            list_dir(&g.cam, req, dir, base, link_key)
        }
        [card, dir, file] => {
            if *card != g.cam.profile.card_name() || !g.cam.card.present {
                return Response::error(404, "URL not found");
            }
            let Some(idx) = g
                .cam
                .card
                .files
                .iter()
                .position(|f| f.folder == *dir && f.name == *file)
            else {
                return Response::error(404, "URL not found");
            };
            if method == "DELETE" {
                if g.cam.card.protected {
                    return Response::error(503, "Card protected");
                }
                let f = g.cam.card.files.remove(idx);
                g.cam.card.free = (g.cam.card.free + f.size).min(g.cam.card.max_size);
                g.events.emit_deleted(format!("{}/{}", f.folder, f.name));
                events::emit_storage(&mut g, base);
                drop(g);
                shared.touch();
                return Response::ok(json!({}));
            }
            let f = &g.cam.card.files[idx];
            match req.query_param("kind") {
                Some("info") => Response::ok(json!({
                    "filesize": f.size,
                    "protect": "disable",
                    "archive": "disable",
                    "rotate": "0",
                    "rating": "off",
                    "lastmodifieddate": http_date(f.created_ms),
                    "playtime": null,
                })),
                // file_fetch serves the bytes; PUT and the rest are not supported.
                _ => Response::error(400, "Invalid parameter"),
            }
        }
        _ => Response::error(404, "URL not found"),
    }
}

fn list_dir(cam: &CameraState, req: &Request, dir: &str, base: &str, link_key: &str) -> Response {
    let filter = req.query_param("type").unwrap_or("all");
    let ext = match filter {
        "all" => None,
        "jpeg" => Some(".JPG"),
        "cr3" => Some(".CR3"),
        "cr2" => Some(".CR2"),
        "hif" | "heif" => Some(".HIF"),
        "mp4" => Some(".MP4"),
        "mov" => Some(".MOV"),
        "wav" => Some(".WAV"),
        "crm" => Some(".CRM"),
        _ => return Response::error(400, "Invalid parameter"),
    };
    let mut files: Vec<&state::SimFile> = cam
        .card
        .files
        .iter()
        .filter(|f| f.folder == dir && ext.is_none_or(|e| f.name.ends_with(e)))
        .collect();
    if files.is_empty()
        && dir != cam.card.folder()
        && !cam.card.files.iter().any(|f| f.folder == dir)
    {
        return Response::error(404, "URL not found");
    }
    match req.query_param("order") {
        None | Some("asc") => {}
        Some("desc") if cam.profile == state::Profile::R6m3 => {
            return Response::error(400, "Illegal query parameter")
        }
        Some("desc") => files.reverse(),
        Some(_) => return Response::error(400, "Illegal query parameter"),
    }
    match req.query_param("kind").unwrap_or("list") {
        "number" => Response::ok(json!({
            "contentsnumber": files.len(),
            "pagenumber": files.len().div_ceil(PAGE_SIZE),
        })),
        "list" | "chunked" => {
            let page: usize = match req.query_param("page") {
                None => 1,
                Some(p) => match p.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Response::error(400, "Invalid parameter"),
                },
            };
            let list: Vec<String> = files
                .iter()
                .skip((page - 1) * PAGE_SIZE)
                .take(PAGE_SIZE)
                .map(|f| cam.file_path(base, f))
                .collect();
            Response::ok(json!({ link_key: list }))
        }
        _ => Response::error(400, "Invalid parameter"),
    }
}

async fn file_get(pictures: &pictures::Pictures, req: &Request, fetch: FileFetch) -> Response {
    let FileFetch { file: f, source } = fetch;
    let kind = req.query_param("kind").unwrap_or("main");
    let (bytes, ctype): (Vec<u8>, &'static str) = match kind {
        "thumbnail" => (
            pictures::file_jpeg(pictures, source, FileKind::Thumbnail).await,
            "image/jpeg",
        ),
        "display" | "embedded" => (
            pictures::file_jpeg(pictures, source, FileKind::Display).await,
            "image/jpeg",
        ),
        "main" if f.is_raw() => (
            super::jpeg::cr3_bytes(f.size as usize, f.seq),
            "application/octet-stream",
        ),
        "main" => (
            pictures::file_jpeg(
                pictures,
                source,
                FileKind::Main {
                    len: f.size as usize,
                },
            )
            .await,
            "image/jpeg",
        ),
        _ => return Response::error(400, "Invalid parameter"),
    };
    match req.header("range") {
        None => Response::bytes(200, ctype, bytes),
        Some(r) => match parse_range(r, bytes.len()) {
            Some((start, end)) => {
                let total = bytes.len();
                Response::bytes(206, ctype, bytes[start..=end].to_vec())
                    .with_header("Content-Range", format!("bytes {start}-{end}/{total}"))
            }
            None => Response::error(416, "Range not satisfiable")
                .with_header("Content-Range", format!("bytes */{}", bytes.len())),
        },
    }
}

/// `bytes=a-b` | `bytes=a-` | `bytes=-n` → inclusive (start, end).
fn parse_range(h: &str, len: usize) -> Option<(usize, usize)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: usize = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((len.saturating_sub(n), len - 1));
    }
    let start: usize = a.parse().ok()?;
    let end: usize = if b.is_empty() {
        len - 1
    } else {
        b.parse::<usize>().ok()?.min(len - 1)
    };
    (start <= end && start < len).then_some((start, end))
}

fn exif_datetime(local_ms: i64) -> String {
    let secs = local_ms.div_euclid(1000);
    let (y, mo, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}:{mo:02}:{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// `Sat, 29 Aug 2020 17:46:34 GMT` (the camera labels local time GMT, as the RP log shows).
fn http_date(local_ms: i64) -> String {
    let s = state::format_ccapi_datetime(local_ms, 0);
    format!("{} GMT", &s[..s.len() - 6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
