//! Bearer JWT verification against the configured issuers (HS256, RS256, ES256).

use crate::config::{JwtAlgorithm, JwtIssuerConfig};
use crate::users::{parse_login, GroupName, TenantName, UserName};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Why a JWT was refused (all map to 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("no JWT issuer is configured")]
    NotConfigured,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("no configured issuer accepts the token: {0}")]
    Rejected(String),
    #[error("claim {0:?} missing or not a valid name")]
    Claim(String),
    /// Signed by a configured issuer, but expired or not yet valid: a client that must
    /// fetch a fresh token, not a forgery.
    #[error("token expired or not yet valid")]
    Expired,
}

impl JwtError {
    /// Whether a configured issuer's signature checked out (the refusal is about claims):
    /// no evidence of guessing, so not counted against the source.
    pub fn signature_valid(&self) -> bool {
        matches!(self, JwtError::Expired | JwtError::Claim(_))
    }
}

struct Issuer {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
    user_claim: String,
    tenant_claim: Option<String>,
    groups_claim: Option<String>,
}

/// The configured issuers.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
}

fn claim_str<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, JwtError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Claim(name.to_string()))
}

/// The groups a claim lists: an array of strings, or one string separated by spaces or
/// commas; lower-cased, a leading `/` (Keycloak's group paths) dropped, at most
/// `JWT_CLAIM_GROUPS_MAX`, invalid names left out.
fn claim_groups(claims: &Map<String, Value>, name: &str) -> Vec<GroupName> {
    let names: Vec<&str> = match claims.get(name) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split([' ', ',']).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<GroupName> = names
        .into_iter()
        .filter_map(|n| GroupName::new(&n.trim().trim_start_matches('/').to_ascii_lowercase()).ok())
        .take(crate::limits::JWT_CLAIM_GROUPS_MAX)
        .collect();
    out.sort();
    out.dedup();
    out
}

impl JwtVerifier {
    /// Builds the verifier, reading key files now (a bad key fails at start, not per request).
    pub fn from_config(cfg: &[JwtIssuerConfig]) -> Result<JwtVerifier, String> {
        let mut issuers = Vec::with_capacity(cfg.len());
        for (i, c) in cfg.iter().enumerate() {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| format!("auth.jwt[{i}]: {}: {e}", p.display()))
            };
            let (alg, key) = match c.algorithm {
                JwtAlgorithm::HS256 => {
                    let secret = match (&c.secret, &c.secret_file) {
                        (Some(s), _) => s.as_bytes().to_vec(),
                        (None, Some(p)) => read(p)?,
                        (None, None) => return Err(format!("auth.jwt[{i}]: no secret")),
                    };
                    (Algorithm::HS256, DecodingKey::from_secret(&secret))
                }
                JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                    let pem = match (&c.public_key_pem, &c.public_key_file) {
                        (Some(s), _) => s.as_bytes().to_vec(),
                        (None, Some(p)) => read(p)?,
                        (None, None) => return Err(format!("auth.jwt[{i}]: no public key")),
                    };
                    let bad = |e: jsonwebtoken::errors::Error| format!("auth.jwt[{i}]: key: {e}");
                    if c.algorithm == JwtAlgorithm::RS256 {
                        (
                            Algorithm::RS256,
                            DecodingKey::from_rsa_pem(&pem).map_err(bad)?,
                        )
                    } else {
                        (
                            Algorithm::ES256,
                            DecodingKey::from_ec_pem(&pem).map_err(bad)?,
                        )
                    }
                }
            };
            let mut validation = Validation::new(alg);
            validation.set_issuer(&[&c.issuer]);
            validation.set_audience(&[&c.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.validate_nbf = true;
            validation.leeway = c.leeway_s;
            issuers.push(Issuer {
                alg,
                key,
                validation,
                user_claim: c.user_claim.clone(),
                tenant_claim: c.tenant_claim.clone(),
                groups_claim: c.groups_claim.clone(),
            });
        }
        Ok(JwtVerifier { issuers })
    }

    /// Whether any issuer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Verifies signature, `exp`, `nbf`, `iss` and `aud`, then maps the claims to a user.
    pub fn verify(&self, token: &str) -> Result<(TenantName, UserName), JwtError> {
        self.verify_with_expiry(token).map(|(t, u, _)| (t, u))
    }

    /// As [`JwtVerifier::verify`], with the token's `exp` (seconds since the epoch).
    pub fn verify_with_expiry(&self, token: &str) -> Result<(TenantName, UserName, u64), JwtError> {
        self.verify_with_groups(token).map(|(t, u, e, _)| (t, u, e))
    }

    /// As [`JwtVerifier::verify_with_expiry`], with the groups its issuer's `groups_claim`
    /// names (empty without one; names that are not valid group names are left out).
    pub fn verify_with_groups(
        &self,
        token: &str,
    ) -> Result<(TenantName, UserName, u64, Vec<GroupName>), JwtError> {
        if self.issuers.is_empty() {
            return Err(JwtError::NotConfigured);
        }
        let header = decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        let mut last = JwtError::Rejected(format!("no issuer uses {:?}", header.alg));
        for iss in self.issuers.iter().filter(|i| i.alg == header.alg) {
            match decode::<Map<String, Value>>(token, &iss.key, &iss.validation) {
                Ok(data) => {
                    let claims = data.claims;
                    // Required and checked by the validation; a fractional one is cut down.
                    let exp = claims
                        .get("exp")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| JwtError::Claim("exp".into()))?
                        .max(0.0) as u64;
                    let user_value = claim_str(&claims, &iss.user_claim)?;
                    let (tenant, user) = match &iss.tenant_claim {
                        None => parse_login(user_value)
                            .map_err(|_| JwtError::Claim(iss.user_claim.clone()))?,
                        Some(tc) => {
                            let t = claim_str(&claims, tc)?.to_ascii_lowercase();
                            let u = user_value.to_ascii_lowercase();
                            (
                                TenantName::new(&t).map_err(|_| JwtError::Claim(tc.clone()))?,
                                UserName::new(&u)
                                    .map_err(|_| JwtError::Claim(iss.user_claim.clone()))?,
                            )
                        }
                    };
                    let groups = iss
                        .groups_claim
                        .as_ref()
                        .map(|c| claim_groups(&claims, c))
                        .unwrap_or_default();
                    return Ok((tenant, user, exp, groups));
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    // jsonwebtoken checks the signature before the claims: these kinds
                    // come only with a valid signature.
                    let signed = match e.kind() {
                        K::ExpiredSignature | K::ImmatureSignature => Some(JwtError::Expired),
                        K::InvalidIssuer
                        | K::InvalidAudience
                        | K::InvalidSubject
                        | K::MissingRequiredClaim(_) => Some(JwtError::Claim(e.to_string())),
                        _ => None,
                    };
                    match signed {
                        // A signature an issuer vouches for beats another issuer's refusal.
                        Some(s) => last = s,
                        None if !last.signature_valid() => last = JwtError::Rejected(e.to_string()),
                        None => {}
                    }
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    pub(crate) const EC_PRIVATE_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglsJYw04aUQOnBnSf
URm1PgmnmNbtHSZVU9pxbACHdWShRANCAARUPi8srPMzW87FdKnQlDMldfIhC3W3
S8297db6iUeYDAAgnSuT9b+91S21Ef+bge1j8198gXMGlDvX5u9kPwq8
-----END PRIVATE KEY-----
";
    pub(crate) const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVD4vLKzzM1vOxXSp0JQzJXXyIQt1
t0vNve3W+olHmAwAIJ0rk/W/vdUttRH/m4HtY/NffIFzBpQ71+bvZD8KvA==
-----END PUBLIC KEY-----
";

    pub(crate) fn hs_issuer(secret: &str) -> JwtIssuerConfig {
        JwtIssuerConfig {
            issuer: "https://idp.example".into(),
            audience: "skab".into(),
            secret: Some(secret.into()),
            ..Default::default()
        }
    }

    fn now() -> u64 {
        crate::users::now_unix()
    }

    pub(crate) fn hs_token(secret: &str, claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(exp_off: i64) -> Value {
        json!({
            "iss": "https://idp.example", "aud": "skab",
            "exp": (now() as i64 + exp_off), "nbf": now() - 10,
            "preferred_username": "Anna@Skole1",
        })
    }

    #[test]
    fn hs256_valid_expired_wrong_signature_wrong_audience() {
        let v = JwtVerifier::from_config(&[hs_issuer("s3cret")]).unwrap();
        let (t, u) = v.verify(&hs_token("s3cret", claims(600))).unwrap();
        assert_eq!((t.as_str(), u.as_str()), ("skole1", "anna"));
        // Expired beyond the leeway: signed, so not a forgery.
        assert_eq!(
            v.verify(&hs_token("s3cret", claims(-120))),
            Err(JwtError::Expired)
        );
        // Wrong signature, even on an expired token.
        let e = v.verify(&hs_token("other", claims(600))).unwrap_err();
        assert!(!e.signature_valid(), "{e:?}");
        let e = v.verify(&hs_token("other", claims(-120))).unwrap_err();
        assert!(!e.signature_valid(), "{e:?}");
        // Wrong audience / issuer.
        let mut c = claims(600);
        c["aud"] = json!("someone-else");
        assert!(v.verify(&hs_token("s3cret", c)).is_err());
        let mut c = claims(600);
        c["iss"] = json!("https://evil.example");
        assert!(v.verify(&hs_token("s3cret", c)).is_err());
        // Not yet valid.
        let mut c = claims(600);
        c["nbf"] = json!(now() + 3600);
        assert!(v.verify(&hs_token("s3cret", c)).is_err());
        // Missing exp.
        let mut c = claims(600);
        c.as_object_mut().unwrap().remove("exp");
        assert!(v.verify(&hs_token("s3cret", c)).is_err());
        // Bad user claim.
        let mut c = claims(600);
        c["preferred_username"] = json!("no-tenant");
        assert!(matches!(
            v.verify(&hs_token("s3cret", c)),
            Err(JwtError::Claim(_))
        ));
        assert!(matches!(v.verify("garbage"), Err(JwtError::Malformed(_))));
        let none = JwtVerifier::from_config(&[]).unwrap();
        assert_eq!(
            none.verify(&hs_token("s3cret", claims(600))),
            Err(JwtError::NotConfigured)
        );
    }

    #[test]
    fn es256_pem_with_sub_and_tenant_claim() {
        let cfg = JwtIssuerConfig {
            issuer: "https://idp.example".into(),
            audience: "skab".into(),
            algorithm: JwtAlgorithm::ES256,
            public_key_pem: Some(EC_PUBLIC.into()),
            user_claim: "sub".into(),
            tenant_claim: Some("school".into()),
            ..Default::default()
        };
        let v = JwtVerifier::from_config(&[cfg]).unwrap();
        let c = json!({
            "iss": "https://idp.example", "aud": "skab", "exp": now() + 600,
            "sub": "bo", "school": "Skole2",
        });
        let key = EncodingKey::from_ec_pem(EC_PRIVATE_PKCS8.as_bytes()).unwrap();
        let tok = encode(&Header::new(Algorithm::ES256), &c, &key).unwrap();
        let (t, u) = v.verify(&tok).unwrap();
        assert_eq!((t.as_str(), u.as_str()), ("skole2", "bo"));
        // An HS256 token is not accepted by an ES256-only verifier.
        assert!(v.verify(&hs_token("x", c)).is_err());
        // A broken key fails at start.
        let bad = JwtIssuerConfig {
            algorithm: JwtAlgorithm::ES256,
            public_key_pem: Some("not a key".into()),
            ..hs_issuer("x")
        };
        assert!(JwtVerifier::from_config(&[bad]).is_err());
    }
}
