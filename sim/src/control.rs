//! The `/_sim/...` HTTP control plane (CCAPI.md §5.8), mirroring the Rust `SimHandle` API.
//!
//! ```text
//! GET    /_sim/state                 full state JSON
//! PATCH  /_sim/state                 {"battery_percent","battery_kind":"battery"|"ac_adapter"|"not_inserted",
//!                                     "batterylist_bug","drain_per_shot","card_free","card_present",
//!                                     "card_protected","temperature","settings":{name:value},
//!                                     "root_listing":"path"|"url"|"nolist","on_service","af_fail_probability",
//!                                     "second_client":"busy"|"refuse"|null,"bulb_oneshot_rejected",
//!                                     "write_bytes_per_sec","drop_next_events","duplicate_addedcontents",
//!                                     "next_file_number":1..=10000 (10000: next shot opens a new folder),
//!                                     "shutter_reply","short_poll_ms","long_poll_ms","af_ms","cooldown_ms",
//!                                     scene: "sky_mode":"night"|"sun","latitude","longitude",
//!                                     "scene_ev":x|null (fixed EV instead of the sky's),"night_ev",
//!                                     "true_focus","focus_position","focus_steps":[s,m,l],
//!                                     "thumbnail_trailing_bytes":N,"thumbnail_letterbox":bool,
//!                                     live view: "lv_zoom":{"magnification":1|5|10,"x":0..1,"y":0..1},
//!                                     "lv_start_ms","lv_recovery_ms","lv_min_interval_ms",
//!                                     "lv_scroll_interval_ms","lv_not_ready":"black_frame"|"busy",
//!                                     "lv_min_ev","cameradisplay_keep_rejected",
//!                                     "flipdetail_rejects_extra_query","drivefocus_needs_liveview",
//!                                     "lv_exposure_simulation"}
//! POST   /_sim/faults                {"match":{"method","path"},"action":{…},"count","probability"} → {"id"}
//! DELETE /_sim/faults[/{id}]
//! POST   /_sim/wedge                 {"on":bool}          502 wedge until reboot
//! POST   /_sim/connections           {"max":N|null}
//! POST   /_sim/power                 {"action":"sleep"|"wake"|"off"|"on"|"reboot","reboot_ms":N,"mode":"refuse"|"blackhole"}
//! POST   /_sim/network               {"address":"127.0.0.3","keep_ports":bool} | {"offline":"refuse"|"blackhole"|null}
//! POST   /_sim/clock                 {"advance_ms":N} | {"set_utc_ms":N} | {"drift_ppm":x}
//! POST   /_sim/press                 {"hold_ms":N}?       physical shutter press
//! POST   /_sim/tls/rotate            new leaf certificate
//! POST   /_sim/ssdp                  {"drop_searches","malformed","duplicate","silent","reply_delay_ms",
//!                                     "description":"normal"|"404"|"malformed"|"no_access_url","notify":"alive"|"byebye"}
//! GET    /_sim/requests?since=N      request log;  DELETE clears
//! GET    /_sim/events                raw change log
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::faults::{self, Match};
use super::http::{Request, Response};
use super::liveview::{LvSize, NotReady, Zoom};
use super::pictures::{SkyMode, FOCUS_MAX};
use super::ssdp::DescriptionMode;
use super::state::{PowerSource, RootListing};
use super::{events, Inner, OfflineMode, Shared, ShutterReply};

pub(crate) async fn route(shared: &Arc<Shared>, req: &Request) -> Response {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Response::error(400, "Invalid parameter"),
        }
    };
    let path = req.path.trim_end_matches('/');
    let r = match (req.method.as_str(), path) {
        ("GET", "/_sim/state") => Ok(state_json(shared)),
        ("PATCH", "/_sim/state") => patch_state(shared, &body).map(|_| json!({})),
        ("POST", "/_sim/faults") => add_fault(shared, &body),
        ("DELETE", "/_sim/faults") => {
            shared.lock().faults.clear();
            Ok(json!({}))
        }
        ("GET", "/_sim/faults") => Ok(shared.lock().faults.to_json()),
        ("POST", "/_sim/wedge") => {
            shared.lock().faults.wedged_502 = body["on"].as_bool().unwrap_or(true);
            Ok(json!({}))
        }
        ("POST", "/_sim/connections") => {
            shared.lock().faults.max_connections = body["max"].as_u64().map(|n| n as usize);
            Ok(json!({}))
        }
        ("POST", "/_sim/power") => power(shared, &body),
        ("POST", "/_sim/network") => network(shared, &body),
        ("POST", "/_sim/clock") => clock(shared, &body),
        ("POST", "/_sim/press") => {
            let hold = body["hold_ms"].as_u64().map(Duration::from_millis);
            super::shooting::physical_press(shared, hold).map(|_| json!({}))
        }
        ("POST", "/_sim/tls/rotate") => shared
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rotate_leaf()
            .map(|_| json!({}))
            .map_err(|e| e.to_string()),
        ("POST", "/_sim/ssdp") => ssdp(shared, &body),
        ("GET", "/_sim/requests") => {
            let since = req
                .query_param("since")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let list: Vec<Value> = shared
                .log
                .since(since)
                .iter()
                .map(|r| {
                    json!({
                        "seq": r.seq, "listener": format!("{:?}", r.listener),
                        "peer": r.peer.to_string(), "method": r.method, "path": r.path,
                        "query": r.query, "status": r.status,
                    })
                })
                .collect();
            Ok(json!({ "requests": list }))
        }
        ("DELETE", "/_sim/requests") => {
            shared.log.lock().records.clear();
            Ok(json!({}))
        }
        ("GET", "/_sim/events") => {
            let g = shared.lock();
            let list: Vec<Value> = g
                .events
                .log
                .iter()
                .map(|(seq, k, v)| json!({"seq": seq, "key": k, "value": v}))
                .collect();
            Ok(json!({ "events": list }))
        }
        (m, p) if p.starts_with("/_sim/faults/") && m == "DELETE" => {
            match p["/_sim/faults/".len()..].parse::<u64>() {
                Ok(id) if shared.lock().faults.remove(id) => Ok(json!({})),
                _ => return Response::error(404, "No such fault"),
            }
        }
        _ => return Response::error(404, "URL not found"),
    };
    match r {
        Ok(v) => Response::ok(v),
        Err(msg) => Response::error(400, &msg),
    }
}

pub(crate) fn state_json(shared: &Shared) -> Value {
    let now = shared.now();
    let g = shared.lock();
    let files: Vec<Value> = g
        .cam
        .card
        .files
        .iter()
        .map(|f| json!({"path": format!("{}/{}", f.folder, f.name), "size": f.size}))
        .collect();
    json!({
        "profile": g.cam.profile.name(),
        "udn": shared.udn,
        "power": format!("{:?}", g.cam.power),
        "offline": g.net.offline.map(|m| format!("{m:?}")),
        "addresses": {
            "https": g.net.https.map(|a| a.to_string()),
            "http": g.net.http.map(|a| a.to_string()),
            "description": g.net.description.to_string(),
            "ssdp": g.net.ssdp.map(|a| a.to_string()),
        },
        "deviceinformation": g.cam.deviceinformation_json(),
        "battery": {"percent": g.cam.battery.percent, "ver100": g.cam.battery_json(),
                    "drain_per_shot": g.cam.battery.drain_per_shot},
        "storage": g.cam.storage_json(""),
        "files": files,
        "datetime": g.cam.datetime_json(now),
        "camera_utc_ms": g.cam.clock.utc_ms(now),
        "drift_ppm": g.cam.clock.drift_ppm,
        "temperature": g.cam.temperature,
        "settings": g.cam.settings_json("ver110"),
        "engine_busy": g.cam.engine != super::state::Engine::Idle,
        "button": format!("{:?}", g.cam.button),
        "poll_outstanding": g.events.poll_outstanding,
        "faults": g.faults.to_json(),
        "scene": scene_json(&g, now),
        "liveview": liveview_json(&g, now),
        "pictures_rendered": shared.pictures.renders(),
    })
}

pub(crate) fn patch_state(shared: &Shared, p: &Value) -> Result<(), String> {
    let Some(obj) = p.as_object() else {
        return Err("expected an object".into());
    };
    let mut g = shared.lock();
    for (k, v) in obj {
        let bad = || format!("bad value for {k}");
        match k.as_str() {
            "battery_percent" => {
                g.cam.battery.percent = v.as_f64().ok_or_else(bad)?.clamp(0.0, 100.0);
                let b = g.cam.battery_json();
                g.events.emit("battery", b);
            }
            "battery_kind" => {
                g.cam.battery.source = match v.as_str() {
                    Some("battery") => PowerSource::Battery,
                    Some("ac_adapter") => PowerSource::AcAdapter,
                    Some("not_inserted") => PowerSource::NotInserted,
                    _ => return Err(bad()),
                };
                let b = g.cam.battery_json();
                g.events.emit("battery", b);
            }
            "batterylist_bug" => g.cam.battery.batterylist_bug = v.as_bool().ok_or_else(bad)?,
            "drain_per_shot" => g.cam.battery.drain_per_shot = v.as_f64().ok_or_else(bad)?,
            "card_free" => {
                g.cam.card.free = v.as_u64().ok_or_else(bad)?.min(g.cam.card.max_size);
                events::emit_storage(&mut g, "");
            }
            "card_present" => {
                g.cam.card.present = v.as_bool().ok_or_else(bad)?;
                events::emit_storage(&mut g, "");
            }
            "card_protected" => {
                g.cam.card.protected = v.as_bool().ok_or_else(bad)?;
                events::emit_storage(&mut g, "");
            }
            "temperature" => {
                let t = v.as_str().ok_or_else(bad)?.to_string();
                g.events.emit("temperature", json!({"status": t}));
                g.cam.temperature = t;
            }
            "settings" => {
                let m = v.as_object().ok_or_else(bad)?;
                for (name, value) in m {
                    let s = g
                        .cam
                        .settings
                        .get_mut(name)
                        .ok_or_else(|| format!("no setting {name}"))?;
                    s.value = value.clone();
                    events::emit_setting(&mut g, name);
                }
            }
            "root_listing" => {
                g.cam.root_listing = match v.as_str() {
                    Some("path") => RootListing::Path,
                    Some("url") => RootListing::Url,
                    Some("nolist") => RootListing::NoList,
                    _ => return Err(bad()),
                }
            }
            "on_service" => g.on_service = v.as_bool().ok_or_else(bad)?,
            "second_client" => {
                g.second_client = match v.as_str() {
                    None if v.is_null() => None,
                    Some("busy") => Some(super::SecondClient::Busy),
                    Some("refuse") => Some(super::SecondClient::Refuse),
                    _ => return Err(bad()),
                }
            }
            "af_fail_probability" => g.af_fail_probability = v.as_f64().ok_or_else(bad)?,
            "bulb_oneshot_rejected" => g.bulb_oneshot_rejected = v.as_bool().ok_or_else(bad)?,
            "shutter_reply" => {
                g.timing.shutter_reply =
                    ShutterReply::parse(v.as_str().ok_or_else(bad)?).ok_or_else(bad)?
            }
            "short_poll_ms" => g.timing.short_poll = ms(v).ok_or_else(bad)?,
            "long_poll_ms" => g.timing.long_poll = ms(v).ok_or_else(bad)?,
            "af_ms" => g.timing.af = ms(v).ok_or_else(bad)?,
            "cooldown_ms" => g.timing.settings_cooldown = ms(v).ok_or_else(bad)?,
            "write_bytes_per_sec" => {
                g.timing.write_bytes_per_sec = v.as_u64().ok_or_else(bad)?.max(1)
            }
            "drop_next_events" => {
                g.events.drop_next = v.as_u64().ok_or_else(bad)?.min(u32::MAX as u64) as u32
            }
            "duplicate_addedcontents" => g.events.duplicate_added = v.as_bool().ok_or_else(bad)?,
            "sky_mode" => {
                g.world.sky.mode = SkyMode::parse(v.as_str().ok_or_else(bad)?).ok_or_else(bad)?
            }
            "latitude" => g.world.sky.latitude = num(v, -90.0, 90.0).ok_or_else(bad)?,
            "longitude" => g.world.sky.longitude = num(v, -180.0, 180.0).ok_or_else(bad)?,
            "scene_ev" => {
                g.world.sky.scene_ev = match v {
                    Value::Null => None,
                    v => Some(num(v, -10.0, 25.0).ok_or_else(bad)?),
                }
            }
            "night_ev" => g.world.sky.night_ev = num(v, -10.0, 25.0).ok_or_else(bad)?,
            "true_focus" => g.world.true_focus = focus(v).ok_or_else(bad)?,
            "focus_position" => g.cam.focus.position = focus(v).ok_or_else(bad)?,
            "focus_steps" => {
                let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(bad)?;
                let mut steps = [0; 3];
                for (s, x) in steps.iter_mut().zip(a) {
                    *s = focus(x).filter(|n| *n >= 1).ok_or_else(bad)?;
                }
                g.cam.focus.steps = steps;
            }
            "thumbnail_trailing_bytes" => {
                g.world.sky.thumbnail_trailing_bytes =
                    v.as_u64().filter(|n| *n <= 65_536).ok_or_else(bad)? as usize
            }
            "thumbnail_letterbox" => {
                g.world.sky.thumbnail_letterbox = v.as_bool().ok_or_else(bad)?
            }
            "lv_zoom" => {
                let m = v["magnification"].as_u64().ok_or_else(bad)?;
                let x = num(&v["x"], 0.0, 1.0).unwrap_or(g.cam.lv.zoom.u);
                let y = num(&v["y"], 0.0, 1.0).unwrap_or(g.cam.lv.zoom.v);
                set_zoom(&mut g, m.min(255) as u8, x, y)?;
            }
            "lv_start_ms" => g.cam.lv.knobs.start = ms(v).ok_or_else(bad)?,
            "lv_recovery_ms" => g.cam.lv.knobs.recovery = ms(v).ok_or_else(bad)?,
            "lv_min_interval_ms" => g.cam.lv.knobs.min_interval = ms(v).ok_or_else(bad)?,
            "lv_scroll_interval_ms" => {
                g.cam.lv.knobs.scroll_interval = ms(v)
                    .filter(|d| *d >= Duration::from_millis(5))
                    .ok_or_else(bad)?
            }
            "lv_not_ready" => {
                g.cam.lv.knobs.not_ready = match v.as_str() {
                    Some("black_frame") => NotReady::BlackFrame,
                    Some("busy") => NotReady::Busy,
                    _ => return Err(bad()),
                }
            }
            "lv_min_ev" => g.cam.lv.knobs.min_ev = num(v, -10.0, 25.0).ok_or_else(bad)?,
            "cameradisplay_keep_rejected" => {
                g.cam.lv.knobs.cameradisplay_keep_rejected = v.as_bool().ok_or_else(bad)?
            }
            "flipdetail_rejects_extra_query" => {
                g.cam.lv.knobs.flipdetail_rejects_extra_query = v.as_bool().ok_or_else(bad)?
            }
            "drivefocus_needs_liveview" => {
                g.cam.lv.knobs.drivefocus_needs_liveview = v.as_bool().ok_or_else(bad)?
            }
            "lv_exposure_simulation" => {
                g.cam.lv.knobs.exposure_simulation = v.as_bool().ok_or_else(bad)?
            }
            "next_file_number" => {
                let n = v
                    .as_u64()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(bad)?;
                g.cam.card.next_number = n as u32;
            }
            _ => return Err(format!("unknown key {k}")),
        }
    }
    drop(g);
    shared.touch();
    Ok(())
}

fn ms(v: &Value) -> Option<Duration> {
    v.as_u64().map(Duration::from_millis)
}

/// A finite number within [lo, hi].
fn num(v: &Value, lo: f64, hi: f64) -> Option<f64> {
    v.as_f64()
        .filter(|x| x.is_finite() && (lo..=hi).contains(x))
}

fn focus(v: &Value) -> Option<i32> {
    v.as_i64()
        .filter(|n| (0..=i64::from(FOCUS_MAX)).contains(n))
        .map(|n| n as i32)
}

/// Live-view magnification 1, 5 or 10 around (`u`, `v`) in frame units.
pub(crate) fn set_zoom(g: &mut Inner, magnification: u8, u: f64, v: f64) -> Result<(), String> {
    if ![1, 5, 10].contains(&magnification) {
        return Err("magnification must be 1, 5 or 10".into());
    }
    if !(0.0..=1.0).contains(&u) || !(0.0..=1.0).contains(&v) {
        return Err("zoom centre must be within 0..1".into());
    }
    g.cam.lv.zoom = Zoom {
        magnification,
        u,
        v,
    };
    Ok(())
}

fn scene_json(g: &Inner, now: std::time::Instant) -> Value {
    let (ev, alt) = g.world.light_at(g.cam.clock.utc_ms(now));
    let sky = &g.world.sky;
    json!({
        "sky_mode": sky.mode.name(),
        "latitude": sky.latitude,
        "longitude": sky.longitude,
        "scene_ev_override": sky.scene_ev,
        "night_ev": sky.night_ev,
        "scene_ev": ev,
        "sun_altitude": alt,
        "true_focus": g.world.true_focus,
        "focus_position": g.cam.focus.position,
        "focus_steps": g.cam.focus.steps,
        "brightest_star": [g.world.scene.brightest.0, g.world.scene.brightest.1],
        "thumbnail_trailing_bytes": sky.thumbnail_trailing_bytes,
        "thumbnail_letterbox": sky.thumbnail_letterbox,
    })
}

fn liveview_json(g: &Inner, now: std::time::Instant) -> Value {
    let lv = &g.cam.lv;
    let k = &lv.knobs;
    json!({
        "liveviewsize": lv.size.map_or("off", LvSize::name),
        "cameradisplay": lv.cameradisplay,
        "paused": lv.paused,
        "starting_or_recovering": lv.ready_at.is_some_and(|t| now < t),
        "zoom": {"magnification": lv.zoom.magnification, "x": lv.zoom.u, "y": lv.zoom.v},
        "lv_start_ms": k.start.as_millis() as u64,
        "lv_recovery_ms": k.recovery.as_millis() as u64,
        "lv_min_interval_ms": k.min_interval.as_millis() as u64,
        "lv_scroll_interval_ms": k.scroll_interval.as_millis() as u64,
        "lv_not_ready": match k.not_ready { NotReady::BlackFrame => "black_frame", NotReady::Busy => "busy" },
        "lv_min_ev": k.min_ev,
        "cameradisplay_keep_rejected": k.cameradisplay_keep_rejected,
        "flipdetail_rejects_extra_query": k.flipdetail_rejects_extra_query,
        "drivefocus_needs_liveview": k.drivefocus_needs_liveview,
        "lv_exposure_simulation": k.exposure_simulation,
    })
}

fn add_fault(shared: &Shared, body: &Value) -> Result<Value, String> {
    let m = &body["match"];
    let matcher = Match {
        method: m["method"].as_str().map(str::to_string),
        path_contains: m["path"].as_str().map(str::to_string),
    };
    let action = faults::parse_action(&body["action"]).ok_or("bad action")?;
    let count = body["count"]
        .as_u64()
        .map(|n| n.min(u32::MAX as u64) as u32);
    let p = body["probability"].as_f64().unwrap_or(1.0);
    let id = shared.lock().faults.add(matcher, action, count, p);
    Ok(json!({ "id": id }))
}

fn offline_mode(v: &Value) -> Result<OfflineMode, String> {
    match v.as_str() {
        None | Some("refuse") => Ok(OfflineMode::Refuse),
        Some("blackhole") => Ok(OfflineMode::Blackhole),
        Some(o) => Err(format!("bad mode {o}")),
    }
}

fn power(shared: &Arc<Shared>, body: &Value) -> Result<Value, String> {
    match body["action"].as_str() {
        Some("sleep") => shared.sleep_camera(offline_mode(&body["mode"])?),
        Some("wake") | Some("on") => shared.wake_camera().map_err(|e| e.to_string())?,
        Some("off") => shared.power_off(),
        Some("reboot") => {
            let down = body["reboot_ms"]
                .as_u64()
                .map(Duration::from_millis)
                .unwrap_or_else(|| shared.lock().timing.reboot);
            shared.reboot(down)
        }
        _ => return Err("bad action".into()),
    }
    Ok(json!({}))
}

fn network(shared: &Arc<Shared>, body: &Value) -> Result<Value, String> {
    if let Some(a) = body.get("address") {
        let ip = a
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("bad address")?;
        let keep = body["keep_ports"].as_bool().unwrap_or(true);
        shared.change_address(ip, keep).map_err(|e| e.to_string())?;
    }
    if let Some(o) = body.get("offline") {
        if o.is_null() {
            shared.go_online().map_err(|e| e.to_string())?;
        } else {
            shared.go_offline(offline_mode(o)?);
        }
    }
    Ok(json!({}))
}

fn clock(shared: &Shared, body: &Value) -> Result<Value, String> {
    if let Some(ms) = body["advance_ms"].as_u64() {
        let m = shared
            .manual_clock
            .as_ref()
            .ok_or("the simulator runs on the system clock")?;
        m.advance(Duration::from_millis(ms));
    }
    let now = shared.now();
    if let Some(utc) = body["set_utc_ms"].as_i64() {
        shared.lock().cam.clock.set_utc(now, utc);
    }
    if let Some(ppm) = body["drift_ppm"].as_f64() {
        let mut g = shared.lock();
        let utc = g.cam.clock.utc_ms(now);
        g.cam.clock.set_utc(now, utc);
        g.cam.clock.drift_ppm = ppm;
    }
    Ok(json!({}))
}

fn ssdp(shared: &Shared, body: &Value) -> Result<Value, String> {
    {
        let mut g = shared.lock();
        let k = &mut g.ssdp;
        if let Some(n) = body["drop_searches"].as_u64() {
            k.drop_searches = n.min(u32::MAX as u64) as u32;
        }
        if let Some(b) = body["malformed"].as_bool() {
            k.malformed_replies = b;
        }
        if let Some(b) = body["duplicate"].as_bool() {
            k.duplicate_replies = b;
        }
        if let Some(b) = body["silent"].as_bool() {
            k.silent_notify = b;
        }
        if let Some(n) = body["reply_delay_ms"].as_u64() {
            k.reply_delay = Duration::from_millis(n);
        }
        if let Some(d) = body["description"].as_str() {
            k.description = match d {
                "normal" => DescriptionMode::Normal,
                "404" => DescriptionMode::NotFound,
                "malformed" => DescriptionMode::Malformed,
                "no_access_url" => DescriptionMode::NoAccessUrl,
                _ => return Err("bad description mode".into()),
            };
        }
    }
    match body["notify"].as_str() {
        Some("alive") => super::ssdp::send_notify(shared, true),
        Some("byebye") => super::ssdp::send_notify(shared, false),
        _ => {}
    }
    Ok(json!({}))
}
