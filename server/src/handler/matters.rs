//! Matters, membership, scope and acknowledgments.
//!
//! Every operation here goes the same way: load the matter, build the policy
//! views, ask [`policy::decide`], append the decision to the audit log (on
//! disk before anything is answered), and only then act.

use std::str::FromStr as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use matterdrop_common::ids;
use matterdrop_common::proto::{
    AckInfo, AckSignRequest, AckTextInfo, ErrorCode, MatterInfo, MatterRef, MatterSummary,
    MemberInfo, RosterAppendRequest, RosterGetRequest, RosterInfo, ServerResponse,
};
use matterdrop_common::roster::{
    Change, Check, MemberKeys, Roster, SignedAck, SignedStatement, Statement,
};
use matterdrop_common::sign::AckStatement;
use sha2::{Digest as _, Sha256};

use super::gate::Allowed;
use super::{Actor, Failure, Outcome, State};
use crate::audit::Event;
use crate::datadir::now;
use crate::policy::{
    self, Decision, MatterView, Membership, Operation, Role, ServerOperation, Task,
};
use crate::store::{AckRecord, AckVersion, MatterRecord, MemberRecord};
use tracing::error;

/// Longest acknowledgment text accepted.
pub(super) const MAX_ACK_TEXT: usize = 64 * 1024;
/// How far an acknowledgment's signed time may be from the server's clock.
pub(super) const ACK_CLOCK_SKEW: u64 = 15 * 60;

fn stored_scope(m: &MatterRecord) -> Result<Vec<Task>, Failure> {
    m.scope
        .iter()
        .map(|n| {
            Task::from_str(n)
                .map_err(|_| Failure::new(ErrorCode::Internal, "stored matter scope is damaged"))
        })
        .collect()
}

/// `principal`'s relation to matter `m` when it authenticates with `key`:
/// only the key the roster gives a member acts as that member (a new key
/// enrolled for the same id starts with no memberships).
pub(crate) fn membership(
    m: &MatterRecord,
    principal: &str,
    key: &[u8; 32],
) -> Result<Membership, Failure> {
    let Some(row) = m.member(principal).filter(|r| &r.signing_key == key) else {
        return Ok(Membership::Never);
    };
    let role = Role::from_str(&row.role)
        .map_err(|_| Failure::new(ErrorCode::Internal, "stored member role is damaged"))?;
    Ok(if row.removed_at.is_some() {
        Membership::Removed { former_role: role }
    } else {
        Membership::Member {
            role,
            acked_version: m.acked_version(principal),
        }
    })
}

fn check_text(text: &str) -> Result<[u8; 32], Failure> {
    if text.trim().is_empty() || text.len() > MAX_ACK_TEXT {
        return Err(Failure::bad_request(format!(
            "acknowledgment text must be 1 to {MAX_ACK_TEXT} bytes"
        )));
    }
    // What a provider signs must be what it sees: no escape sequence or
    // bidirectional control may hide or reorder a sentence.
    if let Some(c) = text.chars().find(|&c| ids::is_unsafe_in_signed_text(c)) {
        return Err(Failure::bad_request(format!(
            "acknowledgment text must not contain control or bidirectional characters \
             (found U+{:04X}); only newlines and tabs are allowed",
            u32::from(c)
        )));
    }
    Ok(Sha256::digest(text.as_bytes()).into())
}

/// A matter, and the logged decision that allows the request to act on it.
#[derive(Debug)]
pub(crate) struct Authorized {
    /// The matter as loaded for the decision.
    pub(crate) matter: MatterRecord,
    /// Proof that the allowing decision is in the audit log.
    pub(crate) allowed: Allowed,
}

/// Loads the matter, decides `op`, records the decision, and returns the
/// matter when allowed. The one path every matter operation takes.
pub(crate) fn authorize<'a>(
    state: &State,
    me: &Actor,
    matter_id: &str,
    action: &'static str,
    op: impl FnOnce(&MatterRecord) -> Result<Operation<'a>, Failure>,
    object: Option<&str>,
    details: Vec<(String, String)>,
) -> Result<Authorized, Failure> {
    // Only well-formed ids reach the log (no newline or escape sequence in
    // a signed entry); a malformed one names no matter at all.
    ids::validate_matter(matter_id).map_err(|e| Failure::bad_request(e.to_string()))?;
    let record = state.gate.read().matter(matter_id)?;
    let principal = me.view();
    let decision = match &record {
        // Any operation on a missing matter gets the non-member answer; the
        // operation's details do not matter, ShowMatter stands in for it.
        None => policy::decide(&principal, matter_id, None, &Operation::ShowMatter),
        Some(m) => {
            let scope = stored_scope(m)?;
            let view = MatterView {
                id: &m.id,
                firm: &m.firm,
                ack_version: m.ack_version(),
                scope: &scope,
                membership: membership(m, &me.record.id, &me.record.signing_key)?,
            };
            match op(m) {
                Ok(op) => policy::decide(&principal, matter_id, Some(&view), &op),
                Err(failure) => {
                    // The request names something that cannot be acted on
                    // (a principal that is not enrolled, keys that are not
                    // theirs): only a member may learn that, and the answer
                    // is logged like every other one.
                    let gate =
                        policy::decide(&principal, matter_id, Some(&view), &Operation::ShowMatter);
                    if gate.is_allowed() {
                        state.record(Event::failed(
                            me,
                            action,
                            matter_id,
                            "bad-target",
                            &failure.message,
                            details,
                        ))?;
                        return Err(failure);
                    }
                    gate
                }
            }
        }
    };
    let event = Event::matter(me, action, matter_id, object, &decision, details);
    let allowed = state.gate.decide(event, decision)?;
    let matter = record
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "policy allowed a missing matter"))?;
    Ok(Authorized { matter, allowed })
}

fn attorney_count(m: &MatterRecord) -> usize {
    m.members
        .iter()
        .filter(|r| r.removed_at.is_none() && r.role == Role::Attorney.as_str())
        .count()
}

/// Whether `me` may do `op` on matter `m`, without recording anything (for
/// filtering listings; the listing request itself is recorded).
pub(crate) fn allowed(me: &Actor, m: &MatterRecord, op: &Operation<'_>) -> Result<bool, Failure> {
    Ok(decision(me, m, op)?.is_allowed())
}

/// The policy's decision for `me` on matter `m`, without recording it.
pub(crate) fn decision(
    me: &Actor,
    m: &MatterRecord,
    op: &Operation<'_>,
) -> Result<Decision, Failure> {
    let scope = stored_scope(m)?;
    let view = MatterView {
        id: &m.id,
        firm: &m.firm,
        ack_version: m.ack_version(),
        scope: &scope,
        membership: membership(m, &me.record.id, &me.record.signing_key)?,
    };
    Ok(policy::decide(&me.view(), &m.id, Some(&view), op))
}

fn info(state: &State, m: &MatterRecord) -> Result<MatterInfo, Failure> {
    let mut members = Vec::new();
    for row in m.members.iter().filter(|r| r.removed_at.is_none()) {
        let p = state.gate.read().principal(&row.principal)?;
        let key_current = p
            .as_ref()
            .is_some_and(|p| p.revoked_at.is_none() && p.signing_key == row.signing_key);
        members.push(MemberInfo {
            principal: row.principal.clone(),
            role: row.role.clone(),
            org: p.and_then(|p| p.org),
            added_at: row.added_at,
            acked_version: m.acked_version(&row.principal),
            key_current,
        });
    }
    let current = m
        .current_ack()
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "matter has no acknowledgment text"))?;
    Ok(MatterInfo {
        id: m.id.clone(),
        title: m.title.clone(),
        firm: m.firm.clone(),
        scope: m.scope.clone(),
        ack_version: m.ack_version(),
        ack_sha256: current.sha256,
        members,
        acks: m
            .acks
            .iter()
            .map(|a| AckInfo {
                matter: m.id.clone(),
                principal: a.principal.clone(),
                version: a.version,
                text_sha256: a.text_sha256,
                signed_at: a.signed_at,
            })
            .collect(),
        destructions: state
            .gate
            .read()
            .destructions(&m.id)?
            .into_iter()
            .map(|d| matterdrop_common::proto::DestructionInfo {
                signed: d.signed,
                signature: d.signature,
                signing_key: d.signing_key,
                index: d.index,
            })
            .collect(),
        role_text: role_text(state, m)?,
        created_by: m.created_by.clone(),
        created_at: m.created_at,
    })
}

/// The matter's current role definition text, if its roster sets one.
fn role_text(
    state: &State,
    m: &MatterRecord,
) -> Result<Option<matterdrop_common::proto::RoleText>, Failure> {
    // A stored roster that does not verify is the client's to refuse
    // (exit 4): the answer goes out without a text.
    let Some(def) = Roster::from_chain(&m.roster, Check::Cached)
        .ok()
        .and_then(|r| r.role_def)
    else {
        return Ok(None);
    };
    Ok(state.gate.read().role_def(&m.id, def.version)?.map(|text| {
        matterdrop_common::proto::RoleText {
            version: def.version,
            text,
        }
    }))
}

/// How far a destruction statement's time may be from the server's clock.
const DESTRUCTION_CLOCK_SKEW: u64 = 15 * 60;

/// `DestructionAttest` (`mdrop purge`): a member's signed attestation that
/// it destroyed its local copies of a matter's files. The caller must be,
/// or have been, a member of the matter with the key it signs with
/// (removed members attest too: that is when a contract asks for it); the
/// statement must name the caller and the matter and verify. Logged
/// verbatim as the matter's `destroyed` entry and kept for `matter show`.
pub(super) fn attest_destruction(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &matterdrop_common::proto::SignedStatementRequest,
) -> Outcome {
    use matterdrop_common::custody::{self, DestructionStatement};
    let st = DestructionStatement::parse(&req.signed)
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    ids::validate_matter(&st.matter).map_err(|e| Failure::bad_request(e.to_string()))?;
    let _guard = state.matter_lock(&st.matter);
    let hidden = || {
        Failure::new(
            ErrorCode::Denied,
            format!("matter {} not found or not yours", st.matter),
        )
    };
    let m = state.gate.read().matter(&st.matter)?.ok_or_else(hidden)?;
    let was_member = m
        .members
        .iter()
        .any(|r| r.principal == me.record.id && r.signing_key == *key.as_bytes());
    if !was_member {
        return Err(hidden());
    }
    let details = vec![
        ("statement".into(), custody::entry_text(&req.signed)),
        ("signature".into(), custody::entry_hex(&req.signature)),
        ("signing_key".into(), custody::entry_hex(key.as_bytes())),
    ];
    let problem = if st.principal != me.record.id {
        Some(format!(
            "the statement names {}, but {} sent it",
            st.principal, me.record.id
        ))
    } else if now().abs_diff(st.time) > DESTRUCTION_CLOCK_SKEW {
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
            "destroyed",
            &m.id,
            "bad-destruction-statement",
            &reason,
            details,
        ))?;
        return Err(Failure::new(ErrorCode::Verification, reason));
    }
    let allowed =
        super::identity::authorize_server(state, me, &ServerOperation::AttestDestruction, &m.id)?;
    let index = state
        .record(Event::server(&me.record.id, "destroyed", None, None, details).in_matter(&m.id))?;
    state.gate.write(&allowed).put_destruction(
        &m.id,
        &crate::store::DestructionRecord {
            signed: req.signed.clone(),
            signature: req.signature.clone(),
            signing_key: *key.as_bytes(),
            index,
        },
    )?;
    Ok(ServerResponse::DestructionLogged(index))
}

/// The answer to a request made with a request kind the signed roster
/// replaced.
pub(super) fn retired() -> Outcome {
    Err(Failure::bad_request(
        "this request was replaced by the signed matter roster: matter changes are statements \
         signed on an attorney's machine; upgrade mdrop",
    ))
}

/// What an `add` or `rekey` statement must carry: the keys the server has
/// enrolled for that principal (the attorney checked their safety code).
fn enrolled_keys(state: &State, member: &str, keys: &MemberKeys) -> Result<Actor, Failure> {
    let p = state
        .gate
        .read()
        .principal(member)?
        .filter(|p| p.revoked_at.is_none())
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::NotFound,
                format!("no principal {member} is enrolled; an admin can invite them"),
            )
        })?;
    if p.signing_key != keys.signing_key || p.age_recipient != keys.age.recipient() {
        return Err(Failure::new(
            ErrorCode::Verification,
            format!(
                "the keys in the statement are not the keys {member} enrolled (safety code {} \
                 signed, {} enrolled)",
                keys.safety_code(member),
                matterdrop_common::keys::safety_code(member, &p.signing_key, &p.age_recipient)
            ),
        ));
    }
    Actor::load(state, p)
}

/// The roster a matter's stored statements lead to (verified when they
/// were appended).
pub(super) fn roster_of(m: &MatterRecord) -> Result<Roster, Failure> {
    Roster::from_chain(&m.roster, Check::Cached).map_err(|e| {
        error!(matter = %m.id, error = %e, "stored roster does not verify");
        Failure::new(ErrorCode::Internal, "the stored roster is damaged")
    })
}

/// The policy operation a roster statement asks for.
fn operation<'a>(
    m: &MatterRecord,
    change: &'a Change,
    target: Option<&'a Actor>,
) -> Result<Operation<'a>, Failure> {
    let current = |id: &str| {
        m.current_member(id)
            .and_then(|r| Role::from_str(&r.role).ok())
    };
    Ok(match change {
        Change::Create { .. } => {
            return Err(Failure::bad_request(format!(
                "matter {} already has a roster; only its first statement creates it",
                m.id
            )));
        }
        Change::Add { role, .. } | Change::SetRole { role, .. } => {
            let t = target.ok_or_else(|| Failure::new(ErrorCode::Internal, "no target loaded"))?;
            Operation::AddMember {
                role: *role,
                target: t.view(),
                target_current_role: current(&t.record.id),
                attorney_count: attorney_count(m),
            }
        }
        Change::Remove { member } => Operation::RemoveMember {
            target: member,
            target_role: current(member),
            attorney_count: attorney_count(m),
        },
        Change::SetAck { .. } => Operation::SetAck,
        Change::SetScope { scope } => Operation::SetScope { scope },
        Change::SetRecovery { .. } => Operation::SetRecovery,
        Change::SetCrypto { .. } => Operation::SetCrypto,
        Change::SetRetention { .. }
        | Change::Hold { .. }
        | Change::Release
        | Change::Close
        | Change::Reopen => Operation::Lifecycle,
        Change::SetRoleDef { .. }
        | Change::ReviewRoleDef { .. }
        | Change::SetTarget { .. }
        | Change::SetContact { .. } => Operation::Engagement,
        Change::Rekey { member, .. } => Operation::Rekey {
            target: member,
            target_role: current(member),
        },
    })
}

/// Brings the stored matter in line with the roster it now has.
fn sync_record(m: &mut MatterRecord, r: &Roster, by: &str, t: u64) {
    m.title.clone_from(&r.title);
    m.firm.clone_from(&r.firm);
    m.scope = r.scope.iter().map(|t| t.as_str().to_owned()).collect();
    m.recovery = r.recovery.as_ref().map(|a| a.recipient().to_owned());
    for row in &mut m.members {
        match r.members.get(&row.principal) {
            Some(member) => {
                if row.removed_at.is_some() {
                    row.removed_at = None;
                    row.added_at = t;
                    by.clone_into(&mut row.added_by);
                }
                member.role.as_str().clone_into(&mut row.role);
                row.signing_key = member.keys.signing_key;
                member.keys.age.recipient().clone_into(&mut row.age);
            }
            None => {
                if row.removed_at.is_none() {
                    row.removed_at = Some(t);
                }
            }
        }
    }
    for (id, member) in &r.members {
        if m.member(id).is_none() {
            m.members.push(MemberRecord {
                principal: id.clone(),
                role: member.role.as_str().to_owned(),
                signing_key: member.keys.signing_key,
                age: member.keys.age.recipient().to_owned(),
                added_by: by.to_owned(),
                added_at: t,
                removed_at: None,
            });
        }
    }
}

/// Every acknowledgment of a matter, as clients check them.
fn signed_acks(m: &MatterRecord) -> Vec<SignedAck> {
    m.acks
        .iter()
        .map(|a| SignedAck {
            principal: a.principal.clone(),
            version: a.version,
            text_sha256: a.text_sha256,
            signed_at: a.signed_at,
            signature: a.signature.clone(),
        })
        .collect()
}

/// Statement bytes one answer carries at most (the client asks again
/// for the rest), well inside the 1 MiB frame.
const ROSTER_PAGE_BYTES: usize = 512 * 1024;

fn roster_info(m: &MatterRecord, from: u64) -> RosterInfo {
    let total = m.roster.len() as u64;
    let start = usize::try_from(from.min(total)).unwrap_or(m.roster.len());
    let mut bytes = 0;
    let statements = m.roster[start..]
        .iter()
        .take_while(|e| {
            bytes += e.statement.len() + e.signature.len() + 16;
            bytes <= ROSTER_PAGE_BYTES
        })
        .cloned()
        .collect();
    RosterInfo {
        matter: m.id.clone(),
        from,
        total,
        statements,
        acks: signed_acks(m),
    }
}

/// Refuses a statement that failed verification, recording why.
fn refuse_statement(
    state: &State,
    me: &Actor,
    matter: &str,
    why: String,
    details: Vec<(String, String)>,
) -> Failure {
    match state.record(Event::failed(
        me,
        "roster-verify",
        matter,
        "bad-roster-statement",
        &why,
        details,
    )) {
        Ok(_) => Failure::new(ErrorCode::Verification, why),
        Err(f) => f,
    }
}

/// Logs a statement the matter's roster now ends with, verbatim: what an
/// auditor's verifier replays (`matterdrop_common::retention::Replay`).
/// Logged after every check and before the store write, so the log holds
/// every statement the roster holds (a crash in between leaves a logged
/// statement the client was never told of; its retry signs the same
/// position again, and the replay takes the later one).
fn log_appended(
    state: &State,
    me: &Actor,
    matter: &str,
    entry: &SignedStatement,
    s: &Statement,
) -> Result<u64, Failure> {
    state.record(
        Event::server(
            &me.record.id,
            "roster-appended",
            None,
            None,
            vec![
                ("seq".into(), s.seq.to_string()),
                ("change".into(), s.change.name().into()),
                ("statement".into(), B64.encode(&entry.statement)),
                ("signature".into(), B64.encode(&entry.signature)),
            ],
        )
        .in_matter(matter),
    )
}

/// `RosterAppend`: validates an attorney's signed statement against the
/// matter's roster, logs it verbatim and stores it. The server can refuse
/// a statement; it cannot make one.
pub(super) fn roster_append(state: &State, me: &Actor, req: RosterAppendRequest) -> Outcome {
    let entry = req.entry;
    let s = Statement::parse(&entry.statement).map_err(|e| Failure::bad_request(e.to_string()))?;
    if s.matter != req.matter {
        return Err(Failure::bad_request(format!(
            "the statement is about matter {}, not {}",
            s.matter, req.matter
        )));
    }
    if s.signer != me.record.id || s.signer_key != me.record.signing_key {
        return Err(Failure::new(
            ErrorCode::Verification,
            "a roster statement must be signed by the principal sending it, with its enrolled key",
        ));
    }
    if now().abs_diff(s.time) > matterdrop_common::retention::STATEMENT_SKEW {
        return Err(Failure::bad_request(format!(
            "the statement is dated {} s from the server's clock (at most {} s): check the clock of \
             the machine that signed it",
            now().abs_diff(s.time),
            matterdrop_common::retention::STATEMENT_SKEW
        )));
    }
    let ack_text = match (&s.change, req.text) {
        (
            Change::Create { ack_sha256, .. }
            | Change::SetAck {
                sha256: ack_sha256, ..
            }
            | Change::SetRoleDef {
                sha256: ack_sha256, ..
            },
            Some(t),
        ) => {
            if check_text(&t)? != *ack_sha256 {
                return Err(Failure::new(
                    ErrorCode::Verification,
                    "the text is not the one whose SHA-256 the statement signs",
                ));
            }
            Some(t)
        }
        (Change::Create { .. } | Change::SetAck { .. } | Change::SetRoleDef { .. }, None) => {
            return Err(Failure::bad_request(
                "a create, set-ack or set-role-def statement needs the text it signs",
            ));
        }
        (_, Some(_)) => {
            return Err(Failure::bad_request(
                "only create, set-ack and set-role-def statements carry a text",
            ));
        }
        (_, None) => None,
    };
    let mut details = vec![
        ("seq".into(), s.seq.to_string()),
        ("change".into(), s.change.name().into()),
        ("statement".into(), B64.encode(&entry.statement)),
        ("signature".into(), B64.encode(&entry.signature)),
    ];
    if let Some(member) = s.change.member() {
        details.push(("member".into(), member.into()));
    }
    let _guard = state.matter_lock(&s.matter);
    if let Change::Create { .. } = &s.change {
        return create(state, me, &s, entry, ack_text, details);
    }
    // Looked up now, judged inside `authorize`: whether a target exists is
    // only a member's business.
    let target = match &s.change {
        Change::Add { member, keys, .. } => Some(enrolled_keys(state, member, keys)),
        Change::SetRole { member, .. } => Some(match state.gate.read().principal(member)? {
            Some(p) => Actor::load(state, p),
            None => Err(Failure::bad_request(format!(
                "no principal {member} is enrolled"
            ))),
        }),
        Change::Rekey { member, keys } => Some(enrolled_keys(state, member, keys)),
        _ => None,
    };
    let target = match target {
        None => Ok(None),
        Some(Ok(actor)) => Ok(Some(actor)),
        Some(Err(f)) => Err(f),
    };
    let action = match &s.change {
        Change::Add { .. } | Change::SetRole { .. } => "member-add",
        Change::Remove { .. } => "member-remove",
        Change::SetAck { .. } => "ack-set",
        Change::SetScope { .. } => "scope-set",
        Change::SetRecovery { .. } => "recovery-set",
        Change::SetCrypto { .. } => "crypto-set",
        Change::SetRetention { .. } => "retention-set",
        Change::Hold { .. } => "hold",
        Change::Release => "hold-release",
        Change::SetRoleDef { .. } => "role-def-set",
        Change::ReviewRoleDef { .. } => "role-def-review",
        Change::SetTarget { .. } => "target-set",
        Change::SetContact { .. } => "contact-set",
        Change::Close => "matter-close",
        Change::Reopen => "matter-reopen",
        Change::Rekey { .. } => "member-rekey",
        Change::Create { .. } => "matter-create",
    };
    let Authorized {
        matter: mut m,
        allowed,
    } = authorize(
        state,
        me,
        &s.matter,
        action,
        |m| match &target {
            Ok(t) => operation(m, &s.change, t.as_ref()),
            Err(f) => Err(Failure::new(f.code, f.message.clone())),
        },
        s.change.member(),
        details.clone(),
    )?;
    let mut roster = roster_of(&m)?;
    if let Err(e) = roster.apply(&entry, Check::Signatures) {
        return Err(refuse_statement(state, me, &m.id, e.to_string(), details));
    }
    let t = now();
    sync_record(&mut m, &roster, &me.record.id, t);
    if let (Change::SetRoleDef { version, .. }, Some(text)) = (&s.change, &ack_text) {
        state
            .gate
            .write(&allowed)
            .put_role_def(&m.id, *version, text)?;
    }
    if let (Change::SetAck { sha256, .. }, Some(text)) = (&s.change, ack_text) {
        m.ack_versions.push(AckVersion {
            text,
            sha256: *sha256,
            set_by: me.record.id.clone(),
            set_at: t,
        });
    }
    let seq = s.seq;
    log_appended(state, me, &m.id, &entry, &s)?;
    m.roster.push(entry);
    state.gate.write(&allowed).put_matter(&m)?;
    Ok(ServerResponse::Roster(roster_info(&m, seq)))
}

fn create(
    state: &State,
    me: &Actor,
    s: &Statement,
    entry: SignedStatement,
    ack_text: Option<String>,
    details: Vec<(String, String)>,
) -> Outcome {
    let Change::Create { scope, .. } = &s.change else {
        return Err(Failure::new(ErrorCode::Internal, "not a create statement"));
    };
    ids::validate_matter(&s.matter).map_err(|e| Failure::bad_request(e.to_string()))?;
    let exists = state.gate.read().matter(&s.matter)?.is_some();
    let principal = me.view();
    let decision = policy::decide_server(
        &principal,
        &ServerOperation::CreateMatter {
            id: &s.matter,
            scope,
            exists,
        },
    );
    let allowed = state.gate.decide(
        Event::matter(
            me,
            "matter-create",
            &s.matter,
            None,
            &decision,
            details.clone(),
        ),
        decision,
    )?;
    let roster = match Roster::genesis(&entry, Check::Signatures) {
        Ok(r) => r,
        Err(e) => {
            return Err(refuse_statement(
                state,
                me,
                &s.matter,
                e.to_string(),
                details,
            ));
        }
    };
    let firm = policy::creator_firm(&principal)?;
    if roster.firm != firm {
        return Err(refuse_statement(
            state,
            me,
            &s.matter,
            format!(
                "the statement gives the matter to firm {}, but {} belongs to {firm}",
                roster.firm, me.record.id
            ),
            details,
        ));
    }
    let t = now();
    let mut record = MatterRecord {
        id: s.matter.clone(),
        title: String::new(),
        firm: firm.to_owned(),
        scope: Vec::new(),
        ack_versions: vec![AckVersion {
            text: ack_text.unwrap_or_default(),
            sha256: roster.ack_sha256,
            set_by: me.record.id.clone(),
            set_at: t,
        }],
        members: Vec::new(),
        acks: Vec::new(),
        created_by: me.record.id.clone(),
        created_at: t,
        recovery: None,
        roster: vec![entry],
    };
    sync_record(&mut record, &roster, &me.record.id, t);
    log_appended(state, me, &s.matter, &record.roster[0], s)?;
    state.gate.write(&allowed).create_matter(&record)?;
    Ok(ServerResponse::Roster(roster_info(&record, 0)))
}

/// `RosterGet`: the statements from `from`, and every acknowledgment.
pub(super) fn roster_get(state: &State, me: &Actor, req: &RosterGetRequest) -> Outcome {
    let record = authorize(
        state,
        me,
        &req.matter,
        "roster-read",
        |_| Ok(Operation::ReadRoster),
        None,
        vec![("from".into(), req.from.to_string())],
    )?;
    Ok(ServerResponse::Roster(roster_info(
        &record.matter,
        req.from,
    )))
}
pub(super) fn show(state: &State, me: &Actor, req: &MatterRef) -> Outcome {
    let record = authorize(
        state,
        me,
        &req.matter,
        "matter-show",
        |_| Ok(Operation::ShowMatter),
        None,
        Vec::new(),
    )?;
    Ok(ServerResponse::Matter(info(state, &record.matter)?))
}

pub(super) fn list(state: &State, me: &Actor) -> Outcome {
    let principal = me.view();
    let mut out = Vec::new();
    for m in state.gate.read().matters()? {
        let member = membership(&m, &me.record.id, &me.record.signing_key)?;
        let Membership::Member { role, .. } = member else {
            continue;
        };
        let scope = stored_scope(&m)?;
        let view = MatterView {
            id: &m.id,
            firm: &m.firm,
            ack_version: m.ack_version(),
            scope: &scope,
            membership: member,
        };
        if policy::decide(&principal, &m.id, Some(&view), &Operation::ListMatters).is_allowed() {
            out.push(MatterSummary {
                id: m.id.clone(),
                title: m.title.clone(),
                role: role.as_str().to_owned(),
                needs_ack: view.pending_acknowledgment().is_some(),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ServerResponse::Matters(out))
}

pub(super) fn ack_get(state: &State, me: &Actor, req: &MatterRef) -> Outcome {
    let record = authorize(
        state,
        me,
        &req.matter,
        "ack-read",
        |_| Ok(Operation::ReadAckText),
        None,
        Vec::new(),
    )?;
    let m = record.matter;
    let current = m
        .current_ack()
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "matter has no acknowledgment text"))?;
    Ok(ServerResponse::AckText(AckTextInfo {
        matter: m.id.clone(),
        version: m.ack_version(),
        text: current.text.clone(),
        text_sha256: current.sha256,
        acknowledged: m.acked_version(&me.record.id) == Some(m.ack_version()),
        role_text: role_text(state, &m)?,
    }))
}

pub(super) fn ack_sign(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: AckSignRequest,
) -> Outcome {
    let _guard = state.matter_lock(&req.matter);
    // Logged with its signature, so an auditor can check it offline with
    // the member's roster key.
    let details = vec![
        ("version".into(), req.version.to_string()),
        ("text_sha256".into(), hex(&req.text_sha256)),
        ("signed_at".into(), req.signed_at.to_string()),
        ("signature".into(), hex(&req.signature)),
    ];
    let record = authorize(
        state,
        me,
        &req.matter,
        "ack-sign",
        |_| Ok(Operation::SignAck),
        None,
        details.clone(),
    )?;
    let Authorized {
        matter: mut m,
        allowed,
    } = record;
    let current = m
        .current_ack()
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "matter has no acknowledgment text"))?;
    let statement = AckStatement {
        matter: m.id.clone(),
        version: req.version,
        text_sha256: req.text_sha256,
        principal: me.record.id.clone(),
        signed_at: req.signed_at,
    };
    let problem = if req.version != m.ack_version() {
        Some(format!(
            "acknowledgment for version {} refused: the current version of matter {} is v{}",
            req.version,
            m.id,
            m.ack_version()
        ))
    } else if req.text_sha256 != current.sha256 {
        Some(format!(
            "acknowledgment refused: it signs a text whose SHA-256 is not that of matter {} acknowledgment v{}",
            m.id,
            m.ack_version()
        ))
    } else if now().abs_diff(req.signed_at) > ACK_CLOCK_SKEW {
        Some("acknowledgment refused: its signing time is more than 15 minutes from the server's clock".into())
    } else if statement.verify(key, &req.signature).is_err() {
        Some(format!(
            "acknowledgment refused: the signature does not verify with {}'s registered key",
            me.record.id
        ))
    } else {
        None
    };
    if let Some(reason) = problem {
        state.record(Event::failed(
            me,
            "ack-verify",
            &m.id,
            "bad-acknowledgment",
            &reason,
            details,
        ))?;
        return Err(Failure::new(ErrorCode::Verification, reason));
    }
    // Signing the same version again with the same key changes nothing
    // (the request is logged, the matter does not grow).
    let already = m.acks.iter().any(|a| {
        a.principal == me.record.id && a.version == req.version && a.signing_key == key.to_bytes()
    });
    if already {
        return Ok(ServerResponse::Acked(AckInfo {
            matter: m.id.clone(),
            principal: me.record.id.clone(),
            version: req.version,
            text_sha256: req.text_sha256,
            signed_at: req.signed_at,
        }));
    }
    m.acks.push(AckRecord {
        principal: me.record.id.clone(),
        version: req.version,
        text_sha256: req.text_sha256,
        signed_at: req.signed_at,
        signature: req.signature,
        signing_key: key.to_bytes(),
    });
    state.gate.write(&allowed).put_matter(&m)?;
    Ok(ServerResponse::Acked(AckInfo {
        matter: m.id.clone(),
        principal: me.record.id.clone(),
        version: req.version,
        text_sha256: req.text_sha256,
        signed_at: req.signed_at,
    }))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
