//! Online backup: a copy of the store's files into a plain directory while the store serves,
//! that opens (with the usual recovery) as the store at one point in time; incremental by
//! sealed pack. Design and the argument for its consistency: `docs/operations.md`, "Backups".

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Store;
use crate::error::{Error, Result};
use crate::io::Storage;
use crate::limits::BACKUP_COPY_BYTES;
use crate::pack::checkpoint::CHECKPOINT_NAME;
use crate::pack::writer::parse_pack_name;

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Files written (whole) into the backup.
    pub files_copied: u64,
    pub bytes_copied: u64,
    /// Sealed packs already in the backup with the same length, left as they were.
    pub packs_unchanged: u64,
    pub bytes_unchanged: u64,
    /// Files of an earlier backup that the store no longer has (compacted packs, old logs).
    pub files_removed: u64,
}

/// The order files are copied in: each later class only grows past what the earlier ones
/// need (the store identity, then the chunk index checkpoint, the snapshots, the logs, and the
/// packs last, which by then hold every chunk an acknowledged log record names).
fn copy_rank(name: &str) -> u8 {
    if name == super::meta::NAME {
        0
    } else if name == CHECKPOINT_NAME {
        1
    } else if name.starts_with("snap/") {
        2
    } else if name.starts_with("wal/") {
        3
    } else if name.starts_with("packs/") {
        5
    } else {
        4
    }
}

/// Files of the storage that are not part of a store's state: temporary files of an
/// interrupted replacement, and the process lock.
fn is_transient(name: &str) -> bool {
    name.ends_with(".tmp") || name == "LOCK"
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    }
}

impl Store {
    /// Copies the store into `dest` (a directory, created if missing) while it keeps serving:
    /// checkpoints first (so the logs are short), then, with checkpoints, gc and compaction
    /// held off, copies every file in [`copy_rank`] order; sealed packs that `dest` already
    /// holds with the same length are not copied again. Files of an earlier backup that the
    /// store no longer has are removed, and everything is made durable. `dest` opened as a
    /// store recovers to a state that holds every write acknowledged before the call began.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport> {
        let _pause = self.inner.maintenance.lock();
        self.checkpoint_paused()?;
        let storage: &dyn Storage = self.inner.storage.as_ref();
        let current = self.inner.chunks.current_pack();
        let mut names: Vec<String> = storage
            .list("")?
            .into_iter()
            .filter(|n| !is_transient(n))
            .collect();
        names.sort_by_key(|n| copy_rank(n));
        fs::create_dir_all(dest).map_err(io_at(dest))?;
        let mut report = BackupReport::default();
        let mut dirs: HashSet<PathBuf> = HashSet::from([dest.to_path_buf()]);
        let mut buf = vec![0u8; BACKUP_COPY_BYTES];
        for name in &names {
            let to = dest.join(name);
            if let Some(dir) = to.parent() {
                if dirs.insert(dir.to_path_buf()) {
                    fs::create_dir_all(dir).map_err(io_at(dir))?;
                }
            }
            let file = match storage.open(name, false) {
                Ok(f) => f,
                // A log segment rotated away meanwhile is not needed by the copied snapshots.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let len = file.len()?;
            let sealed = parse_pack_name(name).is_some_and(|p| p < current);
            if sealed && fs::metadata(&to).is_ok_and(|m| m.len() == len) {
                report.packs_unchanged += 1;
                report.bytes_unchanged += len;
                continue;
            }
            let tmp = to.with_extension("backup-tmp");
            let mut out = fs::File::create(&tmp).map_err(io_at(&tmp))?;
            let mut at = 0u64;
            while at < len {
                let n = (len - at).min(buf.len() as u64) as usize;
                file.read_exact_at(&mut buf[..n], at)?;
                out.write_all(&buf[..n]).map_err(io_at(&tmp))?;
                at += n as u64;
            }
            out.sync_all().map_err(io_at(&tmp))?;
            fs::rename(&tmp, &to).map_err(io_at(&to))?;
            report.files_copied += 1;
            report.bytes_copied += len;
        }
        let keep: HashSet<PathBuf> = names.iter().map(|n| dest.join(n)).collect();
        report.files_removed = remove_others(dest, &keep)?;
        for dir in &dirs {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(dir))?;
        }
        Ok(report)
    }
}

/// Removes every file under `dir` that is not in `keep`; returns how many.
fn remove_others(dir: &Path, keep: &HashSet<PathBuf>) -> Result<u64> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io_at(&path))?.is_dir() {
            removed += remove_others(&path, keep)?;
        } else if !keep.contains(&path) {
            fs::remove_file(&path).map_err(io_at(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}
