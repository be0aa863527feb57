//! Test fixture: the real `skab` binary on a free loopback port over a temporary data dir,
//! with users created through the CLI before it starts (killed when dropped), and a small
//! blocking HTTP/1.1 client over `std::net` that sends exactly the bytes a test asks for.

#![allow(dead_code)]

pub mod cluster_bed;
pub mod school;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const TENANT: &str = "school";
pub const USER: &str = "pupil";
pub const PASSWORD: &str = "correct horse battery staple";

/// How long a test waits for one HTTP answer before failing.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    opts: Opts,
}

/// A hook run with the data dir before a server's first start.
pub type BeforeStart = std::sync::Arc<dyn Fn(&Path) + Send + Sync>;

/// How a server is started.
#[derive(Clone, Default)]
pub struct Opts {
    /// `(tenant, user, password)` created with `skab user add` before the first start.
    pub users: Vec<(String, String, String)>,
    /// Extra `serve` arguments.
    pub extra: Vec<String>,
    /// Contents of a config file passed with `--config` (TOML).
    pub config: Option<String>,
    /// The server speaks TLS: readiness is checked by a TCP connect only.
    pub tls: bool,
    /// Called with the (not yet existing) data dir before users are created (e.g. to mount
    /// a small file system there).
    pub before_start: Option<BeforeStart>,
}

impl Opts {
    pub fn user(mut self, tenant: &str, user: &str, password: &str) -> Self {
        self.users
            .push((tenant.to_string(), user.to_string(), password.to_string()));
        self
    }
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }
}

/// Settings of the test harnesses themselves; `skab` would take them for config settings.
pub const HARNESS_ENV: [&str; 3] = ["SKAB_CRASH_CYCLES", "SKAB_CRASH_SEED", "SKAB_SOAK_SECS"];

/// A `skab` command without the harness variables or a config file from the environment.
pub fn skab_command() -> Command {
    let mut c = Command::new(skab_bin());
    c.env_remove("SKAB_CONFIG");
    for v in HARNESS_ENV {
        c.env_remove(v);
    }
    c
}

pub fn skab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skab")
}

/// Runs `skab args...` with `stdin`, returning (status ok, stdout+stderr).
pub fn skab(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = skab_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skab");
    if let Some(s) = stdin {
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `skab user add` for a data dir.
pub fn add_user(data: &Path, tenant: &str, user: &str, password: &str) {
    let (ok, out) = skab(
        &[
            "user",
            "add",
            "--data-dir",
            data.to_str().unwrap(),
            "--tenant",
            tenant,
            "--user",
            user,
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert!(ok, "user add failed: {out}");
}

/// A port free now, never handed out before in this test binary: tests run in parallel, and
/// two servers given the same port would answer each other's requests.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Server {
    /// Starts a server with the default user `pupil@school`.
    pub fn start() -> Server {
        Self::start_with(&[(TENANT, USER, PASSWORD)], &[])
    }

    /// Starts a server with these users and extra `serve` arguments.
    pub fn start_with(users: &[(&str, &str, &str)], extra: &[&str]) -> Server {
        let mut opts = Opts {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Opts::default()
        };
        for (t, u, p) in users {
            opts = opts.user(t, u, p);
        }
        Self::start_opts(opts)
    }

    pub fn start_opts(opts: Opts) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if let Some(f) = &opts.before_start {
            f(&data);
        }
        for (t, u, p) in &opts.users {
            add_user(&data, t, u, p);
        }
        if let Some(cfg) = &opts.config {
            std::fs::write(dir.path().join("skab.toml"), cfg).unwrap();
        }
        let (child, port) = spawn(dir.path(), &opts);
        let mut server = Server {
            child,
            port,
            dir,
            opts,
        };
        server.wait_ready();
        server
    }

    /// Starts the server again over the same data dir (after `stop`/`kill`), on a new port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port) = spawn(self.dir.path(), &self.opts);
        self.child = child;
        self.port = port;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("server exited ({st}) while starting; log:\n{}", self.log());
            }
            if self.opts.tls {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
            } else if let Ok((200, _)) =
                self.raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready; log:\n{}", self.log());
    }

    /// Sends raw bytes; returns (status, whole response).
    pub fn raw(&self, request: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.write_all(request.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, text))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The home collection URL of `pupil@school`.
    pub fn home(&self) -> String {
        format!("{}/dav/{TENANT}/{USER}/", self.base())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        unsafe_kill(self.child.id(), sig);
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server with SIGTERM (graceful) and waits; the data dir stays.
    pub fn stop(&mut self) -> String {
        unsafe_kill(self.child.id(), 15);
        let _ = self.child.wait();
        self.log()
    }

    /// A client logged in as `pupil@school`.
    pub fn client(&self) -> Http {
        self.client_as(&format!("{USER}@{TENANT}"), PASSWORD)
    }

    /// A client logged in as `login` (`user@tenant`).
    pub fn client_as(&self, login: &str, password: &str) -> Http {
        Http {
            port: self.port,
            auth: Some(basic(login, password)),
        }
    }

    /// A client sending no credentials.
    pub fn anonymous(&self) -> Http {
        Http {
            port: self.port,
            auth: None,
        }
    }
}

fn spawn(dir: &Path, opts: &Opts) -> (Child, u16) {
    let data = dir.join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
        "--listen".into(),
        listen,
    ];
    if opts.config.is_some() {
        args.push("--config".into());
        args.push(dir.join("skab.toml").to_str().unwrap().into());
    }
    args.extend(opts.extra.iter().cloned());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let child = skab_command()
        .args(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start skab serve");
    (child, port)
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test (never skips) when a client tool is missing.
pub fn require_tool(cmd: &str) {
    assert!(
        have(cmd),
        "{cmd} is not installed (scripts/test.sh installs litmus, cadaver and rclone)"
    );
}

/// `Basic` credentials header value.
pub fn basic(login: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

/// Percent-encodes one path segment the way careful clients do (everything but unreserved).
pub fn enc(segment: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, SET).to_string()
}

/// `/dav/school/pupil/<rel>`; `rel` is used as given (encode it first).
pub fn dav(rel: &str) -> String {
    format!("/dav/{TENANT}/{USER}/{rel}")
}

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The `<D:href>` values of a multistatus body, in order.
    pub fn hrefs(&self) -> Vec<String> {
        let t = self.text();
        let mut out = Vec::new();
        let mut rest = t.as_str();
        while let Some(i) = rest.find("href>") {
            let after = &rest[i + 5..];
            // Only opening tags: the character before "href>" is ':' or '<' and not "</".
            let opening = !rest[..i].ends_with("</D:") && !rest[..i].ends_with("</");
            if opening {
                if let Some(end) = after.find('<') {
                    out.push(after[..end].to_string());
                }
            }
            rest = after;
        }
        out
    }
}

/// Parses one complete HTTP/1.1 response (read to EOF); decodes a chunked body.
pub fn parse_reply(bytes: &[u8]) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw = &bytes[split + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
}

/// Writes `request` to `stream`, reads to EOF and parses the answer.
pub fn exchange<S: Read + Write>(stream: &mut S, request: &[u8]) -> std::io::Result<Reply> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        // rustls reports a peer that closes without close_notify; what came is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(parse_reply(&out))
}

/// Builds the bytes of one request with `Connection: close`.
pub fn build_request(
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let mut has_len = false;
    for (n, v) in headers {
        has_len |=
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding");
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || method == "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A blocking HTTP/1.1 client for one server: one connection per request.
#[derive(Clone)]
pub struct Http {
    pub port: u16,
    /// `Authorization` header value.
    pub auth: Option<String>,
}

impl Http {
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let req = build_request(method, path, self.auth.as_deref(), headers, body);
        self.send_raw(&req)
    }

    /// Sends bytes as they are (for hostile request lines).
    pub fn send_raw(&self, req: &[u8]) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        exchange(&mut s, req).expect("HTTP exchange")
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Reply {
        self.send("PUT", path, &[], body)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, &[], b"")
    }

    pub fn mkcol(&self, path: &str) -> Reply {
        self.send("MKCOL", path, &[], b"")
    }

    /// PROPFIND allprop with this Depth.
    pub fn propfind(&self, path: &str, depth: &str) -> Reply {
        self.send("PROPFIND", path, &[("Depth", depth)], b"")
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so tests need no `rand` and can be
/// reproduced from the seed.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
