//! Behind a reverse proxy, through the real binary: from `--trusted-proxies` the forwarded
//! client address (owners, throttling), HTTPS (`Secure` cookies, `https://` links) and host
//! (the allow-list) are believed, from anyone else not; `--base-path /drop` is taken off
//! requests (with or without it) and put on every address pidrop emits. Caddy in front for
//! real: `tests/caddy/check.py`.

use crate::access::basic;
use crate::harness::{png, request, Resp, Server};
use crate::login::first_password;

fn with(srv: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request(srv.addr, method, path, headers, body)
}

#[test]
fn a_trusted_proxy_is_believed_and_every_address_carries_the_base_path() {
    let mut srv =
        Server::start_as_shipped(&["--trusted-proxies", "127.0.0.0/8", "--base-path", "/drop/"]);
    let pw = first_password(&mut srv);
    let admin = basic("admin", &pw);
    let proxied = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
    ];
    let put = with(&srv, "PUT", "/drop/upload/a.png", &proxied, &png(10));
    assert_eq!(put.status, 201, "{}", put.text());
    let url = put.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(url.starts_with("/drop/files/"), "{url}");
    assert_eq!(put.header("Location"), Some(url.as_str()));
    // The proxy may also strip the prefix itself: both reach the same file.
    let auth = [("Authorization", admin.as_str())];
    assert_eq!(with(&srv, "GET", &url, &auth, b"").status, 200);
    assert_eq!(
        with(&srv, "GET", &url["/drop".len()..], &auth, b"").status,
        200
    );
    let listed = with(&srv, "GET", "/drop/files", &auth, b"").json();
    assert_eq!(listed["files"][0]["owner"], "anonymous:203.0.113.7");

    // The page and its manifest point under /drop.
    let page = srv.get("/drop/");
    assert_eq!(page.status, 200);
    for want in [
        "href=\"/drop/static/style.css\"",
        "src=\"/drop/static/app.js\"",
        "action=\"/drop/upload\"",
    ] {
        assert!(page.text().contains(want), "{want}");
    }
    assert!(srv
        .get("/drop/manifest.webmanifest")
        .text()
        .contains("\"start_url\": \"/drop/\""));
    assert_eq!(srv.get("/drop/static/app.js").status, 200);

    // A login over HTTPS through the proxy: a Secure cookie for /drop/; tus addresses too.
    let form = format!("name=admin&password={pw}");
    let mut h = proxied.to_vec();
    h.push(("Content-Type", "application/x-www-form-urlencoded"));
    let login = with(&srv, "POST", "/drop/login", &h, form.as_bytes());
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login.header("Set-Cookie").expect("cookie");
    assert!(
        cookie.contains("Path=/drop/") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
    let tus = with(
        &srv,
        "POST",
        "/drop/tus",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "10"),
            ("Upload-Metadata", "filename YS5wbmc="),
        ],
        b"",
    );
    assert_eq!(tus.status, 201, "{}", tus.text());
    assert!(tus
        .header("Location")
        .is_some_and(|l| l.starts_with("/drop/tus/")));
    // A link made through the proxy for the host the client asked for.
    let make_link = |host: &str| {
        let h = [
            ("Authorization", admin.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", host),
        ];
        with(&srv, "POST", "/drop/links", &h, b"kind=album&target=A")
    };
    let foreign = make_link("pi.example");
    assert_eq!(
        foreign.status, 421,
        "pi.example is not one of this machine's names"
    );
    let link = make_link("localhost:8443");
    let full = link.json()["full_url"]
        .as_str()
        .expect("full url")
        .to_string();
    assert!(full.starts_with("https://localhost:8443/drop/s/"), "{full}");
}

#[test]
fn forwarded_addresses_pick_whom_to_throttle_only_from_trusted_proxies() {
    let trusted = Server::start(&["--anonymous", "none", "--trusted-proxies", "127.0.0.1"]);
    let bad = basic("nobody", "wrong");
    for _ in 0..10 {
        let h = [
            ("Authorization", bad.as_str()),
            ("X-Forwarded-For", "198.51.100.1"),
        ];
        assert_eq!(with(&trusted, "GET", "/files", &h, b"").status, 401);
    }
    let h = [
        ("Authorization", bad.as_str()),
        ("X-Forwarded-For", "198.51.100.1"),
    ];
    assert_eq!(with(&trusted, "GET", "/files", &h, b"").status, 429);
    // Another client behind the same proxy is not blocked for the first one's guesses.
    let h = [
        ("Authorization", bad.as_str()),
        ("X-Forwarded-For", "198.51.100.2"),
    ];
    assert_eq!(with(&trusted, "GET", "/files", &h, b"").status, 401);

    // Without --trusted-proxies the header is the client's own words: ignored.
    let mut open = Server::start_as_shipped(&[]);
    let admin = basic("admin", &first_password(&mut open));
    let h = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
    ];
    let put = with(&open, "PUT", "/upload/a.png", &h, &png(10));
    assert!(put.json()["files"][0]["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("/files/")));
    let listed = with(&open, "GET", "/files", &[("Authorization", &admin)], b"").json();
    assert_eq!(listed["files"][0]["owner"], "anonymous:127.0.0.1");
    // Nor is its X-Forwarded-Host the name checked against the allow-list.
    let h = [("X-Forwarded-Host", "evil.example")];
    assert_eq!(with(&open, "GET", "/healthz", &h, b"").status, 200);
}
