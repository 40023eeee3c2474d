//! Stored files in an S3 bucket (`--store s3`): a [`Backend`] whose blobs are received into
//! the local state dir first (a request's temp file, a resumable upload's kept file — so the
//! size limit, the content check and `--scan-cmd` see a local file as before) and go to the
//! bucket when placed under their stored name, as `<prefix><name>`: one streamed PUT, or a
//! multipart upload of parts of max(8 MiB, size/10,000) read from the file 8 KiB at a time.
//! An object exists under a stored name only once it is complete; a failed upload is aborted.
//! Reading streams from the bucket (ranged GETs); there is no local path, so no thumbnails.
//!
//! Not yet (issue 17): streaming a known length straight from the socket to the bucket
//! without the local file, object metadata for rebuilds, several nodes, redirects, direct
//! uploads. The consistency check does not walk the bucket (another node's objects are not
//! this node's orphans); rows whose object is gone are still found.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{Backend, Blob, BlobInfo, BlobWriter, DigestState, Lifetime};
use super::local::LocalDir;
use crate::s3::Bucket;
use crate::sys::Pipe;

/// Up to this size a file goes in one PUT; above, in a multipart upload.
const SINGLE_PUT: u64 = 64 << 20;
/// The smallest part (S3 wants 5 MiB at least but for the last).
const MIN_PART: u64 = 8 << 20;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;

pub struct S3Dir {
    local: LocalDir,
    bucket: Arc<Bucket>,
    prefix: String,
}

impl S3Dir {
    pub fn new(local: LocalDir, bucket: Arc<Bucket>, prefix: &str) -> S3Dir {
        S3Dir {
            local,
            bucket,
            prefix: prefix.to_string(),
        }
    }

    fn wrap(&self, inner: Box<dyn BlobWriter>, kept: Option<&str>) -> Box<dyn BlobWriter> {
        Box::new(S3Writer {
            inner,
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            kept: kept.map(|k| (k.to_string(), self.local.kept_path(k))),
        })
    }
}

fn s3_io(e: crate::s3::S3Error) -> io::Error {
    io::Error::other(e)
}

/// Sends `len` bytes of `file` into the bucket under `key`.
fn upload_file(bucket: &Bucket, key: &str, file: &mut File, len: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    if len <= SINGLE_PUT {
        let mut s = bucket.put_stream(key, len, &[]).map_err(s3_io)?;
        io::copy(&mut Read::take(&mut *file, len), &mut s)?;
        return bucket.finish_put(s).map_err(s3_io);
    }
    let id = bucket.create_multipart(key, &[]).map_err(s3_io)?;
    let sent = upload_parts(bucket, key, &id, file, len);
    match sent.and_then(|parts| bucket.complete_multipart(key, &id, &parts).map_err(s3_io)) {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(abort) = bucket.abort_multipart(key, &id) {
                log::warn!("cannot abort the multipart upload of {key}: {abort}");
            }
            Err(e)
        }
    }
}

fn upload_parts(
    bucket: &Bucket,
    key: &str,
    id: &str,
    file: &mut File,
    len: u64,
) -> io::Result<Vec<(u32, String)>> {
    let part = MIN_PART.max(len.div_ceil(MAX_PARTS));
    let mut parts = Vec::new();
    let mut at = 0;
    let mut n = 1u32;
    while at < len {
        let this = part.min(len - at);
        let mut s = bucket.upload_part(key, id, n, this).map_err(s3_io)?;
        io::copy(&mut Read::take(&mut *file, this), &mut s)?;
        parts.push((n, bucket.finish_part(s).map_err(s3_io)?));
        at += this;
        n += 1;
    }
    Ok(parts)
}

/// A blob received locally, placed into the bucket.
struct S3Writer {
    inner: Box<dyn BlobWriter>,
    bucket: Arc<Bucket>,
    prefix: String,
    /// A resumable upload's id and kept file: removed once the object is in the bucket.
    kept: Option<(String, io::Result<PathBuf>)>,
}

impl BlobWriter for S3Writer {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn append_from_pipe(&mut self, pipe: &Pipe, len: usize) -> io::Result<()> {
        self.inner.append_from_pipe(pipe, len)
    }
    fn written(&self) -> u64 {
        self.inner.written()
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn finish(&mut self) -> io::Result<Option<String>> {
        self.inner.finish()
    }
    fn suspend_digest(&mut self) -> Option<DigestState> {
        self.inner.suspend_digest()
    }
    fn local_path(&self) -> Option<&Path> {
        self.inner.local_path()
    }
    fn place(&mut self, name: &str) -> io::Result<()> {
        let path = self
            .inner
            .local_path()
            .ok_or_else(|| io::Error::other("no local file to send"))?
            .to_path_buf();
        let mut file = File::open(&path)?;
        let len = self.inner.written();
        upload_file(
            &self.bucket,
            &format!("{}{name}", self.prefix),
            &mut file,
            len,
        )?;
        // The request's temp file goes when this writer is dropped unplaced locally; a kept
        // one must be removed now.
        if let Some((_, Ok(kept))) = &self.kept {
            let _ = std::fs::remove_file(kept);
        }
        Ok(())
    }
}

impl Backend for S3Dir {
    fn create(&self, lifetime: Lifetime<'_>) -> io::Result<Box<dyn BlobWriter>> {
        let inner = self.local.create(lifetime)?;
        let kept = match lifetime {
            Lifetime::Kept(id) => Some(id),
            Lifetime::Request => None,
        };
        Ok(self.wrap(inner, kept))
    }

    fn reopen(
        &self,
        id: &str,
        len: u64,
        digest: Option<DigestState>,
    ) -> io::Result<Box<dyn BlobWriter>> {
        let inner = self.local.reopen(id, len, digest)?;
        Ok(self.wrap(inner, Some(id)))
    }

    fn discard(&self, id: &str) -> io::Result<bool> {
        self.local.discard(id)
    }

    /// An object is durable once its PUT (or its completion) was answered.
    fn placed(&self) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let key = format!("{}{name}", self.prefix);
        let had = self.bucket.head_object(&key).map_err(s3_io)?.is_some();
        self.bucket.delete_object(&key).map_err(s3_io)?;
        Ok(had)
    }

    fn open(&self, _name: &str) -> io::Result<Blob> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "stored files are in the bucket: read them with `read`",
        ))
    }

    fn read(&self, name: &str, start: u64, len: u64) -> io::Result<Box<dyn Read + Send>> {
        let key = format!("{}{name}", self.prefix);
        let range = (len > 0).then(|| (start, start + len - 1));
        let reply = self
            .bucket
            .get_object(&key, range)
            .map_err(|e| match e.status() {
                Some(404) => io::Error::from(io::ErrorKind::NotFound),
                _ => s3_io(e),
            })?;
        Ok(Box::new(reply.body))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        let key = format!("{}{name}", self.prefix);
        Ok(self.bucket.head_object(&key).map_err(s3_io)?.is_some())
    }

    fn each(&self, _visit: &mut dyn FnMut(BlobInfo) -> io::Result<()>) -> io::Result<()> {
        Ok(())
    }

    fn free_space(&self) -> io::Result<u64> {
        // What is received is first written to the local state dir.
        self.local.free_space()
    }

    fn can_splice(&self) -> bool {
        self.local.can_splice()
    }

    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }

    fn remote(&self) -> bool {
        true
    }
}
