//! Matters, membership, scope and acknowledgments.
//!
//! Every operation here goes the same way: load the matter, build the policy
//! views, ask [`policy::decide`], append the decision to the audit log (on
//! disk before anything is answered), and only then act.

use std::str::FromStr as _;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::ids;
use matterdrop_common::proto::{
    AckInfo, AckSignRequest, AckTextInfo, ErrorCode, MatterCreateRequest, MatterInfo,
    MatterMemberRequest, MatterRef, MatterSetAckRequest, MatterSetScopeRequest, MatterSummary,
    MemberInfo, ServerResponse,
};
use matterdrop_common::sign::AckStatement;
use sha2::{Digest as _, Sha256};

use super::{Actor, Failure, Outcome, State};
use crate::audit::Event;
use crate::datadir::now;
use crate::policy::{
    self, Decision, MatterView, Membership, Operation, Role, ServerOperation, Task,
};
use crate::store::{AckRecord, AckVersion, MatterRecord, MemberRecord};

/// Longest acknowledgment text accepted.
pub(super) const MAX_ACK_TEXT: usize = 64 * 1024;
/// Longest matter title.
pub(super) const MAX_TITLE: usize = 200;
/// How far an acknowledgment's signed time may be from the server's clock.
pub(super) const ACK_CLOCK_SKEW: u64 = 15 * 60;

fn parse_scope(names: &[String]) -> Result<Vec<Task>, Failure> {
    names
        .iter()
        .map(|n| Task::from_str(n.trim()).map_err(|e| Failure::bad_request(e.to_string())))
        .collect()
}

fn stored_scope(m: &MatterRecord) -> Result<Vec<Task>, Failure> {
    m.scope
        .iter()
        .map(|n| {
            Task::from_str(n)
                .map_err(|_| Failure::new(ErrorCode::Internal, "stored matter scope is damaged"))
        })
        .collect()
}

pub(crate) fn membership(m: &MatterRecord, principal: &str) -> Result<Membership, Failure> {
    let Some(row) = m.member(principal) else {
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
    Ok(Sha256::digest(text.as_bytes()).into())
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
) -> Result<Option<MatterRecord>, Failure> {
    let record = state.store.matter(matter_id)?;
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
                membership: membership(m, &me.record.id)?,
            };
            let op = op(m)?;
            policy::decide(&principal, matter_id, Some(&view), &op)
        }
    };
    state.record(Event::matter(
        me, action, matter_id, object, &decision, details,
    ))?;
    match decision {
        Decision::Allow => Ok(record),
        Decision::Deny(d) => Err(d.into()),
    }
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
        membership: membership(m, &me.record.id)?,
    };
    Ok(policy::decide(&me.view(), &m.id, Some(&view), op))
}

pub(crate) fn require(record: Option<MatterRecord>) -> Result<MatterRecord, Failure> {
    record.ok_or_else(|| Failure::new(ErrorCode::Internal, "policy allowed a missing matter"))
}

fn info(state: &State, m: &MatterRecord) -> Result<MatterInfo, Failure> {
    let mut members = Vec::new();
    for row in m.members.iter().filter(|r| r.removed_at.is_none()) {
        let org = state.store.principal(&row.principal)?.and_then(|p| p.org);
        members.push(MemberInfo {
            principal: row.principal.clone(),
            role: row.role.clone(),
            org,
            added_at: row.added_at,
            acked_version: m.acked_version(&row.principal),
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
        created_by: m.created_by.clone(),
        created_at: m.created_at,
    })
}

pub(super) fn create(state: &State, me: &Actor, req: MatterCreateRequest) -> Outcome {
    ids::validate_matter(&req.id).map_err(|e| Failure::bad_request(e.to_string()))?;
    let title = req.title.trim();
    if title.is_empty() || title.len() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(Failure::bad_request(format!(
            "title must be 1 to {MAX_TITLE} characters without control characters"
        )));
    }
    let sha = check_text(&req.ack_text)?;
    let scope = parse_scope(&req.scope)?;
    let _guard = state.write_lock();
    let exists = state.store.matter(&req.id)?.is_some();
    let principal = me.view();
    let decision = policy::decide_server(
        &principal,
        &ServerOperation::CreateMatter {
            id: &req.id,
            scope: &scope,
            exists,
        },
    );
    state.record(Event::matter(
        me,
        "matter-create",
        &req.id,
        None,
        &decision,
        vec![
            ("scope".into(), req.scope.join(",")),
            ("ack_sha256".into(), hex(&sha)),
        ],
    ))?;
    if let Decision::Deny(d) = decision {
        return Err(d.into());
    }
    let firm = policy::creator_firm(&principal)?.to_owned();
    let t = now();
    let record = MatterRecord {
        id: req.id.clone(),
        title: title.to_owned(),
        firm,
        scope: scope.iter().map(|t| t.as_str().to_owned()).collect(),
        ack_versions: vec![AckVersion {
            text: req.ack_text,
            sha256: sha,
            set_by: me.record.id.clone(),
            set_at: t,
        }],
        members: vec![MemberRecord {
            principal: me.record.id.clone(),
            role: policy::CREATOR_ROLE.as_str().to_owned(),
            added_by: me.record.id.clone(),
            added_at: t,
            removed_at: None,
        }],
        acks: Vec::new(),
        created_by: me.record.id.clone(),
        created_at: t,
    };
    state.store.create_matter(&record)?;
    Ok(ServerResponse::Matter(info(state, &record)?))
}

pub(super) fn add(state: &State, me: &Actor, req: MatterMemberRequest) -> Outcome {
    let role_name = req
        .role
        .as_deref()
        .ok_or_else(|| Failure::bad_request("a role is required (--role)"))?;
    let role = Role::from_str(role_name).map_err(|e| Failure::bad_request(e.to_string()))?;
    let _guard = state.write_lock();
    let target = state.store.principal(&req.principal)?;
    let target_actor = match &target {
        Some(t) => Some(Actor::load(state, t.clone())?),
        None => None,
    };
    let details = vec![("role".into(), role.as_str().into())];
    let record = authorize(
        state,
        me,
        &req.matter,
        "member-add",
        |m| {
            let Some(t) = &target_actor else {
                return Err(Failure::new(
                    ErrorCode::NotFound,
                    format!("no principal {} is enrolled", req.principal),
                ));
            };
            let current = match membership(m, &t.record.id)? {
                Membership::Member { role, .. } => Some(role),
                Membership::Removed { .. } | Membership::Never => None,
            };
            Ok(Operation::AddMember {
                role,
                target: t.view(),
                target_current_role: current,
                attorney_count: attorney_count(m),
            })
        },
        Some(&req.principal),
        details,
    )?;
    let mut m = require(record)?;
    let t = now();
    let row = MemberRecord {
        principal: req.principal.clone(),
        role: role.as_str().to_owned(),
        added_by: me.record.id.clone(),
        added_at: t,
        removed_at: None,
    };
    match m.members.iter_mut().find(|r| r.principal == req.principal) {
        Some(existing) => *existing = row,
        None => m.members.push(row),
    }
    state.store.put_matter(&m)?;
    Ok(ServerResponse::Matter(info(state, &m)?))
}

pub(super) fn remove(state: &State, me: &Actor, req: MatterMemberRequest) -> Outcome {
    let _guard = state.write_lock();
    let record = authorize(
        state,
        me,
        &req.matter,
        "member-remove",
        |m| {
            let target_role = match membership(m, &req.principal)? {
                Membership::Member { role, .. } => Some(role),
                Membership::Removed { .. } | Membership::Never => None,
            };
            Ok(Operation::RemoveMember {
                target: &req.principal,
                target_role,
                attorney_count: attorney_count(m),
            })
        },
        Some(&req.principal),
        Vec::new(),
    )?;
    let mut m = require(record)?;
    let t = now();
    if let Some(row) = m.members.iter_mut().find(|r| r.principal == req.principal) {
        row.removed_at = Some(t);
    }
    state.store.put_matter(&m)?;
    Ok(ServerResponse::Matter(info(state, &m)?))
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
    Ok(ServerResponse::Matter(info(state, &require(record)?)?))
}

pub(super) fn list(state: &State, me: &Actor) -> Outcome {
    let principal = me.view();
    let mut out = Vec::new();
    for m in state.store.matters()? {
        let member = membership(&m, &me.record.id)?;
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

pub(super) fn set_ack(state: &State, me: &Actor, req: MatterSetAckRequest) -> Outcome {
    let sha = check_text(&req.ack_text)?;
    let _guard = state.write_lock();
    let record = authorize(
        state,
        me,
        &req.matter,
        "ack-set",
        |_| Ok(Operation::SetAck),
        None,
        vec![("ack_sha256".into(), hex(&sha))],
    )?;
    let mut m = require(record)?;
    m.ack_versions.push(AckVersion {
        text: req.ack_text,
        sha256: sha,
        set_by: me.record.id.clone(),
        set_at: now(),
    });
    state.store.put_matter(&m)?;
    Ok(ServerResponse::Matter(info(state, &m)?))
}

pub(super) fn set_scope(state: &State, me: &Actor, req: MatterSetScopeRequest) -> Outcome {
    let scope = parse_scope(&req.scope)?;
    let _guard = state.write_lock();
    let record = authorize(
        state,
        me,
        &req.matter,
        "scope-set",
        |_| Ok(Operation::SetScope { scope: &scope }),
        None,
        vec![("scope".into(), req.scope.join(","))],
    )?;
    let mut m = require(record)?;
    m.scope = scope.iter().map(|t| t.as_str().to_owned()).collect();
    state.store.put_matter(&m)?;
    Ok(ServerResponse::Matter(info(state, &m)?))
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
    let m = require(record)?;
    let current = m
        .current_ack()
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "matter has no acknowledgment text"))?;
    Ok(ServerResponse::AckText(AckTextInfo {
        matter: m.id.clone(),
        version: m.ack_version(),
        text: current.text.clone(),
        text_sha256: current.sha256,
        acknowledged: m.acked_version(&me.record.id) == Some(m.ack_version()),
    }))
}

pub(super) fn ack_sign(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: AckSignRequest,
) -> Outcome {
    let _guard = state.write_lock();
    let details = vec![
        ("version".into(), req.version.to_string()),
        ("text_sha256".into(), hex(&req.text_sha256)),
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
    let mut m = require(record)?;
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
    m.acks.push(AckRecord {
        principal: me.record.id.clone(),
        version: req.version,
        text_sha256: req.text_sha256,
        signed_at: req.signed_at,
        signature: req.signature,
    });
    state.store.put_matter(&m)?;
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
