//! The session machine at exact instants.

use super::*;
use crate::intervalometer::schedule::SessionOptions;
use crate::protocol::{ApiError, ErrorCode};

const T0_WALL: i64 = 1_641_078_000_000; // 2022-01-01T23:00:00Z

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn opts(interval_ms: u64, stop: StopCondition, overrun: OverrunPolicy) -> SessionOptions {
    SessionOptions {
        interval: ms(interval_ms),
        stop,
        overrun,
        bulb: None,
        af: false,
        exposure: None,
        ..SessionOptions::default()
    }
}

fn session(t0: Instant, o: SessionOptions) -> Session {
    Session::new(
        "s1".into(),
        "test".into(),
        o,
        Start {
            now: t0,
            wall_ms: T0_WALL,
            tz_offset_secs: 0,
            base: t0 + ms(1000),
            first_slot: 0,
            origin_wall_ms: T0_WALL + 1000,
            stop_at_wall_ms: None,
            camera_connected: true,
            lead: DEFAULT_LEAD,
            settings: FrameSettings::default(),
        },
        &[],
    )
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn shoots(actions: &[Action]) -> Vec<(u64, Instant)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Shoot { slot, due, .. } => Some((*slot, *due)),
            _ => None,
        })
        .collect()
}

fn ended(actions: &[Action]) -> Option<EndKind> {
    actions.iter().find_map(|a| match a {
        Action::Notify(Notice::Ended { kind, .. }) => Some(*kind),
        _ => None,
    })
}

fn ok(sent: Instant, replied: Instant) -> ShotOutcome {
    ShotOutcome {
        sent_at: sent,
        replied_at: replied,
        result: Ok(()),
        maybe_taken: false,
    }
}

/// Runs the machine with a camera that sends exactly on time and replies after
/// `reply(slot)`; returns the shots it fired (slot, due) until it ends or `until`.
fn run(
    s: &mut Session,
    t0: Instant,
    until: Instant,
    reply: impl Fn(u64) -> Duration,
) -> (Vec<(u64, Instant)>, Vec<Action>) {
    let mut fired = Vec::new();
    let mut all = Vec::new();
    let mut now = t0;
    s.handle(now, Input::Tick);
    loop {
        let actions = drain(s);
        let shots = shoots(&actions);
        all.extend(actions);
        if let Some(&(slot, due)) = shots.first() {
            fired.push((slot, due));
            let sent = due.max(now);
            now = sent + reply(slot);
            s.handle(
                now,
                Input::ShotDone {
                    slot,
                    outcome: ok(sent, now),
                },
            );
            continue;
        }
        match s.poll_timeout() {
            Some(t) if t <= until => {
                now = now.max(t);
                s.handle(now, Input::Tick);
            }
            _ => break,
        }
    }
    (fired, all)
}

#[test]
fn shots_fall_on_the_grid_and_are_handed_over_a_lead_time_early() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(2000, StopCondition::AfterShots(5), OverrunPolicy::NextSlot),
    );
    assert_eq!(s.poll_timeout(), Some(t0 + ms(700)));
    s.handle(t0 + ms(699), Input::Tick);
    assert!(shoots(&drain(&mut s)).is_empty());
    let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(150));
    let want: Vec<_> = (0..5).map(|n| (n, t0 + ms(1000 + 2000 * n))).collect();
    assert_eq!(fired, want);
    assert_eq!(ended(&all), Some(EndKind::Completed));
    assert_eq!(s.stats().shots_taken, 5);
    assert_eq!(s.stats().shots_skipped, 0);
}

#[test]
fn due_times_never_accumulate_reply_latency() {
    // Regression: `previous + interval` scheduling drifts by the reply time every shot.
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(
            1000,
            StopCondition::AfterShots(100),
            OverrunPolicy::NextSlot,
        ),
    );
    let (fired, _) = run(&mut s, t0, t0 + ms(1_000_000), |_| ms(333));
    assert_eq!(fired.len(), 100);
    assert_eq!(fired[99].1, t0 + ms(1000 + 99 * 1000));
}

#[test]
fn overrun_skips_missed_slots_without_a_burst() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::AfterShots(4), OverrunPolicy::NextSlot),
    );
    // Shot 1 (slot 1) takes 2.5 s: slots 2 and 3 are missed; next is slot 4.
    let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |slot| {
        if slot == 1 {
            ms(2500)
        } else {
            ms(100)
        }
    });
    let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(slots, [0, 1, 4, 5]);
    assert_eq!(fired[2].1, t0 + ms(1000 + 4000));
    assert_eq!(s.stats().shots_skipped, 2);
    let overtime = all
        .iter()
        .any(|a| matches!(a, Action::Notify(Notice::Overtime { shot: 2, .. })));
    assert!(overtime, "the 2.5 s shot in a 1 s interval is overtime");
    let rec = all.iter().find_map(|a| match a {
        Action::Journal(JournalEntry::Shot(r)) if r.slot == 4 => Some(r.clone()),
        _ => None,
    });
    assert_eq!(rec.unwrap().skipped_before, 2);
}

#[test]
fn immediately_once_fires_one_late_shot_then_returns_to_the_grid() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(
            1000,
            StopCondition::AfterShots(5),
            OverrunPolicy::ImmediatelyOnce,
        ),
    );
    let (fired, _) = run(&mut s, t0, t0 + ms(60_000), |slot| {
        if slot == 1 {
            ms(2500)
        } else {
            ms(100)
        }
    });
    // Slot 1 ends at t0+4.5 s; slot 3 (due 4.0 s) is shot late at once, slot 2 skipped;
    // then slot 4 on the grid (due 5 s).
    let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(slots, [0, 1, 3, 4, 5]);
    assert_eq!(fired[2].1, t0 + ms(1000 + 1000 + 2500));
    assert_eq!(fired[3].1, t0 + ms(5000));
    assert_eq!(s.stats().shots_skipped, 1);
}

#[test]
fn immediately_once_never_chains_late_shots() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(
            1000,
            StopCondition::AfterShots(4),
            OverrunPolicy::ImmediatelyOnce,
        ),
    );
    // Every shot takes 2.5 s: a late shot is followed by a grid shot, never another late one.
    let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(2500));
    let late: Vec<bool> = all
        .iter()
        .filter_map(|a| match a {
            Action::Journal(JournalEntry::Shot(r)) => Some(r.late),
            _ => None,
        })
        .collect();
    assert_eq!(late, [false, true, false, true]);
    assert_eq!(fired.len(), 4);
}

#[test]
fn duration_stop_excludes_the_slot_at_the_end() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(
            1000,
            StopCondition::Duration(ms(5000)),
            OverrunPolicy::NextSlot,
        ),
    );
    let (fired, all) = run(&mut s, t0, t0 + ms(60_000), |_| ms(100));
    assert_eq!(fired.len(), 5); // slots at 0..4 s; slot 5 s is the end
    assert_eq!(ended(&all), Some(EndKind::Completed));
}

#[test]
fn stop_at_crosses_midnight() {
    // Start 23:00:00Z, stop "00:00": an hour of 10-minute slots from 23:00:01.
    let t0 = crate::clock::test_t0();
    let o = opts(
        600_000,
        StopCondition::At { hour: 0, minute: 0 },
        OverrunPolicy::NextSlot,
    );
    let mut s = session(t0, o);
    assert_eq!(s.stop_at_wall_ms(), Some(T0_WALL + 3_600_000));
    let (fired, all) = run(&mut s, t0, t0 + ms(10_000_000), |_| ms(100));
    assert_eq!(fired.len(), 6); // 23:00:01, 23:10:01 … 23:50:01
    assert_eq!(ended(&all), Some(EndKind::Completed));
}

#[test]
fn stop_at_is_re_evaluated_when_the_wall_clock_steps_but_the_grid_stays() {
    let t0 = crate::clock::test_t0();
    let o = opts(
        600_000,
        StopCondition::At { hour: 0, minute: 0 },
        OverrunPolicy::NextSlot,
    );
    let mut s = session(t0, o);
    let (fired, _) = run(&mut s, t0, t0 + ms(1_300_000), |_| ms(100));
    assert_eq!(fired.len(), 3);
    // Time sync: the wall clock was 30 min slow. Now it reads 23:51:40 at mono 1_300 s.
    let now = t0 + ms(1_300_000);
    s.handle(
        now,
        Input::WallClock {
            wall_ms: T0_WALL + 1_300_000 + 1_800_000,
            tz_offset_secs: 0,
        },
    );
    // Midnight is now 500 s away on the monotonic clock: slot 3 (1_801 s) is past it.
    let (more, all) = run(&mut s, now, now + ms(10_000_000), |_| ms(100));
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(ended(&all), Some(EndKind::Completed));
    // A step the other way (clock was fast) lets the session run longer, on the same grid.
    let mut s = session(
        t0,
        opts(
            600_000,
            StopCondition::At { hour: 0, minute: 0 },
            OverrunPolicy::NextSlot,
        ),
    );
    run(&mut s, t0, t0 + ms(1_300_000), |_| ms(100));
    s.handle(
        now,
        Input::WallClock {
            wall_ms: T0_WALL + 1_300_000 - 1_800_000,
            tz_offset_secs: 0,
        },
    );
    let (more, _) = run(&mut s, now, now + ms(100_000_000), |_| ms(100));
    let dues: Vec<Instant> = more.iter().map(|f| f.1).collect();
    assert_eq!(
        dues.len(),
        6,
        "slots 3..8 fit before the corrected midnight"
    );
    assert_eq!(dues[0], t0 + ms(1000 + 3 * 600_000));
}

#[test]
fn stop_input_during_a_shot_waits_for_the_reply() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    s.handle(t0 + ms(700), Input::Tick);
    assert_eq!(shoots(&drain(&mut s)).len(), 1);
    s.handle(t0 + ms(1000), Input::Stop);
    assert_eq!(s.state_name(), "stopping");
    assert!(s.shot_in_flight());
    s.handle(
        t0 + ms(1100),
        Input::ShotDone {
            slot: 0,
            outcome: ok(t0 + ms(1000), t0 + ms(1100)),
        },
    );
    let a = drain(&mut s);
    assert_eq!(ended(&a), Some(EndKind::Stopped));
    assert_eq!(s.stats().shots_successful, 1);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Journal(JournalEntry::End { .. }))));
}

#[test]
fn bulb_shots_carry_the_exposure_and_are_due_on_the_grid() {
    let t0 = crate::clock::test_t0();
    let mut o = opts(
        60_000,
        StopCondition::AfterShots(2),
        OverrunPolicy::NextSlot,
    );
    o.bulb = Some(ms(45_000));
    let mut s = session(t0, o);
    s.handle(t0 + ms(700), Input::Tick);
    let a = drain(&mut s);
    assert!(
        matches!(
            a.as_slice(),
            [Action::Notify(Notice::Running), Action::Shoot { slot: 0, req: ShotRequest { bulb: Some(b), af: false, .. }, .. }] if *b == ms(45_000)
        ),
        "{a:?}"
    );
    // The release reply comes 45.2 s after the press; not overtime in a 60 s interval.
    s.handle(
        t0 + ms(46_200),
        Input::ShotDone {
            slot: 0,
            outcome: ok(t0 + ms(1000), t0 + ms(46_200)),
        },
    );
    let a = drain(&mut s);
    assert!(!a
        .iter()
        .any(|x| matches!(x, Action::Notify(Notice::Overtime { .. }))));
    assert_eq!(s.poll_timeout(), Some(t0 + ms(61_000) - DEFAULT_LEAD));
}

#[test]
fn camera_lost_marks_slots_failed_and_resumes_on_the_grid() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    let (fired, _) = run(&mut s, t0, t0 + ms(1800), |_| ms(100));
    assert_eq!(fired.len(), 2);
    s.handle(
        t0 + ms(2300),
        Input::CameraLost {
            reason: "health check timed out".into(),
        },
    );
    // Offline: no Shoot, the timer waits for the due time itself.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(3000)));
    let mut failed = Vec::new();
    for k in 3..6 {
        s.handle(t0 + ms(k * 1000), Input::Tick);
        for a in drain(&mut s) {
            assert!(!matches!(a, Action::Shoot { .. }));
            if let Action::Journal(JournalEntry::Shot(r)) = a {
                failed.push(r);
            }
        }
    }
    assert_eq!(failed.len(), 3);
    assert!(failed
        .iter()
        .all(|r| !r.ok && r.error.as_deref() == Some("camera offline: health check timed out")));
    // A high failure rate is announced, once; the session keeps running.
    s.handle(t0 + ms(6000), Input::Tick);
    s.handle(t0 + ms(7000), Input::Tick);
    let a = drain(&mut s);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Notify(Notice::FailureRateHigh { failed: 5, .. }))),
        "{a:?}"
    );
    assert_eq!(s.state_name(), "running");
    s.handle(t0 + ms(7500), Input::CameraConnected);
    assert_eq!(s.poll_timeout(), Some(t0 + ms(8000) - DEFAULT_LEAD));
    s.handle(t0 + ms(7700), Input::Tick);
    assert_eq!(shoots(&drain(&mut s)), [(7, t0 + ms(8000))]);
    assert_eq!(s.stats().shots_failed, 5);
    // The banner's figures: since the loss (2.3 s in), 5 frames missed, still on.
    let st = serde_json::to_value(s.status_block()).unwrap();
    assert_eq!(st["outage"]["framesMissed"], 5, "{st}");
    assert_eq!(st["outage"]["since"], iso8601_millis(T0_WALL + 2300));
    assert!(st["lastOutage"].is_null());
    // The first frame taken again ends it: "camera back", with the span.
    s.handle(
        t0 + ms(8050),
        Input::ShotDone {
            slot: 7,
            outcome: ok(t0 + ms(8000), t0 + ms(8050)),
        },
    );
    let st = serde_json::to_value(s.status_block()).unwrap();
    assert!(st["outage"].is_null(), "{st}");
    assert_eq!(st["lastOutage"]["framesMissed"], 5);
    assert_eq!(st["lastOutage"]["until"], iso8601_millis(T0_WALL + 8000));
}

#[test]
fn frames_left_counts_the_slots_before_the_end_for_every_stop_condition() {
    // Issue 14: card and battery were judged only for shot-count stops.
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(
            3000,
            StopCondition::Duration(ms(60_000)),
            OverrunPolicy::NextSlot,
        ),
    );
    s.handle(t0, Input::Tick);
    // Slots at 0, 3, … 57 s of the 60 s: 20 frames.
    assert_eq!(s.status_block().session.unwrap().frames_left, Some(20));
    s.handle(t0 + ms(700), Input::Tick);
    drain(&mut s);
    assert_eq!(s.status_block().session.unwrap().frames_left, Some(19));
    let mut s = session(
        t0,
        opts(3000, StopCondition::AfterShots(5), OverrunPolicy::NextSlot),
    );
    s.handle(t0, Input::Tick);
    assert_eq!(s.status_block().session.unwrap().frames_left, Some(5));
    let mut s = session(
        t0,
        opts(3000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    s.handle(t0, Input::Tick);
    assert!(s.status_block().session.unwrap().frames_left.is_none());
}

#[test]
fn grid_view_tells_a_test_shot_where_the_frames_are() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(3000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    s.handle(t0, Input::Tick);
    let g = s.grid_view().unwrap();
    assert_eq!(
        (g.next_due, g.previous_due, g.in_flight),
        (t0 + ms(1000), None, false)
    );
    s.handle(t0 + ms(700), Input::Tick);
    drain(&mut s);
    let g = s.grid_view().unwrap();
    assert_eq!(
        (g.next_due, g.previous_due, g.in_flight),
        (t0 + ms(4000), Some(t0 + ms(1000)), true)
    );
    s.handle(
        t0 + ms(1050),
        Input::ShotDone {
            slot: 0,
            outcome: ok(t0 + ms(1000), t0 + ms(1050)),
        },
    );
    // Answered; its file not reported yet.
    let g = s.grid_view().unwrap();
    assert!(!g.in_flight && g.awaiting_files);
    s.handle(
        t0 + ms(1200),
        Input::FilesAdded(vec![
            "/ccapi/ver110/contents/sd/100CANON/IMG_0001.JPG".into()
        ]),
    );
    assert!(!s.grid_view().unwrap().awaiting_files);
    s.handle(t0 + ms(1300), Input::Stop);
    assert_eq!(s.grid_view(), None);
}

#[test]
fn failed_shot_replies_are_recorded_with_the_camera_error() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
    );
    s.handle(t0 + ms(700), Input::Tick);
    drain(&mut s);
    let outcome = ShotOutcome {
        sent_at: t0 + ms(1001),
        replied_at: t0 + ms(1050),
        result: Err(ApiError::new(ErrorCode::CameraBusy, "Device busy")),
        maybe_taken: false,
    };
    s.handle(t0 + ms(1050), Input::ShotDone { slot: 0, outcome });
    let a = drain(&mut s);
    let r = a
        .iter()
        .find_map(|x| match x {
            Action::Notify(Notice::Shot(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("Device busy"));
    assert!((r.error_ms.unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(ended(&a), Some(EndKind::Completed));
}

#[test]
fn file_names_arrive_later_and_pair_raw_with_jpeg() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    run(&mut s, t0, t0 + ms(2800), |_| ms(100));
    s.handle(
        t0 + ms(2900),
        Input::FilesAdded(vec![
            "/ccapi/ver110/contents/card1/100CANON/IMG_0001.CR3".into(),
            "/ccapi/ver110/contents/card1/100CANON/IMG_0001.JPG".into(),
            "/ccapi/ver110/contents/card1/100CANON/IMG_0002.CR3".into(),
        ]),
    );
    let files: Vec<(u64, usize)> = drain(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Journal(JournalEntry::Files { slot, files }) => Some((slot, files.len())),
            _ => None,
        })
        .collect();
    assert_eq!(files, [(0, 2), (1, 1)]);
}

fn lost_reply(sent: Instant, replied: Instant) -> ShotOutcome {
    ShotOutcome {
        sent_at: sent,
        replied_at: replied,
        result: Err(ApiError::new(
            ErrorCode::CameraTimeout,
            "Camera did not answer in time",
        )),
        maybe_taken: true,
    }
}

fn img(n: u32) -> String {
    format!("/ccapi/ver110/contents/card1/100CANON/IMG_{n:04}.JPG")
}

/// Hands slot `slot` its outcome at `at` after the machine asked to shoot it.
fn shoot_and_answer(s: &mut Session, now: Instant, outcome: ShotOutcome) -> Vec<Action> {
    s.handle(now, Input::Tick);
    let a = drain(s);
    let (slot, _) = *shoots(&a).first().expect("a shot is due");
    s.handle(outcome.replied_at, Input::ShotDone { slot, outcome });
    drain(s)
}

#[test]
fn a_lost_reply_whose_file_then_appears_counts_as_taken() {
    // Regression (issue 14 B1): a shot whose reply timed out but whose file the camera
    // then reported was still recorded as failed, so the report undercounted the card.
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(30_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    let due = t0 + ms(1000);
    let a = shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(25_000)));
    let failed = a
        .iter()
        .find_map(|a| match a {
            Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!failed.ok);
    assert_eq!(s.stats().shots_failed, 1);
    s.handle(due + ms(26_000), Input::FilesAdded(vec![img(7)]));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::Journal(JournalEntry::Taken { slot: 0 })),
        "{a:?}"
    );
    assert!(a.contains(&Action::Journal(JournalEntry::Files {
        slot: 0,
        files: vec![img(7)]
    })));
    let taken = a
        .iter()
        .find_map(|a| match a {
            Action::Notify(Notice::Taken(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(taken.ok && taken.reply_lost && taken.error.is_none());
    assert_eq!(s.stats().shots_failed, 0);
    assert_eq!(s.stats().shots_successful, 1);
    assert_eq!(s.stats().shots_taken, 1);
}

#[test]
fn files_reported_before_a_lost_reply_make_the_shot_taken() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(30_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    let due = t0 + ms(1000);
    s.handle(due - ms(300), Input::Tick);
    assert_eq!(shoots(&drain(&mut s)).len(), 1);
    // The file shows up while the press is still waiting for its answer...
    s.handle(due + ms(21_000), Input::FilesAdded(vec![img(1)]));
    assert!(drain(&mut s).is_empty());
    // ...which never comes.
    let o = lost_reply(due, due + ms(40_000));
    s.handle(
        o.replied_at,
        Input::ShotDone {
            slot: 0,
            outcome: o,
        },
    );
    let a = drain(&mut s);
    let r = a
        .iter()
        .find_map(|a| match a {
            Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(r.ok && r.reply_lost, "{r:?}");
    assert!(a.contains(&Action::Journal(JournalEntry::Files {
        slot: 0,
        files: vec![img(1)]
    })));
    assert_eq!(s.stats().shots_successful, 1);
}

#[test]
fn a_shot_that_was_not_taken_never_claims_a_later_shots_file() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(5_000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    // Slot 0: reply lost and no file (the press never reached the camera).
    let d0 = t0 + ms(1000);
    shoot_and_answer(&mut s, d0 - ms(300), lost_reply(d0, d0 + ms(2000)));
    // Slot 1: fine; its file arrives after its reply.
    let d1 = d0 + ms(5000);
    shoot_and_answer(&mut s, d1 - ms(300), ok(d1, d1 + ms(100)));
    s.handle(d1 + ms(400), Input::FilesAdded(vec![img(2)]));
    let a = drain(&mut s);
    assert_eq!(
        a,
        vec![Action::Journal(JournalEntry::Files {
            slot: 1,
            files: vec![img(2)]
        })]
    );
    assert_eq!(s.stats().shots_failed, 1);
    assert_eq!(s.stats().shots_successful, 1);
}

#[test]
fn a_session_ending_on_a_lost_reply_waits_for_that_shots_file() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(2_000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
    );
    let due = t0 + ms(1000);
    let a = shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(500)));
    assert_eq!(ended(&a), None, "the end waits for the file: {a:?}");
    assert_eq!(s.state_name(), "stopping");
    assert_eq!(s.poll_timeout(), Some(due + ms(500) + FILE_GRACE));
    s.handle(due + ms(900), Input::FilesAdded(vec![img(1)]));
    let a = drain(&mut s);
    assert!(a.contains(&Action::Journal(JournalEntry::Taken { slot: 0 })));
    assert_eq!(ended(&a), Some(EndKind::Completed));
    assert_eq!(s.stats().shots_successful, 1);

    // No file at all: the session ends after the grace, the shot stays failed.
    let mut s = session(
        t0,
        opts(2_000, StopCondition::AfterShots(1), OverrunPolicy::NextSlot),
    );
    shoot_and_answer(&mut s, due - ms(300), lost_reply(due, due + ms(500)));
    s.handle(due + ms(500) + FILE_GRACE, Input::Tick);
    assert_eq!(ended(&drain(&mut s)), Some(EndKind::Completed));
    assert_eq!(s.stats().shots_failed, 1);
}

#[test]
fn a_long_exposure_is_not_given_up_before_the_camera_can_answer() {
    // A 30" exposure is answered after ~30 s (60 s with noise reduction): the watchdog
    // must not abandon it at the plain reply timeout.
    let t0 = crate::clock::test_t0();
    let mut o = opts(40_000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
    o.exposure = Some(30.0);
    let mut s = session(t0, o);
    let due = t0 + ms(1000);
    s.handle(due - ms(300), Input::Tick);
    let a = drain(&mut s);
    let req = a
        .iter()
        .find_map(|a| match a {
            Action::Shoot { req, .. } => Some(*req),
            _ => None,
        })
        .unwrap();
    assert_eq!(req.exposure, Some(ms(30_000)));
    let deadline = s.poll_timeout().unwrap();
    assert!(
        deadline >= due + ms(60_000) + SHOT_REPLY_TIMEOUT,
        "{:?}",
        deadline - due
    );
    s.handle(due + ms(61_000), Input::Tick);
    assert!(!drain(&mut s)
        .iter()
        .any(|a| matches!(a, Action::AbandonShot { .. })));
}

#[test]
fn resume_continues_on_the_original_grid_and_counts_downtime_as_skipped() {
    // Session origin (slot 0) at wall T; 3 shots journaled; power lost; back at T+10.5 s.
    let interval = ms(1000);
    let prior: Vec<ShotRecord> = (0..3)
        .map(|n| ShotRecord {
            slot: n,
            shot: n + 1,
            scheduled_ms: (T0_WALL + n as i64 * 1000) as f64,
            sent_ms: None,
            replied_ms: None,
            error_ms: Some(0.5),
            duration_ms: Some(100.0),
            ok: true,
            error: None,
            late: false,
            skipped_before: 0,
            files: vec![],
            reply_lost: false,
            settings: None,
            exposure_ev: None,
            light: None,
        })
        .collect();
    let now = crate::clock::test_t0();
    let wall_now = T0_WALL + 10_500;
    let first_slot = 11u64; // first slot whose wall time is ahead: T+11 s
    let base = now + ms(500);
    let mut s = Session::new(
        "s1".into(),
        "t".into(),
        opts(
            interval.as_millis() as u64,
            StopCondition::AfterShots(6),
            OverrunPolicy::NextSlot,
        ),
        Start {
            now,
            wall_ms: wall_now,
            tz_offset_secs: 0,
            base,
            first_slot,
            origin_wall_ms: T0_WALL,
            stop_at_wall_ms: None,
            camera_connected: true,
            lead: DEFAULT_LEAD,
            settings: FrameSettings::default(),
        },
        &prior,
    );
    assert_eq!(s.stats().shots_taken, 3);
    let (fired, all) = run(&mut s, now, now + ms(60_000), |_| ms(100));
    let slots: Vec<u64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(
        slots,
        [11, 12, 13],
        "stop-after 6 counts the 3 shots before the restart"
    );
    assert_eq!(fired[1].1, base + interval);
    assert_eq!(
        s.stats().shots_skipped,
        8,
        "slots 3..=10 were lost while down"
    );
    assert_eq!(ended(&all), Some(EndKind::Completed));
    let first = all
        .iter()
        .find_map(|a| match a {
            Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(first.scheduled_ms, (T0_WALL + 11_000) as f64);
}

#[test]
fn a_shot_that_never_returns_is_given_up_and_the_grid_goes_on() {
    let t0 = crate::clock::test_t0();
    // A 1 ms exposure: the watchdog is the reply timeout plus twice that.
    let mut o = opts(10_000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
    o.exposure = Some(0.001);
    let mut s = session(t0, o);
    s.handle(t0 + ms(700), Input::Tick);
    assert_eq!(shoots(&drain(&mut s)).len(), 1);
    let deadline = t0 + ms(1000) + SHOT_REPLY_TIMEOUT + ms(2);
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle(deadline - ms(1), Input::Tick);
    assert!(drain(&mut s).is_empty());
    s.handle(deadline, Input::Tick);
    let a = drain(&mut s);
    assert!(a.contains(&Action::AbandonShot { slot: 0 }), "{a:?}");
    assert_eq!(s.stats().shots_failed, 1);
    // Slots 1 and 2 (11 s, 21 s) passed meanwhile; slot 3 (31 s) is handed over now.
    assert_eq!(shoots(&a), [(3, t0 + ms(31_000))]);
    assert_eq!(
        s.stats().shots_skipped,
        0,
        "skips are attributed to the next record"
    );
    // A late reply for the abandoned shot is ignored.
    s.handle(
        t0 + ms(31_100),
        Input::ShotDone {
            slot: 0,
            outcome: ok(t0, t0),
        },
    );
    assert!(s.shot_in_flight());
}

#[test]
fn timers_waking_a_little_late_neither_skip_nor_drop_a_slot() {
    // Regression: a timer that fired 0.3 ms after the due time made the machine count the
    // slot as missed, so a camera that went dark produced skips instead of failed shots and
    // a stop-after session never ended.
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(500, StopCondition::AfterShots(3), OverrunPolicy::NextSlot),
    );
    s.handle(
        t0,
        Input::CameraLost {
            reason: "gone".into(),
        },
    );
    for k in 0..3u64 {
        s.handle(
            t0 + ms(1000 + 500 * k) + Duration::from_micros(300),
            Input::Tick,
        );
    }
    let a = drain(&mut s);
    let failed = a
        .iter()
        .filter(|x| matches!(x, Action::Journal(JournalEntry::Shot(r)) if !r.ok))
        .count();
    assert_eq!(failed, 3);
    assert_eq!(ended(&a), Some(EndKind::Completed));
    assert_eq!(s.stats().shots_skipped, 0);
    // Connected: a tick 5 ms past the due time (lead time lost to a stall) still shoots it.
    let mut s = session(
        t0,
        opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    s.handle(t0 + ms(1005), Input::Tick);
    assert_eq!(shoots(&drain(&mut s)), [(0, t0 + ms(1000))]);
}

#[test]
fn scheduled_start_can_be_stopped_before_it_begins() {
    let t0 = crate::clock::test_t0();
    let mut s = session(
        t0,
        opts(1000, StopCondition::Unlimited, OverrunPolicy::NextSlot),
    );
    assert_eq!(s.state_name(), "scheduled");
    s.handle(t0 + ms(100), Input::Stop);
    assert_eq!(ended(&drain(&mut s)), Some(EndKind::Stopped));
    assert_eq!(s.poll_timeout(), None);
}

/// A ramp 1/125 → 1/8 over the first 8 s of a 2 s session (frames due at T0+1 s …).
fn ramped(t0: Instant) -> Session {
    let ladders = crate::intervalometer::schedule::Ladders {
        tv: [
            "1/125", "1/100", "1/80", "1/60", "1/50", "1/40", "1/30", "1/25", "1/20", "1/15",
            "1/13", "1/10", "1/8",
        ]
        .map(String::from)
        .to_vec(),
        iso: vec!["100".into()],
        av: vec!["f8.0".into()],
    };
    let key = |s: f64, tv: &str| crate::protocol::KeyframeSpec {
        at: None,
        elapsed_seconds: Some(s),
        tv: Some(tv.into()),
        iso: None,
        av: None,
        interval: None,
        at_ms: None,
    };
    let plan = crate::intervalometer::schedule::RampPlan::build(
        &[key(0.0, "1/125"), key(8.0, "1/8")],
        T0_WALL + 1000,
        0,
        None,
        ladders,
        1.0,
    )
    .unwrap();
    let mut o = opts(2000, StopCondition::Unlimited, OverrunPolicy::NextSlot);
    o.ramp = Some(plan);
    let mut s = session(t0, o);
    s.known = FrameSettings {
        tv: Some("1/125".into()),
        iso: Some("100".into()),
        av: Some("f8.0".into()),
    };
    s
}

fn changes(actions: &[Action]) -> Vec<(Vec<(String, String)>, Instant)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ApplySettings { changes, deadline } => Some((changes.clone(), *deadline)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_ramp_changes_settings_in_the_gap_with_a_deadline_and_never_holds_a_frame() {
    let t0 = crate::clock::test_t0();
    let mut s = ramped(t0);
    // First frame (T0+1 s): the camera already has 1/125; it is handed over on time.
    s.handle(t0 + ms(700), Input::Tick);
    let a = drain(&mut s);
    assert!(changes(&a).is_empty());
    assert_eq!(shoots(&a), vec![(0, t0 + ms(1000))]);
    // Its reply at +1.1 s: the change for the frame at +3 s (2 s into the ramp: 1/125
    // + 1 stop = 1/60) goes out now, to be started no later than 3 s − lead − budget.
    s.handle(
        t0 + ms(1100),
        Input::ShotDone {
            slot: 0,
            outcome: ok(t0 + ms(1000), t0 + ms(1100)),
        },
    );
    let a = drain(&mut s);
    let c = changes(&a);
    assert_eq!(c.len(), 1, "{a:?}");
    assert_eq!(c[0].0, vec![("tv".to_string(), "1/60".to_string())]);
    assert_eq!(c[0].1, t0 + ms(3000) - DEFAULT_LEAD - RAMP_BUDGET);
    // The frame record carries the settings it was shot with and their exposure.
    let rec = a.iter().find_map(|x| match x {
        Action::Journal(JournalEntry::Shot(r)) => Some(r.clone()),
        _ => None,
    });
    let rec = rec.unwrap();
    assert_eq!(rec.settings.as_ref().unwrap().tv.as_deref(), Some("1/125"));
    assert!((rec.exposure_ev.unwrap() - (-13.0)).abs() < 1e-9);
    // No second change while one is with the camera; the frame is handed over on time
    // whether or not the change came back.
    s.handle(t0 + ms(2700), Input::Tick);
    let a = drain(&mut s);
    assert!(changes(&a).is_empty());
    assert_eq!(shoots(&a), vec![(1, t0 + ms(3000))]);
    // The change came back after all: known settings follow it.
    s.handle(
        t0 + ms(2800),
        Input::SettingsApplied {
            applied: vec![("tv".into(), "1/60".into())],
            error: None,
        },
    );
    assert_eq!(s.known.tv.as_deref(), Some("1/60"));
    // A reply so late that no time is left before the next frame: the change is
    // deferred (counted), never sent late.
    s.handle(
        t0 + ms(4100),
        Input::ShotDone {
            slot: 1,
            outcome: ok(t0 + ms(3000), t0 + ms(4100)),
        },
    );
    let a = drain(&mut s);
    assert!(changes(&a).is_empty(), "{a:?}");
    assert_eq!(s.ramp_deferred, 1);
    s.handle(t0 + ms(4700), Input::Tick);
    let a = drain(&mut s);
    assert!(changes(&a).is_empty(), "{a:?}");
    assert_eq!(shoots(&a), vec![(2, t0 + ms(5000))]);
}
