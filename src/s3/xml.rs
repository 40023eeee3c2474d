//! The little XML S3 answers with (listings, upload ids, errors, lifecycle rules), read by
//! finding elements: S3's documents are flat and machine-written, so a parser would be a
//! dependency for nothing. Values are entity-decoded; what pidrop sends is escaped.

/// The raw inner text of every `<tag>…</tag>` in `xml`, in order (not nested in itself).
pub fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else { break };
        out.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    out
}

/// The decoded text of the first `<tag>` in `xml`.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    elements(xml, tag).first().map(|t| unescape(t))
}

/// `&amp;` and friends, and numeric references, decoded.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

/// Text made safe inside an XML element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_entities() {
        let xml = "<L><Contents><Key>a&amp;b</Key><Size>3</Size></Contents><Contents><Key>&#x263A;&lt;</Key><Size>4</Size></Contents><IsTruncated>false</IsTruncated></L>";
        let items = elements(xml, "Contents");
        assert_eq!(items.len(), 2);
        assert_eq!(text(items[0], "Key").as_deref(), Some("a&b"));
        assert_eq!(text(items[1], "Key").as_deref(), Some("☺<"));
        assert_eq!(text(xml, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(text(xml, "Missing"), None);
        assert_eq!(unescape("x &bogus; y &"), "x &bogus; y &");
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
