//! The server's data directory: layout, first-start initialization, loading.
//!
//! ```text
//! DATA/config.json        listen address, host names, log key name
//! DATA/tls/ca.pem         CA that signed the server certificate (clients may pin it)
//! DATA/tls/server.der     server certificate
//! DATA/tls/server.key     server TLS key, PKCS#8 DER, 0600
//! DATA/log-key.pem        Ed25519 audit-log signing key, PKCS#8 PEM, 0600
//! DATA/db/                sled metadata
//! ```
//!
//! `init` builds everything in a sibling staging directory and renames it
//! into place, so a crash during init never leaves a half-made data
//! directory behind.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::tls::{ServerPki, cert_fingerprint, generate_server_pki};
use rand_core::{OsRng, RngCore as _};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{InviteRecord, MetaStore, MetaWrite as _, SledStore};

/// Lifetime of an invite unless told otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(72 * 3600);
/// Longest invite lifetime accepted.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Default listen address.
    pub listen: SocketAddr,
    /// Names in the server certificate.
    pub hostnames: Vec<String>,
    /// Name of the audit-log key (signed-note key name and checkpoint origin).
    pub log_name: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// A loaded data directory.
pub struct DataDir {
    /// Root path.
    pub root: PathBuf,
    /// Parsed `config.json`.
    pub config: ConfigFile,
    /// Server certificate.
    pub cert: CertificateDer<'static>,
    /// Server TLS key (PKCS#8 DER).
    pub tls_key: zeroize::Zeroizing<Vec<u8>>,
    /// Fingerprint clients pin.
    pub fingerprint: String,
    /// Audit-log signing key.
    pub log_key: SigningKey,
    /// Metadata.
    pub store: SledStore,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("root", &self.root)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// What `init` reports.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// Data directory.
    pub data: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Server key fingerprint for `mdrop enroll --fingerprint`.
    pub fingerprint: String,
    /// Path of the CA file, for `mdrop enroll --ca`.
    pub ca_file: PathBuf,
    /// Audit-log key name.
    pub log_key_name: String,
    /// Audit-log key fingerprint.
    pub log_key_fingerprint: String,
    /// One-time bootstrap admin invite.
    pub invite: String,
    /// When the invite expires (RFC 3339).
    pub invite_expires: String,
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 rendering of Unix seconds.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Whether `dir` holds an initialized data directory.
pub fn is_initialized(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn fsync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", path.display()))
}

/// Creates a data directory at `dir` (which must not exist, or be empty) and
/// returns what the operator needs to hand out.
pub fn init(dir: &Path, listen: SocketAddr, hostnames: &[String]) -> Result<InitReport> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty; refusing to overwrite a data directory",
                dir.display()
            );
        }
        fs::remove_dir(dir)?;
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .context("data directory needs a name")?
        .to_string_lossy()
        .into_owned();
    let staging = parent.join(format!(".{name}.init-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = build(&staging, listen, hostnames);
    match result {
        Ok(report_of) => {
            fs::rename(&staging, dir)
                .with_context(|| format!("moving {} into place", staging.display()))?;
            fsync_dir(&parent)?;
            let mut report = report_of;
            report.data = dir.to_path_buf();
            report.ca_file = dir.join("tls/ca.pem");
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn build(root: &Path, listen: SocketAddr, hostnames: &[String]) -> Result<InitReport> {
    let mut names: Vec<String> = hostnames.to_vec();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let ip = listen.ip().to_string();
        if !listen.ip().is_unspecified() && !names.contains(&ip) {
            names.push(ip);
        }
    }
    fs::DirBuilder::new().mode(0o700).create(root)?;
    fs::DirBuilder::new().mode(0o700).create(root.join("tls"))?;
    let ServerPki {
        ca_pem,
        cert_der,
        key_der,
    } = generate_server_pki(&names)?;
    write_new(&root.join("tls/ca.pem"), ca_pem.as_bytes(), 0o644)?;
    write_new(&root.join("tls/server.der"), cert_der.as_ref(), 0o644)?;
    write_new(&root.join("tls/server.key"), &key_der, 0o600)?;

    let log_key = SigningKey::generate(&mut OsRng);
    let pem = log_key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("encoding log key: {e}"))?;
    write_new(&root.join("log-key.pem"), pem.as_bytes(), 0o600)?;
    let vk = log_key.verifying_key();
    let log_name = format!("mdropd-{}", hex8(&Sha256::digest(vk.as_bytes())));

    let created_at = now();
    let config = ConfigFile {
        listen,
        hostnames: names,
        log_name: log_name.clone(),
        created_at,
    };
    let store = SledStore::open(&root.join("db"))?;
    let (invite, expires_at) =
        mint_invite(&store, (None, None), true, DEFAULT_INVITE_TTL, created_at)?;
    store.flush()?;
    drop(store);
    // config.json last: its presence marks a complete directory.
    write_new(
        &root.join("config.json"),
        &serde_json::to_vec_pretty(&config)?,
        0o644,
    )?;
    fsync_dir(&root.join("tls"))?;
    fsync_dir(root)?;
    Ok(InitReport {
        data: root.to_path_buf(),
        listen,
        fingerprint: cert_fingerprint(&cert_der)?,
        ca_file: root.join("tls/ca.pem"),
        log_key_name: log_name,
        log_key_fingerprint: ed25519_fingerprint(&vk),
        invite,
        invite_expires: rfc3339(expires_at),
    })
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Creates an invite and returns the secret token and its expiry. Only the
/// token's SHA-256 is stored.
pub fn mint_invite(
    store: &dyn MetaStore,
    bound: (Option<String>, Option<String>),
    admin: bool,
    ttl: Duration,
    now: u64,
) -> Result<(String, u64)> {
    let token = new_invite_token();
    let expires_at = store_invite(store, &token, bound, admin, ttl, now)?;
    Ok((token, expires_at))
}

/// A fresh invite token: 256 random bits.
pub fn new_invite_token() -> String {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    format!("mdi1_{}", URL_SAFE_NO_PAD.encode(raw.as_ref()))
}

/// Stores the invite of `token` (only its SHA-256); returns its expiry.
pub fn store_invite(
    store: &dyn MetaStore,
    token: &str,
    (org, for_id): (Option<String>, Option<String>),
    admin: bool,
    ttl: Duration,
    now: u64,
) -> Result<u64> {
    let ttl = ttl.min(MAX_INVITE_TTL);
    let expires_at = now + ttl.as_secs();
    store.create_invite(
        &invite_hash(token),
        &InviteRecord {
            org,
            admin,
            created_at: now,
            expires_at,
            used_by: None,
            for_id,
            revoked_at: None,
        },
    )?;
    Ok(expires_at)
}

/// The stored form of an invite token.
pub fn invite_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// Reads the audit-log signing key.
pub fn load_log_key(root: &Path) -> Result<SigningKey> {
    let pem = zeroize::Zeroizing::new(fs::read_to_string(root.join("log-key.pem"))?);
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| anyhow::anyhow!("reading log-key.pem: {e}"))
}

/// Loads an initialized data directory.
pub fn load(root: &Path) -> Result<DataDir> {
    if !is_initialized(root) {
        bail!(
            "{} is not an initialized data directory (run `mdropd init --data {}`)",
            root.display(),
            root.display()
        );
    }
    let config: ConfigFile = serde_json::from_slice(&fs::read(root.join("config.json"))?)
        .context("parsing config.json")?;
    let cert = CertificateDer::from(fs::read(root.join("tls/server.der"))?);
    let tls_key = zeroize::Zeroizing::new(fs::read(root.join("tls/server.key"))?);
    let log_key = load_log_key(root)?;
    let store = SledStore::open(&root.join("db"))?;
    Ok(DataDir {
        root: root.to_path_buf(),
        fingerprint: cert_fingerprint(&cert)?,
        config,
        cert,
        tls_key,
        log_key,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn init_then_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let report = init(&dir, "127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        assert!(report.fingerprint.starts_with("SHA256:"));
        assert!(report.invite.starts_with("mdi1_"));
        let mode = fs::metadata(dir.join("tls/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.join("log-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.fingerprint, report.fingerprint);
        drop(loaded);
        // A second init refuses to clobber it.
        assert!(init(&dir, "127.0.0.1:0".parse().unwrap(), &[]).is_err());
        assert!(load(&dir).is_ok());
    }
}
