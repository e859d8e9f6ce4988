//! The user's keys: creation and loading.
//!
//! Files are written 0600 and never overwritten. With a passphrase, the age
//! identity is itself an armored, passphrase-encrypted age file (which the
//! stock `age -d -i identity.txt` accepts, asking for the passphrase) and the
//! signing key is a PKCS#8 `ENCRYPTED PRIVATE KEY` (scrypt + AES-256-CBC,
//! readable by `openssl pkey`).

use std::fs;
use std::io::{Read as _, Write as _};

use age::secrecy::{ExposeSecret as _, SecretString};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, KeypairBytes,
};
use matterdrop_common::agekey::{AgeIdentity, AgeKey};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

use crate::error::{CmdResult, Fail};
use crate::home::{Home, files, write_new};

/// Environment variable holding the key passphrase for scripts.
pub const PASSPHRASE_ENV: &str = "MDROP_PASSPHRASE";

const AGE_ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// What keygen made.
#[derive(Debug, serde::Serialize)]
pub struct Generated {
    /// age recipient to share.
    pub age_recipient: AgeKey,
    /// Fingerprint of the signing key.
    pub signing_key_fingerprint: String,
    /// Whether a passphrase protects the private keys.
    pub passphrase: bool,
    /// Files written.
    pub files: Vec<String>,
}

fn passphrase(confirm: bool) -> CmdResult<SecretString> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(SecretString::from(p));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("Passphrase for the Matterdrop keys: ").map_err(|e| {
            Fail::usage(format!("cannot read a passphrase: {e}"))
                .hint(format!("set {PASSPHRASE_ENV}"))
        })?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ")?);
        if *again != *first {
            return Err(Fail::usage("the passphrases do not match"));
        }
    }
    if first.is_empty() {
        return Err(Fail::usage("an empty passphrase protects nothing"));
    }
    Ok(SecretString::from(first.to_string()))
}

/// Creates the key files in `home`: a hybrid (post-quantum) age identity,
/// or with `classic` an X25519 one, and an Ed25519 signing key.
pub fn generate(home: &Home, with_passphrase: bool, classic: bool) -> CmdResult<Generated> {
    let names = [
        files::IDENTITY,
        files::RECIPIENT,
        files::SIGNING_KEY,
        files::SIGNING_PUB,
    ];
    for name in names {
        let p = home.path(name);
        if p.exists() {
            return Err(Fail::other(format!(
                "refusing to overwrite {}: keys are never replaced by keygen",
                p.display()
            ))
            .hint("use another --home, or move the old keys away yourself if you really mean to replace them"));
        }
    }
    home.create()?;
    let pass = if with_passphrase {
        Some(passphrase(true)?)
    } else {
        None
    };

    let identity = if classic {
        AgeIdentity::generate_classic()
    } else {
        AgeIdentity::generate_hybrid()
    };
    let recipient = identity.public();
    let identity_text = identity_lines(&identity);
    let identity_file = match &pass {
        None => identity_text.as_bytes().to_vec(),
        Some(p) => encrypt_with_passphrase(identity_text.as_bytes(), p.clone())?,
    };

    let signing = SigningKey::generate(&mut OsRng);
    let signing_pem = signing_key_pem(&signing, pass.as_ref())?;
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Fail::other(format!("encoding public key: {e}")))?;

    write_new(&home.path(files::IDENTITY), &identity_file, 0o600)?;
    write_new(
        &home.path(files::SIGNING_KEY),
        signing_pem.as_bytes(),
        0o600,
    )?;
    write_new(
        &home.path(files::RECIPIENT),
        format!("{recipient}\n").as_bytes(),
        0o644,
    )?;
    write_new(&home.path(files::SIGNING_PUB), public_pem.as_bytes(), 0o644)?;
    Ok(Generated {
        age_recipient: recipient,
        signing_key_fingerprint: matterdrop_common::keys::ed25519_fingerprint(
            &signing.verifying_key(),
        ),
        passphrase: pass.is_some(),
        files: names
            .iter()
            .map(|n| home.path(n).display().to_string())
            .collect(),
    })
}

/// PKCS#8 PEM of the signing key, in the v1 layout (seed only) that every
/// OpenSSL 3 reads; with a passphrase, PBES2 with scrypt (N = 2^14, r = 8,
/// p = 1, inside OpenSSL's default memory limit) and AES-256-CBC.
fn signing_key_pem(
    signing: &SigningKey,
    pass: Option<&SecretString>,
) -> CmdResult<Zeroizing<String>> {
    let enc_err = |e: &dyn std::fmt::Display| Fail::other(format!("encoding signing key: {e}"));
    let v1 = KeypairBytes {
        secret_key: signing.to_bytes(),
        public_key: None,
    };
    let doc = v1.to_pkcs8_der().map_err(|e| enc_err(&e))?;
    let Some(pass) = pass else {
        return doc
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|e| enc_err(&e));
    };
    let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| enc_err(&e))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let kdf = pkcs8::pkcs5::scrypt::Params::new(14, 8, 1, 32).map_err(|e| enc_err(&e))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(kdf, &salt, &iv)
        .map_err(|e| enc_err(&e))?;
    info.encrypt_with_params(params, pass.expose_secret().as_bytes())
        .map_err(|e| enc_err(&e))?
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| enc_err(&e))
}

/// An identity as `age-keygen` writes it: two comments, then the key.
fn identity_lines(identity: &AgeIdentity) -> Zeroizing<String> {
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    Zeroizing::new(format!(
        "# created: {created}\n# public key: {}\n{}\n",
        identity.public(),
        &*identity.secret_string()
    ))
}

fn encrypt_with_passphrase(plain: &[u8], pass: SecretString) -> CmdResult<Vec<u8>> {
    let enc = age::Encryptor::with_user_passphrase(pass);
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)?;
    let mut w = enc
        .wrap_output(armored)
        .map_err(|e| Fail::other(format!("encrypting identity: {e}")))?;
    w.write_all(plain)?;
    w.finish().and_then(|a| a.finish())?;
    Ok(out)
}

fn missing_keys(home: &Home) -> Fail {
    Fail::usage(format!("no keys in {}", home.dir.display())).hint("run `mdrop keygen` first")
}

/// Loads the Ed25519 signing key.
pub fn signing_key(home: &Home) -> CmdResult<SigningKey> {
    let path = home.path(files::SIGNING_KEY);
    let pem = Zeroizing::new(fs::read_to_string(&path).map_err(|_| missing_keys(home))?);
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        let p = passphrase(false)?;
        SigningKey::from_pkcs8_encrypted_pem(&pem, p.expose_secret().as_bytes()).map_err(|_| {
            Fail::other(format!(
                "cannot decrypt {}: wrong passphrase?",
                path.display()
            ))
        })
    } else {
        SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            Fail::other(format!(
                "{} is not a valid Ed25519 PKCS#8 key: {e}",
                path.display()
            ))
        })
    }
}

/// The identity file's text, decrypted with the passphrase if it has one
/// (returned, so that a rewrite uses the very passphrase that worked).
fn identity_text(home: &Home) -> CmdResult<(Zeroizing<String>, Option<SecretString>)> {
    let path = home.path(files::IDENTITY);
    let raw = Zeroizing::new(fs::read(&path).map_err(|_| missing_keys(home))?);
    if raw.starts_with(AGE_ARMOR_BEGIN.as_bytes()) || raw.starts_with(b"age-encryption.org/") {
        let p = passphrase(false)?;
        let reader = age::armor::ArmoredReader::new(&raw[..]);
        let dec = age::Decryptor::new_buffered(reader)
            .map_err(|e| Fail::other(format!("{}: {e}", path.display())))?;
        let id = age::scrypt::Identity::new(p.clone());
        let mut r = dec
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|_| {
                Fail::other(format!(
                    "cannot decrypt {}: wrong passphrase?",
                    path.display()
                ))
            })?;
        let mut s = Zeroizing::new(String::new());
        r.read_to_string(&mut s)?;
        Ok((s, Some(p)))
    } else {
        let s = Zeroizing::new(
            std::str::from_utf8(&raw)
                .map_err(|_| Fail::other(format!("{} is not UTF-8", path.display())))?
                .to_owned(),
        );
        Ok((s, None))
    }
}

/// Loads every age identity of this user, in file order: after `mdrop keys
/// upgrade` the old classic one first (files encrypted to it stay
/// readable), the current one last.
pub fn age_identities(home: &Home) -> CmdResult<Vec<AgeIdentity>> {
    let path = home.path(files::IDENTITY);
    let (text, _) = identity_text(home)?;
    let ids = AgeIdentity::parse_file(&text)
        .map_err(|e| Fail::other(format!("{}: {e}", path.display())))?;
    if ids.is_empty() {
        return Err(Fail::other(format!(
            "{} holds no age identity",
            path.display()
        )));
    }
    Ok(ids)
}

/// The user's current age recipient (the one the roster should hold).
pub fn age_recipient(home: &Home) -> CmdResult<AgeKey> {
    let s = fs::read_to_string(home.path(files::RECIPIENT)).map_err(|_| missing_keys(home))?;
    AgeKey::from_recipient(s.trim()).map_err(|e| Fail::other(format!("{}: {e}", files::RECIPIENT)))
}

/// Every age recipient of this user: the current one first, then the ones
/// `keys upgrade` replaced (which rosters may still name).
pub fn own_age_keys(home: &Home) -> CmdResult<Vec<AgeKey>> {
    let mut keys = vec![age_recipient(home)?];
    if let Ok(s) = fs::read_to_string(home.path(files::PREVIOUS_RECIPIENTS)) {
        for line in s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            keys.push(
                AgeKey::from_recipient(line)
                    .map_err(|e| Fail::other(format!("{}: {e}", files::PREVIOUS_RECIPIENTS)))?,
            );
        }
    }
    Ok(keys)
}

/// What `keys upgrade` did.
#[derive(Debug, serde::Serialize)]
pub struct Upgraded {
    /// The classic recipient kept for older files.
    pub previous: String,
    /// The new hybrid recipient.
    pub age_recipient: String,
}

/// Adds a hybrid identity to a home whose current key is classic: the
/// identity file gains the new key after the old one (re-encrypted with the
/// same passphrase if it had one) and the recipient file names the new key.
/// Both files are replaced atomically; the old key stays, so everything
/// encrypted to it stays readable.
pub fn upgrade(home: &Home) -> CmdResult<Upgraded> {
    let current = age_recipient(home)?;
    if current.is_post_quantum() {
        return Err(Fail::usage(format!(
            "this key is already hybrid (post-quantum): {}",
            current.short()
        )));
    }
    let (text, protected) = identity_text(home)?;
    let ids = AgeIdentity::parse_file(&text).map_err(Fail::other)?;
    if !ids.iter().any(|i| i.public() == current) {
        return Err(Fail::other(format!(
            "{} does not hold the secret key of {}",
            files::IDENTITY,
            files::RECIPIENT
        )));
    }
    // An upgrade interrupted after the identity file was replaced left its
    // hybrid key there: finish that one rather than add another.
    let recipient = if let Some(h) = ids.iter().rev().find(|i| i.public().is_post_quantum()) {
        h.public().to_string()
    } else {
        let hybrid = AgeIdentity::generate_hybrid();
        let added = identity_lines(&hybrid);
        // One allocation, so no partial copy of the secrets is freed
        // without being zeroized.
        let mut new_text = Zeroizing::new(String::with_capacity(text.len() + added.len() + 1));
        new_text.push_str(text.trim_end());
        new_text.push('\n');
        new_text.push_str(&added);
        // The passphrase that just opened the file, never a new prompt: a
        // typo here would lock every age key away.
        let bytes = Zeroizing::new(match &protected {
            Some(p) => encrypt_with_passphrase(new_text.as_bytes(), p.clone())?,
            None => new_text.as_bytes().to_vec(),
        });
        crate::home::write_replace(&home.path(files::IDENTITY), &bytes, 0o600)?;
        hybrid.public().to_string()
    };
    let mut previous =
        fs::read_to_string(home.path(files::PREVIOUS_RECIPIENTS)).unwrap_or_default();
    if !previous.lines().any(|l| l.trim() == current.recipient()) {
        previous.push_str(&format!("{current}\n"));
        crate::home::write_replace(
            &home.path(files::PREVIOUS_RECIPIENTS),
            previous.as_bytes(),
            0o644,
        )?;
    }
    crate::home::write_replace(
        &home.path(files::RECIPIENT),
        format!("{recipient}\n").as_bytes(),
        0o644,
    )?;
    Ok(Upgraded {
        previous: current.to_string(),
        age_recipient: recipient,
    })
}
