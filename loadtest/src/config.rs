//! The scenario configuration file (TOML): every knob with a default, see docs/loadtest.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::limits::CONNECTIONS_DEFAULT;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub target: TargetCfg,
    pub auth: AuthCfg,
    pub connections: ConnCfg,
    pub seed: SeedCfg,
    pub login_storm: LoginStormCfg,
    pub exam_peak: ExamPeakCfg,
    pub school_day: SchoolDayCfg,
    pub sync: SyncCfg,
    /// Pass/fail thresholds, e.g. `["p99<100ms", "errors=0"]`; `--threshold` adds to these.
    pub thresholds: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetCfg {
    /// Path of a user's home collection; `{tenant}` and `{user}` are replaced.
    pub home: String,
}

impl Default for TargetCfg {
    fn default() -> Self {
        TargetCfg {
            home: "/dav/{tenant}/{user}/".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthCfg {
    /// Share of sessions presenting a bearer JWT minted here (needs `jwt_secret`).
    pub jwt_share: f64,
    /// Share presenting an app token (users.csv `token` column; users without one use a JWT,
    /// or Basic when no JWT secret is set).
    pub token_share: f64,
    /// Share logging in with Basic user@tenant:password.
    pub basic_share: f64,
    /// HS256 secret the server trusts (`[[auth.jwt]] secret`); empty: no JWTs, Basic instead.
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Lifetime of a minted JWT, seconds.
    pub jwt_ttl_s: u64,
    /// When set, every Basic login presents this one account instead of `user@tenant`
    /// (a peer server configured with a single shared account).
    pub basic_shared_login: String,
    pub basic_shared_password: String,
}

impl Default for AuthCfg {
    fn default() -> Self {
        AuthCfg {
            jwt_share: 0.8,
            token_share: 0.1,
            basic_share: 0.1,
            jwt_secret: String::new(),
            jwt_issuer: "skab-loadtest".into(),
            jwt_audience: "skab".into(),
            jwt_ttl_s: 36_000,
            basic_shared_login: String::new(),
            basic_shared_password: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnCfg {
    /// Most connections open to the target at once (shared by all sessions).
    pub max: usize,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.N (loopback targets).
    pub source_addrs: usize,
    /// Share of requests sent on a new connection (closed after its response), 0..=1: a
    /// client whose connection was cut (NAT, mobile network) since its last request. The
    /// rest use the keep-alive pool.
    pub churn: f64,
    /// Share of those new connections that resume a TLS session (`https://` targets), 0..=1;
    /// the rest do a full handshake.
    pub resumption: f64,
    /// PEM file of the CA certificates trusted for an `https://` target (default: the
    /// system's CA file).
    pub ca_cert: Option<PathBuf>,
    /// Follow `307`/`308` redirects (same method, headers and body) to another node, as a
    /// cluster in `forward = "redirect"` mode sends them; at most `REDIRECTS_MAX` hops, and only
    /// to a target's host:port or a loopback address. Off: a redirect is the answer.
    pub follow_redirects: bool,
}

impl Default for ConnCfg {
    fn default() -> Self {
        ConnCfg {
            max: CONNECTIONS_DEFAULT,
            source_addrs: 1,
            churn: 0.0,
            resumption: 1.0,
            ca_cert: None,
            follow_redirects: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedCfg {
    pub files_per_user: u32,
    /// Size of each seeded file, bytes.
    pub file_size_bytes: u64,
    pub concurrency: usize,
    /// Every user's `file-k.bin` gets the same bytes (a deduplicating server stores them once;
    /// a large population then needs little disk). Default: unique per user.
    pub shared_content: bool,
    /// Also MKCOL the collections above the home that the home template names (e.g.
    /// `/{tenant}/` of `/{tenant}/{user}/`), once each, before the homes: for servers that do
    /// not make homes themselves. 201 and 405 (exists) are accepted.
    pub mkcol_parents: bool,
    /// MKCOL each home before its files (201, or 405 when the server made it already). Off
    /// for servers that make homes themselves (skab): a third fewer seed requests.
    pub mkcol_home: bool,
}

impl Default for SeedCfg {
    fn default() -> Self {
        SeedCfg {
            files_per_user: 2,
            file_size_bytes: 16_384,
            concurrency: crate::limits::SEED_CONCURRENCY_DEFAULT,
            shared_content: false,
            mkcol_parents: false,
            mkcol_home: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginStormCfg {
    pub sessions: u64,
    /// Arrival window (scenario seconds; 3600 = 07:30 to 08:30).
    pub window_s: f64,
    /// Where in the window arrivals peak, as a fraction (0.5 = 08:00 in a 07:30-08:30 window).
    pub peak_at: f64,
    /// Standard deviation of the arrival bump, as a fraction of the window.
    pub spread: f64,
    /// Share of arrivals spread evenly over the window (early birds and latecomers).
    pub baseline_share: f64,
    /// How long a session stays alive after login, polling (scenario seconds).
    pub session_s: f64,
    /// Sync-client poll interval (PROPFIND Depth 0 on the home), scenario seconds.
    pub poll_every_s: f64,
    /// Files opened (GET) after listing the home: 1 or 2, chosen per session.
    pub files_min: u32,
    pub files_max: u32,
}

impl Default for LoginStormCfg {
    fn default() -> Self {
        LoginStormCfg {
            sessions: 1_000_000,
            window_s: 3600.0,
            peak_at: 0.5,
            spread: 0.1,
            baseline_share: 0.1,
            session_s: 600.0,
            poll_every_s: 60.0,
            files_min: 1,
            files_max: 2,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExamPeakCfg {
    pub pupils: u64,
    /// Upload window ending at the deadline, scenario seconds.
    pub window_s: f64,
    /// Share of uploads arriving in the last `last_s` seconds before the deadline.
    pub last_share: f64,
    pub last_s: f64,
    /// Answer sizes: log-normal with this median (bytes) and sigma, clamped to min..=max.
    pub size_median_bytes: f64,
    pub size_sigma: f64,
    pub size_min_bytes: u64,
    pub size_max_bytes: u64,
    /// Share of answers built from the shared exam template (a few bytes edited): dedup.
    pub template_share: f64,
    /// Read back every acknowledged upload and check its BLAKE3 hash.
    pub verify: bool,
    /// Hand-in mode: every pupil uploads into one skab hand-in instead of their home.
    pub handin: HandinCfg,
}

/// The exam peak into one hand-in (`skab handin add`): uploads go to
/// `/dav/<tenant>/handin/<name>/`, each receipt is checked against the tenant's public key,
/// and the teacher reads every submission back (and downloads the zip once it closed).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandinCfg {
    /// The hand-in's name; empty: hand-in mode off (uploads go to the homes).
    pub name: String,
    /// The teacher's login (`user@tenant`) and password (basic auth).
    pub teacher: String,
    pub teacher_password: String,
    /// The tenant's receipt key as `skab receipt key` prints it.
    pub public_key: String,
    /// After the uploads, wait (at most this many wall seconds) for the hand-in to close
    /// and download it as one zip; 0: no zip.
    pub zip_wait_s: f64,
}

impl Default for ExamPeakCfg {
    fn default() -> Self {
        ExamPeakCfg {
            pupils: 100_000,
            window_s: 1800.0,
            last_share: 0.8,
            last_s: 60.0,
            size_median_bytes: 60_000.0,
            size_sigma: 1.0,
            size_min_bytes: 1_024,
            size_max_bytes: 8 << 20,
            template_share: 0.7,
            verify: true,
            handin: HandinCfg::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchoolDayCfg {
    /// Length of the steady load, scenario seconds.
    pub duration_s: f64,
    /// Operations started per scenario second (open loop, evenly spaced).
    pub rate_per_s: f64,
    pub weights: Weights,
    /// Size of a newly saved document version, bytes.
    pub doc_size_bytes: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub browse: u32,
    pub open: u32,
    pub save: u32,
    pub copy: u32,
    #[serde(rename = "move")]
    pub mv: u32,
    pub delete: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            browse: 35,
            open: 30,
            save: 15,
            copy: 8,
            mv: 6,
            delete: 6,
        }
    }
}

impl Default for SchoolDayCfg {
    fn default() -> Self {
        SchoolDayCfg {
            duration_s: 600.0,
            rate_per_s: 200.0,
            weights: Weights::default(),
            doc_size_bytes: 24_576,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncCfg {
    /// Users taken from the top of users.csv.
    pub users: u64,
    /// Sync clients ("devices") per user, each polling the user's home.
    pub devices_per_user: u32,
    /// Poll interval of every client, scenario seconds.
    pub poll_every_s: f64,
    /// Changes made per scenario second, all users together (open loop, evenly spaced).
    pub changes_per_s: f64,
    /// How long changes are made, scenario seconds; clients then poll until every change was
    /// seen or its bound passed.
    pub duration_s: f64,
    /// Every other client of the user must have seen a change this long after its
    /// acknowledgement, scenario seconds; a change seen later (or never) is a late change.
    pub bound_s: f64,
    /// Subfolders made in each home for the run (changes happen in them).
    pub folders: u32,
    /// Size of a file a change writes, bytes.
    pub file_size_bytes: u64,
    pub weights: SyncWeights,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncWeights {
    /// PUT of a new file.
    pub put_new: u32,
    /// PUT over an existing file (new ETag).
    pub put_existing: u32,
    pub delete: u32,
    /// MOVE of a file to a new name in another (or the same) subfolder.
    #[serde(rename = "move")]
    pub mv: u32,
}

impl Default for SyncWeights {
    fn default() -> Self {
        SyncWeights {
            put_new: 50,
            put_existing: 30,
            delete: 10,
            mv: 10,
        }
    }
}

impl Default for SyncCfg {
    fn default() -> Self {
        SyncCfg {
            users: 4,
            devices_per_user: 3,
            poll_every_s: 1.0,
            changes_per_s: 4.0,
            duration_s: 12.0,
            bound_s: 5.0,
            folders: 3,
            file_size_bytes: 2048,
            weights: SyncWeights::default(),
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let cfg: Config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("read config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parse config {}", p.display()))?
            }
            None => Config::default(),
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        let a = &self.auth;
        for (n, v) in [
            ("auth.jwt_share", a.jwt_share),
            ("auth.token_share", a.token_share),
            ("auth.basic_share", a.basic_share),
            ("login_storm.peak_at", self.login_storm.peak_at),
            (
                "login_storm.baseline_share",
                self.login_storm.baseline_share,
            ),
            ("exam_peak.last_share", self.exam_peak.last_share),
            ("exam_peak.template_share", self.exam_peak.template_share),
            ("connections.churn", self.connections.churn),
            ("connections.resumption", self.connections.resumption),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{n} must be within 0..=1, is {v}");
            }
        }
        if a.jwt_share + a.token_share + a.basic_share <= 0.0 {
            bail!("auth shares must not all be 0");
        }
        let l = &self.login_storm;
        if !(l.window_s > 0.0 && l.spread > 0.0 && l.session_s >= 0.0 && l.poll_every_s > 0.0) {
            bail!("login_storm: window_s, spread, poll_every_s must be > 0, session_s >= 0");
        }
        if l.files_min > l.files_max || l.files_max > 16 {
            bail!("login_storm: need files_min <= files_max <= 16");
        }
        let e = &self.exam_peak;
        if !(e.window_s > 0.0 && e.last_s > 0.0 && e.last_s <= e.window_s) {
            bail!("exam_peak: need 0 < last_s <= window_s");
        }
        if e.size_min_bytes == 0
            || e.size_min_bytes > e.size_max_bytes
            || e.size_max_bytes > crate::limits::FILE_SIZE_MAX
        {
            bail!("exam_peak: need 0 < size_min_bytes <= size_max_bytes <= 64 MiB");
        }
        let h = &e.handin;
        if !h.name.is_empty()
            && (h.teacher.is_empty() || h.public_key.is_empty() || h.zip_wait_s < 0.0)
        {
            bail!("exam_peak.handin: name needs teacher, teacher_password and public_key");
        }
        let s = &self.school_day;
        if !(s.duration_s > 0.0 && s.rate_per_s > 0.0) {
            bail!("school_day: duration_s and rate_per_s must be > 0");
        }
        let w = &s.weights;
        if w.browse + w.open + w.save + w.copy + w.mv + w.delete == 0 {
            bail!("school_day.weights must not all be 0");
        }
        let y = &self.sync;
        if !(y.poll_every_s > 0.0
            && y.changes_per_s > 0.0
            && y.duration_s > 0.0
            && y.bound_s > 0.0
            && y.duration_s.is_finite()
            && y.bound_s.is_finite())
        {
            bail!("sync: poll_every_s, changes_per_s, duration_s and bound_s must be > 0");
        }
        if y.users == 0 || y.users > crate::limits::SYNC_USERS_MAX {
            bail!("sync.users must be 1..={}", crate::limits::SYNC_USERS_MAX);
        }
        if !(2..=crate::limits::SYNC_DEVICES_MAX).contains(&y.devices_per_user) {
            bail!(
                "sync.devices_per_user must be 2..={}",
                crate::limits::SYNC_DEVICES_MAX
            );
        }
        if y.folders == 0 || y.folders > crate::limits::SYNC_FOLDERS_MAX {
            bail!(
                "sync.folders must be 1..={}",
                crate::limits::SYNC_FOLDERS_MAX
            );
        }
        if y.duration_s * y.changes_per_s > crate::limits::SYNC_CHANGES_MAX as f64 {
            bail!(
                "sync: duration_s x changes_per_s must be <= {}",
                crate::limits::SYNC_CHANGES_MAX
            );
        }
        if y.file_size_bytes > crate::limits::FILE_SIZE_MAX {
            bail!("sync.file_size_bytes must be <= 64 MiB");
        }
        let w = &y.weights;
        if w.put_new + w.put_existing + w.delete + w.mv == 0 {
            bail!("sync.weights must not all be 0");
        }
        if self.connections.max == 0 || self.connections.max > crate::limits::CONNECTIONS_MAX {
            bail!(
                "connections.max must be 1..={}",
                crate::limits::CONNECTIONS_MAX
            );
        }
        if self.connections.source_addrs == 0
            || self.connections.source_addrs > crate::limits::SOURCE_ADDRS_MAX
        {
            bail!(
                "connections.source_addrs must be 1..={}",
                crate::limits::SOURCE_ADDRS_MAX
            );
        }
        if self.seed.file_size_bytes > crate::limits::FILE_SIZE_MAX || self.seed.concurrency == 0 {
            bail!("seed: file_size_bytes <= 64 MiB and concurrency >= 1");
        }
        if a.basic_shared_login.is_empty() != a.basic_shared_password.is_empty() {
            bail!("auth: set both basic_shared_login and basic_shared_password, or neither");
        }
        if !self.target.home.contains("{user}") {
            bail!("target.home must contain {{user}}");
        }
        Ok(())
    }
}
