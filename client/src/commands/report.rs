//! `mdrop report` (alias `report turnaround`): the evaluation report per
//! provider organization and task type, computed here from each matter's
//! audit log, exported and verified first, and the signed receipts in it
//! (`matterdrop_common::evaluation`); never from the server's word.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::BufReader;
use std::os::unix::fs::DirBuilderExt as _;

use matterdrop_common::evaluation::{self, Facts, Row};
use matterdrop_common::proto::{ClientRequest, ServerResponse};
use matterdrop_common::retention::Replay;
use matterdrop_common::roster::Roster;
use matterdrop_common::{audit, bundle, ids};
use serde_json::json;

use super::Ctx;
use crate::cli::TurnaroundArgs;
use crate::conn::unexpected;
use crate::error::{CmdResult, Fail, exit};
use crate::output::escape;

/// The matters the caller may report on (an attorney or auditor of).
async fn oversight_matters(ctx: &Ctx) -> CmdResult<Vec<String>> {
    let list = match super::matter::call(ctx, &ClientRequest::MatterList).await? {
        ServerResponse::Matters(list) => list,
        other => return Err(unexpected(&other)),
    };
    let (mine, other): (Vec<_>, Vec<_>) = list
        .into_iter()
        .partition(|m| matches!(m.role.as_str(), "attorney" | "auditor"));
    if mine.is_empty() && !other.is_empty() {
        return Err(Fail::new(
            exit::DENIED,
            format!(
                "the evaluation report is for a matter's attorneys and auditors; you are {}",
                other
                    .iter()
                    .map(|m| format!("{} of {}", m.role, escape(&m.id, false)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(mine.into_iter().map(|m| m.id).collect())
}

/// Reads a verified matter bundle: the facts the report counts and the
/// roster its log replays to.
fn read(path: &std::path::Path, matter: &str) -> CmdResult<(Facts, Option<Roster>, Vec<[u8; 32]>)> {
    let refuse = |why: String| {
        Fail::new(
            exit::VERIFY,
            format!("the audit log of matter {}: {why}", escape(matter, false)),
        )
    };
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let header = bundle::read_header(&mut r).map_err(|e| refuse(e.to_string()))?;
    let mut replay = Replay::default();
    let mut facts = Facts::default();
    for _ in 0..header.count {
        let rec = bundle::read_record(&mut r, true).map_err(|e| refuse(e.to_string()))?;
        let (e, _) = audit::parse_record(&rec.record).map_err(|e| refuse(e.to_string()))?;
        replay.observe(&e).map_err(refuse)?;
        facts.observe(&e, replay.roster(matter)).map_err(refuse)?;
    }
    let chain = replay.chains().remove(matter).unwrap_or_default();
    Ok((facts, replay.roster(matter).cloned(), chain))
}

/// The matter's roster as this client verifies it (synced from the
/// server, checked against the pinned creator), as statement hashes.
async fn verified_chain(ctx: &Ctx, matter: &str) -> CmdResult<Vec<[u8; 32]>> {
    let key = crate::identity::signing_key(&ctx.home)?;
    let (session, _) = crate::conn::Session::open(&ctx.home, &key).await?;
    let synced = crate::roster::sync(&ctx.home, &session, matter).await;
    session.close().await;
    synced?;
    Ok(crate::roster::load_cache(&ctx.home, matter)?
        .iter()
        .map(matterdrop_common::roster::SignedStatement::hash)
        .collect())
}

fn rate(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0))
}

fn dur(x: Option<u64>) -> String {
    x.map_or_else(|| "-".into(), super::matter::retention_text)
}

fn row_json(matter: &str, r: &Row) -> serde_json::Value {
    json!({
        "matter": matter, "provider": r.provider, "task": r.task.as_str(),
        "packets": r.packets, "delivered": r.packets, "deliverables": r.deliverables,
        "median_secs": r.median_secs, "p90_secs": r.p90_secs,
        "on_time": r.on_time, "on_time_judged": r.on_time_judged, "on_time_rate": r.on_time_rate(),
        "approved": r.approved, "first_pass": r.first_pass, "first_pass_rate": r.first_pass_rate(),
        "returns": r.returns, "mean_rating": r.mean_rating, "ratings": r.ratings,
        "target": r.target.map(|t| json!({
            "turnaround_secs": t.turnaround,
            "on_time_percent": f64::from(t.on_time) / 100.0,
            "first_pass_percent": f64::from(t.first_pass) / 100.0,
        })),
        "qualified_members": null,
        "verdict": r.verdict,
    })
}

/// `mdrop report`.
pub async fn report(ctx: &Ctx, args: &TurnaroundArgs) -> CmdResult {
    let format = match args.format.as_str() {
        "text" if ctx.out.json => "json",
        f @ ("text" | "csv" | "json") => f,
        other => {
            return Err(Fail::usage(format!(
                "--format {other:?}: use text, csv or json"
            )));
        }
    };
    let now = crate::unix_now();
    let since = args.since.map_or(0, |d| now.saturating_sub(d.as_secs()));
    let matters = match &args.matter {
        Some(m) => vec![m.clone()],
        None => oversight_matters(ctx).await?,
    };
    let policy = crate::witnesses::witness_policy(ctx, &[], None)?;
    let dir = ctx.home.path("cache");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let mut rows = Vec::new();
    for m in &matters {
        ids::validate_matter(m).map_err(|e| Fail::usage(e.to_string()))?;
        // The log first, verified (exit 4 otherwise), then counted.
        let path = dir.join(format!("report-{m}.bundle"));
        let result = match super::audit::export_bundle(ctx, Some(m), &path, policy.as_ref()).await {
            Ok(_) => read(&path, m),
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&path);
        let (facts, roster, logged) = result?;
        // The roster the log replays must be the one this client verifies
        // from its pinned creator (one a prefix of the other): otherwise
        // the log's own roster could vouch for receipts and targets.
        let verified = verified_chain(ctx, m).await?;
        if let Some(i) = logged.iter().zip(&verified).position(|(a, b)| a != b) {
            return Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the audit log's roster of matter {} differs from the one this client \
                     verified at statement {i} (a forked roster)",
                    escape(m, false)
                ),
            ));
        }
        rows.extend(
            evaluation::evaluate(&facts, roster.as_ref(), since)
                .into_iter()
                .map(|r| (m.clone(), r)),
        );
    }
    // With one matter: its members' signed destruction attestations (the
    // certificates of destruction), checked against its roster.
    let destroyed = match &args.matter {
        Some(m) => Some(super::matter::verified_destructions(ctx, m).await?),
        None => None,
    };
    let v = json!({
        "verified": true,
        "matters": matters,
        "since": (since > 0).then(|| crate::when::utc(since)),
        "rows": rows.iter().map(|(m, r)| row_json(m, r)).collect::<Vec<_>>(),
        "destructions": destroyed.as_ref().map(|d| d.iter().map(|(d, index)| json!({
            "principal": d.principal, "time": crate::when::utc(d.time), "packets": d.packets.len(),
            "deleted": d.deleted, "missing": d.missing, "kept": d.kept, "caches": d.caches,
            "log_index": index,
        })).collect::<Vec<_>>()),
    });
    match format {
        "json" => {
            println!("{v}");
            Ok(())
        }
        "csv" => {
            let csv = super::audit::csv;
            let mut s = String::from(
                "matter,provider,task,packets,deliverables,median_secs,p90_secs,on_time_rate,first_pass_rate,mean_rating,returns,verdict\n",
            );
            for (m, r) in &rows {
                let returns: Vec<String> =
                    r.returns.iter().map(|(k, n)| format!("{k}={n}")).collect();
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    csv(m),
                    csv(&r.provider),
                    csv(r.task.as_str()),
                    r.packets,
                    r.deliverables,
                    r.median_secs.map_or(String::new(), |x| x.to_string()),
                    r.p90_secs.map_or(String::new(), |x| x.to_string()),
                    r.on_time_rate()
                        .map_or(String::new(), |x| format!("{x:.4}")),
                    r.first_pass_rate()
                        .map_or(String::new(), |x| format!("{x:.4}")),
                    r.mean_rating.map_or(String::new(), |x| format!("{x:.2}")),
                    csv(&returns.join(" ")),
                    csv(&r.verdict)
                );
            }
            print!("{s}");
            Ok(())
        }
        _ => {
            print!("{}", text(&rows, &matters, since, destroyed.as_deref()));
            Ok(())
        }
    }
}

fn text(
    rows: &[(String, Row)],
    matters: &[String],
    since: u64,
    destroyed: Option<&[(matterdrop_common::custody::DestructionStatement, u64)]>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Evaluation report, computed from the verified audit log{} of {}{}",
        if matters.len() == 1 { "" } else { "s" },
        matters
            .iter()
            .map(|m| escape(m, false))
            .collect::<Vec<_>>()
            .join(", "),
        if since > 0 {
            format!(", packets pushed since {}", crate::when::local(since))
        } else {
            String::new()
        }
    );
    if rows.is_empty() {
        s.push_str("No deliverables yet.\n");
    }
    for (m, r) in rows {
        let target = r.target.map_or_else(
            || " (no targets)".to_owned(),
            |t| {
                format!(
                    " (targets: {}, on time {}, first pass {})",
                    super::matter::retention_text(t.turnaround),
                    super::matter::percent_text(t.on_time),
                    super::matter::percent_text(t.first_pass)
                )
            },
        );
        let _ = writeln!(
            s,
            "\n{} · {} · {}{target}",
            escape(m, false),
            escape(&r.provider, false),
            r.task
        );
        let _ = writeln!(
            s,
            "  packets {}, deliverables {}; turnaround median {}, p90 {}",
            r.packets,
            r.deliverables,
            dur(r.median_secs),
            dur(r.p90_secs)
        );
        let _ = writeln!(
            s,
            "  on time {} ({} of {}), first pass {} ({} of {} approved), mean rating {}",
            rate(r.on_time_rate()),
            r.on_time,
            r.on_time_judged,
            rate(r.first_pass_rate()),
            r.first_pass,
            r.approved,
            r.mean_rating
                .map_or_else(|| "-".into(), |x| format!("{x:.1} of {}", r.ratings))
        );
        if !r.returns.is_empty() {
            let returns: Vec<String> = r.returns.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(s, "  returns: {}", returns.join(", "));
        }
        let _ = writeln!(s, "  verdict: {}", r.verdict);
    }
    match destroyed {
        None => {}
        Some([]) => s.push_str("\nDestruction attestations: none signed yet.\n"),
        Some(d) => {
            s.push_str("\nDestruction attestations (signed by each member, verified):\n");
            for (d, index) in d {
                let _ = writeln!(
                    s,
                    "  {} {:<28} {} packets, {} files deleted, {} already gone, {} kept (log entry {index})",
                    crate::when::local(d.time),
                    escape(&d.principal, false),
                    d.packets.len(),
                    d.deleted,
                    d.missing,
                    d.kept
                );
            }
        }
    }
    s
}
