//! Test fixture: the real `skab` binary on a free loopback port over a temporary data dir,
//! with one user created through the CLI before it starts. Killed when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TENANT: &str = "school";
pub const USER: &str = "pupil";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub fn skab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skab")
}

/// Runs `skab args...` with `stdin`, returning (status ok, stdout+stderr).
pub fn skab(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(skab_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skab");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a server with the default user `pupil@school`.
    pub fn start() -> Server {
        Self::start_with(&[(TENANT, USER, PASSWORD)], &[])
    }

    /// Starts a server with these users and extra `serve` arguments.
    pub fn start_with(users: &[(&str, &str, &str)], extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        for (t, u, p) in users {
            let (ok, out) = skab(
                &[
                    "user",
                    "add",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--tenant",
                    t,
                    "--user",
                    u,
                    "--password-stdin",
                ],
                Some(&format!("{p}\n")),
            );
            assert!(ok, "user add failed: {out}");
        }
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ];
        args.extend_from_slice(extra);
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(skab_bin())
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start skab serve");
        let server = Server { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) =
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
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
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

    /// Stops the server with SIGTERM (graceful) and waits; the data dir stays.
    pub fn stop(&mut self) -> String {
        unsafe_kill(self.child.id(), 15);
        let _ = self.child.wait();
        self.log()
    }
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
