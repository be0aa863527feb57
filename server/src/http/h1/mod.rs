//! Skab's own HTTP/1.1 server side, over plain TCP or TLS: per request it does one read, one
//! (vectored) write and no timer work, where hyper's per-request machinery was about half of
//! the user-space CPU of a small PROPFIND (docs/benchmarks.md, "Own HTTP/1"), and an idle
//! connection holds no buffer. HTTP/2 stays on hyper; `http1 = "hyper"` in the configuration
//! puts HTTP/1 back on it too.

mod body;
pub mod chunked;
mod conn;
pub mod head;
pub(crate) mod spare;
mod write;

pub use body::OwnBody;
pub use conn::{Conn, Outcome, Prefixed, Settings};
