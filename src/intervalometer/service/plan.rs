//! `plan_session`: what a start with this payload would do, nothing started. The planning
//! part of a start ([`IntervalometerService::plan_start`]) is shared with
//! `start_intervalometer`, so the preview is the session's own plan.

use super::*;
use crate::protocol::messages::{PlanPoint, SessionPlan};

/// Most points a `plan_session` curve has.
const PLAN_POINTS: usize = 500;
/// How far a plan of a session without an end is drawn.
const PLAN_HORIZON_SECS: f64 = 12.0 * 3600.0;

/// What [`IntervalometerService::plan_start`] decided.
pub(super) struct Planned {
    pub opts: SessionOptions,
    pub start: Start,
    /// The resolved `startAt` (Unix ms).
    pub start_at: Option<i64>,
    pub loc: Option<crate::sun::Location>,
}

impl IntervalometerService {
    /// Everything a start decides before it starts: the resolved start and stop, the options
    /// with their ramp, the camera's settings now and the machine as it would begin.
    pub(super) async fn plan_start(&self, req: &StartIntervalometer) -> Result<Planned, ApiError> {
        let now = self.clock.now();
        let wall_ms = unix_millis(self.clock.wall());
        let tz = self.tz_now();
        let loc = self.location.get().and_then(|l| l.location());
        let start_at = match &req.start_at {
            Some(s) => Some(resolve_start_at(s, wall_ms, tz, loc)?),
            None => None,
        };
        // First slot a lead time ahead (or at startAt) so the camera link can warm up; a ramp
        // also needs the time to set the first frame's values.
        let warm_up = if req.keyframes.is_some() || req.auto_ramp.is_some() {
            self.lead + crate::intervalometer::session::RAMP_BUDGET + Duration::from_secs(1)
        } else {
            self.lead
        };
        let delay_ms = start_at
            .map(|at| (at - wall_ms).max(0))
            .unwrap_or(0)
            .max(warm_up.as_millis() as i64);
        let origin_wall_ms = wall_ms + delay_ms;
        let stop_at_ms = match &req.stop_at {
            Some(s) => resolve_stop_at(s, origin_wall_ms, loc)?,
            None => None,
        };
        let mut opts = SessionOptions::from_request(req, stop_at_ms)?;
        let mut settings_now = frame_settings(&self.camera.settings());
        if req.keyframes.is_some() && req.auto_ramp.is_some() {
            return Err(ApiError::invalid("Give keyframes or autoRamp, not both"));
        }
        if req.keyframes.is_some() || req.auto_ramp.is_some() {
            // The ramp picks from the values the camera offers, read now.
            if !self.camera.is_connected() {
                return Err(ApiError::new(
                    ErrorCode::CameraOffline,
                    "A ramp needs the camera connected at the start (to read the values it offers)",
                ));
            }
            let v = self.camera.shooting_settings().await.map_err(|e| {
                ApiError::new(
                    e.code,
                    format!(
                        "Cannot read the camera's settings for the ramp: {}",
                        e.message
                    ),
                )
            })?;
            let max_tv = opts.interval.as_secs_f64() - CAMERA_WRITE_MARGIN_SECS;
            if max_tv <= 0.0 {
                return Err(ApiError::invalid(format!(
                    "A ramp needs an interval over {CAMERA_WRITE_MARGIN_SECS} s (the camera's write time)"
                )));
            }
            let ladders = Ladders::from_abilities(&v, max_tv);
            if let Some(specs) = &req.keyframes {
                let plan = RampPlan::build(specs, origin_wall_ms, tz, loc, ladders, max_tv)?;
                // Reply timeouts and the interval check follow the ramp's longest exposure.
                opts.exposure = match (plan.max_tv_secs(), opts.exposure) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                opts.ramp = Some(plan);
            } else if let Some(spec) = &req.auto_ramp {
                let loc = loc.ok_or_else(|| {
                    let e = crate::location::no_location();
                    ApiError::new(e.code, format!("autoRamp follows the sun: {}", e.message))
                })?;
                let av = v["av"]["value"].as_str().unwrap_or_default().to_string();
                let plan = AutoPlan::build(spec, loc, av, ladders)?;
                // The longest exposure it may choose.
                opts.exposure = Some(max_tv);
                opts.auto = Some(plan);
            }
            settings_now = FrameSettings {
                tv: v["tv"]["value"].as_str().map(str::to_string),
                iso: v["iso"]["value"].as_str().map(str::to_string),
                av: v["av"]["value"].as_str().map(str::to_string),
            };
        }
        // The interval is checked against the camera's current Tv when the client did not
        // announce an exposure (a 10 s interval at 20" cannot work, whatever the client knew).
        if opts.exposure.is_none() && opts.bulb.is_none() {
            opts.exposure = self
                .camera
                .settings()
                .exposure_time()
                .map(|d| d.as_secs_f64());
        }
        let check = validate_interval(opts.interval.as_secs_f64(), opts.exposure);
        if !check.valid {
            return Err(
                ApiError::new(ErrorCode::ValidationFailed, check.warnings.join("; "))
                    .with_details(ErrorDetails::Interval(check)),
            );
        }
        let start = Start {
            now,
            wall_ms,
            tz_offset_secs: tz,
            base: now + Duration::from_millis(delay_ms as u64),
            first_slot: 0,
            origin_wall_ms,
            stop_at_wall_ms: None,
            camera_connected: self.camera.is_connected(),
            lead: self.lead,
            settings: settings_now,
        };
        Ok(Planned {
            opts,
            start,
            start_at,
            loc,
        })
    }

    /// `plan_session`: the plan of a start with this payload, nothing started. The machine is
    /// built as the start builds it; its status block gives the frames and the end, and the
    /// ramp's own `target` gives each planned frame's settings.
    pub(super) async fn plan_session(&self, req: &StartIntervalometer) -> CommandResult {
        let p = self.plan_start(req).await?;
        let settings_now = p.start.settings.clone();
        let session = Session::new("plan".into(), String::new(), p.opts.clone(), p.start, &[]);
        let block = session.status_block().session;
        let frames = block.as_ref().and_then(|b| b.frames_left);
        let end_ms = block
            .as_ref()
            .and_then(|b| b.estimated_end_time.as_deref())
            .and_then(crate::util::parse_iso8601);
        let interval_ms = p.opts.interval.as_secs_f64() * 1000.0;
        let first_ms = session.wall_ms_of(session.due(0)).round() as i64;
        // Until stopped: the curve covers the first hours.
        let (count, horizon) = match frames {
            Some(n) => (n, None),
            None => {
                let n = (PLAN_HORIZON_SECS * 1000.0 / interval_ms).ceil().max(1.0) as u64;
                (n, Some(PLAN_HORIZON_SECS))
            }
        };
        let every = count.div_ceil(PLAN_POINTS as u64).max(1);
        let mut idx: Vec<u64> = (0..count).step_by(every as usize).collect();
        if count > 0 && idx.last() != Some(&(count - 1)) {
            idx.push(count - 1);
        }
        let auto_opts = p.opts.auto.as_ref().map(|a| a.options());
        let points = idx
            .into_iter()
            .map(|k| {
                let t_ms = session.wall_ms_of(session.due(k)).round() as i64;
                let alt = p.loc.map(|l| crate::sun::solar_altitude_deg(t_ms, l));
                let planned = p.opts.ramp.as_ref().map(|r| {
                    // The camera keeps what a keyframe does not set.
                    let mut s = settings_now.clone();
                    s.apply(&settings_now.changes_to(&r.target(t_ms)));
                    s
                });
                PlanPoint {
                    frame: k,
                    time: iso8601_millis(t_ms),
                    exposure_ev: planned.as_ref().and_then(FrameSettings::exposure_ev),
                    tv: planned.as_ref().and_then(|s| s.tv.clone()),
                    iso: planned.as_ref().and_then(|s| s.iso.clone()),
                    av: planned.and_then(|s| s.av),
                    target_brightness: auto_opts
                        .zip(alt)
                        .map(|(o, a)| o.target_log2(Some(a)).exp2()),
                    sun_altitude: alt,
                }
            })
            .collect();
        let last_ms = frames
            .filter(|n| *n > 0)
            .map(|n| first_ms + ((n - 1) as f64 * interval_ms).round() as i64);
        Ok(Reply::of(&SessionPlan {
            interval: p.opts.interval.as_secs_f64(),
            start_time: iso8601_millis(first_ms),
            stop_time: session
                .stop_at_wall_ms()
                .or(end_ms.filter(|_| matches!(p.opts.stop, StopCondition::Duration(_))))
                .map(iso8601_millis),
            end_time: last_ms.map(iso8601_millis),
            frames,
            duration_seconds: last_ms.map(|l| (l - first_ms) as f64 / 1000.0),
            ramp: if p.opts.ramp.is_some() {
                Some("keyframes".into())
            } else if p.opts.auto.is_some() {
                Some("auto".into())
            } else {
                None
            },
            keyframes: p
                .opts
                .ramp
                .as_ref()
                .map(|r| r.keyframes.clone())
                .unwrap_or_default(),
            sample_every: every,
            horizon_seconds: horizon,
            points,
            location_known: p.loc.is_some(),
        }))
    }
}
