//! Cluster mode (issue 17, docs/scaleout.md) against the real engines: `scripts/cluster.sh up`
//! starts, on loopback, 3 Garage nodes (replication 3), etcd and 3 `skab` nodes. One cluster
//! goes through every failure in turn (a shared cluster keeps the suite's time down):
//! - the crash harness's mixed load (PUT, MOVE, DELETE, PROPPATCH, LOCK) for four schools
//!   through every node in turn while nodes are killed with SIGKILL at random and restarted:
//!   every acknowledged operation is there afterwards, read through every node;
//! - a Garage node killed: writes through every node are still acknowledged;
//! - etcd killed and restarted: the nodes pause and come back by themselves, nothing lost;
//! - a node paused with SIGSTOP past its lease while it holds an upload in flight: another
//!   node takes the school over, and the paused node, continued, acknowledges nothing for it
//!   (fencing), while the new owner's data stays intact;
//! - a node restarted with `forward = "redirect"` answers 307 to the owner.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{basic, build_request, cluster_bed, parse_reply, pseudo_random, Reply};
use crate::crash_harness::Harness;

/// This test's ports (BASE_PORT .. +103): apart from the other cluster tests'.
const BASE_PORT: u16 = 27700;
/// Short leases keep the test quick; the fail-over figures in docs/scaleout.md use 3 s.
const LEASE_TTL_S: u64 = 4;
const CELLS: u32 = 8;
const SCHOOLS: [&str; 4] = ["skole-nord", "skole-syd", "skole-oest", "skole-vest"];
const PASSWORD: &str = "cluster pupil password";
/// How long the crash harness's load runs, and how many nodes it kills meanwhile.
const LOAD_SECS: u64 = 45;
const KILLS: usize = 3;
/// How long the nodes get to be ready again after a fault.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A cluster brought up by `scripts/cluster.sh`, taken down when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    etcd_again: Option<Child>,
}

impl Cluster {
    fn up() -> Cluster {
        let (dir, env) = cluster_bed::up(&[
            ("BASE_PORT", BASE_PORT.to_string()),
            ("SKAB_BIN", env!("CARGO_BIN_EXE_skab").to_string()),
            ("SKAB_LEASE_TTL_S", LEASE_TTL_S.to_string()),
            ("SKAB_CELLS", CELLS.to_string()),
        ]);
        Cluster {
            dir,
            env,
            etcd_again: None,
        }
    }

    fn cl(&self) -> PathBuf {
        self.dir.path().join("cl")
    }

    fn var(&self, k: &str) -> String {
        self.env.get(k).cloned().unwrap_or_default()
    }

    fn pids(&self, k: &str) -> Vec<i32> {
        cluster_bed::read_env(&self.cl().join("cluster.env"))
            .get(k)
            .map(|v| v.split_whitespace().map(|p| p.parse().unwrap()).collect())
            .unwrap_or_default()
    }

    fn ports(&self) -> Vec<u16> {
        self.var("NODES")
            .split_whitespace()
            .map(|u| u.rsplit(':').next().unwrap().parse().unwrap())
            .collect()
    }

    /// `skab ARGS --config $SKAB_CONFIG`: an admin command on the cluster.
    fn admin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skab"))
            .args(args)
            .arg("--config")
            .arg(self.var("SKAB_CONFIG"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn signal(pid: i32, sig: &str) {
        let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
    }

    fn restart_node(&self, n: usize) {
        let out = Command::new("bash")
            .arg(cluster_bed::script())
            .arg("restart-node")
            .arg(self.cl())
            .arg(n.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restart-node {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn state(port: u16) -> Option<serde_json::Value> {
        let r = send(
            port,
            &build_request("GET", "/_skab/cluster/state", None, &[], b""),
        )?;
        serde_json::from_slice(&r.body).ok()
    }

    /// Waits until every node is ready and they agree on an owner for every cell.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let states: Vec<Option<serde_json::Value>> =
                self.ports().into_iter().map(Cluster::state).collect();
            let ready = states.iter().all(|s| {
                s.as_ref()
                    .is_some_and(|s| s["ready"].as_bool() == Some(true))
            });
            let serving: usize = states
                .iter()
                .flatten()
                .map(|s| {
                    s["cells"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|c| c["here"] == "serving")
                        .count()
                })
                .sum();
            if ready && serving == CELLS as usize {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster was not ready again in {READY_TIMEOUT:?}: {states:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The owner (1-based node number) of cell `c`, as node 1..3 sees it.
    fn owner_of(&self, c: u32, asking: u16) -> Option<usize> {
        let s = Cluster::state(asking)?;
        let owner = s["cells"][c as usize]["owner"].as_str()?.to_string();
        owner.strip_prefix("node")?.parse().ok()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=3 {
            let text = std::fs::read_to_string(self.cl().join(format!("node{n}/skab.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out += &format!("--- node{n} (last lines)\n");
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.etcd_again.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        cluster_bed::down(&self.cl());
    }
}

/// One request on a new connection; `None` when no whole answer came.
fn send(port: u16, req: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    s.write_all(req).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    out.windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| parse_reply(&out))
}

fn auth(school: &str) -> String {
    basic(&format!("pupil@{school}"), PASSWORD)
}

fn put(port: u16, school: &str, name: &str, body: &[u8]) -> Option<u16> {
    let path = format!("/dav/{school}/pupil/{name}");
    send(
        port,
        &build_request("PUT", &path, Some(&auth(school)), &[], body),
    )
    .map(|r| r.status)
}

fn get(port: u16, school: &str, name: &str) -> Option<Reply> {
    let path = format!("/dav/{school}/pupil/{name}");
    send(
        port,
        &build_request("GET", &path, Some(&auth(school)), &[], b""),
    )
}

fn add_school(cluster: &Cluster, school: &str) {
    let (ok, out) = cluster.admin(
        &[
            "user",
            "add",
            "--tenant",
            school,
            "--user",
            "pupil",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(ok, "user add on the cluster: {out}");
}

/// Phase 1: nodes killed at random under the crash harness's load.
fn node_crashes(cluster: &Cluster) {
    let ports = cluster.ports();
    let mut harnesses: Vec<Harness> = SCHOOLS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let h = Harness::new(0xc1u64 + i as u64, s, "pupil", PASSWORD, true);
            h.create_prop_files(ports[i % ports.len()]);
            h
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = harnesses
        .drain(..)
        .enumerate()
        .map(|(i, mut h)| {
            let stop = stop.clone();
            let ports = ports.clone();
            std::thread::spawn(move || {
                let mut k = i;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    k += 1;
                    if !h.step(ports[k % ports.len()]) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                h
            })
        })
        .collect();
    let mut rng = crate::crash_harness::Rng(0x6b696c6c);
    let started = Instant::now();
    let mut killed = Vec::new();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(4_000 + rng.0 % 4_000));
        rng.0 ^= rng.0 << 13;
        rng.0 ^= rng.0 >> 7;
        rng.0 ^= rng.0 << 17;
        let n = 1 + (rng.0 % 3) as usize;
        let pid = cluster.pids("NODE_PIDS")[n - 1];
        Cluster::signal(pid, "-KILL");
        killed.push(n);
        eprintln!(
            "cluster: killed node {n} (pid {pid}) at {:.1}s",
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(1_000 + rng.0 % 2_000));
        cluster.restart_node(n);
    }
    let left = Duration::from_secs(LOAD_SECS).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut harnesses: Vec<Harness> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    cluster.wait_ready();
    let acked: u64 = harnesses.iter().map(|h| h.acked).sum();
    for h in &mut harnesses {
        for &p in &ports {
            h.verify(p);
        }
    }
    let checked: u64 = harnesses.iter().map(|h| h.checked).sum();
    eprintln!(
        "cluster crash harness: killed nodes {killed:?}, {acked} operations acknowledged, \
         {checked} checks through {} nodes, lost 0",
        ports.len()
    );
    assert!(acked > 100, "the load acknowledged almost nothing: {acked}");
}

/// Phase 2: a Garage node killed; every node still acknowledges writes.
fn garage_node_killed(cluster: &Cluster) {
    let garage = cluster.pids("GARAGE_PIDS");
    Cluster::signal(garage[2], "-KILL");
    let ports = cluster.ports();
    for (i, school) in SCHOOLS.iter().enumerate() {
        for (j, &p) in ports.iter().enumerate() {
            let body = pseudo_random(1000 + (i * 10 + j) as u64, 20_000);
            let name = format!("g{j}.bin");
            assert_eq!(
                put(p, school, &name, &body),
                Some(201),
                "PUT with a Garage node down"
            );
            let other = ports[(j + 1) % ports.len()];
            let r = get(other, school, &name).expect("GET");
            assert_eq!(r.status, 200);
            assert!(
                r.body == body,
                "{school}/{name} read back through another node differs"
            );
        }
    }
}

/// Phase 3: etcd killed and started again over its data: the nodes lose their leases (their
/// cells pause), then take them again by themselves.
fn etcd_restarted(cluster: &mut Cluster) {
    let pid = cluster.pids("ETCD_PIDS")[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Cluster::signal(pid, "-KILL");
    std::thread::sleep(Duration::from_secs(LEASE_TTL_S + 1));
    let log = std::fs::File::create(cluster.cl().join("etcd-again.log")).unwrap();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start etcd again");
    cluster.etcd_again = Some(child);
    cluster.wait_ready();
    for (i, school) in SCHOOLS.iter().enumerate() {
        for &p in &cluster.ports() {
            let r = get(p, school, &format!("g{}.bin", i % 3)).expect("GET after etcd came back");
            assert_eq!(r.status, 200, "{school} after etcd came back: {}", r.text());
            let s = put(p, school, "after-etcd.txt", b"back");
            assert!(
                matches!(s, Some(201) | Some(204)),
                "PUT through port {p} after etcd came back: {s:?}"
            );
        }
    }
}

/// Phase 4: fencing. A node paused past its lease while an upload to it is half sent: the
/// school moves to another node, and the paused node, continued, does not acknowledge it.
fn paused_node_is_fenced(cluster: &Cluster) {
    let ports = cluster.ports();
    // A school whose cell node 2 owns (new schools until one lands there).
    let victim = 2usize;
    let mut school = String::new();
    for i in 0.. {
        let s = format!("fence-{i}");
        let c = skab_server::cluster::cell_of(&s, CELLS);
        if cluster.owner_of(c, ports[0]) == Some(victim) {
            school = s;
            break;
        }
        assert!(i < 200, "node {victim} owns no cell");
    }
    add_school(cluster, &school);
    let cell = skab_server::cluster::cell_of(&school, CELLS);
    let vport = ports[victim - 1];
    assert_eq!(put(vport, &school, "before.txt", b"before"), Some(201));
    // Half an upload straight to the victim.
    let body = pseudo_random(77, 300_000);
    let path = format!("/dav/{school}/pupil/in-flight.bin");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{vport}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        auth(&school),
        body.len()
    );
    let mut conn = TcpStream::connect(("127.0.0.1", vport)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..150_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = cluster.pids("NODE_PIDS")[victim - 1];
    Cluster::signal(pid, "-STOP");
    // Another node takes the cell over once the victim's lease has run out.
    let other = ports[0];
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let owner = cluster.owner_of(cell, other);
        if owner.is_some() && owner != Some(victim) {
            break;
        }
        assert!(Instant::now() < deadline, "cell {cell} was not taken over");
        std::thread::sleep(Duration::from_millis(200));
    }
    let taken = Instant::now();
    loop {
        match put(other, &school, "after.txt", b"written by the new owner") {
            Some(201) => break,
            s => assert!(
                Instant::now() < taken + READY_TIMEOUT,
                "the new owner did not take writes: {s:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Cluster::signal(pid, "-CONT");
    conn.write_all(&body[150_000..]).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let status = answer
        .windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| parse_reply(&answer).status);
    eprintln!("cluster: the paused node answered the upload it held with {status:?}");
    assert!(
        !matches!(status, Some(200..=299)),
        "the node that lost its lease acknowledged an upload ({status:?})\n{}",
        cluster.logs()
    );
    // What the new owner holds is intact, through every node, and the unacknowledged upload
    // is not there.
    cluster.wait_ready();
    for &p in &ports {
        let r = get(p, &school, "after.txt").expect("GET");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"written by the new owner");
        let r = get(p, &school, "before.txt").expect("GET");
        assert_eq!(r.body, b"before");
        let r = get(p, &school, "in-flight.bin").expect("GET");
        assert_eq!(r.status, 404, "an upload never acknowledged is there");
    }
}

/// Phase 5: node 3 restarted with `forward = "redirect"` answers a request for a cell it does
/// not own with 307 to the owner, whose answer is the file.
fn redirect_mode(cluster: &Cluster) {
    let n = 3usize;
    let config = cluster.cl().join(format!("node{n}/skab.toml"));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("forward = \"proxy\""), "{text}");
    std::fs::write(
        &config,
        text.replace("forward = \"proxy\"", "forward = \"redirect\""),
    )
    .unwrap();
    Cluster::signal(cluster.pids("NODE_PIDS")[n - 1], "-TERM");
    let deadline = Instant::now() + READY_TIMEOUT;
    while Command::new("kill")
        .args(["-0", &cluster.pids("NODE_PIDS")[n - 1].to_string()])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "node {n} did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.restart_node(n);
    cluster.wait_ready();
    let port = cluster.ports()[n - 1];
    let school = SCHOOLS
        .iter()
        .find(|s| cluster.owner_of(skab_server::cluster::cell_of(s, CELLS), port) != Some(n))
        .expect("a school whose cell node 3 does not own");
    let r = get(port, school, "g0.bin").expect("GET");
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").expect("Location").to_string();
    let owner_port: u16 = location
        .strip_prefix("http://127.0.0.1:")
        .and_then(|l| l.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("Location {location}"));
    assert_ne!(owner_port, port);
    let path = &location[location.find("/dav/").unwrap()..];
    let r = send(
        owner_port,
        &build_request("GET", path, Some(&auth(school)), &[], b""),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_three_node_cluster_loses_no_acknowledged_write_through_node_garage_and_etcd_faults() {
    crate::common::require_tool("curl");
    let mut cluster = Cluster::up();
    for s in SCHOOLS {
        add_school(&cluster, s);
    }
    let (ok, out) = cluster.admin(&["user", "list", "--tenant", SCHOOLS[0]], None);
    assert!(ok && out.contains("pupil"), "{out}");
    // A users CSV across schools: each cell's owner imports its schools' rows.
    let csv = cluster.cl().join("pupils.csv");
    let mut rows = String::from("user,tenant,password\n");
    for s in SCHOOLS {
        rows += &format!("imported,{s},{PASSWORD}\n");
    }
    std::fs::write(&csv, rows).unwrap();
    let (ok, out) = cluster.admin(&["user", "import", "--csv", csv.to_str().unwrap()], None);
    assert!(ok, "user import on the cluster: {out}");
    for (i, s) in SCHOOLS.iter().enumerate() {
        let port = cluster.ports()[i % 3];
        let login = basic(&format!("imported@{s}"), PASSWORD);
        let r = send(
            port,
            &build_request(
                "PROPFIND",
                &format!("/dav/{s}/imported/"),
                Some(&login),
                &[("Depth", "0")],
                b"",
            ),
        )
        .expect("PROPFIND");
        assert_eq!(r.status, 207, "imported user of {s}: {}", r.text());
    }
    let started = Instant::now();
    node_crashes(&cluster);
    eprintln!(
        "cluster: node crashes done at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    paused_node_is_fenced(&cluster);
    eprintln!(
        "cluster: fencing done at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    garage_node_killed(&cluster);
    eprintln!(
        "cluster: Garage node down done at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    etcd_restarted(&mut cluster);
    eprintln!(
        "cluster: etcd restart done at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    redirect_mode(&cluster);
    eprintln!(
        "cluster: redirect mode done at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let (ok, out) = cluster.admin(&["scrub"], None);
    assert!(ok, "scrub of every cell: {out}");
    // The nodes' /metrics: their cells add up to all of them, and requests were forwarded.
    let (mut serving, mut forwarded) = (0, 0);
    for p in cluster.ports() {
        let r = send(p, &build_request("GET", "/metrics", None, &[], b"")).expect("metrics");
        let text = r.text();
        let value = |name: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing from /metrics: {text}"))
        };
        serving += value("skab_cluster_cells_serving ");
        forwarded += value("skab_cluster_forwarded_total ");
    }
    assert_eq!(serving, u64::from(CELLS));
    assert!(forwarded > 0, "no node forwarded a request");
}
