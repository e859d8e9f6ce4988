//! The C2SP/CCTV age test vectors (tests/testdata/age, see SOURCE.md there)
//! against the pull path's decrypt step, `commands::packets::decrypt_file`.
//!
//! Applies to X25519 and hybrid (`mlkem768x25519`) identities and the
//! STREAM payload: vectors that carry a passphrase or have a header key the
//! README does not define are excluded and counted (the copy here keeps
//! only the applicable ones, so those counts are normally zero). An
//! armored vector (only `armor_hybrid` is kept) is de-armored by the age
//! crate's reader first, since the pull path never sees armor. A vector
//! with no identity at all is decrypted with a fresh random one: it can
//! only expect a failure before any stanza is tried. A vector with several
//! identities is tried with all of them at once, as a user whose identity
//! file holds a classic and a hybrid key.
//!
//! Every failure must be `Fail` with exit code 4, name the vector's failure
//! kind (`(no match)`, `(header failure)`, …) and leave no output file, even
//! for `payload failure`, where age has released some plaintext first.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use matterdrop::commands::packets::decrypt_file;
use matterdrop::error::exit;
use matterdrop_common::agekey::AgeIdentity;
use sha2::{Digest as _, Sha256};

/// Vectors decrypted by this test; change it only with the testdata.
const INCLUDED: usize = 86;
/// Of those, the ones that expect `success`.
const SUCCEEDED: usize = 19;
/// Of those, the hybrid (`mlkem768x25519`) ones.
const HYBRID: usize = 19;

const KNOWN_KEYS: &[&str] = &[
    "expect",
    "payload",
    "identity",
    "passphrase",
    "armored",
    "compressed",
    "file key",
    "comment",
];

const FAILURES: &[&str] = &[
    "no match",
    "HMAC failure",
    "header failure",
    "payload failure",
    "armor failure",
];

#[derive(Debug)]
struct Vector {
    name: String,
    expect: String,
    payload: Option<[u8; 32]>,
    identities: Vec<String>,
    armored: bool,
    body: Vec<u8>,
}

fn unhex32(s: &str) -> [u8; 32] {
    assert_eq!(s.len(), 64, "bad payload hash {s:?}");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .unwrap_or_else(|_| panic!("bad payload hash {s:?}"));
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses one vector file: `Ok` if it applies, `Err(reason)` if excluded.
fn parse(name: &str, bytes: &[u8]) -> Result<Vector, &'static str> {
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{name}: no empty line after the header"));
    let header = std::str::from_utf8(&bytes[..split])
        .unwrap_or_else(|_| panic!("{name}: header is not UTF-8"));
    let mut body = bytes[split + 2..].to_vec();
    let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in header.lines() {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: bad header line {line:?}"));
        keys.entry(k).or_default().push(v);
    }
    // The README: files with unknown keys should be ignored.
    if keys.keys().any(|k| !KNOWN_KEYS.contains(k)) {
        return Err("unknown header key");
    }
    let armored = match keys.get("armored").map(Vec::as_slice) {
        None => false,
        Some(["yes"]) => true,
        Some(_) => return Err("unknown armored value"),
    };
    if keys.contains_key("passphrase") {
        return Err("passphrase");
    }
    let identities: Vec<String> = keys
        .get("identity")
        .map(|v| v.iter().map(|s| (*s).to_owned()).collect())
        .unwrap_or_default();
    if identities
        .iter()
        .any(|i| !i.starts_with("AGE-SECRET-KEY-1") && !i.starts_with("AGE-SECRET-KEY-PQ-1"))
    {
        return Err("unknown identity type");
    }
    match keys.get("compressed").map(Vec::as_slice) {
        None => {}
        Some(["zlib"]) => {
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .unwrap_or_else(|e| panic!("{name}: zlib: {e}"));
            body = plain;
        }
        Some(_) => return Err("unknown compression"),
    }
    let expect = match keys.get("expect").map(Vec::as_slice) {
        Some([e]) => (*e).to_owned(),
        other => panic!("{name}: expect must appear once, got {other:?}"),
    };
    assert!(
        expect == "success" || FAILURES.contains(&expect.as_str()),
        "{name}: unknown expectation {expect:?}"
    );
    let payload = match keys.get("payload").map(Vec::as_slice) {
        None => None,
        Some([p]) => Some(unhex32(p)),
        Some(_) => panic!("{name}: several payload lines"),
    };
    if expect == "success" {
        assert!(payload.is_some(), "{name}: success without a payload hash");
    }
    Ok(Vector {
        name: name.to_owned(),
        expect,
        payload,
        identities,
        armored,
        body,
    })
}

/// One decryption attempt: `Ok(sha)` or `Err(message)`. Checks the
/// invariants that hold whatever the vector expects, into `problems`.
fn attempt(
    v: &Vector,
    src: &Path,
    dst: &Path,
    ids: &[AgeIdentity],
    problems: &mut Vec<String>,
) -> Result<[u8; 32], String> {
    assert!(!dst.exists());
    match decrypt_file(src, dst, ids) {
        Ok((sha, size)) => {
            match fs::read(dst) {
                Ok(out) => {
                    let file_sha: [u8; 32] = Sha256::digest(&out).into();
                    if file_sha != sha || out.len() as u64 != size {
                        problems.push(format!(
                            "{}: returned sha {} size {size}, output file has sha {} size {}",
                            v.name,
                            hex(&sha),
                            hex(&file_sha),
                            out.len()
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: Ok but no output file: {e}", v.name)),
            }
            let _ = fs::remove_file(dst);
            Ok(sha)
        }
        Err(fail) => {
            if fail.code != exit::VERIFY {
                problems.push(format!(
                    "{}: failed with code {} (want {}): {}",
                    v.name,
                    fail.code,
                    exit::VERIFY,
                    fail.message
                ));
            }
            let kind = format!("({})", v.expect);
            if v.expect != "success" && !fail.message.contains(&kind) {
                problems.push(format!(
                    "{}: failed as {:?}, want the kind {kind}",
                    v.name, fail.message
                ));
            }
            if dst.exists() {
                problems.push(format!(
                    "{}: failed ({}) but left the output file behind",
                    v.name, fail.message
                ));
                let _ = fs::remove_file(dst);
            }
            Err(fail.message)
        }
    }
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/age")
}

/// What became of one vector file.
#[derive(Debug)]
enum Outcome {
    Excluded(&'static str),
    Succeeded,
    FailedAsExpected,
    /// Disagrees with its expectation (the messages say how).
    Mismatch,
}

/// Runs one vector file: its outcome, whether it has several identities,
/// and every problem found (empty unless the outcome is `Mismatch`).
/// What became of one vector: its outcome, whether it has several
/// identities, the problems found, whether it is a hybrid vector.
type Ran = (Outcome, bool, Vec<String>, bool);

fn run_vector(name: &str, tmp: &Path) -> Ran {
    let bytes = fs::read(vector_dir().join(name)).expect("read vector");
    let v = match parse(name, &bytes) {
        Ok(v) => v,
        Err(reason) => return (Outcome::Excluded(reason), false, Vec::new(), false),
    };
    let ids: Vec<AgeIdentity> = if v.identities.is_empty() {
        vec![AgeIdentity::generate_classic()]
    } else {
        v.identities
            .iter()
            .map(|s| AgeIdentity::parse(s).unwrap_or_else(|e| panic!("{name}: identity: {e}")))
            .collect()
    };
    let mut problems = Vec::new();
    let mut oks = Vec::new();
    let mut errs = Vec::new();
    let body = if v.armored {
        let mut plain = Vec::new();
        match age::armor::ArmoredReader::new(&v.body[..]).read_to_end(&mut plain) {
            Ok(_) => plain,
            Err(e) if v.expect == "armor failure" => {
                let _ = e;
                return (Outcome::FailedAsExpected, false, Vec::new(), false);
            }
            Err(e) => {
                return (
                    Outcome::Mismatch,
                    false,
                    vec![format!("{name}: armor: {e}")],
                    false,
                );
            }
        }
    } else {
        v.body.clone()
    };
    let src = tmp.join(format!("{name}.age"));
    fs::write(&src, &body).expect("write vector body");
    let dst = tmp.join(format!("{name}.out"));
    match attempt(&v, &src, &dst, &ids, &mut problems) {
        Ok(sha) => oks.push(sha),
        Err(e) => errs.push(e),
    }
    let _ = fs::remove_file(&src);
    let hybrid = v
        .identities
        .iter()
        .any(|i| i.starts_with("AGE-SECRET-KEY-PQ-1"));

    let ok = if v.expect == "success" {
        let want = v.payload.expect("checked in parse");
        if oks.is_empty() {
            problems.push(format!("{name}: expected success, got errors {errs:?}"));
        }
        for sha in oks.iter().filter(|s| **s != want) {
            problems.push(format!(
                "{name}: decrypted to sha {}, want {}",
                hex(sha),
                hex(&want)
            ));
        }
        oks.contains(&want)
    } else {
        if let Some(sha) = oks.first() {
            problems.push(format!(
                "{name}: expected {:?}, but decryption succeeded (sha {})",
                v.expect,
                hex(sha)
            ));
        }
        oks.is_empty()
    };
    let outcome = match (ok && problems.is_empty(), v.expect == "success") {
        (false, _) => Outcome::Mismatch,
        (true, true) => Outcome::Succeeded,
        (true, false) => Outcome::FailedAsExpected,
    };
    (outcome, ids.len() > 1, problems, hybrid)
}

#[test]
fn cctv_age_vectors() {
    assert_eq!(exit::VERIFY, 4);
    let mut names: Vec<String> = fs::read_dir(vector_dir())
        .expect("tests/testdata/age")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("name")
        })
        .filter(|n| !matches!(n.as_str(), "LICENSE" | "README.md" | "SOURCE.md"))
        .collect();
    names.sort();

    // One thread per vector: the multi-megabyte STREAM vectors take seconds
    // each in a debug build.
    let tmp = tempfile::tempdir().expect("tempdir");
    let results: Vec<Ran> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| s.spawn(|| run_vector(name, tmp.path())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("vector thread panicked"))
            .collect()
    });

    let mut excluded: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut problems = Vec::new();
    let (mut included, mut succeeded, mut failed, mut mismatched, mut multi, mut hybrid) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for (name, (outcome, several, found, pq)) in names.iter().zip(results) {
        match outcome {
            Outcome::Excluded(reason) => {
                excluded.entry(reason).or_default().push(name);
                continue;
            }
            Outcome::Succeeded => succeeded += 1,
            Outcome::FailedAsExpected => failed += 1,
            Outcome::Mismatch => mismatched += 1,
        }
        included += 1;
        multi += usize::from(several);
        hybrid += usize::from(pq);
        problems.extend(found);
    }

    let excl: Vec<String> = excluded
        .iter()
        .map(|(r, n)| format!("{r}: {}", n.len()))
        .collect();
    println!(
        "age vectors: {} files, {included} included ({hybrid} hybrid, {multi} with several identities), \
         {succeeded} succeeded, {failed} failed as expected, {mismatched} mismatched, \
         excluded: [{}]",
        names.len(),
        excl.join(", ")
    );
    for (reason, list) in &excluded {
        println!("  excluded ({reason}): {}", list.join(" "));
    }

    assert!(
        problems.is_empty(),
        "{mismatched} vector(s) disagree with their expectation:\n{}",
        problems.join("\n")
    );
    assert!(included > 0, "no applicable vector found");
    assert_eq!(included, INCLUDED, "included vector count changed");
    assert_eq!(succeeded, SUCCEEDED, "success vector count changed");
    assert_eq!(hybrid, HYBRID, "hybrid vector count changed");
    assert_eq!(succeeded + failed, included);
}
