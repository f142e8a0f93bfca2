//! Build script: the version label (package version + git hash) and the web UI from `static/`
//! embedded into the binary (text gzipped, once) with a content ETag.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=static");
    println!("cargo:rerun-if-env-changed=SKYLAPSE_GIT_HASH");

    let git = env::var("SKYLAPSE_GIT_HASH").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=10", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    });
    println!(
        "cargo:rustc-env=SKYLAPSE_GIT_HASH={}",
        git.unwrap_or_else(|| "unknown".into())
    );

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("static");
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &root, &mut files);
    }
    files.sort();

    let gz_dir = out_dir.join("static-gz");
    let _ = fs::create_dir_all(&gz_dir);
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, (url, path)) in files.iter().enumerate() {
        let bytes = fs::read(path).expect("read static file");
        let mime = mime_of(url);
        let etag = format!("\"{:016x}\"", fnv1a(&bytes));
        // Text is embedded gzipped only (every browser takes it; the few clients that do not
        // get it inflated on the fly): one copy instead of two.
        let mut body = format!("include_bytes!({:?})", path.display().to_string());
        let mut gzipped = false;
        if compressible(mime) {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&bytes).expect("gzip");
            let gz = enc.finish().expect("gzip");
            // The server inflates the deflate stream between the fixed 10-byte header
            // (no name, no extra fields) and the 8-byte trailer.
            assert_eq!(gz[3], 0, "gzip header with optional fields");
            if gz.len() + 64 < bytes.len() {
                let gz_path = gz_dir.join(format!("{i}.gz"));
                fs::write(&gz_path, &gz).expect("write gzip");
                body = format!("include_bytes!({:?})", gz_path.display().to_string());
                gzipped = true;
            }
        }
        let _ = writeln!(
            code,
            "    Asset {{ path: {url:?}, mime: {mime:?}, etag: {etag:?}, body: {body}, gzipped: {gzipped}, size: {} }},",
            bytes.len()
        );
    }
    code.push_str("];\n");
    fs::write(out_dir.join("assets.rs"), code).expect("write assets.rs");

    // PROFILE is "release" for every profile that inherits from it; those abort on panic
    // (Cargo.toml). Test harnesses are not bins, and tests build with the dev profile.
    let var = |k: &str| env::var(k).unwrap_or_default();
    let arch = var("CARGO_CFG_TARGET_ARCH");
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("PROFILE") == "release" {
        if arch == "aarch64" {
            drop_unwind_tables(&out_dir);
        }
        // The Pi's two targets (aarch64, armv7); x86_64 builds are left as they are.
        if arch == "aarch64" || arch == "arm" {
            link_with_lld(&var);
        }
    }
}

/// The optimised builds (`release`, `ship`) abort on panic, so nothing ever unwinds and the
/// DWARF unwind tables are dead weight: on aarch64 they were 615 KiB of the 3.9 MiB shipped
/// binary (`.eh_frame` 471 KiB, `.eh_frame_hdr` 145 KiB, `.gcc_except_table` 7 KiB), kept
/// only because the precompiled `std` carries them and `-C force-unwind-tables=no` cannot
/// take them out of it. The linker discards them. What is lost: the frame list that
/// `RUST_BACKTRACE=1` prints after a panic's message (the message and its file:line stay).
/// gdb and perf still walk the stack through the frame pointers the target keeps.
/// aarch64 Linux only (the Pi's 64-bit build): armv7 unwinds with `.ARM.exidx`, not
/// `.eh_frame`, and the x86_64 builds are left as they are.
fn drop_unwind_tables(out_dir: &Path) {
    let script = out_dir.join("no-unwind-tables.ld");
    // An implicit script: INSERT keeps the linker's default layout and only adds the discard.
    fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame.*) *(.gcc_except_table) \
         *(.gcc_except_table.*) } } INSERT AFTER .text;\n",
    )
    .expect("write linker script");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}

/// Optimised aarch64 and armv7 Linux builds: link with the toolchain's own lld (rustup ships it with stable Rust, in
/// `lib/rustlib/HOST/bin/gcc-ld`; the cross gcc still drives the link) and fold identical
/// functions (`--icf=all`: generic code instantiated for types of the same layout compiles
/// to the same bytes; rustc already folds them this way on MSVC targets, so Rust code does
/// not count on distinct function addresses). Measured on the aarch64 ship binary: GNU ld
/// padded the file up to its 64 KiB RELRO alignment (54 KB here), lld does not; ICF folded
/// 24 KB of .text. Without that lld (a distro rustc), GNU ld links as before.
fn link_with_lld(var: &dyn Fn(&str) -> String) {
    let sysroot = Command::new(var("RUSTC"))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let gcc_ld = sysroot.map(|s| {
        Path::new(&s)
            .join("lib/rustlib")
            .join(var("HOST"))
            .join("bin/gcc-ld")
    });
    match gcc_ld.filter(|d| d.join("ld.lld").is_file()) {
        Some(dir) => {
            println!("cargo:rustc-link-arg-bins=-B{}", dir.display());
            println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
            println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
            // Relative relocations packed (DT_RELR): the PIE's ~150 KB `.rela.dyn` becomes a
            // few KB. Needs glibc >= 2.36 at run time (Debian 12 / Raspberry Pi OS bookworm;
            // an older one refuses to load it and says so: GLIBC_ABI_DT_RELR, which
            // board/make-deb.sh turns into its libc6 dependency).
            println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        }
        None => println!(
            "cargo:warning=no rust-lld in the toolchain: linking with the default linker (larger binary)"
        ),
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            out.push((url, path));
        }
    }
}

fn mime_of(url: &str) -> &'static str {
    let ext = url.rsplit('.').next().unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(mime: &str) -> bool {
    mime.starts_with("text/") || mime.contains("json") || mime.contains("svg")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
