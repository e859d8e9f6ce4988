//! age keys of both kinds, and encryption to a mix of them.
//!
//! - **Hybrid** (`mlkem768x25519`, the default since keys version 2): the
//!   post-quantum recipient type native to age v1.3+, ML-KEM-768 combined
//!   with X25519 (X-Wing) through HPKE. Recipients are `age1pq1…`,
//!   identities `AGE-SECRET-KEY-PQ-1…`, exactly as `age-keygen -pq` writes
//!   them, so the stock `age -d -i identity.txt` decrypts Matterdrop's blobs.
//! - **Classic** (`x25519`): `age1…` and `AGE-SECRET-KEY-1…`, kept so that
//!   existing members and files stay readable. A file key wrapped to an
//!   X25519 stanza is only as confidential as X25519.
//!
//! Parsing, decryption and classic wrapping are the `age` crate's own
//! (`age::pq`, `age::x25519`); hybrid stanzas are made on aws-lc-rs
//! (`hybrid_wrap`, checked against `age::pq` and the `x-wing` and `hpke`
//! crates). This module types the keys, parses them canonically and decides
//! how a mixed set of readers is encrypted to ([`Recipients`]). It is the one place that
//! names the classic types, which `age` marks deprecated.

#![allow(deprecated)]

use std::collections::HashSet;
use std::fmt;

use age::secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::hybrid_wrap::HybridRecipient;

/// The type name of the hybrid post-quantum recipient.
pub const HYBRID: &str = "mlkem768x25519";
/// The type name of the classic recipient.
pub const CLASSIC: &str = "x25519";

/// An age recipient (a reader's public encryption key), typed.
///
/// The string is always the canonical encoding (it re-encodes to itself),
/// so two equal keys compare equal as strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgeKey {
    /// A native age X25519 recipient, `age1…` (classic).
    X25519(String),
    /// A native age ML-KEM-768 + X25519 recipient, `age1pq1…` (hybrid,
    /// post-quantum).
    MlKem768X25519(String),
}

/// How many checked hybrid recipients [`valid_hybrid`] remembers.
const VALID_HYBRID_MEMO: usize = 4096;

/// SHA-256 of hybrid recipient strings already found valid and canonical
/// in this process. Checking one (Bech32 of 1,959 characters, FIPS 203's
/// modulus check, a low-order X25519 test, re-encoding) takes about 0.2 ms,
/// and a push meets each reader's key several times (roster statements,
/// the descriptor it signs, the wrapping) as the server does on every
/// push: 50 readers cost 30–40 ms without the memo.
fn valid_hybrid() -> &'static std::sync::Mutex<HashSet<[u8; 32]>> {
    static MEMO: std::sync::OnceLock<std::sync::Mutex<HashSet<[u8; 32]>>> =
        std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

impl AgeKey {
    /// Parses a recipient given its type name ([`CLASSIC`] or [`HYBRID`]);
    /// the value must be in canonical form.
    pub fn parse(kind: &str, value: &str) -> Result<Self, String> {
        let excerpt = || {
            let e: String = value.chars().take(24).collect();
            if e.len() < value.len() {
                format!("{e}…")
            } else {
                e
            }
        };
        match kind {
            CLASSIC => {
                let r = value
                    .parse::<age::x25519::Recipient>()
                    .map_err(|e| format!("invalid x25519 age recipient {:?}: {e}", excerpt()))?;
                if r.to_string() != value {
                    return Err(format!(
                        "x25519 age recipient {:?} is not in canonical form",
                        excerpt()
                    ));
                }
                Ok(Self::X25519(value.to_owned()))
            }
            HYBRID => {
                let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
                if valid_hybrid().lock().is_ok_and(|v| v.contains(&digest)) {
                    return Ok(Self::MlKem768X25519(value.to_owned()));
                }
                let r = value.parse::<age::pq::Recipient>().map_err(|e| {
                    format!("invalid mlkem768x25519 age recipient {:?}: {e}", excerpt())
                })?;
                if r.to_string() != value {
                    return Err(format!(
                        "mlkem768x25519 age recipient {:?} is not in canonical form",
                        excerpt()
                    ));
                }
                if let Ok(mut v) = valid_hybrid().lock() {
                    if v.len() >= VALID_HYBRID_MEMO {
                        v.clear();
                    }
                    v.insert(digest);
                }
                Ok(Self::MlKem768X25519(value.to_owned()))
            }
            other => Err(format!(
                "unknown age recipient type {:?} (known: {HYBRID}, {CLASSIC})",
                other.chars().take(32).collect::<String>()
            )),
        }
    }

    /// Parses a recipient string, inferring its type from its prefix
    /// (`age1pq1` hybrid, other `age1` classic).
    pub fn from_recipient(value: &str) -> Result<Self, String> {
        if value.starts_with("age1pq1") {
            Self::parse(HYBRID, value)
        } else if value.starts_with("age1") {
            Self::parse(CLASSIC, value)
        } else {
            Err(format!(
                "unsupported age recipient {:?}: expected age1pq1… (hybrid) or age1… (classic)",
                value.chars().take(24).collect::<String>()
            ))
        }
    }

    /// The type name ([`CLASSIC`] or [`HYBRID`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::X25519(_) => CLASSIC,
            Self::MlKem768X25519(_) => HYBRID,
        }
    }

    /// Whether a file key wrapped to this recipient stays confidential
    /// against a quantum computer.
    pub fn is_post_quantum(&self) -> bool {
        matches!(self, Self::MlKem768X25519(_))
    }

    /// A word for people: `hybrid` or `classic`.
    pub fn kind_label(&self) -> &'static str {
        if self.is_post_quantum() {
            "hybrid"
        } else {
            "classic"
        }
    }

    /// A short fingerprint people can compare with the firm's records:
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the recipient
    /// string.
    pub fn fingerprint(&self) -> String {
        use base64::Engine as _;
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(Sha256::digest(self.recipient().as_bytes()))
        )
    }

    /// The recipient string (`age1…` or `age1pq1…`).
    pub fn recipient(&self) -> &str {
        match self {
            Self::X25519(s) | Self::MlKem768X25519(s) => s,
        }
    }

    /// The recipient, shortened for a table: its first 16 characters.
    pub fn short(&self) -> String {
        let r = self.recipient();
        if r.len() > 20 {
            format!("{}…", &r[..16])
        } else {
            r.to_owned()
        }
    }
}

impl fmt::Display for AgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.recipient())
    }
}

/// One secret age key.
#[derive(Clone)]
pub enum AgeIdentity {
    /// `AGE-SECRET-KEY-1…`.
    X25519(age::x25519::Identity),
    /// `AGE-SECRET-KEY-PQ-1…`.
    MlKem768X25519(age::pq::Identity),
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity({})", self.public())
    }
}

impl AgeIdentity {
    /// A new hybrid (post-quantum) identity.
    pub fn generate_hybrid() -> Self {
        Self::MlKem768X25519(age::pq::Identity::generate())
    }

    /// A new classic X25519 identity.
    pub fn generate_classic() -> Self {
        Self::X25519(age::x25519::Identity::generate())
    }

    /// Parses one identity line (`AGE-SECRET-KEY-PQ-1…` or
    /// `AGE-SECRET-KEY-1…`). The error never repeats the secret.
    pub fn parse(line: &str) -> Result<Self, String> {
        if line.starts_with("AGE-SECRET-KEY-PQ-1") {
            line.parse::<age::pq::Identity>()
                .map(Self::MlKem768X25519)
                .map_err(|e| format!("invalid hybrid age identity: {e}"))
        } else if line.starts_with("AGE-SECRET-KEY-1") {
            line.parse::<age::x25519::Identity>()
                .map(Self::X25519)
                .map_err(|e| format!("invalid x25519 age identity: {e}"))
        } else {
            Err("not an age identity (AGE-SECRET-KEY-PQ-1… or AGE-SECRET-KEY-1…)".to_owned())
        }
    }

    /// Every identity in an identity file's text (comments and blank lines
    /// skipped), in file order. A line that starts like an identity but does
    /// not parse is an error: a damaged key file must not silently lose a
    /// key.
    pub fn parse_file(text: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Self::parse(line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        Ok(out)
    }

    /// The identity's secret encoding, to be written to a 0600 file.
    pub fn secret_string(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(match self {
            Self::X25519(i) => i.to_string().expose_secret().to_owned(),
            Self::MlKem768X25519(i) => i.to_string().expose_secret().to_owned(),
        })
    }

    /// The matching recipient.
    pub fn public(&self) -> AgeKey {
        match self {
            Self::X25519(i) => AgeKey::X25519(i.to_public().to_string()),
            Self::MlKem768X25519(i) => AgeKey::MlKem768X25519(i.to_public().to_string()),
        }
    }
}

impl age::Identity for AgeIdentity {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        match self {
            Self::X25519(i) => i.unwrap_stanza(stanza),
            Self::MlKem768X25519(i) => i.unwrap_stanza(stanza),
        }
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        match self {
            Self::X25519(i) => i.unwrap_stanzas(stanzas),
            Self::MlKem768X25519(i) => i.unwrap_stanzas(stanzas),
        }
    }
}

/// From this many hybrid readers on, their file-key stanzas are made on two
/// threads ([`HybridGroup`]): every 32 MiB part of a push pays one
/// ML-KEM-768 + X25519 wrap per reader.
const PARALLEL_WRAP: usize = 8;

/// Many hybrid readers wrapped as one age recipient, half of them on a
/// second thread. Its label set is the hybrid recipients' own
/// (`postquantum`, or none among classic readers: see [`Recipients::new`]).
struct HybridGroup {
    recipients: Vec<HybridRecipient>,
}

impl HybridGroup {
    fn wrap_all(
        recipients: &[HybridRecipient],
        file_key: &age_core::format::FileKey,
    ) -> Result<(Vec<age_core::format::Stanza>, HashSet<String>), age::EncryptError> {
        let mut stanzas = Vec::with_capacity(recipients.len());
        let mut labels = HashSet::new();
        for r in recipients {
            let (s, l) = age::Recipient::wrap_file_key(r, file_key)?;
            stanzas.extend(s);
            labels = l;
        }
        Ok((stanzas, labels))
    }
}

impl age::Recipient for HybridGroup {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> Result<(Vec<age_core::format::Stanza>, HashSet<String>), age::EncryptError> {
        let (first, second) = self.recipients.split_at(self.recipients.len() / 2);
        let (a, b) = std::thread::scope(|s| {
            let other = s.spawn(|| Self::wrap_all(first, file_key));
            let mine = Self::wrap_all(second, file_key);
            (other.join(), mine)
        });
        let (mut stanzas, labels) = a.map_err(|_| {
            age::EncryptError::Io(std::io::Error::other("a key-wrapping thread panicked"))
        })??;
        let (more, _) = b?;
        stanzas.extend(more);
        Ok((stanzas, labels))
    }
}

/// The readers of one file, ready to encrypt to.
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send + Sync>>,
    classic: usize,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Recipients({} readers, {} classic)",
            self.keys.len(),
            self.classic
        )
    }
}

impl Recipients {
    /// Prepares `keys` (already validated: [`AgeKey`] values are canonical).
    /// All hybrid or all classic: age's own rules. A mix: hybrid stanzas
    /// for those who have them, classic for the rest.
    ///
    /// age labels hybrid stanzas `postquantum` and refuses to mix them with
    /// classic ones, since such a file is only as confidential as its
    /// classic stanzas. Matterdrop mixes them on purpose when a matter has
    /// classic-only readers and does not require post-quantum keys (the
    /// hybrid stanzas then carry no label): every reader who has a hybrid
    /// key gets a hybrid stanza, the push says which readers are classic,
    /// and a `require-pq` matter refuses instead.
    ///
    /// Hybrid stanzas are made by [`HybridRecipient`] (aws-lc-rs
    /// primitives, about three times faster than `age::pq`'s); files are
    /// still read with `age::pq::Identity`.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a AgeKey>) -> Result<Self, String> {
        let keys: Vec<&AgeKey> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err("no recipients".to_owned());
        }
        let classic = keys.iter().filter(|k| !k.is_post_quantum()).count();
        let mixed = classic > 0 && classic < keys.len();
        let mut hybrid = Vec::new();
        let mut classics: Vec<Box<dyn age::Recipient + Send + Sync>> = Vec::new();
        for k in keys {
            match k {
                AgeKey::X25519(s) => classics.push(Box::new(
                    s.parse::<age::x25519::Recipient>()
                        .map_err(|e| format!("age recipient {s:?}: {e}"))?,
                )),
                AgeKey::MlKem768X25519(s) => hybrid.push(
                    HybridRecipient::parse(s, !mixed)
                        .map_err(|e| format!("age recipient {}: {e}", k.short()))?,
                ),
            }
        }
        let mut out: Vec<Box<dyn age::Recipient + Send + Sync>> =
            Vec::with_capacity(hybrid.len() + classics.len());
        if hybrid.len() >= PARALLEL_WRAP {
            out.push(Box::new(HybridGroup { recipients: hybrid }));
        } else {
            for r in hybrid {
                out.push(Box::new(r));
            }
        }
        out.extend(classics);
        Ok(Self { keys: out, classic })
    }

    /// How many readers have only a classic key.
    pub fn classic(&self) -> usize {
        self.classic
    }

    /// Whether every reader's stanza is post-quantum.
    pub fn all_post_quantum(&self) -> bool {
        self.classic == 0
    }

    /// Stanzas wrapping `key` to these readers (for a header written by
    /// hand: [`crate::reshare`]).
    pub fn wrap(
        &self,
        key: &age_core::format::FileKey,
    ) -> Result<Vec<age_core::format::Stanza>, String> {
        let mut out = Vec::new();
        for k in &self.keys {
            let (stanzas, _) = k
                .wrap_file_key(key)
                .map_err(|e| format!("cannot wrap the file key: {e}"))?;
            out.extend(stanzas);
        }
        Ok(out)
    }

    /// An age encryptor to these readers.
    pub fn encryptor(&self) -> Result<age::Encryptor, age::EncryptError> {
        age::Encryptor::with_recipients(self.keys.iter().map(|k| k.as_ref() as &dyn age::Recipient))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    fn roundtrip(recipients: &Recipients, id: &AgeIdentity) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = recipients
            .encryptor()
            .expect("encryptor")
            .wrap_output(&mut out)
            .expect("wrap");
        w.write_all(b"privileged").expect("write");
        w.finish().expect("finish");
        let dec = age::Decryptor::new_buffered(&out[..]).expect("header");
        let mut r = dec
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .expect("decrypt");
        let mut plain = Vec::new();
        r.read_to_end(&mut plain).expect("read");
        assert_eq!(plain, b"privileged");
        out
    }

    fn stanza_tags(file: &[u8]) -> Vec<String> {
        let end = file
            .windows(4)
            .position(|w| w == b"\n---")
            .expect("an age header");
        let head = String::from_utf8_lossy(&file[..end]).into_owned();
        head.lines()
            .filter_map(|l| l.strip_prefix("-> "))
            .map(|l| l.split(' ').next().unwrap_or("").to_owned())
            // age adds random "grease" stanzas; they are not recipients.
            .filter(|t| !t.ends_with("-grease"))
            .collect()
    }

    #[test]
    fn keys_parse_canonically_by_kind() {
        let h = AgeIdentity::generate_hybrid();
        let c = AgeIdentity::generate_classic();
        let hk = h.public();
        let ck = c.public();
        assert!(hk.recipient().starts_with("age1pq1") && hk.is_post_quantum());
        assert!(ck.recipient().starts_with("age1") && !ck.is_post_quantum());
        assert_eq!(AgeKey::from_recipient(hk.recipient()), Ok(hk.clone()));
        assert_eq!(AgeKey::from_recipient(ck.recipient()), Ok(ck.clone()));
        // The kind is checked against the value.
        assert!(AgeKey::parse(CLASSIC, hk.recipient()).is_err());
        assert!(AgeKey::parse(HYBRID, ck.recipient()).is_err());
        assert!(AgeKey::parse("ssh-ed25519", ck.recipient()).is_err());
        // Non-canonical (upper case) and damaged keys are refused.
        assert!(AgeKey::from_recipient(&hk.recipient().to_uppercase()).is_err());
        let mut cut = hk.recipient().to_owned();
        cut.truncate(cut.len() - 1);
        assert!(AgeKey::from_recipient(&cut).is_err());
        // Identities round-trip and never echo the secret in errors.
        let again = AgeIdentity::parse(&h.secret_string()).expect("parse");
        assert_eq!(again.public(), hk);
        let bad = format!("{}x", &*h.secret_string());
        let e = AgeIdentity::parse(&bad).expect_err("damaged");
        assert!(!e.contains(&bad[20..]), "{e}");
        let file = format!("# c\n{}\n\n{}\n", &*c.secret_string(), &*h.secret_string());
        let ids = AgeIdentity::parse_file(&file).expect("file");
        assert_eq!(
            ids.iter().map(AgeIdentity::public).collect::<Vec<_>>(),
            [ck, hk]
        );
        assert!(AgeIdentity::parse_file("AGE-SECRET-KEY-PQ-1QQQ\n").is_err());
    }

    #[test]
    fn mixes_only_when_readers_differ() {
        let h1 = AgeIdentity::generate_hybrid();
        let h2 = AgeIdentity::generate_hybrid();
        let c = AgeIdentity::generate_classic();
        let all_pq = [h1.public(), h2.public()];
        let r = Recipients::new(&all_pq).expect("recipients");
        assert!(r.all_post_quantum());
        let file = roundtrip(&r, &h2);
        assert_eq!(stanza_tags(&file), [HYBRID, HYBRID]);

        let mixed = [h1.public(), c.public()];
        let r = Recipients::new(&mixed).expect("recipients");
        assert_eq!(r.classic(), 1);
        let file = roundtrip(&r, &h1);
        roundtrip(&r, &c);
        assert_eq!(stanza_tags(&file), [HYBRID, "X25519"]);

        // Without the mixing adapter, age itself refuses the mix.
        let direct: Vec<Box<dyn age::Recipient>> = vec![
            Box::new(
                h1.public()
                    .recipient()
                    .parse::<age::pq::Recipient>()
                    .unwrap(),
            ),
            Box::new(
                c.public()
                    .recipient()
                    .parse::<age::x25519::Recipient>()
                    .unwrap(),
            ),
        ];
        assert!(age::Encryptor::with_recipients(direct.iter().map(|b| b.as_ref() as _)).is_err());
        assert!(Recipients::new(&[]).is_err());
    }

    #[test]
    fn many_hybrid_readers_are_wrapped_in_parallel_and_all_can_read() {
        let ids: Vec<AgeIdentity> = (0..PARALLEL_WRAP + 3)
            .map(|_| AgeIdentity::generate_hybrid())
            .collect();
        let keys: Vec<AgeKey> = ids.iter().map(AgeIdentity::public).collect();
        let r = Recipients::new(&keys).expect("recipients");
        for id in [&ids[0], &ids[ids.len() / 2], &ids[ids.len() - 1]] {
            let file = roundtrip(&r, id);
            assert_eq!(stanza_tags(&file), vec![HYBRID; ids.len()]);
        }
        // Among a classic reader too: every reader still gets its stanza.
        let c = AgeIdentity::generate_classic();
        let mut mixed = keys.clone();
        mixed.push(c.public());
        let r = Recipients::new(&mixed).expect("recipients");
        let file = roundtrip(&r, &c);
        roundtrip(&r, &ids[ids.len() - 1]);
        let mut want = vec![HYBRID; ids.len()];
        want.push("X25519");
        assert_eq!(stanza_tags(&file), want);
    }
}
