//! The REST routes (`/api/…`): each names a command of the table ([`super::COMMANDS`]), so a
//! REST request runs the same parsing and the same handler as the WebSocket command.
//!
//! A path segment `:field` is put into the payload under `field`; `body: true` takes the JSON
//! body's fields too; `query` lists the query parameters taken (`true`/`false`/numbers typed).

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Below `/api/`, segments separated by `/`; `:name` binds a payload field.
    pub path: &'static str,
    pub command: &'static str,
    pub body: bool,
    pub query: &'static [&'static str],
}

const fn get(path: &'static str, command: &'static str) -> Route {
    Route {
        method: "GET",
        path,
        command,
        body: false,
        query: &[],
    }
}

const fn post(path: &'static str, command: &'static str) -> Route {
    Route {
        method: "POST",
        path,
        command,
        body: true,
        query: &[],
    }
}

const fn with_method(r: Route, method: &'static str) -> Route {
    Route { method, ..r }
}

pub const ROUTES: &[Route] = &[
    get("status", "get_status"),
    get("system/status", "get_system_status"),
    get("system/power", "get_power_status"),
    get("system/time", "get_system_time"),
    // The original's `{timestamp, timezone}` and skylapse's `{clientTime, timezone}`.
    post("system/time", "manual-time-sync"),
    get("ws/connections", "get_ws_connections"),
    // Camera
    get("camera/status", "get_camera_status"),
    get("camera/settings", "get_camera_settings"),
    with_method(
        post("camera/settings/:setting", "set_camera_setting"),
        "PUT",
    ),
    post("camera/settings/:setting", "set_camera_setting"),
    get("camera/battery", "get_camera_battery"),
    get("camera/storage", "get_camera_storage"),
    get("camera/datetime", "get_camera_datetime"),
    post("camera/photo", "take_photo"),
    post("camera/photos/test", "take_test_photo"),
    get("camera/photos/test", "list_test_photos"),
    get("camera/photos/test/:id", "get_test_photo"),
    get("camera/photos/test/:id/file", "get_test_photo_file"),
    with_method(get("camera/photos/test/:id", "delete_test_photo"), "DELETE"),
    post("camera/liveview/capture", "capture_liveview"),
    get("camera/liveview/images", "list_liveview_images"),
    get("camera/liveview/images/:id/file", "get_liveview_image_file"),
    with_method(
        get("camera/liveview/images/:id", "delete_liveview_image"),
        "DELETE",
    ),
    with_method(
        get("camera/liveview/clear", "clear_liveview_images"),
        "DELETE",
    ),
    get("camera/liveview/status", "get_liveview_status"),
    post("camera/focus/drive", "drive_focus"),
    post("camera/certificate/accept", "accept_camera_certificate"),
    // The original's camera address setting: connect there (HTTPS, then HTTP).
    post("camera/configure", "connect_to_ip"),
    // Intervalometer and reports
    post("intervalometer/start", "start_intervalometer"),
    post("intervalometer/plan", "plan_session"),
    post("intervalometer/stop", "stop_intervalometer"),
    get("intervalometer/status", "get_intervalometer_status"),
    post("intervalometer/validate", "validate_interval"),
    get("timelapse/reports", "get_timelapse_reports"),
    get("timelapse/reports/:id", "get_timelapse_report"),
    with_method(
        get("timelapse/reports/:id", "delete_timelapse_report"),
        "DELETE",
    ),
    with_method(
        post("timelapse/reports/:id/title", "update_report_title"),
        "PUT",
    ),
    post("timelapse/reports/:id/title", "update_report_title"),
    get("timelapse/reports/:id/csv", "get_report_csv"),
    get("timelapse/reports/:id/chart.svg", "get_report_chart"),
    post(
        "timelapse/sessions/:sessionId/save",
        "save_session_as_report",
    ),
    post("timelapse/sessions/:sessionId/discard", "discard_session"),
    post("timelapse/sessions/:sessionId/resume", "resume_session"),
    get("timelapse/unsaved-session", "get_unsaved_session"),
    // Discovery
    get("discovery/status", "get_discovery_status"),
    get("discovery/cameras", "get_discovery_status"),
    post("discovery/scan", "discovery_scan"),
    post("discovery/connect", "connect_to_ip"),
    post("discovery/primary/:uuid", "set_primary_camera"),
    get("discovery/last-ip", "get_last_camera_ip"),
    // Network
    get("network/status", "get_network_status"),
    Route {
        method: "GET",
        path: "network/wifi/scan",
        command: "network_scan",
        body: false,
        query: &["refresh"],
    },
    post("network/wifi/connect", "network_connect"),
    post("network/wifi/disconnect", "network_disconnect"),
    post("network/wifi/enable", "wifi_enable"),
    post("network/wifi/disable", "wifi_disable"),
    get("network/wifi/enabled", "get_wifi_enabled"),
    get("network/wifi/saved", "get_saved_networks"),
    get("network/wifi/country", "get_wifi_country"),
    post("network/wifi/country", "set_wifi_country"),
    with_method(post("network/wifi/country", "set_wifi_country"), "PUT"),
    get("network/wifi/countries", "get_wifi_countries"),
    post("network/accesspoint/configure", "configure_access_point"),
    // Time sync
    get("timesync/status", "get-time-sync-status"),
    post("timesync/camera", "manual_camera_sync"),
    // Sun and location
    Route {
        method: "GET",
        path: "sun",
        command: "get_sun_times",
        body: false,
        query: &["lat", "lon", "date"],
    },
    get("location", "get_location"),
    post("location", "set_location"),
    with_method(post("location", "set_location"), "PUT"),
];

/// A path's parameters, bound by the route that matched it.
pub type Params<'a> = Vec<(&'static str, &'a str)>;

impl Route {
    /// Binds `segs` (the path below `/api/`, split at `/`) to this route's pattern.
    pub fn bind<'a>(&self, segs: &[&'a str]) -> Option<Params<'a>> {
        let pattern: Vec<&'static str> = self.path.split('/').collect();
        if pattern.len() != segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(segs) {
            match p.strip_prefix(':') {
                Some(name) => params.push((name, *s)),
                None if p == s => {}
                None => return None,
            }
        }
        Some(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_a_command_of_the_table() {
        for r in ROUTES {
            assert!(
                super::super::spec_of(r.command).is_some(),
                "{} /api/{} names {}, which is not in the command table",
                r.method,
                r.path,
                r.command
            );
        }
    }

    #[test]
    fn no_two_routes_claim_the_same_method_and_path() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} /api/{} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
