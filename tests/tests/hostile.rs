//! Hostile input, end to end with the real binaries: wrong ALPN, a TLS
//! client without a (usable) certificate, floods of garbage streams, another
//! matter's blobs, a 1 TiB upload, path-traversal names on both sides,
//! truncated age files, replayed invites, requests after key revocation,
//! and a full disk (`--quota`). Each gets a clear error and changes
//! nothing; the server stays up. Three of these first found real bugs
//! (blob adoption by hash, encryption to revoked keys, concurrent quota
//! overshoot); they now guard the fixes.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::{Signer as _, SigningKey};
use matterdrop_common::packet::{self, BlobRef, Descriptor, Kind, Manifest, ManifestFile};
use matterdrop_common::proto::{
    self, BlobGetRequest, BlobUpload, ClientRequest, EnrollRequest, ErrorCode, PacketCommitRequest,
    PacketRef, PushPrepareRequest, ServerResponse,
};
use matterdrop_common::tls;
use matterdrop_tests::{
    RawClient, User, World, age_v13, bin, error_code, pull_refused_as_tampered, walk,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};

const MATTER: &str = "2026-PI-0042";
const OTHER_MATTER: &str = "2026-PI-0099";
const TASK: &str = "document-review";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The server process is running and still answers a normal client.
#[track_caller]
fn assert_alive(w: &mut World) {
    assert!(
        w.server.is_running(),
        "mdropd exited; log:\n{}",
        w.server.log()
    );
    assert_eq!(w.admin.json(&["whoami"])["id"], "admin@operator");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn signing_key(user: &User) -> SigningKey {
    let pem = std::fs::read_to_string(user.home.join("signing-key.pem")).expect("key file");
    SigningKey::from_pkcs8_pem(&pem).expect("unencrypted PKCS#8 key")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Sends `bytes` on a new stream of `conn` (tolerating the server stopping
/// the upload early) and reads the whole answer: the response frame and any
/// bytes after it.
async fn exchange_all(conn: &quinn::Connection, bytes: &[u8]) -> (ServerResponse, Vec<u8>) {
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    // A refused request is not read further: the write may fail then.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let all = tokio::time::timeout(Duration::from_secs(60), recv.read_to_end(usize::MAX))
        .await
        .expect("an answer within 60 s")
        .expect("read answer");
    let header: [u8; proto::HEADER_LEN] = all
        .get(..proto::HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| panic!("answer shorter than a frame header: {all:?}"));
    let end = proto::HEADER_LEN + proto::decode_header(header).expect("answer header");
    let resp = proto::decode_frame(&all[..end]).expect("decode answer");
    (resp, all[end..].to_vec())
}

/// An upload request for a blob of `packet` in `MATTER`, task `TASK`.
fn blob_upload(packet: &str, sha256: [u8; 32], size: u64, offset: u64) -> BlobUpload {
    BlobUpload {
        matter: MATTER.into(),
        packet: packet.into(),
        task: TASK.into(),
        sha256,
        size,
        offset,
        deliverable_for: None,
    }
}

fn frame(req: &ClientRequest) -> Vec<u8> {
    proto::encode(req).expect("encode")
}

/// An error answer with `code` and nothing after it; returns its message.
#[track_caller]
fn refused(answer: &(ServerResponse, Vec<u8>), code: ErrorCode) -> String {
    let (resp, rest) = answer;
    assert_eq!(error_code(resp), code, "{resp:?}");
    assert!(rest.is_empty(), "{} bytes followed a refusal", rest.len());
    match resp {
        ServerResponse::Error(e) => e.message.clone(),
        _ => unreachable!(),
    }
}

/// Encrypts `plain` to `recipients` with an age v1.3 implementation this
/// project did not write ([`age_v13`]).
fn age_encrypt(dir: &Path, plain: &[u8], recipients: &[String]) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let src = dir.join(format!("craft-{n}.plain"));
    let dst = dir.join(format!("craft-{n}.age"));
    std::fs::write(&src, plain).expect("write plaintext");
    let mut cmd = age_v13();
    for r in recipients {
        cmd.arg("-r").arg(r);
    }
    let status = cmd
        .arg("-o")
        .arg(&dst)
        .arg(&src)
        .status()
        .expect("node (tests/run installs it)");
    assert!(status.success(), "age failed");
    let out = std::fs::read(&dst).expect("read ciphertext");
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    out
}

/// A file of a crafted packet: its name in the manifest, its plaintext, and
/// what the sender does to its ciphertext before uploading it.
struct CraftFile {
    path: String,
    plain: Vec<u8>,
    edit: Edit,
    /// How many age files (parts) the plaintext is cut into.
    parts: usize,
}

/// What a hostile sender does to a ciphertext.
type Edit = fn(Vec<u8>) -> Vec<u8>;

impl CraftFile {
    fn new(path: &str, plain: Vec<u8>) -> Self {
        Self {
            path: path.to_owned(),
            plain,
            edit: |c| c,
            parts: 1,
        }
    }
}

/// Pushes a packet the way a hostile sender could, bypassing every check
/// `mdrop push` makes: the manifest is written unvalidated, files may be
/// corrupted after encryption. The descriptor is validly signed by `c`'s
/// key (the sender's), so only the pulling client can catch the problem.
async fn craft_packet(c: &RawClient, tmp: &Path, sender: &str, files: &[CraftFile]) -> String {
    let resp = c
        .request(&ClientRequest::PushPrepare(PushPrepareRequest {
            matter: MATTER.into(),
            task: TASK.into(),
        }))
        .await;
    let ServerResponse::Recipients(info) = resp else {
        panic!("push-prepare: {resp:?}");
    };
    let ages: Vec<String> = info.recipients.iter().map(|r| r.age.clone()).collect();
    let mut recipients: Vec<packet::Recipient> = info
        .recipients
        .iter()
        .map(|r| packet::Recipient {
            principal: r.principal.clone(),
            age: r.age.clone(),
        })
        .collect();
    recipients.sort_by(|a, b| a.principal.cmp(&b.principal));

    let mut blobs = Vec::new();
    let mut entries = Vec::new();
    for f in files {
        let step = f.plain.len().div_ceil(f.parts).max(1);
        let mut hashes = Vec::new();
        for i in 0..f.parts {
            let chunk = f.plain.get(i * step..((i + 1) * step).min(f.plain.len()));
            let cipher = (f.edit)(age_encrypt(tmp, chunk.unwrap_or_default(), &ages));
            hashes.push(sha(&cipher));
            blobs.push(cipher);
        }
        entries.push(ManifestFile {
            path: f.path.clone(),
            size: f.plain.len() as u64,
            sha256: sha(&f.plain),
            blobs: hashes,
        });
    }
    // serde_json directly: `Manifest::to_bytes` would validate the names.
    let manifest = Manifest {
        version: packet::MANIFEST_VERSION,
        note: "crafted".into(),
        files: entries,
    };
    let manifest_cipher = age_encrypt(
        tmp,
        &serde_json::to_vec(&manifest).expect("manifest json"),
        &ages,
    );

    let id = packet::new_id("p");
    for cipher in std::iter::once(&manifest_cipher).chain(&blobs) {
        let put = frame(&ClientRequest::BlobPut(blob_upload(
            &id,
            sha(cipher),
            cipher.len() as u64,
            0,
        )));
        let (resp, _) = exchange_all(&c.conn, &[put, cipher.clone()].concat()).await;
        assert!(matches!(resp, ServerResponse::BlobStored(_)), "{resp:?}");
    }
    let d = Descriptor {
        kind: Kind::Packet,
        matter: MATTER.into(),
        id: id.clone(),
        packet: None,
        task: TASK.into(),
        due: None,
        sender: sender.into(),
        created_at: now(),
        recipients,
        recovery: info.recovery.clone(),
        manifest: BlobRef {
            sha256: sha(&manifest_cipher),
            size: manifest_cipher.len() as u64,
        },
        blobs: blobs
            .iter()
            .map(|b| BlobRef {
                sha256: sha(b),
                size: b.len() as u64,
            })
            .collect(),
    };
    let resp = c
        .request(&ClientRequest::PacketCommit(PacketCommitRequest {
            descriptor: d.to_signed_bytes().expect("descriptor"),
            signature: d.sign(&c.key).expect("sign").to_vec(),
        }))
        .await;
    assert!(
        matches!(resp, ServerResponse::PacketCommitted(_)),
        "{resp:?}"
    );
    id
}

/// The signed descriptor of packet `id`, as `c` may fetch it.
async fn descriptor(c: &RawClient, id: &str) -> Descriptor {
    let resp = c
        .request(&ClientRequest::PacketGet(PacketRef { id: id.into() }))
        .await;
    let ServerResponse::Packet(info) = resp else {
        panic!("packet-get {id}: {resp:?}");
    };
    Descriptor::parse(&info.descriptor).expect("descriptor")
}

/// A firm (alice, attorney) and a provider (bob, acknowledged) on MATTER.
struct Team {
    w: World,
    alice: User,
    bob: User,
}

fn team() -> Team {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let ack = w.tmp.path().join("ack.txt");
    std::fs::write(&ack, "Confidential.\n").unwrap();
    for m in [MATTER, OTHER_MATTER] {
        alice.json(&[
            "matter",
            "create",
            m,
            "--title",
            "Doe",
            "--ack-file",
            ack.to_str().unwrap(),
            "--scope",
            "document-review,medical-chronology",
        ]);
    }
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);
    Team { w, alice, bob }
}

fn push(user: &User, matter: &str, file: &Path) -> String {
    user.json(&["push", matter, file.to_str().unwrap(), "--task", TASK])["id"]
        .as_str()
        .expect("packet id")
        .to_owned()
}

fn blob_path(data: &Path, sha256: &[u8; 32]) -> PathBuf {
    let h: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    data.join("blobs").join(&h[..2]).join(&h)
}

// ---------------------------------------------------------------------------
// TLS: wrong ALPN, no client certificate, a certificate without Ed25519
// ---------------------------------------------------------------------------

/// Accepts any server certificate (this test attacks the server, it does
/// not need to authenticate it); handshake signatures are still checked.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![tag];
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A minimal self-signed X.509 v3 certificate carrying `key` (what
/// `tls::client_config` makes with rcgen, which this crate does not use).
fn ed25519_cert(key: &SigningKey) -> CertificateDer<'static> {
    let alg = der(0x30, &der(0x06, &[0x2b, 0x65, 0x70])); // id-Ed25519
    let cn = [der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, b"hostile test")].concat();
    let name = der(0x30, &der(0x31, &der(0x30, &cn)));
    let validity = der(
        0x30,
        &[der(0x17, b"250101000000Z"), der(0x18, b"99991231235959Z")].concat(),
    );
    let spki = matterdrop_common::keys::ed25519_spki(&key.verifying_key());
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])), // v3
            der(0x02, &[1]),             // serial
            alg.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]
        .concat(),
    );
    let mut bits = vec![0];
    bits.extend(key.sign(&tbs).to_bytes());
    CertificateDer::from(der(0x30, &[tbs, alg, der(0x03, &bits)].concat()))
}

/// Presents one fixed certificate and key, as given: unlike
/// `with_client_auth_cert`, no local check that they belong together, so a
/// test can send the server a mismatched pair.
#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client configuration made by hand: `client` certificate and PKCS#8
/// key (or none), `alpn` offered; otherwise like `tls::client_config`.
fn hand_made_config(
    client: Option<(CertificateDer<'static>, Vec<u8>)>,
    alpn: &[&[u8]],
) -> quinn::ClientConfig {
    let provider = tls::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider.clone())));
    let mut cfg = match client {
        Some((cert, pkcs8)) => {
            let key = provider
                .key_provider
                .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
                .expect("private key");
            let certified = rustls::sign::CertifiedKey::new(vec![cert], key);
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(Arc::new(certified))))
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg.enable_early_data = false;
    let crypto = QuicClientConfig::try_from(cfg).expect("quic config");
    let mut q = quinn::ClientConfig::new(Arc::new(crypto));
    q.transport_config(Arc::new(tls::transport_config()));
    q
}

fn pkcs8(key: &SigningKey) -> Vec<u8> {
    key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec()
}

/// Connects with `cfg` and asks whoami. `Err` says where it failed and
/// why the connection was closed.
async fn try_whoami(addr: &str, cfg: quinn::ClientConfig) -> Result<ServerResponse, String> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let mut conn = None;
    let attempt = async {
        let c = endpoint
            .connect_with(cfg, addr.parse().expect("server addr"), "localhost")
            .map_err(|e| format!("connect: {e}"))?
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        conn = Some(c.clone());
        let (mut send, mut recv) = c.open_bi().await.map_err(|e| format!("open: {e}"))?;
        send.write_all(&frame(&ClientRequest::WhoAmI))
            .await
            .map_err(|e| format!("write: {e}"))?;
        let _ = send.finish();
        let buf = recv
            .read_to_end(proto::MAX_FRAME + proto::HEADER_LEN)
            .await
            .map_err(|e| format!("read: {e}"))?;
        proto::decode_frame(&buf).map_err(|e| format!("decode: {e}"))
    };
    let result = tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 20 s".into()));
    let result = match (result, conn) {
        (Err(e), Some(c)) => {
            // Stream errors do not carry the reason; the connection does.
            let why = tokio::time::timeout(Duration::from_secs(5), c.closed())
                .await
                .map_or_else(|_| "still open".to_owned(), |r| r.to_string());
            Err(format!("{e} (closed: {why})"))
        }
        (r, _) => r,
    };
    endpoint.close(0u32.into(), b"");
    result
}

#[test]
fn wrong_alpn_and_missing_or_unusable_client_certificates_are_refused() {
    let mut w = World::new();
    tls::install_crypto_provider();
    let admin_key = signing_key(&w.admin);
    let admin_cert = || Some((ed25519_cert(&admin_key), pkcs8(&admin_key)));
    let rt = runtime();
    let addr = w.server.addr.clone();
    let attempt =
        |client, alpn: &[&[u8]]| rt.block_on(try_whoami(&addr, hand_made_config(client, alpn)));

    // Control: the hand-made configuration with the right ALPN and the
    // admin's key is served, so every refusal below is for its one change.
    match attempt(admin_cert(), &[proto::ALPN]) {
        Ok(ServerResponse::WhoAmI(me)) => assert_eq!(me.id, "admin@operator"),
        other => panic!("control connection failed: {other:?}"),
    }

    // Wrong ALPN, a list without ours, no ALPN: QUIC's strict ALPN fails
    // the handshake with no_application_protocol (TLS alert 120).
    for alpn in [&[&b"matterdrop/2"[..]][..], &[b"h3", b"matterdrop/0"], &[]] {
        let err = attempt(admin_cert(), alpn).expect_err("a wrong ALPN must not be served");
        assert!(err.starts_with("handshake"), "{alpn:?}: {err}");
        assert!(err.contains("error 120"), "{alpn:?}: {err}");
    }

    // No client certificate: certificate_required (TLS alert 116). The
    // client's half of the handshake completes first, so this shows on the
    // first stream.
    let err = attempt(None, &[proto::ALPN]).expect_err("no certificate must not be served");
    assert!(err.contains("error 116"), "{err}");

    // A certificate whose key is not Ed25519 (P-256): the server asks only
    // for Ed25519 signatures, so the client has nothing it may send, and
    // the server refuses as above.
    let pki = tls::generate_server_pki(&["client.invalid".into()]).expect("pki");
    let p256 = Some((pki.cert_der.clone(), pki.key_der.to_vec()));
    let err = attempt(p256, &[proto::ALPN]).expect_err("a P-256 client key must be refused");
    assert!(err.contains("error 116"), "{err}");

    // The admin's public key in the certificate, another private key doing
    // the handshake signature: the certificate alone proves nothing.
    let stranger = SigningKey::generate(&mut rand_core::OsRng);
    let forged = Some((ed25519_cert(&admin_key), pkcs8(&stranger)));
    let err = attempt(forged, &[proto::ALPN])
        .expect_err("a certificate without its private key must not authenticate");
    // decrypt_error (TLS alert 51): the CertificateVerify signature is bad.
    assert!(err.contains("error 51"), "{err}");
    drop(rt);

    assert_alive(&mut w);
}

// ---------------------------------------------------------------------------
// Garbage streams, concurrently
// ---------------------------------------------------------------------------

/// Stream `i` of the flood: what it sends and which answers are right.
fn garbage(i: usize) -> (Vec<u8>, &'static [ErrorCode]) {
    const ANY_REFUSAL: &[ErrorCode] = &[
        ErrorCode::TooLarge,
        ErrorCode::BadRequest,
        ErrorCode::UnknownKind,
    ];
    let max = (proto::MAX_FRAME as u32).to_be_bytes();
    let over = (proto::MAX_FRAME as u32 + 1).to_be_bytes();
    match i % 7 {
        // Random bytes, 64 B to 8 KiB.
        0 => (
            pseudo_random(64 + (i * 131) % 8192, i as u32 + 1),
            ANY_REFUSAL,
        ),
        // Oversized length prefixes: refused before the body is read.
        1 => (
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            &[ErrorCode::TooLarge],
        ),
        2 => ([&over[..], &[0; 16]].concat(), &[ErrorCode::TooLarge]),
        // A well-formed frame of an unknown kind.
        3 => (vec![0, 0, 0, 2, 0xe7, 0x07], &[ErrorCode::UnknownKind]),
        // A frame that ends early.
        4 => (vec![0, 0, 0, 9, 1], &[ErrorCode::BadRequest]),
        // A frame of the largest size, all zeros: a known kind with
        // trailing junk.
        5 => (
            [&max[..], &vec![0; proto::MAX_FRAME]].concat(),
            &[ErrorCode::BadRequest],
        ),
        // A known kind (Enroll) with a random body.
        _ => {
            let body = [&[0u8][..], &pseudo_random(200, i as u32)].concat();
            let len = (body.len() as u32).to_be_bytes();
            ([&len[..], &body].concat(), ANY_REFUSAL)
        }
    }
}

#[test]
fn a_flood_of_concurrent_garbage_streams_leaves_the_server_serving() {
    const STREAMS: usize = 50;
    const CONNECTIONS: usize = 5;
    let mut w = World::new();
    let rt = runtime();
    // A normal client works while the flood runs.
    let admin = w.admin.clone();
    let normal = std::thread::spawn(move || {
        (0..3)
            .map(|_| admin.run(&["--json", "whoami"]))
            .collect::<Vec<_>>()
    });
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            clients.push(RawClient::connect_with(&w.server, key).await);
        }
        let mut set = tokio::task::JoinSet::new();
        for i in 0..STREAMS {
            let conn = clients[i % CONNECTIONS].conn.clone();
            set.spawn(async move {
                let (bytes, expected) = garbage(i);
                (i, expected, exchange_all(&conn, &bytes).await)
            });
        }
        let mut answered = 0;
        while let Some(joined) = set.join_next().await {
            let (i, expected, (resp, rest)) = joined.expect("stream task");
            let code = error_code(&resp);
            assert!(
                expected.contains(&code),
                "stream {i}: {resp:?}, expected one of {expected:?}"
            );
            assert!(rest.is_empty(), "stream {i}: bytes after the refusal");
            answered += 1;
        }
        assert_eq!(answered, STREAMS);
        // Every connection is still usable (unknown keys: whoami refused).
        for c in clients {
            let r = c.request(&ClientRequest::WhoAmI).await;
            assert_eq!(error_code(&r), ErrorCode::Unauthenticated);
            c.close().await;
        }
    });
    for r in normal.join().expect("normal client thread") {
        assert_eq!(r.ok().json()["id"], "admin@operator");
    }
    assert_alive(&mut w);
}

// ---------------------------------------------------------------------------
// Another matter's blobs
// ---------------------------------------------------------------------------

#[test]
fn another_matters_blob_is_refused_without_a_byte() {
    let mut t = team();
    let tmp = t.w.tmp.path();
    let a = tmp.join("a.txt");
    let b = tmp.join("b.txt");
    std::fs::write(&a, pseudo_random(100_000, 1)).unwrap();
    std::fs::write(&b, pseudo_random(100_000, 2)).unwrap();
    let pa = push(&t.alice, MATTER, &a);
    let pb = push(&t.alice, OTHER_MATTER, &b); // bob is not on this matter
    let rt = runtime();
    rt.block_on(async {
        let alice = RawClient::connect(&t.w.server, &t.alice).await;
        let db = descriptor(&alice, &pb).await;
        alice.close().await;
        let bob = RawClient::connect(&t.w.server, &t.bob).await;
        let da = descriptor(&bob, &pa).await;
        let get = |packet: &str, sha256: [u8; 32]| {
            frame(&ClientRequest::BlobGet(BlobGetRequest {
                packet: packet.into(),
                sha256,
                offset: 0,
                for_share: false,
            }))
        };

        // Control: bob's own blob comes with its bytes.
        let (resp, bytes) = exchange_all(&bob.conn, &get(&pa, da.blobs[0].sha256)).await;
        assert!(matches!(resp, ServerResponse::BlobData(_)), "{resp:?}");
        assert_eq!(sha(&bytes), da.blobs[0].sha256);

        // B's packet id with B's blob: refused as if it did not exist.
        for h in [db.manifest.sha256, db.blobs[0].sha256] {
            let answer = exchange_all(&bob.conn, &get(&pb, h)).await;
            let msg = refused(&answer, ErrorCode::Denied);
            let missing = "p-00000000000000000000000000000000";
            let answer = exchange_all(&bob.conn, &get(missing, h)).await;
            let msg2 = refused(&answer, ErrorCode::Denied);
            assert_eq!(
                msg.replace(&pb, "ID"),
                msg2.replace(missing, "ID"),
                "bob must not tell B's packet from a missing one"
            );
            assert!(!msg.contains(OTHER_MATTER), "{msg}");
        }
        // A's packet id (which bob may read) with B's blob hashes.
        for h in [db.manifest.sha256, db.blobs[0].sha256] {
            let answer = exchange_all(&bob.conn, &get(&pa, h)).await;
            let msg = refused(&answer, ErrorCode::BadRequest);
            assert!(msg.contains("is not part of packet"), "{msg}");
        }
        // …at any offset.
        let mut req = BlobGetRequest {
            packet: pa.clone(),
            sha256: db.blobs[0].sha256,
            offset: 10,
            for_share: false,
        };
        let answer = exchange_all(&bob.conn, &frame(&ClientRequest::BlobGet(req.clone()))).await;
        refused(&answer, ErrorCode::BadRequest);
        // And its own blob beyond its end.
        req.sha256 = da.blobs[0].sha256;
        req.offset = da.blobs[0].size + 1;
        let answer = exchange_all(&bob.conn, &frame(&ClientRequest::BlobGet(req))).await;
        refused(&answer, ErrorCode::BadRequest);
        bob.close().await;
    });
    // Nothing changed: bob's inbox has only A's packet; B's is unread by him.
    let inbox = t.bob.json(&["inbox", "--all"]);
    let ids: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [pa.as_str()]);
    assert_alive(&mut t.w);
}

/// A sender who knows another matter's blob hash and size (an auditor sees
/// them in the audit log; a member removed by an ethical wall saw them
/// earlier) references it in a packet of a matter of its own, then
/// downloads it through that packet. The server must not hand over a blob
/// the sender never uploaded.
#[test]
fn a_blob_of_another_matter_cannot_be_adopted_by_hash() {
    let mut t = team();
    let tmp = t.w.tmp.path().to_path_buf();
    // carol: attorney of her own matter only; bob is on MATTER, not hers.
    let carol = t.w.user("carol@firm-a");
    let ack = tmp.join("ack.txt");
    carol.json(&[
        "matter",
        "create",
        "2026-CAROL-1",
        "--title",
        "Carol's",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        TASK,
    ]);
    let secret = tmp.join("secret.txt");
    std::fs::write(&secret, pseudo_random(50_000, 9)).unwrap();
    let victim = push(&t.alice, MATTER, &secret);
    let rt = runtime();
    rt.block_on(async {
        let alice = RawClient::connect(&t.w.server, &t.alice).await;
        let target = descriptor(&alice, &victim).await.blobs[0].clone();
        alice.close().await;

        let c = RawClient::connect(&t.w.server, &carol).await;
        let upload = |packet: &str, sha256: [u8; 32], size: u64| BlobUpload {
            matter: "2026-CAROL-1".into(),
            ..blob_upload(packet, sha256, size, 0)
        };
        let id = packet::new_id("p");
        // Existence oracle: does the server hold this blob?
        let status = c
            .request(&ClientRequest::BlobStatus(upload(
                &id,
                target.sha256,
                target.size,
            )))
            .await;
        let claimed = matches!(&status, ServerResponse::BlobOffset(s) if s.complete);
        // Her own manifest, then a descriptor naming the victim's blob.
        let resp = c
            .request(&ClientRequest::PushPrepare(PushPrepareRequest {
                matter: "2026-CAROL-1".into(),
                task: TASK.into(),
            }))
            .await;
        let ServerResponse::Recipients(info) = resp else {
            panic!("{resp:?}");
        };
        let manifest = pseudo_random(300, 3);
        let put = frame(&ClientRequest::BlobPut(upload(
            &id,
            sha(&manifest),
            manifest.len() as u64,
        )));
        let (resp, _) = exchange_all(&c.conn, &[put, manifest.clone()].concat()).await;
        assert!(matches!(resp, ServerResponse::BlobStored(_)), "{resp:?}");
        let d = Descriptor {
            kind: Kind::Packet,
            matter: "2026-CAROL-1".into(),
            id: id.clone(),
            packet: None,
            task: TASK.into(),
            due: None,
            sender: "carol@firm-a".into(),
            created_at: now(),
            recipients: info
                .recipients
                .iter()
                .map(|r| packet::Recipient {
                    principal: r.principal.clone(),
                    age: r.age.clone(),
                })
                .collect(),
            recovery: info.recovery.clone(),
            manifest: BlobRef {
                sha256: sha(&manifest),
                size: manifest.len() as u64,
            },
            blobs: vec![target.clone()],
        };
        let commit = c
            .request(&ClientRequest::PacketCommit(PacketCommitRequest {
                descriptor: d.to_signed_bytes().unwrap(),
                signature: d.sign(&c.key).unwrap().to_vec(),
            }))
            .await;
        let (resp, bytes) = exchange_all(
            &c.conn,
            &frame(&ClientRequest::BlobGet(BlobGetRequest {
                packet: id.clone(),
                sha256: target.sha256,
                offset: 0,
                for_share: false,
            })),
        )
        .await;
        c.close().await;
        let mut problems = Vec::new();
        if claimed {
            problems.push(format!(
                "blob-status told carol that matter {MATTER}'s blob exists: {status:?}"
            ));
        }
        if !matches!(commit, ServerResponse::Error(_)) {
            problems.push(format!(
                "carol committed a packet naming a blob she never uploaded: {commit:?}"
            ));
        }
        if !bytes.is_empty() {
            problems.push(format!(
                "carol downloaded {} bytes of matter {MATTER}'s ciphertext (sha256 matches: {}) after {resp:?}",
                bytes.len(),
                sha(&bytes) == target.sha256
            ));
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
    assert_alive(&mut t.w);
}

// ---------------------------------------------------------------------------
// A push declaring 1 TiB
// ---------------------------------------------------------------------------

#[test]
fn a_push_declaring_one_tebibyte_is_refused_before_a_byte_is_stored() {
    let mut t = team();
    let data = t.w.server.data.clone();
    let blobs_before = walk(&data.join("blobs"));
    let rt = runtime();
    rt.block_on(async {
        let c = RawClient::connect(&t.w.server, &t.alice).await;
        let id = packet::new_id("p");
        let upload = |size: u64, offset: u64| blob_upload(&id, [0x5a; 32], size, offset);
        let tib = 1u64 << 40;
        for req in [
            ClientRequest::BlobStatus(upload(tib, 0)),
            ClientRequest::BlobPut(upload(tib, 0)),
            ClientRequest::BlobPut(upload(u64::MAX, 0)),
            ClientRequest::BlobPut(upload(tib, tib - 1)),
        ] {
            let mut bytes = frame(&req);
            if matches!(req, ClientRequest::BlobPut(_)) {
                bytes.extend(pseudo_random(256 << 10, 5));
            }
            let answer = exchange_all(&c.conn, &bytes).await;
            let msg = refused(&answer, ErrorCode::TooLarge);
            assert!(msg.contains("exceeds the limit"), "{msg}");
        }
        // The connection is still good for real work.
        let r = c
            .request(&ClientRequest::PushPrepare(PushPrepareRequest {
                matter: MATTER.into(),
                task: TASK.into(),
            }))
            .await;
        assert!(matches!(r, ServerResponse::Recipients(_)), "{r:?}");
        c.close().await;
    });
    assert!(
        walk(&data.join("staging")).is_empty(),
        "staging: {:?}",
        walk(&data.join("staging"))
    );
    assert_eq!(walk(&data.join("blobs")), blobs_before);
    // And the same client still pushes normally.
    let f = t.w.tmp.path().join("small.txt");
    std::fs::write(&f, "small").unwrap();
    push(&t.alice, MATTER, &f);
    assert_alive(&mut t.w);
}

/// A blob streamed with its hash after its bytes (`BlobStream`) is stored
/// only when exactly the declared bytes and their true hash arrive;
/// anything else is refused and leaves nothing behind.
#[test]
fn streamed_blobs_must_end_with_their_true_hash() {
    let mut t = team();
    let data = t.w.server.data.clone();
    let blobs_before = walk(&data.join("blobs"));
    let rt = runtime();
    rt.block_on(async {
        let c = RawClient::connect(&t.w.server, &t.alice).await;
        let id = packet::new_id("p");
        let body = pseudo_random(300_000, 9);
        let upload = |size: u64, sha256: [u8; 32], offset: u64| {
            frame(&ClientRequest::BlobStream(blob_upload(
                &id, sha256, size, offset,
            )))
        };
        let n = body.len() as u64;
        let cases: Vec<(&str, Vec<u8>, ErrorCode, &str)> = vec![
            (
                "wrong trailing hash",
                [upload(n, [0; 32], 0), body.clone(), vec![7; 32]].concat(),
                ErrorCode::Verification,
                "hash mismatch",
            ),
            (
                "bytes missing",
                [
                    upload(n + 10, [0; 32], 0),
                    body.clone(),
                    sha(&body).to_vec(),
                ]
                .concat(),
                ErrorCode::Verification,
                "ended before",
            ),
            (
                "bytes after the hash",
                [
                    upload(n, [0; 32], 0),
                    body.clone(),
                    sha(&body).to_vec(),
                    vec![0; 9],
                ]
                .concat(),
                ErrorCode::Verification,
                "more than the declared",
            ),
            (
                "a hash named in advance",
                [upload(n, sha(&body), 0), body.clone(), sha(&body).to_vec()].concat(),
                ErrorCode::BadRequest,
                "names its hash after its bytes",
            ),
            (
                "an offset",
                [
                    upload(n, [0; 32], 5),
                    body[5..].to_vec(),
                    sha(&body).to_vec(),
                ]
                .concat(),
                ErrorCode::BadRequest,
                "starts at offset 0",
            ),
            (
                "a 1 TiB declaration",
                [upload(1 << 40, [0; 32], 0), body.clone()].concat(),
                ErrorCode::TooLarge,
                "exceeds the limit",
            ),
        ];
        for (what, bytes, code, says) in cases {
            let answer = exchange_all(&c.conn, &bytes).await;
            let msg = refused(&answer, code);
            assert!(msg.contains(says), "{what}: {msg}");
        }
        // The same bytes with their true hash are stored, and count as held.
        let good = [upload(n, [0; 32], 0), body.clone(), sha(&body).to_vec()].concat();
        let (resp, _) = exchange_all(&c.conn, &good).await;
        match resp {
            ServerResponse::BlobStored(b) => assert!(b.sha256 == sha(&body) && b.size == n),
            other => panic!("{other:?}"),
        }
        let status = c
            .request(&ClientRequest::BlobStatus(blob_upload(
                &id,
                sha(&body),
                n,
                0,
            )))
            .await;
        assert!(
            matches!(&status, ServerResponse::BlobOffset(s) if s.complete),
            "{status:?}"
        );
        c.close().await;
    });
    assert!(
        walk(&data.join("staging")).is_empty(),
        "refused streams leave nothing: {:?}",
        walk(&data.join("staging"))
    );
    assert_eq!(walk(&data.join("blobs")).len(), blobs_before.len() + 1);
    assert_alive(&mut t.w);
}

// ---------------------------------------------------------------------------
// Path-traversal names
// ---------------------------------------------------------------------------

#[test]
fn the_client_refuses_to_push_dangerous_names_before_connecting() {
    let mut t = team();
    let tmp = t.w.tmp.path().to_path_buf();
    let blobs_before = walk(&t.w.server.data.join("blobs"));
    let names = [
        "..\\x",
        "..\\..\\etc\\passwd",
        "line\nbreak.txt",
        "tab\there.txt",
        "esc\u{1b}[31m.txt",
        "invoice\u{202e}fdp.exe",
        "isolate\u{2066}.txt",
        "...",
    ];
    for (i, name) in names.iter().enumerate() {
        // As a file named on the command line, and inside a folder.
        let dir = tmp.join(format!("bad-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, "x").unwrap();
        for arg in [&file, &dir] {
            let r = t
                .alice
                .run(&["push", MATTER, arg.to_str().unwrap(), "--task", TASK])
                .code(2);
            assert!(r.stderr.contains("file name"), "{name:?}: {r:?}");
            // Shown escaped, never raw.
            assert!(
                !r.stderr.contains('\u{202e}') && !r.stderr.contains('\u{1b}'),
                "{name:?}: {r:?}"
            );
        }
    }
    // The same refusal from a home whose server is unreachable: the names
    // are checked before any connection is made.
    let server_json = t.alice.home.join("server.json");
    let saved = std::fs::read(&server_json).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    v["server"] = closed.local_addr().unwrap().to_string().into();
    drop(closed);
    std::fs::write(&server_json, v.to_string()).unwrap();
    let file = tmp.join("bad-0").join(names[0]);
    t.alice
        .run(&["push", MATTER, file.to_str().unwrap(), "--task", TASK])
        .code(2);
    std::fs::write(&server_json, saved).unwrap();

    // Nothing was sent: no blob, no spool, nothing in bob's inbox.
    assert_eq!(walk(&t.w.server.data.join("blobs")), blobs_before);
    assert!(walk(&t.alice.home.join("spool")).is_empty());
    assert_eq!(t.bob.json(&["inbox"])["items"].as_array().unwrap().len(), 0);
    assert_alive(&mut t.w);
}

#[test]
fn crafted_manifests_with_dangerous_names_are_refused_at_pull() {
    let mut t = team();
    let tmp = t.w.tmp.path().to_path_buf();
    let pulls = tmp.join("pulls");
    let abs_target = tmp.join("evil-abs");
    let abs = abs_target.to_str().unwrap().to_owned();
    let rt = runtime();
    let alice = rt.block_on(RawClient::connect(&t.w.server, &t.alice));
    let craft =
        |files: Vec<CraftFile>| rt.block_on(craft_packet(&alice, &tmp, "alice@firm-a", &files));

    // Control: a crafted packet with an ordinary name pulls fine, so the
    // refusals below are for the names alone.
    let fine = craft(vec![CraftFile::new("fine/ok.txt", b"fine\n".to_vec())]);
    let out = tmp.join("fine-out");
    t.bob.json(&["pull", &fine, "--out", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("fine/ok.txt")).unwrap(), b"fine\n");

    let hostile: Vec<Vec<&str>> = vec![
        vec!["../evil"],
        vec!["a/../../evil"],
        vec![abs.as_str()],
        vec!["a\\..\\..\\evil"],
        vec!["./evil"],
        vec!["a//evil"],
        vec!["x/\u{202e}txt.exe"],
        vec!["new\nline"],
        vec![""],
        vec!["ok.txt", "../evil"],
        vec!["report.pdf", "Report.pdf"],
        vec!["a", "a/b"],
    ];
    for (i, names) in hostile.iter().enumerate() {
        let files = names
            .iter()
            .enumerate()
            .map(|(j, n)| CraftFile::new(n, format!("evil {i} {j}\n").into_bytes()))
            .collect();
        let id = craft(files);
        let out = pulls.join(i.to_string());
        let r = t
            .bob
            .run(&["pull", &id, "--out", out.to_str().unwrap()])
            .code(4);
        assert!(r.stderr.contains("manifest"), "{names:?}: {r:?}");
        assert!(!r.stderr.contains('\u{202e}'), "{names:?}: {r:?}");
        assert!(walk(&pulls).is_empty(), "{names:?}: {:?}", walk(&pulls));
        assert!(!tmp.join("evil").exists() && !abs_target.exists());
        assert!(
            walk(&t.bob.home.join("partial")).is_empty(),
            "{names:?}: a verification failure leaves nothing behind"
        );
    }
    rt.block_on(alice.close());
    // The manifest rule itself, for the record.
    for bad in ["../x", "a/../b", "/x", "a\\b", "\u{202e}x", "x\u{0}y"] {
        let m = Manifest::new(
            "",
            vec![ManifestFile {
                path: bad.into(),
                size: 0,
                sha256: [0; 32],
                blobs: vec![[1; 32]],
            }],
        );
        let json = serde_json::to_vec(&m).unwrap();
        assert!(Manifest::parse(&json).is_err(), "{bad:?}");
    }
    assert_alive(&mut t.w);
}

// ---------------------------------------------------------------------------
// Truncated age files
// ---------------------------------------------------------------------------

/// Parts are concatenated in the manifest's order whatever their sizes, and
/// `--raw` refuses to save two parts onto one name (`a` in two parts gives
/// `a.000.age`, which a one-part file `a.000` would also give).
#[test]
fn parts_reassemble_and_raw_names_never_collide() {
    let mut t = team();
    let tmp = t.w.tmp.path().to_path_buf();
    let rt = runtime();
    let alice = rt.block_on(RawClient::connect(&t.w.server, &t.alice));
    let a = pseudo_random(200_000, 31);
    let b = pseudo_random(1000, 32);
    let id = rt.block_on(craft_packet(
        &alice,
        &tmp,
        "alice@firm-a",
        &[
            CraftFile {
                parts: 3,
                ..CraftFile::new("a", a.clone())
            },
            CraftFile::new("a.000", b.clone()),
        ],
    ));
    let out = tmp.join("joined");
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("a")).unwrap() == a);
    assert!(std::fs::read(out.join("a.000")).unwrap() == b);
    let raw = tmp.join("raw");
    let r = t
        .bob
        .run(&["pull", &id, "--raw", "--out", raw.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("would be saved as"), "{r:?}");
    assert!(walk(&raw).is_empty(), "{:?}", walk(&raw));
    assert!(walk(&t.bob.home.join("partial")).is_empty());
    rt.block_on(alice.close());
    assert_alive(&mut t.w);
}

#[test]
fn truncated_age_files_are_refused_and_nothing_is_written() {
    let mut t = team();
    let tmp = t.w.tmp.path().to_path_buf();
    let rt = runtime();

    // 1. Truncated on the server's disk (hash no longer matches).
    let plain = pseudo_random(200_000, 21);
    let f = tmp.join("whole.bin");
    std::fs::write(&f, &plain).unwrap();
    let id = push(&t.alice, MATTER, &f);
    let alice = rt.block_on(RawClient::connect(&t.w.server, &t.alice));
    let d = rt.block_on(descriptor(&alice, &id));
    let path = blob_path(&t.w.server.data, &d.blobs[0].sha256);
    let original = std::fs::read(&path).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = tmp.join("out-disk");
    for cut in [original.len() / 2, 10, 0] {
        std::fs::write(&path, &original[..cut]).unwrap();
        pull_refused_as_tampered(&t.bob, &id, &out, &format!("cut at {cut}"));
        assert!(walk(&t.bob.home.join("partial")).is_empty());
    }
    // Restored, it pulls: the refusals changed nothing.
    std::fs::write(&path, &original).unwrap();
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("whole.bin")).unwrap() == plain);

    // 2. Truncated by the sender before upload: the hashes match the signed
    // descriptor, only decryption can tell. Two full 64 KiB chunks, so the
    // cuts below hit the header, the middle of a chunk, the last tag, and
    // exactly a chunk boundary (the whole final chunk dropped: the
    // classic truncation the STREAM construction must catch).
    const CHUNK: usize = 64 * 1024 + 16;
    let cuts: [(&str, Edit); 5] = [
        ("inside the header", |c| c[..40].to_vec()),
        ("header and nonce only", |c| {
            c[..c.len() - 2 * CHUNK].to_vec()
        }),
        ("mid-chunk", |c| c[..c.len() - CHUNK / 2].to_vec()),
        ("last byte", |c| c[..c.len() - 1].to_vec()),
        ("chunk boundary", |c| c[..c.len() - CHUNK].to_vec()),
    ];
    let plain = pseudo_random(2 * 64 * 1024, 22);
    for (what, edit) in cuts {
        let id = rt.block_on(craft_packet(
            &alice,
            &tmp,
            "alice@firm-a",
            &[CraftFile {
                path: "t.bin".into(),
                plain: plain.clone(),
                edit,
                parts: 1,
            }],
        ));
        let out = tmp.join("out-sender");
        let r = t
            .bob
            .run(&["pull", &id, "--out", out.to_str().unwrap()])
            .code(4);
        assert!(r.stderr.contains("cannot decrypt"), "{what}: {r:?}");
        assert!(walk(&out).is_empty(), "{what}: {:?}", walk(&out));
        assert!(walk(&t.bob.home.join("partial")).is_empty(), "{what}");
    }
    rt.block_on(alice.close());
    assert_alive(&mut t.w);
}

// ---------------------------------------------------------------------------
// Replayed invites
// ---------------------------------------------------------------------------

#[test]
fn a_replayed_invite_enrolls_no_one_even_in_a_race() {
    const RACERS: usize = 8;
    let mut w = World::new();
    w.org("firm-a", "firm");
    let age = w.admin.json(&["whoami"])["age_recipient"]
        .as_str()
        .unwrap()
        .to_owned();

    // Sequential replay through mdrop: exit 3, and the id stays free.
    let invite = w.invite("firm-a");
    User::new(w.tmp.path(), "first").enroll(&w.server, &invite, "first@firm-a");
    let second = User::new(w.tmp.path(), "second");
    second.json(&["keygen"]);
    let enroll = |u: &User, invite: &str| {
        u.run(&[
            "enroll",
            &w.server.addr,
            "--fingerprint",
            &w.server.fingerprint,
            "--invite",
            invite,
            "--id",
            "second@firm-a",
            "--name",
            "Second",
        ])
    };
    let r = enroll(&second, &invite).code(3);
    assert!(r.stderr.contains("already been used"), "{r:?}");
    assert!(!second.home.join("server.json").exists());
    // "second@firm-a" was not created: a fresh invite can still claim it.
    enroll(&second, &w.invite("firm-a")).ok();
    assert_eq!(second.json(&["whoami"])["id"], "second@firm-a");

    // Concurrent replay: one invite, eight keys at once; exactly one wins.
    let invite = w.invite("firm-a");
    let rt = runtime();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..RACERS {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            clients.push(RawClient::connect_with(&w.server, key).await);
        }
        let request = |i: usize| {
            frame(&ClientRequest::Enroll(EnrollRequest {
                invite: invite.clone(),
                id: format!("racer{i}@firm-a"),
                name: format!("Racer {i}"),
                age_recipient: age.clone(),
            }))
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, c) in clients.iter().enumerate() {
            let conn = c.conn.clone();
            let bytes = request(i);
            set.spawn(async move { (i, exchange_all(&conn, &bytes).await) });
        }
        let mut winners = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (i, answer) = joined.expect("racer");
            match &answer.0 {
                ServerResponse::Enrolled(p) => {
                    assert_eq!(p.id, format!("racer{i}@firm-a"));
                    winners.push(i);
                }
                _ => {
                    let msg = refused(&answer, ErrorCode::Denied);
                    assert!(msg.contains("already been used"), "racer {i}: {msg}");
                }
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let winner = winners[0];
        // Replaying the winner's own request changes nothing either.
        let answer = exchange_all(&clients[winner].conn, &request(winner)).await;
        let _ = error_code(&answer.0);
        for (i, c) in clients.into_iter().enumerate() {
            let r = c.request(&ClientRequest::WhoAmI).await;
            if i == winner {
                assert!(matches!(r, ServerResponse::WhoAmI(_)), "{r:?}");
            } else {
                assert_eq!(error_code(&r), ErrorCode::Unauthenticated, "racer {i}");
            }
            c.close().await;
        }
    });
    assert_alive(&mut w);
}

// ---------------------------------------------------------------------------
// Requests after key revocation
// ---------------------------------------------------------------------------

#[test]
fn every_request_after_key_revocation_is_refused_and_reads_nothing() {
    let mut t = team();
    let f = t.w.tmp.path().join("before.txt");
    std::fs::write(&f, "pushed before the revocation\n").unwrap();
    let id = push(&t.alice, MATTER, &f);
    let invite = t.w.invite("lpo-1");
    let rt = runtime();
    // Bob's connection is open, and he knows the packet's blobs.
    let bob = rt.block_on(RawClient::connect(&t.w.server, &t.bob));
    let d = rt.block_on(descriptor(&bob, &id));
    assert_eq!(
        t.w.admin.json(&["admin", "revoke", "bob@lpo-1"])["revoked"],
        "bob@lpo-1"
    );
    rt.block_on(async {
        let upload = blob_upload(&packet::new_id("p"), [7; 32], 10, 0);
        let requests = [
            ClientRequest::PacketGet(PacketRef { id: id.clone() }),
            ClientRequest::BlobGet(BlobGetRequest {
                packet: id.clone(),
                sha256: d.blobs[0].sha256,
                offset: 0,
                for_share: false,
            }),
            ClientRequest::BlobGet(BlobGetRequest {
                packet: id.clone(),
                sha256: d.manifest.sha256,
                offset: 0,
                for_share: false,
            }),
            ClientRequest::Inbox(proto::InboxRequest {
                matter: None,
                all: true,
            }),
            ClientRequest::MatterList,
            ClientRequest::BlobStatus(upload.clone()),
            ClientRequest::BlobPut(upload),
            ClientRequest::AuditExport(proto::AuditExportRequest {
                matter: Some(MATTER.into()),
                known_size: None,
                nonce: None,
            }),
        ];
        for req in &requests {
            let mut bytes = frame(req);
            if matches!(req, ClientRequest::BlobPut(_)) {
                bytes.extend([0u8; 10]);
            }
            let answer = exchange_all(&bob.conn, &bytes).await;
            let msg = refused(&answer, ErrorCode::Unauthenticated);
            assert!(msg.contains("not enrolled"), "{}: {msg}", req.name());
        }
        // An enrolled key cannot enroll again; a revoked one is refused for
        // anything but enrollment, which then needs a valid invite.
        let answer = exchange_all(
            &bob.conn,
            &frame(&ClientRequest::Enroll(EnrollRequest {
                invite: "mdi1_not-a-real-token".into(),
                id: "bob@lpo-1".into(),
                name: "Bob".into(),
                age_recipient: t.w.admin.json(&["whoami"])["age_recipient"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            })),
        )
        .await;
        refused(&answer, ErrorCode::Denied);
    });
    rt.block_on(bob.close());
    // Through mdrop: exit 3, nothing written, nothing partial kept.
    let out = t.w.tmp.path().join("revoked-out");
    t.bob
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .code(3);
    assert!(walk(&out).is_empty());
    assert!(walk(&t.bob.home.join("partial")).is_empty());
    t.bob.run(&["inbox"]).code(3);
    // Bob enrolls a new key under his id: it is no member of the matter
    // (the roster names the revoked key) until an attorney rekeys him, so
    // it can neither acknowledge nor pull.
    let fresh = User::new(t.w.tmp.path(), "bob-new");
    fresh.enroll(&t.w.server, &invite, "bob@lpo-1");
    let r = fresh.run(&["ack", MATTER, "--yes"]).code(3);
    assert!(r.stderr.contains("not a member"), "{r:?}");
    let r = fresh
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .code(3);
    assert!(
        r.stderr.contains("not found or not addressed to you"),
        "{r:?}"
    );
    assert!(walk(&out).is_empty());
    assert_alive(&mut t.w);
}

/// Revoking a key is what an admin does when it is compromised: nothing
/// pushed afterwards may be encrypted to it.
#[test]
fn nothing_is_encrypted_to_a_revoked_key() {
    let t = team();
    t.w.admin.json(&["admin", "revoke", "bob@lpo-1"]);
    let f = t.w.tmp.path().join("after.txt");
    std::fs::write(&f, "pushed after the revocation\n").unwrap();
    // The roster still names Bob's key: the push refuses rather than
    // encrypting to a revoked key, and says what to do.
    let r = t
        .alice
        .run(&["push", MATTER, f.to_str().unwrap(), "--task", TASK])
        .code(4);
    assert!(
        r.stderr.contains("leaves out") && r.stderr.contains("bob@lpo-1"),
        "{r:?}"
    );
    assert!(r.stderr.contains("matter remove"), "{r:?}");
    t.alice.json(&["matter", "remove", MATTER, "bob@lpo-1"]);
    let pushed = t
        .alice
        .json(&["push", MATTER, f.to_str().unwrap(), "--task", TASK]);
    let recipients: Vec<&str> = pushed["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !recipients.contains(&"bob@lpo-1"),
        "encrypted to bob's revoked key: {pushed}"
    );
}

// ---------------------------------------------------------------------------
// Disk full (the storage quota)
// ---------------------------------------------------------------------------

/// `mdropd serve --quota`, started like `Server::start`. Killed on drop.
struct QuotaServer {
    child: Child,
    data: PathBuf,
    addr: String,
    fingerprint: String,
    invite: String,
    log: PathBuf,
}

impl QuotaServer {
    fn start(data: &Path, quota: u64) -> Self {
        let log = data.with_extension("log");
        let logfile = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(bin("mdropd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--json", "--quota"])
            .arg(quota.to_string())
            .arg("--data")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(logfile)
            .spawn()
            .expect("spawn mdropd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut invite = None;
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "mdropd did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                });
            let v: serde_json::Value = serde_json::from_str(&line).expect("mdropd --json line");
            if let Some(i) = v["invite"].as_str() {
                invite = Some(i.to_owned());
                continue;
            }
            return Self {
                child,
                data: data.to_path_buf(),
                addr: v["listen"].as_str().expect("listen").to_owned(),
                fingerprint: v["fingerprint"].as_str().expect("fingerprint").to_owned(),
                invite: invite.expect("bootstrap invite"),
                log,
            };
        }
    }

    fn enroll(&self, user: &User, invite: &str, id: &str) {
        user.json(&["keygen"]);
        user.json(&[
            "enroll",
            &self.addr,
            "--fingerprint",
            &self.fingerprint,
            "--invite",
            invite,
            "--id",
            id,
            "--name",
            id,
        ]);
    }

    #[track_caller]
    fn assert_running(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "mdropd exited; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for QuotaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with a storage quota, admin, alice (attorney of MATTER) and bob
/// (provider, acknowledged).
fn quota_team(tmp: &Path, quota: u64) -> (QuotaServer, User, User, User) {
    let server = QuotaServer::start(&tmp.join("data"), quota);
    let admin = User::new(tmp, "admin");
    server.enroll(&admin, &server.invite, "admin@operator");
    admin.json(&["admin", "org", "create", "firm-a", "--kind", "firm"]);
    admin.json(&["admin", "org", "create", "lpo-1", "--kind", "provider"]);
    let invite = |org: &str| {
        admin.json(&["admin", "invite", "--org", org])["invite"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let alice = User::new(tmp, "alice");
    server.enroll(&alice, &invite("firm-a"), "alice@firm-a");
    let bob = User::new(tmp, "bob");
    server.enroll(&bob, &invite("lpo-1"), "bob@lpo-1");
    let ack = tmp.join("ack.txt");
    std::fs::write(&ack, "Confidential.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        TASK,
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);
    (server, admin, alice, bob)
}

#[test]
fn a_full_disk_refuses_the_push_that_does_not_fit_and_keeps_the_rest() {
    const QUOTA: u64 = 1_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, admin, alice, bob) = quota_team(tmp.path(), QUOTA);
    let fits = tmp.path().join("fits.bin");
    let fits_data = pseudo_random(300_000, 31);
    std::fs::write(&fits, &fits_data).unwrap();
    let first = push(&alice, MATTER, &fits);

    let too_big = tmp.path().join("too-big.bin");
    std::fs::write(&too_big, pseudo_random(800_000, 32)).unwrap();
    let r = alice.run(&["push", MATTER, too_big.to_str().unwrap(), "--task", TASK]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("storage"), "{r:?}");
    server.assert_running();
    // Nothing half-stored: no staging file, blobs within the quota, and no
    // packet for bob. (The server may still be ending the other upload lane
    // the client dropped when it exited: give it time to clean up.)
    let deadline = std::time::Instant::now() + Duration::from_secs(35);
    while !walk(&server.data.join("staging")).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        walk(&server.data.join("staging")).is_empty(),
        "{:?}",
        walk(&server.data.join("staging"))
    );
    let used: u64 = walk(&server.data.join("blobs"))
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(used <= QUOTA, "{used} bytes stored with a quota of {QUOTA}");
    let inbox = bob.json(&["inbox"]);
    let ids: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str()]);

    // The first packet still pulls byte-identical.
    let out = tmp.path().join("out");
    bob.json(&["pull", &first, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("fits.bin")).unwrap() == fits_data);
    // The server keeps serving, and a push that fits still goes through.
    let small = tmp.path().join("small.bin");
    let small_data = pseudo_random(100_000, 33);
    std::fs::write(&small, &small_data).unwrap();
    let third = push(&alice, MATTER, &small);
    bob.json(&["pull", &third, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("small.bin")).unwrap() == small_data);
    assert_eq!(admin.json(&["whoami"])["id"], "admin@operator");
    server.assert_running();
}

/// Two uploads that each fit, started together, must not both be let
/// through when together they do not.
#[test]
fn concurrent_uploads_cannot_overshoot_the_quota() {
    const QUOTA: u64 = 1_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, _admin, alice, _bob) = quota_team(tmp.path(), QUOTA);
    tls::install_crypto_provider();
    let rt = runtime();
    let key = signing_key(&alice);
    let results = rt.block_on(async {
        let pin = tls::ServerPin::Fingerprint(server.fingerprint.clone());
        let (cfg, _) = tls::client_config(&key, &pin).expect("client config");
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(cfg, server.addr.parse().unwrap(), "localhost")
            .unwrap()
            .await
            .expect("handshake");
        let id = packet::new_id("p");
        let blobs: Vec<Vec<u8>> = (0..2).map(|i| pseudo_random(600_000, 40 + i)).collect();
        // Both requests are accepted before either sends its bytes.
        let mut streams = Vec::new();
        for b in &blobs {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            let put = frame(&ClientRequest::BlobPut(blob_upload(
                &id,
                sha(b),
                b.len() as u64,
                0,
            )));
            send.write_all(&put).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            streams.push((send, recv));
        }
        let mut results = Vec::new();
        for ((mut send, mut recv), b) in streams.into_iter().zip(&blobs) {
            let _ = send.write_all(b).await;
            let _ = send.finish();
            let all = recv.read_to_end(1 << 20).await.unwrap();
            results.push(proto::decode_frame::<ServerResponse>(&all).unwrap());
        }
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
        results
    });
    server.assert_running();
    let used: u64 = walk(&server.data.join("blobs"))
        .iter()
        .chain(&walk(&server.data.join("staging")))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        used <= QUOTA,
        "{used} bytes stored with a quota of {QUOTA}: {results:?}"
    );
}

// ---------------------------------------------------------------------------
// Floods from keys that are not enrolled
// ---------------------------------------------------------------------------

/// The audit entries on disk (the server stopped).
fn log_entries(data: &Path) -> Vec<matterdrop_common::audit::Entry> {
    matterdrop_server::auditlog::scan_raw(
        &data
            .join("log")
            .join(matterdrop_server::auditlog::ENTRIES_FILE),
    )
    .expect("read the log")
    .iter()
    .map(|r| {
        matterdrop_common::audit::parse_record(r)
            .expect("audit record")
            .0
    })
    .collect()
}

/// A bounded flood (a few seconds): from eight source addresses
/// (127.0.0.2–9; the user is on 127.0.0.1), 100 throwaway keys open up to
/// 8 connections each (800 handshakes), and the connections that get in
/// send 2,000 enrollments with made-up invites. Meanwhile an enrolled user
/// runs `whoami` and `push`, which must succeed; the connections of keys
/// that are not enrolled stay within their per-address limit; the failed
/// enrollments are rate-limited; and the audit log grows by one
/// `enroll-failures` entry with the counts, not one entry per attempt.
#[test]
fn a_flood_of_unenrolled_keys_neither_locks_out_users_nor_grows_the_log() {
    const KEYS: usize = 100;
    const SOURCES: usize = 8;
    const CONNS_PER_KEY: usize = 8;
    const ENROLLS: usize = 2_000;
    let mut t = team();
    let file = t.w.tmp.path().join("flood-intake.txt");
    std::fs::write(&file, pseudo_random(64 * 1024, 7)).unwrap();
    let age = t.alice.json(&["whoami"])["age_recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut before = Vec::new();
    t.w.server.restart_after(|data| before = log_entries(data));
    for u in [&t.w.admin, &t.alice, &t.bob] {
        u.repoint(&t.w.server);
    }
    let addr: std::net::SocketAddr = t.w.server.addr.parse().unwrap();
    let pin = tls::ServerPin::Fingerprint(t.w.server.fingerprint.clone());
    let rt = runtime();
    let started = std::time::Instant::now();
    let (per_source, connected, refused, answers, limited) = rt.block_on(async {
        tls::install_crypto_provider();
        let endpoints: Vec<quinn::Endpoint> = (2..=SOURCES + 1)
            .map(|i| quinn::Endpoint::client(format!("127.0.0.{i}:0").parse().unwrap()).unwrap())
            .collect();
        let mut dials = tokio::task::JoinSet::new();
        for k in 0..KEYS {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            let (cfg, _) = tls::client_config(&key, &pin).unwrap();
            let source = k % SOURCES;
            for _ in 0..CONNS_PER_KEY {
                let connecting = endpoints[source].connect_with(cfg.clone(), addr, "localhost");
                dials.spawn(async move {
                    let c = tokio::time::timeout(Duration::from_secs(10), connecting.ok()?)
                        .await
                        .ok()?
                        .ok()?;
                    Some((source, c))
                });
            }
        }
        // The user works while the handshakes are under way.
        let user = {
            let (alice, file) = (t.alice.clone(), file.clone());
            tokio::task::spawn_blocking(move || {
                let who = alice.run(&["whoami"]);
                let push = alice.run(&["push", MATTER, file.to_str().unwrap(), "--task", TASK]);
                (who, push)
            })
        };
        let mut conns = Vec::new();
        let mut refused = 0;
        while let Some(c) = dials.join_next().await {
            match c.unwrap() {
                Some(c) => conns.push(c),
                None => refused += 1,
            }
        }
        // Kept are the connections the server answers on (it closes the
        // others right after their handshake, which it may finish well
        // after the client did).
        let mut probes = tokio::task::JoinSet::new();
        for (source, c) in conns.drain(..) {
            probes.spawn(async move {
                let answered = async {
                    let (mut send, mut recv) = c.open_bi().await.ok()?;
                    send.write_all(&frame(&ClientRequest::WhoAmI)).await.ok()?;
                    let _ = send.finish();
                    recv.read_to_end(1 << 20).await.ok()
                };
                let got = tokio::time::timeout(Duration::from_secs(20), answered).await;
                matches!(got, Ok(Some(_))).then_some((source, c))
            });
        }
        while let Some(c) = probes.join_next().await {
            match c.unwrap() {
                Some(c) => conns.push(c),
                None => refused += 1,
            }
        }
        let dialed = started.elapsed();
        let mut per_source = [0usize; SOURCES];
        for (s, _) in &conns {
            per_source[*s] += 1;
        }
        let conns: Vec<quinn::Connection> = conns.into_iter().map(|(_, c)| c).collect();
        // Enrollments with made-up invites over the connections that got in.
        let mut enrolls = tokio::task::JoinSet::new();
        for i in 0..ENROLLS {
            let conn = conns[i % conns.len()].clone();
            let req = frame(&ClientRequest::Enroll(EnrollRequest {
                invite: format!("mdi1-not-an-invite-{i}"),
                id: format!("flood{i}@firm-a"),
                name: "Flood".into(),
                age_recipient: age.clone(),
            }));
            enrolls.spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await.ok()?;
                send.write_all(&req).await.ok()?;
                let _ = send.finish();
                let buf = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
                    .await
                    .ok()?
                    .ok()?;
                proto::decode_frame(&buf).ok()
            });
        }
        let mut answers = 0;
        let mut limited = 0;
        while let Some(a) = enrolls.join_next().await {
            if let Some(ServerResponse::Error(e)) = a.unwrap() {
                answers += 1;
                limited += usize::from(e.message.contains("too many failed enrollments"));
            }
        }
        eprintln!(
            "flood: {} kept, {refused} refused in {dialed:?}; {answers} enrollments answered ({limited} rate-limited) by {:?}",
            conns.len(),
            started.elapsed()
        );
        let (who, push) = user.await.unwrap();
        assert_eq!(who.code, 0, "whoami during the flood: {who:?}");
        assert_eq!(push.code, 0, "push during the flood: {push:?}");
        let connected = conns.len();
        for c in conns {
            c.close(0u32.into(), b"");
        }
        for e in endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(2), e.wait_idle()).await;
        }
        (per_source, connected, refused, answers, limited)
    });
    // The unenrolled pool held: a few per address got in, the rest not.
    assert!(
        per_source
            .iter()
            .all(|&n| n <= matterdrop_server::server::MAX_UNENROLLED_PER_ADDR),
        "connections of unenrolled keys kept per source address: {per_source:?}"
    );
    assert_eq!(connected + refused, KEYS * CONNS_PER_KEY);
    assert!(answers > 0, "no enrollment was answered");
    // Each address may fail 20 times a minute; requests already being
    // handled when the limit is reached still count as failures.
    let allowed_failures = SOURCES * (matterdrop_server::flood::FAILURES_PER_ADDR as usize + 16);
    assert!(
        answers - limited <= allowed_failures,
        "only {limited} of {answers} enrollments were rate-limited"
    );
    // Still serving, and a push after the flood works.
    t.alice.json(&["whoami"]);
    push(&t.alice, MATTER, &file);
    // The server's own log did not get a line per attempt either: the
    // rate-limited enrollments are only counted.
    let lines =
        t.w.server
            .log()
            .lines()
            .filter(|l| l.contains("request=\"enroll\""))
            .count();
    assert!(
        lines <= answers - limited + 10,
        "{lines} log lines for {answers} enrollments ({limited} rate-limited)"
    );
    assert!(t.w.server.stop(), "mdropd did not stop cleanly");
    let after = log_entries(&t.w.server.data);
    let new = &after[before.len()..];
    let flood_entries: Vec<_> = new
        .iter()
        .filter(|e| e.action == "enroll" || e.principal.starts_with("key:"))
        .collect();
    assert!(flood_entries.is_empty(), "{flood_entries:?}");
    let counts: Vec<_> = new
        .iter()
        .filter(|e| e.action == "enroll-failures")
        .collect();
    assert_eq!(counts.len(), 1, "{counts:?}");
    let detail = |k: &str| -> usize {
        counts[0]
            .details
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {:?}", counts[0].details))
    };
    assert_eq!(detail("failed") + detail("rate_limited"), answers);
    assert_eq!(detail("rate_limited"), limited);
    // The whole flood added a bounded number of entries: the user's own
    // requests and the one count.
    assert!(new.len() < 40, "{} entries from a flood", new.len());
}
