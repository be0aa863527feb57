//! Crash harness: the real `skab` under a mixed write load (PUT, overwrite, MOVE, DELETE,
//! PROPPATCH, LOCK) is killed with SIGKILL at random moments and restarted; after each
//! restart every acknowledged operation's effect must be there (BLAKE3 of GET), and every
//! file present must hold bytes a client wrote in full. `SKAB_CRASH_CYCLES` sets the cycles
//! (default 10), `SKAB_CRASH_SEED` the seed; the figures go to docs/reliability.md.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Files the load plays with (a flat home, so the model stays simple).
const FILES: u64 = 12;
/// Files only PROPPATCHed and LOCKed (never moved or deleted).
const PROP_FILES: u64 = 3;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Hash = [u8; 32];

/// What a path may hold after a restart: `None` is absent.
#[derive(Clone, Default)]
struct Allowed(Vec<Option<Hash>>);

/// One request; `None` when the server died before answering in full.
fn try_send(port: u16, req: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    s.write_all(req).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    if !out.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let r = parse_reply(&out);
    // A body cut short by the kill is no answer either.
    let len: Option<usize> = r.header("content-length").and_then(|v| v.parse().ok());
    match len {
        Some(n) if n != r.body.len() => None,
        _ => Some(r),
    }
}

fn name(i: u64) -> String {
    format!("f{i}.bin")
}

fn prop_body(value: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:crash"><D:set><D:prop><Z:v>{value}</Z:v></D:prop></D:set></D:propertyupdate>"#
    )
}

pub(crate) struct Harness {
    pub(crate) rng: Rng,
    pub(crate) auth: String,
    /// `/dav/<tenant>/<user>/`.
    pub(crate) home: String,
    /// In a cluster, 5xx (a node down, a cell moving) and 423 (a lock whose UNLOCK went to a
    /// node that died) mean "not known to be done", like a dropped connection.
    pub(crate) lenient: bool,
    /// Per path: the states allowed after a crash (the last acknowledged one, plus the
    /// outcome of an operation in flight when the server died).
    files: HashMap<String, Allowed>,
    /// Per prop file: allowed values of the dead property `urn:crash v`.
    props: HashMap<String, Vec<Option<String>>>,
    /// Every content a client sent in full, by hash.
    written: HashSet<Hash>,
    pub(crate) acked: u64,
    pub(crate) checked: u64,
    pub(crate) next_seed: u64,
}

impl Harness {
    pub(crate) fn new(
        seed: u64,
        tenant: &str,
        user: &str,
        password: &str,
        lenient: bool,
    ) -> Harness {
        Harness {
            rng: Rng(seed | 1),
            auth: basic(&format!("{user}@{tenant}"), password),
            home: format!("/dav/{tenant}/{user}/"),
            lenient,
            files: HashMap::new(),
            props: HashMap::new(),
            written: HashSet::new(),
            acked: 0,
            checked: 0,
            next_seed: seed << 20,
        }
    }

    /// The files only PROPPATCHed and LOCKed, created (acknowledged) through `port`.
    pub(crate) fn create_prop_files(&self, port: u16) {
        for i in 0..PROP_FILES {
            let r = self
                .send(port, &self.req("PUT", &format!("p{i}.txt"), &[], b"props"))
                .expect("PUT of a prop file");
            assert!(r.status == 201 || r.status == 204, "{}", r.status);
        }
    }

    /// One request: `None` when its outcome is not known (see `lenient`).
    fn send(&self, port: u16, req: &[u8]) -> Option<Reply> {
        let r = try_send(port, req)?;
        if self.lenient && (r.status >= 500 || r.status == 423) {
            return None;
        }
        Some(r)
    }

    /// One random operation; `false` when its outcome is not known.
    pub(crate) fn step(&mut self, port: u16) -> bool {
        let ok = match self.rng.below(10) {
            0..=3 => self.put(port),
            4 | 5 => self.mv(port),
            6 => self.delete(port),
            7 | 8 => self.proppatch(port),
            _ => self.lock(port),
        };
        if ok {
            self.acked += 1;
        }
        ok
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        build_request(
            method,
            &format!("{}{path}", self.home),
            Some(&self.auth),
            headers,
            body,
        )
    }

    /// Runs operations until the server stops answering; returns the operations acknowledged.
    fn load(&mut self, port: u16) -> u64 {
        let mut n = 0;
        while self.step(port) {
            n += 1;
        }
        n
    }

    fn put(&mut self, port: u16) -> bool {
        let path = name(self.rng.below(FILES));
        self.next_seed += 1;
        let len = [0usize, 100, 5_000, 70_000, 300_000][self.rng.below(5) as usize];
        let data = pseudo_random(self.next_seed, len);
        let h: Hash = *blake3::hash(&data).as_bytes();
        self.written.insert(h);
        let prev = self.files.get(&path).cloned().unwrap_or_default();
        let mut maybe = prev.clone();
        maybe.0.push(Some(h));
        self.files.insert(path.clone(), maybe);
        match self.send(port, &self.req("PUT", &path, &[], &data)) {
            Some(r) if r.status == 201 || r.status == 204 => {
                self.files.insert(path, Allowed(vec![Some(h)]));
                true
            }
            Some(r) => panic!("PUT {path}: {} {}", r.status, r.text()),
            None => false,
        }
    }

    fn mv(&mut self, port: u16) -> bool {
        let from = name(self.rng.below(FILES));
        let to = name(self.rng.below(FILES));
        let from_state = self.files.get(&from).cloned().unwrap_or_default();
        // Only certain states are moved: an uncertain source makes an uncertain model.
        let [src] = from_state.0.as_slice() else {
            return true;
        };
        if src.is_none() || from == to {
            return true;
        }
        let to_state = self.files.get(&to).cloned().unwrap_or_default();
        let dest = format!("{}{to}", self.home);
        let mut a = from_state.clone();
        a.0.push(None);
        let mut b = to_state.clone();
        b.0.push(*src);
        self.files.insert(from.clone(), a);
        self.files.insert(to.clone(), b);
        let req = self.req(
            "MOVE",
            &from,
            &[("Destination", &dest), ("Overwrite", "T")],
            b"",
        );
        match self.send(port, &req) {
            Some(r) if r.status == 201 || r.status == 204 => {
                self.files.insert(from, Allowed(vec![None]));
                self.files.insert(to, Allowed(vec![*src]));
                true
            }
            Some(r) => panic!("MOVE {from} {to}: {} {}", r.status, r.text()),
            None => false,
        }
    }

    fn delete(&mut self, port: u16) -> bool {
        let path = name(self.rng.below(FILES));
        let state = self.files.get(&path).cloned().unwrap_or_default();
        if state.0.iter().all(|s| s.is_none()) {
            return true;
        }
        let mut maybe = state.clone();
        maybe.0.push(None);
        self.files.insert(path.clone(), maybe);
        match self.send(port, &self.req("DELETE", &path, &[], b"")) {
            Some(r) if r.status == 204 || r.status == 200 => {
                self.files.insert(path, Allowed(vec![None]));
                true
            }
            // Absent already (an uncertain earlier op did not happen).
            Some(r) if r.status == 404 && state.0.contains(&None) => {
                self.files.insert(path, Allowed(vec![None]));
                true
            }
            Some(r) => panic!("DELETE {path}: {} {}", r.status, r.text()),
            None => false,
        }
    }

    fn proppatch(&mut self, port: u16) -> bool {
        let path = format!("p{}.txt", self.rng.below(PROP_FILES));
        self.next_seed += 1;
        let value = format!("v{}", self.next_seed);
        let mut allowed = self.props.get(&path).cloned().unwrap_or_default();
        allowed.push(Some(value.clone()));
        self.props.insert(path.clone(), allowed);
        let req = self.req(
            "PROPPATCH",
            &path,
            &[("Content-Type", "application/xml")],
            prop_body(&value).as_bytes(),
        );
        match self.send(port, &req) {
            Some(r) if r.status == 207 && r.text().contains("200 OK") => {
                self.props.insert(path, vec![Some(value)]);
                true
            }
            Some(r) => panic!("PROPPATCH {path}: {} {}", r.status, r.text()),
            None => false,
        }
    }

    fn lock(&mut self, port: u16) -> bool {
        let path = format!("p{}.txt", self.rng.below(PROP_FILES));
        let body = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>crash</D:owner></D:lockinfo>"#;
        let req = self.req(
            "LOCK",
            &path,
            &[
                ("Timeout", "Second-60"),
                ("Content-Type", "application/xml"),
            ],
            body.as_bytes(),
        );
        let token = match self.send(port, &req) {
            Some(r) if r.status == 200 => r
                .header("lock-token")
                .map(str::to_string)
                .expect("LOCK answer without Lock-Token"),
            Some(r) => panic!("LOCK {path}: {} {}", r.status, r.text()),
            None => return false,
        };
        match self.send(
            port,
            &self.req("UNLOCK", &path, &[("Lock-Token", &token)], b""),
        ) {
            Some(r) if r.status == 204 => true,
            // The node that held the lock died (locks live in memory, as after a crash of a
            // single server): the lock is gone with it.
            Some(r) if self.lenient && r.status == 409 => true,
            Some(r) => panic!("UNLOCK {path}: {} {}", r.status, r.text()),
            None => false,
        }
    }

    /// Checks the restarted server against the model, then makes the model certain again.
    pub(crate) fn verify(&mut self, port: u16) {
        for i in 0..FILES {
            let path = name(i);
            let allowed = self
                .files
                .get(&path)
                .cloned()
                .unwrap_or(Allowed(vec![None]));
            let r = try_send(port, &self.req("GET", &path, &[], b"")).expect("GET after restart");
            let got = match r.status {
                200 => {
                    let h: Hash = *blake3::hash(&r.body).as_bytes();
                    assert!(
                        self.written.contains(&h),
                        "{path} holds {} bytes no client wrote in full",
                        r.body.len()
                    );
                    Some(h)
                }
                404 => None,
                s => panic!("GET {path} after restart: {s}"),
            };
            assert!(
                allowed.0.contains(&got),
                "{path}: an acknowledged operation was lost (found {}, allowed {} states)",
                if got.is_some() { "a file" } else { "nothing" },
                allowed.0.len()
            );
            self.checked += 1;
            self.files.insert(path, Allowed(vec![got]));
        }
        for i in 0..PROP_FILES {
            let path = format!("p{i}.txt");
            let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:crash"><D:prop><Z:v/></D:prop></D:propfind>"#;
            let r = try_send(
                port,
                &self.req("PROPFIND", &path, &[("Depth", "0")], body.as_bytes()),
            )
            .expect("PROPFIND after restart");
            assert_eq!(r.status, 207, "PROPFIND {path}: {}", r.text());
            let text = r.text();
            let allowed = self.props.get(&path).cloned().unwrap_or(vec![None]);
            let got = allowed
                .iter()
                .flatten()
                .find(|v| text.contains(&format!(">{v}<")))
                .cloned();
            assert!(
                allowed.contains(&got),
                "{path}: acknowledged PROPPATCH lost: {text}"
            );
            self.checked += 1;
            self.props.insert(path, vec![got]);
        }
    }
}

#[test]
fn sigkill_under_mixed_load_loses_no_acknowledged_operation() {
    let cycles: u64 = std::env::var("SKAB_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("SKAB_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut server = Server::start();
    let mut h = Harness::new(seed, TENANT, USER, PASSWORD, false);
    h.create_prop_files(server.port);
    let started = Instant::now();
    let mut killed_mid_op = 0u64;
    for cycle in 0..cycles {
        let pid = server.pid();
        let delay = Duration::from_millis(50 + h.rng.below(400));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        });
        let before = h.acked;
        h.load(server.port);
        killer.join().unwrap();
        killed_mid_op += 1;
        // Recovery must succeed (restart panics with the log otherwise) ...
        server.restart();
        // ... and keep every acknowledged effect.
        h.verify(server.port);
        eprintln!(
            "cycle {cycle}: {} ops acknowledged, {} checks so far",
            h.acked - before,
            h.checked
        );
    }
    server.stop();
    let (ok, out) = skab(
        &["scrub", "--data-dir", server.data_dir().to_str().unwrap()],
        None,
    );
    assert!(ok, "scrub after the crash cycles: {out}");
    eprintln!(
        "crash harness: cycles={cycles} killed={killed_mid_op} acknowledged_ops={} checks={} lost=0 secs={:.1}",
        h.acked,
        h.checked,
        started.elapsed().as_secs_f64()
    );
    assert!(h.acked > cycles, "the load acknowledged almost nothing");
}
