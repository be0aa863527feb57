//! Client checksums (`OC-Checksum: SHA1:<hex>`): parsed, computed over an upload as its bytes
//! pass, and compared before the file is committed, so a mismatch leaves nothing behind.
//! The verified value is kept with the file and answered as `oc:checksums`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use md5::Digest as _;

use crate::limits::OC_CHECKSUM_HEADER_LEN_MAX;

/// Types the clients may send, as `capabilities.checksums.supportedTypes` names them.
pub const SUPPORTED: &[&str] = &["SHA1", "MD5", "ADLER32"];
/// What the clients should prefer.
pub const PREFERRED: &str = "SHA1";

/// A checksum a client sent: the algorithm and the expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub kind: Kind,
    /// Lower-case hex.
    pub hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sha1,
    Md5,
    Adler32,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sha1 => "SHA1",
            Kind::Md5 => "MD5",
            Kind::Adler32 => "ADLER32",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Kind::Sha1 => 40,
            Kind::Md5 => 32,
            Kind::Adler32 => 8,
        }
    }
}

impl Expected {
    /// `TYPE:hex` as the clients write it (`SHA1:…`, `MD5:…`, `Adler32:…`). `Ok(None)` for a
    /// type this server does not compute (accepted unverified, not stored); `Err` for a
    /// header that is not a checksum at all.
    pub fn parse(header: &str) -> Result<Option<Expected>, &'static str> {
        if header.len() > OC_CHECKSUM_HEADER_LEN_MAX {
            return Err("OC-Checksum header too long");
        }
        // Several may be given, space-separated: take the first this server computes.
        let mut any = false;
        for item in header.split_whitespace() {
            let (kind, hex) = item.split_once(':').ok_or("OC-Checksum is not TYPE:hex")?;
            any = true;
            let kind = match kind.to_ascii_uppercase().as_str() {
                "SHA1" => Kind::Sha1,
                "MD5" => Kind::Md5,
                "ADLER32" => Kind::Adler32,
                _ => continue,
            };
            let hex = hex.to_ascii_lowercase();
            if hex.len() != kind.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("OC-Checksum digest has the wrong length or is not hex");
            }
            return Ok(Some(Expected { kind, hex }));
        }
        if any {
            Ok(None)
        } else {
            Err("empty OC-Checksum header")
        }
    }

    /// As the clients write it back (`oc:checksums`, `OC-Checksum` on GET).
    pub fn header_value(&self) -> String {
        format!("{}:{}", self.kind.name(), self.hex)
    }
}

/// A running digest of one of the supported kinds.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Adler32(adler::Adler32),
}

impl Hasher {
    pub fn new(kind: Kind) -> Hasher {
        match kind {
            Kind::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Kind::Md5 => Hasher::Md5(md5::Md5::new()),
            Kind::Adler32 => Hasher::Adler32(adler::Adler32::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Adler32(h) => h.write_slice(data),
        }
    }

    /// Lower-case hex of the digest.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Adler32(h) => format!("{:08x}", h.checksum()),
        }
    }
}

/// Passes an upload's bytes through and digests them; at the end, a digest that differs
/// from the expected one becomes an error item, so the engine drops the upload.
pub struct Verifying<S> {
    inner: S,
    expected: Option<(Expected, Hasher)>,
    /// Set when the digest differed (the put then fails as aborted).
    pub mismatch: Arc<AtomicBool>,
}

impl<S> Verifying<S> {
    pub fn new(inner: S, expected: Option<Expected>) -> Verifying<S> {
        Verifying {
            inner,
            expected: expected.map(|e| {
                let h = Hasher::new(e.kind);
                (e, h)
            }),
            mismatch: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<S, E> Stream for Verifying<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some((_, h)) = &mut this.expected {
                    h.update(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.to_string()))),
            Poll::Ready(None) => {
                if let Some((e, h)) = this.expected.take() {
                    if h.finish() != e.hex {
                        this.mismatch.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(format!(
                            "the upload's {} differs from its OC-Checksum",
                            e.kind.name()
                        ))));
                    }
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The property a verified checksum is kept in, answered as `oc:checksums`.
pub fn prop_name() -> skab_engine::ns::PropName {
    skab_engine::ns::PropName::new(super::OC_NS, "checksums")
}

/// After a write of `path`: keeps the verified checksum with the file, or drops one that
/// an earlier content had (it would be wrong now). A failure is logged: the file is written
/// and a missing checksum only makes the clients compute their own.
pub async fn keep(
    app: &crate::app::App,
    key: &skab_engine::SpaceKey,
    path: &[skab_engine::ns::Name],
    info: &skab_engine::ns::EntryInfo,
    verified: Option<&Expected>,
) {
    let name = prop_name();
    let result = match verified {
        Some(e) => {
            let xml = format!(
                "<oc:checksums xmlns:oc=\"{}\"><oc:checksum>{}</oc:checksum></oc:checksums>",
                super::OC_NS,
                e.header_value()
            );
            app.store
                .set_props(key, path, vec![(name, xml.into_bytes())], Vec::new())
                .await
        }
        None => {
            let had = app
                .store
                .props_of(key, info.id)
                .iter()
                .any(|(n, _)| *n == name);
            if !had {
                return;
            }
            app.store.set_props(key, path, Vec::new(), vec![name]).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "the checksum of an upload was not kept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        let e = Expected::parse("SHA1:DA39A3EE5E6B4B0D3255BFEF95601890AFD80709")
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, Kind::Sha1);
        assert_eq!(
            e.header_value(),
            "SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            Expected::parse("Adler32:00000001").unwrap().unwrap().kind,
            Kind::Adler32
        );
        assert_eq!(Expected::parse("SHA3-256:abcd").unwrap(), None);
        assert!(Expected::parse("SHA1:xyz").is_err());
        assert!(Expected::parse("nonsense").is_err());
        assert!(Expected::parse("").is_err());
    }

    #[test]
    fn digests_match_known_values() {
        for (kind, want) in [
            (Kind::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Kind::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Kind::Adler32, "024d0127"),
        ] {
            let mut h = Hasher::new(kind);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish(), want, "{kind:?}");
        }
    }
}
