//! `skab backup` and `skab restore`: a whole data dir (store, user database, the
//! initialisation marker) copied while the server runs, and put back into a new data dir.
//! How and why it is consistent: `docs/operations.md`, "Backups".

use std::path::{Path, PathBuf};

use skab_engine::Store;

use crate::admin::AdminRequest;
use crate::app::store_config;
use crate::cli::CliError;
use crate::config::Config;
use crate::serve::INITIALIZED_MARKER;
use crate::users::{UserDb, USERS_DIR};

/// Written last into a backup directory: a backup without it is incomplete and refused.
pub const COMPLETE_MARKER: &str = "BACKUP_COMPLETE";
/// The store's files inside a data dir and inside a backup.
const STORE_DIR: &str = "store";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |e| CliError(format!("{}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` durably (temp file, sync, rename, directory sync).
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Backs the data dir of `config` up into `out` (created if missing; an earlier backup there
/// is brought up to date, copying only what changed of the store). Works while the server
/// runs (through its admin socket) and while it is stopped.
pub fn backup(config: &Config, out: &Path) -> Result<String, CliError> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let out = out.canonicalize().map_err(io_err(out))?;
    // Until the end, this is not a complete backup.
    match std::fs::remove_file(out.join(COMPLETE_MARKER)) {
        Ok(()) => sync_dir(&out)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&out.join(COMPLETE_MARKER))(e)),
    }
    let started = crate::users::now_unix();
    let resp = crate::admin::run(
        config,
        AdminRequest::Backup {
            dest: out.join(STORE_DIR),
        },
    )
    .map_err(CliError)?;
    if !resp.ok {
        return Err(CliError(resp.text));
    }
    let mut text = resp.text;
    // The user database after the store: accounts created meanwhile have no data yet.
    let users = UserDb::open(&config.data_dir)?;
    let bytes = users.backup_to(&out.join(USERS_DIR))?;
    text.push_str(&format!(
        "users: {} accounts ({bytes} bytes of log)\n",
        users.user_count()
    ));
    let marker = config.data_dir.join(INITIALIZED_MARKER);
    if marker.exists() {
        let bytes = std::fs::read(&marker).map_err(io_err(&marker))?;
        write_durably(&out.join(INITIALIZED_MARKER), &bytes)?;
    }
    let done = serde_json::json!({
        "started_unix": started,
        "finished_unix": crate::users::now_unix(),
        "data_dir": config.data_dir,
        "skab_version": env!("CARGO_PKG_VERSION"),
    });
    write_durably(&out.join(COMPLETE_MARKER), done.to_string().as_bytes())?;
    text.push_str(&format!("backup complete in {}\n", out.display()));
    Ok(text)
}

/// Copies the backup `from` into the new data dir `data_dir` (missing or empty), then opens
/// it as the server would (store recovery, user database) to show it is whole.
pub fn restore(config: &Config, from: &Path) -> Result<String, CliError> {
    let data_dir = &config.data_dir;
    if !from.join(COMPLETE_MARKER).exists() {
        return Err(CliError(format!(
            "{} is not a complete backup (no {COMPLETE_MARKER}: the backup did not finish)",
            from.display()
        )));
    }
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(CliError(format!(
            "{} is not empty: restore into a new data dir",
            data_dir.display()
        )));
    }
    let files = copy_tree(from, data_dir, true)?;
    let store_config =
        store_config(config).map_err(|e| CliError(format!("encryption at rest: {e}")))?;
    let store = Store::open(&data_dir.join(STORE_DIR), store_config)
        .map_err(|e| CliError(format!("the restored store does not open: {e}")))?;
    let r = store.recovery_report().clone();
    drop(store);
    if r.chunks_missing > 0 {
        return Err(CliError(format!(
            "the restored store lacks {} chunks its files name: the backup is damaged",
            r.chunks_missing
        )));
    }
    let users = UserDb::open(data_dir)?;
    Ok(format!(
        "restored {files} files into {}: {} spaces, {} accounts; recovery replayed {} log records in {:?}\n",
        data_dir.display(),
        r.spaces,
        users.user_count(),
        r.wal_records_replayed,
        r.duration
    ))
}

/// Copies the files under `from` into `to` (synced, directories too); at the top level the
/// completion marker is left out. Returns how many files.
fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<u64, CliError> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    let mut n = 0;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let src: PathBuf = entry.path();
        let dst = to.join(entry.file_name());
        if top && entry.file_name() == COMPLETE_MARKER {
            continue;
        }
        if entry.file_type().map_err(io_err(&src))?.is_dir() {
            n += copy_tree(&src, &dst, false)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io_err(&src))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&dst))?;
            n += 1;
        }
    }
    sync_dir(to)?;
    Ok(n)
}
