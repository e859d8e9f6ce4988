//! Server metadata behind a small trait, so handlers never see sled.
//!
//! Every write method is durable when it returns: the implementation flushes
//! before acknowledging, because sled on its own only flushes every 500 ms.

pub mod blobs;
mod sled_store;

pub use sled_store::SledStore;

use matterdrop_common::proto::OrgKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An enrolled user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    /// `name@org`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Organization; `None` for the server operator.
    pub org: Option<String>,
    /// Server admin.
    pub admin: bool,
    /// Raw Ed25519 public key.
    pub signing_key: [u8; 32],
    /// age X25519 recipient.
    pub age_recipient: String,
    /// Unix seconds.
    pub enrolled_at: u64,
    /// Set when an admin revoked the key; the id may then enroll a new key.
    pub revoked_at: Option<u64>,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// Organization id.
    pub id: String,
    /// Firm or provider.
    pub kind: OrgKind,
    /// Offline recovery recipient (`age1…`).
    pub recovery_recipient: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// An invite, stored under the SHA-256 of its token (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// Organization the new principal joins.
    pub org: Option<String>,
    /// Grants server admin.
    pub admin: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Set once redeemed.
    pub used_by: Option<String>,
    /// The one principal id it enrolls, if bound to one.
    pub for_id: Option<String>,
    /// Unix seconds it was revoked (refused from then on).
    pub revoked_at: Option<u64>,
}

/// An invite as stored before invites could be bound to one id or
/// revoked (postcard has no field defaults: such a record ends after
/// `used_by`).
#[derive(Debug, Clone, Deserialize)]
struct InviteRecordV1 {
    org: Option<String>,
    admin: bool,
    created_at: u64,
    expires_at: u64,
    used_by: Option<String>,
}

impl InviteRecord {
    /// Decodes a stored invite, of this format or the one before it.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if let Ok(i) = postcard::from_bytes::<Self>(bytes) {
            return Some(i);
        }
        let v1: InviteRecordV1 = postcard::from_bytes(bytes).ok()?;
        Some(Self {
            org: v1.org,
            admin: v1.admin,
            created_at: v1.created_at,
            expires_at: v1.expires_at,
            used_by: v1.used_by,
            for_id: None,
            revoked_at: None,
        })
    }
}

/// The public name of an invite: the first 12 hex digits of its token's
/// hash (what `admin list invites` shows and `admin invite revoke` takes;
/// the token itself is shown once, when minted).
pub fn invite_token_id(token_hash: &[u8; 32]) -> String {
    token_hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// One version of a matter's acknowledgment text. Version numbers start at 1
/// and are the position in [`MatterRecord::ack_versions`] plus one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckVersion {
    /// The text.
    pub text: String,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Who set it.
    pub set_by: String,
    /// Unix seconds.
    pub set_at: u64,
}

/// A membership (current, or ended by removal), as the matter's signed
/// roster makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Principal id.
    pub principal: String,
    /// Role name.
    pub role: String,
    /// The Ed25519 key the roster gives this member: only this key acts as
    /// the member (a re-enrolled key for the same id is not a member).
    pub signing_key: [u8; 32],
    /// The age recipient the roster gives this member.
    pub age: String,
    /// Who added it.
    pub added_by: String,
    /// Unix seconds.
    pub added_at: u64,
    /// Set when removed.
    pub removed_at: Option<u64>,
}

/// A verified, stored acknowledgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    /// Who signed.
    pub principal: String,
    /// Version signed.
    pub version: u32,
    /// SHA-256 of the text signed.
    pub text_sha256: [u8; 32],
    /// Time in the signed statement.
    pub signed_at: u64,
    /// The Ed25519 signature.
    pub signature: Vec<u8>,
    /// The key that made it (the member's roster key at the time).
    pub signing_key: [u8; 32],
}

/// A matter and everything about its access rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterRecord {
    /// Matter id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Owning firm.
    pub firm: String,
    /// Task type names.
    pub scope: Vec<String>,
    /// Acknowledgment versions, oldest first (never empty).
    pub ack_versions: Vec<AckVersion>,
    /// Memberships, one per principal (a re-added member reuses its row).
    pub members: Vec<MemberRecord>,
    /// Every acknowledgment signed.
    pub acks: Vec<AckRecord>,
    /// Creator.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The recovery recipient the roster sets, if any.
    pub recovery: Option<String>,
    /// The signed roster, every statement verbatim, oldest first; the
    /// fields above are what it leads to.
    pub roster: Vec<matterdrop_common::roster::SignedStatement>,
}

impl MatterRecord {
    /// Current acknowledgment version number.
    pub fn ack_version(&self) -> u32 {
        u32::try_from(self.ack_versions.len()).unwrap_or(u32::MAX)
    }

    /// The current acknowledgment text.
    pub fn current_ack(&self) -> Option<&AckVersion> {
        self.ack_versions.last()
    }

    /// A principal's membership row.
    pub fn member(&self, principal: &str) -> Option<&MemberRecord> {
        self.members.iter().find(|m| m.principal == principal)
    }

    /// Highest acknowledgment version `principal` has signed with the key
    /// the roster now gives it (an acknowledgment made with an earlier key
    /// does not count for a re-keyed member).
    pub fn acked_version(&self, principal: &str) -> Option<u32> {
        let key = self.current_member(principal)?.signing_key;
        self.acks
            .iter()
            .filter(|a| a.principal == principal && a.signing_key == key)
            .map(|a| a.version)
            .max()
    }

    /// A current (not removed) member's row.
    pub fn current_member(&self, principal: &str) -> Option<&MemberRecord> {
        self.member(principal).filter(|m| m.removed_at.is_none())
    }
}

/// A committed packet (or, later, deliverable): what the server may know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRecord {
    /// Packet id.
    pub id: String,
    /// Matter id.
    pub matter: String,
    /// Sender.
    pub sender: String,
    /// Task type.
    pub task: String,
    /// Due time.
    pub due: Option<u64>,
    /// Unix seconds of the commit.
    pub created_at: u64,
    /// The canonical signed descriptor.
    pub descriptor: Vec<u8>,
    /// The sender's signature over it.
    pub signature: Vec<u8>,
    /// The key that signed it (the sender's key at commit time: a later
    /// rekey does not stop old packets from verifying).
    pub sender_key: [u8; 32],
    /// Principals it is encrypted to.
    pub recipients: Vec<String>,
    /// Every blob (manifest first) with its size.
    pub blobs: Vec<([u8; 32], u64)>,
    /// Who pulled it, when (a download started).
    pub pulled_by: Vec<(String, u64)>,
    /// Who confirmed, signed, that it received and verified every file,
    /// when (from the signed statement).
    pub delivered_to: Vec<(String, u64)>,
    /// Packet or deliverable.
    pub kind: PacketKind,
    /// For deliverables: the packet answered.
    pub for_packet: Option<String>,
    /// For deliverables: where review stands.
    pub state: Option<DeliverableState>,
    /// For deliverables: the reviews, oldest first.
    pub reviews: Vec<ReviewRecord>,
}

/// A deliverable's review as the reviewer's client made it: the signed
/// receipt statement, the signature, and the note encrypted to the
/// matter's readers. The server cannot read or alter the note unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewNoteRecord {
    /// The canonical receipt statement.
    pub signed: Vec<u8>,
    /// The reviewer's signature over it.
    pub signature: Vec<u8>,
    /// The note, age-encrypted (empty for an empty note).
    pub note: Vec<u8>,
}

/// A member's logged destruction attestation (`mdrop purge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionRecord {
    /// The canonical statement.
    pub signed: Vec<u8>,
    /// The member's signature over it.
    pub signature: Vec<u8>,
    /// The key that signed it.
    pub signing_key: [u8; 32],
    /// Its audit-log index.
    pub index: u64,
}

/// A packet or deliverable the server deleted under its matter's
/// retention (`crate::expiry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredRecord {
    /// Unix seconds of the deletion.
    pub at: u64,
    /// Its audit-log index.
    pub index: u64,
    /// How many roster statements the decision was made under.
    pub roster_len: u64,
    /// Whether its files are gone (a sweep stopped between the two leaves
    /// it `false`, and the next deletes them).
    pub files_deleted: bool,
}

/// A re-share of a packet to one new reader (`matterdrop_common::custody::
/// ShareStatement`), as the sharer sent it. Its headers are stored apart,
/// under the statement's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    /// The canonical statement.
    pub signed: Vec<u8>,
    /// The sharer's signature over it.
    pub signature: Vec<u8>,
    /// The key that signed it.
    pub sharer_key: [u8; 32],
    /// Headers the statement names.
    pub total: u32,
    /// Headers received so far.
    pub received: u32,
    /// Unix seconds of the first batch.
    pub created_at: u64,
}

impl ShareRecord {
    /// Whether every header arrived (the share is in effect).
    pub fn complete(&self) -> bool {
        self.received == self.total
    }
}

/// A recipient's signed statement that it received and verified every
/// file of a packet (`matterdrop_common::custody`), as it sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The recipient.
    pub principal: String,
    /// The canonical statement.
    pub signed: Vec<u8>,
    /// The recipient's signature over it.
    pub signature: Vec<u8>,
}

/// What a [`PacketRecord`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PacketKind {
    /// Sent by the firm.
    Packet,
    /// Returned by a provider.
    Deliverable,
}

/// Review state of a deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliverableState {
    /// Awaiting review.
    Submitted,
    /// Approved by an attorney.
    Approved,
    /// Returned for correction.
    Returned,
    /// Replaced by a later delivery after a return.
    Superseded,
}

impl DeliverableState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Returned => "returned",
            Self::Superseded => "superseded",
        }
    }
}

/// One recorded review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Reviewing attorney.
    pub reviewer: String,
    /// `approve` or `return`.
    pub decision: String,
    /// Unix seconds (server clock).
    pub at: u64,
    /// Index of the receipt's audit-log entry.
    pub log_index: u64,
}

impl PacketRecord {
    /// Total ciphertext size.
    pub fn size(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| *s).sum()
    }
}

/// Why the store refused a write; nothing was changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No invite has this token.
    #[error("invite not recognised: check that the token was copied completely")]
    InviteUnknown,
    /// The invite was redeemed before.
    #[error("invite has already been used; invites are single-use, ask an admin for a new one")]
    InviteUsed,
    /// The invite is past its expiry.
    #[error("invite expired; ask an admin for a new one")]
    InviteExpired,
    /// The chosen id names another organization than the invite.
    #[error("invite is for organization {invite_org}, but id {id} names organization {id_org}")]
    InviteOrgMismatch {
        /// The invite's organization.
        invite_org: String,
        /// Requested id.
        id: String,
        /// Organization part of the id.
        id_org: String,
    },
    /// An admin revoked the invite.
    #[error("invite was revoked by an admin; ask an admin for a new one")]
    InviteRevoked,
    /// The invite enrolls another id.
    #[error(
        "invite is for {for_id}, not {id}; enroll as {for_id} or ask an admin for an invite for {id}"
    )]
    InviteForAnother {
        /// The id the invite is bound to.
        for_id: String,
        /// Requested id.
        id: String,
    },
    /// Principal id exists.
    #[error("principal id {0} is already taken")]
    IdTaken(String),
    /// Key is registered to someone.
    #[error("this signing key is already enrolled as {0}")]
    KeyTaken(String),
    /// Organization exists.
    #[error("organization {0} already exists")]
    OrgExists(String),
    /// Matter exists.
    #[error("matter {0} already exists")]
    MatterExists(String),
    /// Packet id exists.
    #[error("packet {0} already exists")]
    PacketExists(String),
    /// No such principal (or already revoked).
    #[error("no enrolled principal {0}")]
    NoPrincipal(String),
    /// Organization does not exist.
    #[error("organization {0} does not exist")]
    OrgMissing(String),
}

/// Storage failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request was refused by a storage-level rule.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The backend failed.
    #[error("database: {0}")]
    Backend(String),
    /// A stored value could not be decoded.
    #[error("database value corrupt: {0}")]
    Corrupt(String),
}

/// Reading metadata: open to every handler.
pub trait MetaRead: Send + Sync + std::fmt::Debug {
    /// Looks a principal up by its Ed25519 key.
    fn principal_by_key(&self, key: &[u8; 32]) -> Result<Option<PrincipalRecord>, StoreError>;
    /// Looks a principal up by id.
    fn principal(&self, id: &str) -> Result<Option<PrincipalRecord>, StoreError>;
    /// Looks an organization up.
    fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError>;
    /// Every organization (for `admin list`).
    fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError>;
    /// Every principal (for `admin list`).
    fn principals(&self) -> Result<Vec<PrincipalRecord>, StoreError>;
    /// Every invite with its token's hash (for `admin list`).
    fn invites(&self) -> Result<Vec<([u8; 32], InviteRecord)>, StoreError>;
    /// Looks a matter up.
    fn matter(&self, id: &str) -> Result<Option<MatterRecord>, StoreError>;
    /// Every matter (for listing).
    fn matters(&self) -> Result<Vec<MatterRecord>, StoreError>;
    /// Looks a packet up.
    fn packet(&self, id: &str) -> Result<Option<PacketRecord>, StoreError>;
    /// Every packet.
    fn packets(&self) -> Result<Vec<PacketRecord>, StoreError>;
    /// The packets and deliverables `principal` is a recipient of (from an
    /// index: the cost follows that principal's packets, not the server's).
    fn packets_for(&self, principal: &str) -> Result<Vec<PacketRecord>, StoreError>;
    /// The deliverables answering packet `packet` (from an index).
    fn deliverables_for(&self, packet: &str) -> Result<Vec<PacketRecord>, StoreError>;
    /// The packets and deliverables `principal` sent (from an index).
    fn packets_from(&self, principal: &str) -> Result<Vec<PacketRecord>, StoreError>;
    /// The signed delivery statements of a packet, one per recipient that
    /// confirmed, by principal.
    fn deliveries(&self, packet: &str) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Whether `uploader` uploaded blob `sha256`.
    fn has_claim(&self, uploader: &str, sha256: &[u8; 32]) -> Result<bool, StoreError>;
    /// The review of a deliverable, with its encrypted note.
    fn review_note(&self, deliverable: &str) -> Result<Option<ReviewNoteRecord>, StoreError>;
    /// A matter's destruction attestations, oldest first.
    fn destructions(&self, matter: &str) -> Result<Vec<DestructionRecord>, StoreError>;
    /// Version `version` of matter `matter`'s role definition text.
    fn role_def(&self, matter: &str, version: u32) -> Result<Option<String>, StoreError>;
    /// Whether (and when) packet `packet` expired under its matter's
    /// retention.
    fn expired(&self, packet: &str) -> Result<Option<ExpiredRecord>, StoreError>;
    /// The email address `principal` set for notifications.
    fn email(&self, principal: &str) -> Result<Option<String>, StoreError>;
    /// The re-share of `packet` to `recipient`, complete or not.
    fn share(&self, packet: &str, recipient: &str) -> Result<Option<ShareRecord>, StoreError>;
    /// Header `index` of that re-share's statement.
    fn share_header(
        &self,
        packet: &str,
        recipient: &str,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Changing metadata. Handlers reach these only through the gate
/// (`handler::gate`), with proof that an allowing decision was logged.
pub trait MetaWrite: Send + Sync + std::fmt::Debug {
    /// Stores a new invite.
    fn create_invite(&self, token_hash: &[u8; 32], invite: &InviteRecord)
    -> Result<(), StoreError>;
    /// Revokes an unused invite; returns it as revoked.
    fn revoke_invite(&self, token_hash: &[u8; 32], now: u64) -> Result<InviteRecord, StoreError>;
    /// Atomically redeems an invite and creates the principal and its key
    /// index: either all of it happens or none.
    fn enroll(
        &self,
        token_hash: &[u8; 32],
        principal: &PrincipalRecord,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Revokes a principal's key: the key no longer authenticates.
    fn revoke(&self, id: &str, now: u64) -> Result<PrincipalRecord, StoreError>;
    /// Replaces a (non-revoked) principal's age recipient.
    fn set_age_recipient(&self, id: &str, age: &str) -> Result<PrincipalRecord, StoreError>;
    /// Creates an organization; refuses an existing id.
    fn create_org(&self, org: &OrgRecord) -> Result<(), StoreError>;
    /// Creates a matter; refuses an existing id.
    fn create_matter(&self, matter: &MatterRecord) -> Result<(), StoreError>;
    /// Replaces an existing matter (callers serialize writers).
    fn put_matter(&self, matter: &MatterRecord) -> Result<(), StoreError>;
    /// Stores a new packet; refuses an existing id.
    fn create_packet(&self, packet: &PacketRecord) -> Result<(), StoreError>;
    /// Replaces a packet record (callers serialize writers).
    fn put_packet(&self, packet: &PacketRecord) -> Result<(), StoreError>;
    /// Stores the review of a deliverable (replacing any).
    fn put_review_note(&self, deliverable: &str, note: &ReviewNoteRecord)
    -> Result<(), StoreError>;
    /// Stores a recipient's signed delivery statement of a packet
    /// (replacing its earlier one).
    fn put_delivery(&self, packet: &str, delivery: &DeliveryRecord) -> Result<(), StoreError>;
    /// Keeps a logged destruction attestation of `matter`.
    fn put_destruction(&self, matter: &str, record: &DestructionRecord) -> Result<(), StoreError>;
    /// Keeps version `version` of matter `matter`'s role definition text.
    fn put_role_def(&self, matter: &str, version: u32, text: &str) -> Result<(), StoreError>;
    /// Records that packet `packet` expired (its files are deleted after).
    fn put_expired(&self, packet: &str, record: &ExpiredRecord) -> Result<(), StoreError>;
    /// Sets (or, with `None`, clears) `principal`'s notification address.
    fn set_email(&self, principal: &str, address: Option<&str>) -> Result<(), StoreError>;
    /// Stores a batch of headers of the re-share of `packet` to
    /// `recipient` whose statement `record` carries (a record for another
    /// statement is replaced, its headers forgotten), from index `first`;
    /// once every header is in, lists the packet under the recipient.
    /// Returns the record as it now stands.
    fn put_share(
        &self,
        packet: &str,
        recipient: &str,
        record: &ShareRecord,
        first: u32,
        headers: &[Vec<u8>],
    ) -> Result<ShareRecord, StoreError>;
    /// Records that `uploader` uploaded blob `sha256` itself (only such
    /// blobs may go into its packets: a hash alone proves nothing).
    fn claim_blob(&self, uploader: &str, sha256: &[u8; 32]) -> Result<(), StoreError>;
    /// Forces everything to disk.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A complete metadata store.
pub trait MetaStore: MetaRead + MetaWrite {}

impl<T: MetaRead + MetaWrite> MetaStore for T {}
