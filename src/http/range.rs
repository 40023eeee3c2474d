//! The `Range` request header (RFC 9110 §14.2), single ranges only. Anything we do not serve as a
//! range (several ranges, another unit, bad syntax) is answered with the whole file, as the RFC
//! allows; a well-formed range that misses the file is 416.

/// What to send.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    Full,
    /// Inclusive first and last byte.
    Partial(u64, u64),
    Unsatisfiable,
}

pub fn parse(header: &str, len: u64) -> ByteRange {
    let h = header.trim();
    let Some(spec) = h
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("bytes="))
        .map(|_| &h[6..])
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => ByteRange::Full,
        (true, false) => match num(b) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial(len - n.min(len), len - 1),
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return ByteRange::Full;
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) if e >= start => e,
                    _ => return ByteRange::Full,
                }
            };
            if start >= len {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Partial(start, end.min(len - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRange::*;

    #[test]
    fn ranges() {
        assert_eq!(parse("bytes=0-99", 1000), Partial(0, 99));
        assert_eq!(parse("bytes=900-", 1000), Partial(900, 999));
        assert_eq!(parse("bytes=-100", 1000), Partial(900, 999));
        assert_eq!(parse("bytes=-5000", 1000), Partial(0, 999));
        assert_eq!(parse("bytes=500-99999", 1000), Partial(500, 999));
        assert_eq!(parse("BYTES=1-1", 1000), Partial(1, 1));
        assert_eq!(parse("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse("bytes=5-1", 1000), Full);
        assert_eq!(parse("bytes=0-1,5-6", 1000), Full);
        assert_eq!(parse("items=0-1", 1000), Full);
        assert_eq!(parse("bytes=x-1", 1000), Full);
        assert_eq!(parse("bytes=-", 1000), Full);
        assert_eq!(parse("bytes=99999999999999999999-", 1000), Full);
        // Past 4 GiB (u64 on 32-bit ARM too).
        assert_eq!(
            parse("bytes=5000000000-", 6_000_000_000),
            Partial(5_000_000_000, 5_999_999_999)
        );
        assert_eq!(parse("", 10), Full);
        assert_eq!(parse("bytes", 10), Full);
    }
}
