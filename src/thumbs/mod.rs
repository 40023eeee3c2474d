//! Thumbnails (longest side 256 px, JPEG) for JPEG, PNG, GIF (first frame) and WebP uploads, in
//! bounded memory, the right way up.
//!
//! Memory is bounded by construction, never by the file's own claims:
//! - the header's dimensions are read first; over `MAX_PIXELS` (50 MP) nothing is decoded;
//! - baseline JPEGs decode with DCT scaling (1/2 to 1/8), so a 24 MP photo is decoded at
//!   750×500; PNGs decode row by row into a box-filter accumulator one output row high;
//! - formats only decodable whole (GIF, WebP, progressive JPEG, interlaced PNG) are decoded only
//!   up to `MAX_WHOLE_PIXELS` (4 MP, 16 MiB of RGBA).
//!
//! EXIF orientation (JPEG) is applied to the small result. Thumbnails are made off the upload's
//! critical path by one background worker (and lazily on first request), written next to the
//! metadata with temp → rename, and deleted with their file. An image that cannot be thumbnailed
//! (bomb, corrupt) gets a `.none` marker, so it is not tried again, even after a restart.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::after_commit::AfterCommit;
use std::time::{Duration, Instant};

mod decode;
pub use decode::{
    exif_orientation, make, supported, ThumbError, MAX_PIXELS, MAX_WHOLE_PIXELS, THUMB_SIZE,
};

/// The longest a request waits for the one thumbnail being made before it is answered 503 with
/// `Retry-After` (the page retries): a gallery of 50 photos must never hold the worker pool.
pub const REQUEST_WAIT: Duration = Duration::from_secs(1);

/// Why `ensure` gave no thumbnail.
#[derive(Debug, PartialEq, Eq)]
pub enum NoThumb {
    /// None can be made (not an image we thumbnail, a bomb, corrupt, a decoder panic).
    Never,
    /// Another thumbnail is being made; ask again shortly.
    Busy,
}

/// "One thumbnail at a time" as a flag with a timed wait (std's `Mutex` has no timed lock).
/// The flag's own lock is held for a few instructions only, never across decoding.
#[derive(Default)]
struct Turn {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// Holding the turn; gives it back on drop (also when unwinding).
struct TurnGuard<'a>(&'a Turn);

impl Turn {
    fn flag(&self) -> MutexGuard<'_, bool> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `wait` (None: as long as it takes) for the turn.
    fn take(&self, wait: Option<Duration>) -> Option<TurnGuard<'_>> {
        let until = wait.map(|w| Instant::now() + w);
        let mut taken = self.flag();
        while *taken {
            taken = match until {
                None => self
                    .freed
                    .wait(taken)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(until) => {
                    let left = until.checked_duration_since(Instant::now())?;
                    self.freed
                        .wait_timeout(taken, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *taken = true;
        Some(TurnGuard(self))
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        *self.0.flag() = false;
        self.0.freed.notify_one();
    }
}

/// The thumbnail cache. Thumbnails are made after a commit by the after-commit queue
/// (`after_commit.rs`), or on first request.
pub struct Thumbs {
    dir: PathBuf,
    /// Names whose thumbnail failed (bomb, corrupt): not tried again (`.none` markers on disk).
    failed: Mutex<HashSet<String>>,
    /// One thumbnail is made at a time, process-wide: the memory bound holds however many
    /// requests ask at once, and a thumbnail asked for twice is made once.
    making: Turn,
}

impl Thumbs {
    /// Opens the cache in `dir` (clearing what a crash left half-written).
    pub fn open(dir: PathBuf) -> std::io::Result<Arc<Thumbs>> {
        crate::storage::open_state_dir(&dir)?;
        let mut failed = HashSet::new();
        for entry in fs::read_dir(&dir)?.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if let Some(name) = file_name.strip_suffix(".none") {
                failed.insert(name.to_string());
            }
        }
        Ok(Arc::new(Thumbs {
            dir,
            failed: Mutex::new(failed),
            making: Turn::default(),
        }))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jpg"))
    }

    /// Queues a thumbnail after an upload; never blocks (a full queue means "on first request").
    pub fn queue(self: &Arc<Self>, jobs: &AfterCommit, src: PathBuf, name: &str, mime: &str) {
        if supported(mime) {
            let (thumbs, name, mime) = (self.clone(), name.to_string(), mime.to_string());
            jobs.submit(format!("thumbnail of {name}"), move || {
                let _ = thumbs.ensure(&src, &name, &mime, None);
            });
        }
    }

    /// Whether a thumbnail exists or may still be made.
    pub fn available(&self, name: &str, mime: &str) -> bool {
        supported(mime)
            && !self
                .failed
                .lock()
                .map(|f| f.contains(name))
                .unwrap_or(false)
    }

    /// The thumbnail's path, making it first if needed (cached with temp → rename). `wait`
    /// bounds how long to wait for another thumbnail being made (None for the worker).
    pub fn ensure(
        &self,
        src: &Path,
        name: &str,
        mime: &str,
        wait: Option<Duration>,
    ) -> Result<PathBuf, NoThumb> {
        if let Some(path) = self.cached(src, name) {
            return Ok(path);
        }
        if !self.available(name, mime) {
            return Err(NoThumb::Never);
        }
        let _turn = self.making.take(wait).ok_or(NoThumb::Busy)?;
        if let Some(path) = self.cached(src, name) {
            return Ok(path); // made while we waited
        }
        if !self.available(name, mime) {
            return Err(NoThumb::Never);
        }
        let made = catch_unwind(AssertUnwindSafe(|| make_for_test_or_real(src, mime)))
            .unwrap_or_else(|_| {
                log::error!("the thumbnail decoder panicked on {name}; no thumbnail for it");
                Err(ThumbError::Panicked)
            });
        match made {
            Ok(bytes) => self.write(src, name, &bytes).ok_or(NoThumb::Never),
            Err(e) => {
                FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::info!("no thumbnail for {name}: {e}");
                let _ = File::create(self.dir.join(format!("{name}.none")));
                if let Ok(mut f) = self.failed.lock() {
                    f.insert(name.to_string());
                }
                Err(NoThumb::Never)
            }
        }
    }

    /// The cached thumbnail, if there is one newer than its source (a file replaced under its
    /// name, or gone, never shows an old picture).
    fn cached(&self, src: &Path, name: &str) -> Option<PathBuf> {
        let path = self.path(name);
        let thumb_time = fs::symlink_metadata(&path).ok()?.modified().ok()?;
        let src_time = fs::symlink_metadata(src).ok()?.modified().ok()?;
        (thumb_time >= src_time).then_some(path)
    }

    fn write(&self, src: &Path, name: &str, bytes: &[u8]) -> Option<PathBuf> {
        let path = self.path(name);
        // Unique per attempt: the worker and a request may make the same thumbnail at once.
        let nonce = crate::storage::random_hex().unwrap_or_default();
        let tmp = self.dir.join(format!("{name}.{nonce}.tmp"));
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
            .and_then(|_| fs::rename(&tmp, &path));
        match written {
            // The file may have been deleted while its thumbnail was being made.
            Ok(()) if !src.exists() => {
                let _ = fs::remove_file(&path);
                None
            }
            Ok(()) => Some(path),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                log::warn!("cannot write thumbnail of {name}: {e}");
                None
            }
        }
    }

    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.path(name));
        let _ = fs::remove_file(self.dir.join(format!("{name}.none")));
        if let Ok(mut f) = self.failed.lock() {
            f.remove(name);
        }
    }
}

/// Images that got no thumbnail (undecodable, too large, a decoder panic), since start.
static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// For `/metrics`.
pub fn failures() -> u64 {
    FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// `make`, except that debug builds (the integration tests' binary) obey
/// `PIDROP_DEBUG_THUMBS=panic:<mime>` or `sleep:<ms>`, so the tests can prove that a decoder
/// panic stays inside one thumbnail and that a slow one never holds request workers. Release
/// builds have no such switch.
fn make_for_test_or_real(src: &Path, mime: &str) -> Result<Vec<u8>, ThumbError> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("PIDROP_DEBUG_THUMBS") {
        if v.strip_prefix("panic:") == Some(mime) {
            panic!("PIDROP_DEBUG_THUMBS asked for a panic on {mime}");
        }
        if let Some(ms) = v.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    make(src, mime)
}
