//! cadaver (neon) against a real `skab`: an interactive session driven over its stdin, every
//! command's effect checked through the server with plain HTTP between the commands.
//! scripts/test.sh installs cadaver; the test fails without it.

use crate::common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{dav, pseudo_random, require_tool, Opts, Server, TENANT, USER};

/// netrc cannot hold a password with spaces.
const CADAVER_PASSWORD: &str = "Cadaver-pass-123";
/// Longest one cadaver command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// cadaver's prompt starts with this.
const PROMPT: &str = "dav:/";

struct Cadaver {
    child: Child,
    stdin: ChildStdin,
    out: Receiver<Vec<u8>>,
    seen: String,
}

impl Cadaver {
    fn start(url: &str, home: &std::path::Path, cwd: &std::path::Path) -> Cadaver {
        let mut child = Command::new("cadaver")
            .arg(url)
            .env("HOME", home)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cadaver");
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = channel();
        for mut stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        let mut c = Cadaver {
            child,
            stdin,
            out: rx,
            seen: String::new(),
        };
        c.wait_prompt(1);
        c
    }

    /// Reads output until `n` prompts have been printed in all; returns what came since.
    fn wait_prompt(&mut self, n: usize) -> String {
        let start = self.seen.len();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while self.seen.matches(PROMPT).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("cadaver did not answer; output so far:\n{}", self.seen),
            }
        }
        self.seen[start..].to_string()
    }

    /// Runs one command; returns its output, which must say "succeeded" when `ok`.
    fn cmd(&mut self, line: &str) -> String {
        let prompts = self.seen.matches(PROMPT).count();
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.stdin.flush().unwrap();
        self.wait_prompt(prompts + 1)
    }

    fn ok(&mut self, line: &str) -> String {
        let out = self.cmd(line);
        assert!(
            out.contains("succeeded") && !out.contains("failed"),
            "cadaver `{line}` did not succeed:\n{out}"
        );
        out
    }
}

impl Drop for Cadaver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cadaver_session_has_the_effects_it_reports() {
    require_tool("cadaver");
    let server = Server::start_opts(Opts::default().user(TENANT, USER, CADAVER_PASSWORD));
    let http = server.client_as(&format!("{USER}@{TENANT}"), CADAVER_PASSWORD);
    let home = tempfile::tempdir().unwrap();
    let netrc = home.path().join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1\nlogin {USER}@{TENANT}\npassword {CADAVER_PASSWORD}\n"),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let original = pseudo_random(3, 20_000);
    std::fs::write(work.path().join("local.bin"), &original).unwrap();
    let second = pseudo_random(4, 777);
    std::fs::write(work.path().join("second.bin"), &second).unwrap();

    let mut cad = Cadaver::start(&server.home(), home.path(), work.path());

    cad.ok("mkcol stuff");
    let r = http.propfind(&dav("stuff/"), "0");
    assert_eq!(r.status, 207);
    assert!(r.text().contains("<D:collection/>"), "{}", r.text());

    cad.ok("put local.bin stuff/f.bin");
    assert_eq!(http.get(&dav("stuff/f.bin")).body, original);
    cad.ok("put second.bin \"stuff/æøå fil.bin\"");
    assert_eq!(
        http.get(&dav("stuff/%C3%A6%C3%B8%C3%A5%20fil.bin")).body,
        second
    );

    let out = cad.ok("ls stuff");
    assert!(out.contains("f.bin") && out.contains("20000"), "{out}");
    assert!(out.contains("æøå fil.bin"), "{out}");

    cad.ok("get stuff/f.bin fetched.bin");
    assert_eq!(
        std::fs::read(work.path().join("fetched.bin")).unwrap(),
        original
    );

    cad.ok("move stuff/f.bin stuff/g.bin");
    assert_eq!(http.get(&dav("stuff/f.bin")).status, 404);
    assert_eq!(http.get(&dav("stuff/g.bin")).body, original);

    cad.ok("copy stuff/g.bin stuff/h.bin");
    assert_eq!(http.get(&dav("stuff/g.bin")).body, original);
    assert_eq!(http.get(&dav("stuff/h.bin")).body, original);

    cad.ok("propset stuff/h.bin colour blue");
    let r = http.send(
        "PROPFIND",
        &dav("stuff/h.bin"),
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><C:colour xmlns:C="http://webdav.org/cadaver/custom-properties/"/></D:prop></D:propfind>"#,
    );
    let t = r.text();
    assert!(
        t.contains("colour") && t.contains(">blue<") && t.contains("200 OK"),
        "{t}"
    );
    let out = cad.cmd("propget stuff/h.bin colour");
    assert!(out.contains("blue"), "{out}");

    cad.ok("lock stuff/h.bin");
    // Another client without the token is locked out; the lock is visible.
    assert_eq!(http.put(&dav("stuff/h.bin"), b"not mine").status, 423);
    let r = http.send(
        "PROPFIND",
        &dav("stuff/h.bin"),
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#,
    );
    assert!(r.text().contains("opaquelocktoken:"), "{}", r.text());
    // cadaver itself submits its token.
    cad.ok("put second.bin stuff/h.bin");
    assert_eq!(http.get(&dav("stuff/h.bin")).body, second);
    cad.ok("unlock stuff/h.bin");
    assert_eq!(http.put(&dav("stuff/h.bin"), b"mine again").status, 204);

    cad.ok("delete stuff/g.bin");
    assert_eq!(http.get(&dav("stuff/g.bin")).status, 404);
    let out = cad.ok("ls stuff");
    assert!(!out.contains("g.bin") && out.contains("h.bin"), "{out}");

    // A failure is reported as one too (the session is not just printing "succeeded").
    let out = cad.cmd("get stuff/nothing-here.bin x.bin");
    assert!(out.contains("failed") || out.contains("404"), "{out}");

    cad.ok("rmcol stuff");
    assert_eq!(http.propfind(&dav("stuff/"), "0").status, 404);
    let mut hrefs = http.propfind(&dav(""), "1").hrefs();
    hrefs.sort();
    assert_eq!(hrefs, vec![dav("")]);
}
