//! Audit bundles: the self-contained file `mdrop audit export` writes and
//! `mdrop audit verify` checks offline.
//!
//! ```text
//! bundle  = MAGIC header *record
//! MAGIC   = "matterdrop-audit-bundle/v1\n"
//! header  = u32be(len) postcard(BundleHeader)          ; len <= 1 MiB
//! record  = u64be(index) u32be(len) bytes               ; len <= MAX_RECORD
//!           [u16be(n) n*32 proof]                       ; matter bundles only
//! ```
//!
//! A *full* bundle holds every record `0..size` of the log at its
//! checkpoint; the verifier recomputes the Merkle root. A *matter* bundle
//! holds the records of one matter, each with an inclusion proof against
//! the checkpoint; their `prev_in_matter` links must form an unbroken chain
//! ending in the export's own entry, so a dropped entry is detected.
//! Every record carries the log key's signature over its index, which lets
//! the verifier name the first record that was altered, removed or moved.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::audit::{self, Entry};
use crate::tlog::{self, Checkpoint, Frontier, Hash, NoteVerifier};

/// First bytes of every bundle.
pub const MAGIC: &[u8] = b"matterdrop-audit-bundle/v1\n";
/// Largest record accepted.
pub const MAX_RECORD: usize = audit::MAX_ENTRY + audit::RECORD_SIG_LEN;
/// Largest header accepted.
pub const MAX_HEADER: usize = 1 << 20;
/// Longest inclusion proof accepted (a tree of 2^64 leaves).
pub const MAX_PROOF: usize = 64;

/// What the bundle claims to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// The log's key, signed-note verifier form.
    pub log_key: String,
    /// The signed checkpoint the records are checked against.
    pub checkpoint: String,
    /// `Some` for a matter bundle.
    pub matter: Option<String>,
    /// Number of records that follow.
    pub count: u64,
    /// Who exported it.
    pub exported_by: String,
    /// For matter bundles: a consistency proof from an earlier tree size
    /// (the size the exporting client had seen) to the checkpoint.
    pub consistency: Option<ConsistencyProof>,
    /// Witness-cosigned checkpoints covering `checkpoint`, each with a
    /// consistency proof from it ([`check_witnesses`]).
    pub witnessed: Vec<Witnessed>,
}

/// A checkpoint of the same log, at least as large as the bundle's, with
/// witness cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witnessed {
    /// The log's signed note with the witnesses' cosignature lines.
    pub note: String,
    /// Consistency proof from the bundle's checkpoint to this one (empty
    /// when they are the same size).
    pub proof: Vec<Hash>,
}

/// Checks a bundle's witness cosignatures: every [`Witnessed`] note must
/// be signed by the pinned log key, be of the same log, at least as large
/// as the bundle's checkpoint and consistent with it; then at least
/// `quorum` of `witnesses` (each counted once) must have cosigned one of
/// them. Returns the names of the witnesses that did; the error names the
/// missing ones.
pub fn check_witnesses(
    header: &BundleHeader,
    pinned: &NoteVerifier,
    witnesses: &[tlog::cosignature::CosignatureVerifier],
    quorum: usize,
) -> Result<Vec<String>, Failure> {
    check_witnessed(
        &header.checkpoint,
        &header.witnessed,
        pinned,
        witnesses,
        quorum,
    )
}

/// [`check_witnesses`] for any signed `checkpoint` (a bundle's, a
/// receipt's) and the cosigned checkpoints carried with it.
pub fn check_witnessed(
    checkpoint: &str,
    witnessed: &[Witnessed],
    pinned: &NoteVerifier,
    witnesses: &[tlog::cosignature::CosignatureVerifier],
    quorum: usize,
) -> Result<Vec<String>, Failure> {
    let cp = tlog::open_checkpoint(checkpoint, pinned)
        .map_err(|e| fail(None, format!("checkpoint signature does not verify: {e}")))?;
    // Counted by key: a cosignature does not cover the witness's name, so
    // one key under two names is one witness.
    let mut ok: Vec<&tlog::cosignature::CosignatureVerifier> = Vec::new();
    for (i, w) in witnessed.iter().enumerate() {
        // A note the log key did not sign, or of another log or an older
        // tree, proves nothing either way: skipped.
        let Ok(other) = tlog::open_checkpoint(&w.note, pinned) else {
            continue;
        };
        if other.origin != cp.origin || other.size < cp.size {
            continue;
        }
        // A log-signed tree the bundle's is not part of is evidence of a
        // fork: that fails the bundle, whatever else it carries.
        tlog::verify_consistency(cp.size, other.size, &w.proof, &cp.root, &other.root).map_err(
            |e| {
                fail(
                    None,
                    format!(
                        "witnessed checkpoint {i} is not consistent with the bundle's checkpoint: {e}"
                    ),
                )
            },
        )?;
        for v in witnesses {
            if !ok.iter().any(|o| o.public_key() == v.public_key())
                && v.verify_note(&w.note).is_ok()
            {
                ok.push(v);
            }
        }
    }
    if ok.len() >= quorum {
        return Ok(ok.iter().map(|v| v.name().to_owned()).collect());
    }
    let mut missing: Vec<&str> = Vec::new();
    for v in witnesses {
        if !ok.iter().any(|o| o.public_key() == v.public_key()) && !missing.contains(&v.name()) {
            missing.push(v.name());
        }
    }
    Err(fail(
        None,
        format!(
            "{} of the required {quorum} witness cosignatures; missing: {}",
            ok.len(),
            missing.join(", ")
        ),
    ))
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older size.
    pub from_size: u64,
    /// The proof hashes.
    pub proof: Vec<Hash>,
}

/// Format errors while reading a bundle.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not a bundle.
    #[error("not a Matterdrop audit bundle (bad magic)")]
    Magic,
    /// A length is out of bounds.
    #[error("{0} exceeds its limit")]
    TooLarge(&'static str),
    /// The header does not decode.
    #[error("malformed bundle header: {0}")]
    Header(String),
    /// The file ended early.
    #[error("bundle truncated")]
    Truncated,
    /// I/O.
    #[error("reading bundle: {0}")]
    Io(#[from] io::Error),
}

fn read_exact_or_truncated(r: &mut impl Read, buf: &mut [u8]) -> Result<(), FormatError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FormatError::Truncated
        } else {
            FormatError::Io(e)
        }
    })
}

/// Writes the magic and header.
pub fn write_header(w: &mut (impl Write + ?Sized), header: &BundleHeader) -> io::Result<()> {
    let bytes = postcard::to_stdvec(header).map_err(io::Error::other)?;
    w.write_all(MAGIC)?;
    w.write_all(
        &u32::try_from(bytes.len())
            .map_err(io::Error::other)?
            .to_be_bytes(),
    )?;
    w.write_all(&bytes)
}

/// Writes one record (and its proof, for matter bundles).
pub fn write_record(
    w: &mut (impl Write + ?Sized),
    index: u64,
    record: &[u8],
    proof: Option<&[Hash]>,
) -> io::Result<()> {
    w.write_all(&index.to_be_bytes())?;
    w.write_all(
        &u32::try_from(record.len())
            .map_err(io::Error::other)?
            .to_be_bytes(),
    )?;
    w.write_all(record)?;
    if let Some(p) = proof {
        w.write_all(
            &u16::try_from(p.len())
                .map_err(io::Error::other)?
                .to_be_bytes(),
        )?;
        for h in p {
            w.write_all(h)?;
        }
    }
    Ok(())
}

/// Reads the magic and header.
pub fn read_header(r: &mut impl Read) -> Result<BundleHeader, FormatError> {
    let mut magic = [0u8; 27];
    debug_assert_eq!(magic.len(), MAGIC.len());
    read_exact_or_truncated(r, &mut magic)?;
    if magic != MAGIC {
        return Err(FormatError::Magic);
    }
    let mut len = [0u8; 4];
    read_exact_or_truncated(r, &mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER {
        return Err(FormatError::TooLarge("header"));
    }
    let mut body = vec![0u8; len];
    read_exact_or_truncated(r, &mut body)?;
    match postcard::take_from_bytes::<BundleHeader>(&body) {
        Ok((h, [])) => Ok(h),
        Ok(_) => Err(FormatError::Header("trailing bytes".into())),
        Err(e) => Err(FormatError::Header(e.to_string())),
    }
}

/// One record as read from a bundle.
#[derive(Debug, Clone)]
pub struct BundleRecord {
    /// Index the bundle places it at.
    pub index: u64,
    /// The record (entry + signature).
    pub record: Vec<u8>,
    /// Its inclusion proof (matter bundles).
    pub proof: Option<Vec<Hash>>,
}

/// Reads the next record.
pub fn read_record(r: &mut impl Read, with_proof: bool) -> Result<BundleRecord, FormatError> {
    let mut head = [0u8; 12];
    read_exact_or_truncated(r, &mut head)?;
    let index = u64::from_be_bytes(head[..8].try_into().map_err(|_| FormatError::Truncated)?);
    let len =
        u32::from_be_bytes(head[8..].try_into().map_err(|_| FormatError::Truncated)?) as usize;
    if len > MAX_RECORD {
        return Err(FormatError::TooLarge("record"));
    }
    let mut record = vec![0u8; len];
    read_exact_or_truncated(r, &mut record)?;
    let proof = if with_proof {
        let mut n = [0u8; 2];
        read_exact_or_truncated(r, &mut n)?;
        let n = u16::from_be_bytes(n) as usize;
        if n > MAX_PROOF {
            return Err(FormatError::TooLarge("proof"));
        }
        let mut p = Vec::with_capacity(n);
        for _ in 0..n {
            let mut h = [0u8; 32];
            read_exact_or_truncated(r, &mut h)?;
            p.push(h);
        }
        Some(p)
    } else {
        None
    };
    Ok(BundleRecord {
        index,
        record,
        proof,
    })
}

/// A checkpoint the verifying client saw before (its size and root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Why a bundle failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}{}", index.map(|i| format!(" (first bad index: {i})")).unwrap_or_default())]
pub struct Failure {
    /// First bad index, when one can be named.
    pub index: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

fn fail(index: Option<u64>, reason: impl Into<String>) -> Failure {
    Failure {
        index,
        reason: reason.into(),
    }
}

/// The `audit-export` entry a matter bundle ends with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportEntry {
    /// Its log index.
    pub index: u64,
    /// Unix seconds.
    pub time: u64,
    /// Who exported.
    pub by: String,
    /// The exporting client's nonce (hex), if it sent one.
    pub nonce: Option<String>,
}

/// What a verified bundle holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// `None` for a full bundle.
    pub matter: Option<String>,
    /// Records checked.
    pub entries: u64,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
    /// Earliest entry time (Unix seconds).
    pub first_time: Option<u64>,
    /// Latest entry time.
    pub last_time: Option<u64>,
    /// Denied attempts.
    pub denials: u64,
    /// Entries per principal.
    pub per_principal: BTreeMap<String, u64>,
    /// Entries per action.
    pub per_action: BTreeMap<String, u64>,
    /// Whether consistency with the client's earlier checkpoint was proven.
    pub consistent_with_seen: Option<bool>,
    /// For a matter bundle: the export entry that ends it.
    pub export: Option<ExportEntry>,
    /// Root hash of the checkpoint.
    #[serde(skip)]
    pub root: Hash,
    /// Each matter's roster as the log's `roster-appended` entries make it
    /// (statement hashes in order), for comparing with the roster the
    /// verifying client verified itself.
    #[serde(skip)]
    pub rosters: BTreeMap<String, Vec<Hash>>,
}

impl Summary {
    fn add(&mut self, e: &Entry) {
        self.entries += 1;
        self.first_time = Some(self.first_time.map_or(e.time, |t| t.min(e.time)));
        self.last_time = Some(self.last_time.map_or(e.time, |t| t.max(e.time)));
        if !e.allowed {
            self.denials += 1;
        }
        *self.per_principal.entry(e.principal.clone()).or_default() += 1;
        *self.per_action.entry(e.action.clone()).or_default() += 1;
    }
}

/// A `delivered` entry must carry a delivery statement that verifies
/// (`crate::custody::check_entry`), a `shared` entry a share statement
/// (`crate::custody::check_share_entry`), a `destroyed` entry a
/// destruction statement (`crate::custody::check_destruction_entry`).
fn check_custody(e: &Entry) -> Result<(), Failure> {
    if e.action == "delivered" && e.allowed {
        crate::custody::check_entry(e).map_err(|err| fail(Some(e.index), err.to_string()))?;
    }
    if e.action == "shared" && e.allowed {
        crate::custody::check_share_entry(e).map_err(|err| fail(Some(e.index), err.to_string()))?;
    }
    if e.action == "destroyed" && e.allowed {
        crate::custody::check_destruction_entry(e)
            .map_err(|err| fail(Some(e.index), err.to_string()))?;
    }
    Ok(())
}

/// In a full bundle, the key a `delivered` or `shared` entry records must
/// be one the log registered for its principal before it.
fn check_delivery_key(e: &Entry, enrolled: &BTreeMap<String, Vec<String>>) -> Result<(), Failure> {
    if !matches!(e.action.as_str(), "delivered" | "shared" | "destroyed") || !e.allowed {
        return Ok(());
    }
    let key = e
        .details
        .iter()
        .find(|(k, _)| k == "signing_key")
        .and_then(|(_, v)| {
            let raw: Option<Vec<u8>> = (0..v.len() / 2)
                .map(|i| u8::from_str_radix(v.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            ed25519_dalek::VerifyingKey::from_bytes(&<[u8; 32]>::try_from(raw?).ok()?).ok()
        })
        .map(|k| crate::keys::ed25519_fingerprint(&k));
    let known = enrolled.get(&e.principal);
    if key.is_some_and(|fp| known.is_some_and(|ks| ks.contains(&fp))) {
        Ok(())
    } else {
        Err(fail(
            Some(e.index),
            format!(
                "delivery entry {} is signed by a key the log never registered for {}",
                e.index, e.principal
            ),
        ))
    }
}

/// Verifies a bundle. `open` yields a fresh reader over the bundle each
/// time it is called (a second pass locates tampering). `pinned` is the log
/// key the verifier trusts; `seen` the newest checkpoint it saw before.
pub fn verify<R: Read>(
    mut open: impl FnMut() -> io::Result<R>,
    pinned: &NoteVerifier,
    seen: Option<Seen>,
) -> Result<Summary, Failure> {
    let format = |e: FormatError| fail(None, e.to_string());
    let mut r = open().map_err(|e| fail(None, format!("cannot read bundle: {e}")))?;
    let header = read_header(&mut r).map_err(format)?;
    let key = NoteVerifier::from_vkey(&header.log_key)
        .map_err(|e| fail(None, format!("bundle log key unreadable: {e}")))?;
    if key != *pinned {
        return Err(fail(
            None,
            format!(
                "bundle is signed by log key {}, but the pinned log key is {}",
                header.log_key,
                pinned.to_vkey()
            ),
        ));
    }
    let cp: Checkpoint = tlog::open_checkpoint(&header.checkpoint, pinned)
        .map_err(|e| fail(None, format!("checkpoint signature does not verify: {e}")))?;
    if cp.origin != pinned.name() {
        return Err(fail(
            None,
            format!(
                "checkpoint is for log {:?}, not {:?}",
                cp.origin,
                pinned.name()
            ),
        ));
    }
    if let Some(s) = seen {
        if cp.size < s.size {
            return Err(fail(
                Some(cp.size),
                format!(
                    "rollback: the bundle's checkpoint covers {} entries, but this client has already seen a checkpoint of {} entries",
                    cp.size, s.size
                ),
            ));
        }
    }
    let mut summary = Summary {
        matter: header.matter.clone(),
        tree_size: cp.size,
        root: cp.root,
        ..Summary::default()
    };
    match &header.matter {
        None => verify_full(&mut r, &mut open, &header, &cp, pinned, seen, &mut summary)?,
        Some(m) => verify_matter(&mut r, m, &header, &cp, seen, &mut summary)?,
    }
    Ok(summary)
}

fn verify_full<R: Read>(
    r: &mut R,
    open: &mut impl FnMut() -> io::Result<R>,
    header: &BundleHeader,
    cp: &Checkpoint,
    key: &NoteVerifier,
    seen: Option<Seen>,
    summary: &mut Summary,
) -> Result<(), Failure> {
    let mut frontier = Frontier::new();
    let mut seen_root_ok = None;
    let mut position = 0u64;
    let mut problem: Option<Failure> = None;
    // Keys registered per principal so far (their `enroll` entries): a
    // delivery statement must be signed by one of them.
    let mut enrolled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut replay = crate::retention::Replay::default();
    loop {
        if let Some(s) = seen {
            if position == s.size && seen_root_ok.is_none() {
                seen_root_ok = Some(frontier.root() == s.root);
            }
        }
        if position == header.count {
            break;
        }
        let rec = match read_record(r, false) {
            Ok(rec) => rec,
            Err(FormatError::Truncated) => {
                problem = Some(fail(Some(position), "bundle ends early"));
                break;
            }
            Err(e) => return Err(fail(Some(position), e.to_string())),
        };
        if rec.index != position {
            problem = Some(fail(
                Some(position),
                format!("record at position {position} is labelled {}", rec.index),
            ));
            break;
        }
        match audit::parse_record(&rec.record) {
            Ok((e, _)) if e.index == position => {
                if let Err(f) = check_custody(&e)
                    .and_then(|()| check_delivery_key(&e, &enrolled))
                    .and_then(|()| replay.observe(&e).map_err(|why| fail(Some(e.index), why)))
                {
                    problem = Some(f);
                    break;
                }
                if e.action == "enroll" && e.allowed {
                    if let Some((_, fp)) = e.details.iter().find(|(k, _)| k == "signing_key") {
                        enrolled
                            .entry(e.principal.clone())
                            .or_default()
                            .push(fp.clone());
                    }
                }
                summary.add(&e);
            }
            Ok((e, _)) => {
                problem = Some(fail(
                    Some(position),
                    format!("entry at position {position} claims index {}", e.index),
                ));
                break;
            }
            Err(e) => {
                problem = Some(fail(
                    Some(position),
                    format!("entry {position} is malformed: {e}"),
                ));
                break;
            }
        }
        frontier.push(tlog::leaf_hash(&rec.record));
        position += 1;
    }
    if problem.is_none() {
        if position < cp.size {
            problem = Some(fail(
                Some(position),
                format!(
                    "truncated: the checkpoint covers {} entries but only {position} are present",
                    cp.size
                ),
            ));
        } else if position > cp.size {
            problem = Some(fail(
                Some(cp.size),
                format!("{} entries beyond the checkpoint", position - cp.size),
            ));
        } else if frontier.root() != cp.root {
            problem = Some(fail(
                None,
                "the entries do not hash to the checkpoint's root",
            ));
        }
    }
    if let Some(mut p) = problem {
        // Name the first record whose own signature or position is wrong.
        if let Some(i) = locate(open, key, header.count.min(cp.size))? {
            if p.index.is_none_or(|j| i < j) {
                p.index = Some(i);
                p.reason = format!("{}; record {i} is not the one the log signed", p.reason);
            }
        }
        return Err(p);
    }
    summary.rosters = replay.chains();
    match seen_root_ok {
        Some(false) => {
            let i = locate(open, key, header.count)?;
            return Err(fail(
                i,
                "history rewritten: the first entries no longer match the checkpoint this client saw before",
            ));
        }
        Some(true) => summary.consistent_with_seen = Some(true),
        None => {}
    }
    Ok(())
}

/// Second pass: the first position whose record is not validly signed for
/// that position. Records are checked in chunks across all cores.
fn locate<R: Read>(
    open: &mut impl FnMut() -> io::Result<R>,
    key: &NoteVerifier,
    limit: u64,
) -> Result<Option<u64>, Failure> {
    const CHUNK: usize = 16 * 1024;
    let mut r = open().map_err(|e| fail(None, format!("cannot re-read bundle: {e}")))?;
    read_header(&mut r).map_err(|e| fail(None, e.to_string()))?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let vk = key.verifying_key();
    let mut position = 0u64;
    while position < limit {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut short = None;
        while chunk.len() < CHUNK && position + (chunk.len() as u64) < limit {
            match read_record(&mut r, false) {
                Ok(rec) => chunk.push(rec.record),
                Err(_) => {
                    short = Some(position + chunk.len() as u64);
                    break;
                }
            }
        }
        let per = chunk.len().div_ceil(threads).max(1);
        let first_bad = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .chunks(per)
                .enumerate()
                .map(|(t, part)| {
                    let base = position + (t * per) as u64;
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .find(|(i, rec)| audit::open_record(rec, base + *i as u64, vk).is_err())
                            .map(|(i, _)| base + i as u64)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .min()
        });
        if let Some(i) = first_bad.or(short) {
            return Ok(Some(i));
        }
        position += chunk.len() as u64;
    }
    Ok(None)
}

fn verify_matter<R: Read>(
    r: &mut R,
    matter: &str,
    header: &BundleHeader,
    cp: &Checkpoint,
    seen: Option<Seen>,
    summary: &mut Summary,
) -> Result<(), Failure> {
    let mut prev: Option<u64> = None;
    let mut last: Option<Entry> = None;
    let mut replay = crate::retention::Replay::default();
    for _ in 0..header.count {
        let rec = read_record(r, true).map_err(|e| fail(prev.map(|p| p + 1), e.to_string()))?;
        let proof = rec.proof.as_deref().unwrap_or(&[]);
        if rec.index >= cp.size {
            return Err(fail(Some(rec.index), "record lies beyond the checkpoint"));
        }
        tlog::verify_inclusion(
            &tlog::leaf_hash(&rec.record),
            rec.index,
            cp.size,
            proof,
            &cp.root,
        )
        .map_err(|e| {
            fail(
                Some(rec.index),
                format!("record {} is not in the signed log: {e}", rec.index),
            )
        })?;
        let (e, _) = audit::parse_record(&rec.record).map_err(|e| {
            fail(
                Some(rec.index),
                format!("entry {} is malformed: {e}", rec.index),
            )
        })?;
        if e.index != rec.index || e.matter.as_deref() != Some(matter) {
            return Err(fail(
                Some(rec.index),
                format!("entry {} does not belong to matter {matter}", rec.index),
            ));
        }
        if e.prev_in_matter != prev {
            let missing = e.prev_in_matter.unwrap_or(rec.index);
            return Err(fail(
                Some(missing),
                format!(
                    "entry of matter {matter} missing: entry {} links to {:?}, the bundle's previous entry is {:?}",
                    rec.index, e.prev_in_matter, prev
                ),
            ));
        }
        prev = Some(rec.index);
        check_custody(&e)?;
        replay.observe(&e).map_err(|why| fail(Some(e.index), why))?;
        summary.add(&e);
        last = Some(e);
    }
    summary.rosters = replay.chains();
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(|e| fail(None, e.to_string()))? != 0 {
        return Err(fail(None, "trailing data after the last record"));
    }
    // The export is itself logged on the matter before the bundle is cut, so
    // the chain must end with it: nothing newer can have been left out.
    let export = match &last {
        Some(e) if e.action == "audit-export" && e.allowed => e,
        _ => {
            return Err(fail(
                prev.map(|p| p + 1),
                "the bundle does not end with its own export entry: newer entries of the matter may be missing",
            ));
        }
    };
    // The export entry signs how many entries the matter had: all of them
    // must be here (an older export cut short is not a complete bundle).
    let detail = |k: &str| {
        export
            .details
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let signed_count: Option<u64> = detail("matter_entries").and_then(|v| v.parse().ok());
    if signed_count != Some(header.count) {
        return Err(fail(
            Some(export.index),
            format!(
                "the export entry {} signs {} entries of matter {matter}, the bundle holds {}",
                export.index,
                signed_count.map_or_else(|| "no count of".to_owned(), |n| n.to_string()),
                header.count
            ),
        ));
    }
    summary.export = Some(ExportEntry {
        index: export.index,
        time: export.time,
        by: export.principal.clone(),
        nonce: detail("nonce"),
    });
    if let Some(s) = seen {
        if s.size > 0 {
            let ok = match &header.consistency {
                _ if s.size == cp.size => s.root == cp.root,
                Some(c) if c.from_size == s.size => {
                    tlog::verify_consistency(s.size, cp.size, &c.proof, &s.root, &cp.root).is_ok()
                }
                _ => {
                    return Err(fail(
                        None,
                        format!(
                            "the bundle carries no consistency proof from the checkpoint of {} entries this client saw before, so it cannot show that history was not rewritten",
                            s.size
                        ),
                    ));
                }
            };
            if !ok {
                return Err(fail(
                    None,
                    "history rewritten: the checkpoint is not consistent with the one this client saw before",
                ));
            }
            summary.consistent_with_seen = Some(true);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::tlog::NoteSigner;
    use crate::tlog::cosignature::{CosignatureVerifier, Cosigner};

    fn tree(n: u64) -> Vec<Hash> {
        (0..n).map(|i| tlog::leaf_hash(&i.to_be_bytes())).collect()
    }

    fn note(signer: &NoteSigner, leaves: &[Hash]) -> (Checkpoint, String) {
        let cp = Checkpoint {
            origin: "log.example".into(),
            size: leaves.len() as u64,
            root: tlog::root(leaves),
        };
        let n = tlog::sign_checkpoint(&cp, signer);
        (cp, n)
    }

    fn header(checkpoint: String, witnessed: Vec<Witnessed>) -> BundleHeader {
        BundleHeader {
            log_key: String::new(),
            checkpoint,
            matter: None,
            count: 0,
            exported_by: "a@b".into(),
            consistency: None,
            witnessed,
        }
    }

    #[test]
    fn witness_quorums_count_keys_and_forks_fail() {
        let signer = NoteSigner::new("log.example", SigningKey::from_bytes(&[1; 32])).unwrap();
        let pinned = signer.verifier();
        let leaves = tree(10);
        let (cp, bundle_note) = note(&signer, &leaves[..7]);
        let (later, later_note) = note(&signer, &leaves);
        let proof = tlog::consistency_proof(&leaves, 7).unwrap();
        let key = SigningKey::from_bytes(&[2; 32]);
        let a = Cosigner::new("a.example", key.clone()).unwrap();
        // The same key under another name: one witness, not two.
        let a_again = Cosigner::new("b.example", key).unwrap();
        let c = Cosigner::new("c.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        let v = |w: &Cosigner| CosignatureVerifier::from_vkey(&w.vkey()).unwrap();
        let cosigned = format!(
            "{later_note}{}{}",
            a.cosign(&later.to_body(), 9),
            a_again.cosign(&later.to_body(), 9)
        );
        let good = Witnessed {
            note: cosigned.clone(),
            proof: proof.clone(),
        };
        let h = header(bundle_note.clone(), vec![good.clone()]);
        assert_eq!(
            check_witnesses(&h, &pinned, &[v(&a)], 1).unwrap(),
            ["a.example"]
        );
        let e = check_witnesses(&h, &pinned, &[v(&a), v(&a_again)], 2).unwrap_err();
        assert!(e.reason.contains("1 of the required 2"), "{}", e.reason);
        let e = check_witnesses(&h, &pinned, &[v(&a), v(&c)], 2).unwrap_err();
        assert!(e.reason.contains("missing: c.example"), "{}", e.reason);
        // A note the log key did not sign counts for nothing; an older tree
        // neither.
        let other = NoteSigner::new("log.example", SigningKey::from_bytes(&[4; 32])).unwrap();
        let (_, forged) = note(&other, &leaves);
        let junk = Witnessed {
            note: format!("{forged}{}", c.cosign(&later.to_body(), 9)),
            proof: proof.clone(),
        };
        let h = header(bundle_note.clone(), vec![junk, good.clone()]);
        assert!(check_witnesses(&h, &pinned, &[v(&a), v(&c)], 2).is_err());
        assert!(check_witnesses(&h, &pinned, &[v(&a)], 1).is_ok());
        // A log-signed tree the bundle's is not part of: the bundle fails.
        let mut forked_leaves = leaves.clone();
        forked_leaves[3] = [9; 32];
        let (f, forked_note) = note(&signer, &forked_leaves);
        let fork = Witnessed {
            note: format!("{forked_note}{}", c.cosign(&f.to_body(), 9)),
            proof: tlog::consistency_proof(&forked_leaves, 7).unwrap(),
        };
        let h = header(bundle_note.clone(), vec![good, fork]);
        let e = check_witnesses(&h, &pinned, &[v(&a)], 1).unwrap_err();
        assert!(e.reason.contains("not consistent"), "{}", e.reason);
        // The same size must be the same tree (no proof).
        let same = Witnessed {
            note: format!("{bundle_note}{}", c.cosign(&cp.to_body(), 9)),
            proof: Vec::new(),
        };
        let h = header(bundle_note, vec![same]);
        assert!(check_witnesses(&h, &pinned, &[v(&c)], 1).is_ok());
    }
}
