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
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

mod decode;
pub use decode::{
    exif_orientation, make, supported, ThumbError, MAX_PIXELS, MAX_WHOLE_PIXELS, THUMB_SIZE,
};

/// Thumbnails waiting for the worker; beyond this they are made on first request instead.
const QUEUE: usize = 256;

/// The thumbnail cache and its background worker.
pub struct Thumbs {
    dir: PathBuf,
    queue: SyncSender<(PathBuf, String, String)>,
    /// Names whose thumbnail failed (bomb, corrupt): not tried again (`.none` markers on disk).
    failed: Mutex<HashSet<String>>,
    /// One thumbnail is made at a time, process-wide: the memory bound holds however many
    /// requests ask at once, and a thumbnail asked for twice is made once.
    making: Mutex<()>,
}

impl Thumbs {
    /// Starts the worker; thumbnails live in `dir`.
    pub fn start(dir: PathBuf) -> std::io::Result<Arc<Thumbs>> {
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
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let thumbs = Arc::new(Thumbs {
            dir,
            queue: tx,
            failed: Mutex::new(failed),
            making: Mutex::new(()),
        });
        let worker = thumbs.clone();
        std::thread::Builder::new()
            .name("thumbnails".into())
            .spawn(move || worker.run(rx))?;
        Ok(thumbs)
    }

    fn run(&self, rx: Receiver<(PathBuf, String, String)>) {
        while let Ok((src, name, mime)) = rx.recv() {
            let _ = self.ensure(&src, &name, &mime);
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jpg"))
    }

    /// Queues a thumbnail after an upload; never blocks (a full queue means "lazily later").
    pub fn queue(&self, src: PathBuf, name: &str, mime: &str) {
        if supported(mime) {
            let _ = self
                .queue
                .try_send((src, name.to_string(), mime.to_string()));
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

    /// The thumbnail's path, making it first if needed (cached with temp → rename).
    pub fn ensure(&self, src: &Path, name: &str, mime: &str) -> Option<PathBuf> {
        let path = self.path(name);
        if path.exists() {
            return Some(path);
        }
        if !self.available(name, mime) {
            return None;
        }
        let _one_at_a_time = self.making.lock().ok()?;
        if path.exists() {
            return Some(path); // made while we waited
        }
        if !self.available(name, mime) {
            return None;
        }
        match make(src, mime) {
            Ok(bytes) => {
                // Unique per attempt: the worker and a request may make the same thumbnail at once.
                let nonce = crate::storage::random_hex().unwrap_or_default();
                let tmp = self.dir.join(format!("{name}.{nonce}.tmp"));
                let written = File::create(&tmp)
                    .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
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
            Err(e) => {
                log::info!("no thumbnail for {name}: {e}");
                let _ = File::create(self.dir.join(format!("{name}.none")));
                if let Ok(mut f) = self.failed.lock() {
                    f.insert(name.to_string());
                }
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
