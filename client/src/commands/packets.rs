//! `push`, `inbox`, `pull`: end-to-end encrypted case packets.
//!
//! Push encrypts every file and an encrypted manifest (names, sizes,
//! plaintext hashes, note) with age to the matter's recipients, into a spool
//! in the client home, then uploads the ciphertext, resuming from whatever
//! the server already holds, and commits a descriptor signed with the
//! sender's key. Running the same push again after an interruption reuses
//! the spool (the same ciphertext) and continues the uploads.
//!
//! Pull checks the descriptor's signature against the sender's pinned key,
//! every blob's hash against the descriptor, decrypts, checks every file
//! against the manifest, and only then moves the files into place. Partial
//! downloads are kept in the client home and resumed.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use matterdrop_common::net::Reassembler;
use matterdrop_common::packet::{
    self, BlobRef, Descriptor, Kind, Manifest, ManifestFile, Recipient,
};
use matterdrop_common::proto::{
    BlobGetRequest, BlobUpload, ClientRequest, DeliverPrepareRequest, InboxRequest,
    PacketCommitRequest, PacketInfo, PacketRef, PushPrepareRequest, SentRequest, ServerResponse,
};
use matterdrop_common::sha256pair::{Sha256Lane, update_pair};
use matterdrop_common::streamfile::DirectFile;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::{DeliverArgs, PullArgs, PushArgs};
use crate::conn::{Session, interruptible, unexpected, with_retries};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::output::escape;
use matterdrop_common::agekey::{AgeIdentity, AgeKey, Recipients};

const BUF: usize = 1 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

use crate::unix_now as now;

fn verify_fail(message: impl Into<String>) -> Fail {
    Fail::new(exit::VERIFY, message)
}

/// A progress bar on stderr, only when stderr is a terminal.
pub(crate) fn bar(total: u64, what: &str) -> ProgressBar {
    use std::io::IsTerminal as _;
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:12} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} eta {eta:>4} {wide_bar}",
    ) {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb
}

/// Hashes and counts what passes through.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn done(self) -> (T, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A [`Write`] that only hashes.
struct LaneWriter<'a>(&'a mut Sha256Lane);

impl Write for LaneWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn copy_big(r: &mut (impl Read + ?Sized), w: &mut (impl Write + ?Sized)) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Bytes per message from the encryption thread to the upload.
const CHUNK: usize = 256 * 1024;

/// Bytes per hand-over from a download to its consumer thread.
const BATCH: usize = 256 * 1024;

/// The age file of one part as age writes it, until the encryption loop
/// hashes it (paired with the plaintext it came from) and sends it.
struct Outbox {
    /// Ciphertext not sent yet; `buf[..hashed]` is hashed.
    buf: Vec<u8>,
    hashed: usize,
    /// SHA-256 of the ciphertext.
    lane: Sha256Lane,
    /// Bytes sent.
    sent: u64,
}

impl Outbox {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(OUTBOX),
            hashed: 0,
            lane: Sha256Lane::new(),
            sent: 0,
        }
    }

    /// Hashes the ciphertext not hashed yet beside `plain`, the plaintext
    /// it came from, into `plain_lane`.
    fn hash_with(&mut self, plain_lane: &mut Sha256Lane, plain: &[u8]) {
        update_pair(plain_lane, plain, &mut self.lane, &self.buf[self.hashed..]);
        self.hashed = self.buf.len();
    }

    /// Sends what is hashed. `false` when nobody listens any more.
    fn send(&mut self, tx: &tokio::sync::mpsc::Sender<bytes::Bytes>) -> bool {
        let rest = self.buf.split_off(self.hashed);
        let mut full = std::mem::replace(&mut self.buf, rest);
        // quinn keeps what is sent until it is acknowledged (up to the
        // send window, megabytes): without the outbox's spare capacity,
        // which would stay allocated beside every chunk (a third more).
        full.shrink_to_fit();
        self.buf.reserve(OUTBOX.saturating_sub(self.buf.len()));
        self.hashed = 0;
        if full.is_empty() {
            return true;
        }
        self.sent += full.len() as u64;
        tx.blocking_send(bytes::Bytes::from(full)).is_ok()
    }
}

/// Capacity of the outbox. The encryption loop reads [`CHUNK`] bytes of
/// plaintext at a time and sends once at least [`CHUNK`] bytes of
/// ciphertext wait: about 262 KB each time (age adds 16 bytes per 64 KiB),
/// except the first of each part, which also carries the header and the
/// chunk age held back (about 460 KB; the buffer grows once for it).
const OUTBOX: usize = CHUNK + 2 * 65_552;

/// The [`Write`] age encrypts into: appends to the shared [`Outbox`].
struct OutboxWriter(std::rc::Rc<std::cell::RefCell<Outbox>>);

impl Write for OutboxWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Size of the age file of `len` plaintext bytes whose header (with the
/// payload nonce) is `head` bytes: 64 KiB chunks, each with a 16-byte tag;
/// an empty payload is one empty chunk.
fn age_size(head: u64, len: u64) -> u64 {
    const AGE_CHUNK: u64 = 64 * 1024;
    head + len + 16 * len.div_ceil(AGE_CHUNK).max(1)
}

/// Checks the server's recipient list against the one this client computed
/// from the roster: any principal, key or recovery recipient the server adds
/// or leaves out is exit 4, named.
fn compare_recipients(
    matter: &str,
    decided: &[matterdrop_common::roster::RosterRecipient],
    recovery: Option<&AgeKey>,
    server: &matterdrop_common::proto::RecipientsInfo,
) -> CmdResult {
    use std::collections::BTreeSet;
    let ours: BTreeSet<(&str, &[u8; 32], &str)> = decided
        .iter()
        .map(|r| (r.principal.as_str(), &r.signing_key, r.age.recipient()))
        .collect();
    let theirs: BTreeSet<(&str, &[u8; 32], &str)> = server
        .recipients
        .iter()
        .map(|r| (r.principal.as_str(), &r.signing_key, r.age.as_str()))
        .collect();
    let name = |set: Vec<&(&str, &[u8; 32], &str)>| {
        set.iter()
            .map(|(p, _, a)| format!("{p} ({a})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<_> = theirs.difference(&ours).collect();
    let missing: Vec<_> = ours.difference(&theirs).collect();
    if !added.is_empty() || theirs.len() != server.recipients.len() {
        return Err(verify_fail(format!(
            "the server lists recipients the signed roster of matter {matter} does not sanction: {}; nothing was encrypted",
            name(added)
        )));
    }
    if !missing.is_empty() {
        return Err(verify_fail(format!(
            "the server leaves out recipients the signed roster of matter {matter} names: {}; nothing was encrypted",
            name(missing)
        ))
        .hint("if an admin revoked their key, an attorney removes them (`mdrop matter remove`) or gives them their new key (`mdrop matter rekey`)"));
    }
    if server.recovery.as_deref() != recovery.map(|r| r.recipient()) {
        return Err(verify_fail(format!(
            "the server's recovery recipient for matter {matter} ({}) is not the one in its signed roster ({}); nothing was encrypted",
            server.recovery.as_deref().unwrap_or("none"),
            recovery.map_or("none", |r| r.recipient())
        )));
    }
    Ok(())
}

/// Encrypts `len` bytes of `src` to `recipients` and streams the age file
/// to an upload: announces it (its exact size, a channel for its bytes, a
/// promise of its hash) through `announce`, sends the bytes, then its
/// SHA-256 as a 32-byte trailer. The plaintext read is hashed into `plain`
/// (paired with the ciphertext's hash: [`update_pair`]). Returns `None`
/// when nobody listens any more.
fn encrypt_stream(
    src: &mut dyn Read,
    len: u64,
    plain: &mut Sha256Lane,
    recipients: &Recipients,
    announce: impl FnOnce(PartStream) -> bool,
) -> CmdResult<Option<BlobRef>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let outbox = std::rc::Rc::new(std::cell::RefCell::new(Outbox::new()));
    let enc = recipients
        .encryptor()
        .map_err(|e| Fail::other(e.to_string()))?;
    let mut w = enc.wrap_output(OutboxWriter(outbox.clone()))?;
    // The header and payload nonce are written at once; the rest follows
    // from the plaintext length.
    let size = age_size(outbox.borrow().buf.len() as u64, len);
    if !announce(PartStream {
        size,
        data: rx,
        done: done_rx,
    }) {
        return Ok(None);
    }
    let mut part = src.take(len);
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    loop {
        let n = match part.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        w.write_all(&buf[..n])?;
        copied += n as u64;
        let mut out = outbox.borrow_mut();
        out.hash_with(plain, &buf[..n]);
        if out.buf.len() >= CHUNK && !out.send(&tx) {
            return Ok(None);
        }
    }
    if copied != len {
        return Err(Fail::usage(
            "a file shrank while it was being sent; run the push again",
        ));
    }
    w.finish()?;
    let mut out = outbox.borrow_mut();
    out.hash_with(plain, &[]);
    let total = out.sent + out.buf.len() as u64;
    if total != size {
        return Err(Fail::other(format!(
            "internal error: the age file has {total} bytes, {size} were announced"
        )));
    }
    let sha256 = std::mem::take(&mut out.lane).finalize();
    out.buf.extend_from_slice(&sha256);
    out.hashed = out.buf.len();
    if !out.send(&tx) {
        return Ok(None);
    }
    let blob = BlobRef { sha256, size };
    let _ = done_tx.send(blob.clone());
    Ok(Some(blob))
}

/// One age file on its way to the server.
#[derive(Debug)]
struct PartStream {
    /// Exact size of the age file.
    size: u64,
    /// Its bytes, then its SHA-256.
    data: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    /// Its size and hash, once all is sent.
    done: tokio::sync::oneshot::Receiver<BlobRef>,
}

/// The spool of one push: what it was made from and which parts the
/// server acknowledged, so a push run again after an interruption continues
/// with the same packet id and sends only the parts the server lacks (no
/// ciphertext is kept on the client).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spool {
    packet: String,
    created_at: u64,
    due: Option<u64>,
    /// (principal, age recipient), sorted.
    recipients: Vec<(String, String)>,
    recovery: Option<String>,
    files: Vec<SpoolFile>,
    /// The signed descriptor and its signature, once every blob is sent:
    /// a run after a commit whose answer was lost sends exactly these again
    /// (the server accepts an identical commit twice).
    #[serde(default)]
    commit: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SpoolBlob {
    sha256: [u8; 32],
    size: u64,
}

impl From<SpoolBlob> for BlobRef {
    fn from(b: SpoolBlob) -> Self {
        Self {
            sha256: b.sha256,
            size: b.size,
        }
    }
}

impl From<BlobRef> for SpoolBlob {
    fn from(b: BlobRef) -> Self {
        Self {
            sha256: b.sha256,
            size: b.size,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SpoolFile {
    /// Parts the server acknowledged, by index.
    parts: Vec<Option<SpoolBlob>>,
}

fn pairs(recipients: &[Recipient]) -> Vec<(String, String)> {
    recipients
        .iter()
        .map(|r| (r.principal.clone(), r.age.clone()))
        .collect()
}

/// Files named on the command line, folders walked recursively, as
/// (path in the packet, path on disk).
fn collect(args: &[PathBuf]) -> CmdResult<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> CmdResult {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| Fail::usage(format!("reading {}: {e}", dir.display())))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}/{name}");
            let ty = e.file_type()?;
            if ty.is_dir() {
                walk(&e.path(), &rel, out)?;
            } else if ty.is_file() {
                out.push((rel, e.path()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for a in args {
        let meta = fs::metadata(a).map_err(|e| Fail::usage(format!("{}: {e}", a.display())))?;
        let name = a
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| {
                a.canonicalize()
                    .ok()
                    .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .ok_or_else(|| Fail::usage(format!("{} has no name", a.display())))?;
        if meta.is_dir() {
            walk(a, &name, &mut out)?;
        } else {
            out.push((name, a.clone()));
        }
    }
    for (rel, _) in &out {
        packet::sanitize_path(rel).map_err(|e| Fail::usage(e.to_string()))?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (rel, _) in &out {
        if !seen.insert(rel.clone()) {
            return Err(Fail::usage(format!("{rel} is named twice")));
        }
    }
    if out.is_empty() {
        return Err(Fail::usage("nothing to send: the folders are empty"));
    }
    Ok(out)
}

fn spool_key(server: &str, spec: &SendSpec, files: &[(String, PathBuf)]) -> CmdResult<String> {
    let mut h = Sha256::new();
    for part in [
        server,
        &spec.matter,
        &spec.task,
        spec.note.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(format!("{:?}", spec.due).as_bytes());
    for (rel, abs) in files {
        let m = fs::metadata(abs)?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!("{rel}\0{}\0{mtime}\0{}\0", m.len(), changed_stamp(&m)).as_bytes());
    }
    Ok(hex(&h.finalize()[..16]))
}

/// What changes whenever a file's content may have: its inode and status
/// change time, which (unlike the modification time) `cp -p`, `rsync -t` or
/// `touch -r` cannot set back. A spool is only reused for identical files.
#[cfg(unix)]
fn changed_stamp(m: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt as _;
    format!("{}:{}:{}.{}", m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

#[cfg(not(unix))]
fn changed_stamp(_: &fs::Metadata) -> String {
    String::new()
}

/// `mdrop push`.
pub async fn push(ctx: &Ctx, args: &PushArgs) -> CmdResult {
    send(
        ctx,
        &SendSpec {
            matter: args.matter.clone(),
            task: args.task.clone(),
            deliverable_for: None,
            due: args.due,
            note: args.note.clone(),
            files: args.files.clone(),
            retries: args.retries,
        },
    )
    .await
}

/// `mdrop deliver`.
pub async fn deliver(ctx: &Ctx, args: &DeliverArgs) -> CmdResult {
    let packet = resolve_id(ctx, &args.packet).await?;
    send(
        ctx,
        &SendSpec {
            matter: args.matter.clone(),
            task: String::new(),
            deliverable_for: Some(packet),
            due: None,
            note: args.note.clone(),
            files: args.files.clone(),
            retries: args.retries,
        },
    )
    .await
}

/// What to send: a packet (`deliverable_for` is `None`) or a deliverable.
#[derive(Debug)]
pub struct SendSpec {
    /// Matter id.
    pub matter: String,
    /// Task type (packets).
    pub task: String,
    /// The packet a deliverable answers.
    pub deliverable_for: Option<String>,
    /// Due in this long (packets).
    pub due: Option<crate::when::Due>,
    /// Note for the recipients.
    pub note: Option<String>,
    /// Files and folders.
    pub files: Vec<PathBuf>,
    /// Reconnections after a lost connection.
    pub retries: u32,
}

async fn send(ctx: &Ctx, spec: &SendSpec) -> CmdResult {
    crate::hygiene::sweep_and_tell(&ctx.home);
    if spec
        .note
        .as_ref()
        .is_some_and(|n| n.len() > packet::MAX_NOTE)
    {
        return Err(Fail::usage(format!(
            "the note exceeds {} bytes",
            packet::MAX_NOTE
        )));
    }
    let files = collect(&spec.files)?;
    let parts: u64 = files
        .iter()
        .map(|(_, p)| fs::metadata(p).map(|m| ManifestFile::parts_for(m.len())))
        .sum::<io::Result<u64>>()?;
    if parts > packet::MAX_BLOBS as u64 {
        return Err(Fail::usage(format!(
            "these files make {parts} parts of {} MiB, more than the {} one packet may hold",
            packet::PART_SIZE >> 20,
            packet::MAX_BLOBS
        ))
        .hint("send them in several pushes"));
    }
    let key = identity::signing_key(&ctx.home)?;
    let (files_ref, key_ref) = (&files, &key);
    let work = with_retries(spec.retries, |attempt| async move {
        let (session, server) = Session::open(&ctx.home, key_ref).await?;
        let result = push_inner(ctx, spec, files_ref, key_ref, &session, &server, attempt).await;
        session.close().await;
        result
    });
    let (d, dir, resumed, left) = interruptible(work, "what was sent is kept").await?;
    let _ = fs::remove_dir_all(&dir);
    let recipients: Vec<&str> = d.recipients.iter().map(|r| r.principal.as_str()).collect();
    let classic: Vec<&str> = d
        .recipients
        .iter()
        .filter(|r| !r.age.starts_with("age1pq1"))
        .map(|r| r.principal.as_str())
        .collect();
    let classic_recovery = d
        .recovery
        .as_deref()
        .is_some_and(|r| !r.starts_with("age1pq1"));
    ctx.out.emit(
        &json!({"id": d.id, "matter": d.matter, "task": d.task, "due": d.due.map(crate::when::utc),
                "files": files.len(), "size": d.total_size(), "recipients": recipients,
                "recovery": d.recovery.is_some(), "resumed_bytes": resumed,
                "post_quantum": classic.is_empty() && !classic_recovery,
                "classic_readers": classic, "classic_recovery": classic_recovery,
                "left_out": left.iter().map(|(p, why)| json!({"principal": p, "reason": why})).collect::<Vec<_>>()}),
        || {
            let mut s = format!(
                "Pushed packet {} to matter {} ({} files, {} bytes encrypted)\n  readable by: {}{}\n",
                d.id,
                d.matter,
                files.len(),
                d.total_size(),
                recipients.join(", "),
                if d.recovery.is_some() { " and the firm's recovery key" } else { "" }
            );
            for (p, why) in &left {
                let _ = writeln!(s, "  not readable by {p}: {why}");
            }
            s
        },
    );
    Ok(())
}

/// Members of the matter a push left out, each with the reason.
type LeftOut = Vec<(String, String)>;

/// The members of the matter's roster that `d` is not encrypted to, and
/// why: a push names them, since a provider who has not signed the current
/// acknowledgment is left out without anyone noticing otherwise.
fn left_out(
    roster: &matterdrop_common::roster::Roster,
    acks: &[matterdrop_common::roster::SignedAck],
    d: &Descriptor,
) -> LeftOut {
    use matterdrop_common::roles::Role;
    roster
        .members
        .iter()
        .filter(|(id, _)| !d.recipients.iter().any(|r| &r.principal == *id))
        .map(|(id, m)| {
            let acked = roster.has_current_ack(id, acks);
            let why = match (m.role, d.kind) {
                (Role::Auditor, _) => {
                    "an auditor (auditors read the audit log, never files)".to_owned()
                }
                (Role::Provider, Kind::Packet) if acked => {
                    "a provider who signed the acknowledgment after this push was prepared"
                        .to_owned()
                }
                (Role::Provider, Kind::Packet) => format!(
                    "a provider who has not signed version {} of the matter's acknowledgment",
                    roster.ack_version
                ),
                (Role::Provider, Kind::Deliverable) => {
                    "another provider (a deliverable is read by the attorneys, \
                     paralegals and the provider who delivers it)"
                        .to_owned()
                }
                (role, _) => format!(
                    "{} who joined after this push was prepared",
                    role.with_article()
                ),
            };
            (id.clone(), why)
        })
        .collect()
}

/// What an age file being sent is.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Part `.1` of file `.0`.
    Part(usize, usize),
    /// The manifest.
    Manifest,
}

/// An age file the encryption thread has started to stream.
type Job = (Target, PartStream);

async fn push_inner(
    ctx: &Ctx,
    spec: &SendSpec,
    files: &[(String, PathBuf)],
    key: &ed25519_dalek::SigningKey,
    session: &Session,
    server_file: &crate::home::ServerFile,
    attempt: u32,
) -> CmdResult<(Descriptor, PathBuf, u64, LeftOut)> {
    // The spool belongs to the server's identity, not its address.
    let server = server_file
        .fingerprint
        .as_deref()
        .or(server_file.ca_file.as_deref())
        .unwrap_or(&server_file.server);
    let me = server_file.principal.as_str();
    let prepare = match &spec.deliverable_for {
        None => ClientRequest::PushPrepare(PushPrepareRequest {
            matter: spec.matter.clone(),
            task: spec.task.clone(),
        }),
        Some(packet) => ClientRequest::DeliverPrepare(DeliverPrepareRequest {
            matter: spec.matter.clone(),
            packet: packet.clone(),
        }),
    };
    // Recipients are decided here, from the matter's signed roster; the
    // server's list must say the same, or nothing is encrypted. Both are
    // asked for at once (one round trip, not two, on a long path).
    let (resp, synced) = tokio::join!(
        session.request(&prepare),
        crate::roster::sync(&ctx.home, session, &spec.matter)
    );
    // A roster that does not verify is the news, whatever else failed.
    let synced = match (synced, &resp) {
        (Err(e), Err(_)) if e.code == exit::VERIFY => return Err(e),
        (synced, _) => synced,
    };
    let resp = resp?;
    let ServerResponse::Recipients(info) = resp else {
        return Err(unexpected(&resp));
    };
    let synced = synced?;
    let finish = |d: Descriptor, dir: PathBuf, resumed: u64| {
        let left = left_out(&synced.roster, &synced.acks, &d);
        Ok((d, dir, resumed, left))
    };
    synced
        .roster
        .check_open()
        .map_err(|why| Fail::new(exit::DENIED, why))?;
    let my_key = key.verifying_key().to_bytes();
    let decided = match &spec.deliverable_for {
        None => synced.roster.packet_recipients(me, &my_key, &synced.acks),
        Some(_) => synced
            .roster
            .deliverable_recipients(me, &my_key, &synced.acks),
    }
    .map_err(|e| verify_fail(format!("the matter's signed roster refuses this: {e}")))?;
    let own_age = identity::own_age_keys(&ctx.home)?;
    if !decided
        .iter()
        .any(|r| r.principal == me && own_age.contains(&r.age))
    {
        return Err(verify_fail(format!(
            "the roster of matter {} does not give {me} this client's age key",
            spec.matter
        )));
    }
    compare_recipients(
        &spec.matter,
        &decided,
        synced.roster.recovery.as_ref(),
        &info,
    )?;
    synced
        .roster
        .check_post_quantum(&decided, synced.roster.recovery.as_ref())
        .map_err(|e| Fail::new(exit::DENIED, e))?;
    let mut recipients: Vec<Recipient> = decided
        .iter()
        .map(|r| Recipient {
            principal: r.principal.clone(),
            age: r.age.recipient().to_owned(),
        })
        .collect();
    recipients.sort_by(|a, b| a.principal.cmp(&b.principal));
    let keys = age_keys(ctx, &decided, synced.roster.recovery.as_ref())?;

    let dir = ctx.home.path("spool").join(spool_key(server, spec, files)?);
    crate::hygiene::touch(&dir);
    let state_path = dir.join("spool.json");
    let stored = fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Spool>(&b).ok());
    // A commit an earlier run sent may have landed unanswered, and the
    // readers changed since: the same commit again is answered as it was
    // then (its packet, to the readers of that time), rather than a second
    // packet being made for the new readers. Refused, it had not landed.
    if let Some((descriptor, signature)) = stored
        .as_ref()
        .filter(|s| s.recipients != pairs(&recipients) || s.recovery != info.recovery)
        .and_then(|s| s.commit.clone())
    {
        match commit(session, spec, descriptor.clone(), signature).await {
            Ok(()) => {
                let d = Descriptor::parse(&descriptor).map_err(|e| Fail::other(e.to_string()))?;
                let resumed = d.total_size();
                return finish(d, dir, resumed);
            }
            Err(f) if f.retryable => return Err(f),
            Err(_) => {}
        }
    }
    let mut spool: Spool = match stored {
        Some(s)
            if s.recipients == pairs(&recipients)
                && s.recovery == info.recovery
                && s.files.len() == files.len() =>
        {
            s
        }
        _ => {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let prefix = if spec.deliverable_for.is_some() {
                "d"
            } else {
                "p"
            };
            Spool {
                packet: packet::new_id(prefix),
                created_at: now(),
                due: spec.due.map(|d| d.at(now())),
                recipients: pairs(&recipients),
                recovery: info.recovery.clone(),
                files: vec![SpoolFile::default(); files.len()],
                commit: None,
            }
        }
    };
    save_spool(&state_path, &spool)?;
    let up = UploadCtx {
        session,
        spec,
        packet: &spool.packet.clone(),
        task: &info.task,
    };

    // A run after the blobs were all sent: the same commit again.
    if let Some((descriptor, signature)) = spool.commit.clone() {
        let d = Descriptor::parse(&descriptor).map_err(|e| Fail::other(e.to_string()))?;
        let mut held = true;
        for b in std::iter::once(&d.manifest).chain(&d.blobs) {
            held &= up.held(b).await?;
        }
        if held {
            let resumed = d.total_size();
            if attempt > 0 {
                eprintln!("mdrop: reconnected; every part was already sent, committing");
            }
            commit(session, spec, descriptor, signature).await?;
            return finish(d, dir, resumed);
        }
        spool.commit = None;
    }

    // Parts acknowledged by an earlier run count only if the server still
    // holds them.
    let total: u64 = files
        .iter()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let pb = bar(total, "sending");
    let mut resumed = 0;
    for f in &mut spool.files {
        for slot in &mut f.parts {
            if let Some(b) = *slot {
                if up.held(&b.into()).await? {
                    resumed += b.size;
                    pb.inc(b.size);
                } else {
                    *slot = None;
                }
            }
        }
    }
    if attempt > 0 {
        eprintln!("mdrop: reconnected; resumed at {resumed} of {total} bytes");
    }

    // Encryption streams into the uploads from a blocking thread; two
    // uploads are open at once, so one part finishes on the server (fsync,
    // rename) while the next streams.
    let (job_tx, job_rx) = tokio::sync::mpsc::channel::<Job>(1);
    let encryptor = {
        let (files, spool, note) = (
            files.to_vec(),
            spool.clone(),
            spec.note.clone().unwrap_or_default(),
        );
        tokio::task::spawn_blocking(move || encrypt_parts(&files, &spool, &keys, &note, &job_tx))
    };
    let spool = std::cell::RefCell::new(spool);
    let manifest = std::cell::Cell::new(None);
    let job_rx = tokio::sync::Mutex::new(job_rx);
    let lane = || async {
        loop {
            let job = job_rx.lock().await.recv().await;
            let Some((target, part)) = job else {
                return Ok::<(), Fail>(());
            };
            let blob = up.stream(part, &pb).await?;
            match target {
                Target::Manifest => manifest.set(Some(blob)),
                Target::Part(i, j) => {
                    let mut s = spool.borrow_mut();
                    let parts = &mut s.files[i].parts;
                    if parts.len() <= j {
                        parts.resize(j + 1, None);
                    }
                    parts[j] = Some(blob.into());
                    save_spool(&state_path, &s)?;
                }
            }
        }
    };
    let sent = tokio::try_join!(lane(), lane());
    // Unblocks the encryptor if the uploads stopped early.
    drop(job_rx);
    let encrypted = encryptor.await.map_err(|e| Fail::other(e.to_string()))?;
    // An encryption failure is the cause of any upload failure it led to.
    let manifest_plain = match (encrypted, sent) {
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(None), Ok(_)) => return Err(Fail::other("encryption stopped early")),
        (Ok(Some(m)), Ok(_)) => m,
    };
    pb.finish_and_clear();
    let spool = spool.into_inner();
    let manifest = manifest
        .into_inner()
        .ok_or_else(|| Fail::other("the manifest was not sent"))?;
    let mut blobs = Vec::new();
    for (mf, sf) in manifest_plain.files.iter().zip(&spool.files) {
        if sf.parts.len() != mf.blobs.len() {
            return Err(Fail::other("internal error: a part was not sent"));
        }
        for (want, got) in mf.blobs.iter().zip(&sf.parts) {
            match got {
                Some(b) if b.sha256 == *want => blobs.push(BlobRef::from(*b)),
                _ => return Err(Fail::other("internal error: a part was not sent")),
            }
        }
    }

    let d = Descriptor {
        kind: if spec.deliverable_for.is_some() {
            Kind::Deliverable
        } else {
            Kind::Packet
        },
        matter: spec.matter.clone(),
        id: spool.packet.clone(),
        packet: spec.deliverable_for.clone(),
        task: info.task.clone(),
        due: spool.due,
        sender: me.to_owned(),
        created_at: spool.created_at,
        recipients,
        recovery: info.recovery.clone(),
        manifest,
        blobs,
    };
    let descriptor = d
        .to_signed_bytes()
        .map_err(|e| Fail::other(e.to_string()))?;
    let signature = d
        .sign(key)
        .map_err(|e| Fail::other(e.to_string()))?
        .to_vec();
    let mut spool = spool;
    spool.commit = Some((descriptor.clone(), signature.clone()));
    save_spool(&state_path, &spool)?;
    commit(session, spec, descriptor, signature).await?;
    finish(d, dir, resumed)
}

async fn commit(
    session: &Session,
    spec: &SendSpec,
    descriptor: Vec<u8>,
    signature: Vec<u8>,
) -> CmdResult {
    let commit = PacketCommitRequest {
        descriptor,
        signature,
    };
    let resp = session
        .request(&if spec.deliverable_for.is_some() {
            ClientRequest::DeliverableCommit(commit)
        } else {
            ClientRequest::PacketCommit(commit)
        })
        .await?;
    if !matches!(resp, ServerResponse::PacketCommitted(_)) {
        return Err(unexpected(&resp));
    }
    Ok(())
}

fn save_spool(path: &Path, spool: &Spool) -> CmdResult {
    let bytes = serde_json::to_vec(spool).map_err(|e| Fail::other(e.to_string()))?;
    crate::home::write_replace(path, &bytes, 0o600)
}

/// What every upload of one push shares.
struct UploadCtx<'a> {
    session: &'a Session,
    spec: &'a SendSpec,
    packet: &'a str,
    task: &'a str,
}

impl UploadCtx<'_> {
    fn request(&self, sha256: [u8; 32], size: u64) -> BlobUpload {
        BlobUpload {
            matter: self.spec.matter.clone(),
            packet: self.packet.to_owned(),
            task: self.task.to_owned(),
            sha256,
            size,
            offset: 0,
            deliverable_for: self.spec.deliverable_for.clone(),
        }
    }

    /// Whether the server holds `blob` from this uploader, complete.
    async fn held(&self, blob: &BlobRef) -> CmdResult<bool> {
        let req = ClientRequest::BlobStatus(self.request(blob.sha256, blob.size));
        match self.session.request(&req).await? {
            ServerResponse::BlobOffset(status) => Ok(status.complete),
            other => Err(unexpected(&other)),
        }
    }

    /// Streams one age file and checks that the server stored exactly it.
    async fn stream(&self, part: PartStream, pb: &ProgressBar) -> CmdResult<BlobRef> {
        let req = ClientRequest::BlobStream(self.request([0; 32], part.size));
        let resp = self
            .session
            .request_with_chunks(&req, part.data, |n| pb.inc(n))
            .await?;
        let ServerResponse::BlobStored(stored) = resp else {
            return Err(unexpected(&resp));
        };
        let sent = part
            .done
            .await
            .map_err(|_| Fail::other("encryption stopped early"))?;
        if stored.sha256 != sent.sha256 || stored.size != sent.size {
            return Err(verify_fail(
                "the server acknowledged other bytes than were sent",
            ));
        }
        Ok(sent)
    }
}

/// The age recipients of a push: the roster's keys of `decided` and its
/// recovery recipient (already compared with the server's list). Readers
/// with a hybrid key get a post-quantum stanza; any classic-only reader is
/// named on stderr, since the file is then only as confidential as X25519.
fn age_keys(
    ctx: &Ctx,
    decided: &[matterdrop_common::roster::RosterRecipient],
    recovery: Option<&AgeKey>,
) -> CmdResult<Recipients> {
    let keys = Recipients::new(decided.iter().map(|r| &r.age).chain(recovery))
        .map_err(|e| verify_fail(format!("age recipients: {e}")))?;
    if !keys.all_post_quantum() && !ctx.out.json {
        let mut classic: Vec<String> = decided
            .iter()
            .filter(|r| !r.age.is_post_quantum())
            .map(|r| escape(&r.principal, false))
            .collect();
        if recovery.is_some_and(|r| !r.is_post_quantum()) {
            classic.push("the recovery recipient".to_owned());
        }
        eprintln!(
            "note: not post-quantum: the file key is also wrapped to classic X25519 keys, of {} \
             (`mdrop keys upgrade` gives a member a hybrid key; an attorney then rekeys them)",
            classic.join(", "),
        );
    }
    Ok(keys)
}

/// Encrypts every file in parts of [`packet::PART_SIZE`] plaintext bytes,
/// then the manifest, streaming each into `events` as it goes, and skips
/// the parts `spool` lists as held by the server (their plaintext is only
/// hashed). Returns the manifest, or `None` when nobody listens any more.
fn encrypt_parts(
    files: &[(String, PathBuf)],
    spool: &Spool,
    keys: &Recipients,
    note: &str,
    events: &tokio::sync::mpsc::Sender<Job>,
) -> CmdResult<Option<Manifest>> {
    let mut manifest = Manifest::new(note, Vec::new());
    for (i, (rel, abs)) in files.iter().enumerate() {
        let open_err = |e: io::Error| Fail::usage(format!("{}: {e}", abs.display()));
        let file = File::open(abs).map_err(open_err)?;
        let size = file.metadata().map_err(open_err)?.len();
        let parts = usize::try_from(ManifestFile::parts_for(size))
            .map_err(|e| Fail::other(e.to_string()))?;
        let held = &spool.files[i].parts;
        let mut input = file;
        let mut plain = Sha256Lane::new();
        let mut blobs = Vec::with_capacity(parts);
        for j in 0..parts {
            let len = packet::PART_SIZE.min(size - j as u64 * packet::PART_SIZE);
            if let Some(Some(b)) = held.get(j) {
                // The server has this part: only hash its plaintext.
                let n = copy_big(&mut (&mut input).take(len), &mut LaneWriter(&mut plain))?;
                if n != len {
                    return Err(changed(abs));
                }
                blobs.push(b.sha256);
                continue;
            }
            let sent = encrypt_stream(&mut input, len, &mut plain, keys, |part| {
                events.blocking_send((Target::Part(i, j), part)).is_ok()
            })?;
            let Some(blob) = sent else { return Ok(None) };
            blobs.push(blob.sha256);
        }
        // The file must end where its size said.
        let mut probe = [0u8; 1];
        if input.read(&mut probe)? != 0 {
            return Err(changed(abs));
        }
        if plain.len() != size {
            return Err(changed(abs));
        }
        let sha256 = plain.finalize();
        manifest.files.push(ManifestFile {
            path: rel.clone(),
            size,
            sha256,
            blobs,
        });
    }
    let bytes = manifest
        .to_bytes()
        .map_err(|e| Fail::usage(e.to_string()))?;
    let mut unused = Sha256Lane::new();
    let sent = encrypt_stream(
        &mut &bytes[..],
        bytes.len() as u64,
        &mut unused,
        keys,
        |part| events.blocking_send((Target::Manifest, part)).is_ok(),
    )?;
    Ok(sent.map(|_| manifest))
}

fn changed(path: &Path) -> Fail {
    Fail::usage(format!(
        "{} changed while it was being sent; run the push again",
        path.display()
    ))
}

/// Hex digits a shortened id needs at least.
pub const MIN_ID_PREFIX: usize = 6;

/// The packet or deliverable id `given` names: a whole id as it is, or a
/// unique prefix of at least [`MIN_ID_PREFIX`] hex digits (with or without
/// its `p-`/`d-`), looked up among what this user can see (`inbox
/// --all` and `sent`). Anything else is refused before it can be used in a path: an
/// id comes from another party, perhaps a hostile server's listing. The
/// id found is checked again when the packet is fetched (its signed
/// descriptor must carry it).
pub async fn resolve_id(ctx: &Ctx, given: &str) -> CmdResult<String> {
    if packet::validate_id(given) {
        return Ok(given.to_owned());
    }
    let (kind, digits) = match given.split_once('-') {
        Some((k @ ("p" | "d"), rest)) => (Some(k), rest),
        _ => (None, given),
    };
    let lower = digits.to_ascii_lowercase();
    if !(MIN_ID_PREFIX..32).contains(&lower.len()) || !lower.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Fail::usage(format!(
            "invalid packet id {}: expected p-… or d-… with 32 hex digits, or a unique prefix of \
             at least {MIN_ID_PREFIX} of them",
            escape(given, false)
        )));
    }
    let key = identity::signing_key(&ctx.home)?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let listed = async {
        let inbox = session
            .request(&ClientRequest::Inbox(InboxRequest {
                matter: None,
                all: true,
            }))
            .await?;
        let ServerResponse::Inbox(items) = inbox else {
            return Err(unexpected(&inbox));
        };
        let sent = session
            .request(&ClientRequest::Sent(SentRequest { matter: None }))
            .await?;
        let ServerResponse::Sent(sent) = sent else {
            return Err(unexpected(&sent));
        };
        Ok(items
            .into_iter()
            .map(|i| i.id)
            .chain(sent.into_iter().map(|i| i.id))
            .collect::<Vec<_>>())
    }
    .await;
    session.close().await;
    let listed = listed?;
    let found: std::collections::BTreeSet<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|id| packet::validate_id(id))
        .filter(|id| {
            id.split_once('-').is_some_and(|(k, rand)| {
                kind.is_none_or(|want| want == k) && rand.starts_with(&lower)
            })
        })
        .collect();
    match found.len() {
        1 => {
            let id = found.into_iter().next().unwrap_or_default().to_owned();
            eprintln!("mdrop: {} is {id}", escape(given, false));
            Ok(id)
        }
        0 => Err(Fail::usage(format!(
            "no packet or deliverable you can see starts with {}",
            escape(given, false)
        ))
        .hint("`mdrop inbox --all` and `mdrop sent` list them")),
        n => Err(Fail::usage(format!(
            "{} is ambiguous: {n} ids start with it ({}); give more digits",
            escape(given, false),
            found.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The ciphertext side of a download's hashing. What the download hands
/// out waits here, as slices of the received batches (no copy), until the
/// plaintext it decrypts to is written: then both are hashed together
/// ([`update_pair`]). What nobody pairs (raw pulls, the manifest) is hashed
/// alone once more than [`UNPAIRED`] bytes wait.
#[derive(Debug, Default)]
pub struct CipherHash {
    lane: Sha256Lane,
    queue: std::collections::VecDeque<bytes::Bytes>,
    queued: usize,
}

/// Most ciphertext bytes waiting for their plaintext (age holds back one
/// 64 KiB chunk; a reader may hold a batch).
const UNPAIRED: usize = 2 * BATCH;

impl CipherHash {
    fn push(&mut self, chunk: bytes::Bytes) {
        self.queued += chunk.len();
        self.queue.push_back(chunk);
        while self.queued > UNPAIRED {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.queued -= old.len();
            self.lane.update(&old);
        }
    }

    /// Hashes `plain` into `plain_lane`, beside waiting ciphertext.
    fn pair(&mut self, plain_lane: &mut Sha256Lane, mut plain: &[u8]) {
        while !plain.is_empty() {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let k = front.len().min(plain.len());
            update_pair(plain_lane, &plain[..k], &mut self.lane, &front[..k]);
            bytes::Buf::advance(front, k);
            self.queued -= k;
            if front.is_empty() {
                self.queue.pop_front();
            }
            plain = &plain[k..];
        }
        plain_lane.update(plain);
    }

    /// The SHA-256 of everything pushed.
    fn finish(&mut self) -> [u8; 32] {
        for chunk in self.queue.drain(..) {
            self.lane.update(&chunk);
        }
        self.queued = 0;
        std::mem::take(&mut self.lane).finalize()
    }
}

type SharedCipherHash = std::sync::Arc<std::sync::Mutex<CipherHash>>;

fn lock(h: &SharedCipherHash) -> std::sync::MutexGuard<'_, CipherHash> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The bytes of one blob as they arrive from the server, read on a
/// blocking thread; everything handed out is hashed and counted.
#[derive(Debug)]
pub struct Incoming {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    cur: bytes::Bytes,
    hash: SharedCipherHash,
    bytes: u64,
    /// For a packet re-shared to this reader: the age header that opens the
    /// blob's payload (checked against the share statement).
    header: Option<Vec<u8>>,
}

impl Incoming {
    fn new(
        rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
        header: Option<Vec<u8>>,
    ) -> Self {
        Self {
            rx,
            cur: bytes::Bytes::new(),
            hash: SharedCipherHash::default(),
            bytes: 0,
            header,
        }
    }

    /// The re-share header to decrypt with instead of the blob's own.
    fn take_header(&mut self) -> Option<Vec<u8>> {
        self.header.take()
    }

    /// Where the bytes handed out wait to be hashed: a [`PlainOut`]
    /// attached to it hashes the plaintext beside them.
    fn cipher_hash(&self) -> SharedCipherHash {
        self.hash.clone()
    }

    /// Reads what is left and returns the SHA-256 and size of everything.
    fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        loop {
            let n = io::BufRead::fill_buf(&mut self)?.len();
            if n == 0 {
                return Ok((lock(&self.hash).finish(), self.bytes));
            }
            io::BufRead::consume(&mut self, n);
        }
    }
}

impl io::BufRead for Incoming {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => break,
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, n: usize) {
        let chunk = self.cur.split_to(n.min(self.cur.len()));
        // Everything handed out is hashed, whoever reads it.
        self.bytes += chunk.len() as u64;
        lock(&self.hash).push(chunk);
    }
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = io::BufRead::fill_buf(self)?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

/// Why consuming a blob failed.
#[derive(Debug)]
pub enum ConsumeError {
    /// The bytes are not what they should be (not age, not for this
    /// identity, corrupted).
    Invalid(String),
    /// Writing the output failed.
    Write(io::Error),
}

impl std::fmt::Display for ConsumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => f.write_str(e),
            Self::Write(e) => write!(f, "writing: {e}"),
        }
    }
}

/// Streams blob `blob` of `packet` into `consume`, which runs on a blocking
/// thread and reads the bytes as they arrive, then checks that exactly the
/// descriptor's bytes arrived (size and SHA-256). Whatever `consume` wrote
/// is unverified until this returns `Ok`.
async fn fetch_blob<T: Send + 'static>(
    session: &Session,
    packet: &str,
    blob: &BlobRef,
    pb: &ProgressBar,
    consume: impl FnOnce(&mut Incoming) -> Result<T, ConsumeError> + Send + 'static,
) -> CmdResult<T> {
    let recv = open_blob(session, packet, blob).await?;
    receive_blob(recv, blob, pb, None, consume)
        .await
        .finish()
        .await
}

/// Asks the server for blob `blob` of `packet`; returns the stream its
/// bytes arrive on (they start flowing at once, up to the stream's flow
/// control window, whether or not anyone reads them yet).
async fn open_blob(session: &Session, packet: &str, blob: &BlobRef) -> CmdResult<BlobStream> {
    open_blob_for(session, packet, blob, false).await
}

/// Streams blob `blob` of `packet` whole and checks it against the signed
/// descriptor's size and SHA-256, as `pull` does, and returns its age
/// header: what `share` re-wraps. (The header alone could be any other
/// blob's that is encrypted to this user; only the whole blob's hash ties
/// it to this packet.)
pub(crate) async fn fetch_checked_header(
    session: &Session,
    packet: &str,
    blob: &BlobRef,
    pb: &ProgressBar,
) -> CmdResult<matterdrop_common::reshare::Header> {
    let stream = open_blob_for(session, packet, blob, true).await?;
    receive_blob(stream, blob, pb, None, |input| {
        let mut head = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match matterdrop_common::reshare::Header::parse(&head) {
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
                Err(e) => return Err(ConsumeError::Invalid(e)),
            }
            let n = input
                .read(&mut buf)
                .map_err(|e| ConsumeError::Invalid(e.to_string()))?;
            if n == 0 {
                return Err(ConsumeError::Invalid("no complete age header".into()));
            }
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .finish()
    .await
}

async fn open_blob_for(
    session: &Session,
    packet: &str,
    blob: &BlobRef,
    for_share: bool,
) -> CmdResult<BlobStream> {
    let (resp, recv, reader) = session
        .request_download(&ClientRequest::BlobGet(BlobGetRequest {
            packet: packet.to_owned(),
            sha256: blob.sha256,
            offset: 0,
            for_share,
        }))
        .await?;
    match resp {
        ServerResponse::BlobData(info) if info.sha256 == blob.sha256 && info.size == blob.size => {
            // A re-share header must be the one the verified share
            // statement names for this blob, and comes only with one.
            let expected = session.share_of(packet).map(|s| s.header_for(&blob.sha256));
            match (&info.header, expected) {
                (None, None) => {}
                (Some(h), Some(Some(want))) if <[u8; 32]>::from(Sha256::digest(h)) == want => {}
                (Some(_), Some(_)) => {
                    return Err(verify_fail(format!(
                        "the server sent a re-share header for blob {} that the sharer's signed statement does not name",
                        hex(&blob.sha256)
                    )));
                }
                (None, Some(_)) => {
                    return Err(verify_fail(format!(
                        "the server sent no re-share header for blob {}, though the packet was re-shared to this user",
                        hex(&blob.sha256)
                    )));
                }
                (Some(_), None) => {
                    return Err(verify_fail(
                        "the server sent a re-share header for a packet this user holds no verified share of",
                    ));
                }
            }
            Ok((recv, reader, info.header))
        }
        ServerResponse::BlobData(_) => Err(verify_fail(
            "the server sent another blob than the descriptor names",
        )),
        other => Err(unexpected(&other)),
    }
}

/// A blob's stream after the server's answer, read out of order and put
/// back in order ([`Reassembler`]).
type BlobStream = (quinn::RecvStream, Reassembler, Option<Vec<u8>>);

/// When `pull` asks for the next part: once what is left of this one
/// would arrive within two round trips at the rate this one arrives (the
/// request takes one to bring the next part's first byte), so the link
/// does not go idle between parts. The server sends downloads in the
/// order they were asked for, so the next part's bytes follow this part's
/// instead of sharing the link with them; what arrives of it before it is
/// read (while this part is decrypted and made durable) is about what the
/// link carries in that time, not megabytes asked for too early.
/// On a short path (small connection windows, less than a stream's) the
/// next part is asked for only once this one has all arrived: however the
/// server orders its sending, the next part's bytes must not take the
/// connection's window from this part's.
#[derive(Debug, Clone, Copy)]
struct AskAhead {
    rtt: std::time::Duration,
    /// At most this many bytes ahead: [`Self::CAP`] on a long path, 0 on
    /// a short one.
    cap: u64,
}

impl AskAhead {
    /// At least this many bytes ahead (four batches), even on loopback.
    const FLOOR: u64 = 4 * BATCH as u64;
    /// At most about the bandwidth-delay product of a long, fast path (250
    /// ms at 400 Mbit/s is 12.5 MB). The next part's stream can hold at
    /// most the stream window, less than a long path's connection window,
    /// so this part's bytes always get through.
    const CAP: u64 = 16 << 20;

    /// Bytes still to arrive when the next part is asked for, after
    /// `received` bytes arrived in `elapsed`.
    fn bytes(self, received: u64, elapsed: std::time::Duration) -> u64 {
        let floor = Self::FLOOR.min(self.cap);
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return floor;
        }
        let ahead = received as f64 / secs * self.rtt.as_secs_f64() * 2.0;
        (ahead as u64).clamp(floor, self.cap)
    }
}

/// SHA-256 and size of what a download received.
type Hashed = ([u8; 32], u64);

/// A blob whose bytes all arrived (or stopped arriving), while `consume`
/// may still be working through them.
struct Received<T> {
    consumer: tokio::task::JoinHandle<(Result<T, ConsumeError>, io::Result<Hashed>)>,
    broken: Option<String>,
    too_long: bool,
    blob: BlobRef,
}

/// Receives the bytes of `blob` from `recv` into `consume`, which runs on
/// a blocking thread. Returns once the network part is over; see
/// [`Received::finish`].
async fn receive_blob<T: Send + 'static>(
    (mut recv, mut reader, header): BlobStream,
    blob: &BlobRef,
    pb: &ProgressBar,
    mut nearly_done: Option<(AskAhead, tokio::sync::oneshot::Sender<()>)>,
    consume: impl FnOnce(&mut Incoming) -> Result<T, ConsumeError> + Send + 'static,
) -> Received<T> {
    let started = std::time::Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let consumer = tokio::task::spawn_blocking(move || {
        let mut input = Incoming::new(rx, header);
        let out = consume(&mut input);
        // Read whatever the consumer left, so the hash covers every byte.
        (out, input.finish())
    });
    let mut received = 0u64;
    let mut broken = None;
    let mut too_long = false;
    loop {
        match reader.read_batch(&mut recv, BATCH, None).await {
            Ok(Some(batch)) => {
                let n = batch.len() as u64;
                received += n;
                if received > blob.size {
                    too_long = true;
                    break;
                }
                let near = nearly_done.as_ref().is_some_and(|(ahead, _)| {
                    received + ahead.bytes(received, started.elapsed()) >= blob.size
                });
                if near {
                    if let Some((_, tx)) = nearly_done.take() {
                        let _ = tx.send(());
                    }
                }
                pb.inc(n);
                if tx.send(Ok(batch)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                broken = Some(e.to_string());
                let _ = tx.send(Err(e.to_string())).await;
                break;
            }
        }
    }
    drop(tx);
    Received {
        consumer,
        broken,
        too_long,
        blob: blob.clone(),
    }
}

impl<T> Received<T> {
    /// Waits for the consumer, then checks that exactly the descriptor's
    /// bytes arrived (size and SHA-256). Whatever the consumer wrote is
    /// unverified until this returns `Ok`.
    async fn finish(self) -> CmdResult<T> {
        let Self {
            consumer,
            broken,
            too_long,
            blob,
        } = self;
        let (out, hashed) = consumer.await.map_err(|e| Fail::other(e.to_string()))?;
        finish_blob(&blob, out, hashed, broken, too_long)
    }
}

fn finish_blob<T>(
    blob: &BlobRef,
    out: Result<T, ConsumeError>,
    hashed: io::Result<([u8; 32], u64)>,
    broken: Option<String>,
    too_long: bool,
) -> CmdResult<T> {
    if let Some(e) = broken {
        return Err(Fail::lost(format!("download interrupted ({e})")));
    }
    let tampered = || {
        verify_fail(format!(
            "blob {} does not match the signed descriptor (tampered or swapped on the server)",
            hex(&blob.sha256)
        ))
    };
    if too_long {
        return Err(tampered());
    }
    match hashed {
        Ok((sha, size)) if sha == blob.sha256 && size == blob.size => {}
        Ok(_) => return Err(tampered()),
        Err(e) => return Err(Fail::connect(format!("download interrupted ({e})"))),
    }
    out.map_err(|e| match e {
        ConsumeError::Invalid(e) => verify_fail(format!("cannot decrypt: {e}")),
        ConsumeError::Write(e) => Fail::other(format!("cannot write the download: {e}")),
    })
}

/// Largest age header accepted: room for a hybrid stanza (about 1,560
/// bytes) for each of [`packet::MAX_RECIPIENTS`] readers and a recovery
/// recipient.
const MAX_AGE_HEADER: usize = 2 << 20;

/// What went wrong opening an age file, named by the failure kinds of the
/// age test vectors (C2SP CCTV): `header failure`, `no match`, `HMAC
/// failure`.
fn age_failure(e: &age::DecryptError) -> String {
    match e {
        age::DecryptError::NoMatchingKeys => {
            "none of this user's age keys can unwrap its file key (no match)".to_owned()
        }
        age::DecryptError::InvalidMac => {
            "its header MAC does not match the file key (HMAC failure)".to_owned()
        }
        other => format!("invalid age header: {other} (header failure)"),
    }
}

/// Reads an age header, checking its stanza framing strictly as the age
/// spec writes it: every stanza has a body whose last line is shorter than
/// 64 columns. (The age crate also accepts a legacy form without that final
/// line; such a file is refused here.) Returns the header's bytes.
fn read_age_header(r: &mut (impl io::BufRead + ?Sized)) -> Result<Vec<u8>, String> {
    let mut header = Vec::new();
    let mut line = String::new();
    let mut next = |line: &mut String| -> Result<bool, String> {
        line.clear();
        let n = r.read_line(line).map_err(|e| e.to_string())?;
        header.extend_from_slice(line.as_bytes());
        if header.len() > MAX_AGE_HEADER {
            return Err("age header too large".into());
        }
        if n == 0 || !line.ends_with('\n') {
            return Ok(false);
        }
        line.pop();
        Ok(true)
    };
    if !next(&mut line)? || line != "age-encryption.org/v1" {
        return Err("not an age v1 file".into());
    }
    let base64_line = |l: &str| {
        l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    loop {
        if !next(&mut line)? {
            return Err("age header truncated".into());
        }
        if line.starts_with("--- ") {
            return Ok(header);
        }
        if !line.starts_with("-> ") {
            return Err("malformed age header line".into());
        }
        // The body: full 64-column lines, then one shorter final line.
        loop {
            if !next(&mut line)? {
                return Err("age header truncated".into());
            }
            if !base64_line(&line) || line.len() > 64 {
                return Err("age stanza body missing or malformed".into());
            }
            if line.len() < 64 {
                break;
            }
        }
    }
}

/// Remembers whether a write failed (to tell a full disk from bad input).
struct WriteWatch<'a, W: ?Sized> {
    inner: &'a mut W,
    failed: bool,
}

impl<W: Write + ?Sized> Write for WriteWatch<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.failed |= r.is_err();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.failed |= r.is_err();
        r
    }
}

/// Decrypts the age file `input` yields into `out`, streaming. This is the
/// pull path's decryption: what it writes is released by age chunk by
/// chunk and is trusted only once the whole file decrypted and the caller
/// checked the hashes.
///
/// `reshared`: for a packet re-shared to this reader, the header that
/// opens the payload (`matterdrop_common::reshare`); the file's own header
/// is read past (its bytes still count for the caller's hash).
pub fn decrypt_stream(
    input: &mut dyn io::BufRead,
    out: &mut dyn Write,
    ids: &[AgeIdentity],
    reshared: Option<&[u8]>,
) -> Result<(), ConsumeError> {
    let own = read_age_header(input)
        .map_err(|e| ConsumeError::Invalid(format!("{e} (header failure)")))?;
    let header = match reshared {
        Some(h) => {
            let new = read_age_header(&mut &h[..]).map_err(|e| {
                ConsumeError::Invalid(format!("re-share header: {e} (header failure)"))
            })?;
            // The re-share must open the key the sender's header (which
            // the signed descriptor's hash covers) was made with.
            let parse = |b: &[u8]| {
                matterdrop_common::reshare::Header::parse(b)
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        ConsumeError::Invalid("unreadable age header (header failure)".into())
                    })
            };
            matterdrop_common::reshare::same_file_key(&parse(&own)?, &parse(&new)?, ids)
                .map_err(|e| ConsumeError::Invalid(format!("re-share header: {e}")))?;
            new
        }
        None => own,
    };
    let dec = age::Decryptor::new_buffered(io::Cursor::new(header).chain(input))
        .map_err(|e| ConsumeError::Invalid(age_failure(&e)))?;
    let mut plain = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| ConsumeError::Invalid(age_failure(&e)))?;
    let mut w = WriteWatch {
        inner: out,
        failed: false,
    };
    match copy_big(&mut plain, &mut w) {
        Ok(_) => Ok(()),
        Err(e) if w.failed => Err(ConsumeError::Write(e)),
        Err(e) => Err(ConsumeError::Invalid(format!(
            "the payload does not decrypt: {e} (payload failure)"
        ))),
    }
}

/// Decrypts the age file `src` into `dst` with [`decrypt_stream`]; returns
/// the plaintext's SHA-256 and size. On any failure `dst` is removed.
pub fn decrypt_file(src: &Path, dst: &Path, ids: &[AgeIdentity]) -> CmdResult<([u8; 32], u64)> {
    let result = (|| -> Result<([u8; 32], u64), ConsumeError> {
        let mut input =
            BufReader::with_capacity(BUF, File::open(src).map_err(ConsumeError::Write)?);
        let out = File::create(dst).map_err(ConsumeError::Write)?;
        let mut out = Hashing::new(BufWriter::with_capacity(BUF, out));
        decrypt_stream(&mut input, &mut out, ids, None)?;
        let (mut file, sha, size) = out.done();
        file.flush().map_err(ConsumeError::Write)?;
        file.get_ref().sync_all().map_err(ConsumeError::Write)?;
        Ok((sha, size))
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(dst);
        match e {
            ConsumeError::Invalid(e) => verify_fail(format!("cannot decrypt: {e}")),
            ConsumeError::Write(e) => Fail::other(e.to_string()),
        }
    })
}

/// The plaintext a pull writes, hashed as it goes (beside the ciphertext it
/// came from, when attached to a download's [`CipherHash`]).
struct PlainOut<W> {
    inner: W,
    lane: Sha256Lane,
    pair: Option<SharedCipherHash>,
}

impl<W: Write> Write for PlainOut<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        match &self.pair {
            Some(h) => lock(h).pair(&mut self.lane, &data[..n]),
            None => self.lane.update(&data[..n]),
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where a file's download stands: parts verified and decrypted, and the
/// plaintext bytes they produced (`partial/N.state`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct FileProgress {
    parts: usize,
    bytes: u64,
}

/// Downloads, verifies and decrypts the parts of one file into `plain`,
/// resuming after the parts an earlier run verified. Returns the
/// plaintext's SHA-256 and size and how many ciphertext bytes were reused.
#[allow(clippy::too_many_arguments)]
async fn pull_file(
    session: &Session,
    packet: &str,
    (parts, opened): (&[BlobRef], Option<([u8; 32], BlobStream)>),
    plain: &Path,
    state: &Path,
    ids: &[AgeIdentity],
    pb: &ProgressBar,
) -> CmdResult<([u8; 32], u64, u64)> {
    let progress: FileProgress = fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Plaintext: readable by this user only, wherever it lies.
    let file = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(plain)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    let progress = if progress.parts <= parts.len() && file.metadata()?.len() >= progress.bytes {
        progress
    } else {
        FileProgress::default()
    };
    // A part asked for in advance is needed only when starting afresh;
    // otherwise it is let go now, not after the re-hash below.
    let opened = opened.filter(|_| progress.parts == 0);
    file.set_len(progress.bytes)?;
    // Re-hash the plaintext of the parts already verified (gigabytes,
    // perhaps: off the runtime thread, which keeps the connection alive).
    let (file, prefix) = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let mut prefix = Sha256Lane::new();
        copy_big(&mut &file, &mut LaneWriter(&mut prefix))?;
        Ok((file, prefix))
    })
    .await
    .map_err(|e| Fail::other(e.to_string()))??;
    let mut file = file;
    if prefix.len() != progress.bytes {
        return Err(Fail::other("the partial download changed while reading it"));
    }
    let resumed: u64 = parts[..progress.parts].iter().map(|b| b.size).sum();
    if progress.parts > 0 {
        pb.suspend(|| {
            eprintln!(
                "mdrop: resumed at part {} of {} ({} bytes already verified)",
                progress.parts + 1,
                parts.len(),
                progress.bytes
            );
        });
    }
    pb.inc(resumed);
    io::Seek::seek(&mut file, io::SeekFrom::Start(progress.bytes))?;
    let mut out = PlainOut {
        inner: DirectFile::new(file, progress.bytes, BUF),
        lane: prefix,
        pair: None,
    };
    // `opened`: the stream of a part asked for in advance, used if it is
    // the one needed first.
    let mut next = match (parts.get(progress.parts), opened) {
        (Some(blob), Some((sha, recv))) if sha == blob.sha256 => Some(recv),
        (Some(blob), _) => Some(open_blob(session, packet, blob).await?),
        (None, _) => None,
    };
    for (j, blob) in parts.iter().enumerate().skip(progress.parts) {
        let Some(recv) = next.take() else {
            return Err(Fail::other("internal error: no stream for the next part"));
        };
        let id = ids.to_vec();
        // The next part is asked for while this one still has about two
        // round trips' worth to arrive (see `AskAhead`).
        let (near_tx, near_rx) = tokio::sync::oneshot::channel();
        let ahead = AskAhead {
            rtt: session.rtt(),
            cap: if session.long_path() {
                AskAhead::CAP
            } else {
                0
            },
        };
        let receiving = receive_blob(recv, blob, pb, Some((ahead, near_tx)), move |input| {
            out.pair = Some(input.cipher_hash());
            let header = input.take_header();
            let decrypted = decrypt_stream(input, &mut out, &id, header.as_deref());
            out.pair = None;
            decrypted?;
            out.flush().map_err(ConsumeError::Write)?;
            // Durable before the progress file vouches for it.
            out.inner
                .get_ref()
                .sync_data()
                .map_err(ConsumeError::Write)?;
            Ok(out)
        });
        // While this part is decrypted and made durable, the next one
        // already streams in (up to the stream's flow-control window; the
        // server waits up to 30 s for it to be read). This part's outcome
        // comes first: a tampered part is reported as such, and a verified
        // one is recorded even if asking for the next one failed.
        let opening = async {
            match parts.get(j + 1) {
                Some(blob) => {
                    // Sent or dropped: either way, time to ask.
                    let _ = near_rx.await;
                    Some(open_blob(session, packet, blob).await)
                }
                None => None,
            }
        };
        let (received, opened) = tokio::join!(receiving, opening);
        out = received.finish().await?;
        let done = FileProgress {
            parts: j + 1,
            bytes: out.lane.len(),
        };
        let bytes = serde_json::to_vec(&done).map_err(|e| Fail::other(e.to_string()))?;
        crate::home::write_replace(state, &bytes, 0o600)?;
        next = opened.transpose()?;
    }
    let (file, size) = (out.inner, out.lane.len());
    let sha = out.lane.finalize();
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut file = file;
        file.flush()?;
        file.get_ref().sync_all()?;
        file.drop_cache();
        Ok(())
    })
    .await
    .map_err(|e| Fail::other(e.to_string()))??;
    Ok((sha, size, resumed))
}

/// Downloads one blob as it is stored into `dst` (through a temporary file,
/// renamed only once verified), unless an earlier run already did.
async fn pull_raw(
    session: &Session,
    packet: &str,
    blob: &BlobRef,
    dst: &Path,
    pb: &ProgressBar,
) -> CmdResult<u64> {
    if fs::metadata(dst).is_ok_and(|m| m.len() == blob.size) {
        pb.inc(blob.size);
        return Ok(blob.size);
    }
    let tmp = dst.with_extension("tmp");
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let file = fetch_blob(session, packet, blob, pb, move |input| {
        let mut out = BufWriter::with_capacity(BUF, file);
        let mut w = WriteWatch {
            inner: &mut out,
            failed: false,
        };
        match copy_big(input, &mut w) {
            Ok(_) => {}
            Err(e) if w.failed => return Err(ConsumeError::Write(e)),
            Err(e) => return Err(ConsumeError::Invalid(e.to_string())),
        }
        out.into_inner()
            .map_err(|e| ConsumeError::Write(e.into_error()))
    })
    .await?;
    file.sync_all()?;
    fs::rename(&tmp, dst)?;
    Ok(0)
}

/// Largest manifest ciphertext fetched (into memory).
const MAX_MANIFEST_BLOB: u64 = 2 * packet::MAX_MANIFEST as u64;

/// Creates `dir` (a staging folder for plaintext under `HOME/partial`)
/// and its missing parents 0700, and makes it and its parent this user's
/// only, whatever modes they had.
fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(parent) = dir.parent() {
        fs::set_permissions(parent, fs::Permissions::from_mode(0o700))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Renames, or copies when `src` and `dst` are on different filesystems.
fn move_file(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::rename(src, dst).is_ok() {
        return Ok(());
    }
    let tmp = dst.with_extension("mdrop-tmp");
    fs::copy(src, &tmp)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dst)?;
    fs::remove_file(src)
}

/// `mdrop pull`.
pub async fn pull(ctx: &Ctx, args: &PullArgs) -> CmdResult {
    crate::hygiene::sweep_and_tell(&ctx.home);
    // A whole, well-formed id before it names a folder.
    let resolved = PullArgs {
        id: resolve_id(ctx, &args.id).await?,
        out: args.out.clone(),
        raw: args.raw,
        force: args.force,
        retries: args.retries,
    };
    let args = &resolved;
    // Both keys before the session opens: a passphrase prompt must not
    // hold up the connection.
    let key = identity::signing_key(&ctx.home)?;
    let keys = OwnKeys::load(ctx, &key)?;
    let partial = ctx.home.path("partial").join(&args.id);
    let (key_ref, keys_ref, partial_ref) = (&key, &keys, &partial);
    let work = with_retries(args.retries, |_| async move {
        let (session, server) = Session::open(&ctx.home, key_ref).await?;
        let result = pull_inner(
            ctx,
            args,
            &session,
            &server.principal,
            keys_ref,
            partial_ref,
        )
        .await;
        // Every file verified: say so, signed, for the chain of custody.
        // The files are already in place, so a failure here is a warning.
        let confirmed = match &result {
            Ok(p) => Some(confirm_delivery(&session, key_ref, &server.principal, p).await),
            Err(_) => None,
        };
        session.close().await;
        result.map(|p| (p, confirmed))
    });
    let result = interruptible(work, "the verified parts are kept").await;
    match result {
        Ok((
            Pulled {
                json: mut done,
                review,
                ..
            },
            confirmed,
        )) => {
            let _ = fs::remove_dir_all(&partial);
            match confirmed {
                Some(Ok(index)) => done["delivery_log_index"] = json!(index),
                Some(Err(e)) => eprintln!(
                    "mdrop: warning: the files are verified, but the signed delivery confirmation \
                     could not be logged: {e}"
                ),
                None => {}
            }
            ctx.out.emit(&done, || {
                let mut s = format!(
                    "Pulled packet {} into {}\n",
                    done["id"].as_str().unwrap_or(""),
                    done["out"].as_str().unwrap_or("")
                );
                if let Some(files) = done["files"].as_array() {
                    for f in files {
                        let _ = writeln!(s, "  {}", escape(f.as_str().unwrap_or(""), false));
                    }
                }
                if let Some(note) = done["note"].as_str().filter(|n| !n.is_empty()) {
                    // The sender's words: escaped, so they cannot move the
                    // cursor or rewrite the screen.
                    let _ = writeln!(s, "Note: {}", escape(note, true));
                }
                if let Some(r) = &review {
                    s.push_str(&r.describe());
                }
                s
            });
            Ok(())
        }
        Err(f) => {
            // Verification failures leave nothing behind; interrupted
            // transfers keep their partial ciphertext for a resume.
            if f.code == exit::VERIFY {
                let _ = fs::remove_dir_all(&partial);
            }
            Err(f)
        }
    }
}

/// Sends the signed statement that every file of `pulled` was received and
/// verified (`custody::DeliveryStatement`); returns its log index.
pub async fn confirm_delivery(
    session: &Session,
    key: &ed25519_dalek::SigningKey,
    me: &str,
    pulled: &Pulled,
) -> CmdResult<u64> {
    let d = Descriptor::parse(&pulled.descriptor).map_err(|e| Fail::other(e.to_string()))?;
    let statement = matterdrop_common::custody::DeliveryStatement {
        id: d.id.clone(),
        matter: d.matter.clone(),
        descriptor_sha256: Sha256::digest(&pulled.descriptor).into(),
        manifest_sha256: Sha256::digest(&pulled.manifest_bytes).into(),
        principal: me.to_owned(),
        time: now(),
    };
    let signed = statement
        .to_signed_bytes()
        .map_err(|e| Fail::other(e.to_string()))?;
    let signature = matterdrop_common::sign::sign(key, &signed).to_vec();
    match session
        .request(&ClientRequest::DeliveryConfirm(
            matterdrop_common::proto::DeliveryConfirmRequest { signed, signature },
        ))
        .await?
    {
        ServerResponse::DeliveryRecorded(index) => Ok(index),
        other => Err(unexpected(&other)),
    }
}

/// A pulled, verified packet or deliverable.
#[derive(Debug)]
pub struct Pulled {
    /// What `pull --json` prints.
    pub json: serde_json::Value,
    /// The signed descriptor bytes.
    pub descriptor: Vec<u8>,
    /// The decrypted manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// Whether its sender is, in the roster now, a current member with the
    /// key that signed it and a role that sends this kind (a provider for a
    /// deliverable, an attorney or paralegal for a packet).
    pub sender_current: bool,
    /// A reviewed deliverable's review, checked.
    pub review: Option<super::review::OpenedReview>,
}

/// This client's keys, as `pull` needs them (loaded before a session
/// opens, so a passphrase prompt does not stall the connection).
pub struct OwnKeys {
    /// The Ed25519 key this client signs with.
    pub signing: ed25519_dalek::VerifyingKey,
    /// The age identities packets are encrypted to (every key this user
    /// has had: the current one last).
    pub age: Vec<AgeIdentity>,
}

impl OwnKeys {
    /// Loads the age identity beside the already loaded signing key.
    pub fn load(ctx: &Ctx, key: &ed25519_dalek::SigningKey) -> CmdResult<Self> {
        Ok(Self {
            signing: key.verifying_key(),
            age: identity::age_identities(&ctx.home)?,
        })
    }
}

impl std::fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKeys")
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

/// Checks a packet's signed descriptor `d` (parsed from `info`) against
/// the matter's signed `roster`: its sender signed it with a key the
/// roster gave the sender, and every recipient (and the recovery
/// recipient) is one the roster sanctioned, then or since. Returns whether
/// the sender is still a current member of the role that sends such a
/// packet with that key. Any failure is exit 4.
pub(crate) fn verify_descriptor(
    d: &Descriptor,
    info: &PacketInfo,
    roster: &matterdrop_common::roster::Roster,
    me: &str,
    own_signing: &ed25519_dalek::VerifyingKey,
) -> CmdResult<bool> {
    // The sender and every recipient must be ones the matter's signed
    // roster sanctioned (then or since: a packet keeps the recipients it was
    // pushed to).
    if !roster
        .ever_signing_keys(&d.sender)
        .any(|k| *k == info.sender_key)
    {
        return Err(verify_fail(format!(
            "{} of matter {} is signed with a key the matter's roster never gave its sender {}",
            d.id, d.matter, d.sender
        )));
    }
    if let Some(r) = d
        .recipients
        .iter()
        .find(|r| !roster.ever_sanctioned(&r.principal, &r.age))
    {
        return Err(verify_fail(format!(
            "{} is encrypted to {} ({}), a key the signed roster of matter {} never sanctioned",
            d.id, r.principal, r.age, d.matter
        )));
    }
    if let Some(rec) = &d.recovery {
        if !roster.ever_recovery.iter().any(|a| a.recipient() == rec) {
            return Err(verify_fail(format!(
                "{} is encrypted to a recovery recipient ({rec}) the signed roster of matter {} never set",
                d.id, d.matter
            )));
        }
    }
    let sender_current = roster
        .member_with_key(&d.sender, &info.sender_key)
        .is_some_and(|m| match d.kind {
            Kind::Deliverable => m.role == matterdrop_common::roles::Role::Provider,
            Kind::Packet => matches!(
                m.role,
                matterdrop_common::roles::Role::Attorney
                    | matterdrop_common::roles::Role::Paralegal
            ),
        });
    let sender_key = ed25519_dalek::VerifyingKey::from_bytes(&info.sender_key)
        .map_err(|_| verify_fail("the sender's key is invalid"))?;
    if d.sender == me && sender_key.to_bytes() != own_signing.to_bytes() {
        return Err(verify_fail(
            "the server claims this client sent the packet with another key",
        ));
    }
    d.verify(&sender_key, &info.signature).map_err(|_| {
        verify_fail(format!(
            "the descriptor of {} is not validly signed by its sender {}",
            d.id, d.sender
        ))
    })?;
    Ok(sender_current)
}

/// For a packet `d` this user is not a recipient of: checks the re-share
/// the server says it holds for them, and records it in `session` so that
/// every blob's re-share header is checked against it. The statement must
/// be signed by the sharer with a key the roster gave them, the sharer
/// must hold the file keys (the sender or a recipient), the new reader
/// must be this user with one of their own age keys (sanctioned by the
/// roster), and it must cover the descriptor's blobs in order. Returns
/// the statement.
pub(crate) fn verify_share(
    session: &Session,
    d: &Descriptor,
    info: &PacketInfo,
    roster: &matterdrop_common::roster::Roster,
    me: &str,
    ids: &[AgeIdentity],
) -> CmdResult<matterdrop_common::custody::ShareStatement> {
    let Some(share) = &info.share else {
        return Err(verify_fail(format!(
            "{} is not encrypted to {me} and the server shows no re-share of it to {me}",
            d.id
        )));
    };
    let st = matterdrop_common::custody::ShareStatement::parse(&share.signed)
        .map_err(|e| verify_fail(e.to_string()))?;
    let mine: Vec<String> = ids
        .iter()
        .map(|i| i.public().recipient().to_owned())
        .collect();
    let blobs: Vec<[u8; 32]> = std::iter::once(d.manifest.sha256)
        .chain(d.blobs.iter().map(|b| b.sha256))
        .collect();
    let listed: Vec<[u8; 32]> = st.headers.iter().map(|(b, _)| *b).collect();
    let problem = if st.id != d.id || st.matter != d.matter {
        Some("the re-share statement names another packet or matter".to_owned())
    } else if st.descriptor_sha256 != <[u8; 32]>::from(Sha256::digest(&info.descriptor)) {
        Some("the re-share statement was made for another descriptor".to_owned())
    } else if st.recipient != me || !mine.contains(&st.age) {
        Some(format!(
            "the re-share statement is for {} ({}), not this user's key",
            st.recipient, st.age
        ))
    } else if st.sharer != d.sender && !d.recipients.iter().any(|r| r.principal == st.sharer) {
        Some(format!(
            "{} re-shared it but was neither its sender nor a recipient",
            st.sharer
        ))
    } else if !roster
        .ever_signing_keys(&st.sharer)
        .any(|k| *k == share.sharer_key)
    {
        Some(format!(
            "the re-share is signed with a key the roster of matter {} never gave {}",
            d.matter, st.sharer
        ))
    } else if !roster.ever_sanctioned(me, &st.age) {
        Some(format!(
            "the roster of matter {} never sanctioned {me} with key {}",
            d.matter, st.age
        ))
    } else if listed != blobs {
        Some("the re-share statement does not cover the descriptor's blobs in order".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        return Err(verify_fail(p));
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&share.sharer_key)
        .map_err(|_| verify_fail("the sharer's key is invalid"))?;
    matterdrop_common::sign::verify(&key, &share.signed, &share.signature).map_err(|_| {
        verify_fail(format!(
            "the re-share statement of {} is not validly signed by {}",
            d.id, st.sharer
        ))
    })?;
    session.accept_share(st.clone());
    Ok(st)
}

/// Decrypts the manifest of `d` (its ciphertext, already checked against
/// the descriptor's hash) and checks it against the descriptor. Returns it
/// with its canonical bytes.
pub(crate) fn decrypt_manifest(
    (cipher, header): &(Vec<u8>, Option<Vec<u8>>),
    d: &Descriptor,
    ids: &[AgeIdentity],
) -> CmdResult<(Manifest, Vec<u8>)> {
    let mut bytes = Vec::new();
    decrypt_stream(&mut &cipher[..], &mut bytes, ids, header.as_deref())
        .map_err(|e| verify_fail(format!("cannot decrypt the manifest: {e}")))?;
    let manifest = Manifest::parse(&bytes).map_err(|e| verify_fail(format!("manifest: {e}")))?;
    manifest
        .check_against(d)
        .map_err(|e| verify_fail(format!("manifest: {e}")))?;
    Ok((manifest, bytes))
}

/// Fetches the manifest ciphertext of `d` (of packet `d.id`), checked
/// against the descriptor's size and hash.
pub(crate) async fn fetch_manifest_cipher(
    session: &Session,
    d: &Descriptor,
) -> CmdResult<(Vec<u8>, Option<Vec<u8>>)> {
    if d.manifest.size > MAX_MANIFEST_BLOB {
        return Err(verify_fail(format!(
            "the manifest blob of {} bytes exceeds the limit of {MAX_MANIFEST_BLOB}",
            d.manifest.size
        )));
    }
    fetch_blob(
        session,
        &d.id,
        &d.manifest,
        &ProgressBar::hidden(),
        read_whole,
    )
    .await
}

/// A whole (small) blob and the re-share header that came with it.
fn read_whole(input: &mut Incoming) -> Result<(Vec<u8>, Option<Vec<u8>>), ConsumeError> {
    let mut v = Vec::new();
    input
        .read_to_end(&mut v)
        .map_err(|e| ConsumeError::Invalid(e.to_string()))?;
    Ok((v, input.take_header()))
}

/// The answer to a packet the server says expired: checked against the
/// roster this client verified (a deletion the signed retention and hold
/// did not allow refuses with exit 4), then reported.
pub(crate) fn expired(
    ctx: &Ctx,
    d: &Descriptor,
    e: &matterdrop_common::proto::ExpiredInfo,
) -> CmdResult<Fail> {
    let chain = crate::roster::load_cache(&ctx.home, &d.matter)?;
    matterdrop_common::retention::check_expiry(
        &chain,
        d.created_at,
        (e.at, e.roster_len),
        crate::unix_now(),
    )
    .map_err(|why| {
        verify_fail(format!(
            "the server deleted {} as expired, which matter {}'s signed roster does not \
                 allow: {why}",
            d.id,
            escape(&d.matter, false)
        ))
    })?;
    Ok(Fail::new(
        exit::OTHER,
        format!(
            "{} expired on {} under matter {}'s retention: the server deleted its files \
             (audit log entry {})",
            d.id,
            crate::when::local(e.at),
            escape(&d.matter, false),
            e.index
        ),
    ))
}

/// Pulls into `args.out` with `session`, keeping partial data in `partial`.
pub async fn pull_inner(
    ctx: &Ctx,
    args: &PullArgs,
    session: &Session,
    me: &str,
    keys: &OwnKeys,
    partial: &Path,
) -> CmdResult<Pulled> {
    let resp = session
        .request(&ClientRequest::PacketGet(PacketRef {
            id: args.id.clone(),
        }))
        .await?;
    let ServerResponse::Packet(info) = resp else {
        return Err(unexpected(&resp));
    };
    let d =
        Descriptor::parse(&info.descriptor).map_err(|e| verify_fail(format!("descriptor: {e}")))?;
    if d.id != args.id || info.id != args.id {
        return Err(verify_fail(format!(
            "the server returned descriptor {} for {}",
            d.id, args.id
        )));
    }
    let synced = crate::roster::sync(&ctx.home, session, &d.matter).await?;
    let roster = &synced.roster;
    let sender_current = verify_descriptor(&d, &info, roster, me, &keys.signing)?;
    if let Some(e) = &info.expired {
        return Err(expired(ctx, &d, e)?);
    }
    if let Some(def) = roster
        .role_def
        .as_ref()
        .filter(|def| d.kind == Kind::Packet && def.sign_off.iter().any(|t| t.as_str() == d.task))
    {
        eprintln!(
            "mdrop: task {} needs attorney sign-off under matter {}'s role definition v{} \
             (`mdrop matter show {}`)",
            escape(&d.task, false),
            escape(&d.matter, false),
            def.version,
            escape(&d.matter, false)
        );
    }
    let recipient = d
        .recipients
        .iter()
        .any(|r| r.principal == me && keys.age.iter().any(|i| i.public().recipient() == r.age));
    if !recipient {
        if info.share.is_none() {
            return Err(Fail::new(
                exit::DENIED,
                format!("packet {} is not encrypted to {me}", d.id),
            ));
        }
        // Re-shared to this user by a holder of its file keys.
        verify_share(session, &d, &info, roster, me, &keys.age)?;
        if args.raw {
            return Err(Fail::new(
                exit::USAGE,
                format!(
                    "--raw saves the age files as stored, and those of {} are not encrypted to {me}                      (it was re-shared: its headers were re-wrapped); pull it without --raw",
                    d.id
                ),
            ));
        }
    } else if info.share.is_some() {
        return Err(verify_fail(format!(
            "the server attached a re-share to {}, which is encrypted to {me} already",
            d.id
        )));
    }
    // A deliverable's review, checked (bound to these descriptor bytes)
    // before anything is downloaded: one the server made up or changed
    // refuses the pull.
    let review = match (&info.review, d.packet.as_deref()) {
        (Some(r), Some(packet)) => Some(super::review::open_review(
            r,
            (&d.id, &d.matter),
            Some((
                &matterdrop_common::receipt::sha256(&info.descriptor),
                packet,
            )),
            roster,
            &keys.age,
        )?),
        (Some(_), None) => {
            return Err(verify_fail(format!(
                "the server attached a review to {}, which is not a deliverable",
                d.id
            )));
        }
        (None, _) => None,
    };
    let ident = keys.age.clone();
    private_dir(partial)?;
    crate::hygiene::touch(partial);
    // Which matter this (decrypted) partial download belongs to, for
    // `mdrop purge`.
    super::purge::mark_partial(partial, &d.matter)?;

    let pb = bar(d.total_size(), "downloading");
    if d.manifest.size > MAX_MANIFEST_BLOB {
        return Err(verify_fail(format!(
            "the manifest blob of {} bytes exceeds the limit of {MAX_MANIFEST_BLOB}",
            d.manifest.size
        )));
    }
    // On a long path the first part is asked for with the manifest (one
    // round trip, not two); its bytes wait in the stream's window until
    // the manifest is verified, and are dropped unread if the manifest
    // does not start with that part. (The stream window is smaller than a
    // long path's connection window, so the manifest always gets through;
    // on a short path the round trip costs nothing.)
    // (Not when an earlier run verified parts of the first file: its
    // first part is not needed.)
    let prefetch = d
        .blobs
        .first()
        .filter(|_| !args.raw && session.long_path() && !partial.join("0.state").exists());
    let (manifest_cipher, first) = tokio::join!(
        fetch_blob(session, &d.id, &d.manifest, &pb, read_whole),
        async {
            match prefetch {
                // A failure here is met again, and reported, when the part
                // is asked for in its turn.
                Some(b) => open_blob(session, &d.id, b)
                    .await
                    .ok()
                    .map(|r| (b.sha256, r)),
                None => None,
            }
        }
    );
    let manifest_cipher = manifest_cipher?;
    let mut first = first;
    let (manifest, bytes) = decrypt_manifest(&manifest_cipher, &d, &ident)?;

    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from(&d.id));
    let mut staged = Vec::new();
    let mut resumed = 0;
    for (i, f) in manifest.files.iter().enumerate() {
        let parts = f
            .blobs
            .iter()
            .map(|h| {
                d.blobs.iter().find(|b| b.sha256 == *h).ok_or_else(|| {
                    verify_fail(format!(
                        "manifest names a blob the descriptor lacks for {}",
                        f.path
                    ))
                })
            })
            .collect::<CmdResult<Vec<&BlobRef>>>()?;
        let rel: PathBuf = packet::sanitize_path(&f.path)
            .map_err(|e| verify_fail(e.to_string()))?
            .iter()
            .collect();
        if args.raw {
            let width = parts.len().saturating_sub(1).to_string().len().max(3);
            for (j, blob) in parts.iter().enumerate() {
                let cipher = partial.join(format!("{i}-{j}.age"));
                resumed += pull_raw(session, &d.id, blob, &cipher, &pb).await?;
                let mut name = rel.clone().into_os_string();
                if parts.len() > 1 {
                    name.push(format!(".{j:0width$}"));
                }
                name.push(".age");
                staged.push((cipher, PathBuf::from(name), blob.sha256, blob.size));
            }
            continue;
        }
        let plain = partial.join(format!("{i}.plain"));
        let state = partial.join(format!("{i}.state"));
        let parts: Vec<BlobRef> = parts.into_iter().cloned().collect();
        let (sha, size, reused) = pull_file(
            session,
            &d.id,
            (&parts, first.take()),
            &plain,
            &state,
            &ident,
            &pb,
        )
        .await?;
        resumed += reused;
        if sha != f.sha256 || size != f.size {
            let _ = fs::remove_file(&plain);
            let _ = fs::remove_file(&state);
            return Err(verify_fail(format!(
                "{} does not match the hash in the signed manifest",
                f.path
            )));
        }
        staged.push((plain, rel, f.sha256, f.size));
    }
    pb.finish_and_clear();
    if args.raw {
        let path = partial.join("manifest.age");
        fs::write(&path, &manifest_cipher.0)?;
        staged.push((
            path,
            PathBuf::from("manifest.age"),
            d.manifest.sha256,
            d.manifest.size,
        ));
    }
    // Everything verified: move into place, never over an existing file
    // unless --force, and never two files onto one name (`--raw` adds
    // suffixes; names are compared ignoring case).
    let mut targets = std::collections::BTreeSet::new();
    for (_, rel, _, _) in &staged {
        if !targets.insert(rel.to_string_lossy().to_lowercase()) {
            return Err(verify_fail(format!(
                "two files of the packet would be saved as {}",
                rel.display()
            ))
            .hint("pull without --raw"));
        }
    }
    for (_, rel, _, _) in &staged {
        let target = out_dir.join(rel);
        if target.exists() && !args.force {
            return Err(
                Fail::other(format!("refusing to overwrite {}", target.display()))
                    .hint("pass --force to replace it, or choose another --out"),
            );
        }
    }
    let mut names = Vec::new();
    let mut written = Vec::new();
    for (src, rel, sha, size) in &staged {
        let target = out_dir.join(rel);
        if let Some(parent) = target.parent() {
            // Folders this creates for plaintext are this user's only
            // (one that exists keeps its mode: the user chose it).
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        // A move across file systems copies: off the runtime thread.
        let (from, to) = (src.clone(), target.clone());
        tokio::task::spawn_blocking(move || move_file(&from, &to))
            .await
            .map_err(|e| Fail::other(e.to_string()))??;
        names.push(rel.display().to_string());
        written.push(super::purge::PulledFile::new(&target, sha, *size));
    }
    // What was written, for `mdrop purge` (a failure to record is said, not
    // fatal: the files are verified and in place).
    if let Err(e) = super::purge::record_pull(&ctx.home, &d.matter, &d.id, written) {
        eprintln!("mdrop: warning: could not record the pulled files for `mdrop purge`: {e}");
    }
    Ok(Pulled {
        json: json!({
            "id": d.id, "matter": d.matter, "sender": d.sender, "task": d.task, "out": out_dir,
            "files": names, "note": manifest.note, "raw": args.raw, "resumed_bytes": resumed,
            "review": review.as_ref().map(super::review::OpenedReview::json),
        }),
        review,
        descriptor: info.descriptor,
        manifest_bytes: bytes,
        manifest,
        sender_current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_next_part_is_asked_for_two_round_trips_ahead() {
        let ms = std::time::Duration::from_millis;
        let long = |rtt| AskAhead {
            rtt,
            cap: AskAhead::CAP,
        };
        // 25 MB/s at 60 ms: 1.5 MB a round trip, asked 3 MB ahead.
        assert_eq!(long(ms(60)).bytes(25_000_000, ms(1000)), 3_000_000);
        // 50 MB/s at 250 ms would be 25 MB ahead: capped.
        assert_eq!(long(ms(250)).bytes(50_000_000, ms(1000)), AskAhead::CAP);
        // A fast, short round trip, and no time measured yet: the floor.
        assert_eq!(long(ms(0)).bytes(1 << 30, ms(1000)), AskAhead::FLOOR);
        assert_eq!(long(ms(250)).bytes(1 << 20, ms(0)), AskAhead::FLOOR);
        // A short path asks only once the part has arrived.
        let short = AskAhead { rtt: ms(1), cap: 0 };
        assert_eq!(short.bytes(1 << 30, ms(1000)), 0);
        assert_eq!(short.bytes(0, ms(0)), 0);
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    proptest! {
        /// However a download's ciphertext is consumed and however the
        /// plaintext is written beside it (paired, alone, past the unpaired
        /// bound), both digests are those of the bytes.
        #[test]
        fn cipher_hash_pairs_without_losing_or_repeating_bytes(
            cipher_len in 0usize..(3 * UNPAIRED),
            plain_len in 0usize..200_000,
            cuts in proptest::collection::vec((1usize..300_000, 0usize..100_000), 1..12),
        ) {
            let cipher: Vec<u8> = (0..cipher_len).map(|i| (i * 7 + 3) as u8).collect();
            let plain: Vec<u8> = (0..plain_len).map(|i| (i * 11 + 5) as u8).collect();
            let mut h = CipherHash::default();
            let mut lane = Sha256Lane::new();
            let (mut c, mut p) = (&cipher[..], &plain[..]);
            for (take_c, take_p) in cuts {
                let k = take_c.min(c.len());
                h.push(bytes::Bytes::copy_from_slice(&c[..k]));
                c = &c[k..];
                prop_assert!(h.queued <= UNPAIRED);
                let k = take_p.min(p.len());
                h.pair(&mut lane, &p[..k]);
                p = &p[k..];
            }
            h.push(bytes::Bytes::copy_from_slice(c));
            h.pair(&mut lane, p);
            prop_assert_eq!(h.finish(), sha(&cipher));
            prop_assert_eq!(lane.finalize(), sha(&plain));
        }
    }

    #[test]
    fn the_outbox_sends_exactly_what_it_hashed_and_hashes_everything() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut out = Outbox::new();
        let mut plain_lane = Sha256Lane::new();
        let (mut cipher, mut plain) = (Vec::new(), Vec::new());
        for i in 0..40usize {
            let c: Vec<u8> = (0..(i * 9_973) % 300_000).map(|j| (i + j) as u8).collect();
            let p: Vec<u8> = (0..(i * 7_919) % 270_000).map(|j| (i * j) as u8).collect();
            out.buf.extend_from_slice(&c);
            out.hash_with(&mut plain_lane, &p);
            cipher.extend_from_slice(&c);
            plain.extend_from_slice(&p);
            if out.buf.len() >= CHUNK {
                assert!(out.send(&tx));
            }
        }
        out.hash_with(&mut plain_lane, &[]);
        assert!(out.send(&tx));
        drop(tx);
        let mut sent = Vec::new();
        while let Some(b) = rx.blocking_recv() {
            sent.extend_from_slice(&b);
        }
        assert_eq!(out.sent, cipher.len() as u64);
        assert!(sent == cipher, "the outbox sent other bytes");
        assert_eq!(std::mem::take(&mut out.lane).finalize(), sha(&cipher));
        assert_eq!(plain_lane.finalize(), sha(&plain));
    }
}
