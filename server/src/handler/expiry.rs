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
/// and deletes the files of every expired one that no live packet shares,
/// skipping matters under legal hold. Idempotent: a sweep interrupted
/// after logging an expiry deletes its files the next time.
pub(crate) fn sweep(state: &State, now: u64) -> Result<Swept, Failure> {
    let mut out = Swept::default();
    let mut by_matter: BTreeMap<String, Vec<PacketRecord>> = BTreeMap::new();
    // Blob → how many live (unexpired) packets name it.
    let mut live: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    for p in state.gate.read().packets()? {
        if state.gate.read().expired(&p.id)?.is_none() {
            for (h, _) in &p.blobs {
                *live.entry(*h).or_default() += 1;
            }
        }
        by_matter.entry(p.matter.clone()).or_default().push(p);
    }
    for (matter, packets) in by_matter {
        // Under the matter's lock: a hold or a new retention waits for
        // the sweep of its matter, and the other way round.
        let _guard = state.matter_lock(&matter);
        let Some(m) = state.gate.read().matter(&matter)? else {
            continue;
        };
        let roster = match Roster::from_chain(&m.roster, Check::Cached) {
            Ok(r) => r,
            Err(e) => {
                warn!(matter = %m.id, error = %e, "stored roster does not verify; nothing of it expires");
                continue;
            }
        };
        if roster.hold.is_some() {
            continue;
        }
        let mut dead = Vec::new();
        for p in &packets {
            if state.gate.read().expired(&p.id)?.is_some() {
                dead.push(p);
                continue;
            }
            let uploaded = uploaded_at(p);
            if roster.deletable_at(uploaded).is_none_or(|at| at > now) {
                continue;
            }
            expire(state, &roster, p, uploaded, now)?;
            for (h, _) in &p.blobs {
                if let Some(n) = live.get_mut(h) {
                    *n = n.saturating_sub(1);
                }
            }
            out.expired += 1;
            dead.push(p);
        }
        for p in dead {
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
                    Err(e) => warn!(packet = %p.id, error = %e, "cannot delete an expired blob"),
                }
            }
        }
    }
    Ok(out)
}

/// Logs packet `p`'s expiry, then records it: from then on it is listed as
/// expired and its files may go.
fn expire(
    state: &State,
    roster: &Roster,
    p: &PacketRecord,
    uploaded: u64,
    now: u64,
) -> Result<(), Failure> {
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
    };
    state.gate.write(&allowed).put_expired(&p.id, &record)?;
    info!(packet = %p.id, matter = %p.matter, "expired under the matter's retention");
    Ok(())
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
