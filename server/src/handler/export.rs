//! `audit export`: a bundle of the whole log (admins) or of one matter
//! (its auditors, and admins).

use matterdrop_common::proto::{AuditExportRequest, ErrorCode, ServerResponse};

use super::identity::authorize_server;
use super::matters::{authorize, hex};
use super::{Actor, Failure, Reply, State};
use crate::policy::{Operation, ServerOperation};

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
    let (header, body) = state
        .gate
        .audit()
        .export(req.matter.as_deref(), req.known_size, &me.record.id, upto)
        .map_err(|e| {
            tracing::error!(error = %e, "audit export");
            Failure::new(ErrorCode::Internal, "the audit log cannot be read")
        })?;
    Ok(Reply::Download(ServerResponse::AuditBundle(header), body))
}
