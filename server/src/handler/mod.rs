//! Request handlers: load state, ask [`crate::policy`], record the decision
//! in the audit log, act, answer.
//!
//! Handlers run on the blocking pool (they touch sled and fsync), one call
//! per request. The principal is looked up on every request, never cached
//! per connection, so a change (a removed member, a revoked key) applies to
//! the very next request on an already-open connection.

pub mod expiry;
mod export;
pub mod gate;
mod identity;
mod matters;
mod packets;
mod review;

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ed25519_dalek::VerifyingKey;
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::proto::{ClientRequest, ErrorCode, ServerResponse};
use tracing::error;

use crate::audit::{Body, Event};
use crate::policy::{self, Denial, PrincipalView};
use crate::store::{PrincipalRecord, Refusal, StoreError};

/// Everything handlers share.
#[derive(Debug)]
pub struct State {
    /// Metadata and the audit log: reads, logged decisions, and writes that
    /// need one.
    pub gate: gate::Gate,
    /// The audit-log key in signed-note verifier form.
    pub log_vkey: String,
    /// Serializes read-decide-write sequences on metadata: per matter, and
    /// server-wide for principals.
    pub locks: Locks,
    /// Ciphertext blobs.
    pub blobs: crate::store::blobs::BlobStore,
    /// Open connections per client key.
    pub per_key: crate::server::PerKey,
    /// The witnesses' latest cosigned checkpoints (exports carry them).
    pub witnessed: std::sync::Arc<crate::witness::Witnessed>,
    /// Failed enrollments: limits and counts.
    pub enroll_limiter: crate::flood::EnrollLimiter,
    /// Where notices of new packets, deliverables and reviews go.
    pub notify: crate::notify::Notifier,
}

impl State {
    /// Flushes all state to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.gate.flush()
    }

    /// Queues a notice of `event` on `id` in `matter` for `recipients`
    /// (`crate::notify`; with their email addresses when email is sent).
    pub(crate) fn notify(
        &self,
        event: &'static str,
        matter: &str,
        id: &str,
        recipients: impl IntoIterator<Item = String>,
    ) {
        if !self.notify.enabled() {
            return;
        }
        let recipients: Vec<String> = recipients.into_iter().collect();
        let emails = if self.notify.emails() {
            recipients
                .iter()
                .filter_map(|r| Some((r.clone(), self.gate.read().email(r).ok()??)))
                .collect()
        } else {
            Vec::new()
        };
        self.notify.send(crate::notify::Notice {
            event,
            matter: matter.to_owned(),
            id: id.to_owned(),
            recipients,
            time: crate::datadir::now(),
            emails,
        });
    }

    /// Appends an event to the audit log; the request fails if it cannot be
    /// recorded.
    pub(crate) fn record(&self, event: Event) -> Result<u64, Failure> {
        self.gate.log(vec![event])
    }

    /// [`State::matter_lock`] for the matter of packet `packet` (a
    /// packet's matter never changes), or for the id itself when there is
    /// no such packet.
    pub(crate) fn packet_lock(&self, packet: &str) -> Result<MatterGuard<'_>, Failure> {
        let mut matter = self.gate.read().packet(packet)?.map(|p| p.matter);
        loop {
            let guard = self.matter_lock(matter.as_deref().unwrap_or(packet));
            // A packet created meanwhile is written under its matter's
            // lock: take that one instead.
            let now = self.gate.read().packet(packet)?.map(|p| p.matter);
            if now == matter {
                return Ok(guard);
            }
            matter = now;
        }
    }

    /// Holds off other requests that register principal `id` (it shares
    /// the matter locks, under another name).
    pub(crate) fn principal_lock(&self, id: &str) -> MatterGuard<'_> {
        self.matter_lock(&format!("principal\n{id}"))
    }

    /// Holds off every other writer (for changes to principals, which
    /// every matter's decisions read).
    pub(crate) fn server_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.locks
            .server
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds off other writers of `matter` (and server-wide writers), not
    /// the writers of other matters: a request waits for an fsync only
    /// behind requests on the same matter.
    pub(crate) fn matter_lock(&self, matter: &str) -> MatterGuard<'_> {
        let server = self
            .locks
            .server
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stripe = &self.locks.matters[self.locks.stripe(matter)];
        MatterGuard {
            _matter: stripe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            _server: server,
        }
    }
}

/// The write locks: one server-wide reader-writer lock (principals) and a
/// fixed set of matter locks, a matter's chosen by a keyed hash of its id.
/// Order: the server lock, then one matter lock; never two matter locks.
#[derive(Debug)]
pub struct Locks {
    server: RwLock<()>,
    matters: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

/// Matter locks; two matters share one with probability 1/64.
const MATTER_STRIPES: usize = 64;

impl Default for Locks {
    fn default() -> Self {
        Self {
            server: RwLock::new(()),
            matters: (0..MATTER_STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl Locks {
    fn stripe(&self, matter: &str) -> usize {
        use std::hash::BuildHasher as _;
        (self.hasher.hash_one(matter) % self.matters.len() as u64) as usize
    }
}

/// Held while a request reads, decides and writes one matter's state.
#[must_use]
pub(crate) struct MatterGuard<'a> {
    // Dropped in declaration order: the matter lock first.
    _matter: MutexGuard<'a, ()>,
    _server: RwLockReadGuard<'a, ()>,
}

/// An authenticated principal with what policy needs to know about it.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The stored principal.
    pub record: PrincipalRecord,
    /// Kind of its organization.
    pub org_kind: Option<policy::OrgKind>,
}

impl Actor {
    pub(crate) fn load(state: &State, record: PrincipalRecord) -> Result<Self, Failure> {
        let org_kind = match &record.org {
            Some(org) => state.gate.read().org(org)?.map(|o| match o.kind {
                matterdrop_common::proto::OrgKind::Firm => policy::OrgKind::Firm,
                matterdrop_common::proto::OrgKind::Provider => policy::OrgKind::Provider,
            }),
            None => None,
        };
        Ok(Self { record, org_kind })
    }

    /// The policy's view of this principal.
    pub fn view(&self) -> PrincipalView<'_> {
        PrincipalView {
            id: &self.record.id,
            org: self.record.org.as_deref(),
            org_kind: self.org_kind,
            admin: self.record.admin,
        }
    }
}

/// A handler's failure, turned into an error response.
#[derive(Debug)]
pub(crate) struct Failure {
    code: ErrorCode,
    message: String,
    /// A policy refusal that must not reveal whether its object exists.
    hides_existence: bool,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hides_existence: false,
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
                    | Refusal::InviteRevoked
                    | Refusal::InviteForAnother { .. }
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

impl From<Denial> for Failure {
    fn from(d: Denial) -> Self {
        let hides_existence = d.hides_existence();
        Self {
            hides_existence,
            ..Self::new(ErrorCode::Denied, d.message)
        }
    }
}

type Outcome = Result<ServerResponse, Failure>;

/// Bytes the client sends after its request frame, in chunks (or why
/// they stopped).
pub type Incoming = tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>;

/// Consumes an upload on a blocking thread and produces the answer.
pub type Sink = Box<dyn FnOnce(Incoming) -> ServerResponse + Send>;

/// An answer.
pub enum Reply {
    /// One frame.
    Frame(ServerResponse),
    /// A frame followed by bytes produced on a blocking thread.
    Download(ServerResponse, Body),
    /// Read the bytes that follow the request, then answer.
    Upload(Sink),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Frame(r) => f.debug_tuple("Frame").field(r).finish(),
            Self::Download(r, _) => f.debug_tuple("Download").field(r).finish(),
            Self::Upload(_) => f.write_str("Upload"),
        }
    }
}

impl From<ServerResponse> for Reply {
    fn from(frame: ServerResponse) -> Self {
        Self::Frame(frame)
    }
}

/// Answers one request from the holder of `key`.
pub fn handle(state: &State, key: &VerifyingKey, req: ClientRequest) -> Reply {
    let result = match req {
        ClientRequest::Enroll(r) => identity::enroll(state, key, r).map(Reply::from),
        other => authenticate(state, key).and_then(|me| dispatch(state, &me, key, other)),
    };
    result.unwrap_or_else(|f| ServerResponse::error(f.code, f.message).into())
}

fn dispatch(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: ClientRequest,
) -> Result<Reply, Failure> {
    match req {
        ClientRequest::AuditExport(r) => export::export(state, me, &r),
        ClientRequest::BlobPut(r) => packets::blob_put(state, me, r),
        ClientRequest::BlobStream(r) => packets::blob_stream(state, me, r),
        ClientRequest::BlobGet(r) => packets::blob_get(state, me, &r),
        other => dispatch_simple(state, me, key, other).map(Reply::from),
    }
}

fn dispatch_simple(state: &State, me: &Actor, key: &VerifyingKey, req: ClientRequest) -> Outcome {
    match req {
        ClientRequest::Enroll(_) => Err(Failure::new(
            ErrorCode::Conflict,
            format!("this key is already enrolled as {}", me.record.id),
        )),
        ClientRequest::WhoAmI => identity::whoami(state, me),
        ClientRequest::OrgCreate(r) => identity::org_create(state, me, r),
        ClientRequest::InviteCreate(r) => identity::invite_create(state, me, r),
        ClientRequest::MatterCreate(_)
        | ClientRequest::MatterAdd(_)
        | ClientRequest::MatterRemove(_)
        | ClientRequest::MatterSetAck(_)
        | ClientRequest::MatterSetScope(_) => matters::retired(),
        ClientRequest::RosterAppend(r) => matters::roster_append(state, me, r),
        ClientRequest::RosterGet(r) => matters::roster_get(state, me, &r),
        ClientRequest::PrincipalKeys(r) => identity::principal_keys(state, me, &r),
        ClientRequest::KeyRegistrations => identity::key_registrations(state, me),
        ClientRequest::AgeKeyUpdate(r) => identity::update_age_key(state, me, &r),
        ClientRequest::DeliveryConfirm(r) => packets::confirm_delivery(state, me, key, &r),
        ClientRequest::Share(r) => packets::share(state, me, key, &r),
        ClientRequest::NotifyEmail(r) => identity::notify_email(state, me, &r),
        ClientRequest::DestructionAttest(r) => matters::attest_destruction(state, me, key, &r),
        ClientRequest::MatterShow(r) => matters::show(state, me, &r),
        ClientRequest::MatterList => matters::list(state, me),
        ClientRequest::AckGet(r) => matters::ack_get(state, me, &r),
        ClientRequest::AckSign(r) => matters::ack_sign(state, me, key, r),
        ClientRequest::PushPrepare(r) => packets::prepare(state, me, &r),
        ClientRequest::BlobStatus(r) => packets::blob_status(state, me, &r),
        ClientRequest::PacketCommit(r) => packets::commit(state, me, key, &r),
        ClientRequest::Inbox(r) => packets::inbox(state, me, &r),
        ClientRequest::Sent(r) => packets::sent(state, me, &r),
        ClientRequest::PacketGet(r) => packets::packet_get(state, me, &r),
        ClientRequest::PacketPeek(r) => packets::packet_peek(state, me, &r),
        ClientRequest::DirectoryList(k) => identity::directory_list(state, me, k),
        ClientRequest::InviteRevoke(r) => identity::invite_revoke(state, me, &r),
        ClientRequest::DeliverPrepare(r) => review::deliver_prepare(state, me, &r),
        ClientRequest::DeliverableCommit(r) => review::commit(state, me, key, &r),
        ClientRequest::ReviewSubmit(r) => review::review(state, me, key, &r),
        ClientRequest::Report(r) => review::report(state, me, &r),
        ClientRequest::KeyRevoke(r) => identity::revoke(state, me, &r),
        ClientRequest::AuditExport(_)
        | ClientRequest::BlobPut(_)
        | ClientRequest::BlobStream(_)
        | ClientRequest::BlobGet(_) => Err(Failure::new(ErrorCode::Internal, "misrouted request")),
    }
}

fn authenticate(state: &State, key: &VerifyingKey) -> Result<Actor, Failure> {
    let Some(record) = state.gate.read().principal_by_key(key.as_bytes())? else {
        return Err(Failure::new(
            ErrorCode::Unauthenticated,
            format!(
                "key {} is not enrolled on this server: only `mdrop enroll` with an invite is allowed",
                ed25519_fingerprint(key)
            ),
        ));
    };
    Actor::load(state, record)
}
