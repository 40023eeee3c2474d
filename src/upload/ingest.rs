//! One incoming file, whatever carries it — a multipart part, a PUT body, a tus PATCH — on one
//! path: its name checked against the allow-list before anything else, its size against the
//! limit as bytes arrive, its first bytes held until there are enough to check its content
//! (`validate::check`, magic bytes), and only then a blob created and written, plainly or from
//! a pipe. `finish` makes it durable, hashed and named: a [`Staged`] file for the commit.
//!
//! Nothing here knows where the bytes come from or where they go: the carrier feeds slices or
//! pipes, the store's backend decides how they land.

use super::gps;
use crate::config::{Config, HookConfig};
use crate::error::{AppError, UploadError};
use crate::hooks::{self, Ran};
use crate::storage::{Lifetime, Staged, Store, TempFile, ThisRequest};
use crate::sys::Pipe;
use crate::validate::{self, AllowList, SNIFF_LEN};

pub struct Ingest<'s> {
    store: &'s Store,
    allow: &'s AllowList,
    hooks: &'s HookConfig,
    /// `--max-size`.
    limit: u64,
    original: String,
    ext: String,
    /// Known once the first bytes are checked.
    mime: Option<String>,
    /// The first bytes, held until they can be checked.
    sniff: Vec<u8>,
    temp: Option<TempFile>,
    /// Bytes taken so far (written, held in `sniff`, or deferred to a pipe).
    size: u64,
    /// The declared length, reserved in full once the blob is created.
    expected: Option<u64>,
    /// A resumable upload's id: its blob is kept across requests.
    kept: Option<String>,
    /// The resumable upload's standing reservation, lent to its blob while it is written.
    standing: u64,
    /// `--strip-gps` and a JPEG by its name: GPS tags are removed from its head.
    strip_gps: bool,
    gps_stripped: bool,
    /// What is known of this request (a resumable upload's PATCH), for the blob.
    request: ThisRequest,
}

impl<'s> Ingest<'s> {
    /// A file called `original` (already a valid name): refused at once if its extension is
    /// not allowed, before any of its bytes are read.
    pub fn begin(
        cfg: &'s Config,
        store: &'s Store,
        original: String,
    ) -> Result<Ingest<'s>, AppError> {
        let ext = validate::extension(&original);
        let jpeg = matches!(ext.as_str(), "jpg" | "jpeg");
        if !cfg.allow.allows(&ext) {
            return Err(UploadError::TypeNotAllowed { extension: ext }.into());
        }
        Ok(Ingest {
            store,
            allow: &cfg.allow,
            hooks: &cfg.hooks,
            limit: cfg.max_size,
            original,
            ext,
            mime: None,
            sniff: Vec::new(),
            temp: None,
            size: 0,
            expected: None,
            kept: None,
            standing: 0,
            strip_gps: cfg.strip_gps && jpeg,
            gps_stripped: false,
            request: ThisRequest::default(),
        })
    }

    /// Reserves `len` bytes of free space for the whole file when its blob is created.
    pub fn expect(mut self, len: Option<u64>) -> Self {
        self.expected = len;
        self
    }

    /// A smaller size limit than `--max-size` (a resumable upload's declared length).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = self.limit.min(limit);
        self
    }

    /// Keeps the blob under `id` across requests (a resumable upload), writing it within the
    /// upload's `standing` reservation (`Store::reserve_standing`).
    pub fn kept(mut self, id: &str, standing: u64) -> Self {
        self.kept = Some(id.to_string());
        self.standing = standing;
        self
    }

    /// What is known of this request (where the file will stand once its body is in; whether
    /// the body is checked only at its end): told to the blob, which may stream what makes
    /// whole pieces, or must hold it all back.
    pub fn this_request(mut self, r: ThisRequest) -> Self {
        self.request = r;
        if let Some(t) = self.temp.as_mut() {
            t.this_request(r);
        }
        self
    }

    /// Continues a resumable upload: `held` is what was taken before but not yet checked (the
    /// first bytes of a file still too short to check), `temp` its blob if it has one.
    pub fn resume(
        mut self,
        held: &[u8],
        temp: Option<TempFile>,
        mime: Option<String>,
        gps_stripped: bool,
    ) -> Self {
        self.gps_stripped = gps_stripped;
        self.size = temp.as_ref().map_or(held.len() as u64, TempFile::size);
        self.sniff = held.to_vec();
        let standing = std::mem::take(&mut self.standing);
        self.temp = temp.map(|mut t| {
            t.adopt(standing);
            t
        });
        if self.temp.is_none() {
            self.standing = standing;
        }
        self.mime = mime;
        self
    }

    /// Stops hashing, handing over the state over every byte in the blob (a resumable upload
    /// carries it to its next request); `None` before the blob exists or without hashing.
    pub fn suspend_digest(&mut self) -> Option<crate::storage::DigestState> {
        self.temp.as_mut()?.suspend_digest()
    }

    /// What is left of a resumable upload's reservation, handed back as a standing one (it
    /// stays reserved when this is dropped).
    pub fn disown(&mut self) -> u64 {
        let lent = self.temp.as_mut().map_or(0, TempFile::disown);
        lent + std::mem::take(&mut self.standing)
    }

    pub fn original(&self) -> &str {
        &self.original
    }

    /// Bytes taken so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first bytes taken and not yet checked (empty once the blob exists).
    pub fn held(&self) -> &[u8] {
        if self.temp.is_some() {
            &[]
        } else {
            &self.sniff
        }
    }

    /// Whether GPS tags were removed from the head (so far, for a resumable upload).
    pub fn gps_stripped(&self) -> bool {
        self.gps_stripped
    }

    /// The type the content check found, once it ran.
    pub fn mime(&self) -> Option<&str> {
        self.mime.as_deref()
    }

    /// Whether the content check has passed and the blob exists.
    pub fn validated(&self) -> bool {
        self.temp.is_some()
    }

    /// Counts `n` more bytes against the size limit (not counted if they would pass it).
    fn count(&mut self, n: usize) -> Result<(), AppError> {
        if self.size + n as u64 > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit }.into());
        }
        self.size += n as u64;
        Ok(())
    }

    /// Takes the next bytes of the file. With `defer`, the bytes past those the check needs
    /// are counted but not written: their number is returned, and the caller appends the same
    /// bytes from a pipe (`write_deferred`).
    pub fn take(&mut self, mut data: &[u8], defer: bool) -> Result<usize, AppError> {
        self.count(data.len())?;
        if self.temp.is_none() {
            // The first bytes are held for the check — and, to strip GPS tags, until the EXIF
            // segment has been seen (`gps.rs`).
            let cap = if self.strip_gps {
                gps::HOLD_LIMIT
            } else {
                SNIFF_LEN
            };
            let want = cap.saturating_sub(self.sniff.len()).min(data.len());
            if self.sniff.capacity() == 0 {
                self.sniff.reserve_exact(SNIFF_LEN);
            }
            self.sniff.extend_from_slice(&data[..want]);
            data = &data[want..];
            if self.sniff.len() < SNIFF_LEN || (self.strip_gps && gps::needs_more(&self.sniff)) {
                return Ok(0);
            }
            self.open_checked()?;
        }
        if defer {
            return Ok(data.len());
        }
        if !data.is_empty() {
            let temp = self.temp.as_mut().ok_or(AppError::Internal)?;
            self.store.write(temp, data)?;
        }
        Ok(0)
    }

    /// Takes `n` bytes waiting in `pipe` (after the check has passed: `validated`).
    pub fn take_from_pipe(&mut self, pipe: &Pipe, n: usize) -> Result<(), AppError> {
        self.count(n)?;
        self.write_deferred(pipe, n)
    }

    /// Writes `n` bytes `take` deferred, from the pipe holding them.
    pub fn write_deferred(&mut self, pipe: &Pipe, n: usize) -> Result<(), AppError> {
        let temp = self.temp.as_mut().ok_or(AppError::Internal)?;
        self.store.write_from_pipe(temp, pipe, n)
    }

    /// Checks the first bytes; only then is the blob created and they are written.
    fn open_checked(&mut self) -> Result<(), AppError> {
        let head = &self.sniff[..self.sniff.len().min(SNIFF_LEN)];
        let mime = validate::check(self.allow, &self.ext, head)?;
        if self.strip_gps {
            self.gps_stripped = gps::strip(&mut self.sniff);
        }
        // The whole file: what was held so far is written into the blob below, like the rest.
        let expected = self.expected;
        let mut temp = match (&self.kept, self.streamed(&mime)?) {
            (Some(_), Some(mut t)) => {
                t.adopt(std::mem::take(&mut self.standing));
                t
            }
            (None, Some(t)) => t,
            (Some(id), None) => {
                self.store.ensure_room(0)?;
                let mut t = self.store.create_temp(Some(0), Lifetime::Kept(id))?;
                t.adopt(std::mem::take(&mut self.standing));
                t
            }
            (None, None) => {
                self.store.ensure_room(0)?;
                self.store.create_temp(expected, Lifetime::Request)?
            }
        };
        temp.this_request(self.request);
        self.store.write(&mut temp, &self.sniff)?;
        self.sniff = Vec::new();
        self.mime = Some(mime);
        self.temp = Some(temp);
        Ok(())
    }

    /// A blob going straight to the backend's store, when it can take one: a file of known
    /// length (a request's, or a resumable upload's across its requests), with no `--scan-cmd`
    /// (a scanner reads a local file).
    fn streamed(&self, mime: &str) -> Result<Option<TempFile>, AppError> {
        let (Some(len), true) = (self.expected, self.goes_remote()) else {
            return Ok(None);
        };
        self.store
            .create_streamed(self.kept.as_deref(), len, &self.original, mime, &self.ext)
    }

    /// Whether a request's file goes straight to a remote store (see `streamed`).
    pub fn streams(&self) -> bool {
        self.kept.is_none() && self.goes_remote()
    }

    fn goes_remote(&self) -> bool {
        self.store.streams(self.expected, self.hooks.scan.is_some())
    }

    /// Makes what was taken durable without finishing (a resumable upload's offset): the blob,
    /// or nothing yet if the bytes are still held for the check (the caller keeps `held`).
    pub fn sync(&mut self) -> Result<(), AppError> {
        match self.temp.as_mut() {
            Some(temp) => {
                self.store.sync(temp)?;
                // What is durable may be less than what was taken (a part sent to a remote
                // store that the request did not finish is lost): that is the offset.
                self.size = temp.size();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The file is complete: checked (if it was too short to be checked before), durable,
    /// hashed and named — and, with `--scan-cmd`, scanned before it may be stored.
    pub fn finish(mut self) -> Result<Staged, AppError> {
        if self.temp.is_none() {
            self.open_checked()?;
        }
        let temp = self.temp.take().ok_or(AppError::Internal)?;
        let mime = self
            .mime
            .take()
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let mut staged = self.store.stage(temp, self.original, mime, &self.ext)?;
        staged.meta.gps_stripped = self.gps_stripped;
        if let Some(argv) = &self.hooks.scan {
            scan(argv, self.hooks, &staged)?;
        }
        Ok(staged)
    }
}

/// `--scan-cmd` on a staged file: stored only if it exits 0 (fail closed otherwise).
fn scan(argv: &[String], cfg: &HookConfig, staged: &Staged) -> Result<(), AppError> {
    let path = staged
        .local_path()
        .ok_or_else(|| UploadError::ScanUnavailable("no local file to scan".into()))?;
    let event = hooks::Event {
        event: "scan",
        meta: &staged.meta,
        path,
    };
    let (ran, output) = hooks::scan(argv, &event, cfg.scan_timeout, cfg.max_scans);
    let refused = match ran {
        Ran::Ok => return Ok(()),
        Ran::Failed(_) => UploadError::Vetoed(hooks::first_line(&output)),
        Ran::TimedOut => UploadError::ScanUnavailable(format!(
            "no answer within {} s",
            cfg.scan_timeout.as_secs_f32()
        )),
        Ran::NotStarted(why) => UploadError::ScanUnavailable(why),
    };
    log::warn!(
        "scan refused {:?} ({}): {refused}; output: {}",
        staged.meta.original_name,
        staged.meta.name,
        output.trim_end()
    );
    Err(refused.into())
}
