//! Model test of the whole store: random namespace operations against a plain in-memory
//! model, with restarts, checkpoints and simulated power losses (durable state only, torn
//! or zeroed unsynced tails) in between, some taken while an operation is in flight. The
//! store must always agree with the model on everything acknowledged; an operation cut off
//! by a crash is either wholly there or wholly absent.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use skab_engine::chunk::ChunkSizes;
use skab_engine::io::{CrashMode, MemStorage, Storage};
use skab_engine::ns::{Kind, Name};
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Names of path components; paths are 1..=3 of them.
const NAMES: [&str; 2] = ["a", "b"];

/// File contents the operations pick from: empty, one chunk, several chunks.
static CONTENTS: LazyLock<Vec<Bytes>> = LazyLock::new(|| {
    [0usize, 100, 5_000, 30_000]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut b = vec![0u8; len];
            rng.fill(&mut b[..]);
            Bytes::from(b)
        })
        .collect()
});

type P = Vec<&'static str>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Trashed {
    id: u64,
    orig: P,
    entries: u64,
}

/// What the store should hold: live entries by path (root excluded) and the trash.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    live: BTreeMap<P, Node>,
    trash: Vec<Trashed>,
    /// Subtrees of trash items by id (relative paths), so a restore can bring them back.
    trashed: BTreeMap<u64, BTreeMap<P, Node>>,
    next_trash: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Put(P, usize),
    Mkdir(P),
    Move(P, P, bool),
    Copy(P, P, bool),
    Delete(P),
    /// Restores the trash item at this index (modulo the trash length) to where it was.
    Restore(usize),
    Purge(usize),
}

#[derive(Clone, Debug)]
enum Step {
    Op(Op),
    Checkpoint,
    Gc,
    Restart,
    /// Power loss; with an op, taken while that op is in flight, `delay_us` after it started.
    Crash {
        mode: u8,
        seed: u64,
        inflight: Option<(Op, u64)>,
    },
}

impl Model {
    fn new() -> Model {
        Model {
            live: BTreeMap::new(),
            trash: Vec::new(),
            trashed: BTreeMap::new(),
            next_trash: 1,
        }
    }

    fn is_dir(&self, p: &[&'static str]) -> bool {
        p.is_empty() || self.live.get(p) == Some(&Node::Dir)
    }

    fn parent_ok(&self, p: &[&'static str]) -> bool {
        !p.is_empty() && self.is_dir(&p[..p.len() - 1])
    }

    fn take(&mut self, p: &[&'static str]) -> BTreeMap<P, Node> {
        let keys: Vec<P> = self
            .live
            .keys()
            .filter(|k| k.starts_with(p))
            .cloned()
            .collect();
        keys.into_iter()
            .map(|k| {
                let n = self.live.remove(&k).unwrap();
                (k[p.len()..].to_vec(), n)
            })
            .collect()
    }

    fn put_subtree(&mut self, at: &[&'static str], sub: &BTreeMap<P, Node>) {
        for (rel, n) in sub {
            let mut k = at.to_vec();
            k.extend(rel);
            self.live.insert(k, *n);
        }
    }

    fn trash_subtree(&mut self, p: &[&'static str]) {
        let sub = self.take(p);
        let id = self.next_trash;
        self.next_trash += 1;
        self.trash.push(Trashed {
            id,
            orig: p.to_vec(),
            entries: sub.len() as u64,
        });
        self.trashed.insert(id, sub);
    }

    /// Applies `op`; returns whether it succeeds (a failing op changes nothing).
    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Put(p, c) => {
                if !self.parent_ok(p) || self.live.get(p) == Some(&Node::Dir) {
                    return false;
                }
                self.live.insert(p.clone(), Node::File(*c));
            }
            Op::Mkdir(p) => {
                if !self.parent_ok(p) || self.live.contains_key(p) {
                    return false;
                }
                self.live.insert(p.clone(), Node::Dir);
            }
            Op::Move(from, to, overwrite) | Op::Copy(from, to, overwrite) => {
                if !self.live.contains_key(from)
                    || to.starts_with(from)
                    || from.starts_with(to)
                    || !self.parent_ok(to)
                {
                    return false;
                }
                if self.live.contains_key(to) {
                    if !overwrite {
                        return false;
                    }
                    self.trash_subtree(to);
                }
                let sub = if matches!(op, Op::Move(..)) {
                    self.take(from)
                } else {
                    self.live
                        .iter()
                        .filter(|(k, _)| k.starts_with(from))
                        .map(|(k, n)| (k[from.len()..].to_vec(), *n))
                        .collect()
                };
                self.put_subtree(to, &sub);
            }
            Op::Delete(p) => {
                if !self.live.contains_key(p) {
                    return false;
                }
                self.trash_subtree(p);
            }
            Op::Restore(i) => {
                if self.trash.is_empty() {
                    return false;
                }
                let t = self.trash[i % self.trash.len()].clone();
                if !self.parent_ok(&t.orig) || self.live.contains_key(&t.orig) {
                    return false;
                }
                self.trash.retain(|x| x.id != t.id);
                let sub = self.trashed.remove(&t.id).unwrap();
                self.put_subtree(&t.orig, &sub);
            }
            Op::Purge(i) => {
                if self.trash.is_empty() {
                    return false;
                }
                let t = self.trash.remove(i % self.trash.len());
                self.trashed.remove(&t.id);
            }
        }
        true
    }
}

fn names(p: &[&'static str]) -> Vec<Name> {
    p.iter().map(|c| Name::new(c).unwrap()).collect()
}

/// The trash id an index-based op names, by the model's view (ids agree when the store does).
fn trash_id(model: &Model, i: usize) -> u64 {
    if model.trash.is_empty() {
        u64::MAX
    } else {
        model.trash[i % model.trash.len()].id
    }
}

async fn exec(store: Store, key: SpaceKey, op: Op, trash_id: u64) -> skab_engine::Result<()> {
    match op {
        Op::Put(p, c) => store
            .put_bytes(&key, &names(&p), CONTENTS[c].clone())
            .await
            .map(|_| ()),
        Op::Mkdir(p) => store.mkdir(&key, &names(&p)).await.map(|_| ()),
        Op::Move(f, t, o) => store.rename(&key, &names(&f), &names(&t), o).await,
        Op::Copy(f, t, o) => store.copy(&key, &names(&f), &names(&t), o).await,
        Op::Delete(p) => store.delete(&key, &names(&p)).await,
        Op::Restore(_) => store.restore(&key, trash_id, None).await,
        Op::Purge(_) => store.purge(&key, trash_id).await,
    }
}

fn intern(s: &str) -> &'static str {
    NAMES.iter().find(|n| **n == s).copied().unwrap_or("?")
}

/// What the store holds, in the model's terms (file bytes read back and verified).
async fn observe(store: &Store, key: &SpaceKey) -> Result<Model, String> {
    let mut live = BTreeMap::new();
    let mut stack: Vec<P> = vec![vec![]];
    while let Some(dir) = stack.pop() {
        let (_, children) = store.list(key, &names(&dir)).map_err(|e| e.to_string())?;
        for c in children {
            let mut p = dir.clone();
            p.push(intern(&c.name));
            match c.kind {
                Kind::Dir => {
                    live.insert(p.clone(), Node::Dir);
                    stack.push(p);
                }
                Kind::File => {
                    let data = store
                        .read_to_vec(key, &names(&p), None)
                        .await
                        .map_err(|e| format!("{p:?}: {e}"))?;
                    let i = CONTENTS
                        .iter()
                        .position(|c| c[..] == data[..])
                        .ok_or_else(|| format!("{p:?} holds bytes nobody wrote"))?;
                    live.insert(p, Node::File(i));
                }
            }
        }
    }
    let trash = store
        .trash(key)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| Trashed {
            id: t.id,
            orig: t.orig_path.iter().map(|n| intern(n.as_str())).collect(),
            entries: t.entries,
        })
        .collect();
    Ok(Model {
        live,
        trash,
        trashed: BTreeMap::new(),
        next_trash: 0,
    })
}

/// Whether the store matches `model` (ignoring the model's private bookkeeping).
async fn agrees(store: &Store, key: &SpaceKey, model: &Model) -> Result<bool, String> {
    let seen = observe(store, key).await?;
    Ok(seen.live == model.live && seen.trash == model.trash)
}

fn config() -> StoreConfig {
    StoreConfig {
        shards: 2,
        chunk_sizes: ChunkSizes::new(1024, 4096, 16 * 1024).unwrap(),
        pack_size_target: 64 * 1024,
        // Pre-zeroing is off by default; these tests were written to exercise it.
        prezero: true,
        ..Default::default()
    }
}

fn open(mem: &Arc<MemStorage>) -> Store {
    let storage: Arc<dyn Storage> = mem.clone();
    let store = Store::open_with_storage(storage, config()).expect("store reopens");
    let r = store.recovery_report();
    assert_eq!(r.wal_records_rejected, 0, "{r:?}");
    assert_eq!(r.chunks_missing, 0, "{r:?}");
    store
}

fn crash_mode(mode: u8, seed: u64) -> CrashMode {
    match mode % 3 {
        0 => CrashMode::DurableOnly,
        1 => CrashMode::TornTail { seed },
        _ => CrashMode::ZeroTail { seed },
    }
}

async fn run(steps: Vec<Step>) -> Result<(), String> {
    let key = SpaceKey::new("school", "pupil").unwrap();
    let mut mem = Arc::new(MemStorage::new());
    let mut store = open(&mem);
    store.create_space(&key).await.map_err(|e| e.to_string())?;
    let mut model = Model::new();
    for (n, step) in steps.into_iter().enumerate() {
        match step {
            Step::Op(op) => {
                let id = trash_id(
                    &model,
                    match op {
                        Op::Restore(i) | Op::Purge(i) => i,
                        _ => 0,
                    },
                );
                let got = exec(store.clone(), key.clone(), op.clone(), id).await;
                let want = model.apply(&op);
                if got.is_ok() != want {
                    return Err(format!("step {n}: {op:?}: store {got:?}, model ok={want}"));
                }
            }
            Step::Checkpoint => store.checkpoint().map_err(|e| e.to_string())?,
            Step::Gc => {
                store.gc();
            }
            Step::Restart => {
                drop(store);
                store = open(&mem);
            }
            Step::Crash {
                mode,
                seed,
                inflight,
            } => {
                let mode = crash_mode(mode, seed);
                let mut candidates = vec![model.clone()];
                let crashed = match inflight {
                    None => mem.crash(mode),
                    Some((op, delay_us)) => {
                        let id = trash_id(
                            &model,
                            match op {
                                Op::Restore(i) | Op::Purge(i) => i,
                                _ => 0,
                            },
                        );
                        let task = tokio::spawn(exec(store.clone(), key.clone(), op.clone(), id));
                        tokio::time::sleep(Duration::from_micros(delay_us)).await;
                        let crashed = mem.crash(mode);
                        let got = task.await.map_err(|e| e.to_string())?;
                        let mut after = model.clone();
                        let want = after.apply(&op);
                        if got.is_ok() != want {
                            return Err(format!(
                                "step {n}: in-flight {op:?}: store {got:?}, model ok={want}"
                            ));
                        }
                        if want {
                            candidates.push(after);
                        }
                        crashed
                    }
                };
                drop(store);
                mem = Arc::new(crashed);
                store = open(&mem);
                let mut matched = None;
                for c in candidates {
                    if agrees(&store, &key, &c).await? {
                        matched = Some(c);
                        break;
                    }
                }
                match matched {
                    Some(m) => model = m,
                    None => {
                        let seen = observe(&store, &key).await?;
                        return Err(format!(
                            "step {n}: after crash {mode:?} the store holds {:?} / {:?}, \
                             the model {:?} / {:?}",
                            seen.live, seen.trash, model.live, model.trash
                        ));
                    }
                }
                continue;
            }
        }
        if !agrees(&store, &key, &model).await? {
            let seen = observe(&store, &key).await?;
            return Err(format!(
                "step {n}: store {:?} / {:?}, model {:?} / {:?}",
                seen.live, seen.trash, model.live, model.trash
            ));
        }
    }
    // A final clean restart and scrub.
    drop(store);
    let store = open(&mem);
    if !agrees(&store, &key, &model).await? {
        return Err("after the final restart the store disagrees".into());
    }
    if !store.scrub().is_clean() {
        return Err("scrub found damage".into());
    }
    Ok(())
}

/// Short paths more often, so that most operations find their parents.
fn path() -> impl Strategy<Value = P> {
    let name = || prop::sample::select(&NAMES[..]);
    prop_oneof![
        3 => prop::collection::vec(name(), 1),
        2 => prop::collection::vec(name(), 2),
        1 => prop::collection::vec(name(), 3),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path(), 0..CONTENTS.len()).prop_map(|(p, c)| Op::Put(p, c)),
        3 => path().prop_map(Op::Mkdir),
        2 => (path(), path(), any::<bool>()).prop_map(|(f, t, o)| Op::Move(f, t, o)),
        2 => (path(), path(), any::<bool>()).prop_map(|(f, t, o)| Op::Copy(f, t, o)),
        2 => path().prop_map(Op::Delete),
        2 => (0..4usize).prop_map(Op::Restore),
        1 => (0..4usize).prop_map(Op::Purge),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => op().prop_map(Step::Op),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Gc),
        1 => Just(Step::Restart),
        1 => (any::<u8>(), any::<u64>()).prop_map(|(mode, seed)| Step::Crash {
            mode,
            seed,
            inflight: None
        }),
        2 => (any::<u8>(), any::<u64>(), op(), 0..3000u64).prop_map(|(mode, seed, op, d)| {
            Step::Crash {
                mode,
                seed,
                inflight: Some((op, d)),
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(steps in prop::collection::vec(step(), 1..64)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(run(steps));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
