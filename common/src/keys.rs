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
const SAFETY_CODE_DOMAIN: &[u8] = b"matterdrop/safety-code/v1\n";

/// A principal's safety code: twelve digits in groups of four, derived from
/// both of its public keys, for people to compare by voice or on paper
/// before one of them vouches for the other's keys (`matter add`).
///
/// The code is the first 8 bytes of SHA-256(`matterdrop/safety-code/v1\n`
/// ‖ Ed25519 key ‖ age recipient string), read as a big-endian integer,
/// modulo 10¹²: about 40 bits, so a second key pair with the same code
/// takes about 2⁴⁰ key generations to find.
pub fn safety_code(signing_key: &[u8; 32], age_recipient: &str) -> String {
    let mut h = Sha256::new();
    h.update(SAFETY_CODE_DOMAIN);
    h.update(signing_key);
    h.update(age_recipient.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    let n = u64::from_be_bytes(first) % 1_000_000_000_000;
    let s = format!("{n:012}");
    format!("{} {} {}", &s[0..4], &s[4..8], &s[8..12])
}

/// Normalizes a safety code typed by a person: only its digits count.
pub fn normalize_safety_code(input: &str) -> String {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 12 {
        format!("{} {} {}", &digits[0..4], &digits[4..8], &digits[8..12])
    } else {
        input.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
