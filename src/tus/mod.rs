//! Resumable uploads: the tus 1.0 protocol (<https://tus.io/protocols/resumable-upload>) at
//! `/tus`, with the core and the creation, creation-with-upload, creation-defer-length,
//! termination, expiration and checksum extensions.
//!
//! pidrop's guarantees hold across requests: the name is checked against the allow-list at
//! creation, the first bytes against the content check however they are split across PATCHes
//! (held in the catalogue until there are enough), nothing is written past the declared
//! length, and an offset is acknowledged only once it is durable (the blob fsynced, then the
//! catalogue row). The bytes are a kept blob of the backend (`.pidrop/resume/<id>.part`
//! locally), never under a stored name and never listed until the last byte arrives; then the
//! file is committed like any upload, its row and the upload's "done" mark in one transaction.
//!
//! `protocol.rs` has the request handlers, `write.rs` a PATCH body's way into the blob.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::Config;
use crate::error::{AppError, TusError};
use crate::http::Response;
use crate::storage::{DigestState, Meta, Store, Unfinished};

pub mod headers;
mod protocol;
mod write;

/// The protocol version spoken.
pub const VERSION: &str = "1.0.0";
/// The extensions offered.
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";

/// Resumable uploads: the limits, and which uploads a request is writing to right now.
pub struct Tus {
    store: Arc<Store>,
    expiry: Duration,
    max_unfinished: u64,
    per_client: u64,
    /// Ids with a request writing to (or ending) them: a second one gets 423.
    busy: Mutex<HashSet<String>>,
    /// The sha256 state of unfinished uploads between their requests (at most one per
    /// unfinished upload, ~200 bytes each): the next PATCH continues it instead of the whole
    /// file being read back at the end. Lost on restart; then the file is read back once.
    digests: Mutex<HashMap<String, DigestState>>,
}

/// What a tus request did: the response, and the file it completed (with its delete token),
/// if it did.
pub struct Reply {
    pub response: Response,
    pub stored: Option<(Arc<Meta>, String)>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply {
            response,
            stored: None,
        }
    }
}

/// Who makes a tus request: the owner its uploads get, and whether it may touch anyone's.
#[derive(Clone, Copy)]
pub struct Uploader<'a> {
    pub owner: &'a str,
    pub admin: bool,
    /// The album an upload link holds its uploads to.
    pub album: Option<&'a str>,
}

/// A request's hold on one upload (see `Tus::busy`), let go when dropped.
struct Hold<'a> {
    busy: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        busy.remove(&self.id);
    }
}

use crate::time::now_secs;

impl Tus {
    /// Reserves again what unfinished uploads still have to receive (reservations live in
    /// memory; the catalogue knows what they were).
    pub fn new(cfg: &Config, store: Arc<Store>) -> Tus {
        match store.catalogue().still_to_come() {
            Ok(n) => store.restore_standing(n),
            Err(e) => log::error!("could not read the unfinished uploads: {e}"),
        }
        Tus {
            store,
            expiry: cfg.resume_expiry,
            max_unfinished: cfg.max_resumable,
            per_client: (cfg.max_resumable / 4).max(1),
            busy: Mutex::new(HashSet::new()),
            digests: Mutex::new(HashMap::new()),
        }
    }

    /// Claims `id` for this request; 423 if another request has it.
    fn hold(&self, id: &str) -> Result<Hold<'_>, AppError> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !busy.insert(id.to_string()) {
            return Err(TusError::Locked.into());
        }
        Ok(Hold {
            busy: &self.busy,
            id: id.to_string(),
        })
    }

    /// The upload `id`: 404 if unknown, 410 once expired (even before the sweeper came).
    fn load(&self, id: &str) -> Result<Unfinished, AppError> {
        let u = self
            .store
            .catalogue()
            .unfinished(id)
            .map_err(|e| AppError::Storage(std::io::Error::other(e)))?
            .ok_or(AppError::NotFound)?;
        if u.expires_at < now_secs() {
            return Err(TusError::Expired.into());
        }
        Ok(u)
    }

    fn expires(&self) -> u64 {
        now_secs().saturating_add(self.expiry.as_secs().max(1))
    }

    fn take_digest(&self, id: &str) -> Option<DigestState> {
        let mut d = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        d.remove(id)
    }

    fn keep_digest(&self, id: &str, state: DigestState) {
        let mut d = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        d.insert(id.to_string(), state);
    }

    /// Forgets an upload: its row, its blob, its standing reservation.
    fn remove(&self, u: &Unfinished) {
        self.take_digest(&u.id);
        if u.done.is_none() {
            if let Some(len) = u.length {
                self.store.release_standing(len.saturating_sub(u.offset));
            }
            if let Err(e) = self.store.discard_kept(&u.id) {
                log::warn!("could not remove the data of upload {}: {e}", u.id);
            }
        }
        if let Err(e) = self.store.catalogue().remove_unfinished(&u.id) {
            log::warn!("could not forget upload {}: {e}", u.id);
        }
    }

    /// Removes uploads whose time ran out (unfinished: with their bytes; finished: only the
    /// row that answered HEAD). Returns how many.
    pub fn sweep(&self) -> usize {
        let expired = match self.store.catalogue().expired_uploads(now_secs(), 256) {
            Ok(e) => e,
            Err(e) => {
                log::error!("could not look for expired uploads: {e}");
                return 0;
            }
        };
        let mut swept = 0;
        for u in expired {
            // One being written right now is left for the next round.
            let Ok(_hold) = self.hold(&u.id) else {
                continue;
            };
            self.remove(&u);
            if u.done.is_none() {
                log::info!(
                    "removed unfinished upload {} ({:?}, {} bytes received): expired",
                    u.id,
                    u.original_name,
                    u.offset
                );
            }
            swept += 1;
        }
        swept
    }

    /// How often the sweeper looks: a quarter of the expiry, between 1 s and a minute.
    pub fn sweep_interval(&self) -> Duration {
        (self.expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}
