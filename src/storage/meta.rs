//! What pidrop knows of a stored file ([`Meta`]), the escaped line format of its text fields in
//! the catalogue, and pidrop 0.1's metadata sidecars (`.pidrop/meta/<name>.meta`), read once to
//! import them. The sidecar format is kept — `key<TAB>value` lines, escaped, closed by an `end`
//! line, so a torn or damaged file is recognised as such rather than half-read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What pidrop knows of one stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub original_name: String,
    pub size: u64,
    pub mime: String,
    pub sha256: String,
    /// Nanoseconds since the Unix epoch.
    pub uploaded_at: u128,
    pub fields: Vec<(String, String)>,
    /// GPS tags were removed from the file as it came in (`--strip-gps`).
    pub gps_stripped: bool,
    /// Who uploaded it: `user:NAME`, `token:NAME`, `anonymous:ADDRESS`; empty if not known
    /// (uploaded before pidrop recorded owners).
    pub owner: String,
    /// SHA-256 (hex) of the delete token handed to the uploader; empty if none.
    pub delete_key: String,
    /// The album it was uploaded into; empty for none.
    pub album: String,
    /// When it stops being listed and served (seconds since the Unix epoch); `None`: never.
    pub expires_at: Option<u64>,
}

impl Meta {
    /// A record with just a name (and nothing known of the file yet).
    pub fn named(name: &str) -> Meta {
        Meta {
            name: name.to_string(),
            original_name: name.to_string(),
            size: 0,
            mime: "application/octet-stream".to_string(),
            sha256: String::new(),
            uploaded_at: 0,
            fields: Vec::new(),
            gps_stripped: false,
            owner: String::new(),
            delete_key: String::new(),
            album: String::new(),
            expires_at: None,
        }
    }

    /// Whether it has expired at `now` (seconds since the Unix epoch).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn uploaded_time(&self) -> SystemTime {
        let nanos = u64::try_from(self.uploaded_at).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A file's text fields as the catalogue keeps them: `key<TAB>value` lines, escaped.
pub(super) fn encode_fields(fields: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in fields {
        s.push_str(&format!("{}\t{}\n", escape(k), escape(v)));
    }
    s
}

pub(super) fn decode_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

const META_MAGIC: &str = "pidrop-meta 1";

/// Metadata as lines of `key<TAB>value` (fields: `field<TAB>key<TAB>value`), escaped: the
/// format of pidrop 0.1's sidecars, written now only by tests.
#[cfg(test)]
pub(super) fn encode_meta(m: &Meta) -> String {
    let mut s = format!(
        "{META_MAGIC}\noriginal_name\t{}\nsize\t{}\ntype\t{}\nsha256\t{}\nuploaded_at\t{}\n",
        escape(&m.original_name),
        m.size,
        escape(&m.mime),
        m.sha256,
        m.uploaded_at
    );
    for (k, v) in &m.fields {
        s.push_str(&format!("field\t{}\t{}\n", escape(k), escape(v)));
    }
    s.push_str("end\n");
    s
}

pub(super) fn decode_meta(name: &str, text: &str) -> Option<Meta> {
    let mut lines = text.lines();
    if lines.next()? != META_MAGIC {
        return None;
    }
    let mut m = Meta {
        original_name: String::new(),
        mime: String::new(),
        ..Meta::named(name)
    };
    let mut complete = false;
    for line in lines {
        let mut parts = line.splitn(3, '\t');
        match (parts.next()?, parts.next(), parts.next()) {
            ("original_name", Some(v), None) => m.original_name = unescape(v),
            ("size", Some(v), None) => m.size = v.parse().ok()?,
            ("type", Some(v), None) => m.mime = unescape(v),
            ("sha256", Some(v), None) => m.sha256 = v.to_string(),
            ("uploaded_at", Some(v), None) => m.uploaded_at = v.parse().ok()?,
            ("field", Some(k), Some(v)) => m.fields.push((unescape(k), unescape(v))),
            ("end", None, None) => complete = true,
            _ => return None,
        }
    }
    complete.then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_damage_is_detected() {
        let m = Meta {
            name: "0123456789abcdef0123456789abcdef.jpg".into(),
            original_name: "tab\there\nnew\\line ü.jpg".into(),
            size: 5_000_000_000,
            mime: "image/jpeg".into(),
            sha256: "ab".repeat(32),
            uploaded_at: 1_763_700_000_123_456_789,
            fields: vec![
                ("user_id".into(), "12345".into()),
                ("note".into(), "a\tb\nc".into()),
            ],
            gps_stripped: false,
            owner: String::new(),
            delete_key: String::new(),
            album: String::new(),
            expires_at: None,
        };
        let text = encode_meta(&m);
        assert_eq!(decode_meta(&m.name, &text), Some(m.clone()));
        // Truncated (no end line) or garbage: damaged.
        assert_eq!(decode_meta(&m.name, &text[..text.len() - 4]), None);
        assert_eq!(decode_meta(&m.name, "garbage"), None);
        assert_eq!(
            decode_meta(&m.name, &text.replace("size\t5000000000", "size\tx")),
            None
        );
    }
}
