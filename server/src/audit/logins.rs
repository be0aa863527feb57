//! Which requests become login records: a password checked with argon2 always; a request
//! carried by the credential cache, an app token or a JWT when its (account, method, source)
//! was not recorded within the last `AUDIT_LOGIN_REPEAT_S` (a session's start, not its every
//! request); a refused login always, but a throttled one once per window.

use std::net::IpAddr;

use super::{event, Audit, SYSTEM_LOG};
use crate::auth::{parse_authorization, AuthError, AuthVia, Credentials, Principal};
use crate::limits::{AUDIT_LOGIN_REPEAT_S, AUDIT_LOGIN_SEEN_MAX};

/// Remembers recent login records to leave out repeats.
pub struct LoginRecorder {
    seen: quick_cache::sync::Cache<(String, u8, IpAddr), u64>,
}

impl Default for LoginRecorder {
    fn default() -> Self {
        LoginRecorder {
            seen: quick_cache::sync::Cache::new(AUDIT_LOGIN_SEEN_MAX),
        }
    }
}

fn method(via: &AuthVia) -> (&'static str, u8) {
    match via {
        AuthVia::Password => ("password", 0),
        AuthVia::Cached => ("password (cached)", 1),
        AuthVia::AppToken => ("app token", 2),
        AuthVia::Jwt => ("jwt", 3),
    }
}

impl LoginRecorder {
    /// Whether `key` was not recorded within the window (and marks it recorded now).
    fn first_in_window(&self, key: (String, u8, IpAddr)) -> bool {
        let now = crate::users::now_unix();
        match self.seen.get(&key) {
            Some(at) if now.saturating_sub(at) < AUDIT_LOGIN_REPEAT_S => false,
            _ => {
                self.seen.insert(key, now);
                true
            }
        }
    }

    /// An authenticated request.
    pub fn ok(&self, audit: &Audit, p: &Principal, source: IpAddr) {
        let (how, code) = method(&p.via);
        let account = format!("{}@{}", p.user, p.tenant);
        let fresh = matches!(p.via, AuthVia::Password);
        // A password that argon2 just checked is always a login; a cache's answer counts as
        // the same session as the password login it came from.
        let key_code = if matches!(p.via, AuthVia::Cached) {
            0
        } else {
            code
        };
        if !self.first_in_window((account.clone(), key_code, source)) && !fresh {
            return;
        }
        let mut e = event("login.ok");
        e.actor = Some(account);
        e.source = Some(source);
        e.detail = Some(how.to_string());
        audit.record(p.tenant.as_str(), e);
    }

    /// A refused request: bad credentials, or throttled.
    pub fn failed(&self, audit: &Audit, header: Option<&str>, error: &AuthError, source: IpAddr) {
        let why = match error {
            AuthError::BadCredentials => "invalid credentials",
            AuthError::Throttled { .. } => "throttled",
            _ => return,
        };
        // The claimed account for Basic; a bearer token names no tenant until verified.
        let (log, actor, how) = match header.map(parse_authorization) {
            Some(Ok(Credentials::Basic { login, .. })) => match crate::users::parse_login(&login) {
                Ok((t, u)) => (t.to_string(), format!("{u}@{t}"), "basic"),
                Err(_) => (
                    SYSTEM_LOG.to_string(),
                    login.chars().take(80).collect(),
                    "basic",
                ),
            },
            Some(Ok(Credentials::Bearer(_))) => (SYSTEM_LOG.to_string(), String::new(), "bearer"),
            _ => return,
        };
        if matches!(error, AuthError::Throttled { .. })
            && !self.first_in_window((format!("throttled {actor}"), 9, source))
        {
            return;
        }
        let mut e = event("login.failed");
        e.actor = (!actor.is_empty()).then_some(actor);
        e.source = Some(source);
        e.detail = Some(format!("{how}: {why}"));
        audit.record(&log, e);
    }
}
