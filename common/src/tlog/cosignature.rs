//! C2SP `tlog-cosignature` (<https://c2sp.org/tlog-cosignature>), version
//! `cosignature/v1` with Ed25519: what a witness adds to a checkpoint to say
//! "I saw this tree head, consistent with every one I saw before, at this
//! time".
//!
//! - The key ID is the first four bytes of
//!   SHA-256(name ‖ `\n` ‖ 0x04 ‖ 32-byte public key); a verifier key is
//!   written `name+hex(key ID)+base64(0x04 ‖ public key)`.
//! - The signed message is `cosignature/v1\n`, `time <decimal seconds>\n`,
//!   then the whole checkpoint body (its final newline included).
//! - The signature line is `— name base64(key ID ‖ u64be(time) ‖ signature)`.
//!
//! The message does not name the witness, so each witness needs its own key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::note::is_valid_key_name;

/// Signature type byte of `cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a cosignature or a witness key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The witness key text is not `name+keyid+base64(0x04 ‖ key)`.
    #[error("malformed witness key: {0}")]
    Key(&'static str),
    /// No cosignature line of this witness.
    #[error("no cosignature by witness {0}")]
    Missing(String),
    /// A cosignature line of this witness does not verify.
    #[error("the cosignature by witness {0} does not verify")]
    Invalid(String),
    /// A malformed line.
    #[error("malformed cosignature line: {0}")]
    Malformed(&'static str),
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_COSIGNATURE_V1]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn message(body: &str, time: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body.as_bytes());
    m
}

/// A witness's signing key.
#[derive(Debug, Clone)]
pub struct Cosigner {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl Cosigner {
    /// A cosigner named `name` (a valid note key name).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        if !is_valid_key_name(name) {
            return Err(CosignatureError::Key("bad name"));
        }
        let id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key text others pin.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            self.id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            STANDARD.encode(raw)
        )
    }

    /// The signature line (with its newline) cosigning `body` at `time`
    /// (Unix seconds, non-zero).
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let sig = self.key.sign(&message(body, time));
        let mut raw = self.id.to_vec();
        raw.extend_from_slice(&time.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(raw))
    }
}

/// A witness key a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses `name+keyid+base64(0x04 ‖ key)`.
    pub fn from_vkey(vkey: &str) -> Result<Self, CosignatureError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CosignatureError::Key("expected name+keyid+key"));
        };
        if !is_valid_key_name(name) {
            return Err(CosignatureError::Key("bad name"));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| CosignatureError::Key("bad base64"))?;
        let Some((&ALG_COSIGNATURE_V1, key)) = raw.split_first() else {
            return Err(CosignatureError::Key("not a cosignature/v1 key"));
        };
        let key = crate::sign::verifying_key_from_bytes(key)
            .map_err(|_| CosignatureError::Key("bad Ed25519 key"))?;
        let id = key_id(name, &key);
        let want: String = id.iter().map(|b| format!("{b:02x}")).collect();
        if hex != want {
            return Err(CosignatureError::Key("key id does not match"));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The witness's public key. A cosignature covers neither the name nor
    /// the key id, so one key listed under two names is one witness:
    /// quorums count keys.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The verifier key text.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            self.id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            STANDARD.encode(raw)
        )
    }

    /// Finds this witness's cosignature among the signature lines of
    /// `note` and verifies it over the note's body; returns its time.
    /// Lines of other keys are ignored.
    pub fn verify_note(&self, note: &str) -> Result<u64, CosignatureError> {
        let split = note
            .rfind("\n\n")
            .ok_or(CosignatureError::Malformed("no signature block"))?;
        let (body, sigs) = (&note[..=split], &note[split + 2..]);
        let mut found = None;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(CosignatureError::Malformed("line without em dash"));
            };
            let Some((name, b64)) = rest.rsplit_once(' ') else {
                return Err(CosignatureError::Malformed("line without signature"));
            };
            let Ok(raw) = STANDARD.decode(b64) else {
                return Err(CosignatureError::Malformed("bad base64"));
            };
            if name != self.name || raw.len() < 4 || raw[..4] != self.id {
                continue;
            }
            let invalid = || CosignatureError::Invalid(self.name.clone());
            if raw.len() != 4 + 8 + 64 {
                return Err(invalid());
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&raw[4..12]);
            let time = u64::from_be_bytes(t);
            let sig = Signature::from_slice(&raw[12..]).map_err(|_| invalid())?;
            if time == 0 {
                return Err(invalid());
            }
            self.key
                .verify_strict(&message(body, time), &sig)
                .map_err(|_| invalid())?;
            found = Some(time);
        }
        found.ok_or_else(|| CosignatureError::Missing(self.name.clone()))
    }
}

/// Whether at least `quorum` of `witnesses` cosigned `note`: the names of
/// those that did, or the error naming what is missing.
pub fn check_quorum(
    note: &str,
    witnesses: &[CosignatureVerifier],
    quorum: usize,
) -> Result<Vec<String>, String> {
    let mut ok = Vec::new();
    let mut missing = Vec::new();
    // A witness listed twice (even under another name) counts once.
    let mut seen: Vec<&CosignatureVerifier> = Vec::new();
    for w in witnesses {
        if seen.iter().any(|s| s.key == w.key) {
            continue;
        }
        seen.push(w);
        match w.verify_note(note) {
            Ok(_) => ok.push(w.name().to_owned()),
            Err(e) => missing.push(e.to_string()),
        }
    }
    if ok.len() >= quorum {
        Ok(ok)
    } else {
        Err(format!(
            "{} of the required {quorum} witness cosignatures ({})",
            ok.len(),
            missing.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    fn note_with(lines: &[String]) -> String {
        let mut n = format!("{BODY}\n");
        for l in lines {
            n.push_str(l);
        }
        n
    }

    #[test]
    fn cosign_and_verify_round_trip() {
        let w = Cosigner::new("witness.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        let v = CosignatureVerifier::from_vkey(&w.vkey()).unwrap();
        assert_eq!(v.to_vkey(), w.vkey());
        let note = note_with(&[w.cosign(BODY, 1_700_000_000)]);
        assert_eq!(v.verify_note(&note), Ok(1_700_000_000));
        // Another body, another witness's key under the same name, no line.
        let other = note.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(
            v.verify_note(&other),
            Err(CosignatureError::Invalid(_))
        ));
        let impostor = Cosigner::new("witness.example", SigningKey::from_bytes(&[4; 32])).unwrap();
        let note2 = note_with(&[impostor.cosign(BODY, 1)]);
        assert!(matches!(
            v.verify_note(&note2),
            Err(CosignatureError::Missing(_))
        ));
        // Quorum.
        let w2 = Cosigner::new("w2.example", SigningKey::from_bytes(&[5; 32])).unwrap();
        let v2 = CosignatureVerifier::from_vkey(&w2.vkey()).unwrap();
        assert!(check_quorum(&note, &[v.clone(), v2.clone()], 1).is_ok());
        let e = check_quorum(&note, &[v.clone(), v2.clone()], 2).unwrap_err();
        assert!(e.contains("w2.example"), "{e}");
        let both = note_with(&[w.cosign(BODY, 9), w2.cosign(BODY, 9)]);
        assert_eq!(check_quorum(&both, &[v, v2], 2).unwrap().len(), 2);
        // A time of zero is refused.
        let zero = note_with(&[w.cosign(BODY, 0)]);
        let v = CosignatureVerifier::from_vkey(&w.vkey()).unwrap();
        assert!(v.verify_note(&zero).is_err());
        // Keys of another type or with a wrong id are refused.
        assert!(CosignatureVerifier::from_vkey("a+00000000+AQ==").is_err());
        let bad_id = w.vkey().replacen('+', "+0", 1);
        assert!(CosignatureVerifier::from_vkey(&bad_id).is_err());
    }
}
