//! The upload API end to end: storage, validation, listing, serving, refusals (each with a check
//! that nothing was written), restarts, concurrency.

use std::io::Write;
use std::time::Duration;

use crate::harness::*;

fn url_of(resp: &Resp) -> String {
    resp.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string()
}

#[test]
fn multipart_with_files_and_fields_is_stored_byte_exact() {
    let srv = Server::start(&[]);
    // A photo that really decodes (so its thumbnail cannot fail before the answer is written),
    // made large with bytes after its end marker, as cameras append.
    #[cfg(feature = "thumbnails")]
    let photo = {
        let mut p = crate::thumbnails::make_jpeg(64, 48, None);
        p.extend(bytes(9, 300_000));
        p
    };
    #[cfg(not(feature = "thumbnails"))]
    let photo = jpeg(300_000);
    let notes = "line one\nline two — ünïcode\n".as_bytes().to_vec();
    let form = Form::new()
        .field("user_id", "12345")
        .file("files[]", "IMG_0001.JPG", "image/jpeg", &photo)
        .file("profile_image", "notes.txt", "text/plain", &notes)
        .field("album", "Holidays");
    let resp = post_form(srv.addr, form);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let j = resp.json();
    let files = j["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    assert_eq!(j["errors"].as_array().map(|a| a.len()), Some(0));
    assert_eq!(j["fields"]["user_id"], "12345");
    let f = &files[0];
    assert_eq!(f["original_name"], "IMG_0001.JPG");
    assert_eq!(f["size"], photo.len() as u64);
    assert_eq!(f["type"], "image/jpeg");
    assert_eq!(f["sha256"], sha256_hex(&photo));
    assert_eq!(f["fields"]["album"], "Holidays");
    let name = f["name"].as_str().expect("name");
    if cfg!(feature = "thumbnails") {
        assert_eq!(f["thumbnail_url"], format!("/thumbnails/{name}").as_str());
        assert!(
            files[1]["thumbnail_url"].is_null(),
            "no thumbnails for text"
        );
    } else {
        assert!(f["thumbnail_url"].is_null());
    }
    assert!(name.len() == 36 && name.ends_with(".jpg"), "{name}");
    assert!(f["uploaded_at"].as_str().expect("time").ends_with('Z'));
    let got = srv.get(f["url"].as_str().expect("url"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, photo);
    assert_eq!(got.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(got.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(got.header("Content-Security-Policy"), Some("sandbox"));
    assert_eq!(
        got.header("Content-Disposition"),
        Some("inline; filename=\"IMG_0001.JPG\"; filename*=UTF-8''IMG_0001.JPG")
    );
    let txt = srv.get(files[1]["url"].as_str().expect("url"));
    assert_eq!(txt.body, notes);
    assert_eq!(
        txt.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    // On disk: exactly the two files, nothing in temp.
    assert_eq!(srv.stored_files().len(), 2);
    assert!(srv.temp_files().is_empty());
}

/// Every body recorded from a real client (`scripts/record-corpus.sh`: curl, requests, urllib3,
/// httpie, Node, Chromium) is stored exactly, with its original names and fields.
#[test]
fn recorded_client_bodies_upload_end_to_end() {
    let srv = Server::start(&[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/multipart");
    let photo = std::fs::read(dir.join("inputs/photo.png")).expect("photo");
    let notes = std::fs::read(dir.join("inputs/notes.txt")).expect("notes");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("http") {
            continue;
        }
        let yaml = std::fs::read_to_string(path.with_extension("yaml")).expect("yaml");
        let boundary = yaml
            .lines()
            .find_map(|l| l.strip_prefix("boundary: "))
            .expect("boundary")
            .trim_matches('\'');
        let body = std::fs::read(&path).expect("capture");
        let ct = format!("multipart/form-data; boundary={boundary}");
        let resp = request(srv.addr, "POST", "/upload", &[("Content-Type", &ct)], &body);
        let name = path.display();
        assert_eq!(resp.status, 201, "{name}: {}", resp.text());
        let j = resp.json();
        let files = j["files"].as_array().expect("files");
        assert_eq!(files.len(), 2, "{name}");
        for (f, want_name, want) in [
            (&files[0], "photo.png", &photo),
            (&files[1], "notes \"q\" ü.txt", &notes),
        ] {
            assert_eq!(f["original_name"], want_name, "{name}");
            assert_eq!(
                &srv.get(f["url"].as_str().expect("url")).body,
                want,
                "{name}"
            );
        }
        assert_eq!(j["fields"]["caption"], "Grüße 👋 from the beach", "{name}");
        seen += 1;
    }
    assert!(seen >= 8, "expected 8 recorded clients, saw {seen}");
    assert!(srv.temp_files().is_empty());
}

#[test]
fn some_refused_is_201_with_errors_and_none_stored_is_the_first_refusal() {
    let srv = Server::start(&["--max-size", "100K"]);
    let form = Form::new()
        .file("file", "ok.png", "image/png", &png(100))
        .file("file", "tool.exe", "application/octet-stream", b"MZ\x90\0")
        .file(
            "file",
            "fake.jpg",
            "image/jpeg",
            b"just some text, not a jpeg",
        )
        .file("file", "huge.png", "image/png", &png(200_000));
    let resp = post_form(srv.addr, form);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let j = resp.json();
    assert_eq!(j["files"].as_array().map(|a| a.len()), Some(1));
    let codes: Vec<&str> = j["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["type_not_allowed", "content_mismatch", "too_large"]);
    assert_eq!(j["errors"][0]["original_name"], "tool.exe");
    assert!(j["errors"][2]["message"]
        .as_str()
        .expect("msg")
        .contains("100 KiB"));
    assert_eq!(srv.stored_files().len(), 1);
    assert!(srv.temp_files().is_empty());
    for (form, status, code) in [
        (
            Form::new().file("f", "a.exe", "x", b"MZ"),
            415,
            "type_not_allowed",
        ),
        (
            Form::new().file("f", "a.png", "image/png", &png(300_000)),
            413,
            "too_large",
        ),
        (
            Form::new().file("f", "a.jpg", "image/jpeg", &png(10)),
            415,
            "content_mismatch",
        ),
        (
            Form::new().file("f", "a.txt", "text/plain", b"bin\0ary"),
            415,
            "content_mismatch",
        ),
        (Form::new().field("only", "fields"), 400, "no_file"),
    ] {
        let resp = post_form(srv.addr, form);
        assert_eq!(resp.status, status, "{}", resp.text());
        let j = resp.json();
        let got = j["errors"][0]["code"]
            .as_str()
            .or(j["error"]["code"].as_str());
        assert_eq!(got, Some(code));
    }
    assert_eq!(srv.stored_files().len(), 1);
    assert!(srv.temp_files().is_empty());
}

#[test]
fn malformed_and_truncated_bodies_store_nothing() {
    let srv = Server::start(&[]);
    let (ct, body) = Form::new()
        .file("f", "a.png", "image/png", &png(50_000))
        .finish();
    // Missing closing boundary.
    let cut = &body[..body.len() - 10];
    let resp = request(srv.addr, "POST", "/upload", &[("Content-Type", &ct)], cut);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "malformed_multipart");
    // Not multipart at all.
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(resp.status, 415);
    // Garbage before the boundary.
    let mut junk = b"junk".to_vec();
    junk.extend_from_slice(&body);
    let resp = request(srv.addr, "POST", "/upload", &[("Content-Type", &ct)], &junk);
    assert_eq!(resp.status, 400);
    // base64 parts are refused, not stored undecoded.
    let b64 = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        b64.as_bytes(),
    );
    assert_eq!(resp.status, 415);
    assert_eq!(resp.json()["error"]["code"], "unsupported_encoding");
    assert!(srv.stored_files().is_empty());
    assert!(srv.temp_files().is_empty());
}

#[test]
fn a_client_disconnecting_mid_upload_leaves_nothing() {
    let srv = Server::start(&[]);
    let (ct, body) = Form::new()
        .file("f", "first.png", "image/png", &png(10))
        .file("f", "a.png", "image/png", &png(2_000_000))
        .finish();
    for cut in [100, 5_000, 300_000, body.len() - 3] {
        let mut s = connect(srv.addr);
        s.write_all(&upload_head(&ct, body.len(), false))
            .expect("head");
        s.write_all(&body[..cut]).expect("part");
        drop(s);
    }
    assert!(
        eventually(Duration::from_secs(5), || srv.temp_files().is_empty()),
        "{:?}",
        srv.temp_files()
    );
    assert!(srv.stored_files().is_empty(), "{:?}", srv.stored_files());
    assert_eq!(
        srv.get("/files").json()["files"]
            .as_array()
            .map(|a| a.len()),
        Some(0)
    );
}

#[test]
fn put_stores_the_raw_body_with_a_location() {
    let srv = Server::start(&[]);
    let data = png(70_000);
    let resp = request(
        srv.addr,
        "PUT",
        "/upload/My%20Photo%20%C3%A9.png?user_id=7",
        &[],
        &data,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let j = resp.json();
    assert_eq!(j["files"][0]["original_name"], "My Photo é.png");
    assert_eq!(j["files"][0]["fields"]["user_id"], "7");
    let loc = resp.header("Location").expect("Location").to_string();
    assert_eq!(loc, j["files"][0]["url"].as_str().expect("url"));
    assert_eq!(srv.get(&loc).body, data);
    let resp = request(srv.addr, "PUT", "/upload/", &[], &data);
    assert_eq!(resp.status, 400);
    let resp = request(srv.addr, "PUT", "/upload/evil.exe", &[], b"MZ");
    assert_eq!(resp.status, 415);
    assert_eq!(srv.stored_files().len(), 1);
}

#[test]
fn listing_is_newest_first_and_paged() {
    let srv = Server::start(&[]);
    let mut names = Vec::new();
    for i in 0..5 {
        let resp = request(
            srv.addr,
            "PUT",
            &format!("/upload/n{i}.txt"),
            &[],
            format!("file {i}").as_bytes(),
        );
        assert_eq!(resp.status, 201);
        names.push(name_of(&resp));
    }
    let page1 = srv.get("/files?limit=2").json();
    let got: Vec<&str> = page1["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["original_name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, ["n4.txt", "n3.txt"]);
    let next = page1["next"].as_str().expect("cursor");
    let page2 = srv.get(&format!("/files?limit=2&cursor={next}")).json();
    let got: Vec<&str> = page2["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["original_name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, ["n2.txt", "n1.txt"]);
    let next = page2["next"].as_str().expect("cursor");
    let page3 = srv.get(&format!("/files?limit=2&cursor={next}")).json();
    assert_eq!(page3["files"].as_array().map(|a| a.len()), Some(1));
    assert!(page3["next"].is_null());
}

#[test]
fn ranges_validators_head_and_delete() {
    let srv = Server::start(&[]);
    let data = jpeg(10_000);
    let resp = request(srv.addr, "PUT", "/upload/r.jpg", &[], &data);
    let url = url_of(&resp);
    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=100-199")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 100-199/{}", data.len()).as_str())
    );
    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=-10")], b"");
    assert_eq!(r.body, &data[data.len() - 10..]);
    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=999999-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{}", data.len()).as_str())
    );
    let full = srv.get(&url);
    let etag = full.header("ETag").expect("etag").to_string();
    assert!(full.header("Last-Modified").is_some());
    let r = request(srv.addr, "GET", &url, &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let h = request(srv.addr, "HEAD", &url, &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    assert!(h.body.is_empty());
    let d = request(srv.addr, "DELETE", &url, &[], b"");
    assert_eq!(d.status, 204);
    assert_eq!(srv.get(&url).status, 404);
    assert_eq!(request(srv.addr, "DELETE", &url, &[], b"").status, 404);
    assert!(srv.stored_files().is_empty());
    assert_eq!(srv.get("/healthz").json()["files"], 0);
}

#[test]
fn a_jpeg_html_polyglot_is_served_as_a_sandboxed_image() {
    let srv = Server::start(&[]);
    let mut poly = jpeg(100);
    poly.extend_from_slice(b"<html><script>alert(document.domain)</script></html>");
    let resp = request(srv.addr, "PUT", "/upload/poly.jpg", &[], &poly);
    assert_eq!(resp.status, 201);
    let got = srv.get(&url_of(&resp));
    assert_eq!(got.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(got.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(got.header("Content-Security-Policy"), Some("sandbox"));
    // The same bytes named .html are refused by the default allow-list.
    assert_eq!(
        request(srv.addr, "PUT", "/upload/poly.html", &[], &poly).status,
        415
    );
}

#[test]
fn thousands_of_tiny_parts_are_refused_early() {
    let srv = Server::start(&[]);
    let mut form = Form::new();
    for i in 0..5000 {
        form = form.field(&format!("f{i}"), "x");
    }
    let resp = post_form(srv.addr, form.file("f", "a.png", "image/png", &png(10)));
    assert_eq!(
        (resp.status, resp.json()["error"]["code"].as_str()),
        (413, Some("too_many_parts"))
    );
    assert!(srv.stored_files().is_empty());
}

#[test]
fn active_content_is_only_ever_an_attachment() {
    let srv = Server::start(&["--allow", "*"]);
    for (name, body) in [
        ("x.html", "<script>alert(1)</script>"),
        ("x.svg", "<svg onload=alert(1)/>"),
        ("x.xml", "<a/>"),
    ] {
        let resp = request(
            srv.addr,
            "PUT",
            &format!("/upload/{name}"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(resp.status, 201, "{}", resp.text());
        let got = srv.get(&url_of(&resp));
        assert!(
            got.header("Content-Disposition")
                .expect("cd")
                .starts_with("attachment;"),
            "{name}"
        );
        assert_eq!(got.header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(got.header("Content-Security-Policy"), Some("sandbox"));
    }
}

#[test]
fn errors_are_json_with_the_right_status() {
    let srv = Server::start(&[]);
    let r = srv.get("/nope");
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = srv.get("/files/../../etc/passwd");
    assert_eq!(r.status, 404);
    for path in [
        "/files/%2e%2e%2fetc%2fpasswd",
        "/files/%252e%252e%252fetc%252fpasswd",
        "/files/..%5c..%5cwin.ini",
        "/files/.pidrop/meta",
        "/files//etc/passwd",
        "/static/../Cargo.toml",
    ] {
        assert_eq!(srv.get(path).status, 404, "{path}");
    }
    let r = request(srv.addr, "DELETE", "/healthz", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let r = request(srv.addr, "GET", "/upload", &[], b"");
    assert_eq!((r.status, r.header("Allow")), (405, Some("POST")));
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("not allowed"));
}

#[test]
fn low_disk_space_is_507_before_any_byte() {
    let srv = Server::start(&["--min-free", "1000T"]);
    let out = raw(srv.addr, b"PUT /upload/a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 507 ") && !text.contains("100 Continue"),
        "{text}"
    );
    assert!(text.contains("insufficient_storage"));
    let resp = post_form(
        srv.addr,
        Form::new().file("f", "a.png", "image/png", &png(10)),
    );
    assert_eq!(resp.status, 507);
    assert!(srv.stored_files().is_empty() && srv.temp_files().is_empty());
}

#[test]
fn healthz_reports_and_turns_503_when_the_directory_is_not_writable() {
    let srv = Server::start(&[]);
    request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello");
    let j = srv.get("/healthz").json();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["files"], 1);
    assert_eq!(j["bytes"], 5);
    assert!(j["free_bytes"].as_u64().expect("free") > 0);
    assert!(j["version"].is_string() && j["uptime_s"].is_u64());
    // Replace the temp dir by a file: nothing can be created any more (works as root too).
    let tmp = srv.dir.join(".pidrop/tmp");
    std::fs::remove_dir_all(&tmp).expect("rm");
    std::fs::write(&tmp, b"x").expect("file");
    let r = srv.get("/healthz");
    assert_eq!(r.status, 503);
    assert!(r.json()["reason"]
        .as_str()
        .expect("reason")
        .contains("not usable"));
}

#[test]
fn a_restart_keeps_the_listing_and_cleans_up() {
    let mut srv = Server::start(&[]);
    let resp = post_form(
        srv.addr,
        Form::new()
            .field("who", "me")
            .file("f", "Fête.png", "image/png", &png(1000)),
    );
    assert_eq!(resp.status, 201);
    let before = srv.get("/files").json()["files"].clone();
    let resp2 = request(srv.addr, "PUT", "/upload/b.txt", &[], b"bbb");
    let name2 = name_of(&resp2);
    // A stale temp file from a crash; a data file whose commit never reached the catalogue
    // (a crash between the rename and the transaction); a file removed by hand.
    std::fs::write(srv.dir.join(".pidrop/tmp/deadbeef.part"), b"partial").expect("stale");
    let orphan = srv.dir.join("0123456789abcdef0123456789abcdef.txt");
    std::fs::write(&orphan, b"never committed").expect("orphan");
    std::fs::remove_file(srv.dir.join(&name2)).expect("removed by hand");
    srv.restart();
    let after = srv.get("/files").json();
    let files = after["files"].as_array().expect("files");
    // Everything but thumbnail_url (the background worker may have settled it meanwhile).
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("thumbnail_url"));
        v
    };
    let kept = files
        .iter()
        .find(|f| f["name"] == before[0]["name"])
        .expect("kept");
    assert_eq!(strip(kept), strip(&before[0]));
    assert!(srv.temp_files().is_empty());
    // The background check removes the orphan and drops the row of the vanished file.
    assert!(eventually(Duration::from_secs(30), || !orphan.exists()));
    assert!(eventually(Duration::from_secs(30), || srv
        .get("/files")
        .json()["files"]
        .as_array()
        .is_some_and(|f| f.len() == 1)));
    let log = srv.log_text();
    assert!(log.contains("without a catalogue row"), "{log}");
    assert!(log.contains("its data file is gone"), "{log}");
}

#[test]
fn concurrent_uploads_all_land_byte_exact() {
    // 12 workers: 9 may take uploads at once (a quarter is kept for short requests).
    let srv = Server::start(&["--allow", "*", "--per-client", "32", "--workers", "12"]);
    let addr = srv.addr;
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..4u64 {
                    let data = bytes(t * 100 + i, 10_000 + (t * 37_000 + i * 91_000) as usize);
                    let resp = if i % 2 == 0 {
                        post_form(
                            addr,
                            Form::new().file(
                                "f",
                                &format!("t{t}-{i}.bin"),
                                "application/octet-stream",
                                &data,
                            ),
                        )
                    } else {
                        request(addr, "PUT", &format!("/upload/t{t}-{i}.bin"), &[], &data)
                    };
                    assert_eq!(resp.status, 201, "{}", resp.text());
                    out.push((url_of(&resp), data));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("thread"));
    }
    assert_eq!(all.len(), 32);
    for (url, data) in all {
        assert_eq!(srv.get(&url).body, data, "{url}");
    }
    assert_eq!(srv.stored_files().len(), 32);
}

#[test]
fn a_plain_html_form_gets_a_page() {
    let srv = Server::start(&[]);
    let (ct, body) = Form::new()
        .file(
            "files",
            "<img src=x onerror=alert(1)>.png",
            "image/png",
            &png(10),
        )
        .finish();
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[
            ("Content-Type", &ct),
            ("Accept", "text/html,application/xhtml+xml"),
        ],
        &body,
    );
    assert_eq!(resp.status, 201);
    assert!(resp
        .header("Content-Type")
        .expect("ct")
        .starts_with("text/html"));
    let page = resp.text();
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;.png"),
        "{page}"
    );
    assert!(!page.contains("<img src=x"));
}

#[test]
fn foreign_origins_cannot_upload_or_delete() {
    let srv = Server::start(&["--origins", "http://nas.local:8080"]);
    let (ct, body) = Form::new()
        .file("f", "a.png", "image/png", &png(10))
        .finish();
    let host = srv.addr.to_string();
    let own = format!("http://{host}");
    for (origin, status) in [
        ("http://evil.example", 403),
        ("null", 403),
        (own.as_str(), 201),
        ("http://nas.local:8080", 201),
    ] {
        let r = request(
            srv.addr,
            "POST",
            "/upload",
            &[("Content-Type", &ct), ("Origin", origin)],
            &body,
        );
        assert_eq!(r.status, status, "{origin}: {}", r.text());
    }
    let r = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", &ct), ("Sec-Fetch-Site", "cross-site")],
        &body,
    );
    assert_eq!(r.status, 403);
    let url = url_of(&request(srv.addr, "PUT", "/upload/z.txt", &[], b"z"));
    assert_eq!(
        request(
            srv.addr,
            "DELETE",
            &url,
            &[("Origin", "http://evil.example")],
            b""
        )
        .status,
        403
    );
    assert_eq!(srv.get(&url).status, 200);
    assert_eq!(srv.stored_files().len(), 3);
}

#[test]
fn large_upload_streams_in_constant_memory() {
    let srv = Server::start(&["--allow", "*"]);
    let base = srv.rss_kib();
    let data = bytes(42, 64 << 20);
    let peak_before = proc_status(srv.pid(), "VmHWM:");
    let resp = request(srv.addr, "PUT", "/upload/big.bin", &[], &data);
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json()["files"][0]["sha256"], sha256_hex(&data));
    let peak = proc_status(srv.pid(), "VmHWM:");
    assert!(
        peak < peak_before.max(base) + 4096,
        "peak RSS {peak} KiB from {base} KiB for a 64 MiB upload"
    );
}

#[test]
fn kill_9_during_uploads_leaves_no_partial_file() {
    let mut srv = Server::start(&["--allow", "*"]);
    let done = request(srv.addr, "PUT", "/upload/kept.bin", &[], &bytes(1, 1000));
    assert_eq!(done.status, 201);
    for round in 0..3u64 {
        let (ct, body) = Form::new()
            .file(
                "f",
                "a.bin",
                "application/octet-stream",
                &bytes(round, 4 << 20),
            )
            .finish();
        let mut s = connect(srv.addr);
        s.write_all(&upload_head(&ct, body.len(), false))
            .expect("head");
        let cut = body.len() / 4 * (1 + round as usize);
        s.write_all(&body[..cut]).expect("part");
        // The temp file exists while the upload is in flight…
        assert!(eventually(Duration::from_secs(5), || !srv
            .temp_files()
            .is_empty()));
        srv.restart(); // SIGKILL, then start on the same directory
        drop(s);
        // …and after the crash: cleaned, nothing partial listed, the earlier file intact.
        assert!(srv.temp_files().is_empty(), "{:?}", srv.temp_files());
        let listing = srv.get("/files").json();
        let files = listing["files"].as_array().expect("files");
        assert_eq!(files.len(), 1, "{listing}");
        assert_eq!(files[0]["original_name"], "kept.bin");
        assert_eq!(srv.stored_files().len(), 1);
    }
}

#[test]
fn multipart_limits_refuse_and_store_nothing() {
    let srv = Server::start(&["--max-parts", "5", "--max-field", "1K"]);
    let mut form = Form::new();
    for i in 0..6 {
        form = form.field(&format!("f{i}"), "v");
    }
    let form = form.file("f", "a.png", "image/png", &png(10));
    let resp = post_form(srv.addr, form);
    assert_eq!(
        (resp.status, resp.json()["error"]["code"].as_str()),
        (413, Some("too_many_parts"))
    );
    let resp = post_form(
        srv.addr,
        Form::new()
            .field("note", &"x".repeat(2000))
            .file("f", "a.png", "image/png", &png(10)),
    );
    assert_eq!(
        (resp.status, resp.json()["error"]["code"].as_str()),
        (413, Some("field_too_large"))
    );
    let big_header = format!("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nX-Pad: {}\r\n\r\n", "p".repeat(9000));
    let body = format!("{big_header}x\r\n--b--\r\n");
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 431);
    assert!(srv.stored_files().is_empty() && srv.temp_files().is_empty());
}

#[test]
fn names_from_real_clients_are_kept_readable_and_safe() {
    let srv = Server::start(&[]);
    for (sent, kept) in [
        ("C:\\Users\\me\\Desktop\\photo.png", "photo.png"),
        ("../../etc/passwd.png", "passwd.png"),
        ("Fête à Montréal 🎉.png", "Fête à Montréal 🎉.png"),
        ("evil\u{202E}gnp.exe.png", "evilgnp.exe.png"),
        (
            "<img src=x onerror=alert(1)>.png",
            "<img src=x onerror=alert(1)>.png",
        ),
        ("/etc/passwd.png", "passwd.png"),
        ("..\\..\\windows\\win.png", "win.png"),
        ("%2e%2e%2fx.png", "%2e%2e%2fx.png"),
        ("CON.png", "CON.png"),
        ("NUL", ""),
    ] {
        if kept.is_empty() {
            // No extension: refused by the allow-list, never stored.
            let resp = post_form(srv.addr, Form::new().file("f", sent, "image/png", &png(10)));
            assert_eq!(resp.status, 415, "{sent}");
            continue;
        }
        let resp = post_form(srv.addr, Form::new().file("f", sent, "image/png", &png(10)));
        assert_eq!(resp.status, 201, "{sent}: {}", resp.text());
        assert_eq!(resp.json()["files"][0]["original_name"], kept, "{sent}");
    }
    // RFC 8187 filename* wins over filename.
    let body = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.png\"; filename*=UTF-8''%E2%82%AC%20rates.png\r\n\r\n";
    let mut full = body.as_bytes().to_vec();
    full.extend_from_slice(&png(10));
    full.extend_from_slice(b"\r\n--b--\r\n");
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        &full,
    );
    assert_eq!(resp.json()["files"][0]["original_name"], "€ rates.png");
    // Very long names are cut (keeping the extension); a NUL in the header is malformed.
    let long = format!("{}.png", "é".repeat(400));
    let resp = post_form(
        srv.addr,
        Form::new().file("f", &long, "image/png", &png(10)),
    );
    let kept = resp.json()["files"][0]["original_name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(kept.len() <= 255 && kept.ends_with(".png"), "{kept}");
    let resp = post_form(
        srv.addr,
        Form::new().file("f", "a\0b.png", "image/png", &png(10)),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Only pidrop's own names ever reach the disk.
    for name in srv.stored_files() {
        assert!(name.len() == 36 && name.ends_with(".png"), "{name}");
    }
}

#[test]
fn a_full_disk_mid_write_is_507_and_leaves_nothing() {
    // An 8 MiB tmpfs as the upload filesystem; --min-free 0, so the disk really fills (ENOSPC).
    let srv = Server::start_on_tmpfs("8m", &["--allow", "*"]);
    let free_before = srv.get("/healthz").json()["free_bytes"]
        .as_u64()
        .expect("free");
    assert!(
        free_before > 7 << 20 && free_before <= 8 << 20,
        "{free_before}"
    );
    for big in [
        request(srv.addr, "PUT", "/upload/big.bin", &[], &bytes(1, 12 << 20)),
        post_form(
            srv.addr,
            Form::new().file(
                "f",
                "big.bin",
                "application/octet-stream",
                &bytes(2, 12 << 20),
            ),
        ),
    ] {
        assert_eq!(big.status, 507, "{}", big.text());
        assert_eq!(big.json()["error"]["code"], "insufficient_storage");
    }
    // The partial temp files are gone: all the space is free again, nothing is listed.
    let health = srv.get("/healthz").json();
    assert_eq!(health["free_bytes"].as_u64(), Some(free_before), "{health}");
    assert_eq!(health["files"], 0);
    // And the server still stores what fits.
    let ok = request(
        srv.addr,
        "PUT",
        "/upload/small.bin",
        &[],
        &bytes(3, 1 << 20),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(srv.get(&url_of(&ok)).body, bytes(3, 1 << 20));
}

#[test]
fn symlinks_in_the_upload_dir_are_never_listed_or_served() {
    let mut srv = Server::start(&[]);
    let ok = request(srv.addr, "PUT", "/upload/a.txt", &[], b"real");
    assert_eq!(ok.status, 201);
    // Someone with shell access drops links that look like stored names.
    let link = srv.dir.join("0123456789abcdef0123456789abcdef.txt");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    let dir_link = srv.dir.join("fedcba9876543210fedcba9876543210");
    std::os::unix::fs::symlink("/etc", &dir_link).expect("symlink");
    srv.restart();
    let files = srv.get("/files").json()["files"]
        .as_array()
        .expect("files")
        .clone();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["original_name"], "a.txt");
    assert_eq!(
        srv.get("/files/0123456789abcdef0123456789abcdef.txt")
            .status,
        404
    );
    assert_eq!(
        srv.get("/files/fedcba9876543210fedcba9876543210").status,
        404
    );
    assert_eq!(
        request(
            srv.addr,
            "DELETE",
            "/files/0123456789abcdef0123456789abcdef.txt",
            &[],
            b""
        )
        .status,
        404
    );
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "not ours to delete"
    );
}

#[test]
fn a_connection_flood_leaves_the_server_serving_and_small() {
    let srv = Server::start(&[
        "--per-client",
        "4096",
        "--queue",
        "64",
        "--header-timeout",
        "2s",
    ]);
    let base = srv.rss_kib();
    let mut held = Vec::new();
    for _ in 0..2000 {
        match std::net::TcpStream::connect(srv.addr) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    assert!(held.len() >= 1000, "only {} connections", held.len());
    drop(held);
    assert!(eventually(Duration::from_secs(10), || srv
        .get("/healthz")
        .status
        == 200));
    let resp = request(srv.addr, "PUT", "/upload/after.png", &[], &png(1000));
    assert_eq!(resp.status, 201);
    assert!(
        srv.rss_kib() < base + 4096,
        "RSS {} KiB from {base} KiB",
        srv.rss_kib()
    );
}

#[test]
fn checksum_off_stores_without_hashing() {
    let srv = Server::start(&["--checksum", "off"]);
    let resp = request(srv.addr, "PUT", "/upload/a.png", &[], &png(5000));
    assert_eq!(resp.status, 201);
    let j = resp.json();
    assert!(j["files"][0]["sha256"].is_null(), "{j}");
    let got = srv.get(&url_of(&resp));
    assert_eq!(got.body, png(5000));
    assert!(got.header("ETag").is_some());
}

#[test]
fn an_edited_page_can_be_served_from_a_directory() {
    let root = TempDir::new("page");
    std::fs::write(
        root.0.join("index.html"),
        "<!doctype html><title>my pidrop</title>",
    )
    .expect("page");
    let dir = root.0.to_str().expect("utf8").to_string();
    let srv = Server::start(&["--static-dir", &dir]);
    let page = srv.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("my pidrop"));
    assert!(page.header("Content-Security-Policy").is_some());
    // Files not copied fall back to the embedded ones; nothing else is served from the dir.
    assert!(srv.get("/static/app.js").text().contains("XMLHttpRequest"));
    std::fs::write(root.0.join("secret.txt"), "x").expect("file");
    assert_eq!(srv.get("/static/secret.txt").status, 404);
    assert_eq!(srv.get("/static/../index.html").status, 404);
}

#[test]
fn a_small_limit_holds_for_chunked_put_bodies_too() {
    let srv = Server::start(&["--max-size", "1K", "--allow", "*"]);
    let mut req = b"PUT /upload/a.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    req.extend_from_slice(b"1400\r\n");
    req.extend_from_slice(&bytes(1, 0x1400));
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let out = raw(srv.addr, &req);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(srv.stored_files().is_empty() && srv.temp_files().is_empty());
    let ok = request(srv.addr, "PUT", "/upload/b.bin", &[], &bytes(2, 1024));
    assert_eq!(ok.status, 201);
}

#[test]
fn a_spliced_body_that_stalls_or_fills_the_disk_midway_leaves_nothing() {
    // Large PUT bodies go socket → pipe → file inside the kernel after the first 8 KiB; the
    // same guarantees hold there as for bytes read through the buffer.
    let srv = Server::start_on_tmpfs("8m", &["--allow", "*", "--body-timeout", "1s"]);
    let free_before = srv.get("/healthz").json()["free_bytes"]
        .as_u64()
        .expect("free");

    // A stall after 2 MiB of a 4 MiB body: 408 from the idle timeout, nothing kept.
    let mut s = connect(srv.addr);
    s.write_all(
        b"PUT /upload/stall.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4194304\r\n\r\n",
    )
    .expect("head");
    s.write_all(&bytes(7, 2 << 20)).expect("half the body");
    let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("a response");
    assert_eq!(resp.status, 408, "{}", resp.text());
    // The same for a multipart body (scanned from a pipe, its file spliced from a tee).
    let (ct, form) = Form::new()
        .file(
            "f",
            "stall.bin",
            "application/octet-stream",
            &bytes(8, 4 << 20),
        )
        .finish();
    let mut s = connect(srv.addr);
    s.write_all(&upload_head(&ct, form.len(), false))
        .expect("head");
    s.write_all(&form[..2 << 20]).expect("half the body");
    let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("a response");
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert!(srv.temp_files().is_empty() && srv.stored_files().is_empty());

    // Two 5 MiB PUTs on 8 MiB: each passes the free-space check made before its body, and the
    // disk fills while both are being spliced in. The one that hits ENOSPC gets 507.
    let mut conns = Vec::new();
    for i in 0..2u64 {
        let mut s = connect(srv.addr);
        s.write_all(
            format!("PUT /upload/f{i}.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5242880\r\n\r\n")
                .as_bytes(),
        )
        .expect("head");
        s.write_all(&bytes(10 + i, 3 << 20)).expect("first 3 MiB");
        conns.push(s);
    }
    let mut statuses = Vec::new();
    for (i, mut s) in conns.into_iter().enumerate() {
        let rest = bytes(10 + i as u64, 5 << 20);
        let _ = s.write_all(&rest[3 << 20..]);
        let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("a response");
        if resp.status == 201 {
            assert_eq!(srv.get(&url_of(&resp)).body, rest, "stored byte-exact");
            assert_eq!(resp.json()["files"][0]["sha256"], sha256_hex(&rest));
        } else {
            assert_eq!(resp.json()["error"]["code"], "insufficient_storage");
        }
        statuses.push(resp.status);
    }
    assert!(statuses.contains(&507), "{statuses:?}");
    // The tmpfs lives in the server's own mount namespace: /healthz is the view into it. Every
    // partial file is gone once all space but the stored file's (and its metadata) is free.
    let stored = statuses.iter().filter(|s| **s == 201).count() as u64;
    let settled = eventually(Duration::from_secs(5), || {
        let health = srv.get("/healthz").json();
        let free = health["free_bytes"].as_u64().unwrap_or(0);
        health["files"].as_u64() == Some(stored)
            && free + stored * ((5 << 20) + (64 << 10)) >= free_before
    });
    assert!(settled, "{}", srv.get("/healthz").text());
}

#[test]
fn spliced_bodies_leave_a_keep_alive_connection_at_the_next_request() {
    // Two large PUTs (spliced after their first 8 KiB), a large multipart POST and GETs on one
    // connection: each body is taken exactly, so the next request's head is read from where the
    // body ended.
    let srv = Server::start(&["--allow", "*"]);
    let s = connect(srv.addr);
    let mut reader = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut urls = Vec::new();
    let bodies = [bytes(21, 1 << 20), bytes(22, (3 << 20) + 17)];
    for (i, body) in bodies.iter().enumerate() {
        w.write_all(
            format!(
                "PUT /upload/k{i}.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .expect("head");
        w.write_all(body).expect("body");
        let resp = read_response(&mut reader, false).expect("response");
        assert_eq!(resp.status, 201, "{}", resp.text());
        assert_eq!(resp.json()["files"][0]["sha256"], sha256_hex(body));
        urls.push(url_of(&resp));
    }
    // A large multipart body on the same connection (scanned from a pipe, its file spliced),
    // with an epilogue after the closing boundary that is not part of any file.
    let (ct, mut form) = Form::new()
        .file("f", "m.bin", "application/octet-stream", &bodies[0])
        .finish();
    form.extend_from_slice(b"epilogue, ignored");
    w.write_all(&upload_head(&ct, form.len(), false))
        .expect("head");
    w.write_all(&form).expect("form");
    let resp = read_response(&mut reader, false).expect("response");
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.json()["files"][0]["sha256"], sha256_hex(&bodies[0]));
    for (url, body) in urls.iter().zip(&bodies) {
        w.write_all(format!("GET {url} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("get");
        let resp = read_response(&mut reader, false).expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(&resp.body, body);
    }
}

/// A file body with delimiter look-alikes of `boundary` scattered through it: prefixes of every
/// length, and the whole delimiter followed by a byte that makes it content.
fn with_lookalikes(seed: u64, n: usize, boundary: &str) -> Vec<u8> {
    let mut data = bytes(seed, n);
    let delim = format!("\r\n--{boundary}");
    let mut at = 7;
    let mut k = 1;
    while at + delim.len() + 1 < n {
        let fake: Vec<u8> = if k >= delim.len() {
            format!("{delim}x").into_bytes()
        } else {
            delim.as_bytes()[..k].to_vec()
        };
        data[at..at + fake.len()].copy_from_slice(&fake);
        k = k % (delim.len() + 1) + 1;
        at += 8191 + 13 * k;
    }
    data
}

#[test]
fn large_multipart_bodies_are_stored_byte_exact_however_they_arrive() {
    // A multipart body ≥ 256 KiB is scanned from one pipe while file data is spliced from a
    // second (upload/tee.rs): fields, refused files, look-alike delimiters at every offset and
    // writes of any size must come out exactly as with a read through the buffer.
    let srv = Server::start(&["--allow", "bin,txt"]);
    let boundary = Form::new().boundary;
    let first = with_lookalikes(31, (3 << 20) + 5, &boundary);
    let second = with_lookalikes(32, (700 << 10) + 3, &boundary);
    let form = Form::new()
        .field("album", "Holidays")
        .file("f", "first.bin", "application/octet-stream", &first)
        .file(
            "f",
            "refused.exe",
            "application/octet-stream",
            &bytes(33, 1 << 20),
        )
        .file("f", "second.bin", "application/octet-stream", &second)
        .field("note", "last");
    let (ct, body) = form.finish();
    for pieces in [false, true] {
        let mut s = connect(srv.addr);
        s.set_nodelay(true).expect("nodelay");
        s.write_all(&upload_head(&ct, body.len(), true))
            .expect("head");
        if pieces {
            // Uneven writes with pauses: batches of every size reach the pipes.
            let mut at = 0;
            let mut step = 1;
            while at < body.len() {
                let end = (at + step).min(body.len());
                s.write_all(&body[at..end]).expect("piece");
                at = end;
                step = (step * 7 + 3) % 70_001 + 1;
                if step % 5 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        } else {
            s.write_all(&body).expect("body");
        }
        let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("a response");
        assert_eq!(resp.status, 201, "{}", resp.text());
        let j = resp.json();
        let files = j["files"].as_array().expect("files");
        assert_eq!(files.len(), 2, "{j}");
        for (f, data) in files.iter().zip([&first, &second]) {
            assert_eq!(f["size"], data.len() as u64);
            assert_eq!(f["sha256"], sha256_hex(data));
            assert_eq!(&srv.get(f["url"].as_str().expect("url")).body, data);
        }
        assert_eq!(j["errors"][0]["original_name"], "refused.exe", "{j}");
        assert_eq!(j["fields"]["album"], "Holidays");
        assert_eq!(j["fields"]["note"], "last");
    }
    assert_eq!(srv.stored_files().len(), 4);
    assert!(srv.temp_files().is_empty());
}

#[test]
fn a_large_multipart_body_trickling_in_a_byte_at_a_time_is_stored() {
    // Each byte that arrives alone takes one of the hold pipe's slots (256 for 1 MiB); part
    // headers longer than that, sent a byte at a time, make the server repack what it holds.
    // The end of the file and the closing boundary trickle in too.
    let srv = Server::start(&["--allow", "*"]);
    let boundary = "trickle0123456789";
    let data = bytes(41, 300 << 10);
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.bin\"\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(600)
    )
    .into_bytes();
    let head_len = body.len();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let tail_from = body.len() - 400;

    let mut s = connect(srv.addr);
    s.set_nodelay(true).expect("nodelay");
    let ct = format!("multipart/form-data; boundary={boundary}");
    s.write_all(&upload_head(&ct, body.len(), true))
        .expect("head");
    std::thread::sleep(Duration::from_millis(20));
    let trickle = |s: &mut std::net::TcpStream, bytes: &[u8]| {
        for b in bytes {
            s.write_all(std::slice::from_ref(b)).expect("a byte");
            std::thread::sleep(Duration::from_micros(300));
        }
    };
    trickle(&mut s, &body[..head_len]);
    s.write_all(&body[head_len..tail_from])
        .expect("most of the file");
    trickle(&mut s, &body[tail_from..]);
    let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("a response");
    assert_eq!(resp.status, 201, "{}", resp.text());
    let f = &resp.json()["files"][0];
    assert_eq!(f["sha256"], sha256_hex(&data));
    assert_eq!(srv.get(f["url"].as_str().expect("url")).body, data);
}

/// `--min-free` holds when many uploads start together: each reserves its declared size (or,
/// chunked, a step at a time) against the free space, so together they cannot eat into it.
#[test]
fn min_free_holds_under_concurrent_uploads_of_every_framing() {
    const SIZE: usize = 6 << 20;
    let srv = Server::start_on_tmpfs(
        "64m",
        &[
            "--allow",
            "*",
            "--min-free",
            "32M",
            "--workers",
            "24",
            "--per-client",
            "24",
        ],
    );
    let addr = srv.addr;
    let uploads: Vec<_> = (0..18)
        .map(|i| {
            std::thread::spawn(move || {
                let data = bytes(i, SIZE);
                let mut s = connect(addr);
                let framing = i % 3;
                let head = match framing {
                    0 => format!("PUT /upload/{i}.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
                    1 => format!("PUT /upload/{i}.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n"),
                    _ => {
                        let (ct, body) = Form::new().file("f", &format!("{i}.bin"), "x", &data).finish();
                        let _ = s.write_all(&upload_head(&ct, body.len(), true));
                        for c in body.chunks(64 << 10) {
                            if s.write_all(c).is_err() {
                                break;
                            }
                        }
                        return read_response(&mut std::io::BufReader::new(&s), false)
                            .map(|r| r.status);
                    }
                };
                let _ = s.write_all(head.as_bytes());
                for c in data.chunks(64 << 10) {
                    let sent = if framing == 0 {
                        s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                            .and_then(|_| s.write_all(c))
                            .and_then(|_| s.write_all(b"\r\n"))
                    } else {
                        s.write_all(c)
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                if framing == 0 {
                    let _ = s.write_all(b"0\r\n\r\n");
                }
                read_response(&mut std::io::BufReader::new(&s), false).map(|r| r.status)
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> = uploads
        .into_iter()
        .map(|u| u.join().expect("upload"))
        .collect();
    let stored = statuses.iter().filter(|s| **s == Some(201)).count();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Some(201) | Some(507) | None)),
        "{statuses:?}"
    );
    assert!(stored >= 1, "some uploads fit: {statuses:?}");
    let health = srv.get("/healthz").json();
    let free = health["free_bytes"].as_u64().expect("free");
    assert!(
        free >= 32 << 20,
        "free space {free} fell below --min-free: {statuses:?}"
    );
    assert_eq!(health["files"].as_u64(), Some(stored as u64));
    assert!(srv.temp_files().is_empty());
}
