//! The client home: key files, the server pin and local state.
//!
//! ```text
//! HOME/identity.txt          age identity (AGE-SECRET-KEY-1…), 0600; age-encrypted with a passphrase
//! HOME/identity.pub          age recipient (age1…)
//! HOME/signing-key.pem       Ed25519 signing key, PKCS#8 PEM, 0600 (ENCRYPTED PRIVATE KEY with a passphrase)
//! HOME/signing-key.pub.pem   its public key, SubjectPublicKeyInfo PEM
//! HOME/server.json           the enrolled server: address, pin, principal id, log key
//! HOME/server-ca.pem         the CA pinned at enrollment, when --ca was used
//! ```

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CmdResult, Fail};

/// Names of the files in a home.
pub mod files {
    /// age identity.
    pub const IDENTITY: &str = "identity.txt";
    /// age recipient.
    pub const RECIPIENT: &str = "identity.pub";
    /// Earlier age recipients of this user (one a line), kept by `keys
    /// upgrade`: rosters may still name them until an attorney rekeys.
    pub const PREVIOUS_RECIPIENTS: &str = "identity.previous.pub";
    /// Ed25519 private key.
    pub const SIGNING_KEY: &str = "signing-key.pem";
    /// Ed25519 public key.
    pub const SIGNING_PUB: &str = "signing-key.pub.pem";
    /// Enrolled server.
    pub const SERVER: &str = "server.json";
    /// Pinned CA.
    pub const SERVER_CA: &str = "server-ca.pem";
}

/// A client home directory.
#[derive(Debug, Clone)]
pub struct Home {
    /// Its path.
    pub dir: PathBuf,
}

/// `server.json`: the server this home is enrolled with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFile {
    /// `HOST:PORT`.
    pub server: String,
    /// Pinned server key fingerprint, if pinned that way.
    pub fingerprint: Option<String>,
    /// Pinned CA file name inside the home, if pinned that way.
    pub ca_file: Option<String>,
    /// Our principal id.
    pub principal: String,
    /// The server's audit-log key (signed-note verifier form).
    pub log_key: String,
}

impl Home {
    /// Resolves the home from `--home`/`MDROP_HOME` or the XDG config dir.
    pub fn resolve(explicit: Option<PathBuf>) -> CmdResult<Self> {
        if let Some(dir) = explicit {
            return Ok(Self { dir });
        }
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x),
            None => {
                let home = std::env::var_os("HOME").ok_or_else(|| {
                    Fail::usage("cannot find a home directory")
                        .hint("pass --home DIR or set MDROP_HOME")
                })?;
                PathBuf::from(home).join(".config")
            }
        };
        Ok(Self {
            dir: base.join("matterdrop"),
        })
    }

    /// Path of a file in the home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the home (0700) if needed.
    pub fn create(&self) -> CmdResult {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Fail::other(format!("creating {}: {e}", self.dir.display())))
    }

    /// Reads `server.json`.
    pub fn server(&self) -> CmdResult<ServerFile> {
        let path = self.path(files::SERVER);
        let bytes = fs::read(&path).map_err(|_| {
            Fail::usage(format!("not enrolled: {} does not exist", path.display()))
                .hint("run `mdrop enroll SERVER --fingerprint FP --invite TOKEN --id ID --name NAME` first")
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Fail::other(format!("{} is damaged: {e}", path.display())))
    }
}

/// Writes a new file with `mode`, refusing to replace an existing one, and
/// syncs it to disk.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> CmdResult {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Fail::other(format!("refusing to overwrite {}", path.display()))
            } else {
                Fail::other(format!("creating {}: {e}", path.display()))
            }
        })?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Atomically replaces a file: write a temporary sibling, sync, rename.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> CmdResult {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path)
        .map_err(|e| Fail::other(format!("moving {} into place: {e}", path.display())))?;
    let dir = parent_dir(path);
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Fail::other(format!("syncing {}: {e}", dir.display())))
}

/// The directory `path` lives in: `.` for a bare file name (whose
/// `Path::parent` is the empty path, which no system call accepts).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before anything irreversible happens, that a file can later be
/// written at `path`: its directory exists and takes a new file, and `path`
/// is not a directory.
pub fn check_writable(path: &Path) -> CmdResult {
    if path.is_dir() {
        return Err(Fail::usage(format!(
            "{} is a directory; name a file",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Fail::usage(format!(
            "cannot write {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let probe = dir.join(format!(".mdrop-probe-{}", std::process::id()));
    let made = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe);
    let _ = fs::remove_file(&probe);
    made.map(drop).map_err(|e| {
        Fail::usage(format!(
            "cannot write {}: the folder {} does not take new files ({e})",
            path.display(),
            dir.display()
        ))
    })
}
