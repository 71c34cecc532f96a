//! One directory reachable by two paths (a bind mount, a symlinked directory): both paths share
//! one inotify watch, and the store neither reloads in a loop nor misses a rotation. Its own
//! test binary: it measures the bytes this process reads while the store is idle.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certstore::{Options, Store};
use common::{Pair, leaf, wait_for};

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(15);

/// One test at a time: each measures what the whole process reads.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bytes read by this process so far (every reload reads the certificate and key files).
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Whether the store has stopped reading: less than one reload's worth of bytes read over a
/// quiet spell.
fn idle(one_reload: u64) -> bool {
    let before = bytes_read();
    std::thread::sleep(Duration::from_millis(500));
    bytes_read() - before < one_reload
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn put_pair(dir: &Path, pair: &Pair) {
    put(dir, "tls.crt", pair.cert.as_bytes());
    put(dir, "tls.key", pair.key.as_bytes());
}

/// The certificate through one path, the key through the other; checks the store settles and
/// still follows rotations made through either.
fn check_two_paths(a: &Path, b: &Path) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let first = leaf();
    put_pair(a, &first);
    let one_reload = (first.cert.len() + first.key.len()) as u64;
    let mut o = Options::new(a.join("tls.crt"), b.join("tls.key"));
    o.reread_interval = None;
    let store = Store::open(o).unwrap();
    assert!(
        wait_for(PATIENCE, || idle(one_reload)),
        "the store keeps reloading while nothing changes"
    );
    for dir in [a, b] {
        let next = leaf();
        put_pair(dir, &next);
        assert!(
            wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex),
            "a rotation written through {} is served",
            dir.display()
        );
    }
    assert!(
        wait_for(PATIENCE, || idle(one_reload)),
        "the store keeps reloading after rotations"
    );
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct BindMount(PathBuf);

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_bind_mounted_directory_does_not_reload_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mounted = Command::new("mount").arg("--bind").args([&a, &b]).output();
    let _mount = match mounted {
        Ok(out) if out.status.success() => BindMount(b.clone()),
        Ok(out) => {
            eprintln!(
                "skipped: mount --bind failed (no privilege?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            return;
        }
    };
    check_two_paths(&a, &b);
}

#[test]
fn a_symlinked_directory_does_not_reload_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let a = root.join("a");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink(&a, root.join("b")).unwrap();
    check_two_paths(&a, &root.join("b"));
}
