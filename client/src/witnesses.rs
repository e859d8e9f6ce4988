//! The auditor's witness policy: whose cosignatures an audit bundle or a
//! receipt must carry, and how many (`--witness VKEY… --quorum K`,
//! remembered in `HOME/witnesses.json`).

use matterdrop_common::tlog::cosignature::CosignatureVerifier;
use serde::{Deserialize, Serialize};

use crate::commands::Ctx;
use crate::error::{CmdResult, Fail};
use crate::home::write_replace;
use crate::output::escape;

/// The witness policy: whose cosignatures a bundle needs, and how many.
const WITNESS_POLICY: &str = "witnesses.json";

#[derive(Debug, Serialize, Deserialize)]
struct WitnessPolicy {
    /// Witness cosignature keys (`name+hash+key`).
    witnesses: Vec<String>,
    /// How many of them must have cosigned.
    quorum: usize,
}

/// The witness policy to apply.
#[derive(Debug)]
pub struct Policy {
    pub verifiers: Vec<CosignatureVerifier>,
    pub quorum: usize,
    /// The policy file to write once the command succeeded (given on the
    /// command line).
    save: Option<Vec<u8>>,
}

/// The witness policy to apply: the one given (`--witness`, `--quorum`;
/// remembered in the home once the command succeeds, [`save_policy`]),
/// else the remembered one, else none.
pub fn witness_policy(
    ctx: &Ctx,
    given: &[String],
    quorum: Option<usize>,
) -> CmdResult<Option<Policy>> {
    let path = ctx.home.path(WITNESS_POLICY);
    let policy = if given.is_empty() {
        match std::fs::read(&path) {
            Ok(b) => {
                let mut p: WitnessPolicy = serde_json::from_slice(&b)
                    .map_err(|e| Fail::other(format!("{WITNESS_POLICY} is damaged: {e}")))?;
                if let Some(q) = quorum {
                    p.quorum = q;
                }
                p
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                // Fail closed: an unreadable policy is not "no policy".
                return Err(Fail::other(format!("cannot read {}: {e}", path.display())));
            }
            Err(_) if quorum.is_some() => {
                return Err(Fail::usage(
                    "--quorum needs --witness VKEY (none is remembered)",
                ));
            }
            Err(_) => return Ok(None),
        }
    } else {
        WitnessPolicy {
            witnesses: given.to_vec(),
            quorum: quorum.unwrap_or(given.len()),
        }
    };
    let verifiers = policy
        .witnesses
        .iter()
        .map(|v| {
            CosignatureVerifier::from_vkey(v)
                .map_err(|e| Fail::usage(format!("invalid witness key {v:?}: {e}")))
        })
        .collect::<CmdResult<Vec<_>>>()?;
    for (i, v) in verifiers.iter().enumerate() {
        if verifiers[..i]
            .iter()
            .any(|o| o.public_key() == v.public_key() || o.name() == v.name())
        {
            return Err(Fail::usage(format!(
                "witness {} is listed twice (by name or key): a witness counts once",
                escape(v.name(), false)
            )));
        }
    }
    if policy.quorum == 0 || policy.quorum > verifiers.len() {
        return Err(Fail::usage(format!(
            "--quorum must be 1 to {} (the number of witnesses)",
            verifiers.len()
        )));
    }
    let save = if (!given.is_empty() || quorum.is_some()) && ctx.home.dir.is_dir() {
        Some(serde_json::to_vec_pretty(&policy).map_err(|e| Fail::other(e.to_string()))?)
    } else {
        None
    };
    Ok(Some(Policy {
        verifiers,
        quorum: policy.quorum,
        save,
    }))
}

/// Remembers a policy given on the command line, after the command it
/// came with succeeded.
pub fn save_policy(ctx: &Ctx, policy: Option<&Policy>) -> CmdResult {
    if let Some(bytes) = policy.and_then(|p| p.save.as_ref()) {
        write_replace(&ctx.home.path(WITNESS_POLICY), bytes, 0o600)?;
    }
    Ok(())
}
