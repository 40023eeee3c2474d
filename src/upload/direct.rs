//! Direct browser-to-bucket uploads (`--s3-direct`), pidrop's side: `POST /upload/presign`
//! checks what it can before a byte moves (name, allow-list, size, room under `--max-total`,
//! album and expiry) and answers a presigned POST whose policy pins the key, the exact size and
//! the type; the browser sends the file to the bucket; `POST /upload/confirm/<token>` checks
//! the object (size and type from a HEAD, the first 8 KiB against the content check, as for
//! any upload) and commits it — or removes it and says why. The bytes never pass through the
//! Pi: no sha256, no GPS stripping, no `--scan-cmd` (the settings refuse those together).
//!
//! What was presigned waits here, in memory, for its confirmation (a bounded number, each for
//! twice the policy's time): a node restarted in between forgets it, and the bucket's sweep
//! removes the object (`storage/s3direct.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{commit, label, placement, By};
use crate::config::Config;
use crate::error::{AppError, UploadError};
use crate::json::{parse_flat, Value};
use crate::storage::{random_hex, Meta, Store};
use crate::time::now_secs;
use crate::validate;

/// Most presigned uploads waiting for their confirmation at once.
const MAX_PENDING: usize = 1024;
/// S3 takes at most 5 GiB in one POST; larger files go through pidrop (tus).
pub const MAX_DIRECT: u64 = 5 << 30;

/// What was presigned, until it is confirmed.
struct Pending {
    name: String,
    original: String,
    ext: String,
    len: u64,
    mime: &'static str,
    by: By,
    fields: Vec<(String, String)>,
    until: u64,
}

/// Presigned uploads by their confirmation token.
#[derive(Default)]
pub struct Direct {
    pending: Mutex<HashMap<String, Pending>>,
}

/// A presigned upload, for the answer: where to POST, the form's fields, and the token.
pub struct Presigned {
    pub url: String,
    pub fields: Vec<(String, String)>,
    pub token: String,
}

impl Direct {
    /// `POST /upload/presign` with `{"name","size","type"}` (and the album or expiry in the
    /// query, as for a PUT).
    pub fn presign(
        &self,
        cfg: &Config,
        store: &Store,
        body: &str,
        fields: Vec<(String, String)>,
        by: &By,
    ) -> Result<Presigned, AppError> {
        let (original, len) = announced(body)?;
        let ext = validate::extension(&original);
        if !cfg.allow.allows(&ext) {
            return Err(UploadError::TypeNotAllowed { extension: ext }.into());
        }
        let limit = cfg.max_size.min(MAX_DIRECT);
        if len > limit {
            return Err(UploadError::TooLarge { limit }.into());
        }
        placement::placement(cfg, &fields, now_secs())?;
        let mime = validate::declared_type(&ext);
        let (name, url, form) = store
            .presign_direct(len, mime, &ext)
            .ok_or(AppError::NotFound)??;
        let token = random_hex().map_err(AppError::Storage)?;
        let until = now_secs() + 2 * crate::storage::DIRECT_POLICY_SECS;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_secs();
        pending.retain(|_, p| p.until >= now);
        if pending.len() >= MAX_PENDING {
            return Err(AppError::Busy);
        }
        pending.insert(
            token.clone(),
            Pending {
                name,
                original,
                ext,
                len,
                mime,
                by: by.clone(),
                fields,
                until,
            },
        );
        Ok(Presigned {
            url,
            fields: form,
            token,
        })
    }

    /// `POST /upload/confirm/<token>`: the file the browser sent, checked and committed (with
    /// its delete token), or refused and removed. Only its uploader may confirm it.
    pub fn confirm(
        &self,
        cfg: &Config,
        store: &Store,
        token: &str,
        by: &By,
    ) -> Result<(Arc<Meta>, String), AppError> {
        let p = self.take(token, by)?;
        let (temp, head) = match store.adopt_direct(&p.name, p.len, p.mime) {
            Ok(adopted) => adopted,
            Err(AppError::Storage(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                // Not there yet: the browser may still be sending; it can ask again.
                self.put_back(token, p);
                return Err(UploadError::DirectNotArrived.into());
            }
            Err(AppError::Storage(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(UploadError::DirectMismatch(e.to_string()).into());
            }
            Err(e) => return Err(e),
        };
        // Refused here, `temp` is dropped unplaced: the object is removed.
        let mime = validate::check(&cfg.allow, &p.ext, &head)?;
        let mut staged = store.stage(temp, p.original, mime, &p.ext)?;
        label(cfg, &mut staged, &p.fields, &p.by)?;
        let delete_token = staged.delete_token.clone();
        let meta = commit(store, vec![staged], &p.by, None)?
            .pop()
            .ok_or(AppError::Internal)?;
        Ok((meta, delete_token))
    }

    /// The pending upload of `token`, taken out (one confirmation at a time); 404 when there
    /// is none, or it is another caller's, or its time is up.
    fn take(&self, token: &str, by: &By) -> Result<Pending, AppError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.remove(token) {
            Some(p) if p.by.owner == by.owner && p.until >= now_secs() => Ok(p),
            Some(p) if p.by.owner != by.owner => {
                pending.insert(token.to_string(), p);
                Err(AppError::NotFound)
            }
            _ => Err(AppError::NotFound),
        }
    }

    fn put_back(&self, token: &str, p: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(token.to_string(), p);
    }
}

/// The original name and size a presign request announces (`type` is the browser's guess and
/// not needed: the policy pins the type pidrop stores for the name's extension).
fn announced(body: &str) -> Result<(String, u64), AppError> {
    const EXPECTED: &str = r#"expected {"name":"…","size":…,"type":"…"}"#;
    let members = parse_flat(body).ok_or(AppError::BadForm(EXPECTED))?;
    let (mut name, mut size) = (None, None);
    for (k, v) in members {
        match (k.as_str(), v) {
            ("name", Value::Str(s)) => name = Some(s),
            ("size", Value::Num(n)) => size = Some(n),
            ("type", Value::Str(_)) => {}
            _ => return Err(AppError::BadForm(EXPECTED)),
        }
    }
    let original = validate::original_name(&name.ok_or(AppError::BadForm(EXPECTED))?)
        .ok_or(UploadError::BadName)?;
    Ok((original, size.ok_or(AppError::BadForm(EXPECTED))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presign_request_names_a_file_and_its_size() {
        let ok = announced(r#"{"name":"Straße.png","size":1234,"type":"image/png"}"#);
        assert_eq!(ok.ok(), Some(("Straße.png".to_string(), 1234)));
        let ok = announced(r#"{"size":0,"name":"empty.txt"}"#);
        assert_eq!(ok.ok(), Some(("empty.txt".to_string(), 0)));
        for bad in [
            r#"{"name":"a.png"}"#,
            r#"{"size":1}"#,
            r#"{"name":"a.png","size":"1"}"#,
            r#"{"name":"a.png","size":1,"album":"x"}"#,
            r#"{"name":"","size":1}"#,
            "name=a.png&size=1",
        ] {
            assert!(announced(bad).is_err(), "{bad}");
        }
    }
}
