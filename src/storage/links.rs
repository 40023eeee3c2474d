//! Share links in the catalogue (the `links` table, schema 7). A link is a URL with a 128-bit
//! token that grants, without an account, one thing: downloading a file, listing and
//! downloading an album, or uploading into an album (with a size and a count limit). Only the
//! token's SHA-256 is kept (`key`); `id` is a short public name to list and revoke it by.

use rusqlite::{params, OptionalExtension};

use super::catalogue::{Catalogue, CatalogueError};

type Result<T> = std::result::Result<T, CatalogueError>;

/// What a link grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Download one stored file (`target`: its stored name).
    File,
    /// List and download an album (`target`: the album).
    Album,
    /// Upload into an album (`target`: the album).
    Upload,
}

impl LinkKind {
    pub fn parse(s: &str) -> Option<LinkKind> {
        Some(match s {
            "file" => LinkKind::File,
            "album" => LinkKind::Album,
            "upload" => LinkKind::Upload,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkKind::File => "file",
            LinkKind::Album => "album",
            LinkKind::Upload => "upload",
        }
    }
}

/// One share link as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    /// SHA-256 (hex) of the token.
    pub key: String,
    pub kind: LinkKind,
    pub target: String,
    /// Who made it (an owner string: `user:NAME`, `token:NAME`).
    pub created_by: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub expires_at: u64,
    /// Upload links: the largest file.
    pub max_size: Option<u64>,
    /// Upload links: how many files, at most.
    pub max_files: Option<u64>,
    /// Upload links: files stored through it so far.
    pub used_files: u64,
}

const COLUMNS: &str =
    "id, key, kind, target, created_by, created, expires_at, max_size, max_files, used_files";

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    let kind: String = r.get(2)?;
    Ok(Link {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: LinkKind::parse(&kind).unwrap_or(LinkKind::File),
        target: r.get(3)?,
        created_by: r.get(4)?,
        created: to_u64(r.get(5)?),
        expires_at: to_u64(r.get(6)?),
        max_size: r.get::<_, Option<i64>>(7)?.map(to_u64),
        max_files: r.get::<_, Option<i64>>(8)?.map(to_u64),
        used_files: to_u64(r.get(9)?),
    })
}

impl Catalogue {
    pub fn add_link(&self, l: &Link) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            &format!(
                "INSERT INTO links ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                l.id,
                l.key,
                l.kind.name(),
                l.target,
                l.created_by,
                to_i64(l.created),
                to_i64(l.expires_at),
                l.max_size.map(to_i64),
                l.max_files.map(to_i64),
                to_i64(l.used_files)
            ],
        )?;
        Ok(())
    }

    /// The link whose token hashes to `key`, expired or not.
    pub fn link_by_key(&self, key: &str) -> Result<Option<Link>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM links WHERE key = ?1"))?;
        Ok(st.query_row([key], row).optional()?)
    }

    pub fn link(&self, id: &str) -> Result<Option<Link>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM links WHERE id = ?1"))?;
        Ok(st.query_row([id], row).optional()?)
    }

    /// Every link (`created_by`: only that maker's), newest first, at most 1000.
    pub fn links(&self, created_by: Option<&str>) -> Result<Vec<Link>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM links WHERE ?1 IS NULL OR created_by = ?1
             ORDER BY created DESC, id LIMIT 1000"
        ))?;
        let rows = st.query_map([created_by], row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Revokes a link; false if there was none.
    pub fn remove_link(&self, id: &str) -> Result<bool> {
        let conn = self.conn();
        Ok(conn.execute("DELETE FROM links WHERE id = ?1", [id])? > 0)
    }

    /// Counts `n` files against an upload link's limit; false (and nothing counted) when they
    /// would pass it.
    pub fn use_link(&self, id: &str, n: u64) -> Result<bool> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE links SET used_files = used_files + ?2
             WHERE id = ?1 AND (max_files IS NULL OR used_files + ?2 <= max_files)",
            params![id, to_i64(n)],
        )?;
        Ok(changed > 0)
    }

    /// Gives back `n` counted files (their commit failed).
    pub fn unuse_link(&self, id: &str, n: u64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE links SET used_files = max(0, used_files - ?2) WHERE id = ?1",
            params![id, to_i64(n)],
        )?;
        Ok(())
    }

    /// Forgets links that expired before `before` (kept a while, so an expired link says so).
    pub fn sweep_links(&self, before: u64) -> Result<usize> {
        let conn = self.conn();
        Ok(conn.execute("DELETE FROM links WHERE expires_at < ?1", [to_i64(before)])?)
    }
}
