//! `keys list|verify|forget`: the keys this client has pinned.

use std::fmt::Write as _;

use matterdrop_common::agekey::AgeKey;
use matterdrop_common::keys::{normalize_safety_code, safety_code};
use matterdrop_common::proto::{AgeKeyUpdateRequest, ClientRequest, ServerResponse};
use serde_json::json;

use super::Ctx;
use crate::cli::{KeysCommand, KeysForgetArgs, KeysVerifyArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::output::escape;
use crate::pins::Pins;

/// `mdrop keys …`.
pub async fn keys(ctx: &Ctx, cmd: &KeysCommand) -> CmdResult {
    match cmd {
        KeysCommand::List => list(ctx),
        KeysCommand::Verify(a) => verify(ctx, a),
        KeysCommand::Forget(a) => forget(ctx, a),
        KeysCommand::Audit => audit(ctx).await,
        KeysCommand::Upgrade => upgrade(ctx).await,
    }
}

/// `mdrop keys upgrade`: a hybrid key beside the classic one, registered
/// with the server. Safe to re-run after an interruption: each step is
/// skipped once done.
async fn upgrade(ctx: &Ctx) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let before = identity::age_recipient(&ctx.home)?;
    let (previous, new) = if before.is_post_quantum() {
        let prev = identity::own_age_keys(&ctx.home)?.get(1).cloned();
        (prev, before)
    } else {
        let u = identity::upgrade(&ctx.home)?;
        let new = AgeKey::from_recipient(&u.age_recipient).map_err(Fail::other)?;
        (Some(before), new)
    };
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = async {
        let resp = session.request(&ClientRequest::WhoAmI).await?;
        let ServerResponse::WhoAmI(info) = resp else {
            return Err(unexpected(&resp));
        };
        if info.age_recipient == new.recipient() {
            return Ok((info, false));
        }
        let resp = session
            .request(&ClientRequest::AgeKeyUpdate(AgeKeyUpdateRequest {
                age_recipient: new.recipient().to_owned(),
            }))
            .await?;
        let ServerResponse::WhoAmI(info) = resp else {
            return Err(unexpected(&resp));
        };
        Ok((info, true))
    }
    .await;
    session.close().await;
    let (info, sent) = result?;
    if info.id != server.principal
        || info.signing_key != key.verifying_key().to_bytes()
        || info.age_recipient != new.recipient()
    {
        return Err(Fail::new(
            exit::VERIFY,
            format!(
                "the server did not register this client's new age key for {}",
                server.principal
            ),
        ));
    }
    let code = safety_code(&info.id, &info.signing_key, new.recipient());
    let v = json!({
        "principal": info.id,
        "age_recipient": new.recipient(),
        "age_key_type": new.kind(),
        "age_fingerprint": new.fingerprint(),
        "previous_age_recipient": previous.as_ref().map(AgeKey::recipient),
        "registered": true,
        "already_registered": !sent,
        "safety_code": code,
    });
    ctx.out.emit(&v, || {
        format!(
            "Your age key is now hybrid post-quantum (ML-KEM-768 + X25519), {}.\n\
             The classic key stays in identity.txt, so files encrypted to it remain readable.\n\
             Your new safety code: {code}\n\
             Matters keep your old key until an attorney of each runs\n  \
             mdrop matter rekey MATTER {} --expect-code {code}\n\
             after you read them this code.\n",
            new.fingerprint(),
            escape(&info.id, false),
        )
    });
    Ok(())
}

/// `mdrop keys audit`.
async fn audit(ctx: &Ctx) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let report = crate::keyaudit::run(&ctx.home, &session, &server, &key).await;
    session.close().await;
    let report = report?;
    let v = json!({
        "principal": report.principal,
        "own_registration": report.own_index,
        "earlier_keys": report.earlier.iter().map(|r| json!({
            "index": r.index, "time": r.time, "signing_key": r.signing_key,
        })).collect::<Vec<_>>(),
        "foreign_keys": report.foreign.iter().map(|r| json!({
            "index": r.index, "time": r.time, "signing_key": r.signing_key,
        })).collect::<Vec<_>>(),
        "checked_entries": report.checked,
    });
    ctx.out.emit(&v, || {
        let mut s = format!(
            "{} key registrations under {} in the audit log (each proven included); this client's is entry {}.\n",
            report.checked, report.principal, report.own_index
        );
        for r in &report.earlier {
            let _ = writeln!(
                s,
                "  earlier key (before this client enrolled): {} at entry {}",
                r.signing_key, r.index
            );
        }
        s
    });
    match report.foreign.first() {
        None => Ok(()),
        Some(r) => Err(Fail::new(
            exit::VERIFY,
            format!(
                "a key this client did not create was registered under {} after its own: {} \
                 (audit entry {}); whoever holds it can act as you where clients do not check \
                 rosters",
                report.principal, r.signing_key, r.index
            ),
        )
        .hint("ask the server's admin to revoke it, and tell the attorneys of your matters")),
    }
}

fn list(ctx: &Ctx) -> CmdResult {
    let pins = Pins::load(&ctx.home)?;
    let rows: Vec<_> = pins
        .all()
        .map(|(id, p)| {
            json!({"principal": id, "signing_key_fingerprint": p.signing_key,
                   "age_recipient": p.age, "safety_code": p.safety_code(id)})
        })
        .collect();
    ctx.out.emit(&json!({ "keys": rows }), || {
        let mut s = String::new();
        if rows.is_empty() {
            s.push_str("No keys pinned yet.\n");
        }
        for (id, p) in pins.all() {
            let _ = writeln!(
                s,
                "{:<28} {}  {}",
                escape(id, false),
                p.safety_code(id).unwrap_or_else(|| "(no code yet)".into()),
                p.signing_key
            );
        }
        s
    });
    Ok(())
}

fn verify(ctx: &Ctx, a: &KeysVerifyArgs) -> CmdResult {
    let pins = Pins::load(&ctx.home)?;
    let pin = pins
        .all()
        .find(|(id, _)| *id == a.principal)
        .map(|(_, p)| p.clone())
        .ok_or_else(|| {
            Fail::usage(format!("no keys of {} are pinned here", a.principal))
                .hint("`mdrop matter show` on a matter they belong to pins them")
        })?;
    let code = pin.safety_code(&a.principal).ok_or_else(|| {
        Fail::usage(format!(
            "the pin of {} predates safety codes; `mdrop matter show` on a matter they belong to completes it",
            a.principal
        ))
    })?;
    let given = normalize_safety_code(&a.code);
    let matches = given == code;
    ctx.out.emit(
        &json!({"principal": a.principal, "safety_code": code, "matches": matches}),
        || {
            if matches {
                format!("{}: safety code {code} matches.\n", a.principal)
            } else {
                String::new()
            }
        },
    );
    if matches {
        Ok(())
    } else {
        Err(Fail::new(
            exit::VERIFY,
            format!(
                "{}'s pinned keys have safety code {code}, not {}: they are not the keys this person holds",
                a.principal,
                escape(a.code.trim(), false)
            ),
        ))
    }
}

fn forget(ctx: &Ctx, a: &KeysForgetArgs) -> CmdResult {
    let mut pins = Pins::load(&ctx.home)?;
    if !pins.forget(&a.principal) {
        return Err(Fail::usage(format!(
            "no keys of {} are pinned here",
            a.principal
        )));
    }
    pins.save(&ctx.home)?;
    ctx.out.emit(
        &json!({"principal": a.principal, "forgotten": true}),
        || format!("Forgot the pinned keys of {}.\n", a.principal),
    );
    Ok(())
}
