//! Audit-log entries and their canonical, versioned encoding.
//!
//! An entry is one event: who did what, to which matter and object, whether
//! it was allowed, and why not. Its bytes are what the Merkle tree hashes
//! (leaf = SHA-256(0x00 || bytes)), so the encoding is fixed: one version
//! byte ([`ENTRY_VERSION`]) followed by the postcard encoding of [`Entry`]
//! (fields in declaration order; strings length-prefixed; options as a 0/1
//! tag). Decoding is strict: unknown versions and trailing bytes are refused,
//! and a decoded entry must re-encode to the same bytes.
//!
//! In the log each entry is stored as a *record*: the entry's bytes followed
//! by the log key's Ed25519 signature (64 bytes) over
//! [`Domain::AuditEntry`](crate::sign::Domain) canonical fields `index` and
//! `entry` (hex). The Merkle leaf is the whole record. The signed index lets
//! a verifier name the first record that was altered, removed or moved.
//!
//! Entries of one matter form a chain: `prev_in_matter` names the index of
//! the matter's previous entry, so a matter's export proves none is missing.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Current entry format version.
pub const ENTRY_VERSION: u8 = 1;

/// Largest encoded entry.
pub const MAX_ENTRY: usize = 16 * 1024;

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log (its Merkle leaf index).
    pub index: u64,
    /// Unix seconds.
    pub time: u64,
    /// Principal id, or `key:SHA256:…` for a key that is not enrolled.
    pub principal: String,
    /// What was attempted, e.g. `matter.show`, `enroll`, `ack.sign`.
    pub action: String,
    /// The matter it concerns.
    pub matter: Option<String>,
    /// The object within it (a member, a packet id…).
    pub object: Option<String>,
    /// Whether it was allowed.
    pub allowed: bool,
    /// Code of the rule that refused it.
    pub rule: Option<String>,
    /// The refusal as the user saw it.
    pub reason: Option<String>,
    /// Index of the previous entry of the same matter.
    pub prev_in_matter: Option<u64>,
    /// Further facts (role, version, hashes…), in a fixed order.
    pub details: Vec<(String, String)>,
}

/// Why bytes are not a valid entry.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// Empty input or an unknown version byte.
    #[error("unsupported entry version {0:?}")]
    Version(Option<u8>),
    /// The body does not decode.
    #[error("malformed entry: {0}")]
    Malformed(String),
    /// The body is not in canonical form.
    #[error("entry is not canonically encoded")]
    NotCanonical,
    /// Too large.
    #[error("entry exceeds {MAX_ENTRY} bytes")]
    TooLarge,
}

impl Entry {
    /// Canonical bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let out = postcard::to_extend(self, vec![ENTRY_VERSION])
            .map_err(|e| EntryError::Malformed(e.to_string()))?;
        if out.len() > MAX_ENTRY {
            return Err(EntryError::TooLarge);
        }
        Ok(out)
    }

    /// Strictly decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY {
            return Err(EntryError::TooLarge);
        }
        match bytes.split_first() {
            Some((&ENTRY_VERSION, body)) => {
                let (entry, rest) = postcard::take_from_bytes::<Self>(body)
                    .map_err(|e| EntryError::Malformed(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(EntryError::Malformed(format!(
                        "{} trailing bytes",
                        rest.len()
                    )));
                }
                if entry.encode()? != bytes {
                    return Err(EntryError::NotCanonical);
                }
                Ok(entry)
            }
            Some((&v, _)) => Err(EntryError::Version(Some(v))),
            None => Err(EntryError::Version(None)),
        }
    }

    /// A detail's value.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Length of the signature that ends a record.
pub const RECORD_SIG_LEN: usize = 64;

/// Why a record does not verify.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// Shorter than a signature.
    #[error("record too short")]
    Short,
    /// The entry inside is malformed.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The signature does not verify with the log key.
    #[error("record signature does not verify with the log key")]
    Signature,
    /// The record claims another position.
    #[error("record claims index {claimed}")]
    Index {
        /// Index in the entry.
        claimed: u64,
    },
}

fn record_message(index: u64, entry: &[u8]) -> Result<Vec<u8>, EntryError> {
    let mut c = crate::sign::Canonical::new(crate::sign::Domain::AuditEntry);
    c.u64("index", index)
        .and_then(|c| c.bytes("entry", entry))
        .map_err(|e| EntryError::Malformed(e.to_string()))?;
    Ok(c.finish())
}

/// Encodes `entry` and signs it into a record.
pub fn seal(entry: &Entry, key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>, EntryError> {
    let mut bytes = entry.encode()?;
    let sig = crate::sign::sign(key, &record_message(entry.index, &bytes)?);
    bytes.extend_from_slice(&sig);
    Ok(bytes)
}

/// Splits a record and decodes its entry without checking the signature.
pub fn parse_record(record: &[u8]) -> Result<(Entry, &[u8]), RecordError> {
    let split = record
        .len()
        .checked_sub(RECORD_SIG_LEN)
        .ok_or(RecordError::Short)?;
    let (body, sig) = record.split_at(split);
    Ok((Entry::decode(body)?, sig))
}

/// Checks a record found at `index`: entry well-formed, signed by the log
/// key, and claiming that index.
pub fn open_record(
    record: &[u8],
    index: u64,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<Entry, RecordError> {
    let (entry, sig) = parse_record(record)?;
    let body = &record[..record.len() - RECORD_SIG_LEN];
    let msg = record_message(entry.index, body)?;
    crate::sign::verify(key, &msg, sig).map_err(|_| RecordError::Signature)?;
    if entry.index != index {
        return Err(RecordError::Index {
            claimed: entry.index,
        });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            index: 9,
            time: 1_700_000_000,
            principal: "bob@lpo-1".into(),
            action: "matter.show".into(),
            matter: Some("2026-PI-0042".into()),
            object: None,
            allowed: false,
            rule: Some("not-acknowledged".into()),
            reason: Some("provider bob@lpo-1 has not acknowledged".into()),
            prev_in_matter: Some(3),
            details: vec![("version".into(), "2".into())],
        }
    }

    #[test]
    fn round_trip_and_strictness() {
        let e = sample();
        let bytes = e.encode().unwrap();
        assert_eq!(bytes[0], ENTRY_VERSION);
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Entry::decode(&trailing).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Entry::decode(&v2), Err(EntryError::Version(Some(2))));
        assert_eq!(Entry::decode(&[]), Err(EntryError::Version(None)));
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
        // A non-canonical varint: index 9 padded to two bytes.
        let mut padded = vec![ENTRY_VERSION];
        padded.extend_from_slice(&[0x89, 0x00]);
        padded.extend_from_slice(&postcard::to_stdvec(&e).unwrap()[1..]);
        assert!(Entry::decode(&padded).is_err());
    }

    #[test]
    fn fixed_encoding() {
        let e = Entry {
            index: 0,
            time: 1,
            principal: "a".into(),
            action: "b".into(),
            matter: None,
            object: None,
            allowed: true,
            rule: None,
            reason: None,
            prev_in_matter: None,
            details: vec![],
        };
        assert_eq!(
            e.encode().unwrap(),
            [1, 0, 1, 1, b'a', 1, b'b', 0, 0, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn records_are_signed_and_positioned() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let vk = key.verifying_key();
        let e = sample();
        let rec = seal(&e, &key).unwrap();
        assert_eq!(open_record(&rec, 9, &vk).unwrap(), e);
        assert_eq!(
            open_record(&rec, 8, &vk),
            Err(RecordError::Index { claimed: 9 })
        );
        let other = ed25519_dalek::SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_eq!(open_record(&rec, 9, &other), Err(RecordError::Signature));
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 1;
            assert!(open_record(&bad, 9, &vk).is_err(), "flip at {i} accepted");
        }
        assert_eq!(
            open_record(&rec[..10], 9, &vk).unwrap_err(),
            RecordError::Short
        );
    }
}
