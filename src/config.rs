//! Configuration: defaults, then an optional JSON file, then environment, then flags.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP + WebSocket listen address (`--listen`, default 0.0.0.0:8080).
    pub listen: SocketAddr,
    /// Sessions, reports, pinned certificates, last camera address (`--data-dir`).
    pub data_dir: PathBuf,
    /// Serve this directory instead of the embedded UI (`--static-dir`).
    pub static_dir: Option<PathBuf>,
    /// Optional bearer token for WebSocket and REST (`--token`). Off by default.
    pub token: Option<Secret>,
    /// Extra origins allowed to open the WebSocket (`--allow-origin`, repeatable).
    pub allow_origins: Vec<String>,
    /// Extra names or addresses accepted in `Host` (`--allow-host`, repeatable; `*` for any).
    /// The device's own addresses, `localhost`, its host name and `<hostname>.local` always
    /// are (web::host).
    pub allow_hosts: Vec<String>,
    /// env_logger filter (`--log`, or RUST_LOG).
    pub log: Option<String>,
    /// Start the camera simulator in-process and connect to it (`--demo`).
    pub demo: bool,
    /// Do not search for cameras by SSDP (`--no-discovery`): no multicast leaves the Pi;
    /// the camera is reached by `--camera` or `connect_to_ip` only.
    pub no_discovery: bool,
    /// Turn off camera certificate verification (`--camera-insecure`).
    pub camera_insecure: bool,
    /// Connect to this camera address at start (`--camera`, "ip[:port]" or a URL).
    pub camera: Option<String>,
    pub limits: Limits,
}

/// Protocol limits, reported to clients in `welcome.limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_clients: usize,
    pub max_frame_bytes: usize,
    pub max_invalid_messages: u32,
    /// Messages per second per client (token bucket refill).
    pub rate_per_sec: u32,
    /// Burst size of the token bucket.
    pub rate_burst: u32,
    /// Frames waiting for one WebSocket client, at most (a second bound after the bytes).
    pub outbound_queue: usize,
    /// Bytes waiting for one WebSocket client, at most (one larger frame is let through when
    /// nothing else is queued, so a big reply is never lost outright).
    pub outbound_queue_bytes: usize,
    pub ping_interval: Duration,
    pub silence_timeout: Duration,
    pub status_interval: Duration,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub head_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// Open HTTP connections (not yet upgraded), at most; when full, a new connection evicts
    /// the one idle the longest (web::conns). Clamped to the file descriptor limit at start.
    pub max_connections: usize,
    /// Connections one peer address (an IPv6 /64) holds at most; its next one evicts its own
    /// idlest.
    pub max_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 16,
            max_frame_bytes: 64 * 1024,
            max_invalid_messages: 10,
            rate_per_sec: 20,
            rate_burst: 40,
            outbound_queue: 256,
            outbound_queue_bytes: 256 * 1024,
            ping_interval: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(60),
            status_interval: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_peer: 32,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("/var/lib/skylapse"),
            static_dir: None,
            token: None,
            allow_origins: Vec::new(),
            allow_hosts: Vec::new(),
            log: None,
            demo: false,
            no_discovery: false,
            camera_insecure: false,
            camera: None,
            limits: Limits::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: defaults < JSON file (`--config` / SKYLAPSE_CONFIG) < environment < flags.

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Config>),
    Help,
    Version,
}

/// A bad flag, variable or file. Its message names the source and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub const USAGE: &str = "\
skylapse: field controller for Canon cameras (timelapse over CCAPI)

Usage: skylapse [OPTIONS]

Options (each also from an environment variable; precedence: file < env < flags):
  --listen ADDR          HTTP + WebSocket address [SKYLAPSE_LISTEN] (default 0.0.0.0:8080)
  --data-dir DIR         sessions, reports, certificates [SKYLAPSE_DATA_DIR]
                         (default /var/lib/skylapse)
  --static-dir DIR       serve this directory instead of the embedded UI [SKYLAPSE_STATIC_DIR]
  --token TOKEN          require this bearer token for WebSocket and REST [SKYLAPSE_TOKEN]
  --allow-origin ORIGIN  also accept WebSocket upgrades from ORIGIN (repeatable)
                         [SKYLAPSE_ALLOW_ORIGIN, comma-separated]
  --allow-host NAME      also accept requests whose Host is NAME (a name or address the
                         Pi is reached by, e.g. a DNS name; * for any) (repeatable)
                         [SKYLAPSE_ALLOW_HOST, comma-separated]
  --log FILTER           env_logger filter, e.g. debug or skylapse=trace [SKYLAPSE_LOG, RUST_LOG]
  --demo                 run the camera simulator in-process and connect to it [SKYLAPSE_DEMO]
  --camera ADDR          connect to this camera at start, ip[:port] or URL [SKYLAPSE_CAMERA]
  --camera-insecure      do not verify the camera's certificate [SKYLAPSE_CAMERA_INSECURE]
  --no-discovery         do not search for cameras by SSDP (no multicast) [SKYLAPSE_NO_DISCOVERY]
  --config FILE          JSON file with the same settings [SKYLAPSE_CONFIG]
                         keys: listen, dataDir, staticDir, token, allowOrigins, allowHosts,
                         log, demo,
                         camera, cameraInsecure, noDiscovery
  -h, --help             print this help
  -V, --version          print the version
";

fn parse_bool(source: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError(format!(
            "{source}: expected true or false, got {v:?}"
        ))),
    }
}

fn parse_listen(source: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    let v = v.trim();
    // A bare port means every interface.
    if let Ok(port) = v.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    v.parse().map_err(|_| {
        ConfigError(format!(
            "{source}: {v:?} is not an address like 0.0.0.0:8080 or [::]:8080"
        ))
    })
}

fn non_empty(source: &str, v: &str) -> Result<String, ConfigError> {
    if v.trim().is_empty() {
        Err(ConfigError(format!("{source}: must not be empty")))
    } else {
        Ok(v.to_string())
    }
}

fn parse_origin(source: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim().trim_end_matches('/');
    let ok = (v.starts_with("http://") || v.starts_with("https://"))
        && v.split("://")
            .nth(1)
            .is_some_and(|h| !h.is_empty() && !h.contains('/'));
    if ok || v == "*" {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(ConfigError(format!(
            "{source}: {v:?} is not an origin like http://192.168.4.1:8080 (or *)"
        )))
    }
}

fn parse_host(source: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v == "*" {
        return Ok(v.to_string());
    }
    crate::web::host::host_part(v).ok_or_else(|| {
        ConfigError(format!(
            "{source}: {:?} is not a host name or address like skylapse.lan or 192.168.1.20 (or *)",
            shown_arg(v)
        ))
    })
}

impl Config {
    /// Applies one setting by its long flag name; `source` names where it came from.
    fn apply(&mut self, name: &str, value: Option<&str>, source: &str) -> Result<(), ConfigError> {
        let need = || value.ok_or_else(|| ConfigError(format!("{source}: needs a value")));
        match name {
            "listen" => self.listen = parse_listen(source, need()?)?,
            "data-dir" => self.data_dir = PathBuf::from(non_empty(source, need()?)?),
            "static-dir" => self.static_dir = Some(PathBuf::from(non_empty(source, need()?)?)),
            "token" => {
                let t = need()?;
                if t.is_empty() {
                    return Err(ConfigError(format!(
                        "{source}: the token must not be empty"
                    )));
                }
                self.token = Some(Secret::new(t));
            }
            "allow-origin" => {
                for o in need()?.split(',').filter(|s| !s.trim().is_empty()) {
                    let o = parse_origin(source, o)?;
                    if !self.allow_origins.contains(&o) {
                        self.allow_origins.push(o);
                    }
                }
            }
            "allow-host" => {
                for h in need()?.split(',').filter(|s| !s.trim().is_empty()) {
                    let h = parse_host(source, h)?;
                    if !self.allow_hosts.contains(&h) {
                        self.allow_hosts.push(h);
                    }
                }
            }
            "log" => self.log = Some(non_empty(source, need()?)?),
            "demo" => self.demo = value.map_or(Ok(true), |v| parse_bool(source, v))?,
            "camera" => self.camera = Some(non_empty(source, need()?)?),
            "camera-insecure" => {
                self.camera_insecure = value.map_or(Ok(true), |v| parse_bool(source, v))?
            }
            "no-discovery" => {
                self.no_discovery = value.map_or(Ok(true), |v| parse_bool(source, v))?
            }
            _ => return Err(ConfigError(format!("unknown option {source}"))),
        }
        Ok(())
    }

    /// Applies a JSON config file's object.
    fn apply_file(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("config file {path}: invalid JSON: {e}")))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(ConfigError(format!(
                "config file {path}: expected a JSON object"
            )));
        };
        for (key, v) in obj {
            let name = match key.as_str() {
                "listen" => "listen",
                "dataDir" | "data_dir" => "data-dir",
                "staticDir" | "static_dir" => "static-dir",
                "token" => "token",
                "allowOrigins" | "allow_origins" | "allowOrigin" => "allow-origin",
                "allowHosts" | "allow_hosts" | "allowHost" => "allow-host",
                "log" => "log",
                "demo" => "demo",
                "camera" => "camera",
                "cameraInsecure" | "camera_insecure" => "camera-insecure",
                "noDiscovery" | "no_discovery" => "no-discovery",
                _ => {
                    return Err(ConfigError(format!(
                        "config file {path}: unknown key {key:?}"
                    )))
                }
            };
            let source = format!("config file {path}: {key}");
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Array(items) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item {
                            serde_json::Value::String(s) => parts.push(s),
                            _ => {
                                return Err(ConfigError(format!(
                                    "{source}: expected a list of strings"
                                )))
                            }
                        }
                    }
                    parts.join(",")
                }
                serde_json::Value::Null => continue,
                serde_json::Value::Object(_) => {
                    return Err(ConfigError(format!("{source}: unexpected object")))
                }
            };
            self.apply(name, Some(&text), &source)?;
        }
        Ok(())
    }

    /// Parses the command line (without the program name) and the environment (`env` looks a
    /// variable up), reading the config file with `read_file`. Tests pass closures.
    ///
    /// An argument or variable that is not UTF-8 is an error, never "unset": a token with one
    /// Latin-1 byte must not silently turn authentication off.
    pub fn parse(
        args: &[OsString],
        env: &dyn Fn(&str) -> Option<OsString>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Invocation, ConfigError> {
        let args: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.clone().into_string().map_err(|_| {
                    ConfigError(format!(
                        "argument {} is not valid UTF-8 (check its encoding)",
                        i + 1
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let env = |var: &str| -> Result<Option<String>, ConfigError> {
            match env(var) {
                None => Ok(None),
                Some(v) => v.into_string().map(Some).map_err(|_| {
                    ConfigError(format!(
                        "{var} is not valid UTF-8 (check its encoding; it is not ignored)"
                    ))
                }),
            }
        };
        // Pass 1: split flags into (name, value) and find --config / --help / --version.
        const VALUE_FLAGS: [&str; 9] = [
            "listen",
            "data-dir",
            "static-dir",
            "token",
            "allow-origin",
            "allow-host",
            "log",
            "camera",
            "config",
        ];
        const BOOL_FLAGS: [&str; 3] = ["demo", "camera-insecure", "no-discovery"];
        let mut flags: Vec<(String, Option<String>)> = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Invocation::Help),
                "-V" | "--version" => return Ok(Invocation::Version),
                _ => {}
            }
            let Some(long) = arg.strip_prefix("--") else {
                return Err(ConfigError(format!(
                    "unexpected argument {:?} (see --help)",
                    shown_arg(arg)
                )));
            };
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if VALUE_FLAGS.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| ConfigError(format!("--{name} needs a value")))?,
                };
                flags.push((name.to_string(), Some(v)));
            } else if BOOL_FLAGS.contains(&name) {
                flags.push((name.to_string(), inline));
            } else {
                return Err(ConfigError(format!(
                    "unknown option --{} (see --help)",
                    shown_arg(name)
                )));
            }
        }

        let mut config = Config::default();
        let config_file = flags
            .iter()
            .rev()
            .find(|(n, _)| n == "config")
            .and_then(|(_, v)| v.clone());
        let config_file = match config_file {
            Some(f) => Some(f),
            None => env("SKYLAPSE_CONFIG")?,
        };
        if let Some(path) = config_file {
            let text =
                read_file(&path).map_err(|e| ConfigError(format!("config file {path}: {e}")))?;
            config.apply_file(&path, &text)?;
        }

        // Environment. RUST_LOG is read by env_logger itself when no filter is configured.
        let vars = [
            ("SKYLAPSE_LISTEN", "listen"),
            ("SKYLAPSE_DATA_DIR", "data-dir"),
            ("SKYLAPSE_STATIC_DIR", "static-dir"),
            ("SKYLAPSE_TOKEN", "token"),
            ("SKYLAPSE_ALLOW_ORIGIN", "allow-origin"),
            ("SKYLAPSE_ALLOW_HOST", "allow-host"),
            ("SKYLAPSE_LOG", "log"),
            ("SKYLAPSE_DEMO", "demo"),
            ("SKYLAPSE_CAMERA", "camera"),
            ("SKYLAPSE_CAMERA_INSECURE", "camera-insecure"),
            ("SKYLAPSE_NO_DISCOVERY", "no-discovery"),
        ];
        for (var, name) in vars {
            if let Some(v) = env(var)? {
                config.apply(name, Some(&v), var)?;
            }
        }

        // Flags. Repeated --allow-origin accumulate; flags replace what env gave.
        let mut origins_from_flags = false;
        let mut hosts_from_flags = false;
        for (name, value) in &flags {
            if name == "config" {
                continue;
            }
            if name == "allow-origin" && !origins_from_flags {
                config.allow_origins.clear();
                origins_from_flags = true;
            }
            if name == "allow-host" && !hosts_from_flags {
                config.allow_hosts.clear();
                hosts_from_flags = true;
            }
            config.apply(name, value.as_deref(), &format!("--{name}"))?;
        }
        // RUST_LOG is the filter when nothing above set one.
        if config.log.is_none() {
            if let Some(v) = env("RUST_LOG")? {
                config.log = Some(v);
            }
        }
        Ok(Invocation::Run(Box::new(config)))
    }

    /// [`Config::parse`] on the real process arguments, environment and file system.
    pub fn from_process() -> Result<Invocation, ConfigError> {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        Config::parse(&args, &|k| std::env::var_os(k), &|p| {
            read_capped(Path::new(p), MAX_CONFIG_BYTES)
        })
    }
}

/// A config file larger than this is refused (`--config /dev/zero` must not eat the memory).
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Reads a UTF-8 text file of at most `max` bytes; larger (or endless) is an error.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB; not a config file",
            max / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))
}

/// Free space below which the data folder is reported as nearly full at start.
const LOW_SPACE_BYTES: u64 = 32 * 1024 * 1024;

/// What is wrong with the data folder for recording sessions and saving reports, checked at
/// start so a read-only or full card is known before a night is lost: `None` when a file can be
/// created, written, synced and removed in it and in its `sessions` and `reports` folders.
pub fn data_dir_problems(dir: &Path) -> Vec<String> {
    use std::io::Write;
    let mut problems = Vec::new();
    if let Err(e) = std::fs::create_dir_all(dir) {
        problems.push(format!(
            "data folder {} cannot be created ({e}): sessions will not be recorded and \
             reports not saved",
            dir.display()
        ));
        return problems;
    }
    let probe = |d: &Path| -> std::io::Result<()> {
        if !d.exists() {
            return Ok(());
        }
        let p = d.join(format!(".write-test-{}", std::process::id()));
        let r = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .and_then(|mut f| {
                f.write_all(b"x")?;
                f.sync_all()
            });
        let _ = std::fs::remove_file(&p);
        r
    };
    for (d, what) in [
        (dir.to_path_buf(), "data folder"),
        (dir.join("sessions"), "sessions folder"),
        (dir.join("reports"), "reports folder"),
    ] {
        if let Err(e) = probe(&d) {
            problems.push(format!(
                "{what} {} is not writable ({e}): sessions will not be recorded and reports \
                 not saved until it is",
                d.display()
            ));
        }
    }
    if let Some(free) = free_bytes(dir) {
        if free < LOW_SPACE_BYTES {
            problems.push(format!(
                "data folder {} has only {} KiB free: a session's records may not fit",
                dir.display(),
                free / 1024
            ));
        }
    }
    problems
}

/// Bytes available to an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    crate::sys::free_bytes(dir)
}

/// An argument as it may appear in an error message: short and printable (it could be a
/// mistyped secret, so only its start is shown).
fn shown_arg(a: &str) -> String {
    let s: String = a.chars().filter(|c| !c.is_control()).take(32).collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(
        args: &[&str],
        env: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<Invocation, ConfigError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let files: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&args, &|k| env.get(k).cloned(), &|p| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        })
    }

    fn run(args: &[&str], env: &[(&str, &str)], files: &[(&str, &str)]) -> Config {
        match parse_with(args, env, files).unwrap() {
            Invocation::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_without_anything() {
        let c = run(&[], &[], &[]);
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert!(c.token.is_none());
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = r#"{"listen":"127.0.0.1:1000","dataDir":"/f","log":"warn","demo":true,
                       "allowOrigins":["http://a.example"]}"#;
        let c = run(
            &["--config", "/c.json", "--listen=127.0.0.1:3000"],
            &[
                ("SKYLAPSE_LISTEN", "127.0.0.1:2000"),
                ("SKYLAPSE_DATA_DIR", "/e"),
            ],
            &[("/c.json", file)],
        );
        assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/e"));
        assert_eq!(c.log.as_deref(), Some("warn"));
        assert!(c.demo);
        assert_eq!(c.allow_origins, vec!["http://a.example".to_string()]);
    }

    #[test]
    fn repeated_allow_origin_and_bool_flags() {
        let c = run(
            &[
                "--allow-origin",
                "http://a.example:8080",
                "--allow-origin=https://B.example/",
                "--camera-insecure",
                "--demo=false",
                "--no-discovery",
                "--listen",
                "9000",
            ],
            &[("SKYLAPSE_ALLOW_ORIGIN", "http://env.example")],
            &[],
        );
        assert_eq!(
            c.allow_origins,
            vec![
                "http://a.example:8080".to_string(),
                "https://b.example".into()
            ]
        );
        assert!(c.camera_insecure);
        assert!(c.no_discovery);
        assert!(!c.demo);
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse_with(&["--help"], &[], &[]),
            Ok(Invocation::Help)
        ));
        assert!(matches!(
            parse_with(&["-V"], &[], &[]),
            Ok(Invocation::Version)
        ));
    }

    #[test]
    fn bad_values_are_named_and_secrets_never_echoed() {
        let e = parse_with(&["--listen", "nowhere"], &[], &[]).unwrap_err();
        assert!(e.0.contains("--listen"), "{e}");
        let e = parse_with(&["--bogus"], &[], &[]).unwrap_err();
        assert!(e.0.contains("--bogus"), "{e}");
        let e = parse_with(&["--token"], &[], &[]).unwrap_err();
        assert!(e.0.contains("needs a value"), "{e}");
        let e = parse_with(&[], &[("SKYLAPSE_DEMO", "maybe")], &[]).unwrap_err();
        assert!(e.0.contains("SKYLAPSE_DEMO"), "{e}");
        let e = parse_with(&["--config", "/missing"], &[], &[]).unwrap_err();
        assert!(e.0.contains("/missing"), "{e}");
        let e = parse_with(&["--config", "/x"], &[], &[("/x", "{\"tokn\":1}")]).unwrap_err();
        assert!(e.0.contains("tokn"), "{e}");
        let e = parse_with(&["--allow-origin", "evil"], &[], &[]).unwrap_err();
        assert!(e.0.contains("origin"), "{e}");
        // The token's value never appears in the parsed config's Debug output.
        let c = run(&["--token", "s3cret-value"], &[], &[]);
        assert!(!format!("{c:?}").contains("s3cret-value"));
        assert_eq!(c.token.unwrap().expose(), "s3cret-value");
    }

    #[test]
    fn a_non_utf8_environment_value_or_argument_is_an_error_not_unset() {
        // Regression (issue 9, item 6): a token with one Latin-1 byte was treated as unset,
        // which meant no authentication, silently.
        use std::os::unix::ffi::OsStringExt;
        let latin1 = OsString::from_vec(b"caf\xe9-secret".to_vec());
        let env = |k: &str| (k == "SKYLAPSE_TOKEN").then(|| latin1.clone());
        let e = Config::parse(&[], &env, &|_| Ok(String::new())).unwrap_err();
        assert!(
            e.0.contains("SKYLAPSE_TOKEN") && e.0.contains("UTF-8"),
            "{e}"
        );
        assert!(!e.0.contains("secret"), "the value is never echoed: {e}");
        let args = [OsString::from("--token"), latin1.clone()];
        let e = Config::parse(&args, &|_| None, &|_| Ok(String::new())).unwrap_err();
        assert!(e.0.contains("argument 2") && e.0.contains("UTF-8"), "{e}");
        let rust_log = |k: &str| (k == "RUST_LOG").then(|| latin1.clone());
        assert!(Config::parse(&[], &rust_log, &|_| Ok(String::new())).is_err());
        // RUST_LOG is the filter when nothing else sets one.
        let c = run(&[], &[("RUST_LOG", "debug")], &[]);
        assert_eq!(c.log.as_deref(), Some("debug"));
        let c = run(&["--log", "warn"], &[("RUST_LOG", "debug")], &[]);
        assert_eq!(c.log.as_deref(), Some("warn"));
    }

    #[test]
    fn an_endless_or_huge_config_file_is_refused_with_a_clear_error() {
        // Regression (issue 9, item 6): `--config /dev/zero` grew to 1.8 GB with no error.
        let e = read_capped(Path::new("/dev/zero"), MAX_CONFIG_BYTES).unwrap_err();
        assert!(e.to_string().contains("larger than 64 KiB"), "{e}");
        let args = [OsString::from("--config"), OsString::from("/dev/zero")];
        let e = Config::parse(&args, &|_| None, &|p| {
            read_capped(Path::new(p), MAX_CONFIG_BYTES)
        })
        .unwrap_err();
        assert!(
            e.0.contains("/dev/zero") && e.0.contains("larger than"),
            "{e}"
        );
        let dir = std::env::temp_dir();
        assert!(read_capped(&dir, MAX_CONFIG_BYTES).is_err());
        let f = dir.join(format!("skylapse-cfg-{}.json", std::process::id()));
        std::fs::write(&f, b"{\"demo\":true}").unwrap();
        assert_eq!(
            read_capped(&f, MAX_CONFIG_BYTES).unwrap(),
            "{\"demo\":true}"
        );
        std::fs::write(&f, b"{\"log\":\"\xff\"}").unwrap();
        assert!(read_capped(&f, MAX_CONFIG_BYTES).is_err());
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn a_data_dir_that_cannot_be_created_is_reported() {
        // (A read-only mount is tested on the binary in tests/storage.rs.)
        let dir = std::env::temp_dir().join(format!("skylapse-dd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sessions")).unwrap();
        assert_eq!(data_dir_problems(&dir), Vec::<String>::new());
        let file = dir.join("plain");
        std::fs::write(&file, b"").unwrap();
        let problems = data_dir_problems(&file.join("data"));
        assert!(problems[0].contains("cannot be created"), "{problems:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
