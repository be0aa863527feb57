//! Fuzzes the Authorization header: scheme and Basic decoding, the `user@tenant` login,
//! app token syntax, JWT verification (HS256 issuer) and stored PHC hash parsing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skab_server::auth::jwt::JwtVerifier;
use skab_server::auth::{parse_authorization, Credentials};
use skab_server::users::{password, token};
use skab_server::config::JwtIssuerConfig;
use skab_server::users::parse_login;

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let cfg = JwtIssuerConfig {
            issuer: "https://idp.example".into(),
            audience: "skab".into(),
            secret: Some("fuzz-secret".into()),
            ..Default::default()
        };
        JwtVerifier::from_config(&[cfg]).expect("HS256 issuer config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_authorization(s) {
        Ok(Credentials::Basic { login, password }) => {
            let _ = parse_login(&login);
            let _ = token::parse(&password);
        }
        Ok(Credentials::Bearer(t)) => {
            let _ = token::parse(t);
            let _ = verifier().verify(t);
        }
        Err(_) => {}
    }
    let _ = password::check_phc(s);
});
