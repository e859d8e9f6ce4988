//! `mdrop-witness`: cosigns Matterdrop audit-log checkpoints (C2SP
//! `tlog-witness`, HTTP `POST /add-checkpoint`).
//!
//! ```text
//! mdrop-witness init  --data DIR --name NAME      # key (0600) and prints the verifier key
//! mdrop-witness serve --data DIR --log VKEY… [--listen 127.0.0.1:7380] [--json]
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use matterdrop_common::tlog::NoteVerifier;
use matterdrop_common::tlog::cosignature::Cosigner;
use matterdrop_witness::{MAX_BODY, Witness};

/// A transparency-log witness for Matterdrop audit logs.
#[derive(Debug, Parser)]
#[command(name = "mdrop-witness", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Creates the witness key in DIR and prints its verifier key.
    Init {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// The witness's name (a note key name, e.g. witness.example.org).
        #[arg(long)]
        name: String,
    },
    /// Serves `POST /add-checkpoint`.
    Serve {
        /// Data directory (made by `init`).
        #[arg(long)]
        data: PathBuf,
        /// A log this witness cosigns, as its checkpoint verifier key
        /// (`name+hash+key`, what `mdrop whoami` prints as the log key).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: SocketAddr,
        /// Print the start-up line as JSON.
        #[arg(long)]
        json: bool,
    },
}

const KEY_FILE: &str = "witness-key";
const NAME_FILE: &str = "witness-name";
const STATE_FILE: &str = "state.json";

fn init(data: &Path, name: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)?;
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let cosigner = Cosigner::new(name, key.clone()).context("the witness name")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data.join(KEY_FILE))
        .context("the witness key exists already; never overwritten")?;
    f.write_all(
        key.to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::write(data.join(NAME_FILE), name)?;
    println!("{}", cosigner.vkey());
    Ok(())
}

fn load(data: &Path) -> Result<Cosigner> {
    let hex = std::fs::read_to_string(data.join(KEY_FILE)).context("run `init` first")?;
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the witness key file is damaged");
    }
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).context("the witness key file")?;
    }
    let name = std::fs::read_to_string(data.join(NAME_FILE))?;
    Ok(Cosigner::new(name.trim(), SigningKey::from_bytes(&raw))?)
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let Ok(answer) = tokio::task::spawn_blocking(move || w.add_checkpoint(&body, now)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

fn serve(data: &Path, logs: &[String], listen: SocketAddr, json: bool) -> Result<()> {
    let cosigner = load(data)?;
    let logs = logs
        .iter()
        .map(|v| NoteVerifier::from_vkey(v).with_context(|| format!("log key {v:?}")))
        .collect::<Result<Vec<_>>>()?;
    let witness = Arc::new(Witness::open(&data.join(STATE_FILE), cosigner, logs)?);
    let vkey = witness.vkey();
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"listen": addr.to_string(), "vkey": vkey})
                );
            } else {
                println!("mdrop-witness listening on {addr}\nverifier key: {vkey}");
            }
            std::io::stdout().flush()?;
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MDROP_WITNESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Init { data, name } => init(data, name),
        Cmd::Serve {
            data,
            logs,
            listen,
            json,
        } => serve(data, logs, *listen, *json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdrop-witness: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
