//! Matters, roles, ethical walls and signed acknowledgments, end to end.

use matterdrop_common::proto::{
    AckSignRequest, ClientRequest, ErrorCode, MatterRef, ServerResponse,
};
use matterdrop_common::sign::AckStatement;
use matterdrop_tests::{RawClient, User, World, error_code};
use sha2::{Digest as _, Sha256};

const MATTER: &str = "2026-PI-0042";

struct Firm {
    w: World,
    alice: User,
    bob: User,
    ack_v1: String,
}

/// A firm (alice, attorney), a provider (bob@lpo-1) on matter 2026-PI-0042.
fn setup() -> Firm {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let ack_v1 = "I will keep everything about matter 2026-PI-0042 confidential.\n".to_owned();
    let ack = w.tmp.path().join("ack-v1.txt");
    std::fs::write(&ack, &ack_v1).unwrap();
    let m = alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe v. Roe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "document-review,medical-chronology",
    ]);
    assert_eq!(m["firm"], "firm-a");
    assert_eq!(m["members"][0]["principal"], "alice@firm-a");
    assert_eq!(m["members"][0]["role"], "attorney");
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    Firm {
        w,
        alice,
        bob,
        ack_v1,
    }
}

#[test]
fn provider_must_acknowledge_every_version() {
    let f = setup();
    // Before acknowledging: only the text is readable.
    let r = f.bob.run(&["matter", "show", MATTER]).code(3);
    assert!(
        r.stderr.contains(
            "provider bob@lpo-1 has not acknowledged matter 2026-PI-0042 (acknowledgment v1)"
        ),
        "{r:?}"
    );
    let list = f.bob.json(&["matter", "list"]);
    assert_eq!(list["matters"][0]["id"], MATTER);
    assert_eq!(list["matters"][0]["needs_ack"], true);
    // Without --yes and without a terminal, nothing is signed.
    f.bob.run(&["ack", MATTER]).code(2);
    f.bob.run(&["matter", "show", MATTER]).code(3);

    let acked = f.bob.json(&["ack", MATTER, "--yes"]);
    assert_eq!(acked["version"], 1);
    let sha = format!("{:x}", Sha256::digest(f.ack_v1.as_bytes()));
    assert_eq!(acked["text_sha256"], sha.as_str());
    let shown = f.bob.json(&["matter", "show", MATTER]);
    assert_eq!(shown["ack_version"], 1);

    // A new version locks the provider out again until it signs again.
    let v2 = f.w.tmp.path().join("ack-v2.txt");
    std::fs::write(&v2, "Version 2: also no social media.\n").unwrap();
    let m = f.alice.json(&[
        "matter",
        "set-ack",
        MATTER,
        "--ack-file",
        v2.to_str().unwrap(),
    ]);
    assert_eq!(m["ack_version"], 2);
    let r = f.bob.run(&["matter", "show", MATTER]).code(3);
    assert!(r.stderr.contains("(acknowledgment v2)"), "{r:?}");
    f.bob.json(&["ack", MATTER, "--yes"]);
    f.bob.json(&["matter", "show", MATTER]);

    // Who signed what version, and when, is on record.
    let m = f.alice.json(&["matter", "show", MATTER]);
    let acks = m["acknowledgments"].as_array().unwrap();
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0]["principal"], "bob@lpo-1");
    assert_eq!(acks[0]["version"], 1);
    assert_eq!(acks[1]["version"], 2);
    assert!(acks[1]["signed_at"].as_str().unwrap().starts_with("20"));
    let text = f.alice.run(&["matter", "show", MATTER]).ok().stdout;
    assert!(
        text.contains("bob@lpo-1") && text.contains("acknowledged v2"),
        "{text}"
    );
}

#[test]
fn only_attorneys_manage_and_roles_fit_organizations() {
    let f = setup();
    let pat = f.w.user("pat@firm-a");
    f.alice
        .add_member(MATTER, &pat, "pat@firm-a", "paralegal")
        .ok();
    let r = f.w.tmp.path().join("x");
    std::fs::write(&r, "x").unwrap();
    for args in [
        &["matter", "add", MATTER, "alice@firm-a", "--role", "auditor"][..],
        &["matter", "remove", MATTER, "bob@lpo-1"],
        &[
            "matter",
            "set-ack",
            MATTER,
            "--ack-file",
            r.to_str().unwrap(),
        ],
        &["matter", "set-scope", MATTER, "--scope", "drafting"],
    ] {
        let out = pat.run(args).code(3);
        assert!(
            out.stderr
                .contains("only an attorney of matter 2026-PI-0042"),
            "{args:?}: {out:?}"
        );
        assert!(out.stderr.contains("pat@firm-a is a paralegal"), "{out:?}");
    }
    // Nothing changed.
    let m = f.alice.json(&["matter", "show", MATTER]);
    assert_eq!(m["members"].as_array().unwrap().len(), 3);
    assert_eq!(m["ack_version"], 1);

    // Roles must fit the member's organization.
    let carl = f.w.user("carl@lpo-1");
    let out = f
        .alice
        .run(&["matter", "add", MATTER, "carl@lpo-1", "--role", "paralegal"])
        .code(3);
    assert!(
        out.stderr.contains("belong to the matter's firm firm-a"),
        "{out:?}"
    );
    let dana = f.w.user("dana@firm-a");
    let out = f
        .alice
        .run(&["matter", "add", MATTER, "dana@firm-a", "--role", "provider"])
        .code(3);
    assert!(
        out.stderr
            .contains("providers belong to an organization other than the firm"),
        "{out:?}"
    );
    drop((carl, dana));

    // Providers cannot create matters.
    let ack = f.w.tmp.path().join("a.txt");
    std::fs::write(&ack, "terms").unwrap();
    let out = f
        .bob
        .run(&[
            "matter",
            "create",
            "LPO-1",
            "--title",
            "t",
            "--ack-file",
            ack.to_str().unwrap(),
            "--scope",
            "drafting",
        ])
        .code(3);
    assert!(
        out.stderr
            .contains("only members of a firm organization may create matters"),
        "{out:?}"
    );
}

#[test]
fn in_house_tasks_stay_in_house() {
    let f = setup();
    let ack = f.w.tmp.path().join("a.txt");
    std::fs::write(&ack, "terms").unwrap();
    for task in [
        "legal-advice",
        "pleading-signature",
        "court-appearance",
        "privilege-decision",
    ] {
        let scope = format!("document-review,{task}");
        let out = f
            .alice
            .run(&[
                "matter",
                "create",
                "2026-X-1",
                "--title",
                "t",
                "--ack-file",
                ack.to_str().unwrap(),
                "--scope",
                &scope,
            ])
            .code(3);
        assert!(
            out.stderr.contains(&format!("task {task} stays in-house")),
            "{out:?}"
        );
        let out = f
            .alice
            .run(&["matter", "set-scope", MATTER, "--scope", task])
            .code(3);
        assert!(out.stderr.contains("stays in-house"), "{out:?}");
    }
    f.alice.run(&["matter", "show", "2026-X-1"]).code(3);
    assert_eq!(
        f.alice.json(&["matter", "show", MATTER])["scope"],
        serde_json::json!(["document-review", "medical-chronology"])
    );
    // An unknown task type is a usage error, refused before anything is
    // signed.
    let out = f
        .alice
        .run(&["matter", "set-scope", MATTER, "--scope", "astrology"])
        .code(2);
    assert!(out.stderr.contains("unknown task type"), "{out:?}");
}

#[test]
fn walls_hide_other_matters_entirely() {
    let f = setup();
    let ack = f.w.tmp.path().join("a.txt");
    std::fs::write(&ack, "terms").unwrap();
    f.alice.json(&[
        "matter",
        "create",
        "2026-SECRET-7",
        "--title",
        "Other",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "drafting",
    ]);
    f.bob.json(&["ack", MATTER, "--yes"]);
    let exists = f.bob.run(&["matter", "show", "2026-SECRET-7"]).code(3);
    let missing = f.bob.run(&["matter", "show", "2026-NONE-8"]).code(3);
    assert_eq!(
        exists.stderr.replace("2026-SECRET-7", "ID"),
        missing.stderr.replace("2026-NONE-8", "ID"),
        "a non-member must not tell an existing matter from a missing one"
    );
    assert!(
        exists.stderr.contains("not found or you are not a member"),
        "{exists:?}"
    );
    // Same for the acknowledgment text and for membership changes.
    let a = f.bob.run(&["ack", "2026-SECRET-7", "--yes"]).code(3);
    let b = f.bob.run(&["ack", "2026-NONE-8", "--yes"]).code(3);
    assert_eq!(
        a.stderr.replace("2026-SECRET-7", "ID"),
        b.stderr.replace("2026-NONE-8", "ID")
    );
    let list = f.bob.json(&["matter", "list"]);
    assert_eq!(list["matters"].as_array().unwrap().len(), 1);
    // An admin has no access to matter content either.
    f.w.admin.run(&["matter", "show", MATTER]).code(3);
    // Auditors see the matter but may not manage it.
    let audrey = f.w.user("audrey@firm-a");
    f.alice
        .add_member(MATTER, &audrey, "audrey@firm-a", "auditor")
        .ok();
    f.audrey_checks(&audrey);
}

impl Firm {
    fn audrey_checks(&self, audrey: &User) {
        audrey.json(&["matter", "show", MATTER]);
        audrey
            .run(&["matter", "add", MATTER, "bob@lpo-1", "--role", "auditor"])
            .code(3);
        // Auditors sign no acknowledgment: that is for providers.
        audrey.run(&["ack", MATTER, "--yes"]).code(3);
    }
}

#[test]
fn removal_applies_to_open_connections() {
    let f = setup();
    f.bob.json(&["ack", MATTER, "--yes"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let show = ClientRequest::MatterShow(MatterRef {
        matter: MATTER.into(),
    });
    let client = rt.block_on(RawClient::connect(&f.w.server, &f.bob));
    let r = rt.block_on(client.request(&show));
    assert!(matches!(r, ServerResponse::Matter(_)), "{r:?}");
    f.alice.json(&["matter", "remove", MATTER, "bob@lpo-1"]);
    // Same connection, next request: refused.
    let r = rt.block_on(client.request(&show));
    assert_eq!(error_code(&r), ErrorCode::Denied, "{r:?}");
    rt.block_on(client.close());
    f.bob.run(&["matter", "show", MATTER]).code(3);
    assert_eq!(
        f.bob.json(&["matter", "list"])["matters"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The last attorney cannot be removed.
    let out = f
        .alice
        .run(&["matter", "remove", MATTER, "alice@firm-a"])
        .code(3);
    assert!(out.stderr.contains("last attorney"), "{out:?}");
}

#[test]
fn forged_acknowledgments_are_refused() {
    let f = setup();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(RawClient::connect(&f.w.server, &f.bob));
    let sha: [u8; 32] = Sha256::digest(f.ack_v1.as_bytes()).into();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let statement = |version: u32, text_sha256: [u8; 32], principal: &str| AckStatement {
        matter: MATTER.into(),
        version,
        text_sha256,
        principal: principal.into(),
        signed_at: now,
    };
    let send = |st: AckStatement, sig: [u8; 64]| {
        rt.block_on(client.request(&ClientRequest::AckSign(AckSignRequest {
            matter: st.matter,
            version: st.version,
            text_sha256: st.text_sha256,
            signed_at: st.signed_at,
            signature: sig.to_vec(),
        })))
    };
    let other_key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let cases: Vec<(&str, AckStatement, [u8; 64])> = vec![
        {
            let st = statement(1, sha, "bob@lpo-1");
            let sig = st.sign(&other_key).unwrap();
            ("signed by another key", st, sig)
        },
        {
            let st = statement(1, [7; 32], "bob@lpo-1");
            let sig = st.sign(&client.key).unwrap();
            ("over another text", st, sig)
        },
        {
            let st = statement(2, sha, "bob@lpo-1");
            let sig = st.sign(&client.key).unwrap();
            ("for another version", st, sig)
        },
        {
            // Signed over another principal's statement but sent as bob's.
            let signed = statement(1, sha, "carl@lpo-1");
            let sig = signed.sign(&client.key).unwrap();
            ("for another principal", statement(1, sha, "bob@lpo-1"), sig)
        },
    ];
    for (what, st, sig) in cases {
        let r = send(st, sig);
        assert_eq!(error_code(&r), ErrorCode::Verification, "{what}: {r:?}");
    }
    rt.block_on(client.close());
    // Nothing was recorded: bob is still locked out and has no acknowledgment.
    f.bob.run(&["matter", "show", MATTER]).code(3);
    let m = f.alice.json(&["matter", "show", MATTER]);
    assert_eq!(m["acknowledgments"].as_array().unwrap().len(), 0);
    // The genuine one works.
    f.bob.json(&["ack", MATTER, "--yes"]);
    f.bob.json(&["matter", "show", MATTER]);
}

/// Text from another party cannot drive a terminal: acknowledgment text
/// with control or bidirectional characters is refused before anything is
/// signed (client and server), and a note with an escape sequence reaches
/// the provider's screen escaped.
#[test]
fn acknowledgment_text_and_notes_cannot_drive_a_terminal() {
    let f = setup();
    let tmp = f.w.tmp.path();
    for (name, text) in [
        ("esc", "I agree.\u{1b}[8mhidden\u{1b}[0m\n"),
        ("bidi", "I agree to \u{202e}esaeler\n"),
        ("cr", "I agree.\r\nTo everything.\r\n"),
    ] {
        let p = tmp.join(format!("ack-{name}.txt"));
        std::fs::write(&p, text).unwrap();
        let r = f
            .alice
            .run(&[
                "matter",
                "set-ack",
                MATTER,
                "--ack-file",
                p.to_str().unwrap(),
            ])
            .code(2);
        assert!(
            r.stderr.contains("control or bidirectional"),
            "{name}: {r:?}"
        );
    }
    assert_eq!(f.alice.json(&["matter", "show", MATTER])["ack_version"], 1);
    // A note with an escape sequence, as a hostile sender would write it.
    f.bob.json(&["ack", MATTER, "--yes"]);
    let file = tmp.join("records.txt");
    std::fs::write(&file, "x\n").unwrap();
    let id = f.alice.json(&[
        "push",
        MATTER,
        file.to_str().unwrap(),
        "--task",
        "document-review",
        "--note",
        "see attached\u{1b}[2J\u{1b}[Hforged screen",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tmp.join("bob-in");
    let r = f
        .bob
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .ok();
    assert!(!r.stdout.contains('\u{1b}'), "{r:?}");
    assert!(r.stdout.contains("\\u{1b}[2J"), "{r:?}");
}
