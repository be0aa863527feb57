//! The object-storage mirror (`[storage.object]`, docs/scaleout.md "Object storage mirror"):
//! a real `skab` over a real 3-node Garage cluster (replication 3, `scripts/cluster.sh`, on
//! loopback). An acknowledged upload survives the loss of the server's whole data dir; a
//! Garage node killed while writing changes nothing; with every Garage node down no upload is
//! acknowledged, and once they are back a restarted server writes again with nothing lost
//! (and a second loss of the disk after that loses nothing either).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, pseudo_random, skab, Opts, Server, PASSWORD, TENANT, USER};

/// Ports of this test's cluster (BASE_PORT .. +20): apart from the script's default (27100),
/// so that a cluster started by hand does not collide.
const BASE_PORT: u16 = 27500;
/// How long the restarted Garage nodes get to serve again.
const GARAGE_BACK_TIMEOUT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
}

/// A Garage cluster brought up by `scripts/cluster.sh`, taken down when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    restarted: Vec<Child>,
}

impl Cluster {
    fn up() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(dir.path().join("cl"))
            .env("BASE_PORT", BASE_PORT.to_string())
            // Garage and etcd only: this test starts its own single-node skab.
            .env("SKAB_NODES", "0")
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "scripts/cluster.sh up failed (it installs Garage and etcd; scripts/test.sh runs its \
             install step): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("cl/cluster.env")).unwrap();
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        Cluster {
            dir,
            env,
            restarted: Vec::new(),
        }
    }

    fn var(&self, k: &str) -> &str {
        self.env.get(k).map(String::as_str).unwrap_or("")
    }

    fn garage_pids(&self) -> Vec<i32> {
        self.var("GARAGE_PIDS")
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// Starts Garage node `i` (1-based) again over its kept directories.
    fn restart_garage(&mut self, i: usize) {
        let d = self.dir.path().join(format!("cl/garage{i}"));
        let log = std::fs::File::create(d.join("garage-restarted.log")).unwrap();
        let child = Command::new(self.var("GARAGE_BIN"))
            .arg("-c")
            .arg(d.join("garage.toml"))
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("restart a garage node");
        self.restarted.push(child);
    }

    /// Waits until the cluster answers bucket requests again (joining the restarted nodes:
    /// they may not have saved their peers before they were killed).
    fn wait_garage(&self) {
        let cfg = |i: usize| self.dir.path().join(format!("cl/garage{i}/garage.toml"));
        let deadline = Instant::now() + GARAGE_BACK_TIMEOUT;
        loop {
            for i in 2..=3 {
                let id = Command::new(self.var("GARAGE_BIN"))
                    .arg("-c")
                    .arg(cfg(i))
                    .args(["node", "id", "-q"])
                    .output()
                    .expect("run garage");
                let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
                if !id.is_empty() {
                    let _ = Command::new(self.var("GARAGE_BIN"))
                        .arg("-c")
                        .arg(cfg(1))
                        .args(["node", "connect", &id])
                        .output();
                }
            }
            let out = Command::new(self.var("GARAGE_BIN"))
                .arg("-c")
                .arg(cfg(1))
                .args(["bucket", "info", "skab"])
                .output()
                .expect("run garage");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "garage did not come back: {}\nnode 1: {}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.path().join("cl/garage1/garage-restarted.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.restarted {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(self.dir.path().join("cl"))
            .output();
    }
}

fn kill9(pid: i32) {
    // SAFETY: plain kill(2) of a process this test's cluster started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

const PROPPATCH: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:grade>A ✓</x:grade></D:prop></D:set></D:propertyupdate>"#;

#[test]
fn acknowledged_writes_survive_the_loss_of_the_disk_and_of_garage_nodes() {
    let mut cl = Cluster::up();
    let secret = cl.dir.path().join("s3-secret");
    std::fs::write(&secret, format!("{}\n", cl.var("S3_SECRET_KEY"))).unwrap();
    let endpoints: Vec<String> = cl
        .var("S3_ENDPOINTS")
        .split_whitespace()
        .map(|e| format!("{e:?}"))
        .collect();
    let config = format!(
        "[storage.object]\nendpoints = [{}]\nregion = {:?}\nbucket = {:?}\naccess_key = {:?}\n\
         secret_key_file = {:?}\nprefix = \"it/\"\n",
        endpoints.join(", "),
        cl.var("S3_REGION"),
        cl.var("S3_BUCKET"),
        cl.var("S3_ACCESS_KEY"),
        secret.to_str().unwrap(),
    );
    let opts = Opts::default().user(TENANT, USER, PASSWORD).config(&config);
    let mut server = Server::start_opts(opts);
    let c = server.client();
    let home = format!("/dav/{TENANT}/{USER}");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in ["docs", "docs/deep"] {
        assert_eq!(c.mkcol(&format!("{home}/{dir}/")).status, 201);
    }
    let sizes = [0usize, 1, 4096, 100_000, 3 << 20, (9 << 20) + 123];
    for (i, size) in sizes.iter().enumerate() {
        let path = match i % 3 {
            0 => format!("{home}/f{i}.bin"),
            1 => format!("{home}/docs/f{i}.bin"),
            _ => format!("{home}/docs/deep/f{i}.bin"),
        };
        let body = pseudo_random(i as u64 + 1, *size);
        assert_eq!(c.put(&path, &body).status, 201, "{path}");
        files.push((path, body));
    }
    let prop_path = files[2].0.clone();
    assert_eq!(
        c.send("PROPPATCH", &prop_path, &[], PROPPATCH.as_bytes())
            .status,
        207
    );

    // Files idle for `OBJECT_COMPACT_IDLE_S` are compacted into whole-file objects: the
    // rebuild below reads those and the segments written after them.
    std::thread::sleep(Duration::from_secs(
        skab_engine::limits::OBJECT_COMPACT_IDLE_S + 3,
    ));

    // A Garage node killed while writing: quorum 2 of 3, the writes go on.
    let garage = cl.garage_pids();
    kill9(garage[0]);
    for i in 0..6usize {
        let path = format!("{home}/docs/during-{i}.bin");
        let body = pseudo_random(100 + i as u64, if i == 0 { 3 << 20 } else { 20_000 });
        let r = c.put(&path, &body);
        assert!(r.status == 201, "{path}: {} {}", r.status, r.text());
        files.push((path, body));
    }
    // An overwrite and a delete are acknowledged writes too.
    let body = pseudo_random(7, 50_000);
    assert_eq!(c.put(&files[3].0, &body).status, 204);
    files[3].1 = body;
    let gone = files.pop().unwrap().0;
    assert_eq!(c.delete(&gone).status, 204);

    // The disk is lost: kill -9, the whole data dir deleted, a new server on the same bucket.
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10)).expect("killed");
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    // Accounts are not in the bucket yet (docs/scaleout.md): the user is added again.
    common::add_user(&server.data_dir(), TENANT, USER, PASSWORD);
    server.restart();
    let log = server.log();
    let rebuilt = log
        .lines()
        .rev()
        .find(|l| l.contains("store mirrored into object storage"))
        .expect("the mirror's open line");
    assert!(!rebuilt.contains("rebuilt_files=0 "), "{rebuilt}");
    let c = server.client();
    let check = |c: &common::Http, files: &[(String, Vec<u8>)]| {
        for (path, body) in files {
            let r = c.get(path);
            assert_eq!(r.status, 200, "{path}");
            assert!(r.body == *body, "{path}: {} bytes differ", body.len());
        }
        assert_eq!(c.get(&gone).status, 404);
    };
    check(&c, &files);
    let r = c.send("PROPFIND", &prop_path, &[("Depth", "0")], b"");
    assert!(r.text().contains("A ✓"), "{}", r.text());
    let (ok, out) = skab(
        &["scrub", "--data-dir", server.data_dir().to_str().unwrap()],
        None,
    );
    assert!(ok && out.contains("no corruption found"), "{out}");

    // Every Garage node down: an upload is refused, never acknowledged.
    for pid in &garage[1..] {
        kill9(*pid);
    }
    let r = c.put(
        &format!("{home}/during-outage.bin"),
        &pseudo_random(9, 10_000),
    );
    assert!(
        r.status >= 500,
        "acknowledged without object storage: {}",
        r.status
    );

    // They come back: the server (restarted over its kept data dir) writes again, and
    // nothing acknowledged is lost.
    for i in 1..=3 {
        cl.restart_garage(i);
    }
    cl.wait_garage();
    server.restart();
    let c = server.client();
    let body = pseudo_random(11, 200_000);
    let path = format!("{home}/after-outage.bin");
    assert_eq!(c.put(&path, &body).status, 201, "{}", server.log());
    files.push((path, body));
    check(&c, &files);

    // What that restart brought together (the local tails the failed syncs left) is in the
    // bucket: the disk lost once more, everything is still there.
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10)).expect("killed");
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    common::add_user(&server.data_dir(), TENANT, USER, PASSWORD);
    server.restart();
    check(&server.client(), &files);
}
