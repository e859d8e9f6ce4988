//! Version 1 messages. Append new variants at the end only.

use serde::{Deserialize, Serialize};

use super::Message;

/// What a client asks. One per stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// 0: register the key this connection authenticated with.
    Enroll(EnrollRequest),
    /// 1: who the server thinks this key is.
    WhoAmI,
    /// 2: create an organization (admins).
    OrgCreate(OrgCreateRequest),
    /// 3: mint an invite (admins).
    InviteCreate(InviteCreateRequest),
}

impl Message for ClientRequest {
    const KINDS: u32 = 4;
}

impl ClientRequest {
    /// A short, stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enroll(_) => "enroll",
            Self::WhoAmI => "whoami",
            Self::OrgCreate(_) => "org-create",
            Self::InviteCreate(_) => "invite-create",
        }
    }
}

/// What the server answers. One per stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerResponse {
    /// 0: the request was refused or failed.
    Error(ErrorResponse),
    /// 1: enrollment succeeded.
    Enrolled(PrincipalInfo),
    /// 2: answer to [`ClientRequest::WhoAmI`].
    WhoAmI(PrincipalInfo),
    /// 3: the organization now exists.
    OrgCreated(OrgInfo),
    /// 4: a new invite.
    Invite(InviteInfo),
}

impl Message for ServerResponse {
    const KINDS: u32 = 5;
}

/// Registers the connection's Ed25519 key (proven by the TLS handshake) and
/// the user's age recipient under a new principal id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time invite token.
    pub invite: String,
    /// Chosen principal id, `name@org`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The user's age X25519 recipient (`age1…`).
    pub age_recipient: String,
}

/// Organization kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgKind {
    /// A law firm: owns matters.
    Firm,
    /// An outside provider team.
    Provider,
}

impl OrgKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firm => "firm",
            Self::Provider => "provider",
        }
    }
}

impl std::str::FromStr for OrgKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "firm" => Ok(Self::Firm),
            "provider" => Ok(Self::Provider),
            other => Err(format!(
                "unknown organization kind {other:?} (expected firm or provider)"
            )),
        }
    }
}

/// Creates an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgCreateRequest {
    /// Organization id, e.g. `firm-a`.
    pub id: String,
    /// Firm or provider.
    pub kind: OrgKind,
    /// Optional offline recovery recipient (`age1…`).
    pub recovery_recipient: Option<String>,
}

/// Mints an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreateRequest {
    /// The organization the new principal joins; `None` only for admins.
    pub org: Option<String>,
    /// Whether the new principal is a server admin.
    pub admin: bool,
    /// Lifetime in seconds; the server caps it.
    pub ttl_secs: Option<u64>,
}

/// A principal as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalInfo {
    /// Principal id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Organization, if any.
    pub org: Option<String>,
    /// Kind of that organization.
    pub org_kind: Option<OrgKind>,
    /// Server admin?
    pub admin: bool,
    /// Raw Ed25519 public key.
    pub signing_key: [u8; 32],
    /// age recipient.
    pub age_recipient: String,
    /// The server's audit-log key in note verifier format (`name+hash+key`).
    pub log_key: String,
    /// Unix seconds of enrollment.
    pub enrolled_at: u64,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInfo {
    /// Organization id.
    pub id: String,
    /// Firm or provider.
    pub kind: OrgKind,
    /// Recovery recipient.
    pub recovery_recipient: Option<String>,
}

/// A freshly minted invite. The token is shown once; the server keeps only
/// its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The secret token.
    pub token: String,
    /// Organization it is bound to.
    pub org: Option<String>,
    /// Grants server admin.
    pub admin: bool,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
}

/// A refusal or failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Class of error; decides the client's exit code.
    pub code: ErrorCode,
    /// Human-readable reason naming the rule that refused the request.
    pub message: String,
}

/// Classes of error. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// 0: the request was malformed or invalid.
    BadRequest,
    /// 1: the key is not enrolled.
    Unauthenticated,
    /// 2: access control refused it.
    Denied,
    /// 3: the object does not exist (only where existence is not secret).
    NotFound,
    /// 4: the object already exists or the state forbids it.
    Conflict,
    /// 5: a signature or hash did not verify.
    Verification,
    /// 6: a frame or declared size was too large.
    TooLarge,
    /// 7: unknown message kind.
    UnknownKind,
    /// 8: server-side failure.
    Internal,
    /// 9: the server is at a limit; retry later.
    Busy,
}

impl ErrorCode {
    /// The `mdrop` exit code for this class (SPEC §7).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Unauthenticated | Self::Denied => 3,
            Self::Verification => 4,
            Self::BadRequest
            | Self::NotFound
            | Self::Conflict
            | Self::TooLarge
            | Self::UnknownKind
            | Self::Internal
            | Self::Busy => 1,
        }
    }
}

impl ServerResponse {
    /// Shorthand for an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error(ErrorResponse {
            code,
            message: message.into(),
        })
    }
}
