//! Incremental decoder of the chunked transfer coding (RFC 9112 §7.1) for request bodies.
//! Strict: CRLF line ends only, at most `CHUNK_SIZE_DIGITS_MAX` hex digits, bounded
//! extensions and trailers, so that no framing ambiguity can smuggle a second request.

use bytes::{Buf, Bytes, BytesMut};

use crate::limits::{CHUNK_EXTENSIONS_LEN_MAX, CHUNK_SIZE_DIGITS_MAX, CHUNK_TRAILERS_LEN_MAX};

/// Why a chunked body cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadLineEnd,
    ExtensionsTooLong,
    TrailersTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size (`digits` so far).
    Size {
        size: u64,
        digits: usize,
    },
    /// After the size: optional whitespace, then `;ext` up to CR (`semi`: `;` seen).
    Extension {
        size: u64,
        len: usize,
        semi: bool,
    },
    /// CR seen after the size line; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data {
        left: u64,
    },
    /// After chunk data: CR then LF.
    DataCr,
    DataLf,
    /// Trailer section: `line_len` bytes into the current line, `total` bytes so far.
    Trailer {
        line_len: usize,
        total: usize,
    },
    TrailerLf {
        line_len: usize,
        total: usize,
    },
    Done,
}

/// What one `decode` step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body data (taken from the input buffer without copying).
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body is complete; the input after it belongs to the next request.
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing from `buf` and returns the next piece of data, `NeedMore` when
    /// `buf` holds no more complete framing, or `Done` at the end of the body.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            if let State::Data { left } = self.state {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(left) as usize;
                let data = buf.split_to(n).freeze();
                self.state = if left == n as u64 {
                    State::DataCr
                } else {
                    State::Data {
                        left: left - n as u64,
                    }
                };
                return Ok(Step::Data(data));
            }
            if self.state == State::Done {
                return Ok(Step::Done);
            }
            let Some(&b) = buf.first() else {
                return Ok(Step::NeedMore);
            };
            buf.advance(1);
            self.state = self.next(b)?;
        }
    }

    /// The state after one framing byte `b`.
    fn next(&self, b: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { size, digits } => match hex(b) {
                Some(v) => {
                    if digits >= CHUNK_SIZE_DIGITS_MAX {
                        return Err(ChunkError::BadSize);
                    }
                    State::Size {
                        size: (size << 4) | v,
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(ChunkError::BadSize),
                None => return self.after_size(size, 0, false, b),
            },
            State::Extension { size, len, semi } => self.after_size(size, len, semi, b)?,
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                if size == 0 {
                    State::Trailer {
                        line_len: 0,
                        total: 0,
                    }
                } else {
                    State::Data { left: size }
                }
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::BadLineEnd);
                }
                State::DataLf
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                State::Size { size: 0, digits: 0 }
            }
            State::Trailer { line_len, total } => {
                if total >= CHUNK_TRAILERS_LEN_MAX {
                    return Err(ChunkError::TrailersTooLong);
                }
                if b == b'\r' {
                    State::TrailerLf {
                        line_len,
                        total: total + 1,
                    }
                } else if b == b'\n' {
                    return Err(ChunkError::BadLineEnd);
                } else {
                    State::Trailer {
                        line_len: line_len + 1,
                        total: total + 1,
                    }
                }
            }
            State::TrailerLf { line_len, total } => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                if line_len == 0 {
                    State::Done
                } else {
                    State::Trailer {
                        line_len: 0,
                        total: total + 1,
                    }
                }
            }
            State::Data { .. } | State::Done => unreachable!("handled by decode"),
        })
    }

    /// A byte of the size line after the digits: extensions (ignored), then CR.
    fn after_size(&self, size: u64, len: usize, semi: bool, b: u8) -> Result<State, ChunkError> {
        if b == b'\r' {
            return Ok(State::SizeLf { size });
        }
        if b == b'\n' || b == 0 {
            return Err(ChunkError::BadLineEnd);
        }
        // Before the `;` only whitespace may follow the digits.
        if !(semi || b == b';' || b == b' ' || b == b'\t') {
            return Err(ChunkError::BadSize);
        }
        if len >= CHUNK_EXTENSIONS_LEN_MAX {
            return Err(ChunkError::ExtensionsTooLong);
        }
        Ok(State::Extension {
            size,
            len: len + 1,
            semi: semi || b == b';',
        })
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u64),
        b'a'..=b'f' => Some((b - b'a' + 10) as u64),
        b'A'..=b'F' => Some((b - b'A' + 10) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and what is left.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::Done => return Ok((out, buf.to_vec())),
                Step::NeedMore => {
                    if fed >= input.len() {
                        return Err(ChunkError::BadLineEnd);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_in_any_split() {
        let input = b"5\r\nhello\r\n1;name=v\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, rest) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello 0123456789", "step {step}");
            // Bytes after the body are left for the next request (as far as they were fed).
            assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        }
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..], // bare LF after the size
            b"5\r\nhelloX\r\n0\r\n\r\n",   // data longer than its size
            b"g\r\n",                      // not hex
            b"\r\n",                       // no digits
            b"-1\r\n",                     // sign
            b"12345678901234567\r\n",      // too many digits
            b"5 x\r\nhello\r\n0\r\n\r\n",  // junk after size is only ok as extension
            b"0\r\nX: 1\n\r\n",            // bare LF in trailers
        ] {
            assert!(
                decode_all(bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = format!(
            "1;{}\r\na\r\n0\r\n\r\n",
            "e".repeat(CHUNK_EXTENSIONS_LEN_MAX)
        );
        assert_eq!(
            decode_all(long_ext.as_bytes(), 64),
            Err(ChunkError::ExtensionsTooLong)
        );
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(CHUNK_TRAILERS_LEN_MAX));
        assert_eq!(
            decode_all(long_trailer.as_bytes(), 64),
            Err(ChunkError::TrailersTooLong)
        );
    }

    #[test]
    fn largest_size_does_not_overflow() {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Step::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Step::NeedMore));
    }
}
