//! `matter …` and `ack`.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use matterdrop_common::proto::{
    AckSignRequest, ClientRequest, MatterCreateRequest, MatterInfo, MatterMemberRequest, MatterRef,
    MatterSetAckRequest, MatterSetScopeRequest, ServerResponse,
};
use matterdrop_common::sign::AckStatement;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::Ctx;
use crate::cli::{AckArgs, MatterCommand};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

fn read_text(path: &std::path::Path) -> CmdResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Fail::usage(format!("reading {}: {e}", path.display())))
}

/// One request on a fresh session.
pub async fn call(ctx: &Ctx, req: &ClientRequest) -> CmdResult<ServerResponse> {
    let key = identity::signing_key(&ctx.home)?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let resp = session.request(req).await;
    session.close().await;
    resp
}

fn matter_json(m: &MatterInfo) -> serde_json::Value {
    json!({
        "id": m.id,
        "title": m.title,
        "firm": m.firm,
        "scope": m.scope,
        "ack_version": m.ack_version,
        "ack_sha256": hex(&m.ack_sha256),
        "members": m.members.iter().map(|x| json!({
            "principal": x.principal, "role": x.role, "org": x.org,
            "added_at": rfc3339(x.added_at),
            "acked_version": x.acked_version,
            "acknowledged_current": x.role != "provider" || x.acked_version == Some(m.ack_version),
        })).collect::<Vec<_>>(),
        "acknowledgments": m.acks.iter().map(|a| json!({
            "principal": a.principal, "version": a.version,
            "text_sha256": hex(&a.text_sha256), "signed_at": rfc3339(a.signed_at),
        })).collect::<Vec<_>>(),
        "created_by": m.created_by,
        "created_at": rfc3339(m.created_at),
    })
}

fn matter_text(m: &MatterInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Matter {}: {}", m.id, m.title);
    let _ = writeln!(s, "  firm:            {}", m.firm);
    let _ = writeln!(s, "  scope:           {}", m.scope.join(", "));
    let _ = writeln!(
        s,
        "  acknowledgment:  v{} (sha256 {})",
        m.ack_version,
        hex(&m.ack_sha256)
    );
    let _ = writeln!(
        s,
        "  created:         {} by {}",
        rfc3339(m.created_at),
        m.created_by
    );
    let _ = writeln!(s, "  members:");
    for x in &m.members {
        let ack = if x.role == "provider" {
            match x.acked_version {
                Some(v) if v == m.ack_version => format!("acknowledged v{v}"),
                Some(v) => format!("NOT acknowledged (signed v{v}, current v{})", m.ack_version),
                None => "NOT acknowledged".to_owned(),
            }
        } else {
            String::new()
        };
        let _ = writeln!(s, "    {:<28} {:<10} {}", x.principal, x.role, ack);
    }
    if !m.acks.is_empty() {
        let _ = writeln!(s, "  acknowledgments:");
        for a in &m.acks {
            let _ = writeln!(
                s,
                "    {:<28} v{:<3} signed {}",
                a.principal,
                a.version,
                rfc3339(a.signed_at)
            );
        }
    }
    s
}

fn show(ctx: &Ctx, resp: ServerResponse, headline: &str) -> CmdResult {
    match resp {
        ServerResponse::Matter(m) => {
            ctx.out.emit(&matter_json(&m), || {
                format!("{headline}{}", matter_text(&m))
            });
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

/// `mdrop matter …`.
pub async fn matter(ctx: &Ctx, cmd: MatterCommand) -> CmdResult {
    match cmd {
        MatterCommand::Create(a) => {
            let ack_text = read_text(&a.ack_file)?;
            let resp = call(
                ctx,
                &ClientRequest::MatterCreate(MatterCreateRequest {
                    id: a.id,
                    title: a.title,
                    ack_text,
                    scope: a.scope,
                }),
            )
            .await?;
            show(ctx, resp, "Created.\n")
        }
        MatterCommand::Add(a) => {
            let resp = call(
                ctx,
                &ClientRequest::MatterAdd(MatterMemberRequest {
                    matter: a.id,
                    principal: a.principal.clone(),
                    role: Some(a.role.clone()),
                }),
            )
            .await?;
            show(
                ctx,
                resp,
                &format!("Added {} as {}.\n", a.principal, a.role),
            )
        }
        MatterCommand::Remove(a) => {
            let resp = call(
                ctx,
                &ClientRequest::MatterRemove(MatterMemberRequest {
                    matter: a.id,
                    principal: a.principal.clone(),
                    role: None,
                }),
            )
            .await?;
            show(ctx, resp, &format!("Removed {}.\n", a.principal))
        }
        MatterCommand::Show(a) => {
            let resp = call(ctx, &ClientRequest::MatterShow(MatterRef { matter: a.id })).await?;
            show(ctx, resp, "")
        }
        MatterCommand::SetAck(a) => {
            let ack_text = read_text(&a.ack_file)?;
            let resp = call(
                ctx,
                &ClientRequest::MatterSetAck(MatterSetAckRequest {
                    matter: a.id,
                    ack_text,
                }),
            )
            .await?;
            show(
                ctx,
                resp,
                "New acknowledgment version published; providers must sign it again.\n",
            )
        }
        MatterCommand::SetScope(a) => {
            let resp = call(
                ctx,
                &ClientRequest::MatterSetScope(MatterSetScopeRequest {
                    matter: a.id,
                    scope: a.scope,
                }),
            )
            .await?;
            show(ctx, resp, "Scope updated.\n")
        }
        MatterCommand::List => match call(ctx, &ClientRequest::MatterList).await? {
            ServerResponse::Matters(list) => {
                let v = json!({"matters": list.iter().map(|m| json!({
                    "id": m.id, "title": m.title, "role": m.role, "needs_ack": m.needs_ack,
                })).collect::<Vec<_>>()});
                ctx.out.emit(&v, || {
                    let mut s = String::new();
                    if list.is_empty() {
                        s.push_str("You are not a member of any matter.\n");
                    }
                    for m in &list {
                        let flag = if m.needs_ack {
                            "  (acknowledgment required: mdrop ack)"
                        } else {
                            ""
                        };
                        let _ = writeln!(s, "{:<20} {:<10} {}{flag}", m.id, m.role, m.title);
                    }
                    s
                });
                Ok(())
            }
            other => Err(unexpected(&other)),
        },
    }
}

/// `mdrop ack MATTER`.
pub async fn ack(ctx: &Ctx, args: &AckArgs) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = async {
        let text = match session
            .request(&ClientRequest::AckGet(MatterRef {
                matter: args.matter.clone(),
            }))
            .await?
        {
            ServerResponse::AckText(t) => t,
            other => return Err(unexpected(&other)),
        };
        // Check the server sent the text it claims to.
        let sha: [u8; 32] = Sha256::digest(text.text.as_bytes()).into();
        if sha != text.text_sha256 {
            return Err(Fail::new(
                exit::VERIFY,
                "the acknowledgment text does not match its hash",
            ));
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "Confidentiality acknowledgment for matter {} (version {}):\n",
            text.matter, text.version
        );
        let _ = writeln!(err, "{}", text.text.trim_end());
        let _ = writeln!(err, "\nSHA-256: {}", hex(&sha));
        if !args.yes {
            if !std::io::stdin().is_terminal() {
                return Err(Fail::usage(
                    "confirmation needed: run in a terminal or pass --yes",
                ));
            }
            let _ = write!(
                err,
                "Sign this acknowledgment as {}? Type 'yes' to sign: ",
                server.principal
            );
            let _ = err.flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                return Err(Fail::other("not signed"));
            }
        }
        drop(err);
        let signed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let statement = AckStatement {
            matter: text.matter.clone(),
            version: text.version,
            text_sha256: sha,
            principal: server.principal.clone(),
            signed_at,
        };
        let signature = statement
            .sign(&key)
            .map_err(|e| Fail::other(format!("cannot sign: {e}")))?;
        match session
            .request(&ClientRequest::AckSign(AckSignRequest {
                matter: text.matter.clone(),
                version: text.version,
                text_sha256: sha,
                signed_at,
                signature: signature.to_vec(),
            }))
            .await?
        {
            ServerResponse::Acked(a) => Ok(a),
            other => Err(unexpected(&other)),
        }
    }
    .await;
    session.close().await;
    let a = result?;
    ctx.out.emit(
        &json!({"matter": a.matter, "principal": a.principal, "version": a.version,
                "text_sha256": hex(&a.text_sha256), "signed_at": rfc3339(a.signed_at)}),
        || {
            format!(
                "Signed acknowledgment v{} of matter {} as {}.\n",
                a.version, a.matter, a.principal
            )
        },
    );
    Ok(())
}
