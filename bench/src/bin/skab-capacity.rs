//! `skab-capacity`: measures a school population on this machine and plans hardware from the figures (docs/capacity.md).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use skab_bench::capacity::{measure, plan, population, report, serve};
use skab_engine::Store;

#[derive(Parser)]
#[command(about = "Capacity benchmark and planner")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Builds populations of the given sizes and measures them.
    Measure(MeasureArgs),
    /// Measures an existing store in a fresh process (run by `measure`).
    #[command(hide = true)]
    Open {
        dir: PathBuf,
        users: u64,
        files: usize,
        tenants: u64,
        out: PathBuf,
        garbage_min: u64,
    },
    /// Plans hardware for a school population.
    Plan(PlanArgs),
    /// Writes capacity.html again from a capacity.json (as `measure` does).
    Report {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints docs/capacity.md's worked examples (markdown) planned from a capacity.json.
    Examples {
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/capacity.json"))]
        from: PathBuf,
    },
}

/// The worked examples of docs/capacity.md: (name, pupils, teachers).
const EXAMPLES: &[(&str, f64, f64)] = &[
    (
        "municipality: 40,000 pupils + 3,500 teachers",
        40_000.0,
        3_500.0,
    ),
    (
        "Denmark: 540,000 pupils + 60,000 teachers",
        540_000.0,
        60_000.0,
    ),
    (
        "Bavaria: 1,100,000 pupils + 100,000 teachers",
        1_100_000.0,
        100_000.0,
    ),
];

fn read_points(from: &Path) -> Result<(Value, Vec<measure::Figures>)> {
    let doc: Value = serde_json::from_slice(
        &std::fs::read(from).with_context(|| format!("reading {}", from.display()))?,
    )
    .with_context(|| format!("{} is not JSON", from.display()))?;
    let points: Vec<measure::Figures> = serde_json::from_value(doc["points"].clone())
        .with_context(|| format!("{}: no measured points", from.display()))?;
    Ok((doc, points))
}

/// Figures of the measured table in docs/capacity.md: (key, label, divisor, unit shown).
const TABLE: &[(&str, &str, f64, &str)] = &[
    ("entries", "entries (files, folders, versions)", 1.0, ""),
    ("build_users_per_s", "built at", 1.0, "users/s"),
    ("rss_after_open_bytes", "RSS of the open store", 1e6, "MB"),
    ("rss_per_entry_bytes", "RSS per entry", 1.0, "bytes"),
    ("recovery_s", "restart recovery (`Store::open`)", 1.0, "s"),
    ("server_start_s", "`skab serve` to /healthz", 1.0, "s"),
    ("disk_bytes", "disk allocated", 1e9, "GB"),
    ("index_bytes", "of which index (all but packs)", 1e6, "MB"),
    ("stored_per_logical", "stored / logical bytes", 1.0, ""),
    ("lookup_per_s", "lookups", 1e3, "k/s"),
    ("list_per_s", "listings", 1e3, "k/s"),
    ("create_per_s", "durable creates, one at a time", 1.0, "/s"),
    ("move_per_s", "durable moves, one at a time", 1.0, "/s"),
    ("scrub_bytes_per_s", "scrub", 1e6, "MB/s"),
    ("gc_s", "GC (first round)", 1.0, "s"),
    ("compact_s", "compaction (first round)", 1.0, "s"),
    ("compact_bytes_reclaimed", "compaction reclaimed", 1e6, "MB"),
    (
        "fg_read_p99_idle_s",
        "foreground lookup p99, idle",
        1e-3,
        "ms",
    ),
    (
        "fg_read_p99_maintenance_s",
        "foreground lookup p99, during GC + compaction",
        1e-3,
        "ms",
    ),
    (
        "fg_write_p99_idle_s",
        "foreground save p99, idle",
        1e-3,
        "ms",
    ),
    (
        "fg_write_p99_maintenance_s",
        "foreground save p99, during GC + compaction",
        1e-3,
        "ms",
    ),
    (
        "login_storm_p99_s",
        "login storm p99 (all requests)",
        1e-3,
        "ms",
    ),
    ("login_storm_errors", "login storm errors", 1.0, ""),
    (
        "login_storm_server_cpu_per_session_s",
        "server CPU per session",
        1e-3,
        "ms",
    ),
    (
        "login_storm_server_cpu_per_request_s",
        "server CPU per request",
        1e-6,
        "µs",
    ),
    (
        "login_storm_server_peak_rss_bytes",
        "server peak RSS",
        1e6,
        "MB",
    ),
    (
        "exam_peak_p99_s",
        "exam peak p99 (all requests)",
        1e-3,
        "ms",
    ),
    ("exam_peak_errors", "exam peak errors", 1.0, ""),
    (
        "exam_peak_server_cpu_per_upload_s",
        "server CPU per upload",
        1e-3,
        "ms",
    ),
    (
        "exam_peak_stored_per_logical",
        "exam uploads stored / uploaded bytes",
        1.0,
        "",
    ),
    (
        "argon2_verify_s",
        "argon2id verification, one core",
        1e-3,
        "ms",
    ),
];

/// The measured table: one column per size.
fn measured(doc: &Value, points: &[measure::Figures]) -> String {
    let m = &doc["machine"];
    let mut s = format!(
        "Measured {} by\n\n```\n{}\n```\n\non {} cores, {} RAM, {} on {} (kernel {}); {} files per user, file sizes x {}, \
         {} tenants; server step: {} sessions, {} scenario seconds at {}x. Every figure per size is in \
         `docs/capacity.json`, the plots with fitted lines in `docs/capacity.html`.\n\n| users |",
        doc["measured_at"].as_str().unwrap_or("(date not recorded)"),
        doc["command"].as_str().unwrap_or("?"),
        m["cores"].as_str().unwrap_or("?"),
        m["ram"].as_str().unwrap_or("?"),
        m["file_system"].as_str().unwrap_or("?"),
        m["disk"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        doc["files_per_user"],
        doc["size_scale"],
        doc["tenants"],
        doc["server_step"]["sessions"],
        doc["server_step"]["scenario_seconds"],
        doc["server_step"]["time_scale"],
    );
    let v = |p: &measure::Figures, k: &str| p.get(k).map(|f| f.value);
    for p in points {
        s += &format!(" {:.0} |", v(p, "users").unwrap_or(0.0));
    }
    s += "\n|---|";
    s += &"---:|".repeat(points.len());
    s += "\n";
    for (k, label, div, unit) in TABLE {
        s += &format!(
            "| {label}{} |",
            if unit.is_empty() {
                String::new()
            } else {
                format!(", {unit}")
            }
        );
        for p in points {
            s += &match v(p, k) {
                Some(x) => {
                    let x = x / div;
                    if x.abs() >= 100.0 || x == x.round() {
                        format!(" {x:.0} |")
                    } else if x.abs() >= 1.0 {
                        format!(" {x:.2} |")
                    } else {
                        format!(" {x:.3} |")
                    }
                }
                None => " - |".to_string(),
            };
        }
        s += "\n";
    }
    s
}

/// The measured table, then the examples as markdown: the assumptions, then every plan line
/// with the figure it rests on.
fn examples(from: &Path) -> Result<String> {
    let (doc, points) = read_points(from)?;
    let mut plans = Vec::new();
    for (_, pupils, teachers) in EXAMPLES {
        plans.push(plan::plan(
            &plan::Input {
                pupils: *pupils,
                teachers: *teachers,
                files_per_user: plan::FILES_PER_USER,
                mean_file_bytes: None,
                peak_login_per_s: None,
                exam_uploads_per_min: None,
                password_login_share: plan::PASSWORD_LOGIN_SHARE,
            },
            &points,
        )?);
    }
    let mut s = String::from("### Measured\n\n");
    s += &measured(&doc, &points);
    s += &format!(
        "\n### Worked examples\n\nPlanned from `docs/{}` (measured up to {} users on {} cores, {}), default school profile:\n\n",
        from.file_name().unwrap_or_default().to_string_lossy(),
        plans[0].assumed.measured_at_users,
        doc["machine"]["cores"].as_str().unwrap_or("?"),
        doc["machine"]["file_system"].as_str().unwrap_or("?"),
    );
    s += "| | ";
    s += &EXAMPLES.iter().map(|e| e.0).collect::<Vec<_>>().join(" | ");
    s += " | rests on |\n|---|";
    s += &"---:|".repeat(EXAMPLES.len());
    s += "---|\n";
    let row = |name: &str, f: &dyn Fn(&plan::Plan) -> String| {
        format!(
            "| {name} | {} | input |\n",
            plans.iter().map(f).collect::<Vec<_>>().join(" | ")
        )
    };
    s += &row("users", &|p| format!("{:.0}", p.assumed.users));
    s += &row("logical data (10 % of the quotas)", &|p| {
        format!("{:.0} TB", p.assumed.logical_bytes / 1e12)
    });
    s += &row("logins/s at 08:00", &|p| {
        format!("{:.0}", p.assumed.peak_login_per_s)
    });
    s += &row("uploads/min at an exam deadline", &|p| {
        format!("{:.0}", p.assumed.exam_uploads_per_min)
    });
    for (i, l) in plans[0].lines.iter().enumerate() {
        let fmt = |p: &plan::Plan| {
            let l = &p.lines[i];
            match l.unit.as_str() {
                "bytes" if l.value >= 1e12 => format!("{:.1} TB", l.value / 1e12),
                "bytes" => format!("{:.1} GB", l.value / 1e9),
                "bytes/s" => format!("{:.1} MB/s", l.value / 1e6),
                "s" if l.value >= 86400.0 => format!("{:.1} days", l.value / 86400.0),
                "s" if l.value >= 3600.0 => format!("{:.1} h", l.value / 3600.0),
                "s" => format!("{:.0} s", l.value),
                "cores" => format!("{:.2}", l.value),
                _ => format!("{:.0}", l.value),
            }
        };
        let mut on: Vec<String> = plans
            .iter()
            .map(|p| {
                format!(
                    "`{}` = {:.3e} ({})",
                    p.lines[i].rests_on, p.lines[i].figure, p.lines[i].source
                )
            })
            .collect();
        on.dedup();
        s += &format!(
            "| {} | {} | {} |\n",
            l.what,
            plans.iter().map(fmt).collect::<Vec<_>>().join(" | "),
            on.join("; ")
        );
    }
    Ok(s)
}

#[derive(clap::Args)]
struct MeasureArgs {
    /// An empty directory (or one without `capacity-data`) on the disk to measure.
    #[arg(long)]
    data_dir: PathBuf,
    /// Sizes, comma separated (each built on top of the previous one).
    #[arg(long, value_delimiter = ',', required = true)]
    users: Vec<u64>,
    #[arg(long, default_value_t = 20)]
    files_per_user: usize,
    #[arg(long, default_value_t = 4)]
    tenants: u64,
    /// File sizes are multiplied by this (1: realistic sizes; less to fit many users on a
    /// small disk; recorded in capacity.json).
    #[arg(long, default_value_t = 1.0)]
    size_scale: f64,
    #[arg(long)]
    out: PathBuf,
    /// Skip the server step (login-storm and exam-peak against `skab serve` on the data).
    #[arg(long)]
    no_server: bool,
    /// The `skab` binary (default: beside this one).
    #[arg(long)]
    skab: Option<PathBuf>,
    /// The `skab-loadtest` binary (default: beside this one).
    #[arg(long)]
    loadtest: Option<PathBuf>,
    /// Sessions of the login storm and pupils of the exam peak.
    #[arg(long, default_value_t = 1000)]
    sessions: u64,
    /// Scenario seconds of each arrival window.
    #[arg(long, default_value_t = 600.0)]
    scenario_seconds: f64,
    /// Scenario seconds per wall second.
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
    /// Scenario seconds a login-storm session lives, polling its home every 60.
    #[arg(long, default_value_t = 600.0)]
    session_seconds: f64,
    /// Least garbage made for GC and compaction to remove, bytes (the default fills and seals a
    /// pack, so compaction has work; less suits a quick run, where compaction then finds none).
    #[arg(long, default_value_t = measure::GARBAGE_MIN_BYTES)]
    garbage_min_bytes: u64,
    /// Keep the built data dir after measuring (default: removed).
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args)]
struct PlanArgs {
    #[arg(long)]
    pupils: f64,
    #[arg(long, default_value_t = 0.0)]
    teachers: f64,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/capacity.json"))]
    from: PathBuf,
    #[arg(long, default_value_t = plan::FILES_PER_USER)]
    files_per_user: f64,
    #[arg(long)]
    mean_file_bytes: Option<f64>,
    /// Logins per second at the 08:00 peak (default: the school profile's curve).
    #[arg(long)]
    peak_login_per_s: Option<f64>,
    /// Uploads per minute at an exam deadline (default: the school profile).
    #[arg(long)]
    exam_uploads_per_min: Option<f64>,
    /// Share of 08:00 logins that verify a password (argon2id) rather than a token or JWT.
    #[arg(long, default_value_t = plan::PASSWORD_LOGIN_SHARE)]
    password_login_share: f64,
    #[arg(long)]
    json: bool,
}

/// Exit status after Ctrl-C (what was measured is written first).
const EXIT_INTERRUPTED: i32 = 130;

fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.with_file_name(name))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>24} [{bar:40}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>24} {msg} ({elapsed})")
            .expect("valid template"),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Writes capacity.json and capacity.html with the points measured so far.
fn write_outputs(
    a: &MeasureArgs,
    points: &[measure::Figures],
    partial: Option<&measure::Figures>,
    interrupted: bool,
) -> Result<()> {
    let machine = measure::machine(&a.data_dir);
    let doc = json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": machine,
        "files_per_user": a.files_per_user,
        "tenants": a.tenants,
        "size_scale": a.size_scale,
        "server_step": if a.no_server { Value::Null } else { json!({
            "sessions": a.sessions, "scenario_seconds": a.scenario_seconds, "time_scale": a.time_scale,
            "session_seconds": a.session_seconds,
            "auth": "JWT logins only (hashing and TLS are modelled from their own figures)" }) },
        "interrupted": interrupted,
        "measured_at": std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        "points": points,
        "interrupted_point": partial,
    });
    std::fs::write(
        a.out.join("capacity.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;
    std::fs::write(a.out.join("capacity.html"), report::html(points, &machine))?;
    Ok(())
}

fn measure_all(a: &MeasureArgs, rt: &tokio::runtime::Runtime, stop: &AtomicBool) -> Result<bool> {
    let mut users = a.users.clone();
    users.sort_unstable();
    users.dedup();
    anyhow::ensure!(
        a.size_scale > 0.0 && a.size_scale <= 1.0,
        "--size-scale must be in (0, 1]"
    );
    anyhow::ensure!(a.tenants >= 1, "--tenants must be at least 1");
    anyhow::ensure!(users[0] > 0, "--users: every size must be at least 1");
    std::fs::create_dir_all(&a.out)?;
    let data = a.data_dir.join("capacity-data");
    if data.exists() {
        bail!("{} exists: give an empty data dir", data.display());
    }
    let dir = data.join("store");
    let server = if a.no_server {
        None
    } else {
        let skab = match &a.skab {
            Some(p) => p.clone(),
            None => sibling("skab")?,
        };
        let loadtest = match &a.loadtest {
            Some(p) => p.clone(),
            None => sibling("skab-loadtest")?,
        };
        for b in [&skab, &loadtest] {
            if !b.exists() {
                bail!("no {} binary: build it (cargo build --release -p skab-server -p skab-loadtest), \
                       name it with --skab/--loadtest, or skip the server step with --no-server", b.display());
            }
        }
        Some(serve::Opts {
            skab,
            loadtest,
            sessions: a.sessions,
            scenario_s: a.scenario_seconds,
            time_scale: a.time_scale,
            session_s: a.session_seconds,
        })
    };
    let mut points = Vec::new();
    let mut done = 0u64;
    for &n in &users {
        let mut f = measure::Figures::new();
        let r = measure_point(a, rt, stop, &data, &dir, done, n, server.as_ref(), &mut f);
        match r {
            Ok(()) => {
                done = n;
                eprintln!("{n} users measured");
                points.push(f);
                write_outputs(a, &points, None, false)?;
            }
            Err(e) if stop.load(Ordering::Relaxed) => {
                eprintln!("interrupted ({e:#}); keeping {} complete sizes and what was measured of this one", points.len());
                write_outputs(a, &points, Some(&f), true)?;
                return Ok(true);
            }
            Err(e) => {
                write_outputs(a, &points, Some(&f), false)?;
                return Err(e);
            }
        }
    }
    if !a.keep {
        std::fs::remove_dir_all(&data)?;
    }
    Ok(false)
}

/// Builds users `done..n` on top of the store and measures the point into `f` (which keeps what
/// was measured when a step fails or is interrupted).
#[allow(clippy::too_many_arguments)]
fn measure_point(
    a: &MeasureArgs,
    rt: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    data: &Path,
    dir: &Path,
    done: u64,
    n: u64,
    server: Option<&serve::Opts>,
    f: &mut measure::Figures,
) -> Result<()> {
    let store = Store::open(dir, measure::config())?;
    let pb = bar(n - done, &format!("building {n} users"));
    pb.set_position(0);
    let t = Instant::now();
    let spec = population::Spec {
        from: done,
        to: n,
        files: a.files_per_user,
        tenants: a.tenants,
        size_scale: a.size_scale,
    };
    let built = rt.block_on(population::build(&store, spec, stop, &|k| {
        pb.set_position(k)
    }))?;
    pb.finish_and_clear();
    let build_s = t.elapsed().as_secs_f64();
    measure::put(f, "users", (done + built.users) as f64, "users");
    measure::put(
        f,
        "build_users_per_s",
        built.users as f64 / build_s,
        "users/s",
    );
    eprintln!("built {} users in {build_s:.1} s", done + built.users);
    store.checkpoint()?;
    drop(store);
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted while building");
    }
    let work = a.out.join(format!("work-{n}"));
    std::fs::create_dir_all(&work)?;
    let sp = spinner(&format!("measuring {n} users"));
    sp.set_message("open, metadata rates, scrub, GC and compaction (fresh process)");
    let json = work.join("open.json");
    let mut c = std::process::Command::new(std::env::current_exe()?);
    c.arg("open")
        .arg(dir)
        .arg(n.to_string())
        .arg(a.files_per_user.to_string())
        .arg(a.tenants.to_string())
        .arg(&json)
        .arg(a.garbage_min_bytes.to_string());
    let log = work.join("open.log");
    // The open step says which step it is in on stderr (its log): shown on the spinner.
    let st = serve::run_child(c, &log, stop, &|| {
        if let Some(step) = std::fs::read_to_string(&log).ok().and_then(|t| {
            t.lines()
                .rev()
                .find_map(|l| l.strip_prefix("step: ").map(str::to_string))
        }) {
            sp.set_message(step);
        }
    })?;
    sp.finish_and_clear();
    if !st.success() {
        bail!(
            "open step failed: {}",
            std::fs::read_to_string(work.join("open.log")).unwrap_or_default()
        );
    }
    let opened: measure::Figures = serde_json::from_slice(&std::fs::read(&json)?)?;
    f.extend(opened);
    let (disk, packs) = measure::disk_bytes(dir);
    measure::put(f, "disk_bytes", disk as f64, "bytes");
    measure::put(f, "pack_files_bytes", packs as f64, "bytes");
    measure::put(f, "index_bytes", disk.saturating_sub(packs) as f64, "bytes");
    measure::put(
        f,
        "argon2_verify_s",
        measure::argon2_verify_s()?,
        "s/verification/core",
    );
    if let Some(o) = server {
        let sp = spinner(&format!("importing {} users", n - done));
        serve::import_users(&o.skab, data, &work, done, n, a.tenants, stop)?;
        sp.finish_and_clear();
        let pb = bar(1, "");
        let figs = serve::run(o, data, &work, n, a.tenants, stop, &|what, t, expect| {
            pb.set_prefix(format!("{what} at {n} users"));
            pb.set_length(expect.ceil() as u64);
            pb.set_position((t as u64).min(expect.ceil() as u64));
            pb.set_message("s");
        })?;
        pb.finish_and_clear();
        f.extend(figs);
    }
    Ok(())
}

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Open {
            dir,
            users,
            files,
            tenants,
            out,
            garbage_min,
        } => {
            let f = measure::measure_open(&dir, users, files, tenants, garbage_min)?;
            std::fs::write(out, serde_json::to_string(&f)?)?;
        }
        Cmd::Examples { from } => print!("{}", examples(&from)?),
        Cmd::Report { from, out } => {
            let (doc, points) = read_points(&from)?;
            let machine: std::collections::BTreeMap<String, String> =
                serde_json::from_value(doc["machine"].clone()).context("machine")?;
            std::fs::write(&out, report::html(&points, &machine))
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Cmd::Measure(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                rt.spawn(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        return;
                    };
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                    eprintln!(
                        "stopping: finishing the users in flight, then writing what was measured"
                    );
                    stop.store(true, Ordering::Relaxed);
                });
            }
            if measure_all(&a, &rt, &stop)? {
                std::process::exit(EXIT_INTERRUPTED);
            }
        }
        Cmd::Plan(PlanArgs {
            pupils,
            teachers,
            from,
            files_per_user,
            mean_file_bytes,
            peak_login_per_s,
            exam_uploads_per_min,
            password_login_share,
            json,
        }) => {
            let (_, points) = read_points(&from)?;
            let p = plan::plan(
                &plan::Input {
                    pupils,
                    teachers,
                    files_per_user,
                    mean_file_bytes,
                    peak_login_per_s,
                    exam_uploads_per_min,
                    password_login_share,
                },
                &points,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                let a = &p.assumed;
                println!(
                    "{:.0} users, {:.0} entries, {:.1} TB logical; {:.0} logins/s at 08:00 ({:.0} % with a password), \
                     {:.0} uploads/min at an exam deadline; measured up to {:.0} users ({})",
                    a.users,
                    a.entries,
                    a.logical_bytes / 1e12,
                    a.peak_login_per_s,
                    a.password_login_share * 100.0,
                    a.exam_uploads_per_min,
                    a.measured_at_users,
                    from.display()
                );
                for l in &p.lines {
                    let (v, u) = match l.unit.as_str() {
                        "bytes" if l.value >= 1e12 => (l.value / 1e12, "TB"),
                        "bytes" => (l.value / 1e9, "GB"),
                        "bytes/s" => (l.value / 1e6, "MB/s"),
                        "s" if l.value >= 86400.0 => (l.value / 86400.0, "days"),
                        u => (l.value, u),
                    };
                    println!(
                        "{:<62} {:>12.2} {:<8} rests on {} = {:.4e} ({})",
                        l.what, v, u, l.rests_on, l.figure, l.source
                    );
                }
            }
        }
    }
    Ok(())
}
