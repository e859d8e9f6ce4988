//! Key fingerprints as people compare them.
//!
//! A fingerprint is `SHA256:` followed by the unpadded standard base64 of the
//! SHA-256 of the key's DER SubjectPublicKeyInfo, the same shape OpenSSH
//! prints. The server's TLS key and every user's Ed25519 key use it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use sha2::{Digest, Sha256};

/// Fingerprint of a DER SubjectPublicKeyInfo.
pub fn spki_fingerprint(spki_der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(spki_der))
    )
}

/// DER SubjectPublicKeyInfo of an Ed25519 key.
pub fn ed25519_spki(key: &VerifyingKey) -> Vec<u8> {
    // Encoding a 32-byte key into a fixed SPKI template cannot fail; fall back
    // to the RFC 8410 layout by hand rather than panicking if it ever did.
    match key.to_public_key_der() {
        Ok(doc) => doc.as_bytes().to_vec(),
        Err(_) => {
            let mut v = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            v.extend_from_slice(key.as_bytes());
            v
        }
    }
}

/// Fingerprint of an Ed25519 public key.
pub fn ed25519_fingerprint(key: &VerifyingKey) -> String {
    spki_fingerprint(&ed25519_spki(key))
}

/// Normalizes a fingerprint typed by a person: surrounding whitespace is
/// ignored and the `SHA256:` prefix is optional.
pub fn normalize_fingerprint(input: &str) -> String {
    let t = input.trim();
    let body = t.strip_prefix("SHA256:").unwrap_or(t);
    format!("SHA256:{body}")
}

/// Domain separation for [`safety_code`].
const SAFETY_CODE_DOMAIN: &[u8] = b"matterdrop/safety-code/v2\n";

/// Iterations of SHA-256 in [`safety_code`]: each guess of an attacker
/// searching for keys with a given code costs this many hashes.
pub const SAFETY_CODE_ROUNDS: u32 = 1 << 14;

/// Digits in a safety code.
pub const SAFETY_CODE_DIGITS: usize = 20;

/// A principal's safety code: twenty digits in groups of four, derived from
/// its id and both of its public keys, for people to compare by voice or on
/// paper before one of them vouches for the other's keys (`matter add`).
///
/// h₀ = SHA-256(`matterdrop/safety-code/v2\n` ‖ len(id) ‖ id ‖ Ed25519 key
/// ‖ age recipient), hᵢ₊₁ = SHA-256(hᵢ ‖ h₀) for [`SAFETY_CODE_ROUNDS`]
/// rounds; the code is the first 16 bytes of the last hash, as a big-endian
/// integer, modulo 10²⁰ (`len(id)` is one byte). A server that wants an
/// attorney to vouch for keys of its own under someone's id must find keys
/// whose code matches: about 2⁶⁶ guesses of 2¹⁴ hashes each, for one id at
/// a time (the id is in the hash). Whoever holds the server need not know
/// the private key for the public keys it tries, which is why the code is
/// this long.
pub fn safety_code(principal: &str, signing_key: &[u8; 32], age_recipient: &str) -> String {
    let id = principal.as_bytes();
    let mut h = Sha256::new();
    h.update(SAFETY_CODE_DOMAIN);
    h.update([u8::try_from(id.len()).unwrap_or(u8::MAX)]);
    h.update(id);
    h.update(signing_key);
    h.update(age_recipient.as_bytes());
    let first: [u8; 32] = h.finalize().into();
    let mut cur = first;
    for _ in 0..SAFETY_CODE_ROUNDS {
        let mut h = Sha256::new();
        h.update(cur);
        h.update(first);
        cur = h.finalize().into();
    }
    let mut top = [0u8; 16];
    top.copy_from_slice(&cur[..16]);
    let n = u128::from_be_bytes(top) % 10u128.pow(SAFETY_CODE_DIGITS as u32);
    let digits = format!("{n:020}");
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Normalizes a safety code typed by a person: only its digits count, in
/// groups of four.
pub fn normalize_safety_code(input: &str) -> String {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == SAFETY_CODE_DIGITS {
        digits
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        input.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_codes_bind_the_id_and_both_keys() {
        let k = [7u8; 32];
        let c = safety_code("bob@lpo-1", &k, "age1abc");
        assert_eq!(c.len(), 24, "{c}");
        assert_eq!(c.split(' ').count(), 5);
        assert_eq!(c, safety_code("bob@lpo-1", &k, "age1abc"));
        assert_ne!(c, safety_code("bob@lpo-2", &k, "age1abc"));
        assert_ne!(c, safety_code("bob@lpo-1", &[8; 32], "age1abc"));
        assert_ne!(c, safety_code("bob@lpo-1", &k, "age1abd"));
        assert_eq!(normalize_safety_code(&c.replace(' ', "")), c);
        assert_eq!(normalize_safety_code(&format!(" {c}\n")), c);
    }
    use ed25519_dalek::SigningKey;

    #[test]
    fn spki_layout_matches_rfc8410() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let spki = ed25519_spki(&key);
        assert_eq!(spki.len(), 44);
        assert_eq!(
            &spki[..12],
            &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
            ]
        );
        assert_eq!(&spki[12..], key.as_bytes());
    }

    #[test]
    fn fingerprint_shape() {
        let fp = spki_fingerprint(b"abc");
        // SHA-256("abc") = ba7816bf...
        assert_eq!(fp, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
        assert_eq!(
            normalize_fingerprint(" ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0\n"),
            fp
        );
        assert_eq!(normalize_fingerprint(&fp), fp);
    }
}
