//! The accounts file: who may do what, in one small text file a person can read and `pidrop
//! user`/`pidrop token` write. A line per account or token, words separated by spaces:
//!
//! ```text
//! user  NAME ROLE  $argon2id$v=19$m=19456,t=2,p=1$…   (a password's PHC hash)
//! token NAME ROLE  <sha256 of the token, hex>  <expiry, seconds since 1970, or "never">
//! ```
//!
//! `#` starts a comment. A line that cannot be read is refused with its number (at start, or
//! when the running server sees the file change: it keeps the last good one then and says so).
//! Written atomically (temp → fsync → rename → fsync dir) with mode 0600.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::Role;

/// One account with a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2id, PHC string format.
    pub hash: String,
}

/// One bearer token (stored as its SHA-256: tokens are 128 random bits, not guessable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    /// Seconds since the Unix epoch; `None`: never.
    pub expires: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    pub users: Vec<User>,
    pub tokens: Vec<Token>,
}

/// A name pidrop accepts for an account or a token.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

impl Accounts {
    /// Reads the file's text; the first line that cannot be read is the error, with its number.
    pub fn parse(text: &str) -> Result<Accounts, String> {
        let mut a = Accounts::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            a.parse_line(line)
                .map_err(|why| format!("line {}: {why}", i + 1))?;
        }
        Ok(a)
    }

    fn parse_line(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let name_role = |name: &str, role: &str| -> Result<(String, Role), String> {
            if !valid_name(name) {
                return Err(format!("{name:?} is not a valid name"));
            }
            if self.users.iter().any(|u| u.name == name)
                || self.tokens.iter().any(|t| t.name == name)
            {
                return Err(format!("{name:?} is named twice"));
            }
            let role = Role::parse(role).ok_or_else(|| format!("unknown role {role:?}"))?;
            Ok((name.to_string(), role))
        };
        match words.as_slice() {
            ["user", name, role, hash] if hash.starts_with("$argon2id$") => {
                let (name, role) = name_role(name, role)?;
                self.users.push(User {
                    name,
                    role,
                    hash: hash.to_string(),
                });
            }
            ["token", name, role, sha, expires]
                if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                let (name, role) = name_role(name, role)?;
                let expires = match *expires {
                    "never" => None,
                    e => Some(
                        e.parse()
                            .map_err(|_| format!("expiry {e:?} is not a number"))?,
                    ),
                };
                self.tokens.push(Token {
                    name,
                    role,
                    sha256: sha.to_ascii_lowercase(),
                    expires,
                });
            }
            _ => {
                return Err(
                    "expected `user NAME ROLE $argon2id$…` or `token NAME ROLE SHA256 EXPIRY`"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# pidrop accounts (pidrop user …, pidrop token …). Roles: admin, member, uploader, viewer.\n",
        );
        for u in &self.users {
            let _ = writeln!(out, "user {} {} {}", u.name, u.role.name(), u.hash);
        }
        for t in &self.tokens {
            let expires = t.expires.map_or("never".to_string(), |e| e.to_string());
            let _ = writeln!(
                out,
                "token {} {} {} {expires}",
                t.name,
                t.role.name(),
                t.sha256
            );
        }
        out
    }

    /// Reads the file; a missing file is no accounts.
    pub fn load(path: &Path) -> Result<Accounts, String> {
        match fs::read_to_string(path) {
            Ok(text) => Accounts::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Accounts::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(self.render().as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_round_trip_and_errors_name_their_line() {
        let text = "# a comment\nuser alice admin $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n\n\
                    token backup uploader 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef never\n\
                    token phone viewer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1900000000 # ok\n";
        let a = Accounts::parse(text).expect("parse");
        assert_eq!(a.users[0].role, Role::Admin);
        assert_eq!(a.tokens[1].expires, Some(1_900_000_000));
        assert_eq!(Accounts::parse(&a.render()).expect("again"), a);
        for (bad, line) in [
            ("user bob boss $argon2id$x", 1),
            ("\n\nuser bob admin plaintext", 3),
            ("user a admin $argon2id$x\nuser a viewer $argon2id$y", 2),
            ("token t admin abc never", 1),
            ("user ../x admin $argon2id$x", 1),
        ] {
            let e = Accounts::parse(bad).expect_err(bad);
            assert!(e.starts_with(&format!("line {line}:")), "{bad}: {e}");
        }
    }
}
