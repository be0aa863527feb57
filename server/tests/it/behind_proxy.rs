//! Skab behind a real nginx (issue 19): the client address comes from `X-Forwarded-For` only
//! when the peer is a trusted proxy, failed-login throttling keys on it, expired JWTs and revoked
//! app tokens by the hundred block nobody, COPY/MOVE work although nginx rewrites `Host`,
//! PROXY protocol v1/v2 headers name the client only from a trusted peer; and the fair-share
//! limit refuses an account's second request while its slow upload is in flight.
//!
//! Addresses: nginx and the trusted peer are 127.0.0.1 (`http.trusted_proxies`); an untrusted
//! client connects from 127.0.0.2 (any 127/8 address is local on Linux). The test itself,
//! talking to nginx from 127.0.0.1, plays one more trusted hop: the `X-Forwarded-For: 10.x.y.z`
//! it sends is extended by nginx to `10.x.y.z, 127.0.0.1`, whose right-most untrusted entry,
//! the client, is `10.x.y.z`.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const JWT_SECRET: &str = "behind-proxy-test-secret";
const PUBLIC_URL: &str = "https://skab.example.dk";
/// Failed logins a client address may make before 429 (small, so that the test is short).
const BURST: u32 = 20;

/// A running nginx in a temp dir, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: u16) -> Nginx {
        require_tool("nginx");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let port = free_port();
        // Running as root, nginx's workers would switch to `nobody`, who cannot use the temp dir.
        let user = if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
        {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host skab-internal;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args([
                "-p",
                &d,
                "-e",
                &format!("{d}/error.log"),
                "-c",
                &format!("{d}/nginx.conf"),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = n.child.try_wait() {
                panic!("nginx exited ({st}): {}", n.error_log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of the master and its worker.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection from a chosen local address (127.0.0.2 is a different, untrusted peer).
fn connect_from(src: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{src}:0").parse::<SocketAddr>().unwrap())?;
            sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
        })
        .expect("connect from a chosen address");
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn jwt(user: &str, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": "https://idp.example", "aud": "skab",
        "exp": now + exp_in, "preferred_username": user,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn forged_jwt(user: &str) -> String {
    let good = jwt(user, 600);
    let (head, _sig) = good.rsplit_once('.').unwrap();
    format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
}

/// skab with the proxy settings, an HS256 issuer, a small source bucket and an access log.
fn start_skab(log_dir: &Path, extra_toml: &str) -> Server {
    let access = log_dir.join("access.log");
    let config = format!(
        "[http]
trusted_proxies = [\"127.0.0.1\"]
public_url = \"{PUBLIC_URL}\"

[auth]
source_failures_burst = {BURST}
source_failures_per_minute = 1

[[auth.jwt]]
issuer = \"https://idp.example\"
audience = \"skab\"
secret = \"{JWT_SECRET}\"

[log]
access = \"{}\"
{extra_toml}",
        access.display()
    );
    Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .user(TENANT, "bo", "bo-password")
            .user(TENANT, "carl", "carl-password")
            .config(&config),
    )
}

/// Sends one request over `stream` (`Connection: close`) and reads the answer; `None` when
/// the server closed the connection without answering.
fn request_on(
    mut stream: TcpStream,
    preface: &[u8],
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let mut bytes = preface.to_vec();
    bytes.extend_from_slice(&build_request(method, path, auth, headers, b""));
    let _ = stream.write_all(&bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    (!out.is_empty()).then(|| parse_reply(&out))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// One request through nginx as client `xff` (what nginx extends).
fn via_proxy(nginx: &Nginx, xff: &str, method: &str, path: &str, auth: &str) -> Reply {
    let s = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    request_on(
        s,
        b"",
        method,
        path,
        Some(auth),
        &[("X-Forwarded-For", xff)],
    )
    .expect("nginx answers")
}

/// The access log's JSON lines whose path is `path` (waits for the writer thread).
fn logged_clients(access: &Path, path: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(access).unwrap_or_default();
        let clients: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["path"] == path)
            .map(|v| v["client"].as_str().unwrap_or("").to_string())
            .collect();
        if clients.len() >= want || Instant::now() > deadline {
            return clients;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_revoked_token(data: &Path) -> String {
    let d = data.to_str().unwrap();
    let who = ["--data-dir", d, "--tenant", TENANT, "--user", "carl"];
    let (ok, out) = skab(&[&["token", "create"][..], &who].concat(), None);
    assert!(ok, "{out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in {out}"))
            .to_string()
    };
    let (id, secret) = (field("id: "), field("token: "));
    let (ok, out) = skab(
        &[&["token", "revoke"][..], &who, &["--id", &id]].concat(),
        None,
    );
    assert!(ok, "{out}");
    secret
}

#[test]
fn throttling_keys_on_the_forwarded_client_and_stale_tokens_block_no_one() {
    let logs = tempfile::tempdir().unwrap();
    let skab = start_skab(logs.path(), "");
    let nginx = Nginx::start(skab.port);
    let home = format!("/dav/{TENANT}/{USER}/");
    let bo_home = format!("/dav/{TENANT}/bo/");
    let revoked = create_revoked_token(&skab.data_dir());

    // 08:00: hundreds of clients, each on its own address, present an expired JWT or a
    // revoked app token (400 requests, 8 threads). Each is a 401, none a 429.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let nginx = &nginx;
                let home = &home;
                let revoked = &revoked;
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let xff = format!("10.1.{t}.{i}");
                            let auth = if i % 2 == 0 {
                                bearer(&jwt(&format!("{USER}@{TENANT}"), -3600 - i64::from(i)))
                            } else {
                                bearer(revoked)
                            };
                            via_proxy(nginx, &xff, "PROPFIND", home, &auth).status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 400);
    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
    // ...and the same again from one address (a school behind one NAT): still 401s.
    for i in 0..(2 * BURST + 2) {
        let auth = if i % 2 == 0 {
            bearer(&jwt(&format!("{USER}@{TENANT}"), -7200))
        } else {
            bearer(&revoked)
        };
        assert_eq!(
            via_proxy(&nginx, "10.2.0.1", "PROPFIND", &home, &auth).status,
            401
        );
    }
    // They were not counted as failures: that address's bucket is full, and one forgery
    // from it is a plain 401.
    let one_forgery = bearer(&forged_jwt(&format!("{USER}@{TENANT}")));
    assert_eq!(
        via_proxy(&nginx, "10.2.0.1", "PROPFIND", &home, &one_forgery).status,
        401
    );
    // Valid clients are served meanwhile, whatever their address.
    let valid = bearer(&jwt(&format!("{USER}@{TENANT}"), 600));
    for addr in ["10.2.0.1", "10.1.0.0", "10.3.0.1"] {
        assert_eq!(
            via_proxy(&nginx, addr, "PROPFIND", &home, &valid).status,
            207
        );
    }

    // Forged tokens from one client empty that client's bucket only.
    let mut forged = Vec::new();
    for _ in 0..(BURST + 5) {
        let auth = bearer(&forged_jwt(&format!("{USER}@{TENANT}")));
        forged.push(via_proxy(&nginx, "10.6.6.6", "PROPFIND", &home, &auth).status);
    }
    assert_eq!(forged[0], 401);
    assert_eq!(*forged.last().unwrap(), 429, "{forged:?}");
    let other = bearer(&forged_jwt(&format!("{USER}@{TENANT}")));
    assert_eq!(
        via_proxy(&nginx, "10.6.6.7", "PROPFIND", &home, &other).status,
        401,
        "a neighbour's bucket is its own"
    );
    // From the throttled address, valid credentials still pass: a Bearer token at once, a
    // password (not yet in the cache) through the penalty lane.
    assert_eq!(
        via_proxy(&nginx, "10.6.6.6", "PROPFIND", &home, &valid).status,
        207
    );
    assert_eq!(
        via_proxy(
            &nginx,
            "10.6.6.6",
            "PROPFIND",
            &bo_home,
            &basic("bo@school", "bo-password")
        )
        .status,
        207
    );
    let wrong = via_proxy(
        &nginx,
        "10.6.6.6",
        "PROPFIND",
        &bo_home,
        &basic("bo@school", "guess"),
    );
    assert!(matches!(wrong.status, 401 | 429), "{}", wrong.status);

    // A client that is not a trusted proxy cannot choose its address: straight to skab from
    // 127.0.0.2 with a spoofed header, its forgeries count against 127.0.0.2.
    let direct = |xff: &str, auth: &str| {
        request_on(
            connect_from("127.0.0.2", skab.port),
            b"",
            "PROPFIND",
            &home,
            Some(auth),
            &[("X-Forwarded-For", xff)],
        )
        .expect("skab answers")
    };
    let mut spoofed = Vec::new();
    for i in 0..(BURST + 5) {
        let auth = bearer(&forged_jwt(&format!("{USER}@{TENANT}")));
        spoofed.push(direct(&format!("10.7.0.{i}"), &auth).status);
    }
    assert_eq!(*spoofed.last().unwrap(), 429, "{spoofed:?}");
    // ...not against the addresses it named (10.7.0.x), which nginx still lets log in.
    assert_eq!(
        via_proxy(&nginx, "10.7.0.3", "PROPFIND", &home, &other).status,
        401
    );
    // Through nginx from 127.0.0.2, the spoofed left part is ignored as well: nginx appends
    // 127.0.0.2, the right-most untrusted address.
    let marker = format!("{home}from-untrusted-peer");
    let r = request_on(
        connect_from("127.0.0.2", nginx.port),
        b"",
        "PROPFIND",
        &marker,
        Some(&valid),
        &[("X-Forwarded-For", "10.9.9.9")],
    )
    .unwrap();
    assert_eq!(r.status, 404);
    let marker_direct = format!("{home}direct-spoof");
    let r = direct_get(&skab, &marker_direct, &valid);
    assert_eq!(r.status, 404);
    let access = logs.path().join("access.log");
    assert_eq!(logged_clients(&access, &marker, 1), ["127.0.0.2"]);
    assert_eq!(logged_clients(&access, &marker_direct, 1), ["127.0.0.2"]);
    // Through nginx from the trusted side, the forwarded client is logged.
    let marker_fwd = format!("{home}forwarded-client");
    assert_eq!(
        via_proxy(&nginx, "10.4.4.4", "GET", &marker_fwd, &valid).status,
        404
    );
    assert_eq!(logged_clients(&access, &marker_fwd, 1), ["10.4.4.4"]);
    // A `Forwarded` header the client wrote (nginx passes it on) is not believed: skab reads
    // the header nginx manages.
    let marker_both = format!("{home}client-wrote-forwarded");
    let r = request_on(
        TcpStream::connect(("127.0.0.1", nginx.port)).unwrap(),
        b"",
        "GET",
        &marker_both,
        Some(&valid),
        &[
            ("X-Forwarded-For", "10.4.4.5"),
            ("Forwarded", "for=10.5.5.5"),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(logged_clients(&access, &marker_both, 1), ["10.4.4.5"]);
}

fn direct_get(skab: &Server, path: &str, auth: &str) -> Reply {
    request_on(
        connect_from("127.0.0.2", skab.port),
        b"",
        "GET",
        path,
        Some(auth),
        &[
            ("X-Forwarded-For", "10.8.8.8"),
            ("Forwarded", "for=10.8.8.9"),
        ],
    )
    .expect("skab answers")
}

#[test]
fn copy_and_move_through_a_proxy_that_rewrites_host() {
    let logs = tempfile::tempdir().unwrap();
    let skab = start_skab(logs.path(), "");
    let nginx = Nginx::start(skab.port);
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let home = format!("/dav/{TENANT}/{USER}");
    let client = Http {
        port: nginx.port,
        auth: Some(auth),
    };
    assert_eq!(client.put(&format!("{home}/a.txt"), b"hello").status, 201);
    let public = |p: &str| format!("{PUBLIC_URL}{home}/{p}");
    let r = client.send(
        "COPY",
        &format!("{home}/a.txt"),
        &[("Destination", &public("b.txt"))],
        b"",
    );
    assert_eq!(r.status, 201, "COPY to the public URL: {}", r.text());
    let r = client.send(
        "MOVE",
        &format!("{home}/b.txt"),
        &[("Destination", &public("c.txt"))],
        b"",
    );
    assert_eq!(r.status, 201, "MOVE to the public URL: {}", r.text());
    assert_eq!(client.get(&format!("{home}/c.txt")).body, b"hello");
    assert_eq!(client.get(&format!("{home}/b.txt")).status, 404);
    // The rewritten Host (what skab sees) is this server too; another authority is not.
    let r = client.send(
        "COPY",
        &format!("{home}/a.txt"),
        &[("Destination", &format!("http://skab-internal{home}/d.txt"))],
        b"",
    );
    assert_eq!(r.status, 201);
    let r = client.send(
        "COPY",
        &format!("{home}/a.txt"),
        &[(
            "Destination",
            &format!("https://elsewhere.example{home}/e.txt"),
        )],
        b"",
    );
    assert_eq!(r.status, 502);
    // A tagged If naming the public URL is evaluated against this server's resource.
    let etag = client
        .get(&format!("{home}/a.txt"))
        .header("etag")
        .expect("GET has an ETag")
        .to_string();
    let tagged = format!("<{}> ([{etag}])", public("a.txt"));
    let r = client.send(
        "PUT",
        &format!("{home}/a.txt"),
        &[("If", &tagged), ("Content-Length", "3")],
        b"new",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let stale = format!("<{}> ([\"0000\"])", public("a.txt"));
    let r = client.send(
        "PUT",
        &format!("{home}/a.txt"),
        &[("If", &stale), ("Content-Length", "3")],
        b"old",
    );
    assert_eq!(r.status, 412);
}

fn proxy_v2(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut v = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v.extend_from_slice(&[0x21, 0x11, 0, 12]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&[127, 0, 0, 1]);
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&80u16.to_be_bytes());
    v
}

#[test]
fn proxy_protocol_from_trusted_peers_only() {
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    // Both HTTP/1 implementations read the PROXY header before HTTP.
    for impl_name in ["skab", "hyper"] {
        let skab = Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(
            &format!(
                "http1 = \"{impl_name}\"\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\
                 [log]\naccess = \"{}\"\n",
                access.display()
            ),
        ));
        let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
        let home = format!("/dav/{TENANT}/{USER}/");
        let connect = || {
            let s = TcpStream::connect(("127.0.0.1", skab.port)).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s
        };
        let v1_path = format!("{home}v1-{impl_name}");
        let r = request_on(
            connect(),
            b"PROXY TCP4 198.51.100.7 127.0.0.1 5555 80\r\n",
            "GET",
            &v1_path,
            Some(&auth),
            &[],
        )
        .expect("answered after a v1 header");
        assert_eq!(r.status, 404);
        let v2_path = format!("{home}v2-{impl_name}");
        let r = request_on(
            connect(),
            &proxy_v2([198, 51, 100, 8], 6666),
            "GET",
            &v2_path,
            Some(&auth),
            &[],
        )
        .expect("answered after a v2 header");
        assert_eq!(r.status, 404);
        assert_eq!(logged_clients(&access, &v1_path, 1), ["198.51.100.7"]);
        assert_eq!(logged_clients(&access, &v2_path, 1), ["198.51.100.8"]);
        // A v1 UNKNOWN (a balancer's health check) keeps the peer.
        let r = request_on(
            connect(),
            b"PROXY UNKNOWN\r\n",
            "GET",
            "/healthz",
            None,
            &[],
        );
        assert_eq!(r.map(|r| r.status), Some(200));
        // Malformed from a trusted peer, or any PROXY header from an untrusted one: closed
        // without an answer.
        for (from, preface) in [
            (
                "127.0.0.1",
                b"PROXY TCP4 198.51.100.7 nonsense\r\n".to_vec(),
            ),
            (
                "127.0.0.1",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
            ),
            (
                "127.0.0.1",
                b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff".to_vec(),
            ),
            (
                "127.0.0.2",
                b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n".to_vec(),
            ),
            ("127.0.0.2", proxy_v2([198, 51, 100, 9], 7777)),
        ] {
            let path = format!("{home}refused-{impl_name}");
            let r = request_on(
                connect_from(from, skab.port),
                &preface,
                "GET",
                &path,
                Some(&auth),
                &[],
            );
            assert!(
                r.is_none(),
                "{from} {:?}: answered {:?}",
                String::from_utf8_lossy(&preface),
                r.map(|r| r.status)
            );
        }
        assert!(logged_clients(&access, &format!("{home}refused-{impl_name}"), 0).is_empty());
        // An untrusted peer's plain HTTP is served as before.
        let r = request_on(
            connect_from("127.0.0.2", skab.port),
            b"",
            "GET",
            "/healthz",
            None,
            &[],
        );
        assert_eq!(r.map(|r| r.status), Some(200));
    }
}

#[test]
fn an_accounts_slow_upload_makes_its_second_request_429_while_others_are_served() {
    let skab = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .user(TENANT, "bo", "bo-password")
            .config("[limits]\ninflight_per_account_max = 1\n"),
    );
    let pupil = skab.client();
    let bo = skab.client_as("bo@school", "bo-password");
    let home = format!("/dav/{TENANT}/{USER}");
    // Logged in once, so that later requests are authenticated at once from the cache.
    assert_eq!(pupil.propfind(&format!("{home}/"), "0").status, 207);
    // A PUT whose body trickles: head and 10 of 20 bytes, then nothing for now.
    let start_upload = || {
        let mut slow = TcpStream::connect(("127.0.0.1", skab.port)).unwrap();
        slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let head = build_request(
            "PUT",
            &format!("{home}/slow.bin"),
            pupil.auth.as_deref(),
            &[("Content-Length", "20")],
            b"",
        );
        slow.write_all(&head).unwrap();
        slow.write_all(b"0123456789").unwrap();
        // Give it time to be admitted before a probe of the same account competes with it.
        std::thread::sleep(Duration::from_millis(200));
        slow
    };
    let mut slow = start_upload();
    // The same account's next request is refused (once the upload's handler runs).
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = pupil.propfind(&format!("{home}/"), "0");
        if r.status == 429 {
            break r;
        }
        assert_eq!(r.status, 207);
        // Did the upload lose the race to a probe (and get the 429 itself)? Then again.
        slow.set_nonblocking(true).unwrap();
        let mut first = [0u8; 16];
        let answered = match slow.peek(&mut first) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        slow.set_nonblocking(false).unwrap();
        if answered {
            let mut got = Vec::new();
            let _ = slow.read_to_end(&mut got);
            let got = String::from_utf8_lossy(&got).to_string();
            assert!(got.starts_with("HTTP/1.1 429"), "the upload got {got:?}");
            slow = start_upload();
        }
        assert!(
            Instant::now() < deadline,
            "never refused; log:\n{}",
            skab.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.text().contains("too many requests"),
        "{}",
        refused.text()
    );
    // Another account is served meanwhile.
    assert_eq!(bo.propfind(&format!("/dav/{TENANT}/bo/"), "0").status, 207);
    assert_eq!(pupil.get(&format!("{home}/slow.bin")).status, 429);
    // The upload finishes; then the account is served again.
    slow.write_all(b"abcdefghij").unwrap();
    let mut out = Vec::new();
    slow.read_to_end(&mut out).unwrap();
    assert_eq!(parse_reply(&out).status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = pupil.get(&format!("{home}/slow.bin"));
        if r.status == 200 {
            assert_eq!(r.body, b"0123456789abcdefghij");
            break;
        }
        assert!(Instant::now() < deadline, "still {}", r.status);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The TLS path: the PROXY header comes before the TLS handshake.
#[test]
fn proxy_protocol_before_tls() {
    use rustls::pki_types::ServerName;
    use std::sync::Arc;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let access = keys.path().join("access.log");
    let mut opts = Opts::default()
        .user(TENANT, USER, PASSWORD)
        .config(&format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [log]\naccess = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            access.to_str().unwrap()
        ));
    opts.tls = true;
    let skab = Server::start_opts(opts);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let over_tls = |mut tcp: TcpStream, preface: &[u8], path: &str| {
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.write_all(preface).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut tls, &build_request("GET", path, Some(&auth), &[], b""))
    };
    let path = format!("/dav/{TENANT}/{USER}/over-tls");
    let r = over_tls(
        TcpStream::connect(("127.0.0.1", skab.port)).unwrap(),
        b"PROXY TCP4 198.51.100.30 127.0.0.1 4444 443\r\n",
        &path,
    )
    .expect("HTTPS after a PROXY header");
    assert_eq!(r.status, 404);
    assert_eq!(logged_clients(&access, &path, 1), ["198.51.100.30"]);
    // From an untrusted peer the same bytes end the connection before the handshake.
    let r = over_tls(
        connect_from("127.0.0.2", skab.port),
        b"PROXY TCP4 198.51.100.31 127.0.0.1 4444 443\r\n",
        &path,
    );
    assert!(r.is_err(), "{:?}", r.map(|r| r.status));
}
