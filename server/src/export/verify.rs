//! `skab export --verify`: an archive checked offline against its manifest, in one pass with
//! memory bounded by the manifest: the manifest is the first member and follows the schema;
//! every file the manifest names is there once with its size and BLAKE3, every folder is
//! there, and nothing else is.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tar::EntryType;

use super::manifest::{Manifest, MANIFEST_NAME};
use super::tarball::member_name;
use crate::limits::EXPORT_MANIFEST_LEN_MAX;

/// What a verification found.
pub struct Verified {
    pub manifest: Manifest,
    /// Each file member's (data offset in the archive, size).
    pub positions: HashMap<String, (u64, u64)>,
    /// Everything wrong; empty when the archive is whole.
    pub problems: Vec<String>,
}

/// Reads the manifest from the first member of `r`'s archive.
fn read_manifest<R: Read>(
    e: Option<std::io::Result<tar::Entry<'_, R>>>,
) -> Result<Manifest, String> {
    let mut e = e
        .ok_or("the archive is empty")?
        .map_err(|e| format!("not a tar archive: {e}"))?;
    if member_name(&e)? != MANIFEST_NAME || e.header().entry_type() != EntryType::Regular {
        return Err(format!(
            "the first member is not {MANIFEST_NAME}: not a Skab export"
        ));
    }
    if e.size() > EXPORT_MANIFEST_LEN_MAX {
        return Err(format!(
            "{MANIFEST_NAME} is larger than {EXPORT_MANIFEST_LEN_MAX} bytes"
        ));
    }
    let mut json = Vec::with_capacity(e.size() as usize);
    e.read_to_end(&mut json)
        .map_err(|e| format!("{MANIFEST_NAME}: {e}"))?;
    let m: Manifest = serde_json::from_slice(&json)
        .map_err(|e| format!("{MANIFEST_NAME} does not follow the schema: {e}"))?;
    m.check()?;
    Ok(m)
}

/// The manifest of the archive at `path`, read from its first member alone.
pub fn peek_manifest(path: &Path) -> Result<Manifest, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    read_manifest(entries.next())
}

/// Checks the archive at `path`. `Err` when it cannot be read as an export at all.
pub fn verify(path: &Path) -> Result<Verified, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    let manifest = read_manifest(entries.next())?;
    let mut want_files: HashMap<&str, (u64, &str)> = manifest
        .files()
        .into_iter()
        .map(|(m, size, hash)| (m, (size, hash)))
        .collect();
    let mut want_dirs: std::collections::HashSet<&str> = manifest.dirs().into_iter().collect();
    let mut positions = HashMap::new();
    let mut problems = Vec::new();
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(err) => {
                problems.push(format!(
                    "the archive is damaged after its last good member: {err}"
                ));
                break;
            }
        };
        let name = match member_name(&e) {
            Ok(n) => n,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        match e.header().entry_type() {
            EntryType::Directory => {
                if !want_dirs.remove(name.as_str()) {
                    problems.push(format!("{name}/: not in the manifest (or twice)"));
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                let Some((size, hash)) = want_files.remove(name.as_str()) else {
                    problems.push(format!("{name}: not in the manifest (or twice)"));
                    continue;
                };
                positions.insert(name.clone(), (e.raw_file_position(), e.size()));
                let mut h = blake3::Hasher::new();
                let mut n = 0u64;
                loop {
                    match e.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => {
                            h.update(&buf[..k]);
                            n += k as u64;
                        }
                        Err(err) => {
                            problems.push(format!("{name}: {err}"));
                            break;
                        }
                    }
                }
                files += 1;
                bytes += n;
                if n != size {
                    problems.push(format!("{name}: {n} bytes, the manifest says {size}"));
                } else if h.finalize().to_hex().as_str() != hash {
                    problems.push(format!("{name}: BLAKE3 does not match the manifest"));
                }
            }
            other => problems.push(format!("{name}: unexpected member type {other:?}")),
        }
    }
    let mut missing: Vec<String> = want_files
        .keys()
        .map(|m| format!("{m}: missing"))
        .chain(want_dirs.iter().map(|d| format!("{d}/: missing")))
        .collect();
    missing.sort();
    problems.extend(missing);
    if problems.is_empty() && (files != manifest.totals.files || bytes != manifest.totals.bytes) {
        problems.push(format!(
            "totals: {files} files of {bytes} bytes, the manifest says {} of {}",
            manifest.totals.files, manifest.totals.bytes
        ));
    }
    Ok(Verified {
        manifest,
        positions,
        problems,
    })
}
