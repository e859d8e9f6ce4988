//! Checking the server's deletions against the signed roster.
//!
//! A matter's retention and legal hold are roster statements attorneys
//! sign ([`crate::roster::Change::SetRetention`], [`crate::roster::Change::Hold`]);
//! the server only carries them out. Two checks keep it honest:
//!
//! - a client told that a packet expired ([`check_expiry`]) replays the
//!   roster prefix the server says it decided under and checks that the
//!   retention had run out from the time the sender signed, that no hold
//!   was in effect, and that no later statement the server must already
//!   have had forbade the deletion;
//! - an auditor's verifier ([`Replay`]) rebuilds every matter's roster from
//!   the statements in the log, in log order, and checks each `expired`
//!   entry against the roster at that point and the packet's commit entry.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::audit::Entry;
use crate::roster::{Check, Roster, SignedStatement, Statement};

/// How far a roster statement's time (its signer's clock) may trail the
/// moment the server received it.
pub const STATEMENT_SKEW: u64 = 15 * 60;

/// Checks the server's claim that an upload the sender signed at
/// `signed_at` expired at `at` under the first `roster_len` statements of
/// `chain` (the roster this client verified). Returns why not.
pub fn check_expiry(
    chain: &[SignedStatement],
    signed_at: u64,
    at: u64,
    roster_len: u64,
) -> Result<(), String> {
    let n = usize::try_from(roster_len).unwrap_or(usize::MAX);
    if n == 0 || n > chain.len() {
        return Err(format!(
            "it names roster statement {roster_len} as its basis, and the verified roster has {}",
            chain.len()
        ));
    }
    let prefix = Roster::from_chain(&chain[..n], Check::Cached).map_err(|e| e.to_string())?;
    allows(&prefix, signed_at, at)?;
    // A statement the server held before the deletion, though it claims
    // an older roster: one that forbids it and was signed well before.
    let mut later = prefix;
    for e in &chain[n..] {
        let s = Statement::parse(&e.statement).map_err(|e| e.to_string())?;
        later.apply(e, Check::Cached).map_err(|e| e.to_string())?;
        if s.time.saturating_add(STATEMENT_SKEW) < at {
            if let Err(why) = allows(&later, signed_at, at) {
                return Err(format!(
                    "it cites roster statement {roster_len}, but statement {} ({}, signed {} s \
                     before the deletion) was in effect: {why}",
                    s.seq,
                    s.change.name(),
                    at - s.time
                ));
            }
        }
    }
    Ok(())
}

/// Whether `roster` lets the server delete, at `at`, an upload made at
/// `uploaded`.
fn allows(roster: &Roster, uploaded: u64, at: u64) -> Result<(), String> {
    roster.check_no_hold()?;
    match roster.deletable_at(uploaded) {
        None => Err(format!("matter {} sets no retention", roster.matter)),
        Some(t) if t > at => Err(format!(
            "its retention of {} s had not run out ({} s were left)",
            roster.retention,
            t - at
        )),
        Some(_) => Ok(()),
    }
}

/// The actions whose entries carry an attorney's roster statement.
const ROSTER_ACTIONS: &[&str] = &[
    "matter-create",
    "member-add",
    "member-remove",
    "ack-set",
    "scope-set",
    "recovery-set",
    "crypto-set",
    "member-rekey",
    "retention-set",
    "hold",
    "hold-release",
    "matter-close",
    "matter-reopen",
];

/// Rebuilds rosters from a log, entry by entry in log order, and checks
/// each `expired` entry against them.
#[derive(Debug, Default)]
pub struct Replay {
    rosters: BTreeMap<String, Roster>,
    /// Packet id → (matter, commit entry time).
    commits: BTreeMap<String, (String, u64)>,
}

impl Replay {
    /// Takes the next entry; returns why an `expired` entry is not one the
    /// roster allowed.
    pub fn observe(&mut self, e: &Entry) -> Result<(), String> {
        let Some(matter) = e.matter.as_deref() else {
            return Ok(());
        };
        if !e.allowed {
            return Ok(());
        }
        if ROSTER_ACTIONS.contains(&e.action.as_str()) {
            if let (Some(st), Some(sig)) = (e.detail("statement"), e.detail("signature")) {
                let (Ok(statement), Ok(signature)) = (B64.decode(st), B64.decode(sig)) else {
                    return Ok(());
                };
                let entry = SignedStatement {
                    statement,
                    signature,
                };
                // A statement the server logged as allowed but then
                // refused does not extend the chain; it fails here too.
                match self.rosters.get_mut(matter) {
                    Some(r) => {
                        let _ = r.apply(&entry, Check::Signatures);
                    }
                    None => {
                        if let Ok(r) = Roster::genesis(&entry, Check::Signatures) {
                            if r.matter == matter {
                                self.rosters.insert(matter.to_owned(), r);
                            }
                        }
                    }
                }
            }
            return Ok(());
        }
        match e.action.as_str() {
            "push-committed" | "deliver-committed" => {
                if let Some(id) = &e.object {
                    self.commits.insert(id.clone(), (matter.to_owned(), e.time));
                }
                Ok(())
            }
            "expired" => self.check_expired(e, matter),
            _ => Ok(()),
        }
    }

    fn check_expired(&self, e: &Entry, matter: &str) -> Result<(), String> {
        let id = e.object.as_deref().unwrap_or("");
        let bad = |why: String| format!("expired entry {} for {id}: {why}", e.index);
        let Some((m, committed)) = self.commits.get(id) else {
            return Err(bad("the log never committed it".into()));
        };
        if m != matter {
            return Err(bad(format!("it was committed in matter {m}, not {matter}")));
        }
        let Some(roster) = self.rosters.get(matter) else {
            return Err(bad(format!(
                "the log holds no roster of matter {matter} to allow it"
            )));
        };
        let number = |k: &str| -> Result<u64, String> {
            e.detail(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(format!("no {k}")))
        };
        let uploaded = number("uploaded")?;
        if number("roster_len")? != roster.len || number("retention")? != roster.retention {
            return Err(bad(format!(
                "it claims a roster of {} statements with retention {}, and the log's roster has {} with retention {}",
                number("roster_len")?,
                number("retention")?,
                roster.len,
                roster.retention
            )));
        }
        if uploaded < *committed {
            return Err(bad(format!(
                "it counts the retention from {uploaded}, before its commit at {committed}"
            )));
        }
        allows(roster, uploaded, e.time).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::roles::Task;
    use crate::roster::Change;

    fn chain(changes: &[(u64, Change)]) -> Vec<SignedStatement> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let age = crate::agekey::AgeIdentity::generate_classic().public();
        let mut out: Vec<SignedStatement> = Vec::new();
        let mut all = vec![(
            100,
            Change::Create {
                title: "t".into(),
                firm: "firm-a".into(),
                scope: vec![Task::Drafting],
                ack_sha256: [1; 32],
                recovery: None,
                age,
            },
        )];
        all.extend(changes.iter().cloned());
        for (seq, (time, change)) in all.into_iter().enumerate() {
            let s = Statement {
                matter: "2026-PI-0001".into(),
                seq: seq as u64,
                prev: out.last().map(SignedStatement::hash),
                time,
                signer: "alice@firm-a".into(),
                signer_key: key.verifying_key().to_bytes(),
                change,
            };
            out.push(s.sign(&key).unwrap());
        }
        out
    }

    #[test]
    fn expiry_claims_are_checked_against_the_roster() {
        let c = chain(&[
            (200, Change::SetRetention { seconds: 1000 }),
            (
                5_000,
                Change::Hold {
                    reason: String::new(),
                },
            ),
        ]);
        // Under statement 2 (retention), after it ran out: fine.
        assert!(check_expiry(&c, 1_000, 2_000, 2).is_ok());
        // Too early.
        let e = check_expiry(&c, 1_000, 1_500, 2).unwrap_err();
        assert!(e.contains("had not run out"), "{e}");
        // Before any retention.
        assert!(
            check_expiry(&c, 1_000, 2_000, 1)
                .unwrap_err()
                .contains("no retention")
        );
        // Under the hold.
        assert!(
            check_expiry(&c, 1_000, 9_000, 3)
                .unwrap_err()
                .contains("legal hold")
        );
        // Citing the roster before the hold, long after the hold was signed.
        let e = check_expiry(&c, 1_000, 9_000, 2).unwrap_err();
        assert!(e.contains("statement 2 (hold"), "{e}");
        // A roster length the client never saw.
        assert!(check_expiry(&c, 1_000, 9_000, 4).is_err());
    }
}
