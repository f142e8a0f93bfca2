//! One power/thermal sample from a sysfs/procfs root (`/` on the Pi, a fixture tree in tests).
//!
//! Every file is optional and small; a missing file is simply absent from the sample, a file
//! with garbage in it is noted in `problems` and ignored. Nothing here panics on what the
//! kernel (or a fixture) says.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::throttled::Throttled;

#[derive(Debug, Clone)]
pub struct PowerConfig {
    /// Root under which `proc/` and `sys/` are read.
    pub root: PathBuf,
    /// How often the service samples (cheap reads; 30 s keeps the Pi asleep).
    pub sample_interval: Duration,
    /// Run `vcgencmd get_throttled` when the sysfs file is missing (only on a Pi).
    pub vcgencmd: bool,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            root: PathBuf::from("/"),
            sample_interval: Duration::from_secs(30),
            vcgencmd: true,
        }
    }
}

/// The `vcgencmd get_throttled` fallback, behind a trait so tests can feed its output.
pub trait ThrottleCommand: Send + Sync {
    /// The command's stdout, or `None` if it is not available.
    fn get_throttled(&self) -> Option<String>;

    /// Whether asking may block (it runs a process): then samples are taken off the
    /// executor, on a short-lived thread.
    fn may_block(&self) -> bool {
        true
    }
}

/// Runs `/usr/bin/vcgencmd get_throttled`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vcgencmd;

impl ThrottleCommand for Vcgencmd {
    fn get_throttled(&self) -> Option<String> {
        let out = std::process::Command::new("vcgencmd")
            .arg("get_throttled")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() || out.stdout.len() > 256 {
            return None;
        }
        String::from_utf8(out.stdout).ok()
    }
}

/// No fallback command.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoThrottleCommand;

impl ThrottleCommand for NoThrottleCommand {
    fn get_throttled(&self) -> Option<String> {
        None
    }

    fn may_block(&self) -> bool {
        false
    }
}

/// A battery, UPS HAT or mains supply from `/sys/class/power_supply/<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Supply {
    pub name: String,
    /// `Battery`, `UPS`, `Mains`, `USB`, …
    pub kind: String,
    /// Percent, 0–100.
    pub capacity: Option<f64>,
    /// `Charging`, `Discharging`, `Full`, `Not charging`, …
    pub status: Option<String>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub online: Option<bool>,
}

impl Supply {
    pub fn is_battery(&self) -> bool {
        matches!(self.kind.as_str(), "Battery" | "UPS")
    }

    pub fn block(&self) -> crate::protocol::status::SupplyBlock {
        crate::protocol::status::SupplyBlock {
            name: self.name.clone(),
            kind: self.kind.clone(),
            capacity: self.capacity,
            status: self.status.clone(),
            voltage: self.voltage_v,
            current: self.current_a,
            online: self.online,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerSample {
    pub is_raspberry_pi: bool,
    pub model: Option<String>,
    pub throttled: Option<Throttled>,
    /// `"sysfs"` or `"vcgencmd"`.
    pub throttled_source: Option<&'static str>,
    pub temperature_c: Option<f64>,
    pub supplies: Vec<Supply>,
    pub uptime_secs: Option<f64>,
    /// Files that were present but unreadable or nonsensical.
    pub problems: Vec<String>,
}

impl PowerSample {
    /// The first battery or UPS.
    pub fn battery(&self) -> Option<&Supply> {
        self.supplies.iter().find(|s| s.is_battery())
    }
}

/// Reads at most 4 KiB of a file as trimmed text (sysfs values are tiny; a huge file is wrong).
fn read_small(path: &Path) -> Option<Result<String, String>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut buf = Vec::with_capacity(64);
    if let Err(e) = f.take(4096).read_to_end(&mut buf) {
        return Some(Err(e.to_string()));
    }
    match String::from_utf8(buf) {
        Ok(s) => Some(Ok(s
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string())),
        Err(_) => Some(Err("not text".into())),
    }
}

struct Reader<'a> {
    root: &'a Path,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn text(&mut self, rel: &str) -> Option<String> {
        match read_small(&self.root.join(rel))? {
            Ok(s) => Some(s),
            Err(e) => {
                self.problems.push(format!("{rel}: {e}"));
                None
            }
        }
    }

    /// A number, kept only if `ok` accepts it.
    fn number(&mut self, rel: &str, ok: impl Fn(f64) -> bool) -> Option<f64> {
        let s = self.text(rel)?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && ok(v) => Some(v),
            _ => {
                let shown: String = s.chars().take(20).filter(|c| !c.is_control()).collect();
                self.problems
                    .push(format!("{rel}: unexpected value {shown:?}"));
                None
            }
        }
    }
}

pub const SYSFS_THROTTLED: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

/// Takes one sample under `root`.
pub fn sample(root: &Path, cmd: &dyn ThrottleCommand) -> PowerSample {
    let mut r = Reader {
        root,
        problems: Vec::new(),
    };
    let model = r
        .text("proc/device-tree/model")
        .or_else(|| r.text("sys/firmware/devicetree/base/model"))
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .filter(|m| !m.is_empty());
    let is_pi = model.as_deref().is_some_and(|m| m.contains("Raspberry Pi"));

    let mut throttled = None;
    let mut throttled_source = None;
    if let Some(s) = r.text(SYSFS_THROTTLED) {
        match Throttled::parse(&s) {
            Some(t) => {
                throttled = Some(t);
                throttled_source = Some("sysfs");
            }
            None => r
                .problems
                .push(format!("{SYSFS_THROTTLED}: not a hex word")),
        }
    } else if is_pi {
        if let Some(out) = cmd.get_throttled() {
            match Throttled::parse(&out) {
                Some(t) => {
                    throttled = Some(t);
                    throttled_source = Some("vcgencmd");
                }
                None => r
                    .problems
                    .push("vcgencmd get_throttled: unexpected output".into()),
            }
        }
    }

    let temperature_c = r
        .number("sys/class/thermal/thermal_zone0/temp", |v| {
            (-40_000.0..=150_000.0).contains(&v)
        })
        .map(|milli| milli / 1000.0);

    let uptime_secs = r.text("proc/uptime").and_then(|s| {
        match s.split_whitespace().next().map(str::parse::<f64>) {
            Some(Ok(v)) if v.is_finite() && v >= 0.0 => Some(v),
            _ => {
                r.problems.push("proc/uptime: unexpected value".into());
                None
            }
        }
    });

    let mut supplies = Vec::new();
    let dir = root.join("sys/class/power_supply");
    if let Ok(entries) = fs::read_dir(&dir) {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.into_iter().take(16) {
            let base = format!("sys/class/power_supply/{name}");
            let Some(kind) = r.text(&format!("{base}/type")) else {
                continue;
            };
            let supply = Supply {
                capacity: r.number(&format!("{base}/capacity"), |v| (0.0..=100.0).contains(&v)),
                status: r
                    .text(&format!("{base}/status"))
                    .map(|s| s.chars().take(32).collect()),
                voltage_v: r
                    .number(&format!("{base}/voltage_now"), |v| (0.0..1e8).contains(&v))
                    .map(|uv| uv / 1e6),
                current_a: r
                    .number(&format!("{base}/current_now"), |v| v.abs() < 1e8)
                    .map(|ua| ua / 1e6),
                online: r
                    .number(&format!("{base}/online"), |v| v == 0.0 || v == 1.0)
                    .map(|v| v == 1.0),
                kind: kind.chars().take(32).collect(),
                name,
            };
            supplies.push(supply);
        }
    }

    PowerSample {
        is_raspberry_pi: is_pi,
        model,
        throttled,
        throttled_source,
        temperature_c,
        supplies,
        uptime_secs,
        problems: r.problems,
    }
}
