//! The local filesystem backend: stored files are `<32 hex>.<ext>` in the upload dir, blobs
//! being written are `.pidrop/tmp/*.part` (a request's, removed on drop and at start) or
//! `.pidrop/resume/<id>.part` (a resumable upload's, kept) — on the same filesystem, so placing
//! one is a rename, and a directory fsync makes a request's renames durable together.
//!
//! The fast paths this backend offers: `splice(2)` from a pipe into the file (probed at start,
//! not every filesystem has it), small writes gathered in a pipe and moved by splice, and sha256
//! by a thread reading back what was written (`hasher.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::backend::{Backend, Blob, BlobInfo, BlobWriter, DigestState, Lifetime};
use super::hasher::FileDigest;
use super::{hex, is_stored_name, open_state_dir, random_hex};
use crate::sys::Pipe;

/// Written bytes are handed to the disk (`sys::start_writeback`) in steps of this size, so the
/// fsync before an acknowledgement waits for one step at most, not for everything received.
const WRITEBACK_STEP: u64 = 1 << 20;
/// Files past this size gather their writes in a pipe (`LocalWriter::append`); smaller ones,
/// most uploads of small files, are written directly and pay for no pipe.
const STAGE_FROM: u64 = 256 << 10;

/// The upload directory as a blob store.
pub struct LocalDir {
    dir: PathBuf,
    tmp: PathBuf,
    resume: PathBuf,
    /// Whether blobs are hashed (`--checksum`).
    checksum: bool,
    /// Whether `splice(2)` into files here works (probed at start).
    splice: bool,
}

impl LocalDir {
    /// Opens the blob store under `dir` (with pidrop's state dir `state`), removing the temp
    /// files a crash left.
    /// Whether blobs are hashed as they come in (`--checksum`).
    #[cfg(feature = "s3")]
    pub fn hashing(&self) -> bool {
        self.checksum
    }

    pub fn open(dir: &Path, state: &Path, checksum: bool) -> io::Result<LocalDir> {
        let mut local = LocalDir {
            dir: dir.to_path_buf(),
            tmp: open_state_dir(&state.join("tmp"))?,
            resume: open_state_dir(&state.join("resume"))?,
            checksum,
            splice: false,
        };
        local.clean_temp()?;
        local.splice = local.probe_splice();
        if !local.splice {
            log::info!(
                "splice(2) into {} does not work: uploads are copied",
                dir.display()
            );
        }
        Ok(local)
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

    pub(super) fn kept_path(&self, id: &str) -> io::Result<PathBuf> {
        // Ids are ours (hex); anything else could name a path.
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        Ok(self.resume.join(format!("{id}.part")))
    }

    fn writer(
        &self,
        path: PathBuf,
        file: File,
        len: u64,
        kept: bool,
        digest: Option<DigestState>,
    ) -> LocalWriter {
        // A reopened blob's earlier bytes were hashed by another writer: continued from its
        // state when it is handed over, else read back at the end.
        let digest = digest.filter(|d| d.len == len).map(FileDigest::resume);
        let hasher = match len {
            0 => Some(FileDigest::new()),
            _ => digest,
        }
        .filter(|_| self.checksum);
        LocalWriter {
            path,
            dest: self.dir.clone(),
            file: Some(file),
            rehash: self.checksum && hasher.is_none(),
            hasher,
            len,
            remove_on_drop: !kept,
            splice: self.splice,
            staging: None,
            held: 0,
            kicked: len,
        }
    }
}

impl Backend for LocalDir {
    fn create(&self, lifetime: Lifetime<'_>) -> io::Result<Box<dyn BlobWriter>> {
        let (path, kept) = match lifetime {
            Lifetime::Request => (self.tmp.join(format!("{}.part", random_hex()?)), false),
            Lifetime::Kept(id) => (self.kept_path(id)?, true),
        };
        // Readable too: the hasher reads back what is written, through a descriptor of its own.
        // A request's name is new; a kept one may be left by an attempt never acknowledged.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(!kept)
            .create(kept)
            .truncate(kept)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        if kept {
            // Its name must survive a power cut as long as the offsets acknowledged for it.
            sync_dir(&self.resume)?;
        }
        Ok(Box::new(self.writer(path, file, 0, kept, None)))
    }

    fn reopen(
        &self,
        id: &str,
        len: u64,
        digest: Option<DigestState>,
    ) -> io::Result<Box<dyn BlobWriter>> {
        let path = self.kept_path(id)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        let has = file.metadata()?.len();
        if has < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {has} bytes, {len} were acknowledged",
                    path.display()
                ),
            ));
        }
        if has > len {
            file.set_len(len)?;
        }
        std::io::Seek::seek(&mut file, io::SeekFrom::Start(len))?;
        Ok(Box::new(self.writer(path, file, len, true, digest)))
    }

    fn discard(&self, id: &str) -> io::Result<bool> {
        match fs::remove_file(self.kept_path(id)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn placed(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let removed = match fs::remove_file(self.dir.join(name)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// O_NOFOLLOW: a stored name replaced by a symlink is never followed out of the upload dir
    /// (it fails with ELOOP, which readers treat like a missing file).
    fn open(&self, name: &str) -> io::Result<Blob> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok(Blob { file, len })
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        match fs::symlink_metadata(self.dir.join(name)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn each(&self, visit: &mut dyn FnMut(BlobInfo) -> io::Result<()>) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_stored_name(&name) || !entry.file_type()?.is_file() {
                continue;
            }
            let m = entry.metadata()?;
            visit(BlobInfo {
                name,
                len: m.len(),
                modified: m.modified()?,
            })?;
        }
        Ok(())
    }

    fn free_space(&self) -> io::Result<u64> {
        crate::sys::free_space(&self.dir)
    }

    fn can_splice(&self) -> bool {
        self.splice
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(name))
    }
}

/// A file being written in the temp or resume directory.
struct LocalWriter {
    path: PathBuf,
    /// The upload dir, where `place` renames the file to.
    dest: PathBuf,
    file: Option<File>,
    hasher: Option<FileDigest>,
    /// The digest must be made by reading the whole file back (`finish`).
    rehash: bool,
    /// Bytes accepted: in the file plus those held in `staging`.
    len: u64,
    remove_on_drop: bool,
    splice: bool,
    /// Small writes gathered in a pipe on their way to the file (see `append`).
    staging: Option<Pipe>,
    /// Bytes waiting in `staging`.
    held: usize,
    /// Bytes of the file already handed to the disk (`start_writeback`).
    kicked: u64,
}

impl LocalWriter {
    fn file(&self) -> io::Result<&File> {
        self.file.as_ref().ok_or_else(finished)
    }

    /// Moves what `append` gathered into the file.
    fn flush_staging(&mut self) -> io::Result<()> {
        let held = self.held;
        if held == 0 {
            return Ok(());
        }
        let pipe = self.staging.as_ref().ok_or_else(finished)?;
        pipe.drain_into(self.file()?, held)?;
        self.held = 0;
        self.grew(None)
    }

    /// Bookkeeping after bytes reached the file: the hasher (which reads the file), and the
    /// disk's writeback started a step at a time.
    fn grew(&mut self, data: Option<&[u8]>) -> io::Result<()> {
        let in_file = self.len - self.held as u64;
        if let (Some(h), Some(file)) = (self.hasher.as_mut(), self.file.as_ref()) {
            if !h.appended(file, data, in_file)? {
                return Err(io::Error::other("hashing the upload failed"));
            }
        }
        if in_file - self.kicked >= WRITEBACK_STEP {
            if let Some(file) = self.file.as_ref() {
                crate::sys::start_writeback(file, self.kicked, in_file - self.kicked);
            }
            self.kicked = in_file;
        }
        Ok(())
    }

    /// The sha256 of the whole file, read back (a blob reopened after a restart).
    fn read_back_digest(&self) -> io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut file = File::open(&self.path)?;
        let mut state = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            state.update(&buf[..n]);
        }
        Ok(hex(&state.finalize()))
    }
}

impl BlobWriter for LocalWriter {
    /// Once a file is past `STAGE_FROM`, its (8 KiB) writes are gathered in a pipe and moved to
    /// the file half a pipe at a time with `splice`: measured (bench/PROFILE.md), what a write
    /// into ext4 costs is mostly per call, and a write into a pipe is cheap. The bytes stay in
    /// the kernel, at most one pipe's worth per upload; nothing is buffered in user space.
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.staging.is_none() && self.len >= STAGE_FROM && self.splice {
            self.staging = Pipe::new().ok();
        }
        // Without a pipe, `half` is 0: nothing is held and everything is written directly.
        let half = self.staging.as_ref().map_or(0, |p| p.capacity() / 2);
        if self.held + data.len() > half {
            self.flush_staging()?;
        }
        self.len += data.len() as u64;
        match self.staging.as_ref() {
            Some(pipe) if data.len() <= half => {
                pipe.push(data)?;
                self.held += data.len();
                Ok(())
            }
            _ => {
                self.file()?.write_all(data)?;
                self.grew(Some(data))
            }
        }
    }

    fn append_from_pipe(&mut self, pipe: &Pipe, len: usize) -> io::Result<()> {
        self.flush_staging()?;
        pipe.drain_into(self.file()?, len)?;
        self.len += len as u64;
        self.grew(None)
    }

    fn written(&self) -> u64 {
        self.len
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush_staging()?;
        self.file()?.sync_data()
    }

    fn finish(&mut self) -> io::Result<Option<String>> {
        self.flush_staging()?;
        self.staging = None;
        let file = self.file.take().ok_or_else(finished)?;
        file.sync_all()?;
        drop(file);
        if self.rehash {
            self.hasher = None;
            return self.read_back_digest().map(Some);
        }
        match self.hasher.take() {
            Some(h) => h
                .finish()
                .map(Some)
                .ok_or_else(|| io::Error::other("hashing the upload failed")),
            None => Ok(None),
        }
    }

    fn suspend_digest(&mut self) -> Option<DigestState> {
        if self.flush_staging().is_err() {
            return None;
        }
        self.hasher.take()?.suspend()
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn place(&mut self, meta: &super::Meta) -> io::Result<()> {
        fs::rename(&self.path, self.dest.join(&meta.name))?;
        self.remove_on_drop = false;
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // The hasher first: it holds a descriptor of the file too (and the file's space is
        // only given back once every descriptor is closed: a 507 must leave the disk as it was).
        self.hasher = None;
        self.staging = None;
        self.file = None;
        if self.remove_on_drop {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

fn finished() -> io::Error {
    io::Error::other("the blob was already finished")
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hashing local backend in a fresh directory of its own.
    fn scratch(tag: &str) -> (PathBuf, LocalDir) {
        let dir = std::env::temp_dir().join(format!("pidrop-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let state = dir.join(".pidrop");
        fs::create_dir_all(&state).expect("state dir");
        let local = LocalDir::open(&dir, &state, true).expect("local dir");
        (dir, local)
    }

    #[test]
    fn writes_staged_in_a_pipe_and_spliced_chunks_land_in_order_with_their_digest() {
        use sha2::{Digest, Sha256};
        let (dir, local) = scratch("local");
        assert!(
            local.can_splice(),
            "splice into a temp dir file works on Linux"
        );

        // 3 MiB in writes of odd sizes (staging starts past 256 KiB), with a chunk that arrives
        // through a pipe in the middle, as a PUT body would.
        let data: Vec<u8> = (0..3u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut blob = local.create(Lifetime::Request).expect("blob");
        let (mut at, mut step) = (0usize, 1usize);
        while at < data.len() {
            let n = step.min(data.len() - at);
            if at > (1 << 20) && at < (1 << 20) + 200_000 {
                let pipe = Pipe::new().expect("pipe");
                pipe.push(&data[at..at + n]).expect("push");
                blob.append_from_pipe(&pipe, n).expect("spliced chunk");
            } else {
                blob.append(&data[at..at + n]).expect("write");
            }
            at += n;
            assert_eq!(blob.written(), at as u64);
            step = step * 7 % 9000 + 1;
        }
        let digest = blob.finish().expect("finish");
        assert_eq!(digest, Some(hex(&Sha256::digest(&data))));
        blob.place(&crate::storage::Meta::named(
            "0123456789abcdef0123456789abcdef.bin",
        ))
        .expect("place");
        let back = local
            .open("0123456789abcdef0123456789abcdef.bin")
            .expect("open");
        assert_eq!(back.len, data.len() as u64);
        drop(blob);
        assert_eq!(fs::read_dir(&local.tmp).expect("tmp").count(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_kept_blob_survives_its_writer_and_is_hashed_whole_when_reopened() {
        use sha2::{Digest, Sha256};
        let (dir, local) = scratch("kept");
        let id = "00ff00ff00ff00ff00ff00ff00ff00ff";
        let mut first = local.create(Lifetime::Kept(id)).expect("kept blob");
        first.append(b"hello ").expect("append");
        first.sync().expect("sync");
        drop(first);
        assert!(local.reopen("../x", 0, None).is_err(), "ids are hex only");
        assert!(
            local.reopen(id, 7, None).is_err(),
            "fewer bytes than acknowledged"
        );
        // Bytes past the acknowledged offset are cut off.
        let mut again = local.reopen(id, 4, None).expect("reopen");
        again.append(b"o ").expect("append");
        drop(again);
        let mut again = local.reopen(id, 6, None).expect("reopen");
        assert_eq!(again.written(), 6);
        assert!(
            again.suspend_digest().is_none(),
            "a read-back writer has no state"
        );
        again.append(b"world").expect("append");
        let digest = again.finish().expect("finish");
        assert_eq!(digest, Some(hex(&Sha256::digest(b"hello world"))));
        drop(again);
        // A digest handed over continues; one that covers other bytes is not used.
        let mut fresh = local.create(Lifetime::Kept(id)).expect("recreate");
        fresh.append(b"hello ").expect("append");
        let state = fresh.suspend_digest().expect("state");
        drop(fresh);
        let mut cont = local.reopen(id, 6, Some(state.clone())).expect("reopen");
        cont.append(b"there").expect("append");
        let digest = cont.finish().expect("finish");
        assert_eq!(digest, Some(hex(&Sha256::digest(b"hello there"))));
        drop(cont);
        let mut stale = local.reopen(id, 11, Some(state)).expect("reopen");
        let digest = stale.finish().expect("finish");
        assert_eq!(digest, Some(hex(&Sha256::digest(b"hello there"))));
        drop(stale);
        assert!(local.discard(id).expect("discard"));
        assert!(!local.discard(id).expect("discard again"));
        let _ = fs::remove_dir_all(&dir);
    }
}
