//! The tus request headers that carry more than a number: `Upload-Metadata` (comma-separated
//! `key base64value` pairs) and `Upload-Checksum` (`algorithm base64digest`), with the few
//! lines of base64 they need. Client input, so strict and bounded: a malformed header is a
//! 400, never a panic (fuzzed: `fuzz/fuzz_targets/tus_headers.rs`).

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::TusError;

/// Metadata pairs one upload may carry.
pub const MAX_PAIRS: usize = 64;

/// `Upload-Metadata`: keys (non-empty, ASCII without spaces or commas, unique) with values
/// (base64, possibly absent). Order kept.
pub fn parse_metadata(header: &str) -> Result<Vec<(String, Vec<u8>)>, TusError> {
    let bad = TusError::BadHeader("Upload-Metadata");
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in header.split(',') {
        let pair = pair.trim_matches(|c| c == ' ' || c == '\t');
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (
                k,
                decode_base64(v.trim()).ok_or(TusError::BadHeader("Upload-Metadata"))?,
            ),
            None => (pair, Vec::new()),
        };
        let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !key_ok || pairs.iter().any(|(k, _)| k == key) || pairs.len() == MAX_PAIRS {
            return Err(bad);
        }
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// The digest a PATCH body must have.
pub enum Expected {
    Sha1([u8; 20], Sha1),
    Sha256([u8; 32], Sha256),
}

impl Expected {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Expected::Sha1(_, h) => h.update(data),
            Expected::Sha256(_, h) => h.update(data),
        }
    }

    /// Whether what was fed matches.
    pub fn matches(self) -> bool {
        match self {
            Expected::Sha1(want, h) => h.finalize().as_slice() == want,
            Expected::Sha256(want, h) => h.finalize().as_slice() == want,
        }
    }
}

/// `Upload-Checksum: sha1 <base64>` or `sha256 <base64>`.
pub fn parse_checksum(header: &str) -> Result<Expected, TusError> {
    let bad = || TusError::BadHeader("Upload-Checksum");
    let (algo, digest) = header.trim().split_once(' ').ok_or_else(bad)?;
    let digest = decode_base64(digest.trim()).ok_or_else(bad)?;
    match algo.to_ascii_lowercase().as_str() {
        "sha1" => Ok(Expected::Sha1(
            digest.try_into().map_err(|_| bad())?,
            Sha1::new(),
        )),
        "sha256" => Ok(Expected::Sha256(
            digest.try_into().map_err(|_| bad())?,
            Sha256::new(),
        )),
        _ => Err(TusError::UnknownAlgorithm),
    }
}

/// A length or offset header: decimal digits only, as `Content-Length` (no sign, no spaces
/// inside, at most what fits a `u64`).
pub fn parse_number(value: &str, header: &'static str) -> Result<u64, TusError> {
    crate::http::head::parse_content_length(value.trim()).map_err(|_| TusError::BadHeader(header))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard base64 (RFC 4648 §4), padding optional; `None` for anything else.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    let body = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    if body.len() % 4 == 1 || (body.len() != s.len() && !s.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_what_is_not() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            b"\xff\x00\xfe",
        ] {
            let e = encode_base64(data);
            assert_eq!(decode_base64(&e).as_deref(), Some(data), "{e}");
            assert_eq!(
                decode_base64(e.trim_end_matches('=')).as_deref(),
                Some(data)
            );
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        for bad in ["Z", "Zm9v!", "Zm=9", "Zm8===", "Zg=", "é"] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_pairs_keep_order_and_refuse_duplicates_and_junk() {
        let m = parse_metadata(
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential, filetype aW1hZ2UvcG5n",
        )
        .expect("parse");
        assert_eq!(
            m[0],
            ("filename".into(), b"world_domination_plan.pdf".to_vec())
        );
        assert_eq!(m[1], ("is_confidential".into(), Vec::new()));
        assert_eq!(m[2], ("filetype".into(), b"image/png".to_vec()));
        assert!(parse_metadata("").expect("empty").is_empty());
        for bad in ["a Zm9v,a YmFy", "a !!", "a Zm9v extra"] {
            assert!(parse_metadata(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_PAIRS).map(|i| format!("k{i}")).collect();
        assert!(parse_metadata(&many.join(",")).is_err());
    }

    #[test]
    fn checksums_match_only_their_body() {
        // sha1("hello") and sha256("hello"), base64.
        let mut c = parse_checksum("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=").expect("sha1");
        c.update(b"hel");
        c.update(b"lo");
        assert!(c.matches());
        let mut c =
            parse_checksum("sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=").expect("sha256");
        c.update(b"hellO");
        assert!(!c.matches());
        assert!(matches!(
            parse_checksum("md5 XrY7u+Ae7tCTyyK7j1rNww=="),
            Err(TusError::UnknownAlgorithm)
        ));
        assert!(matches!(
            parse_checksum("sha1 Zm9v"),
            Err(TusError::BadHeader(_))
        ));
        assert!(matches!(
            parse_checksum("sha1"),
            Err(TusError::BadHeader(_))
        ));
        assert_eq!(parse_number("12", "x").ok(), Some(12));
        for bad in ["", "-1", "+1", "1 2", "99999999999999999999999"] {
            assert!(parse_number(bad, "x").is_err(), "{bad}");
        }
    }
}
