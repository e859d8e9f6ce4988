//! Large files that are streamed once and not read back soon.
//!
//! A transfer of a gigabyte through the page cache fills a gigabyte of
//! memory with pages nobody reads again, and on a virtual machine each
//! freshly touched page is expensive: on the 2-core VM this project is
//! measured on, `dd` writes 1 GiB through the page cache in 1.96 CPU-seconds
//! and with `O_DIRECT` in 0.25. So [`DirectFile`] writes and [`DirectRead`]
//! reads with `O_DIRECT` from the first block-aligned offset on, through
//! a block-aligned buffer of their own, and fall back to the page cache for
//! what cannot be aligned (an unaligned start, the last partial block) and
//! wherever the file system refuses `O_DIRECT` (tmpfs, some network file
//! systems). In the fallback they ask the kernel, as they go, to drop the
//! cache of what lies a few MiB behind the cursor.
//!
//! Durability is unchanged: `O_DIRECT` bypasses the cache, not the disk's
//! write cache, so callers still fsync before they acknowledge anything.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;

/// Alignment of offsets, lengths and memory for `O_DIRECT` (the largest
/// logical block size in common use).
pub const ALIGN: usize = 4096;
/// How far behind the cursor the cache is dropped (fallback only).
const LAG: u64 = 16 << 20;
/// How often (in bytes) to drop.
const EVERY: u64 = 8 << 20;

/// A block-aligned window into an over-allocated buffer (no `unsafe`).
///
/// Buffers of the usual size ([`POOLED`] bytes of window) come from a
/// small process-wide pool and go back to it when dropped: allocated once
/// rather than per transfer, they do not pile up in the allocator's
/// per-thread arenas (with glibc, a server whose blocking threads each
/// allocated and freed transfer buffers saw its peak RSS creep up
/// transfer after transfer).
#[derive(Debug)]
struct Aligned {
    buf: Vec<u8>,
    at: usize,
    cap: usize,
}

/// Window size of the pooled buffers.
pub const POOLED: usize = 1 << 20;
/// Buffers the pool keeps at most (the rest are freed).
const POOL_MAX: usize = 8;
static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

impl Aligned {
    fn new(cap: usize) -> Self {
        let cap = cap.max(ALIGN).div_ceil(ALIGN) * ALIGN;
        let pooled = (cap == POOLED)
            .then(|| POOL.lock().ok().and_then(|mut p| p.pop()))
            .flatten();
        let buf = pooled.unwrap_or_else(|| vec![0u8; cap + ALIGN]);
        // For a byte pointer the offset always exists and is below ALIGN.
        let at = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self { buf, at, cap }
    }

    fn empty() -> Self {
        Self {
            buf: Vec::new(),
            at: 0,
            cap: 0,
        }
    }

    fn window(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.cap]
    }

    fn window_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..self.at + self.cap]
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        if self.cap == POOLED && self.buf.len() == POOLED + ALIGN {
            if let Ok(mut pool) = POOL.lock() {
                if pool.len() < POOL_MAX {
                    pool.push(std::mem::take(&mut self.buf));
                }
            }
        }
    }
}

/// The first `len` bytes of an [`Aligned`] buffer, owned by a [`Bytes`].
#[derive(Debug)]
struct Filled {
    buf: Aligned,
    len: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.buf.window()[..self.len]
    }
}

/// Cache bookkeeping for the page-cache fallback.
#[derive(Debug)]
struct Dropper {
    pos: u64,
    dropped: u64,
}

impl Dropper {
    /// `n` bytes went past the cache (O_DIRECT): nothing to drop there.
    fn skip(&mut self, n: usize) {
        self.pos += n as u64;
        self.dropped = self.pos;
    }

    fn advance(&mut self, file: &File, n: usize) {
        self.pos += n as u64;
        if self.pos >= self.dropped + LAG + EVERY {
            let upto = self.pos - LAG;
            // Starts writeback of dirty pages in the range and drops the
            // clean ones; what is still dirty goes on a later call.
            advise_dont_need(file, 0, std::num::NonZeroU64::new(upto));
            self.dropped = upto;
        }
    }
}

/// Buffers of a [`DirectFile`]: one being filled, the others being
/// written by its writer thread.
const DEPTH: usize = 3;

/// Where a [`DirectFile`]'s buffers go: the file, with or without
/// `O_DIRECT`.
#[derive(Debug)]
struct Sink {
    file: Arc<File>,
    direct: bool,
    cache: Dropper,
}

impl Sink {
    /// Leaves `O_DIRECT` for good (for an unaligned tail, or a file system
    /// that refuses it).
    fn leave_direct(&mut self) {
        if self.direct {
            set_direct(&self.file, false);
            self.direct = false;
        }
    }

    /// Writes `data` (block-aligned in memory) at the cursor.
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match (&*self.file).write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    if self.direct {
                        self.cache.skip(n);
                        if n % ALIGN != 0 {
                            // A short write off a block boundary (a full
                            // disk, say): carry on through the cache.
                            self.leave_direct();
                        }
                    } else {
                        self.cache.advance(&self.file, n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                    // The file system does not take O_DIRECT after all.
                    self.leave_direct();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writer threads at most in the process (each [`DirectFile`] larger than
/// one buffer starts one); beyond, writes happen on the caller's thread.
const MAX_WRITERS: usize = 64;
static WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`MAX_WRITERS`] writer threads, released on drop.
#[derive(Debug)]
struct WriterSlot;

impl WriterSlot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering;
        WRITERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WRITERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self)
    }
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        WRITERS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A full buffer on its way to the writer thread, and back.
type Job = (Aligned, usize);
type Done = (Aligned, io::Result<()>);

#[derive(Debug)]
enum Writer {
    /// No thread: the sink is here (small files never start one).
    Idle(Sink),
    /// A thread writes full buffers in order while the next one fills.
    Busy {
        jobs: std::sync::mpsc::SyncSender<Job>,
        done: std::sync::mpsc::Receiver<Done>,
        thread: std::thread::JoinHandle<Sink>,
    },
    /// Between the two.
    Gone,
}

/// A [`File`] written sequentially from a given offset, with `O_DIRECT`
/// where it can be (see the module documentation). Full buffers are
/// written by a thread of its own, so the caller fills the next buffer
/// (and hashes, decrypts, receives) while the disk works on the last.
///
/// Bytes are buffered until a buffer is full or [`Write::flush`] is
/// called; dropping a `DirectFile` without flushing loses the bytes of
/// the buffer being filled (an upload that is abandoned deletes its file
/// anyway). A flush that leaves the cursor off a block boundary (the
/// file's last partial block) writes that block through the page cache,
/// and later writes go the same way.
#[derive(Debug)]
pub struct DirectFile {
    file: Arc<File>,
    cur: Aligned,
    len: usize,
    spare: Vec<Aligned>,
    buffers: usize,
    writer: Writer,
    /// The first failure of the writer thread, reported on every call.
    failed: Option<(io::ErrorKind, String)>,
}

impl DirectFile {
    /// Wraps `file`, whose next write lands at offset `start`, with
    /// buffers of about `cap` bytes.
    pub fn new(file: File, start: u64, cap: usize) -> Self {
        let direct = start.is_multiple_of(ALIGN as u64) && set_direct(&file, true);
        let file = Arc::new(file);
        Self {
            cur: Aligned::new(cap),
            len: 0,
            spare: Vec::new(),
            buffers: 1,
            writer: Writer::Idle(Sink {
                file: file.clone(),
                direct,
                cache: Dropper {
                    pos: start,
                    dropped: start,
                },
            }),
            file,
            failed: None,
        }
    }

    /// The file (what has not been flushed is not in it yet).
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Asks the kernel to drop the whole file's cache (after an fsync,
    /// every page is clean and goes).
    pub fn drop_cache(&self) {
        advise_dont_need(&self.file, 0, None);
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    fn note(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if self.failed.is_none() {
                self.failed = Some((e.kind(), e.to_string()));
            }
        }
    }

    /// Starts the writer thread with the sink.
    /// Whether a writer thread runs (or was started now). Beyond
    /// [`MAX_WRITERS`] in the process, none is started and the caller
    /// writes its buffers itself.
    fn start(&mut self) -> io::Result<bool> {
        match self.writer {
            Writer::Busy { .. } => return Ok(true),
            Writer::Gone => return Err(stopped()),
            Writer::Idle(_) => {}
        }
        let Some(slot) = WriterSlot::take() else {
            return Ok(false);
        };
        let Writer::Idle(mut sink) = std::mem::replace(&mut self.writer, Writer::Gone) else {
            return Err(stopped());
        };
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(DEPTH);
        let (tx, done) = std::sync::mpsc::channel::<Done>();
        // Should no thread be had, the upload fails (the sink goes with
        // the closure) and says why.
        let thread = std::thread::Builder::new()
            .name("direct-write".into())
            .spawn(move || {
                let _slot = slot;
                let mut ok = true;
                while let Ok((buf, len)) = rx.recv() {
                    let r = if ok {
                        sink.write(&buf.window()[..len])
                    } else {
                        Err(io::Error::other("an earlier write failed"))
                    };
                    ok &= r.is_ok();
                    if tx.send((buf, r)).is_err() {
                        break;
                    }
                }
                sink
            })?;
        self.writer = Writer::Busy { jobs, done, thread };
        Ok(true)
    }

    /// Hands the full buffer to the writer thread and takes an empty one.
    fn submit(&mut self) -> io::Result<()> {
        self.check()?;
        if !self.start()? {
            // No thread to spare: write it here.
            let len = std::mem::take(&mut self.len);
            let Writer::Idle(sink) = &mut self.writer else {
                return Err(stopped());
            };
            let r = sink.write(&self.cur.window()[..len]);
            self.note(r);
            return self.check();
        }
        let next = if let Some(b) = self.spare.pop() {
            b
        } else if self.buffers < DEPTH {
            self.buffers += 1;
            Aligned::new(self.cur.cap)
        } else {
            let Writer::Busy { done, .. } = &self.writer else {
                return Err(stopped());
            };
            let (b, r) = done.recv().map_err(|_| stopped())?;
            self.note(r);
            b
        };
        let full = std::mem::replace(&mut self.cur, next);
        let len = std::mem::take(&mut self.len);
        let Writer::Busy { jobs, .. } = &self.writer else {
            return Err(stopped());
        };
        jobs.send((full, len)).map_err(|_| stopped())?;
        self.check()
    }

    /// Waits for the writer thread to write everything handed to it, and
    /// takes the sink back.
    fn settle(&mut self) -> io::Result<&mut Sink> {
        if let Writer::Busy { .. } = self.writer {
            let Writer::Busy { jobs, done, thread } =
                std::mem::replace(&mut self.writer, Writer::Gone)
            else {
                return Err(stopped());
            };
            drop(jobs);
            let sink = thread.join().map_err(|_| stopped())?;
            while let Ok((b, r)) = done.try_recv() {
                self.note(r);
                self.spare.push(b);
            }
            self.writer = Writer::Idle(sink);
        }
        self.check()?;
        match &mut self.writer {
            Writer::Idle(sink) => Ok(sink),
            _ => Err(stopped()),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the disk writer stopped")
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.len == self.cur.cap {
            self.submit()?;
        }
        let n = data.len().min(self.cur.cap - self.len);
        let len = self.len;
        self.cur.window_mut()[len..len + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let len = std::mem::take(&mut self.len);
        let whole = len / ALIGN * ALIGN;
        // The sink lives in `self.writer`, the bytes in `self.cur`: move
        // the buffer out while writing it.
        let cur = std::mem::replace(&mut self.cur, Aligned::empty());
        let r = self.settle().and_then(|sink| {
            sink.write(&cur.window()[..whole])?;
            if whole < len {
                sink.leave_direct();
                sink.write(&cur.window()[whole..len])?;
            }
            Ok(())
        });
        self.cur = cur;
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| (e.kind(), e.to_string()));
        }
        r
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // Let the writer thread finish what it has before the file closes.
        let _ = self.settle();
    }
}

/// Reads a [`File`] sequentially from a given offset, in chunks, with
/// `O_DIRECT` from the first block boundary on where it can be (see the
/// module documentation). Each chunk is a [`Bytes`] of its own that can be
/// handed on (to a QUIC stream, say) without a copy.
#[derive(Debug)]
pub struct DirectRead {
    file: File,
    cap: usize,
    pos: u64,
    tried: bool,
    direct: bool,
    cache: Dropper,
}

impl DirectRead {
    /// Wraps `file`, positioned at `start`, with chunks of about `cap`
    /// bytes ([`POOLED`] reuses buffers).
    pub fn new(file: File, start: u64, cap: usize) -> Self {
        Self {
            file,
            cap,
            pos: start,
            tried: false,
            direct: false,
            cache: Dropper {
                pos: start,
                dropped: start,
            },
        }
    }

    /// The next chunk; empty at the end of the file.
    pub fn next_chunk(&mut self) -> io::Result<Bytes> {
        let mut buf = Aligned::new(self.cap);
        let head = self.pos % ALIGN as u64;
        // An unaligned start is read through the cache up to the next
        // block boundary; from there on, O_DIRECT if the file system
        // takes it (asked once).
        let want = if head != 0 {
            ALIGN - usize::try_from(head).unwrap_or(0)
        } else {
            if !self.tried {
                self.tried = true;
                self.direct = set_direct(&self.file, true);
            }
            buf.cap
        };
        let n = loop {
            match self.file.read(&mut buf.window_mut()[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                    set_direct(&self.file, false);
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        };
        self.pos += n as u64;
        if self.direct {
            self.cache.skip(n);
        } else {
            self.cache.advance(&self.file, n);
        }
        Ok(Bytes::from_owner(Filled { buf, len: n }))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const EINVAL: i32 = 22;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const EINVAL: i32 = -1;

/// Turns `O_DIRECT` on or off; false when that is not possible here.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_direct(file: &File, on: bool) -> bool {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let Ok(flags) = fcntl_getfl(file) else {
        return false;
    };
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags).is_ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_direct(_: &File, _: bool) -> bool {
    false
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn advise_dont_need(file: &File, offset: u64, len: Option<std::num::NonZeroU64>) {
    // Advice only: a failure changes nothing but speed.
    let _ = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn advise_dont_need(_: &File, _: u64, _: Option<std::num::NonZeroU64>) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writer threads are counted process-wide ([`WRITERS`]): the tests
    /// that start them run one at a time, so one test's count is not
    /// another's.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn read_all(path: &std::path::Path, start: u64, cap: usize) -> Vec<u8> {
        let mut f = File::open(path).unwrap();
        io::Seek::seek(&mut f, io::SeekFrom::Start(start)).unwrap();
        let mut r = DirectRead::new(f, start, cap);
        let mut out = Vec::new();
        loop {
            let c = r.next_chunk().unwrap();
            if c.is_empty() {
                return out;
            }
            out.extend_from_slice(&c);
        }
    }

    #[test]
    fn aligned_and_unaligned_writes_and_reads_round_trip() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(3 * (1 << 20) + 4097);
        // Start offsets: aligned, unaligned; chunk sizes that straddle the
        // buffer and block boundaries; a flush in the middle (aligned and
        // not) as the pull path does after each part.
        for (start, chunk, mid_flush) in [
            (0u64, 65_536 + 16, None),
            (0, 1, Some(8192)),
            (0, 300_000, Some(1_000_001)),
            (4096, 4096, Some(4096 * 5)),
            (17, 70_000, None),
        ] {
            let path = dir.path().join(format!("f-{start}-{chunk}"));
            let prefix = pattern(usize::try_from(start).unwrap());
            std::fs::write(&path, &prefix).unwrap();
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            io::Seek::seek(&mut f, io::SeekFrom::Start(start)).unwrap();
            let mut w = DirectFile::new(f, start, 1 << 20);
            let mut done = 0;
            for c in data.chunks(chunk) {
                w.write_all(c).unwrap();
                done += c.len();
                if mid_flush.is_some_and(|m| done >= m && done - c.len() < m) {
                    w.flush().unwrap();
                }
            }
            w.flush().unwrap();
            w.get_ref().sync_all().unwrap();
            drop(w);
            let mut want = prefix.clone();
            want.extend_from_slice(&data);
            let back = std::fs::read(&path).unwrap();
            assert_eq!(back.len(), want.len(), "start {start} chunk {chunk}");
            assert!(back == want, "start {start} chunk {chunk}: bytes differ");
            for from in [0u64, 1, 4095, 4096, 5000, want.len() as u64] {
                let got = read_all(&path, from, 1 << 20);
                assert!(
                    got == want[usize::try_from(from).unwrap()..],
                    "read from {from} of start {start} chunk {chunk} differs"
                );
            }
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_failed_background_write_fails_the_writer() {
        let _serial = serial();
        // /dev/full refuses every write with ENOSPC: the full buffers go
        // to the writer thread, and its failure must come back to the
        // caller (before anyone fsyncs and acknowledges).
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut w = DirectFile::new(full, 0, 64 * 1024);
        let data = pattern(1 << 20);
        let wrote = w.write_all(&data);
        let flushed = w.flush();
        assert!(
            wrote.is_err() || flushed.is_err(),
            "writing to /dev/full reported success"
        );
        // And it stays failed.
        assert!(w.write_all(&data[..ALIGN]).is_err() || w.flush().is_err());
    }

    #[test]
    fn beyond_the_writer_threads_buffers_are_written_inline() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(5 * 8192 + 100);
        let mut open: Vec<DirectFile> = (0..MAX_WRITERS + 6)
            .map(|i| {
                let f = File::create(dir.path().join(i.to_string())).unwrap();
                let mut w = DirectFile::new(f, 0, 8192);
                w.write_all(&data).unwrap();
                w
            })
            .collect();
        // Every slot is taken by these files: the last ones wrote their
        // buffers on this thread.
        assert_eq!(
            WRITERS.load(std::sync::atomic::Ordering::Acquire),
            MAX_WRITERS
        );
        for w in &mut open {
            w.flush().unwrap();
        }
        drop(open);
        for i in 0..MAX_WRITERS + 6 {
            let back = std::fs::read(dir.path().join(i.to_string())).unwrap();
            assert!(back == data, "file {i} differs");
        }
    }

    #[test]
    fn unflushed_bytes_are_not_written() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectFile::new(File::create(&path).unwrap(), 0, 8192);
        w.write_all(&pattern(10_000)).unwrap();
        drop(w);
        // The first full buffer went out; the rest was never flushed.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    }
}
