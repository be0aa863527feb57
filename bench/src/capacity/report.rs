//! The HTML report of a measurement: a table of every figure and inline SVG plots of growth with users.
use super::measure::Figures;

/// Plot size in SVG pixels.
const W: f64 = 360.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;
/// Figures plotted against users (those a point lacks, e.g. without the server step, are
/// left out).
pub const PLOTTED: &[&str] = &[
    "rss_after_open_bytes",
    "disk_bytes",
    "recovery_s",
    "entries",
    "login_storm_p99_s",
    "exam_peak_p99_s",
    "fg_write_p99_maintenance_s",
];

/// Least-squares line through (x, y): (intercept, slope).
pub fn fit(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return (
            0.0,
            ys.first().copied().unwrap_or(0.0) / xs.first().copied().unwrap_or(1.0).max(1e-9),
        );
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A figure for the table: whole numbers as such, small ones with 4 significant digits.
fn number(v: f64) -> String {
    if v == v.round() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
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
    let (a, b) = fit(&xs, &ys);
    let sx = |x: f64| PAD + x / xmax * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - (y / ymax).clamp(-0.2, 1.2) * (H - 2.0 * PAD);
    let entries = points.last().map(|p| value(p, "entries")).unwrap_or(0.0);
    let users = points.last().map(|p| value(p, "users")).unwrap_or(0.0);
    let per_entry = if entries > 0.0 {
        b * users / entries
    } else {
        0.0
    };
    format!(
        "<figure><svg class=\"plot\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
<line x1=\"{PAD}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\
<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{y0}\" stroke=\"black\"/>\
<line class=\"fit\" x1=\"{fx0:.1}\" y1=\"{fy0:.1}\" x2=\"{fx1:.1}\" y2=\"{fy1:.1}\" stroke=\"orange\" stroke-dasharray=\"4 3\"/>\
<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"{p}\"/>\
<text x=\"{PAD}\" y=\"20\">{k} (max {ymax:.3e})</text></svg>\
<figcaption>{k} vs users: fitted {a:.3e} + {b:.3e} per user (about {per_entry:.3e} per file entry)</figcaption></figure>",
        fx0 = sx(0.0),
        fy0 = sy(a),
        fx1 = sx(xmax),
        fy1 = sy(a + b * xmax),
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
    if let Some(last) = points.last() {
        for (k, f) in last {
            s += &format!("<tr><th>{}</th><td>{}</td>", esc(k), esc(&f.unit));
            for p in points {
                s += &format!("<td>{}</td>", number(value(p, k)));
            }
            s += "</tr>";
        }
    }
    s += "</table><h2>Growth</h2>";
    if !points.is_empty() {
        for k in PLOTTED {
            if points.iter().all(|p| p.contains_key(*k)) {
                s += &plot(points, k);
            }
        }
    }
    s + "</body></html>"
}
