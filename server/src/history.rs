//! Versions and trash for the help desk (`skab version|trash`): listing, restoring and
//! purging one user's earlier versions and deleted entries, through the admin path.

use skab_engine::ns::{parse_path, Name};
use skab_engine::{SpaceKey, Store};

/// One versions or trash request of the admin path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum HistoryRequest {
    /// The earlier versions of one file.
    Versions { path: String },
    /// Makes version `id` of the file current; the current content becomes a version.
    RestoreVersion { path: String, id: u64 },
    /// The trash, oldest first.
    Trash,
    /// Brings trash item `id` back to where it was, or to `to`; never over an existing entry.
    RestoreTrash { id: u64, to: Option<String> },
    /// Drops trash item `id`, or the whole trash.
    Purge { id: Option<u64> },
}

/// Who may reach a space's versions and trash by its own root: its owner (and the help desk,
/// which passes `None`); another requester is answered as if the space did not exist.
/// Spaces, shares and hand-ins are reached under one's own root (`history_dav`'s scopes).
pub fn may_reach(requester: Option<&SpaceKey>, space: &SpaceKey) -> bool {
    match requester {
        None => true,
        Some(r) => r == space,
    }
}

fn path_text(p: &[Name]) -> String {
    let parts: Vec<&str> = p.iter().map(Name::as_str).collect();
    format!("/{}", parts.join("/"))
}

fn time_text(ns: i64) -> String {
    crate::dav::xml::rfc3339(crate::methods::common::time_of(ns))
}

fn names(path: &str) -> Result<Vec<Name>, String> {
    parse_path(path).map_err(|e| format!("{path}: {e}"))
}

/// Runs one request on the space of `tenant`/`user`.
pub async fn execute(
    store: &Store,
    tenant: &str,
    user: &str,
    req: HistoryRequest,
) -> Result<String, String> {
    let key = SpaceKey::new(tenant, user).map_err(|e| e.to_string())?;
    if !may_reach(None, &key) || !store.space_exists(&key) {
        return Err(format!("{user}@{tenant} has no stored data"));
    }
    match req {
        HistoryRequest::Versions { path } => {
            let p = names(&path)?;
            let vs = store
                .versions(&key, &p)
                .map_err(|e| format!("{path}: {e}"))?;
            let mut out = format!("{} earlier versions of {}\n", vs.len(), path_text(&p));
            for v in vs {
                out.push_str(&format!(
                    "{}\t{} bytes\tmodified {}\treplaced {}\n",
                    v.id,
                    v.content.size,
                    time_text(v.mtime),
                    time_text(v.superseded_at)
                ));
            }
            Ok(out)
        }
        HistoryRequest::RestoreVersion { path, id } => {
            let p = names(&path)?;
            store
                .restore_version(&key, &p, id)
                .await
                .map_err(|e| format!("{path} version {id}: {e}"))?;
            Ok(format!(
                "restored version {id} of {}; the content it replaced is now a version\n",
                path_text(&p)
            ))
        }
        HistoryRequest::Trash => {
            let items = store.trash(&key).map_err(|e| e.to_string())?;
            let mut out = format!("{} items in the trash of {user}@{tenant}\n", items.len());
            for t in items {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{} entries, {} bytes\tdeleted {}\n",
                    t.id,
                    if t.kind == skab_engine::ns::Kind::Dir {
                        "folder"
                    } else {
                        "file"
                    },
                    path_text(&t.orig_path),
                    t.entries,
                    t.bytes,
                    time_text(t.deleted_at)
                ));
            }
            Ok(out)
        }
        HistoryRequest::RestoreTrash { id, to } => {
            let to = to.as_deref().map(names).transpose()?;
            let item = store
                .trash(&key)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or(format!("no trash item {id}"))?;
            let target = to.clone().unwrap_or(item.orig_path.clone());
            store
                .restore(&key, id, to.as_deref())
                .await
                .map_err(|e| match e {
                    skab_engine::Error::AlreadyExists => format!(
                        "{} exists; nothing was overwritten: restore with --to another path",
                        path_text(&target)
                    ),
                    e => format!("trash item {id} to {}: {e}", path_text(&target)),
                })?;
            Ok(format!(
                "restored trash item {id} to {}\n",
                path_text(&target)
            ))
        }
        HistoryRequest::Purge { id: Some(id) } => {
            store
                .purge(&key, id)
                .await
                .map_err(|e| format!("trash item {id}: {e}"))?;
            Ok(format!("purged trash item {id}\n"))
        }
        HistoryRequest::Purge { id: None } => {
            let items = store.trash(&key).map_err(|e| e.to_string())?;
            let n = items.len();
            for t in items {
                store
                    .purge(&key, t.id)
                    .await
                    .map_err(|e| format!("trash item {}: {e}", t.id))?;
            }
            Ok(format!("purged {n} trash items of {user}@{tenant}\n"))
        }
    }
}
