//! `skab version` and `skab trash` for the help desk, against a real server: with it running
//! (admin socket) and across a restart, restoring never overwrites and only the named
//! user's space is touched.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;
use common::{skab, Server, PASSWORD, TENANT, USER};

/// One request as `user@school` on their own space; (status, body).
fn request(server: &Server, user: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}@{TENANT}:{PASSWORD}"));
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "{method} /dav/{TENANT}/{user}/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let code = String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    (code, out[split..].to_vec())
}

/// `skab CMD... --data-dir D --tenant school --user U EXTRA...`.
fn run(d: &str, user: &str, cmd: &[&str], extra: &[&str]) -> (bool, String) {
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(["--data-dir", d, "--tenant", TENANT, "--user", user]);
    args.extend(extra);
    skab(&args, None)
}

fn ok((ok, out): (bool, String)) -> String {
    assert!(ok, "{out}");
    out
}

/// The first column of the listing's lines after the header line.
fn ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect()
}

#[test]
fn help_desk_restores_versions_and_trash_across_a_restart() {
    let mut server = Server::start_with(
        &[(TENANT, USER, PASSWORD), (TENANT, "other", PASSWORD)],
        &[],
    );
    let data = server.data_dir();
    let d = data.to_str().unwrap();
    for text in ["first answer", "second answer", "final answer"] {
        let (code, _) = request(&server, USER, "PUT", "answer.txt", text.as_bytes());
        assert!(code == 201 || code == 204, "{code}");
    }
    assert_eq!(request(&server, USER, "MKCOL", "maths", b"").0, 201);
    assert_eq!(request(&server, USER, "PUT", "maths/a.txt", b"aaa").0, 201);
    assert_eq!(request(&server, USER, "DELETE", "maths", b"").0, 204);
    assert_eq!(
        request(&server, "other", "PUT", "answer.txt", b"theirs").0,
        201
    );

    // With the server running: list, then restore the first version.
    let list = ok(run(
        d,
        USER,
        &["version", "list"],
        &["--path", "/answer.txt"],
    ));
    assert!(
        list.starts_with("2 earlier versions of /answer.txt"),
        "{list}"
    );
    assert!(list.contains("12 bytes"), "{list}");
    let vids = ids(&list);
    ok(run(
        d,
        USER,
        &["version", "restore"],
        &["--path", "/answer.txt", "--id", &vids[0]],
    ));
    assert_eq!(
        request(&server, USER, "GET", "answer.txt", b"").1,
        b"first answer"
    );
    // The content it replaced is a version now: nothing was lost.
    let list = ok(run(
        d,
        USER,
        &["version", "list"],
        &["--path", "/answer.txt"],
    ));
    assert!(list.starts_with("2 earlier versions"), "{list}");
    assert!(list.contains("\t12 bytes"), "{list}");
    // The other user's file is untouched and has no versions.
    assert_eq!(
        request(&server, "other", "GET", "answer.txt", b"").1,
        b"theirs"
    );

    server.restart();
    let trash = ok(run(d, USER, &["trash", "list"], &[]));
    assert!(trash.starts_with("1 items in the trash"), "{trash}");
    assert!(
        trash.contains("folder\t/maths\t2 entries, 3 bytes"),
        "{trash}"
    );
    let tid = ids(&trash)[0].clone();
    // Something else now has the name: restoring does not overwrite it.
    assert_eq!(request(&server, USER, "PUT", "maths", b"a file now").0, 201);
    let (done, out) = run(d, USER, &["trash", "restore"], &["--id", &tid]);
    assert!(!done, "{out}");
    assert!(out.contains("nothing was overwritten"), "{out}");
    assert_eq!(request(&server, USER, "GET", "maths", b"").1, b"a file now");
    ok(run(
        d,
        USER,
        &["trash", "restore"],
        &["--id", &tid, "--to", "/maths-restored"],
    ));
    assert_eq!(
        request(&server, USER, "GET", "maths-restored/a.txt", b"").1,
        b"aaa"
    );
    // Purge one, then all.
    assert_eq!(
        request(&server, USER, "DELETE", "maths-restored", b"").0,
        204
    );
    assert_eq!(request(&server, USER, "DELETE", "maths", b"").0, 204);
    let trash = ok(run(d, USER, &["trash", "list"], &[]));
    let items = ids(&trash);
    assert_eq!(items.len(), 2, "{trash}");
    ok(run(d, USER, &["trash", "purge"], &["--id", &items[0]]));
    let trash = ok(run(d, USER, &["trash", "list"], &[]));
    assert_eq!(ids(&trash).len(), 1, "{trash}");
    ok(run(d, USER, &["trash", "purge"], &["--all"]));
    let trash = ok(run(d, USER, &["trash", "list"], &[]));
    assert!(trash.starts_with("0 items"), "{trash}");

    // With the server stopped, the command opens the store itself.
    server.stop();
    let out = ok(run(
        d,
        USER,
        &["version", "list"],
        &["--path", "/answer.txt"],
    ));
    assert!(out.starts_with("2 earlier versions"), "{out}");
    let (done, out) = run(d, "nobody", &["trash", "list"], &[]);
    assert!(!done, "{out}");
    // The other user's versions were never touched.
    let out = ok(run(
        d,
        "other",
        &["version", "list"],
        &["--path", "/answer.txt"],
    ));
    assert!(out.starts_with("0 earlier versions"), "{out}");
}
