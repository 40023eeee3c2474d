//! The tus requests: OPTIONS (what the server offers), POST (creation, with upload), HEAD (the
//! offset), PATCH (more bytes), DELETE (termination); `Tus-Resumable` on every response, and
//! CORS for the origins `--origins` names (a page elsewhere must read `Location` and the
//! `Upload-*` headers, and may send the tus ones).

use super::headers::{self, parse_number, Expected};
use super::{Reply, Tus, Uploader, EXTENSIONS, VERSION};
use crate::config::Config;
use crate::error::{AppError, TusError, UploadError};
use crate::http::{Request, Response};
use crate::storage::{random_hex, Unfinished};
use crate::time::http_date;
use crate::upload::Ingest;
use crate::validate;

const PATCH_TYPE: &str = "application/offset+octet-stream";
const ALLOW_ONE: &str = "HEAD, PATCH, DELETE, OPTIONS";
const ALLOW_ROOT: &str = "POST, OPTIONS";
/// Request headers a page on another origin may send (CORS preflight).
const CORS_ALLOW_HEADERS: &str = "Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, \
     Upload-Checksum, Upload-Defer-Length, Upload-Concat, Content-Type, X-HTTP-Method-Override, \
     X-Requested-With";
/// Response headers such a page may read.
const CORS_EXPOSE: &str = "Location, Upload-Offset, Upload-Length, Upload-Metadata, \
     Upload-Expires, Upload-Defer-Length, Tus-Resumable, Tus-Version, Tus-Extension, \
     Tus-Max-Size, Tus-Checksum-Algorithm, Pidrop-File-Url, Pidrop-Delete-Token";

impl Tus {
    /// `/tus` (`id` None) and `/tus/<id>`. Every response, errors too, carries
    /// `Tus-Resumable` and, for a listed origin, its CORS headers.
    /// `owner` is who uploads (it owns the file once stored).
    pub fn handle(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        id: Option<&str>,
        who: Uploader<'_>,
    ) -> Reply {
        let mut reply = match self.route(cfg, req, id, who) {
            Ok(r) => r,
            Err(e) => {
                if e.status() >= 500 {
                    log::error!("{} {}: {e}", req.method(), req.path());
                }
                let mut r = crate::routes::error_response(&e);
                if matches!(e, AppError::Tus(TusError::Version)) {
                    r.set_header("Tus-Version", VERSION);
                }
                Reply::from(r)
            }
        };
        reply.response.set_header("Tus-Resumable", VERSION);
        cors(cfg, req, &mut reply.response);
        reply
    }

    fn route(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        id: Option<&str>,
        who: Uploader<'_>,
    ) -> Result<Reply, AppError> {
        if req.method() == "OPTIONS" {
            return Ok(options(cfg, req).into());
        }
        if req.header("tus-resumable") != Some(VERSION) {
            return Err(TusError::Version.into());
        }
        // A spec MUST: clients behind proxies that drop PATCH send it as a POST.
        let method = match (req.method(), req.header("x-http-method-override")) {
            ("POST", Some(m)) => m.trim().to_ascii_uppercase(),
            (m, _) => m.to_string(),
        };
        let id = match id {
            None if method == "POST" => return self.create(cfg, req, who),
            None => return Err(AppError::MethodNotAllowed { allow: ALLOW_ROOT }),
            Some(id) if is_upload_id(id) => id,
            Some(_) => return Err(AppError::NotFound),
        };
        self.check_owner(id, who)?;
        match method.as_str() {
            "HEAD" | "GET" => self.head(id).map(Reply::from),
            "PATCH" => self.patch(cfg, req, id),
            "DELETE" => self.terminate(id).map(Reply::from),
            _ => Err(AppError::MethodNotAllowed { allow: ALLOW_ONE }),
        }
    }

    /// POST /tus: a new upload, refused before anything is stored if its length, name or
    /// type would be; with a body (creation-with-upload), its first bytes too.
    fn create(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        who: Uploader<'_>,
    ) -> Result<Reply, AppError> {
        let owner = who.owner;
        let length = declared_length(req)?;
        if let Some(n) = length.filter(|n| *n > cfg.max_size) {
            let _ = n;
            return Err(UploadError::TooLarge {
                limit: cfg.max_size,
            }
            .into());
        }
        let raw_meta = req.header("upload-metadata").unwrap_or("").to_string();
        let meta = headers::parse_metadata(&raw_meta)?;
        let original = original_name(&meta)?;
        Ingest::begin(cfg, &self.store, original.clone())?; // the allow-list, before any byte
        let mut fields = fields_of(&meta);
        if let Some(album) = who.album {
            fields.retain(|(k, _)| k != "album");
            fields.push(("album".to_string(), album.to_string()));
        }
        // The album and expiry asked for in the metadata, checked now (applied at the end).
        crate::upload::placement::placement(cfg, &fields, crate::time::now_secs())?;
        self.check_room_for_one_more(req)?;
        let mut u = Unfinished {
            id: random_hex().map_err(AppError::Storage)?,
            length,
            offset: 0,
            original_name: original,
            metadata: raw_meta,
            fields,
            held: Vec::new(),
            mime: None,
            client: req.peer.ip().to_string(),
            expires_at: self.expires(),
            done: None,
            gps_stripped: false,
            owner: owner.to_string(),
        };
        // Streamed to a remote store, its bytes never all land on the local disk.
        let on_disk = !self.store.streams(length, cfg.hooks.scan.is_some());
        self.store.reserve_standing(length.unwrap_or(0), on_disk)?;
        if let Err(e) = self.store.catalogue().add_unfinished(&u) {
            self.store.release_standing(length.unwrap_or(0));
            return Err(AppError::Storage(std::io::Error::other(e)));
        }
        let with_body = req.header("content-type").is_some_and(is_patch_type);
        let stored = if with_body || length == Some(0) {
            let _hold = self.hold(&u.id)?;
            let checksum = checksum_of(req)?;
            self.write_body(cfg, req, &mut u, checksum)?
        } else {
            None
        };
        let mut r = Response::new(201).header("Location", format!("/tus/{}", u.id));
        if with_body {
            r.set_header("Upload-Offset", u.offset.to_string());
        }
        describe_end(&u, &mut r);
        give_delete_token(&stored, &mut r);
        Ok(Reply {
            response: r,
            stored,
        })
    }

    /// 429 when the server, or this client address, has as many unfinished uploads as allowed.
    fn check_room_for_one_more(&self, req: &Request<'_>) -> Result<(), AppError> {
        let cat = self.store.catalogue();
        let storage = |e| AppError::Storage(std::io::Error::other(e));
        let client = req.peer.ip().to_string();
        if cat.count_unfinished(Some(&client)).map_err(storage)? >= self.per_client {
            return Err(TusError::TooMany {
                limit: self.per_client,
            }
            .into());
        }
        if cat.count_unfinished(None).map_err(storage)? >= self.max_unfinished {
            return Err(TusError::TooMany {
                limit: self.max_unfinished,
            }
            .into());
        }
        Ok(())
    }

    /// An upload is another account's business: 404 to anyone but its owner and admins
    /// Anonymous uploads stay anonymous: a phone that comes back on another address resumes
    /// by the upload's URL, a 128-bit secret.
    fn check_owner(&self, id: &str, who: Uploader<'_>) -> Result<(), AppError> {
        if who.admin {
            return Ok(());
        }
        let u = self.load(id)?;
        let anonymous = |o: &str| o.starts_with("anonymous:") || o.is_empty();
        if u.owner == who.owner || (anonymous(&u.owner) && anonymous(who.owner)) {
            return Ok(());
        }
        Err(AppError::NotFound)
    }

    /// HEAD /tus/<id>: how far it is (a finished one: complete, until it expires).
    fn head(&self, id: &str) -> Result<Response, AppError> {
        let u = self.load(id)?;
        let mut r = Response::new(200)
            .header("Upload-Offset", u.offset.to_string())
            .header("Cache-Control", "no-store");
        match u.length {
            Some(n) => r.set_header("Upload-Length", n.to_string()),
            None => r.set_header("Upload-Defer-Length", "1"),
        }
        if !u.metadata.is_empty() {
            r.set_header("Upload-Metadata", u.metadata.clone());
        }
        describe_end(&u, &mut r);
        Ok(r)
    }

    /// PATCH /tus/<id>: the bytes at the upload's offset.
    fn patch(&self, cfg: &Config, req: &mut Request<'_>, id: &str) -> Result<Reply, AppError> {
        if !req.header("content-type").is_some_and(is_patch_type) {
            return Err(TusError::ContentType.into());
        }
        let offset = req
            .header("upload-offset")
            .ok_or(TusError::BadHeader("Upload-Offset"))
            .and_then(|v| parse_number(v, "Upload-Offset"))?;
        let checksum = checksum_of(req)?;
        let _hold = self.hold(id)?;
        let mut u = self.load(id)?;
        if offset != u.offset {
            return Err(TusError::OffsetMismatch { expected: u.offset }.into());
        }
        if u.done.is_some() {
            // Complete already: an empty PATCH at its end is answered, anything more is past it.
            return match req.body.declared_len() {
                Some(0) => Ok(offset_response(&u).into()),
                _ => Err(TusError::PastLength { length: u.offset }.into()),
            };
        }
        self.declare_length_late(cfg, req, &mut u)?;
        if let (Some(len), Some(n)) = (u.length, req.body.declared_len()) {
            if u.offset.saturating_add(n) > len {
                return Err(TusError::PastLength { length: len }.into());
            }
        }
        let stored = self.write_body(cfg, req, &mut u, checksum)?;
        let mut r = offset_response(&u);
        give_delete_token(&stored, &mut r);
        Ok(Reply {
            response: r,
            stored,
        })
    }

    /// creation-defer-length: a PATCH may declare the length the POST left open (once).
    fn declare_length_late(
        &self,
        cfg: &Config,
        req: &Request<'_>,
        u: &mut Unfinished,
    ) -> Result<(), AppError> {
        let Some(v) = req.header("upload-length") else {
            return Ok(());
        };
        let n = parse_number(v, "Upload-Length")?;
        match u.length {
            Some(len) if len == n => return Ok(()),
            Some(_) => return Err(TusError::BadHeader("Upload-Length").into()),
            None => {}
        }
        if n > cfg.max_size {
            return Err(UploadError::TooLarge {
                limit: cfg.max_size,
            }
            .into());
        }
        if n < u.offset {
            return Err(TusError::BadHeader("Upload-Length").into());
        }
        // Bytes already received went to the local disk: the rest follows them there.
        let on_disk = u.mime.is_some() || !self.store.streams(Some(n), cfg.hooks.scan.is_some());
        self.store.reserve_standing(n - u.offset, on_disk)?;
        u.length = Some(n);
        if let Err(e) = self.store.catalogue().set_progress(u) {
            self.store.release_standing(n - u.offset);
            return Err(AppError::Storage(std::io::Error::other(e)));
        }
        Ok(())
    }

    /// DELETE /tus/<id>: termination; its bytes are gone when this answers.
    fn terminate(&self, id: &str) -> Result<Response, AppError> {
        let _hold = self.hold(id)?;
        let u = self.load(id)?;
        self.remove(&u);
        Ok(Response::new(204))
    }
}

/// OPTIONS /tus: what this server offers (and a CORS preflight's answer).
fn options(cfg: &Config, req: &Request<'_>) -> Response {
    let mut r = Response::new(204)
        .header("Tus-Version", VERSION)
        .header("Tus-Extension", EXTENSIONS)
        .header("Tus-Max-Size", cfg.max_size.to_string())
        .header("Tus-Checksum-Algorithm", "sha1,sha256");
    if req.header("access-control-request-method").is_some() && allowed_origin(cfg, req).is_some() {
        r.set_header(
            "Access-Control-Allow-Methods",
            "POST, HEAD, PATCH, DELETE, OPTIONS",
        );
        r.set_header("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
        r.set_header("Access-Control-Max-Age", "86400");
    }
    r
}

/// The `Origin` of a request from a page `--origins` lists.
fn allowed_origin<'r>(cfg: &Config, req: &'r Request<'_>) -> Option<&'r str> {
    let origin = req.header("origin")?;
    cfg.origins
        .iter()
        .any(|o| o == origin.trim_end_matches('/'))
        .then_some(origin)
}

fn cors(cfg: &Config, req: &Request<'_>, r: &mut Response) {
    if let Some(origin) = allowed_origin(cfg, req) {
        r.set_header("Access-Control-Allow-Origin", origin.to_string());
        r.set_header("Access-Control-Expose-Headers", CORS_EXPOSE);
        r.set_header("Vary", "Origin");
    }
}

/// 204 with the offset, and the expiry while unfinished or the stored file's URL once done.
fn offset_response(u: &Unfinished) -> Response {
    let mut r = Response::new(204).header("Upload-Offset", u.offset.to_string());
    describe_end(u, &mut r);
    r
}

/// An unfinished upload's `Upload-Expires`; a finished one's `Pidrop-File-Url` (pidrop's
/// own header: where the stored file is, for the page's "open" link).
fn describe_end(u: &Unfinished, r: &mut Response) {
    match &u.done {
        Some(name) => r.set_header("Pidrop-File-Url", format!("/files/{name}")),
        None => r.set_header("Upload-Expires", expires_header(u.expires_at)),
    }
}

/// The answer that completes an upload carries the file's delete token (once):
/// `Pidrop-Delete-Token`, for `DELETE /files/<name>` with `X-Delete-Token`.
fn give_delete_token(
    stored: &Option<(std::sync::Arc<crate::storage::Meta>, String)>,
    r: &mut Response,
) {
    if let Some((_, token)) = stored {
        r.set_header("Pidrop-Delete-Token", token.clone());
    }
}

fn expires_header(at: u64) -> String {
    http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
}

fn is_patch_type(v: &str) -> bool {
    v.split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(PATCH_TYPE))
}

/// Our ids: 32 lowercase hex characters.
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `Upload-Length`, or `None` with `Upload-Defer-Length: 1`; exactly one of them.
fn declared_length(req: &Request<'_>) -> Result<Option<u64>, AppError> {
    match (
        req.header("upload-length"),
        req.header("upload-defer-length"),
    ) {
        (Some(v), None) => Ok(Some(parse_number(v, "Upload-Length")?)),
        (None, Some("1")) => Ok(None),
        (None, Some(_)) => Err(TusError::BadHeader("Upload-Defer-Length").into()),
        _ => Err(TusError::BadHeader("Upload-Length").into()),
    }
}

fn checksum_of(req: &Request<'_>) -> Result<Option<Expected>, AppError> {
    match req.header("upload-checksum") {
        Some(v) => Ok(Some(headers::parse_checksum(v)?)),
        None => Ok(None),
    }
}

/// The original name: `filename` (or Uppy's `name`) from the metadata, checked like every name.
fn original_name(meta: &[(String, Vec<u8>)]) -> Result<String, AppError> {
    let raw = ["filename", "name"]
        .iter()
        .find_map(|key| meta.iter().find(|(k, _)| k == key))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .ok_or(UploadError::BadName)?;
    Ok(validate::original_name(&raw).ok_or(UploadError::BadName)?)
}

/// Every metadata pair but the name and type becomes a field of the stored file.
fn fields_of(meta: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    meta.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "filename" | "name" | "filetype" | "type"))
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}
