//! Witnesses of the audit log (C2SP `tlog-witness`): `mdropd serve
//! --witness URL=VKEY`, repeatable.
//!
//! At start-up, before it serves anyone, `mdropd` shows each witness its
//! current checkpoint with a consistency proof from the size that witness
//! last cosigned. A witness that cosigned a larger tree, or one this log
//! does not extend, makes `mdropd` refuse to start ([`check_at_start`]):
//! truncating the log, or putting back an old data directory, cannot go
//! unnoticed even with the checkpoint file deleted. A witness that cannot
//! be reached is logged and retried; it does not stop the server.
//!
//! While it serves, one task per witness ([`spawn`]) submits the latest
//! checkpoint whenever the log grows: asynchronously (no user request
//! waits for a witness) and batched (at most one submission per
//! [`BATCH_WINDOW`]; while one is in flight or the window runs, new
//! checkpoints only move the target; the next submission carries the
//! latest one, with one consistency proof). Each witness's latest
//! cosigned checkpoint (the log's note plus the witness's cosignature
//! line) is kept in `DATA/log/witnessed/NAME`, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use matterdrop_common::tlog::Hash;
use matterdrop_common::tlog::cosignature::CosignatureVerifier;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::AuditLog;

/// How long one submission may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two submissions to one witness.
const BATCH_WINDOW: Duration = Duration::from_millis(250);
/// Longest witness answer read.
const MAX_ANSWER: usize = 4096;
/// Longest wait between retries of a failing witness.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One `--witness URL=VKEY`.
#[derive(Debug, Clone)]
pub struct WitnessSpec {
    /// Base URL (`http://host:port`); `/add-checkpoint` is appended.
    pub url: String,
    /// The witness's cosignature key.
    pub verifier: CosignatureVerifier,
}

impl FromStr for WitnessSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (url, vkey) = s
            .split_once('=')
            .ok_or_else(|| format!("--witness {s:?}: expected URL=VKEY"))?;
        let url = url.trim_end_matches('/');
        if !url.starts_with("http://")
            || url.len() <= "http://".len()
            || format!("{url}/add-checkpoint")
                .parse::<hyper::Uri>()
                .is_err()
        {
            return Err(format!(
                "--witness {url:?}: only http:// witness URLs are supported (put a TLS proxy in front for https)"
            ));
        }
        let verifier = CosignatureVerifier::from_vkey(vkey)
            .map_err(|e| format!("--witness {url}: witness key: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            verifier,
        })
    }
}

/// The latest cosigned checkpoint of each witness, shared with the
/// request handlers: an export waits (briefly) for the witnesses to cosign
/// the checkpoint its bundle ends at.
#[derive(Debug, Default)]
pub struct Witnessed {
    expected: usize,
    latest: Mutex<BTreeMap<String, (u64, String)>>,
    changed: Condvar,
}

impl Witnessed {
    /// For `expected` configured witnesses.
    pub fn new(expected: usize) -> Self {
        Self {
            expected,
            ..Self::default()
        }
    }

    /// How many witnesses are configured.
    pub fn expected(&self) -> usize {
        self.expected
    }

    fn record(&self, name: &str, size: u64, note: String) {
        if let Ok(mut m) = self.latest.lock() {
            m.insert(name.to_owned(), (size, note));
            self.changed.notify_all();
        }
    }

    /// Waits up to `timeout` until every configured witness has cosigned a
    /// checkpoint of at least `size` entries; returns the cosigned notes of
    /// at least that size there are then (size, note). Blocking: call from
    /// a blocking thread.
    pub fn covering(&self, size: u64, timeout: Duration) -> Vec<(u64, String)> {
        let Ok(mut m) = self.latest.lock() else {
            return Vec::new();
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let have = m.values().filter(|(s, _)| *s >= size).count();
            let now = std::time::Instant::now();
            if have >= self.expected || now >= deadline {
                return m.values().filter(|(s, _)| *s >= size).cloned().collect();
            }
            match self.changed.wait_timeout(m, deadline - now) {
                Ok((g, _)) => m = g,
                Err(_) => return Vec::new(),
            }
        }
    }
}

/// What a witness answered.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// 200: its cosignature line, verified against its key.
    Cosigned(String),
    /// 409: the size it last cosigned is another one.
    Size(u64),
    /// Anything else, with the status and body.
    Refused(u16, String),
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// The `add-checkpoint` request body.
fn request_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

async fn submit(
    client: &Client,
    w: &WitnessSpec,
    old: u64,
    proof: &[Hash],
    note: &str,
) -> Result<Reply, String> {
    let req = hyper::Request::post(format!("{}/add-checkpoint", w.url))
        .body(Full::new(Bytes::from(request_body(old, proof, note))))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // A witness answers a line or a number: anything longer is refused
    // before it is read into memory.
    let body = tokio::time::timeout(
        TIMEOUT,
        http_body_util::Limited::new(resp.into_body(), MAX_ANSWER).collect(),
    )
    .await
    .map_err(|_| "timed out reading the answer".to_owned())?
    .map_err(|e| format!("answer unreadable or longer than {MAX_ANSWER} bytes: {e}"))?
    .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    Ok(match status {
        200 => {
            let line = text.trim_end_matches('\n').to_owned();
            if line.contains('\n') {
                return Err(format!(
                    "witness {} answered more than one cosignature line",
                    w.verifier.name()
                ));
            }
            // The answer must be a valid cosignature of this very note.
            let cosigned = format!("{note}{line}\n");
            w.verifier.verify_note(&cosigned).map_err(|e| {
                format!(
                    "witness {} answered 200 without a valid cosignature: {e}",
                    w.verifier.name()
                )
            })?;
            Reply::Cosigned(line)
        }
        409 => Reply::Size(
            text.trim()
                .parse()
                .map_err(|_| format!("witness answered 409 with no size: {text:?}"))?,
        ),
        s => Reply::Refused(s, text),
    })
}

/// The tree size in a checkpoint note (its second line).
pub fn note_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// A name safe as a file name.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a witness's latest cosigned checkpoint is kept.
pub fn witnessed_path(log_dir: &Path, w: &WitnessSpec) -> PathBuf {
    log_dir.join("witnessed").join(file_name(w.verifier.name()))
}

fn store(log_dir: &Path, w: &WitnessSpec, cosigned: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = witnessed_path(log_dir, w);
    let dir = path.parent().unwrap_or(log_dir);
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(cosigned.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Why `mdropd` must not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// A witness cosigned a larger tree than the log holds.
    #[error(
        "witness {witness} has cosigned {cosigned} entries of this audit log, but the log holds only {size}: \
         entries were removed (a truncated log or an old copy of the data directory); refusing to start"
    )]
    Truncated {
        /// The witness.
        witness: String,
        /// The size it cosigned.
        cosigned: u64,
        /// The log's size.
        size: u64,
    },
    /// A witness refused the log's history.
    #[error(
        "witness {witness} refuses this audit log's history ({status}: {body}): it is not an extension of the tree \
         the witness cosigned (a rewritten or forked log); refusing to start"
    )]
    Forked {
        /// The witness.
        witness: String,
        /// HTTP status.
        status: u16,
        /// Its explanation.
        body: String,
    },
    /// The log could not be read.
    #[error("audit log: {0}")]
    Log(String),
}

/// One round with a witness: submit the current checkpoint from `old`,
/// following one 409. Returns the size now cosigned, or what went wrong.
async fn round(
    client: &Client,
    log: &AuditLog,
    log_dir: &Path,
    shared: &Witnessed,
    w: &WitnessSpec,
    mut old: u64,
) -> Result<Result<u64, String>, WitnessError> {
    for _ in 0..2 {
        let snapshot = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || log.checkpoint_since(old))
                .await
                .map_err(|e| WitnessError::Log(e.to_string()))?
                .map_err(|e| WitnessError::Log(e.to_string()))?
        };
        let Some((note, size, proof)) = snapshot else {
            return Err(WitnessError::Truncated {
                witness: w.verifier.name().to_owned(),
                cosigned: old,
                size: log
                    .checkpoint_since(0)
                    .ok()
                    .flatten()
                    .map_or(0, |(_, s, _)| s),
            });
        };
        match submit(client, w, old, &proof, &note).await {
            Ok(Reply::Cosigned(line)) => {
                let cosigned = format!("{note}{line}\n");
                shared.record(w.verifier.name(), size, cosigned.clone());
                // Written and fsynced off the async workers, which carry
                // the users' QUIC traffic.
                let (dir, spec) = (log_dir.to_owned(), w.clone());
                let stored =
                    tokio::task::spawn_blocking(move || store(&dir, &spec, &cosigned)).await;
                if let Err(e) = stored
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                {
                    warn!(witness = w.verifier.name(), error = %e, "cannot keep the cosigned checkpoint");
                }
                return Ok(Ok(size));
            }
            // Told to start from the very size just sent: the witness has
            // another tree of that size (the older spec's answer to a fork).
            Ok(Reply::Size(s)) if s == old => {
                return Err(WitnessError::Forked {
                    witness: w.verifier.name().to_owned(),
                    status: 409,
                    body: format!("another tree of {s} entries"),
                });
            }
            Ok(Reply::Size(s)) => old = s,
            Ok(Reply::Refused(status @ 422, body)) => {
                return Err(WitnessError::Forked {
                    witness: w.verifier.name().to_owned(),
                    status,
                    body: body.trim().chars().take(200).collect(),
                });
            }
            Ok(Reply::Refused(status, body)) => {
                return Ok(Err(format!(
                    "answered {status}: {}",
                    body.trim().chars().take(200).collect::<String>()
                )));
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Err("the witness's size kept changing".to_owned()))
}

/// Refuses a witness listed twice (by name or key): it would count twice
/// toward nothing and make exports wait for a cosignature that never
/// comes.
pub fn check_distinct(witnesses: &[WitnessSpec]) -> Result<(), String> {
    for (i, w) in witnesses.iter().enumerate() {
        if witnesses[..i].iter().any(|o| {
            o.verifier.name() == w.verifier.name()
                || o.verifier.public_key() == w.verifier.public_key()
        }) {
            return Err(format!(
                "--witness {}: listed twice (by name or key)",
                w.verifier.name()
            ));
        }
    }
    Ok(())
}

/// Shows every witness the current checkpoint before the server starts.
/// Returns the size each one has cosigned (`None`: not reached).
pub async fn check_at_start(
    log: &AuditLog,
    log_dir: &Path,
    shared: &Witnessed,
    witnesses: &[WitnessSpec],
) -> Result<Vec<Option<u64>>, WitnessError> {
    let client = client();
    let mut sizes = Vec::with_capacity(witnesses.len());
    for w in witnesses {
        match round(&client, log, log_dir, shared, w, 0).await? {
            Ok(size) => {
                info!(
                    witness = w.verifier.name(),
                    size, "witness cosigned the audit log"
                );
                sizes.push(Some(size));
            }
            Err(e) => {
                warn!(witness = w.verifier.name(), url = %w.url, error = %e,
                    "witness not reached at start-up; retrying in the background");
                sizes.push(None);
            }
        }
    }
    Ok(sizes)
}

/// Starts one background submitter per witness; each stops with `stop`.
/// `known` is what [`check_at_start`] found.
pub fn spawn(
    log: &AuditLog,
    log_dir: &Path,
    shared: &Arc<Witnessed>,
    witnesses: &[WitnessSpec],
    known: &[Option<u64>],
    stop: &CancellationToken,
) -> Result<(), WitnessError> {
    for (w, known) in witnesses.iter().zip(known) {
        let mut rx = log
            .subscribe()
            .map_err(|e| WitnessError::Log(e.to_string()))?;
        let (log, log_dir, w, stop) = (log.clone(), log_dir.to_owned(), w.clone(), stop.clone());
        let shared = shared.clone();
        let mut cosigned = *known;
        tokio::spawn(async move {
            let client = client();
            let mut backoff = Duration::from_secs(1);
            loop {
                let current = *rx.borrow_and_update();
                if cosigned != Some(current) {
                    match round(&client, &log, &log_dir, &shared, &w, cosigned.unwrap_or(0)).await {
                        Ok(Ok(size)) => {
                            cosigned = Some(size);
                            backoff = Duration::from_secs(1);
                            // A batching window: under load the log grows
                            // continuously, and one submission per window
                            // carries everything logged meanwhile.
                            tokio::select! {
                                () = stop.cancelled() => return,
                                () = tokio::time::sleep(BATCH_WINDOW) => {}
                            }
                            continue;
                        }
                        Ok(Err(e)) => {
                            warn!(witness = w.verifier.name(), error = %e, retry_in = ?backoff, "witness submission failed");
                        }
                        Err(e) => {
                            tracing::error!(witness = w.verifier.name(), error = %e, "witness refuses the audit log");
                        }
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        let c = matterdrop_common::tlog::cosignature::Cosigner::new(
            "w.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let s: WitnessSpec = format!("http://127.0.0.1:9/={}", c.vkey()).parse().unwrap();
        assert_eq!(s.url, "http://127.0.0.1:9");
        assert_eq!(s.verifier.name(), "w.example");
        assert!("http://x".parse::<WitnessSpec>().is_err());
        let e = format!("https://w.example={}", c.vkey())
            .parse::<WitnessSpec>()
            .unwrap_err();
        assert!(e.contains("http://"), "{e}");
        assert!("http://x=notakey".parse::<WitnessSpec>().is_err());
        assert_eq!(file_name("w.example/../x"), "w.example_.._x");
        assert_eq!(
            request_body(3, &[[0; 32]], "n\n"),
            "old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nn\n"
        );
    }
}
