//! Production edge (issue 19): documented settings take effect, logs in files are plain text,
//! and the account lifecycle (demo account, user and tenant deletion, default quota) holds
//! against the real `skab` binary, its data dir and restarts.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use skab_server::config::{CliOverrides, Config, JwtIssuerConfig};

const XML: (&str, &str) = ("Content-Type", "application/xml");

fn propfind_body(props: usize) -> String {
    let names: String = (0..props).map(|i| format!("<D:p{i}/>")).collect();
    format!("<D:propfind xmlns:D=\"DAV:\"><D:prop>{names}</D:prop></D:propfind>")
}

/// A PROPPATCH setting one dead property whose value nests `extra` elements; the whole body
/// nests `4 + extra` levels.
fn proppatch_body(extra: usize) -> String {
    format!(
        "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><x:p xmlns:x=\"urn:x\">{}v{}</x:p>\
         </D:prop></D:set></D:propertyupdate>",
        "<a>".repeat(extra),
        "</a>".repeat(extra)
    )
}

#[test]
fn configured_request_limits_are_enforced_by_the_server() {
    let strict = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config("[limits]\nxml_depth_max = 5\nprops_per_request_max = 2\npath_len_max = 20\n"),
    );
    let default = Server::start();
    // 20 and 21 bytes.
    let ok_name = "p".repeat(20);
    let long_name = "q".repeat(21);
    for (server, is_strict) in [(&strict, true), (&default, false)] {
        let c = server.client();
        let over = |strict_status: u16, default_status: u16| {
            if is_strict {
                strict_status
            } else {
                default_status
            }
        };
        assert_eq!(c.put(&dav("a.txt"), b"x").status, 201);
        let pf = |n| {
            c.send(
                "PROPFIND",
                &dav("a.txt"),
                &[("Depth", "0"), XML],
                propfind_body(n).as_bytes(),
            )
        };
        assert_eq!(pf(2).status, 207);
        assert_eq!(pf(3).status, over(400, 207), "3 props, strict {is_strict}");
        let pp = |extra| {
            c.send(
                "PROPPATCH",
                &dav("a.txt"),
                &[XML],
                proppatch_body(extra).as_bytes(),
            )
        };
        assert_eq!(pp(1).status, 207, "5 levels");
        assert_eq!(pp(2).status, over(400, 207), "6 levels, strict {is_strict}");
        assert_eq!(c.put(&dav(&ok_name), b"x").status, 201);
        assert_eq!(c.put(&dav(&long_name), b"x").status, over(414, 201));
        let dest = dav(&format!("r{long_name}"));
        let mv = c.send("MOVE", &dav(&ok_name), &[("Destination", &dest)], b"");
        assert_eq!(
            mv.status,
            over(414, 201),
            "MOVE to a long path, strict {is_strict}"
        );
    }
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_a_file() {
    let mut s = Server::start();
    assert_eq!(s.anonymous().get(&dav("")).status, 401);
    let log = s.stop();
    assert!(
        log.contains("store recovered"),
        "no log lines to look at:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{log:?}"
    );
}

// ---------------------------------------------------------------- documented settings

/// `(key, env)` of every row of the settings tables in docs/configuration.md; env is None
/// for "file only".
fn documented_keys() -> Vec<(String, Option<String>)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    let mut out = Vec::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split(" | ").collect();
        let key = cells[0].trim_end_matches('`').to_string();
        let env = cells
            .get(1)
            .and_then(|e| e.strip_prefix('`'))
            .map(|e| e.trim_end_matches('`').to_string());
        out.push((key, env));
    }
    out
}

/// A `[storage.object]` table with `key` set to a non-default value, and that value.
fn object_table(key: &str) -> (String, toml::Value) {
    use toml::Value as V;
    let want = match key {
        "endpoints" => V::Array(vec![V::String("http://127.0.0.1:9".into())]),
        "secret_key_file" => V::String("/etc/skab/s3-secret".into()),
        "prefix" => V::String("school/".into()),
        other => V::String(format!("x-{other}")),
    };
    let mut t = toml::Table::new();
    t.insert(
        "endpoints".into(),
        V::Array(vec![V::String("http://a:1".into())]),
    );
    t.insert("bucket".into(), V::String("b".into()));
    t.insert("access_key".into(), V::String("k".into()));
    t.insert(key.into(), want.clone());
    let mut storage = toml::Table::new();
    storage.insert("object".into(), V::Table(t));
    let mut top = toml::Table::new();
    top.insert("storage".into(), V::Table(storage));
    (toml::to_string(&top).unwrap(), want)
}

/// A node's `[storage.object]` and `[cluster]` with `key` (a `cluster.` key) set to a
/// non-default value, and that value.
fn cluster_table(key: &str) -> (String, toml::Value) {
    use toml::Value as V;
    let want = match key {
        "node_id" => V::String("node-7".into()),
        "advertise_url" => V::String("http://10.0.0.5:8080".into()),
        "etcd" => V::Array(vec![V::String("http://10.0.0.9:2379".into())]),
        "cells" => V::Integer(24),
        "lease_ttl_s" => V::Integer(5),
        "secret" => V::String("b".repeat(64)),
        "secret_file" => V::String("/etc/skab/cluster-secret".into()),
        "forward" => V::String("redirect".into()),
        "name" => V::String("north".into()),
        other => panic!("cluster.{other}: add a non-default value for this setting to the test"),
    };
    let (object, _) = object_table("region");
    let mut t = toml::Table::new();
    t.insert("node_id".into(), V::String("n1".into()));
    t.insert(
        "advertise_url".into(),
        V::String("http://127.0.0.1:1".into()),
    );
    t.insert(
        "etcd".into(),
        V::Array(vec![V::String("http://a:2".into())]),
    );
    t.insert("secret".into(), V::String("a".repeat(64)));
    t.insert(key.into(), want.clone());
    let mut top: toml::Table = toml::from_str(&object).unwrap();
    top.insert("cluster".into(), V::Table(t));
    (toml::to_string(&top).unwrap(), want)
}

fn lookup<'a>(v: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(v, |v, k| v.get(k))
}

/// A valid value other than the default for `key`, as TOML.
fn other_value(key: &str, default: Option<&toml::Value>) -> toml::Value {
    use toml::Value as V;
    let text = |s: &str| V::String(s.to_string());
    match (key, default) {
        // 0 to 19, default 19.
        ("auth.hash_nice", _) => V::Integer(10),
        (_, Some(V::Integer(i))) => V::Integer(i + 1),
        (_, Some(V::Boolean(b))) => V::Boolean(!b),
        ("data_dir", _) => text("/elsewhere"),
        ("listen", _) => text("127.0.0.1:9"),
        ("http1", _) => text("hyper"),
        ("tls.cert", _) => text("/c.pem"),
        ("tls.key", _) => text("/k.pem"),
        ("storage.dedup_domain", _) => text("global"),
        ("storage.io", _) => text("std"),
        ("auth.realm", _) => text("school"),
        ("log.format", _) => text("json"),
        ("log.level", _) => text("debug"),
        ("log.access", _) => text("stderr"),
        ("log.access_format", _) => text("combined"),
        ("http.cors_origins", _) => V::Array(vec![text("https://portal.example.dk")]),
        ("http.trusted_proxies", _) => V::Array(vec![text("10.0.0.0/8")]),
        ("http.client_header", _) => text("forwarded"),
        ("http.public_url", _) => text("https://skab.example.dk"),
        ("spaces.home_folder_prefix", _) => text("Class "),
        ("crypto.key_store", _) => text("/srv/skab-keys"),
        ("crypto.master_key_file", _) => text("/etc/skab/master.key"),
        ("crypto.master_key_env", _) => text("SKAB_MASTER_KEY"),
        ("crypto.master_key_command", _) => text("kms-client get skab"),
        _ => panic!("{key}: add a non-default value for this setting to the test"),
    }
}

fn raw(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        // Lists are comma-separated in the environment.
        toml::Value::Array(items) => items.iter().map(raw).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn load_file(dir: &std::path::Path, text: &str) -> Result<Config, String> {
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    let cli = CliOverrides {
        config: Some(path),
        ..Default::default()
    };
    Config::load_from(&cli, &[]).map_err(|e| e.to_string())
}

/// A `[[auth.jwt]]` table that sets `key` (an `auth.jwt[].` key) to a non-default value.
fn jwt_table(key: &str) -> String {
    let hs = "issuer = \"i\"\naudience = \"a\"\nsecret = \"s\"\n";
    let rs = "issuer = \"i\"\naudience = \"a\"\nalgorithm = \"RS256\"\n";
    let body = match key {
        "issuer" | "audience" | "secret" => hs.to_string(),
        "algorithm" | "public_key_pem" => format!("{rs}public_key_pem = \"pem\"\n"),
        "public_key_file" => format!("{rs}public_key_file = \"/idp.pem\"\n"),
        "secret_file" => "issuer = \"i\"\naudience = \"a\"\nsecret_file = \"/s\"\n".to_string(),
        "user_claim" => format!("{hs}user_claim = \"sub\"\n"),
        "tenant_claim" => format!("{hs}tenant_claim = \"school\"\n"),
        "groups_claim" => format!("{hs}groups_claim = \"groups\"\n"),
        "leeway_s" => format!("{hs}leeway_s = 31\n"),
        _ => panic!("auth.jwt[].{key}: add it to the test"),
    };
    format!("[[auth.jwt]]\n{body}")
}

#[test]
fn every_documented_setting_is_accepted_and_changes_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let keys = documented_keys();
    assert!(
        keys.len() > 40,
        "parsed only {} keys from the doc",
        keys.len()
    );
    let default = toml::Value::try_from(Config::default()).unwrap();
    let jwt_default = toml::Value::try_from(JwtIssuerConfig::default()).unwrap();
    for (key, env) in &keys {
        if let Some(jkey) = key.strip_prefix("auth.jwt[].") {
            let c =
                load_file(dir.path(), &jwt_table(jkey)).unwrap_or_else(|e| panic!("{key}: {e}"));
            let got = toml::Value::try_from(&c.auth.jwt[0]).unwrap();
            assert_ne!(got.get(jkey), jwt_default.get(jkey), "{key} has no effect");
            continue;
        }
        if let Some(okey) = key.strip_prefix("storage.object.") {
            let (text, want) = object_table(okey);
            let c = load_file(dir.path(), &text).unwrap_or_else(|e| panic!("{key}: {e}"));
            let got = toml::Value::try_from(c.storage.object.as_ref().unwrap()).unwrap();
            assert_eq!(got.get(okey), Some(&want), "{key} has no effect");
            continue;
        }
        if let Some(ckey) = key.strip_prefix("cluster.") {
            let (text, want) = cluster_table(ckey);
            let c = load_file(dir.path(), &text).unwrap_or_else(|e| panic!("{key}: {e}"));
            let got = toml::Value::try_from(c.cluster.as_ref().unwrap()).unwrap();
            assert_eq!(got.get(ckey), Some(&want), "{key} has no effect");
            continue;
        }
        if key == "auth.jwt" {
            let c = load_file(dir.path(), &jwt_table("issuer")).unwrap();
            assert_eq!(c.auth.jwt.len(), 1);
            continue;
        }
        let value = other_value(key, lookup(&default, key));
        // tls.cert and tls.key are valid only together.
        let mut set = vec![(key.clone(), value.clone())];
        // crypto.enabled needs a master key source.
        if let Some(other) = match key.as_str() {
            "tls.cert" => Some("tls.key"),
            "tls.key" => Some("tls.cert"),
            "crypto.enabled" => Some("crypto.master_key_command"),
            _ => None,
        } {
            set.push((other.to_string(), other_value(other, None)));
        }
        // In the file.
        let mut table = toml::Table::new();
        for (k, v) in &set {
            match k.split_once('.') {
                None => {
                    table.insert(k.clone(), v.clone());
                }
                Some((t, k2)) => {
                    let sub = table
                        .entry(t.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    sub.as_table_mut()
                        .unwrap()
                        .insert(k2.to_string(), v.clone());
                }
            }
        }
        let c = load_file(dir.path(), &toml::to_string(&table).unwrap())
            .unwrap_or_else(|e| panic!("{key} in the file: {e}"));
        let got = toml::Value::try_from(&c).unwrap();
        assert_eq!(lookup(&got, key), Some(&value), "{key} in the file");
        assert_ne!(lookup(&got, key), lookup(&default, key), "{key}: no effect");
        // In its environment variable.
        let Some(env) = env else {
            panic!("{key}: only auth.jwt may be file-only");
        };
        let vars: Vec<(String, String)> = set
            .iter()
            .map(|(k, v)| (skab_server::config::env_name(k), raw(v)))
            .collect();
        assert_eq!(&vars[0].0, env, "documented env name of {key}");
        let c = Config::load_from(&CliOverrides::default(), &vars)
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        let got = toml::Value::try_from(&c).unwrap();
        assert_eq!(lookup(&got, key), Some(&value), "{env}");
    }
}

#[test]
fn the_server_starts_with_every_documented_key_and_refuses_unknown_ones() {
    // Every key set (to its default; tls needs certificates and is started by server/tests/it/tls.rs).
    let mut cfg = Config::default();
    cfg.auth.jwt.push(JwtIssuerConfig {
        issuer: "https://idp".into(),
        audience: "skab".into(),
        secret: Some("s".into()),
        ..JwtIssuerConfig::default()
    });
    // Optional settings are set so that they are in the file.
    cfg.http.public_url = Some("https://skab.example.dk".into());
    // Encryption stays off (its own test, server/tests/it/crypt.rs, starts it); its sources are set.
    cfg.crypto.key_store = Some(std::env::temp_dir().join("skab-edge-keys-unused"));
    cfg.crypto.master_key_file = Some("/nonexistent/master.key".into());
    cfg.crypto.master_key_env = Some("SKAB_MASTER_KEY".into());
    cfg.crypto.master_key_command = Some("false".into());
    let mut value = toml::Value::try_from(&cfg).unwrap();
    value.as_table_mut().unwrap().remove("tls");
    for (key, _) in documented_keys() {
        let k = key.split("[]").next().unwrap();
        let found = lookup(&value, k).is_some()
            || (k.starts_with("auth.jwt") && lookup(&value, "auth.jwt").is_some());
        // Object storage needs a bucket (server/tests/it/object_storage.rs starts it), a
        // cluster node etcd too (server/tests/it/cluster.rs).
        assert!(
            found
                || k.starts_with("tls.")
                || k.starts_with("storage.object.")
                || k.starts_with("cluster."),
            "{key} not in the full config"
        );
    }
    let text = toml::to_string(&value).unwrap();
    let mut s = Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(&text));
    assert_eq!(s.client().put(&dav("f"), b"x").status, 201);
    s.stop();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nno_such_setting = 1\n").unwrap();
    let (ok, out) = skab(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--config",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok, "started with an unknown key: {out}");
    assert!(out.contains("no_such_setting"), "unreadable error: {out}");
    let out = skab_command()
        .args(["serve", "--data-dir", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .env("SKAB_STORAGE_NO_SUCH_SETTING", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an unknown variable");
    assert!(text.contains("SKAB_STORAGE_NO_SUCH_SETTING"), "{text}");
}

// ---------------------------------------------------------------- account lifecycle

fn skab_ok(args: &[&str]) -> String {
    let (ok, out) = skab(args, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

#[test]
fn the_demo_account_is_created_only_at_the_first_initialisation() {
    let mut s = Server::start_opts(Opts::default());
    let created = |s: &Server| s.log().matches("created demo account").count();
    assert_eq!(created(&s), 1, "{}", s.log());
    let data = s.data_dir();
    let d = data.to_str().unwrap();
    skab_ok(&[
        "user",
        "del",
        "--data-dir",
        d,
        "--tenant",
        "demo",
        "--user",
        "demo",
    ]);
    s.restart();
    s.restart();
    assert_eq!(created(&s), 1, "demo account created again:\n{}", s.log());
    let list = skab_ok(&["user", "list", "--data-dir", d, "--tenant", "demo"]);
    assert!(!list.lines().any(|l| l.starts_with("demo\t")), "{list}");
}

fn wait_status(c: &Http, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = c.get(path).status;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {got}, want {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_default_quota_reaches_existing_users() {
    let mut s = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config("[storage]\ndefault_quota_bytes = 1000000\n"),
    );
    let big = pseudo_random(11, 1_500_000);
    let c = s.client();
    assert_eq!(
        c.put(&dav("small.bin"), &pseudo_random(12, 10_000)).status,
        201
    );
    assert_eq!(c.put(&dav("big.bin"), &big).status, 507);
    std::fs::write(
        s.path().join("skab.toml"),
        "[storage]\ndefault_quota_bytes = 2000000\n",
    )
    .unwrap();
    s.restart();
    let c = s.client();
    assert_eq!(c.put(&dav("big.bin"), &big).status, 201);
    assert_eq!(c.get(&dav("big.bin")).body, big);
    // A user's own quota wins over the default, and --default hands the user back to it.
    let d = s.data_dir();
    let d = d.to_str().unwrap();
    let quota = |how: &[&str]| {
        let mut args = vec![
            "quota",
            "set",
            "--data-dir",
            d,
            "--tenant",
            TENANT,
            "--user",
            USER,
        ];
        args.extend_from_slice(how);
        skab_ok(&args)
    };
    quota(&["--bytes", "1600000"]);
    assert_eq!(
        c.put(&dav("more.bin"), &pseudo_random(13, 200_000)).status,
        507
    );
    quota(&["--default"]);
    assert_eq!(
        c.put(&dav("more.bin"), &pseudo_random(13, 200_000)).status,
        201
    );
}

#[test]
fn deleted_users_and_tenants_leave_nothing_for_the_next_account_of_that_name() {
    let mut s = Server::start_with(
        &[
            (TENANT, USER, PASSWORD),
            (TENANT, "other", PASSWORD),
            ("school2", "kid", PASSWORD),
        ],
        &[],
    );
    let data = s.data_dir();
    let d = data.to_str().unwrap();
    let shared = pseudo_random(21, 300_000);
    let c = s.client();
    assert_eq!(c.mkcol(&dav("dir")).status, 201);
    assert_eq!(c.put(&dav("dir/shared.bin"), &shared).status, 201);
    assert_eq!(c.put(&dav("v.txt"), b"one").status, 201);
    assert_eq!(c.put(&dav("v.txt"), b"two").status, 204);
    assert_eq!(c.put(&dav("gone.txt"), b"trash").status, 201);
    assert_eq!(c.delete(&dav("gone.txt")).status, 204);
    let other = s.client_as("other@school", PASSWORD);
    let other_file = "/dav/school/other/mine.bin";
    assert_eq!(
        other.put(other_file, &shared).status,
        201,
        "same chunks: deduplicated"
    );
    let kid = s.client_as("kid@school2", PASSWORD);
    assert_eq!(kid.put("/dav/school2/kid/k.txt", b"kid").status, 201);

    // While the server runs (admin socket).
    let out = skab_ok(&[
        "user",
        "del",
        "--data-dir",
        d,
        "--tenant",
        TENANT,
        "--user",
        USER,
        "--keep-data",
        "archive",
    ]);
    assert!(out.contains("archived"), "{out}");
    wait_status(&c, &dav("v.txt"), 401);
    skab_ok(&["tenant", "del", "--data-dir", d, "--tenant", "school2"]);
    wait_status(&kid, "/dav/school2/kid/k.txt", 401);
    let tenants = skab_ok(&["tenant", "list", "--data-dir", d]);
    assert!(
        !tenants.contains("school2"),
        "deleted tenant listed: {tenants}"
    );
    s.restart();

    // New accounts with the old names start empty, after a restart too.
    add_user(&data, TENANT, USER, "new pupil password");
    add_user(&data, "school2", "kid", "new kid password");
    for round in 0..2 {
        let c = s.client_as("pupil@school", "new pupil password");
        let listing = c.propfind(&dav(""), "1");
        assert_eq!(listing.status, 207);
        assert_eq!(
            listing.hrefs().len(),
            1,
            "round {round}: {}",
            listing.text()
        );
        assert_eq!(c.get(&dav("v.txt")).status, 404);
        let kid = s.client_as("kid@school2", "new kid password");
        assert_eq!(kid.get("/dav/school2/kid/k.txt").status, 404);
        assert_eq!(kid.propfind("/dav/school2/kid/", "1").hrefs().len(), 1);
        // The other user's copy of the shared chunks is intact.
        let o = s.client_as("other@school", PASSWORD);
        assert_eq!(o.get(other_file).body, shared, "round {round}");
        let usage = skab_ok(&["usage", "--data-dir", d, "--tenant", TENANT]);
        let line = usage
            .lines()
            .find(|l| l.trim_start().starts_with("pupil@school"))
            .unwrap_or("");
        assert!(line.is_empty() || line.contains("\t0.0 B\t"), "{usage}");
        if round == 0 {
            // skab gc collects nothing another user still needs.
            skab_ok(&["gc", "--data-dir", d, "--compact-ratio", "0"]);
            s.restart();
        }
    }
    // The archive holds the current files; a login of its name reads them.
    add_user(&data, TENANT, "archive", "archive password");
    let a = s.client_as("archive@school", "archive password");
    assert_eq!(
        a.get("/dav/school/archive/pupil/dir/shared.bin").body,
        shared
    );
    assert_eq!(a.get("/dav/school/archive/pupil/v.txt").body, b"two");
    assert_eq!(a.get("/dav/school/archive/pupil/gone.txt").status, 404);
}
