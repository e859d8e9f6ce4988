//! Post-quantum (hybrid `mlkem768x25519`) age keys end to end, with the
//! real `mdropd` and `mdrop` binaries: stored blobs are wrapped to hybrid
//! keys and decrypt with an age v1.3 implementation this project did not
//! write; a classic reader is named on push; a `require-pq` matter refuses
//! classic members, recovery recipients and pushes to classic readers
//! until `keys upgrade` and an attorney's `rekey`.

use std::path::Path;

use matterdrop_tests::{User, World, age_v13, walk};
use serde_json::Value;

const MATTER: &str = "2026-PQ-0001";
const TASK: &str = "medical-chronology";

struct Team {
    w: World,
    alice: User,
    bob: User,
}

/// alice (attorney) and bob (provider, acknowledged), both with the
/// default hybrid keys.
fn team() -> Team {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
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
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);
    Team { w, alice, bob }
}

/// A user enrolled with `mdrop keygen --classic` (an X25519 age key).
fn classic_user(w: &World, id: &str) -> User {
    let org = id.split('@').nth(1).unwrap();
    let user = User::new(w.tmp.path(), id);
    let invite = w.invite(org);
    user.json(&["keygen", "--classic"]);
    user.json(&[
        "enroll",
        &w.server.addr,
        "--fingerprint",
        &w.server.fingerprint,
        "--invite",
        &invite,
        "--id",
        id,
        "--name",
        id,
    ]);
    user
}

/// The recipient stanza types in an age file's header (grease left out).
fn stanza_types(file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("age header end");
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter_map(|l| l.strip_prefix("-> "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .filter(|t| !t.ends_with("-grease"))
        .collect()
}

fn blobs(w: &World) -> Vec<std::path::PathBuf> {
    let mut b = walk(&w.server.data.join("blobs"));
    b.sort();
    b
}

fn push(user: &User, file: &Path) -> String {
    user.json(&["push", MATTER, file.to_str().unwrap(), "--task", TASK])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn roster_len(user: &User) -> u64 {
    user.json(&["matter", "show", MATTER])["roster"]["statements"]
        .as_u64()
        .unwrap()
}

fn member<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == id)
        .unwrap_or_else(|| panic!("{id} not in {show}"))
}

/// Every file key of a default matter is wrapped to hybrid keys only, and
/// typage (npm `age-encryption`) decrypts every stored blob with the
/// reader's identity file, to the bytes `pull` writes.
#[test]
fn stored_blobs_are_hybrid_and_another_implementation_reads_them() {
    let t = team();
    let plain = t.w.tmp.path().join("records.txt");
    std::fs::write(&plain, b"MRI 2026-03-02: no acute findings\n").unwrap();
    let id = push(&t.alice, &plain);
    let out = t.w.tmp.path().join("bob-out");
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("records.txt")).unwrap(),
        std::fs::read(&plain).unwrap()
    );
    let stored = blobs(&t.w);
    assert_eq!(stored.len(), 2, "one part and one manifest: {stored:?}");
    let mut found_plain = false;
    for blob in &stored {
        // alice and bob, no recovery recipient: two hybrid stanzas.
        assert_eq!(
            stanza_types(blob),
            ["mlkem768x25519", "mlkem768x25519"],
            "{}",
            blob.display()
        );
        for user in [&t.bob, &t.alice] {
            let dec = age_v13()
                .arg("-d")
                .arg("-i")
                .arg(user.home.join("identity.txt"))
                .arg(blob)
                .output()
                .unwrap();
            assert!(dec.status.success(), "{dec:?}");
            found_plain |= dec.stdout == std::fs::read(&plain).unwrap();
        }
    }
    assert!(found_plain, "no stored blob decrypted to the file");
    // Someone else's hybrid key opens nothing.
    let eve = t.w.tmp.path().join("eve.txt");
    let made = age_v13()
        .arg("--keygen")
        .arg("-o")
        .arg(&eve)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    for blob in &stored {
        let dec = age_v13()
            .arg("-d")
            .arg("-i")
            .arg(&eve)
            .arg(blob)
            .output()
            .unwrap();
        assert!(!dec.status.success(), "a stranger's key decrypted a blob");
    }
}

/// A classic reader is named and still served; `require-pq` then refuses
/// them (push, add, recovery) until they upgrade and an attorney rekeys.
#[test]
fn require_pq_refuses_classic_readers_until_upgrade_and_rekey() {
    let t = team();
    let carl = classic_user(&t.w, "carl@lpo-1");
    let dave = classic_user(&t.w, "dave@lpo-1");
    t.alice
        .add_member(MATTER, &carl, "carl@lpo-1", "provider")
        .ok();
    carl.json(&["ack", MATTER, "--yes"]);
    let show = t.alice.json(&["matter", "show", MATTER]);
    assert_eq!(member(&show, "carl@lpo-1")["age_key_type"], "x25519");
    assert_eq!(member(&show, "bob@lpo-1")["age_key_type"], "mlkem768x25519");
    assert_eq!(show["require_pq"], false);
    let text = t.alice.run(&["matter", "show", MATTER]).ok();
    assert!(text.stdout.contains("classic keys allowed"), "{text:?}");

    // Mixed: hybrid stanzas for those who have hybrid keys, classic for
    // carl, who is named.
    let plain = t.w.tmp.path().join("intake.txt");
    std::fs::write(&plain, b"intake form\n").unwrap();
    let r = t
        .alice
        .run(&["push", MATTER, plain.to_str().unwrap(), "--task", TASK])
        .ok();
    assert!(
        r.stderr.contains("not post-quantum") && r.stderr.contains("carl@lpo-1"),
        "{r:?}"
    );
    let mixed_id = r.stdout.split_whitespace().nth(2).unwrap().to_owned();
    assert!(mixed_id.starts_with("p-"), "{r:?}");
    // Scripts see it too.
    let v = t
        .alice
        .json(&["push", MATTER, plain.to_str().unwrap(), "--task", TASK]);
    assert_eq!(v["post_quantum"], false);
    assert_eq!(v["classic_readers"], serde_json::json!(["carl@lpo-1"]));
    let before = blobs(&t.w);
    for blob in &before {
        let mut types = stanza_types(blob);
        types.sort();
        assert_eq!(
            types,
            ["X25519", "mlkem768x25519", "mlkem768x25519"],
            "{}",
            blob.display()
        );
    }
    for (who, user) in [("carl", &carl), ("bob", &t.bob)] {
        let out = t.w.tmp.path().join(format!("{who}-mixed"));
        user.json(&["pull", &mixed_id, "--out", out.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(out.join("intake.txt")).unwrap(),
            b"intake form\n"
        );
    }

    // set-crypto asks first; without a terminal or --yes nothing is signed.
    let n = roster_len(&t.alice);
    let r = t
        .alice
        .run(&["matter", "set-crypto", MATTER, "--require-pq"])
        .code(2);
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert!(r.stderr.contains("carl@lpo-1"), "{r:?}");
    assert_eq!(roster_len(&t.alice), n);
    t.alice
        .run(&[
            "matter",
            "set-crypto",
            MATTER,
            "--require-pq",
            "--allow-classic",
        ])
        .code(2);
    let show = t
        .alice
        .json(&["matter", "set-crypto", MATTER, "--require-pq", "--yes"]);
    assert_eq!(show["require_pq"], true);
    assert_eq!(roster_len(&t.alice), n + 1);
    let r = t
        .alice
        .run(&["matter", "set-crypto", MATTER, "--require-pq", "--yes"])
        .code(3);
    assert!(r.stderr.contains("already requires"), "{r:?}");

    // A push to a classic reader is refused before anything is sent.
    let r = t
        .alice
        .run(&["push", MATTER, plain.to_str().unwrap(), "--task", TASK])
        .code(3);
    assert!(
        r.stderr.contains("requires post-quantum keys") && r.stderr.contains("carl@lpo-1"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("bob@lpo-1"), "{r:?}");
    assert_eq!(blobs(&t.w), before, "a refused push stored something");

    // Neither a classic member nor a classic recovery recipient gets in.
    let r = t
        .alice
        .add_member(MATTER, &dave, "dave@lpo-1", "provider")
        .code(3);
    assert!(
        r.stderr.contains("requires post-quantum keys") && r.stderr.contains("dave@lpo-1"),
        "{r:?}"
    );
    let classic_recovery = std::fs::read_to_string(dave.home.join("identity.pub")).unwrap();
    let r = t
        .alice
        .run(&["matter", "set-recovery", MATTER, classic_recovery.trim()])
        .code(3);
    assert!(r.stderr.contains("recovery recipient"), "{r:?}");
    // A damaged hybrid recipient is refused before anything is signed.
    let hybrid = std::fs::read_to_string(t.bob.home.join("identity.pub")).unwrap();
    let hybrid = hybrid.trim();
    let last = if hybrid.ends_with('q') { 'p' } else { 'q' };
    let damaged = format!("{}{last}", &hybrid[..hybrid.len() - 1]);
    let r = t
        .alice
        .run(&["matter", "set-recovery", MATTER, &damaged])
        .code(2);
    assert!(
        r.stderr.contains("invalid mlkem768x25519 age recipient"),
        "{r:?}"
    );
    assert_eq!(roster_len(&t.alice), n + 1);

    // carl upgrades: a hybrid key beside the classic one, registered.
    let up = carl.json(&["keys", "upgrade"]);
    assert_eq!(up["age_key_type"], "mlkem768x25519");
    assert_eq!(up["already_registered"], false);
    let code = up["safety_code"].as_str().unwrap().to_owned();
    assert_eq!(carl.code(), code, "whoami shows the new safety code");
    let identity = std::fs::read_to_string(carl.home.join("identity.txt")).unwrap();
    assert!(identity.contains("AGE-SECRET-KEY-1") && identity.contains("AGE-SECRET-KEY-PQ-1"));
    let again = carl.json(&["keys", "upgrade"]);
    assert_eq!(again["already_registered"], true);
    assert_eq!(again["safety_code"], code.as_str());
    // The matter still has carl's classic key, so pushes still stop...
    t.alice
        .run(&["push", MATTER, plain.to_str().unwrap(), "--task", TASK])
        .code(3);
    // ...and carl still reads what was encrypted to the classic key.
    let out = t.w.tmp.path().join("carl-again");
    carl.json(&["pull", &mixed_id, "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("intake.txt")).unwrap(),
        b"intake form\n"
    );
    // A wrong code is refused; the right one rekeys carl.
    let r = t
        .alice
        .run(&[
            "matter",
            "rekey",
            MATTER,
            "carl@lpo-1",
            "--expect-code",
            "00000 00000 00000 00000",
        ])
        .code(4);
    assert!(r.stderr.contains("safety code"), "{r:?}");
    t.alice
        .run(&[
            "matter",
            "rekey",
            MATTER,
            "carl@lpo-1",
            "--expect-code",
            &code,
        ])
        .ok();
    let show = t.alice.json(&["matter", "show", MATTER]);
    assert_eq!(
        member(&show, "carl@lpo-1")["age_key_type"],
        "mlkem768x25519"
    );

    // Now every reader is hybrid: the push goes through, hybrid only.
    let v = t
        .alice
        .json(&["push", MATTER, plain.to_str().unwrap(), "--task", TASK]);
    assert_eq!(v["post_quantum"], true);
    let id = v["id"].as_str().unwrap().to_owned();
    let new: Vec<_> = blobs(&t.w)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    for blob in &new {
        assert_eq!(
            stanza_types(blob),
            ["mlkem768x25519", "mlkem768x25519", "mlkem768x25519"],
            "{}",
            blob.display()
        );
    }
    let out = t.w.tmp.path().join("carl-new");
    carl.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("intake.txt")).unwrap(),
        b"intake form\n"
    );
}

/// `keys upgrade` across several matters: rekeying a member in one matter
/// does not make another matter that still names their classic key look
/// tampered with (this client pinned that key before), the other matter
/// can be rekeyed too, and the upgraded member can be added to a new
/// matter with their new safety code.
#[test]
fn an_upgrade_moves_matter_by_matter() {
    let t = team();
    let carl = classic_user(&t.w, "carl@lpo-1");
    let ack = t.w.tmp.path().join("ack.txt");
    for m in [MATTER, "2026-PQ-0002"] {
        if m != MATTER {
            t.alice.json(&[
                "matter",
                "create",
                m,
                "--title",
                "Second",
                "--ack-file",
                ack.to_str().unwrap(),
                "--scope",
                TASK,
            ]);
        }
        t.alice.add_member(m, &carl, "carl@lpo-1", "provider").ok();
        carl.json(&["ack", m, "--yes"]);
    }
    let code = carl.json(&["keys", "upgrade"])["safety_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let rekey = |m: &str| {
        t.alice
            .run(&["matter", "rekey", m, "carl@lpo-1", "--expect-code", &code])
    };
    rekey(MATTER).ok();
    // The second matter still names carl's classic key: accepted, with a
    // note, and pushes there still reach carl (by the classic key).
    let r = t.alice.run(&["matter", "show", "2026-PQ-0002"]).ok();
    assert!(r.stderr.contains("carl@lpo-1 still has the keys"), "{r:?}");
    let plain = t.w.tmp.path().join("memo.txt");
    std::fs::write(&plain, b"memo\n").unwrap();
    let v = t.alice.json(&[
        "push",
        "2026-PQ-0002",
        plain.to_str().unwrap(),
        "--task",
        TASK,
    ]);
    assert_eq!(v["classic_readers"], serde_json::json!(["carl@lpo-1"]));
    let out = t.w.tmp.path().join("carl-2");
    carl.json(&[
        "pull",
        v["id"].as_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out.join("memo.txt")).unwrap(), b"memo\n");
    rekey("2026-PQ-0002").ok();
    let show = t.alice.json(&["matter", "show", "2026-PQ-0002"]);
    assert_eq!(
        member(&show, "carl@lpo-1")["age_key_type"],
        "mlkem768x25519"
    );
    // A third matter: alice pinned carl's classic key, the server now
    // offers the hybrid one; the safety code decides.
    t.alice.json(&[
        "matter",
        "create",
        "2026-PQ-0003",
        "--title",
        "Third",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        TASK,
    ]);
    let r = t
        .alice
        .run(&[
            "matter",
            "add",
            "2026-PQ-0003",
            "carl@lpo-1",
            "--role",
            "provider",
            "--expect-code",
            "00000 00000 00000 00000",
        ])
        .code(4);
    assert!(r.stderr.contains("safety code"), "{r:?}");
    t.alice
        .add_member("2026-PQ-0003", &carl, "carl@lpo-1", "provider")
        .ok();
}
