//! C2SP transparency log checkpoints (<https://c2sp.org/tlog-checkpoint>):
//! signed notes whose text is `<origin>\n<tree size>\n<base64 root>\n`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::merkle::Hash;
use super::note::{NoteError, NoteSigner, NoteVerifier, open_note, sign_note};

/// A Merkle tree head: the log's origin line, its size and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log identity, such as `example.com/log`: non-empty, one line,
    /// no control characters.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root of the tree at that size.
    pub root: Hash,
}

/// Checks an origin line: non-empty, without newline or other ASCII
/// control character (which a signed note cannot carry).
fn check_origin(origin: &str) -> Result<(), NoteError> {
    if origin.is_empty() {
        return Err(NoteError::MalformedCheckpoint("empty origin"));
    }
    if origin.bytes().any(|b| b < 0x20) {
        return Err(NoteError::MalformedCheckpoint(
            "origin has a newline or control character",
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// Checks that the origin is acceptable, so that [`Checkpoint::to_body`]
    /// produces a body that [`Checkpoint::parse_body`] accepts.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedCheckpoint`] if the origin is empty or holds a
    /// newline or another control character.
    pub fn validate(&self) -> Result<(), NoteError> {
        check_origin(&self.origin)
    }

    /// Formats the note text `<origin>\n<size>\n<base64 root>\n` (standard,
    /// padded base64), without extension lines.
    ///
    /// Only meaningful for a checkpoint that passes
    /// [`Checkpoint::validate`].
    #[must_use]
    pub fn to_body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint note text, strictly: a non-empty origin line, a
    /// decimal size without sign or leading zeros (except `0` itself) that
    /// fits in a `u64`, a canonical standard base64 root of exactly 32
    /// bytes, every line ending in a newline. Extension lines after the
    /// root are allowed by the specification and ignored, but must be
    /// non-empty.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedCheckpoint`] for any deviation.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let malformed = NoteError::MalformedCheckpoint;
        let body = body
            .strip_suffix('\n')
            .ok_or(malformed("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root_b64)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed("fewer than three lines"));
        };
        check_origin(origin)?;

        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("tree size is not a decimal number"));
        }
        if size.len() > 1 && size.starts_with('0') {
            return Err(malformed("tree size has leading zeros"));
        }
        let size = size
            .parse::<u64>()
            .map_err(|_| malformed("tree size out of range"))?;

        let raw = STANDARD
            .decode(root_b64)
            .map_err(|_| malformed("root hash is not base64"))?;
        let root: Hash = raw
            .try_into()
            .map_err(|_| malformed("root hash is not 32 bytes"))?;
        if STANDARD.encode(root) != root_b64 {
            return Err(malformed("root hash is not canonical base64"));
        }

        for extension in lines {
            if extension.is_empty() {
                return Err(malformed("empty extension line"));
            }
            if extension.bytes().any(|b| b < 0x20) {
                return Err(malformed("control character in extension line"));
            }
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Signs a checkpoint: [`sign_note`] over [`Checkpoint::to_body`].
///
/// The C2SP specification recommends that the signer's key name be the
/// checkpoint's origin.
#[must_use]
pub fn sign_checkpoint(checkpoint: &Checkpoint, signer: &NoteSigner) -> String {
    sign_note(&checkpoint.to_body(), signer)
}

/// Verifies a signed checkpoint with [`open_note`] and parses its body with
/// [`Checkpoint::parse_body`].
///
/// The origin is not compared with anything: callers must check that it is
/// the log they expect.
///
/// # Errors
///
/// Any error of [`open_note`] or [`Checkpoint::parse_body`].
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    Checkpoint::parse_body(&open_note(note, verifier)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{EMPTY_ROOT, leaf_hash};
    use ed25519_dalek::SigningKey;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "example.com/behind-the-sofa".to_owned(),
            size: 20852163,
            root: leaf_hash(b"x"),
        }
    }

    #[test]
    fn spec_example_parses() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::parse_body(body).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(c.to_body(), body);
    }

    #[test]
    fn body_round_trip() {
        for c in [
            cp(),
            Checkpoint {
                origin: "o".to_owned(),
                size: 0,
                root: EMPTY_ROOT,
            },
            Checkpoint {
                origin: "x y+z \u{e9}".to_owned(),
                size: u64::MAX,
                root: [0xff; 32],
            },
        ] {
            c.validate().unwrap();
            assert_eq!(Checkpoint::parse_body(&c.to_body()).unwrap(), c);
        }
        let body = "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
        assert_eq!(Checkpoint::parse_body(body).unwrap().root, EMPTY_ROOT);
    }

    #[test]
    fn extension_lines_are_ignored() {
        let c = cp();
        let body = format!("{}ext one\next-two\n", c.to_body());
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), c);
        let empty_ext = format!("{}\n", c.to_body());
        assert!(Checkpoint::parse_body(&empty_ext).is_err());
        let empty_ext2 = format!("{}a\n\nb\n", c.to_body());
        assert!(Checkpoint::parse_body(&empty_ext2).is_err());
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let root = STANDARD.encode(leaf_hash(b"x"));
        let short = STANDARD.encode([0u8; 31]);
        let long = STANDARD.encode([0u8; 33]);
        let unpadded = root.trim_end_matches('=').to_owned();
        // Same 32 bytes, but non-zero unused trailing bits.
        let mut noncanon = STANDARD.encode([0u8; 32]).into_bytes();
        noncanon[42] = b'B';
        let noncanon = String::from_utf8(noncanon).unwrap();
        let cases = [
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n1\n{root} \n"),
            format!("o\n0x1\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{short}\n"),
            format!("o\n1\n{long}\n"),
            format!("o\n1\n{unpadded}\n"),
            format!("o\n1\n{noncanon}\n"),
            "o\n1\n\n".to_owned(),
            format!("o\r\n1\n{root}\n"),
            format!("o\n1\n{root}\r\n"),
            "o\n1\n".to_owned(),
            String::new(),
        ];
        for body in &cases {
            assert!(
                matches!(
                    Checkpoint::parse_body(body),
                    Err(NoteError::MalformedCheckpoint(_))
                ),
                "{body:?}"
            );
        }
        assert!(Checkpoint::parse_body(&format!("o\n18446744073709551615\n{root}\n")).is_ok());
    }

    #[test]
    fn invalid_origins_fail_validation() {
        for origin in ["", "a\nb", "a\tb"] {
            let c = Checkpoint {
                origin: origin.to_owned(),
                ..cp()
            };
            assert!(c.validate().is_err());
            assert!(Checkpoint::parse_body(&c.to_body()).is_err());
        }
    }

    #[test]
    fn signed_checkpoint_round_trip_and_rejections() {
        let signer = NoteSigner::new(
            "example.com/behind-the-sofa",
            SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let verifier = signer.verifier();
        let c = cp();
        let note = sign_checkpoint(&c, &signer);
        assert!(note.starts_with(&format!(
            "{}\n\u{2014} example.com/behind-the-sofa ",
            c.to_body()
        )));
        assert_eq!(open_checkpoint(&note, &verifier).unwrap(), c);

        // Signed by another key under the same name.
        let other = NoteSigner::new(
            "example.com/behind-the-sofa",
            SigningKey::from_bytes(&[2; 32]),
        )
        .unwrap();
        assert!(open_checkpoint(&sign_checkpoint(&c, &other), &verifier).is_err());
        // Modified size.
        let modified = note.replacen("20852163", "20852164", 1);
        assert!(matches!(
            open_checkpoint(&modified, &verifier),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Truncated signature.
        let truncated = format!("{}\n", &note[..note.len() - 6]);
        assert!(open_checkpoint(&truncated, &verifier).is_err());
        // A validly signed but malformed body.
        let bad = sign_note("o\n01\nAAAA\n", &signer);
        assert!(matches!(
            open_checkpoint(&bad, &verifier),
            Err(NoteError::MalformedCheckpoint(_))
        ));
    }
}
