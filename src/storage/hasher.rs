//! sha256 on a thread of its own, reading back what the upload has just written.
//!
//! Measured (bench/PROFILE.md): hashing is ~45 % of a request thread's CPU even with SHA-NI, and
//! a Pi 4 has no SHA instructions at all, where software sha256 runs at about gigabit speed. On
//! the request thread, receiving, writing and hashing add up; here they overlap on two cores.
//!
//! Small files are hashed inline (`FileDigest`); larger ones by the thread. The hashing thread
//! does not get the bytes handed over: it follows the temp file, reading
//! (`pread`) whatever the writer reports as written. So the writer is free to move bytes without
//! them ever entering user space (`splice(2)` for PUT bodies), there is no per-chunk copy or
//! channel message, and the digest is of the bytes as they are in the file. The lag is bounded
//! (`MAX_LAG`): the writer waits rather than let the hasher fall so far behind that it would
//! read from the disk instead of the page cache, where freshly written pages still are.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How far the hasher may trail the writer before the writer waits.
const MAX_LAG: u64 = 4 << 20; // 4 MiB
/// The hasher's read size: one buffer per upload being hashed.
const CHUNK: usize = 64 << 10;
const STACK: usize = 64 << 10; // 64 KiB: the thread only hashes

#[derive(Default)]
struct Progress {
    /// Bytes the writer has put in the file.
    written: u64,
    /// Bytes hashed so far.
    hashed: u64,
    /// No more bytes will come: hash up to `written` and stop.
    closed: bool,
    /// The upload was abandoned: stop at once.
    abandoned: bool,
    /// A read failed; the digest cannot be had.
    failed: bool,
    /// The writer waits on `caught_up` (so only then does the hasher pay for a wake-up).
    writer_waits: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    /// Signalled when the hasher moves on, for a writer waiting on `MAX_LAG`.
    caught_up: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A poisoned lock only means the other side panicked; the numbers are still whole.
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Hasher {
    shared: Arc<Shared>,
    thread: Thread,
    /// `written` at the last wake-up: the hasher is woken once per `CHUNK`, not per write (per
    /// 8 KiB write, strace showed four futex calls per write, the two threads ping-ponging).
    nudged: u64,
    done: Option<JoinHandle<Option<Sha256>>>,
}

impl Hasher {
    /// Starts hashing `file` (its own descriptor, for reading) from offset 0.
    #[cfg(test)]
    pub fn start(file: File) -> std::io::Result<Hasher> {
        Hasher::resume(file, Sha256::new(), 0)
    }

    /// Continues a hash `state` that covers the file's first `from` bytes, on a thread that
    /// reads the rest from `file` (its own descriptor).
    pub fn resume(file: File, state: Sha256, from: u64) -> std::io::Result<Hasher> {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                written: from,
                hashed: from,
                ..Progress::default()
            }),
            caught_up: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let done = thread::Builder::new()
            .name("sha256".into())
            .stack_size(STACK)
            .spawn(move || follow(&file, &theirs, state, from))?;
        Ok(Hasher {
            shared,
            thread: done.thread().clone(),
            nudged: from,
            done: Some(done),
        })
    }

    /// Reports that the file now holds `written` bytes. Waits while the hasher is more than
    /// `MAX_LAG` behind. False if hashing failed (the upload cannot get its digest).
    pub fn written(&mut self, written: u64) -> bool {
        let mut p = self.shared.lock();
        p.written = written;
        if written.saturating_sub(self.nudged) >= CHUNK as u64 {
            self.nudged = written;
            self.thread.unpark();
        }
        while !p.failed && p.written.saturating_sub(p.hashed) > MAX_LAG {
            // A thread that ended without saying so (it cannot, short of a panic) never catches up.
            if self.done.as_ref().is_none_or(|d| d.is_finished()) {
                p.failed = true;
                break;
            }
            self.thread.unpark();
            p.writer_waits = true;
            p = self
                .shared
                .caught_up
                .wait_timeout(p, Duration::from_secs(1))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        p.writer_waits = false;
        !p.failed
    }

    /// The hex digest of the file's first `written` bytes; `None` if hashing failed.
    #[cfg(test)]
    pub fn finish(self) -> Option<String> {
        self.state().map(digest_hex)
    }

    /// The hash state over the file's first `written` bytes (to be continued later).
    fn state(mut self) -> Option<Sha256> {
        self.shared.lock().closed = true;
        self.thread.unpark();
        self.done.take()?.join().ok().flatten()
    }
}

impl Drop for Hasher {
    /// Stops the thread and waits for it: it holds a descriptor of the temp file, and the
    /// file's space is only given back once that is closed (a 507 must leave the disk as it was).
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            self.shared.lock().abandoned = true;
            self.thread.unpark();
            let _ = done.join();
        }
    }
}

/// The hashing thread: reads what is written, as it is written, until told the file is whole.
fn follow(file: &File, shared: &Shared, mut h: Sha256, from: u64) -> Option<Sha256> {
    let mut buf = vec![0u8; CHUNK];
    let mut hashed = from;
    loop {
        let (written, closed) = {
            let mut p = shared.lock();
            p.hashed = hashed;
            if p.writer_waits {
                shared.caught_up.notify_one();
            }
            if p.abandoned || p.failed {
                return None;
            }
            (p.written, p.closed)
        };
        if hashed >= written {
            if closed {
                break;
            }
            // An unpark that came before this park makes it return at once: nothing is missed.
            thread::park();
            continue;
        }
        let want = usize::try_from(written - hashed)
            .unwrap_or(CHUNK)
            .min(CHUNK);
        match file.read_at(&mut buf[..want], hashed) {
            Ok(n) if n > 0 => {
                h.update(&buf[..n]);
                hashed += n as u64;
            }
            Ok(_) | Err(_) => {
                let mut p = shared.lock();
                p.failed = true;
                shared.caught_up.notify_one();
                return None;
            }
        }
    }
    Some(h)
}

fn digest_hex(h: Sha256) -> String {
    super::hex(&h.finalize())
}

/// An upload's sha256, hashed where it is cheapest. Small files are hashed inline, from the
/// bytes as they are written: no thread, no descriptor, no read-back (measured per small file:
/// a thread spawn and join, a `dup`, a `pread`). From `INLINE_UP_TO`, or as soon as bytes reach
/// the file without passing user space (`splice`), a `Hasher` thread takes the state over and
/// follows the file from there.
pub enum FileDigest {
    Inline { state: Sha256, len: u64 },
    Following(Hasher),
}

/// A sha256 in progress over a file's first `len` bytes: what a resumable upload carries from
/// one request to the next, so the whole file is not read back at its end.
#[derive(Clone)]
pub struct DigestState {
    sha: Sha256,
    pub len: u64,
}

impl DigestState {
    /// The state of `sha` over `len` bytes (a backend that hashes as bytes pass).
    pub fn new(sha: Sha256, len: u64) -> DigestState {
        DigestState { sha, len }
    }

    /// The running hash, to go on with.
    pub fn into_sha(self) -> Sha256 {
        self.sha
    }
}

/// Files are hashed inline up to this size.
pub const INLINE_UP_TO: u64 = 256 << 10;

impl FileDigest {
    pub fn new() -> FileDigest {
        FileDigest::Inline {
            state: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes were appended to `file`, which now holds `in_file` bytes; `data` is them when they
    /// passed through user space. False if the digest cannot be had (hashing failed).
    pub fn appended(
        &mut self,
        file: &File,
        data: Option<&[u8]>,
        in_file: u64,
    ) -> std::io::Result<bool> {
        if let FileDigest::Inline { state, len } = self {
            match data {
                Some(d) if *len + d.len() as u64 == in_file && in_file <= INLINE_UP_TO => {
                    state.update(d);
                    *len = in_file;
                    return Ok(true);
                }
                _ => {
                    let state = std::mem::take(state);
                    let hasher = Hasher::resume(file.try_clone()?, state, *len)?;
                    *self = FileDigest::Following(hasher);
                }
            }
        }
        match self {
            FileDigest::Following(h) => Ok(h.written(in_file)),
            FileDigest::Inline { .. } => Ok(false),
        }
    }

    /// Continues hashing a file whose first `len` bytes `state` covers.
    pub fn resume(state: DigestState) -> FileDigest {
        FileDigest::Inline {
            state: state.sha,
            len: state.len,
        }
    }

    /// The hex digest of everything appended; `None` if hashing failed.
    pub fn finish(self) -> Option<String> {
        self.suspend().map(|s| digest_hex(s.sha))
    }

    /// Stops hashing, keeping the state over everything appended so far; `None` if hashing
    /// failed.
    pub fn suspend(self) -> Option<DigestState> {
        match self {
            FileDigest::Inline { state, len } => Some(DigestState { sha: state, len }),
            FileDigest::Following(h) => {
                let len = h.shared.lock().written;
                h.state().map(|sha| DigestState { sha, len })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(tag: &str) -> (std::path::PathBuf, File) {
        let (file, path) = crate::sys::scratch_file(&format!("hasher-{tag}"));
        (path, file)
    }

    #[test]
    fn digest_matches_known_vectors_whatever_the_chunking() {
        let (path, mut file) = temp_file("vectors");
        let mut h = Hasher::start(file.try_clone().expect("dup")).expect("thread");
        file.write_all(b"ab").expect("write");
        assert!(h.written(2));
        assert!(h.written(2));
        file.write_all(b"c").expect("write");
        assert!(h.written(3));
        assert_eq!(
            h.finish().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );

        // A million 'a's, written in pieces of every size around the hasher's own chunk and lag.
        file.set_len(0).expect("truncate");
        let mut h = Hasher::start(file.try_clone().expect("dup")).expect("thread");
        let data = vec![0x61u8; 1_000_000];
        let mut at = 0usize;
        for size in [1, 8191, 8192, 65535, 65536, 65537, 300_000].iter().cycle() {
            if at == data.len() {
                break;
            }
            let n = (*size).min(data.len() - at);
            file.write_all_at(&data[at..at + n], at as u64)
                .expect("write");
            at += n;
            assert!(h.written(at as u64));
        }
        assert_eq!(
            h.finish().as_deref(),
            Some("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_writer_far_ahead_waits_and_the_digest_is_still_whole() {
        // 20 MiB reported in one step: the writer must wait (MAX_LAG) and the result is exact.
        let (path, file) = temp_file("lag");
        let data: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&data, 0).expect("write");
        let mut h = Hasher::start(file.try_clone().expect("dup")).expect("thread");
        assert!(h.written(data.len() as u64));
        let p = h.shared.lock().hashed;
        assert!(
            data.len() as u64 - p <= MAX_LAG,
            "returned while {p} bytes were hashed"
        );
        let expected = digest_hex(Sha256::new_with_prefix(&data));
        assert_eq!(h.finish(), Some(expected));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn small_files_hash_inline_and_larger_or_spliced_ones_hand_over_to_the_thread() {
        let expected = |d: &[u8]| -> String { digest_hex(Sha256::new_with_prefix(d)) };
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
        for (tag, spliced_at) in [("small", None), ("large", None), ("spliced", Some(20_000))] {
            let (path, mut file) = temp_file(tag);
            let total = if tag == "small" { 100_000 } else { data.len() };
            let mut d = FileDigest::new();
            let mut at = 0;
            for chunk in data[..total].chunks(8192) {
                file.write_all(chunk).expect("write");
                at += chunk.len();
                // Bytes past `spliced_at` reach the file without passing through here.
                let seen = match spliced_at {
                    Some(s) if at > s => None,
                    _ => Some(chunk),
                };
                assert!(d.appended(&file, seen, at as u64).expect("appended"));
            }
            let inline = matches!(d, FileDigest::Inline { .. });
            assert_eq!(inline, tag == "small", "{tag}: inline {inline}");
            assert_eq!(d.finish(), Some(expected(&data[..total])), "{tag}");
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_file_shorter_than_reported_fails_instead_of_hanging() {
        let (path, file) = temp_file("short");
        file.write_all_at(b"abc", 0).expect("write");
        let mut h = Hasher::start(file.try_clone().expect("dup")).expect("thread");
        let _ = h.written(10);
        assert_eq!(h.finish(), None);
        let _ = std::fs::remove_file(path);
    }
}
