//! The subset of the OCS share API (`/ocs/v{1,2}.php/apps/files_sharing/api/v1/shares`)
//! that the ownCloud/Nextcloud clients and ownCloud Web use to share a folder of one's
//! home with a user (`shareType=0`) or a group (`shareType=1`): create (POST), list (GET,
//! own shares or `shared_with_me=true`), show, change the permissions (PUT) and delete
//! (DELETE), in JSON or XML as `oc::discovery` answers. Permissions: 1 is read, anything
//! with update, create or delete (2, 4, 8) is write. Docs: `docs/spaces.md`, "OCS".

use hyper::{Method, Request, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use skab_engine::ns::Name;

use super::access::find_mount;
use super::registry::{Grantee, Perm, Share};
use crate::app::App;
use crate::auth::Principal;
use crate::http::body::{read_all, ReqBody};
use crate::http::response::Resp;
use crate::limits::OCS_BODY_LEN_MAX;
use crate::oc::discovery::{ocs_fail, ocs_ok, Format};
use crate::users::{GroupName, UserName};

/// The endpoint below `/ocs/v{1,2}.php`.
const SHARES: &str = "/apps/files_sharing/api/v1/shares";
/// OCS `permissions` bits that mean writing (update, create, delete).
const WRITE_BITS: u32 = 2 | 4 | 8;
/// What a share reports: read, or read + update + create + delete (no resharing).
const READ_BITS: u32 = 1;
const ALL_BITS: u32 = 1 | WRITE_BITS;

/// True for the share endpoints.
pub fn is_shares(path: &str) -> bool {
    let rest = path
        .strip_prefix("/ocs/v1.php")
        .or_else(|| path.strip_prefix("/ocs/v2.php"));
    rest.is_some_and(|r| r.starts_with(SHARES))
}

struct Answer {
    v2: bool,
    format: Format,
}

impl Answer {
    fn ok(&self, data: Value) -> Resp {
        ocs_ok(self.v2, self.format, data)
    }
    fn fail(&self, http: StatusCode, msg: &str) -> Resp {
        ocs_fail(self.v2, self.format, http, u32::from(http.as_u16()), msg)
    }
}

/// `application/x-www-form-urlencoded` pairs (the clients' POST and PUT bodies, and
/// query strings).
fn form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |x: &str| {
                percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn perm_bits(p: Perm) -> u32 {
    match p {
        Perm::Read => READ_BITS,
        Perm::Write => ALL_BITS,
    }
}

/// The share as the clients read it; `as_recipient` names the folder as it appears in the
/// recipient's home.
fn describe(app: &App, s: &Share, who: &Principal) -> Value {
    let owner_id = format!("{}@{}", s.owner, s.tenant);
    let (share_type, with) = match &s.to {
        Grantee::User(u) => (0, format!("{u}@{}", s.tenant)),
        Grantee::Group(g) => (1, g.clone()),
    };
    let name = s.path.rsplit('/').next().unwrap_or(&s.path).to_string();
    let file_id = skab_engine::SpaceKey::new(&s.tenant, &s.owner)
        .ok()
        .and_then(|k| {
            let names: Result<Vec<Name>, _> = s.path.split('/').map(Name::new).collect();
            app.store.stat(&k, &names.ok()?).ok()
        })
        .map_or(0, |i| u64::from(i.id.0));
    let mine = who.user.as_str() == s.owner;
    let path = if mine {
        format!("/{}", s.path)
    } else {
        format!("/{name}")
    };
    json!({
        "id": s.id.to_string(),
        "share_type": share_type,
        "uid_owner": owner_id,
        "displayname_owner": owner_id,
        "uid_file_owner": owner_id,
        "displayname_file_owner": owner_id,
        "permissions": perm_bits(s.perm),
        "stime": s.created,
        "parent": null,
        "expiration": null,
        "token": null,
        "path": path,
        "item_type": "folder",
        "mimetype": "httpd/unix-directory",
        "storage_id": format!("home::{owner_id}"),
        "storage": 0,
        "item_source": file_id,
        "file_source": file_id,
        "file_parent": 0,
        "file_target": format!("/{name}"),
        "share_with": with,
        "share_with_displayname": with,
        "mail_send": 0,
        "state": 0,
        "can_edit": mine,
        "can_delete": mine,
    })
}

/// Whether share `s` reaches `who` (to them, or to one of their groups).
fn reaches(app: &App, s: &Share, who: &Principal) -> bool {
    match &s.to {
        Grantee::User(u) => u == who.user.as_str(),
        Grantee::Group(g) => super::access::groups(app, who.tenant.as_str(), who.user.as_str())
            .iter()
            .any(|x| x.as_str() == g),
    }
}

/// Answers a request to the share endpoints.
pub async fn handle(app: &App, req: Request<ReqBody>, who: &Principal) -> Resp {
    let path = req.uri().path().to_string();
    let v2 = path.starts_with("/ocs/v2.php");
    let a = Answer {
        v2,
        format: Format::of(&req),
    };
    let rest = path
        .trim_start_matches("/ocs/v1.php")
        .trim_start_matches("/ocs/v2.php")
        .trim_start_matches(SHARES)
        .trim_matches('/')
        .to_string();
    let id = if rest.is_empty() {
        None
    } else {
        match rest.parse::<u64>() {
            Ok(i) => Some(i),
            Err(_) => return a.fail(StatusCode::NOT_FOUND, "no such share"),
        }
    };
    let query = form(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    let body = if method == Method::POST || method == Method::PUT {
        let stall = std::time::Duration::from_secs(app.config.limits.body_stall_timeout_s);
        match read_all(req.into_body(), OCS_BODY_LEN_MAX, stall).await {
            Ok(b) => b,
            Err(_) => {
                return a.fail(
                    StatusCode::BAD_REQUEST,
                    &format!("request body unreadable or over {OCS_BODY_LEN_MAX} bytes"),
                )
            }
        }
    } else {
        Vec::new()
    };
    let tenant = who.tenant.as_str();
    match (method.as_str(), id) {
        ("GET", None) => {
            let all = app.spaces.of_tenant(tenant);
            let with_me = param(&query, "shared_with_me").is_some_and(|v| v == "true" || v == "1");
            let only_path = param(&query, "path").map(|p| p.trim_matches('/').to_string());
            let list: Vec<Value> = all
                .shares
                .iter()
                .filter(|s| s.tenant == tenant)
                .filter(|s| {
                    if with_me {
                        s.owner != who.user.as_str() && reaches(app, s, who)
                    } else {
                        s.owner == who.user.as_str()
                    }
                })
                .filter(|s| only_path.as_ref().is_none_or(|p| *p == s.path))
                .map(|s| describe(app, s, who))
                .collect();
            a.ok(Value::Array(list))
        }
        ("GET", Some(id)) => {
            let all = app.spaces.of_tenant(tenant);
            match all.shares.iter().find(|s| {
                s.tenant == tenant
                    && s.id == id
                    && (s.owner == who.user.as_str() || reaches(app, s, who))
            }) {
                Some(s) => a.ok(json!([describe(app, s, who)])),
                None => a.fail(StatusCode::NOT_FOUND, "no such share"),
            }
        }
        ("POST", None) => create(app, &a, who, &query, &body).await,
        ("PUT", Some(id)) => {
            let mut pairs = form(&String::from_utf8_lossy(&body));
            pairs.extend(query);
            let Some(bits) = param(&pairs, "permissions").and_then(|p| p.parse::<u32>().ok())
            else {
                return a.fail(StatusCode::BAD_REQUEST, "only permissions can be changed");
            };
            let perm = if bits & WRITE_BITS != 0 {
                Perm::Write
            } else {
                Perm::Read
            };
            match app
                .spaces
                .set_share_perm(tenant, id, perm, |s| s.owner == who.user.as_str())
            {
                Ok(s) => {
                    record(app, who, "share.update", &s).await;
                    a.ok(describe(app, &s, who))
                }
                Err(super::registry::RegistryError::NoShare(_)) => {
                    a.fail(StatusCode::NOT_FOUND, "no such share")
                }
                Err(e) => a.fail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        ("DELETE", Some(id)) => {
            match app
                .spaces
                .delete_share(tenant, id, |s| s.owner == who.user.as_str())
            {
                Ok(s) => {
                    record(app, who, "share.delete", &s).await;
                    a.ok(json!([]))
                }
                Err(super::registry::RegistryError::NoShare(_)) => {
                    a.fail(StatusCode::NOT_FOUND, "no such share")
                }
                Err(e) => a.fail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        _ => a.fail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
    }
}

/// `POST …/shares` with `path`, `shareType`, `shareWith`, `permissions` (form body, or
/// query, as some clients send).
async fn create(
    app: &App,
    a: &Answer,
    who: &Principal,
    query: &[(String, String)],
    body: &[u8],
) -> Resp {
    let mut pairs = form(&String::from_utf8_lossy(body));
    if pairs.is_empty() {
        // Some clients post JSON.
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            pairs = m
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect();
        }
    }
    pairs.extend(query.iter().cloned());
    let tenant = who.tenant.as_str();
    let me = who.user.as_str();
    let Some(raw_path) = param(&pairs, "path") else {
        return a.fail(
            StatusCode::BAD_REQUEST,
            "please specify a file or folder path",
        );
    };
    let segs: Vec<&str> = raw_path.split('/').filter(|s| !s.is_empty()).collect();
    let Ok(path) = crate::dav::path::SpacePath::from_segments(&segs) else {
        return a.fail(StatusCode::BAD_REQUEST, "bad path");
    };
    if path.is_root() {
        return a.fail(StatusCode::BAD_REQUEST, "the whole home cannot be shared");
    }
    let first = segs[0];
    if find_mount(app, tenant, me, first).is_some() {
        return a.fail(
            StatusCode::FORBIDDEN,
            "folders shared with you cannot be shared again",
        );
    }
    let home = match skab_engine::SpaceKey::new(tenant, me) {
        Ok(k) => k,
        Err(e) => return a.fail(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let names: Result<Vec<Name>, _> = path.segments().map(Name::new).collect();
    let info = names.ok().and_then(|n| app.store.stat(&home, &n).ok());
    match info {
        None => {
            return a.fail(
                StatusCode::NOT_FOUND,
                "wrong path, file/folder does not exist",
            )
        }
        Some(i) if !crate::methods::common::is_dir(&i) => {
            return a.fail(StatusCode::BAD_REQUEST, "only folders can be shared")
        }
        Some(_) => {}
    }
    let with = param(&pairs, "shareWith").unwrap_or("");
    let to = match param(&pairs, "shareType") {
        Some("0") => {
            // Clients know users by the id `cloud/user` gave: `user@tenant`.
            let name = match with.rsplit_once('@') {
                Some((u, t)) if t == tenant => u,
                Some(_) => return a.fail(StatusCode::NOT_FOUND, "no such user"),
                None => with,
            };
            let ok = UserName::new(name)
                .ok()
                .is_some_and(|u| app.users.user(&who.tenant, &u).is_some());
            if !ok {
                return a.fail(StatusCode::NOT_FOUND, "no such user");
            }
            if name == me {
                return a.fail(StatusCode::BAD_REQUEST, "cannot share with yourself");
            }
            Grantee::User(name.to_string())
        }
        Some("1") => {
            let ok = GroupName::new(with)
                .ok()
                .is_some_and(|g| app.users.group(&who.tenant, &g).is_some());
            if !ok {
                return a.fail(StatusCode::NOT_FOUND, "no such group");
            }
            Grantee::Group(with.to_string())
        }
        _ => {
            return a.fail(
                StatusCode::BAD_REQUEST,
                "shareType must be 0 (user) or 1 (group); links are not offered",
            )
        }
    };
    let bits = param(&pairs, "permissions")
        .map(|p| p.parse::<u32>())
        .transpose();
    let perm = match bits {
        Ok(None) | Ok(Some(1)) => Perm::Read,
        Ok(Some(b)) if b & 1 != 0 && b & WRITE_BITS != 0 => Perm::Write,
        _ => {
            return a.fail(
                StatusCode::BAD_REQUEST,
                "permissions must include read (1): 1 is read, 31 read and write",
            )
        }
    };
    match app.spaces.add_share(Share {
        id: 0,
        tenant: tenant.to_string(),
        owner: me.to_string(),
        path: path.as_str().to_string(),
        to,
        perm,
        created: 0,
    }) {
        Ok(s) => {
            record(app, who, "share.add", &s).await;
            a.ok(describe(app, &s, who))
        }
        Err(e) => a.fail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// An audit record of a share change made by a user, durable before the answer.
async fn record(app: &App, who: &Principal, kind: &'static str, s: &Share) {
    if let Some(audit) = &app.audit {
        let mut e = crate::audit::event(kind);
        e.actor = Some(format!("{}@{}", who.user.as_str(), who.tenant.as_str()));
        e.target = Some(format!("{} /{} {}={}", s.id, s.path, s.to, s.perm.as_str()));
        audit.record_durable(who.tenant.as_str(), e).await;
    }
}
