//! Whole small files replaced atomically and durably through a [`Storage`]: what the
//! server's own files (saved locks and the like) use, so that the crash and fault-injection
//! backends (`MemStorage`, `FaultyStorage`) reach them as they reach the engine's.

use std::io;

use super::Storage;

/// The directory part of `name` ("" for the root), as `Storage::sync_dir` takes it.
fn dir_of(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

/// Replaces `name` with `bytes`: written to `<name>.tmp`, made durable, renamed over `name`,
/// and the rename made durable. A crash at any point leaves the old file or the new one,
/// never a mix; an error leaves the old one.
pub fn replace_file(storage: &dyn Storage, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = storage.open(&tmp, true)?;
    f.truncate(0)?;
    f.write_batch(&[(0, bytes)], true)?;
    drop(f);
    storage.rename(&tmp, name)?;
    storage.sync_dir(dir_of(name))
}

/// The whole of `name`, if it exists and holds at most `max` bytes. `Ok(None)` when missing;
/// a longer file is an error of kind `InvalidData` (nothing of it is read).
pub fn read_file(storage: &dyn Storage, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
    if !storage.list(name)?.iter().any(|n| n == name) {
        return Ok(None);
    }
    let f = storage.open(name, false)?;
    let len = f.len()?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name}: {len} bytes, more than {max}"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// Removes `name` durably; `Ok(false)` when it was not there.
pub fn remove_file(storage: &dyn Storage, name: &str) -> io::Result<bool> {
    match storage.remove(name) {
        Ok(()) => {
            storage.sync_dir(dir_of(name))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
    use std::sync::Arc;

    #[test]
    fn a_crash_at_any_step_leaves_the_old_or_the_new_file() {
        for seed in 0..50u64 {
            let mem = Arc::new(MemStorage::new());
            replace_file(&*mem, "d/f", b"old contents").unwrap();
            // Stop the replacement after each possible number of steps by failing a sync.
            let plan = FaultPlan::new();
            plan.fail_nth_sync(seed % 3 + 1);
            let faulty = FaultyStorage::new(mem.clone(), plan);
            let _ = replace_file(&faulty, "d/f", b"new contents, longer");
            for mode in [
                CrashMode::DurableOnly,
                CrashMode::TornTail { seed },
                CrashMode::ZeroTail { seed },
            ] {
                let after = mem.crash(mode);
                let got = read_file(&after, "d/f", 1024).unwrap().unwrap();
                assert!(
                    got == b"old contents" || got == b"new contents, longer",
                    "seed {seed}: {:?}",
                    String::from_utf8_lossy(&got)
                );
            }
        }
    }

    #[test]
    fn a_completed_replacement_survives_a_crash_and_limits_hold() {
        let mem = MemStorage::new();
        assert_eq!(read_file(&mem, "f", 10).unwrap(), None);
        replace_file(&mem, "f", b"0123456789abc").unwrap();
        let after = mem.crash(CrashMode::DurableOnly);
        assert_eq!(
            read_file(&after, "f", 100).unwrap().unwrap(),
            b"0123456789abc"
        );
        assert_eq!(
            read_file(&after, "f", 4).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(remove_file(&after, "f").unwrap());
        assert!(!remove_file(&after, "f").unwrap());
        assert_eq!(
            read_file(&after.crash(CrashMode::DurableOnly), "f", 100).unwrap(),
            None
        );
    }
}
