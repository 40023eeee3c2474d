//! What an upload says about itself besides its bytes: the album it goes into (`album`) and
//! how long it may live (`expires`), from its fields — a multipart text field, a PUT query
//! parameter, tus metadata — checked against the server's `--expire-after` and
//! `--max-expiry`. One function for every way in, so every way means the same.

use std::time::Duration;

use crate::config::{parse_duration_days, Config};
use crate::error::UploadError;
use crate::storage::Meta;

/// Longest album name, in characters.
const ALBUM_MAX: usize = 64;

/// Where a file goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Empty: no album.
    pub album: String,
    /// Seconds since the Unix epoch; `None`: never.
    pub expires_at: Option<u64>,
}

/// An album name as given: trimmed, 1 to `ALBUM_MAX` characters, no control characters.
pub fn album_name(raw: &str) -> Option<&str> {
    let a = raw.trim();
    let ok = !a.is_empty() && a.chars().count() <= ALBUM_MAX && !a.chars().any(char::is_control);
    ok.then_some(a)
}

/// The placement `fields` ask for at `now` (seconds): the album, and the lifetime — the
/// shortest of what the upload asks, `--expire-after` and `--max-expiry`.
pub fn placement(
    cfg: &Config,
    fields: &[(String, String)],
    now: u64,
) -> Result<Placement, UploadError> {
    let field = |k: &str| fields.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v);
    let album = match field("album").map(|a| a.trim()) {
        None | Some("") => String::new(),
        Some(a) => album_name(a).ok_or(UploadError::BadAlbum)?.to_string(),
    };
    let asked = match field("expires").map(|e| e.trim()) {
        None | Some("") => None,
        Some(e) => Some(
            parse_duration_days(e)
                .filter(|d| !d.is_zero())
                .ok_or(UploadError::BadExpiry)?,
        ),
    };
    let lifetime: Option<Duration> = [asked, cfg.expire_after, cfg.max_expiry]
        .into_iter()
        .flatten()
        .min()
        // `--max-expiry` alone caps what is asked; it gives nothing a lifetime by itself.
        .filter(|_| asked.is_some() || cfg.expire_after.is_some());
    Ok(Placement {
        album,
        expires_at: lifetime.map(|d| now.saturating_add(d.as_secs())),
    })
}

impl Placement {
    /// Writes itself into a file's record.
    pub fn apply(&self, m: &mut Meta) {
        m.album.clone_from(&self.album);
        m.expires_at = self.expires_at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(expire_after: Option<u64>, max_expiry: Option<u64>) -> Config {
        let crate::config::Command::Run(mut c) =
            crate::config::parse(Vec::<String>::new(), |_| None).expect("defaults")
        else {
            panic!("defaults make a server");
        };
        c.expire_after = expire_after.map(Duration::from_secs);
        c.max_expiry = max_expiry.map(Duration::from_secs);
        *c
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expiry(c: &Config, fields: &[(&str, &str)]) -> Result<Option<u64>, UploadError> {
        placement(c, &f(fields), 1000).map(|p| p.expires_at)
    }

    #[test]
    fn lifetimes_are_the_shortest_of_asked_server_and_cap() {
        assert_eq!(expiry(&cfg(None, None), &[]), Ok(None));
        assert_eq!(
            expiry(&cfg(None, None), &[("expires", "1h")]),
            Ok(Some(4600))
        );
        assert_eq!(expiry(&cfg(Some(60), None), &[]), Ok(Some(1060)));
        assert_eq!(
            expiry(&cfg(Some(60), None), &[("expires", "7d")]),
            Ok(Some(1060))
        );
        assert_eq!(expiry(&cfg(None, Some(120)), &[]), Ok(None));
        assert_eq!(
            expiry(&cfg(None, Some(120)), &[("expires", "1h")]),
            Ok(Some(1120))
        );
        assert_eq!(
            expiry(&cfg(None, Some(120)), &[("expires", "30")]),
            Ok(Some(1030))
        );
        for bad in ["soon", "0", "-1h", "1y"] {
            let got = expiry(&cfg(None, None), &[("expires", bad)]);
            assert_eq!(got, Err(UploadError::BadExpiry), "{bad}");
        }
    }

    #[test]
    fn album_names_are_trimmed_and_bounded() {
        let a = |v: &str| placement(&cfg(None, None), &f(&[("album", v)]), 0).map(|p| p.album);
        assert_eq!(a(" Hochzeit Müller "), Ok("Hochzeit Müller".to_string()));
        assert_eq!(a(""), Ok(String::new()));
        assert_eq!(a(&"x".repeat(64)), Ok("x".repeat(64)));
        assert_eq!(a(&"x".repeat(65)), Err(UploadError::BadAlbum));
        assert_eq!(a("a\nb"), Err(UploadError::BadAlbum));
    }
}
