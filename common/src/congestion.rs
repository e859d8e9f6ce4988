//! A delivery-rate congestion controller for long and lossy paths.
//!
//! Law firms' providers sit behind long links (60–250 ms) that lose a
//! fraction of a percent of their packets at random. A loss-based
//! controller (quinn's default Cubic) reads every such loss as congestion
//! and halves its window: it follows the Mathis limit, a few percent of a
//! 100 Mbit/s link at 250 ms and 0.5 % loss. quinn's BBR (v1, marked
//! experimental) ignores random loss but overshoots the bottleneck by far
//! in start-up, and the burst of losses that follows trips quinn's limit of
//! 1,024 gaps in one stream's receive buffer, which closes the connection
//! (see `../shared/FIELD-NOTES.md`).
//!
//! [`Rate`] sizes its window from what the path delivers:
//!
//! - **Delivery rate**, per acknowledged packet as BBR samples it: the
//!   bytes delivered between the packet's sending and its acknowledgment,
//!   over the time between the acknowledgment that was latest when it left
//!   and this one. quinn keeps no per-packet state for a controller, so
//!   [`Rate`] logs `(send time, delivered, delivered time)` at each send
//!   time and finds the entry by the acknowledged packet's send time.
//! - **Rounds.** A round starts now and ends when a packet sent after its
//!   start is acknowledged; its rate is the largest sample in it. A round
//!   that used less than half the window it began with, or in which quinn
//!   says the sender ran out of data, is application-limited: its delays
//!   do not count, nor its rate unless it beats every recent round's
//!   (requests and answers say nothing about the pipe, but a round that
//!   delivered more than any other shows what the path can carry).
//! - **Start-up** grows the window by the bytes acknowledged (doubling each
//!   round) and ends at the first sign that the pipe is full: a queue is
//!   building, the RTT exceeding the path's minimum by `clamp(min_rtt / 8,
//!   4 ms, 16 ms)` (HyStart++'s margin) on at least [`INFLATED_SAMPLES`]
//!   acknowledgments in a row spanning the margin itself (a stall of the
//!   receiver delays a burst of acknowledgments; a queue lasts) —
//!   checked on each one, not at the end of the
//!   round, since the window keeps doubling within the round and a deep
//!   queue would otherwise overflow by thousands of packets (enough
//!   separate holes to trip quinn's gap limit) — or on the round's average;
//!   the delivery rate grew less than 25 % in three rounds (BBR's test);
//!   or a round lost more than [`LOSS_THRESHOLD`] of its bytes.
//! - **Cruise:** window = gain × [`HEADROOM`] × max delivery rate of the
//!   last [`RATE_ROUNDS`] rounds × min RTT (never below the initial
//!   window), with gain cycling through one probing round (1.25), one
//!   draining round (0.7) and six at 1.0. A probe that raised the rate by
//!   more than 10 % probes again at once; two such in a row mean start-up
//!   ended early (a delay spike), and start-up resumes.
//! - **Loss** is not congestion unless a round loses more than
//!   [`LOSS_THRESHOLD`] of its bytes (5 %: the worst profile loses
//!   2 % at random); then the window shrinks to 0.85 ×. The first two
//!   rounds of cruise carry start-up's overshoot and do not count.
//!   Persistent congestion (every packet lost for several RTTs) restarts
//!   from the minimum window.
//! - **Min RTT** is the least sample of the last 10 s (two 5 s buckets), so
//!   a path that got longer is noticed.
//!
//! - **Resume** (after the IETF's careful resume, draft-ietf-tsvwg-careful-resume):
//!   a sender that remembers what a path delivered before ([`PathMemory`],
//!   only from a connection that filled it, handed over through a
//!   [`ResumeSlot`] once the peer is known) jumps, in start-up, to half of
//!   that rate × the lesser of the remembered and current min RTT instead of
//!   doubling up from 32 packets, but only if the path's RTT is within a
//!   factor of two of the remembered one (another path otherwise). The
//!   jump is paced like any window and start-up's exits apply to it, so a
//!   path that has less to give than remembered is left at what it
//!   delivers within a round or two.
//!
//! quinn paces at 1.25 × window / smoothed RTT, so the window is the only
//! output. Random loss at a few percent leaves the rate estimate intact:
//! losses take bytes out of a round's acknowledgments, not its duration.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};

/// A round losing more than this fraction of its bytes is congested.
pub const LOSS_THRESHOLD: f64 = 0.05;
/// Window over the bandwidth-delay product in cruise. The acknowledgment
/// clock is not smooth (acknowledgments come in bursts, the receiver is
/// busy, losses leave holes to retransmit): at 1.15 the link idled 6–7 %
/// of the time on the lossy profiles; 1.3 keeps it busier (1 GiB of raw
/// quinn on nearshore 0.85 → 0.89 of the link, offshore 0.84 → 0.88, with
/// the drain round of `GAINS`) for a standing queue of 0.3 × the RTT,
/// far below what a loss-based flow keeps.
pub const HEADROOM: f64 = 1.3;
/// Rounds the maximum delivery rate is taken over.
pub const RATE_ROUNDS: usize = 10;
/// The gain cycle of cruise: probe, drain, then hold. The drain round's
/// window (0.7 × [`HEADROOM`] = 0.91 × the BDP) is below the path's
/// bandwidth-delay product, so the queue the others keep empties once a
/// cycle and the min RTT stays the path's (a window above it in every
/// round would let the min RTT, and with it the window, creep up).
const GAINS: [f64; 8] = [1.25, 0.7, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Consecutive acknowledgments whose RTT shows a queue that end start-up
/// at once (HyStart++ takes eight samples a round).
pub const INFLATED_SAMPLES: u32 = 8;
/// The window never goes below this many full packets.
const MIN_WINDOW_PACKETS: u64 = 4;
/// The least time of delivery a cruise window covers (see `target`).
const ACK_AGGREGATION: Duration = Duration::from_millis(25);
/// Half the min-RTT window.
const MIN_RTT_BUCKET: Duration = Duration::from_secs(5);

/// The largest window a resume jumps to (a remembered rate is data from
/// a peer's earlier connection; this bounds what a wrong one can cost).
pub const MAX_RESUME_WINDOW: u64 = 32 << 20;

/// What a path delivered on an earlier connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathMemory {
    /// The largest delivery rate measured, bytes per second.
    pub rate: f64,
    /// The least RTT measured.
    pub min_rtt: Duration,
}

/// Where a connection's [`PathMemory`] is handed to its controller once
/// the peer is known (after the handshake, before the data); set at most
/// once.
pub type ResumeSlot = Arc<std::sync::OnceLock<PathMemory>>;

/// Builds [`Rate`] controllers; the initial window is `initial_packets`
/// packets of the current MTU.
#[derive(Debug, Clone)]
pub struct RateConfig {
    initial_packets: u64,
    resume: Option<ResumeSlot>,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            initial_packets: 32,
            resume: None,
        }
    }
}

impl RateConfig {
    /// A start-up window of `packets` packets.
    pub fn initial_packets(mut self, packets: u64) -> Self {
        self.initial_packets = packets.max(MIN_WINDOW_PACKETS);
        self
    }

    /// Controllers that resume from what `slot` is given (see the module
    /// documentation). One slot per connection.
    pub fn resume(mut self, slot: ResumeSlot) -> Self {
        self.resume = Some(slot);
        self
    }
}

impl ControllerFactory for RateConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let mut c = Rate::new(now, u64::from(current_mtu), self.initial_packets);
        c.resume = self.resume.clone();
        Box::new(c)
    }
}

/// `MDROP_CC_TRACE` set: every round's figures go to stderr (a tuning
/// aid for the WAN benchmark; nothing secret is in them).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("MDROP_CC_TRACE").is_some())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Cruise,
}

/// The controller; see the module documentation.
#[derive(Debug, Clone)]
pub struct Rate {
    mtu: u64,
    initial: u64,
    window: u64,
    mode: Mode,
    /// When the controller was made, bytes in flight as counted here and
    /// the most of them this round (for the trace).
    born: Instant,
    inflight: u64,
    round_max_inflight: u64,
    srtt: Duration,
    // Min RTT over two buckets.
    min_rtt_cur: Option<Duration>,
    min_rtt_prev: Option<Duration>,
    bucket_start: Instant,
    // The current round.
    round_start: Instant,
    round_delivered_start: u64,
    round_lost: u64,
    round_min_rtt: Option<Duration>,
    /// Sum of RTT samples × bytes, and bytes, of this round.
    round_rtt_weighted: f64,
    round_rtt_bytes: u64,
    /// The largest per-packet delivery rate sampled in this round.
    round_max_rate: f64,
    round_app_limited: bool,
    /// The window when this round began.
    round_window: u64,
    delivered: u64,
    /// When `delivered` last grew.
    delivered_time: Instant,
    /// (send time, `delivered` and `delivered_time` then), one entry per
    /// distinct send time, oldest first: BBR's per-packet delivery-rate
    /// sampling without per-packet state in quinn.
    sent_log: VecDeque<(Instant, u64, Instant)>,
    // The largest delivery rate (bytes per second) of each recent round.
    rates: VecDeque<f64>,
    // Start-up's plateau test.
    full_rate: f64,
    full_rate_rounds: u32,
    // Cruise's gain cycle.
    cycle: usize,
    probe_base: f64,
    paid_probes: u32,
    cruise_rounds: u32,
    /// Where a remembered path may arrive; taken (`None`) once looked at.
    resume: Option<ResumeSlot>,
    /// The pipe was seen full (start-up ended on a queue, losses or a
    /// plateau, or a round delivered clearly less than its window): what
    /// the rounds measured is the path's, worth remembering.
    filled: bool,
    /// Acknowledgments in a row, in start-up, whose RTT showed a queue,
    /// and when the first of them arrived.
    inflated: u32,
    inflated_since: Option<Instant>,
}

impl Rate {
    fn new(now: Instant, mtu: u64, initial_packets: u64) -> Self {
        let initial = initial_packets * mtu;
        Self {
            mtu,
            initial,
            window: initial,
            mode: Mode::Startup,
            born: now,
            inflight: 0,
            round_max_inflight: 0,
            srtt: Duration::ZERO,
            min_rtt_cur: None,
            min_rtt_prev: None,
            bucket_start: now,
            round_start: now,
            round_delivered_start: 0,
            round_lost: 0,
            round_min_rtt: None,
            round_rtt_weighted: 0.0,
            round_rtt_bytes: 0,
            round_max_rate: 0.0,
            round_app_limited: false,
            round_window: initial,
            delivered: 0,
            delivered_time: now,
            sent_log: VecDeque::new(),
            rates: VecDeque::with_capacity(RATE_ROUNDS + 1),
            full_rate: 0.0,
            full_rate_rounds: 0,
            cycle: 0,
            probe_base: 0.0,
            paid_probes: 0,
            cruise_rounds: 0,
            resume: None,
            filled: false,
            inflated: 0,
            inflated_since: None,
        }
    }

    /// The RTT above the path's minimum that shows a queue building.
    fn queue_margin(min_rtt: Duration) -> Duration {
        (min_rtt / 8).clamp(Duration::from_millis(4), Duration::from_millis(16))
    }

    /// Start-up is over: the pipe is full. Cruise begins by draining the
    /// queue start-up built, from the best rate measured so far (this
    /// round's included).
    fn leave_startup(&mut self) {
        if self.round_max_rate > self.max_rate() {
            self.rates.push_back(self.round_max_rate);
            while self.rates.len() > RATE_ROUNDS {
                self.rates.pop_front();
            }
        }
        self.filled = true;
        self.mode = Mode::Cruise;
        self.cycle = 1;
        self.inflated = 0;
        self.inflated_since = None;
        self.window = self.target(GAINS[self.cycle]);
    }

    /// What this connection measured of its path, if it filled it (see
    /// `filled`): a short transfer that never did measured its own
    /// start-up, not the path, and must not replace what a longer one
    /// remembered.
    pub fn memory(&self) -> Option<PathMemory> {
        let rate = self.max_rate();
        let min_rtt = self.min_rtt()?;
        (self.filled && rate > 0.0).then_some(PathMemory { rate, min_rtt })
    }

    /// In start-up, once a remembered path has arrived and the RTT is
    /// known: jumps to half the remembered rate × the current min RTT if
    /// the RTT is within a factor of two of the remembered one.
    fn try_resume(&mut self) {
        let Some(min_rtt) = self.min_rtt() else {
            return;
        };
        let Some(mem) = self.resume.as_ref().and_then(|s| s.get()).copied() else {
            return;
        };
        self.resume = None;
        let same_path = min_rtt * 2 >= mem.min_rtt && min_rtt <= mem.min_rtt * 2;
        if self.mode != Mode::Startup || !same_path || !mem.rate.is_finite() {
            return;
        }
        // The lesser RTT: a peer that delays its first acknowledgments
        // must not get a larger jump than the path showed.
        let rtt = min_rtt.min(mem.min_rtt);
        let jump = (mem.rate * rtt.as_secs_f64() / 2.0).min(MAX_RESUME_WINDOW as f64) as u64;
        if jump > self.window {
            self.window = jump;
        }
        if trace() {
            eprintln!(
                "cc resume: remembered {:.1} MB/s at {:?}, now {min_rtt:?}: window {} KB",
                mem.rate / 1e6,
                mem.min_rtt,
                self.window / 1000
            );
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mtu
    }

    /// The least RTT sample of the last 10 s (5 s at least).
    pub fn min_rtt(&self) -> Option<Duration> {
        match (self.min_rtt_cur, self.min_rtt_prev) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The largest delivery rate of the recent rounds, bytes per second.
    pub fn max_rate(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    fn sample_rtt(&mut self, now: Instant, rtt: Duration, bytes: u64) {
        self.round_rtt_weighted += rtt.as_secs_f64() * bytes as f64;
        self.round_rtt_bytes += bytes;
        if now.duration_since(self.bucket_start) >= MIN_RTT_BUCKET {
            self.min_rtt_prev = self.min_rtt_cur.take();
            self.bucket_start = now;
        }
        self.min_rtt_cur = Some(self.min_rtt_cur.map_or(rtt, |m| m.min(rtt)));
        self.round_min_rtt = Some(self.round_min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// The cruise window for `gain`, never below the initial window (a
    /// connection that only exchanged requests has no useful rate yet).
    fn target(&self, gain: f64) -> u64 {
        let Some(min_rtt) = self.min_rtt() else {
            return self.window;
        };
        // On a short path acknowledgments come in bursts longer than the
        // RTT itself (delayed acks, a busy receiver): the window covers at
        // least ACK_AGGREGATION of delivery, or loopback would crawl.
        let bdp = self.max_rate() * min_rtt.max(ACK_AGGREGATION).as_secs_f64();
        ((gain * HEADROOM * bdp) as u64).max(self.initial)
    }

    fn end_round(&mut self, now: Instant) {
        let acked = self.delivered - self.round_delivered_start;
        let rate = self.round_max_rate;
        // A round that did not use half the window it began with says
        // little about the path (requests and answers, a stream waiting
        // for the disk): it is treated as application-limited. (Not the
        // window now: start-up doubled that during the round.)
        if acked < self.round_window / 2 {
            self.round_app_limited = true;
        }
        let lossy = self.round_lost as f64 > LOSS_THRESHOLD * (acked + self.round_lost) as f64
            && self.round_lost > 2 * self.mtu;
        // An application-limited round still counts if it delivered more
        // than any recent round: the path can carry at least that (BBR's
        // rule), and a start-up cut short by the sender's own window would
        // otherwise leave the estimate below what the path showed.
        // The path was full if a round that used its window delivered
        // clearly less per RTT than that window: a transfer that ends in
        // start-up (64 MiB on a long path) has still measured the path.
        if let Some(min) = self.min_rtt() {
            if acked >= self.round_window / 2
                && rate > 0.0
                && rate * min.as_secs_f64() < 0.8 * self.round_window as f64
            {
                self.filled = true;
            }
        }
        if rate > 0.0 && (!self.round_app_limited || rate > self.max_rate()) {
            self.rates.push_back(rate);
            while self.rates.len() > RATE_ROUNDS {
                self.rates.pop_front();
            }
        }
        match self.mode {
            Mode::Startup => {
                // The round's average RTT shows a queue building (its
                // first packets left before this round's burst did).
                let queueing = match (self.round_rtt_bytes, self.min_rtt()) {
                    (n, Some(min)) if n > 0 && !self.round_app_limited => {
                        let avg = self.round_rtt_weighted / n as f64;
                        avg >= (min + Self::queue_margin(min)).as_secs_f64()
                    }
                    _ => false,
                };
                if !self.round_app_limited {
                    if rate >= self.full_rate * 1.25 {
                        self.full_rate = rate;
                        self.full_rate_rounds = 0;
                    } else {
                        self.full_rate_rounds += 1;
                    }
                }
                if queueing || lossy || self.full_rate_rounds >= 3 {
                    self.leave_startup();
                }
            }
            Mode::Cruise => {
                // The first rounds of cruise still carry start-up's
                // overshoot: their losses are not news.
                self.cruise_rounds += 1;
                if lossy && self.cruise_rounds > 2 {
                    self.window = ((self.window as f64 * 0.85) as u64).max(self.min_window());
                    self.cycle = 2;
                } else {
                    // A probe that found more bandwidth probes again; two
                    // in a row mean start-up ended too early (a delay
                    // spike): grow exponentially again.
                    let probe_paid = self.cycle == 0 && rate > self.probe_base * 1.10;
                    self.paid_probes = if probe_paid { self.paid_probes + 1 } else { 0 };
                    self.cycle = if probe_paid {
                        0
                    } else {
                        (self.cycle + 1) % GAINS.len()
                    };
                    if self.cycle == 0 {
                        self.probe_base = rate;
                    }
                    if self.paid_probes >= 2 {
                        self.mode = Mode::Startup;
                        self.full_rate = 0.0;
                        self.full_rate_rounds = 0;
                        self.paid_probes = 0;
                        self.cruise_rounds = 0;
                    }
                    self.window = self.target(GAINS[self.cycle]);
                }
            }
        }
        if trace() {
            eprintln!(
                "cc {:.3}s srtt {:?} inflight {} KB {:?} rate {:.1} MB/s max {:.1} win {} KB min_rtt {:?} round_min {:?} lost {} of {} lossy {} app {}",
                now.duration_since(self.born).as_secs_f64(),
                self.srtt,
                self.round_max_inflight / 1000,
                self.mode,
                rate / 1e6,
                self.max_rate() / 1e6,
                self.window / 1000,
                self.min_rtt(),
                self.round_min_rtt,
                self.round_lost,
                acked,
                lossy,
                self.round_app_limited
            );
        }
        self.start_round(now);
    }

    /// A new round begins now.
    fn start_round(&mut self, now: Instant) {
        self.round_start = now;
        self.round_delivered_start = self.delivered;
        self.round_lost = 0;
        self.round_min_rtt = None;
        self.round_rtt_weighted = 0.0;
        self.round_rtt_bytes = 0;
        self.round_max_rate = 0.0;
        self.round_app_limited = false;
        self.round_window = self.window;
        self.round_max_inflight = self.inflight;
    }
}

impl Rate {
    /// `bytes` sent at `sent` were acknowledged at `now`.
    fn sent(&mut self, now: Instant) {
        if self.sent_log.back().is_none_or(|(t, _, _)| *t < now) {
            self.sent_log
                .push_back((now, self.delivered, self.delivered_time));
        }
    }

    fn ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool) {
        self.delivered += bytes;
        self.delivered_time = now;
        self.round_app_limited |= app_limited;
        let rtt = now.saturating_duration_since(sent);
        self.sample_rtt(now, rtt, bytes);
        if self.resume.is_some() {
            self.try_resume();
        }
        // Delivery rate since this packet left: what was delivered from
        // then to now over the time it took.
        let i = self.sent_log.partition_point(|(t, _, _)| *t < sent);
        if let Some(&(t, then, then_time)) = self.sent_log.get(i) {
            if t == sent {
                let interval = now.saturating_duration_since(then_time).as_secs_f64();
                if interval > 0.0 && !app_limited {
                    let rate = (self.delivered - then) as f64 / interval;
                    self.round_max_rate = self.round_max_rate.max(rate);
                }
            }
        }
        // Older entries can only match packets that were reordered or
        // lost; one RTT of history is enough.
        while self.sent_log.len() > 1 && self.sent_log.front().is_some_and(|(t, _, _)| *t < sent) {
            self.sent_log.pop_front();
        }
        if self.mode == Mode::Startup && !app_limited {
            self.window += bytes;
            // A queue seen on several acknowledgments in a row ends
            // start-up now; the rest of the round would double into it.
            // A receiver that stalls for a moment delays every
            // acknowledgment of that moment; a queue lasts. So the samples
            // must also span the margin itself.
            let min = self.min_rtt().unwrap_or(rtt);
            let margin = Self::queue_margin(min);
            if rtt >= min + margin {
                self.inflated += 1;
                let since = *self.inflated_since.get_or_insert(now);
                if self.inflated >= INFLATED_SAMPLES && now.duration_since(since) >= margin {
                    self.leave_startup();
                    // The drain round starts now (the rest of this one was
                    // start-up's, and its rate is already counted).
                    self.start_round(now);
                    return;
                }
            } else {
                self.inflated = 0;
                self.inflated_since = None;
            }
        }
        if sent >= self.round_start {
            self.end_round(now);
        }
    }
}

impl Controller for Rate {
    fn on_sent(&mut self, now: Instant, bytes: u64, _last_packet_number: u64) {
        self.inflight += bytes;
        self.round_max_inflight = self.round_max_inflight.max(self.inflight);
        self.sent(now);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &quinn_proto::RttEstimator,
    ) {
        self.srtt = rtt.get();
        self.inflight = self.inflight.saturating_sub(bytes);
        self.ack(now, sent, bytes, app_limited);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        _sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.round_lost += lost_bytes;
        self.inflight = self.inflight.saturating_sub(lost_bytes);
        if is_persistent_congestion {
            // Not worth resuming from what a path that lost everything
            // once delivered.
            let initial = self.initial;
            *self = Self::new(now, self.mtu, 1);
            self.initial = initial;
            self.window = self.min_window();
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.window = self.window.max(self.min_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        self.initial
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a controller over an ideal bottleneck of `rate` bytes/s and
    /// `rtt`, one packet of `mtu` bytes at a time, for `rounds` rounds,
    /// with every `lose_every`-th packet lost. Returns the final window.
    fn drive(rate: f64, rtt: Duration, rounds: u32, lose_every: Option<u64>) -> Rate {
        let t0 = Instant::now();
        drive_from(Rate::new(t0, 1200, 32), t0, rate, rtt, rounds, lose_every)
    }

    /// [`drive`] from the controller `c` built at `t0`.
    fn drive_from(
        mut c: Rate,
        t0: Instant,
        rate: f64,
        rtt: Duration,
        rounds: u32,
        lose_every: Option<u64>,
    ) -> Rate {
        let mtu = 1200u64;
        let mut now = t0;
        let mut n = 0u64;
        let bdp = rate * rtt.as_secs_f64();
        for _ in 0..rounds {
            // One round: the window is sent, and acknowledged one RTT later
            // at most at the bottleneck rate; what exceeds BDP + a queue of
            // one BDP is dropped.
            let window = c.window();
            let sent = now;
            let carried = (window as f64).min(2.0 * bdp) as u64;
            let duration = rtt.as_secs_f64().max(carried as f64 / rate);
            let queue = (window as f64 - bdp).max(0.0) / rate;
            let packets = carried / mtu;
            c.sent(sent);
            let mut lost = 0u64;
            for i in 0..packets {
                n += 1;
                let at = sent
                    + Duration::from_secs_f64(
                        rtt.as_secs_f64()
                            + queue.min(rtt.as_secs_f64()) * (i as f64 / packets.max(1) as f64),
                    )
                    .max(Duration::from_secs_f64(
                        duration * (i + 1) as f64 / packets as f64,
                    ));
                if lose_every.is_some_and(|k| n.is_multiple_of(k)) {
                    lost += mtu;
                    continue;
                }
                c.ack(at, sent, mtu, false);
            }
            let dropped = window.saturating_sub(carried);
            if lost + dropped > 0 {
                c.on_congestion_event(sent + rtt, sent, false, lost + dropped);
            }
            now = sent + Duration::from_secs_f64(duration.max(rtt.as_secs_f64()));
        }
        c
    }

    /// A controller that will find `mem` in its slot, after one request
    /// and its answer measured the RTT `rtt`.
    fn resuming(mem: Option<PathMemory>, rtt: Duration) -> (Rate, Instant) {
        let t0 = Instant::now();
        let slot = ResumeSlot::default();
        let mut c = Rate::new(t0, 1200, 32);
        c.resume = Some(slot.clone());
        if let Some(m) = mem {
            slot.set(m).unwrap();
        }
        c.sent(t0);
        c.ack(t0 + rtt, t0, 1200, true);
        (c, t0 + rtt)
    }

    #[test]
    fn resume_jumps_to_half_the_remembered_rate_on_the_same_path() {
        let rtt = Duration::from_millis(250);
        let mem = PathMemory {
            rate: 50e6,
            min_rtt: Duration::from_millis(240),
        };
        let (c, _) = resuming(Some(mem), rtt);
        // Half the rate × the lesser RTT (remembered 240 ms, now 250 ms).
        assert_eq!(c.window(), (50e6 * 0.24 / 2.0) as u64);
        assert!(c.resume.is_none(), "looked at once");
        // Nothing remembered: start-up from 32 packets.
        let (c, _) = resuming(None, rtt);
        assert_eq!(c.window(), 32 * 1200);
        // Another path (RTT more than twice, or under half, the one
        // remembered): no jump.
        for other in [Duration::from_millis(600), Duration::from_millis(100)] {
            let (c, _) = resuming(Some(mem), other);
            assert_eq!(c.window(), 32 * 1200, "rtt {other:?}");
        }
        // A huge remembered rate is bounded.
        let (c, _) = resuming(
            Some(PathMemory {
                rate: 1e12,
                min_rtt: rtt,
            }),
            rtt,
        );
        assert_eq!(c.window(), MAX_RESUME_WINDOW);
    }

    #[test]
    fn only_a_connection_that_filled_the_path_remembers_it() {
        let (rate, rtt) = (12.5e6, Duration::from_millis(250));
        let m = drive(rate, rtt, 40, None).memory().expect("filled");
        assert!(m.rate > 0.8 * rate && m.rate < 1.5 * rate, "{m:?}");
        assert!(m.min_rtt >= rtt);
        // Requests and answers only, or a start-up cut short: nothing.
        let (c, _) = resuming(None, rtt);
        assert_eq!(c.memory(), None);
        let short = drive(rate, rtt, 3, None);
        assert_eq!(short.memory(), None, "three rounds of start-up");
    }

    #[test]
    fn resume_reaches_the_path_sooner_and_a_wrong_memory_settles_to_the_path() {
        // 400 Mbit/s, 250 ms: BDP 12.5 MB.
        let (rate, rtt) = (50e6, Duration::from_millis(250));
        let bdp = rate * rtt.as_secs_f64();
        let rounds_to_fill = |c: Rate, t0: Instant| {
            (1..40)
                .find(|&n| drive_from(c.clone(), t0, rate, rtt, n, None).max_rate() > 0.8 * rate)
                .unwrap()
        };
        let t0 = Instant::now();
        let cold = rounds_to_fill(Rate::new(t0, 1200, 32), t0);
        let (warm, t1) = resuming(Some(PathMemory { rate, min_rtt: rtt }), rtt);
        let warm = rounds_to_fill(warm, t1);
        assert!(warm + 4 <= cold, "warm {warm} rounds, cold {cold}");
        // Remembered four times what the path now gives: cruise brings the
        // window back near this path's BDP.
        let (wrong, t1) = resuming(
            Some(PathMemory {
                rate: 4.0 * rate,
                min_rtt: rtt,
            }),
            rtt,
        );
        let c = drive_from(wrong, t1, rate, rtt, 30, None);
        let w = c.window() as f64;
        assert!(w < 1.7 * bdp && w > 0.9 * bdp, "window {w} vs BDP {bdp}");
    }

    #[test]
    fn converges_near_the_bandwidth_delay_product() {
        // 100 Mbit/s, 250 ms: BDP 3.125 MB.
        let rate = 12.5e6;
        let rtt = Duration::from_millis(250);
        let c = drive(rate, rtt, 60, None);
        let bdp = rate * rtt.as_secs_f64();
        let w = c.window() as f64;
        assert!(
            (0.9 * bdp..=1.7 * bdp).contains(&w),
            "window {w:.0} for a BDP of {bdp:.0}"
        );
        assert_eq!(c.mode, Mode::Cruise);
    }

    #[test]
    fn random_loss_below_the_threshold_does_not_shrink_the_window() {
        let rate = 12.5e6;
        let rtt = Duration::from_millis(250);
        let clean = drive(rate, rtt, 60, None).window() as f64;
        // 0.5 % loss.
        let lossy = drive(rate, rtt, 60, Some(200)).window() as f64;
        assert!(lossy > 0.8 * clean, "{lossy:.0} vs {clean:.0}");
        // 10 % loss is congestion.
        let heavy = drive(rate, rtt, 60, Some(10)).window() as f64;
        assert!(heavy < 0.8 * clean, "{heavy:.0} vs {clean:.0}");
    }

    /// Packet by packet, unlike [`drive`]: the sender fills the window as
    /// acknowledgments arrive (the window grows within a round, as it does
    /// in quinn), paced as quinn paces (1.25 × window / RTT), through a
    /// bottleneck of `rate` bytes/s with a tail-drop queue of `queue` and a
    /// base RTT of `rtt`, for `secs`. Returns the controller, the packets
    /// the queue dropped and the bytes delivered.
    fn simulate(rate: f64, rtt: Duration, queue: Duration, secs: f64) -> (Rate, u64, u64) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mtu = 1200u64;
        let t0 = Instant::now();
        let mut c = Rate::new(t0, mtu, 32);
        let (mut now, mut free_at, mut next_send) = (t0, t0, t0);
        let mut in_flight = 0u64;
        let (mut dropped, mut delivered) = (0u64, 0u64);
        // (when the sender learns, sent at, acknowledged (else lost)).
        let mut events = BinaryHeap::new();
        let end = t0 + Duration::from_secs_f64(secs);
        while now < end {
            while in_flight + mtu <= c.window() && next_send <= now {
                c.on_sent(now, mtu, 0);
                in_flight += mtu;
                let gap = rtt.as_secs_f64() * mtu as f64 / (1.25 * c.window() as f64);
                next_send = next_send.max(now) + Duration::from_secs_f64(gap);
                let start = free_at.max(now);
                if start.duration_since(now) > queue {
                    dropped += 1;
                    // Detected about an RTT later.
                    events.push(Reverse((now + rtt, now, false)));
                } else {
                    free_at = start + Duration::from_secs_f64(mtu as f64 / rate);
                    events.push(Reverse((free_at + rtt, now, true)));
                }
            }
            let Some(&Reverse((at, sent, acked))) = events.peek() else {
                break;
            };
            if in_flight + mtu <= c.window() && next_send < at {
                now = next_send;
                continue;
            }
            events.pop();
            now = at;
            in_flight -= mtu;
            if acked {
                delivered += mtu;
                c.ack(now, sent, mtu, false);
            } else {
                c.on_congestion_event(now, sent, false, mtu);
            }
        }
        (c, dropped, delivered)
    }

    #[test]
    fn start_up_leaves_before_a_deep_queue_overflows() {
        // Offshore without its random loss: 100 Mbit/s, 250 ms, a queue of
        // 270 ms (3.4 MB). Judged only at the end of each round, start-up
        // doubled from 6 MB to 11 MB in flight and the queue dropped
        // thousands of packets, every other one: more separate holes than
        // quinn lets a stream hold.
        let (rate, rtt) = (12.5e6, Duration::from_millis(250));
        let (c, dropped, delivered) = simulate(rate, rtt, Duration::from_millis(270), 8.0);
        assert_eq!(c.mode, Mode::Cruise);
        assert!(c.filled);
        assert!(dropped < 100, "{dropped} packets dropped in start-up");
        // And it still fills the link once out of start-up.
        let bdp = rate * rtt.as_secs_f64();
        let w = c.window() as f64;
        assert!(
            (0.9 * bdp..=1.7 * bdp).contains(&w),
            "window {w:.0}, BDP {bdp:.0}"
        );
        assert!(delivered as f64 > 0.6 * rate * 8.0, "delivered {delivered}");
    }

    #[test]
    fn cruise_drains_the_queue_so_the_min_rtt_stays_the_paths() {
        // A minute on a deep queue: min RTT buckets roll over several
        // times; a window that never went below the BDP would leave a
        // standing queue, and the min RTT (and the window) would creep up.
        let (rate, rtt) = (12.5e6, Duration::from_millis(250));
        let (c, dropped, delivered) = simulate(rate, rtt, Duration::from_millis(270), 60.0);
        let min = c.min_rtt().unwrap();
        assert!(min < rtt.mul_f64(1.1), "min RTT {min:?} on a {rtt:?} path");
        assert!(dropped < 100, "{dropped} packets dropped");
        assert!(
            delivered as f64 > 0.85 * rate * 60.0,
            "delivered {delivered}"
        );
    }

    #[test]
    fn a_burst_of_late_acknowledgments_is_not_a_queue() {
        let rtt = Duration::from_millis(250);
        let t0 = Instant::now();
        let mut c = Rate::new(t0, 1200, 32);
        let ms = Duration::from_millis;
        // Packets every millisecond, acknowledged after the path's RTT.
        for i in 0..32u64 {
            c.sent(t0 + ms(i));
            c.ack(t0 + ms(i) + rtt, t0 + ms(i), 1200, false);
        }
        // The receiver stalls 30 ms: twenty acknowledgments arrive at once,
        // within 2 ms, the first sixteen late by more than the margin
        // (16 ms here).
        let late = t0 + ms(32) + rtt + ms(30);
        for i in 32..52u64 {
            c.sent(t0 + ms(i));
            c.ack(
                late + Duration::from_micros(100 * (i - 32)),
                t0 + ms(i),
                1200,
                false,
            );
        }
        assert_eq!(c.mode, Mode::Startup, "a stall ended start-up");
        // A queue: every acknowledgment late by 20 ms for 30 ms.
        for i in 52..82u64 {
            c.sent(t0 + ms(i));
            c.ack(t0 + ms(i) + rtt + ms(20), t0 + ms(i), 1200, false);
        }
        assert_eq!(c.mode, Mode::Cruise, "a lasting queue did not end start-up");
    }

    #[test]
    fn persistent_congestion_restarts_small() {
        let mut c = drive(12.5e6, Duration::from_millis(60), 30, None);
        c.on_congestion_event(Instant::now(), Instant::now(), true, 1_000_000);
        assert_eq!(c.window(), c.min_window());
        assert_eq!(c.mode, Mode::Startup);
    }
}
