//! One upload, one straight path: head checks (type, declared size, free space) before the body
//! is touched — so `100 Continue` is never sent for a request we refuse — then one 8 KiB buffer
//! carries each file from the socket into a temp file, validated on its first bytes, and the
//! request's files are committed together once the body has ended properly. A large PUT body,
//! once its first 8 KiB are validated, moves socket → pipe → file inside the kernel instead; a
//! large multipart body is scanned from one pipe while its file data is spliced from a second
//! (`upload::tee`), the parser still reading 8 KiB at a time.
//!
//! A request is all or nothing for durability: a body that breaks off (disconnect, malformed
//! multipart, disk full) leaves no file behind. Individual files may still be refused (type,
//! size, name) while the others are stored; those refusals are reported under `errors`.

use std::io::Read;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{AppError, MultipartError, UploadError};
#[cfg(feature = "s3")]
pub mod direct;
mod gps;
mod ingest;
pub mod placement;
mod tee;
use crate::http::request::Body;
use crate::http::{body_error, Request};
use crate::multipart::{self, disposition::percent_decode, Event, Multipart, ParseError};
use crate::storage::{Meta, Staged, Store};
use crate::sys::Pipe;
use crate::validate;
pub use ingest::Ingest;
use tee::TeeBody;

/// Bodies at least this long (for PUT: after the first buffer) are spliced rather than read.
const SPLICE_FROM: u64 = 256 << 10;

/// What one request stored and refused.
pub struct Outcome {
    pub stored: Vec<Arc<Meta>>,
    /// Each stored file's delete token, in the same order (shown once, in the answer).
    pub delete_tokens: Vec<String>,
    pub refused: Vec<(String, AppError)>,
    pub fields: Vec<(String, String)>,
}

enum Current<'a> {
    None,
    /// Refused or empty: its data is read and dropped.
    Skip,
    File(Box<Ingest<'a>>),
    Field {
        name: String,
        value: Vec<u8>,
    },
}

/// Checks that need only the head: declared size against the limit and the free space.
/// `on_disk`: whether the bytes will be written to the local disk first (not when they are
/// streamed to a bucket), so free space matters.
fn precheck(
    store: &Store,
    declared: Option<u64>,
    limit: u64,
    whole_request: bool,
    on_disk: bool,
) -> Result<(), AppError> {
    if let Some(n) = declared {
        if n > limit {
            return Err(if whole_request {
                UploadError::RequestTooLarge { limit }.into()
            } else {
                UploadError::TooLarge { limit }.into()
            });
        }
    }
    store.ensure_room_as(declared.unwrap_or(0), on_disk)
}

/// `POST /upload`, multipart/form-data.
pub fn multipart(
    cfg: &Config,
    store: &Store,
    req: &mut Request<'_>,
    by: &By,
) -> Result<Outcome, AppError> {
    let ctype = req.header("content-type").unwrap_or("");
    let boundary = multipart::boundary(ctype)?;
    precheck(store, req.body.declared_len(), cfg.max_request, true, true)?;
    // A large body with a known length is scanned from a pipe while file data is spliced from
    // a second one (see `tee.rs`); else read through the parser's buffer.
    let hold = worth_splicing(store, req.body.remaining());
    let mut parser = Multipart::new(
        TeeBody::new(&mut req.body, hold),
        &boundary,
        multipart::BUFFER_SIZE,
        cfg.max_parts,
    );
    let mut form = Form {
        cfg,
        store,
        held: parser.get_ref().holds(),
        current: Current::None,
        staged: Vec::new(),
        refused: Vec::new(),
        fields: Vec::new(),
    };
    loop {
        if parser.get_ref().bytes_read() > cfg.max_request {
            return Err(UploadError::RequestTooLarge {
                limit: cfg.max_request,
            }
            .into());
        }
        match parser.next_event() {
            Ok(Event::End) => break,
            Ok(Event::Part(head)) => form.part(head.name, head.filename),
            Ok(Event::Data(data)) => {
                let step = form.data(data)?;
                form.after_data(&mut parser, step)?
            }
            Ok(Event::PartEnd) => form.part_end(parser.get_mut())?,
            Err(ParseError::Format(e)) => return Err(e.into()),
            Err(ParseError::Io(e)) => return Err(body_error(e)),
        }
    }
    form.commit(by)
}

/// A multipart request in progress: the part being read, the files staged so far, the files
/// refused (with why) and the text fields.
struct Form<'a> {
    cfg: &'a Config,
    store: &'a Store,
    /// Whether file data is kept in the hold pipe (spliced to the file) rather than copied.
    held: bool,
    current: Current<'a>,
    staged: Vec<Staged>,
    refused: Vec<(String, AppError)>,
    fields: Vec<(String, String)>,
}

/// A failure that ends the whole request, not just one file: the disk is the problem.
fn stops_request(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Storage(_)
            | AppError::Upload(
                UploadError::InsufficientStorage { .. } | UploadError::QuotaExceeded { .. }
            )
    )
}

type Parser<'b, 'c> = Multipart<TeeBody<'b, 'c>>;

/// What a data event left to do with the parser.
enum Step {
    Done,
    /// Keep this many bytes at the end of the event as file data in the hold pipe.
    Keep(usize),
    Refuse(AppError),
}

impl<'a> Form<'a> {
    fn part(&mut self, name: String, filename: Option<String>) {
        self.current = match filename {
            // An empty file input: browsers send `filename=""` and no data.
            Some(raw) if raw.is_empty() => Current::Skip,
            Some(raw) => match begin_file(self.cfg, self.store, &raw) {
                Ok(file) => Current::File(Box::new(file)),
                Err((name, e)) => {
                    self.refused.push((name, e));
                    Current::Skip
                }
            },
            None => Current::Field {
                name,
                value: Vec::new(),
            },
        };
    }

    /// Takes one data event's bytes (the parser's buffer, not copied): a field's are kept, a
    /// file's are validated and written; what is left to do with the parser is returned.
    fn data(&mut self, data: &[u8]) -> Result<Step, AppError> {
        match &mut self.current {
            Current::File(file) => Ok(match file.take(data, self.held) {
                Ok(tail) => Step::Keep(tail),
                Err(e) => Step::Refuse(e),
            }),
            Current::Field { value, .. } => {
                if (value.len() + data.len()) as u64 > self.cfg.max_field {
                    return Err(MultipartError::FieldTooLarge {
                        limit: self.cfg.max_field,
                    }
                    .into());
                }
                value.extend_from_slice(data);
                Ok(Step::Done)
            }
            Current::Skip | Current::None => Ok(Step::Done),
        }
    }

    /// Keeps a file's last bytes in the hold pipe (they go to the file by splice), or refuses
    /// the file.
    fn after_data(&mut self, parser: &mut Parser<'_, '_>, step: Step) -> Result<(), AppError> {
        let kept = match step {
            Step::Done => return Ok(()),
            Step::Refuse(e) => Err(e),
            Step::Keep(tail) => match &mut self.current {
                Current::File(file) => {
                    let end = parser.consumed();
                    keep_held(parser.get_mut(), end, file, tail)
                }
                _ => Ok(()),
            },
        };
        match kept {
            Ok(()) => Ok(()),
            Err(e) if stops_request(&e) => Err(e),
            Err(e) => {
                if let Current::File(file) = &self.current {
                    self.refused.push((file.original().to_string(), e));
                }
                parser.get_mut().drop_kept();
                self.current = Current::Skip; // drops the temp file
                Ok(())
            }
        }
    }

    fn part_end(&mut self, body: &mut TeeBody<'_, '_>) -> Result<(), AppError> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::File(mut file) => {
                flush_held(body, &mut file)?;
                let original = file.original().to_string();
                match file.finish() {
                    Ok(s) => self.staged.push(s),
                    Err(e) if stops_request(&e) => return Err(e),
                    Err(e) => self.refused.push((original, e)),
                }
            }
            Current::Field { name, value } => {
                self.fields
                    .push((name, String::from_utf8_lossy(&value).into_owned()));
            }
            Current::Skip | Current::None => {}
        }
        Ok(())
    }

    /// Every staged file carries the form's fields; all are listed in one commit.
    fn commit(mut self, by: &By) -> Result<Outcome, AppError> {
        for s in &mut self.staged {
            label(self.cfg, s, &self.fields, by)?;
        }
        let delete_tokens = self.staged.iter().map(|s| s.delete_token.clone()).collect();
        let stored = commit(self.store, self.staged, by, None)?;
        Ok(Outcome {
            stored,
            delete_tokens,
            refused: self.refused,
            fields: self.fields,
        })
    }
}

fn begin_file<'a>(
    cfg: &'a Config,
    store: &'a Store,
    raw: &str,
) -> Result<Ingest<'a>, (String, AppError)> {
    let original = validate::original_name(raw)
        .ok_or_else(|| (raw.to_string(), UploadError::BadName.into()))?;
    Ingest::begin(cfg, store, original.clone()).map_err(|e| (original, e))
}

/// Keeps the last `tail` bytes of the event just parsed (which ends at the body offset `end`)
/// in the hold pipe as the file's data, moving what is kept into the file when it is due.
fn keep_held(
    body: &mut TeeBody<'_, '_>,
    end: u64,
    file: &mut Ingest<'_>,
    tail: usize,
) -> Result<(), AppError> {
    if tail == 0 {
        return Ok(());
    }
    body.keep(end, tail).map_err(AppError::Storage)?;
    if body.flush_due() {
        flush_held(body, file)?;
    }
    Ok(())
}

/// Moves the file data kept in the hold pipe into the file.
fn flush_held(body: &mut TeeBody<'_, '_>, file: &mut Ingest<'_>) -> Result<(), AppError> {
    match body.flush() {
        Some((pipe, n)) => file.write_deferred(pipe, n),
        None => Ok(()),
    }
}

/// Whether a body is long enough for pipes to pay: below `SPLICE_FROM`, a pipe per upload and
/// the hashing thread that spliced bytes need cost more than the copies saved (measured with
/// 64 KiB files: bench/PROFILE.md, small files).
fn worth_splicing(store: &Store, remaining: Option<u64>) -> bool {
    remaining.is_some_and(|left| left >= SPLICE_FROM) && store.can_splice()
}

/// Who uploads: the owner its files record (`user:…`, `token:…`, `anonymous:…`, `link:ID`),
/// and the album an upload link holds it to, whatever its fields say.
#[derive(Clone, Debug, Default)]
pub struct By {
    pub owner: String,
    pub album: Option<String>,
}

impl By {
    /// The upload link it uploads through, if any (its files count against the link).
    fn link(&self) -> Option<&str> {
        self.owner.strip_prefix("link:")
    }
}

/// A staged file's record completed before its commit: the request's fields, its owner, and
/// where it goes (album, expiry: `placement.rs`, counted from now).
pub fn label(
    cfg: &Config,
    staged: &mut Staged,
    fields: &[(String, String)],
    by: &By,
) -> Result<(), AppError> {
    let mut p = placement::placement(cfg, fields, crate::time::now_secs())?;
    if let Some(album) = &by.album {
        p.album.clone_from(album);
    }
    staged.meta.fields = fields.to_vec();
    staged.meta.owner.clone_from(&by.owner);
    p.apply(&mut staged.meta);
    Ok(())
}

/// Commits labelled files (`Store::commit_finishing`); through an upload link, they are
/// counted against its number of files first (403 when used up) and given back if the commit
/// fails.
pub fn commit(
    store: &Store,
    staged: Vec<Staged>,
    by: &By,
    finishing: Option<&str>,
) -> Result<Vec<Arc<Meta>>, AppError> {
    let n = staged.len() as u64;
    if let Some(id) = by.link().filter(|_| n > 0) {
        if !store.catalogue().use_link(id, n)? {
            return Err(AppError::LinkUsedUp);
        }
    }
    let committed = store.commit_finishing(staged, finishing);
    if let (Err(_), Some(id)) = (&committed, by.link()) {
        let _ = store.catalogue().unuse_link(id, n);
    }
    committed
}

/// `PUT /upload/<name>`: the raw body is the file.
pub fn put(
    cfg: &Config,
    store: &Store,
    req: &mut Request<'_>,
    raw_name: &str,
    by: &By,
) -> Result<(Arc<Meta>, String), AppError> {
    let decoded = percent_decode(raw_name.as_bytes()).ok_or(UploadError::BadName)?;
    let original =
        validate::original_name(&String::from_utf8_lossy(&decoded)).ok_or(UploadError::BadName)?;
    let mut file = Ingest::begin(cfg, store, original)?.expect(req.body.declared_len());
    let on_disk = !file.streams();
    precheck(store, req.body.declared_len(), cfg.max_size, false, on_disk)?;
    let fields = query_fields(req.head.query.as_deref());
    // A bad album or expiry is refused before a byte is stored.
    placement::placement(cfg, &fields, crate::time::now_secs())?;
    pump(store, &mut req.body, &mut file, None)?;
    let mut staged = file.finish()?;
    label(cfg, &mut staged, &fields, by)?;
    let token = staged.delete_token.clone();
    let meta = commit(store, vec![staged], by, None)?
        .pop()
        .ok_or(AppError::Internal)?;
    Ok((meta, token))
}

/// Something that must see every byte of a body (a tus `Upload-Checksum`).
pub type Digest<'a> = dyn FnMut(&[u8]) + 'a;

/// Feeds a raw body (of a PUT, of a tus PATCH) into one file. The first buffer is read whole
/// (or to the end of a short body): enough for the content check. Then a large body with a
/// known length goes socket → pipe → blob inside the kernel (see `sys::Pipe`), when the
/// backend can take it from a pipe; otherwise (no pipe to be had, a chunked or short body)
/// 8 KiB at a time. `digest` sees every byte — then nothing is spliced.
pub fn pump(
    store: &Store,
    body: &mut Body<'_>,
    file: &mut Ingest<'_>,
    mut digest: Option<&mut Digest<'_>>,
) -> Result<(), AppError> {
    let mut buf = vec![0u8; multipart::BUFFER_SIZE];
    let mut filled = 0;
    while filled < buf.len() {
        let n = body.read(&mut buf[filled..]).map_err(body_error)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if let Some(d) = digest.as_mut() {
        d(&buf[..filled]);
    }
    file.take(&buf[..filled], false)?;
    let splice = digest.is_none() && worth_splicing(store, body.remaining());
    let mut pipe = None;
    loop {
        // Once the head is dealt with (checked; with --strip-gps, its EXIF seen), the rest
        // may bypass user space.
        if splice && pipe.is_none() && file.validated() {
            pipe = Pipe::new().ok();
        }
        if let Some(pipe) = &pipe {
            match body
                .splice_into(pipe, pipe.capacity())
                .map_err(body_error)?
            {
                Some(0) => break,
                Some(n) => {
                    file.take_from_pipe(pipe, n)?;
                    continue;
                }
                None => {}
            }
        }
        let n = body.read(&mut buf).map_err(body_error)?;
        if n == 0 {
            break;
        }
        if let Some(d) = digest.as_mut() {
            d(&buf[..n]);
        }
        file.take(&buf[..n], false)?;
    }
    Ok(())
}

/// `a=1&b=two%20words` as metadata fields (for PUT, which has no form parts).
pub fn query_fields(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    let decode = |s: &str| {
        let plus = s.replace('+', " ");
        percent_decode(plus.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}
