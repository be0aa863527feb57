//! Versions and trash beyond one's own home, against a real `skab serve` on loopback: a
//! pupil reaches the versions and trash of their own hand-in files (restoring only while the
//! hand-in is open), never another pupil's; share recipients list versions and writers
//! restore them; space members reach the space's trash under their own root. And a deleted
//! pupil's hand-in folder goes to the teacher, never to a new account of the same name.

use crate::common;

use std::time::Duration;

use common::school::{add_group, add_handin, as_user, cli, now_s, start, wait_member, PW, T};
use common::{Http, Reply};

const BASE: &str = "/dav/school/handin/exam/";

fn wait_until(unix: u64) {
    while now_s() < unix {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `oc:fileid` of `url` (Depth 0).
fn file_id(c: &Http, url: &str) -> u64 {
    let body = "<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\"><d:prop><oc:fileid/></d:prop></d:propfind>";
    let r = c.send("PROPFIND", url, &[("Depth", "0")], body.as_bytes());
    assert_eq!(r.status, 207, "{url}: {}", r.text());
    let t = r.text();
    let i = t.find(":fileid").expect("fileid");
    let from = i + t[i..].find('>').unwrap() + 1;
    t[from..from + t[from..].find('<').unwrap()]
        .parse()
        .unwrap_or_else(|_| panic!("{t}"))
}

/// The versions (not the collection) listed at `url`.
fn versions(c: &Http, url: &str) -> Vec<String> {
    let r = c.propfind(url, "1");
    assert_eq!(r.status, 207, "{url}: {}", r.text());
    r.hrefs()
        .into_iter()
        .filter(|h| !h.ends_with('/'))
        .collect()
}

fn mv(c: &Http, from: &str, to: &str) -> Reply {
    c.send("MOVE", from, &[("Destination", to)], b"")
}

/// The href of the trash item whose name starts with `name` at trash collection `url`.
fn trash_item(c: &Http, url: &str, name: &str) -> Option<String> {
    let r = c.propfind(url, "1");
    assert_eq!(r.status, 207, "{url}: {}", r.text());
    r.hrefs()
        .into_iter()
        .find(|h| h.rsplit('/').next().is_some_and(|l| l.starts_with(name)))
}

#[test]
fn a_deleted_pupils_handin_goes_to_the_teacher_never_to_a_new_account_of_that_name() {
    let mut s = start();
    add_group(&s, "p1,p2");
    let closes = now_s() + 20;
    add_handin(&s, "exam", closes, &[]);
    wait_member(&s, "p1", BASE);
    wait_member(&s, "p2", BASE);
    let p1 = as_user(&s, "p1", T);
    let p2 = as_user(&s, "p2", T);
    assert_eq!(
        p1.put(&format!("{BASE}answer.txt"), b"p1 OLD SECRET")
            .status,
        201
    );
    assert_eq!(
        p1.put(&format!("{BASE}answer.txt"), b"p1 OLD SECRET final")
            .status,
        204
    );
    assert_eq!(
        p1.put(&format!("{BASE}draft.txt"), b"p1 OLD draft").status,
        201
    );
    assert_eq!(p1.delete(&format!("{BASE}draft.txt")).status, 204);
    let old_fid = file_id(&p1, &format!("{BASE}answer.txt"));
    // A lock the old account holds (an hour) must not bind the new one.
    let lockinfo: &[u8] = b"<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    for f in ["answer.txt", "locked-new.txt"] {
        let r = p1.send(
            "LOCK",
            &format!("{BASE}{f}"),
            &[("Timeout", "Second-3600")],
            lockinfo,
        );
        assert!(r.status == 200 || r.status == 201, "{}", r.text());
    }
    // Locks are judged by whole seconds: let the new account be made in a later one.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        p2.put(&format!("{BASE}answer.txt"), b"p2 OLD SECRET")
            .status,
        201
    );

    // p1 goes while the server runs; a new p1 comes into the same class.
    let out = cli(&s, &["user", "del", "--tenant", T, "--user", "p1"]);
    assert!(
        out.contains("hand-in exam") && out.contains("_deleted_p1_"),
        "{out}"
    );
    common::add_user(&s.data_dir(), T, "p1", PW);
    cli(
        &s,
        &[
            "group", "members", "--tenant", T, "--group", "class", "--add", "p1",
        ],
    );
    // The server rereads the accounts at most once a second (`USER_DB_REFRESH_INTERVAL_MS`):
    // until then it takes the new p1 for the old one.
    std::thread::sleep(Duration::from_millis(1500));
    wait_member(&s, "p1", BASE);
    let new_p1 = as_user(&s, "p1", T);
    for depth in ["0", "1"] {
        let r = new_p1.propfind(BASE, depth);
        assert_eq!(r.status, 207);
        let t = r.text();
        assert!(
            !t.contains("answer.txt") && !t.contains("_deleted") && !t.contains("draft"),
            "{t}"
        );
        assert_eq!(r.hrefs().len(), 1, "{t}");
    }
    assert_eq!(new_p1.get(&format!("{BASE}answer.txt")).status, 404);
    assert_eq!(new_p1.get(&format!("{BASE}draft.txt")).status, 404);
    // Nor the old one's trash or versions.
    let trash = new_p1.propfind("/dav-trash/school/p1/handin/exam/trash/", "1");
    assert_eq!(trash.status, 207);
    assert!(!trash.text().contains("draft"), "{}", trash.text());
    for root in [
        "/dav-versions/school/p1",
        "/remote.php/dav/versions/p1@school",
    ] {
        let r = new_p1.propfind(&format!("{root}/versions/{old_fid}/"), "1");
        assert_eq!(r.status, 404, "{root}: {}", r.text());
    }
    let r = new_p1.put(&format!("{BASE}answer.txt"), b"p1 NEW");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = new_p1.propfind(&format!("{BASE}locked-new.txt"), "0");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        new_p1
            .put(&format!("{BASE}locked-new.txt"), b"not locked")
            .status,
        201
    );

    // The teacher still has the old submission, its versions included.
    let teach = as_user(&s, "teach", T);
    let r = teach.propfind(BASE, "1");
    let retired = r
        .hrefs()
        .into_iter()
        .find(|h| h.contains("_deleted_p1_"))
        .unwrap_or_else(|| panic!("no _deleted_p1_ folder: {}", r.text()));
    assert_eq!(
        teach.get(&format!("{retired}answer.txt")).body,
        b"p1 OLD SECRET final"
    );
    assert_eq!(teach.get(&format!("{BASE}p1/answer.txt")).body, b"p1 NEW");
    let vs = versions(
        &teach,
        &format!("/dav-versions/school/teach/versions/{old_fid}/"),
    );
    assert_eq!(vs.len(), 1);
    assert_eq!(teach.get(&vs[0]).body, b"p1 OLD SECRET");

    // p2 goes while the server is stopped (the command opens the store itself).
    s.stop();
    let out = cli(&s, &["user", "del", "--tenant", T, "--user", "p2"]);
    assert!(out.contains("_deleted_p2_"), "{out}");
    s.restart();
    let teach = as_user(&s, "teach", T);
    let r = teach.propfind(BASE, "1");
    let retired2 = r
        .hrefs()
        .into_iter()
        .find(|h| h.contains("_deleted_p2_"))
        .unwrap_or_else(|| panic!("no _deleted_p2_ folder: {}", r.text()));
    assert_eq!(
        teach.get(&format!("{retired2}answer.txt")).body,
        b"p2 OLD SECRET"
    );
    assert_eq!(teach.get(&format!("{BASE}p2/answer.txt")).status, 404);

    // After closes the teacher's zip has the retired folders beside the new pupil's.
    wait_until(closes);
    let zip = teach.get(&format!("{BASE}?zip"));
    assert_eq!(zip.status, 200, "{}", zip.text());
    let has = |needle: &[u8]| zip.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"_deleted_p1_") && has(b"_deleted_p2_"));
    assert!(has(b"p1 OLD SECRET final") && has(b"p2 OLD SECRET") && has(b"p1 NEW"));
}

#[test]
fn pupils_reach_versions_and_trash_of_their_own_handin_files_only() {
    let mut s = start();
    add_group(&s, "p1,p2");
    add_handin(&s, "exam", now_s() + 3600, &[]);
    let quiz_closes = now_s() + 8;
    add_handin(&s, "quiz", quiz_closes, &[]);
    wait_member(&s, "p1", BASE);
    wait_member(&s, "p2", BASE);
    let (p1, p2, teach, outsider) = (
        as_user(&s, "p1", T),
        as_user(&s, "p2", T),
        as_user(&s, "teach", T),
        as_user(&s, "outsider", T),
    );
    const QUIZ: &str = "/dav/school/handin/quiz/";
    assert_eq!(p1.put(&format!("{QUIZ}q.txt"), b"quiz one").status, 201);
    assert_eq!(p1.put(&format!("{QUIZ}q.txt"), b"quiz two").status, 204);
    assert_eq!(p1.put(&format!("{QUIZ}gone.txt"), b"quiz gone").status, 201);
    assert_eq!(p1.delete(&format!("{QUIZ}gone.txt")).status, 204);
    let quiz_fid = file_id(&p1, &format!("{QUIZ}q.txt"));

    // Versions of a hand-in file, by the id the hand-in shows (tagged: never a home's).
    assert_eq!(p1.put(&format!("{BASE}a.txt"), b"answer one").status, 201);
    assert_eq!(p1.put(&format!("{BASE}a.txt"), b"answer two").status, 204);
    assert_eq!(p2.put(&format!("{BASE}a.txt"), b"p2 answer").status, 201);
    let fid = file_id(&p1, &format!("{BASE}a.txt"));
    assert!(fid >= 1 << 32, "{fid}");
    let nc = |u: &str| format!("/remote.php/dav/versions/{u}@school/versions/{fid}/");
    let vs = versions(&p1, &nc("p1"));
    assert_eq!(vs.len(), 1);
    assert_eq!(p1.get(&vs[0]).body, b"answer one");
    // Another pupil, an outsider: as if there were no such file, in both layouts.
    for (c, u) in [(&p2, "p2"), (&outsider, "outsider")] {
        assert_eq!(c.propfind(&nc(u), "1").status, 404);
        let dav = format!("/dav-versions/school/{u}/versions/{fid}/");
        assert_eq!(c.propfind(&dav, "1").status, 404);
        let v = vs[0].replacen("p1@school", &format!("{u}@school"), 1);
        assert_eq!(c.get(&v).status, 404);
        let to = format!("/remote.php/dav/versions/{u}@school/restore/target");
        assert_eq!(mv(c, &v, &to).status, 404);
    }
    assert_eq!(p1.get(&format!("{BASE}a.txt")).body, b"answer two");
    // The namesake in another tenant, by its own roots or by p1's.
    let twin = s.client_as("p1@other", PW);
    for url in [
        format!("/remote.php/dav/versions/p1@other/versions/{fid}/"),
        format!("/dav-versions/other/p1/versions/{fid}/"),
        format!("/dav-versions/school/p1/versions/{fid}/"),
        "/dav-trash/other/p1/handin/exam/trash/".to_string(),
        "/dav-trash/school/p1/handin/exam/trash/".to_string(),
    ] {
        assert_eq!(twin.propfind(&url, "1").status, 404, "{url}");
    }
    // The teacher lists and reads, never restores.
    let tv = versions(&teach, &nc("teach"));
    assert_eq!(teach.get(&tv[0]).body, b"answer one");
    let r = mv(
        &teach,
        &tv[0],
        "/remote.php/dav/versions/teach@school/restore/target",
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // Trash of one's own hand-in folder, under one's own root.
    assert_eq!(
        p1.put(&format!("{BASE}gone.txt"), b"deleted answer").status,
        201
    );
    assert_eq!(p1.delete(&format!("{BASE}gone.txt")).status, 204);
    let p1_trash = "/dav-trash/school/p1/handin/exam/trash/";
    let r = p1.propfind(p1_trash, "1");
    // Its original location as the pupil sees it: in their folder, which is their root.
    assert!(
        r.text().contains("trashbin-original-location") && !r.text().contains("p1/gone.txt"),
        "{}",
        r.text()
    );
    let item = trash_item(&p1, p1_trash, "gone.txt").expect("gone.txt in p1's trash");
    let p2_trash = "/dav-trash/school/p2/handin/exam/trash/";
    assert!(trash_item(&p2, p2_trash, "gone.txt").is_none());
    let stolen = item.replacen("/p1/", "/p2/", 1);
    assert_eq!(
        mv(&p2, &stolen, "/dav-trash/school/p2/handin/exam/restore/x").status,
        404
    );
    assert_eq!(p2.delete(&stolen).status, 404);
    assert_eq!(
        outsider
            .propfind("/dav-trash/school/outsider/handin/exam/trash/", "1")
            .status,
        404
    );
    assert_eq!(
        p1.propfind("/dav-trash/school/p1/handin/nope/trash/", "1")
            .status,
        404
    );
    let r = mv(&p1, &item, "/dav-trash/school/p1/handin/exam/restore/x");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("skab-restored-to"), Some("/gone.txt"));
    assert_eq!(p1.get(&format!("{BASE}gone.txt")).body, b"deleted answer");

    // Restored across a restart, through the plain layout.
    s.restart();
    let p1 = as_user(&s, "p1", T);
    let dav = format!("/dav-versions/school/p1/versions/{fid}/");
    let vs = versions(&p1, &dav);
    let r = mv(&p1, &vs[0], "/dav-versions/school/p1/restore/target");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(p1.get(&format!("{BASE}a.txt")).body, b"answer one");
    // The replaced content became a version; p2's file is untouched.
    let after: Vec<Vec<u8>> = versions(&p1, &dav).iter().map(|v| p1.get(v).body).collect();
    assert!(after.contains(&b"answer two".to_vec()), "{after:?}");
    assert_eq!(
        as_user(&s, "p2", T).get(&format!("{BASE}a.txt")).body,
        b"p2 answer"
    );

    // After closes: still listed and readable, restoring and purging refused.
    wait_until(quiz_closes);
    let qv = versions(
        &p1,
        &format!("/dav-versions/school/p1/versions/{quiz_fid}/"),
    );
    assert_eq!(p1.get(&qv[0]).body, b"quiz one");
    let r = mv(&p1, &qv[0], "/dav-versions/school/p1/restore/target");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("closed at"), "{}", r.text());
    assert_eq!(p1.get(&format!("{QUIZ}q.txt")).body, b"quiz two");
    let qt = "/dav-trash/school/p1/handin/quiz/trash/";
    let item = trash_item(&p1, qt, "gone.txt").expect("gone.txt in the quiz trash");
    let r = mv(&p1, &item, "/dav-trash/school/p1/handin/quiz/restore/x");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("closed at"), "{}", r.text());
    assert_eq!(p1.delete(&item).status, 403);
    assert!(trash_item(&p1, qt, "gone.txt").is_some());
}

#[test]
fn share_writers_restore_versions_readers_list_them_and_space_trash_is_under_ones_root() {
    let mut s = start();
    let teach = as_user(&s, "teach", T);
    assert_eq!(teach.mkcol("/dav/school/teach/Material/").status, 201);
    assert_eq!(
        teach
            .put("/dav/school/teach/Material/notes.txt", b"notes one")
            .status,
        201
    );
    assert_eq!(
        teach
            .put("/dav/school/teach/Material/notes.txt", b"notes two")
            .status,
        204
    );
    assert_eq!(
        teach
            .put("/dav/school/teach/private.txt", b"private one")
            .status,
        201
    );
    assert_eq!(
        teach
            .put("/dav/school/teach/private.txt", b"private two")
            .status,
        204
    );
    for (who, perm) in [("p1", "write"), ("p2", "read")] {
        cli(
            &s,
            &[
                "share",
                "add",
                "--tenant",
                T,
                "--owner",
                "teach",
                "--path",
                "Material",
                "--with",
                &format!("user:{who}"),
                "--perm",
                perm,
            ],
        );
    }
    let (p1, p2, outsider) = (
        as_user(&s, "p1", T),
        as_user(&s, "p2", T),
        as_user(&s, "outsider", T),
    );
    let fid = file_id(&p1, "/dav/school/p1/Material/notes.txt");
    assert!(fid >= 1 << 32, "{fid}");
    let nc = |u: &str| format!("/remote.php/dav/versions/{u}@school/versions/{fid}/");
    let v1 = versions(&p1, &nc("p1"));
    assert_eq!(p1.get(&v1[0]).body, b"notes one");
    let v2 = versions(&p2, &nc("p2"));
    assert_eq!(p2.get(&v2[0]).body, b"notes one");
    let r = mv(
        &p2,
        &v2[0],
        "/remote.php/dav/versions/p2@school/restore/target",
    );
    assert_eq!(r.status, 403, "a reader cannot restore: {}", r.text());
    assert_eq!(outsider.propfind(&nc("outsider"), "1").status, 404);
    // A file of the owner's home outside the shared folder, by an id with the share's tag.
    let private = file_id(&teach, "/dav/school/teach/private.txt");
    assert!(private < 1 << 32);
    let forged = (fid & !u64::from(u32::MAX)) | private;
    let r = p1.propfind(
        &format!("/remote.php/dav/versions/p1@school/versions/{forged}/"),
        "1",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = mv(
        &p1,
        &v1[0],
        "/remote.php/dav/versions/p1@school/restore/target",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        teach.get("/dav/school/teach/Material/notes.txt").body,
        b"notes one"
    );
    // Revoked: at once.
    let list = cli(&s, &["share", "list", "--tenant", T]);
    for line in list.lines().filter(|l| l.contains("user:p1")) {
        let id = line.split_whitespace().next().unwrap();
        cli(&s, &["share", "del", "--tenant", T, "--id", id]);
    }
    assert_eq!(p1.propfind(&nc("p1"), "1").status, 404, "{list}");

    // A space's trash, under each member's own root, in both layouts.
    cli(
        &s,
        &[
            "space",
            "add",
            "--tenant",
            T,
            "--space",
            "math",
            "--owner",
            "teach",
            "--share",
            "user:p1=write",
            "--share",
            "user:p2=read",
        ],
    );
    assert_eq!(
        p1.put("/dav/school/spaces/math/x.txt", b"space file")
            .status,
        201
    );
    assert_eq!(p1.delete("/dav/school/spaces/math/x.txt").status, 204);
    let t1 = "/remote.php/dav/trashbin/p1@school/spaces/math/trash/";
    let t2 = "/dav-trash/school/p2/spaces/math/trash/";
    let item1 = trash_item(&p1, t1, "x.txt").expect("x.txt in p1's view");
    let item2 = trash_item(&p2, t2, "x.txt").expect("x.txt in p2's view");
    let r = mv(
        &p2,
        &item2,
        "/dav-trash/school/p2/spaces/math/restore/x.txt",
    );
    assert_eq!(r.status, 403, "a reader cannot restore: {}", r.text());
    assert_eq!(p2.delete(&item2).status, 403);
    assert_eq!(
        outsider
            .propfind("/dav-trash/school/outsider/spaces/math/trash/", "1")
            .status,
        404
    );
    assert_eq!(
        p1.propfind("/dav-trash/school/p1/spaces/nope/trash/", "1")
            .status,
        404
    );
    // One's home trash does not show the space's items.
    assert!(trash_item(&p1, "/dav-trash/school/p1/trash/", "x.txt").is_none());
    s.restart();
    let p1 = as_user(&s, "p1", T);
    let r = mv(
        &p1,
        &item1,
        "/remote.php/dav/trashbin/p1@school/spaces/math/restore/x.txt",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(p1.get("/dav/school/spaces/math/x.txt").body, b"space file");
}
