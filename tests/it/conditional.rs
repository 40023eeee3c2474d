//! Conditional requests and caching through the real binary (RFC 9110 §13, RFC 9111): what a
//! browser cache, `curl -C -` and a careful script rely on.

use crate::harness::*;

fn stored(srv: &Server) -> (String, String, String) {
    let put = request(srv.addr, "PUT", "/upload/a.txt", &[], b"0123456789abcdef");
    assert_eq!(put.status, 201);
    let url = put.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let got = srv.get(&url);
    let etag = got.header("ETag").expect("etag").to_string();
    let modified = got
        .header("Last-Modified")
        .expect("last-modified")
        .to_string();
    (url, etag, modified)
}

#[test]
fn downloads_answer_every_conditional_header() {
    let srv = Server::start(&[]);
    let (url, etag, modified) = stored(&srv);
    let get = |h: &[(&str, &str)]| request(srv.addr, "GET", &url, h, b"");
    let weak = format!("W/{etag}");
    // If-None-Match uses the weak comparison; If-Modified-Since gives 304 too.
    assert_eq!(get(&[("If-None-Match", &etag)]).status, 304);
    assert_eq!(get(&[("If-None-Match", &weak)]).status, 304);
    assert_eq!(get(&[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(get(&[("If-Modified-Since", &modified)]).status, 304);
    assert_eq!(
        get(&[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status,
        200
    );
    assert_eq!(
        get(&[("If-Modified-Since", "yesterday")]).status,
        200,
        "bad dates are ignored"
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        get(&[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &modified)
        ])
        .status,
        200
    );
    // If-Match / If-Unmodified-Since on a GET.
    assert_eq!(get(&[("If-Match", "\"other\"")]).status, 412);
    assert_eq!(
        get(&[("If-Match", &weak)]).status,
        412,
        "If-Match is strong"
    );
    assert_eq!(
        get(&[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status,
        412
    );
    // If-Range: only a strong, current validator keeps the range.
    let range = ("Range", "bytes=2-5");
    let r = get(&[range, ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"2345"[..]));
    let r = get(&[range, ("If-Range", &modified)]);
    assert_eq!(r.status, 206);
    for stale in [weak.as_str(), "\"other\"", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let r = get(&[range, ("If-Range", stale)]);
        assert_eq!((r.status, r.body.len()), (200, 16), "If-Range {stale}");
    }
    // A stored file never changes under its name.
    let cc = get(&[])
        .header("Cache-Control")
        .expect("cache-control")
        .to_string();
    assert!(
        cc.contains("immutable") && cc.contains("private") && cc.contains("max-age=31536000"),
        "{cc}"
    );
}

#[test]
fn deletes_honour_preconditions() {
    let srv = Server::start(&[]);
    let (url, etag, modified) = stored(&srv);
    for (h, v) in [
        ("If-Match", "\"other\""),
        ("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("If-None-Match", etag.as_str()),
    ] {
        let r = request(srv.addr, "DELETE", &url, &[(h, v)], b"");
        assert_eq!(r.status, 412, "{h}: {v}");
        assert_eq!(r.json()["error"]["code"], "precondition_failed");
        assert_eq!(srv.get(&url).status, 200, "still there after {h}");
    }
    let r = request(
        srv.addr,
        "DELETE",
        &url,
        &[("If-Match", &etag), ("If-Unmodified-Since", &modified)],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(srv.get(&url).status, 404);
}

#[test]
fn page_assets_revalidate_to_304() {
    let srv = Server::start(&[]);
    for path in ["/", "/static/app.js", "/static/style.css"] {
        let first = srv.get(path);
        assert_eq!(first.status, 200);
        let etag = first.header("ETag").expect("etag").to_string();
        assert_eq!(first.header("Cache-Control"), Some("no-cache"));
        let again = request(srv.addr, "GET", path, &[("If-None-Match", &etag)], b"");
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
}

#[test]
fn options_star_and_unknown_methods() {
    let srv = Server::start(&[]);
    let out = raw(
        srv.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        "{text}"
    );
    // PATCH is known (tus), so elsewhere it is 405; methods pidrop never implements are 501.
    assert_eq!(request(srv.addr, "PATCH", "/files", &[], b"").status, 405);
    for m in ["BREW", "PROPFIND"] {
        let r = request(srv.addr, m, "/files", &[], b"");
        assert_eq!(r.status, 501, "{m}");
        assert_eq!(r.json()["error"]["code"], "not_implemented");
    }
}
