//! What the clients ask before they sync: `status.php` (is this a server of the kind we
//! speak to?), OCS `cloud/capabilities` (chunking, checksums, polling interval) and OCS
//! `cloud/user` (the user id that names the WebDAV root), in JSON or XML as asked, under
//! `/ocs/v1.php/` (status 100 in the body, HTTP 200) and `/ocs/v2.php/` (status 200).

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, StatusCode, Uri};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::http::body::{full, ReqBody};
use crate::http::response::Resp;

/// The ownCloud server version Skab answers as: clients enable chunking NG and the
/// `remote.php/dav` paths from 10 on.
pub const COMPAT_VERSION: [u32; 4] = [10, 13, 0, 0];
/// Seconds the clients wait between polls of the root ETag (their default is 30).
pub const POLL_INTERVAL_S: u32 = 30;

/// `GET /status.php`.
pub fn status_php() -> Resp {
    let [a, b, c, d] = COMPAT_VERSION;
    let body = json!({
        "installed": true,
        "maintenance": false,
        "needsDbUpgrade": false,
        "version": format!("{a}.{b}.{c}.{d}"),
        "versionstring": format!("{a}.{b}.{c}"),
        "edition": "Community",
        "productname": "Skab",
        "product": "Skab",
        "extendedSupport": false,
    });
    json_response(StatusCode::OK, &body)
}

/// Whether `path` is an OCS endpoint.
pub fn is_ocs(path: &str) -> bool {
    path.starts_with("/ocs/v1.php/") || path.starts_with("/ocs/v2.php/")
}

/// An OCS request of an authenticated user.
pub fn ocs(req: &Request<ReqBody>, who: &Principal) -> Resp {
    let uri = req.uri();
    let path = uri.path();
    let v2 = path.starts_with("/ocs/v2.php/");
    let endpoint = path
        .trim_start_matches("/ocs/v1.php")
        .trim_start_matches("/ocs/v2.php")
        .trim_end_matches('/');
    let format = Format::of(req);
    match endpoint {
        "/cloud/capabilities" => ocs_ok(v2, format, capabilities()),
        "/cloud/user" => ocs_ok(v2, format, user(who)),
        e if e.starts_with("/cloud/users/") => {
            let asked = percent_encoding::percent_decode_str(&e["/cloud/users/".len()..])
                .decode_utf8_lossy()
                .to_string();
            if asked == user_id(who) {
                ocs_ok(v2, format, user(who))
            } else {
                ocs_fail(v2, format, StatusCode::NOT_FOUND, 404, "user not found")
            }
        }
        _ => ocs_fail(
            v2,
            format,
            StatusCode::NOT_FOUND,
            998,
            "no such OCS endpoint on this server",
        ),
    }
}

/// The id a client knows a Skab account by: `user@tenant`.
pub fn user_id(who: &Principal) -> String {
    format!("{}@{}", who.user.as_str(), who.tenant.as_str())
}

fn capabilities() -> Value {
    let [a, b, c, _] = COMPAT_VERSION;
    json!({
        "version": {
            "major": a, "minor": b, "micro": c,
            "string": format!("{a}.{b}.{c}"),
            "edition": "Community",
            "product": "Skab",
            "extendedSupport": false,
        },
        "capabilities": {
            "core": {
                "pollinterval": POLL_INTERVAL_S * 1000,
                "webdav-root": "remote.php/webdav",
                "status": {"installed": true, "maintenance": false, "needsDbUpgrade": false,
                           "version": format!("{a}.{b}.{c}.0"), "versionstring": format!("{a}.{b}.{c}"),
                           "edition": "Community", "productname": "Skab"},
            },
            "dav": {"chunking": "1.0", "reports": ["sync-collection"]},
            "files": {
                "bigfilechunking": true,
                "blacklisted_files": [".htaccess"],
                "undelete": false,
                "versioning": false,
                "privateLinks": false,
            },
            "checksums": {
                "supportedTypes": super::checksum::SUPPORTED,
                "preferredUploadType": super::checksum::PREFERRED,
            },
            // User and group shares of folders (`crate::spaces::ocs`); no links, no
            // resharing, no federation.
            "files_sharing": {
                "api_enabled": true,
                "public": {"enabled": false},
                "resharing": false,
                "federation": {"outgoing": false, "incoming": false},
                "group_sharing": true,
                "user": {"send_mail": false},
                "default_permissions": 1,
            },
        },
    })
}

fn user(who: &Principal) -> Value {
    let id = user_id(who);
    json!({
        "id": id,
        "display-name": id,
        "displayname": id,
        "email": null,
        "enabled": true,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
}

impl Format {
    /// `?format=json` or an `Accept` naming JSON; XML otherwise (OCS's default).
    pub(crate) fn of(req: &Request<ReqBody>) -> Format {
        if query_param(req.uri(), "format").is_some_and(|f| f.eq_ignore_ascii_case("json")) {
            return Format::Json;
        }
        let accepts_json = req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        if accepts_json {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) fn ocs_ok(v2: bool, format: Format, data: Value) -> Resp {
    let code = if v2 { 200 } else { 100 };
    envelope(StatusCode::OK, format, code, "OK", "ok", data)
}

pub(crate) fn ocs_fail(v2: bool, format: Format, http: StatusCode, code: u32, msg: &str) -> Resp {
    // v1 answers 200 with the failure in the body; v2 uses the HTTP status too.
    let http = if v2 { http } else { StatusCode::OK };
    envelope(http, format, code, msg, "failure", json!([]))
}

fn envelope(
    http: StatusCode,
    format: Format,
    code: u32,
    message: &str,
    status: &str,
    data: Value,
) -> Resp {
    let meta = json!({
        "status": status,
        "statuscode": code,
        "message": message,
        "totalitems": "",
        "itemsperpage": "",
    });
    match format {
        Format::Json => json_response(http, &json!({"ocs": {"meta": meta, "data": data}})),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\"?>\n<ocs>");
            xml_value(&mut out, "meta", &meta);
            xml_value(&mut out, "data", &data);
            out.push_str("</ocs>\n");
            let mut r = crate::http::response::xml(http, out);
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=UTF-8"),
            );
            r
        }
    }
}

/// OCS's XML form of a JSON value: objects as elements, arrays as repeated `<element>`.
fn xml_value(out: &mut String, name: &str, v: &Value) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "1" } else { "" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&quick_xml::escape::escape(s.as_str())),
        Value::Array(items) => {
            for i in items {
                xml_value(out, "element", i);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                xml_value(out, k, v);
            }
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn json_response(code: StatusCode, v: &Value) -> Resp {
    let mut r = hyper::Response::new(full(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}
