//! The HTML report of a measurement: a table of every figure and inline SVG plots of growth with users.
use super::measure::Figures;

/// Plot size in SVG pixels.
const W: f64 = 360.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;
/// Figures plotted against users.
pub const PLOTTED: &[&str] = &[
    "rss_after_open_bytes",
    "disk_bytes",
    "recovery_s",
    "entries",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn value(p: &Figures, k: &str) -> f64 {
    p.get(k).map(|f| f.value).unwrap_or(0.0)
}

fn plot(points: &[Figures], key: &str) -> String {
    let xs: Vec<f64> = points.iter().map(|p| value(p, "users")).collect();
    let ys: Vec<f64> = points.iter().map(|p| value(p, key)).collect();
    let xmax = xs.iter().cloned().fold(1e-9, f64::max);
    let ymax = ys.iter().cloned().fold(1e-9, f64::max);
    let pts: Vec<String> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                PAD + x / xmax * (W - 2.0 * PAD),
                H - PAD - y / ymax * (H - 2.0 * PAD)
            )
        })
        .collect();
    let slope = if xs.len() >= 2 {
        let n = xs.len();
        (ys[n - 1] - ys[n - 2]) / (xs[n - 1] - xs[n - 2]).max(1e-9)
    } else {
        ys[0] / xs[0].max(1e-9)
    };
    format!(
        "<figure><svg class=\"plot\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
<line x1=\"{PAD}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\
<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{y0}\" stroke=\"black\"/>\
<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"{p}\"/>\
<text x=\"{PAD}\" y=\"20\">{k} (max {ymax:.3e})</text></svg>\
<figcaption>{k} vs users, slope {slope:.3e} per user</figcaption></figure>",
        y0 = H - PAD,
        x1 = W - PAD,
        p = pts.join(" "),
        k = esc(key)
    )
}

/// The whole report.
pub fn html(points: &[Figures], machine: &std::collections::BTreeMap<String, String>) -> String {
    let mut s = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>Skab capacity</title></head><body><h1>Skab capacity</h1><h2>Machine</h2><table id=\"machine\">");
    for (k, v) in machine {
        s += &format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s += "</table><h2>Figures</h2><table id=\"figures\"><tr><th>figure</th><th>unit</th>";
    for p in points {
        s += &format!("<th>{} users</th>", value(p, "users"));
    }
    s += "</tr>";
    if let Some(first) = points.first() {
        for (k, f) in first {
            s += &format!("<tr><th>{}</th><td>{}</td>", esc(k), esc(&f.unit));
            for p in points {
                s += &format!("<td>{:.4}</td>", value(p, k));
            }
            s += "</tr>";
        }
    }
    s += "</table><h2>Growth</h2>";
    if !points.is_empty() {
        for k in PLOTTED {
            s += &plot(points, k);
        }
    }
    s + "</body></html>"
}
