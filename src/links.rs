//! Share links over HTTP: `POST /links` makes one (an admin or member), `GET /links` lists them,
//! `DELETE /links/<id>` revokes one, and `GET /s/<token>` is what a link opens — the file, or
//! the page showing the album or taking uploads into it. A link's holder sends its token with
//! the page's requests (`X-Pidrop-Link`, or `?link=` where the browser fetches by itself), and
//! `within_link` keeps it to what the link grants.

use std::borrow::Cow;

use crate::access::Caller;
use crate::config::{parse_duration_days, parse_size, Config};
use crate::error::AppError;
use crate::http::{Request, Response};
use crate::json::{self, Obj};
use crate::login::read_form;
use crate::routes::{expiry_time, App};
use crate::storage::{hex, is_stored_name, random_bytes, sha256_hex, Link, LinkKind};
use crate::time::now_secs;
use crate::upload::placement::album_name;

/// A link lasts this long unless its maker says otherwise.
const DEFAULT_LIFETIME: &str = "7d";
/// The longest a link may last (seconds).
const LONGEST: u64 = 365 * 86_400;
/// An expired link is kept this long (seconds), so that opening it says it expired.
const KEEP_EXPIRED: u64 = 30 * 86_400;

impl App {
    /// Holds a link's holder to what its link grants: its file, its album, uploads into its
    /// album (while the link has files left). Anything else is not there (404).
    pub(crate) fn within_link(
        &self,
        link: &Link,
        method: &str,
        path: &str,
    ) -> Result<(), AppError> {
        let read = method == "GET" || method == "HEAD";
        let named = path
            .strip_prefix("/files/")
            .or_else(|| path.strip_prefix("/thumbnails/"));
        let allowed = match (link.kind, named) {
            (_, Some(name)) if !read => !name.is_empty() && method == "DELETE", // delete token
            (LinkKind::File, Some(name)) => name == link.target,
            (LinkKind::Album, Some(name)) => {
                self.store.get(name).is_some_and(|m| m.album == link.target)
            }
            (LinkKind::Upload, Some(_)) => false,
            (_, None) => true, // the action itself was checked (Access::allows)
        };
        if !allowed {
            return Err(AppError::NotFound);
        }
        let starts = matches!((method, path), ("POST", "/upload" | "/tus"))
            || (method == "PUT" && path.starts_with("/upload/"));
        if starts && link.max_files.is_some_and(|max| link.used_files >= max) {
            return Err(AppError::LinkUsedUp);
        }
        Ok(())
    }

    /// The settings an upload runs under: an upload link's size limit, when it has one.
    pub(crate) fn upload_cfg(&self, caller: &Caller) -> Cow<'_, Config> {
        match caller {
            Caller::Link(l) if l.max_size.is_some_and(|m| m < self.cfg.max_size) => {
                let mut cfg = self.cfg.clone();
                cfg.max_size = l.max_size.unwrap_or(cfg.max_size);
                Cow::Owned(cfg)
            }
            _ => Cow::Borrowed(&self.cfg),
        }
    }

    /// `GET /links` (an admin sees every link, a member its own), `POST /links` (a new one).
    pub(crate) fn links(
        &self,
        req: &mut Request<'_>,
        caller: &Caller,
    ) -> Result<Response, AppError> {
        let maker = caller.owner(req.peer.ip());
        match req.method() {
            "GET" | "HEAD" => {
                let only = (!caller.is_admin()).then_some(maker.as_str());
                let all = self.store.catalogue().links(only)?;
                let items = all.iter().map(|l| link_fields(Obj::new(), l).finish());
                let body = Obj::new().raw("links", &json::array(items)).finish();
                Ok(Response::json(200, body).header("Cache-Control", "no-store"))
            }
            "POST" => {
                self.check_origin(req)?;
                self.make_link(req, maker)
            }
            _ => Err(AppError::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }),
        }
    }

    /// `POST /links`: `kind` (file, album, upload), `target` (a stored name or an album),
    /// `expires` (default 7d, at most 365d), and for uploads `max_size`, `max_files`.
    fn make_link(&self, req: &mut Request<'_>, maker: String) -> Result<Response, AppError> {
        let form = read_form(req)?;
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let kind = field("kind")
            .and_then(LinkKind::parse)
            .ok_or(AppError::BadForm("kind is file, album or upload"))?;
        let target = field("target").ok_or(AppError::BadForm("a link needs a target"))?;
        let target = match kind {
            LinkKind::File if is_stored_name(target) && self.store.get(target).is_some() => target,
            LinkKind::File => return Err(AppError::NotFound),
            _ => album_name(target).ok_or(AppError::BadForm("not an album name"))?,
        };
        let lifetime = parse_duration_days(field("expires").unwrap_or(DEFAULT_LIFETIME))
            .map(|d| d.as_secs())
            .filter(|s| (1..=LONGEST).contains(s))
            .ok_or(AppError::BadForm("expires is a duration up to 365d"))?;
        let limit = |k: &str, read: fn(&str) -> Option<u64>| match field(k) {
            None => Ok(None),
            Some(v) => read(v)
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or(AppError::BadForm("max_size and max_files are positive")),
        };
        let uploads = kind == LinkKind::Upload;
        let token = hex(&random_bytes::<16>().map_err(AppError::Storage)?);
        let now = now_secs();
        let link = Link {
            id: hex(&random_bytes::<6>().map_err(AppError::Storage)?),
            key: sha256_hex(token.as_bytes()),
            kind,
            target: target.to_string(),
            created_by: maker,
            created: now,
            expires_at: now + lifetime,
            max_size: if uploads {
                limit("max_size", parse_size)?
            } else {
                None
            },
            max_files: if uploads {
                limit("max_files", |v| v.parse().ok())?
            } else {
                None
            },
            used_files: 0,
        };
        let _ = self
            .store
            .catalogue()
            .sweep_links(now.saturating_sub(KEEP_EXPIRED));
        self.store.catalogue().add_link(&link)?;
        log::info!(
            "{} made a {} link to {:?}",
            link.created_by,
            kind.name(),
            link.target
        );
        let path = self.url(&format!("/s/{token}"));
        let full = format!("{}{path}", self.origin_of(req));
        let body = link_fields(Obj::new(), &link)
            .str("url", &path)
            .str("full_url", &full)
            .str("qr_svg", &crate::announce::qr_svg(&full))
            .finish();
        Ok(Response::json(201, body).header("Cache-Control", "no-store"))
    }

    /// `DELETE /links/<id>`: an admin revokes any link, a member its own.
    pub(crate) fn revoke_link(
        &self,
        req: &Request<'_>,
        id: &str,
        caller: &Caller,
    ) -> Result<Response, AppError> {
        if req.method() != "DELETE" {
            return Err(AppError::MethodNotAllowed { allow: "DELETE" });
        }
        self.check_origin(req)?;
        let link = self.store.catalogue().link(id)?.ok_or(AppError::NotFound)?;
        if !caller.is_admin() && link.created_by != caller.owner(req.peer.ip()) {
            return Err(AppError::NotFound);
        }
        self.store.catalogue().remove_link(id)?;
        Ok(Response::new(204))
    }

    /// `GET /s/<token>`: a file link downloads its file; an album or upload link opens the
    /// page, which reads the token from its address. An expired or revoked link: 410.
    pub(crate) fn shared(&self, req: &Request<'_>, token: &str) -> Result<Response, AppError> {
        let key = sha256_hex(token.as_bytes());
        let link = self
            .store
            .catalogue()
            .link_by_key(&key)?
            .filter(|l| l.expires_at > now_secs())
            .ok_or(AppError::LinkGone)?;
        match link.kind {
            LinkKind::File => crate::serve::file(&self.store, req, &link.target),
            LinkKind::Album | LinkKind::Upload => self.asset("index.html", req),
        }
    }
}

/// A link's public fields (never its token, which only its making shows).
fn link_fields(o: Obj, l: &Link) -> Obj {
    let o = o
        .str("id", &l.id)
        .str("kind", l.kind.name())
        .str("target", &l.target)
        .str("created_by", &l.created_by)
        .str("expires_at", &expiry_time(l.expires_at))
        .num("used_files", l.used_files);
    let o = match l.max_size {
        Some(n) => o.num("max_size", n),
        None => o.raw("max_size", "null"),
    };
    match l.max_files {
        Some(n) => o.num("max_files", n),
        None => o.raw("max_files", "null"),
    }
}
