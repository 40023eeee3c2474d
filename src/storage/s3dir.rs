//! Stored files in an S3 bucket (`--store s3`): a [`Backend`] whose blobs are received into
//! the local state dir first (a request's temp file, a resumable upload's kept file — so the
//! size limit, the content check and `--scan-cmd` see a local file as before) and go to the
//! bucket when placed under their stored name, as `<prefix><name>`: one streamed PUT, or a
//! multipart upload of parts of max(8 MiB, size/10,000) read from the file 8 KiB at a time.
//! An object exists under a stored name only once it is complete; a failed upload is aborted.
//! Reading streams from the bucket (ranged GETs); there is no local path, so no thumbnails.
//!
//! Each object carries what another node needs to list it (`x-amz-meta-pidrop-*`), and
//! `sync` brings a node's catalogue in line with the bucket (several nodes on one bucket).
//!
//! Not yet (issue 17): streaming a known length straight from the socket to the bucket
//! without the local file, sidecars for fields past S3's 2 KB of metadata, redirects, direct
//! uploads. The consistency check does not walk the bucket (another node's objects are not
//! this node's orphans); rows whose object is gone are still found.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{Backend, Blob, BlobInfo, BlobWriter, DigestState, Lifetime};
use super::local::LocalDir;
use super::meta::{decode_fields, encode_fields};
use super::{is_stored_name, Catalogue, Meta};
use crate::s3::Bucket;
use crate::sys::Pipe;

/// Up to this size a file goes in one PUT; above, in a multipart upload.
const SINGLE_PUT: u64 = 64 << 20;
/// The smallest part (S3 wants 5 MiB at least but for the last).
const MIN_PART: u64 = 8 << 20;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;
/// An object younger than this (seconds) is not listed by the sync yet: the node that wrote
/// it lists it itself a moment after (its catalogue row follows the object's completion).
const SETTLE: u64 = 5;

pub struct S3Dir {
    local: LocalDir,
    bucket: Arc<Bucket>,
    prefix: String,
    /// The catalogue (a connection of its own), where running multipart uploads are noted.
    journal: Arc<Catalogue>,
}

impl S3Dir {
    /// The bucket backend; first aborts the multipart uploads this node left running when it
    /// stopped (a crash, kill -9): their ids were noted in the catalogue before any part.
    pub fn new(
        local: LocalDir,
        bucket: Arc<Bucket>,
        prefix: &str,
        journal: Arc<Catalogue>,
    ) -> S3Dir {
        match journal.multipart_uploads() {
            Ok(left) => {
                for (id, key) in left {
                    match bucket.abort_multipart(&key, &id) {
                        Ok(()) => {
                            log::warn!("aborted the multipart upload of {key} a stop cut off")
                        }
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => {
                            log::warn!("cannot abort the multipart upload of {key}: {e}");
                            continue;
                        }
                    }
                    let _ = journal.multipart_done(&id);
                }
            }
            Err(e) => log::error!("cannot read the running multipart uploads: {e}"),
        }
        S3Dir {
            local,
            bucket,
            prefix: prefix.to_string(),
            journal,
        }
    }

    fn wrap(&self, inner: Box<dyn BlobWriter>, kept: Option<&str>) -> Box<dyn BlobWriter> {
        Box::new(S3Writer {
            inner,
            bucket: self.bucket.clone(),
            journal: self.journal.clone(),
            prefix: self.prefix.clone(),
            kept: kept.map(|k| (k.to_string(), self.local.kept_path(k))),
        })
    }
}

fn s3_io(e: crate::s3::S3Error) -> io::Error {
    io::Error::other(e)
}

/// Sends `len` bytes of `file` into the bucket under `key`.
fn upload_file(
    bucket: &Bucket,
    journal: &Catalogue,
    key: &str,
    headers: &[(String, String)],
    file: &mut File,
    len: u64,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    if len <= SINGLE_PUT {
        let mut s = bucket.put_stream(key, len, headers).map_err(s3_io)?;
        io::copy(&mut Read::take(&mut *file, len), &mut s)?;
        return bucket.finish_put(s).map_err(s3_io);
    }
    let id = bucket.create_multipart(key, headers).map_err(s3_io)?;
    // Noted before the first part: a crash from here on is undone at the next start.
    if let Err(e) = journal.multipart_started(&id, key) {
        let _ = bucket.abort_multipart(key, &id);
        return Err(io::Error::other(e));
    }
    let sent = upload_parts(bucket, key, &id, file, len);
    let result =
        match sent.and_then(|parts| bucket.complete_multipart(key, &id, &parts).map_err(s3_io)) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = bucket.abort_multipart(key, &id) {
                    log::warn!("cannot abort the multipart upload of {key}: {abort}");
                }
                Err(e)
            }
        };
    let _ = journal.multipart_done(&id);
    result
}

impl Catalogue {
    fn multipart_started(&self, id: &str, key: &str) -> Result<(), super::CatalogueError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO multipart (upload_id, key) VALUES (?1, ?2)",
            [id, key],
        )?;
        Ok(())
    }

    fn multipart_done(&self, id: &str) -> Result<(), super::CatalogueError> {
        self.conn()
            .execute("DELETE FROM multipart WHERE upload_id = ?1", [id])?;
        Ok(())
    }

    /// (upload id, key) of every multipart upload noted as running.
    fn multipart_uploads(&self) -> Result<Vec<(String, String)>, super::CatalogueError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT upload_id, key FROM multipart")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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

/// What an object carries so that another node (or a rebuild) can list it: its type and
/// `x-amz-meta-pidrop-*` (free text percent-encoded; the fields only when they fit S3's 2 KB).
fn object_headers(m: &Meta) -> Vec<(String, String)> {
    let enc = |s: &str| crate::s3::sigv4::uri_encode(s, false);
    let mut h = vec![
        ("content-type".to_string(), m.mime.clone()),
        ("x-amz-meta-pidrop-name".to_string(), enc(&m.original_name)),
        ("x-amz-meta-pidrop-sha256".to_string(), m.sha256.clone()),
        (
            "x-amz-meta-pidrop-uploaded-ns".to_string(),
            m.uploaded_at.to_string(),
        ),
        ("x-amz-meta-pidrop-owner".to_string(), enc(&m.owner)),
        (
            "x-amz-meta-pidrop-delete-key".to_string(),
            m.delete_key.clone(),
        ),
        ("x-amz-meta-pidrop-album".to_string(), enc(&m.album)),
        (
            "x-amz-meta-pidrop-gps-stripped".to_string(),
            u8::from(m.gps_stripped).to_string(),
        ),
    ];
    if let Some(t) = m.expires_at {
        h.push(("x-amz-meta-pidrop-expires".to_string(), t.to_string()));
    }
    let fields = enc(&encode_fields(&m.fields));
    if fields.len() <= 1024 {
        h.push(("x-amz-meta-pidrop-fields".to_string(), fields));
    }
    h
}

/// A stored file's record from its object's headers (`object_headers`) and key.
fn meta_from_object(name: &str, size: u64, headers: &[(String, String)]) -> Meta {
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&format!("x-amz-meta-pidrop-{k}")))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let dec = |s: &str| {
        crate::multipart::disposition::percent_decode(s.as_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let mut m = Meta::named(name);
    m.size = size;
    if let Some((_, t)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        m.mime.clone_from(t);
    }
    let original = dec(get("name"));
    if !original.is_empty() {
        m.original_name = original;
    }
    m.sha256 = get("sha256").to_string();
    m.uploaded_at = get("uploaded-ns").parse().unwrap_or(0);
    m.owner = dec(get("owner"));
    m.delete_key = get("delete-key").to_string();
    m.album = dec(get("album"));
    m.gps_stripped = get("gps-stripped") == "1";
    m.expires_at = get("expires").parse().ok();
    m.fields = decode_fields(&dec(get("fields")));
    m
}

/// The catalogue's names in order, a batch at a time.
struct Rows<'a> {
    cat: &'a Catalogue,
    batch: std::vec::IntoIter<String>,
    last: String,
}

impl Rows<'_> {
    fn next(&mut self) -> io::Result<Option<String>> {
        if let Some(n) = self.batch.next() {
            self.last.clone_from(&n);
            return Ok(Some(n));
        }
        let more = self
            .cat
            .names_after(&self.last, 512)
            .map_err(io::Error::other)?;
        self.batch = more.into_iter();
        let n = self.batch.next();
        if let Some(n) = &n {
            self.last.clone_from(n);
        }
        Ok(n)
    }
}

/// What one pass of `sync` changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Files another node stored, now listed here.
    pub added: usize,
    /// Files another node deleted, no longer listed here.
    pub dropped: usize,
}

/// Brings this node's catalogue in line with the bucket: objects under `prefix` that it does
/// not list are added (from their `x-amz-meta-pidrop-*`), rows whose object is gone (asked
/// once more with a HEAD: a file placed while the listing ran is not dropped) are removed. Both
/// sides are walked in name order, a page at a time: memory does not grow with the bucket.
pub fn sync(cat: &Catalogue, bucket: &Bucket, prefix: &str) -> io::Result<Synced> {
    let mut done = Synced::default();
    let mut rows = Rows {
        cat,
        batch: Vec::new().into_iter(),
        last: String::new(),
    };
    let mut row = rows.next()?;
    let mut token: Option<String> = None;
    loop {
        let page = bucket.list(prefix, token.as_deref()).map_err(s3_io)?;
        for obj in &page.objects {
            let Some(name) = obj.key.strip_prefix(prefix).filter(|n| is_stored_name(n)) else {
                continue;
            };
            while let Some(r) = row.take_if(|r| r.as_str() < name) {
                drop_if_gone(cat, bucket, prefix, &r, &mut done)?;
                row = rows.next()?;
            }
            if row.as_deref() == Some(name) {
                row = rows.next()?;
                continue;
            }
            // Just written: its node is committing its row now; next pass, if still unlisted.
            if obj.modified + SETTLE > bucket.server_now() {
                continue;
            }
            if let Some(headers) = bucket.head_object(&obj.key).map_err(s3_io)? {
                let m = meta_from_object(name, obj.size, &headers);
                done.added += cat.import(&[m]).map_err(io::Error::other)?;
            }
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    while let Some(r) = row {
        drop_if_gone(cat, bucket, prefix, &r, &mut done)?;
        row = rows.next()?;
    }
    Ok(done)
}

fn drop_if_gone(
    cat: &Catalogue,
    bucket: &Bucket,
    prefix: &str,
    name: &str,
    done: &mut Synced,
) -> io::Result<()> {
    let gone = bucket
        .head_object(&format!("{prefix}{name}"))
        .map_err(s3_io)?
        .is_none();
    if gone && cat.delete(name).map_err(io::Error::other)? {
        done.dropped += 1;
    }
    Ok(())
}

/// A blob received locally, placed into the bucket.
struct S3Writer {
    inner: Box<dyn BlobWriter>,
    bucket: Arc<Bucket>,
    journal: Arc<Catalogue>,
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
    fn place(&mut self, meta: &Meta) -> io::Result<()> {
        let path = self
            .inner
            .local_path()
            .ok_or_else(|| io::Error::other("no local file to send"))?
            .to_path_buf();
        let mut file = File::open(&path)?;
        let len = self.inner.written();
        let key = format!("{}{}", self.prefix, meta.name);
        let headers = object_headers(meta);
        upload_file(&self.bucket, &self.journal, &key, &headers, &mut file, len)?;
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
