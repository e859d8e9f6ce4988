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
