//! A TLS session over a TCP socket on rustls's unbuffered API, so that an idle connection
//! holds no record buffer: the received ciphertext lives in a buffer borrowed from the serving
//! thread's spares (`h1::spare`) for as long as a record is incomplete, the records to send in
//! another one until the socket took them, and both go back to the thread when empty. The
//! buffered `rustls::ServerConnection` kept a 4 KiB receive buffer (re-grown before every read)
//! and its send queue for the connection's whole life (docs/architecture.md, "Idle
//! connections"). Once the handshake is done, rustls's session itself goes too: its keys move
//! to Skab's record layer (`tls_records`), which seals and opens the application data. Served
//! to HTTP/1 (Skab's own or hyper's) and HTTP/2 as a byte stream.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::h1::spare;
use super::tls_records::{
    Records, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, RECORD_DATA_MAX,
};
use crate::limits::{TLS_READ_BYTES, TLS_WRITE_PENDING_MAX_BYTES};

/// Where the session stands once the received records are processed.
enum Pumped {
    /// Needs more bytes from the peer (the handshake goes on, or a record is incomplete).
    Blocked,
    /// Handshake done, nothing left to process: application data may be sent.
    Writable,
    /// Both sides sent `close_notify`.
    Closed,
}

/// The session: rustls during the handshake, Skab's record layer after it.
enum Session {
    Handshake(Box<UnbufferedServerConnection>),
    Open(Box<Records>),
    /// The keys could not be handed over: the connection is closed.
    Failed,
}

/// The protocols a client may agree on by ALPN (`tls::config`), kept after rustls is gone.
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

pub struct TlsStream {
    tcp: TcpStream,
    session: Session,
    alpn: Option<&'static [u8]>,
    /// Received bytes not yet processed (an incomplete record); no allocation while empty.
    incoming: BytesMut,
    /// Records to send; `outgoing[sent..]` is what the socket has not taken yet. No
    /// allocation while empty.
    outgoing: OutBuf,
    sent: usize,
    /// Decrypted bytes that did not fit the reader's buffer (rare: a record is at most 16 KiB).
    plain: BytesMut,
    /// The peer closed (`close_notify` or end of stream): reads return end of stream.
    read_closed: bool,
    close_queued: bool,
}

impl TlsStream {
    /// Runs the handshake on `tcp`; the stream is ready for application data after it.
    pub async fn accept(
        config: Arc<rustls::ServerConfig>,
        tcp: TcpStream,
    ) -> io::Result<TlsStream> {
        let tls = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        let mut s = TlsStream {
            tcp,
            session: Session::Handshake(Box::new(tls)),
            alpn: None,
            incoming: BytesMut::new(),
            outgoing: OutBuf::default(),
            sent: 0,
            plain: BytesMut::new(),
            read_closed: false,
            close_queued: false,
        };
        poll_fn(|cx| s.poll_handshake(cx)).await?;
        s.open_session()?;
        Ok(s)
    }

    /// The protocol agreed by ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Session::Handshake(tls) = &mut self.session else {
                return Poll::Ready(Ok(()));
            };
            let pumped = handshake_pump(
                tls,
                &mut self.incoming,
                &mut self.outgoing,
                &mut self.plain,
                &mut self.read_closed,
            )?;
            // What the handshake produced goes out before more is awaited.
            ready!(self.poll_send(cx))?;
            match pumped {
                Pumped::Writable => return Poll::Ready(Ok(())),
                Pumped::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Pumped::Blocked => {}
            }
            if ready!(self.poll_receive(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Hands the session's keys from rustls to the record layer (the handshake is done and
    /// rustls has nothing left to send); rustls's session is dropped.
    fn open_session(&mut self) -> io::Result<()> {
        let Session::Handshake(tls) = &self.session else {
            return Ok(());
        };
        self.alpn = match tls.alpn_protocol() {
            Some(ALPN_H2) => Some(ALPN_H2),
            Some(ALPN_HTTP1) => Some(ALPN_HTTP1),
            _ => None,
        };
        let Session::Handshake(tls) = std::mem::replace(&mut self.session, Session::Failed) else {
            return Ok(());
        };
        let (secrets, kernel) = tls
            .dangerous_into_kernel_connection()
            .map_err(|e| io::Error::other(format!("TLS keys not available: {e}")))?;
        self.session = Session::Open(Box::new(Records::new(secrets, kernel)?));
        Ok(())
    }

    /// Opens the complete records in `incoming`: application data is copied to `sink` (the
    /// rest to `plain`), a key update's answer appended to `outgoing`.
    fn pump(&mut self, mut sink: Option<&mut ReadBuf<'_>>) -> io::Result<Pumped> {
        let TlsStream {
            session,
            incoming,
            outgoing,
            plain,
            read_closed,
            ..
        } = self;
        let records = match session {
            Session::Open(r) => r,
            Session::Handshake(tls) => {
                return handshake_pump(tls, incoming, outgoing, plain, read_closed)
            }
            Session::Failed => return Err(io::Error::other("TLS session failed")),
        };
        while !*read_closed {
            let Some(opened) = records.open(&mut incoming[..])? else {
                break;
            };
            let content = &incoming[opened.content.clone()];
            match opened.content_type {
                CONTENT_APPLICATION_DATA => {
                    let mut data = content;
                    if let Some(sink) = sink.as_deref_mut() {
                        if plain.is_empty() {
                            let n = data.len().min(sink.remaining());
                            sink.put_slice(&data[..n]);
                            data = &data[n..];
                        }
                    }
                    plain.extend_from_slice(data);
                }
                CONTENT_ALERT => *read_closed = records.alert(content)?,
                CONTENT_HANDSHAKE => {
                    let content = content.to_vec();
                    let n = records.handshake(&content, outgoing.room(records.sealed_len(0)))?;
                    outgoing.commit(n);
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected TLS record type",
                    ))
                }
            }
            incoming.advance(opened.len);
        }
        Ok(Pumped::Writable)
    }
}

/// Drives rustls's handshake over the complete records in `incoming`: its messages to send
/// are appended to `outgoing`. It stops at the end of the handshake (`Writable`), leaving
/// any later records in `incoming`; `plain` takes application data rustls decrypted.
fn handshake_pump(
    tls: &mut UnbufferedServerConnection,
    incoming: &mut BytesMut,
    outgoing: &mut OutBuf,
    plain: &mut BytesMut,
    read_closed: &mut bool,
) -> io::Result<Pumped> {
    loop {
        // Once the handshake is done rustls gets no more records: what follows the client's
        // Finished (a key update, a request) is the record layer's. rustls would act on a
        // key update itself and keep its answer for its next write, which never comes.
        let input: &mut [u8] = if tls.is_handshaking() {
            &mut incoming[..]
        } else {
            &mut []
        };
        let UnbufferedStatus { mut discard, state } = tls.process_tls_records(input);
        let state = state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let next = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record =
                        record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    discard += record.discard;
                    plain.extend_from_slice(record.payload);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                let mut room = 4096;
                loop {
                    match encode.encode(outgoing.room(room)) {
                        Ok(n) => {
                            outgoing.commit(n);
                            break;
                        }
                        Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                }
                None
            }
            // Everything encoded so far is in `outgoing`, which is sent in order before
            // anything encoded later.
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::BlockedHandshake => Some(Pumped::Blocked),
            ConnectionState::WriteTraffic(_) => Some(Pumped::Writable),
            // Reported once; what follows is `WriteTraffic` (or `Closed` once ours is sent).
            ConnectionState::PeerClosed => {
                *read_closed = true;
                None
            }
            ConnectionState::Closed => Some(Pumped::Closed),
            // Early data is not enabled (`max_early_data_size` stays 0).
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected TLS state {other:?}"),
                ))
            }
        };
        incoming.advance(discard);
        if let Some(p) = next {
            return Ok(p);
        }
    }
}

impl TlsStream {
    /// Seals `data` into `outgoing` (the handshake must be done).
    fn encrypt(&mut self, data: &[u8]) -> io::Result<()> {
        let Session::Open(records) = &mut self.session else {
            return Err(io::Error::other("TLS session not writable"));
        };
        let n = records.seal(
            CONTENT_APPLICATION_DATA,
            data,
            self.outgoing.room(records.sealed_len(data.len())),
        )?;
        self.outgoing.commit(n);
        Ok(())
    }

    /// Reads from the socket into `incoming` (borrowing a spare buffer if it has none and
    /// giving it back if nothing came); the bytes read, 0 at end of stream.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.capacity() == 0 {
            self.incoming = spare::read_buf();
        }
        // Room for a whole record in one read.
        self.incoming.reserve(TLS_READ_BYTES);
        loop {
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.tcp.poll_read_ready(cx).is_pending() {
                self.give_back_incoming();
                return Poll::Pending;
            }
        }
    }

    fn give_back_incoming(&mut self) {
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            spare::give_back_read(std::mem::take(&mut self.incoming));
        }
    }

    /// Writes `outgoing` to the socket until it is all sent (then the buffer goes back to
    /// the thread) or the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.end {
            match self
                .tcp
                .try_write(&self.outgoing.buf[self.sent..self.outgoing.end])
            {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.sent = 0;
        self.outgoing.end = 0;
        if self.outgoing.buf.capacity() > 0 {
            spare::give_back_tls_out(std::mem::take(&mut self.outgoing.buf));
        }
        Poll::Ready(Ok(()))
    }

    fn unsent(&self) -> usize {
        self.outgoing.len() - self.sent
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.plain.is_empty() {
            let n = this.plain.len().min(buf.remaining());
            buf.put_slice(&this.plain[..n]);
            this.plain.advance(n);
            if this.plain.is_empty() {
                this.plain = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        if this.read_closed {
            return Poll::Ready(Ok(()));
        }
        // Answers to the peer's handshake messages (a key update), if the socket takes them
        // now; otherwise the next write or flush sends them.
        if this.unsent() > 0 {
            let _ = this.poll_send(cx)?;
        }
        let filled = buf.filled().len();
        let result = loop {
            match this.pump(Some(buf)) {
                Err(e) => break Poll::Ready(Err(e)),
                Ok(_) if buf.filled().len() > filled || !this.plain.is_empty() => {
                    break Poll::Ready(Ok(()))
                }
                Ok(_) if this.read_closed => break Poll::Ready(Ok(())),
                Ok(Pumped::Closed) => {
                    this.read_closed = true;
                    break Poll::Ready(Ok(()));
                }
                Ok(Pumped::Blocked | Pumped::Writable) => {}
            }
            match this.poll_receive(cx) {
                Poll::Pending => {
                    // A key update's answer leaves now, not with the next response.
                    if this.unsent() > 0 {
                        let _ = this.poll_send(cx)?;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                // End of stream without `close_notify`: within a record it is an error (the
                // data was cut), otherwise the end of what the peer sends.
                Poll::Ready(Ok(0)) if !this.incoming.is_empty() => {
                    break Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                }
                Poll::Ready(Ok(0)) => {
                    this.read_closed = true;
                    break Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(_)) => {}
            }
        };
        this.give_back_incoming();
        if this.unsent() > 0 {
            let _ = this.poll_send(cx)?;
        }
        result
    }
}

impl TlsStream {
    /// Encrypts as much of `bufs` as the send limit allows (several slices gathered and
    /// encrypted together) and tries to send it; the plaintext bytes taken.
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.unsent() >= TLS_WRITE_PENDING_MAX_BYTES {
            ready!(self.poll_send(cx))?;
        }
        // Handshake messages the peer's records asked for (and any application data that
        // came with them, kept for the reader) are dealt with first.
        match self.pump(None)? {
            Pumped::Writable => {}
            Pumped::Blocked | Pumped::Closed => {
                return Poll::Ready(Err(io::Error::other("TLS session not writable")))
            }
        }
        let room = TLS_WRITE_PENDING_MAX_BYTES - self.unsent().min(TLS_WRITE_PENDING_MAX_BYTES);
        let taken;
        let mut pieces = bufs.iter().filter(|b| !b.is_empty());
        match (pieces.next(), pieces.next()) {
            (None, _) => return Poll::Ready(Ok(0)),
            // One piece, or a first one that fills the queue: encrypted from where it lies.
            (Some(b), None) => {
                let n = b.len().min(room.max(RECORD_DATA_MAX));
                self.encrypt(&b[..n])?;
                taken = n;
            }
            (Some(b), Some(_)) if b.len() >= room => {
                let n = b.len().min(room.max(RECORD_DATA_MAX));
                self.encrypt(&b[..n])?;
                taken = n;
            }
            // Several pieces (a response head and its body) are gathered and encrypted
            // together, so they leave in one write: one record per 16 KiB, not one per piece.
            _ => {
                let mut gather = GATHER.with(|g| g.take());
                gather.clear();
                let room = room.max(RECORD_DATA_MAX);
                for b in bufs {
                    let n = b.len().min(room - gather.len());
                    gather.extend_from_slice(&b[..n]);
                    if n < b.len() {
                        break;
                    }
                }
                let result = self.encrypt(&gather);
                taken = gather.len();
                GATHER.with(|g| g.set(gather));
                result?;
            }
        }
        // The socket gets what it takes now; the rest waits for the next write or a flush.
        let _ = self.poll_send(cx)?;
        Poll::Ready(Ok(taken))
    }
}

/// Records on their way to the socket: `buf[..end]`. The buffer is kept initialized to its
/// full length (it is the thread's spare between uses), so making room does not clear it
/// again for every response.
#[derive(Default)]
struct OutBuf {
    buf: Vec<u8>,
    end: usize,
}

impl OutBuf {
    fn len(&self) -> usize {
        self.end
    }

    /// At least `n` writable bytes after the end (borrowing the thread's spare if empty).
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.buf.capacity() == 0 {
            self.buf = spare::tls_out_buf();
        }
        if self.buf.len() < self.end + n {
            self.buf.resize(self.end + n, 0);
        }
        &mut self.buf[self.end..]
    }

    fn commit(&mut self, n: usize) {
        self.end += n;
    }
}

thread_local! {
    /// The pieces of one vectored write (a response head and its body), gathered.
    static GATHER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_slices(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    /// Sends `close_notify` (once), then ends the TCP stream's sending side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued {
            this.close_queued = true;
            ready!(this.poll_send(cx))?;
            if let Session::Open(records) = &mut this.session {
                let room = this.outgoing.room(records.sealed_len(2));
                if let Ok(n) = records.seal_close_notify(room) {
                    this.outgoing.commit(n);
                }
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The hand-over from rustls to the record layer over a real loopback socket, when the
    //! client's last handshake flight, a key update and a request arrive together (as they do
    //! from a client that got ahead of a busy server).

    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn server_config() -> (
        Arc<rustls::ServerConfig>,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
        config.enable_secret_extraction = true;
        (Arc::new(config), der)
    }

    #[tokio::test]
    async fn a_key_update_behind_the_clients_finished_is_answered() {
        let (config, der) = server_config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::thread::spawn(move || {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der).unwrap();
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            // The handshake, holding back the client's Finished once it is written.
            while conn.is_handshaking() {
                if conn.wants_write() {
                    conn.write_tls(&mut sock).unwrap();
                } else {
                    conn.read_tls(&mut sock).unwrap();
                    conn.process_new_packets().unwrap();
                }
            }
            // Finished, a key update asking for the server's, a request: one segment.
            conn.refresh_traffic_keys().unwrap();
            conn.writer().write_all(b"ping").unwrap();
            let mut segment = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut segment).unwrap();
            }
            sock.write_all(&segment).unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                if conn.read_tls(&mut sock).unwrap() == 0 {
                    panic!("server closed; got {got:?}");
                }
                conn.process_new_packets()
                    .expect("records from the server open");
                let mut buf = [0; 16];
                while let Ok(n) = conn.reader().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            got
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = TlsStream::accept(config, tcp).await.unwrap();
        let mut ping = [0; 4];
        stream.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping");
        stream.write_all(b"pong").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(client.join().unwrap(), b"pong");
    }
}
