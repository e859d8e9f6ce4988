//! Keys registered under this client's own id that it did not create.
//!
//! Every key registration is an audit-log entry. [`run`] asks the server for
//! the `enroll` entries of this client's id, checks each against the signed
//! checkpoint (inclusion proof, log key pinned at enrollment), finds this
//! client's own registration among them, and reports every key registered
//! after it: a key an operator enrolled for this id. [`daily`] runs the
//! check at most once a day from other commands and only warns.

use ed25519_dalek::SigningKey;
use matterdrop_common::audit;
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::proto::{ClientRequest, ServerResponse};
use matterdrop_common::tlog::{self, NoteVerifier};
use serde::{Deserialize, Serialize};

use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::{Home, ServerFile, write_replace};

const STATE_FILE: &str = "keys-audit.json";
const EVERY: u64 = 24 * 3600;

/// One registration found in the log.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Log index.
    pub index: u64,
    /// Unix seconds.
    pub time: u64,
    /// Fingerprint of the registered key.
    pub signing_key: String,
}

/// What [`run`] found.
#[derive(Debug)]
pub struct Report {
    /// This client's id.
    pub principal: String,
    /// Log index of this client's own registration.
    pub own_index: u64,
    /// Keys registered under the id before this client's.
    pub earlier: Vec<Registration>,
    /// Keys registered under the id after this client's: not ours.
    pub foreign: Vec<Registration>,
    /// Registrations checked.
    pub checked: usize,
}

fn bad(message: impl Into<String>) -> Fail {
    Fail::new(exit::VERIFY, message)
}

/// Fetches and checks every registration of this client's id.
pub async fn run(
    home: &Home,
    session: &Session,
    server: &ServerFile,
    key: &SigningKey,
) -> CmdResult<Report> {
    let resp = session.request(&ClientRequest::KeyRegistrations).await?;
    let ServerResponse::KeyRegistrations(info) = resp else {
        return Err(unexpected(&resp));
    };
    if info.principal != server.principal {
        return Err(bad(format!(
            "asked for the key registrations of {}, the server answered for {}",
            server.principal, info.principal
        )));
    }
    let verifier = NoteVerifier::from_vkey(&server.log_key)
        .map_err(|e| Fail::other(format!("the pinned log key: {e}")))?;
    let cp = tlog::open_checkpoint(&info.checkpoint, &verifier).map_err(|e| {
        bad(format!(
            "the checkpoint is not signed by the pinned log key: {e}"
        ))
    })?;
    let mine = ed25519_fingerprint(&key.verifying_key());
    let mut found = Vec::new();
    let mut last_index = None;
    for r in &info.records {
        if last_index.is_some_and(|l| r.index <= l) {
            return Err(bad("the key registrations are not in log order"));
        }
        last_index = Some(r.index);
        tlog::verify_inclusion(
            &tlog::leaf_hash(&r.record),
            r.index,
            cp.size,
            &r.proof,
            &cp.root,
        )
        .map_err(|e| {
            bad(format!(
                "registration entry {}: not in the log: {e}",
                r.index
            ))
        })?;
        let entry = audit::open_record(&r.record, r.index, verifier.verifying_key())
            .map_err(|e| bad(format!("registration entry {}: {e}", r.index)))?;
        if entry.action != "enroll"
            || !entry.allowed
            || entry.principal != info.principal
            || entry.object.as_deref() != Some(info.principal.as_str())
        {
            return Err(bad(format!(
                "entry {} is not a key registration of {}",
                r.index, info.principal
            )));
        }
        let fp = entry
            .details
            .iter()
            .find(|(k, _)| k == "signing_key")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad(format!("registration entry {} names no key", r.index)))?;
        found.push(Registration {
            index: r.index,
            time: entry.time,
            signing_key: fp,
        });
    }
    let report = classify(&info.principal, &mine, found)?;
    save_state(home, now(), report.foreign.is_empty())?;
    Ok(report)
}

/// Sorts registrations (in log order) around this client's own key
/// `mine`: earlier ones, and foreign ones registered after it.
fn classify(principal: &str, mine: &str, found: Vec<Registration>) -> CmdResult<Report> {
    let own = found
        .iter()
        .position(|r| r.signing_key == mine)
        .ok_or_else(|| {
            bad(format!(
                "this client's own key registration ({mine}) is not among the {} the server \
                 shows for {principal}",
                found.len()
            ))
        })?;
    Ok(Report {
        principal: principal.to_owned(),
        own_index: found[own].index,
        earlier: found[..own].to_vec(),
        foreign: found[own + 1..]
            .iter()
            .filter(|r| r.signing_key != mine)
            .cloned()
            .collect(),
        checked: found.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(index: u64, key: &str) -> Registration {
        Registration {
            index,
            time: index,
            signing_key: key.into(),
        }
    }

    #[test]
    fn keys_after_our_own_are_foreign_and_earlier_ones_are_listed() {
        let r = classify(
            "alice@firm-a",
            "SHA256:mine",
            vec![
                reg(1, "SHA256:old"),
                reg(5, "SHA256:mine"),
                reg(9, "SHA256:x"),
            ],
        )
        .unwrap();
        assert_eq!(r.own_index, 5);
        assert_eq!(r.earlier.len(), 1);
        assert_eq!(r.foreign.len(), 1);
        assert_eq!(r.foreign[0].signing_key, "SHA256:x");
        let clean = classify("a@b", "k", vec![reg(3, "k")]).unwrap();
        assert!(clean.foreign.is_empty() && clean.earlier.is_empty());
        let missing = classify("a@b", "k", vec![reg(3, "other")]).unwrap_err();
        assert_eq!(missing.code, exit::VERIFY);
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    checked_at: u64,
    clean: bool,
}

use crate::unix_now as now;

fn save_state(home: &Home, at: u64, clean: bool) -> CmdResult {
    let bytes = serde_json::to_vec(&State {
        checked_at: at,
        clean,
    })
    .map_err(|e| Fail::other(e.to_string()))?;
    write_replace(&home.path(STATE_FILE), &bytes, 0o600)
}

/// Runs [`run`] if the last check is more than a day old (or found a
/// foreign key), and warns on stderr about anything it finds; a failure to
/// check is a warning too, never a reason to stop the command.
pub async fn daily(home: &Home, session: &Session, server: &ServerFile, key: &SigningKey) {
    let state: State = std::fs::read(home.path(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if state.clean && now().saturating_sub(state.checked_at) < EVERY {
        return;
    }
    match run(home, session, server, key).await {
        Ok(r) if r.foreign.is_empty() => {}
        Ok(r) => {
            for f in &r.foreign {
                eprintln!(
                    "mdrop: WARNING: a key this client did not create was registered under {} \
                     (audit entry {}, {}); run `mdrop keys audit`",
                    r.principal, f.index, f.signing_key
                );
            }
        }
        Err(e) => eprintln!("mdrop: warning: could not check this id's key registrations: {e}"),
    }
}
