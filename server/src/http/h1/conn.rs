//! One HTTP/1 connection: reads request heads, runs the handler while feeding it the body
//! on demand, writes the response (head and small bodies in one write), and keeps the
//! connection alive when the framing allows. Timeouts: `idle` between requests and while a
//! write is stuck, `header_read` from the first byte of a head to its end. Over any byte
//! stream: a TCP socket or a TLS session on one. An idle connection holds no buffer.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::{Method, Request, StatusCode, Version};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::body::{End, OwnBody, Shared};
use super::chunked::{ChunkedDecoder, Step};
use super::head::{self, Framing, Head, HeadError, Parsed};
use super::{spare, write};
use crate::http::body::ReqBody;
use crate::http::response::Resp;
use crate::http::Handler;
use crate::limits::{
    H1_BODY_READ_BYTES, H1_DRAIN_MAX_BYTES, H1_LINGER_DECLARED_MAX_BYTES, H1_LINGER_MAX_BYTES,
    H1_LINGER_MS, H1_READ_BUF_BYTES, H1_WRITE_BATCH_BYTES, H1_WRITE_IOVECS_MAX,
};

/// How a connection ended.
pub enum Outcome {
    Closed,
    /// The client spoke HTTP/2 with prior knowledge: what was read from the stream
    /// ([`Conn::into_io`] gives the stream).
    Http2 {
        read: Bytes,
    },
}

/// Connection settings, from `limits`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub idle: Duration,
    pub header_read: Duration,
    pub head_max: usize,
    /// A request body that sends no byte for this long fails as stalled. The connection
    /// guards it with its own timer, and only while the socket has nothing (a tokio timer
    /// per upload cost a timer registration and a wake-up of the thread's driver).
    pub body_stall: Duration,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where the request body stands on the connection's side.
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
    Failed,
}

enum Wait {
    Timeout,
    Stop,
    Io,
}

/// A timer that fires at or before the earliest deadline asked of it, re-armed lazily
/// (moving a timer on every request is a measurable share of a small one).
struct Deadline {
    timer: Pin<Box<Sleep>>,
    armed: Instant,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(at)),
            armed: at,
        }
    }

    /// Whether `due` has passed; otherwise the timer is registered with `cx`.
    fn expired(&mut self, cx: &mut Context<'_>, due: Instant) -> bool {
        if due < self.armed {
            self.timer.as_mut().reset(due);
            self.armed = due;
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= due {
                return true;
            }
            self.timer.as_mut().reset(due);
            self.armed = due;
        }
    }
}

pub struct Conn<S> {
    io: S,
    /// Bytes read and not yet used; no allocation while empty between requests.
    buf: BytesMut,
    settings: Settings,
    deadline: Deadline,
    last_activity: Instant,
    /// When the head being read started to arrive (set once its reading had to wait).
    head_started: Option<Instant>,
    stop_rx: watch::Receiver<bool>,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S, settings: Settings, stop_rx: watch::Receiver<bool>) -> Self {
        let now = Instant::now();
        let mut rx = stop_rx.clone();
        Conn {
            io,
            buf: BytesMut::new(),
            settings,
            deadline: Deadline::new(now + settings.idle),
            last_activity: now,
            head_started: None,
            stop_rx,
            stop: Box::pin(async move {
                let _ = rx.wait_for(|s| *s).await;
            }),
        }
    }

    /// The stream, after [`Conn::run`] answered [`Outcome::Http2`].
    pub fn into_io(self) -> S {
        self.io
    }

    /// Serves requests until the connection closes. By reference: the caller's future holds
    /// the connection once, not again inside this one.
    pub async fn run<H: Handler>(&mut self, handler: &H, peer: SocketAddr) -> Outcome {
        let mut first = true;
        loop {
            let head = match self.read_head().await {
                Ok(Some(Parsed::Complete(h))) => h,
                Ok(Some(Parsed::Http2Preface)) if first => {
                    return Outcome::Http2 {
                        read: std::mem::take(&mut self.buf).freeze(),
                    }
                }
                Ok(Some(Parsed::Http2Preface)) => {
                    Box::pin(self.refuse(HeadError {
                        status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                        reason: "HTTP/2 preface inside an HTTP/1 connection",
                    }))
                    .await;
                    return Outcome::Closed;
                }
                Ok(Some(Parsed::Partial)) | Ok(None) => return Outcome::Closed,
                Err(e) => {
                    Box::pin(self.refuse(e)).await;
                    return Outcome::Closed;
                }
            };
            first = false;
            // The exchange's state (about 2 KiB) is boxed for the request's time: held inline,
            // every idle connection's task would carry it (docs/architecture.md, "Idle
            // connections").
            if !Box::pin(self.exchange(*head, handler, peer)).await {
                return Outcome::Closed;
            }
        }
    }

    /// Reads until a whole head is buffered. `None`: the connection closed, timed out or
    /// the server is stopping while it was idle.
    async fn read_head(&mut self) -> Result<Option<Parsed>, HeadError> {
        // A head ends with an empty line: parsing again is useless until a read brings a
        // line feed (a client trickling bytes must not make the server re-parse per byte).
        let mut may_be_complete = true;
        loop {
            head::skip_leading_empty_lines(&mut self.buf);
            if !may_be_complete && self.buf.len() > self.settings.head_max {
                return Err(HeadError {
                    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    reason: "request head too large",
                });
            }
            if may_be_complete && !self.buf.is_empty() {
                match head::parse(&mut self.buf, self.settings.head_max)? {
                    Parsed::Partial => {}
                    done => {
                        self.head_started = None;
                        return Ok(Some(done));
                    }
                }
            }
            let idle = self.buf.is_empty();
            let due = if idle {
                self.last_activity + self.settings.idle
            } else {
                *self.head_started.get_or_insert_with(Instant::now) + self.settings.header_read
            };
            match self.read_some(due, idle).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => may_be_complete = self.buf[self.buf.len() - n..].contains(&b'\n'),
            }
        }
    }

    /// One read into the buffer (room for `H1_READ_BUF_BYTES` more), waiting at most until
    /// `due` (and, if `stoppable`, until the server stops). An empty buffer is the thread's
    /// spare, borrowed for the attempt and given back if nothing came: while it waits, the
    /// connection holds no buffer.
    async fn read_some(&mut self, due: Instant, stoppable: bool) -> Result<usize, Wait> {
        let Conn {
            io,
            buf,
            deadline,
            stop,
            ..
        } = self;
        poll_fn(|cx| {
            if buf.capacity() == 0 {
                *buf = spare::read_buf();
            } else {
                buf.reserve(H1_READ_BUF_BYTES);
            }
            match pin!(io.read_buf(buf)).poll(cx) {
                Poll::Ready(r) => return Poll::Ready(r.map_err(|_| Wait::Io)),
                Poll::Pending if buf.is_empty() => spare::give_back_read(std::mem::take(buf)),
                Poll::Pending => {}
            }
            if stoppable && stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Wait::Stop));
            }
            if deadline.expired(cx, due) {
                return Poll::Ready(Err(Wait::Timeout));
            }
            Poll::Pending
        })
        .await
    }

    /// Runs one request and writes its response; true if the connection stays open.
    async fn exchange<H: Handler>(&mut self, head: Head, handler: &H, peer: SocketAddr) -> bool {
        let Head {
            method,
            uri,
            version,
            headers,
            framing,
            keep_alive,
            expects_continue,
        } = head;
        let shared = Shared::new();
        let (mut state, length) = match framing {
            Framing::Length(0) => (BodyState::Done, Some(0)),
            Framing::Length(n) => (BodyState::Length(n), Some(n)),
            Framing::Chunked => (BodyState::Chunked(ChunkedDecoder::new()), None),
        };
        if matches!(state, BodyState::Done) {
            shared.lock().end = End::Complete;
        } else {
            feed(&mut self.buf, &mut state, &shared, None);
        }
        let mut req = Request::new(ReqBody::Own(OwnBody::new(shared.clone(), length)));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        let mut sent_continue = !expects_continue;
        let resp = {
            // Boxed: the handler's future is large and lives only during the request, and
            // the connection's own future (held while idle) stays small.
            let mut handler = Box::pin(handler.handle(req, peer));
            let mut continue_sent = 0usize;
            let mut continue_flushed = !expects_continue;
            let body_stall = self.settings.body_stall;
            let mut progress = self.last_activity;
            let Conn {
                io, buf, deadline, ..
            } = &mut *self;
            poll_fn(|cx| loop {
                if let Poll::Ready(resp) = handler.as_mut().poll(cx) {
                    return Poll::Ready(resp);
                }
                if matches!(state, BodyState::Done | BodyState::Failed) {
                    return Poll::Pending;
                }
                {
                    let mut s = shared.lock();
                    if !s
                        .conn_waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        s.conn_waker = Some(cx.waker().clone());
                    }
                    if !s.wants {
                        return Poll::Pending;
                    }
                }
                while !sent_continue {
                    match Pin::new(&mut *io).poll_write(cx, &CONTINUE[continue_sent..]) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            continue_sent += n;
                            sent_continue = continue_sent == CONTINUE.len();
                        }
                        Poll::Ready(_) => {
                            fail(&mut state, &shared, End::Broken, cx);
                            break;
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                // Over TLS the `100 Continue` may still sit in the session's buffer.
                if sent_continue && !continue_flushed && !matches!(state, BodyState::Failed) {
                    match Pin::new(&mut *io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => continue_flushed = true,
                        Poll::Ready(Err(_)) => fail(&mut state, &shared, End::Broken, cx),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                if matches!(state, BodyState::Failed) {
                    continue;
                }
                buf.reserve(H1_BODY_READ_BYTES);
                match pin!(io.read_buf(buf)).poll(cx) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        progress = Instant::now();
                        feed(buf, &mut state, &shared, Some(cx));
                    }
                    Poll::Ready(_) => fail(&mut state, &shared, End::Broken, cx),
                    Poll::Pending => {
                        if deadline.expired(cx, progress + body_stall) {
                            fail(&mut state, &shared, End::Stalled, cx);
                            continue;
                        }
                        return Poll::Pending;
                    }
                }
            })
            .await
        };
        let body_done = matches!(state, BodyState::Done);
        let drainable = sent_continue
            && match state {
                BodyState::Length(left) => left <= H1_DRAIN_MAX_BYTES,
                BodyState::Chunked(_) => true,
                BodyState::Done | BodyState::Failed => false,
            };
        let mut keep = keep_alive && (body_done || drainable) && !*self.stop_rx.borrow();
        // Let the other connections that are ready in this event-loop turn compute their
        // answers first: the turn's responses then go out back to back, and a peer's thread
        // that waits on several of them is woken once, not once per response
        // (docs/architecture.md, "Own HTTP/1").
        tokio::task::yield_now().await;
        let written = self.write_response(&method, version, resp, &mut keep).await;
        self.last_activity = Instant::now();
        if !written {
            return false;
        }
        if keep && !body_done {
            keep = self.drain(&mut state).await;
        }
        if !keep {
            // What the client may still send: the declared rest, or an unknown amount.
            let linger = match state {
                BodyState::Done => 0,
                BodyState::Length(left) => left.min(H1_LINGER_DECLARED_MAX_BYTES),
                BodyState::Chunked(_) | BodyState::Failed => H1_LINGER_MAX_BYTES,
            };
            self.close(linger).await;
        } else if self.buf.is_empty() {
            // An idle keep-alive connection holds no buffer (one an upload grew is freed).
            spare::give_back_read(std::mem::take(&mut self.buf));
        }
        keep
    }

    /// Writes `resp`; false if the connection broke (or must close: a body cut short).
    async fn write_response(
        &mut self,
        method: &Method,
        version: Version,
        resp: Resp,
        keep: &mut bool,
    ) -> bool {
        let (mut parts, mut body) = resp.into_parts();
        let framing = write::framing(
            method,
            version,
            parts.status,
            &mut parts.headers,
            &body,
            keep,
        );
        let mut out = spare::write_buf();
        write::head(
            &mut out,
            version,
            parts.status,
            &parts.headers,
            framing,
            *keep,
        );
        let mut head_sent = 0usize;
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        let mut queued = 0usize;
        let mut left = match framing {
            write::Framing::Length(n) => n,
            _ => u64::MAX,
        };
        let mut done = framing == write::Framing::None;
        let mut complete = true;
        loop {
            // Take what the body has ready, up to a batch.
            while !done && queued < H1_WRITE_BATCH_BYTES && queue.len() + 3 <= H1_WRITE_IOVECS_MAX {
                let frame = match futures::poll!(body.frame()) {
                    Poll::Ready(f) => f,
                    Poll::Pending if head_sent < out.len() || !queue.is_empty() => break,
                    Poll::Pending => body.frame().await,
                };
                match frame {
                    Some(Ok(frame)) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue;
                        };
                        if data.is_empty() {
                            continue;
                        }
                        if data.len() as u64 > left {
                            tracing::warn!("response body longer than its Content-Length; cut");
                            data.truncate(left as usize);
                            complete = false;
                            done = true;
                        }
                        left = left.saturating_sub(data.len() as u64);
                        queued += data.len();
                        if framing == write::Framing::Chunked {
                            queue.push_back(Bytes::from(write::chunk_head(data.len())));
                            queue.push_back(data);
                            queue.push_back(Bytes::from_static(b"\r\n"));
                        } else {
                            queue.push_back(data);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "response body failed; closing");
                        complete = false;
                        done = true;
                    }
                    None => {
                        done = true;
                        match framing {
                            write::Framing::Chunked => {
                                queue.push_back(Bytes::from_static(b"0\r\n\r\n"))
                            }
                            write::Framing::Length(_) if left > 0 => complete = false,
                            _ => {}
                        }
                    }
                }
            }
            if head_sent == out.len() && queue.is_empty() {
                if done {
                    break;
                }
                continue;
            }
            match self.write_some(&out, &mut head_sent, &mut queue).await {
                Ok(n) => queued = queued.saturating_sub(n),
                Err(_) => return false,
            }
        }
        spare::give_back_write(out);
        // A TLS session may still hold records the socket did not take.
        if self.flush().await.is_err() {
            return false;
        }
        if !complete {
            *keep = false;
            return false;
        }
        true
    }

    /// One vectored write of the unsent head and queued pieces; returns the body bytes sent.
    async fn write_some(
        &mut self,
        out: &[u8],
        head_sent: &mut usize,
        queue: &mut VecDeque<Bytes>,
    ) -> io::Result<usize> {
        let idle = self.settings.idle;
        let Conn { io, deadline, .. } = self;
        let mut waited: Option<Instant> = None;
        let n = poll_fn(|cx| {
            let mut slices = [io::IoSlice::new(&[]); H1_WRITE_IOVECS_MAX];
            let mut used = 0;
            if *head_sent < out.len() {
                slices[0] = io::IoSlice::new(&out[*head_sent..]);
                used = 1;
            }
            for b in queue.iter().take(H1_WRITE_IOVECS_MAX - used) {
                slices[used] = io::IoSlice::new(b);
                used += 1;
            }
            match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..used]) {
                Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(r) => Poll::Ready(r),
                Poll::Pending => {
                    // The previous write made progress just before this one: the client
                    // gets `idle` from the moment this write has to wait.
                    let since = *waited.get_or_insert_with(Instant::now);
                    if deadline.expired(cx, since + idle) {
                        return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                    }
                    Poll::Pending
                }
            }
        })
        .await?;
        let mut rest = n;
        let from_head = (out.len() - *head_sent).min(rest);
        *head_sent += from_head;
        rest -= from_head;
        let body_bytes = rest;
        while rest > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if front.len() <= rest {
                rest -= front.len();
                queue.pop_front();
            } else {
                front.advance(rest);
                rest = 0;
            }
        }
        Ok(body_bytes)
    }

    /// Writes out what the stream still buffers, failing after `idle` without progress.
    async fn flush(&mut self) -> io::Result<()> {
        let idle = self.settings.idle;
        let Conn { io, deadline, .. } = self;
        let mut waited: Option<Instant> = None;
        poll_fn(|cx| match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                let since = *waited.get_or_insert_with(Instant::now);
                if deadline.expired(cx, since + idle) {
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Reads and discards the unread rest of a request body (at most `H1_DRAIN_MAX_BYTES`);
    /// true if the next request can follow on this connection.
    async fn drain(&mut self, state: &mut BodyState) -> bool {
        let mut discarded = 0u64;
        let sink = Shared::new();
        loop {
            feed(&mut self.buf, state, &sink, None);
            discarded += sink
                .lock()
                .queue
                .drain(..)
                .map(|b| b.len() as u64)
                .sum::<u64>();
            match state {
                BodyState::Done => return true,
                BodyState::Failed => return false,
                _ if discarded > H1_DRAIN_MAX_BYTES => return false,
                _ => {}
            }
            let due = self.last_activity + self.settings.idle;
            match self.read_some(due, false).await {
                Ok(n) if n > 0 => {}
                _ => return false,
            }
        }
    }

    /// Answers a head that cannot be served, then closes.
    async fn refuse(&mut self, e: HeadError) {
        let text = format!("{}\n", e.reason);
        let msg = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            e.status.as_str(),
            e.status.canonical_reason().unwrap_or(""),
            text.len()
        );
        let due = Instant::now() + self.settings.idle;
        let _ = tokio::time::timeout_at(due, self.io.write_all(msg.as_bytes())).await;
        self.close(H1_LINGER_MAX_BYTES).await;
    }

    /// Closes the connection. What the client may still be sending (up to `linger` bytes,
    /// for at most `H1_LINGER_MS`) is read and dropped first: closing with unread data makes
    /// the kernel send a reset, which can destroy the answer before the client reads it
    /// (RFC 9112 §9.6).
    async fn close(&mut self, linger: u64) {
        let _ = self.io.shutdown().await;
        if linger == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(H1_LINGER_MS);
        let mut dropped = 0u64;
        let mut scratch = vec![0u8; 64 * 1024];
        while dropped < linger {
            match tokio::time::timeout_at(until, self.io.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => dropped += n as u64,
                _ => break,
            }
        }
    }
}

/// Moves decoded body data from the read buffer to the handler's queue.
fn feed(
    buf: &mut BytesMut,
    state: &mut BodyState,
    shared: &Arc<Mutex<Shared>>,
    cx: Option<&Context<'_>>,
) {
    let mut s = shared.lock();
    let before = (s.queue.len(), s.end);
    match state {
        BodyState::Length(left) => {
            if !buf.is_empty() {
                let n = (buf.len() as u64).min(*left) as usize;
                s.queue.push_back(buf.split_to(n).freeze());
                *left -= n as u64;
                if *left == 0 {
                    *state = BodyState::Done;
                    s.end = End::Complete;
                }
            }
        }
        BodyState::Chunked(decoder) => loop {
            match decoder.decode(buf) {
                Ok(Step::Data(data)) => s.queue.push_back(data),
                Ok(Step::NeedMore) => break,
                Ok(Step::Done) => {
                    *state = BodyState::Done;
                    s.end = End::Complete;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = ?e, "bad chunked body");
                    *state = BodyState::Failed;
                    s.end = End::Broken;
                    break;
                }
            }
        },
        BodyState::Done | BodyState::Failed => {}
    }
    if (s.queue.len(), s.end) != before {
        s.wants = false;
        if let Some(cx) = cx {
            s.wake_body(cx);
        }
    }
}

/// The body cannot continue (`why`: connection closed or broken, or stalled).
fn fail(state: &mut BodyState, shared: &Arc<Mutex<Shared>>, why: End, cx: &Context<'_>) {
    debug_assert!(matches!(why, End::Broken | End::Stalled));
    *state = BodyState::Failed;
    let mut s = shared.lock();
    s.end = why;
    s.wants = false;
    s.wake_body(cx);
}

/// `AsyncRead` that yields `prefix` before reading from `io` (hands an HTTP/2 connection
/// to hyper with the bytes already read).
pub struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, io: S) -> Self {
        Prefixed { prefix, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
