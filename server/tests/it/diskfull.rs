//! Disk full end to end through WebDAV: the data dir is a small tmpfs; a full disk answers
//! 507 and leaves nothing behind, and PUT works again once space is freed. Needs root to
//! mount (CI runs as root); without it the test fails loudly instead of skipping.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;

/// Size of the test file system, MiB.
const FS_MIB: u64 = 16;

fn avail(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .expect("run df");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("df output: {text}"))
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Grows `filler` until the file system has about `leave` bytes free.
fn fill_to(dir: &Path, filler: &Path, leave: u64) {
    let free = avail(dir);
    let add = free.saturating_sub(leave);
    let data = vec![0xA5u8; add as usize];
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    use std::io::Write;
    // tmpfs counts pages: a short write near the end is fine.
    let _ = f.write_all(&data);
    let _ = f.sync_all();
    let now = avail(dir);
    assert!(
        now <= leave.max(free.min(leave)) + 64 * 1024,
        "free {now} after filling to {leave}"
    );
}

#[test]
fn disk_full_answers_507_and_put_works_again_once_space_is_freed() {
    let mounted: Arc<std::sync::Mutex<Option<PathBuf>>> = Default::default();
    let m = mounted.clone();
    let opts = Opts::default()
        .user(TENANT, USER, PASSWORD)
        // 256 KiB reserve: a tiny file system still takes uploads until nearly full.
        .config("[storage]\nfree_space_reserve_bytes = 262144\n");
    let opts = Opts {
        before_start: Some(Arc::new(move |data: &Path| {
            std::fs::create_dir_all(data).unwrap();
            let st = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={FS_MIB}m"), "tmpfs"])
                .arg(data)
                .status()
                .expect("run mount");
            assert!(
                st.success(),
                "cannot mount a tmpfs at {} (this test needs root; CI runs as root)",
                data.display()
            );
            *m.lock().unwrap() = Some(data.to_path_buf());
        })),
        ..opts
    };
    let mut server = Server::start_opts(opts);
    let data = server.data_dir();
    let _unmount = Unmount(mounted.lock().unwrap().clone().expect("mounted"));
    let c = server.client();
    let keep = pseudo_random(1, 300_000);
    assert_eq!(c.put(&dav("keep.bin"), &keep).status, 201);

    // 1. Above the reserve but too little room for the file: the pack write meets ENOSPC.
    let filler = data.join("filler");
    fill_to(&data, &filler, 1 << 20);
    let big = pseudo_random(2, 3 << 20);
    let r = c.put(&dav("big.bin"), &big);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(
        c.get(&dav("big.bin")).status,
        404,
        "a refused upload is visible"
    );

    // 2. Below the reserve: refused before a byte is stored.
    fill_to(&data, &filler, 64 * 1024);
    let r = c.put(&dav("small.bin"), &pseudo_random(3, 10_000));
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(c.get(&dav("small.bin")).status, 404);
    // Reading and listing go on.
    assert_eq!(c.get(&dav("keep.bin")).body, keep);
    let list = c.propfind(&dav(""), "1");
    assert_eq!(list.status, 207);
    let hrefs = list.hrefs();
    assert!(hrefs
        .iter()
        .all(|h| !h.contains("big.bin") && !h.contains("small.bin")));

    // 3. Space freed: uploads work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(c.put(&dav("big.bin"), &big).status, 201);
    assert_eq!(c.put(&dav("small.bin"), b"small").status, 201);
    assert_eq!(c.get(&dav("big.bin")).body, big);

    // 4. Everything acknowledged survives a restart, and the store is consistent.
    server.restart();
    let c = server.client();
    assert_eq!(c.get(&dav("keep.bin")).body, keep);
    assert_eq!(c.get(&dav("big.bin")).body, big);
    assert_eq!(c.get(&dav("small.bin")).body, b"small");
    server.stop();
    let (ok, out) = skab(&["scrub", "--data-dir", data.to_str().unwrap()], None);
    assert!(ok, "scrub after disk full: {out}");
}
