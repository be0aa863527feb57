//! Test populations: writing and reading `users.csv` (user, tenant, password[, token]).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::{distributions::Alphanumeric, Rng, SeedableRng};

use crate::limits::USERS_MAX;

/// One account of the test population.
#[derive(Clone, Debug)]
pub struct User {
    pub user: String,
    pub tenant: String,
    pub password: String,
    /// An app token (`skab_at_...`) for this user, when the operator created one.
    pub token: Option<String>,
}

impl User {
    /// `user@tenant`, the login name and the JWT `preferred_username`.
    pub fn login(&self) -> String {
        format!("{}@{}", self.user, self.tenant)
    }
}

/// What `users` writes.
pub struct GenSpec<'a> {
    pub count: u64,
    pub tenant: &'a str,
    /// Spread users over this many tenants `T`, `T-1`, ... (1: all in `T`).
    pub tenants: u64,
    pub seed: u64,
}

/// Writes `users.csv`; with `import_out`, all users share one random password and
/// `import_out` gets the `skab user import` file with its argon2id PHC hash (hashed once).
pub fn generate(spec: &GenSpec, out: &Path, import_out: Option<&Path>) -> Result<()> {
    if spec.count == 0 || spec.count > USERS_MAX as u64 {
        bail!("--count must be 1..={USERS_MAX}");
    }
    if spec.tenants == 0 || spec.tenants > spec.count {
        bail!("--tenants must be 1..=count");
    }
    check_name(spec.tenant)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let shared: Option<String> = import_out.map(|_| random_password(&mut rng));
    let phc = match &shared {
        Some(p) => Some(hash_password(p)?),
        None => None,
    };
    let mut w = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?,
    );
    let mut imp = match import_out {
        Some(p) => Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    writeln!(w, "user,tenant,password")?;
    if let Some(f) = imp.as_mut() {
        writeln!(f, "user,tenant,password")?;
    }
    let width = spec.count.to_string().len().max(6);
    for i in 0..spec.count {
        let user = format!("u{i:0width$}");
        let tenant = tenant_name(spec.tenant, spec.tenants, i);
        let password = match &shared {
            Some(p) => p.clone(),
            None => random_password(&mut rng),
        };
        writeln!(w, "{user},{tenant},{password}")?;
        if let (Some(f), Some(h)) = (imp.as_mut(), phc.as_ref()) {
            writeln!(f, "{user},{tenant},\"{h}\"")?;
        }
    }
    w.flush()?;
    if let Some(mut f) = imp {
        f.flush()?;
    }
    Ok(())
}

fn tenant_name(base: &str, tenants: u64, i: u64) -> String {
    if tenants <= 1 {
        base.to_string()
    } else {
        format!("{base}-{}", i % tenants)
    }
}

fn random_password(rng: &mut impl Rng) -> String {
    (0..20).map(|_| rng.sample(Alphanumeric) as char).collect()
}

/// argon2id v19, m = 19 MiB, t = 2, p = 1: the cost skab uses for its own hashes.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let params = argon2::Params::new(19_456, 2, 1, Some(32))
        .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    Ok(a.hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

fn check_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 60
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && n.as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        bail!("tenant name {n:?}: use 1-60 of [a-z0-9._-], starting with a letter or digit");
    }
    Ok(())
}

/// Reads a users.csv: columns `user`, `tenant`, `password` (any order), optional `token`.
pub fn load(path: &Path) -> Result<Vec<User>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("open {}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(cu), Some(ct), Some(cp)) = (col("user"), col("tenant"), col("password")) else {
        bail!(
            "{}: header must name user, tenant, password",
            path.display()
        );
    };
    let ck = col("token");
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        if out.len() >= USERS_MAX {
            bail!("{}: more than {USERS_MAX} users", path.display());
        }
        let get = |c: usize| rec.get(c).map(str::to_string);
        let (Some(user), Some(tenant), Some(password)) = (get(cu), get(ct), get(cp)) else {
            bail!("{}: row {} has too few columns", path.display(), i + 2);
        };
        let token = ck.and_then(get).filter(|t| !t.is_empty());
        out.push(User {
            user,
            tenant,
            password,
            token,
        });
    }
    if out.is_empty() {
        bail!("{}: no users", path.display());
    }
    Ok(out)
}
