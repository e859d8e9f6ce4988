//! Request handlers: load state, ask [`crate::policy`], act, answer.
//!
//! Handlers run on the blocking pool (they touch sled and fsync), one call
//! per request. The principal is looked up on every request, never cached
//! per connection, so a change (a removed member, a revoked key) applies to
//! the very next request on an already-open connection.

mod identity;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::proto::{ClientRequest, ErrorCode, ServerResponse};
use tracing::error;

use crate::policy::AdminDenial;
use crate::store::{MetaStore, PrincipalRecord, Refusal, StoreError};

/// Everything handlers share.
#[derive(Debug)]
pub struct State {
    /// Metadata.
    pub store: Box<dyn MetaStore>,
    /// The audit-log key in signed-note verifier form.
    pub log_vkey: String,
}

impl State {
    /// Flushes all state to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

/// A handler's failure, turned into an error response.
#[derive(Debug)]
pub(crate) struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => {
                // A bad invite is an authentication refusal (exit 3); the
                // rest are conflicts with existing state.
                let code = match r {
                    Refusal::InviteUnknown
                    | Refusal::InviteUsed
                    | Refusal::InviteExpired
                    | Refusal::InviteOrgMismatch { .. } => ErrorCode::Denied,
                    _ => ErrorCode::Conflict,
                };
                Self::new(code, r.to_string())
            }
            other => {
                error!(error = %other, "storage failure");
                Self::new(
                    ErrorCode::Internal,
                    "internal storage error; the request changed nothing",
                )
            }
        }
    }
}

impl From<AdminDenial> for Failure {
    fn from(d: AdminDenial) -> Self {
        Self::new(ErrorCode::Denied, d.to_string())
    }
}

type Outcome = Result<ServerResponse, Failure>;

/// Answers one request from the holder of `key`.
pub fn handle(state: &State, key: &VerifyingKey, req: ClientRequest) -> ServerResponse {
    let result = match req {
        ClientRequest::Enroll(r) => identity::enroll(state, key, r),
        other => authenticate(state, key).and_then(|me| dispatch(state, &me, other)),
    };
    result.unwrap_or_else(|f| ServerResponse::error(f.code, f.message))
}

fn dispatch(state: &State, me: &PrincipalRecord, req: ClientRequest) -> Outcome {
    match req {
        ClientRequest::Enroll(_) => Err(Failure::new(
            ErrorCode::Conflict,
            format!("this key is already enrolled as {}", me.id),
        )),
        ClientRequest::WhoAmI => identity::whoami(state, me),
        ClientRequest::OrgCreate(r) => identity::org_create(state, me, r),
        ClientRequest::InviteCreate(r) => identity::invite_create(state, me, r),
    }
}

fn authenticate(state: &State, key: &VerifyingKey) -> Result<PrincipalRecord, Failure> {
    state.store.principal_by_key(key.as_bytes())?.ok_or_else(|| {
        Failure::new(
            ErrorCode::Unauthenticated,
            format!(
                "key {} is not enrolled on this server: only `mdrop enroll` with an invite is allowed",
                ed25519_fingerprint(key)
            ),
        )
    })
}
