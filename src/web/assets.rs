//! Static files: the UI embedded at build time (build.rs, from `static/`), or a directory
//! given with `--static-dir`.
//!
//! Embedded: a request is answered only if its path is exactly one of the embedded names, so
//! nothing else can ever be served. Directory: the decoded path must consist of plain names
//! (no `.`/`..`, no empty segments, no backslash or NUL) and, after resolving symlinks, lie
//! inside the directory.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::http::{percent_decode, Payload, Request, Response};
use super::Web;
use crate::protocol::ApiError;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. `/index.html`.
    pub path: &'static str,
    pub mime: &'static str,
    /// Quoted content hash (of the file as it is in `static/`).
    pub etag: &'static str,
    /// The file, or its gzip (`gzipped`): text is embedded compressed only.
    pub body: &'static [u8],
    pub gzipped: bool,
    /// Length of the file itself.
    pub size: usize,
}

impl Asset {
    /// The file itself; a gzipped one is inflated (for the rare client without gzip).
    pub fn plain(&self) -> Option<Vec<u8>> {
        if !self.gzipped {
            return Some(self.body.to_vec());
        }
        // build.rs writes a bare 10-byte header and an 8-byte CRC + length trailer.
        let deflate = self.body.get(10..self.body.len().checked_sub(8)?)?;
        miniz_oxide::inflate::decompress_to_vec_with_limit(deflate, self.size)
            .ok()
            .filter(|v| v.len() == self.size)
    }
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The embedded asset for a URL path (`/` is `/index.html`).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// True when `If-None-Match` names `etag` (or `*`). Weak validators compare equal.
pub fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(list) = if_none_match else {
        return false;
    };
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}

fn not_modified(etag: String) -> Response {
    Response {
        status: 304,
        content_type: "text/plain",
        headers: vec![("ETag", etag), ("Vary", "Accept-Encoding".into())],
        body: Payload::Bytes(Vec::new()),
        close: false,
    }
}

pub fn serve_embedded(web: &Web, req: &Request) -> Response {
    let Some(asset) = find(&req.path) else {
        return Response::not_found(web);
    };
    let gzip = asset.gzipped && req.accepts_gzip();
    let etag = if gzip {
        // A different representation needs its own validator.
        format!("{}-gz\"", asset.etag.trim_end_matches('"'))
    } else {
        asset.etag.to_string()
    };
    if etag_matches(req.header("if-none-match"), &etag) {
        return not_modified(etag);
    }
    let body = if gzip || !asset.gzipped {
        Payload::Static(asset.body)
    } else {
        match asset.plain() {
            Some(plain) => Payload::Bytes(plain),
            // Cannot happen with what build.rs embeds; a clear 500 rather than a panic.
            None => {
                return Response::error(web, 500, &ApiError::system("embedded asset is corrupt"))
            }
        }
    };
    let mut resp = Response {
        status: 200,
        content_type: asset.mime,
        headers: vec![
            ("ETag", etag),
            ("Vary", "Accept-Encoding".into()),
            ("Cache-Control", "no-cache".into()),
        ],
        body,
        close: false,
    };
    if gzip {
        resp.headers.push(("Content-Encoding", "gzip".into()));
    }
    resp
}

/// Maps a URL path to a relative file path of plain names, or `None`.
pub fn safe_relative_path(url_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(percent_decode(url_path.as_bytes())?).ok()?;
    let rest = decoded.strip_prefix('/')?;
    let rest = if rest.is_empty() || rest.ends_with('/') {
        format!("{rest}index.html")
    } else {
        rest.to_string()
    };
    if rest.contains('\0') || rest.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for seg in rest.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return None;
        }
        out.push(seg);
    }
    // Belt and braces: only normal components.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(out)
}

pub fn mime_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub fn serve_dir(web: &Web, dir: &Path, req: &Request) -> Response {
    let Some(rel) = safe_relative_path(&req.path) else {
        return Response::not_found(web);
    };
    let (Ok(root), Ok(file)) = (dir.canonicalize(), dir.join(&rel).canonicalize()) else {
        return Response::not_found(web);
    };
    if !file.starts_with(&root) {
        return Response::not_found(web);
    }
    let Ok(meta) = std::fs::metadata(&file) else {
        return Response::not_found(web);
    };
    if !meta.is_file() {
        return Response::not_found(web);
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", meta.len(), mtime);
    if etag_matches(req.header("if-none-match"), &etag) {
        return not_modified(etag);
    }
    Response {
        status: 200,
        content_type: mime_of(&file),
        headers: vec![("ETag", etag), ("Cache-Control", "no-cache".into())],
        body: Payload::File(file, meta.len()),
        close: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_is_embedded_with_gzip() {
        let index = find("/").expect("index.html embedded");
        assert!(index.mime.starts_with("text/html"));
        assert!(index.gzipped);
        assert!(find("/app.js").is_some());
        assert!(find("/../Cargo.toml").is_none());
        assert!(find("index.html").is_none());
    }

    #[test]
    fn every_embedded_file_inflates_to_what_is_in_static() {
        for asset in ASSETS {
            let on_disk = std::fs::read(format!(
                "{}/static{}",
                env!("CARGO_MANIFEST_DIR"),
                asset.path
            ))
            .unwrap();
            assert_eq!(
                asset.plain().as_deref(),
                Some(&on_disk[..]),
                "{}",
                asset.path
            );
            assert_eq!(asset.size, on_disk.len());
        }
        // A damaged stream is refused, not served truncated.
        let app = find("/app.js").unwrap();
        let mut bad = app.body.to_vec();
        bad.truncate(bad.len() / 2);
        let broken = Asset {
            body: Box::leak(bad.into_boxed_slice()),
            ..*app
        };
        assert_eq!(broken.plain(), None);
    }

    #[test]
    fn traversal_never_yields_a_path() {
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/../../b",
            "/a//b",
            "/./a",
            "/a%00.html",
            "/..%5c..%5cwindows",
            "/%zz",
            "relative",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
        assert_eq!(
            safe_relative_path("/css/site%20a.css"),
            Some(PathBuf::from("css/site a.css"))
        );
        assert_eq!(safe_relative_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            safe_relative_path("/docs/"),
            Some(PathBuf::from("docs/index.html"))
        );
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches(Some("\"a\", \"b\""), "\"b\""));
        assert!(etag_matches(Some("W/\"b\""), "\"b\""));
        assert!(etag_matches(Some("*"), "\"b\""));
        assert!(!etag_matches(Some("\"a\""), "\"b\""));
        assert!(!etag_matches(None, "\"b\""));
    }
}
