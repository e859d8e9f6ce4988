//! `transfer`: push and pull throughput against the QUIC transport ceiling,
//! on loopback, with peak memory of client and server.
//!
//! One run, interleaved so that drift (thermal, page cache, neighbours)
//! hits every figure alike. Each round does, in this order:
//!
//! - `raw`: copies N bytes over one bidirectional stream of a raw quinn
//!   connection built with the project's own `tls::server_config` /
//!   `tls::client_config` (same transport configuration, same TLS, same
//!   cipher suites), from memory to a sink that discards them. The server
//!   side runs on its own thread and runtime, reads with `read_chunk` like
//!   `mdropd` does. This is the transport ceiling every ratio refers to.
//! - `raw+fsync`: the same, but the server appends to a file through a
//!   1 MiB `BufWriter` on a blocking thread and fsyncs it before answering
//!   (what `mdropd` does with an upload, minus the SHA-256).
//! - `push`: the real `mdrop --home alice --json push MATTER FILE --task
//!   document-review` against the real release `mdropd` (which stores the
//!   blob with fsync, as in production); wall clock of the process.
//! - `pull`: the real `mdrop --home bob --json pull ID --out DIR`; wall
//!   clock of the process; the pulled file's SHA-256 is then checked
//!   against the original (not timed).
//!
//! It reports the median MB/s (10^6 bytes/s of plaintext payload) of each
//! kind, each one's ratio to `raw`, the peak RSS of every `mdrop` run
//! (`VmHWM` from `/proc/<pid>/status`, sampled every 5 ms: the kernel keeps
//! the high-water mark, so only growth in the last 5 ms before exit can be
//! missed) and of `mdropd` (its `VmHWM` after each transfer, with its
//! `VmRSS` before the first one as a baseline). While `mdrop` runs, the
//! sizes of the client's spool / partial files and the server's staging
//! files are sampled every 10 ms, which splits each push and pull into
//! phases (encrypt, upload, fsync, download, verify, decrypt…). Finally it
//! measures single-thread ceilings of the components in-process (SHA-256,
//! age encryption and decryption, disk write + fsync).
//!
//! ```text
//! cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/transfer --size-mib 1024 --rounds 3
//! ```
//!
//! Options: `--size-mib N` (payload, default 1024), `--rounds R` (default
//! 3), `--dir PATH` (where the temporary directory goes; it needs about
//! (3 + R) × N MiB), `--keep` (keep it), `--no-raw-fsync`,
//! `--no-components`, `--timeout-secs S` (per `mdrop` transfer; default
//! 120 + N/2), `--classic-keys` (users made with `keygen --classic`: X25519
//! age keys instead of the default hybrid post-quantum ones). The binaries are taken from `MDROP_BIN_DIR`, else from the
//! directory of this executable. Everything runs on 127.0.0.1, ports
//! chosen by the kernel.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use matterdrop_benches::harness::*;
use matterdrop_common::agekey::{AgeIdentity, Recipients};
use matterdrop_common::sha256pair::{Sha256Lane, update_pair};
use matterdrop_common::tls;
use sha2::{Digest as _, Sha256};

const MIB: u64 = 1 << 20;
/// The issue's targets.
const RATIO_TARGET: f64 = 0.65;
const RSS_TARGET_MIB: f64 = 64.0;
const MATTER: &str = "2026-BENCH-0001";
const TASK: &str = "document-review";
const FILE_NAME: &str = "case-file.bin";
/// A staging or partial file larger than this is the payload's (the
/// manifest blob is well under it).
const BIG: u64 = 64 * 1024;

struct Options {
    size_mib: u64,
    rounds: usize,
    dir: Option<PathBuf>,
    keep: bool,
    raw_fsync: bool,
    components: bool,
    timeout: Option<Duration>,
    classic: bool,
}

fn usage() -> String {
    "usage: transfer [--size-mib N] [--rounds R] [--dir PATH] [--keep] [--no-raw-fsync]\n\
     \x20               [--no-components] [--timeout-secs S] [--classic-keys]\n\
     env: MDROP_BIN_DIR=dir holding mdrop and mdropd (default: next to this executable)"
        .to_owned()
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        size_mib: 1024,
        rounds: 3,
        dir: None,
        keep: false,
        raw_fsync: true,
        components: true,
        timeout: None,
        classic: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{name} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--size-mib" => {
                let v = value("--size-mib")?;
                o.size_mib = v.parse().with_context(|| format!("--size-mib {v:?}"))?;
                ensure!(o.size_mib >= 1, "--size-mib must be at least 1");
            }
            "--rounds" => {
                let v = value("--rounds")?;
                o.rounds = v.parse().with_context(|| format!("--rounds {v:?}"))?;
                ensure!(o.rounds >= 1, "--rounds must be at least 1");
            }
            "--dir" => o.dir = Some(PathBuf::from(value("--dir")?)),
            "--timeout-secs" => {
                let v = value("--timeout-secs")?;
                let s: u64 = v.parse().with_context(|| format!("--timeout-secs {v:?}"))?;
                o.timeout = Some(Duration::from_secs(s));
            }
            "--keep" => o.keep = true,
            "--no-raw-fsync" => o.raw_fsync = false,
            "--no-components" => o.components = false,
            "--classic-keys" => o.classic = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// Measurements

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    RawFsync,
    Push,
    Pull,
}

impl Kind {
    const ALL: [Self; 4] = [Self::Raw, Self::RawFsync, Self::Push, Self::Pull];

    fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::RawFsync => "raw+fsync",
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }
}

type Phases = Vec<(&'static str, Option<Duration>)>;

/// One timed transfer.
struct Op {
    round: usize,
    kind: Kind,
    wall: Duration,
    /// Peak RSS of the `mdrop` process (KiB).
    client_kib: Option<u64>,
    /// `mdropd`'s `VmHWM` right after this transfer (KiB).
    server_hwm_kib: u64,
    /// CPU seconds (user + system) of the client side: the `mdrop`
    /// process, or for `raw` this process (both ends of the raw copy).
    client_cpu: f64,
    /// CPU seconds of `mdropd` during the transfer.
    server_cpu: f64,
    phases: Phases,
}

fn span(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(b?.saturating_sub(a?))
}

/// Push phases from [bytes the server holds for this push (staging and
/// new blobs), spool bytes]. Encryption and upload overlap (the client
/// encrypts one part while the previous ones upload), so they share a row.
fn push_phases(p: &Proc, n: u64) -> Phases {
    let zero = Duration::ZERO;
    let up0 = p.first(zero, |v| v[0] > BIG);
    let up1 = p.first(zero, |v| v[0] >= n);
    vec![
        ("start, connect, prepare, encrypt first chunk", up0),
        (
            "encrypt + upload + store, overlapped (parts of 32 MiB)",
            span(up0, up1),
        ),
        (
            "last part fsync + rename, commit, close, exit",
            span(up1, Some(p.wall)),
        ),
    ]
}

/// Pull phases from [verified or decrypting plaintext bytes in the
/// partial directory, unused]. Download, hashing and decryption overlap.
fn pull_phases(p: &Proc, n: u64) -> Phases {
    let zero = Duration::ZERO;
    let dl0 = p.first(zero, |v| v[0] > BIG);
    // The last buffers land just before the fsync and the move out of the
    // partial directory, and a 10 ms sample can miss the complete file:
    // its disappearance marks the end as well.
    let dl1 = p
        .first(zero, |v| v[0] >= n)
        .or_else(|| p.first(dl0?, |v| v[0] == 0));
    vec![
        ("start, connect, descriptor, manifest", dl0),
        (
            "download + SHA-256 + decrypt + write, overlapped",
            span(dl0, dl1),
        ),
        (
            "fsync plaintext, move into place, close, exit",
            span(dl1, Some(p.wall)),
        ),
    ]
}

/// Flushes dirty pages system-wide between transfers (not timed), so one
/// transfer's writeback does not land in the next one's figure.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(200));
}

/// Free space (bytes) of the filesystem holding `dir`, from df(1).
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn load_avg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------
// Component ceilings (single thread, in-process)

fn components(size: u64, payload: &Path, dir: &Path) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; BUF];
    let mut state = seed();
    fill_random(&mut buf, &mut state);

    let t = Instant::now();
    let mut h = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF as u64))?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    let _ = h.finalize();
    out.push(("SHA-256 (memory)".to_owned(), mbps(size, t.elapsed())));

    // What push and pull do: two streams hashed side by side.
    let t = Instant::now();
    let (mut a, mut b) = (Sha256Lane::new(), Sha256Lane::new());
    let half = BUF / 2;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF as u64))?;
        let (x, y) = buf[..n].split_at(half.min(n));
        update_pair(&mut a, x, &mut b, y);
        left -= n as u64;
    }
    let _ = (a.finalize(), b.finalize());
    out.push((
        "SHA-256 of two streams, paired (memory)".to_owned(),
        mbps(size, t.elapsed()),
    ));

    let t = Instant::now();
    let (_, n) = sha256_file(payload)?;
    out.push((
        "read payload (page cache) + SHA-256".to_owned(),
        mbps(n, t.elapsed()),
    ));

    let small = size.min(256 * MIB);
    let ids: Vec<AgeIdentity> = (0..2).map(|_| AgeIdentity::generate_hybrid()).collect();
    let keys: Vec<_> = ids.iter().map(AgeIdentity::public).collect();
    let recips = Recipients::new(&keys).map_err(|e| anyhow!("age: {e}"))?;
    let t = Instant::now();
    age_encrypt(io::sink(), &recips, &buf, small)?;
    out.push((
        format!("age encrypt (memory, {} MiB)", small / MIB),
        mbps(small, t.elapsed()),
    ));
    let cap = usize::try_from(small + small / 1000 + 4096)?;
    let cipher = age_encrypt(Vec::with_capacity(cap), &recips, &buf, small)?;
    let t = Instant::now();
    let dec = age::Decryptor::new_buffered(&cipher[..]).map_err(|e| anyhow!("age: {e}"))?;
    let mut r = dec
        .decrypt(std::iter::once(&ids[1] as &dyn age::Identity))
        .map_err(|e| anyhow!("age: {e}"))?;
    let mut sink = vec![0u8; BUF];
    let mut got = 0u64;
    loop {
        let k = r.read(&mut sink)?;
        if k == 0 {
            break;
        }
        got += k as u64;
    }
    ensure!(got == small, "age round trip lost bytes");
    out.push((
        format!("age decrypt (memory, {} MiB)", small / MIB),
        mbps(small, t.elapsed()),
    ));
    drop(cipher);

    let path = dir.join("disk-ceiling.bin");
    let t = Instant::now();
    let mut f = File::create(&path)?;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF as u64))?;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let written = t.elapsed();
    f.sync_all()?;
    let total = t.elapsed();
    drop(f);
    fs::remove_file(&path)?;
    out.push((
        format!(
            "disk write + fsync (fsync {:.2} s of {:.2} s)",
            (total - written).as_secs_f64(),
            total.as_secs_f64()
        ),
        mbps(size, total),
    ));
    out.push((
        "disk write into page cache (no fsync)".to_owned(),
        mbps(size, written),
    ));
    Ok(out)
}

/// Encrypts `bytes` bytes (`buf` repeated) to `recips` into `w`.
fn age_encrypt<W: io::Write>(w: W, recips: &Recipients, buf: &[u8], bytes: u64) -> Result<W> {
    let enc = recips.encryptor().map_err(|e| anyhow!("age: {e}"))?;
    let mut sw = enc.wrap_output(w)?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        sw.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(sw.finish()?)
}

// ---------------------------------------------------------------------------
// Main

fn main() -> Result<()> {
    let opts = parse_args()?;
    tls::install_crypto_provider();
    let bins = bin_dir()?;
    let mdrop_bin = binary(&bins, "mdrop")?;
    let mdropd_bin = binary(&bins, "mdropd")?;
    let size = opts.size_mib * MIB;
    let timeout = opts
        .timeout
        .unwrap_or_else(|| Duration::from_secs(120 + opts.size_mib / 2));
    let load_before = load_avg();

    let tmp = {
        let mut b = tempfile::Builder::new();
        b.prefix("mdrop-transfer-");
        match &opts.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        }
    };
    let root = tmp.path().to_path_buf();
    let need = (3 + opts.rounds as u64) * size + 256 * MIB;
    if let Some(free) = free_bytes(&root) {
        ensure!(
            free > need,
            "{} has {:.1} GiB free; this run needs about {:.1} GiB (use --dir or fewer --rounds)",
            root.display(),
            free as f64 / (1u64 << 30) as f64,
            need as f64 / (1u64 << 30) as f64
        );
    }
    let logs = root.join("logs");
    fs::create_dir(&logs)?;
    let payload_dir = root.join("payload");
    fs::create_dir(&payload_dir)?;
    let payload = payload_dir.join(FILE_NAME);
    eprintln!("writing {} MiB of random data…", opts.size_mib);
    let orig_sha = write_payload(&payload, size)?;

    eprintln!("starting mdropd and enrolling admin, alice@firm-a, bob@lpo-1…");
    let mut server = Server::start(&mdropd_bin, &root.join("data"), &root.join("mdropd.log"))?;
    let staging = root.join("data").join("staging");
    let md = Mdrop {
        bin: mdrop_bin.clone(),
        logs: logs.clone(),
        seq: std::cell::Cell::new(0),
        classic: opts.classic,
    };
    let Team { alice, bob, .. } = setup_team(&md, &server, &root, MATTER, TASK)?;
    let server_base_rss = server.kib("VmRSS:");
    let server_base_hwm = server.kib("VmHWM:");

    // The raw ceiling: in-process server on its own thread and runtime,
    // client on a runtime shaped like mdrop's (2 workers).
    let raw_sink = root.join("raw-sink.bin");
    let raw = RawServer::start(raw_sink.clone())?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client_key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let (client_cfg, _) = tls::client_config(&client_key, &raw.pin)?;
    let mut raw_buf = vec![0u8; BUF];
    fill_random(&mut raw_buf, &mut seed());

    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| opts.raw_fsync || *k != Kind::RawFsync)
        .collect();
    let payload_s = payload.to_str().context("non-UTF-8 temp path")?;
    let out_dir = root.join("pulled");
    let out_s = out_dir.to_str().context("non-UTF-8 temp path")?.to_owned();
    let mut ops: Vec<Op> = Vec::new();
    let tck = clk_tck();
    for round in 1..=opts.rounds {
        let mut packet = None;
        for &kind in &kinds {
            settle();
            eprintln!("round {round}/{}: {}…", opts.rounds, kind.name());
            let cpu0 = cpu_ticks("self");
            let srv0 = cpu_ticks(&server.pid.to_string()).0;
            let mut op = match kind {
                Kind::Raw | Kind::RawFsync => {
                    let mode = if kind == Kind::Raw {
                        MODE_DISCARD
                    } else {
                        MODE_FSYNC
                    };
                    let wall = client_rt.block_on(async {
                        tokio::time::timeout(
                            timeout,
                            raw_copy(client_cfg.clone(), raw.addr, mode, size, &raw_buf),
                        )
                        .await
                        .map_err(|_| anyhow!("raw copy did not finish within {timeout:?}"))?
                    })?;
                    let _ = fs::remove_file(&raw_sink);
                    Op {
                        round,
                        kind,
                        wall,
                        client_kib: None,
                        server_hwm_kib: server.kib("VmHWM:"),
                        client_cpu: 0.0,
                        server_cpu: 0.0,
                        phases: Vec::new(),
                    }
                }
                Kind::Push => {
                    let spool = alice.join("spool");
                    let (st, blobs) = (staging.clone(), root.join("data").join("blobs"));
                    let count = |dir: &Path, suffix: &'static str| {
                        let mut v = [0u64; 2];
                        dir_bytes(dir, &|n: &str| n.ends_with(suffix).then_some(0), &mut v);
                        v[0]
                    };
                    let before = count(&blobs, "");
                    let watch = move || {
                        [
                            (count(&st, ".part") + count(&blobs, "")).saturating_sub(before),
                            count(&spool, ".age"),
                        ]
                    };
                    let p = run_proc(
                        md.cmd(&alice, &["push", MATTER, payload_s, "--task", TASK]),
                        &logs,
                        &md.label("push"),
                        timeout,
                        Some(&watch),
                    )?;
                    let v = p.json("mdrop push")?;
                    packet = Some(v["id"].as_str().context("push: id")?.to_owned());
                    Op {
                        round,
                        kind,
                        wall: p.wall,
                        client_kib: Some(p.peak_kib),
                        server_hwm_kib: server.kib("VmHWM:"),
                        client_cpu: 0.0,
                        server_cpu: 0.0,
                        phases: push_phases(&p, size),
                    }
                }
                Kind::Pull => {
                    let id = packet.clone().context("no packet pushed this round")?;
                    let _ = fs::remove_dir_all(&out_dir);
                    let partial = bob.join("partial");
                    let watch = move || {
                        let mut v = [0u64; 2];
                        let plain = |n: &str| n.ends_with(".plain").then_some(0);
                        dir_bytes(&partial, &plain, &mut v);
                        v
                    };
                    let p = run_proc(
                        md.cmd(&bob, &["pull", &id, "--out", &out_s]),
                        &logs,
                        &md.label("pull"),
                        timeout,
                        Some(&watch),
                    )?;
                    p.json("mdrop pull")?;
                    let op = Op {
                        round,
                        kind,
                        wall: p.wall,
                        client_kib: Some(p.peak_kib),
                        server_hwm_kib: server.kib("VmHWM:"),
                        client_cpu: 0.0,
                        server_cpu: 0.0,
                        phases: pull_phases(&p, size),
                    };
                    let (sha, n) = sha256_file(&out_dir.join(FILE_NAME))?;
                    ensure!(
                        n == size && sha == orig_sha,
                        "the pulled file differs from the original ({n} bytes, sha256 {})",
                        hex(&sha)
                    );
                    fs::remove_dir_all(&out_dir)?;
                    op
                }
            };
            let cpu1 = cpu_ticks("self");
            let srv1 = cpu_ticks(&server.pid.to_string()).0;
            let ticks = if op.client_kib.is_some() {
                cpu1.1.saturating_sub(cpu0.1)
            } else {
                cpu1.0.saturating_sub(cpu0.0)
            };
            op.client_cpu = ticks as f64 / tck;
            op.server_cpu = srv1.saturating_sub(srv0) as f64 / tck;
            eprintln!(
                "  {:.2} s, {:.1} MB/s, CPU client {:.2} s server {:.2} s",
                op.wall.as_secs_f64(),
                mbps(size, op.wall),
                op.client_cpu,
                op.server_cpu
            );
            ops.push(op);
        }
    }
    drop(raw);
    drop(client_rt);
    let server_hwm = server.kib("VmHWM:");
    let server_rss_end = server.kib("VmRSS:");
    let clean_stop = server.stop();
    let load_after = load_avg();

    let comps = if opts.components {
        eprintln!("measuring component ceilings…");
        components(size, &payload, &root)?
    } else {
        Vec::new()
    };

    report(&Report {
        opts: &opts,
        size,
        orig_sha,
        ops: &ops,
        kinds: &kinds,
        server_base_rss,
        server_base_hwm,
        server_hwm,
        server_rss_end,
        clean_stop,
        comps: &comps,
        load_before,
        load_after,
        root: &root,
        bins: &bins,
    });
    if opts.keep {
        let kept = tmp.keep();
        println!(
            "kept                {} (mdropd log: {})",
            kept.display(),
            server.log.display()
        );
    }
    Ok(())
}

struct Report<'a> {
    opts: &'a Options,
    size: u64,
    orig_sha: [u8; 32],
    ops: &'a [Op],
    kinds: &'a [Kind],
    server_base_rss: u64,
    server_base_hwm: u64,
    server_hwm: u64,
    server_rss_end: u64,
    clean_stop: bool,
    comps: &'a [(String, f64)],
    load_before: String,
    load_after: String,
    root: &'a Path,
    bins: &'a Path,
}

fn report(r: &Report<'_>) {
    let size = r.size;
    let of = |k: Kind| r.ops.iter().filter(move |o| o.kind == k);
    let rates = |k: Kind| of(k).map(|o| mbps(size, o.wall)).collect::<Vec<_>>();
    let raw_median = median(&rates(Kind::Raw));
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };

    println!();
    println!("== Matterdrop transfer benchmark (loopback, 127.0.0.1) ==");
    println!(
        "payload             {} MiB ({size} bytes) of random data, sha256 {}",
        size / MIB,
        hex(&r.orig_sha)
    );
    println!(
        "rounds              {}, interleaved: {}",
        r.opts.rounds,
        r.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "age keys            {}",
        if r.opts.classic {
            "classic X25519 (keygen --classic)"
        } else {
            "hybrid ML-KEM-768 + X25519 (the default)"
        }
    );
    println!("units               MB/s = 10^6 bytes of plaintext payload per second of wall clock");
    println!();
    println!(
        "{:<6} {:<10} {:>8} {:>7} {:>16} {:>19} {:>11} {:>11}",
        "round",
        "kind",
        "seconds",
        "MB/s",
        "client peak RSS",
        "mdropd VmHWM after",
        "client CPU",
        "server CPU"
    );
    for o in r.ops {
        println!(
            "{:<6} {:<10} {:>8.2} {:>7.1} {:>16} {:>19} {:>9.2} s {:>9.2} s",
            o.round,
            o.kind.name(),
            o.wall.as_secs_f64(),
            mbps(size, o.wall),
            o.client_kib.map_or_else(
                || "(in-process)".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0)
            ),
            format!("{:.1} MiB", o.server_hwm_kib as f64 / 1024.0),
            o.client_cpu,
            o.server_cpu,
        );
    }
    println!();
    println!(
        "{:<10} {:>11} {:>21} {:>12}  target",
        "kind", "median MB/s", "(min – max)", "ratio to raw"
    );
    for &k in r.kinds {
        let v = rates(k);
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let m = median(&v);
        let ratio = m / raw_median;
        let target = match k {
            Kind::Push | Kind::Pull => {
                format!("≥ {RATIO_TARGET:.2} × raw: {}", pass(ratio >= RATIO_TARGET))
            }
            _ => String::new(),
        };
        println!(
            "{:<10} {:>11.1} {:>21} {:>12.2}  {target}",
            k.name(),
            m,
            format!("({lo:.1} – {hi:.1})"),
            ratio
        );
    }
    println!();
    let gib = size as f64 / (1u64 << 30) as f64;
    println!(
        "{:<10} {:>22} {:>22} {:>14}",
        "CPU", "client CPU-s per GiB", "server CPU-s per GiB", "cores busy"
    );
    for &k in r.kinds {
        let c = median(&of(k).map(|o| o.client_cpu / gib).collect::<Vec<_>>());
        let sv = median(&of(k).map(|o| o.server_cpu / gib).collect::<Vec<_>>());
        let busy = median(
            &of(k)
                .map(|o| (o.client_cpu + o.server_cpu) / o.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        let note = if k == Kind::Raw || k == Kind::RawFsync {
            "  (client column: both ends, in-process)"
        } else {
            ""
        };
        println!("{:<10} {c:>22.2} {sv:>22.2} {busy:>14.2}{note}", k.name());
    }
    println!();
    let client_peak = |k: Kind| of(k).filter_map(|o| o.client_kib).max().unwrap_or(0);
    let push_peak = client_peak(Kind::Push);
    let pull_peak = client_peak(Kind::Pull);
    let to_mib = |k: u64| k as f64 / 1024.0;
    println!(
        "peak RSS client     push {:.1} MiB, pull {:.1} MiB (max over rounds; VmHWM sampled every 5 ms)  < {RSS_TARGET_MIB:.0} MiB: {}",
        to_mib(push_peak),
        to_mib(pull_peak),
        pass(to_mib(push_peak.max(pull_peak)) < RSS_TARGET_MIB)
    );
    println!(
        "peak RSS server     {:.1} MiB VmHWM at the end (VmRSS {:.1} MiB / VmHWM {:.1} MiB after set-up, before the first transfer; VmRSS {:.1} MiB at the end)  < {RSS_TARGET_MIB:.0} MiB: {}",
        to_mib(r.server_hwm),
        to_mib(r.server_base_rss),
        to_mib(r.server_base_hwm),
        to_mib(r.server_rss_end),
        pass(to_mib(r.server_hwm) < RSS_TARGET_MIB)
    );
    println!(
        "mdropd shutdown     {}",
        if r.clean_stop {
            "clean (SIGTERM)"
        } else {
            "NOT clean"
        }
    );
    for (k, what) in [
        (
            Kind::Push,
            "push phases (median over rounds; from the bytes the server holds for the push, sampled every 10 ms)",
        ),
        (
            Kind::Pull,
            "pull phases (median over rounds; from the plaintext bytes in the partial directory, sampled every 10 ms)",
        ),
    ] {
        let runs: Vec<&Op> = of(k).collect();
        let Some(first) = runs.first() else { continue };
        let total = median(
            &runs
                .iter()
                .map(|o| o.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        println!();
        println!("{what}");
        for (i, (name, _)) in first.phases.iter().enumerate() {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|o| o.phases.get(i).and_then(|p| p.1))
                .map(|d| d.as_secs_f64())
                .collect();
            if v.is_empty() {
                println!("  {name:<52} n/a");
                continue;
            }
            let m = median(&v);
            println!(
                "  {name:<52} {m:>7.2} s  {:>5.1} %  ({:.0} MB/s of payload)",
                100.0 * m / total,
                if m > 0.0 {
                    size as f64 / 1e6 / m
                } else {
                    f64::INFINITY
                }
            );
        }
        println!("  {:<52} {total:>7.2} s", "total (wall clock of mdrop)");
    }
    if !r.comps.is_empty() {
        println!();
        println!("component ceilings (one thread, in-process, same machine)");
        for (name, v) in r.comps {
            println!("  {name:<52} {v:>8.1} MB/s");
        }
    }
    println!();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "machine             {cores} CPUs available, {}, {}, {}",
        cpu_model(),
        mem_total(),
        kernel()
    );
    println!(
        "load average        {} before, {} after",
        r.load_before, r.load_after
    );
    println!("temporary dir       {}", r.root.display());
    println!("binaries            {}", r.bins.display());
    println!(
        "reproduce           cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/transfer --size-mib {} --rounds {}",
        size / MIB,
        r.opts.rounds
    );
}
