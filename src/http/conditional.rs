//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range`, evaluated in the order §13.2.2 gives, against a
//! resource's entity tag and modification time.
//!
//! Strong comparison for `If-Match` and `If-Range`, weak for `If-None-Match`. A date that does
//! not parse makes its header ignored, as the RFC asks. Used by downloads, deletes and the
//! page's assets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Request;
use crate::time::parse_http_date;

/// What a conditional request's headers say to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve (or act) as usual.
    Proceed,
    /// 304: the client's copy is current (GET/HEAD only).
    NotModified,
    /// 412: a precondition failed; nothing was done.
    Failed,
}

/// A resource's validators: a strong entity tag (with its quotes) and, when it has one, the
/// time it was last modified (compared in whole seconds, as HTTP dates carry it).
pub struct Validators<'a> {
    pub etag: &'a str,
    pub modified: Option<SystemTime>,
}

impl Validators<'_> {
    fn modified_secs(&self) -> Option<u64> {
        let t = self.modified?;
        Some(
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
        )
    }

    fn not_modified_since(&self, date: &str) -> Option<bool> {
        Some(self.modified_secs()? <= parse_http_date(date)?)
    }
}

/// Steps 1–4 of RFC 9110 §13.2.2.
pub fn evaluate(req: &Request<'_>, v: &Validators<'_>) -> Verdict {
    let read = matches!(req.method(), "GET" | "HEAD");
    if let Some(im) = req.header("if-match") {
        if !matches_any(im, v.etag, strong_eq) {
            return Verdict::Failed;
        }
    } else if let Some(ius) = req.header("if-unmodified-since") {
        if v.not_modified_since(ius) == Some(false) {
            return Verdict::Failed;
        }
    }
    if let Some(inm) = req.header("if-none-match") {
        if matches_any(inm, v.etag, weak_eq) {
            return if read {
                Verdict::NotModified
            } else {
                Verdict::Failed
            };
        }
    } else if read {
        if let Some(ims) = req.header("if-modified-since") {
            if v.not_modified_since(ims) == Some(true) {
                return Verdict::NotModified;
            }
        }
    }
    Verdict::Proceed
}

/// Step 5: whether a `Range` may be honoured. Without `If-Range`, yes; with it, only when it
/// names the current representation exactly — a strong tag that matches, or the exact
/// modification date. Otherwise the whole file is sent (200).
pub fn range_applies(req: &Request<'_>, v: &Validators<'_>) -> bool {
    let Some(ir) = req.header("if-range") else {
        return true;
    };
    let ir = ir.trim();
    if ir.starts_with('"') || ir.starts_with("W/") {
        return strong_eq(ir, v.etag);
    }
    v.modified_secs().is_some() && parse_http_date(ir) == v.modified_secs()
}

/// `*` or a comma-separated list of entity tags, any of which equals `etag` under `eq`.
fn matches_any(list: &str, etag: &str, eq: fn(&str, &str) -> bool) -> bool {
    let list = list.trim();
    list == "*" || list.split(',').any(|t| eq(t.trim(), etag))
}

/// Strong comparison: both strong, same opaque tag.
fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

/// Weak comparison: same opaque tag, either may be weak.
fn weak_eq(a: &str, b: &str) -> bool {
    a.strip_prefix("W/").unwrap_or(a) == b.strip_prefix("W/").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        assert!(strong_eq("\"a\"", "\"a\""));
        assert!(!strong_eq("W/\"a\"", "\"a\""));
        assert!(weak_eq("W/\"a\"", "\"a\""));
        assert!(!weak_eq("\"b\"", "\"a\""));
        assert!(matches_any(" \"x\", W/\"a\" ", "\"a\"", weak_eq));
        assert!(!matches_any("\"x\", W/\"a\"", "\"a\"", strong_eq));
        assert!(matches_any("*", "\"a\"", strong_eq));
    }
}
