//! `mdrop share ID --to PRINCIPAL`: re-share a packet to a member who
//! could not read it when it was sent (added later, or a provider who
//! signed the acknowledgment after the push), without uploading it again.
//!
//! The sharer's client downloads each blob, checks it against the signed
//! descriptor (a header alone could be another packet's, encrypted to this
//! user too), unwraps its header's file key with its own age identity, and writes a new header for the payload
//! that opens it for the new reader only (`matterdrop_common::reshare`),
//! to the age key the matter's signed roster gives that reader (never the
//! server's word). It signs a statement naming each new header's hash; the
//! server stores the headers beside the unchanged blobs and logs the
//! share. The new reader's `pull` checks the statement (signed by a holder
//! of the file keys whom the roster knows, for this reader's own key, over
//! the signed descriptor's blobs) and each header against it, then
//! verifies and decrypts as usual.

use std::fmt::Write as _;

use matterdrop_common::custody::ShareStatement;
use matterdrop_common::packet::{BlobRef, Descriptor, Kind};
use matterdrop_common::proto::{ClientRequest, PacketRef, ServerResponse, ShareRequest};
use matterdrop_common::reshare;
use matterdrop_common::roles::Role;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Ctx;
use super::packets::{OwnKeys, bar, fetch_checked_header, resolve_id, verify_descriptor};
use crate::cli::ShareArgs;
use crate::conn::Session;
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::output::escape;

/// Headers per request (a hybrid header is about 1.6 KB: well inside a
/// frame).
const BATCH: usize = 200;

pub async fn share(ctx: &Ctx, args: &ShareArgs) -> CmdResult {
    let id = resolve_id(ctx, &args.id).await?;
    let key = identity::signing_key(&ctx.home)?;
    let keys = OwnKeys::load(ctx, &key)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = share_inner(ctx, &session, &server.principal, &key, &keys, &id, &args.to).await;
    session.close().await;
    let done = result?;
    ctx.out.emit(&done, || {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Shared {} with {}: {} new headers, no file uploaded again (log entry {}).",
            done["id"].as_str().unwrap_or(""),
            escape(done["to"].as_str().unwrap_or(""), false),
            done["headers"],
            done["log_index"]
        );
        s
    });
    Ok(())
}

async fn share_inner(
    ctx: &Ctx,
    session: &Session,
    me: &str,
    key: &ed25519_dalek::SigningKey,
    keys: &OwnKeys,
    id: &str,
    to: &str,
) -> CmdResult<serde_json::Value> {
    let resp = session
        .request(&ClientRequest::PacketPeek(PacketRef { id: id.to_owned() }))
        .await?;
    let ServerResponse::Packet(info) = resp else {
        return Err(Fail::other("unexpected answer from the server"));
    };
    let d = Descriptor::parse(&info.descriptor)
        .map_err(|e| Fail::new(exit::VERIFY, format!("descriptor: {e}")))?;
    if d.id != id || info.id != id {
        return Err(Fail::new(
            exit::VERIFY,
            format!("the server returned descriptor {} for {id}", d.id),
        ));
    }
    let synced = crate::roster::sync(&ctx.home, session, &d.matter).await?;
    let roster = &synced.roster;
    verify_descriptor(&d, &info, roster, me, &keys.signing)?;
    roster
        .check_open()
        .map_err(|why| Fail::new(exit::DENIED, why))?;
    if let Some(e) = &info.expired {
        return Err(super::packets::expired(ctx, &d, e)?);
    }
    if !d.recipients.iter().any(|r| r.principal == me) {
        return Err(Fail::new(
            exit::DENIED,
            format!(
                "{id} is not encrypted to {me}: only its sender and recipients hold its file keys"
            ),
        ));
    }
    if d.recipients.iter().any(|r| r.principal == to) {
        return Err(Fail::new(exit::USAGE, format!("{to} already reads {id}")));
    }
    // Whom the signed roster lets read such a packet now, with the key it
    // gives them.
    let Some(member) = roster.members.get(to) else {
        return Err(Fail::new(
            exit::DENIED,
            format!("{to} is not a current member of matter {}", d.matter),
        ));
    };
    let may_read = match (d.kind, member.role) {
        (_, Role::Attorney | Role::Paralegal) => true,
        (Kind::Packet, Role::Provider) => roster.has_current_ack(to, &synced.acks),
        _ => false,
    };
    if !may_read {
        return Err(Fail::new(
            exit::DENIED,
            format!(
                "{to} is {} of matter {} who may not read this {}{}",
                member.role.with_article(),
                d.matter,
                match d.kind {
                    Kind::Packet => "packet",
                    Kind::Deliverable => "deliverable",
                },
                if member.role == Role::Provider && d.kind == Kind::Packet {
                    format!(
                        " until they sign version {} of the acknowledgment",
                        roster.ack_version
                    )
                } else {
                    String::new()
                }
            ),
        ));
    }
    let target = member.keys.age.clone();
    let blobs: Vec<&BlobRef> = std::iter::once(&d.manifest).chain(d.blobs.iter()).collect();
    // Each blob is checked whole against the signed descriptor before its
    // file key is re-wrapped: a header alone could be another packet's.
    let pb = bar(d.total_size(), "checking");
    let mut headers = Vec::with_capacity(blobs.len());
    for b in &blobs {
        let old = fetch_checked_header(session, id, b, &pb).await?;
        let new = reshare::reshare(&old, &keys.age, &target).map_err(|e| {
            Fail::new(
                exit::VERIFY,
                format!("blob {} of {id}: {e}", hex(&b.sha256)),
            )
        })?;
        headers.push(new);
    }
    pb.finish_and_clear();
    let st = ShareStatement {
        id: id.to_owned(),
        matter: d.matter.clone(),
        descriptor_sha256: Sha256::digest(&info.descriptor).into(),
        sharer: me.to_owned(),
        recipient: to.to_owned(),
        age: target.recipient().to_owned(),
        time: crate::unix_now(),
        headers: blobs
            .iter()
            .zip(&headers)
            .map(|(b, h)| (b.sha256, Sha256::digest(h).into()))
            .collect(),
    };
    let signed = st
        .to_signed_bytes()
        .map_err(|e| Fail::other(e.to_string()))?;
    let signature = matterdrop_common::sign::sign(key, &signed);
    let mut logged = None;
    for (n, chunk) in headers.chunks(BATCH).enumerate() {
        let resp = session
            .request(&ClientRequest::Share(ShareRequest {
                signed: signed.clone(),
                signature: signature.to_vec(),
                first: u32::try_from(n * BATCH).unwrap_or(u32::MAX),
                headers: chunk.to_vec(),
            }))
            .await?;
        let ServerResponse::Shared(progress) = resp else {
            return Err(Fail::other("unexpected answer from the server"));
        };
        logged = progress.logged;
    }
    let Some(index) = logged else {
        return Err(Fail::other(
            "the server stored the headers but did not record the share as complete",
        ));
    };
    Ok(json!({
        "id": id,
        "matter": d.matter,
        "to": to,
        "age": target.recipient(),
        "headers": headers.len(),
        "log_index": index,
    }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
