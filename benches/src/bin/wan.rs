//! `wan`: push and pull across emulated long and lossy links, next to raw
//! quinn through the same link.
//!
//! A userspace relay on loopback ([`matterdrop_benches::link`]) sits
//! between client and server with the issue's profiles: longfat (250 ms
//! RTT, 400 Mbit/s, no loss), nearshore (60 ms, 200 Mbit/s, 0.1 %),
//! offshore (250 ms, 100 Mbit/s, 0.5 %), bad-day (250 ms, 50 Mbit/s, 2 %,
//! 50 ms queue). For each profile and size it runs:
//!
//! - `push`: the real `mdrop push` by alice against the real release
//!   `mdropd`, through the link; wall clock of the process;
//! - `pull`: the real `mdrop pull` by bob of a packet of that size pushed
//!   beforehand on plain loopback; the pulled file's SHA-256 is checked;
//! - `push-warm`, `pull-warm`: the same transfer right after an untimed one
//!   of the smallest size through the same link, so that the sender
//!   remembers the path (the client in its home's `paths.json`, `mdropd`
//!   by the client's key and address) and resumes from it; each profile's
//!   link reaches the server from a loopback address of its own
//!   (127.0.0.10 and up), as another client site would, so the plain
//!   `push` and `pull` rows start cold;
//! - `raw-default`: one quinn stream of the same size, client to an
//!   in-process server, both with quinn's default `TransportConfig` (Cubic,
//!   1.25 MB stream window), read in order;
//! - `raw-tuned`: the same with quinn's BBR, windows of 2 × the path's
//!   bandwidth-delay product (8–64 MiB), `initial_rtt` set to the path's,
//!   read out of order (`read_chunk(_, false)`, which keeps quinn's
//!   1,024-gap limit out of the way);
//! - `raw-rate`: the same stream with the project's own transport
//!   configuration (`tls::transport_config`: its congestion controller
//!   `common::congestion::Rate` and its windows), read out of order and
//!   reassembled as `mdropd` reads (`net::Reassembler`).
//!
//! Goodput is payload bytes over wall time, handshake included, as a
//! fraction of the link rate. A transfer still running after `--cap-secs`
//! is stopped; its row then shows the bytes the link delivered in that
//! direction over the cap (wire bytes, so a slight overestimate) and is
//! marked `capped`. Peak RSS: `VmHWM` of the `mdrop` process, and of
//! `mdropd` reset (`/proc/PID/clear_refs`) before each transfer. Each row
//! also shows the packets the link lost at random and dropped at its full
//! queue (data direction), and datagrams the kernel dropped for full
//! socket buffers during the transfer (should be 0: the relay's own).
//!
//! ```text
//! cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/wan
//! ```
//!
//! Options: `--profiles longfat,nearshore,offshore,bad-day` (default all),
//! `--sizes-mib 64,1024` (default), `--kinds push,pull,push-warm,pull-warm,raw-default,raw-tuned,raw-rate`
//! (default all), `--cap-secs S` (default 120), `--dir PATH`, `--keep`,
//! `--seed N` (the links' loss pattern; default 1). Binaries from
//! `MDROP_BIN_DIR`, else beside this executable. A full run takes up to
//! profiles × sizes × kinds × cap (about an hour at the defaults when
//! everything is capped; much less once transfers run at link speed).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use matterdrop_benches::harness::{
    MODE_DISCARD, Mdrop, RawServer, Reading, Server, Team, bin_dir, binary, proc_kib, raw_copy,
    run_proc_capped, setup_team, sha256_file, write_payload,
};
use matterdrop_benches::link::{DirCount, Link, Profile, udp_rcvbuf_errors};
use matterdrop_common::tls;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const MATTER: &str = "2026-WAN-0001";
const TASK: &str = "document-review";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Push,
    Pull,
    PushWarm,
    PullWarm,
    RawDefault,
    RawTuned,
    RawRate,
}

impl Kind {
    const ALL: [Self; 7] = [
        Self::Push,
        Self::Pull,
        Self::PushWarm,
        Self::PullWarm,
        Self::RawDefault,
        Self::RawTuned,
        Self::RawRate,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
            Self::PushWarm => "push-warm",
            Self::PullWarm => "pull-warm",
            Self::RawDefault => "raw-default",
            Self::RawTuned => "raw-tuned",
            Self::RawRate => "raw-rate",
        }
    }

    /// The transfer a warm kind repeats (itself for the others).
    fn cold(self) -> Self {
        match self {
            Self::PushWarm => Self::Push,
            Self::PullWarm => Self::Pull,
            k => k,
        }
    }
}

struct Options {
    profiles: Vec<Profile>,
    sizes_mib: Vec<u64>,
    kinds: Vec<Kind>,
    cap: Duration,
    dir: Option<PathBuf>,
    keep: bool,
    seed: u64,
}

fn list<T>(v: &str, f: impl Fn(&str) -> Option<T>, what: &str) -> Result<Vec<T>> {
    v.split(',')
        .map(|x| f(x.trim()).ok_or_else(|| anyhow!("unknown {what} {x:?}")))
        .collect()
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        profiles: Profile::ALL.to_vec(),
        sizes_mib: vec![64, 1024],
        kinds: Kind::ALL.to_vec(),
        cap: Duration::from_secs(120),
        dir: None,
        keep: false,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--profiles" => o.profiles = list(&val()?, Profile::by_name, "profile")?,
            "--sizes-mib" => o.sizes_mib = list(&val()?, |x| x.parse().ok(), "size")?,
            "--kinds" => {
                o.kinds = list(
                    &val()?,
                    |x| Kind::ALL.into_iter().find(|k| k.name() == x),
                    "kind",
                )?;
            }
            "--cap-secs" => o.cap = Duration::from_secs(val()?.parse()?),
            "--dir" => o.dir = Some(PathBuf::from(val()?)),
            "--keep" => o.keep = true,
            "--seed" => o.seed = val()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: wan [--profiles a,b] [--sizes-mib 64,1024] [--kinds push,pull,push-warm,pull-warm,raw-default,raw-tuned,raw-rate] [--cap-secs S] [--dir PATH] [--keep] [--seed N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (try --help)"),
        }
    }
    ensure!(o.sizes_mib.iter().all(|&s| s > 0), "sizes must be positive");
    Ok(o)
}

/// quinn tuned by hand for `p`: BBR, windows of 2 × BDP, the path's RTT as
/// the initial estimate.
fn tuned_transport(p: &Profile) -> quinn::TransportConfig {
    let window = (2 * p.bdp()).clamp(8 * MIB, 64 * MIB);
    let mut t = quinn::TransportConfig::default();
    let w = quinn::VarInt::from_u64(window).unwrap_or(quinn::VarInt::MAX);
    t.stream_receive_window(w);
    t.receive_window(w);
    t.send_window(window);
    t.initial_rtt(p.rtt);
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    t
}

/// Points a home's `server.json` at `addr`.
fn point_home_at(home: &Path, addr: SocketAddr) -> Result<()> {
    let path = home.join("server.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&path)?)?;
    v["server"] = Value::String(addr.to_string());
    fs::write(&path, serde_json::to_vec_pretty(&v)?)?;
    Ok(())
}

/// Resets a process's peak RSS (`VmHWM`) to its current RSS.
fn reset_peak(pid: u32) {
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

struct Row {
    profile: Profile,
    size: u64,
    kind: Kind,
    /// Payload bytes (or, when capped, link bytes) per second.
    rate: f64,
    capped: bool,
    wall: Duration,
    data: DirCount,
    kernel_drops: u64,
    client_kib: Option<u64>,
    server_kib: Option<u64>,
    /// The server's RSS when the transfer began (what earlier ones left).
    server_before_kib: Option<u64>,
    note: String,
}

impl Row {
    fn fraction(&self) -> f64 {
        self.rate / self.profile.bytes_per_sec()
    }
}

/// The data direction's counters between two snapshots.
fn delta(a: DirCount, b: DirCount) -> DirCount {
    DirCount {
        packets: b.packets - a.packets,
        bytes: b.bytes - a.bytes,
        lost: b.lost - a.lost,
        queue_drops: b.queue_drops - a.queue_drops,
        cut_drops: b.cut_drops - a.cut_drops,
    }
}

struct Bench<'a> {
    opts: &'a Options,
    md: Mdrop,
    server: Server,
    team: Team,
    root: PathBuf,
    payloads: Vec<(u64, PathBuf, [u8; 32])>,
    /// Packet ids to pull, by size.
    packets: Vec<(u64, String)>,
    rt: tokio::runtime::Runtime,
    raw_buf: Vec<u8>,
    rows: Vec<Row>,
}

impl Bench<'_> {
    fn server_addr(&self) -> Result<SocketAddr> {
        self.server.addr.parse().context("mdropd address")
    }

    fn product(&mut self, p: Profile, size: u64, kind: Kind) -> Result<Row> {
        // Each profile reaches the server from an address of its own, as
        // another client site would (the server remembers paths by key
        // and address).
        let index = Profile::ALL
            .iter()
            .position(|q| q.name == p.name)
            .unwrap_or(0);
        let source = std::net::Ipv4Addr::new(127, 0, 0, 10 + index as u8);
        let link = Link::start_from(self.server_addr()?, p, self.opts.seed, source)?;
        if kind != kind.cold() {
            // Warm: the same transfer of the smallest size first, untimed,
            // through the same link, so the sender remembers the path.
            let prime = self
                .payloads
                .iter()
                .map(|(s, _, _)| *s)
                .min()
                .unwrap_or(size);
            eprintln!("  (priming with {} MiB)", prime / MIB);
            let row = self.timed(&link, p, prime, kind.cold())?;
            std::thread::sleep(Duration::from_millis(500));
            ensure!(!row.capped, "the priming transfer did not finish");
        }
        let mut row = self.timed(&link, p, size, kind.cold())?;
        row.kind = kind;
        Ok(row)
    }

    /// One `push` or `pull` through `link`, timed.
    fn timed(&mut self, link: &Link, p: Profile, size: u64, kind: Kind) -> Result<Row> {
        let home = if kind == Kind::Push {
            &self.team.alice
        } else {
            &self.team.bob
        };
        point_home_at(home, link.addr())?;
        let out_dir = self.root.join("pulled");
        let _ = fs::remove_dir_all(&out_dir);
        fs::create_dir_all(&out_dir)?;
        let (payload, sha) = self
            .payloads
            .iter()
            .find(|(s, _, _)| *s == size)
            .map(|(_, p, h)| (p.clone(), *h))
            .context("payload")?;
        let payload_s = payload.to_str().context("non-UTF-8 path")?.to_owned();
        let out_s = out_dir.to_str().context("non-UTF-8 path")?.to_owned();
        let args: Vec<String> = match kind {
            Kind::Push => ["push", MATTER, &payload_s, "--task", TASK]
                .map(str::to_owned)
                .to_vec(),
            _ => {
                let id = self
                    .packets
                    .iter()
                    .find(|(s, _)| *s == size)
                    .map(|(_, id)| id.clone())
                    .context("no packet to pull")?;
                vec!["pull".into(), id, "--out".into(), out_s]
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server_before_kib = proc_kib(self.server.pid, "VmRSS:");
        reset_peak(self.server.pid);
        let kernel0 = udp_rcvbuf_errors().unwrap_or(0);
        let c0 = link.counts();
        let label = self
            .md
            .label(&format!("{}-{}-{}", p.name, kind.name(), size / MIB));
        let proc = run_proc_capped(
            self.md.cmd(home, &args),
            &self.root.join("logs"),
            &label,
            self.opts.cap,
            None,
        )?;
        let c1 = link.counts();
        let data = if kind == Kind::Push {
            delta(c0.0, c1.0)
        } else {
            delta(c0.1, c1.1)
        };
        let server_kib = proc_kib(self.server.pid, "VmHWM:");
        let mut note = String::new();
        let rate = if proc.timed_out {
            data.bytes as f64 / proc.wall.as_secs_f64()
        } else {
            let v = proc.json(&format!("mdrop {}", args.join(" ")))?;
            if kind == Kind::Pull {
                let _ = v;
                let file = out_dir.join(payload.file_name().context("payload name")?);
                let (got, n) = sha256_file(&file)?;
                ensure!(
                    got == sha && n == size,
                    "pulled file differs from the payload"
                );
                note.push_str("sha256 ok");
            }
            size as f64 / proc.wall.as_secs_f64()
        };
        let _ = fs::remove_dir_all(&out_dir);
        Ok(Row {
            profile: p,
            size,
            kind,
            rate,
            capped: proc.timed_out,
            wall: proc.wall,
            data,
            kernel_drops: udp_rcvbuf_errors().unwrap_or(0) - kernel0,
            client_kib: Some(proc.peak_kib),
            server_kib,
            server_before_kib,
            note,
        })
    }

    fn raw(&mut self, p: Profile, size: u64, kind: Kind) -> Result<Row> {
        let (transport, reading) = match kind {
            Kind::RawTuned => (tuned_transport(&p), Reading::Unordered),
            Kind::RawRate => (tls::transport_config(), Reading::Reassembled),
            _ => (quinn::TransportConfig::default(), Reading::Ordered),
        };
        let transport = Arc::new(transport);
        let raw = RawServer::start_with(
            self.root.join("raw-sink.bin"),
            Some(transport.clone()),
            reading,
        )?;
        let link = Link::start(raw.addr, p, self.opts.seed)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let (mut cfg, _) = tls::client_config(&key, &raw.pin)?;
        cfg.transport_config(transport);
        let kernel0 = udp_rcvbuf_errors().unwrap_or(0);
        let c0 = link.counts();
        let start = std::time::Instant::now();
        let cap = self.opts.cap;
        let addr = link.addr();
        let buf = &self.raw_buf;
        let result = self.rt.block_on(async move {
            tokio::time::timeout(cap, raw_copy(cfg, addr, MODE_DISCARD, size, buf)).await
        });
        let wall = start.elapsed();
        let c1 = link.counts();
        let data = delta(c0.0, c1.0);
        let (rate, capped, note) = match result {
            Ok(Ok(d)) => (size as f64 / d.as_secs_f64(), false, String::new()),
            Ok(Err(e)) => (
                data.bytes as f64 / wall.as_secs_f64(),
                true,
                format!("failed: {e:#}"),
            ),
            Err(_) => (data.bytes as f64 / wall.as_secs_f64(), true, String::new()),
        };
        drop(link);
        drop(raw);
        Ok(Row {
            profile: p,
            size,
            kind,
            rate,
            capped,
            wall,
            data,
            kernel_drops: udp_rcvbuf_errors().unwrap_or(0) - kernel0,
            client_kib: None,
            server_kib: None,
            server_before_kib: None,
            note,
        })
    }
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    tls::install_crypto_provider();
    let bins = bin_dir()?;
    let mdrop_bin = binary(&bins, "mdrop")?;
    let mdropd_bin = binary(&bins, "mdropd")?;
    let tmp = {
        let mut b = tempfile::Builder::new();
        b.prefix("mdrop-wan-");
        match &opts.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        }
    };
    let root = tmp.path().to_path_buf();
    let logs = root.join("logs");
    fs::create_dir(&logs)?;
    let mut payloads = Vec::new();
    for &s in &opts.sizes_mib {
        let path = root.join(format!("payload-{s}.bin"));
        eprintln!("writing {s} MiB of random data…");
        let sha = write_payload(&path, s * MIB)?;
        payloads.push((s * MIB, path, sha));
    }
    eprintln!("starting mdropd and enrolling admin, alice@firm-a, bob@lpo-1…");
    let server = Server::start(&mdropd_bin, &root.join("data"), &root.join("mdropd.log"))?;
    let md = Mdrop {
        bin: mdrop_bin,
        logs: logs.clone(),
        seq: std::cell::Cell::new(0),
        classic: false,
    };
    let team = setup_team(&md, &server, &root, MATTER, TASK)?;
    // The packets bob pulls, pushed on plain loopback.
    let mut packets = Vec::new();
    if opts.kinds.iter().any(|k| k.cold() == Kind::Pull) {
        for (size, path, _) in &payloads {
            let p = path.to_str().context("non-UTF-8 path")?;
            let v = md.json(&team.alice, &["push", MATTER, p, "--task", TASK])?;
            packets.push((*size, v["id"].as_str().context("push: id")?.to_owned()));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut bench = Bench {
        opts: &opts,
        md,
        server,
        team,
        root: root.clone(),
        payloads,
        packets,
        rt,
        raw_buf: vec![0x5a; matterdrop_benches::harness::BUF],
        rows: Vec::new(),
    };
    let started = std::time::Instant::now();
    for &p in &opts.profiles {
        for &s in &opts.sizes_mib {
            for &k in &opts.kinds {
                eprintln!("{} {s} MiB {}…", p.describe(), k.name());
                // Let the previous transfer's queues and timers drain.
                std::thread::sleep(Duration::from_millis(500));
                let row = match k {
                    Kind::Push | Kind::Pull | Kind::PushWarm | Kind::PullWarm => {
                        bench.product(p, s * MIB, k)?
                    }
                    Kind::RawDefault | Kind::RawTuned | Kind::RawRate => {
                        bench.raw(p, s * MIB, k)?
                    }
                };
                eprintln!(
                    "  {:.3} of the link ({:.1} MB/s){} in {:.1} s",
                    row.fraction(),
                    row.rate / 1e6,
                    if row.capped { ", capped" } else { "" },
                    row.wall.as_secs_f64()
                );
                bench.rows.push(row);
            }
        }
    }
    report(&bench.rows, &opts, started.elapsed());
    let addr = bench.server_addr()?;
    for home in [&bench.team.alice, &bench.team.bob] {
        point_home_at(home, addr)?;
    }
    if opts.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    Ok(())
}

fn report(rows: &[Row], opts: &Options, took: Duration) {
    println!(
        "wan: goodput as a fraction of the link rate (payload bytes over wall time, handshake included); cap {} s; took {:.0} s",
        opts.cap.as_secs(),
        took.as_secs_f64()
    );
    println!(
        "| profile | size | kind | fraction of link | MB/s | time s | lost / queue-dropped packets | peak RSS client / server MiB (server at start) | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let mib =
            |k: Option<u64>| k.map_or("–".to_owned(), |k| format!("{:.0}", k as f64 / 1024.0));
        let mut note = r.note.clone();
        if r.capped {
            note = format!(
                "capped: link bytes / time{}{note}",
                if note.is_empty() { "" } else { "; " }
            );
        }
        if r.kernel_drops > 0 {
            note.push_str(&format!("; {} kernel socket drops", r.kernel_drops));
        }
        println!(
            "| {} | {} MiB | {} | {}{:.3} | {:.1} | {:.1} | {} / {} | {} / {}{} | {} |",
            r.profile.name,
            r.size / MIB,
            r.kind.name(),
            if r.capped { "≈" } else { "" },
            r.fraction(),
            r.rate / 1e6,
            r.wall.as_secs_f64(),
            r.data.lost,
            r.data.queue_drops,
            mib(r.client_kib),
            mib(r.server_kib),
            r.server_before_kib
                .map_or(String::new(), |k| format!(" ({})", mib(Some(k)))),
            note
        );
    }
    let profiles: Vec<&str> = opts.profiles.iter().map(|p| p.name).collect();
    let sizes: Vec<String> = opts.sizes_mib.iter().map(u64::to_string).collect();
    let kinds: Vec<&str> = opts.kinds.iter().map(|k| k.name()).collect();
    println!(
        "reproduce: cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/wan --profiles {} --sizes-mib {} --kinds {} --cap-secs {} --seed {}",
        profiles.join(","),
        sizes.join(","),
        kinds.join(","),
        opts.cap.as_secs(),
        opts.seed
    );
}
