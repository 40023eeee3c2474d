//! A PATCH body (or a creation-with-upload POST's) on its way into a resumable upload: through
//! the same `Ingest` as every other upload (limits, content check, blob), then either the
//! upload's new offset made durable — blob fsynced, then the catalogue row — or, at the last
//! byte, the file committed.
//!
//! What is kept when a body breaks off: what arrived, made durable and acknowledged by the
//! next HEAD (a client resumes from there). With `Upload-Checksum`, nothing of a body that was
//! not checked whole: the offset stays and the bytes past it are cut off at the next write.

use std::sync::Arc;

use super::headers::Expected;
use super::Tus;
use crate::config::Config;
use crate::error::{AppError, TusError, UploadError};
use crate::http::Request;
use crate::storage::{Meta, ThisRequest, Unfinished};
use crate::upload::{pump, Ingest};

impl Tus {
    /// Feeds the request body into upload `u` (held by the caller) and records the result.
    /// Returns the stored file when this body completed it.
    pub(super) fn write_body(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        u: &mut Unfinished,
        mut checksum: Option<Expected>,
    ) -> Result<Option<(Arc<Meta>, String)>, AppError> {
        // Where the upload will stand once this body is in: a backend that streams may send
        // what makes whole parts straight on — unless the body is checked only at its end.
        let request = ThisRequest {
            ends_at: req.body.declared_len().map(|n| u.offset.saturating_add(n)),
            checked_at_end: checksum.is_some(),
        };
        let mut file = self.resume_ingest(cfg, u)?.this_request(request);
        let pumped = match checksum.as_mut() {
            Some(c) => {
                let mut feed = |d: &[u8]| c.update(d);
                pump(&self.store, &mut req.body, &mut file, Some(&mut feed))
            }
            None => pump(&self.store, &mut req.body, &mut file, None),
        };
        let verified = checksum.is_none_or(Expected::matches);
        match pumped {
            Err(e) if refuses_content(&e) => {
                file.disown();
                self.remove(u);
                Err(e)
            }
            Err(e) => {
                if verified {
                    self.save(&mut file, u)?;
                } else {
                    self.settle(&mut file, u);
                }
                Err(match e {
                    AppError::Upload(UploadError::TooLarge { limit }) => {
                        TusError::PastLength { length: limit }.into()
                    }
                    e => e,
                })
            }
            Ok(()) if !verified => {
                self.settle(&mut file, u);
                Err(TusError::ChecksumMismatch.into())
            }
            Ok(()) if Some(file.size()) == u.length => self.finish(cfg, file, u).map(Some),
            Ok(()) => self.save(&mut file, u).map(|()| None),
        }
    }

    /// The upload's `Ingest`, where it left off: its held first bytes, or its blob reopened
    /// at the acknowledged offset; with its standing reservation lent to it.
    fn resume_ingest<'s>(
        &'s self,
        cfg: &'s Config,
        u: &Unfinished,
    ) -> Result<Ingest<'s>, AppError> {
        let standing = u.length.map_or(0, |l| l.saturating_sub(u.offset));
        let temp = match u.mime {
            Some(_) => match self
                .store
                .reopen_temp(&u.id, u.offset, self.take_digest(&u.id))
            {
                Ok(t) => Some(t),
                Err(e) => {
                    // Its bytes are gone (removed by hand, or a commit cut off by a crash):
                    // nothing to resume; the client must start again.
                    log::warn!("upload {} cannot be resumed: {e}", u.id);
                    self.remove(u);
                    return Err(TusError::Expired.into());
                }
            },
            None => None,
        };
        Ok(Ingest::begin(cfg, &self.store, u.original_name.clone())?
            .limit(u.length.unwrap_or(u64::MAX))
            .expect(u.length)
            .kept(&u.id, standing)
            .resume(&u.held, temp, u.mime.clone(), u.gps_stripped))
    }

    /// Makes what arrived durable and records it as the upload's offset (keeping the hash
    /// state over it for the next request).
    fn save(&self, file: &mut Ingest<'_>, u: &mut Unfinished) -> Result<(), AppError> {
        let synced = file.sync();
        if synced.is_ok() {
            u.offset = file.size();
            u.held = file.held().to_vec();
            u.mime = file.mime().map(str::to_string);
            u.gps_stripped = file.gps_stripped();
            if let Some(state) = file.suspend_digest().filter(|d| d.len == u.offset) {
                self.keep_digest(&u.id, state);
            }
        }
        u.expires_at = self.expires();
        self.settle(file, u);
        synced?;
        self.store
            .catalogue()
            .set_progress(u)
            .map_err(|e| AppError::Storage(std::io::Error::other(e)))
    }

    /// Leaves exactly what the upload still needs reserved: `length - offset`.
    fn settle(&self, file: &mut Ingest<'_>, u: &Unfinished) {
        let left = file.disown();
        let needed = u.length.map_or(0, |l| l.saturating_sub(u.offset));
        if left > needed {
            self.store.release_standing(left - needed);
        } else {
            self.store.restore_standing(needed - left);
        }
    }

    /// The last byte arrived: the file is checked (if it was short), hashed, committed and
    /// listed; the upload is marked done in the same transaction.
    fn finish(
        &self,
        cfg: &Config,
        file: Ingest<'_>,
        u: &mut Unfinished,
    ) -> Result<(Arc<Meta>, String), AppError> {
        let mut token = String::new();
        let committed = file.finish().and_then(|mut staged| {
            // An upload link's album was written into the fields at creation.
            let by = crate::upload::By {
                owner: u.owner.clone(),
                album: None,
            };
            crate::upload::label(cfg, &mut staged, &u.fields, &by)?;
            token = staged.delete_token.clone();
            crate::upload::commit(&self.store, vec![staged], &by, Some(&u.id))
        });
        match committed {
            Ok(mut stored) => {
                let m = stored.pop().ok_or(AppError::Internal)?;
                u.offset = m.size;
                u.held.clear();
                u.done = Some(m.name.clone());
                Ok((m, token))
            }
            Err(e) => {
                // Its reservation went with the file; a finish that failed cannot be resumed.
                u.length = None;
                self.remove(u);
                Err(e)
            }
        }
    }
}

/// The content check refused the file: the upload ends.
fn refuses_content(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Upload(
            UploadError::ContentMismatch { .. }
                | UploadError::NotText { .. }
                | UploadError::TypeNotAllowed { .. }
        )
    )
}
