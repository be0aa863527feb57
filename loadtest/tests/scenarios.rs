//! Runs scaled-down versions of every scenario with the real `skab-loadtest` binary against a
//! real `skab` on loopback, checks result.json, the threshold exit code, the loopback guard,
//! and renders report.html in headless chromium.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "loadtest-test-secret-0123456789abcdef";

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
    assert!(bin.exists(), "no skab binary at {}", bin.display());
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
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// Users (60, all importing one argon2 hash), two app tokens, a JWT issuer, a running server.
fn start() -> Server {
    let skab = skab();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let o = run(
        Path::new(loadtest()),
        &[
            "users",
            "--count",
            "60",
            "--tenant",
            "school",
            "--out",
            &p("plain.csv"),
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
    // App tokens for the first two users: users.csv gains a `token` column.
    let plain = std::fs::read_to_string(p("plain.csv")).unwrap();
    let mut csv = String::new();
    for (i, line) in plain.lines().enumerate() {
        if i == 0 {
            csv.push_str("user,tenant,password,token\n");
            continue;
        }
        let user = line.split(',').next().unwrap();
        let mut token = String::new();
        if i <= 2 {
            let o = run(
                &skab,
                &[
                    "token",
                    "create",
                    "--data-dir",
                    &p("data"),
                    "--tenant",
                    "school",
                    "--user",
                    user,
                ],
            );
            assert!(o.status.success(), "token: {}", text(&o));
            token = text(&o)
                .split_whitespace()
                .find(|w| w.starts_with("skab_at_"))
                .expect("token in output")
                .to_string();
        }
        csv.push_str(&format!("{line},{token}\n"));
    }
    std::fs::write(p("users.csv"), csv).unwrap();
    std::fs::write(
        p("server.toml"),
        format!(
            "[[auth.jwt]]\nissuer = \"skab-loadtest\"\naudience = \"skab\"\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    // Small, fast scenarios: short sessions, short windows.
    std::fs::write(
        p("lt.toml"),
        format!(
            "[auth]\njwt_secret = \"{SECRET}\"\njwt_share = 0.6\ntoken_share = 0.3\nbasic_share = 0.1\n\
             [login_storm]\nsession_s = 60\npoll_every_s = 15\n\
             [exam_peak]\nsize_median_bytes = 40000\nsize_max_bytes = 400000\nlast_s = 20\n\
             [school_day]\nrate_per_s = 20\ndoc_size_bytes = 8192\n\
             [seed]\nfile_size_bytes = 8192\n\
             [sync]\ndevices_per_user = 3\npoll_every_s = 0.5\nchanges_per_s = 4\nduration_s = 6\nbound_s = 4\n"
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
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn lt(s: &Server, args: &[&str]) -> Output {
    lt_with(s, "lt.toml", args)
}

/// `lt` with another config file of the server's directory.
fn lt_with(s: &Server, config: &str, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend([
        "--target".into(),
        s.url(),
        "--users".into(),
        s.p("users.csv"),
        "--config".into(),
        s.p(config),
        "--server-pid".into(),
        s.child.id().to_string(),
        "--max-wall".into(),
        "120".into(),
    ]);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run(Path::new(loadtest()), &refs)
}

/// login-storm: 80 sessions over a 60 s window compressed 30x, no errors allowed.
fn login_storm_80(s: &Server, out: &str) -> Output {
    lt(
        s,
        &[
            "run",
            "login-storm",
            "--sessions",
            "80",
            "--duration",
            "60",
            "--time-scale",
            "30",
            "--threshold",
            "errors=0",
            "--out",
            out,
        ],
    )
}

fn result(dir: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(dir).join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json is JSON")
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
fn scenarios_against_a_real_skab() {
    let s = start();

    let out = s.p("seed");
    let o = lt(
        &s,
        &["seed", "--files-per-user", "2", "--out", &out, "--quiet"],
    );
    assert!(o.status.success(), "seed: {}", text(&o));
    let r = result(&out);
    assert_eq!(n(&r, &["seed", "files_written"]), 120.0);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0, "{}", text(&o));

    // login-storm: 80 sessions over a 60 s window compressed 30x, then polls.
    let out = s.p("login");
    let o = login_storm_80(&s, &out);
    assert!(o.status.success(), "login-storm: {}", text(&o));
    let r = result(&out);
    assert_eq!(r["scenario"], "login-storm");
    assert_eq!(n(&r, &["login_storm", "logins_ok"]), 80.0);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0);
    assert_eq!(r["passed"], true);
    for op in ["login.jwt", "login.token", "get", "poll", "session"] {
        assert!(n(&r, &["ops", op, "count"]) > 0.0, "no {op}: {}", text(&o));
    }
    let auth_total: f64 = ["jwt", "token", "basic"]
        .iter()
        .map(|k| r["auth"][k].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(auth_total, 80.0);
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(n(&r, &["latency_us", k]) >= 1.0);
    }
    assert!(n(&r, &["latency_us", "p99"]) <= n(&r, &["latency_us", "max"]));
    assert!(n(&r, &["connections", "peak_open"]) >= 1.0);
    assert!(n(&r, &["connections", "peak_open"]) <= n(&r, &["connections", "max_allowed"]));
    assert!(n(&r, &["generator", "cpu_s"]) > 0.0);
    assert!(n(&r, &["server", "peak_rss_bytes"]) > 0.0);
    assert!(!r["timeline"].as_array().unwrap().is_empty());
    // Nothing changed in the homes: every poll found the remembered ETag, no follow-ups.
    let poll = &r["login_storm"]["polling"];
    assert!(n(poll, &["polls"]) > 0.0, "{}", text(&o));
    assert_eq!(n(poll, &["polls"]), n(&r, &["ops", "poll", "count"]));
    assert_eq!(n(poll, &["polls_changed"]), 0.0, "{}", text(&o));
    assert_eq!(n(poll, &["polls_without_etag"]), 0.0);
    assert_eq!(n(poll, &["listings"]), 0.0);
    assert!(r["ops"].get("list").is_none());
    let login_report = Path::new(&out).join("report.html");
    let html = std::fs::read_to_string(&login_report).unwrap();
    assert!(html.contains("<h2>Sync polling</h2>") && html.contains("<td>0.0 %</td>"));

    // login-storm while school-day saves, copies, moves and deletes files in the same homes:
    // polls find the home's ETag changed and list it again.
    let day = {
        let (url, users, cfg) = (s.url(), s.p("users.csv"), s.p("lt.toml"));
        let out = s.p("day-during-login");
        std::thread::spawn(move || {
            run(
                Path::new(loadtest()),
                &[
                    "run",
                    "school-day",
                    "--duration",
                    "30",
                    "--time-scale",
                    "10",
                    "--target",
                    &url,
                    "--users",
                    &users,
                    "--config",
                    &cfg,
                    "--out",
                    &out,
                    "--quiet",
                    "--max-wall",
                    "120",
                ],
            )
        })
    };
    let out = s.p("login-changing");
    let o = login_storm_80(&s, &out);
    let d = day.join().unwrap();
    assert!(d.status.success(), "school-day alongside: {}", text(&d));
    assert!(o.status.success(), "login-storm with changes: {}", text(&o));
    let r = result(&out);
    let poll = &r["login_storm"]["polling"];
    assert!(n(poll, &["polls_changed"]) > 0.0, "{}", text(&o));
    assert!(n(poll, &["polls_changed"]) <= n(poll, &["polls"]));
    assert_eq!(n(poll, &["listings"]), n(poll, &["polls_changed"]));
    assert_eq!(n(&r, &["ops", "list", "count"]), n(poll, &["listings"]));
    let share = n(poll, &["polls_changed"]) / n(poll, &["polls"]);
    assert!((n(poll, &["changed_share"]) - share).abs() < 1e-9);
    assert!(text(&o).contains("found the home changed"), "{}", text(&o));

    // exam-peak: 100 uploads, most in the last 20 s of a 60 s window, 30x; then verify.
    let out = s.p("exam");
    let o = lt(
        &s,
        &[
            "run",
            "exam-peak",
            "--sessions",
            "100",
            "--duration",
            "60",
            "--time-scale",
            "30",
            "--threshold",
            "lost=0",
            "--threshold",
            "corrupted=0",
            "--out",
            &out,
        ],
    );
    assert!(o.status.success(), "exam-peak: {}", text(&o));
    let r = result(&out);
    let e = &r["exam"];
    assert_eq!(n(e, &["acknowledged"]), 100.0, "{}", text(&o));
    assert_eq!(n(e, &["verified"]), n(e, &["acknowledged"]));
    assert_eq!(n(e, &["lost"]), 0.0);
    assert_eq!(n(e, &["corrupted"]), 0.0);
    assert!(n(e, &["template_uploads"]) > 0.0);
    assert!(n(e, &["logical_bytes_acknowledged"]) > 100.0 * 1024.0);
    // skab's /metrics was scraped before and after: logical bytes grew by the uploads.
    let lb = &r["server_metrics"]["skab_logical_bytes"];
    assert!(
        lb[1].as_f64().unwrap() - lb[0].as_f64().unwrap() >= n(e, &["logical_bytes_acknowledged"])
    );

    // school-day: 20 ops/s for 30 s, 10x.
    let out = s.p("day");
    let o = lt(
        &s,
        &[
            "run",
            "school-day",
            "--duration",
            "30",
            "--time-scale",
            "10",
            "--files-per-user",
            "2",
            "--threshold",
            "errors=0",
            "--out",
            &out,
        ],
    );
    assert!(o.status.success(), "school-day: {}", text(&o));
    let r = result(&out);
    assert_eq!(n(&r, &["requests", "total"]), 600.0);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0);
    for op in ["browse", "open", "save", "copy"] {
        assert!(n(&r, &["ops", op, "count"]) > 0.0, "no {op}");
    }

    // A missed threshold exits non-zero and says so in result.json.
    let out = s.p("fail");
    let o = lt(
        &s,
        &[
            "run",
            "school-day",
            "--duration",
            "5",
            "--time-scale",
            "10",
            "--threshold",
            "p99<1us",
            "--out",
            &out,
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = result(&out);
    assert_eq!(r["passed"], false);
    assert_eq!(r["thresholds"][0]["passed"], false);

    // sync: 3 users x 3 clients polling every 0.5 s; 4 changes/s for 6 s, each must reach
    // the user's two other clients within 4 s.
    let out = s.p("sync");
    let o = lt(
        &s,
        &[
            "run",
            "sync",
            "--sessions",
            "3",
            "--threshold",
            "errors=0",
            "--threshold",
            "late_changes=0",
            "--threshold",
            "propagation.p99<4s",
            "--out",
            &out,
        ],
    );
    assert!(o.status.success(), "sync: {}", text(&o));
    let r = result(&out);
    let y = &r["sync"];
    assert_eq!(r["passed"], true);
    assert_eq!(n(y, &["clients"]), 9.0);
    assert_eq!(n(y, &["clients_ready"]), 9.0);
    assert_eq!(n(y, &["changes"]), 24.0, "{}", text(&o));
    assert_eq!(n(y, &["changes_failed"]), 0.0);
    assert_eq!(n(y, &["deliveries_expected"]), 48.0);
    assert_eq!(n(y, &["deliveries_seen"]), 48.0, "{}", text(&o));
    assert_eq!(n(y, &["deliveries_late"]), 0.0);
    assert_eq!(n(y, &["deliveries_unseen"]), 0.0);
    assert_eq!(n(y, &["late_changes"]), 0.0);
    assert_eq!(n(y, &["polls_missed_change"]), 0.0, "{}", text(&o));
    assert_eq!(n(y, &["propagation_us", "count"]), 48.0);
    assert!(n(y, &["propagation_us", "max"]) <= 4e6);
    assert!(n(y, &["polling", "polls_changed"]) > 0.0);
    assert!(n(y, &["polling", "folder_listings"]) > 0.0);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0);
    let kinds: f64 = ["put_new", "put_existing", "delete", "move"]
        .iter()
        .map(|k| y["changes_by_kind"][k].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(kinds, 24.0);
    let html = std::fs::read_to_string(Path::new(&out).join("report.html")).unwrap();
    assert!(html.contains("<h2>Change propagation</h2>"));

    // A bound no poll can meet: the changes are late, the run fails (exit 3).
    let tight = std::fs::read_to_string(s.p("lt.toml"))
        .unwrap()
        .replace("bound_s = 4", "bound_s = 0.001");
    std::fs::write(s.p("tight.toml"), tight).unwrap();
    let out = s.p("sync-tight");
    let o = lt_with(
        &s,
        "tight.toml",
        &[
            "run",
            "sync",
            "--sessions",
            "2",
            "--duration",
            "2",
            "--out",
            &out,
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = result(&out);
    assert_eq!(r["passed"], false);
    assert!(n(&r, &["sync", "late_changes"]) > 0.0, "{}", text(&o));
    assert!(n(&r, &["sync", "deliveries_late"]) > 0.0);

    // The same through the ownCloud/Nextcloud client mount.
    let oc = format!(
        "[target]\nhome = \"/remote.php/dav/files/{{user}}@{{tenant}}/\"\n{}",
        std::fs::read_to_string(s.p("lt.toml")).unwrap()
    );
    std::fs::write(s.p("oc.toml"), oc).unwrap();
    let out = s.p("sync-oc");
    let o = lt_with(
        &s,
        "oc.toml",
        &[
            "run",
            "sync",
            "--sessions",
            "2",
            "--duration",
            "2",
            "--out",
            &out,
        ],
    );
    assert!(o.status.success(), "sync on /remote.php: {}", text(&o));
    let r = result(&out);
    assert_eq!(n(&r, &["sync", "changes"]), 8.0, "{}", text(&o));
    assert_eq!(n(&r, &["sync", "deliveries_seen"]), 16.0);
    assert_eq!(n(&r, &["sync", "late_changes"]), 0.0);
    assert_eq!(n(&r, &["requests", "errors"]), 0.0);

    // A bad threshold is a usage error before any load is sent.
    let o = lt(&s, &["run", "school-day", "--threshold", "p99<fast"]);
    assert_eq!(o.status.code(), Some(1));

    browser_check(&login_report, s.dir.path());
}

/// exam-peak over several `--target`s (JWT only, which both servers accept): `targets` is
/// the given list.
fn exam_over(s: &Server, targets: &str, out: &str) -> Output {
    let cfg = s.p("jwt.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\njwt_secret = \"{SECRET}\"\njwt_share = 1.0\ntoken_share = 0.0\nbasic_share = 0.0\n\
             [exam_peak]\nsize_median_bytes = 20000\nsize_max_bytes = 100000\nlast_s = 10\n"
        ),
    )
    .unwrap();
    run(
        Path::new(loadtest()),
        &[
            "run",
            "exam-peak",
            "--sessions",
            "40",
            "--duration",
            "20",
            "--time-scale",
            "20",
            "--target",
            targets,
            "--users",
            &s.p("users.csv"),
            "--config",
            &cfg,
            "--out",
            out,
            "--max-wall",
            "120",
            "--quiet",
        ],
    )
}

fn list(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not a list"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Several targets: sessions go round-robin and stick to one; each target is reported; the
/// exam read-back goes through another target first and counts an upload lost only when no
/// target returns its bytes.
#[test]
fn several_targets_spread_sessions_and_read_back_through_any() {
    let a = start();
    let b = start();

    // Two separate servers: half the uploads each; the read-back through the other server
    // finds nothing (404) but the own one has it: 40 verified, none lost.
    let out = a.p("two-servers");
    let o = exam_over(&a, &format!("{},{}", a.url(), b.url()), &out);
    assert!(
        o.status.success(),
        "exam-peak over two servers: {}",
        text(&o)
    );
    let r = result(&out);
    let e = &r["exam"];
    assert_eq!(list(&e["started_by_target"]), [20.0, 20.0], "{}", text(&o));
    assert_eq!(list(&e["acknowledged_by_target"]), [20.0, 20.0]);
    assert_eq!(n(e, &["verified"]), 40.0);
    assert_eq!(
        n(e, &["lost"]) + n(e, &["corrupted"]) + n(e, &["verify_errors"]),
        0.0
    );
    assert_eq!(n(e, &["verified_elsewhere"]), 0.0);
    assert_eq!(n(e, &["verify_targets"]), 2.0);
    let ts = r["targets"].as_array().unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0]["url"], a.url());
    assert_eq!(ts[1]["url"], b.url());
    for t in ts {
        // 20 uploads and 20 good read-backs, 20 read-backs of the other server's files (404).
        assert_eq!(n(t, &["ok"]), 40.0, "{}", text(&o));
        assert_eq!(n(t, &["status_4xx"]), 20.0, "{}", text(&o));
        assert!(n(t, &["latency_us", "p50"]) > 0.0);
    }
    assert_eq!(r["target"], format!("{},{}", a.url(), b.url()));
    assert!(text(&o).contains("exam per target: started 20/20 acknowledged 20/20"));
    let html = std::fs::read_to_string(Path::new(&out).join("report.html")).unwrap();
    assert!(html.contains("<h2>Targets</h2>") && html.contains(&format!("<td>{}</td>", b.url())));

    // One server under two names (127.0.0.1 and localhost): every upload is read back
    // byte-exact through the target that did not acknowledge it.
    let out = a.p("two-names");
    let other = format!("http://localhost:{}", a.port);
    let o = exam_over(&a, &format!("{} , {other}", a.url()), &out);
    assert!(o.status.success(), "exam-peak over two names: {}", text(&o));
    let e = &result(&out)["exam"];
    assert_eq!(n(e, &["verified"]), 40.0, "{}", text(&o));
    assert_eq!(n(e, &["verified_elsewhere"]), 40.0, "{}", text(&o));

    // A dead target (nothing listens): its sessions fail to connect and are not acknowledged;
    // the live target's uploads are read back (after the dead one failed), none lost.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let out = a.p("dead-target");
    let o = run(
        Path::new(loadtest()),
        &[
            "run",
            "exam-peak",
            "--sessions",
            "40",
            "--duration",
            "20",
            "--time-scale",
            "20",
            "--target",
            &a.url(),
            "--target",
            &dead_url,
            "--users",
            &a.p("users.csv"),
            "--config",
            &a.p("jwt.toml"),
            "--out",
            &out,
            "--max-wall",
            "120",
            "--quiet",
            "--threshold",
            "lost=0",
        ],
    );
    assert!(
        o.status.success(),
        "exam-peak with a dead target: {}",
        text(&o)
    );
    let r = result(&out);
    let e = &r["exam"];
    assert_eq!(
        list(&e["acknowledged_by_target"]),
        [20.0, 0.0],
        "{}",
        text(&o)
    );
    assert_eq!(list(&e["failed_by_target"]), [0.0, 20.0]);
    assert_eq!(n(e, &["verified"]), 20.0);
    assert_eq!(n(e, &["lost"]), 0.0);
    let dead_t = &r["targets"][1];
    assert_eq!(n(dead_t, &["requests"]), n(dead_t, &["failures"]));
    assert!(
        n(dead_t, &["failures"]) >= 40.0,
        "20 uploads and 20 read-backs failed"
    );
    // The same run with errors=0 fails: the dead target's uploads were errors.
    let o = run(
        Path::new(loadtest()),
        &[
            "run",
            "exam-peak",
            "--sessions",
            "10",
            "--duration",
            "10",
            "--time-scale",
            "20",
            "--target",
            &format!("{dead_url},{}", a.url()),
            "--users",
            &a.p("users.csv"),
            "--config",
            &a.p("jwt.toml"),
            "--max-wall",
            "120",
            "--quiet",
            "--threshold",
            "errors=0",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

/// A node of a cluster in `forward = "redirect"` mode, reduced to that: answers every request
/// with `307` to the same path on `to` (keep-alive, bodies read and dropped). Returns its port.
fn redirector(to: u16) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    let answer = format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{to}{path}\r\n\
                         Content-Length: 0\r\n\r\n"
                    );
                    if c.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// `--follow-redirects`: every upload and read-back through a redirecting node reaches the
/// server it names (same method and body); without it the redirect is the answer.
#[test]
fn follows_redirects_to_the_owning_node() {
    let s = start();
    let via = format!("http://127.0.0.1:{}", redirector(s.port));
    let out = s.p("redirected");
    let cfg = s.p("jwt.toml");
    let o = exam_over(&s, &via, &out); // writes jwt.toml; no --follow-redirects
    assert_eq!(
        n(&result(&out), &["exam", "acknowledged"]),
        0.0,
        "{}",
        text(&o)
    );
    let o = run(
        Path::new(loadtest()),
        &[
            "run",
            "exam-peak",
            "--sessions",
            "40",
            "--duration",
            "20",
            "--time-scale",
            "20",
            "--target",
            &via,
            "--users",
            &s.p("users.csv"),
            "--config",
            &cfg,
            "--out",
            &out,
            "--max-wall",
            "120",
            "--quiet",
            "--follow-redirects",
            "--threshold",
            "errors=0",
        ],
    );
    assert!(
        o.status.success(),
        "exam-peak through a redirect: {}",
        text(&o)
    );
    let r = result(&out);
    assert_eq!(n(&r, &["exam", "acknowledged"]), 40.0, "{}", text(&o));
    assert_eq!(n(&r, &["exam", "verified"]), 40.0);
    // 40 PUTs and 40 GETs, each redirected once.
    assert_eq!(n(&r["targets"][0], &["redirects"]), 80.0, "{}", text(&o));
}

#[test]
fn refuses_a_remote_target_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("u.csv");
    std::fs::write(&users, "user,tenant,password\na,b,c\n").unwrap();
    let o = run(
        Path::new(loadtest()),
        &[
            "run",
            "school-day",
            "--target",
            "http://192.0.2.1:80",
            "--users",
            users.to_str().unwrap(),
            "--duration",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not a loopback"), "{}", text(&o));
}

/// Renders the report in headless chromium: a screenshot that is not blank, and the marker
/// the page's script sets only after its charts laid out.
fn browser_check(report: &Path, tmp: &Path) {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new("sh")
                .args(["-c", &format!("command -v {c}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .expect("chromium is needed to check report.html (apt-get install -y chromium)");
    let url = format!("file://{}", report.display());
    let shot = tmp.join("shot.png");
    let common = |profile: &str| {
        vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", tmp.join(profile).display()),
        ]
    };
    let mut a = common("prof1");
    a.push(format!("--screenshot={}", shot.display()));
    a.push("--window-size=1200,2000".into());
    a.push(url.clone());
    let o = Command::new(chromium)
        .args(&a)
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "chromium screenshot: {}", text(&o));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank 1200x2000 page compresses to a few KB; charts and tables do not.
    assert!(png.len() > 30_000, "screenshot only {} bytes", png.len());
    let mut a = common("prof2");
    a.push("--dump-dom".into());
    a.push(url);
    let o = Command::new(chromium)
        .args(&a)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        dom.contains("id=\"report-ready\"") && dom.contains("skab-loadtest report: ready"),
        "charts did not render: {}",
        &dom[..dom.len().min(2000)]
    );
}
