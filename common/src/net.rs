//! Framing over QUIC streams: the one piece of I/O both sides share.
//!
//! Thin async adapters around [`crate::proto`]: the frame's length is read
//! and checked against [`MAX_FRAME`] before its body is allocated.

use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream};
use serde::Serialize;
use thiserror::Error;

use crate::proto::{self, HEADER_LEN, MAX_FRAME, Message, ProtoError};

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The stream ended before a whole frame arrived.
    #[error("stream ended in the middle of a message")]
    Truncated,
    /// The stream or connection failed.
    #[error("stream error: {0}")]
    Stream(String),
}

/// Reads one frame and decodes it.
pub async fn read_frame<T: Message>(recv: &mut RecvStream) -> Result<T, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact(recv, &mut header).await?;
    let len = proto::decode_header(header)?;
    debug_assert!(len <= MAX_FRAME);
    // The buffer grows as bytes arrive: a header that announces 1 MiB and
    // then nothing costs the reader nothing.
    let mut body = Vec::with_capacity(len.min(FRAME_CHUNK));
    while body.len() < len {
        let want = (len - body.len()).min(FRAME_CHUNK);
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(FrameError::Truncated),
            Err(e) => return Err(FrameError::Stream(e.to_string())),
        }
    }
    Ok(proto::decode(&body)?)
}

/// Largest piece of a frame read at once.
const FRAME_CHUNK: usize = 16 * 1024;

async fn read_exact(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), FrameError> {
    recv.read_exact(buf).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
        quinn::ReadExactError::ReadError(e) => FrameError::Stream(e.to_string()),
    })
}

/// Encodes and writes one frame.
pub async fn write_frame<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<(), FrameError> {
    let frame = proto::encode(msg)?;
    send.write_all(&frame)
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))
}

/// Why a batch could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Nothing arrived for this long.
    #[error("nothing arrived for {} s", .0.as_secs())]
    Stalled(Duration),
    /// The stream or connection failed.
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
}

/// Reads what arrives on `recv` in batches of at least `target` bytes
/// (fewer only at the end of the stream), `None` at its end.
///
/// QUIC hands over one packet's payload (about 1.4 KB) per chunk; a
/// consumer on another thread that is woken for each of them spends more
/// time switching than working, so chunks are gathered into one buffer
/// per batch. They are copied, not kept: each chunk is a slice of a whole
/// receive buffer (up to 64 datagrams), and a peer sending tiny frames
/// could make kept slices pin a hundred times their size. A batch holds
/// exactly its bytes.
///
/// `stall` bounds the wait for each packet, not for the whole batch, so a
/// slow but steady sender is not cut off. What a failed call had gathered
/// is dropped with it.
pub async fn read_batch(
    recv: &mut RecvStream,
    target: usize,
    stall: Option<Duration>,
) -> Result<Option<Bytes>, BatchError> {
    let mut batch = bytes::BytesMut::new();
    let mut bufs: [Bytes; 32] = std::array::from_fn(|_| Bytes::new());
    while batch.len() < target {
        let read = recv.read_chunks(&mut bufs);
        let got = match stall {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| BatchError::Stalled(limit))??,
            None => read.await?,
        };
        let Some(n) = got else { break };
        for b in &mut bufs[..n] {
            if batch.capacity() == 0 {
                batch.reserve(target.max(b.len()));
            }
            batch.extend_from_slice(b);
            *b = Bytes::new();
        }
    }
    Ok((!batch.is_empty()).then(|| batch.freeze()))
}
