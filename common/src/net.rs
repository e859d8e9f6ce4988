//! Framing over QUIC streams: the one piece of I/O both sides share.
//!
//! Thin async adapters around [`crate::proto`]: the frame's length is read
//! and checked against [`MAX_FRAME`] before its body is allocated.

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
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body).await?;
    Ok(proto::decode(&body)?)
}

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
