//! Transport security: mutual TLS 1.3 over QUIC with Ed25519 client keys.
//!
//! Every connection is mutually authenticated. The client presents a
//! self-signed certificate carrying its Ed25519 signing key; the TLS 1.3
//! `CertificateVerify` signature proves possession of that key, and the
//! server maps the key (not the certificate) to a principal. The certificate
//! is only a carrier, so its validity dates and self-signature are not
//! checked.
//!
//! The client pins the server either by the fingerprint of its public key
//! ([`ServerPin::Fingerprint`], like an SSH host key) or by a CA certificate
//! ([`ServerPin::Ca`], ordinary WebPKI path validation).
//!
//! The verifiers that deviate from WebPKI live in [`danger`] and are named
//! for it. 0-RTT is off on both sides: a replayed request could otherwise
//! repeat a state change.
//!
//! The key exchange is post-quantum: both sides prefer the hybrid group
//! `X25519MLKEM768` (ML-KEM-768 with X25519), which rustls offers with its
//! aws-lc-rs provider, so traffic recorded today cannot be decrypted once
//! X25519 falls. A client also offers plain X25519 for a server without the
//! hybrid group (the TLS 1.3 transcript signature, checked against the
//! pinned server key, stops an active attacker from forcing that); a server
//! started with `--require-pq-transport` ([`KeyExchange::HybridOnly`])
//! refuses a client that cannot do the hybrid group.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _};
use ed25519_dalek::{SigningKey, VerifyingKey};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ParsedCertificate;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::congestion::{PathMemory, ResumeSlot};
use crate::keys::spki_fingerprint;
use crate::proto::ALPN;

/// Concurrent bidirectional streams (requests) a peer may open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 16;
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients ping this often so a slow local step does not idle them out.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Per-stream receive window: at least the bandwidth-delay product of the
/// longest, fastest path served (250 ms at 400 Mbit/s is 12.5 MB) with the
/// congestion controller's headroom and probing (× 1.44).
pub const STREAM_WINDOW: u32 = 24 << 20;
/// Per-connection receive window.
pub const CONNECTION_WINDOW: u32 = 32 << 20;
/// Unacknowledged data a sender buffers: enough for the window on the
/// longest, fastest path (above), and no more, since it is held in memory.
pub const SEND_WINDOW: u64 = 24 << 20;
/// Connection attempts the server holds before accepting or refusing them
/// (quinn silently drops Initials beyond): the server's handshakes under
/// way and its queue waiting for a handshake place (`server::MAX_HANDSHAKES`
/// plus `server::MAX_QUEUED`).
pub const MAX_INCOMING: usize = 2304;
/// UDP socket receive and send buffers asked for (the kernel caps them at
/// `net.core.rmem_max` and `wmem_max`). The Linux default of 208 KiB holds
/// well under a millisecond of a fast transfer: a receiver descheduled for
/// longer drops packets, and every drop halves the sender's congestion
/// window.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Errors building a TLS configuration or reading a peer's identity.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The configuration lacks a QUIC-capable cipher suite.
    #[error("quic crypto configuration: {0}")]
    Quic(String),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The key could not be encoded.
    #[error("key encoding: {0}")]
    Key(String),
    /// The peer's certificate carries no usable Ed25519 key.
    #[error("peer certificate does not carry a valid Ed25519 key")]
    NotEd25519,
    /// A CA file held no usable certificate.
    #[error("CA file: {0}")]
    Ca(String),
}

/// Which TLS key-exchange groups a side offers (client) or accepts
/// (server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyExchange {
    /// `X25519MLKEM768` preferred, `X25519` for a peer without it.
    #[default]
    Hybrid,
    /// `X25519MLKEM768` only: a classical-only peer cannot connect.
    HybridOnly,
}

/// The key-exchange groups of [`KeyExchange`], counted when a server
/// completes one (see [`server_key_exchanges`]).
static HYBRID: Observed = Observed {
    inner: rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768,
    completed: std::sync::atomic::AtomicU64::new(0),
};
static CLASSIC: Observed = Observed {
    inner: rustls::crypto::aws_lc_rs::kx_group::X25519,
    completed: std::sync::atomic::AtomicU64::new(0),
};

/// A key-exchange group that counts the handshakes a server completed with
/// it, so that tests (and operators, in the log) can see what was
/// negotiated: quinn does not expose it.
#[derive(Debug)]
struct Observed {
    inner: &'static dyn rustls::crypto::SupportedKxGroup,
    completed: std::sync::atomic::AtomicU64,
}

impl rustls::crypto::SupportedKxGroup for Observed {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        self.inner.start()
    }

    fn start_and_complete(
        &self,
        peer_pub_key: &[u8],
    ) -> Result<rustls::crypto::CompletedKeyExchange, rustls::Error> {
        let done = self.inner.start_and_complete(peer_pub_key)?;
        self.completed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(done)
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.inner.ffdhe_group()
    }

    fn name(&self) -> rustls::NamedGroup {
        self.inner.name()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }

    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.inner.usable_for_version(version)
    }
}

/// How many handshakes this process, as a server, completed with each
/// group: `(X25519MLKEM768, X25519)`.
pub fn server_key_exchanges() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        HYBRID.completed.load(Relaxed),
        CLASSIC.completed.load(Relaxed),
    )
}

/// The crypto provider: rustls with aws-lc-rs (the provider that has the
/// hybrid post-quantum group), key exchange limited to `kx`.
pub fn crypto_provider_with(kx: KeyExchange) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.kx_groups = match kx {
        KeyExchange::Hybrid => vec![&HYBRID, &CLASSIC],
        KeyExchange::HybridOnly => vec![&HYBRID],
    };
    Arc::new(p)
}

/// The crypto provider with the default key exchange
/// ([`KeyExchange::Hybrid`]).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    crypto_provider_with(KeyExchange::Hybrid)
}

/// Installs [`crypto_provider`] as the process default. Call once at
/// start-up; a second call is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = Arc::unwrap_or_clone(crypto_provider()).install_default();
}

/// Transport limits shared by both ends, set explicitly rather than
/// inherited from library defaults.
pub fn transport_config() -> TransportConfig {
    transport_config_with(None)
}

/// [`transport_config`] whose congestion controller resumes from what
/// `resume` is given ([`crate::congestion`]).
pub fn transport_config_with(resume: Option<ResumeSlot>) -> TransportConfig {
    let mut rate = crate::congestion::RateConfig::default();
    if let Some(slot) = resume {
        rate = rate.resume(slot);
    }
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_STREAMS));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    // 30 s always fits in a QUIC varint of milliseconds.
    t.max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(SEND_WINDOW);
    t.congestion_controller_factory(Arc::new(rate));
    t
}

/// The server's transport: [`transport_config_with`], and a small receive
/// window until the server knows the client (see [`server_config`]).
pub fn server_transport(resume: Option<ResumeSlot>) -> TransportConfig {
    let mut t = transport_config_with(resume);
    t.receive_window(VarInt::from_u32(SERVER_INITIAL_WINDOW));
    t
}

/// `base` for one incoming connection whose controller resumes from what
/// `slot` is given once the client is known.
pub fn server_config_resuming(base: &quinn::ServerConfig, slot: ResumeSlot) -> quinn::ServerConfig {
    let mut cfg = base.clone();
    cfg.transport_config(Arc::new(server_transport(Some(slot))));
    cfg
}

/// A client configuration whose controller resumes from what `slot` is
/// given (after the handshake, before the data).
pub fn client_config_resuming(cfg: &mut quinn::ClientConfig, slot: ResumeSlot) {
    cfg.transport_config(Arc::new(transport_config_with(Some(slot))));
}

/// What `conn`'s congestion controller measured of its path, if it ever
/// sent enough to fill it.
pub fn path_memory(conn: &quinn::Connection) -> Option<PathMemory> {
    conn.congestion_state()
        .into_any()
        .downcast::<crate::congestion::Rate>()
        .ok()
        .and_then(|r| r.memory())
}

/// The server's connection receive window until it knows the client.
pub const SERVER_INITIAL_WINDOW: u32 = 2 << 20;

/// Paths shorter than this get the small windows of [`fit_windows`].
pub const SHORT_PATH: Duration = Duration::from_millis(20);
/// Connection receive and send windows on a short path (a LAN, loopback):
/// the bandwidth-delay product is small there, and a large window only
/// lets data wait in memory while the disk or the decryption catches up.
pub const SHORT_PATH_WINDOW: u32 = 8 << 20;

/// Sizes a new connection's windows to its path, from the RTT its
/// handshake measured: the large windows of [`transport_config`] serve
/// long, fast paths; a short path gets [`SHORT_PATH_WINDOW`] (what the
/// windows were before they were sized for long paths, and what keeps a
/// loopback transfer's memory flat). Returns the connection's receive and
/// send windows.
pub fn fit_windows(conn: &quinn::Connection) -> (u64, u64) {
    if conn.rtt() < SHORT_PATH {
        conn.set_receive_window(VarInt::from_u32(SHORT_PATH_WINDOW));
        conn.set_send_window(u64::from(SHORT_PATH_WINDOW));
        (u64::from(SHORT_PATH_WINDOW), u64::from(SHORT_PATH_WINDOW))
    } else {
        conn.set_receive_window(VarInt::from_u32(CONNECTION_WINDOW));
        conn.set_send_window(SEND_WINDOW);
        (u64::from(CONNECTION_WINDOW), SEND_WINDOW)
    }
}

/// The least a [`SendWindow`] lets a connection buffer: room for a few
/// transfer chunks, and for the start-up's first rounds on any path.
pub const SEND_WINDOW_FLOOR: u64 = 4 << 20;

/// Congestion windows a [`SendWindow`] holds: quinn counts a stream's
/// data from its oldest unacknowledged byte, so after a loss the window
/// covers the hole until its retransmission is acknowledged (two round
/// trips or more) as well as what is in flight: twice the congestion
/// window halved the goodput on the lossy profiles, four does not.
pub const SEND_WINDOW_CWNDS: u64 = 4;

/// A connection's send window, kept near a few congestion windows.
///
/// A sender buffers what it has written until the peer acknowledges it,
/// up to its send window; a window sized for the longest, fastest path
/// served (24 MiB) holds that much of every transfer in memory even on a
/// path whose bandwidth-delay product is 1.5 MB. While a transfer writes,
/// [`SendWindow::follow`] sets the window to [`SEND_WINDOW_CWNDS`]
/// congestion windows (what is in flight, the holes losses left behind
/// it, and as much queued to go next), within
/// [`SEND_WINDOW_FLOOR`] and the connection's `cap`: the window grows with
/// the measured bandwidth-delay product during start-up (it is revised
/// twice per round trip, faster than the congestion window doubles) and
/// shrinks with it after a loss. Shared by the streams of one connection.
#[derive(Debug)]
pub struct SendWindow {
    conn: quinn::Connection,
    cap: u64,
    /// When the window was last revised, and to what.
    last: Mutex<(std::time::Instant, u64)>,
}

impl SendWindow {
    /// Starts `conn`'s send window at [`SEND_WINDOW_FLOOR`] (or `cap`, if
    /// smaller); it never grows past `cap`.
    pub fn new(conn: &quinn::Connection, cap: u64) -> Arc<Self> {
        let start = SEND_WINDOW_FLOOR.min(cap);
        conn.set_send_window(start);
        Arc::new(Self {
            conn: conn.clone(),
            cap,
            last: Mutex::new((std::time::Instant::now(), start)),
        })
    }

    /// The window now.
    pub fn current(&self) -> u64 {
        self.last.lock().map_or(self.cap, |l| l.1)
    }

    /// Revises the window if half a round trip has passed since the last
    /// revision. Cheap enough to call for every chunk written.
    pub fn follow(&self) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let every = (self.conn.rtt() / 2).max(Duration::from_millis(5));
        if last.0.elapsed() < every {
            return;
        }
        let want = self
            .conn
            .stats()
            .path
            .cwnd
            .saturating_mul(SEND_WINDOW_CWNDS)
            .clamp(SEND_WINDOW_FLOOR.min(self.cap), self.cap);
        if want != last.1 {
            self.conn.set_send_window(want);
        }
        *last = (std::time::Instant::now(), want);
    }
}

/// A QUIC endpoint on a UDP socket bound to `bind`, with
/// [`SOCKET_BUFFER`]-sized socket buffers: a server when `server` is
/// given, else a client. Call from within a Tokio runtime. Also returns
/// the receive buffer the kernel granted (Linux reports twice the usable
/// size), so a server can say when `net.core.rmem_max` cut it short.
pub fn endpoint(
    bind: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<(quinn::Endpoint, usize)> {
    endpoint_with(bind, server, quinn::EndpointConfig::default())
}

/// A server endpoint whose QUIC stateless-reset key and connection-id
/// key are derived from `secret` (the server's TLS key): after a restart
/// the server still recognizes the connection ids of its previous run and
/// proves that those connections are gone, so clients learn it at their
/// next packet and reconnect at once instead of waiting out the idle
/// timeout. The keys never leave the process.
pub fn server_endpoint(
    bind: std::net::SocketAddr,
    server: quinn::ServerConfig,
    secret: &[u8],
) -> std::io::Result<(quinn::Endpoint, usize)> {
    let mut config = quinn::EndpointConfig::new(Arc::new(ResetKey::derive(secret)));
    let cid_key = derive(secret, b"matterdrop/quic-connection-id/v1");
    let cid_key = u64::from_le_bytes(cid_key[..8].try_into().unwrap_or_default());
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    endpoint_with(bind, Some(server), config)
}

/// HMAC-SHA256 of `label` under `secret`.
fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), label);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// HMAC-SHA256 for QUIC stateless-reset tokens (on aws-lc, whichever
/// backend quinn was built with).
struct ResetKey(aws_lc_rs::hmac::Key);

impl ResetKey {
    fn derive(secret: &[u8]) -> Self {
        let key = derive(secret, b"matterdrop/quic-stateless-reset/v1");
        Self(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &key,
        ))
    }
}

impl quinn::crypto::HmacKey for ResetKey {
    fn sign(&self, data: &[u8], out: &mut [u8]) {
        out.copy_from_slice(aws_lc_rs::hmac::sign(&self.0, data).as_ref());
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        aws_lc_rs::hmac::verify(&self.0, data, signature).map_err(|_| quinn::crypto::CryptoError)
    }
}

fn endpoint_with(
    bind: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
    config: quinn::EndpointConfig,
) -> std::io::Result<(quinn::Endpoint, usize)> {
    let socket = std::net::UdpSocket::bind(bind)?;
    // Best effort: a smaller buffer costs speed, not correctness.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&socket, SOCKET_BUFFER);
    let granted = rustix::net::sockopt::socket_recv_buffer_size(&socket).unwrap_or(0);
    // Tokio's, with timers precise enough for quinn's pacer (see
    // `crate::timer`).
    let runtime = crate::timer::PreciseRuntime::new()
        .ok_or_else(|| std::io::Error::other("no async runtime for the QUIC endpoint"))?;
    let endpoint = quinn::Endpoint::new(config, server, socket, runtime)?;
    Ok((endpoint, granted))
}

/// Reads the Ed25519 key out of a certificate.
pub fn ed25519_key_of_cert(cert: &CertificateDer<'_>) -> Result<VerifyingKey, TlsError> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|_| TlsError::NotEd25519)?;
    let key = VerifyingKey::from_public_key_der(parsed.subject_public_key_info().as_ref())
        .map_err(|_| TlsError::NotEd25519)?;
    if key.is_weak() {
        return Err(TlsError::NotEd25519);
    }
    Ok(key)
}

/// Fingerprint of the public key in a certificate.
pub fn cert_fingerprint(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let parsed = ParsedCertificate::try_from(cert)
        .map_err(|e| TlsError::Ca(format!("unparseable certificate: {e}")))?;
    Ok(spki_fingerprint(parsed.subject_public_key_info().as_ref()))
}

/// The authenticated Ed25519 key of a connection's peer (server side).
pub fn peer_ed25519_key(conn: &quinn::Connection) -> Result<VerifyingKey, TlsError> {
    let identity = conn.peer_identity().ok_or(TlsError::NotEd25519)?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::NotEd25519)?;
    let first = certs.first().ok_or(TlsError::NotEd25519)?;
    ed25519_key_of_cert(first)
}

/// The server's TLS material, as made by [`generate_server_pki`].
pub struct ServerPki {
    /// PEM of the CA that signed the server certificate (a client may pin it).
    pub ca_pem: String,
    /// DER of the server certificate.
    pub cert_der: CertificateDer<'static>,
    /// PKCS#8 DER of the server key.
    pub key_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPki").finish_non_exhaustive()
    }
}

/// Makes a fresh CA and a server certificate for `hostnames` (DNS names or
/// IP addresses) signed by it. The CA key is discarded: the CA exists only
/// so clients may pin a CA file instead of a fingerprint.
pub fn generate_server_pki(hostnames: &[String]) -> Result<ServerPki, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Matterdrop server CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(hostnames.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Matterdrop server");
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServerPki {
        ca_pem: ca_cert.pem(),
        cert_der: cert.der().clone(),
        key_der: Zeroizing::new(key.serialize_der()),
    })
}

/// The QUIC server configuration: TLS 1.3 only, client certificates
/// mandatory and Ed25519-only, 0-RTT off, explicit limits, no migration,
/// key exchange per `kx`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: &[u8],
    kx: KeyExchange,
) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with(crypto_provider_with(kx), chain, key_pkcs8)
}

/// [`server_config`] with any crypto provider (benchmarks compare them).
pub fn server_config_with(
    provider: Arc<CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: &[u8],
) -> Result<quinn::ServerConfig, TlsError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(danger::AnyEd25519ClientKey::new(&provider)))
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    tls.send_half_rtt_data = false;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // A connection starts with a small receive window: the server grows
    // it (`fit_windows`, then its window budget) once it knows the key is
    // enrolled, so a connection that is not gives no credit worth having.
    cfg.transport_config(Arc::new(server_transport(None)));
    cfg.migration(false);
    cfg.max_incoming(MAX_INCOMING);
    Ok(cfg)
}

/// How the client recognises the real server.
#[derive(Debug, Clone)]
pub enum ServerPin {
    /// `SHA256:…` fingerprint of the server's public key, printed by `mdropd init`.
    Fingerprint(String),
    /// A CA certificate (PEM) that signed the server's certificate.
    Ca(String),
}

/// What the client saw of the server's key, for error messages.
pub type ObservedFingerprint = Arc<Mutex<Option<String>>>;

/// The QUIC client configuration: presents `signing_key` in a self-signed
/// certificate, checks the server against `pin`, TLS 1.3 only, no 0-RTT.
pub fn client_config(
    signing_key: &SigningKey,
    pin: &ServerPin,
) -> Result<(quinn::ClientConfig, ObservedFingerprint), TlsError> {
    client_config_with(crypto_provider(), signing_key, pin)
}

/// [`client_config`] with any crypto provider (benchmarks compare them;
/// tests make classical-only clients).
pub fn client_config_with(
    provider: Arc<CryptoProvider>,
    signing_key: &SigningKey,
    pin: &ServerPin,
) -> Result<(quinn::ClientConfig, ObservedFingerprint), TlsError> {
    let pkcs8 = signing_key
        .to_pkcs8_der()
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let key_der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let cert = {
        let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ED25519)?;
        rcgen::CertificateParams::new(Vec::<String>::new())?.self_signed(&kp)?
    };
    let observed: ObservedFingerprint = Arc::default();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match pin {
        ServerPin::Fingerprint(fp) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(danger::PinnedServerKey {
                    fingerprint: fp.clone(),
                    observed: observed.clone(),
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
        ServerPin::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<CertificateDer<'static>>, _>>()
                .map_err(|e| TlsError::Ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsError::Ca("no certificate found".into()));
            }
            for c in certs {
                roots.add(c)?;
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Ca(e.to_string()))?;
            builder.with_webpki_verifier(verifier)
        }
    };
    let mut tls =
        builder.with_client_auth_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key_der))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config()));
    Ok((cfg, observed))
}

/// Verifiers that deliberately depart from WebPKI. Each one's documentation
/// says what it checks instead.
pub mod danger {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

    /// Server side: accepts any client certificate that is a single
    /// certificate carrying a valid Ed25519 key. Identity is the key, proven
    /// by the handshake signature; whether the key belongs to anyone is the
    /// server's next question, not TLS's.
    #[derive(Debug)]
    pub struct AnyEd25519ClientKey {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl AnyEd25519ClientKey {
        /// Uses `provider`'s signature algorithms for the handshake signature.
        pub fn new(provider: &CryptoProvider) -> Self {
            Self {
                algorithms: provider.signature_verification_algorithms,
            }
        }
    }

    impl ClientCertVerifier for AnyEd25519ClientKey {
        fn offer_client_auth(&self) -> bool {
            true
        }

        fn client_auth_mandatory(&self) -> bool {
            true
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }

        fn verify_client_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            if !intermediates.is_empty() {
                return Err(rustls::Error::General(
                    "client must present exactly one certificate".into(),
                ));
            }
            ed25519_key_of_cert(end_entity).map_err(|_| {
                rustls::Error::General("client certificate must carry an Ed25519 key".into())
            })?;
            Ok(ClientCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }
    }

    /// Client side: accepts the server only if its certificate's public key
    /// has the pinned fingerprint (names and dates are not checked, as with
    /// an SSH host key). The fingerprint seen is recorded for the error
    /// message.
    #[derive(Debug)]
    pub struct PinnedServerKey {
        pub(super) fingerprint: String,
        pub(super) observed: ObservedFingerprint,
        pub(super) algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for PinnedServerKey {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let seen = cert_fingerprint(end_entity)
                .map_err(|_| rustls::Error::General("unparseable server certificate".into()))?;
            let matches = seen == self.fingerprint;
            if let Ok(mut slot) = self.observed.lock() {
                *slot = Some(seen);
            }
            if matches {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(
                    "server key does not match the pinned fingerprint".into(),
                ))
            }
        }

        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected client and server over loopback, with the project's
    /// transport on both ends.
    async fn pair() -> (quinn::Endpoint, quinn::Connection, quinn::Connection) {
        install_crypto_provider();
        let pki = generate_server_pki(&["localhost".to_owned()]).unwrap();
        let fp = cert_fingerprint(&pki.cert_der).unwrap();
        let server_cfg = server_config(
            vec![pki.cert_der.clone()],
            &pki.key_der,
            KeyExchange::Hybrid,
        )
        .unwrap();
        let (server, _) = endpoint("127.0.0.1:0".parse().unwrap(), Some(server_cfg)).unwrap();
        let (client, _) = endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let (cfg, _) = client_config(&key, &ServerPin::Fingerprint(fp)).unwrap();
        let addr = server.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let c = server.accept().await.unwrap().await.unwrap();
            (server, c)
        });
        let c = client
            .connect_with(cfg, addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (server, s) = accept.await.unwrap();
        drop(client);
        (server, c, s)
    }

    #[tokio::test]
    async fn send_window_follows_the_congestion_window_within_floor_and_cap() {
        let (_server, client, conn) = pair().await;
        // Starts at the floor, or at the cap when that is lower.
        let w = SendWindow::new(&conn, 24 << 20);
        assert_eq!(w.current(), SEND_WINDOW_FLOOR);
        assert_eq!(SendWindow::new(&conn, 1 << 20).current(), 1 << 20);
        // Revised at most every half round trip (a few ms here).
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.follow();
        let cwnd = conn.stats().path.cwnd;
        let want = (cwnd * SEND_WINDOW_CWNDS).clamp(SEND_WINDOW_FLOOR, 24 << 20);
        assert_eq!(w.current(), want, "cwnd {cwnd}");
        // Never past the cap.
        let small = SendWindow::new(&conn, 5 << 20);
        tokio::time::sleep(Duration::from_millis(10)).await;
        small.follow();
        assert!(small.current() <= 5 << 20 && small.current() >= SEND_WINDOW_FLOOR);
        // Data still flows through a window revised down to the floor.
        let (mut send, _) = conn.open_bi().await.unwrap();
        let recv = async {
            let (_, mut r) = client.accept_bi().await.unwrap();
            r.read_to_end(64 << 20).await.unwrap().len()
        };
        let sent = async {
            let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
            for _ in 0..16 {
                small.follow();
                send.write_chunk(chunk.clone()).await.unwrap();
            }
            send.finish().unwrap();
        };
        let (n, ()) = tokio::join!(recv, sent);
        assert_eq!(n, 16 << 20);
    }
}
