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
/// `chain` (the roster this client verified), the client's clock reading
/// `now`. Returns why not.
pub fn check_expiry(
    chain: &[SignedStatement],
    signed_at: u64,
    (at, roster_len): (u64, u64),
    now: u64,
) -> Result<(), String> {
    if at > now.saturating_add(STATEMENT_SKEW) {
        return Err(format!(
            "it dates the deletion {} s in the future",
            at - now
        ));
    }
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

/// How far an `expired` entry's `uploaded` may precede its commit entry's
/// time (the two are read from the server's clock a moment apart).
const COMMIT_SLACK: u64 = 5;

/// Rebuilds each matter's roster from the log's `roster-appended` entries
/// (one per statement the server stored, logged before it stored it), in
/// log order, and checks each `expired` entry against the roster at that
/// point. Strict: a `roster-appended` entry that does not decode, verify
/// or extend the chain fails the bundle, so a server cannot hide a
/// statement from the replay by logging it damaged.
#[derive(Debug, Default)]
pub struct Replay {
    rosters: BTreeMap<String, (Vec<SignedStatement>, Roster)>,
    /// Packet id → (matter, commit entry time).
    commits: BTreeMap<String, (String, u64)>,
}

impl Replay {
    /// Takes the next entry; returns why the log is not one an honest
    /// server writes.
    pub fn observe(&mut self, e: &Entry) -> Result<(), String> {
        match e.action.as_str() {
            "roster-appended" => self.append(e),
            "push-committed" | "deliver-committed" if e.allowed => {
                if let (Some(id), Some(matter)) = (&e.object, &e.matter) {
                    self.commits.insert(id.clone(), (matter.clone(), e.time));
                }
                Ok(())
            }
            "expired" => self.check_expired(e),
            _ => Ok(()),
        }
    }

    /// A matter's roster as replayed so far.
    pub fn roster(&self, matter: &str) -> Option<&Roster> {
        self.rosters.get(matter).map(|(_, r)| r)
    }

    /// Each replayed matter's chain, as statement hashes in order.
    pub fn chains(&self) -> BTreeMap<String, Vec<[u8; 32]>> {
        self.rosters
            .iter()
            .map(|(m, (chain, _))| (m.clone(), chain.iter().map(SignedStatement::hash).collect()))
            .collect()
    }

    fn append(&mut self, e: &Entry) -> Result<(), String> {
        let bad = |why: String| format!("roster entry {}: {why}", e.index);
        let matter = e
            .matter
            .as_deref()
            .ok_or_else(|| bad("names no matter".into()))?;
        if !e.allowed {
            return Err(bad("is marked denied".into()));
        }
        let decode = |k: &str| {
            e.detail(k)
                .and_then(|v| B64.decode(v).ok())
                .ok_or_else(|| bad(format!("no readable {k}")))
        };
        let entry = SignedStatement {
            statement: decode("statement")?,
            signature: decode("signature")?,
        };
        let s = Statement::parse(&entry.statement).map_err(|err| bad(err.to_string()))?;
        if s.matter != matter {
            return Err(bad(format!("its statement is about matter {}", s.matter)));
        }
        match self.rosters.get_mut(matter) {
            None => {
                let r = Roster::genesis(&entry, Check::Signatures)
                    .map_err(|err| bad(err.to_string()))?;
                self.rosters.insert(matter.to_owned(), (vec![entry], r));
            }
            Some((chain, roster)) if s.seq == roster.len => {
                roster
                    .apply(&entry, Check::Signatures)
                    .map_err(|err| bad(err.to_string()))?;
                chain.push(entry);
            }
            // A client's retry of the last statement after the server
            // stopped between logging and storing it: another statement
            // at the same place, which replaces it.
            Some((chain, roster)) if s.seq + 1 == roster.len && chain.last() != Some(&entry) => {
                let keep = chain.len() - 1;
                let mut r = if keep == 0 {
                    Roster::genesis(&entry, Check::Signatures)
                } else {
                    Roster::from_chain(&chain[..keep], Check::Cached).and_then(|mut r| {
                        r.apply(&entry, Check::Signatures)?;
                        Ok(r)
                    })
                }
                .map_err(|err| bad(err.to_string()))?;
                std::mem::swap(roster, &mut r);
                chain.truncate(keep);
                chain.push(entry);
            }
            Some((_, roster)) => {
                return Err(bad(format!(
                    "statement {} does not follow the {} before it",
                    s.seq, roster.len
                )));
            }
        }
        Ok(())
    }

    fn check_expired(&self, e: &Entry) -> Result<(), String> {
        let id = e.object.as_deref().unwrap_or("");
        let bad = |why: String| format!("expired entry {} for {id}: {why}", e.index);
        let matter = e
            .matter
            .as_deref()
            .ok_or_else(|| bad("names no matter".into()))?;
        if !e.allowed {
            return Err(bad("is marked denied".into()));
        }
        let Some((m, committed)) = self.commits.get(id) else {
            return Err(bad("the log never committed it".into()));
        };
        if m != matter {
            return Err(bad(format!("it was committed in matter {m}, not {matter}")));
        }
        let Some((_, roster)) = self.rosters.get(matter) else {
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
        if uploaded.saturating_add(COMMIT_SLACK) < *committed {
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
        assert!(check_expiry(&c, 1_000, (2_000, 2), 10_000).is_ok());
        // Too early.
        let e = check_expiry(&c, 1_000, (1_500, 2), 10_000).unwrap_err();
        assert!(e.contains("had not run out"), "{e}");
        // Before any retention.
        assert!(
            check_expiry(&c, 1_000, (2_000, 1), 10_000)
                .unwrap_err()
                .contains("no retention")
        );
        // Under the hold.
        assert!(
            check_expiry(&c, 1_000, (9_000, 3), 10_000)
                .unwrap_err()
                .contains("legal hold")
        );
        // Citing the roster before the hold, long after the hold was signed.
        let e = check_expiry(&c, 1_000, (9_000, 2), 10_000).unwrap_err();
        assert!(e.contains("statement 2 (hold"), "{e}");
        // A roster length the client never saw.
        assert!(check_expiry(&c, 1_000, (9_000, 4), 10_000).is_err());
        // A deletion dated in the future.
        let e = check_expiry(&c, 1_000, (2_000, 2), 1_000).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
    }

    fn entry(index: u64, action: &str, object: Option<&str>, details: &[(&str, String)]) -> Entry {
        Entry {
            index,
            time: 100 + index,
            principal: "server".into(),
            action: action.into(),
            matter: Some("2026-PI-0001".into()),
            object: object.map(Into::into),
            allowed: true,
            rule: None,
            reason: None,
            prev_in_matter: None,
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    fn appended(index: u64, s: &SignedStatement) -> Entry {
        entry(
            index,
            "roster-appended",
            None,
            &[
                ("statement", B64.encode(&s.statement)),
                ("signature", B64.encode(&s.signature)),
            ],
        )
    }

    fn expired(index: u64, roster_len: u64, retention: u64) -> Entry {
        entry(
            index,
            "expired",
            Some("p-1"),
            &[
                ("uploaded", "101".into()),
                ("retention", retention.to_string()),
                ("roster_len", roster_len.to_string()),
            ],
        )
    }

    #[test]
    fn the_replay_checks_expiries_and_refuses_damaged_or_rewound_statements() {
        let c = chain(&[
            (100, Change::SetRetention { seconds: 1 }),
            (
                100,
                Change::Hold {
                    reason: String::new(),
                },
            ),
        ]);
        let commit = entry(1, "push-committed", Some("p-1"), &[]);
        // Retention set, no hold yet: an expiry passes.
        let mut r = Replay::default();
        r.observe(&appended(0, &c[0])).unwrap();
        r.observe(&commit).unwrap();
        r.observe(&appended(2, &c[1])).unwrap();
        r.observe(&expired(3, 2, 1)).unwrap();
        // Under the hold: refused.
        r.observe(&appended(4, &c[2])).unwrap();
        let e = r.observe(&expired(5, 3, 1)).unwrap_err();
        assert!(e.contains("legal hold"), "{e}");
        // Claiming the roster before the hold, once it is logged: refused.
        assert!(
            r.observe(&expired(5, 2, 1))
                .unwrap_err()
                .contains("claims a roster")
        );
        // The hold logged again to rewind past it: refused (the same bytes).
        assert!(r.observe(&appended(6, &c[2])).is_err());
        // An older statement logged again to drop the hold: refused.
        assert!(r.observe(&appended(6, &c[1])).is_err());
        assert_eq!(r.chains()["2026-PI-0001"].len(), 3);
        // A hold logged with a damaged signature fails the replay.
        let mut r = Replay::default();
        r.observe(&appended(0, &c[0])).unwrap();
        r.observe(&appended(1, &c[1])).unwrap();
        let mut damaged = c[2].clone();
        damaged.signature[0] ^= 1;
        assert!(r.observe(&appended(2, &damaged)).is_err());
        // An expiry of a packet never committed, or marked denied: refused.
        assert!(
            r.observe(&expired(3, 2, 1))
                .unwrap_err()
                .contains("never committed")
        );
        let mut denied = expired(3, 2, 1);
        denied.allowed = false;
        r.observe(&commit).unwrap();
        assert!(r.observe(&denied).unwrap_err().contains("denied"));
    }
}
