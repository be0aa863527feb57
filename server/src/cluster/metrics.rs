//! `/metrics` of a cluster node (Prometheus text): its lease, the cells it serves, and what it
//! forwarded. Each cell's own request metrics stay with the cell (its app's `/metrics` is not
//! exposed on a node; their sum is what the node forwards and serves).

use std::sync::atomic::Ordering;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::cells::Cell;
use super::Node;
use crate::http::response::{text, Resp};

pub(crate) fn render(node: &Node) -> Resp {
    let mut r = Registry::with_prefix("skab_cluster");
    let k = &node.counters;
    let counters = [
        (
            "forwarded",
            "Requests proxied to the node that owns their cell",
            &k.forwarded,
        ),
        (
            "redirected",
            "Requests answered with 307 to the owner",
            &k.redirected,
        ),
        (
            "forward_errors",
            "Proxied requests the owner did not answer",
            &k.forward_errors,
        ),
        (
            "unavailable",
            "Requests that waited for their cell in vain (503)",
            &k.waited_unavailable,
        ),
        (
            "cells_opened",
            "Cells this node took and opened",
            &k.cells_opened,
        ),
        (
            "cells_lost",
            "Cells dropped when the lease or key was lost",
            &k.cells_lost,
        ),
        (
            "cells_released",
            "Cells handed over to another node",
            &k.cells_released,
        ),
    ];
    for (name, help, c) in counters {
        r.register(name, help, ConstCounter::new(c.load(Ordering::Relaxed)));
    }
    let (mut serving, mut opening) = (0i64, 0i64);
    for c in &node.cells {
        match &*c.lock() {
            Cell::Serving(_) => serving += 1,
            Cell::Opening { .. } => opening += 1,
            Cell::Absent | Cell::Closing => {}
        }
    }
    let nodes = node.view.read().nodes.len() as i64;
    r.register(
        "cells_serving",
        "Cells this node serves now",
        ConstGauge::new(serving),
    );
    r.register(
        "cells_opening",
        "Cells being rebuilt from the bucket",
        ConstGauge::new(opening),
    );
    r.register(
        "nodes",
        "Live nodes as etcd lists them",
        ConstGauge::new(nodes),
    );
    r.register(
        "lease_valid",
        "1 while this node's lease is valid by its own clock",
        ConstGauge::new(i64::from(node.lease.deadline().is_some())),
    );
    let mut out = String::new();
    if encode(&mut out, &r).is_err() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    let mut resp = text(StatusCode::OK, "");
    *resp.body_mut() = crate::http::body::full(out);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
