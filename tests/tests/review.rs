//! Deliverables, attorney review and signed receipts, end to end.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use matterdrop_tests::{User, World, copy_dir, walk};

const MATTER: &str = "2026-PI-0042";

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A change made to a receipt.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn full_review_workflow_with_receipts() {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let pat = w.user("pat@firm-a");
    let bob = w.user("bob@lpo-1");
    let audrey = w.user("audrey@firm-a");
    let tmp = w.tmp.path();
    let ack = write(&tmp.join("ack.txt"), "Confidential.\n");
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe",
        "--ack-file",
        &ack,
        "--scope",
        "medical-chronology",
    ]);
    alice
        .add_member(MATTER, &pat, "pat@firm-a", "paralegal")
        .ok();
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    alice
        .add_member(MATTER, &audrey, "audrey@firm-a", "auditor")
        .ok();
    bob.json(&["ack", MATTER, "--yes"]);

    // Firm → provider.
    let records = write(
        &tmp.join("records.txt"),
        "2025-01-02 ER visit\n2025-02-03 MRI\n",
    );
    let packet = alice.json(&[
        "push",
        MATTER,
        &records,
        "--task",
        "medical-chronology",
        "--due",
        "3d",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&[
        "pull",
        &packet,
        "--out",
        tmp.join("bob-in").to_str().unwrap(),
    ]);

    // Provider → firm, first attempt.
    let chrono = write(&tmp.join("chronology.txt"), "Jan 2: ER visit\nFeb 3: MRI\n");
    let d1 = bob.json(&[
        "deliver",
        MATTER,
        "--packet",
        &packet,
        &chrono,
        "--note",
        "first draft",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inbox = alice.json(&["inbox"]);
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == d1.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["kind"], "deliverable");
    assert_eq!(item["packet"], packet.as_str());
    assert_eq!(item["sender"], "bob@lpo-1");
    assert_eq!(item["task"], "medical-chronology");
    assert!(item["due"].as_str().is_some());

    // The attorney sees the work before deciding: files, sizes, the
    // provider's note, the packet it answers, its state.
    let shown = tmp.join("shown");
    let v = alice.json(&["review", "show", &d1, "--out", shown.to_str().unwrap()]);
    assert_eq!(v["packet"], packet.as_str());
    assert_eq!(v["sender"], "bob@lpo-1");
    assert_eq!(v["state"], "submitted");
    assert_eq!(v["note"], "first draft");
    assert_eq!(v["files"][0]["path"], "chronology.txt");
    assert_eq!(v["files"][0]["size"], 27);
    assert_eq!(
        std::fs::read_to_string(shown.join("chronology.txt")).unwrap(),
        "Jan 2: ER visit\nFeb 3: MRI\n"
    );
    let r = alice.run(&["review", "show", &d1]).ok();
    for want in [
        "answering packet",
        "chronology.txt",
        "27 B",
        "The provider's note:\n  first draft",
        "State: submitted",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in {r:?}");
    }
    // A packet is not a deliverable.
    alice.run(&["review", "show", &packet]).code(2);
    // Ids by unique prefix of at least six hex digits, with or without
    // their kind; anything else is refused before it names a folder.
    assert_eq!(
        alice.json(&["review", "show", &d1[..10]])["id"],
        d1.as_str()
    );
    assert_eq!(
        alice.json(&["review", "show", &d1[2..9]])["id"],
        d1.as_str()
    );
    let r = alice.run(&["review", "show", &d1[..6]]).code(2);
    assert!(r.stderr.contains("at least 6"), "{r:?}");
    let r = alice.run(&["review", "show", "d-000000"]).code(2);
    assert!(r.stderr.contains("no packet or deliverable"), "{r:?}");
    let victim = tmp.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    for hostile in ["../../victim", "../victim", "p-../../victim"] {
        let r = bob.run(&["pull", hostile]).code(2);
        assert!(r.stderr.contains("invalid packet id"), "{r:?}");
    }
    assert!(victim.join("keep.txt").exists());
    // Deciding shows the same and asks; without a terminal to ask on and
    // without --yes it refuses before pulling anything, and nothing is
    // signed or recorded.
    let r = alice.run(&["review", "approve", &d1]).code(2);
    assert!(r.stderr.contains("pass --yes"), "{r:?}");
    assert!(!r.stderr.contains("chronology.txt"), "{r:?}");

    assert_eq!(alice.json(&["review", "show", &d1])["state"], "submitted");

    // State rules.
    let r = bob.run(&["review", "approve", "--yes", &d1]).code(3);
    assert!(r.stderr.contains("bob@lpo-1"), "{r:?}");
    // What is decided on is shown first, even with --yes.
    assert!(
        r.stderr.contains("chronology.txt") && r.stderr.contains("first draft"),
        "{r:?}"
    );
    let r = pat.run(&["review", "approve", "--yes", &d1]).code(3);
    assert!(r.stderr.contains("only an attorney"), "{r:?}");
    alice.run(&["review", "return", "--yes", &d1]).code(2);
    // Delivery rules are access rules: exit 3, the rule named.
    let r = bob
        .run(&["deliver", MATTER, "--packet", &packet, &chrono])
        .code(3);
    assert!(r.stderr.contains("awaiting review"), "{r:?}");
    let r = bob.run(&["report", "turnaround"]).code(3);
    assert!(r.stderr.contains("provider"), "{r:?}");

    // A receipt that could not be saved is refused before anything is
    // signed or recorded: the deliverable still awaits review.
    let nowhere = tmp.join("no-such-folder").join("r.json");
    let r = alice
        .run(&[
            "review",
            "return",
            "--yes",
            &d1,
            "--note",
            "dates are wrong",
            "--receipt",
            nowhere.to_str().unwrap(),
        ])
        .code(2);
    assert!(r.stderr.contains("does not exist"), "{r:?}");

    // Return, deliver again, approve.
    let ret = tmp.join("receipt-return.json");
    let v = alice.json(&[
        "review",
        "return",
        "--yes",
        &d1,
        "--note",
        "dates are wrong",
        "--receipt",
        ret.to_str().unwrap(),
    ]);
    assert_eq!(v["state"], "returned");
    let fixed = write(
        &tmp.join("chronology.txt"),
        "2025-01-02: ER visit\n2025-02-03: MRI\n",
    );
    let d2 = bob.json(&["deliver", MATTER, "--packet", &packet, &fixed])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = alice.run(&["review", "approve", "--yes", &d1]).code(3);
    assert!(
        r.stderr.contains("not awaiting review"),
        "superseded: {r:?}"
    );
    let receipt = tmp.join("receipt.json");
    let v = alice.json(&[
        "review",
        "approve",
        "--yes",
        &d2,
        "--note",
        "thanks",
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(v["state"], "approved");
    assert_eq!(v["receipt"], receipt.to_str().unwrap());
    alice.run(&["review", "approve", "--yes", &d2]).code(3);
    let r = bob
        .run(&["deliver", MATTER, "--packet", &packet, &fixed])
        .code(3);
    assert!(
        r.stderr.contains("already has an approved deliverable"),
        "{r:?}"
    );

    // Receipt verification, offline, with and without the files.
    let reviewed = walk(&alice.home.join("reviews").join(&d2));
    assert_eq!(reviewed.len(), 1);
    let rc = receipt.to_str().unwrap();
    let ok = alice.json(&["receipt", "verify", rc]);
    assert_eq!(ok["decision"], "approve");
    assert_eq!(ok["reviewer"], "alice@firm-a");
    let files: Vec<&str> = reviewed.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["receipt", "verify", rc, "--file"];
    args.extend(&files);
    assert_eq!(alice.json(&args)["files_checked"], 1);
    // An auditor with only the log key verifies it too.
    let log_key = alice.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    audrey.json(&["receipt", "verify", rc, "--log-key", &log_key]);

    // A file changed by one byte.
    let changed = tmp.join("changed.txt");
    let mut bytes = std::fs::read(&reviewed[0]).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    let r = alice
        .run(&["receipt", "verify", rc, "--file", changed.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("not one of the approved files"), "{r:?}");

    // Any field of the receipt changed.
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let signed = original["signed"].as_str().unwrap().to_owned();
    let edits: Vec<(&str, Edit)> = vec![
        (
            "decision",
            Box::new(|v| {
                v["signed"] = v["signed"]
                    .as_str()
                    .unwrap()
                    .replace("decision=approve", "decision=return")
                    .into()
            }),
        ),
        (
            "time",
            Box::new(|v| {
                let s = v["signed"].as_str().unwrap();
                let t: u64 = s.rsplit("time=").next().unwrap().trim().parse().unwrap();
                v["signed"] = s
                    .replace(&format!("time={t}"), &format!("time={}", t + 1))
                    .into();
            }),
        ),
        (
            "reviewer",
            Box::new(|v| {
                v["signed"] = v["signed"]
                    .as_str()
                    .unwrap()
                    .replace("reviewer=alice@firm-a", "reviewer=pat@firm-a")
                    .into()
            }),
        ),
        ("note", Box::new(|v| v["note"] = "no thanks".into())),
        ("files", Box::new(|v| v["files"][0]["size"] = 1.into())),
        (
            "log index",
            Box::new(|v| v["log"]["index"] = (v["log"]["index"].as_u64().unwrap() - 1).into()),
        ),
    ];
    for (what, edit) in edits {
        let mut v = original.clone();
        edit(&mut v);
        let path = tmp.join(format!("bad-{what}.json").replace(' ', "-"));
        std::fs::write(&path, v.to_string()).unwrap();
        alice
            .run(&["receipt", "verify", path.to_str().unwrap()])
            .code(4);
    }

    // Signed by a non-attorney: pat signs the same statement with pat's key.
    {
        use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
        let pem = std::fs::read_to_string(pat.home.join("signing-key.pem")).unwrap();
        let pat_key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
        let forged_text = signed.replace("reviewer=alice@firm-a", "reviewer=pat@firm-a");
        let sig = matterdrop_common::sign::sign(&pat_key, forged_text.as_bytes());
        let mut v = original.clone();
        v["signed"] = forged_text.into();
        v["signature"] = base64::engine::general_purpose::STANDARD.encode(sig).into();
        v["reviewer_public_key_pem"] = pat_key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap()
            .into();
        let path = tmp.join("bad-nonattorney.json");
        std::fs::write(&path, v.to_string()).unwrap();
        let r = alice
            .run(&["receipt", "verify", path.to_str().unwrap()])
            .code(4);
        assert!(
            r.stderr
                .contains("not an attorney's key in the signed roster"),
            "{r:?}"
        );
        // A key that claims to be Alice's (what whoever holds the log key
        // would mint): the roster gives Alice another key.
        let mut v = original.clone();
        let forged = signed.clone();
        v["signature"] = base64::engine::general_purpose::STANDARD
            .encode(matterdrop_common::sign::sign(&pat_key, forged.as_bytes()))
            .into();
        v["reviewer_public_key_pem"] = pat_key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap()
            .into();
        let path = tmp.join("bad-impostor.json");
        std::fs::write(&path, v.to_string()).unwrap();
        let r = audrey
            .run(&["receipt", "verify", path.to_str().unwrap()])
            .code(4);
        assert!(
            r.stderr
                .contains("alice@firm-a's key in the receipt is not an attorney's key"),
            "{r:?}"
        );
        // Without its roster, a receipt shows nothing about its reviewer.
        let mut v = original.clone();
        v["roster"] = serde_json::json!([]);
        let path = tmp.join("bad-noroster.json");
        std::fs::write(&path, v.to_string()).unwrap();
        let r = alice
            .run(&["receipt", "verify", path.to_str().unwrap()])
            .code(4);
        assert!(r.stderr.contains("carries no roster"), "{r:?}");
    }

    // The inclusion proof against another (older) checkpoint.
    let older: serde_json::Value = serde_json::from_slice(&std::fs::read(&ret).unwrap()).unwrap();
    let mut v = original.clone();
    v["log"]["checkpoint"] = older["log"]["checkpoint"].clone();
    let path = tmp.join("bad-checkpoint.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let r = alice
        .run(&["receipt", "verify", path.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("inclusion proof"), "{r:?}");

    // Stock openssl verifies the reviewer's signature.
    let dir = tmp.join("openssl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("signed.txt"), signed.as_bytes()).unwrap();
    std::fs::write(
        dir.join("sig.bin"),
        base64::engine::general_purpose::STANDARD
            .decode(original["signature"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("reviewer.pem"),
        original["reviewer_public_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "reviewer.pem",
            "-rawin",
            "-in",
            "signed.txt",
            "-sigfile",
            "sig.bin",
        ])
        .current_dir(&dir)
        .output()
        .expect("openssl must be installed (tests/run installs it)");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"),
        "{out:?}"
    );
    // …and refuses a changed statement.
    std::fs::write(dir.join("signed.txt"), signed.replace("approve", "return")).unwrap();
    let out = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "reviewer.pem",
            "-rawin",
            "-in",
            "signed.txt",
            "-sigfile",
            "sig.bin",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Turnaround: one packet, delivered, approved after one return.
    for who in [&alice, &audrey] {
        let rep = who.json(&["report", "turnaround", "--since", "30d"]);
        let rows = rep["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{rep}");
        let row = &rows[0];
        assert_eq!(row["provider"], "lpo-1");
        assert_eq!(row["task"], "medical-chronology");
        assert_eq!(row["packets"], 1);
        assert_eq!(row["delivered"], 1);
        assert_eq!(row["on_time"], 1);
        assert_eq!(row["approved"], 1);
        assert_eq!(row["first_pass_rate"], 0.0);
        assert!(row["median_secs"].as_u64().is_some());
    }
    let _ = User::new(tmp, "unused");
}

/// The note of a return reaches the provider: encrypted by the attorney's
/// client to the matter's readers, shown by `inbox` and `pull` after it
/// checks the attorney's signature and the signed hash of the note. An
/// operator who swaps notes or statements in the stopped server's
/// database is refused (exit 4), and nothing is shown.
#[test]
fn the_return_note_reaches_the_provider_and_an_operator_cannot_change_it() {
    use matterdrop_server::store::{MetaRead as _, MetaWrite as _, ReviewNoteRecord, SledStore};

    let mut w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let tmp = w.tmp.path().to_owned();
    let ack = write(&tmp.join("ack.txt"), "Confidential.\n");
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe",
        "--ack-file",
        &ack,
        "--scope",
        "medical-chronology",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);
    let records = write(&tmp.join("records.txt"), "2025-01-02 ER visit\n");
    let packet = alice.json(&["push", MATTER, &records, "--task", "medical-chronology"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&["pull", &packet, "--out", tmp.join("in").to_str().unwrap()]);
    let deliver = |text: &str| {
        let f = write(&tmp.join("chronology.txt"), text);
        bob.json(&["deliver", MATTER, "--packet", &packet, &f])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let d1 = deliver("Jan 2: ER visit\n");
    // Before a review: nothing attached, and the provider's own delivery
    // does not wait in the provider's inbox.
    assert!(
        bob.json(&["inbox"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != d1.as_str())
    );
    // A note with a terminal escape sequence in it (it must arrive escaped).
    let note = "add the MRI of 2025-02-03 \u{1b}[2J please";
    alice.json(&[
        "review",
        "return",
        "--yes",
        &d1,
        "--note",
        note,
        "--receipt",
        tmp.join("r1.json").to_str().unwrap(),
    ]);

    // The returned deliverable now waits for the provider, with the note.
    let find = |v: &serde_json::Value, id: &str| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
    };
    let item = find(&bob.json(&["inbox"]), &d1).expect("returned deliverable in bob's inbox");
    assert_eq!(item["state"], "returned");
    assert_eq!(item["review"]["decision"], "return");
    assert_eq!(item["review"]["reviewer"], "alice@firm-a");
    assert_eq!(item["review"]["note"], note);
    // And no longer for the attorney.
    assert!(find(&alice.json(&["inbox"]), &d1).is_none());
    let r = bob.run(&["inbox"]).ok();
    assert!(
        r.stdout.contains("Returned by alice@firm-a") && r.stdout.contains("add the MRI"),
        "{r:?}"
    );
    assert!(
        !r.stdout.contains('\u{1b}'),
        "escape sequence reached the terminal: {r:?}"
    );
    let v = bob.json(&["pull", &d1, "--out", tmp.join("d1").to_str().unwrap()]);
    assert_eq!(v["review"]["note"], note);
    let r = bob
        .run(&[
            "pull",
            &d1,
            "--force",
            "--out",
            tmp.join("d1b").to_str().unwrap(),
        ])
        .ok();
    assert!(r.stdout.contains("Returned by alice@firm-a"), "{r:?}");
    assert!(!r.stdout.contains('\u{1b}'), "{r:?}");

    // The operator edits d1's review in the stopped server's database.
    type Edit<'a> = &'a dyn Fn(&mut ReviewNoteRecord, &SledStore);
    let mut operator = |edit: Edit| {
        w.server.restart_after(|data| {
            let store = SledStore::open(&data.join("db")).unwrap();
            let mut one = store.review_note(&d1).unwrap().expect("d1's review");
            edit(&mut one, &store);
            store.put_review_note(&d1, &one).unwrap();
            store.flush().unwrap();
        });
        alice.repoint(&w.server);
        bob.repoint(&w.server);
    };
    let refused = |why: &str, inbox: bool| {
        if inbox {
            let r = bob.run(&["inbox"]).code(4);
            assert!(
                r.stderr.contains(&d1) && r.stderr.contains(why),
                "{why}: {r:?}"
            );
            assert!(!r.stdout.contains("add the MRI"), "{r:?}");
        }
        let out = tmp.join("refused");
        let r = bob
            .run(&["pull", &d1, "--force", "--out", out.to_str().unwrap()])
            .code(4);
        assert!(
            r.stderr.contains(&d1) && r.stderr.contains(why),
            "{why}: {r:?}"
        );
        assert!(
            !out.join("chronology.txt").exists(),
            "pulled despite the review"
        );
    };
    let original: ReviewNoteRecord = {
        let store_copy = std::cell::RefCell::new(None);
        operator(&|one, _| {
            store_copy.replace(Some(one.clone()));
        });
        store_copy.into_inner().unwrap()
    };
    // Another note, encrypted to bob's key from the roster, as anyone who
    // knows that public key can make one.
    let roster = alice.json(&["matter", "show", MATTER]);
    let bob_age = roster["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == "bob@lpo-1")
        .unwrap()["age_recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = {
        use std::io::Write as _;
        let key = matterdrop_common::agekey::AgeKey::from_recipient(&bob_age).unwrap();
        let keys = matterdrop_common::agekey::Recipients::new([&key]).unwrap();
        let mut out = Vec::new();
        let mut wr = keys.encryptor().unwrap().wrap_output(&mut out).unwrap();
        wr.write_all(b"all good, no changes needed").unwrap();
        wr.finish().unwrap();
        out
    };
    operator(&|one, _| one.note = forged.clone());
    refused("a note other than the one alice@firm-a signed", true);
    // The statement rewritten: return made approve.
    operator(&|one, _| {
        *one = original.clone();
        one.signed = String::from_utf8(one.signed.clone())
            .unwrap()
            .replace("decision=return", "decision=approve")
            .into_bytes();
    });
    refused(
        "is not signed by the key the matter's roster gives alice@firm-a",
        true,
    );
    operator(&|one, _| *one = original.clone());
    assert_eq!(
        find(&bob.json(&["inbox"]), &d1).unwrap()["review"]["note"],
        note
    );

    // A second deliverable supersedes d1 and is approved with a note.
    let d2 = deliver("2025-01-02: ER visit\n2025-02-03: MRI\n");
    alice.json(&[
        "review",
        "approve",
        "--yes",
        &d2,
        "--note",
        "thanks, all good",
        "--receipt",
        tmp.join("r2.json").to_str().unwrap(),
    ]);
    let v = bob.json(&["pull", &d2, "--out", tmp.join("d2").to_str().unwrap()]);
    assert_eq!(v["review"]["decision"], "approve");
    assert_eq!(v["review"]["note"], "thanks, all good");
    // alice's genuine approval of d2 put under d1.
    operator(&|one, store| {
        let two = store.review_note(&d2).unwrap().expect("d2's review");
        one.signed = two.signed;
        one.signature = two.signature;
        one.note = two.note;
    });
    refused("is for deliverable", false);
    operator(&|one, _| *one = original.clone());
    let v = bob.json(&[
        "pull",
        &d1,
        "--force",
        "--out",
        tmp.join("d1d").to_str().unwrap(),
    ]);
    assert_eq!(v["review"]["note"], note);
}

/// `mdrop sent`: the sender sees each recipient's state, a recipient
/// counts as having received the files only on its own signed delivery
/// statement, own pushes stay out of the inbox (and resolve by prefix
/// from the sent list), and an operator who forges or moves delivery
/// statements in the stopped server's database, or lists a packet the
/// user never signed, is refused (exit 4) with nothing shown.
#[test]
fn sent_items_show_signed_deliveries_and_an_operator_cannot_forge_one() {
    use matterdrop_server::store::{DeliveryRecord, MetaRead as _, MetaWrite as _, SledStore};

    let mut w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let carol = w.user("carol@lpo-1");
    let tmp = w.tmp.path().to_owned();
    let ack = write(&tmp.join("ack.txt"), "Confidential.\n");
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe",
        "--ack-file",
        &ack,
        "--scope",
        "medical-chronology",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    alice
        .add_member(MATTER, &carol, "carol@lpo-1", "provider")
        .ok();
    bob.json(&["ack", MATTER, "--yes"]);
    carol.json(&["ack", MATTER, "--yes"]);
    let records = write(&tmp.join("records.txt"), "2025-01-02 ER visit\n");
    let packet = alice.json(&[
        "push",
        MATTER,
        &records,
        "--task",
        "medical-chronology",
        "--due",
        "3d",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let items = |v: serde_json::Value| v["items"].as_array().unwrap().clone();
    let find = |v: &[serde_json::Value], id: &str| {
        v.iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {v:?}"))
    };
    let state_of = |item: &serde_json::Value, who: &str| {
        item["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["principal"] == who)
            .cloned()
            .unwrap_or_else(|| panic!("{who} not a recipient: {item}"))
    };
    // Not in the sender's own inbox, even with --all; in its sent items.
    assert!(items(alice.json(&["inbox", "--all"])).is_empty());
    let sent = items(alice.json(&["sent"]));
    let p = find(&sent, &packet);
    assert_eq!(p["kind"], "packet");
    assert_eq!(p["task"], "medical-chronology");
    assert!(p["due"].is_string());
    assert_eq!(p["recipients"].as_array().unwrap().len(), 2, "{p}");
    for who in ["bob@lpo-1", "carol@lpo-1"] {
        let r = state_of(&p, who);
        assert_eq!(r["delivered"], false);
        assert!(r["pulled_at"].is_null());
    }

    // bob pulls: his client signs a delivery statement.
    bob.json(&["pull", &packet, "--out", tmp.join("in").to_str().unwrap()]);
    let p = find(&items(alice.json(&["sent", "--matter", MATTER])), &packet);
    let b = state_of(&p, "bob@lpo-1");
    assert_eq!(b["delivered"], true, "{p}");
    assert!(b["delivered_at"].is_string() && b["pulled_at"].is_string());
    assert_eq!(state_of(&p, "carol@lpo-1")["delivered"], false);
    let r = alice.run(&["sent"]).ok();
    assert!(
        r.stdout.contains("received and verified") && r.stdout.contains("not downloaded"),
        "{r:?}"
    );

    // bob's deliverable: in his sent items, answered on alice's packet;
    // once returned, with alice's checked review.
    let f = write(&tmp.join("chronology.txt"), "Jan 2: ER visit\n");
    let d1 = bob.json(&["deliver", MATTER, "--packet", &packet, &f])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = find(&items(bob.json(&["sent"])), &d1);
    assert_eq!(d["kind"], "deliverable");
    assert_eq!(d["packet"], packet.as_str());
    assert_eq!(d["state"], "submitted");
    let p = find(&items(alice.json(&["sent"])), &packet);
    assert_eq!(p["answers"][0]["id"], d1.as_str());
    alice.json(&[
        "review",
        "return",
        "--yes",
        &d1,
        "--note",
        "add the MRI",
        "--receipt",
        tmp.join("r1.json").to_str().unwrap(),
    ]);
    let d = find(&items(bob.json(&["sent"])), &d1);
    assert_eq!(d["state"], "returned");
    assert_eq!(d["review"]["decision"], "return");
    assert_eq!(d["review"]["note"], "add the MRI");

    // The sender finds its own packet by prefix (from the sent list).
    let prefix = &packet[..10];
    let v = alice.json(&["pull", prefix, "--out", tmp.join("own").to_str().unwrap()]);
    assert_eq!(v["id"], packet.as_str());

    // A second packet bob pulls: its statement is genuine, for another
    // packet.
    let other = alice.json(&["push", MATTER, &records, "--task", "medical-chronology"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&["pull", &other, "--out", tmp.join("in2").to_str().unwrap()]);

    // The operator edits the stopped server's database, each time from a
    // copy taken now.
    let backup = tmp.join("db-backup");
    w.server
        .restart_after(|data| copy_dir(&data.join("db"), &backup));
    type Edit<'a> = &'a dyn Fn(&SledStore, &DeliveryRecord);
    let mut operator = |edit: Edit| {
        w.server.restart_after(|data| {
            let db = data.join("db");
            std::fs::remove_dir_all(&db).unwrap();
            copy_dir(&backup, &db);
            let store = SledStore::open(&db).unwrap();
            let bobs = store
                .deliveries(&packet)
                .unwrap()
                .into_iter()
                .find(|d| d.principal == "bob@lpo-1")
                .expect("bob's delivery statement");
            edit(&store, &bobs);
            store.flush().unwrap();
        });
        alice.repoint(&w.server);
    };
    let refused = |why: &str| {
        let r = alice.run(&["sent"]).code(4);
        assert!(
            r.stderr.contains(&packet) && r.stderr.contains(why),
            "{why}: {r:?}"
        );
        assert!(!r.stdout.contains("received and verified"), "{r:?}");
    };
    // Carol never pulled: bob's statement relabelled as hers.
    operator(&|s, bobs| {
        let mut forged = bobs.clone();
        forged.principal = "carol@lpo-1".into();
        s.put_delivery(&packet, &forged).unwrap();
    });
    refused("that names");
    // Bob's statement with its signature changed.
    operator(&|s, bobs| {
        let mut bad = bobs.clone();
        bad.signature[0] ^= 1;
        s.put_delivery(&packet, &bad).unwrap();
    });
    refused("not signed with a key the matter's roster gave bob@lpo-1");
    // Bob's genuine statement for the other packet, moved to this one.
    operator(&|s, _| {
        let moved = s
            .deliveries(&other)
            .unwrap()
            .into_iter()
            .find(|d| d.principal == "bob@lpo-1")
            .expect("bob's statement for the other packet");
        s.put_delivery(&packet, &moved).unwrap();
    });
    refused(&format!("that names {other}"));
    // A packet alice never signed: its signature changed.
    operator(&|s, _| {
        let mut p = s.packet(&packet).unwrap().unwrap();
        p.signature[0] ^= 1;
        s.put_packet(&p).unwrap();
    });
    refused("is not signed with a key the matter's roster gave you");
    // The untouched copy lists again.
    operator(&|_, _| {});
    let p = find(&items(alice.json(&["sent"])), &packet);
    assert_eq!(state_of(&p, "bob@lpo-1")["delivered"], true);
}
