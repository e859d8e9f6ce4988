//! The QUIC endpoint: accept loop, one task per connection and per stream,
//! limits, and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use ed25519_dalek::VerifyingKey;
use matterdrop_common::congestion::ResumeSlot;
use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::net::{
    BatchError, FrameError, HoldLimit, Reassembler, read_frame_counted, write_frame,
};
use matterdrop_common::proto::{ALPN, ClientRequest, ErrorCode, ProtoError, ServerResponse};
use matterdrop_common::tls;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::audit::{Body, BodyOut};
use crate::handler::{self, Reply, Sink, State};

/// Connections of enrolled keys served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections in their handshake at once; more wait (up to
/// [`HANDSHAKE_QUEUE_WAIT`], at most [`MAX_QUEUED`] of them) for a place.
pub const MAX_HANDSHAKES: usize = 256;
/// Connections waiting for a handshake place; more are refused.
pub const MAX_QUEUED: usize = tls::MAX_INCOMING - MAX_HANDSHAKES;
/// How long a connection waits for a handshake place.
pub const HANDSHAKE_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Connections one source address (an IPv6 /64) may have queued or in
/// their handshake: a whole firm may sit behind one address, but one
/// address cannot fill the queue.
pub const MAX_HANDSHAKES_PER_ADDR: usize = 128;
/// With this many handshakes under way, a new connection must first prove
/// its source address (a QUIC Retry, one more round trip) before the
/// server spends a handshake on it.
pub const RETRY_ABOVE: usize = 32;
/// A handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of keys that are not enrolled (they can only enroll), in
/// all: a pool of their own, so they never take an enrolled user's place.
pub const MAX_UNENROLLED: usize = 64;
/// Connections of keys that are not enrolled, per source address.
pub const MAX_UNENROLLED_PER_ADDR: usize = 8;
/// Receive and send windows of a key that is not enrolled: one request
/// frame and its answer.
pub const UNENROLLED_WINDOW: u32 = tls::SERVER_INITIAL_WINDOW;
/// How long the connection of a key that is not enrolled stays open.
pub const UNENROLLED_LIFETIME: Duration = Duration::from_secs(15);
/// How often counts of failed enrollments go into the audit log.
pub const ENROLL_REPORT_PERIOD: Duration = Duration::from_secs(60);
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

/// Flow-control window memory all connections may be granted together,
/// by default (`mdropd serve --window-budget-mib`).
pub const DEFAULT_WINDOW_BUDGET: u64 = 512 << 20;
/// Windows (receive and send together) a connection gets even when the
/// budget is spent: enough to work, slowly (each window holds a whole
/// request or answer frame).
pub const MIN_WINDOWS: u64 = 2 * tls::SERVER_INITIAL_WINDOW as u64;

/// The server-wide budget for flow-control windows: a connection's receive
/// window bounds the upload data the server may have to buffer for it, and
/// its send window the download data; their sum over all connections is
/// what the server commits to holding. A connection is granted what its
/// path wants while the budget lasts, then less (at least
/// [`MIN_WINDOWS`]); the grant returns to the budget when the connection
/// ends.
#[derive(Debug)]
pub struct WindowBudget {
    total: u64,
    used: std::sync::Mutex<u64>,
}

/// A connection's share of the [`WindowBudget`]; returned on drop.
#[derive(Debug)]
pub struct WindowGrant<'a> {
    budget: &'a WindowBudget,
    /// Bytes granted.
    pub bytes: u64,
}

impl WindowBudget {
    /// A budget of `total` bytes.
    pub fn new(total: u64) -> Self {
        Self {
            total,
            used: std::sync::Mutex::new(0),
        }
    }

    /// Grants up to `want` bytes: all of it while the budget lasts, else
    /// what is left, but never less than [`MIN_WINDOWS`] (nor more than
    /// `want`).
    pub fn grant(&self, want: u64) -> WindowGrant<'_> {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let left = self.total.saturating_sub(*used);
        let bytes = want.min(left.max(MIN_WINDOWS));
        *used += bytes;
        WindowGrant {
            budget: self,
            bytes,
        }
    }

    /// Bytes granted now.
    pub fn used(&self) -> u64 {
        *self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for WindowGrant<'_> {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *used = used.saturating_sub(self.bytes);
    }
}

/// Sizes `conn`'s windows to its path ([`tls::fit_windows`]) and then to
/// its grant of `budget`: both windows shrink by the same factor when the
/// grant is less than they want.
/// Returns the grant, the send window's ceiling, which the connection's
/// [`tls::SendWindow`] then follows up to, and the receive window.
fn apply_windows<'a>(
    conn: &quinn::Connection,
    budget: &'a WindowBudget,
) -> (WindowGrant<'a>, Arc<tls::SendWindow>, u64) {
    let (recv, send) = tls::fit_windows(conn);
    let want = recv + send;
    let grant = budget.grant(want);
    let mut send_cap = send;
    let mut recv_window = recv;
    if grant.bytes < want {
        // Each window keeps room for a whole frame.
        let scale = |w: u64| (w * grant.bytes / want).max(u64::from(tls::SERVER_INITIAL_WINDOW));
        recv_window = scale(recv);
        conn.set_receive_window(quinn::VarInt::from_u64(recv_window).unwrap_or(quinn::VarInt::MAX));
        send_cap = scale(send);
        debug!(
            granted = grant.bytes,
            wanted = want,
            "window budget short: smaller windows"
        );
    }
    (grant, tls::SendWindow::new(conn, send_cap), recv_window)
}

/// The connection pools.
#[derive(Debug)]
struct Pools {
    handshakes: Arc<Semaphore>,
    /// Places for connections queued or in their handshake.
    admitted: Arc<Semaphore>,
    handshakes_per_addr: AddrCounts,
    enrolled: Arc<Semaphore>,
    unenrolled: Arc<Semaphore>,
    unenrolled_per_addr: AddrCounts,
    /// Connections refused since the last report, by reason.
    refused: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Pools {
    fn new() -> Self {
        Self {
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            admitted: Arc::new(Semaphore::new(MAX_HANDSHAKES + MAX_QUEUED)),
            handshakes_per_addr: Default::default(),
            enrolled: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            unenrolled: Arc::new(Semaphore::new(MAX_UNENROLLED)),
            unenrolled_per_addr: Default::default(),
            refused: Default::default(),
        }
    }

    fn refused(&self, why: &'static str) {
        debug!(why, "connection refused");
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(why).or_default() += 1;
        }
    }
}

/// Connections per source address.
type AddrCounts = Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>;

/// A connection's place in its source address's count; freed on drop.
struct AddrSlot {
    counts: AddrCounts,
    addr: IpAddr,
}

impl AddrSlot {
    fn take(counts: &AddrCounts, addr: IpAddr, limit: usize) -> Option<Self> {
        let mut m = counts.lock().ok()?;
        let n = m.entry(addr).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            addr,
        })
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.counts.lock() {
            if let Some(n) = m.get_mut(&self.addr) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.addr);
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
    windows: Arc<WindowBudget>,
    /// The QUIC configuration each connection starts from.
    config: Arc<quinn::ServerConfig>,
    paths: Arc<crate::paths::PathBook>,
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
        let config = Arc::new(cfg.clone());
        let (endpoint, granted) = tls::server_endpoint(listen, cfg, tls_key)
            .with_context(|| format!("binding {listen}"))?;
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
        Ok(Self {
            endpoint,
            state,
            windows: Arc::new(WindowBudget::new(DEFAULT_WINDOW_BUDGET)),
            config,
            paths: Arc::default(),
        })
    }

    /// Sets the server-wide flow-control window budget (bytes).
    #[must_use]
    pub fn window_budget(mut self, bytes: u64) -> Self {
        self.windows = Arc::new(WindowBudget::new(bytes));
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight
    /// requests finish for up to `grace`, closes and flushes.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) -> Result<()> {
        let tracker = TaskTracker::new();
        let pools = Arc::new(Pools::new());
        let reporter = tokio::spawn(report_periodically(
            self.state.clone(),
            pools.clone(),
            shutdown.clone(),
        ));
        loop {
            let incoming = tokio::select! {
                () = shutdown.cancelled() => break,
                incoming = self.endpoint.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            let busy = MAX_HANDSHAKES - pools.handshakes.available_permits();
            if busy >= RETRY_ABOVE && !incoming.remote_address_validated() && incoming.may_retry() {
                // Stateless: costs the server one packet, and a spoofed
                // source never comes back.
                let _ = incoming.retry();
                continue;
            }
            let Some(from_addr) = AddrSlot::take(
                &pools.handshakes_per_addr,
                crate::flood::source(incoming.remote_address().ip()),
                MAX_HANDSHAKES_PER_ADDR,
            ) else {
                pools.refused("handshakes per address");
                incoming.refuse();
                continue;
            };
            let Ok(admitted) = pools.admitted.clone().try_acquire_owned() else {
                pools.refused("handshake queue full");
                incoming.refuse();
                continue;
            };
            let span = info_span!("conn", remote = %incoming.remote_address(), peer = tracing::field::Empty);
            let state = self.state.clone();
            let shutdown = shutdown.clone();
            let inner = tracker.clone();
            let pools = pools.clone();
            let shared = Shared {
                windows: self.windows.clone(),
                config: self.config.clone(),
                paths: self.paths.clone(),
            };
            tracker.spawn(
                async move {
                    // Waits its turn: a burst of handshakes delays a new
                    // connection rather than refusing it.
                    let place = tokio::time::timeout(
                        HANDSHAKE_QUEUE_WAIT,
                        pools.handshakes.clone().acquire_owned(),
                    )
                    .await;
                    let Ok(Ok(handshake)) = place else {
                        pools.refused("no handshake place in time");
                        incoming.refuse();
                        return;
                    };
                    serve_connection(
                        incoming,
                        (handshake, admitted, from_addr),
                        (&pools, &shared),
                        state,
                        shutdown,
                        inner,
                    )
                    .await;
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
        let _ = reporter.await;
        report(&self.state, &pools).await;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.flush()).await??;
        info!("shutdown complete");
        Ok(())
    }
}

/// Every [`ENROLL_REPORT_PERIOD`] until `shutdown`: failed enrollments
/// into the audit log and refused connections into the server log.
async fn report_periodically(state: Arc<State>, pools: Arc<Pools>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ENROLL_REPORT_PERIOD);
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => report(&state, &pools).await,
        }
    }
}

async fn report(state: &Arc<State>, pools: &Pools) {
    let refused = pools
        .refused
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    for (why, n) in refused {
        warn!(connections = n, why, "refused connections");
    }
    let Some(c) = state.enroll_limiter.take_counts() else {
        return;
    };
    warn!(
        failed = c.failed,
        rate_limited = c.limited,
        keys = c.keys,
        addresses = c.addresses,
        "failed enrollments"
    );
    let state = state.clone();
    let logged = tokio::task::spawn_blocking(move || {
        let mut details = vec![
            ("failed".into(), c.failed.to_string()),
            ("rate_limited".into(), c.limited.to_string()),
            ("keys".into(), c.keys.to_string()),
            ("addresses".into(), c.addresses.to_string()),
        ];
        for (reason, n) in &c.reasons {
            details.push((format!("reason:{reason}"), n.to_string()));
        }
        let summary = format!(
            "{} failed enrollments, {} more refused by the rate limit",
            c.failed, c.limited
        );
        state.record(crate::audit::Event::server(
            "server",
            "enroll-failures",
            None,
            Some(("enroll-failures", &summary)),
            details,
        ))
    })
    .await;
    if !matches!(logged, Ok(Ok(_))) {
        warn!("could not log the counts of failed enrollments");
    }
}

/// What every connection task shares besides the pools.
struct Shared {
    windows: Arc<WindowBudget>,
    config: Arc<quinn::ServerConfig>,
    paths: Arc<crate::paths::PathBook>,
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handshake: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
        AddrSlot,
    ),
    (pools, shared): (&Pools, &Shared),
    state: Arc<State>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let remote = crate::flood::source(incoming.remote_address().ip());
    // Its congestion controller learns the path remembered for the client
    // once the client is known.
    let resume = ResumeSlot::default();
    let connecting = match incoming.accept_with(Arc::new(tls::server_config_resuming(
        &shared.config,
        resume.clone(),
    ))) {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "handshake failed");
            return;
        }
    };
    let windows = &*shared.windows;
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!(error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            pools.refused("handshake timed out");
            return;
        }
    };
    drop(handshake);
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
    let enrolled = {
        let (state, key) = (state.clone(), key.to_bytes());
        tokio::task::spawn_blocking(move || {
            state
                .gate
                .read()
                .principal_by_key(&key)
                .is_ok_and(|p| p.is_some())
        })
        .await
        .unwrap_or(false)
    };
    // Enrolled keys share the large pool; the others a small one of their
    // own, a few per address, for a short time.
    let (_pool, _addr_slot, deadline, windows) = if enrolled {
        let Ok(p) = pools.enrolled.clone().try_acquire_owned() else {
            pools.refused("connection limit reached");
            conn.close(2u32.into(), b"server busy: too many connections");
            return;
        };
        (p, None, None, Some(apply_windows(&conn, windows)))
    } else {
        let Some(a) = AddrSlot::take(&pools.unenrolled_per_addr, remote, MAX_UNENROLLED_PER_ADDR)
        else {
            pools.refused("unenrolled connections per address");
            conn.close(
                2u32.into(),
                b"too many connections of keys that are not enrolled from this address",
            );
            return;
        };
        let Ok(p) = pools.unenrolled.clone().try_acquire_owned() else {
            pools.refused("unenrolled connection pool full");
            conn.close(
                2u32.into(),
                b"server busy: too many connections of keys that are not enrolled",
            );
            return;
        };
        // It can only enroll (one frame): small windows, outside the
        // budget, so a flood cannot spend it.
        conn.set_receive_window(quinn::VarInt::from_u32(UNENROLLED_WINDOW));
        conn.set_send_window(u64::from(UNENROLLED_WINDOW));
        (
            p,
            Some(a),
            Some(tokio::time::Instant::now() + UNENROLLED_LIFETIME),
            None,
        )
    };
    let Some(_slot) = KeySlot::take(&state.per_key, key.to_bytes()) else {
        pools.refused("connections per key");
        conn.close(2u32.into(), b"too many connections for this key");
        return;
    };
    // What this connection's uploads hold out of order comes out of its
    // receive window (see `HoldLimit`).
    let hold = HoldLimit::for_connection(
        &conn,
        windows
            .as_ref()
            .map_or(u64::from(UNENROLLED_WINDOW), |(_, _, r)| *r),
    );
    debug!(enrolled, "connected");
    if enrolled {
        if let Some(m) = shared.paths.get(key.as_bytes(), remote) {
            let _ = resume.set(m);
        }
    }
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut expired => {
                conn.close(3u32.into(), b"a key that is not enrolled gets a short connection; reconnect after enrolling");
                break;
            }
            s = conn.accept_bi() => s,
        };
        match stream {
            Ok((send, recv)) => {
                let state = state.clone();
                let span = info_span!("stream", id = %send.id());
                let sending = windows.as_ref().map(|(_, w, _)| w.clone());
                tracker.spawn(
                    serve_stream(state, key, remote, (send, recv), sending, hold.clone())
                        .instrument(span),
                );
            }
            Err(e) => {
                debug!(reason = %e, "connection ended");
                break;
            }
        }
    }
    // What this connection delivered, for the client's next one (only a
    // connection that sent enough to fill the path measured anything).
    if enrolled {
        if let Some(m) = tls::path_memory(&conn) {
            shared.paths.put(key.as_bytes(), remote, m);
        }
    }
}

async fn serve_stream(
    state: Arc<State>,
    key: VerifyingKey,
    remote: IpAddr,
    (mut send, mut recv): (quinn::SendStream, quinn::RecvStream),
    sending: Option<Arc<tls::SendWindow>>,
    hold: Arc<HoldLimit>,
) {
    let request = tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_frame_counted::<ClientRequest>(&mut recv),
    )
    .await;
    let mut body_at = 0;
    let reply: Reply = match request {
        Err(_) => {
            ServerResponse::error(ErrorCode::BadRequest, "request not received in time").into()
        }
        Ok(Err(e)) => frame_error_response(&e).into(),
        Ok(Ok((req, at))) => {
            body_at = at;
            let name = req.name();
            let started = std::time::Instant::now();
            let enroll = matches!(req, ClientRequest::Enroll(_));
            let limited = if enroll {
                state.enroll_limiter.check(key.as_bytes(), remote).err()
            } else {
                None
            };
            let resp = if let Some(limited) = limited {
                // Counted and reported with the failed enrollments, not a
                // log line each: a flood must not grow the server's log.
                return answer_unread(
                    &mut send,
                    &mut recv,
                    ServerResponse::error(ErrorCode::Denied, limited.to_string()),
                )
                .await;
            } else {
                let st = state.clone();
                let result =
                    tokio::task::spawn_blocking(move || handler::handle(&st, &key, req)).await;
                let resp = result.unwrap_or_else(|e| {
                    warn!(error = %e, "handler panicked");
                    ServerResponse::error(ErrorCode::Internal, "internal error").into()
                });
                if let (true, Reply::Frame(ServerResponse::Error(e))) = (enroll, &resp) {
                    state
                        .enroll_limiter
                        .failed(key.as_bytes(), remote, &enroll_reason(&e.message));
                }
                resp
            };
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
        Reply::Upload(sink) => {
            let reader = Reassembler::new(body_at, hold);
            (receive_body(&mut recv, reader, sink).await, None)
        }
    };
    if matches!(frame, ServerResponse::Error(_)) {
        // Do not read whatever else the client sends on a refused stream.
        let _ = recv.stop(0u32.into());
    }
    if body.is_some() {
        // Downloads go out in the order they were asked for, after every
        // short answer: a client that asks for its next part before the
        // current one has arrived gets this one's bytes first, not the two
        // interleaved (which would leave the next part's bytes waiting,
        // unread, in the client's memory), and its other requests are not
        // queued behind megabytes.
        let _ = send.set_priority(download_priority(send.id().index()));
    }
    if let Err(e) = write_frame(&mut send, &frame).await {
        debug!(error = %e, "could not send response");
        return;
    }
    if let Some(body) = body {
        if let Err(e) = stream_body(&mut send, body, sending.as_deref()).await {
            warn!(error = %e, "transfer failed; resetting the stream");
            let _ = send.reset(1u32.into());
            return;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

/// The send priority of a download on the client's stream number `index`
/// (quinn sends higher priorities first; short answers keep 0): below
/// every short answer, and below every download the client asked for
/// earlier on the same connection.
fn download_priority(index: u64) -> i32 {
    i32::try_from(index).map_or(i32::MIN, |i| -1 - i.min(i32::MAX - 1))
}

/// Sends `frame` on a stream whose request is not served, without reading
/// what else the client sends.
async fn answer_unread(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    frame: ServerResponse,
) {
    let _ = recv.stop(0u32.into());
    if write_frame(send, &frame).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    }
}

/// A failed enrollment's reason as counted: the refusal up to its first
/// detail (names in it come from the caller).
fn enroll_reason(message: &str) -> String {
    let head = message
        .split([':', '(', '"'])
        .next()
        .unwrap_or_default()
        .trim();
    head.chars().take(60).collect()
}

/// Transfers (uploads and downloads) under way.
static TRANSFERS: AtomicUsize = AtomicUsize::new(0);
/// Counts the times transfers went idle; a trim goes ahead only if no
/// transfer started since it was scheduled.
static IDLE_SINCE: AtomicUsize = AtomicUsize::new(0);
/// How long transfers must stay idle before the allocator is trimmed.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// One transfer under way. A second after the last one ends, if none
/// started meanwhile, the allocator's free memory goes back to the system
/// ([`matterdrop_common::alloc::trim`]), so what transfers buffered does
/// not stay resident after them; many small transfers in a row trim once.
struct Transfer;

impl Transfer {
    fn start() -> Self {
        TRANSFERS.fetch_add(1, Ordering::AcqRel);
        IDLE_SINCE.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if TRANSFERS.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let idle = IDLE_SINCE.fetch_add(1, Ordering::AcqRel) + 1;
        rt.spawn(async move {
            tokio::time::sleep(TRIM_AFTER).await;
            if TRANSFERS.load(Ordering::Acquire) == 0 && IDLE_SINCE.load(Ordering::Acquire) == idle
            {
                // A walk over the heaps: off the async threads.
                let _ = tokio::task::spawn_blocking(matterdrop_common::alloc::trim).await;
            }
        });
    }
}

/// How long an upload may stall between chunks.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// Feeds the bytes that follow the request frame to `sink` on a blocking
/// thread, through a small bounded queue, and returns its answer.
async fn receive_body(
    recv: &mut quinn::RecvStream,
    mut reader: Reassembler,
    sink: Sink,
) -> ServerResponse {
    let _transfer = Transfer::start();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let consumer = tokio::task::spawn_blocking(move || sink(rx));
    let mut received = 0u64;
    loop {
        let batch = match reader.read_batch(recv, CHUNK, Some(CHUNK_TIMEOUT)).await {
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
async fn stream_body(
    send: &mut quinn::SendStream,
    body: Body,
    window: Option<&tls::SendWindow>,
) -> std::io::Result<()> {
    let _transfer = Transfer::start();
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
        if let Some(w) = window {
            w.follow();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_go_after_short_answers_in_the_order_asked() {
        assert!(download_priority(0) < 0, "below a short answer's 0");
        assert!(download_priority(4) < download_priority(0));
        assert!(download_priority(8) < download_priority(4));
        let last = u64::try_from(i32::MAX).unwrap_or_default();
        assert_eq!(download_priority(last), -i32::MAX);
        assert_eq!(download_priority(last + 1), i32::MIN);
        assert_eq!(download_priority(u64::MAX), i32::MIN);
    }

    #[test]
    fn window_budget_grants_what_is_left_and_takes_it_back() {
        let b = WindowBudget::new(100 << 20);
        let a = b.grant(56 << 20);
        assert_eq!(a.bytes, 56 << 20);
        let c = b.grant(56 << 20);
        assert_eq!(c.bytes, 44 << 20, "what is left");
        let d = b.grant(56 << 20);
        assert_eq!(d.bytes, MIN_WINDOWS, "spent: the floor");
        const { assert!(MIN_WINDOWS > 2 * matterdrop_common::proto::MAX_FRAME as u64) };
        let e = b.grant(1 << 20);
        assert_eq!(e.bytes, 1 << 20, "never more than wanted");
        assert_eq!(b.used(), (100 << 20) + MIN_WINDOWS + (1 << 20));
        drop((a, d, e));
        assert_eq!(b.used(), 44 << 20);
        let f = b.grant(56 << 20);
        assert_eq!(f.bytes, 56 << 20);
        drop((c, f));
        assert_eq!(b.used(), 0);
    }
}
