//! Enrollment, whoami, organizations and invites.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::agekey::AgeKey;
use matterdrop_common::ids;
use matterdrop_common::proto::{
    Directory, DirectoryKind, EnrollRequest, ErrorCode, InviteCreateRequest, InviteInfo,
    InviteListing, InviteRevokeRequest, KeyRegistrationsInfo, LoggedRecord, OrgCreateRequest,
    OrgInfo, OrgListing, PrincipalInfo, PrincipalKeysInfo, PrincipalListing, PrincipalRef,
    ServerResponse,
};

use super::gate::Allowed;
use super::{Actor, Failure, Outcome, State};
use crate::audit::Event;
use crate::datadir::{DEFAULT_INVITE_TTL, invite_hash, new_invite_token, now, store_invite};
use crate::policy::{self, ServerOperation};
use crate::store::{
    InviteRecord, OrgRecord, PrincipalRecord, Refusal, StoreError, invite_token_id,
};

const MAX_NAME: usize = 128;

fn principal_info(state: &State, p: &PrincipalRecord) -> Result<PrincipalInfo, Failure> {
    let org_kind = match &p.org {
        Some(org) => state.gate.read().org(org)?.map(|o| o.kind),
        None => None,
    };
    Ok(PrincipalInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        org: p.org.clone(),
        org_kind,
        admin: p.admin,
        signing_key: p.signing_key,
        age_recipient: p.age_recipient.clone(),
        log_key: state.log_vkey.clone(),
        enrolled_at: p.enrolled_at,
    })
}

fn check_age_recipient(s: &str) -> Result<(), Failure> {
    AgeKey::from_recipient(s)
        .map(|_| ())
        .map_err(Failure::bad_request)
}

pub(super) fn enroll(state: &State, key: &VerifyingKey, req: EnrollRequest) -> Outcome {
    let id_org =
        ids::validate_principal(&req.id).map_err(|e| Failure::bad_request(e.to_string()))?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Failure::bad_request(format!(
            "display name must be 1 to {MAX_NAME} characters without control characters"
        )));
    }
    check_age_recipient(&req.age_recipient)?;
    // An id names its organization; ids under a name that is not an
    // organization belong to no organization (server operators).
    let org = state.gate.read().org(id_org)?.map(|o| o.id);
    let record = PrincipalRecord {
        id: req.id.clone(),
        name: name.to_owned(),
        org,
        admin: false,
        signing_key: key.to_bytes(),
        age_recipient: req.age_recipient,
        enrolled_at: now(),
        revoked_at: None,
    };
    let fp = matterdrop_common::keys::ed25519_fingerprint(key);
    let details = vec![
        ("signing_key".into(), fp.clone()),
        ("age_recipient".into(), record.age_recipient.clone()),
    ];
    // Enrollment changes no existing principal: it holds off only other
    // enrollments of the same id, not every writer.
    let _guard = state.principal_lock(&req.id);
    // The invite's validity is the decision; the outcome is logged before
    // the user hears it. An invite nobody issued is only counted (the
    // server rate-limits failed enrollments and logs their counts
    // periodically: one entry each would let anyone with a key grow the
    // log); a refusal of a real invite (used, expired, another
    // organization's, an id or key taken) is logged with the key and id,
    // since only a holder of a real invite can make it.
    let refused = |e: &StoreError| match e {
        StoreError::Refused(Refusal::InviteUnknown) => None,
        StoreError::Refused(r) => {
            let reason = r.to_string();
            Some(Event::server(
                &format!("key:{fp}"),
                "enroll",
                Some(&req.id),
                Some(("bad-invite", reason.as_str())),
                details.clone(),
            ))
        }
        _ => None,
    };
    let enrolled = Event::server(
        &record.id,
        "enroll",
        Some(&record.id),
        None,
        details.clone(),
    );
    state
        .gate
        .enroll(&invite_hash(&req.invite), &record, now(), refused, enrolled)?;
    let stored = state
        .gate
        .read()
        .principal(&record.id)?
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "enrolled principal vanished"))?;
    tracing::info!(principal = %stored.id, admin = stored.admin, "enrolled");
    Ok(ServerResponse::Enrolled(principal_info(state, &stored)?))
}

pub(super) fn whoami(state: &State, me: &Actor) -> Outcome {
    Ok(ServerResponse::WhoAmI(principal_info(state, &me.record)?))
}

/// Decides a server operation and records the decision.
pub(super) fn authorize_server(
    state: &State,
    me: &Actor,
    op: &ServerOperation<'_>,
    object: &str,
) -> Result<Allowed, Failure> {
    authorize_server_with(state, me, op, object, Vec::new())
}

/// [`authorize_server`], logging `details` with the decision.
fn authorize_server_with(
    state: &State,
    me: &Actor,
    op: &ServerOperation<'_>,
    object: &str,
    details: Vec<(String, String)>,
) -> Result<Allowed, Failure> {
    let decision = policy::decide_server(&me.view(), op);
    let denial = decision
        .denial()
        .map(|d| (d.rule.as_str(), d.message.as_str()));
    let event = Event::server(&me.record.id, op.name(), Some(object), denial, details);
    state.gate.decide(event, decision)
}

pub(super) fn org_create(state: &State, me: &Actor, req: OrgCreateRequest) -> Outcome {
    ids::validate_org(&req.id).map_err(|e| Failure::bad_request(e.to_string()))?;
    let allowed = authorize_server(state, me, &ServerOperation::CreateOrganization, &req.id)?;
    if req.recovery_recipient.is_some() {
        // What the operator sets must never reach a packet.
        return Err(Failure::bad_request(
            "organizations have no recovery recipient any more: a matter's attorney sets one \
             in its signed roster (mdrop matter create --recovery-recipient, matter set-recovery)",
        ));
    }
    let org = OrgRecord {
        id: req.id,
        kind: req.kind,
        recovery_recipient: req.recovery_recipient,
        created_at: now(),
    };
    state.gate.write(&allowed).create_org(&org)?;
    tracing::info!(org = %org.id, kind = org.kind.as_str(), by = %me.record.id, "organization created");
    Ok(ServerResponse::OrgCreated(OrgInfo {
        id: org.id,
        kind: org.kind,
        recovery_recipient: org.recovery_recipient,
    }))
}

pub(super) fn invite_create(state: &State, me: &Actor, req: InviteCreateRequest) -> Outcome {
    if let Some(org) = &req.org {
        ids::validate_org(org).map_err(|e| Failure::bad_request(e.to_string()))?;
    }
    // The token exists before the decision, so that the log names the
    // invite (its public id) that an allowed request then creates.
    let token = new_invite_token();
    let token_id = invite_token_id(&invite_hash(&token));
    let allowed = authorize_server_with(
        state,
        me,
        &ServerOperation::CreateInvite,
        req.org.as_deref().unwrap_or("(admin)"),
        vec![
            ("invite".into(), token_id.clone()),
            (
                "for".into(),
                req.for_id.clone().unwrap_or_else(|| "-".into()),
            ),
            ("admin".into(), req.admin.to_string()),
        ],
    )?;
    match &req.org {
        Some(org) if state.gate.read().org(org)?.is_none() => {
            return Err(Failure::new(
                ErrorCode::NotFound,
                format!(
                    "organization {org} does not exist; create it with `mdrop admin org create`"
                ),
            ));
        }
        None if !req.admin => {
            return Err(Failure::bad_request(
                "an invite without an organization must be an admin invite (--admin)",
            ));
        }
        Some(_) | None => {}
    }
    if let Some(for_id) = &req.for_id {
        let id_org =
            ids::validate_principal(for_id).map_err(|e| Failure::bad_request(e.to_string()))?;
        if req.org.as_deref() != Some(id_org) {
            return Err(Failure::bad_request(format!(
                "--for {for_id} names organization {id_org}, but the invite is for {}",
                req.org.as_deref().unwrap_or("no organization")
            )));
        }
        if state
            .gate
            .read()
            .principal(for_id)?
            .is_some_and(|p| p.revoked_at.is_none())
        {
            return Err(Failure::new(
                ErrorCode::Conflict,
                format!("{for_id} is already enrolled"),
            ));
        }
    }
    let ttl = req.ttl_secs.map_or(DEFAULT_INVITE_TTL, Duration::from_secs);
    let expires_at = store_invite(
        state.gate.write(&allowed),
        &token,
        (req.org.clone(), req.for_id.clone()),
        req.admin,
        ttl,
        now(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "minting invite");
        Failure::new(ErrorCode::Internal, "could not store the invite")
    })?;
    tracing::info!(org = ?req.org, admin = req.admin, by = %me.record.id, "invite created");
    Ok(ServerResponse::Invite(InviteInfo {
        token_id,
        token,
        org: req.org,
        admin: req.admin,
        expires_at,
        for_id: req.for_id,
    }))
}

fn invite_listing(hash: &[u8; 32], i: InviteRecord) -> InviteListing {
    InviteListing {
        token_id: invite_token_id(hash),
        org: i.org,
        for_id: i.for_id,
        admin: i.admin,
        created_at: i.created_at,
        expires_at: i.expires_at,
        used_by: i.used_by,
        revoked_at: i.revoked_at,
    }
}

/// `DirectoryList`: the server's organizations, principals or invites
/// (admins; logged). Invites show their public id, never their token.
pub(super) fn directory_list(state: &State, me: &Actor, kind: DirectoryKind) -> Outcome {
    let what = match kind {
        DirectoryKind::Orgs => "orgs",
        DirectoryKind::Principals => "principals",
        DirectoryKind::Invites => "invites",
    };
    authorize_server(state, me, &ServerOperation::ListDirectory, what)?;
    let read = state.gate.read();
    let dir = match kind {
        DirectoryKind::Orgs => Directory::Orgs(
            read.orgs()?
                .into_iter()
                .map(|o| OrgListing {
                    id: o.id,
                    kind: o.kind,
                    created_at: o.created_at,
                })
                .collect(),
        ),
        DirectoryKind::Principals => Directory::Principals(
            read.principals()?
                .into_iter()
                .map(|p| PrincipalListing {
                    id: p.id,
                    name: p.name,
                    org: p.org,
                    admin: p.admin,
                    enrolled_at: p.enrolled_at,
                    revoked_at: p.revoked_at,
                })
                .collect(),
        ),
        DirectoryKind::Invites => {
            let mut all: Vec<InviteListing> = read
                .invites()?
                .into_iter()
                .map(|(h, i)| invite_listing(&h, i))
                .collect();
            all.sort_by_key(|i| std::cmp::Reverse(i.created_at));
            Directory::Invites(all)
        }
    };
    Ok(ServerResponse::Directory(dir))
}

/// `InviteRevoke`: an unused invite, named by its public id or a unique
/// prefix of at least 6 hex digits, is refused from now on (admins).
pub(super) fn invite_revoke(state: &State, me: &Actor, req: &InviteRevokeRequest) -> Outcome {
    let want = req.token_id.to_ascii_lowercase();
    if !(6..=12).contains(&want.len()) || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::bad_request(format!(
            "invalid invite id {:?}: 6 to 12 hex digits, as `mdrop admin list invites` shows them",
            req.token_id
        )));
    }
    // Resolved before the decision so that the log names the whole id; a
    // caller who may not revoke learns nothing from it (refused first).
    let found: Vec<[u8; 32]> = state
        .gate
        .read()
        .invites()?
        .into_iter()
        .map(|(h, _)| h)
        .filter(|h| invite_token_id(h).starts_with(&want))
        .collect();
    let resolved = match found.as_slice() {
        [h] => invite_token_id(h),
        [] => "none".to_owned(),
        _ => "ambiguous".to_owned(),
    };
    let allowed = authorize_server_with(
        state,
        me,
        &ServerOperation::RevokeInvite,
        &want,
        vec![("invite".into(), resolved)],
    )?;
    let hash = match found.as_slice() {
        [h] => *h,
        [] => {
            return Err(Failure::new(
                ErrorCode::NotFound,
                format!("no invite has id {want}"),
            ));
        }
        _ => {
            return Err(Failure::bad_request(format!(
                "{want} names {} invites; give all 12 digits",
                found.len()
            )));
        }
    };
    let revoked = state
        .gate
        .write(&allowed)
        .revoke_invite(&hash, now())
        .map_err(|e| match e {
            // Here a used invite is a conflict with what happened, not a
            // refused enrollment.
            StoreError::Refused(r @ Refusal::InviteUsed) => {
                Failure::new(ErrorCode::Conflict, r.to_string())
            }
            e => e.into(),
        })?;
    tracing::info!(invite = %invite_token_id(&hash), by = %me.record.id, "invite revoked");
    Ok(ServerResponse::InviteRevoked(invite_listing(
        &hash, revoked,
    )))
}

pub(super) fn revoke(
    state: &State,
    me: &Actor,
    req: &matterdrop_common::proto::KeyRevokeRequest,
) -> Outcome {
    ids::validate_principal(&req.principal).map_err(|e| Failure::bad_request(e.to_string()))?;
    let allowed = authorize_server(state, me, &ServerOperation::RevokeKey, &req.principal)?;
    let _guard = state.server_lock();
    let p = state.gate.write(&allowed).revoke(&req.principal, now())?;
    let fp = VerifyingKey::from_bytes(&p.signing_key)
        .map(|k| matterdrop_common::keys::ed25519_fingerprint(&k))
        .unwrap_or_default();
    state.record(Event::server(
        &me.record.id,
        "key-revoked",
        Some(&p.id),
        None,
        vec![("signing_key".into(), fp)],
    ))?;
    tracing::info!(principal = %p.id, by = %me.record.id, "key revoked");
    Ok(ServerResponse::Revoked(PrincipalRef { id: p.id }))
}

/// `AgeKeyUpdate`: the caller's new age recipient (`mdrop keys upgrade`).
/// Logged with both keys' fingerprints; rosters are unaffected until an
/// attorney signs a `rekey`.
pub(super) fn update_age_key(
    state: &State,
    me: &Actor,
    req: &matterdrop_common::proto::AgeKeyUpdateRequest,
) -> Outcome {
    let new = AgeKey::from_recipient(&req.age_recipient).map_err(Failure::bad_request)?;
    if new.recipient() == me.record.age_recipient {
        return Err(Failure::bad_request(format!(
            "{} already has this age key",
            me.record.id
        )));
    }
    let old = AgeKey::from_recipient(&me.record.age_recipient)
        .map(|k| k.fingerprint())
        .unwrap_or_default();
    let allowed = authorize_server(state, me, &ServerOperation::ReplaceOwnAgeKey, &me.record.id)?;
    let _guard = state.server_lock();
    let p = state
        .gate
        .write(&allowed)
        .set_age_recipient(&me.record.id, new.recipient())?;
    state.record(Event::server(
        &me.record.id,
        "age-key-updated",
        Some(&p.id),
        None,
        vec![
            ("age_type".into(), new.kind().to_owned()),
            ("age_fingerprint".into(), new.fingerprint()),
            ("previous_age_fingerprint".into(), old),
        ],
    ))?;
    tracing::info!(principal = %p.id, kind = new.kind(), "age key replaced");
    Ok(ServerResponse::WhoAmI(principal_info(state, &p)?))
}

/// `NotifyEmail`: the caller's own notification address (set, cleared).
/// Logged without the address (personal data the log does not need).
pub(super) fn notify_email(
    state: &State,
    me: &Actor,
    req: &matterdrop_common::proto::NotifyEmailRequest,
) -> Outcome {
    if let Some(a) = &req.address {
        crate::notify::check_address(a).map_err(Failure::bad_request)?;
    }
    let allowed = authorize_server(state, me, &ServerOperation::SetOwnEmail, &me.record.id)?;
    state
        .gate
        .write(&allowed)
        .set_email(&me.record.id, req.address.as_deref())?;
    state.record(Event::server(
        &me.record.id,
        "notify-email-set",
        Some(&me.record.id),
        None,
        vec![(
            "address".into(),
            if req.address.is_some() {
                "set"
            } else {
                "cleared"
            }
            .into(),
        )],
    ))?;
    Ok(ServerResponse::NotifyEmail(
        matterdrop_common::proto::NotifyEmailInfo {
            address: req.address.clone(),
            sends_email: state.notify.emails(),
        },
    ))
}

/// `PrincipalKeys`: an enrolled principal's public keys, for an attorney
/// about to add it to a matter (its client shows the safety code to
/// compare).
pub(super) fn principal_keys(state: &State, me: &Actor, req: &PrincipalRef) -> Outcome {
    ids::validate_principal(&req.id).map_err(|e| Failure::bad_request(e.to_string()))?;
    let found = state
        .gate
        .read()
        .principal(&req.id)?
        .filter(|p| p.revoked_at.is_none());
    state.record(Event::server(
        &me.record.id,
        "principal-keys",
        Some(&req.id),
        None,
        vec![("found".into(), found.is_some().to_string())],
    ))?;
    let p = found.ok_or_else(|| {
        Failure::new(
            ErrorCode::NotFound,
            format!(
                "no principal {} is enrolled; a server admin can invite them \
                 (mdrop admin invite --org {} --for {}), then they enroll with their own keys",
                req.id,
                req.id.split_once('@').map_or("ORG", |(_, org)| org),
                req.id
            ),
        )
    })?;
    let org_kind = match &p.org {
        Some(o) => state.gate.read().org(o)?.map(|o| o.kind),
        None => None,
    };
    Ok(ServerResponse::PrincipalKeys(PrincipalKeysInfo {
        id: p.id,
        name: p.name,
        org: p.org,
        org_kind,
        signing_key: p.signing_key,
        age_recipient: p.age_recipient,
        enrolled_at: p.enrolled_at,
    }))
}

/// `KeyRegistrations`: every key registered under the caller's own id, as
/// the log recorded it, with inclusion proofs (`mdrop keys audit` finds keys
/// it did not create).
pub(super) fn key_registrations(state: &State, me: &Actor) -> Outcome {
    let (records, checkpoint) = state
        .gate
        .audit()
        .registrations(&me.record.id)
        .map_err(|e| {
            tracing::error!(error = %e, "key registrations");
            Failure::new(ErrorCode::Internal, "the audit log cannot be read")
        })?;
    state.record(Event::server(
        &me.record.id,
        "key-registrations",
        Some(&me.record.id),
        None,
        vec![("count".into(), records.len().to_string())],
    ))?;
    Ok(ServerResponse::KeyRegistrations(KeyRegistrationsInfo {
        principal: me.record.id.clone(),
        checkpoint,
        records: records
            .into_iter()
            .map(|(index, record, proof)| LoggedRecord {
                index,
                record,
                proof,
            })
            .collect(),
    }))
}
