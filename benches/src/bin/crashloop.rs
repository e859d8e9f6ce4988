//! `crashloop`: `kill -9` the server under load, again and again, and check
//! that nothing it acknowledged is ever lost.
//!
//! Set-up (once): a fresh data directory, `mdropd serve`, the bootstrap
//! admin, a firm `firm-a` with K pushers (`alice@firm-a`, the matter's
//! attorney, then paralegals and attorneys), a provider `bob@lpo-1` who
//! signs the acknowledgment and pulls, and matter `2026-CRASH-0001` with
//! scope `document-review`.
//!
//! Each cycle:
//!
//! 1. (Re)start `mdropd` on the same data directory (`127.0.0.1:0`, so a new
//!    port each time; every home's `server.json` is repointed, as the
//!    end-to-end tests do).
//! 2. Check what the previous `kill -9` left behind, before any new load:
//!    - every packet whose push was *acknowledged* (`mdrop push` exited 0
//!      and printed its id) is listed in bob's `inbox --all`; the ones
//!      acknowledged since the last check, plus a random sample of older
//!      ones, are pulled by bob and compared byte for byte (all of them
//!      once more at the very end);
//!    - every packet bob's inbox lists pulls completely (nothing is
//!      half-visible), including packets whose commit landed but whose
//!      answer was lost in the kill (their content is known too: it must
//!      match);
//!    - the admin exports the whole audit log; `mdrop audit verify` passes
//!      and proves it consistent with the checkpoint verified the cycle
//!      before (nothing acknowledged was rolled back); the log holds a
//!      `push-committed` entry for every acknowledged push and for every
//!      visible packet, and at least as many allowed `pull` entries by bob
//!      for each packet as bob had acknowledged pulls of it;
//!    - the server's `DATA/staging` directory stays bounded (see below).
//! 3. K client threads push fresh random files (sizes 0..=`--max-file-kib`
//!    KiB, content remembered by SHA-256) and bob pulls packets the same
//!    thread had acknowledged, byte-comparing each; after a random delay
//!    the server gets SIGKILL (`Child::kill`). A running `mdrop` cannot
//!    learn that (QUIC ignores ICMP; it would wait for its 30 s idle
//!    timeout), so `mdrop` processes still running `--grace-ms` after the
//!    kill are killed too and count as not acknowledged.
//!
//! A push that failed is retried with the same file by the same client in
//! its next turn: the client reuses its spool (same ciphertext, same packet
//! id) and resumes the upload. If the failed attempt's commit had in fact
//! landed, the retry is answered with the same id (commits are idempotent;
//! older servers refused it with "packet … already exists"); the packet
//! is then recorded as *committed without acknowledgment* and checked like
//! the others (it must pull byte-identical).
//!
//! Staging bound: a client has at most one push in progress (a failed one
//! is retried before anything new), uploads its blobs one after another
//! (the manifest first), and a complete blob leaves `staging/` by rename.
//! So after a restart at most one partial upload per client can be staged:
//! at most K files of at most `--max-file-kib` KiB of plaintext plus the
//! age overhead (header and 16 bytes per 64 KiB chunk; 64 KiB is allowed).
//! More than that would be a leak that grows with the number of kills (the
//! server only sweeps staging files older than 7 days).
//!
//! ```text
//! cargo run -p matterdrop-benches --bin crashloop -- --short     # 50 kill cycles
//! cargo run --release -p matterdrop-benches --bin crashloop -- --cycles 1000
//! ```
//!
//! Options: `--cycles N` (default 50; `--short` = 50, `--long` = 1000),
//! `--clients K` (3), `--seed S` (random; printed), `--max-file-kib N`
//! (256), `--min-delay-ms` / `--max-delay-ms` (50 / 800: load before the
//! kill), `--grace-ms` (1500), `--sample M` (older packets re-pulled per
//! cycle, 2), `--cycle-timeout-secs` (120), `--timeout-secs` (per `mdrop`,
//! 60), `--dir PATH`, `--keep`, `--verbose`. The binaries come from
//! `MDROP_BIN_DIR`, else from the directory of this executable (build them
//! with `cargo build -p matterdrop -p matterdrop-server`).
//! Exit status: 0 when nothing was lost, 1 otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const MATTER: &str = "2026-CRASH-0001";
const TASK: &str = "document-review";
const BOB: &str = "bob@lpo-1";
/// Age overhead allowed per staged blob (header with a few recipients,
/// 16 bytes per 64 KiB chunk).
const AGE_SLACK: u64 = 64 * 1024;

struct Options {
    cycles: usize,
    clients: usize,
    seed: u64,
    max_file_kib: u64,
    min_delay: Duration,
    max_delay: Duration,
    grace: Duration,
    sample: usize,
    cycle_timeout: Duration,
    timeout: Duration,
    dir: Option<PathBuf>,
    keep: bool,
    verbose: bool,
}

fn usage() -> String {
    "usage: crashloop [--short | --long | --cycles N] [--clients K] [--seed S] [--max-file-kib N]\n\
     \x20                [--min-delay-ms MS] [--max-delay-ms MS] [--grace-ms MS] [--sample M]\n\
     \x20                [--cycle-timeout-secs S] [--timeout-secs S] [--dir PATH] [--keep] [--verbose]\n\
     env: MDROP_BIN_DIR=dir holding mdrop and mdropd (default: next to this executable)"
        .to_owned()
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        cycles: 50,
        clients: 3,
        seed: random_seed(),
        max_file_kib: 256,
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(800),
        grace: Duration::from_millis(1500),
        sample: 2,
        cycle_timeout: Duration::from_secs(120),
        timeout: Duration::from_secs(60),
        dir: None,
        keep: false,
        verbose: false,
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
            "--short" => o.cycles = 50,
            "--long" => o.cycles = 1000,
            "--cycles" => o.cycles = usize::try_from(num("--cycles")?)?,
            "--clients" => o.clients = usize::try_from(num("--clients")?)?,
            "--seed" => o.seed = num("--seed")?,
            "--max-file-kib" => o.max_file_kib = num("--max-file-kib")?,
            "--min-delay-ms" => o.min_delay = Duration::from_millis(num("--min-delay-ms")?),
            "--max-delay-ms" => o.max_delay = Duration::from_millis(num("--max-delay-ms")?),
            "--grace-ms" => o.grace = Duration::from_millis(num("--grace-ms")?),
            "--sample" => o.sample = usize::try_from(num("--sample")?)?,
            "--cycle-timeout-secs" => {
                o.cycle_timeout = Duration::from_secs(num("--cycle-timeout-secs")?);
            }
            "--timeout-secs" => o.timeout = Duration::from_secs(num("--timeout-secs")?),
            "--dir" => o.dir = Some(PathBuf::from(value("--dir")?)),
            "--keep" => o.keep = true,
            "--verbose" | "-v" => o.verbose = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?}\n{}", usage()),
        }
    }
    ensure!(o.cycles >= 1, "--cycles must be at least 1");
    ensure!(
        (1..=16).contains(&o.clients),
        "--clients must be between 1 and 16"
    );
    ensure!(
        o.min_delay <= o.max_delay,
        "--min-delay-ms > --max-delay-ms"
    );
    Ok(o)
}

// ---------------------------------------------------------------------------
// Small helpers

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u64::from_le_bytes(b) >> 16
}

/// SplitMix64.
#[derive(Debug, Clone)]
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
        "{} not found: build it with `cargo build -p matterdrop -p matterdrop-server` \
         (or --release), or set MDROP_BIN_DIR",
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

/// (files, bytes) under `dir`, recursively.
fn dir_usage(dir: &Path) -> (u64, u64) {
    let Ok(rd) = fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut out = (0, 0);
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            let (f, b) = dir_usage(&e.path());
            out.0 += f;
            out.1 += b;
        } else {
            out.0 += 1;
            out.1 += m.len();
        }
    }
    out
}

fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
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

/// The first line of an error message with ids and numbers blanked, so
/// that errors of one kind count together.
fn error_kind(code: i32, stderr: &str, killed: Option<Killed>) -> String {
    if let Some(k) = killed {
        return format!("killed by harness ({k:?})");
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mdrop: error:"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("")
        .trim_start_matches("mdrop: error: ");
    let mut out = String::new();
    let mut last_hash = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (c.is_ascii_hexdigit() && c.is_ascii_lowercase() && last_hash) {
            if !last_hash {
                out.push('#');
            }
            last_hash = true;
        } else {
            out.push(c);
            last_hash = false;
        }
    }
    let out: String = out.chars().take(110).collect();
    format!("exit {code}: {out}")
}

// ---------------------------------------------------------------------------
// Child processes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    Timeout,
    ServerGone,
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    killed: Option<Killed>,
}

impl Run {
    fn json(&self, what: &str) -> Result<Value> {
        ensure!(
            self.code == 0,
            "{what} failed (exit {}, {:?}):\n{}{}",
            self.code,
            self.killed,
            self.stdout,
            self.stderr
        );
        serde_json::from_str(self.stdout.trim())
            .with_context(|| format!("{what}: stdout is not JSON: {:?}", self.stdout))
    }
}

/// Runs `cmd`, killing it after `timeout` or once `abort` is set.
fn run_cmd(mut cmd: Command, timeout: Duration, abort: Option<&AtomicBool>) -> Result<Run> {
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
        let _ = tx.send(());
        st
    });
    let mut killed = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if killed.is_none() {
            let why = if start.elapsed() > timeout {
                Some(Killed::Timeout)
            } else if abort.is_some_and(|a| a.load(Ordering::SeqCst)) {
                Some(Killed::ServerGone)
            } else {
                None
            };
            if why.is_some() {
                signal(pid, "KILL");
                killed = why;
            }
        }
    }
    let status = waiter
        .join()
        .map_err(|_| anyhow!("waiter thread panicked"))??;
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    Ok(Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        killed,
    })
}

/// Runs `mdrop` commands.
#[derive(Debug, Clone)]
struct Mdrop {
    bin: PathBuf,
    timeout: Duration,
}

impl Mdrop {
    fn run(&self, home: &Path, args: &[&str], abort: Option<&AtomicBool>) -> Result<Run> {
        let mut c = Command::new(&self.bin);
        c.arg("--home").arg(home).arg("--json").args(args);
        c.env_remove("MDROP_PASSPHRASE");
        run_cmd(c, self.timeout, abort)
    }

    fn json(&self, home: &Path, args: &[&str]) -> Result<Value> {
        self.run(home, args, None)?
            .json(&format!("mdrop {}", args.join(" ")))
    }

    fn enroll(&self, home: &Path, server: &Server, invite: &str, id: &str) -> Result<()> {
        self.json(home, &["keygen"])?;
        self.json(
            home,
            &[
                "enroll",
                &server.addr,
                "--fingerprint",
                &server.fingerprint,
                "--invite",
                invite,
                "--id",
                id,
                "--name",
                id,
            ],
        )?;
        Ok(())
    }
}

/// A running `mdropd serve`, killed on drop.
struct Server {
    child: Option<Child>,
    addr: String,
    fingerprint: String,
    invite: Option<String>,
}

impl Server {
    fn start(mdropd: &Path, data: &Path, log: &Path, timeout: Duration) -> Result<Self> {
        let mut logfile = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(logfile, "=== crashloop: starting mdropd ===")?;
        let mut child = Command::new(mdropd)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--json",
                "--shutdown-grace",
                "5s",
                "--data",
            ])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logfile)
            .spawn()
            .with_context(|| format!("spawning {}", mdropd.display()))?;
        let stdout = child.stdout.take().context("mdropd stdout")?;
        let mut server = Self {
            child: Some(child),
            addr: String::new(),
            fingerprint: String::new(),
            invite: None,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining so mdropd never writes into a closed pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                bail!(
                    "mdropd did not start within {timeout:?} (status {status:?}); log {}:\n{}",
                    log.display(),
                    tail(log, 30)
                );
            };
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("mdropd --json printed {line:?}"))?;
            if let Some(i) = v["invite"].as_str() {
                server.invite = Some(i.to_owned());
                continue;
            }
            server.addr = v["listen"].as_str().context("listen")?.to_owned();
            server.fingerprint = v["fingerprint"].as_str().context("fingerprint")?.to_owned();
            return Ok(server);
        }
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 20 s; whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(child.id(), "TERM");
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
        self.kill();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn repoint(home: &Path, addr: &str) -> Result<()> {
    let path = home.join("server.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    v["server"] = addr.into();
    let tmp = path.with_extension("json.crashloop");
    fs::write(&tmp, v.to_string())?;
    fs::rename(&tmp, &path)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// What the clients did

/// A file one client pushed (or tried to).
#[derive(Debug, Clone)]
struct Payload {
    client: usize,
    path: PathBuf,
    name: String,
    sha256: [u8; 32],
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// `mdrop push` exited 0 with this id.
    Acknowledged,
    /// The commit landed but its answer was lost (a retry said "already exists").
    CommittedUnacknowledged,
}

#[derive(Debug, Clone)]
struct Packet {
    payload: Payload,
    status: Status,
    cycle: usize,
    /// Byte-identical pulls after a restart (verification pulls).
    verified: bool,
}

/// Everything the harness knows; shared by the client threads.
#[derive(Debug, Default)]
struct Ledger {
    packets: BTreeMap<String, Packet>,
    /// Every file ever handed to `mdrop push`, by its name in the packet.
    attempted: HashMap<String, Payload>,
    /// Acknowledged pulls by bob, per packet id.
    pulls_acked: HashMap<String, u64>,
    /// Ids acknowledged since the last check.
    fresh: Vec<String>,
    pushes_tried: u64,
    pushes_acked: u64,
    load_pulls_tried: u64,
    load_pulls_ok: u64,
    verify_pulls_ok: u64,
    errors: BTreeMap<String, u64>,
    /// Problems: anything here fails the run.
    failures: Vec<String>,
    reported: HashSet<String>,
    lost: u64,
    half_visible: u64,
    unaudited: u64,
    corrupt: u64,
}

impl Ledger {
    /// Records a problem once (the same problem seen again after a later
    /// restart is not repeated); whether it is new.
    fn fail(&mut self, what: String) -> bool {
        let key = match what.split_once(": ") {
            Some((label, rest)) if label.starts_with("cycle ") || label == "final" => {
                rest.to_owned()
            }
            _ => what.clone(),
        };
        self.fail_key(key, what)
    }

    fn fail_key(&mut self, key: String, what: String) -> bool {
        if !self.reported.insert(key) {
            return false;
        }
        eprintln!("FAILURE: {what}");
        self.failures.push(what);
        true
    }
}

/// Per-client state that outlives a cycle.
#[derive(Debug)]
struct ClientState {
    home: PathBuf,
    files: PathBuf,
    pending: Option<Payload>,
    seq: u64,
    rng: Rng,
}

/// The packet id named in "packet p-… already exists".
fn existing_id(stderr: &str) -> Option<String> {
    let at = stderr.find("packet p-")?;
    let id: String = stderr[at + 7..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (stderr.contains("already exists") && id.len() == 34).then_some(id)
}

struct LoadCtx {
    md: Mdrop,
    bob: PathBuf,
    root: PathBuf,
    max_file: u64,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    cycle: usize,
    verbose: bool,
}

fn lock(l: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client thread: push (or retry), pull one of its own packets, repeat.
fn client_loop(k: usize, st: &mut ClientState, cx: &LoadCtx) -> Result<()> {
    let mut pull_seq = 0u64;
    while !cx.stop.load(Ordering::SeqCst) {
        let payload = match st.pending.take() {
            Some(p) => p,
            None => {
                st.seq += 1;
                let name = format!("c{k}-{:05}.bin", st.seq);
                let size = st.rng.below(cx.max_file + 1);
                let mut data = vec![0u8; usize::try_from(size)?];
                st.rng.fill(&mut data);
                let path = st.files.join(&name);
                fs::write(&path, &data)?;
                let p = Payload {
                    client: k,
                    path,
                    name: name.clone(),
                    sha256: Sha256::digest(&data).into(),
                    size,
                };
                lock(&cx.ledger).attempted.insert(name, p.clone());
                p
            }
        };
        let path = payload.path.to_str().context("non-UTF-8 path")?.to_owned();
        let r = cx.md.run(
            &st.home,
            &["push", MATTER, &path, "--task", TASK],
            Some(&cx.abort),
        )?;
        {
            let mut l = lock(&cx.ledger);
            l.pushes_tried += 1;
            if r.code == 0 {
                let v: Value = serde_json::from_str(r.stdout.trim())
                    .with_context(|| format!("push printed {:?}", r.stdout))?;
                let id = v["id"].as_str().context("push: no id")?.to_owned();
                l.pushes_acked += 1;
                l.fresh.push(id.clone());
                let prev = l.packets.insert(
                    id.clone(),
                    Packet {
                        payload: payload.clone(),
                        status: Status::Acknowledged,
                        cycle: cx.cycle,
                        verified: false,
                    },
                );
                // A retry of a push whose commit landed earlier is answered
                // with the same id (commits are idempotent); the same id for
                // other content would be a real failure.
                if prev.is_some_and(|p| p.payload.sha256 != payload.sha256) {
                    l.fail(format!(
                        "id {id} acknowledged for {} and for other content",
                        payload.name
                    ));
                }
            } else if let Some(id) = existing_id(&r.stderr) {
                // The earlier attempt's commit landed; its answer was lost.
                *l.errors
                    .entry("exit 1: packet … already exists (commit landed, answer lost)".into())
                    .or_default() += 1;
                l.fresh.push(id.clone());
                l.packets.entry(id).or_insert(Packet {
                    payload: payload.clone(),
                    status: Status::CommittedUnacknowledged,
                    cycle: cx.cycle,
                    verified: false,
                });
            } else {
                if cx.verbose {
                    eprintln!(
                        "  c{k} push {}: exit {} {}",
                        payload.name,
                        r.code,
                        r.stderr.trim()
                    );
                }
                *l.errors
                    .entry(error_kind(r.code, &r.stderr, r.killed))
                    .or_default() += 1;
                st.pending = Some(payload);
            }
        }
        if cx.stop.load(Ordering::SeqCst) {
            break;
        }
        // Pull one of this client's packets (ids are partitioned by client,
        // so no two of bob's pulls share a partial directory).
        let mine: Vec<(String, Payload)> = lock(&cx.ledger)
            .packets
            .iter()
            .filter(|(_, p)| p.payload.client == k && p.status == Status::Acknowledged)
            .map(|(id, p)| (id.clone(), p.payload.clone()))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let (id, want) = &mine[usize::try_from(st.rng.below(mine.len() as u64))?];
        pull_seq += 1;
        let out = cx
            .root
            .join("pulls")
            .join(format!("load-{}-c{k}-{pull_seq}", cx.cycle));
        let out_s = out.to_str().context("non-UTF-8 path")?.to_owned();
        let r = cx
            .md
            .run(&cx.bob, &["pull", id, "--out", &out_s], Some(&cx.abort))?;
        let mut l = lock(&cx.ledger);
        l.load_pulls_tried += 1;
        if r.code == 0 {
            match check_pulled(&out, want) {
                Ok(()) => {
                    l.load_pulls_ok += 1;
                    *l.pulls_acked.entry(id.clone()).or_default() += 1;
                }
                Err(e) => {
                    l.corrupt += 1;
                    l.fail(format!("pull of {id} exited 0 but: {e:#}"));
                }
            }
        } else {
            if cx.verbose {
                eprintln!("  c{k} pull {id}: exit {} {}", r.code, r.stderr.trim());
            }
            *l.errors
                .entry(error_kind(r.code, &r.stderr, r.killed))
                .or_default() += 1;
        }
        drop(l);
        let _ = fs::remove_dir_all(&out);
    }
    Ok(())
}

/// The pulled directory holds exactly `want`, byte for byte.
fn check_pulled(out: &Path, want: &Payload) -> Result<()> {
    let names: Vec<String> = fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(
        names == [want.name.clone()],
        "pulled {names:?}, expected [{}]",
        want.name
    );
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
}

// ---------------------------------------------------------------------------
// Checks after a restart

struct World {
    md: Mdrop,
    root: PathBuf,
    data: PathBuf,
    admin: PathBuf,
    bob: PathBuf,
    clients: Vec<Arc<Mutex<ClientState>>>,
    ledger: Arc<Mutex<Ledger>>,
}

#[derive(Debug, Default)]
struct CheckReport {
    visible: usize,
    pulled: usize,
    audit_entries: u64,
    staging_files: u64,
    staging_bytes: u64,
}

fn verify_pull(w: &World, id: &str, want: &Payload, label: &str) -> Result<bool> {
    let out = w.root.join("pulls").join(format!("verify-{label}-{id}"));
    let _ = fs::remove_dir_all(&out);
    let out_s = out.to_str().context("non-UTF-8 path")?.to_owned();
    let r = w.md.run(&w.bob, &["pull", id, "--out", &out_s], None)?;
    let mut l = lock(&w.ledger);
    if r.code != 0 {
        l.fail(format!(
            "{label}: pull of {id} ({}) failed after restart: exit {} {}",
            want.name,
            r.code,
            r.stderr.trim()
        ));
        let _ = fs::remove_dir_all(&out);
        return Ok(false);
    }
    let ok = match check_pulled(&out, want) {
        Ok(()) => {
            l.verify_pulls_ok += 1;
            *l.pulls_acked.entry(id.to_owned()).or_default() += 1;
            if let Some(p) = l.packets.get_mut(id) {
                p.verified = true;
            }
            true
        }
        Err(e) => {
            l.corrupt += 1;
            l.fail(format!("{label}: pull of {id} differs: {e:#}"));
            false
        }
    };
    drop(l);
    let _ = fs::remove_dir_all(&out);
    Ok(ok)
}

/// Everything the issue asks to hold after a restart. `all`: pull every
/// known packet (the final check), else the fresh ones and a sample.
fn check(
    w: &World,
    cycle: usize,
    label: &str,
    all: bool,
    sample: usize,
    rng: &mut Rng,
    staging_bound: (u64, u64),
) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    // 1. bob's inbox: every acknowledged packet is there; everything there
    //    pulls completely.
    let inbox = w.md.json(&w.bob, &["inbox", "--all"])?;
    let listed: HashSet<String> = inbox["items"]
        .as_array()
        .context("inbox items")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    rep.visible = listed.len();
    let (known, fresh): (BTreeMap<String, Packet>, Vec<String>) = {
        let mut l = lock(&w.ledger);
        let fresh = std::mem::take(&mut l.fresh);
        (l.packets.clone(), fresh)
    };
    for (id, p) in &known {
        if !listed.contains(id) {
            let mut l = lock(&w.ledger);
            let new = l.fail(format!(
                "{label}: {:?} packet {id} ({}, cycle {}) is missing from bob's inbox",
                p.status, p.payload.name, p.cycle
            ));
            if new && p.status == Status::Acknowledged {
                l.lost += 1;
            }
        }
    }
    let mut to_pull: Vec<(String, Payload)> = Vec::new();
    let mut seen = HashSet::new();
    for id in &listed {
        if known.contains_key(id) {
            continue;
        }
        // Visible but unknown to the harness: a commit whose answer was
        // lost and that no retry has claimed yet. Its file is one that was
        // attempted: the pull must succeed and match it.
        let out = w.root.join("pulls").join(format!("unknown-{id}"));
        let _ = fs::remove_dir_all(&out);
        let out_s = out.to_str().context("non-UTF-8 path")?.to_owned();
        let r = w.md.run(&w.bob, &["pull", id, "--out", &out_s], None)?;
        let mut l = lock(&w.ledger);
        if r.code != 0 {
            if l.fail(format!(
                "{label}: packet {id} is in bob's inbox but does not pull: exit {} {}",
                r.code,
                r.stderr.trim()
            )) {
                l.half_visible += 1;
            }
            continue;
        }
        let name = fs::read_dir(&out)
            .ok()
            .and_then(|mut rd| rd.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_default();
        match l.attempted.get(&name).cloned() {
            Some(want) => match check_pulled(&out, &want) {
                Ok(()) => {
                    l.verify_pulls_ok += 1;
                    *l.pulls_acked.entry(id.clone()).or_default() += 1;
                    l.packets.insert(
                        id.clone(),
                        Packet {
                            payload: want,
                            status: Status::CommittedUnacknowledged,
                            cycle,
                            verified: true,
                        },
                    );
                    rep.pulled += 1;
                }
                Err(e) => {
                    l.corrupt += 1;
                    l.fail(format!("{label}: visible packet {id} differs: {e:#}"));
                }
            },
            None => {
                l.fail(format!(
                    "{label}: packet {id} in bob's inbox holds {name:?}, which nobody pushed"
                ));
            }
        }
        drop(l);
        let _ = fs::remove_dir_all(&out);
        seen.insert(id.clone());
    }
    if all {
        to_pull.extend(known.iter().map(|(id, p)| (id.clone(), p.payload.clone())));
    } else {
        for id in &fresh {
            if let Some(p) = known.get(id) {
                if seen.insert(id.clone()) {
                    to_pull.push((id.clone(), p.payload.clone()));
                }
            }
        }
        // Never-verified ones (e.g. their check was interrupted), then a
        // random sample of the rest.
        for (id, p) in &known {
            if !p.verified && seen.insert(id.clone()) {
                to_pull.push((id.clone(), p.payload.clone()));
            }
        }
        let rest: Vec<&String> = known.keys().filter(|id| !seen.contains(*id)).collect();
        for _ in 0..sample.min(rest.len()) {
            let id = rest[usize::try_from(rng.below(rest.len() as u64))?];
            if seen.insert(id.clone()) {
                to_pull.push((id.clone(), known[id].payload.clone()));
            }
        }
    }
    for (id, want) in &to_pull {
        if listed.contains(id) {
            verify_pull(w, id, want, label)?;
            rep.pulled += 1;
        }
    }

    // 2. The audit log: verifies, consistent with the last checkpoint,
    //    and holds every acknowledged event.
    let bundle = w.root.join("audit.bundle");
    let bundle_s = bundle.to_str().context("non-UTF-8 path")?.to_owned();
    w.md.json(&w.admin, &["audit", "export", "--out", &bundle_s])?;
    let v = w.md.run(&w.admin, &["audit", "verify", &bundle_s], None)?;
    let verified = if v.code == 0 {
        serde_json::from_str::<Value>(v.stdout.trim()).ok()
    } else {
        None
    };
    match &verified {
        Some(v) if v["ok"] == true => {
            rep.audit_entries = v["entries"].as_u64().unwrap_or(0);
            if cycle > 1 && v["consistent_with_previous_checkpoint"] != true {
                lock(&w.ledger).fail(format!(
                    "{label}: the audit log is not provably consistent with the previous checkpoint: {v}"
                ));
            }
        }
        _ => {
            lock(&w.ledger).fail(format!(
                "{label}: audit verify failed: exit {} {}{}",
                v.code,
                v.stdout.trim(),
                v.stderr.trim()
            ));
        }
    }
    let shown = w.md.json(&w.admin, &["audit", "show", &bundle_s])?;
    let mut committed: HashSet<String> = HashSet::new();
    let mut pulls: HashMap<String, u64> = HashMap::new();
    for e in shown["entries"].as_array().context("audit entries")? {
        let (Some(action), Some(object)) = (e["action"].as_str(), e["object"].as_str()) else {
            continue;
        };
        if e["allowed"] != true {
            continue;
        }
        match action {
            "push-committed" => {
                committed.insert(object.to_owned());
            }
            "pull" if e["principal"] == BOB => *pulls.entry(object.to_owned()).or_default() += 1,
            _ => {}
        }
    }
    {
        let mut l = lock(&w.ledger);
        let mut problems = Vec::new();
        for (id, p) in &l.packets {
            if !committed.contains(id) {
                let what = match p.status {
                    Status::Acknowledged => format!(
                        "no push-committed audit entry for acknowledged packet {id} ({})",
                        p.payload.name
                    ),
                    Status::CommittedUnacknowledged => format!(
                        "packet {id} ({}) was committed (its push was interrupted by the kill; \
                         it is visible and pulls) but the audit log has no push-committed entry for it",
                        p.payload.name
                    ),
                };
                problems.push((
                    p.status == Status::Acknowledged,
                    what.clone(),
                    format!("{label}: {what}"),
                ));
            }
        }
        for id in &listed {
            if !committed.contains(id) && !l.packets.contains_key(id) {
                let what = format!("visible packet {id} has no push-committed audit entry");
                problems.push((false, what.clone(), format!("{label}: {what}")));
            }
        }
        for (id, n) in &l.pulls_acked {
            let logged = pulls.get(id).copied().unwrap_or(0);
            if logged < *n {
                problems.push((
                    true,
                    format!("pulls of {id} missing from the log"),
                    format!(
                        "{label}: bob had {n} acknowledged pulls of {id}, the log has {logged}"
                    ),
                ));
            }
        }
        for (acked, key, msg) in problems {
            if l.fail_key(key, msg) {
                l.unaudited += 1;
                if acked {
                    l.lost += 1;
                }
            }
        }
    }

    // 3. Staging stays bounded.
    let (files, bytes) = dir_usage(&w.data.join("staging"));
    rep.staging_files = files;
    rep.staging_bytes = bytes;
    if files > staging_bound.0 || bytes > staging_bound.1 {
        lock(&w.ledger).fail(format!(
            "{label}: staging holds {files} files, {bytes} bytes (bound {} files, {} bytes)",
            staging_bound.0, staging_bound.1
        ));
    }
    Ok(rep)
}

// ---------------------------------------------------------------------------
// Main

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("crashloop: error: {e:#}");
            std::process::exit(2);
        }
    }
}

#[allow(clippy::too_many_lines)]
fn real_main() -> Result<bool> {
    let opts = parse_args()?;
    let bins = bin_dir()?;
    let mdrop_bin = binary(&bins, "mdrop")?;
    let mdropd_bin = binary(&bins, "mdropd")?;
    let started = Instant::now();
    let tmp = {
        let mut b = tempfile::Builder::new();
        b.prefix("mdrop-crashloop-");
        match &opts.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        }
    };
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    let log = root.join("mdropd.log");
    fs::create_dir_all(root.join("pulls"))?;
    let md = Mdrop {
        bin: mdrop_bin,
        timeout: opts.timeout,
    };
    let max_file = opts.max_file_kib * 1024;
    let staging_bound = (
        opts.clients as u64,
        opts.clients as u64 * (max_file + AGE_SLACK),
    );
    println!(
        "crashloop: {} kill cycles, {} pushing clients + bob pulling, files 0..={} KiB, kill after {}..{} ms, seed {}",
        opts.cycles,
        opts.clients,
        opts.max_file_kib,
        opts.min_delay.as_millis(),
        opts.max_delay.as_millis(),
        opts.seed
    );
    println!("binaries {} | work dir {}", bins.display(), root.display());

    // Set-up.
    let mut server = Server::start(&mdropd_bin, &data, &log, opts.timeout)?;
    let invite = server
        .invite
        .clone()
        .context("mdropd printed no bootstrap invite")?;
    let admin = root.join("admin");
    md.enroll(&admin, &server, &invite, "admin@operator")?;
    md.json(
        &admin,
        &["admin", "org", "create", "firm-a", "--kind", "firm"],
    )?;
    md.json(
        &admin,
        &["admin", "org", "create", "lpo-1", "--kind", "provider"],
    )?;
    let invite_for = |org: &str| -> Result<String> {
        let v = md.json(&admin, &["admin", "invite", "--org", org])?;
        Ok(v["invite"].as_str().context("invite")?.to_owned())
    };
    let pusher_ids: Vec<String> = (0..opts.clients)
        .map(|k| match k {
            0 => "alice@firm-a".to_owned(),
            k => format!("p{k}@firm-a"),
        })
        .collect();
    let mut homes = vec![admin.clone()];
    for id in &pusher_ids {
        let home = root.join(id);
        md.enroll(&home, &server, &invite_for("firm-a")?, id)?;
        homes.push(home);
    }
    let bob = root.join(BOB);
    md.enroll(&bob, &server, &invite_for("lpo-1")?, BOB)?;
    homes.push(bob.clone());
    let ack = root.join("ack.txt");
    fs::write(
        &ack,
        "I will keep everything about this matter confidential.\n",
    )?;
    let alice = &homes[1];
    md.json(
        alice,
        &[
            "matter",
            "create",
            MATTER,
            "--title",
            "Crash loop",
            "--ack-file",
            ack.to_str().context("non-UTF-8 path")?,
            "--scope",
            TASK,
        ],
    )?;
    // Each new member's safety code, as they would read it to Alice.
    let code = |home: &Path| -> Result<String> {
        md.json(home, &["whoami"])?["safety_code"]
            .as_str()
            .map(str::to_owned)
            .context("whoami without a safety code")
    };
    for (k, id) in pusher_ids.iter().enumerate().skip(1) {
        let role = if k % 2 == 1 { "paralegal" } else { "attorney" };
        let c = code(&homes[k + 1])?;
        md.json(
            alice,
            &[
                "matter",
                "add",
                MATTER,
                id,
                "--role",
                role,
                "--expect-code",
                &c,
            ],
        )?;
    }
    let c = code(&bob)?;
    md.json(
        alice,
        &[
            "matter",
            "add",
            MATTER,
            BOB,
            "--role",
            "provider",
            "--expect-code",
            &c,
        ],
    )?;
    md.json(&bob, &["ack", MATTER, "--yes"])?;

    let mut rng = Rng(opts.seed);
    let clients: Vec<Arc<Mutex<ClientState>>> = (0..opts.clients)
        .map(|k| -> Result<_> {
            let files = root.join("files").join(format!("c{k}"));
            fs::create_dir_all(&files)?;
            Ok(Arc::new(Mutex::new(ClientState {
                home: homes[k + 1].clone(),
                files,
                pending: None,
                seq: 0,
                rng: Rng(opts.seed ^ (0xc1_1e47 * (k as u64 + 1))),
            })))
        })
        .collect::<Result<_>>()?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let w = World {
        md: md.clone(),
        root: root.clone(),
        data: data.clone(),
        admin: admin.clone(),
        bob: bob.clone(),
        clients,
        ledger: ledger.clone(),
    };
    println!(
        "set-up done in {:.1} s; cycle: restart → check → load → kill -9",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:>5} {:>7} {:>7} {:>11} {:>11} {:>8} {:>8} {:>9} {:>13} {:>7}",
        "cycle",
        "start s",
        "check s",
        "push ok/try",
        "pull ok/try",
        "kill ms",
        "visible",
        "audit",
        "staging f/KiB",
        "cycle s"
    );

    let mut max_staging = (0u64, 0u64);
    let mut max_start = Duration::ZERO;
    let mut total_start = Duration::ZERO;
    let mut max_cycle = Duration::ZERO;
    let mut last_audit = 0u64;
    let mut server_starts = 1u64;
    let mut aborted_early = false;
    for cycle in 1..=opts.cycles {
        let c0 = Instant::now();
        let mut start_time = Duration::ZERO;
        if cycle > 1 {
            let t = Instant::now();
            server = match Server::start(&mdropd_bin, &data, &log, opts.timeout) {
                Ok(s) => s,
                Err(e) => {
                    lock(&ledger).fail(format!(
                        "cycle {cycle}: mdropd did not come back after kill -9: {e:#}"
                    ));
                    aborted_early = true;
                    break;
                }
            };
            start_time = t.elapsed();
            server_starts += 1;
            for h in &homes {
                repoint(h, &server.addr)?;
            }
        }
        max_start = max_start.max(start_time);
        total_start += start_time;
        let t = Instant::now();
        let label = format!("cycle {cycle}");
        let rep = check(
            &w,
            cycle,
            &label,
            false,
            opts.sample,
            &mut rng,
            staging_bound,
        )?;
        let check_time = t.elapsed();
        max_staging.0 = max_staging.0.max(rep.staging_files);
        max_staging.1 = max_staging.1.max(rep.staging_bytes);
        last_audit = rep.audit_entries;

        // Load, then kill -9.
        let (tried0, acked0, ltried0, lok0) = {
            let l = lock(&ledger);
            (
                l.pushes_tried,
                l.pushes_acked,
                l.load_pulls_tried,
                l.load_pulls_ok,
            )
        };
        let stop = Arc::new(AtomicBool::new(false));
        let abort = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (k, st) in w.clients.iter().enumerate() {
            let st = st.clone();
            let cx = LoadCtx {
                md: md.clone(),
                bob: bob.clone(),
                root: root.clone(),
                max_file,
                ledger: ledger.clone(),
                stop: stop.clone(),
                abort: abort.clone(),
                cycle,
                verbose: opts.verbose,
            };
            threads.push(std::thread::spawn(move || -> Result<()> {
                let mut st = st.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                client_loop(k, &mut st, &cx)
            }));
        }
        let span = opts.max_delay.saturating_sub(opts.min_delay).as_millis() as u64;
        let delay = opts.min_delay + Duration::from_millis(rng.below(span + 1));
        std::thread::sleep(delay);
        server.kill();
        stop.store(true, Ordering::SeqCst);
        // mdrop processes that got their answer just before the kill may
        // still exit 0; the rest would wait for the idle timeout.
        std::thread::sleep(opts.grace);
        abort.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().map_err(|_| anyhow!("client thread panicked"))??;
        }
        let (tried, acked, ltried, lok, failures) = {
            let l = lock(&ledger);
            (
                l.pushes_tried - tried0,
                l.pushes_acked - acked0,
                l.load_pulls_tried - ltried0,
                l.load_pulls_ok - lok0,
                l.failures.len(),
            )
        };
        let took = c0.elapsed();
        max_cycle = max_cycle.max(took);
        println!(
            "{:>5} {:>7.2} {:>7.2} {:>11} {:>11} {:>8} {:>8} {:>9} {:>13} {:>7.2}{}",
            cycle,
            start_time.as_secs_f64(),
            check_time.as_secs_f64(),
            format!("{acked}/{tried}"),
            format!("{lok}/{ltried}"),
            delay.as_millis(),
            rep.visible,
            rep.audit_entries,
            format!(
                "{}/{:.0}",
                rep.staging_files,
                rep.staging_bytes as f64 / 1024.0
            ),
            took.as_secs_f64(),
            if failures > 0 { "  FAILURES" } else { "" }
        );
        if took > opts.cycle_timeout {
            lock(&ledger).fail(format!(
                "cycle {cycle} took {:.1} s, over the limit of {:?}",
                took.as_secs_f64(),
                opts.cycle_timeout
            ));
            aborted_early = true;
            break;
        }
    }

    // Final: restart once more and check everything, every packet pulled.
    let mut clean_stop = false;
    if !aborted_early {
        let t = Instant::now();
        match Server::start(&mdropd_bin, &data, &log, opts.timeout) {
            Ok(s) => {
                server = s;
                server_starts += 1;
                let start_time = t.elapsed();
                max_start = max_start.max(start_time);
                total_start += start_time;
                for h in &homes {
                    repoint(h, &server.addr)?;
                }
                let t = Instant::now();
                let rep = check(
                    &w,
                    opts.cycles + 1,
                    "final",
                    true,
                    0,
                    &mut rng,
                    staging_bound,
                )?;
                max_staging.0 = max_staging.0.max(rep.staging_files);
                max_staging.1 = max_staging.1.max(rep.staging_bytes);
                last_audit = rep.audit_entries;
                println!(
                    "final check: {} visible packets, {} pulled and compared, audit {} entries, staging {} files / {} bytes ({:.1} s)",
                    rep.visible,
                    rep.pulled,
                    rep.audit_entries,
                    rep.staging_files,
                    rep.staging_bytes,
                    t.elapsed().as_secs_f64()
                );
                clean_stop = server.stop();
                if !clean_stop {
                    lock(&ledger).fail("mdropd did not shut down cleanly on SIGTERM".into());
                }
            }
            Err(e) => {
                lock(&ledger).fail(format!(
                    "final: mdropd did not come back after kill -9: {e:#}"
                ));
            }
        }
    }
    drop(server);

    // Client-side leftovers (informational).
    let spools: u64 = homes.iter().map(|h| dir_usage(&h.join("spool")).0).sum();
    let partial = dir_usage(&bob.join("partial"));

    let l = lock(&ledger);
    let elapsed = started.elapsed();
    let verified_packets = l.packets.values().filter(|p| p.verified).count();
    println!();
    println!("== crashloop summary ==");
    println!(
        "kill -9 cycles          {} of {} (server starts {server_starts}; start time max {:.2} s, mean {:.2} s)",
        if aborted_early {
            "aborted".to_owned()
        } else {
            opts.cycles.to_string()
        },
        opts.cycles,
        max_start.as_secs_f64(),
        total_start.as_secs_f64() / server_starts.saturating_sub(1).max(1) as f64
    );
    println!(
        "pushes                  {} tried, {} acknowledged, {} committed without acknowledgment (answer lost in a kill)",
        l.pushes_tried,
        l.pushes_acked,
        l.packets
            .values()
            .filter(|p| p.status == Status::CommittedUnacknowledged)
            .count()
    );
    println!(
        "pulls under load        {} tried, {} acknowledged and byte-identical",
        l.load_pulls_tried, l.load_pulls_ok
    );
    println!(
        "verified pulls          {} after restarts (byte-identical); {} of {} packets verified at least once",
        l.verify_pulls_ok,
        verified_packets,
        l.packets.len()
    );
    println!(
        "lost                    {} (acknowledged pushes/pulls missing or unaudited after a restart)",
        l.lost
    );
    println!(
        "corrupt / half-visible  {} / {}; audit gaps (visible or acknowledged, not in the log): {}",
        l.corrupt, l.half_visible, l.unaudited
    );
    println!("audit entries           {last_audit} (whole log, verified after every restart)");
    println!(
        "max staging             {} files, {} bytes (bound {} files, {} bytes)",
        max_staging.0, max_staging.1, staging_bound.0, staging_bound.1
    );
    println!(
        "client leftovers        {spools} spool files in pushers' homes, bob's partial downloads {} files / {} bytes",
        partial.0, partial.1
    );
    println!(
        "mdropd shutdown         {}",
        if clean_stop {
            "clean (SIGTERM)"
        } else {
            "not clean / not reached"
        }
    );
    println!("longest cycle           {:.2} s", max_cycle.as_secs_f64());
    println!("elapsed                 {:.1} s", elapsed.as_secs_f64());
    if !l.errors.is_empty() {
        println!("client errors (expected: the server was killed under them):");
        for (k, n) in &l.errors {
            println!("  {n:>6}  {k}");
        }
    }
    println!(
        "reproduce               cargo run -p matterdrop-benches --bin crashloop -- --cycles {} --clients {} --max-file-kib {} --seed {}",
        opts.cycles, opts.clients, opts.max_file_kib, opts.seed
    );
    let ok = l.failures.is_empty() && l.lost == 0;
    if ok {
        println!("RESULT                  PASS: nothing acknowledged was lost");
    } else {
        println!(
            "RESULT                  FAIL: {} problems:",
            l.failures.len()
        );
        for f in l.failures.iter().take(50) {
            println!("  - {f}");
        }
    }
    drop(l);
    if opts.keep || !ok {
        let kept = tmp.keep();
        println!(
            "kept                    {} (mdropd log: {})",
            kept.display(),
            kept.join("mdropd.log").display()
        );
    }
    Ok(ok)
}
