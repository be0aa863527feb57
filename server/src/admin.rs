//! Storage administration (quota, usage, scrub, gc) that works whether or not the server runs:
//! a running server answers on a Unix socket in the data dir; otherwise the command opens the
//! store itself (the store's lock file keeps two processes from opening it at once).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Verify every chunk.
    Scrub,
    /// Collect unreferenced chunks, then compact packs at least `compact_ratio` garbage.
    Gc { compact_ratio: f64 },
}

/// The answer: text for people, and whether it succeeded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdminResponse {
    pub ok: bool,
    pub text: String,
}

/// The admin socket of a data dir.
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
    q.map(human).unwrap_or_else(|| "unlimited".into())
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
pub fn spawn_listener(store: Store, data_dir: &Path) -> std::io::Result<()> {
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
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
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
    });
    Ok(())
}

/// Runs a request: through the running server's socket when there is one, else directly.
pub fn run(config: &Config, req: AdminRequest) -> Result<AdminResponse, String> {
    let path = socket_path(&config.data_dir);
    if let Ok(mut stream) = UnixStream::connect(&path) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(24 * 3600)));
        let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| e.to_string())?;
        let mut resp = String::new();
        BufReader::new(stream)
            .read_line(&mut resp)
            .map_err(|e| e.to_string())?;
        return serde_json::from_str(&resp).map_err(|e| format!("bad answer from the server: {e}"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store =
        Store::open(&config.data_dir.join("store"), store_config(config)).map_err(|e| match e {
            skab_engine::Error::Busy => {
                "the store is in use by a server whose admin socket is not reachable".to_string()
            }
            e => format!("opening the store: {e}"),
        })?;
    let resp = runtime.block_on(execute(&store, req));
    store.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
    Ok(resp)
}
