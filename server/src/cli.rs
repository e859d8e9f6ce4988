//! Command-line types for `mdropd` (clap derive only; no logic).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Matterdrop server: stores and relays end-to-end encrypted case files.
#[derive(Debug, Parser)]
#[command(name = "mdropd", version, about)]
pub struct Cli {
    /// Log output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do; without one, `serve` with the defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: TLS certificate, log signing key, database,
    /// and a one-time bootstrap admin invite.
    Init(InitArgs),
    /// Run the server (initializing a fresh data directory first).
    Serve(ServeArgs),
    /// Mint an invite offline (the server must not be running on DIR).
    Invite(InviteArgs),
    /// Write an audit bundle of the whole log straight from the data
    /// directory, as it is on disk, without checking it (for forensics when
    /// the server will not start; verify it with `mdrop audit verify`).
    ExportLog(ExportLogArgs),
}

/// `mdropd export-log`.
#[derive(Debug, Args)]
pub struct ExportLogArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Where to write the bundle.
    #[arg(long)]
    pub out: PathBuf,
}

/// Where the data lives.
#[derive(Debug, Args, Clone)]
pub struct DataArg {
    /// Data directory.
    #[arg(long, default_value = "mdrop-data", env = "MDROPD_DATA")]
    pub data: PathBuf,
}

/// `mdropd init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub listen: SocketAddr,
    /// Host names or IP addresses for the server certificate (repeatable).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `mdropd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Address to listen on (overrides the one chosen at init).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Host names for the certificate, when this start initializes.
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Print the start-up summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Storage quota for blobs (bytes, staging included); uploads that do
    /// not fit are refused. Default: no quota beyond the disk itself.
    #[arg(long)]
    pub quota: Option<u64>,
    /// Flow-control window memory all connections may be granted together
    /// (MiB): what the server commits to buffering for uploads and
    /// downloads in flight. A connection gets what its path wants (up to
    /// 56 MiB on a long path, 16 MiB on a short one) while this lasts, then
    /// less, at least 2 MiB.
    #[arg(long, default_value_t = 512)]
    pub window_budget_mib: u64,
    /// How long in-flight requests may take to finish on shutdown.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Accept only the hybrid post-quantum TLS key exchange
    /// (X25519MLKEM768): clients that offer only classical groups cannot
    /// connect. By default the hybrid group is preferred and X25519 is
    /// accepted too.
    #[arg(long)]
    pub require_pq_transport: bool,
    /// A witness that cosigns the audit log (C2SP tlog-witness), as
    /// `http://HOST:PORT=VKEY` (VKEY: the witness's cosignature key).
    /// Repeatable. At start-up every reachable witness is shown the current
    /// log, and the server refuses to start if one cosigned a longer or
    /// different history; afterwards each new checkpoint is submitted in the
    /// background.
    #[arg(long = "witness", value_name = "URL=VKEY")]
    pub witnesses: Vec<crate::witness::WitnessSpec>,
    /// Notify a webhook of new packets, deliverables, returns, approvals
    /// and shares: one JSON POST per event (event, matter, id, recipients,
    /// time; never names or notes), signed with HMAC-SHA-256 in
    /// `X-Matterdrop-Signature: sha256=HEX`, retried with backoff.
    #[arg(long, value_name = "URL", requires = "notify_webhook_secret_file")]
    pub notify_webhook: Option<String>,
    /// The webhook's signing secret: a file (mode 0600) of at least 16
    /// bytes.
    #[arg(long, value_name = "FILE", requires = "notify_webhook")]
    pub notify_webhook_secret_file: Option<PathBuf>,
    /// Email the same events to principals who set an address (`mdrop
    /// notify email`), through this relay: `smtp+starttls://HOST[:PORT]`,
    /// `smtps://HOST[:PORT]`, or `smtp://HOST:PORT` for a loopback relay
    /// only. Credentials from MDROPD_SMTP_USER and MDROPD_SMTP_PASSWORD.
    #[arg(long, value_name = "URL", requires = "smtp_from")]
    pub smtp: Option<String>,
    /// The sender address of notification emails.
    #[arg(long, value_name = "ADDRESS", requires = "smtp")]
    pub smtp_from: Option<String>,
    /// How often the server looks for files whose matter's retention ran
    /// out (and deletes them unless a legal hold applies).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub expiry_interval: Duration,
}

/// `mdropd invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Organization the new principal joins.
    #[arg(long, required_unless_present = "admin")]
    pub org: Option<String>,
    /// The new principal is a server admin.
    #[arg(long)]
    pub admin: bool,
    /// Lifetime of the invite.
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
