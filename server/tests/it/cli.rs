//! Runs the built `skab` binary against data dirs in temp directories.

use skab_server::users::password;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn skab(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skab"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SKAB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        // A command may fail and exit before reading its input: a broken pipe is its answer.
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn users_of(dir: &Path, tenant: &str) -> Vec<String> {
    let out = ok(&skab(dir, &["user", "list", "--tenant", tenant], None));
    out.lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// `skab token create` for `who` (the --tenant/--user arguments): the token's id and secret.
fn create_token(dir: &Path, who: &[&str], label: &str) -> (String, String) {
    let out = ok(&skab(
        dir,
        &[&["token", "create"][..], who, &["--label", label]].concat(),
        None,
    ));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in {out}"))
            .to_string()
    };
    (field("id: "), field("token: "))
}

fn cheap(pw: &str) -> String {
    password::hash_with(pw, 64, 1, 1).unwrap()
}

#[test]
fn user_lifecycle_via_stdin() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let who = ["--tenant", "skole", "--user", "anna"];
    let add = [&["user", "add"][..], &who, &["--password-stdin"]].concat();
    ok(&skab(dir, &add, Some("hemmelig\n")));
    assert_eq!(users_of(dir, "skole"), ["anna"]);
    // The stored hash verifies the password that came in on stdin (newline stripped).
    let db = skab_server::users::UserDb::open(dir).unwrap();
    let t = skab_server::users::TenantName::new("skole").unwrap();
    let u = skab_server::users::UserName::new("anna").unwrap();
    let c = db.credentials(&t, &u).unwrap();
    assert!(password::verify_password(&c.phc, "hemmelig").unwrap());
    // Adding again fails; a bad name fails; an empty password fails.
    assert!(!skab(dir, &add, Some("x\n")).status.success());
    let bad = skab(
        dir,
        &[
            "user",
            "add",
            "--tenant",
            "skole",
            "--user",
            "Bad Name",
            "--password-stdin",
        ],
        Some("x\n"),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid user name"));
    let empty = skab(
        dir,
        &[
            "user",
            "add",
            "--tenant",
            "skole",
            "--user",
            "bo",
            "--password-stdin",
        ],
        Some("\n"),
    );
    assert!(!empty.status.success());
    // --password-stdin is required.
    assert!(!skab(
        dir,
        &["user", "add", "--tenant", "skole", "--user", "bo"],
        None
    )
    .status
    .success());
    let passwd = [&["user", "passwd"][..], &who, &["--password-stdin"]].concat();
    ok(&skab(dir, &passwd, Some("nyt-kodeord\r\n")));
    db.refresh().unwrap();
    let c2 = db.credentials(&t, &u).unwrap();
    assert!(password::verify_password(&c2.phc, "nyt-kodeord").unwrap());
    ok(&skab(dir, &[&["user", "disable"][..], &who].concat(), None));
    let list = ok(&skab(dir, &["user", "list", "--tenant", "skole"], None));
    assert!(list.contains("anna\tdisabled"), "{list}");
    ok(&skab(dir, &[&["user", "enable"][..], &who].concat(), None));
    ok(&skab(dir, &[&["user", "del"][..], &who].concat(), None));
    assert!(users_of(dir, "skole").is_empty());
    assert!(!skab(dir, &[&["user", "del"][..], &who].concat(), None)
        .status
        .success());
}

#[test]
fn tenants_and_tokens() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(&skab(dir, &["tenant", "add", "--tenant", "b-skole"], None));
    assert!(!skab(dir, &["tenant", "add", "--tenant", "b-skole"], None)
        .status
        .success());
    ok(&skab(
        dir,
        &[
            "user",
            "add",
            "--tenant",
            "a-skole",
            "--user",
            "bo",
            "--password-stdin",
        ],
        Some("pw"),
    ));
    let list = ok(&skab(dir, &["tenant", "list"], None));
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["a-skole", "b-skole"]);
    let who = ["--tenant", "a-skole", "--user", "bo"];
    let (id, secret) = create_token(dir, &who, "iPad");
    assert!(secret.starts_with("skab_at_"));
    let list = ok(&skab(dir, &[&["token", "list"][..], &who].concat(), None));
    assert!(
        list.contains(&id) && list.contains("iPad") && list.contains("never"),
        "{list}"
    );
    assert!(!list.contains(&secret), "the secret is never shown again");
    // The token is not stored in clear anywhere in the data dir.
    for entry in std::fs::read_dir(dir.join("users")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    ok(&skab(
        dir,
        &[&["token", "revoke"][..], &who, &["--id", &id]].concat(),
        None,
    ));
    let list = ok(&skab(dir, &[&["token", "list"][..], &who].concat(), None));
    assert!(!list.contains(&id));
    assert!(!skab(
        dir,
        &[&["token", "revoke"][..], &who, &["--id", &id]].concat(),
        None
    )
    .status
    .success());
}

fn members_of(dir: &Path, group: &str) -> Vec<String> {
    let out = ok(&skab(
        dir,
        &["group", "members", "--tenant", "skole", "--group", group],
        None,
    ));
    out.lines().map(str::to_string).collect()
}

#[test]
fn groups_are_made_changed_listed_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let h = cheap("pw");
    let csv = dir.join("u.csv");
    std::fs::write(
        &csv,
        format!(
            "user,tenant,groups,password\nanna,skole,9a;y9,{h}\nbo,skole,9a,{h}\ncarl,skole,,{h}\n"
        ),
    )
    .unwrap();
    ok(&skab(
        dir,
        &["user", "import", "--csv", csv.to_str().unwrap()],
        None,
    ));
    assert_eq!(members_of(dir, "9a"), ["anna", "bo"]);
    assert_eq!(members_of(dir, "y9"), ["anna"]);
    let add = ["group", "add", "--tenant", "skole", "--group", "teachers"];
    ok(&skab(
        dir,
        &[&add[..], &["--members", "carl,anna"]].concat(),
        None,
    ));
    let again = skab(dir, &[&add[..], &["--members", "carl"]].concat(), None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("group exists"));
    let unknown = skab(
        dir,
        &[
            &add[..2],
            &["--tenant", "skole", "--group", "x", "--members", "nobody"],
        ]
        .concat(),
        None,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"));
    let change = ["group", "members", "--tenant", "skole", "--group", "9a"];
    ok(&skab(
        dir,
        &[&change[..], &["--add", "carl", "--remove", "anna"]].concat(),
        None,
    ));
    assert_eq!(members_of(dir, "9a"), ["bo", "carl"]);
    let list = ok(&skab(dir, &["group", "list", "--tenant", "skole"], None));
    let rows: Vec<(&str, &str)> = list
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(rows, [("9a", "2"), ("teachers", "2"), ("y9", "1")]);
    // A deleted user leaves their groups; a deleted group is gone.
    ok(&skab(
        dir,
        &["user", "del", "--tenant", "skole", "--user", "carl"],
        None,
    ));
    assert_eq!(members_of(dir, "9a"), ["bo"]);
    assert_eq!(members_of(dir, "teachers"), ["anna"]);
    ok(&skab(
        dir,
        &["group", "del", "--tenant", "skole", "--group", "teachers"],
        None,
    ));
    assert!(!skab(
        dir,
        &["group", "members", "--tenant", "skole", "--group", "teachers"],
        None
    )
    .status
    .success());
    // Deleting the tenant removes it, its users and its groups from every listing.
    ok(&skab(dir, &["tenant", "del", "--tenant", "skole"], None));
    let tenants = ok(&skab(dir, &["tenant", "list"], None));
    assert_eq!(tenants.lines().count(), 1, "{tenants}");
    assert!(!skab(dir, &["group", "list", "--tenant", "skole"], None)
        .status
        .success());
}

#[test]
fn compact_rewrites_the_user_log_and_keeps_accounts_and_tokens() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for user in ["anna", "bo", "cy"] {
        let who = ["--tenant", "skole", "--user", user];
        ok(&skab(
            dir,
            &[&["user", "add"][..], &who, &["--password-stdin"]].concat(),
            Some("pw"),
        ));
    }
    let who = ["--tenant", "skole", "--user", "bo"];
    ok(&skab(dir, &[&["user", "del"][..], &who].concat(), None));
    let anna = ["--tenant", "skole", "--user", "anna"];
    let (id, _) = create_token(dir, &anna, "laptop");
    let log = dir.join("users").join("users.log");
    let before = std::fs::metadata(&log).unwrap().len();
    let out = ok(&skab(dir, &["user", "compact"], None));
    assert!(out.starts_with("user log compacted: "), "{out}");
    assert!(std::fs::metadata(&log).unwrap().len() < before);
    assert!(!dir.join("users").join("users.log.compact").exists());
    assert_eq!(users_of(dir, "skole"), ["anna", "cy"]);
    let list = ok(&skab(dir, &[&["token", "list"][..], &anna].concat(), None));
    assert!(list.contains(&id) && list.contains("laptop"), "{list}");
    // The log goes on after the compaction.
    let who = ["--tenant", "skole", "--user", "dan"];
    ok(&skab(
        dir,
        &[&["user", "add"][..], &who, &["--password-stdin"]].concat(),
        Some("pw"),
    ));
    assert_eq!(users_of(dir, "skole"), ["anna", "cy", "dan"]);
}

#[test]
fn import_hashes_plaintext_and_bad_rows() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let h = cheap("x");
    let csv = dir.join("ok.csv");
    // Hashes unquoted (password last) and quoted; plaintext rows get hashed.
    let mut text = String::from("user,tenant,password\n");
    for i in 0..50 {
        text.push_str(&format!("u{i},skole-{},{h}\n", i % 3));
    }
    text.push_str(&format!("quoted,skole-0,\"{h}\"\n"));
    text.push_str("plain1,skole-0,sommer2026\nplain2,skole-1,vinter2026\n");
    std::fs::write(&csv, text).unwrap();
    let out = ok(&skab(
        dir,
        &["user", "import", "--csv", csv.to_str().unwrap()],
        None,
    ));
    assert!(
        out.contains("imported 53 users (2 passwords hashed)"),
        "{out}"
    );
    assert_eq!(users_of(dir, "skole-0").len(), 17 + 1 + 1);
    let db = skab_server::users::UserDb::open(dir).unwrap();
    let c = db
        .credentials(
            &skab_server::users::TenantName::new("skole-1").unwrap(),
            &skab_server::users::UserName::new("plain2").unwrap(),
        )
        .unwrap();
    assert!(password::verify_password(&c.phc, "vinter2026").unwrap());

    // A file with bad rows: errors with line numbers, non-zero exit, nothing written.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        format!("user,tenant,password\nnew1,skole-0,{h}\nUPPER OK?,skole-0,{h}\nnew2,skole-0,$argon2id$nope\nu0,skole-0,{h}\nnew3,,pw\n"),
    )
    .unwrap();
    let o = skab(
        dir,
        &["user", "import", "--csv", bad.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for line in [":3:", ":4:", ":5:", ":6:"] {
        assert!(err.contains(line), "missing {line} in {err}");
    }
    assert!(!err.contains(":2:"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(!users_of(dir, "skole-0").contains(&"new1".to_string()));
    // A missing column is a clear error.
    std::fs::write(&bad, "name,password\nx,y\n").unwrap();
    let o = skab(
        dir,
        &["user", "import", "--csv", bad.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no column"));
}

#[test]
fn serve_reports_a_bad_config_clearly() {
    let d = tempfile::tempdir().unwrap();
    // A bad config is reported before that.
    let cfg = d.path().join("c.toml");
    std::fs::write(&cfg, "[limits]\nbogus = 1\n").unwrap();
    let o = skab(
        d.path(),
        &["serve", "--config", cfg.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus"));
}
