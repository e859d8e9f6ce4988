//! The one door to the metadata store.
//!
//! Handlers read metadata freely ([`Gate::read`]) but change it only through
//! [`Gate::write`], which takes an [`Allowed`]: proof that a decision
//! allowing the request was appended to the audit log. Only [`Gate::decide`]
//! makes one, and it writes the decision — allowed or denied — to the log
//! before it returns, so no handler can act on a decision that was not
//! logged. The store and the log are private to this module; the handlers,
//! its siblings, cannot reach them another way.

use std::sync::Arc;

use matterdrop_common::proto::ErrorCode;
use tracing::error;

use super::Failure;
use crate::audit::{AuditLog, Event};
use crate::policy::Decision;
use crate::store::{MetaRead, MetaStore, PrincipalRecord, StoreError};

/// Metadata and the audit log, behind the rule that every change follows a
/// logged decision.
#[derive(Debug)]
pub struct Gate {
    store: Arc<dyn MetaStore>,
    audit: AuditLog,
}

/// Proof that a decision allowing the current request is in the audit log.
/// Not `Clone`: one decision, one request.
#[derive(Debug)]
pub struct Allowed {
    index: u64,
}

impl Allowed {
    /// The audit-log index of the decision.
    pub fn log_index(&self) -> u64 {
        self.index
    }
}

/// The one write an upload makes on another thread (recording who uploaded
/// a blob), carried with the decision that allowed the upload.
#[derive(Debug)]
pub struct Claims {
    store: Arc<dyn MetaStore>,
    _allowed: Allowed,
}

impl Claims {
    /// Records that `uploader` uploaded blob `sha256`.
    pub fn claim(&self, uploader: &str, sha256: &[u8; 32]) -> Result<(), StoreError> {
        self.store.claim_blob(uploader, sha256)
    }
}

impl Gate {
    /// The gate over `store` and `audit`.
    pub fn new(store: Arc<dyn MetaStore>, audit: AuditLog) -> Self {
        Self { store, audit }
    }

    /// Reading metadata needs no decision.
    pub fn read(&self) -> &dyn MetaRead {
        &*self.store
    }

    /// The audit log, for reading, proofs and exports.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Appends `events` (refusals, outcomes) to the audit log; the request
    /// fails if they cannot be recorded.
    pub(crate) fn log(&self, events: Vec<Event>) -> Result<u64, Failure> {
        self.audit.record(events).map_err(|e| {
            error!(error = %e, "cannot write the audit log");
            Failure::new(
                ErrorCode::Internal,
                "the audit log cannot be written; the request changed nothing",
            )
        })
    }

    /// Logs `event`, which carries `decision`, and returns the proof that
    /// the request is allowed, or the refusal.
    pub(crate) fn decide(&self, event: Event, decision: Decision) -> Result<Allowed, Failure> {
        let index = self.log(vec![event])?;
        match decision {
            Decision::Allow => Ok(Allowed { index }),
            Decision::Deny(d) => Err(d.into()),
        }
    }

    /// Changing metadata, for a request whose decision is logged.
    pub(crate) fn write(&self, _proof: &Allowed) -> &dyn MetaStore {
        &*self.store
    }

    /// The blob claims of an allowed upload, for its writer thread.
    pub(crate) fn claims(&self, allowed: Allowed) -> Claims {
        Claims {
            store: self.store.clone(),
            _allowed: allowed,
        }
    }

    /// Enrollment: the invite is checked and redeemed atomically by the
    /// store (its validity is the decision), and the outcome is logged
    /// before the caller hears it: a success as `enrolled`, a refusal as
    /// `refused` makes it (`None` for refusals the server only counts).
    pub(crate) fn enroll(
        &self,
        token_hash: &[u8; 32],
        principal: &PrincipalRecord,
        now: u64,
        refused: impl FnOnce(&StoreError) -> Option<Event>,
        enrolled: Event,
    ) -> Result<(), Failure> {
        match self.store.enroll(token_hash, principal, now) {
            Ok(()) => {
                self.log(vec![enrolled])?;
                Ok(())
            }
            Err(e) => {
                if let Some(event) = refused(&e) {
                    self.log(vec![event])?;
                }
                Err(e.into())
            }
        }
    }

    /// Forces metadata to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}
