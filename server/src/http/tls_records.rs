//! TLS record protection once the handshake is done: the keys rustls negotiated
//! (`dangerous_into_kernel_connection`, the API meant for kTLS) seal and open application data
//! records here, so that rustls's session (its state machine, record layer and buffers, about
//! 5 KB) is dropped after the handshake and an idle TLS connection holds only two AEAD keys,
//! their nonces and sequence numbers. rustls keeps the key schedule (`KernelConnection`) for
//! TLS 1.3 key updates. Formats: RFC 8446 section 5 (TLS 1.3) and RFC 5246 section 6.2 with
//! RFC 5288 / RFC 7905 (TLS 1.2 AES-GCM and ChaCha20-Poly1305); docs/architecture.md, "Idle
//! connections".

use std::io;
use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets, ProtocolVersion, SupportedCipherSuite};

/// Record content types (RFC 8446 section 5.1).
pub const CONTENT_ALERT: u8 = 21;
pub const CONTENT_HANDSHAKE: u8 = 22;
pub const CONTENT_APPLICATION_DATA: u8 = 23;

/// The most plaintext one record carries.
pub const RECORD_DATA_MAX: usize = 16 * 1024;
/// The record header: type, legacy version, length.
const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
/// TLS 1.2 AES-GCM sends the nonce's last 8 bytes in each record.
const EXPLICIT_NONCE_LEN: usize = 8;
/// The most ciphertext a record may carry: TLS 1.3 allows 256 bytes of expansion (padding,
/// type, tag), TLS 1.2 2048.
const TLS13_CIPHERTEXT_MAX: usize = RECORD_DATA_MAX + 256;
const TLS12_CIPHERTEXT_MAX: usize = RECORD_DATA_MAX + 2048;
/// Empty records in a row that are tolerated (as rustls does): more is a peer making the
/// server spin for nothing.
const EMPTY_RECORDS_IN_A_ROW_MAX: u8 = 32;
/// KeyUpdates in a row without application data between them that are tolerated.
const KEY_UPDATES_IN_A_ROW_MAX: u8 = 32;
/// TLS 1.3 KeyUpdate handshake message type (RFC 8446 section 4.6.3).
const HANDSHAKE_KEY_UPDATE: u8 = 24;
/// KeyUpdate with `update_not_requested`: what the server sends.
const KEY_UPDATE: [u8; 5] = [HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0];
/// Alert description `close_notify`.
const ALERT_CLOSE_NOTIFY: u8 = 0;

/// One direction's key, nonce base and next sequence number.
struct Keys {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl Keys {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> io::Result<Keys> {
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(io::Error::other("TLS cipher suite without a record layer")),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| io::Error::other("TLS traffic key of the wrong length"))?;
        let iv: [u8; aead::NONCE_LEN] = iv
            .as_ref()
            .try_into()
            .map_err(|_| io::Error::other("TLS IV of the wrong length"))?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The nonce of the next record: the IV with the sequence number XORed into its end
    /// (TLS 1.3, TLS 1.2 ChaCha20, and what TLS 1.2 AES-GCM sends as its explicit part).
    fn nonce(&self) -> [u8; aead::NONCE_LEN] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn next_seq(&mut self) -> io::Result<()> {
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| io::Error::other("TLS sequence number exhausted"))?;
        Ok(())
    }
}

/// A record opened in place: its content type, where its content lies in the buffer, and
/// how many bytes of the buffer the record took.
pub struct Opened {
    pub content_type: u8,
    pub content: Range<usize>,
    pub len: usize,
}

/// The record layer of one established TLS session.
pub struct Records {
    tls13: bool,
    /// TLS 1.2 AES-GCM: 8 bytes of the nonce travel in each record.
    explicit_nonce: bool,
    tx: Keys,
    rx: Keys,
    /// Records sealed under one key before TLS 1.3 updates it (TLS 1.2 ends the session).
    tx_limit: u64,
    kernel: KernelConnection<ServerConnectionData>,
    empty_in_a_row: u8,
    key_updates_in_a_row: u8,
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Records {
    pub fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> io::Result<Records> {
        let tls13 = match kernel.protocol_version() {
            ProtocolVersion::TLSv1_3 => true,
            ProtocolVersion::TLSv1_2 => false,
            _ => return Err(io::Error::other("TLS version without a record layer")),
        };
        let explicit_nonce = !tls13
            && !matches!(
                secrets.tx.1,
                ConnectionTrafficSecrets::Chacha20Poly1305 { .. }
            );
        let limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        // Leave room for the KeyUpdate itself.
        let tx_limit = limit.saturating_sub(1);
        Ok(Records {
            tls13,
            explicit_nonce,
            tx: Keys::new(secrets.tx.0, secrets.tx.1)?,
            rx: Keys::new(secrets.rx.0, secrets.rx.1)?,
            tx_limit,
            kernel,
            empty_in_a_row: 0,
            key_updates_in_a_row: 0,
        })
    }

    /// Bytes a record adds to its content.
    fn overhead(&self) -> usize {
        HEADER_LEN
            + TAG_LEN
            + if self.tls13 { 1 } else { 0 }
            + if self.explicit_nonce {
                EXPLICIT_NONCE_LEN
            } else {
                0
            }
    }

    /// Bytes that sealing `n` bytes of application data takes (records of at most
    /// `RECORD_DATA_MAX`), a key update included if one is due.
    pub fn sealed_len(&self, n: usize) -> usize {
        let records = n.div_ceil(RECORD_DATA_MAX).max(1);
        n + records * self.overhead() + self.overhead() + KEY_UPDATE.len()
    }

    /// Opens the first record of `buf` in place; `None` while it is incomplete.
    pub fn open(&mut self, buf: &mut [u8]) -> io::Result<Option<Opened>> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let outer_type = header[0];
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let max = if self.tls13 {
            TLS13_CIPHERTEXT_MAX
        } else {
            TLS12_CIPHERTEXT_MAX
        };
        if header[1] != 3 || len > max {
            return Err(invalid("TLS record too long or not a TLS record"));
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let record = &mut buf[..HEADER_LEN + len];
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let opened = if self.tls13 {
            if outer_type != CONTENT_APPLICATION_DATA {
                return Err(invalid("TLS 1.3 record that is not protected"));
            }
            let nonce = Nonce::assume_unique_for_key(self.rx.nonce());
            let plain = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(&header[..]), body)
                .map_err(|_| invalid("TLS record failed to decrypt"))?;
            // Content, its real type, then zero padding.
            let Some(type_at) = plain.iter().rposition(|&b| b != 0) else {
                return Err(invalid("TLS 1.3 record without a content type"));
            };
            (plain[type_at], HEADER_LEN..HEADER_LEN + type_at)
        } else {
            let explicit = if self.explicit_nonce {
                EXPLICIT_NONCE_LEN
            } else {
                0
            };
            let Some(plain_len) = len.checked_sub(explicit + TAG_LEN) else {
                return Err(invalid("TLS record shorter than its tag"));
            };
            let mut nonce = self.rx.nonce();
            if self.explicit_nonce {
                nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE_LEN]);
            }
            let aad = tls12_aad(self.rx.seq, outer_type, plain_len);
            self.rx
                .key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut body[explicit..],
                )
                .map_err(|_| invalid("TLS record failed to decrypt"))?;
            let start = HEADER_LEN + explicit;
            (outer_type, start..start + plain_len)
        };
        self.rx.next_seq()?;
        let (content_type, content) = opened;
        if content.len() > RECORD_DATA_MAX {
            return Err(invalid("TLS record content too long"));
        }
        if content.is_empty() {
            self.empty_in_a_row += 1;
            if self.empty_in_a_row > EMPTY_RECORDS_IN_A_ROW_MAX {
                return Err(invalid("too many empty TLS records"));
            }
        } else {
            self.empty_in_a_row = 0;
            if content_type == CONTENT_APPLICATION_DATA {
                self.key_updates_in_a_row = 0;
            }
        }
        Ok(Some(Opened {
            content_type,
            content,
            len: HEADER_LEN + len,
        }))
    }

    /// Seals `data` into records at the start of `out` (at least `sealed_len(data.len())`
    /// long); the bytes written. A TLS 1.3 key update goes first when the key has sealed as
    /// many records as its cipher allows; TLS 1.2 has none and refuses instead.
    pub fn seal(&mut self, content_type: u8, data: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let mut at = 0;
        let mut pieces = data.chunks(RECORD_DATA_MAX);
        let first = pieces.next().unwrap_or(&[]);
        for piece in std::iter::once(first).chain(pieces) {
            if self.tx.seq >= self.tx_limit {
                if !self.tls13 {
                    return Err(io::Error::other("TLS 1.2 session used up its key"));
                }
                // KeyUpdate, update_not_requested, under the old key; then the new key.
                at += self.seal_record(CONTENT_HANDSHAKE, &KEY_UPDATE, &mut out[at..])?;
                let (seq, secrets) = self
                    .kernel
                    .update_tx_secret()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.tx = Keys::new(seq, secrets)?;
            }
            at += self.seal_record(content_type, piece, &mut out[at..])?;
        }
        Ok(at)
    }

    /// Seals one record of at most `RECORD_DATA_MAX` bytes.
    fn seal_record(&mut self, content_type: u8, data: &[u8], out: &mut [u8]) -> io::Result<usize> {
        debug_assert!(data.len() <= RECORD_DATA_MAX);
        let total = data.len() + self.overhead();
        let out = &mut out[..total];
        let body_len = (total - HEADER_LEN) as u16;
        let nonce = self.tx.nonce();
        let (header, body) = out.split_at_mut(HEADER_LEN);
        let outer_type = if self.tls13 {
            CONTENT_APPLICATION_DATA
        } else {
            content_type
        };
        header.copy_from_slice(&[outer_type, 3, 3, (body_len >> 8) as u8, body_len as u8]);
        let (sealed, tag_out) = body.split_at_mut(body.len() - TAG_LEN);
        let tag = if self.tls13 {
            sealed[..data.len()].copy_from_slice(data);
            sealed[data.len()] = content_type;
            self.tx
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&header[..]),
                    sealed,
                )
                .map_err(|_| io::Error::other("TLS record failed to seal"))?
        } else {
            let explicit = if self.explicit_nonce {
                sealed[..EXPLICIT_NONCE_LEN].copy_from_slice(&nonce[4..]);
                EXPLICIT_NONCE_LEN
            } else {
                0
            };
            sealed[explicit..].copy_from_slice(data);
            let aad = tls12_aad(self.tx.seq, content_type, data.len());
            self.tx
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut sealed[explicit..],
                )
                .map_err(|_| io::Error::other("TLS record failed to seal"))?
        };
        tag_out.copy_from_slice(tag.as_ref());
        self.tx.next_seq()?;
        Ok(total)
    }

    /// Seals a `close_notify` alert into `out` (at least `sealed_len(2)` long).
    pub fn seal_close_notify(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.seal(CONTENT_ALERT, &[1, ALERT_CLOSE_NOTIFY], out)
    }

    /// Acts on the content of a received alert record: `Ok(true)` for `close_notify`, an
    /// error for any other (the peer ends the session).
    pub fn alert(&self, content: &[u8]) -> io::Result<bool> {
        match content {
            [_, ALERT_CLOSE_NOTIFY] => Ok(true),
            // TLS 1.2 warnings other than close_notify (TLS 1.3 has none) are ignored.
            [1, _] if !self.tls13 => Ok(false),
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the TLS peer sent an alert",
            )),
        }
    }

    /// Acts on a received post-handshake message: a TLS 1.3 KeyUpdate switches the receiving
    /// key, and if the peer asks for it, `reply` gets the answering KeyUpdate (sealed under
    /// the old sending key, which is then replaced) and returns its length. Anything else
    /// (renegotiation, a message split over records) ends the session.
    pub fn handshake(&mut self, content: &[u8], reply: &mut [u8]) -> io::Result<usize> {
        let &[HANDSHAKE_KEY_UPDATE, 0, 0, 1, request] = content else {
            return Err(invalid(
                "unexpected TLS handshake message after the handshake",
            ));
        };
        if !self.tls13 || request > 1 {
            return Err(invalid(
                "unexpected TLS handshake message after the handshake",
            ));
        }
        self.key_updates_in_a_row += 1;
        if self.key_updates_in_a_row > KEY_UPDATES_IN_A_ROW_MAX {
            return Err(invalid("too many TLS key updates"));
        }
        let (seq, secrets) = self
            .kernel
            .update_rx_secret()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.rx = Keys::new(seq, secrets)?;
        if request == 0 {
            return Ok(0);
        }
        let n = self.seal_record(CONTENT_HANDSHAKE, &KEY_UPDATE, reply)?;
        let (seq, secrets) = self
            .kernel
            .update_tx_secret()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.tx = Keys::new(seq, secrets)?;
        Ok(n)
    }
}

/// TLS 1.2's additional data: sequence number, type, version, content length.
fn tls12_aad(seq: u64, content_type: u8, len: usize) -> [u8; 13] {
    let mut aad = [0; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content_type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    //! Against rustls's own client, in memory: data both ways on TLS 1.2 and 1.3 with every
    //! cipher, key updates asked by the client and made by the server, `close_notify` both
    //! ways, and a changed byte refused.

    use super::*;
    use rustls::client::ClientConnection;
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
    use rustls::pki_types::ServerName;
    use rustls::server::UnbufferedServerConnection;
    use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
    use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
    use std::io::{Read, Write};
    use std::sync::Arc;

    struct Session {
        client: ClientConnection,
        server: Records,
        /// Records from the client the server has not opened yet.
        to_server: Vec<u8>,
        /// The server's answers to key updates, not yet given to the client.
        reply: Vec<u8>,
    }

    /// A finished handshake between rustls's client and server, the server's keys handed
    /// over to `Records`.
    fn handshake(
        suite: SupportedCipherSuite,
        version: &'static SupportedProtocolVersion,
    ) -> Session {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..default_provider()
        });
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server_config.enable_secret_extraction = true;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client = ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut server = UnbufferedServerConnection::new(Arc::new(server_config)).unwrap();
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        let mut server_done = false;
        for _ in 0..20 {
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            loop {
                let UnbufferedStatus { discard, state } =
                    server.process_tls_records(&mut to_server[..]);
                let mut stop = false;
                match state.unwrap() {
                    ConnectionState::EncodeTlsData(mut e) => {
                        let mut buf = vec![0; 16384];
                        let n = e.encode(&mut buf).unwrap();
                        to_client.extend_from_slice(&buf[..n]);
                    }
                    ConnectionState::TransmitTlsData(t) => t.done(),
                    ConnectionState::BlockedHandshake => stop = true,
                    ConnectionState::WriteTraffic(_) => {
                        server_done = true;
                        stop = true;
                    }
                    other => panic!("unexpected state {other:?}"),
                }
                to_server.drain(..discard);
                if stop {
                    break;
                }
            }
            let mut reader = &to_client[..];
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
                client.process_new_packets().unwrap();
            }
            to_client.clear();
            if server_done && !client.is_handshaking() && !client.wants_write() {
                break;
            }
        }
        assert!(
            server_done && !client.is_handshaking(),
            "handshake did not finish"
        );
        let (secrets, kernel) = server.dangerous_into_kernel_connection().unwrap();
        Session {
            client,
            server: Records::new(secrets, kernel).unwrap(),
            to_server,
            reply: Vec::new(),
        }
    }

    impl Session {
        /// Sends `data` from the client; what the server opened: (type, content) per record.
        /// A key update is acted on as the stream does (before the next record is opened);
        /// the server's answer goes to `self.reply`.
        fn client_sends(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
            if !data.is_empty() {
                self.client.writer().write_all(data).unwrap();
            }
            while self.client.wants_write() {
                self.client.write_tls(&mut self.to_server).unwrap();
            }
            let mut got = Vec::new();
            while let Some(o) = self.server.open(&mut self.to_server).unwrap() {
                let content = self.to_server[o.content.clone()].to_vec();
                if o.content_type == CONTENT_HANDSHAKE {
                    let mut reply = vec![0; self.server.sealed_len(0)];
                    let n = self.server.handshake(&content, &mut reply).unwrap();
                    self.reply.extend_from_slice(&reply[..n]);
                }
                got.push((o.content_type, content));
                self.to_server.drain(..o.len);
            }
            got
        }

        /// Hands sealed bytes to the client; the plaintext it reads.
        fn client_reads(&mut self, sealed: &[u8]) -> Vec<u8> {
            let mut reader = sealed;
            let mut out = Vec::new();
            let mut buf = [0; 4096];
            while !reader.is_empty() {
                self.client.read_tls(&mut reader).unwrap();
                self.client.process_new_packets().unwrap();
                loop {
                    match self.client.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("client read: {e}"),
                    }
                }
            }
            out
        }

        fn server_seals(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = vec![0; self.server.sealed_len(data.len())];
            let n = self
                .server
                .seal(CONTENT_APPLICATION_DATA, data, &mut out)
                .unwrap();
            out.truncate(n);
            out
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn every_suite() -> Vec<(SupportedCipherSuite, &'static SupportedProtocolVersion)> {
        vec![
            (
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                &rustls::version::TLS13,
            ),
            (
                cipher_suite::TLS13_AES_256_GCM_SHA384,
                &rustls::version::TLS13,
            ),
            (
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                &rustls::version::TLS13,
            ),
            (
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                &rustls::version::TLS12,
            ),
            (
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                &rustls::version::TLS12,
            ),
            (
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                &rustls::version::TLS12,
            ),
        ]
    }

    #[test]
    fn data_goes_both_ways_on_every_suite() {
        for (suite, version) in every_suite() {
            let mut s = handshake(suite, version);
            let up = data(40_000);
            let got = s.client_sends(&up);
            assert!(got.iter().all(|(t, _)| *t == CONTENT_APPLICATION_DATA));
            assert_eq!(got.concat_content(), up, "{suite:?}");
            let down = data(70_000);
            let sealed = s.server_seals(&down);
            assert_eq!(sealed.len(), {
                let records = down.len().div_ceil(RECORD_DATA_MAX);
                down.len() + records * s.server.overhead()
            });
            assert_eq!(s.client_reads(&sealed), down, "{suite:?}");
            // And again, so that sequence numbers beyond the first records are right.
            assert_eq!(s.client_sends(b"ping").concat_content(), b"ping");
            let sealed = s.server_seals(b"pong");
            assert_eq!(s.client_reads(&sealed), b"pong");
        }
    }

    trait Contents {
        fn concat_content(&self) -> Vec<u8>;
    }

    impl Contents for Vec<(u8, Vec<u8>)> {
        fn concat_content(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, c)| c.clone()).collect()
        }
    }

    #[test]
    fn a_key_update_the_client_asks_for_is_answered() {
        let mut s = handshake(
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            &rustls::version::TLS13,
        );
        s.client.refresh_traffic_keys().unwrap();
        let got = s.client_sends(b"after the update");
        assert_eq!(got[0].0, CONTENT_HANDSHAKE);
        assert!(!s.reply.is_empty(), "update_requested must be answered");
        assert_eq!(
            got[1],
            (CONTENT_APPLICATION_DATA, b"after the update".to_vec())
        );
        // The client takes the answer, then reads data under the server's new key.
        let mut sealed = std::mem::take(&mut s.reply);
        sealed.extend(s.server_seals(b"new keys both ways"));
        assert_eq!(s.client_reads(&sealed), b"new keys both ways");
        assert_eq!(s.client_sends(b"still").concat_content(), b"still");
    }

    #[test]
    fn the_server_updates_its_key_at_the_limit() {
        let mut s = handshake(
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            &rustls::version::TLS13,
        );
        s.server.tx_limit = s.server.tx.seq + 1;
        let sealed = s.server_seals(&data(20_000));
        // One record under the old key, the update, then the rest under the new key.
        assert_eq!(s.server.tx.seq, 1);
        assert_eq!(s.client_reads(&sealed), data(20_000));
        let sealed = s.server_seals(b"later");
        assert_eq!(s.client_reads(&sealed), b"later");
    }

    #[test]
    fn endless_key_updates_are_refused() {
        let mut s = handshake(
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            &rustls::version::TLS13,
        );
        let update = [HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0];
        let mut reply = vec![0; s.server.sealed_len(0)];
        for _ in 0..KEY_UPDATES_IN_A_ROW_MAX {
            s.server.handshake(&update, &mut reply).unwrap();
        }
        assert!(s.server.handshake(&update, &mut reply).is_err());
        assert!(s.server.handshake(&[1, 0, 0, 0], &mut reply).is_err());
    }

    #[test]
    fn a_tls12_session_at_its_limit_is_ended() {
        let mut s = handshake(
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &rustls::version::TLS12,
        );
        s.server.tx_limit = s.server.tx.seq;
        let mut out = vec![0; s.server.sealed_len(4)];
        assert!(s
            .server
            .seal(CONTENT_APPLICATION_DATA, b"data", &mut out)
            .is_err());
    }

    #[test]
    fn close_notify_goes_both_ways() {
        for (suite, version) in every_suite() {
            let mut s = handshake(suite, version);
            let mut out = vec![0; s.server.sealed_len(2)];
            let n = s.server.seal_close_notify(&mut out).unwrap();
            let mut reader = &out[..n];
            s.client.read_tls(&mut reader).unwrap();
            let state = s.client.process_new_packets().unwrap();
            assert!(state.peer_has_closed(), "{suite:?}");
            s.client.send_close_notify();
            let got = s.client_sends(b"");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, CONTENT_ALERT);
            assert!(s.server.alert(&got[0].1).unwrap(), "{suite:?}");
        }
    }

    #[test]
    fn a_changed_byte_or_a_replayed_record_is_refused() {
        for (suite, version) in every_suite() {
            let mut s = handshake(suite, version);
            s.client.writer().write_all(b"exam answer").unwrap();
            let mut wire = Vec::new();
            while s.client.wants_write() {
                s.client.write_tls(&mut wire).unwrap();
            }
            let mut changed = wire.clone();
            let last = changed.len() - 3;
            changed[last] ^= 1;
            assert!(s.server.open(&mut changed).is_err(), "{suite:?}");
            // The real record under the next sequence number no longer opens either: a
            // session that saw a forgery is over (the stream closes it).
            let mut s = handshake(suite, version);
            let mut first = s.client_sends(b"one");
            assert_eq!(first.remove(0).1, b"one");
            s.client.writer().write_all(b"two").unwrap();
            let mut wire = Vec::new();
            while s.client.wants_write() {
                s.client.write_tls(&mut wire).unwrap();
            }
            let mut replay = wire.clone();
            assert!(s.server.open(&mut wire).unwrap().is_some());
            assert!(s.server.open(&mut replay).is_err(), "{suite:?}");
        }
    }

    #[test]
    fn incomplete_and_oversized_records() {
        let mut s = handshake(
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            &rustls::version::TLS13,
        );
        s.client.writer().write_all(b"split").unwrap();
        let mut wire = Vec::new();
        while s.client.wants_write() {
            s.client.write_tls(&mut wire).unwrap();
        }
        for cut in [0, 3, 5, wire.len() - 1] {
            let mut part = wire[..cut].to_vec();
            assert!(s.server.open(&mut part).unwrap().is_none(), "cut at {cut}");
        }
        let o = s.server.open(&mut wire).unwrap().unwrap();
        assert_eq!(&wire[o.content], b"split");
        let mut huge = vec![CONTENT_APPLICATION_DATA, 3, 3, 0x48, 0x01];
        assert!(s.server.open(&mut huge).is_err());
        let mut not_tls = b"GET / HTTP/1.1\r\n".to_vec();
        assert!(s.server.open(&mut not_tls).is_err());
    }
}
