//! Downloads of stored files: the right type, a safe disposition, the sandbox CSP, validators
//! (ETag, Last-Modified) with conditional requests (`http::conditional`), and single byte ranges.

use crate::error::AppError;
use crate::http::conditional::{self, Validators, Verdict};
use crate::http::range::{self, ByteRange};
use crate::http::{Payload, Request, Response};
use crate::storage::backend::Blob;
use crate::storage::{Meta, Store};
use crate::time::http_date;
use crate::validate::{inline_safe, served_type};

pub fn file(store: &Store, req: &Request<'_>, name: &str) -> Result<Response, AppError> {
    let meta = store.get(name).ok_or(AppError::NotFound)?;
    // `--s3-downloads redirect`: the client fetches from the bucket, told the type and
    // disposition pidrop would send (a redirect cannot carry nosniff or the sandbox CSP, so
    // everything not safe inline is an attachment).
    #[cfg(feature = "s3")]
    if let Some(url) = store.download_redirect(
        &meta,
        &[
            ("response-content-type".to_string(), served_type(&meta.mime)),
            (
                "response-content-disposition".to_string(),
                disposition(&meta),
            ),
        ],
    ) {
        return Ok(Response::new(302)
            .header("Location", url)
            .header("Cache-Control", "private, no-store"));
    }
    // A local file is sent with sendfile; one in a bucket is streamed from a ranged GET.
    let (file, len) = match store.is_remote() {
        true => (None, meta.size),
        false => {
            let Blob { file, len } = store.open_blob(&meta)?;
            (Some(file), len)
        }
    };
    let etag = etag(&meta, len);
    let base = |status| {
        Response::new(status)
            .header("ETag", etag.clone())
            .header("Last-Modified", http_date(meta.uploaded_time()))
            .header("Accept-Ranges", "bytes")
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Security-Policy", "sandbox")
            // A stored file never changes under its name (a new upload gets a new one).
            .header("Cache-Control", "private, max-age=31536000, immutable")
    };
    let v = Validators {
        etag: &etag,
        modified: Some(meta.uploaded_time()),
    };
    match conditional::evaluate(req, &v) {
        Verdict::Proceed => {}
        Verdict::NotModified => return Ok(base(304)),
        Verdict::Failed => return Err(AppError::PreconditionFailed),
    }
    let range = req
        .header("range")
        .filter(|_| conditional::range_applies(req, &v));
    let (status, start, count) = match range.map(|r| range::parse(r, len)) {
        None | Some(ByteRange::Full) => (200, 0, len),
        Some(ByteRange::Partial(a, b)) => (206, a, b - a + 1),
        Some(ByteRange::Unsatisfiable) => {
            return Ok(base(416).header("Content-Range", format!("bytes */{len}")));
        }
    };
    let mut resp = base(status)
        .header("Content-Type", served_type(&meta.mime))
        .header("Content-Disposition", disposition(&meta));
    if status == 206 {
        resp.set_header(
            "Content-Range",
            format!("bytes {}-{}/{}", start, start + count - 1, len),
        );
    }
    resp.payload = match file {
        Some(file) => Payload::File {
            file,
            start,
            len: count,
        },
        // A HEAD sends no body: nothing is fetched for it.
        None if req.method() == "HEAD" => Payload::Reader {
            body: Box::new(std::io::empty()),
            len: count,
        },
        None => Payload::Reader {
            body: store.read_blob(&meta, start, count)?,
            len: count,
        },
    };
    Ok(resp)
}

/// A `DELETE`'s preconditions (`If-Match`, `If-Unmodified-Since`): 412 when they fail, so a
/// client deletes only the version it saw.
pub fn check_delete(req: &Request<'_>, meta: &Meta) -> Result<(), AppError> {
    let etag = etag(meta, meta.size);
    let v = Validators {
        etag: &etag,
        modified: Some(meta.uploaded_time()),
    };
    match conditional::evaluate(req, &v) {
        Verdict::Failed => Err(AppError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// A cached thumbnail (always a JPEG pidrop made itself).
pub fn thumbnail(path: &std::path::Path) -> Result<Response, AppError> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a thumbnail replaced by a symlink is never followed out of the state dir.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|_| AppError::NotFound)?;
    let len = file.metadata().map_err(AppError::Storage)?.len();
    let mut resp = Response::new(200)
        .header("Content-Type", "image/jpeg")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", "sandbox")
        // Short: a deleted photo's thumbnail must not linger in caches.
        .header("Cache-Control", "private, max-age=300");
    resp.payload = Payload::File {
        file,
        start: 0,
        len,
    };
    Ok(resp)
}

fn etag(meta: &Meta, len: u64) -> String {
    if let Some(prefix) = meta
        .sha256
        .get(..32)
        .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        format!("\"{prefix}\"")
    } else {
        format!("\"{:x}-{:x}\"", len, meta.uploaded_at)
    }
}

/// RFC 6266: an ASCII fallback plus `filename*` in UTF-8; inline only for safe types.
pub fn disposition(meta: &Meta) -> String {
    let kind = if inline_safe(&served_type(&meta.mime)) {
        "inline"
    } else {
        "attachment"
    };
    let fallback: String = meta
        .original_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in meta.original_name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, mime: &str) -> Meta {
        Meta {
            name: "x".into(),
            original_name: name.into(),
            size: 1,
            mime: mime.into(),
            sha256: String::new(),
            uploaded_at: 0,
            fields: vec![],
            gps_stripped: false,
            owner: String::new(),
            delete_key: String::new(),
            album: String::new(),
            expires_at: None,
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition(&meta("Fête \"1\".jpg", "image/jpeg")),
            "inline; filename=\"F_te _1_.jpg\"; filename*=UTF-8''F%C3%AAte%20%221%22.jpg"
        );
        assert!(disposition(&meta("a.svg", "image/svg+xml")).starts_with("attachment;"));
        assert!(disposition(&meta("a.html", "text/html")).starts_with("attachment;"));
        assert!(disposition(&meta("a.txt", "text/plain")).starts_with("inline;"));
        assert!(disposition(&meta("a.zip", "application/zip")).starts_with("attachment;"));
    }
}
