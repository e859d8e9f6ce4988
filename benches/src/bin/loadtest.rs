//! `loadtest`: many concurrent clients pushing and pulling small packets
//! while one large transfer runs, and a client that holds streams open
//! without sending a request.
//!
//! Everything runs against the real `mdropd` on 127.0.0.1 (port chosen by
//! the kernel), with its JSON log (`--log-format json`) kept for the
//! server-side view.
//!
//! 1. Set-up: the bootstrap admin, firm `firm-a`, N client identities
//!    (`c000@firm-a` …, each its own `mdrop` home, enrolled with its own
//!    invite) in matters of `--group` members each (`2026-LT-0000` …; the
//!    first member creates it, the others join as paralegals, so every
//!    packet is encrypted to the whole group), plus `big@firm-a` (matter
//!    `2026-LT-BIG`) for the large transfer and `norm@firm-a` (matter
//!    `2026-LT-NORM`) for the stream-hog test. Run by a pool of
//!    `--setup-workers` processes at a time.
//! 2. Stream hog: in-process (quinn with the project's own
//!    `tls::client_config`), a client with a fresh, unenrolled key opens
//!    `MAX_CONCURRENT_STREAMS` bidirectional streams on one connection and
//!    writes a single byte on each (a QUIC stream is invisible to the peer
//!    until a frame carries it, so one byte of the 4-byte frame header is
//!    the least that makes the server accept the stream) and then never
//!    sends anything more. It checks that one more stream cannot be opened
//!    (the server's limit holds), then `norm` runs a normal `mdrop push`,
//!    which must succeed within `--hog-bound-secs`. Then the same with
//!    `--hog-connections` such connections at once. Finally it waits for
//!    the server to answer the held streams (it gives a stream 20 s to
//!    deliver its request) and reports what they received and when.
//! 3. Load: `big` starts `mdrop push` of a `--large-mib` MiB file; then all
//!    N clients are released at once (at most `--concurrency` `mdrop`
//!    processes at a time; default N: all of them), and each does
//!    `--rounds` times: push a fresh random file of `--min-kib`..
//!    `--max-kib` KiB, then pull a packet a member of its group pushed
//!    (one from an earlier round when there is one), comparing the pulled
//!    file byte for byte. Each request is one real `mdrop` process: its
//!    latency is that process's wall clock (start, keys, QUIC handshake,
//!    the protocol requests, exit). The server's own per-request handler
//!    times come from its log.
//!    Before the clients are released, `big` pushes the same large file
//!    alone: the loaded push is reported as a fraction of that rate.
//!    Through the whole load window, `--meta-clients` in-process clients
//!    (the first clients' keys, one persistent QUIC connection each) ask
//!    metadata questions in turn — whoami, inbox, matter show, roster get
//!    — one every `--meta-interval-ms` each, and their latency (stream
//!    opened to answer read) is reported per kind: what a client on its own
//!    machine would see, without the start-up of an `mdrop` process. Every
//!    one must be answered without an error.
//! 4. Afterwards every acknowledged push that nobody pulled during the load
//!    is pulled and compared (a push that exited 0 but cannot be pulled, or
//!    a pull that exited 0 with other bytes, is a *silent failure*), and
//!    the large packet is pulled and compared.
//!
//! 5. Optional probe (`--probe-stalled-downloads C`, off by default: it
//!    costs the server about 30–40 MiB per connection): the holder of the
//!    large packet (an enrolled recipient) opens C connections, asks for
//!    the large blob on all 16 streams of each and never reads the data.
//!    It samples the server's threads and RSS, runs a normal push while
//!    the downloads stall, holds them 45 s more, then closes them.
//!
//! Reported: requests, throughput (requests/s and MB/s of plaintext),
//! p50/p99 latency per kind, errors by exit code and message, silent
//! failures, the server's peak RSS (`VmHWM` from `/proc/<pid>/status`)
//! after each phase, and the hog results.
//!
//! ```text
//! cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/loadtest
//! ```
//!
//! With `--witnesses K`, K real `mdrop-witness` processes cosign the log:
//! `mdropd` is restarted after the admin enrolls with `--witness` for each,
//! so the load runs with every checkpoint submitted in the background (run
//! once with 0 and once with 2 to compare the loaded p99).
//!
//! Options: `--clients N` (100), `--rounds R` (3), `--large-mib M` (256; 0
//! for none), `--group G` (10), `--concurrency C` (N), `--min-kib` /
//! `--max-kib` (4 / 64), `--hog-connections H` (32), `--hog-bound-secs S`
//! (10), `--probe-stalled-downloads C` (0), `--setup-workers W` (8),
//! `--meta-clients M` (100; 0 for none), `--meta-interval-ms MS` (100),
//! `--client-nice N` (0: the small clients' `mdrop` processes run with
//! this niceness; on a machine where 100 clients share two cores with the
//! server, 19 stands for clients on machines of their own),
//! `--timeout-secs S` (per small `mdrop`, 120), `--dir PATH`, `--keep`. Binaries: `MDROP_BIN_DIR`, else the
//! directory of this executable. Exit status 1 when a silent failure
//! happened, the hog (or the probe) blocked the normal push, the stream
//! limit did not hold, or `mdropd` did not stop cleanly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use matterdrop_common::proto::{self, ServerResponse};
use matterdrop_common::tls::{self, MAX_CONCURRENT_STREAMS, ServerPin};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const TASK: &str = "document-review";
const BIG_MATTER: &str = "2026-LT-BIG";
const NORM_MATTER: &str = "2026-LT-NORM";
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: u64 = 1 << 20;
/// How long the stalled-download probe holds its streams after the push.
const PROBE_HOLD: Duration = Duration::from_secs(45);

struct Options {
    clients: usize,
    rounds: usize,
    large_mib: u64,
    group: usize,
    concurrency: Option<usize>,
    min_kib: u64,
    max_kib: u64,
    hog_connections: usize,
    hog_bound: Duration,
    probe_stalled: usize,
    setup_workers: usize,
    timeout: Duration,
    dir: Option<PathBuf>,
    keep: bool,
    witnesses: usize,
    meta_clients: usize,
    meta_interval: Duration,
    client_nice: u32,
}

fn usage() -> String {
    "usage: loadtest [--clients N] [--rounds R] [--large-mib M] [--group G] [--concurrency C]\n\
     \x20               [--min-kib K] [--max-kib K] [--hog-connections H] [--hog-bound-secs S]\n\
     \x20               [--probe-stalled-downloads CONNS] [--setup-workers W] [--timeout-secs S]\n\
     \x20               [--dir PATH] [--keep] [--witnesses K] [--meta-clients M] [--meta-interval-ms MS]\n\
     \x20               [--client-nice N]\n\
     env: MDROP_BIN_DIR=dir holding mdrop and mdropd (default: next to this executable)"
        .to_owned()
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        clients: 100,
        rounds: 3,
        large_mib: 256,
        group: 10,
        concurrency: None,
        min_kib: 4,
        max_kib: 64,
        hog_connections: 32,
        hog_bound: Duration::from_secs(10),
        probe_stalled: 0,
        meta_clients: 100,
        client_nice: 0,
        meta_interval: Duration::from_millis(100),
        setup_workers: 8,
        timeout: Duration::from_secs(120),
        dir: None,
        keep: false,
        witnesses: 0,
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
        let mut num = |name: &str| -> Result<u64> {
            let v = value(name)?.replace('_', "");
            v.parse().with_context(|| format!("{name} {v:?}"))
        };
        match flag.as_str() {
            "--clients" => o.clients = usize::try_from(num("--clients")?)?,
            "--rounds" => o.rounds = usize::try_from(num("--rounds")?)?,
            "--large-mib" => o.large_mib = num("--large-mib")?,
            "--group" => o.group = usize::try_from(num("--group")?)?,
            "--concurrency" => o.concurrency = Some(usize::try_from(num("--concurrency")?)?),
            "--min-kib" => o.min_kib = num("--min-kib")?,
            "--max-kib" => o.max_kib = num("--max-kib")?,
            "--hog-connections" => o.hog_connections = usize::try_from(num("--hog-connections")?)?,
            "--hog-bound-secs" => o.hog_bound = Duration::from_secs(num("--hog-bound-secs")?),
            "--client-nice" => o.client_nice = u32::try_from(num("--client-nice")?)?.min(19),
            "--meta-clients" => o.meta_clients = usize::try_from(num("--meta-clients")?)?,
            "--meta-interval-ms" => {
                o.meta_interval = Duration::from_millis(num("--meta-interval-ms")?);
            }
            "--probe-stalled-downloads" => {
                o.probe_stalled = usize::try_from(num("--probe-stalled-downloads")?)?;
            }
            "--setup-workers" => o.setup_workers = usize::try_from(num("--setup-workers")?)?,
            "--timeout-secs" => o.timeout = Duration::from_secs(num("--timeout-secs")?),
            "--dir" => o.dir = Some(PathBuf::from(value("--dir")?)),
            "--keep" => o.keep = true,
            "--witnesses" => o.witnesses = usize::try_from(num("--witnesses")?)?,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?}\n{}", usage()),
        }
    }
    ensure!(o.clients >= 1, "--clients must be at least 1");
    ensure!(o.rounds >= 1, "--rounds must be at least 1");
    ensure!(o.group >= 1, "--group must be at least 1");
    ensure!(o.min_kib <= o.max_kib, "--min-kib > --max-kib");
    ensure!(o.setup_workers >= 1, "--setup-workers must be at least 1");
    ensure!(
        o.concurrency.is_none_or(|c| c >= 1),
        "--concurrency must be at least 1"
    );
    Ok(o)
}

// ---------------------------------------------------------------------------
// Small helpers

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u64::from_le_bytes(b)
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn bin_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MDROP_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no directory", exe.display()))
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        p.is_file(),
        "{} not found: build it with `cargo build --release -p matterdrop -p matterdrop-server`, \
         or set MDROP_BIN_DIR",
        p.display()
    );
    Ok(p)
}

/// Sends `signal` to `pid` with kill(1) (this crate forbids `unsafe`).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A field (`VmHWM:`, `VmRSS:`) of `/proc/<pid>/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

/// Nearest-rank percentile of sorted `v`.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The first error line with ids and numbers blanked, so errors of one
/// kind count together.
fn error_kind(code: i32, stderr: &str, timed_out: bool) -> String {
    if timed_out {
        return "killed after the per-request timeout".into();
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mdrop: error:"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("(no message)")
        .trim_start_matches("mdrop: error: ");
    let mut out = String::new();
    let mut in_num = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_num && c.is_ascii_hexdigit() && c.is_ascii_lowercase()) {
            if !in_num {
                out.push('#');
            }
            in_num = true;
        } else {
            out.push(c);
            in_num = false;
        }
    }
    let out: String = out.chars().take(120).collect();
    format!("exit {code}: {out}")
}

// ---------------------------------------------------------------------------
// Child processes

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
    timed_out: bool,
}

impl Run {
    fn json(&self, what: &str) -> Result<Value> {
        ensure!(
            self.code == 0,
            "{what} failed (exit {}):\n{}{}",
            self.code,
            self.stdout,
            self.stderr
        );
        serde_json::from_str(self.stdout.trim())
            .with_context(|| format!("{what}: stdout is not JSON: {:?}", self.stdout))
    }
}

/// Runs `cmd` to completion, killing it after `timeout`; the wall clock is
/// from spawn to the exit seen by a waiter thread.
fn run_cmd(mut cmd: Command, timeout: Duration) -> Result<Run> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning mdrop")?;
    let pid = child.id();
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let out_t = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err_t = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let st = child.wait();
        let _ = tx.send(Instant::now());
        st
    });
    let mut timed_out = false;
    let end = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(t) => break t,
            Err(mpsc::RecvTimeoutError::Disconnected) => break Instant::now(),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !timed_out && start.elapsed() > timeout {
            signal(pid, "KILL");
            timed_out = true;
        }
    };
    let status = waiter
        .join()
        .map_err(|_| anyhow!("waiter thread panicked"))??;
    Ok(Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
        wall: end.duration_since(start),
        timed_out,
    })
}

#[derive(Debug, Clone)]
struct Mdrop {
    bin: PathBuf,
    /// Scheduling niceness of the processes (0: as this one).
    nice: u32,
}

impl Mdrop {
    fn run(&self, home: &Path, args: &[&str], timeout: Duration) -> Result<Run> {
        let mut c = if self.nice > 0 {
            let mut c = Command::new("nice");
            c.arg("-n").arg(self.nice.to_string()).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.arg("--home").arg(home).arg("--json").args(args);
        c.env_remove("MDROP_PASSPHRASE");
        run_cmd(c, timeout)
    }

    fn json(&self, home: &Path, args: &[&str]) -> Result<Value> {
        self.run(home, args, SETUP_TIMEOUT)?
            .json(&format!("mdrop {}", args.join(" ")))
    }
}

/// Starts `mdrop-witness` number `i` for the log `log_key`: the process
/// (killed on drop), its address and its cosignature key.
fn start_witness(
    bin: &Path,
    dir: &Path,
    i: usize,
    log_key: &str,
) -> Result<(KillOnDrop, String, String)> {
    let st = Command::new(bin)
        .args(["init", "--name", &format!("witness-{i}.bench"), "--data"])
        .arg(dir)
        .output()?;
    ensure!(st.status.success(), "mdrop-witness init: {st:?}");
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--log",
            log_key,
            "--data",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("witness stdout")?).read_line(&mut line)?;
    let v: Value =
        serde_json::from_str(&line).with_context(|| format!("witness printed {line:?}"))?;
    Ok((
        KillOnDrop(child),
        v["listen"].as_str().context("listen")?.to_owned(),
        v["vkey"].as_str().context("vkey")?.to_owned(),
    ))
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `mdropd serve`, killed on drop.
struct Server {
    child: Option<Child>,
    pid: u32,
    addr: String,
    fingerprint: String,
    invite: String,
    log: PathBuf,
}

impl Server {
    fn start(mdropd: &Path, data: &Path, log: &Path) -> Result<Self> {
        Self::start_with(mdropd, data, log, &[])
    }

    /// Starts `mdropd serve` with extra arguments (a restart prints no
    /// invite).
    fn start_with(mdropd: &Path, data: &Path, log: &Path, extra: &[String]) -> Result<Self> {
        let logfile = File::options().create(true).append(true).open(log)?;
        let mut child = Command::new(mdropd)
            .args([
                "--log-format",
                "json",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--json",
                "--shutdown-grace",
                "5s",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logfile)
            .spawn()
            .with_context(|| format!("spawning {}", mdropd.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("mdropd stdout")?;
        let mut server = Self {
            child: Some(child),
            pid,
            addr: String::new(),
            fingerprint: String::new(),
            invite: String::new(),
            log: log.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).map_err(|_| {
                anyhow!(
                    "mdropd did not start; log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                )
            })?;
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("mdropd --json printed {line:?}"))?;
            if let Some(i) = v["invite"].as_str() {
                server.invite = i.to_owned();
                continue;
            }
            server.addr = v["listen"].as_str().context("listen")?.to_owned();
            server.fingerprint = v["fingerprint"].as_str().context("fingerprint")?.to_owned();
            ensure!(
                !server.invite.is_empty() || !extra.is_empty(),
                "mdropd printed no bootstrap invite"
            );
            return Ok(server);
        }
    }

    fn kib(&self, field: &str) -> u64 {
        proc_kib(self.pid, field).unwrap_or(0)
    }

    /// CPU ticks (user + system) the server has used so far.
    fn cpu_ticks(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which ends at the last ')'.
                let rest = stat.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// SIGTERM, then SIGKILL after 20 s; whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Server-side request records (`request` log lines) between two offsets
/// of the JSON log: (request name, outcome, handler milliseconds).
fn server_requests(log: &Path, from: u64, to: u64) -> Vec<(String, String, u64)> {
    let Ok(mut f) = File::open(log) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut read = from;
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        read += line.len() as u64 + 1;
        if read > to {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] != "request" {
            continue;
        }
        out.push((
            fields["request"].as_str().unwrap_or("?").to_owned(),
            fields["outcome"].as_str().unwrap_or("?").to_owned(),
            fields["elapsed_ms"].as_u64().unwrap_or(0),
        ));
    }
    out
}

/// Warnings and errors the server logged between two offsets, counted by
/// message.
fn server_warnings(log: &Path, from: u64, to: u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(mut f) = File::open(log) else {
        return out;
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return out;
    }
    let mut read = from;
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        read += line.len() as u64 + 1;
        if read > to {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let level = v["level"].as_str().unwrap_or("");
        if level == "WARN" || level == "ERROR" {
            let msg = v["fields"]["message"].as_str().unwrap_or("?");
            let err = v["fields"]["error"].as_str().unwrap_or("");
            *out.entry(format!("{level} {msg} {err}").trim().to_owned())
                .or_default() += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// A small pool and a gate

/// Runs `jobs` on `workers` threads; the first error wins.
fn pool(workers: usize, jobs: Vec<Box<dyn FnOnce() -> Result<()> + Send>>) -> Result<()> {
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let queue = queue.clone();
        handles.push(std::thread::spawn(move || -> Result<()> {
            loop {
                let job = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                let Some(job) = job else { return Ok(()) };
                job()?;
            }
        }));
    }
    let mut first = Ok(());
    for h in handles {
        let r = h.join().map_err(|_| anyhow!("worker panicked"))?;
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// A counting semaphore.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            while *free == 0 {
                free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
            }
            *free -= 1;
        }
        let out = f();
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
        out
    }
}

// ---------------------------------------------------------------------------
// The stream hog

/// Connections that hold streams open with one byte of a frame header.
struct Hog {
    endpoint: quinn::Endpoint,
    conns: Vec<quinn::Connection>,
    streams: Vec<(quinn::SendStream, quinn::RecvStream, Instant)>,
    /// Whether an extra stream beyond the limit could be opened (per connection).
    extra_opened: usize,
    /// Probe: the first connection's last stream never got its credit.
    credit_stuck: bool,
}

async fn hog(addr: SocketAddr, fingerprint: &str, conns: usize) -> Result<Hog> {
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let mut hog = Hog {
        endpoint,
        conns: Vec::new(),
        streams: Vec::new(),
        extra_opened: 0,
        credit_stuck: false,
    };
    for _ in 0..conns {
        // A fresh key nobody enrolled: anyone who reaches the port can do this.
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let (cfg, _) = tls::client_config(&key, &ServerPin::Fingerprint(fingerprint.to_owned()))?;
        let conn = hog
            .endpoint
            .connect_with(cfg, addr, "localhost")?
            .await
            .context("hog handshake")?;
        for _ in 0..MAX_CONCURRENT_STREAMS {
            let (mut send, recv) = conn.open_bi().await?;
            send.write_all(&[0]).await?;
            hog.streams.push((send, recv, Instant::now()));
        }
        // One more must wait for the server to grant it.
        if let Ok(Ok((mut send, recv))) =
            tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await
        {
            hog.extra_opened += 1;
            let _ = send.write_all(&[0]).await;
            hog.streams.push((send, recv, Instant::now()));
        }
        hog.conns.push(conn);
    }
    Ok(hog)
}

/// What the held streams received: (answer, seconds after the byte was sent).
async fn hog_answers(hog: &mut Hog, wait: Duration) -> Vec<(String, f64)> {
    let mut tasks = Vec::new();
    for (send, mut recv, at) in hog.streams.drain(..) {
        tasks.push(tokio::spawn(async move {
            let _keep = send;
            let got = tokio::time::timeout(wait, recv.read_to_end(proto::MAX_FRAME + 4)).await;
            let what = match got {
                Err(_) => "no answer".to_owned(),
                Ok(Err(e)) => format!("stream error: {e}"),
                Ok(Ok(bytes)) => match proto::decode_frame::<ServerResponse>(&bytes) {
                    Ok(ServerResponse::Error(e)) => format!("{:?}: {}", e.code, e.message),
                    Ok(other) => format!("{other:?}"),
                    Err(e) => format!("undecodable answer: {e}"),
                },
            };
            (what, at.elapsed().as_secs_f64())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            out.push(r);
        }
    }
    out
}

/// Stalled downloads: the holder of `key` (a recipient of `packet`) asks
/// for the packet's largest blob on every stream of `conns` connections,
/// reads the answer frame and then never reads the data.
async fn stalled_downloads(
    addr: SocketAddr,
    fingerprint: &str,
    key: &ed25519_dalek::SigningKey,
    packet: &str,
    conns: usize,
) -> Result<Hog> {
    use matterdrop_common::net::{read_frame, write_frame};
    use matterdrop_common::proto::{BlobGetRequest, ClientRequest, PacketRef};
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let mut hog = Hog {
        endpoint,
        conns: Vec::new(),
        streams: Vec::new(),
        extra_opened: 0,
        credit_stuck: false,
    };
    let (cfg, _) = tls::client_config(key, &ServerPin::Fingerprint(fingerprint.to_owned()))?;
    let mut blob = None;
    for _ in 0..conns {
        let conn = hog
            .endpoint
            .connect_with(cfg.clone(), addr, "localhost")?
            .await
            .context("probe handshake")?;
        if blob.is_none() {
            let (mut send, mut recv) = conn.open_bi().await?;
            write_frame(
                &mut send,
                &ClientRequest::PacketGet(PacketRef {
                    id: packet.to_owned(),
                }),
            )
            .await?;
            let _ = send.finish();
            let ServerResponse::Packet(info) = read_frame::<ServerResponse>(&mut recv).await?
            else {
                bail!("probe: packet-get refused");
            };
            let d = matterdrop_common::packet::Descriptor::parse(&info.descriptor)
                .map_err(|e| anyhow!("probe: descriptor: {e}"))?;
            blob = d.blobs.iter().max_by_key(|b| b.size).map(|b| b.sha256);
        }
        let sha256 = blob.context("probe: the packet has no blob")?;
        for i in 0..MAX_CONCURRENT_STREAMS {
            // On the first connection the packet-get stream came first: the
            // last stream needs its credit back (bounded wait).
            let opened = if hog.conns.is_empty() && i + 1 == MAX_CONCURRENT_STREAMS {
                match tokio::time::timeout(Duration::from_secs(10), conn.open_bi()).await {
                    Ok(r) => Some(r?),
                    Err(_) => None,
                }
            } else {
                Some(conn.open_bi().await?)
            };
            let Some((mut send, recv)) = opened else {
                hog.credit_stuck = true;
                break;
            };
            write_frame(
                &mut send,
                &ClientRequest::BlobGet(BlobGetRequest {
                    packet: packet.to_owned(),
                    sha256,
                    offset: 0,
                    for_share: false,
                }),
            )
            .await?;
            let _ = send.finish();
            hog.streams.push((send, recv, Instant::now()));
        }
        hog.conns.push(conn);
    }
    // Read each answer frame (and nothing after it), all at once.
    let mut tasks = Vec::new();
    for (send, mut recv, at) in hog.streams.drain(..) {
        tasks.push(tokio::spawn(async move {
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                read_frame::<ServerResponse>(&mut recv),
            )
            .await;
            let answered = matches!(got, Ok(Ok(ServerResponse::BlobData(_))));
            (send, recv, at, answered)
        }));
    }
    for t in tasks {
        let (send, recv, at, answered) = t.await?;
        if !answered {
            // Counted in `extra_opened` for this probe: requests the
            // server did not answer within 10 s.
            hog.extra_opened += 1;
        }
        hog.streams.push((send, recv, at));
    }
    Ok(hog)
}

impl Hog {
    async fn close(self) {
        for c in &self.conns {
            c.close(0u32.into(), b"done");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

#[derive(Debug, Default)]
struct HogReport {
    connections: usize,
    streams: usize,
    extra_opened: usize,
    push_ok: bool,
    push_wall: Duration,
    push_error: String,
}

// ---------------------------------------------------------------------------
// Metadata probe

/// One metadata request of the probe: its kind, latency and whether the
/// server answered it without an error.
type MetaSample = (&'static str, Duration, bool);

/// `clients` enrolled identities, each on its own persistent connection,
/// ask metadata questions in turn (whoami, inbox, matter show, roster get)
/// about one every `interval` each, until `stop`. Each request is a fresh
/// stream; its latency runs from opening the stream to the whole answer.
async fn metadata_probe(
    addr: SocketAddr,
    fingerprint: String,
    clients: Vec<(ed25519_dalek::SigningKey, String)>,
    interval: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Vec<MetaSample>> {
    use matterdrop_common::net::{read_frame, write_frame};
    use matterdrop_common::proto::{ClientRequest, InboxRequest, MatterRef, RosterGetRequest};
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let mut conns = Vec::new();
    for (key, matter) in clients {
        let (cfg, _) = tls::client_config(&key, &ServerPin::Fingerprint(fingerprint.clone()))?;
        let conn = endpoint
            .connect_with(cfg, addr, "localhost")?
            .await
            .context("metadata probe handshake")?;
        conns.push((conn, matter));
    }
    let mut tasks = Vec::new();
    for (i, (conn, matter)) in conns.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            // Spread the clients over the interval.
            tokio::time::sleep(interval.mul_f64((i % 10) as f64 / 10.0)).await;
            let mut n = i;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (kind, req) = match n % 4 {
                    0 => ("whoami", ClientRequest::WhoAmI),
                    1 => (
                        "inbox",
                        ClientRequest::Inbox(InboxRequest {
                            matter: None,
                            all: false,
                        }),
                    ),
                    2 => (
                        "matter-show",
                        ClientRequest::MatterShow(MatterRef {
                            matter: matter.clone(),
                        }),
                    ),
                    _ => (
                        "roster-get",
                        ClientRequest::RosterGet(RosterGetRequest {
                            matter: matter.clone(),
                            from: 0,
                        }),
                    ),
                };
                n += 1;
                let t = Instant::now();
                let answer = async {
                    let (mut send, mut recv) = conn.open_bi().await?;
                    write_frame(&mut send, &req).await?;
                    let _ = send.finish();
                    anyhow::Ok(read_frame::<ServerResponse>(&mut recv).await?)
                };
                let ok = matches!(
                    tokio::time::timeout(Duration::from_secs(30), answer).await,
                    Ok(Ok(r)) if !matches!(r, ServerResponse::Error(_))
                );
                out.push((kind, t.elapsed(), ok));
                tokio::time::sleep(interval).await;
            }
            conn.close(0u32.into(), b"done");
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(all)
}

// ---------------------------------------------------------------------------
// Load

#[derive(Debug, Clone)]
struct Payload {
    name: String,
    sha256: [u8; 32],
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Push,
    Pull,
}

#[derive(Debug)]
struct Request {
    kind: Kind,
    client: usize,
    wall: Duration,
    /// Offset of the end from the release of the clients.
    end: Duration,
    ok: bool,
    bytes: u64,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Acknowledged pushes per group: (id, payload, round, pulled?).
    by_group: HashMap<usize, Vec<(String, Payload, usize, bool)>>,
    requests: Vec<Request>,
    silent: Vec<String>,
}

struct Client {
    index: usize,
    group: usize,
    home: PathBuf,
    matter: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct LoadCtx {
    md: Mdrop,
    root: PathBuf,
    rounds: usize,
    min: u64,
    max: u64,
    timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    gate: Arc<Gate>,
    t0: Arc<Mutex<Option<Instant>>>,
}

/// Pulls `id` as `home` into a fresh directory and compares it with `want`.
fn pull_and_check(
    md: &Mdrop,
    home: &Path,
    root: &Path,
    id: &str,
    want: &Payload,
    label: &str,
    timeout: Duration,
) -> Result<(Run, Result<()>)> {
    let out = root.join("pulls").join(format!("{label}-{id}"));
    let _ = fs::remove_dir_all(&out);
    let out_s = out.to_str().context("non-UTF-8 path")?.to_owned();
    let r = md.run(home, &["pull", id, "--out", &out_s], timeout)?;
    let check = if r.code == 0 {
        (|| -> Result<()> {
            let (sha, size) = sha256_file(&out.join(&want.name))?;
            ensure!(
                sha == want.sha256 && size == want.size,
                "{} differs: {size} bytes sha256 {} (pushed {} bytes sha256 {})",
                want.name,
                hex(&sha),
                want.size,
                hex(&want.sha256)
            );
            Ok(())
        })()
    } else {
        Ok(())
    };
    let _ = fs::remove_dir_all(&out);
    Ok((r, check))
}

fn client_run(c: &Client, cx: &LoadCtx, start: &std::sync::Barrier) -> Result<()> {
    let mut rng = Rng(random_seed() ^ c.index as u64);
    let files = cx.root.join("files").join(format!("c{:03}", c.index));
    fs::create_dir_all(&files)?;
    start.wait();
    let t0 = lock(&cx.t0).context("load start time")?;
    for round in 0..cx.rounds {
        // Push.
        let name = format!("c{:03}-r{round}.bin", c.index);
        let size = cx.min + rng.below(cx.max - cx.min + 1);
        let mut data = vec![0u8; usize::try_from(size)?];
        rng.fill(&mut data);
        let path = files.join(&name);
        fs::write(&path, &data)?;
        let payload = Payload {
            name,
            sha256: Sha256::digest(&data).into(),
            size,
        };
        drop(data);
        let path_s = path.to_str().context("non-UTF-8 path")?.to_owned();
        let r = cx.gate.run(|| {
            cx.md.run(
                &c.home,
                &["push", &c.matter, &path_s, "--task", TASK],
                cx.timeout,
            )
        })?;
        let mut ok = r.code == 0;
        let mut error = (!ok).then(|| error_kind(r.code, &r.stderr, r.timed_out));
        if ok {
            match serde_json::from_str::<Value>(r.stdout.trim())
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
            {
                Some(id) => {
                    lock(&cx.shared).by_group.entry(c.group).or_default().push((
                        id,
                        payload.clone(),
                        round,
                        false,
                    ));
                }
                None => {
                    ok = false;
                    error = Some("exit 0 without a packet id (silent failure)".into());
                    lock(&cx.shared)
                        .silent
                        .push(format!("push {} exited 0 without an id", payload.name));
                }
            }
        }
        lock(&cx.shared).requests.push(Request {
            kind: Kind::Push,
            client: c.index,
            wall: r.wall,
            end: t0.elapsed(),
            ok,
            bytes: if ok { size } else { 0 },
            error,
        });

        // Pull a group member's packet, from an earlier round if any.
        let target = {
            let mut s = lock(&cx.shared);
            let list = s.by_group.entry(c.group).or_default();
            let mut older: Vec<usize> = (0..list.len()).filter(|&i| list[i].2 < round).collect();
            if older.is_empty() {
                older = (0..list.len()).collect();
            }
            let pick = if older.is_empty() {
                None
            } else {
                Some(older[usize::try_from(rng.below(older.len() as u64))?])
            };
            pick.map(|i| {
                list[i].3 = true;
                (list[i].0.clone(), list[i].1.clone())
            })
        };
        let Some((id, want)) = target else { continue };
        let label = format!("c{:03}-r{round}", c.index);
        let (r, check) = cx
            .gate
            .run(|| pull_and_check(&cx.md, &c.home, &cx.root, &id, &want, &label, cx.timeout))?;
        let ok = r.code == 0 && check.is_ok();
        let error = if r.code != 0 {
            Some(error_kind(r.code, &r.stderr, r.timed_out))
        } else if let Err(e) = &check {
            let msg = format!("pull of {id} exited 0 but: {e:#}");
            lock(&cx.shared).silent.push(msg.clone());
            Some(format!("exit 0 with wrong content (silent failure): {e:#}"))
        } else {
            None
        };
        lock(&cx.shared).requests.push(Request {
            kind: Kind::Pull,
            client: c.index,
            wall: r.wall,
            end: t0.elapsed(),
            ok,
            bytes: if ok { want.size } else { 0 },
            error,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Main

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadtest: error: {e:#}");
            std::process::exit(2);
        }
    }
}

#[allow(clippy::too_many_lines)]
fn real_main() -> Result<bool> {
    let opts = parse_args()?;
    tls::install_crypto_provider();
    let bins = bin_dir()?;
    let md = Mdrop {
        bin: binary(&bins, "mdrop")?,
        nice: 0,
    };
    let mdropd_bin = binary(&bins, "mdropd")?;
    let started = Instant::now();
    let tmp = {
        let mut b = tempfile::Builder::new();
        b.prefix("mdrop-loadtest-");
        match &opts.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        }
    };
    let root = tmp.path().to_path_buf();
    fs::create_dir_all(root.join("pulls"))?;
    let concurrency = opts.concurrency.unwrap_or(opts.clients);
    println!(
        "loadtest: {} clients × {} rounds (push + pull, {}–{} KiB), at most {concurrency} mdrop at a time; \
         large push {} MiB; hog {} connection(s)",
        opts.clients, opts.rounds, opts.min_kib, opts.max_kib, opts.large_mib, opts.hog_connections
    );
    println!("binaries {} | work dir {}", bins.display(), root.display());
    println!(
        "witnesses {} (mdropd serve --witness …: every checkpoint submitted in the background)",
        opts.witnesses
    );

    // ---- Set-up
    let mut server = Server::start(&mdropd_bin, &root.join("data"), &root.join("mdropd.log"))?;
    let admin = root.join("admin");
    md.json(&admin, &["keygen"])?;
    md.json(
        &admin,
        &[
            "enroll",
            &server.addr,
            "--fingerprint",
            &server.fingerprint,
            "--invite",
            &server.invite,
            "--id",
            "admin@operator",
            "--name",
            "admin",
        ],
    )?;
    // With --witnesses K: K real `mdrop-witness` processes for this log,
    // and mdropd restarted to submit every checkpoint to them.
    let mut witness_procs = Vec::new();
    if opts.witnesses > 0 {
        let log_key = md.json(&admin, &["whoami"])?["log_key"]
            .as_str()
            .context("whoami without log_key")?
            .to_owned();
        let witness_bin = binary(&bins, "mdrop-witness")?;
        let mut flags = Vec::new();
        for i in 0..opts.witnesses {
            let (child, addr, vkey) = start_witness(
                &witness_bin,
                &root.join(format!("witness-{i}")),
                i,
                &log_key,
            )?;
            witness_procs.push(child);
            flags.push("--witness".to_owned());
            flags.push(format!("http://{addr}={vkey}"));
        }
        ensure!(
            server.stop(),
            "mdropd did not stop cleanly before the witness restart"
        );
        let invite = std::mem::take(&mut server.invite);
        server = Server::start_with(
            &mdropd_bin,
            &root.join("data"),
            &root.join("mdropd.log"),
            &flags,
        )?;
        server.invite = invite;
        let sf = admin.join("server.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&sf)?)?;
        v["server"] = server.addr.clone().into();
        fs::write(&sf, v.to_string())?;
        eprintln!("mdropd restarted with {} witnesses", opts.witnesses);
    }
    md.json(
        &admin,
        &["admin", "org", "create", "firm-a", "--kind", "firm"],
    )?;
    let ack = root.join("ack.txt");
    fs::write(
        &ack,
        "I will keep everything about this matter confidential.\n",
    )?;
    let ack_s = ack.to_str().context("non-UTF-8 path")?.to_owned();
    let mut ids: Vec<String> = (0..opts.clients)
        .map(|i| format!("c{i:03}@firm-a"))
        .collect();
    ids.push("big@firm-a".into());
    ids.push("norm@firm-a".into());
    eprintln!(
        "set-up: enrolling {} users with {} workers…",
        ids.len(),
        opts.setup_workers
    );
    let addr = server.addr.clone();
    let fp = server.fingerprint.clone();
    let jobs: Vec<Box<dyn FnOnce() -> Result<()> + Send>> = ids
        .iter()
        .map(|id| {
            let (md, admin, root, id) = (md.clone(), admin.clone(), root.clone(), id.clone());
            let (addr, fp) = (addr.clone(), fp.clone());
            Box::new(move || -> Result<()> {
                let v = md.json(&admin, &["admin", "invite", "--org", "firm-a"])?;
                let invite = v["invite"].as_str().context("invite")?;
                let home = root.join(&id);
                md.json(&home, &["keygen"])?;
                md.json(
                    &home,
                    &[
                        "enroll",
                        &addr,
                        "--fingerprint",
                        &fp,
                        "--invite",
                        invite,
                        "--id",
                        &id,
                        "--name",
                        &id,
                    ],
                )?;
                Ok(())
            }) as Box<dyn FnOnce() -> Result<()> + Send>
        })
        .collect();
    pool(opts.setup_workers, jobs)?;
    let groups = opts.clients.div_ceil(opts.group);
    let clients: Vec<Client> = (0..opts.clients)
        .map(|i| Client {
            index: i,
            group: i / opts.group,
            home: root.join(&ids[i]),
            matter: format!("2026-LT-{:04}", i / opts.group),
        })
        .collect();
    eprintln!("set-up: creating {groups} matters…");
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<()> + Send>> = Vec::new();
    for g in 0..groups {
        let members: Vec<String> = ids
            .iter()
            .skip(g * opts.group)
            .take(opts.group.min(opts.clients - g * opts.group))
            .cloned()
            .collect();
        let (md, root, ack_s) = (md.clone(), root.clone(), ack_s.clone());
        jobs.push(Box::new(move || -> Result<()> {
            let owner = root.join(&members[0]);
            let matter = format!("2026-LT-{g:04}");
            md.json(
                &owner,
                &[
                    "matter",
                    "create",
                    &matter,
                    "--title",
                    "Load",
                    "--ack-file",
                    &ack_s,
                    "--scope",
                    TASK,
                ],
            )?;
            for m in &members[1..] {
                let code = md.json(&root.join(m), &["whoami"])?["safety_code"]
                    .as_str()
                    .map(str::to_owned)
                    .context("whoami without a safety code")?;
                md.json(
                    &owner,
                    &[
                        "matter",
                        "add",
                        &matter,
                        m,
                        "--role",
                        "paralegal",
                        "--expect-code",
                        &code,
                    ],
                )?;
            }
            Ok(())
        }));
    }
    for (who, matter) in [("big@firm-a", BIG_MATTER), ("norm@firm-a", NORM_MATTER)] {
        let (md, root, ack_s) = (md.clone(), root.clone(), ack_s.clone());
        jobs.push(Box::new(move || -> Result<()> {
            md.json(
                &root.join(who),
                &[
                    "matter",
                    "create",
                    matter,
                    "--title",
                    "Load",
                    "--ack-file",
                    &ack_s,
                    "--scope",
                    TASK,
                ],
            )?;
            Ok(())
        }));
    }
    pool(opts.setup_workers, jobs)?;
    let setup_time = started.elapsed();
    let hwm_setup = server.kib("VmHWM:");
    let rss_setup = server.kib("VmRSS:");
    eprintln!(
        "set-up done in {:.1} s; mdropd VmRSS {:.1} MiB",
        setup_time.as_secs_f64(),
        mib(rss_setup)
    );

    // ---- Stream hog
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server_addr: SocketAddr = server.addr.parse()?;
    let norm = root.join("norm@firm-a");
    let norm_file = root.join("norm.bin");
    let mut nrng = Rng(random_seed());
    let mut norm_push = |label: &str| -> Result<Run> {
        let mut data = vec![0u8; 16 * 1024];
        nrng.fill(&mut data);
        let path = norm_file.with_extension(format!("{label}.bin"));
        fs::write(&path, &data)?;
        let path_s = path.to_str().context("non-UTF-8 path")?.to_owned();
        md.run(
            &norm,
            &["push", NORM_MATTER, &path_s, "--task", TASK],
            opts.hog_bound + Duration::from_secs(30),
        )
    };
    let baseline = norm_push("baseline")?;
    eprintln!(
        "hog: baseline push without hog {:.0} ms (exit {})",
        ms(baseline.wall),
        baseline.code
    );
    let mut hog_reports = Vec::new();
    let mut hog_answers_all: Vec<(String, f64)> = Vec::new();
    for conns in [1, opts.hog_connections] {
        if conns == 0 || (conns == 1 && !hog_reports.is_empty()) {
            continue;
        }
        let mut h = rt.block_on(hog(server_addr, &server.fingerprint, conns))?;
        // Let the server see every stream before the normal client comes.
        std::thread::sleep(Duration::from_millis(300));
        let r = norm_push(&format!("hog{conns}"))?;
        let rep = HogReport {
            connections: conns,
            streams: h.streams.len(),
            extra_opened: h.extra_opened,
            push_ok: r.code == 0 && r.wall <= opts.hog_bound,
            push_wall: r.wall,
            push_error: if r.code == 0 {
                String::new()
            } else {
                error_kind(r.code, &r.stderr, r.timed_out)
            },
        };
        eprintln!(
            "hog: {conns} connection(s) holding {} streams; normal push {:.0} ms (exit {}); extra streams opened: {}",
            rep.streams,
            ms(r.wall),
            r.code,
            rep.extra_opened
        );
        hog_reports.push(rep);
        if conns == opts.hog_connections {
            eprintln!("hog: waiting for the server to answer the held streams…");
            hog_answers_all = rt.block_on(hog_answers(&mut h, Duration::from_secs(40)));
        }
        rt.block_on(h.close());
    }
    let hwm_hog = server.kib("VmHWM:");

    // ---- Load
    let large = root.join("large").join("large-case-file.bin");
    let mut large_sha = [0u8; 32];
    if opts.large_mib > 0 {
        fs::create_dir_all(large.parent().context("large dir")?)?;
        eprintln!("writing the {} MiB large file…", opts.large_mib);
        let mut f = File::create(&large)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; MIB as usize];
        let mut lr = Rng(random_seed());
        for _ in 0..opts.large_mib {
            lr.fill(&mut buf);
            f.write_all(&buf)?;
            h.update(&buf);
        }
        f.sync_all()?;
        large_sha = h.finalize().into();
    }
    // The large push alone first: the rate the loaded one is compared with.
    let large_alone = if opts.large_mib > 0 {
        eprintln!("large push alone (the unloaded rate)…");
        let path = large.to_str().unwrap_or_default();
        let r = md.run(
            &root.join("big@firm-a"),
            &["push", BIG_MATTER, path, "--task", TASK],
            Duration::from_secs(120 + opts.large_mib),
        )?;
        ensure!(
            r.code == 0,
            "the unloaded large push failed: {}",
            r.stderr.trim()
        );
        Some(r.wall)
    } else {
        None
    };
    // Metadata probe clients: keys and matters of the first M clients.
    let mut meta_clients = Vec::new();
    for c in clients.iter().take(opts.meta_clients) {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let pem = fs::read_to_string(c.home.join("signing-key.pem"))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow!("signing key of {}: {e}", c.home.display()))?;
        meta_clients.push((key, c.matter.clone()));
    }
    let meta_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let gate = Arc::new(Gate::new(concurrency));
    let t0 = Arc::new(Mutex::new(None));
    let barrier = Arc::new(std::sync::Barrier::new(opts.clients + 1));
    let clients = Arc::new(clients);
    let mut threads = Vec::new();
    for i in 0..opts.clients {
        let cx = LoadCtx {
            md: Mdrop {
                nice: opts.client_nice,
                ..md.clone()
            },
            root: root.clone(),
            rounds: opts.rounds,
            min: opts.min_kib * 1024,
            max: opts.max_kib * 1024,
            timeout: opts.timeout,
            shared: shared.clone(),
            gate: gate.clone(),
            t0: t0.clone(),
        };
        let (clients, barrier) = (clients.clone(), barrier.clone());
        threads.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || client_run(&clients[i], &cx, &barrier))?,
        );
    }
    let log_from = server.log_len();
    // The large push starts first and runs through the load.
    let large_thread = (opts.large_mib > 0).then(|| {
        let (md, home) = (md.clone(), root.join("big@firm-a"));
        let path = large.to_str().unwrap_or_default().to_owned();
        let timeout = Duration::from_secs(120 + opts.large_mib);
        std::thread::spawn(move || {
            md.run(&home, &["push", BIG_MATTER, &path, "--task", TASK], timeout)
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    *lock(&t0) = Some(Instant::now());
    let load_start = Instant::now();
    let cpu0 = cpu_ticks();
    let server_cpu0 = server.cpu_ticks();
    let meta = (!meta_clients.is_empty()).then(|| {
        rt.spawn(metadata_probe(
            server_addr,
            server.fingerprint.clone(),
            meta_clients,
            opts.meta_interval,
            meta_stop.clone(),
        ))
    });
    barrier.wait();
    let mut peak_rss = 0u64;
    while threads.iter().any(|t| !t.is_finished()) {
        peak_rss = peak_rss.max(server.kib("VmRSS:"));
        std::thread::sleep(Duration::from_millis(50));
    }
    for t in threads {
        t.join().map_err(|_| anyhow!("client thread panicked"))??;
    }
    let small_wall = load_start.elapsed();
    let large_run = match large_thread {
        Some(t) => {
            while !t.is_finished() {
                peak_rss = peak_rss.max(server.kib("VmRSS:"));
                std::thread::sleep(Duration::from_millis(50));
            }
            Some(t.join().map_err(|_| anyhow!("large push panicked"))??)
        }
        None => None,
    };
    let load_wall = load_start.elapsed();
    let cpu1 = cpu_ticks();
    let server_cpu1 = server.cpu_ticks();
    meta_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let meta_samples = match meta {
        Some(h) => rt.block_on(h)??,
        None => Vec::new(),
    };
    let log_to = server.log_len();
    let hwm_load = server.kib("VmHWM:");

    // ---- Afterwards: every acknowledged push must pull byte-identical.
    eprintln!("checking every acknowledged push…");
    let mut unpulled: Vec<(usize, String, Payload)> = Vec::new();
    let mut acked_small = 0usize;
    {
        let s = lock(&shared);
        for (g, list) in &s.by_group {
            for (id, p, _, pulled) in list {
                acked_small += 1;
                if !pulled {
                    unpulled.push((*g, id.clone(), p.clone()));
                }
            }
        }
    }
    let after_fail = Arc::new(Mutex::new(Vec::<String>::new()));
    let jobs: Vec<Box<dyn FnOnce() -> Result<()> + Send>> = unpulled
        .iter()
        .map(|(g, id, want)| {
            let home = root.join(&ids[g * opts.group]);
            let (md, root, id, want) = (md.clone(), root.clone(), id.clone(), want.clone());
            let fails = after_fail.clone();
            Box::new(move || -> Result<()> {
                let (r, check) =
                    pull_and_check(&md, &home, &root, &id, &want, "after", SETUP_TIMEOUT)?;
                if r.code != 0 {
                    lock(&fails).push(format!(
                        "acknowledged push {id} ({}) does not pull: exit {} {}",
                        want.name,
                        r.code,
                        r.stderr.trim()
                    ));
                } else if let Err(e) = check {
                    lock(&fails).push(format!("acknowledged push {id} pulls wrong: {e:#}"));
                }
                Ok(())
            }) as Box<dyn FnOnce() -> Result<()> + Send>
        })
        .collect();
    pool(opts.setup_workers, jobs)?;
    let mut large_pull = None;
    let mut large_problem = None;
    if let Some(r) = &large_run {
        if r.code == 0 {
            let id = serde_json::from_str::<Value>(r.stdout.trim())
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            match id {
                Some(id) => {
                    let want = Payload {
                        name: "large-case-file.bin".into(),
                        sha256: large_sha,
                        size: opts.large_mib * MIB,
                    };
                    let (pr, check) = pull_and_check(
                        &md,
                        &root.join("big@firm-a"),
                        &root,
                        &id,
                        &want,
                        "large",
                        Duration::from_secs(120 + opts.large_mib),
                    )?;
                    if pr.code != 0 {
                        large_problem = Some(format!(
                            "large push acknowledged but does not pull: exit {} {}",
                            pr.code,
                            pr.stderr.trim()
                        ));
                    } else if let Err(e) = check {
                        large_problem = Some(format!("large packet pulls wrong: {e:#}"));
                    }
                    large_pull = Some(pr.wall);
                }
                None => large_problem = Some("large push exited 0 without an id".into()),
            }
        }
    }
    // ---- Optional probe: downloads that are never read.
    let mut probe_lines = Vec::new();
    let mut probe_ok = true;
    if opts.probe_stalled > 0 {
        let id = large_run
            .as_ref()
            .filter(|r| r.code == 0)
            .and_then(|r| serde_json::from_str::<Value>(r.stdout.trim()).ok())
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .context(
                "--probe-stalled-downloads needs a successful large push (--large-mib > 16)",
            )?;
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let pem = fs::read_to_string(root.join("big@firm-a").join("signing-key.pem"))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow!("big's signing key: {e}"))?;
        let sample = |what: &str, lines: &mut Vec<String>| {
            lines.push(format!(
                "{what:<34} mdropd threads {:>4}, VmRSS {:>7.1} MiB",
                server.kib("Threads:"),
                mib(server.kib("VmRSS:"))
            ));
        };
        sample("before", &mut probe_lines);
        eprintln!(
            "probe: {} connections × {MAX_CONCURRENT_STREAMS} downloads never read…",
            opts.probe_stalled
        );
        let h = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(120),
                    stalled_downloads(
                        server_addr,
                        &server.fingerprint,
                        &key,
                        &id,
                        opts.probe_stalled,
                    ),
                )
                .await
            })
            .map_err(|_| anyhow!("probe: setting up the stalled downloads took over 120 s"))??;
        if h.credit_stuck {
            probe_lines.push(format!(
                "stream credit: after a finished packet-get, stream {MAX_CONCURRENT_STREAMS} of the first connection \
                 could not be opened within 10 s while the other {} were flow-blocked",
                MAX_CONCURRENT_STREAMS - 1
            ));
        }
        std::thread::sleep(Duration::from_secs(3));
        sample(
            &format!(
                "{} streams ({} unanswered) +3 s",
                h.streams.len(),
                h.extra_opened
            ),
            &mut probe_lines,
        );
        let r = norm_push("probe")?;
        probe_ok = r.code == 0 && r.wall <= opts.hog_bound;
        probe_lines.push(format!(
            "normal push while they stall: {:.0} ms, exit {} {}",
            ms(r.wall),
            r.code,
            if r.code == 0 {
                String::new()
            } else {
                error_kind(r.code, &r.stderr, r.timed_out)
            }
        ));
        sample("after that push", &mut probe_lines);
        // No server-side timeout ends them: the client's keep-alives keep
        // the connections open while the downloads sit flow-blocked.
        std::thread::sleep(PROBE_HOLD);
        let alive = h
            .conns
            .iter()
            .filter(|c| c.close_reason().is_none())
            .count();
        sample(
            &format!("held {} s more ({alive} conns open)", PROBE_HOLD.as_secs()),
            &mut probe_lines,
        );
        rt.block_on(h.close());
        std::thread::sleep(Duration::from_secs(3));
        sample("connections closed (+3 s)", &mut probe_lines);
        std::thread::sleep(Duration::from_secs(15));
        sample("connections closed (+18 s)", &mut probe_lines);
        let r = norm_push("probe-after")?;
        probe_lines.push(format!(
            "normal push after closing them: {:.0} ms, exit {}",
            ms(r.wall),
            r.code
        ));
    }
    let hwm_end = server.kib("VmHWM:");
    let clean_stop = server.stop();

    // ---- Report
    let s = lock(&shared);
    let after_fail = lock(&after_fail);
    let reqs = &s.requests;
    let total = reqs.len();
    let ok_reqs: Vec<&Request> = reqs.iter().filter(|r| r.ok).collect();
    let small_bytes: u64 = ok_reqs.iter().map(|r| r.bytes).sum();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in reqs {
        if let Some(e) = &r.error {
            *errors
                .entry(format!(
                    "{} {e}",
                    if r.kind == Kind::Push { "push" } else { "pull" }
                ))
                .or_default() += 1;
        }
    }
    let lat = |k: Option<Kind>| -> Vec<Duration> {
        let mut v: Vec<Duration> = reqs
            .iter()
            .filter(|r| k.is_none_or(|k| r.kind == k))
            .map(|r| r.wall)
            .collect();
        v.sort();
        v
    };
    let last_end = reqs.iter().map(|r| r.end).max().unwrap_or(small_wall);
    let clients_done: usize = {
        let mut seen = std::collections::HashSet::new();
        for r in reqs {
            seen.insert(r.client);
        }
        seen.len()
    };
    println!();
    println!("== Matterdrop load test (loopback, 127.0.0.1) ==");
    println!(
        "clients             {} distinct identities and homes ({clients_done} made requests), {} matters of ≤ {}, {} rounds of push + pull",
        opts.clients, groups, opts.group, opts.rounds
    );
    println!(
        "driver              real `mdrop` processes (one per request), at most {concurrency} at once, nice {}; latency = process wall clock",
        opts.client_nice
    );
    println!(
        "set-up              {:.1} s ({} users enrolled)",
        setup_time.as_secs_f64(),
        ids.len() + 1
    );
    println!();
    println!(
        "requests            {total} ({} ok, {} failed): {} pushes, {} pulls",
        ok_reqs.len(),
        total - ok_reqs.len(),
        reqs.iter().filter(|r| r.kind == Kind::Push).count(),
        reqs.iter().filter(|r| r.kind == Kind::Pull).count()
    );
    println!(
        "small load window   {:.2} s (clients released → last small request done)",
        last_end.as_secs_f64()
    );
    println!(
        "throughput          {:.1} requests/s, {:.2} MB/s of small-packet plaintext (pushed + pulled)",
        total as f64 / last_end.as_secs_f64(),
        small_bytes as f64 / 1e6 / last_end.as_secs_f64()
    );
    println!(
        "{:<19} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "latency (ms)", "n", "p50", "p99", "max", "min"
    );
    for (name, k) in [
        ("  push", Some(Kind::Push)),
        ("  pull", Some(Kind::Pull)),
        ("  all", None),
    ] {
        let v = lat(k);
        println!(
            "{name:<19} {:>8} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
            v.len(),
            ms(pct(&v, 50.0)),
            ms(pct(&v, 99.0)),
            ms(v.last().copied().unwrap_or_default()),
            ms(v.first().copied().unwrap_or_default())
        );
    }
    if !meta_samples.is_empty() {
        println!(
            "metadata probe (ms) {} in-process clients on persistent connections, one request each every {} ms, through the whole load window",
            opts.meta_clients.min(opts.clients),
            opts.meta_interval.as_millis()
        );
        let mut kinds: Vec<&str> = meta_samples.iter().map(|m| m.0).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds.push("all");
        for kind in kinds {
            let mut v: Vec<Duration> = meta_samples
                .iter()
                .filter(|m| kind == "all" || m.0 == kind)
                .map(|m| m.1)
                .collect();
            let failed = meta_samples
                .iter()
                .filter(|m| (kind == "all" || m.0 == kind) && !m.2)
                .count();
            v.sort();
            println!(
                "  {kind:<17} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1}{}",
                v.len(),
                ms(pct(&v, 50.0)),
                ms(pct(&v, 99.0)),
                ms(v.last().copied().unwrap_or_default()),
                ms(v.first().copied().unwrap_or_default()),
                if failed > 0 {
                    format!("  ({failed} failed)")
                } else {
                    String::new()
                }
            );
        }
    }
    let server_reqs = server_requests(&server.log, log_from, log_to);
    let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut not_ok: BTreeMap<String, u64> = BTreeMap::new();
    for (name, outcome, elapsed) in &server_reqs {
        by_name.entry(name.clone()).or_default().push(*elapsed);
        if outcome != "ok" {
            *not_ok.entry(format!("{name}: {outcome}")).or_default() += 1;
        }
    }
    println!(
        "server handler time (ms, from its log; the request's work on the blocking pool, without transfer time)"
    );
    for (name, mut v) in by_name {
        v.sort_unstable();
        let p = |q: f64| v[((q / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        println!(
            "  {name:<17} {:>8} {:>8} {:>8} {:>8}",
            v.len(),
            p(50.0),
            p(99.0),
            v.last().copied().unwrap_or(0)
        );
    }
    if !not_ok.is_empty() {
        println!("server-side refusals during the load:");
        for (k, n) in &not_ok {
            println!("  {n:>6}  {k}");
        }
    }
    let warnings = server_warnings(&server.log, log_from, log_to);
    if !warnings.is_empty() {
        println!("server warnings/errors during the load:");
        for (k, n) in &warnings {
            println!("  {n:>6}  {k}");
        }
    }
    if errors.is_empty() {
        println!("errors              none");
    } else {
        println!("errors by kind (exit code: message)");
        for (k, n) in &errors {
            println!("  {n:>6}  {k}");
        }
    }
    let silent = s.silent.len() + after_fail.len() + usize::from(large_problem.is_some());
    println!(
        "silent failures     {silent} ({acked_small} acknowledged small pushes: {} pulled during the load, {} pulled afterwards; every pull compared byte for byte)",
        acked_small - unpulled.len(),
        unpulled.len()
    );
    for m in s
        .silent
        .iter()
        .chain(after_fail.iter())
        .chain(large_problem.iter())
    {
        println!("  - {m}");
    }
    match &large_run {
        Some(r) => println!(
            "large transfer      push of {} MiB during the load: exit {} in {:.2} s = {:.1} MB/s{}{}{}",
            opts.large_mib,
            r.code,
            r.wall.as_secs_f64(),
            (opts.large_mib * MIB) as f64 / 1e6 / r.wall.as_secs_f64(),
            if r.code == 0 {
                String::new()
            } else {
                format!(" ({})", error_kind(r.code, &r.stderr, r.timed_out))
            },
            large_alone.map_or_else(String::new, |w| format!(
                "; alone before the load {:.2} s = {:.1} MB/s (loaded/alone {:.2})",
                w.as_secs_f64(),
                (opts.large_mib * MIB) as f64 / 1e6 / w.as_secs_f64(),
                w.as_secs_f64() / r.wall.as_secs_f64()
            )),
            large_pull.map_or_else(String::new, |w| format!(
                "; pulled back afterwards (alone) in {:.2} s = {:.1} MB/s, byte-identical: {}",
                w.as_secs_f64(),
                (opts.large_mib * MIB) as f64 / 1e6 / w.as_secs_f64(),
                large_problem.is_none()
            ))
        ),
        None => println!("large transfer      none (--large-mib 0)"),
    }
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "load window         {:.2} s including the large push; machine CPU busy {}; mdropd used {:.1} CPU-s",
        load_wall.as_secs_f64(),
        match (cpu0, cpu1) {
            (Some(a), Some(b)) if b.1 > a.1 => format!(
                "{:.0} % of {ncpu} CPUs ({:.1} CPU-s)",
                100.0 * (b.0 - a.0) as f64 / (b.1 - a.1) as f64,
                (b.0 - a.0) as f64 / (b.1 - a.1) as f64 * ncpu as f64 * load_wall.as_secs_f64()
            ),
            _ => "?".into(),
        },
        (server_cpu1 - server_cpu0) as f64 / 100.0
    );
    println!(
        "mdropd memory       VmHWM {:.1} MiB after set-up (VmRSS {:.1}), {:.1} MiB after the hog tests, {:.1} MiB after the load \
         (VmRSS peak sampled every 50 ms: {:.1} MiB), {:.1} MiB at the end",
        mib(hwm_setup),
        mib(rss_setup),
        mib(hwm_hog),
        mib(hwm_load),
        mib(peak_rss),
        mib(hwm_end)
    );
    println!(
        "mdropd shutdown     {}",
        if clean_stop {
            "clean (SIGTERM)"
        } else {
            "NOT clean"
        }
    );
    println!();
    println!(
        "stream hog          a fresh unenrolled key; one byte of a frame header per stream, then silence (limit {MAX_CONCURRENT_STREAMS} streams per connection)"
    );
    println!(
        "  baseline          normal `mdrop push` (16 KiB) without hog: {:.0} ms, exit {}",
        ms(baseline.wall),
        baseline.code
    );
    let mut hog_ok = true;
    for h in &hog_reports {
        hog_ok &= h.push_ok && h.extra_opened == 0;
        println!(
            "  {:>3} connection(s) {} streams held; a stream beyond the limit opened on {} connection(s); normal push {:.0} ms {} (bound {} s){}",
            h.connections,
            h.streams,
            h.extra_opened,
            ms(h.push_wall),
            if h.push_ok { "OK" } else { "FAILED" },
            opts.hog_bound.as_secs(),
            if h.push_error.is_empty() {
                String::new()
            } else {
                format!(": {}", h.push_error)
            }
        );
    }
    if !hog_answers_all.is_empty() {
        let mut kinds: BTreeMap<String, (u64, f64, f64)> = BTreeMap::new();
        for (what, t) in &hog_answers_all {
            let e = kinds.entry(what.clone()).or_insert((0, f64::INFINITY, 0.0));
            e.0 += 1;
            e.1 = e.1.min(*t);
            e.2 = e.2.max(*t);
        }
        println!("  what the held streams got back (after the byte was sent):");
        for (what, (n, lo, hi)) in kinds {
            println!("    {n:>5} × {what}  ({lo:.1}–{hi:.1} s)");
        }
    }
    if !probe_lines.is_empty() {
        println!(
            "stalled downloads   {} connections × {MAX_CONCURRENT_STREAMS} blob-get streams of the large blob by an enrolled recipient, never read: {}",
            opts.probe_stalled,
            if probe_ok {
                "normal push OK"
            } else {
                "normal push FAILED"
            }
        );
        for l in &probe_lines {
            println!("  {l}");
        }
    }
    println!();
    println!(
        "elapsed             {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "reproduce           cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/loadtest{}{}",
        if args.is_empty() { "" } else { " " },
        args.join(" ")
    );
    let meta_failed = meta_samples.iter().filter(|m| !m.2).count();
    let ok = silent == 0 && hog_ok && probe_ok && clean_stop && meta_failed == 0;
    println!(
        "RESULT              {}",
        if ok {
            "PASS: no silent failure, every metadata request answered, the hog did not block a normal push"
        } else {
            "FAIL"
        }
    );
    drop(s);
    drop(after_fail);
    if opts.keep {
        let kept = tmp.keep();
        println!(
            "kept                {} (mdropd log: {})",
            kept.display(),
            kept.join("mdropd.log").display()
        );
    }
    Ok(ok)
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}
