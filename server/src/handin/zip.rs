//! The whole hand-in as one zip archive, made while it is sent: each file is read from the
//! engine chunk by chunk into a stored (uncompressed) zip entry with a data descriptor, and
//! the archive's bytes go out through a small bounded channel, so memory stays bounded
//! whatever the hand-in's size. Why stored and how the archive looks: `docs/handin.md`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTimeBuilder, ZipEntryBuilder};
use bytes::Bytes;
use futures::io::AsyncWriteExt;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use skab_engine::ns::{Kind, Name};
use skab_engine::{SpaceKey, Store};

use crate::limits::{HANDIN_ZIP_CHANNEL_DEPTH, HANDIN_ZIP_FLUSH_BYTES};

/// The archive's bytes as the response body reads them.
pub struct ZipBody {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl Stream for ZipBody {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Where the zip writer puts its bytes: a buffer the producer empties into the channel.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl futures::io::AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.lock().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

type Tx = tokio::sync::mpsc::Sender<io::Result<Bytes>>;

/// Sends what the buffer holds once it is at least `min` bytes; false when the client left.
async fn drain(buf: &Shared, tx: &Tx, min: usize) -> bool {
    let out = {
        let mut b = buf.0.lock();
        if b.len() < min || b.is_empty() {
            return true;
        }
        std::mem::take(&mut *b)
    };
    tx.send(Ok(Bytes::from(out))).await.is_ok()
}

fn zip_time(ns: i64) -> async_zip::ZipDateTime {
    let secs = ns.max(0) / 1_000_000_000;
    let (y, m, d) = crate::http::date::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    ZipDateTimeBuilder::new()
        .year(y as i32)
        .month(m)
        .day(d)
        .hour((sod / 3600) as u32)
        .minute((sod / 60 % 60) as u32)
        .second((sod % 60) as u32)
        .build()
}

/// Starts writing the archive of everything in `space` (one folder per pupil at its root)
/// and returns its body; a failure half way ends the body with an error (the client sees
/// a broken transfer, never a short archive that looks whole).
pub fn stream(store: Store, space: SpaceKey) -> ZipBody {
    let (tx, rx) = tokio::sync::mpsc::channel(HANDIN_ZIP_CHANNEL_DEPTH);
    tokio::spawn(async move {
        if let Err(e) = write_all(&store, &space, &tx).await {
            tracing::warn!(error = %e, space = %space, "hand-in zip not finished");
            let _ = tx.send(Err(e)).await;
        }
    });
    ZipBody { rx }
}

async fn write_all(store: &Store, space: &SpaceKey, tx: &Tx) -> io::Result<()> {
    let buf = Shared::default();
    let mut zip = ZipFileWriter::new(buf.clone());
    // Depth-first, names sorted as the engine lists them.
    let mut stack: Vec<Vec<Name>> = vec![Vec::new()];
    while let Some(dir) = stack.pop() {
        let (_, children) = store.list(space, &dir).map_err(io::Error::other)?;
        let mut subdirs = Vec::new();
        for c in children {
            let mut path = dir.clone();
            path.push(Name::new(&c.name).map_err(io::Error::other)?);
            let name: String = path
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join("/");
            if c.kind == Kind::Dir {
                let entry = ZipEntryBuilder::new(format!("{name}/").into(), Compression::Stored)
                    .last_modification_date(zip_time(c.mtime));
                zip.write_entry_whole(entry, &[])
                    .await
                    .map_err(io::Error::other)?;
                if !drain(&buf, tx, HANDIN_ZIP_FLUSH_BYTES).await {
                    return Ok(());
                }
                subdirs.push(path);
                continue;
            }
            let entry = ZipEntryBuilder::new(name.into(), Compression::Stored)
                .last_modification_date(zip_time(c.mtime));
            let mut w = zip
                .write_entry_stream(entry)
                .await
                .map_err(io::Error::other)?;
            let mut content = store
                .read_entry(space, &c, None)
                .map_err(io::Error::other)?;
            while let Some(chunk) = content.next().await {
                let chunk = chunk.map_err(io::Error::other)?;
                w.write_all(&chunk).await?;
                if !drain(&buf, tx, HANDIN_ZIP_FLUSH_BYTES).await {
                    return Ok(());
                }
            }
            w.close().await.map_err(io::Error::other)?;
            if !drain(&buf, tx, HANDIN_ZIP_FLUSH_BYTES).await {
                return Ok(());
            }
        }
        // Pushed in reverse so that they come out in listing order.
        stack.extend(subdirs.into_iter().rev());
    }
    zip.close().await.map_err(io::Error::other)?;
    drain(&buf, tx, 0).await;
    Ok(())
}
