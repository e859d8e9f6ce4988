//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A signed note is a text ending in a newline, a blank line, then one or
//! more signature lines `— <key name> <base64(key ID || signature)>`. The
//! key ID of an Ed25519 key is the first four bytes (big-endian) of
//! `SHA-256(key name || 0x0A || 0x01 || public key)`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The largest note [`open_note`] accepts, in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// The most signature lines [`open_note`] accepts in one note.
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// Signature type identifier byte of Ed25519 note signatures.
const ALG_ED25519: u8 = 0x01;

/// Start of every signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, a key or a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note exceeds [`MAX_NOTE_SIZE`].
    #[error("note is too large ({size} bytes, at most {max})")]
    TooLarge {
        /// The size of the note in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note has more than [`MAX_NOTE_SIGNATURES`] signature lines.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// The note (text or signature block) is not well-formed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A key name is empty or contains a space, a plus or a control
    /// character.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A verifier key string or public key is not acceptable.
    #[error("invalid verifier key: {0}")]
    InvalidVerifierKey(&'static str),
    /// A signature by the trusted key (same name and key ID) did not verify.
    #[error("invalid signature by {name}")]
    InvalidSignature {
        /// The key name of the signature line.
        name: String,
    },
    /// No signature by the trusted key was found.
    #[error("note has no signature by {name}")]
    Unverified {
        /// The name of the trusted key.
        name: String,
    },
    /// The checkpoint body does not follow c2sp.org/tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

/// Whether `name` is a valid note key name: non-empty, with no Unicode
/// space, no `+` and no control character.
#[must_use]
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The key ID of an Ed25519 key: the first four bytes, big-endian, of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks that `body` can be the text of a signed note: at most
/// [`MAX_NOTE_SIZE`] bytes, non-empty, ending in a newline, and free of
/// ASCII control characters other than newline.
///
/// # Errors
///
/// [`NoteError::TooLarge`] or [`NoteError::Malformed`].
pub fn check_note_body(body: &str) -> Result<(), NoteError> {
    if body.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: body.len(),
            max: MAX_NOTE_SIZE,
        });
    }
    if !body.ends_with('\n') {
        return Err(NoteError::Malformed("text must end with a newline"));
    }
    if has_control_chars(body) {
        return Err(NoteError::Malformed("control character"));
    }
    Ok(())
}

/// Whether `s` has an ASCII control character other than newline.
fn has_control_chars(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// An Ed25519 note signing key and its key name.
///
/// Its [`Debug`] output shows the name only, never the secret key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: u32,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer for `key` under the key name `name`.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] if `name` is not a valid key name.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// A signer with a fresh key drawn from `rng`.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] if `name` is not a valid key name.
    pub fn generate<R: CryptoRngCore + ?Sized>(name: &str, rng: &mut R) -> Result<Self, NoteError> {
        Self::new(name, SigningKey::generate(rng))
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (see the module documentation).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The verifier of this signer's signatures.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The signature line of this key over `text`, with its newline.
    fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(4 + Signature::BYTE_SIZE);
        raw.extend_from_slice(&self.id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }
}

/// An Ed25519 note verifier key and its key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    id: u32,
}

impl NoteVerifier {
    /// A verifier for `key` under the key name `name`.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] if `name` is not a valid key name, and
    /// [`NoteError::InvalidVerifierKey`] if `key` is of small order or not
    /// canonically encoded.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        if key.is_weak() {
            return Err(NoteError::InvalidVerifierKey("small-order public key"));
        }
        if key.to_edwards().compress().to_bytes() != key.to_bytes() {
            return Err(NoteError::InvalidVerifierKey("non-canonical public key"));
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key in the standard
    /// `<name>+<hex8 key ID>+<base64(0x01 || public key)>` format, strictly:
    /// the key ID in lowercase hex (as [`NoteVerifier::to_vkey`] writes it)
    /// and canonical padded base64, so that parsing and formatting round
    /// trip exactly.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::InvalidVerifierKey`]
    /// if the string is malformed, the key is not Ed25519 or not acceptable,
    /// or the key ID does not match the name and key.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::InvalidVerifierKey("expected name+id+key"));
        };
        let bad_id = || NoteError::InvalidVerifierKey("key ID must be 8 lowercase hex digits");
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad_id());
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad_id())?;
        let raw = STANDARD
            .decode(key64)
            .map_err(|_| NoteError::InvalidVerifierKey("bad base64"))?;
        let Some((&alg, key)) = raw.split_first() else {
            return Err(NoteError::InvalidVerifierKey("empty key"));
        };
        if alg != ALG_ED25519 {
            return Err(NoteError::InvalidVerifierKey("not an Ed25519 key"));
        }
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::InvalidVerifierKey("Ed25519 key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| NoteError::InvalidVerifierKey("not a curve point"))?;
        let verifier = Self::new(name, key)?;
        if verifier.id != id {
            return Err(NoteError::InvalidVerifierKey(
                "key ID does not match name and key",
            ));
        }
        Ok(verifier)
    }

    /// Formats the key as `<name>+<hex8 key ID>+<base64(0x01 || public key)>`.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (see the module documentation).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl fmt::Display for NoteVerifier {
    /// Writes [`NoteVerifier::to_vkey`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    /// Same as [`NoteVerifier::from_vkey`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_vkey(s)
    }
}

/// Signs `body` (the note text) with `signer` and returns the signed note:
/// `body`, a blank line and one signature line.
///
/// `body` must pass [`check_note_body`] (non-empty, ending in a newline,
/// no control characters but newlines, at most [`MAX_NOTE_SIZE`] bytes);
/// otherwise the result is a note that [`open_note`] rejects. Check the body
/// first when it does not come from a trusted formatter such as
/// [`super::Checkpoint::to_body`].
#[must_use]
pub fn sign_note(body: &str, signer: &NoteSigner) -> String {
    let line = signer.signature_line(body);
    let mut note = String::with_capacity(body.len() + 1 + line.len());
    note.push_str(body);
    note.push('\n');
    note.push_str(&line);
    note
}

/// Verifies a signed note against `verifier` and returns its text (the
/// body, with its final newline).
///
/// Signature lines by other keys (a different name or key ID) are ignored,
/// but every line with the verifier's name and key ID must carry a valid
/// signature (checked with Ed25519 `verify_strict`), and there must be at
/// least one.
///
/// # Errors
///
/// [`NoteError::TooLarge`], [`NoteError::TooManySignatures`] or
/// [`NoteError::Malformed`] if the note is not well-formed,
/// [`NoteError::InvalidSignature`] if a signature by the verifier's key
/// does not verify, [`NoteError::Unverified`] if there is none.
pub fn open_note(note: &str, verifier: &NoteVerifier) -> Result<String, NoteError> {
    if note.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: note.len(),
            max: MAX_NOTE_SIZE,
        });
    }
    if has_control_chars(note) {
        return Err(NoteError::Malformed("control character"));
    }
    // The text is separated from the signatures by the last blank line.
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("missing signature block"))?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(NoteError::Malformed(
            "signature block must be non-empty and end with a newline",
        ));
    };

    let mut verified = false;
    for (n, line) in sigs.split('\n').enumerate() {
        if n >= MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_NOTE_SIGNATURES,
            });
        }
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, sig64) = rest
            .rsplit_once(' ')
            .ok_or(NoteError::Malformed("signature line without signature"))?;
        if !is_valid_key_name(name) || sig64.is_empty() {
            return Err(NoteError::Malformed("bad signature line"));
        }
        let raw = STANDARD
            .decode(sig64)
            .map_err(|_| NoteError::Malformed("bad signature base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let (id, sig) = raw.split_at(4);
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        if name != verifier.name || id != verifier.id {
            continue; // Unknown key: ignored, as the spec requires.
        }
        let invalid = || NoteError::InvalidSignature {
            name: name.to_owned(),
        };
        let sig = Signature::from_slice(sig).map_err(|_| invalid())?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &sig)
            .map_err(|_| invalid())?;
        verified = true;
    }
    if !verified {
        return Err(NoteError::Unverified {
            name: verifier.name.clone(),
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n";
    const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n\
                              \n\
                              \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn peter() -> NoteSigner {
        // The seed is the base64 after the last '+'-separated header field.
        let b64 = PETER_SKEY.splitn(5, '+').nth(4).unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        assert_eq!(raw[0], ALG_ED25519);
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap()
    }

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::generate(name, &mut rand_core::OsRng).unwrap()
    }

    /// Known answer from golang.org/x/mod/sumdb/note (Ed25519 is
    /// deterministic, so signing must reproduce the published note).
    #[test]
    fn go_sumdb_known_answer() {
        let s = peter();
        assert_eq!(s.verifier().to_vkey(), PETER_VKEY);
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(sign_note(PETER_TEXT, &s), PETER_NOTE);
        let v = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(open_note(PETER_NOTE, &v).unwrap(), PETER_TEXT);
        assert!(open_note(&PETER_NOTE.replace("cryptography", "cryptographY"), &v).is_err());
    }

    #[test]
    fn vkey_roundtrip_and_rejections() {
        let v = signer("example.com/log").verifier();
        let s = v.to_vkey();
        assert_eq!(NoteVerifier::from_vkey(&s).unwrap(), v);
        assert_eq!(s.parse::<NoteVerifier>().unwrap(), v);
        assert_eq!(v.to_string(), s);
        // Every strict prefix and every single-byte change is rejected.
        for i in 0..s.len() {
            if s.is_char_boundary(i) {
                assert!(NoteVerifier::from_vkey(&s[..i]).is_err(), "prefix {i}");
            }
        }
        let mut bad = 0;
        for i in 0..s.len() {
            let mut b = s.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            if let Ok(m) = String::from_utf8(b)
                && m != s
            {
                assert!(NoteVerifier::from_vkey(&m).is_err(), "{m}");
                bad += 1;
            }
        }
        assert!(bad > 50);
        assert!(NoteVerifier::from_vkey(&format!("{s}+")).is_err());
        // Wrong algorithm byte.
        let (head, _) = s.rsplit_once('+').unwrap();
        let mut raw = vec![0x02];
        raw.extend_from_slice(v.verifying_key().as_bytes());
        assert!(NoteVerifier::from_vkey(&format!("{head}+{}", STANDARD.encode(raw))).is_err());
        // Small-order key (the identity point) is rejected.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let weak = VerifyingKey::from_bytes(&ident).unwrap();
        assert!(NoteVerifier::new("x", weak).is_err());
    }

    #[test]
    fn key_names_are_checked() {
        let key = SigningKey::from_bytes(&[7; 32]);
        for bad in ["", "a b", "a+b", "a\nb", "a\u{2003}b", "a\tb", "a\u{1}b"] {
            assert_eq!(
                NoteSigner::new(bad, key.clone()).unwrap_err(),
                NoteError::InvalidKeyName
            );
            assert!(NoteVerifier::new(bad, key.verifying_key()).is_err());
        }
        assert!(NoteSigner::new("example.com/log-1", key).is_ok());
    }

    #[test]
    fn debug_hides_secret_key() {
        let s = NoteSigner::new("k", SigningKey::from_bytes(&[0x42; 32])).unwrap();
        let d = format!("{s:?}");
        assert_eq!(d, "NoteSigner { name: \"k\", .. }");
    }

    #[test]
    fn round_trip_and_tampering() {
        let s = signer("log");
        let v = s.verifier();
        let body = "hello\n\nworld\n";
        let note = sign_note(body, &s);
        assert_eq!(open_note(&note, &v).unwrap(), body);

        // Another key with the same name: unknown ID, ignored, so unverified.
        let other = signer("log");
        assert!(matches!(
            open_note(&sign_note(body, &other), &v),
            Err(NoteError::Unverified { .. })
        ));
        // Modified body.
        let tampered = note.replacen("hello", "hellO", 1);
        assert!(matches!(
            open_note(&tampered, &v),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Truncated signatures (any length) are rejected.
        let sig_start = note.rfind(' ').unwrap() + 1;
        for cut in sig_start..note.len() - 1 {
            let t = format!("{}\n", &note[..cut]);
            assert!(open_note(&t, &v).is_err(), "cut at {cut}");
        }
        // Without the final newline, or without the blank line.
        assert!(open_note(&note[..note.len() - 1], &v).is_err());
        assert!(open_note(&note.replacen("\n\n\u{2014}", "\n\u{2014}", 1), &v).is_err());
        // Control characters.
        let cr = sign_note("a\r\n", &s);
        assert!(matches!(open_note(&cr, &v), Err(NoteError::Malformed(_))));
    }

    #[test]
    fn unknown_signers_ignored_known_bad_rejected() {
        let s = signer("log");
        let v = s.verifier();
        let w = signer("witness");
        let body = "origin\n1\n";
        let note = sign_note(body, &s);
        // Add a witness cosignature and a foreign-type line: still fine.
        let cosigned = format!("{note}{}\u{2014} other AAAAAAA=\n", w.signature_line(body));
        assert_eq!(open_note(&cosigned, &v).unwrap(), body);
        // Only the witness signature: not enough.
        let only_w = sign_note(body, &w);
        assert!(matches!(
            open_note(&only_w, &v),
            Err(NoteError::Unverified { .. })
        ));
        // A valid line plus a bad line by the same key: rejected.
        let bad_line = s.signature_line("other text\n");
        let mixed = format!("{note}{bad_line}");
        assert!(matches!(
            open_note(&mixed, &v),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Known name and ID but a wrong-length signature: rejected.
        let mut raw = v.key_id().to_be_bytes().to_vec();
        raw.extend_from_slice(&[0; 10]);
        let short = format!("{note}\u{2014} log {}\n", STANDARD.encode(raw));
        assert!(matches!(
            open_note(&short, &v),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Malformed lines anywhere in the block are rejected.
        for junk in [
            "junk",
            "\u{2014} log",
            "\u{2014} log !!!!",
            "\u{2014}  AAAAAAA=",
        ] {
            assert!(open_note(&format!("{note}{junk}\n"), &v).is_err(), "{junk}");
        }
    }

    #[test]
    fn limits() {
        let s = signer("log");
        let v = s.verifier();
        let body = "x\n";
        let note = sign_note(body, &s);
        let extra = signer("w").signature_line(body);
        let mut many = note.clone();
        for _ in 0..MAX_NOTE_SIGNATURES - 1 {
            many.push_str(&extra);
        }
        assert_eq!(open_note(&many, &v).unwrap(), body);
        many.push_str(&extra);
        assert!(matches!(
            open_note(&many, &v),
            Err(NoteError::TooManySignatures { .. })
        ));
        let big = "a".repeat(MAX_NOTE_SIZE) + "\n";
        assert!(matches!(
            check_note_body(&big),
            Err(NoteError::TooLarge { .. })
        ));
        assert!(matches!(
            open_note(&sign_note(&big, &s), &v),
            Err(NoteError::TooLarge { .. })
        ));
        assert!(check_note_body("no newline").is_err());
        assert!(check_note_body("").is_err());
        assert!(check_note_body("ok\n").is_ok());
    }
}
