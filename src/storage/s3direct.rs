//! Direct browser-to-bucket uploads (`--s3-direct`), the bucket's side: a presigned POST puts
//! the browser's file under `<prefix>.pidrop/incoming/<stored name>` — out of every node's
//! listing (`sync` passes over `.pidrop/`), so nothing unchecked is ever listed or served —
//! and, once pidrop has checked it (its size and type from a HEAD, its first 8 KiB by a ranged
//! GET for the content check), `place` copies it inside the bucket to its stored name with its
//! description and removes the incoming object. Refused or never confirmed, it is removed:
//! at once when pidrop refuses it, by `sweep` once it is older than any confirmation could be.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::backend::{BlobWriter, DigestState};
use super::s3dir::{s3_io, write_described};
use super::Meta;
use crate::s3::Bucket;
use crate::sys::Pipe;

/// Where direct uploads wait for their check, under the prefix.
const INCOMING: &str = ".pidrop/incoming/";
/// How long a presigned POST is accepted (seconds).
pub const POLICY_SECS: u64 = 3600;
/// An incoming object older than this (seconds) can no longer be confirmed (a confirmation is
/// taken up to twice the policy's time): a leftover, removed by `sweep`.
const STALE_SECS: u64 = 3 * POLICY_SECS;

fn incoming_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{INCOMING}{name}")
}

/// The URL and form fields of a browser's upload of exactly `len` bytes of `mime` for `name`.
pub fn presign(
    bucket: &Bucket,
    prefix: &str,
    name: &str,
    len: u64,
    mime: &str,
) -> (String, Vec<(String, String)>) {
    bucket.presign_post(&incoming_key(prefix, name), len, mime, POLICY_SECS)
}

/// Takes over the direct upload of `name`: `NotFound` if it is not in the bucket,
/// `InvalidData` if its size or type is not what was presigned; else its first bytes (up to
/// 8 KiB, for the content check) and the writer that places it.
pub fn adopt(
    bucket: &Arc<Bucket>,
    prefix: &str,
    name: &str,
    len: u64,
    mime: &str,
) -> io::Result<(Vec<u8>, Box<dyn BlobWriter>)> {
    let key = incoming_key(prefix, name);
    let headers = bucket
        .head_object(&key)
        .map_err(s3_io)?
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    let mut adopted = Adopted {
        bucket: bucket.clone(),
        prefix: prefix.to_string(),
        key,
        len,
        done: false,
    };
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.trim())
    };
    let size: Option<u64> = get("content-length").and_then(|v| v.parse().ok());
    if size != Some(len) || get("content-type") != Some(mime) {
        // Dropped unplaced: the object goes.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the bucket holds {size:?} bytes of {:?}",
                get("content-type")
            ),
        ));
    }
    let head = adopted.first_bytes(crate::validate::SNIFF_LEN as u64)?;
    Ok((head, Box::new(adopted) as Box<dyn BlobWriter>))
}

/// Removes incoming objects too old to be confirmed (a refused browser, a node restarted
/// before the confirmation). Returns how many.
pub fn sweep(bucket: &Bucket, prefix: &str) -> io::Result<usize> {
    sweep_older_than(bucket, prefix, STALE_SECS)
}

/// Removes incoming objects written more than `secs` ago.
fn sweep_older_than(bucket: &Bucket, prefix: &str, secs: u64) -> io::Result<usize> {
    let under = format!("{prefix}{INCOMING}");
    let now = bucket.server_now();
    let mut removed = 0;
    let mut token: Option<String> = None;
    loop {
        let page = bucket.list(&under, token.as_deref()).map_err(s3_io)?;
        for obj in page.objects.iter().filter(|o| o.modified + secs < now) {
            bucket.delete_object(&obj.key).map_err(s3_io)?;
            removed += 1;
        }
        token = page.next;
        if token.is_none() {
            return Ok(removed);
        }
    }
}

/// A direct upload in the bucket, checked, on its way to its stored name.
struct Adopted {
    bucket: Arc<Bucket>,
    prefix: String,
    key: String,
    len: u64,
    /// Placed (or already removed): nothing left to undo.
    done: bool,
}

impl Adopted {
    /// Its first `n` bytes (fewer if it is shorter).
    fn first_bytes(&mut self, n: u64) -> io::Result<Vec<u8>> {
        let n = n.min(self.len);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut reply = self
            .bucket
            .get_object(&self.key, Some((0, n - 1)))
            .map_err(s3_io)?;
        let mut head = Vec::new();
        (&mut reply.body).take(n).read_to_end(&mut head)?;
        Ok(head)
    }
}

fn no_bytes_here() -> io::Error {
    io::Error::other("a direct upload's bytes do not pass through pidrop")
}

impl BlobWriter for Adopted {
    fn append(&mut self, _data: &[u8]) -> io::Result<()> {
        Err(no_bytes_here())
    }
    fn append_from_pipe(&mut self, _pipe: &Pipe, _len: usize) -> io::Result<()> {
        Err(no_bytes_here())
    }
    fn written(&self) -> u64 {
        self.len
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// No sha256: the bytes never pass through pidrop.
    fn finish(&mut self) -> io::Result<Option<String>> {
        Ok(None)
    }
    fn suspend_digest(&mut self) -> Option<DigestState> {
        None
    }
    fn local_path(&self) -> Option<&Path> {
        None
    }
    fn on_disk(&self) -> bool {
        false
    }
    fn place(&mut self, meta: &Meta) -> io::Result<()> {
        write_described(&self.bucket, &self.prefix, meta, |to, headers| {
            self.bucket
                .copy_object(&self.key, to, headers)
                .map_err(s3_io)
        })?;
        self.done = true;
        if let Err(e) = self.bucket.delete_object(&self.key) {
            log::warn!("could not remove {} (the sweep will): {e}", self.key);
        }
        Ok(())
    }
}

impl Drop for Adopted {
    /// Unplaced (refused by the check, or the commit failed): the object goes.
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.bucket.delete_object(&self.key) {
                log::warn!("could not remove {} (the sweep will): {e}", self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the S3 server the integration tests use (`PIDROP_TEST_S3_*`), if there is one.
    #[test]
    fn the_sweep_removes_incoming_objects_past_their_time_and_nothing_else() {
        let var = |k: &str| std::env::var(format!("PIDROP_TEST_S3_{k}")).ok();
        let Some(endpoint) = var("ENDPOINT") else {
            assert!(
                var("REQUIRED").is_none(),
                "PIDROP_TEST_S3_REQUIRED but no endpoint"
            );
            return;
        };
        let creds = crate::s3::sigv4::Credentials {
            access_key: var("ACCESS_KEY").unwrap_or_default(),
            secret_key: var("SECRET_KEY").unwrap_or_default(),
        };
        let region = var("REGION").unwrap_or_else(|| "garage".into());
        let bucket_name = var("BUCKET").unwrap_or_default();
        let b = Bucket::new(&endpoint, &bucket_name, &region, creds, None).expect("bucket");
        let prefix = format!("sweep-{}/", std::process::id());
        let waiting = incoming_key(&prefix, "a.png");
        let stored = format!("{prefix}b.png");
        for key in [&waiting, &stored] {
            b.put_object(key, b"x", &[]).expect("put");
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(sweep(&b, &prefix).expect("sweep"), 0, "young ones stay");
        assert_eq!(sweep_older_than(&b, &prefix, 0).expect("sweep"), 1);
        let left: Vec<String> = b
            .list(&prefix, None)
            .expect("list")
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(left, vec![stored.clone()]);
        b.delete_object(&stored).expect("clean up");
    }
}
