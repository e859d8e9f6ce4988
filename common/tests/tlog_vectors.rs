//! Runs every inclusion and consistency proof vector of
//! transparency-dev/merkle (tests/testdata/tlog, see SOURCE.md there)
//! against `matterdrop_common::tlog`.
//!
//! The vectors carry hashes as base64 byte strings, some of them not 32
//! bytes long (garbage proof elements, "don't care" roots, empty values).
//! Our API takes `[u8; 32]`, so:
//! - a leaf hash that is not 32 bytes cannot be passed at all: the typed
//!   API rejects it by construction, which counts as the error the
//!   reference implementation returns for it (it checks the length);
//! - any other field that is not 32 bytes is mapped to
//!   `SHA-256(tag || value)`, which keeps equal values equal and never
//!   equals a real tree hash, as a byte string of the wrong length never
//!   does in the reference implementation.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use matterdrop_common::tlog::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn decode(b64: &str, file: &Path) -> Vec<u8> {
    STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{}: bad base64 {b64:?}: {e}", file.display()))
}

/// Exact 32-byte values as they are, other lengths mapped out of the space
/// of real hashes (see the module documentation).
fn to_hash(bytes: &[u8]) -> Hash {
    match <Hash>::try_from(bytes) {
        Ok(h) => h,
        Err(_) => {
            let mut h = Sha256::new();
            h.update(b"tlog-vectors: value that is not 32 bytes\0");
            h.update(bytes);
            h.finalize().into()
        }
    }
}

fn proof_hashes(proof: Option<&[String]>, file: &Path) -> Vec<Hash> {
    proof
        .unwrap_or_default()
        .iter()
        .map(|p| to_hash(&decode(p, file)))
        .collect()
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// The leaves of the RFC 6962 test tree, from which the vectors were made.
fn rfc_leaves() -> Vec<Hash> {
    let entries: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    entries.iter().map(|e| leaf_hash(e)).collect()
}

#[derive(Default)]
struct Counts {
    inclusion: usize,
    consistency: usize,
    want_err: usize,
    want_ok: usize,
    proofs_regenerated: usize,
}

fn run_inclusion(file: &Path, text: &str, leaves: &[Hash], counts: &mut Counts) {
    let v: InclusionVector = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{}: not an inclusion vector: {e}", file.display()));
    let proof = proof_hashes(v.proof.as_deref(), file);
    let root_hash = to_hash(&decode(&v.root, file));
    let leaf = <Hash>::try_from(decode(&v.leaf_hash, file).as_slice());
    let result = match &leaf {
        Ok(leaf) => verify_inclusion(leaf, v.leaf_idx, v.tree_size, &proof, &root_hash)
            .map_err(|e| e.to_string()),
        Err(_) => Err("leaf hash is not 32 bytes".to_owned()),
    };
    assert_eq!(
        result.is_err(),
        v.want_err,
        "{} ({}): got {result:?}",
        file.display(),
        v.desc
    );
    // A valid proof over the RFC 6962 test tree must be what we generate.
    if let Ok(leaf) = leaf {
        let size = v.tree_size as usize;
        if !v.want_err
            && size <= leaves.len()
            && root(&leaves[..size]) == root_hash
            && leaves[v.leaf_idx as usize] == leaf
        {
            assert_eq!(
                inclusion_proof(&leaves[..size], v.leaf_idx).unwrap(),
                proof,
                "{}",
                file.display()
            );
            counts.proofs_regenerated += 1;
        }
    }
    counts.inclusion += 1;
    if v.want_err {
        counts.want_err += 1;
    } else {
        counts.want_ok += 1;
    }
}

fn run_consistency(file: &Path, text: &str, leaves: &[Hash], counts: &mut Counts) {
    let v: ConsistencyVector = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{}: not a consistency vector: {e}", file.display()));
    let proof = proof_hashes(v.proof.as_deref(), file);
    let root1 = to_hash(&decode(&v.root1, file));
    let root2 = to_hash(&decode(&v.root2, file));
    let result = verify_consistency(v.size1, v.size2, &proof, &root1, &root2);
    assert_eq!(
        result.is_err(),
        v.want_err,
        "{} ({}): got {result:?}",
        file.display(),
        v.desc
    );
    let (s1, s2) = (v.size1 as usize, v.size2 as usize);
    if !v.want_err
        && s2 <= leaves.len()
        && root(&leaves[..s1]) == root1
        && root(&leaves[..s2]) == root2
    {
        assert_eq!(
            consistency_proof(&leaves[..s2], v.size1).unwrap(),
            proof,
            "{}",
            file.display()
        );
        counts.proofs_regenerated += 1;
    }
    counts.consistency += 1;
    if v.want_err {
        counts.want_err += 1;
    } else {
        counts.want_ok += 1;
    }
}

#[test]
fn all_transparency_dev_vectors() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/tlog");
    let mut files = Vec::new();
    json_files(&base, &mut files);
    files.sort();
    let leaves = rfc_leaves();
    let mut counts = Counts::default();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let kind = file
            .strip_prefix(&base)
            .unwrap()
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .to_owned();
        match kind.as_str() {
            "inclusion" => run_inclusion(file, &text, &leaves, &mut counts),
            "consistency" => run_consistency(file, &text, &leaves, &mut counts),
            other => panic!("{}: unknown vector kind {other}", file.display()),
        }
    }
    println!(
        "ran {} inclusion + {} consistency vectors ({} expected to fail, {} to pass, {} proofs regenerated)",
        counts.inclusion,
        counts.consistency,
        counts.want_err,
        counts.want_ok,
        counts.proofs_regenerated
    );
    assert!(
        !files.is_empty(),
        "no vector files under {}",
        base.display()
    );
    assert_eq!(counts.inclusion + counts.consistency, files.len());
    assert!(counts.inclusion > 0 && counts.consistency > 0);
    assert!(counts.want_err > 0 && counts.want_ok > 0);
    assert!(counts.proofs_regenerated > 0);
}
