//! `skab import --merge`: an export loaded into a data dir that has the tenant (or, for one
//! user's export, the user) already. Nothing the target holds is changed: files and folders
//! it lacks are added, a file it holds with the same bytes is left alone, and an imported file
//! whose path holds other content (or a folder where the target has a file) is added beside it
//! as `name (import N).ext`; accounts, groups, hand-ins, spaces and shares it lacks are added,
//! the ones it has kept, groups gaining the imported members. Rules: `docs/export.md`, "Merge".

use futures::executor::block_on;
use skab_engine::{SpaceKey, Store};

use super::load::{
    build, load_handin, load_trash_item, load_tree, path_of, prepare, registry_entries, se,
    Imported, Members, Prepared,
};
use super::manifest::{Entry, Kind, Manifest, Quota, Tree};
use super::verify::Verified;
use super::ImportRequest;
use crate::handin::{receipt, Registry};
use crate::limits::IMPORT_MERGE_COPY_NAMES_MAX;
use crate::users::{TenantName, UserDb};

/// What a merge did, for its report.
#[derive(Default, Debug)]
struct Counts {
    trees_new: usize,
    files_added: u64,
    folders_added: u64,
    files_same: u64,
    copies: u64,
    trash_added: u64,
    trash_same: u64,
    trash_skipped: u64,
    versions_dropped: u64,
}

/// `path` with the first prefix of `remap` it lies under replaced.
fn remapped(remap: &[(String, String)], path: &str) -> String {
    for (from, to) in remap {
        if let Some(rest) = path.strip_prefix(from.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{to}{rest}");
            }
        }
    }
    path.to_string()
}

/// `a/b/name.ext` as `a/b/name (import n).ext` (a folder's or a dot file's name gets the
/// mark at its end).
fn copy_name(path: &str, n: u32, is_dir: bool) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    let mark = format!(" (import {n})");
    match name.rfind('.') {
        Some(i) if i > 0 && !is_dir => format!("{dir}{}{mark}{}", &name[..i], &name[i..]),
        _ => format!("{dir}{name}{mark}"),
    }
}

/// Whether the target's entry at `path` is what `e` would put there (a folder for a folder,
/// the same bytes for a file); `None` when nothing is there.
fn same_as(store: &Store, key: &SpaceKey, path: &str, e: &Entry) -> Result<Option<bool>, String> {
    let info = match store.stat(key, &path_of(path)?) {
        Ok(i) => i,
        Err(skab_engine::Error::NotFound) => return Ok(None),
        Err(err) => return Err(format!("{path}: {err}")),
    };
    Ok(Some(match (e.kind, info.kind) {
        (Kind::Dir, skab_engine::ns::Kind::Dir) => true,
        (Kind::File, skab_engine::ns::Kind::File) => {
            let have = info.content.map(|c| hex::encode(c.hash.0));
            have.is_some() && have.as_deref() == e.blake3.as_deref()
        }
        _ => false,
    }))
}

/// Merges the live entries and trash of `t` into the tree the target has.
fn merge_tree(
    store: &Store,
    tenant: &str,
    t: &Tree,
    members: &mut Members<'_>,
    c: &mut Counts,
) -> Result<(), String> {
    let key = SpaceKey::new(tenant, &t.name).map_err(se)?;
    let holds_data = store.space_exists(&key)
        && (store.list(&key, &[]).map_or(true, |(_, l)| !l.is_empty())
            || store.trash(&key).map_or(true, |l| !l.is_empty()));
    if !holds_data {
        // Nothing to merge with: loaded as a plain import loads it, quota and all.
        c.trees_new += 1;
        c.versions_dropped += load_tree(store, tenant, t, members)?;
        for e in &t.entries {
            match e.kind {
                Kind::File => c.files_added += 1,
                Kind::Dir => c.folders_added += 1,
            }
        }
        c.trash_added += t.trash.len() as u64;
        return Ok(());
    }
    // Where an imported folder went when its path was taken: its entries follow it.
    let mut remap: Vec<(String, String)> = Vec::new();
    for e in &t.entries {
        let path = remapped(&remap, &e.path);
        let place = match same_as(store, &key, &path, e)? {
            None => path.clone(),
            Some(true) => {
                if e.kind == Kind::File {
                    c.files_same += 1;
                }
                if path != e.path {
                    remap.push((e.path.clone(), path));
                }
                continue;
            }
            Some(false) => {
                let mut found = None;
                for n in 1..=IMPORT_MERGE_COPY_NAMES_MAX {
                    let cand = copy_name(&path, n, e.kind == Kind::Dir);
                    match same_as(store, &key, &cand, e)? {
                        None => {
                            found = Some((cand, false));
                            break;
                        }
                        // A merge before put it there already.
                        Some(true) => {
                            found = Some((cand, true));
                            break;
                        }
                        Some(false) => {}
                    }
                }
                let Some((cand, done)) = found else {
                    return Err(format!(
                        "{}: {IMPORT_MERGE_COPY_NAMES_MAX} names for an imported copy are taken",
                        e.member
                    ));
                };
                if e.kind == Kind::Dir {
                    remap.push((e.path.clone(), cand.clone()));
                }
                if done {
                    if e.kind == Kind::File {
                        c.files_same += 1;
                    }
                    continue;
                }
                c.copies += 1;
                cand
            }
        };
        let copy = place != path;
        let mut placed = e.clone();
        placed.path = place;
        c.versions_dropped += build(store, &key, members, &[], std::slice::from_ref(&placed))?;
        match e.kind {
            _ if copy => {}
            Kind::File => c.files_added += 1,
            Kind::Dir => c.folders_added += 1,
        }
    }
    // A trash item goes back where it was deleted from only while that place is free (it
    // is rebuilt there, then deleted again); else it stays out. One the trash has already
    // (same place, same deletion time: a merge before) is not added twice.
    let had = store.trash(&key).map_err(se)?;
    for item in &t.trash {
        let orig = path_of(&item.original_path)?;
        if had
            .iter()
            .any(|h| h.orig_path == orig && h.deleted_at == item.deleted_ns)
        {
            c.trash_same += 1;
            continue;
        }
        let free = matches!(store.stat(&key, &orig), Err(skab_engine::Error::NotFound));
        let parent_ok = orig.len() < 2
            || match store.stat(&key, &orig[..orig.len() - 1]) {
                Ok(i) => i.kind == skab_engine::ns::Kind::Dir,
                Err(skab_engine::Error::NotFound) => true,
                Err(e) => return Err(e.to_string()),
            };
        if free && parent_ok {
            c.versions_dropped += load_trash_item(store, &key, &t.name, item, members)?;
            c.trash_added += 1;
        } else {
            c.trash_skipped += 1;
        }
    }
    Ok(())
}

/// `skab import --merge` of the verified archive `v` (see the module's header).
pub(super) fn merge(
    store: &Store,
    req: &ImportRequest,
    v: &Verified,
    db: &UserDb,
) -> Result<Imported, String> {
    let m: &Manifest = &v.manifest;
    let tenant = TenantName::new(&m.tenant.name).map_err(|e| e.to_string())?;
    let Prepared {
        accounts,
        groups,
        seed,
    } = prepare(m)?;
    let (spaces, shares) = registry_entries(m)?;
    let tenant_known = db.tenants().iter().any(|x| x.name == tenant)
        || !store.spaces_of(&m.tenant.name).is_empty();
    let fail = |e: String| {
        format!(
            "merge failed half way: {e}\nwhat was merged before stays; running the same merge \
             again adds the rest (what is there already is left alone)"
        )
    };
    let mut members = Members::open(&req.input, v)?;
    let mut c = Counts::default();
    for t in &m.trees {
        merge_tree(store, &m.tenant.name, t, &mut members, &mut c).map_err(fail)?;
    }
    let (mut handins_added, mut handins_kept) = (0, 0);
    if m.user.is_none() {
        if !tenant_known {
            let quota = match m.tenant.quota {
                Quota::Bytes(b) => Some(b),
                _ => None,
            };
            block_on(store.set_tenant_quota(&m.tenant.name, quota))
                .map_err(|e| fail(e.to_string()))?;
        }
        for h in &m.handins {
            let log = receipt::log_path(&req.data_dir, &m.tenant.name, &h.name)
                .map_err(|e| fail(e.to_string()))?;
            if Registry::new(&req.data_dir)
                .get(&m.tenant.name, &h.name)
                .is_some()
                || log.exists()
            {
                handins_kept += 1;
                continue;
            }
            load_handin(&req.data_dir, &m.tenant.name, h).map_err(fail)?;
            handins_added += 1;
        }
        if let Some(seed) = seed {
            if receipt::read_tenant_key(&req.data_dir, &m.tenant.name)
                .map_err(|e| fail(e.to_string()))?
                .is_none()
            {
                receipt::install_tenant_key(&req.data_dir, &m.tenant.name, &seed)
                    .map_err(|e| fail(format!("receipt key: {e}")))?;
            }
        }
    }
    let created = m.tenant.created_unix.unwrap_or_else(crate::users::now_unix);
    let (accounts_added, groups_added, members_added) = db
        .merge_accounts(&tenant, created, &accounts, &groups)
        .map_err(|e| fail(e.to_string()))?;
    let (spaces_added, shares_added) = if spaces.is_empty() && shares.is_empty() {
        (0, 0)
    } else {
        crate::spaces::registry::Registry::new(&req.data_dir)
            .merge(spaces, shares)
            .map_err(|e| fail(format!("spaces and shares: {e}")))?
    };
    let mut text = format!(
        "merged tenant {tenant}{} into {}:\n\
         files: {} added, {} already there with the same bytes, {} added beside a different \
         file of the same name as \"(import N)\"; folders: {} added; trees: {} new\n\
         trash items: {} added, {} already there, {} left out (their place is taken)\n\
         accounts: {} added, {} kept as they were; groups: {} added, {} members added\n\
         hand-ins: {} added, {} kept; spaces: {} added, {} kept; shares: {} added, {} kept\n",
        m.user
            .as_ref()
            .map(|u| format!(" (user {u})"))
            .unwrap_or_default(),
        req.data_dir.display(),
        c.files_added,
        c.files_same,
        c.copies,
        c.folders_added,
        c.trees_new,
        c.trash_added,
        c.trash_same,
        c.trash_skipped,
        accounts_added,
        accounts.len() - accounts_added,
        groups_added,
        members_added,
        handins_added,
        handins_kept,
        spaces_added,
        m.spaces.len() - spaces_added,
        shares_added,
        m.shares.len() - shares_added,
    );
    if !m.with_password_hashes && accounts_added > 0 {
        text.push_str(
            "the export held no password hashes: set the added accounts' passwords with skab \
             user passwd\n",
        );
    }
    if c.versions_dropped > 0 {
        text.push_str(&format!(
            "{} earlier versions were not kept (storage.versions_kept = {})\n",
            c.versions_dropped,
            store.config().versions_kept
        ));
    }
    Ok(Imported {
        tenant: m.tenant.name.clone(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_and_remapped_paths() {
        assert_eq!(copy_name("a/essay.txt", 1, false), "a/essay (import 1).txt");
        assert_eq!(copy_name("essay", 2, false), "essay (import 2)");
        assert_eq!(copy_name(".profile", 1, false), ".profile (import 1)");
        assert_eq!(copy_name("a/v1.0", 1, true), "a/v1.0 (import 1)");
        let r = vec![("a/b".to_string(), "a/b (import 1)".to_string())];
        assert_eq!(remapped(&r, "a/b/c.txt"), "a/b (import 1)/c.txt");
        assert_eq!(remapped(&r, "a/b"), "a/b (import 1)");
        assert_eq!(remapped(&r, "a/bc"), "a/bc");
    }
}
