//! Fuzzes Skab's own HTTP/1 request reading: the head parser (framing, persistence and
//! expectation rules) and the chunked body decoder, fed in pieces as a socket would.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use skab_server::http::h1::chunked::{ChunkedDecoder, Step};
use skab_server::http::h1::head::{self, Framing, Parsed};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so splits at every position get exercised.
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let head = loop {
        head::skip_leading_empty_lines(&mut buf);
        match head::parse(&mut buf, 4096) {
            Ok(Parsed::Complete(h)) => break h,
            Ok(Parsed::Partial) if fed < data.len() => {
                let end = (fed + step).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
            }
            _ => return,
        }
    };
    buf.extend_from_slice(&data[fed..]);
    let before = buf.len();
    if head.framing == Framing::Chunked {
        let mut decoder = ChunkedDecoder::new();
        let mut body = 0usize;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Step::Data(d)) => {
                    assert!(!d.is_empty() || decoder.is_done());
                    body += d.len();
                }
                Ok(Step::NeedMore) | Ok(Step::Done) | Err(_) => break,
            }
        }
        assert!(body + buf.len() <= before, "the decoder invented bytes");
    }
});
