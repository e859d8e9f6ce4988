//! Case packets: prepare (recipients), blob upload with resume, commit of
//! the signed descriptor, inbox, descriptor and blob download.
//!
//! The server checks permission and scope before it accepts a byte, stores
//! only ciphertext, and makes a packet visible only when its signed
//! descriptor is committed after every blob is complete and verified.

use std::collections::BTreeSet;
use std::io::{Seek as _, SeekFrom};
use std::str::FromStr as _;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::custody::{self, DeliveryStatement, ShareStatement};
use matterdrop_common::packet::{self, Descriptor, Kind};
use matterdrop_common::proto::{
    BlobGetRequest, BlobOffsetInfo, BlobRefInfo, BlobUpload, DeliveryConfirmRequest, ErrorCode,
    ExpiredInfo, InboxItem, InboxRequest, PacketCommitRequest, PacketInfo, PacketRef,
    PushPrepareRequest, RecipientKey, RecipientsInfo, ReviewNote, SentItem, SentRecipient,
    SentRequest, ServerResponse, ShareInfo, ShareProgress, ShareRequest,
};

use super::gate::Allowed;
use super::matters::{Authorized, allowed, authorize, membership};
use super::{Actor, Failure, Outcome, Reply, State};
use crate::audit::Event;
use crate::datadir::now;
use crate::policy::{Operation, Task};
use crate::store::blobs::{BlobError, MAX_BLOB, Upload, hex};
use crate::store::{
    DeliverableState, DeliveryRecord, MatterRecord, PacketKind, PacketRecord, ShareRecord,
};

pub(super) fn task(name: &str) -> Result<Task, Failure> {
    Task::from_str(name).map_err(|e| Failure::bad_request(e.to_string()))
}

pub(super) fn blob_failure(e: BlobError) -> Failure {
    let code = match &e {
        BlobError::Hash | BlobError::Size { .. } => ErrorCode::Verification,
        BlobError::TooLarge(_) | BlobError::NoSpace { .. } => ErrorCode::TooLarge,
        BlobError::Offset { .. } => ErrorCode::Conflict,
        BlobError::Busy => ErrorCode::Busy,
        BlobError::Io(err) => {
            tracing::error!(error = %err, "blob storage");
            return Failure::new(
                ErrorCode::Internal,
                "blob storage failed; nothing was stored",
            );
        }
    };
    Failure::new(code, e.to_string())
}

/// Who a packet pushed now by `sender` must be encrypted to: the matter's
/// attorneys and paralegals, its providers that signed the current
/// acknowledgment, and the sender. (Auditors never.)
fn packet_recipients(
    state: &State,
    m: &MatterRecord,
    sender: &Actor,
) -> Result<Vec<RecipientKey>, Failure> {
    let ack = m.ack_version();
    let mut out = member_recipients(state, m, |ms, _| ms.receives_packets(ack))?;
    if !out.iter().any(|r| r.principal == sender.record.id) {
        out.push(RecipientKey {
            principal: sender.record.id.clone(),
            role: "sender".into(),
            signing_key: sender.record.signing_key,
            age: sender.record.age_recipient.clone(),
        });
        out.sort_by(|a, b| a.principal.cmp(&b.principal));
    }
    Ok(out)
}

/// The matter's current members for whom `include(membership, principal)`
/// holds, with the keys the matter's roster gives them, sorted by id: the
/// list a client computes from the roster itself and compares with this one.
/// A member whose roster key an admin revoked (or whose id now has another
/// key) is left out: the client then refuses to push until an attorney
/// removes or rekeys that member, so nothing is encrypted to a revoked key.
pub(super) fn member_recipients(
    state: &State,
    m: &MatterRecord,
    include: impl Fn(&crate::policy::Membership, &str) -> bool,
) -> Result<Vec<RecipientKey>, Failure> {
    let mut out = Vec::new();
    for row in m.members.iter().filter(|r| r.removed_at.is_none()) {
        if !include(
            &membership(m, &row.principal, &row.signing_key)?,
            &row.principal,
        ) {
            continue;
        }
        let enrolled = state
            .gate
            .read()
            .principal(&row.principal)?
            .is_some_and(|p| p.revoked_at.is_none() && p.signing_key == row.signing_key);
        if !enrolled {
            continue;
        }
        out.push(RecipientKey {
            principal: row.principal.clone(),
            role: row.role.clone(),
            signing_key: row.signing_key,
            age: row.age.clone(),
        });
    }
    out.sort_by(|a, b| a.principal.cmp(&b.principal));
    Ok(out)
}

/// The recovery recipient the matter's roster sets.
pub(super) fn recovery(_state: &State, m: &MatterRecord) -> Result<Option<String>, Failure> {
    Ok(m.recovery.clone())
}

pub(super) fn prepare(state: &State, me: &Actor, req: &PushPrepareRequest) -> Outcome {
    let task = task(&req.task)?;
    let record = authorize(
        state,
        me,
        &req.matter,
        "push-prepare",
        |_| Ok(Operation::Push { task }),
        None,
        vec![("task".into(), task.as_str().into())],
    )?;
    let m = record.matter;
    Ok(ServerResponse::Recipients(RecipientsInfo {
        task: task.as_str().to_owned(),
        matter: m.id.clone(),
        recipients: packet_recipients(state, &m, me)?,
        recovery: recovery(state, &m)?,
    }))
}

fn authorize_upload(state: &State, me: &Actor, req: &BlobUpload) -> Result<Allowed, Failure> {
    if let Some(answered) = &req.deliverable_for {
        let (_, _, allowed) =
            super::review::authorize_delivery(state, me, &req.matter, answered, "deliver-upload")?;
        if req.size > MAX_BLOB {
            return Err(blob_failure(BlobError::TooLarge(req.size)));
        }
        return Ok(allowed);
    }
    let task = task(&req.task)?;
    if !packet::validate_id(&req.packet) {
        return Err(Failure::bad_request(format!(
            "invalid packet id {:?}",
            req.packet
        )));
    }
    let blob = if req.sha256 == [0; 32] {
        "streamed (hash after the bytes)".to_owned()
    } else {
        hex(&req.sha256)
    };
    let details = vec![("blob".into(), blob), ("size".into(), req.size.to_string())];
    let Authorized { allowed, .. } = authorize(
        state,
        me,
        &req.matter,
        "push-upload",
        |_| Ok(Operation::Push { task }),
        Some(&req.packet),
        details,
    )?;
    if req.size > MAX_BLOB {
        return Err(blob_failure(BlobError::TooLarge(req.size)));
    }
    Ok(allowed)
}

/// Whether `me` has uploaded this blob completely. A blob stored by someone
/// else (another matter, perhaps) does not count: its hash is not secret.
pub(super) fn held(
    state: &State,
    me: &Actor,
    sha256: &[u8; 32],
    size: u64,
) -> Result<bool, Failure> {
    Ok(state.blobs.complete(sha256) == Some(size)
        && state.gate.read().has_claim(&me.record.id, sha256)?)
}

pub(super) fn blob_status(state: &State, me: &Actor, req: &BlobUpload) -> Outcome {
    authorize_upload(state, me, req)?;
    let info = if held(state, me, &req.sha256, req.size)? {
        BlobOffsetInfo {
            offset: req.size,
            complete: true,
        }
    } else {
        BlobOffsetInfo {
            offset: state.blobs.staged(&me.record.id, &req.sha256),
            complete: false,
        }
    };
    Ok(ServerResponse::BlobOffset(info))
}

pub(super) fn blob_put(state: &State, me: &Actor, req: BlobUpload) -> Result<Reply, Failure> {
    let allowed = authorize_upload(state, me, &req)?;
    let stored = ServerResponse::BlobStored(BlobRefInfo {
        sha256: req.sha256,
        size: req.size,
        header: None,
    });
    if held(state, me, &req.sha256, req.size)? {
        return Ok(Reply::Frame(stored));
    }
    let claims = state.gate.claims(allowed);
    let uploader = me.record.id.clone();
    let mut upload = state
        .blobs
        .begin(&me.record.id, req.sha256, req.size, req.offset)
        .map_err(blob_failure)?;
    Ok(Reply::Upload(Box::new(move |mut rx| {
        let fail = |f: Failure| ServerResponse::error(f.code, f.message);
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Ok(bytes) => {
                    if let Err(e) = upload.write(&bytes) {
                        return fail(blob_failure(e));
                    }
                }
                Err(why) => {
                    // Keep what arrived so a retry resumes from it.
                    let _ = upload.persist_partial();
                    return ServerResponse::error(ErrorCode::BadRequest, why);
                }
            }
        }
        // Claimed before it becomes visible: after a crash between the two,
        // the uploader still holds the blob (a claim without its blob holds
        // nothing).
        let verified = match upload.verify() {
            Ok(v) => v,
            Err(e) => return fail(blob_failure(e)),
        };
        if let Err(e) = claims.claim(&uploader, &req.sha256) {
            return fail(e.into());
        }
        match verified.publish() {
            Ok(()) => stored,
            Err(e) => fail(blob_failure(e)),
        }
    })))
}

/// A blob streamed with its hash after its bytes (`BlobStream`): stored
/// under a fresh staging name, verified against the trailing hash, claimed,
/// then moved into its content address. An interrupted stream leaves
/// nothing behind.
pub(super) fn blob_stream(state: &State, me: &Actor, req: BlobUpload) -> Result<Reply, Failure> {
    if req.offset != 0 || req.sha256 != [0; 32] {
        return Err(Failure::bad_request(
            "a streamed blob starts at offset 0 and names its hash after its bytes",
        ));
    }
    let claims = state.gate.claims(authorize_upload(state, me, &req)?);
    let uploader = me.record.id.clone();
    let size = req.size;
    let mut upload = state
        .blobs
        .begin_stream(&me.record.id, size)
        .map_err(blob_failure)?;
    Ok(Reply::Upload(Box::new(move |mut rx| {
        let fail = |upload: Upload, f: Failure| {
            upload.discard();
            ServerResponse::error(f.code, f.message)
        };
        let mut trailer = Vec::with_capacity(32);
        while let Some(chunk) = rx.blocking_recv() {
            let bytes = match chunk {
                Ok(bytes) => bytes,
                Err(why) => return fail(upload, Failure::bad_request(why)),
            };
            let room = usize::try_from(size - upload.received()).unwrap_or(usize::MAX);
            let (body, rest) = bytes.split_at(room.min(bytes.len()));
            if let Err(e) = upload.write(body) {
                return fail(upload, blob_failure(e));
            }
            if trailer.len() + rest.len() > 32 {
                return fail(
                    upload,
                    Failure::new(
                        ErrorCode::Verification,
                        format!("more than the declared {size} bytes and a 32-byte hash arrived"),
                    ),
                );
            }
            trailer.extend_from_slice(rest);
        }
        let Ok(sha256) = <[u8; 32]>::try_from(trailer.as_slice()) else {
            return fail(
                upload,
                Failure::new(
                    ErrorCode::Verification,
                    format!(
                        "the stream ended before its declared {size} bytes and their 32-byte hash; nothing was stored"
                    ),
                ),
            );
        };
        upload.seal(sha256);
        // From here a failure must still remove the staging file: a
        // streamed upload is never resumed.
        let staging = upload.staging_path().to_owned();
        let failed = |f: Failure| {
            let _ = std::fs::remove_file(&staging);
            ServerResponse::error(f.code, f.message)
        };
        // Claimed before it becomes visible (see `blob_put`).
        let verified = match upload.verify() {
            Ok(v) => v,
            Err(e) => return failed(blob_failure(e)),
        };
        if let Err(e) = claims.claim(&uploader, &sha256) {
            return failed(e.into());
        }
        match verified.publish() {
            Ok(()) => ServerResponse::BlobStored(BlobRefInfo {
                sha256,
                size,
                header: None,
            }),
            Err(e) => failed(blob_failure(e)),
        }
    })))
}

pub(super) fn commit(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &PacketCommitRequest,
) -> Outcome {
    let d = Descriptor::parse(&req.descriptor)
        .map_err(|e| Failure::bad_request(format!("descriptor: {e}")))?;
    if already_committed(state, me, req, &d.id)? {
        return Ok(ServerResponse::PacketCommitted(PacketRef { id: d.id }));
    }
    if d.kind != Kind::Packet {
        return Err(Failure::bad_request(
            "a deliverable descriptor cannot be pushed as a packet",
        ));
    }
    let task = task(&d.task)?;
    let _guard = state.matter_lock(&d.matter);
    // Again under the lock: a client's retry may have waited here behind
    // the commit it repeats.
    if already_committed(state, me, req, &d.id)? {
        return Ok(ServerResponse::PacketCommitted(PacketRef { id: d.id }));
    }
    let details = vec![
        ("task".into(), d.task.clone()),
        ("size".into(), d.total_size().to_string()),
        ("files".into(), d.blobs.len().to_string()),
    ];
    let Authorized { matter: m, allowed } = authorize(
        state,
        me,
        &d.matter,
        "push",
        |_| Ok(Operation::Push { task }),
        Some(&d.id),
        details.clone(),
    )?;
    let recipients = packet_recipients(state, &m, me)?;
    let problem = check_commit(state, me, key, req, &d, &m, recipients)?;
    if let Some((code, reason)) = problem {
        state.record(Event::failed(
            me,
            "push",
            &m.id,
            "bad-descriptor",
            &reason,
            details,
        ))?;
        return Err(Failure::new(code, reason));
    }
    let descriptor_hash = d.hash().map_err(|e| Failure::bad_request(e.to_string()))?;
    let mut blobs = vec![(d.manifest.sha256, d.manifest.size)];
    blobs.extend(d.blobs.iter().map(|b| (b.sha256, b.size)));
    let record = PacketRecord {
        id: d.id.clone(),
        matter: m.id.clone(),
        sender: me.record.id.clone(),
        task: d.task.clone(),
        due: d.due,
        created_at: now(),
        descriptor: req.descriptor.clone(),
        signature: req.signature.clone(),
        sender_key: key.to_bytes(),
        recipients: d.recipients.iter().map(|r| r.principal.clone()).collect(),
        blobs,
        pulled_by: Vec::new(),
        delivered_to: Vec::new(),
        kind: PacketKind::Packet,
        for_packet: None,
        state: None,
        reviews: Vec::new(),
    };
    let mut done = details;
    done.push(("descriptor_sha256".into(), hex(&descriptor_hash)));
    done.push(("recipients".into(), record.recipients.join(",")));
    if let Some(due) = d.due {
        // The signed due time, for the evaluation report's on-time rate.
        done.push(("due".into(), due.to_string()));
    }
    // Logged before it becomes visible: a crash in between leaves a log
    // entry for a commit the client never saw acknowledged (it retries),
    // never a visible packet the log does not know.
    state.record(
        Event::server(&me.record.id, "push-committed", Some(&d.id), None, done).in_matter(&m.id),
    )?;
    state.gate.write(&allowed).create_packet(&record)?;
    state.notify(
        "packet",
        &m.id,
        &d.id,
        record
            .recipients
            .iter()
            .filter(|r| **r != me.record.id)
            .cloned(),
    );
    Ok(ServerResponse::PacketCommitted(PacketRef { id: d.id }))
}

/// A commit is idempotent: the same sender committing the same signed
/// descriptor again (its first answer was lost) gets the same answer.
pub(super) fn already_committed(
    state: &State,
    me: &Actor,
    req: &PacketCommitRequest,
    id: &str,
) -> Result<bool, Failure> {
    Ok(state.gate.read().packet(id)?.is_some_and(|p| {
        p.sender == me.record.id && p.descriptor == req.descriptor && p.signature == req.signature
    }))
}

/// Everything a committed descriptor must satisfy; `Some` names the first
/// problem.
pub(super) fn check_commit(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &PacketCommitRequest,
    d: &Descriptor,
    m: &MatterRecord,
    recipients: Vec<RecipientKey>,
) -> Result<Option<(ErrorCode, String)>, Failure> {
    if let Err(why) = super::matters::roster_of(m)?.check_open() {
        return Ok(Some((ErrorCode::Denied, why)));
    }
    // Retention counts from the later of the commit and this time: one
    // far ahead would keep the upload past the matter's retention.
    if d.created_at > now().saturating_add(matterdrop_common::retention::STATEMENT_SKEW) {
        return Ok(Some((
            ErrorCode::BadRequest,
            format!(
                "the descriptor is dated {} s ahead of the server's clock: check the sender's clock",
                d.created_at - now()
            ),
        )));
    }
    if d.sender != me.record.id {
        return Ok(Some((
            ErrorCode::Verification,
            format!(
                "descriptor names sender {}, but {} sent it",
                d.sender, me.record.id
            ),
        )));
    }
    if d.verify(key, &req.signature).is_err() {
        return Ok(Some((
            ErrorCode::Verification,
            format!(
                "descriptor signature does not verify with {}'s key",
                me.record.id
            ),
        )));
    }
    if !packet::validate_id(&d.id) {
        return Ok(Some((
            ErrorCode::BadRequest,
            format!("invalid packet id {:?}", d.id),
        )));
    }
    if state.gate.read().packet(&d.id)?.is_some() {
        return Ok(Some((
            ErrorCode::Conflict,
            format!("packet {} already exists", d.id),
        )));
    }
    let expected: BTreeSet<(String, String)> = recipients
        .into_iter()
        .map(|r| (r.principal, r.age))
        .collect();
    let got: BTreeSet<(String, String)> = d
        .recipients
        .iter()
        .map(|r| (r.principal.clone(), r.age.clone()))
        .collect();
    if expected != got || got.len() != d.recipients.len() {
        return Ok(Some((
            ErrorCode::Conflict,
            format!(
                "the recipients of matter {} changed while the packet was prepared (now: {}); run the push again",
                m.id,
                expected
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    if d.recovery != recovery(state, m)? {
        return Ok(Some((
            ErrorCode::Conflict,
            "the matter's recovery recipient changed; run the push again".into(),
        )));
    }
    for b in std::iter::once(&d.manifest).chain(&d.blobs) {
        if !held(state, me, &b.sha256, b.size)? {
            return Ok(Some((
                ErrorCode::Conflict,
                format!(
                    "blob {} ({} bytes) has not been uploaded completely",
                    hex(&b.sha256),
                    b.size
                ),
            )));
        }
    }
    Ok(None)
}

/// A listing of the caller's own packets (`Inbox`, `Sent`): logged as
/// `action`, of one matter the caller must be allowed to list or of all,
/// and showing only packets of matters the caller may still list (each
/// matter decided once).
struct Listing<'a> {
    state: &'a State,
    me: &'a Actor,
    matter: Option<&'a str>,
    may: std::collections::HashMap<String, bool>,
}

impl<'a> Listing<'a> {
    fn start(
        state: &'a State,
        me: &'a Actor,
        matter: Option<&'a str>,
        action: &'static str,
    ) -> Result<Self, Failure> {
        if let Some(matter) = matter {
            authorize(
                state,
                me,
                matter,
                action,
                |_| Ok(Operation::Inbox),
                None,
                Vec::new(),
            )?;
        } else {
            state.record(Event::server(&me.record.id, action, None, None, Vec::new()))?;
        }
        Ok(Self {
            state,
            me,
            matter,
            may: std::collections::HashMap::new(),
        })
    }

    /// Whether `p` belongs in the listing.
    fn shows(&mut self, p: &PacketRecord) -> Result<bool, Failure> {
        if self.matter.is_some_and(|m| m != p.matter) {
            return Ok(false);
        }
        if let Some(&may) = self.may.get(&p.matter) {
            return Ok(may);
        }
        let may = match self.state.gate.read().matter(&p.matter)? {
            Some(m) => allowed(self.me, &m, &Operation::Inbox)?,
            None => false,
        };
        self.may.insert(p.matter.clone(), may);
        Ok(may)
    }
}

pub(super) fn inbox(state: &State, me: &Actor, req: &InboxRequest) -> Outcome {
    let mine = state.gate.read().packets_for(&me.record.id)?;
    let mut listing = Listing::start(state, me, req.matter.as_deref(), "inbox")?;
    let mut items = Vec::new();
    for p in &mine {
        let recipient =
            p.recipients.contains(&me.record.id) || shared_with(state, p, &me.record.id)?;
        // An expired packet's files are gone: nothing to pull.
        if !recipient || !listing.shows(p)? || state.gate.read().expired(&p.id)?.is_some() {
            continue;
        }
        let pulled = p.pulled_by.iter().any(|(who, _)| *who == me.record.id);
        let waiting = match p.kind {
            // What I sent is in my sent items (`Sent`), not my inbox.
            PacketKind::Packet if p.sender == me.record.id => continue,
            PacketKind::Packet => !pulled,
            // A deliverable waits for its reviewers until it is reviewed,
            // and for the provider who delivered it once it is returned
            // (listed only then: it is work to do again).
            PacketKind::Deliverable if p.sender == me.record.id => {
                if p.state != Some(DeliverableState::Returned) {
                    continue;
                }
                true
            }
            PacketKind::Deliverable => p.state == Some(DeliverableState::Submitted),
        };
        if !waiting && !req.all {
            continue;
        }
        // Deliverables are listed under their packet's task and due time.
        let answered = match p.for_packet.as_deref() {
            Some(id) => state.gate.read().packet(id)?,
            None => None,
        };
        items.push(InboxItem {
            id: p.id.clone(),
            matter: p.matter.clone(),
            sender: p.sender.clone(),
            task: answered
                .as_ref()
                .map_or_else(|| p.task.clone(), |a| a.task.clone()),
            due: answered.as_ref().map_or(p.due, |a| a.due),
            size: p.size(),
            created_at: p.created_at,
            pulled,
            kind: match p.kind {
                PacketKind::Packet => "packet".into(),
                PacketKind::Deliverable => "deliverable".into(),
            },
            packet: p.for_packet.clone(),
            state: p.state.map(|s| s.as_str().to_owned()),
            // The provider who must act on a return gets its note here;
            // other reviews come with the deliverable (`PacketGet`), so
            // the listing stays small.
            review: if p.sender == me.record.id && p.state == Some(DeliverableState::Returned) {
                review_note(state, p)?
            } else {
                None
            },
        });
    }
    // Oldest first: what has waited longest comes first.
    items.sort_by_key(|i| i.created_at);
    Ok(ServerResponse::Inbox(items))
}

/// `Sent`: what the caller sent (packets and deliverables, newest first),
/// in the matters it may still list, each with its recipients' states and
/// signed delivery statements, and a deliverable's latest review.
pub(super) fn sent(state: &State, me: &Actor, req: &SentRequest) -> Outcome {
    let mine = state.gate.read().packets_from(&me.record.id)?;
    let mut listing = Listing::start(state, me, req.matter.as_deref(), "sent")?;
    let mut items = Vec::new();
    for p in &mine {
        if p.sender != me.record.id
            || !listing.shows(p)?
            || state.gate.read().expired(&p.id)?.is_some()
        {
            continue;
        }
        let deliveries = state.gate.read().deliveries(&p.id)?;
        let answered = match p.for_packet.as_deref() {
            Some(id) => state.gate.read().packet(id)?,
            None => None,
        };
        let answers = match p.kind {
            PacketKind::Packet => state
                .gate
                .read()
                .deliverables_for(&p.id)?
                .into_iter()
                .map(|d| {
                    let st = d.state.map_or("submitted", |s| s.as_str()).to_owned();
                    (d.id, st)
                })
                .collect(),
            PacketKind::Deliverable => Vec::new(),
        };
        items.push(SentItem {
            id: p.id.clone(),
            matter: p.matter.clone(),
            kind: match p.kind {
                PacketKind::Packet => "packet".into(),
                PacketKind::Deliverable => "deliverable".into(),
            },
            due: answered.as_ref().map_or(p.due, |a| a.due),
            size: p.size(),
            created_at: p.created_at,
            state: p.state.map(|s| s.as_str().to_owned()),
            descriptor: p.descriptor.clone(),
            signature: p.signature.clone(),
            recipients: p
                .recipients
                .iter()
                .map(|r| SentRecipient {
                    principal: r.clone(),
                    pulled_at: p
                        .pulled_by
                        .iter()
                        .filter(|(who, _)| who == r)
                        .map(|(_, t)| *t)
                        .min(),
                    delivery: deliveries
                        .iter()
                        .find(|d| d.principal == *r)
                        .map(|d| (d.signed.clone(), d.signature.clone())),
                })
                .collect(),
            review: review_note(state, p)?,
            answers,
        });
    }
    // Newest first: what was just sent comes first.
    items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(ServerResponse::Sent(items))
}

/// Loads a packet and decides a pull of it. Anyone who may not learn that
/// the packet exists gets one answer for "missing" and "not yours".
pub(super) fn authorize_pull(
    state: &State,
    me: &Actor,
    id: &str,
    action: &'static str,
    details: Vec<(String, String)>,
) -> Result<(PacketRecord, Allowed), Failure> {
    if !packet::validate_id(id) {
        return Err(Failure::bad_request(format!("invalid packet id {id:?}")));
    }
    let hidden = || {
        Failure::new(
            ErrorCode::Denied,
            format!("packet {id} not found or not addressed to you"),
        )
    };
    let Some(p) = state.gate.read().packet(id)? else {
        state.record(Event::server(
            &me.record.id,
            action,
            Some(id),
            Some(("not-found", "no such packet")),
            details,
        ))?;
        return Err(hidden());
    };
    let recipient = p.recipients.contains(&me.record.id) || shared_with(state, &p, &me.record.id)?;
    let is_delivering_provider = p.sender == me.record.id;
    let op = match p.kind {
        PacketKind::Packet => Operation::PullPacket {
            packet: id,
            recipient,
        },
        PacketKind::Deliverable => Operation::PullDeliverable {
            deliverable: id,
            is_delivering_provider,
            recipient,
        },
    };
    match authorize(state, me, &p.matter, action, |_| Ok(op), Some(id), details) {
        Ok(a) => Ok((p, a.allowed)),
        // A non-member must not even learn which matter the packet is in.
        Err(f) if f.hides_existence => Err(hidden()),
        Err(f) => Err(f),
    }
}

pub(super) fn packet_get(state: &State, me: &Actor, req: &PacketRef) -> Outcome {
    let _guard = state.packet_lock(&req.id)?;
    let (mut p, allowed) = authorize_pull(state, me, &req.id, "pull", Vec::new())?;
    if !p.pulled_by.iter().any(|(who, _)| *who == me.record.id) {
        p.pulled_by.push((me.record.id.clone(), now()));
        state.gate.write(&allowed).put_packet(&p)?;
    }
    let review = review_note(state, &p)?;
    let share = share_info(state, &p, &me.record.id)?;
    let expired = expired_info(state, &p.id)?;
    Ok(ServerResponse::Packet(PacketInfo {
        id: p.id,
        descriptor: p.descriptor,
        signature: p.signature,
        sender_key: p.sender_key,
        review,
        share,
        expired,
    }))
}

/// `PacketPeek`: the signed descriptor of a packet the caller may pull,
/// for its inbox (which decrypts the manifest to show names and the
/// note). Logged as `peek`; the packet is not marked pulled.
pub(super) fn packet_peek(state: &State, me: &Actor, req: &PacketRef) -> Outcome {
    let (p, _) = authorize_pull(state, me, &req.id, "peek", Vec::new())?;
    let share = share_info(state, &p, &me.record.id)?;
    let expired = expired_info(state, &p.id)?;
    Ok(ServerResponse::Packet(PacketInfo {
        id: p.id,
        descriptor: p.descriptor,
        signature: p.signature,
        sender_key: p.sender_key,
        review: None,
        share,
        expired,
    }))
}

/// Whether packet `id` expired under its matter's retention, as clients
/// check it against the roster they verified.
fn expired_info(state: &State, id: &str) -> Result<Option<ExpiredInfo>, Failure> {
    Ok(state.gate.read().expired(id)?.map(|e| ExpiredInfo {
        at: e.at,
        roster_len: e.roster_len,
        index: e.index,
    }))
}

/// Refuses (and logs the refusal of) a request for the files of an
/// expired packet.
fn refuse_expired(
    state: &State,
    me: &Actor,
    p: &PacketRecord,
    action: &str,
    details: Vec<(String, String)>,
) -> Result<(), Failure> {
    let Some(e) = state.gate.read().expired(&p.id)? else {
        return Ok(());
    };
    let why = format!(
        "{} expired under matter {}'s retention and its files were deleted (audit log entry {})",
        p.id, p.matter, e.index
    );
    state.record(Event::failed(
        me, action, &p.matter, "expired", &why, details,
    ))?;
    Err(Failure::new(ErrorCode::NotFound, why))
}

/// A reviewed deliverable's review, for its readers.
fn review_note(state: &State, p: &PacketRecord) -> Result<Option<ReviewNote>, Failure> {
    if p.kind != PacketKind::Deliverable || p.reviews.is_empty() {
        return Ok(None);
    }
    Ok(state.gate.read().review_note(&p.id)?.map(|r| ReviewNote {
        signed: r.signed,
        signature: r.signature,
        note: r.note,
    }))
}

pub(super) fn blob_get(state: &State, me: &Actor, req: &BlobGetRequest) -> Result<Reply, Failure> {
    let mut details = vec![("blob".into(), hex(&req.sha256))];
    if req.for_share {
        // A sharer checking the blob and reading its age header.
        details.push(("for".into(), "share".into()));
    }
    let (p, _) = authorize_pull(state, me, &req.packet, "pull-blob", details.clone())?;
    refuse_expired(state, me, &p, "pull-blob", details)?;
    let Some((index, &(_, size))) = p
        .blobs
        .iter()
        .enumerate()
        .find(|(_, (h, _))| *h == req.sha256)
    else {
        return Err(Failure::bad_request(format!(
            "blob {} is not part of packet {}",
            hex(&req.sha256),
            p.id
        )));
    };
    // A reader the packet was re-shared to gets the header that opens the
    // blob for it, then the blob as it is.
    let header = if p.recipients.contains(&me.record.id) {
        None
    } else {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        state
            .gate
            .read()
            .share_header(&p.id, &me.record.id, index)?
    };
    if req.offset > size {
        return Err(Failure::bad_request(format!(
            "offset {} is beyond the blob's {size} bytes",
            req.offset
        )));
    }
    let mut file = state.blobs.open_blob(&req.sha256).map_err(|e| {
        tracing::error!(error = %e, "blob missing on disk");
        Failure::new(ErrorCode::Internal, "the blob cannot be read")
    })?;
    let offset = req.offset;
    Ok(Reply::Download(
        ServerResponse::BlobData(BlobRefInfo {
            sha256: req.sha256,
            size,
            header,
        }),
        Box::new(move |w| {
            file.seek(SeekFrom::Start(offset))?;
            let mut file = matterdrop_common::streamfile::DirectRead::new(
                file,
                offset,
                matterdrop_common::streamfile::POOLED,
            );
            loop {
                let chunk = file.next_chunk()?;
                if chunk.is_empty() {
                    return Ok(());
                }
                w.send(chunk)?;
            }
        }),
    ))
}

/// Whether `packet` was re-shared to `principal` (every header arrived).
fn shared_with(state: &State, packet: &PacketRecord, principal: &str) -> Result<bool, Failure> {
    Ok(state
        .gate
        .read()
        .share(&packet.id, principal)?
        .is_some_and(|s| s.complete()))
}

/// The re-share of `packet` to `principal`, for its descriptor's answer.
fn share_info(
    state: &State,
    packet: &PacketRecord,
    principal: &str,
) -> Result<Option<ShareInfo>, Failure> {
    if packet.recipients.iter().any(|r| r == principal) {
        return Ok(None);
    }
    Ok(state
        .gate
        .read()
        .share(&packet.id, principal)?
        .filter(ShareRecord::complete)
        .map(|s| ShareInfo {
            signed: s.signed,
            signature: s.signature,
            sharer_key: s.sharer_key,
        }))
}

/// The largest re-share header accepted (a hybrid stanza is about 1.6 KB).
const MAX_SHARE_HEADER: usize = 16 * 1024;

/// `Share`: a batch of a re-share. The sharer must be able to pull the
/// packet (the server's view of who holds its file keys: the sender and
/// its recipients); the new reader must be a current member the matter
/// would encrypt such a packet to now, not yet a reader, with the age key
/// the roster gives it; the statement must cover the packet's blobs in
/// order and each header must hash to what it names. The server cannot
/// check that a header opens anything (it has no key): the new reader's
/// client does. Each batch is logged; the last carries the statement.
pub(super) fn share(state: &State, me: &Actor, key: &VerifyingKey, req: &ShareRequest) -> Outcome {
    let st = ShareStatement::parse(&req.signed).map_err(|e| Failure::bad_request(e.to_string()))?;
    let _guard = state.packet_lock(&st.id)?;
    let first = req.first as usize;
    let end = first.saturating_add(req.headers.len());
    let mut details = vec![
        ("recipient".into(), st.recipient.clone()),
        (
            "headers".into(),
            format!("{first}..{end} of {}", st.headers.len()),
        ),
    ];
    let (p, allowed) = authorize_pull(state, me, &st.id, "share", details.clone())?;
    refuse_expired(state, me, &p, "share", details.clone())?;
    let m = state
        .gate
        .read()
        .matter(&p.matter)?
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "the packet's matter is missing"))?;
    if let Err(why) = super::matters::roster_of(&m)?.check_open() {
        state.record(Event::failed(
            me,
            "share",
            &p.matter,
            "matter-closed",
            &why,
            details,
        ))?;
        return Err(Failure::new(ErrorCode::Denied, why));
    }
    let eligible = match p.kind {
        PacketKind::Packet => {
            let ack = m.ack_version();
            member_recipients(state, &m, |ms, _| ms.receives_packets(ack))?
        }
        PacketKind::Deliverable => {
            member_recipients(state, &m, |ms, _| ms.receives_deliverables(false))?
        }
    };
    let blobs: Vec<[u8; 32]> = p.blobs.iter().map(|(h, _)| *h).collect();
    let listed: Vec<[u8; 32]> = st.headers.iter().map(|(b, _)| *b).collect();
    let problem = if st.sharer != me.record.id {
        Some(format!(
            "the statement names {} as sharer, but {} sent it",
            st.sharer, me.record.id
        ))
    } else if st.matter != p.matter {
        Some("the statement names another matter than the packet's".to_owned())
    } else if st.descriptor_sha256 != sha256(&p.descriptor) {
        Some("the statement's descriptor hash is not that of the packet on record".to_owned())
    } else if matterdrop_common::sign::verify(key, &req.signed, &req.signature).is_err() {
        Some(format!(
            "the statement's signature does not verify with {}'s key",
            me.record.id
        ))
    } else if p.sender != me.record.id && !p.recipients.contains(&me.record.id) {
        Some(format!(
            "{} holds no file key of {}: only its sender and recipients can share it",
            me.record.id, p.id
        ))
    } else if now().abs_diff(st.time) > DELIVERY_CLOCK_SKEW {
        Some("the statement's time is more than 15 minutes from the server's clock".to_owned())
    } else if p.recipients.contains(&st.recipient) {
        Some(format!("{} already reads {}", st.recipient, p.id))
    } else if !eligible.iter().any(|r| r.principal == st.recipient) {
        Some(format!(
            "{} is not a member matter {} would encrypt this {} to now (an attorney or paralegal, or a provider that signed the current acknowledgment)",
            st.recipient,
            p.matter,
            match p.kind {
                PacketKind::Packet => "packet",
                PacketKind::Deliverable => "deliverable",
            }
        ))
    } else if !eligible
        .iter()
        .any(|r| r.principal == st.recipient && r.age == st.age)
    {
        Some(format!(
            "the statement's age key is not the one the roster gives {}",
            st.recipient
        ))
    } else if listed != blobs {
        Some("the statement does not list the packet's blobs in order".to_owned())
    } else if end > st.headers.len() || req.headers.is_empty() {
        Some(format!(
            "headers {first}..{end} are not within the statement's {}",
            st.headers.len()
        ))
    } else {
        req.headers
            .iter()
            .enumerate()
            .position(|(i, h)| h.len() > MAX_SHARE_HEADER || sha256(h) != st.headers[first + i].1)
            .map(|i| {
                format!(
                    "header {} does not hash to what the statement names (or exceeds {MAX_SHARE_HEADER} bytes)",
                    first + i
                )
            })
    };
    if let Some(reason) = problem {
        state.record(Event::failed(
            me,
            "share",
            &p.matter,
            "bad-share",
            &reason,
            details,
        ))?;
        return Err(Failure::new(ErrorCode::Verification, reason));
    }
    // The same sharer sharing again to the same key is a repeat; another
    // sharer, or a new key of the reader, replaces an earlier share (so a
    // share whose headers open nothing does not block the reader).
    let before = state.gate.read().share(&p.id, &st.recipient)?;
    if let Some(b) = before
        .as_ref()
        .filter(|b| b.complete() && b.signed != req.signed)
    {
        let earlier = ShareStatement::parse(&b.signed).ok();
        if earlier.is_some_and(|e| e.sharer == st.sharer && e.age == st.age) {
            return Err(Failure::new(
                ErrorCode::Conflict,
                format!(
                    "{} was already shared with {} by {}",
                    p.id, st.recipient, st.sharer
                ),
            ));
        }
    }
    let was_complete = before.is_some_and(|b| b.complete() && b.signed == req.signed);
    let record = ShareRecord {
        signed: req.signed.clone(),
        signature: req.signature.clone(),
        sharer_key: *key.as_bytes(),
        total: u32::try_from(st.headers.len()).unwrap_or(u32::MAX),
        received: 0,
        created_at: now(),
    };
    let now_is = state.gate.write(&allowed).put_share(
        &p.id,
        &st.recipient,
        &record,
        req.first,
        &req.headers,
    )?;
    // Logged once, when the last header arrives.
    let logged = if now_is.complete() && !was_complete {
        details.extend([
            ("statement".into(), custody::entry_text(&req.signed)),
            ("signature".into(), custody::entry_hex(&req.signature)),
            ("signing_key".into(), custody::entry_hex(key.as_bytes())),
        ]);
        let index = state.record(
            Event::server(&me.record.id, "shared", Some(&p.id), None, details).in_matter(&p.matter),
        )?;
        state.notify("shared", &p.matter, &p.id, [st.recipient.clone()]);
        Some(index)
    } else {
        None
    };
    Ok(ServerResponse::Shared(ShareProgress {
        received: now_is.received,
        total: now_is.total,
        logged,
    }))
}

/// How far a delivery statement's time may be from the server's clock.
const DELIVERY_CLOCK_SKEW: u64 = 15 * 60;

/// `DeliveryConfirm`: a recipient's signed statement that it received and
/// verified every file. Checked against the packet on record and the
/// caller's key, then logged verbatim (with the signature and the key) as
/// the matter's `delivered` entry, and noted on the packet.
pub(super) fn confirm_delivery(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &DeliveryConfirmRequest,
) -> Outcome {
    let st =
        DeliveryStatement::parse(&req.signed).map_err(|e| Failure::bad_request(e.to_string()))?;
    let _guard = state.packet_lock(&st.id)?;
    let details = vec![
        ("statement".into(), custody::entry_text(&req.signed)),
        ("signature".into(), custody::entry_hex(&req.signature)),
        ("signing_key".into(), custody::entry_hex(key.as_bytes())),
    ];
    let (mut p, allowed) = authorize_pull(state, me, &st.id, "delivery-check", Vec::new())?;
    let problem = if st.principal != me.record.id {
        Some(format!(
            "the statement names {}, but {} sent it",
            st.principal, me.record.id
        ))
    } else if st.matter != p.matter {
        Some("the statement names another matter than the packet's".to_owned())
    } else if st.descriptor_sha256 != sha256(&p.descriptor) {
        Some("the statement's descriptor hash is not that of the packet on record".to_owned())
    } else if now().abs_diff(st.time) > DELIVERY_CLOCK_SKEW {
        Some("the statement's time is more than 15 minutes from the server's clock".to_owned())
    } else if matterdrop_common::sign::verify(key, &req.signed, &req.signature).is_err() {
        Some(format!(
            "the statement's signature does not verify with {}'s key",
            me.record.id
        ))
    } else {
        None
    };
    if let Some(reason) = problem {
        state.record(Event::failed(
            me,
            "delivered",
            &p.matter,
            "bad-delivery-statement",
            &reason,
            details,
        ))?;
        return Err(Failure::new(ErrorCode::Verification, reason));
    }
    let index = state.record(
        Event::server(&me.record.id, "delivered", Some(&p.id), None, details).in_matter(&p.matter),
    )?;
    // Kept for the sender's `sent` list, which checks it as the log's
    // verifier does.
    state.gate.write(&allowed).put_delivery(
        &p.id,
        &DeliveryRecord {
            principal: me.record.id.clone(),
            signed: req.signed.clone(),
            signature: req.signature.clone(),
        },
    )?;
    if !p.delivered_to.iter().any(|(who, _)| *who == me.record.id) {
        p.delivered_to.push((me.record.id.clone(), st.time));
        state.gate.write(&allowed).put_packet(&p)?;
    }
    Ok(ServerResponse::DeliveryRecorded(index))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}
