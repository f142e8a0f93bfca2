//! Starting, stopping and resuming a session: options resolved against the camera and the
//! clocks, the journal opened, the driver spawned.

use super::plan::Planned;
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
        let Planned {
            opts,
            start,
            start_at,
            ..
        } = self.plan_start(req).await?;
        let (wall_ms, tz) = (start.wall_ms, start.tz_offset_secs);
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
        let id = self.new_id();
        let identity = self.camera.identity();
        let (now, origin_wall_ms) = (start.now, start.origin_wall_ms);
        let mut session = Session::new(id.clone(), title.clone(), opts.clone(), start, &[]);
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
