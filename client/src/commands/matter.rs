//! `matter …` and `ack`.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use std::str::FromStr as _;

use ed25519_dalek::SigningKey;
use matterdrop_common::keys::{ed25519_fingerprint, normalize_safety_code};
use matterdrop_common::proto::{
    AckSignRequest, ClientRequest, MatterRef, PrincipalRef, ServerResponse,
};
use matterdrop_common::roles::{Role, Task};
use matterdrop_common::roster::{
    AgeKey, Change, Check, Member, MemberKeys, Roster, RosterError, SignedAck, Statement,
};
use matterdrop_common::sign::{self, AckStatement};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::Ctx;
use crate::cli::{AckArgs, MatterCommand};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::identity;
use crate::output::escape;
use crate::pins::Pins;
use crate::roster::{self, Synced};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads acknowledgment text, refusing control characters (but newline and
/// tab) and bidirectional formatting characters: a provider must sign what
/// it sees, and those can hide or reorder a sentence on a terminal.
fn read_text(path: &std::path::Path) -> CmdResult<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::usage(format!("reading {}: {e}", path.display())))?;
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| matterdrop_common::ids::is_unsafe_in_signed_text(c))
    {
        let line = text[..at].matches('\n').count() + 1;
        return Err(Fail::usage(format!(
            "{} line {line}: U+{:04X} is a control or bidirectional character; \
             acknowledgment text may hold only printable text, newlines and tabs{}",
            path.display(),
            u32::from(c),
            if c == '\r' {
                " (convert Windows line endings)"
            } else {
                ""
            }
        )));
    }
    Ok(text)
}

/// One request on a fresh session.
pub async fn call(ctx: &Ctx, req: &ClientRequest) -> CmdResult<ServerResponse> {
    let key = identity::signing_key(&ctx.home)?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let resp = session.request(req).await;
    session.close().await;
    resp
}

use crate::unix_now as now;

/// A refusal by the roster's own rules, found before anything is sent.
fn rule(e: &RosterError) -> Fail {
    Fail::new(exit::DENIED, e.to_string())
}

fn member_json(roster: &Roster, acks: &[SignedAck], id: &str, m: &Member) -> serde_json::Value {
    let acked = roster.has_current_ack(id, acks);
    json!({
        "principal": id,
        "role": m.role.as_str(),
        "safety_code": m.keys.safety_code(id),
        "age_recipient": m.keys.age.recipient(),
        "age_key_type": m.keys.age.kind(),
        "post_quantum": m.keys.age.is_post_quantum(),
        "signing_key_fingerprint": sign::verifying_key_from_bytes(&m.keys.signing_key)
            .ok().as_ref().map(ed25519_fingerprint),
        "since_statement": m.since,
        "acknowledged_current": m.role != Role::Provider || acked,
    })
}

fn roster_json(synced: &Synced) -> serde_json::Value {
    let r = &synced.roster;
    json!({
        "id": r.matter,
        "title": r.title,
        "firm": r.firm,
        "scope": r.scope.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "ack_version": r.ack_version,
        "ack_sha256": hex(&r.ack_sha256),
        "recovery_recipient": r.recovery.as_ref().map(AgeKey::recipient),
        "recovery_fingerprint": r.recovery.as_ref().map(AgeKey::fingerprint),
        "recovery_key_type": r.recovery.as_ref().map(AgeKey::kind),
        "require_pq": r.require_pq,
        "retention_seconds": r.retention,
        "contacts": r.contacts,
        "targets": r.targets.iter().map(|(task, t)| json!({
            "task": task.as_str(), "turnaround_secs": t.turnaround,
            "on_time_percent": f64::from(t.on_time) / 100.0,
            "first_pass_percent": f64::from(t.first_pass) / 100.0,
        })).collect::<Vec<_>>(),
        "legal_hold": r.hold.as_ref().map(|h| json!({
            "by": h.by, "since": crate::when::utc(h.since), "statement": h.seq, "reason": h.reason,
        })),
        "closed": r.closed.as_ref().map(|c| json!({"by": c.by, "at": crate::when::utc(c.at)})),
        "roster": {
            "statements": r.len,
            "head": hex(&r.head),
            "creator": r.creator.0,
            "verified": true,
        },
        "members": r.members.iter().map(|(id, m)| member_json(r, &synced.acks, id, m))
            .collect::<Vec<_>>(),
        "acknowledgments": synced.acks.iter().map(|a| json!({
            "principal": a.principal, "version": a.version,
            "text_sha256": hex(&a.text_sha256), "signed_at": crate::when::utc(a.signed_at),
            "verified": r.ack_verifies(a),
        })).collect::<Vec<_>>(),
    })
}

fn roster_text(synced: &Synced) -> String {
    let r = &synced.roster;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Matter {}: {}",
        escape(&r.matter, false),
        escape(&r.title, false)
    );
    let _ = writeln!(s, "  firm:            {}", r.firm);
    let scope: Vec<&str> = r.scope.iter().map(|t| t.as_str()).collect();
    let _ = writeln!(s, "  scope:           {}", scope.join(", "));
    let _ = writeln!(
        s,
        "  acknowledgment:  v{} (sha256 {})",
        r.ack_version,
        hex(&r.ack_sha256)
    );
    let _ = writeln!(
        s,
        "  recovery:        {}",
        r.recovery.as_ref().map_or_else(
            || "none".to_owned(),
            |a| format!("{} {} ({})", a.kind_label(), a.fingerprint(), a.short())
        )
    );
    let classic = r
        .members
        .values()
        .filter(|m| !m.keys.age.is_post_quantum())
        .count();
    let _ = writeln!(
        s,
        "  encryption:      {}{}",
        if r.require_pq {
            "post-quantum keys required (set-crypto --require-pq)"
        } else {
            "classic keys allowed"
        },
        match classic {
            0 => String::new(),
            n => format!("; {n} member(s) with a classic key, marked below"),
        }
    );
    let _ = writeln!(s, "  retention:       {}", retention_text(r.retention));
    for (org, who) in &r.contacts {
        let _ = writeln!(
            s,
            "  contact:         {} for {}",
            escape(who, false),
            escape(org, false)
        );
    }
    for (task, t) in &r.targets {
        let _ = writeln!(
            s,
            "  target:          {task}: turnaround {}, on time {}, first pass {}",
            retention_text(t.turnaround),
            percent_text(t.on_time),
            percent_text(t.first_pass)
        );
    }
    if let Some(h) = &r.hold {
        let _ = writeln!(
            s,
            "  legal hold:      since {} by {}{} (nothing is deleted)",
            crate::when::local(h.since),
            escape(&h.by, false),
            if h.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&h.reason, false))
            }
        );
    }
    if let Some(c) = &r.closed {
        let _ = writeln!(
            s,
            "  status:          CLOSED on {} by {} (no new work)",
            crate::when::local(c.at),
            escape(&c.by, false)
        );
    }
    let _ = writeln!(
        s,
        "  roster:          {} signed statements, verified by this client (created by {})",
        r.len, r.creator.0
    );
    let _ = writeln!(
        s,
        "  members:                               key      safety code"
    );
    for (id, m) in &r.members {
        let ack = if m.role == Role::Provider {
            if r.has_current_ack(id, &synced.acks) {
                format!("acknowledged v{}", r.ack_version)
            } else {
                "NOT acknowledged".to_owned()
            }
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "    {:<28} {:<10} {:<8} {}  {ack}",
            id,
            m.role.as_str(),
            m.keys.age.kind_label(),
            m.keys.safety_code(id)
        );
    }
    s
}

fn emit_roster(ctx: &Ctx, synced: &Synced, headline: &str) {
    ctx.out.emit(&roster_json(synced), || {
        format!("{headline}{}", roster_text(synced))
    });
}

/// An attorney's session on one matter: its verified roster, ready to
/// extend with a signed statement.
struct Editing {
    key: SigningKey,
    session: Session,
    me: String,
    synced: Synced,
}

impl Editing {
    async fn open(ctx: &Ctx, matter: &str) -> CmdResult<Self> {
        let key = identity::signing_key(&ctx.home)?;
        let (session, server) = Session::open(&ctx.home, &key).await?;
        match roster::sync(&ctx.home, &session, matter).await {
            Ok(synced) => Ok(Self {
                key,
                session,
                me: server.principal,
                synced,
            }),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    /// Signs `change` as the roster's next statement, checks it against the
    /// roster's rules here first, and sends it.
    async fn sign(&mut self, ctx: &Ctx, change: Change, ack_text: Option<String>) -> CmdResult<()> {
        let r = &self.synced.roster;
        let my_key = self.key.verifying_key().to_bytes();
        r.may_sign(&self.me, &my_key)
            .map_err(|why| Fail::new(exit::DENIED, why))?;
        let statement = Statement {
            matter: r.matter.clone(),
            seq: r.len,
            prev: Some(r.head),
            time: now().max(r.time),
            signer: self.me.clone(),
            signer_key: self.key.verifying_key().to_bytes(),
            change,
        };
        let entry = statement.sign(&self.key).map_err(|e| rule(&e))?;
        r.clone()
            .apply(&entry, Check::Signatures)
            .map_err(|e| rule(&e))?;
        let matter = r.matter.clone();
        self.synced = roster::append(&ctx.home, &self.session, &matter, entry, ack_text).await?;
        Ok(())
    }

    async fn close(self) -> Synced {
        self.session.close().await;
        self.synced
    }
}

/// What a change does, for the confirmation, given the roster it extends.
type Describe<'a> = dyn Fn(&Roster) -> String + 'a;

/// Signs one `change` to matter `id` (after showing what it does and
/// asking, unless `--yes`, when `ask` is given), then shows the roster
/// under `headline`.
async fn sign_one(
    ctx: &Ctx,
    id: &str,
    change: Change,
    ask: Option<(bool, &Describe<'_>)>,
    headline: &str,
) -> CmdResult {
    let synced = edit(ctx, id, async |e: &mut Editing| {
        if let Some((yes, what)) = ask {
            confirm(yes, &what(&e.synced.roster))?;
        }
        e.sign(ctx, change.clone(), None).await
    })
    .await?;
    emit_roster(ctx, &synced, headline);
    Ok(())
}

/// Runs `f` on an open [`Editing`], closing its session either way.
async fn edit<F>(ctx: &Ctx, matter: &str, f: F) -> CmdResult<Synced>
where
    F: AsyncFnOnce(&mut Editing) -> CmdResult<()>,
{
    let mut e = Editing::open(ctx, matter).await?;
    let result = f(&mut e).await;
    let synced = e.close().await;
    result.map(|()| synced)
}

/// Looks up `principal`'s enrolled keys, shows their safety code and has
/// the attorney confirm it (`expect` for scripts). A key that differs from
/// the one this client pinned for `principal` is refused.
async fn vouch(
    ctx: &Ctx,
    session: &Session,
    principal: &str,
    expect: Option<&str>,
    rekey: bool,
) -> CmdResult<MemberKeys> {
    let resp = session
        .request(&ClientRequest::PrincipalKeys(PrincipalRef {
            id: principal.to_owned(),
        }))
        .await?;
    let ServerResponse::PrincipalKeys(p) = resp else {
        return Err(unexpected(&resp));
    };
    if p.id != principal {
        return Err(Fail::new(
            exit::VERIFY,
            format!(
                "asked for {principal}'s keys, the server answered for {}",
                p.id
            ),
        ));
    }
    let keys = MemberKeys {
        signing_key: p.signing_key,
        age: AgeKey::from_recipient(&p.age_recipient).map_err(|e| Fail::new(exit::VERIFY, e))?,
    };
    sign::verifying_key_from_bytes(&keys.signing_key)
        .map_err(|e| Fail::new(exit::VERIFY, format!("{principal}'s signing key: {e}")))?;
    let code = keys.safety_code(principal);
    let pins = Pins::load(&ctx.home)?;
    let fp = ed25519_fingerprint(
        &sign::verifying_key_from_bytes(&keys.signing_key)
            .map_err(|e| Fail::new(exit::VERIFY, e.to_string()))?,
    );
    if let Some(pin) = pins.get(principal).filter(|_| !rekey) {
        if pin.signing_key == fp
            && pin
                .age
                .as_deref()
                .is_some_and(|a| a != keys.age.recipient())
        {
            // Same person (signing key), a new age key (`keys upgrade`):
            // the safety code asked for below covers it.
            eprintln!(
                "note: {principal} has a new age key ({} {}) since this client pinned them; \
                 the safety code below covers it",
                keys.age.kind_label(),
                keys.age.fingerprint()
            );
        } else if pin.signing_key != fp {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the server offers {principal} with keys {fp} ({}), but this client knows \
                     {principal} by {} ({})",
                    keys.age.recipient(),
                    pin.signing_key,
                    pin.age.as_deref().unwrap_or("-")
                ),
            )
            .hint("if they really have a new key, compare its safety code with them and use `mdrop matter rekey`"));
        }
    }
    match expect {
        Some(expected) => {
            if normalize_safety_code(expected) != code {
                return Err(Fail::new(
                    exit::VERIFY,
                    format!(
                        "{principal}'s safety code is {code}, not {}: the keys the server \
                         offers are not the ones {principal} has; nothing was signed",
                        escape(expected.trim(), false)
                    ),
                ));
            }
        }
        None => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "{principal} ({}): safety code {code}",
                escape(&p.name, false)
            );
            if !std::io::stdin().is_terminal() {
                return Err(Fail::usage(format!(
                    "confirmation needed: compare the safety code with {principal}, then pass \
                     --expect-code CODE (or run in a terminal)"
                )));
            }
            let _ = write!(
                err,
                "Ask {principal} to read the safety code `mdrop whoami` shows them. \
                 Type 'yes' if it is {code}: "
            );
            let _ = err.flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                return Err(Fail::other("not confirmed; nothing was signed"));
            }
        }
    }
    Ok(keys)
}

/// Shows `what` and asks for `yes` on the terminal, unless `yes` was given.
fn confirm(yes: bool, what: &str) -> CmdResult {
    crate::output::confirm(
        yes,
        what,
        "Sign this change?",
        "not confirmed; nothing was signed",
    )
}

/// How long a role definition may go unreviewed before `matter show`
/// flags it.
pub const ROLE_REVIEW_DAYS: u64 = 90;

/// Days since the role definition was last set or reviewed, when more than
/// [`ROLE_REVIEW_DAYS`].
pub fn role_review_overdue(reviewed: u64, now: u64) -> Option<u64> {
    let days = now.saturating_sub(reviewed) / 86_400;
    (days > ROLE_REVIEW_DAYS).then_some(days)
}

fn sign_off_text(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        "none".into()
    } else {
        tasks
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The role definition text the server sent, checked against the one the
/// signed roster names (exit 4 if it is another text, or withheld).
pub(crate) fn verified_role_text(
    roster: &Roster,
    sent: Option<&matterdrop_common::proto::RoleText>,
) -> CmdResult<Option<String>> {
    match (&roster.role_def, sent) {
        (None, None) => Ok(None),
        (Some(def), Some(t))
            if t.version == def.version
                && <[u8; 32]>::from(Sha256::digest(t.text.as_bytes())) == def.sha256 =>
        {
            Ok(Some(t.text.clone()))
        }
        (Some(def), _) => Err(Fail::new(
            exit::VERIFY,
            format!(
                "the server did not send role definition v{} of matter {} as its signed roster \
                 names it (withheld or altered)",
                def.version,
                escape(&roster.matter, false)
            ),
        )),
        (None, Some(_)) => Err(Fail::new(
            exit::VERIFY,
            format!(
                "the server sent a role definition for matter {}, whose signed roster has none",
                escape(&roster.matter, false)
            ),
        )),
    }
}

/// The role definition, for `matter show` and `ack`.
fn role_text_block(roster: &Roster, text: &str, now: u64) -> String {
    let mut s = String::new();
    let Some(def) = &roster.role_def else {
        return s;
    };
    let _ = writeln!(
        s,
        "Role definition v{} (last reviewed {} by {}):",
        def.version,
        crate::when::local(def.reviewed),
        escape(&def.reviewed_by, false)
    );
    for line in text.trim_end().lines() {
        let _ = writeln!(s, "  {}", escape(line, false));
    }
    let _ = writeln!(
        s,
        "  Needs attorney sign-off: {}",
        sign_off_text(&def.sign_off)
    );
    if let Some(days) = role_review_overdue(def.reviewed, now) {
        let _ = writeln!(
            s,
            "  REVIEW DUE: not reviewed for {days} days (over {ROLE_REVIEW_DAYS}); an attorney runs \
             `mdrop matter review-role {}`",
            escape(&roster.matter, false)
        );
    }
    s
}

/// A percentage on the command line (`95%`, `99.5%`), in basis points.
fn parse_percent(flag: &str, s: &str) -> CmdResult<u16> {
    let bad = || {
        Fail::usage(format!(
            "{flag} {s:?}: give a percentage from 0% to 100%, such as 95%"
        ))
    };
    let v = s.trim().strip_suffix('%').ok_or_else(bad)?.trim();
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !format!("{whole}{frac}").bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = whole.saturating_mul(100).saturating_add(frac);
    u16::try_from(bp)
        .ok()
        .filter(|b| *b <= 10_000)
        .ok_or_else(bad)
}

/// Basis points for people: `95 %`, `99.5 %`.
pub(crate) fn percent_text(bp: u16) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    match frac {
        0 => format!("{whole} %"),
        f if f % 10 == 0 => format!("{whole}.{} %", f / 10),
        f => format!("{whole}.{f:02} %"),
    }
}

/// A retention on the command line: a duration (`90d`, `2y`) or `none`.
fn parse_retention(s: &str) -> CmdResult<u64> {
    let t = s.trim();
    if t == "none" {
        return Ok(0);
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        Fail::usage(format!(
            "retention {t:?}: {e} (give a duration such as 90d, 12w or 2y, or none)"
        ))
    })?;
    if d.as_secs() == 0 {
        return Err(Fail::usage(
            "a retention must be at least one second; use none to keep files",
        ));
    }
    if d.as_secs() > matterdrop_common::roster::MAX_RETENTION {
        return Err(Fail::usage("a retention is at most 100 years"));
    }
    Ok(d.as_secs())
}

/// A retention for people: `90 days`, `36 hours`, `none`.
pub(crate) fn retention_text(seconds: u64) -> String {
    if seconds == 0 {
        return "none (kept until changed)".into();
    }
    let parts = [
        (seconds / 86_400, "day"),
        (seconds % 86_400 / 3_600, "hour"),
        (seconds % 3_600 / 60, "minute"),
        (seconds % 60, "second"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_scope(names: &[String]) -> CmdResult<Vec<Task>> {
    names
        .iter()
        .map(|n| Task::from_str(n.trim()).map_err(|e| Fail::usage(e.to_string())))
        .collect()
}

fn parse_role(name: &str) -> CmdResult<Role> {
    Role::from_str(name).map_err(|e| Fail::usage(e.to_string()))
}

/// `mdrop matter …`.
pub async fn matter(ctx: &Ctx, cmd: MatterCommand) -> CmdResult {
    match cmd {
        MatterCommand::Create(a) => create(ctx, a).await,
        MatterCommand::Add(a) => {
            let role = parse_role(&a.role)?;
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let change = match e.synced.roster.members.get(&a.principal) {
                    Some(m) if m.role == role => {
                        return Err(Fail::new(
                            exit::DENIED,
                            format!(
                                "{} is already {} of matter {}",
                                a.principal,
                                role.with_article(),
                                a.id
                            ),
                        ));
                    }
                    Some(_) => Change::SetRole {
                        member: a.principal.clone(),
                        role,
                    },
                    None => {
                        // The rules that need no keys, before anyone is asked
                        // to compare a code.
                        let r = &e.synced.roster;
                        r.may_sign(&e.me, &e.key.verifying_key().to_bytes())
                            .and_then(|()| r.check_new_member(&a.principal, role))
                            .map_err(|why| Fail::new(exit::DENIED, why))?;
                        Change::Add {
                            member: a.principal.clone(),
                            role,
                            keys: vouch(
                                ctx,
                                &e.session,
                                &a.principal,
                                a.expect_code.as_deref(),
                                false,
                            )
                            .await?,
                        }
                    }
                };
                e.sign(ctx, change, None).await
            })
            .await?;
            emit_roster(
                ctx,
                &synced,
                &format!(
                    "{} is now {} of the matter.\n",
                    a.principal,
                    role.with_article()
                ),
            );
            Ok(())
        }
        MatterCommand::Rekey(a) => {
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                if !e.synced.roster.members.contains_key(&a.principal) {
                    return Err(Fail::new(
                        exit::DENIED,
                        format!("{} is not a member of matter {}", a.principal, a.id),
                    ));
                }
                // The new keys are vouched for by their safety code alone
                // (the pin is of the old keys, which is why this is a
                // rekey); once signed, the roster moves the pin along.
                let keys = vouch(
                    ctx,
                    &e.session,
                    &a.principal,
                    a.expect_code.as_deref(),
                    true,
                )
                .await?;
                e.sign(
                    ctx,
                    Change::Rekey {
                        member: a.principal.clone(),
                        keys,
                    },
                    None,
                )
                .await
            })
            .await?;
            emit_roster(
                ctx,
                &synced,
                &format!("{} has new keys on the matter.\n", a.principal),
            );
            Ok(())
        }
        MatterCommand::Remove(a) => {
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                e.sign(
                    ctx,
                    Change::Remove {
                        member: a.principal.clone(),
                    },
                    None,
                )
                .await
            })
            .await?;
            emit_roster(ctx, &synced, &format!("Removed {}.\n", a.principal));
            Ok(())
        }
        MatterCommand::Show(a) => {
            let (synced, info) = show_and_sync(ctx, &a.id).await?;
            // What the server says about keys is only a warning: it can
            // withhold, not add.
            let stale: Vec<&str> = info
                .members
                .iter()
                .filter(|m| !m.key_current && synced.roster.members.contains_key(&m.principal))
                .map(|m| m.principal.as_str())
                .collect();
            let destroyed = destructions(&synced, &info)?;
            let role = verified_role_text(&synced.roster, info.role_text.as_ref())?;
            let mut v = roster_json(&synced);
            if let (Some(def), Some(text)) = (&synced.roster.role_def, &role) {
                v["role_definition"] = json!({
                    "version": def.version,
                    "text": text,
                    "sign_off": def.sign_off.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                    "reviewed": crate::when::utc(def.reviewed),
                    "reviewed_by": def.reviewed_by,
                    "review_overdue_days": role_review_overdue(def.reviewed, crate::unix_now()),
                });
            }
            if let Some(members) = v["members"].as_array_mut() {
                for m in members {
                    let id = m["principal"].as_str().unwrap_or_default().to_owned();
                    m["key_revoked"] = json!(stale.contains(&id.as_str()));
                }
            }
            v["destructions"] = json!(
                destroyed
                    .iter()
                    .map(|(d, index)| json!({
                        "principal": d.principal, "time": crate::when::utc(d.time),
                        "packets": d.packets, "deleted": d.deleted, "missing": d.missing,
                        "kept": d.kept, "caches": d.caches, "log_index": index,
                    }))
                    .collect::<Vec<_>>()
            );
            ctx.out.emit(&v, || {
                let mut s = roster_text(&synced);
                if let Some(text) = &role {
                    s.push_str(&role_text_block(&synced.roster, text, crate::unix_now()));
                }
                for id in &stale {
                    let _ = writeln!(
                        s,
                        "  {id}: the server reports this key revoked or replaced; an attorney \
                         should `matter remove` or `matter rekey` them (until then pushes refuse)"
                    );
                }
                if !destroyed.is_empty() {
                    s.push_str("Destruction attestations (signed by each member):\n");
                }
                for (d, index) in &destroyed {
                    let _ = writeln!(
                        s,
                        "  {} {}: {} packets, {} files deleted, {} already gone, {} kept (log entry {index})",
                        crate::when::local(d.time),
                        escape(&d.principal, false),
                        d.packets.len(),
                        d.deleted,
                        d.missing,
                        d.kept
                    );
                }
                s
            });
            Ok(())
        }
        MatterCommand::SetAck(a) => {
            let ack_text = read_text(&a.ack_file)?;
            let sha: [u8; 32] = Sha256::digest(ack_text.as_bytes()).into();
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let version = e.synced.roster.ack_version + 1;
                e.sign(
                    ctx,
                    Change::SetAck {
                        version,
                        sha256: sha,
                    },
                    Some(ack_text.clone()),
                )
                .await
            })
            .await?;
            emit_roster(
                ctx,
                &synced,
                "New acknowledgment version published; providers must sign it again.\n",
            );
            Ok(())
        }
        MatterCommand::SetScope(a) => {
            let scope = parse_scope(&a.scope)?;
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                e.sign(
                    ctx,
                    Change::SetScope {
                        scope: scope.clone(),
                    },
                    None,
                )
                .await
            })
            .await?;
            emit_roster(ctx, &synced, "Scope updated.\n");
            Ok(())
        }
        MatterCommand::SetRecovery(a) => {
            let recovery = match a.recipient.trim() {
                "none" => None,
                r => Some(AgeKey::from_recipient(r).map_err(Fail::usage)?),
            };
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                e.sign(
                    ctx,
                    Change::SetRecovery {
                        recovery: recovery.clone(),
                    },
                    None,
                )
                .await
            })
            .await?;
            emit_roster(ctx, &synced, "Recovery recipient updated.\n");
            Ok(())
        }
        MatterCommand::SetCrypto(a) => {
            let require_pq = a.require_pq;
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let r = &e.synced.roster;
                let classic: Vec<String> = r
                    .members
                    .iter()
                    .filter(|(_, m)| !m.keys.age.is_post_quantum())
                    .map(|(id, _)| escape(id, false))
                    .chain(
                        r.recovery
                            .iter()
                            .filter(|k| !k.is_post_quantum())
                            .map(|_| "the recovery recipient".to_owned()),
                    )
                    .collect();
                let what = if require_pq {
                    format!(
                        "Matter {} will require hybrid post-quantum age keys: members, rekeys and \
                         recovery recipients with a classic key are refused, and so are pushes \
                         while a reader has only a classic key.{}",
                        escape(&r.matter, false),
                        if classic.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "\nPushes are refused until these have hybrid keys: {}",
                                classic.join(", ")
                            )
                        }
                    )
                } else {
                    format!(
                        "Matter {} will allow classic X25519 keys again: files may then be \
                         encrypted to keys a quantum computer could break.",
                        escape(&r.matter, false)
                    )
                };
                confirm(a.yes, &what)?;
                e.sign(ctx, Change::SetCrypto { require_pq }, None).await
            })
            .await?;
            emit_roster(
                ctx,
                &synced,
                if require_pq {
                    "Post-quantum keys are now required.\n"
                } else {
                    "Classic keys are allowed again.\n"
                },
            );
            Ok(())
        }
        MatterCommand::SetRetention(a) => {
            let seconds = parse_retention(&a.retention)?;
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let r = &e.synced.roster;
                let what = if seconds == 0 {
                    format!(
                        "Matter {}: the server will keep every file until the retention changes.",
                        escape(&r.matter, false)
                    )
                } else {
                    format!(
                        "Matter {}: the server will delete each packet's and deliverable's files {} \
                         after its upload{}. Files already older are deleted at the server's next \
                         sweep; nobody can read them after that.",
                        escape(&r.matter, false),
                        retention_text(seconds),
                        if r.hold.is_some() {
                            " once the legal hold on the matter is released"
                        } else {
                            ", unless a legal hold applies"
                        }
                    )
                };
                confirm(a.yes, &what)?;
                e.sign(ctx, Change::SetRetention { seconds }, None).await
            })
            .await?;
            emit_roster(ctx, &synced, "Retention updated.\n");
            Ok(())
        }
        MatterCommand::Hold(a) => {
            matterdrop_common::roster::check_reason(&a.reason).map_err(Fail::usage)?;
            let change = Change::Hold {
                reason: a.reason.clone(),
            };
            sign_one(
                ctx,
                &a.id,
                change,
                None,
                "Legal hold placed: nothing of this matter is deleted until it is released.\n",
            )
            .await
        }
        MatterCommand::Release(a) => {
            let what = |r: &Roster| {
                format!(
                    "Matter {} leaves legal hold: {}and members may purge their copies.",
                    escape(&r.matter, false),
                    if r.retention == 0 {
                        String::new()
                    } else {
                        format!(
                            "files older than its retention ({}) are deleted at the server's next sweep, ",
                            retention_text(r.retention)
                        )
                    }
                )
            };
            sign_one(
                ctx,
                &a.id,
                Change::Release,
                Some((a.yes, &what)),
                "Legal hold released.\n",
            )
            .await
        }
        MatterCommand::Close(a) => {
            let what = |r: &Roster| {
                format!(
                    "Matter {} will take no new packets, deliverables, shares or members until an \
                     attorney reopens it; its files stay readable until their retention runs out.",
                    escape(&r.matter, false)
                )
            };
            sign_one(
                ctx,
                &a.id,
                Change::Close,
                Some((a.yes, &what)),
                "Matter closed.\n",
            )
            .await
        }
        MatterCommand::Reopen(a) => {
            let what = |r: &Roster| {
                format!(
                    "Matter {} will take new work again.",
                    escape(&r.matter, false)
                )
            };
            sign_one(
                ctx,
                &a.id,
                Change::Reopen,
                Some((a.yes, &what)),
                "Matter reopened.\n",
            )
            .await
        }
        MatterCommand::SetRole(a) => {
            let text = read_text(&a.file)?;
            let sha256: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            let sign_off = parse_scope(&a.sign_off)?;
            matterdrop_common::roster::check_sign_off(&sign_off).map_err(Fail::usage)?;
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let version = e.synced.roster.role_def.as_ref().map_or(0, |r| r.version) + 1;
                let what = format!(
                    "Role definition v{version} for matter {}:\n\n{}\n\nNeeds attorney sign-off: {}",
                    escape(&e.synced.roster.matter, false),
                    escape(text.trim_end(), true),
                    sign_off_text(&sign_off)
                );
                confirm(a.yes, &what)?;
                e.sign(
                    ctx,
                    Change::SetRoleDef {
                        version,
                        sha256,
                        sign_off: sign_off.clone(),
                    },
                    Some(text.clone()),
                )
                .await
            })
            .await?;
            emit_roster(
                ctx,
                &synced,
                "Role definition published; providers see it in `ack` and `matter show`.\n",
            );
            Ok(())
        }
        MatterCommand::ReviewRole(a) => {
            let synced = edit(ctx, &a.id, async |e: &mut Editing| {
                let version = e
                    .synced
                    .roster
                    .role_def
                    .as_ref()
                    .map(|r| r.version)
                    .ok_or_else(|| {
                        Fail::new(
                            exit::DENIED,
                            format!(
                                "matter {} has no role definition to review (set one with `mdrop matter set-role`)",
                                escape(&a.id, false)
                            ),
                        )
                    })?;
                e.sign(ctx, Change::ReviewRoleDef { version }, None).await
            })
            .await?;
            emit_roster(ctx, &synced, "Role definition reviewed.\n");
            Ok(())
        }
        MatterCommand::Contact(a) => {
            matterdrop_common::ids::validate_principal(&a.principal)
                .map_err(|e| Fail::usage(e.to_string()))?;
            let change = Change::SetContact {
                member: a.principal.clone(),
            };
            sign_one(ctx, &a.id, change, None, "Point of contact set.\n").await
        }
        MatterCommand::SetTarget(a) => {
            let task = Task::from_str(a.task.trim()).map_err(|e| Fail::usage(e.to_string()))?;
            let turnaround = humantime::parse_duration(a.turnaround.trim())
                .map_err(|e| {
                    Fail::usage(format!(
                        "--turnaround {:?}: {e} (a duration such as 24h or 3d)",
                        a.turnaround
                    ))
                })?
                .as_secs();
            if turnaround == 0 || turnaround > matterdrop_common::roster::MAX_TURNAROUND {
                return Err(Fail::usage("a turnaround target is 1 second to 365 days"));
            }
            let target = matterdrop_common::roster::Target {
                turnaround,
                on_time: parse_percent("--on-time", &a.on_time)?,
                first_pass: parse_percent("--first-pass", &a.first_pass)?,
            };
            sign_one(
                ctx,
                &a.id,
                Change::SetTarget { task, target },
                None,
                "Targets set.\n",
            )
            .await
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
                        let _ = writeln!(
                            s,
                            "{:<20} {:<10} {}{flag}",
                            escape(&m.id, false),
                            m.role,
                            escape(&m.title, false)
                        );
                    }
                    s
                });
                Ok(())
            }
            other => Err(unexpected(&other)),
        },
    }
}

/// `mdrop matter create`: the roster's first statement, signed here.
async fn create(ctx: &Ctx, a: crate::cli::MatterCreateArgs) -> CmdResult {
    let ack_text = read_text(&a.ack_file)?;
    let scope = parse_scope(&a.scope)?;
    let recovery = a
        .recovery_recipient
        .as_deref()
        .map(|r| AgeKey::from_recipient(r.trim()).map_err(Fail::usage))
        .transpose()?;
    let age = identity::age_recipient(&ctx.home)?;
    let key = identity::signing_key(&ctx.home)?;
    let server = ctx.home.server()?;
    let firm = matterdrop_common::ids::validate_principal(&server.principal)
        .map_err(|e| Fail::other(e.to_string()))?
        .to_owned();
    let statement = Statement {
        matter: a.id.clone(),
        seq: 0,
        prev: None,
        time: now(),
        signer: server.principal.clone(),
        signer_key: key.verifying_key().to_bytes(),
        change: Change::Create {
            title: a.title.trim().to_owned(),
            firm,
            scope,
            ack_sha256: Sha256::digest(ack_text.as_bytes()).into(),
            recovery,
            age,
        },
    };
    let entry = statement.sign(&key).map_err(|e| rule(&e))?;
    Roster::genesis(&entry, Check::Signatures).map_err(|e| rule(&e))?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let synced = roster::append(&ctx.home, &session, &a.id, entry, Some(ack_text)).await;
    session.close().await;
    let synced = synced?;
    let me = &synced.roster.creator;
    emit_roster(
        ctx,
        &synced,
        &format!(
            "Created. You are its attorney; your safety code is {}.\n",
            matterdrop_common::keys::safety_code(
                &me.0,
                &me.1,
                identity::age_recipient(&ctx.home)?.recipient()
            )
        ),
    );
    Ok(())
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
        // Check the server sent the text it claims to, and that it is the
        // version the matter's attorneys signed into its roster.
        let sha: [u8; 32] = Sha256::digest(text.text.as_bytes()).into();
        if sha != text.text_sha256 {
            return Err(Fail::new(
                exit::VERIFY,
                "the acknowledgment text does not match its hash",
            ));
        }
        if text.matter != args.matter {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "asked for the acknowledgment of matter {}, the server sent matter {}'s; nothing was signed",
                    args.matter,
                    escape(&text.matter, false)
                ),
            ));
        }
        let synced = roster::sync(&ctx.home, &session, &args.matter).await?;
        if text.version != synced.roster.ack_version || sha != synced.roster.ack_sha256 {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the server offers acknowledgment v{} of matter {}, but the matter's signed \
                     roster is at v{} with another text; nothing was signed",
                    text.version, args.matter, synced.roster.ack_version
                ),
            ));
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "Confidentiality acknowledgment for matter {} (version {}):\n",
            text.matter, text.version
        );
        let _ = writeln!(err, "{}", escape(text.text.trim_end(), true));
        let _ = writeln!(err, "\nSHA-256: {}", hex(&sha));
        // The provider's role definition, for reading: it is not part of
        // what is signed (a new version needs no new acknowledgment).
        // A role definition signed between the two answers: ask again.
        let stale = match (&synced.roster.role_def, &text.role_text) {
            (Some(def), Some(t)) => t.version < def.version,
            (Some(_), None) => true,
            _ => false,
        };
        let role_sent = if stale {
            match session
                .request(&ClientRequest::AckGet(MatterRef {
                    matter: args.matter.clone(),
                }))
                .await?
            {
                ServerResponse::AckText(t) => t.role_text,
                other => return Err(unexpected(&other)),
            }
        } else {
            text.role_text.clone()
        };
        if let Some(role) = verified_role_text(&synced.roster, role_sent.as_ref())? {
            let _ = writeln!(
                err,
                "\n{}",
                role_text_block(&synced.roster, &role, crate::unix_now())
            );
        }
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
                "text_sha256": hex(&a.text_sha256), "signed_at": crate::when::utc(a.signed_at)}),
        || {
            format!(
                "Signed acknowledgment v{} of matter {} as {}.\n",
                a.version, a.matter, a.principal
            )
        },
    );
    Ok(())
}

/// The server's `matter show` answer and the roster this client verified:
/// the answer decides access (and is logged); what is shown comes from the
/// roster.
async fn show_and_sync(
    ctx: &Ctx,
    matter: &str,
) -> CmdResult<(Synced, matterdrop_common::proto::MatterInfo)> {
    let key = identity::signing_key(&ctx.home)?;
    let (session, _) = Session::open(&ctx.home, &key).await?;
    let synced = async {
        let resp = session
            .request(&ClientRequest::MatterShow(MatterRef {
                matter: matter.to_owned(),
            }))
            .await?;
        let ServerResponse::Matter(info) = resp else {
            return Err(unexpected(&resp));
        };
        let synced = roster::sync(&ctx.home, &session, matter).await?;
        // A roster that moved on between the two answers (a new role
        // definition signed meanwhile): ask again, once.
        let stale = match (&synced.roster.role_def, &info.role_text) {
            (Some(def), Some(t)) => t.version < def.version,
            (Some(_), None) => true,
            _ => false,
        };
        if stale {
            let resp = session
                .request(&ClientRequest::MatterShow(MatterRef {
                    matter: matter.to_owned(),
                }))
                .await?;
            let ServerResponse::Matter(info) = resp else {
                return Err(unexpected(&resp));
            };
            return Ok((synced, info));
        }
        Ok((synced, info))
    }
    .await;
    session.close().await;
    synced
}

/// A matter's destruction attestations, each checked against the roster
/// this client verified (`report turnaround --matter`).
pub(crate) async fn verified_destructions(
    ctx: &Ctx,
    matter: &str,
) -> CmdResult<Vec<(matterdrop_common::custody::DestructionStatement, u64)>> {
    let (synced, info) = show_and_sync(ctx, matter).await?;
    destructions(&synced, &info)
}

/// The matter's destruction attestations, each checked: a statement for
/// this matter, signed with a key the signed roster ever gave its member.
/// One that does not check refuses the listing (exit 4): the server
/// forged or altered it.
fn destructions(
    synced: &Synced,
    info: &matterdrop_common::proto::MatterInfo,
) -> CmdResult<Vec<(matterdrop_common::custody::DestructionStatement, u64)>> {
    let mut out = Vec::new();
    for d in &info.destructions {
        let st = matterdrop_common::custody::DestructionStatement::parse(&d.signed)
            .map_err(|e| Fail::new(exit::VERIFY, e.to_string()))?;
        let known = synced
            .roster
            .ever_signing_keys(&st.principal)
            .any(|k| *k == d.signing_key);
        let verifies = ed25519_dalek::VerifyingKey::from_bytes(&d.signing_key)
            .ok()
            .is_some_and(|k| sign::verify(&k, &d.signed, &d.signature).is_ok());
        // The roster's matter, not the server's word for which it is.
        if st.matter != synced.roster.matter || !known || !verifies {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the destruction attestation at log entry {} is not {}'s signed statement for matter {} (forged or altered on the server)",
                    d.index,
                    escape(&st.principal, false),
                    escape(&synced.roster.matter, false)
                ),
            ));
        }
        out.push((st, d.index));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_definition_is_flagged_after_ninety_days_without_review() {
        let day = 86_400;
        assert_eq!(role_review_overdue(1_000, 1_000 + 90 * day), None);
        assert_eq!(role_review_overdue(1_000, 1_000 + 91 * day), Some(91));
        // A review dated ahead of this clock is not overdue.
        assert_eq!(role_review_overdue(5_000, 1_000), None);
    }

    #[test]
    fn retention_durations_parse_and_print() {
        assert_eq!(parse_retention("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_retention("none").unwrap(), 0);
        assert!(parse_retention("90").is_err());
        assert!(parse_retention("0s").is_err());
        assert!(parse_retention("101y").is_err());
        assert_eq!(retention_text(90 * 86_400), "90 days");
        assert_eq!(retention_text(86_400 + 3_600 + 1), "1 day 1 hour 1 second");
        assert_eq!(retention_text(2), "2 seconds");
    }

    #[test]
    fn percentages_parse_to_basis_points() {
        assert_eq!(parse_percent("x", "95%").unwrap(), 9_500);
        assert_eq!(parse_percent("x", "99.5%").unwrap(), 9_950);
        assert_eq!(parse_percent("x", "0.25 %").unwrap(), 25);
        assert_eq!(parse_percent("x", "100%").unwrap(), 10_000);
        for bad in ["95", "101%", "-1%", "9.999%", "%", "a%", ".5%"] {
            assert!(parse_percent("x", bad).is_err(), "{bad}");
        }
        assert_eq!(percent_text(9_950), "99.5 %");
        assert_eq!(percent_text(9_500), "95 %");
        assert_eq!(percent_text(25), "0.25 %");
    }
}
