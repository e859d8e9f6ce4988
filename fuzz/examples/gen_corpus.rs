//! Writes the seed corpus: valid (and a few nearly valid) inputs for every
//! fuzz target, built with the library itself and signed with the fixed keys
//! of `matterdrop_fuzz::keys()`. Deterministic: the same files every run.
//!
//! ```text
//! cd fuzz && cargo run --example gen_corpus
//! ```
//!
//! Files are named `seed-*` and written into `corpus/<target>/`; files the
//! fuzzer added are left alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use matterdrop_common::audit::{self, Entry};
use matterdrop_common::bundle::{self, BundleHeader, ConsistencyProof};
use matterdrop_common::packet::{BlobRef, Descriptor, Kind, Manifest, ManifestFile, Recipient};
use matterdrop_common::proto::{self, ClientRequest as Req, ServerResponse as Resp};
use matterdrop_common::sign::{self, AckStatement};
use matterdrop_common::tlog::{self, Checkpoint, Hash, NoteSigner};
use matterdrop_fuzz::{ACK_PRINCIPAL, LOG_NAME, keys};

const AGE: [&str; 4] = [
    "age1tzztz7u02e4erdqzeyfd4u2t9suu2veuy727fq3ele7aknrs7qqqam4m67",
    "age1emym9ar8g8947p6hk70g3z38re97ag3hf9xlyqtjuvhscrcd5sksawyd9t",
    "age1n8xh0v54drwj8mdj7gzh8n4prwmcmfuc2vnr7jnsck3jlcya8aes72r5t7",
    "age1cxul67dfex557vewl05j329ugqnxkjqrs56v7e2eek5ew04w7q7svuhk9j",
];
const MATTER: &str = "2026-PI-0042";

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{name}")), bytes)?;
        self.count += 1;
        Ok(())
    }
}

fn h(tag: &str) -> Hash {
    tlog::leaf_hash(tag.as_bytes())
}

fn body(frame: &[u8]) -> &[u8] {
    &frame[proto::HEADER_LEN..]
}

fn descriptors() -> Vec<(&'static str, Descriptor)> {
    let packet = Descriptor {
        kind: Kind::Packet,
        matter: MATTER.into(),
        id: "p-3".into(),
        packet: None,
        task: "medical-chronology".into(),
        due: None,
        sender: "alice@firm-a".into(),
        created_at: 1_767_225_600,
        recipients: vec![Recipient {
            principal: "alice@firm-a".into(),
            age: AGE[0].into(),
        }],
        recovery: None,
        manifest: BlobRef {
            sha256: h("manifest"),
            size: 200,
        },
        blobs: vec![],
    };
    let deliverable = Descriptor {
        kind: Kind::Deliverable,
        id: "d-7".into(),
        packet: Some("p-3".into()),
        due: Some(1_767_312_000),
        sender: "bob@provider-b".into(),
        recipients: vec![
            Recipient {
                principal: "alice@firm-a".into(),
                age: AGE[0].into(),
            },
            Recipient {
                principal: "bob@provider-b".into(),
                age: AGE[1].into(),
            },
        ],
        recovery: Some(AGE[2].into()),
        blobs: vec![BlobRef {
            sha256: h("blob-0"),
            size: 5678,
        }],
        ..packet.clone()
    };
    let big = Descriptor {
        id: "p-4.x_y".into(),
        due: Some(0),
        recipients: (0..3)
            .map(|i| Recipient {
                principal: format!("u{i}@firm-a"),
                age: AGE[i].into(),
            })
            .collect(),
        recovery: Some(AGE[3].into()),
        blobs: (0..3)
            .map(|i| BlobRef {
                sha256: h(&format!("blob-{i}")),
                size: u64::MAX - i,
            })
            .collect(),
        ..packet.clone()
    };
    vec![
        ("packet", packet),
        ("deliverable", deliverable),
        ("packet-3-blobs", big),
    ]
}

fn manifests() -> Vec<(&'static str, Manifest)> {
    let file = |path: &str, size| ManifestFile {
        path: path.into(),
        size,
        sha256: h(path),
        blobs: vec![h(&format!("blob:{path}"))],
    };
    vec![
        ("empty", Manifest::new("", vec![])),
        (
            "two-files",
            Manifest::new(
                "Records for \"Smith\"\n\tplease review.",
                vec![file("records/2024/a.pdf", 3), file("Report.docx", 0)],
            ),
        ),
        (
            "unicode",
            Manifest::new(
                "Ünïcode ✓ \u{1F4C4}",
                vec![
                    file("Müller/Akte 1.pdf", u64::MAX),
                    file("日本語/ファイル.txt", 42),
                    file("a/b/c/d/e/f/g/h.bin", 1),
                ],
            ),
        ),
    ]
}

fn entries() -> Vec<Entry> {
    let base = Entry {
        index: 0,
        time: 1_767_225_600,
        principal: "alice@firm-a".into(),
        action: "matter.create".into(),
        matter: Some(MATTER.into()),
        object: None,
        allowed: true,
        rule: None,
        reason: None,
        prev_in_matter: None,
        details: vec![],
    };
    vec![
        base.clone(),
        Entry {
            index: 1,
            principal: "key:SHA256:abc".into(),
            action: "enroll".into(),
            matter: None,
            ..base.clone()
        },
        Entry {
            index: 2,
            time: 1_767_225_700,
            principal: "carl@lpo-1".into(),
            action: "matter.show".into(),
            object: Some("p-3".into()),
            allowed: false,
            rule: Some("not-member".into()),
            reason: Some("carl@lpo-1 is not a member of 2026-PI-0042".into()),
            prev_in_matter: Some(0),
            details: vec![("not_member".into(), "never-member".into())],
            ..base.clone()
        },
        Entry {
            index: 3,
            principal: "bob@provider-b".into(),
            action: "ack-sign".into(),
            prev_in_matter: Some(2),
            details: vec![
                ("version".into(), "2".into()),
                ("text_sha256".into(), "00".repeat(32)),
            ],
            ..base.clone()
        },
        Entry {
            index: 4,
            principal: "audrey@firm-a".into(),
            action: "audit-export".into(),
            prev_in_matter: Some(3),
            ..base
        },
    ]
}

fn checkpoint_note(signer: &NoteSigner, size: u64, root: Hash) -> String {
    tlog::sign_checkpoint(
        &Checkpoint {
            origin: LOG_NAME.into(),
            size,
            root,
        },
        signer,
    )
}

fn header(matter: Option<&str>, note: String, count: u64) -> BundleHeader {
    BundleHeader {
        log_key: keys().verifier.to_vkey(),
        checkpoint: note,
        matter: matter.map(str::to_owned),
        count,
        exported_by: "audrey@firm-a".into(),
        consistency: None,
        witnessed: Vec::new(),
    }
}

/// Full and matter bundles over `entries()` (all verify), plus variants.
fn bundles(out: &mut Out) -> io::Result<()> {
    let k = keys();
    let records: Vec<Vec<u8>> = entries()
        .iter()
        .map(|e| audit::seal(e, &k.log_key).expect("seal"))
        .collect();
    let leaves: Vec<Hash> = records.iter().map(|r| tlog::leaf_hash(r)).collect();
    let n = records.len() as u64;
    let root = tlog::root(&leaves);

    // Full bundle of every record.
    let mut full = Vec::new();
    bundle::write_header(
        &mut full,
        &header(None, checkpoint_note(&k.log, n, root), n),
    )?;
    for (i, r) in records.iter().enumerate() {
        bundle::write_record(&mut full, i as u64, r, None)?;
    }
    // Empty log.
    let mut empty = Vec::new();
    bundle::write_header(
        &mut empty,
        &header(None, checkpoint_note(&k.log, 0, tlog::EMPTY_ROOT), 0),
    )?;
    // A full bundle of the first two records only (size 2).
    let mut two = Vec::new();
    bundle::write_header(
        &mut two,
        &header(
            None,
            checkpoint_note(&k.log, 2, tlog::root(&leaves[..2])),
            2,
        ),
    )?;
    for (i, r) in records[..2].iter().enumerate() {
        bundle::write_record(&mut two, i as u64, r, None)?;
    }

    // Matter bundle: the matter's chain 0 -> 2 -> 3 -> 4 with inclusion
    // proofs, and a consistency proof from size 2.
    let mut h = header(Some(MATTER), checkpoint_note(&k.log, n, root), 4);
    h.consistency = Some(ConsistencyProof {
        from_size: 2,
        proof: tlog::consistency_proof(&leaves, 2).expect("consistency proof"),
    });
    let mut matter = Vec::new();
    bundle::write_header(&mut matter, &h)?;
    for i in [0usize, 2, 3, 4] {
        let proof = tlog::inclusion_proof(&leaves, i as u64).expect("inclusion proof");
        bundle::write_record(&mut matter, i as u64, &records[i], Some(&proof))?;
    }

    for (name, bytes) in [
        ("full", &full),
        ("empty", &empty),
        ("full-2", &two),
        ("matter", &matter),
    ] {
        let open = || Ok::<_, io::Error>(io::Cursor::new(bytes.as_slice()));
        let summary = bundle::verify(open, &k.verifier, None);
        assert!(
            summary.is_ok(),
            "seed bundle {name} does not verify: {summary:?}"
        );
        out.put("bundle", name, bytes)?;
    }
    // Tampered: a flipped signature byte in the middle record (the root
    // mismatch sends the verifier into its second, locating pass), and a
    // truncated bundle.
    let mut tampered = full.clone();
    let at = full.len() - records[4].len() - 12 - 20;
    tampered[at] ^= 1;
    out.put("bundle", "full-tampered", &tampered)?;
    out.put("bundle", "full-truncated", &full[..full.len() - 30])?;
    out.put("bundle", "magic-only", bundle::MAGIC)?;

    for (i, r) in records.iter().enumerate() {
        out.put("audit_entry", &format!("record-{i}"), r)?;
        out.put(
            "audit_entry",
            &format!("entry-{i}"),
            &r[..r.len() - audit::RECORD_SIG_LEN],
        )?;
    }
    Ok(())
}

fn notes(out: &mut Out) -> io::Result<()> {
    let k = keys();
    let other = NoteSigner::new(
        "example.com/other-log",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .expect("other key");
    let cp = Checkpoint {
        origin: LOG_NAME.into(),
        size: 20_852_163,
        root: h("root"),
    };
    out.put("note", "checkpoint-body", cp.to_body().as_bytes())?;
    out.put(
        "note",
        "checkpoint-body-spec",
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    )?;
    out.put(
        "note",
        "checkpoint-body-ext",
        format!("{}extension line\n", cp.to_body()).as_bytes(),
    )?;
    let signed = tlog::sign_checkpoint(&cp, &k.log);
    out.put("note", "checkpoint-signed", signed.as_bytes())?;
    // Two signatures: one by an unknown key (ignored), one by the log key.
    let cosigned = format!(
        "{}{}",
        tlog::sign_note(&cp.to_body(), &other),
        tlog::sign_note(&cp.to_body(), &k.log)
            .split_once("\n\n")
            .expect("signature block")
            .1
    );
    out.put("note", "checkpoint-cosigned", cosigned.as_bytes())?;
    out.put(
        "note",
        "note-plain",
        tlog::sign_note("Hello, world.\n\nSecond paragraph.\n", &k.log).as_bytes(),
    )?;
    out.put("note", "vkey", k.verifier.to_vkey().as_bytes())?;
    out.put("note", "vkey-other", other.verifier().to_vkey().as_bytes())?;
    Ok(())
}

fn sanitize(out: &mut Out) -> io::Result<()> {
    let names: [&str; 14] = [
        "report.pdf",
        "records/2024/a.pdf",
        "Müller/Akte 1.pdf",
        "日本語/ファイル.txt",
        "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/1/2/3/4/5/6",
        ".hidden/..x/x..",
        "../etc/passwd",
        "/abs/path",
        "a//b",
        "a\\b",
        "evil\u{202E}fdp.exe",
        "tab\there",
        "... / .",
        "con/nul.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        out.put("sanitize", &format!("{i:02}"), n.as_bytes())?;
    }
    out.put("sanitize", "long-component", "x".repeat(256).as_bytes())?;
    Ok(())
}

fn wire(out: &mut Out) -> io::Result<()> {
    let k = keys();
    let ds = descriptors();
    let d = &ds[0].1;
    let d_bytes = d.to_signed_bytes().expect("descriptor");
    let d_sig = d.sign(&k.member).expect("sign").to_vec();
    let statement = AckStatement {
        matter: MATTER.into(),
        version: 2,
        text_sha256: h("ack text"),
        principal: ACK_PRINCIPAL.into(),
        signed_at: 1_767_225_600,
    };
    let ack_sig = statement.sign(&k.member).expect("sign ack").to_vec();
    let member_key = k.member.verifying_key().to_bytes();
    let requests: Vec<(&str, Req)> = vec![
        (
            "enroll",
            Req::Enroll(proto::EnrollRequest {
                invite: "inv-abc".into(),
                id: "bob@provider-b".into(),
                name: "Bob".into(),
                age_recipient: AGE[1].into(),
            }),
        ),
        ("whoami", Req::WhoAmI),
        (
            "org-create",
            Req::OrgCreate(proto::OrgCreateRequest {
                id: "firm-a".into(),
                kind: proto::OrgKind::Firm,
                recovery_recipient: Some(AGE[2].into()),
            }),
        ),
        (
            "invite-create",
            Req::InviteCreate(proto::InviteCreateRequest {
                org: Some("provider-b".into()),
                admin: true,
                ttl_secs: Some(86_400),
                for_id: None,
            }),
        ),
        (
            "matter-create",
            Req::MatterCreate(proto::MatterCreateRequest {
                id: MATTER.into(),
                title: "Smith v. Jones".into(),
                ack_text: "I will keep this matter confidential.\n".into(),
                scope: vec!["medical-chronology".into(), "deposition-summary".into()],
            }),
        ),
        (
            "matter-add",
            Req::MatterAdd(proto::MatterMemberRequest {
                matter: MATTER.into(),
                principal: "bob@provider-b".into(),
                role: Some("provider".into()),
            }),
        ),
        (
            "matter-show",
            Req::MatterShow(proto::MatterRef {
                matter: MATTER.into(),
            }),
        ),
        ("matter-list", Req::MatterList),
        (
            "ack-sign",
            Req::AckSign(proto::AckSignRequest {
                matter: MATTER.into(),
                version: 2,
                text_sha256: statement.text_sha256,
                signed_at: statement.signed_at,
                signature: ack_sig,
            }),
        ),
        (
            "audit-export",
            Req::AuditExport(proto::AuditExportRequest {
                nonce: None,
                matter: Some(MATTER.into()),
                known_size: Some(5),
            }),
        ),
        (
            "packet-commit",
            Req::PacketCommit(proto::PacketCommitRequest {
                descriptor: d_bytes.clone(),
                signature: d_sig.clone(),
            }),
        ),
        (
            "inbox",
            Req::Inbox(proto::InboxRequest {
                matter: None,
                all: true,
            }),
        ),
        (
            "blob-get",
            Req::BlobGet(proto::BlobGetRequest {
                packet: "p-3".into(),
                sha256: h("blob-0"),
                offset: 0,
            }),
        ),
    ];
    let principal = proto::PrincipalInfo {
        id: "bob@provider-b".into(),
        name: "Bob".into(),
        org: Some("provider-b".into()),
        org_kind: Some(proto::OrgKind::Provider),
        admin: false,
        signing_key: member_key,
        age_recipient: AGE[1].into(),
        log_key: k.verifier.to_vkey(),
        enrolled_at: 1_767_225_600,
    };
    let responses: Vec<(&str, Resp)> = vec![
        (
            "error",
            Resp::error(proto::ErrorCode::Denied, "not a member of 2026-PI-0042"),
        ),
        ("enrolled", Resp::Enrolled(principal.clone())),
        (
            "matters",
            Resp::Matters(vec![proto::MatterSummary {
                id: MATTER.into(),
                title: "Smith v. Jones".into(),
                role: "provider".into(),
                needs_ack: true,
            }]),
        ),
        (
            "audit-bundle",
            Resp::AuditBundle(header(
                Some(MATTER),
                checkpoint_note(&k.log, 5, h("root")),
                4,
            )),
        ),
        (
            "packet",
            Resp::Packet(proto::PacketInfo {
                id: "p-3".into(),
                descriptor: d_bytes,
                signature: d_sig,
                sender_key: member_key,
                review: None,
                share: None,
                expired: None,
            }),
        ),
    ];
    for (name, msg) in &requests {
        let frame = proto::encode(msg).expect("encode");
        out.put("wire", &format!("req-{name}"), body(&frame))?;
    }
    for (name, msg) in &responses {
        let frame = proto::encode(msg).expect("encode");
        out.put("wire", &format!("resp-{name}"), body(&frame))?;
    }
    // Whole frames, header included.
    out.put(
        "wire",
        "frame-req-ack-sign",
        &proto::encode(&requests[8].1).expect("encode"),
    )?;
    out.put(
        "wire",
        "frame-resp-enrolled",
        &proto::encode(&responses[1].1).expect("encode"),
    )?;
    // Sanity: the member key of the signed seeds verifies.
    sign::verifying_key_from_bytes(&member_key).expect("member key");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Receipt statements, and a complete receipt file whose review record is
/// included in a checkpoint signed by the fixed log key.
fn receipts(out: &mut Out) -> io::Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use matterdrop_common::receipt::{
        self, Decision, LogProof, RECEIPT_FORMAT, ReceiptFile, ReceiptFileEntry, ReceiptStatement,
    };

    let k = keys();
    let ms = manifests();
    let m = &ms[1].1;
    let manifest = m.to_bytes().expect("manifest");
    let note = "Approved; see page 3.";
    let approve = ReceiptStatement {
        deliverable: "d-7".into(),
        packet: "p-3".into(),
        matter: MATTER.into(),
        descriptor_sha256: h("descriptor"),
        manifest_sha256: receipt::sha256(&manifest),
        decision: Decision::Approve,
        note_sha256: receipt::sha256(note.as_bytes()),
        reviewer: "alice@firm-a".into(),
        time: 1_767_300_000,
    };
    let ret = ReceiptStatement {
        decision: Decision::Return,
        time: 0,
        ..approve.clone()
    };
    let signed = approve.to_signed_bytes().expect("receipt");
    out.put("receipt", "statement-approve", &signed)?;
    out.put(
        "receipt",
        "statement-return",
        &ret.to_signed_bytes().expect("receipt"),
    )?;

    let mut es = entries();
    es.truncate(2);
    es.push(Entry {
        index: 2,
        principal: "alice@firm-a".into(),
        action: "review-receipt".into(),
        object: Some("d-7".into()),
        prev_in_matter: Some(0),
        details: vec![("receipt_sha256".into(), hex(&receipt::sha256(&signed)))],
        ..es[0].clone()
    });
    let records: Vec<Vec<u8>> = es
        .iter()
        .map(|e| audit::seal(e, &k.log_key).expect("seal"))
        .collect();
    let leaves: Vec<Hash> = records.iter().map(|r| tlog::leaf_hash(r)).collect();
    let file = ReceiptFile {
        format: RECEIPT_FORMAT.into(),
        signed: String::from_utf8(signed.clone()).expect("ascii"),
        signature: B64.encode(approve.sign(&k.member).expect("sign")),
        reviewer_public_key_pem: k
            .member
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem"),
        manifest: B64.encode(&manifest),
        files: m
            .files
            .iter()
            .map(|f| ReceiptFileEntry {
                path: f.path.clone(),
                size: f.size,
                sha256: hex(&f.sha256),
            })
            .collect(),
        note: note.into(),
        log: LogProof {
            index: 2,
            record: B64.encode(&records[2]),
            proof: tlog::inclusion_proof(&leaves, 2)
                .expect("proof")
                .iter()
                .map(|p| hex(p))
                .collect(),
            checkpoint: checkpoint_note(&k.log, 3, tlog::root(&leaves)),
            log_key: k.verifier.to_vkey(),
            witnessed: Vec::new(),
        },
    };
    let json = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    out.put("receipt", "file", &json)?;
    Ok(())
}

fn main() -> io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut out = Out { root, count: 0 };
    for (name, d) in descriptors() {
        out.put(
            "descriptor",
            name,
            &d.to_signed_bytes().expect("descriptor"),
        )?;
    }
    for (name, m) in manifests() {
        out.put("manifest", name, &m.to_bytes().expect("manifest"))?;
    }
    out.put(
        "manifest",
        "spaced",
        br#"{ "version" : 1, "note" : "a\u00e9\/b", "files" : [ ] }"#,
    )?;
    sanitize(&mut out)?;
    notes(&mut out)?;
    bundles(&mut out)?;
    wire(&mut out)?;
    receipts(&mut out)?;
    println!(
        "wrote {} seed files under {}",
        out.count,
        out.root.display()
    );
    Ok(())
}
