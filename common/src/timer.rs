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
//! one thread per process keeps every pending deadline in a heap and
//! sleeps on a condition variable until the earliest (a futex wait with a
//! nanosecond timeout, late by the kernel's timer slack, 50 µs by
//! default), then wakes the tasks whose deadline passed. Sockets and
//! tasks stay Tokio's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
    /// Wraps the Tokio runtime quinn finds, if it is called within one.
    pub fn new() -> Option<Arc<Self>> {
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

    fn now(&self) -> Instant {
        self.inner.now()
    }
}

/// One deadline, shared by its timer and the timer thread.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    deadline: Instant,
    /// The earliest entry this slot has in the heap, if any.
    armed: Option<Instant>,
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

impl AsyncTimer for PreciseTimer {
    fn reset(self: Pin<&mut Self>, at: Instant) {
        lock(&self.slot.state).deadline = at;
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context) -> Poll<()> {
        let now = Instant::now();
        let arm = {
            let mut s = lock(&self.slot.state);
            if s.deadline <= now {
                s.waker = None;
                return Poll::Ready(());
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
            let at = s.deadline;
            // An entry at or before the deadline is already in the heap:
            // the thread re-arms from it if the deadline moved later.
            if s.armed.is_some_and(|a| a <= at) {
                None
            } else {
                s.armed = Some(at);
                Some(at)
            }
        };
        if let Some(at) = arm {
            wheel().push(at, Arc::downgrade(&self.slot));
        }
        Poll::Pending
    }
}

/// A heap entry: a deadline and the slot it is for (gone if its timer
/// was dropped).
struct Entry {
    at: Instant,
    seq: u64,
    slot: Weak<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Heap {
    entries: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

/// The process's pending deadlines and the thread that serves them.
struct Wheel {
    heap: Mutex<Heap>,
    changed: Condvar,
}

fn wheel() -> &'static Wheel {
    static WHEEL: OnceLock<&'static Wheel> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let w: &'static Wheel = Box::leak(Box::new(Wheel {
            heap: Mutex::new(Heap::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("quic-timers".into())
            .spawn(move || w.run())
            // Without the thread no timer would ever fire: the process
            // cannot run QUIC at all, the same as if Tokio failed to start.
            .expect("start the QUIC timer thread");
        w
    })
}

impl Wheel {
    fn push(&self, at: Instant, slot: Weak<Slot>) {
        let mut h = lock(&self.heap);
        let earliest = h.entries.peek().is_none_or(|Reverse(e)| at < e.at);
        h.seq += 1;
        let seq = h.seq;
        h.entries.push(Reverse(Entry { at, seq, slot }));
        drop(h);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut due = Vec::new();
        loop {
            {
                let mut h = lock(&self.heap);
                loop {
                    let now = Instant::now();
                    while h.entries.peek().is_some_and(|Reverse(e)| e.at <= now) {
                        if let Some(Reverse(e)) = h.entries.pop() {
                            due.push(e);
                        }
                    }
                    if !due.is_empty() {
                        break;
                    }
                    let next = h.entries.peek().map(|Reverse(e)| e.at);
                    h = match next {
                        None => self
                            .changed
                            .wait(h)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        Some(at) => {
                            let wait = at.saturating_duration_since(now);
                            self.changed
                                .wait_timeout(h, wait)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                    };
                }
            }
            // No lock is held across the slots' (a timer locks its slot,
            // then the heap).
            let now = Instant::now();
            for e in due.drain(..) {
                let Some(slot) = e.slot.upgrade() else {
                    continue;
                };
                let (wake, rearm) = {
                    let mut s = lock(&slot.state);
                    if s.armed == Some(e.at) {
                        s.armed = None;
                    }
                    if s.deadline <= now {
                        (s.waker.take(), None)
                    } else if s.armed.is_none() && s.waker.is_some() {
                        // The deadline moved later since this entry was
                        // made: wait for the new one.
                        s.armed = Some(s.deadline);
                        (None, Some(s.deadline))
                    } else {
                        (None, None)
                    }
                };
                if let Some(w) = wake {
                    w.wake();
                }
                if let Some(at) = rearm {
                    self.push(at, Arc::downgrade(&slot));
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
        eprintln!(
            "median lateness: precise {:?}, tokio {:?}",
            precise[30], tokio[30]
        );
        assert!(
            precise[30] * 2 < tokio[30],
            "median lateness {:?}, Tokio's {:?}",
            precise[30],
            tokio[30]
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

    fn futures_noop() -> Waker {
        Waker::noop().clone()
    }
}
