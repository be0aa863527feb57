//! Admin commands on a cluster: `skab ... --config CLUSTER.toml` sends its arguments (and
//! the standard input it needs) to a node, which runs the command against the data dir of
//! the cell that holds the command's tenant, on the node that owns that cell, and returns its
//! output. Commands that name no tenant run on every cell. Also `/_skab/cluster/state`: who
//! owns which cell, as this node sees it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Parser;
use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

use super::router::NODE_TOKEN_HEADER;
use super::{cell_of, node_token, Keys, Node};
use crate::cli::{Cli, CliError, Command, UserCmd};
use crate::config::{CliOverrides, Config, ENV_CONFIG_FILE};
use crate::http::body::ReqBody;
use crate::http::response::{text, Resp};
use crate::limits::{
    CLUSTER_ADMIN_BODY_MAX, CLUSTER_ADMIN_RETRY_S, CLUSTER_ADMIN_TIMEOUT_S, CLUSTER_IMPORT_CSV_MAX,
    PASSWORD_LEN_MAX,
};

pub(crate) const STATE_PATH: &str = "/_skab/cluster/state";
pub(crate) const CLI_PATH: &str = "/_skab/cluster/cli";

/// An admin command sent to a node.
#[derive(Debug, Serialize, Deserialize)]
struct CliRequest {
    /// The arguments after `skab`, without `--config`/`--data-dir`.
    args: Vec<String>,
    /// Standard input (base64).
    #[serde(default)]
    stdin: String,
    /// Run on this cell (set when a command that names no tenant runs on every cell).
    #[serde(default)]
    cell: Option<u32>,
    /// Set by a node that passes the request on to the cell's owner: not passed on again.
    #[serde(default)]
    passed_on: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CliAnswer {
    ok: bool,
    out: String,
    err: String,
    /// It did not run: its cell is moving between nodes (the caller tries again).
    #[serde(default)]
    retry: bool,
}

fn json_resp(code: StatusCode, v: &impl Serialize) -> Resp {
    let mut r = text(code, "");
    *r.body_mut() = crate::http::body::full(serde_json::to_vec(v).unwrap_or_default());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /_skab/cluster/state`: this node, its lease, and each cell's owner and state here.
pub(crate) fn state(node: &Node) -> Resp {
    let view = node.view.read();
    let cells: Vec<serde_json::Value> = view
        .owners
        .iter()
        .enumerate()
        .map(|(c, o)| {
            let here = match &*node.cells[c].lock() {
                super::cells::Cell::Absent => "absent",
                super::cells::Cell::Opening { .. } => "opening",
                super::cells::Cell::Serving(_) => "serving",
                super::cells::Cell::Closing => "closing",
            };
            serde_json::json!({
                "cell": c,
                "owner": o.as_ref().map(|o| o.node.clone()),
                "epoch": o.as_ref().map(|o| o.epoch),
                "here": here,
            })
        })
        .collect();
    let nodes: std::collections::BTreeMap<&String, &String> =
        view.nodes.iter().map(|(k, (u, _))| (k, u)).collect();
    let k = &node.counters;
    json_resp(
        StatusCode::OK,
        &serde_json::json!({
            "node": node.id,
            "lease": node.lease.deadline().is_some(),
            "ready": node.ready(),
            "nodes": nodes,
            "cells": cells,
            "forwarded": k.forwarded.load(Ordering::Relaxed),
            "redirected": k.redirected.load(Ordering::Relaxed),
            "forward_errors": k.forward_errors.load(Ordering::Relaxed),
            "waited_unavailable": k.waited_unavailable.load(Ordering::Relaxed),
            "cells_opened": k.cells_opened.load(Ordering::Relaxed),
            "cells_lost": k.cells_lost.load(Ordering::Relaxed),
            "cells_released": k.cells_released.load(Ordering::Relaxed),
        }),
    )
}

/// The tenant a command names, read from its parsed form: every command's tenant argument is
/// a field named `tenant`.
fn tenant_of(cmd: &Command) -> Option<String> {
    let dbg = format!("{cmd:?}");
    for marker in ["tenant: \"", "tenant: Some(\""] {
        if let Some(i) = dbg.find(marker) {
            let rest = &dbg[i + marker.len()..];
            return rest.split('"').next().map(str::to_ascii_lowercase);
        }
    }
    None
}

/// Commands that work on the client's own files, not on a cell: refused with a cluster config.
fn local_only(cmd: &Command) -> Option<&'static str> {
    match cmd {
        Command::Serve(_) => Some("serve"),
        Command::Key(_) => Some("key (master keys are kept per node)"),
        Command::Backup { .. } | Command::Restore { .. } => {
            Some("backup/restore (the bucket is the cluster's copy; back the bucket up)")
        }
        Command::Export(_) | Command::Import { .. } => {
            Some("export/import (not yet: the archive would be read or written on a node)")
        }
        _ => None,
    }
}

/// The arguments without the config file and data dir options (the node uses its cell's).
fn args_without_dir(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--config" || a == "--data-dir" {
            skip = true;
            continue;
        }
        if a.starts_with("--config=") || a.starts_with("--data-dir=") {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// The configuration the command line names (`--config` or `SKAB_CONFIG`), when it has a
/// `[cluster]` section.
pub fn cluster_config_of_args() -> Result<Option<Config>, CliError> {
    let args: Vec<String> = std::env::args().collect();
    let mut file = None;
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            file = args.get(i + 1).cloned();
        } else if let Some(f) = a.strip_prefix("--config=") {
            file = Some(f.to_string());
        }
    }
    let file = file.or_else(|| std::env::var(ENV_CONFIG_FILE).ok());
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if !text.lines().any(|l| l.trim() == "[cluster]") {
        return Ok(None);
    }
    let cfg = Config::load(&CliOverrides {
        config: Some(file.into()),
        data_dir: None,
        listen: None,
    })?;
    Ok(cfg.cluster.is_some().then_some(cfg))
}

/// Runs the command on the cluster: sent to the first node etcd lists that answers.
pub fn run_remote(cfg: &Config, cmd: &Command) -> Result<(), CliError> {
    let cluster = cfg
        .cluster
        .as_ref()
        .ok_or_else(|| CliError("no [cluster]".into()))?;
    if let Some(what) = local_only(cmd) {
        return Err(CliError(format!(
            "not available with a cluster configuration: {what}"
        )));
    }
    let mut stdin = Vec::new();
    if let Command::User(UserCmd::Import { csv, .. }) = cmd {
        // The CSV goes with the command; each cell's owner imports the rows of its tenants.
        std::fs::File::open(csv)
            .map_err(|e| CliError(format!("{}: {e}", csv.display())))?
            .take(CLUSTER_IMPORT_CSV_MAX as u64 + 1)
            .read_to_end(&mut stdin)?;
        if stdin.len() > CLUSTER_IMPORT_CSV_MAX {
            return Err(CliError(format!(
                "{}: larger than {CLUSTER_IMPORT_CSV_MAX} bytes; import it in parts",
                csv.display()
            )));
        }
    } else if crate::cli::needs_stdin(cmd) && !std::io::stdin().is_terminal() {
        std::io::stdin()
            .lock()
            .take(PASSWORD_LEN_MAX as u64 * 4 + 4096)
            .read_to_end(&mut stdin)?;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let req = CliRequest {
        args: args_without_dir(&args),
        stdin: B64.encode(stdin),
        cell: None,
        passed_on: false,
    };
    let token = node_token(&cluster.secret_bytes().map_err(CliError)?);
    let etcd = super::etcd::Etcd::new(&cluster.etcd);
    let keys = Keys::new(&cluster.name);
    let mut nodes: Vec<String> = etcd
        .range_prefix(&format!("{}nodes/", keys.root()))
        .map_err(|e| CliError(format!("cluster: {e}")))?
        .into_iter()
        .map(|kv| kv.value)
        .collect();
    if nodes.is_empty() {
        return Err(CliError("cluster: no node is up (etcd lists none)".into()));
    }
    nodes.sort();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(CLUSTER_ADMIN_TIMEOUT_S + 30)))
            .build(),
    );
    let body = serde_json::to_vec(&req).map_err(|e| CliError(e.to_string()))?;
    let until = std::time::Instant::now() + Duration::from_secs(CLUSTER_ADMIN_RETRY_S);
    loop {
        let answer = send_to_any(&agent, &nodes, &token, &body)?;
        if answer.retry && !answer.ok && std::time::Instant::now() < until {
            // A cell on its way to another node: it did not run; ask again shortly.
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        std::io::stdout().write_all(answer.out.as_bytes())?;
        std::io::stderr().write_all(answer.err.as_bytes())?;
        return if answer.ok {
            Ok(())
        } else {
            Err(CliError(answer.err.trim_end().to_string()))
        };
    }
}

/// Sends an admin command to the first of `nodes` that answers.
fn send_to_any(
    agent: &ureq::Agent,
    nodes: &[String],
    token: &str,
    body: &[u8],
) -> Result<CliAnswer, CliError> {
    let mut last = String::new();
    for url in nodes {
        let sent = agent
            .post(&format!("{url}{CLI_PATH}"))
            .header(NODE_TOKEN_HEADER, token)
            .header("content-type", "application/json")
            .send(body);
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                last = format!("{url}: {e}");
                continue;
            }
        };
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(CLUSTER_ADMIN_BODY_MAX as u64)
            .read_to_vec()
            .map_err(|e| CliError(format!("cluster: reading {url}'s answer: {e}")))?;
        match serde_json::from_slice(&bytes) {
            Ok(a) => return Ok(a),
            Err(_) if status >= 500 => {
                last = format!("{url}: {status} {}", String::from_utf8_lossy(&bytes).trim());
            }
            Err(_) => {
                return Err(CliError(format!(
                    "cluster: {url} answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                )))
            }
        }
    }
    Err(CliError(format!(
        "cluster: no node answered (last: {last})"
    )))
}

/// `POST /_skab/cluster/cli` on a node.
pub(crate) async fn serve_cli(node: Arc<Node>, req: Request<ReqBody>) -> Resp {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST an admin command");
    }
    let authorized = req
        .headers()
        .get(NODE_TOKEN_HEADER)
        .is_some_and(|v| v.as_bytes() == node.token.as_bytes());
    if !authorized {
        return text(
            StatusCode::FORBIDDEN,
            "admin commands need the cluster's secret",
        );
    }
    let limited = http_body_util::Limited::new(req.into_body(), CLUSTER_ADMIN_BODY_MAX);
    let bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("admin command: {e}"),
            )
        }
    };
    let request: CliRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("admin command: {e}")),
    };
    let answer = run_request(&node, request).await;
    json_resp(StatusCode::OK, &answer)
}

fn failed(msg: String) -> CliAnswer {
    CliAnswer {
        ok: false,
        out: String::new(),
        err: msg + "\n",
        retry: false,
    }
}

/// Not run: the cell has no node serving it at the moment.
fn moving(msg: String) -> CliAnswer {
    CliAnswer {
        retry: true,
        ..failed(msg)
    }
}

async fn run_request(node: &Arc<Node>, request: CliRequest) -> CliAnswer {
    let parsed =
        Cli::try_parse_from(std::iter::once("skab".to_string()).chain(request.args.clone()));
    let cli: Cli = match parsed {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    if let Some(what) = local_only(&cli.command) {
        return failed(format!(
            "not available with a cluster configuration: {what}"
        ));
    }
    let cells = node.cluster.cells;
    if request.cell.is_none() && matches!(cli.command, Command::User(UserCmd::Import { .. })) {
        return import_by_cell(node, &request).await;
    }
    let target = match (request.cell, tenant_of(&cli.command)) {
        (Some(c), _) if c < cells => vec![c],
        (Some(_), _) => return failed("no such cell".into()),
        (None, Some(t)) => vec![cell_of(&t, cells)],
        (None, None) => (0..cells).collect(),
    };
    let mut all = CliAnswer {
        ok: true,
        ..CliAnswer::default()
    };
    let mut header: Option<String> = None;
    for c in target {
        let a = run_on_cell(node, &request, c).await;
        all.ok &= a.ok;
        all.retry |= a.retry;
        // A listing run on every cell: its header line once.
        let mut out = a.out.as_str();
        if let Some((first, rest)) = out.split_once('\n') {
            match &header {
                Some(h) if h == first => out = rest,
                None => header = Some(first.to_string()),
                Some(_) => {}
            }
        }
        all.out.push_str(out);
        all.err.push_str(&a.err);
    }
    all
}

async fn run_on_cell(node: &Arc<Node>, request: &CliRequest, c: u32) -> CliAnswer {
    let until =
        std::time::Instant::now() + Duration::from_millis(crate::limits::CLUSTER_CELL_WAIT_MS);
    loop {
        if let Some(s) = node.serving(c) {
            let mut args = request.args.clone();
            let mut stdin = B64
                .decode(&request.stdin)
                .ok()
                .filter(|b| !b.is_empty())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let config = s.app.config.clone();
            let run = tokio::task::spawn_blocking(move || {
                // `user import`: its rows for this cell, from a file in the cell's directory.
                let csv = import_file(&config.data_dir, &mut args, &mut stdin);
                let r = match &csv {
                    Ok(_) => crate::cli::run_forwarded(config, args, stdin, true),
                    Err(e) => crate::admin::AdminResponse {
                        ok: false,
                        text: e.clone(),
                    },
                };
                if let Ok(Some(path)) = csv {
                    let _ = std::fs::remove_file(path);
                }
                if r.ok {
                    CliAnswer {
                        ok: true,
                        out: r.text,
                        ..CliAnswer::default()
                    }
                } else {
                    failed(format!("skab: {}", r.text.trim_end()))
                }
            });
            // The cell's app stays open while the command runs.
            let _keep = s;
            return match tokio::time::timeout(Duration::from_secs(CLUSTER_ADMIN_TIMEOUT_S), run)
                .await
            {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => failed(format!("the command failed: {e}")),
                Err(_) => failed("the command ran out of time".into()),
            };
        }
        if let Some((_, url)) = node.owner_elsewhere(c) {
            if !request.passed_on {
                return pass_on(node, request, c, &url).await;
            }
        }
        if std::time::Instant::now() >= until {
            return moving(format!("cell {c} has no node serving it now; try again"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For a `user import` run on a cell: writes the CSV it brought (its stdin) into the cell's
/// directory and points the command's `--csv` at it. `Ok(None)` for any other command.
fn import_file(
    dir: &std::path::Path,
    args: &mut [String],
    stdin: &mut Option<String>,
) -> Result<Option<std::path::PathBuf>, String> {
    let Some(i) = args
        .iter()
        .position(|a| a == "--csv" || a.starts_with("--csv="))
    else {
        return Ok(None);
    };
    if args.first().map(String::as_str) != Some("user") {
        return Ok(None);
    }
    let path = dir.join(format!("import-{}.csv", rand::random::<u64>()));
    std::fs::write(&path, stdin.take().unwrap_or_default().as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if args[i] == "--csv" {
        if let Some(v) = args.get_mut(i + 1) {
            *v = path.display().to_string();
        }
    } else {
        args[i] = format!("--csv={}", path.display());
    }
    Ok(Some(path))
}

/// The rows of a users CSV by the cell of their tenant, each part with the header.
fn split_csv_by_cell(csv: &[u8], cells: u32) -> Result<BTreeMap<u32, Vec<u8>>, String> {
    let mut rdr = ::csv::ReaderBuilder::new().flexible(true).from_reader(csv);
    let header = rdr
        .byte_headers()
        .map_err(|e| format!("the CSV: {e}"))?
        .clone();
    let tenant_col = header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(b"tenant"))
        .ok_or("the CSV has no tenant column (header: user,tenant,password)")?;
    let mut parts: BTreeMap<u32, ::csv::Writer<Vec<u8>>> = BTreeMap::new();
    for rec in rdr.byte_records() {
        let rec = rec.map_err(|e| format!("the CSV: {e}"))?;
        let tenant = String::from_utf8_lossy(rec.get(tenant_col).unwrap_or_default()).into_owned();
        let w = parts
            .entry(cell_of(tenant.trim(), cells))
            .or_insert_with(|| {
                let mut w = ::csv::Writer::from_writer(Vec::new());
                let _ = w.write_byte_record(&header);
                w
            });
        w.write_byte_record(&rec).map_err(|e| e.to_string())?;
    }
    parts
        .into_iter()
        .map(|(c, w)| w.into_inner().map(|b| (c, b)).map_err(|e| e.to_string()))
        .collect()
}

/// `user import` on a cluster: each cell's rows imported by the cell's owner.
async fn import_by_cell(node: &Arc<Node>, request: &CliRequest) -> CliAnswer {
    let csv = B64.decode(&request.stdin).unwrap_or_default();
    let parts = match split_csv_by_cell(&csv, node.cluster.cells) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let mut all = CliAnswer {
        ok: true,
        ..CliAnswer::default()
    };
    for (c, rows) in parts {
        let part = CliRequest {
            args: request.args.clone(),
            stdin: B64.encode(rows),
            cell: Some(c),
            passed_on: false,
        };
        let a = run_on_cell(node, &part, c).await;
        all.ok &= a.ok;
        all.retry |= a.retry;
        all.out.push_str(&a.out);
        all.err.push_str(&a.err);
    }
    all
}

/// Sends the command for cell `c` to its owner.
async fn pass_on(node: &Arc<Node>, request: &CliRequest, c: u32, url: &str) -> CliAnswer {
    let body = serde_json::json!({
        "args": request.args,
        "stdin": request.stdin,
        "cell": c,
        "passed_on": true,
    })
    .to_string();
    let token = node.token.clone();
    let url = format!("{url}{CLI_PATH}");
    let sent = tokio::task::spawn_blocking(move || -> Result<CliAnswer, String> {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(CLUSTER_ADMIN_TIMEOUT_S + 10)))
                .build(),
        );
        let mut resp = agent
            .post(&url)
            .header(NODE_TOKEN_HEADER, &token)
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(CLUSTER_ADMIN_BODY_MAX as u64)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    })
    .await;
    match sent {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => moving(format!("cell {c}'s node did not answer: {e}")),
        Err(e) => failed(format!("cell {c}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("skab").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn a_commands_tenant_is_found_in_every_shape() {
        assert_eq!(
            tenant_of(
                &parse(&[
                    "user",
                    "add",
                    "--tenant",
                    "Skole1",
                    "--user",
                    "anna",
                    "--password-stdin"
                ])
                .command
            )
            .as_deref(),
            Some("skole1")
        );
        assert_eq!(tenant_of(&parse(&["tenant", "list"]).command), None);
        assert_eq!(
            tenant_of(&parse(&["usage", "--tenant", "s2"]).command).as_deref(),
            Some("s2")
        );
        assert_eq!(tenant_of(&parse(&["usage"]).command), None);
    }

    #[test]
    fn a_users_csv_is_split_by_the_cell_of_each_rows_tenant() {
        let csv = b"user,tenant,password\nanna,skole-a,pw1-long-enough\nbo,skole-b,pw2-long-enough\ncarl,skole-a,pw3-long-enough\n";
        let parts = split_csv_by_cell(csv, 4096).unwrap();
        let (ca, cb) = (cell_of("skole-a", 4096), cell_of("skole-b", 4096));
        assert_ne!(ca, cb);
        assert_eq!(
            parts[&ca],
            b"user,tenant,password\nanna,skole-a,pw1-long-enough\ncarl,skole-a,pw3-long-enough\n"
        );
        assert_eq!(
            parts[&cb],
            b"user,tenant,password\nbo,skole-b,pw2-long-enough\n"
        );
        assert!(split_csv_by_cell(b"user,school\nanna,x\n", 4).is_err());
        // The CSV goes to a file in the cell's directory, named by --csv.
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = ["user", "import", "--csv", "/far/away.csv"]
            .map(String::from)
            .to_vec();
        let mut stdin = Some("user,tenant,password\n".to_string());
        let path = import_file(dir.path(), &mut args, &mut stdin)
            .unwrap()
            .unwrap();
        assert_eq!(args[3], path.display().to_string());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "user,tenant,password\n"
        );
        let mut other: Vec<String> = ["user", "list", "--tenant", "t"].map(String::from).to_vec();
        assert!(import_file(dir.path(), &mut other, &mut None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_config_options_are_left_to_the_node() {
        let a: Vec<String> = [
            "user",
            "list",
            "--config",
            "/x.toml",
            "--tenant",
            "t",
            "--data-dir=/d",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(args_without_dir(&a), ["user", "list", "--tenant", "t"]);
    }

    #[test]
    fn commands_on_local_files_are_refused_and_password_commands_read_stdin() {
        assert!(local_only(&parse(&["backup", "--out", "/b"]).command).is_some());
        assert!(local_only(&parse(&["user", "list", "--tenant", "t"]).command).is_none());
        let add = [
            "user",
            "add",
            "--tenant",
            "t",
            "--user",
            "u",
            "--password-stdin",
        ];
        assert!(crate::cli::needs_stdin(&parse(&add).command));
        assert!(!crate::cli::needs_stdin(
            &parse(&["user", "list", "--tenant", "t"]).command
        ));
    }
}
