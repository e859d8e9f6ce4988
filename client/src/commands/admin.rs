//! `admin org create`, `admin invite [revoke]`, `admin list`, `admin revoke`.

use std::fmt::Write as _;

use matterdrop_common::proto::{
    ClientRequest, Directory, DirectoryKind, InviteCreateRequest, InviteListing,
    InviteRevokeRequest, OrgCreateRequest, OrgKind, ServerResponse,
};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{InviteArgs, InviteCommand, ListArgs, ListWhat, OrgCreateArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail};
use crate::identity;
use crate::output::escape;
use crate::when;

/// `mdrop admin org create`.
pub async fn org_create(ctx: &Ctx, args: &OrgCreateArgs) -> CmdResult {
    let kind: OrgKind = args.kind.parse().map_err(Fail::usage)?;
    matterdrop_common::ids::validate_org(&args.id).map_err(|e| Fail::usage(e.to_string()))?;
    let key = identity::signing_key(&ctx.home)?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let resp = session
        .request(&ClientRequest::OrgCreate(OrgCreateRequest {
            id: args.id.clone(),
            kind,
            recovery_recipient: None,
        }))
        .await;
    session.close().await;
    let org = match resp? {
        ServerResponse::OrgCreated(o) => o,
        other => return Err(unexpected(&other)),
    };
    ctx.out
        .emit(&json!({"id": org.id, "kind": org.kind.as_str()}), || {
            format!("Created {} organization {}\n", org.kind.as_str(), org.id)
        });
    Ok(())
}

/// `mdrop admin invite`.
pub async fn invite(ctx: &Ctx, args: &InviteArgs) -> CmdResult {
    if let Some(InviteCommand::Revoke { token_id }) = &args.command {
        return invite_revoke(ctx, token_id).await;
    }
    if let Some(id) = &args.for_id {
        let org = matterdrop_common::ids::validate_principal(id)
            .map_err(|e| Fail::usage(e.to_string()))?;
        if args.org.as_deref() != Some(org) {
            return Err(Fail::usage(format!(
                "--for {} names organization {}; give --org {} as well",
                escape(id, false),
                escape(org, false),
                escape(org, false)
            )));
        }
    }
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let resp = session
        .request(&ClientRequest::InviteCreate(InviteCreateRequest {
            org: args.org.clone(),
            admin: args.admin,
            ttl_secs: args.ttl.map(|d| d.as_secs()),
            for_id: args.for_id.clone(),
        }))
        .await;
    session.close().await;
    let inv = match resp? {
        ServerResponse::Invite(i) => i,
        other => return Err(unexpected(&other)),
    };
    if inv.org != args.org || inv.for_id != args.for_id || inv.admin != args.admin {
        return Err(Fail::other(
            "the server minted another invite than was asked for (organization, id or admin); \
             revoke it with `mdrop admin list invites` and `mdrop admin invite revoke`",
        ));
    }
    let expires = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(inv.expires_at),
    )
    .to_string();
    let pin = server.fingerprint.as_deref().map_or_else(
        || "--ca server-ca.pem".to_owned(),
        |f| format!("--fingerprint {f}"),
    );
    let id = inv
        .for_id
        .clone()
        .unwrap_or_else(|| format!("NAME@{}", inv.org.as_deref().unwrap_or("ORG")));
    ctx.out.emit(
        &json!({"invite": inv.token, "token_id": inv.token_id, "org": inv.org, "for": inv.for_id,
                "admin": inv.admin, "expires": expires,
                "server": server.server, "fingerprint": server.fingerprint}),
        || {
            // The server's words: escaped.
            let e = |t: &str| escape(t, false);
            format!(
                "Invite {} for {}{} (single use, expires {}):\n  {}\nThe new user runs:\n  mdrop keygen\n  mdrop enroll {} {pin} --invite {} --id {} --name \"Full Name\"\nRevoke it with `mdrop admin invite revoke {}`.\n",
                e(&inv.token_id),
                e(inv.org.as_deref().unwrap_or("(no organization, admin)")),
                inv.for_id.as_deref().map(|f| format!(", only {}", e(f))).unwrap_or_default(),
                when::local(inv.expires_at),
                e(&inv.token),
                server.server,
                e(&inv.token),
                e(&id),
                e(&inv.token_id),
            )
        },
    );
    Ok(())
}

/// `mdrop admin revoke`.
pub async fn revoke(ctx: &Ctx, args: &crate::cli::RevokeArgs) -> CmdResult {
    let resp = super::matter::call(
        ctx,
        &ClientRequest::KeyRevoke(matterdrop_common::proto::KeyRevokeRequest {
            principal: args.principal.clone(),
        }),
    )
    .await?;
    let ServerResponse::Revoked(p) = resp else {
        return Err(unexpected(&resp));
    };
    ctx.out.emit(&json!({"revoked": p.id}), || {
        format!("Revoked the key of {}; it no longer authenticates.\n", p.id)
    });
    Ok(())
}

/// `mdrop admin invite revoke ID`.
async fn invite_revoke(ctx: &Ctx, token_id: &str) -> CmdResult {
    let resp = super::matter::call(
        ctx,
        &ClientRequest::InviteRevoke(InviteRevokeRequest {
            token_id: token_id.to_owned(),
        }),
    )
    .await?;
    let ServerResponse::InviteRevoked(i) = resp else {
        return Err(unexpected(&resp));
    };
    ctx.out.emit(&invite_json(&i), || {
        format!(
            "Revoked invite {}; enrolling with it is refused from now on.\n",
            escape(&i.token_id, false)
        )
    });
    Ok(())
}

fn invite_json(i: &InviteListing) -> Value {
    json!({
        "token_id": i.token_id, "org": i.org, "for": i.for_id, "admin": i.admin,
        "created_at": when::utc(i.created_at), "expires": when::utc(i.expires_at),
        "used_by": i.used_by, "revoked_at": i.revoked_at.map(when::utc),
    })
}

/// An invite's state at `now`.
fn invite_state(i: &InviteListing, now: u64) -> String {
    match (&i.used_by, i.revoked_at) {
        (Some(who), _) => format!("used by {}", escape(who, false)),
        (None, Some(t)) => format!("revoked {}", when::local(t)),
        (None, None) if now >= i.expires_at => format!("expired {}", when::local(i.expires_at)),
        (None, None) => format!("open, expires {}", when::local(i.expires_at)),
    }
}

/// `mdrop admin list orgs|principals|invites`. Names and ids come from
/// other parties (a display name is what its user typed): escaped.
pub async fn list(ctx: &Ctx, args: &ListArgs) -> CmdResult {
    let kind = match args.what {
        ListWhat::Orgs => DirectoryKind::Orgs,
        ListWhat::Principals => DirectoryKind::Principals,
        ListWhat::Invites => DirectoryKind::Invites,
    };
    let resp = super::matter::call(ctx, &ClientRequest::DirectoryList(kind)).await?;
    let ServerResponse::Directory(dir) = resp else {
        return Err(unexpected(&resp));
    };
    let now = when::now();
    let e = |t: &str| escape(t, false);
    let (v, text) = match dir {
        Directory::Orgs(orgs) => {
            let mut t = String::new();
            for o in &orgs {
                let _ = writeln!(
                    t,
                    "{:<24} {:<9} created {}",
                    e(&o.id),
                    o.kind.as_str(),
                    when::local(o.created_at)
                );
            }
            let v = json!({"orgs": orgs.iter().map(|o| json!({
                "id": o.id, "kind": o.kind.as_str(), "created_at": when::utc(o.created_at),
            })).collect::<Vec<_>>()});
            (v, t)
        }
        Directory::Principals(ps) => {
            let mut t = String::new();
            for p in &ps {
                let state = match p.revoked_at {
                    Some(r) => format!("key revoked {}", when::local(r)),
                    None => format!("enrolled {}", when::local(p.enrolled_at)),
                };
                let _ = writeln!(
                    t,
                    "{:<32} {:<28} {}{}",
                    e(&p.id),
                    format!("\"{}\"", e(&p.name)),
                    state,
                    if p.admin { "  admin" } else { "" }
                );
            }
            let v = json!({"principals": ps.iter().map(|p| json!({
                "id": p.id, "name": p.name, "org": p.org, "admin": p.admin,
                "enrolled_at": when::utc(p.enrolled_at), "revoked_at": p.revoked_at.map(when::utc),
            })).collect::<Vec<_>>()});
            (v, t)
        }
        Directory::Invites(is) => {
            let mut t = String::new();
            for i in &is {
                let who = match (&i.for_id, &i.org, i.admin) {
                    (Some(f), _, _) => e(f),
                    (None, Some(o), _) => format!("anyone@{}", e(o)),
                    (None, None, _) => "(admin)".to_owned(),
                };
                let _ = writeln!(
                    t,
                    "{:<13} {:<32} {}{}",
                    e(&i.token_id),
                    who,
                    invite_state(i, now),
                    if i.admin && i.org.is_some() {
                        "  admin"
                    } else {
                        ""
                    }
                );
            }
            let v = json!({"invites": is.iter().map(invite_json).collect::<Vec<_>>()});
            (v, t)
        }
    };
    ctx.out.emit(&v, || {
        if text.is_empty() {
            "None.\n".to_owned()
        } else {
            text.clone()
        }
    });
    Ok(())
}
