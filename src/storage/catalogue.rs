//! The catalogue: what pidrop knows of every stored file, in one SQLite database in the state
//! dir (`.pidrop/catalogue.sqlite`), so that nothing scales with the number of files in RAM and
//! start-up reads nothing per file.
//!
//! - WAL mode with `synchronous = FULL`: a commit is on stable storage when it returns (a 201
//!   promises that), and readers never wait for a writer. NORMAL would lose the last commits
//!   on power loss, which is exactly what a Pi on a wall socket meets.
//! - A small fixed page cache (`CACHE_KIB`); no memory-mapped I/O.
//! - Listing pages, the `next` cursor, counts and totals are index lookups: `files_by_time` for
//!   the newest-first order, and a one-row `totals` table kept by triggers.
//! - The schema's version is `PRAGMA user_version`: a database from a newer pidrop, or one that
//!   is not a database, is refused with the command that rebuilds it from the files.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::is_stored_name;
use super::meta::{decode_fields, encode_fields, Meta};

/// The schema this pidrop writes and reads.
const SCHEMA_VERSION: i64 = 8;
/// SQLite's page cache, per connection.
const CACHE_KIB: i64 = 256;
/// Wait this long for a lock held by another process (`pidrop check` next to the service).
const BUSY_MS: u64 = 5_000;

const SCHEMA: &str = "
CREATE TABLE files (
    name TEXT PRIMARY KEY,
    original_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    fields TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX files_by_time ON files (uploaded_at, name);
CREATE TABLE totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO totals VALUES (1, 0, 0);
CREATE TRIGGER files_insert AFTER INSERT ON files BEGIN
    UPDATE totals SET files = files + 1, bytes = bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER files_delete AFTER DELETE ON files BEGIN
    UPDATE totals SET files = files - 1, bytes = bytes - OLD.size WHERE id = 1;
END;
";

/// Schema 2: resumable uploads (tus) in progress, and finished ones until they expire (a
/// client asks for the offset of an upload it finished, and must not upload it again).
/// `held`: the first bytes of a file still too short for its content check; `offset` counts
/// them. `length` is NULL while deferred; `done` is the stored name once finished.
const SCHEMA_2: &str = "
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    length INTEGER,
    offset INTEGER NOT NULL,
    original_name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    fields TEXT NOT NULL,
    held BLOB NOT NULL,
    mime TEXT,
    client TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    done TEXT
) WITHOUT ROWID;
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
CREATE INDEX uploads_by_client ON uploads (client) WHERE done IS NULL;
";

/// Schema 3: whether GPS tags were removed from a file as it came in (`--strip-gps`).
const SCHEMA_3: &str = "
ALTER TABLE files ADD COLUMN gps_stripped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN gps_stripped INTEGER NOT NULL DEFAULT 0;
";

/// Schema 4: who uploaded a file, and the hash of its delete token.
const SCHEMA_4: &str = "
ALTER TABLE files ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN delete_key TEXT NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX files_by_owner ON files (owner, uploaded_at, name);
";

/// Schema 5: logged-in browsers (`sessions.rs`).
const SCHEMA_5: &str = "
CREATE TABLE sessions (
    key TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    stamp TEXT NOT NULL,
    created INTEGER NOT NULL,
    seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user, created);
";

/// Schema 6: albums and expiry. `expires_at` in seconds since the Unix epoch, NULL: never.
const SCHEMA_6: &str = "
ALTER TABLE files ADD COLUMN album TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN expires_at INTEGER;
CREATE INDEX files_by_album ON files (album, uploaded_at, name);
CREATE INDEX files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
";

/// Schema 7: share links (`links.rs`).
const SCHEMA_7: &str = "
CREATE TABLE links (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    max_size INTEGER,
    max_files INTEGER,
    used_files INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Schema 8: this node's multipart uploads into an S3 bucket while they run, so that a
/// restart after a crash aborts them (`s3dir.rs`).
const SCHEMA_8: &str = "
CREATE TABLE multipart (
    upload_id TEXT PRIMARY KEY,
    key TEXT NOT NULL
) WITHOUT ROWID;
";

/// Each schema version's steps, applied in order to a database at an older version.
const MIGRATIONS: [(i64, &str); 8] = [
    (1, SCHEMA),
    (2, SCHEMA_2),
    (3, SCHEMA_3),
    (4, SCHEMA_4),
    (5, SCHEMA_5),
    (6, SCHEMA_6),
    (7, SCHEMA_7),
    (8, SCHEMA_8),
];

/// Which files a listing shows.
pub struct Filter<'a> {
    /// Only this owner's.
    pub owner: Option<&'a str>,
    /// Only this album's.
    pub album: Option<&'a str>,
    /// Seconds since the Unix epoch: files expired by then are left out.
    pub now: u64,
}

/// Why the catalogue cannot be used.
#[derive(Debug)]
pub enum CatalogueError {
    /// Not a database, or a damaged one.
    Corrupt(String),
    /// Written by a newer pidrop (its schema version).
    Newer(i64),
    Sqlite(rusqlite::Error),
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogueError::Corrupt(why) => write!(f, "the catalogue is damaged ({why})"),
            CatalogueError::Newer(v) => write!(
                f,
                "the catalogue was written by a newer pidrop (schema {v}, this one knows {SCHEMA_VERSION})"
            ),
            CatalogueError::Sqlite(e) => write!(f, "catalogue error: {e}"),
        }
    }
}

impl std::error::Error for CatalogueError {}

impl CatalogueError {
    /// SQLite could not write: the disk is full (a 507, not our fault).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CatalogueError::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }
}

impl From<rusqlite::Error> for CatalogueError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match e.sqlite_error_code() {
            Some(DatabaseCorrupt) | Some(NotADatabase) => CatalogueError::Corrupt(e.to_string()),
            _ => CatalogueError::Sqlite(e),
        }
    }
}

/// A listing position: the upload time and name of the last file of the previous page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub u128, pub String);

impl Cursor {
    /// `<nanoseconds>-<stored name>`, as a listing hands it out; anything else is `None`.
    pub fn parse(c: &str) -> Option<Cursor> {
        let (t, name) = c.split_once('-')?;
        let t = t
            .parse()
            .ok()
            .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))?;
        is_stored_name(name).then(|| Cursor(t, name.to_string()))
    }
}

/// The catalogue, shared by every worker. One connection: every statement is an index lookup
/// of microseconds, and SQLite serialises writers anyway.
pub struct Catalogue {
    conn: Mutex<Connection>,
}

type Result<T> = std::result::Result<T, CatalogueError>;

impl Catalogue {
    /// Opens (creating if missing) the catalogue at `path`.
    pub fn open(path: &Path) -> Result<Catalogue> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_MS))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(CatalogueError::Newer(version));
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CatalogueError::Corrupt(format!(
                "journal mode {mode}, not WAL"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "mmap_size", 0)?;
        for (to, steps) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(steps)?;
            tx.pragma_update(None, "user_version", to)?;
            tx.commit()?;
        }
        // A table or index that is damaged shows here, not in the middle of an upload.
        conn.query_row("SELECT files, bytes FROM totals WHERE id = 1", [], |_| {
            Ok(())
        })?;
        conn.query_row("SELECT count(*) FROM uploads", [], |_| Ok(()))?;
        Ok(Catalogue {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds files in one transaction: all of them are listed, or none. With `finishing`, the
    /// resumable upload they complete is marked done in the same transaction.
    pub fn insert_all(&self, metas: &[Meta], finishing: Option<&str>) -> Result<()> {
        self.insert(metas, "INSERT", finishing).map(|_| ())
    }

    /// Adds what is not there yet, in one transaction (imports: a second run adds nothing).
    pub fn import(&self, metas: &[Meta]) -> Result<usize> {
        self.insert(metas, "INSERT OR IGNORE", None)
    }

    fn insert(&self, metas: &[Meta], verb: &str, finishing: Option<&str>) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let (Some(id), Some(m)) = (finishing, metas.first()) {
            super::unfinished::mark_done(&tx, id, &m.name)?;
        }
        let mut added = 0;
        {
            let mut st = tx.prepare(&format!(
                "{verb} INTO files ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for m in metas {
                added += st.execute(params![
                    m.name,
                    m.original_name,
                    to_i64(u128::from(m.size)),
                    m.mime,
                    m.sha256,
                    to_i64(m.uploaded_at),
                    encode_fields(&m.fields),
                    m.gps_stripped,
                    m.owner,
                    m.delete_key,
                    m.album,
                    m.expires_at.map(|t| to_i64(u128::from(t)))
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    pub fn get(&self, name: &str) -> Result<Option<Meta>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM files WHERE name = ?1"))?;
        Ok(st.query_row([name], row_to_meta).optional()?)
    }

    /// Newest first, at most `limit`, after `cursor`, unexpired at `filter.now`, only an
    /// owner's (an uploader's own view; `files_by_owner`) or an album's (`files_by_album`)
    /// when the filter says; plus the cursor of the next page.
    pub fn list(
        &self,
        cursor: Option<&Cursor>,
        limit: usize,
        filter: &Filter<'_>,
    ) -> Result<(Vec<Meta>, Option<Cursor>)> {
        let limit = limit.max(1);
        let conn = self.conn();
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let (t, name) = cursor.map_or((i64::MAX, ""), |Cursor(t, n)| (to_i64(*t), n.as_str()));
        let now = to_i64(u128::from(filter.now));
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&t, &name, &fetch, &now];
        let mut where_ = String::from(
            "(uploaded_at, name) < (?1, ?2) AND (expires_at IS NULL OR expires_at > ?4)",
        );
        for (column, value) in [("owner", &filter.owner), ("album", &filter.album)] {
            if let Some(v) = value {
                values.push(v);
                where_.push_str(&format!(" AND {column} = ?{}", values.len()));
            }
        }
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM files WHERE {where_}
             ORDER BY uploaded_at DESC, name DESC LIMIT ?3"
        ))?;
        let rows = st.query_map(values.as_slice(), row_to_meta)?;
        let mut page: Vec<Meta> = rows.collect::<std::result::Result<_, _>>()?;
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|m| Cursor(m.uploaded_at, m.name.clone()))
        });
        Ok((page, next.flatten()))
    }

    /// Up to `n` files expired at `now` (the sweeper removes them).
    pub fn expired_files(&self, now: u64, n: usize) -> Result<Vec<Meta>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM files WHERE expires_at IS NOT NULL AND expires_at <= ?1
             ORDER BY expires_at LIMIT ?2"
        ))?;
        let now = to_i64(u128::from(now));
        let rows = st.query_map(
            params![now, i64::try_from(n).unwrap_or(i64::MAX)],
            row_to_meta,
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Removes a file's row; false if there was none.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare("DELETE FROM files WHERE name = ?1")?;
        Ok(st.execute([name])? > 0)
    }

    /// (files, bytes), from the row the triggers keep.
    pub fn totals(&self) -> Result<(u64, u64)> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT files, bytes FROM totals WHERE id = 1")?;
        Ok(st.query_row([], |r| {
            let files: i64 = r.get(0)?;
            let bytes: i64 = r.get(1)?;
            Ok((
                u64::try_from(files).unwrap_or(0),
                u64::try_from(bytes).unwrap_or(0),
            ))
        })?)
    }

    /// Up to `n` names after `after` in name order: the consistency check walks the catalogue
    /// with this, a batch at a time.
    pub fn names_after(&self, after: &str, n: usize) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT name FROM files WHERE name > ?1 ORDER BY name LIMIT ?2")?;
        let rows = st.query_map(params![after, i64::try_from(n).unwrap_or(i64::MAX)], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether a row exists for `name`.
    pub fn contains(&self, name: &str) -> Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT 1 FROM files WHERE name = ?1")?;
        Ok(st.exists([name])?)
    }
}

const COLUMNS: &str =
    "name, original_name, size, mime, sha256, uploaded_at, fields, gps_stripped, \
     owner, delete_key, album, expires_at";

fn row_to_meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<Meta> {
    let size: i64 = r.get(2)?;
    let at: i64 = r.get(5)?;
    let fields: String = r.get(6)?;
    Ok(Meta {
        name: r.get(0)?,
        original_name: r.get(1)?,
        size: u64::try_from(size).unwrap_or(0),
        mime: r.get(3)?,
        sha256: r.get(4)?,
        uploaded_at: u128::try_from(at).unwrap_or(0),
        fields: decode_fields(&fields),
        gps_stripped: r.get(7)?,
        owner: r.get(8)?,
        delete_key: r.get(9)?,
        album: r.get(10)?,
        expires_at: r
            .get::<_, Option<i64>>(11)?
            .map(|t| u64::try_from(t).unwrap_or(0)),
    })
}

/// SQLite integers are i64: nanoseconds since 1970 fit until the year 2262, sizes always.
fn to_i64(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, at: u128, size: u64) -> Meta {
        Meta {
            name: name.into(),
            original_name: format!("orig {name}\twith tab"),
            size,
            mime: "text/plain".into(),
            sha256: String::new(),
            uploaded_at: at,
            fields: vec![("k".into(), "v\nline".into())],
            gps_stripped: at.is_multiple_of(2),
            owner: String::new(),
            delete_key: String::new(),
            album: String::new(),
            expires_at: None,
        }
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pidrop-cat-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn rows_round_trip_and_list_in_pages_with_totals() {
        let dir = scratch("pages");
        let cat = Catalogue::open(&dir.join("c.sqlite")).expect("open");
        let metas: Vec<Meta> = (0..25)
            .map(|i| meta(&format!("{i:032x}.txt"), 1000 + i, 10))
            .collect();
        cat.insert_all(&metas, None).expect("insert");
        assert_eq!(cat.totals().expect("totals"), (25, 250));
        assert_eq!(
            cat.get(&metas[3].name).expect("get"),
            Some(metas[3].clone())
        );
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = cat
                .list(
                    cursor.as_ref(),
                    10,
                    &Filter {
                        owner: None,
                        album: None,
                        now: 0,
                    },
                )
                .expect("list");
            seen.extend(page.into_iter().map(|m| m.uploaded_at));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (1000..1025).rev().collect::<Vec<u128>>());
        assert_eq!(
            cat.list(
                None,
                0,
                &Filter {
                    owner: None,
                    album: None,
                    now: 0
                }
            )
            .expect("list")
            .0
            .len(),
            1
        );
        assert!(cat.delete(&metas[0].name).expect("delete"));
        assert!(!cat.delete(&metas[0].name).expect("delete again"));
        assert_eq!(cat.totals().expect("totals"), (24, 240));
        // All or nothing: a duplicate name fails the whole batch.
        let batch = vec![meta("a", 1, 1), metas[5].clone()];
        assert!(cat.insert_all(&batch, None).is_err());
        assert!(!cat.contains("a").expect("contains"));
        assert_eq!(cat.import(&batch).expect("import"), 1);
        drop(cat);
        let again = Catalogue::open(&dir.join("c.sqlite")).expect("reopen");
        assert_eq!(again.totals().expect("totals"), (25, 241));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_schema_1_catalogue_is_brought_up_to_date_keeping_its_rows() {
        let dir = scratch("v1");
        let path = dir.join("c.sqlite");
        {
            let c = Connection::open(&path).expect("sqlite");
            c.execute_batch(SCHEMA).expect("schema 1");
            c.execute(
                "INSERT INTO files (name, original_name, size, mime, sha256, uploaded_at, fields)
                 VALUES ('0123456789abcdef0123456789abcdef.txt', 'a.txt', 3, 'text/plain', '', 7, '')",
                [],
            )
            .expect("a 0.1-era row");
            c.pragma_update(None, "user_version", 1).expect("version");
        }
        let cat = Catalogue::open(&path).expect("migrated");
        let m = cat
            .get("0123456789abcdef0123456789abcdef.txt")
            .expect("get")
            .expect("the row");
        assert_eq!((m.original_name.as_str(), m.gps_stripped), ("a.txt", false));
        assert_eq!(cat.totals().expect("totals"), (1, 3));
        assert_eq!(cat.count_unfinished(None).expect("uploads table"), 0);
        let version: i64 = cat
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_and_newer_databases_are_refused() {
        let dir = scratch("bad");
        let path = dir.join("c.sqlite");
        std::fs::write(
            &path,
            b"this is not a database, just text that is long enough",
        )
        .expect("w");
        assert!(matches!(
            Catalogue::open(&path),
            Err(CatalogueError::Corrupt(_))
        ));
        std::fs::remove_file(&path).expect("rm");
        {
            let c = Connection::open(&path).expect("sqlite");
            c.pragma_update(None, "user_version", 99).expect("version");
        }
        assert!(matches!(
            Catalogue::open(&path),
            Err(CatalogueError::Newer(99))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
