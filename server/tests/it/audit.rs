//! The audit log through the real `skab` binary: administration commands are recorded in their
//! tenant's log (never a password), `skab audit export` gives JSON lines filtered by time, and
//! `skab audit verify` passes an intact log but fails on a flipped byte, a removed record and a
//! cut-off tail, each found in its own copy of the log.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    skab(args, stdin)
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out) = run(args, stdin);
    assert!(ok, "skab {args:?}: {out}");
    out
}

fn segment(data: &Path, tenant: &str) -> PathBuf {
    let dir = data.join("audit").join(tenant);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs.pop().expect("an audit segment")
}

fn kinds(export: &str) -> Vec<String> {
    export
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["kind"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn admin_commands_are_recorded_exported_and_tampering_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let secret_pw = "very secret password 123";
    ok(
        &[
            "user",
            "add",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "anna",
            "--password-stdin",
        ],
        Some(&format!("{secret_pw}\n")),
    );
    ok(
        &[
            "user",
            "add",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "bo",
            "--password-stdin",
        ],
        Some("another password\n"),
    );
    let token = ok(
        &[
            "token",
            "create",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "anna",
            "--label",
            "phone",
        ],
        None,
    );
    let id = token
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    ok(
        &[
            "token",
            "revoke",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "anna",
            "--id",
            &id,
        ],
        None,
    );
    ok(
        &[
            "group",
            "add",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--group",
            "9a",
            "--members",
            "anna,bo",
        ],
        None,
    );
    ok(
        &[
            "handin",
            "add",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--handin",
            "exam",
            "--owner",
            "anna",
            "--group",
            "9a",
            "--closes",
            "2030-06-12T12:00:00+02:00",
        ],
        None,
    );
    ok(
        &[
            "quota",
            "set",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "bo",
            "--bytes",
            "1000",
        ],
        None,
    );
    ok(
        &[
            "user",
            "disable",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--user",
            "bo",
        ],
        None,
    );
    // A failed command leaves no record.
    assert!(
        !run(
            &[
                "user",
                "disable",
                "--data-dir",
                d,
                "--tenant",
                "skole",
                "--user",
                "nobody"
            ],
            None
        )
        .0
    );

    let export = ok(
        &["audit", "export", "--data-dir", d, "--tenant", "skole"],
        None,
    );
    assert_eq!(
        kinds(&export),
        [
            "admin.user.add",
            "admin.user.add",
            "token.create",
            "token.revoke",
            "admin.group.add",
            "admin.handin.add",
            "admin.quota.set",
            "admin.user.disable"
        ]
    );
    let first: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["target"], "anna");
    assert!(first["actor"].as_str().unwrap().starts_with("admin:"));
    assert_eq!(first["seq"], 1);
    let all = std::fs::read_to_string(segment(&data, "skole")).unwrap();
    assert!(
        !all.contains(secret_pw)
            && !token
                .lines()
                .any(|l| l.starts_with("token: ") && all.contains(&l[7..])),
        "a secret reached the audit log"
    );
    // Time filters.
    let none = ok(
        &[
            "audit",
            "export",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
        None,
    );
    assert!(none.is_empty(), "{none}");
    let before = ok(
        &[
            "audit",
            "export",
            "--data-dir",
            d,
            "--tenant",
            "skole",
            "--until",
            "2999-01-01T00:00:00Z",
        ],
        None,
    );
    assert_eq!(before, export);
    assert!(
        !run(
            &[
                "audit",
                "export",
                "--data-dir",
                d,
                "--tenant",
                "skole",
                "--since",
                "yesterday"
            ],
            None
        )
        .0
    );

    let verified = ok(&["audit", "verify", "--data-dir", d], None);
    assert!(
        verified.contains("skole: 8 records") && verified.contains("chain intact"),
        "{verified}"
    );

    // Each kind of tampering, on a fresh copy of the data dir.
    let seg_rel = segment(&data, "skole")
        .strip_prefix(&data)
        .unwrap()
        .to_path_buf();
    let tamper = |name: &str, edit: &dyn Fn(&str) -> String, expect: &str| {
        let copy = tmp.path().join(name);
        copy_dir(&data, &copy);
        let path = copy.join(&seg_rel);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&text)).unwrap();
        let (good, out) = run(
            &["audit", "verify", "--data-dir", copy.to_str().unwrap()],
            None,
        );
        assert!(!good, "{name}: verify passed: {out}");
        assert!(out.contains(expect), "{name}: {out}");
    };
    tamper("flipped", &|t| t.replacen("\"bo\"", "\"bx\"", 1), "altered");
    tamper(
        "removed",
        &|t| {
            let lines: Vec<&str> = t.lines().collect();
            format!("{}\n{}\n", lines[..3].join("\n"), lines[4..].join("\n"))
        },
        "records removed",
    );
    tamper(
        "truncated",
        &|t| {
            let lines: Vec<&str> = t.lines().collect();
            format!("{}\n", lines[..lines.len() - 1].join("\n"))
        },
        "tail cut off",
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Logins through a real server: a password login, its session's further requests (one
/// record, not one per request), a wrong password (with the source address, never the
/// password), an app token; the chain verifies while the server keeps appending.
#[test]
fn logins_are_recorded_once_per_session_and_failures_always() {
    let s = Server::start();
    let d = s.data_dir();
    let d = d.to_str().unwrap();
    let c = s.client();
    for i in 0..20 {
        assert_eq!(c.put(&dav(&format!("f{i}")), b"x").status, 201);
    }
    let wrong = s.client_as(&format!("{USER}@{TENANT}"), "wrong password 42");
    assert_eq!(wrong.get(&dav("f1")).status, 401);
    let token = ok(
        &[
            "token",
            "create",
            "--data-dir",
            d,
            "--tenant",
            TENANT,
            "--user",
            USER,
            "--label",
            "sync",
        ],
        None,
    );
    let secret = token
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_string();
    let t = s.client_as(&format!("{USER}@{TENANT}"), &secret);
    assert_eq!(t.get(&dav("f1")).status, 200);
    assert_eq!(t.get(&dav("f2")).status, 200);
    // The writer appends every 50 ms.
    let mut logins = Vec::new();
    for _ in 0..100 {
        let export = ok(
            &["audit", "export", "--data-dir", d, "--tenant", TENANT],
            None,
        );
        logins = export
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"].as_str().unwrap().starts_with("login."))
            .collect::<Vec<_>>();
        if logins.len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let summary: Vec<(String, String)> = logins
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("login.ok".to_string(), "password".to_string()),
            (
                "login.failed".to_string(),
                "basic: invalid credentials".to_string()
            ),
            ("login.ok".to_string(), "app token".to_string()),
        ],
        "{logins:?}"
    );
    for v in &logins {
        assert_eq!(v["source"], "127.0.0.1");
        assert_eq!(v["actor"], format!("{USER}@{TENANT}"));
    }
    let raw = std::fs::read_to_string(segment(&s.data_dir(), TENANT)).unwrap();
    assert!(!raw.contains("wrong password 42") && !raw.contains(&secret));
    let verified = ok(
        &["audit", "verify", "--data-dir", d, "--tenant", TENANT],
        None,
    );
    assert!(verified.contains("chain intact"), "{verified}");
}
