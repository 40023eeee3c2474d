//! sha256 on a thread of its own, beside the upload it hashes.
//!
//! Measured (bench/PROFILE.md): hashing is ~45 % of a request thread's CPU even with SHA-NI, and
//! a Pi 4 has no SHA instructions at all, where software sha256 runs at about gigabit speed. On
//! the request thread, receiving, writing and hashing add up; here they overlap on two cores.
//! Chunks travel through a bounded channel (backpressure: at most `IN_FLIGHT` chunks of at most
//! 8 KiB wait) and their buffers come back for reuse, so memory stays fixed per upload.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use sha2::{Digest, Sha256};

/// Chunks queued for the hashing thread before the writer waits.
const IN_FLIGHT: usize = 4;
const STACK: usize = 64 << 10; // 64 KiB: the thread only hashes

pub struct Hasher {
    tx: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    done: Option<JoinHandle<String>>,
}

impl Hasher {
    pub fn start() -> std::io::Result<Hasher> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back, spare) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let done = thread::Builder::new()
            .name("sha256".into())
            .stack_size(STACK)
            .spawn(move || {
                let mut h = Sha256::new();
                for buf in rx {
                    h.update(&buf);
                    let _ = back.try_send(buf);
                }
                h.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            })?;
        Ok(Hasher {
            tx: Some(tx),
            spare,
            done: Some(done),
        })
    }

    /// Hands a copy of `data` to the hashing thread (waits if it is `IN_FLIGHT` chunks behind).
    pub fn update(&mut self, data: &[u8]) -> bool {
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.tx.as_ref().is_some_and(|tx| tx.send(buf).is_ok())
    }

    /// The hex digest of everything passed to `update`; `None` if the thread failed.
    pub fn finish(mut self) -> Option<String> {
        self.tx = None;
        self.done.take()?.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_known_vectors_whatever_the_chunking() {
        let mut h = Hasher::start().expect("thread");
        assert!(h.update(b"ab"));
        assert!(h.update(b""));
        assert!(h.update(b"c"));
        assert_eq!(
            h.finish().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let mut h = Hasher::start().expect("thread");
        let data = vec![0x61u8; 1_000_000];
        for chunk in data.chunks(8192) {
            assert!(h.update(chunk));
        }
        assert_eq!(
            h.finish().as_deref(),
            Some("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        );
    }
}
