//! The school of the spaces, hand-in and versions tests: a teacher, two pupils of group
//! `class`, an outsider, and a namesake of p1 in another tenant; the `skab` commands that
//! set up groups and hand-ins on its data dir.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{skab, Http, Server};

pub const T: &str = "school";
pub const PW: &str = "correct horse battery staple";

pub fn start() -> Server {
    Server::start_with(
        &[
            (T, "teach", PW),
            (T, "p1", PW),
            (T, "p2", PW),
            (T, "outsider", PW),
            ("other", "p1", PW),
        ],
        &[],
    )
}

/// Runs `skab ARGS --data-dir <the server's>`; its output, failing the test on an error.
pub fn cli(s: &Server, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let d = s.data_dir().to_str().unwrap().to_string();
    all.extend(["--data-dir", d.as_str()]);
    let (ok, out) = skab(&all, None);
    assert!(ok, "skab {args:?} failed: {out}");
    out
}

pub fn as_user(s: &Server, user: &str, tenant: &str) -> Http {
    s.client_as(&format!("{user}@{tenant}"), PW)
}

/// Group `class` of `members` (comma-separated).
pub fn add_group(s: &Server, members: &str) {
    cli(
        s,
        &[
            "group",
            "add",
            "--tenant",
            T,
            "--group",
            "class",
            "--members",
            members,
        ],
    );
}

/// Hand-in `name` of group `class` by `teach`, closing at `closes`, with extra options.
pub fn add_handin(s: &Server, name: &str, closes: u64, extra: &[&str]) {
    let closes = rfc3339(closes);
    let mut args = vec![
        "handin", "add", "--tenant", T, "--handin", name, "--owner", "teach", "--group", "class",
        "--closes", &closes,
    ];
    args.extend_from_slice(extra);
    cli(s, &args);
}

/// Waits until the running server has reread the groups (at most once a second,
/// `USER_DB_REFRESH_INTERVAL_MS`) and `user` is let into `url`.
pub fn wait_member(s: &Server, user: &str, url: &str) {
    let c = as_user(s, user, T);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.propfind(url, "0").status != 207 {
        assert!(Instant::now() < deadline, "{user} never let into {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
