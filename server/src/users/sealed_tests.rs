//! The user database sealed with its tenants' keys (encryption at rest): no name, label or
//! hash in the clear in its files; everything back after a reopen and after a compaction;
//! records written in the clear before are sealed at the next open; a tenant whose key is
//! erased is gone on reopen while the other tenant stays; a database opened without the key
//! refuses the sealed log instead of taking it for a torn tail.

use super::*;
use skab_engine::crypt::{KeyStore, MasterKey};

fn t(s: &str) -> TenantName {
    TenantName::new(s).unwrap()
}
fn u(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

const MARK: &str = "sealmarker";

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    keys: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let keys = tmp.path().join("keys");
        KeyStore::open(&keys, MasterKey::from_bytes(&[7; 32]), true).unwrap();
        Fixture {
            _tmp: tmp,
            data,
            keys,
        }
    }

    fn sealer(&self) -> Arc<Sealer> {
        let k = KeyStore::open(&self.keys, MasterKey::from_bytes(&[7; 32]), false).unwrap();
        Arc::new(Sealer::on(Arc::new(k)))
    }

    fn open(&self) -> Result<UserDb, UserDbError> {
        UserDb::open_files(
            Files::on_disk(&self.data.join(USERS_DIR))?,
            Some(self.sealer()),
        )
    }

    fn open_plain(&self) -> Result<UserDb, UserDbError> {
        UserDb::open_files(Files::on_disk(&self.data.join(USERS_DIR))?, None)
    }

    /// Whether any file of the user database holds `needle`.
    fn anywhere(&self, needle: &[u8]) -> bool {
        std::fs::read_dir(self.data.join(USERS_DIR))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
            .any(|b| b.windows(needle.len()).any(|w| w == needle))
    }
}

fn fill(db: &UserDb, tenant: &str) -> String {
    let phc = tests::test_phc("pw");
    db.add_user(&t(tenant), &u(&format!("{MARK}user")), &phc)
        .unwrap();
    db.add_user(&t(tenant), &u("plainname"), &phc).unwrap();
    db.add_group(
        &t(tenant),
        &GroupName::new(&format!("{MARK}group")).unwrap(),
        &[u(&format!("{MARK}user"))],
    )
    .unwrap();
    db.create_token(
        &t(tenant),
        &u(&format!("{MARK}user")),
        &format!("{MARK}label"),
    )
    .unwrap();
    db.set_disabled(&t(tenant), &u("plainname"), true).unwrap();
    phc
}

#[test]
fn names_and_hashes_are_sealed_and_come_back() {
    let f = Fixture::new();
    let db = f.open().unwrap();
    let phc = fill(&db, "school");
    fill(&db, "other");
    let epoch = db.credentials(&t("school"), &u("plainname")).unwrap().epoch;
    drop(db);
    assert!(!f.anywhere(MARK.as_bytes()));
    assert!(!f.anywhere(b"plainname"));
    assert!(!f.anywhere(phc.as_bytes()));
    assert!(!f.anywhere(b"argon2id"));
    assert!(f.anywhere(b"school"), "tenant names stay in the clear");

    let db = f.open().unwrap();
    assert_eq!(db.ignored_ops(), 0);
    let c = db.credentials(&t("school"), &u("plainname")).unwrap();
    assert!(c.disabled);
    assert_eq!(
        c.epoch, epoch,
        "operation numbers are stable across reopening"
    );
    assert_eq!(&*c.phc, phc.as_str());
    let g = db.groups(&t("school")).unwrap();
    assert_eq!(g[0].members, [u(&format!("{MARK}user"))]);
    let toks = db.tokens(&t("school"), &u(&format!("{MARK}user"))).unwrap();
    assert_eq!(toks[0].label, format!("{MARK}label"));
    db.compact().unwrap();
    drop(db);
    assert!(!f.anywhere(MARK.as_bytes()));
    let db = f.open().unwrap();
    assert_eq!(db.users(&t("school")).unwrap().len(), 2);
    assert_eq!(db.users(&t("other")).unwrap().len(), 2);
    drop(db);

    // Without the key the sealed log is refused, not cut as torn.
    let len = std::fs::metadata(f.data.join(USERS_DIR).join(files::LOG_FILE))
        .unwrap()
        .len();
    let e = f.open_plain().err().unwrap().to_string();
    assert!(e.contains("crypto.enabled is off"), "{e}");
    let after = std::fs::metadata(f.data.join(USERS_DIR).join(files::LOG_FILE))
        .unwrap()
        .len();
    assert_eq!(len, after);
}

#[test]
fn clear_records_are_sealed_at_the_next_open() {
    let f = Fixture::new();
    let db = f.open_plain().unwrap();
    fill(&db, "school");
    drop(db);
    assert!(f.anywhere(MARK.as_bytes()));
    let db = f.open().unwrap();
    assert_eq!(db.users(&t("school")).unwrap().len(), 2);
    drop(db);
    // The log was rewritten sealed (a compaction's leftovers hold nothing either).
    assert!(!f.anywhere(MARK.as_bytes()));
    assert_eq!(f.open().unwrap().users(&t("school")).unwrap().len(), 2);
}

#[test]
fn an_erased_tenant_is_gone_and_the_other_stays() {
    let f = Fixture::new();
    let db = f.open().unwrap();
    fill(&db, "school");
    fill(&db, "other");
    drop(db);
    let before = f._tmp.path().join("before");
    std::fs::create_dir_all(&before).unwrap();
    for e in std::fs::read_dir(f.data.join(USERS_DIR)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), before.join(e.file_name())).unwrap();
    }
    let db = f.open().unwrap();
    KeyStore::erase_at(&f.keys, "school").unwrap();
    assert_eq!(db.erase_tenant(&t("school")).unwrap(), 2);
    assert!(db.user(&t("school"), &u("plainname")).is_none());
    drop(db);
    let db = f.open().unwrap();
    assert!(db.tenants().iter().all(|i| i.name.as_str() != "school"));
    assert_eq!(db.users(&t("other")).unwrap().len(), 2);
    drop(db);
    // The copy taken before, opened with today's key store: the tenant's users are
    // unreadable, the other tenant's are all there.
    std::fs::remove_dir_all(f.data.join(USERS_DIR)).unwrap();
    std::fs::rename(&before, f.data.join(USERS_DIR)).unwrap();
    let db = f.open().unwrap();
    assert!(db.users(&t("school")).map_or(true, |v| v.is_empty()));
    assert!(db.credentials(&t("school"), &u("plainname")).is_none());
    assert_eq!(db.users(&t("other")).unwrap().len(), 2);
}

/// The frames of the log file: (sealed frames, plain frames).
fn frame_counts(f: &Fixture) -> (usize, usize) {
    let b = std::fs::read(f.data.join(USERS_DIR).join(files::LOG_FILE)).unwrap();
    let mut at = log::MAGIC.len();
    let (mut sealed, mut plain) = (0, 0);
    while at + log::FRAME_HEADER <= b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        match log::first_entry(&b[at..]).unwrap() {
            log::Entry::Sealed { .. } => sealed += 1,
            log::Entry::Op(_) => plain += 1,
            log::Entry::Commit { .. } => {}
        }
        at += log::FRAME_HEADER + len;
    }
    (sealed, plain)
}

#[test]
fn an_import_of_interleaved_schools_is_sealed_per_school_not_per_user() {
    let f = Fixture::new();
    let db = f.open().unwrap();
    let phc = tests::test_phc("pw");
    let schools = ["s1", "s2", "s3"];
    let new: Vec<NewUser> = (0..600)
        .map(|i| NewUser {
            tenant: t(schools[i % 3]),
            user: u(&format!("elev{i}")),
            phc: phc.clone(),
            groups: vec![GroupName::new("alle").unwrap()],
        })
        .collect();
    assert_eq!(db.add_users(new).unwrap(), Ok(600));
    let s1_epochs: Vec<u64> = (0..600)
        .step_by(3)
        .map(|i| {
            db.credentials(&t("s1"), &u(&format!("elev{i}")))
                .unwrap()
                .epoch
        })
        .collect();
    drop(db);
    let (sealed, plain) = frame_counts(&f);
    // Each school's 200 users (and its group) in a few sealed frames, its TenantAdd plain.
    assert!(sealed <= 3 * 4, "{sealed} sealed frames for 600 users");
    assert_eq!(plain, 3);
    let db = f.open().unwrap();
    for s in schools {
        assert_eq!(db.users(&t(s)).unwrap().len(), 200);
        assert_eq!(db.groups(&t(s)).unwrap()[0].members.len(), 200);
    }
    let again: Vec<u64> = (0..600)
        .step_by(3)
        .map(|i| {
            db.credentials(&t("s1"), &u(&format!("elev{i}")))
                .unwrap()
                .epoch
        })
        .collect();
    assert_eq!(s1_epochs, again, "numbers as written are numbers as read");
    assert!(s1_epochs.windows(2).all(|w| w[0] < w[1]));
}
