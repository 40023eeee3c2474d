//! Logged-in browsers in the catalogue (the `sessions` table, schema 5), so that a restart
//! does not log everybody out. A row is keyed by the SHA-256 of the session's cookie (the
//! cookie itself is never stored), names the account, and carries a stamp of the account's
//! password hash: a changed password or a removed account ends every session of it without
//! the command line having to touch the catalogue.

use rusqlite::{params, OptionalExtension};

use super::catalogue::{Catalogue, CatalogueError};

type Result<T> = std::result::Result<T, CatalogueError>;

/// One session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's value.
    pub key: String,
    pub user: String,
    /// A short hash of the account's password hash when the session began.
    pub stamp: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Last use, updated at most every few minutes (an SD card is not written per request).
    pub seen: u64,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalogue {
    /// Records a new session; keeps at most `keep` per account (the oldest go first).
    pub fn add_session(&self, s: &Session, keep: u32) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO sessions (key, user, stamp, created, seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.key, s.user, s.stamp, to_i64(s.created), to_i64(s.seen)],
        )?;
        tx.execute(
            "DELETE FROM sessions WHERE user = ?1 AND key NOT IN
             (SELECT key FROM sessions WHERE user = ?1 ORDER BY created DESC LIMIT ?2)",
            params![s.user, keep],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn session(&self, key: &str) -> Result<Option<Session>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT key, user, stamp, created, seen FROM sessions WHERE key = ?1",
        )?;
        let row = st
            .query_row([key], |r| {
                Ok(Session {
                    key: r.get(0)?,
                    user: r.get(1)?,
                    stamp: r.get(2)?,
                    created: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    seen: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                })
            })
            .optional()?;
        Ok(row)
    }

    pub fn touch_session(&self, key: &str, seen: u64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE sessions SET seen = ?2 WHERE key = ?1",
            params![key, to_i64(seen)],
        )?;
        Ok(())
    }

    /// Ends a session; false if there was none.
    pub fn remove_session(&self, key: &str) -> Result<bool> {
        let conn = self.conn();
        Ok(conn.execute("DELETE FROM sessions WHERE key = ?1", [key])? > 0)
    }

    /// Removes sessions idle since before `idle_before` or begun before `created_before`.
    pub fn sweep_sessions(&self, idle_before: u64, created_before: u64) -> Result<usize> {
        let conn = self.conn();
        Ok(conn.execute(
            "DELETE FROM sessions WHERE seen < ?1 OR created < ?2",
            params![to_i64(idle_before), to_i64(created_before)],
        )?)
    }
}
