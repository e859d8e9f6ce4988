//! The user's keys: creation and loading.
//!
//! Files are written 0600 and never overwritten. With a passphrase, the age
//! identity is itself an armored, passphrase-encrypted age file (which the
//! stock `age -d -i identity.txt` accepts, asking for the passphrase) and the
//! signing key is a PKCS#8 `ENCRYPTED PRIVATE KEY` (scrypt + AES-256-CBC,
//! readable by `openssl pkey`).

use std::fs;
use std::io::{Read as _, Write as _};
use std::str::FromStr as _;

use age::secrecy::{ExposeSecret as _, SecretString};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, KeypairBytes,
};
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
    pub age_recipient: String,
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

/// Creates the key files in `home`.
pub fn generate(home: &Home, with_passphrase: bool) -> CmdResult<Generated> {
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

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let identity_text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    ));
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

/// Loads the age identity.
pub fn age_identity(home: &Home) -> CmdResult<age::x25519::Identity> {
    let path = home.path(files::IDENTITY);
    let raw = Zeroizing::new(fs::read(&path).map_err(|_| missing_keys(home))?);
    let text =
        if raw.starts_with(AGE_ARMOR_BEGIN.as_bytes()) || raw.starts_with(b"age-encryption.org/") {
            let p = passphrase(false)?;
            let reader = age::armor::ArmoredReader::new(&raw[..]);
            let dec = age::Decryptor::new_buffered(reader)
                .map_err(|e| Fail::other(format!("{}: {e}", path.display())))?;
            let id = age::scrypt::Identity::new(p);
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
            s
        } else {
            Zeroizing::new(String::from_utf8_lossy(&raw).into_owned())
        };
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .and_then(|l| age::x25519::Identity::from_str(l).ok())
        .ok_or_else(|| Fail::other(format!("{} holds no age X25519 identity", path.display())))
}

/// The user's age recipient.
pub fn age_recipient(home: &Home) -> CmdResult<String> {
    let s = fs::read_to_string(home.path(files::RECIPIENT)).map_err(|_| missing_keys(home))?;
    let r = s.trim();
    age::x25519::Recipient::from_str(r)
        .map_err(|e| Fail::other(format!("{} is not an age recipient: {e}", files::RECIPIENT)))?;
    Ok(r.to_owned())
}
