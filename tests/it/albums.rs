//! Albums, expiry and the total quota through the real binary: an `album` and an `expires`
//! field mean the same by multipart, PUT and tus; `?album=` lists one album; an expired file
//! is neither listed nor served from the second it expires and is then removed from the disk;
//! `--max-total` refuses (507) what would pass it, and stores nothing of it.

use std::time::Duration;

use crate::harness::{
    eventually, list, name_of, original_names, png, post_form, raw, request, tus_whole, Form,
    Server,
};

fn b64(s: &str) -> String {
    pidrop::tus::headers::encode_base64(s.as_bytes())
}

fn names_in(srv: &Server, path: &str) -> Vec<String> {
    original_names(&srv.get(path))
}

#[test]
fn an_album_is_named_the_same_way_by_every_upload_and_listed_alone() {
    let srv = Server::start(&[]);
    // Multipart, with the field after the file: it still names the album.
    let form = Form::new()
        .file("file", "form.png", "image/png", &png(10))
        .field("album", " Sommerfest Müller ");
    let r = post_form(srv.addr, form);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["files"][0]["album"], "Sommerfest Müller");
    let put = request(
        srv.addr,
        "PUT",
        "/upload/put.png?album=Sommerfest%20M%C3%BCller",
        &[],
        &png(20),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let meta = format!(
        "filename {},album {}",
        b64("tus.png"),
        b64("Sommerfest Müller")
    );
    let tus = tus_whole(srv.addr, &meta, &png(30));
    assert_eq!(tus.status, 204, "{}", tus.text());
    let other = request(srv.addr, "PUT", "/upload/other.png", &[], &png(40));
    assert_eq!(other.status, 201);
    assert!(other.json()["files"][0]["album"].is_null());

    assert_eq!(
        names_in(&srv, "/files?album=Sommerfest%20M%C3%BCller"),
        ["form.png", "put.png", "tus.png"]
    );
    assert_eq!(names_in(&srv, "/files?album=Nothing"), Vec::<String>::new());
    assert_eq!(names_in(&srv, "/files").len(), 4);
    // An album name that cannot be one: refused before anything is stored.
    let before = list(&srv.dir).len();
    let long = "x".repeat(65);
    let bad = request(
        srv.addr,
        "PUT",
        &format!("/upload/b.png?album={long}"),
        &[],
        &png(5),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], "bad_album");
    let bad_tus = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "10"),
            (
                "Upload-Metadata",
                &format!("filename {},album {}", b64("t.png"), b64("a\tb")),
            ),
        ],
        b"",
    );
    assert_eq!(bad_tus.status, 400);
    assert_eq!(list(&srv.dir).len(), before);
    assert_eq!(srv.get(&format!("/files?album={long}")).status, 400);
}

#[test]
fn an_expired_file_is_gone_at_once_and_then_from_the_disk() {
    let srv = Server::start(&["--max-expiry", "1h"]);
    let short = request(
        srv.addr,
        "PUT",
        "/upload/short.png?expires=2s",
        &[],
        &png(10),
    );
    assert_eq!(short.status, 201, "{}", short.text());
    let f = &short.json()["files"][0];
    assert!(
        f["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{f}"
    );
    let url = f["url"].as_str().expect("url").to_string();
    let name = name_of(&short);
    assert_eq!(srv.get(&url).status, 200);
    // Asked for more than --max-expiry: cut to it.
    let long = request(
        srv.addr,
        "PUT",
        "/upload/long.png?expires=30d",
        &[],
        &png(10),
    );
    let expires = long.json()["files"][0]["expires_at"]
        .as_str()
        .expect("expiry")
        .to_string();
    let uploaded = long.json()["files"][0]["uploaded_at"]
        .as_str()
        .expect("time")
        .to_string();
    // Seconds since the month began, from RFC 3339 (both fall in the same month here).
    let secs = |t: &str| {
        let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().expect("digits");
        n(8..10) * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
    };
    let lifetime = secs(&expires) - secs(&uploaded);
    assert!((3599..=3601).contains(&lifetime), "{uploaded} → {expires}");
    let bad = request(srv.addr, "PUT", "/upload/x.png?expires=soon", &[], &png(10));
    assert_eq!(bad.json()["error"]["code"], "bad_expiry");
    let never = request(srv.addr, "PUT", "/upload/never.png", &[], &png(10));
    assert!(never.json()["files"][0]["expires_at"].is_null());

    std::thread::sleep(Duration::from_millis(2100));
    // From the second it expires: neither listed nor served nor deletable.
    assert_eq!(srv.get(&url).status, 404);
    assert!(!names_in(&srv, "/files").contains(&"short.png".to_string()));
    // Then the sweeper removes its bytes.
    assert!(
        eventually(Duration::from_secs(15), || !list(&srv.dir).contains(&name)),
        "the expired file stayed on disk"
    );
    assert_eq!(names_in(&srv, "/files"), ["long.png", "never.png"]);
}

#[test]
fn expire_after_gives_every_upload_a_lifetime() {
    let srv = Server::start(&["--expire-after", "1s"]);
    let form = Form::new().file("file", "a.png", "image/png", &png(10));
    let r = post_form(srv.addr, form);
    assert!(r.json()["files"][0]["expires_at"].is_string());
    let tus = tus_whole(srv.addr, &format!("filename {}", b64("t.png")), &png(10));
    assert_eq!(tus.status, 204);
    assert_eq!(names_in(&srv, "/files").len(), 2);
    assert!(eventually(Duration::from_secs(15), || names_in(
        &srv, "/files"
    )
    .is_empty()));
    assert!(eventually(Duration::from_secs(15), || list(&srv.dir) == [".pidrop"]));
}

#[test]
fn max_total_refuses_what_would_pass_it_and_healthz_shows_it() {
    let srv = Server::start(&["--max-total", "100K"]);
    let health = srv.get("/healthz").json();
    assert_eq!(health["max_total"], 102_400);
    let first = request(srv.addr, "PUT", "/upload/a.png", &[], &png(60_000));
    assert_eq!(first.status, 201, "{}", first.text());
    let before = list(&srv.dir);
    let second = request(srv.addr, "PUT", "/upload/b.png", &[], &png(60_000));
    assert_eq!(second.status, 507, "{}", second.text());
    assert_eq!(second.json()["error"]["code"], "quota_exceeded");
    assert!(second.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("100 KiB")));
    // Chunked (no declared length): refused as it passes the limit, nothing kept.
    let data = png(60_000);
    let mut wire = format!(
        "PUT /upload/c.png HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        srv.addr,
        data.len()
    )
    .into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = String::from_utf8_lossy(&raw(srv.addr, &wire)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert_eq!(list(&srv.dir), before);
    let health = srv.get("/healthz").json();
    assert!(
        health["total_left"].as_u64().is_some_and(|l| l < 50_000),
        "{health}"
    );
    // Deleting makes room again.
    let url = first.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(request(srv.addr, "DELETE", &url, &[], b"").status, 204);
    let third = request(srv.addr, "PUT", "/upload/b.png", &[], &png(60_000));
    assert_eq!(third.status, 201, "{}", third.text());
}
