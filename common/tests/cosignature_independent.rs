//! Matterdrop's `cosignature/v1` against an implementation it did not
//! write: `testdata/cosignature.py`, from the C2SP spec with Python's
//! `cryptography` (tests/run installs `python3-cryptography`). Each side
//! verifies what the other signs.

use std::path::Path;
use std::process::Command;

use ed25519_dalek::SigningKey;
use matterdrop_common::tlog::cosignature::{CosignatureVerifier, Cosigner};
use matterdrop_common::tlog::{Checkpoint, NoteSigner, sign_checkpoint};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/cosignature.py")
}

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 (tests/run installs python3-cryptography)")
}

fn checkpoint_note() -> (String, String) {
    let log = NoteSigner::new("mdropd-test", SigningKey::from_bytes(&[1; 32])).unwrap();
    let cp = Checkpoint {
        origin: "mdropd-test".into(),
        size: 42,
        root: [7; 32],
    };
    let note = sign_checkpoint(&cp, &log);
    (cp.to_body(), note)
}

#[test]
fn python_verifies_our_cosignature() {
    let (body, note) = checkpoint_note();
    let w = Cosigner::new("witness-a.example", SigningKey::from_bytes(&[9; 32])).unwrap();
    let cosigned = format!("{note}{}", w.cosign(&body, 1_767_225_600));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("note");
    std::fs::write(&path, &cosigned).unwrap();
    let out = python(&["verify", &w.vkey(), path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 1767225600");
    // And refuses it for another checkpoint.
    std::fs::write(&path, cosigned.replacen("\n42\n", "\n43\n", 1)).unwrap();
    let out = python(&["verify", &w.vkey(), path.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn we_verify_pythons_cosignature() {
    let (body, note) = checkpoint_note();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    std::fs::write(&path, &body).unwrap();
    let seed = "11".repeat(32);
    let out = python(&[
        "sign",
        &seed,
        "witness-b.example",
        path.to_str().unwrap(),
        "1767225601",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let line = lines.next().unwrap();
    let vkey = lines.next().unwrap();
    let v = CosignatureVerifier::from_vkey(vkey).unwrap();
    // The same key made by our code gives the same verifier key.
    let ours = Cosigner::new("witness-b.example", SigningKey::from_bytes(&[0x11; 32])).unwrap();
    assert_eq!(ours.vkey(), vkey);
    let cosigned = format!("{note}{line}\n");
    assert_eq!(v.verify_note(&cosigned), Ok(1_767_225_601));
    assert!(
        v.verify_note(&cosigned.replacen("\n42\n", "\n41\n", 1))
            .is_err()
    );
}
