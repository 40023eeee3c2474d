//! Who the caller is and what it may do: the one place between the HTTP core and the routes
//! that decides. Accounts (passwords) and bearer tokens live in the accounts file
//! (`accounts.rs`); a request names one with `Authorization: Basic …` (`curl -u`) or
//! `Authorization: Bearer …`; without credentials it gets what `--anonymous` gives.
//!
//! The file is looked at (one `stat`) on every authenticated request and read again when it
//! changed, so `pidrop user remove` or `pidrop token revoke` takes effect at once. A verified
//! Basic credential is remembered for `CACHE_FOR` (keyed by the SHA-256 of the header, tied to
//! the file's version), so `curl -u` in a loop does not run argon2 for every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::http::Request;

pub mod accounts;
pub mod cli;
pub mod password;
pub mod session;
mod throttle;

use accounts::Accounts;

/// How long a verified password is remembered.
const CACHE_FOR: Duration = Duration::from_secs(300);
/// Remembered credentials, at most.
const CACHE_MAX: usize = 256;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
    Uploader,
    Viewer,
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Upload,
    List,
    Download,
    Delete,
    Metrics,
    /// Make, list and revoke share links.
    Share,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "member" => Role::Member,
            "uploader" => Role::Uploader,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Uploader => "uploader",
            Role::Viewer => "viewer",
        }
    }

    /// The roles table (README, "Accounts and access"). An uploader lists and downloads only
    /// its own files (`Caller::own_only`); members and uploaders delete their own uploads
    /// (`Access::check_delete`).
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Member => matches!(action, Upload | List | Download | Share),
            Role::Uploader => matches!(action, Upload | List | Download),
            Role::Viewer => matches!(action, List | Download),
        }
    }
}

/// What a caller without credentials may do (`--anonymous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anonymous {
    /// Upload only.
    Dropbox,
    /// List and download.
    Viewer,
    /// Nothing.
    None,
    /// Everything (pidrop 0.1's behaviour).
    Admin,
}

impl Anonymous {
    pub fn parse(s: &str) -> Option<Anonymous> {
        Some(match s {
            "dropbox" => Anonymous::Dropbox,
            "viewer" => Anonymous::Viewer,
            "none" => Anonymous::None,
            "admin" => Anonymous::Admin,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Anonymous::Dropbox => "dropbox",
            Anonymous::Viewer => "viewer",
            Anonymous::None => "none",
            Anonymous::Admin => "admin",
        }
    }

    fn may(self, action: Action) -> bool {
        match self {
            Anonymous::Dropbox => action == Action::Upload,
            Anonymous::Viewer => Role::Viewer.may(action),
            Anonymous::None => false,
            // Links are made by accounts (their maker is who revokes them).
            Anonymous::Admin => action != Action::Share,
        }
    }
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// An account (`token`: a bearer token's name, else a user's).
    Account {
        name: String,
        role: Role,
        token: bool,
    },
    /// Whoever holds a share link (`X-Pidrop-Link`, or `?link=`): what the link grants.
    Link(crate::storage::Link),
}

impl Caller {
    /// How a file it uploads records its owner: `user:NAME`, `token:NAME`, `anonymous:ADDRESS`.
    pub fn owner(&self, peer: std::net::IpAddr) -> String {
        match self {
            Caller::Anonymous => format!("anonymous:{peer}"),
            Caller::Account {
                name, token: false, ..
            } => format!("user:{name}"),
            Caller::Account {
                name, token: true, ..
            } => format!("token:{name}"),
            Caller::Link(l) => format!("link:{}", l.id),
        }
    }

    /// Whether it sees only what it uploaded (an uploader: the drop box with an account).
    pub fn own_only(&self) -> bool {
        matches!(
            self,
            Caller::Account {
                role: Role::Uploader,
                ..
            }
        )
    }

    /// Whether it is an account with the admin role (sees owners, deletes anything).
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Caller::Account {
                role: Role::Admin,
                ..
            }
        )
    }
}

/// The accounts file as last read.
struct Loaded {
    accounts: Accounts,
    modified: Stamp,
    /// Bumped on every read: remembered credentials of an older version are not used.
    version: u64,
}

pub struct Access {
    path: PathBuf,
    anonymous: Anonymous,
    loaded: Mutex<Loaded>,
    cache: Mutex<HashMap<[u8; 32], (Caller, u64, Instant)>>,
    throttle: throttle::Throttle,
    /// Where sessions are kept (the catalogue).
    store: std::sync::Arc<crate::storage::Store>,
}

/// What tells a changed accounts file: its inode (a rewrite is a new one), size and time.
type Stamp = Option<(u64, u64, SystemTime)>;

fn modified(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl Access {
    /// Reads the accounts file (none yet is fine); one that cannot be read stops start-up.
    pub fn open(
        path: &Path,
        anonymous: Anonymous,
        store: std::sync::Arc<crate::storage::Store>,
    ) -> Result<Access, String> {
        let accounts = Accounts::load(path)?;
        Ok(Access {
            path: path.to_path_buf(),
            anonymous,
            loaded: Mutex::new(Loaded {
                accounts,
                modified: modified(path),
                version: 0,
            }),
            cache: Mutex::new(HashMap::new()),
            throttle: throttle::Throttle::default(),
            store,
        })
    }

    /// The accounts now, read again if the file changed (a damaged edit keeps the last good
    /// version, logged).
    fn current(&self) -> (Accounts, u64) {
        let mut l = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let now = modified(&self.path);
        if now != l.modified {
            l.modified = now;
            match Accounts::load(&self.path) {
                Ok(a) => {
                    l.accounts = a;
                    l.version += 1;
                }
                Err(e) => log::error!("accounts file not reloaded, keeping the last good one: {e}"),
            }
        }
        (l.accounts.clone(), l.version)
    }

    /// Who sent `req`: 401 for credentials that do not verify (or an unknown scheme), 429
    /// while its address (or everyone) is throttled for failing too often. Without an
    /// `Authorization` header, a live session cookie names the account; a stale cookie is
    /// just no credentials (the page then offers the login again).
    pub fn caller(&self, req: &Request<'_>) -> Result<Caller, AppError> {
        let Some(header) = req.header("authorization") else {
            if let Some(token) = link_token(req) {
                return self.link_caller(&token);
            }
            if session::cookie(req).is_none() {
                return Ok(Caller::Anonymous);
            }
            let (accounts, _) = self.current();
            return Ok(self
                .session_caller(req, &accounts)
                .unwrap_or(Caller::Anonymous));
        };
        let ip = req.peer.ip();
        if let Some(wait) = self.throttle.wait(ip) {
            return Err(AppError::TooManyFailures {
                retry_after: wait.as_secs().max(1),
            });
        }
        let (accounts, version) = self.current();
        let who = match parse_authorization(header) {
            Some(Credentials::Bearer(token)) => bearer(&accounts, token),
            Some(Credentials::Basic { name, password }) => {
                self.basic(&accounts, version, header, &name, &password)
            }
            None => Err(AppError::Unauthorized),
        };
        match &who {
            Ok(_) => self.throttle.succeeded(ip),
            Err(_) => self.throttle.failed(ip),
        }
        who
    }

    fn basic(
        &self,
        accounts: &Accounts,
        version: u64,
        header: &str,
        name: &str,
        password: &str,
    ) -> Result<Caller, AppError> {
        let key: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((who, v, at)) = cache.get(&key) {
                if *v == version && at.elapsed() < CACHE_FOR {
                    return Ok(who.clone());
                }
            }
        }
        let user = session::verified(accounts, name, password).ok_or(AppError::Unauthorized)?;
        let who = Caller::Account {
            name: user.name.clone(),
            role: user.role,
            token: false,
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (who.clone(), version, Instant::now()));
        Ok(who)
    }

    /// Whether `req` may delete the file `meta` (`None`: there is none — answered 404 by the
    /// caller once allowed): an admin (or anyone under `--anonymous admin`); whoever holds its
    /// delete token (`X-Delete-Token`); a member or uploader for a file it uploaded.
    pub fn check_delete(
        &self,
        req: &Request<'_>,
        meta: Option<&crate::storage::Meta>,
    ) -> Result<(), AppError> {
        let who = self.caller(req)?;
        if self.allows(&who, Action::Delete) {
            return Ok(());
        }
        if let Some(token) = req.header("x-delete-token") {
            let meta = meta.ok_or(AppError::NotFound)?;
            let key = crate::storage::sha256_hex(token.trim().as_bytes());
            return match !meta.delete_key.is_empty()
                && constant_time_eq(key.as_bytes(), meta.delete_key.as_bytes())
            {
                true => Ok(()),
                false => Err(AppError::Forbidden),
            };
        }
        match &who {
            Caller::Account {
                role: Role::Member | Role::Uploader,
                ..
            } => {
                let meta = meta.ok_or(AppError::NotFound)?;
                match meta.owner == who.owner(req.peer.ip()) {
                    true => Ok(()),
                    // Others' files do not exist for an uploader.
                    false if who.own_only() => Err(AppError::NotFound),
                    false => Err(AppError::Forbidden),
                }
            }
            Caller::Anonymous | Caller::Link(_) => Err(AppError::Unauthorized),
            Caller::Account { .. } => Err(AppError::Forbidden),
        }
    }

    /// The link a token names, while it lasts: 410 once it has expired or been revoked.
    fn link_caller(&self, token: &str) -> Result<Caller, AppError> {
        let key = crate::storage::sha256_hex(token.as_bytes());
        match self.store.catalogue().link_by_key(&key)? {
            Some(l) if l.expires_at > crate::time::now_secs() => Ok(Caller::Link(l)),
            _ => Err(AppError::LinkGone),
        }
    }

    /// Whether `who` may do `action` (by role, by `--anonymous`, or by its link — which
    /// the route then holds to the link's file or album).
    pub fn allows(&self, who: &Caller, action: Action) -> bool {
        use crate::storage::LinkKind;
        match who {
            Caller::Anonymous => self.anonymous.may(action),
            Caller::Account { role, .. } => role.may(action),
            Caller::Link(l) => matches!(
                (l.kind, action),
                (LinkKind::File, Action::Download)
                    | (LinkKind::Album, Action::List | Action::Download)
                    | (LinkKind::Upload, Action::Upload)
            ),
        }
    }

    /// Whether `req` may do `action`: the caller, or 401 (no or bad credentials) / 403.
    pub fn check(&self, req: &Request<'_>, action: Action) -> Result<Caller, AppError> {
        let who = self.caller(req)?;
        match (self.allows(&who, action), &who) {
            (true, _) => Ok(who),
            (false, Caller::Anonymous | Caller::Link(_)) => Err(AppError::Unauthorized),
            (false, Caller::Account { .. }) => Err(AppError::Forbidden),
        }
    }
}

/// A share link's token: the `X-Pidrop-Link` header (the page's requests), or a `link`
/// query parameter (a download or thumbnail the browser fetches by itself).
pub fn link_token(req: &Request<'_>) -> Option<String> {
    if let Some(t) = req.header("x-pidrop-link").map(str::trim) {
        return Some(t.to_string()).filter(|t| !t.is_empty());
    }
    crate::upload::query_fields(req.head.query.as_deref())
        .into_iter()
        .find(|(k, v)| k == "link" && !v.is_empty())
        .map(|(_, v)| v)
}

/// What an `Authorization` header carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    Basic { name: String, password: String },
    Bearer(&'a str),
}

/// `Basic base64(name:password)` (RFC 7617; the name cannot hold a `:`) or `Bearer token`
/// (RFC 6750); schemes are case-insensitive. Anything else, or bytes that are not UTF-8, is
/// `None`. Bounded by the header's own size limit.
pub fn parse_authorization(header: &str) -> Option<Credentials<'_>> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!value.is_empty() && !value.contains(' ')).then_some(Credentials::Bearer(value));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = String::from_utf8(crate::tus::headers::decode_base64(value)?).ok()?;
    let (name, password) = text.split_once(':')?;
    Some(Credentials::Basic {
        name: name.to_string(),
        password: password.to_string(),
    })
}

/// A bearer token: its SHA-256 compared in constant time with every token's, unexpired.
fn bearer(accounts: &Accounts, token: &str) -> Result<Caller, AppError> {
    let digest = crate::storage::sha256_hex(token.as_bytes());
    let now = crate::time::now_secs();
    let mut found = None;
    for t in &accounts.tokens {
        if constant_time_eq(t.sha256.as_bytes(), digest.as_bytes())
            && t.expires.is_none_or(|e| e > now)
        {
            found = Some(Caller::Account {
                name: t.name.clone(),
                role: t.role,
                token: true,
            });
        }
    }
    found.ok_or(AppError::Unauthorized)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_table() {
        use Action::*;
        let table = [
            (Role::Admin, [true, true, true, true, true, true]),
            (Role::Member, [true, true, true, false, false, true]),
            (Role::Uploader, [true, true, true, false, false, false]),
            (Role::Viewer, [false, true, true, false, false, false]),
        ];
        for (role, row) in table {
            for (action, allowed) in [Upload, List, Download, Delete, Metrics, Share]
                .into_iter()
                .zip(row)
            {
                assert_eq!(role.may(action), allowed, "{role:?} {action:?}");
            }
        }
        assert!(Anonymous::Dropbox.may(Upload) && !Anonymous::Dropbox.may(List));
        assert!(!Anonymous::None.may(Download));
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
        let basic = |s: &str| format!("Basic {}", crate::tus::headers::encode_base64(s.as_bytes()));
        assert_eq!(
            parse_authorization(&basic("ada:pa:ss word")),
            Some(Credentials::Basic {
                name: "ada".into(),
                password: "pa:ss word".into()
            })
        );
        assert_eq!(
            parse_authorization("bearer  abc "),
            Some(Credentials::Bearer("abc"))
        );
        for bad in [
            "Basic",
            "Basic !!",
            &basic("no colon"),
            "Bearer a b",
            "Digest x",
            "",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
