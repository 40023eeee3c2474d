//! Method + path → handler, the Origin check for state-changing requests, and the one place an
//! error becomes a response (`error_response`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access::Caller;
use crate::assets;
use crate::config::Config;
use crate::error::{AppError, UploadError};
use crate::hosts::Hosts;
use crate::http::{Request, Response, Service};
use crate::json::{self, Obj};
use crate::metrics::{Gauges, Metrics, Via};
use crate::serve;
use crate::storage::LinkKind;
use crate::storage::{is_stored_name, Cursor, Filter, Meta, Store};
use crate::time::rfc3339;
use crate::upload::{self, Outcome};
use crate::validate;

/// The application: configuration, storage, start time.
pub struct App {
    pub cfg: Config,
    pub hosts: Hosts,
    /// Foreign `Host` refusals, logged as a summary.
    pub host_refusals: crate::refusals::Refusals,
    pub store: std::sync::Arc<Store>,
    pub started: Instant,
    #[cfg(feature = "thumbnails")]
    pub thumbs: std::sync::Arc<crate::thumbs::Thumbs>,
    /// Work after a commit (thumbnails), off the request's time.
    pub after_commit: crate::after_commit::AfterCommit,
    /// Resumable uploads (`/tus`).
    pub tus: std::sync::Arc<crate::tus::Tus>,
    /// Direct browser-to-bucket uploads waiting for their confirmation (`--s3-direct`).
    #[cfg(feature = "s3")]
    pub direct: crate::upload::direct::Direct,
    /// Who the caller is and what it may do.
    pub access: crate::access::Access,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The server core's load, for `/metrics`.
    pub load: Arc<crate::http::Load>,
}

impl Service for App {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let started = Instant::now();
        crate::proxy::apply(&self.cfg.trusted_proxies, &self.cfg.base_path, req);
        let r = match self.route(req) {
            Ok(r) => r,
            Err(e) => {
                if e.status() >= 500 {
                    log::error!("{} {}: {e}", req.method(), req.path());
                }
                error_response(&e)
            }
        };
        self.metrics.answered(r.status, r.code, started.elapsed());
        let mut r = r;
        // Addresses in headers are made here, once, under `--base-path`.
        for h in ["Location", "Pidrop-File-Url"] {
            if let Some(v) = r.header_value(h).filter(|v| v.starts_with('/')) {
                let v = self.url(v);
                r.set_header(h, v);
            }
        }
        if r.status == 401 && may_challenge(req) {
            r.set_header(
                "WWW-Authenticate",
                "Basic realm=\"pidrop\", charset=\"UTF-8\"",
            );
        }
        r
    }

    fn error(&self, err: &AppError) -> Response {
        let r = error_response(err);
        self.metrics.answered(r.status, r.code, Duration::ZERO);
        r
    }
}

/// An error's JSON fields: a stable code, a sentence, and the limit when it has one.
fn error_fields(o: Obj, e: &AppError) -> Obj {
    let o = o.str("code", e.code()).str("message", &e.to_string());
    match e.limit() {
        Some(limit) => o.num("limit", limit),
        None => o,
    }
}

/// What a request needs to be allowed to do, if anything: the page, its assets, `/config` and
/// `/healthz` are open; OPTIONS (CORS preflight, tus discovery) too.
fn required(method: &str, path: &str) -> Option<crate::access::Action> {
    use crate::access::Action;
    let read = method == "GET" || method == "HEAD";
    if method == "OPTIONS" {
        return None;
    }
    Some(match path {
        "/tus" | "/upload" => Action::Upload,
        p if p.starts_with("/tus/") || p.starts_with("/upload/") => Action::Upload,
        "/files" | "/files/" => Action::List,
        p if p.starts_with("/files/") && read => Action::Download,
        p if p.starts_with("/files/") => return None, // `Access::check_delete` in `file`
        p if p.starts_with("/thumbnails/") => Action::Download,
        "/metrics" => Action::Metrics,
        "/links" => Action::Share,
        p if p.starts_with("/links/") => Action::Share,
        _ => return None,
    })
}

/// Whether a 401 may carry a Basic challenge: not for the page's own requests (`fetch`/XHR say
/// `Sec-Fetch-Dest: empty`), where the browser would pop up its own password dialog.
fn may_challenge(req: &Request<'_>) -> bool {
    matches!(req.header("sec-fetch-dest"), None | Some("document")) && req.path() != "/login"
}

/// The one mapping from an error to what the client sees: JSON with a code and a sentence.
pub fn error_response(e: &AppError) -> Response {
    let inner = error_fields(Obj::new(), e);
    let body = Obj::new().raw("error", &inner.finish()).finish();
    let mut r = Response::json(e.status(), body);
    r.code = Some(e.code());
    if let AppError::MethodNotAllowed { allow } = e {
        r.set_header("Allow", *allow);
    }
    if matches!(e, AppError::Busy) {
        r.set_header("Retry-After", "1");
    }
    if let AppError::TooManyFailures { retry_after } = e {
        r.set_header("Retry-After", retry_after.to_string());
    }
    if matches!(e, AppError::Http(_)) {
        r.close = true;
    }
    r
}

const READ_ONLY: &str = "GET, HEAD";
/// Every method pidrop implements; any other is 501 (RFC 9110 §9.1).
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl App {
    fn route(&self, req: &mut Request<'_>) -> Result<Response, AppError> {
        self.check_host(req)?;
        let path = req.path().to_string();
        let method = req.method().to_string();
        let read = method == "GET" || method == "HEAD";
        // Debug builds only: lets the integration tests prove a panic answers 500 and the
        // worker lives on. Release builds do not have this route.
        #[cfg(debug_assertions)]
        if path == "/debug/panic" {
            panic!("panic requested by /debug/panic");
        }
        if !KNOWN_METHODS.contains(&method.as_str()) {
            return Err(AppError::NotImplemented);
        }
        if method == "OPTIONS" && path == "*" {
            return Ok(Response::new(200).header("Allow", KNOWN_METHODS.join(", ")));
        }
        // Who may do what: decided here, once, before any handler runs (a delete, which may
        // also be allowed by a delete token or ownership, in `file`).
        let caller = match required(&method, &path).map(|a| self.access.check(req, a)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let mut r = error_response(&e);
                if path == "/tus" || path.starts_with("/tus/") {
                    r.set_header("Tus-Resumable", crate::tus::VERSION);
                }
                return Ok(r);
            }
            None => Caller::Anonymous,
        };
        let owner = caller.owner(req.peer.ip());
        // An uploader sees only its own files: anyone else's is not there.
        if caller.own_only() && (path.starts_with("/files/") || path.starts_with("/thumbnails/")) {
            let name = path.rsplit('/').next().unwrap_or("");
            if read && self.store.get(name).is_none_or(|m| m.owner != owner) {
                return Err(AppError::NotFound);
            }
        }
        // A link's holder gets its file or album, nothing else.
        if let Caller::Link(link) = &caller {
            self.within_link(link, &method, &path)?;
        }
        if let Some(name) = assets::root_alias(&path).filter(|_| read) {
            return self.asset(name, req);
        }
        let by = upload::By {
            owner,
            album: match &caller {
                Caller::Link(l) if l.kind == LinkKind::Upload => Some(l.target.clone()),
                _ => None,
            },
        };
        let cfg = self.upload_cfg(&caller);
        if path == "/tus" || path.starts_with("/tus/") {
            let admin = caller.is_admin() || self.cfg.anonymous == crate::access::Anonymous::Admin;
            let who = crate::tus::Uploader {
                owner: &by.owner,
                admin,
                album: by.album.as_deref(),
            };
            return Ok(self.tus(&cfg, req, path.strip_prefix("/tus/"), who));
        }
        match path.as_str() {
            "/" | "/index.html" if read => self.asset("index.html", req),
            "/" => Err(AppError::MethodNotAllowed { allow: READ_ONLY }),
            p if p.starts_with("/static/") && read => self.asset(&p["/static/".len()..], req),
            "/healthz" if read => Ok(self.health()),
            "/metrics" if read => Ok(self.metrics_text()),
            "/metrics" => Err(AppError::MethodNotAllowed { allow: READ_ONLY }),
            "/config" if read => Ok(self.client_config()),
            "/login" => self.login(req),
            "/logout" => self.logout(req),
            "/session" if read => self.session_json(req),
            "/session" => Err(AppError::MethodNotAllowed { allow: READ_ONLY }),
            "/healthz" | "/config" => Err(AppError::MethodNotAllowed { allow: READ_ONLY }),
            "/upload" if method == "POST" => self.post_upload(&cfg, req, &by),
            "/upload" => Err(AppError::MethodNotAllowed { allow: "POST" }),
            // Before `PUT /upload/<name>`: a file may be called "presign".
            #[cfg(feature = "s3")]
            "/upload/presign" if method == "POST" => self.presign(&cfg, req, &by),
            #[cfg(feature = "s3")]
            p if p.starts_with("/upload/confirm/") && method == "POST" => {
                self.confirm(&cfg, req, &p["/upload/confirm/".len()..], &by)
            }
            p if p.starts_with("/upload/") => {
                self.put_upload(&cfg, req, &p["/upload/".len()..], &by)
            }
            "/links" => self.links(req, &caller),
            p if p.starts_with("/links/") => self.revoke_link(req, &p["/links/".len()..], &caller),
            p if p.starts_with("/s/") && read => self.shared(req, &p["/s/".len()..]),
            p if p.starts_with("/thumbnails/") && read => {
                self.thumbnail(&p["/thumbnails/".len()..])
            }
            "/files" | "/files/" if read => self.listing(req, &caller),
            "/files" | "/files/" => Err(AppError::MethodNotAllowed { allow: READ_ONLY }),
            p if p.starts_with("/files/") => self.file(req, &p["/files/".len()..]),
            _ => Err(AppError::NotFound),
        }
    }

    /// `/tus`, `/tus/<id>`: resumable uploads. State-changing requests pass the Origin check
    /// first; the answer always carries the tus headers.
    fn tus(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        id: Option<&str>,
        who: crate::tus::Uploader<'_>,
    ) -> Response {
        let safe = matches!(req.method(), "GET" | "HEAD" | "OPTIONS");
        if !safe {
            if let Err(e) = self.check_origin(req) {
                let mut r = error_response(&e);
                r.set_header("Tus-Resumable", crate::tus::VERSION);
                return r;
            }
        }
        let reply = self.tus.handle(cfg, req, id, who);
        if let Some((m, _token)) = reply.stored {
            self.stored(
                Via::Tus,
                &Outcome {
                    stored: vec![m],
                    delete_tokens: vec![],
                    refused: vec![],
                    fields: vec![],
                },
            );
        }
        reply.response
    }

    /// DNS rebinding is refused here, before any route, for every method.
    fn check_host(&self, req: &Request<'_>) -> Result<(), AppError> {
        if self.hosts.allows(req.host(), req.peer.ip()) {
            return Ok(());
        }
        let host = req.host().unwrap_or("");
        let why = format!("Host {host:?} is not one of this machine's names (see --hosts)");
        self.host_refusals.note(req.peer.ip(), &why);
        Err(AppError::MisdirectedHost)
    }

    pub(crate) fn asset(&self, name: &str, req: &Request<'_>) -> Result<Response, AppError> {
        let mut r = assets::get(
            name,
            self.cfg.static_dir.as_deref(),
            &self.cfg.base_path,
            req,
        )
        .ok_or(AppError::NotFound)?;
        if let Some(origin) = self.bucket_origin() {
            r.set_header("Content-Security-Policy", assets::csp_connecting_to(origin));
        }
        Ok(r)
    }

    /// With direct uploads, the bucket's endpoint: the page talks to it too.
    fn bucket_origin(&self) -> Option<&str> {
        #[cfg(feature = "s3")]
        return self
            .cfg
            .s3
            .as_ref()
            .filter(|s| s.direct)
            .map(|s| s.endpoint.trim_end_matches('/'));
        #[cfg(not(feature = "s3"))]
        None
    }

    /// An address pidrop emits: `path` under `--base-path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.base_path, path)
    }

    /// The path session cookies are sent for.
    pub(crate) fn cookie_path(&self) -> String {
        self.url("/")
    }

    /// `http://host` or `https://host` as the client reached pidrop (through a trusted proxy).
    pub(crate) fn origin_of(&self, req: &Request<'_>) -> String {
        let scheme = if req.forwarded.secure {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", req.host().unwrap_or("localhost"))
    }

    /// `POST /upload`: a multipart form; JSON, or a page for a form posted without JavaScript.
    fn post_upload(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        by: &upload::By,
    ) -> Result<Response, AppError> {
        self.check_origin(req)?;
        let html = wants_html(req);
        let outcome = upload::multipart(cfg, &self.store, req, by)?;
        self.stored(Via::Multipart, &outcome);
        Ok(if html {
            outcome_page(&outcome, &self.cfg.base_path)
        } else {
            self.outcome_json(&outcome)
        })
    }

    /// `PUT /upload/<name>`: the body is the file.
    fn put_upload(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        name: &str,
        by: &upload::By,
    ) -> Result<Response, AppError> {
        if req.method() != "PUT" {
            return Err(AppError::MethodNotAllowed { allow: "PUT" });
        }
        self.check_origin(req)?;
        if name.is_empty() || name.contains('/') {
            return Err(UploadError::BadName.into());
        }
        let (meta, token) = upload::put(cfg, &self.store, req, name, by)?;
        Ok(self.one_stored(Via::Put, meta, token))
    }

    /// The answer to a request that stored one file (201, its JSON, its `Location`).
    fn one_stored(&self, via: Via, meta: Arc<Meta>, delete_token: String) -> Response {
        let url = file_url(&meta);
        let out = Outcome {
            stored: vec![meta],
            delete_tokens: vec![delete_token],
            refused: vec![],
            fields: vec![],
        };
        self.stored(via, &out);
        self.outcome_json(&out).header("Location", url)
    }

    /// `POST /upload/presign` (`--s3-direct`): a presigned POST for the browser, and where to
    /// confirm it (`upload/direct.rs`). 404 when direct uploads are off.
    #[cfg(feature = "s3")]
    fn presign(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        by: &upload::By,
    ) -> Result<Response, AppError> {
        self.check_direct(req)?;
        let body =
            crate::login::read_small(req, "application/json", "send it as application/json")?;
        let fields = upload::query_fields(req.head.query.as_deref());
        let p = self.direct.presign(cfg, &self.store, &body, fields, by)?;
        let form = json::string_map(p.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = Obj::new()
            .str("url", &p.url)
            .raw("fields", &form)
            .str(
                "confirm",
                &self.url(&format!("/upload/confirm/{}", p.token)),
            )
            .finish();
        Ok(Response::json(200, body).header("Cache-Control", "no-store"))
    }

    /// `POST /upload/confirm/<token>`: the browser's file checked in the bucket and listed
    /// (201, as an upload), or refused and removed.
    #[cfg(feature = "s3")]
    fn confirm(
        &self,
        cfg: &Config,
        req: &mut Request<'_>,
        token: &str,
        by: &upload::By,
    ) -> Result<Response, AppError> {
        self.check_direct(req)?;
        let (meta, delete_token) = self.direct.confirm(cfg, &self.store, token, by)?;
        Ok(self.one_stored(Via::Direct, meta, delete_token))
    }

    /// A direct-upload request: from an allowed origin, and only when they are on (404).
    #[cfg(feature = "s3")]
    fn check_direct(&self, req: &Request<'_>) -> Result<(), AppError> {
        self.check_origin(req)?;
        match self.direct_uploads() {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    /// Whether browsers may upload straight to the bucket.
    fn direct_uploads(&self) -> bool {
        #[cfg(feature = "s3")]
        return self.cfg.s3.as_ref().is_some_and(|s| s.direct);
        #[cfg(not(feature = "s3"))]
        false
    }

    /// `/files/<name>`: download or delete. Only our own names: no decoding, no path, nothing a
    /// request can steer.
    fn file(&self, req: &Request<'_>, name: &str) -> Result<Response, AppError> {
        if !is_stored_name(name) {
            return Err(AppError::NotFound);
        }
        match req.method() {
            "GET" | "HEAD" => serve::file(&self.store, req, name),
            "DELETE" => {
                self.check_origin(req)?;
                let meta = self.store.get(name);
                self.access.check_delete(req, meta.as_deref())?;
                let meta = meta.ok_or(AppError::NotFound)?;
                serve::check_delete(req, &meta)?;
                match self.remove_file(&meta)? {
                    true => Ok(Response::new(204)),
                    false => Err(AppError::NotFound),
                }
            }
            _ => Err(AppError::MethodNotAllowed {
                allow: "GET, HEAD, DELETE",
            }),
        }
    }

    /// Removes a stored file with its thumbnail, then runs `--on-delete`; false if it was
    /// already gone.
    fn remove_file(&self, meta: &Arc<Meta>) -> Result<bool, AppError> {
        #[cfg(feature = "thumbnails")]
        self.thumbs.remove(&meta.name);
        let removed = self.store.delete(&meta.name)?;
        if removed {
            self.hook("delete", self.cfg.hooks.on_delete.as_ref(), meta);
        }
        Ok(removed)
    }

    /// Removes every file whose time is up (they were already neither listed nor served);
    /// the number removed. Run now and then by the expiry thread.
    pub fn sweep_expired(&self) -> usize {
        let mut removed = 0;
        loop {
            let batch = match self
                .store
                .catalogue()
                .expired_files(crate::time::now_secs(), 256)
            {
                Ok(b) => b,
                Err(e) => {
                    log::error!("cannot look for expired files: {e}");
                    return removed;
                }
            };
            let full = batch.len() == 256;
            for m in batch {
                match self.remove_file(&Arc::new(m)) {
                    Ok(_) => removed += 1,
                    Err(e) => {
                        log::error!("cannot remove an expired file: {e}");
                        return removed;
                    }
                }
            }
            if !full {
                return removed;
            }
        }
    }

    /// The JSON object of one stored file; its owner only for admins.
    pub fn meta_json(&self, m: &Meta, admin: bool) -> String {
        let o = match admin {
            true => Obj::new().str("owner", &m.owner),
            false => Obj::new(),
        };
        self.meta_fields(o, m).finish()
    }

    /// A stored file's fields, added to `o`.
    fn meta_fields(&self, o: Obj, m: &Meta) -> Obj {
        o.str("name", &m.name)
            .str("original_name", &m.original_name)
            .num("size", m.size)
            .str("type", &m.mime)
            .opt_str("sha256", Some(m.sha256.as_str()).filter(|s| !s.is_empty()))
            .str("url", &self.url(&file_url(m)))
            .opt_str("thumbnail_url", self.thumbnail_url(m).as_deref())
            .str("uploaded_at", &rfc3339(m.uploaded_time()))
            .opt_str("album", Some(m.album.as_str()).filter(|a| !a.is_empty()))
            .opt_str("expires_at", m.expires_at.map(expiry_time).as_deref())
            .raw(
                "gps_stripped",
                if m.gps_stripped { "true" } else { "false" },
            )
            .raw(
                "fields",
                &json::string_map(m.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
    }

    fn outcome_json(&self, o: &Outcome) -> Response {
        let errors = o
            .refused
            .iter()
            .map(|(name, e)| error_fields(Obj::new().str("original_name", name), e).finish());
        // The upload's answer is the one place a file's delete token is ever shown.
        let files = o.stored.iter().enumerate().map(|(i, m)| {
            let f = self.meta_fields(Obj::new(), m);
            match o.delete_tokens.get(i) {
                Some(t) => f.str("delete_token", t).finish(),
                None => f.finish(),
            }
        });
        let mut body = Obj::new()
            .raw("files", &json::array(files))
            .raw("errors", &json::array(errors))
            .raw(
                "fields",
                &json::string_map(o.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            );
        if o.stored.is_empty() && o.refused.is_empty() {
            let e = AppError::Upload(UploadError::NoFile);
            body = body.raw("error", &error_fields(Obj::new(), &e).finish());
        }
        Response::json(status_of(o), body.finish())
    }

    /// `GET /metrics`: the Prometheus text format.
    fn metrics_text(&self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let (files, bytes) = self.store.totals();
        let g = Gauges {
            busy_workers: self.load.busy.load(Relaxed) as u64,
            uploads_in_flight: self.load.uploading.load(Relaxed) as u64,
            queued_connections: self.load.queued.load(Relaxed) as u64,
            free_bytes: self.store.free_space().unwrap_or(0),
            files,
            bytes,
            unfinished_uploads: self.store.catalogue().count_unfinished(None).unwrap_or(0),
            after_commit_waiting: self.after_commit.waiting(),
            after_commit_dropped: self.after_commit.dropped(),
            hook_failures: crate::hooks::failures(),
            #[cfg(feature = "thumbnails")]
            thumbnail_failures: crate::thumbs::failures(),
            #[cfg(not(feature = "thumbnails"))]
            thumbnail_failures: 0,
        };
        let text = self.metrics.render(&g);
        Response::with_body(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            text.into_bytes(),
        )
        .header("Cache-Control", "no-store")
    }

    /// After a commit: count the files, queue the thumbnails and the `--on-upload` hook (never
    /// delays the answer).
    fn stored(&self, via: Via, o: &Outcome) {
        for m in &o.stored {
            self.metrics.stored(via, m.size);
            self.hook("upload", self.cfg.hooks.on_upload.as_ref(), m);
            #[cfg(feature = "thumbnails")]
            if let Some(src) = self.store.local_path(m) {
                self.thumbs.queue(&self.after_commit, src, &m.name, &m.mime);
            }
        }
    }

    /// Queues a post-commit hook (`--on-upload`, `--on-delete`) for one file.
    fn hook(&self, event: &'static str, argv: Option<&Vec<String>>, m: &Arc<Meta>) {
        let Some(argv) = argv.cloned() else { return };
        let path = self.store.local_path(m).unwrap_or_default();
        let meta = Arc::clone(m);
        let timeout = self.cfg.hooks.timeout;
        self.after_commit
            .submit(format!("{event} hook for {}", m.name), move || {
                let e = crate::hooks::Event {
                    event,
                    meta: &meta,
                    path: &path,
                };
                crate::hooks::notify(&argv, &e, timeout);
            });
    }

    /// Where its thumbnail is, if it has one (not for files in a bucket: no local file to read).
    fn thumbnail_url(&self, m: &Meta) -> Option<String> {
        #[cfg(feature = "thumbnails")]
        if !self.store.is_remote() && self.thumbs.available(&m.name, &m.mime) {
            return Some(self.url(&format!("/thumbnails/{}", m.name)));
        }
        let _ = m;
        None
    }

    /// `GET /thumbnails/<name>`: cached, or made now (and cached) if the worker has not yet.
    fn thumbnail(&self, name: &str) -> Result<Response, AppError> {
        if !is_stored_name(name) {
            return Err(AppError::NotFound);
        }
        #[cfg(feature = "thumbnails")]
        {
            use crate::thumbs::{NoThumb, REQUEST_WAIT};
            let meta = self.store.get(name).ok_or(AppError::NotFound)?;
            let src = self.store.local_path(&meta).ok_or(AppError::NotFound)?;
            match self
                .thumbs
                .ensure(&src, name, &meta.mime, Some(REQUEST_WAIT))
            {
                Ok(path) => serve::thumbnail(&path),
                Err(NoThumb::Never) => Err(AppError::NotFound),
                Err(NoThumb::Busy) => Err(AppError::Busy),
            }
        }
        #[cfg(not(feature = "thumbnails"))]
        Err(AppError::NotFound)
    }

    /// CSRF: a browser on another site can POST here without a preflight. Same-origin requests
    /// and requests without an Origin (curl, scripts) pass; foreign origins get 403.
    pub(crate) fn check_origin(&self, req: &Request<'_>) -> Result<(), AppError> {
        // Set by the browser itself; a page cannot forge it.
        if req.header("sec-fetch-site") == Some("same-origin") {
            return Ok(());
        }
        if let Some(origin) = req.header("origin") {
            let origin = origin.trim_end_matches('/');
            let host = req.host().unwrap_or("");
            let same = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
                && !host.is_empty();
            if same || self.cfg.origins.iter().any(|o| o == origin) {
                return Ok(());
            }
            return Err(AppError::ForbiddenOrigin);
        }
        match req.header("sec-fetch-site") {
            None | Some("same-origin") | Some("none") => Ok(()),
            Some(_) => Err(AppError::ForbiddenOrigin),
        }
    }

    fn listing(&self, req: &Request<'_>, caller: &Caller) -> Result<Response, AppError> {
        let mut cursor = None;
        let mut limit = 100usize;
        let mut album = None;
        for (k, v) in upload::query_fields(req.head.query.as_deref()) {
            match k.as_str() {
                "cursor" => {
                    let c = Cursor::parse(&v).ok_or(AppError::BadQuery("malformed cursor"))?;
                    cursor = Some(c);
                }
                "limit" => limit = v.parse().unwrap_or(100).clamp(1, 1000),
                "album" => {
                    let a = upload::placement::album_name(&v)
                        .ok_or(AppError::BadQuery("malformed album name"))?;
                    album = Some(a.to_string());
                }
                _ => {}
            }
        }
        // An album link lists its album, whatever the query asks.
        if let Caller::Link(l) = caller {
            album = Some(l.target.clone());
        }
        let own = caller.own_only().then(|| caller.owner(req.peer.ip()));
        let filter = Filter {
            owner: own.as_deref(),
            album: album.as_deref(),
            now: crate::time::now_secs(),
        };
        let (page, next) = self.store.list(cursor.as_ref(), limit, &filter)?;
        let body = Obj::new()
            .raw(
                "files",
                &json::array(page.iter().map(|m| self.meta_json(m, caller.is_admin()))),
            )
            .opt_str("next", next.as_deref())
            .finish();
        Ok(Response::json(200, body).header("Cache-Control", "no-store"))
    }

    fn health(&self) -> Response {
        let (files, bytes) = self.store.totals();
        let free = self.store.free_space().unwrap_or(0);
        let base = Obj::new()
            .str("version", env!("CARGO_PKG_VERSION"))
            .num("uptime_s", self.started.elapsed().as_secs())
            .num("files", files)
            .num("bytes", bytes)
            .num("free_bytes", free);
        // `--max-total`: what is stored against it.
        let base = match self.store.max_total() {
            Some(max) => base
                .num("max_total", max)
                .num("total_left", max.saturating_sub(bytes)),
            None => base,
        };
        match self.store.writable() {
            Ok(()) => Response::json(200, base.str("status", "ok").finish()),
            Err(why) => {
                let body = base
                    .str("status", "unavailable")
                    .str("reason", &format!("upload directory is not usable: {why}"))
                    .finish();
                Response::json(503, body)
            }
        }
        .header("Cache-Control", "no-store")
    }

    /// The limits the page checks against, so they are never duplicated in JavaScript.
    fn client_config(&self) -> Response {
        let allow = match self.cfg.allow.extensions() {
            Some(list) => json::strings(list.iter().map(String::as_str)),
            None => "null".to_string(),
        };
        let free = self.store.free_space().unwrap_or(0);
        let body = Obj::new()
            .num("max_size", self.cfg.max_size)
            .num("max_request", self.cfg.max_request)
            .raw("allow", &allow)
            .raw("kinds", &self.allowed_kinds())
            .num("min_free", self.cfg.min_free)
            .num("free_bytes", free)
            .raw(
                "direct_upload",
                if self.direct_uploads() {
                    "true"
                } else {
                    "false"
                },
            )
            .finish();
        Response::json(200, body).header("Cache-Control", "no-store")
    }
}

impl App {
    /// The allowed extensions grouped by kind (`[{"kind":"photos","extensions":[…]},…]`), so
    /// the page can say "photos, videos, …" instead of a wall of extensions; `null` for any.
    fn allowed_kinds(&self) -> String {
        let Some(list) = self.cfg.allow.extensions() else {
            return "null".to_string();
        };
        let groups = crate::validate::KINDS.iter().filter_map(|kind| {
            let exts: Vec<&str> = list
                .iter()
                .map(String::as_str)
                .filter(|e| validate::kind_of(e) == *kind)
                .collect();
            (!exts.is_empty()).then(|| {
                let names = json::strings(exts);
                Obj::new()
                    .str("kind", kind)
                    .raw("extensions", &names)
                    .finish()
            })
        });
        json::array(groups)
    }
}

/// An expiry (seconds since the Unix epoch) as RFC 3339.
pub(crate) fn expiry_time(secs: u64) -> String {
    rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn file_url(m: &Meta) -> String {
    format!("/files/{}", m.name)
}

fn status_of(o: &Outcome) -> u16 {
    if !o.stored.is_empty() {
        201
    } else {
        o.refused.first().map(|(_, e)| e.status()).unwrap_or(400)
    }
}

/// A form posted without JavaScript prefers a page to JSON.
pub(crate) fn wants_html(req: &Request<'_>) -> bool {
    let accept = req.header("accept").unwrap_or("");
    accept.contains("text/html") && req.header("x-requested-with").is_none()
}

fn outcome_page(o: &Outcome, base: &str) -> Response {
    let mut items = String::new();
    for m in &o.stored {
        items.push_str(&format!(
            "<li>Saved <a href=\"{}\">{}</a> ({})</li>",
            file_url(m),
            html_escape(&m.original_name),
            crate::error::human_size(m.size)
        ));
    }
    for (name, e) in &o.refused {
        items.push_str(&format!(
            "<li class=\"err\">Not saved: {} — {}</li>",
            html_escape(name),
            html_escape(&e.to_string())
        ));
    }
    if o.stored.is_empty() && o.refused.is_empty() {
        items.push_str("<li class=\"err\">No file was chosen.</li>");
    }
    let page = assets::with_base(&assets::result_page(&items), base);
    let mut r = Response::with_body(status_of(o), "text/html; charset=utf-8", page.into_bytes());
    for (k, v) in assets::PAGE_HEADERS {
        r.set_header(k, *v);
    }
    r
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
