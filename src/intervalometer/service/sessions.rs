//! Starting, stopping and resuming a session: options resolved against the camera and the
//! clocks, the journal opened, the driver spawned.

use super::*;

impl IntervalometerService {
    pub(super) async fn start_session(&self, req: &StartIntervalometer) -> CommandResult {
        let _g = self.ops.lock().await;
        if self.session_running() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "A session is already running; stop it first",
            ));
        }
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
        let title = match &req.title {
            Some(t) if !t.trim().is_empty() => clean_title(t)?,
            _ => default_title(wall_ms + i64::from(tz) * 1000),
        };
        if start_at.is_none() && !self.camera.is_connected() {
            return Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not available",
            ));
        }
        // Don't lose an earlier session: save it as a report before starting over.
        let previous: Vec<String> = lock(&self.unsaved).iter().map(|u| u.id.clone()).collect();
        for id in previous {
            if let Err(e) = self.save_report(&id, None) {
                log::warn!("could not save unsaved session {id} before a new start: {e}");
            }
        }
        let base = now + Duration::from_millis(delay_ms as u64);
        let id = self.new_id();
        let identity = self.camera.identity();
        let mut session = Session::new(
            id.clone(),
            title.clone(),
            opts.clone(),
            Start {
                now,
                wall_ms,
                tz_offset_secs: tz,
                base,
                first_slot: 0,
                origin_wall_ms,
                stop_at_wall_ms: None,
                camera_connected: self.camera.is_connected(),
                lead: self.lead,
                settings: settings_now,
            },
            &[],
        );
        let header = Header {
            v: JOURNAL_VERSION,
            id: id.clone(),
            title: title.clone(),
            options: opts.to_wire(),
            created_wall_ms: wall_ms,
            origin_wall_ms,
            stop_at_wall_ms: session.stop_at_wall_ms(),
            tz_offset_secs: tz,
            camera: identity
                .as_ref()
                .map(|i| i.serialnumber.clone())
                .filter(|s| !s.is_empty()),
            camera_info: identity,
            camera_settings: Some(self.camera.settings()).filter(|s| *s != Default::default()),
        };
        let journal = Journal::create(&self.data_dir, &header)
            .map_err(|e| ApiError::system(format!("Cannot create the session journal: {e}")))?;
        // Let the machine take its first step before the driver takes it over.
        session.handle(now, crate::intervalometer::session::Input::Tick);
        let status = session.status_block();
        let options = session.options_block();
        let active = self.spawn_driver(session, journal);
        *lock(&self.active) = Some(active);
        self.publisher.publish(&SessionStarted {
            session_id: id.clone(),
            title: title.clone(),
            interval: opts.interval.as_secs_f64(),
            options,
            start_time: iso8601_millis(origin_wall_ms),
        });
        Ok(Reply::of(&IntervalometerStart {
            success: true,
            session_id: id,
            title,
            status,
            message: "Intervalometer started".into(),
        }))
    }

    pub(super) async fn stop_session(&self) -> CommandResult {
        let control = lock(&self.active)
            .as_ref()
            .filter(|_| self.session_running())
            .map(|a| a.control.clone());
        let Some(control) = control else {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                "No active session",
            ));
        };
        let (tx, rx) = async_channel::bounded(1);
        if control.send(Msg::Stop(tx)).await.is_err() {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                "No active session",
            ));
        }
        let status = rx
            .recv()
            .await
            .unwrap_or_else(|_| IntervalometerBlock::idle());
        Ok(Reply::of(&IntervalometerStop {
            success: true,
            status,
            message: "Intervalometer stopped".into(),
        }))
    }

    pub(super) async fn resume_session(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        if self.session_running() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "A session is already running",
            ));
        }
        let log = self.unsaved_log(id)?;
        if log.finished() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "This session finished; it can be saved or discarded, not resumed",
            ));
        }
        if !self.camera.is_connected() {
            return Err(ApiError::new(
                ErrorCode::CameraOffline,
                "Camera not available",
            ));
        }
        let opts = SessionOptions::from_wire(&log.header.options)?;
        let now = self.clock.now();
        let wall_ms = unix_millis(self.clock.wall());
        let tz = self.tz_now();
        // The monotonic origin died with the process: map the grid back through wall time.
        let interval_ms = opts.interval.as_secs_f64() * 1000.0;
        let since_origin =
            (wall_ms - log.header.origin_wall_ms) as f64 + self.lead.as_millis() as f64;
        let mut first_slot = (since_origin / interval_ms).ceil().max(0.0) as u64;
        if let Some(last) = log.shots.last() {
            first_slot = first_slot.max(last.slot + 1);
        }
        let slot_wall = log.header.origin_wall_ms as f64 + first_slot as f64 * interval_ms;
        let base = now + Duration::from_secs_f64(((slot_wall - wall_ms as f64) / 1000.0).max(0.0));
        let mut journal = Journal::reopen(&log.path)
            .map_err(|e| ApiError::system(format!("Cannot reopen the session journal: {e}")))?;
        journal
            .append_resume(&ResumeLine {
                wall_ms,
                first_slot,
            })
            .map_err(|e| ApiError::system(format!("Cannot write the session journal: {e}")))?;
        let mut session = Session::new(
            id.to_string(),
            log.header.title.clone(),
            opts.clone(),
            Start {
                now,
                wall_ms,
                tz_offset_secs: tz,
                base,
                first_slot,
                origin_wall_ms: log.header.origin_wall_ms,
                stop_at_wall_ms: log.header.stop_at_wall_ms,
                camera_connected: true,
                lead: self.lead,
                settings: frame_settings(&self.camera.settings()),
            },
            &log.shots,
        );
        let skipped = first_slot - log.shots.last().map(|s| s.slot + 1).unwrap_or(0);
        session.handle(now, crate::intervalometer::session::Input::Tick);
        let status = session.status_block();
        let options = session.options_block();
        let active = self.spawn_driver(session, journal);
        *lock(&self.active) = Some(active);
        self.rescan_unsaved();
        self.publisher.publish(&SessionRecovered {
            session_id: id.to_string(),
            title: log.header.title.clone(),
            interval: opts.interval.as_secs_f64(),
            options,
            shots_before: log.shots.len(),
            slots_skipped_while_down: skipped,
        });
        Ok(Reply::of(&SessionResumed {
            success: true,
            session_id: id.to_string(),
            title: log.header.title,
            status,
        }))
    }
}
