//! The real desktop sync clients against a `skab` process on loopback: Nextcloud's
//! `nextcloudcmd` and ownCloud's `owncloudcmd` (Debian packages nextcloud-desktop-cmd and
//! owncloud-client-cmd, installed by scripts/test.sh). Each syncs a tree up (nested folders,
//! non-ASCII names, an empty file, a 30 MB file that goes through chunked upload), takes a
//! change made on the server down, a change and a delete on each side, a folder of 200
//! files renamed (synced as one MOVE, no upload), and a run with nothing changed transfers
//! nothing. After each round the local tree and the server's are the same, byte for byte.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// One of the command-line sync clients.
#[derive(Clone, Copy)]
enum Client {
    Nextcloud,
    OwnCloud,
}

impl Client {
    fn command(self) -> &'static str {
        match self {
            Client::Nextcloud => "nextcloudcmd",
            Client::OwnCloud => "owncloudcmd",
        }
    }
}

/// Limit on one client run (a first sync of 30 MB against a debug build takes seconds).
const CLIENT_RUN_LIMIT: Duration = Duration::from_secs(180);

/// Runs one sync of `local` against the server; panics with the client's log when it fails.
fn sync(client: Client, s: &Server, login: &str, password: &str, local: &Path) {
    let exclude = local.parent().unwrap().join("exclude.lst");
    // The clients refuse to start without a system exclude list; this one excludes nothing
    // the tests write.
    std::fs::write(&exclude, "*~\n").unwrap();
    let out = Command::new("timeout")
        .arg(CLIENT_RUN_LIMIT.as_secs().to_string())
        .arg(client.command())
        .args(["--non-interactive", "--max-sync-retries", "1"])
        .arg("--exclude")
        .arg(&exclude)
        .args(["-u", login, "-p", password])
        .arg(local)
        .arg(format!("{}/", s.base()))
        .env("QT_QPA_PLATFORM", "offscreen")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", client.command()));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\nserver log:\n{}",
        client.command(),
        out.status,
        tail(&log),
        tail(&s.log())
    );
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(6000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[start..]
}

/// The client's own bookkeeping files in the sync folder (never uploaded).
fn is_client_file(name: &str) -> bool {
    name.starts_with(".sync_")
        || name.starts_with("._sync_")
        || name.starts_with(".owncloudsync")
        || name.starts_with(".nextcloudsync")
        || name == ".sync-exclude.lst"
}

/// Every file under `dir` (relative path with `/`) and its bytes.
fn local_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if rel.as_os_str().is_empty() && is_client_file(&name) {
                continue;
            }
            let r = rel.join(&name);
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                let key = r.to_string_lossy().to_string();
                out.insert(key, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Every file in the user's home on the server and its bytes (PROPFIND walk, then GET).
fn server_files(c: &Http) -> BTreeMap<String, Vec<u8>> {
    let root = dav("");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let r = c.propfind(&dir, "1");
        assert_eq!(r.status, 207, "PROPFIND {dir}");
        for href in r.hrefs().into_iter().skip(1) {
            if href.ends_with('/') {
                stack.push(href);
            } else {
                let got = c.get(&href);
                assert_eq!(got.status, 200, "GET {href}");
                let rel = percent_encoding::percent_decode_str(&href[root.len()..])
                    .decode_utf8()
                    .unwrap()
                    .to_string();
                out.insert(rel, got.body);
            }
        }
    }
    out
}

/// The local tree and the server's hold the same files with the same bytes.
fn assert_same(c: &Http, local: &Path, round: &str) {
    let here = local_files(local);
    let there = server_files(c);
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&here), names(&there), "{round}: different files");
    for (name, bytes) in &here {
        assert!(
            there[name] == *bytes,
            "{round}: {name} differs ({} local bytes, {} on the server)",
            bytes.len(),
            there[name].len()
        );
    }
}

/// The clients' requests so far, by method, from the server's access log (JSON lines):
/// only those on the clients' paths, so the test's own checks do not count.
fn requests(access_log: &Path) -> BTreeMap<String, u64> {
    // The log is written by a thread of its own: wait until it stops growing.
    let mut text = String::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(40));
        let now = std::fs::read_to_string(access_log).unwrap_or_default();
        if now == text && !now.is_empty() {
            break;
        }
        text = now;
    }
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON access log line");
        if !v["path"].as_str().unwrap_or("").starts_with("/remote.php/") {
            continue;
        }
        *out.entry(v["method"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

fn count(m: &BTreeMap<String, u64>, method: &str) -> u64 {
    m.get(method).copied().unwrap_or(0)
}

/// The methods that move data or change the tree.
const TRANSFERS: &[&str] = &["PUT", "GET", "MOVE", "COPY", "DELETE", "MKCOL"];

fn write(local: &Path, rel: &str, bytes: &[u8]) {
    let p = local.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn round_trip(client: Client, use_app_token: bool) {
    require_tool(client.command());
    let work = tempfile::tempdir().unwrap();
    let access_log = work.path().join("access.log");
    let s = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config(&format!(
                "[log]\naccess = {:?}\n",
                access_log.to_str().unwrap()
            )),
    );
    let login = format!("{USER}@{TENANT}");
    let password = if use_app_token {
        let (ok, out) = skab(
            &[
                "token",
                "create",
                "--data-dir",
                s.data_dir().to_str().unwrap(),
                "--tenant",
                TENANT,
                "--user",
                USER,
                "--label",
                "desktop",
            ],
            None,
        );
        assert!(ok, "{out}");
        out.lines()
            .find_map(|l| l.strip_prefix("token: "))
            .expect("token in the output")
            .to_string()
    } else {
        PASSWORD.to_string()
    };
    let c = s.client();
    let local = work.path().join("sync");
    std::fs::create_dir_all(&local).unwrap();

    // 1. A first sync up.
    write(
        &local,
        "Mapper/Dansk/æblegrød og rødgrød.txt",
        b"med fl\xc3\xb8de",
    );
    write(&local, "Mapper/Ελληνικά/π.txt", b"3.14159");
    write(&local, "日本/ファイル.txt", b"nihongo");
    write(&local, "empty.txt", b"");
    write(&local, "Skærmbillede ø.png", &pseudo_random(1, 50_000));
    write(&local, "big.bin", &pseudo_random(2, 30_000_000));
    for i in 0..200 {
        write(
            &local,
            &format!("klasse 7b/elev{i:03}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    let before = requests(&access_log);
    sync(client, &s, &login, &password, &local);
    assert_same(&c, &local, "first sync");
    let after = requests(&access_log);
    assert!(
        count(&after, "MOVE") > count(&before, "MOVE"),
        "the 30 MB file did not go through chunked upload (no MOVE of .file): {after:?}"
    );

    // 2. Nothing changed: nothing moves.
    let before = requests(&access_log);
    sync(client, &s, &login, &password, &local);
    let after = requests(&access_log);
    for m in TRANSFERS {
        assert_eq!(
            count(&after, m),
            count(&before, m),
            "a sync with nothing changed sent {m}"
        );
    }

    // 3. A change made on the server (plain WebDAV) comes down.
    assert_eq!(
        c.put(&dav("Mapper/fra%20serveren.txt"), b"ny fil").status,
        201
    );
    assert_eq!(c.put(&dav("empty.txt"), b"not empty now").status, 204);
    sync(client, &s, &login, &password, &local);
    assert_eq!(
        std::fs::read(local.join("Mapper/fra serveren.txt")).unwrap(),
        b"ny fil"
    );
    assert_same(&c, &local, "server change");

    // 4. A change and a delete on each side.
    // The clients tell changes by mtime and size: make both differ.
    std::thread::sleep(Duration::from_millis(1100));
    write(
        &local,
        "Mapper/Dansk/æblegrød og rødgrød.txt",
        b"uden fl\xc3\xb8de, tak",
    );
    std::fs::remove_file(local.join("日本/ファイル.txt")).unwrap();
    assert_eq!(
        c.put(
            &dav("Sk%C3%A6rmbillede%20%C3%B8.png"),
            &pseudo_random(3, 60_000)
        )
        .status,
        204
    );
    assert_eq!(
        c.delete(&dav(
            "Mapper/%CE%95%CE%BB%CE%BB%CE%B7%CE%BD%CE%B9%CE%BA%CE%AC/%CF%80.txt"
        ))
        .status,
        204
    );
    sync(client, &s, &login, &password, &local);
    assert!(!local.join("Mapper/Ελληνικά/π.txt").exists());
    assert_eq!(
        c.get(&dav(
            "%E6%97%A5%E6%9C%AC/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt"
        ))
        .status,
        404
    );
    assert_same(&c, &local, "changes and deletes on both sides");

    // 5. A renamed folder of 200 files is one MOVE: nothing is uploaded again.
    std::fs::rename(local.join("klasse 7b"), local.join("klasse 8b")).unwrap();
    let before = requests(&access_log);
    sync(client, &s, &login, &password, &local);
    let after = requests(&access_log);
    assert_eq!(
        count(&after, "PUT"),
        count(&before, "PUT"),
        "the rename uploaded files again"
    );
    assert!(count(&after, "MOVE") > count(&before, "MOVE"));
    assert_eq!(c.propfind(&dav("klasse%207b/"), "0").status, 404);
    assert_same(&c, &local, "folder rename");

    // 6. And once more with nothing changed.
    let before = requests(&access_log);
    sync(client, &s, &login, &password, &local);
    let after = requests(&access_log);
    for m in TRANSFERS {
        assert_eq!(count(&after, m), count(&before, m), "idle sync sent {m}");
    }
}

#[test]
fn nextcloudcmd_syncs_both_ways() {
    round_trip(Client::Nextcloud, false);
}

#[test]
fn owncloudcmd_syncs_both_ways_with_an_app_password() {
    round_trip(Client::OwnCloud, true);
}
