//! The evaluation report (`mdrop report`), computed on the client from a
//! matter's verified audit log: packets from their `push-committed`
//! entries, deliveries from `deliver-committed`, decisions, ratings and
//! return reasons from the signed receipts in `review-receipt` entries
//! (each checked against the key the log's roster gave its reviewer), and
//! the targets from the roster replayed from the same log.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use crate::audit::Entry;
use crate::receipt::{Decision, ReceiptStatement, ReturnReason};
use crate::roles::Task;
use crate::roster::{Roster, Target};

/// The fewest deliverables a verdict is given on.
pub const MIN_DELIVERABLES: usize = 10;

/// What the log says about one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    task: Task,
    pushed: u64,
    due: Option<u64>,
}

/// One deliverable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivery {
    id: String,
    packet: String,
    org: String,
    at: u64,
    /// SHA-256 of its signed descriptor, as its commit entry names it.
    descriptor_sha256: String,
}

/// The facts gathered from a matter's log, in log order.
#[derive(Debug, Default)]
pub struct Facts {
    packets: BTreeMap<String, Packet>,
    deliveries: Vec<Delivery>,
    /// Deliverable id → its signed decision (the last in log order: a
    /// review made again after the server lost the first replaces it).
    receipts: BTreeMap<String, ReceiptStatement>,
}

fn org(principal: &str) -> &str {
    principal.split_once('@').map_or(principal, |(_, o)| o)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl Facts {
    /// Takes the next entry of a verified matter bundle. `roster` is the
    /// matter's roster as the log replays it up to this entry (a receipt's
    /// reviewer must hold an attorney key it gave them). Returns why an
    /// entry cannot be believed.
    pub fn observe(&mut self, e: &Entry, roster: Option<&Roster>) -> Result<(), String> {
        if !e.allowed {
            return Ok(());
        }
        let id = e.object.clone().unwrap_or_default();
        let bad = |why: String| format!("log entry {}: {why}", e.index);
        match e.action.as_str() {
            "push-committed" => {
                let Some(task) = e.detail("task").and_then(|t| Task::from_str(t).ok()) else {
                    return Err(bad("a push without a task".into()));
                };
                let due = e.detail("due").and_then(|d| d.parse().ok());
                let p = Packet {
                    task,
                    pushed: e.time,
                    due,
                };
                // A commit is logged once; a client's retry finds it done.
                match self.packets.get(&id) {
                    Some(first) if *first != p => {
                        return Err(bad(format!("{id} is committed a second time, differently")));
                    }
                    Some(_) => {}
                    None => {
                        self.packets.insert(id, p);
                    }
                }
            }
            "deliver-committed" => {
                let packet = e.detail("packet").unwrap_or_default().to_owned();
                let Some(pushed) = self.packets.get(&packet).map(|p| p.pushed) else {
                    return Err(bad(format!(
                        "{id} answers {packet}, which the log never pushed"
                    )));
                };
                if e.time < pushed {
                    return Err(bad(format!("{id} is delivered before {packet} was pushed")));
                }
                // The delivering member must be a provider of the matter
                // as the roster stands at this point of the log.
                let is_provider = roster
                    .and_then(|r| r.members.get(&e.principal))
                    .is_some_and(|m| m.role == crate::roles::Role::Provider);
                if !is_provider {
                    return Err(bad(format!(
                        "{id} is delivered by {}, not a provider of the matter",
                        e.principal
                    )));
                }
                let d = Delivery {
                    id,
                    packet,
                    org: org(&e.principal).to_owned(),
                    at: e.time,
                    descriptor_sha256: e.detail("descriptor_sha256").unwrap_or_default().to_owned(),
                };
                match self.deliveries.iter().find(|x| x.id == d.id) {
                    Some(first) if *first != d => {
                        return Err(bad(format!(
                            "{} is committed a second time, differently",
                            d.id
                        )));
                    }
                    Some(_) => {}
                    None => self.deliveries.push(d),
                }
            }
            "review-receipt" => {
                let bad = |why: &str| format!("log entry {}: the receipt {why}", e.index);
                let signed = e.detail("receipt").ok_or_else(|| bad("is missing"))?;
                let st = ReceiptStatement::parse(signed.as_bytes())
                    .map_err(|err| bad(&err.to_string()))?;
                let signature = e
                    .detail("signature")
                    .and_then(unhex)
                    .ok_or_else(|| bad("has no signature"))?;
                let roster = roster.ok_or_else(|| bad("comes before the matter's roster"))?;
                // Signed with the key the roster gives the reviewer as an
                // attorney at this point of the log (not a key it gave
                // them once, or in another role).
                let verifies = roster
                    .members
                    .get(&st.reviewer)
                    .filter(|m| m.role == crate::roles::Role::Attorney)
                    .is_some_and(|m| {
                        crate::sign::verifying_key_from_bytes(&m.keys.signing_key).is_ok_and(|k| {
                            crate::sign::verify(&k, signed.as_bytes(), &signature).is_ok()
                        })
                    });
                if !verifies || st.deliverable != id || st.matter != roster.matter {
                    return Err(bad(&format!(
                        "for {id} is not signed by a key the roster gives {} as an attorney",
                        st.reviewer
                    )));
                }
                // It must be about the delivery the log committed.
                let delivered = self.deliveries.iter().find(|d| d.id == id);
                let hex: String = st
                    .descriptor_sha256
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if delivered.is_none_or(|d| d.packet != st.packet || d.descriptor_sha256 != hex) {
                    return Err(bad(&format!(
                        "for {id} names another packet or descriptor than its logged delivery"
                    )));
                }
                self.receipts.insert(id, st);
            }
            _ => {}
        }
        Ok(())
    }
}

/// One line of the report: a provider organization's work on one task type.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Provider organization.
    pub provider: String,
    /// Task type.
    pub task: Task,
    /// Packets it delivered for (pushed in the period).
    pub packets: usize,
    /// Its deliverables for them.
    pub deliverables: usize,
    /// Seconds from push to first delivery, one per packet.
    pub turnarounds: Vec<u64>,
    /// Median turnaround.
    pub median_secs: Option<u64>,
    /// 90th percentile turnaround.
    pub p90_secs: Option<u64>,
    /// Packets whose first delivery came by the due time (or the target
    /// turnaround where no due time was set).
    pub on_time: usize,
    /// Packets that could be judged on time (a due time or a target).
    pub on_time_judged: usize,
    /// Packets with an approved deliverable.
    pub approved: usize,
    /// Of those, approved on the first delivery.
    pub first_pass: usize,
    /// Returns by reason (`unspecified` without one).
    pub returns: BTreeMap<String, usize>,
    /// Mean of the signed ratings.
    pub mean_rating: Option<f64>,
    /// Ratings given.
    pub ratings: usize,
    /// The matter's targets for the task.
    pub target: Option<Target>,
    /// Whether it meets them.
    pub verdict: String,
}

impl Row {
    /// On-time share, 0 to 1.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.on_time_judged > 0).then(|| self.on_time as f64 / self.on_time_judged as f64)
    }

    /// First-pass approval share, 0 to 1.
    pub fn first_pass_rate(&self) -> Option<f64> {
        (self.approved > 0).then(|| self.first_pass as f64 / self.approved as f64)
    }
}

/// The value at quantile `q` (nearest rank) of sorted `v`.
fn quantile(v: &[u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

fn percent(rate: f64) -> String {
    format!("{:.0} %", rate * 100.0)
}

/// The report over packets pushed at or after `since`, with the targets
/// of `roster`.
pub fn evaluate(facts: &Facts, roster: Option<&Roster>, since: u64) -> Vec<Row> {
    // (org, task) → packet id → its deliveries in log order.
    let mut groups: BTreeMap<(String, &str), BTreeMap<&str, Vec<&Delivery>>> = BTreeMap::new();
    for d in &facts.deliveries {
        let Some(p) = facts.packets.get(&d.packet) else {
            continue;
        };
        if p.pushed < since {
            continue;
        }
        groups
            .entry((d.org.clone(), p.task.as_str()))
            .or_default()
            .entry(d.packet.as_str())
            .or_default()
            .push(d);
    }
    let mut rows = Vec::new();
    for ((provider, task_name), packets) in groups {
        let Ok(task) = Task::from_str(task_name) else {
            continue;
        };
        let target =
            roster.and_then(|r| r.targets.iter().find(|(t, _)| *t == task).map(|(_, t)| *t));
        let mut row = Row {
            provider,
            task,
            packets: packets.len(),
            deliverables: packets.values().map(Vec::len).sum(),
            turnarounds: Vec::new(),
            median_secs: None,
            p90_secs: None,
            on_time: 0,
            on_time_judged: 0,
            approved: 0,
            first_pass: 0,
            returns: BTreeMap::new(),
            mean_rating: None,
            ratings: 0,
            target,
            verdict: String::new(),
        };
        let mut rating_sum = 0u64;
        for (packet, deliveries) in &packets {
            let Some(p) = facts.packets.get(*packet) else {
                continue;
            };
            let first = deliveries[0];
            let took = first.at.saturating_sub(p.pushed);
            row.turnarounds.push(took);
            let deadline = p
                .due
                .or(target.map(|t| p.pushed.saturating_add(t.turnaround)));
            if let Some(deadline) = deadline {
                row.on_time_judged += 1;
                if first.at <= deadline {
                    row.on_time += 1;
                }
            }
            let mut approved_at = None;
            for (i, d) in deliveries.iter().enumerate() {
                if let Some(r) = facts.receipts.get(&d.id) {
                    if let Some(x) = r.rating {
                        rating_sum += u64::from(x);
                        row.ratings += 1;
                    }
                    match r.decision {
                        Decision::Approve => approved_at = approved_at.or(Some(i)),
                        Decision::Return => {
                            *row.returns
                                .entry(
                                    r.reason
                                        .map_or("unspecified", ReturnReason::as_str)
                                        .to_owned(),
                                )
                                .or_default() += 1;
                        }
                    }
                }
            }
            if let Some(i) = approved_at {
                row.approved += 1;
                if i == 0 {
                    row.first_pass += 1;
                }
            }
        }
        row.turnarounds.sort_unstable();
        row.median_secs = quantile(&row.turnarounds, 0.5);
        row.p90_secs = quantile(&row.turnarounds, 0.9);
        row.mean_rating = (row.ratings > 0).then(|| rating_sum as f64 / row.ratings as f64);
        row.verdict = verdict(&row);
        rows.push(row);
    }
    rows
}

fn verdict(row: &Row) -> String {
    if row.deliverables < MIN_DELIVERABLES {
        return format!(
            "too few deliverables to judge ({} < {MIN_DELIVERABLES})",
            row.deliverables
        );
    }
    let Some(t) = row.target else {
        return "no targets set (mdrop matter set-target)".into();
    };
    let mut below = Vec::new();
    let want_on_time = f64::from(t.on_time) / 10_000.0;
    match row.on_time_rate() {
        Some(r) if r < want_on_time => below.push(format!(
            "on-time {} < {}",
            percent(r),
            percent(want_on_time)
        )),
        _ => {}
    }
    let want_first = f64::from(t.first_pass) / 10_000.0;
    match row.first_pass_rate() {
        Some(r) if r < want_first => below.push(format!(
            "first-pass {} < {}",
            percent(r),
            percent(want_first)
        )),
        None if t.first_pass > 0 => below.push("first-pass: nothing approved yet".into()),
        _ => {}
    }
    if below.is_empty() {
        "meets targets".into()
    } else {
        format!("below target: {}", below.join(", "))
    }
}

#[cfg(test)]
mod tests;
