//! Pass/fail thresholds: `[OP.]METRIC CMP VALUE[UNIT]` (e.g. `p99<100ms`, `get.p999<=1s`,
//! `errors=0`, `error_rate<0.1%`, `lost=0`, `late_changes=0`, `propagation.p99<2s`),
//! evaluated against result.json's values. `propagation` is the sync scenario's propagation
//! delay (not an op): `propagation.p99` reads `sync.propagation_us.p99`.

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Clone, Debug)]
pub struct Threshold {
    pub expr: String,
    op: Option<String>,
    metric: String,
    cmp: Cmp,
    /// In the metric's unit: µs for latencies, a fraction for `error_rate`.
    value: f64,
}

/// One threshold's verdict, as written to result.json.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub expr: String,
    /// The measured value (µs for latencies); null when the metric was not measured.
    pub measured: Option<f64>,
    /// The measured value for people, in the metric's unit (`6.17 ms`, `0`, `0.12 %`).
    pub shown: String,
    pub passed: bool,
}

const LATENCY: [&str; 7] = ["p50", "p90", "p99", "p999", "max", "mean", "min"];
const PLAIN: [&str; 8] = [
    "errors",
    "rps",
    "error_rate",
    "lost",
    "corrupted",
    "verify_errors",
    "requests",
    "late_changes",
];

pub fn parse(expr: &str) -> Result<Threshold> {
    let s: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let (pos, len, cmp) = ["<=", ">=", "==", "<", ">", "="]
        .iter()
        .find_map(|c| {
            s.find(c).map(|p| {
                let cmp = match *c {
                    "<=" => Cmp::Le,
                    ">=" => Cmp::Ge,
                    "<" => Cmp::Lt,
                    ">" => Cmp::Gt,
                    _ => Cmp::Eq,
                };
                (p, c.len(), cmp)
            })
        })
        .ok_or_else(|| anyhow::anyhow!("threshold {expr:?}: no comparison (<, <=, >, >=, =)"))?;
    let lhs = &s[..pos];
    let rhs = &s[pos + len..];
    let (op, metric) = match lhs.rsplit_once('.') {
        // `p99.9` is a metric, not op `p99` + metric `9`.
        Some((o, "9")) if o.ends_with("p99") => match o.rsplit_once('.') {
            Some((op, _)) => (Some(op.to_string()), "p999".to_string()),
            None => (None, "p999".to_string()),
        },
        Some((o, m)) => (Some(o.to_string()), m.to_string()),
        None => (None, lhs.to_string()),
    };
    let metric = if metric == "p99.9" {
        "p999".into()
    } else {
        metric
    };
    let num_end = rhs
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rhs.len());
    let (num, unit) = rhs.split_at(num_end);
    let Ok(n) = num.parse::<f64>() else {
        bail!("threshold {expr:?}: {num:?} is not a number");
    };
    let value = if LATENCY.contains(&metric.as_str()) {
        n * match unit {
            "us" | "µs" => 1.0,
            "ms" | "" => 1e3,
            "s" => 1e6,
            _ => bail!("threshold {expr:?}: unit {unit:?} (use us, ms or s)"),
        }
    } else if PLAIN.contains(&metric.as_str()) {
        match unit {
            "" => n,
            "%" => n / 100.0,
            _ => bail!("threshold {expr:?}: unit {unit:?} not allowed here"),
        }
    } else {
        bail!(
            "threshold {expr:?}: unknown metric {metric:?} (latency: {}; other: {})",
            LATENCY.join(", "),
            PLAIN.join(", ")
        );
    };
    Ok(Threshold {
        expr: expr.to_string(),
        op,
        metric,
        cmp,
        value,
    })
}

impl Threshold {
    /// Judges the result (the JSON of result.json without its thresholds).
    pub fn judge(&self, result: &Value) -> Verdict {
        let measured = self.measure(result);
        let passed = measured.is_some_and(|m| match self.cmp {
            Cmp::Lt => m < self.value,
            Cmp::Le => m <= self.value,
            Cmp::Gt => m > self.value,
            Cmp::Ge => m >= self.value,
            Cmp::Eq => (m - self.value).abs() < 1e-9,
        });
        Verdict {
            expr: self.expr.clone(),
            measured,
            shown: measured.map_or_else(|| "not measured".into(), |m| self.show(m)),
            passed,
        }
    }

    /// `m` (in the metric's unit) as people read it.
    fn show(&self, m: f64) -> String {
        if LATENCY.contains(&self.metric.as_str()) {
            format!("{:.2} ms", m / 1e3)
        } else if self.metric == "error_rate" {
            format!("{:.4} %", m * 100.0)
        } else {
            format!("{m}")
        }
    }

    fn measure(&self, r: &Value) -> Option<f64> {
        let m = self.metric.as_str();
        if self.op.as_deref() == Some("propagation") {
            let p = r.get("sync")?.get("propagation_us")?;
            // No change seen at all: the delay was not measured.
            if p.get("count")?.as_f64()? == 0.0 {
                return None;
            }
            return p.get(m)?.as_f64();
        }
        let scope = match &self.op {
            Some(op) => r.get("ops")?.get(op)?,
            None => r,
        };
        if LATENCY.contains(&m) {
            return scope.get("latency_us")?.get(m)?.as_f64();
        }
        let (errors, total, per_s) = match &self.op {
            Some(_) => (scope.get("errors"), scope.get("count"), scope.get("per_s")),
            None => {
                let q = r.get("requests")?;
                (q.get("errors"), q.get("total"), q.get("per_s"))
            }
        };
        match m {
            "errors" => errors?.as_f64(),
            "requests" => total?.as_f64(),
            "rps" => per_s?.as_f64(),
            "error_rate" => {
                let t = total?.as_f64()?;
                Some(if t > 0.0 { errors?.as_f64()? / t } else { 0.0 })
            }
            "lost" | "corrupted" | "verify_errors" => r.get("exam")?.get(m)?.as_f64(),
            "late_changes" => r.get("sync")?.get(m)?.as_f64(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let r = serde_json::json!({
            "requests": {"total": 100, "errors": 2, "per_s": 50.0},
            "latency_us": {"p99": 80_000, "p999": 150_000},
            "ops": {"get": {"count": 10, "errors": 0, "per_s": 5.0, "latency_us": {"p99": 2_000}}},
            "exam": {"lost": 0}
        });
        let ok = |e: &str| parse(e).unwrap().judge(&r).passed;
        assert!(ok("p99<100ms"));
        assert!(!ok("p99<50ms"));
        assert!(ok("p99.9 <= 0.15s"));
        assert!(!ok("errors=0"));
        assert!(ok("errors<=2"));
        assert!(ok("error_rate<3%"));
        assert!(ok("get.p99<3ms"));
        assert!(ok("get.errors=0"));
        assert!(ok("lost=0"));
        assert!(ok("rps>=50"));
        assert!(!ok("put.p99<1s"), "an unmeasured op must fail");
        let shown = |e: &str| parse(e).unwrap().judge(&r).shown;
        assert_eq!(shown("p99<100ms"), "80.00 ms");
        assert_eq!(shown("errors=0"), "2");
        assert_eq!(shown("error_rate<3%"), "2.0000 %");
        assert_eq!(shown("put.p99<1s"), "not measured");
        assert!(parse("p99<100parsecs").is_err());
        assert!(parse("speed<3").is_err());
        assert!(parse("p99").is_err());
        let sync = serde_json::json!({
            "requests": {"total": 10, "errors": 0, "per_s": 5.0},
            "sync": {"late_changes": 2, "propagation_us": {"count": 4, "p99": 1_500_000, "max": 3_000_000}}
        });
        let ok = |e: &str| parse(e).unwrap().judge(&sync).passed;
        assert!(!ok("late_changes=0"));
        assert!(ok("late_changes<=2"));
        assert!(ok("propagation.p99<2s"));
        assert!(!ok("propagation.max<2s"));
        assert!(!ok("late_changes=0") && !parse("late_changes=0").unwrap().judge(&r).passed);
    }
}
