//! The self-contained HTML report: inline SVG charts drawn here (no scripts or fonts fetched),
//! plus tables; a small inline script marks the page ready once the charts are laid out.

use std::fmt::Write as _;

use serde_json::Value;

const W: f64 = 1000.0;
const H: f64 = 300.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 150.0;
const PAD_T: f64 = 30.0;
const PAD_B: f64 = 40.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

struct Series<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
}

/// A line (or bar) chart; `log_y` plots y on a log10 scale (values below 1 clamp to 1).
fn chart(
    title: &str,
    x_label: &str,
    y_fmt: &dyn Fn(f64) -> String,
    series: &[Series],
    log_y: bool,
    bars: bool,
    x_ticks: Option<&[(f64, String)]>,
) -> String {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<h3>{}</h3><svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>",
        esc(title)
    );
    if x0 > x1 {
        let _ = write!(
            out,
            "<rect x=\"{PAD_L}\" y=\"{PAD_T}\" width=\"10\" height=\"10\" fill=\"#ccc\"/>\
             <text x=\"{}\" y=\"{}\">no data</text></svg>",
            PAD_L + 20.0,
            PAD_T + 10.0
        );
        return out;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ty = |y: f64| -> f64 {
        if log_y {
            y.max(1.0).log10()
        } else {
            y
        }
    };
    let (ly0, mut ly1) = if log_y {
        (0.0f64, ty(y1).ceil().max(1.0))
    } else {
        (0.0, (y1 * 1.1).max(4.0))
    };
    if ly1 <= ly0 {
        ly1 = ly0 + 1.0;
    }
    let pw = W - PAD_L - PAD_R;
    let ph = H - PAD_T - PAD_B;
    let sx = |x: f64| PAD_L + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| PAD_T + ph - (ty(y) - ly0) / (ly1 - ly0) * ph;
    // Axes and grid.
    let _ = write!(
        out,
        "<path d=\"M{PAD_L} {PAD_T} V{} H{}\" stroke=\"#333\" fill=\"none\"/>",
        PAD_T + ph,
        PAD_L + pw
    );
    let yticks: Vec<f64> = if log_y {
        (ly0 as i32..=ly1 as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=4).map(|i| ly1 * i as f64 / 4.0).collect()
    };
    for y in yticks {
        let py = sy(y);
        let _ = write!(
            out,
            "<path d=\"M{PAD_L} {py:.1} H{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{}</text>",
            PAD_L + pw,
            PAD_L - 4.0,
            py + 4.0,
            esc(&y_fmt(y))
        );
    }
    let xt: Vec<(f64, String)> = match x_ticks {
        Some(t) => t.to_vec(),
        None => (0..=5)
            .map(|i| {
                let x = x0 + (x1 - x0) * i as f64 / 5.0;
                (x, format!("{x:.0}"))
            })
            .collect(),
    };
    for (x, label) in xt {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            sx(x),
            PAD_T + ph + 14.0,
            esc(&label)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        PAD_L + pw / 2.0,
        H - 6.0,
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if bars {
            let n = s.points.len().max(1) as f64;
            let bw = (pw / n).max(1.0);
            for &(x, y) in &s.points {
                if y > 0.0 {
                    let top = sy(y);
                    let _ = write!(
                        out,
                        "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                        sx(x),
                        (PAD_T + ph - top).max(0.5)
                    );
                }
            }
        } else {
            let mut d = String::new();
            for (j, &(x, y)) in s.points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if j == 0 { "M" } else { "L" },
                    sx(x),
                    sy(y)
                );
            }
            let _ = write!(
                out,
                "<path d=\"{d}\" stroke=\"{color}\" stroke-width=\"1.8\" fill=\"none\"/>"
            );
        }
        let ly = PAD_T + 14.0 * i as f64;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            W - PAD_R + 10.0,
            ly,
            W - PAD_R + 24.0,
            ly + 9.0,
            esc(s.name)
        );
    }
    out.push_str("</svg>");
    out
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return 0.0,
        }
    }
    cur.as_f64().unwrap_or(0.0)
}

/// The sync-client polling counters (login-storm, sync) and the sync scenario's propagation.
fn polling_tables(html: &mut String, r: &Value) {
    let with: Vec<(&str, &Value)> = ["login_storm", "sync"]
        .iter()
        .filter_map(|k| {
            let p = r.get(*k)?.get("polling")?;
            (!p.is_null()).then_some((*k, p))
        })
        .collect();
    if !with.is_empty() {
        html.push_str(
            "<h2>Sync polling</h2><table><tr><th>scenario</th><th>polls</th>\
             <th>found changes</th><th>share</th><th>without ETag</th><th>listings</th>\
             <th>folder listings</th><th>capped</th></tr>",
        );
        for (k, p) in &with {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.1} %</td><td>{:.0}</td>\
                 <td>{:.0}</td><td>{:.0}</td><td>{:.0}</td></tr>",
                esc(k),
                f(p, &["polls"]),
                f(p, &["polls_changed"]),
                f(p, &["changed_share"]) * 100.0,
                f(p, &["polls_without_etag"]),
                f(p, &["listings"]),
                f(p, &["folder_listings"]),
                f(p, &["capped_follow_ups"]),
            );
        }
        html.push_str(
            "</table><p>A poll is a PROPFIND Depth 0 of the home; when the home's ETag differs \
             from the remembered one the client lists the home (Depth 1) and each changed \
             subfolder (Depth 1).</p>",
        );
    }
    let Some(s) = r.get("sync").filter(|s| !s.is_null()) else {
        return;
    };
    let late = f(s, &["late_changes"]);
    let _ = write!(
        html,
        "<h2>Change propagation</h2><table><tr><th>changes</th><th>failed</th>\
         <th>deliveries seen</th><th>late</th><th>unseen</th><th>p50</th><th>p99</th><th>max</th>\
         <th>bound</th><th>late changes</th><th>polls that missed a change</th></tr>\
         <tr><td>{:.0}</td><td>{:.0}</td><td>{:.0} of {:.0}</td><td>{:.0}</td><td>{:.0}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{:.0}</td><td>{:.0}</td></tr></table>\
         <p>Per change and per other client of its user: the time from the change's \
         acknowledgement until that client's poll found the home changed and its listing \
         showed the change.</p>",
        f(s, &["changes"]),
        f(s, &["changes_failed"]),
        f(s, &["deliveries_seen"]),
        f(s, &["deliveries_expected"]),
        f(s, &["deliveries_late"]),
        f(s, &["deliveries_unseen"]),
        fmt_us(f(s, &["propagation_us", "p50"])),
        fmt_us(f(s, &["propagation_us", "p99"])),
        fmt_us(f(s, &["propagation_us", "max"])),
        fmt_us(f(s, &["bound_ms"]) * 1e3),
        if late > 0.0 { "fail" } else { "pass" },
        late,
        f(s, &["polls_missed_change"]),
    );
}

/// Renders report.html from the result JSON.
pub fn render(r: &Value) -> String {
    let scenario = r.get("scenario").and_then(Value::as_str).unwrap_or("?");
    let passed = r.get("passed").and_then(Value::as_bool).unwrap_or(false);
    let empty = Vec::new();
    let tl = r
        .get("timeline")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let col =
        |k: &str| -> Vec<(f64, f64)> { tl.iter().map(|p| (f(p, &["t_s"]), f(p, &[k]))).collect() };
    // Latency exists only where requests completed; empty intervals are gaps, not zeros.
    let lat = |k: &str| -> Vec<(f64, f64)> {
        tl.iter()
            .filter(|p| f(p, &["requests"]) > 0.0)
            .map(|p| (f(p, &["t_s"]), f(p, &[k])))
            .collect()
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>skab-loadtest report: loading</title>\
         <style>body{{font-family:sans-serif;margin:20px;color:#222}}table{{border-collapse:collapse;margin:8px 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f0f0f0}}\
         td:first-child,th:first-child{{text-align:left}}.pass{{color:#080}}.fail{{color:#c00}}\
         pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>\
         <h1>skab-loadtest: {}</h1><p>Target <code>{}</code>; wall time {:.1} s; time scale {}; \
         verdict <b class=\"{}\">{}</b></p>",
        esc(scenario),
        esc(r.get("target").and_then(Value::as_str).unwrap_or("")),
        f(r, &["wall_s"]),
        f(r, &["time_scale"]),
        if passed { "pass" } else { "fail" },
        if passed { "PASS" } else { "FAIL" }
    );
    // Summary table.
    html.push_str(
        "<h2>Operations</h2><table><tr><th>op</th><th>count</th><th>errors</th><th>per s</th>\
        <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>",
    );
    let row = |name: &str, o: &Value, count: f64, errors: f64, per_s: f64| {
        let l = |k: &str| fmt_us(f(o, &["latency_us", k]));
        format!(
            "<tr><td>{}</td><td>{count:.0}</td><td>{errors:.0}</td><td>{per_s:.1}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            l("p50"),
            l("p90"),
            l("p99"),
            l("p999"),
            l("max")
        )
    };
    if let Some(ops) = r.get("ops").and_then(Value::as_object) {
        for (name, o) in ops {
            html.push_str(&row(
                name,
                o,
                f(o, &["count"]),
                f(o, &["errors"]),
                f(o, &["per_s"]),
            ));
        }
    }
    html.push_str(&row(
        "all",
        r,
        f(r, &["requests", "total"]),
        f(r, &["requests", "errors"]),
        f(r, &["requests", "per_s"]),
    ));
    html.push_str(
        "</table><p>Latency is measured from each request's <i>scheduled</i> start \
        (open loop), so a stall in the server or the generator shows up in it.</p>",
    );
    // Per target, when there are several (the nodes of a cluster).
    if let Some(ts) = r.get("targets").and_then(Value::as_array) {
        if ts.len() > 1 {
            html.push_str(
                "<h2>Targets</h2><table><tr><th>target</th><th>requests</th><th>ok</th>\
                 <th>4xx</th><th>5xx</th><th>failed</th><th>p50</th><th>p99</th><th>max</th></tr>",
            );
            for t in ts {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td>\
                     <td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(t.get("url").and_then(Value::as_str).unwrap_or("")),
                    f(t, &["requests"]),
                    f(t, &["ok"]),
                    f(t, &["status_4xx"]),
                    f(t, &["status_5xx"]),
                    f(t, &["failures"]),
                    fmt_us(f(t, &["latency_us", "p50"])),
                    fmt_us(f(t, &["latency_us", "p99"])),
                    fmt_us(f(t, &["latency_us", "max"])),
                );
            }
            html.push_str(
                "</table><p>Per target at the HTTP level: every answer as it came (ok: below \
                 400), latency from send to the end of the body.</p>",
            );
        }
    }
    // Thresholds.
    if let Some(th) = r.get("thresholds").and_then(Value::as_array) {
        if !th.is_empty() {
            html.push_str("<h2>Thresholds</h2><table><tr><th>threshold</th><th>measured</th><th>verdict</th></tr>");
            for t in th {
                let ok = t.get("passed").and_then(Value::as_bool).unwrap_or(false);
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                    esc(t.get("expr").and_then(Value::as_str).unwrap_or("")),
                    esc(t
                        .get("shown")
                        .and_then(Value::as_str)
                        .unwrap_or("not measured")),
                    if ok { "pass" } else { "fail" },
                    if ok { "pass" } else { "FAIL" }
                );
            }
            html.push_str("</table>");
        }
    }
    polling_tables(&mut html, r);
    // Charts.
    html.push_str("<h2>Charts</h2>");
    html.push_str(&chart(
        "Throughput (requests completed per second)",
        "seconds since start",
        &|y| format!("{y:.0}"),
        &[Series {
            name: "req/s",
            points: col("per_s"),
        }],
        false,
        false,
        None,
    ));
    html.push_str(&chart(
        "Latency percentiles over time (log scale)",
        "seconds since start",
        &|y| fmt_us(y),
        &[
            Series {
                name: "p50",
                points: lat("p50_us"),
            },
            Series {
                name: "p90",
                points: lat("p90_us"),
            },
            Series {
                name: "p99",
                points: lat("p99_us"),
            },
            Series {
                name: "max",
                points: lat("max_us"),
            },
        ],
        true,
        false,
        None,
    ));
    // Distribution: x = -log10(1 - q), so 90 %, 99 %, 99.9 % ... are evenly spaced.
    let mut dist = Vec::new();
    if let Some(d) = r.get("distribution").and_then(Value::as_object) {
        for (name, pts) in d {
            let points: Vec<(f64, f64)> = pts
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(|p| {
                    let pct = p.get(0)?.as_f64()?;
                    let us = p.get(1)?.as_f64()?;
                    let q = (pct / 100.0).min(0.99999);
                    Some((-(1.0 - q).log10(), us))
                })
                .collect();
            dist.push((name.clone(), points));
        }
    }
    let dist_series: Vec<Series> = dist
        .iter()
        .map(|(n, p)| Series {
            name: n,
            points: p.clone(),
        })
        .collect();
    let ticks: Vec<(f64, String)> = [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ]
    .iter()
    .map(|(x, l)| (*x, l.to_string()))
    .collect();
    html.push_str(&chart(
        "Latency distribution by operation (log scale)",
        "percentile",
        &|y| fmt_us(y),
        &dist_series,
        true,
        false,
        Some(&ticks),
    ));
    html.push_str(&chart(
        "Errors per interval",
        "seconds since start",
        &|y| format!("{y:.0}"),
        &[Series {
            name: "errors",
            points: col("errors"),
        }],
        false,
        true,
        None,
    ));
    // Errors and the rest.
    html.push_str("<h2>Errors by kind</h2><table><tr><th>op:kind</th><th>count</th></tr>");
    if let Some(e) = r
        .get("errors")
        .and_then(|e| e.get("by_op"))
        .and_then(Value::as_object)
    {
        for (k, v) in e {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(k),
                v.as_u64().unwrap_or(0)
            );
        }
    }
    html.push_str("</table>");
    for key in [
        "exam",
        "login_storm",
        "school_day",
        "sync",
        "auth",
        "connections",
        "generator",
        "server",
        "server_metrics",
    ] {
        if let Some(v) = r.get(key) {
            if !v.is_null() {
                let _ = write!(
                    html,
                    "<h2>{}</h2><pre>{}</pre>",
                    esc(key),
                    esc(&serde_json::to_string_pretty(v).unwrap_or_default())
                );
            }
        }
    }
    html.push_str(
        "<script>(function(){var c=document.querySelectorAll('svg.chart');var ok=c.length>=4;\
         c.forEach(function(s){var b=s.getBoundingClientRect();\
         if(b.width<10||b.height<10||s.querySelectorAll('path,rect').length<2)ok=false;});\
         if(ok){var m=document.createElement('div');m.id='report-ready';\
         m.textContent='charts rendered: '+c.length;document.body.appendChild(m);\
         document.title='skab-loadtest report: ready';}})();</script></body></html>",
    );
    html
}
