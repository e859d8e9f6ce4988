//! `admin org create`, `admin invite`.

use matterdrop_common::proto::{
    ClientRequest, InviteCreateRequest, OrgCreateRequest, OrgKind, ServerResponse,
};
use serde_json::json;

use super::Ctx;
use crate::cli::{InviteArgs, OrgCreateArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail};
use crate::identity;

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
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let resp = session
        .request(&ClientRequest::InviteCreate(InviteCreateRequest {
            org: args.org.clone(),
            admin: args.admin,
            ttl_secs: args.ttl.map(|d| d.as_secs()),
        }))
        .await;
    session.close().await;
    let inv = match resp? {
        ServerResponse::Invite(i) => i,
        other => return Err(unexpected(&other)),
    };
    let expires = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(inv.expires_at),
    )
    .to_string();
    let pin = server.fingerprint.as_deref().map_or_else(
        || "--ca server-ca.pem".to_owned(),
        |f| format!("--fingerprint {f}"),
    );
    ctx.out.emit(
        &json!({"invite": inv.token, "org": inv.org, "admin": inv.admin, "expires": expires,
                "server": server.server, "fingerprint": server.fingerprint}),
        || {
            format!(
                "Invite for {} (single use, expires {expires}):\n  {}\nThe new user runs:\n  mdrop keygen\n  mdrop enroll {} {pin} --invite {} --id NAME@{} --name \"Full Name\"\n",
                inv.org.as_deref().unwrap_or("(no organization, admin)"),
                inv.token,
                server.server,
                inv.token,
                inv.org.as_deref().unwrap_or("ORG"),
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
