//! The capacity model: hardware for a school population from measured figures (docs/capacity.md).
use anyhow::{Context, Result};
use serde::Serialize;

use super::measure::Figures;

/// Pupil quota (Bavaria's school cloud, ByCS Drive), bytes.
pub const PUPIL_QUOTA: f64 = 2e9;
/// Teacher quota (Bavaria's school cloud), bytes.
pub const TEACHER_QUOTA: f64 = 100e9;
/// Share of the quota used on average (an assumption: docs/capacity.md says why).
pub const PUPIL_USE: f64 = 0.1;
pub const TEACHER_USE: f64 = 0.1;
/// Files per user assumed when not given.
pub const FILES_PER_USER: f64 = 500.0;
/// Headroom kept on every resource (plan for this share of the capacity).
pub const HEADROOM: f64 = 0.6;
/// Memory of one server (a common size), bytes, to split the RAM over servers.
pub const SERVER_RAM: f64 = 64e9;
/// Cores of one server (a common size), to split the CPU over servers.
pub const SERVER_CORES: f64 = 32.0;
/// The 08:00 curve (the loadtest's login-storm defaults, docs/loadtest.md): every user logs in
/// once in a window of this many seconds, 90 % in a normal bump of this spread (share of the
/// window) around 08:00, 10 % evenly over the window.
pub const LOGIN_WINDOW_S: f64 = 3600.0;
pub const LOGIN_SPREAD: f64 = 0.1;
pub const LOGIN_BASELINE_SHARE: f64 = 0.1;
/// Share of 08:00 logins that verify a password with argon2id (WebDAV Basic without a cached
/// credential); the rest are OIDC/JWT or app-token logins that hash nothing
/// (the loadtest's default mix, docs/loadtest.md).
pub const PASSWORD_LOGIN_SHARE: f64 = 0.1;
/// Share of requests sent on a new connection, and of those that resume TLS (the realistic
/// churn of docs/benchmarks.md, "Login storm over TLS with churn").
pub const CHURN: f64 = 0.5;
pub const RESUMPTION: f64 = 0.8;
/// A sync client's poll interval during the school day (the loadtest's default), seconds.
pub const POLL_INTERVAL_S: f64 = 60.0;
/// Share of pupils at one exam deadline, and share of their uploads in the last minute.
pub const EXAM_PUPIL_SHARE: f64 = 0.05;
pub const EXAM_LAST_MINUTE_SHARE: f64 = 0.8;
/// Every byte is scrubbed once in this period, seconds (a week).
pub const SCRUB_PERIOD_S: f64 = 7.0 * 86400.0;

/// Figures the model uses that `measure` does not measure itself: each with its value, unit and
/// where it was measured.
pub const REFERENCE: &[(&str, f64, &str, &str)] = &[
    (
        "tls_full_handshake_s",
        301.8e-6,
        "s/handshake/core",
        "docs/benchmarks.md, TLS handshakes and churn: skab, full handshakes, real sockets (worse round)",
    ),
    (
        "tls_resumed_handshake_s",
        247.5e-6,
        "s/handshake/core",
        "docs/benchmarks.md, TLS handshakes and churn: skab, resumed handshakes, real sockets (worse round)",
    ),
    (
        "argon2_verify_s_docs",
        0.040,
        "s/verification/core",
        "docs/auth.md, Passwords: one argon2id verification (m = 19 MiB, t = 2) ~40 ms of one core",
    ),
];

#[derive(Debug, Serialize)]
pub struct Line {
    pub what: String,
    pub value: f64,
    pub unit: String,
    /// The measured figure (a key of the capacity.json point, or of `REFERENCE`) it rests on.
    pub rests_on: String,
    /// That figure's value.
    pub figure: f64,
    /// Where that figure comes from: `capacity.json` or a document of this repository.
    pub source: String,
    /// How the value is computed.
    pub how: String,
}

pub struct Input {
    pub pupils: f64,
    pub teachers: f64,
    pub files_per_user: f64,
    pub mean_file_bytes: Option<f64>,
    pub peak_login_per_s: Option<f64>,
    pub exam_uploads_per_min: Option<f64>,
    pub password_login_share: f64,
}

/// What the plan assumed (given or from the school profile).
#[derive(Debug, Serialize)]
pub struct Assumed {
    pub users: f64,
    pub entries: f64,
    pub logical_bytes: f64,
    pub peak_login_per_s: f64,
    pub exam_uploads_per_min: f64,
    pub password_login_share: f64,
    pub measured_at_users: f64,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub assumed: Assumed,
    pub lines: Vec<Line>,
}

/// Share of all users logging in during the busiest second of the 08:00 curve.
pub fn peak_login_share_per_s() -> f64 {
    let sd = LOGIN_SPREAD * LOGIN_WINDOW_S;
    (1.0 - LOGIN_BASELINE_SHARE) / (sd * (2.0 * std::f64::consts::PI).sqrt())
        + LOGIN_BASELINE_SHARE / LOGIN_WINDOW_S
}

fn fig(f: &Figures, k: &str) -> Result<f64> {
    Ok(f.get(k)
        .with_context(|| format!("capacity.json lacks {k} (measure it again with this version)"))?
        .value)
}

fn reference(k: &str) -> (f64, &'static str) {
    let r = REFERENCE
        .iter()
        .find(|r| r.0 == k)
        .expect("reference figures are listed");
    (r.1, r.3)
}

/// Memory per entry: the slope of resident memory over entries between the two largest points
/// (the fixed cost of the process cancels out), or the single point's ratio.
pub fn rss_per_entry(points: &[Figures]) -> Result<(f64, &'static str)> {
    let n = points.len();
    anyhow::ensure!(n > 0, "no measured points");
    if n >= 2 {
        let (a, b) = (&points[n - 2], &points[n - 1]);
        let de = fig(b, "entries")? - fig(a, "entries")?;
        let dr = fig(b, "rss_after_open_bytes")? - fig(a, "rss_after_open_bytes")?;
        if de > 0.0 && dr > 0.0 {
            return Ok((dr / de, "rss_after_open_bytes"));
        }
    }
    Ok((
        fig(&points[n - 1], "rss_per_entry_bytes")?,
        "rss_per_entry_bytes",
    ))
}

/// Plans from the largest measured point (memory from the slope between the two largest).
pub fn plan(i: &Input, points: &[Figures]) -> Result<Plan> {
    let (per_entry, per_entry_from) = rss_per_entry(points)?;
    let f = points.last().context("no measured points")?;
    let users = i.pupils + i.teachers;
    anyhow::ensure!(users > 0.0, "--pupils plus --teachers must be more than 0");
    let entries = users * i.files_per_user;
    let logical = match i.mean_file_bytes {
        Some(b) => entries * b,
        None => i.pupils * PUPIL_QUOTA * PUPIL_USE + i.teachers * TEACHER_QUOTA * TEACHER_USE,
    };
    let peak = i
        .peak_login_per_s
        .unwrap_or(users * peak_login_share_per_s());
    let exam_per_min = i
        .exam_uploads_per_min
        .unwrap_or(i.pupils * EXAM_PUPIL_SHARE * EXAM_LAST_MINUTE_SHARE);
    let exam_per_s = exam_per_min / 60.0;
    let mut out = Vec::new();
    let measured = |k: &str| -> Result<(f64, String, String)> {
        Ok((fig(f, k)?, k.to_string(), "capacity.json".to_string()))
    };
    let mut line = |what: &str, value: f64, unit: &str, on: (f64, String, String), how: &str| {
        out.push(Line {
            what: what.into(),
            value,
            unit: unit.into(),
            rests_on: on.1,
            figure: on.0,
            source: on.2,
            how: how.into(),
        })
    };
    let ram = entries * per_entry / HEADROOM;
    line(
        "index RAM",
        ram,
        "bytes",
        (
            per_entry,
            per_entry_from.to_string(),
            "capacity.json".into(),
        ),
        "entries x RAM per entry (slope between the two largest sizes) / headroom",
    );
    let disk = logical * fig(f, "pack_per_logical")? / HEADROOM;
    line(
        "disk space",
        disk,
        "bytes",
        measured("pack_per_logical")?,
        "logical bytes x pack bytes per logical byte / headroom",
    );
    // Each server holds its share of the data (RAM decides the count; see below).
    let per_server = (ram / SERVER_RAM).ceil().max(1.0);
    let rec = entries / per_server / (fig(f, "entries")? / fig(f, "recovery_s")?.max(1e-9));
    line(
        "restart recovery of one server",
        rec,
        "s",
        measured("recovery_s")?,
        "entries per RAM-bound server / (measured entries per second of recovery)",
    );
    let stored = logical * fig(f, "stored_per_logical")?;
    let scrub = stored / per_server / fig(f, "scrub_bytes_per_s")?.max(1.0);
    line(
        "full scrub of one server",
        scrub,
        "s",
        measured("scrub_bytes_per_s")?,
        "stored bytes per RAM-bound server / scrub bytes per second (one scrub at a time)",
    );
    line(
        "disk read bandwidth, weekly scrub",
        stored / SCRUB_PERIOD_S / HEADROOM,
        "bytes/s",
        measured("stored_per_logical")?,
        "stored bytes / one week / headroom",
    );
    let argon2 = match f.get("argon2_verify_s") {
        Some(x) => (
            x.value,
            "argon2_verify_s".to_string(),
            "capacity.json".to_string(),
        ),
        None => {
            let (v, s) = reference("argon2_verify_s_docs");
            (v, "argon2_verify_s_docs".into(), s.into())
        }
    };
    let hashing = peak * i.password_login_share * argon2.0;
    line(
        "cores at 08:00: password hashing",
        hashing,
        "cores",
        argon2.clone(),
        "peak logins/s x share verifying a password x argon2id seconds per verification",
    );
    let req_per_session = fig(f, "login_storm_requests_per_session")?;
    let (full, full_src) = reference("tls_full_handshake_s");
    let (resumed, _) = reference("tls_resumed_handshake_s");
    let tls_per_session =
        full + req_per_session * CHURN * (RESUMPTION * resumed + (1.0 - RESUMPTION) * full);
    let tls = peak * tls_per_session;
    let tls_on = (
        full,
        "tls_full_handshake_s".to_string(),
        full_src.to_string(),
    );
    line(
        "cores at 08:00: TLS handshakes",
        tls,
        "cores",
        tls_on.clone(),
        "peak logins/s x (one full handshake + requests per session x churn 0.5 x (80 % resumed, 20 % full))",
    );
    let sessions = peak * fig(f, "login_storm_server_cpu_per_session_s")?;
    line(
        "cores at 08:00: WebDAV sessions (login listing, files, polling)",
        sessions,
        "cores",
        measured("login_storm_server_cpu_per_session_s")?,
        "peak logins/s x server CPU per 10-minute session measured in the login storm",
    );
    let polling = users / POLL_INTERVAL_S * fig(f, "login_storm_server_cpu_per_request_s")?;
    line(
        "cores all day: polling by every user's client",
        polling,
        "cores",
        measured("login_storm_server_cpu_per_request_s")?,
        "users / 60 s poll interval x server CPU per request of the login storm",
    );
    let exam = exam_per_s * fig(f, "exam_peak_server_cpu_per_upload_s")?;
    line(
        "cores at an exam deadline: uploads",
        exam,
        "cores",
        measured("exam_peak_server_cpu_per_upload_s")?,
        "uploads/s in the last minute x server CPU per upload of the exam peak",
    );
    // The busiest moment, and within it the largest part: the figure the cores rest on.
    let morning = [
        (hashing, argon2),
        (tls, tls_on.clone()),
        (sessions, measured("login_storm_server_cpu_per_session_s")?),
    ];
    let deadline = [
        (exam, measured("exam_peak_server_cpu_per_upload_s")?),
        (polling, measured("login_storm_server_cpu_per_request_s")?),
        (exam_per_s * full, tls_on),
    ];
    let sum = |m: &[(f64, (f64, String, String))]| m.iter().map(|x| x.0).sum::<f64>();
    let busiest = if sum(&morning) >= sum(&deadline) {
        morning
    } else {
        deadline
    };
    let cores = sum(&busiest) / HEADROOM;
    let cores_on = busiest
        .into_iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|x| x.1)
        .expect("three parts");
    line(
        "cores (busiest moment, with headroom)",
        cores,
        "cores",
        cores_on.clone(),
        "max(08:00: hashing + TLS + sessions, deadline: uploads + polling + one handshake per upload) / headroom",
    );
    let upload_bytes = exam_per_s * fig(f, "exam_peak_mean_upload_bytes")?;
    line(
        "network in at an exam deadline",
        upload_bytes / HEADROOM,
        "bytes/s",
        measured("exam_peak_mean_upload_bytes")?,
        "uploads/s x mean upload bytes / headroom",
    );
    line(
        "disk write bandwidth at an exam deadline (after dedup)",
        upload_bytes * fig(f, "exam_peak_stored_per_logical")? / HEADROOM,
        "bytes/s",
        measured("exam_peak_stored_per_logical")?,
        "uploads/s x mean upload bytes x stored bytes per uploaded byte / headroom",
    );
    let ram_servers = (ram / SERVER_RAM).ceil().max(1.0);
    line(
        "servers (RAM-bound, 64 GB each)",
        ram_servers,
        "servers",
        (
            per_entry,
            per_entry_from.to_string(),
            "capacity.json".into(),
        ),
        "index RAM / 64 GB",
    );
    let core_servers = (cores / SERVER_CORES).ceil().max(1.0);
    line(
        "servers (CPU-bound, 32 cores each)",
        core_servers,
        "servers",
        cores_on.clone(),
        "cores / 32",
    );
    let servers = ram_servers.max(core_servers);
    let bound = if ram_servers >= core_servers {
        (
            per_entry,
            per_entry_from.to_string(),
            "capacity.json".to_string(),
        )
    } else {
        cores_on
    };
    line(
        "servers",
        servers,
        "servers",
        bound.clone(),
        "max(RAM-bound, CPU-bound)",
    );
    line(
        "servers with N+1 fail-over",
        servers + 1.0,
        "servers",
        bound,
        "servers + 1: any one may fail at 08:00",
    );
    Ok(Plan {
        assumed: Assumed {
            users,
            entries,
            logical_bytes: logical,
            peak_login_per_s: peak,
            exam_uploads_per_min: exam_per_min,
            password_login_share: i.password_login_share,
            measured_at_users: fig(f, "users")?,
        },
        lines: out,
    })
}
