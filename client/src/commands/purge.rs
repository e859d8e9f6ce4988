//! `mdrop purge MATTER`: destroys this machine's copies of a matter's files
//! and signs a destruction attestation the server logs (the "certificate
//! of destruction" outsourcing contracts ask for).
//!
//! Every `pull` (and `review show`) records what it wrote in
//! `HOME/pulled/MATTER.json` (0600, folder 0700): each file's absolute path,
//! SHA-256 and size. `purge` deletes each recorded file whose contents are
//! still the ones pulled, counts those already gone, and keeps (and names)
//! those changed since, unless `--force`; it removes the matter's partial
//! downloads and its cached inbox listings. It then signs a
//! `matterdrop/destruction/v1` statement with the counts and the packet
//! ids (`matterdrop_common::custody::DestructionStatement`), which the
//! server logs as the matter's `destroyed` entry and `matter show` lists
//! (checked against the signed roster). A removed member can still purge
//! and attest. Files copied elsewhere are beyond what a client can know:
//! the attestation is its signer's word for what this client did.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use matterdrop_common::custody::DestructionStatement;
use matterdrop_common::proto::{ClientRequest, ServerResponse, SignedStatementRequest};
use matterdrop_common::roster::Check;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::PurgeArgs;
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::Home;
use crate::identity;
use crate::output::escape;

/// One file a pull wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PulledFile {
    path: PathBuf,
    sha256: String,
    size: u64,
}

impl PulledFile {
    /// `path` (made absolute) with the SHA-256 and size it was written with.
    pub fn new(path: &Path, sha256: &[u8; 32], size: u64) -> Self {
        Self {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            sha256: sha256.iter().map(|b| format!("{b:02x}")).collect(),
            size,
        }
    }
}

/// One pull of one packet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pulled {
    packet: String,
    at: u64,
    files: Vec<PulledFile>,
}

fn records_dir(home: &Home) -> PathBuf {
    home.path("pulled")
}

fn records_path(home: &Home, matter: &str) -> CmdResult<PathBuf> {
    matterdrop_common::ids::validate_matter(matter)
        .map_err(|e| Fail::usage(format!("{}: {e}", escape(matter, false))))?;
    Ok(records_dir(home).join(format!("{matter}.json")))
}

fn load(home: &Home, matter: &str) -> CmdResult<Vec<Pulled>> {
    match fs::read(records_path(home, matter)?) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            Fail::other(format!(
                "the record of pulled files of {matter} is damaged: {e}"
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The file in a partial download's folder that names its matter.
const PARTIAL_MARK: &str = "matter";

/// Marks the partial download folder `dir` as `matter`'s.
pub fn mark_partial(dir: &Path, matter: &str) -> CmdResult {
    let path = dir.join(PARTIAL_MARK);
    if fs::read_to_string(&path).is_ok_and(|m| m == matter) {
        return Ok(());
    }
    crate::home::write_replace(&path, matter.as_bytes(), 0o600)
}

/// The packets whose partial downloads are marked as `matter`'s.
fn marked_partials(home: &Home, matter: &str) -> Vec<String> {
    let Ok(dir) = fs::read_dir(home.path("partial")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().into_owned();
            let marked = fs::read_to_string(e.path().join(PARTIAL_MARK)).ok()?;
            (marked == matter && matterdrop_common::packet::validate_id(&id)).then_some(id)
        })
        .collect()
}

/// Records that a pull of `packet` of `matter` wrote `files`.
pub fn record_pull(home: &Home, matter: &str, packet: &str, files: Vec<PulledFile>) -> CmdResult {
    let dir = records_dir(home);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    let mut all = load(home, matter)?;
    // A file written again (a pull with --force, `review show` again) is
    // recorded once, with what it holds now.
    for r in &mut all {
        r.files.retain(|f| !files.iter().any(|n| n.path == f.path));
    }
    all.retain(|r| !r.files.is_empty());
    all.push(Pulled {
        packet: packet.to_owned(),
        at: crate::unix_now(),
        files,
    });
    let bytes = serde_json::to_vec(&all).map_err(|e| Fail::other(e.to_string()))?;
    crate::home::write_replace(&records_path(home, matter)?, &bytes, 0o600)
}

/// Removes `dir` and the folders under it if they hold no files; returns
/// whether `dir` went.
fn remove_empty_dirs(dir: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    fs::remove_dir(dir).is_ok()
}

/// What became of one recorded file.
enum Fate {
    Deleted,
    Missing,
    Kept(String),
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn destroy(f: &PulledFile, force: bool) -> Fate {
    match fs::symlink_metadata(&f.path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Fate::Missing,
        Err(e) => return Fate::Kept(format!("cannot be read: {e}")),
        Ok(m) if !m.is_file() => return Fate::Kept("is no longer a plain file".into()),
        Ok(_) => {}
    }
    if !force {
        match sha256_file(&f.path) {
            Ok(sha) if sha == f.sha256 => {}
            Ok(_) => return Fate::Kept("changed since it was pulled (--force deletes it)".into()),
            Err(e) => return Fate::Kept(format!("cannot be read: {e}")),
        }
    }
    match fs::remove_file(&f.path) {
        Ok(()) => Fate::Deleted,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Fate::Missing,
        Err(e) => Fate::Kept(format!("cannot be deleted: {e}")),
    }
}

pub async fn purge(ctx: &Ctx, args: &PurgeArgs) -> CmdResult {
    let records = load(&ctx.home, &args.matter)?;
    crate::output::confirm(
        args.yes,
        &format!(
            "This deletes this machine's copies of matter {}'s files ({} pulls recorded), its partial downloads and cached listings, and signs that they were destroyed.",
            escape(&args.matter, false),
            records.len()
        ),
        "Destroy them?",
        "nothing deleted",
    )?;
    let key = identity::signing_key(&ctx.home)?;
    // Connected before anything is deleted: an attestation that cannot be
    // sent must not follow a destruction it would have described.
    let (session, server) = Session::open(&ctx.home, &key).await?;
    // A legal hold forbids every deletion, a member's own copies too.
    // Fails closed: without a roster that shows no hold, nothing goes.
    let hold = match crate::roster::sync(&ctx.home, &session, &args.matter).await {
        Ok(s) => s.roster.check_no_hold(),
        // No longer a member: the roster this client last verified.
        Err(e) if e.code == exit::DENIED => {
            match crate::roster::load_cache(&ctx.home, &args.matter)
                .map(|chain| matterdrop_common::roster::Roster::from_chain(&chain, Check::Cached))
            {
                Ok(Ok(r)) => r.check_no_hold(),
                _ => Err(format!(
                    "cannot confirm that matter {} is not under legal hold ({}), and this \
                     client holds no roster of it",
                    escape(&args.matter, false),
                    e.message
                )),
            }
        }
        Err(e) => {
            session.close().await;
            return Err(e);
        }
    };
    if let Err(why) = hold {
        session.close().await;
        return Err(Fail::new(
            exit::DENIED,
            format!("{why}; nothing was deleted"),
        ));
    }
    let mut packets = BTreeSet::new();
    let (mut deleted, mut missing) = (0u64, 0u64);
    let mut kept: Vec<(PathBuf, String)> = Vec::new();
    for r in &records {
        packets.insert(r.packet.clone());
        for f in &r.files {
            match destroy(f, args.force) {
                Fate::Deleted => deleted += 1,
                Fate::Missing => missing += 1,
                Fate::Kept(why) => kept.push((f.path.clone(), why)),
            }
        }
    }
    // Partial downloads of its packets, and its cached inbox listings.
    let mut caches = 0u64;
    let cached = super::inbox::purge_cache(&ctx.home, &args.matter);
    caches += cached.len() as u64;
    packets.extend(cached);
    // Interrupted pulls of this matter's packets, listed or not.
    packets.extend(marked_partials(&ctx.home, &args.matter));
    for p in packets
        .iter()
        .filter(|p| matterdrop_common::packet::validate_id(p))
    {
        // A partial download is decrypted plaintext nobody vouched for: all
        // of it goes.
        let partial = ctx.home.path("partial").join(p);
        if partial.exists() {
            match fs::remove_dir_all(&partial) {
                Ok(()) => caches += 1,
                Err(e) => kept.push((partial, format!("cannot be deleted: {e}"))),
            }
        }
        // A review copy's files were recorded (and checked) above; the
        // folder goes only if nothing else is left in it.
        let review = ctx.home.path("reviews").join(p);
        if review.exists() && remove_empty_dirs(&review) {
            caches += 1;
        }
    }
    let st = DestructionStatement {
        matter: args.matter.clone(),
        principal: server.principal.clone(),
        time: crate::unix_now(),
        packets: packets.iter().cloned().collect(),
        deleted,
        missing,
        kept: kept.len() as u64,
        caches,
    };
    let signed = st
        .to_signed_bytes()
        .map_err(|e| Fail::other(e.to_string()))?;
    let signature = matterdrop_common::sign::sign(&key, &signed).to_vec();
    let resp = session
        .request(&ClientRequest::DestructionAttest(SignedStatementRequest {
            signed,
            signature,
        }))
        .await;
    session.close().await;
    let index = match resp? {
        ServerResponse::DestructionLogged(i) => i,
        other => return Err(unexpected(&other)),
    };
    // Attested: the record of what was deleted goes too (what was kept is
    // named below and stays recorded for a later purge).
    let left: Vec<Pulled> = records
        .into_iter()
        .filter_map(|mut r| {
            r.files.retain(|f| kept.iter().any(|(p, _)| *p == f.path));
            (!r.files.is_empty()).then_some(r)
        })
        .collect();
    let path = records_path(&ctx.home, &args.matter)?;
    if left.is_empty() {
        let _ = fs::remove_file(&path);
    } else {
        let bytes = serde_json::to_vec(&left).map_err(|e| Fail::other(e.to_string()))?;
        crate::home::write_replace(&path, &bytes, 0o600)?;
    }
    let done = json!({
        "matter": args.matter,
        "deleted": deleted,
        "missing": missing,
        "kept": kept.iter().map(|(p, why)| json!({"path": p, "why": why})).collect::<Vec<_>>(),
        "caches": caches,
        "packets": packets,
        "log_index": index,
    });
    ctx.out.emit(&done, || {
        let mut s = format!(
            "Destroyed this machine's copies of matter {}: {deleted} files deleted, {missing} already gone, {caches} partial downloads and cached listings removed.\n",
            escape(&args.matter, false)
        );
        for (p, why) in &kept {
            s.push_str(&format!("  kept {}: {why}\n", escape(&p.display().to_string(), false)));
        }
        s.push_str(&format!(
            "Signed destruction attestation logged (entry {index}); `mdrop matter show {}` lists it.\n",
            escape(&args.matter, false)
        ));
        s
    });
    if !kept.is_empty() {
        eprintln!(
            "mdrop: warning: {} files were not deleted ({}); the attestation counts them as kept",
            kept.len(),
            kept.iter()
                .map(|(p, why)| format!("{}: {why}", escape(&p.display().to_string(), false)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}
