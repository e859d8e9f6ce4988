//! The entry points of Matterdrop's fuzz targets.
//!
//! Each fuzz target in `fuzz_targets/` is a one-line call into a function of
//! this file, and `common/tests/fuzz_corpus.rs` includes this very file (with
//! `#[path]`) to replay every committed corpus file through the same
//! function during a normal `cargo test`. So the fuzzer and the regression
//! test run the same code, without the root workspace depending on this
//! crate or on libFuzzer. Only `std` and crates that are also normal
//! dependencies of `matterdrop-common` (`ed25519_dalek`, `base64`,
//! `serde_json`) may be used here, since both crates must compile it.
//!
//! Every function feeds untrusted bytes to one parser and must never panic:
//! a malformed input is an `Err`. On top of that it asserts the properties
//! the parser documents (strict round trips, re-encoding, limits), so a
//! parser that accepts what it should not fails here too.

use std::fmt::Debug;
use std::io::{self, Cursor};
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use matterdrop_common::{audit, bundle, packet, proto, receipt, roster, sign, tlog};

/// Key name (and checkpoint origin) of the fixed fuzzing log key.
pub const LOG_NAME: &str = "mdropd-fuzz";
/// Seed of the fixed log key that signs checkpoints and audit records.
pub const LOG_SEED: [u8; 32] = [0x42; 32];
/// Seed of the fixed member key that signs descriptors and acknowledgments.
pub const MEMBER_SEED: [u8; 32] = [0x17; 32];
/// The principal that signs acknowledgments (as the server would fill in).
pub const ACK_PRINCIPAL: &str = "bob@provider-b";

/// The fixed keys every target checks signatures with. The seed corpus is
/// signed with them, so fuzzing starts from inputs that verify.
#[derive(Debug)]
pub struct Keys {
    /// The log's note signer.
    pub log: tlog::NoteSigner,
    /// The log key as a verifier pins it.
    pub verifier: tlog::NoteVerifier,
    /// The log's raw Ed25519 key (audit records).
    pub log_key: SigningKey,
    /// A member's key (descriptors, acknowledgments).
    pub member: SigningKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let log_key = SigningKey::from_bytes(&LOG_SEED);
    let log = tlog::NoteSigner::new(LOG_NAME, log_key.clone()).expect("fixed log key name");
    Keys {
        verifier: log.verifier(),
        log,
        log_key,
        member: SigningKey::from_bytes(&MEMBER_SEED),
    }
});

/// The fixed keys.
pub fn keys() -> &'static Keys {
    &KEYS
}

// ---------------------------------------------------------------------------
// wire
// ---------------------------------------------------------------------------

/// Wire messages: the bytes as a frame body and as a whole frame, decoded as
/// a client request and as a server response. A decoded message must
/// re-encode into a frame that decodes to the same message; acknowledgments
/// (`AckSign`), descriptors and log keys carried inside go on to their own
/// parsers, as the server and client would.
pub fn wire(data: &[u8]) {
    wire_as::<proto::ClientRequest>(data, client_request);
    wire_as::<proto::ServerResponse>(data, server_response);
}

fn wire_as<T: proto::Message + PartialEq + Debug>(data: &[u8], then: fn(&T)) {
    match proto::decode::<T>(data) {
        Ok(msg) => {
            if data.len() <= proto::MAX_FRAME {
                let frame = proto::encode(&msg).expect("a decoded message re-encodes");
                let again = proto::decode_frame::<T>(&frame).expect("a re-encoded message decodes");
                assert_eq!(again, msg, "decode(encode(m)) != m");
            }
            then(&msg);
        }
        Err(proto::ProtoError::UnknownKind(kind)) => {
            assert!(kind >= T::KINDS, "known kind {kind} reported as unknown");
        }
        Err(_) => {}
    }
    if let Ok(msg) = proto::decode_frame::<T>(data) {
        // A frame decodes exactly when its header is right and its body
        // decodes on its own.
        let body = &data[proto::HEADER_LEN..];
        assert_eq!(
            proto::decode_header(data[..proto::HEADER_LEN].try_into().expect("4 bytes"))
                .expect("accepted header"),
            body.len()
        );
        assert_eq!(proto::decode::<T>(body).expect("accepted body"), msg);
    }
}

fn client_request(msg: &proto::ClientRequest) {
    let _ = msg.name();
    match msg {
        proto::ClientRequest::AckSign(req) => {
            // What the server checks an acknowledgment with.
            let statement = sign::AckStatement {
                matter: req.matter.clone(),
                version: req.version,
                text_sha256: req.text_sha256,
                principal: ACK_PRINCIPAL.to_owned(),
                signed_at: req.signed_at,
            };
            if let Ok(bytes) = statement.to_signed_bytes() {
                assert!(bytes.starts_with(sign::Domain::Ack.prefix()));
            }
            let _ = statement.verify(&keys().member.verifying_key(), &req.signature);
        }
        proto::ClientRequest::PacketCommit(req) => {
            descriptor_with_signature(
                &req.descriptor,
                &req.signature,
                keys().member.verifying_key().as_bytes(),
            );
        }
        _ => {}
    }
}

fn server_response(msg: &proto::ServerResponse) {
    match msg {
        proto::ServerResponse::Enrolled(p) | proto::ServerResponse::WhoAmI(p) => {
            let _ = sign::verifying_key_from_bytes(&p.signing_key);
            vkey(&p.log_key);
        }
        proto::ServerResponse::AuditBundle(h) => {
            vkey(&h.log_key);
            checkpoint_note(&h.checkpoint);
        }
        proto::ServerResponse::Packet(p) => {
            descriptor_with_signature(&p.descriptor, &p.signature, &p.sender_key);
        }
        proto::ServerResponse::Recipients(r) => {
            for k in &r.recipients {
                let _ = sign::verifying_key_from_bytes(&k.signing_key);
            }
        }
        _ => {}
    }
}

fn descriptor_with_signature(bytes: &[u8], sig: &[u8], key: &[u8]) {
    descriptor(bytes);
    if let (Ok(d), Ok(key)) = (
        packet::Descriptor::parse(bytes),
        sign::verifying_key_from_bytes(key),
    ) {
        let _ = d.verify(&key, sig);
    }
}

// ---------------------------------------------------------------------------
// descriptor, manifest, sanitize
// ---------------------------------------------------------------------------

/// Signed descriptor bytes. `parse` is documented as the strict inverse of
/// `to_signed_bytes`: whatever it accepts must re-encode to the same bytes,
/// validate, and sign and verify.
pub fn descriptor(data: &[u8]) {
    let Ok(d) = packet::Descriptor::parse(data) else {
        return;
    };
    let bytes = d.to_signed_bytes().expect("a parsed descriptor re-encodes");
    assert_eq!(bytes, data, "parse accepted non-canonical bytes");
    d.validate().expect("a parsed descriptor validates");
    assert_eq!(
        packet::Descriptor::parse(&bytes).expect("re-encoding parses"),
        d
    );
    let k = keys();
    let sig = d.sign(&k.member).expect("a parsed descriptor signs");
    d.verify(&k.member.verifying_key(), &sig)
        .expect("its own signature verifies");
    assert!(d.total_size() >= d.manifest.size);
}

/// Manifest JSON. Whatever parses is valid, re-encodes, and the re-encoding
/// parses to the same manifest; every path passes the sanitizer and no two
/// paths conflict (equal, or one a directory of the other, ignoring case).
pub fn manifest(data: &[u8]) {
    let Ok(m) = packet::Manifest::parse(data) else {
        return;
    };
    m.validate().expect("a parsed manifest validates");
    let bytes = m.to_bytes().expect("a parsed manifest re-encodes");
    assert_eq!(
        packet::Manifest::parse(&bytes).expect("re-encoding parses"),
        m
    );
    let paths: Vec<Vec<String>> = m
        .files
        .iter()
        .map(|f| {
            packet::sanitize_path(&f.path)
                .expect("a parsed manifest's paths are sane")
                .iter()
                .map(|c| c.to_lowercase())
                .collect()
        })
        .collect();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            assert!(
                !a.starts_with(b) && !b.starts_with(a),
                "conflicting paths {a:?} and {b:?} accepted"
            );
        }
    }
}

/// A file name (the bytes as UTF-8, invalid sequences replaced). Accepted
/// names obey every documented rule and split losslessly; error messages
/// never carry a raw control or bidirectional character.
pub fn sanitize(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    match packet::sanitize_path(&name) {
        Ok(parts) => {
            assert_eq!(parts.join("/"), name, "components do not join back");
            assert!(!parts.is_empty() && parts.len() <= packet::MAX_DEPTH);
            assert!(name.len() <= packet::MAX_PATH);
            for c in &parts {
                assert!(
                    !c.is_empty() && c != "." && c != "..",
                    "bad component {c:?}"
                );
                assert!(c.len() <= packet::MAX_COMPONENT);
                assert!(!c.contains('/') && !c.contains('\\'));
                assert!(
                    !c.chars().any(|ch| ch.is_control() || is_bidi(ch)),
                    "control or bidi character accepted in {c:?}"
                );
                assert!(
                    !c.chars().all(|ch| ch == '.' || ch.is_whitespace()),
                    "dots-and-spaces component {c:?} accepted"
                );
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.chars().any(|ch| ch.is_control() || is_bidi(ch)),
                "error message carries a raw control or bidi character: {msg:?}"
            );
        }
    }
}

fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

// ---------------------------------------------------------------------------
// note
// ---------------------------------------------------------------------------

/// Checkpoints, signed notes and verifier keys (the bytes as UTF-8, invalid
/// sequences replaced): the text as a checkpoint body, a verifier key, a
/// signed note and a signed checkpoint under the fixed log key, and as a
/// note body that is signed and opened again.
pub fn note(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    checkpoint_body(&text);
    vkey(&text);
    checkpoint_note(&text);
    // sign_note documents that a body passing check_note_body opens (the
    // margin keeps the signed note itself under MAX_NOTE_SIZE).
    if text.len() + 256 <= tlog::MAX_NOTE_SIZE && tlog::check_note_body(&text).is_ok() {
        let k = keys();
        let signed = tlog::sign_note(&text, &k.log);
        assert_eq!(
            tlog::open_note(&signed, &k.verifier).expect("a signed valid body opens"),
            text
        );
    }
}

fn checkpoint_body(text: &str) {
    if let Ok(cp) = tlog::Checkpoint::parse_body(text) {
        cp.validate().expect("a parsed checkpoint validates");
        assert_eq!(
            tlog::Checkpoint::parse_body(&cp.to_body()).expect("to_body parses"),
            cp
        );
    }
}

fn vkey(text: &str) {
    if let Ok(v) = tlog::NoteVerifier::from_vkey(text) {
        assert_eq!(v.to_vkey(), text, "from_vkey and to_vkey do not round trip");
        assert!(tlog::is_valid_key_name(v.name()));
    }
}

fn checkpoint_note(text: &str) {
    let k = keys();
    if let Ok(body) = tlog::open_note(text, &k.verifier) {
        assert!(
            text.starts_with(&body),
            "opened text is not the note's start"
        );
        tlog::check_note_body(&body).expect("an opened note's text is a valid body");
        checkpoint_body(&body);
    }
    if let Ok(cp) = tlog::open_checkpoint(text, &k.verifier) {
        cp.validate().expect("an opened checkpoint validates");
    }
}

// ---------------------------------------------------------------------------
// audit_entry
// ---------------------------------------------------------------------------

/// Audit entries and records. Decoding is documented as strict: an accepted
/// entry re-encodes to the same bytes; a record splits into such an entry
/// and a 64-byte signature; a decoded entry sealed with the log key opens.
pub fn audit_entry(data: &[u8]) {
    let k = keys();
    let vk = k.log_key.verifying_key();
    if let Ok(e) = audit::Entry::decode(data) {
        assert_eq!(e.encode().expect("a decoded entry re-encodes"), data);
        let sealed = audit::seal(&e, &k.log_key).expect("a decoded entry seals");
        assert_eq!(
            audit::open_record(&sealed, e.index, &vk).expect("a sealed entry opens"),
            e
        );
    }
    if let Ok((e, sig)) = audit::parse_record(data) {
        assert_eq!(sig.len(), audit::RECORD_SIG_LEN);
        let body = &data[..data.len() - audit::RECORD_SIG_LEN];
        assert_eq!(e.encode().expect("a parsed entry re-encodes"), body);
        if let Ok(opened) = audit::open_record(data, e.index, &vk) {
            assert_eq!(opened, e);
        }
        assert!(audit::open_record(data, e.index.wrapping_add(1), &vk).is_err());
    }
}

// ---------------------------------------------------------------------------
// receipt
// ---------------------------------------------------------------------------

/// Review receipts: the bytes as a signed receipt statement (parsed
/// strictly: what parses re-encodes to the same bytes, and signs and
/// verifies), and as a saved receipt file (JSON), whose statement, manifest,
/// log key, checkpoint and log record go on to their own parsers as
/// `mdrop receipt verify` feeds them.
pub fn receipt(data: &[u8]) {
    statement(data);
    let Ok(file) = serde_json::from_slice::<receipt::ReceiptFile>(data) else {
        return;
    };
    statement(file.signed.as_bytes());
    vkey(&file.log.log_key);
    checkpoint_note(&file.log.checkpoint);
    if let Ok(record) = B64.decode(&file.log.record) {
        audit_entry(&record);
    }
    if let Ok(m) = B64.decode(&file.manifest) {
        manifest(&m);
    }
    let _ = B64.decode(&file.signature);
}

fn statement(data: &[u8]) {
    let Ok(s) = receipt::ReceiptStatement::parse(data) else {
        return;
    };
    let bytes = s.to_signed_bytes().expect("a parsed receipt re-encodes");
    assert_eq!(bytes, data, "parse accepted non-canonical bytes");
    assert_eq!(
        receipt::ReceiptStatement::parse(&bytes).expect("re-encoding parses"),
        s
    );
    let k = keys();
    let sig = s.sign(&k.member).expect("a parsed receipt signs");
    sign::verify(&k.member.verifying_key(), &bytes, &sig).expect("its own signature verifies");
}

// ---------------------------------------------------------------------------
// bundle
// ---------------------------------------------------------------------------

/// Audit bundles: the full `bundle::verify` over the bytes with the fixed
/// log key pinned, without a previously seen checkpoint and with a bogus
/// one (which must never be reported consistent), then the low-level
/// header and record readers.
pub fn bundle(data: &[u8]) {
    let k = keys();
    let open = || Ok::<_, io::Error>(Cursor::new(data));
    if let Ok(s) = bundle::verify(open, &k.verifier, None) {
        assert!(s.entries <= s.tree_size, "more entries than the tree holds");
        assert_eq!(s.consistent_with_seen, None);
    }
    let bogus = bundle::Seen {
        size: 1,
        root: [0; 32],
    };
    if let Ok(s) = bundle::verify(open, &k.verifier, Some(bogus)) {
        assert_ne!(
            s.consistent_with_seen,
            Some(true),
            "consistency with a root no tree has was proven"
        );
    }
    let mut r = Cursor::new(data);
    if let Ok(h) = bundle::read_header(&mut r) {
        let with_proof = h.matter.is_some();
        while let Ok(rec) = bundle::read_record(&mut r, with_proof) {
            assert!(rec.record.len() <= bundle::MAX_RECORD);
            assert_eq!(rec.proof.is_some(), with_proof);
        }
    }
}

/// Fuzz target `roster`: a signed-roster statement. Parsing never panics; a
/// parsed statement re-encodes to exactly its input; signed with a fixed
/// key, a `create` starts a roster whose state matches it, and any other
/// statement is refused as a first statement.
pub fn roster(data: &[u8]) {
    let Ok(s) = roster::Statement::parse(data) else {
        return;
    };
    let bytes = s.to_bytes().expect("a parsed statement re-encodes");
    assert_eq!(bytes, data, "parse accepted non-canonical bytes");
    assert_eq!(
        roster::Statement::parse(&bytes).expect("re-encoding parses"),
        s
    );
    let k = keys();
    let mut own = s.clone();
    own.signer_key = k.member.verifying_key().to_bytes();
    let Ok(entry) = own.sign(&k.member) else {
        return;
    };
    match (
        roster::Roster::genesis(&entry, roster::Check::Signatures),
        &own.change,
    ) {
        (Ok(r), roster::Change::Create { title, scope, .. }) => {
            assert_eq!(&r.title, title);
            assert_eq!(&r.scope, scope);
            assert_eq!(r.len, 1);
            assert!(r.members.contains_key(&own.signer));
        }
        (Ok(_), other) => panic!("a {} statement started a roster", other.name()),
        (Err(_), _) => {}
    }
}
