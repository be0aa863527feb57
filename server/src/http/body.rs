//! Response bodies, and request bodies as bounded, stall-guarded byte streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};

/// Every response body.
pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body streamed from `stream`.
pub fn streamed<S>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    use futures::StreamExt;
    BodyExt::boxed(http_body_util::StreamBody::new(
        stream.map(|r| r.map(Frame::data)),
    ))
}

/// A request body, from hyper's connections (TLS, HTTP/2) or from Skab's own HTTP/1.
pub enum ReqBody {
    Hyper(Incoming),
    Own(super::h1::OwnBody),
}

impl hyper::body::Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ReqBody::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(std::io::Error::other))),
            ReqBody::Own(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Hyper(b) => b.is_end_stream(),
            ReqBody::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Hyper(b) => b.size_hint(),
            ReqBody::Own(b) => b.size_hint(),
        }
    }
}

/// Why a request body stream ended in error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge,
    Stalled,
    Broken,
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyFault::TooLarge => "request body over the size limit",
            BodyFault::Stalled => "request body stalled",
            BodyFault::Broken => "request body broken off",
        })
    }
}

/// Which [`BodyFault`] ended a stream, readable after the stream was handed away (a store
/// reports a failed stream as `Aborted` with text; the handler asks this instead).
#[derive(Debug, Default)]
pub struct FaultCell(AtomicU8);

impl FaultCell {
    fn set(&self, f: BodyFault) {
        self.0.store(f as u8 + 1, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::Stalled),
            3 => Some(BodyFault::Broken),
            _ => None,
        }
    }
}

/// A request body as a stream of data buffers, at most `max` bytes, failing when no bytes
/// arrive for `stall` (slow-client guard). `fault` tells why it failed.
pub struct RequestStream {
    body: ReqBody,
    max: u64,
    seen: u64,
    stall: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    pub fault: Arc<FaultCell>,
    done: bool,
}

impl RequestStream {
    pub fn new(body: ReqBody, max: u64, stall: Duration) -> Self {
        RequestStream {
            body,
            max,
            seen: 0,
            stall,
            timer: None,
            fault: Arc::new(FaultCell::default()),
            done: false,
        }
    }

    fn fail(&mut self, f: BodyFault) -> Poll<Option<Result<Bytes, BodyFault>>> {
        self.done = true;
        self.fault.set(f);
        Poll::Ready(Some(Err(f)))
    }
}

impl Stream for RequestStream {
    type Item = Result<Bytes, BodyFault>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.timer = None;
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    this.seen += data.len() as u64;
                    if this.seen > this.max {
                        return this.fail(BodyFault::TooLarge);
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    let stalled = matches!(&this.body, ReqBody::Own(_))
                        && e.kind() == std::io::ErrorKind::TimedOut;
                    return this.fail(if stalled {
                        BodyFault::Stalled
                    } else {
                        BodyFault::Broken
                    });
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                // Skab's own connections guard the stall themselves (`h1::Settings`).
                Poll::Pending if matches!(this.body, ReqBody::Own(_)) => return Poll::Pending,
                Poll::Pending => {
                    let stall = this.stall;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return this.fail(BodyFault::Stalled);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Reads a whole (small) request body, at most `max` bytes.
pub async fn read_all(body: ReqBody, max: usize, stall: Duration) -> Result<Vec<u8>, BodyFault> {
    use futures::StreamExt;
    let mut s = RequestStream::new(body, max as u64, stall);
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}
