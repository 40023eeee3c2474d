//! Stored files in an S3 bucket (`--store s3`), as `<prefix><stored name>`, two ways in:
//!
//! - **Streamed** (`Backend::stream`: a file whose length is known before its first byte, a
//!   PUT; a resumable upload's across its requests: `s3resume.rs`): a multipart upload under
//!   its stored name, started once the content check passed,
//!   each part of max(8 MiB, size/10,000) written to its own connection as the bytes arrive
//!   from the client — the SD card is not touched and nothing but the caller's 8 KiB buffer
//!   is held. A part cannot be sent again (its bytes are gone): a failure fails the upload.
//! - **Spooled** (`Backend::create`: unknown length, multipart forms, `--scan-cmd`):
//!   received into the local state dir first, then one PUT or a multipart upload read from
//!   the file, each part tried up to three times.
//!
//! Either way an object exists under a stored name only once it is complete (a streamed upload
//! is completed in `place`, just before the catalogue commit); anything unfinished is aborted,
//! and the upload ids are noted in the catalogue so a crash is undone at the next start.
//! Reading streams from the bucket (ranged GETs); there is no local path, so no thumbnails.
//!
//! Each object carries what another node needs to list it (`x-amz-meta-pidrop-*`); what does
//! not fit in S3's 2 KB of metadata — or is known only at the end of a streamed upload, its
//! sha256 — is in a sidecar object `<prefix>.pidrop/<name>`, written before the object is
//! complete and flagged by `x-amz-meta-pidrop-sidecar: 1`. `sync` brings a node's catalogue in
//! line with the bucket (several nodes on one bucket). The consistency check does not walk the
//! bucket (another node's objects are not this node's orphans); rows whose object is gone are
//! still found.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::backend::{Backend, Blob, BlobInfo, BlobWriter, DigestState, Lifetime};
use super::local::LocalDir;
use super::meta::{decode_fields, encode_fields};
use super::s3resume;
use super::{is_stored_name, Catalogue, Meta};
use crate::s3::http::Sending;
use crate::s3::Bucket;
use crate::sys::Pipe;

/// Up to this size a file goes in one PUT; above, in a multipart upload.
const SINGLE_PUT: u64 = 64 << 20;
/// The smallest part (S3 wants 5 MiB at least but for the last).
const MIN_PART: u64 = 8 << 20;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Tries per part of a spooled upload (its bytes can be read again from the file).
const PART_TRIES: u32 = 3;
/// Most bytes of `x-amz-meta-*` kept on the object itself (S3 allows 2 KB in all); a file
/// described by more has a sidecar.
const META_ON_OBJECT: usize = 1800;
/// Where sidecars live, under the prefix (not a stored name: `sync` passes over them).
const SIDECARS: &str = ".pidrop/";
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

    /// Where the resumable upload `id` keeps its record and tail when it streams.
    fn resume_paths(&self, id: &str) -> io::Result<s3resume::Paths> {
        let tail = self.local.kept_path(id)?;
        Ok(s3resume::Paths {
            record: tail.with_extension("s3"),
            tail,
        })
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

pub(super) fn s3_io(e: crate::s3::S3Error) -> io::Error {
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

/// The part size for a file of `len` bytes: at most 10,000 parts, none below 8 MiB.
pub(super) fn part_size(len: u64) -> u64 {
    MIN_PART.max(len.div_ceil(MAX_PARTS))
}

fn upload_parts(
    bucket: &Bucket,
    key: &str,
    id: &str,
    file: &mut File,
    len: u64,
) -> io::Result<Vec<(u32, String)>> {
    let part = part_size(len);
    let mut parts = Vec::new();
    let mut at = 0;
    let mut n = 1u32;
    while at < len {
        let this = part.min(len - at);
        let mut tries = 0;
        let etag = loop {
            tries += 1;
            match send_part(bucket, key, id, n, file, at, this) {
                Ok(etag) => break etag,
                Err(e) if tries < PART_TRIES => {
                    log::warn!("part {n} of {key} failed ({e}); sending it again");
                }
                Err(e) => return Err(e),
            }
        };
        parts.push((n, etag));
        at += this;
        n += 1;
    }
    Ok(parts)
}

/// Part `n`: `len` bytes of `file` from `at`; its ETag.
fn send_part(
    bucket: &Bucket,
    key: &str,
    id: &str,
    n: u32,
    file: &mut File,
    at: u64,
    len: u64,
) -> io::Result<String> {
    file.seek(SeekFrom::Start(at))?;
    let mut s = bucket.upload_part(key, id, n, len).map_err(s3_io)?;
    io::copy(&mut Read::take(&mut *file, len), &mut s)?;
    bucket.finish_part(s).map_err(s3_io)
}

/// What describes a stored file so that another node (or a rebuild) can list it: its type and
/// `x-amz-meta-pidrop-*`, free text percent-encoded.
fn describing_headers(m: &Meta) -> Vec<(String, String)> {
    let enc = |s: &str| crate::s3::sigv4::uri_encode(s, false);
    let mut h = vec![
        ("content-type".to_string(), m.mime.clone()),
        ("x-amz-meta-pidrop-name".to_string(), enc(&m.original_name)),
        ("x-amz-meta-pidrop-sha256".to_string(), m.sha256.clone()),
        // RFC 3339 for people and other tools; the nanoseconds for an exact catalogue.
        (
            "x-amz-meta-pidrop-uploaded-at".to_string(),
            crate::time::rfc3339(m.uploaded_time()),
        ),
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
    if !fields.is_empty() {
        h.push(("x-amz-meta-pidrop-fields".to_string(), fields));
    }
    h
}

/// The headers an object is written with, and its sidecar's text when the description does
/// not fit on the object (then the object carries its type, its name and the flag only).
fn object_headers(m: &Meta) -> (Vec<(String, String)>, Option<String>) {
    let all = describing_headers(m);
    let size: usize = all
        .iter()
        .filter(|(k, _)| k.starts_with("x-amz-meta-"))
        .map(|(k, v)| k.len() - "x-amz-meta-".len() + v.len())
        .sum();
    if size <= META_ON_OBJECT {
        return (all, None);
    }
    (flagged_headers(&m.mime, ""), Some(sidecar_text(&all)))
}

/// An object whose description is in its sidecar: its type, its original name (when short
/// enough to carry), and the flag.
fn flagged_headers(mime: &str, original: &str) -> Vec<(String, String)> {
    let mut h = vec![
        ("content-type".to_string(), mime.to_string()),
        ("x-amz-meta-pidrop-sidecar".to_string(), "1".to_string()),
    ];
    let name = crate::s3::sigv4::uri_encode(original, false);
    if !name.is_empty() && name.len() <= 1024 {
        h.push(("x-amz-meta-pidrop-name".to_string(), name));
    }
    h
}

/// A sidecar: one `header: value` per line (values are percent-encoded: no line breaks).
fn sidecar_text(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-amz-meta-pidrop-"))
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect()
}

/// Writes the object of `meta` with `write(key, headers)` — its description in its headers,
/// and in a sidecar written first when it does not fit (removed again if the write fails).
pub(super) fn write_described(
    bucket: &Bucket,
    prefix: &str,
    meta: &Meta,
    write: impl FnOnce(&str, &[(String, String)]) -> io::Result<()>,
) -> io::Result<()> {
    let key = format!("{prefix}{}", meta.name);
    let (headers, sidecar) = object_headers(meta);
    let side = sidecar_key(prefix, &meta.name);
    if let Some(text) = &sidecar {
        bucket
            .put_object(&side, text.as_bytes(), &[])
            .map_err(s3_io)?;
    }
    let written = write(&key, &headers);
    if written.is_err() && sidecar.is_some() {
        let _ = bucket.delete_object(&side);
    }
    written
}

/// Completes the multipart upload of a streamed file, its whole description (the sha256 known
/// only now among it) in the sidecar `side`, written first and removed again if it fails.
pub(super) fn complete_described(
    bucket: &Bucket,
    side: &str,
    meta: &Meta,
    key: &str,
    upload: &str,
    parts: &[(u32, String)],
) -> Result<(), crate::s3::S3Error> {
    let text = sidecar_text(&describing_headers(meta));
    let done = bucket
        .put_object(side, text.as_bytes(), &[])
        .and_then(|()| bucket.complete_multipart(key, upload, parts));
    if done.is_err() {
        let _ = bucket.delete_object(side);
    }
    done
}

/// Reads exactly `len` bytes out of `pipe`, 8 KiB at a time, into `take` (a writer whose bytes
/// go on over the network: there is no splicing into a socket's request body here).
pub(super) fn drain_pipe(
    pipe: &Pipe,
    len: usize,
    mut take: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len());
        let n = pipe.read_out(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        take(&buf[..n])?;
        left -= n;
    }
    Ok(())
}

pub(super) fn sidecar_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{SIDECARS}{name}")
}

/// A stored file's record from its object's headers, and its sidecar when it has one (a
/// missing sidecar leaves what the object says).
fn describe(
    bucket: &Bucket,
    prefix: &str,
    name: &str,
    size: u64,
    mut headers: Vec<(String, String)>,
) -> io::Result<Meta> {
    let flagged = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-meta-pidrop-sidecar") && v == "1");
    if flagged {
        match bucket.get_object(&sidecar_key(prefix, name), None) {
            Ok(mut reply) => {
                let text = reply.read_all(64 * 1024)?;
                let mut side: Vec<(String, String)> = String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                // The sidecar's lines come first: they are what is looked up.
                side.append(&mut headers);
                headers = side;
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(s3_io(e)),
        }
    }
    Ok(meta_from_object(name, size, &headers))
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
                let m = describe(bucket, prefix, name, obj.size, headers)?;
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
        let sent = write_described(&self.bucket, &self.prefix, meta, |key, headers| {
            upload_file(&self.bucket, &self.journal, key, headers, &mut file, len)
        });
        sent?;
        // The request's temp file goes when this writer is dropped unplaced locally; a kept
        // one must be removed now.
        if let Some((_, Ok(kept))) = &self.kept {
            let _ = std::fs::remove_file(kept);
        }
        Ok(())
    }
}

/// A file of known length going into the bucket as it arrives: a multipart upload under its
/// stored name, part after part, each written to its own connection (see the module's head).
struct S3Stream {
    bucket: Arc<Bucket>,
    journal: Arc<Catalogue>,
    key: String,
    sidecar: String,
    id: String,
    /// The declared length: exactly this many bytes, no more, no fewer.
    len: u64,
    part: u64,
    written: u64,
    /// (number, ETag) of the parts sent.
    parts: Vec<(u32, String)>,
    /// The part being written.
    current: Option<Sending>,
    hasher: Option<Sha256>,
    /// Completed (placed) or aborted: nothing left to undo.
    done: bool,
}

impl S3Stream {
    /// The number of the next part (at most 10,000 of them).
    fn next_number(&self) -> u32 {
        u32::try_from(self.parts.len()).map_or(u32::MAX, |n| n + 1)
    }

    /// The part being written, started if need be.
    fn part(&mut self) -> io::Result<&mut Sending> {
        if self.current.is_none() {
            let n = self.next_number();
            let this = self.part.min(self.len - self.written);
            let s = self
                .bucket
                .upload_part(&self.key, &self.id, n, this)
                .map_err(s3_io)?;
            self.current = Some(s);
        }
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("no part"))
    }

    /// Ends the part being written once all its bytes are in.
    fn end_part_if_full(&mut self) -> io::Result<()> {
        if let Some(s) = self.current.take_if(|s| s.left() == 0) {
            let etag = self.bucket.finish_part(s).map_err(s3_io)?;
            self.parts.push((self.next_number(), etag));
        }
        Ok(())
    }

    fn abort(&mut self) {
        self.done = true;
        self.current = None;
        if let Err(e) = self.bucket.abort_multipart(&self.key, &self.id) {
            log::warn!("cannot abort the multipart upload of {}: {e}", self.key);
            return;
        }
        let _ = self.journal.multipart_done(&self.id);
    }
}

impl BlobWriter for S3Stream {
    fn on_disk(&self) -> bool {
        false
    }

    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.written + data.len() as u64 > self.len {
            return Err(io::Error::other("more bytes than the declared length"));
        }
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        while !data.is_empty() {
            let s = self.part()?;
            let n = usize::try_from(s.left())
                .unwrap_or(usize::MAX)
                .min(data.len());
            io::Write::write_all(s, &data[..n])?;
            self.written += n as u64;
            data = &data[n..];
            self.end_part_if_full()?;
        }
        Ok(())
    }

    /// The bytes are read out of the pipe (they must be hashed and go to a socket anyway).
    fn append_from_pipe(&mut self, pipe: &Pipe, len: usize) -> io::Result<()> {
        drain_pipe(pipe, len, |data| self.append(data))
    }

    fn written(&self) -> u64 {
        self.written
    }

    /// Parts are durable in the bucket once answered; nothing in between.
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<Option<String>> {
        if self.written != self.len {
            return Err(io::Error::other("fewer bytes than the declared length"));
        }
        self.end_part_if_full()?;
        Ok(self
            .hasher
            .take()
            .map(|h| super::hex(h.finalize().as_slice())))
    }

    fn suspend_digest(&mut self) -> Option<DigestState> {
        None
    }

    fn local_path(&self) -> Option<&Path> {
        None
    }

    /// The sidecar (the description, with the sha256 now known), then the completion: the
    /// object appears whole under its name.
    fn place(&mut self, meta: &Meta) -> io::Result<()> {
        let placed = complete_described(
            &self.bucket,
            &self.sidecar,
            meta,
            &self.key,
            &self.id,
            &self.parts,
        );
        match placed {
            Ok(()) => {
                self.done = true;
                let _ = self.journal.multipart_done(&self.id);
                Ok(())
            }
            Err(e) => {
                self.abort();
                Err(s3_io(e))
            }
        }
    }
}

impl Drop for S3Stream {
    /// Unplaced (a refusal, a disconnect, a failed part): the multipart upload is aborted.
    fn drop(&mut self) {
        if !self.done {
            self.abort();
        }
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
        let paths = self.resume_paths(id)?;
        if s3resume::exists(&paths) {
            let r = s3resume::reopen(&self.bucket, &self.prefix, paths, len, digest)?;
            return Ok(Box::new(r));
        }
        let inner = self.local.reopen(id, len, digest)?;
        Ok(self.wrap(inner, Some(id)))
    }

    fn discard(&self, id: &str) -> io::Result<bool> {
        let paths = self.resume_paths(id)?;
        if s3resume::exists(&paths) {
            return s3resume::discard(&self.bucket, &paths);
        }
        self.local.discard(id)
    }

    /// An object is durable once its PUT (or its completion) was answered.
    fn placed(&self) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let key = format!("{}{name}", self.prefix);
        let head = self.bucket.head_object(&key).map_err(s3_io)?;
        self.bucket.delete_object(&key).map_err(s3_io)?;
        let flagged = head.as_ref().is_some_and(|h| {
            h.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-meta-pidrop-sidecar") && v == "1")
        });
        if flagged {
            let side = sidecar_key(&self.prefix, name);
            self.bucket.delete_object(&side).map_err(s3_io)?;
        }
        Ok(head.is_some())
    }

    fn stream(
        &self,
        kept: Option<&str>,
        name: &str,
        len: u64,
        mime: &str,
        original: &str,
    ) -> Option<io::Result<Box<dyn BlobWriter>>> {
        let headers = flagged_headers(mime, original);
        if let Some(id) = kept {
            let hashing = self.local.hashing();
            return Some(self.resume_paths(id).and_then(|paths| {
                s3resume::start(
                    &self.bucket,
                    &self.prefix,
                    paths,
                    name,
                    len,
                    &headers,
                    hashing,
                )
                .map(|r| Box::new(r) as Box<dyn BlobWriter>)
            }));
        }
        let key = format!("{}{name}", self.prefix);
        let started = (|| {
            let id = self
                .bucket
                .create_multipart(&key, &headers)
                .map_err(s3_io)?;
            if let Err(e) = self.journal.multipart_started(&id, &key) {
                let _ = self.bucket.abort_multipart(&key, &id);
                return Err(io::Error::other(e));
            }
            Ok(id)
        })();
        Some(started.map(|id| {
            Box::new(S3Stream {
                bucket: self.bucket.clone(),
                journal: self.journal.clone(),
                sidecar: sidecar_key(&self.prefix, name),
                key,
                id,
                len,
                part: part_size(len),
                written: 0,
                parts: Vec::new(),
                current: None,
                hasher: self.local.hashing().then(Sha256::new),
                done: false,
            }) as Box<dyn BlobWriter>
        }))
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
