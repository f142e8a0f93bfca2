//! Parsed camera answers: device information, storage, new contents.

use serde_json::Value;

use super::*;

/// CCAPI `deviceinformation`, with CCAPI's field names (reports carry it as `cameraInfo`, as
/// the original service's do).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub productname: String,
    pub serialnumber: String,
    pub guid: String,
    pub firmwareversion: String,
    pub macaddress: String,
}

impl DeviceInfo {
    pub fn parse(v: &Value) -> DeviceInfo {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        DeviceInfo {
            // Some firmware misspells it.
            manufacturer: if s("manufacturer").is_empty() {
                s("munufacturer")
            } else {
                s("manufacturer")
            },
            productname: s("productname"),
            serialnumber: s("serialnumber"),
            guid: s("guid"),
            firmwareversion: s("firmwareversion"),
            macaddress: s("macaddress"),
        }
    }
}

/// `{"storagelist":[…]}` in either shape → the status block summary of the first card.
pub fn storage_summary(v: &Value) -> Option<crate::protocol::status::StorageBlock> {
    let card = v.get("storagelist")?.as_array()?.first()?;
    let max = card.get("maxsize").and_then(Value::as_u64).unwrap_or(0);
    let free = card.get("spacesize").and_then(Value::as_u64).unwrap_or(0);
    let mb = |b: u64| (b as f64 / 1_048_576.0).round() as u64;
    let used = max.saturating_sub(free);
    let percent = if max > 0 {
        ((used as f64 / max as f64) * 1000.0).round() / 10.0
    } else {
        0.0
    };
    Some(crate::protocol::status::StorageBlock {
        mounted: true,
        name: card.get("name").and_then(Value::as_str).map(str::to_string),
        total_mb: mb(max),
        free_mb: mb(free),
        used_mb: mb(used),
        percent_used: percent,
        contents_number: card.get("contentsnumber").and_then(Value::as_u64),
    })
}

/// The new files of one event-poll answer, as paths, in order (both URL and path forms).
pub fn added_contents(v: &Value) -> Vec<String> {
    v.get("addedcontents")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(path_of)
                .filter(|p| p.starts_with("/ccapi/") && !p.contains(".."))
                .collect()
        })
        .unwrap_or_default()
}
