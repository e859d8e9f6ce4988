//! This client's verified copy of each matter's signed roster.
//!
//! `HOME/rosters/MATTER.json` (0600, in a 0700 folder) holds every statement
//! this client has verified, verbatim. [`sync`] asks the server only for the
//! statements past the cached ones, verifies each against the chain (the
//! signer must be an attorney of the roster so far, with the key the roster
//! gives it), and refuses with exit 4 a roster that is shorter than the
//! cached one (a rollback) or does not extend it (a fork). The first time a
//! client sees a matter, the creator's key is the trust root: it is checked
//! against this client's pins and shown as a safety code.

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use matterdrop_common::ids;
use matterdrop_common::proto::{
    ClientRequest, RosterAppendRequest, RosterGetRequest, RosterInfo, ServerResponse,
};
use matterdrop_common::roster::{Check, Roster, RosterError, SignedAck, SignedStatement};
use serde::{Deserialize, Serialize};

use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::{Home, write_replace};
use crate::pins::Pins;

/// A matter's roster, verified, with its acknowledgments as the server
/// sent them (each one is checked by [`Roster::ack_verifies`] where used).
#[derive(Debug, Clone)]
pub struct Synced {
    /// The verified roster.
    pub roster: Roster,
    /// Every acknowledgment the server holds for the matter.
    pub acks: Vec<SignedAck>,
    /// Statements verified in this sync (not from the cache).
    pub new_statements: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    matter: String,
    /// `[base64 statement, base64 signature]`, oldest first.
    statements: Vec<[String; 2]>,
}

fn verify_fail(message: impl Into<String>) -> Fail {
    Fail::new(exit::VERIFY, message)
}

fn cache_path(home: &Home, matter: &str) -> CmdResult<PathBuf> {
    ids::validate_matter(matter).map_err(|e| Fail::usage(e.to_string()))?;
    Ok(home.path("rosters").join(format!("{matter}.json")))
}

fn load_cache(home: &Home, matter: &str) -> CmdResult<Vec<SignedStatement>> {
    let path = cache_path(home, matter)?;
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Fail::other(format!("reading {}: {e}", path.display()))),
    };
    let damaged = |why: &str| {
        Fail::other(format!("{} is damaged: {why}", path.display()))
            .hint("remove it; the next command verifies the whole roster again")
    };
    let file: CacheFile = serde_json::from_slice(&bytes).map_err(|e| damaged(&e.to_string()))?;
    if file.matter != matter {
        return Err(damaged("it is another matter's roster"));
    }
    file.statements
        .iter()
        .map(|[s, sig]| {
            Ok(SignedStatement {
                statement: B64.decode(s).map_err(|_| damaged("bad base64"))?,
                signature: B64.decode(sig).map_err(|_| damaged("bad base64"))?,
            })
        })
        .collect()
}

fn save_cache(home: &Home, matter: &str, chain: &[SignedStatement]) -> CmdResult {
    let path = cache_path(home, matter)?;
    let dir = home.path("rosters");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Fail::other(format!("creating {}: {e}", dir.display())))?;
    let file = CacheFile {
        matter: matter.to_owned(),
        statements: chain
            .iter()
            .map(|e| [B64.encode(&e.statement), B64.encode(&e.signature)])
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| Fail::other(e.to_string()))?;
    write_replace(&path, &bytes, 0o600)
}

fn refused(matter: &str, e: &RosterError) -> Fail {
    verify_fail(format!(
        "the roster of matter {matter} the server sent does not verify: {e}"
    ))
    .hint(
        "the server (or someone with access to it) changed the matter's history; nothing was sent",
    )
}

/// Fetches the statements past this client's cached copy, verifies them and
/// the pins of every member, and saves the longer chain.
pub async fn sync(home: &Home, session: &Session, matter: &str) -> CmdResult<Synced> {
    let cached = load_cache(home, matter)?;
    let resp = session
        .request(&ClientRequest::RosterGet(RosterGetRequest {
            matter: matter.to_owned(),
            from: cached.len() as u64,
        }))
        .await?;
    let ServerResponse::Roster(info) = resp else {
        return Err(unexpected(&resp));
    };
    absorb(home, matter, cached, info)
}

/// Verifies `info` as the continuation of `cached` and saves the result.
fn absorb(
    home: &Home,
    matter: &str,
    mut chain: Vec<SignedStatement>,
    info: RosterInfo,
) -> CmdResult<Synced> {
    let have = chain.len() as u64;
    if info.matter != matter {
        return Err(verify_fail(format!(
            "asked for the roster of matter {matter}, the server sent {}'s",
            info.matter
        )));
    }
    if info.total < have {
        return Err(verify_fail(format!(
            "the server's roster of matter {matter} has {} statements, fewer than the {have} \
             this client verified before: a rollback",
            info.total
        )));
    }
    if info.from != have || have + info.statements.len() as u64 != info.total {
        return Err(verify_fail(format!(
            "the server sent roster statements {}..{} of {} for matter {matter}, \
             not the ones after the {have} this client holds",
            info.from,
            info.from + info.statements.len() as u64,
            info.total
        )));
    }
    let mut roster =
        if chain.is_empty() {
            None
        } else {
            Some(Roster::from_chain(&chain, Check::Cached).map_err(|e| {
                Fail::other(format!("the cached roster of {matter} is damaged: {e}"))
            })?)
        };
    for e in &info.statements {
        match &mut roster {
            None => {
                roster =
                    Some(Roster::genesis(e, Check::Signatures).map_err(|e| refused(matter, &e))?);
            }
            Some(r) => r
                .apply(e, Check::Signatures)
                .map_err(|e| refused(matter, &e))?,
        }
        chain.push(e.clone());
    }
    let roster = roster.ok_or_else(|| {
        verify_fail(format!(
            "the server sent an empty roster for matter {matter}"
        ))
    })?;
    if roster.matter != matter {
        return Err(verify_fail(format!(
            "the roster the server sent is matter {}'s, not {matter}'s",
            roster.matter
        )));
    }
    check_pins(home, &roster)?;
    if !info.statements.is_empty() {
        save_cache(home, matter, &chain)?;
    }
    Ok(Synced {
        roster,
        acks: info.acks,
        new_statements: info.statements.len(),
    })
}

/// Every member's keys against this client's pins: a pinned key the roster
/// never gave that member is exit 4; a key the chain replaced by an
/// attorney-signed `rekey` moves the pin along.
fn check_pins(home: &Home, roster: &Roster) -> CmdResult {
    let mut pins = Pins::load(home)?;
    let (creator, creator_key) = &roster.creator;
    let creator_history: Vec<&[u8; 32]> = roster
        .ever
        .iter()
        .filter(|(id, _)| id == creator)
        .map(|(_, k)| &k.signing_key)
        .collect();
    if !creator_history.contains(&creator_key) {
        return Err(verify_fail("the roster's creator has no keys in it"));
    }
    for (id, member) in &roster.members {
        let history: Vec<_> = roster
            .ever
            .iter()
            .filter(|(who, _)| who == id)
            .map(|(_, k)| k.clone())
            .collect();
        pins.check_roster_member(id, &member.keys, &history)
            .map_err(|f| f.hint(format!(
                "the roster of matter {} gives {id} keys with safety code {}; compare it with {id} before you trust it",
                roster.matter,
                member.keys.safety_code()
            )))?;
    }
    pins.save(home)
}

/// Sends a signed statement and adds the server's answer (the statement as
/// stored) to the cached roster.
pub async fn append(
    home: &Home,
    session: &Session,
    matter: &str,
    entry: SignedStatement,
    ack_text: Option<String>,
) -> CmdResult<Synced> {
    let cached = load_cache(home, matter)?;
    let resp = session
        .request(&ClientRequest::RosterAppend(RosterAppendRequest {
            matter: matter.to_owned(),
            entry: entry.clone(),
            ack_text,
        }))
        .await?;
    let ServerResponse::Roster(info) = resp else {
        return Err(unexpected(&resp));
    };
    if info.statements.last() != Some(&entry) {
        return Err(verify_fail(
            "the server did not store the statement this client signed",
        ));
    }
    absorb(home, matter, cached, info)
}
