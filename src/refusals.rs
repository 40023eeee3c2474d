//! Refusals logged as a summary, not a line each: a flood of refused connections or foreign
//! `Host` names (406,000 lines in 30 s from one slowloris client, measured) would fill journald's
//! rate limit and wear the SD card. The first refusal of an address in an interval is logged at
//! once; the rest are counted and summed up in one line per address per interval.
//!
//! Memory is bounded: at most `MAX_ADDRESSES` addresses are tracked per interval; refusals from
//! others are counted together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One summary line per address per this interval, at most.
pub const INTERVAL: Duration = Duration::from_secs(10);
const MAX_ADDRESSES: usize = 1024;

pub struct Refusals {
    /// What is refused, for the log lines ("connection", "request with a foreign Host").
    what: &'static str,
    state: Mutex<State>,
}

struct State {
    since: Instant,
    /// Refusals after the first, per address, and the last reason.
    counts: HashMap<IpAddr, (u64, String)>,
    others: u64,
}

impl Refusals {
    pub fn new(what: &'static str) -> Refusals {
        Refusals {
            what,
            state: Mutex::new(State {
                since: Instant::now(),
                counts: HashMap::new(),
                others: 0,
            }),
        }
    }

    /// Notes one refusal of `ip` for `why`.
    pub fn note(&self, ip: IpAddr, why: &str) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.since.elapsed() >= INTERVAL {
            self.flush(&mut st);
        }
        if let Some((n, last)) = st.counts.get_mut(&ip) {
            *n += 1;
            if last != why {
                *last = why.to_string();
            }
            return;
        }
        if st.counts.len() >= MAX_ADDRESSES {
            st.others += 1;
            return;
        }
        log::warn!(
            "refused a {} from {ip}: {why} (more from this address are summed up every {}s)",
            self.what,
            INTERVAL.as_secs()
        );
        st.counts.insert(ip, (0, why.to_string()));
    }

    fn flush(&self, st: &mut State) {
        let secs = st.since.elapsed().as_secs();
        for (ip, (n, why)) in st.counts.drain() {
            if n > 0 {
                log::warn!(
                    "refused {n} more {}(s) from {ip} in {secs}s: {why}",
                    self.what
                );
            }
        }
        if st.others > 0 {
            log::warn!(
                "refused {} more {}(s) from other addresses in {secs}s",
                st.others,
                self.what
            );
        }
        st.others = 0;
        st.since = Instant::now();
    }
}
