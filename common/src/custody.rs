//! Chain of custody: a recipient's signed confirmation that it received a
//! packet or deliverable and verified every file.
//!
//! When `mdrop pull` (or `review`) has checked every file against the signed
//! descriptor and manifest, the client signs a *delivery statement*
//! (domain `matterdrop/delivery/v1`) with the fields `id`, `matter`,
//! `descriptor-sha256`, `manifest-sha256`, `principal`, `time`, in that
//! order, and the server logs it verbatim, with the signature and the
//! signing key, as a `delivered` entry of the matter. A download that was
//! started but not verified has `pull` and `pull-blob` entries and no
//! `delivered` one. Anyone can check a `delivered` entry offline:
//! [`check_entry`].

use thiserror::Error;

use crate::audit::Entry;
use crate::sign::{self, Canonical, Domain, SignError};

/// How far a statement's time may be from its entry's (the server allows
/// 15 minutes of clock skew when it accepts one).
pub const STATEMENT_SKEW: u64 = 20 * 60;

/// A recipient's delivery statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatement {
    /// Packet or deliverable id.
    pub id: String,
    /// Matter id.
    pub matter: String,
    /// SHA-256 of the signed descriptor as received.
    pub descriptor_sha256: [u8; 32],
    /// SHA-256 of the decrypted manifest.
    pub manifest_sha256: [u8; 32],
    /// The recipient.
    pub principal: String,
    /// Unix seconds.
    pub time: u64,
}

/// Why a delivery statement or entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// Not a well-formed statement.
    #[error("malformed delivery statement: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("the delivery statement's signature does not verify")]
    BadSignature,
    /// The entry and its statement disagree.
    #[error("delivery entry {index}: {why}")]
    Entry {
        /// Log index.
        index: u64,
        /// What is wrong.
        why: String,
    },
    /// Encoding.
    #[error(transparent)]
    Sign(#[from] SignError),
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl DeliveryStatement {
    /// The exact bytes that are signed.
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, SignError> {
        let mut c = Canonical::new(Domain::Delivery);
        c.str("id", &self.id)?
            .str("matter", &self.matter)?
            .hash("descriptor-sha256", &self.descriptor_sha256)?
            .hash("manifest-sha256", &self.manifest_sha256)?
            .str("principal", &self.principal)?
            .u64("time", self.time)?;
        Ok(c.finish())
    }

    /// Parses canonical statement bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CustodyError> {
        let bad = |w: &str| CustodyError::Malformed(w.to_owned());
        if bytes.len() > 4096 {
            return Err(bad("too long"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let prefix = std::str::from_utf8(Domain::Delivery.prefix()).unwrap_or_default();
        let body = text
            .strip_prefix(prefix)
            .ok_or_else(|| bad("wrong prefix"))?;
        let mut lines = body.split_terminator('\n');
        let mut field = |name: &str| -> Result<String, CustodyError> {
            match lines.next().and_then(|l| l.split_once('=')) {
                Some((k, v)) if k == name => Ok(v.to_owned()),
                _ => Err(CustodyError::Malformed(format!("expected field {name}"))),
            }
        };
        let s = Self {
            id: field("id")?,
            matter: field("matter")?,
            descriptor_sha256: unhex32(&field("descriptor-sha256")?)
                .ok_or_else(|| bad("descriptor-sha256"))?,
            manifest_sha256: unhex32(&field("manifest-sha256")?)
                .ok_or_else(|| bad("manifest-sha256"))?,
            principal: field("principal")?,
            time: field("time")?.parse().map_err(|_| bad("time"))?,
        };
        if s.to_signed_bytes()? != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(s)
    }
}

/// A reader's signed re-share of a packet to one new reader: for each of
/// the packet's blobs (the descriptor's manifest, then its parts, each
/// once), the SHA-256 of the new age header that opens the blob's payload
/// for the new reader (`crate::reshare`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStatement {
    /// Packet or deliverable id.
    pub id: String,
    /// Matter id.
    pub matter: String,
    /// SHA-256 of the signed descriptor as the sharer verified it.
    pub descriptor_sha256: [u8; 32],
    /// Who shares (a holder of the file keys: the sender or a recipient).
    pub sharer: String,
    /// The new reader.
    pub recipient: String,
    /// The new reader's age recipient, as the matter's signed roster gives it.
    pub age: String,
    /// Unix seconds.
    pub time: u64,
    /// `(blob SHA-256, new header SHA-256)`, in the descriptor's order.
    pub headers: Vec<([u8; 32], [u8; 32])>,
}

/// The most blobs a share statement covers (a descriptor's limit).
pub const MAX_SHARE_BLOBS: usize = 10_001;

impl ShareStatement {
    /// The exact bytes that are signed.
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, SignError> {
        let mut c = Canonical::new(Domain::Share);
        c.str("id", &self.id)?
            .str("matter", &self.matter)?
            .hash("descriptor-sha256", &self.descriptor_sha256)?
            .str("sharer", &self.sharer)?
            .str("recipient", &self.recipient)?
            .str("age", &self.age)?
            .u64("time", self.time)?
            .u64("blobs", self.headers.len() as u64)?;
        for (i, (blob, header)) in self.headers.iter().enumerate() {
            c.str(
                &format!("blob-{i}"),
                &format!("{} {}", hex(blob), hex(header)),
            )?;
        }
        Ok(c.finish())
    }

    /// Parses canonical statement bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CustodyError> {
        let bad = |w: &str| CustodyError::Malformed(format!("share statement: {w}"));
        if bytes.len() > 64 + MAX_SHARE_BLOBS * 160 + 4096 {
            return Err(bad("too long"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let prefix = std::str::from_utf8(Domain::Share.prefix()).unwrap_or_default();
        let body = text
            .strip_prefix(prefix)
            .ok_or_else(|| bad("wrong prefix"))?;
        let mut lines = body.split_terminator('\n');
        let mut field = |name: &str| -> Result<String, CustodyError> {
            match lines.next().and_then(|l| l.split_once('=')) {
                Some((k, v)) if k == name => Ok(v.to_owned()),
                _ => Err(bad(&format!("expected field {name}"))),
            }
        };
        let mut s = Self {
            id: field("id")?,
            matter: field("matter")?,
            descriptor_sha256: unhex32(&field("descriptor-sha256")?)
                .ok_or_else(|| bad("descriptor-sha256"))?,
            sharer: field("sharer")?,
            recipient: field("recipient")?,
            age: field("age")?,
            time: field("time")?.parse().map_err(|_| bad("time"))?,
            headers: Vec::new(),
        };
        let n: usize = field("blobs")?.parse().map_err(|_| bad("blobs"))?;
        if n == 0 || n > MAX_SHARE_BLOBS {
            return Err(bad("blob count"));
        }
        for i in 0..n {
            let v = field(&format!("blob-{i}"))?;
            let pair = v
                .split_once(' ')
                .and_then(|(a, b)| Some((unhex32(a)?, unhex32(b)?)))
                .ok_or_else(|| bad("blob line"))?;
            s.headers.push(pair);
        }
        if s.to_signed_bytes()? != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(s)
    }

    /// The new header's SHA-256 for `blob`, if the statement covers it.
    pub fn header_for(&self, blob: &[u8; 32]) -> Option<[u8; 32]> {
        self.headers
            .iter()
            .find(|(b, _)| b == blob)
            .map(|(_, h)| *h)
    }
}

/// A member's signed attestation that it destroyed its local copies of a
/// matter's files (`mdrop purge`): what its client deleted, found already
/// gone, or kept because the file had changed since it was pulled. The
/// "certificate of destruction" outsourcing contracts ask for; it attests
/// what the client did, as its signer's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestructionStatement {
    /// Matter id.
    pub matter: String,
    /// The member whose copies these were.
    pub principal: String,
    /// Unix seconds.
    pub time: u64,
    /// Packets and deliverables whose copies were purged.
    pub packets: Vec<String>,
    /// Files deleted.
    pub deleted: u64,
    /// Files already gone.
    pub missing: u64,
    /// Files kept (changed since they were pulled; named to the user).
    pub kept: u64,
    /// Partial downloads and cached listings removed.
    pub caches: u64,
}

/// The most packets one destruction statement names.
pub const MAX_DESTROYED_PACKETS: usize = 100_000;

impl DestructionStatement {
    /// The exact bytes that are signed.
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, SignError> {
        let mut c = Canonical::new(Domain::Destruction);
        c.str("matter", &self.matter)?
            .str("principal", &self.principal)?
            .u64("time", self.time)?
            .u64("deleted", self.deleted)?
            .u64("missing", self.missing)?
            .u64("kept", self.kept)?
            .u64("caches", self.caches)?
            .u64("packets", self.packets.len() as u64)?;
        for (i, p) in self.packets.iter().enumerate() {
            c.str(&format!("packet-{i}"), p)?;
        }
        Ok(c.finish())
    }

    /// Parses canonical statement bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CustodyError> {
        let bad = |w: &str| CustodyError::Malformed(format!("destruction statement: {w}"));
        if bytes.len() > 512 + MAX_DESTROYED_PACKETS * 64 {
            return Err(bad("too long"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let prefix = std::str::from_utf8(Domain::Destruction.prefix()).unwrap_or_default();
        let body = text
            .strip_prefix(prefix)
            .ok_or_else(|| bad("wrong prefix"))?;
        let mut lines = body.split_terminator('\n');
        let mut field = |name: &str| -> Result<String, CustodyError> {
            match lines.next().and_then(|l| l.split_once('=')) {
                Some((k, v)) if k == name => Ok(v.to_owned()),
                _ => Err(bad(&format!("expected field {name}"))),
            }
        };
        let num = |v: String, name: &str| v.parse::<u64>().map_err(|_| bad(name));
        let mut s = Self {
            matter: field("matter")?,
            principal: field("principal")?,
            time: num(field("time")?, "time")?,
            deleted: num(field("deleted")?, "deleted")?,
            missing: num(field("missing")?, "missing")?,
            kept: num(field("kept")?, "kept")?,
            caches: num(field("caches")?, "caches")?,
            packets: Vec::new(),
        };
        let n = usize::try_from(num(field("packets")?, "packets")?).unwrap_or(usize::MAX);
        if n > MAX_DESTROYED_PACKETS {
            return Err(bad("packet count"));
        }
        for i in 0..n {
            s.packets.push(field(&format!("packet-{i}"))?);
        }
        if s.to_signed_bytes()? != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(s)
    }
}

/// Checks a `destroyed` audit entry offline as [`check_entry`] checks a
/// `delivered` one (it names no object). Returns the statement.
pub fn check_destruction_entry(e: &Entry) -> Result<DestructionStatement, CustodyError> {
    let s = DestructionStatement::parse(&signed_detail(e)?).map_err(|err| malformed(e, err))?;
    fits_entry(
        e,
        "destruction statement",
        &s.principal,
        None,
        &s.matter,
        s.time,
    )?;
    Ok(s)
}

/// The statement, signing key and signature an entry carries, with its
/// signature checked.
fn signed_detail(e: &Entry) -> Result<Vec<u8>, CustodyError> {
    let fail = |why: String| CustodyError::Entry {
        index: e.index,
        why,
    };
    let detail = |k: &str| {
        e.details
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| fail(format!("no {k}")))
    };
    let bytes = detail("statement")?.replace("\\n", "\n").into_bytes();
    let key = unhex32(detail("signing_key")?)
        .ok_or_else(|| fail("signing_key is not 64 hex digits".into()))
        .and_then(|k| sign::verifying_key_from_bytes(&k).map_err(|e| fail(e.to_string())))?;
    let sig = detail("signature")?;
    if sig.len() != 128 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail("signature is not 128 hex digits".into()));
    }
    let sig: Vec<u8> = (0..sig.len() / 2)
        .map(|i| u8::from_str_radix(sig.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| fail("signature is not hex".into()))?;
    sign::verify(&key, &bytes, &sig).map_err(|_| fail("bad signature".into()))?;
    Ok(bytes)
}

/// Checks that a statement fits the entry that logged it: it names the
/// entry's principal, object (if it names one) and matter, and its time is
/// within [`STATEMENT_SKEW`] of the entry's (the server logs a statement
/// when it receives it: an old statement replayed later does not fit).
fn fits_entry(
    e: &Entry,
    what: &str,
    principal: &str,
    object: Option<&str>,
    matter: &str,
    time: u64,
) -> Result<(), CustodyError> {
    let fail = |why: String| CustodyError::Entry {
        index: e.index,
        why,
    };
    if principal != e.principal || object.is_some_and(|o| e.object.as_deref() != Some(o)) {
        return Err(fail(format!(
            "the {what} names another principal or object than its entry"
        )));
    }
    if e.matter.as_deref() != Some(matter) {
        return Err(fail(format!(
            "the {what} names another matter than its entry"
        )));
    }
    if e.time.abs_diff(time) > STATEMENT_SKEW {
        return Err(fail(format!("the {what}'s time does not fit its entry's")));
    }
    Ok(())
}

fn malformed(e: &Entry, err: CustodyError) -> CustodyError {
    CustodyError::Entry {
        index: e.index,
        why: err.to_string(),
    }
}

/// Checks a `delivered` audit entry offline: its statement parses, names
/// the entry's principal and object, and its signature verifies with the
/// key the entry records. Returns the statement.
pub fn check_entry(e: &Entry) -> Result<DeliveryStatement, CustodyError> {
    let s = DeliveryStatement::parse(&signed_detail(e)?).map_err(|err| malformed(e, err))?;
    fits_entry(e, "statement", &s.principal, Some(&s.id), &s.matter, s.time)?;
    Ok(s)
}

/// Checks a `shared` audit entry offline as [`check_entry`] checks a
/// `delivered` one (its principal is the sharer). Returns the statement.
pub fn check_share_entry(e: &Entry) -> Result<ShareStatement, CustodyError> {
    let s = ShareStatement::parse(&signed_detail(e)?).map_err(|err| malformed(e, err))?;
    fits_entry(
        e,
        "share statement",
        &s.sharer,
        Some(&s.id),
        &s.matter,
        s.time,
    )?;
    Ok(s)
}

/// The `statement` detail of a `delivered` entry: the statement's text with
/// its newlines written as `\n`, so it fits one detail value.
pub fn entry_text(statement: &[u8]) -> String {
    String::from_utf8_lossy(statement).replace('\n', "\\n")
}

/// Hex of a signature or key, as the entry records it.
pub fn entry_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn statement() -> DeliveryStatement {
        DeliveryStatement {
            id: "p-0123456789abcdef0123456789abcdef".into(),
            matter: "2026-PI-0042".into(),
            descriptor_sha256: [1; 32],
            manifest_sha256: [2; 32],
            principal: "bob@lpo-1".into(),
            time: 1_767_225_600,
        }
    }

    fn entry(s: &DeliveryStatement, key: &SigningKey) -> Entry {
        let bytes = s.to_signed_bytes().unwrap();
        Entry {
            index: 7,
            time: s.time,
            principal: s.principal.clone(),
            action: "delivered".into(),
            matter: Some(s.matter.clone()),
            object: Some(s.id.clone()),
            allowed: true,
            rule: None,
            reason: None,
            prev_in_matter: None,
            details: vec![
                ("statement".into(), entry_text(&bytes)),
                ("signature".into(), entry_hex(&sign::sign(key, &bytes))),
                (
                    "signing_key".into(),
                    entry_hex(key.verifying_key().as_bytes()),
                ),
            ],
        }
    }

    #[test]
    fn share_statements_round_trip_and_refuse_other_forms() {
        let s = ShareStatement {
            id: "p-0123456789abcdef0123456789abcdef".into(),
            matter: "2026-PI-0042".into(),
            descriptor_sha256: [1; 32],
            sharer: "alice@firm-a".into(),
            recipient: "carol@firm-a".into(),
            age: "age1xyz".into(),
            time: 1_767_225_600,
            headers: vec![([2; 32], [3; 32]), ([4; 32], [5; 32])],
        };
        let bytes = s.to_signed_bytes().unwrap();
        assert!(bytes.starts_with(b"matterdrop/share/v1\n"));
        assert_eq!(ShareStatement::parse(&bytes).unwrap(), s);
        assert_eq!(s.header_for(&[4; 32]), Some([5; 32]));
        assert_eq!(s.header_for(&[5; 32]), None);
        // Another order, a missing line, trailing bytes: refused.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let swapped = text.replace("blobs=2", "blobs=1");
        assert!(ShareStatement::parse(swapped.as_bytes()).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"x=1\n");
        assert!(ShareStatement::parse(&longer).is_err());
        assert!(ShareStatement::parse(&bytes[..bytes.len() - 1]).is_err());
        // A delivery statement is not a share statement.
        let d = statement().to_signed_bytes().unwrap();
        assert!(ShareStatement::parse(&d).is_err());

        // A `shared` entry checks offline; a changed detail does not.
        let key = SigningKey::from_bytes(&[9; 32]);
        let mut e = entry(&statement(), &key);
        e.action = "shared".into();
        e.principal = s.sharer.clone();
        e.object = Some(s.id.clone());
        e.details = vec![
            ("statement".into(), entry_text(&bytes)),
            ("signature".into(), entry_hex(&sign::sign(&key, &bytes))),
            (
                "signing_key".into(),
                entry_hex(key.verifying_key().as_bytes()),
            ),
        ];
        assert_eq!(check_share_entry(&e).unwrap(), s);
        let mut other = e.clone();
        other.principal = "mallory@firm-a".into();
        assert!(check_share_entry(&other).is_err());
        let mut other = e.clone();
        other.details[0].1 = other.details[0].1.replace("carol", "carl");
        assert!(check_share_entry(&other).is_err());
        let mut other = e;
        other.time += STATEMENT_SKEW + 1;
        assert!(check_share_entry(&other).is_err());
    }

    #[test]
    fn destruction_statements_round_trip() {
        let s = DestructionStatement {
            matter: "2026-PI-0042".into(),
            principal: "bob@lpo-1".into(),
            time: 1_767_225_600,
            packets: vec!["p-0123456789abcdef0123456789abcdef".into()],
            deleted: 6,
            missing: 1,
            kept: 0,
            caches: 2,
        };
        let bytes = s.to_signed_bytes().unwrap();
        assert!(bytes.starts_with(b"matterdrop/destruction/v1\n"));
        assert_eq!(DestructionStatement::parse(&bytes).unwrap(), s);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            DestructionStatement::parse(text.replace("deleted=6", "deleted=60").as_bytes()).is_ok()
        );
        assert!(
            DestructionStatement::parse(text.replace("packets=1", "packets=2").as_bytes()).is_err()
        );
        assert!(
            DestructionStatement::parse(text.replace("deleted=6", "deleted=06").as_bytes())
                .is_err()
        );
    }

    #[test]
    fn statements_round_trip_and_entries_check() {
        let s = statement();
        let bytes = s.to_signed_bytes().unwrap();
        assert_eq!(DeliveryStatement::parse(&bytes).unwrap(), s);
        let key = SigningKey::from_bytes(&[9; 32]);
        assert_eq!(check_entry(&entry(&s, &key)).unwrap(), s);
        // Another principal's entry, a changed statement, another key.
        let mut e = entry(&s, &key);
        e.principal = "mallory@lpo-1".into();
        assert!(check_entry(&e).is_err());
        let mut e = entry(&s, &key);
        e.details[0].1 = e.details[0].1.replace("bob@lpo-1", "bob@lpo-2");
        assert!(check_entry(&e).is_err());
        let mut e = entry(&s, &key);
        e.details[2].1 = entry_hex(SigningKey::from_bytes(&[8; 32]).verifying_key().as_bytes());
        assert!(check_entry(&e).is_err());
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"x=1\n");
        assert!(DeliveryStatement::parse(&extra).is_err());
    }
}
