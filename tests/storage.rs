//! Storage that fails the way SD cards do: a data folder on a small tmpfs this test mounts
//! (full after a few KiB) or remounted read-only. Mounting needs root (CI runs as root); as an
//! ordinary user these tests skip, unless `SKYLAPSE_REQUIRE_PEERS=1`.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs of `size` bytes mounted at a fresh folder; unmounted (lazily) on drop.
pub struct TmpMount {
    pub dir: PathBuf,
}

fn c(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

impl TmpMount {
    /// `None` (after a note) when this process may not mount, unless peers are required.
    pub fn new(name: &str, size: u64) -> Option<TmpMount> {
        let dir = std::env::temp_dir().join(format!("skylapse-mnt-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let opts = CString::new(format!("size={size},mode=0755")).unwrap();
        let fstype = CString::new("tmpfs").unwrap();
        // SAFETY: every pointer is a live NUL-terminated string.
        let r = unsafe {
            libc::mount(
                fstype.as_ptr(),
                c(&dir).as_ptr(),
                fstype.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            if std::env::var("SKYLAPSE_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("mounting a tmpfs is required (SKYLAPSE_REQUIRE_PEERS=1): {e}");
            }
            eprintln!("skipped: cannot mount a tmpfs ({e}); run as root");
            return None;
        }
        Some(TmpMount { dir })
    }

    /// Remounts read-only (what a card with a tripped write-protect or a failing file system
    /// turns into).
    pub fn remount_read_only(&self) {
        let none = CString::new("").unwrap();
        // SAFETY: as above.
        let r = unsafe {
            libc::mount(
                none.as_ptr(),
                c(&self.dir).as_ptr(),
                none.as_ptr(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "remount ro: {}", std::io::Error::last_os_error());
    }

    /// Fills the file system (a file of every free byte) and returns its path; deleting it
    /// gives the space back.
    #[allow(dead_code)] // the full-disk tests come next
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.dir.join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Byte by byte for the last partial block.
        while f.write(&[0]).is_ok_and(|n| n == 1) {}
        p
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        // SAFETY: a live C string; MNT_DETACH never blocks on busy files.
        unsafe { libc::umount2(c(&self.dir).as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_read_only_data_dir_is_warned_about_at_start() {
    // Regression (issue 9, item 6): a read-only data dir gave no warning until a session was
    // started.
    let Some(m) = TmpMount::new("ro", 1 << 20) else {
        return;
    };
    std::fs::create_dir_all(m.dir.join("data")).unwrap();
    m.remount_read_only();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skylapse"))
        .args(["--no-discovery", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(m.dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("not writable") && l.contains("Read-only")),
        "{log}"
    );
}
