//! Encryption at rest through the real `skab` binary on loopback: an uploaded file's marker
//! string and its bytes appear nowhere in the data dir (file contents and file names, WAL,
//! snapshots, packs); a wrong or missing master key, or encryption switched off over
//! encrypted data, refuses to start with a clear message; `skab tenant erase` destroys the
//! key so that a copy of the data dir taken before no longer yields the tenant's files while
//! the other tenant reads on; a crash after the key was destroyed, and a crash in the middle
//! of `skab key rotate`, both recover.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{pseudo_random, skab, skab_command, Opts, Server, PASSWORD};
use skab_engine::crypt::{KeyStore, MasterKey};

const MARKER: &str = "SKAB-SECRET-MARKER-0815";

fn key_hex(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A config with encryption on, the key store in `keys`, the master key from a command.
fn config(keys: &Path, master: &str) -> String {
    format!(
        "[crypto]\nenabled = true\nkey_store = {:?}\n{master}\n",
        keys.to_str().unwrap()
    )
}

fn by_command(n: u8) -> String {
    format!("master_key_command = \"echo {}\"", key_hex(n))
}

/// Random bytes with the marker every 4000 bytes.
fn marked(seed: u64, len: usize) -> Vec<u8> {
    let mut b = pseudo_random(seed, len);
    for at in (50..len - MARKER.len()).step_by(4000) {
        b[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    b
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `skab serve` with this config must exit non-zero within a minute; returns its output.
fn refused_start(s: &Server, toml: &str) -> String {
    let cfg = s.path().join("refused.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut child = skab_command()
        .args(["serve", "--data-dir", s.data_dir().to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--config", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!st.success(), "started: {text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("skab serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Restarts `s` with this config file contents.
fn restart_with(s: &mut Server, toml: &str) {
    s.stop();
    std::fs::write(s.path().join("skab.toml"), toml).unwrap();
    s.restart();
}

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

fn two_tenants(toml: &str) -> Server {
    Server::start_opts(
        Opts::default()
            .user("school", "pupil", PASSWORD)
            .user("other", "bob", PASSWORD)
            .config(toml),
    )
}

#[test]
fn no_plaintext_at_rest_and_a_wrong_or_missing_key_refuses_to_start() {
    let keys_tmp = tempfile::tempdir().unwrap();
    let keys = keys_tmp.path().join("keys");
    let toml = config(&keys, &by_command(1));
    let mut s = two_tenants(&toml);
    let pupil = s.client_as("pupil@school", PASSWORD);
    let body = marked(1, 300_000);
    let dir = format!("/dav/school/pupil/{MARKER}-folder/");
    assert_eq!(pupil.mkcol(&dir).status, 201);
    let file = format!("{dir}{MARKER}.txt");
    assert_eq!(pupil.put(&file, &body).status, 201);
    let proppatch = format!(
        "<?xml version=\"1.0\"?><d:propertyupdate xmlns:d=\"DAV:\" xmlns:x=\"urn:x\">\
         <d:set><d:prop><x:note>{MARKER}</x:note></d:prop></d:set></d:propertyupdate>"
    );
    assert_eq!(
        pupil
            .send("PROPPATCH", &file, &[], proppatch.as_bytes())
            .status,
        207
    );
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(
        bob.put("/dav/other/bob/b.bin", &marked(2, 20_000)).status,
        201
    );
    // Some of it in snapshots (a graceful stop checkpoints), some in the WAL after them.
    restart_with(&mut s, &toml);
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(
        pupil
            .put(&format!("{dir}late-{MARKER}"), &marked(3, 9_000))
            .status,
        201
    );
    assert_eq!(pupil.get(&file).body, body);
    // A lock on the file: saved at the graceful stop (`locks.saved`, its path sealed too).
    let lock = format!(
        "<?xml version=\"1.0\"?><d:lockinfo xmlns:d=\"DAV:\"><d:lockscope><d:exclusive/>\
         </d:lockscope><d:locktype><d:write/></d:locktype><d:owner>{MARKER}</d:owner></d:lockinfo>"
    );
    let r = pupil.send("LOCK", &file, &[("Timeout", "Second-600")], lock.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop();
    assert!(s.data_dir().join("locks.saved").exists());

    let mut files = Vec::new();
    files_under(&s.data_dir(), &mut files);
    files_under(&keys, &mut files);
    assert!(files.iter().any(|f| f.to_string_lossy().contains("packs")));
    let needles: [&[u8]; 3] = [
        MARKER.as_bytes(),
        &body[10_000..10_048],
        &body[250_000..250_048],
    ];
    for f in &files {
        assert!(!f.to_string_lossy().contains(MARKER), "{}", f.display());
        let bytes = std::fs::read(f).unwrap();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n),
                "{} holds plaintext",
                f.display()
            );
        }
    }

    let out = refused_start(&s, &config(&keys, &by_command(2)));
    assert!(out.contains("is not the key of the key store"), "{out}");
    let out = refused_start(
        &s,
        &config(&keys, "master_key_env = \"SKAB_TEST_NO_SUCH_KEY_VARIABLE\""),
    );
    assert!(out.contains("is not set"), "{out}");
    let out = refused_start(&s, &config(&keys, "master_key_command = \"exit 7\""));
    assert!(out.contains("exited"), "{out}");
    let out = refused_start(&s, "");
    assert!(out.contains("encryption is off"), "{out}");
    let out = refused_start(
        &s,
        &config(&keys_tmp.path().join("elsewhere"), &by_command(1)),
    );
    assert!(out.contains("no key store"), "{out}");

    restart_with(&mut s, &toml);
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(pupil.get(&file).body, body);
    // The sealed lock came back: a write without its token is refused.
    assert_eq!(pupil.put(&file, b"x").status, 423, "{}", s.log());
    let (ok, out) = cli(&s, &["scrub"], None);
    assert!(ok && out.contains("no corruption"), "{out}");
}

#[test]
fn tenant_erase_reaches_a_copy_taken_before_and_spares_the_other_tenant() {
    let keys_tmp = tempfile::tempdir().unwrap();
    let keys = keys_tmp.path().join("keys");
    let toml = config(&keys, &by_command(1));
    let mut s = two_tenants(&toml);
    let body = marked(4, 100_000);
    let theirs = marked(5, 50_000);
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(pupil.put("/dav/school/pupil/essay.txt", &body).status, 201);
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.put("/dav/other/bob/b.bin", &theirs).status, 201);
    s.stop();
    let before = keys_tmp.path().join("before");
    copy_tree(&s.data_dir(), &before);
    s.restart();

    // Not confirmed: nothing happens.
    let (ok, out) = cli(
        &s,
        &["tenant", "erase", "--tenant", "school"],
        Some("schol\n"),
    );
    assert!(!ok && out.contains("not confirmed"), "{out}");
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(pupil.get("/dav/school/pupil/essay.txt").body, body);

    let (ok, out) = cli(
        &s,
        &["tenant", "erase", "--tenant", "school", "--yes"],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains("destroyed the key of tenant school"), "{out}");
    assert!(out.contains("dropped 1 spaces"), "{out}");
    assert!(out.contains("deleted 1 users"), "{out}");
    // 401 once the deleted user's cached credentials age out, 403 (the erased tenant's space
    // cannot be made again) until then.
    let r = pupil.get("/dav/school/pupil/essay.txt");
    assert!(matches!(r.status, 401 | 403), "{}", r.status);
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.get("/dav/other/bob/b.bin").body, theirs);
    // The tenant's own log can no longer be sealed: the erasure is in the `_system` log.
    let (ok, out) = cli(&s, &["audit", "export", "--tenant", "_system"], None);
    assert!(ok && out.contains("admin.tenant.erase"), "{out}");
    s.stop();
    let (ok, out) = cli(&s, &["tenant", "erase", "--tenant", "other"], None);
    assert!(!ok, "an unconfirmed erase from empty stdin: {out}");

    // The copy taken before, opened with today's key store: the pupil's account and files are
    // gone (both sealed with the destroyed key); the other tenant reads on.
    let copy = Server::start_opts(Opts {
        config: Some(toml.clone()),
        before_start: Some(std::sync::Arc::new(move |data: &Path| {
            copy_tree(&before, data)
        })),
        ..Opts::default()
    });
    let pupil = copy.client_as("pupil@school", PASSWORD);
    let r = pupil.get("/dav/school/pupil/essay.txt");
    assert_ne!(r.status, 200);
    assert!(!r.body.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    let bob = copy.client_as("bob@other", PASSWORD);
    assert_eq!(bob.get("/dav/other/bob/b.bin").body, theirs);
}

#[test]
fn a_crash_during_erase_or_rotation_recovers() {
    let keys_tmp = tempfile::tempdir().unwrap();
    let keys = keys_tmp.path().join("keys");
    let toml = config(&keys, &by_command(1));
    let mut s = two_tenants(&toml);
    let theirs = marked(6, 60_000);
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(
        pupil
            .put("/dav/school/pupil/a.txt", &marked(7, 60_000))
            .status,
        201
    );
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.put("/dav/other/bob/b.bin", &theirs).status, 201);
    s.stop();

    // `tenant erase` died right after destroying the key (its first, durable step).
    KeyStore::erase_at(&keys, "school").unwrap();
    s.restart();
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_ne!(pupil.get("/dav/school/pupil/a.txt").status, 200);
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.get("/dav/other/bob/b.bin").body, theirs);
    let (ok, out) = cli(
        &s,
        &["tenant", "erase", "--tenant", "school", "--yes"],
        None,
    );
    assert!(ok && out.contains("already destroyed"), "{out}");
    s.stop();

    // `key rotate` died after its first write (the check file names both keys; bob's key is
    // still wrapped by the old key only): the old key still opens everything, the new one is
    // refused with a pointer to finish the rotation, and running it again finishes it.
    let r = KeyStore::rotate(
        &keys,
        &MasterKey::parse(&key_hex(1)).unwrap(),
        &MasterKey::parse(&key_hex(2)).unwrap(),
        Some(1),
    );
    assert!(r.is_err());
    s.restart();
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.get("/dav/other/bob/b.bin").body, theirs);
    s.stop();
    let out = refused_start(&s, &config(&keys, &by_command(2)));
    assert!(out.contains("rotate"), "{out}");
    let new_key = s.path().join("new.key");
    let (ok, out) = skab(
        &["key", "generate", "--out", new_key.to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}");
    // The generated key is used below through a command that prints the file.
    let (ok, out) = cli(
        &s,
        &[
            "key",
            "rotate",
            "--new-master-from",
            &format!("file:{}", new_key.display()),
        ],
        None,
    );
    assert!(ok && out.contains("rewrapped 1 tenant keys"), "{out}");
    let out = refused_start(&s, &toml);
    assert!(out.contains("is not the key of the key store"), "{out}");
    restart_with(
        &mut s,
        &config(
            &keys,
            &format!("master_key_file = {:?}", new_key.to_str().unwrap()),
        ),
    );
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.get("/dav/other/bob/b.bin").body, theirs);
}

/// Marker of the names of the server's own per-tenant files (user, group, hand-in, space, a
/// shared folder named in the audit log); valid as any of those names.
const NAME_MARK: &str = "zq7mark";

/// Whether any file under these directories holds `needle` (contents or file name).
fn found_anywhere(dirs: &[&Path], needle: &[u8]) -> Vec<String> {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    files
        .iter()
        .filter(|f| {
            f.to_string_lossy()
                .as_bytes()
                .windows(needle.len())
                .any(|w| w == needle)
                || std::fs::read(f)
                    .unwrap_or_default()
                    .windows(needle.len())
                    .any(|w| w == needle)
        })
        .map(|f| f.display().to_string())
        .collect()
}

fn ok_cli(s: &Server, args: &[&str]) -> String {
    let (ok, out) = cli(s, args, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

#[test]
fn the_servers_own_files_are_sealed_and_an_erase_reaches_them() {
    let keys_tmp = tempfile::tempdir().unwrap();
    let keys = keys_tmp.path().join("keys");
    let toml = config(&keys, &by_command(1));
    let mut s = two_tenants(&toml);
    let user = format!("{NAME_MARK}user");
    let group = format!("{NAME_MARK}group");
    let handin = format!("{NAME_MARK}handin");
    let space = format!("{NAME_MARK}space");
    let folder = format!("{NAME_MARK}folder");
    let closes =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string();
    let add = format!("user add --tenant school --user {user} --password-stdin");
    let args: Vec<&str> = add.split(' ').collect();
    let (ok, out) = cli(&s, &args, Some(&format!("{PASSWORD}\n")));
    assert!(ok, "{out}");
    ok_cli(
        &s,
        &[
            "group",
            "add",
            "--tenant",
            "school",
            "--group",
            &group,
            "--members",
            &user,
        ],
    );
    ok_cli(
        &s,
        &[
            "handin", "add", "--tenant", "school", "--handin", &handin, "--owner", "pupil",
            "--group", &group, "--closes", &closes,
        ],
    );
    ok_cli(
        &s,
        &[
            "space",
            "add",
            "--tenant",
            "school",
            "--space",
            &space,
            "--owner",
            "pupil",
            "--share",
            &format!("group:{group}=read"),
        ],
    );
    let pupil = s.client_as("pupil@school", PASSWORD);
    assert_eq!(
        pupil.mkcol(&format!("/dav/school/pupil/{folder}/")).status,
        201
    );
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.put("/dav/other/bob/b.bin", b"theirs").status, 201);
    ok_cli(
        &s,
        &[
            "share",
            "add",
            "--tenant",
            "school",
            "--owner",
            "pupil",
            "--path",
            &folder,
            "--with",
            &format!("user:{user}"),
        ],
    );
    // A hand-in upload: a receipt in the hand-in's receipt log (the server rereads the
    // groups at most once a second).
    let member = s.client_as(&format!("{user}@school"), PASSWORD);
    let url = format!("/dav/school/handin/{handin}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while member.propfind(&url, "0").status != 207 {
        assert!(Instant::now() < deadline, "never let into the hand-in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = member.put(&format!("{url}essay.txt"), b"my essay");
    assert_eq!(r.status, 201, "{}", r.text());
    let receipt = r.header("skab-receipt").unwrap().to_string();
    // An app token (its label in the user database).
    let tok = ok_cli(
        &s,
        &[
            "token",
            "create",
            "--tenant",
            "school",
            "--user",
            &user,
            "--label",
            &format!("{NAME_MARK}phone"),
        ],
    );
    assert!(!tok.is_empty());

    // Everything works across a restart, read through the sealed files.
    restart_with(&mut s, &toml);
    let member = s.client_as(&format!("{user}@school"), PASSWORD);
    assert_eq!(member.get(&format!("{url}essay.txt")).body, b"my essay");
    assert!(ok_cli(&s, &["handin", "list", "--tenant", "school"]).contains(&handin));
    assert!(ok_cli(&s, &["space", "list", "--tenant", "school"]).contains(&space));
    assert!(ok_cli(&s, &["share", "list", "--tenant", "school"]).contains(&folder));
    assert!(ok_cli(&s, &["group", "list", "--tenant", "school"]).contains(&group));
    let (ok, out) = cli(&s, &["receipt", "verify", &receipt], None);
    assert!(ok, "{out}");
    let audit = ok_cli(&s, &["audit", "export", "--tenant", "school"]);
    assert!(
        audit.contains(&format!("pupil:/{folder}")) && audit.contains("admin.handin.add"),
        "{audit}"
    );
    let verify = ok_cli(&s, &["audit", "verify"]);
    assert!(
        verify.contains("school: ") && !verify.contains("DAMAGED"),
        "{verify}"
    );
    s.stop();

    let data = s.data_dir();
    let hits = found_anywhere(&[&data, &keys], NAME_MARK.as_bytes());
    assert!(hits.is_empty(), "plaintext names in {hits:?}");
    // Password hashes and the pupil's user name are sealed too; tenant names stay visible.
    assert!(found_anywhere(&[&data], b"$argon2id$").is_empty());
    assert!(!found_anywhere(&[&data.join("users")], b"school").is_empty());

    // Without the key the audit chain is still checked, its contents are not.
    let (ok, out) = skab(
        &[
            "audit",
            "verify",
            "--tenant",
            "school",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok && out.contains("chain only"), "{out}");
    let (ok, out) = skab(
        &[
            "user",
            "list",
            "--tenant",
            "school",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && out.contains("crypto.enabled is off"), "{out}");

    let before = keys_tmp.path().join("before");
    copy_tree(&data, &before);
    s.restart();
    let (ok, out) = cli(
        &s,
        &["tenant", "erase", "--tenant", "school", "--yes"],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains("deleted 2 users"), "{out}");
    let bob = s.client_as("bob@other", PASSWORD);
    assert_eq!(bob.put("/dav/other/bob/after.txt", b"on").status, 201);
    assert!(!ok_cli(&s, &["handin", "list", "--tenant", "school"]).contains(&handin));
    let system = ok_cli(&s, &["audit", "export", "--tenant", "_system"]);
    assert!(
        system.contains("admin.tenant.erase") && system.contains("tenant school"),
        "{system}"
    );
    let verify = ok_cli(&s, &["audit", "verify"]);
    assert!(!verify.contains("DAMAGED"), "{verify}");
    s.stop();

    // The copy taken before the erase, with today's key store: nothing of the tenant's
    // accounts, hand-ins, spaces, shares, receipts or audit records can be read.
    let copy = Server::start_opts(Opts {
        config: Some(toml.clone()),
        before_start: Some(std::sync::Arc::new(move |data: &Path| {
            copy_tree(&before, data)
        })),
        ..Opts::default()
    });
    assert_eq!(
        copy.client_as(&format!("{user}@school"), PASSWORD)
            .get("/dav/school/pupil/")
            .status,
        401
    );
    assert_eq!(
        copy.client_as("pupil@school", PASSWORD)
            .get("/dav/school/pupil/")
            .status,
        401
    );
    for (what, args) in [
        ("hand-ins", vec!["handin", "list", "--tenant", "school"]),
        ("spaces", vec!["space", "list", "--tenant", "school"]),
        ("shares", vec!["share", "list", "--tenant", "school"]),
        ("audit", vec!["audit", "export", "--tenant", "school"]),
    ] {
        let (_, out) = cli(&copy, &args, None);
        assert!(!out.contains(NAME_MARK), "{what}: {out}");
    }
    let (ok, out) = cli(&copy, &["receipt", "verify", &receipt], None);
    assert!(!ok, "the receipt key is gone with the tenant's key: {out}");
    assert_eq!(
        copy.client_as("bob@other", PASSWORD)
            .get("/dav/other/bob/b.bin")
            .body,
        b"theirs"
    );
}
