//! What the server remembers of the paths to its clients.
//!
//! When a client pulls, the server is the sender, and a new connection
//! starts its congestion window from 32 packets: on a 250 ms path that is
//! about two seconds of doubling before a fast link is full, most of a
//! 64 MiB transfer. The server remembers what each enrolled client's last
//! connection delivered (its rate and RTT, as its own controller measured
//! them, never as the client claims), by the client's key and source
//! address (an IPv6 /64 counts as one), and hands it to the controller of
//! the client's next connection from there, which resumes from it if the
//! RTT says it is the same path ([`matterdrop_common::congestion`]).
//! Memory only, bounded, forgotten after a day or a restart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use matterdrop_common::congestion::PathMemory;

/// Paths remembered at most (the oldest is forgotten first).
pub const KEPT: usize = 4096;
/// How long a path's memory is used.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// A client's key and source address.
type Client = ([u8; 32], IpAddr);

/// The paths remembered, by client, with when.
#[derive(Debug, Default)]
pub struct PathBook {
    paths: Mutex<HashMap<Client, (PathMemory, Instant)>>,
}

impl PathBook {
    /// The path from `source` to the client with `key`, if remembered
    /// within [`TTL`].
    pub fn get(&self, key: &[u8; 32], source: IpAddr) -> Option<PathMemory> {
        let paths = self.paths.lock().ok()?;
        let (m, at) = paths.get(&(*key, source))?;
        (at.elapsed() < TTL).then_some(*m)
    }

    /// Remembers what a connection to `key` at `source` measured.
    pub fn put(&self, key: &[u8; 32], source: IpAddr, m: PathMemory) {
        let Ok(mut paths) = self.paths.lock() else {
            return;
        };
        if paths.len() >= KEPT && !paths.contains_key(&(*key, source)) {
            paths.retain(|_, (_, at)| at.elapsed() < TTL);
            if paths.len() >= KEPT {
                let oldest = paths.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    paths.remove(&k);
                }
            }
        }
        paths.insert((*key, source), (m, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(rate: f64) -> PathMemory {
        PathMemory {
            rate,
            min_rtt: Duration::from_millis(250),
        }
    }

    #[test]
    fn remembers_by_key_and_source_and_stays_bounded() {
        let book = PathBook::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        book.put(&[1; 32], a, mem(1e6));
        assert_eq!(book.get(&[1; 32], a), Some(mem(1e6)));
        // Another key from the same address, or the same key elsewhere:
        // another path.
        assert_eq!(book.get(&[2; 32], a), None);
        assert_eq!(book.get(&[1; 32], b), None);
        book.put(&[1; 32], a, mem(2e6));
        assert_eq!(book.get(&[1; 32], a), Some(mem(2e6)));
        for i in 0..KEPT + 10 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            book.put(&k, b, mem(3e6));
        }
        assert_eq!(book.paths.lock().unwrap().len(), KEPT);
        // The newest stays.
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&((KEPT + 9) as u64).to_le_bytes());
        assert_eq!(book.get(&k, b), Some(mem(3e6)));
    }
}
