//! The page's side of accounts: `GET /login` (a form that works without JavaScript),
//! `POST /login` (name and password → a session cookie), `POST /logout`, and `GET /session`
//! (who the page is talking as, and what it may do, so it shows only what works).

use std::io::Read;

use crate::access::{session, Action, Caller};
use crate::error::{AppError, UploadError};
use crate::http::{Request, Response};
use crate::json::Obj;
use crate::routes::{error_response, html_escape, wants_html, App};

/// A login form is a few hundred bytes; anything past this is refused unread.
const FORM_LIMIT: u64 = 4096;

impl App {
    /// `/login`: the form (GET), or a login (POST).
    pub(crate) fn login(&self, req: &mut Request<'_>) -> Result<Response, AppError> {
        match req.method() {
            "GET" | "HEAD" => Ok(self.login_page(200, None)),
            "POST" => self.login_post(req),
            _ => Err(AppError::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }),
        }
    }

    fn login_post(&self, req: &mut Request<'_>) -> Result<Response, AppError> {
        self.check_origin(req)?;
        let html = wants_html(req);
        let form = read_form(req)?;
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (Some(name), Some(password)) = (field("name"), field("password")) else {
            return Err(AppError::BadForm("a login needs name and password"));
        };
        let (who, token) = match self.access.login(req, name, password) {
            Ok(ok) => ok,
            Err(e) if html => return Ok(self.login_page(e.status(), Some(&e.to_string()))),
            Err(e) => return Err(e),
        };
        let cookie = session::set_cookie(&token, &self.cookie_path(), req.forwarded.secure);
        let r = match html {
            true => Response::new(303).header("Location", "/"),
            false => Response::json(200, self.session_fields(&who).finish()),
        };
        Ok(r.header("Set-Cookie", cookie)
            .header("Cache-Control", "no-store"))
    }

    /// `POST /logout`: the session ends here and in the browser.
    pub(crate) fn logout(&self, req: &Request<'_>) -> Result<Response, AppError> {
        if req.method() != "POST" {
            return Err(AppError::MethodNotAllowed { allow: "POST" });
        }
        self.check_origin(req)?;
        self.access.logout(req)?;
        let r = match wants_html(req) {
            true => Response::new(303).header("Location", "/"),
            false => Response::new(204),
        };
        let clear = session::clear_cookie(&self.cookie_path(), req.forwarded.secure);
        Ok(r.header("Set-Cookie", clear)
            .header("Cache-Control", "no-store"))
    }

    /// `GET /session`: `{"user","role","anonymous","may":{…}}` for the page.
    pub(crate) fn session_json(&self, req: &Request<'_>) -> Result<Response, AppError> {
        let who = match self.access.caller(req) {
            Ok(who) => who,
            // Credentials that do not verify are no session; the page offers the login.
            Err(AppError::Unauthorized) => Caller::Anonymous,
            Err(e) => return Ok(error_response(&e)),
        };
        let body = self.session_fields(&who).finish();
        Ok(Response::json(200, body).header("Cache-Control", "no-store"))
    }

    fn session_fields(&self, who: &Caller) -> Obj {
        let (user, role) = match who {
            Caller::Account { name, role, .. } => (Some(name.as_str()), Some(role.name())),
            Caller::Anonymous | Caller::Link(_) => (None, None),
        };
        // A link's holder learns what it holds: the page shows the album, or the upload form.
        let link = match who {
            Caller::Link(l) => Obj::new()
                .str("kind", l.kind.name())
                .str("target", &l.target)
                .str("expires_at", &crate::routes::expiry_time(l.expires_at))
                .finish(),
            _ => "null".to_string(),
        };
        let flag = |a: Action| {
            if self.access.allows(who, a) {
                "true"
            } else {
                "false"
            }
        };
        let may = Obj::new()
            .raw("upload", flag(Action::Upload))
            .raw("list", flag(Action::List))
            .raw("download", flag(Action::Download))
            .raw("delete", flag(Action::Delete))
            .raw("own_only", if who.own_only() { "true" } else { "false" })
            .raw("share", flag(Action::Share))
            .finish();
        Obj::new()
            .opt_str("user", user)
            .opt_str("role", role)
            .str("anonymous", self.cfg.anonymous.name())
            .raw("may", &may)
            .raw("link", &link)
    }
}

/// A small `application/x-www-form-urlencoded` body, at most `FORM_LIMIT` bytes.
pub(crate) fn read_form(req: &mut Request<'_>) -> Result<Vec<(String, String)>, AppError> {
    let text = read_small(
        req,
        "application/x-www-form-urlencoded",
        "send it as application/x-www-form-urlencoded",
    )?;
    Ok(crate::upload::query_fields(Some(&text)))
}

/// A small UTF-8 body of type `ctype`, at most `FORM_LIMIT` bytes (`wrong_type`: what a
/// request of another type is told).
pub(crate) fn read_small(
    req: &mut Request<'_>,
    ctype: &str,
    wrong_type: &'static str,
) -> Result<String, AppError> {
    let given = req.header("content-type").unwrap_or("");
    if !given.to_ascii_lowercase().starts_with(ctype) {
        return Err(AppError::BadForm(wrong_type));
    }
    if req.body.declared_len().is_some_and(|n| n > FORM_LIMIT) {
        return Err(UploadError::RequestTooLarge { limit: FORM_LIMIT }.into());
    }
    let mut body = Vec::new();
    (&mut req.body)
        .take(FORM_LIMIT + 1)
        .read_to_end(&mut body)
        .map_err(crate::http::body_error)?;
    if body.len() as u64 > FORM_LIMIT {
        return Err(UploadError::RequestTooLarge { limit: FORM_LIMIT }.into());
    }
    String::from_utf8(body).map_err(|_| AppError::BadForm("not UTF-8"))
}

impl App {
    /// The login page (`message`: why the last try failed).
    fn login_page(&self, status: u16, message: Option<&str>) -> Response {
        let note = message
            .map(|m| format!("<p class=\"err\" role=\"alert\">{}</p>", html_escape(m)))
            .unwrap_or_default();
        let page = crate::assets::with_base(&crate::assets::login_page(&note), &self.cfg.base_path);
        page_response(status, page)
    }
}

fn page_response(status: u16, page: String) -> Response {
    let mut r = Response::with_body(status, "text/html; charset=utf-8", page.into_bytes());
    for (k, v) in crate::assets::PAGE_HEADERS {
        r.set_header(k, *v);
    }
    r.set_header("Cache-Control", "no-store");
    r
}
