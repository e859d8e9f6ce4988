//! Writing large files that are streamed once and not read back soon.
//!
//! A transfer of a gigabyte through the page cache fills a gigabyte of
//! memory with dirty pages nobody reads again, and on a virtual machine
//! each freshly touched page is expensive (measured here: 3–4 CPU-seconds
//! per GiB, against 0.5 when pages are recycled). [`StreamFile`] therefore
//! asks the kernel, as it goes, to write back and drop the cache of what
//! it wrote a while ago, so a transfer keeps recycling a few dozen MiB of
//! page cache. Durability is unchanged: callers still fsync before they
//! acknowledge anything.

use std::fs::File;
use std::io::{self, Write};

/// How far behind the write position the cache is dropped.
const LAG: u64 = 16 << 20;
/// How often (in bytes written) to drop.
const EVERY: u64 = 8 << 20;

/// A [`File`] written sequentially from `start`, dropping the page cache
/// of what lies [`LAG`] bytes behind the write position.
#[derive(Debug)]
pub struct StreamFile {
    file: File,
    pos: u64,
    dropped: u64,
}

impl StreamFile {
    /// Wraps `file`, whose next write lands at offset `start`.
    pub fn new(file: File, start: u64) -> Self {
        Self {
            file,
            pos: start,
            dropped: start,
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Asks the kernel to drop the whole file's cache (after an fsync,
    /// every page is clean and goes).
    pub fn drop_cache(&self) {
        advise_dont_need(&self.file, 0, None);
    }

    /// The file.
    pub fn into_inner(self) -> File {
        self.file
    }
}

impl Write for StreamFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        if self.pos >= self.dropped + LAG + EVERY {
            let upto = self.pos - LAG;
            // Starts writeback of dirty pages in the range and drops the
            // clean ones; what is still dirty goes on a later call.
            advise_dont_need(&self.file, 0, std::num::NonZeroU64::new(upto));
            self.dropped = upto;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads a [`File`] sequentially from `start`, dropping the page cache of
/// what lies [`LAG`] bytes behind (for large files read once, such as a
/// blob on its way to a client).
#[derive(Debug)]
pub struct StreamRead {
    file: File,
    pos: u64,
    dropped: u64,
}

impl StreamRead {
    /// Wraps `file`, positioned at `start`.
    pub fn new(file: File, start: u64) -> Self {
        Self {
            file,
            pos: start,
            dropped: start,
        }
    }
}

impl io::Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        if self.pos >= self.dropped + LAG + EVERY {
            let upto = self.pos - LAG;
            advise_dont_need(&self.file, 0, std::num::NonZeroU64::new(upto));
            self.dropped = upto;
        }
        Ok(n)
    }
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
    use std::io::Read as _;

    #[test]
    fn writes_everything_in_order() {
        let dir = std::env::temp_dir().join(format!("streamfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..(40u32 << 20) / 4).flat_map(u32::to_le_bytes).collect();
        let mut w = StreamFile::new(File::create(&path).unwrap(), 0);
        for c in data.chunks(1 << 20) {
            w.write_all(c).unwrap();
        }
        w.get_ref().sync_all().unwrap();
        w.drop_cache();
        drop(w);
        let mut back = Vec::new();
        StreamRead::new(File::open(&path).unwrap(), 0)
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
