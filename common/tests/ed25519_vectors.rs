//! Runs `matterdrop_common::sign::{verify, verifying_key_from_bytes}` over
//! every case of the C2SP/CCTV Ed25519 edge-case vectors
//! (`tests/testdata/ed25519/`, see its README.md and SOURCE.md) and pins
//! exactly which cases are accepted, so that a dependency upgrade that
//! changes acceptance is noticed.

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::sign::{SignatureError, verify, verifying_key_from_bytes};
use serde::Deserialize;

const VECTORS: &str = include_str!("testdata/ed25519/ed25519vectors.json");

/// Case numbers our verifier accepts (computed once, then hardcoded).
///
/// The README says ed25519-dalek's `verify_strict()` rejects every
/// `low_order_A` and `low_order_R` vector "and by extension all other flags
/// except `low_order_component_A` and `low_order_component_R`". Our verifier
/// is `verify_strict` plus a canonical-encoding check on the public key and,
/// in `verifying_key_from_bytes`, a weak-key (small-order `A`) check; on these
/// vectors the extra checks change nothing, because every `non_canonical_A`
/// key here is also `low_order_A`. So the accepted set is exactly the cases
/// whose flags are a subset of {`low_order_component_A`,
/// `low_order_component_R`} (including case 305, which has no flags): we
/// reject all of `low_order_A`, `low_order_R`, `non_canonical_A`,
/// `non_canonical_R`, `low_order_residue` and `reencoded_k`. That relation is
/// also asserted below, independently of this list.
const ACCEPTED: &[u64] = &[
    7, 29, 50, 117, 139, 161, 182, 249, 305, 411, 425, 438, 465, 473, 481, 489, 497, 511, 525, 538,
    565, 573, 581, 589, 597, 611, 625, 638, 665, 673, 681, 689, 697, 711, 725, 738, 765, 773, 781,
    789, 797, 832, 899,
];

/// Flags a case may carry and still be accepted.
const TOLERATED_FLAGS: &[&str] = &["low_order_component_A", "low_order_component_R"];

#[derive(Deserialize)]
struct Case {
    number: u64,
    key: String,
    sig: String,
    msg: String,
    flags: Option<Vec<String>>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[test]
fn ed25519_vectors_acceptance_is_pinned() {
    let cases: Vec<Case> = serde_json::from_str(VECTORS).expect("parse ed25519vectors.json");
    let in_file = serde_json::from_str::<Vec<serde_json::Value>>(VECTORS)
        .expect("parse ed25519vectors.json")
        .len();
    assert!(in_file > 0);

    let mut seen = 0usize;
    let mut numbers = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    // Same, but with the key parsed leniently (ed25519-dalek's `from_bytes`,
    // no canonicity or weak-key check), exercising `verify` on its own.
    let mut accepted_by_verify = BTreeSet::new();

    for case in &cases {
        seen += 1;
        assert!(
            numbers.insert(case.number),
            "duplicate case {}",
            case.number
        );
        let key = unhex(&case.key);
        let sig = unhex(&case.sig);
        assert_eq!(key.len(), 32, "case {}", case.number);
        assert_eq!(sig.len(), 64, "case {}", case.number);
        let msg = case.msg.as_bytes();
        let flags = case.flags.clone().unwrap_or_default();
        let has = |f: &str| flags.iter().any(|x| x == f);

        let parsed = verifying_key_from_bytes(&key);
        // Keys are refused exactly when A is a small-order point (every
        // non-canonical A in this file is one).
        assert_eq!(
            parsed.is_err(),
            has("low_order_A") || has("non_canonical_A"),
            "case {}: {parsed:?} {flags:?}",
            case.number
        );
        if let Err(e) = &parsed {
            let expected = if has("non_canonical_A") {
                SignatureError::KeyEncoding
            } else {
                SignatureError::WeakKey
            };
            assert_eq!(*e, expected, "case {}", case.number);
        }
        if parsed
            .as_ref()
            .is_ok_and(|vk| verify(vk, msg, &sig).is_ok())
        {
            accepted.insert(case.number);
        }

        let lax: [u8; 32] = key.as_slice().try_into().expect("32 bytes");
        if VerifyingKey::from_bytes(&lax).is_ok_and(|vk| verify(&vk, msg, &sig).is_ok()) {
            accepted_by_verify.insert(case.number);
        }

        let tolerated = flags.iter().all(|f| TOLERATED_FLAGS.contains(&f.as_str()));
        assert_eq!(
            accepted.contains(&case.number),
            tolerated,
            "case {} flags {flags:?}",
            case.number
        );
    }

    assert_eq!(seen, in_file);
    assert_eq!(seen, cases.len());
    assert_eq!(seen, 914, "ed25519vectors.json changed");
    assert_eq!(
        accepted,
        ACCEPTED.iter().copied().collect::<BTreeSet<_>>(),
        "accepted ed25519 vectors changed"
    );
    assert_eq!(accepted_by_verify, accepted);
}
