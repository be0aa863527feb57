//! `skab import --merge` through real `skab` processes on loopback: one school's export merged
//! into a running server that has the same tenant (two schools of a municipality becoming
//! one). What the target has is left as it was (same bytes, same etag, its own passwords and
//! group members), what it lacks is added (accounts with their password hashes, a group's new
//! members, files, folders, a whole new home with its trash, a hand-in, a space, a share; a
//! hand-in of the same name keeps the target's owner), and an imported file or folder
//! whose name the target uses for something else lands beside it as "(import 1)". Merging the
//! same archive again changes nothing; without `--merge` the import is refused.

use crate::common;

use std::path::Path;

use common::{skab, Server, PASSWORD};
use serde_json::Value;

const OTHER_PW: &str = "the source school's password";

fn run_ok(args: &[&str]) -> String {
    let (ok, out) = skab(args, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

fn import(data: &Path, archive: &Path, merge: bool) -> (bool, String) {
    let mut args = vec![
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--in",
        archive.to_str().unwrap(),
    ];
    if merge {
        args.push("--merge");
    }
    skab(&args, None)
}

/// The manifest of a fresh export of tenant school from `data`.
fn manifest(data: &Path, out: &Path) -> Value {
    run_ok(&[
        "export",
        "--tenant",
        "school",
        "--out",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(out).unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut first = ar.entries().unwrap().next().unwrap().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut first, &mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_merge_adds_what_is_missing_and_keeps_what_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    // The school that moves.
    let a = Server::start_with(
        &[("school", "pupil", OTHER_PW), ("school", "anna", PASSWORD)],
        &[],
    );
    let d = |s: &Server| s.data_dir().to_str().unwrap().to_string();
    run_ok(&[
        "group",
        "add",
        "--tenant",
        "school",
        "--group",
        "class",
        "--members",
        "pupil,anna",
        "--data-dir",
        &d(&a),
    ]);
    let pa = a.client_as("pupil@school", OTHER_PW);
    assert_eq!(
        pa.put("/dav/school/pupil/same.txt", b"both have this")
            .status,
        201
    );
    assert_eq!(
        pa.put("/dav/school/pupil/diff.txt", b"from the moving school")
            .status,
        201
    );
    assert_eq!(pa.mkcol("/dav/school/pupil/Ny-mappe/").status, 201);
    assert_eq!(pa.put("/dav/school/pupil/Ny-mappe/x.txt", b"x").status, 201);
    assert_eq!(pa.mkcol("/dav/school/pupil/clash/").status, 201);
    assert_eq!(pa.put("/dav/school/pupil/clash/y.txt", b"y").status, 201);
    let anna = a.client_as("anna@school", PASSWORD);
    assert_eq!(anna.put("/dav/school/anna/keep.txt", b"anna's").status, 201);
    assert_eq!(anna.put("/dav/school/anna/old.txt", b"deleted").status, 201);
    assert_eq!(anna.delete("/dav/school/anna/old.txt").status, 204);
    let closes = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(7200),
    )
    .to_string();
    for h in ["exam", "essay"] {
        run_ok(&[
            "handin",
            "add",
            "--tenant",
            "school",
            "--handin",
            h,
            "--owner",
            "pupil",
            "--group",
            "class",
            "--closes",
            &closes,
            "--data-dir",
            &d(&a),
        ]);
    }
    run_ok(&[
        "space",
        "add",
        "--tenant",
        "school",
        "--space",
        "math",
        "--owner",
        "pupil",
        "--share",
        "group:class=read",
        "--data-dir",
        &d(&a),
    ]);
    run_ok(&[
        "share",
        "add",
        "--tenant",
        "school",
        "--owner",
        "pupil",
        "--path",
        "Ny-mappe",
        "--with",
        "user:anna",
        "--data-dir",
        &d(&a),
    ]);
    let archive = tmp.path().join("a.tar");
    run_ok(&[
        "export",
        "--tenant",
        "school",
        "--out",
        archive.to_str().unwrap(),
        "--with-password-hashes",
        "--data-dir",
        &d(&a),
    ]);

    // The school it moves into, with the same tenant name.
    let b = Server::start_with(
        &[("school", "pupil", PASSWORD), ("school", "bob", PASSWORD)],
        &[],
    );
    run_ok(&[
        "group",
        "add",
        "--tenant",
        "school",
        "--group",
        "class",
        "--members",
        "bob",
        "--data-dir",
        &d(&b),
    ]);
    // A hand-in of the same name, the target's own: kept as it is.
    run_ok(&[
        "handin",
        "add",
        "--tenant",
        "school",
        "--handin",
        "exam",
        "--owner",
        "bob",
        "--group",
        "class",
        "--closes",
        &closes,
        "--data-dir",
        &d(&b),
    ]);
    let pb = b.client_as("pupil@school", PASSWORD);
    assert_eq!(
        pb.put("/dav/school/pupil/same.txt", b"both have this")
            .status,
        201
    );
    assert_eq!(
        pb.put("/dav/school/pupil/diff.txt", b"the target's own")
            .status,
        201
    );
    assert_eq!(
        pb.put("/dav/school/pupil/clash", b"a file here").status,
        201
    );
    let etag_same = pb.propfind("/dav/school/pupil/same.txt", "0").text();

    let (ok, out) = import(&b.data_dir(), &archive, false);
    assert!(!ok && out.contains("already in"), "without --merge: {out}");

    let (ok, out) = import(&b.data_dir(), &archive, true);
    assert!(ok, "{out}");
    for want in [
        "files: 3 added, 1 already there with the same bytes, 2 added beside",
        "folders: 1 added; trees: 1 new",
        "trash items: 1 added, 0 already there, 0 left out",
        "accounts: 1 added, 1 kept as they were; groups: 0 added, 2 members added",
        "hand-ins: 1 added, 1 kept; spaces: 1 added, 0 kept; shares: 1 added, 0 kept",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }

    // The target's own stays as it was.
    let pb = b.client_as("pupil@school", PASSWORD);
    assert_eq!(
        pb.get("/dav/school/pupil/diff.txt").body,
        b"the target's own"
    );
    assert_eq!(pb.get("/dav/school/pupil/clash").body, b"a file here");
    assert_eq!(
        pb.propfind("/dav/school/pupil/same.txt", "0").text(),
        etag_same,
        "a file with the same bytes is not written again"
    );
    assert_eq!(
        b.client_as("pupil@school", OTHER_PW)
            .get("/dav/school/pupil/")
            .status,
        401,
        "an account the target has keeps its password"
    );
    // What it lacked is there.
    assert_eq!(
        pb.get("/dav/school/pupil/diff%20(import%201).txt").body,
        b"from the moving school"
    );
    assert_eq!(
        pb.get("/dav/school/pupil/clash%20(import%201)/y.txt").body,
        b"y"
    );
    assert_eq!(pb.get("/dav/school/pupil/Ny-mappe/x.txt").body, b"x");
    let anna = b.client_as("anna@school", PASSWORD);
    assert_eq!(anna.get("/dav/school/anna/keep.txt").body, b"anna's");
    assert_eq!(
        b.client_as("bob@school", PASSWORD)
            .propfind("/dav/school/bob/", "0")
            .status,
        207
    );
    let m = manifest(&b.data_dir(), &tmp.path().join("b.tar"));
    let class = m["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "class")
        .unwrap();
    assert_eq!(
        class["members"],
        serde_json::json!(["anna", "bob", "pupil"])
    );
    let anna_tree = m["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "anna")
        .unwrap();
    assert_eq!(anna_tree["trash"][0]["original_path"], "old.txt");

    let handins = run_ok(&["handin", "list", "--tenant", "school", "--data-dir", &d(&b)]);
    assert!(
        handins.contains("exam\tbob") && handins.contains("essay\tpupil"),
        "{handins}"
    );
    let shares = run_ok(&["share", "list", "--tenant", "school", "--data-dir", &d(&b)]);
    assert!(shares.contains("/Ny-mappe\tuser:anna"), "{shares}");
    let spaces = run_ok(&["space", "list", "--tenant", "school", "--data-dir", &d(&b)]);
    assert!(spaces.contains("math"), "{spaces}");

    // Merging the same archive again changes nothing.
    let (ok, out) = import(&b.data_dir(), &archive, true);
    assert!(ok, "{out}");
    assert!(
        out.contains("files: 0 added, 5 already there with the same bytes, 0 added beside")
            && out.contains("trash items: 0 added, 1 already there")
            && out.contains("accounts: 0 added, 2 kept")
            && out.contains("0 members added")
            && out.contains(
                "hand-ins: 0 added, 2 kept; spaces: 0 added, 1 kept; shares: 0 added, 1 kept"
            ),
        "{out}"
    );
    assert_eq!(
        pb.get("/dav/school/pupil/diff%20(import%202).txt").status,
        404
    );
    let audit = run_ok(&[
        "audit",
        "export",
        "--tenant",
        "school",
        "--data-dir",
        &d(&b),
    ]);
    assert!(audit.contains("admin.import.merge"), "{audit}");
}
