//! `mdropd`: the Matterdrop server.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use matterdrop_common::tlog::NoteSigner;
use matterdrop_common::tls;
use matterdrop_server::audit::AuditLog;
use matterdrop_server::cli::{
    Cli, Command, ExportLogArgs, InitArgs, InviteArgs, LogFormat, ServeArgs,
};
use matterdrop_server::datadir::{self, InitReport};
use matterdrop_server::handler::State;
use matterdrop_server::server::Server;
use matterdrop_server::store::MetaRead as _;
use matterdrop_server::store::blobs::BlobStore;
use tokio_util::sync::CancellationToken;
use tracing::info;

fn main() -> ExitCode {
    // Before any thread starts: two arenas serve the few threads that run
    // at once (see `alloc`).
    matterdrop_common::alloc::limit_arenas(2);
    let cli = Cli::parse();
    init_tracing(cli.log_format, cli.verbose);
    tls::install_crypto_provider();
    let command = cli.command.unwrap_or_else(|| {
        Command::Serve(ServeArgs {
            data: matterdrop_server::cli::DataArg {
                data: "mdrop-data".into(),
            },
            listen: None,
            hostnames: Vec::new(),
            json: false,
            quota: None,
            window_budget_mib: matterdrop_server::server::DEFAULT_WINDOW_BUDGET >> 20,
            shutdown_grace: std::time::Duration::from_secs(10),
            require_pq_transport: false,
            witnesses: Vec::new(),
            notify_webhook: None,
            notify_webhook_secret_file: None,
            smtp: None,
            smtp_from: None,
            expiry_interval: std::time::Duration::from_secs(600),
        })
    });
    let result = match command {
        Command::Init(a) => init(&a),
        Command::Serve(a) => serve(a),
        Command::Invite(a) => invite(&a),
        Command::ExportLog(a) => export_log(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdropd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MDROPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        );
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn print_init(report: &InitReport, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "Initialized {}", report.data.display())?;
        writeln!(out, "  listen:            {}", report.listen)?;
        writeln!(out, "  server fingerprint: {}", report.fingerprint)?;
        writeln!(out, "  CA file:           {}", report.ca_file.display())?;
        writeln!(
            out,
            "  audit log key:     {} ({})",
            report.log_key_name, report.log_key_fingerprint
        )?;
        writeln!(
            out,
            "  bootstrap admin invite (single use, expires {}):",
            report.invite_expires
        )?;
        writeln!(out, "    {}", report.invite)?;
        writeln!(
            out,
            "Enroll with: mdrop enroll {} --fingerprint {} --invite {} --id admin@operator --name Admin",
            report.listen, report.fingerprint, report.invite
        )?;
    }
    out.flush()?;
    Ok(())
}

fn init(a: &InitArgs) -> Result<()> {
    let report = datadir::init(&a.data.data, a.listen, &a.hostnames)?;
    print_init(&report, a.json)
}

fn serve(a: ServeArgs) -> Result<()> {
    if !datadir::is_initialized(&a.data.data) {
        let listen = a.listen.unwrap_or_else(|| ([127, 0, 0, 1], 4433).into());
        let report = datadir::init(&a.data.data, listen, &a.hostnames)?;
        print_init(&report, a.json)?;
    }
    let data = datadir::load(&a.data.data)?;
    let listen = a.listen.unwrap_or(data.config.listen);
    let signer = NoteSigner::new(&data.config.log_name, data.log_key.clone())
        .map_err(|e| anyhow::anyhow!("audit-log key: {e}"))?;
    let log_vkey = signer.verifier().to_vkey();
    let audit = AuditLog::open(
        &data.root.join("log"),
        data.log_key.clone(),
        signer,
        data.config.log_name.clone(),
    )?;
    let blobs = BlobStore::open(&data.root, a.quota).context("opening the blob store")?;
    let swept = blobs.sweep_staging(std::time::Duration::from_secs(7 * 24 * 3600))?;
    if swept > 0 {
        info!(swept, "removed stale partial uploads");
    }
    let channels = matterdrop_server::notify::Channels {
        webhook: match (&a.notify_webhook, &a.notify_webhook_secret_file) {
            (Some(url), Some(secret)) => Some(
                matterdrop_server::notify::Webhook::new(url, secret).map_err(anyhow::Error::msg)?,
            ),
            _ => None,
        },
        smtp: match (&a.smtp, &a.smtp_from) {
            (Some(url), Some(from)) => {
                Some(matterdrop_server::notify::Smtp::new(url, from).map_err(anyhow::Error::msg)?)
            }
            _ => None,
        },
    };
    let (notify, notices) = if channels.any() {
        let (n, rx) = matterdrop_server::notify::Notifier::channel(channels.smtp.is_some());
        (n, Some(rx))
    } else {
        (matterdrop_server::notify::Notifier::disabled(), None)
    };
    let state = Arc::new(State {
        notify,
        gate: matterdrop_server::handler::gate::Gate::new(Arc::new(data.store.clone()), audit),
        log_vkey,
        locks: Default::default(),
        enroll_limiter: Default::default(),
        blobs,
        per_key: Default::default(),
        witnessed: Arc::new(matterdrop_server::witness::Witnessed::new(
            a.witnesses.len(),
        )),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    matterdrop_server::witness::check_distinct(&a.witnesses).map_err(anyhow::Error::msg)?;
    let log_dir = data.root.join("log");
    runtime.block_on(async move {
        let audit_log = state.gate.audit().clone();
        let shared = state.witnessed.clone();
        let expiring = state.clone();
        let witnessed =
            matterdrop_server::witness::check_at_start(&audit_log, &log_dir, &shared, &a.witnesses)
                .await?;
        let kx = if a.require_pq_transport {
            tls::KeyExchange::HybridOnly
        } else {
            tls::KeyExchange::Hybrid
        };
        let server = Server::bind(listen, data.cert.clone(), &data.tls_key, kx, state)?
            .window_budget(a.window_budget_mib.saturating_mul(1 << 20));
        let addr = server.local_addr()?;
        // Handlers first, then "listening": a SIGTERM sent as soon as the
        // server says it listens must stop it gracefully, not kill it.
        let shutdown = CancellationToken::new();
        let signals = signal_handlers()?;
        tokio::spawn(wait_for_signal(signals, shutdown.clone()));
        {
            let mut out = std::io::stdout().lock();
            if a.json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({
                        "listen": addr.to_string(),
                        "fingerprint": data.fingerprint,
                        "data": data.root,
                    }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(out, "mdropd listening on {addr}")?;
                writeln!(out, "server fingerprint: {}", data.fingerprint)?;
            }
            out.flush()?;
        }
        info!(listen = %addr, fingerprint = %data.fingerprint, key_exchange = ?kx, "serving");
        if let Some(rx) = notices {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = matterdrop_server::notify::run(rx, channels, stop).await {
                    tracing::error!(error = %e, "notifications stopped");
                }
            });
        }
        matterdrop_server::witness::spawn(
            &audit_log,
            &log_dir,
            &shared,
            &a.witnesses,
            &witnessed,
            &shutdown,
        )?;
        tokio::spawn(matterdrop_server::handler::expiry::run(
            expiring,
            a.expiry_interval.max(std::time::Duration::from_secs(1)),
            shutdown.clone(),
        ));
        server.run(shutdown, a.shutdown_grace).await
    })
}

type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

/// SIGTERM and SIGINT, caught from now on.
fn signal_handlers() -> Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok((
        signal(SignalKind::terminate()).context("install the SIGTERM handler")?,
        signal(SignalKind::interrupt()).context("install the SIGINT handler")?,
    ))
}

async fn wait_for_signal((mut term, mut int): Signals, token: CancellationToken) {
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    token.cancel();
}

fn invite(a: &InviteArgs) -> Result<()> {
    let data = datadir::load(&a.data.data)?;
    if let Some(org) = &a.org {
        if data.store.org(org)?.is_none() {
            anyhow::bail!(
                "organization {org} does not exist; create it first with `mdrop admin org create`"
            );
        }
    }
    let (token, expires_at) = datadir::mint_invite(
        &data.store,
        (a.org.clone(), None),
        a.admin,
        a.ttl,
        datadir::now(),
    )?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({
                "invite": token,
                "org": a.org,
                "admin": a.admin,
                "expires": datadir::rfc3339(expires_at),
                "listen": data.config.listen.to_string(),
                "fingerprint": data.fingerprint,
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "invite (single use, expires {}):",
            datadir::rfc3339(expires_at)
        )?;
        writeln!(out, "  {token}")?;
    }
    Ok(())
}

fn export_log(a: &ExportLogArgs) -> Result<()> {
    let root = &a.data.data;
    let config: datadir::ConfigFile = serde_json::from_slice(
        &std::fs::read(root.join("config.json")).context("reading config.json")?,
    )?;
    let log_key = datadir::load_log_key(root)?;
    let signer =
        NoteSigner::new(&config.log_name, log_key).map_err(|e| anyhow::anyhow!("log key: {e}"))?;
    let log_dir = root.join("log");
    let records = matterdrop_server::auditlog::scan_raw(
        &log_dir.join(matterdrop_server::auditlog::ENTRIES_FILE),
    )?;
    let checkpoint =
        std::fs::read_to_string(log_dir.join(matterdrop_server::auditlog::CHECKPOINT_FILE))
            .context("reading the stored checkpoint")?;
    let header = matterdrop_common::bundle::BundleHeader {
        log_key: signer.verifier().to_vkey(),
        checkpoint,
        matter: None,
        count: records.len() as u64,
        exported_by: "mdropd export-log".into(),
        consistency: None,
        witnessed: Vec::new(),
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
    matterdrop_common::bundle::write_header(&mut out, &header)?;
    for (i, rec) in records.iter().enumerate() {
        matterdrop_common::bundle::write_record(&mut out, i as u64, rec, None)?;
    }
    out.flush()?;
    println!(
        "wrote {} records from {} to {}",
        records.len(),
        log_dir.display(),
        a.out.display()
    );
    Ok(())
}
