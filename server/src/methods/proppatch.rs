//! PROPPATCH (RFC 4918 §9.2): dead properties set and removed all or nothing, in document
//! order; live `DAV:` properties are protected (403 `cannot-modify-protected-property`, the
//! rest 424 Failed Dependency).

use crate::http::body::ReqBody;
use hyper::{Request, StatusCode};

use super::common::{check_write, engine_error, read_xml_body};
use super::ctx::Ctx;
use super::reply::{condition, multistatus};
use crate::dav::locks::WriteScope;
use crate::dav::status::xml_error;
use crate::dav::xml::{
    parse_proppatch_limited, DavCondition, Multistatus, PropName, PropPatchOp, XmlLimits,
};
use crate::http::response::Resp;

/// `DAV:` properties the server computes; clients cannot set or remove them.
const PROTECTED: &[&str] = &[
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "resourcetype",
    "supportedlock",
    "lockdiscovery",
    "quota-available-bytes",
    "quota-used-bytes",
];

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    let info = match ctx.app.store.stat(&ctx.space, &ctx.names) {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    if let Err(r) = check_write(ctx, &req, &[(&ctx.target.path, WriteScope::CONTENT)]) {
        return r;
    }
    let body = match read_xml_body(ctx, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = match parse_proppatch_limited(&body, XmlLimits::from_config(&ctx.app.config.limits)) {
        Ok(o) => o,
        Err(e) => {
            let (code, cond) = xml_error(&e);
            return condition(code, cond.as_ref());
        }
    };
    let name_of = |op: &PropPatchOp| match op {
        PropPatchOp::Set(v) => v.name.clone(),
        PropPatchOp::Remove(n) => n.clone(),
    };
    let href = ctx.href(&ctx.target.path, info.kind == skab_engine::ns::Kind::Dir);
    let protected: Vec<PropName> = ops
        .iter()
        .map(name_of)
        .filter(|n| n.is_dav() && PROTECTED.contains(&n.name.as_str()))
        .collect();
    if !protected.is_empty() {
        let mut ms = Multistatus::new();
        {
            let mut r = ms.response(&href);
            r.propstat(StatusCode::FORBIDDEN, |p| {
                for n in &protected {
                    p.empty(n);
                }
            });
            r.propstat(StatusCode::FAILED_DEPENDENCY, |p| {
                for n in ops.iter().map(name_of).filter(|n| !protected.contains(n)) {
                    p.empty(&n);
                }
            });
            r.error(&DavCondition::CannotModifyProtectedProperty);
        }
        return multistatus(ms.finish());
    }
    // Fold to the final state of each property (document order: the last instruction wins).
    let mut set: Vec<(skab_engine::ns::PropName, Vec<u8>)> = Vec::new();
    let mut remove: Vec<skab_engine::ns::PropName> = Vec::new();
    for op in &ops {
        let n = name_of(op);
        let key = skab_engine::ns::PropName::new(&n.ns, &n.name);
        set.retain(|(k, _)| *k != key);
        remove.retain(|k| *k != key);
        match op {
            PropPatchOp::Set(v) => set.push((key, v.xml.clone().into_bytes())),
            PropPatchOp::Remove(_) => remove.push(key),
        }
    }
    let outcome = ctx
        .app
        .store
        .set_props(&ctx.space, &ctx.names, set, remove)
        .await;
    let code = match &outcome {
        Ok(()) => StatusCode::OK,
        Err(skab_engine::Error::LimitExceeded(_)) => StatusCode::INSUFFICIENT_STORAGE,
        Err(e) => return engine_error(e),
    };
    let mut ms = Multistatus::new();
    {
        let mut r = ms.response(&href);
        r.propstat(code, |p| {
            for op in &ops {
                p.empty(&name_of(op));
            }
        });
    }
    multistatus(ms.finish())
}
