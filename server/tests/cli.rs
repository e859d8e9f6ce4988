//! `mdropd` as a program: init output, file modes, offline invites.
//! (Also makes `cargo test` build the binary the end-to-end tests run.)

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

fn mdropd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mdropd"))
}

#[test]
fn init_prints_fingerprint_and_invite_and_protects_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let out = mdropd()
        .args(["init", "--json", "--listen", "127.0.0.1:4999", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(v["invite"].as_str().unwrap().starts_with("mdi1_"));
    assert_eq!(v["listen"], "127.0.0.1:4999");
    for f in ["tls/server.key", "log-key.pem"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // The invite token itself is never stored, only its hash.
    let token = v["invite"].as_str().unwrap();
    let mut found = false;
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        found |= bytes.windows(token.len()).any(|w| w == token.as_bytes());
    }
    assert!(!found, "invite token stored in clear");

    // A second init refuses to clobber the directory.
    let again = mdropd()
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Offline invites: admin invites need no organization; unknown orgs are refused.
    let inv = mdropd()
        .args(["invite", "--admin", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(inv.status.success(), "{inv:?}");
    let v: serde_json::Value = serde_json::from_slice(&inv.stdout).unwrap();
    assert!(v["invite"].as_str().unwrap().starts_with("mdi1_"));
    let bad = mdropd()
        .args(["invite", "--org", "nope", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
