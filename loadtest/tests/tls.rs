//! `https://` targets and connection churn: the real `skab-loadtest` runs login storms against
//! a real `skab` serving TLS itself (an rcgen certificate for 127.0.0.1), trusting it through
//! `--ca-cert`. Checks that churned requests open new connections, that resumption is used
//! (and only) where asked, and that an untrusted certificate fails every request.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "loadtest-tls-test-secret-0123456789abcdef";

fn loadtest() -> &'static str {
    env!("CARGO_BIN_EXE_skab-loadtest")
}

/// The `skab` binary of this workspace, built first when missing.
fn skab() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let bin = target.join("debug/skab");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "skab-server"])
            .current_dir(manifest.join(".."))
            .status()
            .expect("run cargo build -p skab-server");
        assert!(st.success(), "cargo build -p skab-server failed");
    }
    bin
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn self_signed(dir: &Path, prefix: &str) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join(format!("{prefix}cert.pem")), c.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{prefix}key.pem")),
        c.key_pair.serialize_pem(),
    )
    .unwrap();
}

/// Whether a TLS handshake with the server on `port` completes, trusting `cert`.
fn tls_ready(port: u16, cert: &Path) -> bool {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_ok()
        && {
            let mut out = Vec::new();
            let _ = std::io::Read::read_to_end(&mut tls, &mut out);
            out.starts_with(b"HTTP/1.1 200")
        }
}

/// 20 users (one argon2 hash for all), a JWT issuer, `skab` serving TLS.
fn start() -> Server {
    let skab = skab();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let o = run(
        Path::new(loadtest()),
        &[
            "users",
            "--count",
            "20",
            "--tenant",
            "school",
            "--out",
            &p("users.csv"),
            "--skab-import",
            &p("import.csv"),
        ],
    );
    assert!(o.status.success(), "users: {}", text(&o));
    let o = run(
        &skab,
        &[
            "user",
            "import",
            "--data-dir",
            &p("data"),
            "--csv",
            &p("import.csv"),
        ],
    );
    assert!(o.status.success(), "import: {}", text(&o));
    self_signed(dir.path(), "");
    self_signed(dir.path(), "other-");
    std::fs::write(
        p("server.toml"),
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n\
             [[auth.jwt]]\nissuer = \"skab-loadtest\"\naudience = \"skab\"\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n",
            p("cert.pem"),
            p("key.pem")
        ),
    )
    .unwrap();
    std::fs::write(
        p("lt.toml"),
        format!(
            "[auth]\njwt_secret = \"{SECRET}\"\njwt_share = 1.0\ntoken_share = 0.0\nbasic_share = 0.0\n\
             [login_storm]\nsession_s = 40\npoll_every_s = 4\n"
        ),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(p("server.log")).unwrap();
    let child = Command::new(&skab)
        .args([
            "serve",
            "--config",
            &p("server.toml"),
            "--data-dir",
            &p("data"),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start skab serve");
    let server = Server { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tls_ready(port, Path::new(&server.p("cert.pem"))) {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A 40-session login storm over `https://` (10 s window at 10x, sessions polling for 4 s
/// of wall time), trusting `ca`, with the extra `args`.
fn storm(s: &Server, out: &str, ca: &str, args: &[&str]) -> Output {
    let url = format!("https://127.0.0.1:{}", s.port);
    let (users, cfg, pid) = (s.p("users.csv"), s.p("lt.toml"), s.child.id().to_string());
    let mut all = vec![
        "run",
        "login-storm",
        "--sessions",
        "40",
        "--duration",
        "10",
        "--time-scale",
        "10",
        "--target",
        &url,
        "--users",
        &users,
        "--config",
        &cfg,
        "--ca-cert",
        ca,
        "--server-pid",
        &pid,
        "--max-wall",
        "120",
        "--quiet",
        "--threshold",
        "errors=0",
        "--out",
        out,
    ];
    all.extend_from_slice(args);
    run(Path::new(loadtest()), &all)
}

fn result(dir: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(dir).join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json is JSON")
}

/// HTTP requests of a run: every op but `session` (a whole session's time, not a request).
fn requests_of(r: &serde_json::Value) -> f64 {
    let ops = r["ops"].as_object().expect("ops in result");
    ops.iter()
        .filter(|(k, _)| k.as_str() != "session")
        .map(|(_, v)| v["count"].as_f64().unwrap())
        .sum()
}

fn n(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut c = v;
    for k in path {
        c = c.get(k).unwrap_or_else(|| panic!("no {path:?} in result"));
    }
    c.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number"))
}

#[test]
fn login_storms_over_tls_with_churn_and_resumption() {
    let s = start();
    let ca = s.p("cert.pem");

    // Seed every home over https:// (the storm's sessions open these files).
    let out = s.p("seed");
    let url = format!("https://127.0.0.1:{}", s.port);
    let (users, cfg) = (s.p("users.csv"), s.p("lt.toml"));
    let o = run(
        Path::new(loadtest()),
        &[
            "seed",
            "--files-per-user",
            "2",
            "--target",
            &url,
            "--users",
            &users,
            "--config",
            &cfg,
            "--ca-cert",
            &ca,
            "--quiet",
            "--out",
            &out,
        ],
    );
    assert!(o.status.success(), "seed: {}", text(&o));
    assert_eq!(n(&result(&out), &["seed", "files_written"]), 40.0);

    // Keep-alive only: few connections, each a full handshake or resumed from a ticket.
    let out = s.p("keepalive");
    let o = storm(&s, &out, &ca, &[]);
    assert!(o.status.success(), "keep-alive: {}", text(&o));
    let r = result(&out);
    let requests = requests_of(&r);
    let c = &r["connections"];
    assert_eq!(n(&r, &["login_storm", "logins_ok"]), 40.0, "{}", text(&o));
    assert!(n(&r, &["ops", "poll", "count"]) > 0.0, "{}", text(&o));
    assert_eq!(n(c, &["tls_failed"]), 0.0);
    assert_eq!(
        n(c, &["tls_full"]) + n(c, &["tls_resumed"]),
        n(c, &["opened"]),
        "every connection did one handshake"
    );
    assert!(n(c, &["opened"]) < requests / 2.0, "{}", text(&o));

    // Every request on a new connection, none resumed: one full handshake per request.
    let out = s.p("churn-full");
    let o = storm(&s, &out, &ca, &["--churn", "1", "--resumption", "0"]);
    assert!(o.status.success(), "churn, full handshakes: {}", text(&o));
    let r = result(&out);
    let requests = requests_of(&r);
    let c = &r["connections"];
    assert_eq!(n(c, &["tls_resumed"]), 0.0, "{}", text(&o));
    assert_eq!(n(c, &["tls_failed"]), 0.0);
    // The /metrics scrapes before and after the run go over the keep-alive pool.
    assert!(n(c, &["opened"]) >= requests, "{}", text(&o));
    assert!(n(c, &["tls_full"]) >= requests, "{}", text(&o));
    assert!(text(&o).contains("TLS handshakes:"), "{}", text(&o));

    // Half the requests churn, half of those resume: about a quarter of the requests open a
    // resumed connection (the first ones find no ticket yet and do a full handshake).
    let out = s.p("churn-half");
    let o = storm(&s, &out, &ca, &["--churn", "0.5", "--resumption", "0.5"]);
    assert!(o.status.success(), "churn, half resumed: {}", text(&o));
    let r = result(&out);
    let requests = requests_of(&r);
    let c = &r["connections"];
    let churned = (requests * 0.5).floor();
    assert!(n(c, &["opened"]) >= churned, "{}", text(&o));
    assert!(n(c, &["opened"]) < requests * 0.75, "{}", text(&o));
    let resumed = n(c, &["tls_resumed"]);
    assert!(resumed >= churned * 0.5 * 0.8, "{}", text(&o));
    assert!(resumed <= churned * 0.5 + 1.0 + n(c, &["opened"]) - churned);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0);

    // A certificate the generator does not trust: every handshake fails, the run fails.
    let out = s.p("untrusted");
    let o = storm(&s, &out, &s.p("other-cert.pem"), &["--churn", "1"]);
    assert!(!o.status.success(), "untrusted certificate: {}", text(&o));
    let r = result(&out);
    assert_eq!(n(&r, &["login_storm", "logins_ok"]), 0.0);
    assert!(
        n(&r, &["connections", "tls_failed"]) >= 40.0,
        "{}",
        text(&o)
    );
    assert_eq!(n(&r, &["connections", "opened"]), 0.0);
}

#[test]
fn refuses_an_unknown_scheme_and_a_missing_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "user,tenant,password\nu1,t,pw\n").unwrap();
    let users = users.to_string_lossy().into_owned();
    let missing = dir.path().join("nope.pem").to_string_lossy().into_owned();
    for (target, extra, expect) in [
        ("ftp://127.0.0.1:1", vec![], "not supported"),
        (
            "https://127.0.0.1:1",
            vec!["--ca-cert", missing.as_str()],
            "--ca-cert",
        ),
    ] {
        let mut args = vec![
            "run",
            "login-storm",
            "--sessions",
            "1",
            "--target",
            target,
            "--users",
            &users,
        ];
        args.extend(extra);
        let o = run(Path::new(loadtest()), &args);
        assert!(!o.status.success());
        assert!(text(&o).contains(expect), "{target}: {}", text(&o));
    }
}
