//! Ciphertext blobs on disk, content-addressed by SHA-256.
//!
//! ```text
//! DATA/blobs/ab/abcdef…    complete, verified blobs (read-only)
//! DATA/staging/<who>-<hash>.part   uploads in progress, one per uploader and blob
//! ```
//!
//! An upload is appended to its staging file while its SHA-256 is computed;
//! at the end it is fsynced, its size and hash are checked, and only then is
//! it renamed into its content address and the directory fsynced. A blob is
//! therefore either absent or complete and correct. A resumed upload first
//! re-hashes the bytes already staged: a staging file's length is never
//! trusted without its content.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use matterdrop_common::streamfile::DirectFile;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Largest blob accepted (ciphertext bytes).
pub const MAX_BLOB: u64 = 64 << 30;
/// Write buffer of an upload.
const WRITE_BUFFER: usize = 1 << 20;

/// Blob storage failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Disk I/O failed.
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
    /// The client resumed from another offset than the server holds.
    #[error(
        "upload offset {got} does not match the {have} bytes the server holds; ask for the status again"
    )]
    Offset {
        /// Bytes held.
        have: u64,
        /// Offset asked for.
        got: u64,
    },
    /// More or fewer bytes than declared.
    #[error("blob size mismatch: declared {declared} bytes, received {received}")]
    Size {
        /// Declared size.
        declared: u64,
        /// Received.
        received: u64,
    },
    /// The content does not hash to the declared value.
    #[error(
        "blob hash mismatch: the bytes received do not hash to the declared SHA-256; nothing was stored"
    )]
    Hash,
    /// Too large.
    #[error("blob of {0} bytes exceeds the limit of {MAX_BLOB} bytes")]
    TooLarge(u64),
    /// An earlier upload of the same blob by the same uploader is still
    /// open (its connection has not timed out yet).
    #[error(
        "an earlier upload of this blob from your key is still open on the server; it ends once its connection goes quiet, retry then"
    )]
    Busy,
    /// The storage quota would be exceeded.
    #[error("not enough storage: the blob needs {need} bytes, {free} are available")]
    NoSpace {
        /// Needed.
        need: u64,
        /// Available.
        free: u64,
    },
}

/// The blob directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    quota: Option<u64>,
    /// Bytes promised to uploads in progress, so concurrent uploads cannot
    /// overshoot the quota together.
    reserved: std::sync::Arc<std::sync::Mutex<u64>>,
    /// Staging files an upload is writing to: one writer each.
    active: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

/// The claim of one upload on its staging file; released when dropped.
#[derive(Debug)]
struct Writer {
    set: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.path);
        }
    }
}

/// Space promised to one upload; given back when the upload ends.
#[derive(Debug)]
struct Reservation {
    pool: std::sync::Arc<std::sync::Mutex<u64>>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut r) = self.pool.lock() {
            *r = r.saturating_sub(self.bytes);
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore {
    /// Opens (creating) the store under `data`. With a `quota`, uploads
    /// that would take the blobs and staging files past it are refused.
    pub fn open(data: &Path, quota: Option<u64>) -> io::Result<Self> {
        let root = data.to_path_buf();
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("staging"))?;
        Ok(Self {
            root,
            quota,
            reserved: Default::default(),
            active: Default::default(),
        })
    }

    /// Where a complete blob lives.
    pub fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        let h = hex(sha256);
        self.root.join("blobs").join(&h[..2]).join(&h)
    }

    fn staging(&self, uploader: &str, sha256: &[u8; 32]) -> PathBuf {
        let who = hex(&Sha256::digest(uploader.as_bytes())[..8]);
        self.root
            .join("staging")
            .join(format!("{who}-{}.part", hex(sha256)))
    }

    /// The size of a complete blob, if present.
    pub fn complete(&self, sha256: &[u8; 32]) -> Option<u64> {
        fs::metadata(self.path(sha256)).ok().map(|m| m.len())
    }

    /// Bytes of `sha256` that `uploader` has staged.
    pub fn staged(&self, uploader: &str, sha256: &[u8; 32]) -> u64 {
        fs::metadata(self.staging(uploader, sha256)).map_or(0, |m| m.len())
    }

    fn used(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root.join("blobs")) + walk(&self.root.join("staging"))
    }

    /// Starts (or resumes) an upload at `offset`.
    pub fn begin(
        &self,
        uploader: &str,
        sha256: [u8; 32],
        size: u64,
        offset: u64,
    ) -> Result<Upload, BlobError> {
        self.start(self.staging(uploader, &sha256), sha256, size, offset)
    }

    fn start(
        &self,
        path: PathBuf,
        sha256: [u8; 32],
        size: u64,
        offset: u64,
    ) -> Result<Upload, BlobError> {
        if size > MAX_BLOB {
            return Err(BlobError::TooLarge(size));
        }
        // One writer per staging file: a client that reconnects while its
        // dead connection's upload is still open must not write beside it.
        let writer = {
            let mut set = self
                .active
                .lock()
                .map_err(|_| io::Error::other("upload registry poisoned"))?;
            if !set.insert(path.clone()) {
                return Err(BlobError::Busy);
            }
            Writer {
                set: self.active.clone(),
                path: path.clone(),
            }
        };
        let have = fs::metadata(&path).map_or(0, |m| m.len());
        if have != offset || offset > size {
            return Err(BlobError::Offset { have, got: offset });
        }
        let need = size - offset;
        let reservation = match self.quota {
            None => None,
            Some(quota) => {
                let mut reserved = self
                    .reserved
                    .lock()
                    .map_err(|_| io::Error::other("quota lock poisoned"))?;
                let free = quota.saturating_sub(self.used() + *reserved);
                if need > free {
                    return Err(BlobError::NoSpace { need, free });
                }
                *reserved += need;
                Some(Reservation {
                    pool: self.reserved.clone(),
                    bytes: need,
                })
            }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        let mut hasher = Sha256::new();
        // Re-hash what is already staged.
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut left = offset;
        while left > 0 {
            let n = file.read(
                &mut buf[..usize::try_from(left.min(WRITE_BUFFER as u64)).unwrap_or(WRITE_BUFFER)],
            )?;
            if n == 0 {
                return Err(BlobError::Offset {
                    have: offset - left,
                    got: offset,
                });
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(Upload {
            file: DirectFile::new(file, offset, WRITE_BUFFER),
            hasher,
            received: offset,
            size,
            sha256,
            staging: path,
            dest: self.path(&sha256),
            _reservation: reservation,
            _writer: writer,
        })
    }

    /// Starts an upload whose hash comes after its bytes (see
    /// [`Upload::seal`]), in a staging file of its own: it cannot be
    /// resumed, and [`Upload::discard`] removes it.
    pub fn begin_stream(&self, uploader: &str, size: u64) -> Result<Upload, BlobError> {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let who = hex(&Sha256::digest(uploader.as_bytes())[..8]);
        let name = format!("{who}-stream-{}.part", hex(&nonce));
        self.start(self.root.join("staging").join(name), [0; 32], size, 0)
    }

    /// Opens a complete blob for reading.
    pub fn open_blob(&self, sha256: &[u8; 32]) -> io::Result<File> {
        File::open(self.path(sha256))
    }

    /// Deletes a complete blob (an expired packet's) and makes the
    /// deletion durable; returns its size, or `None` if it was not there.
    pub fn remove(&self, sha256: &[u8; 32]) -> io::Result<Option<u64>> {
        let path = self.path(sha256);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        fs::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Some(size))
    }

    /// Removes staging files untouched for `max_age`, and every streamed
    /// upload's (those cannot be resumed: call this only while no upload
    /// runs, at start-up).
    pub fn sweep_staging(&self, max_age: std::time::Duration) -> io::Result<usize> {
        let mut removed = 0;
        for e in fs::read_dir(self.root.join("staging"))?.flatten() {
            let streamed = e.file_name().to_string_lossy().contains("-stream-");
            let old = streamed
                || e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > max_age);
            if old && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An upload in progress (blocking I/O; run it off the async executor).
#[derive(Debug)]
pub struct Upload {
    file: DirectFile,
    hasher: Sha256,
    received: u64,
    size: u64,
    sha256: [u8; 32],
    staging: PathBuf,
    dest: PathBuf,
    _reservation: Option<Reservation>,
    /// Last: released after the file is flushed and closed.
    _writer: Writer,
}

impl Upload {
    /// Appends bytes; refuses more than the declared size.
    pub fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        let after = self.received + data.len() as u64;
        if after > self.size {
            return Err(BlobError::Size {
                declared: self.size,
                received: after,
            });
        }
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.received = after;
        Ok(())
    }

    /// Names the hash the bytes must have (for [`BlobStore::begin_stream`]
    /// uploads, once their trailing hash arrived).
    pub fn seal(&mut self, sha256: [u8; 32]) {
        self.sha256 = sha256;
        self.dest = self
            .dest
            .parent()
            .and_then(Path::parent)
            .map_or_else(PathBuf::new, |blobs| {
                let h = hex(&sha256);
                blobs.join(&h[..2]).join(&h)
            });
    }

    /// Where the bytes are staged.
    pub fn staging_path(&self) -> &Path {
        &self.staging
    }

    /// Abandons the upload and deletes its staged bytes.
    pub fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.staging);
    }

    /// Bytes received so far (including a resumed prefix).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Makes the staged bytes durable (for an interrupted upload, so a
    /// retry resumes from them).
    pub fn persist_partial(mut self) -> Result<u64, BlobError> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        Ok(self.received)
    }

    /// Verifies size and hash, fsyncs and moves the blob into place. On a
    /// mismatch the staged bytes are deleted and nothing becomes visible.
    pub fn finish(self) -> Result<(), BlobError> {
        self.verify()?.publish()
    }

    /// Verifies size and hash and fsyncs the staged bytes. On a mismatch
    /// the staged bytes are deleted and nothing becomes visible.
    pub fn verify(mut self) -> Result<Verified, BlobError> {
        self.file.flush()?;
        if self.received != self.size {
            return Err(BlobError::Size {
                declared: self.size,
                received: self.received,
            });
        }
        let digest: [u8; 32] = self.hasher.finalize().into();
        if digest != self.sha256 {
            drop(self.file);
            let _ = fs::remove_file(&self.staging);
            return Err(BlobError::Hash);
        }
        self.file.get_ref().sync_all()?;
        self.file.drop_cache();
        drop(self.file);
        Ok(Verified {
            staging: self.staging,
            dest: self.dest,
            _reservation: self._reservation,
            _writer: self._writer,
        })
    }
}

/// A complete, verified, durable upload not yet in its content address.
#[derive(Debug)]
pub struct Verified {
    staging: PathBuf,
    dest: PathBuf,
    _reservation: Option<Reservation>,
    _writer: Writer,
}

impl Verified {
    /// Moves the blob into its content address and fsyncs the directories.
    pub fn publish(self) -> Result<(), BlobError> {
        let dir = self
            .dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        fs::create_dir_all(&dir)?;
        fs::rename(&self.staging, &self.dest)?;
        fsync_dir(&dir)?;
        if let Some(blobs) = dir.parent() {
            fsync_dir(blobs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_resume_and_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path(), None).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let hash: [u8; 32] = Sha256::digest(&data).into();
        let mut up = store.begin("a@x", hash, data.len() as u64, 0).unwrap();
        up.write(&data[..100_000]).unwrap();
        assert_eq!(up.persist_partial().unwrap(), 100_000);
        assert_eq!(store.staged("a@x", &hash), 100_000);
        assert!(store.complete(&hash).is_none());
        // Another uploader's staging is separate; a wrong offset is refused.
        assert_eq!(store.staged("b@x", &hash), 0);
        assert!(matches!(
            store.begin("a@x", hash, data.len() as u64, 5),
            Err(BlobError::Offset { have: 100_000, .. })
        ));
        let mut up = store
            .begin("a@x", hash, data.len() as u64, 100_000)
            .unwrap();
        up.write(&data[100_000..]).unwrap();
        assert!(up.write(&[0]).is_err(), "more than declared");
        up.finish().unwrap();
        assert_eq!(store.complete(&hash), Some(data.len() as u64));
        let mut back = Vec::new();
        store
            .open_blob(&hash)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn streamed_uploads_are_swept_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path(), None).unwrap();
        let mut s = store.begin_stream("a@x", 10).unwrap();
        s.write(b"abc").unwrap();
        drop(s);
        let mut p = store.begin("a@x", [5; 32], 10, 0).unwrap();
        p.write(b"abc").unwrap();
        p.persist_partial().unwrap();
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(store.sweep_staging(day).unwrap(), 1);
        // The resumable one stays.
        assert_eq!(store.staged("a@x", &[5; 32]), 3);
    }

    #[test]
    fn one_writer_per_staging_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path(), None).unwrap();
        let up = store.begin("a@x", [3; 32], 10, 0).unwrap();
        assert!(matches!(
            store.begin("a@x", [3; 32], 10, 0),
            Err(BlobError::Busy)
        ));
        // Another uploader, or another blob, is not blocked.
        drop(store.begin("b@x", [3; 32], 10, 0).unwrap());
        drop(store.begin("a@x", [4; 32], 10, 0).unwrap());
        drop(up);
        store.begin("a@x", [3; 32], 10, 0).unwrap();
    }

    #[test]
    fn hash_mismatch_stores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path(), None).unwrap();
        let mut up = store.begin("a@x", [9; 32], 3, 0).unwrap();
        up.write(b"abc").unwrap();
        assert!(matches!(up.finish(), Err(BlobError::Hash)));
        assert!(store.complete(&[9; 32]).is_none());
        assert_eq!(store.staged("a@x", &[9; 32]), 0);
        assert!(matches!(
            store.begin("a@x", [1; 32], MAX_BLOB + 1, 0),
            Err(BlobError::TooLarge(_))
        ));
    }

    #[test]
    fn quota_refuses_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path(), Some(1000)).unwrap();
        let data = vec![7u8; 600];
        let hash: [u8; 32] = Sha256::digest(&data).into();
        let mut up = store.begin("a@x", hash, 600, 0).unwrap();
        up.write(&data).unwrap();
        up.finish().unwrap();
        assert!(matches!(
            store.begin("a@x", [2; 32], 600, 0),
            Err(BlobError::NoSpace { .. })
        ));
        assert_eq!(store.complete(&hash), Some(600));
    }
}
