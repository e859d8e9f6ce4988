//! The signed matter roster: who may read a matter's files, decided by its
//! attorneys, never by the server.
//!
//! A matter's membership, roles, member keys, scope, acknowledgment version
//! and recovery recipient are the result of a hash chain of *statements*.
//! The first (`create`) is signed by the matter's creator; every later one
//! by a key that the chain up to that point makes an attorney of the
//! matter. The server validates, stores and logs statements but cannot make
//! one: a client verifies the chain itself and computes the recipients of a
//! packet from it ([`Roster::packet_recipients`]).
//!
//! # Statement format (version 1)
//!
//! A statement is a canonical message ([`crate::sign`]) with the domain
//! prefix `matterdrop/roster/v1`, then these fields in this order:
//!
//! ```text
//! matter=<matter id>
//! seq=<0 for the first statement, then 1, 2, …>
//! prev=<SHA-256 of the previous statement's bytes, 64 hex; empty for seq 0>
//! time=<Unix seconds; never earlier than the previous statement's>
//! signer=<principal id>
//! signer-key=<the signer's Ed25519 public key, 64 hex>
//! change=<create|add|remove|set-role|set-ack|set-scope|set-recovery|rekey|set-crypto|
//!         set-retention|hold|release|close|reopen|set-role-def|review-role-def|
//!         set-target|set-contact>
//! …the change's own fields, in the order below…
//! ```
//!
//! | change | fields |
//! |---|---|
//! | `create` | `title` (percent-encoded UTF-8), `firm`, `scope` (comma-separated task types), `ack-version` (1), `ack-sha256`, `recovery-type`, `recovery`, `age-type`, `age` (the creator's own age recipient; the creator becomes an attorney with `signer-key`) |
//! | `add` | `member`, `role`, `member-key`, `age-type`, `age` |
//! | `remove` | `member` |
//! | `set-role` | `member`, `role` |
//! | `set-ack` | `ack-version` (the next one), `ack-sha256` |
//! | `set-scope` | `scope` |
//! | `set-recovery` | `recovery-type`, `recovery` (both empty: no recovery recipient) |
//! | `rekey` | `member`, `member-key`, `age-type`, `age` |
//! | `set-crypto` | `require-pq` (`yes` or `no`) |
//! | `set-retention` | `retention` (seconds after a packet's or deliverable's upload when the server deletes it; 0: kept until changed) |
//! | `hold` | `reason` (percent-encoded UTF-8, may be empty): a legal hold; nothing of the matter is deleted until `release` |
//! | `release` | (none) |
//! | `close` | (none): no new packets, deliverables, shares or members until `reopen` |
//! | `reopen` | (none) |
//! | `set-role-def` | `role-version` (the next one, from 1), `role-sha256` (of the role definition text), `sign-off` (comma-separated task types whose work needs attorney sign-off; may be empty) |
//! | `review-role-def` | `role-version` (the current one, re-signed unchanged) |
//! | `set-contact` | `member` (a current member; it becomes its organization's point of contact on the matter) |
//! | `set-target` | `task`, `turnaround` (seconds, 1 s to 365 days), `on-time` and `first-pass` (basis points, 0 to 10000: 95 % is 9500) |
//!
//! While a matter is closed, only `remove`, `set-retention`, `hold`,
//! `release` and `reopen` extend its roster.
//!
//! Age recipients are typed: `age-type=mlkem768x25519` with `age=age1pq1…`
//! (hybrid, post-quantum) or `age-type=x25519` with `age=age1…` (classic);
//! an unknown type is refused ([`crate::agekey`]). While a matter requires
//! post-quantum keys (`set-crypto` `require-pq=yes`), an `add`, `rekey` or
//! `set-recovery` with a classic key is refused, and clients refuse to push
//! to a classic-only reader ([`Roster::check_post_quantum`]). The SHA-256 of a statement's bytes
//! is its hash; the next statement names it in `prev`. The signature is
//! plain Ed25519 over the bytes (checked with `verify_strict`).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

pub use crate::agekey::AgeKey;
use crate::ids;
use crate::roles::{Role, Task};
use crate::sign::{self, AckStatement, Canonical, Domain, SignError};

/// Longest statement accepted, in bytes.
pub const MAX_STATEMENT: usize = 8 * 1024;
/// Most statements one matter's roster may hold.
pub const MAX_STATEMENTS: u64 = 100_000;
/// Longest matter title, in bytes of UTF-8.
pub const MAX_TITLE: usize = 200;

/// Why a statement or a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The bytes are not a well-formed version-1 statement.
    #[error("roster statement {seq}: malformed: {why}")]
    Malformed {
        /// Its sequence number, if it could be read (else `?`).
        seq: String,
        /// What is wrong.
        why: String,
    },
    /// The statement does not extend the chain where it should.
    #[error("roster statement {seq}: {why}")]
    Chain {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// The signature does not verify with the signer's key.
    #[error("roster statement {seq}: the signature does not verify with {signer}'s key")]
    BadSignature {
        /// Its sequence number.
        seq: u64,
        /// The claimed signer.
        signer: String,
    },
    /// The signer may not make this statement.
    #[error("roster statement {seq}: {why}")]
    NotAllowed {
        /// Its sequence number.
        seq: u64,
        /// The rule that refused it.
        why: String,
    },
    /// A statement could not be encoded.
    #[error("roster statement: {0}")]
    Encode(#[from] SignError),
}

impl RosterError {
    fn malformed(seq: Option<u64>, why: impl Into<String>) -> Self {
        Self::Malformed {
            seq: seq.map_or_else(|| "?".to_owned(), |s| s.to_string()),
            why: why.into(),
        }
    }
}

/// A member's two public keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberKeys {
    /// Ed25519 public key (identity, signatures).
    pub signing_key: [u8; 32],
    /// age recipient (encryption).
    pub age: AgeKey,
}

impl MemberKeys {
    /// The safety code of `principal` with these keys
    /// ([`crate::keys::safety_code`]).
    pub fn safety_code(&self, principal: &str) -> String {
        crate::keys::safety_code(principal, &self.signing_key, self.age.recipient())
    }
}

/// One change to a matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The first statement: the matter and its creator (an attorney).
    Create {
        /// Title.
        title: String,
        /// The owning firm (the creator's organization).
        firm: String,
        /// Task types providers may be given.
        scope: Vec<Task>,
        /// SHA-256 of acknowledgment text version 1.
        ack_sha256: [u8; 32],
        /// Offline recovery recipient, if the firm uses one.
        recovery: Option<AgeKey>,
        /// The creator's age recipient.
        age: AgeKey,
    },
    /// A new member (or a removed one, again).
    Add {
        /// Principal id.
        member: String,
        /// Role.
        role: Role,
        /// Its keys, as the attorney checked them (safety code).
        keys: MemberKeys,
    },
    /// Ends a membership.
    Remove {
        /// Principal id.
        member: String,
    },
    /// Changes a current member's role.
    SetRole {
        /// Principal id.
        member: String,
        /// New role.
        role: Role,
    },
    /// Publishes a new acknowledgment version.
    SetAck {
        /// The new version (current + 1).
        version: u32,
        /// SHA-256 of its text.
        sha256: [u8; 32],
    },
    /// Replaces the scope.
    SetScope {
        /// Task types.
        scope: Vec<Task>,
    },
    /// Sets or clears the recovery recipient.
    SetRecovery {
        /// The recipient, or none.
        recovery: Option<AgeKey>,
    },
    /// Replaces a current member's keys (a lost laptop), after the attorney
    /// checked the new safety code.
    Rekey {
        /// Principal id.
        member: String,
        /// The new keys.
        keys: MemberKeys,
    },
    /// Requires (or stops requiring) hybrid post-quantum age keys of every
    /// reader.
    SetCrypto {
        /// Whether classic-only readers are refused.
        require_pq: bool,
    },
    /// Sets how long the server keeps each packet's and deliverable's
    /// files after their upload (0: until this changes).
    SetRetention {
        /// Seconds.
        seconds: u64,
    },
    /// Places the matter under legal hold: nothing of it is deleted (by
    /// the server's retention or a member's `purge`) until `Release`.
    Hold {
        /// Why (shown to members; may be empty).
        reason: String,
    },
    /// Ends the legal hold.
    Release,
    /// Closes the matter to new work.
    Close,
    /// Opens a closed matter again.
    Reopen,
    /// Publishes a new version of the matter's role definition (what the
    /// provider does, what needs attorney sign-off, what is off limits).
    SetRoleDef {
        /// The new version (current + 1, from 1).
        version: u32,
        /// SHA-256 of its text.
        sha256: [u8; 32],
        /// Task types whose work needs attorney sign-off.
        sign_off: Vec<Task>,
    },
    /// Confirms the current role definition unchanged (its review date).
    ReviewRoleDef {
        /// The current version.
        version: u32,
    },
    /// Names a current member its organization's point of contact.
    SetContact {
        /// Principal id.
        member: String,
    },
    /// Sets the targets one task type's work is judged against.
    SetTarget {
        /// The task type.
        task: Task,
        /// The targets.
        target: Target,
    },
}

/// What one task type's work is judged against (the evaluation report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Turnaround: from the packet's push to its delivery, in seconds.
    pub turnaround: u64,
    /// Share of deliveries within the turnaround (or the packet's due
    /// time), in basis points.
    pub on_time: u16,
    /// Share of deliverables approved without a return, in basis points.
    pub first_pass: u16,
}

/// The longest turnaround target: a year.
pub const MAX_TURNAROUND: u64 = 365 * 24 * 3600;

/// The matter's role definition, as the roster last set or reviewed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    /// Version, from 1.
    pub version: u32,
    /// SHA-256 of its text.
    pub sha256: [u8; 32],
    /// Task types whose work needs attorney sign-off.
    pub sign_off: Vec<Task>,
    /// When it was last set or reviewed (the statement's time).
    pub reviewed: u64,
    /// By whom.
    pub reviewed_by: String,
}

/// The longest retention a roster accepts: 100 years.
pub const MAX_RETENTION: u64 = 100 * 366 * 24 * 3600;

/// A legal hold in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The attorney who placed it.
    pub by: String,
    /// When (the statement's time).
    pub since: u64,
    /// The statement that placed it.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// A closed matter's closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The attorney who closed it.
    pub by: String,
    /// When (the statement's time).
    pub at: u64,
}

impl Change {
    /// The `change=` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Add { .. } => "add",
            Self::Remove { .. } => "remove",
            Self::SetRole { .. } => "set-role",
            Self::SetAck { .. } => "set-ack",
            Self::SetScope { .. } => "set-scope",
            Self::SetRecovery { .. } => "set-recovery",
            Self::Rekey { .. } => "rekey",
            Self::SetCrypto { .. } => "set-crypto",
            Self::SetRetention { .. } => "set-retention",
            Self::Hold { .. } => "hold",
            Self::Release => "release",
            Self::Close => "close",
            Self::Reopen => "reopen",
            Self::SetRoleDef { .. } => "set-role-def",
            Self::ReviewRoleDef { .. } => "review-role-def",
            Self::SetTarget { .. } => "set-target",
            Self::SetContact { .. } => "set-contact",
        }
    }

    /// The member a change is about, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Self::Add { member, .. }
            | Self::Remove { member }
            | Self::SetRole { member, .. }
            | Self::Rekey { member, .. }
            | Self::SetContact { member } => Some(member),
            Self::Create { .. }
            | Self::SetAck { .. }
            | Self::SetScope { .. }
            | Self::SetRecovery { .. }
            | Self::SetCrypto { .. }
            | Self::SetRetention { .. }
            | Self::Hold { .. }
            | Self::Release
            | Self::Close
            | Self::Reopen
            | Self::SetRoleDef { .. }
            | Self::ReviewRoleDef { .. }
            | Self::SetTarget { .. } => None,
        }
    }
}

/// One roster statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Matter id.
    pub matter: String,
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Hash of the previous statement; `None` only for seq 0.
    pub prev: Option<[u8; 32]>,
    /// Unix seconds.
    pub time: u64,
    /// Who signs it.
    pub signer: String,
    /// The key it is signed with.
    pub signer_key: [u8; 32],
    /// What it changes.
    pub change: Change,
}

/// A statement's bytes and its signature, as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// The canonical statement bytes.
    pub statement: Vec<u8>,
    /// Ed25519 signature over them.
    pub signature: Vec<u8>,
}

impl SignedStatement {
    /// SHA-256 of the statement bytes: what the next statement's `prev`
    /// names.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.statement).into()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(seq: Option<u64>, field: &str, s: &str) -> Result<[u8; 32], RosterError> {
    let bad = || RosterError::malformed(seq, format!("{field} is not 64 lowercase hex digits"));
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Checks the task types of a role definition's sign-off list: task types
/// providers may do, each once (the list may be empty).
pub fn check_sign_off(tasks: &[Task]) -> Result<(), String> {
    if tasks.is_empty() {
        return Ok(());
    }
    check_scope(tasks).map_err(|e| format!("sign-off: {e}"))
}

/// The longest hold reason, in bytes of UTF-8.
pub const MAX_REASON: usize = 500;

/// Refuses a hold reason that is too long or holds control characters.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.len() > MAX_REASON {
        return Err(format!("a hold reason is at most {MAX_REASON} bytes"));
    }
    if reason.chars().any(char::is_control) {
        return Err("a hold reason may not contain control characters".into());
    }
    Ok(())
}

/// Percent-encodes a title: bytes outside printable ASCII, and `%`, become
/// `%XX` (uppercase hex), so any UTF-8 title fits a canonical field and an
/// ASCII one reads as itself.
pub fn encode_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_text`], refusing anything it would not produce.
pub fn decode_text(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .filter(|h| {
                    h.bytes()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                })
                .ok_or("bad percent escape")?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| "bad percent escape")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| "not UTF-8")?;
    if encode_text(&text) != s {
        return Err("not in canonical percent-encoding".into());
    }
    Ok(text)
}

fn scope_str(scope: &[Task]) -> String {
    scope
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a title: 1 to [`MAX_TITLE`] bytes, no control characters, not
/// only spaces.
pub fn check_title(title: &str) -> Result<(), String> {
    if title.trim().is_empty() || title.len() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(format!(
            "a title must be 1 to {MAX_TITLE} bytes without control characters"
        ));
    }
    Ok(())
}

/// Checks a scope: at least one task type, no repeats, only task types
/// providers may do.
pub fn check_scope(scope: &[Task]) -> Result<(), String> {
    if scope.is_empty() {
        return Err("a scope needs at least one task type".into());
    }
    for (i, t) in scope.iter().enumerate() {
        if !t.allowed_for_providers() {
            return Err(format!(
                "task {t} stays in-house and cannot be in a matter's scope"
            ));
        }
        if scope[..i].contains(t) {
            return Err(format!("task type {t} is listed twice"));
        }
    }
    Ok(())
}

fn parse_scope(seq: Option<u64>, s: &str) -> Result<Vec<Task>, RosterError> {
    s.split(',')
        .map(|n| Task::from_str(n).map_err(|e| RosterError::malformed(seq, e.to_string())))
        .collect()
}

impl Statement {
    /// The canonical bytes to sign.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RosterError> {
        let mut c = Canonical::new(Domain::Roster);
        c.str("matter", &self.matter)?
            .u64("seq", self.seq)?
            .str("prev", &self.prev.map(|p| hex(&p)).unwrap_or_default())?
            .u64("time", self.time)?
            .str("signer", &self.signer)?
            .bytes("signer-key", &self.signer_key)?
            .str("change", self.change.name())?;
        fn age(c: &mut Canonical, a: &AgeKey) -> Result<(), SignError> {
            c.str("age-type", a.kind())?.str("age", a.recipient())?;
            Ok(())
        }
        fn recovery(c: &mut Canonical, r: Option<&AgeKey>) -> Result<(), SignError> {
            c.str("recovery-type", r.map_or("", AgeKey::kind))?
                .str("recovery", r.map_or("", AgeKey::recipient))?;
            Ok(())
        }
        match &self.change {
            Change::Create {
                title,
                firm,
                scope,
                ack_sha256,
                recovery: r,
                age: a,
            } => {
                c.str("title", &encode_text(title))?
                    .str("firm", firm)?
                    .str("scope", &scope_str(scope))?
                    .u64("ack-version", 1)?
                    .hash("ack-sha256", ack_sha256)?;
                recovery(&mut c, r.as_ref())?;
                age(&mut c, a)?;
            }
            Change::Add { member, role, keys } => {
                c.str("member", member)?
                    .str("role", role.as_str())?
                    .bytes("member-key", &keys.signing_key)?;
                age(&mut c, &keys.age)?;
            }
            Change::Remove { member } => {
                c.str("member", member)?;
            }
            Change::SetRole { member, role } => {
                c.str("member", member)?.str("role", role.as_str())?;
            }
            Change::SetAck { version, sha256 } => {
                c.u64("ack-version", u64::from(*version))?
                    .hash("ack-sha256", sha256)?;
            }
            Change::SetScope { scope } => {
                c.str("scope", &scope_str(scope))?;
            }
            Change::SetRecovery { recovery: r } => recovery(&mut c, r.as_ref())?,
            Change::Rekey { member, keys } => {
                c.str("member", member)?
                    .bytes("member-key", &keys.signing_key)?;
                age(&mut c, &keys.age)?;
            }
            Change::SetCrypto { require_pq } => {
                c.str("require-pq", if *require_pq { "yes" } else { "no" })?;
            }
            Change::SetRetention { seconds } => {
                c.u64("retention", *seconds)?;
            }
            Change::Hold { reason } => {
                c.str("reason", &encode_text(reason))?;
            }
            Change::Release | Change::Close | Change::Reopen => {}
            Change::SetRoleDef {
                version,
                sha256,
                sign_off,
            } => {
                c.u64("role-version", u64::from(*version))?
                    .hash("role-sha256", sha256)?
                    .str("sign-off", &scope_str(sign_off))?;
            }
            Change::ReviewRoleDef { version } => {
                c.u64("role-version", u64::from(*version))?;
            }
            Change::SetContact { member } => {
                c.str("member", member)?;
            }
            Change::SetTarget { task, target } => {
                c.str("task", task.as_str())?
                    .u64("turnaround", target.turnaround)?
                    .u64("on-time", u64::from(target.on_time))?
                    .u64("first-pass", u64::from(target.first_pass))?;
            }
        }
        Ok(c.finish())
    }

    /// Signs the statement.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedStatement, RosterError> {
        if key.verifying_key().to_bytes() != self.signer_key {
            return Err(RosterError::NotAllowed {
                seq: self.seq,
                why: "the statement names another signer key than the one signing it".into(),
            });
        }
        let statement = self.to_bytes()?;
        let signature = sign::sign(key, &statement).to_vec();
        Ok(SignedStatement {
            statement,
            signature,
        })
    }

    /// Parses canonical statement bytes (nothing is verified but the form).
    pub fn parse(bytes: &[u8]) -> Result<Self, RosterError> {
        if bytes.len() > MAX_STATEMENT {
            return Err(RosterError::malformed(None, "longer than 8 KiB"));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| RosterError::malformed(None, "not UTF-8"))?;
        let prefix = std::str::from_utf8(Domain::Roster.prefix()).unwrap_or_default();
        let body = text
            .strip_prefix(prefix)
            .ok_or_else(|| RosterError::malformed(None, "not a matterdrop/roster/v1 statement"))?;
        let mut f = Fields {
            lines: body.split_terminator('\n'),
            seq: None,
        };
        let matter = f.take("matter")?.to_owned();
        let n: u64 = f
            .take("seq")?
            .parse()
            .map_err(|_| RosterError::malformed(None, "seq is not a number"))?;
        f.seq = Some(n);
        let prev = match f.take("prev")? {
            "" => None,
            p => Some(unhex32(f.seq, "prev", p)?),
        };
        let time = f.number("time")?;
        let signer = f.take("signer")?.to_owned();
        let signer_key = f.hash("signer-key")?;
        let change = match f.take("change")? {
            "create" => {
                let title = decode_text(f.take("title")?)
                    .map_err(|e| RosterError::malformed(f.seq, format!("title: {e}")))?;
                let firm = f.take("firm")?.to_owned();
                let scope = parse_scope(f.seq, f.take("scope")?)?;
                if f.take("ack-version")? != "1" {
                    return Err(RosterError::malformed(
                        f.seq,
                        "create must set ack-version 1",
                    ));
                }
                Change::Create {
                    title,
                    firm,
                    scope,
                    ack_sha256: f.hash("ack-sha256")?,
                    recovery: f.recovery()?,
                    age: f.age()?,
                }
            }
            "add" => Change::Add {
                member: f.take("member")?.to_owned(),
                role: f.role()?,
                keys: MemberKeys {
                    signing_key: f.hash("member-key")?,
                    age: f.age()?,
                },
            },
            "remove" => Change::Remove {
                member: f.take("member")?.to_owned(),
            },
            "set-role" => Change::SetRole {
                member: f.take("member")?.to_owned(),
                role: f.role()?,
            },
            "set-ack" => Change::SetAck {
                version: u32::try_from(f.number("ack-version")?)
                    .map_err(|_| RosterError::malformed(f.seq, "ack-version is too large"))?,
                sha256: f.hash("ack-sha256")?,
            },
            "set-scope" => Change::SetScope {
                scope: parse_scope(f.seq, f.take("scope")?)?,
            },
            "set-recovery" => Change::SetRecovery {
                recovery: f.recovery()?,
            },
            "rekey" => Change::Rekey {
                member: f.take("member")?.to_owned(),
                keys: MemberKeys {
                    signing_key: f.hash("member-key")?,
                    age: f.age()?,
                },
            },
            "set-crypto" => Change::SetCrypto {
                require_pq: match f.take("require-pq")? {
                    "yes" => true,
                    "no" => false,
                    _ => {
                        return Err(RosterError::malformed(
                            f.seq,
                            "require-pq must be yes or no",
                        ));
                    }
                },
            },
            "set-retention" => Change::SetRetention {
                seconds: f.number("retention")?,
            },
            "hold" => Change::Hold {
                reason: decode_text(f.take("reason")?)
                    .map_err(|e| RosterError::malformed(f.seq, format!("reason: {e}")))?,
            },
            "release" => Change::Release,
            "close" => Change::Close,
            "reopen" => Change::Reopen,
            "set-role-def" => Change::SetRoleDef {
                version: f.version("role-version")?,
                sha256: f.hash("role-sha256")?,
                sign_off: match f.take("sign-off")? {
                    "" => Vec::new(),
                    s => parse_scope(f.seq, s)?,
                },
            },
            "review-role-def" => Change::ReviewRoleDef {
                version: f.version("role-version")?,
            },
            "set-contact" => Change::SetContact {
                member: f.take("member")?.to_owned(),
            },
            "set-target" => Change::SetTarget {
                task: Task::from_str(f.take("task")?)
                    .map_err(|e| RosterError::malformed(f.seq, e.to_string()))?,
                target: Target {
                    turnaround: f.number("turnaround")?,
                    on_time: f.basis_points("on-time")?,
                    first_pass: f.basis_points("first-pass")?,
                },
            },
            other => {
                return Err(RosterError::malformed(
                    f.seq,
                    format!("unknown change {other:?}"),
                ));
            }
        };
        if f.lines.next().is_some() {
            return Err(RosterError::malformed(f.seq, "trailing fields"));
        }
        let s = Self {
            matter,
            seq: n,
            prev,
            time,
            signer,
            signer_key,
            change,
        };
        if s.to_bytes()? != bytes {
            return Err(RosterError::malformed(f.seq, "not in canonical form"));
        }
        Ok(s)
    }
}

/// The fields of a statement being parsed, in order.
struct Fields<'a> {
    lines: std::str::SplitTerminator<'a, char>,
    seq: Option<u64>,
}

impl<'a> Fields<'a> {
    fn take(&mut self, name: &str) -> Result<&'a str, RosterError> {
        let line = self
            .lines
            .next()
            .ok_or_else(|| RosterError::malformed(self.seq, format!("missing field {name}")))?;
        match line.split_once('=') {
            Some((k, v)) if k == name => Ok(v),
            _ => Err(RosterError::malformed(
                self.seq,
                format!("expected field {name}, found {line:?}"),
            )),
        }
    }

    fn number(&mut self, name: &str) -> Result<u64, RosterError> {
        let v = self.take(name)?;
        v.parse()
            .map_err(|_| RosterError::malformed(self.seq, format!("{name} is not a number")))
    }

    fn basis_points(&mut self, name: &str) -> Result<u16, RosterError> {
        u16::try_from(self.number(name)?)
            .ok()
            .filter(|v| *v <= 10_000)
            .ok_or_else(|| RosterError::malformed(self.seq, format!("{name} is over 10000")))
    }

    fn version(&mut self, name: &str) -> Result<u32, RosterError> {
        u32::try_from(self.number(name)?)
            .map_err(|_| RosterError::malformed(self.seq, format!("{name} is too large")))
    }

    fn hash(&mut self, name: &str) -> Result<[u8; 32], RosterError> {
        let v = self.take(name)?;
        unhex32(self.seq, name, v)
    }

    fn role(&mut self) -> Result<Role, RosterError> {
        let v = self.take("role")?;
        Role::from_str(v).map_err(|e| RosterError::malformed(self.seq, e.to_string()))
    }

    fn age(&mut self) -> Result<AgeKey, RosterError> {
        let kind = self.take("age-type")?;
        let value = self.take("age")?;
        AgeKey::parse(kind, value).map_err(|e| RosterError::malformed(self.seq, e))
    }

    fn recovery(&mut self) -> Result<Option<AgeKey>, RosterError> {
        let kind = self.take("recovery-type")?;
        let value = self.take("recovery")?;
        match (kind, value) {
            ("", "") => Ok(None),
            (k, v) => AgeKey::parse(k, v)
                .map(Some)
                .map_err(|e| RosterError::malformed(self.seq, e)),
        }
    }
}

/// A current member of a matter, per its roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Role.
    pub role: Role,
    /// Keys.
    pub keys: MemberKeys,
    /// Sequence number of the statement that made this membership (or its
    /// keys) current.
    pub since: u64,
}

/// A principal a packet is encrypted to, per the roster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RosterRecipient {
    /// Principal id.
    pub principal: String,
    /// Role on the matter, or `sender`.
    pub role: String,
    /// Its Ed25519 key.
    pub signing_key: [u8; 32],
    /// Its age recipient.
    pub age: AgeKey,
}

/// A provider member's acknowledgment, as the server stores and sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAck {
    /// Who signed.
    pub principal: String,
    /// Version signed.
    pub version: u32,
    /// SHA-256 of the text signed.
    pub text_sha256: [u8; 32],
    /// Time in the signed statement.
    pub signed_at: u64,
    /// The Ed25519 signature.
    pub signature: Vec<u8>,
}

/// The state a verified chain leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Matter id.
    pub matter: String,
    /// Title.
    pub title: String,
    /// Owning firm.
    pub firm: String,
    /// Scope.
    pub scope: Vec<Task>,
    /// Current acknowledgment version.
    pub ack_version: u32,
    /// SHA-256 of its text.
    pub ack_sha256: [u8; 32],
    /// Recovery recipient.
    pub recovery: Option<AgeKey>,
    /// Whether every reader must have a hybrid (post-quantum) age key.
    pub require_pq: bool,
    /// Current members by id.
    pub members: BTreeMap<String, Member>,
    /// The creator (the trust root clients pin) and its key.
    pub creator: (String, [u8; 32]),
    /// Statements applied.
    pub len: u64,
    /// Hash of the last statement.
    pub head: [u8; 32],
    /// Time of the last statement.
    pub time: u64,
    /// Every (member, keys) the chain ever made current, for checking
    /// packets pushed under an earlier roster.
    pub ever: BTreeSet<(String, MemberKeys)>,
    /// The same, in chain order, with the statement that did it.
    pub history: Vec<(String, MemberKeys, u64)>,
    /// Every recovery recipient the chain ever set.
    pub ever_recovery: BTreeSet<AgeKey>,
    /// Seconds the server keeps each upload (0: until this changes).
    pub retention: u64,
    /// The legal hold in effect, if any.
    pub hold: Option<Hold>,
    /// Set while the matter is closed.
    pub closed: Option<Closing>,
    /// The role definition, once one is set.
    pub role_def: Option<RoleDef>,
    /// Targets per task type, in the order first set.
    pub targets: Vec<(Task, Target)>,
    /// Each organization's point of contact on the matter.
    pub contacts: BTreeMap<String, String>,
}

/// Whether a signature is checked when applying (statements from this
/// client's own verified cache need not be checked again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Verify every signature.
    Signatures,
    /// The statements were verified before (a local cache).
    Cached,
}

fn org_of(id: &str) -> Option<&str> {
    ids::validate_principal(id).ok()
}

impl Roster {
    /// Verifies the first statement and returns the roster it creates.
    pub fn genesis(entry: &SignedStatement, check: Check) -> Result<Self, RosterError> {
        let s = Statement::parse(&entry.statement)?;
        let not = |why: String| RosterError::NotAllowed { seq: s.seq, why };
        if s.seq != 0 || s.prev.is_some() {
            return Err(RosterError::Chain {
                seq: s.seq,
                why: "the first statement must have seq 0 and no prev".into(),
            });
        }
        let Change::Create {
            title,
            firm,
            scope,
            ack_sha256,
            recovery,
            age,
        } = &s.change
        else {
            return Err(not(format!(
                "the first statement must create the matter, not {}",
                s.change.name()
            )));
        };
        ids::validate_matter(&s.matter).map_err(|e| not(e.to_string()))?;
        check_title(title).map_err(not)?;
        check_scope(scope).map_err(not)?;
        if org_of(&s.signer) != Some(firm.as_str()) {
            return Err(not(format!(
                "the creator {} is not a member of the owning firm {firm}",
                s.signer
            )));
        }
        verify_sig(&s, entry, check)?;
        let keys = MemberKeys {
            signing_key: s.signer_key,
            age: age.clone(),
        };
        let mut r = Self {
            matter: s.matter.clone(),
            title: title.clone(),
            firm: firm.clone(),
            scope: scope.clone(),
            ack_version: 1,
            ack_sha256: *ack_sha256,
            recovery: recovery.clone(),
            require_pq: false,
            members: BTreeMap::new(),
            creator: (s.signer.clone(), s.signer_key),
            len: 1,
            head: entry.hash(),
            time: s.time,
            ever: BTreeSet::new(),
            history: Vec::new(),
            ever_recovery: recovery.iter().cloned().collect(),
            retention: 0,
            hold: None,
            closed: None,
            role_def: None,
            targets: Vec::new(),
            contacts: BTreeMap::new(),
        };
        r.sanction(&s.signer, &keys, 0);
        r.members.insert(
            s.signer.clone(),
            Member {
                role: Role::Attorney,
                keys,
                since: 0,
            },
        );
        Ok(r)
    }

    /// Verifies a whole chain from its first statement.
    pub fn from_chain(chain: &[SignedStatement], check: Check) -> Result<Self, RosterError> {
        let (first, rest) = chain.split_first().ok_or_else(|| RosterError::Chain {
            seq: 0,
            why: "the roster is empty".into(),
        })?;
        let mut r = Self::genesis(first, check)?;
        for e in rest {
            r.apply(e, check)?;
        }
        Ok(r)
    }

    /// Checks that `entry` validly extends this roster and applies it.
    /// Nothing changes on an error.
    pub fn apply(&mut self, entry: &SignedStatement, check: Check) -> Result<(), RosterError> {
        let s = Statement::parse(&entry.statement)?;
        let seq = s.seq;
        let chain = |why: String| RosterError::Chain { seq, why };
        let not = |why: String| RosterError::NotAllowed { seq, why };
        if s.matter != self.matter {
            return Err(chain(format!(
                "is about matter {}, not {}",
                s.matter, self.matter
            )));
        }
        if s.seq != self.len {
            return Err(chain(format!(
                "does not follow statement {} (a gap, a replay or a fork)",
                self.len - 1
            )));
        }
        if self.len >= MAX_STATEMENTS {
            return Err(not(format!(
                "a roster holds at most {MAX_STATEMENTS} statements"
            )));
        }
        if s.prev != Some(self.head) {
            return Err(chain(format!(
                "does not name statement {}'s hash as prev (a fork or a rewritten history)",
                self.len - 1
            )));
        }
        if s.time < self.time {
            return Err(chain("is dated before the statement it follows".into()));
        }
        match self.members.get(&s.signer) {
            Some(m) if m.role == Role::Attorney && m.keys.signing_key == s.signer_key => {}
            Some(m) if m.role == Role::Attorney => {
                return Err(not(format!(
                    "signed by {} with a key the roster does not give them",
                    s.signer
                )));
            }
            _ => {
                return Err(not(format!(
                    "signed by {}, who is not an attorney of matter {}",
                    s.signer, self.matter
                )));
            }
        }
        verify_sig(&s, entry, check)?;
        // `change` checks everything before it changes anything.
        self.change(&s).map_err(not)?;
        self.len += 1;
        self.head = entry.hash();
        self.time = s.time;
        Ok(())
    }

    fn sanction(&mut self, id: &str, keys: &MemberKeys, seq: u64) {
        self.ever.insert((id.to_owned(), keys.clone()));
        self.history.push((id.to_owned(), keys.clone(), seq));
    }

    /// The keys the chain gave `id` last (current or, for a removed member,
    /// when it was removed).
    pub fn latest_keys(&self, id: &str) -> Option<&MemberKeys> {
        self.history
            .iter()
            .rev()
            .find(|(who, _, _)| who == id)
            .map(|(_, k, _)| k)
    }

    fn attorneys(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Attorney)
            .count()
    }

    fn role_fits(&self, member: &str, role: Role) -> Result<(), String> {
        let org = org_of(member).ok_or_else(|| format!("{member:?} is not a principal id"))?;
        match role {
            Role::Attorney | Role::Paralegal if org != self.firm => Err(format!(
                "{member} cannot be {}: attorneys and paralegals belong to the matter's firm {}",
                role.with_article(),
                self.firm
            )),
            Role::Provider if org == self.firm => Err(format!(
                "{member} cannot be a provider: providers belong to an organization other than the firm {}",
                self.firm
            )),
            _ => Ok(()),
        }
    }

    fn check_keys(&self, member: &str, keys: &MemberKeys) -> Result<(), String> {
        sign::verifying_key_from_bytes(&keys.signing_key)
            .map_err(|e| format!("{member}'s signing key: {e}"))?;
        if let Some((other, _)) = self
            .members
            .iter()
            .find(|(id, m)| id.as_str() != member && m.keys.signing_key == keys.signing_key)
        {
            return Err(format!("{member}'s signing key is already {other}'s"));
        }
        Ok(())
    }

    /// Refuses a classic key while the matter requires post-quantum keys.
    fn pq_fits(&self, whose: &str, age: &AgeKey) -> Result<(), String> {
        if self.require_pq && !age.is_post_quantum() {
            return Err(format!(
                "matter {} requires post-quantum keys and {whose} age key is classic X25519 \
                 (a hybrid key comes from `mdrop keys upgrade`)",
                self.matter
            ));
        }
        Ok(())
    }

    /// With `require-pq`, refuses a push to any classic-only reader (a
    /// member who had a classic key before the requirement, or a classic
    /// recovery recipient), naming each.
    pub fn check_post_quantum(
        &self,
        readers: &[RosterRecipient],
        recovery: Option<&AgeKey>,
    ) -> Result<(), String> {
        if !self.require_pq {
            return Ok(());
        }
        let mut classic: Vec<&str> = readers
            .iter()
            .filter(|r| !r.age.is_post_quantum())
            .map(|r| r.principal.as_str())
            .collect();
        if recovery.is_some_and(|r| !r.is_post_quantum()) {
            classic.push("the recovery recipient");
        }
        if classic.is_empty() {
            return Ok(());
        }
        Err(format!(
            "matter {} requires post-quantum keys, and these readers have only a classic \
             X25519 key: {}; nothing was encrypted (they run `mdrop keys upgrade`, then an \
             attorney runs `mdrop matter rekey`)",
            self.matter,
            classic.join(", ")
        ))
    }

    fn change(&mut self, s: &Statement) -> Result<(), String> {
        if let Some(c) = &self.closed {
            if !matches!(
                s.change,
                Change::Remove { .. }
                    | Change::SetRetention { .. }
                    | Change::Hold { .. }
                    | Change::Release
                    | Change::Reopen
            ) {
                return Err(format!(
                    "matter {} was closed by {} (an attorney can `matter reopen` it); a closed \
                     matter takes no {} statement",
                    self.matter,
                    c.by,
                    s.change.name()
                ));
            }
        }
        match &s.change {
            Change::Create { .. } => Err("a matter is created only once".into()),
            Change::Add { member, role, keys } => {
                if self.members.contains_key(member) {
                    return Err(format!("{member} is already a member (use set-role)"));
                }
                self.role_fits(member, *role)?;
                self.check_keys(member, keys)?;
                self.pq_fits(&format!("{member}'s"), &keys.age)?;
                self.sanction(member, keys, s.seq);
                self.members.insert(
                    member.clone(),
                    Member {
                        role: *role,
                        keys: keys.clone(),
                        since: s.seq,
                    },
                );
                Ok(())
            }
            Change::Remove { member } => {
                let m = self
                    .members
                    .get(member)
                    .ok_or_else(|| format!("{member} is not a member"))?;
                if m.role == Role::Attorney && self.attorneys() == 1 {
                    return Err(format!("{member} is the matter's last attorney"));
                }
                self.members.remove(member);
                // A removed member is no one's point of contact.
                self.contacts.retain(|_, c| c != member);
                Ok(())
            }
            Change::SetRole { member, role } => {
                let current = self
                    .members
                    .get(member)
                    .ok_or_else(|| format!("{member} is not a member"))?
                    .role;
                if current == *role {
                    return Err(format!("{member} is already {}", role.with_article()));
                }
                if current == Role::Attorney && self.attorneys() == 1 {
                    return Err(format!("{member} is the matter's last attorney"));
                }
                self.role_fits(member, *role)?;
                if *role != Role::Auditor {
                    if let Some(m) = self.members.get(member) {
                        self.pq_fits(&format!("{member}'s"), &m.keys.age)?;
                    }
                }
                if let Some(m) = self.members.get_mut(member) {
                    m.role = *role;
                    m.since = s.seq;
                }
                Ok(())
            }
            Change::SetAck { version, sha256 } => {
                if *version != self.ack_version + 1 {
                    return Err(format!(
                        "acknowledgment version {version} does not follow version {}",
                        self.ack_version
                    ));
                }
                self.ack_version = *version;
                self.ack_sha256 = *sha256;
                Ok(())
            }
            Change::SetScope { scope } => {
                check_scope(scope)?;
                self.scope = scope.clone();
                Ok(())
            }
            Change::SetRecovery { recovery } => {
                if let Some(r) = recovery {
                    self.pq_fits("the recovery recipient's", r)?;
                    self.ever_recovery.insert(r.clone());
                }
                self.recovery = recovery.clone();
                Ok(())
            }
            Change::Rekey { member, keys } => {
                let old = self
                    .members
                    .get(member)
                    .ok_or_else(|| format!("{member} is not a member"))?;
                if old.keys.signing_key == keys.signing_key && old.keys.age == keys.age {
                    return Err(format!("{member} already has these keys"));
                }
                self.check_keys(member, keys)?;
                self.pq_fits(&format!("{member}'s new"), &keys.age)?;
                self.sanction(member, keys, s.seq);
                if let Some(m) = self.members.get_mut(member) {
                    m.keys = keys.clone();
                    m.since = s.seq;
                }
                Ok(())
            }
            Change::SetCrypto { require_pq } => {
                if *require_pq == self.require_pq {
                    return Err(format!(
                        "matter {} already {} post-quantum keys",
                        self.matter,
                        if self.require_pq {
                            "requires"
                        } else {
                            "does not require"
                        }
                    ));
                }
                self.require_pq = *require_pq;
                Ok(())
            }
            Change::SetRetention { seconds } => {
                if *seconds > MAX_RETENTION {
                    return Err(format!(
                        "a retention of {seconds} s is longer than 100 years; use 0 to keep files until the retention changes"
                    ));
                }
                if *seconds == self.retention {
                    return Err(format!("matter {} already has this retention", self.matter));
                }
                self.retention = *seconds;
                Ok(())
            }
            Change::Hold { reason } => {
                check_reason(reason)?;
                if let Some(h) = &self.hold {
                    return Err(format!(
                        "matter {} is already under the legal hold {} placed (statement {})",
                        self.matter, h.by, h.seq
                    ));
                }
                self.hold = Some(Hold {
                    by: s.signer.clone(),
                    since: s.time,
                    seq: s.seq,
                    reason: reason.clone(),
                });
                Ok(())
            }
            Change::Release => {
                if self.hold.is_none() {
                    return Err(format!(
                        "matter {} is not under legal hold; there is nothing to release",
                        self.matter
                    ));
                }
                self.hold = None;
                Ok(())
            }
            Change::Close => {
                // (A second close is refused above: closed matters take none.)
                self.closed = Some(Closing {
                    by: s.signer.clone(),
                    at: s.time,
                });
                Ok(())
            }
            Change::Reopen => {
                if self.closed.is_none() {
                    return Err(format!("matter {} is not closed", self.matter));
                }
                self.closed = None;
                Ok(())
            }
            Change::SetRoleDef {
                version,
                sha256,
                sign_off,
            } => {
                let current = self.role_def.as_ref().map_or(0, |r| r.version);
                if *version != current + 1 {
                    return Err(format!(
                        "role definition version {version} does not follow version {current}"
                    ));
                }
                check_sign_off(sign_off)?;
                self.role_def = Some(RoleDef {
                    version: *version,
                    sha256: *sha256,
                    sign_off: sign_off.clone(),
                    reviewed: s.time,
                    reviewed_by: s.signer.clone(),
                });
                Ok(())
            }
            Change::ReviewRoleDef { version } => {
                let r = self.role_def.as_mut().ok_or_else(|| {
                    format!("matter {} has no role definition to review", self.matter)
                })?;
                if *version != r.version {
                    return Err(format!(
                        "the current role definition is version {}, not {version}",
                        r.version
                    ));
                }
                r.reviewed = s.time;
                r.reviewed_by.clone_from(&s.signer);
                Ok(())
            }
            Change::SetContact { member } => {
                if !self.members.contains_key(member) {
                    return Err(format!(
                        "{member} is not a member of matter {}",
                        self.matter
                    ));
                }
                let org = org_of(member)
                    .ok_or_else(|| format!("{member:?} is not a principal id"))?
                    .to_owned();
                if self.contacts.get(&org) == Some(member) {
                    return Err(format!("{member} is already {org}'s point of contact"));
                }
                self.contacts.insert(org, member.clone());
                Ok(())
            }
            Change::SetTarget { task, target } => {
                check_scope(std::slice::from_ref(task))?;
                if target.turnaround == 0 || target.turnaround > MAX_TURNAROUND {
                    return Err("a turnaround target is 1 second to 365 days".into());
                }
                if target.on_time > 10_000 || target.first_pass > 10_000 {
                    return Err("a rate target is 0 to 100 %".into());
                }
                match self.targets.iter_mut().find(|(t, _)| t == task) {
                    Some((_, old)) if old == target => Err(format!(
                        "matter {} already has these targets for {task}",
                        self.matter
                    )),
                    Some((_, old)) => {
                        *old = *target;
                        Ok(())
                    }
                    None => {
                        self.targets.push((*task, *target));
                        Ok(())
                    }
                }
            }
        }
    }

    /// When the server may delete an upload made at `uploaded` (Unix
    /// seconds) under this roster: never while a legal hold is in effect
    /// or without a retention.
    pub fn deletable_at(&self, uploaded: u64) -> Option<u64> {
        if self.hold.is_some() || self.retention == 0 {
            return None;
        }
        Some(uploaded.saturating_add(self.retention))
    }

    /// Refuses any deletion of the matter's files while a legal hold is in
    /// effect, naming it.
    pub fn check_no_hold(&self) -> Result<(), String> {
        match &self.hold {
            None => Ok(()),
            Some(h) => Err(format!(
                "matter {} is under the legal hold {} placed (roster statement {}): nothing of \
                 it may be deleted until an attorney runs `mdrop matter release`",
                self.matter, h.by, h.seq
            )),
        }
    }

    /// Refuses new work on a closed matter, naming who closed it.
    pub fn check_open(&self) -> Result<(), String> {
        match &self.closed {
            None => Ok(()),
            Some(c) => Err(format!(
                "matter {} was closed by {}: it takes no new packets, deliverables, shares or \
                 members (an attorney can `mdrop matter reopen` it)",
                self.matter, c.by
            )),
        }
    }

    /// Whether `signer` with `key` may sign the roster's next statement
    /// (a current attorney with the key the roster gives it).
    pub fn may_sign(&self, signer: &str, key: &[u8; 32]) -> Result<(), String> {
        match self.members.get(signer) {
            Some(m) if m.role == Role::Attorney && &m.keys.signing_key == key => Ok(()),
            Some(m) if m.role == Role::Attorney => Err(format!(
                "the roster of matter {} gives {signer} another key than this client's",
                self.matter
            )),
            Some(m) => Err(format!(
                "only an attorney of matter {} may change its roster; {signer} is {}",
                self.matter,
                m.role.with_article()
            )),
            None => Err(format!(
                "only an attorney of matter {} may change its roster; {signer} is not a member",
                self.matter
            )),
        }
    }

    /// Whether `member` may be added with `role` (before its keys are
    /// fetched and vouched for).
    pub fn check_new_member(&self, member: &str, role: Role) -> Result<(), String> {
        if self.members.contains_key(member) {
            return Err(format!(
                "{member} is already a member of matter {}",
                self.matter
            ));
        }
        self.role_fits(member, role)
    }

    /// The current member `id` with exactly this signing key, if any.
    pub fn member_with_key(&self, id: &str, signing_key: &[u8; 32]) -> Option<&Member> {
        self.members
            .get(id)
            .filter(|m| &m.keys.signing_key == signing_key)
    }

    /// Whether `acks` hold a valid acknowledgment of the current version by
    /// `principal` ([`Roster::ack_verifies`]).
    pub fn has_current_ack(&self, principal: &str, acks: &[SignedAck]) -> bool {
        acks.iter()
            .any(|a| a.principal == principal && self.ack_verifies(a))
    }

    /// Whether `ack` is a valid acknowledgment of the current version by
    /// `member`, checked with the member's roster key.
    pub fn ack_verifies(&self, ack: &SignedAck) -> bool {
        let Some(m) = self.members.get(&ack.principal) else {
            return false;
        };
        if m.role != Role::Provider
            || ack.version != self.ack_version
            || ack.text_sha256 != self.ack_sha256
        {
            return false;
        }
        let Ok(key) = sign::verifying_key_from_bytes(&m.keys.signing_key) else {
            return false;
        };
        AckStatement {
            matter: self.matter.clone(),
            version: ack.version,
            text_sha256: ack.text_sha256,
            principal: ack.principal.clone(),
            signed_at: ack.signed_at,
        }
        .verify(&key, &ack.signature)
        .is_ok()
    }

    /// Who a packet `sender` pushes now must be encrypted to: the
    /// attorneys and paralegals, every provider whose acknowledgment of the
    /// current version verifies with its roster key, and the sender (the
    /// recovery recipient is [`Roster::recovery`]). Sorted by id. The
    /// sender must be a current attorney or paralegal with `sender_key`.
    pub fn packet_recipients(
        &self,
        sender: &str,
        sender_key: &[u8; 32],
        acks: &[SignedAck],
    ) -> Result<Vec<RosterRecipient>, String> {
        match self.member_with_key(sender, sender_key) {
            Some(m) if matches!(m.role, Role::Attorney | Role::Paralegal) => {}
            Some(m) => {
                return Err(format!(
                    "{sender} is {} of matter {}; only attorneys and paralegals push packets",
                    m.role.with_article(),
                    self.matter
                ));
            }
            None => {
                return Err(format!(
                    "the roster of matter {} has no member {sender} with this client's key",
                    self.matter
                ));
            }
        }
        let acked: BTreeSet<&str> = acks
            .iter()
            .filter(|a| self.ack_verifies(a))
            .map(|a| a.principal.as_str())
            .collect();
        Ok(self
            .members
            .iter()
            .filter(|(id, m)| match m.role {
                Role::Attorney | Role::Paralegal => true,
                Role::Provider => acked.contains(id.as_str()),
                Role::Auditor => false,
            })
            .map(|(id, m)| self.recipient(id, m))
            .collect())
    }

    /// Who a deliverable from provider `sender` must be encrypted to: the
    /// attorneys and paralegals and the sender itself. The sender must be
    /// a current provider with `sender_key` whose acknowledgment of the
    /// current version verifies.
    pub fn deliverable_recipients(
        &self,
        sender: &str,
        sender_key: &[u8; 32],
        acks: &[SignedAck],
    ) -> Result<Vec<RosterRecipient>, String> {
        match self.member_with_key(sender, sender_key) {
            Some(m) if m.role == Role::Provider => {}
            Some(m) => {
                return Err(format!(
                    "{sender} is {} of matter {}; only providers deliver",
                    m.role.with_article(),
                    self.matter
                ));
            }
            None => {
                return Err(format!(
                    "the roster of matter {} has no member {sender} with this client's key",
                    self.matter
                ));
            }
        }
        if !self.has_current_ack(sender, acks) {
            return Err(format!(
                "{sender} has no valid acknowledgment of version {} of matter {}",
                self.ack_version, self.matter
            ));
        }
        Ok(self
            .members
            .iter()
            .filter(|(id, m)| {
                matches!(m.role, Role::Attorney | Role::Paralegal) || id.as_str() == sender
            })
            .map(|(id, m)| self.recipient(id, m))
            .collect())
    }

    fn recipient(&self, id: &str, m: &Member) -> RosterRecipient {
        RosterRecipient {
            principal: id.to_owned(),
            role: m.role.as_str().to_owned(),
            signing_key: m.keys.signing_key,
            age: m.keys.age.clone(),
        }
    }

    /// Whether the chain ever made (`principal`, `age`) a member's keys:
    /// what a packet pushed under an earlier roster may be encrypted to.
    pub fn ever_sanctioned(&self, principal: &str, age: &str) -> bool {
        self.ever
            .iter()
            .any(|(id, k)| id == principal && k.age.recipient() == age)
    }

    /// Every signing key the chain ever gave `principal`: what its
    /// statements made under an earlier roster may be signed with.
    pub fn ever_signing_keys<'a>(
        &'a self,
        principal: &'a str,
    ) -> impl Iterator<Item = &'a [u8; 32]> + 'a {
        self.ever
            .iter()
            .filter(move |(id, _)| id == principal)
            .map(|(_, k)| &k.signing_key)
    }
}

fn verify_sig(s: &Statement, entry: &SignedStatement, check: Check) -> Result<(), RosterError> {
    if check == Check::Cached {
        return Ok(());
    }
    let bad = || RosterError::BadSignature {
        seq: s.seq,
        signer: s.signer.clone(),
    };
    let key = sign::verifying_key_from_bytes(&s.signer_key).map_err(|_| bad())?;
    sign::verify(&key, &entry.statement, &entry.signature).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
