//! The node's loop over etcd, every quarter lease: renew the lease (or take a new one), read
//! who owns what, take the cells that have no owner and should be here, drop those that are
//! no longer here, and hand over one that another live node should have (rendezvous hashing,
//! so that every node agrees where each cell belongs without talking to the others).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::cells::{self, Cell};
use super::{Node, Owner, View};
use crate::limits::CLUSTER_FOREIGN_TAKE_TTLS;

/// Starts the loop on a thread of its own (etcd's client blocks).
pub(crate) fn start(node: Arc<Node>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("skab-cluster".into())
        .spawn(move || {
            let mut unowned_since: HashMap<u32, Instant> = HashMap::new();
            while !node.finished.load(Ordering::SeqCst) {
                let started = Instant::now();
                if node.stopping.load(Ordering::SeqCst) {
                    // Handing the cells over: the lease is kept until they are released.
                    keep_lease(&node);
                } else {
                    step(&node, &mut unowned_since);
                }
                let tick = node.tick();
                if let Some(left) = tick.checked_sub(started.elapsed()) {
                    std::thread::sleep(left);
                }
            }
        })
}

/// The node a cell belongs on among `nodes`: the highest hash of (node, cell).
pub(crate) fn preferred<'a>(nodes: impl Iterator<Item = &'a String>, c: u32) -> Option<&'a String> {
    nodes.max_by_key(|n| {
        let mut h = blake3::Hasher::new();
        h.update(n.as_bytes());
        h.update(&c.to_le_bytes());
        *h.finalize().as_bytes()
    })
}

fn drop_all(node: &Node) {
    for c in 0..node.cells.len() as u32 {
        cells::lose(node, c);
    }
}

/// Keeps the lease: renews it, or takes a new one (and registers the node under it).
fn keep_lease(node: &Node) -> bool {
    let ttl = node.ttl();
    let id = node.lease.id();
    if id != 0 {
        let sent = Instant::now();
        match node.etcd.keep_alive(id) {
            Ok(true) => {
                node.lease.renewed(id, sent, ttl);
                return true;
            }
            Ok(false) => {
                tracing::warn!("cluster: lease expired; cells dropped, joining again");
                drop_all(node);
                node.lease.clear();
            }
            Err(e) => {
                if node.lease.deadline().is_some() {
                    tracing::warn!(error = %e, "cluster: lease not renewed yet");
                    return true;
                }
                tracing::warn!(error = %e, "cluster: lease ran out on this node's clock; cells dropped");
                drop_all(node);
                let old = node.lease.clear();
                let _ = node.etcd.revoke(old);
                return false;
            }
        }
    }
    let sent = Instant::now();
    let granted = node.etcd.grant(node.cluster.lease_ttl_s).and_then(|id| {
        node.etcd
            .put(&node.keys.node(&node.id), &node.url, id)
            .map(|()| id)
    });
    match granted {
        Ok(id) => {
            node.lease.set(id, sent, ttl);
            tracing::info!(node = %node.id, lease = id, "cluster: joined");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster: no lease (etcd unreachable?)");
            false
        }
    }
}

/// Reads the nodes and owners under the cluster's root.
fn read_view(node: &Node) -> bool {
    let kvs = match node.etcd.range_prefix(node.keys.root()) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot read etcd");
            node.view.write().fresh = false;
            return false;
        }
    };
    let mut view = node.view.write();
    let mut nodes = HashMap::new();
    let mut owners = vec![None; node.cells.len()];
    for kv in kvs {
        if let Some(id) = node.keys.parse_node(&kv.key) {
            let first = view.nodes.get(&id).map_or_else(Instant::now, |(_, t)| *t);
            nodes.insert(id, (kv.value, first));
        } else if let Some(c) = node.keys.parse_cell(&kv.key) {
            if let Some(slot) = owners.get_mut(c as usize) {
                *slot = Some(Owner {
                    node: kv.value,
                    epoch: kv.create_revision,
                    lease: kv.lease,
                });
            }
        }
    }
    *view = View {
        nodes,
        owners,
        fresh: true,
    };
    true
}

fn step(node: &Arc<Node>, unowned_since: &mut HashMap<u32, Instant>) {
    if !keep_lease(node) || !read_view(node) {
        return;
    }
    let lease = node.lease.id();
    let joined = node.lease.granted_at();
    let (owners, nodes) = {
        let v = node.view.read();
        (v.owners.clone(), v.nodes.clone())
    };
    let live: Vec<&String> = nodes.keys().collect();
    let cells_n = node.cells.len();
    let fair = cells_n.div_ceil(live.len().max(1));
    let mine = owners
        .iter()
        .filter(|o| o.as_ref().is_some_and(|o| o.node == node.id))
        .count();
    let mut taken = mine;
    let mut handed_over = false;
    let ttl = node.ttl();
    for (c, owner) in owners.iter().enumerate() {
        let c = c as u32;
        let local_epoch = node.cells[c as usize].lock().epoch();
        let closing = matches!(*node.cells[c as usize].lock(), Cell::Closing);
        match owner {
            Some(o) if o.node == node.id && o.lease == lease => {
                unowned_since.remove(&c);
                if closing {
                    continue;
                }
                // A store that failed (the bucket unreachable past every retry) stays failed:
                // the cell is dropped and its key released, so that it is opened again from
                // the bucket (here or elsewhere) once the bucket answers.
                if node.serving(c).is_some_and(|s| s.app.store.is_failed()) {
                    tracing::warn!(cell = c, "cluster: the cell's storage failed; reopening it");
                    cells::lose(node, c);
                    let _ = node.etcd.delete_if(&node.keys.cell(c), o.epoch);
                    continue;
                }
                if local_epoch != Some(o.epoch) {
                    // Won but not open (an open that failed, or an older epoch): open it.
                    cells::lose(node, c);
                    cells::open(node, c, o.epoch);
                    continue;
                }
                // Hand over a cell whose preferred node is another live one that has been up
                // a while; one per step, so that a joining node fills up gradually.
                let pref = preferred(live.iter().copied(), c);
                let settled = pref
                    .and_then(|p| nodes.get(p))
                    .is_some_and(|(_, seen)| seen.elapsed() > ttl * 2);
                if !handed_over && settled && pref != Some(&node.id) && node.serving(c).is_some() {
                    handed_over = true;
                    let node = node.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("skab-handover-{c}"))
                        .spawn(move || cells::release(&node, c));
                }
            }
            Some(o) if o.node == node.id => {
                // Held by this node's previous run (same id, older lease): that process is
                // gone, so its lease is ended at once instead of waiting for it to run out.
                unowned_since.remove(&c);
                if local_epoch.is_some() {
                    cells::lose(node, c);
                }
                if let Err(e) = node.etcd.revoke(o.lease) {
                    tracing::warn!(cell = c, error = %e, "cluster: old lease not revoked");
                }
            }
            Some(_) => {
                unowned_since.remove(&c);
                if local_epoch.is_some() {
                    cells::lose(node, c);
                }
            }
            None => {
                if local_epoch.is_some() {
                    cells::lose(node, c);
                }
                if closing {
                    continue;
                }
                // A node that just joined first lets the others starting with it register,
                // so that cells do not all go to the first one up and move again.
                if joined.elapsed() < ttl {
                    continue;
                }
                let since = *unowned_since.entry(c).or_insert_with(Instant::now);
                let pref = preferred(live.iter().copied(), c);
                let mine_by_hash = pref == Some(&node.id);
                let orphaned = since.elapsed() > ttl * CLUSTER_FOREIGN_TAKE_TTLS as u32;
                if !(mine_by_hash || (orphaned && taken < fair)) {
                    continue;
                }
                match node.etcd.create(&node.keys.cell(c), &node.id, lease) {
                    Ok(Some(epoch)) => {
                        unowned_since.remove(&c);
                        taken += 1;
                        tracing::info!(cell = c, epoch, "cluster: cell won");
                        cells::open(node, c, epoch);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(cell = c, error = %e, "cluster: cell not taken"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_agrees_on_each_cells_place_and_cells_spread() {
        let nodes: Vec<String> = ["node1", "node2", "node3"].map(String::from).to_vec();
        let mut count = HashMap::new();
        for c in 0..120 {
            let a = preferred(nodes.iter(), c).unwrap();
            let b = preferred(nodes.iter().rev(), c).unwrap();
            assert_eq!(a, b);
            *count.entry(a.clone()).or_insert(0) += 1;
        }
        assert_eq!(count.len(), 3);
        assert!(count.values().all(|&n| n > 20), "{count:?}");
        // Without node2, its cells move and the others' stay.
        let two: Vec<String> = ["node1", "node3"].map(String::from).to_vec();
        for c in 0..120 {
            let before = preferred(nodes.iter(), c).unwrap();
            let after = preferred(two.iter(), c).unwrap();
            if before != "node2" {
                assert_eq!(before, after);
            }
        }
    }
}
