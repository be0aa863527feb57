//! Requests on a cluster node: the cell a request belongs to (from its credentials, else its
//! path), then served here when this node has the cell, or proxied to (or redirected to) its
//! owner. A request forwarded by another node carries the cluster's node token and is never
//! forwarded again.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION, RETRY_AFTER};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{cell_of, Node};
use crate::http::body::ReqBody;
use crate::http::response::{text, Resp};
use crate::http::Handler;
use crate::limits::{CLUSTER_CELL_WAIT_MS, CLUSTER_FORWARD_CONNECT_MS};

/// Carries the cluster's node token: the request comes from another node.
pub(crate) const NODE_TOKEN_HEADER: &str = "x-skab-node";
/// Set by a forwarding node: the client's address as that node saw it.
pub(crate) const PEER_HEADER: &str = "x-skab-peer";
/// How often a request waiting for its cell looks again.
const WAIT_POLL: Duration = Duration::from_millis(25);

pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, ReqBody>;

pub(crate) fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(CLUSTER_FORWARD_CONNECT_MS)));
    http.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(http)
}

pub struct ClusterRouter(pub Arc<Node>);

/// The tenant a request names: the login of Basic credentials (`user@tenant`), a verified
/// JWT's tenant, or the first segment of a `/dav/<tenant>/` path.
pub(crate) fn routing_tenant(node: &Node, req: &Request<ReqBody>) -> Option<String> {
    if let Some(auth) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = B64.decode(rest.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (login, _) = text.split_once(':')?;
            let (_, tenant) = login.rsplit_once('@')?;
            return Some(tenant.to_ascii_lowercase());
        }
        if scheme.eq_ignore_ascii_case("bearer") && rest.matches('.').count() == 2 {
            if let Ok((tenant, _)) = node.jwt.verify(rest.trim()) {
                return Some(tenant.as_str().to_string());
            }
        }
    }
    let path = req.uri().path();
    let rest = path.strip_prefix("/dav/")?;
    let tenant = rest.split('/').next().filter(|t| !t.is_empty())?;
    Some(tenant.to_ascii_lowercase())
}

fn unavailable(msg: &str) -> Resp {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(1));
    r
}

impl Handler for ClusterRouter {
    async fn handle(&self, mut req: Request<ReqBody>, peer: SocketAddr) -> Resp {
        let node = &self.0;
        match req.uri().path() {
            "/healthz" => return text(StatusCode::OK, "ok"),
            "/readyz" => {
                return if node.ready() {
                    text(StatusCode::OK, "ready")
                } else {
                    unavailable("cluster node not ready (no lease, or its cells are opening)")
                };
            }
            "/status.php" => return crate::oc::discovery::status_php(),
            "/metrics" => return super::metrics::render(node),
            super::admin::STATE_PATH => return super::admin::state(node),
            super::admin::CLI_PATH => return super::admin::serve_cli(node.clone(), req).await,
            _ => {}
        }
        // A peer's token makes the request internal: its client address is believed and it is
        // not forwarded again. From anyone else both headers are dropped.
        let internal = req
            .headers()
            .get(NODE_TOKEN_HEADER)
            .is_some_and(|v| v.as_bytes() == node.token.as_bytes());
        let client = if internal {
            req.headers()
                .get(PEER_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(peer)
        } else {
            peer
        };
        req.headers_mut().remove(NODE_TOKEN_HEADER);
        req.headers_mut().remove(PEER_HEADER);
        let tenant = routing_tenant(node, &req);
        let c = tenant
            .as_deref()
            .map_or(0, |t| cell_of(t, node.cluster.cells));
        let until = Instant::now() + Duration::from_millis(CLUSTER_CELL_WAIT_MS);
        loop {
            if let Some(s) = node.serving(c) {
                return s.router.handle(req, client).await;
            }
            match node.owner_elsewhere(c) {
                // Passed on once already: the sender's view was stale; it asks again.
                Some(_) if internal => {
                    return unavailable("this school's storage moved to another node; try again");
                }
                // Its owner just failed to answer: wait for the cell to move.
                Some((_, url)) if node.is_unreachable(&url) => {}
                Some((_, url)) => return forward(node, req, client, &url).await,
                None => {}
            }
            if Instant::now() >= until {
                node.counters
                    .waited_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                return unavailable("this school's storage is moving to another node; try again");
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}

/// Hop-by-hop headers, never passed on (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn forward(node: &Node, req: Request<ReqBody>, client: SocketAddr, base: &str) -> Resp {
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let target = format!("{base}{pq}");
    if node.cluster.forward == crate::config::ForwardMode::Redirect {
        node.counters.redirected.fetch_add(1, Ordering::Relaxed);
        let mut r = text(StatusCode::TEMPORARY_REDIRECT, "served by another node");
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    let Ok(uri) = target.parse::<Uri>() else {
        return text(StatusCode::BAD_GATEWAY, "bad node URL");
    };
    let (mut parts, body) = req.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    if !parts.headers.contains_key(HOST) {
        if let Some(a) = uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }
    }
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    if let Ok(v) = HeaderValue::from_str(&node.token) {
        parts
            .headers
            .insert(HeaderName::from_static(NODE_TOKEN_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&client.to_string()) {
        parts
            .headers
            .insert(HeaderName::from_static(PEER_HEADER), v);
    }
    node.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    match node.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            hyper::Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
        }
        Err(e) => {
            if e.is_connect() {
                node.mark_unreachable(base);
            }
            node.counters.forward_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, node = %base, "cluster: forwarding failed");
            unavailable("the node serving this school did not answer; try again")
        }
    }
}
