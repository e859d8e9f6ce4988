//! `audit export`: a bundle of the whole log (admins) or of one matter
//! (its auditors, and admins).

use std::time::Duration;

use matterdrop_common::bundle::Witnessed;
use matterdrop_common::proto::{AuditExportRequest, ErrorCode, ServerResponse};

use super::identity::authorize_server;
use super::matters::{authorize, hex};
use super::{Actor, Failure, Reply, State};
use crate::policy::{Operation, ServerOperation};

/// How long an export waits for the witnesses to cosign its checkpoint.
const WITNESS_WAIT: Duration = Duration::from_secs(5);

/// The witnesses' cosigned checkpoints covering `checkpoint`, each with a
/// consistency proof from it: waits up to [`WITNESS_WAIT`] for every
/// configured witness. Empty without witnesses. For exports and receipts
/// only: no other request waits for a witness.
pub(super) fn witnessed(state: &State, checkpoint: &str) -> Vec<Witnessed> {
    let mut out = Vec::new();
    if state.witnessed.expected() == 0 {
        return out;
    }
    let Some(size) = crate::witness::note_size(checkpoint) else {
        return out;
    };
    for (cosigned_size, note) in state.witnessed.covering(size, WITNESS_WAIT) {
        match state.gate.audit().consistency_between(size, cosigned_size) {
            Ok(proof) => out.push(Witnessed { note, proof }),
            Err(e) => tracing::warn!(error = %e, "a witnessed checkpoint was left out"),
        }
    }
    out
}

pub(super) fn export(
    state: &State,
    me: &Actor,
    req: &AuditExportRequest,
) -> Result<Reply, Failure> {
    // The export is itself an entry (of the matter, for a matter export), and
    // it is recorded before the bundle is cut: the bundle ends with it, so a
    // verifier knows nothing newer was left out.
    let upto = match &req.matter {
        Some(m) => {
            let details = req
                .nonce
                .map(|n| vec![("nonce".to_owned(), hex(&n))])
                .unwrap_or_default();
            let a = authorize(
                state,
                me,
                m,
                "audit-export",
                |_| Ok(Operation::ExportAudit),
                None,
                details,
            )?;
            // The bundle ends at this very entry, whatever is logged after.
            Some(a.allowed.log_index())
        }
        None => {
            authorize_server(state, me, &ServerOperation::ExportFullLog, "(whole log)")?;
            None
        }
    };
    let (mut header, body) = state
        .gate
        .audit()
        .export(req.matter.as_deref(), req.known_size, &me.record.id, upto)
        .map_err(|e| {
            tracing::error!(error = %e, "audit export");
            Failure::new(ErrorCode::Internal, "the audit log cannot be read")
        })?;
    // With witnesses, the bundle carries their cosignatures of a checkpoint
    // at least as new as its own: an export (unlike other requests) waits a
    // little for them to cosign the entry that logged it.
    header.witnessed = witnessed(state, &header.checkpoint);
    Ok(Reply::Download(ServerResponse::AuditBundle(header), body))
}
