//! Storage administration (quota, usage, scrub, gc) that works whether or not the server runs:
//! a running server answers on a Unix socket in the data dir; otherwise the command opens the
//! store itself (the store's lock file keeps two processes from opening it at once).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skab_engine::ns::{Kind, Name};
use skab_engine::{SpaceKey, Store};

use crate::app::store_config;
use crate::config::Config;
use crate::limits::{ADMIN_REQUEST_LEN_MAX, ADMIN_TIMEOUT_S};

/// One administration request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum AdminRequest {
    /// Set a user's (or, without user, a tenant's) quota in bytes; `None` = unlimited.
    SetQuota {
        tenant: String,
        user: Option<String>,
        bytes: Option<u64>,
    },
    /// Usage of one tenant's users, or of every tenant.
    Usage { tenant: Option<String> },
    /// Empties a user's space (`user`) or every space of a tenant (`None`): files, versions,
    /// trash and own quota; with `keep_data`, the user's current files and folders are first
    /// copied to `<keep_data>/<user>/` in the space of that name in the same tenant.
    DeleteSpaces {
        tenant: String,
        user: Option<String>,
        keep_data: Option<String>,
    },
    /// Crypto-erasure of a tenant (`Store::erase_tenant`), then gc: its key must already be
    /// destroyed or is destroyed here first.
    EraseTenant { tenant: String },
    /// Verify every chunk.
    Scrub,
    /// Collect unreferenced chunks, then compact packs at least `compact_ratio` garbage.
    Gc { compact_ratio: f64 },
    /// Copy the store into this directory while it serves (`Store::backup`).
    Backup { dest: PathBuf },
    /// Write a tenant's export archive (`export::write`).
    Export(crate::export::ExportRequest),
    /// Load an export archive (`export::load`).
    Import(crate::export::ImportRequest),
    /// Versions and trash of one user's space (`history.rs`).
    History {
        tenant: String,
        user: String,
        req: crate::history::HistoryRequest,
    },
    /// An `skab` command line (without the program name) and its stdin, run by the server
    /// against its own data dir: in object storage mode, where no second process may write
    /// the data dir's own files (`crate::own_files`, `cli::run_forwarded`).
    Cli {
        argv: Vec<String>,
        stdin: Option<String>,
    },
}

/// The answer: text for people, and whether it succeeded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdminResponse {
    pub ok: bool,
    pub text: String,
}

/// The admin socket of a data dir.
/// What `DeleteSpaces` answers when there was nothing to delete.
pub const NO_STORED_DATA: &str = "no stored data\n";

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn quota_text(q: Option<u64>) -> String {
    match q {
        None | Some(u64::MAX) => "unlimited".into(),
        Some(b) => human(b),
    }
}

/// Copies the current files and folders of `from` to `to` under `dest` (streamed; chunks are
/// shared by deduplication within the tenant, so the copy stores little).
async fn copy_tree(
    store: &Store,
    from: &SpaceKey,
    to: &SpaceKey,
    dest: Vec<Name>,
) -> Result<u64, String> {
    let e = |e: skab_engine::Error| e.to_string();
    store.mkdir(to, &dest).await.map_err(e)?;
    let mut files = 0u64;
    // (source path, destination path) of folders still to copy.
    let mut todo = vec![(Vec::<Name>::new(), dest)];
    while let Some((src, dst)) = todo.pop() {
        let (_, children) = store.list(from, &src).map_err(e)?;
        for c in children {
            let name = Name::new(&c.name).map_err(e)?;
            let mut s = src.clone();
            s.push(name.clone());
            let mut d = dst.clone();
            d.push(name);
            match c.kind {
                Kind::Dir => {
                    store.mkdir(to, &d).await.map_err(e)?;
                    todo.push((s, d));
                }
                Kind::File => {
                    let stream = store.read_entry(from, &c, None).map_err(e)?;
                    store.put(to, &d, stream).await.map_err(e)?;
                    files += 1;
                }
            }
        }
    }
    Ok(files)
}

/// Empties a space for good: every entry to the trash, then the trash purged (versions go
/// with their files); the freed chunks are collected by the next `skab gc`. Its own quota is
/// removed. Returns the logical bytes it held.
async fn wipe_space(store: &Store, key: &SpaceKey) -> Result<u64, String> {
    let e = |e: skab_engine::Error| e.to_string();
    let before = store.usage(key).map_err(e)?.used_bytes;
    let (_, children) = store.list(key, &[]).map_err(e)?;
    for c in children {
        store
            .delete(key, &[Name::new(&c.name).map_err(e)?])
            .await
            .map_err(e)?;
    }
    for t in store.trash(key).map_err(e)? {
        store.purge(key, t.id).await.map_err(e)?;
    }
    store.set_space_quota(key, None).await.map_err(e)?;
    Ok(before)
}

async fn delete_spaces(
    store: &Store,
    tenant: &str,
    user: Option<&str>,
    keep_data: Option<&str>,
) -> Result<String, String> {
    let spaces = match user {
        Some(u) => vec![SpaceKey::new(tenant, u).map_err(|e| e.to_string())?],
        None => store.spaces_of(tenant),
    };
    let mut out = String::new();
    for key in spaces.iter().filter(|k| store.space_exists(k)) {
        if let Some(archive) = keep_data {
            let to = SpaceKey::new(tenant, archive).map_err(|e| format!("archive: {e}"))?;
            if to == *key {
                return Err("the archive must be another space than the user's".into());
            }
            if store.create_space(&to).await.map_err(|e| e.to_string())? {
                // A fresh archive is not bound by the default quota of pupils.
                store
                    .set_space_quota(&to, Some(u64::MAX))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let dest = vec![Name::new(key.user()).map_err(|e| e.to_string())?];
            if store.stat(&to, &dest).is_ok() {
                return Err(format!(
                    "{archive}@{tenant} already holds {}/; nothing was deleted (choose another archive)",
                    key.user()
                ));
            }
            let files = copy_tree(store, key, &to, dest).await?;
            out.push_str(&format!(
                "{}@{tenant}: {files} files archived to {archive}@{tenant} under {}/\n",
                key.user(),
                key.user()
            ));
        }
        let freed = wipe_space(store, key).await?;
        out.push_str(&format!(
            "{}@{tenant}: data deleted ({})\n",
            key.user(),
            human(freed)
        ));
    }
    if let Some(u) = user {
        out.push_str(&crate::handin::retire::pupil(store, tenant, u).await?);
    }
    if out.is_empty() {
        out.push_str(NO_STORED_DATA);
    }
    Ok(out)
}

/// Runs a request against an open store.
pub async fn execute(store: &Store, req: AdminRequest) -> AdminResponse {
    let result: Result<String, String> = async {
        match req {
            AdminRequest::SetQuota { tenant, user: Some(user), bytes } => {
                let key = SpaceKey::new(&tenant, &user).map_err(|e| e.to_string())?;
                store.create_space(&key).await.map_err(|e| e.to_string())?;
                store.set_space_quota(&key, bytes).await.map_err(|e| e.to_string())?;
                Ok(format!("quota of {user}@{tenant}: {}", quota_text(bytes)))
            }
            AdminRequest::SetQuota { tenant, user: None, bytes } => {
                store.set_tenant_quota(&tenant, bytes).await.map_err(|e| e.to_string())?;
                Ok(format!("quota of tenant {tenant}: {}", quota_text(bytes)))
            }
            AdminRequest::Usage { tenant } => {
                let tenants = match tenant {
                    Some(t) => vec![t],
                    None => store.tenants(),
                };
                let mut out = String::new();
                for t in tenants {
                    let (used, quota) = store.tenant_usage(&t).map_err(|e| format!("tenant {t}: {e}"))?;
                    out.push_str(&format!("{t}\t{}\tquota {}\n", human(used), quota_text(quota)));
                    for space in store.spaces_of(&t) {
                        if let Ok(u) = store.usage(&space) {
                            out.push_str(&format!(
                                "  {}@{t}\t{}\tquota {}\n",
                                space.user(),
                                human(u.used_bytes),
                                quota_text(u.quota_bytes)
                            ));
                        }
                    }
                }
                let s = store.stats();
                out.push_str(&format!(
                    "total: logical {}, stored {} in {} chunks, packs {}, dedup ratio {:.2}\n",
                    human(s.logical_bytes),
                    human(s.stored_bytes),
                    s.unique_chunks,
                    human(s.pack_bytes),
                    s.dedup_ratio
                ));
                Ok(out)
            }
            AdminRequest::DeleteSpaces { tenant, user, keep_data } => {
                delete_spaces(store, &tenant, user.as_deref(), keep_data.as_deref()).await
            }
            AdminRequest::EraseTenant { tenant } => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    let r = store.erase_tenant(&tenant).map_err(|e| format!("erase: {e}"))?;
                    let gc = store.gc();
                    Ok(format!(
                        "dropped {} spaces ({} entries) of tenant {tenant} from the store; \
                         collected {} chunks ({})\n",
                        r.spaces,
                        r.entries,
                        gc.chunks_removed,
                        human(gc.bytes_removed)
                    ))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            AdminRequest::Scrub => {
                let store = store.clone();
                let r = tokio::task::spawn_blocking(move || store.scrub()).await.map_err(|e| e.to_string())?;
                let mut out = format!(
                    "scrub: {} chunks ({}) and {} files checked\n",
                    r.chunks.chunks_checked,
                    human(r.chunks.bytes_checked),
                    r.files_checked
                );
                for (id, why) in &r.chunks.corrupt {
                    out.push_str(&format!("CORRUPT chunk {id}: {why}\n"));
                }
                for (space, why) in &r.hash_mismatches {
                    out.push_str(&format!("CORRUPT in {space}: {why}\n"));
                }
                for (space, why) in &r.missing {
                    out.push_str(&format!("MISSING in {space}: {why}\n"));
                }
                if r.is_clean() {
                    out.push_str("no corruption found\n");
                    Ok(out)
                } else {
                    Err(out)
                }
            }
            AdminRequest::Backup { dest } => {
                let store = store.clone();
                let r = tokio::task::spawn_blocking(move || store.backup(&dest))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("backup: {e}"))?;
                Ok(format!(
                    "store: copied {} files ({}), {} sealed packs unchanged ({}), removed {} files no longer in the store\n",
                    r.files_copied,
                    human(r.bytes_copied),
                    r.packs_unchanged,
                    human(r.bytes_unchanged),
                    r.files_removed
                ))
            }
            AdminRequest::Export(req) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || crate::export::write::export(&store, &req))
                    .await
                    .map_err(|e| e.to_string())?
            }
            AdminRequest::Import(req) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || crate::export::load::import(&store, &req))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|done| done.text)
            }
            AdminRequest::History { tenant, user, req } => {
                crate::history::execute(store, &tenant, &user, req).await
            }
            AdminRequest::Cli { .. } => {
                Err("a command line is run only by the server's admin socket".to_string())
            }
            AdminRequest::Gc { compact_ratio } => {
                let expired = store.expire().await.map_err(|e| e.to_string())?;
                let store2 = store.clone();
                let (gc, compact) = tokio::task::spawn_blocking(move || {
                    let gc = store2.gc();
                    store2.compact(compact_ratio).map(|c| (gc, c))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                Ok(format!(
                    "expired versions/trash in {expired} spaces; collected {} chunks ({}); compacted {} packs, moved {} chunks, reclaimed {}\n",
                    gc.chunks_removed,
                    human(gc.bytes_removed),
                    compact.packs_removed,
                    compact.chunks_moved,
                    human(compact.bytes_reclaimed)
                ))
            }
        }
    }
    .await;
    match result {
        Ok(text) => AdminResponse { ok: true, text },
        Err(text) => AdminResponse { ok: false, text },
    }
}

/// Serves admin requests on the data dir's socket (one request per connection).
pub fn spawn_listener(
    store: Store,
    data_dir: &Path,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let store = Arc::new(store);
    let data_dir = data_dir.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            let data_dir = data_dir.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read.take(ADMIN_REQUEST_LEN_MAX as u64));
                let read = tokio::time::timeout(
                    Duration::from_secs(ADMIN_TIMEOUT_S),
                    reader.read_line(&mut line),
                )
                .await;
                let resp = match read {
                    Ok(Ok(_)) => match serde_json::from_str::<AdminRequest>(&line) {
                        Ok(AdminRequest::Cli { argv, stdin }) => {
                            run_cli(data_dir, argv, stdin).await
                        }
                        Ok(req) => execute(&store, req).await,
                        Err(e) => AdminResponse {
                            ok: false,
                            text: format!("bad admin request: {e}"),
                        },
                    },
                    _ => AdminResponse {
                        ok: false,
                        text: "admin request not received".into(),
                    },
                };
                if let Ok(mut out) = serde_json::to_vec(&resp) {
                    out.push(b'\n');
                    let _ = write.write_all(&out).await;
                }
            });
        }
    }))
}

/// A forwarded command line, run in the server when it mirrors its own files (object storage
/// mode): refused otherwise (on local disk `skab` runs the command itself).
async fn run_cli(data_dir: PathBuf, argv: Vec<String>, stdin: Option<String>) -> AdminResponse {
    let Some(config) = crate::own_files::config_of(&data_dir) else {
        return AdminResponse {
            ok: false,
            text: "this server runs admin command lines only in object storage mode".into(),
        };
    };
    tokio::task::spawn_blocking(move || crate::cli::run_forwarded(config, argv, stdin, false))
        .await
        .unwrap_or_else(|e| AdminResponse {
            ok: false,
            text: format!("the command failed in the server: {e}"),
        })
}

/// Sends `req` to the server running on `data_dir` and waits for its answer; an error when no
/// server answers there.
pub fn send(data_dir: &Path, req: &AdminRequest) -> Result<AdminResponse, String> {
    let mut stream = UnixStream::connect(socket_path(data_dir)).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(24 * 3600)));
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    BufReader::new(stream)
        .read_line(&mut resp)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&resp).map_err(|e| format!("bad answer from the server: {e}"))
}

/// Runs a request: through the running server's socket when there is one, else directly.
pub fn run(config: &Config, req: AdminRequest) -> Result<AdminResponse, String> {
    if UnixStream::connect(socket_path(&config.data_dir)).is_ok() {
        return send(&config.data_dir, &req);
    }
    // Offline: some requests (import, tenant erasure) write the data dir's own files.
    crate::own_files::open(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store_config = store_config(config).map_err(|e| format!("encryption at rest: {e}"))?;
    let store = crate::app::open_store(config, store_config, None).map_err(|e| match e {
        skab_engine::Error::Busy => {
            "the store is in use by a server whose admin socket is not reachable".to_string()
        }
        e => format!("opening the store: {e}"),
    })?;
    let resp = runtime.block_on(execute(&store, req));
    store.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
    Ok(resp)
}
