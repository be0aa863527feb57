//! Framing of write-ahead-log segments: a segment header, then length+CRC framed records.
//!
//! Layout (all integers little-endian), see `docs/formats.md`:
//! segment header (16 bytes): `b"SKABWAL1"`, segment number u64;
//! record: payload length u32, CRC32C u32 of (seq || payload), seq u64, payload.
//! Zeros after the last record (space pre-zeroed ahead of the writer) are a clean end: an
//! all-zero record header never passes its CRC (CRC32C of eight zero bytes is not zero).

use crate::limits::WAL_RECORD_LEN_MAX;

/// Magic at the start of every WAL segment.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"SKABWAL1";
/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 16;
/// Bytes of a record header (length, crc, seq).
pub(crate) const RECORD_HEADER_LEN: usize = 16;

/// The header that opens segment `segment`.
pub(crate) fn segment_header(segment: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&segment.to_le_bytes());
    h
}

/// Appends one framed record to `out`.
pub(crate) fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= WAL_RECORD_LEN_MAX,
        "WAL record over the limit"
    );
    let mut crc = crc32c::crc32c(&seq.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// How decoding a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// Every byte belonged to a valid record.
    Clean,
    /// Only zero bytes follow `valid_len`: space pre-zeroed ahead of the writer, a clean end.
    ZeroTail { valid_len: u64 },
    /// Bytes after `valid_len` do not form a valid record (a torn or corrupt tail); `garbage`
    /// of them, up to the last non-zero byte, are not zero padding.
    Torn {
        valid_len: u64,
        garbage: u64,
        reason: &'static str,
    },
}

impl SegmentEnd {
    /// Where the valid records end (`None`: at the end of the buffer).
    pub(crate) fn valid_len(&self) -> Option<u64> {
        match *self {
            SegmentEnd::Clean => None,
            SegmentEnd::ZeroTail { valid_len } | SegmentEnd::Torn { valid_len, .. } => {
                Some(valid_len)
            }
        }
    }
}

/// How decoding ends at `pos` where no valid record starts: a zero tail or a torn one.
fn end_at(buf: &[u8], pos: usize, reason: &'static str) -> SegmentEnd {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.iter().rposition(|&b| b != 0) {
        None => SegmentEnd::ZeroTail {
            valid_len: pos as u64,
        },
        Some(last) => SegmentEnd::Torn {
            valid_len: pos as u64,
            garbage: last as u64 + 1,
            reason,
        },
    }
}

/// The records of one segment, in order.
#[derive(Debug)]
pub(crate) struct DecodedSegment<'a> {
    pub segment: u64,
    pub records: Vec<(u64, &'a [u8])>,
    pub end: SegmentEnd,
}

/// Decodes a whole segment file. A bad header is `Err`; a bad record ends decoding with `Torn`.
pub(crate) fn decode_segment(buf: &[u8]) -> Result<DecodedSegment<'_>, &'static str> {
    if buf.len() < SEGMENT_HEADER_LEN {
        return Err("segment shorter than its header");
    }
    if &buf[..8] != SEGMENT_MAGIC {
        return Err("bad segment magic");
    }
    let segment = u64::from_le_bytes(buf[8..16].try_into().map_err(|_| "header")?);
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut last_seq: Option<u64> = None;
    let end = loop {
        if pos == buf.len() {
            break SegmentEnd::Clean;
        }
        let torn = |reason| end_at(buf, pos, reason);
        let Some(header) = buf.get(pos..pos + RECORD_HEADER_LEN) else {
            break torn("short record header");
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let seq_bytes: [u8; 8] = header[8..16].try_into().map_err(|_| "header")?;
        let seq = u64::from_le_bytes(seq_bytes);
        if len > WAL_RECORD_LEN_MAX {
            break torn("record length over the limit");
        }
        let start = pos + RECORD_HEADER_LEN;
        let Some(payload) = buf.get(start..start + len) else {
            break torn("short record payload");
        };
        let actual = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
        if actual != crc {
            break torn("record checksum mismatch");
        }
        if let Some(prev) = last_seq {
            if prev.checked_add(1) != Some(seq) {
                break torn("record sequence gap");
            }
        }
        last_seq = Some(seq);
        records.push((seq, payload));
        pos = start + len;
    };
    Ok(DecodedSegment {
        segment,
        records,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_with(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut buf = segment_header(7).to_vec();
        for (seq, p) in records {
            encode_record(*seq, p, &mut buf);
        }
        buf
    }

    #[test]
    fn round_trip() {
        let buf = segment_with(&[(1, b"alpha"), (2, b""), (3, b"gamma")]);
        let d = decode_segment(&buf).unwrap();
        assert_eq!(d.segment, 7);
        assert_eq!(d.end, SegmentEnd::Clean);
        let got: Vec<_> = d.records.iter().map(|(s, p)| (*s, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![(1, b"alpha".to_vec()), (2, vec![]), (3, b"gamma".to_vec())]
        );
    }

    #[test]
    fn every_truncation_keeps_a_prefix() {
        let payloads: [&[u8]; 3] = [b"one", b"two two", b"three"];
        let mut buf = segment_header(7).to_vec();
        let mut boundaries = vec![buf.len()];
        for (i, p) in payloads.iter().enumerate() {
            encode_record(10 + i as u64, p, &mut buf);
            boundaries.push(buf.len());
        }
        for cut in SEGMENT_HEADER_LEN..buf.len() {
            let d = decode_segment(&buf[..cut]).unwrap();
            let n = d.records.len();
            assert!(boundaries[n] <= cut, "decoded a record past the cut");
            for (i, (seq, p)) in d.records.iter().enumerate() {
                assert_eq!((*seq, *p), (10 + i as u64, payloads[i]));
            }
            match d.end {
                SegmentEnd::Torn { valid_len, .. } => assert_eq!(valid_len as usize, boundaries[n]),
                SegmentEnd::ZeroTail { .. } => panic!("no zero tail here"),
                SegmentEnd::Clean => assert_eq!(cut, boundaries[n]),
            }
        }
    }

    #[test]
    fn an_all_zero_record_header_never_decodes() {
        assert_ne!(crc32c::crc32c(&[0u8; 8]), 0);
        for zeros in 0..=RECORD_HEADER_LEN * 3 {
            let mut buf = segment_with(&[(0, b"first")]);
            let valid = buf.len() as u64;
            buf.resize(buf.len() + zeros, 0);
            let d = decode_segment(&buf).unwrap();
            assert_eq!(d.records, vec![(0, &b"first"[..])]);
            let want = if zeros == 0 {
                SegmentEnd::Clean
            } else {
                SegmentEnd::ZeroTail { valid_len: valid }
            };
            assert_eq!(d.end, want, "{zeros} zeros");
        }
        // A segment of nothing but its header and zeros holds no record.
        let mut buf = segment_header(3).to_vec();
        buf.resize(1 << 16, 0);
        let d = decode_segment(&buf).unwrap();
        assert!(d.records.is_empty());
        assert_eq!(
            d.end,
            SegmentEnd::ZeroTail {
                valid_len: SEGMENT_HEADER_LEN as u64
            }
        );
    }

    /// A segment cut anywhere and padded with zeros (pre-zeroed space a crash left behind)
    /// decodes to a prefix of its records, ending at a record boundary: a zero tail when
    /// only zeros follow, else a torn tail whose garbage is the non-zero rest.
    #[test]
    fn every_truncation_padded_with_zeros_keeps_a_prefix() {
        // Zero bytes inside and at the end of payloads, and small seqs (zero high bytes).
        let payloads: [&[u8]; 4] = [b"one", b"t\0o", b"ab\0\0", b"\0\0x"];
        let mut buf = segment_header(7).to_vec();
        let mut boundaries = vec![buf.len()];
        for (i, p) in payloads.iter().enumerate() {
            encode_record(1 + i as u64, p, &mut buf);
            boundaries.push(buf.len());
        }
        for cut in SEGMENT_HEADER_LEN..=buf.len() {
            for pad in [0, 1, 7, RECORD_HEADER_LEN, 64, 4096] {
                let mut b = buf[..cut].to_vec();
                b.resize(cut + pad, 0);
                let d = decode_segment(&b).unwrap();
                let n = d.records.len();
                let whole = boundaries.iter().filter(|&&e| e <= cut).count() - 1;
                assert!(n >= whole, "cut {cut} pad {pad}: lost a whole record");
                for (i, (seq, p)) in d.records.iter().enumerate() {
                    assert_eq!((*seq, *p), (1 + i as u64, payloads[i]));
                }
                let valid = boundaries[n];
                match d.end {
                    SegmentEnd::Clean => assert_eq!(b.len(), valid),
                    SegmentEnd::ZeroTail { valid_len } => {
                        assert_eq!(valid_len as usize, valid);
                        assert!(b[valid..].iter().all(|&x| x == 0));
                    }
                    SegmentEnd::Torn {
                        valid_len, garbage, ..
                    } => {
                        assert_eq!(valid_len as usize, valid);
                        assert!(garbage > 0 && valid + garbage as usize <= cut);
                        assert_ne!(b[valid + garbage as usize - 1], 0);
                        assert!(b[valid + garbage as usize..].iter().all(|&x| x == 0));
                    }
                }
            }
        }
    }

    #[test]
    fn flipped_bit_is_detected() {
        let buf = segment_with(&[(1, b"payload one"), (2, b"payload two")]);
        for i in SEGMENT_HEADER_LEN..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            let d = decode_segment(&b).unwrap();
            assert!(matches!(d.end, SegmentEnd::Torn { .. }), "flip at {i}");
        }
    }

    /// Fuzz find: a record after one numbered `u64::MAX` overflowed `prev + 1`.
    #[test]
    fn record_after_the_last_sequence_number_is_torn() {
        let buf = segment_with(&[(u64::MAX, b"a"), (0, b"b")]);
        let d = decode_segment(&buf).unwrap();
        assert_eq!(d.records, vec![(u64::MAX, &b"a"[..])]);
        assert!(matches!(d.end, SegmentEnd::Torn { .. }));
    }

    #[test]
    fn bad_header_is_an_error() {
        assert!(decode_segment(b"short").is_err());
        assert!(decode_segment(b"NOTAWAL1\0\0\0\0\0\0\0\0").is_err());
    }
}
