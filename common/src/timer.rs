//! Timers for quinn precise to a fraction of a millisecond.
//!
//! quinn paces a connection with a token bucket that holds one burst of
//! `window × 2 ms / RTT` (10 packets at least), and when the bucket runs
//! dry it sleeps until four fifths of a burst has come back, about 1.3 ms
//! at its pacing rate of 1.25 × window / RTT. Tokio's timers tick in whole
//! milliseconds and its reactor waits in whole milliseconds, both rounded
//! up, so that sleep lasts 2–3 ms, and since the bucket holds one burst at
//! most, the time overslept is lost: the connection sends one burst per
//! wake-up. On a 250 ms, 400 Mbit/s path a window of 1.3 × the
//! bandwidth-delay product (what the congestion controller asks for in
//! cruise) then put only 12 MB in flight, the link's 47–49 MB/s, with
//! 16.4 MB allowed, and the link idled whenever no queue was left from
//! the probing round.
//!
//! [`PreciseRuntime`] is quinn's Tokio runtime with its timers replaced:
//! one thread per process keeps every pending deadline in an ordered map
//! and sleeps on a condition variable until the earliest (a futex wait
//! with a nanosecond timeout, late by the kernel's timer slack, 50 µs by
//! default), then wakes the tasks whose deadline passed. A timer has at
//! most one entry there (a deadline moved earlier replaces it; one moved
//! later is re-armed from it when it comes). Sockets and tasks stay
//! Tokio's.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, Runtime};

/// quinn's Tokio runtime with [`PreciseTimer`]s (see the module).
#[derive(Debug)]
pub struct PreciseRuntime {
    inner: Arc<dyn Runtime>,
}

impl PreciseRuntime {
    /// Wraps the Tokio runtime quinn finds, if it is called within one
    /// and the timer thread runs.
    pub fn new() -> Option<Arc<Self>> {
        wheel()?;
        quinn::default_runtime().map(|inner| Arc::new(Self { inner }))
    }
}

impl Runtime for PreciseRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(PreciseTimer::new(at))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.inner.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        self.inner.wrap_udp_socket(socket)
    }

    /// The clock the timers keep (not Tokio's, which a test can pause).
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// One deadline, shared by its timer and the timer thread.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
}

/// A key of the wheel's map: a deadline and a sequence number.
type Key = (Instant, u64);

#[derive(Debug)]
struct SlotState {
    deadline: Instant,
    /// This slot's entry in the wheel, if any (at or before `deadline`).
    armed: Option<Key>,
    /// The task waiting for the deadline.
    waker: Option<Waker>,
}

/// A timer that the timer thread wakes within the kernel's timer slack of
/// its deadline.
pub struct PreciseTimer {
    slot: Arc<Slot>,
}

impl fmt::Debug for PreciseTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreciseTimer").finish_non_exhaustive()
    }
}

impl PreciseTimer {
    pub fn new(deadline: Instant) -> Self {
        Self {
            slot: Arc::new(Slot {
                state: Mutex::new(SlotState {
                    deadline,
                    armed: None,
                    waker: None,
                }),
            }),
        }
    }
}

impl PreciseTimer {
    /// Gives the slot an entry at its deadline if it has a task waiting
    /// and no entry at or before the deadline (one after it is replaced;
    /// one before it re-arms when it comes).
    fn arm(&self, mut s: std::sync::MutexGuard<'_, SlotState>) {
        let Some(wheel) = wheel() else {
            return;
        };
        if s.waker.is_none() || s.armed.is_some_and(|(a, _)| a <= s.deadline) {
            return;
        }
        let old = s.armed.take();
        let key = wheel.insert(s.deadline, old, Arc::downgrade(&self.slot));
        s.armed = Some(key);
    }
}

impl AsyncTimer for PreciseTimer {
    fn reset(self: Pin<&mut Self>, at: Instant) {
        let mut s = lock(&self.slot.state);
        s.deadline = at;
        // Earlier than the entry, with a task waiting: move the entry now,
        // not at the next poll.
        self.arm(s);
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context) -> Poll<()> {
        let now = Instant::now();
        let mut s = lock(&self.slot.state);
        if s.deadline <= now {
            s.waker = None;
            return Poll::Ready(());
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        self.arm(s);
        Poll::Pending
    }
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<Key, Weak<Slot>>,
    seq: u64,
}

/// The process's pending deadlines and the thread that serves them.
struct Wheel {
    entries: Mutex<Entries>,
    changed: Condvar,
}

/// The wheel, its thread started on first use; `None` if the thread
/// could not be started (then no endpoint is made: without it no timer
/// would fire).
fn wheel() -> Option<&'static Wheel> {
    static WHEEL: OnceLock<Option<&'static Wheel>> = OnceLock::new();
    *WHEEL.get_or_init(|| {
        let w: &'static Wheel = Box::leak(Box::new(Wheel {
            entries: Mutex::new(Entries::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("quic-timers".into())
            .spawn(move || w.run())
            .ok()
            .map(|_| w)
    })
}

impl Wheel {
    /// Adds an entry at `at` for `slot`, removing its entry `old`; returns
    /// the new entry's key. The slot's lock is held: the wheel's is taken
    /// inside it, never the other way round.
    fn insert(&self, at: Instant, old: Option<Key>, slot: Weak<Slot>) -> Key {
        let mut e = lock(&self.entries);
        if let Some(old) = old {
            e.map.remove(&old);
        }
        e.seq += 1;
        let key = (at, e.seq);
        let earliest = e.map.first_key_value().is_none_or(|(k, _)| key < *k);
        e.map.insert(key, slot);
        drop(e);
        if earliest {
            self.changed.notify_one();
        }
        key
    }

    fn run(&self) {
        let mut due = Vec::new();
        loop {
            {
                let mut e = lock(&self.entries);
                loop {
                    let now = Instant::now();
                    while e.map.first_key_value().is_some_and(|(k, _)| k.0 <= now) {
                        if let Some(entry) = e.map.pop_first() {
                            due.push(entry);
                        }
                    }
                    if !due.is_empty() {
                        break;
                    }
                    let next = e.map.first_key_value().map(|(k, _)| k.0);
                    e = match next {
                        None => self
                            .changed
                            .wait(e)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        Some(at) => {
                            let wait = at.saturating_duration_since(now);
                            self.changed
                                .wait_timeout(e, wait)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                    };
                }
            }
            // The wheel's lock is not held here: a timer takes its slot's
            // lock, then the wheel's.
            let now = Instant::now();
            for (key, slot) in due.drain(..) {
                let Some(slot) = slot.upgrade() else {
                    continue;
                };
                let timer = PreciseTimer { slot };
                let mut s = lock(&timer.slot.state);
                if s.armed != Some(key) {
                    // Replaced while it was being taken out.
                    continue;
                }
                s.armed = None;
                if s.deadline <= now {
                    let waker = s.waker.take();
                    drop(s);
                    if let Some(w) = waker {
                        // A waker that panics must not stop every timer of
                        // the process.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
                    }
                } else {
                    // The deadline moved later since this entry was made.
                    timer.arm(s);
                }
            }
        }
    }
}

/// Locks `m`, whatever a panicking holder left (the state is a deadline
/// and a waker: always consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn sleep(at: Instant) {
        let mut t = Box::pin(PreciseTimer::new(at));
        std::future::poll_fn(|cx| t.as_mut().poll(cx)).await;
    }

    #[tokio::test]
    async fn a_timer_fires_at_its_deadline_not_a_tick_later() {
        // The pacer's sleeps are about 1.3 ms. Tokio's own timer rounds
        // them up to its millisecond ticks; these must fire sooner after
        // the deadline than Tokio's do, in the same run (a loaded machine
        // delays both).
        let (mut precise, mut tokio) = (Vec::new(), Vec::new());
        for _ in 0..60 {
            let at = Instant::now() + Duration::from_micros(1300);
            sleep(at).await;
            let now = Instant::now();
            assert!(now >= at, "fired early");
            precise.push(now - at);
            let at = Instant::now() + Duration::from_micros(1300);
            tokio::time::sleep_until(at.into()).await;
            tokio.push(Instant::now() - at);
        }
        precise.sort();
        tokio.sort();
        // The lower quartile: what each clock gives when the machine lets
        // it (a loaded machine delays both).
        eprintln!(
            "lateness, lower quartile and median: precise {:?} {:?}, Tokio {:?} {:?}",
            precise[15], precise[30], tokio[15], tokio[30]
        );
        assert!(
            precise[15] * 2 < tokio[15],
            "lateness {:?}, Tokio's {:?}",
            precise[15],
            tokio[15]
        );
    }

    #[tokio::test]
    async fn a_reset_timer_fires_at_its_new_deadline_earlier_or_later() {
        let start = Instant::now();
        let mut t = Box::pin(PreciseTimer::new(start + Duration::from_secs(30)));
        let waker = futures_noop();
        let mut cx = Context::from_waker(&waker);
        assert!(t.as_mut().poll(&mut cx).is_pending());
        // Earlier.
        t.as_mut().reset(start + Duration::from_millis(5));
        std::future::poll_fn(|cx| t.as_mut().poll(cx)).await;
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took the old deadline"
        );
        // Later, after being armed earlier.
        let start = Instant::now();
        t.as_mut().reset(start + Duration::from_millis(2));
        assert!(t.as_mut().poll(&mut cx).is_pending());
        t.as_mut().reset(start + Duration::from_millis(20));
        std::future::poll_fn(|cx| t.as_mut().poll(cx)).await;
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "fired at the old deadline"
        );
    }

    #[tokio::test]
    async fn many_timers_each_fire_and_dropped_ones_are_forgotten() {
        let start = Instant::now();
        // Dropped before their deadline: nothing to wake.
        for i in 0..100 {
            let mut t = Box::pin(PreciseTimer::new(start + Duration::from_millis(1 + i % 7)));
            let waker = futures_noop();
            let _ = t.as_mut().poll(&mut Context::from_waker(&waker));
        }
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let at = start + Duration::from_micros(500 + 37 * i);
                tokio::spawn(async move {
                    sleep(at).await;
                    Instant::now() >= at
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("task"), "a timer fired early");
        }
    }

    #[test]
    fn a_deadline_moved_earlier_replaces_its_entry() {
        let start = Instant::now() + Duration::from_secs(60);
        let mut t = Box::pin(PreciseTimer::new(start));
        let waker = futures_noop();
        let mut cx = Context::from_waker(&waker);
        assert!(t.as_mut().poll(&mut cx).is_pending());
        let in_wheel = |key: Key| lock(&wheel().unwrap().entries).map.contains_key(&key);
        let mut last = lock(&t.slot.state).armed.expect("armed");
        for i in 1..200u32 {
            // Earlier each time (as a pacer's deadline under a far idle
            // timeout), with and without a poll after the reset.
            t.as_mut()
                .reset(start - Duration::from_millis(u64::from(i)));
            if i % 2 == 0 {
                assert!(t.as_mut().poll(&mut cx).is_pending());
            }
            let now = lock(&t.slot.state).armed.expect("armed");
            assert!(now.0 <= start - Duration::from_millis(u64::from(i)));
            assert!(!in_wheel(last), "a replaced entry stayed");
            assert!(in_wheel(now));
            last = now;
        }
        // Later: the earlier entry stays, and re-arms when it comes.
        t.as_mut().reset(start + Duration::from_secs(1));
        assert!(t.as_mut().poll(&mut cx).is_pending());
        assert_eq!(lock(&t.slot.state).armed, Some(last));
    }

    fn futures_noop() -> Waker {
        Waker::noop().clone()
    }
}
