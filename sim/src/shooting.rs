//! The shooting engine (CCAPI.md §5.4): preconditions, then a capture task
//! AF → exposure (timed, or bulb until release) → card write → files + events.
//!
//! ```text
//!   Idle ──shutterbutton / full_press──▶ Busy(AF → exposing → writing) ──▶ Idle + cooldown
//!   button: Released ──half_press──▶ Half ──full_press──▶ Full{bulb?} ──release──▶ Released
//! ```
//! The reply of `shutterbutton` waits for the milestone chosen by `Timing::shutter_reply`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::http::Response;
use super::state::{tv_seconds, Button, Engine, PowerSource, SimFile};
use super::{events, pictures, Inner, Shared, ShutterReply};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Milestone {
    Started,
    AfDone,
    ExposureDone,
    Written,
}

fn reply_milestone(r: ShutterReply) -> Milestone {
    match r {
        ShutterReply::Immediate => Milestone::Started,
        ShutterReply::AfterAf => Milestone::AfDone,
        ShutterReply::AfterExposure => Milestone::ExposureDone,
        ShutterReply::AfterWrite => Milestone::Written,
    }
}

/// Checks the preconditions common to every release; `Err` is the 503 to send.
fn check_release(g: &mut Inner, shared: &Shared) -> Result<(), Response> {
    let now = shared.now();
    if g.cam.temperature.contains("disablerelease") {
        return Err(Response::error(503, "Mode not supported"));
    }
    if g.cam.engine != Engine::Idle {
        return Err(Response::error(503, "During shooting or recording"));
    }
    if g.cam.cooldown_until.is_some_and(|t| now < t) {
        return Err(Response::error(503, "Device busy"));
    }
    let size = g.cam.shot_size();
    if !g.cam.card.present || g.cam.card.protected || g.cam.card.free < size {
        return Err(Response::error(503, "Can not write to card"));
    }
    Ok(())
}

fn af_wanted(g: &Inner, af: bool) -> bool {
    af && g.cam.setting_str("afoperation") != "manual"
}

fn af_fails(g: &mut Inner) -> bool {
    g.af_fail_probability > 0.0 && g.rng.next_f64() < g.af_fail_probability
}

/// `POST shooting/control/shutterbutton {"af": bool}`.
pub(crate) async fn shutterbutton(shared: &Arc<Shared>, body: &Value) -> Response {
    let Some(af) = body.get("af").and_then(Value::as_bool) else {
        return Response::error(400, "Invalid parameter");
    };
    let (exposure, af_time, wait_for, epoch) = {
        let mut g = shared.lock();
        if let Err(r) = check_release(&mut g, shared) {
            return r;
        }
        let tv = g.cam.setting_str("tv");
        let exposure = match tv_seconds(&tv) {
            Some(s) => Duration::from_secs_f64(s),
            None if g.bulb_oneshot_rejected => return Response::error(503, "Mode not supported"),
            None => Duration::ZERO,
        };
        let af_time = if af_wanted(&g, af) {
            if af_fails(&mut g) {
                return Response::error(503, "Out of focus");
            }
            g.timing.af
        } else {
            Duration::ZERO
        };
        g.cam.engine = Engine::Busy {
            since: shared.now(),
        };
        (
            exposure,
            af_time,
            reply_milestone(g.timing.shutter_reply),
            g.boot_epoch,
        )
    };
    shared.touch();
    run_capture(shared, af_time, Some(exposure), wait_for, epoch).await;
    Response::ok(json!({}))
}

/// Spawns the capture task and waits for `wait_for`.
async fn run_capture(
    shared: &Arc<Shared>,
    af_time: Duration,
    exposure: Option<Duration>,
    wait_for: Milestone,
    epoch: u64,
) {
    let (tx, rx) = async_channel::bounded::<Milestone>(4);
    let me = shared.clone();
    shared.spawn_detached(capture(me, af_time, exposure, tx, epoch));
    if wait_for == Milestone::Started {
        return;
    }
    while let Ok(m) = rx.recv().await {
        if m >= wait_for {
            return;
        }
    }
}

/// The capture timeline. `exposure: None` is bulb: open until the button is released.
async fn capture(
    shared: Arc<Shared>,
    af_time: Duration,
    exposure: Option<Duration>,
    tx: async_channel::Sender<Milestone>,
    epoch: u64,
) {
    if !af_time.is_zero() {
        shared.sleep(af_time).await;
    }
    let _ = tx.try_send(Milestone::AfDone);
    // The sky and settings of the release are those at the opening of the shutter.
    let opened = {
        let mut g = shared.lock();
        g.cam.lv.shot_started();
        shared.now()
    };
    match exposure {
        Some(d) => {
            if !d.is_zero() {
                shared.sleep(d).await;
            }
        }
        None => loop {
            let generation = shared.changed.generation();
            {
                let g = shared.lock();
                if g.boot_epoch != epoch || !matches!(g.cam.button, Button::Full { .. }) {
                    break;
                }
            }
            shared.changed.changed_since(generation).await;
        },
    }
    let _ = tx.try_send(Milestone::ExposureDone);
    let (write_time, shot) = {
        let mut g = shared.lock();
        if g.boot_epoch != epoch {
            return;
        }
        let now = shared.now();
        g.cam.lv.shot_exposed(now);
        let exposed = exposure.unwrap_or_else(|| now.saturating_duration_since(opened));
        let shot = pictures::shot_params(&g.cam, &g.world, opened, exposed.as_secs_f64());
        let rate = g.timing.write_bytes_per_sec.max(1);
        (
            Duration::from_secs_f64(g.cam.shot_size() as f64 / rate as f64),
            shot,
        )
    };
    shared.sleep(write_time).await;
    let empty = {
        let mut g = shared.lock();
        if g.boot_epoch != epoch {
            return;
        }
        finish_shot(&mut g, &shared, shot)
    };
    shared.touch();
    let _ = tx.try_send(Milestone::Written);
    if empty {
        shared.power_off();
    }
}

/// Writes the files of one release and emits the events; true when the battery is empty.
fn finish_shot(g: &mut Inner, shared: &Arc<Shared>, shot: pictures::ShotParams) -> bool {
    let now = shared.now();
    let q = g
        .cam
        .settings
        .get("stillimagequality")
        .map(|s| s.value.clone())
        .unwrap_or(Value::Null);
    let raw = q["raw"].as_str().unwrap_or("none").to_string();
    let jpeg = q["jpeg"].as_str().unwrap_or("large_fine").to_string();
    if g.cam.card.next_number > 9999 {
        g.cam.card.next_number = 1;
        g.cam.card.folder_number += 1;
    }
    let number = g.cam.card.next_number;
    g.cam.card.next_number += 1;
    let folder = g.cam.card.folder();
    let created_ms = g.cam.clock.local_ms(now);
    // CR3 first, then JPG, as bodies report RAW+JPEG.
    let mut made = Vec::new();
    for (ext, size) in [
        ("CR3", super::state::raw_size(&raw)),
        ("JPG", super::state::jpeg_size(&jpeg)),
    ] {
        if size == 0 {
            continue;
        }
        g.cam.file_seq += 1;
        let f = SimFile {
            folder: folder.clone(),
            name: format!("IMG_{number:04}.{ext}"),
            size,
            created_ms,
            seq: g.cam.file_seq,
            shot,
        };
        g.cam.card.free = g.cam.card.free.saturating_sub(size);
        made.push(format!("{}/{}", f.folder, f.name));
        g.cam.card.files.push(f);
    }
    match (g.split_raw_jpeg, made.len()) {
        (Some(delay), 2) => {
            // CR3 now, JPG later: clients must handle the pair arriving in separate polls.
            let jpg = made.pop().unwrap_or_default();
            g.events.emit_added(made.pop().unwrap_or_default());
            let me = shared.clone();
            shared.spawn_detached(async move {
                async_io::Timer::after(delay).await;
                me.lock().events.emit_added(jpg);
                me.touch();
            });
        }
        _ => {
            for rel in made {
                g.events.emit_added(rel);
            }
        }
    }
    events::emit_storage(g, "");
    if g.cam.battery.source == PowerSource::Battery {
        let before = super::state::battery_level_word(g.cam.battery.percent);
        g.cam.battery.percent = (g.cam.battery.percent - g.cam.battery.drain_per_shot).max(0.0);
        if super::state::battery_level_word(g.cam.battery.percent) != before {
            let v = g.cam.battery_json();
            g.events.emit("battery", v);
        }
    }
    g.cam.engine = Engine::Idle;
    g.cam.cooldown_until = Some(now + g.timing.settings_cooldown);
    // An empty battery shuts the body down once the write is done.
    g.cam.battery.source == PowerSource::Battery && g.cam.battery.percent <= 0.0
}

/// `POST shooting/control/shutterbutton/manual {"action": …, "af": bool}`.
pub(crate) async fn manual(shared: &Arc<Shared>, body: &Value) -> Response {
    let Some(action) = body.get("action").and_then(Value::as_str) else {
        return Response::error(400, "Invalid parameter");
    };
    let af = match body.get("af") {
        None => false,
        Some(v) => match v.as_bool() {
            Some(b) => b,
            None => return Response::error(400, "Invalid parameter"),
        },
    };
    match action {
        "release" => {
            let mut g = shared.lock();
            g.cam.button = Button::Released;
            drop(g);
            shared.touch();
            Response::ok(json!({}))
        }
        "half_press" => {
            let af_time = {
                let mut g = shared.lock();
                if g.cam.engine != Engine::Idle {
                    return Response::error(503, "During shooting or recording");
                }
                let t = if af_wanted(&g, af) {
                    if af_fails(&mut g) {
                        return Response::error(503, "AF NG");
                    }
                    g.timing.af
                } else {
                    Duration::ZERO
                };
                g.cam.button = Button::Half;
                t
            };
            shared.touch();
            if !af_time.is_zero() {
                shared.sleep(af_time).await;
            }
            Response::ok(json!({}))
        }
        "full_press" => {
            let (exposure, af_time, wait_for, epoch) = {
                let mut g = shared.lock();
                if let Err(r) = check_release(&mut g, shared) {
                    return r;
                }
                let af_time = if g.cam.button != Button::Half && af_wanted(&g, af) {
                    if af_fails(&mut g) {
                        return Response::error(503, "AF NG");
                    }
                    g.timing.af
                } else {
                    Duration::ZERO
                };
                let now = shared.now();
                let tv = g.cam.setting_str("tv");
                let exposure = tv_seconds(&tv).map(Duration::from_secs_f64);
                g.cam.button = Button::Full {
                    bulb_since: exposure.is_none().then_some(now),
                };
                g.cam.engine = Engine::Busy { since: now };
                // Bulb: answer once the shutter is open; timed: like shutterbutton.
                let wait_for = if exposure.is_none() {
                    Milestone::AfDone
                } else {
                    reply_milestone(g.timing.shutter_reply)
                };
                (exposure, af_time, wait_for, g.boot_epoch)
            };
            shared.touch();
            run_capture(shared, af_time, exposure, wait_for, epoch).await;
            Response::ok(json!({}))
        }
        _ => Response::error(400, "Invalid parameter"),
    }
}

/// A press of the body's own button: a shot no client asked for (`hold` = bulb duration).
pub(crate) fn physical_press(shared: &Arc<Shared>, hold: Option<Duration>) -> Result<(), String> {
    let epoch = {
        let mut g = shared.lock();
        check_release(&mut g, shared).map_err(|r| String::from_utf8_lossy(&r.body).into_owned())?;
        let now = shared.now();
        g.cam.engine = Engine::Busy { since: now };
        if hold.is_some() {
            g.cam.button = Button::Full {
                bulb_since: Some(now),
            };
        }
        g.boot_epoch
    };
    shared.touch();
    let exposure = {
        let g = shared.lock();
        match hold {
            Some(_) => None,
            None => Some(Duration::from_secs_f64(
                tv_seconds(&g.cam.setting_str("tv")).unwrap_or(0.0),
            )),
        }
    };
    let (tx, _rx) = async_channel::bounded::<Milestone>(4);
    let me = shared.clone();
    shared.spawn_detached(capture(me, Duration::ZERO, exposure, tx, epoch));
    if let Some(h) = hold {
        let me = shared.clone();
        shared.spawn_detached(async move {
            me.sleep(h).await;
            let mut g = me.lock();
            if g.boot_epoch == epoch {
                g.cam.button = Button::Released;
            }
            drop(g);
            me.touch();
        });
    }
    Ok(())
}
