//! The generator against a peer WebDAV server (`rclone serve webdav`, as
//! `scripts/loadtest-full.sh` runs it): homes under `/{tenant}/{user}/` made by the seeder
//! (`seed.mkcol_parents`), per-user htpasswd accounts, one shared account
//! (`auth.basic_shared_login`), and `seed.shared_content`. Needs rclone (scripts/test.sh
//! installs it).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn loadtest() -> &'static str {
    env!("CARGO_BIN_EXE_skab-loadtest")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(loadtest())
        .args(args)
        .output()
        .expect("run skab-loadtest")
}

struct Rclone {
    child: Child,
    port: u16,
}

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rclone serve webdav DATA` on a free loopback port with these auth flags, once it answers.
fn rclone(data: &Path, auth: &[&str]) -> Rclone {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("rclone")
        .args(["serve", "webdav"])
        .arg(data)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "ERROR",
        ])
        .args(auth)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rclone is needed (apt-get install -y rclone)");
    let r = Rclone { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rclone did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

fn result(dir: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(dir.join("result.json")).expect("result.json");
    serde_json::from_str(&t).expect("JSON")
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut c = v;
    for k in path {
        c = &c[k];
    }
    c.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number"))
}

/// Base64 of SHA-1, for htpasswd `{SHA}` entries (what the script writes with openssl).
fn sha1_b64(s: &str) -> String {
    let o = Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$1\" | openssl dgst -binary -sha1 | base64",
            "sh",
            s,
        ])
        .output()
        .expect("openssl");
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The peer config of `scripts/loadtest-full.sh`, with extra `[auth]` keys.
fn peer_toml(extra_auth: &str) -> String {
    format!(
        "[target]\nhome = \"/{{tenant}}/{{user}}/\"\n\
         [auth]\njwt_share = 0.0\ntoken_share = 0.0\nbasic_share = 1.0\n{extra_auth}\
         [seed]\nfile_size_bytes = 4096\nshared_content = true\nmkcol_parents = true\n\
         [login_storm]\nsession_s = 60\npoll_every_s = 20\n\
         [sync]\npoll_every_s = 0.5\nbound_s = 2\n"
    )
}

#[test]
fn seeds_and_storms_rclone_with_per_user_and_shared_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let o = run(&[
        "users",
        "--count",
        "30",
        "--tenant",
        "school",
        "--tenants",
        "3",
        "--out",
        p("users.csv").to_str().unwrap(),
        "--skab-import",
        p("import.csv").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "users: {}", text(&o));
    let users = std::fs::read_to_string(p("users.csv")).unwrap();
    let password = users.lines().nth(1).unwrap().split(',').nth(2).unwrap();
    let hash = sha1_b64(password);
    let htpasswd: String = users
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{}@{}:{{SHA}}{hash}\n", f[0], f[1])
        })
        .collect();
    std::fs::write(p("htpasswd"), htpasswd).unwrap();
    std::fs::write(p("peer.toml"), peer_toml("")).unwrap();
    std::fs::create_dir(p("data")).unwrap();

    // Per-user accounts: the seeder makes /school-N/ first, then the homes and their files.
    let srv = rclone(&p("data"), &["--htpasswd", p("htpasswd").to_str().unwrap()]);
    let target = format!("http://127.0.0.1:{}", srv.port);
    let common = |out: &str| {
        vec![
            "--target".to_string(),
            target.clone(),
            "--users".into(),
            p("users.csv").to_string_lossy().into_owned(),
            "--config".into(),
            p("peer.toml").to_string_lossy().into_owned(),
            "--out".into(),
            p(out).to_string_lossy().into_owned(),
            "--max-wall".into(),
            "120".into(),
            "--quiet".into(),
        ]
    };
    let mut a = vec!["seed".to_string()];
    a.extend(common("seed"));
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "seed: {}", text(&o));
    let r = result(&p("seed"));
    assert_eq!(num(&r, &["seed", "files_written"]), 60.0, "{}", text(&o));
    assert_eq!(num(&r, &["requests", "errors"]), 0.0, "{}", text(&o));
    assert_eq!(
        num(&r, &["ops", "seed.mkcol", "count"]),
        33.0,
        "3 tenants + 30 homes"
    );
    // shared_content: every user's file-0 has the same bytes.
    let a0 = std::fs::read(p("data/school-0/u000000/file-0.bin")).unwrap();
    let b0 = std::fs::read(p("data/school-1/u000001/file-0.bin")).unwrap();
    let a1 = std::fs::read(p("data/school-0/u000000/file-1.bin")).unwrap();
    assert_eq!(a0.len(), 4096);
    assert_eq!(a0, b0);
    assert_ne!(a0, a1);

    let mut a = vec!["run", "login-storm", "--sessions", "30", "--duration", "30"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    a.extend(["--time-scale", "30", "--threshold", "errors=0"].map(String::from));
    a.extend(common("storm"));
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "login-storm: {}", text(&o));
    let r = result(&p("storm"));
    assert_eq!(num(&r, &["login_storm", "logins_ok"]), 30.0);
    assert_eq!(num(&r, &["auth", "basic"]), 30.0);
    assert!(num(&r, &["ops", "get", "count"]) >= 30.0);
    // Nothing changed, and rclone gives collections no ETag: no poll can tell a change.
    assert!(num(&r, &["login_storm", "polling", "polls"]) > 0.0);
    assert_eq!(
        num(&r, &["login_storm", "polling", "polls_without_etag"]),
        num(&r, &["login_storm", "polling", "polls"])
    );

    // sync against a server whose collections carry no ETag: no client can learn of a change;
    // every change is unseen, the run fails, and the polls that missed a change say why.
    let mut a = vec!["run", "sync", "--sessions", "2", "--duration", "2"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    a.extend(common("sync"));
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(3), "sync: {}", text(&o));
    let r = result(&p("sync"));
    let y = &r["sync"];
    assert!(num(y, &["changes"]) > 0.0, "{}", text(&o));
    assert_eq!(num(y, &["changes_failed"]), 0.0, "{}", text(&o));
    assert_eq!(num(y, &["deliveries_seen"]), 0.0);
    assert_eq!(
        num(y, &["deliveries_unseen"]),
        num(y, &["deliveries_expected"])
    );
    assert_eq!(num(y, &["late_changes"]), num(y, &["changes"]));
    assert!(num(y, &["polls_missed_change"]) > 0.0);
    assert_eq!(num(y, &["polling", "polls_changed"]), 0.0);
    drop(srv);

    // One shared account: the users' own logins would be refused, the shared one is used.
    let srv = rclone(&p("data"), &["--user", "bench", "--pass", password]);
    let target = format!("http://127.0.0.1:{}", srv.port);
    let storm = |toml: &str, out: &str| {
        std::fs::write(p("shared.toml"), toml).unwrap();
        let o = run(&[
            "run",
            "login-storm",
            "--sessions",
            "10",
            "--duration",
            "10",
            "--time-scale",
            "10",
            "--target",
            &target,
            "--users",
            p("users.csv").to_str().unwrap(),
            "--config",
            p("shared.toml").to_str().unwrap(),
            "--out",
            p(out).to_str().unwrap(),
            "--threshold",
            "errors=0",
            "--quiet",
        ]);
        (o, result(&p(out)))
    };
    let shared = peer_toml(&format!(
        "basic_shared_login = \"bench\"\nbasic_shared_password = \"{password}\"\n"
    ));
    let (o, r) = storm(&shared, "shared");
    assert!(o.status.success(), "shared account: {}", text(&o));
    assert_eq!(num(&r, &["login_storm", "logins_ok"]), 10.0);
    let (o, r) = storm(&peer_toml(""), "own");
    assert_eq!(
        o.status.code(),
        Some(3),
        "own logins must fail: {}",
        text(&o)
    );
    assert_eq!(num(&r, &["errors", "by_kind", "status:401"]), 10.0);
}
