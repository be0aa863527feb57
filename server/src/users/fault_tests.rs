//! The user database on the engine's crash and fault-injection storage: whatever write or
//! sync fails, and whatever a power loss then leaves, a reopened database holds every
//! acknowledged change and nothing half-applied (the failed change wholly or not at all);
//! in the clear and sealed with the tenant's key (encryption at rest).

use super::*;
use skab_engine::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};

fn t(s: &str) -> TenantName {
    TenantName::new(s).unwrap()
}
fn u(s: &str) -> UserName {
    UserName::new(s).unwrap()
}
fn g(s: &str) -> GroupName {
    GroupName::new(s).unwrap()
}

/// One change; the PHC strings are fixed so that two runs of the same steps write the
/// same bytes.
#[derive(Clone, Debug)]
enum Step {
    Add(&'static str),
    Password(&'static str, usize),
    Disable(&'static str),
    Quota(&'static str, u64),
    Delete(&'static str),
    Group(&'static str, Vec<&'static str>),
    Members(&'static str, Vec<&'static str>, Vec<&'static str>),
    Import(Vec<&'static str>),
    Compact,
}

fn script() -> Vec<Step> {
    use Step::*;
    vec![
        Add("anna"),
        Add("bo"),
        Import(vec!["c1", "c2", "c3", "c4"]),
        Group("9a", vec!["anna", "c1", "c2"]),
        Password("anna", 1),
        Quota("bo", 77),
        Members("9a", vec!["bo"], vec!["c1"]),
        Compact,
        Disable("c3"),
        Delete("c2"),
        Add("late"),
        Group("y9", vec!["late", "anna"]),
        Password("bo", 2),
        Compact,
        Members("y9", vec!["c4"], vec![]),
        Delete("anna"),
    ]
}

fn run(db: &UserDb, step: &Step, phcs: &[String]) -> Result<(), UserDbError> {
    let s = t("s");
    match step {
        Step::Add(n) => db.add_user(&s, &u(n), &phcs[0]),
        Step::Password(n, i) => db.set_password(&s, &u(n), &phcs[*i]),
        Step::Disable(n) => db.set_disabled(&s, &u(n), true),
        Step::Quota(n, q) => db.set_quota(&s, &u(n), Some(*q)),
        Step::Delete(n) => db.delete_user(&s, &u(n)),
        Step::Group(name, m) => {
            let m: Vec<UserName> = m.iter().map(|x| u(x)).collect();
            db.add_group(&s, &g(name), &m)
        }
        Step::Members(name, add, remove) => {
            let add: Vec<UserName> = add.iter().map(|x| u(x)).collect();
            let remove: Vec<UserName> = remove.iter().map(|x| u(x)).collect();
            db.change_group_members(&s, &g(name), &add, &remove)
        }
        Step::Import(names) => {
            let new = names
                .iter()
                .map(|n| NewUser {
                    tenant: s.clone(),
                    user: u(n),
                    phc: phcs[0].clone(),
                    groups: vec![g("all")],
                })
                .collect();
            db.add_users(new).map(|r| assert!(r.is_ok()))
        }
        Step::Compact => db.compact().map(|_| ()),
    }
}

/// Everything a reader can see, epochs included; creation times (the clock's second when a
/// step ran, which differs between the faulty run and the clean one it is compared with) as
/// `created: _`.
fn view(db: &UserDb) -> Vec<String> {
    let mut v = Vec::new();
    for ti in db.tenants() {
        v.push(format!("{ti:?}"));
        for ui in db.users(&ti.name).unwrap() {
            let c = db.credentials(&ti.name, &ui.user).unwrap();
            v.push(format!("{ui:?} {} {} {}", c.phc, c.disabled, c.epoch));
        }
        for gi in db.groups(&ti.name).unwrap() {
            v.push(format!("{gi:?}"));
        }
    }
    let mut v: Vec<String> = v.iter().map(|line| without_times(line)).collect();
    v.sort();
    v
}

fn without_times(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("created: ") {
        let after = &rest[at + "created: ".len()..];
        out.push_str(&rest[..at]);
        out.push_str("created: _");
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The database on `storage`, sealed by `sealer` if given.
fn open(storage: Arc<dyn Storage>, sealer: &Option<Arc<Sealer>>) -> UserDb {
    match sealer {
        Some(s) => UserDb::open_on_sealed(storage, s.clone()).unwrap(),
        None => UserDb::open_on(storage).unwrap(),
    }
}

/// The view after the first `n` steps, run without faults.
fn clean_view(n: usize, phcs: &[String], sealer: &Option<Arc<Sealer>>) -> Vec<String> {
    let db = open(Arc::new(MemStorage::new()), sealer);
    for step in &script()[..n] {
        run(&db, step, phcs).unwrap();
    }
    view(&db)
}

#[test]
fn a_failed_write_or_sync_then_a_crash_loses_no_acknowledged_change() {
    faults_then_crash(None);
}

#[test]
fn sealed_a_failed_write_or_sync_then_a_crash_loses_no_acknowledged_change() {
    let keys = tempfile::tempdir().unwrap();
    let store = skab_engine::crypt::KeyStore::open(
        keys.path(),
        skab_engine::crypt::MasterKey::from_bytes(&[3; 32]),
        true,
    )
    .unwrap();
    faults_then_crash(Some(Arc::new(Sealer::on(Arc::new(store)))));
}

fn faults_then_crash(sealer: Option<Arc<Sealer>>) {
    let phcs: Vec<String> = ["pw0", "pw1", "pw2"]
        .iter()
        .map(|p| password::hash_with(p, 8, 1, 1).unwrap())
        .collect();
    let steps = script();
    let full = clean_view(steps.len(), &phcs, &sealer);
    let mut failures_seen = 0;
    for fault in 1..=40u64 {
        for (kind, mode) in [
            ("write", CrashMode::DurableOnly),
            ("sync", CrashMode::TornTail { seed: fault }),
            ("space", CrashMode::ZeroTail { seed: fault }),
        ] {
            let mem = Arc::new(MemStorage::new());
            let plan = FaultPlan::new();
            let faulty = Arc::new(FaultyStorage::new(mem.clone(), plan.clone()));
            let db = open(faulty, &sealer);
            match kind {
                "write" => plan.fail_nth_write(fault),
                "sync" => plan.fail_nth_sync(fault),
                _ => plan.set_space_left(Some(fault * 97)),
            }
            let mut acked = 0;
            let mut failed = None;
            for (i, step) in steps.iter().enumerate() {
                match run(&db, step, &phcs) {
                    Ok(()) => acked = i + 1,
                    Err(e) => {
                        failed = Some((i, e.to_string()));
                        break;
                    }
                }
            }
            drop(db);
            let crashed = Arc::new(mem.crash(mode));
            let after = open(crashed.clone(), &sealer);
            let seen = view(&after);
            let what = format!("{kind} fault {fault}, failed {failed:?}");
            match failed {
                None => assert_eq!(seen, full, "{what}"),
                Some((i, _)) => {
                    failures_seen += 1;
                    let before = clean_view(acked, &phcs, &sealer);
                    let with_failed = clean_view(i + 1, &phcs, &sealer);
                    assert!(
                        seen == before || seen == with_failed,
                        "{what}: neither the acknowledged state nor it plus the failed step\n\
                         seen {seen:#?}\nacked {before:#?}"
                    );
                }
            }
            assert_eq!(after.ignored_ops(), 0, "{kind} fault {fault}");
            // The reopened database takes writes and keeps them across another crash.
            after.add_user(&t("s"), &u("next"), &phcs[0]).unwrap();
            let expect = view(&after);
            drop(after);
            let again = open(Arc::new(crashed.crash(CrashMode::DurableOnly)), &sealer);
            assert_eq!(view(&again), expect, "{what}: after the second crash");
        }
    }
    assert!(failures_seen > 60, "faults hit only {failures_seen} runs");
}
