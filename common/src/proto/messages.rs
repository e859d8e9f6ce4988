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
    /// 4: removed since the signed roster (the server refuses it): a
    /// matter is created by a `create` statement ([`ClientRequest::RosterAppend`]).
    MatterCreate(MatterCreateRequest),
    /// 5: removed since the signed roster (refused): `add` and `set-role`
    /// statements.
    MatterAdd(MatterMemberRequest),
    /// 6: removed since the signed roster (refused): a `remove` statement.
    MatterRemove(MatterMemberRequest),
    /// 7: a matter's details (members who may see it).
    MatterShow(MatterRef),
    /// 8: the matters this principal belongs to.
    MatterList,
    /// 9: removed since the signed roster (refused): a `set-ack` statement.
    MatterSetAck(MatterSetAckRequest),
    /// 10: removed since the signed roster (refused): a `set-scope` statement.
    MatterSetScope(MatterSetScopeRequest),
    /// 11: the current acknowledgment text.
    AckGet(MatterRef),
    /// 12: a signed acknowledgment.
    AckSign(AckSignRequest),
    /// 13: export the audit log (whole, or one matter's entries).
    AuditExport(AuditExportRequest),
    /// 14: who a packet for this matter and task must be encrypted to.
    PushPrepare(PushPrepareRequest),
    /// 15: how much of a blob the server already holds.
    BlobStatus(BlobUpload),
    /// 16: upload a blob from `offset`; the bytes follow the frame.
    BlobPut(BlobUpload),
    /// 17: commit a packet: its signed descriptor.
    PacketCommit(PacketCommitRequest),
    /// 18: packets waiting for me.
    Inbox(InboxRequest),
    /// 19: a packet's signed descriptor.
    PacketGet(PacketRef),
    /// 20: download a blob of a packet from `offset`.
    BlobGet(BlobGetRequest),
    /// 21: who a deliverable for a packet must be encrypted to.
    DeliverPrepare(DeliverPrepareRequest),
    /// 22: commit a deliverable: its signed descriptor.
    DeliverableCommit(PacketCommitRequest),
    /// 23: an attorney's signed review of a deliverable.
    ReviewSubmit(ReviewSubmitRequest),
    /// 24: turnaround report.
    Report(ReportRequest),
    /// 25: revoke a principal's key (admins).
    KeyRevoke(KeyRevokeRequest),
    /// 26: upload a blob whose hash is not known in advance: exactly
    /// `size` bytes follow the frame, then the 32-byte SHA-256 of those
    /// bytes. `sha256` and `offset` must be zero; there is no resume (the
    /// client re-sends the whole blob).
    BlobStream(BlobUpload),
    /// 27: append an attorney's signed statement to a matter's roster (the
    /// first one, `create`, creates the matter).
    RosterAppend(RosterAppendRequest),
    /// 28: a matter's roster statements from a position, and its
    /// acknowledgments with their signatures.
    RosterGet(RosterGetRequest),
    /// 29: an enrolled principal's public keys (to add it to a matter).
    PrincipalKeys(PrincipalRef),
    /// 30: every key registration logged under the caller's own id, with
    /// inclusion proofs (`mdrop keys audit`).
    KeyRegistrations,
    /// 31: a recipient's signed confirmation that it received and verified
    /// a packet or deliverable (`crate::custody`).
    DeliveryConfirm(DeliveryConfirmRequest),
    /// 32: replace the caller's own age recipient (`mdrop keys upgrade`:
    /// a hybrid post-quantum key). Matters keep the old key until an
    /// attorney signs a `rekey` statement with the new one.
    AgeKeyUpdate(AgeKeyUpdateRequest),
    /// 33: what the caller sent, with each recipient's state.
    Sent(SentRequest),
    /// 34: a packet's signed descriptor, to show it in the inbox: as
    /// [`ClientRequest::PacketGet`], but logged as a look (`peek`), not a
    /// pull, and the packet is not marked pulled.
    PacketPeek(PacketRef),
    /// 35: the server's organizations, principals or invites (admins).
    DirectoryList(DirectoryKind),
    /// 36: revoke an unused invite (admins).
    InviteRevoke(InviteRevokeRequest),
    /// 37: re-share a packet to one new reader: the sharer's signed
    /// statement and a batch of the new age headers it names
    /// (`crate::custody::ShareStatement`, `crate::reshare`).
    Share(ShareRequest),
    /// 38: set or clear the caller's notification email address.
    NotifyEmail(NotifyEmailRequest),
    /// 39: a member's signed attestation that it destroyed its local
    /// copies of a matter's files (`crate::custody::DestructionStatement`).
    DestructionAttest(SignedStatementRequest),
}

impl Message for ClientRequest {
    const KINDS: u32 = 40;
}

/// A canonical statement and its signature by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatementRequest {
    /// The canonical statement.
    pub signed: Vec<u8>,
    /// The caller's Ed25519 signature over it.
    pub signature: Vec<u8>,
}

/// A logged destruction attestation, as `matter show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionInfo {
    /// The canonical statement.
    pub signed: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// The key that signed it (the member's roster key then).
    pub signing_key: [u8; 32],
    /// Its audit-log index.
    pub index: u64,
}

/// The caller's notification address: `None` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEmailRequest {
    /// The address.
    pub address: Option<String>,
}

/// The caller's notification address as stored, and whether the server
/// sends email at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEmailInfo {
    /// The address.
    pub address: Option<String>,
    /// Whether this server is configured to send email.
    pub sends_email: bool,
}

/// A batch of a re-share: headers `first..first + headers.len()` of the
/// statement's list. A share takes effect once every header arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRequest {
    /// The canonical share statement.
    pub signed: Vec<u8>,
    /// The sharer's Ed25519 signature over it.
    pub signature: Vec<u8>,
    /// Index in the statement's list of the first header here.
    pub first: u32,
    /// New age headers, in the statement's order.
    pub headers: Vec<Vec<u8>>,
}

/// A re-share of a packet to the caller, as the sharer signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    /// The canonical share statement.
    pub signed: Vec<u8>,
    /// The sharer's signature.
    pub signature: Vec<u8>,
    /// The key that signed it (the sharer's registered key then).
    pub sharer_key: [u8; 32],
}

/// Where a re-share stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareProgress {
    /// Headers the server holds of the statement's.
    pub received: u32,
    /// Headers the statement names.
    pub total: u32,
    /// The log index of the `share` entry, once complete.
    pub logged: Option<u64>,
}

/// What `DirectoryList` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryKind {
    /// Organizations.
    Orgs,
    /// Enrolled principals.
    Principals,
    /// Invites, used or not.
    Invites,
}

/// An invite to revoke, by its public id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRevokeRequest {
    /// The invite's id (12 hex digits of its token's hash), or a unique
    /// prefix of at least 6.
    pub token_id: String,
}

/// One organization in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgListing {
    /// Organization id.
    pub id: String,
    /// Firm or provider.
    pub kind: OrgKind,
    /// Unix seconds.
    pub created_at: u64,
}

/// One principal in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalListing {
    /// Principal id.
    pub id: String,
    /// Display name (the principal's own word).
    pub name: String,
    /// Organization.
    pub org: Option<String>,
    /// Server admin.
    pub admin: bool,
    /// Unix seconds of enrollment.
    pub enrolled_at: u64,
    /// Unix seconds of key revocation.
    pub revoked_at: Option<u64>,
}

/// One invite in a listing (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteListing {
    /// Public id: 12 hex digits of the token's hash.
    pub token_id: String,
    /// Organization it enrolls into.
    pub org: Option<String>,
    /// The one id it enrolls, if bound.
    pub for_id: Option<String>,
    /// Grants server admin.
    pub admin: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Who enrolled with it.
    pub used_by: Option<String>,
    /// Unix seconds of revocation.
    pub revoked_at: Option<u64>,
}

/// A `DirectoryList` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Directory {
    /// Organizations, by id.
    Orgs(Vec<OrgListing>),
    /// Principals, by id.
    Principals(Vec<PrincipalListing>),
    /// Invites, newest first.
    Invites(Vec<InviteListing>),
}

/// The caller's new age recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeKeyUpdateRequest {
    /// `age1pq1…` (hybrid) or `age1…` (classic), canonical.
    pub age_recipient: String,
}

/// A signed delivery statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryConfirmRequest {
    /// The canonical statement bytes.
    pub signed: Vec<u8>,
    /// The recipient's Ed25519 signature over them.
    pub signature: Vec<u8>,
}

impl ClientRequest {
    /// A short, stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enroll(_) => "enroll",
            Self::WhoAmI => "whoami",
            Self::OrgCreate(_) => "org-create",
            Self::InviteCreate(_) => "invite-create",
            Self::MatterCreate(_) => "matter-create",
            Self::MatterAdd(_) => "matter-add",
            Self::MatterRemove(_) => "matter-remove",
            Self::MatterShow(_) => "matter-show",
            Self::MatterList => "matter-list",
            Self::MatterSetAck(_) => "matter-set-ack",
            Self::MatterSetScope(_) => "matter-set-scope",
            Self::AckGet(_) => "ack-get",
            Self::AckSign(_) => "ack-sign",
            Self::AuditExport(_) => "audit-export",
            Self::PushPrepare(_) => "push-prepare",
            Self::BlobStatus(_) => "blob-status",
            Self::BlobPut(_) => "blob-put",
            Self::PacketCommit(_) => "packet-commit",
            Self::Inbox(_) => "inbox",
            Self::PacketGet(_) => "packet-get",
            Self::BlobGet(_) => "blob-get",
            Self::DeliverPrepare(_) => "deliver-prepare",
            Self::DeliverableCommit(_) => "deliverable-commit",
            Self::ReviewSubmit(_) => "review",
            Self::Report(_) => "report",
            Self::KeyRevoke(_) => "key-revoke",
            Self::BlobStream(_) => "blob-stream",
            Self::RosterAppend(_) => "roster-append",
            Self::RosterGet(_) => "roster-get",
            Self::PrincipalKeys(_) => "principal-keys",
            Self::KeyRegistrations => "key-registrations",
            Self::AgeKeyUpdate(_) => "age-key-update",
            Self::DeliveryConfirm(_) => "delivery-confirm",
            Self::Sent(_) => "sent",
            Self::PacketPeek(_) => "packet-peek",
            Self::DirectoryList(_) => "directory-list",
            Self::InviteRevoke(_) => "invite-revoke",
            Self::Share(_) => "share",
            Self::NotifyEmail(_) => "notify-email",
            Self::DestructionAttest(_) => "destruction-attest",
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
    /// 5: a matter's details.
    Matter(MatterInfo),
    /// 6: matters visible to the caller.
    Matters(Vec<MatterSummary>),
    /// 7: acknowledgment text to sign.
    AckText(AckTextInfo),
    /// 8: an acknowledgment was recorded.
    Acked(AckInfo),
    /// 9: an audit bundle's header; its records follow on the stream in
    /// the bundle format (`crate::bundle`) until the stream ends.
    AuditBundle(crate::bundle::BundleHeader),
    /// 10: the recipients of a packet about to be pushed.
    Recipients(RecipientsInfo),
    /// 11: how much of a blob the server holds.
    BlobOffset(BlobOffsetInfo),
    /// 12: a blob was stored durably.
    BlobStored(BlobRefInfo),
    /// 13: a packet was committed.
    PacketCommitted(PacketRef),
    /// 14: inbox listing.
    Inbox(Vec<InboxItem>),
    /// 15: a packet's descriptor.
    Packet(PacketInfo),
    /// 16: a blob's bytes follow this frame, from the requested offset.
    BlobData(BlobRefInfo),
    /// 17: a review was recorded in the audit log.
    ReviewRecorded(ReviewRecordedInfo),
    /// 18: turnaround report rows.
    Report(Vec<ReportRow>),
    /// 19: a key was revoked.
    Revoked(PrincipalRef),
    /// 20: roster statements and acknowledgments.
    Roster(RosterInfo),
    /// 21: a principal's public keys.
    PrincipalKeys(PrincipalKeysInfo),
    /// 22: key registrations under the caller's id.
    KeyRegistrations(KeyRegistrationsInfo),
    /// 23: a delivery confirmation was logged at this index.
    DeliveryRecorded(u64),
    /// 24: sent items.
    Sent(Vec<SentItem>),
    /// 25: organizations, principals or invites.
    Directory(Directory),
    /// 26: the invite, now revoked.
    InviteRevoked(InviteListing),
    /// 27: a re-share's batch was stored.
    Shared(ShareProgress),
    /// 28: the caller's notification address.
    NotifyEmail(NotifyEmailInfo),
    /// 29: a destruction attestation was logged at this index.
    DestructionLogged(u64),
}

impl Message for ServerResponse {
    const KINDS: u32 = 30;
}

/// One audit-log record with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRecord {
    /// Its index in the log.
    pub index: u64,
    /// The record (entry and the log key's signature).
    pub record: Vec<u8>,
    /// Inclusion proof against [`KeyRegistrationsInfo::checkpoint`].
    pub proof: Vec<[u8; 32]>,
}

/// Every logged key registration under one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRegistrationsInfo {
    /// The principal id.
    pub principal: String,
    /// The signed checkpoint every proof is against.
    pub checkpoint: String,
    /// The `enroll` records, oldest first.
    pub records: Vec<LoggedRecord>,
}

/// Appends a statement to a matter's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterAppendRequest {
    /// Matter id (the statement's).
    pub matter: String,
    /// The signed statement.
    pub entry: crate::roster::SignedStatement,
    /// The text whose SHA-256 the statement signs: the acknowledgment
    /// text of a `create` or `set-ack` statement, the role definition of a
    /// `set-role-def` one; `None` for every other change.
    pub text: Option<String>,
}

/// A matter's current role definition text (`crate::roster::RoleDef`
/// signs its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleText {
    /// Its version.
    pub version: u32,
    /// The text.
    pub text: String,
}

/// Asks for a matter's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterGetRequest {
    /// Matter id.
    pub matter: String,
    /// First statement wanted (the number this client already holds).
    pub from: u64,
}

/// A matter's roster statements from `from`, and every acknowledgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterInfo {
    /// Matter id.
    pub matter: String,
    /// Position of the first statement sent.
    pub from: u64,
    /// How many statements the roster holds.
    pub total: u64,
    /// Statements `from..total`.
    pub statements: Vec<crate::roster::SignedStatement>,
    /// Every acknowledgment recorded on the matter, with its signature.
    pub acks: Vec<crate::roster::SignedAck>,
}

/// An enrolled principal's public keys, as the server has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalKeysInfo {
    /// Principal id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Organization.
    pub org: Option<String>,
    /// Its kind.
    pub org_kind: Option<OrgKind>,
    /// Raw Ed25519 public key.
    pub signing_key: [u8; 32],
    /// age recipient.
    pub age_recipient: String,
    /// Unix seconds of enrollment.
    pub enrolled_at: u64,
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
    /// The one principal id it may enroll (`--for`); its organization
    /// must be `org`.
    pub for_id: Option<String>,
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
    /// Its public id (for `admin list invites` and `admin invite revoke`).
    pub token_id: String,
    /// The one principal id it enrolls, if bound.
    pub for_id: Option<String>,
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

/// Names a matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterRef {
    /// Matter id.
    pub matter: String,
}

/// Creates a matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterCreateRequest {
    /// Matter id, e.g. `2026-PI-0042`.
    pub id: String,
    /// Title.
    pub title: String,
    /// Confidentiality acknowledgment text (version 1).
    pub ack_text: String,
    /// Task types providers may be given (kebab-case names).
    pub scope: Vec<String>,
}

/// Adds or removes a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterMemberRequest {
    /// Matter id.
    pub matter: String,
    /// Principal id.
    pub principal: String,
    /// Role (`attorney`, `paralegal`, `provider`, `auditor`); ignored on removal.
    pub role: Option<String>,
}

/// Replaces the acknowledgment text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterSetAckRequest {
    /// Matter id.
    pub matter: String,
    /// New text.
    pub ack_text: String,
}

/// Replaces the scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterSetScopeRequest {
    /// Matter id.
    pub matter: String,
    /// Task types.
    pub scope: Vec<String>,
}

/// A signed acknowledgment (see `sign::AckStatement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSignRequest {
    /// Matter id.
    pub matter: String,
    /// Acknowledgment version signed.
    pub version: u32,
    /// SHA-256 of the text signed.
    pub text_sha256: [u8; 32],
    /// Unix seconds in the signed statement.
    pub signed_at: u64,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

/// One member of a matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Principal id.
    pub principal: String,
    /// Role.
    pub role: String,
    /// Organization of the principal.
    pub org: Option<String>,
    /// Unix seconds.
    pub added_at: u64,
    /// Latest acknowledgment version signed, if any.
    pub acked_version: Option<u32>,
    /// Whether the key the roster gives this member is still the one the
    /// server has enrolled for it (false once an admin revoked it or the id
    /// enrolled another key: an attorney should remove or rekey it).
    pub key_current: bool,
}

/// A recorded acknowledgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckInfo {
    /// Matter id.
    pub matter: String,
    /// Who signed.
    pub principal: String,
    /// Version signed.
    pub version: u32,
    /// SHA-256 of the text signed.
    pub text_sha256: [u8; 32],
    /// When (from the signed statement).
    pub signed_at: u64,
}

/// A matter's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterInfo {
    /// Matter id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Owning firm.
    pub firm: String,
    /// Scope (task types).
    pub scope: Vec<String>,
    /// Current acknowledgment version.
    pub ack_version: u32,
    /// SHA-256 of the current acknowledgment text.
    pub ack_sha256: [u8; 32],
    /// Current members.
    pub members: Vec<MemberInfo>,
    /// Every acknowledgment signed on this matter.
    pub acks: Vec<AckInfo>,
    /// Destruction attestations of members' local copies, oldest first.
    pub destructions: Vec<DestructionInfo>,
    /// Creator.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The matter's current role definition, if it has one (last: older
    /// clients decode what they know).
    pub role_text: Option<RoleText>,
}

/// A line of `matter list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterSummary {
    /// Matter id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Caller's role.
    pub role: String,
    /// Whether the caller must (re-)acknowledge before access.
    pub needs_ack: bool,
}

/// Acknowledgment text to show and sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckTextInfo {
    /// Matter id.
    pub matter: String,
    /// Version.
    pub version: u32,
    /// The text.
    pub text: String,
    /// Its SHA-256.
    pub text_sha256: [u8; 32],
    /// Whether the caller has signed this version already.
    pub acknowledged: bool,
    /// The matter's current role definition, if it has one.
    pub role_text: Option<RoleText>,
}

/// Asks for an audit bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditExportRequest {
    /// One matter's entries, or (admins) the whole log.
    pub matter: Option<String>,
    /// The tree size of the newest checkpoint the client has verified, so
    /// the server can include a consistency proof from it.
    pub known_size: Option<u64>,
    /// A fresh random value of the exporting client's, logged in the
    /// matter's `audit-export` entry that ends the bundle: the client knows
    /// the bundle was cut for this request, not replayed from an older one.
    pub nonce: Option<[u8; 32]>,
}

/// Asks who a packet must be encrypted to (and checks permission and scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPrepareRequest {
    /// Matter id.
    pub matter: String,
    /// Task type.
    pub task: String,
}

/// One recipient of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientKey {
    /// Principal id.
    pub principal: String,
    /// Its role on the matter (`sender` for the sender itself).
    pub role: String,
    /// Its Ed25519 public key.
    pub signing_key: [u8; 32],
    /// Its age recipient.
    pub age: String,
}

/// Who a packet must be encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientsInfo {
    /// Matter id.
    pub matter: String,
    /// The task type (for a deliverable: the answered packet's).
    pub task: String,
    /// Principals.
    pub recipients: Vec<RecipientKey>,
    /// The firm's recovery recipient.
    pub recovery: Option<String>,
}

/// Names a blob upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUpload {
    /// Matter id.
    pub matter: String,
    /// Packet id being pushed.
    pub packet: String,
    /// Task type of the packet.
    pub task: String,
    /// SHA-256 of the ciphertext.
    pub sha256: [u8; 32],
    /// Ciphertext size.
    pub size: u64,
    /// Where the bytes that follow start (`BlobPut`).
    pub offset: u64,
    /// For a deliverable's blobs: the packet it answers (then `task` is
    /// ignored and the delivery rules apply instead of the push rules).
    pub deliverable_for: Option<String>,
}

/// How much of a blob is on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobOffsetInfo {
    /// Bytes already received (resume from here).
    pub offset: u64,
    /// Whether the blob is complete and verified.
    pub complete: bool,
}

/// A blob by hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRefInfo {
    /// SHA-256 of the ciphertext.
    pub sha256: [u8; 32],
    /// Its size.
    pub size: u64,
    /// For a reader the packet was re-shared to: the age header that opens
    /// the blob's payload for it (the blob itself follows unchanged).
    pub header: Option<Vec<u8>>,
}

/// Commits a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketCommitRequest {
    /// The canonical signed descriptor bytes.
    pub descriptor: Vec<u8>,
    /// The sender's Ed25519 signature over them.
    pub signature: Vec<u8>,
}

/// Names a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRef {
    /// Packet id.
    pub id: String,
}

/// Lists what is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRequest {
    /// Only this matter.
    pub matter: Option<String>,
    /// Include packets already pulled.
    pub all: bool,
}

/// Lists what the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRequest {
    /// Only this matter.
    pub matter: Option<String>,
}

/// One packet or deliverable the caller sent, with what the server holds
/// as evidence of its delivery. The client checks all of it: the
/// descriptor against its own key in the matter's roster, each delivery
/// statement against the recipient's roster key and this descriptor, a
/// review as for [`InboxItem::review`]. What is not signed (`pulled_at`,
/// `state`) is the server's word and shown as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentItem {
    /// Packet or deliverable id.
    pub id: String,
    /// Matter id.
    pub matter: String,
    /// `packet` or `deliverable`.
    pub kind: String,
    /// Due time (Unix seconds; a deliverable's is its packet's).
    pub due: Option<u64>,
    /// Total ciphertext size.
    pub size: u64,
    /// Committed at (Unix seconds).
    pub created_at: u64,
    /// For deliverables: submitted, approved, returned or superseded.
    pub state: Option<String>,
    /// The canonical signed descriptor.
    pub descriptor: Vec<u8>,
    /// The sender's signature over it.
    pub signature: Vec<u8>,
    /// One entry per principal the packet is encrypted to.
    pub recipients: Vec<SentRecipient>,
    /// For a reviewed deliverable: the latest review.
    pub review: Option<ReviewNote>,
    /// For packets: the deliverables answering it, with their states (the
    /// server's word).
    pub answers: Vec<(String, String)>,
}

/// A recipient of a [`SentItem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecipient {
    /// The principal.
    pub principal: String,
    /// When its first download started (the server's word).
    pub pulled_at: Option<u64>,
    /// Its signed delivery statement (`crate::custody`) and signature, if
    /// it confirmed that it received and verified every file.
    pub delivery: Option<(Vec<u8>, Vec<u8>)>,
}

/// One inbox line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Packet id.
    pub id: String,
    /// Matter id.
    pub matter: String,
    /// Sender.
    pub sender: String,
    /// Task type.
    pub task: String,
    /// Due time (Unix seconds).
    pub due: Option<u64>,
    /// Total ciphertext size.
    pub size: u64,
    /// Pushed at (Unix seconds).
    pub created_at: u64,
    /// Whether I pulled it already.
    pub pulled: bool,
    /// `packet` or `deliverable`.
    pub kind: String,
    /// For deliverables: the packet answered.
    pub packet: Option<String>,
    /// For deliverables: submitted, approved, returned or superseded.
    pub state: Option<String>,
    /// For a returned deliverable, listed to the provider who delivered
    /// it: the review, as the reviewer signed it, with its note encrypted
    /// to the deliverable's readers (other reviews come with `PacketGet`).
    pub review: Option<ReviewNote>,
}

/// A review as the server keeps it for the deliverable's readers: the
/// signed receipt statement, the reviewer's signature, and the note (age,
/// encrypted by the reviewer's client to the deliverable's readers as its
/// signed descriptor names them; empty when the note is empty). A reader checks the
/// signature with the roster's key of the reviewer and the decrypted
/// note against the statement's `note-sha256`: the server can withhold a
/// review, not alter one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewNote {
    /// The canonical receipt statement (`receipt::ReceiptStatement`).
    pub signed: Vec<u8>,
    /// The reviewer's Ed25519 signature over it.
    pub signature: Vec<u8>,
    /// The note, age-encrypted.
    pub note: Vec<u8>,
}

/// A packet's signed descriptor, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketInfo {
    /// Packet id.
    pub id: String,
    /// The canonical descriptor bytes.
    pub descriptor: Vec<u8>,
    /// The sender's signature.
    pub signature: Vec<u8>,
    /// The sender's registered Ed25519 key.
    pub sender_key: [u8; 32],
    /// For a reviewed deliverable: its review.
    pub review: Option<ReviewNote>,
    /// For a reader the packet was re-shared to: the share.
    pub share: Option<ShareInfo>,
    /// Set once the packet expired under its matter's retention (its
    /// files are deleted).
    pub expired: Option<ExpiredInfo>,
}

/// When and under which roster a packet expired (what a client checks
/// against the roster it verified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredInfo {
    /// Unix seconds of the deletion (the server's clock).
    pub at: u64,
    /// How many roster statements the decision was made under.
    pub roster_len: u64,
    /// Its audit-log index.
    pub index: u64,
}

/// Downloads a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobGetRequest {
    /// The packet it belongs to.
    pub packet: String,
    /// SHA-256 of the ciphertext.
    pub sha256: [u8; 32],
    /// Start here.
    pub offset: u64,
    /// Read to re-share the packet (`mdrop share`), not to decrypt it: a
    /// label for the audit log only (`audit show`), never a permission.
    pub for_share: bool,
}

/// Asks who a deliverable must be encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverPrepareRequest {
    /// Matter id.
    pub matter: String,
    /// The packet answered.
    pub packet: String,
}

/// An attorney's review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSubmitRequest {
    /// The canonical receipt statement (`receipt::ReceiptStatement`).
    pub signed: Vec<u8>,
    /// The reviewer's Ed25519 signature over it.
    pub signature: Vec<u8>,
    /// The note, age-encrypted to the matter's readers (at most
    /// [`MAX_REVIEW_NOTE`] bytes; empty for an empty note).
    pub note: Vec<u8>,
}

/// The largest encrypted review note: a note of `packet::MAX_NOTE` bytes
/// and the age header of a few dozen hybrid readers (it travels inside
/// answers that also carry a descriptor, all within one frame).
pub const MAX_REVIEW_NOTE: usize = 128 * 1024;

/// Where a review landed in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecordedInfo {
    /// Leaf index.
    pub index: u64,
    /// The log record.
    pub record: Vec<u8>,
    /// Inclusion proof against the checkpoint.
    pub proof: Vec<[u8; 32]>,
    /// Signed checkpoint covering it.
    pub checkpoint: String,
    /// The log key.
    pub log_key: String,
    /// New state of the deliverable.
    pub state: String,
    /// Witness-cosigned checkpoints covering `checkpoint`, with consistency
    /// proofs from it (empty without witnesses).
    pub witnessed: Vec<crate::bundle::Witnessed>,
}

/// Asks for a turnaround report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// Only packets pushed in the last this many seconds.
    pub since_secs: Option<u64>,
    /// Only this matter.
    pub matter: Option<String>,
}

/// One row: a provider organization and a task type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// Provider organization.
    pub provider: String,
    /// Task type.
    pub task: String,
    /// Packets sent.
    pub packets: u64,
    /// Packets with at least one deliverable.
    pub delivered: u64,
    /// Packets first delivered by their due time.
    pub on_time: u64,
    /// Packets approved.
    pub approved: u64,
    /// Packets approved without any return.
    pub first_pass: u64,
    /// Median push-to-approval seconds.
    pub median_secs: Option<u64>,
    /// 90th percentile push-to-approval seconds.
    pub p90_secs: Option<u64>,
}

/// Revokes a principal's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRevokeRequest {
    /// Principal id.
    pub principal: String,
}

/// Names a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRef {
    /// Principal id.
    pub id: String,
}
