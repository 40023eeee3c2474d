//! A counting gate: at most a given number of holders at once, the others wait their turn. For
//! work that is heavy on a Pi and must not pile up however many requests ask for it (upload
//! scans, password verification).

use std::sync::{Condvar, Mutex, PoisonError};

pub struct Gate {
    inside: Mutex<usize>,
    left: Condvar,
}

/// A place inside a gate, given back when dropped.
pub struct Pass<'a>(&'a Gate);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub const fn new() -> Gate {
        Gate {
            inside: Mutex::new(0),
            left: Condvar::new(),
        }
    }

    /// Waits until fewer than `limit` (at least 1) are inside, then enters.
    pub fn enter(&self, limit: usize) -> Pass<'_> {
        let mut n = self.inside.lock().unwrap_or_else(PoisonError::into_inner);
        while *n >= limit.max(1) {
            n = self.left.wait(n).unwrap_or_else(PoisonError::into_inner);
        }
        *n += 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.inside.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.left.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_than_the_limit_inside() {
        static GATE: Gate = Gate::new();
        static INSIDE: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let _pass = GATE.enter(2);
                    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    INSIDE.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(MOST.load(Ordering::SeqCst), 2);
    }
}
