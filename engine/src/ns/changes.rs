//! The per-space change log behind WebDAV `sync-collection` (RFC 6578): what changed since a
//! sync token. Derived in `apply`, so WAL replay rebuilds it; kept in the space snapshot.
//!
//! Entries, bound, truncation and the answer's rules: `docs/namespace.md`, "Change log".

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::tree::{SpaceTree, FREE};
use super::{EntryInfo, Name, NsOp};
use crate::limits::{CHANGE_LOG_ENTRIES_MAX, SYNC_RESULTS_MAX, SYNC_WORK_MAX};
use crate::NodeId;

/// One logged change. 16 bytes: a removal's path lives behind a thin pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// The node (a file or collection) was created or changed; with `subtree`, every entry
    /// below it too (it was moved, copied or restored there).
    Changed { node: u32, subtree: bool },
    /// The entry at this path went away (deleted, moved away, or overwritten).
    Removed(Box<Removal>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Removal {
    pub(super) path: Box<[Name]>,
    /// It was a collection (its members went with it).
    pub(super) dir: bool,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

/// A space's change log: entry `i` has sequence number `floor + 1 + i`; `seq` is the last.
#[derive(Default)]
pub(super) struct ChangeLog {
    /// Identifies this log (0 until the first change): a token of another log is refused.
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) entries: VecDeque<Entry>,
}

impl ChangeLog {
    /// Oldest sequence number a token may carry and still be answered.
    pub(super) fn floor(&self) -> u64 {
        self.seq - self.entries.len() as u64
    }

    fn push(&mut self, e: Entry, now: i64) {
        if self.epoch == 0 {
            self.epoch = epoch_of(now as u64);
        }
        if self.entries.len() >= CHANGE_LOG_ENTRIES_MAX {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
        self.seq += 1;
    }
}

/// A nonzero epoch derived from a time (splitmix64): replay derives the same one.
pub(super) fn epoch_of(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// A position in a space's change log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncToken {
    pub epoch: u64,
    pub seq: u64,
}

/// One member in a change answer. Paths are from the space's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Created or changed: its current path and state.
    Changed { path: Vec<Name>, info: EntryInfo },
    /// No longer there (`dir`: it was a collection, as far as the log knows).
    Removed { path: Vec<Name>, dir: bool },
}

/// The answer to "what changed since this token".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// The changes (each path once), up to `token`; `complete` is false when they stop short
    /// of the present (a limit): asking again from `token` gives the rest.
    Since {
        changes: Vec<Change>,
        token: SyncToken,
        complete: bool,
    },
    /// The token is of another log, older than the log reaches, from the future, or the
    /// collection itself was replaced since: the client must list everything again.
    Invalid,
    /// Even the first step (or the initial listing) holds more than [`SYNC_RESULTS_MAX`]
    /// members.
    TooMany,
}

/// What one path became in an answer being built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Changed(u32),
    Removed { dir: bool },
}

impl SpaceTree {
    /// Logs the visible changes `op` made. `pre` is what [`SpaceTree::change_pre`] saw before.
    pub(super) fn log_change(&mut self, op: &NsOp, pre: Pre) {
        let now = op_time(op);
        let changed = |t: &SpaceTree, path: &[Name], subtree: bool| {
            t.find(path).ok().map(|s| Entry::Changed {
                node: s,
                subtree: subtree && !t.node(s).is_file(),
            })
        };
        let removed = |path: &[Name], dir: bool| {
            Entry::Removed(Box::new(Removal {
                path: path.into(),
                dir,
            }))
        };
        let mut out: Vec<Entry> = Vec::new();
        match op {
            NsOp::Mkdir { path, .. }
            | NsOp::PutFile { path, .. }
            | NsOp::PutFileAt { path, .. }
            | NsOp::RestoreVersion { path, .. }
            | NsOp::SetProps { path, .. }
            | NsOp::SetPropsUntimed { path, .. } => out.extend(changed(self, path, false)),
            NsOp::Move { from, to, .. } | NsOp::Copy { from, to, .. } => {
                if let Some(dir) = pre.dst_dir {
                    out.push(removed(to, dir));
                }
                if matches!(op, NsOp::Move { .. }) {
                    out.push(removed(from, pre.src_dir));
                }
                out.extend(changed(self, to, true));
            }
            NsOp::Delete { path, .. } => out.push(removed(path, pre.src_dir)),
            NsOp::Restore { .. } => {
                if let Some(root) = pre.restored {
                    out.push(Entry::Changed {
                        node: root,
                        subtree: !self.node(root).is_file(),
                    });
                }
            }
            NsOp::PurgeTrash { .. } | NsOp::Expire { .. } | NsOp::SetQuota { .. } => {}
        }
        for e in out {
            self.changes.push(e, now);
        }
    }

    /// What logging `op` needs from the state before it.
    pub(super) fn change_pre(&self, op: &NsOp) -> Pre {
        let kind = |p: &[Name]| self.find(p).ok().map(|s| !self.node(s).is_file());
        match op {
            NsOp::Move { from, to, .. } | NsOp::Copy { from, to, .. } => Pre {
                src_dir: kind(from).unwrap_or(false),
                dst_dir: kind(to),
                restored: None,
            },
            NsOp::Delete { path, .. } => Pre {
                src_dir: kind(path).unwrap_or(false),
                ..Pre::default()
            },
            NsOp::Restore { trash_id, .. } => Pre {
                restored: self
                    .trash
                    .binary_search_by_key(trash_id, |e| e.id)
                    .ok()
                    .map(|i| self.trash[i].root),
                ..Pre::default()
            },
            _ => Pre::default(),
        }
    }

    /// The token of the space's present state.
    pub fn sync_token(&self) -> SyncToken {
        SyncToken {
            epoch: self.changes.epoch,
            seq: self.changes.seq,
        }
    }

    /// Oldest sequence number still answerable, and entries in the log.
    pub fn change_log_span(&self) -> (u64, usize) {
        (self.changes.floor(), self.changes.entries.len())
    }

    /// Every member of the collection at `under` (its children, or with `infinite` all
    /// entries below it) as changes, with the present token: the initial sync.
    pub fn sync_listing(&self, under: &[Name], infinite: bool) -> Option<Changes> {
        let root = self.find(under).ok()?;
        if self.node(root).is_file() {
            return None;
        }
        let mut changes = Vec::new();
        for s in self.members(root, infinite) {
            if changes.len() >= SYNC_RESULTS_MAX {
                return Some(Changes::TooMany);
            }
            if let Some(c) = self.changed_entry(s) {
                changes.push(c);
            }
        }
        Some(Changes::Since {
            changes,
            token: self.sync_token(),
            complete: true,
        })
    }

    /// What changed below the collection at `under` since `token` (children only, or with
    /// `infinite` all entries below), each path once, at most `limit` members unless the
    /// first logged change alone has more. `None`: `under` is not a live collection.
    pub fn changes_since(
        &self,
        token: SyncToken,
        under: &[Name],
        infinite: bool,
        limit: usize,
    ) -> Option<Changes> {
        let root = self.find(under).ok()?;
        if self.node(root).is_file() {
            return None;
        }
        let log = &self.changes;
        if token.epoch != log.epoch || token.seq < log.floor() || token.seq > log.seq {
            return Some(Changes::Invalid);
        }
        let base = under.len();
        let in_scope = |p: &[Name]| p.len() > base && (infinite || p.len() == base + 1);
        let mut states: HashMap<Vec<Name>, State> = HashMap::new();
        let mut order: Vec<Vec<Name>> = Vec::new();
        let mut upto = token.seq;
        let mut work = 0usize;
        let skip = (token.seq - log.floor()) as usize;
        for entry in log.entries.iter().skip(skip) {
            let mut touched: Vec<(Vec<Name>, State)> = Vec::new();
            match entry {
                Entry::Removed(r) => {
                    if r.path.len() <= base && under.starts_with(&r.path) {
                        // The collection itself (or one above it) went away since the token.
                        return Some(Changes::Invalid);
                    }
                    if r.path.starts_with(under) {
                        self.touch_above(&r.path, base, infinite, &mut touched);
                        if in_scope(&r.path) {
                            touched.push((r.path.to_vec(), State::Removed { dir: r.dir }));
                        }
                    }
                }
                Entry::Changed { node, subtree } => {
                    if let Some(path) = self.live_path(*node) {
                        if path.starts_with(under) && path.len() > base {
                            self.touch_above(&path, base, infinite, &mut touched);
                            if in_scope(&path) {
                                touched.push((path.clone(), State::Changed(*node)));
                                if *subtree && infinite {
                                    for s in self.members(*node, true) {
                                        if let Some(p) = self.live_path(s) {
                                            touched.push((p, State::Changed(s)));
                                        }
                                    }
                                }
                            }
                        } else if *subtree && under.starts_with(&path) {
                            // Moved or copied onto the collection or above it: all is new.
                            for s in self.members(root, infinite) {
                                if let Some(p) = self.live_path(s) {
                                    touched.push((p, State::Changed(s)));
                                }
                            }
                        }
                    }
                }
            }
            let new = touched
                .iter()
                .filter(|(p, _)| !states.contains_key(p))
                .count();
            // A collection removed and then live again at the same path in one answer would
            // hide the removal of its old members: such a change starts the next answer.
            let revives = infinite
                && touched.iter().any(|(p, s)| {
                    matches!(s, State::Changed(_))
                        && matches!(states.get(p), Some(State::Removed { dir: true }))
                });
            let taken = upto > token.seq;
            work += touched.len();
            if taken && (states.len() + new > limit || revives || work > SYNC_WORK_MAX) {
                return Some(self.answer(&order, &states, upto, false));
            }
            if states.len() + new > SYNC_RESULTS_MAX {
                return Some(Changes::TooMany);
            }
            for (p, s) in touched {
                if states.insert(p.clone(), s).is_none() {
                    order.push(p);
                }
            }
            upto += 1;
        }
        Some(self.answer(&order, &states, upto, true))
    }

    fn answer(
        &self,
        order: &[Vec<Name>],
        states: &HashMap<Vec<Name>, State>,
        upto: u64,
        complete: bool,
    ) -> Changes {
        let changes = order
            .iter()
            .filter_map(|p| match states.get(p)? {
                State::Changed(s) => match self.stat(NodeId(*s)) {
                    Some(info) => Some(Change::Changed {
                        path: p.clone(),
                        info,
                    }),
                    None => Some(Change::Removed {
                        path: p.clone(),
                        dir: false,
                    }),
                },
                State::Removed { dir } => Some(Change::Removed {
                    path: p.clone(),
                    dir: *dir,
                }),
            })
            .collect();
        Changes::Since {
            changes,
            token: SyncToken {
                epoch: self.changes.epoch,
                seq: upto,
            },
            complete,
        }
    }

    /// A change at `path` changed every collection between the queried one (`base`
    /// components) and it (their mtime and ETag): those in scope are members that changed.
    fn touch_above(
        &self,
        path: &[Name],
        base: usize,
        infinite: bool,
        touched: &mut Vec<(Vec<Name>, State)>,
    ) {
        let top = if infinite {
            path.len()
        } else {
            path.len().min(base + 2)
        };
        for k in base + 1..top {
            if let Ok(s) = self.find(&path[..k]) {
                touched.push((path[..k].to_vec(), State::Changed(s)));
            }
        }
    }

    fn changed_entry(&self, s: u32) -> Option<Change> {
        Some(Change::Changed {
            path: self.live_path(s)?,
            info: self.stat(NodeId(s))?,
        })
    }

    fn live_path(&self, s: u32) -> Option<Vec<Name>> {
        self.path_of(NodeId(s))
    }

    /// Slots below directory `root`: its children, or with `infinite` the whole subtree
    /// (pre-order), `root` itself excluded.
    fn members(&self, root: u32, infinite: bool) -> Vec<u32> {
        if self.node(root).is_file() || self.node(root).parent == FREE {
            return Vec::new();
        }
        if !infinite {
            return self.children(NodeId(root)).map(|n| n.0).collect();
        }
        let mut out = Vec::new();
        let mut cur = root;
        while let Some(n) = self.walk_next(root, cur) {
            out.push(n);
            cur = n;
            if out.len() > SYNC_RESULTS_MAX {
                break;
            }
        }
        out
    }
}

/// What [`SpaceTree::log_change`] needs to know from before an op.
#[derive(Default, Clone, Copy)]
pub(super) struct Pre {
    src_dir: bool,
    dst_dir: Option<bool>,
    restored: Option<u32>,
}

fn op_time(op: &NsOp) -> i64 {
    match op {
        NsOp::Mkdir { now, .. }
        | NsOp::PutFile { now, .. }
        | NsOp::PutFileAt { now, .. }
        | NsOp::Move { now, .. }
        | NsOp::Copy { now, .. }
        | NsOp::Delete { now, .. }
        | NsOp::Restore { now, .. }
        | NsOp::RestoreVersion { now, .. }
        | NsOp::Expire { now, .. }
        | NsOp::SetProps { now, .. } => *now,
        NsOp::SetPropsUntimed { .. } | NsOp::PurgeTrash { .. } | NsOp::SetQuota { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns::{parse_path, ChunkRef, Content};
    use crate::{ChunkId, ContentHash};

    fn p(s: &str) -> Vec<Name> {
        parse_path(s).unwrap()
    }

    fn put(t: &mut SpaceTree, path: &str, b: u8, now: i64) {
        t.apply(&NsOp::PutFile {
            path: p(path),
            content: Content {
                hash: ContentHash([b; 32]),
                size: 1,
                chunks: vec![ChunkRef {
                    id: ChunkId([b; 32]),
                    len: 1,
                }]
                .into(),
            },
            now,
            keep_versions: 1,
        })
        .unwrap();
    }

    fn mkdir(t: &mut SpaceTree, path: &str, now: i64) {
        t.apply(&NsOp::Mkdir { path: p(path), now }).unwrap();
    }

    /// ("+path" | "-path") of each change, sorted.
    fn since(t: &SpaceTree, tok: SyncToken, under: &str, inf: bool) -> Vec<String> {
        let Some(Changes::Since {
            changes, complete, ..
        }) = t.changes_since(tok, &p(under), inf, usize::MAX)
        else {
            panic!("no answer");
        };
        assert!(complete);
        let mut v: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Changed { path, .. } => format!("+{}", join(path)),
                Change::Removed { path, .. } => format!("-{}", join(path)),
            })
            .collect();
        v.sort();
        v
    }

    fn join(p: &[Name]) -> String {
        p.iter().map(|n| n.as_str()).collect::<Vec<_>>().join("/")
    }

    #[test]
    fn changes_by_kind_and_depth() {
        let mut t = SpaceTree::new();
        mkdir(&mut t, "a", 1);
        put(&mut t, "a/f", 1, 2);
        put(&mut t, "g", 2, 3);
        let tok = t.sync_token();
        assert_eq!(tok.seq, 3);
        assert_ne!(tok.epoch, 0);
        assert!(since(&t, tok, "", true).is_empty());
        put(&mut t, "a/f", 3, 4);
        assert_eq!(since(&t, tok, "", true), ["+a", "+a/f"]);
        assert_eq!(since(&t, tok, "", false), ["+a"]);
        assert_eq!(since(&t, tok, "a", false), ["+a/f"]);
        t.apply(&NsOp::Move {
            from: p("a"),
            to: p("b"),
            overwrite: false,
            now: 5,
        })
        .unwrap();
        assert_eq!(since(&t, tok, "", true), ["+b", "+b/f", "-a"]);
        assert_eq!(since(&t, tok, "", false), ["+b", "-a"]);
        // Asked about the moved collection itself: all of it is new there.
        assert_eq!(since(&t, tok, "b", true), ["+b/f"]);
        let tok2 = t.sync_token();
        t.apply(&NsOp::Delete {
            path: p("g"),
            now: 6,
        })
        .unwrap();
        assert_eq!(since(&t, tok2, "", true), ["-g"]);
        assert!(t.changes_since(tok2, &p("g"), true, 10).is_none());
        // Invisible ops log nothing.
        let tok3 = t.sync_token();
        t.apply(&NsOp::PurgeTrash { trash_id: 1 }).unwrap();
        t.apply(&NsOp::SetQuota { bytes: Some(9) }).unwrap();
        assert_eq!(t.sync_token(), tok3);
    }

    #[test]
    fn replaced_collection_is_invalid() {
        let mut t = SpaceTree::new();
        mkdir(&mut t, "a", 1);
        put(&mut t, "a/x", 1, 2);
        let tok = t.sync_token();
        t.apply(&NsOp::Delete {
            path: p("a"),
            now: 3,
        })
        .unwrap();
        mkdir(&mut t, "a", 4);
        assert_eq!(
            t.changes_since(tok, &p("a"), false, 10),
            Some(Changes::Invalid)
        );
        // From the root, the removal and the new collection come in two answers.
        let Some(Changes::Since {
            changes,
            token,
            complete: false,
        }) = t.changes_since(tok, &[], true, 10)
        else {
            panic!()
        };
        assert_eq!(
            changes,
            vec![Change::Removed {
                path: p("a"),
                dir: true
            }]
        );
        assert_eq!(since(&t, token, "", true), ["+a"]);
    }

    #[test]
    fn tokens_outside_the_log_are_invalid() {
        let mut t = SpaceTree::new();
        put(&mut t, "f", 1, 1);
        let first = t.sync_token();
        let wrong = SyncToken {
            epoch: first.epoch ^ 2,
            seq: first.seq,
        };
        assert_eq!(t.changes_since(wrong, &[], true, 9), Some(Changes::Invalid));
        let future = SyncToken {
            seq: first.seq + 1,
            ..first
        };
        assert_eq!(
            t.changes_since(future, &[], true, 9),
            Some(Changes::Invalid)
        );
        for i in 0..=CHANGE_LOG_ENTRIES_MAX as i64 {
            t.apply(&NsOp::SetProps {
                path: p("f"),
                set: vec![],
                remove: vec![],
                now: 2 + i,
            })
            .unwrap();
        }
        assert_eq!(t.change_log_span().1, CHANGE_LOG_ENTRIES_MAX);
        assert_eq!(t.changes_since(first, &[], true, 9), Some(Changes::Invalid));
        let oldest = SyncToken {
            seq: t.change_log_span().0,
            ..first
        };
        assert_eq!(since(&t, oldest, "", true), ["+f"]);
    }

    #[test]
    fn limit_splits_between_logged_changes() {
        let mut t = SpaceTree::new();
        let tok = t.sync_token();
        for (i, n) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            put(&mut t, n, i as u8, i as i64);
        }
        // The first answer's epoch differs from the empty space's token: that token is refused.
        assert_eq!(t.changes_since(tok, &[], true, 2), Some(Changes::Invalid));
        let tok = SyncToken {
            epoch: t.sync_token().epoch,
            seq: 0,
        };
        let mut seen = Vec::new();
        let mut cur = tok;
        loop {
            let Some(Changes::Since {
                changes,
                token,
                complete,
            }) = t.changes_since(cur, &[], true, 2)
            else {
                panic!()
            };
            assert!(changes.len() <= 2);
            seen.extend(changes);
            cur = token;
            if complete {
                break;
            }
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(cur, t.sync_token());
    }
}
