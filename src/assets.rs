//! The upload page, embedded from `static/` at build time so the binary is the whole deployment.
//! Every asset goes out with `nosniff` and the page with a strict Content-Security-Policy (no
//! inline script, nothing from other origins: the LAN may have no internet).

use sha2::{Digest, Sha256};

use crate::http::conditional::{self, Validators, Verdict};
use crate::http::{Request, Response};
use crate::storage::hex;

/// The page's Content-Security-Policy.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page's CSP when it may also send to `origin` (`--s3-direct`: the bucket's endpoint).
pub fn csp_connecting_to(origin: &str) -> String {
    PAGE_CSP.replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {origin}"),
    )
}

/// Headers every page asset carries.
pub const PAGE_HEADERS: &[(&str, &str)] = &[
    ("X-Content-Type-Options", "nosniff"),
    // Not "no-referrer": with it, Chromium sends `Origin: null` on form posts.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", PAGE_CSP),
    ("Cache-Control", "no-cache"),
];

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../static/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/style.css"),
    ),
    // Drawn by scripts/make-icons.py: the tab icon, the home-screen icons, and the manifest
    // that makes "Add to Home Screen" open the page like an app.
    (
        "favicon.ico",
        "image/x-icon",
        include_bytes!("../static/favicon.ico"),
    ),
    (
        "icon-180.png",
        "image/png",
        include_bytes!("../static/icon-180.png"),
    ),
    (
        "icon-192.png",
        "image/png",
        include_bytes!("../static/icon-192.png"),
    ),
    (
        "icon-512.png",
        "image/png",
        include_bytes!("../static/icon-512.png"),
    ),
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_bytes!("../static/manifest.webmanifest"),
    ),
];

/// The asset that browsers look for at a root path (`/favicon.ico`…), if `path` is one.
pub fn root_alias(path: &str) -> Option<&'static str> {
    match path {
        "/favicon.ico" => Some("favicon.ico"),
        "/apple-touch-icon.png" | "/apple-touch-icon-precomposed.png" => Some("icon-180.png"),
        "/manifest.webmanifest" => Some("manifest.webmanifest"),
        _ => None,
    }
}

/// A static asset by name, or `None`. With `--static-dir`, an edited copy of the same file is
/// read from that directory on every request (only the names above: nothing else is served
/// from it), falling back to the embedded one when the copy is missing. Each carries an ETag
/// (from its bytes), so a visit revalidates with `If-None-Match` and gets a 304, not the file.
pub fn get(
    name: &str,
    dir: Option<&std::path::Path>,
    base: &str,
    req: &Request<'_>,
) -> Option<Response> {
    let (_, ctype, bytes) = FILES.iter().find(|(n, _, _)| *n == name)?;
    let body: std::borrow::Cow<'static, [u8]> = match dir.map(|d| std::fs::read(d.join(name))) {
        Some(Ok(edited)) => edited.into(),
        _ => (*bytes).into(),
    };
    // Under `--base-path`, the page's and the manifest's own addresses carry it.
    let body = match (
        base.is_empty(),
        name.ends_with(".html") || name.ends_with(".webmanifest"),
    ) {
        (false, true) => with_base(&String::from_utf8_lossy(&body), base)
            .into_bytes()
            .into(),
        _ => body,
    };
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex(&digest[..12]));
    let v = Validators {
        etag: &etag,
        modified: None,
    };
    let mut r = match conditional::evaluate(req, &v) {
        Verdict::NotModified => Response::new(304),
        _ => Response::with_body(200, ctype, body),
    };
    for (k, v) in PAGE_HEADERS {
        r.set_header(k, *v);
    }
    r.set_header("ETag", etag);
    Some(r)
}

/// The login form (`note`: HTML of a message above it, already escaped). Posts to `/login`;
/// works without JavaScript.
pub fn login_page(note: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>pidrop — log in</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><h1>Log in</h1>{note}<form class=\"login\" method=\"post\" action=\"/login\"><label>Name <input name=\"name\" autocomplete=\"username\" autocapitalize=\"none\" required autofocus></label><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><button class=\"button\" type=\"submit\">Log in</button></form><p><a href=\"/\">Back to the upload page</a></p></main></body></html>"
    )
}

/// `text` (HTML, a manifest) with every absolute address in an attribute or a JSON string
/// (`"/…`) moved under `base` (`--base-path`): `href="/static/x"` → `href="/drop/static/x"`.
pub fn with_base(text: &str, base: &str) -> String {
    if base.is_empty() {
        return text.to_string();
    }
    text.replace("\"/", &format!("\"{base}/"))
}

/// The short page a no-JavaScript form post gets back; `items` is already escaped HTML.
pub fn result_page(items: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>pidrop — upload result</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><h1>Upload result</h1><ul class=\"result\">{items}</ul><p><a class=\"button\" href=\"/\">Upload more</a></p></main></body></html>"
    )
}
