//! Board files: the SD-card overlay and the .deb built by board/make-overlay.sh and
//! board/make-deb.sh, unpacked into temporary roots and checked (files, modes, owners, the
//! systemd units with `systemd-analyze verify`), and the first-boot script that writes the
//! camera access point profile run against a temporary root.
//!
//! The packages are built around a small stand-in executable: the layout does not depend on the
//! binary, and gzip -9 over a 30 MB debug build would make every case slow. Tools these tests need: bash, tar, gzip, dpkg-deb, systemd-analyze
//! (`.ci/run` installs the `systemd` package for the latter). A test skips, saying why, only
//! when its tool is not installed at all.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PROFILE: &str = "etc/NetworkManager/system-connections/skylapse-ap.nmconnection";

/// Every file the overlay must hold, with its mode.
const OVERLAY_FILES: &[(&str, u32)] = &[
    ("etc/default/skylapse", 0o644),
    ("usr/bin/skylapse", 0o755),
    ("usr/lib/skylapse/firstboot", 0o755),
    ("usr/lib/systemd/system/skylapse.service", 0o644),
    ("usr/lib/systemd/system/skylapse-firstboot.service", 0o644),
    ("usr/lib/sysusers.d/skylapse.conf", 0o644),
    ("usr/lib/tmpfiles.d/skylapse.conf", 0o644),
    ("usr/share/doc/skylapse/README-install.md", 0o644),
    ("usr/share/polkit-1/rules.d/50-skylapse.rules", 0o644),
    ("usr/share/skylapse/skylapse-ap.nmconnection.in", 0o644),
];

/// A small executable standing in for the service binary (one per test process).
fn stand_in_binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skylapse-board-bin-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("skylapse");
        fs::write(&path, "#!/bin/sh\necho skylapse stand-in\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        path.to_str().unwrap().to_string()
    })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("skylapse-board-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(REPO).join("board").join(name));
    // Fixed timestamp: the archives must come out byte-identical.
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// Build the overlay for `board`, returning the archive path.
fn build_overlay(out: &Path, board: &str, target: &str) -> PathBuf {
    let o = run(script("make-overlay.sh")
        .args([board, target, "--binary", stand_in_binary(), "--out"])
        .arg(out));
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key=value` lines of an ini-style file, keyed by "section.key".
fn ini(text: &str) -> BTreeMap<String, String> {
    let mut section = String::new();
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            if !line.starts_with('#') {
                map.insert(format!("{section}.{}", k.trim()), v.trim().to_string());
            }
        }
    }
    map
}

#[test]
fn overlay_holds_every_file_with_its_mode_owned_by_root() {
    let out = TempDir::new("overlay");
    let archive = build_overlay(out.path(), "pi4", "aarch64-unknown-linux-gnu");
    assert_eq!(archive.file_name().unwrap(), "skylapse-pi4-aarch64.tar.gz");

    // Owners as recorded in the archive: every entry root (0/0).
    let listing = run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvzf")
        .arg(&archive))
    .stdout;
    let listing = String::from_utf8(listing).unwrap();
    for line in listing.lines() {
        let owner = line.split_whitespace().nth(1).unwrap_or("");
        assert_eq!(owner, "0/0", "entry not owned by root: {line}");
    }
    // No entry for a directory the system owns (unpacking must not re-own /etc or /usr/lib).
    for shared in [
        "./etc/",
        "./usr/",
        "./usr/lib/",
        "./etc/systemd/system/",
        "./usr/share/polkit-1/rules.d/",
    ] {
        assert!(
            !listing.lines().any(|l| l.ends_with(&format!(" {shared}"))),
            "overlay carries system directory {shared}:\n{listing}"
        );
    }

    let root = TempDir::new("overlay-root");
    run(Command::new("tar")
        .arg("-xpzf")
        .arg(&archive)
        .arg("-C")
        .arg(root.path()));
    for (file, want) in OVERLAY_FILES {
        let path = root.path().join(file);
        assert_eq!(mode(&path), *want, "mode of {file}");
    }
    assert_eq!(
        fs::read(root.path().join("usr/bin/skylapse")).unwrap(),
        fs::read(stand_in_binary()).unwrap()
    );

    // Units are enabled offline through the same links `systemctl enable` makes.
    for (link, unit) in [
        (
            "etc/systemd/system/multi-user.target.wants/skylapse.service",
            "skylapse.service",
        ),
        (
            "etc/systemd/system/sysinit.target.wants/skylapse-firstboot.service",
            "skylapse-firstboot.service",
        ),
    ] {
        let target = fs::read_link(root.path().join(link)).unwrap();
        assert_eq!(target, Path::new("/usr/lib/systemd/system").join(unit));
    }

    // The board's defaults are the ones installed.
    let defaults = ini(&read(&root.path().join("etc/default/skylapse")));
    assert_eq!(defaults[".SKYLAPSE_LISTEN"], "0.0.0.0:80");
    assert_eq!(defaults[".SKYLAPSE_AP_CHANNEL"], "6");
}

#[test]
fn overlay_is_reproducible_and_refuses_a_target_the_board_does_not_run() {
    let a = TempDir::new("repro-a");
    let b = TempDir::new("repro-b");
    let first = build_overlay(a.path(), "pi-zero-2w", "armv7-unknown-linux-gnueabihf");
    let second = build_overlay(b.path(), "pi-zero-2w", "armv7-unknown-linux-gnueabihf");
    assert_eq!(
        first.file_name().unwrap(),
        "skylapse-pi-zero-2w-armv7.tar.gz"
    );
    assert!(
        fs::read(&first).unwrap() == fs::read(&second).unwrap(),
        "two builds differ"
    );

    // The Pi 5 has no 32-bit build: a clear error, no archive.
    let o = script("make-overlay.sh")
        .args([
            "pi5",
            "armv7-unknown-linux-gnueabihf",
            "--binary",
            stand_in_binary(),
            "--out",
        ])
        .arg(a.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not run"),
        "{o:?}"
    );
    let o = script("make-overlay.sh")
        .args(["pi9", "--binary", stand_in_binary()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown board"),
        "{o:?}"
    );
}

#[test]
fn deb_unpacks_to_the_same_files_with_maintainer_scripts() {
    if !have("dpkg-deb") {
        crate::peer_missing("board", "dpkg-deb is not installed (apt-get install dpkg)");
        return;
    }
    let out = TempDir::new("deb");
    let o = run(script("make-deb.sh")
        .args([
            "pi-zero-2w",
            "aarch64-unknown-linux-gnu",
            "--binary",
            stand_in_binary(),
            "--out",
        ])
        .arg(out.path()));
    let deb = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with("skylapse_") && name.ends_with("_arm64.deb"),
        "{name}"
    );

    let control =
        String::from_utf8(run(Command::new("dpkg-deb").arg("-f").arg(&deb)).stdout).unwrap();
    assert!(control.contains("Package: skylapse\n"), "{control}");
    assert!(control.contains("Architecture: arm64\n"), "{control}");
    let depends = control
        .lines()
        .find(|l| l.starts_with("Depends:"))
        .unwrap_or("");
    assert!(depends.contains("network-manager"), "{depends}");

    // Every data member owned by root.
    let listing =
        String::from_utf8(run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout).unwrap();
    for line in listing.lines() {
        assert_eq!(line.split_whitespace().nth(1), Some("root/root"), "{line}");
    }

    let root = TempDir::new("deb-root");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path()));
    for (file, want) in OVERLAY_FILES {
        assert_eq!(
            mode(&root.path().join(file)),
            *want,
            "mode of {file} in the .deb"
        );
    }
    // The .deb enables units in postinst instead of shipping the links.
    assert!(!root.path().join("etc/systemd/system").exists());

    let control_dir = TempDir::new("deb-control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control_dir.path()));
    assert_eq!(
        read(&control_dir.path().join("conffiles")).trim(),
        "/etc/default/skylapse"
    );
    for maint in ["postinst", "prerm", "postrm"] {
        let path = control_dir.path().join(maint);
        assert_eq!(mode(&path), 0o755, "{maint}");
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = read(&control_dir.path().join("postinst"));
    assert!(
        postinst.contains("systemd-sysusers"),
        "postinst must create the user"
    );
    // Regression guard: an image build (chroot, no running systemd) must not bake one
    // passphrase into every SD card made from that image.
    let firstboot_call = postinst
        .find("/usr/lib/skylapse/firstboot")
        .expect("postinst runs firstboot");
    let live_check = postinst
        .find("/run/systemd/system")
        .expect("postinst checks for a live system");
    assert!(
        live_check < firstboot_call,
        "firstboot must only run on a live system:\n{postinst}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        crate::peer_missing(
            "board",
            "systemd-analyze is not installed (apt-get install systemd)",
        );
        return;
    }
    let out = TempDir::new("verify");
    let archive = build_overlay(out.path(), "pi4", "aarch64-unknown-linux-gnu");
    let root = TempDir::new("verify-root");
    run(Command::new("tar")
        .arg("-xpzf")
        .arg(&archive)
        .arg("-C")
        .arg(root.path()));
    // The units name sysinit.target, network.target, NetworkManager.service…: give the root the
    // host's unit library so --root resolves them (ours are not overwritten: -n).
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).join("sysinit.target").exists())
        .expect("systemd-analyze is installed but the systemd unit library is not");
    run(Command::new("cp")
        .arg("-rn")
        .arg(format!("{host_units}/."))
        .arg(root.path().join("usr/lib/systemd/system")));
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", root.path().display()))
        .args(["skylapse.service", "skylapse-firstboot.service"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // verify exits 0 on unknown keys and bad values, so any output at all is a failure.
    assert!(
        o.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

#[test]
fn unit_keeps_only_the_privileges_the_service_needs() {
    let unit = ini(&read(
        &Path::new(REPO).join("board/common/skylapse.service"),
    ));
    assert_eq!(unit["Service.Type"], "notify");
    assert!(unit.contains_key("Service.WatchdogSec"));
    assert_eq!(unit["Service.Restart"], "always");
    assert_eq!(unit["Service.User"], "skylapse");
    assert_eq!(unit["Service.ProtectSystem"], "strict");
    assert_eq!(unit["Service.NoNewPrivileges"], "yes");
    let caps: Vec<&str> = unit["Service.AmbientCapabilities"]
        .split_whitespace()
        .collect();
    assert_eq!(caps, ["CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"]);
    assert_eq!(
        unit["Service.CapabilityBoundingSet"],
        unit["Service.AmbientCapabilities"]
    );
    // Setting the clock from the phone must stay possible.
    assert!(unit["Service.SystemCallFilter"]
        .split_whitespace()
        .any(|s| s == "@clock"));
    assert!(
        !unit.contains_key("Service.ProtectClock"),
        "ProtectClock forbids clock_settime"
    );
    // D-Bus (unix), SSDP/HTTP (inet), interface addresses (netlink).
    assert_eq!(
        unit["Service.RestrictAddressFamilies"],
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK"
    );
}

/// Run the first-boot script against `root` (no system changes); returns its output.
fn firstboot(root: &Path) -> Output {
    Command::new("sh")
        .arg(root.join("usr/lib/skylapse/firstboot"))
        .env("SKYLAPSE_ROOT", root)
        .env("SKYLAPSE_BOOT_DIR", root.join("boot/firmware"))
        .env("SKYLAPSE_SKIP_SYSTEM", "1")
        .output()
        .unwrap()
}

/// A fresh root with the overlay unpacked and an empty boot partition.
fn fresh_root(out: &Path, tag: &str) -> TempDir {
    let archive = out.join("skylapse-pi-zero-2w-aarch64.tar.gz");
    if !archive.exists() {
        build_overlay(out, "pi-zero-2w", "aarch64-unknown-linux-gnu");
    }
    let root = TempDir::new(tag);
    run(Command::new("tar")
        .arg("-xpzf")
        .arg(&archive)
        .arg("-C")
        .arg(root.path()));
    fs::create_dir_all(root.path().join("boot/firmware")).unwrap();
    root
}

#[test]
fn firstboot_writes_a_canon_compatible_access_point_with_a_random_passphrase() {
    let out = TempDir::new("firstboot");
    let template = read(&Path::new(REPO).join("board/common/skylapse-ap.nmconnection.in"));
    assert!(
        ini(&template)["wifi-security.psk"] == "@PSK@",
        "the template must not carry a passphrase"
    );

    let a = fresh_root(out.path(), "fb-a");
    let o = firstboot(a.path());
    assert!(o.status.success(), "{o:?}");
    let profile_path = a.path().join(PROFILE);
    assert_eq!(
        mode(&profile_path),
        0o600,
        "NetworkManager ignores keyfiles others can read"
    );
    let text = read(&profile_path);
    assert!(!text.contains('@'), "placeholder left in:\n{text}");
    let p = ini(&text);
    for (key, want) in [
        ("connection.type", "wifi"),
        ("connection.interface-name", "wlan0"),
        ("connection.autoconnect", "true"),
        ("wifi.mode", "ap"),
        ("wifi.band", "bg"),
        ("wifi.channel", "6"),
        ("wifi-security.key-mgmt", "wpa-psk"),
        ("wifi-security.proto", "rsn"),
        ("wifi-security.pairwise", "ccmp"),
        ("wifi-security.group", "ccmp"),
        ("ipv4.method", "shared"),
        ("ipv4.address1", "192.168.4.1/24"),
    ] {
        assert_eq!(p.get(key).map(String::as_str), Some(want), "{key}");
    }
    let (ssid, psk) = (p["wifi.ssid"].clone(), p["wifi-security.psk"].clone());
    assert!(
        ssid.starts_with("skylapse-") && ssid.len() == "skylapse-".len() + 4,
        "{ssid}"
    );
    assert!(psk.len() >= 20 && psk.len() <= 63, "{psk}");

    // Shown once to the photographer: console (stdout) and the boot partition; not in the
    // progress messages that go to the journal (stderr).
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&psk) && stdout.contains(&ssid), "{stdout}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains(&psk),
        "passphrase leaked to the log"
    );
    let note = ini(&read(&a.path().join("boot/firmware/skylapse-wifi.txt")));
    assert_eq!(note[".ssid"], ssid);
    assert_eq!(note[".passphrase"], psk);

    // Idempotent: a later boot keeps the profile as it is and prints no passphrase.
    let again = firstboot(a.path());
    assert!(again.status.success(), "{again:?}");
    assert_eq!(read(&profile_path), text);
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&psk));

    // Another device gets another network and passphrase.
    let b = fresh_root(out.path(), "fb-b");
    assert!(firstboot(b.path()).status.success());
    let other = ini(&read(&b.path().join(PROFILE)));
    assert_ne!(other["wifi-security.psk"], psk);
    assert_ne!(other["connection.uuid"], p["connection.uuid"]);
}

#[test]
fn firstboot_takes_the_photographers_choice_and_rejects_bad_input() {
    let out = TempDir::new("firstboot-choice");
    let root = fresh_root(out.path(), "fb-choice");
    let note = root.path().join("boot/firmware/skylapse-wifi.txt");
    fs::write(
        &note,
        "ssid=Night Sky\r\npassphrase=orion & the|bull\r\ncountry=DE\r\n",
    )
    .unwrap();
    let o = firstboot(root.path());
    assert!(o.status.success(), "{o:?}");
    let p = ini(&read(&root.path().join(PROFILE)));
    assert_eq!(p["wifi.ssid"], "Night Sky");
    // sed metacharacters in the passphrase arrive unchanged.
    assert_eq!(p["wifi-security.psk"], "orion & the|bull");
    assert!(read(&note).contains("country=DE"));

    for (bad, why) in [
        ("passphrase=short\n", "8 to 63"),
        ("ssid=bad;name\n", "ssid may use only"),
        ("passphrase=back\\slash-long\n", "no backslash"),
    ] {
        let root = fresh_root(out.path(), "fb-bad");
        fs::write(root.path().join("boot/firmware/skylapse-wifi.txt"), bad).unwrap();
        let o = firstboot(root.path());
        assert!(!o.status.success(), "accepted {bad:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(why),
            "{bad:?}: {o:?}"
        );
        assert!(
            !root.path().join(PROFILE).exists(),
            "profile written despite {bad:?}"
        );
    }

    // Channel outside what Canon bodies accept is refused.
    let root = fresh_root(out.path(), "fb-channel");
    let defaults = root.path().join("etc/default/skylapse");
    let text = read(&defaults).replace("SKYLAPSE_AP_CHANNEL=6", "SKYLAPSE_AP_CHANNEL=13");
    fs::write(&defaults, text).unwrap();
    let o = firstboot(root.path());
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("6 or 11"),
        "{o:?}"
    );
}

#[test]
fn board_scripts_pass_shellcheck() {
    if !have("shellcheck") {
        crate::peer_missing(
            "board",
            "shellcheck is not installed (apt-get install shellcheck)",
        );
        return;
    }
    let board = Path::new(REPO).join("board");
    let mut cmd = Command::new("shellcheck");
    cmd.current_dir(&board).arg("-x");
    for script in [
        "make-overlay.sh",
        "make-deb.sh",
        "ci-cross.sh",
        "size-report.sh",
        "footprint.sh",
        "lib.sh",
    ] {
        cmd.arg(script);
    }
    run(&mut cmd);
    run(Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(board.join("common/firstboot")));
}
