//! `GET /metrics` counts what really happened: files and bytes by how they came (multipart,
//! PUT, tus), refusals by code, answers by class, and the catalogue's size.

use crate::harness::{post_form, request, Form, Server};

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn metrics_count_uploads_by_way_refusals_by_code_and_answers_by_class() {
    let srv = Server::start(&[]);
    let m = srv.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    assert_eq!(
        value(&m.text(), "pidrop_files_stored_total{via=\"put\"}"),
        0
    );

    assert_eq!(
        request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello\n").status,
        201
    );
    let form = Form::new().file("f", "b.txt", "text/plain", b"four").file(
        "f",
        "c.txt",
        "text/plain",
        b"xy",
    );
    assert_eq!(post_form(srv.addr, form).status, 201);
    let r = crate::harness::tus_whole(srv.addr, "filename ZC50eHQ=", b"abc"); // d.txt
    assert_eq!(r.status, 204);
    assert_eq!(
        request(srv.addr, "PUT", "/upload/x.exe", &[], b"MZ").status,
        415
    );
    assert_eq!(
        srv.get("/files/0123456789abcdef0123456789abcdef.txt")
            .status,
        404
    );

    let text = srv.get("/metrics").text();
    assert_eq!(value(&text, "pidrop_files_stored_total{via=\"put\"}"), 1);
    assert_eq!(value(&text, "pidrop_bytes_stored_total{via=\"put\"}"), 6);
    assert_eq!(
        value(&text, "pidrop_files_stored_total{via=\"multipart\"}"),
        2
    );
    assert_eq!(
        value(&text, "pidrop_bytes_stored_total{via=\"multipart\"}"),
        6
    );
    assert_eq!(value(&text, "pidrop_files_stored_total{via=\"tus\"}"), 1);
    assert_eq!(
        value(&text, "pidrop_refusals_total{code=\"type_not_allowed\"}"),
        1
    );
    assert_eq!(value(&text, "pidrop_refusals_total{code=\"not_found\"}"), 1);
    assert!(value(&text, "pidrop_responses_total{class=\"2xx\"}") >= 5);
    assert_eq!(value(&text, "pidrop_catalogue_files"), 4);
    assert_eq!(value(&text, "pidrop_catalogue_bytes"), 15);
    assert!(value(&text, "pidrop_request_duration_seconds_count") >= 7);
    // The scrape itself, and perhaps a worker still closing an earlier connection.
    assert!(value(&text, "pidrop_busy_workers") >= 1);
    assert!(value(&text, "pidrop_free_bytes") > 0);
}

/// An image that cannot be thumbnailed is counted.
#[cfg(feature = "thumbnails")]
#[test]
fn thumbnail_failures_are_counted() {
    let srv = Server::start(&[]);
    let broken = crate::harness::png(2000); // a PNG signature, then noise
    assert_eq!(
        request(srv.addr, "PUT", "/upload/broken.png", &[], &broken).status,
        201
    );
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(10),
        || {
            value(
                &srv.get("/metrics").text(),
                "pidrop_thumbnail_failures_total",
            ) == 1
        }
    ));
}
