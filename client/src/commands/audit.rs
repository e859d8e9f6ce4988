//! `audit export | verify | show`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};

use matterdrop_common::audit;
use matterdrop_common::bundle::{self, Seen};
use matterdrop_common::proto::{AuditExportRequest, ClientRequest, ServerResponse};
use matterdrop_common::tlog::{self, NoteVerifier};
use serde_json::json;

use super::Ctx;
use crate::cli::{AuditExportArgs, AuditShowArgs, AuditVerifyArgs};
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::{Home, write_replace};
use crate::identity;
use crate::output::escape;
use crate::witnesses::{Policy, save_policy, witness_policy};

/// The newest checkpoint this client verified (a signed note).
const SEEN_CHECKPOINT: &str = "audit-checkpoint.txt";

/// The nonces of the matter exports this client asked for (hex → matter).
const EXPORT_NONCES: &str = "audit-exports.json";

fn load_nonces(home: &Home) -> std::collections::BTreeMap<String, String> {
    std::fs::read(home.path(EXPORT_NONCES))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn seen(home: &Home, key: &NoteVerifier) -> CmdResult<Option<(Seen, String)>> {
    let Ok(note) = std::fs::read_to_string(home.path(SEEN_CHECKPOINT)) else {
        return Ok(None);
    };
    let cp = tlog::open_checkpoint(&note, key).map_err(|e| {
        Fail::new(
            exit::VERIFY,
            format!(
                "the stored checkpoint {SEEN_CHECKPOINT} does not verify with the log key: {e}"
            ),
        )
    })?;
    Ok(Some((
        Seen {
            size: cp.size,
            root: cp.root,
        },
        note,
    )))
}

/// Checks a bundle's witness cosignatures against `policy`.
fn check_witnesses(
    path: &std::path::Path,
    key: &NoteVerifier,
    policy: Option<&Policy>,
) -> Result<Vec<String>, String> {
    let Some(p) = policy else {
        return Ok(Vec::new());
    };
    let mut r = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    let header = bundle::read_header(&mut r).map_err(|e| e.to_string())?;
    bundle::check_witnesses(&header, key, &p.verifiers, p.quorum)
        .map_err(|f| format!("witness cosignatures: {f}"))
}

fn pinned_key(ctx: &Ctx, explicit: Option<&str>) -> CmdResult<NoteVerifier> {
    let vkey = match explicit {
        Some(k) => k.to_owned(),
        None => {
            ctx.home
                .server()
                .map_err(|f| f.hint("pass --log-key NAME+HASH+KEY, as printed by `mdrop whoami`"))?
                .log_key
        }
    };
    NoteVerifier::from_vkey(&vkey)
        .map_err(|e| Fail::usage(format!("invalid log key {vkey:?}: {e}")))
}

/// `mdrop audit export`.
pub async fn export(ctx: &Ctx, args: &AuditExportArgs) -> CmdResult {
    let policy = witness_policy(ctx, &args.witness, args.quorum)?;
    let header = export_bundle(ctx, args.matter.as_deref(), &args.out, policy.as_ref()).await?;
    save_policy(ctx, policy.as_ref())?;
    emit_export(ctx, args, &header);
    Ok(())
}

/// Exports the log (or `matter`'s entries) to `out`, kept only once it
/// verified against the newest checkpoint this client saw, for the matter
/// asked for, ending with this request's export entry, and with the
/// witnesses `policy` asks for (exit 4 otherwise, nothing kept).
pub async fn export_bundle(
    ctx: &Ctx,
    matter: Option<&str>,
    out_path: &std::path::Path,
    policy: Option<&Policy>,
) -> CmdResult<bundle::BundleHeader> {
    let matter: Option<String> = matter.map(str::to_owned);
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let log_key =
        NoteVerifier::from_vkey(&server.log_key).map_err(|e| Fail::other(e.to_string()))?;
    let known_size = seen(&ctx.home, &log_key)?.map(|(s, _)| s.size);
    // A fresh nonce for a matter export, remembered before it is sent: the
    // bundle must end with the export entry that logs it.
    let nonce = match &matter {
        Some(m) => {
            let mut n = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
            let mut nonces = load_nonces(&ctx.home);
            nonces.insert(n.iter().map(|b| format!("{b:02x}")).collect(), m.clone());
            let bytes = serde_json::to_vec(&nonces).map_err(|e| Fail::other(e.to_string()))?;
            write_replace(&ctx.home.path(EXPORT_NONCES), &bytes, 0o600)?;
            Some(n)
        }
        None => None,
    };
    let result = async {
        let (resp, mut recv) = session
            .request_stream(&ClientRequest::AuditExport(AuditExportRequest {
                matter: matter.clone(),
                known_size,
                nonce,
            }))
            .await?;
        let ServerResponse::AuditBundle(header) = resp else {
            return Err(unexpected(&resp));
        };
        let tmp = out_path
            .with_extension(format!("part-{}", std::process::id()));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        bundle::write_header(&mut out, &header)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => out.write_all(&buf[..n])?,
                Ok(None) => break,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Fail::connect(format!("the export was interrupted: {e}")));
                }
            }
        }
        out.into_inner()
            .map_err(|e| Fail::other(e.to_string()))?
            .sync_all()?;
        // A matter bundle must be the one cut for this request: it verifies
        // and ends with the export entry that logs this client's nonce (a
        // server replaying an older export is caught here).
        // Every bundle is checked before it is kept: against the newest
        // checkpoint this client saw, for the matter asked for, and (a
        // matter bundle) ending with the export entry of this request.
        let prior = seen(&ctx.home, &log_key)?;
        let check = bundle::verify(
            || File::open(&tmp).map(|f| BufReader::with_capacity(1 << 20, f)),
            &log_key,
            prior.as_ref().map(|(s, _)| *s),
        );
        let want: Option<String> = nonce.map(|n| n.iter().map(|b| format!("{b:02x}")).collect());
        let problem = match &check {
            Err(f) => Some(f.to_string()),
            Ok(s) if s.matter != matter => {
                Some("the bundle is of another matter than the one asked for".to_owned())
            }
            Ok(s)
                if want.is_some()
                    && s.export.as_ref().and_then(|e| e.nonce.as_ref()) != want.as_ref() =>
            {
                Some("the bundle does not end with the export entry of this request (an older export replayed?)".to_owned())
            }
            Ok(_) => check_witnesses(&tmp, &log_key, policy).err(),
        };
        if let Some(why) = problem {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                exit::VERIFY,
                format!("the server's audit bundle was refused: {why}"),
            ));
        }
        std::fs::rename(&tmp, out_path)?;
        // What was verified here is what this client has now seen.
        if let Ok(s) = &check {
            if prior.as_ref().is_none_or(|(p, _)| s.tree_size > p.size) {
                write_replace(
                    &ctx.home.path(SEEN_CHECKPOINT),
                    header.checkpoint.as_bytes(),
                    0o600,
                )?;
            }
        }
        Ok(header)
    }
    .await;
    session.close().await;
    result
}

fn emit_export(ctx: &Ctx, args: &AuditExportArgs, header: &bundle::BundleHeader) {
    ctx.out.emit(
        &json!({"out": args.out, "entries": header.count, "matter": header.matter}),
        || {
            format!(
                "Wrote {} entries{} to {}\nCheck it with: mdrop audit verify {}\n",
                header.count,
                header
                    .matter
                    .as_deref()
                    .map(|m| format!(" of matter {}", escape(m, false)))
                    .unwrap_or_default(),
                args.out.display(),
                args.out.display()
            )
        },
    );
}

/// `mdrop audit verify`.
pub fn verify(ctx: &Ctx, args: &AuditVerifyArgs) -> CmdResult {
    let policy = witness_policy(ctx, &args.witness, args.quorum)?;
    let key = pinned_key(ctx, args.log_key.as_deref())?;
    let prior = seen(&ctx.home, &key)?;
    let path = args.file.clone();
    let result = bundle::verify(
        || File::open(&path).map(|f| BufReader::with_capacity(1 << 20, f)),
        &key,
        prior.as_ref().map(|(s, _)| *s),
    );
    let summary = result.map_err(|f| {
        Fail::new(
            exit::VERIFY,
            format!(
                "audit bundle {} failed verification: {f}",
                args.file.display()
            ),
        )
    })?;
    // The log's rosters must agree with the ones this client verified
    // itself: one a prefix of the other, statement by statement.
    for (matter, logged) in &summary.rosters {
        let mine: Vec<[u8; 32]> = crate::roster::load_cache(&ctx.home, matter)?
            .iter()
            .map(matterdrop_common::roster::SignedStatement::hash)
            .collect();
        if let Some(i) = logged.iter().zip(&mine).position(|(a, b)| a != b) {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "audit bundle {} failed verification: its roster of matter {} differs from \
                     the one this client verified at statement {i} (a forked roster)",
                    args.file.display(),
                    escape(matter, false)
                ),
            ));
        }
    }
    // Below the witness quorum the bundle fails, and nothing is remembered.
    let witnessed = check_witnesses(&args.file, &key, policy.as_ref()).map_err(|why| {
        Fail::new(
            exit::VERIFY,
            format!(
                "audit bundle {} failed verification: {why}",
                args.file.display()
            ),
        )
    })?;
    // Remember the newest checkpoint proven consistent with what we had.
    let advance = prior
        .as_ref()
        .is_none_or(|(s, _)| summary.tree_size > s.size)
        && summary.consistent_with_seen != Some(false);
    if advance {
        let mut r = BufReader::new(File::open(&args.file)?);
        let header = bundle::read_header(&mut r).map_err(|e| Fail::other(e.to_string()))?;
        if ctx.home.dir.is_dir() {
            write_replace(
                &ctx.home.path(SEEN_CHECKPOINT),
                header.checkpoint.as_bytes(),
                0o600,
            )?;
        }
    }
    // Whether this client asked for this export (its nonce), or someone
    // else did (reported, not refused: an auditor may verify a colleague's
    // bundle).
    let nonces = load_nonces(&ctx.home);
    let export = summary.export.as_ref().map(|e| {
        let ours = e
            .nonce
            .as_ref()
            .is_some_and(|n| nonces.get(n) == summary.matter.as_ref());
        (e, ours)
    });
    let span = match (summary.first_time, summary.last_time) {
        (Some(a), Some(b)) => format!("{} .. {}", crate::when::utc(a), crate::when::utc(b)),
        _ => "-".into(),
    };
    let v = json!({
        "ok": true,
        "matter": summary.matter,
        "entries": summary.entries,
        "tree_size": summary.tree_size,
        "first": summary.first_time.map(crate::when::utc),
        "last": summary.last_time.map(crate::when::utc),
        "denials": summary.denials,
        "per_principal": summary.per_principal,
        "per_action": summary.per_action,
        "consistent_with_previous_checkpoint": summary.consistent_with_seen,
        "witnesses": witnessed,
        "export": export.map(|(e, ours)| json!({
            "index": e.index, "time": crate::when::utc(e.time), "by": e.by, "by_this_client": ours,
        })),
    });
    save_policy(ctx, policy.as_ref())?;
    ctx.out.emit(&v, || {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "OK: {} entries{} verified against the signed checkpoint of {} entries",
            summary.entries,
            summary
                .matter
                .as_deref()
                .map(|m| format!(" of matter {}", escape(m, false)))
                .unwrap_or_default(),
            summary.tree_size
        );
        let _ = writeln!(s, "  time span: {span}");
        if let Some((e, ours)) = &export {
            let _ = writeln!(
                s,
                "  complete as of the export at entry {} ({} by {}){}",
                e.index,
                crate::when::utc(e.time),
                escape(&e.by, false),
                if *ours {
                    ", which this client asked for"
                } else {
                    "; not an export this client asked for"
                }
            );
        }
        if !witnessed.is_empty() {
            let _ = writeln!(
                s,
                "  cosigned by witnesses: {}",
                witnessed
                    .iter()
                    .map(|w| escape(w, false))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(s, "  denied attempts: {}", summary.denials);
        match summary.consistent_with_seen {
            Some(true) => s.push_str("  consistent with the checkpoint this client saw before\n"),
            Some(false) => s.push_str(
                "  consistency with the checkpoint this client saw before was not checked\n",
            ),
            None => s.push_str("  first checkpoint this client has seen for this log\n"),
        }
        s.push_str("  entries per principal:\n");
        for (p, n) in &summary.per_principal {
            let _ = writeln!(s, "    {:<32} {n}", escape(p, false));
        }
        s
    });
    Ok(())
}

/// A point in time given on the command line: a duration back from now or
/// a date.
fn parse_time(what: &str, v: &str, end_of_day: bool) -> CmdResult<u64> {
    let now = std::time::SystemTime::now();
    if let Ok(d) = humantime::parse_duration(v.trim()) {
        return Ok(now
            .checked_sub(d)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()));
    }
    let t = v.trim();
    let full = if t.len() == 10 {
        format!("{t}T{}", if end_of_day { "23:59:59Z" } else { "00:00:00Z" })
    } else {
        t.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            Fail::usage(format!(
                "--{what} {v:?}: give a duration (30d, 12h) or a date (2026-12-01)"
            ))
        })
}

/// Actions logged once per part of a transfer, collapsed into one row.
const TRANSFER_ACTIONS: [&str; 3] = ["push-upload", "deliver-upload", "pull-blob"];

/// One row of `audit show`: an entry, or a whole transfer.
#[derive(Debug)]
struct Row {
    entry: audit::Entry,
    last_time: u64,
    parts: u64,
    bytes: u64,
    completed: Option<bool>,
    /// A download that followed an inbox look (`peek`), not a pull: the
    /// manifest only (names and note), not the files.
    looked: bool,
    /// Downloads by a sharer, which checks each blob against the signed
    /// descriptor and re-wraps its age header (`share`), not a pull.
    headers: bool,
}

impl Row {
    fn transfer(&self) -> bool {
        TRANSFER_ACTIONS.contains(&self.entry.action.as_str())
    }
}

/// A CSV field: quoted when needed, control characters escaped, and a
/// leading `=`, `+`, `-` or `@` defused so a spreadsheet does not run it.
pub(crate) fn csv(field: &str) -> String {
    let mut f = escape(field, false);
    if f.starts_with(['=', '+', '-', '@']) {
        f.insert(0, '\'');
    }
    // Quoted always: a spreadsheet that splits on `;` or tabs must not
    // find a formula either.
    format!("\"{}\"", f.replace('"', "\"\""))
}

/// `mdrop audit show`.
pub fn show(ctx: &Ctx, args: &AuditShowArgs) -> CmdResult {
    let format = match args.format.as_str() {
        "table" if ctx.out.json => "json",
        f @ ("table" | "csv" | "json") => f,
        other => {
            return Err(Fail::usage(format!(
                "--format {other:?}: use table, csv or json"
            )));
        }
    };
    let since = args
        .since
        .as_deref()
        .map(|v| parse_time("since", v, false))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|v| parse_time("until", v, true))
        .transpose()?;
    let mut r = BufReader::with_capacity(1 << 20, File::open(&args.file)?);
    let header = bundle::read_header(&mut r).map_err(|e| Fail::other(e.to_string()))?;
    let mut rows: Vec<Row> = Vec::new();
    // Open transfer rows by (principal, action, object).
    let mut open: std::collections::HashMap<(String, String, String), usize> =
        std::collections::HashMap::new();
    let mut committed = std::collections::HashSet::new();
    let mut delivered: Vec<(String, String, u64)> = Vec::new();
    // (principal, object) whose latest look or pull was a look.
    let mut looking = std::collections::HashSet::new();
    for _ in 0..header.count {
        let rec = bundle::read_record(&mut r, header.matter.is_some())
            .map_err(|e| Fail::other(e.to_string()))?;
        let (e, _) = audit::parse_record(&rec.record)
            .map_err(|e| Fail::new(exit::VERIFY, format!("record {}: {e}", rec.index)))?;
        if matches!(e.action.as_str(), "push-committed" | "deliver-committed") {
            if let Some(o) = &e.object {
                committed.insert(o.clone());
            }
        }
        if e.action == "delivered" && e.allowed {
            if let Some(o) = &e.object {
                delivered.push((e.principal.clone(), o.clone(), e.index));
            }
        }
        // A new download (`pull`) or delivery (`deliver-prepare`) of the
        // same object starts a new transfer row.
        // An inbox look (`peek`) starts one too: it downloads only the
        // manifest, to show names and the note.
        let restart = match e.action.as_str() {
            "pull" | "peek" => Some("pull-blob"),
            "deliver-prepare" => Some("deliver-upload"),
            _ => None,
        };
        if let Some(o) = e.object.clone().filter(|_| e.allowed) {
            match e.action.as_str() {
                "peek" => {
                    looking.insert((e.principal.clone(), o));
                }
                "pull" => {
                    looking.remove(&(e.principal.clone(), o));
                }
                _ => {}
            }
        }
        if let (Some(kind), Some(o)) = (restart, &e.object) {
            open.remove(&(e.principal.clone(), kind.to_owned(), o.clone()));
            if kind == "pull-blob" {
                // A share starts with a look too.
                open.remove(&(
                    e.principal.clone(),
                    "pull-blob headers".to_owned(),
                    o.clone(),
                ));
            }
        }
        if args.principal.as_ref().is_some_and(|p| *p != e.principal)
            || args.action.as_ref().is_some_and(|a| *a != e.action)
            || args
                .packet
                .as_ref()
                .is_some_and(|p| e.object.as_ref() != Some(p))
            || since.is_some_and(|s| e.time < s)
            || until.is_some_and(|u| e.time > u)
            || (args.denied && e.allowed)
        {
            continue;
        }
        let size: u64 = e
            .details
            .iter()
            .find(|(k, _)| k == "size")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let headers =
            e.action == "pull-blob" && e.details.iter().any(|(k, v)| k == "for" && v == "share");
        if !args.every_part && e.allowed && TRANSFER_ACTIONS.contains(&e.action.as_str()) {
            let key = (
                e.principal.clone(),
                if headers {
                    "pull-blob headers".to_owned()
                } else {
                    e.action.clone()
                },
                e.object.clone().unwrap_or_default(),
            );
            if let Some(&i) = open.get(&key) {
                let row = &mut rows[i];
                row.parts += 1;
                row.bytes += size;
                row.last_time = e.time;
                continue;
            }
            open.insert(key, rows.len());
        }
        let looked = e.action == "pull-blob"
            && !headers
            && looking.contains(&(e.principal.clone(), e.object.clone().unwrap_or_default()));
        rows.push(Row {
            last_time: e.time,
            parts: 1,
            bytes: size,
            completed: None,
            looked,
            headers,
            entry: e,
        });
    }
    // An upload is complete once its packet was committed; a download once
    // its recipient confirmed, signed, that every file verified.
    for row in &mut rows {
        if !row.transfer() {
            continue;
        }
        let object = row.entry.object.clone().unwrap_or_default();
        if row.headers {
            continue;
        }
        row.completed = Some(if row.entry.action == "pull-blob" {
            // Confirmed by a statement logged after this download began.
            delivered.iter().any(|(who, o, i)| {
                *who == row.entry.principal && *o == object && *i > row.entry.index
            })
        } else {
            committed.contains(&object)
        });
    }
    let outcome = |e: &audit::Entry| if e.allowed { "allowed" } else { "DENIED" };
    let tail = |e: &audit::Entry| match (&e.object, &e.reason) {
        (_, Some(reason)) => reason.clone(),
        (Some(o), None) => o.clone(),
        (None, None) => String::new(),
    };
    match format {
        "json" => {
            let v: Vec<_> = rows
                .iter()
                .map(|row| {
                    let e = &row.entry;
                    json!({
                        "index": e.index, "time": crate::when::utc(e.time), "principal": e.principal,
                        "action": e.action, "matter": e.matter, "object": e.object,
                        "allowed": e.allowed, "rule": e.rule, "reason": e.reason,
                        "prev_in_matter": e.prev_in_matter,
                        "details": e.details.iter().map(|(k, v)| (k.clone(), json!(v)))
                            .collect::<serde_json::Map<_, _>>(),
                        "parts": row.transfer().then_some(row.parts),
                        "bytes": row.transfer().then_some(row.bytes),
                        "last_time": row.transfer().then(|| crate::when::utc(row.last_time)),
                        "completed": row.completed,
                        "inbox_look": row.looked,
                        "for_share": row.headers,
                    })
                })
                .collect();
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, &json!({ "entries": v }));
            let _ = writeln!(out);
        }
        "csv" => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "index,time,principal,action,matter,object,outcome,rule,reason,parts,bytes,completed"
            );
            for row in &rows {
                let e = &row.entry;
                let fields = [
                    e.index.to_string(),
                    crate::when::utc(e.time),
                    csv(&e.principal),
                    csv(&e.action),
                    csv(e.matter.as_deref().unwrap_or("")),
                    csv(e.object.as_deref().unwrap_or("")),
                    outcome(e).to_owned(),
                    csv(e.rule.as_deref().unwrap_or("")),
                    csv(e.reason.as_deref().unwrap_or("")),
                    if row.transfer() {
                        row.parts.to_string()
                    } else {
                        String::new()
                    },
                    if row.transfer() {
                        row.bytes.to_string()
                    } else {
                        String::new()
                    },
                    row.completed.map(|c| c.to_string()).unwrap_or_default(),
                ];
                let _ = writeln!(out, "{}", fields.join(","));
            }
        }
        _ => {
            let mut text = String::new();
            let _ = writeln!(
                text,
                "{:>7}  {:<20} {:<24} {:<16} {:<14} {:<8} object / reason",
                "index", "time", "principal", "action", "matter", "outcome"
            );
            for row in &rows {
                let e = &row.entry;
                let mut t = escape(&tail(e), false);
                if row.transfer() {
                    let _ = write!(
                        t,
                        " ({} part{}, {} bytes{})",
                        row.parts,
                        if row.parts == 1 { "" } else { "s" },
                        row.bytes,
                        match (row.completed, e.action == "pull-blob") {
                            _ if row.looked => ", the manifest for the inbox",
                            _ if row.headers => ", checked to re-share its age headers",
                            (Some(true), false) => ", committed",
                            (Some(false), false) => ", NOT committed",
                            (Some(true), true) => ", delivered and verified",
                            (Some(false), true) => ", NOT confirmed delivered",
                            (None, _) => "",
                        }
                    );
                }
                let _ = writeln!(
                    text,
                    "{:>7}  {:<20} {:<24} {:<16} {:<14} {:<8} {}",
                    e.index,
                    crate::when::utc(e.time),
                    escape(&e.principal, false),
                    escape(&e.action, false),
                    escape(e.matter.as_deref().unwrap_or("-"), false),
                    outcome(e),
                    t
                );
            }
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
        }
    }
    Ok(())
}
