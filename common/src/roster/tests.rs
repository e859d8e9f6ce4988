use ed25519_dalek::SigningKey;

use super::*;

const MATTER: &str = "2026-PI-0042";

struct Person {
    id: &'static str,
    key: SigningKey,
    age: AgeKey,
}

fn person(id: &'static str, seed: u8) -> Person {
    // Even seeds classic, odd seeds hybrid: rosters hold both kinds.
    let age = if seed.is_multiple_of(2) {
        crate::agekey::AgeIdentity::generate_classic()
    } else {
        crate::agekey::AgeIdentity::generate_hybrid()
    };
    Person {
        id,
        key: SigningKey::from_bytes(&[seed; 32]),
        age: age.public(),
    }
}

impl Person {
    fn keys(&self) -> MemberKeys {
        MemberKeys {
            signing_key: self.key.verifying_key().to_bytes(),
            age: self.age.clone(),
        }
    }
}

struct Chain {
    entries: Vec<SignedStatement>,
    roster: Roster,
}

impl Chain {
    fn new(alice: &Person) -> Self {
        let s = Statement {
            matter: MATTER.into(),
            seq: 0,
            prev: None,
            time: 100,
            signer: alice.id.into(),
            signer_key: alice.key.verifying_key().to_bytes(),
            change: Change::Create {
                title: "Doe v. Roe — Müller".into(),
                firm: "firm-a".into(),
                scope: vec![Task::MedicalChronology],
                ack_sha256: [1; 32],
                recovery: None,
                age: alice.age.clone(),
            },
        };
        let e = s.sign(&alice.key).unwrap();
        let roster = Roster::genesis(&e, Check::Signatures).unwrap();
        Self {
            entries: vec![e],
            roster,
        }
    }

    fn statement(&self, by: &Person, change: Change) -> Statement {
        Statement {
            matter: MATTER.into(),
            seq: self.roster.len,
            prev: Some(self.roster.head),
            time: self.roster.time + 1,
            signer: by.id.into(),
            signer_key: by.key.verifying_key().to_bytes(),
            change,
        }
    }

    fn push(&mut self, by: &Person, change: Change) -> Result<(), RosterError> {
        let e = self.statement(by, change).sign(&by.key)?;
        self.roster.apply(&e, Check::Signatures)?;
        self.entries.push(e);
        Ok(())
    }
}

fn ack(p: &Person, version: u32, sha: [u8; 32]) -> SignedAck {
    let st = AckStatement {
        matter: MATTER.into(),
        version,
        text_sha256: sha,
        principal: p.id.into(),
        signed_at: 5,
    };
    SignedAck {
        principal: p.id.into(),
        version,
        text_sha256: sha,
        signed_at: 5,
        signature: st.sign(&p.key).unwrap().to_vec(),
    }
}

#[test]
fn every_change_round_trips_and_only_canonical_bytes_parse() {
    let alice = person("alice@firm-a", 1);
    let bob = person("bob@lpo-1", 2);
    let c = Chain::new(&alice);
    let changes = [
        Change::Add {
            member: bob.id.into(),
            role: Role::Provider,
            keys: bob.keys(),
        },
        Change::Remove {
            member: bob.id.into(),
        },
        Change::SetRole {
            member: bob.id.into(),
            role: Role::Auditor,
        },
        Change::SetAck {
            version: 2,
            sha256: [9; 32],
        },
        Change::SetScope {
            scope: vec![Task::Drafting, Task::DocumentReview],
        },
        Change::SetRecovery {
            recovery: Some(bob.age.clone()),
        },
        Change::SetRecovery { recovery: None },
        Change::Rekey {
            member: bob.id.into(),
            keys: bob.keys(),
        },
        Change::SetCrypto { require_pq: true },
        Change::SetCrypto { require_pq: false },
        Change::SetRetention { seconds: 7_776_000 },
        Change::Hold {
            reason: "Doe v. Roe — 100% préservé".into(),
        },
        Change::Release,
        Change::Close,
        Change::Reopen,
        Change::SetRoleDef {
            version: 1,
            sha256: [3; 32],
            sign_off: vec![Task::Drafting, Task::MedicalChronology],
        },
        Change::SetRoleDef {
            version: 2,
            sha256: [4; 32],
            sign_off: Vec::new(),
        },
        Change::ReviewRoleDef { version: 2 },
        Change::SetTarget {
            task: Task::MedicalChronology,
            target: Target {
                turnaround: 86_400,
                on_time: 9_500,
                first_pass: 9_900,
            },
        },
        Change::SetContact {
            member: bob.id.into(),
        },
    ];
    let first = Statement::parse(&c.entries[0].statement).unwrap();
    assert!(
        matches!(&first.change, Change::Create { title, .. } if title == "Doe v. Roe — Müller")
    );
    for change in changes {
        let s = c.statement(&alice, change);
        let bytes = s.to_bytes().unwrap();
        assert_eq!(Statement::parse(&bytes).unwrap(), s);
        // Any one byte changed: refused or a different statement.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if let Ok(other) = Statement::parse(&b) {
                assert_ne!(other, s, "byte {i} flipped parses as the same statement");
            }
        }
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"extra=1\n");
        assert!(Statement::parse(&extra).is_err());
        assert!(Statement::parse(&bytes[..bytes.len() - 1]).is_err());
    }
    let mut unknown = c.entries[0].statement.clone();
    let at = unknown.windows(8).position(|w| w == b"x25519\na").unwrap();
    unknown[at..at + 6].copy_from_slice(b"mlkem7");
    let e = Statement::parse(&unknown).unwrap_err().to_string();
    assert!(e.contains("unknown age recipient type"), "{e}");
}

#[test]
fn recipients_come_from_the_roster_and_verified_acknowledgments() {
    let alice = person("alice@firm-a", 1);
    let pat = person("pat@firm-a", 3);
    let bob = person("bob@lpo-1", 2);
    let carl = person("carl@lpo-1", 4);
    let audrey = person("audrey@audit-co", 5);
    let mut c = Chain::new(&alice);
    for (p, role) in [
        (&pat, Role::Paralegal),
        (&bob, Role::Provider),
        (&carl, Role::Provider),
        (&audrey, Role::Auditor),
    ] {
        c.push(
            &alice,
            Change::Add {
                member: p.id.into(),
                role,
                keys: p.keys(),
            },
        )
        .unwrap();
    }
    let alice_key = alice.key.verifying_key().to_bytes();
    // Bob acknowledged version 1; Carl signed with a wrong key; no one else.
    let mut forged = ack(&carl, 1, [1; 32]);
    forged.signature = ack(&bob, 1, [1; 32]).signature;
    let acks = [ack(&bob, 1, [1; 32]), forged];
    let ids = |r: Vec<RosterRecipient>| r.into_iter().map(|r| r.principal).collect::<Vec<_>>();
    assert_eq!(
        ids(c
            .roster
            .packet_recipients(alice.id, &alice_key, &acks)
            .unwrap()),
        ["alice@firm-a", "bob@lpo-1", "pat@firm-a"]
    );
    // A new acknowledgment version drops Bob until he signs it.
    c.push(
        &alice,
        Change::SetAck {
            version: 2,
            sha256: [2; 32],
        },
    )
    .unwrap();
    assert_eq!(
        ids(c
            .roster
            .packet_recipients(alice.id, &alice_key, &acks)
            .unwrap()),
        ["alice@firm-a", "pat@firm-a"]
    );
    let acks = [ack(&bob, 2, [2; 32])];
    // Deliverables: the firm and the delivering provider only.
    let bob_key = bob.key.verifying_key().to_bytes();
    assert_eq!(
        ids(c
            .roster
            .deliverable_recipients(bob.id, &bob_key, &acks)
            .unwrap()),
        ["alice@firm-a", "bob@lpo-1", "pat@firm-a"]
    );
    let carl_key = carl.key.verifying_key().to_bytes();
    assert!(
        c.roster
            .deliverable_recipients(carl.id, &carl_key, &acks)
            .is_err()
    );
    // A sender the roster does not know with this key is refused.
    assert!(
        c.roster
            .packet_recipients(alice.id, &bob_key, &acks)
            .is_err()
    );
    assert!(c.roster.packet_recipients(bob.id, &bob_key, &acks).is_err());
    // A rekeyed member's old acknowledgment no longer counts.
    let bob2 = person("bob@lpo-1", 12);
    c.push(
        &alice,
        Change::Rekey {
            member: bob.id.into(),
            keys: bob2.keys(),
        },
    )
    .unwrap();
    assert_eq!(
        ids(c
            .roster
            .packet_recipients(alice.id, &alice_key, &acks)
            .unwrap()),
        ["alice@firm-a", "pat@firm-a"]
    );
    assert!(c.roster.ever_sanctioned(bob.id, bob.age.recipient()));
    assert!(c.roster.ever_sanctioned(bob.id, bob2.age.recipient()));
    assert!(!c.roster.ever_sanctioned(bob.id, carl.age.recipient()));
}

#[test]
fn only_current_attorneys_with_their_roster_key_sign() {
    let alice = person("alice@firm-a", 1);
    let pat = person("pat@firm-a", 3);
    let bob = person("bob@lpo-1", 2);
    let mut c = Chain::new(&alice);
    c.push(
        &alice,
        Change::Add {
            member: pat.id.into(),
            role: Role::Paralegal,
            keys: pat.keys(),
        },
    )
    .unwrap();
    let add_bob = Change::Add {
        member: bob.id.into(),
        role: Role::Provider,
        keys: bob.keys(),
    };
    // A paralegal cannot add members.
    let e = c.push(&pat, add_bob.clone()).unwrap_err();
    assert!(e.to_string().contains("not an attorney"), "{e}");
    // Alice's id with another key (a re-enrolled key) cannot either.
    let mallory = person("alice@firm-a", 66);
    let e = c.push(&mallory, add_bob.clone()).unwrap_err();
    assert!(
        e.to_string().contains("key the roster does not give"),
        "{e}"
    );
    // A signature by another key over Alice's statement.
    let mut e = c
        .statement(&alice, add_bob.clone())
        .sign(&alice.key)
        .unwrap();
    e.signature = sign::sign(&mallory.key, &e.statement).to_vec();
    assert!(matches!(
        c.roster.apply(&e, Check::Signatures),
        Err(RosterError::BadSignature { .. })
    ));
    // Promoted, Pat can.
    c.push(
        &alice,
        Change::SetRole {
            member: pat.id.into(),
            role: Role::Attorney,
        },
    )
    .unwrap();
    c.push(&pat, add_bob).unwrap();
    // Role rules.
    let dana = person("dana@lpo-1", 7);
    let e = c
        .push(
            &alice,
            Change::Add {
                member: dana.id.into(),
                role: Role::Paralegal,
                keys: dana.keys(),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("belong to the matter's firm"), "{e}");
    let e = c
        .push(
            &alice,
            Change::SetScope {
                scope: vec![Task::LegalAdvice],
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("in-house"), "{e}");
    // The last attorney stays.
    c.push(
        &alice,
        Change::Remove {
            member: pat.id.into(),
        },
    )
    .unwrap();
    let e = c
        .push(
            &alice,
            Change::Remove {
                member: alice.id.into(),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("last attorney"), "{e}");
    // The removed attorney signs nothing any more.
    let e = c
        .push(
            &pat,
            Change::SetScope {
                scope: vec![Task::Drafting],
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("not an attorney"), "{e}");
}

#[test]
fn forks_replays_and_gaps_are_refused() {
    let alice = person("alice@firm-a", 1);
    let bob = person("bob@lpo-1", 2);
    let mut c = Chain::new(&alice);
    c.push(
        &alice,
        Change::SetScope {
            scope: vec![Task::Drafting],
        },
    )
    .unwrap();
    let before = c.roster.clone();
    // A replay of statement 1.
    let e = c
        .roster
        .apply(&c.entries[1].clone(), Check::Signatures)
        .unwrap_err();
    assert!(matches!(e, RosterError::Chain { seq: 1, .. }), "{e}");
    // A statement 2 that names the wrong prev: a fork.
    let mut s = c.statement(
        &alice,
        Change::Add {
            member: bob.id.into(),
            role: Role::Provider,
            keys: bob.keys(),
        },
    );
    s.prev = Some(c.entries[0].hash());
    let e = c
        .roster
        .apply(&s.sign(&alice.key).unwrap(), Check::Signatures)
        .unwrap_err();
    assert!(e.to_string().contains("fork"), "{e}");
    // A gap.
    let mut s = c.statement(&alice, Change::SetRecovery { recovery: None });
    s.seq += 1;
    assert!(
        c.roster
            .apply(&s.sign(&alice.key).unwrap(), Check::Signatures)
            .is_err()
    );
    // A statement dated before the last one.
    let mut s = c.statement(&alice, Change::SetRecovery { recovery: None });
    s.time = 1;
    assert!(
        c.roster
            .apply(&s.sign(&alice.key).unwrap(), Check::Signatures)
            .is_err()
    );
    assert_eq!(c.roster, before, "refused statements change nothing");
    // The whole chain verifies from the start, and a cached one without
    // signatures gives the same state.
    assert_eq!(
        Roster::from_chain(&c.entries, Check::Signatures).unwrap(),
        c.roster
    );
    assert_eq!(
        Roster::from_chain(&c.entries, Check::Cached).unwrap(),
        c.roster
    );
    // Another matter's statement.
    let mut other = Chain::new(&alice);
    other.roster.matter = "OTHER".into();
    assert!(
        other
            .roster
            .apply(&c.entries[1], Check::Signatures)
            .is_err()
    );
}

#[test]
fn genesis_rules() {
    let alice = person("alice@firm-a", 1);
    let mk = |firm: &str, scope: Vec<Task>, title: &str| Statement {
        matter: MATTER.into(),
        seq: 0,
        prev: None,
        time: 1,
        signer: alice.id.into(),
        signer_key: alice.key.verifying_key().to_bytes(),
        change: Change::Create {
            title: title.into(),
            firm: firm.into(),
            scope,
            ack_sha256: [0; 32],
            recovery: None,
            age: alice.age.clone(),
        },
    };
    let ok = mk("firm-a", vec![Task::Drafting], "T");
    assert!(Roster::genesis(&ok.sign(&alice.key).unwrap(), Check::Signatures).is_ok());
    for bad in [
        mk("firm-b", vec![Task::Drafting], "T"),
        mk("firm-a", vec![], "T"),
        mk("firm-a", vec![Task::Drafting, Task::Drafting], "T"),
        mk("firm-a", vec![Task::Drafting], "bad\u{1b}[2Jtitle"),
        mk("firm-a", vec![Task::Drafting], " "),
    ] {
        assert!(
            Roster::genesis(&bad.sign(&alice.key).unwrap(), Check::Signatures).is_err(),
            "{bad:?}"
        );
    }
    let mut not_first = ok.clone();
    not_first.seq = 1;
    assert!(Roster::genesis(&not_first.sign(&alice.key).unwrap(), Check::Signatures).is_err());
}

#[test]
fn titles_percent_encode_reversibly() {
    for t in ["Doe v. Roe", "100% Müller", "日本", "a%b"] {
        let e = encode_text(t);
        assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert_eq!(decode_text(&e).unwrap(), t);
    }
    assert!(
        decode_text("%41").is_err(),
        "not canonical: A needs no escape"
    );
    assert!(decode_text("%e2").is_err(), "lowercase hex");
    assert!(decode_text("%").is_err());
}

#[test]
fn the_fuzz_seed_corpus_holds_valid_statements_of_every_kind() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/roster");
    let mut kinds = BTreeSet::new();
    let mut age_types = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        if let Ok(s) = Statement::parse(&bytes) {
            kinds.insert(s.change.name());
            if let Change::Add { keys, .. } = &s.change {
                age_types.insert(keys.age.kind());
            }
        }
    }
    assert_eq!(
        age_types.into_iter().collect::<Vec<_>>(),
        ["mlkem768x25519", "x25519"]
    );
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "add",
            "create",
            "rekey",
            "remove",
            "set-ack",
            "set-crypto",
            "set-recovery",
            "set-role",
            "set-scope"
        ]
    );
}

#[test]
fn require_pq_refuses_classic_keys_in_every_change_that_makes_a_reader() {
    // Odd seeds are hybrid, even seeds classic (`person`).
    let alice = person("alice@firm-a", 1);
    let hybrid = person("hana@lpo-1", 3);
    let classic = person("carl@lpo-1", 4);
    let auditor = person("olga@firm-a", 6);
    let mut c = Chain::new(&alice);
    c.push(
        &alice,
        Change::Add {
            member: auditor.id.into(),
            role: Role::Auditor,
            keys: auditor.keys(),
        },
    )
    .unwrap();
    // The flag is a round-tripping, signed statement, and changes state.
    let st = c.statement(&alice, Change::SetCrypto { require_pq: true });
    assert_eq!(Statement::parse(&st.to_bytes().unwrap()).unwrap(), st);
    c.push(&alice, Change::SetCrypto { require_pq: true })
        .unwrap();
    assert!(c.roster.require_pq);
    let refused = |c: &mut Chain, change: Change, who: &str| {
        let before = c.roster.clone();
        let e = c
            .push(&alice, change)
            .expect_err("a classic key must be refused");
        let msg = e.to_string();
        assert!(
            msg.contains("requires post-quantum keys") && msg.contains(who),
            "{msg}"
        );
        assert_eq!(c.roster, before, "a refused statement changed the roster");
    };
    refused(
        &mut c,
        Change::Add {
            member: classic.id.into(),
            role: Role::Provider,
            keys: classic.keys(),
        },
        classic.id,
    );
    refused(
        &mut c,
        Change::SetRecovery {
            recovery: Some(classic.age.clone()),
        },
        "recovery",
    );
    // An auditor with a classic key reads nothing; made a paralegal, they
    // would.
    refused(
        &mut c,
        Change::SetRole {
            member: auditor.id.into(),
            role: Role::Paralegal,
        },
        auditor.id,
    );
    c.push(
        &alice,
        Change::Add {
            member: hybrid.id.into(),
            role: Role::Provider,
            keys: hybrid.keys(),
        },
    )
    .unwrap();
    refused(
        &mut c,
        Change::Rekey {
            member: hybrid.id.into(),
            keys: MemberKeys {
                signing_key: hybrid.key.verifying_key().to_bytes(),
                age: classic.age.clone(),
            },
        },
        hybrid.id,
    );
    // Setting it twice is refused; allowing classic keys again works.
    assert!(
        c.push(&alice, Change::SetCrypto { require_pq: true })
            .is_err()
    );
    c.push(&alice, Change::SetCrypto { require_pq: false })
        .unwrap();
    c.push(
        &alice,
        Change::Add {
            member: classic.id.into(),
            role: Role::Provider,
            keys: classic.keys(),
        },
    )
    .unwrap();
    // The push-time check names classic readers only while required.
    let readers = [c
        .roster
        .recipient(classic.id, &c.roster.members[classic.id])];
    assert!(c.roster.check_post_quantum(&readers, None).is_ok());
    c.push(&alice, Change::SetCrypto { require_pq: true })
        .unwrap();
    let e = c.roster.check_post_quantum(&readers, None).unwrap_err();
    assert!(e.contains(classic.id), "{e}");
    let e = c
        .roster
        .check_post_quantum(&[], Some(&classic.age))
        .unwrap_err();
    assert!(e.contains("recovery recipient"), "{e}");
}

#[test]
fn retention_hold_and_closing_follow_their_rules() {
    let alice = person("alice@firm-a", 1);
    let bob = person("bob@lpo-1", 2);
    let mut c = Chain::new(&alice);
    let refused = |c: &Chain, change: Change, why: &str| {
        let s = c.statement(&alice, change);
        let e = s.sign(&alice.key).unwrap();
        let err = c.roster.clone().apply(&e, Check::Signatures).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    };
    assert_eq!(c.roster.deletable_at(1_000), None, "no retention: kept");
    c.push(&alice, Change::SetRetention { seconds: 90 })
        .unwrap();
    assert_eq!(c.roster.deletable_at(1_000), Some(1_090));
    refused(
        &c,
        Change::SetRetention { seconds: 90 },
        "already has this retention",
    );
    refused(
        &c,
        Change::SetRetention {
            seconds: MAX_RETENTION + 1,
        },
        "longer than 100 years",
    );
    refused(&c, Change::Release, "not under legal hold");
    refused(
        &c,
        Change::Hold {
            reason: "bad\u{1b}[2J".into(),
        },
        "control characters",
    );
    c.push(
        &alice,
        Change::Hold {
            reason: "Doe litigation — préservation".into(),
        },
    )
    .unwrap();
    assert_eq!(c.roster.deletable_at(1_000), None, "a hold blocks deletion");
    assert!(c.roster.check_no_hold().unwrap_err().contains("legal hold"));
    refused(
        &c,
        Change::Hold {
            reason: String::new(),
        },
        "already under the legal hold",
    );
    c.push(&alice, Change::Release).unwrap();
    assert_eq!(c.roster.deletable_at(1_000), Some(1_090));
    assert!(c.roster.check_no_hold().is_ok());
    c.push(&alice, Change::Close).unwrap();
    assert!(
        c.roster
            .check_open()
            .unwrap_err()
            .contains("closed by alice@firm-a")
    );
    refused(
        &c,
        Change::Add {
            member: bob.id.into(),
            role: Role::Provider,
            keys: bob.keys(),
        },
        "closed",
    );
    refused(&c, Change::Close, "closed");
    refused(
        &c,
        Change::SetScope {
            scope: vec![Task::Drafting],
        },
        "closed",
    );
    // Holds and retention still change on a closed matter.
    c.push(
        &alice,
        Change::Hold {
            reason: String::new(),
        },
    )
    .unwrap();
    c.push(&alice, Change::SetRetention { seconds: 0 }).unwrap();
    c.push(&alice, Change::Reopen).unwrap();
    assert!(c.roster.check_open().is_ok());
    refused(&c, Change::Reopen, "not closed");
    // The whole chain verifies again from its statements.
    let again = Roster::from_chain(&c.entries, Check::Signatures).unwrap();
    assert_eq!(again, c.roster);
}

#[test]
fn role_definitions_are_versioned_and_reviewed() {
    let alice = person("alice@firm-a", 1);
    let mut c = Chain::new(&alice);
    let refused = |c: &Chain, change: Change, why: &str| {
        let e = c.statement(&alice, change).sign(&alice.key).unwrap();
        let err = c.roster.clone().apply(&e, Check::Signatures).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    };
    refused(
        &c,
        Change::ReviewRoleDef { version: 1 },
        "no role definition",
    );
    refused(
        &c,
        Change::SetRoleDef {
            version: 2,
            sha256: [1; 32],
            sign_off: Vec::new(),
        },
        "does not follow version 0",
    );
    refused(
        &c,
        Change::SetRoleDef {
            version: 1,
            sha256: [1; 32],
            sign_off: vec![Task::LegalAdvice],
        },
        "in-house",
    );
    c.push(
        &alice,
        Change::SetRoleDef {
            version: 1,
            sha256: [1; 32],
            sign_off: vec![Task::MedicalChronology],
        },
    )
    .unwrap();
    let set = c.roster.role_def.clone().unwrap();
    assert_eq!(
        (set.version, set.sign_off.clone()),
        (1, vec![Task::MedicalChronology])
    );
    refused(&c, Change::ReviewRoleDef { version: 2 }, "version 1, not 2");
    c.push(&alice, Change::ReviewRoleDef { version: 1 })
        .unwrap();
    let reviewed = c.roster.role_def.clone().unwrap();
    assert!(reviewed.reviewed > set.reviewed);
    assert_eq!(reviewed.sha256, set.sha256, "a review changes nothing else");
}

#[test]
fn targets_are_set_per_task_and_bounded() {
    let alice = person("alice@firm-a", 1);
    let mut c = Chain::new(&alice);
    let t = |turnaround, on_time, first_pass| Target {
        turnaround,
        on_time,
        first_pass,
    };
    let refused = |c: &Chain, change: Change, why: &str| {
        let e = c.statement(&alice, change).sign(&alice.key).unwrap();
        let err = c.roster.clone().apply(&e, Check::Signatures).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    };
    let set = |task, target| Change::SetTarget { task, target };
    refused(
        &c,
        set(Task::Drafting, t(0, 9_500, 9_900)),
        "1 second to 365 days",
    );
    refused(&c, set(Task::LegalAdvice, t(60, 9_500, 9_900)), "in-house");
    c.push(&alice, set(Task::Drafting, t(86_400, 9_500, 9_900)))
        .unwrap();
    refused(
        &c,
        set(Task::Drafting, t(86_400, 9_500, 9_900)),
        "already has these",
    );
    c.push(&alice, set(Task::MedicalChronology, t(3_600, 10_000, 0)))
        .unwrap();
    c.push(&alice, set(Task::Drafting, t(43_200, 9_000, 9_900)))
        .unwrap();
    assert_eq!(
        c.roster.targets,
        vec![
            (Task::Drafting, t(43_200, 9_000, 9_900)),
            (Task::MedicalChronology, t(3_600, 10_000, 0)),
        ]
    );
    // Over 100 % does not even parse.
    let e = c
        .statement(&alice, set(Task::Drafting, t(60, 10_001, 0)))
        .sign(&alice.key)
        .unwrap();
    assert!(Statement::parse(&e.statement).is_err());
}

#[test]
fn each_organization_names_one_current_member_its_contact() {
    let alice = person("alice@firm-a", 1);
    let bob = person("bob@lpo-1", 2);
    let mut c = Chain::new(&alice);
    let contact = |m: &str| Change::SetContact { member: m.into() };
    let e = c
        .statement(&alice, contact(bob.id))
        .sign(&alice.key)
        .unwrap();
    let err = c.roster.clone().apply(&e, Check::Signatures).unwrap_err();
    assert!(err.to_string().contains("not a member"), "{err}");
    c.push(
        &alice,
        Change::Add {
            member: bob.id.into(),
            role: Role::Provider,
            keys: bob.keys(),
        },
    )
    .unwrap();
    c.push(&alice, contact(bob.id)).unwrap();
    c.push(&alice, contact(alice.id)).unwrap();
    assert_eq!(
        c.roster.contacts.get("lpo-1").map(String::as_str),
        Some(bob.id)
    );
    assert_eq!(
        c.roster.contacts.get("firm-a").map(String::as_str),
        Some(alice.id)
    );
    c.push(
        &alice,
        Change::Remove {
            member: bob.id.into(),
        },
    )
    .unwrap();
    assert!(!c.roster.contacts.contains_key("lpo-1"), "removal ends it");
}
