//! The store's identity file: format version, shard count and the dedup master secret.
//!
//! `store.meta` (see `docs/formats.md`): `b"SKABMETA"`, format version u32, shard count u32,
//! master secret [32], CRC32C u32. Created once, atomically; never rewritten.

use super::{StoreConfig, SHARDS_MAX};
use crate::error::{Error, Result};
use crate::io::Storage;

pub(crate) const NAME: &str = "store.meta";
pub(crate) const MAGIC: &[u8; 8] = b"SKABMETA";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const LEN: usize = 8 + 4 + 4 + 32 + 4;

pub(crate) struct Meta {
    pub shards: usize,
    pub master: [u8; 32],
}

fn encode(m: &Meta) -> Vec<u8> {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&(m.shards as u32).to_le_bytes());
    b.extend_from_slice(&m.master);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode(b: &[u8]) -> Result<Meta> {
    let bad = |why: &str| Error::Corrupt(format!("{NAME}: {why}"));
    if b.len() != LEN || &b[..8] != MAGIC {
        return Err(bad("not a Skab store identity file"));
    }
    let crc = u32::from_le_bytes(b[LEN - 4..].try_into().map_err(|_| bad("crc"))?);
    if crc32c::crc32c(&b[..LEN - 4]) != crc {
        return Err(bad("checksum mismatch"));
    }
    let version = u32::from_le_bytes(b[8..12].try_into().map_err(|_| bad("version"))?);
    if version != FORMAT_VERSION {
        return Err(bad(&format!(
            "the data dir has store format version {version}, this skab reads version \
             {FORMAT_VERSION} only: run the skab release that wrote it (docs/operations.md, \
             \"Upgrades\")"
        )));
    }
    let shards = u32::from_le_bytes(b[12..16].try_into().map_err(|_| bad("shards"))?) as usize;
    if shards == 0 || shards > SHARDS_MAX {
        return Err(bad("shard count out of range"));
    }
    let mut master = [0u8; 32];
    master.copy_from_slice(&b[16..48]);
    Ok(Meta { shards, master })
}

/// Reads the identity file, or creates it for a new store.
pub(crate) fn load_or_create(storage: &dyn Storage, config: &StoreConfig) -> Result<Meta> {
    match storage.open(NAME, false) {
        Ok(f) => {
            let len = f.len()? as usize;
            if len != LEN {
                return Err(Error::Corrupt(format!("{NAME}: wrong length {len}")));
            }
            let mut b = vec![0u8; LEN];
            f.read_exact_at(&mut b, 0)?;
            decode(&b)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if config.shards == 0 || config.shards > SHARDS_MAX {
                return Err(Error::Invalid("shard count out of range"));
            }
            let mut master = [0u8; 32];
            rand::Rng::fill(&mut rand::rngs::OsRng, &mut master);
            let meta = Meta {
                shards: config.shards,
                master,
            };
            let tmp = format!("{NAME}.tmp");
            let f = storage.open(&tmp, true)?;
            f.truncate(0)?;
            f.write_batch(&[(0, &encode(&meta))], true)?;
            drop(f);
            storage.rename(&tmp, NAME)?;
            storage.sync_dir("")?;
            Ok(meta)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let m = Meta {
            shards: 64,
            master: [9; 32],
        };
        let b = encode(&m);
        let d = decode(&b).unwrap();
        assert_eq!((d.shards, d.master), (64, [9; 32]));
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 2;
            assert!(decode(&x).is_err());
        }
    }

    #[test]
    fn another_format_version_is_refused_with_both_versions_named() {
        let mut b = encode(&Meta {
            shards: 4,
            master: [1; 32],
        });
        b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[..LEN - 4]);
        b[LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        let e = decode(&b).err().unwrap().to_string();
        assert!(
            e.contains(&format!("version {}", FORMAT_VERSION + 1))
                && e.contains(&format!("reads version {FORMAT_VERSION}")),
            "{e}"
        );
    }
}
