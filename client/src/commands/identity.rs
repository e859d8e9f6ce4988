//! `keygen`, `enroll`, `whoami`.

use std::fmt::Write as _;

use base64::Engine as _;
use matterdrop_common::keys::{ed25519_fingerprint, normalize_fingerprint};
use matterdrop_common::proto::{ClientRequest, EnrollRequest, PrincipalInfo, ServerResponse};
use matterdrop_common::tls::ServerPin;
use serde_json::json;

use super::Ctx;
use crate::cli::{EnrollArgs, KeygenArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail};
use crate::home::{ServerFile, files, write_new, write_replace};
use crate::identity;

/// `mdrop keygen`.
pub fn keygen(ctx: &Ctx, args: &KeygenArgs) -> CmdResult {
    let g = identity::generate(&ctx.home, args.passphrase, args.classic)?;
    ctx.out.emit(&json!({
        "home": ctx.home.dir,
        "age_recipient": g.age_recipient.recipient(),
        "age_key_type": g.age_recipient.kind(),
        "age_fingerprint": g.age_recipient.fingerprint(),
        "signing_key_fingerprint": g.signing_key_fingerprint,
        "passphrase": g.passphrase,
        "files": g.files,
    }), || {
        format!(
            "Created keys in {}\n  age key:         {} {} ({})\n  signing key:     {}\n  passphrase:      {}\n",
            ctx.home.dir.display(),
            key_type_text(&g.age_recipient),
            g.age_recipient.fingerprint(),
            g.age_recipient.short(),
            g.signing_key_fingerprint,
            if g.passphrase { "yes" } else { "no (use --passphrase to protect the keys at rest)" }
        )
    });
    Ok(())
}

/// How a key type reads in human output.
pub fn key_type_text(k: &matterdrop_common::agekey::AgeKey) -> &'static str {
    if k.is_post_quantum() {
        "hybrid post-quantum (ML-KEM-768 + X25519)"
    } else {
        "classic X25519 (not post-quantum)"
    }
}

fn info_json(info: &PrincipalInfo, server: &str) -> serde_json::Value {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&info.signing_key).ok();
    json!({
        "id": info.id,
        "name": info.name,
        "org": info.org,
        "org_kind": info.org_kind.map(|k| k.as_str()),
        "admin": info.admin,
        "signing_key_fingerprint": vk.as_ref().map(ed25519_fingerprint),
        "age_recipient": info.age_recipient,
        "age_key_summary": matterdrop_common::agekey::AgeKey::from_recipient(&info.age_recipient)
            .map_or_else(|e| e, |k| format!("{} {} ({})", key_type_text(&k), k.fingerprint(), k.short())),
        "safety_code": matterdrop_common::keys::safety_code(&info.id, &info.signing_key, &info.age_recipient),
        "log_key": info.log_key,
        "log_key_fingerprint": matterdrop_common::tlog::NoteVerifier::from_vkey(&info.log_key)
            .ok()
            .map(|v| ed25519_fingerprint(v.verifying_key())),
        "enrolled_at": humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(info.enrolled_at)).to_string(),
        "server": server,
    })
}

fn info_text(v: &serde_json::Value) -> String {
    let mut s = String::new();
    let get = |k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    for (label, key) in [
        ("principal", "id"),
        ("name", "name"),
        ("organization", "org"),
        ("org kind", "org_kind"),
        ("admin", "admin"),
        ("signing key", "signing_key_fingerprint"),
        ("age key", "age_key_summary"),
        ("safety code", "safety_code"),
        ("audit log key", "log_key"),
        ("log key fp", "log_key_fingerprint"),
        ("enrolled", "enrolled_at"),
        ("server", "server"),
    ] {
        let _ = writeln!(s, "{label:>14}: {}", get(key));
    }
    s
}

/// `mdrop enroll`.
pub async fn enroll(ctx: &Ctx, args: &EnrollArgs) -> CmdResult {
    matterdrop_common::ids::validate_principal(&args.id).map_err(|e| Fail::usage(e.to_string()))?;
    if let Ok(existing) = ctx.home.server() {
        return Err(Fail::other(format!(
            "this home is already enrolled as {} on {}",
            existing.principal, existing.server
        ))
        .hint("use another --home for another identity or server"));
    }
    let key = identity::signing_key(&ctx.home)?;
    let recipient = identity::age_recipient(&ctx.home)?;
    let (pin, ca_pem) = match (&args.fingerprint, &args.ca) {
        (Some(fp), _) => (ServerPin::Fingerprint(normalize_fingerprint(fp)), None),
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Fail::usage(format!("reading CA file {}: {e}", path.display())))?;
            (ServerPin::Ca(pem.clone()), Some(pem))
        }
        (None, None) => return Err(Fail::usage("give --fingerprint or --ca")),
    };
    let session = Session::connect(&args.server, &pin, &key).await?;
    let resp = session
        .request(&ClientRequest::Enroll(EnrollRequest {
            invite: args.invite.trim().to_owned(),
            id: args.id.clone(),
            name: args.name.clone(),
            age_recipient: recipient.to_string(),
        }))
        .await;
    session.close().await;
    let info = match resp? {
        ServerResponse::Enrolled(info) => info,
        other => return Err(unexpected(&other)),
    };
    if info.signing_key != key.verifying_key().to_bytes() {
        return Err(Fail::new(
            4,
            "the server registered a different key than ours",
        ));
    }
    if let Some(pem) = &ca_pem {
        write_new(&ctx.home.path(files::SERVER_CA), pem.as_bytes(), 0o644)?;
    }
    let file = ServerFile {
        server: args.server.clone(),
        fingerprint: match &pin {
            ServerPin::Fingerprint(fp) => Some(fp.clone()),
            ServerPin::Ca(_) => None,
        },
        ca_file: ca_pem.map(|_| files::SERVER_CA.to_owned()),
        principal: info.id.clone(),
        log_key: info.log_key.clone(),
    };
    write_replace(
        &ctx.home.path(files::SERVER),
        &serde_json::to_vec_pretty(&file).map_err(|e| Fail::other(e.to_string()))?,
        0o600,
    )?;
    let v = info_json(&info, &args.server);
    ctx.out.emit(&v, || format!("Enrolled.\n{}", info_text(&v)));
    Ok(())
}

/// `mdrop notify email ADDRESS|--clear`.
pub async fn notify_email(ctx: &Ctx, args: &crate::cli::NotifyEmailArgs) -> CmdResult {
    let address = if args.clear {
        None
    } else {
        let a = args.address.clone().unwrap_or_default();
        if a.len() > 254
            || !a.contains('@')
            || a.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Fail::usage(format!(
                "{}: not an email address",
                crate::output::escape(&a, false)
            )));
        }
        Some(a)
    };
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let resp = session
        .request(&ClientRequest::NotifyEmail(
            matterdrop_common::proto::NotifyEmailRequest { address },
        ))
        .await;
    session.close().await;
    let info = match resp? {
        ServerResponse::NotifyEmail(info) => info,
        other => return Err(unexpected(&other)),
    };
    let done = serde_json::json!({
        "principal": server.principal,
        "address": info.address,
        "sends_email": info.sends_email,
    });
    ctx.out.emit(&done, || {
        let mut s = match &info.address {
            Some(a) => format!(
                "Notifications for {} go to {}.\n",
                server.principal,
                crate::output::escape(a, false)
            ),
            None => format!("No email notifications for {}.\n", server.principal),
        };
        if info.address.is_some() && !info.sends_email {
            s.push_str("Note: this server has no mail relay configured (mdropd serve --smtp); none is sent yet.\n");
        }
        s
    });
    Ok(())
}

/// `mdrop whoami`.
pub async fn whoami(ctx: &Ctx) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let resp = session.request(&ClientRequest::WhoAmI).await;
    session.close().await;
    let info = match resp? {
        ServerResponse::WhoAmI(info) => info,
        other => return Err(unexpected(&other)),
    };
    if info.log_key != server.log_key {
        return Err(Fail::new(
            4,
            format!(
                "the server's audit-log key changed: pinned {}, server now reports {}",
                server.log_key, info.log_key
            ),
        ));
    }
    if info.signing_key != key.verifying_key().to_bytes()
        || info.age_recipient != identity::age_recipient(&ctx.home)?.recipient()
    {
        return Err(Fail::new(
            4,
            format!(
                "the server has other keys for {} than the ones in this home",
                info.id
            ),
        ));
    }
    let v = info_json(&info, &server.server);
    ctx.out.emit(&v, || info_text(&v));
    Ok(())
}

/// Unpadded base64 of raw bytes (for JSON output of keys).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
