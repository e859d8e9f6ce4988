//! `mdrop-witness init`: a private key file (0600) that is never
//! overwritten, and the verifier key it prints.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

#[test]
fn init_writes_a_private_key_once_and_prints_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("w");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_mdrop-witness"))
            .args(["init", "--name", "witness.example", "--data"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let vkey = String::from_utf8(first.stdout).unwrap();
    matterdrop_common::tlog::cosignature::CosignatureVerifier::from_vkey(vkey.trim())
        .expect("a cosignature/v1 verifier key");
    let mode = std::fs::metadata(data.join("witness-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read(data.join("witness-key")).unwrap();
    let second = run();
    assert!(!second.status.success(), "{second:?}");
    assert_eq!(std::fs::read(data.join("witness-key")).unwrap(), key);
}
