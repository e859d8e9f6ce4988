//! `review approve|return`, `receipt verify`, `report turnaround`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use matterdrop_common::agekey::{AgeIdentity, AgeKey, Recipients};
use matterdrop_common::audit;
use matterdrop_common::packet::{Descriptor, Kind, Manifest};
use matterdrop_common::proto::{
    ClientRequest, InboxRequest, MAX_REVIEW_NOTE, ReviewNote, ReviewSubmitRequest, ServerResponse,
};
use matterdrop_common::receipt::{
    self, CosignedCheckpoint, Decision, LogProof, RECEIPT_FORMAT, ReceiptFile, ReceiptFileEntry,
    ReceiptStatement,
};
use matterdrop_common::roles::Role as RosterRole;
use matterdrop_common::roster::{Check, Roster, SignedStatement};
use matterdrop_common::tlog::{self, NoteVerifier};
use serde_json::json;

use super::Ctx;
use super::packets::{OwnKeys, Pulled, confirm_delivery, pull_inner};
use crate::cli::{PullArgs, ReceiptVerifyArgs, ReviewArgs, ReviewShowArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::{check_writable, write_replace};
use crate::identity;
use crate::output::{escape, human_size};
use crate::pins::Pins;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn bad(message: impl Into<String>) -> Fail {
    Fail::new(exit::VERIFY, message)
}

use crate::unix_now as now;

/// `mdrop review approve|return`.
pub async fn review(ctx: &Ctx, args: &ReviewArgs, decision: Decision) -> CmdResult {
    let note = args.note.clone().unwrap_or_default();
    if decision == Decision::Return && note.trim().is_empty() {
        return Err(Fail::usage(
            "returning a deliverable requires --note saying what to correct",
        ));
    }
    let reason = match (&args.reason, decision) {
        (None, _) => None,
        (Some(_), Decision::Approve) => {
            return Err(Fail::usage(
                "--reason says why a deliverable goes back: it is for `review return` only",
            ));
        }
        (Some(r), Decision::Return) => {
            Some(r.parse::<receipt::ReturnReason>().map_err(Fail::usage)?)
        }
    };
    // Nothing is pulled for a decision that cannot be asked for.
    crate::output::can_confirm(args.yes)?;
    let id = super::packets::resolve_id(ctx, &args.id).await?;
    // Where the receipt goes is checked before anything is signed: the
    // server records the decision once, and a receipt that cannot be saved
    // afterwards would be lost.
    let path = args
        .receipt
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("receipt-{id}.json")));
    check_writable(&path)?;
    let key = identity::signing_key(&ctx.home)?;
    let keys = OwnKeys::load(ctx, &key)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let log_key =
        NoteVerifier::from_vkey(&server.log_key).map_err(|e| Fail::other(e.to_string()))?;
    let out = review_dir(ctx, &id, args.out.as_deref());
    let result = async {
        let shown = fetch(ctx, (&session, &server.principal), (&key, &keys), &id, &out).await?;
        let (pulled, d, packet) = (&shown.pulled, &shown.descriptor, shown.packet.clone());
        // A receipt vouches for work from a current provider of the matter,
        // signed with the key its roster gives them now (not one it has
        // since removed or replaced).
        if !pulled.sender_current {
            return Err(bad(format!(
                "deliverable {} is signed by {}, who is not a current provider of matter {} with \
                 that key in its signed roster; nothing was signed",
                d.id, d.sender, d.matter
            )));
        }
        // The attorney signs what they have seen: the files and the note.
        let mut what = shown.describe(&out);
        if decision == Decision::Return {
            let _ = writeln!(what, "Your note to the provider:\n{}", indent(&note));
        }
        if let Some(r) = reason {
            let _ = writeln!(what, "Reason: {}", r.as_str());
        }
        if let Some(r) = args.rating {
            let _ = writeln!(what, "Your rating: {r}/5");
        }
        crate::output::confirm(
            args.yes,
            &what,
            &format!(
                "{} deliverable {} as {}?",
                match decision {
                    Decision::Approve => "Approve",
                    Decision::Return => "Return",
                },
                d.id,
                server.principal
            ),
            "not confirmed; nothing was signed",
        )?;
        let statement = ReceiptStatement {
            deliverable: d.id.clone(),
            packet,
            matter: d.matter.clone(),
            descriptor_sha256: receipt::sha256(&pulled.descriptor),
            manifest_sha256: receipt::sha256(&pulled.manifest_bytes),
            decision,
            note_sha256: receipt::sha256(note.as_bytes()),
            reviewer: server.principal.clone(),
            time: now(),
            rating: args.rating,
            reason,
        };
        let signed = statement
            .to_signed_bytes()
            .map_err(|e| Fail::other(e.to_string()))?;
        let signature = statement
            .sign(&key)
            .map_err(|e| Fail::other(e.to_string()))?;
        let sealed = seal_note(d, &note)?;
        let resp = session
            .request(&ClientRequest::ReviewSubmit(ReviewSubmitRequest {
                signed: signed.clone(),
                signature: signature.to_vec(),
                note: sealed,
            }))
            .await?;
        let ServerResponse::ReviewRecorded(info) = resp else {
            return Err(unexpected(&resp));
        };
        let file = ReceiptFile {
            format: RECEIPT_FORMAT.into(),
            signed: String::from_utf8(signed).map_err(|e| Fail::other(e.to_string()))?,
            signature: B64.encode(signature),
            reviewer_public_key_pem: key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| Fail::other(e.to_string()))?,
            manifest: B64.encode(&pulled.manifest_bytes),
            files: pulled
                .manifest
                .files
                .iter()
                .map(|f| ReceiptFileEntry {
                    path: f.path.clone(),
                    size: f.size,
                    sha256: hex(&f.sha256),
                })
                .collect(),
            note: note.clone(),
            roster: crate::roster::load_cache(&ctx.home, &d.matter)?
                .iter()
                .map(|e| [B64.encode(&e.statement), B64.encode(&e.signature)])
                .collect(),
            log: LogProof {
                index: info.index,
                record: B64.encode(&info.record),
                proof: info.proof.iter().map(|h| hex(h)).collect(),
                checkpoint: info.checkpoint.clone(),
                log_key: info.log_key.clone(),
                witnessed: info
                    .witnessed
                    .iter()
                    .map(CosignedCheckpoint::from_witnessed)
                    .collect(),
            },
        };
        // Check what the server returned before trusting it.
        check(&file, &log_key, &[])?;
        Ok((file, info.state))
    }
    .await;
    session.close().await;
    let (file, state) = result?;
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Fail::other(e.to_string()))?;
    write_replace(&path, &bytes, 0o644)?;
    ctx.out.emit(
        &json!({"id": id, "decision": decision.as_str(), "state": state, "receipt": path,
                "log_index": file.log.index, "files": out, "rating": args.rating,
                "reason": reason.map(receipt::ReturnReason::as_str)}),
        || {
            format!(
                "{} deliverable {} (now {state}); receipt saved to {}\n",
                match decision {
                    Decision::Approve => "Approved",
                    Decision::Return => "Returned",
                },
                id,
                path.display()
            )
        },
    );
    Ok(())
}

/// A deliverable pulled and verified for review.
struct Shown {
    pulled: Pulled,
    descriptor: Descriptor,
    /// The packet it answers.
    packet: String,
    /// Its review state as the server lists it (submitted, approved,
    /// returned, superseded), if it does.
    state: Option<String>,
}

impl Shown {
    /// What a reviewer sees before deciding; text from the provider is
    /// escaped.
    fn describe(&self, out: &std::path::Path) -> String {
        let d = &self.descriptor;
        let m = &self.pulled.manifest;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "Deliverable {} of matter {}, from {}, answering packet {} (task {})",
            escape(&d.id, false),
            escape(&d.matter, false),
            escape(&d.sender, false),
            escape(&self.packet, false),
            escape(&d.task, false)
        );
        if let Some(state) = &self.state {
            let _ = writeln!(t, "State: {}", escape(state, false));
        }
        if let Some(r) = &self.pulled.review {
            t.push_str(&r.describe());
        }
        let total: u64 = m.files.iter().map(|f| f.size).sum();
        let _ = writeln!(
            t,
            "{} file{}, {} (verified, in {}):",
            m.files.len(),
            if m.files.len() == 1 { "" } else { "s" },
            human_size(total),
            out.display()
        );
        for f in &m.files {
            let _ = writeln!(
                t,
                "  {:>10}  {}",
                human_size(f.size),
                escape(&f.path, false)
            );
        }
        if m.note.trim().is_empty() {
            let _ = writeln!(t, "The provider left no note.");
        } else {
            let _ = writeln!(t, "The provider's note:\n{}", indent(&m.note));
        }
        t
    }
}

/// Encrypts a review's note to the deliverable's own readers, as its
/// signed descriptor names them (checked against the matter's signed
/// roster when it was pulled): the provider who delivered it reads the
/// note, the server and other providers cannot. Nothing for an empty note.
fn seal_note(d: &Descriptor, note: &str) -> CmdResult<Vec<u8>> {
    if note.is_empty() {
        return Ok(Vec::new());
    }
    if note.len() > matterdrop_common::packet::MAX_NOTE {
        return Err(Fail::usage(format!(
            "the note exceeds {} bytes",
            matterdrop_common::packet::MAX_NOTE
        )));
    }
    let keys = d
        .recipients
        .iter()
        .map(|r| r.age.as_str())
        .chain(d.recovery.as_deref())
        .map(AgeKey::from_recipient)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the deliverable's recipients: {e}")))?;
    let keys = Recipients::new(&keys).map_err(|e| bad(format!("age recipients: {e}")))?;
    let mut out = Vec::new();
    let sealed = (|| -> std::io::Result<()> {
        let mut w = keys
            .encryptor()
            .map_err(std::io::Error::other)?
            .wrap_output(&mut out)?;
        w.write_all(note.as_bytes())?;
        w.finish()?;
        Ok(())
    })();
    sealed.map_err(|e| Fail::other(format!("encrypting the note: {e}")))?;
    if out.len() > MAX_REVIEW_NOTE {
        return Err(Fail::usage(format!(
            "the note, encrypted to the deliverable's {} readers, exceeds {MAX_REVIEW_NOTE} bytes; \
             shorten it",
            d.recipients.len()
        )));
    }
    Ok(out)
}

/// A review the server attached to a deliverable, checked.
#[derive(Debug, Clone)]
pub struct OpenedReview {
    /// Who signed it.
    pub reviewer: String,
    /// Approve or return.
    pub decision: Decision,
    /// When, as the reviewer signed it (Unix seconds).
    pub time: u64,
    /// The note, decrypted and matching the signed hash.
    pub note: String,
    /// The signed rating, 1 to 5.
    pub rating: Option<u8>,
    /// The signed return reason.
    pub reason: Option<receipt::ReturnReason>,
}

impl OpenedReview {
    /// For `--json`.
    pub fn json(&self) -> serde_json::Value {
        json!({"reviewer": self.reviewer, "decision": self.decision.as_str(),
               "time": crate::when::utc(self.time), "note": self.note, "rating": self.rating,
               "reason": self.reason.map(receipt::ReturnReason::as_str)})
    }

    /// One or more lines for a terminal; the note is escaped.
    pub fn describe(&self) -> String {
        let mut t = format!(
            "{} by {} at {}",
            match self.decision {
                Decision::Approve => "Approved",
                Decision::Return => "Returned",
            },
            escape(&self.reviewer, false),
            crate::when::utc(self.time)
        );
        if let Some(r) = self.reason {
            let _ = write!(t, " (reason: {})", r.as_str());
        }
        if let Some(r) = self.rating {
            let _ = write!(t, " (rating {r}/5)");
        }
        if self.note.trim().is_empty() {
            t.push('\n');
        } else {
            let _ = write!(t, ", with the note:\n{}", indent(&self.note));
        }
        t
    }
}

/// Checks the review `r` of deliverable `deliverable` of `matter`: a
/// receipt statement for this deliverable (and, given `bound`, for these
/// exact descriptor bytes' SHA-256 and this answered packet), signed with
/// the key the signed roster gives a current attorney of the matter (as
/// `receipt verify` requires), and a note that decrypts with this
/// client's keys to the text whose hash the reviewer signed. The server
/// can withhold a review; a review it made up or changed is refused
/// (exit 4), naming the deliverable and the rule.
pub fn open_review(
    r: &ReviewNote,
    (deliverable, matter): (&str, &str),
    bound: Option<(&[u8; 32], &str)>,
    roster: &Roster,
    ids: &[AgeIdentity],
) -> CmdResult<OpenedReview> {
    let refuse = |why: String| {
        bad(format!(
            "the review the server attached to deliverable {} {why}; it is not shown",
            escape(deliverable, false)
        ))
    };
    let st = ReceiptStatement::parse(&r.signed)
        .map_err(|e| refuse(format!("is malformed: {}", escape(&e.to_string(), false))))?;
    if st.deliverable != deliverable || st.matter != matter {
        return Err(refuse(format!(
            "is for deliverable {} of matter {}",
            escape(&st.deliverable, false),
            escape(&st.matter, false)
        )));
    }
    if let Some((descriptor_sha256, packet)) = bound {
        if st.descriptor_sha256 != *descriptor_sha256 || st.packet != packet {
            return Err(refuse(
                "names other work than this deliverable's signed descriptor".to_owned(),
            ));
        }
    }
    let reviewer = escape(&st.reviewer, false);
    let Some(m) = roster.members.get(&st.reviewer) else {
        return Err(refuse(format!(
            "is signed by {reviewer}, who is not a member of the matter's signed roster"
        )));
    };
    if m.role != RosterRole::Attorney {
        return Err(refuse(format!(
            "is signed by {reviewer}, {} of the matter, not an attorney",
            m.role.with_article()
        )));
    }
    let signed_with_roster_key = ed25519_dalek::VerifyingKey::from_bytes(&m.keys.signing_key)
        .is_ok_and(|vk| matterdrop_common::sign::verify(&vk, &r.signed, &r.signature).is_ok());
    if !signed_with_roster_key {
        return Err(refuse(format!(
            "is not signed by the key the matter's roster gives {reviewer}"
        )));
    }
    let note = if r.note.is_empty() {
        String::new()
    } else {
        let mut plain = Vec::new();
        super::packets::decrypt_stream(&mut &r.note[..], &mut plain, ids, None).map_err(|e| {
            refuse(format!(
                "has a note that does not decrypt: {}",
                escape(&e.to_string(), false)
            ))
        })?;
        String::from_utf8(plain).map_err(|_| refuse("has a note that is not UTF-8".into()))?
    };
    if receipt::sha256(note.as_bytes()) != st.note_sha256 {
        return Err(refuse(format!(
            "has a note other than the one {reviewer} signed"
        )));
    }
    Ok(OpenedReview {
        reviewer: st.reviewer,
        decision: st.decision,
        time: st.time,
        note,
        rating: st.rating,
        reason: st.reason,
    })
}

/// `text`, escaped for a terminal, each line indented.
fn indent(text: &str) -> String {
    escape(text.trim_end(), true)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// Where a reviewed deliverable's files go: `--out`, else HOME/reviews/ID.
fn review_dir(ctx: &Ctx, id: &str, out: Option<&std::path::Path>) -> PathBuf {
    out.map_or_else(|| ctx.home.path("reviews").join(id), PathBuf::from)
}

/// Pulls and verifies deliverable `id` into `out` (review only what this
/// client has pulled and verified itself), confirms its delivery, and
/// looks up its review state.
async fn fetch(
    ctx: &Ctx,
    (session, me): (&Session, &str),
    (key, keys): (&ed25519_dalek::SigningKey, &OwnKeys),
    id: &str,
    out: &std::path::Path,
) -> CmdResult<Shown> {
    let partial = ctx.home.path("partial").join(id);
    let pull = PullArgs {
        id: id.to_owned(),
        out: Some(out.to_owned()),
        raw: false,
        force: true,
        retries: 0,
    };
    let pulled: Pulled = pull_inner(ctx, &pull, session, me, keys, &partial).await?;
    let _ = std::fs::remove_dir_all(&partial);
    if let Err(e) = confirm_delivery(session, key, me, &pulled).await {
        eprintln!("mdrop: warning: the signed delivery confirmation could not be logged: {e}");
    }
    let d = Descriptor::parse(&pulled.descriptor).map_err(|e| bad(e.to_string()))?;
    let (Kind::Deliverable, Some(packet)) = (d.kind, d.packet.clone()) else {
        return Err(Fail::usage(format!("{id} is a packet, not a deliverable")));
    };
    // Only shown, never relied on: a failure to list leaves it out.
    let state = match session
        .request(&ClientRequest::Inbox(InboxRequest {
            matter: Some(d.matter.clone()),
            all: true,
        }))
        .await
    {
        Ok(ServerResponse::Inbox(items)) => items
            .into_iter()
            .find(|i| i.id == d.id)
            .and_then(|i| i.state),
        _ => None,
    };
    Ok(Shown {
        pulled,
        descriptor: d,
        packet,
        state,
    })
}

/// `mdrop review show ID`: the deliverable's files, sizes, the provider's
/// note, the packet it answers and its state, pulled and verified.
pub async fn show(ctx: &Ctx, args: &ReviewShowArgs) -> CmdResult {
    let id = super::packets::resolve_id(ctx, &args.id).await?;
    let key = identity::signing_key(&ctx.home)?;
    let keys = OwnKeys::load(ctx, &key)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let out = review_dir(ctx, &id, args.out.as_deref());
    let shown = fetch(ctx, (&session, &server.principal), (&key, &keys), &id, &out).await;
    session.close().await;
    let shown = shown?;
    let d = &shown.descriptor;
    let m = &shown.pulled.manifest;
    ctx.out.emit(
        &json!({
            "id": d.id, "matter": d.matter, "sender": d.sender, "packet": shown.packet,
            "task": d.task, "state": shown.state, "out": out, "note": m.note,
            "sender_current": shown.pulled.sender_current,
            "files": m.files.iter().map(|f| json!({"path": f.path, "size": f.size, "sha256": hex(&f.sha256)})).collect::<Vec<_>>(),
        }),
        || {
            let mut t = shown.describe(&out);
            if !shown.pulled.sender_current {
                let _ = writeln!(
                    t,
                    "Note: {} is no longer a current provider of this matter with that key; \
                     it cannot be approved or returned.",
                    escape(&d.sender, false)
                );
            }
            t
        },
    );
    Ok(())
}

/// What a verified receipt says.
#[derive(Debug)]
pub struct Verified {
    /// The statement.
    pub statement: ReceiptStatement,
    /// Files checked against the approved ones.
    pub files_checked: usize,
    /// The roster chain the receipt carries (verified).
    pub chain: Vec<SignedStatement>,
    /// The matter's creator and key, per that chain.
    pub creator: (String, [u8; 32]),
}

/// Every offline check of a receipt. Any failure is exit 4 naming it.
pub fn check(file: &ReceiptFile, log_key: &NoteVerifier, files: &[PathBuf]) -> CmdResult<Verified> {
    if file.format != RECEIPT_FORMAT {
        return Err(bad(format!("unknown receipt format {:?}", file.format)));
    }
    // 1. The reviewer's signature over the exact statement.
    let reviewer = ed25519_dalek::VerifyingKey::from_public_key_pem(&file.reviewer_public_key_pem)
        .map_err(|_| bad("the reviewer's public key is not a valid Ed25519 PEM key"))?;
    let statement =
        ReceiptStatement::parse(file.signed.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let sig = B64
        .decode(&file.signature)
        .map_err(|_| bad("the signature is not base64"))?;
    matterdrop_common::sign::verify(&reviewer, file.signed.as_bytes(), &sig).map_err(|_| {
        bad(format!(
            "the reviewer signature does not verify with {}'s key in the receipt",
            statement.reviewer
        ))
    })?;
    // 2. The manifest and note are the signed ones.
    let manifest_bytes = B64
        .decode(&file.manifest)
        .map_err(|_| bad("the manifest is not base64"))?;
    if receipt::sha256(&manifest_bytes) != statement.manifest_sha256 {
        return Err(bad("the manifest does not match the signed manifest hash"));
    }
    let manifest = Manifest::parse(&manifest_bytes).map_err(|e| bad(format!("manifest: {e}")))?;
    let listed: Vec<(String, u64, String)> = file
        .files
        .iter()
        .map(|f| (f.path.clone(), f.size, f.sha256.clone()))
        .collect();
    let signed: Vec<(String, u64, String)> = manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.size, hex(&f.sha256)))
        .collect();
    if listed != signed {
        return Err(bad("the file list does not match the signed manifest"));
    }
    // 2b. The reviewer's key is an attorney's key in the matter's roster
    //     (the chain as the reviewer's client verified it when signing).
    let chain = file
        .roster
        .iter()
        .map(|[s, sig]| {
            Ok(SignedStatement {
                statement: B64
                    .decode(s)
                    .map_err(|_| bad("the roster in the receipt is not base64"))?,
                signature: B64
                    .decode(sig)
                    .map_err(|_| bad("the roster in the receipt is not base64"))?,
            })
        })
        .collect::<CmdResult<Vec<_>>>()?;
    if chain.is_empty() {
        return Err(bad(
            "the receipt carries no roster: nothing shows that its reviewer is an attorney of the matter",
        ));
    }
    let roster = Roster::from_chain(&chain, Check::Signatures)
        .map_err(|e| bad(format!("the roster in the receipt does not verify: {e}")))?;
    if roster.matter != statement.matter {
        return Err(bad(format!(
            "the receipt's roster is matter {}'s, not {}'s",
            roster.matter, statement.matter
        )));
    }
    match roster.member_with_key(&statement.reviewer, &reviewer.to_bytes()) {
        Some(m) if m.role == matterdrop_common::roles::Role::Attorney => {}
        _ => {
            return Err(bad(format!(
                "{}'s key in the receipt is not an attorney's key in the signed roster of matter {}",
                statement.reviewer, statement.matter
            )));
        }
    }
    if roster.time > statement.time.saturating_add(15 * 60) {
        return Err(bad("the receipt's roster is dated after the receipt"));
    }
    if receipt::sha256(file.note.as_bytes()) != statement.note_sha256 {
        return Err(bad("the note does not match the signed note hash"));
    }
    // 3. The review is in the log: the record is the log's, names this
    //    receipt, and is included under a checkpoint signed by the pinned key.
    if NoteVerifier::from_vkey(&file.log.log_key).ok().as_ref() != Some(log_key) {
        return Err(bad(format!(
            "the receipt's log key {} is not the pinned log key {}",
            file.log.log_key,
            log_key.to_vkey()
        )));
    }
    let record = B64
        .decode(&file.log.record)
        .map_err(|_| bad("the log record is not base64"))?;
    let entry = audit::open_record(&record, file.log.index, log_key.verifying_key())
        .map_err(|e| bad(format!("log record {}: {e}", file.log.index)))?;
    let receipt_hash = hex(&receipt::sha256(file.signed.as_bytes()));
    if entry.action != "review-receipt"
        || entry.detail("receipt_sha256") != Some(receipt_hash.as_str())
        || entry.principal != statement.reviewer
        || entry.matter.as_deref() != Some(statement.matter.as_str())
    {
        return Err(bad(format!(
            "log entry {} does not record this receipt",
            file.log.index
        )));
    }
    let cp = tlog::open_checkpoint(&file.log.checkpoint, log_key)
        .map_err(|e| bad(format!("the checkpoint is not signed by the log key: {e}")))?;
    let proof: Vec<[u8; 32]> = file
        .log
        .proof
        .iter()
        .map(|h| unhex32(h).ok_or_else(|| bad("the inclusion proof is malformed")))
        .collect::<Result<_, _>>()?;
    tlog::verify_inclusion(
        &tlog::leaf_hash(&record),
        file.log.index,
        cp.size,
        &proof,
        &cp.root,
    )
    .map_err(|e| {
        bad(format!(
            "the inclusion proof does not verify against the signed checkpoint: {e}"
        ))
    })?;
    // 4. The files given are exactly the approved ones.
    if !files.is_empty() {
        let mut want: Vec<([u8; 32], u64, String)> = manifest
            .files
            .iter()
            .map(|f| (f.sha256, f.size, f.path.clone()))
            .collect();
        for path in files {
            let bytes =
                std::fs::read(path).map_err(|e| Fail::usage(format!("{}: {e}", path.display())))?;
            let (sha, size) = (receipt::sha256(&bytes), bytes.len() as u64);
            let Some(pos) = want.iter().position(|(s, n, _)| *s == sha && *n == size) else {
                return Err(bad(format!(
                    "{} is not one of the approved files",
                    path.display()
                )));
            };
            want.remove(pos);
        }
        if let Some((_, _, missing)) = want.first() {
            return Err(bad(format!("approved file {missing} was not given")));
        }
    }
    Ok(Verified {
        statement,
        files_checked: files.len(),
        chain,
        creator: roster.creator,
    })
}

/// `mdrop receipt verify`.
pub fn verify(ctx: &Ctx, args: &ReceiptVerifyArgs) -> CmdResult {
    let policy = crate::witnesses::witness_policy(ctx, &args.witness, args.quorum)?;
    let bytes = std::fs::read(&args.receipt)
        .map_err(|e| Fail::usage(format!("{}: {e}", args.receipt.display())))?;
    let file: ReceiptFile = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a Matterdrop receipt: {e}")))?;
    let vkey = match &args.log_key {
        Some(k) => k.clone(),
        None => {
            ctx.home
                .server()
                .map_err(|f| f.hint("pass --log-key NAME+HASH+KEY, as printed by `mdrop whoami`"))?
                .log_key
        }
    };
    let log_key =
        NoteVerifier::from_vkey(&vkey).map_err(|e| Fail::usage(format!("invalid log key: {e}")))?;
    let v = check(&file, &log_key, &args.files)?;
    // The witnesses' cosignatures of the receipt's checkpoint (or a newer,
    // consistent one), when this auditor requires them.
    let witnessed = match &policy {
        None => Vec::new(),
        Some(p) => {
            let carried = file
                .log
                .witnessed
                .iter()
                .map(|w| {
                    w.to_witnessed()
                        .ok_or_else(|| bad("a witnessed checkpoint's proof is not hex"))
                })
                .collect::<CmdResult<Vec<_>>>()?;
            matterdrop_common::bundle::check_witnessed(
                &file.log.checkpoint,
                &carried,
                &log_key,
                &p.verifiers,
                p.quorum,
            )
            .map_err(|f| bad(format!("witness cosignatures: {f}")))?
        }
    };
    // Whether the receipt's roster is anchored in something this client
    // verified itself: its own copy of the matter's roster, or a pin of the
    // matter's creator. Otherwise whoever holds the log key could have
    // written the whole roster; say so.
    let mut anchored = false;
    // The reviewer's key must be the one this client has pinned for them.
    if ctx.home.dir.is_dir() {
        let reviewer =
            ed25519_dalek::VerifyingKey::from_public_key_pem(&file.reviewer_public_key_pem)
                .map_err(|_| bad("invalid reviewer key"))?;
        let mut pins = Pins::load(&ctx.home)?;
        pins.check(&v.statement.reviewer, &reviewer.to_bytes(), None, false)?;
        // The receipt's roster must agree with the one this client
        // verified for the matter (one a prefix of the other), and its
        // creator with the key this client knows them by.
        if let Ok(mine) = crate::roster::load_cache(&ctx.home, &v.statement.matter) {
            let n = mine.len().min(v.chain.len());
            if mine[..n] != v.chain[..n] {
                return Err(bad(format!(
                    "the receipt's roster of matter {} forks from the one this client verified",
                    v.statement.matter
                )));
            }
            anchored |= n > 0;
        }
        let (creator, key) = &v.creator;
        if let Some(pin) = pins.get(creator) {
            let fp = matterdrop_common::keys::ed25519_fingerprint(
                &ed25519_dalek::VerifyingKey::from_bytes(key)
                    .map_err(|_| bad("the roster creator's key is invalid"))?,
            );
            if pin.signing_key != fp {
                return Err(bad(format!(
                    "the receipt's roster was created with a key this client does not know {creator} by"
                )));
            }
            anchored = true;
        }
        pins.save(&ctx.home)?;
    }
    crate::witnesses::save_policy(ctx, policy.as_ref())?;
    let s = &v.statement;
    ctx.out.emit(
        &json!({"ok": true, "deliverable": s.deliverable, "packet": s.packet, "matter": s.matter,
                "decision": s.decision.as_str(), "reviewer": s.reviewer, "time": crate::when::utc(s.time),
                "rating": s.rating, "reason": s.reason.map(receipt::ReturnReason::as_str),
                "log_index": file.log.index, "files_checked": v.files_checked,
                "roster_anchored": anchored, "witnesses": witnessed,
                "roster_creator": v.creator.0}),
        || {
            let anchor = if anchored {
                String::new()
            } else {
                format!(
                    "  NOTE: this client has no verified copy of matter {}'s roster and no pin of \
                     its creator {}: compare the creator's safety code with them before relying \
                     on the reviewer's role\n",
                    escape(&s.matter, false),
                    escape(&v.creator.0, false)
                )
            };
            anchor
                + &format!(
                    "OK: {} {} deliverable {} of matter {} at {} (audit log entry {}){}\n",
                    s.reviewer,
                    match s.decision {
                        Decision::Approve => "approved",
                        Decision::Return => "returned",
                    },
                    s.deliverable,
                    s.matter,
                    crate::when::utc(s.time),
                    file.log.index,
                    if v.files_checked > 0 {
                        format!(
                            "; the {} files given are exactly the approved ones",
                            v.files_checked
                        )
                    } else {
                        String::new()
                    }
                )
        },
    );
    Ok(())
}
