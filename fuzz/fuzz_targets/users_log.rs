//! Fuzzes loading the user database from disk: `users/users.log` (magic, then CRC32C-framed
//! postcard entries grouped by commit records) and `users/token.key`, via `UserDb::open`.
//! Input: sections of a u16 little-endian length and a payload; each payload is framed
//! (length, checksum) into the log so the fuzzer reaches the entry decoder and the replay;
//! a section cut short by the end of the input is appended unframed (a torn tail).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skab_server::users::UserDb;

fn data_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skab-fuzz-users-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("users")).expect("temp dir");
        std::fs::write(dir.join("users/token.key"), [7u8; 32]).expect("key");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let log = skab_fuzz::user_log(data);
    let dir = data_dir();
    std::fs::write(dir.join("users/users.log"), &log).expect("write log");
    if let Ok(db) = UserDb::open(dir) {
        let _ = db.user_count();
        // Re-reading the unchanged log must also succeed.
        db.refresh().expect("refresh of an unchanged log");
    }
});
