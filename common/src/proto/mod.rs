//! The Matterdrop wire protocol, version 1 (ALPN `matterdrop/1`).
//!
//! Pure encode/decode, no I/O. One request per bidirectional QUIC stream:
//! the client writes one [`ClientRequest`] frame, the server answers with one
//! [`ServerResponse`] frame, then both sides finish the stream. Transfers of
//! file bytes (added with packets) follow their request frame on the same
//! stream.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! [postcard](https://docs.rs/postcard)-encoded message. The length is checked
//! against [`MAX_FRAME`] before anything is allocated, and a body with
//! trailing bytes is refused.
//!
//! Message kinds are numbered by their position in the enums below (postcard
//! encodes an enum variant as a varint index). Variants are only ever
//! appended; a retired kind keeps its number and is documented as "removed
//! since vN", never reused. An unknown kind is answered with
//! [`ErrorCode::UnknownKind`].

mod messages;

pub use messages::*;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// ALPN protocol id; the version lives here.
pub const ALPN: &[u8] = b"matterdrop/1";

/// Protocol versions this build speaks, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// `matterdrop/1`.
    V1,
}

impl ProtocolVersion {
    /// Every supported version.
    pub const ALL: &'static [Self] = &[Self::V1];

    /// The ALPN id of this version.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Self::V1 => ALPN,
        }
    }
}

/// Largest frame body either side accepts (1 MiB). File contents never travel
/// in frames, so control messages stay far below this.
pub const MAX_FRAME: usize = 1 << 20;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(u64),
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The body decoded but left bytes over.
    #[error("malformed message: {0} trailing bytes")]
    TrailingBytes(usize),
    /// The message kind is not one this version knows.
    #[error("unknown message kind {0}")]
    UnknownKind(u32),
}

/// Encodes a message as a complete frame (header and body).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let mut out = vec![0u8; HEADER_LEN];
    out = postcard::to_extend(msg, out).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let body_len = out.len() - HEADER_LEN;
    if body_len > MAX_FRAME {
        return Err(ProtoError::TooLarge(body_len as u64));
    }
    out[..HEADER_LEN].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(out)
}

/// Reads the body length out of a frame header, refusing oversized frames
/// before the caller allocates anything.
pub fn decode_header(header: [u8; HEADER_LEN]) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge(len as u64));
    }
    Ok(len)
}

/// A message enum whose kinds are numbered by variant position.
pub trait Message: Serialize + DeserializeOwned {
    /// How many kinds this version knows; higher numbers are unknown.
    const KINDS: u32;
}

/// Decodes a frame body: unknown kinds and trailing bytes are refused.
pub fn decode<T: Message>(body: &[u8]) -> Result<T, ProtoError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(ProtoError::TrailingBytes(rest.len())),
        Err(e) => match postcard::take_from_bytes::<u32>(body) {
            Ok((kind, _)) if kind >= T::KINDS => Err(ProtoError::UnknownKind(kind)),
            _ => Err(ProtoError::Malformed(e.to_string())),
        },
    }
}

/// Decodes a complete frame (header and body) held in memory.
pub fn decode_frame<T: Message>(frame: &[u8]) -> Result<T, ProtoError> {
    let Some((header, body)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(ProtoError::Malformed(
            "frame shorter than its header".into(),
        ));
    };
    let len = decode_header(*header)?;
    if body.len() != len {
        return Err(ProtoError::Malformed(format!(
            "frame declares {len} bytes but holds {}",
            body.len()
        )));
    }
    decode(body)
}

#[cfg(test)]
mod tests;
