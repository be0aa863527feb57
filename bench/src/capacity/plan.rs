//! The capacity model: hardware for a school population from measured figures (docs/capacity.md).
use anyhow::{Context, Result};
use serde::Serialize;

use super::measure::Figures;

/// Pupil quota (Bavaria's school cloud, ByCS Drive), bytes.
pub const PUPIL_QUOTA: f64 = 2e9;
/// Teacher quota (Bavaria's school cloud), bytes.
pub const TEACHER_QUOTA: f64 = 100e9;
/// Share of the quota used on average (an assumption: docs/capacity.md says why).
pub const PUPIL_USE: f64 = 0.1;
pub const TEACHER_USE: f64 = 0.1;
/// Files per user assumed when not given.
pub const FILES_PER_USER: f64 = 500.0;
/// Headroom kept on every resource (plan for this share of the capacity).
pub const HEADROOM: f64 = 0.6;
/// Memory of one server (a common size), bytes, to split the RAM over servers.
pub const SERVER_RAM: f64 = 64e9;

#[derive(Debug, Serialize)]
pub struct Line {
    pub what: String,
    pub value: f64,
    pub unit: String,
    /// The measured figure (a key of the capacity.json point) it rests on.
    pub rests_on: String,
}

pub struct Input {
    pub pupils: f64,
    pub teachers: f64,
    pub files_per_user: f64,
    pub mean_file_bytes: Option<f64>,
}

fn fig(f: &Figures, k: &str) -> Result<f64> {
    Ok(f.get(k)
        .with_context(|| format!("capacity.json lacks {k}"))?
        .value)
}

/// Memory per entry: the slope of resident memory over entries between the two largest points
/// (the fixed cost of the process cancels out), or the single point's ratio.
pub fn rss_per_entry(points: &[Figures]) -> Result<(f64, &'static str)> {
    let n = points.len();
    anyhow::ensure!(n > 0, "no measured points");
    if n >= 2 {
        let (a, b) = (&points[n - 2], &points[n - 1]);
        let de = fig(b, "entries")? - fig(a, "entries")?;
        let dr = fig(b, "rss_after_open_bytes")? - fig(a, "rss_after_open_bytes")?;
        if de > 0.0 && dr > 0.0 {
            return Ok((dr / de, "rss_after_open_bytes"));
        }
    }
    Ok((
        fig(&points[n - 1], "rss_per_entry_bytes")?,
        "rss_per_entry_bytes",
    ))
}

/// Plans from the largest measured point (memory from the slope between the two largest).
pub fn plan(i: &Input, points: &[Figures]) -> Result<Vec<Line>> {
    let (per_entry, per_entry_from) = rss_per_entry(points)?;
    let f = points.last().context("no measured points")?;
    let users = i.pupils + i.teachers;
    let entries = users * i.files_per_user;
    let logical = match i.mean_file_bytes {
        Some(b) => entries * b,
        None => i.pupils * PUPIL_QUOTA * PUPIL_USE + i.teachers * TEACHER_QUOTA * TEACHER_USE,
    };
    let mut out = Vec::new();
    let mut line = |what: &str, value: f64, unit: &str, rests_on: &str| {
        out.push(Line {
            what: what.into(),
            value,
            unit: unit.into(),
            rests_on: rests_on.into(),
        })
    };
    let ram = entries * per_entry / HEADROOM;
    line("index RAM", ram, "bytes", per_entry_from);
    let disk = logical * fig(f, "pack_per_logical")? / HEADROOM;
    line("disk space", disk, "bytes", "pack_per_logical");
    let rec = entries / (fig(f, "entries")? / fig(f, "recovery_s")?.max(1e-9));
    line("restart recovery", rec, "s", "recovery_s");
    let scrub = logical * fig(f, "stored_per_logical")? / fig(f, "scrub_bytes_per_s")?.max(1.0);
    line("full scrub", scrub, "s", "scrub_bytes_per_s");
    let servers = (ram / SERVER_RAM).ceil().max(1.0);
    line("servers (RAM-bound)", servers, "servers", per_entry_from);
    line(
        "servers with N+1 fail-over",
        servers + 1.0,
        "servers",
        per_entry_from,
    );
    Ok(out)
}
