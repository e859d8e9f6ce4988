//! Packets and deliverables: signed descriptors, encrypted manifests and
//! file-name rules.
//!
//! A packet (firm → providers) or a deliverable (provider → firm) is a set
//! of age-encrypted blobs plus one age-encrypted *manifest*. Two structures
//! describe it:
//!
//! * The [`Descriptor`] is what the server sees and stores: ids, task, due
//!   time, sender, recipients, and the ciphertext hash and size of the
//!   manifest and of every blob. Its sender signs its canonical encoding
//!   ([`Descriptor::to_signed_bytes`]), so the server cannot swap, drop or
//!   add a file or a recipient unseen. The SHA-256 of those bytes
//!   ([`Descriptor::hash`]) is the "descriptor hash" that review receipts
//!   bind to.
//! * The [`Manifest`] travels only inside the encrypted manifest blob: the
//!   note, and for every file its relative path, plaintext size, plaintext
//!   SHA-256 and the ciphertext hash of its blob. File names and notes are
//!   never visible to the server.
//!
//! # Descriptor encoding (version 1)
//!
//! The signed bytes are a canonical message as defined in [`crate::sign`]
//! (a prefix line, then `name=value` lines, printable ASCII only, lowercase
//! hex, decimal integers without leading zeros), with the prefix
//! `matterdrop/packet-descriptor/v1` or
//! `matterdrop/deliverable-descriptor/v1` and these fields, in exactly this
//! order:
//!
//! | field | value | presence |
//! |---|---|---|
//! | `matter` | matter id | always |
//! | `id` | packet or deliverable id | always |
//! | `packet` | id of the packet this deliverable answers | deliverables only |
//! | `task` | task type | always |
//! | `due` | due time, Unix seconds | only when there is one (omitted otherwise) |
//! | `sender` | principal id of the signer | always |
//! | `created-at` | Unix seconds | always |
//! | `recipients` | number of recipients *n* (≥ 1) | always |
//! | `recipient-0` … `recipient-`*n−1* | `<principal> <age recipient>` | always |
//! | `recovery` | the firm's recovery age recipient | only when there is one |
//! | `manifest` | `<sha256 hex> <size>` of the encrypted manifest | always |
//! | `blobs` | number of blobs *m* (may be 0) | always |
//! | `blob-0` … `blob-`*m−1* | `<sha256 hex> <size>` of each encrypted file | always |
//!
//! Optional values are represented by *omitting* their line (there is no
//! sentinel value); since every line carries its name, this is unambiguous.
//! Inside a two-part value a single space separates the parts; neither part
//! can contain a space. For example:
//!
//! ```text
//! matterdrop/deliverable-descriptor/v1
//! matter=2026-PI-0042
//! id=d-7
//! packet=p-3
//! task=medical-chronology
//! due=1767312000
//! sender=bob@provider-b
//! created-at=1767225600
//! recipients=2
//! recipient-0=alice@firm-a age1tzztz7u02e4erdqzeyfd4u2t9suu2veuy727fq3ele7aknrs7qqqam4m67
//! recipient-1=bob@provider-b age1emym9ar8g8947p6hk70g3z38re97ag3hf9xlyqtjuvhscrcd5sksawyd9t
//! recovery=age1n8xh0v54drwj8mdj7gzh8n4prwmcmfuc2vnr7jnsck3jlcya8aes72r5t7
//! manifest=<64 hex digits> 1234
//! blobs=1
//! blob-0=<64 hex digits> 5678
//! ```
//!
//! [`Descriptor::parse`] is the strict inverse: it accepts exactly the bytes
//! [`Descriptor::to_signed_bytes`] would produce for the parsed value, and
//! nothing else.
//!
//! # Manifest encoding
//!
//! Compact JSON as written by `serde_json`, fields in declaration order,
//! hashes as 64 lowercase hex digits:
//!
//! ```text
//! {"version":1,"note":"…","files":[{"path":"dir/a.pdf","size":3,"sha256":"…","blob":"…"}]}
//! ```

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ids::{self, IdError};
use crate::sign::{self, Canonical, Domain, SIGNATURE_LEN, SignError};

/// Most files in one packet or deliverable.
pub const MAX_FILES: usize = 10_000;
/// Most file blobs (parts) in one packet or deliverable: their descriptor
/// lines (about 85 bytes each) must fit in one 1 MiB protocol frame with up
/// to [`MAX_RECIPIENTS`] recipients.
pub const MAX_BLOBS: usize = 10_000;
/// Plaintext bytes per part: a file is encrypted as consecutive age files
/// ("parts") of this many plaintext bytes (the last one shorter; an empty
/// file is one empty part). Parts let a push upload one part while it
/// encrypts the next, and let an interrupted pull resume at a part boundary.
pub const PART_SIZE: u64 = 32 << 20;
/// Largest accepted manifest (plaintext JSON), in bytes.
pub const MAX_MANIFEST: usize = 8 << 20;
/// Longest accepted file name (whole relative path), in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest accepted path component, in bytes.
pub const MAX_COMPONENT: usize = 255;
/// Most components in one file name.
pub const MAX_DEPTH: usize = 32;
/// Longest accepted manifest note, in bytes.
pub const MAX_NOTE: usize = 64 * 1024;
/// Largest accepted encoded descriptor, in bytes (checked before parsing).
pub const MAX_DESCRIPTOR: usize = 8 << 20;
/// Most recipients in one descriptor.
pub const MAX_RECIPIENTS: usize = 1024;
/// Longest accepted packet/deliverable id and task type, in bytes.
pub const MAX_ID_FIELD: usize = 128;
/// The only manifest version this code reads and writes (2: files in parts).
pub const MANIFEST_VERSION: u32 = 2;

/// Length of the error excerpts quoted from untrusted input.
const EXCERPT: usize = 64;

// ---------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------

/// A manifest file name that breaks one of the rules of [`sanitize_path`].
///
/// Messages quote the name with Rust debug escaping, so control and
/// bidirectional characters are shown as `\u{…}` escapes, never raw.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("file name is empty")]
    Empty,
    /// The name starts with '/'.
    #[error("file name {0:?} is absolute (starts with '/')")]
    Absolute(String),
    /// The name has an empty component (`a//b`, trailing '/').
    #[error("file name {0:?} has an empty component ('//' or a trailing '/')")]
    EmptyComponent(String),
    /// The name has a `.` component.
    #[error("file name {0:?} contains a '.' component")]
    Dot(String),
    /// The name has a `..` component.
    #[error("file name {0:?} contains '..'")]
    DotDot(String),
    /// The name contains a backslash.
    #[error("file name {0:?} contains a backslash")]
    Backslash(String),
    /// The name contains a control character (NUL, newline, DEL, C1, …).
    #[error("file name {path:?} contains control character U+{:04X}", u32::from(*.ch))]
    Control {
        /// The file name.
        path: String,
        /// The offending character.
        ch: char,
    },
    /// The name contains a bidirectional formatting character.
    #[error(
        "file name {path:?} contains bidirectional control character U+{:04X}",
        u32::from(*.ch)
    )]
    Bidi {
        /// The file name.
        path: String,
        /// The offending character.
        ch: char,
    },
    /// A component is longer than [`MAX_COMPONENT`] bytes.
    #[error("file name {path:?} has a component of {len} bytes, more than {MAX_COMPONENT}")]
    ComponentTooLong {
        /// The file name.
        path: String,
        /// Length of the component, in bytes.
        len: usize,
    },
    /// The name is longer than [`MAX_PATH`] bytes.
    #[error("file name is {0} bytes long, more than {MAX_PATH}")]
    TooLong(usize),
    /// The name has more than [`MAX_DEPTH`] components.
    #[error("file name {path:?} has {depth} components, more than {MAX_DEPTH}")]
    TooDeep {
        /// The file name.
        path: String,
        /// Number of components.
        depth: usize,
    },
    /// A component consists only of dots and white space (`...`, ` `).
    #[error("file name {0:?} has a component made only of dots and spaces")]
    DotsOrSpaces(String),
}

/// Whether `c` is a Unicode bidirectional formatting character: the
/// embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, and
/// the marks U+200E, U+200F and U+061C.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Checks a manifest file name and returns its components.
///
/// A file name is a relative path with `/` separators. Refused: the empty
/// name; absolute names (leading `/`); empty components (`a//b`, trailing
/// `/`); `.` and `..` components; backslashes; control characters
/// ([`char::is_control`]: C0, DEL, C1 including U+0085); bidirectional
/// formatting characters (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
/// U+061C); components longer than [`MAX_COMPONENT`] bytes; names longer
/// than [`MAX_PATH`] bytes; more than [`MAX_DEPTH`] components; and
/// components made only of dots and white space (`...`, `" "`).
///
/// Joining the returned components with `/` gives back `p` exactly.
pub fn sanitize_path(p: &str) -> Result<Vec<String>, NameError> {
    if p.is_empty() {
        return Err(NameError::Empty);
    }
    if p.len() > MAX_PATH {
        return Err(NameError::TooLong(p.len()));
    }
    for ch in p.chars() {
        if ch == '\\' {
            return Err(NameError::Backslash(p.to_owned()));
        }
        if ch.is_control() {
            return Err(NameError::Control {
                path: p.to_owned(),
                ch,
            });
        }
        if is_bidi_control(ch) {
            return Err(NameError::Bidi {
                path: p.to_owned(),
                ch,
            });
        }
    }
    if p.starts_with('/') {
        return Err(NameError::Absolute(p.to_owned()));
    }
    let depth = p.split('/').count();
    if depth > MAX_DEPTH {
        return Err(NameError::TooDeep {
            path: p.to_owned(),
            depth,
        });
    }
    let mut out = Vec::with_capacity(depth);
    for c in p.split('/') {
        match c {
            "" => return Err(NameError::EmptyComponent(p.to_owned())),
            "." => return Err(NameError::Dot(p.to_owned())),
            ".." => return Err(NameError::DotDot(p.to_owned())),
            _ => {}
        }
        if c.len() > MAX_COMPONENT {
            return Err(NameError::ComponentTooLong {
                path: p.to_owned(),
                len: c.len(),
            });
        }
        if c.chars().all(|ch| ch == '.' || ch.is_whitespace()) {
            return Err(NameError::DotsOrSpaces(p.to_owned()));
        }
        out.push(c.to_owned());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a descriptor or manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A manifest file name breaks a rule.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Encoding, signing or signature verification failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A matter or principal id has the wrong syntax.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The input is larger than its limit.
    #[error("{what} is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Descriptor bytes that do not follow the encoding.
    #[error("malformed descriptor: {0}")]
    Malformed(String),
    /// Descriptor bytes that parse but are not in canonical form.
    #[error("descriptor is not in canonical form")]
    NonCanonical,
    /// A descriptor field has an invalid value.
    #[error("invalid {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A packet names a packet, or a deliverable does not.
    #[error("{0}")]
    KindMismatch(&'static str),
    /// The descriptor has no recipients.
    #[error("a descriptor needs at least one recipient")]
    NoRecipients,
    /// Too many recipients.
    #[error("{0} recipients, more than the limit of {MAX_RECIPIENTS}")]
    TooManyRecipients(usize),
    /// A principal is listed twice among the recipients.
    #[error("recipient {0:?} is listed twice")]
    DuplicateRecipient(String),
    /// An age key is listed twice (among recipients and recovery).
    #[error("age recipient {0} is listed twice")]
    DuplicateAgeKey(String),
    /// Too many files.
    #[error("{0} files, more than the limit of {MAX_FILES}")]
    TooManyFiles(usize),
    /// Too many blobs (file parts).
    #[error("{0} blobs, more than the limit of {MAX_BLOBS}")]
    TooManyBlobs(usize),
    /// A manifest file lists no blob.
    #[error("file {0:?} has no blob")]
    NoBlob(String),
    /// A ciphertext hash appears twice among the manifest and the blobs.
    #[error("blob {0} is listed twice")]
    DuplicateBlob(String),
    /// The manifest is not valid JSON of the expected shape.
    #[error("invalid manifest: {0}")]
    Json(String),
    /// The manifest has an unsupported version.
    #[error("unsupported manifest version {0}, expected {MANIFEST_VERSION}")]
    ManifestVersion(u32),
    /// The manifest note is too long.
    #[error("manifest note is {0} bytes, more than the limit of {MAX_NOTE}")]
    NoteTooLong(usize),
    /// Two manifest files have the same name (ignoring case).
    #[error("file name {0:?} appears twice (names are compared ignoring case)")]
    DuplicatePath(String),
    /// One manifest file name is a directory of another.
    #[error("file name {file:?} is also used as a directory by {other:?}")]
    PathConflict {
        /// The file whose name is used as a directory.
        file: String,
        /// The file inside that directory.
        other: String,
    },
    /// A manifest file refers to a blob the descriptor does not list (or
    /// that another file already uses).
    #[error("file {path:?} refers to blob {blob} which the descriptor does not list")]
    MissingBlob {
        /// The file name.
        path: String,
        /// The blob's ciphertext hash, hex.
        blob: String,
    },
    /// The descriptor lists a blob that no manifest file uses.
    #[error("descriptor lists blob {0} that no manifest file uses")]
    ExtraBlob(String),
}

fn malformed(msg: impl Into<String>) -> PacketError {
    PacketError::Malformed(msg.into())
}

fn field_err(field: &'static str, reason: impl Into<String>) -> PacketError {
    PacketError::Field {
        field,
        reason: reason.into(),
    }
}

/// At most [`EXCERPT`] characters of `s`, for error messages.
fn excerpt(s: &str) -> &str {
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

// ---------------------------------------------------------------------------
// Hex
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Parses exactly 64 lowercase hex digits.
fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Serde adapter: `[u8; 32]` as 64 lowercase hex digits.
mod hex32 {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 lowercase hex digits")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<[u8; 32], E> {
                super::parse_hex32(s).ok_or_else(|| E::custom("expected 64 lowercase hex digits"))
            }
        }
        d.deserialize_str(V)
    }
}

mod hex32_list {
    use serde::ser::SerializeSeq as _;
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    struct Hex<'a>(&'a [u8; 32]);

    impl serde::Serialize for Hex<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::hex32::serialize(self.0, s)
        }
    }

    struct Item([u8; 32]);

    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::hex32::deserialize(d).map(Item)
        }
    }

    pub(super) fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for h in v {
            seq.serialize_element(&Hex(h))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<[u8; 32]>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {} SHA-256 hashes", super::MAX_BLOBS)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Item(h)) = seq.next_element()? {
                    if out.len() == super::MAX_BLOBS {
                        return Err(de::Error::custom("too many blobs"));
                    }
                    out.push(h);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

/// A new random id: `prefix`, `-`, then 16 random bytes (from the OS) as 32
/// lowercase hex digits, e.g. `p-3fa2…`.
///
/// `prefix` should be 1 to 16 lowercase ASCII letters (for example `p` for
/// packets, `d` for deliverables) so that the result passes
/// [`validate_id`].
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}-{}", hex(&b))
}

/// Whether `id` has the shape [`new_id`] produces: 1 to 16 lowercase ASCII
/// letters, `-`, 32 lowercase hex digits.
pub fn validate_id(id: &str) -> bool {
    let Some((prefix, rand)) = id.split_once('-') else {
        return false;
    };
    (1..=16).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase())
        && rand.len() == 32
        && rand.bytes().all(|b| hex_digit(b).is_some())
}

// ---------------------------------------------------------------------------
// Descriptor
// ---------------------------------------------------------------------------

/// A ciphertext blob: SHA-256 of the encrypted bytes and their size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// SHA-256 of the ciphertext.
    pub sha256: [u8; 32],
    /// Size of the ciphertext, in bytes.
    pub size: u64,
}

/// A principal a packet or deliverable is encrypted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Principal id (`alice@firm-a`).
    pub principal: String,
    /// Its age X25519 recipient (`age1…`), in canonical lowercase Bech32.
    pub age: String,
}

/// Whether a descriptor describes a packet or a deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A packet (firm → providers).
    Packet,
    /// A deliverable (provider → firm), answering a packet.
    Deliverable,
}

impl Kind {
    /// The signature domain of descriptors of this kind.
    pub fn domain(self) -> Domain {
        match self {
            Self::Packet => Domain::PacketDescriptor,
            Self::Deliverable => Domain::DeliverableDescriptor,
        }
    }
}

/// The signed, server-visible description of a packet or deliverable (see
/// the [module docs](self) for its encoding).
///
/// Validation (done by [`Descriptor::validate`], and so by every method that
/// encodes): `matter` is a matter id and `sender` and every recipient
/// principal are principal ids ([`crate::ids`]); `id` and `packet` are 1 to
/// [`MAX_ID_FIELD`] bytes of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit; `task` is 1 to [`MAX_ID_FIELD`] bytes of
/// lowercase ASCII letters, digits and `-`; `packet` is present exactly for
/// deliverables; there are 1 to [`MAX_RECIPIENTS`] recipients, no principal
/// twice; every age key (recipients and recovery) is a canonical age X25519
/// recipient and none appears twice; there are at most [`MAX_FILES`] blobs
/// and no ciphertext hash appears twice among the manifest and the blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Packet or deliverable.
    pub kind: Kind,
    /// Matter id.
    pub matter: String,
    /// Id of this packet or deliverable.
    pub id: String,
    /// Deliverables: the packet answered. `None` for packets.
    pub packet: Option<String>,
    /// Task type.
    pub task: String,
    /// Due time, Unix seconds.
    pub due: Option<u64>,
    /// Principal id of the sender (the signer).
    pub sender: String,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Everyone the manifest and blobs are encrypted to.
    pub recipients: Vec<Recipient>,
    /// The firm's recovery age recipient, if it has one.
    pub recovery: Option<String>,
    /// The encrypted manifest.
    pub manifest: BlobRef,
    /// The encrypted files.
    pub blobs: Vec<BlobRef>,
}

/// Checks an `id`/`packet` value.
fn check_id_field(field: &'static str, v: &str) -> Result<(), PacketError> {
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_ID_FIELD
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(field_err(
            field,
            format!(
                "{:?} must be 1 to {MAX_ID_FIELD} ascii letters, digits, '.', '_' or '-', starting with a letter or digit",
                excerpt(v)
            ),
        ))
    }
}

/// Checks a task type.
fn check_task(v: &str) -> Result<(), PacketError> {
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_ID_FIELD
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(field_err(
            "task",
            format!(
                "{:?} must be 1 to {MAX_ID_FIELD} lowercase ascii letters, digits or '-'",
                excerpt(v)
            ),
        ))
    }
}

/// Checks that `v` is an age recipient (hybrid `age1pq1…` or classic
/// `age1…`) in canonical form ([`crate::agekey::AgeKey`]).
fn check_age(field: &'static str, v: &str) -> Result<(), PacketError> {
    let bad = |why: String| {
        field_err(
            field,
            format!("{:?} is not an age recipient: {why}", excerpt(v)),
        )
    };
    // Cheap syntactic checks first: a hybrid recipient is 1,961 lowercase
    // Bech32 characters, a classic one 62.
    if v.len() > 2048 || !v.starts_with("age1") || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("expected age1pq1… or age1…".to_owned()));
    }
    crate::agekey::AgeKey::from_recipient(v).map_err(bad)?;
    Ok(())
}

fn blob_value(b: &BlobRef) -> String {
    format!("{} {}", hex(&b.sha256), b.size)
}

impl Descriptor {
    /// Checks every rule listed on [`Descriptor`].
    pub fn validate(&self) -> Result<(), PacketError> {
        ids::validate_matter(&self.matter)?;
        check_id_field("id", &self.id)?;
        match (self.kind, &self.packet) {
            (Kind::Packet, None) => {}
            (Kind::Packet, Some(_)) => {
                return Err(PacketError::KindMismatch(
                    "a packet descriptor must not name a packet",
                ));
            }
            (Kind::Deliverable, Some(p)) => check_id_field("packet", p)?,
            (Kind::Deliverable, None) => {
                return Err(PacketError::KindMismatch(
                    "a deliverable descriptor must name the packet it answers",
                ));
            }
        }
        check_task(&self.task)?;
        ids::validate_principal(&self.sender)?;
        if self.recipients.is_empty() {
            return Err(PacketError::NoRecipients);
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(PacketError::TooManyRecipients(self.recipients.len()));
        }
        let mut principals = HashSet::with_capacity(self.recipients.len());
        let mut keys = HashSet::with_capacity(self.recipients.len() + 1);
        for r in &self.recipients {
            ids::validate_principal(&r.principal)?;
            check_age("recipient age key", &r.age)?;
            if !principals.insert(r.principal.as_str()) {
                return Err(PacketError::DuplicateRecipient(r.principal.clone()));
            }
            if !keys.insert(r.age.as_str()) {
                return Err(PacketError::DuplicateAgeKey(r.age.clone()));
            }
        }
        if let Some(rec) = &self.recovery {
            check_age("recovery", rec)?;
            if !keys.insert(rec.as_str()) {
                return Err(PacketError::DuplicateAgeKey(rec.clone()));
            }
        }
        if self.blobs.len() > MAX_BLOBS {
            return Err(PacketError::TooManyBlobs(self.blobs.len()));
        }
        let mut hashes = HashSet::with_capacity(self.blobs.len() + 1);
        for b in std::iter::once(&self.manifest).chain(&self.blobs) {
            if !hashes.insert(b.sha256) {
                return Err(PacketError::DuplicateBlob(hex(&b.sha256)));
            }
        }
        Ok(())
    }

    /// The exact bytes the sender signs (see the [module docs](self)),
    /// after [`validate`](Self::validate).
    pub fn to_signed_bytes(&self) -> Result<Vec<u8>, PacketError> {
        self.validate()?;
        let mut c = Canonical::new(self.kind.domain());
        c.str("matter", &self.matter)?.str("id", &self.id)?;
        if let Some(p) = &self.packet {
            c.str("packet", p)?;
        }
        c.str("task", &self.task)?;
        if let Some(due) = self.due {
            c.u64("due", due)?;
        }
        c.str("sender", &self.sender)?
            .u64("created-at", self.created_at)?
            .u64("recipients", self.recipients.len() as u64)?;
        for (i, r) in self.recipients.iter().enumerate() {
            c.str(
                &format!("recipient-{i}"),
                &format!("{} {}", r.principal, r.age),
            )?;
        }
        if let Some(rec) = &self.recovery {
            c.str("recovery", rec)?;
        }
        c.str("manifest", &blob_value(&self.manifest))?
            .u64("blobs", self.blobs.len() as u64)?;
        for (i, b) in self.blobs.iter().enumerate() {
            c.str(&format!("blob-{i}"), &blob_value(b))?;
        }
        Ok(c.finish())
    }

    /// Parses signed descriptor bytes (either kind), strictly: the fields in
    /// exactly the documented order, counts matching, every value valid,
    /// and the bytes must equal the canonical re-encoding. Input larger than
    /// [`MAX_DESCRIPTOR`] is refused before parsing.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() > MAX_DESCRIPTOR {
            return Err(PacketError::TooLarge {
                what: "descriptor",
                size: bytes.len(),
                max: MAX_DESCRIPTOR,
            });
        }
        let (kind, body) = if let Some(rest) = bytes.strip_prefix(Kind::Packet.domain().prefix()) {
            (Kind::Packet, rest)
        } else if let Some(rest) = bytes.strip_prefix(Kind::Deliverable.domain().prefix()) {
            (Kind::Deliverable, rest)
        } else {
            return Err(malformed("not a packet or deliverable descriptor (prefix)"));
        };
        if let Some(pos) = body
            .iter()
            .position(|&b| b != b'\n' && !(0x20..=0x7e).contains(&b))
        {
            return Err(malformed(format!(
                "byte 0x{:02x} at offset {} is not printable ascii",
                body[pos],
                pos + kind.domain().prefix().len()
            )));
        }
        let text = std::str::from_utf8(body).map_err(|_| malformed("not ascii"))?;
        let text = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("truncated: the last line does not end with a newline"))?;
        let mut r = Fields {
            lines: text.split('\n'),
            pending: None,
            line: 1,
        };

        let matter = r.take("matter")?.to_owned();
        let id = r.take("id")?.to_owned();
        let packet = match kind {
            Kind::Packet => None,
            Kind::Deliverable => Some(r.take("packet")?.to_owned()),
        };
        let task = r.take("task")?.to_owned();
        let due = r
            .take_opt("due")?
            .map(|v| parse_u64("due", v))
            .transpose()?;
        let sender = r.take("sender")?.to_owned();
        let created_at = parse_u64("created-at", r.take("created-at")?)?;
        let n = parse_count("recipients", r.take("recipients")?, MAX_RECIPIENTS)?;
        let mut recipients = Vec::new();
        for i in 0..n {
            let name = format!("recipient-{i}");
            let v = r.take(&name)?;
            let (principal, age) = v
                .split_once(' ')
                .ok_or_else(|| malformed(format!("{name} is not '<principal> <age key>'")))?;
            recipients.push(Recipient {
                principal: principal.to_owned(),
                age: age.to_owned(),
            });
        }
        let recovery = r.take_opt("recovery")?.map(str::to_owned);
        let manifest = parse_blob("manifest", r.take("manifest")?)?;
        let m = parse_count("blobs", r.take("blobs")?, MAX_BLOBS)?;
        let mut blobs = Vec::new();
        for i in 0..m {
            let name = format!("blob-{i}");
            blobs.push(parse_blob(&name, r.take(&name)?)?);
        }
        r.end()?;

        let d = Self {
            kind,
            matter,
            id,
            packet,
            task,
            due,
            sender,
            created_at,
            recipients,
            recovery,
            manifest,
            blobs,
        };
        if d.to_signed_bytes()? != bytes {
            return Err(PacketError::NonCanonical);
        }
        Ok(d)
    }

    /// SHA-256 of [`to_signed_bytes`](Self::to_signed_bytes): the
    /// "descriptor hash" that review receipts refer to.
    pub fn hash(&self) -> Result<[u8; 32], PacketError> {
        Ok(Sha256::digest(self.to_signed_bytes()?).into())
    }

    /// Signs the descriptor (plain Ed25519 over its signed bytes).
    pub fn sign(&self, key: &SigningKey) -> Result<[u8; SIGNATURE_LEN], PacketError> {
        Ok(sign::sign(key, &self.to_signed_bytes()?))
    }

    /// Verifies a signature over the descriptor, strictly (see
    /// [`sign::verify`]).
    pub fn verify(&self, key: &VerifyingKey, sig: &[u8]) -> Result<(), PacketError> {
        sign::verify(key, &self.to_signed_bytes()?, sig).map_err(SignError::from)?;
        Ok(())
    }

    /// Total ciphertext size: the manifest plus every blob (saturating).
    pub fn total_size(&self) -> u64 {
        self.blobs
            .iter()
            .fold(self.manifest.size, |acc, b| acc.saturating_add(b.size))
    }
}

/// Reads `name=value` lines in a fixed order.
struct Fields<'a> {
    lines: std::str::Split<'a, char>,
    /// A line read by `take_opt` whose name did not match.
    pending: Option<&'a str>,
    /// 1-based number of the last line read (the prefix is line 1).
    line: usize,
}

impl<'a> Fields<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        let l = self.pending.take().or_else(|| {
            let l = self.lines.next();
            if l.is_some() {
                self.line += 1;
            }
            l
        })?;
        Some(l)
    }

    fn split(&self, line: &'a str) -> Result<(&'a str, &'a str), PacketError> {
        line.split_once('=').ok_or_else(|| {
            malformed(format!(
                "line {}: {:?} is not name=value",
                self.line,
                excerpt(line)
            ))
        })
    }

    /// The value of the next line, which must be field `name`.
    fn take(&mut self, name: &str) -> Result<&'a str, PacketError> {
        let line = self
            .next_line()
            .ok_or_else(|| malformed(format!("truncated: missing field {name:?}")))?;
        let (n, v) = self.split(line)?;
        if n != name {
            return Err(malformed(format!(
                "line {}: expected field {name:?}, found {:?}",
                self.line,
                excerpt(n)
            )));
        }
        Ok(v)
    }

    /// The value of the next line if it is field `name`.
    fn take_opt(&mut self, name: &str) -> Result<Option<&'a str>, PacketError> {
        let Some(line) = self.next_line() else {
            return Ok(None);
        };
        let (n, v) = self.split(line)?;
        if n == name {
            Ok(Some(v))
        } else {
            self.pending = Some(line);
            Ok(None)
        }
    }

    /// Requires that every line has been read.
    fn end(mut self) -> Result<(), PacketError> {
        match self.next_line() {
            None => Ok(()),
            Some(l) => Err(malformed(format!(
                "line {}: unexpected {:?} after the last field",
                self.line,
                excerpt(l)
            ))),
        }
    }
}

/// Parses a decimal integer without sign or leading zeros.
fn parse_u64(field: &str, v: &str) -> Result<u64, PacketError> {
    let canonical =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    if !canonical {
        return Err(malformed(format!(
            "{field}: {:?} is not a canonical decimal integer",
            excerpt(v)
        )));
    }
    v.parse()
        .map_err(|_| malformed(format!("{field}: {:?} is out of range", excerpt(v))))
}

fn parse_count(field: &str, v: &str, max: usize) -> Result<usize, PacketError> {
    let n = parse_u64(field, v)?;
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(malformed(format!("{field}: {n} is more than {max}"))),
    }
}

fn parse_blob(field: &str, v: &str) -> Result<BlobRef, PacketError> {
    let (h, size) = v
        .split_once(' ')
        .ok_or_else(|| malformed(format!("{field} is not '<sha256> <size>'")))?;
    let sha256 = parse_hex32(h).ok_or_else(|| {
        malformed(format!(
            "{field}: {:?} is not 64 lowercase hex digits",
            excerpt(h)
        ))
    })?;
    Ok(BlobRef {
        sha256,
        size: parse_u64(field, size)?,
    })
}

// ---------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------

/// The encrypted manifest of a packet or deliverable: its note and files.
/// Only the recipients ever see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// Free-text note from the sender (at most [`MAX_NOTE`] bytes).
    pub note: String,
    /// The files.
    pub files: Vec<ManifestFile>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative path, '/'-separated (see [`sanitize_path`]).
    pub path: String,
    /// Plaintext size, in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext (lowercase hex in JSON).
    #[serde(with = "hex32")]
    pub sha256: [u8; 32],
    /// SHA-256 of each of the file's ciphertext blobs (parts), in order
    /// (lowercase hex in JSON). Decrypted and concatenated, the parts are
    /// the file.
    #[serde(with = "hex32_list")]
    pub blobs: Vec<[u8; 32]>,
}

impl ManifestFile {
    /// How many parts a file of `size` plaintext bytes is cut into.
    pub fn parts_for(size: u64) -> u64 {
        size.div_ceil(PART_SIZE).max(1)
    }
}

/// SHA-256 of exact manifest bytes.
pub fn manifest_sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Manifest {
    /// A version-1 manifest.
    pub fn new(note: impl Into<String>, files: Vec<ManifestFile>) -> Self {
        Self {
            version: MANIFEST_VERSION,
            note: note.into(),
            files,
        }
    }

    /// Checks the manifest: version is [`MANIFEST_VERSION`], note at most
    /// [`MAX_NOTE`] bytes, at most [`MAX_FILES`] files, every path passes
    /// [`sanitize_path`], no two paths are equal, and no path is a directory
    /// of another (`a` and `a/b`).
    ///
    /// Paths are compared component by component after Unicode lowercasing,
    /// so `Report.pdf` and `report.pdf` also conflict: they would overwrite
    /// each other on a case-insensitive file system. (No Unicode
    /// normalisation is applied.)
    pub fn validate(&self) -> Result<(), PacketError> {
        if self.version != MANIFEST_VERSION {
            return Err(PacketError::ManifestVersion(self.version));
        }
        if self.note.len() > MAX_NOTE {
            return Err(PacketError::NoteTooLong(self.note.len()));
        }
        if self.files.len() > MAX_FILES {
            return Err(PacketError::TooManyFiles(self.files.len()));
        }
        let mut blobs = 0usize;
        for f in &self.files {
            if f.blobs.is_empty() {
                return Err(PacketError::NoBlob(f.path.clone()));
            }
            blobs += f.blobs.len();
        }
        if blobs > MAX_BLOBS {
            return Err(PacketError::TooManyBlobs(blobs));
        }
        let mut keys = Vec::with_capacity(self.files.len());
        for (i, f) in self.files.iter().enumerate() {
            let comps: Vec<String> = sanitize_path(&f.path)?
                .iter()
                .map(|c| c.to_lowercase())
                .collect();
            keys.push((comps, i));
        }
        // In lexicographic order of component lists, a path is immediately
        // followed by the paths it is a prefix of (if any), so comparing
        // neighbours finds every duplicate and file/directory conflict.
        keys.sort_unstable();
        for w in keys.windows(2) {
            let (a, ia) = &w[0];
            let (b, ib) = &w[1];
            if b.starts_with(a) {
                let (fa, fb) = (&self.files[*ia].path, &self.files[*ib].path);
                return Err(if a.len() == b.len() {
                    PacketError::DuplicatePath(fb.clone())
                } else {
                    PacketError::PathConflict {
                        file: fa.clone(),
                        other: fb.clone(),
                    }
                });
            }
        }
        Ok(())
    }

    /// Serialises the manifest (compact JSON, fields in declaration order)
    /// after [`validate`](Self::validate).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PacketError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self).map_err(|e| PacketError::Json(e.to_string()))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(PacketError::TooLarge {
                what: "manifest",
                size: bytes.len(),
                max: MAX_MANIFEST,
            });
        }
        Ok(bytes)
    }

    /// Parses and [validates](Self::validate) manifest bytes. Input larger
    /// than [`MAX_MANIFEST`] is refused before parsing; unknown fields,
    /// duplicate fields and trailing data are refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() > MAX_MANIFEST {
            return Err(PacketError::TooLarge {
                what: "manifest",
                size: bytes.len(),
                max: MAX_MANIFEST,
            });
        }
        let m: Self = serde_json::from_slice(bytes).map_err(|e| {
            let msg = e.to_string();
            PacketError::Json(excerpt_long(&msg).to_owned())
        })?;
        m.validate()?;
        Ok(m)
    }

    /// SHA-256 of exact manifest bytes (same as [`manifest_sha256`]).
    pub fn hash(bytes: &[u8]) -> [u8; 32] {
        manifest_sha256(bytes)
    }

    /// Checks that the manifest's files and the descriptor's blobs match one
    /// to one: the multiset of the files' `blobs` hashes equals the multiset
    /// of `d.blobs` hashes (every file's blob is listed, every listed blob
    /// belongs to a file, none is used twice).
    pub fn check_against(&self, d: &Descriptor) -> Result<(), PacketError> {
        let mut left: HashMap<[u8; 32], usize> = HashMap::with_capacity(d.blobs.len());
        for b in &d.blobs {
            *left.entry(b.sha256).or_insert(0) += 1;
        }
        for f in &self.files {
            for blob in &f.blobs {
                match left.get_mut(blob) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => {
                        return Err(PacketError::MissingBlob {
                            path: f.path.clone(),
                            blob: hex(blob),
                        });
                    }
                }
            }
        }
        // Report the first extra blob in descriptor order.
        for b in &d.blobs {
            if left.get(&b.sha256).is_some_and(|n| *n > 0) {
                return Err(PacketError::ExtraBlob(hex(&b.sha256)));
            }
        }
        Ok(())
    }
}

/// At most 200 characters of an error message built from untrusted input.
fn excerpt_long(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SignatureError;
    use proptest::prelude::*;

    /// Valid age X25519 recipients (generated with `age`).
    const AGE: [&str; 6] = [
        "age1tzztz7u02e4erdqzeyfd4u2t9suu2veuy727fq3ele7aknrs7qqqam4m67",
        "age1emym9ar8g8947p6hk70g3z38re97ag3hf9xlyqtjuvhscrcd5sksawyd9t",
        "age1n8xh0v54drwj8mdj7gzh8n4prwmcmfuc2vnr7jnsck3jlcya8aes72r5t7",
        "age1cxul67dfex557vewl05j329ugqnxkjqrs56v7e2eek5ew04w7q7svuhk9j",
        "age124xa685444xehwr2wr54mk7j7r7wdv92cvx373aacddh96q8j4uqwfjyhn",
        "age1h024450arq7799ufjv2d2lxnmea6wwkrhw5usnz2v629nq3frals4fm65v",
    ];

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn blob(b: u8, size: u64) -> BlobRef {
        BlobRef {
            sha256: [b; 32],
            size,
        }
    }

    fn rcpt(principal: &str, age: &str) -> Recipient {
        Recipient {
            principal: principal.to_owned(),
            age: age.to_owned(),
        }
    }

    fn packet() -> Descriptor {
        Descriptor {
            kind: Kind::Packet,
            matter: "2026-PI-0042".to_owned(),
            id: "p-3".to_owned(),
            packet: None,
            task: "document-review".to_owned(),
            due: Some(1_767_312_000),
            sender: "alice@firm-a".to_owned(),
            created_at: 1_767_225_600,
            recipients: vec![
                rcpt("alice@firm-a", AGE[0]),
                rcpt("bob@provider-b", AGE[1]),
                rcpt("carol@firm-a", AGE[2]),
            ],
            recovery: Some(AGE[3].to_owned()),
            manifest: blob(0x11, 1234),
            blobs: vec![blob(0x22, 10), blob(0x33, 0), blob(0x44, u64::MAX)],
        }
    }

    fn deliverable() -> Descriptor {
        Descriptor {
            kind: Kind::Deliverable,
            id: "d-7".to_owned(),
            packet: Some("p-3".to_owned()),
            task: "medical-chronology".to_owned(),
            sender: "bob@provider-b".to_owned(),
            due: None,
            recovery: None,
            ..packet()
        }
    }

    fn text(d: &Descriptor) -> String {
        String::from_utf8(d.to_signed_bytes().unwrap()).unwrap()
    }

    /// Every combination of kind, due and recovery.
    fn variants() -> Vec<Descriptor> {
        let mut out = Vec::new();
        for base in [packet(), deliverable()] {
            for due in [None, Some(0), Some(1_767_312_000)] {
                for recovery in [None, Some(AGE[5].to_owned())] {
                    out.push(Descriptor {
                        due,
                        recovery: recovery.clone(),
                        ..base.clone()
                    });
                }
            }
        }
        out
    }

    // --- file names -------------------------------------------------------

    #[test]
    fn sanitize_accepts() {
        for (p, comps) in [
            ("a.pdf", &["a.pdf"][..]),
            ("dir/sub/file.txt", &["dir", "sub", "file.txt"]),
            ("é.txt", &["é.txt"]),
            ("a b/c", &["a b", "c"]),
            (".hidden", &[".hidden"]),
            ("a..b", &["a..b"]),
            ("..a", &["..a"]),
        ] {
            assert_eq!(sanitize_path(p).unwrap(), comps, "{p:?}");
        }
        let max_comp = "c".repeat(MAX_COMPONENT);
        assert_eq!(sanitize_path(&max_comp).unwrap(), [max_comp]);
        let deep = vec!["d"; MAX_DEPTH].join("/");
        assert_eq!(sanitize_path(&deep).unwrap().len(), MAX_DEPTH);
        let long = vec![&"l".repeat(127)[..]; MAX_PATH / 128].join("/");
        assert_eq!(long.len(), MAX_PATH - 1);
        sanitize_path(&long).unwrap();
        sanitize_path("Exhibit A (2026) – \u{201c}final\u{201d}.PDF").unwrap();
    }

    #[test]
    fn sanitize_refuses() {
        let long_comp = format!("a/{}", "c".repeat(MAX_COMPONENT + 1));
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        let too_long = vec![&"l".repeat(128)[..]; MAX_PATH / 128 + 1].join("/");
        type Check = fn(&NameError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, NameError::Empty)),
            ("../x", |e| matches!(e, NameError::DotDot(_))),
            ("a/../b", |e| matches!(e, NameError::DotDot(_))),
            ("a/..", |e| matches!(e, NameError::DotDot(_))),
            ("..", |e| matches!(e, NameError::DotDot(_))),
            (".", |e| matches!(e, NameError::Dot(_))),
            ("./a", |e| matches!(e, NameError::Dot(_))),
            ("a/./b", |e| matches!(e, NameError::Dot(_))),
            ("/etc/passwd", |e| matches!(e, NameError::Absolute(_))),
            ("/", |e| matches!(e, NameError::Absolute(_))),
            ("a\\b", |e| matches!(e, NameError::Backslash(_))),
            ("..\\x", |e| matches!(e, NameError::Backslash(_))),
            ("a\u{0}b", |e| {
                matches!(e, NameError::Control { ch: '\u{0}', .. })
            }),
            ("a\nb", |e| matches!(e, NameError::Control { ch: '\n', .. })),
            ("a\rb", |e| matches!(e, NameError::Control { .. })),
            ("a\tb", |e| matches!(e, NameError::Control { .. })),
            ("a\u{7f}", |e| matches!(e, NameError::Control { .. })),
            ("a\u{1b}[31m", |e| matches!(e, NameError::Control { .. })),
            ("a\u{85}b", |e| matches!(e, NameError::Control { .. })),
            ("a\u{9b}b", |e| matches!(e, NameError::Control { .. })),
            ("\u{202e}gpj.exe", |e| {
                matches!(e, NameError::Bidi { ch: '\u{202e}', .. })
            }),
            ("a\u{202a}b", |e| matches!(e, NameError::Bidi { .. })),
            ("a\u{2066}b", |e| matches!(e, NameError::Bidi { .. })),
            ("a\u{2069}b", |e| matches!(e, NameError::Bidi { .. })),
            ("a\u{200f}b", |e| matches!(e, NameError::Bidi { .. })),
            ("x/", |e| matches!(e, NameError::EmptyComponent(_))),
            ("a//b", |e| matches!(e, NameError::EmptyComponent(_))),
            ("...", |e| matches!(e, NameError::DotsOrSpaces(_))),
            (" ", |e| matches!(e, NameError::DotsOrSpaces(_))),
            ("a/ . /b", |e| matches!(e, NameError::DotsOrSpaces(_))),
            ("a/. ", |e| matches!(e, NameError::DotsOrSpaces(_))),
            ("\u{3000}", |e| matches!(e, NameError::DotsOrSpaces(_))),
            (
                &long_comp,
                |e| matches!(e, NameError::ComponentTooLong { len, .. } if *len == MAX_COMPONENT + 1),
            ),
            (
                &deep,
                |e| matches!(e, NameError::TooDeep { depth, .. } if *depth == MAX_DEPTH + 1),
            ),
            (&too_long, |e| matches!(e, NameError::TooLong(_))),
        ];
        for (p, check) in cases {
            let e = sanitize_path(p).expect_err(p);
            assert!(check(&e), "{p:?}: {e:?}");
            let msg = e.to_string();
            assert!(msg.starts_with("file name"), "{msg}");
            // Messages never carry raw control or bidi characters.
            assert!(
                !msg.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "{msg:?}"
            );
        }
        assert_eq!(
            sanitize_path("a/../b").unwrap_err().to_string(),
            "file name \"a/../b\" contains '..'"
        );
        assert_eq!(
            sanitize_path("\u{202e}gpj.exe").unwrap_err().to_string(),
            "file name \"\\u{202e}gpj.exe\" contains bidirectional control character U+202E"
        );
    }

    // --- descriptor -------------------------------------------------------

    #[test]
    fn descriptor_round_trip() {
        for d in variants() {
            let bytes = d.to_signed_bytes().unwrap();
            assert_eq!(Descriptor::parse(&bytes).unwrap(), d);
            assert_eq!(d.hash().unwrap(), <[u8; 32]>::from(Sha256::digest(&bytes)));
            let t = String::from_utf8(bytes).unwrap();
            assert_eq!(t.contains("\ndue="), d.due.is_some());
            assert_eq!(t.contains("\nrecovery="), d.recovery.is_some());
            assert_eq!(t.contains("\npacket="), d.kind == Kind::Deliverable);
        }
        // No blobs is allowed.
        let d = Descriptor {
            blobs: vec![],
            ..packet()
        };
        assert_eq!(Descriptor::parse(&d.to_signed_bytes().unwrap()).unwrap(), d);
    }

    /// Pins the exact signed bytes, hash and signature of one descriptor:
    /// if this fails, the signed format changed and old signatures break.
    #[test]
    fn descriptor_known_answer() {
        let d = Descriptor {
            kind: Kind::Deliverable,
            matter: "2026-PI-0042".to_owned(),
            id: "d-7".to_owned(),
            packet: Some("p-3".to_owned()),
            task: "medical-chronology".to_owned(),
            due: Some(1_767_312_000),
            sender: "bob@provider-b".to_owned(),
            created_at: 1_767_225_600,
            recipients: vec![rcpt("alice@firm-a", AGE[0]), rcpt("bob@provider-b", AGE[1])],
            recovery: Some(AGE[2].to_owned()),
            manifest: blob(0xab, 1234),
            blobs: vec![blob(0xcd, 5678)],
        };
        let t = text(&d);
        assert_eq!(
            t,
            "matterdrop/deliverable-descriptor/v1\n\
             matter=2026-PI-0042\n\
             id=d-7\n\
             packet=p-3\n\
             task=medical-chronology\n\
             due=1767312000\n\
             sender=bob@provider-b\n\
             created-at=1767225600\n\
             recipients=2\n\
             recipient-0=alice@firm-a age1tzztz7u02e4erdqzeyfd4u2t9suu2veuy727fq3ele7aknrs7qqqam4m67\n\
             recipient-1=bob@provider-b age1emym9ar8g8947p6hk70g3z38re97ag3hf9xlyqtjuvhscrcd5sksawyd9t\n\
             recovery=age1n8xh0v54drwj8mdj7gzh8n4prwmcmfuc2vnr7jnsck3jlcya8aes72r5t7\n\
             manifest=abababababababababababababababababababababababababababababababab 1234\n\
             blobs=1\n\
             blob-0=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd 5678\n"
        );
        assert_eq!(hex(&d.hash().unwrap()), KAT_HASH);
        let sig = d.sign(&key(1)).unwrap();
        assert_eq!(hex(&sig), KAT_SIG);
        d.verify(&key(1).verifying_key(), &sig).unwrap();
    }

    /// SHA-256 of the bytes above (the descriptor hash), and their Ed25519
    /// signature under the key with seed `[0x01; 32]`; both cross-checked
    /// with `sha256sum` and OpenSSL (`openssl pkeyutl -sign -rawin`).
    const KAT_HASH: &str = "8c7fb5b480bc2f5424bf8f41f289b607616ec537ebb38fb574d149220e9d1b88";
    const KAT_SIG: &str = "0f80ba67692e99a97a26d8aba5c218ab1ab50fc1a4a5b76dccf81b41f0c2198b\
                           85f21f41f02386b4cbdfc45a7711ba56dbd43dce53048db61774f00d0a98e80f";

    #[test]
    fn parse_rejects_other_prefixes() {
        let t = text(&packet());
        let body = t.strip_prefix("matterdrop/packet-descriptor/v1\n").unwrap();
        for prefix in [
            "matterdrop/deliverable-descriptor/v1\n",
            "matterdrop/packet-descriptor/v2\n",
            "matterdrop/receipt/v1\n",
            "matterdrop/ack/v1\n",
            "matterdrop/packet-descriptor/v1\r\n",
            "Matterdrop/packet-descriptor/v1\n",
            "",
        ] {
            let bytes = format!("{prefix}{body}");
            assert!(Descriptor::parse(bytes.as_bytes()).is_err(), "{prefix:?}");
        }
        // A deliverable relabelled as a packet: the `packet` line is refused.
        let t = text(&deliverable());
        let body = t
            .strip_prefix("matterdrop/deliverable-descriptor/v1\n")
            .unwrap();
        let bytes = format!("matterdrop/packet-descriptor/v1\n{body}");
        assert!(matches!(
            Descriptor::parse(bytes.as_bytes()),
            Err(PacketError::Malformed(_))
        ));
    }

    fn edit(d: &Descriptor, f: impl FnOnce(&mut Vec<String>)) -> Vec<u8> {
        let t = text(d);
        let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
        f(&mut lines);
        let mut out = lines.join("\n");
        out.push('\n');
        out.into_bytes()
    }

    fn find(lines: &[String], name: &str) -> usize {
        let p = format!("{name}=");
        lines.iter().position(|l| l.starts_with(&p)).unwrap()
    }

    #[test]
    fn parse_rejects_reordered_fields() {
        for d in variants() {
            let t = text(&d);
            let n = t.lines().count();
            // Swap every pair of adjacent field lines.
            for i in 1..n - 1 {
                let bytes = edit(&d, |l| l.swap(i, i + 1));
                assert!(Descriptor::parse(&bytes).is_err(), "swap {i}\n{t}");
            }
            // Moving an optional field elsewhere.
            if d.due.is_some() {
                let bytes = edit(&d, |l| {
                    let i = find(l, "due");
                    let line = l.remove(i);
                    let j = find(l, "created-at");
                    l.insert(j + 1, line);
                });
                assert!(Descriptor::parse(&bytes).is_err());
            }
            if d.recovery.is_some() {
                let bytes = edit(&d, |l| {
                    let i = find(l, "recovery");
                    let line = l.remove(i);
                    l.push(line);
                });
                assert!(Descriptor::parse(&bytes).is_err());
            }
        }
        // Recipient lines must be numbered in order.
        let d = packet();
        let bytes = edit(&d, |l| {
            let i = find(l, "recipient-0");
            l.swap(i, i + 1);
        });
        assert!(Descriptor::parse(&bytes).is_err());
    }

    #[test]
    fn parse_rejects_duplicates() {
        let d = packet();
        // Same principal twice.
        let bytes = edit(&d, |l| {
            let i = find(l, "recipient-1");
            l[i] = format!("recipient-1=alice@firm-a {}", AGE[4]);
        });
        assert_eq!(
            Descriptor::parse(&bytes),
            Err(PacketError::DuplicateRecipient("alice@firm-a".to_owned()))
        );
        // Same age key twice.
        let bytes = edit(&d, |l| {
            let i = find(l, "recipient-1");
            l[i] = format!("recipient-1=bob@provider-b {}", AGE[0]);
        });
        assert_eq!(
            Descriptor::parse(&bytes),
            Err(PacketError::DuplicateAgeKey(AGE[0].to_owned()))
        );
        // Recovery key equal to a recipient's key.
        let bytes = edit(&d, |l| {
            let i = find(l, "recovery");
            l[i] = format!("recovery={}", AGE[1]);
        });
        assert_eq!(
            Descriptor::parse(&bytes),
            Err(PacketError::DuplicateAgeKey(AGE[1].to_owned()))
        );
        // Same blob twice, or a blob equal to the manifest.
        let bytes = edit(&d, |l| {
            let i = find(l, "blob-1");
            l[i] = format!("blob-1={} 10", "22".repeat(32));
        });
        assert!(matches!(
            Descriptor::parse(&bytes),
            Err(PacketError::DuplicateBlob(_))
        ));
        let bytes = edit(&d, |l| {
            let i = find(l, "blob-0");
            l[i] = format!("blob-0={} 10", "11".repeat(32));
        });
        assert!(matches!(
            Descriptor::parse(&bytes),
            Err(PacketError::DuplicateBlob(_))
        ));
        // A duplicated line.
        let bytes = edit(&d, |l| {
            let i = find(l, "task");
            let line = l[i].clone();
            l.insert(i, line);
        });
        assert!(Descriptor::parse(&bytes).is_err());
    }

    #[test]
    fn parse_rejects_count_mismatch() {
        let d = packet();
        for (name, value) in [
            ("recipients", "2"),
            ("recipients", "4"),
            ("recipients", "0"),
            ("blobs", "2"),
            ("blobs", "4"),
            ("blobs", "0"),
            ("blobs", "99999999999999"),
            ("blobs", "18446744073709551616"),
            ("recipients", "1025"),
        ] {
            let bytes = edit(&d, |l| {
                let i = find(l, name);
                l[i] = format!("{name}={value}");
            });
            assert!(Descriptor::parse(&bytes).is_err(), "{name}={value}");
        }
        // A recipient line removed.
        let bytes = edit(&d, |l| {
            let i = find(l, "recipient-2");
            l.remove(i);
        });
        assert!(Descriptor::parse(&bytes).is_err());
        // A blob line added.
        let bytes = edit(&d, |l| l.push(format!("blob-3={} 1", "55".repeat(32))));
        assert!(Descriptor::parse(&bytes).is_err());
    }

    #[test]
    fn parse_rejects_non_canonical_values() {
        let d = packet();
        let h = "ab".repeat(32);
        for (name, line) in [
            ("created-at", "created-at=01767225600".to_owned()),
            ("created-at", "created-at=+1767225600".to_owned()),
            ("created-at", "created-at= 1767225600".to_owned()),
            ("created-at", "created-at=1767225600 ".to_owned()),
            ("created-at", "created-at=".to_owned()),
            ("created-at", "created-at=18446744073709551616".to_owned()),
            ("created-at", "created-at=0x10".to_owned()),
            ("due", "due=01".to_owned()),
            ("due", "due=00".to_owned()),
            ("due", "due=".to_owned()),
            ("recipients", "recipients=03".to_owned()),
            ("blob-0", format!("blob-0={h} 010")),
            ("blob-0", format!("blob-0={h}  10")),
            ("blob-0", format!("blob-0={h} 10 ")),
            ("blob-0", format!("blob-0={h}")),
            ("blob-0", format!("blob-0={} 10", h.to_uppercase())),
            ("blob-0", format!("blob-0={} 10", &h[..62])),
            ("blob-0", format!("blob-0={h}00 10")),
            ("manifest", format!("manifest= {h} 1234")),
            (
                "recipient-0",
                format!("recipient-0=alice@firm-a  {}", AGE[0]),
            ),
            (
                "recipient-0",
                format!("recipient-0=alice@firm-a {} ", AGE[0]),
            ),
            (
                "recipient-0",
                format!("recipient-0=alice@firm-a {}", AGE[0].to_uppercase()),
            ),
            (
                "recipient-0",
                format!("recipient-0=alice@firm-a {}", &AGE[0][..61]),
            ),
            ("recipient-0", "recipient-0=alice@firm-a age1xyz".to_owned()),
            ("recipient-0", format!("recipient-0=alice@firm-a{}", AGE[0])),
            (
                "recipient-0",
                format!("recipient-0=ALICE@firm-a {}", AGE[0]),
            ),
            ("matter", "matter=2026 PI".to_owned()),
            ("matter", "matter=".to_owned()),
            ("id", "id=".to_owned()),
            ("id", "id=p 3".to_owned()),
            ("task", "task=Document-Review".to_owned()),
            ("sender", "sender=alice".to_owned()),
            ("matter", "matter =2026-PI-0042".to_owned()),
            ("matter", "matter".to_owned()),
        ] {
            let bytes = edit(&d, |l| {
                let i = find(l, name);
                l[i] = line.clone();
            });
            assert!(Descriptor::parse(&bytes).is_err(), "{line}");
        }
        // Non-ascii, CR and other bytes.
        let t = text(&d);
        for (from, to) in [
            ("alice", "al\u{ef}ce"),
            ("\ntask=", "\r\ntask="),
            ("document-review", "document-review\r"),
            ("document-review", "document\treview"),
            ("document-review", "document\u{0}review"),
        ] {
            let bad = t.replacen(from, to, 1);
            assert_ne!(bad, t);
            assert!(Descriptor::parse(bad.as_bytes()).is_err(), "{to:?}");
        }
    }

    #[test]
    fn parse_rejects_trailing_garbage_and_truncation() {
        for d in variants() {
            let bytes = d.to_signed_bytes().unwrap();
            for extra in [
                &b"x"[..],
                b"\n",
                b"\n\n",
                b"extra=1\n",
                b" ",
                b"\0",
                b"blobs=3\n",
            ] {
                let mut b = bytes.clone();
                b.extend_from_slice(extra);
                assert!(Descriptor::parse(&b).is_err(), "{extra:?}");
            }
            for len in 0..bytes.len() {
                assert!(Descriptor::parse(&bytes[..len]).is_err(), "len {len}");
            }
        }
        assert!(matches!(
            Descriptor::parse(&vec![b'a'; MAX_DESCRIPTOR + 1]),
            Err(PacketError::TooLarge { .. })
        ));
    }

    #[test]
    fn validation_refuses_bad_descriptors() {
        type Check = fn(&PacketError) -> bool;
        let cases: Vec<(Descriptor, Check)> = vec![
            (
                Descriptor {
                    packet: Some("p-1".to_owned()),
                    ..packet()
                },
                |e| matches!(e, PacketError::KindMismatch(_)),
            ),
            (
                Descriptor {
                    packet: None,
                    ..deliverable()
                },
                |e| matches!(e, PacketError::KindMismatch(_)),
            ),
            (
                Descriptor {
                    recipients: vec![],
                    ..packet()
                },
                |e| matches!(e, PacketError::NoRecipients),
            ),
            (
                Descriptor {
                    recipients: vec![rcpt("alice@firm-a", AGE[0]); MAX_RECIPIENTS + 1],
                    ..packet()
                },
                |e| matches!(e, PacketError::TooManyRecipients(_)),
            ),
            (
                Descriptor {
                    blobs: (0..=MAX_BLOBS as u32)
                        .map(|i| {
                            let mut h = [0u8; 32];
                            h[..4].copy_from_slice(&i.to_be_bytes());
                            BlobRef { sha256: h, size: 1 }
                        })
                        .collect(),
                    ..packet()
                },
                |e| matches!(e, PacketError::TooManyBlobs(_)),
            ),
            (
                Descriptor {
                    id: "p\n3".to_owned(),
                    ..packet()
                },
                |e| matches!(e, PacketError::Field { field: "id", .. }),
            ),
            (
                Descriptor {
                    id: "x".repeat(MAX_ID_FIELD + 1),
                    ..packet()
                },
                |e| matches!(e, PacketError::Field { field: "id", .. }),
            ),
            (
                Descriptor {
                    packet: Some("-p".to_owned()),
                    ..deliverable()
                },
                |e| {
                    matches!(
                        e,
                        PacketError::Field {
                            field: "packet",
                            ..
                        }
                    )
                },
            ),
            (
                Descriptor {
                    task: String::new(),
                    ..packet()
                },
                |e| matches!(e, PacketError::Field { field: "task", .. }),
            ),
            (
                Descriptor {
                    matter: "a\u{202e}b".to_owned(),
                    ..packet()
                },
                |e| matches!(e, PacketError::Id(_)),
            ),
            (
                Descriptor {
                    sender: "bob provider".to_owned(),
                    ..packet()
                },
                |e| matches!(e, PacketError::Id(_)),
            ),
            (
                Descriptor {
                    recipients: vec![rcpt("bob@provider-b x", AGE[0])],
                    ..packet()
                },
                |e| matches!(e, PacketError::Id(_)),
            ),
            (
                Descriptor {
                    recipients: vec![rcpt("bob@provider-b", "age1 x")],
                    ..packet()
                },
                |e| matches!(e, PacketError::Field { .. }),
            ),
            (
                Descriptor {
                    recovery: Some(String::new()),
                    ..packet()
                },
                |e| {
                    matches!(
                        e,
                        PacketError::Field {
                            field: "recovery",
                            ..
                        }
                    )
                },
            ),
            (
                Descriptor {
                    recovery: Some(format!("{} ", AGE[5])),
                    ..packet()
                },
                |e| {
                    matches!(
                        e,
                        PacketError::Field {
                            field: "recovery",
                            ..
                        }
                    )
                },
            ),
        ];
        for (d, check) in cases {
            let e = d.to_signed_bytes().unwrap_err();
            assert!(check(&e), "{e:?}");
            assert!(d.sign(&key(1)).is_err());
            assert!(d.hash().is_err());
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key(7);
        for d in variants() {
            let sig = d.sign(&k).unwrap();
            d.verify(&k.verifying_key(), &sig).unwrap();
            // Through the bytes, as a receiver would.
            let parsed = Descriptor::parse(&d.to_signed_bytes().unwrap()).unwrap();
            parsed.verify(&k.verifying_key(), &sig).unwrap();
            sign::verify(&k.verifying_key(), &d.to_signed_bytes().unwrap(), &sig).unwrap();
            assert_eq!(
                d.verify(&key(8).verifying_key(), &sig),
                Err(PacketError::Sign(SignError::Signature(
                    SignatureError::Invalid
                )))
            );
            assert_eq!(
                d.verify(&k.verifying_key(), &sig[..63]),
                Err(PacketError::Sign(SignError::Signature(
                    SignatureError::SignatureLength(63)
                )))
            );
        }
        let sig = packet().sign(&SigningKey::generate(&mut OsRng)).unwrap();
        assert!(packet().verify(&k.verifying_key(), &sig).is_err());
    }

    #[test]
    fn verify_fails_after_any_change() {
        let k = key(7);
        let vk = k.verifying_key();
        type Mutation = fn(&mut Descriptor);
        let mutations: Vec<(&str, Mutation)> = vec![
            ("kind", |d| {
                d.kind = Kind::Deliverable;
                d.packet = Some("p-3".to_owned());
            }),
            ("matter", |d| d.matter = "2026-PI-0043".to_owned()),
            ("id", |d| d.id = "p-4".to_owned()),
            ("task", |d| d.task = "drafting".to_owned()),
            ("due+1", |d| d.due = d.due.map(|x| x + 1)),
            ("due none", |d| d.due = None),
            ("sender", |d| d.sender = "carol@firm-a".to_owned()),
            ("created-at", |d| d.created_at += 1),
            ("recipient dropped", |d| {
                d.recipients.pop();
            }),
            ("recipient added", |d| {
                d.recipients.push(rcpt("mallory@provider-b", AGE[4]))
            }),
            ("recipient key", |d| d.recipients[1].age = AGE[4].to_owned()),
            ("recipient principal", |d| {
                d.recipients[1].principal = "mallory@provider-b".to_owned()
            }),
            ("recipients reordered", |d| d.recipients.swap(0, 1)),
            ("recovery changed", |d| d.recovery = Some(AGE[4].to_owned())),
            ("recovery removed", |d| d.recovery = None),
            ("manifest hash", |d| d.manifest.sha256[0] ^= 1),
            ("manifest size", |d| d.manifest.size += 1),
            ("blob hash", |d| d.blobs[1].sha256[31] ^= 0x80),
            ("blob size", |d| d.blobs[0].size -= 1),
            ("blob dropped", |d| {
                d.blobs.pop();
            }),
            ("blob added", |d| d.blobs.push(blob(0x99, 1))),
            ("blobs reordered", |d| d.blobs.swap(0, 2)),
        ];
        let d = packet();
        let sig = d.sign(&k).unwrap();
        for (what, m) in mutations {
            let mut v = d.clone();
            m(&mut v);
            assert_ne!(v, d, "{what}");
            assert_ne!(v.hash().unwrap(), d.hash().unwrap(), "{what}");
            assert_eq!(
                v.verify(&vk, &sig),
                Err(PacketError::Sign(SignError::Signature(
                    SignatureError::Invalid
                ))),
                "{what}"
            );
        }
        // Deliverable-only field.
        let d = deliverable();
        let sig = d.sign(&k).unwrap();
        let v = Descriptor {
            packet: Some("p-4".to_owned()),
            ..d.clone()
        };
        assert!(v.verify(&vk, &sig).is_err());
        // The same fields under the other kind.
        let v = Descriptor {
            kind: Kind::Packet,
            packet: None,
            ..d.clone()
        };
        let w = Descriptor {
            kind: Kind::Packet,
            packet: None,
            ..d
        };
        assert!(v.verify(&vk, &sig).is_err());
        assert!(w.verify(&vk, &w.sign(&k).unwrap()).is_ok());
    }

    #[test]
    fn total_size_saturates() {
        assert_eq!(packet().total_size(), u64::MAX);
        let d = Descriptor {
            blobs: vec![blob(1, 10), blob(2, 20)],
            ..packet()
        };
        assert_eq!(d.total_size(), 1234 + 30);
    }

    #[test]
    fn ids() {
        let a = new_id("p");
        let b = new_id("p");
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("p-"));
        assert!(validate_id(&a), "{a}");
        assert!(validate_id(&new_id("dlv")));
        for bad in [
            "",
            "p",
            "p-",
            "-0123456789abcdef0123456789abcdef",
            "p-0123456789abcdef0123456789abcde",
            "p-0123456789abcdef0123456789abcdef0",
            "p-0123456789ABCDEF0123456789abcdef",
            "P-0123456789abcdef0123456789abcdef",
            "p1-0123456789abcdef0123456789abcdef",
            "p-0123456789abcdef-123456789abcdef",
            "abcdefghijklmnopq-0123456789abcdef0123456789abcdef",
            "p-0123456789abcdef0123456789abcdeg",
        ] {
            assert!(!validate_id(bad), "{bad}");
        }
        // Generated ids are valid descriptor ids.
        let d = Descriptor {
            id: new_id("p"),
            ..packet()
        };
        d.to_signed_bytes().unwrap();
    }

    // --- manifest ---------------------------------------------------------

    fn file(path: &str, blob: u8) -> ManifestFile {
        ManifestFile {
            path: path.to_owned(),
            size: u64::from(blob) * 100,
            sha256: [blob ^ 0xff; 32],
            blobs: vec![[blob; 32]],
        }
    }

    fn manifest() -> Manifest {
        Manifest::new(
            "Please review by Friday.\nThanks — A.",
            vec![
                file("exhibits/a.pdf", 0x22),
                file("exhibits/b.pdf", 0x33),
                file("notes.txt", 0x44),
            ],
        )
    }

    #[test]
    fn manifest_round_trip() {
        let m = manifest();
        let bytes = m.to_bytes().unwrap();
        assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        assert_eq!(Manifest::hash(&bytes), manifest_sha256(&bytes));
        assert_eq!(
            manifest_sha256(&bytes),
            <[u8; 32]>::from(Sha256::digest(&bytes))
        );
        // Deterministic.
        assert_eq!(m.clone().to_bytes().unwrap(), bytes);
        // Empty manifest.
        let e = Manifest::new("", vec![]);
        assert_eq!(Manifest::parse(&e.to_bytes().unwrap()).unwrap(), e);
        // Whitespace-formatted input is accepted too (only the hash of the
        // exact bytes matters).
        let pretty = serde_json::to_vec_pretty(&m).unwrap();
        assert_eq!(Manifest::parse(&pretty).unwrap(), m);
    }

    #[test]
    fn manifest_known_answer() {
        let m = Manifest::new("hi", vec![file("a/b.txt", 0x01)]);
        let s = String::from_utf8(m.to_bytes().unwrap()).unwrap();
        assert_eq!(
            s,
            format!(
                "{{\"version\":2,\"note\":\"hi\",\"files\":[{{\"path\":\"a/b.txt\",\"size\":100,\"sha256\":\"{}\",\"blobs\":[\"{}\"]}}]}}",
                "fe".repeat(32),
                "01".repeat(32)
            )
        );
    }

    fn json_with(path: &str) -> Vec<u8> {
        format!(
            "{{\"version\":2,\"note\":\"\",\"files\":[{{\"path\":{},\"size\":1,\"sha256\":\"{}\",\"blobs\":[\"{}\"]}}]}}",
            serde_json::to_string(path).unwrap(),
            "00".repeat(32),
            "01".repeat(32)
        )
        .into_bytes()
    }

    #[test]
    fn manifest_rejects_bad_paths() {
        for p in [
            "../x",
            "/etc/passwd",
            "a\\b",
            "a\u{0}b",
            "\u{202e}gpj.exe",
            "x/",
            "",
            "...",
        ] {
            assert!(
                matches!(Manifest::parse(&json_with(p)), Err(PacketError::Name(_))),
                "{p:?}"
            );
            let m = Manifest::new("", vec![file(p, 1)]);
            assert!(matches!(m.to_bytes(), Err(PacketError::Name(_))), "{p:?}");
        }
        Manifest::parse(&json_with("ok/é.txt")).unwrap();
    }

    #[test]
    fn manifest_rejects_duplicates_and_conflicts() {
        let dup = |a: &str, b: &str| Manifest::new("", vec![file(a, 1), file(b, 2)]);
        for (a, b) in [("a.pdf", "a.pdf"), ("A.pdf", "a.pdf"), ("Dir/x", "dir/X")] {
            let m = dup(a, b);
            assert!(
                matches!(m.validate(), Err(PacketError::DuplicatePath(_))),
                "{a} {b}"
            );
            let json = serde_json::to_vec(&m).unwrap();
            assert!(matches!(
                Manifest::parse(&json),
                Err(PacketError::DuplicatePath(_))
            ));
        }
        for (a, b) in [
            ("a", "a/b"),
            ("a/b", "a"),
            ("A", "a/b/c"),
            ("x/y", "x/y/z/w"),
        ] {
            assert!(
                matches!(dup(a, b).validate(), Err(PacketError::PathConflict { .. })),
                "{a} {b}"
            );
        }
        // A name sorting between a file and its would-be children.
        let m = Manifest::new(
            "",
            vec![file("a/b", 1), file("a-c", 2), file("a", 3), file("a.d", 4)],
        );
        assert!(matches!(
            m.validate(),
            Err(PacketError::PathConflict { .. })
        ));
        // Near misses are fine.
        Manifest::new(
            "",
            vec![
                file("a/b", 1),
                file("a/c", 2),
                file("ab", 3),
                file("a-c/d", 4),
                file("a.b/c", 5),
                file("b/a", 6),
            ],
        )
        .validate()
        .unwrap();
    }

    #[test]
    fn manifest_rejects_bad_json() {
        let good = String::from_utf8(manifest().to_bytes().unwrap()).unwrap();
        let h = "dd".repeat(32);
        for bad in [
            good.replacen("{\"version\":2,", "{\"version\":2,\"extra\":0,", 1),
            good.replacen("\"size\":", "\"mode\":420,\"size\":", 1),
            good.replacen("\"version\":2", "\"version\":1", 1),
            good.replacen("\"version\":2", "\"version\":3", 1),
            good.replacen("\"version\":2,", "\"version\":2,\"version\":2,", 1),
            good.replacen("\"version\":2,", "", 1),
            good.replacen("\"blobs\":[", "\"blob\":[", 1),
            good.replacen(
                &format!("\"blobs\":[\"{}\"]", "22".repeat(32)),
                "\"blobs\":[]",
                1,
            ),
            good.replacen(
                &format!("\"blobs\":[\"{}\"]", "22".repeat(32)),
                &format!("\"blobs\":\"{}\"", "22".repeat(32)),
                1,
            ),
            good.replacen(&h, &h.to_uppercase(), 1),
            good.replacen(&h, &h[..62], 1),
            good.replacen(&h, &format!("{h}00"), 1),
            good.replacen("\"size\":3400", "\"size\":-1", 1),
            good.replacen("\"size\":3400", "\"size\":1.5", 1),
            good.replacen("\"size\":3400", "\"size\":18446744073709551616", 1),
            good.replacen("\"size\":3400", "\"size\":\"3400\"", 1),
            format!("{good}x"),
            format!("{good}{good}"),
            good[..good.len() - 1].to_owned(),
            "null".to_owned(),
            "[]".to_owned(),
            String::new(),
            "[".repeat(10_000),
        ] {
            assert_ne!(bad, good);
            let r = Manifest::parse(bad.as_bytes());
            assert!(r.is_err(), "{bad}");
        }
        assert_eq!(
            Manifest::parse(
                good.replacen("\"version\":2", "\"version\":1", 1)
                    .as_bytes()
            ),
            Err(PacketError::ManifestVersion(1))
        );
        assert!(matches!(
            Manifest::parse(
                good.replacen("{\"version\":2,", "{\"version\":2,\"extra\":0,", 1)
                    .as_bytes()
            ),
            Err(PacketError::Json(m)) if m.contains("extra")
        ));
    }

    #[test]
    fn manifest_limits() {
        assert!(matches!(
            Manifest::parse(&vec![b' '; MAX_MANIFEST + 1]),
            Err(PacketError::TooLarge { .. })
        ));
        let m = Manifest::new("n".repeat(MAX_NOTE + 1), vec![]);
        assert_eq!(m.validate(), Err(PacketError::NoteTooLong(MAX_NOTE + 1)));
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(
            Manifest::parse(&json),
            Err(PacketError::NoteTooLong(MAX_NOTE + 1))
        );
        Manifest::new("n".repeat(MAX_NOTE), vec![])
            .to_bytes()
            .unwrap();
        let files: Vec<ManifestFile> = (0..=MAX_FILES)
            .map(|i| ManifestFile {
                path: format!("f{i}"),
                size: 0,
                sha256: [0; 32],
                blobs: vec![[0; 32]],
            })
            .collect();
        let m = Manifest::new("", files);
        assert_eq!(m.validate(), Err(PacketError::TooManyFiles(MAX_FILES + 1)));
        // Too many bytes once serialised (many parts).
        let files: Vec<ManifestFile> = (0..MAX_FILES)
            .map(|i| ManifestFile {
                path: format!(
                    "{i}/{}/{}/{}",
                    "x".repeat(250),
                    "y".repeat(250),
                    "z".repeat(250)
                ),
                size: 0,
                sha256: [0; 32],
                blobs: vec![[0; 32]; MAX_BLOBS / MAX_FILES],
            })
            .collect();
        let m = Manifest::new("", files);
        m.validate().unwrap();
        assert!(matches!(m.to_bytes(), Err(PacketError::TooLarge { .. })));
    }

    #[test]
    fn manifest_check_against() {
        let d = Descriptor {
            blobs: vec![blob(0x44, 1), blob(0x22, 2), blob(0x33, 3)],
            ..packet()
        };
        let m = manifest();
        m.check_against(&d).unwrap();
        // A file whose blob the descriptor does not list.
        let mut missing = m.clone();
        missing.files.push(file("extra.pdf", 0x55));
        assert_eq!(
            missing.check_against(&d),
            Err(PacketError::MissingBlob {
                path: "extra.pdf".to_owned(),
                blob: "55".repeat(32)
            })
        );
        // A listed blob that no file uses.
        let mut extra = m.clone();
        extra.files.remove(1);
        assert_eq!(
            extra.check_against(&d),
            Err(PacketError::ExtraBlob("33".repeat(32)))
        );
        // Two files sharing one listed blob.
        let mut shared = m.clone();
        shared.files[1].blobs = shared.files[0].blobs.clone();
        assert!(matches!(
            shared.check_against(&d),
            Err(PacketError::MissingBlob { .. })
        ));
        // The manifest's own blob is not a file blob.
        let mut own = m;
        own.files[0].blobs = vec![d.manifest.sha256];
        assert!(own.check_against(&d).is_err());
    }

    // --- properties -------------------------------------------------------

    fn arb_descriptor() -> impl Strategy<Value = Descriptor> {
        (
            any::<bool>(),
            "[A-Za-z0-9][A-Za-z0-9._-]{0,20}",
            "[a-z]{1,4}-[0-9a-f]{32}",
            "[A-Za-z0-9][A-Za-z0-9._-]{0,40}",
            "[a-z0-9-]{1,30}",
            any::<Option<u64>>(),
            any::<u64>(),
            (1usize..=5, "[a-z0-9][a-z0-9-]{0,9}", any::<bool>()),
            (any::<[u8; 32]>(), any::<u64>()),
            prop::collection::hash_map(any::<[u8; 32]>(), any::<u64>(), 0..12),
        )
            .prop_filter_map(
                "manifest hash collides",
                |(
                    deliverable,
                    matter,
                    id,
                    packet,
                    task,
                    due,
                    created_at,
                    (n, org, rec),
                    m,
                    blobs,
                )| {
                    if blobs.contains_key(&m.0) {
                        return None;
                    }
                    let recipients: Vec<Recipient> = (0..n)
                        .map(|i| rcpt(&format!("user{i}@{org}"), AGE[i]))
                        .collect();
                    Some(Descriptor {
                        kind: if deliverable {
                            Kind::Deliverable
                        } else {
                            Kind::Packet
                        },
                        matter,
                        id,
                        packet: deliverable.then_some(packet),
                        task,
                        due,
                        sender: recipients[0].principal.clone(),
                        created_at,
                        recipients,
                        recovery: rec.then(|| AGE[5].to_owned()),
                        manifest: BlobRef {
                            sha256: m.0,
                            size: m.1,
                        },
                        blobs: blobs
                            .into_iter()
                            .map(|(sha256, size)| BlobRef { sha256, size })
                            .collect(),
                    })
                },
            )
    }

    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        (
            "\\PC{0,40}",
            prop::collection::btree_map(
                "[a-z]{1,3}(/[a-zA-Z0-9 é._-]{0,5}[a-z])?",
                (any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()),
                0..10,
            ),
        )
            .prop_map(|(note, files)| {
                Manifest::new(
                    note,
                    files
                        .into_iter()
                        .map(|(path, (size, sha256, blob))| ManifestFile {
                            path,
                            size,
                            sha256,
                            blobs: vec![blob],
                        })
                        .collect(),
                )
            })
    }

    /// Applies a byte-level edit to `bytes`.
    fn mutate(bytes: &mut Vec<u8>, pos: usize, op: u8, val: u8) {
        if bytes.is_empty() {
            bytes.push(val);
            return;
        }
        let pos = pos % bytes.len();
        match op % 4 {
            0 => bytes[pos] = val,
            1 => bytes.insert(pos, val),
            2 => {
                bytes.remove(pos);
            }
            _ => bytes[pos] ^= 1 << (val % 8),
        }
    }

    proptest! {
        #[test]
        fn prop_sanitize_never_panics(s in any::<String>()) {
            if let Ok(comps) = sanitize_path(&s) {
                prop_assert_eq!(comps.join("/"), s.clone());
                prop_assert!(comps.len() <= MAX_DEPTH);
                prop_assert!(!s.chars().any(|c| c.is_control() || c == '\\'));
            }
        }

        #[test]
        fn prop_sanitize_path_like(s in "[a./\\\\ \u{202e}\u{85}\n]{0,12}") {
            if let Ok(comps) = sanitize_path(&s) {
                prop_assert_eq!(comps.join("/"), s.clone());
                for c in comps {
                    prop_assert!(c != "." && c != ".." && !c.is_empty());
                    prop_assert!(!c.chars().all(|ch| ch == '.' || ch == ' '));
                }
            }
        }

        #[test]
        fn prop_descriptor_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Descriptor::parse(&bytes);
        }

        #[test]
        fn prop_descriptor_parse_prefixed_text(
            deliverable in any::<bool>(),
            body in "([a-z-]{0,12}(=[ -~]{0,80})?\n){0,20}",
        ) {
            let kind = if deliverable { Kind::Deliverable } else { Kind::Packet };
            let mut bytes = kind.domain().prefix().to_vec();
            bytes.extend_from_slice(body.as_bytes());
            if let Ok(d) = Descriptor::parse(&bytes) {
                prop_assert_eq!(d.to_signed_bytes().unwrap(), bytes);
            }
        }

        #[test]
        fn prop_descriptor_round_trip(d in arb_descriptor()) {
            let bytes = d.to_signed_bytes().unwrap();
            prop_assert_eq!(Descriptor::parse(&bytes).unwrap(), d.clone());
            prop_assert!(bytes.len() <= MAX_DESCRIPTOR);
        }

        #[test]
        fn prop_descriptor_mutations(
            d in arb_descriptor(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        ) {
            let orig = d.to_signed_bytes().unwrap();
            let mut bytes = orig.clone();
            for (pos, op, val) in edits {
                mutate(&mut bytes, pos, op, val);
            }
            match Descriptor::parse(&bytes) {
                // Whatever parses is canonical.
                Ok(p) => {
                    prop_assert_eq!(p.to_signed_bytes().unwrap(), bytes.clone());
                    prop_assert_eq!(p == d, bytes == orig);
                }
                Err(_) => prop_assert_ne!(bytes, orig),
            }
        }

        #[test]
        fn prop_manifest_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Manifest::parse(&bytes);
        }

        #[test]
        fn prop_manifest_round_trip_and_mutations(
            m in arb_manifest(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        ) {
            // Generated paths may legitimately conflict ("a" and "a/b").
            if m.validate().is_ok() {
                let bytes = m.to_bytes().unwrap();
                prop_assert_eq!(Manifest::parse(&bytes).unwrap(), m.clone());
            }
            let mut bytes = serde_json::to_vec(&m).unwrap();
            for (pos, op, val) in edits {
                mutate(&mut bytes, pos, op, val);
            }
            if let Ok(p) = Manifest::parse(&bytes) {
                prop_assert!(p.validate().is_ok());
            }
        }
    }
}
