//! The HTML page a browser gets for `GET` on a collection: breadcrumbs, folders then files
//! (each sorted by name) with human sizes and times, and an upload form that POSTs
//! `multipart/form-data` into the collection (`post.rs`). No scripts: the page's
//! Content-Security-Policy forbids them, and every name is escaped.

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Response;

use super::common::{engine_error, is_dir};
use super::ctx::Ctx;
use crate::dav::path::SpacePath;
use crate::http::body::{empty, full};
use crate::http::response::Resp;
use crate::limits::LISTING_ENTRIES_MAX;

/// Inline style only; no script, no other origin, forms post only here, never framed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
     nav a{color:#0645ad}table{border-collapse:collapse;margin:1em 0}\
     th,td{padding:.25em 1em;text-align:left}td.size{text-align:right}\
     tr:nth-child(even){background:#f4f4f4}form{margin-top:1.5em;padding:1em;\
     border:1px solid #ccc;display:inline-block}.note{color:#a33}";

/// Escapes text for HTML content and attribute values.
pub fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A size in bytes as people read it: `512 B`, `1.5 KiB`, `20.0 MiB`, `3.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Round first, so that 1023.96 KiB shows as 1.0 MiB rather than 1024.0 KiB.
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `YYYY-MM-DD HH:MM UTC` of nanoseconds since the epoch.
pub fn human_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::http::date::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The listing page of the collection `ctx` names (`head`: headers only).
pub fn page(ctx: &Ctx, head: bool) -> Resp {
    let (_, mut children) = match ctx.app.store.list(&ctx.space, &ctx.names) {
        Ok(l) => l,
        Err(e) => return engine_error(&e),
    };
    // The home's root shows its spaces and shares (`crate::spaces`) in place of entries of
    // the same name; their links lead to them.
    let mounts = &ctx.access.home_mounts;
    children.retain(|c| !mounts.iter().any(|m| m.info.name == c.name));
    children.extend(mounts.iter().map(|m| m.info.clone()));
    let total = children.len();
    children.sort_by(|a, b| (!is_dir(a), &a.name).cmp(&(!is_dir(b), &b.name)));
    children.truncate(LISTING_ENTRIES_MAX);
    let path = &ctx.target.path;
    let here = ctx.href(path, true);
    let mut p = String::with_capacity(2048 + children.len() * 200);
    p.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
    p.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    p.push_str("<title>");
    html_escape(&format!("/{}", path.as_str()), &mut p);
    p.push_str("</title><style>");
    p.push_str(STYLE);
    p.push_str("</style></head><body>\n<h1 id=\"path\">");
    html_escape(&format!("/{}", path.as_str()), &mut p);
    p.push_str("</h1>\n<nav id=\"breadcrumbs\">");
    breadcrumbs(ctx, path, &mut p);
    p.push_str("</nav>\n<table id=\"entries\"><thead><tr><th>Name</th><th>Size</th>");
    p.push_str("<th>Modified</th></tr></thead><tbody>\n");
    // Links are absolute paths: relative ones break when the collection was requested
    // without its trailing slash (a browser then resolves them against the parent).
    if let Some(parent) = path.parent() {
        p.push_str("<tr><td><a href=\"");
        p.push_str(&ctx.href(&parent, true));
        p.push_str("\">../</a></td><td></td><td></td></tr>\n");
    }
    for c in &children {
        let dir = is_dir(c);
        let Ok(child) = path.join(&c.name) else {
            continue;
        };
        p.push_str(if dir {
            "<tr class=\"dir\"><td><a href=\""
        } else {
            "<tr class=\"file\"><td><a href=\""
        });
        // Percent-encoded, so only unreserved ASCII, `%` and `/` remain: safe in an attribute.
        match mounts
            .iter()
            .find(|m| path.is_root() && m.info.name == c.name)
        {
            Some(m) => p.push_str(&m.ctx.href(&m.ctx.target.path, true)),
            None => p.push_str(&ctx.href(&child, dir)),
        }
        p.push_str("\">");
        html_escape(&c.name, &mut p);
        if dir {
            p.push('/');
        }
        p.push_str("</a></td><td class=\"size\">");
        if !dir {
            p.push_str(&human_size(c.size));
        }
        p.push_str("</td><td>");
        p.push_str(&human_time(c.mtime));
        p.push_str("</td></tr>\n");
    }
    p.push_str("</tbody></table>\n");
    if total > children.len() {
        p.push_str(&format!(
            "<p class=\"note\" id=\"truncated\">Showing the first {} of {total} entries; \
             use a WebDAV client to see them all.</p>\n",
            children.len()
        ));
    }
    p.push_str("<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\" action=\"");
    p.push_str(&here);
    p.push_str(
        "\"><label>Upload files here: <input type=\"file\" name=\"file\" multiple \
         required></label> <button type=\"submit\">Upload</button></form>\n</body></html>\n",
    );
    let len = p.len();
    let mut resp = Response::new(if head { empty() } else { full(p) });
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `Home / a / b / c`: every ancestor a link, the collection itself plain text.
fn breadcrumbs(ctx: &Ctx, path: &SpacePath, p: &mut String) {
    let segments: Vec<&str> = path.segments().collect();
    let mut at = SpacePath::root();
    if segments.is_empty() {
        p.push_str("<span>Home</span>");
        return;
    }
    p.push_str("<a href=\"");
    p.push_str(&ctx.href(&at, true));
    p.push_str("\">Home</a>");
    for (i, seg) in segments.iter().enumerate() {
        p.push_str(" / ");
        let Ok(next) = at.join(seg) else {
            return;
        };
        at = next;
        if i + 1 == segments.len() {
            p.push_str("<span>");
            html_escape(seg, p);
            p.push_str("</span>");
        } else {
            p.push_str("<a href=\"");
            p.push_str(&ctx.href(&at, true));
            p.push_str("\">");
            html_escape(seg, p);
            p.push_str("</a>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(human_size(3_435_973_837), "3.2 GiB");
        assert_eq!(human_size(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(human_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            human_time(1_709_164_800_000_000_000 + 3_661_000_000_000),
            "2024-02-29 01:01 UTC"
        );
        assert_eq!(human_time(-1), "1969-12-31 23:59 UTC");
        assert_eq!(human_time(i64::MAX), "2262-04-11 23:47 UTC");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        html_escape("<a href=\"x\">'&'</a>", &mut s);
        assert_eq!(s, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
