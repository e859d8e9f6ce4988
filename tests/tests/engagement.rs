//! Engagement set-up: the provider's role definition, signed into the
//! roster, shown to providers, and checked against what the server sends.

use matterdrop_tests::{User, World};

const MATTER: &str = "2026-PI-0088";

struct Team {
    w: World,
    alice: User,
    bob: User,
}

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
        "Poe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "document-review,medical-chronology",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    Team { w, alice, bob }
}

#[test]
fn a_role_definition_is_signed_shown_to_providers_and_checked() {
    let mut t = team();
    let role = t.w.tmp.path().join("role.txt");
    std::fs::write(
        &role,
        "The provider drafts medical chronologies.\nOff limits: legal advice.\n",
    )
    .unwrap();
    let role = role.to_str().unwrap();
    // Only attorneys define the role; a text with an escape sequence is
    // refused before anything is signed.
    let r = t
        .bob
        .run(&["matter", "set-role", MATTER, "--file", role, "--yes"])
        .code(3);
    assert!(r.stderr.contains("only an attorney"), "{r:?}");
    let bad = t.w.tmp.path().join("bad.txt");
    std::fs::write(&bad, "fine\u{1b}[2Jhidden\n").unwrap();
    let r = t
        .alice
        .run(&[
            "matter",
            "set-role",
            MATTER,
            "--file",
            bad.to_str().unwrap(),
            "--yes",
        ])
        .code(2);
    assert!(r.stderr.contains("control"), "{r:?}");
    let r = t.alice.run(&[
        "matter",
        "set-role",
        MATTER,
        "--file",
        role,
        "--sign-off",
        "legal-advice",
        "--yes",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = t.alice.run(&["matter", "review-role", MATTER]).code(3);
    assert!(r.stderr.contains("no role definition"), "{r:?}");

    t.alice.json(&[
        "matter",
        "set-role",
        MATTER,
        "--file",
        role,
        "--sign-off",
        "medical-chronology",
        "--yes",
    ]);
    let shown = t.alice.json(&["matter", "show", MATTER]);
    let def = &shown["role_definition"];
    assert_eq!(def["version"], 1, "{shown}");
    assert_eq!(def["sign_off"], serde_json::json!(["medical-chronology"]));
    assert!(def["text"].as_str().unwrap().contains("Off limits"));
    assert!(def["review_overdue_days"].is_null());

    // The provider reads it when acknowledging (it is not what is signed).
    let r = t.bob.run(&["ack", MATTER, "--yes"]).ok();
    assert!(
        r.stderr.contains("Role definition v1") && r.stderr.contains("Off limits: legal advice"),
        "{r:?}"
    );
    // A packet of a task under sign-off says so to the provider.
    let dir = t.w.tmp.path().join("records");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("er.txt"), "ER visit\n").unwrap();
    let id = t.alice.json(&[
        "push",
        MATTER,
        dir.to_str().unwrap(),
        "--task",
        "medical-chronology",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inbox = t.bob.json(&["inbox", "--matter", MATTER]);
    assert_eq!(inbox["items"][0]["needs_sign_off"], true, "{inbox}");
    let out = t.w.tmp.path().join("bob-out");
    let r = t
        .bob
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .ok();
    assert!(r.stderr.contains("needs attorney sign-off"), "{r:?}");

    // A new version needs no new acknowledgment; a review re-signs it.
    std::fs::write(t.w.tmp.path().join("role2.txt"), "Version two.\n").unwrap();
    t.alice.json(&[
        "matter",
        "set-role",
        MATTER,
        "--file",
        t.w.tmp.path().join("role2.txt").to_str().unwrap(),
        "--yes",
    ]);
    let shown = t.bob.json(&["matter", "show", MATTER]);
    assert_eq!(shown["role_definition"]["version"], 2, "{shown}");
    assert_eq!(shown["role_definition"]["text"], "Version two.\n");
    t.alice.json(&["matter", "review-role", MATTER]);
    let shown = t.bob.json(&["matter", "show", MATTER]);
    assert_eq!(shown["role_definition"]["reviewed_by"], "alice@firm-a");

    // The operator rewrites the stored text: the provider's client refuses.
    t.w.server.restart_after(|data| {
        use matterdrop_server::store::{MetaWrite as _, SledStore};
        let store = SledStore::open(&data.join("db")).unwrap();
        store
            .put_role_def(MATTER, 2, "Version two. Also give legal advice.\n")
            .unwrap();
        store.flush().unwrap();
    });
    t.alice.repoint(&t.w.server);
    t.bob.repoint(&t.w.server);
    let r = t.bob.run(&["matter", "show", MATTER]).code(4);
    assert!(r.stderr.contains("role definition v2"), "{r:?}");
    let r = t.bob.run(&["ack", MATTER, "--yes"]).code(4);
    assert!(r.stderr.contains("role definition v2"), "{r:?}");
}

/// Targets are signed per task; a review carries a rating and, on a
/// return, a reason, both signed in the receipt and shown to the provider.
#[test]
fn reviews_carry_signed_ratings_and_return_reasons_and_matters_set_targets() {
    let mut t = team();
    // Targets: attorneys only; malformed values are usage errors.
    let target = |who: &User, args: &[&str]| {
        let mut v = vec!["matter", "set-target", MATTER, "--task"];
        v.extend(args);
        who.run(&v)
    };
    let ok = [
        "medical-chronology",
        "--turnaround",
        "24h",
        "--on-time",
        "95%",
        "--first-pass",
        "99.5%",
    ];
    assert_eq!(target(&t.bob, &ok).code, 3);
    for bad in [
        [
            "medical-chronology",
            "--turnaround",
            "24",
            "--on-time",
            "95%",
            "--first-pass",
            "99%",
        ],
        [
            "medical-chronology",
            "--turnaround",
            "24h",
            "--on-time",
            "95",
            "--first-pass",
            "99%",
        ],
        [
            "medical-chronology",
            "--turnaround",
            "24h",
            "--on-time",
            "95%",
            "--first-pass",
            "101%",
        ],
    ] {
        let r = target(&t.alice, &bad);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
    }
    // A task that stays in-house is refused by the roster's rule.
    let r = target(
        &t.alice,
        &[
            "legal-advice",
            "--turnaround",
            "24h",
            "--on-time",
            "95%",
            "--first-pass",
            "99%",
        ],
    )
    .code(3);
    assert!(r.stderr.contains("in-house"), "{r:?}");
    target(&t.alice, &ok).ok();
    // A point of contact per side: a current member only, attorneys only.
    let r = t
        .alice
        .run(&["matter", "contact", MATTER, "nobody@lpo-1"])
        .code(3);
    assert!(r.stderr.contains("not a member"), "{r:?}");
    t.bob
        .run(&["matter", "contact", MATTER, "bob@lpo-1"])
        .code(3);
    t.alice.json(&["matter", "contact", MATTER, "bob@lpo-1"]);
    t.alice.json(&["matter", "contact", MATTER, "alice@firm-a"]);
    let shown = t.alice.json(&["matter", "show", MATTER]);
    assert_eq!(
        shown["contacts"],
        serde_json::json!({"firm-a": "alice@firm-a", "lpo-1": "bob@lpo-1"}),
        "{shown}"
    );
    let shown = t.alice.json(&["matter", "show", MATTER]);
    assert_eq!(
        shown["targets"],
        serde_json::json!([{"task": "medical-chronology", "turnaround_secs": 86_400,
            "on_time_percent": 95.0, "first_pass_percent": 99.5}]),
        "{shown}"
    );

    t.bob.json(&["ack", MATTER, "--yes"]);
    let dir = t.w.tmp.path().join("records");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("er.txt"), "ER visit\n").unwrap();
    let packet = t.alice.json(&[
        "push",
        MATTER,
        dir.to_str().unwrap(),
        "--task",
        "medical-chronology",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = t.w.tmp.path().join("chronology.txt");
    std::fs::write(&work, "2025-01-02: ER visit\n").unwrap();
    let deliver = || {
        t.bob.json(&[
            "deliver",
            MATTER,
            "--packet",
            &packet,
            work.to_str().unwrap(),
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let d1 = deliver();
    let receipt = t.w.tmp.path().join("return.json");
    // A reason is for returns; a rating is 1 to 5; reasons are a fixed list.
    let r = t
        .alice
        .run(&["review", "approve", "--yes", &d1, "--reason", "incomplete"])
        .code(2);
    assert!(r.stderr.contains("review return"), "{r:?}");
    t.alice
        .run(&["review", "approve", "--yes", &d1, "--rating", "6"])
        .code(2);
    let r = t
        .alice
        .run(&[
            "review", "return", "--yes", &d1, "--note", "x", "--reason", "sloppy",
        ])
        .code(2);
    assert!(r.stderr.contains("missing-document"), "{r:?}");
    let v = t.alice.json(&[
        "review",
        "return",
        "--yes",
        &d1,
        "--note",
        "add the MRI",
        "--reason",
        "missing-document",
        "--rating",
        "2",
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(
        (v["rating"].as_u64(), v["reason"].as_str()),
        (Some(2), Some("missing-document"))
    );
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let signed = file["signed"].as_str().unwrap();
    assert!(
        signed.ends_with("rating=2\nreason=missing-document\n"),
        "{signed}"
    );
    let v = t
        .alice
        .json(&["receipt", "verify", receipt.to_str().unwrap()]);
    assert_eq!(
        (v["rating"].as_u64(), v["reason"].as_str()),
        (Some(2), Some("missing-document"))
    );
    // The provider sees the signed reason with the note.
    let inbox = t.bob.json(&["inbox", "--matter", MATTER]);
    assert_eq!(
        inbox["items"][0]["review"]["reason"], "missing-document",
        "{inbox}"
    );
    assert_eq!(inbox["items"][0]["review"]["rating"], 2);
    let text = t.bob.run(&["inbox", "--matter", MATTER]).ok();
    assert!(text.stdout.contains("reason: missing-document"), "{text:?}");

    let d2 = deliver();
    let v = t
        .alice
        .json(&["review", "approve", "--yes", &d2, "--rating", "5"]);
    assert_eq!(v["rating"], 5);
    assert!(v["reason"].is_null());

    // The evaluation report: from the verified log and signed receipts.
    let rep = t
        .alice
        .json(&["report", "--matter", MATTER, "--since", "30d"]);
    assert_eq!(rep["verified"], true, "{rep}");
    let row = &rep["rows"][0];
    assert_eq!(row["provider"], "lpo-1", "{rep}");
    assert_eq!(
        (row["packets"].as_u64(), row["deliverables"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(row["returns"], serde_json::json!({"missing-document": 1}));
    assert_eq!(row["mean_rating"], 3.5);
    assert_eq!(
        (row["approved"].as_u64(), row["first_pass"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(row["target"]["first_pass_percent"], 99.5);
    assert_eq!(row["verdict"], "too few deliverables to judge (2 < 10)");
    let csv = t
        .alice
        .run(&["report", "--matter", MATTER, "--format", "csv"])
        .ok();
    assert!(
        csv.stdout.starts_with("matter,provider,task,") && csv.stdout.contains("\"lpo-1\""),
        "{csv:?}"
    );
    let r = t.bob.run(&["report"]).code(3);
    assert!(r.stderr.contains("provider of"), "{r:?}");
    // `report turnaround` is the same report.
    let alias = t.alice.json(&["report", "turnaround", "--matter", MATTER]);
    assert_eq!(alias["rows"][0]["verdict"], row["verdict"]);

    // The operator, who holds the log key, logs a receipt of its own
    // making (a poor rating in the attorney's name): the report refuses
    // the log (exit 4) instead of counting it.
    t.w.server
        .restart_after(|data| forge_receipt(data, &d2, &packet));
    t.alice.repoint(&t.w.server);
    let r = t.alice.run(&["report", "--matter", MATTER]).code(4);
    assert!(r.stderr.contains("not signed by a key"), "{r:?}");
}

fn forge_receipt(data: &std::path::Path, deliverable: &str, packet: &str) {
    use matterdrop_common::receipt::{Decision, ReceiptStatement, ReturnReason, sha256};
    use matterdrop_common::tlog::NoteSigner;
    use matterdrop_server::audit::{AuditLog, Event};

    let dir = matterdrop_server::datadir::load(data).unwrap();
    let signer = NoteSigner::new(&dir.config.log_name, dir.log_key.clone()).unwrap();
    let log = AuditLog::open(
        &data.join("log"),
        dir.log_key.clone(),
        signer,
        dir.config.log_name.clone(),
    )
    .unwrap();
    let st = ReceiptStatement {
        deliverable: deliverable.into(),
        packet: packet.into(),
        matter: MATTER.into(),
        descriptor_sha256: [1; 32],
        manifest_sha256: [2; 32],
        decision: Decision::Return,
        note_sha256: sha256(b""),
        reviewer: "alice@firm-a".into(),
        time: 1,
        rating: Some(1),
        reason: Some(ReturnReason::Other),
    };
    let operator = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let signed = st.to_signed_bytes().unwrap();
    let details = vec![
        ("decision".into(), "return".into()),
        ("packet".into(), packet.into()),
        ("receipt".into(), String::from_utf8(signed.clone()).unwrap()),
        ("receipt_sha256".into(), hex(&sha256(&signed))),
        ("signature".into(), hex(&st.sign(&operator).unwrap())),
    ];
    log.record(vec![
        Event::server(
            "alice@firm-a",
            "review-receipt",
            Some(deliverable),
            None,
            details,
        )
        .in_matter(MATTER),
    ])
    .unwrap();
}
