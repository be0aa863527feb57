//! `scripts/cluster.sh` for the tests: a cluster brought up under a temporary directory (Garage
//! and etcd, and the skab nodes unless `SKAB_NODES=0`), its `cluster.env`, and its teardown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
}

/// `KEY="value"` lines of a `cluster.env`.
pub fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// `scripts/cluster.sh up DIR/cl` with `env` (BASE_PORT, SKAB_NODES, ...): the directory and
/// the cluster's `cluster.env`. Panics with the script's output when it fails.
pub fn up(env: &[(&str, String)]) -> (tempfile::TempDir, HashMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg("up")
        .arg(dir.path().join("cl"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh up failed (it installs Garage and etcd; scripts/test.sh runs its \
         install step): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = read_env(&dir.path().join("cl/cluster.env"));
    (dir, env)
}

/// `scripts/cluster.sh down`: stops exactly what `up` (and `restart-node`) started.
pub fn down(cl: &Path) {
    let _ = Command::new("bash")
        .arg(script())
        .arg("down")
        .arg(cl)
        .output();
}
