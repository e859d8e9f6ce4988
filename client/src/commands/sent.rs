//! `mdrop sent`: what I sent, and where each recipient stands.
//!
//! The server holds the evidence; the client judges it. A sent item is
//! shown only if its descriptor is signed with a key the matter's roster
//! gave this user. The recipients are the descriptor's (signed), not the
//! server's list. A recipient counts as having received and verified the
//! files only on its own signed delivery statement
//! (`matterdrop_common::custody`), checked here with its roster key
//! against this descriptor; that it downloaded, and where a deliverable's
//! review stands, are the server's word and shown as such, except a
//! review, which is checked as `review show` checks it. Evidence that
//! does not check refuses the listing (exit 4), naming the item.

use std::collections::HashMap;
use std::fmt::Write as _;

use matterdrop_common::agekey::AgeIdentity;
use matterdrop_common::custody::DeliveryStatement;
use matterdrop_common::packet::{Descriptor, Kind};
use matterdrop_common::proto::{
    ClientRequest, SentItem, SentRecipient, SentRequest, ServerResponse,
};
use matterdrop_common::roster::Roster;
use serde_json::{Value, json};

use super::Ctx;
use super::review::OpenedReview;
use crate::cli::SentArgs;
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::output::{escape, human_size};

fn sha256(bytes: &[u8]) -> [u8; 32] {
    matterdrop_common::receipt::sha256(bytes)
}

/// A recipient of a checked sent item.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The principal (from the signed descriptor).
    pub principal: String,
    /// When it confirmed, signed, that it received and verified every file.
    pub delivered_at: Option<u64>,
    /// When its first download started (the server's word).
    pub pulled_at: Option<u64>,
}

/// A sent item whose evidence checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The signed descriptor.
    pub descriptor: Descriptor,
    /// Total ciphertext size (the server's count of the signed parts).
    pub size: u64,
    /// Due (the descriptor's; a deliverable's is its packet's, the
    /// server's word).
    pub due: Option<u64>,
    /// A deliverable's state (the server's word).
    pub state: Option<String>,
    /// Everyone it is encrypted to but me.
    pub recipients: Vec<Recipient>,
    /// A deliverable's latest review, checked.
    pub review: Option<OpenedReview>,
    /// A packet's deliverables and their states (the server's word).
    pub answers: Vec<(String, String)>,
}

impl Checked {
    /// The JSON form.
    pub fn json(&self) -> Value {
        let d = &self.descriptor;
        json!({
            "id": d.id,
            "kind": match d.kind { Kind::Packet => "packet", Kind::Deliverable => "deliverable" },
            "matter": d.matter,
            "task": d.task,
            "packet": d.packet,
            "sent_at": crate::when::utc(d.created_at),
            "due": self.due.map(crate::when::utc),
            "size": self.size,
            "state": self.state,
            "recipients": self.recipients.iter().map(|r| json!({
                "principal": r.principal,
                "delivered": r.delivered_at.is_some(),
                "delivered_at": r.delivered_at.map(crate::when::utc),
                "pulled_at": r.pulled_at.map(crate::when::utc),
            })).collect::<Vec<_>>(),
            "review": self.review.as_ref().map(OpenedReview::json),
            "answers": self.answers.iter().map(|(id, st)| json!({"id": id, "state": st})).collect::<Vec<_>>(),
        })
    }

    /// The terminal form: a heading line, then one line per recipient.
    /// Every text is escaped (ids, names and states come from the server
    /// or from other parties).
    pub fn describe(&self, out: &mut String) {
        let d = &self.descriptor;
        let kind = match d.kind {
            Kind::Packet => "packet".to_owned(),
            Kind::Deliverable => format!(
                "deliverable for {}",
                escape(d.packet.as_deref().unwrap_or("-"), false)
            ),
        };
        let _ = write!(
            out,
            "{}  {kind}  matter {}  task {}  sent {}  {}",
            escape(&d.id, false),
            escape(&d.matter, false),
            escape(&d.task, false),
            crate::when::utc(d.created_at),
            human_size(self.size),
        );
        if let Some(due) = self.due {
            let _ = write!(out, "  due {}", crate::when::utc(due));
        }
        if let Some(st) = &self.state {
            let _ = write!(out, "  {} (server)", escape(st, false));
        }
        out.push('\n');
        for r in &self.recipients {
            let state = match (r.delivered_at, r.pulled_at) {
                (Some(t), _) => format!("received and verified {} (signed)", crate::when::utc(t)),
                (None, Some(t)) => format!(
                    "download started {} (server), no signed confirmation",
                    crate::when::utc(t)
                ),
                (None, None) => "not downloaded (server)".to_owned(),
            };
            let _ = writeln!(out, "    {:<24} {state}", escape(&r.principal, false));
        }
        for (id, st) in &self.answers {
            let _ = writeln!(
                out,
                "    answered by {} ({}, server)",
                escape(id, false),
                escape(st, false)
            );
        }
        if let Some(r) = &self.review {
            let _ = writeln!(
                out,
                "    {}",
                r.describe().trim_end().replace('\n', "\n    ")
            );
        }
    }
}

fn refuse(id: &str, why: impl std::fmt::Display) -> Fail {
    Fail::new(
        exit::VERIFY,
        format!(
            "the server's record of sent item {} {why}; nothing is shown",
            escape(id, false)
        ),
    )
}

/// Whether `verifies` accepts one of the signing keys the matter's roster
/// ever gave `principal`.
fn signed_by(
    roster: &Roster,
    principal: &str,
    verifies: impl Fn(&ed25519_dalek::VerifyingKey) -> bool,
) -> bool {
    roster.ever_signing_keys(principal).any(|k| {
        matterdrop_common::sign::verifying_key_from_bytes(k).is_ok_and(|key| verifies(&key))
    })
}

/// Checks one delivery statement the server holds for `r` of `d`.
fn check_delivery(
    item: &SentItem,
    d: &Descriptor,
    r: &str,
    (signed, signature): &(Vec<u8>, Vec<u8>),
    roster: &Roster,
) -> CmdResult<u64> {
    let who = escape(r, false);
    let st = DeliveryStatement::parse(signed).map_err(|e| {
        refuse(
            &item.id,
            format!(
                "has a malformed delivery confirmation for {who}: {}",
                escape(&e.to_string(), false)
            ),
        )
    })?;
    if st.id != d.id || st.matter != d.matter || st.principal != r {
        return Err(refuse(
            &item.id,
            format!(
                "has a delivery confirmation for {who} that names {} of matter {} by {}",
                escape(&st.id, false),
                escape(&st.matter, false),
                escape(&st.principal, false)
            ),
        ));
    }
    if st.descriptor_sha256 != sha256(&item.descriptor) {
        return Err(refuse(
            &item.id,
            format!(
                "has a delivery confirmation for {who} of another descriptor than the one sent"
            ),
        ));
    }
    if !signed_by(roster, r, |key| {
        matterdrop_common::sign::verify(key, signed, signature).is_ok()
    }) {
        return Err(refuse(
            &item.id,
            format!(
                "has a delivery confirmation for {who} not signed with a key the matter's roster gave {who}"
            ),
        ));
    }
    Ok(st.time)
}

/// Checks one item the server lists as sent by `me`.
fn check(item: &SentItem, me: &str, roster: &Roster, ids: &[AgeIdentity]) -> CmdResult<Checked> {
    let d = Descriptor::parse(&item.descriptor)
        .map_err(|e| refuse(&item.id, format!("has no valid descriptor: {e}")))?;
    if d.id != item.id || d.matter != item.matter || d.sender != me {
        return Err(refuse(
            &item.id,
            format!(
                "holds the descriptor of {} of matter {} sent by {}",
                escape(&d.id, false),
                escape(&d.matter, false),
                escape(&d.sender, false)
            ),
        ));
    }
    if !signed_by(roster, me, |key| d.verify(key, &item.signature).is_ok()) {
        return Err(refuse(
            &item.id,
            "is not signed with a key the matter's roster gave you (you did not send it)",
        ));
    }
    let mut recipients: Vec<Recipient> = Vec::new();
    for principal in d.recipients.iter().map(|r| r.principal.as_str()) {
        if principal == me || recipients.iter().any(|r| r.principal == principal) {
            continue;
        }
        let held = item.recipients.iter().find(|r| r.principal == principal);
        let delivered_at = match held.and_then(|r: &SentRecipient| r.delivery.as_ref()) {
            Some(proof) => Some(check_delivery(item, &d, principal, proof, roster)?),
            None => None,
        };
        recipients.push(Recipient {
            principal: principal.to_owned(),
            delivered_at,
            pulled_at: held.and_then(|r| r.pulled_at),
        });
    }
    if let Some(r) = item
        .recipients
        .iter()
        .find(|r| r.delivery.is_some() && !d.recipients.iter().any(|x| x.principal == r.principal))
    {
        return Err(refuse(
            &item.id,
            format!(
                "has a delivery confirmation for {}, who is not among its signed recipients",
                escape(&r.principal, false)
            ),
        ));
    }
    let review = match (&item.review, d.kind, d.packet.as_deref()) {
        (None, _, _) => None,
        (Some(r), Kind::Deliverable, Some(packet)) => Some(super::review::open_review(
            r,
            (&d.id, &d.matter),
            Some((&sha256(&item.descriptor), packet)),
            roster,
            ids,
        )?),
        (Some(_), _, _) => return Err(refuse(&item.id, "has a review but is not a deliverable")),
    };
    Ok(Checked {
        due: d.due.or(item.due),
        size: item.size,
        state: item.state.clone(),
        recipients,
        review,
        answers: item.answers.clone(),
        descriptor: d,
    })
}

/// The items the server lists as sent by `me` (in `matter`, or all),
/// each checked (see the module).
pub async fn list(
    ctx: &Ctx,
    session: &Session,
    me: &str,
    matter: Option<&str>,
) -> CmdResult<Vec<Checked>> {
    let resp = session
        .request(&ClientRequest::Sent(SentRequest {
            matter: matter.map(str::to_owned),
        }))
        .await?;
    let ServerResponse::Sent(items) = resp else {
        return Err(unexpected(&resp));
    };
    let mut rosters: HashMap<String, Roster> = HashMap::new();
    // The age identity opens review notes: loaded (perhaps asking for a
    // passphrase) only if there is one.
    let ids = if items.iter().any(|i| i.review.is_some()) {
        identity::age_identities(&ctx.home)?
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        if !rosters.contains_key(&item.matter) {
            let synced = crate::roster::sync(&ctx.home, session, &item.matter).await?;
            rosters.insert(item.matter.clone(), synced.roster);
        }
        let Some(roster) = rosters.get(&item.matter) else {
            continue;
        };
        out.push(check(item, me, roster, &ids)?);
    }
    Ok(out)
}

/// `mdrop sent`.
pub async fn sent(ctx: &Ctx, args: &SentArgs) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = list(ctx, &session, &server.principal, args.matter.as_deref()).await;
    session.close().await;
    let items = result?;
    let v = json!({"items": items.iter().map(Checked::json).collect::<Vec<_>>()});
    ctx.out.emit(&v, || {
        let mut s = String::new();
        if items.is_empty() {
            s.push_str("Nothing sent.\n");
        }
        for i in &items {
            i.describe(&mut s);
        }
        s
    });
    Ok(())
}
