//! Framing over QUIC streams: the one piece of I/O both sides share.
//!
//! Thin async adapters around [`crate::proto`]: the frame's length is read
//! and checked against [`MAX_FRAME`] before its body is allocated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use quinn::{RecvStream, SendStream, VarInt};
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
    read_frame_counted(recv).await.map(|(msg, _)| msg)
}

/// [`read_frame`], and how many bytes of the stream the frame took (where
/// a [`Reassembler`] for what follows it starts).
pub async fn read_frame_counted<T: Message>(recv: &mut RecvStream) -> Result<(T, u64), FrameError> {
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
    Ok((proto::decode(&body)?, (HEADER_LEN + len) as u64))
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
    /// The peer kept a hole open while sending this much beyond it.
    #[error("{0} bytes arrived ahead of a hole that was never filled")]
    TooFarAhead(usize),
    /// The stream ended with a hole at this offset.
    #[error("the stream ended with bytes missing at offset {0}")]
    Holes(u64),
}

/// Out-of-order bytes the readers of one connection's streams hold
/// together (see [`Reassembler`]), and the connection receive window that
/// keeps them bounded.
///
/// A [`Reassembler`] reads a stream out of order, and quinn credits flow
/// control for every byte read, in order or not: left alone, what waits
/// for a hole to be filled would no longer count against the receive
/// window, and a peer could send without bound past a hole it keeps open.
/// So the connection's receive window shrinks by what is held (quinn takes
/// a shrink out of later credits): the peer may send at most `window`
/// bytes past what was handed over in order, as with ordered reads, while
/// quinn's own buffer stays empty. The window is adjusted in steps of a
/// sixteenth. Held bytes past twice the window (which flow control should
/// make impossible) fail the stream.
#[derive(Debug)]
pub struct HoldLimit {
    held: AtomicUsize,
    window: usize,
    conn: Option<quinn::Connection>,
    /// The held count the connection's window was last set for.
    applied: AtomicUsize,
    adjusting: std::sync::Mutex<()>,
}

impl HoldLimit {
    /// The readers of `conn`'s streams, whose connection receive window is
    /// `window` (as set last, e.g. by [`crate::tls::fit_windows`]).
    pub fn for_connection(conn: &quinn::Connection, window: u64) -> Arc<Self> {
        Self::build(Some(conn.clone()), window)
    }

    /// Counts held bytes against `window` without adjusting a connection.
    pub fn new(window: u64) -> Arc<Self> {
        Self::build(None, window)
    }

    fn build(conn: Option<quinn::Connection>, window: u64) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            window: usize::try_from(window).unwrap_or(usize::MAX).max(1),
            conn,
            applied: AtomicUsize::new(0),
            adjusting: std::sync::Mutex::new(()),
        })
    }

    /// Bytes held now by all readers sharing this bound.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) -> usize {
        let held = self.held.fetch_add(n, Ordering::Relaxed) + n;
        self.adjust(held);
        held
    }

    fn release(&self, n: usize) {
        let held = self.held.fetch_sub(n, Ordering::Relaxed) - n;
        self.adjust(held);
    }

    /// Sets the connection's receive window to `window` less what is held,
    /// once that moved by a step since it was last set.
    fn adjust(&self, held: usize) {
        let Some(conn) = &self.conn else { return };
        let step = self.window / 16;
        if held.abs_diff(self.applied.load(Ordering::Relaxed)) < step.max(1) {
            return;
        }
        let Ok(_one) = self.adjusting.lock() else {
            return;
        };
        // The latest count, not the one this caller saw: callers race.
        let held = self.held();
        self.applied.store(held, Ordering::Relaxed);
        let window = self.window.saturating_sub(held).max(step);
        conn.set_receive_window(VarInt::from_u64(window as u64).unwrap_or(VarInt::MAX));
    }
}

/// Reads the rest of a stream (after its frame) out of order and hands it
/// over in order, in batches.
///
/// quinn-proto closes a connection when one stream's receive buffer holds
/// more than 1,024 separate pieces ("too many gaps in stream buffer",
/// `../shared/FIELD-NOTES.md`); a burst of losses on a long, fast path
/// leaves that many holes in a window of megabytes. Read unordered
/// (`read_chunk(_, false)`), nothing waits in quinn's buffer: each piece
/// is taken as it arrives, and the pieces that arrive ahead of a hole wait
/// here, copied into a map by offset, until the hole is filled. quinn hands
/// over the lowest offset it has first, so a filled hole is read before
/// anything behind it. What waits here is bounded through a [`HoldLimit`]
/// shared by the connection's streams.
#[derive(Debug)]
pub struct Reassembler {
    /// Stream offset of the next byte to hand over.
    next: u64,
    /// Pieces that arrived ahead of `next`, by offset (copied: a piece is a
    /// slice of a whole receive buffer and would pin it).
    held: BTreeMap<u64, Bytes>,
    held_bytes: usize,
    limit: Arc<HoldLimit>,
}

impl Reassembler {
    /// A reader of the stream from offset `next` on: the bytes before it
    /// (the frame) were read in order. `limit` is the connection's.
    pub fn new(next: u64, limit: Arc<HoldLimit>) -> Self {
        Self {
            next,
            held: BTreeMap::new(),
            held_bytes: 0,
            limit,
        }
    }

    /// Stream offset of the next byte to hand over.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Bytes this reader holds ahead of a hole.
    pub fn held(&self) -> usize {
        self.held_bytes
    }

    /// Separate pieces this reader holds ahead of a hole.
    pub fn held_pieces(&self) -> usize {
        self.held.len()
    }

    /// Reads what arrives on `recv` in batches of at least `target` bytes
    /// (fewer only at the end of the stream), `None` at its end.
    ///
    /// QUIC hands over one packet's payload (about 1.4 KB) per piece; a
    /// consumer on another thread that is woken for each of them spends
    /// more time switching than working, so pieces are gathered into one
    /// buffer per batch, copied (see [`Reassembler`]). A batch holds
    /// exactly its bytes.
    ///
    /// `stall` bounds the wait for each packet, not for the whole batch, so
    /// a slow but steady sender is not cut off. What a failed call had
    /// gathered is dropped with it.
    pub async fn read_batch(
        &mut self,
        recv: &mut RecvStream,
        target: usize,
        stall: Option<Duration>,
    ) -> Result<Option<Bytes>, BatchError> {
        let mut batch = bytes::BytesMut::new();
        while batch.len() < target {
            let read = recv.read_chunk(usize::MAX, false);
            let got = match stall {
                Some(limit) => tokio::time::timeout(limit, read)
                    .await
                    .map_err(|_| BatchError::Stalled(limit))??,
                None => read.await?,
            };
            let Some(chunk) = got else {
                if self.held_bytes > 0 {
                    // quinn dedups unordered pieces, so every byte up to
                    // the end was handed over; a hole here is a bug or a
                    // duplicate counted twice, never data to trust.
                    return Err(BatchError::Holes(self.next));
                }
                break;
            };
            if batch.capacity() == 0 {
                batch.reserve(target.max(chunk.bytes.len()));
            }
            self.accept(chunk.offset, chunk.bytes, &mut batch)?;
        }
        Ok((!batch.is_empty()).then(|| batch.freeze()))
    }

    /// Takes the piece at `offset`: appended to `out` if it is next (with
    /// whatever it lets follow), else held.
    fn accept(
        &mut self,
        offset: u64,
        mut bytes: Bytes,
        out: &mut bytes::BytesMut,
    ) -> Result<(), BatchError> {
        let end = offset + bytes.len() as u64;
        if end <= self.next {
            return Ok(());
        }
        if offset > self.next {
            let len = bytes.len();
            match self.held.get(&offset) {
                Some(have) if have.len() >= len => return Ok(()),
                Some(have) => {
                    let old = have.len();
                    self.held_bytes -= old;
                    self.limit.release(old);
                }
                None => {}
            }
            self.held.insert(offset, Bytes::copy_from_slice(&bytes));
            self.held_bytes += len;
            if self.limit.add(len) > self.limit.window.saturating_mul(2) {
                return Err(BatchError::TooFarAhead(self.held_bytes));
            }
            return Ok(());
        }
        bytes.advance((self.next - offset) as usize);
        out.extend_from_slice(&bytes);
        self.next = end;
        let mut released = 0;
        while let Some(entry) = self.held.first_entry() {
            let at = *entry.key();
            if at > self.next {
                break;
            }
            let piece = entry.remove();
            released += piece.len();
            let piece_end = at + piece.len() as u64;
            if piece_end > self.next {
                out.extend_from_slice(&piece[(self.next - at) as usize..]);
                self.next = piece_end;
            }
        }
        if released > 0 {
            self.held_bytes -= released;
            self.limit.release(released);
        }
        Ok(())
    }
}

impl Drop for Reassembler {
    fn drop(&mut self) {
        if self.held_bytes > 0 {
            self.limit.release(self.held_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: u64, len: usize) -> (u64, Bytes) {
        let bytes: Vec<u8> = (offset..offset + len as u64).map(|i| i as u8).collect();
        (offset, Bytes::from(bytes))
    }

    fn feed(r: &mut Reassembler, pieces: &[(u64, usize)]) -> Result<Vec<u8>, BatchError> {
        let mut out = bytes::BytesMut::new();
        for &(o, n) in pieces {
            let (o, b) = piece(o, n);
            r.accept(o, b, &mut out)?;
        }
        Ok(out.to_vec())
    }

    fn expect(from: u64, to: u64) -> Vec<u8> {
        (from..to).map(|i| i as u8).collect()
    }

    #[test]
    fn pieces_come_out_in_order_whatever_order_they_arrive_in() {
        let limit = HoldLimit::new(1 << 20);
        let mut r = Reassembler::new(100, limit.clone());
        // Ahead of a hole: held, nothing handed over.
        assert!(feed(&mut r, &[(300, 100), (200, 100)]).unwrap().is_empty());
        assert_eq!((r.held(), limit.held()), (200, 200));
        // The hole filled: everything up to 400 follows at once.
        assert_eq!(feed(&mut r, &[(100, 100)]).unwrap(), expect(100, 400));
        assert_eq!((r.held(), limit.held(), r.position()), (0, 0, 400));
    }

    #[test]
    fn stale_overlapping_and_duplicate_pieces_are_trimmed() {
        let limit = HoldLimit::new(1 << 20);
        let mut r = Reassembler::new(0, limit.clone());
        let out = feed(
            &mut r,
            &[
                (0, 50),
                (0, 50),   // stale
                (20, 60),  // overlaps what was handed over
                (200, 10), // held
                (200, 30), // the same offset, longer: replaces it
                (200, 5),  // shorter: ignored
                (150, 60), // held, overlaps the one at 200
            ],
        )
        .unwrap();
        assert_eq!(out, expect(0, 80));
        assert_eq!((r.held(), limit.held()), (90, 90));
        assert_eq!(feed(&mut r, &[(80, 70)]).unwrap(), expect(80, 230));
        assert_eq!((r.held(), limit.held(), r.position()), (0, 0, 230));
    }

    #[test]
    fn the_limit_is_shared_and_enforced() {
        let limit = HoldLimit::new(1000);
        let mut a = Reassembler::new(0, limit.clone());
        let mut b = Reassembler::new(0, limit.clone());
        feed(&mut a, &[(100, 600)]).unwrap();
        feed(&mut b, &[(100, 600)]).unwrap();
        assert_eq!(limit.held(), 1200);
        // Past twice the window the stream fails.
        let err = feed(&mut b, &[(800, 900)]).unwrap_err();
        assert!(matches!(err, BatchError::TooFarAhead(_)), "{err}");
        // What a reader held is released when it goes.
        drop(b);
        assert_eq!(limit.held(), 600);
        drop(a);
        assert_eq!(limit.held(), 0);
    }
}
