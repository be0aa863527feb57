//! Runs `skab-capacity measure` at a small size (with the server step: a real `skab` and
//! `skab-loadtest` on loopback) and `plan` on its output; checks the JSON, the HTML in headless
//! chromium, that every planned figure rests on a measured (or documented) one, and that Ctrl-C
//! stops a run and keeps what was measured.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use skab_bench::capacity::plan::REFERENCE;

const EXE: &str = env!("CARGO_BIN_EXE_skab-capacity");
/// Keys every measured point must hold, with their units.
const KEYS: &[(&str, &str)] = &[
    ("users", "users"),
    ("entries", "entries"),
    ("rss_after_open_bytes", "bytes"),
    ("rss_per_user_bytes", "bytes/user"),
    ("rss_per_entry_bytes", "bytes/entry"),
    ("recovery_s", "s"),
    ("logical_bytes", "bytes"),
    ("stored_bytes", "bytes"),
    ("pack_bytes", "bytes"),
    ("disk_bytes", "bytes"),
    ("index_bytes", "bytes"),
    ("stored_per_logical", "ratio"),
    ("pack_per_logical", "ratio"),
    ("lookup_per_s", "ops/s"),
    ("list_per_s", "ops/s"),
    ("create_per_s", "ops/s"),
    ("move_per_s", "ops/s"),
    ("scrub_s", "s"),
    ("scrub_bytes_per_s", "bytes/s"),
    ("gc_s", "s"),
    ("compact_s", "s"),
    ("garbage_bytes", "bytes"),
    ("gc_bytes_removed", "bytes"),
    ("compact_bytes_reclaimed", "bytes"),
    ("fg_read_p99_idle_s", "s"),
    ("fg_read_p99_maintenance_s", "s"),
    ("fg_write_p99_idle_s", "s"),
    ("fg_write_p99_maintenance_s", "s"),
    ("argon2_verify_s", "s/verification/core"),
    ("server_start_s", "s"),
    ("login_storm_p99_s", "s"),
    ("login_storm_errors", "requests"),
    ("login_storm_server_cpu_per_session_s", "s/session"),
    ("login_storm_server_cpu_per_request_s", "s/request"),
    ("login_storm_requests_per_session", "requests/session"),
    ("exam_peak_p99_s", "s"),
    ("exam_peak_errors", "requests"),
    ("exam_peak_uploads", "uploads"),
    ("exam_peak_server_cpu_per_upload_s", "s/upload"),
    ("exam_peak_mean_upload_bytes", "bytes"),
    ("exam_peak_stored_per_logical", "ratio"),
];

/// A binary of another package of this workspace, built (debug) first when missing.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = PathBuf::from(EXE);
    let path = exe.with_file_name(bin);
    if !path.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", package, "--bin", bin])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo build");
        assert!(st.success(), "cargo build -p {package} failed");
    }
    assert!(path.exists(), "no {bin} at {}", path.display());
    path
}

#[test]
fn measure_then_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let st = Command::new(EXE)
        .args([
            "measure",
            "--users",
            "40,80",
            "--files-per-user",
            "5",
            "--tenants",
            "2",
            // A short profile: 40 sessions over 30 scenario seconds, 30 s sessions, 30x.
            "--sessions",
            "40",
            "--scenario-seconds",
            "30",
            "--session-seconds",
            "30",
            "--time-scale",
            "30",
            // Little garbage (the default fills a 256 MiB pack): GC still has work.
            "--garbage-min-bytes",
            "4000000",
        ])
        .arg("--skab")
        .arg(workspace_bin("skab-server", "skab"))
        .arg("--loadtest")
        .arg(workspace_bin("skab-loadtest", "skab-loadtest"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let path = out.join("capacity.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        doc["machine"]["cores"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(!doc["machine"]["kernel"].as_str().unwrap().is_empty());
    assert_eq!(doc["interrupted"], false);
    assert!(doc["machine"]["file_system"].as_str().is_some());
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        for (k, unit) in KEYS {
            assert_eq!(p[k]["unit"].as_str(), Some(*unit), "{k}");
            let v = p[k]["value"].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
        }
        let v = |k: &str| p[k]["value"].as_f64().unwrap();
        assert!(v("lookup_per_s") > 0.0);
        // GC removed the garbage made for it; compaction rewrote the half-dead packs.
        assert!(v("garbage_bytes") > 0.0);
        assert!(v("gc_bytes_removed") > 0.0, "{}", p["gc_bytes_removed"]);
        assert!(v("fg_write_p99_idle_s") > 0.0 && v("fg_write_p99_maintenance_s") > 0.0);
        assert!(v("argon2_verify_s") > 0.0);
        // The server step ran both scenarios on the built data without errors.
        assert_eq!(v("login_storm_errors"), 0.0, "login storm errors");
        assert_eq!(v("exam_peak_errors"), 0.0, "exam peak errors");
        assert_eq!(v("login_storm_sessions_done"), 40.0);
        assert!(v("login_storm_p99_s") > 0.0 && v("exam_peak_p99_s") > 0.0);
        assert!(v("login_storm_server_cpu_per_session_s") > 0.0);
        assert!(v("exam_peak_uploads") > 0.0);
        // Stored bytes per uploaded byte: the template's shared chunks count once (how many
        // depends on the drawn sizes: uploads smaller than a chunk do not share any).
        let r = v("exam_peak_stored_per_logical");
        assert!(r > 0.0 && r < 1.5, "exam stored per uploaded byte {r}");
        // Class templates are shared: stored bytes are fewer than logical bytes.
        assert!(p["stored_per_logical"]["value"].as_f64().unwrap() < 1.0);
    }
    // Growth: users, entries, logical and disk bytes rise with the population.
    for k in [
        "users",
        "entries",
        "logical_bytes",
        "disk_bytes",
        "pack_bytes",
    ] {
        let a = points[0][k]["value"].as_f64().unwrap();
        let b = points[1][k]["value"].as_f64().unwrap();
        assert!(b > a, "{k}: {a} then {b}");
    }
    let html = std::fs::read_to_string(out.join("capacity.html")).unwrap();
    let plots = skab_bench::capacity::report::PLOTTED.len();
    assert_eq!(html.matches("<svg").count(), plots);
    assert_eq!(html.matches("class=\"fit\"").count(), plots);
    assert!(html.contains("rss_after_open_bytes vs users: fitted"));
    assert!(html.contains("login_storm_p99_s vs users"));
    browser_check(&out.join("capacity.html"), dir.path());
    // The data is removed after measuring.
    assert!(!dir.path().join("capacity-data").exists());
    let o = Command::new(EXE)
        .args([
            "plan",
            "--pupils",
            "40000",
            "--teachers",
            "3000",
            "--json",
            "--from",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lines = plan["lines"].as_array().unwrap();
    let whats: Vec<&str> = lines.iter().map(|l| l["what"].as_str().unwrap()).collect();
    for w in [
        "index RAM",
        "disk space",
        "cores at 08:00: password hashing",
        "cores at 08:00: TLS handshakes",
        "cores all day: polling by every user's client",
        "cores at an exam deadline: uploads",
        "disk write bandwidth at an exam deadline (after dedup)",
        "servers with N+1 fail-over",
    ] {
        assert!(whats.contains(&w), "no plan line {w:?}: {whats:?}");
    }
    for l in lines {
        let from = l["rests_on"].as_str().unwrap();
        let figure = l["figure"].as_f64().unwrap();
        // Traceable: the figure is the measured one of capacity.json, or a documented reference.
        if l["source"] == "capacity.json" {
            let measured = points[1][from]["value"].as_f64();
            let slope = from == "rss_after_open_bytes";
            assert!(measured.is_some(), "{from} is not measured");
            if !slope {
                assert_eq!(measured, Some(figure), "{from}");
            }
        } else {
            let r = REFERENCE.iter().find(|r| r.0 == from).expect(from);
            assert_eq!(r.1, figure);
            assert!(l["source"].as_str().unwrap().starts_with("docs/"), "{l}");
        }
        assert!(l["value"].as_f64().unwrap() > 0.0, "{l}");
    }
    let n = |k: &str| plan["assumed"][k].as_f64().unwrap();
    assert_eq!(n("users"), 43000.0);
    assert!(n("peak_login_per_s") > 0.0 && n("exam_uploads_per_min") > 0.0);
    let servers = |w: &str| {
        lines.iter().find(|l| l["what"] == w).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        servers("servers with N+1 fail-over"),
        servers("servers") + 1.0
    );
    // The default profile plans from the figures checked in under docs/.
    let o = Command::new(EXE)
        .args(["plan", "--pupils", "40000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Renders the report in headless chromium (as loadtest's report test does): a screenshot that
/// is not blank, and a DOM with the figures table and the four plots.
fn browser_check(report: &std::path::Path, tmp: &std::path::Path) {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new("sh")
                .args(["-c", &format!("command -v {c}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .expect("chromium is needed to check capacity.html (apt-get install -y chromium)");
    let url = format!("file://{}", report.display());
    let common = |profile: &str| {
        vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", tmp.join(profile).display()),
        ]
    };
    let shot = tmp.join("shot.png");
    let mut a = common("prof1");
    a.push(format!("--screenshot={}", shot.display()));
    a.push("--window-size=1200,2000".into());
    a.push(url.clone());
    let o = Command::new(chromium)
        .args(&a)
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "chromium screenshot failed");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few KB; tables and plots do not.
    assert!(png.len() > 20_000, "screenshot only {} bytes", png.len());
    let mut a = common("prof2");
    a.push("--dump-dom".into());
    a.push(url);
    let o = Command::new(chromium)
        .args(&a)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        dom.matches("<polyline").count(),
        skab_bench::capacity::report::PLOTTED.len(),
        "{dom}"
    );
    assert!(dom.contains("id=\"figures\""));
}

/// SIGINT (Ctrl-C) during a long build stops the run within seconds; capacity.json keeps the
/// sizes measured and what was built of the interrupted one; the exit status says so.
#[test]
fn ctrl_c_stops_and_keeps_what_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(EXE)
        .args([
            "measure",
            "--users",
            "20,2000000",
            "--files-per-user",
            "1",
            "--size-scale",
            "0.01",
            "--no-server",
            "--garbage-min-bytes",
            "4000000",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .spawn()
        .unwrap();
    let json = out.join("capacity.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !json.exists() {
        assert!(Instant::now() < deadline, "the first size was not written");
        assert!(child.try_wait().unwrap().is_none(), "measure ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Into the second size's build.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid, not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130), "{st}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["interrupted"], true);
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["users"]["value"], 20.0);
    let part = doc["interrupted_point"]["users"]["value"].as_f64().unwrap();
    assert!(part > 20.0 && part < 2_000_000.0, "{part}");
    assert!(out.join("capacity.html").exists());
}
