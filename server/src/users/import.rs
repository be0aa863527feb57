//! Bulk import of users from CSV (`user,tenant,password[,groups]`): all rows or none.

use super::names::{GroupName, TenantName, UserName};
use super::password;
use super::{NewUser, UserDb, UserDbError};
use crate::limits::{IMPORT_ERRORS_SHOWN_MAX, IMPORT_ROWS_MAX};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Read;

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub message: String,
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("CSV: {0}")]
    Csv(String),
    #[error("{total} bad row(s); nothing imported")]
    Rows {
        /// The first bad rows (at most `IMPORT_ERRORS_SHOWN_MAX`).
        shown: Vec<RowError>,
        total: usize,
    },
    #[error(transparent)]
    Db(#[from] UserDbError),
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub users: usize,
    /// Rows whose plaintext password was hashed here.
    pub hashed: usize,
}

struct Row {
    line: u64,
    tenant: TenantName,
    user: UserName,
    secret: Secret,
    groups: Vec<GroupName>,
}

enum Secret {
    Phc(String),
    Plain(String),
}

struct Errors {
    shown: Vec<RowError>,
    total: usize,
}

impl Errors {
    fn push(&mut self, line: u64, message: String) {
        self.total += 1;
        if self.shown.len() < IMPORT_ERRORS_SHOWN_MAX {
            self.shown.push(RowError { line, message });
        }
    }
}

/// Imports users from CSV with a header row naming the columns `user`, `tenant` and
/// `password` (any order; other columns ignored). A `password` value starting with
/// `$argon2` is taken as a PHC hash, anything else as a plaintext password to hash. An
/// optional `groups` column names the user's groups, separated by `;`: missing groups are
/// created, existing ones gain the user.
/// Every row is checked first; any bad row (or an existing user) means nothing is written.
pub fn import_csv(db: &UserDb, input: impl Read) -> Result<ImportReport, ImportError> {
    import_csv_with_progress(db, input, &NoProgress)
}

/// What an import tells while it hashes plaintext passwords (the long part: about 20 ms of
/// one core each, so a million take minutes even on every core).
pub trait ImportProgress: Sync {
    /// The rows are read and checked: `to_hash` plaintext passwords will be hashed.
    fn hashing(&self, to_hash: u64);
    /// One more password hashed (called from the hashing threads).
    fn hashed_one(&self);
}

/// Progress that nobody watches.
pub struct NoProgress;

impl ImportProgress for NoProgress {
    fn hashing(&self, _: u64) {}
    fn hashed_one(&self) {}
}

/// As `import_csv`, telling `progress` how the hashing goes.
pub fn import_csv_with_progress(
    db: &UserDb,
    input: impl Read,
    progress: &dyn ImportProgress,
) -> Result<ImportReport, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Csv(e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| ImportError::Csv(format!("header has no column {name:?}")))
    };
    let (cu, ct, cp) = (col("user")?, col("tenant")?, col("password")?);
    let cg = col("groups").ok();
    let mut errors = Errors {
        shown: Vec::new(),
        total: 0,
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: HashMap<(TenantName, UserName), u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line_hint = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line_hint, |p| p.line());
                errors.push(line, format!("unreadable: {e}"));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line_hint, |p| p.line());
        if rows.len() + errors.total >= IMPORT_ROWS_MAX {
            return Err(ImportError::Csv(format!(
                "more than {IMPORT_ROWS_MAX} rows"
            )));
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let user = match UserName::new(&field(cu).to_ascii_lowercase()) {
            Ok(u) => u,
            Err(e) => {
                errors.push(line, e.to_string());
                continue;
            }
        };
        let tenant = match TenantName::new(&field(ct).to_ascii_lowercase()) {
            Ok(t) => t,
            Err(e) => {
                errors.push(line, e.to_string());
                continue;
            }
        };
        // An unquoted PHC hash has commas (`m=..,t=..,p=..`); when the password is the last
        // column, extra fields are its pieces.
        let joined;
        let pw = if cp + 1 == headers.len() && record.len() > headers.len() {
            joined = record.iter().skip(cp).collect::<Vec<_>>().join(",");
            joined.as_str()
        } else {
            field(cp)
        };
        let secret = if pw.starts_with("$argon2") {
            match password::check_phc(pw) {
                Ok(()) => Secret::Phc(pw.to_string()),
                Err(e) => {
                    errors.push(line, e.to_string());
                    continue;
                }
            }
        } else {
            match password::check_password(pw) {
                Ok(()) => Secret::Plain(pw.to_string()),
                Err(e) => {
                    errors.push(line, e.to_string());
                    continue;
                }
            }
        };
        let groups: Result<Vec<GroupName>, _> = cg
            .map(field)
            .unwrap_or("")
            .split(';')
            .map(|g| g.trim().to_ascii_lowercase())
            .filter(|g| !g.is_empty())
            .map(|g| GroupName::new(&g))
            .collect();
        let groups = match groups {
            Ok(g) => g,
            Err(e) => {
                errors.push(line, e.to_string());
                continue;
            }
        };
        let key = (tenant.clone(), user.clone());
        if let Some(first) = seen.get(&key) {
            errors.push(
                line,
                format!("{user}@{tenant} appears already on line {first}"),
            );
            continue;
        }
        if db.has_user(&tenant, &user) {
            errors.push(line, format!("user exists: {user}@{tenant}"));
            continue;
        }
        seen.insert(key, line);
        rows.push(Row {
            line,
            tenant,
            user,
            secret,
            groups,
        });
    }
    drop(seen);
    if errors.total > 0 {
        return Err(ImportError::Rows {
            shown: errors.shown,
            total: errors.total,
        });
    }
    let hashed = rows
        .iter()
        .filter(|r| matches!(r.secret, Secret::Plain(_)))
        .count();
    progress.hashing(hashed as u64);
    // Plaintext passwords are hashed on all cores (rayon); hashes pass through.
    let results: Vec<Result<NewUser, RowError>> = rows
        .into_par_iter()
        .map(|r| {
            let phc = match r.secret {
                Secret::Phc(p) => p,
                Secret::Plain(p) => {
                    let phc = password::hash_password(&p).map_err(|e| RowError {
                        line: r.line,
                        message: e.to_string(),
                    })?;
                    progress.hashed_one();
                    phc
                }
            };
            Ok(NewUser {
                tenant: r.tenant,
                user: r.user,
                phc,
                groups: r.groups,
            })
        })
        .collect();
    let mut new = Vec::with_capacity(results.len());
    let mut lines = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(n) => new.push(n),
            Err(e) => errors.push(e.line, e.message),
        }
    }
    if errors.total > 0 {
        return Err(ImportError::Rows {
            shown: errors.shown,
            total: errors.total,
        });
    }
    for n in &new {
        lines.push(format!("{}@{}", n.user, n.tenant));
    }
    match db.add_users(new)? {
        Ok(users) => Ok(ImportReport { users, hashed }),
        Err(existing) => {
            // Another writer added some of these users meanwhile.
            for i in existing {
                if let Some(l) = lines.get(i) {
                    errors.push(0, format!("user exists (added meanwhile): {l}"));
                }
            }
            Err(ImportError::Rows {
                shown: errors.shown,
                total: errors.total,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(pw: &str) -> String {
        password::hash_with(pw, 64, 1, 1).unwrap()
    }

    #[test]
    fn imports_hashes_and_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        let h = cheap("a");
        let csv = format!(
            "tenant,user,password,email\ns1,anna,\"{h}\",x\nS1,Bo,plain-pw,y\ns2,carl,\"{h}\",z\n"
        );
        let r = import_csv(&db, csv.as_bytes()).unwrap();
        assert_eq!(
            r,
            ImportReport {
                users: 3,
                hashed: 1
            }
        );
        assert_eq!(db.tenants().len(), 2);
        let bo = db
            .credentials(
                &TenantName::new("s1").unwrap(),
                &UserName::new("bo").unwrap(),
            )
            .unwrap();
        assert!(password::verify_password(&bo.phc, "plain-pw").unwrap());
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(db.user_count(), 3);
    }

    #[test]
    fn groups_column_creates_groups_and_joins_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        let g = |s: &str| GroupName::new(s).unwrap();
        let t = TenantName::new("s1").unwrap();
        db.add_user(&t, &UserName::new("old").unwrap(), &cheap("x"))
            .unwrap();
        db.add_group(&t, &g("9a"), &[UserName::new("old").unwrap()])
            .unwrap();
        let h = cheap("a");
        let csv = format!(
            "user,tenant,groups,password\nanna,s1,9A; y9,{h}\nbo,s1,,{h}\ncarl,s1,y9,{h}\n"
        );
        import_csv(&db, csv.as_bytes()).unwrap();
        let members = |name: &str| -> Vec<String> {
            db.group(&t, &g(name))
                .unwrap()
                .members
                .iter()
                .map(|m| m.to_string())
                .collect()
        };
        assert_eq!(members("9a"), ["anna", "old"]);
        assert_eq!(members("y9"), ["anna", "carl"]);
        assert!(db.groups_of(&t, &UserName::new("bo").unwrap()).is_empty());
        let bad = format!("user,tenant,groups,password\ndan,s1,ok;bad group,{h}\n");
        assert!(matches!(
            import_csv(&db, bad.as_bytes()),
            Err(ImportError::Rows { total: 1, .. })
        ));
        assert!(!db.has_user(&t, &UserName::new("dan").unwrap()));
    }

    #[test]
    fn bad_rows_reported_with_lines_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        db.add_user(
            &TenantName::new("s1").unwrap(),
            &UserName::new("old").unwrap(),
            &cheap("x"),
        )
        .unwrap();
        let h = cheap("a");
        let csv = format!(
            "user,tenant,password\nok1,s1,{h}\nbad name,s1,{h}\nok2,s1,$argon2id$v=19$broken\n\
             ok1,s1,{h}\nold,s1,{h}\nok3,s1,\nok4,s1,{h}\n"
        );
        let Err(ImportError::Rows { shown, total }) = import_csv(&db, csv.as_bytes()) else {
            panic!("expected row errors");
        };
        assert_eq!(total, 5);
        let lines: Vec<u64> = shown.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert!(shown[2].message.contains("line 2"), "{}", shown[2].message);
        assert_eq!(db.user_count(), 1, "nothing imported");
        assert!(matches!(
            import_csv(&db, "name,password\nx,y\n".as_bytes()),
            Err(ImportError::Csv(_))
        ));
    }
}
