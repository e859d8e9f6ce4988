//! `mdrop` as a program: usage errors and missing state.
//! (Also makes `cargo test` build the binary the end-to-end tests run.)

use std::process::Command;

fn mdrop(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mdrop"));
    c.arg("--home").arg(home);
    c
}

#[test]
fn usage_and_missing_state() {
    let tmp = tempfile::tempdir().unwrap();
    let out = mdrop(tmp.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["keygen", "enroll", "whoami", "admin"] {
        assert!(help.contains(cmd), "help lacks {cmd}");
    }
    let out = mdrop(tmp.path()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Not enrolled yet: a usage error that says what to do.
    let out = mdrop(tmp.path())
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keygen"));
}
