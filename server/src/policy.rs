//! Access policy: the only place in the server that knows who may do what.
//!
//! Everything here is pure: no I/O, no clock, no store. A handler loads the
//! state it needs into the view types below ([`PrincipalView`],
//! [`MatterView`]), calls [`decide`] (or [`decide_server`] for operations
//! that are not about one existing matter), writes the [`Decision`] to the
//! audit log, and only then acts. Handlers never re-implement a check.
//!
//! # Rules in one place
//!
//! - A principal who is not a current member of a matter (never was, or was
//!   removed) gets exactly the same user-visible refusal as one naming a
//!   matter that does not exist: `matter ID not found or you are not a member
//!   of it`. The reason ([`NotMemberReason`]) is kept for the audit log only.
//! - Being a server admin grants no access to matter content; an admin may
//!   export the audit log (whole or per matter), create organizations and
//!   invites.
//! - Roles per matter ([`Operation::allowed_roles`] is the matrix): attorneys
//!   manage membership, scope and acknowledgment text, push and review;
//!   paralegals push and read deliverables; providers acknowledge, pull
//!   packets and deliver; auditors export the matter's audit log and read
//!   turnaround reports and never pull case files.
//! - A provider member who has not signed the current acknowledgment version
//!   may only list the matter, read the acknowledgment text and sign it.
//! - Attorneys and paralegals must belong to the matter's own firm; the
//!   provider role needs a member of a provider organization; auditors may
//!   belong anywhere (or nowhere).
//! - Scope: only the provider task types may be in a matter's scope or on a
//!   packet; the in-house task types stay in-house.

use std::fmt;
use std::str::FromStr;

use matterdrop_common::roles::parse_name;
pub use matterdrop_common::roles::{ParseNameError, Role, Task};
use thiserror::Error;

// ---------------------------------------------------------------------------
// Names: organization kinds, roles, task types
// ---------------------------------------------------------------------------

/// Kind of an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgKind {
    /// A law firm: owns matters; its members may be attorneys and paralegals.
    Firm,
    /// An outside provider team; its members may hold the provider role.
    Provider,
}

impl OrgKind {
    /// Every kind.
    pub const ALL: [Self; 2] = [Self::Firm, Self::Provider];

    /// Lowercase name: `firm`, `provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firm => "firm",
            Self::Provider => "provider",
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name("organization kind", &Self::ALL, Self::as_str, s)
    }
}

// ---------------------------------------------------------------------------
// Views the store builds
// ---------------------------------------------------------------------------

/// The principal making a request (or the one being added to a matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalView<'a> {
    /// Principal id, `alice@firm-a`.
    pub id: &'a str,
    /// Its organization; `None` for the bootstrap admin.
    pub org: Option<&'a str>,
    /// The kind of that organization; `None` exactly when `org` is `None`.
    pub org_kind: Option<OrgKind>,
    /// Server-wide admin role.
    pub admin: bool,
}

impl<'a> PrincipalView<'a> {
    /// The firm this principal belongs to, if its organization is a firm.
    pub fn firm(&self) -> Option<&'a str> {
        match self.org_kind {
            Some(OrgKind::Firm) => self.org,
            Some(OrgKind::Provider) | None => None,
        }
    }

    /// "belongs to provider organization lpo-1", for messages.
    fn affiliation(&self) -> String {
        match (self.org, self.org_kind) {
            (Some(org), Some(kind)) => format!("belongs to {kind} organization {org}"),
            (Some(org), None) => format!("belongs to organization {org}"),
            (None, _) => "belongs to no organization".to_owned(),
        }
    }
}

/// The requesting principal's relation to one matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A current member.
    Member {
        /// Its role on the matter.
        role: Role,
        /// The acknowledgment version it last signed (meaningful for
        /// providers only; other roles need no acknowledgment).
        acked_version: Option<u32>,
    },
    /// Was a member and has been removed: treated exactly like
    /// [`Membership::Never`] towards the user.
    Removed {
        /// The role it held.
        former_role: Role,
    },
    /// Has never been a member.
    Never,
}

impl Membership {
    /// The role, for a current member.
    pub fn current_role(&self) -> Option<Role> {
        match *self {
            Self::Member { role, .. } => Some(role),
            Self::Removed { .. } | Self::Never => None,
        }
    }

    /// Whether this member must be an age recipient of a packet pushed now to
    /// a matter whose acknowledgment is at `ack_version`: attorneys,
    /// paralegals and providers that signed the current version (the sender
    /// and the firm's recovery recipient are added by the caller). Auditors
    /// never are.
    pub fn receives_packets(&self, ack_version: u32) -> bool {
        match *self {
            Self::Member {
                role: Role::Attorney | Role::Paralegal,
                ..
            } => true,
            Self::Member {
                role: Role::Provider,
                acked_version,
            } => acked_version == Some(ack_version),
            Self::Member {
                role: Role::Auditor,
                ..
            }
            | Self::Removed { .. }
            | Self::Never => false,
        }
    }

    /// Whether this member must be an age recipient of a deliverable:
    /// attorneys, paralegals and the delivering provider itself (plus the
    /// firm's recovery recipient, added by the caller). Auditors never are.
    pub fn receives_deliverables(&self, is_delivering_provider: bool) -> bool {
        match *self {
            Self::Member {
                role: Role::Attorney | Role::Paralegal,
                ..
            } => true,
            Self::Member {
                role: Role::Provider,
                ..
            } => is_delivering_provider,
            Self::Member {
                role: Role::Auditor,
                ..
            }
            | Self::Removed { .. }
            | Self::Never => false,
        }
    }
}

/// An existing matter, as seen by the requesting principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatterView<'a> {
    /// Matter id, `2026-PI-0042`.
    pub id: &'a str,
    /// The owning firm organization.
    pub firm: &'a str,
    /// Current acknowledgment version (starts at 1).
    pub ack_version: u32,
    /// Task types providers may do on this matter.
    pub scope: &'a [Task],
    /// The requesting principal's membership.
    pub membership: Membership,
}

impl MatterView<'_> {
    /// The acknowledgment version the requesting principal still has to sign
    /// before it may do more than read the text: `Some` only for a provider
    /// member that has not signed the current version.
    pub fn pending_acknowledgment(&self) -> Option<u32> {
        match self.membership {
            Membership::Member {
                role: Role::Provider,
                acked_version,
            } if acked_version != Some(self.ack_version) => Some(self.ack_version),
            Membership::Member { .. } | Membership::Removed { .. } | Membership::Never => None,
        }
    }
}

/// The role every matter's creator receives on it.
pub const CREATOR_ROLE: Role = Role::Attorney;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// Something a principal asks to do on one matter (see [`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// `matter show`: the matter's metadata (title, members, scope).
    ShowMatter,
    /// Whether the matter appears in `matter list` (a per-matter filter).
    ListMatters,
    /// Read the acknowledgment text (what `mdrop ack` shows).
    ReadAckText,
    /// Sign the current acknowledgment version (re-signing it is harmless
    /// and allowed). That the signature covers the current version and text
    /// is checked with the signature itself, outside this module.
    SignAck,
    /// `matter add`: make `target` a member with `role`, or change the role
    /// of a current member (granting the role it already has is a no-op and
    /// allowed).
    AddMember {
        /// Role to grant.
        role: Role,
        /// The principal being added.
        target: PrincipalView<'a>,
        /// The target's current role on this matter, if it is a current
        /// member (a removed member counts as `None` and may be re-added).
        target_current_role: Option<Role>,
        /// How many current attorneys the matter has (including the target).
        attorney_count: usize,
    },
    /// `matter remove`: end `target`'s membership.
    RemoveMember {
        /// The principal being removed.
        target: &'a str,
        /// Its current role on the matter; `None` if not a current member.
        target_role: Option<Role>,
        /// How many current attorneys the matter has (including the target).
        attorney_count: usize,
    },
    /// `matter set-ack`: publish a new acknowledgment version.
    SetAck,
    /// Replace the matter's scope.
    SetScope {
        /// The new scope.
        scope: &'a [Task],
    },
    /// `matter set-recovery`: set or clear the recovery recipient.
    SetRecovery,
    /// `matter set-crypto`: require post-quantum keys, or stop requiring
    /// them.
    SetCrypto,
    /// `matter set-retention|hold|release|close|reopen`: what the server
    /// keeps, for how long, and whether the matter takes new work.
    Lifecycle,
    /// `matter set-role|review-role|set-target`: the engagement terms.
    Engagement,
    /// `matter rekey`: give a current member new keys (after a lost
    /// laptop; the attorney checked the new safety code).
    Rekey {
        /// The member.
        target: &'a str,
        /// Its current role; `None` if not a current member.
        target_role: Option<Role>,
    },
    /// Read the matter's signed roster (what clients verify and compute
    /// recipients from).
    ReadRoster,
    /// `push`: send a packet of this task type.
    Push {
        /// The packet's task type.
        task: Task,
    },
    /// `inbox` for this matter.
    Inbox,
    /// `pull` of a packet.
    PullPacket {
        /// Packet id (for messages).
        packet: &'a str,
        /// Whether the principal is one of the packet's age recipients.
        recipient: bool,
    },
    /// `deliver`: return work product for a packet.
    Deliver {
        /// The packet answered (for messages).
        packet: &'a str,
        /// Whether that packet exists in this matter and was sent to a
        /// member of the principal's organization.
        to_my_org: bool,
        /// A deliverable for it still awaiting review, if any.
        pending: Option<&'a str>,
        /// An approved deliverable for it, if any.
        approved: Option<&'a str>,
    },
    /// `pull` of a deliverable.
    PullDeliverable {
        /// Deliverable id (for messages).
        deliverable: &'a str,
        /// Whether the principal is the provider that delivered it.
        is_delivering_provider: bool,
        /// Whether the principal is one of its age recipients.
        recipient: bool,
    },
    /// `review approve|return`.
    Review {
        /// Deliverable id (for messages).
        deliverable: &'a str,
        /// Whether it is still awaiting review (submitted, not yet approved,
        /// returned or superseded).
        pending: bool,
    },
    /// `audit export --matter`: this matter's log entries.
    ExportAudit,
    /// `report turnaround` over this matter (a per-matter filter when no
    /// matter is named).
    Report,
}

impl Operation<'_> {
    /// Stable kebab-case name, for the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ShowMatter => "matter-show",
            Self::ListMatters => "matter-list",
            Self::ReadAckText => "ack-read",
            Self::SignAck => "ack-sign",
            Self::AddMember { .. } => "member-add",
            Self::RemoveMember { .. } => "member-remove",
            Self::SetAck => "ack-set",
            Self::SetScope { .. } => "scope-set",
            Self::SetRecovery => "recovery-set",
            Self::SetCrypto => "crypto-set",
            Self::Lifecycle => "lifecycle-set",
            Self::Engagement => "engagement-set",
            Self::Rekey { .. } => "member-rekey",
            Self::ReadRoster => "roster-read",
            Self::Push { .. } => "push",
            Self::Inbox => "inbox",
            Self::PullPacket { .. } => "pull-packet",
            Self::Deliver { .. } => "deliver",
            Self::PullDeliverable { .. } => "pull-deliverable",
            Self::Review { .. } => "review",
            Self::ExportAudit => "audit-export",
            Self::Report => "report",
        }
    }

    /// What the operation does, completing "only attorneys may …".
    fn action(&self) -> &'static str {
        match self {
            Self::ShowMatter => "view it",
            Self::ListMatters => "list it",
            Self::ReadAckText => "read its acknowledgment",
            Self::SignAck => "sign its acknowledgment",
            Self::AddMember { .. } => "add members",
            Self::RemoveMember { .. } => "remove members",
            Self::SetAck => "change the acknowledgment text",
            Self::SetScope { .. } => "change the scope",
            Self::SetRecovery => "change the recovery recipient",
            Self::SetCrypto => "change the key requirements",
            Self::Lifecycle => "change its retention, legal hold or closing",
            Self::Engagement => "change the role definition or targets",
            Self::Rekey { .. } => "change a member's keys",
            Self::ReadRoster => "read its roster",
            Self::Push { .. } => "push packets",
            Self::Inbox => "have an inbox",
            Self::PullPacket { .. } => "pull packets",
            Self::Deliver { .. } => "deliver work product",
            Self::PullDeliverable { .. } => "pull deliverables",
            Self::Review { .. } => "review deliverables",
            Self::ExportAudit => "export its audit log",
            Self::Report => "read turnaround reports",
        }
    }

    /// The matter roles that may attempt this operation at all (further
    /// checks — acknowledgment, recipients, scope — may still refuse).
    pub fn allowed_roles(&self) -> &'static [Role] {
        const EVERYONE: &[Role] = &Role::ALL;
        const ATTORNEY: &[Role] = &[Role::Attorney];
        const FIRM: &[Role] = &[Role::Attorney, Role::Paralegal];
        const READERS: &[Role] = &[Role::Attorney, Role::Paralegal, Role::Provider];
        const PROVIDER: &[Role] = &[Role::Provider];
        const OVERSIGHT: &[Role] = &[Role::Attorney, Role::Auditor];
        match self {
            Self::ShowMatter | Self::ListMatters | Self::ReadAckText | Self::ReadRoster => EVERYONE,
            Self::SignAck | Self::Deliver { .. } => PROVIDER,
            Self::AddMember { .. }
            | Self::RemoveMember { .. }
            | Self::SetAck
            | Self::SetScope { .. }
            | Self::SetRecovery
            | Self::SetCrypto
            | Self::Lifecycle
            | Self::Engagement
            | Self::Rekey { .. }
            | Self::Review { .. } => ATTORNEY,
            Self::Push { .. } => FIRM,
            Self::Inbox | Self::PullPacket { .. } | Self::PullDeliverable { .. } => READERS,
            Self::ExportAudit => OVERSIGHT,
            Self::Report => OVERSIGHT,
        }
    }

    /// Whether a provider member may do this before signing the current
    /// acknowledgment version.
    fn open_before_acknowledgment(&self) -> bool {
        matches!(
            self,
            Self::ListMatters | Self::ReadAckText | Self::SignAck | Self::ReadRoster
        )
    }
}

/// Something a principal asks to do that is not about one existing matter
/// (see [`decide_server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOperation<'a> {
    /// `matter create`: the matter will belong to the creator's firm
    /// ([`creator_firm`]) and the creator becomes its [`CREATOR_ROLE`].
    CreateMatter {
        /// Requested matter id.
        id: &'a str,
        /// Requested scope.
        scope: &'a [Task],
        /// Whether a matter with this id already exists.
        exists: bool,
    },
    /// `admin org create` (admins).
    CreateOrganization,
    /// `admin invite` (admins).
    CreateInvite,
    /// `admin invite revoke` (admins).
    RevokeInvite,
    /// `admin list orgs|principals|invites` (admins).
    ListDirectory,
    /// `audit export` without `--matter`: the whole log (admins).
    ExportFullLog,
    /// `admin revoke`: unregister a principal's key (admins).
    RevokeKey,
    /// `keys upgrade`: replace one's own age recipient (anyone enrolled;
    /// matters keep the old key until an attorney rekeys).
    ReplaceOwnAgeKey,
    /// `notify email`: set or clear one's own notification address
    /// (anyone enrolled).
    SetOwnEmail,
    /// `purge`: log one's own destruction attestation for a matter one is
    /// or was a member of (the handler checks the membership and the
    /// signature: removed members attest too).
    AttestDestruction,
}

impl ServerOperation<'_> {
    /// Stable kebab-case name, for the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateMatter { .. } => "matter-create",
            Self::CreateOrganization => "org-create",
            Self::CreateInvite => "invite-create",
            Self::RevokeInvite => "invite-revoke",
            Self::ListDirectory => "directory-list",
            Self::ExportFullLog => "audit-export-all",
            Self::RevokeKey => "key-revoke",
            Self::ReplaceOwnAgeKey => "age-key-update",
            Self::SetOwnEmail => "notify-email",
            Self::AttestDestruction => "destruction-attest",
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Self::CreateMatter { .. } => "create matters",
            Self::CreateOrganization => "create organizations",
            Self::CreateInvite => "create invites",
            Self::RevokeInvite => "revoke invites",
            Self::ListDirectory => "list organizations, principals and invites",
            Self::ExportFullLog => "export the whole audit log",
            Self::RevokeKey => "revoke keys",
            Self::ReplaceOwnAgeKey => "replace their age key",
            Self::SetOwnEmail => "set their notification address",
            Self::AttestDestruction => "attest destruction",
        }
    }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

/// Why a principal is treated as a non-member. Internal: for the audit log
/// only, never shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMemberReason {
    /// No matter has the requested id.
    NoSuchMatter,
    /// The matter exists; the principal has never been a member.
    NeverMember,
    /// The principal's membership was removed.
    Removed {
        /// The role it held.
        former_role: Role,
    },
}

impl NotMemberReason {
    /// Stable kebab-case code, for the audit log only.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSuchMatter => "no-such-matter",
            Self::NeverMember => "never-member",
            Self::Removed { .. } => "removed",
        }
    }
}

/// The rule that refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Not a current member, or no such matter (indistinguishable to the
    /// user; the reason is for the audit log).
    NotMember(NotMemberReason),
    /// A provider member has not signed the current acknowledgment.
    NotAcknowledged {
        /// The version that must be signed.
        version: u32,
        /// The version it did sign, if any.
        signed: Option<u32>,
    },
    /// Only attorneys of the matter may do this.
    NotAttorney {
        /// The principal's role.
        role: Role,
    },
    /// The principal's role may not do this (and it is not attorney-only).
    RoleCannot {
        /// The principal's role.
        role: Role,
    },
    /// An in-house task type on a packet or in a scope.
    InHouseTask {
        /// The task.
        task: Task,
    },
    /// A packet's task type is not in the matter's scope.
    OutOfScope {
        /// The task.
        task: Task,
    },
    /// A scope with no task type.
    EmptyScope,
    /// The provider role granted to a member of no provider organization.
    ProviderRoleNeedsProviderOrg,
    /// Attorney or paralegal granted to someone outside the matter's firm.
    FirmRoleNeedsFirmOrg {
        /// The role requested.
        role: Role,
    },
    /// Removing someone who is not a member.
    TargetNotMember,
    /// Removing the matter's last attorney, or changing its role.
    LastAttorney,
    /// Pulling a packet or deliverable not encrypted to the principal.
    NotRecipient,
    /// A provider pulling another provider's deliverable.
    NotDeliveringProvider,
    /// Delivering for a packet that was not sent to the principal's
    /// organization (or is not in the matter).
    NotSentToOrg,
    /// Delivering again while an earlier deliverable awaits review.
    DeliveryPending,
    /// Delivering for a packet that already has an approved deliverable.
    DeliveryApproved,
    /// Reviewing a deliverable that is no longer awaiting review.
    AlreadyReviewed,
    /// Creating a matter without belonging to a firm organization.
    NotFirmMember,
    /// Creating a matter whose id is taken.
    MatterExists,
    /// An admin-only server operation.
    NotAdmin,
}

impl Rule {
    /// Stable kebab-case code for the audit log. The same code for every
    /// [`Rule::NotMember`] reason, so it can be shown to users too.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotMember(_) => "not-member",
            Self::NotAcknowledged { .. } => "not-acknowledged",
            Self::NotAttorney { .. } => "not-attorney",
            Self::RoleCannot { .. } => "role-cannot",
            Self::InHouseTask { .. } => "in-house-task",
            Self::OutOfScope { .. } => "out-of-scope",
            Self::EmptyScope => "empty-scope",
            Self::ProviderRoleNeedsProviderOrg => "provider-role-needs-provider-org",
            Self::FirmRoleNeedsFirmOrg { .. } => "firm-role-needs-firm-org",
            Self::TargetNotMember => "target-not-member",
            Self::LastAttorney => "last-attorney",
            Self::NotRecipient => "not-recipient",
            Self::NotDeliveringProvider => "not-delivering-provider",
            Self::NotSentToOrg => "not-sent-to-org",
            Self::DeliveryPending => "delivery-pending",
            Self::DeliveryApproved => "delivery-approved",
            Self::AlreadyReviewed => "already-reviewed",
            Self::NotFirmMember => "not-firm-member",
            Self::MatterExists => "matter-exists",
            Self::NotAdmin => "not-admin",
        }
    }

    /// Whether this refusal must not reveal whether the matter exists (the
    /// handler must answer it like a missing matter, with no other detail).
    pub fn hides_existence(&self) -> bool {
        matches!(self, Self::NotMember(_))
    }

    /// Whether the refusal is about the current state of an object (it
    /// already exists, is already reviewed, is the last attorney, is not a
    /// member) rather than about who is asking. A
    /// handler may answer these as a conflict instead of an access-control
    /// denial; everything else is an access-control denial.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::MatterExists
            | Self::AlreadyReviewed
            | Self::LastAttorney
            | Self::TargetNotMember => true,
            Self::NotMember(_)
            | Self::NotAcknowledged { .. }
            | Self::NotAttorney { .. }
            | Self::RoleCannot { .. }
            | Self::InHouseTask { .. }
            | Self::OutOfScope { .. }
            | Self::EmptyScope
            | Self::ProviderRoleNeedsProviderOrg
            | Self::FirmRoleNeedsFirmOrg { .. }
            | Self::NotRecipient
            | Self::NotDeliveringProvider
            | Self::NotSentToOrg
            | Self::DeliveryPending
            | Self::DeliveryApproved
            | Self::NotFirmMember
            | Self::NotAdmin => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the rule and the user-visible message naming it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct Denial {
    /// The rule (its reason detail is for the audit log).
    pub rule: Rule,
    /// What the user is told.
    pub message: String,
}

impl Denial {
    fn new(rule: Rule, message: String) -> Self {
        Self { rule, message }
    }

    /// Whether this refusal must not reveal whether the matter exists: the
    /// message is then identical for a missing matter, a never-member and a
    /// removed member, and the handler must add nothing to it.
    pub fn hides_existence(&self) -> bool {
        self.rule.hides_existence()
    }

    /// The internal non-member reason, for the audit log.
    pub fn not_member_reason(&self) -> Option<NotMemberReason> {
        match self.rule {
            Rule::NotMember(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The outcome of a policy check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with the rule and message.
    Deny(Denial),
}

impl Decision {
    /// Whether it is [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The denial, if refused.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Self::Allow => None,
            Self::Deny(denial) => Some(denial),
        }
    }

    /// `Ok(())` or `Err(denial)`, for `?`.
    pub fn into_result(self) -> Result<(), Denial> {
        match self {
            Self::Allow => Ok(()),
            Self::Deny(denial) => Err(denial),
        }
    }
}

impl From<Result<(), Denial>> for Decision {
    fn from(result: Result<(), Denial>) -> Self {
        match result {
            Ok(()) => Self::Allow,
            Err(denial) => Self::Deny(denial),
        }
    }
}

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

/// Decides whether `principal` may do `op` on the matter it named
/// `requested_id`.
///
/// `matter` is the matter the store found under `requested_id`, or `None` if
/// there is none. A missing matter, a never-member and a removed member all
/// get the same message, built from `requested_id` (not from the stored id,
/// so that even a normalized spelling reveals nothing).
///
/// Order of checks: existence and membership; role; the provider's
/// acknowledgment; then the operation's own data (target, task, recipient,
/// review state). So a refusal names the first thing that would have to
/// change.
pub fn decide(
    principal: &PrincipalView<'_>,
    requested_id: &str,
    matter: Option<&MatterView<'_>>,
    op: &Operation<'_>,
) -> Decision {
    decide_inner(principal, requested_id, matter, op).into()
}

fn decide_inner(
    principal: &PrincipalView<'_>,
    requested_id: &str,
    matter: Option<&MatterView<'_>>,
    op: &Operation<'_>,
) -> Result<(), Denial> {
    let Some(matter) = matter else {
        return Err(not_member(requested_id, NotMemberReason::NoSuchMatter));
    };
    // The admin may export any matter's log entries (it may export the whole
    // log anyway); no other admin privilege reaches into a matter.
    if principal.admin && matches!(op, Operation::ExportAudit) {
        return Ok(());
    }
    let (role, acked_version) = match matter.membership {
        Membership::Member {
            role,
            acked_version,
        } => (role, acked_version),
        Membership::Removed { former_role } => {
            return Err(not_member(
                requested_id,
                NotMemberReason::Removed { former_role },
            ));
        }
        Membership::Never => {
            return Err(not_member(requested_id, NotMemberReason::NeverMember));
        }
    };

    check_role(principal, matter, role, op)?;

    if role == Role::Provider
        && !op.open_before_acknowledgment()
        && acked_version != Some(matter.ack_version)
    {
        return Err(Denial::new(
            Rule::NotAcknowledged {
                version: matter.ack_version,
                signed: acked_version,
            },
            format!(
                "provider {} has not acknowledged matter {} (acknowledgment v{})",
                principal.id, matter.id, matter.ack_version
            ),
        ));
    }

    match *op {
        Operation::ShowMatter
        | Operation::ListMatters
        | Operation::ReadAckText
        | Operation::SignAck
        | Operation::SetAck
        | Operation::SetRecovery
        | Operation::SetCrypto
        | Operation::Lifecycle
        | Operation::Engagement
        | Operation::ReadRoster
        | Operation::Inbox
        | Operation::ExportAudit
        | Operation::Report => Ok(()),
        Operation::AddMember {
            role: new_role,
            target,
            target_current_role,
            attorney_count,
        } => check_add_member(
            matter,
            new_role,
            &target,
            target_current_role,
            attorney_count,
        ),
        Operation::RemoveMember {
            target,
            target_role,
            attorney_count,
        } => check_remove_member(matter, target, target_role, attorney_count),
        Operation::SetScope { scope } => validate_scope(scope),
        Operation::Rekey {
            target,
            target_role,
        } => match target_role {
            Some(_) => Ok(()),
            None => Err(Denial::new(
                Rule::TargetNotMember,
                format!("{target} is not a member of matter {}", matter.id),
            )),
        },
        Operation::Push { task } => check_push_task(matter, task),
        Operation::Deliver {
            packet,
            to_my_org,
            pending,
            approved,
        } => check_delivery(principal, matter, packet, to_my_org, pending, approved),
        Operation::PullPacket { packet, recipient } => {
            check_recipient(principal, matter, "packet", packet, recipient)
        }
        Operation::PullDeliverable {
            deliverable,
            is_delivering_provider,
            recipient,
        } => {
            if role == Role::Provider && !is_delivering_provider {
                return Err(Denial::new(
                    Rule::NotDeliveringProvider,
                    format!(
                        "deliverable {deliverable} of matter {} was delivered by another provider; \
                         {} may pull only its own deliverables",
                        matter.id, principal.id
                    ),
                ));
            }
            check_recipient(principal, matter, "deliverable", deliverable, recipient)
        }
        Operation::Review {
            deliverable,
            pending,
        } => {
            if pending {
                Ok(())
            } else {
                Err(Denial::new(
                    Rule::AlreadyReviewed,
                    format!(
                        "deliverable {deliverable} of matter {} is not awaiting review \
                         (already approved, returned or superseded)",
                        matter.id
                    ),
                ))
            }
        }
    }
}

/// Decides an operation that is not about one existing matter.
///
/// - `matter create`: only members of a firm organization may create matters;
///   the id must be free and the scope valid ([`validate_scope`]). The firm
///   check comes first, so only firm members can learn that an id is taken
///   (matter ids are one server-wide namespace, so creating a matter
///   necessarily reveals whether its id exists).
/// - Organizations, invites, the whole audit log: server admins only.
pub fn decide_server(principal: &PrincipalView<'_>, op: &ServerOperation<'_>) -> Decision {
    decide_server_inner(principal, op).into()
}

fn decide_server_inner(
    principal: &PrincipalView<'_>,
    op: &ServerOperation<'_>,
) -> Result<(), Denial> {
    match *op {
        ServerOperation::CreateMatter { id, scope, exists } => {
            creator_firm(principal)?;
            if exists {
                return Err(Denial::new(
                    Rule::MatterExists,
                    format!("matter {id} already exists"),
                ));
            }
            validate_scope(scope)
        }
        // Only the caller's own record changes, and no matter trusts it: a
        // roster keeps the key its attorneys signed.
        ServerOperation::ReplaceOwnAgeKey
        | ServerOperation::SetOwnEmail
        | ServerOperation::AttestDestruction => Ok(()),
        ServerOperation::CreateOrganization
        | ServerOperation::CreateInvite
        | ServerOperation::RevokeInvite
        | ServerOperation::ListDirectory
        | ServerOperation::ExportFullLog
        | ServerOperation::RevokeKey => {
            if principal.admin {
                Ok(())
            } else {
                Err(Denial::new(
                    Rule::NotAdmin,
                    format!(
                        "only a server admin may {}; {} is not an admin",
                        op.action(),
                        principal.id
                    ),
                ))
            }
        }
    }
}

/// The firm organization a matter created by `principal` belongs to, or the
/// refusal [`decide_server`] gives for [`ServerOperation::CreateMatter`].
pub fn creator_firm<'a>(principal: &PrincipalView<'a>) -> Result<&'a str, Denial> {
    principal.firm().ok_or_else(|| {
        Denial::new(
            Rule::NotFirmMember,
            format!(
                "only members of a firm organization may create matters; {} {}",
                principal.id,
                principal.affiliation()
            ),
        )
    })
}

/// Checks a matter scope: at least one task type, and only task types
/// providers may do (the in-house ones stay in-house). Duplicates are
/// harmless and accepted.
pub fn validate_scope(scope: &[Task]) -> Result<(), Denial> {
    if let Some(&task) = scope.iter().find(|t| !t.allowed_for_providers()) {
        return Err(in_house(task));
    }
    if scope.is_empty() {
        return Err(Denial::new(
            Rule::EmptyScope,
            "a matter's scope must list at least one task type providers may do".to_owned(),
        ));
    }
    Ok(())
}

/// The delivery rules: only for a packet sent to the provider's
/// organization, and not while a deliverable awaits review or after one
/// was approved.
fn check_delivery(
    principal: &PrincipalView<'_>,
    matter: &MatterView<'_>,
    packet: &str,
    to_my_org: bool,
    pending: Option<&str>,
    approved: Option<&str>,
) -> Result<(), Denial> {
    if !to_my_org {
        return Err(Denial::new(
            Rule::NotSentToOrg,
            format!(
                "packet {packet} of matter {} was not sent to {}'s organization",
                matter.id, principal.id
            ),
        ));
    }
    if let Some(d) = approved {
        return Err(Denial::new(
            Rule::DeliveryApproved,
            format!(
                "packet {packet} of matter {} already has an approved deliverable ({d})",
                matter.id
            ),
        ));
    }
    if let Some(d) = pending {
        return Err(Denial::new(
            Rule::DeliveryPending,
            format!(
                "deliverable {d} for packet {packet} of matter {} is still awaiting review",
                matter.id
            ),
        ));
    }
    Ok(())
}

/// Checks a packet's task type against a matter's scope.
fn check_push_task(matter: &MatterView<'_>, task: Task) -> Result<(), Denial> {
    if !task.allowed_for_providers() {
        return Err(in_house(task));
    }
    if !matter.scope.contains(&task) {
        let scope = matter
            .scope
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Denial::new(
            Rule::OutOfScope { task },
            format!(
                "task {task} is not in the scope of matter {} (scope: {scope})",
                matter.id
            ),
        ));
    }
    Ok(())
}

fn in_house(task: Task) -> Denial {
    Denial::new(
        Rule::InHouseTask { task },
        format!("task {task} stays in-house and cannot be sent to providers"),
    )
}

/// The one message every non-member gets, whether or not the matter exists.
fn not_member(requested_id: &str, reason: NotMemberReason) -> Denial {
    Denial::new(
        Rule::NotMember(reason),
        format!("matter {requested_id} not found or you are not a member of it"),
    )
}

fn check_role(
    principal: &PrincipalView<'_>,
    matter: &MatterView<'_>,
    role: Role,
    op: &Operation<'_>,
) -> Result<(), Denial> {
    let allowed = op.allowed_roles();
    if allowed.contains(&role) {
        return Ok(());
    }
    if allowed == [Role::Attorney] {
        return Err(Denial::new(
            Rule::NotAttorney { role },
            format!(
                "only an attorney of matter {} may {}; {} is {}",
                matter.id,
                op.action(),
                principal.id,
                role.with_article()
            ),
        ));
    }
    Err(Denial::new(
        Rule::RoleCannot { role },
        format!(
            "only {} of matter {} may {}; {} is {}",
            join_roles(allowed),
            matter.id,
            op.action(),
            principal.id,
            role.with_article()
        ),
    ))
}

/// "attorneys, paralegals and providers".
fn join_roles(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.plural()).collect();
    match names.split_last() {
        None => "no one".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn check_add_member(
    matter: &MatterView<'_>,
    role: Role,
    target: &PrincipalView<'_>,
    target_current_role: Option<Role>,
    attorney_count: usize,
) -> Result<(), Denial> {
    match role {
        Role::Attorney | Role::Paralegal => {
            if target.firm() != Some(matter.firm) {
                return Err(Denial::new(
                    Rule::FirmRoleNeedsFirmOrg { role },
                    format!(
                        "role {role} on matter {} needs a member of its firm {}; {} {}",
                        matter.id,
                        matter.firm,
                        target.id,
                        target.affiliation()
                    ),
                ));
            }
        }
        Role::Provider => {
            if target.org.is_none() || target.org_kind != Some(OrgKind::Provider) {
                return Err(Denial::new(
                    Rule::ProviderRoleNeedsProviderOrg,
                    format!(
                        "role provider on matter {} needs a member of a provider organization; {} {}",
                        matter.id,
                        target.id,
                        target.affiliation()
                    ),
                ));
            }
        }
        Role::Auditor => {}
    }
    if target_current_role == Some(Role::Attorney) && role != Role::Attorney && attorney_count <= 1
    {
        return Err(last_attorney(matter, target.id, "have its role changed"));
    }
    Ok(())
}

fn last_attorney(matter: &MatterView<'_>, target: &str, what: &str) -> Denial {
    Denial::new(
        Rule::LastAttorney,
        format!(
            "{target} is the last attorney of matter {} and cannot {what}; \
             add another attorney first",
            matter.id
        ),
    )
}

fn check_remove_member(
    matter: &MatterView<'_>,
    target: &str,
    target_role: Option<Role>,
    attorney_count: usize,
) -> Result<(), Denial> {
    match target_role {
        None => Err(Denial::new(
            Rule::TargetNotMember,
            format!("{target} is not a member of matter {}", matter.id),
        )),
        Some(Role::Attorney) if attorney_count <= 1 => {
            Err(last_attorney(matter, target, "be removed"))
        }
        Some(_) => Ok(()),
    }
}

fn check_recipient(
    principal: &PrincipalView<'_>,
    matter: &MatterView<'_>,
    kind: &str,
    object: &str,
    recipient: bool,
) -> Result<(), Denial> {
    if recipient {
        return Ok(());
    }
    Err(Denial::new(
        Rule::NotRecipient,
        format!(
            "{kind} {object} of matter {} was not encrypted to {} \
             (it was sent before they could receive it); its sender or a recipient can \
             share it with them (`mdrop share {object} --to {}`)",
            matter.id, principal.id, principal.id
        ),
    ))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const MATTER: &str = "2026-PI-0042";
    const FIRM: &str = "firm-a";
    /// The matter's current acknowledgment version.
    const ACK_NOW: u32 = 2;
    const SCOPE: &[Task] = &[Task::DocumentReview, Task::LegalResearch];
    const NOT_FOUND: &str = "matter 2026-PI-0042 not found or you are not a member of it";

    const fn who(id: &'static str, org: &'static str, kind: OrgKind) -> PrincipalView<'static> {
        PrincipalView {
            id,
            org: Some(org),
            org_kind: Some(kind),
            admin: false,
        }
    }

    // Targets for AddMember.
    const CARL_SAME_FIRM: PrincipalView<'static> = who("carl@firm-a", "firm-a", OrgKind::Firm);
    const DAVE_OTHER_FIRM: PrincipalView<'static> = who("dave@firm-b", "firm-b", OrgKind::Firm);
    const PIA_PROVIDER: PrincipalView<'static> = who("pia@lpo-2", "lpo-2", OrgKind::Provider);
    const ROOT_NO_ORG: PrincipalView<'static> = PrincipalView {
        id: "root",
        org: None,
        org_kind: None,
        admin: true,
    };

    /// The requesting principal for each role in the table.
    fn principal_for(role: Role) -> PrincipalView<'static> {
        match role {
            Role::Attorney => who("alice@firm-a", "firm-a", OrgKind::Firm),
            Role::Paralegal => who("pat@firm-a", "firm-a", OrgKind::Firm),
            Role::Provider => who("bob@lpo-1", "lpo-1", OrgKind::Provider),
            Role::Auditor => who("audrey@audit-co", "audit-co", OrgKind::Firm),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ack {
        Unsigned,
        Current,
        Outdated,
    }

    impl Ack {
        const ALL: [Self; 3] = [Self::Unsigned, Self::Current, Self::Outdated];

        fn version(self) -> Option<u32> {
            match self {
                Self::Unsigned => None,
                Self::Current => Some(ACK_NOW),
                Self::Outdated => Some(ACK_NOW - 1),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        Member,
        Removed,
        Never,
        /// The requested matter does not exist.
        NoSuchMatter,
    }

    impl State {
        const ALL: [Self; 4] = [Self::Member, Self::Removed, Self::Never, Self::NoSuchMatter];
    }

    fn membership(role: Role, ack: Ack, state: State) -> Membership {
        match state {
            State::Member => Membership::Member {
                role,
                acked_version: ack.version(),
            },
            State::Removed => Membership::Removed { former_role: role },
            State::Never | State::NoSuchMatter => Membership::Never,
        }
    }

    fn matter(membership: Membership) -> MatterView<'static> {
        MatterView {
            id: MATTER,
            firm: FIRM,
            ack_version: ACK_NOW,
            scope: SCOPE,
            membership,
        }
    }

    /// Number of [`Operation`] variants; [`variant_index`] must map onto
    /// `0..VARIANTS` and [`all_operations`] must cover every index.
    const VARIANTS: usize = 22;

    /// Exhaustive on purpose (no wildcard): a new variant does not compile
    /// until it gets an index here, a row in [`all_operations`] and arms in
    /// [`expected`].
    fn variant_index(op: &Operation<'_>) -> usize {
        match op {
            Operation::ShowMatter => 0,
            Operation::ListMatters => 1,
            Operation::ReadAckText => 2,
            Operation::SignAck => 3,
            Operation::AddMember { .. } => 4,
            Operation::RemoveMember { .. } => 5,
            Operation::SetAck => 6,
            Operation::SetScope { .. } => 7,
            Operation::Push { .. } => 8,
            Operation::Inbox => 9,
            Operation::PullPacket { .. } => 10,
            Operation::Deliver { .. } => 11,
            Operation::PullDeliverable { .. } => 12,
            Operation::Review { .. } => 13,
            Operation::ExportAudit => 14,
            Operation::Report => 15,
            Operation::SetRecovery => 16,
            Operation::Rekey { .. } => 17,
            Operation::ReadRoster => 18,
            Operation::SetCrypto => 19,
            Operation::Lifecycle => 20,
            Operation::Engagement => 21,
        }
    }

    /// Every operation variant, with the interesting data combinations.
    fn all_operations() -> Vec<Operation<'static>> {
        let mut ops = vec![
            Operation::ShowMatter,
            Operation::ListMatters,
            Operation::ReadAckText,
            Operation::SignAck,
        ];
        // New members: every role for every kind of target.
        for role in Role::ALL {
            for target in [CARL_SAME_FIRM, DAVE_OTHER_FIRM, PIA_PROVIDER, ROOT_NO_ORG] {
                ops.push(Operation::AddMember {
                    role,
                    target,
                    target_current_role: None,
                    attorney_count: 1,
                });
            }
        }
        // Role changes of current members.
        let change = |role, target, current, attorney_count| Operation::AddMember {
            role,
            target,
            target_current_role: Some(current),
            attorney_count,
        };
        ops.extend([
            change(Role::Provider, PIA_PROVIDER, Role::Provider, 1),
            change(Role::Auditor, PIA_PROVIDER, Role::Provider, 1),
            change(Role::Attorney, CARL_SAME_FIRM, Role::Paralegal, 1),
            change(Role::Attorney, CARL_SAME_FIRM, Role::Attorney, 1),
            change(Role::Paralegal, CARL_SAME_FIRM, Role::Attorney, 1),
            change(Role::Auditor, CARL_SAME_FIRM, Role::Attorney, 1),
            change(Role::Paralegal, CARL_SAME_FIRM, Role::Attorney, 2),
            change(Role::Provider, CARL_SAME_FIRM, Role::Attorney, 1),
        ]);
        ops.extend([
            Operation::RemoveMember {
                target: "pia@lpo-2",
                target_role: Some(Role::Provider),
                attorney_count: 1,
            },
            Operation::RemoveMember {
                target: "carl@firm-a",
                target_role: Some(Role::Attorney),
                attorney_count: 2,
            },
            Operation::RemoveMember {
                target: "carl@firm-a",
                target_role: Some(Role::Attorney),
                attorney_count: 1,
            },
            Operation::RemoveMember {
                target: "nobody@lpo-9",
                target_role: None,
                attorney_count: 2,
            },
            Operation::SetAck,
            Operation::SetScope {
                scope: &[Task::DocumentReview, Task::Drafting],
            },
            Operation::SetScope { scope: &[] },
            Operation::SetScope {
                scope: &[Task::DocumentReview, Task::LegalAdvice],
            },
        ]);
        ops.extend(Task::ALL.map(|task| Operation::Push { task }));
        ops.push(Operation::Inbox);
        for recipient in [true, false] {
            ops.push(Operation::PullPacket {
                packet: "pk-1",
                recipient,
            });
        }
        for (to_my_org, pending, approved) in [
            (true, None, None),
            (false, None, None),
            (true, Some("dl-1"), None),
            (true, None, Some("dl-2")),
        ] {
            ops.push(Operation::Deliver {
                packet: "pk-1",
                to_my_org,
                pending,
                approved,
            });
        }
        for is_delivering_provider in [true, false] {
            for recipient in [true, false] {
                ops.push(Operation::PullDeliverable {
                    deliverable: "dl-1",
                    is_delivering_provider,
                    recipient,
                });
            }
        }
        for pending in [true, false] {
            ops.push(Operation::Review {
                deliverable: "dl-1",
                pending,
            });
        }
        ops.extend([Operation::ExportAudit, Operation::Report]);
        ops.extend([
            Operation::SetRecovery,
            Operation::SetCrypto,
            Operation::Lifecycle,
            Operation::Engagement,
            Operation::Rekey {
                target: "pia@lpo-2",
                target_role: Some(Role::Provider),
            },
            Operation::Rekey {
                target: "nobody@lpo-9",
                target_role: None,
            },
            Operation::ReadRoster,
        ]);
        ops
    }

    /// The expectation table, written out by hand: `"allow"`, or the rule
    /// code (with the non-member reason after a slash).
    fn expected(role: Role, ack: Ack, state: State, op: &Operation<'_>) -> &'static str {
        use Operation as Op;
        use Role::{Attorney, Auditor, Paralegal, Provider};

        // Whoever is not a current member learns nothing, whatever the role.
        match state {
            State::NoSuchMatter => return "not-member/no-such-matter",
            State::Never => return "not-member/never-member",
            State::Removed => return "not-member/removed",
            State::Member => {}
        }
        // A provider that has not signed v2 gets this instead of `outcome`.
        let acked = |outcome: &'static str| -> &'static str {
            match (role, ack) {
                (Provider, Ack::Unsigned | Ack::Outdated) => "not-acknowledged",
                (Provider, Ack::Current) | (Attorney | Paralegal | Auditor, _) => outcome,
            }
        };

        match (op, role) {
            // Metadata, listing and the acknowledgment itself.
            (Op::ShowMatter, Attorney | Paralegal | Auditor) => "allow",
            (Op::ShowMatter, Provider) => acked("allow"),
            (Op::ListMatters, _) => "allow",
            (Op::ReadAckText, _) => "allow",
            (Op::ReadRoster, _) => "allow",
            (Op::SignAck, Provider) => "allow",
            (Op::SignAck, Attorney | Paralegal | Auditor) => "role-cannot",

            // Attorney-only operations, for everyone else.
            (
                Op::AddMember { .. }
                | Op::RemoveMember { .. }
                | Op::SetAck
                | Op::SetScope { .. }
                | Op::SetRecovery
                | Op::SetCrypto
                | Op::Lifecycle
                | Op::Engagement
                | Op::Rekey { .. }
                | Op::Review { .. },
                Paralegal | Provider | Auditor,
            ) => "not-attorney",
            (Op::SetRecovery | Op::SetCrypto | Op::Lifecycle | Op::Engagement, Attorney) => "allow",
            (
                Op::Rekey {
                    target_role: None, ..
                },
                Attorney,
            ) => "target-not-member",
            (Op::Rekey { .. }, Attorney) => "allow",

            // AddMember by an attorney: the new role must fit the target's
            // organization (carl@firm-a: the matter's firm, dave@firm-b:
            // another firm, pia@lpo-2: a provider, root: no organization)...
            (
                Op::AddMember {
                    role: Attorney | Paralegal,
                    target:
                        PrincipalView {
                            id: "dave@firm-b" | "pia@lpo-2" | "root",
                            ..
                        },
                    ..
                },
                Attorney,
            ) => "firm-role-needs-firm-org",
            (
                Op::AddMember {
                    role: Provider,
                    target:
                        PrincipalView {
                            id: "carl@firm-a" | "dave@firm-b" | "root",
                            ..
                        },
                    ..
                },
                Attorney,
            ) => "provider-role-needs-provider-org",
            // ...and the only attorney keeps its role.
            (
                Op::AddMember {
                    role: Paralegal | Provider | Auditor,
                    target_current_role: Some(Attorney),
                    attorney_count: 0 | 1,
                    ..
                },
                Attorney,
            ) => "last-attorney",
            (Op::AddMember { .. }, Attorney) => "allow",

            // RemoveMember by an attorney.
            (
                Op::RemoveMember {
                    target_role: None, ..
                },
                Attorney,
            ) => "target-not-member",
            (
                Op::RemoveMember {
                    target_role: Some(Attorney),
                    attorney_count: 0 | 1,
                    ..
                },
                Attorney,
            ) => "last-attorney",
            (
                Op::RemoveMember {
                    target_role: Some(_),
                    ..
                },
                Attorney,
            ) => "allow",

            (Op::SetAck, Attorney) => "allow",
            (Op::SetScope { scope: [] }, Attorney) => "empty-scope",
            (
                Op::SetScope {
                    scope: [Task::DocumentReview, Task::LegalAdvice],
                },
                Attorney,
            ) => "in-house-task",
            (Op::SetScope { .. }, Attorney) => "allow",

            // Push: firm roles only; in-house first, then the scope
            // (document-review, legal-research).
            (Op::Push { .. }, Provider | Auditor) => "role-cannot",
            (
                Op::Push {
                    task:
                        Task::LegalAdvice
                        | Task::PleadingSignature
                        | Task::CourtAppearance
                        | Task::PrivilegeDecision,
                },
                Attorney | Paralegal,
            ) => "in-house-task",
            (
                Op::Push {
                    task: Task::DocumentReview | Task::LegalResearch,
                },
                Attorney | Paralegal,
            ) => "allow",
            (
                Op::Push {
                    task: Task::Drafting | Task::MedicalChronology | Task::ClientIntake,
                },
                Attorney | Paralegal,
            ) => "out-of-scope",

            (Op::Inbox, Attorney | Paralegal) => "allow",
            (Op::Inbox, Provider) => acked("allow"),
            (Op::Inbox, Auditor) => "role-cannot",

            (Op::PullPacket { .. }, Auditor) => "role-cannot",
            (
                Op::PullPacket {
                    recipient: true, ..
                },
                Attorney | Paralegal,
            ) => "allow",
            (
                Op::PullPacket {
                    recipient: false, ..
                },
                Attorney | Paralegal,
            ) => "not-recipient",
            (
                Op::PullPacket {
                    recipient: true, ..
                },
                Provider,
            ) => acked("allow"),
            (
                Op::PullPacket {
                    recipient: false, ..
                },
                Provider,
            ) => acked("not-recipient"),

            (
                Op::Deliver {
                    to_my_org: false, ..
                },
                Provider,
            ) => acked("not-sent-to-org"),
            (
                Op::Deliver {
                    approved: Some(_), ..
                },
                Provider,
            ) => acked("delivery-approved"),
            (
                Op::Deliver {
                    pending: Some(_), ..
                },
                Provider,
            ) => acked("delivery-pending"),
            (Op::Deliver { .. }, Provider) => acked("allow"),
            (Op::Deliver { .. }, Attorney | Paralegal | Auditor) => "role-cannot",

            (Op::PullDeliverable { .. }, Auditor) => "role-cannot",
            (
                Op::PullDeliverable {
                    recipient: true, ..
                },
                Attorney | Paralegal,
            ) => "allow",
            (
                Op::PullDeliverable {
                    recipient: false, ..
                },
                Attorney | Paralegal,
            ) => "not-recipient",
            (
                Op::PullDeliverable {
                    is_delivering_provider: true,
                    recipient: true,
                    ..
                },
                Provider,
            ) => acked("allow"),
            (
                Op::PullDeliverable {
                    is_delivering_provider: true,
                    recipient: false,
                    ..
                },
                Provider,
            ) => acked("not-recipient"),
            (
                Op::PullDeliverable {
                    is_delivering_provider: false,
                    ..
                },
                Provider,
            ) => acked("not-delivering-provider"),

            (Op::Review { pending: true, .. }, Attorney) => "allow",
            (Op::Review { pending: false, .. }, Attorney) => "already-reviewed",

            (Op::ExportAudit, Auditor | Attorney) => "allow",
            (Op::ExportAudit, Paralegal | Provider) => "role-cannot",
            (Op::Report, Attorney | Auditor) => "allow",
            (Op::Report, Paralegal | Provider) => "role-cannot",
        }
    }

    fn observed(decision: &Decision) -> String {
        match decision {
            Decision::Allow => "allow".to_owned(),
            Decision::Deny(denial) => match denial.not_member_reason() {
                Some(reason) => format!("{}/{}", denial.rule.as_str(), reason.as_str()),
                None => denial.rule.as_str().to_owned(),
            },
        }
    }

    /// Message checks that hold for every row of the table.
    fn check_message(principal: &PrincipalView<'_>, role: Role, decision: &Decision, row: &str) {
        let Some(denial) = decision.denial() else {
            return;
        };
        assert_eq!(denial.to_string(), denial.message, "{row}");
        match denial.rule {
            Rule::NotMember(_) => {
                assert_eq!(denial.message, NOT_FOUND, "{row}");
                assert!(denial.hides_existence(), "{row}");
            }
            Rule::NotAcknowledged { version, .. } => {
                assert_eq!(version, ACK_NOW, "{row}");
                assert_eq!(
                    denial.message,
                    "provider bob@lpo-1 has not acknowledged matter 2026-PI-0042 (acknowledgment v2)",
                    "{row}"
                );
            }
            Rule::NotAttorney { role: r } => {
                assert_eq!(r, role, "{row}");
                assert!(
                    denial
                        .message
                        .starts_with("only an attorney of matter 2026-PI-0042 may "),
                    "{row}: {}",
                    denial.message
                );
                assert!(
                    denial.message.ends_with(&format!(
                        "; {} is {}",
                        principal.id,
                        role.with_article()
                    )),
                    "{row}: {}",
                    denial.message
                );
            }
            Rule::RoleCannot { role: r } => {
                assert_eq!(r, role, "{row}");
                assert!(denial.message.starts_with("only "), "{row}");
                assert!(
                    denial.message.ends_with(&format!(
                        "; {} is {}",
                        principal.id,
                        role.with_article()
                    )),
                    "{row}: {}",
                    denial.message
                );
            }
            Rule::InHouseTask { task } => assert_eq!(
                denial.message,
                format!("task {task} stays in-house and cannot be sent to providers"),
                "{row}"
            ),
            _ => assert!(
                !denial.hides_existence() && denial.message.contains(MATTER)
                    || denial.rule == Rule::EmptyScope,
                "{row}: {}",
                denial.message
            ),
        }
    }

    #[test]
    fn operation_list_is_exhaustive() {
        let ops = all_operations();
        let mut seen = [false; VARIANTS];
        for op in &ops {
            let index = variant_index(op);
            assert!(index < VARIANTS, "bump VARIANTS for {op:?}");
            seen[index] = true;
        }
        assert!(seen.iter().all(|&s| s), "all_operations misses a variant");
        let mut names: Vec<&str> = ops.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARIANTS, "operation names must be distinct");
    }

    #[test]
    fn decision_table_every_role_ack_membership_operation() {
        let ops = all_operations();
        let mut rows = 0;
        let mut allowed = 0;
        for role in Role::ALL {
            let principal = principal_for(role);
            for ack in Ack::ALL {
                for state in State::ALL {
                    let view = matter(membership(role, ack, state));
                    let found = (state != State::NoSuchMatter).then_some(&view);
                    for op in &ops {
                        let row = format!("{role} / {ack:?} / {state:?} / {op:?}");
                        let decision = decide(&principal, MATTER, found, op);
                        assert_eq!(
                            observed(&decision),
                            expected(role, ack, state, op),
                            "{row}: {decision:?}"
                        );
                        check_message(&principal, role, &decision, &row);
                        allowed += usize::from(decision.is_allowed());
                        rows += 1;
                    }
                }
            }
        }
        assert_eq!(
            rows,
            Role::ALL.len() * Ack::ALL.len() * State::ALL.len() * ops.len()
        );
        assert_eq!(rows, 4 * 3 * 4 * ops.len());
        assert!(allowed > 0 && allowed < rows);
    }

    #[test]
    fn missing_matter_looks_exactly_like_not_member() {
        let mut checked = 0;
        for role in Role::ALL {
            for admin in [false, true] {
                let principal = PrincipalView {
                    admin,
                    ..principal_for(role)
                };
                for op in all_operations() {
                    if admin && op == Operation::ExportAudit {
                        continue; // the admin may export any existing matter's entries
                    }
                    let missing = decide(&principal, MATTER, None, &op);
                    let never = decide(&principal, MATTER, Some(&matter(Membership::Never)), &op);
                    let removed = decide(
                        &principal,
                        MATTER,
                        Some(&matter(Membership::Removed { former_role: role })),
                        &op,
                    );
                    let (Some(m), Some(n), Some(r)) =
                        (missing.denial(), never.denial(), removed.denial())
                    else {
                        panic!("{role} admin={admin} {op:?}: a non-member was allowed");
                    };
                    for d in [m, n, r] {
                        assert!(d.hides_existence());
                        assert_eq!(d.message, NOT_FOUND);
                        assert_eq!(d.rule.as_str(), "not-member");
                        assert_eq!(d.to_string(), m.to_string());
                    }
                    assert_eq!(m.not_member_reason(), Some(NotMemberReason::NoSuchMatter));
                    assert_eq!(n.not_member_reason(), Some(NotMemberReason::NeverMember));
                    assert_eq!(
                        r.not_member_reason(),
                        Some(NotMemberReason::Removed { former_role: role })
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4 * (2 * all_operations().len() - 1));
    }

    #[test]
    fn refusal_echoes_the_requested_id_not_the_stored_one() {
        let principal = principal_for(Role::Provider);
        let stored = matter(Membership::Never);
        let found = decide(
            &principal,
            "2026-pi-0042",
            Some(&stored),
            &Operation::ShowMatter,
        );
        let missing = decide(&principal, "2026-pi-0042", None, &Operation::ShowMatter);
        assert_eq!(
            found.denial().map(|d| &d.message),
            missing.denial().map(|d| &d.message)
        );
        assert_eq!(
            found.denial().map(|d| d.message.as_str()),
            Some("matter 2026-pi-0042 not found or you are not a member of it")
        );
    }

    #[test]
    fn admin_without_membership_gets_no_matter_content() {
        let admin = ROOT_NO_ORG;
        let firm_admin = PrincipalView {
            admin: true,
            ..CARL_SAME_FIRM
        };
        for principal in [admin, firm_admin] {
            for membership in [
                Membership::Never,
                Membership::Removed {
                    former_role: Role::Attorney,
                },
            ] {
                let view = matter(membership);
                for op in all_operations() {
                    let decision = decide(&principal, MATTER, Some(&view), &op);
                    if op == Operation::ExportAudit {
                        assert_eq!(decision, Decision::Allow, "{op:?}");
                    } else {
                        let denial = decision.denial().expect("admin must be refused");
                        assert_eq!(denial.message, NOT_FOUND, "{op:?}");
                    }
                }
            }
            // An admin who is also a member is just that member: no bypass of
            // the acknowledgment or the role.
            let as_provider = matter(Membership::Member {
                role: Role::Provider,
                acked_version: None,
            });
            let decision = decide(&principal, MATTER, Some(&as_provider), &Operation::Inbox);
            assert_eq!(
                decision.denial().map(|d| d.rule.as_str()),
                Some("not-acknowledged")
            );
            let as_auditor = matter(Membership::Member {
                role: Role::Auditor,
                acked_version: None,
            });
            let decision = decide(
                &principal,
                MATTER,
                Some(&as_auditor),
                &Operation::PullPacket {
                    packet: "pk-1",
                    recipient: true,
                },
            );
            assert_eq!(
                decision.denial().map(|d| d.rule.as_str()),
                Some("role-cannot")
            );
            // A missing matter is refused for the admin too.
            assert_eq!(
                decide(&principal, MATTER, None, &Operation::ExportAudit)
                    .denial()
                    .map(|d| d.message.as_str()),
                Some(NOT_FOUND)
            );
        }
    }

    #[test]
    fn only_admins_administer() {
        let ops = [
            ServerOperation::CreateOrganization,
            ServerOperation::CreateInvite,
            ServerOperation::ExportFullLog,
            ServerOperation::RevokeKey,
        ];
        for op in ops {
            assert_eq!(decide_server(&ROOT_NO_ORG, &op), Decision::Allow);
            for role in Role::ALL {
                let member = principal_for(role);
                let denial = decide_server(&member, &op)
                    .into_result()
                    .expect_err("non-admin refused");
                assert_eq!(denial.rule, Rule::NotAdmin);
                assert_eq!(denial.rule.as_str(), "not-admin");
                assert!(
                    denial.message.starts_with("only a server admin may "),
                    "{denial}"
                );
                assert!(
                    denial
                        .message
                        .ends_with(&format!("; {} is not an admin", member.id)),
                    "{denial}"
                );
            }
        }
        let names: Vec<&str> = ops.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "org-create",
                "invite-create",
                "audit-export-all",
                "key-revoke"
            ]
        );
        assert_eq!(
            ServerOperation::CreateMatter {
                id: MATTER,
                scope: SCOPE,
                exists: false
            }
            .name(),
            "matter-create"
        );
    }

    #[test]
    fn create_matter_only_by_firm_members() {
        let create = |principal: &PrincipalView<'_>, exists, scope| {
            decide_server(
                principal,
                &ServerOperation::CreateMatter {
                    id: MATTER,
                    scope,
                    exists,
                },
            )
            .into_result()
        };
        let attorney = principal_for(Role::Attorney);
        assert_eq!(create(&attorney, false, SCOPE), Ok(()));
        assert_eq!(
            create(&principal_for(Role::Paralegal), false, SCOPE),
            Ok(())
        );
        assert_eq!(creator_firm(&attorney), Ok(FIRM));
        assert_eq!(CREATOR_ROLE, Role::Attorney);
        // A firm member who is also an admin creates as a firm member.
        let firm_admin = PrincipalView {
            admin: true,
            ..attorney
        };
        assert_eq!(create(&firm_admin, false, SCOPE), Ok(()));

        let provider = principal_for(Role::Provider);
        let denial = create(&provider, false, SCOPE).expect_err("provider refused");
        assert_eq!(denial.rule, Rule::NotFirmMember);
        assert_eq!(
            denial.message,
            "only members of a firm organization may create matters; \
             bob@lpo-1 belongs to provider organization lpo-1"
        );
        assert_eq!(creator_firm(&provider), Err(denial));

        let denial = create(&ROOT_NO_ORG, false, SCOPE).expect_err("org-less admin refused");
        assert_eq!(denial.rule, Rule::NotFirmMember);
        assert!(denial.message.ends_with("root belongs to no organization"));

        // Firm check before the existence check: outsiders cannot probe ids.
        let denial = create(&provider, true, SCOPE).expect_err("refused");
        assert_eq!(denial.rule, Rule::NotFirmMember);
        let denial = create(&attorney, true, SCOPE).expect_err("refused");
        assert_eq!(denial.rule, Rule::MatterExists);
        assert!(denial.rule.is_conflict());
        assert_eq!(denial.message, "matter 2026-PI-0042 already exists");

        // The scope is validated on creation.
        let denial = create(&attorney, false, &[Task::CourtAppearance]).expect_err("refused");
        assert_eq!(
            denial.rule,
            Rule::InHouseTask {
                task: Task::CourtAppearance
            }
        );
        let denial = create(&attorney, false, &[]).expect_err("refused");
        assert_eq!(denial.rule, Rule::EmptyScope);
    }

    #[test]
    fn scope_validation() {
        let mut in_house = 0;
        let mut provider_tasks = 0;
        for task in Task::ALL {
            if task.allowed_for_providers() {
                assert_eq!(validate_scope(&[task]), Ok(()), "{task}");
                provider_tasks += 1;
            } else {
                for scope in [vec![task], vec![Task::DocumentReview, task]] {
                    let denial = validate_scope(&scope).expect_err("in-house refused");
                    assert_eq!(denial.rule, Rule::InHouseTask { task });
                    assert_eq!(denial.rule.as_str(), "in-house-task");
                    assert!(denial.message.contains("stays in-house"), "{denial}");
                    assert!(denial.message.contains(task.as_str()), "{denial}");
                }
                in_house += 1;
            }
        }
        assert_eq!((provider_tasks, in_house), (5, 4));
        let all_provider: Vec<Task> = Task::ALL
            .into_iter()
            .filter(|t| t.allowed_for_providers())
            .collect();
        assert_eq!(validate_scope(&all_provider), Ok(()));
        assert_eq!(
            validate_scope(&[]).map_err(|d| d.rule),
            Err(Rule::EmptyScope)
        );
    }

    #[test]
    fn role_must_fit_the_members_organization() {
        let attorney = principal_for(Role::Attorney);
        let view = matter(Membership::Member {
            role: Role::Attorney,
            acked_version: None,
        });
        let add = |role, target| Operation::AddMember {
            role,
            target,
            target_current_role: None,
            attorney_count: 1,
        };
        let refuse = |op: Operation<'_>| {
            decide(&attorney, MATTER, Some(&view), &op)
                .into_result()
                .expect_err("refused")
        };

        let denial = refuse(add(Role::Provider, CARL_SAME_FIRM));
        assert_eq!(denial.rule, Rule::ProviderRoleNeedsProviderOrg);
        assert_eq!(
            denial.message,
            "role provider on matter 2026-PI-0042 needs a member of a provider organization; \
             carl@firm-a belongs to firm organization firm-a"
        );
        let denial = refuse(add(Role::Paralegal, PIA_PROVIDER));
        assert_eq!(
            denial.rule,
            Rule::FirmRoleNeedsFirmOrg {
                role: Role::Paralegal
            }
        );
        assert_eq!(
            denial.message,
            "role paralegal on matter 2026-PI-0042 needs a member of its firm firm-a; \
             pia@lpo-2 belongs to provider organization lpo-2"
        );
        let denial = refuse(add(Role::Attorney, DAVE_OTHER_FIRM));
        assert_eq!(
            denial.rule,
            Rule::FirmRoleNeedsFirmOrg {
                role: Role::Attorney
            }
        );
        assert!(
            denial
                .message
                .contains("dave@firm-b belongs to firm organization firm-b")
        );

        for target in [CARL_SAME_FIRM, DAVE_OTHER_FIRM, PIA_PROVIDER, ROOT_NO_ORG] {
            assert_eq!(
                decide(&attorney, MATTER, Some(&view), &add(Role::Auditor, target)),
                Decision::Allow,
                "auditor can be anyone: {}",
                target.id
            );
        }
        assert_eq!(
            decide(
                &attorney,
                MATTER,
                Some(&view),
                &add(Role::Provider, PIA_PROVIDER)
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &attorney,
                MATTER,
                Some(&view),
                &add(Role::Paralegal, CARL_SAME_FIRM)
            ),
            Decision::Allow
        );
    }

    #[test]
    fn user_visible_messages() {
        let member = |role, acked_version| {
            matter(Membership::Member {
                role,
                acked_version,
            })
        };
        let message = |role, acked, op: Operation<'_>| {
            decide(
                &principal_for(role),
                MATTER,
                Some(&member(role, acked)),
                &op,
            )
            .denial()
            .map(|d| d.message.clone())
        };
        assert_eq!(
            message(
                Role::Paralegal,
                None,
                Operation::AddMember {
                    role: Role::Provider,
                    target: PIA_PROVIDER,
                    target_current_role: None,
                    attorney_count: 1,
                }
            )
            .as_deref(),
            Some(
                "only an attorney of matter 2026-PI-0042 may add members; pat@firm-a is a paralegal"
            )
        );
        assert_eq!(
            message(Role::Provider, Some(1), Operation::Inbox).as_deref(),
            Some("provider bob@lpo-1 has not acknowledged matter 2026-PI-0042 (acknowledgment v2)")
        );
        assert_eq!(
            message(
                Role::Auditor,
                None,
                Operation::PullPacket {
                    packet: "pk-1",
                    recipient: false,
                }
            )
            .as_deref(),
            Some(
                "only attorneys, paralegals and providers of matter 2026-PI-0042 may pull packets; \
                 audrey@audit-co is an auditor"
            )
        );
        assert_eq!(
            message(
                Role::Attorney,
                None,
                Operation::Push {
                    task: Task::LegalAdvice
                }
            )
            .as_deref(),
            Some("task legal-advice stays in-house and cannot be sent to providers")
        );
        assert_eq!(
            message(
                Role::Paralegal,
                None,
                Operation::Push {
                    task: Task::Drafting
                }
            )
            .as_deref(),
            Some(
                "task drafting is not in the scope of matter 2026-PI-0042 \
                 (scope: document-review, legal-research)"
            )
        );
        assert_eq!(
            message(
                Role::Attorney,
                None,
                Operation::RemoveMember {
                    target: "alice@firm-a",
                    target_role: Some(Role::Attorney),
                    attorney_count: 1,
                }
            )
            .as_deref(),
            Some(
                "alice@firm-a is the last attorney of matter 2026-PI-0042 and cannot be removed; \
                 add another attorney first"
            )
        );
        assert_eq!(
            message(
                Role::Attorney,
                None,
                Operation::AddMember {
                    role: Role::Paralegal,
                    target: CARL_SAME_FIRM,
                    target_current_role: Some(Role::Attorney),
                    attorney_count: 1,
                }
            )
            .as_deref(),
            Some(
                "carl@firm-a is the last attorney of matter 2026-PI-0042 and cannot have its \
                 role changed; add another attorney first"
            )
        );
        assert_eq!(
            message(
                Role::Attorney,
                None,
                Operation::Review {
                    deliverable: "dl-7",
                    pending: false,
                }
            )
            .as_deref(),
            Some(
                "deliverable dl-7 of matter 2026-PI-0042 is not awaiting review \
                 (already approved, returned or superseded)"
            )
        );
        // The rule's detail carries the signed version; the message does not change.
        let outdated = decide(
            &principal_for(Role::Provider),
            MATTER,
            Some(&member(Role::Provider, Some(1))),
            &Operation::Deliver {
                packet: "pk-1",
                to_my_org: true,
                pending: None,
                approved: None,
            },
        );
        assert_eq!(
            outdated.denial().map(|d| d.rule),
            Some(Rule::NotAcknowledged {
                version: 2,
                signed: Some(1)
            })
        );
    }

    #[test]
    fn acknowledgment_and_recipients() {
        let provider = |acked_version| Membership::Member {
            role: Role::Provider,
            acked_version,
        };
        assert_eq!(matter(provider(None)).pending_acknowledgment(), Some(2));
        assert_eq!(matter(provider(Some(1))).pending_acknowledgment(), Some(2));
        assert_eq!(matter(provider(Some(2))).pending_acknowledgment(), None);
        for role in [Role::Attorney, Role::Paralegal, Role::Auditor] {
            let m = Membership::Member {
                role,
                acked_version: None,
            };
            assert_eq!(matter(m).pending_acknowledgment(), None);
            assert_eq!(m.receives_packets(2), role != Role::Auditor);
            assert_eq!(m.receives_deliverables(false), role != Role::Auditor);
        }
        assert!(provider(Some(2)).receives_packets(2));
        assert!(!provider(Some(1)).receives_packets(2));
        assert!(!provider(None).receives_packets(2));
        assert!(provider(Some(2)).receives_deliverables(true));
        assert!(!provider(Some(2)).receives_deliverables(false));
        for gone in [
            Membership::Never,
            Membership::Removed {
                former_role: Role::Attorney,
            },
        ] {
            assert!(!gone.receives_packets(2));
            assert!(!gone.receives_deliverables(true));
            assert_eq!(gone.current_role(), None);
            assert_eq!(matter(gone).pending_acknowledgment(), None);
        }
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        for task in Task::ALL {
            assert_eq!(task.to_string().parse::<Task>(), Ok(task));
        }
        for kind in OrgKind::ALL {
            assert_eq!(kind.to_string().parse::<OrgKind>(), Ok(kind));
        }
        let err = "Attorney".parse::<Role>().expect_err("case-sensitive");
        assert_eq!(
            err.to_string(),
            "unknown role \"Attorney\" (expected one of: attorney, paralegal, provider, auditor)"
        );
        assert!("legal_advice".parse::<Task>().is_err());
        assert_eq!("court-appearance".parse(), Ok(Task::CourtAppearance));
    }
}
