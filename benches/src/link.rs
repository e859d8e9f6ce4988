//! A long, lossy link on loopback: a userspace UDP relay between a QUIC
//! client and server.
//!
//! The client sends to [`Link::addr`]; the relay forwards to the server and
//! back. Each direction is one bottleneck with:
//!
//! - a **rate** (bits per second): a packet occupies the link for
//!   `size × 8 / rate`, packets leave in arrival order;
//! - a **tail-drop queue** measured in time: a packet that would wait longer
//!   than `queue` for the link is dropped (a queue of `queue × rate` bytes);
//! - a **one-way delay** of `rtt / 2` after it leaves the queue;
//! - **random loss**: each packet is dropped with probability `loss` before
//!   it reaches the queue (both directions, so acknowledgments are lost too);
//! - a **cut** ([`Link::cut_for`]): every packet both ways is dropped until
//!   it ends, as when a connection's path dies for a while;
//! - a **burst of holes** ([`Link::holes_for`]): every other packet both
//!   ways is dropped until it ends, so that each packet that gets through
//!   arrives after a hole (the most gaps a loss burst can leave).
//!
//! One thread per direction; nothing is sent from the relay before its due
//! time, so the relay only adds its scheduling jitter (tens of
//! microseconds). Datagrams the kernel drops at the relay's own sockets are
//! not counted here: compare [`udp_rcvbuf_errors`] before and after.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A link's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub rtt: Duration,
    /// Bits per second, each direction.
    pub rate_bps: u64,
    /// Probability of dropping a packet, each direction.
    pub loss: f64,
    /// The longest a packet may wait for the link before it is dropped.
    pub queue: Duration,
}

impl Profile {
    /// The profiles. Queues are `rtt + 20 ms` (about one
    /// bandwidth-delay product) unless the profile gives one.
    pub const ALL: [Self; 4] = [
        Self {
            name: "longfat",
            rtt: Duration::from_millis(250),
            rate_bps: 400_000_000,
            loss: 0.0,
            queue: Duration::from_millis(270),
        },
        Self {
            name: "nearshore",
            rtt: Duration::from_millis(60),
            rate_bps: 200_000_000,
            loss: 0.001,
            queue: Duration::from_millis(80),
        },
        Self {
            name: "offshore",
            rtt: Duration::from_millis(250),
            rate_bps: 100_000_000,
            loss: 0.005,
            queue: Duration::from_millis(270),
        },
        Self {
            name: "bad-day",
            rtt: Duration::from_millis(250),
            rate_bps: 50_000_000,
            loss: 0.02,
            queue: Duration::from_millis(50),
        },
    ];

    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name == name)
    }

    /// Bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.rate_bps as f64 / 8.0
    }

    /// The bandwidth-delay product in bytes.
    pub fn bdp(&self) -> u64 {
        (self.bytes_per_sec() * self.rtt.as_secs_f64()) as u64
    }

    /// One line for a report: `longfat (250 ms, 400 Mbit/s, 0 %, queue 270 ms)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} ms RTT, {} Mbit/s, {} % loss, queue {} ms)",
            self.name,
            self.rtt.as_millis(),
            self.rate_bps / 1_000_000,
            self.loss * 100.0,
            self.queue.as_millis()
        )
    }
}

/// Counters of one direction.
#[derive(Debug, Default)]
pub struct DirStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub lost: AtomicU64,
    pub queue_drops: AtomicU64,
    pub cut_drops: AtomicU64,
}

/// A snapshot of one direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirCount {
    /// Packets and bytes delivered.
    pub packets: u64,
    pub bytes: u64,
    /// Dropped at random, by the full queue, during a cut.
    pub lost: u64,
    pub queue_drops: u64,
    pub cut_drops: u64,
}

impl DirStats {
    fn snapshot(&self) -> DirCount {
        DirCount {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            lost: self.lost.load(Relaxed),
            queue_drops: self.queue_drops.load(Relaxed),
            cut_drops: self.cut_drops.load(Relaxed),
        }
    }
}

struct Shared {
    stop: AtomicBool,
    /// Where the relay forwards (changed by [`Link::repoint`]).
    server: Mutex<SocketAddr>,
    cut_until: Mutex<Option<Instant>>,
    holes_until: Mutex<Option<Instant>>,
    /// The client's address, learnt from its first datagram.
    client: Mutex<Option<SocketAddr>>,
    up: DirStats,
    down: DirStats,
}

impl Shared {
    fn cut(&self, now: Instant) -> Cut {
        let until = |m: &Mutex<Option<Instant>>| {
            m.lock()
                .map(|c| c.is_some_and(|until| now < until))
                .unwrap_or(false)
        };
        if until(&self.cut_until) {
            Cut::All
        } else if until(&self.holes_until) {
            Cut::EveryOther
        } else {
            Cut::No
        }
    }
}

/// What a cut drops of a packet arriving now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    No,
    All,
    EveryOther,
}

/// A running relay; stops when dropped.
pub struct Link {
    addr: SocketAddr,
    profile: Profile,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("profile", &self.profile.name)
            .finish_non_exhaustive()
    }
}

/// Socket buffers of the relay: deep enough that the relay's own sockets
/// never drop at these rates (the kernel caps them at `rmem_max` /
/// `wmem_max`; see [`udp_rcvbuf_errors`]).
const SOCKET_BUFFER: usize = 8 << 20;

fn socket(ip: std::net::Ipv4Addr) -> io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    Ok(s.into())
}

impl Link {
    /// Starts a relay to `server` shaped by `profile`; `seed` drives the
    /// random losses (the same seed loses the same packet numbers).
    pub fn start(server: SocketAddr, profile: Profile, seed: u64) -> io::Result<Self> {
        Self::start_from(server, profile, seed, std::net::Ipv4Addr::LOCALHOST)
    }

    /// [`Link::start`] whose packets reach the server from `source` (a
    /// loopback address: 127.0.0.0/8), so that the server sees each link
    /// as another client address.
    pub fn start_from(
        server: SocketAddr,
        profile: Profile,
        seed: u64,
        source: std::net::Ipv4Addr,
    ) -> io::Result<Self> {
        let front = Arc::new(socket(std::net::Ipv4Addr::LOCALHOST)?);
        let back = Arc::new(socket(source)?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            server: Mutex::new(server),
            cut_until: Mutex::new(None),
            holes_until: Mutex::new(None),
            client: Mutex::new(None),
            up: DirStats::default(),
            down: DirStats::default(),
        });
        let mut threads = Vec::new();
        for upstream in [true, false] {
            let (rx, tx) = if upstream {
                (front.clone(), back.clone())
            } else {
                (back.clone(), front.clone())
            };
            let shared = shared.clone();
            let mut pipe = Pipe::new(profile, seed ^ u64::from(upstream));
            threads.push(
                std::thread::Builder::new()
                    .name(if upstream { "link-up" } else { "link-down" }.into())
                    .spawn(move || pipe.run(&rx, &tx, upstream, &shared))?,
            );
        }
        Ok(Self {
            addr,
            profile,
            shared,
            threads,
        })
    }

    /// Where the client sends.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Drops every packet both ways for `d` from now.
    pub fn cut_for(&self, d: Duration) {
        if let Ok(mut c) = self.shared.cut_until.lock() {
            *c = Some(Instant::now() + d);
        }
    }

    /// Drops every other packet both ways for `d` from now (counted as
    /// cut drops).
    pub fn holes_for(&self, d: Duration) {
        if let Ok(mut c) = self.shared.holes_until.lock() {
            *c = Some(Instant::now() + d);
        }
    }

    /// Forwards to `server` from now on (a server restarted on another
    /// port); the client keeps its address.
    pub fn repoint(&self, server: SocketAddr) {
        if let Ok(mut s) = self.shared.server.lock() {
            *s = server;
        }
    }

    /// Counters: (client → server, server → client).
    pub fn counts(&self) -> (DirCount, DirCount) {
        (self.shared.up.snapshot(), self.shared.down.snapshot())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One direction's bottleneck.
struct Pipe {
    profile: Profile,
    /// Seconds per byte.
    byte_time: f64,
    delay: Duration,
    rng: u64,
    /// When the link finishes sending what is queued.
    free_at: Instant,
    /// Packets in the queue or in flight, in departure order, with the
    /// flow each belongs to (always 0 on a [`Link`]).
    flight: VecDeque<(Instant, Vec<u8>, usize)>,
    /// Alternates during a burst of holes.
    odd: bool,
}

impl Pipe {
    fn new(profile: Profile, seed: u64) -> Self {
        Self {
            profile,
            byte_time: 8.0 / profile.rate_bps as f64,
            delay: profile.rtt / 2,
            rng: seed | 1,
            free_at: Instant::now(),
            flight: VecDeque::new(),
            odd: false,
        }
    }

    /// xorshift64*: a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Admits one packet arriving `now`, or counts why not.
    fn admit(&mut self, now: Instant, packet: &[u8], stats: &DirStats, cut: Cut, flow: usize) {
        let drop = match cut {
            Cut::No => false,
            Cut::All => true,
            Cut::EveryOther => {
                self.odd = !self.odd;
                self.odd
            }
        };
        if drop {
            stats.cut_drops.fetch_add(1, Relaxed);
            return;
        }
        if self.profile.loss > 0.0 && self.uniform() < self.profile.loss {
            stats.lost.fetch_add(1, Relaxed);
            return;
        }
        let start = self.free_at.max(now);
        if start.duration_since(now) > self.profile.queue {
            stats.queue_drops.fetch_add(1, Relaxed);
            return;
        }
        self.free_at = start + Duration::from_secs_f64(packet.len() as f64 * self.byte_time);
        self.flight
            .push_back((self.free_at + self.delay, packet.to_vec(), flow));
    }

    fn run(&mut self, rx: &UdpSocket, tx: &UdpSocket, upstream: bool, shared: &Shared) {
        let server = || shared.server.lock().map(|s| *s).ok();
        let stats = if upstream { &shared.up } else { &shared.down };
        let mut buf = vec![0u8; 65_536];
        while !shared.stop.load(Relaxed) {
            let now = Instant::now();
            // Send what is due.
            while self.flight.front().is_some_and(|(due, _, _)| *due <= now) {
                let Some((_, p, _)) = self.flight.pop_front() else {
                    break;
                };
                let to = if upstream {
                    server()
                } else {
                    shared.client.lock().ok().and_then(|c| *c)
                };
                if let Some(to) = to {
                    if tx.send_to(&p, to).is_ok() {
                        stats.packets.fetch_add(1, Relaxed);
                        stats.bytes.fetch_add(p.len() as u64, Relaxed);
                    }
                }
            }
            // Wait for a packet until the next one is due (at most 5 ms,
            // to notice `stop`).
            let wait = self
                .flight
                .front()
                .map(|(due, _, _)| due.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(5))
                .clamp(Duration::from_micros(20), Duration::from_millis(5));
            let _ = rx.set_read_timeout(Some(wait));
            match rx.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if upstream {
                        if let Ok(mut c) = shared.client.lock() {
                            *c = Some(from);
                        }
                    } else if Some(from) != server() {
                        continue;
                    }
                    let now = Instant::now();
                    let cut = shared.cut(now);
                    self.admit(now, &buf[..n], stats, cut, 0);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }
}

/// Several clients through one bottleneck: each direction is one [`Pipe`]
/// (one rate, one queue, one loss process) that every flow shares, as
/// flows share a provider's uplink. Each client has its own front address
/// and reaches the server from its own back address, so the server sees
/// separate clients. For fairness measurements.
pub struct SharedLink {
    addrs: Vec<SocketAddr>,
    shared: Arc<MultiShared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SharedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLink")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

struct Direction {
    pipe: Mutex<Pipe>,
    wake: std::sync::Condvar,
    stats: DirStats,
    /// Bytes delivered per flow.
    flows: Vec<AtomicU64>,
}

struct MultiShared {
    stop: AtomicBool,
    server: SocketAddr,
    /// Each flow's client address, learnt from its first datagram.
    clients: Mutex<Vec<Option<SocketAddr>>>,
    up: Direction,
    down: Direction,
}

impl SharedLink {
    /// `flows` clients to `server` through one bottleneck shaped by
    /// `profile`.
    pub fn start(
        server: SocketAddr,
        profile: Profile,
        seed: u64,
        flows: usize,
    ) -> io::Result<Self> {
        let dir = |seed: u64| Direction {
            pipe: Mutex::new(Pipe::new(profile, seed)),
            wake: std::sync::Condvar::new(),
            stats: DirStats::default(),
            flows: (0..flows).map(|_| AtomicU64::new(0)).collect(),
        };
        let shared = Arc::new(MultiShared {
            stop: AtomicBool::new(false),
            server,
            clients: Mutex::new(vec![None; flows]),
            up: dir(seed ^ 1),
            down: dir(seed),
        });
        let mut fronts = Vec::new();
        let mut backs = Vec::new();
        for _ in 0..flows {
            fronts.push(Arc::new(socket(std::net::Ipv4Addr::LOCALHOST)?));
            backs.push(Arc::new(socket(std::net::Ipv4Addr::LOCALHOST)?));
        }
        let addrs = fronts
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f)
        };
        for flow in 0..flows {
            for upstream in [true, false] {
                let rx = if upstream {
                    &fronts[flow]
                } else {
                    &backs[flow]
                }
                .clone();
                let sh = shared.clone();
                threads.push(spawn(
                    format!("link-rx-{flow}"),
                    Box::new(move || sh.receive(&rx, flow, upstream)),
                )?);
            }
        }
        for upstream in [true, false] {
            let tx = if upstream {
                backs.clone()
            } else {
                fronts.clone()
            };
            let sh = shared.clone();
            threads.push(spawn(
                "link-tx".into(),
                Box::new(move || sh.transmit(&tx, upstream)),
            )?);
        }
        Ok(Self {
            addrs,
            shared,
            threads,
        })
    }

    /// Where client `flow` sends.
    pub fn addr(&self, flow: usize) -> SocketAddr {
        self.addrs[flow]
    }

    /// Bytes delivered client → server, per flow.
    pub fn up_bytes(&self) -> Vec<u64> {
        self.shared
            .up
            .flows
            .iter()
            .map(|b| b.load(Relaxed))
            .collect()
    }

    /// Counters: (client → server, server → client), all flows.
    pub fn counts(&self) -> (DirCount, DirCount) {
        (
            self.shared.up.stats.snapshot(),
            self.shared.down.stats.snapshot(),
        )
    }
}

impl Drop for SharedLink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.shared.up.wake.notify_all();
        self.shared.down.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl MultiShared {
    fn direction(&self, upstream: bool) -> &Direction {
        if upstream { &self.up } else { &self.down }
    }

    /// Admits what arrives at one socket into its direction's pipe.
    fn receive(&self, rx: &UdpSocket, flow: usize, upstream: bool) {
        let dir = self.direction(upstream);
        let _ = rx.set_read_timeout(Some(Duration::from_millis(5)));
        let mut buf = vec![0u8; 65_536];
        while !self.stop.load(Relaxed) {
            let Ok((n, from)) = rx.recv_from(&mut buf) else {
                continue;
            };
            if upstream {
                if let Ok(mut c) = self.clients.lock() {
                    c[flow] = Some(from);
                }
            } else if from != self.server {
                continue;
            }
            if let Ok(mut pipe) = dir.pipe.lock() {
                pipe.admit(Instant::now(), &buf[..n], &dir.stats, Cut::No, flow);
            }
            dir.wake.notify_one();
        }
    }

    /// Sends each packet when it is due, from its flow's socket.
    fn transmit(&self, tx: &[Arc<UdpSocket>], upstream: bool) {
        let dir = self.direction(upstream);
        let Ok(mut pipe) = dir.pipe.lock() else {
            return;
        };
        let mut due = Vec::new();
        while !self.stop.load(Relaxed) {
            let now = Instant::now();
            while pipe.flight.front().is_some_and(|(t, _, _)| *t <= now) {
                if let Some((_, p, flow)) = pipe.flight.pop_front() {
                    due.push((p, flow));
                }
            }
            if !due.is_empty() {
                drop(pipe);
                for (p, flow) in due.drain(..) {
                    let to = if upstream {
                        Some(self.server)
                    } else {
                        self.clients.lock().ok().and_then(|c| c[flow])
                    };
                    if let Some(to) = to {
                        if tx[flow].send_to(&p, to).is_ok() {
                            dir.stats.packets.fetch_add(1, Relaxed);
                            dir.stats.bytes.fetch_add(p.len() as u64, Relaxed);
                            dir.flows[flow].fetch_add(p.len() as u64, Relaxed);
                        }
                    }
                }
                pipe = match dir.pipe.lock() {
                    Ok(p) => p,
                    Err(_) => return,
                };
                continue;
            }
            let wait = pipe
                .flight
                .front()
                .map(|(t, _, _)| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(5))
                .min(Duration::from_millis(5));
            pipe = match dir.wake.wait_timeout(pipe, wait) {
                Ok((p, _)) => p,
                Err(_) => return,
            };
        }
    }
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer
/// (`RcvbufErrors` in `/proc/net/snmp`), all sockets.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback; the relay between it and a client
    /// socket must delay, limit and drop as configured.
    fn echo() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = s.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while !st.load(Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut b) {
                    let _ = s.send_to(&b[..n], from);
                }
            }
        });
        (addr, stop, t)
    }

    #[test]
    fn delays_by_the_round_trip_time() {
        let (server, stop, t) = echo();
        let p = Profile {
            name: "t",
            rtt: Duration::from_millis(80),
            rate_bps: 100_000_000,
            loss: 0.0,
            queue: Duration::from_millis(100),
        };
        let link = Link::start(server, p, 1).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let start = Instant::now();
        c.send_to(b"ping", link.addr()).unwrap();
        let mut b = [0u8; 16];
        let (n, _) = c.recv_from(&mut b).unwrap();
        let rtt = start.elapsed();
        assert_eq!(&b[..n], b"ping");
        assert!(rtt >= Duration::from_millis(80), "{rtt:?}");
        assert!(rtt < Duration::from_millis(200), "{rtt:?}");
        stop.store(true, Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn the_queue_drops_what_the_rate_cannot_carry_and_loss_is_random() {
        let (server, stop, t) = echo();
        // 8 Mbit/s: 1,000-byte packets take 1 ms each; a 10 ms queue holds
        // about 10 of a burst of 100.
        let p = Profile {
            name: "t",
            rtt: Duration::from_millis(10),
            rate_bps: 8_000_000,
            loss: 0.0,
            queue: Duration::from_millis(10),
        };
        let link = Link::start(server, p, 1).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..100 {
            c.send_to(&[0u8; 1000], link.addr()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let (up, _) = link.counts();
        assert!(
            (8..=14).contains(&up.packets),
            "delivered {} of a burst of 100",
            up.packets
        );
        assert_eq!(up.packets + up.queue_drops, 100);
        drop(link);

        let p = Profile {
            loss: 0.25,
            rate_bps: 1_000_000_000,
            queue: Duration::from_secs(1),
            ..p
        };
        let link = Link::start(server, p, 7).unwrap();
        for _ in 0..2000 {
            c.send_to(&[0u8; 100], link.addr()).unwrap();
            std::thread::sleep(Duration::from_micros(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        let (up, _) = link.counts();
        assert_eq!(up.packets + up.lost, 2000);
        assert!((400..=600).contains(&up.lost), "lost {} of 2000", up.lost);
        // A cut drops everything.
        link.cut_for(Duration::from_millis(200));
        for _ in 0..10 {
            c.send_to(b"x", link.addr()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(link.counts().0.cut_drops, 10);
        // A burst of holes drops every other packet.
        std::thread::sleep(Duration::from_millis(200));
        link.holes_for(Duration::from_millis(200));
        for _ in 0..10 {
            c.send_to(b"y", link.addr()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(link.counts().0.cut_drops, 15);
        stop.store(true, Relaxed);
        t.join().unwrap();
    }
}
