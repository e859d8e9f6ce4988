//! Command-line types for `mdrop` (clap derive only; no logic).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Matterdrop client: end-to-end encrypted case-file exchange.
#[derive(Debug, Parser)]
#[command(name = "mdrop", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Client home (keys, server pin, state). Default: $MDROP_HOME, else
    /// $XDG_CONFIG_HOME/matterdrop, else ~/.config/matterdrop.
    #[arg(long, global = true, env = "MDROP_HOME")]
    pub home: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More diagnostic output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this user's keys: an age identity and an Ed25519 signing key.
    Keygen(KeygenArgs),
    /// Register this user's public keys with a server, using an invite.
    Enroll(EnrollArgs),
    /// Show who the server thinks this user is.
    Whoami,
    /// Server administration (admins only).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Matters: members, scope, acknowledgment text.
    #[command(subcommand)]
    Matter(MatterCommand),
    /// Read and sign a matter's confidentiality acknowledgment.
    Ack(AckArgs),
    /// Export, verify and read the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Encrypt files (and folders, recursively) to a matter's team and send them.
    Push(PushArgs),
    /// What is waiting for me.
    Inbox(InboxArgs),
    /// What I sent, and whether each recipient received and verified it.
    Sent(SentArgs),
    /// Download, verify and decrypt a packet.
    Pull(PullArgs),
    /// Let a member who could not read a packet read it, without sending
    /// it again (its files' keys are re-wrapped to them).
    Share(ShareArgs),
    /// Where the server tells me that something waits for me.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Destroy this machine's copies of a matter's files and sign an
    /// attestation that the server logs (a certificate of destruction).
    Purge(PurgeArgs),
    /// Return work product for a packet (provider members).
    Deliver(DeliverArgs),
    /// Approve or return a deliverable with a signed receipt (attorneys).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Check review receipts offline.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// The evaluation report per provider organization and task, computed
    /// here from the matter's verified audit log and signed receipts.
    Report(ReportArgs),
    /// Other principals' keys this client knows (pinned like known_hosts).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `mdrop deliver`.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Matter id.
    pub matter: String,
    /// The packet this answers.
    #[arg(long)]
    pub packet: String,
    /// Files and folders to return.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A note for the firm (encrypted).
    #[arg(long)]
    pub note: Option<String>,
    /// Reconnect and resume this many times after a lost connection.
    #[arg(long, default_value_t = crate::conn::DEFAULT_RETRIES)]
    pub retries: u32,
}

/// `mdrop review …`.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Show a deliverable before deciding: its files and sizes, the
    /// provider's note, the packet it answers and its state (pulled and
    /// verified into HOME/reviews/ID, or --out).
    Show(ReviewShowArgs),
    /// Approve a deliverable (shows it and asks before signing).
    Approve(ReviewArgs),
    /// Return a deliverable for correction (a note is required; shows it
    /// and asks before signing).
    Return(ReviewArgs),
}

/// `mdrop review show`.
#[derive(Debug, Args)]
pub struct ReviewShowArgs {
    /// Deliverable id.
    pub id: String,
    /// Where the files are put (default: HOME/reviews/ID).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `mdrop review approve|return`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Deliverable id.
    pub id: String,
    /// Note for the provider (its hash is signed).
    #[arg(long)]
    pub note: Option<String>,
    /// Where the reviewed files are put (default: HOME/reviews/ID).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to save the receipt (default: ./receipt-ID.json).
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    /// Sign without asking (scripts); the deliverable is still shown.
    #[arg(long)]
    pub yes: bool,
    /// Your rating of the work, 1 (poor) to 5 (excellent), signed in the
    /// receipt (for the evaluation report).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub rating: Option<u8>,
    /// Why it goes back (`review return` only): missing-document,
    /// wrong-format, factual-error, incomplete or other; signed in the
    /// receipt.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `mdrop receipt …`.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt: signature, log inclusion and (with --file) the files.
    Verify(ReceiptVerifyArgs),
}

/// `mdrop receipt verify`.
#[derive(Debug, Args)]
pub struct ReceiptVerifyArgs {
    /// The receipt JSON file.
    pub receipt: PathBuf,
    /// The delivered files; they must be exactly the approved ones.
    #[arg(long = "file", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The log key to trust, if this home is not enrolled with that server.
    #[arg(long)]
    pub log_key: Option<String>,
    /// A witness whose cosignature of the receipt's checkpoint must be in
    /// the receipt (its cosignature key). Repeatable; remembered in the
    /// home with --quorum (shared with `audit verify`). Below: exit 4.
    #[arg(long, value_name = "VKEY")]
    pub witness: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all).
    #[arg(long)]
    pub quorum: Option<usize>,
}

/// `mdrop report`: the evaluation report.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    /// `turnaround`: the same report, by its former name.
    #[command(subcommand)]
    pub alias: Option<ReportAlias>,
    #[command(flatten)]
    pub opts: TurnaroundArgs,
}

/// The report's other name.
#[derive(Debug, Subcommand)]
pub enum ReportAlias {
    /// The evaluation report (`mdrop report`), by its former name.
    Turnaround(TurnaroundArgs),
}

/// What the evaluation report covers.
#[derive(Debug, Args)]
pub struct TurnaroundArgs {
    /// Only packets pushed within this long (e.g. 30d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only this matter (default: every matter you are an attorney or
    /// auditor of).
    #[arg(long)]
    pub matter: Option<String>,
    /// `text` (default), `csv` or `json` (as with `--json`).
    #[arg(long, default_value = "text")]
    pub format: String,
}

/// `mdrop push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Matter id.
    pub matter: String,
    /// Files and folders to send.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Task type (must be in the matter's scope).
    #[arg(long)]
    pub task: String,
    /// When it is due: a duration (3d, 48h), a date (2026-12-10: the end
    /// of that day, local time), a local date and time ("2026-12-10
    /// 14:00"), or an RFC 3339 time.
    #[arg(long, value_parser = crate::when::parse_due)]
    pub due: Option<crate::when::Due>,
    /// A note for the recipients (encrypted; the server never sees it).
    #[arg(long)]
    pub note: Option<String>,
    /// Reconnect and resume this many times after a lost connection.
    #[arg(long, default_value_t = crate::conn::DEFAULT_RETRIES)]
    pub retries: u32,
}

/// `mdrop inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Only this matter.
    #[arg(long)]
    pub matter: Option<String>,
    /// Include packets already pulled.
    #[arg(long)]
    pub all: bool,
}

/// `mdrop sent`.
#[derive(Debug, Args)]
pub struct SentArgs {
    /// Only this matter.
    #[arg(long)]
    pub matter: Option<String>,
}

/// `mdrop pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Packet id.
    pub id: String,
    /// Where to put the files (default: ./ID).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Save the age files as stored (decrypt later with `age -d -i identity.txt`).
    #[arg(long)]
    pub raw: bool,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Reconnect and resume this many times after a lost connection.
    #[arg(long, default_value_t = crate::conn::DEFAULT_RETRIES)]
    pub retries: u32,
}

/// `mdrop purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Matter id.
    pub matter: String,
    /// Delete files changed since they were pulled too.
    #[arg(long)]
    pub force: bool,
    /// Do not ask (scripts).
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop notify …`.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Email me when a packet, deliverable, return, approval or share
    /// waits for me (the server's relay; the message names the matter and
    /// the id only).
    Email(NotifyEmailArgs),
}

/// `mdrop notify email`.
#[derive(Debug, Args)]
pub struct NotifyEmailArgs {
    /// The address.
    #[arg(required_unless_present = "clear", conflicts_with = "clear")]
    pub address: Option<String>,
    /// Stop emails.
    #[arg(long)]
    pub clear: bool,
}

/// `mdrop share`.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// Packet or deliverable id (or a unique prefix of at least 6).
    pub id: String,
    /// The member to share it with (must be one the matter's roster lets
    /// read it now).
    #[arg(long)]
    pub to: String,
}

/// `mdrop audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Download a self-contained bundle: one matter's entries (its auditors)
    /// or the whole log (admins).
    Export(AuditExportArgs),
    /// Verify a bundle offline against the pinned log key and the newest
    /// checkpoint this client has seen.
    Verify(AuditVerifyArgs),
    /// Print a bundle's entries as a table.
    Show(AuditShowArgs),
}

/// `mdrop audit export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Only this matter's entries.
    #[arg(long)]
    pub matter: Option<String>,
    /// Where to write the bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// A witness whose cosignature the bundle must carry (its cosignature
    /// key, `name+hash+key`). Repeatable; remembered in the home with
    /// --quorum for later exports and verifications.
    #[arg(long, value_name = "VKEY")]
    pub witness: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all).
    #[arg(long)]
    pub quorum: Option<usize>,
}

/// `mdrop audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The bundle.
    pub file: PathBuf,
    /// The log key to trust (`name+hash+key`), if this home is not enrolled
    /// with the server that wrote the bundle.
    #[arg(long)]
    pub log_key: Option<String>,
    /// A witness whose cosignature the bundle must carry (its cosignature
    /// key, `name+hash+key`). Repeatable; remembered in the home with
    /// --quorum for later verifications. Below the quorum: exit 4.
    #[arg(long, value_name = "VKEY")]
    pub witness: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all).
    #[arg(long)]
    pub quorum: Option<usize>,
}

/// `mdrop audit show`.
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// The bundle.
    pub file: PathBuf,
    /// Only entries by this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Only entries with this action (e.g. matter-show, ack-sign, enroll).
    #[arg(long)]
    pub action: Option<String>,
    /// Only denied attempts.
    #[arg(long)]
    pub denied: bool,
    /// Only entries about this packet or deliverable.
    #[arg(long)]
    pub packet: Option<String>,
    /// Only entries from this time on: a duration back from now (`30d`,
    /// `12h`) or a date (`2026-12-01`, `2026-12-01T09:00:00Z`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries up to this time (same forms as `--since`).
    #[arg(long)]
    pub until: Option<String>,
    /// `table` (default), `csv` (for spreadsheets) or `json` (one object,
    /// as with `--json`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// One row per log entry, instead of one per transfer (uploads and
    /// downloads log each part).
    #[arg(long)]
    pub every_part: bool,
}

/// `mdrop matter …`.
#[derive(Debug, Subcommand)]
pub enum MatterCommand {
    /// Create a matter (firm members; you become its attorney).
    Create(MatterCreateArgs),
    /// Add a member with a role (attorneys).
    Add(MatterAddArgs),
    /// Remove a member (attorneys). Takes effect on their next request.
    Remove(MatterRemoveArgs),
    /// Show a matter: scope, members, acknowledgments.
    Show(MatterIdArg),
    /// List the matters you belong to.
    List,
    /// Publish a new acknowledgment text; providers must sign it again (attorneys).
    SetAck(MatterSetAckArgs),
    /// Replace the scope (attorneys).
    SetScope(MatterSetScopeArgs),
    /// Set or clear the recovery recipient every later packet is also
    /// encrypted to (attorneys).
    SetRecovery(MatterSetRecoveryArgs),
    /// Give a member the new keys they enrolled (a lost laptop), after
    /// comparing their new safety code (attorneys).
    Rekey(MatterRekeyArgs),
    /// Require hybrid post-quantum age keys of every reader, or stop
    /// requiring them (attorneys; asks before signing unless --yes).
    SetCrypto(MatterSetCryptoArgs),
    /// Set how long the server keeps each packet and deliverable after its
    /// upload (`90d`, `12w`, `none`); the server then deletes its files
    /// unless a legal hold applies (attorneys; asks unless --yes).
    SetRetention(MatterSetRetentionArgs),
    /// Place the matter under legal hold: nothing of it is deleted, by the
    /// server's retention or a member's purge, until released (attorneys).
    Hold(MatterHoldArgs),
    /// End the legal hold (attorneys; asks unless --yes).
    Release(MatterConfirmArgs),
    /// Close the matter to new packets, deliverables, shares and members;
    /// files stay readable until their retention runs out (attorneys; asks
    /// unless --yes).
    Close(MatterConfirmArgs),
    /// Open a closed matter again (attorneys).
    Reopen(MatterConfirmArgs),
    /// Publish a new version of the provider's role definition: what the
    /// provider does, what needs attorney sign-off, what is off limits
    /// (attorneys; providers see it in `ack` and `matter show`, and need
    /// not acknowledge again).
    SetRole(MatterSetRoleArgs),
    /// Confirm the current role definition unchanged: its review date
    /// becomes today (`matter show` flags one not reviewed for 90 days).
    ReviewRole(MatterIdArg),
    /// Set the targets a task type's work is judged against in the
    /// evaluation report (attorneys).
    SetTarget(MatterSetTargetArgs),
    /// Name a current member its organization's point of contact on the
    /// matter, the firm's or a provider's (attorneys).
    Contact(MatterContactArgs),
}

/// `mdrop matter contact`.
#[derive(Debug, Args)]
pub struct MatterContactArgs {
    /// Matter id.
    pub id: String,
    /// The member (`name@org`).
    pub principal: String,
}

/// `mdrop matter set-target`.
#[derive(Debug, Args)]
pub struct MatterSetTargetArgs {
    /// Matter id.
    pub id: String,
    /// The task type.
    #[arg(long)]
    pub task: String,
    /// Turnaround from push to delivery (`24h`, `3d`).
    #[arg(long)]
    pub turnaround: String,
    /// Share of deliveries on time (`95%`).
    #[arg(long)]
    pub on_time: String,
    /// Share of deliverables approved without a return (`99%`).
    #[arg(long)]
    pub first_pass: String,
}

/// `mdrop matter set-role`.
#[derive(Debug, Args)]
pub struct MatterSetRoleArgs {
    /// Matter id.
    pub id: String,
    /// The role definition, a UTF-8 text file.
    #[arg(long)]
    pub file: PathBuf,
    /// Task types whose work needs attorney sign-off (comma-separated;
    /// providers are told on each such packet).
    #[arg(long, value_delimiter = ',')]
    pub sign_off: Vec<String>,
    /// Sign without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop matter set-retention`.
#[derive(Debug, Args)]
pub struct MatterSetRetentionArgs {
    /// Matter id.
    pub id: String,
    /// How long after its upload each file is deleted from the server
    /// (`90d`, `2y`, `36h`), or `none` to keep files until this changes.
    pub retention: String,
    /// Sign without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop matter hold`.
#[derive(Debug, Args)]
pub struct MatterHoldArgs {
    /// Matter id.
    pub id: String,
    /// Why (shown to every member).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// A matter change that asks before it is signed.
#[derive(Debug, Args)]
pub struct MatterConfirmArgs {
    /// Matter id.
    pub id: String,
    /// Sign without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop matter set-crypto`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).args(["require_pq", "allow_classic"])))]
pub struct MatterSetCryptoArgs {
    /// Matter id.
    pub id: String,
    /// Refuse members, rekeys and recovery recipients without a hybrid key,
    /// and pushes to readers who have only a classic one.
    #[arg(long)]
    pub require_pq: bool,
    /// Allow classic X25519 keys again.
    #[arg(long)]
    pub allow_classic: bool,
    /// Sign without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop matter set-recovery`.
#[derive(Debug, Args)]
pub struct MatterSetRecoveryArgs {
    /// Matter id.
    pub id: String,
    /// The firm's offline recovery recipient (age1pq1… hybrid, or age1…
    /// classic), or `none`.
    pub recipient: String,
}

/// `mdrop matter rekey`.
#[derive(Debug, Args)]
pub struct MatterRekeyArgs {
    /// Matter id.
    pub id: String,
    /// The member.
    pub principal: String,
    /// The safety code the member read to you from `mdrop whoami` (asked
    /// for on the terminal otherwise).
    #[arg(long)]
    pub expect_code: Option<String>,
}

/// A matter id.
#[derive(Debug, Args)]
pub struct MatterIdArg {
    /// Matter id.
    pub id: String,
}

/// `mdrop matter create`.
#[derive(Debug, Args)]
pub struct MatterCreateArgs {
    /// Matter id, e.g. 2026-PI-0042.
    pub id: String,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// File with the confidentiality acknowledgment text providers sign.
    #[arg(long)]
    pub ack_file: PathBuf,
    /// Task types providers may be given, comma-separated
    /// (document-review, legal-research, drafting, medical-chronology, client-intake).
    #[arg(long, value_delimiter = ',', required = true)]
    pub scope: Vec<String>,
    /// The firm's offline recovery recipient (age1…): every packet and
    /// deliverable of the matter is also encrypted to it.
    #[arg(long)]
    pub recovery_recipient: Option<String>,
}

/// `mdrop matter add`.
#[derive(Debug, Args)]
pub struct MatterAddArgs {
    /// Matter id.
    pub id: String,
    /// Principal to add, NAME@ORG.
    pub principal: String,
    /// attorney, paralegal, provider or auditor.
    #[arg(long)]
    pub role: String,
    /// The safety code the new member read to you from `mdrop whoami`
    /// (without it, the code is shown and you are asked to confirm it).
    #[arg(long)]
    pub expect_code: Option<String>,
}

/// `mdrop matter remove`.
#[derive(Debug, Args)]
pub struct MatterRemoveArgs {
    /// Matter id.
    pub id: String,
    /// Principal to remove.
    pub principal: String,
}

/// `mdrop matter set-ack`.
#[derive(Debug, Args)]
pub struct MatterSetAckArgs {
    /// Matter id.
    pub id: String,
    /// File with the new text.
    #[arg(long)]
    pub ack_file: PathBuf,
}

/// `mdrop matter set-scope`.
#[derive(Debug, Args)]
pub struct MatterSetScopeArgs {
    /// Matter id.
    pub id: String,
    /// Task types, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scope: Vec<String>,
}

/// `mdrop ack`.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// Matter id.
    pub matter: String,
    /// Sign without asking for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `mdrop keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Protect the private keys with a passphrase (read from
    /// $MDROP_PASSPHRASE, or asked for on the terminal).
    #[arg(long)]
    pub passphrase: bool,
    /// Make a classic X25519 age key (`AGE-SECRET-KEY-1…`) instead of the
    /// default hybrid post-quantum one (ML-KEM-768 + X25519,
    /// `AGE-SECRET-KEY-PQ-1…`). Only for readers whose other tools cannot
    /// read hybrid age files yet.
    #[arg(long)]
    pub classic: bool,
}

/// `mdrop enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Server address, HOST:PORT.
    pub server: String,
    /// Server key fingerprint printed by `mdropd init` (SHA256:…).
    #[arg(long, required_unless_present = "ca", conflicts_with = "ca")]
    pub fingerprint: Option<String>,
    /// Instead of a fingerprint: a CA certificate (PEM) that signed the
    /// server's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The one-time invite token.
    #[arg(long)]
    pub invite: String,
    /// Principal id to register, NAME@ORG.
    #[arg(long)]
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
}

/// `mdrop admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Mint an invite for a new user (`invite revoke ID`: revoke one).
    Invite(InviteArgs),
    /// Revoke a user's key: it stops authenticating at once (the user may
    /// enroll a new key with a new invite).
    Revoke(RevokeArgs),
    /// List the server's organizations, principals or invites.
    List(ListArgs),
}

/// `mdrop admin list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: ListWhat,
}

/// What `admin list` lists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    /// Organizations.
    Orgs,
    /// Enrolled principals (and revoked ones).
    Principals,
    /// Invites: open, used, expired or revoked (never their tokens).
    Invites,
}

/// `mdrop admin invite revoke`.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Revoke an unused invite: enrolling with it is refused from now on.
    Revoke {
        /// The invite's id as `admin invite` and `admin list invites` show
        /// it (12 hex digits, or a unique prefix of at least 6).
        token_id: String,
    },
}

/// `mdrop admin revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Principal id.
    pub principal: String,
}

/// `mdrop admin org …`.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create(OrgCreateArgs),
}

/// `mdrop admin org create`.
#[derive(Debug, Args)]
pub struct OrgCreateArgs {
    /// Organization id, e.g. firm-a.
    pub id: String,
    /// firm or provider.
    #[arg(long)]
    pub kind: String,
}

/// `mdrop admin invite`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct InviteArgs {
    /// `revoke ID`.
    #[command(subcommand)]
    pub command: Option<InviteCommand>,
    /// Organization the new user joins.
    #[arg(long, required_unless_present = "admin")]
    pub org: Option<String>,
    /// The one id the invite enrolls (e.g. bob@lpo-1); anyone with the
    /// token could otherwise pick any id of the organization.
    #[arg(long = "for", value_name = "ID")]
    pub for_id: Option<String>,
    /// The new user is a server admin.
    #[arg(long)]
    pub admin: bool,
    /// Lifetime (default 72h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
}

/// `mdrop keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every principal whose keys this client has pinned, with safety codes.
    List,
    /// Compare a principal's safety code (as they read it to you) with the
    /// keys pinned here: exit 0 if it matches, 4 if not.
    Verify(KeysVerifyArgs),
    /// Forget a principal's pinned keys (the next roster that names them
    /// pins them again).
    Forget(KeysForgetArgs),
    /// Check the audit log for keys registered under your own id that this
    /// client did not create (exit 4 if there are any). Commands also run
    /// this check by themselves once a day.
    Audit,
    /// Add a hybrid post-quantum age key to a classic identity (the classic
    /// key stays, for older files), register it with the server and show
    /// the new safety code; an attorney of each matter then gives you the
    /// new key with `mdrop matter rekey`.
    Upgrade,
}

/// `mdrop keys verify`.
#[derive(Debug, Args)]
pub struct KeysVerifyArgs {
    /// Principal id.
    pub principal: String,
    /// Their safety code, twenty digits (spaces optional).
    pub code: String,
}

/// `mdrop keys forget`.
#[derive(Debug, Args)]
pub struct KeysForgetArgs {
    /// Principal id.
    pub principal: String,
}
