//! Exam hand-ins against a real `skab serve` on loopback: pupils of a group upload into
//! their own folder until the server's deadline and get signed receipts that the CLI
//! verifies offline (a tampered one fails); nobody sees another pupil's hand-in by any
//! method; the teacher reads everything but writes nothing and downloads one zip once the
//! hand-in closed; late uploads are refused or marked; all of it holds across a restart.

use crate::common;

use std::time::Duration;

use common::school::{
    add_group, add_handin, as_user, cli, now_s, rfc3339, start, wait_member, PW, T,
};
use common::{have, skab, Http, Server};

const BASE: &str = "/dav/school/handin/exam/";

/// `skab receipt verify` with the data dir: (exit ok, output).
fn verify(s: &Server, receipt: &str) -> (bool, String) {
    skab(
        &[
            "receipt",
            "verify",
            receipt,
            "--data-dir",
            s.data_dir().to_str().unwrap(),
        ],
        None,
    )
}

fn sync_report() -> &'static [u8] {
    b"<?xml version=\"1.0\"?><D:sync-collection xmlns:D=\"DAV:\">\
      <D:sync-token/><D:sync-level>1</D:sync-level>\
      <D:prop><D:getetag/></D:prop></D:sync-collection>"
}

/// Everything p1 can learn of the hand-in by reading, as one string.
fn what_p1_sees(p1: &Http) -> String {
    let mut seen = String::new();
    for depth in ["0", "1", "infinity"] {
        let r = p1.propfind(BASE, depth);
        if depth == "infinity" && r.status == 403 {
            // `limits.propfind_infinity` off: refused as a whole, which shows nothing.
            assert!(r.text().contains("propfind-finite-depth"), "{}", r.text());
            continue;
        }
        assert_eq!(r.status, 207, "PROPFIND depth {depth}: {}", r.text());
        for h in r.hrefs() {
            assert!(h.starts_with(BASE), "href outside the view: {h}");
        }
        seen.push_str(&r.text());
    }
    let r = p1.send("REPORT", BASE, &[("Depth", "1")], sync_report());
    assert_eq!(r.status, 207, "REPORT: {}", r.text());
    seen.push_str(&r.text());
    let r = p1.get(BASE);
    seen.push_str(&r.text());
    seen
}

#[test]
fn pupils_hand_in_the_teacher_collects_and_the_deadline_holds() {
    let mut s = start();
    add_group(&s, "p1,p2");
    // Far enough ahead for everything before the deadline on a loaded machine (checked).
    let closes = now_s() + 30;
    add_handin(&s, "exam", closes, &[]);
    wait_member(&s, "p1", BASE);
    let p1 = as_user(&s, "p1", T);
    let p2 = as_user(&s, "p2", T);
    let teach = as_user(&s, "teach", T);

    // Uploads earn receipts that verify; a changed one does not.
    let r = p1.put(&format!("{BASE}answer.txt"), b"p1 first answer");
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r
        .header("skab-receipt")
        .expect("receipt header")
        .to_string();
    let (ok, out) = verify(&s, &first);
    assert!(ok, "{out}");
    assert!(
        out.contains("user\tp1") && out.contains("file\tanswer.txt"),
        "{out}"
    );
    assert!(
        out.contains(&blake3::hash(b"p1 first answer").to_hex().to_string()),
        "{out}"
    );
    assert!(out.contains("late\tfalse"), "{out}");
    let mut tampered = first.clone().into_bytes();
    let i = "skab-receipt-1.".len() + 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let (ok, out) = verify(&s, &String::from_utf8(tampered).unwrap());
    assert!(!ok, "a tampered receipt verified: {out}");
    // Offline, with only the exported public key.
    let key = cli(&s, &["receipt", "key", "--tenant", T]);
    let key_file = s.path().join("school.pub");
    std::fs::write(&key_file, key).unwrap();
    let (ok, out) = skab(
        &[
            "receipt",
            "verify",
            &first,
            "--key",
            key_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");

    // Overwriting keeps the earlier receipt (in the hand-in's receipt log).
    let r = p1.put(&format!("{BASE}answer.txt"), b"p1 final answer");
    assert_eq!(r.status, 204, "{}", r.text());
    let second = r.header("skab-receipt").unwrap().to_string();
    assert_ne!(first, second);
    let log =
        std::fs::read_to_string(s.data_dir().join("handin-receipts/school/exam.log")).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), vec![&first, &second]);

    let r = p1.mkcol(&format!("{BASE}sub/"));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p1.put(&format!("{BASE}sub/essay.txt"), b"p1 essay");
    assert_eq!(r.status, 201);
    let r = p2.put(&format!("{BASE}answer.txt"), b"p2 SECRET answer");
    assert_eq!(r.status, 201);
    let r = p2.put(&format!("{BASE}p2only.txt"), b"p2 SECRET other");
    assert_eq!(r.status, 201);

    let isolation = |s: &Server| {
        let p1 = as_user(s, "p1", T);
        let seen = what_p1_sees(&p1);
        assert!(
            !seen.contains("p2only") && !seen.contains("SECRET"),
            "{seen}"
        );
        assert!(
            seen.contains("answer.txt") && seen.contains("sub/"),
            "{seen}"
        );
        // Another pupil's folder by URL is a path inside p1's own folder: not there.
        let lockinfo: &[u8] = b"<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
        for m in ["GET", "PROPFIND", "DELETE", "LOCK"] {
            let body = if m == "LOCK" { lockinfo } else { b"" };
            let r = p1.send(m, &format!("{BASE}p2/answer.txt"), &[("Depth", "0")], body);
            // After the deadline a write is refused before anything is looked up.
            let closed = m == "DELETE" || m == "LOCK";
            assert!(
                r.status == 404 || closed && r.status == 403 || m == "LOCK" && r.status == 409,
                "{m}: {} {}",
                r.status,
                r.text()
            );
        }
        for (m, dest) in [
            ("COPY", "/dav/school/p2/stolen.txt"),
            ("MOVE", "/dav/school/handin/other/x.txt"),
            ("COPY", "/dav/school/handin/exam/"),
        ] {
            let r = p1.send(
                m,
                &format!("{BASE}answer.txt"),
                &[("Destination", dest)],
                b"",
            );
            assert!(
                r.status == 403 || r.status == 404,
                "{m} {dest}: {}",
                r.status
            );
        }
        let r = p1.send(
            "PROPPATCH",
            &format!("{BASE}answer.txt"),
            &[],
            b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:h=\"http://skab.dk/ns/handin\"><D:set><D:prop><h:late>no</h:late></D:prop></D:set></D:propertyupdate>",
        );
        assert_eq!(r.status, 403);
        let r = p1.send("POST", BASE, &[("Content-Type", "text/plain")], b"x");
        assert_eq!(r.status, 405);
        // The ownCloud chunked upload cannot finish into a hand-in.
        let up = "/remote.php/dav/uploads/p1@school/t1";
        assert_eq!(p1.mkcol(up).status, 201);
        assert_eq!(p1.put(&format!("{up}/00001"), b"chunk").status, 201);
        let r = p1.send(
            "MOVE",
            &format!("{up}/.file"),
            &[("Destination", "/dav/school/handin/exam/p2/answer.txt")],
            b"",
        );
        assert_eq!(r.status, 403, "{}", r.text());
        let _ = p1.delete(up);
        // Non-members and other tenants: 404, by reading or writing.
        for c in [as_user(s, "outsider", T), as_user(s, "p1", "other")] {
            assert_eq!(c.propfind(BASE, "1").status, 404);
            assert_eq!(c.get(&format!("{BASE}answer.txt")).status, 404);
            assert_eq!(c.put(&format!("{BASE}x.txt"), b"x").status, 404);
            assert_eq!(c.get("/dav/school/handin/exam/?zip").status, 404);
        }
        assert_eq!(p1.propfind("/dav/school/handin/nosuch/", "0").status, 404);
        // The teacher sees one folder per pupil, with what each handed in.
        let teach = as_user(s, "teach", T);
        let r = teach.propfind(BASE, "1");
        let hrefs = r.hrefs();
        assert!(hrefs.contains(&format!("{BASE}p1/")), "{hrefs:?}");
        assert!(hrefs.contains(&format!("{BASE}p2/")), "{hrefs:?}");
        assert_eq!(
            teach.get(&format!("{BASE}p2/answer.txt")).body,
            b"p2 SECRET answer"
        );
        for (m, path) in [
            ("PUT", "p1/answer.txt"),
            ("DELETE", "p1/answer.txt"),
            ("MKCOL", "p1/new/"),
        ] {
            let r = teach.send(m, &format!("{BASE}{path}"), &[], b"x");
            assert_eq!(r.status, 403, "teacher {m}: {}", r.text());
        }
    };
    isolation(&s);
    // p2 sees only their own, too.
    let r = p2.propfind(BASE, "1");
    assert!(
        !r.text().contains("sub/") && r.text().contains("p2only"),
        "{}",
        r.text()
    );
    let r = p1.propfind(&format!("{BASE}sub/"), "1");
    assert!(r.text().contains("essay.txt"), "{}", r.text());

    assert!(
        now_s() < closes,
        "the steps before the deadline took too long"
    );
    // Before the deadline there is no zip.
    let r = teach.get(&format!("{BASE}?zip"));
    assert_eq!(r.status, 403, "{}", r.text());

    // The server's deadline: refused with the closing time in the body.
    while now_s() < closes {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = p1.put(&format!("{BASE}answer.txt"), b"too late");
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains(&format!("closed at {}", rfc3339(closes))),
        "{}",
        r.text()
    );
    assert!(r.header("skab-receipt").is_none());
    assert_eq!(p1.delete(&format!("{BASE}answer.txt")).status, 403);

    let check_zip = |s: &Server| {
        let teach = as_user(s, "teach", T);
        let r = teach.get(&format!("{BASE}?zip"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/zip"));
        if !have("python3") {
            eprintln!("python3 missing: the zip's contents are not checked");
            return;
        }
        let path = s.path().join("exam.zip");
        std::fs::write(&path, &r.body).unwrap();
        let (ok, listing) = run_python_zip(&path);
        assert!(ok, "{listing}");
        for expected in [
            "p1/answer.txt\tp1 final answer",
            "p1/sub/essay.txt\tp1 essay",
            "p2/answer.txt\tp2 SECRET answer",
            "p2/p2only.txt\tp2 SECRET other",
        ] {
            assert!(
                listing.lines().any(|l| l == expected),
                "{expected}: {listing}"
            );
        }
    };
    check_zip(&s);

    // Across a restart: the hand-in, its deadline, the files, receipts and isolation.
    s.restart();
    assert_eq!(
        as_user(&s, "p1", T)
            .put(&format!("{BASE}answer.txt"), b"x")
            .status,
        403
    );
    isolation(&s);
    check_zip(&s);
    assert!(verify(&s, &first).0 && verify(&s, &second).0);
}

/// Lists `path`'s members as `name<TAB>content` lines (Python's zipfile checks each CRC).
fn run_python_zip(path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nfor n in z.namelist():\n  print(n+'\\t'+z.read(n).decode('utf-8','replace'))",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn late_uploads_are_marked_and_nothing_goes_in_before_opens() {
    let s = start();
    add_group(&s, "p1,p2");
    let now = now_s();
    // Closed a minute ago, but late uploads are taken and marked.
    let (o, c) = (rfc3339(now - 120), rfc3339(now - 60));
    cli(
        &s,
        &[
            "handin", "add", "--tenant", T, "--handin", "exam", "--owner", "teach", "--group",
            "class", "--opens", &o, "--closes", &c, "--late", "mark",
        ],
    );
    add_handin(&s, "later", now + 3600, &["--opens", &rfc3339(now + 1800)]);
    wait_member(&s, "p1", BASE);
    let p1 = as_user(&s, "p1", T);
    let r = p1.put(&format!("{BASE}late.txt"), b"late work");
    assert_eq!(r.status, 201, "{}", r.text());
    let receipt = r.header("skab-receipt").unwrap().to_string();
    let (ok, out) = verify(&s, &receipt);
    assert!(ok && out.contains("late\ttrue"), "{out}");
    let r = p1.send(
        "PROPFIND",
        &format!("{BASE}late.txt"),
        &[("Depth", "0")],
        b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\" xmlns:h=\"http://skab.dk/ns/handin\"><D:prop><h:late/><h:receipt/></D:prop></D:propfind>",
    );
    assert_eq!(r.status, 207);
    assert!(r.text().contains(&receipt), "{}", r.text());
    assert!(r.text().contains("<h:late"), "{}", r.text());
    // The teacher downloads even while late uploads still come in.
    let teach = as_user(&s, "teach", T);
    assert_eq!(teach.get(&format!("{BASE}?zip")).status, 200);

    let r = p1.put("/dav/school/handin/later/x.txt", b"early");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("opens at"), "{}", r.text());

    // The registry as the CLI shows it; bad input is refused.
    let list = cli(&s, &["handin", "list", "--tenant", T]);
    assert!(
        list.contains("exam\tteach\tclass") && list.contains("later"),
        "{list}"
    );
    let d = s.data_dir().to_str().unwrap().to_string();
    for bad in [
        vec!["--group", "nosuch", "--closes", "2030-01-01T00:00:00Z"],
        vec!["--group", "class", "--closes", "tomorrow"],
    ] {
        let mut args = vec![
            "handin",
            "add",
            "--data-dir",
            &d,
            "--tenant",
            T,
            "--handin",
            "x",
            "--owner",
            "teach",
        ];
        args.extend(bad.iter());
        let (ok, out) = skab(&args, None);
        assert!(!ok, "{args:?}: {out}");
    }
    cli(&s, &["handin", "del", "--tenant", T, "--handin", "later"]);
    assert_eq!(p1.propfind("/dav/school/handin/later/", "0").status, 404);
}

/// A teacher or group deleted takes their hand-ins out of the registry: a new account or group
/// of the same name inherits none (a new teacher would otherwise read every submission).
#[test]
fn a_deleted_teacher_or_group_leaves_no_handin_to_a_later_one_of_that_name() {
    let s = start();
    add_group(&s, "p1,p2");
    add_handin(&s, "exam", now_s() + 3600, &[]);
    cli(
        &s,
        &[
            "handin",
            "add",
            "--tenant",
            T,
            "--handin",
            "other",
            "--owner",
            "outsider",
            "--group",
            "class",
            "--closes",
            &rfc3339(now_s() + 3600),
        ],
    );
    wait_member(&s, "p1", BASE);
    let p1 = as_user(&s, "p1", T);
    assert_eq!(
        p1.put(&format!("{BASE}answer.txt"), b"p1's answer").status,
        201
    );
    // The teacher goes; a new teacher of the same name comes.
    cli(&s, &["user", "del", "--tenant", T, "--user", "teach"]);
    common::add_user(&s.data_dir(), T, "teach", PW);
    let list = cli(&s, &["handin", "list", "--tenant", T]);
    assert!(!list.contains("exam"), "{list}");
    assert!(list.contains("other"), "{list}");
    let new_teach = as_user(&s, "teach", T);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = new_teach.get(&format!("{BASE}p1/answer.txt"));
        if r.status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new teacher still reaches the old hand-in: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(new_teach.propfind(BASE, "1").status, 404);
    // The group goes: its hand-ins go too.
    cli(&s, &["group", "del", "--tenant", T, "--group", "class"]);
    let list = cli(&s, &["handin", "list", "--tenant", T]);
    assert!(!list.contains("other"), "{list}");
}
