//! The object-storage mirror (`[storage.object]`, docs/scaleout.md "Object storage mirror"):
//! a real `skab` over a real 3-node Garage cluster (replication 3, `scripts/cluster.sh`, on
//! loopback). An acknowledged upload survives the loss of the server's whole data dir; a
//! Garage node killed while writing changes nothing; with every Garage node down no upload is
//! acknowledged, and once they are back a restarted server writes again with nothing lost
//! (and a second loss of the disk after that loses nothing either). The server's own files
//! (accounts, app tokens, groups, registries, receipt keys and logs) come back with the store;
//! admin commands beside a running server are run by the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, pseudo_random, skab, Opts, Server, PASSWORD, TENANT, USER};

/// Ports of this test's cluster (BASE_PORT .. +20): apart from the script's default (27100),
/// so that a cluster started by hand does not collide.
const BASE_PORT: u16 = 27500;
/// The own-files test's cluster, apart from the other one (the tests may run at once).
const OWN_BASE_PORT: u16 = 27400;
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
    fn up(base_port: u16) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(dir.path().join("cl"))
            .env("BASE_PORT", base_port.to_string())
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

    /// A config file's `[storage.object]` for this cluster's bucket under `prefix`.
    fn config(&self, prefix: &str) -> String {
        let secret = self.dir.path().join("s3-secret");
        std::fs::write(&secret, format!("{}\n", self.var("S3_SECRET_KEY"))).unwrap();
        let endpoints: Vec<String> = self
            .var("S3_ENDPOINTS")
            .split_whitespace()
            .map(|e| format!("{e:?}"))
            .collect();
        format!(
            "[storage.object]\nendpoints = [{}]\nregion = {:?}\nbucket = {:?}\naccess_key = {:?}\n\
             secret_key_file = {:?}\nprefix = {prefix:?}\n",
            endpoints.join(", "),
            self.var("S3_REGION"),
            self.var("S3_BUCKET"),
            self.var("S3_ACCESS_KEY"),
            secret.to_str().unwrap(),
        )
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
    let mut cl = Cluster::up(BASE_PORT);
    let config = cl.config("it/");
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
    // The account comes back from the bucket too (the test below checks the rest).
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
    server.restart();
    check(&server.client(), &files);
}

/// `skab ARGS --data-dir D --config C` for the server's data dir and config.
fn cli(s: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let data = s.data_dir();
    let cfg = s.path().join("skab.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    skab(&all, stdin)
}

fn ok_cli(s: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out) = cli(s, args, stdin);
    assert!(ok, "skab {args:?}: {out}");
    out
}

/// The bytes of every own file of the data dir (not the store, not lock files).
fn own_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            if name == "store" || name.ends_with(".lock") || name.ends_with("LOCK") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.is_file() {
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(data, data, &mut out);
    out.sort();
    out
}

/// Regression for the rebuilt node without accounts (issue 17): the server's own files went
/// only to the local disk, so a node rebuilt from the bucket had the files but no one could
/// log in. Now every write of them goes through a mirror under `<prefix>own/`: after the data
/// dir is lost, the user logs in with the password it had, its app token and group work, and
/// the hand-in, its receipts and key, the space and the registries are byte for byte what they
/// were. No second process writes the same own files: admin commands given beside the running
/// server are run by it (over the admin socket, stdin included), and one it does not run is
/// refused with a message saying what to do.
#[test]
fn the_servers_own_files_survive_the_loss_of_the_disk() {
    let cl = Cluster::up(OWN_BASE_PORT);
    let config = cl.config("own-it/");
    // The first user is added before the first start, without the config (on local disk):
    // the server's first open uploads it.
    let opts = Opts::default().user(TENANT, USER, PASSWORD).config(&config);
    let mut s = Server::start_opts(opts);
    let csv = s.path().join("users.csv");
    std::fs::write(&csv, "user,tenant,password\nx,y,z\n").unwrap();
    let (ok, out) = cli(
        &s,
        &["user", "import", "--csv", csv.to_str().unwrap()],
        None,
    );
    assert!(
        !ok && out.contains(skab_server::own_files::SERVER_RUNS),
        "an offline command beside the server: {out}"
    );

    // Admin commands beside the running server: run by the server, through the mirror.
    let member = "member";
    let out = ok_cli(
        &s,
        &[
            "user",
            "add",
            "--tenant",
            TENANT,
            "--user",
            member,
            "--password-stdin",
        ],
        Some("member-pw-1\n"),
    );
    assert!(out.contains(&format!("added {member}@{TENANT}")), "{out}");
    ok_cli(
        &s,
        &[
            "group",
            "add",
            "--tenant",
            TENANT,
            "--group",
            "class",
            "--members",
            member,
        ],
        None,
    );
    let closes =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string();
    ok_cli(
        &s,
        &[
            "handin", "add", "--tenant", TENANT, "--handin", "essay", "--owner", USER, "--group",
            "class", "--closes", &closes,
        ],
        None,
    );
    ok_cli(
        &s,
        &[
            "space",
            "add",
            "--tenant",
            TENANT,
            "--space",
            "shared",
            "--owner",
            USER,
            "--share",
            "group:class=read",
        ],
        None,
    );
    let tok = ok_cli(
        &s,
        &[
            "token", "create", "--tenant", TENANT, "--user", USER, "--label", "phone",
        ],
        None,
    );
    let token = tok
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {tok}"))
        .to_string();
    // A bad command line and a failing command come back as errors.
    let (ok, out) = cli(
        &s,
        &["group", "add", "--tenant", TENANT, "--group", "class"],
        None,
    );
    assert!(!ok, "a second group of one name: {out}");

    // Two hand-in uploads: receipts, a receipt key and a receipt log (the server rereads
    // the groups at most once a second).
    let m = s.client_as(&format!("{member}@{TENANT}"), "member-pw-1");
    let url = format!("/dav/{TENANT}/handin/essay/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.propfind(&url, "0").status != 207 {
        assert!(Instant::now() < deadline, "never let into the hand-in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut receipts = Vec::new();
    for (i, body) in [&b"first draft"[..], b"final essay"].iter().enumerate() {
        let r = m.put(&format!("{url}essay{i}.txt"), body);
        assert_eq!(r.status, 201, "{}", r.text());
        receipts.push(r.header("skab-receipt").unwrap().to_string());
    }
    let before = own_files(&s.data_dir());
    for want in [
        "users/users.log",
        "handins.bin",
        "spaces.bin",
        "receipt-keys/",
        "handin-receipts/",
    ] {
        assert!(before.iter().any(|(n, _)| n.starts_with(want)), "{want}");
    }

    // The disk is lost: kill -9, the data dir deleted, the server started on the bucket.
    s.signal(libc::SIGKILL);
    s.wait_exit(Duration::from_secs(10)).expect("killed");
    std::fs::remove_dir_all(s.data_dir()).unwrap();
    s.restart();
    let line = s
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("own files mirrored into object storage"))
        .expect("the own files' mirror's open line")
        .to_string();
    assert!(!line.contains("rebuilt_files=0 "), "{line}");
    let after = own_files(&s.data_dir());
    for (name, bytes) in &before {
        let (_, got) = after
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not rebuilt"));
        // The user log may have grown since (logins); what it held is its start.
        if name.ends_with("users.log") {
            assert!(got.starts_with(bytes), "{name} differs");
        } else {
            assert!(got == bytes, "{name} differs");
        }
    }
    // The passwords, the app token and the group (the hand-in lets the member in) work.
    let home = format!("/dav/{TENANT}/{USER}/");
    assert_eq!(s.client().propfind(&home, "0").status, 207);
    let by_token = s.client_as(&format!("{USER}@{TENANT}"), &token);
    assert_eq!(by_token.propfind(&home, "0").status, 207);
    let wrong = s.client_as(&format!("{USER}@{TENANT}"), "not-the-password");
    assert_eq!(wrong.propfind(&home, "0").status, 401);
    let m = s.client_as(&format!("{member}@{TENANT}"), "member-pw-1");
    assert_eq!(m.get(&format!("{url}essay1.txt")).body, b"final essay");
    let list = ok_cli(&s, &["handin", "list", "--tenant", TENANT], None);
    assert!(list.contains("essay"), "{list}");
    let list = ok_cli(&s, &["space", "list", "--tenant", TENANT], None);
    assert!(list.contains("shared"), "{list}");
    // The rebuilt receipt key verifies the receipts (one given on stdin).
    ok_cli(&s, &["receipt", "verify", &receipts[0]], None);
    ok_cli(&s, &["receipt", "verify", "-"], Some(&receipts[1]));

    // With the server stopped, a command runs here, through the mirror over the kept dir.
    s.stop();
    let list = ok_cli(&s, &["group", "list", "--tenant", TENANT], None);
    assert!(list.contains("class"), "{list}");
}
