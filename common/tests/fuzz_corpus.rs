//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and the
//! reproducers of past findings (`fuzz/regressions/<target>/`) through the
//! fuzz targets' own entry points, so a regression fails `cargo test`
//! without cargo-fuzz, libFuzzer or a nightly compiler.
//!
//! The entry points are not copied: this test compiles `fuzz/src/lib.rs`
//! itself as a module, the very file every `fuzz/fuzz_targets/*.rs` calls
//! into, so the fuzzer and this test cannot drift apart.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_entry;

/// Runs every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`
/// through `run`, each under `catch_unwind`, and fails naming every file
/// that panicked. Fails too if the corpus directory is missing or empty, so
/// the test cannot pass vacuously.
fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = Vec::new();
    for (dir, required) in [("corpus", true), ("regressions", false)] {
        let d = fuzz.join(dir).join(target);
        let list = match std::fs::read_dir(&d) {
            Ok(list) => list,
            Err(e) if required => panic!("{}: {e}", d.display()),
            Err(_) => continue,
        };
        let mut found: Vec<PathBuf> = list
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        if required {
            assert!(!found.is_empty(), "{} holds no corpus file", d.display());
        }
        found.sort();
        files.extend(found);
    }
    let mut panicked = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "fuzz target {target}: {} of {} corpus files panicked (replay one with \
         `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {target} <file>`):\n{}",
        panicked.len(),
        files.len(),
        panicked.join("\n")
    );
    eprintln!("fuzz target {target}: {} files replayed", files.len());
}

#[test]
fn roster() {
    replay("roster", fuzz_entry::roster);
}

#[test]
fn wire() {
    replay("wire", fuzz_entry::wire);
}

#[test]
fn descriptor() {
    replay("descriptor", fuzz_entry::descriptor);
}

#[test]
fn manifest() {
    replay("manifest", fuzz_entry::manifest);
}

#[test]
fn sanitize() {
    replay("sanitize", fuzz_entry::sanitize);
}

#[test]
fn note() {
    replay("note", fuzz_entry::note);
}

#[test]
fn audit_entry() {
    replay("audit_entry", fuzz_entry::audit_entry);
}

#[test]
fn receipt() {
    replay("receipt", fuzz_entry::receipt);
}

#[test]
fn bundle() {
    replay("bundle", fuzz_entry::bundle);
}

/// Every fuzz target has a replay test above.
#[test]
fn every_target_is_replayed() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    let mut targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "matterdrop-fuzz")
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        [
            "audit_entry",
            "bundle",
            "descriptor",
            "manifest",
            "note",
            "receipt",
            "roster",
            "sanitize",
            "wire"
        ]
    );
}
