//! The transport: QUIC handshakes negotiate the hybrid key exchange
//! `X25519MLKEM768`, and a server started with `--require-pq-transport`
//! refuses a client that offers only classical groups; a burst of losses
//! that leaves thousands of holes in one stream does not close the
//! connection.

use std::sync::Arc;

use matterdrop_common::net::{HoldLimit, Reassembler};
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

/// Sends `SIZE` bytes over one stream through a link that, once a quarter
/// has arrived, drops every other packet for a while: thousands of holes
/// in the stream's 24 MiB window. The receiver reads in order (`ordered`)
/// or through the [`Reassembler`] both ends use for parts; `hold` is the
/// receive window instead of the one for the path. Returns the
/// bytes received and their SHA-256, the most pieces and bytes the
/// reassembler held at once, and the link's burst drops; or the error that
/// ended it.
async fn through_a_burst_of_holes(ordered: bool, hold: Option<u64>) -> Result<Burst, String> {
    use matterdrop_benches::link::{Link, Profile};
    use sha2::{Digest, Sha256};
    use std::time::Duration;

    const SIZE: u64 = 64 << 20;
    let pki = tls::generate_server_pki(&["localhost".to_owned()]).expect("pki");
    let cfg = tls::server_config(
        vec![pki.cert_der.clone()],
        &pki.key_der,
        KeyExchange::Hybrid,
    )
    .expect("server config");
    let (server, _) = tls::endpoint("127.0.0.1:0".parse().unwrap(), Some(cfg)).expect("server");
    let profile = Profile {
        name: "holes",
        rtt: Duration::from_millis(100),
        rate_bps: 400_000_000,
        loss: 0.0,
        queue: Duration::from_millis(120),
    };
    let link = Arc::new(Link::start(server.local_addr().unwrap(), profile, 1).expect("link"));
    let burst = link.clone();
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.ok_or("no connection")?.await;
        let conn = conn.map_err(|e| e.to_string())?;
        // (From the server's initial 2 MiB: credit once given is not
        // taken back.)
        let windows = match hold {
            Some(w) => {
                conn.set_receive_window(quinn::VarInt::from_u64(w).unwrap());
                w
            }
            None => tls::fit_windows(&conn).0,
        };
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let mut hash = Sha256::new();
        let mut got = 0u64;
        let (mut most, mut most_bytes) = (0, 0);
        let mut holes = false;
        let limit = HoldLimit::for_connection(&conn, windows);
        let mut reader = Reassembler::new(0, limit.clone());
        loop {
            let piece = if ordered {
                recv.read_chunk(1 << 20, true)
                    .await
                    .map(|c| c.map(|c| c.bytes))
                    .map_err(|e| format!("{e:?}"))?
            } else {
                let b = reader.read_batch(&mut recv, 1 << 20, None).await;
                most = most.max(reader.held_pieces());
                most_bytes = most_bytes.max(limit.held());
                b.map_err(|e| e.to_string())?
            };
            let Some(piece) = piece else { break };
            got += piece.len() as u64;
            hash.update(&piece);
            if !holes && got >= SIZE / 4 {
                holes = true;
                burst.holes_for(Duration::from_millis(600));
            }
        }
        send.write_all(&got.to_le_bytes())
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        Ok::<_, String>((got, <[u8; 32]>::from(hash.finalize()), most, most_bytes))
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pin = ServerPin::Fingerprint(tls::cert_fingerprint(&pki.cert_der).unwrap());
    let (cfg, _) = tls::client_config(&key, &pin).expect("client config");
    let (endpoint, _) = tls::endpoint("127.0.0.1:0".parse().unwrap(), None).expect("client");
    let sender = async {
        let conn = endpoint
            .connect_with(cfg, link.addr(), "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        tls::fit_windows(&conn);
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + (i >> 11)) as u8).collect();
        for _ in 0..SIZE >> 20 {
            send.write_all(&block).await.map_err(|e| e.to_string())?;
        }
        send.finish().map_err(|e| e.to_string())?;
        let count = recv.read_to_end(8).await.map_err(|e| e.to_string())?;
        conn.close(0u32.into(), b"done");
        Ok::<_, String>(count)
    };
    let sent = tokio::time::timeout(Duration::from_secs(90), sender)
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r);
    let received = tokio::time::timeout(Duration::from_secs(10), receiver).await;
    let drops = link.counts().0.cut_drops;
    let (got, hash, most, most_bytes) = match received {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("receiver did not finish; sender: {sent:?}")),
    };
    assert_eq!(sent?, got.to_le_bytes());
    Ok(Burst {
        got,
        hash,
        most,
        most_bytes,
        drops,
    })
}

#[derive(Debug)]
#[allow(dead_code)] // printed
struct Burst {
    got: u64,
    hash: [u8; 32],
    most: usize,
    most_bytes: usize,
    drops: u64,
}

/// Read in order, a burst of holes closes the connection with quinn's
/// "too many gaps in stream buffer" (more than 1,024 pieces waiting in one
/// stream); read out of order and reassembled, every byte arrives, in
/// order, on the same connection. What the reassembler holds stays
/// within the connection's receive window (which shrinks by it), also
/// when that window is smaller than the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_holes_is_reassembled_instead_of_closing_the_connection() {
    use sha2::{Digest, Sha256};
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + (i >> 11)) as u8).collect();
    let mut want = Sha256::new();
    for _ in 0..64 {
        want.update(&block);
    }
    let want: [u8; 32] = want.finalize().into();

    let ordered = through_a_burst_of_holes(true, None).await;
    eprintln!("ordered: {ordered:?}");
    let unordered = through_a_burst_of_holes(false, None).await;
    eprintln!("unordered: {unordered:?}");
    let small = through_a_burst_of_holes(false, Some(4 << 20)).await;
    eprintln!("window of 4 MiB: {small:?}");
    let err = ordered.expect_err("in order, the burst's holes close the connection");
    assert!(err.contains("too many gaps"), "{err}");
    let r = unordered.expect("reassembled");
    assert_eq!((r.got, r.hash), (64 << 20, want));
    assert!(r.drops > 2048, "the burst dropped only {} packets", r.drops);
    assert!(
        r.most > 1024,
        "the reassembler never held more pieces than quinn allows: {}",
        r.most
    );
    assert!(r.most_bytes <= 32 << 20, "held {} bytes", r.most_bytes);
    let r = small.expect("reassembled within 4 MiB");
    assert_eq!((r.got, r.hash), (64 << 20, want));
    assert!(r.drops > 1024, "the burst dropped only {} packets", r.drops);
    // A step (a sixteenth of the window) of slack.
    assert!(
        r.most_bytes <= (4 << 20) + (4 << 20) / 16,
        "held {} bytes at most with a window of 4 MiB",
        r.most_bytes
    );
}
