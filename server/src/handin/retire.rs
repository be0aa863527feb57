//! A deleted pupil's hand-in folders: renamed to `_deleted_<user>_<unix s>` (a name no
//! account can have: user names start with a letter or digit), so that a later account of
//! the same name starts with an empty folder while the teacher keeps the submission. Done
//! by `skab user del` (through the running server's admin socket, or on the store itself),
//! and again lazily when a pupil reaches a folder older than their account (docs/handin.md,
//! "Deleted pupils").

use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store};

use crate::limits::TRASH_RESTORE_NAME_TRIES;

/// The prefix of a retired folder.
pub const RETIRED_PREFIX: &str = "_deleted_";

/// Renames `user`'s folder in the hand-in space `key` to the first free
/// `_deleted_<user>_<now>[-N]` and purges the hand-in's trash items from inside it (as the
/// home's trash goes with a deleted account). Returns the new name, `None` when there was
/// no folder. The folder keeps its node ids, so its files keep their versions.
pub async fn folder(store: &Store, key: &SpaceKey, user: &str) -> Result<Option<Name>, String> {
    let e = |e: skab_engine::Error| e.to_string();
    let Ok(from) = Name::new(user) else {
        return Ok(None);
    };
    let mut renamed = None;
    if store.stat(key, std::slice::from_ref(&from)).is_ok() {
        let now = crate::users::now_unix();
        for n in 1..=TRASH_RESTORE_NAME_TRIES {
            let name = match n {
                1 => format!("{RETIRED_PREFIX}{user}_{now}"),
                n => format!("{RETIRED_PREFIX}{user}_{now}-{n}"),
            };
            let to = Name::new(&name).map_err(e)?;
            if store.stat(key, std::slice::from_ref(&to)).is_ok() {
                continue;
            }
            match store
                .rename(
                    key,
                    std::slice::from_ref(&from),
                    std::slice::from_ref(&to),
                    false,
                )
                .await
            {
                Ok(()) => {
                    renamed = Some(to);
                    break;
                }
                // Taken between the look and the rename: the next name.
                Err(skab_engine::Error::AlreadyExists) => continue,
                // Renamed by a concurrent retirement: nothing left to do.
                Err(skab_engine::Error::NotFound) => return Ok(None),
                Err(err) => return Err(e(err)),
            }
        }
        if renamed.is_none() {
            return Err(format!("no free name for {user}'s folder"));
        }
    }
    for t in store.trash(key).map_err(e)? {
        if t.orig_path.first() == Some(&from) {
            match store.purge(key, t.id).await {
                Ok(()) | Err(skab_engine::Error::NotFound) => {}
                Err(err) => return Err(e(err)),
            }
        }
    }
    Ok(renamed)
}

/// Retires `user`'s folder in every hand-in space of `tenant` (also of hand-ins no longer
/// in the registry: their files stay in the store). Returns a line per folder, for the
/// command's output.
pub async fn pupil(store: &Store, tenant: &str, user: &str) -> Result<String, String> {
    let mut out = String::new();
    for key in store.spaces_of(tenant) {
        let Some(handin) = key.user().strip_prefix(super::SPACE_PREFIX) else {
            continue;
        };
        if let Some(to) = folder(store, &key, user)
            .await
            .map_err(|e| format!("hand-in {handin}: {e}"))?
        {
            out.push_str(&format!(
                "{user}@{tenant}: hand-in {handin}: folder kept for the teacher as {to}\n"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[tokio::test]
    async fn a_pupils_folders_are_renamed_out_of_reach_and_their_trash_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), skab_engine::StoreConfig::default()).unwrap();
        let exam = SpaceKey::new("t", "_handin_exam").unwrap();
        let quiz = SpaceKey::new("t", "_handin_quiz").unwrap();
        let home = SpaceKey::new("t", "p1").unwrap();
        for k in [&exam, &quiz, &home] {
            store.create_space(k).await.unwrap();
        }
        store.mkdir(&exam, &[n("p1")]).await.unwrap();
        store.mkdir(&exam, &[n("p1"), n("keep")]).await.unwrap();
        store.mkdir(&exam, &[n("p1"), n("gone")]).await.unwrap();
        store.delete(&exam, &[n("p1"), n("gone")]).await.unwrap();
        store.mkdir(&exam, &[n("p2")]).await.unwrap();
        store.mkdir(&exam, &[n("p2"), n("gone")]).await.unwrap();
        store.delete(&exam, &[n("p2"), n("gone")]).await.unwrap();
        store.mkdir(&home, &[n("p1")]).await.unwrap();

        let out = pupil(&store, "t", "p1").await.unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains("hand-in exam") && out.contains(RETIRED_PREFIX),
            "{out}"
        );
        assert!(store.stat(&exam, &[n("p1")]).is_err());
        let (_, root) = store.list(&exam, &[]).unwrap();
        let retired: Vec<_> = root
            .iter()
            .filter(|e| e.name.starts_with("_deleted_p1_"))
            .collect();
        assert_eq!(retired.len(), 1);
        let kept = [n(&retired[0].name), n("keep")];
        assert!(store.stat(&exam, &kept).is_ok());
        // Only p1's trash went; p2's folder and trash, and homes, are untouched.
        let trash = store.trash(&exam).unwrap();
        assert_eq!(trash.len(), 1);
        assert_eq!(trash[0].orig_path[0], n("p2"));
        assert!(store.stat(&exam, &[n("p2")]).is_ok());
        assert!(store.stat(&home, &[n("p1")]).is_ok());
        // A second folder of the same name gets a free name beside the first.
        store.mkdir(&exam, &[n("p1")]).await.unwrap();
        let again = folder(&store, &exam, "p1").await.unwrap().unwrap();
        assert_ne!(again.as_str(), retired[0].name);
        assert!(store.stat(&exam, &[again]).is_ok());
        // Nothing left to retire: idempotent.
        assert_eq!(pupil(&store, "t", "p1").await.unwrap(), "");
    }
}
