//! `docs/formats.md` against the code: every size, magic and limit the document states is
//! checked against `skab_engine::layout`, so the document cannot drift from the formats.

use skab_engine::layout::*;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/formats.md");
    std::fs::read_to_string(path).expect("docs/formats.md is readable")
}

/// The text of the section whose heading starts with `heading`, up to the next `## `.
fn section(doc: &str, heading: &str) -> String {
    let start = doc
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("docs/formats.md has no section `## {heading}`"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    // Line breaks inside paragraphs are not meaningful.
    rest[..end].replace('\n', " ")
}

fn expect(section_text: &str, heading: &str, wanted: &str) {
    assert!(
        section_text.contains(wanted),
        "docs/formats.md, section `{heading}`, should say `{wanted}` (the code's value)"
    );
}

fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1 << 20) as f64;
    format!("{m} MiB")
}

fn magic(m: &[u8]) -> String {
    format!("`{}`", std::str::from_utf8(m).unwrap())
}

#[test]
fn store_meta() {
    let d = doc();
    let h = "store.meta";
    let s = section(&d, h);
    expect(&s, h, &format!("## store.meta ({STORE_META_LEN} bytes)"));
    expect(&s, h, &format!("magic {}", magic(STORE_META_MAGIC)));
    expect(
        &s,
        h,
        &format!("format version ({STORE_META_FORMAT_VERSION})"),
    );
    let crc_from = STORE_META_LEN - 4;
    expect(
        &s,
        h,
        &format!("| {crc_from}..{STORE_META_LEN} | CRC32C of bytes 0..{crc_from} |"),
    );
}

#[test]
fn wal_segment() {
    let d = doc();
    let h = "WAL segment";
    let s = section(&d, h);
    expect(
        &s,
        h,
        &format!(
            "Header ({WAL_SEGMENT_HEADER_LEN} bytes): magic {}",
            magic(WAL_SEGMENT_MAGIC)
        ),
    );
    expect(
        &s,
        h,
        &format!("payload length n (≤ {})", mib(WAL_RECORD_LEN_MAX as u64)),
    );
    expect(
        &s,
        h,
        &format!("| {WAL_RECORD_HEADER_LEN}..{WAL_RECORD_HEADER_LEN}+n | payload |"),
    );
    expect(
        &s,
        h,
        &format!("end in zeros (up to {})", mib(WAL_ZERO_TAIL_MAX)),
    );
}

#[test]
fn snapshot() {
    let d = doc();
    let h = "Snapshot";
    let s = section(&d, h);
    expect(
        &s,
        h,
        &format!("| 0..8 | magic {} |", magic(SNAPSHOT_MAGIC)),
    );
    expect(&s, h, &format!("| {SNAPSHOT_HEADER_LEN}.. | rkyv"));
}

#[test]
fn pack_file() {
    let d = doc();
    let h = "Pack file";
    let s = section(&d, h);
    expect(
        &s,
        h,
        &format!(
            "Header ({PACK_HEADER_LEN} bytes): magic {}",
            magic(PACK_MAGIC)
        ),
    );
    expect(
        &s,
        h,
        &format!("| 0..4 | magic {} |", magic(PACK_RECORD_MAGIC)),
    );
    expect(
        &s,
        h,
        &format!("data length (≤ {})", mib(PACK_RECORD_DATA_MAX as u64)),
    );
    expect(&s, h, &format!("| {PACK_RECORD_HEADER_LEN}.. | data |"));
    expect(&s, h, &format!("until it passes {}", mib(PACK_SIZE_TARGET)));
    expect(&s, h, &format!("up to {} ahead", mib(PACK_ZERO_TAIL_MAX)));
    expect(&s, h, &format!("fewer than {DIRECT_IO_ALIGN} zero bytes"));
}

#[test]
fn chunk_index_checkpoint() {
    let d = doc();
    let h = "Chunk index checkpoint";
    let s = section(&d, h);
    expect(
        &s,
        h,
        &format!(
            "Header ({CHECKPOINT_HEADER_LEN} bytes): magic {}",
            magic(CHECKPOINT_MAGIC)
        ),
    );
    expect(&s, h, &format!("entries of {CHECKPOINT_ENTRY_LEN} bytes"));
}
