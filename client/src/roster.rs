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
use matterdrop_common::roster::{
    Check, MAX_STATEMENTS, MemberKeys, Roster, RosterError, SignedAck, SignedStatement,
};
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

/// The chain this client has verified for `matter` (empty if none).
pub fn load_cache(home: &Home, matter: &str) -> CmdResult<Vec<SignedStatement>> {
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

/// Fetches the statements past this client's cached copy (page by page),
/// verifies them and the pins of everyone the chain names, and saves the
/// longer chain.
pub async fn sync(home: &Home, session: &Session, matter: &str) -> CmdResult<Synced> {
    let cached = load_cache(home, matter)?;
    let mut pages = Vec::new();
    let mut have = cached.len() as u64;
    loop {
        let resp = session
            .request(&ClientRequest::RosterGet(RosterGetRequest {
                matter: matter.to_owned(),
                from: have,
            }))
            .await?;
        let ServerResponse::Roster(info) = resp else {
            return Err(unexpected(&resp));
        };
        check_page(matter, have, &info)?;
        let got = info.statements.len() as u64;
        have += got;
        let done = have >= info.total || got == 0;
        pages.push(info);
        if done {
            break;
        }
    }
    absorb(home, matter, cached, pages)
}

/// Checks that a page continues at `have` and says nothing impossible.
fn check_page(matter: &str, have: u64, info: &RosterInfo) -> CmdResult {
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
    let end = info.from.saturating_add(info.statements.len() as u64);
    if info.from != have || end > info.total || (info.statements.is_empty() && end != info.total) {
        return Err(verify_fail(format!(
            "the server sent roster statements {}..{end} of {} for matter {matter}, \
             not the ones after the {have} this client holds",
            info.from, info.total
        )));
    }
    if info.total > MAX_STATEMENTS {
        return Err(verify_fail(format!(
            "the server claims {} roster statements for matter {matter}, more than any roster holds",
            info.total
        )));
    }
    Ok(())
}

/// Verifies `pages` as the continuation of `cached` and saves the result.
fn absorb(
    home: &Home,
    matter: &str,
    mut chain: Vec<SignedStatement>,
    pages: Vec<RosterInfo>,
) -> CmdResult<Synced> {
    let cached_len = chain.len() as u64;
    let mut roster = if chain.is_empty() {
        None
    } else {
        Some(Roster::from_chain(&chain, Check::Cached).map_err(|e| {
            Fail::other(format!("the cached roster of {matter} is damaged: {e}"))
                .hint("remove it; the next command verifies the whole roster again")
        })?)
    };
    let mut acks = Vec::new();
    let mut new_statements = 0;
    for info in pages {
        for e in &info.statements {
            match &mut roster {
                None => {
                    roster = Some(
                        Roster::genesis(e, Check::Signatures).map_err(|e| refused(matter, &e))?,
                    );
                }
                Some(r) => r
                    .apply(e, Check::Signatures)
                    .map_err(|e| refused(matter, &e))?,
            }
            chain.push(e.clone());
            new_statements += 1;
        }
        acks = info.acks;
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
    check_pins(home, &roster, cached_len)?;
    if cached_len == 0 {
        let (creator, key) = &roster.creator;
        let code = roster
            .latest_keys(creator)
            .filter(|k| &k.signing_key == key)
            .map(|k| k.safety_code(creator));
        eprintln!(
            "mdrop: first time this client sees matter {}: created by {creator}{}; if you have \
             not worked with {creator} before, compare the code with them",
            crate::output::escape(matter, false),
            code.map(|c| format!(" (safety code {c})"))
                .unwrap_or_default()
        );
    }
    if new_statements > 0 {
        save_cache(home, matter, &chain)?;
    }
    Ok(Synced {
        roster,
        acks,
        new_statements,
    })
}

/// Everyone the chain names (members, former members, the creator) against
/// this client's pins. A pin moves only along statements this client
/// verified on top of a chain it had verified before (`cached_len`): an
/// attorney-signed `rekey` it could follow. A chain seen for the first time
/// moves no pin, so a server cannot "rekey" a principal this client knows
/// by inventing a matter; any principal whose latest keys in the chain are
/// not the pinned ones is exit 4.
fn check_pins(home: &Home, roster: &Roster, cached_len: u64) -> CmdResult {
    let mut pins = Pins::load(home)?;
    let ids: std::collections::BTreeSet<&str> = roster
        .history
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    for id in ids {
        let Some(latest) = roster.latest_keys(id) else {
            continue;
        };
        let verified_before: Vec<MemberKeys> = roster
            .history
            .iter()
            .filter(|(who, _, seq)| who == id && *seq < cached_len)
            .map(|(_, k, _)| k.clone())
            .collect();
        let note = pins
            .check_roster_member(id, latest, &verified_before)
            .map_err(|f| {
                f.hint(format!(
                    "the roster of matter {} gives {id} keys with safety code {}; if {id} really \
                     has new keys, compare that code with them, then `mdrop keys forget {id}`",
                    roster.matter,
                    latest.safety_code(id)
                ))
            })?;
        if let Some(note) = note {
            eprintln!("note: matter {}: {note}", roster.matter);
        }
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
    text: Option<String>,
) -> CmdResult<Synced> {
    let cached = load_cache(home, matter)?;
    let have = cached.len() as u64;
    let resp = session
        .request(&ClientRequest::RosterAppend(RosterAppendRequest {
            matter: matter.to_owned(),
            entry: entry.clone(),
            text,
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
    check_page(matter, have, &info)?;
    absorb(home, matter, cached, vec![info])
}
