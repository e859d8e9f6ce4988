//! `fairness`: two flows through one emulated bottleneck, to see what the
//! project's congestion controller takes from other traffic.
//!
//! Both flows are raw quinn streams from two clients to one in-process
//! server (the project's transport configuration on the server, so the
//! receive windows are the same for both) through a
//! [`matterdrop_benches::link::SharedLink`]: one rate, one tail-drop queue
//! and one loss process per direction, shared by both flows, with the
//! issue's profiles. A pair names the two senders' controllers:
//!
//! - `rate`: `common::congestion::Rate` with the project's transport (what
//!   `mdrop` and `mdropd` send with);
//! - `cubic`: quinn's Cubic with the same windows (the usual other flow:
//!   TCP and QUIC stacks default to Cubic or Reno);
//! - `bbr`: quinn's BBR with the same windows.
//!
//! The first flow starts alone; the second joins `--stagger-secs` later.
//! Each flow's share is the bytes the link delivered for it between
//! `--warmup-secs` and `--secs` over what the link could carry then;
//! Jain's index is (a + b)² / (2 (a² + b²)): 1.0 is an even split, 0.5 is
//! one flow taking everything.
//!
//! ```text
//! cargo build --release -p matterdrop-benches && target/release/fairness
//! ```
//!
//! Options: `--profiles longfat,nearshore,offshore,bad-day` (default all),
//! `--pairs rate+cubic,cubic+rate,rate+rate,cubic+cubic` (default),
//! `--secs S` (default 45), `--warmup-secs S` (default 15),
//! `--stagger-secs S` (default 5), `--seed N` (default 1). A run takes
//! profiles × pairs × secs (12 minutes at the defaults).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail, ensure};
use matterdrop_benches::harness::{MODE_DISCARD, RawServer, Reading, raw_copy};
use matterdrop_benches::link::{Profile, SharedLink};
use matterdrop_common::tls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cc {
    Rate,
    Cubic,
    Bbr,
}

impl Cc {
    fn by_name(s: &str) -> Option<Self> {
        match s {
            "rate" => Some(Self::Rate),
            "cubic" => Some(Self::Cubic),
            "bbr" => Some(Self::Bbr),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Cubic => "cubic",
            Self::Bbr => "bbr",
        }
    }

    fn transport(self) -> quinn::TransportConfig {
        let mut t = tls::transport_config();
        match self {
            Self::Rate => {}
            Self::Cubic => {
                t.congestion_controller_factory(
                    Arc::new(quinn::congestion::CubicConfig::default()),
                );
            }
            Self::Bbr => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
            }
        }
        t
    }
}

#[derive(Debug)]
struct Options {
    profiles: Vec<Profile>,
    pairs: Vec<(Cc, Cc)>,
    secs: Duration,
    warmup: Duration,
    stagger: Duration,
    seed: u64,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        profiles: Profile::ALL.to_vec(),
        pairs: vec![
            (Cc::Rate, Cc::Cubic),
            (Cc::Cubic, Cc::Rate),
            (Cc::Rate, Cc::Rate),
            (Cc::Cubic, Cc::Cubic),
        ],
        secs: Duration::from_secs(45),
        warmup: Duration::from_secs(15),
        stagger: Duration::from_secs(5),
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        let secs = |v: String| -> Result<Duration> { Ok(Duration::from_secs(v.parse()?)) };
        match a.as_str() {
            "--profiles" => {
                o.profiles = val()?
                    .split(',')
                    .map(|n| Profile::by_name(n).ok_or_else(|| anyhow!("unknown profile {n:?}")))
                    .collect::<Result<_>>()?;
            }
            "--pairs" => {
                o.pairs = val()?
                    .split(',')
                    .map(|p| {
                        let (a, b) = p
                            .split_once('+')
                            .ok_or_else(|| anyhow!("a pair is A+B: {p:?}"))?;
                        match (Cc::by_name(a), Cc::by_name(b)) {
                            (Some(a), Some(b)) => Ok((a, b)),
                            _ => bail!("unknown controller in {p:?} (rate, cubic, bbr)"),
                        }
                    })
                    .collect::<Result<_>>()?;
            }
            "--secs" => o.secs = secs(val()?)?,
            "--warmup-secs" => o.warmup = secs(val()?)?,
            "--stagger-secs" => o.stagger = secs(val()?)?,
            "--seed" => o.seed = val()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "fairness [--profiles P,…] [--pairs A+B,…] [--secs S] [--warmup-secs S] [--stagger-secs S] [--seed N]"
                );
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?} (try --help)"),
        }
    }
    ensure!(
        o.stagger < o.warmup && o.warmup < o.secs,
        "need stagger < warmup < secs"
    );
    Ok(o)
}

struct Row {
    profile: Profile,
    pair: (Cc, Cc),
    /// Each flow's share of what the link could carry in the window.
    shares: [f64; 2],
    lost: u64,
    queue_drops: u64,
}

fn run(
    rt: &tokio::runtime::Runtime,
    o: &Options,
    p: Profile,
    pair: (Cc, Cc),
    buf: &[u8],
) -> Result<Row> {
    let dir = tempfile::Builder::new().prefix("mdrop-fair-").tempdir()?;
    let server = RawServer::start_with(
        dir.path().join("sink.bin"),
        Some(Arc::new(tls::transport_config())),
        Reading::Reassembled,
    )?;
    let link = SharedLink::start(server.addr, p, o.seed, 2)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let client = |cc: Cc| -> Result<quinn::ClientConfig> {
        let (mut cfg, _) = tls::client_config(&key, &server.pin)?;
        cfg.transport_config(Arc::new(cc.transport()));
        Ok(cfg)
    };
    let (a, b) = (client(pair.0)?, client(pair.1)?);
    let (addr_a, addr_b) = (link.addr(0), link.addr(1));
    // Far more than either flow can move in the run; the run is stopped
    // by time.
    let endless = 1u64 << 40;
    let start = Instant::now();
    let stagger = o.stagger;
    let flows = async move {
        let first = raw_copy(a, addr_a, MODE_DISCARD, endless, buf);
        let second = async move {
            tokio::time::sleep(stagger).await;
            raw_copy(b, addr_b, MODE_DISCARD, endless, buf).await
        };
        tokio::try_join!(first, second)
    };
    let sample = async {
        tokio::time::sleep_until((start + o.warmup).into()).await;
        let before = (link.up_bytes(), link.counts().0);
        tokio::time::sleep_until((start + o.secs).into()).await;
        (before, (link.up_bytes(), link.counts().0))
    };
    let ((b0, c0), (b1, c1)) = rt.block_on(async {
        tokio::select! {
            r = flows => Err(match r {
                Ok(_) => anyhow!("a flow ended before the run did"),
                Err(e) => e.context("a flow failed"),
            }),
            s = sample => Ok(s),
        }
    })?;
    let window = (o.secs - o.warmup).as_secs_f64() * p.bytes_per_sec();
    let share = |i: usize| (b1[i] - b0[i]) as f64 / window;
    drop(link);
    drop(server);
    Ok(Row {
        profile: p,
        pair,
        shares: [share(0), share(1)],
        lost: c1.lost - c0.lost,
        queue_drops: c1.queue_drops - c0.queue_drops,
    })
}

fn main() -> Result<()> {
    let o = parse_args()?;
    tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let buf = vec![0x5au8; 1 << 20];
    let began = Instant::now();
    let mut rows = Vec::new();
    for &p in &o.profiles {
        for &pair in &o.pairs {
            eprintln!(
                "{}: {} first, {} joins after {} s…",
                p.describe(),
                pair.0.name(),
                pair.1.name(),
                o.stagger.as_secs()
            );
            let r = run(&rt, &o, p, pair, &buf)?;
            eprintln!("  shares {:.3} / {:.3}", r.shares[0], r.shares[1]);
            rows.push(r);
        }
    }
    println!(
        "fairness: two flows through one bottleneck; shares of the link from {} s to {} s (the second flow joined at {} s); took {} s",
        o.warmup.as_secs(),
        o.secs.as_secs(),
        o.stagger.as_secs(),
        began.elapsed().as_secs()
    );
    println!(
        "| profile | first flow | second flow | first's share | second's share | link used | Jain's index | lost / queue-dropped packets (data direction) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let [a, b] = r.shares;
        let jain = if a + b > 0.0 {
            (a + b).powi(2) / (2.0 * (a * a + b * b))
        } else {
            0.0
        };
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} / {} |",
            r.profile.name,
            r.pair.0.name(),
            r.pair.1.name(),
            a,
            b,
            a + b,
            jain,
            r.lost,
            r.queue_drops
        );
    }
    let profiles: Vec<&str> = o.profiles.iter().map(|p| p.name).collect();
    let pairs: Vec<String> = o
        .pairs
        .iter()
        .map(|(a, b)| format!("{}+{}", a.name(), b.name()))
        .collect();
    println!(
        "reproduce: cargo build --release -p matterdrop-benches && target/release/fairness --profiles {} --pairs {} --secs {} --warmup-secs {} --stagger-secs {} --seed {}",
        profiles.join(","),
        pairs.join(","),
        o.secs.as_secs(),
        o.warmup.as_secs(),
        o.stagger.as_secs(),
        o.seed
    );
    Ok(())
}
