//! Password hashing and verification with argon2id in PHC string format.

use crate::limits::{
    ARGON2_M_COST_KIB, ARGON2_M_COST_MAX_KIB, ARGON2_P_COST, ARGON2_P_COST_MAX, ARGON2_T_COST,
    ARGON2_T_COST_MAX, PASSWORD_LEN_MAX,
};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

/// Why a password or hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("not an argon2id PHC string: {0}")]
    BadHash(String),
    #[error("argon2 parameters out of bounds: {0}")]
    CostTooHigh(String),
    #[error("password is empty")]
    Empty,
    #[error("password longer than {PASSWORD_LEN_MAX} bytes")]
    TooLong,
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Checks that `pw` is acceptable as a new password.
pub fn check_password(pw: &str) -> Result<(), PasswordError> {
    if pw.is_empty() {
        return Err(PasswordError::Empty);
    }
    if pw.len() > PASSWORD_LEN_MAX {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes a new password with the standard cost (see `limits`).
pub fn hash_password(pw: &str) -> Result<String, PasswordError> {
    hash_with(pw, ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST)
}

/// Hashes with explicit argon2id costs (memory KiB, passes, lanes).
pub fn hash_with(pw: &str, m_kib: u32, t: u32, p: u32) -> Result<String, PasswordError> {
    check_password(pw)?;
    let params =
        Params::new(m_kib, t, p, None).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks that `phc` is an argon2id v19 hash whose costs are within the accepted bounds.
pub fn check_phc(phc: &str) -> Result<(), PasswordError> {
    parse_phc(phc).map(|_| ())
}

fn parse_phc(phc: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let bad = |m: &str| PasswordError::BadHash(m.to_string());
    let h = PasswordHash::new(phc).map_err(|e| bad(&e.to_string()))?;
    if h.algorithm.as_str() != "argon2id" {
        return Err(bad("algorithm is not argon2id"));
    }
    if h.version != Some(19) {
        return Err(bad("version is not 19"));
    }
    if h.salt.is_none() || h.hash.is_none() {
        return Err(bad("salt or hash missing"));
    }
    let p = Params::try_from(&h).map_err(|e| bad(&e.to_string()))?;
    if p.m_cost() > ARGON2_M_COST_MAX_KIB
        || p.t_cost() > ARGON2_T_COST_MAX
        || p.p_cost() > ARGON2_P_COST_MAX
    {
        return Err(PasswordError::CostTooHigh(format!(
            "m={} t={} p={} (max m={ARGON2_M_COST_MAX_KIB} t={ARGON2_T_COST_MAX} p={ARGON2_P_COST_MAX})",
            p.m_cost(),
            p.t_cost(),
            p.p_cost()
        )));
    }
    Ok(h)
}

/// Whether `pw` matches `phc` (CPU- and memory-heavy: call off the async runtime).
pub fn verify_password(phc: &str, pw: &str) -> Result<bool, PasswordError> {
    let h = parse_phc(phc)?;
    if pw.len() > PASSWORD_LEN_MAX {
        return Ok(false);
    }
    Ok(Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// A hash of a random password with the standard cost, verified against when the user does
/// not exist, so that a missing user costs as much time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let pw: String = format!("{:032x}", rand::random::<u128>());
        hash_password(&pw).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_with("hemmelig", 64, 1, 1).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password(&h, "hemmelig").unwrap());
        assert!(!verify_password(&h, "Hemmelig").unwrap());
        assert!(!verify_password(&h, "").unwrap());
    }

    #[test]
    fn standard_cost_hash_is_well_formed() {
        let h = hash_password("x").unwrap();
        assert!(h.starts_with(&format!(
            "$argon2id$v=19$m={ARGON2_M_COST_KIB},t={ARGON2_T_COST},p={ARGON2_P_COST}$"
        )));
        assert!(verify_password(&h, "x").unwrap());
        assert!(verify_password(dummy_hash(), "x").is_ok());
    }

    #[test]
    fn foreign_or_costly_hashes_are_refused() {
        assert!(check_phc("plaintext").is_err());
        assert!(
            check_phc("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err()
        );
        assert!(
            check_phc("$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err()
        );
        let big = format!(
            "$argon2id$v=19$m={},t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            ARGON2_M_COST_MAX_KIB + 1
        );
        assert!(matches!(
            check_phc(&big),
            Err(PasswordError::CostTooHigh(_))
        ));
        assert!(
            check_phc("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_ok()
        );
        assert!(check_password("").is_err());
        assert!(check_password(&"x".repeat(PASSWORD_LEN_MAX + 1)).is_err());
    }
}
