//! Versions and trash over WebDAV against a real server: the Nextcloud/ownCloud layout and
//! the `/dav-versions`, `/dav-trash` one, across a restart; restores never overwrite and
//! nobody but the owner reaches them (404).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;
use common::{Server, PASSWORD, TENANT, USER};

struct Answer {
    code: u16,
    head: String,
    body: Vec<u8>,
}

/// One request as `user@tenant` with extra header lines.
fn req(
    server: &Server,
    who: (&str, &str),
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Answer {
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}@{}:{PASSWORD}", who.1, who.0));
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        code,
        head,
        body: out[split..].to_vec(),
    }
}

const ME: (&str, &str) = (TENANT, USER);

fn files(p: &str) -> String {
    format!("/remote.php/dav/files/{USER}@{TENANT}/{p}")
}

/// The hrefs of a multistatus body.
fn hrefs(body: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(body);
    s.split("<D:href>")
        .skip(1)
        .filter_map(|x| x.split("</D:href>").next().map(str::to_string))
        .collect()
}

#[test]
fn versions_and_trash_over_webdav_across_a_restart() {
    let mut server = Server::start_with(
        &[
            (TENANT, USER, PASSWORD),
            (TENANT, "other", PASSWORD),
            ("otherschool", USER, PASSWORD),
        ],
        &[],
    );
    let mut fid = String::new();
    for text in ["first answer", "second answer", "final answer!"] {
        let a = req(
            &server,
            ME,
            "PUT",
            &files("answer.txt"),
            "",
            text.as_bytes(),
        );
        assert!(a.code == 201 || a.code == 204, "{}", a.head);
        let id = a
            .head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("oc-fileid: ")
                    .map(str::to_string)
            })
            .expect("OC-FileId");
        fid = id
            .trim_start_matches('0')
            .trim_end_matches("ocskab")
            .to_string();
    }
    let oc_versions = format!("/remote.php/dav/versions/{USER}@{TENANT}/versions/{fid}");
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_versions}/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(list.code, 207);
    let body = String::from_utf8_lossy(&list.body).to_string();
    assert!(
        body.contains("<D:getcontentlength>12</D:getcontentlength>"),
        "{body}"
    );
    assert!(
        body.contains("<D:getcontentlength>13</D:getcontentlength>"),
        "{body}"
    );
    assert!(body.contains("<D:getlastmodified>"), "{body}");
    assert!(body.contains("<D:getetag>"), "{body}");
    let versions: Vec<String> = hrefs(&list.body).into_iter().skip(1).collect();
    assert_eq!(versions.len(), 2, "{body}");
    assert_eq!(
        req(&server, ME, "GET", &versions[0], "", b"").body,
        b"first answer"
    );

    server.restart();
    // The same versions under /dav-versions, and a restore there.
    let dav_versions = format!("/dav-versions/{TENANT}/{USER}/versions/{fid}");
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{dav_versions}/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(hrefs(&list.body).len(), 3);
    let first = versions[0].rsplit('/').next().unwrap();
    let a = req(
        &server,
        ME,
        "MOVE",
        &format!("{dav_versions}/{first}"),
        &format!("Destination: http://x/dav-versions/{TENANT}/{USER}/restore/target\r\n"),
        b"",
    );
    assert_eq!(a.code, 204, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        req(&server, ME, "GET", &files("answer.txt"), "", b"").body,
        b"first answer"
    );
    // What it replaced is a version now, readable.
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_versions}/"),
        "Depth: 1\r\n",
        b"",
    );
    let body = String::from_utf8_lossy(&list.body).to_string();
    assert!(
        body.contains("<D:getcontentlength>13</D:getcontentlength>"),
        "{body}"
    );
    // A restore elsewhere than restore/target is refused.
    let second = versions[1].rsplit('/').next().unwrap();
    let a = req(
        &server,
        ME,
        "COPY",
        &format!("{oc_versions}/{second}"),
        &format!("Destination: /remote.php/dav/files/{USER}@{TENANT}/x.txt\r\n"),
        b"",
    );
    assert_eq!(a.code, 403);
    let a = req(
        &server,
        ME,
        "COPY",
        &format!("{oc_versions}/{second}"),
        &format!("Destination: /remote.php/dav/versions/{USER}@{TENANT}/restore/target\r\n"),
        b"",
    );
    assert_eq!(a.code, 204);
    assert_eq!(
        req(&server, ME, "GET", &files("answer.txt"), "", b"").body,
        b"second answer"
    );

    // Nobody else reaches them: another user, another tenant's user of the same name.
    for who in [(TENANT, "other"), ("otherschool", USER)] {
        let a = req(
            &server,
            who,
            "PROPFIND",
            &format!("{oc_versions}/"),
            "Depth: 1\r\n",
            b"",
        );
        assert_eq!(a.code, 404, "{who:?}");
        assert_eq!(req(&server, who, "GET", &versions[0], "", b"").code, 404);
        let a = req(
            &server,
            who,
            "PROPFIND",
            &format!("/remote.php/dav/trashbin/{USER}@{TENANT}/trash/"),
            "Depth: 1\r\n",
            b"",
        );
        assert_eq!(a.code, 404, "{who:?}");
        let a = req(
            &server,
            who,
            "DELETE",
            &format!("/dav-trash/{TENANT}/{USER}/trash"),
            "",
            b"",
        );
        assert_eq!(a.code, 404, "{who:?}");
    }
    // Their own file id means nothing in my space and mine nothing in theirs.
    let a = req(
        &server,
        (TENANT, "other"),
        "PROPFIND",
        &format!("/remote.php/dav/versions/other@{TENANT}/versions/{fid}/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(a.code, 404);

    // Trash: a folder and a file.
    assert_eq!(
        req(&server, ME, "MKCOL", &files("maths"), "", b"").code,
        201
    );
    assert_eq!(
        req(&server, ME, "PUT", &files("maths/a.txt"), "", b"aaa").code,
        201
    );
    assert_eq!(
        req(&server, ME, "PUT", &files("note.txt"), "", b"note").code,
        201
    );
    assert_eq!(
        req(&server, ME, "DELETE", &files("maths"), "", b"").code,
        204
    );
    assert_eq!(
        req(&server, ME, "DELETE", &files("note.txt"), "", b"").code,
        204
    );
    server.restart();
    let oc_trash = format!("/remote.php/dav/trashbin/{USER}@{TENANT}");
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_trash}/trash/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(list.code, 207);
    let body = String::from_utf8_lossy(&list.body).to_string();
    assert!(body.contains(">maths</X:trashbin-filename>"), "{body}");
    assert!(
        body.contains(">note.txt</X:trashbin-original-location>"),
        "{body}"
    );
    assert!(body.contains("trashbin-deletion-time"), "{body}");
    let items: Vec<String> = hrefs(&list.body).into_iter().skip(1).collect();
    assert_eq!(items.len(), 2, "{body}");
    let maths = items.iter().find(|h| h.contains("maths")).unwrap().clone();
    let note = items.iter().find(|h| h.contains("note")).unwrap().clone();
    // Restore to the original place.
    let a = req(
        &server,
        ME,
        "MOVE",
        &maths,
        &format!("Destination: {oc_trash}/restore/maths\r\n"),
        b"",
    );
    assert_eq!(a.code, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        req(&server, ME, "GET", &files("maths/a.txt"), "", b"").body,
        b"aaa"
    );
    // Restore conflict: note.txt exists again; the restored one gets a free name.
    assert_eq!(
        req(&server, ME, "PUT", &files("note.txt"), "", b"new note").code,
        201
    );
    let dav_note = note.replace(&oc_trash, &format!("/dav-trash/{TENANT}/{USER}"));
    let a = req(
        &server,
        ME,
        "MOVE",
        &dav_note,
        &format!("Destination: /dav-trash/{TENANT}/{USER}/restore/note.txt\r\n"),
        b"",
    );
    assert_eq!(a.code, 201);
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("skab-restored-to: /note%20%28restored%29.txt"),
        "{}",
        a.head
    );
    assert_eq!(
        req(&server, ME, "GET", &files("note.txt"), "", b"").body,
        b"new note"
    );
    assert_eq!(
        req(&server, ME, "GET", &files("note%20(restored).txt"), "", b"").body,
        b"note"
    );
    // Purge one, then all.
    for p in ["maths", "note.txt", "note%20(restored).txt"] {
        assert_eq!(req(&server, ME, "DELETE", &files(p), "", b"").code, 204);
    }
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_trash}/trash/"),
        "Depth: 1\r\n",
        b"",
    );
    let items: Vec<String> = hrefs(&list.body).into_iter().skip(1).collect();
    assert_eq!(items.len(), 3);
    assert_eq!(req(&server, ME, "DELETE", &items[0], "", b"").code, 204);
    assert_eq!(req(&server, ME, "GET", &items[0], "", b"").code, 404);
    server.restart();
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_trash}/trash/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(hrefs(&list.body).len(), 3);
    assert_eq!(
        req(&server, ME, "DELETE", &format!("{oc_trash}/trash"), "", b"").code,
        204
    );
    server.restart();
    let list = req(
        &server,
        ME,
        "PROPFIND",
        &format!("{oc_trash}/trash/"),
        "Depth: 1\r\n",
        b"",
    );
    assert_eq!(hrefs(&list.body).len(), 1);
}
