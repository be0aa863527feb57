//! The server step of `measure`: imports the built users into the data dir, starts `skab serve`
//! on it (loopback), runs the loadtest's login-storm and exam-peak at a short scaled profile and
//! turns their result.json into figures (p99, server CPU per session and per upload, dedup of
//! the uploads).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::measure::{put, Figures};
use super::population::user_key;

/// JWT secret shared by the server and the load generator for this run (loopback only).
const JWT_SECRET: &str = "skab-capacity-loopback-secret-0123456789";
/// How long the server may take to answer /healthz after start (recovery of a large store).
pub const START_TIMEOUT: Duration = Duration::from_secs(600);
/// Extra wall seconds a scenario may take beyond its scaled profile before it is cut.
pub const SCENARIO_SLACK_S: f64 = 120.0;

/// What the server step runs.
#[derive(Debug, Clone)]
pub struct Opts {
    pub skab: PathBuf,
    pub loadtest: PathBuf,
    /// Sessions of the login storm and pupils of the exam peak (at most the users built).
    pub sessions: u64,
    /// Scenario seconds of each arrival window, and scenario seconds per wall second.
    pub scenario_s: f64,
    pub time_scale: f64,
    /// Scenario seconds a login-storm session lives (polling its home every 60).
    pub session_s: f64,
}

/// Runs `cmd`, waiting for it while `stop` stays false; on stop the child is killed and the step
/// reports it. Returns the output (stdout and stderr were sent to `log`).
/// `tick` is called every 100 ms while the child runs (to show its progress).
pub fn run_child(
    mut cmd: Command,
    log: &Path,
    stop: &AtomicBool,
    tick: &dyn Fn(),
) -> Result<std::process::ExitStatus> {
    let f = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut child = cmd
        .stdout(f.try_clone()?)
        .stderr(f)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("start {cmd:?}"))?;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if stop.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        tick();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A started server, stopped (SIGTERM, then kill) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// The users `from..to` as a `skab user import` CSV, all with one password (hashed once).
fn write_import(path: &Path, from: u64, to: u64, tenants: u64, phc: &str) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "user,tenant,password")?;
    for u in from..to {
        let k = user_key(u, tenants)?;
        writeln!(w, "{},{},\"{phc}\"", k.user(), k.tenant())?;
    }
    w.flush()?;
    Ok(())
}

/// `sessions` users spread evenly over `0..users`, and over the tenants, as the loadtest's
/// users.csv (session `i` takes a user of the `i`-th stretch of `users / sessions`, offset so
/// that consecutive sessions fall in different tenants).
fn write_sample(
    path: &Path,
    users: u64,
    sessions: u64,
    tenants: u64,
    password: &str,
) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "user,tenant,password")?;
    let step = (users / sessions.max(1)).max(1);
    for i in 0..sessions.min(users) {
        let k = user_key(i * step + (i % tenants).min(step - 1), tenants)?;
        writeln!(w, "{},{},{password}", k.user(), k.tenant())?;
    }
    w.flush()?;
    Ok(())
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut c = v;
    for k in path {
        match c.get(k) {
            Some(x) => c = x,
            None => return 0.0,
        }
    }
    c.as_f64().unwrap_or(0.0)
}

/// Imports users `from..to` (those built since the last call) into the server's user database
/// under `data`.
pub fn import_users(
    skab: &Path,
    data: &Path,
    work: &Path,
    from: u64,
    to: u64,
    tenants: u64,
    stop: &AtomicBool,
) -> Result<()> {
    let phc = hash(PASSWORD)?;
    let csv = work.join(format!("import-{to}.csv"));
    write_import(&csv, from, to, tenants, &phc)?;
    let mut c = Command::new(skab);
    c.args(["user", "import", "--data-dir"])
        .arg(data)
        .arg("--csv")
        .arg(&csv);
    let log = work.join(format!("import-{to}.log"));
    let st = run_child(c, &log, stop, &|| {})?;
    let _ = std::fs::remove_file(&csv);
    if !st.success() {
        bail!(
            "skab user import failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Ok(())
}

/// The password every built user shares (loopback test data only).
const PASSWORD: &str = "capacity-pupil-password";

fn hash(password: &str) -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let params =
        argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    Ok(
        a.hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string(),
    )
}

/// Starts the server on `data`, runs login-storm then exam-peak, and returns their figures.
/// `progress` gets (seconds done, seconds expected) of the scenario running.
pub fn run(
    o: &Opts,
    data: &Path,
    work: &Path,
    users: u64,
    tenants: u64,
    stop: &AtomicBool,
    progress: &dyn Fn(&str, f64, f64),
) -> Result<Figures> {
    let mut f = Figures::new();
    let sessions = o.sessions.min(users).max(1);
    let users_csv = work.join("users.csv");
    write_sample(&users_csv, users, sessions, tenants, PASSWORD)?;
    std::fs::write(
        work.join("server.toml"),
        format!("[[auth.jwt]]\nissuer = \"skab-loadtest\"\naudience = \"skab\"\nalgorithm = \"HS256\"\nsecret = \"{JWT_SECRET}\"\n"),
    )?;
    // JWT logins only: password hashing and TLS are modelled from their own measurements
    // (docs/capacity.md), so these figures are the WebDAV work of a session.
    std::fs::write(
        work.join("lt.toml"),
        format!(
            "[target]\nhome = \"/dav/{{tenant}}/{{user}}/docs/\"\n\
             [auth]\njwt_secret = \"{JWT_SECRET}\"\njwt_share = 1.0\ntoken_share = 0.0\nbasic_share = 0.0\n\
             [login_storm]\nsession_s = {}\n",
            o.session_s
        ),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(work.join("server.log"))?;
    let started = Instant::now();
    let server = Server(
        Command::new(&o.skab)
            .arg("serve")
            .arg("--config")
            .arg(work.join("server.toml"))
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", o.skab.display()))?,
    );
    let pid = server.0.id();
    while !healthy(port) {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "skab serve did not answer /healthz within {START_TIMEOUT:?}: see {}",
                work.join("server.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    put(
        &mut f,
        "server_start_s",
        started.elapsed().as_secs_f64(),
        "s",
    );
    put(&mut f, "loadtest_sessions", sessions as f64, "sessions");
    for scenario in ["login-storm", "exam-peak"] {
        let out = work.join(scenario);
        let _ = std::fs::remove_dir_all(&out);
        // Arrivals over the window, then the last sessions live their (scaled) lifetime.
        let expect = (o.scenario_s + o.session_s) / o.time_scale;
        let mut c = Command::new(&o.loadtest);
        c.args([
            "run",
            scenario,
            "--target",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg("--users")
        .arg(&users_csv)
        .arg("--config")
        .arg(work.join("lt.toml"))
        .args(["--sessions", &sessions.to_string()])
        .args(["--duration", &o.scenario_s.to_string()])
        .args(["--time-scale", &o.time_scale.to_string()])
        .args(["--server-pid", &pid.to_string()])
        .args([
            "--max-wall",
            &((expect + SCENARIO_SLACK_S) as u64).to_string(),
        ])
        .arg("--quiet")
        .arg("--out")
        .arg(&out);
        let log = work.join(format!("{scenario}.log"));
        let t = Instant::now();
        let waiter = std::thread::scope(|s| {
            let h = s.spawn(|| run_child(c, &log, stop, &|| {}));
            while !h.is_finished() {
                progress(scenario, t.elapsed().as_secs_f64(), expect);
                std::thread::sleep(Duration::from_millis(200));
            }
            h.join()
        });
        let st = waiter.map_err(|_| anyhow::anyhow!("loadtest waiter panicked"))??;
        // 0: ran; 3: ran but a threshold (none are set here) or the wall bound was missed.
        if !matches!(st.code(), Some(0) | Some(3)) {
            bail!(
                "skab-loadtest {scenario} failed ({st}): see {}",
                log.display()
            );
        }
        let r: Value = serde_json::from_slice(
            &std::fs::read(out.join("result.json"))
                .with_context(|| format!("{scenario}: no result.json"))?,
        )?;
        let p = scenario.replace('-', "_");
        let us = 1e-6;
        let cpu = num(&r, &["server", "cpu_s"]);
        let requests = num(&r, &["requests", "total"]);
        put(
            &mut f,
            &format!("{p}_p99_s"),
            num(&r, &["latency_us", "p99"]) * us,
            "s",
        );
        put(
            &mut f,
            &format!("{p}_p50_s"),
            num(&r, &["latency_us", "p50"]) * us,
            "s",
        );
        put(&mut f, &format!("{p}_requests"), requests, "requests");
        put(
            &mut f,
            &format!("{p}_errors"),
            num(&r, &["requests", "errors"]),
            "requests",
        );
        put(
            &mut f,
            &format!("{p}_requests_per_s"),
            num(&r, &["requests", "per_s"]),
            "requests/s",
        );
        put(&mut f, &format!("{p}_server_cpu_s"), cpu, "s");
        put(
            &mut f,
            &format!("{p}_server_cpu_per_request_s"),
            cpu / requests.max(1.0),
            "s/request",
        );
        put(
            &mut f,
            &format!("{p}_server_peak_rss_bytes"),
            num(&r, &["server", "peak_rss_bytes"]),
            "bytes",
        );
        put(
            &mut f,
            &format!("{p}_aborted"),
            if r["aborted"].as_bool() == Some(true) {
                1.0
            } else {
                0.0
            },
            "bool",
        );
        if scenario == "login-storm" {
            let done = num(&r, &["sessions", "done"]);
            put(&mut f, "login_storm_sessions_done", done, "sessions");
            put(
                &mut f,
                "login_storm_server_cpu_per_session_s",
                cpu / done.max(1.0),
                "s/session",
            );
            put(
                &mut f,
                "login_storm_requests_per_session",
                requests / done.max(1.0),
                "requests/session",
            );
            put(
                &mut f,
                "login_storm_login_p99_s",
                num(&r, &["ops", "login.jwt", "latency_us", "p99"]) * us,
                "s",
            );
            put(
                &mut f,
                "login_storm_poll_p99_s",
                num(&r, &["ops", "poll", "latency_us", "p99"]) * us,
                "s",
            );
        } else {
            let uploads = num(&r, &["ops", "upload", "ok"]);
            let m = &r["server_metrics"];
            let d = |k: &str| {
                m.get(k)
                    .and_then(|a| Some(a.get(1)?.as_f64()? - a.get(0)?.as_f64()?))
                    .unwrap_or(0.0)
            };
            let (logical, stored) = (d("skab_logical_bytes"), d("skab_stored_bytes"));
            put(&mut f, "exam_peak_uploads", uploads, "uploads");
            put(
                &mut f,
                "exam_peak_upload_p99_s",
                num(&r, &["ops", "upload", "latency_us", "p99"]) * us,
                "s",
            );
            put(
                &mut f,
                "exam_peak_server_cpu_per_upload_s",
                cpu / uploads.max(1.0),
                "s/upload",
            );
            put(
                &mut f,
                "exam_peak_mean_upload_bytes",
                logical / uploads.max(1.0),
                "bytes",
            );
            put(
                &mut f,
                "exam_peak_stored_per_logical",
                stored / logical.max(1.0),
                "ratio",
            );
        }
    }
    drop(server);
    Ok(f)
}
