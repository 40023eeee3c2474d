//! A tiny JSON writer — pidrop writes JSON for the API and error bodies, so a builder with
//! correct string escaping is most of what it needs — and a reader for the one JSON body it
//! takes (`POST /upload/presign`): a flat object of strings and whole numbers, strictly.

/// Appends `s` as a JSON string literal.
pub fn string_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` escaped too, so a JSON body can never close a script element.
            c if (c as u32) < 0x20 || c == '<' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds one JSON object, key by key.
pub struct Obj {
    out: String,
    empty: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        string_into(&mut self.out, k);
        self.out.push(':');
    }

    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        string_into(&mut self.out, v);
        self
    }

    pub fn opt_str(self, k: &str, v: Option<&str>) -> Obj {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn num(mut self, k: &str, v: u64) -> Obj {
        self.key(k);
        self.out.push_str(&v.to_string());
        self
    }

    /// A value that is JSON already (an object, an array, `null`, `true`).
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.out.push_str(json);
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `[a,b,c]` from values that are JSON already.
pub fn array<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// A JSON array of strings.
pub fn strings<'a, I: IntoIterator<Item = &'a str>>(items: I) -> String {
    array(items.into_iter().map(|v| {
        let mut s = String::new();
        string_into(&mut s, v);
        s
    }))
}

/// `{"k":"v",…}` from string pairs.
pub fn string_map<'a, I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> String {
    pairs
        .into_iter()
        .fold(Obj::new(), |o, (k, v)| o.str(k, v))
        .finish()
}

/// A value of a flat JSON object: a string, or a whole number that fits a `u64`.
#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Num(u64),
}

/// A flat JSON object (`{"name":"a.png","size":12}`), its members in order; `None` for
/// anything else — nesting, fractions, negatives, `true`, trailing bytes, bad escapes.
pub fn parse_flat(text: &str) -> Option<Vec<(String, Value)>> {
    let mut r = Reader {
        s: text.as_bytes(),
        at: 0,
    };
    let mut out = Vec::new();
    r.expect(b'{')?;
    if !r.eat(b'}') {
        loop {
            let key = r.string()?;
            r.expect(b':')?;
            let value = match r.peek()? {
                b'"' => Value::Str(r.string()?),
                _ => Value::Num(r.number()?),
            };
            out.push((key, value));
            if r.eat(b'}') {
                break;
            }
            r.expect(b',')?;
        }
    }
    r.skip_space();
    (r.at == r.s.len()).then_some(out)
}

struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(|c| b" \t\r\n".contains(c)) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.at += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.at]).ok()?;
        // No leading zeros (JSON), and it must fit.
        if digits.is_empty() || digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        digits.parse().ok()
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let rest = std::str::from_utf8(self.s.get(self.at..)?).ok()?;
            let c = rest.chars().next()?;
            self.at += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => out.push(self.escape()?),
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Option<char> {
        let c = *self.s.get(self.at)?;
        self.at += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if !(0xD800..0xDC00).contains(&hi) {
                    return char::from_u32(hi);
                }
                // A surrogate pair: the low half must follow.
                (self.s.get(self.at..self.at + 2)? == b"\\u").then_some(())?;
                self.at += 2;
                let lo = self.hex4()?;
                (0xDC00..0xE000).contains(&lo).then_some(())?;
                return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.s.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects_are_read_and_everything_else_refused() {
        let v = parse_flat(
            r#" { "name" : "Stra\u00dfe \ud83d\ude00\n.png", "size": 1234, "type":"" } "#,
        );
        assert_eq!(
            v,
            Some(vec![
                ("name".into(), Value::Str("Straße 😀\n.png".into())),
                ("size".into(), Value::Num(1234)),
                ("type".into(), Value::Str(String::new())),
            ])
        );
        assert_eq!(parse_flat("{}"), Some(vec![]));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a":1,}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":01}"#,
            r#"{"a":true}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\ud83d"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1} x"#,
            r#"{"a":99999999999999999999}"#,
            r#"{a:1}"#,
        ] {
            assert_eq!(parse_flat(bad), None, "{bad}");
        }
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        string_into(&mut s, "a\"b\\c\nd\u{1}<img>é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001\u003cimg>é""#);
        let o = Obj::new()
            .str("x", "1")
            .num("n", 5)
            .opt_str("t", None)
            .raw("a", &array(vec!["1".into(), "2".into()]))
            .finish();
        assert_eq!(o, r#"{"x":"1","n":5,"t":null,"a":[1,2]}"#);
        assert_eq!(string_map([("k", "v")]), r#"{"k":"v"}"#);
    }
}
