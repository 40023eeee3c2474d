//! A resumable (tus) upload of known length going into the bucket part by part, across its
//! requests: a multipart upload under its stored name (chosen when the content check passed),
//! parts of max(8 MiB, length/10,000).
//!
//! An offset is acknowledged only once it is durable, and a part is durable only once S3
//! answered it: so a request whose bytes reach the end of the part under way (the caller says
//! where the request ends: `ends_at`) sends them straight from the socket into that part — the
//! SD card is not touched; the page's 8 MiB PATCHes are whole parts. Bytes that will not fill
//! their part within the request (a small PATCH, a chunked one) are kept in the upload's tail
//! file (`.pidrop/resume/<id>.part`, never more than one part) and sent as the start of that
//! part later. A request cut off in the middle of a part loses that part's new bytes (its
//! connection to S3 is dropped, S3 keeps nothing of it): the offset stays where it was plus the
//! parts completed, and the client resends from there, as tus has it.
//!
//! What is done is recorded in `.pidrop/resume/<id>.s3` (the key, the upload id, each part's
//! number, length and ETag; replaced atomically after each part), so a restart goes on where
//! the last request stopped. The upload's multipart id is not in the catalogue's journal (a
//! restart must not abort it); it is aborted when the upload is terminated or expires, or by
//! the bucket's lifecycle rule.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::backend::{BlobWriter, DigestState, ThisRequest};
use super::s3dir::{complete_described, drain_pipe, part_size, s3_io, sidecar_key};
use super::Meta;
use crate::s3::http::Sending;
use crate::s3::Bucket;
use crate::sys::Pipe;

const MAGIC: &str = "pidrop-s3-resume 1";

/// What is done of the upload (the `.s3` file).
struct Record {
    key: String,
    name: String,
    upload: String,
    len: u64,
    part: u64,
    /// (number, length, ETag) of the parts S3 answered.
    parts: Vec<(u32, u64, String)>,
    /// Bytes in those parts (kept, not summed: asked on every append).
    done: u64,
}

impl Record {
    /// Bytes in the parts done.
    fn boundary(&self) -> u64 {
        self.done
    }

    fn push_part(&mut self, n: u32, len: u64, etag: String) {
        self.parts.push((n, len, etag));
        self.done += len;
    }

    fn pop_part(&mut self) {
        if let Some((_, len, _)) = self.parts.pop() {
            self.done -= len;
        }
    }

    fn text(&self) -> String {
        let mut t = format!(
            "{MAGIC}\nkey {}\nname {}\nupload {}\nlen {}\npart {}\n",
            self.key, self.name, self.upload, self.len, self.part
        );
        for (n, len, etag) in &self.parts {
            t.push_str(&format!("p {n} {len} {etag}\n"));
        }
        t
    }

    fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        (lines.next()? == MAGIC).then_some(())?;
        let mut field = |name: &str| {
            let line = lines.next()?;
            line.strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_string)
        };
        let (key, name, upload) = (field("key")?, field("name")?, field("upload")?);
        let len = field("len")?.parse().ok()?;
        let part = field("part")?.parse().ok()?;
        let mut parts = Vec::new();
        for line in lines {
            let mut f = line.strip_prefix("p ")?.splitn(3, ' ');
            let n = f.next()?.parse().ok()?;
            let plen = f.next()?.parse().ok()?;
            parts.push((n, plen, f.next()?.to_string()));
        }
        Some(Record {
            key,
            name,
            upload,
            len,
            part,
            done: parts.iter().map(|p| p.1).sum(),
            parts,
        })
    }

    /// Replaces the `.s3` file: written aside, synced, renamed over, the directory synced.
    fn save(&self, path: &Path) -> io::Result<()> {
        let aside = path.with_extension("s3.new");
        let mut f = File::create(&aside)?;
        f.write_all(self.text().as_bytes())?;
        f.sync_all()?;
        fs::rename(&aside, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Where a resumable upload's record and tail live.
pub struct Paths {
    pub record: PathBuf,
    pub tail: PathBuf,
}

/// The upload's blob, for one request.
pub struct Resumable {
    bucket: Arc<Bucket>,
    prefix: String,
    paths: Paths,
    rec: Record,
    tail: File,
    tail_len: u64,
    /// The part being sent, and the hash over everything before it (what stays true if the
    /// part is lost).
    current: Option<(Sending, Option<Sha256>)>,
    /// What is known of this request: where the upload will stand at its end, and whether its
    /// body is checked only then (everything waits in the tail until `sync` or `finish`).
    request: ThisRequest,
    hasher: Option<Sha256>,
}

/// Whether there is a resumable upload in the bucket under these paths.
pub fn exists(paths: &Paths) -> bool {
    paths.record.exists()
}

/// Starts the multipart upload of `name` (`len` bytes, described by `headers`) for a resumable
/// upload, replacing one it had (begun by a request whose bytes were then not acknowledged).
pub fn start(
    bucket: &Arc<Bucket>,
    prefix: &str,
    paths: Paths,
    name: &str,
    len: u64,
    headers: &[(String, String)],
    hashing: bool,
) -> io::Result<Resumable> {
    discard(bucket, &paths)?;
    let key = format!("{prefix}{name}");
    let upload = bucket.create_multipart(&key, headers).map_err(s3_io)?;
    let rec = Record {
        key,
        name: name.to_string(),
        upload,
        len,
        part: part_size(len),
        parts: Vec::new(),
        done: 0,
    };
    let opened = rec.save(&paths.record).and_then(|()| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&paths.tail)
    });
    let tail = match opened {
        Ok(t) => t,
        Err(e) => {
            let _ = bucket.abort_multipart(&rec.key, &rec.upload);
            let _ = fs::remove_file(&paths.record);
            return Err(e);
        }
    };
    Ok(Resumable {
        bucket: bucket.clone(),
        prefix: prefix.to_string(),
        paths,
        rec,
        tail,
        tail_len: 0,
        current: None,
        request: ThisRequest::default(),
        hasher: hashing.then(Sha256::new),
    })
}

/// The upload again, at the `len` bytes acknowledged: parts past it are forgotten, the tail cut
/// to it. `InvalidData` when bytes up to `len` are no longer to be had (a crash between a part's
/// end and the acknowledgement, past the tail).
pub fn reopen(
    bucket: &Arc<Bucket>,
    prefix: &str,
    paths: Paths,
    len: u64,
    digest: Option<DigestState>,
) -> io::Result<Resumable> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let text = fs::read_to_string(&paths.record)?;
    let mut rec = Record::parse(&text).ok_or_else(|| bad("unreadable upload record"))?;
    while rec.boundary() > len {
        rec.pop_part();
    }
    let tail = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.tail)?;
    let tail_len = len - rec.boundary();
    if tail.metadata()?.len() < tail_len || tail_len > rec.part {
        return Err(bad("the bytes up to the acknowledged offset are gone"));
    }
    tail.set_len(tail_len)?;
    let mut r = Resumable {
        bucket: bucket.clone(),
        prefix: prefix.to_string(),
        paths,
        rec,
        tail,
        tail_len,
        current: None,
        request: ThisRequest::default(),
        hasher: digest.filter(|d| d.len == len).map(DigestState::into_sha),
    };
    r.tail.seek(SeekFrom::End(0))?;
    Ok(r)
}

/// Ends a resumable upload that will not be finished: its multipart upload aborted, its
/// files removed. `Ok(false)` when there was none.
pub fn discard(bucket: &Bucket, paths: &Paths) -> io::Result<bool> {
    let Ok(text) = fs::read_to_string(&paths.record) else {
        return Ok(false);
    };
    if let Some(rec) = Record::parse(&text) {
        match bucket.abort_multipart(&rec.key, &rec.upload) {
            Err(e) if e.status() != Some(404) => return Err(s3_io(e)),
            _ => {}
        }
    }
    let _ = fs::remove_file(&paths.tail);
    fs::remove_file(&paths.record)?;
    Ok(true)
}

impl Resumable {
    /// Length of the part under way.
    fn part_len(&self) -> u64 {
        self.rec.part.min(self.rec.len - self.rec.boundary())
    }

    /// The number of the part under way (at most 10,000: `part_size`).
    fn next_number(&self) -> u32 {
        u32::try_from(self.rec.parts.len() + 1).unwrap_or(u32::MAX)
    }

    /// Whether this request brings the part under way to its end.
    fn fills_part(&self) -> bool {
        let end = self.rec.boundary() + self.part_len();
        !self.request.checked_at_end && self.request.ends_at.is_some_and(|at| at >= end)
    }

    fn hash(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
    }

    /// Opens the part under way on its own connection and sends what the tail holds of it
    /// (at most the whole part).
    fn open_part(&mut self) -> io::Result<()> {
        let n = self.next_number();
        let mut part = self
            .bucket
            .upload_part(&self.rec.key, &self.rec.upload, n, self.part_len())
            .map_err(s3_io)?;
        let from_tail = self.tail_len.min(self.part_len());
        self.tail.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut (&self.tail).take(from_tail), &mut part)?;
        self.tail.seek(SeekFrom::End(0))?;
        if copied != from_tail {
            return Err(io::Error::other("the tail file is shorter than recorded"));
        }
        self.current = Some((part, self.hasher.clone()));
        Ok(())
    }

    /// The part under way is whole: its answer recorded, what it took from the tail removed
    /// from there.
    fn close_part(&mut self) -> io::Result<()> {
        let Some((part, _)) = self.current.take() else {
            return Ok(());
        };
        let len = self.part_len();
        let etag = self.bucket.finish_part(part).map_err(s3_io)?;
        let n = self.next_number();
        self.rec.push_part(n, len, etag);
        self.rec.save(&self.paths.record)?;
        self.shift_tail(len.min(self.tail_len))
    }

    /// Drops the first `sent` bytes of the tail (they are in a part now): what follows them
    /// moves to the front, through a new file renamed over the old.
    fn shift_tail(&mut self, sent: u64) -> io::Result<()> {
        let rest = self.tail_len - sent;
        if rest > 0 {
            let aside = self.paths.tail.with_extension("part.new");
            let mut new = File::create(&aside)?;
            self.tail.seek(SeekFrom::Start(sent))?;
            io::copy(&mut (&self.tail).take(rest), &mut new)?;
            new.sync_all()?;
            fs::rename(&aside, &self.paths.tail)?;
            self.tail = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.paths.tail)?;
        } else {
            self.tail.set_len(0)?;
        }
        self.tail.seek(SeekFrom::End(0))?;
        self.tail_len = rest;
        Ok(())
    }

    /// Sends the whole parts the tail holds (a body checked at its end, now checked).
    fn flush_tail(&mut self) -> io::Result<()> {
        self.request.checked_at_end = false;
        while self.tail_len > 0 && self.tail_len >= self.part_len() {
            self.open_part()?;
            if let Some((part, _)) = &self.current {
                if part.left() != 0 {
                    return Err(io::Error::other("a part from the tail came out short"));
                }
            }
            self.close_part()?;
        }
        Ok(())
    }

    /// Drops a part that will not be whole in this request (S3 keeps nothing of it), going
    /// back to what was durable before it.
    fn drop_part(&mut self) {
        if let Some((_, before)) = self.current.take() {
            self.hasher = before;
        }
    }
}

impl BlobWriter for Resumable {
    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.request.checked_at_end {
            // Nothing leaves before the body is checked: all of it waits in the tail.
            self.tail.write_all(data)?;
            self.tail_len += data.len() as u64;
            self.hash(data);
            return Ok(());
        }
        while !data.is_empty() {
            if self.current.is_none() && self.fills_part() {
                self.open_part()?;
            }
            let n = match &mut self.current {
                Some((part, _)) => {
                    let n = usize::try_from(part.left())
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    part.write_all(&data[..n])?;
                    n
                }
                None => {
                    let room = self.part_len() - self.tail_len;
                    let n = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
                    self.tail.write_all(&data[..n])?;
                    self.tail_len += n as u64;
                    n
                }
            };
            self.hash(&data[..n]);
            data = &data[n..];
            // A part whose bytes all came to the tail is sent from there.
            if self.current.is_none() && self.tail_len == self.part_len() && self.tail_len > 0 {
                self.open_part()?;
            }
            if self.current.as_ref().is_some_and(|(p, _)| p.left() == 0) {
                self.close_part()?;
            }
        }
        Ok(())
    }

    fn append_from_pipe(&mut self, pipe: &Pipe, len: usize) -> io::Result<()> {
        drain_pipe(pipe, len, |data| self.append(data))
    }

    fn written(&self) -> u64 {
        match &self.current {
            Some((part, _)) => self.rec.boundary() + self.part_len() - part.left(),
            None => self.rec.boundary() + self.tail_len,
        }
    }

    /// What is durable: the parts S3 answered and the tail, fsynced. A part still under way
    /// (the request ended before it) is dropped.
    fn sync(&mut self) -> io::Result<()> {
        self.drop_part();
        if self.request.checked_at_end {
            self.flush_tail()?;
        }
        self.tail.sync_data()
    }

    fn finish(&mut self) -> io::Result<Option<String>> {
        if self.request.checked_at_end {
            self.flush_tail()?;
        }
        if self.current.is_some() || self.written() != self.rec.len {
            return Err(io::Error::other("fewer bytes than the declared length"));
        }
        Ok(self
            .hasher
            .take()
            .map(|h| super::hex(h.finalize().as_slice())))
    }

    fn suspend_digest(&mut self) -> Option<DigestState> {
        if self.current.is_some() {
            return None;
        }
        let len = self.written();
        self.hasher.take().map(|h| DigestState::new(h, len))
    }

    fn local_path(&self) -> Option<&Path> {
        None
    }

    fn stored_name(&self) -> Option<&str> {
        Some(&self.rec.name)
    }

    fn on_disk(&self) -> bool {
        false
    }

    fn this_request(&mut self, r: ThisRequest) {
        self.request = r;
    }

    /// Completes the multipart upload (the description and sha256 in its sidecar, written
    /// first), then forgets the upload's files.
    fn place(&mut self, meta: &Meta) -> io::Result<()> {
        let parts: Vec<(u32, String)> = self
            .rec
            .parts
            .iter()
            .map(|(n, _, etag)| (*n, etag.clone()))
            .collect();
        let side = sidecar_key(&self.prefix, &meta.name);
        complete_described(
            &self.bucket,
            &side,
            meta,
            &self.rec.key,
            &self.rec.upload,
            &parts,
        )
        .map_err(s3_io)?;
        let _ = fs::remove_file(&self.paths.tail);
        let _ = fs::remove_file(&self.paths.record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back_what_it_wrote_and_nothing_else() {
        let rec = Record {
            key: "p/ab.png".into(),
            name: "ab.png".into(),
            upload: "up id/1".into(),
            len: 20 << 20,
            part: 8 << 20,
            parts: vec![
                (1, 8 << 20, "\"e1\"".into()),
                (2, 8 << 20, "\"e 2\"".into()),
            ],
            done: 16 << 20,
        };
        let back = Record::parse(&rec.text()).expect("parses");
        assert_eq!(back.text(), rec.text());
        assert_eq!(back.boundary(), 16 << 20);
        assert!(Record::parse("something else\n").is_none());
        assert!(Record::parse(&rec.text().replace("len ", "length ")).is_none());
        assert!(Record::parse(&format!("{}p x\n", rec.text())).is_none());
    }
}
