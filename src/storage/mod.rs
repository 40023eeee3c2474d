//! The upload directory: random names, temp → fsync → rename → fsync-dir commits, and the
//! catalogue (`catalogue.rs`, SQLite) that `GET /files` is served from.
//!
//! Layout under `--dir`:
//! - `<32 hex>.<ext>`: committed files; listed only once their catalogue row is committed;
//! - `.pidrop/tmp/*.part`: files being received (same filesystem, so commit is a rename);
//!   removed on every failure path by [`TempFile`]'s `Drop`, and at start-up;
//! - `.pidrop/catalogue.sqlite` (+ `-wal`, `-shm`): one row per stored file.
//!
//! A commit renames a request's data files into place, fsyncs the directory, then inserts all
//! their rows in one transaction: a crash before that commit leaves data files without rows,
//! which the consistency check (`check.rs`) removes; a request is listed wholly or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{AppError, UploadError};
use crate::sys::Pipe;

mod catalogue;
mod check;
mod hasher;
mod meta;
mod migrate;
pub use catalogue::{Catalogue, CatalogueError, Cursor};
pub use check::CheckReport;
use hasher::FileDigest;
pub use meta::Meta;
pub use migrate::move_catalogue_aside;

/// Free space is re-checked after this many bytes are written to one file (uploads in flight
/// are covered by reservations; this notices other programs filling the disk).
const FREE_CHECK_EVERY: u64 = 16 << 20; // 16 MiB
/// An upload of unknown length (chunked) reserves free space in steps of this size.
const RESERVE_STEP: u64 = 1 << 20; // 1 MiB
/// Files past this size gather their writes in a pipe (`Store::write`); smaller ones, most
/// uploads of small files, are written directly and pay for no pipe.
const STAGE_FROM: u64 = 256 << 10;

/// The upload directory and its catalogue.
pub struct Store {
    dir: PathBuf,
    mount: Option<PathBuf>,
    tmp: PathBuf,
    state: PathBuf,
    catalogue: Catalogue,
    min_free: u64,
    /// Bytes that uploads in flight have reserved and not yet written: `--min-free` is kept
    /// against free space less these, so concurrent uploads cannot together fill the disk.
    reserved: Arc<Mutex<u64>>,
    /// Whether uploads are hashed (`--checksum`).
    checksum: bool,
    /// Whether `splice(2)` into files here works (probed at start; not on every filesystem).
    splice: bool,
}

/// A file being received. Deleted when dropped unless it was committed.
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
    hasher: Option<FileDigest>,
    /// Bytes accepted: in the file plus those held in `staging`.
    size: u64,
    unchecked: u64,
    /// This upload's share of `Store::reserved`, given back on drop.
    reserved: u64,
    pool: Arc<Mutex<u64>>,
    kept: bool,
    /// Small writes gathered in a pipe on their way to the file (see `Store::write`).
    staging: Option<Pipe>,
    /// Bytes waiting in `staging`.
    held: usize,
}

impl TempFile {
    /// The file was committed under its name: nothing to remove when this is dropped.
    fn keep(mut self) {
        self.kept = true;
    }

    /// Gives back what is reserved and not written (the file is complete, or abandoned).
    fn release_reservation(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        *pool = pool.saturating_sub(self.reserved);
        self.reserved = 0;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.release_reservation();
        if !self.kept {
            // The hasher first: it holds a descriptor of the file too.
            self.hasher = None;
            self.staging = None;
            self.file = None;
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

impl TempFile {
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A received, fsynced file waiting for its commit.
pub struct Staged {
    temp: TempFile,
    pub meta: Meta,
}

/// `/dev/urandom`, opened once: two opens per upload showed up in `strace -c` of small files.
static URANDOM: std::sync::OnceLock<File> = std::sync::OnceLock::new();

/// 128 bits from the OS as 32 hex characters (never from a predictable generator).
pub fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let urandom = match URANDOM.get() {
        Some(f) => f,
        None => {
            let f = File::open("/dev/urandom")?;
            URANDOM.get_or_init(|| f)
        }
    };
    let mut reader: &File = urandom;
    reader.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Bytes as lowercase hex: stored names and sha256 digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is one of our stored names (32 hex, optional `.ext`): the only names the API
/// accepts, so no request can name a path.
pub fn is_stored_name(name: &str) -> bool {
    let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
    stem.len() == 32
        && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && ext.len() <= 16
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && ext.is_empty() != name.contains('.')
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating if needed) the upload directory and its catalogue, removes stale temp
    /// files, and imports pidrop 0.1's metadata sidecars if there are any. Reads nothing per
    /// stored file otherwise: start-up takes the same time at a million files as at none.
    pub fn open(
        dir: &Path,
        min_free: u64,
        mount: Option<&Path>,
        checksum: bool,
    ) -> Result<Store, OpenError> {
        Store::check_mount_of(dir, mount).map_err(|why| OpenError::Io(io::Error::other(why)))?;
        fs::create_dir_all(dir)?;
        let state = open_state_dir(&dir.join(".pidrop"))?;
        let tmp = open_state_dir(&state.join("tmp"))?;
        let catalogue = Catalogue::open(&state.join(CATALOGUE_FILE))?;
        let store = Store {
            dir: dir.to_path_buf(),
            mount: mount.map(Path::to_path_buf),
            tmp,
            state,
            catalogue,
            min_free,
            reserved: Arc::new(Mutex::new(0)),
            checksum,
            splice: false,
        };
        store.clean_temp()?;
        migrate::import_sidecars(&store)?;
        let (files, bytes) = store.catalogue.totals()?;
        log::info!("{files} file(s), {bytes} bytes in {}", dir.display());
        let splice = store.probe_splice();
        if !splice {
            log::info!(
                "splice(2) into {} does not work: uploads are copied",
                dir.display()
            );
        }
        Ok(Store { splice, ..store })
    }

    /// Whether a byte spliced from a pipe lands in a file in the temp directory. Filesystems
    /// without `splice_write` refuse with EINVAL; then every upload takes the read/write path.
    fn probe_splice(&self) -> bool {
        let path = self.tmp.join("splice-probe.part");
        let works = (|| -> io::Result<bool> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            let pipe = Pipe::new()?;
            pipe.push(b"p")?;
            pipe.drain_into(&file, 1)?;
            let mut back = [0u8; 1];
            Ok(std::os::unix::fs::FileExt::read_at(&file, &mut back, 0)? == 1 && back == *b"p")
        })()
        .unwrap_or(false);
        let _ = fs::remove_file(&path);
        works
    }

    /// Whether uploads may move bytes with `splice(2)` (see `probe_splice`).
    pub fn can_splice(&self) -> bool {
        self.splice
    }

    fn clean_temp(&self) -> io::Result<()> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            // Only our own regular files; a link or a directory planted here is left alone.
            if entry.file_type()?.is_file() && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            log::info!("removed {removed} unfinished upload(s) left by a crash");
        }
        Ok(())
    }

    /// `.pidrop/` inside the upload dir: pidrop's own files (temp, catalogue, thumbnails).
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    /// The upload directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Gives every stored file without a row one, with what the file tells (`check --rebuild`).
    pub fn import_unlisted(&self) -> Result<usize, OpenError> {
        migrate::import_dir(self, None)
    }

    /// Free bytes on the upload filesystem.
    pub fn free_space(&self) -> io::Result<u64> {
        crate::sys::free_space(&self.dir)
    }

    /// `--require-mount`: the mount point must be mounted (another device than its parent) and
    /// the upload dir (or, before it exists, its nearest existing ancestor) must be on it.
    fn check_mount_of(dir: &Path, mount: Option<&Path>) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let Some(mount) = mount else { return Ok(()) };
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev());
        let m = dev(mount).map_err(|e| format!("{} is not available: {e}", mount.display()))?;
        let parent = mount.parent().unwrap_or(mount);
        let mounted = parent == mount || dev(parent).map(|p| p != m).unwrap_or(false);
        if !mounted {
            return Err(format!("{} is not mounted", mount.display()));
        }
        let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(dir);
        if dev(existing).map_err(|e| e.to_string())? != m {
            return Err(format!("{} is not on {}", dir.display(), mount.display()));
        }
        Ok(())
    }

    /// Refuses with 503 when `--require-mount` is set and its disk has gone.
    pub fn check_mount(&self) -> Result<(), AppError> {
        Store::check_mount_of(&self.dir, self.mount.as_deref()).map_err(AppError::NotMounted)
    }

    /// Refuses if storing `more` bytes would leave less than `--min-free`, counting what the
    /// uploads in flight have reserved.
    pub fn ensure_room(&self, more: u64) -> Result<(), AppError> {
        let pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        self.room_for(*pool, more)
    }

    fn room_for(&self, reserved: u64, more: u64) -> Result<(), AppError> {
        self.check_mount()?;
        let free = self.free_space().map_err(AppError::Storage)?;
        let left = free.saturating_sub(reserved).saturating_sub(more);
        if left < self.min_free {
            return Err(UploadError::InsufficientStorage {
                free: free.saturating_sub(reserved),
                min_free: self.min_free,
            }
            .into());
        }
        Ok(())
    }

    /// Adds `n` bytes to `temp`'s reservation if the disk has room for them beside every
    /// other upload's (checked and taken under one lock, so two uploads cannot both take the
    /// last of it).
    fn reserve(&self, temp: &mut TempFile, n: u64) -> Result<(), AppError> {
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        self.room_for(*pool, n)?;
        *pool += n;
        temp.reserved += n;
        Ok(())
    }

    /// Accounts `n` bytes accepted into `temp` against its reservation, reserving more first
    /// (a step at a time) when it is used up.
    fn take_reserved(&self, temp: &mut TempFile, n: u64) -> Result<(), AppError> {
        if temp.reserved < n {
            self.reserve(temp, (n - temp.reserved).max(RESERVE_STEP))?;
        }
        temp.reserved -= n;
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        *pool = pool.saturating_sub(n);
        Ok(())
    }

    /// A new temp file in the upload filesystem, with free space reserved for `expected`
    /// bytes (a declared length), or for a first step when the length is not known.
    pub fn create_temp(&self, expected: Option<u64>) -> Result<TempFile, AppError> {
        let path = self
            .tmp
            .join(format!("{}.part", random_hex().map_err(AppError::Storage)?));
        // Readable too: the hasher reads back what is written, through a descriptor of its own.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(AppError::Storage)?;
        let mut temp = TempFile {
            path,
            file: Some(file),
            hasher: self.checksum.then(FileDigest::new),
            size: 0,
            unchecked: 0,
            reserved: 0,
            pool: self.reserved.clone(),
            kept: false,
            staging: None,
            held: 0,
        };
        self.reserve(&mut temp, expected.unwrap_or(RESERVE_STEP))?;
        Ok(temp)
    }

    /// Appends to a temp file, hashing as it goes and re-checking free space now and then.
    ///
    /// Once a file is past `STAGE_FROM`, its (8 KiB) writes are gathered in a pipe and moved to
    /// the file half a pipe at a time with `splice`: measured (bench/PROFILE.md), what a write
    /// into ext4 costs is mostly per call, and a write into a pipe is cheap. The bytes stay in
    /// the kernel, at most one pipe's worth per upload; nothing is buffered in user space.
    pub fn write(&self, temp: &mut TempFile, data: &[u8]) -> Result<(), AppError> {
        self.take_reserved(temp, data.len() as u64)?;
        if temp.staging.is_none() && temp.size >= STAGE_FROM && self.splice {
            temp.staging = Pipe::new().ok();
        }
        // Without a pipe, `half` is 0: nothing is held and everything is written directly.
        let half = temp.staging.as_ref().map_or(0, |p| p.capacity() / 2);
        if temp.held + data.len() > half {
            self.flush_staging(temp)?;
        }
        temp.size += data.len() as u64;
        match temp.staging.as_ref() {
            Some(pipe) if data.len() <= half => {
                pipe.push(data).map_err(AppError::Storage)?;
                temp.held += data.len();
                Ok(())
            }
            _ => {
                let file = temp.file.as_mut().ok_or(AppError::Internal)?;
                file.write_all(data).map_err(AppError::Storage)?;
                self.file_grew(temp, data.len() as u64, Some(data))
            }
        }
    }

    /// Moves what `write` gathered into the file.
    fn flush_staging(&self, temp: &mut TempFile) -> Result<(), AppError> {
        let held = temp.held;
        if held == 0 {
            return Ok(());
        }
        let file = temp.file.as_ref().ok_or(AppError::Internal)?;
        let pipe = temp.staging.as_ref().ok_or(AppError::Internal)?;
        pipe.drain_into(file, held).map_err(AppError::Storage)?;
        temp.held = 0;
        self.file_grew(temp, held as u64, None)
    }

    /// Appends exactly `len` bytes waiting in `pipe` (put there by `Body::splice_into`): the
    /// same as `write`, without the bytes passing through user space.
    pub fn write_from_pipe(
        &self,
        temp: &mut TempFile,
        pipe: &Pipe,
        len: usize,
    ) -> Result<(), AppError> {
        self.take_reserved(temp, len as u64)?;
        self.flush_staging(temp)?;
        let file = temp.file.as_ref().ok_or(AppError::Internal)?;
        pipe.drain_into(file, len).map_err(AppError::Storage)?;
        temp.size += len as u64;
        self.file_grew(temp, len as u64, None)
    }

    /// Bookkeeping after `n` bytes reached the file: the hasher (which reads the file), the
    /// periodic free-space check.
    fn file_grew(&self, temp: &mut TempFile, n: u64, data: Option<&[u8]>) -> Result<(), AppError> {
        let in_file = temp.size - temp.held as u64;
        if let (Some(h), Some(file)) = (temp.hasher.as_mut(), temp.file.as_ref()) {
            if !h.appended(file, data, in_file).map_err(AppError::Storage)? {
                return Err(AppError::Internal);
            }
        }
        temp.unchecked += n;
        if temp.unchecked >= FREE_CHECK_EVERY {
            temp.unchecked = 0;
            self.ensure_room(0)?;
        }
        Ok(())
    }

    /// Makes the temp file's bytes durable and fills in the metadata that depends on them.
    pub fn stage(
        &self,
        mut temp: TempFile,
        original_name: String,
        mime: String,
        ext: &str,
    ) -> Result<Staged, AppError> {
        self.flush_staging(&mut temp)?;
        temp.staging = None;
        temp.release_reservation();
        let file = temp.file.take().ok_or(AppError::Internal)?;
        file.sync_all().map_err(AppError::Storage)?;
        drop(file);
        let hex = random_hex().map_err(AppError::Storage)?;
        let name = if ext.is_empty() {
            hex
        } else {
            format!("{hex}.{ext}")
        };
        let sha256 = match temp.hasher.take() {
            Some(h) => h.finish().ok_or(AppError::Internal)?,
            None => String::new(),
        };
        let uploaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let meta = Meta {
            name,
            original_name,
            size: temp.size,
            mime,
            sha256,
            uploaded_at,
            fields: Vec::new(),
        };
        Ok(Staged { temp, meta })
    }

    /// Commits staged files: each data file renamed into place, the directory fsynced, then
    /// all their rows in one catalogue transaction (durable when it returns: WAL with
    /// `synchronous = FULL`). Only then are they listed. On error nothing is listed and every
    /// data file is removed.
    pub fn commit(&self, staged: Vec<Staged>) -> Result<Vec<Arc<Meta>>, AppError> {
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        let placed = (|| -> io::Result<()> {
            for s in &staged {
                fs::rename(&s.temp.path, self.dir.join(&s.meta.name))?;
                crash_point("renamed-one");
            }
            sync_dir(&self.dir)?;
            crash_point("renamed-all");
            Ok(())
        })();
        let metas: Vec<Meta> = staged.iter().map(|s| s.meta.clone()).collect();
        let listed = placed
            .map_err(AppError::Storage)
            .and_then(|()| self.catalogue.insert_all(&metas).map_err(catalogue_error));
        if let Err(e) = listed {
            for s in &staged {
                let _ = fs::remove_file(self.dir.join(&s.meta.name));
            }
            return Err(e);
        }
        crash_point("committed");
        for s in staged {
            s.temp.keep();
        }
        Ok(metas.into_iter().map(Arc::new).collect())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Meta>> {
        match self.catalogue.get(name) {
            Ok(m) => m.map(Arc::new),
            Err(e) => {
                log::error!("catalogue lookup of {name} failed: {e}");
                None
            }
        }
    }

    pub fn path_of(&self, meta: &Meta) -> PathBuf {
        self.dir.join(&meta.name)
    }

    /// Newest first, `limit` (at least 1) at most, after `cursor` (from a previous page); and
    /// the cursor of the next page as `<nanoseconds>-<name>`.
    pub fn list(
        &self,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Arc<Meta>>, Option<String>), AppError> {
        let (page, next) = self
            .catalogue
            .list(cursor, limit)
            .map_err(catalogue_error)?;
        let next = next.map(|Cursor(t, name)| format!("{t}-{name}"));
        Ok((page.into_iter().map(Arc::new).collect(), next))
    }

    /// Removes a file and its row. `Ok(false)` if there was no such file. The data file goes
    /// first: if it cannot be removed, the file stays listed (nothing is left unlisted).
    pub fn delete(&self, name: &str) -> Result<bool, AppError> {
        let unlinked = match fs::remove_file(self.dir.join(name)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(AppError::Storage(e)),
        };
        // The consistency check may drop the row between the two steps: still our delete.
        let removed = self.catalogue.delete(name).map_err(catalogue_error)?;
        sync_dir(&self.dir).map_err(AppError::Storage)?;
        Ok(unlinked || removed)
    }

    /// (files, bytes) in the catalogue.
    pub fn totals(&self) -> (u64, u64) {
        self.catalogue.totals().unwrap_or((0, 0))
    }

    /// Whether a file can be created in the temp directory right now.
    pub fn writable(&self) -> Result<(), String> {
        self.check_mount().map_err(|e| e.to_string())?;
        let probe = self.tmp.join(".probe");
        let r = File::create(&probe).and_then(|mut f| f.write_all(b"ok"));
        let _ = fs::remove_file(&probe);
        r.map_err(|e| e.to_string())
    }
}

/// Debug builds (the integration tests' binary) only: `PIDROP_DEBUG_CRASH=<point>` aborts the
/// process at that point of a commit, as a power cut or `kill -9` would, so the tests can check
/// what a restart makes of every step. Release builds have no such switch.
fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("PIDROP_DEBUG_CRASH").is_ok_and(|p| p == point) {
        std::process::abort();
    }
    let _ = point;
}

/// The catalogue's file name in the state dir.
pub const CATALOGUE_FILE: &str = "catalogue.sqlite";

/// Why the upload directory cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    Catalogue(CatalogueError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => e.fmt(f),
            OpenError::Catalogue(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

impl From<CatalogueError> for OpenError {
    fn from(e: CatalogueError) -> Self {
        OpenError::Catalogue(e)
    }
}

/// A catalogue failure while serving: not the client's fault.
fn catalogue_error(e: CatalogueError) -> AppError {
    if e.is_disk_full() {
        return AppError::Storage(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    AppError::Storage(io::Error::other(e))
}

/// Makes (if missing) and checks one of pidrop's state directories inside the upload dir. It
/// must be a real directory: a symlink planted there is refused (opened with `O_NOFOLLOW`), so
/// start-up clean-ups can never delete files somewhere else.
pub fn open_state_dir(path: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path);
    match opened {
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            Err(io::Error::other(format!(
                "{} is a symlink or not a directory; refusing to use it (remove it and start again)",
                path.display()
            )))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names() {
        assert!(is_stored_name("0123456789abcdef0123456789abcdef.jpg"));
        assert!(is_stored_name("0123456789abcdef0123456789abcdef"));
        for bad in [
            "../etc/passwd",
            "0123456789abcdef0123456789abcdef.",
            "0123456789ABCDEF0123456789abcdef.jpg",
            "0123456789abcdef0123456789abcde.jpg",
            "0123456789abcdef0123456789abcdef.j/g",
            ".pidrop",
            "0123456789abcdef0123456789abcdef.jpg.meta",
            "",
        ] {
            assert!(!is_stored_name(bad), "{bad}");
        }
        let a = random_hex().expect("urandom");
        let b = random_hex().expect("urandom");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn writes_staged_in_a_pipe_and_spliced_chunks_land_in_order_with_their_digest() {
        use sha2::{Digest, Sha256};
        let dir = std::env::temp_dir().join(format!("pidrop-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir, 0, None, true).expect("store");
        assert!(
            store.can_splice(),
            "splice into a temp dir file works on Linux"
        );

        // 3 MiB in writes of odd sizes (staging starts past 256 KiB), with a chunk that arrives
        // through a pipe in the middle, as a PUT body would.
        let data: Vec<u8> = (0..3u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut temp = store.create_temp(None).expect("temp");
        let (mut at, mut step) = (0usize, 1usize);
        while at < data.len() {
            let n = step.min(data.len() - at);
            if at > (1 << 20) && at < (1 << 20) + 200_000 {
                let pipe = Pipe::new().expect("pipe");
                pipe.push(&data[at..at + n]).expect("push");
                store
                    .write_from_pipe(&mut temp, &pipe, n)
                    .expect("spliced chunk");
            } else {
                store.write(&mut temp, &data[at..at + n]).expect("write");
            }
            at += n;
            assert_eq!(temp.size(), at as u64);
            step = step * 7 % 9000 + 1;
        }
        assert!(temp.staging.is_some(), "a 3 MiB file gathers its writes");
        let staged = store
            .stage(
                temp,
                "x.bin".into(),
                "application/octet-stream".into(),
                "bin",
            )
            .expect("stage");
        assert_eq!(staged.meta.size, data.len() as u64);
        let expected = hex(&Sha256::digest(&data));
        assert_eq!(staged.meta.sha256, expected);
        assert_eq!(fs::read(&staged.temp.path).expect("read back"), data);
        drop(staged);
        assert_eq!(
            fs::read_dir(&store.tmp).expect("tmp").count(),
            0,
            "temp files removed"
        );
        // A limit of 0 is one file, never a panic; an empty store has no next page.
        let (page, next) = store.list(None, 0).expect("list");
        assert!(page.is_empty() && next.is_none());
        assert_eq!(
            Cursor::parse("12-0123456789abcdef0123456789abcdef.jpg").map(|c| c.0),
            Some(12)
        );
        assert!(Cursor::parse("+12-0123456789abcdef0123456789abcdef.jpg").is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
