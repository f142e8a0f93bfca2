//! The endpoint catalog read from `GET /ccapi` (never hard-coded versions).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `ver100`, `ver110`, …
    pub version: String,
    /// Absolute path, `/ccapi/ver110/event/polling`.
    pub path: String,
    pub get: bool,
    pub post: bool,
    pub put: bool,
    pub delete: bool,
}

/// The API list of `GET /ccapi` (or `topurlfordev`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoints {
    pub list: Vec<Endpoint>,
}

/// The path part of an absolute URL (`http://192.168.1.2:8080/ccapi/x` → `/ccapi/x`), or the
/// input when it already is a path.
pub fn path_of(url_or_path: &str) -> String {
    if url_or_path.starts_with('/') {
        return url_or_path.to_string();
    }
    match url_or_path.find("://") {
        Some(i) => {
            let rest = &url_or_path[i + 3..];
            match rest.find('/') {
                Some(j) => rest[j..].to_string(),
                None => "/".to_string(),
            }
        }
        None => format!("/{url_or_path}"),
    }
}

impl Endpoints {
    /// Parses either style: `{"ver100":[{"path":…}|{"url":…}, …], …}`. Unknown shapes are
    /// skipped; an empty result means "ask `topurlfordev`".
    pub fn parse(v: &Value) -> Endpoints {
        let mut list = Vec::new();
        if let Some(obj) = v.as_object() {
            for (version, entries) in obj {
                if !version.starts_with("ver") {
                    continue;
                }
                for e in entries.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let Some(loc) = e
                        .get("path")
                        .or_else(|| e.get("url"))
                        .and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let flag = |k: &str| e.get(k).and_then(Value::as_bool).unwrap_or(false);
                    list.push(Endpoint {
                        version: version.clone(),
                        path: path_of(loc),
                        get: flag("get"),
                        post: flag("post"),
                        put: flag("put"),
                        delete: flag("delete"),
                    });
                }
            }
        }
        // Newest version first, so `find` prefers it.
        list.sort_by_key(|e| std::cmp::Reverse(version_num(&e.version)));
        Endpoints { list }
    }

    /// The newest endpoint for `resource` (e.g. `event/polling`).
    pub fn find(&self, resource: &str) -> Option<&Endpoint> {
        self.list
            .iter()
            .find(|e| e.path == format!("/ccapi/{}/{resource}", e.version))
    }

    /// The endpoint for `resource` in exactly `version`.
    pub fn find_in(&self, version: &str, resource: &str) -> Option<&Endpoint> {
        self.list
            .iter()
            .find(|e| e.version == version && e.path == format!("/ccapi/{version}/{resource}"))
    }
}

pub(super) fn version_num(v: &str) -> u32 {
    v.trim_start_matches("ver").parse().unwrap_or(0)
}
