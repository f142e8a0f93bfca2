//! Power and thermal: decoding on fixture sysfs trees, edge-triggered warnings with hysteresis,
//! the shots/time-left estimate, and the service on a ManualClock.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use skylapse::app::{Origin, Outbound, Publisher, Service, StatusBoard};
use skylapse::clock::ManualClock;
use skylapse::power::advice::{Change, Thresholds};
use skylapse::power::sampler::{sample, Supply};
use skylapse::power::{
    estimate, EstimateInputs, PowerConfig, PowerSample, PowerService, ThrottleCommand, Throttled,
    Warning, WarningTracker,
};
use skylapse::protocol::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/power")
        .join(name)
}

/// A `vcgencmd` stand-in that counts its calls.
struct FakeVcgencmd {
    output: Option<&'static str>,
    calls: AtomicUsize,
}

impl FakeVcgencmd {
    fn new(output: Option<&'static str>) -> Arc<FakeVcgencmd> {
        Arc::new(FakeVcgencmd {
            output,
            calls: AtomicUsize::new(0),
        })
    }
}

impl ThrottleCommand for FakeVcgencmd {
    fn get_throttled(&self) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.output.map(str::to_string)
    }
}

#[test]
fn pi4_healthy() {
    let cmd = FakeVcgencmd::new(Some("throttled=0x50005"));
    let s = sample(&fixture("pi4-healthy"), cmd.as_ref());
    assert!(s.is_raspberry_pi);
    assert_eq!(s.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
    assert_eq!(s.throttled, Some(Throttled(0)));
    assert_eq!(s.throttled_source, Some("sysfs"));
    // sysfs had the word: vcgencmd is not run.
    assert_eq!(cmd.calls.load(Ordering::SeqCst), 0);
    assert_eq!(s.temperature_c, Some(48.312));
    assert_eq!(s.uptime_secs, Some(86_400.52));
    assert!(s.supplies.is_empty());
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let mut t = WarningTracker::default();
    assert!(t.update(&s, None).is_empty());
    assert!(t.recommendations().is_empty());
}

#[test]
fn pi_zero_2w_under_voltage_throttled_hot_on_a_low_ups_hat() {
    let s = sample(
        &fixture("pi-zero2w-undervoltage"),
        &*FakeVcgencmd::new(None),
    );
    assert!(s.is_raspberry_pi);
    let th = s.throttled.unwrap();
    assert!(th.now().under_voltage && th.now().throttled);
    assert!(th.since_boot().under_voltage && th.since_boot().throttled);
    let j = serde_json::to_value(th.block()).unwrap();
    assert_eq!(j["raw"], "0x50005");
    assert_eq!(j["current"]["underVoltage"], true);
    assert_eq!(j["sinceBoot"]["armFrequencyCapped"], false);
    assert_eq!(s.temperature_c, Some(82.5));
    let b = s.battery().unwrap();
    assert_eq!(b.name, "ups-hat");
    assert_eq!(b.capacity, Some(15.0));
    assert_eq!(b.status.as_deref(), Some("Discharging"));
    assert_eq!(b.voltage_v, Some(3.65));
    assert_eq!(b.current_a, Some(-0.45));

    let mut t = WarningTracker::default();
    assert_eq!(
        t.update(&s, None),
        vec![
            Change::Started(Warning::UnderVoltage),
            Change::Started(Warning::Throttled),
            Change::Started(Warning::HighTemperature),
            Change::Started(Warning::LowPiBattery),
        ]
    );
    // Edge-triggered: the same state again announces nothing.
    assert!(t.update(&s, None).is_empty());
    assert_eq!(t.recommendations().len(), 4);
}

#[test]
fn laptop_with_a_battery_is_not_a_pi_and_never_runs_vcgencmd() {
    let cmd = FakeVcgencmd::new(Some("throttled=0x0"));
    let s = sample(&fixture("laptop-battery"), cmd.as_ref());
    assert!(!s.is_raspberry_pi);
    assert_eq!(s.model, None);
    assert_eq!(s.throttled, None);
    assert_eq!(cmd.calls.load(Ordering::SeqCst), 0);
    let names: Vec<&str> = s.supplies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["AC", "BAT0"]);
    assert_eq!(s.supplies[0].online, Some(false));
    assert!(!s.supplies[0].is_battery());
    let b = s.battery().unwrap();
    assert_eq!(
        (b.capacity, b.voltage_v, b.current_a),
        (Some(87.0), Some(12.1), Some(1.2))
    );
    assert_eq!(s.temperature_c, Some(55.0));
}

#[test]
fn another_board_is_not_a_pi() {
    let cmd = FakeVcgencmd::new(Some("throttled=0x0"));
    let s = sample(&fixture("no-pi"), cmd.as_ref());
    assert!(!s.is_raspberry_pi);
    assert_eq!(s.model.as_deref(), Some("Pine64 RockPro64 v2.1"));
    assert_eq!(cmd.calls.load(Ordering::SeqCst), 0);
    assert_eq!((s.temperature_c, s.throttled), (None, None));
    assert_eq!(s.uptime_secs, Some(100.0));
    // A root with nothing at all.
    let empty = sample(Path::new("/nonexistent/skylapse"), cmd.as_ref());
    assert_eq!(empty, PowerSample::default());
}

#[test]
fn an_older_pi_falls_back_to_vcgencmd() {
    let cmd = FakeVcgencmd::new(Some("throttled=0x20002\n"));
    let s = sample(&fixture("pi3-vcgencmd"), cmd.as_ref());
    assert!(s.is_raspberry_pi);
    assert_eq!(cmd.calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.throttled_source, Some("vcgencmd"));
    let th = s.throttled.unwrap();
    assert!(th.now().arm_frequency_capped && th.since_boot().arm_frequency_capped);
    assert!(!th.now().under_voltage);
    let bad = sample(
        &fixture("pi3-vcgencmd"),
        &*FakeVcgencmd::new(Some("error=1")),
    );
    assert_eq!(bad.throttled, None);
    assert!(bad.problems.iter().any(|p| p.contains("vcgencmd")));
    let none = sample(&fixture("pi3-vcgencmd"), &*FakeVcgencmd::new(None));
    assert_eq!(none.throttled, None);
}

#[test]
fn garbage_files_are_noted_and_ignored() {
    let s = sample(&fixture("garbage"), &*FakeVcgencmd::new(None));
    assert_eq!(s.model, None); // not text
    assert!(!s.is_raspberry_pi);
    assert_eq!(
        (s.throttled, s.temperature_c, s.uptime_secs),
        (None, None, None)
    );
    let b = s.battery().unwrap();
    assert_eq!((b.capacity, b.voltage_v, b.current_a), (None, None, None));
    for file in [
        "model",
        "get_throttled",
        "temp",
        "uptime",
        "capacity",
        "voltage_now",
        "current_now",
    ] {
        assert!(
            s.problems.iter().any(|p| p.contains(file)),
            "{file} not noted in {:?}",
            s.problems
        );
    }
    // Problems never echo more than a short, printable excerpt.
    assert!(s.problems.iter().all(|p| p.len() < 120), "{:?}", s.problems);
}

fn with_temp(t: f64) -> PowerSample {
    PowerSample {
        temperature_c: Some(t),
        ..PowerSample::default()
    }
}

#[test]
fn warnings_have_hysteresis_and_fire_once_per_edge() {
    let mut t = WarningTracker::new(Thresholds::default());
    assert!(t.update(&with_temp(79.9), None).is_empty());
    assert_eq!(
        t.update(&with_temp(80.0), None),
        vec![Change::Started(Warning::HighTemperature)]
    );
    assert!(t.update(&with_temp(81.0), None).is_empty());
    // Cooling to 77 °C is not enough to clear (clears below 75).
    assert!(t.update(&with_temp(77.0), None).is_empty());
    assert_eq!(
        t.update(&with_temp(74.0), None),
        vec![Change::Cleared(Warning::HighTemperature)]
    );

    // A charging Pi battery is not "low".
    let mut charging = PowerSample::default();
    charging.supplies.push(Supply {
        name: "BAT0".into(),
        kind: "Battery".into(),
        capacity: Some(10.0),
        status: Some("Charging".into()),
        voltage_v: None,
        current_a: None,
        online: None,
    });
    assert!(t.update(&charging, None).is_empty());
    charging.supplies[0].status = Some("Discharging".into());
    assert_eq!(
        t.update(&charging, None),
        vec![Change::Started(Warning::LowPiBattery)]
    );

    // Session figures: camera battery and card.
    let mut t = WarningTracker::default();
    let mut i = EstimateInputs {
        camera_battery_percent: Some(22.0),
        shots_per_percent: Some(30.0),
        free_bytes: 3_000_000_000,
        bytes_per_shot: 25_000_000, // 120 shots of card left
        interval: Duration::from_secs(10),
    };
    let s = PowerSample::default();
    assert!(t.update(&s, Some(&i)).is_empty());
    i.camera_battery_percent = Some(20.0);
    i.free_bytes = 2_500_000_000; // 100 shots
    assert_eq!(
        t.update(&s, Some(&i)),
        vec![
            Change::Started(Warning::LowCameraBattery),
            Change::Started(Warning::CardNearlyFull)
        ]
    );
    // A fresh camera battery clears its warning; the card stays nearly full.
    i.camera_battery_percent = Some(100.0);
    assert_eq!(
        t.update(&s, Some(&i)),
        vec![Change::Cleared(Warning::LowCameraBattery)]
    );
    // The session ends: its warnings end with it.
    assert_eq!(
        t.update(&s, None),
        vec![Change::Cleared(Warning::CardNearlyFull)]
    );
}

#[test]
fn estimate_takes_whichever_runs_out_first() {
    let base = EstimateInputs {
        camera_battery_percent: Some(50.0),
        shots_per_percent: Some(40.0), // 2000 shots of battery
        free_bytes: 60_000_000_000,
        bytes_per_shot: 30_000_000, // 2000 shots of card... plus rounding below
        interval: Duration::from_secs(15),
    };
    let e = estimate(&EstimateInputs {
        free_bytes: 45_000_000_000, // 1500 shots
        ..base
    });
    assert_eq!(
        (
            e.shots_by_battery,
            e.shots_by_card,
            e.shots_left,
            e.limited_by
        ),
        (Some(2000), Some(1500), Some(1500), Some("card"))
    );
    assert_eq!(e.time_left, Some(Duration::from_secs(1500 * 15)));
    let e = estimate(&EstimateInputs {
        camera_battery_percent: Some(10.0), // 400 shots
        ..base
    });
    assert_eq!((e.shots_left, e.limited_by), (Some(400), Some("battery")));
    assert_eq!(e.time_left, Some(Duration::from_secs(6000)));
    // Unknown drain rate: the card alone decides.
    let e = estimate(&EstimateInputs {
        shots_per_percent: None,
        ..base
    });
    assert_eq!((e.shots_by_battery, e.limited_by), (None, Some("card")));
    // Nothing known: no figures rather than made-up ones.
    let e = estimate(&EstimateInputs {
        camera_battery_percent: None,
        bytes_per_shot: 0,
        ..base
    });
    assert_eq!((e.shots_left, e.time_left), (None, None));
    let j = serde_json::to_value(estimate(&base).block()).unwrap();
    assert_eq!(j["shotsLeft"], 2000);
    assert_eq!(j["timeLeftSeconds"], 30_000);
}

/// Copies a fixture tree to a fresh temp directory the test may change.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

async fn next_event(rx: &async_channel::Receiver<Outbound>, kind: &str) -> Value {
    let wait = async {
        loop {
            if let Outbound::Event(e) = rx.recv().await.expect("hub channel open") {
                if e.event_type() == kind {
                    return e.data;
                }
            }
        }
    };
    let guard = async {
        async_io::Timer::after(Duration::from_secs(10)).await;
        panic!("no {kind} within 10 s");
    };
    futures_lite::future::or(wait, guard).await
}

#[test]
fn service_samples_on_its_interval_and_announces_warnings() {
    smol::block_on(async {
        let root = std::env::temp_dir().join(format!("skylapse-power-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        copy_tree(&fixture("pi4-healthy"), &root);
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_820_400));
        let (publisher, rx) = Publisher::channel();
        let status = StatusBoard::new(publisher.clone());
        let svc = PowerService::start_with_command(
            Arc::new(clock.clone()),
            status.clone(),
            publisher,
            PowerConfig {
                root: root.clone(),
                ..PowerConfig::default()
            },
            FakeVcgencmd::new(None),
        );
        let r = svc
            .handle(Origin::Rest, &Command::GetPowerStatus)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(r.kind, "power_status");
        assert_eq!(r.data["isRaspberryPi"], true);
        assert_eq!(r.data["thermal"]["temperature"], 48.3);
        assert_eq!(r.data["thermal"]["unit"], "C");
        assert_eq!(r.data["throttled"]["current"]["underVoltage"], false);
        assert_eq!(r.data["uptime"], 86_400);
        assert_eq!(r.data["battery"]["present"], false);
        assert_eq!(r.data["recommendations"].as_array().unwrap().len(), 0);
        assert_eq!(status.get("power")["isRaspberryPi"], true);

        // The supply sags; the next 30 s sample sees it and says so once.
        std::fs::write(
            root.join("sys/devices/platform/soc/soc:firmware/get_throttled"),
            "50005\n",
        )
        .unwrap();
        clock.advance(Duration::from_secs(30));
        let ev = next_event(&rx, "power_warning").await;
        assert_eq!(ev["kind"], "under-voltage");
        assert_eq!(ev["severity"], "critical");
        let ev = next_event(&rx, "power_warning").await;
        assert_eq!(ev["kind"], "throttled");
        let p = status.get("power");
        assert_eq!(p["recommendations"].as_array().unwrap().len(), 2);
        assert_eq!(p["throttled"]["source"], "sysfs");

        // The lead hands over session figures: the camera battery warning is immediate.
        svc.set_session_inputs(Some(EstimateInputs {
            camera_battery_percent: Some(12.0),
            shots_per_percent: Some(20.0),
            free_bytes: 10_000_000_000,
            bytes_per_shot: 25_000_000,
            interval: Duration::from_secs(20),
        }));
        let ev = next_event(&rx, "power_warning").await;
        assert_eq!(ev["kind"], "low-camera-battery");
        let p = status.get("power");
        assert_eq!(p["estimate"]["shotsLeft"], 240);
        assert_eq!(p["estimate"]["limitedBy"], "battery");
        assert_eq!(p["estimate"]["timeLeftSeconds"], 4800);

        // Power restored: cleared, once.
        std::fs::write(
            root.join("sys/devices/platform/soc/soc:firmware/get_throttled"),
            "50000\n",
        )
        .unwrap();
        clock.advance(Duration::from_secs(30));
        let ev = next_event(&rx, "power_warning_cleared").await;
        assert_eq!(ev["kind"], "under-voltage");
        svc.shutdown().await;
        let _ = std::fs::remove_dir_all(&root);
    });
}
