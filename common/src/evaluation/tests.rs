//! A hand-computed fixture: 20 deliverables of one provider with known
//! times, returns and ratings, and a few of another.

use ed25519_dalek::SigningKey;

use super::*;
use crate::receipt::sha256;
use crate::roster::{Change, Check, Statement};

const MATTER: &str = "2026-PI-0042";
const H: u64 = 3_600;

fn entry(
    index: u64,
    time: u64,
    who: &str,
    action: &str,
    object: &str,
    details: Vec<(&str, String)>,
) -> Entry {
    Entry {
        index,
        time,
        principal: who.into(),
        action: action.into(),
        matter: Some(MATTER.into()),
        object: Some(object.into()),
        allowed: true,
        rule: None,
        reason: None,
        prev_in_matter: None,
        details: details
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Log {
    key: SigningKey,
    roster: Roster,
    entries: Vec<Entry>,
}

impl Log {
    fn new() -> Self {
        let key = SigningKey::from_bytes(&[9; 32]);
        let s = Statement {
            matter: MATTER.into(),
            seq: 0,
            prev: None,
            time: 1,
            signer: "alice@firm-a".into(),
            signer_key: key.verifying_key().to_bytes(),
            change: Change::Create {
                title: "t".into(),
                firm: "firm-a".into(),
                scope: vec![Task::MedicalChronology],
                ack_sha256: [1; 32],
                recovery: None,
                age: crate::agekey::AgeIdentity::generate_classic().public(),
            },
        };
        let mut roster = Roster::genesis(&s.sign(&key).unwrap(), Check::Signatures).unwrap();
        let target = Statement {
            seq: 1,
            prev: Some(roster.head),
            change: Change::SetTarget {
                task: Task::MedicalChronology,
                target: Target {
                    turnaround: 24 * H,
                    on_time: 9_500,
                    first_pass: 9_000,
                },
            },
            ..s
        };
        roster
            .apply(&target.sign(&key).unwrap(), Check::Signatures)
            .unwrap();
        for (i, (who, seed)) in [("bob@lpo-1", 10u8), ("carl@lpo-2", 11)]
            .into_iter()
            .enumerate()
        {
            let add = Statement {
                seq: 2 + i as u64,
                prev: Some(roster.head),
                change: Change::Add {
                    member: who.into(),
                    role: crate::roles::Role::Provider,
                    keys: crate::roster::MemberKeys {
                        signing_key: SigningKey::from_bytes(&[seed; 32])
                            .verifying_key()
                            .to_bytes(),
                        age: crate::agekey::AgeIdentity::generate_classic().public(),
                    },
                },
                ..target.clone()
            };
            roster
                .apply(&add.sign(&key).unwrap(), Check::Signatures)
                .unwrap();
        }
        Self {
            key,
            roster,
            entries: Vec::new(),
        }
    }

    fn push(&mut self, id: &str, at: u64, due: Option<u64>) {
        let mut d = vec![("task", "medical-chronology".to_owned())];
        if let Some(due) = due {
            d.push(("due", due.to_string()));
        }
        let n = self.entries.len() as u64;
        self.entries
            .push(entry(n, at, "alice@firm-a", "push-committed", id, d));
    }

    fn deliver(&mut self, id: &str, packet: &str, by: &str, at: u64) {
        let n = self.entries.len() as u64;
        self.entries.push(entry(
            n,
            at,
            by,
            "deliver-committed",
            id,
            vec![
                ("packet", packet.to_owned()),
                ("descriptor_sha256", hex(&[1; 32])),
            ],
        ));
    }

    fn review(
        &mut self,
        id: &str,
        packet: &str,
        at: u64,
        decision: Decision,
        rating: Option<u8>,
        reason: Option<ReturnReason>,
    ) {
        let key = self.key.clone();
        self.review_by(&key, id, packet, at, decision, rating, reason);
    }

    #[allow(clippy::too_many_arguments)]
    fn review_by(
        &mut self,
        key: &SigningKey,
        id: &str,
        packet: &str,
        at: u64,
        decision: Decision,
        rating: Option<u8>,
        reason: Option<ReturnReason>,
    ) {
        let st = ReceiptStatement {
            deliverable: id.into(),
            packet: packet.into(),
            matter: MATTER.into(),
            descriptor_sha256: [1; 32],
            manifest_sha256: [2; 32],
            decision,
            note_sha256: sha256(b""),
            reviewer: "alice@firm-a".into(),
            time: at,
            rating,
            reason,
        };
        let signed = String::from_utf8(st.to_signed_bytes().unwrap()).unwrap();
        let signature = hex(&st.sign(key).unwrap());
        let n = self.entries.len() as u64;
        self.entries.push(entry(
            n,
            at,
            "alice@firm-a",
            "review-receipt",
            id,
            vec![("receipt", signed), ("signature", signature)],
        ));
    }

    fn facts(&self) -> Facts {
        let mut f = Facts::default();
        for e in &self.entries {
            f.observe(e, Some(&self.roster)).unwrap();
        }
        f
    }
}

#[test]
fn the_report_matches_a_hand_computed_fixture() {
    let mut log = Log::new();
    let since = 1_000;
    // An old packet, before the period: left out.
    log.push("p-old", 10, None);
    log.deliver("d-old", "p-old", "bob@lpo-1", 20);
    // A commit logged twice (a client's retry) counts once.
    log.push("p-old", 10, None);
    // lpo-1: 16 packets, the i-th delivered after i+1 hours; the last one
    // is due after 10 hours (late); the first four are returned once.
    for i in 0..16u64 {
        let (p, pushed) = (format!("p-{i}"), since + i * 100_000);
        log.push(&p, pushed, (i == 15).then_some(pushed + 10 * H));
        let first = format!("d-{i}");
        log.deliver(&first, &p, "bob@lpo-1", pushed + (i + 1) * H);
        let approve_rating = if i % 2 == 0 { 4 } else { 5 };
        if i < 4 {
            let reason = match i {
                0 | 1 => Some(ReturnReason::MissingDocument),
                2 => Some(ReturnReason::FactualError),
                _ => None,
            };
            let rating = (i == 0).then_some(2);
            log.review(
                &first,
                &p,
                pushed + 20 * H,
                Decision::Return,
                rating,
                reason,
            );
            let again = format!("d-{i}b");
            log.deliver(&again, &p, "bob@lpo-1", pushed + 30 * H);
            log.review(
                &again,
                &p,
                pushed + 31 * H,
                Decision::Approve,
                Some(approve_rating),
                None,
            );
        } else {
            log.review(
                &first,
                &p,
                pushed + 20 * H,
                Decision::Approve,
                Some(approve_rating),
                None,
            );
        }
    }
    // lpo-2: two deliverables, one packet each.
    for i in 0..2u64 {
        let (p, pushed) = (format!("q-{i}"), since + 5_000_000 + i);
        log.push(&p, pushed, None);
        log.deliver(&format!("e-{i}"), &p, "carl@lpo-2", pushed + 2 * H);
    }
    let rows = evaluate(&log.facts(), Some(&log.roster), since);
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(
        (r.provider.as_str(), r.task),
        ("lpo-1", Task::MedicalChronology)
    );
    assert_eq!((r.packets, r.deliverables), (16, 20));
    assert_eq!(r.median_secs, Some(8 * H), "nearest rank: the 8th of 16");
    assert_eq!(r.p90_secs, Some(15 * H), "the 15th of 16");
    assert_eq!((r.on_time, r.on_time_judged), (15, 16));
    assert_eq!((r.approved, r.first_pass), (16, 12));
    assert_eq!(
        r.returns,
        BTreeMap::from([
            ("factual-error".to_owned(), 1),
            ("missing-document".to_owned(), 2),
            ("unspecified".to_owned(), 1),
        ])
    );
    // 8 × 4 + 8 × 5 on approvals, one 2 on a return: 74 / 17.
    assert_eq!(r.ratings, 17);
    assert!((r.mean_rating.unwrap() - 74.0 / 17.0).abs() < 1e-9);
    assert_eq!(
        r.verdict,
        "below target: on-time 94 % < 95 %, first-pass 75 % < 90 %"
    );
    let r = &rows[1];
    assert_eq!((r.provider.as_str(), r.deliverables), ("lpo-2", 2));
    assert_eq!(r.verdict, "too few deliverables to judge (2 < 10)");
    assert_eq!(
        (r.on_time, r.on_time_judged),
        (2, 2),
        "judged by the 24 h target"
    );
}

#[test]
fn a_receipt_not_signed_by_the_reviewer_is_refused() {
    let mut log = Log::new();
    log.push("p-1", 100, None);
    log.deliver("d-1", "p-1", "bob@lpo-1", 200);
    log.review("d-1", "p-1", 300, Decision::Approve, Some(5), None);
    let forged = log.entries.last_mut().unwrap();
    let signed = forged
        .detail("receipt")
        .unwrap()
        .replace("rating=5", "rating=1");
    forged.details[0].1 = signed;
    let mut f = Facts::default();
    let mut result = Ok(());
    for e in &log.entries {
        result = result.and_then(|()| f.observe(e, Some(&log.roster)));
    }
    assert!(result.unwrap_err().contains("not signed"));
}

/// What the operator, who writes the log, could add: each is refused.
#[test]
fn facts_the_log_cannot_support_are_refused() {
    let refused = |log: &Log, why: &str| {
        let mut f = Facts::default();
        let mut result = Ok(());
        for e in &log.entries {
            result = result.and_then(|()| f.observe(e, Some(&log.roster)));
        }
        let err = result.unwrap_err();
        assert!(err.contains(why), "{err}");
    };
    let base = || {
        let mut log = Log::new();
        log.push("p-1", 100, None);
        log.deliver("d-1", "p-1", "bob@lpo-1", 200);
        log
    };
    // A provider approving its own work with its own roster key.
    let mut log = base();
    let bob = SigningKey::from_bytes(&[10; 32]);
    log.review_by(&bob, "d-1", "p-1", 300, Decision::Approve, Some(5), None);
    if let Some(e) = log.entries.last_mut() {
        e.details[0].1 = e.details[0]
            .1
            .replace("reviewer=alice@firm-a", "reviewer=bob@lpo-1");
    }
    refused(&log, "not signed");
    // A push committed again later, to reset its clock.
    let mut log = base();
    log.push("p-1", 190, None);
    refused(&log, "a second time");
    // A delivery by someone who is no provider, or before the push, or
    // for a packet never pushed.
    let mut log = base();
    log.deliver("d-2", "p-1", "mallory@lpo-9", 250);
    refused(&log, "not a provider");
    let mut log = base();
    log.push("p-2", 1_000, None);
    log.deliver("d-2", "p-2", "bob@lpo-1", 900);
    refused(&log, "before");
    let mut log = base();
    log.deliver("d-2", "p-9", "bob@lpo-1", 900);
    refused(&log, "never pushed");
    // A real receipt moved to another delivery.
    let mut log = base();
    log.push("p-2", 1_000, None);
    log.deliver("d-2", "p-2", "bob@lpo-1", 1_100);
    log.review("d-2", "p-1", 1_200, Decision::Approve, None, None);
    refused(&log, "another packet");
}
