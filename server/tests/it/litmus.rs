//! The litmus WebDAV test suite (basic, copymove, props, locks, http) against a real `skab`
//! on loopback: every test must pass. scripts/test.sh installs litmus on a fresh machine.

use crate::common;

use common::{have, Server, PASSWORD, TENANT, USER};
use std::process::Command;

#[test]
fn litmus_passes_completely() {
    assert!(
        have("litmus"),
        "litmus is not installed (scripts/test.sh installs it)"
    );
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("litmus")
        .current_dir(work.path())
        .args([
            server.home().as_str(),
            &format!("{USER}@{TENANT}"),
            PASSWORD,
        ])
        .output()
        .expect("run litmus");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("<- summary for"))
        .collect();
    assert_eq!(summaries.len(), 5, "litmus did not run all suites:\n{text}");
    for s in &summaries {
        assert!(s.contains(" 0 failed"), "litmus suite failed: {s}\n{text}");
    }
    assert!(
        out.status.success(),
        "litmus exited with {:?}:\n{text}",
        out.status
    );
    // The one warning litmus can print is documented in docs/webdav.md (fragment in a URI).
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARNING")).collect();
    assert!(
        warnings.iter().all(|w| w.contains("fragment")),
        "unexpected litmus warnings: {warnings:?}"
    );
}
