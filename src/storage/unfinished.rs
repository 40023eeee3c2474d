//! Resumable uploads in the catalogue (the `uploads` table, schema 2): what an upload will be
//! (its original name, metadata, declared length) and how far it has come — the offset that
//! was durable when it was acknowledged, the first bytes still held for the content check,
//! the type that check found. The bytes themselves are a kept blob of the backend under the
//! upload's id. A finished upload keeps its row (with the stored name) until it expires, so a
//! client asking for its offset learns it is complete rather than uploading it again.

use rusqlite::{params, OptionalExtension, Transaction};

use super::catalogue::{Catalogue, CatalogueError};
use super::meta::{decode_fields, encode_fields};

type Result<T> = std::result::Result<T, CatalogueError>;

/// One resumable upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// 32 hex characters, from the OS's random source.
    pub id: String,
    /// `Upload-Length`; `None` while deferred.
    pub length: Option<u64>,
    /// Bytes received and durable (including `held`).
    pub offset: u64,
    pub original_name: String,
    /// The `Upload-Metadata` header as the client sent it (HEAD echoes it).
    pub metadata: String,
    /// Metadata that becomes the stored file's fields.
    pub fields: Vec<(String, String)>,
    /// The first bytes, while there are too few for the content check.
    pub held: Vec<u8>,
    /// The type the content check found (then the bytes are in the blob).
    pub mime: Option<String>,
    /// The address that created it (uploads per address are limited).
    pub client: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
    /// The stored name, once finished.
    pub done: Option<String>,
    /// GPS tags were removed from its head (`--strip-gps`).
    pub gps_stripped: bool,
    /// Who started it (the stored file's owner).
    pub owner: String,
}

const COLUMNS: &str = "id, length, offset, original_name, metadata, fields, held, mime, client, \
     expires_at, done, gps_stripped, owner";

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Unfinished> {
    let length: Option<i64> = r.get(1)?;
    let fields: String = r.get(5)?;
    Ok(Unfinished {
        id: r.get(0)?,
        length: length.map(to_u64),
        offset: to_u64(r.get(2)?),
        original_name: r.get(3)?,
        metadata: r.get(4)?,
        fields: decode_fields(&fields),
        held: r.get(6)?,
        mime: r.get(7)?,
        client: r.get(8)?,
        expires_at: to_u64(r.get(9)?),
        done: r.get(10)?,
        gps_stripped: r.get(11)?,
        owner: r.get(12)?,
    })
}

/// Marks `id` done as `name`, inside the transaction that lists the file.
pub(super) fn mark_done(tx: &Transaction<'_>, id: &str, name: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE uploads SET done = ?2, offset = coalesce(length, offset), held = x'' WHERE id = ?1",
        params![id, name],
    )?;
    Ok(())
}

impl Catalogue {
    pub fn add_unfinished(&self, u: &Unfinished) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            &format!("INSERT INTO uploads ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![
                u.id,
                u.length.map(to_i64),
                to_i64(u.offset),
                u.original_name,
                u.metadata,
                encode_fields(&u.fields),
                u.held,
                u.mime,
                u.client,
                to_i64(u.expires_at),
                u.done,
                u.gps_stripped,
                u.owner
            ],
        )?;
        Ok(())
    }

    pub fn unfinished(&self, id: &str) -> Result<Option<Unfinished>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1"))?;
        Ok(st.query_row([id], row).optional()?)
    }

    /// Records how far an upload has come (durable when it returns).
    pub fn set_progress(&self, u: &Unfinished) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE uploads SET offset = ?2, held = ?3, mime = ?4, length = ?5, expires_at = ?6,
             gps_stripped = ?7 WHERE id = ?1",
            params![
                u.id,
                to_i64(u.offset),
                u.held,
                u.mime,
                u.length.map(to_i64),
                to_i64(u.expires_at),
                u.gps_stripped
            ],
        )?;
        Ok(())
    }

    /// Forgets an upload; false if there was none.
    pub fn remove_unfinished(&self, id: &str) -> Result<bool> {
        let conn = self.conn();
        Ok(conn.execute("DELETE FROM uploads WHERE id = ?1", [id])? > 0)
    }

    /// Unfinished uploads, in all or from one client address.
    pub fn count_unfinished(&self, client: Option<&str>) -> Result<u64> {
        let conn = self.conn();
        let n: i64 = match client {
            Some(c) => conn.query_row(
                "SELECT count(*) FROM uploads WHERE done IS NULL AND client = ?1",
                [c],
                |r| r.get(0),
            )?,
            None => conn.query_row("SELECT count(*) FROM uploads WHERE done IS NULL", [], |r| {
                r.get(0)
            })?,
        };
        Ok(to_u64(n))
    }

    /// Up to `n` uploads (finished or not) whose time ran out before `now`.
    pub fn expired_uploads(&self, now: u64, n: usize) -> Result<Vec<Unfinished>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM uploads WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2"
        ))?;
        let rows = st.query_map(
            params![to_i64(now), i64::try_from(n).unwrap_or(i64::MAX)],
            row,
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Bytes the unfinished uploads of known length still have to receive: reserved against
    /// `--min-free` again after a restart.
    pub fn still_to_come(&self) -> Result<u64> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT coalesce(sum(max(length - offset, 0)), 0) FROM uploads
             WHERE done IS NULL AND length IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(to_u64(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_added_advanced_finished_and_expired() {
        let dir = std::env::temp_dir().join(format!("pidrop-unf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let cat = Catalogue::open(&dir.join("c.sqlite")).expect("open");
        let mut u = Unfinished {
            id: "ab".repeat(16),
            length: Some(100),
            offset: 0,
            original_name: "a.txt".into(),
            metadata: "filename YS50eHQ=".into(),
            fields: vec![("k".into(), "v".into())],
            held: Vec::new(),
            mime: None,
            client: "127.0.0.1".into(),
            expires_at: 1_000,
            done: None,
            gps_stripped: false,
            owner: "user:ada".into(),
        };
        cat.add_unfinished(&u).expect("add");
        assert_eq!(cat.count_unfinished(None).expect("count"), 1);
        assert_eq!(cat.count_unfinished(Some("::1")).expect("count"), 0);
        assert_eq!(cat.still_to_come().expect("sum"), 100);
        u.offset = 3;
        u.held = b"abc".to_vec();
        u.gps_stripped = true;
        cat.set_progress(&u).expect("progress");
        assert_eq!(cat.unfinished(&u.id).expect("get"), Some(u.clone()));
        assert_eq!(cat.still_to_come().expect("sum"), 97);
        assert!(cat.expired_uploads(1_000, 10).expect("expired").is_empty());
        assert_eq!(cat.expired_uploads(1_001, 10).expect("expired").len(), 1);
        assert!(cat.remove_unfinished(&u.id).expect("remove"));
        assert!(!cat.remove_unfinished(&u.id).expect("remove again"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
