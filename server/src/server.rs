//! The QUIC endpoint: accept loop, one task per connection and per stream,
//! limits, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ed25519_dalek::VerifyingKey;
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::net::{BatchError, FrameError, read_batch, read_frame, write_frame};
use matterdrop_common::proto::{ALPN, ClientRequest, ErrorCode, ProtoError, ServerResponse};
use matterdrop_common::tls;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::audit::{Body, BodyOut};
use crate::handler::{self, Reply, Sink, State};

/// Connections served at once; more are refused at the handshake.
pub const MAX_CONNECTIONS: usize = 1024;
/// A stream must deliver its request frame within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections one key may hold at once, so one client cannot take every
/// connection slot from the others.
pub const MAX_CONNECTIONS_PER_KEY: usize = 8;

/// Open connections per client key.
pub type PerKey = std::sync::Mutex<std::collections::HashMap<[u8; 32], usize>>;

/// One connection's place in the per-key count; freed on drop.
struct KeySlot<'a> {
    map: &'a PerKey,
    key: [u8; 32],
}

impl<'a> KeySlot<'a> {
    fn take(map: &'a PerKey, key: [u8; 32]) -> Option<Self> {
        let mut m = map.lock().ok()?;
        let n = m.entry(key).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_KEY {
            return None;
        }
        *n += 1;
        Some(Self { map, key })
    }
}

impl Drop for KeySlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(n) = m.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.key);
                }
            }
        }
    }
}

/// A bound, not yet serving, endpoint.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    state: Arc<State>,
}

impl Server {
    /// Binds the endpoint.
    pub fn bind(
        listen: SocketAddr,
        cert: rustls::pki_types::CertificateDer<'static>,
        tls_key: &[u8],
        kx: tls::KeyExchange,
        state: Arc<State>,
    ) -> Result<Self> {
        let cfg = tls::server_config(vec![cert], tls_key, kx)?;
        let (endpoint, granted) =
            tls::endpoint(listen, Some(cfg)).with_context(|| format!("binding {listen}"))?;
        if granted < tls::SOCKET_BUFFER {
            warn!(
                granted,
                wanted = tls::SOCKET_BUFFER,
                "the kernel granted a small UDP receive buffer; fast uploads may drop packets \
                 (raise net.core.rmem_max and net.core.wmem_max to at least 4 MiB)"
            );
        } else {
            debug!(granted, "UDP receive buffer");
        }
        Ok(Self { endpoint, state })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight
    /// requests finish for up to `grace`, closes and flushes.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) -> Result<()> {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let incoming = tokio::select! {
                () = shutdown.cancelled() => break,
                incoming = self.endpoint.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                warn!(remote = %incoming.remote_address(), "connection limit reached; refusing");
                incoming.refuse();
                continue;
            };
            let span = info_span!("conn", remote = %incoming.remote_address(), peer = tracing::field::Empty);
            let state = self.state.clone();
            let shutdown = shutdown.clone();
            let inner = tracker.clone();
            tracker.spawn(
                async move {
                    serve_connection(incoming, state, shutdown, inner).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        info!(grace = ?grace, "shutting down: refusing new connections, finishing in-flight requests");
        self.endpoint.set_server_config(None);
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!("in-flight requests did not finish within the grace period; closing anyway");
        }
        self.endpoint.close(0u32.into(), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.flush()).await??;
        info!("shutdown complete");
        Ok(())
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    state: Arc<State>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "handshake failed");
            return;
        }
    };
    tls::fit_windows(&conn);
    let alpn_ok = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .is_some_and(|p| p == ALPN);
    if !alpn_ok {
        conn.close(1u32.into(), b"unsupported application protocol");
        return;
    }
    let Ok(key) = tls::peer_ed25519_key(&conn) else {
        conn.close(1u32.into(), b"client certificate must carry an Ed25519 key");
        return;
    };
    tracing::Span::current().record("peer", ed25519_fingerprint(&key).as_str());
    let Some(_slot) = KeySlot::take(&state.per_key, key.to_bytes()) else {
        warn!("too many connections for one key; refusing");
        conn.close(2u32.into(), b"too many connections for this key");
        return;
    };
    debug!("connected");
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            s = conn.accept_bi() => s,
        };
        match stream {
            Ok((send, recv)) => {
                let state = state.clone();
                let span = info_span!("stream", id = %send.id());
                tracker.spawn(serve_stream(state, key, send, recv).instrument(span));
            }
            Err(e) => {
                debug!(reason = %e, "connection ended");
                break;
            }
        }
    }
}

async fn serve_stream(
    state: Arc<State>,
    key: VerifyingKey,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let request =
        tokio::time::timeout(REQUEST_TIMEOUT, read_frame::<ClientRequest>(&mut recv)).await;
    let reply: Reply = match request {
        Err(_) => {
            ServerResponse::error(ErrorCode::BadRequest, "request not received in time").into()
        }
        Ok(Err(e)) => frame_error_response(&e).into(),
        Ok(Ok(req)) => {
            let name = req.name();
            let started = std::time::Instant::now();
            let result =
                tokio::task::spawn_blocking(move || handler::handle(&state, &key, req)).await;
            let resp = result.unwrap_or_else(|e| {
                warn!(error = %e, "handler panicked");
                ServerResponse::error(ErrorCode::Internal, "internal error").into()
            });
            let outcome = match &resp {
                Reply::Frame(ServerResponse::Error(e)) => format!("{:?}", e.code),
                _ => "ok".into(),
            };
            info!(
                request = name,
                outcome,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
            resp
        }
    };
    let (frame, body) = match reply {
        Reply::Frame(f) => (f, None),
        Reply::Download(f, b) => (f, Some(b)),
        Reply::Upload(sink) => (receive_body(&mut recv, sink).await, None),
    };
    if matches!(frame, ServerResponse::Error(_)) {
        // Do not read whatever else the client sends on a refused stream.
        let _ = recv.stop(0u32.into());
    }
    if let Err(e) = write_frame(&mut send, &frame).await {
        debug!(error = %e, "could not send response");
        return;
    }
    if let Some(body) = body {
        if let Err(e) = stream_body(&mut send, body).await {
            warn!(error = %e, "transfer failed; resetting the stream");
            let _ = send.reset(1u32.into());
            return;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

/// How long an upload may stall between chunks.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// Feeds the bytes that follow the request frame to `sink` on a blocking
/// thread, through a small bounded queue, and returns its answer.
async fn receive_body(recv: &mut quinn::RecvStream, sink: Sink) -> ServerResponse {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let consumer = tokio::task::spawn_blocking(move || sink(rx));
    let mut received = 0u64;
    loop {
        let batch = match read_batch(recv, CHUNK, Some(CHUNK_TIMEOUT)).await {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => break,
            Err(BatchError::Stalled(_)) => Err("upload stalled".to_owned()),
            Err(e) => Err(format!("upload interrupted: {e}")),
        };
        if let Ok(b) = &batch {
            received += b.len() as u64;
        }
        let failed = batch.is_err();
        if tx.send(batch).await.is_err() || failed {
            // The sink stopped early (it refused the data) or the stream broke.
            break;
        }
    }
    drop(tx);
    let resp = consumer.await.unwrap_or_else(|e| {
        warn!(error = %e, "upload handler panicked");
        ServerResponse::error(ErrorCode::Internal, "internal error")
    });
    let outcome = match &resp {
        ServerResponse::Error(e) => format!("{:?}", e.code),
        _ => "ok".into(),
    };
    info!(bytes = received, outcome, "upload ended");
    resp
}

/// Size of the chunks a body is cut into on its way to the stream.
const CHUNK: usize = 256 * 1024;

/// Runs `body` on a blocking thread and copies what it writes onto `send`,
/// with a small bounded queue between them (memory stays flat).
async fn stream_body(send: &mut quinn::SendStream, body: Body) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        body(&mut w)?;
        w.flush_chunk()
    });
    while let Some(chunk) = rx.recv().await {
        // A reader that stops reading is cut off, not waited for forever.
        // Handed to quinn as it is (no copy).
        match tokio::time::timeout(CHUNK_TIMEOUT, send.write_chunk(chunk)).await {
            Ok(r) => r.map_err(std::io::Error::other)?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading",
                ));
            }
        }
    }
    producer.await.map_err(std::io::Error::other)?
}

struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.pass(bytes::Bytes::from(chunk))
    }

    fn pass(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "peer went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_chunk()
    }
}

impl BodyOut for ChunkWriter {
    fn send(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.flush_chunk()?;
        if chunk.is_empty() {
            return Ok(());
        }
        self.pass(chunk)
    }
}

fn frame_error_response(e: &FrameError) -> ServerResponse {
    match e {
        FrameError::Proto(ProtoError::TooLarge(_)) => {
            ServerResponse::error(ErrorCode::TooLarge, e.to_string())
        }
        FrameError::Proto(ProtoError::UnknownKind(_)) => ServerResponse::error(
            ErrorCode::UnknownKind,
            format!("{e}; this server speaks matterdrop/1"),
        ),
        _ => ServerResponse::error(ErrorCode::BadRequest, e.to_string()),
    }
}
