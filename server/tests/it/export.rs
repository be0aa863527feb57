//! `skab export`, `skab export --verify` and `skab import` against real `skab` processes on
//! loopback (docs/export.md): a round trip with every kind of object gives the same manifest
//! (but for the fields an import cannot carry over) and the same bytes; the archive unpacked by
//! the system `tar` is the tree WebDAV serves; an export taken under uploads is one instant and
//! verifies; a flipped byte and a missing member are caught; an import into a data dir that has
//! the tenant is refused; a 100 MiB file is exported without the export holding it in memory.

use crate::common;

use common::school::rfc3339;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEACHER: &str = "teach";

fn run_ok(args: &[&str]) -> String {
    let (ok, out) = skab(args, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

fn cli(data: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--data-dir", data.to_str().unwrap()]);
    run_ok(&all)
}

fn export(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["export", "--tenant", TENANT, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(data, &args)
}

/// Member name -> bytes (`None` for a folder), and the manifest, in archive order checked:
/// the manifest comes first.
fn read_archive(path: &Path) -> (Value, BTreeMap<String, Option<Vec<u8>>>) {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut members = BTreeMap::new();
    let mut manifest = None;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let name = name.trim_end_matches('/').to_string();
        if e.header().entry_type().is_dir() {
            members.insert(name, None);
        } else {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            if manifest.is_none() {
                assert_eq!(name, "manifest.json", "the manifest is the first member");
                manifest = Some(serde_json::from_slice(&b).unwrap());
                continue;
            }
            members.insert(name, Some(b));
        }
    }
    (manifest.expect("no manifest"), members)
}

/// The manifest without the fields an import cannot carry over (docs/export.md, "Round trip").
fn comparable(mut m: Value) -> Value {
    m.as_object_mut().unwrap().remove("exported_at");
    for a in m["accounts"].as_array_mut().unwrap() {
        a.as_object_mut().unwrap().remove("tokens");
    }
    fn entries(list: &mut Value) {
        for e in list.as_array_mut().unwrap() {
            let e = e.as_object_mut().unwrap();
            if e["kind"] == "dir" {
                e.remove("mtime_ns");
            }
        }
    }
    for t in m["trees"].as_array_mut().unwrap() {
        entries(&mut t["entries"]);
        for item in t["trash"].as_array_mut().unwrap() {
            entries(&mut item["entries"]);
        }
    }
    m
}

const PROPPATCH: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:grade>12 ✓</x:grade></D:prop></D:set></D:propertyupdate>"#;

/// A server holding every kind of object an export carries.
fn populated() -> Server {
    let s = Server::start_with(
        &[(TENANT, USER, PASSWORD), (TENANT, TEACHER, PASSWORD)],
        &[],
    );
    let data = s.data_dir();
    let c = s.client();
    assert_eq!(c.mkcol(&dav(&enc("Æble"))).status, 201);
    let apple = format!("{}/{}", enc("Æble"), enc("ø å.txt"));
    assert_eq!(c.put(&dav(&apple), b"first").status, 201);
    assert_eq!(c.put(&dav(&apple), b"second").status, 204);
    assert_eq!(c.put(&dav(&apple), "tredje ✓".as_bytes()).status, 204);
    assert_eq!(
        c.send("PROPPATCH", &dav(&apple), &[], PROPPATCH.as_bytes())
            .status,
        207
    );
    assert_eq!(
        c.send("PROPPATCH", &dav(&enc("Æble")), &[], PROPPATCH.as_bytes())
            .status,
        207
    );
    assert_eq!(c.mkcol(&dav("Tom")).status, 201);
    assert_eq!(c.mkcol(&dav("Tom/Tommere")).status, 201);
    // Several chunks (content-defined chunks average well below this).
    assert_eq!(
        c.put(&dav("big.bin"), &pseudo_random(7, 5 << 20)).status,
        201
    );
    assert_eq!(c.put(&dav("empty.txt"), b"").status, 201);
    // Trash: a file (with a version), a folder with content, and a file whose name is live again.
    assert_eq!(c.put(&dav("gone.txt"), b"v1").status, 201);
    assert_eq!(c.put(&dav("gone.txt"), b"v2").status, 204);
    assert_eq!(c.delete(&dav("gone.txt")).status, 204);
    assert_eq!(c.mkcol(&dav("Gammelt")).status, 201);
    assert_eq!(c.mkcol(&dav("Gammelt/Under")).status, 201);
    assert_eq!(c.put(&dav("Gammelt/Under/x.txt"), b"x").status, 201);
    assert_eq!(c.delete(&dav("Gammelt")).status, 204);
    assert_eq!(c.put(&dav("gone.txt"), b"back again").status, 201);
    // Accounts, groups, tokens, quotas, a hand-in with a receipt.
    cli(
        &data,
        &[
            "group",
            "add",
            "--tenant",
            TENANT,
            "--group",
            "9a",
            "--members",
            USER,
        ],
    );
    cli(
        &data,
        &[
            "token", "create", "--tenant", TENANT, "--user", USER, "--label", "laptop",
        ],
    );
    cli(
        &data,
        &["user", "disable", "--tenant", TENANT, "--user", TEACHER],
    );
    cli(
        &data,
        &["user", "enable", "--tenant", TENANT, "--user", TEACHER],
    );
    cli(
        &data,
        &[
            "quota", "set", "--tenant", TENANT, "--user", USER, "--bytes", "50000000",
        ],
    );
    cli(
        &data,
        &["quota", "set", "--tenant", TENANT, "--bytes", "900000000"],
    );
    let closes = rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600,
    );
    cli(
        &data,
        &[
            "handin", "add", "--tenant", TENANT, "--handin", "exam", "--owner", TEACHER, "--group",
            "9a", "--closes", &closes,
        ],
    );
    // A shared space with a file in it, and a folder of the pupil's home shared with the teacher.
    cli(
        &data,
        &[
            "space",
            "add",
            "--tenant",
            TENANT,
            "--space",
            "fysik",
            "--owner",
            TEACHER,
            "--share",
            "group:9a=read",
        ],
    );
    let teacher = s.client_as(&format!("{TEACHER}@{TENANT}"), PASSWORD);
    assert_eq!(
        teacher
            .put(&format!("/dav/{TENANT}/spaces/fysik/ark.txt"), b"opgave 1")
            .status,
        201
    );
    cli(
        &data,
        &[
            "share",
            "add",
            "--tenant",
            TENANT,
            "--owner",
            USER,
            "--path",
            "Tom",
            "--with",
            "user:teach",
            "--perm",
            "write",
        ],
    );
    let url = format!("/dav/{TENANT}/handin/exam/{}", enc("svar ø.txt"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let receipt = loop {
        let r = c.put(&url, b"my answer");
        if r.status == 201 {
            break r.header("skab-receipt").unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "hand-in upload: {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(receipt.starts_with("skab-receipt-1."));
    s
}

#[test]
fn a_round_trip_keeps_every_kind_of_object_and_every_byte() {
    let s = populated();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first.tar");
    let out = export(
        &s.data_dir(),
        &first,
        &["--with-password-hashes", "--with-receipt-key"],
    );
    assert!(out.contains("exported tenant school"), "{out}");
    let out = run_ok(&["export", "--verify", first.to_str().unwrap()]);
    assert!(out.contains("verified"), "{out}");
    let (m1, files1) = read_archive(&first);
    assert_eq!(m1["format"], "skab-export");
    assert_eq!(m1["version"], 1);
    let members: Vec<&String> = files1.keys().collect();
    for want in [
        "files/pupil/Æble/ø å.txt",
        "versions/files/pupil/Æble/ø å.txt/1",
        "versions/files/pupil/Æble/ø å.txt/2",
        "files/pupil/Tom/Tommere",
        "files/pupil/big.bin",
        "files/pupil/empty.txt",
        "trash/files/pupil/1/gone.txt",
        "versions/trash/files/pupil/1/gone.txt/1",
        "trash/files/pupil/2/Gammelt/Under/x.txt",
        "files/pupil/gone.txt",
        "handins/exam/pupil/svar ø.txt",
    ] {
        assert!(files1.contains_key(want), "{want} not in {members:?}");
    }
    assert_eq!(
        files1["files/pupil/Æble/ø å.txt"].as_deref(),
        Some("tredje ✓".as_bytes())
    );
    assert_eq!(
        files1["versions/files/pupil/Æble/ø å.txt/1"].as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        files1["files/pupil/big.bin"].as_deref(),
        Some(&pseudo_random(7, 5 << 20)[..])
    );
    let pupil = m1["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user"] == USER)
        .unwrap();
    assert!(pupil["password_hash"]
        .as_str()
        .unwrap()
        .starts_with("$argon2id$"));
    assert_eq!(pupil["tokens"][0]["label"], "laptop");
    assert_eq!(pupil["groups"][0], "9a");
    assert_eq!(m1["tenant"]["quota"]["bytes"], 900000000);
    let home = m1["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == USER)
        .unwrap();
    assert_eq!(home["quota"]["bytes"], 50000000);
    let apple = home["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "Æble/ø å.txt")
        .unwrap();
    assert!(apple["props"][0]["value"]
        .as_str()
        .unwrap()
        .contains("12 ✓"));
    assert_eq!(
        apple["blake3"],
        blake3::hash("tredje ✓".as_bytes()).to_hex().as_str()
    );
    assert_eq!(m1["handins"][0]["receipts"].as_array().unwrap().len(), 1);
    assert_eq!(m1["spaces"][0]["name"], "fysik");
    assert_eq!(m1["spaces"][0]["owner"], TEACHER);
    assert_eq!(m1["spaces"][0]["grants"][0], "group:9a=read");
    assert_eq!(m1["shares"][0]["path"], "Tom");
    assert_eq!(m1["shares"][0]["with"], "user:teach");
    assert_eq!(m1["shares"][0]["perm"], "write");
    assert_eq!(
        files1["spaces/_space_fysik/ark.txt"].as_deref(),
        Some(&b"opgave 1"[..]),
        "{members:?}"
    );
    assert!(m1["receipt_keys"]["public"]
        .as_str()
        .unwrap()
        .starts_with("skab-ed25519:"));

    // Into a fresh data dir, then served, then exported again.
    let first2 = first.clone();
    let b = Server::start_opts(Opts {
        before_start: Some(Arc::new(move |data: &Path| {
            let out = run_ok(&[
                "import",
                "--data-dir",
                data.to_str().unwrap(),
                "--in",
                first2.to_str().unwrap(),
            ]);
            assert!(out.contains("imported tenant school"), "{out}");
        })),
        ..Opts::default()
    });
    let second = tmp.path().join("second.tar");
    export(
        &b.data_dir(),
        &second,
        &["--with-password-hashes", "--with-receipt-key"],
    );
    let (m2, files2) = read_archive(&second);
    assert_eq!(comparable(m2.clone()), comparable(m1.clone()));
    assert_eq!(files2, files1, "the same members with the same bytes");
    // Logins work (hashes carried), and the hand-in's receipt verifies with the same key.
    let bc = b.client();
    assert_eq!(bc.get(&dav("big.bin")).body, pseudo_random(7, 5 << 20));
    // The space and the share work on the target: the teacher reads the space and writes
    // into the pupil's shared folder.
    let bt = b.client_as(&format!("{TEACHER}@{TENANT}"), PASSWORD);
    assert_eq!(
        bt.get(&format!("/dav/{TENANT}/spaces/fysik/ark.txt")).body,
        b"opgave 1"
    );
    assert_eq!(
        bt.put(&format!("/dav/{TENANT}/{TEACHER}/Tom/note.txt"), b"n")
            .status,
        201
    );
    let receipt = m2["handins"][0]["receipts"][0].as_str().unwrap();
    let out = cli(&b.data_dir(), &["receipt", "verify", receipt]);
    assert!(out.contains("receipt verified"), "{out}");
    // Both are recorded in the tenant's audit log.
    let log = cli(&b.data_dir(), &["audit", "export", "--tenant", TENANT]);
    assert!(
        log.contains("admin.import") && log.contains("admin.export"),
        "{log}"
    );
    let log = cli(&s.data_dir(), &["audit", "export", "--tenant", TENANT]);
    assert!(log.contains("admin.export"), "{log}");
}

/// Every file and folder under `root` as WebDAV serves it: path relative to `root` ->
/// bytes (`None` for a folder).
fn served(c: &Http, root: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_string()];
    while let Some(dir) = todo.pop() {
        let r = c.propfind(&dir, "1");
        assert_eq!(r.status, 207, "{dir}");
        for href in r.hrefs() {
            if href == dir {
                continue;
            }
            let rel = percent_encoding::percent_decode_str(&href[root.len()..])
                .decode_utf8()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
            if href.ends_with('/') {
                out.insert(rel, None);
                todo.push(href);
            } else {
                out.insert(rel, Some(c.get(&href).body));
            }
        }
    }
    out
}

/// Every file and folder under `dir` on disk, the same way.
fn on_disk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            out.insert(r.clone(), None);
            on_disk(&e.path(), &r, out);
        } else {
            out.insert(r, Some(std::fs::read(e.path()).unwrap()));
        }
    }
}

#[test]
fn plain_tar_unpacks_the_tree_that_webdav_serves() {
    require_tool("tar");
    let s = populated();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("x.tar");
    export(&s.data_dir(), &archive, &[]);
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let st = std::process::Command::new("tar")
        .args([
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let mut disk = BTreeMap::new();
    on_disk(&unpacked.join("files").join(USER), "", &mut disk);
    let mut web = served(&s.client(), &format!("/dav/{TENANT}/{USER}/"));
    assert!(
        web.contains_key("Æble/ø å.txt") && web.contains_key("Tom/Tommere"),
        "{:?}",
        web.keys()
    );
    // The space the pupil is a member of shows in the home but lives in its own tree.
    let space: BTreeMap<String, Option<Vec<u8>>> = web
        .iter()
        .filter(|(k, _)| *k == "fysik" || k.starts_with("fysik/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    web.retain(|k, _| !space.contains_key(k));
    assert_eq!(disk, web);
    let mut space_disk = BTreeMap::new();
    on_disk(
        &unpacked.join("spaces").join("_space_fysik"),
        "",
        &mut space_disk,
    );
    let space_web: BTreeMap<String, Option<Vec<u8>>> = space
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("fysik/").map(|r| (r.to_string(), v)))
        .collect();
    assert_eq!(space_disk, space_web, "the space's tree");
    // The manifest's BLAKE3s hold for the unpacked files, as any reader can check.
    let m: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    for t in m["trees"].as_array().unwrap() {
        for e in t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "file")
        {
            let bytes = std::fs::read(unpacked.join(e["member"].as_str().unwrap())).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                e["blake3"],
                "{}",
                e["member"]
            );
        }
    }
}

#[test]
fn an_export_under_uploads_is_one_instant_and_verifies() {
    let s = Server::start();
    let c = s.client();
    assert_eq!(
        c.put(&dav("before.bin"), &pseudo_random(1, 300_000)).status,
        201
    );
    let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, c) = (acked.clone(), stop.clone(), s.client());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(
                    c.put(
                        &dav(&format!("live-{i}.bin")),
                        &pseudo_random(100 + i, 30_000)
                    )
                    .status,
                    201
                );
                acked.lock().unwrap().push((i, Instant::now()));
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("live.tar");
    let began = Instant::now();
    export(&s.data_dir(), &archive, &[]);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let out = run_ok(&["export", "--verify", archive.to_str().unwrap()]);
    assert!(out.contains("verified"), "{out}");
    let (_, files) = read_archive(&archive);
    let got: Vec<u64> = files
        .keys()
        .filter_map(|k| k.strip_prefix("files/pupil/live-"))
        .map(|k| k.trim_end_matches(".bin").parse().unwrap())
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    // Uploads are sequential: one instant holds a prefix of them, with no gap.
    assert_eq!(sorted, (0..sorted.len() as u64).collect::<Vec<_>>());
    let before = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t < began)
        .count();
    assert!(
        before > 0 && sorted.len() >= before,
        "{} of {before} acknowledged before",
        sorted.len()
    );
    for i in sorted {
        assert_eq!(
            files[&format!("files/pupil/live-{i}.bin")].as_deref(),
            Some(&pseudo_random(100 + i, 30_000)[..])
        );
    }
}

/// A copy of the archive without `skip`, or with a flipped byte in `flip`'s data.
fn altered(from: &Path, to: &Path, skip: Option<&str>, flip: Option<&str>) {
    let mut a = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut b = tar::Builder::new(std::fs::File::create(to).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let name = name.trim_end_matches('/').to_string();
        if Some(name.as_str()) == skip {
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if Some(name.as_str()) == flip {
            let mid = data.len() / 2;
            data[mid] ^= 0x20;
        }
        let mut h = e.header().clone();
        b.append_data(&mut h, &name, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn a_damaged_export_fails_verify_and_an_existing_tenant_refuses_import() {
    let s = Server::start();
    let c = s.client();
    assert_eq!(c.put(&dav("a.txt"), b"some bytes to flip").status, 201);
    assert_eq!(c.put(&dav("b.txt"), b"another").status, 201);
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.tar");
    export(&s.data_dir(), &good, &[]);
    run_ok(&["export", "--verify", good.to_str().unwrap()]);

    let flipped = tmp.path().join("flipped.tar");
    altered(&good, &flipped, None, Some("files/pupil/a.txt"));
    let (ok, out) = skab(&["export", "--verify", flipped.to_str().unwrap()], None);
    assert!(
        !ok && out.contains("files/pupil/a.txt: BLAKE3 does not match"),
        "{out}"
    );

    let missing = tmp.path().join("missing.tar");
    altered(&good, &missing, Some("files/pupil/b.txt"), None);
    let (ok, out) = skab(&["export", "--verify", missing.to_str().unwrap()], None);
    assert!(!ok && out.contains("files/pupil/b.txt: missing"), "{out}");

    // Not a Skab export at all.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar file").unwrap();
    let (ok, out) = skab(&["export", "--verify", junk.to_str().unwrap()], None);
    assert!(!ok, "{out}");

    // A damaged archive is not imported, even into an empty data dir.
    let fresh = tmp.path().join("fresh");
    let (ok, out) = skab(
        &[
            "import",
            "--data-dir",
            fresh.to_str().unwrap(),
            "--in",
            flipped.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && out.contains("does not verify"), "{out}");
    let (ok, out) = skab(
        &[
            "user",
            "list",
            "--data-dir",
            fresh.to_str().unwrap(),
            "--tenant",
            TENANT,
        ],
        None,
    );
    assert!(!ok, "a refused import created the tenant: {out}");

    // Into the running server that has the tenant: refused, nothing changed.
    assert_eq!(c.put(&dav("a.txt"), b"changed since").status, 204);
    let (ok, out) = skab(
        &[
            "import",
            "--data-dir",
            s.data_dir().to_str().unwrap(),
            "--in",
            good.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !ok && out.contains("tenant school is already in") && out.contains("nothing was changed"),
        "{out}"
    );
    assert_eq!(c.get(&dav("a.txt")).body, b"changed since");
    assert!(c.get(&dav("b.txt")).status == 200);
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `skab export args` and watches its peak resident memory (KiB) until it exits.
fn export_peak_kib(args: &[&str]) -> u64 {
    let mut child = skab_command()
        .arg("export")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(k) = peak_rss_kib(child.id()) {
            peak = peak.max(k);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(peak > 0);
    peak
}

#[test]
fn a_large_file_is_streamed_not_held_in_memory() {
    const SIZE: usize = 100 << 20;
    let mut s = Server::start_with(
        &[(TENANT, USER, PASSWORD), (TENANT, "other", PASSWORD)],
        &[],
    );
    // 100 MiB of 1 MiB blocks that differ (a byte at the front of each): cheap to store by
    // dedup between them, but every byte is read from the packs and written by the export.
    let block = pseudo_random(3, 1 << 20);
    let mut body = Vec::with_capacity(SIZE);
    for i in 0..100u8 {
        let mut b = block.clone();
        b[0] = i;
        body.extend_from_slice(&b);
    }
    assert_eq!(s.client().put(&dav("large.bin"), &body).status, 201);
    let other = s.client_as(&format!("other@{TENANT}"), PASSWORD);
    assert_eq!(
        other
            .put(&format!("/dav/{TENANT}/other/small.txt"), b"small")
            .status,
        201
    );
    let want = blake3::hash(&body).to_hex().to_string();
    drop(body);
    s.stop();
    // With the server stopped the export runs in the `skab export` process itself. The same
    // store exported for the user with the small file is the baseline (opening the store,
    // the runtime, the allocator's arenas).
    let tmp = tempfile::tempdir().unwrap();
    let data = s.data_dir();
    let d = data.to_str().unwrap();
    let small = tmp.path().join("small.tar");
    let base = export_peak_kib(&[
        "--data-dir",
        d,
        "--tenant",
        TENANT,
        "--user",
        "other",
        "--out",
        small.to_str().unwrap(),
    ]);
    let archive: PathBuf = tmp.path().join("large.tar");
    let peak = export_peak_kib(&[
        "--data-dir",
        d,
        "--tenant",
        TENANT,
        "--out",
        archive.to_str().unwrap(),
    ]);
    let len = std::fs::metadata(&archive).unwrap().len();
    assert!(len > SIZE as u64, "archive {len} bytes");
    eprintln!("export peak RSS: {base} KiB for 5 bytes, {peak} KiB for 100 MiB");
    assert!(
        peak < base + 24 * 1024,
        "the export's peak RSS grew from {base} KiB to {peak} KiB for a 100 MiB file"
    );
    let (m, _) = read_archive(&archive);
    let home = m["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == USER)
        .unwrap();
    let e = home["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "large.bin")
        .unwrap()
        .clone();
    assert_eq!(e["blake3"], want.as_str());
    assert_eq!(e["size"], SIZE as u64);
    run_ok(&["export", "--verify", archive.to_str().unwrap()]);
}

#[test]
fn one_users_export_comes_back_after_the_user_was_deleted() {
    let s = Server::start_with(
        &[(TENANT, USER, PASSWORD), (TENANT, "other", PASSWORD)],
        &[],
    );
    let data = s.data_dir();
    let c = s.client();
    let o = s.client_as(&format!("other@{TENANT}"), PASSWORD);
    assert_eq!(c.mkcol(&dav("Noter")).status, 201);
    let note = format!("Noter/{}", enc("ø.txt"));
    assert_eq!(c.put(&dav(&note), "noter ✓".as_bytes()).status, 201);
    assert_eq!(
        o.put(&format!("/dav/{TENANT}/other/mine.txt"), b"other's")
            .status,
        201
    );
    cli(
        &data,
        &[
            "group",
            "add",
            "--tenant",
            TENANT,
            "--group",
            "9a",
            "--members",
            "pupil,other",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pupil.tar");
    export(&data, &archive, &["--user", USER, "--with-password-hashes"]);
    let (m, files) = read_archive(&archive);
    assert_eq!(m["user"], USER);
    assert_eq!(m["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(m["trees"].as_array().unwrap().len(), 1);
    assert_eq!(m["groups"][0]["members"], serde_json::json!([USER]));
    assert!(
        files.keys().all(|k| k.starts_with("files/pupil")),
        "{:?}",
        files.keys()
    );

    // While the user is there: refused.
    let (ok, out) = skab(
        &[
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            "--in",
            archive.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !ok && out.contains("user pupil@school is already in"),
        "{out}"
    );
    cli(&data, &["user", "del", "--tenant", TENANT, "--user", USER]);
    assert_ne!(c.get(&dav(&note)).status, 200);
    let out = cli(&data, &["import", "--in", archive.to_str().unwrap()]);
    assert!(out.contains("imported tenant school (user pupil)"), "{out}");
    // The same login, the same files, back in the group; the other user untouched.
    assert_eq!(c.get(&dav(&note)).body, "noter ✓".as_bytes());
    let members = cli(
        &data,
        &["group", "members", "--tenant", TENANT, "--group", "9a"],
    );
    assert_eq!(members, "other\npupil\n");
    assert_eq!(
        o.get(&format!("/dav/{TENANT}/other/mine.txt")).body,
        b"other's"
    );
}
