//! Guessing passwords and tokens is made slow: failures are counted per client address (10 in
//! 15 minutes → 429 with `Retry-After`, one minute at first, doubling up to an hour), and across
//! all addresses (more than `GLOBAL_PER_MINUTE` failures in a minute → every credential is
//! refused for a few seconds, which keeps a guess spread over many addresses slow). A success
//! clears its address. Every failure is logged in one stable line a fail2ban filter can match:
//! `authentication failure from <address>`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const FAILURES: u32 = 10;
const FIRST_BLOCK: Duration = Duration::from_secs(60);
const LONGEST_BLOCK: Duration = Duration::from_secs(3600);
const GLOBAL_PER_MINUTE: u32 = 60;
const GLOBAL_PAUSE: Duration = Duration::from_secs(5);
/// Addresses tracked at most (a flood of addresses forgets the oldest, never grows memory).
const TRACKED: usize = 4096;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    since: Instant,
    blocked_until: Option<Instant>,
    blocks: u32,
}

pub struct Throttle {
    by_address: Mutex<HashMap<IpAddr, Record>>,
    global: Mutex<(u32, Instant)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            by_address: Mutex::new(HashMap::new()),
            global: Mutex::new((0, Instant::now())),
        }
    }
}

impl Throttle {
    /// How long `ip` must wait before its credentials are looked at again, if it must.
    pub fn wait(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        {
            let g = self.global.lock().unwrap_or_else(PoisonError::into_inner);
            if g.0 > GLOBAL_PER_MINUTE && now.duration_since(g.1) < Duration::from_secs(60) {
                return Some(GLOBAL_PAUSE);
            }
        }
        let map = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = map.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Credentials from `ip` did not verify.
    pub fn failed(&self, ip: IpAddr) {
        log::warn!("authentication failure from {ip}");
        let now = Instant::now();
        {
            let mut g = self.global.lock().unwrap_or_else(PoisonError::into_inner);
            if now.duration_since(g.1) >= Duration::from_secs(60) {
                *g = (0, now);
            }
            g.0 += 1;
        }
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= TRACKED && !map.contains_key(&ip) {
            map.retain(|_, r| now.duration_since(r.since) < WINDOW);
            if map.len() >= TRACKED {
                map.clear();
            }
        }
        let r = map.entry(ip).or_insert(Record {
            failures: 0,
            since: now,
            blocked_until: None,
            blocks: 0,
        });
        if now.duration_since(r.since) >= WINDOW {
            (r.failures, r.since) = (0, now);
        }
        r.failures += 1;
        if r.failures >= FAILURES {
            let block = (FIRST_BLOCK * 2u32.saturating_pow(r.blocks)).min(LONGEST_BLOCK);
            r.blocked_until = Some(now + block);
            r.blocks = r.blocks.saturating_add(1);
            r.failures = 0;
            log::warn!(
                "too many authentication failures from {ip}: refused for {} s",
                block.as_secs()
            );
        }
    }

    /// Credentials from `ip` verified: its record is cleared.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_block_an_address_and_a_success_clears_it() {
        let t = Throttle::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..9 {
            t.failed(a);
        }
        assert!(t.wait(a).is_none());
        t.succeeded(a);
        for _ in 0..10 {
            t.failed(a);
        }
        let w = t.wait(a).expect("blocked");
        assert!(w > Duration::from_secs(50) && w <= FIRST_BLOCK, "{w:?}");
        assert!(t.wait(b).is_none(), "another address is not blocked");
        for _ in 0..GLOBAL_PER_MINUTE {
            t.failed(b);
        }
        assert_eq!(
            t.wait("192.0.2.3".parse().expect("ip")),
            Some(GLOBAL_PAUSE),
            "many failures slow everyone"
        );
    }
}
