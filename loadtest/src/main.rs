//! `skab-loadtest`: the command line (users, seed, run) over the scenario engine.

mod client;
mod config;
mod content;
mod curve;
mod limits;
mod receipt;
mod record;
mod report;
mod run;
mod scenarios;
mod sys;
mod threshold;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skab-loadtest",
    about = "School-day load scenarios against a WebDAV server (login storm, exam peak, school day, sync)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (loopback only unless --allow-remote).
    /// Several servers (the nodes of a cluster): repeat it, or give a comma-separated list;
    /// sessions are spread round-robin over them, each session sticking to one.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// users.csv (user, tenant, password[, token]) as written by `users`.
    #[arg(long)]
    users: PathBuf,
    /// Scenario configuration (TOML); every key has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write result.json and report.html into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Allow a target outside loopback.
    #[arg(long)]
    allow_remote: bool,
    /// PID of a local server process: its CPU time and peak RSS go into the result.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Hard wall-clock bound of the run, seconds.
    #[arg(long)]
    max_wall: Option<u64>,
    /// Pass/fail threshold, e.g. 'p99<100ms', 'errors=0', 'get.p99.9<1s' (repeatable).
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// Progress line every 10 s instead of every second.
    #[arg(long)]
    quiet: bool,
    /// Seed of every random choice (content, auth kinds, op mix).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Connection cap (overrides connections.max).
    #[arg(long)]
    connections: Option<usize>,
    /// Spread connections over 127.0.0.1..=127.0.0.N (overrides connections.source_addrs).
    #[arg(long)]
    source_addrs: Option<usize>,
    /// Share of requests sent on a new connection, 0..=1 (overrides connections.churn).
    #[arg(long)]
    churn: Option<f64>,
    /// Share of new connections that resume a TLS session, 0..=1 (overrides
    /// connections.resumption).
    #[arg(long)]
    resumption: Option<f64>,
    /// PEM CA certificates to trust for an https:// target (overrides connections.ca_cert;
    /// default: the system's).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Follow 307/308 redirects to another node (a cluster with forward = "redirect"):
    /// same method, headers and body, at most 3 hops, only to a target or loopback (overrides
    /// connections.follow_redirects).
    #[arg(long)]
    follow_redirects: bool,
    /// Generator threads (0: one per CPU). 1 runs everything on one event loop: no cross-thread
    /// wake-ups, the least CPU per request when the server shares the machine.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a test population: users.csv with user, tenant, password.
    Users {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        tenant: String,
        /// Spread the users over this many tenants (TENANT-0, TENANT-1, ...).
        #[arg(long, default_value_t = 1)]
        tenants: u64,
        #[arg(long)]
        out: PathBuf,
        /// Also write a `skab user import` CSV with argon2id hashes. All users then share
        /// one random password, hashed once (hashing a million passwords takes hours).
        #[arg(long)]
        skab_import: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Fill every user's home through WebDAV: MKCOL, then PUT file-0.bin .. file-{K-1}.bin.
    Seed {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        files_per_user: Option<u32>,
    },
    /// Run a scenario: login-storm, exam-peak, school-day or sync.
    Run {
        scenario: String,
        #[command(flatten)]
        common: Common,
        /// Sessions (login-storm), pupils (exam-peak) or users (sync).
        #[arg(long)]
        sessions: Option<u64>,
        /// Arrival window (login-storm, exam-peak) or duration (school-day, sync: how long
        /// changes are made), scenario seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Scenario seconds per wall second (60 runs an hour in a minute).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Files per user the homes were seeded with (school-day opens and saves them).
        #[arg(long)]
        files_per_user: Option<u32>,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match real_main(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skab-loadtest: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn real_main(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Users {
            count,
            tenant,
            tenants,
            out,
            skab_import,
            seed,
        } => {
            let t = std::time::Instant::now();
            users::generate(
                &users::GenSpec {
                    count,
                    tenant: &tenant,
                    tenants,
                    seed,
                },
                &out,
                skab_import.as_deref(),
            )?;
            eprintln!(
                "wrote {count} users to {} in {:.1} s",
                out.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Cmd::Seed {
            common,
            files_per_user,
        } => run::run(args(
            run::Scenario::Seed,
            common,
            None,
            None,
            1.0,
            files_per_user,
        )?),
        Cmd::Run {
            scenario,
            common,
            sessions,
            duration,
            time_scale,
            files_per_user,
        } => {
            let sc = run::Scenario::parse(&scenario)?;
            run::run(args(
                sc,
                common,
                sessions,
                duration,
                time_scale,
                files_per_user,
            )?)
        }
    }
}

fn args(
    scenario: run::Scenario,
    c: Common,
    sessions: Option<u64>,
    duration: Option<f64>,
    time_scale: f64,
    files_per_user: Option<u32>,
) -> anyhow::Result<run::RunArgs> {
    let mut cfg = config::Config::load(c.config.as_deref())?;
    if let Some(n) = c.connections {
        cfg.connections.max = n;
    }
    if let Some(n) = c.source_addrs {
        cfg.connections.source_addrs = n;
    }
    for (name, flag, key) in [
        ("--churn", c.churn, &mut cfg.connections.churn),
        (
            "--resumption",
            c.resumption,
            &mut cfg.connections.resumption,
        ),
    ] {
        if let Some(v) = flag {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{name} must be within 0..=1, is {v}");
            }
            *key = v;
        }
    }
    if c.follow_redirects {
        cfg.connections.follow_redirects = true;
    }
    if let Some(p) = c.ca_cert {
        cfg.connections.ca_cert = Some(p);
    }
    if cfg.connections.max == 0 || cfg.connections.max > limits::CONNECTIONS_MAX {
        anyhow::bail!("--connections must be 1..={}", limits::CONNECTIONS_MAX);
    }
    if cfg.connections.source_addrs == 0 || cfg.connections.source_addrs > limits::SOURCE_ADDRS_MAX
    {
        anyhow::bail!("--source-addrs must be 1..={}", limits::SOURCE_ADDRS_MAX);
    }
    if c.threads > limits::THREADS_MAX {
        anyhow::bail!("--threads must be 0..={}", limits::THREADS_MAX);
    }
    Ok(run::RunArgs {
        scenario,
        targets: client::parse_targets(&c.targets)?,
        users: c.users,
        cfg,
        sessions,
        duration,
        time_scale,
        out: c.out,
        thresholds: c.thresholds,
        allow_remote: c.allow_remote,
        server_pid: c.server_pid,
        max_wall_s: c.max_wall,
        files_per_user,
        quiet: c.quiet,
        threads: c.threads,
        seed: c.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets_of(args: &[&str]) -> anyhow::Result<Vec<String>> {
        let mut argv = vec!["skab-loadtest", "run", "exam-peak", "--users", "u.csv"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Cmd::Run { common, .. } = cli.cmd else {
            anyhow::bail!("not a run");
        };
        Ok(client::parse_targets(&common.targets)?
            .iter()
            .map(|u| u.to_string())
            .collect())
    }

    #[test]
    fn one_target_as_before() {
        let t = targets_of(&["--target", "http://127.0.0.1:8080"]).unwrap();
        assert_eq!(t, ["http://127.0.0.1:8080/"]);
    }

    #[test]
    fn repeated_and_comma_separated_targets() {
        let t = targets_of(&[
            "--target",
            "http://127.0.0.1:27201",
            "--target",
            "http://127.0.0.1:27202/, http://127.0.0.1:27203",
        ])
        .unwrap();
        assert_eq!(
            t,
            [
                "http://127.0.0.1:27201/",
                "http://127.0.0.1:27202/",
                "http://127.0.0.1:27203/"
            ]
        );
        let t = targets_of(&["--target", "https://a.test:1,https://b.test:2"]).unwrap();
        assert_eq!(t, ["https://a.test:1/", "https://b.test:2/"]);
    }

    #[test]
    fn bad_target_lists_are_refused() {
        let err = |args: &[&str]| targets_of(args).unwrap_err().to_string();
        assert!(err(&[]).contains("--target"), "a target is required");
        assert!(err(&["--target", "http://127.0.0.1:1,,http://127.0.0.1:2"]).contains("empty"));
        assert!(err(&["--target", "http://127.0.0.1:1,"]).contains("empty"));
        assert!(err(&[
            "--target",
            "http://127.0.0.1:1",
            "--target",
            "http://127.0.0.1:1/"
        ])
        .contains("twice"));
        assert!(err(&["--target", "http://127.0.0.1:1,https://127.0.0.1:2"]).contains("mix"));
        assert!(err(&["--target", "ftp://127.0.0.1:1"]).contains("not supported"));
        assert!(err(&["--target", "127.0.0.1:1"]).contains("scheme"));
        assert!(err(&["--target", "http://exa mple"]).contains("not a URL"));
        let many: Vec<String> = (0..=crate::limits::TARGETS_MAX)
            .map(|i| format!("http://127.0.0.1:{}", 20000 + i))
            .collect();
        assert!(err(&["--target", &many.join(",")]).contains("at most"));
    }
}
