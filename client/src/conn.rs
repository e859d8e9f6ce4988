//! A mutually authenticated connection to the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use matterdrop_common::congestion::{PathMemory, ResumeSlot};
use matterdrop_common::custody::ShareStatement;
use matterdrop_common::keys::normalize_fingerprint;
use matterdrop_common::net::{
    FrameError, HoldLimit, Reassembler, read_frame, read_frame_counted, write_frame,
};
use matterdrop_common::proto::{ClientRequest, ServerResponse};
use matterdrop_common::tls::{self, ServerPin};
use serde::{Deserialize, Serialize};

use crate::error::{CmdResult, Fail, exit};
use crate::home::{Home, ServerFile, files};
use crate::unix_now;

/// How long to wait for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for an answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// An open connection.
#[derive(Debug)]
pub struct Session {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    server: String,
    /// The send window, kept near a few congestion windows while an
    /// upload writes.
    sending: Arc<tls::SendWindow>,
    /// The connection receive window `fit_windows` chose.
    recv_window: u64,
    /// What downloads may hold out of order, together (the receive window).
    hold: Arc<HoldLimit>,
    /// Re-shares to this user verified in this session, by packet id: the
    /// headers the server sends with their blobs must be the ones named.
    shares: std::sync::Mutex<BTreeMap<String, Arc<ShareStatement>>>,
    /// Where the congestion controller takes a remembered path from.
    resume: ResumeSlot,
    /// Where [`Session::close`] records what this connection measured of
    /// its path (sessions opened from a home).
    remember: Option<(PathBuf, String)>,
}

/// The pin recorded in a home.
pub fn pin_of(home: &Home, server: &ServerFile) -> CmdResult<ServerPin> {
    match (&server.fingerprint, &server.ca_file) {
        (Some(fp), _) => Ok(ServerPin::Fingerprint(normalize_fingerprint(fp))),
        (None, Some(name)) => {
            let pem = std::fs::read_to_string(home.path(name))
                .map_err(|e| Fail::other(format!("reading pinned CA {name}: {e}")))?;
            Ok(ServerPin::Ca(pem))
        }
        (None, None) => Err(Fail::other(format!(
            "{} pins no server key; enroll again",
            files::SERVER
        ))),
    }
}

async fn resolve(server: &str) -> CmdResult<(SocketAddr, String)> {
    let host = match server.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        None => {
            return Err(Fail::usage(format!(
                "server address {server:?} needs a port, HOST:PORT"
            )));
        }
    };
    let addr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| Fail::connect(format!("cannot resolve {server}: {e}")))?
        .next()
        .ok_or_else(|| Fail::connect(format!("{server} resolves to no address")))?;
    Ok((addr, host))
}

impl Session {
    /// Connects to `server`, presenting `key` and checking the server
    /// against `pin`.
    pub async fn connect(server: &str, pin: &ServerPin, key: &SigningKey) -> CmdResult<Self> {
        let (addr, host) = resolve(server).await?;
        let (mut config, observed) = tls::client_config(key, pin)
            .map_err(|e| Fail::other(format!("client TLS configuration: {e}")))?;
        let resume = ResumeSlot::default();
        tls::client_config_resuming(&mut config, resume.clone());
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().map_err(|_| Fail::other("bind address"))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| Fail::other("bind address"))?
        };
        let (endpoint, _) = tls::endpoint(bind, None)
            .map_err(|e| Fail::connect(format!("cannot open a UDP socket: {e}")))?;
        let connecting = endpoint
            .connect_with(config, addr, &host)
            .map_err(|e| Fail::connect(format!("cannot connect to {server}: {e}")))?;
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => {
                return Err(Fail::lost(format!(
                    "no answer from {server} within {CONNECT_TIMEOUT:?}"
                ))
                .hint("check the address and that mdropd is running and reachable over UDP"));
            }
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let seen = observed.lock().ok().and_then(|s| s.clone());
                return Err(match (pin, seen) {
                    (ServerPin::Fingerprint(want), Some(got)) if &got != want => Fail::connect(format!(
                        "server {server} presented key {got}, but the pinned fingerprint is {want}; nothing was sent"
                    ))
                    .hint(
                        "check the fingerprint printed by `mdropd init` on the server; if the server was \
                         re-initialized, verify the new fingerprint out of band before trusting it",
                    ),
                    // Gone or busy, not refused for who we are: worth a retry.
                    _ if lost_connection(&e) => Fail::lost(format!(
                        "cannot establish a secure connection to {server}: {e}"
                    ))
                    .hint("check the address and that mdropd is running"),
                    _ => Fail::connect(format!("cannot establish a secure connection to {server}: {e}"))
                        .hint("check the address, the pinned fingerprint or CA file, and that mdropd is running"),
                });
            }
        };
        let (recv_window, send_cap) = tls::fit_windows(&conn);
        let sending = tls::SendWindow::new(&conn, send_cap);
        let hold = HoldLimit::for_connection(&conn, recv_window);
        Ok(Self {
            endpoint,
            conn,
            server: server.to_owned(),
            sending,
            recv_window,
            hold,
            shares: std::sync::Mutex::new(BTreeMap::new()),
            resume,
            remember: None,
        })
    }

    /// Connects to the server this home is enrolled with.
    pub async fn open(home: &Home, key: &SigningKey) -> CmdResult<(Self, ServerFile)> {
        let server = home.server()?;
        let pin = pin_of(home, &server)?;
        let mut session = Self::connect(&server.server, &pin, key).await?;
        // A long path this home sent over lately starts at about the rate
        // it delivered then (the controller checks it is the same path).
        let paths = home.path(PATHS);
        if let Some(m) = PathMemories::load(&paths).get(&server.server) {
            let _ = session.resume.set(m);
        }
        session.remember = Some((paths, server.server.clone()));
        // Once a day: keys registered under this id that this client did
        // not create (a warning, never a reason to stop).
        crate::keyaudit::daily(home, &session, &server, key).await;
        Ok((session, server))
    }

    fn connection_failure(&self, what: &str, e: impl std::fmt::Display) -> Fail {
        if let Some(reason) = self.conn.close_reason() {
            let f = format!("the server {} closed the connection: {reason}", self.server);
            return if lost_connection(&reason) {
                Fail::lost(f)
            } else {
                Fail::connect(f)
            };
        }
        Fail::lost(format!("{what} with {}: {e}", self.server))
    }

    /// Sends one request and returns its answer and the rest of the stream
    /// (for answers followed by data).
    pub async fn request_stream(
        &self,
        req: &ClientRequest,
    ) -> CmdResult<(ServerResponse, quinn::RecvStream)> {
        self.request_body(req)
            .await
            .map(|(resp, recv, _)| (resp, recv))
    }

    /// Records a verified re-share of its packet to this user.
    pub fn accept_share(&self, share: ShareStatement) {
        if let Ok(mut m) = self.shares.lock() {
            m.insert(share.id.clone(), Arc::new(share));
        }
    }

    /// The verified re-share of `packet` to this user, if any.
    pub fn share_of(&self, packet: &str) -> Option<Arc<ShareStatement>> {
        self.shares.lock().ok()?.get(packet).cloned()
    }

    /// [`Session::request_stream`] for a download: the rest of the stream
    /// comes with a [`Reassembler`] that reads it out of order.
    pub async fn request_download(
        &self,
        req: &ClientRequest,
    ) -> CmdResult<(ServerResponse, quinn::RecvStream, Reassembler)> {
        self.request_body(req)
            .await
            .map(|(resp, recv, at)| (resp, recv, Reassembler::new(at, self.hold.clone())))
    }

    async fn request_body(
        &self,
        req: &ClientRequest,
    ) -> CmdResult<(ServerResponse, quinn::RecvStream, u64)> {
        let (mut send, mut recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| self.connection_failure("cannot open a stream", e))?;
        write_frame(&mut send, req)
            .await
            .map_err(|e| self.connection_failure("cannot send the request", e))?;
        let _ = send.finish();
        let resp = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            read_frame_counted::<ServerResponse>(&mut recv),
        )
        .await
        .map_err(|_| {
            Fail::lost(format!(
                "no answer from {} within {RESPONSE_TIMEOUT:?}",
                self.server
            ))
        })?;
        match resp {
            Ok((ServerResponse::Error(e), _)) => Err(Fail::from_server(e)),
            Ok((other, at)) => Ok((other, recv, at)),
            Err(FrameError::Proto(p)) => Err(Fail::other(format!(
                "unreadable answer from the server: {p}"
            ))),
            Err(e) => Err(self.connection_failure("lost the answer", e)),
        }
    }

    /// Sends a request followed by every chunk `body` yields until it is
    /// closed (handed to QUIC without a copy), then waits for the answer.
    /// `progress` is told about every chunk sent.
    pub async fn request_with_chunks(
        &self,
        req: &ClientRequest,
        mut body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        mut progress: impl FnMut(u64),
    ) -> CmdResult<ServerResponse> {
        let (mut send, mut recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| self.connection_failure("cannot open a stream", e))?;
        write_frame(&mut send, req)
            .await
            .map_err(|e| self.connection_failure("cannot send the request", e))?;
        let mut refused = false;
        while let Some(chunk) = body.recv().await {
            let n = chunk.len() as u64;
            self.sending.follow();
            if send.write_chunk(chunk).await.is_err() {
                // The server stopped reading: its answer says why.
                refused = true;
                break;
            }
            progress(n);
        }
        drop(body);
        if !refused {
            let _ = send.finish();
        }
        self.answer(&mut recv).await
    }

    async fn answer(&self, recv: &mut quinn::RecvStream) -> CmdResult<ServerResponse> {
        let resp = tokio::time::timeout(RESPONSE_TIMEOUT, read_frame::<ServerResponse>(recv))
            .await
            .map_err(|_| {
                Fail::lost(format!(
                    "no answer from {} within {RESPONSE_TIMEOUT:?}",
                    self.server
                ))
            })?;
        match resp {
            Ok(ServerResponse::Error(e)) => Err(Fail::from_server(e)),
            Ok(other) => Ok(other),
            Err(FrameError::Proto(p)) => Err(Fail::other(format!(
                "unreadable answer from the server: {p}"
            ))),
            Err(e) => Err(self.connection_failure("lost the answer", e)),
        }
    }

    /// Whether the connection has the large windows of a long path
    /// ([`tls::fit_windows`] chose them from the handshake's RTT): its
    /// receive window then exceeds a stream's, so one stream that nobody
    /// reads yet cannot take all of the connection's credit. Decided by
    /// the window, not by the RTT now, which may have moved since.
    pub fn long_path(&self) -> bool {
        self.recv_window > u64::from(tls::STREAM_WINDOW)
    }

    /// The connection's current estimate of the round-trip time.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// Sends one request and waits for its answer. An error answer becomes
    /// a [`Fail`] with the exit code of its class.
    pub async fn request(&self, req: &ClientRequest) -> CmdResult<ServerResponse> {
        self.request_stream(req).await.map(|(resp, _)| resp)
    }

    /// Closes the connection politely: long enough for the close to be
    /// sent, not for the connection to drain (three probe timeouts, over
    /// a second on a long path, that every command would wait at its end).
    /// A lost close costs the server only an idle connection.
    /// What this connection measured of its path (if it sent enough to
    /// fill it) is remembered for the next one.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        if let (Some((file, server)), Some(m)) = (&self.remember, tls::path_memory(&self.conn)) {
            let mut all = PathMemories::load(file);
            all.put(server, m);
            // Only a speed-up is lost if it cannot be written.
            let _ = all.save(file);
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
    }
}

/// The home's memory of the paths to its servers.
const PATHS: &str = "paths.json";
/// How long a path's memory is used.
const PATH_MEMORY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Servers remembered at most.
const PATHS_KEPT: usize = 8;

/// `paths.json`: what the last connection that filled the path to each
/// server measured (rate and RTT only; nothing secret, kept 0600 like the
/// rest of the home).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PathMemories {
    servers: BTreeMap<String, PathEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PathEntry {
    rate_bytes_per_sec: f64,
    min_rtt_us: u64,
    /// Unix seconds.
    measured_at: u64,
}

impl PathMemories {
    /// The file's memories; none if it is missing or unreadable.
    fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// `server`'s memory, if recent and sane.
    fn get(&self, server: &str) -> Option<PathMemory> {
        let e = self.servers.get(server)?;
        let age = unix_now().checked_sub(e.measured_at)?;
        let sane = e.rate_bytes_per_sec.is_finite() && e.rate_bytes_per_sec > 0.0;
        (age < PATH_MEMORY_TTL.as_secs() && sane && e.min_rtt_us > 0).then(|| PathMemory {
            rate: e.rate_bytes_per_sec,
            min_rtt: Duration::from_micros(e.min_rtt_us),
        })
    }

    fn put(&mut self, server: &str, m: PathMemory) {
        self.servers.insert(
            server.to_owned(),
            PathEntry {
                rate_bytes_per_sec: m.rate,
                min_rtt_us: u64::try_from(m.min_rtt.as_micros()).unwrap_or(u64::MAX),
                measured_at: unix_now(),
            },
        );
        while self.servers.len() > PATHS_KEPT {
            let oldest = self
                .servers
                .iter()
                .min_by_key(|(_, e)| e.measured_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.servers.remove(&k);
            }
        }
    }

    fn save(&self, path: &Path) -> CmdResult {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Fail::other(e.to_string()))?;
        crate::home::write_replace(path, &bytes, 0o600)
    }
}

/// How long [`Session::close`] lets the endpoint send its close.
const CLOSE_WAIT: Duration = Duration::from_millis(50);

/// `--retries` by default: with [`backoff`], a minute of waiting between
/// tries, and up to four minutes in all with a server that does not answer
/// (each try then waits 30 s for the handshake).
pub const DEFAULT_RETRIES: u32 = 6;

/// The wait before retry `attempt` (from 0): 1, 2, 4, 8, 16, then 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.min(5)).min(30))
}

/// Runs `op`, a whole operation on a session of its own (each run resumes
/// what the ones before it left: spooled parts, verified parts), and runs
/// it again after a lost connection, up to `retries` more times with
/// [`backoff`]. Other failures end it at once.
pub async fn with_retries<T, F, Fut>(retries: u32, mut op: F) -> CmdResult<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = CmdResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Err(f) if f.retryable && attempt < retries => {
                let wait = backoff(attempt);
                eprintln!(
                    "mdrop: {}; reconnecting in {} s (retry {} of {retries})…",
                    crate::output::escape(&f.message, false),
                    wait.as_secs(),
                    attempt + 1
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(f) if f.retryable => {
                let message = if retries > 0 {
                    format!("{} (gave up after {retries} retries)", f.message)
                } else {
                    f.message
                };
                return Err(Fail::lost(message).hint(
                    "run the same command again to resume: what was already sent or verified is kept",
                ));
            }
            other => return other,
        }
    }
}

/// Runs `work`; on Ctrl-C stops it and says how to resume (`kept` says
/// what a new run finds).
pub async fn interruptible<T>(
    work: impl Future<Output = CmdResult<T>>,
    kept: &str,
) -> CmdResult<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Fail::other("interrupted")
            .hint(format!("run the same command again to resume: {kept}"))),
    }
}

/// Whether a connection ended in a way a new connection may get past: a
/// timeout, a reset (the server restarted), a refusal for load, a
/// transport failure (such as quinn's "too many gaps"), or the server
/// going away. Not: a TLS or protocol failure, or a close by the server
/// for a reason of its own (a limit on this key, shutting down is fine).
pub fn lost_connection(e: &quinn::ConnectionError) -> bool {
    use quinn::ConnectionError as E;
    match e {
        E::TimedOut | E::Reset => true,
        // TLS alerts travel as transport error codes 0x100-0x1ff.
        E::TransportError(t) => !(0x100..0x200).contains(&u64::from(t.code)),
        E::ConnectionClosed(c) => {
            c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
                || c.error_code == quinn::TransportErrorCode::NO_ERROR
        }
        E::ApplicationClosed(c) => c.reason.starts_with(b"server shutting down"),
        _ => false,
    }
}

/// The error for an answer of an unexpected kind.
pub fn unexpected(resp: &ServerResponse) -> Fail {
    Fail::new(
        exit::OTHER,
        format!("unexpected answer from the server: {resp:?}"),
    )
}
