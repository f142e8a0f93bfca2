//! Sessions after their end: unsaved journals saved as reports or discarded, reports renamed
//! and deleted, and how an unsaved session is offered to clients.

use super::*;

impl IntervalometerService {
    pub(super) fn unsaved_log(&self, id: &str) -> Result<SessionLog, ApiError> {
        check_id(id)?;
        // The driver clears `running` once the journal is complete (before it announces the
        // end), so a client that saves on `session_completed` is not refused.
        if self.session_running() && lock(&self.active).as_ref().is_some_and(|a| a.id == id) {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "The session is still running; stop it first",
            ));
        }
        let path = journal::journal_path(&self.data_dir, id);
        if !path.exists() {
            return Err(ApiError::new(
                ErrorCode::SessionNotFound,
                format!("No unsaved session {id}"),
            ));
        }
        journal::read(&path).map_err(ApiError::system)
    }

    /// Journal → report → atomic write → journal removed. Emits report_saved.
    pub(super) fn save_report(&self, id: &str, title: Option<&str>) -> Result<Report, ApiError> {
        let log = self.unsaved_log(id)?;
        let title = title.map(clean_title).transpose()?;
        let report = Report::from_log(&log, title.as_deref(), unix_millis(self.clock.wall()));
        self.reports.save(&report)?;
        if let Err(e) = std::fs::remove_file(&log.path) {
            log::warn!("report {id} saved but its journal could not be removed: {e}");
        }
        self.rescan_unsaved();
        self.publish_idle_block();
        self.publisher.publish(&ReportSaved {
            report_id: id.to_string(),
            id: id.to_string(),
            session_id: id.to_string(),
            title: report.title.clone(),
            report: report.list_entry(),
        });
        Ok(report)
    }

    pub(super) async fn save_session(&self, id: &str, title: Option<&str>) -> CommandResult {
        let _g = self.ops.lock().await;
        // Saved at its end already (clients of the original still press Save): rename only.
        let report = if !self.journal_exists(id) && self.reports.exists(id) {
            match title {
                Some(t) => self.reports.rename(id, t)?,
                None => self.reports.get(id)?,
            }
        } else {
            self.save_report(id, title)?
        };
        Ok(Reply::of(&SessionSaved {
            success: true,
            session_id: id.to_string(),
            report_id: id.to_string(),
            report: report.list_entry(),
        }))
    }

    pub(super) fn journal_exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && journal::journal_path(&self.data_dir, id).exists()
    }

    pub(super) async fn discard_session(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        let report_deleted = !self.journal_exists(id) && self.reports.exists(id);
        if report_deleted {
            // The session ended and was saved at once: discarding it deletes that report.
            self.reports.delete(id)?;
            self.publisher.publish(&ReportDeletedEvent {
                report_id: id.to_string(),
                id: id.to_string(),
            });
        } else {
            let log = self.unsaved_log(id)?;
            std::fs::remove_file(&log.path)
                .map_err(|e| ApiError::system(format!("Cannot remove the session journal: {e}")))?;
        }
        self.rescan_unsaved();
        self.publish_idle_block();
        self.publisher.publish(&SessionDiscardedEvent {
            session_id: id.to_string(),
            message: "Session discarded".into(),
        });
        Ok(Reply::of(&SessionDiscarded {
            success: true,
            session_id: id.to_string(),
            report_deleted,
        }))
    }

    pub(super) async fn update_title(&self, id: &str, title: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        let r = self.reports.rename(id, title)?;
        self.publisher.publish(&ReportUpdated {
            report_id: id.to_string(),
            id: id.to_string(),
            title: r.title.clone(),
        });
        Ok(Reply::of(&ReportTitleUpdated {
            success: true,
            id: id.to_string(),
            report_id: id.to_string(),
            title: r.title.clone(),
            report: r.list_entry(),
        }))
    }

    pub(super) async fn delete_report(&self, id: &str) -> CommandResult {
        let _g = self.ops.lock().await;
        self.reports.delete(id)?;
        self.publisher.publish(&ReportDeletedEvent {
            report_id: id.to_string(),
            id: id.to_string(),
        });
        Ok(Reply::of(&ReportDeleted {
            success: true,
            id: id.to_string(),
            report_id: id.to_string(),
        }))
    }
}

pub(super) fn unsaved_info(l: &SessionLog) -> UnsavedSession {
    let ok = l.shots.iter().filter(|s| s.ok).count();
    let stop = SessionOptions::from_wire(&l.header.options)
        .map(|o| o.stop)
        .ok();
    let mut actions = vec!["save".to_string(), "discard".to_string()];
    if !l.finished() {
        actions.push("resume".into());
    }
    let (kind, error) = match &l.end {
        Some((k, r, _)) => (Some(*k), r.as_deref()),
        None => (None, None),
    };
    let reason =
        crate::intervalometer::report::end_sentence(kind, &l.header.options.stop_condition, error);
    let start = iso8601_millis(l.header.origin_wall_ms);
    let end = iso8601_millis(l.last_wall_ms());
    let taken = l.shots.len();
    UnsavedSession {
        session_id: l.header.id.clone(),
        title: l.header.title.clone(),
        start_time: start.clone(),
        end_time: end.clone(),
        status: l
            .end
            .as_ref()
            .map(|e| e.0.as_str())
            .unwrap_or("interrupted")
            .into(),
        interrupted: !l.finished(),
        can_resume: !l.finished()
            && !matches!(stop, Some(StopCondition::AfterShots(n)) if taken as u64 >= u64::from(n)),
        options: l.header.options.clone(),
        shots_taken: taken,
        shots_successful: ok,
        shots_failed: taken - ok,
        actions,
        reason: reason.clone(),
        completion_data: CompletionData {
            reason,
            completed_at: end.clone(),
            options: l.header.options.clone(),
            stats: CompletionStats {
                start_time: start,
                end_time: end,
                shots_taken: taken,
                shots_successful: ok,
                shots_failed: taken - ok,
            },
        },
    }
}
