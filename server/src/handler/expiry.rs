//! Retention: the server deletes the files of packets and deliverables
//! whose matter's signed roster sets a retention that has run out, unless
//! a legal hold is in effect (`matterdrop_common::roster`).
//!
//! The decision is the roster's, never the server's: the retention and
//! the hold are statements attorneys signed, and each deletion is logged
//! (`expired`, with the upload time, the retention and the number of
//! roster statements it was decided under) before a file goes, so an
//! auditor replaying the matter's log can check that no deletion came
//! early or under a hold, and a client told a packet expired checks the
//! same against the roster it verified.

use std::collections::BTreeMap;

use matterdrop_common::packet::Descriptor;
use matterdrop_common::roster::{Check, Roster};
use tracing::{info, warn};

use super::gate::Allowed;
use super::{Failure, State};
use crate::audit::Event;
use crate::policy::Decision;
use crate::store::{ExpiredRecord, PacketKind, PacketRecord};

/// When an upload counts as made for its retention: the later of the
/// server's commit time and the time the sender signed (a sender's clock
/// running behind never shortens the retention).
pub(crate) fn uploaded_at(p: &PacketRecord) -> u64 {
    let signed = Descriptor::parse(&p.descriptor).map_or(0, |d| d.created_at);
    p.created_at.max(signed)
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Packets and deliverables newly expired.
    pub expired: usize,
    /// Blob files deleted.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Expires every packet and deliverable whose retention ran out by `now`
/// and deletes the files of every expired one that no live packet names,
/// never in a matter under legal hold. Each packet is handled under its
/// matter's lock, with the roster read again under it, so a hold or a new
/// retention never waits behind a whole matter's sweep. Idempotent: a
/// sweep interrupted after logging an expiry deletes its files the next
/// time.
pub(crate) fn sweep(state: &State, now: u64) -> Result<Swept, Failure> {
    let mut out = Swept::default();
    let packets = state.gate.read().packets()?;
    // Blob → how many live (unexpired) packets name it.
    let mut live: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut candidates: BTreeMap<&str, Vec<&PacketRecord>> = BTreeMap::new();
    for p in &packets {
        match state.gate.read().expired(&p.id)? {
            Some(e) if e.files_deleted => {}
            Some(_) => candidates.entry(p.matter.as_str()).or_default().push(p),
            None => {
                for (h, _) in &p.blobs {
                    *live.entry(*h).or_default() += 1;
                }
                candidates.entry(p.matter.as_str()).or_default().push(p);
            }
        }
    }
    for (matter, packets) in candidates {
        // A first look without the lock: most matters have nothing due.
        let Some(roster) = roster_of(state, matter)? else {
            continue;
        };
        if roster.hold.is_some() {
            continue;
        }
        for p in packets {
            let known = state.gate.read().expired(&p.id)?;
            if known.is_none()
                && roster
                    .deletable_at(uploaded_at(p))
                    .is_none_or(|at| at > now)
            {
                continue;
            }
            let _guard = state.matter_lock(matter);
            // Again under the lock: the roster may have changed.
            let Some(roster) = roster_of(state, matter)? else {
                break;
            };
            if roster.hold.is_some() {
                break;
            }
            let (allowed, mut record) = match state.gate.read().expired(&p.id)? {
                Some(record) => {
                    // Logged by an earlier sweep that stopped before its
                    // files were gone.
                    let allowed = state.gate.decide(
                        Event::server("server", "expired-cleanup", Some(&p.id), None, Vec::new())
                            .in_matter(matter),
                        Decision::Allow,
                    )?;
                    (allowed, record)
                }
                None => {
                    let uploaded = uploaded_at(p);
                    if roster.deletable_at(uploaded).is_none_or(|at| at > now) {
                        continue;
                    }
                    let (allowed, record) = expire(state, &roster, p, uploaded, now)?;
                    for (h, _) in &p.blobs {
                        if let Some(n) = live.get_mut(h) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    out.expired += 1;
                    (allowed, record)
                }
            };
            for (h, _) in &p.blobs {
                if live.get(h).is_some_and(|n| *n > 0) {
                    continue;
                }
                match state.blobs.remove(h) {
                    Ok(Some(n)) => {
                        out.files += 1;
                        out.bytes += n;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(packet = %p.id, error = %e, "cannot delete an expired blob; retrying at the next sweep");
                        return Ok(out);
                    }
                }
            }
            record.files_deleted = true;
            state.gate.write(&allowed).put_expired(&p.id, &record)?;
        }
    }
    Ok(out)
}

/// The roster matter `matter`'s stored statements lead to; `None` (and a
/// warning) for one that does not verify: nothing of it expires.
fn roster_of(state: &State, matter: &str) -> Result<Option<Roster>, Failure> {
    let Some(m) = state.gate.read().matter(matter)? else {
        return Ok(None);
    };
    match Roster::from_chain(&m.roster, Check::Cached) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            warn!(%matter, error = %e, "stored roster does not verify; nothing of it expires");
            Ok(None)
        }
    }
}

/// Logs packet `p`'s expiry, then records it: from then on it is listed as
/// expired and its files may go.
fn expire(
    state: &State,
    roster: &Roster,
    p: &PacketRecord,
    uploaded: u64,
    now: u64,
) -> Result<(Allowed, ExpiredRecord), Failure> {
    let details = vec![
        (
            "kind".into(),
            match p.kind {
                PacketKind::Packet => "packet",
                PacketKind::Deliverable => "deliverable",
            }
            .into(),
        ),
        ("uploaded".into(), uploaded.to_string()),
        ("retention".into(), roster.retention.to_string()),
        ("roster_len".into(), roster.len.to_string()),
        ("files".into(), p.blobs.len().to_string()),
        ("size".into(), p.size().to_string()),
    ];
    let allowed = state.gate.decide(
        Event::server("server", "expired", Some(&p.id), None, details).in_matter(&p.matter),
        Decision::Allow,
    )?;
    let record = ExpiredRecord {
        at: now,
        index: allowed.log_index(),
        roster_len: roster.len,
        files_deleted: false,
    };
    state.gate.write(&allowed).put_expired(&p.id, &record)?;
    info!(packet = %p.id, matter = %p.matter, "expired under the matter's retention");
    Ok((allowed, record))
}

/// Sweeps every `every` (the first time at start) until `stop`.
pub async fn run(
    state: std::sync::Arc<State>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let s = state.clone();
        match tokio::task::spawn_blocking(move || sweep(&s, crate::datadir::now())).await {
            Ok(Ok(swept)) if swept.expired > 0 || swept.files > 0 => info!(
                expired = swept.expired,
                files = swept.files,
                bytes = swept.bytes,
                "retention sweep"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(f)) => warn!(error = %f.message, "retention sweep failed; retrying at the next"),
            Err(e) => warn!(error = %e, "retention sweep panicked"),
        }
    }
}
