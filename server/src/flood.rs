//! Limits for traffic from keys that are not enrolled: failed enrollments
//! are rate-limited per key and per source address, and counted rather
//! than logged one by one; the counts go into the audit log as periodic
//! `enroll-failures` entries (see `server::run`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed enrollments one key may make per [`WINDOW`].
pub const FAILURES_PER_KEY: u32 = 5;
/// Failed enrollments one source address may make per [`WINDOW`].
pub const FAILURES_PER_ADDR: u32 = 20;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys and addresses tracked at most; beyond, expired windows are pruned
/// and, if that is not enough, new ones go untracked.
const MAX_TRACKED: usize = 16_384;
/// Distinct refusal reasons counted separately; the rest are "other".
const MAX_REASONS: usize = 32;

/// The source an address counts as: itself for IPv4, its /64 for IPv6
/// (one host usually holds a whole /64).
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl Window {
    fn current(&mut self, now: Instant) -> &mut Self {
        if now.duration_since(self.start) >= WINDOW {
            *self = Self {
                start: now,
                failures: 0,
            };
        }
        self
    }
}

/// What happened to enrollment attempts since the counts were last taken.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnrollCounts {
    /// Enrollments the server refused after handling them.
    pub failed: u64,
    /// Attempts refused unread because their key or address was over its
    /// limit.
    pub limited: u64,
    /// Distinct keys and addresses among them (up to the tracking bound).
    pub keys: usize,
    /// Distinct source addresses.
    pub addresses: usize,
    /// Failures by reason.
    pub reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<[u8; 32], Window>,
    by_addr: HashMap<IpAddr, Window>,
    counts: EnrollCounts,
    keys: HashSet<[u8; 32]>,
    addrs: HashSet<IpAddr>,
}

/// The enrollment limiter. One per server.
#[derive(Debug, Default)]
pub struct EnrollLimiter {
    inner: Mutex<Inner>,
}

/// Why an attempt is refused before it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// This key failed too often.
    Key(Duration),
    /// This address failed too often.
    Address(Duration),
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (who, wait) = match self {
            Self::Key(w) => ("this key", w),
            Self::Address(w) => ("this address", w),
        };
        write!(
            f,
            "too many failed enrollments from {who}; try again in {} s",
            wait.as_secs().max(1)
        )
    }
}

impl EnrollLimiter {
    /// Whether an enrollment by `key` from `addr` may be handled now.
    /// A refusal is counted.
    pub fn check(&self, key: &[u8; 32], addr: IpAddr) -> Result<(), Limited> {
        let now = Instant::now();
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wait = |w: &Window| WINDOW.saturating_sub(now.duration_since(w.start));
        let by_key = g.by_key.get_mut(key).map(|w| *w.current(now));
        let by_addr = g.by_addr.get_mut(&addr).map(|w| *w.current(now));
        let verdict = if let Some(w) = by_key.filter(|w| w.failures >= FAILURES_PER_KEY) {
            Err(Limited::Key(wait(&w)))
        } else if let Some(w) = by_addr.filter(|w| w.failures >= FAILURES_PER_ADDR) {
            Err(Limited::Address(wait(&w)))
        } else {
            // A full table is pruned of expired windows; keys and
            // addresses that still do not fit go untracked (allowed: the
            // unenrolled pool bounds them, and failures cost the log
            // nothing), so filling the table cannot lock out newcomers.
            if g.by_key.len() >= MAX_TRACKED || g.by_addr.len() >= MAX_TRACKED {
                prune(&mut g, now);
            }
            Ok(())
        };
        if verdict.is_err() {
            g.counts.limited += 1;
            note(&mut g, key, addr);
        }
        verdict
    }

    /// Counts a failed enrollment by `key` from `addr` for `reason`.
    pub fn failed(&self, key: &[u8; 32], addr: IpAddr, reason: &str) {
        let now = Instant::now();
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = Window {
            start: now,
            failures: 0,
        };
        if g.by_key.len() < MAX_TRACKED || g.by_key.contains_key(key) {
            g.by_key.entry(*key).or_insert(fresh).current(now).failures += 1;
        }
        if g.by_addr.len() < MAX_TRACKED || g.by_addr.contains_key(&addr) {
            g.by_addr.entry(addr).or_insert(fresh).current(now).failures += 1;
        }
        g.counts.failed += 1;
        let bucket =
            if g.counts.reasons.len() < MAX_REASONS || g.counts.reasons.contains_key(reason) {
                reason.to_owned()
            } else {
                "other".to_owned()
            };
        *g.counts.reasons.entry(bucket).or_default() += 1;
        note(&mut g, key, addr);
    }

    /// The counts since the last call, or `None` when nothing happened.
    pub fn take_counts(&self) -> Option<EnrollCounts> {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.counts.failed == 0 && g.counts.limited == 0 {
            return None;
        }
        let mut c = std::mem::take(&mut g.counts);
        c.keys = std::mem::take(&mut g.keys).len();
        c.addresses = std::mem::take(&mut g.addrs).len();
        prune(&mut g, Instant::now());
        Some(c)
    }
}

fn note(g: &mut Inner, key: &[u8; 32], addr: IpAddr) {
    if g.keys.len() < MAX_TRACKED {
        g.keys.insert(*key);
    }
    if g.addrs.len() < MAX_TRACKED {
        g.addrs.insert(addr);
    }
}

fn prune(g: &mut Inner, now: Instant) {
    g.by_key.retain(|_, w| now.duration_since(w.start) < WINDOW);
    g.by_addr
        .retain(|_, w| now.duration_since(w.start) < WINDOW);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_an_address_are_limited_and_counted() {
        let l = EnrollLimiter::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..FAILURES_PER_KEY {
            l.check(&[1; 32], a).unwrap();
            l.failed(&[1; 32], a, "invite not recognised");
        }
        assert!(matches!(l.check(&[1; 32], a), Err(Limited::Key(_))));
        // Another key from another address is not held back by it.
        l.check(&[2; 32], b).unwrap();
        // Many keys from one address: the address limit holds.
        let mut refused = 0;
        for k in 3..60u8 {
            match l.check(&[k; 32], a) {
                Ok(()) => l.failed(&[k; 32], a, "invite not recognised"),
                Err(Limited::Address(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            refused,
            57 - (FAILURES_PER_ADDR - FAILURES_PER_KEY) as usize
        );
        let c = l.take_counts().unwrap();
        assert_eq!(c.failed, u64::from(FAILURES_PER_ADDR));
        assert_eq!(c.limited, 1 + refused as u64);
        assert_eq!(c.reasons["invite not recognised"], c.failed);
        // Only addresses that failed or were held back are counted.
        assert_eq!(c.addresses, 1);
        assert_eq!(l.take_counts(), None);
        assert!(
            Limited::Key(Duration::from_secs(59))
                .to_string()
                .contains("59 s")
        );
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
