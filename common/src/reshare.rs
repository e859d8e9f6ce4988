//! Re-sharing an age file without re-encrypting it: a new header for a new
//! reader, the payload unchanged.
//!
//! An age file is a header (one stanza per reader, each wrapping the same
//! 16-byte file key, then a MAC keyed by the file key) followed by the
//! payload, encrypted under a key derived from the file key and a nonce
//! (C2SP age.md). A holder of the file key can therefore write a second
//! header for the same payload: [`reshare`] unwraps the file key with the
//! holder's identities, checks the old header's MAC, wraps the key to the
//! new reader only and MACs the new header. The new reader decrypts
//! `new header ‖ payload`; the payload's own authentication (and the
//! ciphertext hash the sender signed over `old header ‖ payload`) proves
//! it is the sender's.

use age::secrecy::ExposeSecret as _;
use age_core::format::{FileKey, Stanza};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

use crate::agekey::{AgeIdentity, AgeKey, Recipients};

const VERSION_LINE: &str = "age-encryption.org/v1";
/// `--- ` and 43 characters of base64 MAC, then a newline.
const MAC_LINE_LEN: usize = 4 + 43 + 1;
/// Columns of a stanza body line.
const BODY_COLUMNS: usize = 64;
/// The longest header accepted (a packet to a few hundred hybrid readers).
pub const MAX_HEADER: usize = 2 << 20;

/// A parsed age v1 header.
#[derive(Debug)]
pub struct Header {
    /// Its bytes, through the MAC line's newline.
    pub bytes: Vec<u8>,
    stanzas: Vec<Stanza>,
    mac: [u8; 32],
}

impl Header {
    /// Parses the header at the start of `data`: `Ok(None)` if `data` ends
    /// before the header does (read more), an error if it is not an age v1
    /// header.
    pub fn parse(data: &[u8]) -> Result<Option<Self>, String> {
        let mut lines = Lines { data, at: 0 };
        let Some(first) = lines.next()? else {
            return Ok(None);
        };
        if first != VERSION_LINE.as_bytes() {
            return Err("not an age v1 file".into());
        }
        let mut stanzas = Vec::new();
        loop {
            let Some(line) = lines.next()? else {
                return Ok(None);
            };
            if let Some(mac) = line.strip_prefix(b"--- ") {
                if stanzas.is_empty() {
                    return Err("age header without a stanza".into());
                }
                let mac = B64
                    .decode(mac)
                    .ok()
                    .and_then(|m| <[u8; 32]>::try_from(m).ok())
                    .ok_or("malformed header MAC")?;
                return Ok(Some(Self {
                    bytes: data[..lines.at].to_vec(),
                    stanzas,
                    mac,
                }));
            }
            let Some(args) = line.strip_prefix(b"-> ") else {
                return Err("malformed age header line".into());
            };
            let args = std::str::from_utf8(args).map_err(|_| "malformed stanza line")?;
            // Arguments are non-empty runs of visible ASCII.
            if args
                .split(' ')
                .any(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err("malformed stanza arguments".into());
            }
            let mut args = args.split(' ').map(str::to_owned);
            let tag = args.next().ok_or("empty stanza")?;
            let args: Vec<String> = args.collect();
            // The body: full 64-column lines, then one shorter final line.
            let mut body_b64 = Vec::new();
            loop {
                let Some(line) = lines.next()? else {
                    return Ok(None);
                };
                if line.len() > BODY_COLUMNS
                    || !line
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                {
                    return Err("age stanza body missing or malformed".into());
                }
                body_b64.extend_from_slice(line);
                if line.len() < BODY_COLUMNS {
                    break;
                }
            }
            let body = B64
                .decode(&body_b64)
                .map_err(|_| "stanza body is not canonical base64")?;
            stanzas.push(Stanza { tag, args, body });
        }
    }

    /// Number of stanzas (readers, plus any grease).
    pub fn stanzas(&self) -> usize {
        self.stanzas.len()
    }

    /// The file key, unwrapped with one of `ids` and checked against the
    /// header's MAC.
    fn file_key(&self, ids: &[AgeIdentity]) -> Result<FileKey, String> {
        let key = ids
            .iter()
            .find_map(|id| age::Identity::unwrap_stanzas(id, &self.stanzas))
            .ok_or("none of this user's age keys can unwrap the file key")?
            .map_err(|e| format!("cannot unwrap the file key: {e}"))?;
        if !self.made_with(&key) {
            return Err("the header's MAC does not match its file key".into());
        }
        Ok(key)
    }

    /// Whether the header's MAC was made with `key`.
    fn made_with(&self, key: &FileKey) -> bool {
        mac(key, &self.bytes[..self.bytes.len() - MAC_LINE_LEN + 3]) == self.mac
    }
}

/// Checks that the file key `new` (a re-share header) opens for one of
/// `ids` is the key `old` (the sender's header, covered by the signed
/// descriptor's hash) was made with: its MAC checks with it. So a re-share
/// opens exactly what the sender's recipients read, never another key a
/// payload might also decrypt under (ChaCha20-Poly1305 does not commit to
/// its key).
pub fn same_file_key(old: &Header, new: &Header, ids: &[AgeIdentity]) -> Result<(), String> {
    let key = new.file_key(ids)?;
    if old.made_with(&key) {
        Ok(())
    } else {
        Err(
            "the re-share header's file key is not the one the sender's header was made with"
                .into(),
        )
    }
}

/// Lines of `data` without their newlines; `None` at an unfinished line.
struct Lines<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<Option<&'a [u8]>, String> {
        let rest = &self.data[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_HEADER {
                return Err("age header too large".into());
            }
            return Ok(None);
        };
        self.at += end + 1;
        if self.at > MAX_HEADER {
            return Err("age header too large".into());
        }
        Ok(Some(&rest[..end]))
    }
}

/// The header MAC: HMAC-SHA-256 keyed by HKDF-SHA-256(file key, "header")
/// over the header through `---`.
fn mac(key: &FileKey, covered: &[u8]) -> [u8; 32] {
    let mac_key = zeroize::Zeroizing::new(age_core::primitives::hkdf(
        &[],
        b"header",
        key.expose_secret(),
    ));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key[..]), covered);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A header for the payload that follows `old`, readable by `to` only.
/// Fails (changing nothing) unless one of `ids` unwraps `old`'s file key
/// and its MAC checks.
pub fn reshare(old: &Header, ids: &[AgeIdentity], to: &AgeKey) -> Result<Vec<u8>, String> {
    let key = old.file_key(ids)?;
    let stanzas = Recipients::new([to])?.wrap(&key)?;
    let mut out = Vec::with_capacity(256 + stanzas.iter().map(|s| s.body.len() * 2).sum::<usize>());
    out.extend_from_slice(VERSION_LINE.as_bytes());
    out.push(b'\n');
    for s in &stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(s.tag.as_bytes());
        for a in &s.args {
            out.push(b' ');
            out.extend_from_slice(a.as_bytes());
        }
        out.push(b'\n');
        let body = B64.encode(&s.body);
        let mut rest = body.as_bytes();
        loop {
            let (line, more) = rest.split_at(rest.len().min(BODY_COLUMNS));
            out.extend_from_slice(line);
            out.push(b'\n');
            rest = more;
            // The last line is shorter than 64 columns (empty if need be).
            if line.len() < BODY_COLUMNS {
                break;
            }
        }
    }
    out.extend_from_slice(b"---");
    let tag = mac(&key, &out);
    out.push(b' ');
    out.extend_from_slice(B64.encode(tag).as_bytes());
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    fn encrypt(to: &[&AgeKey], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Recipients::new(to.iter().copied())
            .unwrap()
            .encryptor()
            .unwrap()
            .wrap_output(&mut out)
            .unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        out
    }

    fn decrypt(file: &[u8], id: &AgeIdentity) -> Result<Vec<u8>, String> {
        let dec = age::Decryptor::new_buffered(file).map_err(|e| e.to_string())?;
        let mut r = dec
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        let mut plain = Vec::new();
        r.read_to_end(&mut plain).map_err(|e| e.to_string())?;
        Ok(plain)
    }

    #[test]
    fn a_new_header_opens_the_same_payload_for_the_new_reader_only() {
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let alice = AgeIdentity::generate_hybrid();
        let bob = AgeIdentity::generate_hybrid();
        let carol = AgeIdentity::generate_classic();
        let eve = AgeIdentity::generate_hybrid();
        let file = encrypt(&[&alice.public(), &bob.public()], &plain);
        // Read in pieces: None until the header is whole.
        assert!(Header::parse(&file[..20]).unwrap().is_none());
        let old = Header::parse(&file).unwrap().unwrap();
        let payload = &file[old.bytes.len()..];
        for to in [&carol, &eve] {
            let new = reshare(&old, std::slice::from_ref(&bob), &to.public()).unwrap();
            let mut shared = new.clone();
            shared.extend_from_slice(payload);
            assert_eq!(decrypt(&shared, to).unwrap(), plain);
            // Nobody else's stanza is in it.
            assert!(decrypt(&shared, &alice).is_err());
            assert_eq!(Header::parse(&new).unwrap().unwrap().stanzas(), 1);
        }
        // The new header opens the key the old one was made with; a header
        // for another file's key does not pass.
        let parse = |b: &[u8]| Header::parse(b).unwrap().unwrap();
        let new = parse(&reshare(&old, std::slice::from_ref(&bob), &carol.public()).unwrap());
        same_file_key(&old, &new, std::slice::from_ref(&carol)).unwrap();
        let other = parse(&encrypt(&[&bob.public()], b"other"));
        let foreign = parse(&reshare(&other, std::slice::from_ref(&bob), &carol.public()).unwrap());
        let err = same_file_key(&old, &foreign, std::slice::from_ref(&carol)).unwrap_err();
        assert!(err.contains("not the one"), "{err}");
        // Someone without the file key cannot reshare.
        let err = reshare(&old, std::slice::from_ref(&eve), &eve.public()).unwrap_err();
        assert!(
            err.contains("cannot unwrap") || err.contains("none of"),
            "{err}"
        );
    }

    #[test]
    fn a_header_whose_mac_was_altered_is_not_reshared() {
        let alice = AgeIdentity::generate_classic();
        let file = encrypt(&[&alice.public()], b"privileged");
        let mut old = Header::parse(&file).unwrap().unwrap();
        old.mac[0] ^= 1;
        let err = reshare(&old, std::slice::from_ref(&alice), &alice.public()).unwrap_err();
        assert!(err.contains("MAC"), "{err}");
        assert!(Header::parse(b"age-encryption.org/v2\n").is_err());
        assert!(Header::parse(b"age-encryption.org/v1\nhello\n").is_err());
    }
}
