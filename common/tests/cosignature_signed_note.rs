//! Matterdrop's checkpoints and witness cosignatures against an
//! implementation this project did not write: Cloudflare's `signed_note`
//! crate (c2sp.org/signed-note, from the azul project), used here only.
//!
//! `signed_note` parses the notes, splits the signature lines, computes key
//! IDs and verifies the log's Ed25519 signature itself. It has no
//! `cosignature/v1` key type, so this test gives it one through its
//! `Verifier`/`Signer` traits, written from c2sp.org/tlog-cosignature: the
//! signature is the 8-byte big-endian timestamp and the Ed25519 signature
//! of `cosignature/v1\ntime <t>\n` followed by the note's text; the key ID
//! is `signed_note::key_id(name, 0x04 ‖ key)`.

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use matterdrop_common::tlog::cosignature::{CosignatureVerifier, Cosigner};
use matterdrop_common::tlog::{self, Checkpoint, NoteSigner};
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};

const ALG_COSIGNATURE_V1: u8 = 0x04;

fn message(text: &[u8], time: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

/// A `cosignature/v1` key for `signed_note`.
struct CosigV1 {
    name: String,
    id: u32,
    key: SigningKey,
    time: u64,
}

impl CosigV1 {
    fn new(name: &str, key: SigningKey, time: u64) -> Self {
        let mut encoded = vec![ALG_COSIGNATURE_V1];
        encoded.extend_from_slice(key.verifying_key().as_bytes());
        Self {
            name: name.to_owned(),
            id: signed_note::key_id(name, &encoded),
            key,
            time,
        }
    }
}

impl Verifier for CosigV1 {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, sig)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        let time = u64::from_be_bytes(*time);
        time != 0
            && self
                .key
                .verifying_key()
                .verify(&message(msg, time), &sig)
                .is_ok()
    }
}

impl signed_note::Signer for CosigV1 {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&message(msg, self.time)).to_bytes());
        Ok(out)
    }
}

fn checkpoint_note() -> (NoteSigner, Checkpoint, String) {
    let log = NoteSigner::new("mdropd.example", SigningKey::from_bytes(&[7; 32])).unwrap();
    let cp = Checkpoint {
        origin: "mdropd.example".into(),
        size: 42,
        root: [5; 32],
    };
    let note = tlog::sign_checkpoint(&cp, &log);
    (log, cp, note)
}

#[test]
fn our_checkpoints_and_cosignatures_verify_with_signed_note() {
    let (log, cp, note) = checkpoint_note();
    let key = SigningKey::from_bytes(&[9; 32]);
    let ours = Cosigner::new("witness.example", key.clone()).unwrap();
    let cosigned = format!("{note}{}", ours.cosign(&cp.to_body(), 1_767_225_600));

    let parsed = Note::from_bytes(cosigned.as_bytes()).expect("signed_note parses our note");
    assert_eq!(parsed.text(), cp.to_body().as_bytes());
    // The log's signature, by signed_note's own Ed25519 verifier made from
    // our verifier-key text.
    let log_verifier = StandardVerifier::new(&log.verifier().to_vkey()).unwrap();
    let (verified, unverified) = parsed
        .verify(&VerifierList::new(vec![Box::new(log_verifier)]))
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(unverified.len(), 1, "the cosignature is another key's");
    // The cosignature: its key ID is the one signed_note computes for a
    // 0x04 key, and it verifies as cosignature/v1.
    let theirs = CosigV1::new("witness.example", key, 0);
    assert_eq!(unverified[0].id(), theirs.id);
    let (verified, _) = parsed
        .verify(&VerifierList::new(vec![Box::new(theirs)]))
        .unwrap();
    assert_eq!(verified[0].name(), "witness.example");
    // Our key text names the same key.
    let v = CosignatureVerifier::from_vkey(&ours.vkey()).unwrap();
    assert_eq!(v.name(), "witness.example");

    // A tampered body fails in signed_note too.
    let tampered = cosigned.replacen("\n42\n", "\n43\n", 1);
    let parsed = Note::from_bytes(tampered.as_bytes()).unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    assert!(
        parsed
            .verify(&VerifierList::new(vec![Box::new(CosigV1::new(
                "witness.example",
                key,
                0
            ))]))
            .is_err()
    );
}

#[test]
fn signed_note_cosignatures_verify_with_ours() {
    let (_, cp, note) = checkpoint_note();
    let key = SigningKey::from_bytes(&[11; 32]);
    let mut parsed = Note::from_bytes(note.as_bytes()).unwrap();
    let signer = CosigV1::new("w2.example", key.clone(), 1_767_225_601);
    parsed.add_sigs(&[&signer]).unwrap();
    let cosigned = String::from_utf8(parsed.to_bytes()).unwrap();
    let ours =
        CosignatureVerifier::from_vkey(&Cosigner::new("w2.example", key).unwrap().vkey()).unwrap();
    assert_eq!(ours.verify_note(&cosigned), Ok(1_767_225_601));
    // And the log's signature is still there and still ours.
    assert!(cosigned.starts_with(&cp.to_body()));
}
