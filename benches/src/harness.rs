//! What the benchmark binaries share: locating and running the release
//! binaries (`mdropd`, `mdrop`) with their peak memory sampled, payload
//! files, and an in-process raw quinn server for the transport ceiling.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use matterdrop_common::tls;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Application buffer: `mdrop` reads and writes 1 MiB at a time, so does
/// the raw client.
pub const BUF: usize = 1 << 20;
/// `mdropd` reads uploads in chunks of this size.
pub const CHUNK: usize = 256 * 1024;
/// Timeout of every set-up command.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Sampling period of `VmHWM` (and, every other tick, of file sizes).
pub const TICK: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------
// Small helpers

pub fn bin_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MDROP_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no directory", exe.display()))
}

pub fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        p.is_file(),
        "{} not found: build it with `cargo build --release -p matterdrop -p matterdrop-server`, \
         or set MDROP_BIN_DIR",
        p.display()
    );
    Ok(p)
}

/// A field (`VmHWM:`, `VmRSS:`) of `/proc/<pid>/status`, in KiB; `None`
/// once the process is gone (a zombie has no memory map).
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time in clock ticks from `/proc/<who>/stat`: (the process's own
/// user + system time, that of its waited-for children).
pub fn cpu_ticks(who: &str) -> (u64, u64) {
    let Ok(stat) = fs::read_to_string(format!("/proc/{who}/stat")) else {
        return (0, 0);
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0, 0);
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state); utime, stime, cutime, cstime are
    // fields 14 to 17 (proc(5)).
    let g = |i: usize| f.get(i - 3).copied().unwrap_or(0);
    (g(14) + g(15), g(16) + g(17))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Fills `buf` (a multiple of 8 bytes) with splitmix64 output.
pub fn fill_random(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_exact_mut(8) {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
}

pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u64::from_le_bytes(b)
}

/// Writes `bytes` pseudo-random bytes to `path`, fsyncs, returns the SHA-256.
pub fn write_payload(path: &Path, bytes: u64) -> Result<[u8; 32]> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut state = seed();
    let mut buf = vec![0u8; BUF];
    let mut h = Sha256::new();
    let mut left = bytes;
    while left > 0 {
        fill_random(&mut buf, &mut state);
        let n = usize::try_from(left.min(BUF as u64))?;
        f.write_all(&buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(h.finalize().into())
}

/// Streaming SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; BUF];
    let mut h = Sha256::new();
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

/// Sum of file sizes under `dir` (recursively), split by a classifier
/// returning the slot of a file name, if any.
pub fn dir_bytes(dir: &Path, slot: &dyn Fn(&str) -> Option<usize>, out: &mut [u64; 2]) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            dir_bytes(&e.path(), slot, out);
        } else if let Some(i) = slot(&e.file_name().to_string_lossy()) {
            out[i] += m.len();
        }
    }
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn mem_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(
            || "? RAM".into(),
            |kib| format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0),
        )
}

pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| std::env::consts::OS.to_owned(),
        |s| format!("Linux {}", s.trim()),
    )
}

/// Sends `signal` to `pid` with kill(1) (this crate forbids `unsafe`).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------
// Child processes

/// One finished child process.
#[derive(Debug)]
pub struct Proc {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    pub peak_kib: u64,
    /// (time since spawn, watched sizes), every other tick.
    pub timeline: Vec<(Duration, [u64; 2])>,
    /// Killed at its time limit.
    pub timed_out: bool,
}

impl Proc {
    pub fn json(&self, what: &str) -> Result<Value> {
        ensure!(
            self.status.success(),
            "{what} failed ({}):\n{}{}",
            self.status,
            self.stdout,
            self.stderr
        );
        serde_json::from_str(self.stdout.trim())
            .with_context(|| format!("{what}: stdout is not JSON: {:?}", self.stdout))
    }

    /// First sample time at which `pred` holds, at or after `from`.
    pub fn first(&self, from: Duration, pred: impl Fn(&[u64; 2]) -> bool) -> Option<Duration> {
        self.timeline
            .iter()
            .find(|(t, v)| *t >= from && pred(v))
            .map(|(t, _)| *t)
    }
}

/// Runs `cmd` to completion (killing it after `timeout`), with stdout and
/// stderr in files under `logs`, sampling its `VmHWM` every tick and
/// `watch` every other tick.
pub fn run_proc(
    cmd: Command,
    logs: &Path,
    label: &str,
    timeout: Duration,
    watch: Option<&dyn Fn() -> [u64; 2]>,
) -> Result<Proc> {
    let p = run_proc_capped(cmd, logs, label, timeout, watch)?;
    ensure!(
        !p.timed_out,
        "{label} did not finish within {timeout:?} (killed); see {}",
        logs.join(format!("{label}.err")).display()
    );
    Ok(p)
}

/// Like [`run_proc`], but a process still running after `cap` is killed
/// and returned with `timed_out` set (its `wall` is then the cap).
pub fn run_proc_capped(
    mut cmd: Command,
    logs: &Path,
    label: &str,
    cap: Duration,
    watch: Option<&dyn Fn() -> [u64; 2]>,
) -> Result<Proc> {
    let timeout = cap;
    let mut timed_out = false;
    let out_path = logs.join(format!("{label}.out"));
    let err_path = logs.join(format!("{label}.err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {label}"))?;
    let pid = child.id();
    // A waiter thread reaps the child, so the exit time is exact.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let st = child.wait();
        let _ = tx.send(Instant::now());
        st
    });
    let mut peak = 0u64;
    let mut timeline = Vec::new();
    let mut tick = 0u64;
    let end = loop {
        if let Some(k) = proc_kib(pid, "VmHWM:") {
            peak = peak.max(k);
        }
        if let Some(w) = watch.filter(|_| tick.is_multiple_of(2)) {
            timeline.push((start.elapsed(), w()));
        }
        match rx.recv_timeout(TICK) {
            Ok(t) => break t,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break Instant::now(),
        }
        if start.elapsed() > timeout {
            signal(pid, "KILL");
            timed_out = true;
            break Instant::now();
        }
        tick += 1;
    };
    let status = waiter
        .join()
        .map_err(|_| anyhow!("waiter thread panicked"))?
        .with_context(|| format!("waiting for {label}"))?;
    Ok(Proc {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        wall: end.duration_since(start),
        peak_kib: peak,
        timeline,
        timed_out,
    })
}

/// A running `mdropd serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    pub child: Option<Child>,
    pub pid: u32,
    pub addr: String,
    pub fingerprint: String,
    pub invite: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(mdropd: &Path, data: &Path, log: &Path) -> Result<Self> {
        let logfile = File::create(log)?;
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
            // Keep draining after the start-up lines so mdropd never
            // writes into a closed pipe.
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
                !server.invite.is_empty(),
                "mdropd printed no bootstrap invite"
            );
            return Ok(server);
        }
    }

    pub fn kib(&self, field: &str) -> u64 {
        proc_kib(self.pid, field).unwrap_or(0)
    }

    /// SIGTERM, then SIGKILL after 15 s; whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
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

/// Runs `mdrop` commands.
#[derive(Debug)]
pub struct Mdrop {
    pub bin: PathBuf,
    pub logs: PathBuf,
    pub seq: std::cell::Cell<u32>,
    /// `keygen --classic`: X25519 age keys instead of hybrid ones.
    pub classic: bool,
}

impl Mdrop {
    pub fn label(&self, what: &str) -> String {
        let n = self.seq.get();
        self.seq.set(n + 1);
        format!("{n:03}-{what}")
    }

    pub fn cmd(&self, home: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--home").arg(home).arg("--json").args(args);
        c.env_remove("MDROP_PASSPHRASE");
        c
    }

    /// A set-up command that must succeed; its JSON output.
    pub fn json(&self, home: &Path, args: &[&str]) -> Result<Value> {
        let label = self.label(args.first().copied().unwrap_or("mdrop"));
        let p = run_proc(
            self.cmd(home, args),
            &self.logs,
            &label,
            SETUP_TIMEOUT,
            None,
        )?;
        p.json(&format!("mdrop {}", args.join(" ")))
    }

    pub fn enroll(&self, home: &Path, server: &Server, invite: &str, id: &str) -> Result<()> {
        if self.classic {
            self.json(home, &["keygen", "--classic"])?;
        } else {
            self.json(home, &["keygen"])?;
        }
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

// ---------------------------------------------------------------------------
// Raw quinn transport ceiling

/// Header byte of a raw stream: discard, or write to a file and fsync.
pub const MODE_DISCARD: u8 = 0;
pub const MODE_FSYNC: u8 = 1;

/// The in-process raw server, on its own thread and runtime.
#[derive(Debug)]
pub struct RawServer {
    pub endpoint: quinn::Endpoint,
    pub addr: SocketAddr,
    pub pin: tls::ServerPin,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(sink: PathBuf) -> Result<Self> {
        Self::start_with(sink, None, Reading::Ordered)
    }

    /// With `transport` instead of the project's, reading streams in order
    /// as `reading` says.
    pub fn start_with(
        sink: PathBuf,
        transport: Option<std::sync::Arc<quinn::TransportConfig>>,
        reading: Reading,
    ) -> Result<Self> {
        let pki = tls::generate_server_pki(&["localhost".to_owned()])?;
        let pin = tls::ServerPin::Fingerprint(tls::cert_fingerprint(&pki.cert_der)?);
        let mut cfg = tls::server_config(
            vec![pki.cert_der.clone()],
            &pki.key_der,
            tls::KeyExchange::Hybrid,
        )?;
        if let Some(t) = transport {
            cfg.transport_config(t);
        }
        let (tx, rx) = mpsc::channel::<Result<quinn::Endpoint>>();
        let thread = std::thread::Builder::new()
            .name("raw-server".into())
            .spawn(move || {
                // Same runtime shape as mdropd (multi-thread, default workers).
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let ep = match tls::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), Some(cfg))
                        .map(|(ep, _)| ep)
                    {
                        Ok(ep) => ep,
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(ep.clone()));
                    while let Some(incoming) = ep.accept().await {
                        let sink = sink.clone();
                        tokio::spawn(async move {
                            if let Err(e) = raw_serve_conn(incoming, sink, reading).await {
                                eprintln!("raw server: {e:#}");
                            }
                        });
                    }
                });
            })?;
        let endpoint = rx
            .recv_timeout(Duration::from_secs(10))
            .context("raw server did not start")??;
        let addr = endpoint.local_addr()?;
        Ok(Self {
            endpoint,
            addr,
            pin,
            thread: Some(thread),
        })
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the raw server reads a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// In order (`read_chunk(_, true)`).
    Ordered,
    /// As pieces arrive, not put back in order (`read_chunk(_, false)`).
    Unordered,
    /// Out of order and reassembled, as `mdrop` and `mdropd` read parts
    /// (`net::Reassembler`).
    Reassembled,
}

pub async fn raw_serve_conn(
    incoming: quinn::Incoming,
    sink: PathBuf,
    reading: Reading,
) -> Result<()> {
    let conn = incoming.await?;
    let (window, _) = tls::fit_windows(&conn);
    let hold = matterdrop_common::net::HoldLimit::for_connection(&conn, window);
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let mut mode = [0u8; 1];
        recv.read_exact(&mut mode).await?;
        let n = if mode[0] == MODE_FSYNC {
            raw_to_file(&mut recv, sink.clone()).await?
        } else {
            let mut n = 0u64;
            if reading == Reading::Reassembled {
                let mut r = matterdrop_common::net::Reassembler::new(1, hold.clone());
                while let Some(b) = r.read_batch(&mut recv, CHUNK, None).await? {
                    n += b.len() as u64;
                }
            } else {
                let ordered = reading == Reading::Ordered;
                while let Some(c) = recv.read_chunk(CHUNK, ordered).await? {
                    n += c.bytes.len() as u64;
                }
            }
            n
        };
        send.write_all(&n.to_le_bytes()).await?;
        send.finish()?;
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    }
    Ok(())
}

/// Like mdropd's upload path: a bounded queue to a blocking thread that
/// writes through a 1 MiB `BufWriter` and fsyncs at the end.
pub async fn raw_to_file(recv: &mut quinn::RecvStream, path: PathBuf) -> Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<quinn::Chunk>(8);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut w = BufWriter::with_capacity(BUF, File::create(&path)?);
        let mut n = 0u64;
        while let Some(c) = rx.blocking_recv() {
            w.write_all(&c.bytes)?;
            n += c.bytes.len() as u64;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(n)
    });
    while let Some(c) = recv.read_chunk(CHUNK, true).await? {
        if tx.send(c).await.is_err() {
            break;
        }
    }
    drop(tx);
    Ok(writer.await??)
}

/// One raw copy: connect, send `bytes` from `buf` on one stream, wait for
/// the server's count. Timed from before the handshake (as `mdrop` is).
pub async fn raw_copy(
    cfg: quinn::ClientConfig,
    addr: SocketAddr,
    mode: u8,
    bytes: u64,
    buf: &[u8],
) -> Result<Duration> {
    let start = Instant::now();
    let (ep, _) = tls::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), None)?;
    let conn = ep.connect_with(cfg, addr, "localhost")?.await?;
    tls::fit_windows(&conn);
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&[mode]).await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        send.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let reply = recv.read_to_end(8).await?;
    let elapsed = start.elapsed();
    ensure!(
        reply == bytes.to_le_bytes(),
        "raw server counted {reply:?}, expected {bytes}"
    );
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
    Ok(elapsed)
}

/// The homes of a bench team: the server admin, an attorney of a firm
/// (`alice@firm-a`) and a provider's paralegal (`bob@lpo-1`).
#[derive(Debug)]
pub struct Team {
    pub admin: PathBuf,
    pub alice: PathBuf,
    pub bob: PathBuf,
}

/// Enrolls the team under `root` with `server`, has alice create `matter`
/// (task `task`) and add bob as its provider, and bob acknowledge it.
pub fn setup_team(
    md: &Mdrop,
    server: &Server,
    root: &Path,
    matter: &str,
    task: &str,
) -> Result<Team> {
    let admin = root.join("admin");
    let alice = root.join("alice");
    let bob = root.join("bob");
    let invite = server.invite.clone();
    md.enroll(&admin, server, &invite, "admin@operator")?;
    md.json(
        &admin,
        &["admin", "org", "create", "firm-a", "--kind", "firm"],
    )?;
    md.json(
        &admin,
        &["admin", "org", "create", "lpo-1", "--kind", "provider"],
    )?;
    for (home, id, org) in [
        (&alice, "alice@firm-a", "firm-a"),
        (&bob, "bob@lpo-1", "lpo-1"),
    ] {
        let v = md.json(&admin, &["admin", "invite", "--org", org])?;
        let inv = v["invite"].as_str().context("invite")?.to_owned();
        md.enroll(home, server, &inv, id)?;
    }
    let ack = root.join("ack.txt");
    fs::write(
        &ack,
        "I will keep all information about this matter confidential.\n",
    )?;
    let ack_s = ack.to_str().context("non-UTF-8 temp path")?;
    md.json(
        &alice,
        &[
            "matter",
            "create",
            matter,
            "--title",
            "Bench",
            "--ack-file",
            ack_s,
            "--scope",
            task,
        ],
    )?;
    let code = md.json(&bob, &["whoami"])?["safety_code"]
        .as_str()
        .map(str::to_owned)
        .context("whoami without a safety code")?;
    md.json(
        &alice,
        &[
            "matter",
            "add",
            matter,
            "bob@lpo-1",
            "--role",
            "provider",
            "--expect-code",
            &code,
        ],
    )?;
    md.json(&bob, &["ack", matter, "--yes"])?;
    Ok(Team { admin, alice, bob })
}
