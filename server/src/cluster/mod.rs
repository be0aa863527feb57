//! Cluster mode (`[cluster]`, docs/scaleout.md): several `skab` nodes over one S3 bucket and
//! etcd. Tenants are grouped into a fixed number of *cells*; each cell is a whole data dir
//! (store, accounts, registries, locks) mirrored into the bucket and opened as one [`App`] by
//! the node that holds its key in etcd. Any node accepts any request and forwards it (or
//! redirects the client) to the cell's owner.

pub mod admin;
mod cells;
mod coordinator;
pub mod etcd;
mod metrics;
mod router;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::app::App;
use crate::cli::CliError;
use crate::config::{ClusterConfig, Config};
use crate::limits::{CLUSTER_LEASE_MARGIN_MS, CLUSTER_TICK_DIVISOR};
use etcd::Etcd;

/// Held (flock) by the node process that serves a data dir.
const NODE_LOCK_FILE: &str = "node.lock";

/// The cell a tenant belongs to: a hash of its name, fixed for the cluster's life.
pub fn cell_of(tenant: &str, cells: u32) -> u32 {
    let h = blake3::hash(tenant.to_ascii_lowercase().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(b) % u64::from(cells.max(1))) as u32
}

/// The key of the token forwarded requests and admin commands carry between nodes.
pub fn node_token(secret: &[u8; 32]) -> String {
    hex::encode(blake3::keyed_hash(secret, b"skab cluster node token v1").as_bytes())
}

/// etcd key names of one cluster.
pub(crate) struct Keys {
    root: String,
}

impl Keys {
    pub(crate) fn new(name: &str) -> Keys {
        Keys {
            root: format!("/skab/{name}/"),
        }
    }
    pub(crate) fn root(&self) -> &str {
        &self.root
    }
    pub(crate) fn node(&self, id: &str) -> String {
        format!("{}nodes/{id}", self.root)
    }
    pub(crate) fn cell(&self, c: u32) -> String {
        format!("{}cells/{c:05}", self.root)
    }
    pub(crate) fn parse_node(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.root)?
            .strip_prefix("nodes/")
            .map(str::to_string)
    }
    pub(crate) fn parse_cell(&self, key: &str) -> Option<u32> {
        key.strip_prefix(&self.root)?
            .strip_prefix("cells/")?
            .parse()
            .ok()
    }
}

/// This node's lease in etcd: its id and, by this node's monotonic clock, until when it is
/// surely still valid (the renewal's send time plus the TTL, less a margin).
#[derive(Default)]
pub(crate) struct Lease {
    inner: Mutex<LeaseInner>,
}

#[derive(Default, Clone, Copy)]
struct LeaseInner {
    id: i64,
    deadline: Option<Instant>,
    granted: Option<Instant>,
}

impl Lease {
    pub(crate) fn id(&self) -> i64 {
        self.inner.lock().id
    }
    /// When the lease held now was granted.
    pub(crate) fn granted_at(&self) -> Instant {
        self.inner.lock().granted.unwrap_or_else(Instant::now)
    }
    /// Until when writes are allowed; `None` without a valid lease.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let l = *self.inner.lock();
        l.deadline.filter(|d| l.id != 0 && *d > Instant::now())
    }
    fn renewed(&self, id: i64, sent: Instant, ttl: Duration) {
        let mut l = self.inner.lock();
        if l.id == id {
            l.deadline = (sent + ttl).checked_sub(Duration::from_millis(CLUSTER_LEASE_MARGIN_MS));
        }
    }
    fn set(&self, id: i64, sent: Instant, ttl: Duration) {
        *self.inner.lock() = LeaseInner {
            id,
            deadline: None,
            granted: Some(sent),
        };
        self.renewed(id, sent, ttl);
    }
    fn clear(&self) -> i64 {
        std::mem::take(&mut *self.inner.lock()).id
    }
}

/// Who owns a cell, as etcd says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub node: String,
    pub epoch: i64,
    pub lease: i64,
}

/// What this node knows of the cluster from its last read of etcd.
#[derive(Default)]
pub(crate) struct View {
    /// Live nodes: id -> (base URL, when this node first saw it).
    pub nodes: std::collections::HashMap<String, (String, Instant)>,
    pub owners: Vec<Option<Owner>>,
    /// Whether the last read of etcd succeeded.
    pub fresh: bool,
}

/// One cluster node.
pub struct Node {
    pub(crate) config: Config,
    pub(crate) cluster: ClusterConfig,
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) keys: Keys,
    pub(crate) etcd: Etcd,
    pub(crate) lease: Arc<Lease>,
    pub(crate) cells: Vec<Mutex<cells::Cell>>,
    pub(crate) view: RwLock<View>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Set at SIGTERM: no more cells are taken; those held are handed over.
    pub(crate) stopping: AtomicBool,
    /// Set once they are: the coordinator ends.
    pub(crate) finished: AtomicBool,
    pub(crate) jwt: crate::auth::jwt::JwtVerifier,
    pub(crate) client: router::Client,
    pub(crate) counters: Counters,
    /// Nodes a forwarded request could not connect to, and when: their cells' requests wait
    /// for the cells to move instead of failing at once.
    pub(crate) unreachable: Mutex<std::collections::HashMap<String, Instant>>,
}

/// Figures `/_skab/cluster/state` and the metrics show.
#[derive(Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub redirected: AtomicU64,
    pub forward_errors: AtomicU64,
    pub waited_unavailable: AtomicU64,
    pub cells_opened: AtomicU64,
    pub cells_lost: AtomicU64,
    pub cells_released: AtomicU64,
}

impl Node {
    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_secs(self.cluster.lease_ttl_s)
    }
    pub(crate) fn tick(&self) -> Duration {
        self.ttl() / CLUSTER_TICK_DIVISOR
    }
    /// The app serving cell `c` here, if this node serves it now.
    pub(crate) fn serving(&self, c: u32) -> Option<Arc<cells::Serving>> {
        match &*self.cells.get(c as usize)?.lock() {
            cells::Cell::Serving(s) => Some(s.clone()),
            _ => None,
        }
    }
    /// The owner of cell `c` other than this node, with its URL, as etcd said last.
    pub(crate) fn owner_elsewhere(&self, c: u32) -> Option<(String, String)> {
        let v = self.view.read();
        let o = v.owners.get(c as usize).cloned().flatten()?;
        let url = v.nodes.get(&o.node)?.0.clone();
        (o.node != self.id).then_some((o.node, url))
    }

    /// Marks the node at `url` as not answering (a failed connect).
    pub(crate) fn mark_unreachable(&self, url: &str) {
        self.unreachable
            .lock()
            .insert(url.to_string(), Instant::now());
    }

    /// Whether the node at `url` failed to answer a connect within the last two lease TTLs
    /// (by then it has lost its cells, or it answers again).
    pub(crate) fn is_unreachable(&self, url: &str) -> bool {
        let mut m = self.unreachable.lock();
        let recent = self.ttl() * 2;
        m.retain(|_, t| t.elapsed() < recent);
        m.contains_key(url)
    }

    /// Ready: the lease is held and every cell etcd gives this node is open.
    pub(crate) fn ready(&self) -> bool {
        if self.lease.deadline().is_none() {
            return false;
        }
        let view = self.view.read();
        if !view.fresh {
            return false;
        }
        view.owners.iter().enumerate().all(|(c, o)| match o {
            Some(o) if o.node == self.id => self.serving(c as u32).is_some(),
            _ => true,
        })
    }
}

/// `skab serve` with `[cluster]`: joins the cluster and serves until SIGINT/SIGTERM, then
/// hands its cells over (saved and released in etcd) and ends its lease.
pub fn serve(config: Config, runtime: tokio::runtime::Runtime) -> Result<(), CliError> {
    let cluster = config
        .cluster
        .clone()
        .ok_or_else(|| CliError("no [cluster] section".into()))?;
    let id = cluster
        .node_id
        .clone()
        .ok_or_else(|| CliError("cluster.node_id is needed to serve".into()))?;
    let secret = cluster.secret_bytes().map_err(CliError)?;
    let jwt = crate::auth::jwt::JwtVerifier::from_config(&config.auth.jwt).map_err(CliError)?;
    let trusted_proxies = Arc::new(
        crate::http::proxy::TrustedProxies::parse(&config.http.trusted_proxies)
            .map_err(CliError)?
            .with_forwarded(config.http.client_header == crate::config::ClientHeader::Forwarded),
    );
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| CliError(format!("creating {}: {e}", config.data_dir.display())))?;
    // One node process per data dir: a second would delete the first one's cells.
    let node_lock = crate::file_lock::try_exclusive(&config.data_dir.join(NODE_LOCK_FILE))
        .map_err(|e| CliError(format!("data dir {}: {e}", config.data_dir.display())))?
        .ok_or_else(|| {
            CliError(format!(
                "another skab node runs on {}",
                config.data_dir.display()
            ))
        })?;
    // Cell dirs of an earlier run are stale: every cell is rebuilt from the bucket when taken.
    let cells_dir = config.data_dir.join(cells::CELLS_DIR);
    if cells_dir.exists() {
        std::fs::remove_dir_all(&cells_dir)
            .map_err(|e| CliError(format!("removing {}: {e}", cells_dir.display())))?;
    }
    std::fs::create_dir_all(&cells_dir)
        .map_err(|e| CliError(format!("creating {}: {e}", cells_dir.display())))?;
    let listen = config.listen;
    let node = Arc::new(Node {
        url: cluster
            .advertise_url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        token: node_token(&secret),
        keys: Keys::new(&cluster.name),
        etcd: Etcd::new(&cluster.etcd),
        lease: Arc::new(Lease::default()),
        cells: (0..cluster.cells)
            .map(|_| Mutex::new(cells::Cell::absent()))
            .collect(),
        view: RwLock::new(View::default()),
        runtime: runtime.handle().clone(),
        stopping: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        jwt,
        client: router::client(),
        counters: Counters::default(),
        unreachable: Mutex::default(),
        id,
        cluster,
        config,
    });
    let coordinator = coordinator::start(node.clone())
        .map_err(|e| CliError(format!("cluster coordinator: {e}")))?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let settings =
            crate::route::http_settings_of(&node.config, trusted_proxies, Arc::default());
        let addr = listener.local_addr()?;
        tracing::info!(node = %node.id, "cluster node listening on {}://{addr}", settings.scheme());
        println!(
            "skab: cluster node {} serving WebDAV on {}://{addr}/dav/",
            node.id,
            settings.scheme()
        );
        crate::http::run(
            Arc::new(router::ClusterRouter(node.clone())),
            settings,
            listener,
        )
        .await
    });
    node.stopping.store(true, Ordering::SeqCst);
    cells::release_all(&node);
    node.finished.store(true, Ordering::SeqCst);
    let _ = coordinator.join();
    drop(node_lock);
    let lease = node.lease.clear();
    if lease != 0 {
        if let Err(e) = node.etcd.revoke(lease) {
            tracing::warn!(error = %e, "cluster: lease not revoked; it runs out by itself");
        }
    }
    result.map_err(|e| CliError(format!("{e:#}")))
}

/// Used by the cells: whether an app may still write (its cell's fence).
pub(crate) fn fence_for(lease: Arc<Lease>, alive: Arc<AtomicBool>) -> skab_engine::io::Fence {
    Arc::new(move || {
        if alive.load(Ordering::SeqCst) {
            lease.deadline()
        } else {
            None
        }
    })
}

/// An app of a cell, with what the router needs.
pub(crate) type CellApp = Arc<App>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_spread_over_every_cell_and_keep_theirs() {
        let mut seen = vec![0u32; 12];
        for i in 0..1200 {
            let c = cell_of(&format!("school-{i}"), 12);
            seen[c as usize] += 1;
            assert_eq!(c, cell_of(&format!("SCHOOL-{i}"), 12));
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn keys_parse_back() {
        let k = Keys::new("skab");
        assert_eq!(k.parse_cell(&k.cell(7)), Some(7));
        assert_eq!(k.parse_node(&k.node("node-1")), Some("node-1".into()));
        assert_eq!(k.parse_cell(&k.node("x")), None);
        assert_eq!(Keys::new("other").parse_cell(&k.cell(1)), None);
    }

    #[test]
    fn a_lease_is_valid_only_until_its_deadline_and_only_with_its_id() {
        let l = Lease::default();
        assert!(l.deadline().is_none());
        l.set(5, Instant::now(), Duration::from_secs(3));
        assert!(l.deadline().is_some());
        l.renewed(6, Instant::now(), Duration::from_secs(30));
        let d = l.deadline().unwrap();
        assert!(d < Instant::now() + Duration::from_secs(3));
        l.set(
            5,
            Instant::now() - Duration::from_secs(10),
            Duration::from_secs(3),
        );
        assert!(l.deadline().is_none());
        assert_eq!(l.clear(), 5);
        assert_eq!(l.id(), 0);
    }
}
