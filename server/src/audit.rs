//! The server's side of the tamper-evident audit log.
//!
//! Handlers describe what happened as [`Event`]s; [`AuditLog::record`]
//! chains each one to the previous entry of its matter, appends it to the
//! append-only file (fsync), extends the Merkle tree and signs a new
//! checkpoint, all before the handler answers. One mutex orders appends, so
//! every checkpoint extends the previous one: two inconsistent checkpoints
//! for one log never exist.
//!
//! Appends are committed in groups: the callers that arrive while a commit
//! is on disk queue their events, and the next committer (the first of
//! them) writes all of them with one append, one fsync and one checkpoint.
//! Each caller returns only once the group holding its events is durable
//! and signed, so an answer never gets ahead of the log.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use ed25519_dalek::SigningKey;
use matterdrop_common::audit::{self, Entry};
use matterdrop_common::bundle::{self, BundleHeader, ConsistencyProof};
use matterdrop_common::tlog::{self, Checkpoint, Frontier, NoteSigner};
use thiserror::Error;
use tracing::{info, warn};

use crate::auditlog::{AppendLog, LogError};
use crate::datadir::now;
use crate::handler::Actor;
use crate::policy::Decision;

/// Audit-log failures. Any of them fails the request being recorded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log file failed.
    #[error("audit log: {0}")]
    Log(#[from] LogError),
    /// An entry could not be encoded or decoded.
    #[error("audit entry: {0}")]
    Entry(#[from] audit::EntryError),
    /// The stored checkpoint does not match the entries on disk.
    #[error("audit log does not match its last signed checkpoint: {0}")]
    Inconsistent(String),
    /// The lock was poisoned by a panic.
    #[error("audit log unavailable after an internal error")]
    Poisoned,
    /// The group commit that carried this request's events failed.
    #[error("{0}")]
    Group(Arc<Self>),
}

/// One thing that happened, before it gets its place in the log.
#[derive(Debug, Clone)]
pub struct Event(Entry);

impl Event {
    fn entry(principal: String, action: &str, matter: Option<&str>, object: Option<&str>) -> Entry {
        Entry {
            index: 0,
            time: now(),
            principal,
            action: action.to_owned(),
            matter: matter.map(str::to_owned),
            object: object.map(str::to_owned),
            allowed: true,
            rule: None,
            reason: None,
            prev_in_matter: None,
            details: Vec::new(),
        }
    }

    /// A policy decision on a matter, allowed or denied.
    pub fn matter(
        me: &Actor,
        action: &str,
        matter: &str,
        object: Option<&str>,
        decision: &Decision,
        details: Vec<(String, String)>,
    ) -> Self {
        let mut e = Self::entry(me.record.id.clone(), action, Some(matter), object);
        e.details = details;
        if let Decision::Deny(d) = decision {
            e.allowed = false;
            e.rule = Some(d.rule.as_str().to_owned());
            e.reason = Some(d.message.clone());
            if let Some(why) = d.not_member_reason() {
                // Internal detail for auditors; never shown to the caller.
                e.details.push(("not_member".into(), why.as_str().into()));
            }
        }
        Self(e)
    }

    /// An allowed request refused later by a check that is not an access
    /// rule (a bad signature, a stale version).
    pub fn failed(
        me: &Actor,
        action: &str,
        matter: &str,
        rule: &str,
        reason: &str,
        details: Vec<(String, String)>,
    ) -> Self {
        let mut e = Self::entry(me.record.id.clone(), action, Some(matter), None);
        e.allowed = false;
        e.rule = Some(rule.to_owned());
        e.reason = Some(reason.to_owned());
        e.details = details;
        Self(e)
    }

    /// A server-wide event (enrollment, organizations, invites).
    pub fn server(
        principal: &str,
        action: &str,
        object: Option<&str>,
        denial: Option<(&str, &str)>,
        details: Vec<(String, String)>,
    ) -> Self {
        let mut e = Self::entry(principal.to_owned(), action, None, object);
        if let Some((rule, reason)) = denial {
            e.allowed = false;
            e.rule = Some(rule.to_owned());
            e.reason = Some(reason.to_owned());
        }
        e.details = details;
        Self(e)
    }
}

impl Event {
    /// Files this event under `matter` too (it joins the matter's chain).
    pub fn in_matter(mut self, matter: &str) -> Self {
        self.0.matter = Some(matter.to_owned());
        self
    }
}

struct Inner {
    log: AppendLog,
    frontier: Frontier,
    last_in_matter: HashMap<String, u64>,
    /// How many entries each matter has.
    matter_counts: HashMap<String, u64>,
    /// Indexes of the allowed `enroll` entries, per principal id.
    registrations: HashMap<String, Vec<u64>>,
    signer: NoteSigner,
    key: SigningKey,
    origin: String,
    checkpoint: String,
    /// The size of the latest checkpoint, for witness submitters.
    size_tx: tokio::sync::watch::Sender<u64>,
}

/// A record with its index and inclusion proof.
pub type Proven = (u64, Vec<u8>, Vec<tlog::Hash>);

/// The audit log: append-only entries, Merkle tree, signed checkpoints.
/// Cloning shares the same log.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Inner>>,
    group: Arc<Group>,
}

/// Callers waiting for their events to be committed.
#[derive(Default)]
struct Group {
    queue: Mutex<Queue>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Events not yet taken by a committer, with their caller's ticket.
    pending: Vec<(u64, Vec<Event>)>,
    next_ticket: u64,
    /// Whether a caller is committing a group now.
    committing: bool,
    /// Outcomes not yet collected: the index of each caller's last event.
    results: HashMap<u64, Result<u64, Arc<AuditError>>>,
    /// Group sizes, for the statistics: groups committed and events in them.
    groups: u64,
    grouped_events: u64,
}

/// Most events one group commit takes (the rest wait for the next).
const MAX_GROUP_EVENTS: usize = 1024;

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log in `dir`, repairing a torn tail, rebuilding the tree
    /// and checking the last checkpoint against it.
    /// `key` signs every record; `signer` (the same key, with its note name)
    /// signs checkpoints.
    pub fn open(
        dir: &Path,
        key: SigningKey,
        signer: NoteSigner,
        origin: String,
    ) -> Result<Self, AuditError> {
        let (log, recovery) = AppendLog::open(dir)?;
        if recovery.truncated_bytes > 0 {
            warn!(
                truncated_bytes = recovery.truncated_bytes,
                entries = recovery.entries,
                "audit log had a torn tail from an interrupted write; truncated it"
            );
        }
        let mut frontier = Frontier::new();
        for leaf in log.leaf_hashes() {
            frontier.push(*leaf);
        }
        let mut last_in_matter = HashMap::new();
        let mut matter_counts: HashMap<String, u64> = HashMap::new();
        let mut registrations: HashMap<String, Vec<u64>> = HashMap::new();
        for index in 0..log.len() {
            let (entry, _) = audit::parse_record(&log.read(index)?).map_err(|e| {
                AuditError::Inconsistent(format!("record {index} is unreadable: {e}"))
            })?;
            if entry.index != index {
                return Err(AuditError::Inconsistent(format!(
                    "record {index} claims index {}",
                    entry.index
                )));
            }
            if is_registration(&entry) {
                registrations
                    .entry(entry.principal.clone())
                    .or_default()
                    .push(index);
            }
            if let Some(m) = entry.matter {
                *matter_counts.entry(m.clone()).or_default() += 1;
                last_in_matter.insert(m, index);
            }
        }
        if let Some(note) = log.checkpoint() {
            let verifier = signer.verifier();
            let cp = tlog::open_checkpoint(&note, &verifier).map_err(|e| {
                AuditError::Inconsistent(format!("stored checkpoint unreadable: {e}"))
            })?;
            if cp.size > log.len() {
                return Err(AuditError::Inconsistent(format!(
                    "checkpoint covers {} entries but only {} are on disk",
                    cp.size,
                    log.len()
                )));
            }
            let size = usize::try_from(cp.size).unwrap_or(usize::MAX);
            if tlog::root(&log.leaf_hashes()[..size]) != cp.root {
                return Err(AuditError::Inconsistent(format!(
                    "the first {} entries do not hash to the checkpoint's root",
                    cp.size
                )));
            }
        }
        let mut inner = Inner {
            log,
            frontier,
            last_in_matter,
            matter_counts,
            registrations,
            signer,
            key,
            origin,
            checkpoint: String::new(),
            size_tx: tokio::sync::watch::Sender::new(0),
        };
        inner.sign()?;
        info!(entries = inner.log.len(), "audit log open");
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            group: Arc::default(),
        })
    }

    /// Appends `events` durably and signs a checkpoint covering them.
    /// Returns the index of the last one. `events` stay together and in
    /// order; other callers' events may share the same fsync.
    pub fn record(&self, events: Vec<Event>) -> Result<u64, AuditError> {
        if events.is_empty() {
            return Err(AuditError::Inconsistent("nothing to record".into()));
        }
        let g = &*self.group;
        let mut q = g.queue.lock().map_err(|_| AuditError::Poisoned)?;
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((ticket, events));
        loop {
            if let Some(r) = q.results.remove(&ticket) {
                return r.map_err(AuditError::Group);
            }
            if q.committing {
                q = g.done.wait(q).map_err(|_| AuditError::Poisoned)?;
                continue;
            }
            // Commit what is queued, this caller's events among them.
            q.committing = true;
            let mut batch = Vec::new();
            let mut n = 0;
            while let Some(first) = q.pending.first() {
                if n > 0 && n + first.1.len() > MAX_GROUP_EVENTS {
                    break;
                }
                n += first.1.len();
                batch.push(q.pending.remove(0));
            }
            drop(q);
            // A panic here must not leave the others waiting for ever.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&mut batch)))
                    .unwrap_or(Err(AuditError::Poisoned));
            // Never left poisoned: the others wait on this lock.
            q = g
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.committing = false;
            q.groups += 1;
            q.grouped_events += n as u64;
            match outcome {
                Ok(outcomes) => {
                    for ((t, _), outcome) in batch.iter().zip(outcomes) {
                        q.results.insert(*t, outcome.map_err(Arc::new));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for (t, _) in &batch {
                        q.results.insert(*t, Err(e.clone()));
                    }
                }
            }
            g.done.notify_all();
        }
    }

    /// How many group commits were made and how many events they held.
    pub fn group_stats(&self) -> (u64, u64) {
        self.group
            .queue
            .lock()
            .map(|q| (q.groups, q.grouped_events))
            .unwrap_or_default()
    }

    /// Writes the callers' events as one append with one fsync and one
    /// checkpoint; returns, per caller, the index of its last event, or why
    /// its events could not be sealed (they are then left out, and the
    /// others' go ahead). A failure of the append itself fails them all.
    fn commit(
        &self,
        callers: &mut [(u64, Vec<Event>)],
    ) -> Result<Vec<Result<u64, AuditError>>, AuditError> {
        let mut inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let start = inner.log.len();
        let mut next = start;
        // Chain links for this group; applied only once it is on disk.
        let mut batch: HashMap<String, u64> = HashMap::new();
        let mut batch_counts: HashMap<String, u64> = HashMap::new();
        let mut bytes = Vec::new();
        let mut enrolled = Vec::new();
        let mut outcomes = Vec::with_capacity(callers.len());
        for (_, events) in callers.iter_mut() {
            // Sealed on copies of the chain state, kept only if every one
            // of this caller's events seals.
            let (mut links, mut counts) = (batch.clone(), batch_counts.clone());
            let mut sealed = Vec::new();
            let mut registered = Vec::new();
            let mut failed = None;
            for (k, Event(mut entry)) in std::mem::take(events).into_iter().enumerate() {
                let index = next + k as u64;
                entry.index = index;
                if let Some(m) = &entry.matter {
                    let prev = links
                        .get(m)
                        .or_else(|| inner.last_in_matter.get(m))
                        .copied();
                    entry.prev_in_matter = prev;
                    links.insert(m.clone(), index);
                    let count = counts.entry(m.clone()).or_default();
                    *count += 1;
                    // A matter export signs how many entries the matter
                    // has, itself included: the bundle it ends must hold
                    // them all.
                    if entry.action == "audit-export" {
                        let total = inner.matter_counts.get(m).copied().unwrap_or(0) + *count;
                        entry
                            .details
                            .push(("matter_entries".into(), total.to_string()));
                    }
                }
                if is_registration(&entry) {
                    registered.push((entry.principal.clone(), index));
                }
                match audit::seal(&entry, &inner.key) {
                    Ok(record) if record.len() <= crate::auditlog::MAX_ENTRY_LEN => {
                        sealed.push(record);
                    }
                    Ok(record) => {
                        failed = Some(AuditError::Inconsistent(format!(
                            "an entry of {} bytes exceeds the log's limit of {}",
                            record.len(),
                            crate::auditlog::MAX_ENTRY_LEN
                        )));
                        break;
                    }
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                }
            }
            match failed {
                Some(e) => outcomes.push(Err(e)),
                None if sealed.is_empty() => {
                    outcomes.push(Err(AuditError::Inconsistent("nothing to record".into())));
                }
                None => {
                    next += sealed.len() as u64;
                    bytes.extend(sealed);
                    (batch, batch_counts) = (links, counts);
                    enrolled.extend(registered);
                    outcomes.push(Ok(next - 1));
                }
            }
        }
        if bytes.is_empty() {
            return Ok(outcomes);
        }
        let range = inner.log.append(&bytes)?;
        debug_assert_eq!(range, start..next);
        let leaves: Vec<_> =
            inner.log.leaf_hashes()[range.start as usize..range.end as usize].to_vec();
        for leaf in leaves {
            inner.frontier.push(leaf);
        }
        inner.last_in_matter.extend(batch);
        for (m, n) in batch_counts {
            *inner.matter_counts.entry(m).or_default() += n;
        }
        for (who, index) in enrolled {
            inner.registrations.entry(who).or_default().push(index);
        }
        inner.sign()?;
        Ok(outcomes)
    }

    /// Notified with the new size whenever a checkpoint is signed.
    pub fn subscribe(&self) -> Result<tokio::sync::watch::Receiver<u64>, AuditError> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| AuditError::Poisoned)?
            .size_tx
            .subscribe())
    }

    /// The latest checkpoint, its size and a consistency proof from
    /// `old_size` to it (for a witness that cosigned `old_size`). `None`
    /// when `old_size` is larger than the log.
    pub fn checkpoint_since(
        &self,
        old_size: u64,
    ) -> Result<Option<(String, u64, Vec<tlog::Hash>)>, AuditError> {
        // The proof is computed from a copy of the leaves, outside the lock:
        // hashing a large tree must not hold up the requests being logged.
        let (note, size, leaves) = {
            let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
            let size = inner.log.len();
            if old_size > size {
                return Ok(None);
            }
            let leaves = if old_size == 0 || old_size == size {
                Vec::new()
            } else {
                inner.log.leaf_hashes().to_vec()
            };
            (inner.checkpoint.clone(), size, leaves)
        };
        let proof = if leaves.is_empty() {
            Vec::new()
        } else {
            tlog::consistency_proof(&leaves, old_size)
                .map_err(|e| AuditError::Inconsistent(e.to_string()))?
        };
        Ok(Some((note, size, proof)))
    }

    /// A consistency proof between two sizes of the log (empty when they
    /// are equal or `old` is 0).
    pub fn consistency_between(&self, old: u64, new: u64) -> Result<Vec<tlog::Hash>, AuditError> {
        let leaves = {
            let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
            let leaves = inner.log.leaf_hashes();
            let end = usize::try_from(new)
                .ok()
                .filter(|&n| n <= leaves.len() && old <= new)
                .ok_or_else(|| AuditError::Inconsistent(format!("no tree of {new} entries")))?;
            if old == 0 || old == new {
                return Ok(Vec::new());
            }
            leaves[..end].to_vec()
        };
        tlog::consistency_proof(&leaves, old).map_err(|e| AuditError::Inconsistent(e.to_string()))
    }

    /// The latest signed checkpoint (a C2SP signed note).
    pub fn checkpoint(&self) -> Result<String, AuditError> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| AuditError::Poisoned)?
            .checkpoint
            .clone())
    }

    /// Every allowed key registration (`enroll`) of `principal`: each
    /// record with its inclusion proof, all against the returned checkpoint.
    pub fn registrations(&self, principal: &str) -> Result<(Vec<Proven>, String), AuditError> {
        let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let mut out = Vec::new();
        for &index in inner.registrations.get(principal).into_iter().flatten() {
            let record = inner.log.read(index)?;
            let proof = tlog::inclusion_proof(inner.log.leaf_hashes(), index)
                .map_err(|e| AuditError::Inconsistent(e.to_string()))?;
            out.push((index, record, proof));
        }
        Ok((out, inner.checkpoint.clone()))
    }

    /// The record at `index`, its inclusion proof and the checkpoint it is
    /// proven against (the latest).
    pub fn inclusion(&self, index: u64) -> Result<(Vec<u8>, Vec<tlog::Hash>, String), AuditError> {
        let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let record = inner.log.read(index)?;
        let proof = tlog::inclusion_proof(inner.log.leaf_hashes(), index)
            .map_err(|e| AuditError::Inconsistent(e.to_string()))?;
        Ok((record, proof, inner.checkpoint.clone()))
    }

    /// Cuts a bundle of the log as it is now: the whole log, or the
    /// entries of `matter` with inclusion proofs (and a consistency proof
    /// from `known_size`). Returns the header and a writer for the records,
    /// which reads the immutable prefix without holding the log.
    pub fn export(
        &self,
        matter: Option<&str>,
        known_size: Option<u64>,
        exported_by: &str,
        upto: Option<u64>,
    ) -> Result<(BundleHeader, Body), AuditError> {
        let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let size = inner.log.len();
        let log_key = inner.signer.verifier().to_vkey();
        let checkpoint = inner.checkpoint.clone();
        match matter {
            None => {
                let header = BundleHeader {
                    log_key,
                    checkpoint,
                    matter: None,
                    count: size,
                    exported_by: exported_by.to_owned(),
                    consistency: None,
                    witnessed: Vec::new(),
                };
                drop(inner);
                let this = self.clone();
                let body: Body = Box::new(move |w: &mut dyn BodyOut| {
                    let mut start = 0;
                    while start < size {
                        let end = (start + EXPORT_CHUNK).min(size);
                        let records = {
                            let inner = this
                                .inner
                                .lock()
                                .map_err(|_| std::io::Error::other("audit log poisoned"))?;
                            inner
                                .log
                                .read_range(start, end)
                                .map_err(std::io::Error::other)?
                        };
                        for (i, rec) in records.iter().enumerate() {
                            bundle::write_record(w, start + i as u64, rec, None)?;
                        }
                        start = end;
                    }
                    Ok(())
                });
                Ok((header, body))
            }
            Some(m) => {
                // Walk the matter's chain back from the export's own entry
                // (or the newest one).
                let mut indices = Vec::new();
                let mut records = Vec::new();
                let mut next = upto.or_else(|| inner.last_in_matter.get(m).copied());
                while let Some(i) = next {
                    let rec = inner.log.read(i)?;
                    let (entry, _) = audit::parse_record(&rec)
                        .map_err(|e| AuditError::Inconsistent(format!("record {i}: {e}")))?;
                    next = entry.prev_in_matter;
                    indices.push(i);
                    records.push(rec);
                }
                indices.reverse();
                records.reverse();
                let leaves = inner.log.leaf_hashes()[..size as usize].to_vec();
                drop(inner);
                let consistency = match known_size {
                    Some(k) if k > 0 && k < size => Some(ConsistencyProof {
                        from_size: k,
                        proof: tlog::consistency_proof(&leaves, k)
                            .map_err(|e| AuditError::Inconsistent(e.to_string()))?,
                    }),
                    _ => None,
                };
                let header = BundleHeader {
                    log_key,
                    checkpoint,
                    matter: Some(m.to_owned()),
                    count: indices.len() as u64,
                    exported_by: exported_by.to_owned(),
                    consistency,
                    witnessed: Vec::new(),
                };
                let body: Body = Box::new(move |w: &mut dyn BodyOut| {
                    let tree = Levels::new(leaves);
                    for (i, rec) in indices.iter().zip(&records) {
                        bundle::write_record(w, *i, rec, Some(&tree.inclusion_proof(*i)))?;
                    }
                    Ok(())
                });
                Ok((header, body))
            }
        }
    }
}

/// Records read per lock while streaming a full export.
const EXPORT_CHUNK: u64 = 4096;

/// Where a response body goes: bytes to copy, or whole buffers handed on
/// as they are.
pub trait BodyOut: Write {
    /// Hands `chunk` on without copying it (after what was written).
    fn send(&mut self, chunk: bytes::Bytes) -> std::io::Result<()>;
}

/// Produces a response body (the records of a bundle, a blob) onto a
/// stream.
pub type Body = Box<dyn FnOnce(&mut dyn BodyOut) -> std::io::Result<()> + Send>;

/// Every level of a Merkle tree, for O(log n) inclusion proofs. An
/// unpaired last node moves up a level unchanged, which yields exactly the
/// RFC 6962 tree.
struct Levels(Vec<Vec<tlog::Hash>>);

impl Levels {
    fn new(leaves: Vec<tlog::Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => tlog::node_hash(l, r),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            levels.push(up);
        }
        Self(levels)
    }

    fn inclusion_proof(&self, index: u64) -> Vec<tlog::Hash> {
        let mut proof = Vec::new();
        let mut i = index as usize;
        for level in &self.0[..self.0.len().saturating_sub(1)] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                proof.push(level[sibling]);
            }
            i /= 2;
        }
        proof
    }
}

impl Inner {
    fn sign(&mut self) -> Result<(), AuditError> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        };
        let note = tlog::sign_checkpoint(&cp, &self.signer);
        if self.log.checkpoint().as_deref() != Some(note.as_str()) {
            self.log.store_checkpoint(&note)?;
        }
        self.checkpoint = note;
        self.size_tx.send_replace(self.frontier.size());
        Ok(())
    }
}

/// Whether `entry` records a key registered for its principal.
fn is_registration(entry: &Entry) -> bool {
    entry.action == "enroll" && entry.allowed && entry.object.as_deref() == Some(&entry.principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> AuditLog {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signer = NoteSigner::new("test.example/log", key.clone()).unwrap();
        AuditLog::open(dir, key, signer, "test.example/log".into()).unwrap()
    }

    /// Many callers at once: every caller's events land together, in
    /// order, at the indexes it was told; each matter's chain links every
    /// one of its entries; the checkpoint covers them all; and the log
    /// reopens to the same state.
    #[test]
    fn group_commit_keeps_each_callers_events_and_chains() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for round in 0..40 {
                        let matter = format!("m{}", t % 4);
                        let n = 1 + (t + round) % 3;
                        let events = (0..n)
                            .map(|k| {
                                Event::server(
                                    &format!("t{t}"),
                                    "probe",
                                    Some(&format!("{round}.{k}")),
                                    None,
                                    Vec::new(),
                                )
                                .in_matter(&matter)
                            })
                            .collect();
                        let last = log.record(events).unwrap();
                        got.push((last, n, round));
                    }
                    got
                })
            })
            .collect();
        let mut total = 0;
        let mut results = Vec::new();
        for (t, h) in threads.into_iter().enumerate() {
            for (last, n, round) in h.join().unwrap() {
                total += n;
                results.push((t, last, n, round));
            }
        }
        let (groups, grouped) = log.group_stats();
        assert_eq!(grouped, total as u64);
        assert!(groups >= 1 && groups <= total as u64);
        let inner = log.inner.lock().unwrap();
        assert_eq!(inner.log.len(), total as u64);
        for (t, last, n, round) in results {
            for k in 0..n {
                let index = last + 1 - (n - k) as u64;
                let (e, _) = audit::parse_record(&inner.log.read(index).unwrap()).unwrap();
                assert_eq!(e.index, index);
                assert_eq!(e.principal, format!("t{t}"));
                assert_eq!(e.object.as_deref(), Some(format!("{round}.{k}").as_str()));
            }
        }
        // Walk each matter's chain back from its last entry: it must visit
        // every entry of the matter exactly once, newest first.
        for m in 0..4 {
            let matter = format!("m{m}");
            let mut seen = 0;
            let mut next = inner.last_in_matter.get(&matter).copied();
            let mut prev_index = u64::MAX;
            while let Some(i) = next {
                let (e, _) = audit::parse_record(&inner.log.read(i).unwrap()).unwrap();
                assert_eq!(e.matter.as_deref(), Some(matter.as_str()));
                assert!(i < prev_index);
                prev_index = i;
                next = e.prev_in_matter;
                seen += 1;
            }
            assert_eq!(Some(&seen), inner.matter_counts.get(&matter));
        }
        let cp = inner.checkpoint.clone();
        drop(inner);
        drop(log);
        let reopened = open(dir.path());
        assert_eq!(reopened.checkpoint().unwrap(), cp);
    }

    /// A caller whose entry cannot be logged (too large) fails alone: the
    /// others in its group are written, with consecutive indexes and an
    /// unbroken matter chain.
    #[test]
    fn one_callers_bad_entry_does_not_fail_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let event = |who: &str, big: bool| {
            let details = if big {
                vec![("x".to_owned(), "y".repeat(crate::auditlog::MAX_ENTRY_LEN))]
            } else {
                Vec::new()
            };
            Event::server(who, "probe", None, None, details).in_matter("m")
        };
        let mut callers = vec![
            (0, vec![event("a", false), event("a", false)]),
            (1, vec![event("b", false), event("b", true)]),
            (2, vec![event("c", false)]),
        ];
        let outcomes = log.commit(&mut callers).unwrap();
        assert_eq!(outcomes[0].as_ref().unwrap(), &1);
        assert!(
            outcomes[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("exceeds")
        );
        assert_eq!(outcomes[2].as_ref().unwrap(), &2);
        let inner = log.inner.lock().unwrap();
        assert_eq!(inner.log.len(), 3);
        let (e, _) = audit::parse_record(&inner.log.read(2).unwrap()).unwrap();
        assert_eq!((e.principal.as_str(), e.prev_in_matter), ("c", Some(1)));
        assert_eq!(inner.matter_counts.get("m"), Some(&3));
    }

    #[test]
    fn levels_give_rfc6962_proofs() {
        for n in 1..=70u64 {
            let leaves: Vec<_> = (0..n).map(|i| tlog::leaf_hash(&i.to_be_bytes())).collect();
            let tree = Levels::new(leaves.clone());
            let root = tlog::root(&leaves);
            for i in 0..n {
                let proof = tree.inclusion_proof(i);
                assert_eq!(
                    proof,
                    tlog::inclusion_proof(&leaves, i).unwrap(),
                    "n={n} i={i}"
                );
                tlog::verify_inclusion(&leaves[i as usize], i, n, &proof, &root).unwrap();
            }
        }
    }
}
