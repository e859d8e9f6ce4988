//! Canonical signed messages.
//!
//! Every Matterdrop signature is a plain Ed25519 signature (RFC 8032, "pure"
//! Ed25519, no context, no prehash) over a *canonical message*: a byte string
//! built by [`Canonical`] that starts with a per-kind domain-separation prefix
//! ([`Domain`]). Verification always uses ed25519-dalek's `verify_strict`
//! (non-canonical or small-order `R`, small-order public keys and
//! non-canonical `S` are rejected), and public keys are additionally required
//! to be canonical point encodings ([`verifying_key_from_bytes`], [`verify`]).
//!
//! # Canonical message format (version 1)
//!
//! A canonical message is human-readable ASCII text, so that an auditor can
//! read the exact bytes a receipt carries. It is easy to re-implement without
//! Matterdrop:
//!
//! ```text
//! message = prefix *field
//! prefix  = "matterdrop/" kind "/v" version LF   ; exact bytes, see Domain::prefix
//! field   = name "=" value LF
//! name    = %x61-7A *63(%x61-7A / %x30-39 / "-")  ; a-z first, then a-z 0-9 "-"
//! value   = *(%x20-7E)                           ; printable ASCII, may be empty
//! LF      = %x0A
//! ```
//!
//! * The message is the prefix line followed by one line per field, in the
//!   fixed order defined by the message kind, each line terminated by a single
//!   LF (no CR), including the last one. There is nothing else: no header, no
//!   trailing blank line, no whitespace around `=`.
//! * A field name appears at most once per message.
//! * Values are never escaped, trimmed or normalised. A string value must
//!   consist only of printable ASCII bytes `0x20..=0x7E` (space through `~`);
//!   anything else (LF, CR, TAB, other control characters, DEL, any non-ASCII
//!   byte) makes the encoder return an error instead of producing a message.
//!   Because names cannot contain `=`, a line splits unambiguously at its
//!   first `=`; values may contain `=`.
//! * Integers ([`Canonical::u64`]) are unsigned decimal with no sign and no
//!   leading zeros (`0` for zero).
//! * Byte strings ([`Canonical::bytes`]) and SHA-256 hashes
//!   ([`Canonical::hash`]) are lowercase hexadecimal, two digits per byte
//!   (a hash is always exactly 64 digits; an empty byte string is empty).
//!
//! The signature is Ed25519 over these exact bytes. A verifier that only has
//! the message bytes, the 64-byte signature and the 32-byte public key can
//! check it with any strict RFC 8032 implementation, and read the fields by
//! splitting on LF and then on the first `=`.
//!
//! For example, the acknowledgment ([`AckStatement`]) of principal
//! `alice@provider-b` for version 2 of matter `2026-PI-0042` is:
//!
//! ```text
//! matterdrop/ack/v1
//! matter=2026-PI-0042
//! version=2
//! text-sha256=<64 lowercase hex digits: SHA-256 of the acknowledgment text>
//! principal=alice@provider-b
//! signed-at=1767225600
//! ```
//!
//! (`signed-at` is Unix time in seconds, UTC.)

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Maximum length in bytes of a field name.
pub const MAX_FIELD_NAME_LEN: usize = 64;

/// The kind of a signed message; selects its domain-separation prefix.
///
/// Each kind has a distinct prefix line, and no prefix is a prefix of
/// another, so a signature made for one kind can never verify as another.
/// Prefixes are never reused or reassigned: if the encoding of a kind
/// changes, it gets a new prefix (for example `…/v2\n`) and the old one stays
/// retired, never meaning anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A provider member's confidentiality acknowledgment of a matter.
    Ack,
    /// A packet descriptor, signed by its sender.
    PacketDescriptor,
    /// A deliverable descriptor, signed by its sender.
    DeliverableDescriptor,
    /// An attorney's review receipt for a deliverable.
    Receipt,
    /// An audit log entry.
    AuditEntry,
    /// A statement of a matter's signed roster.
    Roster,
    /// A recipient's confirmation that it received and verified a packet.
    Delivery,
    /// A reader's re-share of a packet to a new reader (new age headers).
    Share,
    /// A member's attestation that it destroyed its local copies of a
    /// matter's files (`mdrop purge`).
    Destruction,
}

impl Domain {
    /// Every domain, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::Ack,
        Self::PacketDescriptor,
        Self::DeliverableDescriptor,
        Self::Receipt,
        Self::AuditEntry,
        Self::Roster,
        Self::Delivery,
        Self::Share,
        Self::Destruction,
    ];

    /// The exact prefix line (including its terminating `\n`) that starts
    /// every canonical message of this kind.
    pub fn prefix(&self) -> &'static [u8] {
        match self {
            Self::Ack => b"matterdrop/ack/v1\n",
            Self::PacketDescriptor => b"matterdrop/packet-descriptor/v1\n",
            Self::DeliverableDescriptor => b"matterdrop/deliverable-descriptor/v1\n",
            Self::Receipt => b"matterdrop/receipt/v1\n",
            Self::AuditEntry => b"matterdrop/audit-entry/v1\n",
            Self::Roster => b"matterdrop/roster/v1\n",
            Self::Delivery => b"matterdrop/delivery/v1\n",
            Self::Share => b"matterdrop/share/v1\n",
            Self::Destruction => b"matterdrop/destruction/v1\n",
        }
    }
}

/// Why a signature or public key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is not exactly [`SIGNATURE_LEN`] bytes long.
    #[error("signature must be {SIGNATURE_LEN} bytes, got {0}")]
    SignatureLength(usize),
    /// The public key is not exactly [`PUBLIC_KEY_LEN`] bytes long.
    #[error("public key must be {PUBLIC_KEY_LEN} bytes, got {0}")]
    KeyLength(usize),
    /// The public key is not a canonical encoding of a curve point.
    #[error("public key is not a canonical ed25519 point encoding")]
    KeyEncoding,
    /// The public key is a small-order ("weak") point.
    #[error("public key is a weak (small-order) ed25519 key")]
    WeakKey,
    /// The signature does not verify for this key and message.
    #[error("signature verification failed")]
    Invalid,
}

/// Why a canonical message could not be built, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A field name does not match `[a-z][a-z0-9-]{0,63}`.
    #[error("invalid field name {0:?}")]
    FieldName(String),
    /// A field name was used twice in one message.
    #[error("duplicate field {0:?}")]
    DuplicateField(String),
    /// A string value contains a byte outside printable ascii (0x20..=0x7e).
    #[error(
        "field {field:?} contains byte 0x{byte:02x} at offset {offset}, only printable ascii is allowed"
    )]
    FieldValue {
        /// The field name.
        field: String,
        /// The offending byte.
        byte: u8,
        /// Its offset within the value.
        offset: usize,
    },
    /// A field that must not be empty is empty.
    #[error("field {0:?} must not be empty")]
    EmptyField(String),
    /// The signature or key was rejected.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Builder for a canonical message (see the [module docs](self) for the
/// exact format).
///
/// ```
/// # use matterdrop_common::sign::{Canonical, Domain};
/// let mut c = Canonical::new(Domain::Receipt);
/// c.str("deliverable", "d-42")?.u64("round", 1)?;
/// assert_eq!(c.finish(), b"matterdrop/receipt/v1\ndeliverable=d-42\nround=1\n");
/// # Ok::<(), matterdrop_common::sign::SignError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Canonical {
    buf: Vec<u8>,
    names: Vec<String>,
}

impl Canonical {
    /// Starts a message of the given kind (writes its prefix line).
    pub fn new(domain: Domain) -> Self {
        Self {
            buf: domain.prefix().to_vec(),
            names: Vec::new(),
        }
    }

    /// Appends a string field. The value must be printable ascii
    /// (`0x20..=0x7e`); control characters, newlines and non-ascii bytes are
    /// refused, never escaped.
    pub fn str(&mut self, name: &str, value: &str) -> Result<&mut Self, SignError> {
        if let Some((offset, &byte)) = value
            .as_bytes()
            .iter()
            .enumerate()
            .find(|&(_, &b)| !(0x20..=0x7e).contains(&b))
        {
            return Err(SignError::FieldValue {
                field: name.to_owned(),
                byte,
                offset,
            });
        }
        self.field(name, value.as_bytes())
    }

    /// Appends an unsigned integer field, in decimal without leading zeros.
    pub fn u64(&mut self, name: &str, value: u64) -> Result<&mut Self, SignError> {
        self.field(name, value.to_string().as_bytes())
    }

    /// Appends a byte-string field, as lowercase hex.
    pub fn bytes(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, SignError> {
        self.field(name, hex_lower(value).as_bytes())
    }

    /// Appends a SHA-256 hash field, as 64 lowercase hex digits.
    pub fn hash(&mut self, name: &str, value: &[u8; 32]) -> Result<&mut Self, SignError> {
        self.bytes(name, value)
    }

    /// Returns the finished message bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn field(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, SignError> {
        if !valid_field_name(name) {
            return Err(SignError::FieldName(name.to_owned()));
        }
        if self.names.iter().any(|n| n == name) {
            return Err(SignError::DuplicateField(name.to_owned()));
        }
        self.names.push(name.to_owned());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'=');
        self.buf.extend_from_slice(value);
        self.buf.push(b'\n');
        Ok(self)
    }
}

fn valid_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.split_first() {
        Some((first, rest)) => {
            b.len() <= MAX_FIELD_NAME_LEN
                && first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        }
        None => false,
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Signs `msg` (normally the output of [`Canonical::finish`]) with plain
/// Ed25519.
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(msg).to_bytes()
}

/// Verifies an Ed25519 signature with `verify_strict`.
///
/// Rejects a signature that is not exactly 64 bytes, a key that is not a
/// canonical point encoding, small-order keys, small-order or non-canonical
/// `R`, and non-canonical `S`.
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
    let sig_bytes: &[u8; SIGNATURE_LEN] = sig
        .try_into()
        .map_err(|_| SignatureError::SignatureLength(sig.len()))?;
    if !is_canonical_key(key) {
        return Err(SignatureError::KeyEncoding);
    }
    let sig = Signature::from_bytes(sig_bytes);
    key.verify_strict(msg, &sig)
        .map_err(|_| SignatureError::Invalid)
}

/// Parses a 32-byte Ed25519 public key, rejecting wrong lengths, invalid or
/// non-canonical point encodings, and weak (small-order) keys.
pub fn verifying_key_from_bytes(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
    let arr: &[u8; PUBLIC_KEY_LEN] = bytes
        .try_into()
        .map_err(|_| SignatureError::KeyLength(bytes.len()))?;
    let key = VerifyingKey::from_bytes(arr).map_err(|_| SignatureError::KeyEncoding)?;
    if !is_canonical_key(&key) {
        return Err(SignatureError::KeyEncoding);
    }
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    Ok(key)
}

/// Whether the key's stored encoding is the canonical encoding of its point
/// (curve25519-dalek's decompression accepts `y >= p` and `x = -0`).
fn is_canonical_key(key: &VerifyingKey) -> bool {
    key.to_edwards().compress().to_bytes() == key.to_bytes()
}

/// A provider member's confidentiality acknowledgment of one version of a
/// matter's acknowledgment text.
///
/// Its canonical message (domain [`Domain::Ack`]) has the fields `matter`,
/// `version`, `text-sha256`, `principal` and `signed-at`, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckStatement {
    /// Matter id (printable ascii, non-empty).
    pub matter: String,
    /// Acknowledgment text version.
    pub version: u32,
    /// SHA-256 of the acknowledgment text.
    pub text_sha256: [u8; 32],
    /// Principal id of the signer (printable ascii, non-empty).
    pub principal: String,
    /// When it was signed, Unix time in seconds.
    pub signed_at: u64,
}

impl AckStatement {
    /// The exact bytes that are signed.
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, SignError> {
        if self.matter.is_empty() {
            return Err(SignError::EmptyField("matter".to_owned()));
        }
        if self.principal.is_empty() {
            return Err(SignError::EmptyField("principal".to_owned()));
        }
        let mut c = Canonical::new(Domain::Ack);
        c.str("matter", &self.matter)?
            .u64("version", u64::from(self.version))?
            .hash("text-sha256", &self.text_sha256)?
            .str("principal", &self.principal)?
            .u64("signed-at", self.signed_at)?;
        Ok(c.finish())
    }

    /// Signs the statement.
    pub fn sign(&self, key: &SigningKey) -> Result<[u8; SIGNATURE_LEN], SignError> {
        Ok(sign(key, &self.to_signed_bytes()?))
    }

    /// Verifies a signature over the statement (strictly, see [`verify`]).
    pub fn verify(&self, key: &VerifyingKey, sig: &[u8]) -> Result<(), SignError> {
        Ok(verify(key, &self.to_signed_bytes()?, sig)?)
    }
}

/// HMAC-SHA-256 of `message` under `key` (webhook signatures).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn ack() -> AckStatement {
        AckStatement {
            matter: "2026-PI-0042".to_owned(),
            version: 2,
            text_sha256: Sha256::digest(b"I will keep this matter confidential.\n").into(),
            principal: "alice@provider-b".to_owned(),
            signed_at: 1_767_225_600,
        }
    }

    #[test]
    fn ack_round_trip() {
        let k = key(7);
        let a = ack();
        let sig = a.sign(&k).unwrap();
        a.verify(&k.verifying_key(), &sig).unwrap();
        verify(&k.verifying_key(), &a.to_signed_bytes().unwrap(), &sig).unwrap();
    }

    #[test]
    fn ack_random_key_round_trip() {
        let k = SigningKey::generate(&mut rand_core::OsRng);
        let a = ack();
        let sig = a.sign(&k).unwrap();
        a.verify(&k.verifying_key(), &sig).unwrap();
    }

    #[test]
    fn other_key_fails() {
        let a = ack();
        let sig = a.sign(&key(7)).unwrap();
        assert_eq!(
            a.verify(&key(8).verifying_key(), &sig),
            Err(SignError::Signature(SignatureError::Invalid))
        );
    }

    #[test]
    fn changing_any_field_fails() {
        let k = key(7);
        let vk = k.verifying_key();
        let a = ack();
        let sig = a.sign(&k).unwrap();
        let mut variants = Vec::new();
        variants.push(AckStatement {
            matter: "2026-PI-0043".to_owned(),
            ..a.clone()
        });
        variants.push(AckStatement {
            version: 3,
            ..a.clone()
        });
        let mut h = a.text_sha256;
        h[31] ^= 1;
        variants.push(AckStatement {
            text_sha256: h,
            ..a.clone()
        });
        variants.push(AckStatement {
            principal: "mallory@provider-b".to_owned(),
            ..a.clone()
        });
        variants.push(AckStatement {
            signed_at: a.signed_at + 1,
            ..a.clone()
        });
        for v in variants {
            assert_ne!(v, a);
            assert_eq!(
                v.verify(&vk, &sig),
                Err(SignError::Signature(SignatureError::Invalid)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn tampered_signature_fails() {
        let k = key(7);
        let a = ack();
        let sig = a.sign(&k).unwrap();
        for i in [0, 31, 32, 63] {
            let mut s = sig;
            s[i] ^= 0x01;
            assert!(a.verify(&k.verifying_key(), &s).is_err());
        }
    }

    #[test]
    fn other_domain_same_fields_fails() {
        let k = key(7);
        let a = ack();
        let ack_bytes = a.to_signed_bytes().unwrap();
        for d in Domain::ALL {
            let mut c = Canonical::new(d);
            c.str("matter", &a.matter)
                .unwrap()
                .u64("version", u64::from(a.version))
                .unwrap()
                .hash("text-sha256", &a.text_sha256)
                .unwrap()
                .str("principal", &a.principal)
                .unwrap()
                .u64("signed-at", a.signed_at)
                .unwrap();
            let msg = c.finish();
            let sig = sign(&k, &msg);
            if d == Domain::Ack {
                assert_eq!(msg, ack_bytes);
                a.verify(&k.verifying_key(), &sig).unwrap();
            } else {
                assert_ne!(msg, ack_bytes);
                assert_eq!(
                    a.verify(&k.verifying_key(), &sig),
                    Err(SignError::Signature(SignatureError::Invalid))
                );
            }
        }
    }

    #[test]
    fn prefixes_are_distinct_lines_and_prefix_free() {
        for (i, a) in Domain::ALL.iter().enumerate() {
            let p = a.prefix();
            assert!(p.starts_with(b"matterdrop/"));
            assert!(p.ends_with(b"/v1\n"));
            assert_eq!(p.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(p[..p.len() - 1].iter().all(|b| (0x20..=0x7e).contains(b)));
            for (j, b) in Domain::ALL.iter().enumerate() {
                if i != j {
                    assert!(!b.prefix().starts_with(p), "{a:?} / {b:?}");
                }
            }
        }
    }

    #[test]
    fn control_characters_are_refused() {
        let bad = [
            "a\nb",
            "a\rb",
            "a\tb",
            "\0",
            "a\u{7f}",
            "a\u{1b}[31m",
            "caf\u{e9}",
            "a\u{202e}b",
            "\n",
        ];
        for v in bad {
            let mut c = Canonical::new(Domain::Ack);
            assert!(
                matches!(c.str("matter", v), Err(SignError::FieldValue { .. })),
                "{v:?}"
            );
            let a = AckStatement {
                matter: v.to_owned(),
                ..ack()
            };
            assert!(matches!(
                a.to_signed_bytes(),
                Err(SignError::FieldValue { .. })
            ));
            assert!(a.sign(&key(7)).is_err());
            let a = AckStatement {
                principal: v.to_owned(),
                ..ack()
            };
            assert!(matches!(
                a.to_signed_bytes(),
                Err(SignError::FieldValue { .. })
            ));
        }
        let mut c = Canonical::new(Domain::Ack);
        assert_eq!(
            c.str("x", "ok\n").err(),
            Some(SignError::FieldValue {
                field: "x".to_owned(),
                byte: b'\n',
                offset: 2
            })
        );
        // Printable punctuation, spaces and '=' are fine.
        let mut c = Canonical::new(Domain::Ack);
        c.str("x", " a=b ~!").unwrap();
        assert_eq!(c.finish(), b"matterdrop/ack/v1\nx= a=b ~!\n");
    }

    #[test]
    fn empty_ids_are_refused() {
        let a = AckStatement {
            matter: String::new(),
            ..ack()
        };
        assert_eq!(
            a.to_signed_bytes(),
            Err(SignError::EmptyField("matter".to_owned()))
        );
        let a = AckStatement {
            principal: String::new(),
            ..ack()
        };
        assert_eq!(
            a.to_signed_bytes(),
            Err(SignError::EmptyField("principal".to_owned()))
        );
    }

    #[test]
    fn field_names_are_validated() {
        for bad in [
            "",
            "A",
            "1a",
            "-a",
            "a=b",
            "a b",
            "a\n",
            "a_b",
            &"a".repeat(65),
        ] {
            let mut c = Canonical::new(Domain::Receipt);
            assert_eq!(
                c.u64(bad, 1).err(),
                Some(SignError::FieldName(bad.to_owned())),
                "{bad:?}"
            );
        }
        let mut c = Canonical::new(Domain::Receipt);
        c.u64("a", 1).unwrap().u64(&"a".repeat(64), 2).unwrap();
        assert_eq!(
            c.str("a", "x").err(),
            Some(SignError::DuplicateField("a".to_owned()))
        );
    }

    #[test]
    fn value_encodings() {
        let mut c = Canonical::new(Domain::AuditEntry);
        c.u64("zero", 0)
            .unwrap()
            .u64("max", u64::MAX)
            .unwrap()
            .bytes("empty", &[])
            .unwrap()
            .bytes("raw", &[0x00, 0xab, 0xff])
            .unwrap()
            .hash("h", &[0x5a; 32])
            .unwrap()
            .str("s", "")
            .unwrap();
        assert_eq!(
            String::from_utf8(c.finish()).unwrap(),
            format!(
                "matterdrop/audit-entry/v1\nzero=0\nmax=18446744073709551615\nempty=\nraw=00abff\nh={}\ns=\n",
                "5a".repeat(32)
            )
        );
    }

    /// Pins the exact canonical bytes and signature of one acknowledgment:
    /// if this fails, the signed format changed and old signatures break.
    #[test]
    fn ack_known_answer() {
        let a = AckStatement {
            matter: "2026-PI-0042".to_owned(),
            version: 2,
            text_sha256: [0xab; 32],
            principal: "alice@provider-b".to_owned(),
            signed_at: 1_767_225_600,
        };
        let bytes = a.to_signed_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "matterdrop/ack/v1\n\
             matter=2026-PI-0042\n\
             version=2\n\
             text-sha256=abababababababababababababababababababababababababababababababab\n\
             principal=alice@provider-b\n\
             signed-at=1767225600\n"
        );
        let sig = a.sign(&key(1)).unwrap();
        assert_eq!(hex_lower(&sig), KAT_SIG);
        a.verify(&key(1).verifying_key(), &sig).unwrap();
    }

    /// Ed25519 signature of the bytes above under the key with seed
    /// `[0x01; 32]`; cross-checked with OpenSSL (`openssl pkeyutl -sign
    /// -rawin`) and Python `cryptography`.
    const KAT_SIG: &str = "0cf576269c5253948f8c66389b852f5377c0eb861a8bacd036a51e93d9c5ba40\
                           65a286f9eb695e7cd7455007c95e8dac095d0d211e173956d6acbe417978ed0f";

    #[test]
    fn verify_rejects_wrong_lengths() {
        let k = key(7);
        let a = ack();
        let sig = a.sign(&k).unwrap();
        let msg = a.to_signed_bytes().unwrap();
        assert_eq!(
            verify(&k.verifying_key(), &msg, &sig[..63]),
            Err(SignatureError::SignatureLength(63))
        );
        let mut long = sig.to_vec();
        long.push(0);
        assert_eq!(
            verify(&k.verifying_key(), &msg, &long),
            Err(SignatureError::SignatureLength(65))
        );
        assert_eq!(
            verify(&k.verifying_key(), &msg, &[]),
            Err(SignatureError::SignatureLength(0))
        );
    }

    #[test]
    fn verifying_key_parsing() {
        let vk = key(7).verifying_key();
        assert_eq!(verifying_key_from_bytes(vk.as_bytes()).unwrap(), vk);
        assert_eq!(
            verifying_key_from_bytes(&vk.as_bytes()[..31]),
            Err(SignatureError::KeyLength(31))
        );
        // Identity point, canonical: weak.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(verifying_key_from_bytes(&id), Err(SignatureError::WeakKey));
        // Identity point with x = -0: non-canonical.
        let mut id_neg = id;
        id_neg[31] = 0x80;
        assert_eq!(
            verifying_key_from_bytes(&id_neg),
            Err(SignatureError::KeyEncoding)
        );
        // y = p + 1 (the identity again, with y >= p): non-canonical.
        let mut y_big = [0xff; 32];
        y_big[0] = 0xee;
        y_big[31] = 0x7f;
        assert_eq!(
            verifying_key_from_bytes(&y_big),
            Err(SignatureError::KeyEncoding)
        );
        // Order-8 point: weak.
        let o8 = [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ];
        assert_eq!(verifying_key_from_bytes(&o8), Err(SignatureError::WeakKey));
    }

    /// A non-canonical encoding (y >= p) of a point that is *not* of small
    /// order: `verify_strict` alone would accept it (it hashes the encoding as
    /// given), so `verify` and `verifying_key_from_bytes` check canonicity.
    #[test]
    fn non_canonical_non_weak_key_is_rejected() {
        let mut found = 0;
        // y = p + d for small d; p = 2^255 - 19.
        for d in 0u8..19 {
            for sign_bit in [0u8, 0x80] {
                let mut enc = [0xff; 32];
                enc[0] = 0xed + d;
                enc[31] = 0x7f | sign_bit;
                let Ok(vk) = VerifyingKey::from_bytes(&enc) else {
                    continue;
                };
                if vk.is_weak() {
                    continue;
                }
                found += 1;
                assert_eq!(
                    verifying_key_from_bytes(&enc),
                    Err(SignatureError::KeyEncoding)
                );
                let sig = [0u8; 64];
                assert_eq!(verify(&vk, b"m", &sig), Err(SignatureError::KeyEncoding));
            }
        }
        assert!(found > 0, "no non-canonical non-weak encoding found");
    }
}
