//! A small blocking etcd v3 client over etcd's JSON gateway (`/v3/...`): leases, ranges and
//! the compare-and-put transactions that cell ownership is made of. Each request is tried on
//! the next endpoint when one fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::limits::{CLUSTER_ETCD_BODY_MAX, CLUSTER_ETCD_TIMEOUT_MS};

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    /// The revision that created the key: a cell's epoch.
    pub create_revision: i64,
    pub lease: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    #[error("etcd refused the request: {0}")]
    Refused(String),
    #[error("etcd answered something unreadable: {0}")]
    Bad(String),
}

pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    next: AtomicUsize,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(v: &Value) -> Result<String, EtcdError> {
    let s = v.as_str().unwrap_or("");
    let bytes = B64
        .decode(s)
        .map_err(|e| EtcdError::Bad(format!("base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| EtcdError::Bad("a key or value is not UTF-8".into()))
}

/// etcd's JSON writes 64-bit integers as strings and leaves zero values out.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the range of keys starting with `prefix` (etcd's "prefix + 1").
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0x7f {
            b.push(last + 1);
            return String::from_utf8(b).unwrap_or_default();
        }
    }
    "\0".into()
}

fn kvs(v: &Value) -> Result<Vec<Kv>, EtcdError> {
    let Some(list) = v.get("kvs").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|kv| {
            Ok(Kv {
                key: unb64(&kv["key"])?,
                value: unb64(&kv["value"])?,
                create_revision: int(&kv["create_revision"]),
                lease: int(&kv["lease"]),
            })
        })
        .collect()
}

impl Etcd {
    pub fn new(endpoints: &[String]) -> Etcd {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(CLUSTER_ETCD_TIMEOUT_MS)))
            .build();
        Etcd {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            agent: ureq::Agent::new_with_config(config),
            next: AtomicUsize::new(0),
        }
    }

    /// One gateway call, tried once on each endpoint until one answers.
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let body = body.to_string();
        let mut last = String::from("no endpoint");
        for _ in 0..self.endpoints.len().max(1) {
            let i = self.next.load(Ordering::Relaxed) % self.endpoints.len().max(1);
            let Some(base) = self.endpoints.get(i) else {
                break;
            };
            let sent = self
                .agent
                .post(&format!("{base}{path}"))
                .header("content-type", "application/json")
                .send(body.as_bytes());
            match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp
                        .body_mut()
                        .with_config()
                        .limit(CLUSTER_ETCD_BODY_MAX)
                        .read_to_vec()
                        .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
                    let v: Value = serde_json::from_slice(&text)
                        .map_err(|e| EtcdError::Bad(format!("{path}: {e}")))?;
                    if status == 200 {
                        return Ok(v);
                    }
                    let msg = v["error"].as_str().or(v["message"].as_str()).unwrap_or("");
                    if status >= 500 && msg.contains("leader") {
                        last = format!("{base}: {status} {msg}");
                    } else {
                        return Err(EtcdError::Refused(format!("{path}: {status} {msg}")));
                    }
                }
                Err(e) => last = format!("{base}: {e}"),
            }
            self.next.fetch_add(1, Ordering::Relaxed);
        }
        Err(EtcdError::Unreachable(last))
    }

    /// A new lease of `ttl_s` seconds; its id.
    pub fn grant(&self, ttl_s: u64) -> Result<i64, EtcdError> {
        let v = self.call("/v3/lease/grant", &json!({ "TTL": ttl_s }))?;
        match int(&v["ID"]) {
            0 => Err(EtcdError::Bad("lease grant without an id".into())),
            id => Ok(id),
        }
    }

    /// Renews a lease; `false` when etcd no longer has it (it expired).
    pub fn keep_alive(&self, id: i64) -> Result<bool, EtcdError> {
        let v = self.call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))?;
        Ok(int(&v["result"]["TTL"]) > 0)
    }

    /// Ends a lease at once (its keys go with it).
    pub fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .map(|_| ())
    }

    /// Every key starting with `prefix`.
    pub fn range_prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let v = self.call(
            "/v3/kv/range",
            &json!({ "key": b64(prefix), "range_end": b64(&prefix_end(prefix)) }),
        )?;
        kvs(&v)
    }

    /// One key, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("/v3/kv/range", &json!({ "key": b64(key) }))?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Puts `key` under `lease` (0: none).
    pub fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let mut req = json!({ "key": b64(key), "value": b64(value) });
        if lease != 0 {
            req["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", &req).map(|_| ())
    }

    /// Creates `key` under `lease` only if it does not exist: `Ok(Some(epoch))` (the new key's
    /// create revision) when created, `Ok(None)` when it exists.
    pub fn create(&self, key: &str, value: &str, lease: i64) -> Result<Option<i64>, EtcdError> {
        let k = b64(key);
        let v = self.call(
            "/v3/kv/txn",
            &json!({
                "compare": [{ "key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0" }],
                "success": [
                    { "request_put": { "key": k, "value": b64(value), "lease": lease.to_string() } },
                    { "request_range": { "key": k } }
                ],
            }),
        )?;
        if v["succeeded"].as_bool() != Some(true) {
            return Ok(None);
        }
        let created = v["responses"]
            .as_array()
            .and_then(|r| r.get(1))
            .map(|r| kvs(&r["response_range"]))
            .transpose()?
            .and_then(|k| k.into_iter().next())
            .ok_or_else(|| EtcdError::Bad("created key not read back".into()))?;
        Ok(Some(created.create_revision))
    }

    /// Deletes `key` only if it is still the incarnation created at `epoch`.
    pub fn delete_if(&self, key: &str, epoch: i64) -> Result<bool, EtcdError> {
        let k = b64(key);
        let v = self.call(
            "/v3/kv/txn",
            &json!({
                "compare": [{ "key": k, "result": "EQUAL", "target": "CREATE", "create_revision": epoch.to_string() }],
                "success": [{ "request_delete_range": { "key": k } }],
            }),
        )?;
        Ok(v["succeeded"].as_bool() == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("/skab/cells/"), "/skab/cells0");
        assert_eq!(prefix_end("a"), "b");
    }

    #[test]
    fn gateway_answers_are_read_with_their_string_integers() {
        let v: Value = serde_json::from_str(
            r#"{"kvs":[{"key":"L3NrYWIvY2VsbHMvMQ==","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE=","lease":"7587899376015469063"}],"count":"1"}"#,
        )
        .unwrap();
        let k = kvs(&v).unwrap();
        assert_eq!(
            k,
            vec![Kv {
                key: "/skab/cells/1".into(),
                value: "node1".into(),
                create_revision: 2,
                lease: 7587899376015469063,
            }]
        );
        assert!(kvs(&serde_json::json!({})).unwrap().is_empty());
        assert!(kvs(&serde_json::json!({"kvs":[{"key":"!!","value":""}]})).is_err());
    }
}
