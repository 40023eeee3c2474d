//! A tiny JSON writer: pidrop only ever writes JSON (the API and error bodies), so a builder with
//! correct string escaping is all it needs.

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

#[cfg(test)]
mod tests {
    use super::*;

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
