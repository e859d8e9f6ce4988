//! The sender side of age's `mlkem768x25519` recipient on aws-lc-rs.
//!
//! A push wraps one file key per age file (each 32 MiB part and the
//! manifest) to every reader, so a 1 GiB packet to 50 hybrid readers makes
//! 1,650 stanzas. With `age::pq` (RustCrypto ML-KEM-768 and curve25519-dalek)
//! one stanza costs about 0.14 ms on the reference machine; aws-lc-rs, which
//! already carries the TLS handshake, does ML-KEM-768 encapsulation about
//! five times faster and X25519 about twice as fast. This module makes the
//! same stanza with those primitives:
//!
//! - X-Wing encapsulation (draft-connolly-cfrg-xwing-kem): ML-KEM-768
//!   encapsulation to the first 1,184 bytes of the recipient, an ephemeral
//!   X25519 key against the last 32, and the combiner
//!   `SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ "\.//^\")` ([`combine`]);
//! - HPKE (RFC 9180) base mode with KEM X-Wing (0x647a), HKDF-SHA256 and
//!   ChaCha20-Poly1305, `info = "age-encryption.org/mlkem768x25519"`, empty
//!   AAD, sealing the 16-byte file key ([`seal`]);
//! - the stanza `-> mlkem768x25519 base64(ct_M ‖ ct_X)` with the 32-byte
//!   sealed key as its body (C2SP age.md).
//!
//! Decryption stays with `age::pq::Identity`, which the CCTV vectors check.
//! The tests check this side against independent implementations: every
//! stanza opens with `age::pq::Identity`; [`combine`] gives the `x-wing`
//! crate's shared key from the same ML-KEM and X25519 inputs; [`seal`]
//! opens with the `hpke` crate's `XWing` suite.

use std::collections::HashSet;

use age::secrecy::ExposeSecret as _;
use age_core::format::{FileKey, Stanza};

use crate::agekey::AgeKey;
use aws_lc_rs::{aead, agreement, digest, hmac, kem};
use base64::Engine as _;
use zeroize::Zeroizing;

/// The stanza type, and the only label such a stanza carries in an
/// all-hybrid file.
const TAG: &str = "mlkem768x25519";
const LABEL_POSTQUANTUM: &str = "postquantum";
/// The HPKE `info` age uses for this recipient type.
const INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
/// X-Wing's domain separator in the combiner.
const XWING_LABEL: &[u8; 6] = br"\.//^\";
/// `"HPKE" ‖ kem_id (X-Wing 0x647a) ‖ kdf_id (HKDF-SHA256 1) ‖ aead_id
/// (ChaCha20-Poly1305 3)`, RFC 9180 §5.1.
const SUITE_ID: &[u8; 10] = b"HPKE\x64\x7a\x00\x01\x00\x03";

const MLKEM_PK: usize = 1184;
const MLKEM_CT: usize = 1088;
/// Recipient bytes: ML-KEM-768 encapsulation key ‖ X25519 public key.
pub(crate) const RECIPIENT_LEN: usize = MLKEM_PK + 32;

/// One hybrid reader, ready to wrap file keys to.
pub(crate) struct HybridRecipient {
    ek_m: kem::EncapsulationKey<kem::AlgorithmId>,
    pk_x: [u8; 32],
    /// Label the stanza `postquantum` (age's rule: a file with it has no
    /// classic stanza); off when the readers are mixed on purpose.
    labelled: bool,
}

impl std::fmt::Debug for HybridRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridRecipient")
            .field("labelled", &self.labelled)
            .finish_non_exhaustive()
    }
}

impl HybridRecipient {
    /// From the `age1pq1…` encoding. [`AgeKey::parse`] checks it first with
    /// `age::pq::Recipient`'s parser (FIPS 203's modulus check on the ML-KEM
    /// key among others, which aws-lc only makes at encapsulation).
    pub(crate) fn parse(recipient: &str, labelled: bool) -> Result<Self, String> {
        AgeKey::parse(crate::agekey::HYBRID, recipient)?;
        let bytes = age_core::primitives::bech32_decode(
            recipient,
            |_| "invalid Bech32 encoding".to_owned(),
            |hrp| {
                (hrp.as_str() == "age1pq")
                    .then_some(())
                    .ok_or_else(|| "not an age1pq1 recipient".to_owned())
            },
            |_, bytes| Ok(bytes.collect::<Vec<u8>>()),
        )?;
        let bytes: &[u8; RECIPIENT_LEN] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "a hybrid recipient has {RECIPIENT_LEN} bytes, not {}",
                bytes.len()
            )
        })?;
        Self::from_bytes(bytes, labelled)
    }

    fn from_bytes(bytes: &[u8; RECIPIENT_LEN], labelled: bool) -> Result<Self, String> {
        let (m, x) = bytes.split_at(MLKEM_PK);
        let ek_m = kem::EncapsulationKey::new(&kem::ML_KEM_768, m)
            .map_err(|e| format!("invalid ML-KEM-768 encapsulation key: {e}"))?;
        let pk_x: [u8; 32] = x.try_into().map_err(|_| "X25519 key length")?;
        Ok(Self {
            ek_m,
            pk_x,
            labelled,
        })
    }

    /// X-Wing encapsulation: `(shared key, ct_M ‖ ct_X)`.
    fn encapsulate(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), &'static str> {
        let (ct_m, ss_m) = self
            .ek_m
            .encapsulate()
            .map_err(|_| "ML-KEM-768 encapsulation failed")?;
        let ephemeral = agreement::PrivateKey::generate(&agreement::X25519)
            .map_err(|_| "X25519 key generation failed")?;
        let ct_x = ephemeral
            .compute_public_key()
            .map_err(|_| "X25519 public key")?;
        let ss_x = agreement::agree(
            &ephemeral,
            agreement::UnparsedPublicKey::new(&agreement::X25519, &self.pk_x),
            "X25519 agreement failed (a low-order recipient key)",
            |ss_x| {
                <[u8; 32]>::try_from(ss_x)
                    .map(Zeroizing::new)
                    .map_err(|_| "X25519 shared secret length")
            },
        )?;
        let ct_x: &[u8; 32] = ct_x.as_ref().try_into().map_err(|_| "X25519 length")?;
        let ss_m: &[u8; 32] = ss_m
            .as_ref()
            .try_into()
            .map_err(|_| "ML-KEM shared secret length")?;
        if ct_m.as_ref().len() != MLKEM_CT {
            return Err("ML-KEM-768 ciphertext length");
        }
        let ss = combine(ss_m, &ss_x, ct_x, &self.pk_x);
        let mut enc = Vec::with_capacity(MLKEM_CT + 32);
        enc.extend_from_slice(ct_m.as_ref());
        enc.extend_from_slice(ct_x);
        Ok((ss, enc))
    }
}

impl age::Recipient for HybridRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let fail = |what: &str| age::EncryptError::Io(std::io::Error::other(what.to_owned()));
        let (ss, enc) = self.encapsulate().map_err(fail)?;
        let body = seal(&ss, file_key.expose_secret()).map_err(fail)?;
        let labels = if self.labelled {
            HashSet::from([LABEL_POSTQUANTUM.to_owned()])
        } else {
            HashSet::new()
        };
        Ok((
            vec![Stanza {
                tag: TAG.to_owned(),
                args: vec![base64::engine::general_purpose::STANDARD_NO_PAD.encode(enc)],
                body,
            }],
            labels,
        ))
    }
}

/// X-Wing's combiner: `SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ XWingLabel)`.
pub(crate) fn combine(
    ss_m: &[u8; 32],
    ss_x: &[u8; 32],
    ct_x: &[u8; 32],
    pk_x: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut h = digest::Context::new(&digest::SHA3_256);
    for part in [&ss_m[..], ss_x, ct_x, pk_x, XWING_LABEL] {
        h.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(h.finish().as_ref());
    out
}

/// HKDF-Extract (RFC 5869) over RFC 9180's labelled input:
/// `HMAC(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)`.
fn labeled_extract(salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [&b"HPKE-v1"[..], SUITE_ID, label, ikm] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// HKDF-Expand (RFC 5869) of at most one block over RFC 9180's labelled
/// info: the first `len` bytes of
/// `HMAC(prk, I2OSP(len, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info ‖ 0x01)`.
fn labeled_expand(prk: &[u8; 32], label: &[u8], info: &[u8], len: u8) -> Zeroizing<[u8; 32]> {
    debug_assert!(len <= 32, "one HKDF-SHA256 block");
    let key = hmac::Key::new(hmac::HMAC_SHA256, prk);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [&[0, len][..], b"HPKE-v1", SUITE_ID, label, info, &[1]] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out[..usize::from(len)].copy_from_slice(&ctx.sign().as_ref()[..usize::from(len)]);
    out
}

/// `HPKE.SealBase` (RFC 9180 §5.1, §6.1) of `plaintext` under the KEM
/// shared secret `ss`, with age's `info` and an empty AAD: the first (and
/// only) message of the context, so the nonce is `base_nonce` itself.
pub(crate) fn seal(ss: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, &'static str> {
    // Base mode: psk and psk_id are empty.
    let psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(b"", b"info_hash", INFO);
    let mut context = Zeroizing::new([0u8; 65]);
    context[0] = 0x00; // mode_base
    context[1..33].copy_from_slice(&psk_id_hash[..]);
    context[33..].copy_from_slice(&info_hash[..]);
    let secret = labeled_extract(ss, b"secret", b"");
    let key = labeled_expand(&secret, b"key", &context[..], 32);
    let nonce = labeled_expand(&secret, b"base_nonce", &context[..], 12);

    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key[..]).map_err(|_| "AEAD key")?,
    );
    let nonce = aead::Nonce::try_assume_unique_for_key(&nonce[..12]).map_err(|_| "AEAD nonce")?;
    let mut out = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, aead::Aad::empty(), &mut out)
        .map_err(|_| "AEAD seal failed")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use age::Identity as _;
    use age::Recipient as _;

    use super::*;

    fn pq_pair() -> (age::pq::Identity, String) {
        let id = age::pq::Identity::generate();
        let r = id.to_public().to_string();
        (id, r)
    }

    #[test]
    fn every_stanza_opens_with_age_pq_identity() {
        let (id, r) = pq_pair();
        let ours = HybridRecipient::parse(&r, true).unwrap();
        for i in 0..64u8 {
            let file_key = FileKey::new(Box::new([i; 16]));
            let (stanzas, labels) = ours.wrap_file_key(&file_key).unwrap();
            assert_eq!(labels, HashSet::from(["postquantum".to_owned()]));
            assert_eq!(stanzas.len(), 1);
            assert_eq!(stanzas[0].tag, "mlkem768x25519");
            assert_eq!(stanzas[0].args.len(), 1);
            assert_eq!(stanzas[0].body.len(), 32);
            let opened = id
                .unwrap_stanza(&stanzas[0])
                .expect("our stanza is for this identity")
                .expect("age opens our stanza");
            assert_eq!(opened.expose_secret(), &[i; 16]);
        }
        // Someone else's identity does not open it (and says so, not panics).
        let (other, _) = pq_pair();
        let (stanzas, _) = ours
            .wrap_file_key(&FileKey::new(Box::new([9; 16])))
            .unwrap();
        assert!(!matches!(other.unwrap_stanza(&stanzas[0]), Some(Ok(_))));
    }

    #[test]
    fn whole_files_decrypt_with_age_and_mixed_wraps_carry_no_label() {
        let (id, r) = pq_pair();
        let ours = HybridRecipient::parse(&r, false).unwrap();
        let (_, labels) = ours
            .wrap_file_key(&FileKey::new(Box::new([1; 16])))
            .unwrap();
        assert!(labels.is_empty());
        let payload = b"privileged and confidential".repeat(1000);
        let mut out = Vec::new();
        let e =
            age::Encryptor::with_recipients(std::iter::once(&ours as &dyn age::Recipient)).unwrap();
        let mut w = e.wrap_output(&mut out).unwrap();
        w.write_all(&payload).unwrap();
        w.finish().unwrap();
        let d = age::Decryptor::new(&out[..]).unwrap();
        let mut r = d
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn combiner_matches_the_x_wing_crate() {
        use kem_traits::{Decapsulate as _, Decapsulator as _, KeyExport as _};
        let dk = x_wing::DecapsulationKey::from([7u8; 32]);
        let ek = dk.encapsulation_key();
        let pk = ek.to_bytes();
        let pk_x: [u8; 32] = pk[MLKEM_PK..].try_into().unwrap();
        let ek_m =
            ml_kem::EncapsulationKey::<ml_kem::MlKem768>::new(pk[..MLKEM_PK].try_into().unwrap())
                .unwrap();
        for seed in 0..8u8 {
            let mut randomness = [0u8; 64];
            for (i, b) in randomness.iter_mut().enumerate() {
                *b = seed.wrapping_mul(31).wrapping_add(i as u8);
            }
            let (ct, ss) = ek.encapsulate_deterministic(&randomness.into());
            let rand_m: [u8; 32] = randomness[..32].try_into().unwrap();
            let rand_x: [u8; 32] = randomness[32..].try_into().unwrap();
            let (ct_m, ss_m) = ek_m.encapsulate_deterministic(&rand_m.into());
            let e = x25519_dalek::StaticSecret::from(rand_x);
            let ct_x = x25519_dalek::PublicKey::from(&e);
            let ss_x = e.diffie_hellman(&x25519_dalek::PublicKey::from(pk_x));
            let ss_m: [u8; 32] = ss_m.as_slice().try_into().unwrap();
            let ours = combine(&ss_m, ss_x.as_bytes(), ct_x.as_bytes(), &pk_x);
            assert_eq!(&ours[..], ss.as_slice());
            let ct_bytes = ct.as_slice();
            assert_eq!(&ct_bytes[..MLKEM_CT], ct_m.as_slice());
            assert_eq!(&ct_bytes[MLKEM_CT..], ct_x.as_bytes());
            assert_eq!(dk.decapsulate(&ct).as_slice(), &ours[..]);
        }
    }

    #[test]
    fn seal_opens_with_the_hpke_crate() {
        use hpke::{Deserializable as _, Kem as _};
        let (sk, pk) = hpke::kem::XWing::derive_keypair(b"matterdrop hybrid_wrap test ikm!");
        let ours = HybridRecipient::from_bytes(
            hpke::Serializable::to_bytes(&pk)
                .as_slice()
                .try_into()
                .unwrap(),
            true,
        )
        .unwrap();
        for i in 0..16u8 {
            let (ss, enc) = ours.encapsulate().unwrap();
            let body = seal(&ss, &[i; 16]).unwrap();
            let encapped = <hpke::kem::XWing as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
            let opened = hpke::single_shot_open::<
                hpke::aead::ChaCha20Poly1305,
                hpke::kdf::HkdfSha256,
                hpke::kem::XWing,
            >(&hpke::OpModeR::Base, &sk, &encapped, INFO, &body, b"")
            .unwrap();
            assert_eq!(opened, [i; 16]);
        }
    }

    #[test]
    #[allow(deprecated)] // the classic type, to refuse it
    fn bad_recipients_are_refused() {
        let (_, r) = pq_pair();
        assert!(HybridRecipient::parse(&r[..r.len() - 1], true).is_err());
        let classic = age::x25519::Identity::generate().to_public().to_string();
        assert!(HybridRecipient::parse(&classic, true).is_err());
        // An ML-KEM key whose coefficients are out of range (all 0xff) is
        // not an encapsulation key (FIPS 203 §7.2's modulus check).
        let bad = HybridRecipient::from_bytes(&[0xff; RECIPIENT_LEN], true);
        // aws-lc takes it and refuses at encapsulation, which is why parse
        // has age check the key first.
        let bad = bad.map(|r| r.encapsulate().map(|_| ()));
        assert!(!matches!(bad, Ok(Ok(()))));
    }
}
