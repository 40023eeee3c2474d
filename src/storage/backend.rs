//! Where a file's bytes live, behind one trait, so the upload code does not care: the
//! catalogue (SQLite, `catalogue.rs`) is the index, a [`Backend`] keeps the bytes under stored
//! names. The local filesystem (`local.rs`) is the one backend today; an S3 bucket is next.
//!
//! What a backend promises: a [`BlobWriter`] takes bytes in order and keeps them out of sight
//! until `place` puts them under their stored name; `placed` is the barrier after which a
//! request's placed blobs survive a power cut. What it may offer beyond that is a fast path the
//! callers ask for rather than assume: `can_splice` (bytes moved from a pipe without entering
//! user space) and `local_path` (a file the thumbnailer and `sendfile` can read).
//!
//! Whether an unfinished blob vanishes when dropped or survives a restart is the caller's
//! policy ([`Lifetime`]): a request's temp file goes with the request, a resumable upload's
//! stays until it is finished, terminated or expired.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use super::hasher::DigestState;
use crate::sys::Pipe;

/// How long an unfinished blob lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime<'a> {
    /// Removed when its writer is dropped unplaced, and at start (a request's temp file).
    Request,
    /// Kept under this id across drops and restarts until placed or discarded (tus).
    Kept(&'a str),
}

/// What a backend may know of the request that brings a blob's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThisRequest {
    /// Where the blob will stand (bytes) once the request's body is in, when it says.
    pub ends_at: Option<u64>,
    /// The body is checked only at its end (a tus `Upload-Checksum`): none of its bytes may
    /// be placed beyond recall before `sync` or `finish`.
    pub checked_at_end: bool,
}

/// A stored file opened for reading.
pub struct Blob {
    pub file: File,
    pub len: u64,
}

/// One stored blob, as a listing sees it (for the consistency check and rebuilds).
pub struct BlobInfo {
    pub name: String,
    pub len: u64,
    pub modified: SystemTime,
}

/// Bytes on their way in.
pub trait BlobWriter: Send {
    /// Appends `data`.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Appends exactly `len` bytes waiting in `pipe`; only when the backend `can_splice`.
    fn append_from_pipe(&mut self, pipe: &Pipe, len: usize) -> io::Result<()>;
    /// Bytes appended so far (including those of earlier writers of a kept blob).
    fn written(&self) -> u64;
    /// Makes everything appended durable, without finishing: the offset a resumable upload
    /// may acknowledge.
    fn sync(&mut self) -> io::Result<()>;
    /// No more bytes: makes them durable and returns their sha256 (hex) when hashing is on.
    fn finish(&mut self) -> io::Result<Option<String>>;
    /// Stops hashing and hands over the state over every byte appended so far (for a kept
    /// blob, to be continued by the next writer instead of reading the bytes back); `None`
    /// when not hashing or hashing failed.
    fn suspend_digest(&mut self) -> Option<DigestState>;
    /// A local file holding the bytes before they are placed (a scanner reads it), if the
    /// backend has one.
    fn local_path(&self) -> Option<&Path>;
    /// The stored name, when it was chosen before the first byte (a blob streamed to where it
    /// is stored).
    fn stored_name(&self) -> Option<&str> {
        None
    }
    /// Whether its bytes land on the local disk (free space matters for them).
    fn on_disk(&self) -> bool {
        true
    }
    /// What is known of the request bringing the bytes (a resumable upload's PATCH): a backend
    /// may send what will make a whole piece straight on, or must hold everything back.
    fn this_request(&mut self, _r: ThisRequest) {}
    /// Puts the finished bytes under `meta.name` (not yet durable: see `Backend::placed`);
    /// a backend that keeps a description beside the bytes (S3 object metadata) takes it from
    /// `meta`. From then on the blob is the caller's to remove (`Backend::remove`).
    fn place(&mut self, meta: &super::Meta) -> io::Result<()>;
}

/// A store of blobs under stored names.
pub trait Backend: Send + Sync {
    /// A new, empty blob being written (a kept blob of the same id is replaced).
    fn create(&self, lifetime: Lifetime<'_>) -> io::Result<Box<dyn BlobWriter>>;
    /// The kept blob `id` again, cut back to its first `len` bytes (what was acknowledged;
    /// bytes written after that were never promised), to append to it. `NotFound` if there is
    /// none, `InvalidData` if it holds fewer than `len` bytes.
    /// `digest`, if it covers exactly those `len` bytes, continues their sha256.
    fn reopen(
        &self,
        id: &str,
        len: u64,
        digest: Option<DigestState>,
    ) -> io::Result<Box<dyn BlobWriter>>;
    /// A blob of exactly `len` bytes to be placed under `name` (chosen now), written straight
    /// to where it is stored without a local copy — if the backend does that (S3); `None`
    /// otherwise (then `create`). `mime` and `original` are known already (the content check
    /// passed); the rest of the description comes with `place`. `kept`: a resumable upload's
    /// id, whose blob goes on across its requests (`reopen` finds it again).
    fn stream(
        &self,
        _kept: Option<&str>,
        _name: &str,
        _len: u64,
        _mime: &str,
        _original: &str,
    ) -> Option<io::Result<Box<dyn BlobWriter>>> {
        None
    }
    /// Removes the kept blob `id` (terminated or expired); `Ok(false)` if there was none.
    fn discard(&self, id: &str) -> io::Result<bool>;
    /// Makes the blobs placed so far durable under their names.
    fn placed(&self) -> io::Result<()>;
    /// Removes a stored blob, durably; `Ok(false)` if there was none.
    fn remove(&self, name: &str) -> io::Result<bool>;
    /// Opens a stored blob for reading.
    fn open(&self, name: &str) -> io::Result<Blob>;
    /// Whether a stored blob exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Calls `visit` with every stored blob (order unspecified).
    fn each(&self, visit: &mut dyn FnMut(BlobInfo) -> io::Result<()>) -> io::Result<()>;
    /// Bytes that can still be stored.
    fn free_space(&self) -> io::Result<u64>;
    /// Whether `BlobWriter::append_from_pipe` works here.
    fn can_splice(&self) -> bool;
    /// A local file holding the stored blob, for readers that need a path (thumbnails).
    fn local_path(&self, name: &str) -> Option<PathBuf>;
    /// `len` bytes of a stored blob from `start`, as a stream (a backend whose blobs are not
    /// local files; `open` gives a local one's file).
    fn read(&self, name: &str, start: u64, len: u64) -> io::Result<Box<dyn io::Read + Send>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut blob = self.open(name)?;
        blob.file.seek(SeekFrom::Start(start))?;
        Ok(Box::new(blob.file.take(len)))
    }
    /// Whether stored blobs live elsewhere (read with `read`, no `local_path`).
    fn remote(&self) -> bool {
        false
    }
}
