//! Every error pidrop can answer with, and the one place that maps an error to an HTTP status,
//! a stable machine-readable code and extra JSON fields.
//!
//! Layers keep their own small enums (`HttpError` for the protocol, `MultipartError` for the body
//! format, `UploadError` for refusals and storage); `AppError` gathers them so `?` works across
//! layers. `Display` texts are lower-case-free sentences a person can read in the upload page.

use std::fmt;
use std::io;

/// Protocol-level faults found by the HTTP core before or while reading a request.
#[derive(Debug)]
pub enum HttpError {
    /// Malformed request head or framing; the text says what.
    BadRequest(&'static str),
    UriTooLong {
        limit: u64,
    },
    HeadersTooLarge {
        limit: u64,
    },
    /// The head did not arrive within the header deadline, or a body read idled too long.
    Timeout,
    /// The body arrived slower than `--min-rate` over a whole window.
    TooSlow,
    /// A Transfer-Encoding other than exactly `chunked`.
    UnsupportedTransferEncoding,
    /// An `Expect` other than `100-continue`.
    ExpectationFailed,
    /// Chunked framing broken or over a limit.
    BadChunk(&'static str),
    /// The peer went away or the socket failed.
    Io(io::Error),
}

/// Faults in a multipart/form-data body.
#[derive(Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// Content-Type is not multipart/form-data or has no usable boundary.
    BadContentType(&'static str),
    /// The body does not follow RFC 7578 / RFC 2046; the text says where.
    Malformed(&'static str),
    /// A part's header block is larger than the buffer.
    PartHeadersTooLarge {
        limit: u64,
    },
    TooManyParts {
        limit: u64,
    },
    FieldTooLarge {
        limit: u64,
    },
    /// base64 / quoted-printable part encodings (deprecated by RFC 7578) are refused, not stored.
    UnsupportedEncoding,
    /// The body ended before the closing boundary.
    Truncated,
}

/// Why one uploaded file was refused or could not be stored.
#[derive(Debug, PartialEq)]
pub enum UploadError {
    TooLarge {
        limit: u64,
    },
    RequestTooLarge {
        limit: u64,
    },
    TypeNotAllowed {
        extension: String,
    },
    ContentMismatch {
        extension: String,
        detected: String,
    },
    NotText {
        extension: String,
    },
    BadName,
    /// The request carried no file at all.
    NoFile,
    InsufficientStorage {
        free: u64,
        min_free: u64,
    },
    /// The stored files would pass `--max-total` (bytes stored and reserved, the limit).
    QuotaExceeded {
        used: u64,
        max: u64,
    },
    /// An `album` field that cannot name an album.
    BadAlbum,
    /// An `expires` field that is not a duration.
    BadExpiry,
    /// `--scan-cmd` refused the file: the first line of what it said.
    Vetoed(String),
    /// `--scan-cmd` could not give an answer (timed out, could not run): refused, fail closed.
    ScanUnavailable(String),
    /// A direct upload confirmed before its file is in the bucket.
    DirectNotArrived,
    /// A direct upload whose object is not what was presigned (size, type): removed.
    DirectMismatch(String),
}

/// A fault of pidrop's own found while reading a body (the tee/splice path's bookkeeping, its
/// pipes): carried inside an `io::Error` through `Read`, answered 500 and logged, never taken
/// for the client's mistake.
#[derive(Debug)]
pub struct Fault {
    what: &'static str,
    source: Option<io::Error>,
}

impl Fault {
    pub fn with(what: &'static str, source: io::Error) -> Fault {
        Fault {
            what,
            source: Some(source),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

impl std::error::Error for Fault {}

/// An `io::Error` that stands for a [`Fault`] of ours.
pub fn fault(what: &'static str) -> io::Error {
    io::Error::other(Fault { what, source: None })
}

/// What the tus protocol (resumable uploads, `/tus`) refuses.
#[derive(Debug)]
pub enum TusError {
    /// No `Tus-Resumable: 1.0.0` (412).
    Version,
    /// A tus header is missing or malformed (400).
    BadHeader(&'static str),
    /// `Upload-Offset` is not the upload's offset (409).
    OffsetMismatch { expected: u64 },
    /// A PATCH body that is not `application/offset+octet-stream` (415).
    ContentType,
    /// Another request is writing to this upload right now (423).
    Locked,
    /// `Upload-Checksum` does not match the body (460): the offset did not move.
    ChecksumMismatch,
    /// `Upload-Checksum` names an algorithm we do not offer (400).
    UnknownAlgorithm,
    /// The upload expired (410).
    Expired,
    /// Too many unfinished uploads, in all or from this address (429).
    TooMany { limit: u64 },
    /// The body goes past `Upload-Length` (413): nothing beyond it is kept.
    PastLength { length: u64 },
}

impl fmt::Display for TusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TusError::Version => write!(
                f,
                "this server speaks tus 1.0.0 (send Tus-Resumable: 1.0.0)"
            ),
            TusError::BadHeader(h) => write!(f, "missing or malformed {h} header"),
            TusError::OffsetMismatch { expected } => {
                write!(
                    f,
                    "Upload-Offset does not match the upload's offset {expected}"
                )
            }
            TusError::ContentType => {
                write!(
                    f,
                    "a PATCH body must be Content-Type: application/offset+octet-stream"
                )
            }
            TusError::Locked => write!(f, "another request is writing to this upload"),
            TusError::ChecksumMismatch => {
                write!(
                    f,
                    "the body does not match Upload-Checksum; nothing of it was kept"
                )
            }
            TusError::UnknownAlgorithm => {
                write!(f, "Upload-Checksum algorithm not supported (sha1, sha256)")
            }
            TusError::Expired => write!(f, "this upload expired; start a new one"),
            TusError::TooMany { limit } => {
                write!(f, "too many unfinished uploads (at most {limit})")
            }
            TusError::PastLength { length } => {
                write!(f, "the data goes past Upload-Length ({length} bytes)")
            }
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug)]
pub enum AppError {
    Http(HttpError),
    Multipart(MultipartError),
    Upload(UploadError),
    Tus(TusError),
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A state-changing request from a foreign origin (CSRF).
    ForbiddenOrigin,
    /// No credentials, or credentials that do not verify, for something that needs them (401).
    Unauthorized,
    /// A known caller whose role does not allow this (403).
    Forbidden,
    /// A share link that expired or was revoked (410).
    LinkGone,
    /// An upload link whose number of files is used up (403).
    LinkUsedUp,
    /// Too many failed logins from this address (or everywhere): 429 with `Retry-After`.
    TooManyFailures {
        retry_after: u64,
    },
    /// A method pidrop does not implement anywhere (501).
    NotImplemented,
    /// A conditional request's precondition failed (412); nothing was done.
    PreconditionFailed,
    /// A query parameter that cannot be used (e.g. a cursor we never handed out).
    BadQuery(&'static str),
    /// A small form (login, links) that cannot be used.
    BadForm(&'static str),
    /// A `Host` this server does not answer to (DNS rebinding, or a mistyped proxy setting).
    MisdirectedHost,
    /// A filesystem failure that is not the client's fault.
    Storage(io::Error),
    /// The upload directory is not on the mount `--require-mount` names (a USB disk unplugged).
    NotMounted(String),
    /// Every worker is busy and the queue is full.
    Busy,
    /// One client address holds too many connections already.
    TooManyConnections {
        limit: u64,
    },
    /// A bug: a panic in a handler.
    Internal,
    /// A fault of ours found on the body path (see [`Fault`]).
    Fault(Fault),
}

impl AppError {
    /// The one mapping from an error to an HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Http(e) => match e {
                HttpError::BadRequest(_) | HttpError::BadChunk(_) | HttpError::Io(_) => 400,
                HttpError::UriTooLong { .. } => 414,
                HttpError::HeadersTooLarge { .. } => 431,
                HttpError::Timeout | HttpError::TooSlow => 408,
                HttpError::UnsupportedTransferEncoding => 501,
                HttpError::ExpectationFailed => 417,
            },
            AppError::Multipart(e) => match e {
                MultipartError::BadContentType(_) => 415,
                MultipartError::UnsupportedEncoding => 415,
                MultipartError::PartHeadersTooLarge { .. } => 431,
                MultipartError::FieldTooLarge { .. } | MultipartError::TooManyParts { .. } => 413,
                MultipartError::Malformed(_) | MultipartError::Truncated => 400,
            },
            AppError::Upload(e) => match e {
                UploadError::TooLarge { .. } | UploadError::RequestTooLarge { .. } => 413,
                UploadError::TypeNotAllowed { .. }
                | UploadError::ContentMismatch { .. }
                | UploadError::NotText { .. } => 415,
                UploadError::BadName | UploadError::NoFile => 400,
                UploadError::InsufficientStorage { .. } | UploadError::QuotaExceeded { .. } => 507,
                UploadError::BadAlbum | UploadError::BadExpiry => 400,
                UploadError::Vetoed(_) => 422,
                UploadError::ScanUnavailable(_) => 503,
                UploadError::DirectNotArrived => 409,
                UploadError::DirectMismatch(_) => 422,
            },
            AppError::Tus(e) => match e {
                TusError::Version => 412,
                TusError::BadHeader(_) | TusError::UnknownAlgorithm => 400,
                TusError::OffsetMismatch { .. } => 409,
                TusError::ContentType => 415,
                TusError::Locked => 423,
                TusError::ChecksumMismatch => 460,
                TusError::Expired => 410,
                TusError::TooMany { .. } => 429,
                TusError::PastLength { .. } => 413,
            },
            AppError::NotFound => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::ForbiddenOrigin | AppError::Forbidden => 403,
            AppError::Unauthorized => 401,
            AppError::LinkGone => 410,
            AppError::LinkUsedUp => 403,
            AppError::TooManyFailures { .. } => 429,
            AppError::NotImplemented => 501,
            AppError::PreconditionFailed => 412,
            AppError::BadQuery(_) | AppError::BadForm(_) => 400,
            AppError::MisdirectedHost => 421,
            AppError::Busy | AppError::NotMounted(_) => 503,
            AppError::TooManyConnections { .. } => 429,
            AppError::Storage(e) if is_no_space(e) => 507,
            AppError::Storage(_) | AppError::Internal | AppError::Fault(_) => 500,
        }
    }

    /// A stable code for scripts and the page.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Http(HttpError::Timeout) => "timeout",
            AppError::Http(HttpError::TooSlow) => "too_slow",
            AppError::Http(HttpError::UriTooLong { .. }) => "uri_too_long",
            AppError::Http(HttpError::HeadersTooLarge { .. }) => "headers_too_large",
            AppError::Http(HttpError::UnsupportedTransferEncoding) => "not_implemented",
            AppError::Http(HttpError::ExpectationFailed) => "expectation_failed",
            AppError::Http(_) => "bad_request",
            AppError::Multipart(MultipartError::BadContentType(_)) => "unsupported_media_type",
            AppError::Multipart(MultipartError::UnsupportedEncoding) => "unsupported_encoding",
            AppError::Multipart(MultipartError::FieldTooLarge { .. }) => "field_too_large",
            AppError::Multipart(MultipartError::TooManyParts { .. }) => "too_many_parts",
            AppError::Multipart(_) => "malformed_multipart",
            AppError::Upload(UploadError::TooLarge { .. }) => "too_large",
            AppError::Upload(UploadError::RequestTooLarge { .. }) => "request_too_large",
            AppError::Upload(UploadError::TypeNotAllowed { .. }) => "type_not_allowed",
            AppError::Upload(UploadError::ContentMismatch { .. }) => "content_mismatch",
            AppError::Upload(UploadError::NotText { .. }) => "content_mismatch",
            AppError::Upload(UploadError::BadName) => "bad_name",
            AppError::Upload(UploadError::NoFile) => "no_file",
            AppError::Upload(UploadError::InsufficientStorage { .. }) => "insufficient_storage",
            AppError::Upload(UploadError::QuotaExceeded { .. }) => "quota_exceeded",
            AppError::Upload(UploadError::BadAlbum) => "bad_album",
            AppError::Upload(UploadError::BadExpiry) => "bad_expiry",
            AppError::Upload(UploadError::Vetoed(_)) => "rejected_by_scan",
            AppError::Upload(UploadError::ScanUnavailable(_)) => "scan_unavailable",
            AppError::Upload(UploadError::DirectNotArrived) => "not_in_bucket",
            AppError::Upload(UploadError::DirectMismatch(_)) => "bucket_object_mismatch",
            AppError::Tus(e) => match e {
                TusError::Version => "tus_version",
                TusError::BadHeader(_) => "bad_header",
                TusError::OffsetMismatch { .. } => "offset_mismatch",
                TusError::ContentType => "unsupported_media_type",
                TusError::Locked => "locked",
                TusError::ChecksumMismatch => "checksum_mismatch",
                TusError::UnknownAlgorithm => "checksum_algorithm",
                TusError::Expired => "expired",
                TusError::TooMany { .. } => "too_many_uploads",
                TusError::PastLength { .. } => "past_length",
            },
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::ForbiddenOrigin => "forbidden_origin",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden => "forbidden",
            AppError::LinkGone => "link_gone",
            AppError::LinkUsedUp => "link_used_up",
            AppError::TooManyFailures { .. } => "too_many_failures",
            AppError::NotImplemented => "not_implemented",
            AppError::PreconditionFailed => "precondition_failed",
            AppError::BadQuery(_) => "bad_query",
            AppError::BadForm(_) => "bad_form",
            AppError::MisdirectedHost => "misdirected_host",
            AppError::Busy => "busy",
            AppError::NotMounted(_) => "not_mounted",
            AppError::TooManyConnections { .. } => "too_many_connections",
            AppError::Storage(e) if is_no_space(e) => "insufficient_storage",
            AppError::Storage(_) => "storage_error",
            AppError::Internal | AppError::Fault(_) => "internal",
        }
    }

    /// A numeric limit worth showing to the client, if the error has one.
    pub fn limit(&self) -> Option<u64> {
        match self {
            AppError::Http(HttpError::UriTooLong { limit })
            | AppError::Http(HttpError::HeadersTooLarge { limit })
            | AppError::Multipart(MultipartError::PartHeadersTooLarge { limit })
            | AppError::Multipart(MultipartError::TooManyParts { limit })
            | AppError::Multipart(MultipartError::FieldTooLarge { limit })
            | AppError::Upload(UploadError::TooLarge { limit })
            | AppError::Upload(UploadError::RequestTooLarge { limit })
            | AppError::TooManyConnections { limit }
            | AppError::Tus(TusError::TooMany { limit })
            | AppError::Tus(TusError::PastLength { length: limit }) => Some(*limit),
            AppError::Upload(UploadError::InsufficientStorage { min_free, .. }) => Some(*min_free),
            AppError::Upload(UploadError::QuotaExceeded { max, .. }) => Some(*max),
            _ => None,
        }
    }
}

fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::UriTooLong { limit } => {
                write!(f, "the request line is longer than {limit} bytes")
            }
            HttpError::HeadersTooLarge { limit } => {
                write!(f, "the request headers are larger than allowed ({limit})")
            }
            HttpError::Timeout => write!(f, "the request did not arrive in time"),
            HttpError::TooSlow => write!(
                f,
                "the upload arrived slower than the server's minimum rate (--min-rate)"
            ),
            HttpError::UnsupportedTransferEncoding => {
                write!(f, "only Transfer-Encoding: chunked is supported")
            }
            HttpError::ExpectationFailed => write!(f, "only Expect: 100-continue is supported"),
            HttpError::BadChunk(why) => write!(f, "bad chunked body: {why}"),
            HttpError::Io(e) => write!(f, "connection error: {e}"),
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::BadContentType(why) => write!(f, "expected multipart/form-data: {why}"),
            MultipartError::Malformed(why) => write!(f, "malformed multipart body: {why}"),
            MultipartError::PartHeadersTooLarge { limit } => {
                write!(f, "a part's headers are larger than {limit} bytes")
            }
            MultipartError::TooManyParts { limit } => {
                write!(f, "the form has more than {limit} parts")
            }
            MultipartError::FieldTooLarge { limit } => {
                write!(f, "a text field is larger than {limit} bytes")
            }
            MultipartError::UnsupportedEncoding => write!(
                f,
                "Content-Transfer-Encoding is not supported in multipart/form-data (RFC 7578)"
            ),
            MultipartError::Truncated => {
                write!(
                    f,
                    "the upload ended before its closing boundary; nothing was kept"
                )
            }
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::TooLarge { limit } => {
                write!(
                    f,
                    "the file is larger than the limit of {}",
                    human_size(*limit)
                )
            }
            UploadError::RequestTooLarge { limit } => {
                write!(
                    f,
                    "the upload is larger than the limit of {}",
                    human_size(*limit)
                )
            }
            UploadError::TypeNotAllowed { extension } if extension.is_empty() => {
                write!(f, "files without an extension are not allowed here")
            }
            UploadError::TypeNotAllowed { extension } => {
                write!(f, "files of type .{extension} are not allowed here")
            }
            UploadError::ContentMismatch {
                extension,
                detected,
            } => write!(
                f,
                "the file is named .{extension} but its content is {detected}; it was refused"
            ),
            UploadError::NotText { extension } => {
                write!(
                    f,
                    "the file is named .{extension} but its content is not text"
                )
            }
            UploadError::BadName => write!(f, "the file name is empty or invalid"),
            UploadError::NoFile => write!(f, "the request contained no file"),
            UploadError::InsufficientStorage { free, min_free } => write!(
                f,
                "not enough free space on the server ({} free, {} must stay free)",
                human_size(*free),
                human_size(*min_free)
            ),
            UploadError::QuotaExceeded { used, max } => write!(
                f,
                "the server's storage limit of {} for all uploads would be passed ({} used); nothing was stored",
                human_size(*max),
                human_size(*used)
            ),
            UploadError::BadAlbum => write!(
                f,
                "an album name is 1 to 64 characters, without control characters"
            ),
            UploadError::BadExpiry => {
                write!(f, "expires must be a duration such as 1h, 12h or 7d")
            }
            UploadError::Vetoed(why) if why.is_empty() => {
                write!(f, "the server's scanner refused the file")
            }
            UploadError::Vetoed(why) => write!(f, "the server's scanner refused the file: {why}"),
            UploadError::ScanUnavailable(why) => write!(
                f,
                "the server's scanner could not check the file ({why}); it was not stored"
            ),
            UploadError::DirectNotArrived => {
                write!(f, "the file is not in the bucket (yet): send it first")
            }
            UploadError::DirectMismatch(why) => write!(
                f,
                "the file in the bucket is not the one announced ({why}); it was removed"
            ),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Http(e) => e.fmt(f),
            AppError::Multipart(e) => e.fmt(f),
            AppError::Upload(e) => e.fmt(f),
            AppError::Tus(e) => e.fmt(f),
            AppError::NotFound => write!(f, "no such file or page"),
            AppError::MethodNotAllowed { allow } => {
                write!(f, "this method is not allowed here (allowed: {allow})")
            }
            AppError::Unauthorized => write!(
                f,
                "this needs an account: log in (curl -u NAME, or Authorization: Bearer TOKEN)"
            ),
            AppError::Forbidden => write!(f, "your account's role does not allow this"),
            AppError::LinkGone => write!(f, "this link has expired or was revoked"),
            AppError::LinkUsedUp => write!(
                f,
                "this upload link has taken all the files it may; ask for a new one"
            ),
            AppError::TooManyFailures { retry_after } => write!(
                f,
                "too many failed logins from this address; try again in {retry_after} s"
            ),
            AppError::ForbiddenOrigin => {
                write!(
                    f,
                    "requests from another site are not allowed (Origin check)"
                )
            }
            AppError::BadQuery(why) => write!(f, "bad query: {why}"),
            AppError::BadForm(why) => write!(f, "bad form: {why}"),
            AppError::NotImplemented => write!(f, "this method is not implemented"),
            AppError::PreconditionFailed => write!(
                f,
                "the file is not the version the request names (If-Match / If-Unmodified-Since)"
            ),
            AppError::MisdirectedHost => write!(
                f,
                "this server does not answer to that host name (add it with --hosts)"
            ),
            AppError::Storage(e) if is_no_space(e) => write!(f, "the server's disk is full"),
            AppError::Storage(e) => write!(f, "the server could not store the file: {e}"),
            AppError::Busy => write!(f, "the server is busy; try again in a moment"),
            AppError::NotMounted(why) => write!(f, "uploads are off: {why}"),
            AppError::TooManyConnections { limit } => {
                write!(f, "too many connections from your address (limit {limit})")
            }
            AppError::Internal => write!(f, "internal server error"),
            AppError::Fault(e) => write!(f, "internal server error ({e})"),
        }
    }
}

impl std::error::Error for AppError {}
impl std::error::Error for HttpError {}
impl std::error::Error for MultipartError {}

impl From<HttpError> for AppError {
    fn from(e: HttpError) -> Self {
        AppError::Http(e)
    }
}
impl From<MultipartError> for AppError {
    fn from(e: MultipartError) -> Self {
        AppError::Multipart(e)
    }
}
impl From<TusError> for AppError {
    fn from(e: TusError) -> Self {
        AppError::Tus(e)
    }
}

impl From<UploadError> for AppError {
    fn from(e: UploadError) -> Self {
        AppError::Upload(e)
    }
}

/// "512 MiB"-style sizes for messages.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut whole = n;
    let mut rem = 0;
    while whole >= 1024 && unit < UNITS.len() - 1 {
        rem = whole % 1024;
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 || rem == 0 {
        format!("{whole} {}", UNITS[unit])
    } else {
        format!("{whole}.{} {}", rem * 10 / 1024, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(512 << 20), "512 MiB");
        assert_eq!(human_size(1536 << 20), "1.5 GiB");
        assert_eq!(human_size(u64::MAX), "16777215.9 TiB");
    }

    #[test]
    fn disk_full_is_507_not_500() {
        let e = AppError::Storage(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.status(), 507);
        assert_eq!(AppError::Storage(io::Error::other("x")).status(), 500);
    }
}
