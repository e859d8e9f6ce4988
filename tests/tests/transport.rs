//! The post-quantum transport: QUIC handshakes negotiate the hybrid key
//! exchange `X25519MLKEM768`, and a server started with
//! `--require-pq-transport` refuses a client that offers only classical
//! groups.

use std::sync::Arc;

use matterdrop_common::tls::{self, KeyExchange, ServerPin};
use matterdrop_tests::{Server, User};
use rustls::crypto::CryptoProvider;

/// A client provider that offers only `X25519`, as a client without
/// post-quantum support does.
fn classical_only() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    Arc::new(p)
}

/// Handshakes with an in-process server made by `tls::server_config` (what
/// `mdropd` runs) and returns which groups the server completed:
/// `(hybrid, classic)` counts added by this handshake.
async fn handshake(
    server_kx: KeyExchange,
    client: Arc<CryptoProvider>,
) -> (Result<(), String>, (u64, u64)) {
    let pki = tls::generate_server_pki(&["localhost".to_owned()]).expect("pki");
    let cfg = tls::server_config(vec![pki.cert_der.clone()], &pki.key_der, server_kx)
        .expect("server config");
    let (server, _) = tls::endpoint("127.0.0.1:0".parse().unwrap(), Some(cfg)).expect("server");
    let addr = server.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let wait = std::time::Duration::from_secs(20);
        if let Ok(Some(incoming)) = tokio::time::timeout(wait, server.accept()).await {
            let _ = tokio::time::timeout(wait, incoming).await;
        }
        server
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pin = ServerPin::Fingerprint(tls::cert_fingerprint(&pki.cert_der).unwrap());
    let (cfg, _) = tls::client_config_with(client, &key, &pin).expect("client config");
    let (endpoint, _) = tls::endpoint("127.0.0.1:0".parse().unwrap(), None).expect("client");
    let before = tls::server_key_exchanges();
    let result = match endpoint.connect_with(cfg, addr, "localhost") {
        Ok(connecting) => match connecting.await {
            Ok(conn) => {
                conn.close(0u32.into(), b"done");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    let server = accept.await.unwrap();
    server.close(0u32.into(), b"done");
    let after = tls::server_key_exchanges();
    (result, (after.0 - before.0, after.1 - before.1))
}

/// Each case in turn (the counters are process-wide).
#[tokio::test(flavor = "current_thread")]
async fn handshakes_negotiate_the_hybrid_group() {
    // The client `mdrop` runs, against the server `mdropd` runs: hybrid.
    let (r, used) = handshake(KeyExchange::Hybrid, tls::crypto_provider()).await;
    assert_eq!(r, Ok(()));
    assert_eq!(used, (1, 0), "X25519MLKEM768 negotiated");

    // A classical-only client still reaches a default server, with X25519:
    // the counters tell the groups apart.
    let (r, used) = handshake(KeyExchange::Hybrid, classical_only()).await;
    assert_eq!(r, Ok(()));
    assert_eq!(used, (0, 1), "X25519 negotiated");

    // With --require-pq-transport it cannot connect at all.
    let (r, used) = handshake(KeyExchange::HybridOnly, classical_only()).await;
    let err = r.expect_err("a classical-only client must be refused");
    assert!(
        err.to_lowercase().contains("handshake") || err.contains("40"),
        "{err}"
    );
    assert_eq!(used, (0, 0));
    let (r, used) = handshake(KeyExchange::HybridOnly, tls::crypto_provider()).await;
    assert_eq!(r, Ok(()));
    assert_eq!(used, (1, 0));
}

/// The real `mdropd --require-pq-transport`: `mdrop` works, a classical-only
/// client is refused during the handshake.
#[tokio::test(flavor = "current_thread")]
async fn mdropd_can_require_the_hybrid_group() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(&tmp.path().join("data"), &["--require-pq-transport"]);
    let admin = User::new(tmp.path(), "admin");
    admin.enroll(&server, server.invite.as_deref().unwrap(), "admin@operator");
    let who = admin.json(&["whoami"]);
    assert_eq!(who["id"], "admin@operator");

    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let pin = ServerPin::Fingerprint(server.fingerprint.clone());
    let (cfg, _) = tls::client_config_with(classical_only(), &key, &pin).unwrap();
    let (endpoint, _) = tls::endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let err = endpoint
        .connect_with(cfg, server.addr.parse().unwrap(), "localhost")
        .unwrap()
        .await
        .expect_err("a classical-only client must not connect");
    assert!(
        matches!(err, quinn::ConnectionError::ConnectionClosed(_)),
        "{err:?}"
    );
    // The server goes on serving everyone else.
    assert_eq!(admin.json(&["whoami"])["id"], "admin@operator");
}
