//! Open connections per client address (`MAX_CONNECTIONS_PER_IP`), counted by RAII guards.
//!
//! Addresses are counted by their limit unit (IPv4, or the `/64` of IPv6, IPv4-mapped
//! normalized; see [`crate::security::ipnet::limit_key`]), so one host cannot dodge the cap by
//! rotating the addresses of its own prefix. An address with no open connection is forgotten,
//! so the table holds at most one entry per live connection, and never more than
//! `max_tracked` entries: when it is full, a new address is refused (the server is then
//! overloaded anyway; its own total cap is the lead's accept loop's business).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::security::ipnet::limit_key;

/// Per-address connection counters. `Send + Sync`; create it in an `Arc`.
pub struct ConnLimiter {
    per_ip_max: u32,
    max_tracked: usize,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; dropping it releases the slot. `Send`, so it can move with the
/// connection to its worker or streaming thread.
#[must_use = "the slot is released when the guard is dropped"]
#[derive(Debug)]
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    key: IpAddr,
}

impl ConnLimiter {
    /// A limiter allowing `per_ip_max` connections per address unit and tracking at most
    /// `max_tracked` distinct units at once.
    pub fn new(per_ip_max: u32, max_tracked: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip_max,
            max_tracked,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip`, or `None` when that address already has
    /// `per_ip_max` of them (or the table is full).
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let key = limit_key(ip);
        let mut counts = self.lock();
        let tracked = counts.len();
        match counts.get_mut(&key) {
            Some(n) if *n >= self.per_ip_max => return None,
            Some(n) => *n += 1,
            None if tracked >= self.max_tracked || self.per_ip_max == 0 => return None,
            None => {
                counts.insert(key, 1);
            }
        }
        Some(ConnGuard {
            limiter: Arc::clone(self),
            key,
        })
    }

    /// Open connections counted for `ip`'s unit.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.lock().get(&limit_key(ip)).copied().unwrap_or(0)
    }

    /// Distinct address units with at least one open connection.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// The per-address cap.
    pub fn per_ip_max(&self) -> u32 {
        self.per_ip_max
    }

    fn release(&self, key: IpAddr) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnGuard {
    /// The address unit this guard counts against.
    pub fn key(&self) -> IpAddr {
        self.key
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limiter.release(self.key);
    }
}

impl std::fmt::Debug for ConnLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLimiter")
            .field("per_ip_max", &self.per_ip_max)
            .field("max_tracked", &self.max_tracked)
            .field("tracked", &self.tracked())
            .finish()
    }
}

/// Number of distinct address units tracked (bounded by the total connection cap in
/// practice).
pub const DEFAULT_MAX_TRACKED: usize = 65_536;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_at_most_its_cap_and_slots_come_back_on_drop() {
        let l = ConnLimiter::new(2, 100);
        let a1 = l.try_acquire(ip("192.0.2.1")).unwrap();
        let a2 = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(l.try_acquire(ip("192.0.2.1")).is_none());
        // The IPv4-mapped form is the same client.
        assert!(l.try_acquire(ip("::ffff:192.0.2.1")).is_none());
        let b = l.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(l.count(ip("192.0.2.1")), 2);
        assert_eq!(l.tracked(), 2);
        drop(a1);
        assert_eq!(l.count(ip("192.0.2.1")), 1);
        let a3 = l.try_acquire(ip("192.0.2.1")).unwrap();
        drop((a2, a3, b));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let l = ConnLimiter::new(1, 100);
        let g = l.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(g.key(), ip("2001:db8:1:2::"));
        assert!(l.try_acquire(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(l.try_acquire(ip("2001:db8:1:3::1")).is_some());
    }

    #[test]
    fn the_table_is_bounded() {
        let l = ConnLimiter::new(4, 3);
        let guards: Vec<_> = (1..=3u8)
            .map(|i| l.try_acquire(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert!(l.try_acquire(ip("10.0.0.4")).is_none());
        // Known addresses still get their slots.
        assert!(l.try_acquire(ip("10.0.0.1")).is_some());
        drop(guards);
        assert!(l.try_acquire(ip("10.0.0.4")).is_some());
        let zero = ConnLimiter::new(0, 3);
        assert!(zero.try_acquire(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn guards_move_across_threads_and_counts_stay_exact() {
        let l = ConnLimiter::new(1_000, 10);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let g = l.try_acquire(ip("198.51.100.1")).unwrap();
                        let g2 = std::thread::spawn(move || g).join().unwrap();
                        drop(g2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(l.count(ip("198.51.100.1")), 0);
        assert_eq!(l.tracked(), 0);
    }
}
