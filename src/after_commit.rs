//! Work that follows a commit — thumbnails, the `--on-upload`/`--on-delete` hooks — on one background thread
//! fed by one bounded queue, never on the request's time.
//!
//! Bounded: at most `QUEUE` jobs wait; beyond that a job is dropped with a warning and counted
//! (a thumbnail is then made on its first request instead; a hook is not run). Isolated: a job that panics is logged
//! and the thread goes on with the next one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Jobs waiting at most.
pub const QUEUE: usize = 256;

/// One piece of work after a commit, with a name for the log.
pub struct Job {
    pub what: String,
    pub run: Box<dyn FnOnce() + Send>,
}

/// The queue's sending side; the thread ends when this is dropped.
pub struct AfterCommit {
    tx: SyncSender<Job>,
    /// Jobs refused because the queue was full.
    dropped: AtomicU64,
    /// Jobs queued and not yet done.
    waiting: Arc<AtomicU64>,
}

impl AfterCommit {
    pub fn start() -> std::io::Result<AfterCommit> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let waiting = Arc::new(AtomicU64::new(0));
        let theirs = Arc::clone(&waiting);
        std::thread::Builder::new()
            .name("after-commit".into())
            .spawn(move || work(rx, &theirs))?;
        Ok(AfterCommit {
            tx,
            dropped: AtomicU64::new(0),
            waiting,
        })
    }

    /// Jobs queued and not yet done.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Jobs dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a job; never blocks. False when the queue is full (or the thread is gone).
    pub fn submit(&self, what: String, run: impl FnOnce() + Send + 'static) -> bool {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Job {
            what,
            run: Box::new(run),
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                log::warn!(
                    "after-commit queue full: {} dropped ({n} dropped since start)",
                    job.what
                );
                false
            }
        }
    }
}

fn work(rx: Receiver<Job>, waiting: &AtomicU64) {
    while let Ok(job) = rx.recv() {
        let Job { what, run } = job;
        if catch_unwind(AssertUnwindSafe(run)).is_err() {
            log::error!("after-commit job {what} panicked; going on with the next");
        }
        waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn a_panicking_job_does_not_stop_the_next_and_a_full_queue_refuses() {
        let q = AfterCommit::start().expect("thread");
        let (done_tx, done_rx) = channel();
        assert!(q.submit("boom".into(), || panic!("a job's bug")));
        let tx = done_tx.clone();
        assert!(q.submit("after".into(), move || tx.send(1).expect("send")));
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        // Block the thread, then fill the queue: the one past QUEUE is refused.
        let (hold_tx, hold_rx) = channel::<()>();
        assert!(q.submit("hold".into(), move || {
            let _ = hold_rx.recv();
        }));
        std::thread::sleep(Duration::from_millis(50));
        let accepted = (0..QUEUE + 1)
            .filter(|_| q.submit("x".into(), || {}))
            .count();
        assert_eq!(accepted, QUEUE);
        assert_eq!(q.dropped(), 1);
        drop(hold_tx);
    }
}
