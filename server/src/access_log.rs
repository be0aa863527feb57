//! The access log: one line per request (time, client address, tenant, user, method, path,
//! status, bytes, duration), as JSON or in the combined format, to stderr or a file. A
//! serving thread formats its line and pushes it onto a bounded queue; a writer thread writes
//! what has queued every `ACCESS_LOG_FLUSH_MS`. A full queue drops lines (counted) rather than
//! slow requests down. Off by default (`log.access`); its cost: docs/benchmarks.md, "Access
//! log cost". A log file is reopened on request ([`AccessLog::reopen`], on `SIGHUP`) so that
//! logrotate can move it away.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use crate::config::AccessFormat;
use crate::http::date::civil_from_days;
use crate::limits::{ACCESS_LOG_FLUSH_MS, ACCESS_LOG_QUEUE_LINES, ACCESS_LOG_WRITE_BYTES};

/// Who made an authenticated request (set by the router on the response for the log).
#[derive(Clone, Debug)]
pub struct Who {
    pub tenant: String,
    pub user: String,
}

/// One finished request.
pub struct Entry<'a> {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub who: Option<&'a Who>,
    pub method: &'a str,
    /// The request target as sent (still percent-encoded).
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    /// Response body bytes when known.
    pub bytes: Option<u64>,
    pub duration: Duration,
    pub user_agent: Option<&'a str>,
}

/// The open access log.
pub struct AccessLog {
    format: AccessFormat,
    /// `None` only while dropping (the writer then writes the rest and ends).
    tx: Option<Sender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    /// Set to have the writer open its file again at its next turn.
    reopen: Arc<AtomicBool>,
}

/// Where lines go.
enum Dest {
    Stderr,
    File(std::path::PathBuf),
}

impl Dest {
    fn open(&self) -> std::io::Result<Box<dyn std::io::Write + Send>> {
        Ok(match self {
            Dest::Stderr => Box::new(std::io::stderr()),
            Dest::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        })
    }
}

impl Drop for AccessLog {
    /// Writes what is queued before the process goes.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl AccessLog {
    /// `dest` is `stderr` or a file path (appended to, created if missing).
    pub fn open(dest: &str, format: AccessFormat) -> std::io::Result<AccessLog> {
        let dest = if dest == "stderr" {
            Dest::Stderr
        } else {
            Dest::File(dest.into())
        };
        let out = dest.open()?;
        let (tx, rx) = bounded(ACCESS_LOG_QUEUE_LINES);
        let reopen = Arc::new(AtomicBool::new(false));
        let flag = reopen.clone();
        let writer = std::thread::Builder::new()
            .name("skab-access-log".into())
            .spawn(move || write_lines(rx, out, dest, flag))?;
        Ok(AccessLog {
            format,
            tx: Some(tx),
            writer: Some(writer),
            dropped: Arc::new(AtomicU64::new(0)),
            reopen,
        })
    }

    /// Has the writer open the log file again (by its name) before it writes next: after
    /// logrotate moved it, lines go to a new file. Nothing for stderr.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn record(&self, e: &Entry<'_>) {
        let line = match self.format {
            AccessFormat::Json => json_line(e),
            AccessFormat::Combined => combined_line(e),
        };
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The writer thread: every `ACCESS_LOG_FLUSH_MS` it writes whatever has queued, in calls of
/// up to `ACCESS_LOG_WRITE_BYTES`. It never blocks on the queue, so a serving thread's send is
/// a lock-free push that wakes nobody (waking the writer per line cost more than the line).
fn write_lines(
    rx: Receiver<String>,
    mut out: Box<dyn std::io::Write + Send>,
    dest: Dest,
    reopen: Arc<AtomicBool>,
) {
    let mut buf = Vec::with_capacity(ACCESS_LOG_WRITE_BYTES);
    loop {
        std::thread::sleep(Duration::from_millis(ACCESS_LOG_FLUSH_MS));
        if reopen.swap(false, Ordering::AcqRel) {
            match dest.open() {
                Ok(new) => {
                    flush(&mut out, &mut buf);
                    out = new;
                }
                Err(e) => tracing::warn!(error = %e, "access log not reopened; the old file stays"),
            }
        }
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(l) => buf.extend_from_slice(l.as_bytes()),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
            if buf.len() >= ACCESS_LOG_WRITE_BYTES {
                flush(&mut out, &mut buf);
            }
        }
        flush(&mut out, &mut buf);
        if closed {
            return;
        }
    }
}

fn flush(out: &mut Box<dyn std::io::Write + Send>, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    if let Err(e) = out.write_all(buf).and_then(|_| out.flush()) {
        tracing::warn!(error = %e, "access log write failed");
    }
    buf.clear();
}

fn json_line(e: &Entry<'_>) -> String {
    let mut s = String::with_capacity(192 + e.target.len());
    s.push_str("{\"time\":\"");
    push_rfc3339_ms(&mut s, e.time);
    let _ = write!(s, "\",\"client\":\"{}\"", e.client.ip());
    if let Some(w) = e.who {
        s.push_str(",\"tenant\":");
        push_json_str(&mut s, &w.tenant);
        s.push_str(",\"user\":");
        push_json_str(&mut s, &w.user);
    }
    s.push_str(",\"method\":");
    push_json_str(&mut s, e.method);
    s.push_str(",\"path\":");
    push_json_str(&mut s, e.target);
    let _ = write!(s, ",\"status\":{}", e.status);
    if let Some(b) = e.bytes {
        let _ = write!(s, ",\"bytes\":{b}");
    }
    let _ = write!(s, ",\"duration_us\":{}", e.duration.as_micros());
    if let Some(ua) = e.user_agent {
        s.push_str(",\"user_agent\":");
        push_json_str(&mut s, ua);
    }
    s.push_str("}\n");
    s
}

/// Apache's combined format; the user field is `user@tenant`, and the duration in
/// microseconds follows (as `%D` does).
fn combined_line(e: &Entry<'_>) -> String {
    let mut s = String::with_capacity(160 + e.target.len());
    let _ = write!(s, "{} - ", e.client.ip());
    match e.who {
        Some(w) => {
            push_clean(&mut s, &w.user);
            s.push('@');
            push_clean(&mut s, &w.tenant);
        }
        None => s.push('-'),
    }
    s.push_str(" [");
    push_clf_time(&mut s, e.time);
    s.push_str("] \"");
    push_clean(&mut s, e.method);
    s.push(' ');
    push_clean(&mut s, e.target);
    let _ = write!(s, " {}\" {} ", e.version, e.status);
    match e.bytes {
        Some(b) => {
            let _ = write!(s, "{b}");
        }
        None => s.push('-'),
    }
    s.push_str(" \"-\" \"");
    push_clean(&mut s, e.user_agent.unwrap_or("-"));
    let _ = writeln!(s, "\" {}", e.duration.as_micros());
    s
}

/// Text a client chose, with quotes, backslashes and control characters escaped (a line
/// must stay one line and its quoted fields parseable).
fn push_clean(s: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\x{:02x}", c as u32 & 0xff);
            }
            c => s.push(c),
        }
    }
}

fn push_json_str(s: &mut String, text: &str) {
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

fn split(t: SystemTime) -> (i64, u32, u32, i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    (y, m, day, secs.rem_euclid(86_400), d.subsec_millis())
}

fn push_rfc3339_ms(s: &mut String, t: SystemTime) {
    let (y, m, d, sod, ms) = split(t);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

fn push_clf_time(s: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, sod, _) = split(t);
    let month = MONTHS[(m as usize).clamp(1, 12) - 1];
    let _ = write!(
        s,
        "{d:02}/{month}/{y:04}:{:02}:{:02}:{:02} +0000",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(who: Option<&'a Who>, target: &'a str) -> Entry<'a> {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_796_463_126_123),
            client: "127.0.0.9:5000".parse().unwrap(),
            who,
            method: "PUT",
            target,
            version: "HTTP/1.1",
            status: 201,
            bytes: Some(0),
            duration: Duration::from_micros(1234),
            user_agent: Some("Mozilla/5.0 \"x\""),
        }
    }

    #[test]
    fn json_lines_parse_and_hold_every_field() {
        let who = Who {
            tenant: "school".into(),
            user: "pupil".into(),
        };
        let line = json_line(&entry(Some(&who), "/dav/school/pupil/a%20b\u{1}"));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-12-05T09:32:06.123Z");
        assert_eq!(v["client"], "127.0.0.9");
        assert_eq!(v["tenant"], "school");
        assert_eq!(v["user"], "pupil");
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["path"], "/dav/school/pupil/a%20b\u{1}");
        assert_eq!(v["status"], 201);
        assert_eq!(v["bytes"], 0);
        assert_eq!(v["duration_us"], 1234);
    }

    #[test]
    fn combined_lines_stay_one_line() {
        let line = combined_line(&entry(None, "/x\"y\nz"));
        assert_eq!(
            line,
            "127.0.0.9 - - [05/Dec/2026:09:32:06 +0000] \"PUT /x\\\"y\\x0az HTTP/1.1\" 201 0 \"-\" \"Mozilla/5.0 \\\"x\\\"\" 1234\n"
        );
    }
}
