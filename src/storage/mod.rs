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

pub mod backend;
mod catalogue;
mod check;
mod hasher;
mod links;
mod local;
mod meta;
mod migrate;
#[cfg(feature = "s3")]
mod s3direct;
#[cfg(feature = "s3")]
pub use s3direct::POLICY_SECS as DIRECT_POLICY_SECS;
#[cfg(feature = "s3")]
pub mod s3dir;
#[cfg(feature = "s3")]
mod s3resume;
mod sessions;
mod unfinished;
use backend::{Backend, Blob, BlobWriter};
pub use backend::{DigestState, Lifetime, ThisRequest};
pub use catalogue::{Catalogue, CatalogueError, Cursor, Filter};
pub use check::CheckReport;
pub use links::{Link, LinkKind};
pub use meta::Meta;
pub use migrate::move_catalogue_aside;
pub use sessions::Session;
pub use unfinished::Unfinished;

/// Free space is re-checked after this many bytes are written to one file (uploads in flight
/// are covered by reservations; this notices other programs filling the disk).
const FREE_CHECK_EVERY: u64 = 16 << 20; // 16 MiB
/// An upload of unknown length (chunked) reserves free space in steps of this size.
const RESERVE_STEP: u64 = 1 << 20; // 1 MiB

/// The catalogue and the blobs it indexes.
pub struct Store {
    dir: PathBuf,
    mount: Option<PathBuf>,
    state: PathBuf,
    catalogue: Catalogue,
    blobs: Box<dyn Backend>,
    min_free: u64,
    /// Bytes that uploads in flight have reserved and not yet written: `--min-free` is kept
    /// against free space less these, so concurrent uploads cannot together fill the disk.
    reserved: Arc<Mutex<u64>>,
    /// `--max-total`: most bytes the stored files, with what is reserved, may take.
    max_total: Option<u64>,
    /// Whether files are hashed as they come in (`--checksum`), for a backend made later.
    #[cfg(feature = "s3")]
    checksum: bool,
    /// `--store s3`: the bucket and key prefix, for the sync with other nodes.
    #[cfg(feature = "s3")]
    bucket: Option<(Arc<crate::s3::Bucket>, String)>,
    /// `--s3-downloads redirect`.
    #[cfg(feature = "s3")]
    redirect: bool,
}

/// A presigned direct upload: its stored name, the URL to POST to and the form's fields.
#[cfg(feature = "s3")]
pub type DirectForm = (String, String, Vec<(String, String)>);

/// A file being received: its blob, and its share of the free-space reservations. An
/// unfinished blob of a request is removed when this is dropped (see [`Lifetime`]).
pub struct TempFile {
    blob: Box<dyn BlobWriter>,
    /// The stored name, when the backend needed it before the first byte (`Backend::stream`).
    name: Option<String>,
    /// Whether the bytes land on the local disk (free space matters) or go straight elsewhere.
    on_disk: bool,
    unchecked: u64,
    /// This upload's share of `Store::reserved`, given back on drop.
    reserved: u64,
    pool: Arc<Mutex<u64>>,
}

impl TempFile {
    /// Gives back what is reserved and not written (the file is complete, or abandoned).
    fn release_reservation(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        *pool = pool.saturating_sub(self.reserved);
        self.reserved = 0;
    }

    /// Bytes accepted so far.
    pub fn size(&self) -> u64 {
        self.blob.written()
    }

    /// Takes over `n` bytes of a standing reservation (`Store::reserve_standing`): writes
    /// use them up first.
    pub fn adopt(&mut self, n: u64) {
        self.reserved += n;
    }

    /// What is known of the request bringing the bytes (see `BlobWriter::this_request`).
    pub fn this_request(&mut self, r: ThisRequest) {
        self.blob.this_request(r);
    }

    /// Stops hashing, handing the state over (see `BlobWriter::suspend_digest`).
    pub fn suspend_digest(&mut self) -> Option<DigestState> {
        self.blob.suspend_digest()
    }

    /// Hands what is left of this file's reservation back as a standing one: it stays in
    /// the pool when this is dropped. Returns it.
    pub fn disown(&mut self) -> u64 {
        std::mem::take(&mut self.reserved)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.release_reservation();
    }
}

/// A received, durable file waiting for its commit.
pub struct Staged {
    temp: TempFile,
    pub meta: Meta,
    /// Handed to the uploader once (the upload's answer): whoever holds it may delete the
    /// file. Only its SHA-256 is stored (`Meta::delete_key`).
    pub delete_token: String,
}

impl Staged {
    /// Where its bytes are before the commit, when the backend keeps them in a local file.
    pub fn local_path(&self) -> Option<&Path> {
        self.temp.blob.local_path()
    }
}

/// A new stored name: 128 random bits in hex, and the extension.
fn stored_name(ext: &str) -> io::Result<String> {
    let hex = random_hex()?;
    Ok(if ext.is_empty() {
        hex
    } else {
        format!("{hex}.{ext}")
    })
}

/// `/dev/urandom`, opened once: two opens per upload showed up in `strace -c` of small files.
static URANDOM: std::sync::OnceLock<File> = std::sync::OnceLock::new();

/// 128 bits from the OS as 32 hex characters (never from a predictable generator).
pub fn random_hex() -> io::Result<String> {
    Ok(hex(&random_bytes::<16>()?))
}

/// `N` bytes from the OS's random source (`/dev/urandom`, opened once).
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    let urandom = match URANDOM.get() {
        Some(f) => f,
        None => {
            let f = File::open("/dev/urandom")?;
            URANDOM.get_or_init(|| f)
        }
    };
    let mut reader: &File = urandom;
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The SHA-256 of `data`, as hex (delete tokens, bearer tokens: high-entropy secrets).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
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
        let blobs = local::LocalDir::open(dir, &state, checksum)?;
        let catalogue = Catalogue::open(&state.join(CATALOGUE_FILE))?;
        let store = Store {
            dir: dir.to_path_buf(),
            mount: mount.map(Path::to_path_buf),
            state,
            catalogue,
            blobs: Box::new(blobs),
            min_free,
            reserved: Arc::new(Mutex::new(0)),
            max_total: None,
            #[cfg(feature = "s3")]
            checksum,
            #[cfg(feature = "s3")]
            bucket: None,
            #[cfg(feature = "s3")]
            redirect: false,
        };
        migrate::import_sidecars(&store)?;
        let (files, bytes) = store.catalogue.totals()?;
        log::info!("{files} file(s), {bytes} bytes in {}", dir.display());
        Ok(store)
    }

    /// Keeps stored files in `bucket` under `prefix` (`--store s3`); what is received still
    /// passes through the local state dir.
    #[cfg(feature = "s3")]
    pub fn with_bucket(
        mut self,
        bucket: Arc<crate::s3::Bucket>,
        prefix: &str,
        redirect: bool,
    ) -> Result<Store, OpenError> {
        self.redirect = redirect;
        let local = local::LocalDir::open(&self.dir, &self.state, self.checksum)?;
        let journal = Arc::new(Catalogue::open(&self.state.join(CATALOGUE_FILE))?);
        self.blobs = Box::new(s3dir::S3Dir::new(local, bucket.clone(), prefix, journal));
        self.bucket = Some((bucket, prefix.to_string()));
        Ok(self)
    }

    /// `--s3-downloads redirect`: where a download of `meta` goes instead — a GET of its object
    /// presigned for `REDIRECT_FOR`, answered with `overrides` (`response-content-type`,
    /// `response-content-disposition`). `None` when downloads go through pidrop.
    #[cfg(feature = "s3")]
    pub fn download_redirect(&self, meta: &Meta, overrides: &[(String, String)]) -> Option<String> {
        const REDIRECT_FOR: u64 = 15 * 60;
        let (bucket, prefix) = self.bucket.as_ref().filter(|_| self.redirect)?;
        Some(bucket.presign_get(&format!("{prefix}{}", meta.name), REDIRECT_FOR, overrides))
    }

    /// One sync of the catalogue with the bucket (what other nodes stored or deleted);
    /// `None` with local storage.
    #[cfg(feature = "s3")]
    pub fn sync_bucket(&self) -> Option<io::Result<s3dir::Synced>> {
        let (bucket, prefix) = self.bucket.as_ref()?;
        match s3direct::sweep(bucket, prefix) {
            Ok(0) => {}
            Ok(n) => log::info!("removed {n} direct upload(s) never confirmed"),
            Err(e) => log::warn!("could not sweep unconfirmed direct uploads: {e}"),
        }
        Some(s3dir::sync(&self.catalogue, bucket, prefix))
    }

    /// `--s3-direct`: a browser's upload of exactly `len` bytes of `mime` straight into the
    /// bucket, under a stored name chosen now: the name, the URL to POST to and the form's
    /// fields. Counts against `--max-total` (not the local disk); `None` with local storage.
    #[cfg(feature = "s3")]
    pub fn presign_direct(
        &self,
        len: u64,
        mime: &str,
        ext: &str,
    ) -> Option<Result<DirectForm, AppError>> {
        let (bucket, prefix) = self.bucket.as_ref()?;
        Some((|| {
            self.ensure_room_as(len, false)?;
            let name = stored_name(ext).map_err(AppError::Storage)?;
            let (url, fields) = s3direct::presign(bucket, prefix, &name, len, mime);
            Ok((name, url, fields))
        })())
    }

    /// The direct upload of `name` (`presign_direct`) taken over once the browser is done:
    /// its first bytes for the content check, and the file to stage and commit like any other
    /// (its object removed if it is dropped unplaced). `NotFound` when it is not in the bucket,
    /// `InvalidData` when its size or type is not what was presigned (then it is removed).
    #[cfg(feature = "s3")]
    pub fn adopt_direct(
        &self,
        name: &str,
        len: u64,
        mime: &str,
    ) -> Result<(TempFile, Vec<u8>), AppError> {
        let (bucket, prefix) = self.bucket.as_ref().ok_or(AppError::NotFound)?;
        let (head, blob) =
            s3direct::adopt(bucket, prefix, name, len, mime).map_err(AppError::Storage)?;
        Ok((self.named_remote(blob, name, Some(len))?, head))
    }

    /// Whether a file of `len` bytes (if known) goes straight to where files are stored,
    /// without a local copy: a remote store, a known length, nothing that must read a local
    /// file (`scanning`: `--scan-cmd`).
    pub fn streams(&self, len: Option<u64>, scanning: bool) -> bool {
        self.is_remote() && len.is_some_and(|n| n > 0) && !scanning
    }

    /// Whether stored files live elsewhere than the upload dir (read with `read_blob`).
    pub fn is_remote(&self) -> bool {
        self.blobs.remote()
    }

    /// `len` bytes of a stored file from `start`, streamed.
    pub fn read_blob(
        &self,
        meta: &Meta,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, AppError> {
        self.blobs.read(&meta.name, start, len).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                AppError::NotFound
            } else {
                AppError::Storage(e)
            }
        })
    }

    /// Sets `--max-total`.
    pub fn with_max_total(mut self, max_total: Option<u64>) -> Store {
        self.max_total = max_total;
        self
    }

    /// `--max-total`, if set.
    pub fn max_total(&self) -> Option<u64> {
        self.max_total
    }

    /// Whether uploads may move bytes with `splice(2)` (a fast path of the local backend).
    pub fn can_splice(&self) -> bool {
        self.blobs.can_splice()
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

    /// Free bytes where the blobs are stored.
    pub fn free_space(&self) -> io::Result<u64> {
        self.blobs.free_space()
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
        self.ensure_room_as(more, true)
    }

    /// `ensure_room` for bytes that go to the local disk (`on_disk`) or straight elsewhere
    /// (then only `--max-total` applies).
    pub fn ensure_room_as(&self, more: u64, on_disk: bool) -> Result<(), AppError> {
        let pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        self.room_for(*pool, more, on_disk)
    }

    /// Whether `more` bytes fit under `--max-total` and, when they go to the local disk
    /// (`on_disk`), above `--min-free`, beside the `reserved` ones.
    fn room_for(&self, reserved: u64, more: u64, on_disk: bool) -> Result<(), AppError> {
        self.check_mount()?;
        if let Some(max) = self.max_total {
            let (_, stored) = self.catalogue.totals().map_err(catalogue_error)?;
            if stored.saturating_add(reserved).saturating_add(more) > max {
                return Err(UploadError::QuotaExceeded {
                    used: stored.saturating_add(reserved),
                    max,
                }
                .into());
            }
        }
        if !on_disk {
            return Ok(());
        }
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
        self.room_for(*pool, n, temp.on_disk)?;
        *pool += n;
        temp.reserved += n;
        Ok(())
    }

    /// Accounts `n` bytes accepted into `temp` against its reservation, reserving more first
    /// (a step at a time) when it is used up.
    fn take_reserved(&self, temp: &mut TempFile, n: u64) -> Result<(), AppError> {
        if temp.reserved < n {
            let need = n - temp.reserved;
            // A step at a time, or just what is needed where a step does not fit (the last
            // bytes below `--max-total` or `--min-free`).
            if self.reserve(temp, need.max(RESERVE_STEP)).is_err() {
                self.reserve(temp, need)?;
            }
        }
        temp.reserved -= n;
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        *pool = pool.saturating_sub(n);
        Ok(())
    }

    /// A new blob being written, with free space reserved for `expected` more bytes (a
    /// declared length), or for a first step when the length is not known.
    pub fn create_temp(
        &self,
        expected: Option<u64>,
        lifetime: Lifetime<'_>,
    ) -> Result<TempFile, AppError> {
        let blob = self.blobs.create(lifetime).map_err(AppError::Storage)?;
        self.wrap(blob, expected)
    }

    /// A file of exactly `len` bytes (already checked: `mime`) sent straight to where it is
    /// stored, under a name chosen now, if the backend does that (`Backend::stream`); `None`
    /// when it does not (then `create_temp`). No byte of it touches the local disk: a request's
    /// reservation counts against `--max-total` only; a resumable upload's (`kept`) stands
    /// between its requests and is lent to it (see `reopen_temp`).
    pub fn create_streamed(
        &self,
        kept: Option<&str>,
        len: u64,
        original: &str,
        mime: &str,
        ext: &str,
    ) -> Result<Option<TempFile>, AppError> {
        let name = stored_name(ext).map_err(AppError::Storage)?;
        let Some(blob) = self.blobs.stream(kept, &name, len, mime, original) else {
            return Ok(None);
        };
        let blob = blob.map_err(AppError::Storage)?;
        let reserve = kept.is_none().then_some(len);
        self.named_remote(blob, &name, reserve).map(Some)
    }

    /// A file whose blob is not on the local disk (it says so: only `--max-total` is checked
    /// for it), under the stored name chosen for it, with `reserve` bytes reserved.
    fn named_remote(
        &self,
        blob: Box<dyn BlobWriter>,
        name: &str,
        reserve: Option<u64>,
    ) -> Result<TempFile, AppError> {
        let mut temp = self.wrap(blob, Some(0))?;
        temp.name = Some(name.to_string());
        if let Some(n) = reserve {
            self.reserve(&mut temp, n)?;
        }
        Ok(temp)
    }

    /// A kept blob again (a resumable upload), cut back to the `len` bytes acknowledged. It
    /// reserves nothing itself: a resumable upload's reservation stands between its requests
    /// (`reserve_standing`) and is lent to it with `TempFile::adopt`.
    pub fn reopen_temp(
        &self,
        id: &str,
        len: u64,
        digest: Option<DigestState>,
    ) -> Result<TempFile, AppError> {
        let blob = self
            .blobs
            .reopen(id, len, digest)
            .map_err(AppError::Storage)?;
        self.wrap(blob, Some(0))
    }

    /// Reserves `n` bytes for a resumable upload between its requests, if there is room
    /// (on the local disk too when its bytes go there: `on_disk`).
    pub fn reserve_standing(&self, n: u64, on_disk: bool) -> Result<(), AppError> {
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        self.room_for(*pool, n, on_disk)?;
        *pool += n;
        Ok(())
    }

    /// Reserves `n` bytes without checking for room: the reservations of unfinished uploads,
    /// taken again at start.
    pub fn restore_standing(&self, n: u64) {
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        *pool += n;
    }

    /// Gives back `n` bytes of standing reservation (an upload finished, ended or expired).
    pub fn release_standing(&self, n: u64) {
        let mut pool = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        *pool = pool.saturating_sub(n);
    }

    /// Removes a kept blob; `Ok(false)` if there was none.
    pub fn discard_kept(&self, id: &str) -> Result<bool, AppError> {
        self.blobs.discard(id).map_err(AppError::Storage)
    }

    fn wrap(&self, blob: Box<dyn BlobWriter>, expected: Option<u64>) -> Result<TempFile, AppError> {
        let mut temp = TempFile {
            name: blob.stored_name().map(str::to_string),
            on_disk: blob.on_disk(),
            blob,
            unchecked: 0,
            reserved: 0,
            pool: self.reserved.clone(),
        };
        self.reserve(&mut temp, expected.unwrap_or(RESERVE_STEP))?;
        Ok(temp)
    }

    /// Appends to a temp file, within its reservation, re-checking free space now and then.
    pub fn write(&self, temp: &mut TempFile, data: &[u8]) -> Result<(), AppError> {
        self.take_reserved(temp, data.len() as u64)?;
        temp.blob.append(data).map_err(AppError::Storage)?;
        self.wrote(temp, data.len() as u64)
    }

    /// Appends exactly `len` bytes waiting in `pipe` (put there by `Body::splice_into`): the
    /// same as `write`, without the bytes passing through user space. Only when `can_splice`.
    pub fn write_from_pipe(
        &self,
        temp: &mut TempFile,
        pipe: &Pipe,
        len: usize,
    ) -> Result<(), AppError> {
        self.take_reserved(temp, len as u64)?;
        temp.blob
            .append_from_pipe(pipe, len)
            .map_err(AppError::Storage)?;
        self.wrote(temp, len as u64)
    }

    /// The periodic free-space check.
    fn wrote(&self, temp: &mut TempFile, n: u64) -> Result<(), AppError> {
        temp.unchecked += n;
        if temp.on_disk && temp.unchecked >= FREE_CHECK_EVERY {
            temp.unchecked = 0;
            self.ensure_room(0)?;
        }
        Ok(())
    }

    /// Makes what was written to a kept blob durable (the offset a resumable upload reports).
    pub fn sync(&self, temp: &mut TempFile) -> Result<(), AppError> {
        temp.blob.sync().map_err(AppError::Storage)
    }

    /// Makes the temp file's bytes durable and fills in the metadata that depends on them.
    pub fn stage(
        &self,
        mut temp: TempFile,
        original_name: String,
        mime: String,
        ext: &str,
    ) -> Result<Staged, AppError> {
        let sha256 = temp.blob.finish().map_err(AppError::Storage)?;
        temp.release_reservation();
        let name = match temp.name.take() {
            Some(name) => name,
            None => stored_name(ext).map_err(AppError::Storage)?,
        };
        let uploaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let delete_token = random_hex().map_err(AppError::Storage)?;
        let meta = Meta {
            name,
            original_name,
            size: temp.size(),
            mime,
            sha256: sha256.unwrap_or_default(),
            uploaded_at,
            fields: Vec::new(),
            gps_stripped: false,
            owner: String::new(),
            delete_key: sha256_hex(delete_token.as_bytes()),
            album: String::new(),
            expires_at: None,
        };
        Ok(Staged {
            temp,
            meta,
            delete_token,
        })
    }

    /// Commits staged files: each blob placed under its name, the placing made durable, then
    /// all their rows in one catalogue transaction (durable when it returns: WAL with
    /// `synchronous = FULL`). Only then are they listed. On error nothing is listed and every
    /// placed blob is removed.
    pub fn commit(&self, staged: Vec<Staged>) -> Result<Vec<Arc<Meta>>, AppError> {
        self.commit_finishing(staged, None)
    }

    /// `commit`, marking the resumable upload `finishing` done in the same transaction.
    pub fn commit_finishing(
        &self,
        mut staged: Vec<Staged>,
        finishing: Option<&str>,
    ) -> Result<Vec<Arc<Meta>>, AppError> {
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        let mut placed = 0;
        let result = (|| -> io::Result<()> {
            for s in &mut staged {
                s.temp.blob.place(&s.meta)?;
                placed += 1;
                crash_point("renamed-one");
            }
            self.blobs.placed()?;
            crash_point("renamed-all");
            Ok(())
        })();
        let metas: Vec<Meta> = staged.iter().map(|s| s.meta.clone()).collect();
        let listed = result.map_err(AppError::Storage).and_then(|()| {
            self.catalogue
                .insert_all(&metas, finishing)
                .map_err(catalogue_error)
        });
        if let Err(e) = listed {
            for s in &staged[..placed] {
                let _ = self.blobs.remove(&s.meta.name);
            }
            return Err(e);
        }
        crash_point("committed");
        Ok(metas.into_iter().map(Arc::new).collect())
    }

    /// A stored file's record; `None` when there is none or it has expired (an expired file
    /// is never served, even before the sweeper removes it).
    pub fn get(&self, name: &str) -> Option<Arc<Meta>> {
        match self.catalogue.get(name) {
            Ok(m) => m
                .filter(|m| !m.expired(crate::time::now_secs()))
                .map(Arc::new),
            Err(e) => {
                log::error!("catalogue lookup of {name} failed: {e}");
                None
            }
        }
    }

    /// A stored file opened for reading; 404 if it is missing (or replaced by a symlink).
    pub fn open_blob(&self, meta: &Meta) -> Result<Blob, AppError> {
        self.blobs.open(&meta.name).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) {
                AppError::NotFound
            } else {
                AppError::Storage(e)
            }
        })
    }

    /// A local path of a stored file, when the backend has one (thumbnails read from it).
    pub fn local_path(&self, meta: &Meta) -> Option<PathBuf> {
        self.blobs.local_path(&meta.name)
    }

    /// Newest first, `limit` (at least 1) at most, after `cursor` (from a previous page); and
    /// the cursor of the next page as `<nanoseconds>-<name>`.
    pub fn list(
        &self,
        cursor: Option<&Cursor>,
        limit: usize,
        filter: &Filter<'_>,
    ) -> Result<(Vec<Arc<Meta>>, Option<String>), AppError> {
        let (page, next) = self
            .catalogue
            .list(cursor, limit, filter)
            .map_err(catalogue_error)?;
        let next = next.map(|Cursor(t, name)| format!("{t}-{name}"));
        Ok((page.into_iter().map(Arc::new).collect(), next))
    }

    /// Removes a file and its row. `Ok(false)` if there was no such file. The blob goes first:
    /// if it cannot be removed, the file stays listed (nothing is left unlisted).
    pub fn delete(&self, name: &str) -> Result<bool, AppError> {
        let unlinked = self.blobs.remove(name).map_err(AppError::Storage)?;
        // The consistency check may drop the row between the two steps: still our delete.
        let removed = self.catalogue.delete(name).map_err(catalogue_error)?;
        Ok(unlinked || removed)
    }

    /// (files, bytes) in the catalogue.
    pub fn totals(&self) -> (u64, u64) {
        self.catalogue.totals().unwrap_or((0, 0))
    }

    /// Whether a file can be created in the state directory right now.
    pub fn writable(&self) -> Result<(), String> {
        self.check_mount().map_err(|e| e.to_string())?;
        let probe = self.state.join("tmp").join(".probe");
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

impl From<CatalogueError> for AppError {
    fn from(e: CatalogueError) -> Self {
        catalogue_error(e)
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
    fn an_empty_store_lists_nothing_and_cursors_parse_strictly() {
        let dir = std::env::temp_dir().join(format!("pidrop-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir, 0, None, true).expect("store");
        // A limit of 0 is one file, never a panic; an empty store has no next page.
        let (page, next) = store
            .list(
                None,
                0,
                &Filter {
                    owner: None,
                    album: None,
                    now: 0,
                },
            )
            .expect("list");
        assert!(page.is_empty() && next.is_none());
        assert_eq!(
            Cursor::parse("12-0123456789abcdef0123456789abcdef.jpg").map(|c| c.0),
            Some(12)
        );
        assert!(Cursor::parse("+12-0123456789abcdef0123456789abcdef.jpg").is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
