//! Runs one scenario end to end: builds the context, shows live progress, bounds the run in
//! time, then writes result.json and report.html, prints the summary and judges thresholds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::client::{check_target, Authn, Http};
use crate::config::Config;
use crate::record::{Measured, Recorder};
use crate::scenarios::{self, Ctx};
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    LoginStorm,
    ExamPeak,
    SchoolDay,
    Sync,
    Seed,
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Scenario> {
        Ok(match s {
            "login-storm" => Scenario::LoginStorm,
            "exam-peak" => Scenario::ExamPeak,
            "school-day" => Scenario::SchoolDay,
            "sync" => Scenario::Sync,
            "seed" => Scenario::Seed,
            _ => bail!("unknown scenario {s:?}: login-storm, exam-peak, school-day, sync or seed"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Scenario::LoginStorm => "login-storm",
            Scenario::ExamPeak => "exam-peak",
            Scenario::SchoolDay => "school-day",
            Scenario::Sync => "sync",
            Scenario::Seed => "seed",
        }
    }
}

/// Everything a run needs besides the config file.
pub struct RunArgs {
    pub scenario: Scenario,
    /// The servers, at least one (`client::parse_targets`); sessions go round-robin.
    pub targets: Vec<http::Uri>,
    pub users: PathBuf,
    pub cfg: Config,
    pub sessions: Option<u64>,
    pub duration: Option<f64>,
    pub time_scale: f64,
    pub out: Option<PathBuf>,
    pub thresholds: Vec<String>,
    pub allow_remote: bool,
    pub server_pid: Option<u32>,
    pub max_wall_s: Option<u64>,
    pub files_per_user: Option<u32>,
    pub quiet: bool,
    pub seed: u64,
    /// Runtime threads; 0: one per CPU, 1: a single event loop.
    pub threads: usize,
}

#[derive(Serialize)]
struct Sessions {
    started: u64,
    done: u64,
}

#[derive(Serialize)]
struct Connections {
    max_allowed: usize,
    source_addrs: usize,
    opened: u64,
    peak_open: u64,
    /// TLS handshakes (`https://` targets): full, resumed from a ticket, failed.
    tls_full: u64,
    tls_resumed: u64,
    tls_failed: u64,
}

#[derive(Serialize)]
struct Generator {
    cpu_s: f64,
    /// CPU seconds per wall second (1.0 = one core busy).
    cpu_cores_busy: f64,
    cpus: usize,
    peak_rss_bytes: u64,
    late_starts: u64,
    /// True when starts fell behind schedule (more than 0.1 % late by 50 ms or more).
    behind_schedule: bool,
}

#[derive(Serialize)]
struct Server {
    pid: u32,
    cpu_s: f64,
    cpu_cores_busy: f64,
    peak_rss_bytes: u64,
}

/// What one target answered (HTTP level: statuses as they came, whatever the op expected).
#[derive(Serialize)]
struct TargetOut {
    url: String,
    requests: u64,
    /// Answers below 400.
    ok: u64,
    status_4xx: u64,
    status_5xx: u64,
    /// No answer: connect errors, timeouts, broken connections.
    failures: u64,
    /// Redirects (307/308) followed (`--follow-redirects`).
    redirects: u64,
    /// Send to end of body, per request (not from the scheduled start).
    latency_us: crate::record::Latency,
}

#[derive(Serialize)]
struct RunResult {
    schema: &'static str,
    scenario: &'static str,
    /// The targets' base URLs, comma-separated (one for a single server).
    target: String,
    /// Per target, in `--target` order (a session of index i went to target i % n).
    targets: Vec<TargetOut>,
    started_unix_s: u64,
    wall_s: f64,
    time_scale: f64,
    /// True when the run hit its wall-clock bound and was cut short.
    aborted: bool,
    sessions: Sessions,
    #[serde(flatten)]
    measured: Measured,
    auth: BTreeMap<&'static str, u64>,
    connections: Connections,
    generator: Generator,
    server: Option<Server>,
    server_metrics: Option<BTreeMap<String, [f64; 2]>>,
    login_storm: Option<scenarios::login_storm::LoginStormOut>,
    exam: Option<scenarios::exam_peak::ExamOut>,
    school_day: Option<scenarios::school_day::SchoolDayOut>,
    sync: Option<scenarios::sync::SyncOut>,
    seed: Option<scenarios::seed::SeedOut>,
    config: Config,
}

enum Out {
    Login(scenarios::login_storm::LoginStormOut),
    Exam(scenarios::exam_peak::ExamOut),
    School(scenarios::school_day::SchoolDayOut),
    Sync(scenarios::sync::SyncOut),
    Seed(scenarios::seed::SeedOut),
}

/// Runs the scenario; returns the process exit code (0 pass, 3 a threshold missed).
pub fn run(mut a: RunArgs) -> Result<i32> {
    if !(a.time_scale > 0.0 && a.time_scale.is_finite()) {
        bail!("--time-scale must be > 0");
    }
    if let Some(n) = a.sessions {
        if n == 0 || n > crate::limits::SESSIONS_MAX {
            bail!("--sessions must be 1..={}", crate::limits::SESSIONS_MAX);
        }
        a.cfg.login_storm.sessions = n;
        a.cfg.exam_peak.pupils = n;
        if a.scenario == Scenario::Sync {
            if n > crate::limits::SYNC_USERS_MAX {
                bail!(
                    "--sessions (sync users) must be 1..={}",
                    crate::limits::SYNC_USERS_MAX
                );
            }
            a.cfg.sync.users = n;
        }
    }
    if let Some(d) = a.duration {
        if d.is_nan() || d <= 0.0 {
            bail!("--duration must be > 0");
        }
        a.cfg.login_storm.window_s = d;
        a.cfg.exam_peak.window_s = d;
        a.cfg.exam_peak.last_s = a.cfg.exam_peak.last_s.min(d);
        a.cfg.school_day.duration_s = d;
        if a.scenario == Scenario::Sync {
            if d * a.cfg.sync.changes_per_s > crate::limits::SYNC_CHANGES_MAX as f64 {
                bail!(
                    "--duration x sync.changes_per_s must be <= {}",
                    crate::limits::SYNC_CHANGES_MAX
                );
            }
            a.cfg.sync.duration_s = d;
        }
    }
    if let Some(k) = a.files_per_user {
        a.cfg.seed.files_per_user = k;
    }
    let mut thresholds = Vec::new();
    for t in a.cfg.thresholds.iter().chain(a.thresholds.iter()) {
        thresholds.push(crate::threshold::parse(t)?);
    }
    let users = crate::users::load(&a.users)?;
    let rt = match a.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("start tokio")?;
    rt.block_on(async move {
        for t in &a.targets {
            check_target(t, a.allow_remote).await?;
        }
        let c = &a.cfg;
        let schedule_s = match a.scenario {
            Scenario::LoginStorm => c.login_storm.window_s + c.login_storm.session_s,
            Scenario::ExamPeak => c.exam_peak.window_s,
            Scenario::SchoolDay => c.school_day.duration_s,
            Scenario::Sync => c.sync.duration_s + c.sync.bound_s + 2.0 * c.sync.poll_every_s,
            Scenario::Seed => 0.0,
        } / a.time_scale;
        let max_wall = a
            .max_wall_s
            .unwrap_or(
                (schedule_s as u64)
                    .saturating_add(crate::limits::DRAIN_GRACE_S)
                    .saturating_add(if a.scenario == Scenario::Seed { 3600 } else { 600 }),
            )
            .min(crate::limits::RUN_WALL_MAX_S);
        let start = Instant::now();
        let deadline = if a.scenario == Scenario::Seed {
            start + Duration::from_secs(max_wall)
        } else if a.scenario == Scenario::Sync {
            // Setup (subfolders, every client's first listing) comes before the schedule.
            start
                + Duration::from_secs_f64(schedule_s * 1.02 + 1.0)
                + Duration::from_secs(crate::limits::SYNC_SETUP_S)
        } else {
            start + Duration::from_secs_f64(schedule_s * 1.02 + 1.0)
        };
        let http = Http::new(&a.targets, &c.connections)?;
        let run_tag = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let metrics_before = scrape_metrics(&http).await;
        let server_before = a.server_pid.and_then(sys::proc_cpu_s);
        let (cpu0, _) = sys::self_usage();
        let ctx = Arc::new(Ctx {
            http,
            rec: Recorder::new(Duration::from_secs_f64(schedule_s.max(1.0))),
            authn: Authn::new(&c.auth),
            users,
            cfg: a.cfg.clone(),
            time_scale: a.time_scale,
            deadline,
            stopping: AtomicBool::new(false),
            run_tag,
            seed: a.seed,
            auth_counts: parking_lot::Mutex::new(BTreeMap::new()),
            polling: scenarios::poll::PollStats::default(),
        });
        let progress = tokio::spawn(progress(ctx.clone(), a.quiet));
        let work = {
            let ctx = ctx.clone();
            let files = ctx.cfg.seed.files_per_user;
            async move {
                match a.scenario {
                    Scenario::LoginStorm => Out::Login(
                        scenarios::login_storm::run(ctx.clone(), ctx.cfg.login_storm.sessions)
                            .await,
                    ),
                    Scenario::ExamPeak => Out::Exam(
                        scenarios::exam_peak::run(ctx.clone(), ctx.cfg.exam_peak.pupils).await,
                    ),
                    Scenario::SchoolDay => {
                        Out::School(scenarios::school_day::run(ctx.clone(), files).await)
                    }
                    Scenario::Sync => Out::Sync(scenarios::sync::run(ctx.clone()).await),
                    Scenario::Seed => Out::Seed(scenarios::seed::run(ctx.clone(), files).await),
                }
            }
        };
        let out = tokio::time::timeout(Duration::from_secs(max_wall), work).await;
        ctx.stopping.store(true, Ordering::Relaxed);
        progress.abort();
        let aborted = out.is_err();
        if aborted {
            eprintln!("skab-loadtest: run cut off at its wall-clock bound of {max_wall} s");
        }
        let wall_s = start.elapsed().as_secs_f64();
        let (cpu1, rss) = sys::self_usage();
        let measured = ctx.rec.snapshot(wall_s);
        let metrics_after = scrape_metrics(&ctx.http).await;
        let server = a.server_pid.and_then(|pid| {
            let Some(after) = sys::proc_cpu_s(pid) else {
                eprintln!("skab-loadtest: server process {pid} is gone (it exited during the run)");
                return None;
            };
            let cpu = after - server_before.unwrap_or(after);
            Some(Server {
                pid,
                cpu_s: cpu,
                cpu_cores_busy: cpu / wall_s.max(1e-9),
                peak_rss_bytes: sys::proc_rss(pid).map(|r| r.0).unwrap_or(0),
            })
        });
        let server_metrics = match (metrics_before, metrics_after) {
            (Some(b), Some(af)) => Some(
                af.iter()
                    .map(|(k, v)| (k.clone(), [b.get(k).copied().unwrap_or(0.0), *v]))
                    .collect(),
            ),
            _ => None,
        };
        let late = measured.late_starts;
        let started = ctx.rec.sessions_started.load(Ordering::Relaxed);
        let lag_total = measured.schedule_lag_us.count.max(1);
        let behind = late * 1000 > lag_total;
        let st = &ctx.http.stats;
        let mut result = RunResult {
            schema: "skab-loadtest/result/v1",
            scenario: a.scenario.name(),
            target: st_targets_joined(&ctx.http),
            targets: ctx
                .http
                .targets
                .iter()
                .map(|t| TargetOut {
                    url: t.url.clone(),
                    requests: t.stats.requests.load(Ordering::Relaxed),
                    ok: t.stats.ok.load(Ordering::Relaxed),
                    status_4xx: t.stats.status_4xx.load(Ordering::Relaxed),
                    status_5xx: t.stats.status_5xx.load(Ordering::Relaxed),
                    failures: t.stats.failures.load(Ordering::Relaxed),
                    redirects: t.stats.redirects.load(Ordering::Relaxed),
                    latency_us: crate::record::Latency::of(&t.stats.latency.lock()),
                })
                .collect(),
            started_unix_s: run_tag,
            wall_s,
            time_scale: a.time_scale,
            aborted,
            sessions: Sessions {
                started,
                done: ctx.rec.sessions_done.load(Ordering::Relaxed),
            },
            measured,
            auth: ctx.auth_counts.lock().clone(),
            connections: Connections {
                max_allowed: c.connections.max,
                source_addrs: c.connections.source_addrs,
                opened: st.opened.load(Ordering::Relaxed),
                peak_open: st.peak_open.load(Ordering::Relaxed),
                tls_full: st.tls_full.load(Ordering::Relaxed),
                tls_resumed: st.tls_resumed.load(Ordering::Relaxed),
                tls_failed: st.tls_failed.load(Ordering::Relaxed),
            },
            generator: Generator {
                cpu_s: cpu1 - cpu0,
                cpu_cores_busy: (cpu1 - cpu0) / wall_s.max(1e-9),
                cpus: sys::cpus(),
                peak_rss_bytes: rss,
                late_starts: late,
                behind_schedule: behind,
            },
            server,
            server_metrics,
            login_storm: None,
            exam: None,
            school_day: None,
            sync: None,
            seed: None,
            config: a.cfg.clone(),
        };
        match out {
            Ok(Out::Login(o)) => result.login_storm = Some(o),
            Ok(Out::Exam(o)) => result.exam = Some(o),
            Ok(Out::School(o)) => result.school_day = Some(o),
            Ok(Out::Sync(o)) => result.sync = Some(o),
            Ok(Out::Seed(o)) => result.seed = Some(o),
            Err(_) => {}
        }
        let mut value = serde_json::to_value(&result).context("encode result")?;
        let verdicts: Vec<_> = thresholds.iter().map(|t| t.judge(&value)).collect();
        // An acknowledged upload lost or corrupted fails the run whatever the thresholds say.
        let damaged = result
            .exam
            .as_ref()
            .is_some_and(|e| {
                e.lost > 0 || e.corrupted > 0 || e.receipts_bad > 0 || e.receipts_missing > 0
            });
        // So does a change that some client of its user did not see within the bound.
        let unsynced = result
            .sync
            .as_ref()
            .is_some_and(|s| s.book.late_changes > 0 || s.clients_ready < s.clients);
        let passed = !aborted && !damaged && !unsynced && verdicts.iter().all(|v| v.passed);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("thresholds".into(), serde_json::to_value(&verdicts)?);
            obj.insert("passed".into(), Value::Bool(passed));
        }
        if let Some(dir) = &a.out {
            write_out(dir, &value)?;
        }
        print_summary(&value);
        if behind {
            eprintln!(
                "WARNING: the generator fell behind its schedule ({late} starts were 50 ms or more late); \
                 latencies include that lag, but the offered load was lower than planned"
            );
        }
        for v in &verdicts {
            eprintln!(
                "threshold {}: {} (measured {})",
                v.expr,
                if v.passed { "pass" } else { "FAIL" },
                v.shown
            );
        }
        Ok(if passed { 0 } else { 3 })
    })
}

/// The targets' base URLs, comma-separated.
fn st_targets_joined(http: &Http) -> String {
    http.targets
        .iter()
        .map(|t| t.url.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn write_out(dir: &Path, value: &Value) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(value)?;
    std::fs::write(dir.join("result.json"), json).context("write result.json")?;
    std::fs::write(dir.join("report.html"), crate::report::render(value))
        .context("write report.html")?;
    Ok(())
}

/// skab's engine gauges from /metrics (absent on other servers: None).
async fn scrape_metrics(http: &Http) -> Option<BTreeMap<String, f64>> {
    let text = http.get_text("/metrics").await?;
    let mut m = BTreeMap::new();
    for line in text.lines() {
        for key in [
            "skab_logical_bytes",
            "skab_stored_bytes",
            "skab_pack_bytes",
            "skab_entries",
            "skab_spaces",
        ] {
            if let Some(rest) = line.strip_prefix(key) {
                if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
                    if rest.starts_with(' ') {
                        m.insert(key.to_string(), v);
                    }
                }
            }
        }
    }
    (!m.is_empty()).then_some(m)
}

async fn progress(ctx: Arc<Ctx>, quiet: bool) {
    let every = Duration::from_secs(if quiet { 10 } else { 1 });
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last_late = 0u64;
    let (mut last_cpu, _) = sys::self_usage();
    let mut last_t = Instant::now();
    loop {
        tick.tick().await;
        let (p99, n) = ctx.rec.take_window();
        let (cpu, _) = sys::self_usage();
        let dt = last_t.elapsed().as_secs_f64().max(1e-9);
        last_t = Instant::now();
        let late = ctx.rec.late_starts();
        eprintln!(
            "[{:>7.1}s] sessions {} started, {} live | {:.0} req/s | p99 {:.1} ms | errors {} | conns {} | gen cpu {:.0}%{}",
            ctx.rec.start.elapsed().as_secs_f64(),
            ctx.rec.sessions_started.load(Ordering::Relaxed),
            ctx.rec.sessions_live.load(Ordering::Relaxed),
            n as f64 / dt,
            p99 as f64 / 1000.0,
            ctx.rec.errors.load(Ordering::Relaxed),
            ctx.http.stats.open.load(Ordering::Relaxed),
            (cpu - last_cpu) / dt * 100.0,
            if late > last_late {
                format!(" | WARNING behind schedule: {} late starts", late - last_late)
            } else {
                String::new()
            }
        );
        last_late = late;
        last_cpu = cpu;
    }
}

fn print_summary(v: &Value) {
    let g = |o: &Value, p: &[&str]| -> f64 {
        let mut c = o;
        for k in p {
            match c.get(k) {
                Some(n) => c = n,
                None => return 0.0,
            }
        }
        c.as_f64().unwrap_or(0.0)
    };
    let ms = |us: f64| us / 1000.0;
    eprintln!(
        "\n{:<14} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "count", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    let line = |name: &str, o: &Value, count: f64, errors: f64, rate: f64| {
        eprintln!(
            "{:<14} {:>9.0} {:>7.0} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            count,
            errors,
            rate,
            ms(g(o, &["latency_us", "p50"])),
            ms(g(o, &["latency_us", "p90"])),
            ms(g(o, &["latency_us", "p99"])),
            ms(g(o, &["latency_us", "p999"])),
            ms(g(o, &["latency_us", "max"])),
        );
    };
    if let Some(ops) = v.get("ops").and_then(Value::as_object) {
        for (name, o) in ops {
            line(
                name,
                o,
                g(o, &["count"]),
                g(o, &["errors"]),
                g(o, &["per_s"]),
            );
        }
    }
    line(
        "all",
        v,
        g(v, &["requests", "total"]),
        g(v, &["requests", "errors"]),
        g(v, &["requests", "per_s"]),
    );
    if let Some(ts) = v.get("targets").and_then(Value::as_array) {
        if ts.len() > 1 {
            eprintln!(
                "\n{:<28} {:>9} {:>9} {:>7} {:>7} {:>8} {:>9} {:>9}",
                "target", "requests", "ok", "4xx", "5xx", "failed", "p50 ms", "p99 ms"
            );
            for t in ts {
                eprintln!(
                    "{:<28} {:>9.0} {:>9.0} {:>7.0} {:>7.0} {:>8.0} {:>9.2} {:>9.2}",
                    t.get("url").and_then(Value::as_str).unwrap_or(""),
                    g(t, &["requests"]),
                    g(t, &["ok"]),
                    g(t, &["status_4xx"]),
                    g(t, &["status_5xx"]),
                    g(t, &["failures"]),
                    ms(g(t, &["latency_us", "p50"])),
                    ms(g(t, &["latency_us", "p99"])),
                );
            }
        }
    }
    if let Some(e) = v.get("exam") {
        if !e.is_null() {
            if g(e, &["verify_targets"]) > 1.0 {
                let list = |k: &str| {
                    e.get(k)
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|x| x.to_string())
                                .collect::<Vec<_>>()
                                .join("/")
                        })
                        .unwrap_or_default()
                };
                eprintln!(
                    "exam per target: started {} acknowledged {} failed {}; verified through another target {}",
                    list("started_by_target"),
                    list("acknowledged_by_target"),
                    list("failed_by_target"),
                    g(e, &["verified_elsewhere"])
                );
            }
            eprintln!(
                "exam: acknowledged {} verified {} lost {} corrupted {} verify_errors {} upload_failed {}",
                g(e, &["acknowledged"]),
                g(e, &["verified"]),
                g(e, &["lost"]),
                g(e, &["corrupted"]),
                g(e, &["verify_errors"]),
                g(e, &["upload_failed"])
            );
            if g(e, &["receipts_verified"]) + g(e, &["receipts_bad"]) + g(e, &["receipts_missing"])
                > 0.0
            {
                eprintln!(
                    "hand-in: receipts verified {} bad {} missing {}; zip status {} bytes {} in {} s",
                    g(e, &["receipts_verified"]),
                    g(e, &["receipts_bad"]),
                    g(e, &["receipts_missing"]),
                    g(e, &["zip_status"]),
                    g(e, &["zip_bytes"]),
                    g(e, &["zip_s"])
                );
            }
        }
    }
    for key in ["login_storm", "sync"] {
        let p = &v[key]["polling"];
        if !p.is_null() {
            eprintln!(
                "polling: {} polls, {} found the home changed ({:.1} %), {} listings, {} folder listings",
                g(p, &["polls"]),
                g(p, &["polls_changed"]),
                g(p, &["changed_share"]) * 100.0,
                g(p, &["listings"]),
                g(p, &["folder_listings"])
            );
        }
    }
    let s = &v["sync"];
    if !s.is_null() {
        eprintln!(
            "sync: {} clients ({} ready), {} changes acknowledged ({} failed); propagation p50 {:.1} ms p99 {:.1} ms max {:.1} ms; \
             deliveries {} of {} seen, {} late, {} unseen; late changes {} (bound {:.0} ms); polls that missed a change {}",
            g(s, &["clients"]),
            g(s, &["clients_ready"]),
            g(s, &["changes"]),
            g(s, &["changes_failed"]),
            ms(g(s, &["propagation_us", "p50"])),
            ms(g(s, &["propagation_us", "p99"])),
            ms(g(s, &["propagation_us", "max"])),
            g(s, &["deliveries_seen"]),
            g(s, &["deliveries_expected"]),
            g(s, &["deliveries_late"]),
            g(s, &["deliveries_unseen"]),
            g(s, &["late_changes"]),
            g(s, &["bound_ms"]),
            g(s, &["polls_missed_change"])
        );
    }
    eprintln!(
        "wall {:.1} s | connections opened {} peak open {} | generator cpu {:.1} s ({:.0}% of a core)",
        g(v, &["wall_s"]),
        g(v, &["connections", "opened"]),
        g(v, &["connections", "peak_open"]),
        g(v, &["generator", "cpu_s"]),
        g(v, &["generator", "cpu_cores_busy"]) * 100.0
    );
    let (full, resumed) = (
        g(v, &["connections", "tls_full"]),
        g(v, &["connections", "tls_resumed"]),
    );
    if full + resumed > 0.0 {
        eprintln!(
            "TLS handshakes: {full} full, {resumed} resumed, {} failed",
            g(v, &["connections", "tls_failed"])
        );
    }
    if let Some(sv) = v.get("server").filter(|s| !s.is_null()) {
        let sessions = g(v, &["sessions", "done"]);
        if sessions > 0.0 {
            eprintln!(
                "server cpu {:.1} s: {:.3} ms per session",
                g(sv, &["cpu_s"]),
                g(sv, &["cpu_s"]) / sessions * 1000.0
            );
        }
    }
}
