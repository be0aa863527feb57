//! Per-thread spare buffers, so that an idle connection holds neither a read nor a write
//! buffer (nginx's way): a read attempt borrows one of the thread's spares and gives it back
//! when nothing came, a connection gives its buffer back once its request is answered; a
//! response head is built in the spare write buffer and handed back after. A few read spares
//! per thread (`H1_SPARE_READ_BUFS`) spare the allocator a buffer per request. A TLS
//! connection borrows its received records' buffer from the read spares and its send buffer
//! from a spare of its own (`http/tls_stream.rs`).

use std::cell::{Cell, RefCell};

use bytes::BytesMut;

use crate::limits::{
    H1_READ_BUF_BYTES, H1_SPARE_BUF_MAX_BYTES, H1_SPARE_READ_BUFS, H1_WRITE_HEAD_BYTES,
    TLS_WRITE_PENDING_MAX_BYTES,
};

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static TLS_OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty read buffer with room for at least `H1_READ_BUF_BYTES`.
pub fn read_buf() -> BytesMut {
    let mut b = READ.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    b.reserve(H1_READ_BUF_BYTES);
    b
}

/// Keeps `buf` (empty) among the thread's spares unless there are enough already or an
/// upload grew it; otherwise it is freed.
pub fn give_back_read(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    if !buf.is_empty() || buf.capacity() == 0 || buf.capacity() > H1_SPARE_BUF_MAX_BYTES {
        return;
    }
    READ.with(|s| {
        let mut spares = s.borrow_mut();
        if spares.len() < H1_SPARE_READ_BUFS {
            spares.push(buf);
        }
    });
}

/// An empty buffer for a response head.
pub fn write_buf() -> Vec<u8> {
    let mut v = WRITE.with(|s| s.take());
    v.clear();
    v.reserve(H1_WRITE_HEAD_BYTES);
    v
}

/// Keeps `buf` as the thread's spare write buffer (unless an unusual head grew it).
pub fn give_back_write(buf: Vec<u8>) {
    if buf.capacity() <= H1_SPARE_BUF_MAX_BYTES {
        WRITE.with(|s| s.set(buf));
    }
}

/// A buffer for a TLS connection's records on their way to the socket (the thread's spare,
/// or a new one if a connection of this thread holds it). Its old bytes are left in place
/// (they are overwritten before use) so that it is not cleared again for every response.
pub fn tls_out_buf() -> Vec<u8> {
    TLS_OUT.with(|s| s.take())
}

/// Keeps `buf` as the thread's spare TLS send buffer unless it grew unusually large.
pub fn give_back_tls_out(buf: Vec<u8>) {
    if buf.capacity() <= 2 * TLS_WRITE_PENDING_MAX_BYTES {
        TLS_OUT.with(|s| s.set(buf));
    }
}
