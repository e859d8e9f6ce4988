//! The signed matter roster against a hostile operator: each test stops the
//! server, changes its database the way whoever runs `mdropd` could (with
//! identities the operator minted for itself), starts it again, and checks
//! that clients refuse with exit 4 and that no stored blob decrypts with a
//! key the roster does not sanction.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use matterdrop_common::roster::{
    AgeKey, Change, Check, MemberKeys, Roster, SignedStatement, Statement,
};
use matterdrop_common::sign::AckStatement;
use matterdrop_server::store::{
    AckRecord, MatterRecord, MemberRecord, MetaRead as _, MetaWrite as _, SledStore,
};
use matterdrop_tests::{User, World, age_v13, walk};

const MATTER: &str = "2026-PI-0042";
const TASK: &str = "medical-chronology";

struct Team {
    w: World,
    alice: User,
    pat: User,
    bob: User,
    /// An identity the operator enrolled for itself with an invite it
    /// minted: a real, enrolled key whose private half the operator holds.
    mallory: User,
}

impl Team {
    fn clients(&self) -> [&User; 4] {
        [&self.alice, &self.pat, &self.bob, &self.mallory]
    }

    /// Stops the server, edits matter `MATTER` in its database, restarts it
    /// and repoints every client.
    fn operator_edits(&mut self, edit: impl FnOnce(&mut MatterRecord, &SledStore)) {
        self.w.server.restart_after(|data| {
            let store = SledStore::open(&data.join("db")).expect("open the stopped server's db");
            let mut m = store.matter(MATTER).unwrap().expect("matter");
            edit(&mut m, &store);
            store.put_matter(&m).unwrap();
            store.flush().unwrap();
        });
        for u in self.clients() {
            u.repoint(&self.w.server);
        }
        self.w.admin.repoint(&self.w.server);
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.w.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    fn push(&self, who: &User, file: &str) -> matterdrop_tests::Run {
        who.run(&["push", MATTER, file, "--task", TASK])
    }

    fn out(&self, name: &str) -> PathBuf {
        self.w.tmp.path().join(name)
    }
}

fn setup() -> Team {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let pat = w.user("pat@firm-a");
    let bob = w.user("bob@lpo-1");
    let mallory = w.user("mallory@lpo-1");
    let ack = w.tmp.path().join("ack.txt");
    std::fs::write(&ack, "Confidential.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe v. Roe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        TASK,
    ]);
    alice
        .add_member(MATTER, &pat, "pat@firm-a", "paralegal")
        .ok();
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);
    Team {
        w,
        alice,
        pat,
        bob,
        mallory,
    }
}

fn signing_key(user: &User) -> SigningKey {
    let pem = std::fs::read_to_string(user.home.join("signing-key.pem")).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn age_of(user: &User) -> String {
    std::fs::read_to_string(user.home.join("identity.pub"))
        .unwrap()
        .trim()
        .to_owned()
}

fn keys_of(user: &User) -> MemberKeys {
    MemberKeys {
        signing_key: signing_key(user).verifying_key().to_bytes(),
        age: AgeKey::from_recipient(&age_of(user)).unwrap(),
    }
}

/// How many stored blobs (packet and deliverable files and manifests)
/// an age v1.3 implementation this project did not write decrypts with
/// `user`'s identity.
fn decryptable_by(data: &Path, user: &User) -> usize {
    walk(&data.join("blobs"))
        .iter()
        .filter(|blob| {
            age_v13()
                .arg("-d")
                .arg("-i")
                .arg(user.home.join("identity.txt"))
                .arg(blob)
                .output()
                .expect("run node (tests/run installs it)")
                .status
                .success()
        })
        .count()
}

/// A member record and a valid acknowledgment for `who`, made with keys the
/// operator holds.
fn inject_member(m: &mut MatterRecord, who: &User, id: &str) {
    let keys = keys_of(who);
    m.members.push(MemberRecord {
        principal: id.into(),
        role: "provider".into(),
        signing_key: keys.signing_key,
        age: keys.age.recipient().to_owned(),
        added_by: "alice@firm-a".into(),
        added_at: m.created_at,
        removed_at: None,
    });
    let sha = m.ack_versions.last().unwrap().sha256;
    let signed_at = m.created_at;
    let sig = AckStatement {
        matter: MATTER.into(),
        version: m.ack_version(),
        text_sha256: sha,
        principal: id.into(),
        signed_at,
    }
    .sign(&signing_key(who))
    .unwrap();
    m.acks.push(AckRecord {
        principal: id.into(),
        version: m.ack_version(),
        text_sha256: sha,
        signed_at,
        signature: sig.to_vec(),
        signing_key: keys.signing_key,
    });
}

/// A roster statement made with `key`, claiming `signer`, appended to the
/// stored chain.
fn forge_statement(m: &mut MatterRecord, signer: &str, key: &SigningKey, change: Change) {
    let roster = Roster::from_chain(&m.roster, Check::Cached).unwrap();
    let s = Statement {
        matter: MATTER.into(),
        seq: roster.len,
        prev: Some(roster.head),
        time: roster.time,
        signer: signer.into(),
        signer_key: key.verifying_key().to_bytes(),
        change,
    };
    let statement = s.to_bytes().unwrap();
    let signature = matterdrop_common::sign::sign(key, &statement).to_vec();
    m.roster.push(SignedStatement {
        statement,
        signature,
    });
}

#[track_caller]
fn refused(r: &matterdrop_tests::Run, needles: &[&str]) {
    assert_eq!(r.code, 4, "{r:?}");
    for n in needles {
        assert!(r.stderr.contains(n), "expected {n:?} in: {r:?}");
    }
}

#[test]
fn an_injected_member_receives_nothing() {
    let mut t = setup();
    let records = t.file("records.txt", "2025-01-02 ER visit\n");
    let p1 = t.push(&t.alice, &records).ok().stdout;
    assert!(p1.contains("bob@lpo-1"), "{p1}");
    assert!(
        decryptable_by(&t.w.server.data, &t.bob) > 0,
        "the honest packet is readable by its provider (the check can fail)"
    );

    let mallory = t.mallory.clone();
    t.operator_edits(|m, _| inject_member(m, &mallory, "mallory@lpo-1"));
    // The server now lists Mallory, with a valid acknowledgment made with
    // her (enrolled) key; the roster never named her.
    for who in [&t.alice, &t.pat] {
        let r = t.push(who, &records);
        refused(&r, &["does not sanction", "mallory@lpo-1"]);
    }
    assert_eq!(decryptable_by(&t.w.server.data, &t.mallory), 0);
}

#[test]
fn swapped_keys_and_an_operator_recovery_key_are_refused() {
    let mut t = setup();
    let records = t.file("records.txt", "2025-01-02 ER visit\n");
    let mallory_age = age_of(&t.mallory);

    // Bob's key in the membership swapped for the operator's.
    let original = std::sync::Mutex::new(String::new());
    t.operator_edits(|m, _| {
        let bob = m
            .members
            .iter_mut()
            .find(|r| r.principal == "bob@lpo-1")
            .unwrap();
        *original.lock().unwrap() = std::mem::replace(&mut bob.age, mallory_age.clone());
    });
    let r = t.push(&t.alice, &records);
    refused(&r, &["does not sanction", "bob@lpo-1", &mallory_age]);
    let original = original.into_inner().unwrap();

    // A recovery recipient the operator holds.
    t.operator_edits(|m, _| {
        let bob = m
            .members
            .iter_mut()
            .find(|r| r.principal == "bob@lpo-1")
            .unwrap();
        bob.age = original.clone();
        m.recovery = Some(mallory_age.clone());
    });
    let r = t.push(&t.pat, &records);
    refused(&r, &["recovery recipient", &mallory_age]);

    assert_eq!(decryptable_by(&t.w.server.data, &t.mallory), 0);
}

#[test]
fn forged_and_dropped_statements_are_refused() {
    let mut t = setup();
    let records = t.file("records.txt", "2025-01-02 ER visit\n");
    let r = t.alice.json(&["push", MATTER, &records, "--task", TASK]);
    let p1 = r["id"].as_str().unwrap().to_owned();
    let r = t.alice.json(&["push", MATTER, &records, "--task", TASK]);
    let p2 = r["id"].as_str().unwrap().to_owned();
    t.bob
        .json(&["pull", &p1, "--out", t.out("bob-1").to_str().unwrap()]);
    let work = t.file("chronology.txt", "Jan 2: ER visit\n");
    let d1 = t.bob.json(&["deliver", MATTER, "--packet", &p1, &work])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A statement signed by the operator's key, adding its identity.
    let mallory_key = signing_key(&t.mallory);
    let mallory_keys = keys_of(&t.mallory);
    let mallory = t.mallory.clone();
    t.operator_edits(|m, _| {
        forge_statement(
            m,
            "alice@firm-a",
            &mallory_key,
            Change::Add {
                member: "mallory@lpo-1".into(),
                role: matterdrop_common::roles::Role::Provider,
                keys: mallory_keys.clone(),
            },
        );
        inject_member(m, &mallory, "mallory@lpo-1");
    });
    let r = t.push(&t.alice, &records);
    refused(&r, &["does not verify", "statement 3"]);
    // Pulling an earlier packet checks the roster too.
    let out = t.out("bob-2");
    let r = t.bob.run(&["pull", &p1, "--out", out.to_str().unwrap()]);
    refused(&r, &["does not verify"]);
    assert!(walk(&out).is_empty());
    // Delivering and reviewing check the roster too.
    let r = t.bob.run(&["deliver", MATTER, "--packet", &p2, &work]);
    refused(&r, &["does not verify"]);
    let receipt = t.out("receipt.json");
    let r = t.alice.run(&[
        "review",
        "approve",
        "--yes",
        &d1,
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    refused(&r, &["does not verify"]);
    assert!(!receipt.exists(), "nothing signed");
    // A client that never saw the matter before refuses it as well.
    let r = t.pat.run(&["matter", "show", MATTER]);
    refused(&r, &["does not verify"]);

    // History cut back: the forged statement and Bob's `add` dropped.
    t.operator_edits(|m, _| {
        m.roster.truncate(m.roster.len() - 2);
        m.members.retain(|r| r.principal != "mallory@lpo-1");
    });
    let r = t.push(&t.alice, &records);
    refused(&r, &["rollback"]);
    assert_eq!(decryptable_by(&t.w.server.data, &t.mallory), 0);
}

#[test]
fn a_reenrolled_attorney_key_is_no_attorney() {
    let mut t = setup();
    let records = t.file("records.txt", "2025-01-02 ER visit\n");
    // The operator revokes Alice and enrolls a key of its own as her.
    t.w.admin.json(&["admin", "revoke", "alice@firm-a"]);
    let fake = User::new(t.w.tmp.path(), "fake-alice");
    let invite = t.w.invite("firm-a");
    fake.enroll(&t.w.server, &invite, "alice@firm-a");
    // The new key is no member at all...
    let r = fake.run(&["matter", "show", MATTER]);
    assert_eq!(r.code, 3, "{r:?}");
    let code = t.mallory.code();
    let r = fake.run(&[
        "matter",
        "add",
        MATTER,
        "mallory@lpo-1",
        "--role",
        "provider",
        "--expect-code",
        &code,
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    // ...and a statement it signs, put in the database directly, makes the
    // roster fail for everyone.
    let fake_key = signing_key(&fake);
    let mallory_keys = keys_of(&t.mallory);
    let mallory = t.mallory.clone();
    t.operator_edits(|m, _| {
        forge_statement(
            m,
            "alice@firm-a",
            &fake_key,
            Change::Add {
                member: "mallory@lpo-1".into(),
                role: matterdrop_common::roles::Role::Provider,
                keys: mallory_keys.clone(),
            },
        );
        inject_member(m, &mallory, "mallory@lpo-1");
    });
    let r = t.push(&t.pat, &records);
    refused(&r, &["does not verify", "alice@firm-a"]);
    assert_eq!(decryptable_by(&t.w.server.data, &t.mallory), 0);
}

#[test]
fn a_reenrolled_provider_starts_over_until_an_attorney_rekeys_it() {
    let t = setup();
    let records = t.file("records.txt", "x\n");
    // Bob lost his laptop: revoked, a new key enrolled for the same id.
    t.w.admin.json(&["admin", "revoke", "bob@lpo-1"]);
    let bob2 = User::new(t.w.tmp.path(), "bob-new");
    let invite = t.w.invite("lpo-1");
    bob2.enroll(&t.w.server, &invite, "bob@lpo-1");
    // The new key has no membership and no acknowledgment.
    assert_eq!(bob2.run(&["matter", "show", MATTER]).code, 3);
    assert_eq!(bob2.run(&["ack", MATTER, "--yes"]).code, 3);
    // Alice sees the revoked key marked, and pushes refuse to use it.
    let shown = t.alice.json(&["matter", "show", MATTER]);
    let revoked: Vec<&str> = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["key_revoked"] == true)
        .map(|m| m["principal"].as_str().unwrap())
        .collect();
    assert_eq!(revoked, ["bob@lpo-1"]);
    let r = t.alice.run(&["push", MATTER, &records, "--task", TASK]);
    refused(&r, &["leaves out", "bob@lpo-1"]);
    // Alice rekeys him after comparing the new code; a wrong code signs
    // nothing.
    let r = t.alice.run(&[
        "matter",
        "rekey",
        MATTER,
        "bob@lpo-1",
        "--expect-code",
        "0000 0000 0000",
    ]);
    refused(&r, &["safety code"]);
    let code = bob2.code();
    t.alice.json(&[
        "matter",
        "rekey",
        MATTER,
        "bob@lpo-1",
        "--expect-code",
        &code,
    ]);
    // Until he signs again, packets leave him out.
    let r = t.alice.json(&["push", MATTER, &records, "--task", TASK]);
    assert_eq!(
        r["recipients"],
        serde_json::json!(["alice@firm-a", "pat@firm-a"])
    );
    bob2.json(&["ack", MATTER, "--yes"]);
    let r = t.alice.json(&["push", MATTER, &records, "--task", TASK]);
    assert_eq!(
        r["recipients"],
        serde_json::json!(["alice@firm-a", "bob@lpo-1", "pat@firm-a"])
    );
    let id = r["id"].as_str().unwrap().to_owned();
    bob2.json(&["pull", &id, "--out", t.out("bob2").to_str().unwrap()]);
    // The old key's packets stay unreadable to the new key.
    let shown = t.alice.json(&["matter", "show", MATTER]);
    let bob_row = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == "bob@lpo-1")
        .unwrap()
        .clone();
    assert_eq!(bob_row["safety_code"], code.as_str());
}

#[test]
fn non_members_learn_nothing_from_matter_changes() {
    let t = setup();
    t.w.org("firm-b", "firm");
    let carl = t.w.user("carl@firm-b");
    let code = t.mallory.code();
    let mut answers = Vec::new();
    for matter in [MATTER, "2026-NO-SUCH"] {
        let r = carl.run(&[
            "matter",
            "add",
            matter,
            "mallory@lpo-1",
            "--role",
            "provider",
            "--expect-code",
            &code,
        ]);
        assert_eq!(r.code, 3, "{r:?}");
        answers.push(r.stderr.replace(matter, "ID"));
    }
    assert_eq!(answers[0], answers[1], "same answer for both");
    // Both probes are in the log, as refusals of a non-member.
    let bundle = t.w.tmp.path().join("all.bundle");
    t.w.admin
        .json(&["audit", "export", "--out", bundle.to_str().unwrap()]);
    let shown =
        t.w.admin
            .run(&["audit", "show", bundle.to_str().unwrap(), "--denied"])
            .ok()
            .stdout;
    for matter in [MATTER, "2026-NO-SUCH"] {
        assert!(
            shown
                .lines()
                .any(|l| l.contains("carl@firm-b") && l.contains(matter)),
            "no logged refusal of carl's probe of {matter}:\n{shown}"
        );
    }
}

#[test]
fn keys_list_verify_and_forget() {
    let t = setup();
    let code = t.bob.code();
    let listed = t.alice.json(&["keys", "list"]);
    let bob = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["principal"] == "bob@lpo-1")
        .expect("bob pinned when alice added him")
        .clone();
    assert_eq!(bob["safety_code"], code.as_str());
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    t.alice.json(&["keys", "verify", "bob@lpo-1", &digits]);
    let r = t
        .alice
        .run(&["keys", "verify", "bob@lpo-1", "1111 2222 3333"]);
    refused(&r, &["not the keys this person holds"]);
    t.alice.json(&["keys", "forget", "bob@lpo-1"]);
    assert_eq!(t.alice.run(&["keys", "verify", "bob@lpo-1", &code]).code, 2);
    // The roster pins him again.
    t.alice.json(&["matter", "show", MATTER]);
    t.alice.json(&["keys", "verify", "bob@lpo-1", &code]);
}

/// The operator invents a matter whose chain "rekeys" a principal this
/// client already knows (created by an identity of its own, adding Alice
/// with her real keys, then rekeying her to the operator's). A chain seen
/// for the first time moves no pin: the client refuses it and keeps
/// trusting Alice's real key.
#[test]
fn an_invented_matter_cannot_move_a_known_pin() {
    use matterdrop_common::roles::{Role, Task};
    let mut t = setup();
    // Bob knows Alice (from the real matter).
    t.bob.json(&["matter", "show", MATTER]);
    let ghost = t.w.user("ghost@firm-a");
    let ghost_key = signing_key(&ghost);
    let alice_keys = keys_of(&t.alice);
    let mallory_keys = keys_of(&t.mallory);
    let bob_keys = keys_of(&t.bob);
    let mut chain = Vec::new();
    let mut roster: Option<Roster> = None;
    let changes = [
        Change::Create {
            title: "Invented".into(),
            firm: "firm-a".into(),
            scope: vec![Task::Drafting],
            ack_sha256: <sha2::Sha256 as sha2::Digest>::digest(b"Confidential.\n").into(),
            recovery: None,
            age: keys_of(&ghost).age,
        },
        Change::Add {
            member: "alice@firm-a".into(),
            role: Role::Attorney,
            keys: alice_keys,
        },
        Change::Rekey {
            member: "alice@firm-a".into(),
            keys: mallory_keys,
        },
        Change::Add {
            member: "bob@lpo-1".into(),
            role: Role::Provider,
            keys: bob_keys.clone(),
        },
    ];
    for change in changes {
        let s = Statement {
            matter: "2026-FAKE-1".into(),
            seq: roster.as_ref().map_or(0, |r| r.len),
            prev: roster.as_ref().map(|r| r.head),
            time: 1,
            signer: "ghost@firm-a".into(),
            signer_key: ghost_key.verifying_key().to_bytes(),
            change,
        };
        let e = s.sign(&ghost_key).unwrap();
        match &mut roster {
            None => roster = Some(Roster::genesis(&e, Check::Signatures).unwrap()),
            Some(r) => r.apply(&e, Check::Signatures).unwrap(),
        }
        chain.push(e);
    }
    t.operator_edits(|m, store| {
        let mut fake = m.clone();
        fake.id = "2026-FAKE-1".into();
        fake.roster = chain.clone();
        fake.acks.clear();
        fake.members = vec![MemberRecord {
            principal: "bob@lpo-1".into(),
            role: "provider".into(),
            signing_key: bob_keys.signing_key,
            age: bob_keys.age.recipient().to_owned(),
            added_by: "ghost@firm-a".into(),
            added_at: 1,
            removed_at: None,
        }];
        fake.ack_versions.truncate(1);
        store.create_matter(&fake).unwrap();
    });
    // Bob signs nothing for it and keeps Alice's real key.
    let r = t.bob.run(&["ack", "2026-FAKE-1", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("alice@firm-a"), "{r:?}");
    let shown = t.bob.json(&["matter", "show", MATTER]);
    assert_eq!(shown["id"], MATTER, "the real matter still verifies");
    let alice_code = t.alice.code();
    t.bob.json(&["keys", "verify", "alice@firm-a", &alice_code]);
}

/// `keys audit` proves every key registration of one's own id from the log;
/// a key the operator enrolled for Alice while she was revoked shows up
/// when she enrolls again.
#[test]
fn keys_audit_lists_every_key_registered_under_ones_id() {
    let t = setup();
    let v = t.alice.json(&["keys", "audit"]);
    assert_eq!(v["checked_entries"], 1);
    assert_eq!(v["foreign_keys"], serde_json::json!([]));
    // Revoked; the operator enrolls its own key as Alice, then revokes it.
    t.w.admin.json(&["admin", "revoke", "alice@firm-a"]);
    let fake = User::new(t.w.tmp.path(), "fake-alice");
    fake.enroll(&t.w.server, &t.w.invite("firm-a"), "alice@firm-a");
    let fake_fp = fake.json(&["whoami"])["signing_key_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    t.w.admin.json(&["admin", "revoke", "alice@firm-a"]);
    let alice2 = User::new(t.w.tmp.path(), "alice-new");
    alice2.enroll(&t.w.server, &t.w.invite("firm-a"), "alice@firm-a");
    let v = alice2.json(&["keys", "audit"]);
    assert_eq!(v["checked_entries"], 3);
    let earlier: Vec<&str> = v["earlier_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["signing_key"].as_str().unwrap())
        .collect();
    assert!(earlier.contains(&fake_fp.as_str()), "{v}");
}

/// The firm's recovery key is the attorneys' choice, in the roster: packets
/// are encrypted to it while the roster names it, and not after
/// `set-recovery none`; the operator cannot set one (org create refuses).
#[test]
fn the_recovery_recipient_is_set_by_attorneys() {
    let t = setup();
    let recovery = User::new(t.w.tmp.path(), "firm-vault");
    std::fs::create_dir_all(&recovery.home).unwrap();
    // A hybrid recovery key made by another implementation.
    let out = age_v13()
        .arg("--keygen")
        .arg("-o")
        .arg(recovery.home.join("identity.txt"))
        .output()
        .expect("node (tests/run installs it)");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(recovery.home.join("identity.txt")).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let v = t
        .alice
        .json(&["matter", "set-recovery", MATTER, &recipient]);
    assert_eq!(v["recovery_recipient"], recipient.as_str());
    assert!(
        v["recovery_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let records = t.file("records.txt", "x\n");
    t.push(&t.alice, &records).ok();
    let readable = decryptable_by(&t.w.server.data, &recovery);
    assert!(readable >= 2, "the packet's file and manifest: {readable}");
    t.alice.json(&["matter", "set-recovery", MATTER, "none"]);
    t.push(&t.alice, &records).ok();
    assert_eq!(decryptable_by(&t.w.server.data, &recovery), readable);
    // The operator has no way to add one.
    let r =
        t.w.admin
            .run(&["admin", "org", "create", "firm-z", "--kind", "firm"]);
    assert_eq!(r.code, 0, "{r:?}");
    // A paralegal cannot change it either.
    let r = t.pat.run(&["matter", "set-recovery", MATTER, &recipient]);
    assert_eq!(r.code, 3, "{r:?}");
}
