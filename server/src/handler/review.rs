//! Deliverables, attorney review with signed receipts, turnaround reports.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use matterdrop_common::packet::{Descriptor, Kind};
use matterdrop_common::proto::{
    DeliverPrepareRequest, ErrorCode, MAX_REVIEW_NOTE, PacketCommitRequest, PacketRef,
    RecipientKey, RecipientsInfo, ReportRequest, ReportRow, ReviewRecordedInfo,
    ReviewSubmitRequest, ServerResponse,
};
use matterdrop_common::receipt::{self, Decision, ReceiptStatement};

use super::gate::Allowed;
use super::matters::{Authorized, allowed, authorize, decision, membership};
use super::packets::{authorize_pull, check_commit, member_recipients, recovery};
use super::{Actor, Failure, Outcome, State};
use crate::audit::Event;
use crate::datadir::now;
use crate::policy::{Operation, Role};
use crate::store::blobs::hex;
use crate::store::{
    DeliverableState, MatterRecord, PacketKind, PacketRecord, ReviewNoteRecord, ReviewRecord,
};

/// How far a receipt's time may be from the server's clock.
const RECEIPT_CLOCK_SKEW: u64 = 15 * 60;

/// The packet `answered` of matter `matter`, and whether `me` may deliver
/// for it. The facts — is it a packet of this matter sent to `me`'s
/// organization, does a deliverable for it await review or stand approved —
/// are loaded here; the policy decides, and the decision is logged.
pub(super) fn authorize_delivery(
    state: &State,
    me: &Actor,
    matter: &str,
    answered: &str,
    action: &'static str,
) -> Result<(MatterRecord, PacketRecord, Allowed), Failure> {
    if !matterdrop_common::packet::validate_id(answered) {
        return Err(Failure::bad_request(format!(
            "invalid packet id {answered:?}"
        )));
    }
    let packet = state
        .gate
        .read()
        .packet(answered)?
        .filter(|p| p.kind == PacketKind::Packet && p.matter == matter);
    let mut to_my_org = false;
    for r in packet.iter().flat_map(|p| &p.recipients) {
        if let Some(pr) = state.gate.read().principal(r)? {
            to_my_org |= pr.org.is_some() && pr.org == me.record.org;
        }
    }
    let earlier = match &packet {
        Some(p) => deliverables_for(state, &p.id)?,
        None => Vec::new(),
    };
    let with_state = |wanted: DeliverableState| {
        earlier
            .iter()
            .find(|d| d.state == Some(wanted))
            .map(|d| d.id.as_str())
    };
    let (pending, approved) = (
        with_state(DeliverableState::Submitted),
        with_state(DeliverableState::Approved),
    );
    let Authorized { matter: m, allowed } = authorize(
        state,
        me,
        matter,
        action,
        |_| {
            Ok(Operation::Deliver {
                packet: answered,
                to_my_org,
                pending,
                approved,
            })
        },
        Some(answered),
        Vec::new(),
    )?;
    let p = packet.ok_or_else(|| {
        Failure::new(
            ErrorCode::Internal,
            "policy allowed a delivery for no packet",
        )
    })?;
    Ok((m, p, allowed))
}

/// Deliverables answering `packet`.
fn deliverables_for(state: &State, packet: &str) -> Result<Vec<PacketRecord>, Failure> {
    Ok(state
        .gate
        .read()
        .deliverables_for(packet)?
        .into_iter()
        .filter(|p| p.kind == PacketKind::Deliverable && p.for_packet.as_deref() == Some(packet))
        .collect())
}

/// Who a deliverable is encrypted to: the matter's attorneys and
/// paralegals and the delivering provider.
fn deliverable_recipients(
    state: &State,
    m: &MatterRecord,
    me: &Actor,
) -> Result<Vec<RecipientKey>, Failure> {
    member_recipients(state, m, |ms, principal| {
        ms.receives_deliverables(principal == me.record.id)
    })
}

pub(super) fn deliver_prepare(state: &State, me: &Actor, req: &DeliverPrepareRequest) -> Outcome {
    let (m, p, _) = authorize_delivery(state, me, &req.matter, &req.packet, "deliver-prepare")?;
    Ok(ServerResponse::Recipients(RecipientsInfo {
        matter: m.id.clone(),
        task: p.task.clone(),
        recipients: deliverable_recipients(state, &m, me)?,
        recovery: recovery(state, &m)?,
    }))
}

pub(super) fn commit(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &PacketCommitRequest,
) -> Outcome {
    let d = Descriptor::parse(&req.descriptor)
        .map_err(|e| Failure::bad_request(format!("descriptor: {e}")))?;
    if super::packets::already_committed(state, me, req, &d.id)? {
        return Ok(ServerResponse::PacketCommitted(PacketRef { id: d.id }));
    }
    let (Kind::Deliverable, Some(answered)) = (d.kind, d.packet.clone()) else {
        return Err(Failure::bad_request("not a deliverable descriptor"));
    };
    let _guard = state.matter_lock(&d.matter);
    // Again under the lock: a client's retry may have waited here behind
    // the commit it repeats.
    if super::packets::already_committed(state, me, req, &d.id)? {
        return Ok(ServerResponse::PacketCommitted(PacketRef { id: d.id }));
    }
    let (m, p, allowed) = authorize_delivery(state, me, &d.matter, &answered, "deliver")?;
    let details = vec![
        ("packet".into(), p.id.clone()),
        ("size".into(), d.total_size().to_string()),
        ("files".into(), d.blobs.len().to_string()),
    ];
    let mut problem = check_commit(
        state,
        me,
        key,
        req,
        &d,
        &m,
        deliverable_recipients(state, &m, me)?,
    )?;
    if problem.is_none() && d.task != p.task {
        problem = Some((
            ErrorCode::BadRequest,
            format!(
                "deliverable names task {} but packet {} is {}",
                d.task, p.id, p.task
            ),
        ));
    }
    if let Some((code, reason)) = problem {
        state.record(Event::failed(
            me,
            "deliver",
            &m.id,
            "bad-descriptor",
            &reason,
            details,
        ))?;
        return Err(Failure::new(code, reason));
    }
    let descriptor_hash = d.hash().map_err(|e| Failure::bad_request(e.to_string()))?;
    // A returned deliverable is superseded by this one.
    for mut old in deliverables_for(state, &p.id)? {
        if old.state == Some(DeliverableState::Returned) {
            old.state = Some(DeliverableState::Superseded);
            state.gate.write(&allowed).put_packet(&old)?;
        }
    }
    let mut blobs = vec![(d.manifest.sha256, d.manifest.size)];
    blobs.extend(d.blobs.iter().map(|b| (b.sha256, b.size)));
    let record = PacketRecord {
        id: d.id.clone(),
        matter: m.id.clone(),
        sender: me.record.id.clone(),
        task: p.task.clone(),
        due: p.due,
        created_at: now(),
        descriptor: req.descriptor.clone(),
        signature: req.signature.clone(),
        sender_key: key.to_bytes(),
        recipients: d.recipients.iter().map(|r| r.principal.clone()).collect(),
        blobs,
        pulled_by: Vec::new(),
        delivered_to: Vec::new(),
        kind: PacketKind::Deliverable,
        for_packet: Some(p.id.clone()),
        state: Some(DeliverableState::Submitted),
        reviews: Vec::new(),
    };
    let mut done = details;
    done.push(("descriptor_sha256".into(), hex(&descriptor_hash)));
    // Logged before it becomes visible (see the packet commit).
    state.record(
        Event::server(&me.record.id, "deliver-committed", Some(&d.id), None, done).in_matter(&m.id),
    )?;
    state.gate.write(&allowed).create_packet(&record)?;
    state.notify(
        "deliverable",
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

pub(super) fn review(
    state: &State,
    me: &Actor,
    key: &VerifyingKey,
    req: &ReviewSubmitRequest,
) -> Outcome {
    let st =
        ReceiptStatement::parse(&req.signed).map_err(|e| Failure::bad_request(e.to_string()))?;
    let _guard = state.packet_lock(&st.deliverable)?;
    let pending = state
        .gate
        .read()
        .packet(&st.deliverable)?
        .is_some_and(|d| d.state == Some(DeliverableState::Submitted));
    let (mut d, allowed) = authorize_pull(state, me, &st.deliverable, "review-check", Vec::new())
        .and_then(|(d, _)| {
        let Authorized { allowed, .. } = authorize(
            state,
            me,
            &d.matter,
            "review",
            |_| {
                Ok(Operation::Review {
                    deliverable: &st.deliverable,
                    pending,
                })
            },
            Some(&st.deliverable),
            vec![("decision".into(), st.decision.as_str().into())],
        )?;
        Ok((d, allowed))
    })?;
    if d.kind != PacketKind::Deliverable {
        return Err(Failure::bad_request(format!(
            "{} is a packet, not a deliverable",
            d.id
        )));
    }
    let empty_note = receipt::sha256(b"");
    let problem = if st.reviewer != me.record.id {
        Some(format!(
            "the receipt names reviewer {}, but {} submitted it",
            st.reviewer, me.record.id
        ))
    } else if Some(&st.packet) != d.for_packet.as_ref() || st.matter != d.matter {
        Some("the receipt names another packet or matter than the deliverable's".to_owned())
    } else if st.descriptor_sha256 != receipt::sha256(&d.descriptor) {
        Some("the receipt's descriptor hash is not that of the deliverable on record".to_owned())
    } else if now().abs_diff(st.time) > RECEIPT_CLOCK_SKEW {
        Some("the receipt's time is more than 15 minutes from the server's clock".to_owned())
    } else if matterdrop_common::sign::verify(key, &req.signed, &req.signature).is_err() {
        Some(format!(
            "the receipt's signature does not verify with {}'s key",
            me.record.id
        ))
    } else {
        None
    };
    if let Some(reason) = problem {
        state.record(Event::failed(
            me,
            "review",
            &d.matter,
            "bad-receipt",
            &reason,
            Vec::new(),
        ))?;
        return Err(Failure::new(ErrorCode::Verification, reason));
    }
    if st.decision == Decision::Return && st.note_sha256 == empty_note {
        return Err(Failure::bad_request(
            "returning a deliverable requires a note (--note) saying what to correct",
        ));
    }
    // The note travels with the review, encrypted to the matter's readers
    // by the reviewer's client; the server only checks its presence and
    // size (its readers check it against the signed hash).
    if req.note.len() > MAX_REVIEW_NOTE {
        return Err(Failure::bad_request(format!(
            "the encrypted review note is {} bytes, more than the limit of {MAX_REVIEW_NOTE}",
            req.note.len()
        )));
    }
    if (st.note_sha256 == empty_note) != req.note.is_empty() {
        return Err(Failure::bad_request(
            "a review's note must come with it, encrypted to the matter's readers (and only a \
             non-empty note)",
        ));
    }
    // The receipt itself goes into the log: that entry is what the
    // returned inclusion proof covers.
    let details = vec![
        ("decision".into(), st.decision.as_str().into()),
        ("packet".into(), st.packet.clone()),
        (
            "receipt".into(),
            String::from_utf8_lossy(&req.signed).into_owned(),
        ),
        ("receipt_sha256".into(), hex(&receipt::sha256(&req.signed))),
        ("signature".into(), hex(&req.signature)),
    ];
    let index = state.record(
        Event::server(&me.record.id, "review-receipt", Some(&d.id), None, details)
            .in_matter(&d.matter),
    )?;
    let new_state = match st.decision {
        Decision::Approve => DeliverableState::Approved,
        Decision::Return => DeliverableState::Returned,
    };
    d.state = Some(new_state);
    d.reviews.push(ReviewRecord {
        reviewer: me.record.id.clone(),
        decision: st.decision.as_str().into(),
        at: now(),
        log_index: index,
    });
    // The note first: a crash between the two leaves the deliverable
    // awaiting review, and a second review replaces the note.
    state.gate.write(&allowed).put_review_note(
        &d.id,
        &ReviewNoteRecord {
            signed: req.signed.clone(),
            signature: req.signature.clone(),
            note: req.note.clone(),
        },
    )?;
    state.gate.write(&allowed).put_packet(&d)?;
    state.notify(
        match new_state {
            DeliverableState::Approved => "approved",
            _ => "returned",
        },
        &d.matter,
        &d.id,
        [d.sender.clone()],
    );
    let (record, proof, checkpoint) = state.gate.audit().inclusion(index).map_err(|e| {
        tracing::error!(error = %e, "inclusion proof");
        Failure::new(ErrorCode::Internal, "the audit log cannot prove the review")
    })?;
    // A receipt, like an export, may wait a little for the witnesses.
    let witnessed = super::export::witnessed(state, &checkpoint);
    Ok(ServerResponse::ReviewRecorded(ReviewRecordedInfo {
        index,
        record,
        proof,
        checkpoint,
        log_key: state.log_vkey.clone(),
        state: new_state.as_str().into(),
        witnessed,
    }))
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1) - 1;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

pub(super) fn report(state: &State, me: &Actor, req: &ReportRequest) -> Outcome {
    if req.matter.is_none() {
        // Without a matter: refused unless the caller may read reports on
        // at least one matter (the refusal is the policy's, for one of them).
        let mut first_denial = None;
        let mut any = false;
        for m in state.gate.read().matters()? {
            if !matches!(
                membership(&m, &me.record.id, &me.record.signing_key)?,
                crate::policy::Membership::Member { .. }
            ) {
                continue;
            }
            match decision(me, &m, &Operation::Report)? {
                crate::policy::Decision::Allow => any = true,
                crate::policy::Decision::Deny(d) => {
                    first_denial.get_or_insert(d);
                }
            }
        }
        let denial = first_denial
            .as_ref()
            .map(|d| (d.rule.as_str(), d.message.as_str()));
        state.record(Event::server(
            &me.record.id,
            "report",
            None,
            if any {
                None
            } else {
                denial.or(Some(("not-member", "member of no matter")))
            },
            Vec::new(),
        ))?;
        if !any {
            return Err(first_denial.map_or_else(
                || {
                    Failure::new(
                        ErrorCode::Denied,
                        format!("turnaround reports are for attorneys and auditors of a matter; {} is not a member of any matter", me.record.id),
                    )
                },
                Failure::from,
            ));
        }
    }
    if let Some(m) = &req.matter {
        authorize(
            state,
            me,
            m,
            "report",
            |_| Ok(Operation::Report),
            None,
            Vec::new(),
        )?;
    }
    let since = req.since_secs.map(|s| now().saturating_sub(s));
    let all = state.gate.read().packets()?;
    #[derive(Default)]
    struct Acc {
        row: ReportRow,
        turnaround: Vec<u64>,
    }
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for p in all.iter().filter(|p| p.kind == PacketKind::Packet) {
        if req.matter.as_ref().is_some_and(|m| *m != p.matter)
            || since.is_some_and(|s| p.created_at < s)
        {
            continue;
        }
        let Some(m) = state.gate.read().matter(&p.matter)? else {
            continue;
        };
        if !allowed(me, &m, &Operation::Report)? {
            continue;
        }
        // The provider organizations the packet went to.
        let mut orgs = std::collections::BTreeSet::new();
        for r in &p.recipients {
            if m.current_member(r)
                .is_some_and(|row| row.role == Role::Provider.as_str())
            {
                if let Some(org) = state.gate.read().principal(r)?.and_then(|x| x.org) {
                    orgs.insert(org);
                }
            }
        }
        let delivered: Vec<&PacketRecord> = all
            .iter()
            .filter(|d| d.kind == PacketKind::Deliverable && d.for_packet.as_deref() == Some(&p.id))
            .collect();
        for org in orgs {
            let mine: Vec<&&PacketRecord> = delivered
                .iter()
                .filter(|d| {
                    state
                        .gate
                        .read()
                        .principal(&d.sender)
                        .ok()
                        .flatten()
                        .and_then(|x| x.org)
                        .as_deref()
                        == Some(org.as_str())
                })
                .collect();
            let a = acc.entry((org.clone(), p.task.clone())).or_default();
            a.row.provider.clone_from(&org);
            a.row.task.clone_from(&p.task);
            a.row.packets += 1;
            let Some(first) = mine.iter().map(|d| d.created_at).min() else {
                continue;
            };
            a.row.delivered += 1;
            if p.due.is_none_or(|due| first <= due) {
                a.row.on_time += 1;
            }
            let approval = mine
                .iter()
                .flat_map(|d| d.reviews.iter())
                .filter(|r| r.decision == "approve")
                .map(|r| r.at)
                .min();
            let returned = mine
                .iter()
                .flat_map(|d| d.reviews.iter())
                .any(|r| r.decision == "return");
            if let Some(at) = approval {
                a.row.approved += 1;
                if !returned {
                    a.row.first_pass += 1;
                }
                a.turnaround.push(at.saturating_sub(p.created_at));
            }
        }
    }
    let rows = acc
        .into_values()
        .map(|mut a| {
            a.turnaround.sort_unstable();
            a.row.median_secs = percentile(&a.turnaround, 50);
            a.row.p90_secs = percentile(&a.turnaround, 90);
            a.row
        })
        .collect();
    Ok(ServerResponse::Report(rows))
}
