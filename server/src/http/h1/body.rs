//! The request body handed to a handler: data the connection decoded from the socket,
//! passed through a small shared queue. The body only asks; the connection (which owns the
//! socket) reads when asked, so an unread body costs nothing and back-pressure is natural.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use parking_lot::Mutex;

/// Where the body stands, as far as the connection has decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Open,
    Complete,
    /// Cut off (connection closed or bad framing).
    Broken,
    /// No byte arrived for the body stall timeout (`Settings::body_stall`).
    Stalled,
}

/// State shared by the connection and the handler's body.
#[derive(Debug)]
pub struct Shared {
    pub queue: VecDeque<Bytes>,
    pub end: End,
    /// The body was polled and found nothing: the connection should read.
    pub wants: bool,
    pub body_waker: Option<Waker>,
    pub conn_waker: Option<Waker>,
}

impl Shared {
    pub fn new() -> Arc<Mutex<Shared>> {
        Arc::new(Mutex::new(Shared {
            queue: VecDeque::new(),
            end: End::Open,
            wants: false,
            body_waker: None,
            conn_waker: None,
        }))
    }

    /// Wakes the body's task if it is not the one running now (`cx`).
    pub fn wake_body(&mut self, cx: &Context<'_>) {
        if let Some(w) = self.body_waker.take() {
            if !w.will_wake(cx.waker()) {
                w.wake();
            }
        }
    }
}

/// A request body read by the connection it arrived on.
pub struct OwnBody {
    shared: Arc<Mutex<Shared>>,
    /// The declared length (Content-Length), if any.
    length: Option<u64>,
}

impl OwnBody {
    pub fn new(shared: Arc<Mutex<Shared>>, length: Option<u64>) -> Self {
        OwnBody { shared, length }
    }
}

impl hyper::body::Body for OwnBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let mut s = self.shared.lock();
        if let Some(data) = s.queue.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match s.end {
            End::Complete => Poll::Ready(None),
            End::Broken => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "request body cut off",
            )))),
            End::Stalled => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body stalled",
            )))),
            End::Open => {
                s.wants = true;
                if !s
                    .body_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    s.body_waker = Some(cx.waker().clone());
                }
                // Polled from another task than the connection's: tell the connection.
                if let Some(w) = s.conn_waker.as_ref() {
                    if !w.will_wake(cx.waker()) {
                        w.wake_by_ref();
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let s = self.shared.lock();
        s.queue.is_empty() && s.end == End::Complete
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
