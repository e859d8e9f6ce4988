//! `tls-providers`: what the post-quantum key exchange costs on the
//! transport, on loopback.
//!
//! rustls offers the hybrid group `X25519MLKEM768` only with its aws-lc-rs
//! provider; Matterdrop used ring before. This measures, in one run and
//! interleaved (round 1 of every variant, then round 2, …):
//!
//! - `ring X25519`: rustls with ring, X25519 (what Matterdrop ran before);
//! - `aws-lc-rs X25519`: rustls with aws-lc-rs, X25519 only;
//! - `aws-lc-rs X25519MLKEM768`: what `mdrop` and `mdropd` run now
//!   (`tls::crypto_provider`).
//!
//! Each variant's server and client are the project's own configurations
//! (`tls::server_config_with`, `tls::client_config_with`: TLS 1.3, mutual
//! Ed25519 authentication, the same QUIC transport settings) with only the
//! provider changed. Per variant and round: `--handshakes H` sequential
//! fresh connections (median handshake time), then `--size-mib N` copied
//! over one bidirectional stream from memory to a server that discards it
//! (MB/s = 10^6 bytes/s). It prints the medians, each variant's ratio to
//! `ring X25519` and the command that reproduces them:
//!
//! ```text
//! cargo build --release -p matterdrop-benches && target/release/tls-providers --size-mib 1024 --rounds 5
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use matterdrop_common::tls;
use rustls::crypto::CryptoProvider;

const CHUNK: usize = 1 << 20;

struct Variant {
    name: &'static str,
    provider: Arc<CryptoProvider>,
}

fn variants() -> Vec<Variant> {
    let mut ring = rustls::crypto::ring::default_provider();
    ring.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let mut aws = rustls::crypto::aws_lc_rs::default_provider();
    aws.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    vec![
        Variant {
            name: "ring X25519",
            provider: Arc::new(ring),
        },
        Variant {
            name: "aws-lc-rs X25519",
            provider: Arc::new(aws),
        },
        Variant {
            name: "aws-lc-rs X25519MLKEM768",
            provider: tls::crypto_provider(),
        },
    ]
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| name.to_owned()),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A discarding server for one variant, on the current runtime.
async fn serve(provider: Arc<CryptoProvider>) -> Result<(quinn::Endpoint, tls::ServerPin)> {
    let pki = tls::generate_server_pki(&["localhost".to_owned()])?;
    let pin = tls::ServerPin::Fingerprint(tls::cert_fingerprint(&pki.cert_der)?);
    let cfg = tls::server_config_with(provider, vec![pki.cert_der.clone()], &pki.key_der)?;
    let (ep, _) = tls::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), Some(cfg))?;
    let server = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let mut n = 0u64;
                    while let Ok(Some(c)) = recv.read_chunk(CHUNK, true).await {
                        n += c.bytes.len() as u64;
                    }
                    let _ = send.write_all(&n.to_be_bytes()).await;
                    let _ = send.finish();
                }
            });
        }
    });
    Ok((ep, pin))
}

async fn round(v: &Variant, handshakes: u64, bytes: u64) -> Result<(f64, f64)> {
    let (server, pin) = serve(v.provider.clone()).await?;
    let addr = server.local_addr()?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let (cfg, _) = tls::client_config_with(v.provider.clone(), &key, &pin)?;
    let (client, _) = tls::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), None)?;
    let mut times = Vec::new();
    for _ in 0..handshakes {
        let t = Instant::now();
        let conn = client.connect_with(cfg.clone(), addr, "localhost")?.await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        conn.close(0u32.into(), b"done");
    }
    let conn = client.connect_with(cfg, addr, "localhost")?.await?;
    let buf = vec![0x5au8; CHUNK];
    let t = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64))?;
        send.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let mut got = [0u8; 8];
    recv.read_exact(&mut got).await?;
    let secs = t.elapsed().as_secs_f64();
    if u64::from_be_bytes(got) != bytes {
        bail!("{}: the server counted other bytes", v.name);
    }
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    Ok((median(&mut times), bytes as f64 / secs / 1e6))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib = arg(&args, "--size-mib", 1024)?;
    let rounds = arg(&args, "--rounds", 5)?;
    let handshakes = arg(&args, "--handshakes", 50)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let variants = variants();
    let mut hs: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut mbps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    rt.block_on(async {
        for r in 0..rounds {
            for (i, v) in variants.iter().enumerate() {
                let (h, m) = tokio::time::timeout(
                    Duration::from_secs(600),
                    round(v, handshakes, size_mib << 20),
                )
                .await
                .context("round timed out")??;
                eprintln!(
                    "round {}: {:<26} handshake {h:.2} ms, {m:.0} MB/s",
                    r + 1,
                    v.name
                );
                hs[i].push(h);
                mbps[i].push(m);
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    let base_mbps = median(&mut mbps[0].clone());
    let base_hs = median(&mut hs[0].clone());
    println!(
        "tls-providers: {size_mib} MiB per transfer, {handshakes} handshakes per round, {rounds} rounds, loopback"
    );
    println!(
        "| provider, key exchange | handshake ms (median) | MB/s (median, range) | throughput vs ring | handshake vs ring |"
    );
    println!("|---|---|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        let m = median(&mut mbps[i]);
        let h = median(&mut hs[i]);
        let lo = mbps[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = mbps[i].iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {h:.2} | {m:.0} ({lo:.0}–{hi:.0}) | {:.3} | {:.2} |",
            v.name,
            m / base_mbps,
            h / base_hs
        );
    }
    println!(
        "reproduce: cargo build --release -p matterdrop-benches && target/release/tls-providers --size-mib {size_mib} --rounds {rounds} --handshakes {handshakes}"
    );
    Ok(())
}
