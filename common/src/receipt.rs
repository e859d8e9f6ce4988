//! Review receipts: an attorney's signed decision on one deliverable.
//!
//! The signed statement is a [`Domain::Receipt`] canonical message (see
//! [`crate::sign`]), human-readable and verifiable with stock tools:
//!
//! ```text
//! matterdrop/receipt/v1
//! deliverable=d-…
//! packet=p-…
//! matter=2026-PI-0042
//! descriptor-sha256=<hex>     SHA-256 of the deliverable's signed descriptor (covers every ciphertext hash)
//! manifest-sha256=<hex>       SHA-256 of the decrypted manifest (covers every plaintext hash)
//! decision=approve|return
//! note-sha256=<hex>           SHA-256 of the reviewer's note (UTF-8; empty note hashes the empty string)
//! reviewer=alice@firm-a
//! time=<unix seconds>
//! rating=<1..5>               only when the reviewer rated the work
//! reason=<return reason>      only on a return with a reason (missing-document, wrong-format,
//!                             factual-error, incomplete, other)
//! ```
//!
//! A receipt made before ratings existed ends at `time` and still verifies.
//!
//! The saved receipt ([`ReceiptFile`], JSON) carries those exact bytes, the
//! signature, the reviewer's public key in PEM, the decrypted manifest, and
//! the audit-log record of the review with its inclusion proof and a signed
//! checkpoint, so it can be checked without the server.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::sign::{self, Canonical, Domain, SignError};

/// A review decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Accepted as delivered.
    Approve,
    /// Sent back for correction.
    Return,
}

impl Decision {
    /// Its name in the signed statement.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Return => "return",
        }
    }
}

/// Why a deliverable was returned (a short fixed list, for the
/// evaluation report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReturnReason {
    /// A document is missing.
    MissingDocument,
    /// Delivered in the wrong format.
    WrongFormat,
    /// A factual error.
    FactualError,
    /// Not finished.
    Incomplete,
    /// Anything else (the note says what).
    Other,
}

impl ReturnReason {
    /// Every reason.
    pub const ALL: [Self; 5] = [
        Self::MissingDocument,
        Self::WrongFormat,
        Self::FactualError,
        Self::Incomplete,
        Self::Other,
    ];

    /// Its name in the signed statement and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingDocument => "missing-document",
            Self::WrongFormat => "wrong-format",
            Self::FactualError => "factual-error",
            Self::Incomplete => "incomplete",
            Self::Other => "other",
        }
    }
}

impl std::str::FromStr for ReturnReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown return reason {s:?} (one of {})",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// Receipt errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Malformed statement.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// Encoding or signature failure.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptStatement {
    /// Deliverable id.
    pub deliverable: String,
    /// The packet it answers.
    pub packet: String,
    /// Matter id.
    pub matter: String,
    /// SHA-256 of the deliverable's signed descriptor bytes.
    pub descriptor_sha256: [u8; 32],
    /// SHA-256 of the decrypted manifest bytes.
    pub manifest_sha256: [u8; 32],
    /// The decision.
    pub decision: Decision,
    /// SHA-256 of the note.
    pub note_sha256: [u8; 32],
    /// Reviewing attorney.
    pub reviewer: String,
    /// Unix seconds.
    pub time: u64,
    /// The reviewer's rating of the work, 1 to 5.
    pub rating: Option<u8>,
    /// Why it was returned (returns only).
    pub reason: Option<ReturnReason>,
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn unhex32(s: &str) -> Result<[u8; 32], ReceiptError> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ReceiptError::Malformed(format!("bad hash {s:?}")));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    }
    Ok(out)
}

impl ReceiptStatement {
    /// The canonical signed bytes.
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        let mut c = Canonical::new(Domain::Receipt);
        c.str("deliverable", &self.deliverable)?
            .str("packet", &self.packet)?
            .str("matter", &self.matter)?
            .hash("descriptor-sha256", &self.descriptor_sha256)?
            .hash("manifest-sha256", &self.manifest_sha256)?
            .str("decision", self.decision.as_str())?
            .hash("note-sha256", &self.note_sha256)?
            .str("reviewer", &self.reviewer)?
            .u64("time", self.time)?;
        if let Some(r) = self.rating {
            if !(1..=5).contains(&r) {
                return Err(ReceiptError::Malformed(format!(
                    "a rating is 1 to 5, not {r}"
                )));
            }
            c.u64("rating", u64::from(r))?;
        }
        if let Some(r) = self.reason {
            if self.decision != Decision::Return {
                return Err(ReceiptError::Malformed(
                    "only a return carries a reason".into(),
                ));
            }
            c.str("reason", r.as_str())?;
        }
        Ok(c.finish())
    }

    /// Parses canonical bytes strictly (they must re-encode identically).
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > 4096 {
            return Err(ReceiptError::Malformed("too long".into()));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| ReceiptError::Malformed("not UTF-8".into()))?;
        let body = text
            .strip_prefix(std::str::from_utf8(Domain::Receipt.prefix()).unwrap_or_default())
            .ok_or_else(|| ReceiptError::Malformed("wrong prefix".into()))?;
        let mut fields = body
            .lines()
            .map(|l| {
                l.split_once('=')
                    .ok_or_else(|| ReceiptError::Malformed(format!("bad line {l:?}")))
            })
            .peekable();
        let mut field = |name: &str| -> Result<String, ReceiptError> {
            if let Some(name) = name.strip_prefix('?') {
                // An optional field: present only if the next line names it.
                return match fields.peek() {
                    Some(Ok((k, _))) if *k == name => {
                        let (_, v) = fields.next().transpose()?.unwrap_or_default();
                        Ok(v.to_owned())
                    }
                    _ => Ok(String::new()),
                };
            }
            let (k, v) = fields
                .next()
                .ok_or_else(|| ReceiptError::Malformed(format!("missing {name}")))??;
            if k != name {
                return Err(ReceiptError::Malformed(format!(
                    "expected {name}, found {k}"
                )));
            }
            Ok(v.to_owned())
        };
        let statement = Self {
            deliverable: field("deliverable")?,
            packet: field("packet")?,
            matter: field("matter")?,
            descriptor_sha256: unhex32(&field("descriptor-sha256")?)?,
            manifest_sha256: unhex32(&field("manifest-sha256")?)?,
            decision: match field("decision")?.as_str() {
                "approve" => Decision::Approve,
                "return" => Decision::Return,
                other => {
                    return Err(ReceiptError::Malformed(format!(
                        "unknown decision {other:?}"
                    )));
                }
            },
            note_sha256: unhex32(&field("note-sha256")?)?,
            reviewer: field("reviewer")?,
            time: field("time")?
                .parse()
                .map_err(|_| ReceiptError::Malformed("bad time".into()))?,
            rating: match field("?rating")?.as_str() {
                "" => None,
                r => Some(
                    r.parse()
                        .map_err(|_| ReceiptError::Malformed(format!("bad rating {r:?}")))?,
                ),
            },
            reason: match field("?reason")?.as_str() {
                "" => None,
                r => Some(r.parse().map_err(ReceiptError::Malformed)?),
            },
        };
        if fields.next().is_some() {
            return Err(ReceiptError::Malformed("trailing fields".into()));
        }
        if statement.to_signed_bytes()? != bytes {
            return Err(ReceiptError::Malformed("not in canonical form".into()));
        }
        Ok(statement)
    }

    /// Signs with the reviewer's key.
    pub fn sign(&self, key: &ed25519_dalek::SigningKey) -> Result<[u8; 64], ReceiptError> {
        Ok(sign::sign(key, &self.to_signed_bytes()?))
    }
}

/// The review's place in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogProof {
    /// Leaf index of the review's log record.
    pub index: u64,
    /// The record (base64).
    pub record: String,
    /// Inclusion proof (hex hashes).
    pub proof: Vec<String>,
    /// Signed checkpoint (C2SP signed note).
    pub checkpoint: String,
    /// The log's key (signed-note verifier form).
    pub log_key: String,
    /// Witness-cosigned checkpoints covering `checkpoint` (`receipt verify
    /// --witness … --quorum K` requires them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnessed: Vec<CosignedCheckpoint>,
}

/// A checkpoint with witness cosignatures, and a consistency proof (hex
/// hashes) from the receipt's checkpoint to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedCheckpoint {
    /// The log's signed note with the cosignature lines.
    pub note: String,
    /// Consistency proof (hex).
    pub proof: Vec<String>,
}

impl CosignedCheckpoint {
    /// From the wire form.
    pub fn from_witnessed(w: &crate::bundle::Witnessed) -> Self {
        Self {
            note: w.note.clone(),
            proof: w
                .proof
                .iter()
                .map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
                .collect(),
        }
    }

    /// To the form [`crate::bundle::check_witnessed`] checks; `None` if a
    /// hash is not 64 hex digits.
    pub fn to_witnessed(&self) -> Option<crate::bundle::Witnessed> {
        let proof = self
            .proof
            .iter()
            .map(|h| {
                if h.len() != 64 {
                    return None;
                }
                let mut out = [0u8; 32];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some(out)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(crate::bundle::Witnessed {
            note: self.note.clone(),
            proof,
        })
    }
}

/// One file of the reviewed deliverable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFileEntry {
    /// Path inside the deliverable.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext (hex).
    pub sha256: String,
}

/// The saved receipt (`mdrop review` writes it; `mdrop receipt verify`
/// checks it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptFile {
    /// Always `matterdrop-receipt/v1`.
    pub format: String,
    /// The exact signed bytes (text).
    pub signed: String,
    /// Ed25519 signature over `signed` (base64).
    pub signature: String,
    /// The reviewer's public key, SubjectPublicKeyInfo PEM.
    pub reviewer_public_key_pem: String,
    /// The decrypted manifest (base64), whose SHA-256 is signed.
    pub manifest: String,
    /// The files it lists (for people; checked against `manifest`).
    pub files: Vec<ReceiptFileEntry>,
    /// The note (its SHA-256 is signed).
    pub note: String,
    /// Where the review is in the audit log.
    pub log: LogProof,
    /// The matter's signed roster as the reviewer's client had verified it
    /// when it signed (`[base64 statement, base64 signature]`, oldest
    /// first): it shows, offline, that the reviewer's key was an attorney's
    /// key of the matter. (Absent from receipts made before it existed,
    /// which `receipt verify` then refuses.)
    #[serde(default)]
    pub roster: Vec<[String; 2]>,
}

/// Format tag of [`ReceiptFile`].
pub const RECEIPT_FORMAT: &str = "matterdrop-receipt/v1";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReceiptStatement {
        ReceiptStatement {
            deliverable: "d-1".into(),
            packet: "p-1".into(),
            matter: "2026-PI-0042".into(),
            descriptor_sha256: [1; 32],
            manifest_sha256: [2; 32],
            decision: Decision::Approve,
            note_sha256: sha256(b""),
            reviewer: "alice@firm-a".into(),
            time: 1_767_225_600,
            rating: None,
            reason: None,
        }
    }

    #[test]
    fn ratings_and_return_reasons_are_signed_when_given() {
        let old = sample();
        let old_bytes = old.to_signed_bytes().unwrap();
        assert!(
            String::from_utf8(old_bytes.clone())
                .unwrap()
                .ends_with("time=1767225600\n")
        );
        assert_eq!(ReceiptStatement::parse(&old_bytes).unwrap(), old);
        let mut r = sample();
        r.decision = Decision::Return;
        r.rating = Some(2);
        r.reason = Some(ReturnReason::MissingDocument);
        let bytes = r.to_signed_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with("rating=2\nreason=missing-document\n"),
            "{text}"
        );
        assert_eq!(ReceiptStatement::parse(&bytes).unwrap(), r);
        // Out of order, out of range, on an approval, or unknown: refused.
        let swapped = text.replace(
            "rating=2\nreason=missing-document\n",
            "reason=missing-document\nrating=2\n",
        );
        assert!(ReceiptStatement::parse(swapped.as_bytes()).is_err());
        assert!(ReceiptStatement::parse(text.replace("rating=2", "rating=6").as_bytes()).is_err());
        assert!(ReceiptStatement::parse(text.replace("rating=2", "rating=0").as_bytes()).is_err());
        assert!(
            ReceiptStatement::parse(text.replace("missing-document", "typo").as_bytes()).is_err()
        );
        let mut approve = r.clone();
        approve.decision = Decision::Approve;
        assert!(approve.to_signed_bytes().is_err());
        assert!(
            ReceiptStatement::parse(
                text.replace("decision=return", "decision=approve")
                    .as_bytes()
            )
            .is_err()
        );
    }

    #[test]
    fn round_trip_and_strictness() {
        let s = sample();
        let bytes = s.to_signed_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("matterdrop/receipt/v1\ndeliverable=d-1\n"),
            "{text}"
        );
        assert_eq!(ReceiptStatement::parse(&bytes).unwrap(), s);
        let mut t = text.clone();
        t.push_str("extra=1\n");
        assert!(ReceiptStatement::parse(t.as_bytes()).is_err());
        assert!(ReceiptStatement::parse(text.replace("approve", "maybe").as_bytes()).is_err());
        assert!(
            ReceiptStatement::parse(
                text.replace("time=1767225600", "time=01767225600")
                    .as_bytes()
            )
            .is_err()
        );
        assert!(ReceiptStatement::parse(&bytes[..bytes.len() - 2]).is_err());
    }

    #[test]
    fn signature_covers_every_field() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let s = sample();
        let sig = s.sign(&key).unwrap();
        let vk = key.verifying_key();
        assert!(sign::verify(&vk, &s.to_signed_bytes().unwrap(), &sig).is_ok());
        let mutations: Vec<fn(&mut ReceiptStatement)> = vec![
            |s| s.deliverable.push('x'),
            |s| s.packet.push('x'),
            |s| s.matter.push('x'),
            |s| s.descriptor_sha256[0] ^= 1,
            |s| s.manifest_sha256[31] ^= 1,
            |s| s.decision = Decision::Return,
            |s| s.note_sha256[5] ^= 1,
            |s| s.reviewer.push('x'),
            |s| s.time += 1,
        ];
        for m in mutations {
            let mut t = s.clone();
            m(&mut t);
            assert!(sign::verify(&vk, &t.to_signed_bytes().unwrap(), &sig).is_err());
        }
    }
}
