//! The `Content-Disposition` header of a form part: the field name and the file name, decoded
//! the way real clients encode them.
//!
//! - RFC 7578 quoted-string parameters, with what browsers really send (WHATWG: `"` as `%22`,
//!   CR and LF as `%0D` / `%0A`, other bytes raw UTF-8);
//! - curl's `--form-escape` backslash escapes (`\"`, `\\`), while a backslash before anything
//!   else stays literal, so IE's `C:\Users\me\a.png` survives for `original_name` to trim;
//! - RFC 8187 `filename*=UTF-8''%E2%82%AC.txt`, which wins over `filename`.

/// The parameters pidrop uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Disposition {
    pub name: Option<String>,
    /// The file name as sent (not yet reduced to its last path component).
    pub filename: Option<String>,
}

/// Parses `form-data; name="x"; filename="y"`. `None` if the type is not `form-data`.
pub fn parse(value: &[u8]) -> Option<Disposition> {
    let mut params = Params { s: value, i: 0 };
    let kind = params.token();
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return None;
    }
    let mut d = Disposition::default();
    let mut extended: Option<String> = None;
    while let Some((key, raw)) = params.next_param() {
        if key.eq_ignore_ascii_case(b"name") {
            d.name = Some(decode_browser(&raw));
        } else if key.eq_ignore_ascii_case(b"filename") {
            d.filename = Some(decode_browser(&raw));
        } else if key.eq_ignore_ascii_case(b"filename*") {
            extended = decode_rfc8187(&raw);
        }
    }
    if extended.is_some() {
        d.filename = extended;
    }
    Some(d)
}

struct Params<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Params<'a> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }

    fn token(&mut self) -> &'a [u8] {
        self.skip_ws();
        let start = self.i;
        while self.i < self.s.len() && !matches!(self.s[self.i], b';' | b'=' | b' ' | b'\t') {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// The next `key=value`; quoted values are unquoted (escapes resolved), tokens kept.
    fn next_param(&mut self) -> Option<(&'a [u8], Vec<u8>)> {
        loop {
            self.skip_ws();
            if self.i >= self.s.len() {
                return None;
            }
            if self.s[self.i] == b';' {
                self.i += 1;
                continue;
            }
            let key = self.token();
            self.skip_ws();
            if self.i >= self.s.len() || self.s[self.i] != b'=' {
                // A bare word without a value: skip it.
                if key.is_empty() {
                    self.i += 1;
                }
                continue;
            }
            self.i += 1;
            self.skip_ws();
            let value = if self.s.get(self.i) == Some(&b'"') {
                self.quoted()
            } else {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b';' {
                    self.i += 1;
                }
                self.s[start..self.i].trim_ascii_end().to_vec()
            };
            return Some((key, value));
        }
    }

    fn quoted(&mut self) -> Vec<u8> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let b = self.s[self.i];
            self.i += 1;
            match b {
                b'"' => return out,
                b'\\' if matches!(self.s.get(self.i), Some(b'"') | Some(b'\\')) => {
                    out.push(self.s[self.i]);
                    self.i += 1;
                }
                _ => out.push(b),
            }
        }
        out // unterminated: take what there is
    }
}

/// WHATWG form encoding: only `%22`, `%0D` and `%0A` are escapes; everything else is literal
/// (raw UTF-8; invalid bytes become U+FFFD).
fn decode_browser(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let esc = raw.get(i + 1..i + 3).map(|e| e.to_ascii_uppercase());
            let decoded = match esc.as_deref() {
                Some(b"22") => Some(b'"'),
                Some(b"0D") => Some(b'\r'),
                Some(b"0A") => Some(b'\n'),
                _ => None,
            };
            if let Some(d) = decoded {
                out.push(d);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 8187 `charset'lang'pct-encoded`: UTF-8 or ISO-8859-1.
fn decode_rfc8187(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut it = s.splitn(3, '\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let encoded = it.next()?;
    let bytes = percent_decode(encoded.as_bytes())?;
    if charset.eq_ignore_ascii_case("utf-8") {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

/// Strict percent-decoding; `None` on a broken escape.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = (*s.get(i + 1)? as char).to_digit(16)?;
            let lo = (*s.get(i + 2)? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filename(v: &str) -> Option<String> {
        parse(v.as_bytes()).and_then(|d| d.filename)
    }

    #[test]
    fn names_as_clients_send_them() {
        let d = parse(b"form-data; name=\"file\"; filename=\"a b.png\"").expect("form-data");
        assert_eq!(d.name.as_deref(), Some("file"));
        assert_eq!(d.filename.as_deref(), Some("a b.png"));
        assert_eq!(
            filename("form-data; name=f; filename=plain.txt"),
            Some("plain.txt".into())
        );
        assert_eq!(
            filename("Form-Data; NAME=\"f\"; FILENAME=\"x.txt\""),
            Some("x.txt".into())
        );
        // WHATWG escapes from Chrome/Firefox.
        assert_eq!(
            filename("form-data; name=f; filename=\"a%22b%0D%0Ac.txt\""),
            Some("a\"b\r\nc.txt".into())
        );
        // Other percent signs are literal.
        assert_eq!(
            filename("form-data; name=f; filename=\"100%.txt\""),
            Some("100%.txt".into())
        );
        assert_eq!(
            filename("form-data; name=f; filename=\"50%25.txt\""),
            Some("50%25.txt".into())
        );
        // curl --form-escape.
        assert_eq!(
            filename("form-data; name=f; filename=\"a\\\"b\\\\c.txt\""),
            Some("a\"b\\c.txt".into())
        );
        // IE's full path keeps its backslashes here; original_name trims it later.
        assert_eq!(
            filename("form-data; name=f; filename=\"C:\\Users\\me\\photo.png\""),
            Some("C:\\Users\\me\\photo.png".into())
        );
        // Raw UTF-8.
        assert_eq!(
            filename("form-data; name=f; filename=\"日本.txt\""),
            Some("日本.txt".into())
        );
        // RFC 8187 wins.
        assert_eq!(
            filename(
                "form-data; name=f; filename=\"euro.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt"
            ),
            Some("€ rates.txt".into())
        );
        assert_eq!(
            filename("form-data; name=f; filename*=iso-8859-1'en'%E9t%E9.txt"),
            Some("été.txt".into())
        );
        // A semicolon inside quotes is part of the name.
        assert_eq!(
            filename("form-data; name=f; filename=\"a;b.txt\""),
            Some("a;b.txt".into())
        );
        assert_eq!(parse(b"attachment; filename=\"x\""), None);
        assert_eq!(filename("form-data; name=\"f\""), None);
    }

    #[test]
    fn malformed_values_do_not_panic() {
        for v in [
            "",
            ";",
            "form-data;",
            "form-data; =",
            "form-data; name=\"",
            "form-data; filename*=UTF-8''%G1",
            "form-data; filename=\"%",
            "form-data; filename=\"%2",
            "form-data; a; b; =c",
        ] {
            let _ = parse(v.as_bytes());
        }
    }
}
