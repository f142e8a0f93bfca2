//! `skylapse simulate-night`: plan a night without a camera (issue 12, item 6).
//!
//! Runs the session machine ([`Session`]: the grid, the gaps between frames, the deferral of
//! a settings change that finds no time, auto-ramp's measure → decide → apply with
//! [`crate::ramp::AutoRamp`] and the camera's third-stop ladders) on a virtual clock against
//! the simulator's sky: for each frame, the simulator's world gives the scene brightness at
//! that instant and place (its own sun model, not the product's), renders the 160×120
//! thumbnail the camera would send for the settings the frame was shot with (gamma, clipping,
//! noise; a real JPEG with filler after EOI), and the session sees only that thumbnail. The
//! simulated camera answers a shutter press after the exposure, reports the file, serves the
//! thumbnail and takes settings changes with fixed delays (`REPLY_AFTER_EXPOSURE`, …).
//!
//! What it does not run: the camera driver and the network (those are tested against the
//! simulator in real time elsewhere). Before the first frame a few metering shots set the start
//! exposure, as a photographer's test shots do.
//!
//! The last line of output is `{"frames", "p95ErrorEv", "maxErrorEv", "maxStepEv",
//! "clippedFrames"}`: error is the frame's measured brightness against the target curve, in
//! stops; step the largest exposure change between consecutive frames; a frame is clipped
//! when more than 1 % of its thumbnail is blown or the light was beyond the limits.

use serde::Serialize;
use std::fmt::Write as _;

use skylapse_sim::pictures::{SkyConfig, SkyMode, World};
use skylapse_sim::scene::{self, Light, View};

use std::time::{Duration, Instant};

use crate::brightness;
use crate::camera::ShotOutcome;
use crate::clock::{Clock, ManualClock};
use crate::exposure::{av_number, iso_number, tv_seconds, Limits, Settings};
use crate::intervalometer::schedule::{
    AutoPlan, FrameSettings, Ladders, SessionOptions, StopCondition,
};
use crate::intervalometer::session::{Action as SessionAction, Input, Session, Start};
use crate::machine::{Machine, Now};
use crate::ramp::AutoOptions;
use crate::sun::{self, Location, SunEvent};

pub const USAGE: &str = "usage: skylapse simulate-night --lat DEG --lon DEG --date YYYY-MM-DD \
--start EVENT[±MIN] --stop EVENT[±MIN] --interval S [--max-step EV] [--night-bias EV] \
[--day-target B] [--max-iso N] [--av fN] [--csv PATH] [--svg PATH] [--seed N]
  EVENT: sunrise, sunset, solarNoon, civilDawn, civilDusk, nauticalDawn, nauticalDusk,
         astronomicalDawn, astronomicalDusk (the start is the one of DATE there; the stop the
         first after the start)\n";

/// Share of blown pixels above which a frame counts as clipped.
const CLIPPED_SHARE: f64 = 0.01;
/// Filler after EOI, as real bodies send (CCAPI.md §1.8).
const TRAILING_BYTES: usize = 256;

/// The plan's options.
#[derive(Debug, Clone)]
pub struct Plan {
    pub location: Location,
    pub date: sun::Date,
    pub start: (SunEvent, f64),
    pub stop: (SunEvent, f64),
    pub interval_s: f64,
    pub auto: AutoOptions,
    pub max_iso: f64,
    pub av: String,
    pub seed: u64,
    pub csv: Option<String>,
    pub svg: Option<String>,
}

/// `sunset-60`, `civilDusk`, `sunrise+15.5`.
pub fn parse_event(s: &str) -> Result<(SunEvent, f64), String> {
    let split = s.find(['+', '-']).unwrap_or(s.len());
    let (name, off) = s.split_at(split);
    let event =
        SunEvent::parse(name).ok_or_else(|| sun::SunError::Event(name.into()).to_string())?;
    let minutes = if off.is_empty() {
        0.0
    } else {
        off.parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && m.abs() <= 720.0)
            .ok_or_else(|| format!("bad offset in {s:?} (minutes, ±720 at most)"))?
    };
    Ok((event, minutes))
}

impl Plan {
    pub fn from_args(args: &[String]) -> Result<Plan, String> {
        let mut get = std::collections::HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let key = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?}"))?;
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            get.insert(key.to_string(), v.clone());
        }
        let need = |k: &str| {
            get.get(k)
                .cloned()
                .ok_or_else(|| format!("--{k} is required"))
        };
        let num = |k: &str, default: Option<f64>| -> Result<f64, String> {
            match get.get(k) {
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("--{k} must be a number")),
                None => default.ok_or_else(|| format!("--{k} is required")),
            }
        };
        let location =
            Location::new(num("lat", None)?, num("lon", None)?).map_err(|e| e.to_string())?;
        let date = sun::parse_date(&need("date")?).map_err(|e| e.to_string())?;
        let interval_s = num("interval", None)?;
        if !(2.0..=3600.0).contains(&interval_s) {
            return Err("--interval must be 2 to 3600 seconds".into());
        }
        let defaults = AutoOptions::default();
        let auto = AutoOptions {
            max_step_ev: num("max-step", Some(defaults.max_step_ev))?,
            night_bias_ev: num("night-bias", Some(defaults.night_bias_ev))?,
            day_target: num("day-target", Some(defaults.day_target))?,
            ..defaults
        };
        if !(0.05..=3.0).contains(&auto.max_step_ev) || !(0.001..=0.9).contains(&auto.day_target) {
            return Err("--max-step must be 0.05 to 3 EV, --day-target 0.001 to 0.9".into());
        }
        let for_unknown = get
            .keys()
            .find(|k| {
                ![
                    "lat",
                    "lon",
                    "date",
                    "start",
                    "stop",
                    "interval",
                    "max-step",
                    "night-bias",
                    "day-target",
                    "max-iso",
                    "av",
                    "csv",
                    "svg",
                    "seed",
                ]
                .contains(&k.as_str())
            })
            .cloned();
        if let Some(k) = for_unknown {
            return Err(format!("unknown option --{k}"));
        }
        let av = get.get("av").cloned().unwrap_or_else(|| "f4.5".into());
        av_number(&av).ok_or("--av must be an aperture like f4.5")?;
        Ok(Plan {
            location,
            date,
            start: parse_event(&need("start")?)?,
            stop: parse_event(&need("stop")?)?,
            interval_s,
            auto,
            max_iso: num("max-iso", Some(6400.0))?,
            av,
            seed: num("seed", Some(1.0))? as u64,
            csv: get.get("csv").cloned(),
            svg: get.get("svg").cloned(),
        })
    }

    /// Start and stop instants (Unix ms).
    pub fn window(&self) -> Result<(i64, i64), String> {
        let (ev, off) = self.start;
        let day = sun::sun_times(self.date, self.location);
        let at = day.get(ev).map_err(|r| {
            format!(
                "no {ev} at {}, {} on {}: {}",
                self.location.lat,
                self.location.lon,
                sun::format_date(self.date),
                r.as_str()
            )
        })?;
        let start = at + (off * 60_000.0).round() as i64;
        let (sev, soff) = self.stop;
        let soff_ms = (soff * 60_000.0).round() as i64;
        let stop = sun::next_event(start - soff_ms, sev, self.location)
            .map(|t| t + soff_ms)
            .ok_or_else(|| format!("no {sev} after the start"))?;
        if stop - start > 36 * 3_600_000 {
            return Err(format!(
                "the stop ({sev}) is more than 36 hours after the start"
            ));
        }
        Ok((start, stop))
    }
}

/// One simulated frame.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub t_ms: i64,
    pub sun_alt: f64,
    pub scene_ev: f64,
    pub tv: String,
    pub iso: String,
    pub av: String,
    pub exposure: f64,
    pub brightness: f64,
    pub target: f64,
    pub error_ev: f64,
    pub clipped: bool,
}

/// The summary line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub frames: usize,
    pub p95_error_ev: f64,
    pub max_error_ev: f64,
    pub max_step_ev: f64,
    pub clipped_frames: usize,
}

/// The simulator's camera: settings in, thumbnail out.
struct Camera {
    world: World,
    seq: u64,
}

impl Camera {
    fn shoot(&mut self, t_ms: i64, s: &Settings) -> Result<(Vec<u8>, f64, f64), String> {
        let (scene_ev, alt) = self.world.light_at(t_ms);
        let t = tv_seconds(&s.tv).ok_or("bad tv")?;
        let n = av_number(&s.av).ok_or("bad av")?;
        let iso = iso_number(&s.iso).ok_or("bad iso")?;
        self.seq += 1;
        let light = Light {
            scene_ev,
            sun_alt: alt,
            camera_ev: scene::camera_ev(t, n, iso),
            iso,
            blur: scene::blur_for_focus(self.world.true_focus, self.world.true_focus),
            seed: self.seq,
        };
        // Canon's thumbnail: the 3:2 picture between black bars in 160×120.
        let (w, h, rows) = (160usize, 120usize, 106usize);
        let picture = scene::render(&self.world.scene, &light, &View::full(w, rows));
        let mut rgb = vec![0u8; w * h * 3];
        let top = (h - rows) / 2;
        rgb[top * w * 3..(top + rows) * w * 3].copy_from_slice(&picture);
        let mut jpeg = skylapse_sim::jpeg::encode_rgb(
            &rgb,
            w as u16,
            h as u16,
            90,
            skylapse_sim::jpeg::Sampling::S422,
            None,
        );
        jpeg.extend(std::iter::repeat_n(0u8, TRAILING_BYTES));
        Ok((jpeg, scene_ev, alt))
    }
}

/// The camera's ladders (the simulator's R50 ability lists) and the plan's limits.
fn limits(plan: &Plan) -> Limits {
    let settings = skylapse_sim::state::default_settings(skylapse_sim::Profile::R50);
    let list = |k: &str| match settings.get(k).map(|s| &s.ability) {
        Some(skylapse_sim::state::Ability::List(v)) => v.clone(),
        _ => Vec::new(),
    };
    Limits {
        tv_ability: list("tv"),
        av_ability: list("av"),
        iso_ability: list("iso"),
        max_tv_secs: plan.interval_s - crate::intervalometer::schedule::CAMERA_WRITE_MARGIN_SECS,
        min_tv_secs: 0.0,
        min_iso: 100.0,
        max_iso: plan.max_iso,
        av: plan.av.clone(),
        av_ramp: None,
    }
}

/// A simulated camera call answers this long after it starts (a shutter reply after the
/// exposure, a thumbnail download, a settings PUT): what the session must fit in its gaps.
const REPLY_AFTER_EXPOSURE: Duration = Duration::from_millis(60);
const FILE_REPORTED_AFTER: Duration = Duration::from_millis(400);
const THUMBNAIL_DOWNLOAD: Duration = Duration::from_millis(250);
const SETTING_PUT: Duration = Duration::from_millis(150);

/// Runs the plan: the real session machine ([`Session`], the grid, the gaps, the deferrals,
/// auto-ramp's measure → decide → apply) on a virtual clock, against the simulator's sky.
/// Returns the rows and the summary.
pub fn run(plan: &Plan) -> Result<(Vec<Row>, Summary), String> {
    let (start, stop) = plan.window()?;
    let limits = limits(plan);
    let mut cam = Camera {
        world: World::new(
            SkyConfig {
                mode: SkyMode::FollowSun,
                latitude: plan.location.lat,
                longitude: plan.location.lon,
                ..SkyConfig::default()
            },
            plan.seed,
        ),
        seq: 0,
    };
    let alt = |t: i64| sun::solar_altitude_deg(t, plan.location);
    let opts = plan.auto;
    let mut settings = meter(&mut cam, plan, start, &limits)?;

    // The session, exactly as the service builds one for `autoRamp` (schedule::AutoPlan).
    let ladders = Ladders {
        tv: limits
            .tv_ability
            .iter()
            .filter(|v| tv_seconds(v).is_some_and(|t| t <= limits.max_tv_secs + 1e-9))
            .cloned()
            .collect(),
        iso: limits.iso_ability.clone(),
        av: limits.av_ability.clone(),
    };
    let auto_plan = AutoPlan {
        location: plan.location,
        day_target: opts.day_target,
        night_bias_ev: opts.night_bias_ev,
        max_step_ev: opts.max_step_ev,
        max_iso: plan.max_iso,
        av: plan.av.clone(),
        av_range: None,
        ladders,
    };
    let interval = Duration::from_secs_f64(plan.interval_s);
    let session_opts = SessionOptions {
        interval,
        stop: StopCondition::Until(stop),
        exposure: Some(limits.max_tv_secs),
        auto: Some(auto_plan),
        ..SessionOptions::default()
    };
    // Virtual time: a ManualClock's instant is only a point to count from; nothing sleeps.
    let t0 = ManualClock::new(std::time::UNIX_EPOCH).now();
    let lead = crate::intervalometer::session::DEFAULT_LEAD;
    let mut session = Session::new(
        "simulate-night".into(),
        "simulate-night".into(),
        session_opts,
        Start {
            now: t0,
            wall_ms: start - lead.as_millis() as i64,
            tz_offset_secs: 0,
            base: t0 + lead,
            first_slot: 0,
            origin_wall_ms: start,
            stop_at_wall_ms: Some(stop),
            camera_connected: true,
            lead,
            settings: FrameSettings {
                tv: Some(settings.tv.clone()),
                iso: Some(settings.iso.clone()),
                av: Some(settings.av.clone()),
            },
        },
        &[],
    );
    let wall_of = |t: Instant| start - lead.as_millis() as i64 + (t - t0).as_millis() as i64;

    let mut now = t0;
    let mut events: Vec<(Instant, u64, Input)> = Vec::new();
    let mut seq = 0u64;
    // Each frame's measured brightness, for the session's thumbnail request.
    let mut measured: std::collections::HashMap<u64, f64> = std::collections::HashMap::new();
    let mut rows = Vec::new();
    let mut last_exposure: Option<f64> = None;
    let mut max_step: f64 = 0.0;
    let frames_max = ((stop - start) as f64 / 1000.0 / plan.interval_s).ceil() as usize + 2;
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                SessionAction::Shoot { slot, due, .. } => {
                    let t_ms = wall_of(due);
                    let exposure = tv_seconds(&settings.tv).ok_or("bad tv")?;
                    let replied = due + Duration::from_secs_f64(exposure) + REPLY_AFTER_EXPOSURE;
                    let outcome = ShotOutcome {
                        sent_at: due,
                        replied_at: replied,
                        result: Ok(()),
                        maybe_taken: false,
                    };
                    let path = format!("/ccapi/ver110/contents/card1/100CANON/IMG_{slot:06}.JPG");
                    let (jpeg, scene_ev, _) = cam.shoot(t_ms, &settings)?;
                    let m = brightness::measure(&jpeg)?;
                    let exposure = settings.exposure().ok_or("bad settings")?;
                    if let Some(prev) = last_exposure {
                        max_step = max_step.max((exposure - prev).abs());
                    }
                    last_exposure = Some(exposure);
                    let sun_alt = alt(t_ms);
                    let target = opts.target_log2(Some(sun_alt));
                    rows.push(Row {
                        t_ms,
                        sun_alt,
                        scene_ev,
                        tv: settings.tv.clone(),
                        iso: settings.iso.clone(),
                        av: settings.av.clone(),
                        exposure,
                        brightness: m.brightness,
                        target: target.exp2(),
                        error_ev: m.brightness.max(1e-6).log2() - target,
                        clipped: m.clipped > CLIPPED_SHARE
                            || crate::exposure::choose(exposure, &limits)
                                .is_none_or(|(_, clip)| clip.is_some()),
                    });
                    measured.insert(slot, m.brightness);
                    seq += 1;
                    events.push((replied, seq, (Input::ShotDone { slot, outcome })));
                    seq += 1;
                    let file_at = replied + FILE_REPORTED_AFTER;
                    events.push((file_at, seq, (Input::FilesAdded(vec![path]))));
                }
                SessionAction::Measure { slot, path: _ } => {
                    let result = measured
                        .get(&slot)
                        .copied()
                        .ok_or_else(|| format!("no frame {slot}"));
                    seq += 1;
                    events.push((
                        now + THUMBNAIL_DOWNLOAD,
                        seq,
                        (Input::Measured { slot, result }),
                    ));
                }
                SessionAction::ApplySettings { changes, deadline } => {
                    // One PUT after the other; none starts after the deadline.
                    let mut t = now;
                    let mut applied = Vec::new();
                    for (key, value) in changes {
                        if t > deadline {
                            break;
                        }
                        t += SETTING_PUT;
                        match key.as_str() {
                            "tv" => settings.tv = value.clone(),
                            "iso" => settings.iso = value.clone(),
                            "av" => settings.av = value.clone(),
                            _ => {}
                        }
                        applied.push((key, value));
                    }
                    seq += 1;
                    events.push((
                        t,
                        seq,
                        (Input::SettingsApplied {
                            applied,
                            error: None,
                        }),
                    ));
                }
                SessionAction::Journal(_)
                | SessionAction::AbandonShot { .. }
                | SessionAction::Notify(_) => {}
            }
        }
        if session.is_ended() || rows.len() > frames_max {
            break;
        }
        // The next thing to happen: the session's own deadline or the camera's next answer.
        events.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
        let next_event = events.last().map(|e| e.0);
        let wake = match (session.poll_timeout(), next_event) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a
                .or(b)
                .ok_or("the session stopped with nothing to wait for")?,
        };
        now = now.max(wake);
        let now_both = Now {
            mono: now,
            wall: std::time::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(wall_of(now)).unwrap_or(0)),
        };
        if next_event.is_some_and(|t| t <= now) {
            let Some((_, _, input)) = events.pop() else {
                unreachable!("an event was due")
            };
            session.handle_input(now_both, input);
        } else {
            session.handle_timeout(now_both);
        }
    }
    rows.sort_by_key(|r| r.t_ms);
    let mut errs: Vec<f64> = rows.iter().map(|r| r.error_ev.abs()).collect();
    errs.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        errs.get(crate::intervalometer::session::percentile_index(
            errs.len().max(1),
            p,
        ))
        .copied()
        .unwrap_or(0.0)
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let summary = Summary {
        frames: rows.len(),
        p95_error_ev: round(pick(0.95)),
        max_error_ev: round(errs.last().copied().unwrap_or(0.0)),
        max_step_ev: round(max_step),
        clipped_frames: rows.iter().filter(|r| r.clipped).count(),
    };
    Ok((rows, summary))
}

/// Metering shots before the first frame, as a photographer's test shots: aim at the
/// target a few times; the settings the session starts from.
fn meter(cam: &mut Camera, plan: &Plan, start: i64, limits: &Limits) -> Result<Settings, String> {
    let opts = plan.auto;
    let alt = sun::solar_altitude_deg(start, plan.location);
    let mut exposure = 0.0;
    let mut settings = crate::exposure::choose(exposure, limits)
        .ok_or("the camera offers no settings")?
        .0;
    for _ in 0..8 {
        let (jpeg, _, _) = cam.shoot(start, &settings)?;
        let m = brightness::measure(&jpeg)?;
        let x = settings.exposure().ok_or("bad settings")?;
        let off = opts.target_log2(Some(alt)) - m.brightness.max(1e-6).log2();
        // A blown or black frame says only "far off": take a big step.
        let step = if m.clipped > 0.5 {
            -4.0
        } else {
            off.clamp(-6.0, 6.0)
        };
        exposure = x + step;
        settings = crate::exposure::choose(exposure, limits)
            .ok_or("the camera offers no settings")?
            .0;
        if step.abs() < 0.2 {
            break;
        }
    }
    Ok(settings)
}

/// The rows as CSV.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "time,sun_alt,scene_ev,tv,iso,av,exposure_ev,brightness,target,error_ev,clipped\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{:.3},{:.3},{},{},{},{:.3},{:.5},{:.5},{:.3},{}",
            crate::util::iso8601_millis(r.t_ms),
            r.sun_alt,
            r.scene_ev,
            r.tv.replace('"', "s"),
            r.iso,
            r.av,
            r.exposure,
            r.brightness,
            r.target,
            r.error_ev,
            r.clipped
        );
    }
    out
}

/// The exposure curve and the brightness error as an SVG chart.
pub fn to_svg(rows: &[Row]) -> String {
    let (w, h, pad) = (800.0, 300.0, 40.0);
    let n = rows.len().max(2) as f64 - 1.0;
    let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.exposure), b.max(r.exposure))
    });
    let span = (hi - lo).max(1.0);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let y_exp = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / span;
    let y_err = |e: f64| h / 2.0 - e.clamp(-2.0, 2.0) * (h / 2.0 - pad) / 2.0;
    let line = |f: &dyn Fn(usize, &Row) -> (f64, f64)| {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let (a, b) = f(i, r);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
<rect width=\"100%\" height=\"100%\" fill=\"#111\"/>\
<text x=\"{pad}\" y=\"20\" fill=\"#ccc\" font-size=\"12\">exposure (EV, blue, {lo:.1} to {hi:.1}) and brightness error (orange, ±2 EV)</text>\
<line x1=\"{pad}\" y1=\"{mid}\" x2=\"{r}\" y2=\"{mid}\" stroke=\"#444\"/>\
<polyline fill=\"none\" stroke=\"#4af\" stroke-width=\"1.5\" points=\"{exp}\"/>\
<polyline fill=\"none\" stroke=\"#fa4\" stroke-width=\"1\" points=\"{err}\"/></svg>",
        mid = h / 2.0,
        r = w - pad,
        exp = line(&|i, r| (x(i), y_exp(r.exposure))),
        err = line(&|i, r| (x(i), y_err(r.error_ev))),
    )
}

/// The CLI: parses `args` (after `simulate-night`), runs, prints a line per 10 minutes of the
/// plan and the JSON summary last. Exit code 2 on bad input, 1 on failure.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return 0;
    }
    let plan = match Plan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skylapse simulate-night: {e}\n{USAGE}");
            return 2;
        }
    };
    let (rows, summary) = match run(&plan) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skylapse simulate-night: {e}");
            return 1;
        }
    };
    let every = ((600.0 / plan.interval_s).round() as usize).max(1);
    for r in rows.iter().step_by(every) {
        println!(
            "{}  sun {:+6.1}°  scene EV {:+5.1}  {:>6} ISO {:>5} {}  brightness {:.3} (target {:.3}, {:+.2} EV)",
            crate::util::iso8601_millis(r.t_ms),
            r.sun_alt,
            r.scene_ev,
            r.tv,
            r.iso,
            r.av,
            r.brightness,
            r.target,
            r.error_ev
        );
    }
    for (path, body) in [(&plan.csv, to_csv(&rows)), (&plan.svg, to_svg(&rows))] {
        if let Some(p) = path {
            if let Err(e) = crate::util::atomic_write(std::path::Path::new(p), body.as_bytes()) {
                eprintln!("skylapse simulate-night: cannot write {p}: {e}");
                return 1;
            }
        }
    }
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_with_offsets_parse_and_bad_ones_do_not() {
        assert_eq!(parse_event("sunset-60"), Ok((SunEvent::Sunset, -60.0)));
        assert_eq!(parse_event("civilDusk"), Ok((SunEvent::CivilDusk, 0.0)));
        assert_eq!(parse_event("sunrise+15.5"), Ok((SunEvent::Sunrise, 15.5)));
        assert!(parse_event("dusk").is_err());
        assert!(parse_event("sunset+x").is_err());
        assert!(parse_event("sunset+900").is_err());
    }
}
