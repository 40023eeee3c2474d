//! Filling the catalogue from the stored blobs themselves: pidrop 0.1's metadata sidecars
//! (`.pidrop/meta/<name>.meta`, one per stored file) on the first start of this version, and
//! `pidrop check --rebuild` after a catalogue is lost.
//!
//! Resumable by construction: rows are added in batches with `INSERT OR IGNORE`, and the
//! sidecars are removed only after every file has its row, so a crash at any point loses
//! nothing and the next start finishes the job.

use std::fs;
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::backend::BlobInfo;
use super::meta::{decode_meta, Meta};
use super::{OpenError, Store, CATALOGUE_FILE};

/// Rows per transaction: large enough that 100k files take seconds, small enough that a
/// crash loses little work.
const BATCH: usize = 2_000;

/// Imports 0.1's sidecars when `.pidrop/meta` exists, then removes them.
pub(super) fn import_sidecars(store: &Store) -> Result<(), OpenError> {
    let meta_dir = store.state.join("meta");
    match fs::symlink_metadata(&meta_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(m) if !m.is_dir() => {
            return Err(io::Error::other(format!(
                "{} is a symlink or not a directory; refusing to use it",
                meta_dir.display()
            ))
            .into())
        }
        Ok(_) => {}
    }
    log::info!("importing pidrop 0.1 metadata from {}", meta_dir.display());
    let added = import_dir(store, Some(&meta_dir))?;
    let mut removed = 0u64;
    for entry in fs::read_dir(&meta_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    let _ = fs::remove_dir(&meta_dir);
    log::info!("imported {added} file(s) into the catalogue; removed {removed} sidecar file(s)");
    Ok(())
}

/// Gives every stored file in the upload dir a row if it has none: from its 0.1 sidecar when
/// `sidecars` has a sound one for it, else with what the file itself tells (its name as the
/// original name, no type, its modification time). Returns the rows added.
pub(super) fn import_dir(store: &Store, sidecars: Option<&Path>) -> Result<usize, OpenError> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut added = 0;
    store.blobs.each(&mut |blob| {
        let sidecar = sidecars
            .and_then(|d| fs::read_to_string(d.join(format!("{}.meta", blob.name))).ok())
            .and_then(|text| decode_meta(&blob.name, &text))
            .filter(|m| m.size == blob.len);
        batch.push(sidecar.unwrap_or_else(|| known_from_blob(blob)));
        if batch.len() == BATCH {
            added += store.catalogue.import(&batch).map_err(io::Error::other)?;
            batch.clear();
        }
        Ok(())
    })?;
    added += store.catalogue.import(&batch)?;
    Ok(added)
}

fn known_from_blob(blob: BlobInfo) -> Meta {
    Meta {
        size: blob.len,
        uploaded_at: blob
            .modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
        ..Meta::named(&blob.name)
    }
}
/// `pidrop check --rebuild`: moves a damaged catalogue aside (kept, renamed) so that the next
/// open starts a new one. Returns the name it was moved to, if there was one.
pub fn move_catalogue_aside(dir: &Path) -> io::Result<Option<String>> {
    let state = dir.join(".pidrop");
    let db = state.join(CATALOGUE_FILE);
    if fs::symlink_metadata(&db).is_err() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let aside = format!("{CATALOGUE_FILE}.damaged-{stamp}");
    for suffix in ["", "-wal", "-shm"] {
        let from = state.join(format!("{CATALOGUE_FILE}{suffix}"));
        if fs::symlink_metadata(&from).is_ok() {
            fs::rename(&from, state.join(format!("{aside}{suffix}")))?;
        }
    }
    Ok(Some(aside))
}
