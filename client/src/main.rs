//! `mdrop`: the Matterdrop client.

use std::process::ExitCode;

use clap::Parser as _;
use matterdrop::cli::{
    AdminCommand, AuditCommand, Cli, Command, OrgCommand, ReceiptCommand, ReportAlias,
    ReviewCommand,
};
use matterdrop::commands::{self, Ctx};
use matterdrop::error::{CmdResult, Fail};
use matterdrop::home::Home;
use matterdrop::output::Output;
use matterdrop_common::receipt::Decision;

fn main() -> ExitCode {
    // Before any thread starts: transfers hand buffers between the runtime
    // and a few blocking threads, and an arena per thread kept each one's
    // freed buffers resident (see `alloc`).
    matterdrop_common::alloc::limit_arenas(2);
    let cli = Cli::parse();
    let filter = match cli.common.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MDROP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    matterdrop_common::tls::install_crypto_provider();
    let out = Output {
        json: cli.common.json,
    };
    let result = Home::resolve(cli.common.home.clone())
        .and_then(|home| run(&Ctx { home, out }, cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("mdrop: error: {}", fail.message);
            if let Some(hint) = &fail.hint {
                eprintln!("mdrop: hint: {hint}");
            }
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({"error": fail.message, "hint": fail.hint, "exit_code": fail.code})
                );
            }
            ExitCode::from(fail.code)
        }
    }
}

fn run(ctx: &Ctx, command: Command) -> CmdResult {
    // One worker: QUIC's connection and endpoint tasks keep running (pings,
    // acknowledgments) while a command blocks (a prompt, a passphrase, a
    // re-hash), and a transfer wakes few threads.
    // `push` and `pull` run on one thread: QUIC's tasks and the transfer
    // share it, and a gigabyte transfer wakes far fewer threads (less CPU
    // per byte). Nothing in them blocks that thread once the session is
    // open: keys are loaded before it, and encryption, decryption,
    // re-hashing and moving files run on blocking threads. Every other
    // command gets one worker
    // thread besides the caller's, so QUIC keeps answering (pings,
    // acknowledgments) while a command blocks: a prompt, a passphrase,
    // a re-hash of a partial download.
    let rt = if matches!(command, Command::Push(_) | Command::Pull(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
    }
    .map_err(|e| Fail::other(format!("starting the async runtime: {e}")))?;
    match command {
        Command::Keygen(a) => commands::identity::keygen(ctx, &a),
        Command::Enroll(a) => rt.block_on(commands::identity::enroll(ctx, &a)),
        Command::Whoami => rt.block_on(commands::identity::whoami(ctx)),
        Command::Admin(AdminCommand::Org(OrgCommand::Create(a))) => {
            rt.block_on(commands::admin::org_create(ctx, &a))
        }
        Command::Admin(AdminCommand::Invite(a)) => rt.block_on(commands::admin::invite(ctx, &a)),
        Command::Admin(AdminCommand::Revoke(a)) => rt.block_on(commands::admin::revoke(ctx, &a)),
        Command::Admin(AdminCommand::List(a)) => rt.block_on(commands::admin::list(ctx, &a)),
        Command::Matter(cmd) => rt.block_on(commands::matter::matter(ctx, cmd)),
        Command::Ack(a) => rt.block_on(commands::matter::ack(ctx, &a)),
        Command::Audit(AuditCommand::Export(a)) => rt.block_on(commands::audit::export(ctx, &a)),
        Command::Audit(AuditCommand::Verify(a)) => commands::audit::verify(ctx, &a),
        Command::Audit(AuditCommand::Show(a)) => commands::audit::show(ctx, &a),
        Command::Keys(cmd) => rt.block_on(commands::keys::keys(ctx, &cmd)),
        Command::Push(a) => rt.block_on(commands::packets::push(ctx, &a)),
        Command::Inbox(a) => rt.block_on(commands::inbox::inbox(ctx, &a)),
        Command::Sent(a) => rt.block_on(commands::sent::sent(ctx, &a)),
        Command::Pull(a) => rt.block_on(commands::packets::pull(ctx, &a)),
        Command::Share(a) => rt.block_on(commands::share::share(ctx, &a)),
        Command::Purge(a) => rt.block_on(commands::purge::purge(ctx, &a)),
        Command::Notify(matterdrop::cli::NotifyCommand::Email(a)) => {
            rt.block_on(commands::identity::notify_email(ctx, &a))
        }
        Command::Deliver(a) => rt.block_on(commands::packets::deliver(ctx, &a)),
        Command::Review(ReviewCommand::Show(a)) => rt.block_on(commands::review::show(ctx, &a)),
        Command::Review(ReviewCommand::Approve(a)) => {
            rt.block_on(commands::review::review(ctx, &a, Decision::Approve))
        }
        Command::Review(ReviewCommand::Return(a)) => {
            rt.block_on(commands::review::review(ctx, &a, Decision::Return))
        }
        Command::Receipt(ReceiptCommand::Verify(a)) => commands::review::verify(ctx, &a),
        Command::Report(a) => {
            let opts = match &a.alias {
                Some(ReportAlias::Turnaround(o)) => o,
                None => &a.opts,
            };
            rt.block_on(commands::report::report(ctx, opts))
        }
    }
}
