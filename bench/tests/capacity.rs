//! Runs `skab-capacity measure` at a small size and `plan` on its output; checks the JSON and that every planned figure rests on a measured one.
use std::process::Command;

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
];

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
        ])
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
    assert!(doc["machine"]["file_system"].as_str().is_some());
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        for (k, unit) in KEYS {
            assert_eq!(p[k]["unit"].as_str(), Some(*unit), "{k}");
            let v = p[k]["value"].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
        }
        assert!(p["lookup_per_s"]["value"].as_f64().unwrap() > 0.0);
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
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("rss_after_open_bytes vs users"));
    browser_check(&out.join("capacity.html"), dir.path());
    // The data is removed after measuring.
    assert!(!dir.path().join("capacity-store").exists());
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
    let lines: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(lines.len() >= 5);
    for l in &lines {
        let from = l["rests_on"].as_str().unwrap();
        assert!(points[1].get(from).is_some(), "{from} is not measured");
        assert!(l["value"].as_f64().unwrap() > 0.0, "{l}");
    }
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
    assert_eq!(dom.matches("<polyline").count(), 4, "{dom}");
    assert!(dom.contains("id=\"figures\""));
}
