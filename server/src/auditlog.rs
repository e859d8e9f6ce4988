//! Durable storage under the audit log: an append-only file of opaque
//! entries, the RFC 6962 leaf hash of each, and the latest signed
//! checkpoint.
//!
//! This module knows nothing about what an entry means or how the Merkle
//! tree is built; it stores bytes, hands back their leaf hashes
//! (`SHA-256(0x00 || payload)`) and never loses an acknowledged entry.
//!
//! # On-disk format
//!
//! The log is one directory (e.g. `DATA/log/`) holding:
//!
//! - `entries`: the records, back to back, with no file header and no
//!   padding. Record `i` holds entry `i`. Each record is
//!
//!   | bytes       | field                                               |
//!   |-------------|-----------------------------------------------------|
//!   | `0..4`      | payload length `n`, u32 big-endian, `1..=65536`     |
//!   | `4..8`      | CRC-32 of the payload (IEEE / zlib polynomial, as   |
//!   |             | computed by `crc32fast`), u32 big-endian            |
//!   | `8..8 + n`  | the payload, opaque bytes                           |
//!
//!   A length of 0 is never written, so a run of zero bytes (what a file
//!   system leaves when a crash extends a file before its data lands) is
//!   never a valid record.
//! - `checkpoint`: the latest signed checkpoint, UTF-8 text stored exactly
//!   as given to [`AppendLog::store_checkpoint`]. It is replaced atomically
//!   by writing `checkpoint.tmp`, fsyncing it, renaming it over
//!   `checkpoint` and fsyncing the directory. A leftover `checkpoint.tmp`
//!   is ignored and overwritten by the next store.
//!
//! Offsets and leaf hashes are not stored; [`AppendLog::open`] rebuilds
//! them by reading the file once from start to end.
//!
//! # Durability
//!
//! [`AppendLog::append`] writes a whole batch with one positional write
//! and calls `fdatasync` before returning, so an entry whose index was
//! returned survives a crash. If the write or the sync fails, the file is
//! cut back to its previous length; if even that fails, the log refuses
//! further appends ([`LogError::Broken`]) until it is reopened.
//!
//! # Recovery at open
//!
//! A crash during an append can leave a torn tail. Scanning from the start,
//! the first record that is not valid (fewer than 8 header bytes left, a
//! length outside `1..=65536`, a payload running past the end of the file,
//! or a CRC mismatch) is *torn* if no valid record (plausible length, fits
//! in the file, matching CRC) starts at any byte offset after its first
//! byte, and *corrupt* otherwise. So a bad final record is torn whether its
//! declared extent stops short of, reaches or passes the end of the file
//! (including a zero-filled or garbage tail), while a bad record with
//! further valid data after it is corrupt, even when its (damaged) length
//! claims to run past the end of the file.
//!
//! - A torn tail is cut off (the file is truncated to the end of the last
//!   valid record and fsynced), logged with `tracing::warn!`, and reported
//!   in [`Recovery`].
//! - A corrupt record is reported as [`LogError::Corrupt`] and the file is
//!   left untouched: silently dropping acknowledged history would be worse
//!   than refusing to start.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::warn;

/// The largest payload one entry may have, in bytes.
pub const MAX_ENTRY_LEN: usize = 64 * 1024;

/// Size of a record header (length and CRC), in bytes.
pub const HEADER_LEN: usize = 8;

/// Name of the records file inside the log directory.
pub const ENTRIES_FILE: &str = "entries";

/// Name of the checkpoint file inside the log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// Name of the temporary file a checkpoint is written to before the rename.
pub const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";

/// Read buffer for the scan at open.
const SCAN_BUFFER: usize = 1 << 20;

/// How many candidate offsets one read covers while looking for valid
/// records after a bad one.
const RESYNC_CHUNK: usize = 1 << 20;

/// Errors from the append-only log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A record failed its length or CRC check and is not a torn tail: valid
    /// records follow it (at open), or it was read back wrong later.
    #[error(
        "log entry {index} (record at byte {offset}) is corrupt; \
         refusing to go on, the log file needs inspection"
    )]
    Corrupt {
        /// Index of the bad entry (the number of valid entries before it).
        index: u64,
        /// Byte offset of its record header in the entries file.
        offset: u64,
    },
    /// An entry is larger than [`MAX_ENTRY_LEN`]; nothing was written.
    #[error("log entry of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The entry's length.
        len: usize,
        /// The maximum, [`MAX_ENTRY_LEN`].
        max: usize,
    },
    /// An entry is empty, which the format does not allow; nothing was
    /// written.
    #[error("log entries cannot be empty")]
    Empty,
    /// A read asked for entries the log does not have.
    #[error("log entries {start}..{end} requested but the log has {len}")]
    OutOfRange {
        /// First index asked for.
        start: u64,
        /// One past the last index asked for.
        end: u64,
        /// Number of entries in the log.
        len: u64,
    },
    /// An earlier failed append could not be undone; the file may hold
    /// bytes the log does not account for. Reopen the log to recover.
    #[error("log unusable after a failed append could not be undone; reopen it")]
    Broken,
}

/// What [`AppendLog::open`] had to repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Bytes cut off the end of the entries file (0 if the tail was clean).
    pub truncated_bytes: u64,
    /// Entries in the log after the repair.
    pub entries: u64,
}

/// An append-only, fsynced file of opaque entries with their RFC 6962 leaf
/// hashes, plus the latest checkpoint. See the [module docs](self) for the
/// format.
///
/// Not internally synchronized: mutation takes `&mut self`, so callers
/// sharing it wrap it in a lock.
pub struct AppendLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Byte offset of each record's header.
    offsets: Vec<u64>,
    /// `SHA-256(0x00 || payload)` of each entry.
    hashes: Vec<[u8; 32]>,
    /// End of the last record: where the next one goes.
    end: u64,
    checkpoint: Option<String>,
    broken: bool,
}

impl fmt::Debug for AppendLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendLog")
            .field("dir", &self.dir)
            .field("len", &self.offsets.len())
            .field("bytes", &self.end)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// The RFC 6962 leaf hash of `payload`: `SHA-256(0x00 || payload)`.
pub fn leaf_hash(payload: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(payload)
        .finalize()
        .into()
}

impl AppendLog {
    /// Opens the log in `dir`, creating the directory (mode 0700) and an
    /// empty entries file (mode 0600) if missing, rebuilding offsets and
    /// leaf hashes, cutting off a torn tail and loading the checkpoint.
    ///
    /// Fails with [`LogError::Corrupt`] if a bad record is followed by valid
    /// ones; the file is then left as it was.
    pub fn open(dir: &Path) -> Result<(Self, Recovery), LogError> {
        let dir_existed = dir.is_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
        if !dir_existed {
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fsync_dir(parent)?;
        }

        let path = dir.join(ENTRIES_FILE);
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                fsync_dir(dir)?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err("open", &path))?,
            Err(e) => return Err(io_err("create", &path)(e)),
        };

        let checkpoint_path = dir.join(CHECKPOINT_FILE);
        let checkpoint = match fs::read_to_string(&checkpoint_path) {
            Ok(note) => Some(note),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read", &checkpoint_path)(e)),
        };

        let scan = scan(&file, &path)?;
        let mut truncated_bytes = 0;
        if let Some(reason) = scan.bad {
            if find_valid_record(&file, &path, scan.end + 1, scan.file_len)?.is_some() {
                return Err(LogError::Corrupt {
                    index: scan.offsets.len() as u64,
                    offset: scan.end,
                });
            }
            truncated_bytes = scan.file_len - scan.end;
            file.set_len(scan.end)
                .map_err(io_err("truncate torn tail of", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
            warn!(
                path = %path.display(),
                entries = scan.offsets.len(),
                offset = scan.end,
                truncated_bytes,
                reason,
                "audit log had a torn tail; truncated it to the last complete record"
            );
        }

        let recovery = Recovery {
            truncated_bytes,
            entries: scan.offsets.len() as u64,
        };
        let log = Self {
            dir: dir.to_path_buf(),
            path,
            file,
            offsets: scan.offsets,
            hashes: scan.hashes,
            end: scan.end,
            checkpoint,
            broken: false,
        };
        Ok((log, recovery))
    }

    /// Number of entries in the log.
    pub fn len(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Size of the entries file in bytes (the end of the last record).
    pub fn byte_len(&self) -> u64 {
        self.end
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The RFC 6962 leaf hash (`SHA-256(0x00 || payload)`) of every entry,
    /// in index order.
    pub fn leaf_hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// Appends `entries` as one write, fsyncs, and returns the indices they
    /// were given. On success they are durable.
    ///
    /// Refuses the whole batch, writing nothing, if any entry is empty or
    /// longer than [`MAX_ENTRY_LEN`]. On an I/O error the file is cut back
    /// to its previous length and none of the batch is in the log.
    pub fn append(&mut self, entries: &[Vec<u8>]) -> Result<Range<u64>, LogError> {
        if self.broken {
            return Err(LogError::Broken);
        }
        for entry in entries {
            if entry.is_empty() {
                return Err(LogError::Empty);
            }
            if entry.len() > MAX_ENTRY_LEN {
                return Err(LogError::TooLarge {
                    len: entry.len(),
                    max: MAX_ENTRY_LEN,
                });
            }
        }
        let start = self.len();
        if entries.is_empty() {
            return Ok(start..start);
        }

        let total: usize = entries.iter().map(|e| HEADER_LEN + e.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(entries.len());
        let mut hashes = Vec::with_capacity(entries.len());
        let mut pos = self.end;
        for entry in entries {
            offsets.push(pos);
            hashes.push(leaf_hash(entry));
            // Checked above: entry.len() <= MAX_ENTRY_LEN < u32::MAX.
            buf.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(entry).to_be_bytes());
            buf.extend_from_slice(entry);
            pos += (HEADER_LEN + entry.len()) as u64;
        }

        if let Err(e) = self.file.write_all_at(&buf, self.end) {
            self.undo_append();
            return Err(io_err("write", &self.path)(e));
        }
        if let Err(e) = self.file.sync_data() {
            self.undo_append();
            return Err(io_err("fsync", &self.path)(e));
        }

        self.offsets.extend(offsets);
        self.hashes.extend(hashes);
        self.end = pos;
        Ok(start..self.len())
    }

    /// Cuts the file back to the last acknowledged record after a failed
    /// append, or marks the log broken if that fails too.
    fn undo_append(&mut self) {
        let undone = self
            .file
            .set_len(self.end)
            .and_then(|()| self.file.sync_all());
        if let Err(e) = undone {
            warn!(
                path = %self.path.display(),
                error = %e,
                "could not cut the audit log back after a failed append; refusing further appends"
            );
            self.broken = true;
        }
    }

    /// Reads entry `index`, checking its length and CRC.
    pub fn read(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let i = self.check_range(index, index.saturating_add(1))?.start;
        let (start, end) = (self.offsets[i], self.record_end(i));
        let mut rec = vec![0; (end - start) as usize];
        self.file
            .read_exact_at(&mut rec, start)
            .map_err(io_err("read", &self.path))?;
        decode_record(&rec)
            .map(<[u8]>::to_vec)
            .ok_or(LogError::Corrupt {
                index,
                offset: start,
            })
    }

    /// Reads entries `start..end`, checking each one's length and CRC. The
    /// records are read with one positional read, so the whole range is
    /// held in memory twice; callers page through large logs.
    pub fn read_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        let range = self.check_range(start, end)?;
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.offsets[range.start];
        let stop = self.record_end(range.end - 1);
        let mut buf = vec![0; (stop - base) as usize];
        self.file
            .read_exact_at(&mut buf, base)
            .map_err(io_err("read", &self.path))?;
        let mut out = Vec::with_capacity(range.len());
        for i in range {
            let offset = self.offsets[i];
            let rec = &buf[(offset - base) as usize..(self.record_end(i) - base) as usize];
            let payload = decode_record(rec).ok_or(LogError::Corrupt {
                index: i as u64,
                offset,
            })?;
            out.push(payload.to_vec());
        }
        Ok(out)
    }

    /// The latest stored checkpoint, if any (as loaded at open or last
    /// stored).
    pub fn checkpoint(&self) -> Option<String> {
        self.checkpoint.clone()
    }

    /// Stores `note` as the latest checkpoint, durably and atomically:
    /// writes `checkpoint.tmp`, fsyncs it, renames it over `checkpoint` and
    /// fsyncs the directory.
    pub fn store_checkpoint(&mut self, note: &str) -> Result<(), LogError> {
        let tmp = self.dir.join(CHECKPOINT_TMP_FILE);
        let dst = self.dir.join(CHECKPOINT_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(note.as_bytes())
            .map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &dst).map_err(io_err("rename over", &dst))?;
        // The new text is what `checkpoint` now holds, durable or not.
        self.checkpoint = Some(note.to_owned());
        fsync_dir(&self.dir)
    }

    /// Validates `start..end` against the log and converts it to indices.
    fn check_range(&self, start: u64, end: u64) -> Result<Range<usize>, LogError> {
        if start > end || end > self.len() {
            return Err(LogError::OutOfRange {
                start,
                end,
                len: self.len(),
            });
        }
        // Both are at most self.offsets.len(), so they fit in usize.
        Ok(start as usize..end as usize)
    }

    /// End offset of record `i`.
    fn record_end(&self, i: usize) -> u64 {
        self.offsets.get(i + 1).copied().unwrap_or(self.end)
    }
}

/// Splits a record (header and payload) and returns the payload if the
/// declared length matches and the CRC is right.
fn decode_record(rec: &[u8]) -> Option<&[u8]> {
    let (header, payload) = rec.split_first_chunk::<HEADER_LEN>()?;
    let (len, crc) = parse_header(header);
    (len == payload.len() && crc32fast::hash(payload) == crc).then_some(payload)
}

/// Parses a record header into (payload length, CRC).
fn parse_header(header: &[u8; HEADER_LEN]) -> (usize, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_be_bytes([l0, l1, l2, l3]);
    (len as usize, u32::from_be_bytes([c0, c1, c2, c3]))
}

/// Whether a declared payload length could have been written by us.
fn plausible_len(len: usize) -> bool {
    (1..=MAX_ENTRY_LEN).contains(&len)
}

/// Result of reading the entries file once from the start.
struct Scan {
    offsets: Vec<u64>,
    hashes: Vec<[u8; 32]>,
    /// End of the last valid record (= start of the bad one, if any).
    end: u64,
    file_len: u64,
    /// What was wrong with the first invalid record, if any.
    bad: Option<&'static str>,
}

/// Reads every record from the start until the end of the file or the
/// first invalid record.
fn scan(file: &File, path: &Path) -> Result<Scan, LogError> {
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut offsets = Vec::new();
    let mut hashes = Vec::new();
    let mut payload = Vec::with_capacity(MAX_ENTRY_LEN);
    let mut header = [0u8; HEADER_LEN];
    let mut pos = 0u64;
    let bad = loop {
        let remaining = file_len - pos;
        if remaining == 0 {
            break None;
        }
        if remaining < HEADER_LEN as u64 {
            break Some("partial header");
        }
        reader
            .read_exact(&mut header)
            .map_err(io_err("read", path))?;
        let (len, crc) = parse_header(&header);
        if !plausible_len(len) {
            break Some("bad length");
        }
        let extent = pos + (HEADER_LEN + len) as u64;
        if extent > file_len {
            break Some("partial payload");
        }
        payload.resize(len, 0);
        reader
            .read_exact(&mut payload)
            .map_err(io_err("read", path))?;
        if crc32fast::hash(&payload) != crc {
            break Some("checksum mismatch");
        }
        offsets.push(pos);
        hashes.push(leaf_hash(&payload));
        pos = extent;
    };
    Ok(Scan {
        offsets,
        hashes,
        end: pos,
        file_len,
        bad,
    })
}

/// Looks for a valid record (plausible length, within the file, matching
/// CRC) starting at any byte offset in `from..file_len`. Only runs after a
/// bad record, to tell a torn tail from corruption in the middle.
fn find_valid_record(
    file: &File,
    path: &Path,
    from: u64,
    file_len: u64,
) -> Result<Option<u64>, LogError> {
    // Each read covers RESYNC_CHUNK candidate offsets plus enough bytes for
    // the largest record starting at the last of them.
    let window = RESYNC_CHUNK + HEADER_LEN + MAX_ENTRY_LEN;
    let mut pos = from;
    let mut buf = Vec::new();
    while pos.saturating_add(HEADER_LEN as u64) <= file_len {
        let want = usize::try_from(file_len - pos).map_or(window, |r| r.min(window));
        buf.resize(want, 0);
        file.read_exact_at(&mut buf, pos)
            .map_err(io_err("read", path))?;
        let last_window = pos + want as u64 == file_len;
        let candidates = if last_window { want } else { RESYNC_CHUNK };
        for i in 0..candidates {
            let Some((header, rest)) = buf
                .get(i..)
                .and_then(<[u8]>::split_first_chunk::<HEADER_LEN>)
            else {
                break;
            };
            let (len, crc) = parse_header(header);
            if !plausible_len(len) {
                continue;
            }
            let Some(payload) = rest.get(..len) else {
                continue;
            };
            if crc32fast::hash(payload) == crc {
                return Ok(Some(pos + i as u64));
            }
        }
        if last_window {
            break;
        }
        pos += RESYNC_CHUNK as u64;
    }
    Ok(None)
}

/// Fsyncs a directory so entries created or renamed in it are durable.
fn fsync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Builds a `map_err` closure wrapping an I/O error with context.
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { op, path, source }
}

/// Reads every complete record of an entries file by its length prefixes
/// alone, ignoring checksums: a forensic view of exactly what is on disk,
/// damaged or not. Stops at the first record that does not fit.
pub fn scan_raw(path: &Path) -> Result<Vec<Vec<u8>>, LogError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + HEADER_LEN) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(payload) = bytes.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
            break;
        };
        if len == 0 || len > MAX_ENTRY_LEN {
            break;
        }
        out.push(payload.to_vec());
        at += HEADER_LEN + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries_path(dir: &Path) -> PathBuf {
        dir.join(ENTRIES_FILE)
    }

    fn file_len(dir: &Path) -> u64 {
        fs::metadata(entries_path(dir)).unwrap().len()
    }

    fn expected_hash(payload: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([0x00]);
        h.update(payload);
        h.finalize().into()
    }

    fn flip_byte(dir: &Path, offset: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(entries_path(dir))
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, offset).unwrap();
    }

    fn truncate(dir: &Path, len: u64) {
        OpenOptions::new()
            .write(true)
            .open(entries_path(dir))
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    fn append_raw(dir: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .append(true)
            .open(entries_path(dir))
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn sample(i: usize) -> Vec<u8> {
        format!("entry number {i}: {}", "x".repeat(i * 7 % 50)).into_bytes()
    }

    fn assert_contents(log: &AppendLog, want: &[Vec<u8>]) {
        assert_eq!(log.len(), want.len() as u64);
        let hashes: Vec<_> = want.iter().map(|e| expected_hash(e)).collect();
        assert_eq!(log.leaf_hashes(), &hashes[..]);
        for (i, e) in want.iter().enumerate() {
            assert_eq!(&log.read(i as u64).unwrap(), e, "entry {i}");
        }
        assert_eq!(log.read_range(0, log.len()).unwrap(), want);
    }

    /// A log with three entries; returns the entries and the offset of the
    /// last record.
    fn three(dir: &Path) -> (Vec<Vec<u8>>, u64) {
        let (mut log, _) = AppendLog::open(dir).unwrap();
        let entries = vec![b"first".to_vec(), b"second entry".to_vec()];
        log.append(&entries).unwrap();
        let last_start = log.byte_len();
        log.append(&[b"third, the last one".to_vec()]).unwrap();
        let mut all = entries;
        all.push(b"third, the last one".to_vec());
        (all, last_start)
    }

    #[test]
    fn round_trip_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("log");
        let (mut log, rec) = AppendLog::open(&dir).unwrap();
        assert_eq!(rec, Recovery::default());
        assert!(log.is_empty());
        assert_eq!(log.append(&[]).unwrap(), 0..0);

        let mut all = Vec::new();
        for (batch, size) in [1usize, 5, 3, 10].into_iter().enumerate() {
            let entries: Vec<_> = (0..size).map(|i| sample(batch * 100 + i)).collect();
            let start = all.len() as u64;
            let range = log.append(&entries).unwrap();
            assert_eq!(range, start..start + size as u64);
            all.extend(entries);
            assert_contents(&log, &all);
        }
        assert_eq!(log.read_range(2, 6).unwrap(), &all[2..6]);
        assert_eq!(log.read_range(4, 4).unwrap(), Vec::<Vec<u8>>::new());
        assert!(matches!(
            log.read(all.len() as u64),
            Err(LogError::OutOfRange { .. })
        ));
        assert!(matches!(
            log.read_range(3, 2),
            Err(LogError::OutOfRange { .. })
        ));
        assert!(matches!(
            log.read_range(0, all.len() as u64 + 1),
            Err(LogError::OutOfRange { .. })
        ));
        let bytes = log.byte_len();
        assert_eq!(bytes, file_len(&dir));
        drop(log);

        let (log, rec) = AppendLog::open(&dir).unwrap();
        assert_eq!(
            rec,
            Recovery {
                truncated_bytes: 0,
                entries: all.len() as u64
            }
        );
        assert_eq!(log.byte_len(), bytes);
        assert_contents(&log, &all);
    }

    #[test]
    fn format_is_length_crc_payload() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        log.append(&[b"abc".to_vec(), b"de".to_vec()]).unwrap();
        let raw = fs::read(entries_path(tmp.path())).unwrap();
        let mut want = Vec::new();
        for p in [&b"abc"[..], b"de"] {
            want.extend((p.len() as u32).to_be_bytes());
            want.extend(crc32fast::hash(p).to_be_bytes());
            want.extend(p);
        }
        assert_eq!(raw, want);
        // CRC-32/IEEE check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn torn_tail_every_cut_point() {
        let tmp = tempfile::tempdir().unwrap();
        let (all, last_start) = three(&tmp.path().join("orig"));
        let full = file_len(&tmp.path().join("orig"));
        let orig = fs::read(entries_path(&tmp.path().join("orig"))).unwrap();

        for cut in last_start + 1..full {
            let dir = tmp.path().join(format!("cut{cut}"));
            fs::create_dir(&dir).unwrap();
            fs::write(entries_path(&dir), &orig[..cut as usize]).unwrap();

            let (mut log, rec) = AppendLog::open(&dir).unwrap();
            assert_eq!(
                rec,
                Recovery {
                    truncated_bytes: cut - last_start,
                    entries: 2
                },
                "cut at {cut}"
            );
            assert_eq!(file_len(&dir), last_start);
            assert_contents(&log, &all[..2]);
            assert_eq!(log.append(&[b"after repair".to_vec()]).unwrap(), 2..3);
            drop(log);

            let (log, rec) = AppendLog::open(&dir).unwrap();
            assert_eq!(rec.truncated_bytes, 0);
            assert_contents(
                &log,
                &[all[0].clone(), all[1].clone(), b"after repair".to_vec()],
            );
        }
    }

    #[test]
    fn torn_tail_bad_checksum_on_last_record() {
        let tmp = tempfile::tempdir().unwrap();
        let orig_dir = tmp.path().join("orig");
        let (all, last_start) = three(&orig_dir);
        let full = file_len(&orig_dir);
        let orig = fs::read(entries_path(&orig_dir)).unwrap();

        // A flipped byte in the last payload, and one in its CRC field.
        for offset in [full - 1, last_start + HEADER_LEN as u64, last_start + 5] {
            let dir = tmp.path().join(format!("flip{offset}"));
            fs::create_dir(&dir).unwrap();
            fs::write(entries_path(&dir), &orig).unwrap();
            flip_byte(&dir, offset);

            let (mut log, rec) = AppendLog::open(&dir).unwrap();
            assert_eq!(
                rec,
                Recovery {
                    truncated_bytes: full - last_start,
                    entries: 2
                }
            );
            assert_contents(&log, &all[..2]);
            log.append(&[b"replacement".to_vec()]).unwrap();
            drop(log);
            let (log, rec) = AppendLog::open(&dir).unwrap();
            assert_eq!(rec.truncated_bytes, 0);
            assert_eq!(log.read(2).unwrap(), b"replacement");
        }
    }

    #[test]
    fn torn_tail_zero_fill_and_garbage_header() {
        let tmp = tempfile::tempdir().unwrap();

        // The file system extended the file but the data never landed.
        let (all, _) = three(tmp.path());
        let good = file_len(tmp.path());
        append_raw(tmp.path(), &[0u8; 4096]);
        let (log, rec) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(rec.truncated_bytes, 4096);
        assert_eq!(file_len(tmp.path()), good);
        assert_contents(&log, &all);
        drop(log);

        // A header with an impossible length and nothing valid after it.
        let mut junk = 0xdead_beef_u32.to_be_bytes().to_vec();
        junk.extend([7u8; 100]);
        append_raw(tmp.path(), &junk);
        let (log, rec) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(rec.truncated_bytes, junk.len() as u64);
        assert_contents(&log, &all);
    }

    #[test]
    fn middle_corruption_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        let all: Vec<_> = (0..5).map(sample).collect();
        log.append(&all).unwrap();
        let bad_start = log.offsets[2];
        let second_last = log.offsets[3];
        drop(log);
        let orig = fs::read(entries_path(tmp.path())).unwrap();

        let cases = [
            (
                "payload byte",
                bad_start + HEADER_LEN as u64 + 3,
                2,
                bad_start,
            ),
            ("crc byte", bad_start + 6, 2, bad_start),
            ("length high byte", bad_start, 2, bad_start),
            ("length low byte", bad_start + 3, 2, bad_start),
            ("second-to-last payload", second_last + 9, 3, second_last),
        ];
        for (what, flip, index, offset) in cases {
            fs::write(entries_path(tmp.path()), &orig).unwrap();
            flip_byte(tmp.path(), flip);
            match AppendLog::open(tmp.path()) {
                Err(LogError::Corrupt {
                    index: i,
                    offset: o,
                }) => {
                    assert_eq!((i, o), (index, offset), "{what}");
                }
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            }
            // Nothing was cut off.
            assert_eq!(file_len(tmp.path()), orig.len() as u64, "{what}");
        }

        // A damaged length on the second-to-last record claiming to run past
        // the end of the file does not make the last record a torn tail.
        fs::write(entries_path(tmp.path()), &orig).unwrap();
        let f = OpenOptions::new()
            .write(true)
            .open(entries_path(tmp.path()))
            .unwrap();
        f.write_all_at(&60_000u32.to_be_bytes(), second_last)
            .unwrap();
        assert!(matches!(
            AppendLog::open(tmp.path()),
            Err(LogError::Corrupt { index: 3, offset }) if offset == second_last
        ));

        // A zero length in the middle is corrupt too.
        fs::write(entries_path(tmp.path()), &orig).unwrap();
        let f = OpenOptions::new()
            .write(true)
            .open(entries_path(tmp.path()))
            .unwrap();
        f.write_all_at(&[0; 4], bad_start).unwrap();
        assert!(matches!(
            AppendLog::open(tmp.path()),
            Err(LogError::Corrupt { index: 2, .. })
        ));
    }

    #[test]
    fn corruption_after_open_is_caught_on_read() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        log.append(&[b"one".to_vec(), b"two".to_vec(), b"three".to_vec()])
            .unwrap();
        flip_byte(tmp.path(), log.offsets[1] + HEADER_LEN as u64);
        assert!(matches!(
            log.read(1),
            Err(LogError::Corrupt { index: 1, .. })
        ));
        assert!(matches!(
            log.read_range(0, 3),
            Err(LogError::Corrupt { index: 1, .. })
        ));
        assert_eq!(log.read(2).unwrap(), b"three");
    }

    #[test]
    fn oversize_and_empty_entries_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        log.append(&[b"keep".to_vec()]).unwrap();
        let before = file_len(tmp.path());

        let max = vec![1u8; MAX_ENTRY_LEN];
        let over = vec![2u8; MAX_ENTRY_LEN + 1];
        assert!(matches!(
            log.append(&[b"ok".to_vec(), over]),
            Err(LogError::TooLarge { len, max }) if len == MAX_ENTRY_LEN + 1 && max == MAX_ENTRY_LEN
        ));
        assert!(matches!(
            log.append(&[b"ok".to_vec(), Vec::new()]),
            Err(LogError::Empty)
        ));
        assert_eq!(log.len(), 1);
        assert_eq!(file_len(tmp.path()), before);

        // Exactly the maximum is fine, and survives a reopen.
        assert_eq!(log.append(std::slice::from_ref(&max)).unwrap(), 1..2);
        drop(log);
        let (log, rec) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(rec.truncated_bytes, 0);
        assert_contents(&log, &[b"keep".to_vec(), max]);
    }

    #[test]
    fn checkpoint_store_and_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(log.checkpoint(), None);
        let first = "example.org/log\n1\nroot=\n\n— key sig1\n";
        log.store_checkpoint(first).unwrap();
        assert_eq!(log.checkpoint().as_deref(), Some(first));
        drop(log);

        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(log.checkpoint().as_deref(), Some(first));
        let second = "example.org/log\n2\nroot2=\n\n— key sig2\n";
        log.store_checkpoint(second).unwrap();
        assert_eq!(log.checkpoint().as_deref(), Some(second));
        assert!(!tmp.path().join(CHECKPOINT_TMP_FILE).exists());
        drop(log);

        // A leftover temporary file from a crash is ignored.
        fs::write(tmp.path().join(CHECKPOINT_TMP_FILE), "half a note").unwrap();
        let (log, _) = AppendLog::open(tmp.path()).unwrap();
        assert_eq!(log.checkpoint().as_deref(), Some(second));
        assert_eq!(
            fs::read_to_string(tmp.path().join(CHECKPOINT_FILE)).unwrap(),
            second
        );
    }

    #[test]
    fn creates_private_directory_and_file() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let (_log, _) = AppendLog::open(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&entries_path(&dir)), 0o600);
    }

    /// `cargo test --release -- --ignored open_million` to time the scan.
    #[test]
    #[ignore = "slow in debug builds; run in release"]
    fn open_million_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
        let batch: Vec<Vec<u8>> = (0..10_000)
            .map(|i| format!("{i:0200}").into_bytes())
            .collect();
        for _ in 0..100 {
            log.append(&batch).unwrap();
        }
        drop(log);
        let t = std::time::Instant::now();
        let (log, _) = AppendLog::open(tmp.path()).unwrap();
        let took = t.elapsed();
        eprintln!("opened {} entries in {took:?}", log.len());
        assert_eq!(log.len(), 1_000_000);
        assert!(took < std::time::Duration::from_secs(10));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Cutting the file anywhere loses exactly the records that were
        /// not completely written, and never fails the open.
        #[test]
        fn truncation_anywhere_keeps_complete_records(
            batches in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..6),
                1..6,
            ),
            cut_frac in 0.0f64..=1.0,
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let (mut log, _) = AppendLog::open(tmp.path()).unwrap();
            let mut all = Vec::new();
            let mut ends = Vec::new();
            for batch in &batches {
                log.append(batch).unwrap();
                for e in batch {
                    all.push(e.clone());
                    ends.push(ends.last().copied().unwrap_or(0) + (HEADER_LEN + e.len()) as u64);
                }
            }
            drop(log);
            let total = file_len(tmp.path());
            let cut = ((total as f64) * cut_frac).floor() as u64;
            truncate(tmp.path(), cut);

            let kept = ends.iter().take_while(|&&end| end <= cut).count();
            let kept_end = if kept == 0 { 0 } else { ends[kept - 1] };
            let (mut log, rec) = AppendLog::open(tmp.path()).unwrap();
            prop_assert_eq!(rec, Recovery { truncated_bytes: cut - kept_end, entries: kept as u64 });
            prop_assert_eq!(file_len(tmp.path()), kept_end);
            assert_contents(&log, &all[..kept]);

            // The repaired log takes appends that survive a reopen.
            log.append(&[b"tail".to_vec()]).unwrap();
            drop(log);
            let (log, rec) = AppendLog::open(tmp.path()).unwrap();
            prop_assert_eq!(rec.truncated_bytes, 0);
            let mut want = all[..kept].to_vec();
            want.push(b"tail".to_vec());
            assert_contents(&log, &want);
        }
    }
}
