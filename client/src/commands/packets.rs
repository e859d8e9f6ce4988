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
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use indicatif::{ProgressBar, ProgressStyle};
use matterdrop_common::packet::{
    self, BlobRef, Descriptor, Kind, Manifest, ManifestFile, Recipient,
};
use matterdrop_common::proto::{
    BlobGetRequest, BlobUpload, ClientRequest, DeliverPrepareRequest, InboxRequest,
    PacketCommitRequest, PacketRef, PushPrepareRequest, ServerResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::{DeliverArgs, InboxArgs, PullArgs, PushArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::pins::Pins;

const BUF: usize = 1 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

fn verify_fail(message: impl Into<String>) -> Fail {
    Fail::new(exit::VERIFY, message)
}

/// A progress bar on stderr, only when stderr is a terminal.
fn bar(total: u64, what: &str) -> ProgressBar {
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

fn copy_big(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
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

/// Encrypts `src` to `recipients` into `dst`: (plaintext sha, size, ciphertext ref).
fn encrypt_file(
    src: &mut dyn Read,
    dst: &Path,
    recipients: &[age::x25519::Recipient],
) -> io::Result<([u8; 32], u64, BlobRef)> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(io::Error::other)?;
    let out = Hashing::new(BufWriter::with_capacity(BUF, File::create(dst)?));
    let mut w = enc.wrap_output(out)?;
    let mut input = Hashing::new(src);
    copy_big(&mut input, &mut w)?;
    let (_, plain_sha, plain_size) = input.done();
    let out = w.finish()?;
    let (mut file, sha256, size) = out.done();
    file.flush()?;
    file.get_ref().sync_all()?;
    Ok((plain_sha, plain_size, BlobRef { sha256, size }))
}

/// The spool of one push: its ciphertext and what it was made from.
#[derive(Debug, Serialize, Deserialize)]
struct Spool {
    packet: String,
    created_at: u64,
    due: Option<u64>,
    manifest: SpoolBlob,
    files: Vec<SpoolFile>,
    /// (principal, age recipient), sorted.
    recipients: Vec<(String, String)>,
    recovery: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpoolBlob {
    sha256: [u8; 32],
    size: u64,
}

impl From<&SpoolBlob> for BlobRef {
    fn from(b: &SpoolBlob) -> Self {
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

#[derive(Debug, Serialize, Deserialize)]
struct SpoolFile {
    path: String,
    blob: SpoolBlob,
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
        h.update(format!("{rel}\0{}\0{mtime}\0", m.len()).as_bytes());
    }
    Ok(hex(&h.finalize()[..16]))
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
            accept_key_change: args.accept_key_change,
            files: args.files.clone(),
        },
    )
    .await
}

/// `mdrop deliver`.
pub async fn deliver(ctx: &Ctx, args: &DeliverArgs) -> CmdResult {
    send(
        ctx,
        &SendSpec {
            matter: args.matter.clone(),
            task: String::new(),
            deliverable_for: Some(args.packet.clone()),
            due: None,
            note: args.note.clone(),
            accept_key_change: args.accept_key_change,
            files: args.files.clone(),
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
    pub due: Option<std::time::Duration>,
    /// Note for the recipients.
    pub note: Option<String>,
    /// Accept changed recipient keys.
    pub accept_key_change: bool,
    /// Files and folders.
    pub files: Vec<PathBuf>,
}

async fn send(ctx: &Ctx, spec: &SendSpec) -> CmdResult {
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
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = push_inner(
        ctx,
        spec,
        &files,
        &key,
        &session,
        // The spool belongs to the server's identity, not its address.
        server
            .fingerprint
            .as_deref()
            .or(server.ca_file.as_deref())
            .unwrap_or(&server.server),
        &server.principal,
    )
    .await;
    session.close().await;
    let (d, dir, resumed) = result?;
    let _ = fs::remove_dir_all(&dir);
    let recipients: Vec<&str> = d.recipients.iter().map(|r| r.principal.as_str()).collect();
    ctx.out.emit(
        &json!({"id": d.id, "matter": d.matter, "task": d.task, "due": d.due.map(rfc3339),
                "files": files.len(), "size": d.total_size(), "recipients": recipients,
                "recovery": d.recovery.is_some(), "resumed_bytes": resumed}),
        || {
            format!(
                "Pushed packet {} to matter {} ({} files, {} bytes encrypted)\n  readable by: {}{}\n",
                d.id,
                d.matter,
                files.len(),
                d.total_size(),
                recipients.join(", "),
                if d.recovery.is_some() { " and the firm's recovery key" } else { "" }
            )
        },
    );
    Ok(())
}

async fn push_inner(
    ctx: &Ctx,
    spec: &SendSpec,
    files: &[(String, PathBuf)],
    key: &ed25519_dalek::SigningKey,
    session: &Session,
    server: &str,
    me: &str,
) -> CmdResult<(Descriptor, PathBuf, u64)> {
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
    let resp = session.request(&prepare).await?;
    let ServerResponse::Recipients(info) = resp else {
        return Err(unexpected(&resp));
    };
    // Every recipient's keys must match this client's pins.
    let mut pins = Pins::load(&ctx.home)?;
    for r in &info.recipients {
        if r.principal != me {
            pins.check(
                &r.principal,
                &r.signing_key,
                Some(&r.age),
                spec.accept_key_change,
            )?;
        }
    }
    pins.save(&ctx.home)?;
    let own_age = identity::age_recipient(&ctx.home)?;
    if !info
        .recipients
        .iter()
        .any(|r| r.principal == me && r.age == own_age)
    {
        return Err(verify_fail(
            "the server does not list this client's own key among the recipients",
        ));
    }
    let mut recipients: Vec<Recipient> = info
        .recipients
        .iter()
        .map(|r| Recipient {
            principal: r.principal.clone(),
            age: r.age.clone(),
        })
        .collect();
    recipients.sort_by(|a, b| a.principal.cmp(&b.principal));

    let dir = ctx.home.path("spool").join(spool_key(server, spec, files)?);
    let state_path = dir.join("spool.json");
    let spool: Spool = match fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Spool>(&b).ok())
    {
        Some(s) if s.recipients == pairs(&recipients) && s.recovery == info.recovery => s,
        _ => {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let due = spec.due.map(|d| now() + d.as_secs());
            let note = spec.note.clone().unwrap_or_default();
            let files = files.to_vec();
            let recips = recipients.clone();
            let recovery = info.recovery.clone();
            let dir2 = dir.clone();
            let prefix = if spec.deliverable_for.is_some() {
                "d"
            } else {
                "p"
            };
            let spool = tokio::task::spawn_blocking(move || {
                encrypt_all(&dir2, &files, &recips, recovery, due, &note, prefix)
            })
            .await
            .map_err(|e| Fail::other(e.to_string()))??;
            let bytes = serde_json::to_vec(&spool).map_err(|e| Fail::other(e.to_string()))?;
            crate::home::write_replace(&state_path, &bytes, 0o600)?;
            spool
        }
    };

    // Upload: manifest first, then each file, resuming where the server is.
    let blobs: Vec<(PathBuf, &SpoolBlob)> =
        std::iter::once((dir.join("manifest.age"), &spool.manifest))
            .chain(
                spool
                    .files
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (dir.join(format!("{i}.age")), &f.blob)),
            )
            .collect();
    let total: u64 = blobs.iter().map(|(_, b)| b.size).sum();
    let pb = bar(total, "uploading");
    let mut resumed = 0u64;
    for (path, blob) in &blobs {
        let mut up = BlobUpload {
            matter: spec.matter.clone(),
            packet: spool.packet.clone(),
            task: info.task.clone(),
            sha256: blob.sha256,
            size: blob.size,
            offset: 0,
            deliverable_for: spec.deliverable_for.clone(),
        };
        let resp = session
            .request(&ClientRequest::BlobStatus(up.clone()))
            .await?;
        let ServerResponse::BlobOffset(status) = resp else {
            return Err(unexpected(&resp));
        };
        if status.complete {
            pb.inc(blob.size);
            resumed += blob.size;
            continue;
        }
        up.offset = status.offset;
        pb.inc(status.offset);
        resumed += status.offset;
        let mut file = tokio::fs::File::open(path).await?;
        tokio::io::AsyncSeekExt::seek(&mut file, io::SeekFrom::Start(status.offset)).await?;
        let resp = session
            .request_with_body(&ClientRequest::BlobPut(up), file, |n| pb.inc(n))
            .await?;
        if !matches!(resp, ServerResponse::BlobStored(_)) {
            return Err(unexpected(&resp));
        }
    }
    pb.finish_and_clear();

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
        manifest: BlobRef::from(&spool.manifest),
        blobs: spool.files.iter().map(|f| BlobRef::from(&f.blob)).collect(),
    };
    let descriptor = d
        .to_signed_bytes()
        .map_err(|e| Fail::other(e.to_string()))?;
    let signature = d.sign(key).map_err(|e| Fail::other(e.to_string()))?;
    let commit = PacketCommitRequest {
        descriptor,
        signature: signature.to_vec(),
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
    Ok((d, dir, resumed))
}

fn encrypt_all(
    dir: &Path,
    files: &[(String, PathBuf)],
    recipients: &[Recipient],
    recovery: Option<String>,
    due: Option<u64>,
    note: &str,
    id_prefix: &str,
) -> CmdResult<Spool> {
    let mut keys = Vec::new();
    for r in recipients
        .iter()
        .map(|r| r.age.as_str())
        .chain(recovery.as_deref())
    {
        keys.push(age::x25519::Recipient::from_str(r).map_err(|e| {
            verify_fail(format!(
                "the server sent an invalid age recipient {r:?}: {e}"
            ))
        })?);
    }
    let total: u64 = files
        .iter()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let pb = bar(total, "encrypting");
    let mut manifest = Manifest {
        version: 1,
        note: note.to_owned(),
        files: Vec::new(),
    };
    let mut spooled = Vec::new();
    for (i, (rel, abs)) in files.iter().enumerate() {
        let mut src =
            File::open(abs).map_err(|e| Fail::usage(format!("{}: {e}", abs.display())))?;
        let mut src = pb.wrap_read(&mut src);
        let (sha, size, blob) = encrypt_file(&mut src, &dir.join(format!("{i}.age")), &keys)?;
        manifest.files.push(ManifestFile {
            path: rel.clone(),
            size,
            sha256: sha,
            blob: blob.sha256,
        });
        spooled.push(SpoolFile {
            path: rel.clone(),
            blob: blob.into(),
        });
    }
    pb.finish_and_clear();
    let bytes = manifest
        .to_bytes()
        .map_err(|e| Fail::usage(e.to_string()))?;
    let (_, _, manifest_blob) = encrypt_file(&mut &bytes[..], &dir.join("manifest.age"), &keys)?;
    Ok(Spool {
        packet: packet::new_id(id_prefix),
        created_at: now(),
        due,
        manifest: manifest_blob.into(),
        files: spooled,
        recipients: pairs(recipients),
        recovery,
    })
}

/// `mdrop inbox`.
pub async fn inbox(ctx: &Ctx, args: &InboxArgs) -> CmdResult {
    let resp = super::matter::call(
        ctx,
        &ClientRequest::Inbox(InboxRequest {
            matter: args.matter.clone(),
            all: args.all,
        }),
    )
    .await?;
    let ServerResponse::Inbox(items) = resp else {
        return Err(unexpected(&resp));
    };
    let v = json!({"items": items.iter().map(|i| json!({
        "id": i.id, "kind": i.kind, "matter": i.matter, "sender": i.sender, "task": i.task,
        "due": i.due.map(rfc3339), "size": i.size, "created_at": rfc3339(i.created_at), "pulled": i.pulled,
        "packet": i.packet, "state": i.state,
    })).collect::<Vec<_>>()});
    ctx.out.emit(&v, || {
        let mut s = String::new();
        if items.is_empty() {
            s.push_str("Nothing waiting.\n");
            return s;
        }
        let _ = writeln!(
            s,
            "{:<36} {:<12} {:<16} {:<20} {:<18} {:<20} {:>12}",
            "id", "kind", "matter", "from", "task", "due", "bytes"
        );
        for i in &items {
            let kind = match (&i.packet, &i.state) {
                (Some(p), Some(st)) => format!("{} ({st}) for {p}", i.kind),
                _ => i.kind.clone(),
            };
            let _ = writeln!(
                s,
                "{:<36} {:<12} {:<16} {:<20} {:<18} {:<20} {:>12}",
                i.id,
                kind,
                i.matter,
                i.sender,
                i.task,
                i.due.map_or_else(|| "-".into(), rfc3339),
                i.size
            );
        }
        s
    });
    Ok(())
}

/// Downloads a blob into `dst` (resuming a partial file) and checks its
/// hash. Returns how many bytes were already there.
async fn fetch(
    session: &Session,
    packet: &str,
    blob: &BlobRef,
    dst: &Path,
    pb: &ProgressBar,
) -> CmdResult<u64> {
    let have = fs::metadata(dst).map_or(0, |m| m.len());
    if have > blob.size {
        fs::remove_file(dst)?;
    }
    let offset = fs::metadata(dst).map_or(0, |m| m.len());
    pb.inc(offset);
    if offset < blob.size {
        let (resp, mut recv) = session
            .request_stream(&ClientRequest::BlobGet(BlobGetRequest {
                packet: packet.to_owned(),
                sha256: blob.sha256,
                offset,
            }))
            .await?;
        match resp {
            ServerResponse::BlobData(info)
                if info.sha256 == blob.sha256 && info.size == blob.size => {}
            ServerResponse::BlobData(_) => {
                return Err(verify_fail(
                    "the server sent another blob than the descriptor names",
                ));
            }
            other => return Err(unexpected(&other)),
        }
        let mut out = fs::OpenOptions::new().create(true).append(true).open(dst)?;
        let mut written = offset;
        loop {
            match recv.read_chunk(BUF, true).await {
                Ok(Some(chunk)) => {
                    written += chunk.bytes.len() as u64;
                    if written > blob.size {
                        return Err(verify_fail(
                            "the server sent more bytes than the descriptor declares",
                        ));
                    }
                    out.write_all(&chunk.bytes)?;
                    pb.inc(chunk.bytes.len() as u64);
                }
                Ok(None) => break,
                Err(e) => {
                    out.sync_data()?;
                    return Err(Fail::connect(format!(
                        "download interrupted ({e}); run the pull again to resume"
                    )));
                }
            }
        }
        out.sync_data()?;
    }
    let size = fs::metadata(dst)?.len();
    let mut h = Sha256::new();
    let mut f = BufReader::with_capacity(BUF, File::open(dst)?);
    copy_big(&mut f, &mut HashWrite(&mut h))?;
    let got: [u8; 32] = h.finalize().into();
    if size != blob.size || got != blob.sha256 {
        let _ = fs::remove_file(dst);
        return Err(verify_fail(format!(
            "blob {} does not match the signed descriptor (tampered or swapped on the server)",
            hex(&blob.sha256)
        )));
    }
    Ok(offset)
}

struct HashWrite<'a>(&'a mut Sha256);

impl Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Largest age header accepted.
const MAX_AGE_HEADER: usize = 64 * 1024;

/// Checks the stanza framing of an age header strictly, as the age spec
/// writes it: every stanza has a body whose last line is shorter than 64
/// columns. (The age crate also accepts a legacy form without that final
/// line; such a file is refused here.)
fn check_age_header(r: &mut impl io::BufRead) -> Result<(), String> {
    let mut seen = 0usize;
    let mut line = String::new();
    let mut next = |line: &mut String| -> Result<bool, String> {
        line.clear();
        let n = r.read_line(line).map_err(|e| e.to_string())?;
        seen += n;
        if seen > MAX_AGE_HEADER {
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
            return Ok(());
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

/// Decrypts `src` into `dst`; returns the plaintext's SHA-256 and size.
pub fn decrypt_file(
    src: &Path,
    dst: &Path,
    id: &age::x25519::Identity,
) -> CmdResult<([u8; 32], u64)> {
    let mut input = BufReader::with_capacity(BUF, File::open(src)?);
    let result = (|| -> Result<([u8; 32], u64), String> {
        check_age_header(&mut input)?;
        io::Seek::seek(&mut input, io::SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        let dec = age::Decryptor::new_buffered(input).map_err(|e| e.to_string())?;
        let mut r = dec
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        let mut out = Hashing::new(BufWriter::with_capacity(
            BUF,
            File::create(dst).map_err(|e| e.to_string())?,
        ));
        copy_big(&mut r, &mut out).map_err(|e| e.to_string())?;
        let (mut file, sha, size) = out.done();
        file.flush().map_err(|e| e.to_string())?;
        file.get_ref().sync_all().map_err(|e| e.to_string())?;
        Ok((sha, size))
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(dst);
        verify_fail(format!("cannot decrypt: {e}"))
    })
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
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let partial = ctx.home.path("partial").join(&args.id);
    let result = pull_inner(ctx, args, &session, &server.principal, &partial).await;
    session.close().await;
    match result {
        Ok(Pulled { json: done, .. }) => {
            let _ = fs::remove_dir_all(&partial);
            ctx.out.emit(&done, || {
                let mut s = format!(
                    "Pulled packet {} into {}\n",
                    done["id"].as_str().unwrap_or(""),
                    done["out"].as_str().unwrap_or("")
                );
                if let Some(files) = done["files"].as_array() {
                    for f in files {
                        let _ = writeln!(s, "  {}", f.as_str().unwrap_or(""));
                    }
                }
                if let Some(note) = done["note"].as_str().filter(|n| !n.is_empty()) {
                    let _ = writeln!(s, "Note: {note}");
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
}

/// Pulls into `args.out` with `session`, keeping partial data in `partial`.
pub async fn pull_inner(
    ctx: &Ctx,
    args: &PullArgs,
    session: &Session,
    me: &str,
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
    let mut pins = Pins::load(&ctx.home)?;
    if d.sender != me {
        let age = d
            .recipients
            .iter()
            .find(|r| r.principal == d.sender)
            .map(|r| r.age.as_str());
        pins.check(&d.sender, &info.sender_key, age, args.accept_key_change)?;
    }
    let sender_key = ed25519_dalek::VerifyingKey::from_bytes(&info.sender_key)
        .map_err(|_| verify_fail("the sender's key is invalid"))?;
    if d.sender == me
        && sender_key.to_bytes() != identity::signing_key(&ctx.home)?.verifying_key().to_bytes()
    {
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
    pins.save(&ctx.home)?;
    let own = identity::age_recipient(&ctx.home)?;
    if !d
        .recipients
        .iter()
        .any(|r| r.principal == me && r.age == own)
    {
        return Err(Fail::new(
            exit::DENIED,
            format!("packet {} is not encrypted to {me}", d.id),
        ));
    }
    let ident = identity::age_identity(&ctx.home)?;
    fs::create_dir_all(partial)?;

    let pb = bar(d.total_size(), "downloading");
    let manifest_path = partial.join("manifest.age");
    let mut resumed = fetch(session, &d.id, &d.manifest, &manifest_path, &pb).await?;
    let manifest_plain = partial.join("manifest.json");
    decrypt_file(&manifest_path, &manifest_plain, &ident)?;
    let bytes = fs::read(&manifest_plain)?;
    let manifest = Manifest::parse(&bytes).map_err(|e| verify_fail(format!("manifest: {e}")))?;
    manifest
        .check_against(&d)
        .map_err(|e| verify_fail(format!("manifest: {e}")))?;

    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from(&d.id));
    let mut staged = Vec::new();
    for (i, f) in manifest.files.iter().enumerate() {
        let blob = d.blobs.iter().find(|b| b.sha256 == f.blob).ok_or_else(|| {
            verify_fail(format!(
                "manifest names a blob the descriptor lacks for {}",
                f.path
            ))
        })?;
        let cipher = partial.join(format!("{i}.age"));
        resumed += fetch(session, &d.id, blob, &cipher, &pb).await?;
        let rel: PathBuf = packet::sanitize_path(&f.path)
            .map_err(|e| verify_fail(e.to_string()))?
            .iter()
            .collect();
        if args.raw {
            let mut name = rel.clone().into_os_string();
            name.push(".age");
            staged.push((cipher, PathBuf::from(name)));
            continue;
        }
        let plain = partial.join(format!("{i}.plain"));
        let ident = ident.clone();
        let (c, p) = (cipher.clone(), plain.clone());
        let (sha, size) = tokio::task::spawn_blocking(move || decrypt_file(&c, &p, &ident))
            .await
            .map_err(|e| Fail::other(e.to_string()))??;
        if sha != f.sha256 || size != f.size {
            let _ = fs::remove_file(&plain);
            return Err(verify_fail(format!(
                "{} does not match the hash in the signed manifest",
                f.path
            )));
        }
        staged.push((plain, rel));
    }
    pb.finish_and_clear();
    if args.raw {
        staged.push((manifest_path, PathBuf::from("manifest.age")));
    }
    // Everything verified: move into place, never over an existing file
    // unless --force.
    for (_, rel) in &staged {
        let target = out_dir.join(rel);
        if target.exists() && !args.force {
            return Err(
                Fail::other(format!("refusing to overwrite {}", target.display()))
                    .hint("pass --force to replace it, or choose another --out"),
            );
        }
    }
    let mut names = Vec::new();
    for (src, rel) in &staged {
        let target = out_dir.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        move_file(src, &target)?;
        names.push(rel.display().to_string());
    }
    Ok(Pulled {
        json: json!({
            "id": d.id, "matter": d.matter, "sender": d.sender, "task": d.task, "out": out_dir,
            "files": names, "note": manifest.note, "raw": args.raw, "resumed_bytes": resumed,
        }),
        descriptor: info.descriptor,
        manifest_bytes: bytes,
        manifest,
    })
}
