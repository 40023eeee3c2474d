//! Browser logins: `POST /login` with a name and password → a server-side session named by a
//! cookie (`pidrop_session`, 128 random bits, `HttpOnly; SameSite=Strict`), ended by
//! `POST /logout`. Sessions live in the catalogue, so they survive a restart; they end after
//! `IDLE` without use or `LIFETIME` after the login, when the account is removed, or when its
//! password changes (the row carries a stamp of the password hash).

use super::accounts::{Accounts, User};
use super::{password, Access, Caller};
use crate::error::AppError;
use crate::http::Request;
use crate::storage::{sha256_hex, Session};

pub const COOKIE: &str = "pidrop_session";
/// A session unused this long has ended (seconds).
pub const IDLE: u64 = 7 * 86_400;
/// A session ends this long after its login, used or not (seconds).
pub const LIFETIME: u64 = 30 * 86_400;
/// Last use is written at most this often (seconds): an SD card is not written per request.
const TOUCH_EVERY: u64 = 600;
/// Sessions kept per account (a new login past it ends the oldest).
const KEEP_PER_USER: u32 = 20;

use crate::time::now_secs as now;

/// What a session remembers of the password hash: a changed password ends it.
fn stamp(user: &User) -> String {
    sha256_hex(user.hash.as_bytes())[..16].to_string()
}

/// The session cookie's value in a request's `Cookie` header(s), if any.
pub fn cookie<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    let header = req.header("cookie")?;
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then_some(v)
    })
}

/// The `Set-Cookie` value that starts a session (`secure`: the request came over HTTPS).
pub fn set_cookie(token: &str, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={LIFETIME}{secure}")
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path={path}; Max-Age=0{secure}")
}

impl Access {
    /// Checks `name` and `password` (throttled like every credential) and starts a session:
    /// the caller and the cookie's value.
    pub fn login(
        &self,
        req: &Request<'_>,
        name: &str,
        password: &str,
    ) -> Result<(Caller, String), AppError> {
        let ip = req.peer.ip();
        if let Some(wait) = self.throttle.wait(ip) {
            return Err(AppError::TooManyFailures {
                retry_after: wait.as_secs().max(1),
            });
        }
        let (accounts, _) = self.current();
        let Some(user) = verified(&accounts, name, password) else {
            self.throttle.failed(ip);
            return Err(AppError::Unauthorized);
        };
        self.throttle.succeeded(ip);
        let token =
            crate::storage::hex(&crate::storage::random_bytes::<16>().map_err(AppError::Storage)?);
        let at = now();
        let _ = self
            .store
            .catalogue()
            .sweep_sessions(at.saturating_sub(IDLE), at.saturating_sub(LIFETIME));
        let row = Session {
            key: sha256_hex(token.as_bytes()),
            user: user.name.clone(),
            stamp: stamp(user),
            created: at,
            seen: at,
        };
        self.store.catalogue().add_session(&row, KEEP_PER_USER)?;
        log::info!("{} logged in from {ip}", user.name);
        Ok((user_caller(user), token))
    }

    /// Ends the request's session, if it has one.
    pub fn logout(&self, req: &Request<'_>) -> Result<bool, AppError> {
        let Some(token) = cookie(req) else {
            return Ok(false);
        };
        Ok(self
            .store
            .catalogue()
            .remove_session(&sha256_hex(token.as_bytes()))?)
    }

    /// The account of the request's session, when it has a live one.
    pub(super) fn session_caller(&self, req: &Request<'_>, accounts: &Accounts) -> Option<Caller> {
        let token = cookie(req)?;
        let key = sha256_hex(token.as_bytes());
        let cat = self.store.catalogue();
        let s = cat.session(&key).ok()??;
        let at = now();
        let user = accounts.users.iter().find(|u| u.name == s.user);
        let live = at.saturating_sub(s.seen) < IDLE && at.saturating_sub(s.created) < LIFETIME;
        let Some(user) = user.filter(|u| live && stamp(u) == s.stamp) else {
            let _ = cat.remove_session(&key);
            return None;
        };
        if at.saturating_sub(s.seen) >= TOUCH_EVERY {
            let _ = cat.touch_session(&key, at);
        }
        Some(user_caller(user))
    }
}

/// The account `name` if `password` is its password; an unknown name costs the same.
pub(super) fn verified<'a>(accounts: &'a Accounts, name: &str, password: &str) -> Option<&'a User> {
    let Some(user) = accounts.users.iter().find(|u| u.name == name) else {
        password::verify_nobody(password);
        return None;
    };
    password::verify(password, &user.hash).then_some(user)
}

fn user_caller(user: &User) -> Caller {
    Caller::Account {
        name: user.name.clone(),
        role: user.role,
        token: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_attributes_and_are_found_among_others() {
        let c = set_cookie("abc", "/drop/", true);
        assert!(c.starts_with("pidrop_session=abc; HttpOnly; SameSite=Strict; Path=/drop/;"));
        assert!(c.ends_with("; Secure"));
        assert!(clear_cookie("/", false).contains("Max-Age=0"));
        assert!(!clear_cookie("/", false).contains("Secure"));
    }
}
