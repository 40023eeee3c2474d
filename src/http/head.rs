//! The request head: parsed with `httparse`, then checked against RFC 9112's framing rules.
//!
//! Everything that decides where a body starts and ends is decided here, once, strictly:
//! Content-Length is parsed by us as a `u64` from digits only; differing values, CL together with
//! Transfer-Encoding, and any coding other than exactly `chunked` are refused. A request whose
//! framing is in doubt is never served, so a body can never be read as a second request.

use crate::error::HttpError;

/// Limits on the head, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Request line plus header block, in bytes (also the connection buffer size).
    pub max_head: usize,
    pub max_headers: usize,
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// The path of the target, still percent-encoded, always starting with `/` (or `*`).
    pub path: String,
    pub query: Option<String>,
    headers: Vec<(String, String)>,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// The minor HTTP version: 0 or 1.
    pub minor: u8,
}

impl Head {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a head from the start of `buf`. `Ok(None)`: incomplete, read more (unless the buffer
/// is full, which `parse` turns into 414/431 itself when `buf.len() >= max_head`).
pub fn parse(buf: &[u8], limits: HeadLimits) -> Result<Option<(Head, usize)>, HttpError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head {
                let limit = limits.max_head as u64;
                return Err(if memchr::memchr(b'\n', buf).is_none() {
                    HttpError::UriTooLong { limit }
                } else {
                    HttpError::HeadersTooLarge { limit }
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::HeadersTooLarge {
                limit: limits.max_headers as u64,
            })
        }
        Err(httparse::Error::Version) => return Err(HttpError::BadRequest("unsupported version")),
        Err(_) => return Err(HttpError::BadRequest("malformed request head")),
    };
    if len > limits.max_head {
        return Err(HttpError::HeadersTooLarge {
            limit: limits.max_head as u64,
        });
    }
    let method = req.method.unwrap_or_default().to_string();
    let minor = req.version.unwrap_or(1);
    let (path, query) = split_target(req.path.unwrap_or_default(), &method)?;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::BadRequest("header value is not UTF-8"))?;
        headers.push((h.name.to_string(), value.trim().to_string()));
    }
    let framing = framing(&headers, minor)?;
    let mut expect_continue = false;
    if let Some(expect) = find(&headers, "expect") {
        if expect.eq_ignore_ascii_case("100-continue") {
            expect_continue = minor == 1;
        } else {
            return Err(HttpError::ExpectationFailed);
        }
    }
    if minor == 1
        && headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
            .count()
            != 1
    {
        return Err(HttpError::BadRequest(
            "HTTP/1.1 needs exactly one Host header",
        ));
    }
    let keep_alive = keep_alive(&headers, minor);
    Ok(Some((
        Head {
            method,
            path,
            query,
            headers,
            framing,
            keep_alive,
            minor,
            expect_continue,
        },
        len,
    )))
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// origin-form `/p?q`, absolute-form `http://host/p?q`, or `*` for OPTIONS.
fn split_target(target: &str, method: &str) -> Result<(String, Option<String>), HttpError> {
    let rest = if target.starts_with('/') {
        target
    } else if target == "*" && method == "OPTIONS" {
        return Ok(("*".to_string(), None));
    } else if let Some(after) = strip_scheme(target) {
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
            Some(i) => return Ok(("/".to_string(), Some(after[i + 1..].to_string()))),
            None => "/",
        }
    } else {
        return Err(HttpError::BadRequest(
            "request target must be a path or an absolute URL",
        ));
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    Ok(match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    })
}

fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        // `get`, not indexing: the target may have a multi-byte character at that position.
        if target.len() > scheme.len()
            && target
                .get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// RFC 9112 §6: decide the body's framing or refuse the request.
fn framing(headers: &[(String, String)], minor: u8) -> Result<Framing, HttpError> {
    let mut length: Option<u64> = None;
    let mut te: Option<String> = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            for item in value.split(',') {
                let n = parse_content_length(item.trim())?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::BadRequest("differing Content-Length values"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let joined = match te.take() {
                Some(prev) => format!("{prev},{value}"),
                None => value.clone(),
            };
            te = Some(joined);
        }
    }
    match (te, length) {
        (Some(_), Some(_)) => Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        )),
        (Some(_), None) if minor == 0 => Err(HttpError::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        (Some(te), None) if te.trim().eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        (Some(_), None) => Err(HttpError::UnsupportedTransferEncoding),
        (None, Some(0)) | (None, None) => Ok(Framing::None),
        (None, Some(n)) => Ok(Framing::Length(n)),
    }
}

/// Digits only (no sign, no space, no hex), at most what fits a `u64`.
pub fn parse_content_length(s: &str) -> Result<u64, HttpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    s.parse::<u64>()
        .map_err(|_| HttpError::BadRequest("Content-Length too large"))
}

fn keep_alive(headers: &[(String, String)], minor: u8) -> bool {
    let mut close = false;
    let mut keep = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let t = token.trim();
                close |= t.eq_ignore_ascii_case("close");
                keep |= t.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    !close && (minor == 1 || keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head: 8192,
        max_headers: 64,
    };

    fn parse_ok(s: &str) -> Head {
        match parse(s.as_bytes(), LIMITS) {
            Ok(Some((h, n))) => {
                assert_eq!(n, s.len());
                h
            }
            other => panic!("{s:?} -> {other:?}"),
        }
    }

    fn parse_err(s: &str) -> HttpError {
        match parse(s.as_bytes(), LIMITS) {
            Err(e) => e,
            other => panic!("{s:?} should fail, got {other:?}"),
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_the_whole_is_complete() {
        let s = "POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
        for i in 0..s.len() {
            assert!(
                matches!(parse(&s.as_bytes()[..i], LIMITS), Ok(None)),
                "prefix {i}"
            );
        }
        let h = parse_ok(s);
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/upload");
        assert_eq!(h.query.as_deref(), Some("x=1"));
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
    }

    #[test]
    fn content_length_rules() {
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 107374182400\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(107_374_182_400));
        // Over 4 GiB must parse on 32-bit too: it is a u64 all the way.
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000000\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5_000_000_000));
        let h =
            parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
        for bad in [
            "7, 8",
            "+7",
            "-1",
            "0x10",
            "7 7",
            "",
            "99999999999999999999",
            "1_0",
        ] {
            let s = format!("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
            assert!(matches!(parse_err(&s), HttpError::BadRequest(_)), "{bad:?}");
        }
        let s = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n";
        assert!(matches!(parse_err(s), HttpError::BadRequest(_)));
    }

    #[test]
    fn transfer_encoding_rules() {
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        for te in [
            "gzip, chunked",
            "chunked, chunked",
            "identity",
            "xchunked",
            "chunked;q=1",
        ] {
            let s = format!("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert!(
                matches!(parse_err(&s), HttpError::UnsupportedTransferEncoding),
                "{te}"
            );
        }
        let s = "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_err(s),
            HttpError::UnsupportedTransferEncoding
        ));
        let s =
            "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_err(s), HttpError::BadRequest(_)));
        let s = "PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_err(s), HttpError::BadRequest(_)));
    }

    #[test]
    fn host_expect_and_versions() {
        assert!(matches!(
            parse_err("GET / HTTP/1.1\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        let h = parse_ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = parse_ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = parse_ok("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
        assert!(matches!(
            parse_err("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
            HttpError::ExpectationFailed
        ));
        assert!(matches!(
            parse_err("GET / HTTP/2.0\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    #[test]
    fn targets() {
        let h = parse_ok("GET http://pi.local:8080/files/x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (h.path.as_str(), h.query.as_deref()),
            ("/files/x", Some("y=1"))
        );
        let h = parse_ok("GET http://pi.local HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.path, "/");
        let h = parse_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.path, "*");
        assert!(matches!(
            parse_err("GET x HTTP/1.1\r\nHost: a\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            HttpError::BadRequest(_)
        ));

        // Found by the request_head fuzz target: a multi-byte character where a scheme would
        // end made the absolute-form check slice inside the character and panic.
        assert!(matches!(
            parse_err("GET nt-Lepuёgload HTTP/1.1\r\nHost: a\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    #[test]
    fn size_limits() {
        let small = HeadLimits {
            max_head: 64,
            max_headers: 4,
        };
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(100));
        assert!(matches!(
            parse(&long_line.as_bytes()[..64], small),
            Err(HttpError::UriTooLong { .. })
        ));
        let big_headers = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(100));
        assert!(matches!(
            parse(&big_headers.as_bytes()[..64], small),
            Err(HttpError::HeadersTooLarge { .. })
        ));
        let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
        let limits = HeadLimits {
            max_head: 8192,
            max_headers: 4,
        };
        assert!(matches!(
            parse(many.as_bytes(), limits),
            Err(HttpError::HeadersTooLarge { .. })
        ));
    }
}
