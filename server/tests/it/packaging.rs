//! What ships in `packaging/` works: the systemd unit passes `systemd-analyze verify` and keeps
//! its hardening, the example config starts a server, the logrotate file parses and the server
//! reopens its access log on SIGHUP (also without TLS, where the signal used to end it), and
//! every metric the Grafana dashboard queries is one the server exports.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(packaging(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_hardening() {
    require_tool("systemd-analyze");
    let unit = read("skab.service");
    for line in [
        "User=skab",
        "ExecStart=/usr/local/bin/skab serve --config /etc/skab/skab.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
        "StateDirectory=skab",
        "StateDirectoryMode=0700",
        "LogsDirectory=skab",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "UMask=0077",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "skab.service lacks {line:?}"
        );
    }
    // `verify` checks that ExecStart is executable: point it at the binary just built.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("skab.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/skab", skab_bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the unit (unknown keys, bad values) go to stderr with exit status 0.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("skab.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_logrotate_file_parses() {
    require_tool("logrotate");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("access.log");
    std::fs::write(&log, "line\n").unwrap();
    let conf = tmp.path().join("skab.logrotate");
    let text = read("skab.logrotate")
        .replace("/var/log/skab/access.log", log.to_str().unwrap())
        // `create` names the service's user, which this machine need not have.
        .replace("create 0640 skab skab", "create 0640");
    std::fs::write(&conf, text).unwrap();
    let out = Command::new("logrotate")
        .arg("-d")
        .arg("-s")
        .arg(tmp.path().join("state"))
        .arg(&conf)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !all.to_lowercase().contains("error"),
        "logrotate -d: {all}"
    );
    assert!(
        all.contains("access.log"),
        "logrotate considered nothing: {all}"
    );
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_example_config_serves_and_sighup_reopens_the_access_log() {
    let tmp = tempfile::tempdir().unwrap();
    let access = tmp.path().join("access.log");
    let config = read("skab.toml").replace("/var/log/skab/access.log", access.to_str().unwrap());
    assert!(
        !config.contains("/var/log"),
        "the test must not write to /var/log"
    );
    let s = Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(&config));
    let c = s.client();
    assert_eq!(c.put(&dav("before.txt"), b"1").status, 201);
    wait_for("first lines in the access log", || {
        lines_of(&access).iter().any(|l| l.contains("before.txt"))
    });
    // logrotate moves the file away, then signals.
    let rotated = tmp.path().join("access.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    s.signal(libc::SIGHUP);
    // The signal is taken asynchronously: requests until a new file appears.
    let mut n = 0;
    wait_for("a new access log after SIGHUP", || {
        n += 1;
        assert_eq!(c.put(&dav(&format!("after-{n}.txt")), b"2").status, 201);
        std::thread::sleep(Duration::from_millis(30));
        lines_of(&access).iter().any(|l| l.contains("after-"))
    });
    assert!(
        lines_of(&rotated).iter().any(|l| l.contains("before.txt")),
        "the rotated file keeps the earlier lines"
    );
    assert!(
        !lines_of(&access).iter().any(|l| l.contains("before.txt")),
        "the new file starts empty"
    );
    // Still serving (SIGHUP does not end a server without TLS).
    assert_eq!(c.get(&dav("before.txt")).body, b"1");
    assert!(
        serde_json::from_str::<serde_json::Value>(&lines_of(&access)[0]).is_ok(),
        "access_format json: {:?}",
        lines_of(&access)
    );
}

#[test]
fn every_metric_of_the_grafana_dashboard_is_exported() {
    let dash: serde_json::Value = serde_json::from_str(&read("grafana-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let s = Server::start();
    let c = s.client();
    // Traffic so that every series has a sample.
    assert_eq!(c.put(&dav("m.txt"), b"metrics").status, 201);
    assert_eq!(c.get(&dav("m.txt")).status, 200);
    let metrics = s.anonymous().get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let mut checked = 0;
    for e in &exprs {
        for (i, _) in e.match_indices("skab_") {
            let name: String = e[i..]
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            assert!(
                text.lines().any(|l| l.starts_with(&name)),
                "the dashboard queries {name}, which /metrics does not export"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= exprs.len(),
        "{checked} names in {} queries",
        exprs.len()
    );
}

/// An upgrade (or a downgrade) that meets a data dir of another store format version is
/// refused at start with both versions named, and changes nothing on disk; the same data dir
/// with the version this binary reads opens again and serves what it held.
#[test]
fn a_data_dir_of_another_format_version_is_refused_clearly() {
    let mut s = Server::start();
    assert_eq!(s.client().put(&dav("kept.txt"), b"kept").status, 201);
    s.stop();
    let meta = s.data_dir().join("store/store.meta");
    let mut b = std::fs::read(&meta).unwrap();
    let len = b.len();
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
    b[8..12].copy_from_slice(&(version + 1).to_le_bytes());
    let crc = crc32c::crc32c(&b[..len - 4]);
    b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&meta, &b).unwrap();
    let out = skab_command()
        .args(["serve", "--data-dir", s.data_dir().to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on a store of another version"
    );
    assert!(
        text.contains(&format!("store format version {}", version + 1))
            && text.contains(&format!("reads version {version}")),
        "{text}"
    );
    assert_eq!(std::fs::read(&meta).unwrap(), b, "store.meta changed");
    // Back to the version written: it opens, with the file kept.
    b[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&b[..len - 4]);
    b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&meta, &b).unwrap();
    s.restart();
    assert_eq!(s.client().get(&dav("kept.txt")).body, b"kept");
}
