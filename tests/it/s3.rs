//! pidrop's S3 client against a real S3 server — Garage, started by `.ci/run`
//! (`scripts/garage.sh`), which names it in `PIDROP_TEST_S3_*`. Objects byte-exact (whole, by
//! range, empty ones twice over one server), metadata, listings, multipart uploads streamed
//! part by part and aborted, presigned GETs (and a tampered one refused, by curl), a skewed
//! clock corrected from the server's `Date`, the lifecycle rule added beside the bucket's own.
//! Without a Garage (a plain `cargo test`) these say so and pass; `.ci/run` sets
//! `PIDROP_TEST_S3_REQUIRED=1`, so there they cannot.

use std::io::{Read, Write};

use pidrop::s3::sigv4::Credentials;
use pidrop::s3::Bucket;

use crate::harness::{
    bytes, list, name_of, png, post_form, request, sha256_hex, tus_whole, Form, Server,
};
use crate::tus::{create, head, location, offset_of, patch, sha1_b64};

/// The test bucket, or `None` (and a note) when no S3 server was started for the tests.
fn bucket() -> Option<Bucket> {
    let var = |k: &str| std::env::var(format!("PIDROP_TEST_S3_{k}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        assert!(
            var("REQUIRED").is_none(),
            "PIDROP_TEST_S3_REQUIRED is set but no endpoint is"
        );
        eprintln!("no S3 server for the tests (PIDROP_TEST_S3_ENDPOINT): S3 tests not run");
        return None;
    };
    let creds = Credentials {
        access_key: var("ACCESS_KEY").expect("PIDROP_TEST_S3_ACCESS_KEY"),
        secret_key: var("SECRET_KEY").expect("PIDROP_TEST_S3_SECRET_KEY"),
    };
    let region = var("REGION").unwrap_or_else(|| "garage".into());
    let b = Bucket::new(
        &endpoint,
        &var("BUCKET").expect("bucket"),
        &region,
        creds,
        None,
    )
    .expect("endpoint");
    b.check().expect("the test bucket is reachable");
    Some(b)
}

/// Held by the tests that set the bucket's lifecycle rules (pidrop's start-up adds its own):
/// one at a time, so none reads the rules while another rewrites them.
static LIFECYCLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A key prefix of this test run and test.
fn prefix(test: &str) -> String {
    format!("it-{}-{test}/", std::process::id())
}

fn read_body(b: &Bucket, key: &str, range: Option<(u64, u64)>) -> (u16, Vec<u8>) {
    let mut r = b.get_object(key, range).expect("get");
    let mut body = Vec::new();
    r.body.read_to_end(&mut body).expect("body");
    (r.status, body)
}

#[test]
fn objects_round_trip_byte_exact_with_ranges_metadata_and_empty_ones() {
    let Some(b) = bucket() else { return };
    let p = prefix("objects");
    let data = bytes(7, 100_000);
    let meta = [(
        "x-amz-meta-pidrop-name".to_string(),
        "caf%C3%A9 1.png".to_string(),
    )];
    b.put_object(&format!("{p}a b.png"), &data, &meta)
        .expect("put");
    assert_eq!(
        read_body(&b, &format!("{p}a b.png"), None),
        (200, data.clone())
    );
    assert_eq!(
        read_body(&b, &format!("{p}a b.png"), Some((10, 19))),
        (206, data[10..20].to_vec())
    );
    let head = b
        .head_object(&format!("{p}a b.png"))
        .expect("head")
        .expect("exists");
    let name = head
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-meta-pidrop-name"));
    assert_eq!(name.map(|(_, v)| v.as_str()), Some("caf%C3%A9 1.png"));
    // Empty objects, twice: an empty PUT must not upset the next request.
    for n in 0..2 {
        let key = format!("{p}empty-{n}");
        b.put_object(&key, b"", &[]).expect("empty put");
        assert_eq!(read_body(&b, &key, None), (200, Vec::new()));
    }
    let listed = b.list(&p, None).expect("list");
    let mut keys: Vec<(String, u64)> = listed
        .objects
        .iter()
        .map(|o| (o.key.clone(), o.size))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            (format!("{p}a b.png"), 100_000),
            (format!("{p}empty-0"), 0),
            (format!("{p}empty-1"), 0)
        ]
    );
    for (k, _) in &keys {
        b.delete_object(k).expect("delete");
    }
    assert!(b
        .head_object(&format!("{p}a b.png"))
        .expect("head")
        .is_none());
    assert!(b.list(&p, None).expect("list").objects.is_empty());
}

#[test]
fn a_multipart_upload_streams_its_parts_and_an_aborted_one_leaves_nothing() {
    let Some(b) = bucket() else { return };
    let p = prefix("multipart");
    let key = format!("{p}big.bin");
    let first = bytes(1, 5 << 20);
    let second = bytes(2, 100_000);
    let id = b
        .create_multipart(
            &key,
            &[("content-type".into(), "application/octet-stream".into())],
        )
        .expect("create");
    let mut etags = Vec::new();
    for (n, part) in [(1u32, &first), (2, &second)] {
        let mut s = b
            .upload_part(&key, &id, n, part.len() as u64)
            .expect("part");
        // Written 8 KiB at a time, as an upload arrives: nothing holds the part whole.
        for chunk in part.chunks(8192) {
            s.write_all(chunk).expect("write");
        }
        etags.push((n, b.finish_part(s).expect("etag")));
    }
    assert!(b
        .multipart_uploads(&p)
        .expect("uploads")
        .iter()
        .any(|(k, i)| *k == key && *i == id));
    b.complete_multipart(&key, &id, &etags).expect("complete");
    let (status, body) = read_body(&b, &key, None);
    assert_eq!(status, 200);
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_eq!(sha256_hex(&body), sha256_hex(&whole));
    b.delete_object(&key).expect("delete");

    let gone = format!("{p}aborted.bin");
    let id = b.create_multipart(&gone, &[]).expect("create");
    let mut s = b.upload_part(&gone, &id, 1, 10_000).expect("part");
    s.write_all(&bytes(3, 10_000)).expect("write");
    b.finish_part(s).expect("etag");
    b.abort_multipart(&gone, &id).expect("abort");
    assert!(b.multipart_uploads(&p).expect("uploads").is_empty());
    assert!(b.head_object(&gone).expect("head").is_none());
}

/// GETs `url` with curl: (status, headers, body).
fn curl(url: &str) -> (u16, String, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", url])
        .output()
        .expect("curl");
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head");
    let head = String::from_utf8_lossy(&text[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, text[split + 4..].to_vec())
}

#[test]
fn presigned_gets_work_for_anyone_and_a_tampered_one_is_refused() {
    let Some(b) = bucket() else { return };
    let p = prefix("presign");
    let key = format!("{p}photo one.jpg");
    let data = bytes(4, 3000);
    b.put_object(&key, &data, &[]).expect("put");
    let extra = [(
        "response-content-disposition".to_string(),
        "attachment".to_string(),
    )];
    let url = b.presign_get(&key, 600, &extra);
    let (status, head, body) = curl(&url);
    assert_eq!((status, body), (200, data));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    // One character of the signature changed, or another key: refused.
    let last = url.chars().last().expect("char");
    let tampered = format!(
        "{}{}",
        &url[..url.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(curl(&tampered).0, 403);
    assert_eq!(curl(&url.replace("photo%20one", "photo%20two")).0, 403);
    b.delete_object(&key).expect("delete");
}

#[test]
fn a_skewed_clock_is_corrected_from_the_servers_date() {
    let Some(b) = bucket() else { return };
    let p = prefix("skew");
    // A Pi that booted without network time: two days behind (Garage refuses a date that old
    // with 400 "Date is too old"; AWS refuses 15 minutes with 403 RequestTimeTooSkewed).
    b.set_clock_offset(-2 * 86_400);
    b.put_object(&format!("{p}x"), b"x", &[])
        .expect("put signed with the server's clock");
    assert!(b.clock_offset().abs() < 60, "offset {}", b.clock_offset());
    let (status, _, _) = curl(&b.presign_get(&format!("{p}x"), 60, &[]));
    assert_eq!(status, 200);
    b.delete_object(&format!("{p}x")).expect("delete");
}

#[test]
fn the_abort_rule_is_added_beside_the_buckets_own_rules() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let own = "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>keep-me</ID><Status>Enabled</Status><Filter><Prefix>tmp/</Prefix></Filter><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>";
    b.put_lifecycle(own).expect("the bucket's own rule");
    assert!(b.ensure_abort_rule(1).expect("add"));
    assert!(!b.ensure_abort_rule(1).expect("already there"));
    let now = b.lifecycle().expect("rules");
    assert!(
        now.contains("keep-me") && now.contains(pidrop::s3::ABORT_RULE_ID),
        "{now}"
    );
    // An older pidrop's rule (other days) is brought up to date, once, the bucket's kept.
    assert!(b.ensure_abort_rule(7).expect("update"));
    assert!(!b.ensure_abort_rule(7).expect("up to date"));
    let now = b.lifecycle().expect("rules");
    assert_eq!(now.matches(pidrop::s3::ABORT_RULE_ID).count(), 1, "{now}");
    assert!(now.contains("keep-me"), "{now}");
    assert!(
        now.contains("<DaysAfterInitiation>7</DaysAfterInitiation>"),
        "{now}"
    );
}

/// Removes every object under `p` (what a test left in the bucket).
fn clean_up(b: &Bucket, p: &str) {
    for o in b.list(p, None).expect("list").objects {
        b.delete_object(&o.key).expect("clean up");
    }
}

/// The keys under `p`: stored files, and sidecars (under `p.pidrop/`).
fn objects(b: &Bucket, p: &str) -> (Vec<String>, Vec<String>) {
    b.list(p, None)
        .expect("list")
        .objects
        .into_iter()
        .map(|o| o.key)
        .partition(|k| !k.starts_with(&format!("{p}.pidrop/")))
}

/// The test bucket's settings as pidrop flags and environment, under `prefix`.
fn store_args(prefix: &str) -> (Vec<String>, Vec<(String, String)>) {
    let var = |k: &str| std::env::var(format!("PIDROP_TEST_S3_{k}")).expect(k);
    let args = vec![
        "--store".into(),
        "s3".into(),
        "--s3-endpoint".into(),
        var("ENDPOINT"),
        "--s3-bucket".into(),
        var("BUCKET"),
        "--s3-region".into(),
        var("REGION"),
        "--s3-prefix".into(),
        prefix.to_string(),
    ];
    let env = vec![
        ("PIDROP_S3_ACCESS_KEY_ID".to_string(), var("ACCESS_KEY")),
        ("PIDROP_S3_SECRET_ACCESS_KEY".to_string(), var("SECRET_KEY")),
    ];
    (args, env)
}

/// pidrop with `--store s3` on the test bucket under `prefix`, and `extra` flags.
fn start_node(prefix: &str, extra: &[&str]) -> Server {
    let (args, env) = store_args(prefix);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with_env(&args, &env)
}

#[test]
fn with_store_s3_files_live_in_the_bucket_and_come_back_through_pidrop() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("store");
    let srv = start_node(&p, &[]);
    let data = png(200_000);
    let put = request(srv.addr, "PUT", "/upload/a.png", &[], &data);
    assert_eq!(put.status, 201, "{}", put.text());
    let name = name_of(&put);
    assert_eq!(
        read_body(&b, &format!("{p}{name}"), None),
        (200, data.clone())
    );
    // No thumbnail is offered for a file with no local copy to read.
    assert!(put.json()["files"][0]["thumbnail_url"].is_null());
    assert!(
        !list(&srv.dir).contains(&name),
        "nothing stored in the upload dir"
    );
    let url = format!("/files/{name}");
    assert_eq!(srv.get(&url).body, data);
    let part = request(srv.addr, "GET", &url, &[("Range", "bytes=10-19")], b"");
    assert_eq!((part.status, part.body.as_slice()), (206, &data[10..20]));
    let head = request(srv.addr, "HEAD", &url, &[], b"");
    assert_eq!(
        head.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );

    // Larger than one PUT: a multipart upload of 8 MiB parts, complete, none left open.
    let big = bytes(9, 70 << 20);
    let mut big_png = png(0);
    big_png.extend_from_slice(&big);
    let put = request(srv.addr, "PUT", "/upload/big.png", &[], &big_png);
    assert_eq!(put.status, 201, "{}", put.text());
    let big_name = name_of(&put);
    let (_, back) = read_body(&b, &format!("{p}{big_name}"), None);
    assert_eq!(sha256_hex(&back), sha256_hex(&big_png));
    assert!(b.multipart_uploads(&p).expect("uploads").is_empty());

    // A refused file reaches the bucket not at all; multipart and tus uploads do.
    let refused = request(srv.addr, "PUT", "/upload/x.exe", &[], b"MZ\x90\x00");
    assert_eq!(refused.status, 415);
    let form = Form::new().file("file", "f.png", "image/png", &png(500));
    assert_eq!(post_form(srv.addr, form).status, 201);
    let tus = tus_whole(srv.addr, "filename dC5wbmc=", &png(700));
    assert_eq!(tus.status, 204, "{}", tus.text());
    let (stored, sidecars) = objects(&b, &p);
    assert_eq!(stored.len(), 4, "{stored:?}");
    // The PUTs and the tus upload were streamed (their sha256 known only at the end: a
    // sidecar each); the form was spooled and carries everything on the object.
    assert_eq!(sidecars.len(), 3, "{sidecars:?}");
    assert!(sidecars.contains(&format!("{p}.pidrop/{name}")));
    assert!(sidecars.contains(&format!("{p}.pidrop/{big_name}")));

    // A delete through pidrop removes the object.
    assert_eq!(request(srv.addr, "DELETE", &url, &[], b"").status, 204);
    assert!(b
        .head_object(&format!("{p}{name}"))
        .expect("head")
        .is_none());
    assert!(
        !objects(&b, &p).1.contains(&format!("{p}.pidrop/{name}")),
        "its sidecar went with it"
    );
    clean_up(&b, &p);
}

#[test]
fn a_key_that_may_not_use_the_bucket_stops_start_up_with_the_reason() {
    let Some(_b) = bucket() else { return };
    let (args, mut env) = store_args(&prefix("refused"));
    env[1].1 = "not-the-secret".into();
    let dir = crate::harness::TempDir::new("s3-refused");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.0.join("up"))
        .args(&args)
        .envs(env)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bucket") && err.contains("403"), "{err}");
    assert!(
        !err.contains("not-the-secret"),
        "the secret is never printed"
    );
}

#[test]
fn two_nodes_on_one_bucket_see_each_others_files_and_deletes() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("nodes");
    let fast = ["--s3-sync-interval", "1s"];
    let a = start_node(&p, &fast);
    let node_b = start_node(&p, &fast);
    let data = png(5000);
    let put = request(
        a.addr,
        "PUT",
        "/upload/Fête%20photo.png?album=Trip&note=hi",
        &[],
        &data,
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let name = name_of(&put);
    let url = format!("/files/{name}");
    // Within the sync interval, node B lists it — with its name, album, fields and hash — and
    // serves it from the bucket.
    let seen = crate::harness::eventually(std::time::Duration::from_secs(20), || {
        node_b.get("/files").json()["files"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    });
    assert!(seen, "node B never listed the file");
    let listed = node_b.get("/files").json();
    let f = &listed["files"][0];
    assert_eq!(f["name"], name.as_str());
    assert_eq!(f["original_name"], "Fête photo.png");
    assert_eq!(f["album"], "Trip");
    assert_eq!(f["fields"]["note"], "hi");
    assert_eq!(f["sha256"], sha256_hex(&data).as_str());
    assert_eq!(node_b.get(&url).body, data);
    // A delete on A disappears on B.
    assert_eq!(request(a.addr, "DELETE", &url, &[], b"").status, 204);
    let gone = crate::harness::eventually(std::time::Duration::from_secs(10), || {
        node_b.get(&url).status == 404
    });
    assert!(gone, "node B still serves a file deleted on A");
    assert!(b.list(&p, None).expect("list").objects.is_empty());
}

/// The test key in a credentials file (a restart passes no environment): its directory (kept
/// while the test runs) and path.
fn credentials_file() -> (crate::harness::TempDir, String) {
    let keys = crate::harness::TempDir::new("s3-keys");
    let var = |k: &str| std::env::var(format!("PIDROP_TEST_S3_{k}")).expect(k);
    let file = keys.0.join("s3");
    let text = format!(
        "access_key_id = {}\nsecret_access_key = {}\n",
        var("ACCESS_KEY"),
        var("SECRET_KEY")
    );
    std::fs::write(&file, text).expect("credentials");
    let path = file.display().to_string();
    (keys, path)
}

#[test]
fn a_node_killed_mid_upload_aborts_its_multipart_upload_when_it_starts_again() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("killed");
    let (_keys, file) = credentials_file();
    let (args, _) = store_args(&p);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--s3-credentials", &file]);
    let mut srv = Server::start(&args);
    let mut big = png(0);
    big.extend_from_slice(&bytes(11, 300 << 20));
    let addr = srv.addr;
    let upload = std::thread::spawn(move || {
        let mut s = crate::harness::connect(addr);
        let head = format!(
            "PUT /upload/big.png HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&big);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let running = crate::harness::eventually(std::time::Duration::from_secs(60), || {
        b.multipart_uploads(&p).is_ok_and(|u| !u.is_empty())
    });
    assert!(running, "the multipart upload never started");
    srv.kill9();
    let _ = upload.join();
    assert!(
        !b.multipart_uploads(&p).expect("uploads").is_empty(),
        "left open by the crash"
    );
    srv.restart();
    assert!(
        b.multipart_uploads(&p).expect("uploads").is_empty(),
        "aborted at start"
    );
    assert!(b.list(&p, None).expect("list").objects.is_empty());
    assert_eq!(
        srv.get("/files").json()["files"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn redirected_downloads_carry_pidrops_type_and_disposition() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("redirect");
    let srv = start_node(&p, &["--s3-downloads", "redirect", "--allow", "*"]);
    let page = b"<script>alert(1)</script>\n";
    let html = request(srv.addr, "PUT", "/upload/page.html", &[], page);
    let text = request(srv.addr, "PUT", "/upload/notes.txt", &[], b"hello\n");
    assert_eq!((html.status, text.status), (201, 201), "{}", html.text());
    for (resp, body, ctype, disposition) in [
        (&html, &page[..], "application/octet-stream", "attachment;"),
        (
            &text,
            &b"hello\n"[..],
            "text/plain; charset=utf-8",
            "inline;",
        ),
    ] {
        let url = resp.json()["files"][0]["url"]
            .as_str()
            .expect("url")
            .to_string();
        let r = srv.get(&url);
        assert_eq!(r.status, 302);
        let to = r.header("Location").expect("location").to_string();
        assert!(
            to.starts_with(&std::env::var("PIDROP_TEST_S3_ENDPOINT").expect("endpoint")),
            "{to}"
        );
        assert!(to.contains("X-Amz-Expires=900"), "{to}");
        let (status, head, got) = curl(&to);
        assert_eq!((status, got.as_slice()), (200, body));
        let head = head.to_ascii_lowercase();
        assert!(head.contains(&format!("content-type: {ctype}")), "{head}");
        assert!(
            head.contains(&format!("content-disposition: {disposition}")),
            "{head}"
        );
    }
    // Anyone who may not download gets no redirect either.
    let guarded = start_node(
        &p,
        &["--s3-downloads", "redirect", "--anonymous", "dropbox"],
    );
    let url = text.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(guarded.get(&url).status, 401);
    clean_up(&b, &p);
}

#[test]
fn check_rebuild_lists_the_bucket_again_with_names_albums_and_fields() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("rebuild");
    let (_keys, file) = credentials_file();
    let (args, _) = store_args(&p);
    let mut args: Vec<String> = args;
    args.extend(["--s3-credentials".to_string(), file]);
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut srv = Server::start(&flags);
    let a = request(
        srv.addr,
        "PUT",
        "/upload/F%C3%AAte.png?album=Trip&note=x",
        &[],
        &png(100),
    );
    let c = request(srv.addr, "PUT", "/upload/b.png", &[], &png(200));
    assert_eq!((a.status, c.status), (201, 201));
    // Objects settle for 5 s before a sync lists them (their own node lists them first).
    std::thread::sleep(std::time::Duration::from_millis(5500));
    srv.kill9();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args(["check", "--rebuild", "--dir"])
        .arg(&srv.dir)
        .args(&args)
        .output()
        .expect("check");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("listed 2 file(s) from the bucket"), "{said}");
    srv.restart();
    let listed = srv.get("/files").json();
    let files = listed["files"].as_array().expect("files");
    let fete = files
        .iter()
        .find(|f| f["original_name"] == "Fête.png")
        .expect("Fête.png");
    assert_eq!(fete["album"], "Trip");
    assert_eq!(fete["fields"]["note"], "x");
    assert_eq!(files.len(), 2);
    clean_up(&b, &p);
}

#[test]
fn a_put_goes_straight_to_the_bucket_and_a_disconnect_leaves_nothing_behind() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("straight");
    // More free space asked for than any disk here has: what touches the disk is refused,
    // what goes straight to the bucket is not.
    let srv = start_node(&p, &["--min-free", "1000000G"]);
    let form = Form::new().file("file", "f.png", "image/png", &png(500));
    assert_eq!(post_form(srv.addr, form).status, 507);
    let data = png(3 << 20);
    let put = request(srv.addr, "PUT", "/upload/a.png", &[], &data);
    assert_eq!(put.status, 201, "{}", put.text());
    let name = name_of(&put);
    assert_eq!(read_body(&b, &format!("{p}{name}"), None), (200, data));

    // Half a body, then the client goes: while it is sent, the state dir holds no copy and
    // the bucket has a multipart upload running; after, neither an upload nor an object.
    let addr = srv.addr;
    let mut s = crate::harness::connect(addr);
    let total = 20 << 20;
    let head =
        format!("PUT /upload/half.png HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {total}\r\n\r\n");
    s.write_all(head.as_bytes()).expect("head");
    let mut half = png(0);
    half.extend_from_slice(&bytes(3, 10 << 20));
    s.write_all(&half).expect("half");
    let running = crate::harness::eventually(std::time::Duration::from_secs(20), || {
        b.multipart_uploads(&p).is_ok_and(|u| !u.is_empty())
    });
    assert!(running, "no multipart upload running");
    let tmp = srv.dir.join(".pidrop/tmp");
    let spooled: Vec<_> = std::fs::read_dir(&tmp)
        .expect("tmp")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "splice-probe.part")
        .collect();
    assert!(spooled.is_empty(), "spooled: {spooled:?}");
    drop(s);
    let aborted = crate::harness::eventually(std::time::Duration::from_secs(20), || {
        b.multipart_uploads(&p).is_ok_and(|u| u.is_empty())
    });
    assert!(aborted, "the multipart upload was left running");
    let (stored, sidecars) = objects(&b, &p);
    assert_eq!((stored.len(), sidecars.len()), (1, 1), "{stored:?}");
    clean_up(&b, &p);
}

#[test]
fn fields_past_what_metadata_holds_go_to_a_sidecar_another_node_reads() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("sidecar");
    let fast = ["--s3-sync-interval", "1s"];
    let a = start_node(&p, &fast);
    let node_b = start_node(&p, &fast);
    // A multipart form is spooled: its object carries its description, unless too long.
    let long = "é".repeat(700);
    let short = Form::new()
        .field("note", "short")
        .file("file", "s.png", "image/png", &png(300));
    let long_form = Form::new()
        .field("note", &long)
        .file("file", "l.png", "image/png", &png(400));
    let s = post_form(a.addr, short);
    let l = post_form(a.addr, long_form);
    assert_eq!((s.status, l.status), (201, 201), "{}", l.text());
    let (short_name, long_name) = (name_of(&s), name_of(&l));
    let (_, sidecars) = objects(&b, &p);
    assert_eq!(sidecars, vec![format!("{p}.pidrop/{long_name}")]);
    let head = b
        .head_object(&format!("{p}{short_name}"))
        .expect("head")
        .expect("object");
    assert!(head
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-meta-pidrop-fields") && v.contains("short")));
    // Node B lists both with all their fields.
    let seen = crate::harness::eventually(std::time::Duration::from_secs(20), || {
        node_b.get("/files").json()["files"]
            .as_array()
            .is_some_and(|f| f.len() == 2)
    });
    assert!(seen, "node B never listed both");
    let listed = node_b.get("/files").json();
    let by_name = |n: &str| {
        listed["files"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == n).cloned())
            .expect("listed")
    };
    assert_eq!(by_name(&long_name)["fields"]["note"], long.as_str());
    assert_eq!(by_name(&long_name)["original_name"], "l.png");
    assert_eq!(by_name(&short_name)["fields"]["note"], "short");
    // A delete takes the sidecar with it.
    let url = format!("/files/{long_name}");
    assert_eq!(request(a.addr, "DELETE", &url, &[], b"").status, 204);
    assert!(objects(&b, &p).1.is_empty());
    clean_up(&b, &p);
}

/// A browser's direct upload, done by curl: the presigned form's fields, then the file.
fn post_to_bucket(presigned: &serde_json::Value, file: &std::path::Path) -> u16 {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"]);
    for (k, v) in presigned["fields"].as_object().expect("fields") {
        cmd.arg("-F")
            .arg(format!("{k}={}", v.as_str().expect("a string")));
    }
    cmd.arg("-F").arg(format!("file=@{}", file.display()));
    cmd.arg(presigned["url"].as_str().expect("url"));
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn presign(addr: std::net::SocketAddr, name: &str, size: usize) -> crate::harness::Resp {
    let body = format!(r#"{{"name":"{name}","size":{size},"type":"image/png"}}"#);
    let ctype = [("Content-Type", "application/json")];
    request(addr, "POST", "/upload/presign", &ctype, body.as_bytes())
}

#[test]
fn direct_uploads_are_checked_in_the_bucket_before_they_are_listed() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("direct");
    let srv = start_node(&p, &["--s3-direct", "on", "--max-size", "50M"]);
    let config = request(srv.addr, "GET", "/config", &[], b"").json();
    assert_eq!(config["direct_upload"], true, "{config}");
    // The page may talk to the bucket (CSP connect-src), and to nothing else.
    let endpoint = std::env::var("PIDROP_TEST_S3_ENDPOINT").expect("endpoint");
    let page = request(srv.addr, "GET", "/", &[], b"");
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains(&format!("connect-src 'self' {endpoint};")),
        "{csp}"
    );
    let work = srv.dir.join("browser");
    std::fs::create_dir_all(&work).expect("dir");

    // A good photo: presigned, sent by the "browser", not listed until confirmed.
    let data = png(3 << 20);
    let good = work.join("good.png");
    std::fs::write(&good, &data).expect("write");
    let r = presign(srv.addr, "Foto 1.png", data.len());
    assert_eq!(r.status, 200, "{}", r.text());
    let signed = r.json();
    let confirm = signed["confirm"].as_str().expect("confirm").to_string();
    let early = request(srv.addr, "POST", &confirm, &[], b"");
    assert_eq!(
        (early.status, early.json()["error"]["code"].clone()),
        (409, "not_in_bucket".into())
    );
    // The policy pins the size: a file of another size is refused by the bucket itself.
    let short = work.join("short.png");
    std::fs::write(&short, &data[..1000]).expect("write");
    assert!(
        post_to_bucket(&signed, &short) >= 400,
        "a wrong size was taken"
    );
    assert!((200..300).contains(&post_to_bucket(&signed, &good)));
    let listed = request(srv.addr, "GET", "/files", &[], b"").json();
    assert_eq!(
        listed["files"].as_array().map(Vec::len),
        Some(0),
        "listed before it is checked"
    );
    let (stored, _) = objects(&b, &p);
    assert!(stored.is_empty(), "{stored:?}");
    let done = request(srv.addr, "POST", &confirm, &[], b"");
    assert_eq!(done.status, 201, "{}", done.text());
    let name = name_of(&done);
    assert_eq!(
        read_body(&b, &format!("{p}{name}"), None),
        (200, data.clone())
    );
    let head = b
        .head_object(&format!("{p}{name}"))
        .expect("head")
        .expect("there");
    let meta = |k: &str| {
        head.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        meta("x-amz-meta-pidrop-name").as_deref(),
        Some("Foto%201.png")
    );
    assert_eq!(meta("content-type").as_deref(), Some("image/png"));
    let back = request(srv.addr, "GET", &format!("/files/{name}"), &[], b"");
    assert_eq!(back.body, data);
    // Confirmed once: the token is spent.
    assert_eq!(request(srv.addr, "POST", &confirm, &[], b"").status, 404);

    // A program named as a photo: the bucket takes it, pidrop refuses it and removes it.
    let mut fake = b"MZ\x90\x00".to_vec();
    fake.extend_from_slice(&bytes(9, 100_000));
    let evil = work.join("evil.png");
    std::fs::write(&evil, &fake).expect("write");
    let signed = presign(srv.addr, "holiday.png", fake.len()).json();
    assert!((200..300).contains(&post_to_bucket(&signed, &evil)));
    let (_, waiting) = objects(&b, &p);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let refused = request(
        srv.addr,
        "POST",
        signed["confirm"].as_str().expect("confirm"),
        &[],
        b"",
    );
    assert_eq!(refused.status, 415, "{}", refused.text());
    let (stored, waiting) = objects(&b, &p);
    assert_eq!(
        (stored.len(), waiting.len()),
        (1, 0),
        "{stored:?} {waiting:?}"
    );

    // Refused before anything moves: a type not allowed, too large, not JSON.
    assert_eq!(presign(srv.addr, "setup.exe", 10).status, 415);
    assert_eq!(presign(srv.addr, "big.png", 60 << 20).status, 413);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = request(
        srv.addr,
        "POST",
        "/upload/presign",
        &form,
        b"name=a.png&size=1",
    );
    assert_eq!(bad.status, 400);
    // A PUT to /upload/presign is an upload of a file called "presign" (refused: no extension).
    let put = request(srv.addr, "PUT", "/upload/presign", &[], b"just text\n");
    assert_eq!(
        put.json()["error"]["code"],
        "type_not_allowed",
        "{}",
        put.text()
    );
    clean_up(&b, &p);
}

#[test]
fn without_s3_direct_there_is_nothing_to_presign() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("nodirect");
    let srv = start_node(&p, &[]);
    let config = request(srv.addr, "GET", "/config", &[], b"").json();
    assert_eq!(config["direct_upload"], false, "{config}");
    assert_eq!(presign(srv.addr, "a.png", 10).status, 404);
    let (stored, waiting) = objects(&b, &p);
    assert!(stored.is_empty() && waiting.is_empty());
}

/// The stored name of the file a tus PATCH finished.
fn finished_name(r: &crate::harness::Resp) -> String {
    r.header("Pidrop-File-Url")
        .and_then(|u| u.rsplit('/').next())
        .expect("file url")
        .to_string()
}

/// The upload's offset by HEAD.
fn tus_offset(addr: std::net::SocketAddr, loc: &str) -> usize {
    usize::try_from(offset_of(&head(addr, loc))).expect("an offset")
}

#[test]
fn a_resumable_upload_streams_whole_parts_keeps_only_a_tail_and_survives_a_restart() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("tus-stream");
    let (_keys, file) = credentials_file();
    let (args, _) = store_args(&p);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The local disk "full": a resumable upload that spooled would be refused at creation.
    args.extend([
        "--s3-credentials",
        &file,
        "--min-free",
        "1000000G",
        "--max-size",
        "100M",
    ]);
    let mut srv = Server::start(&args);
    const MIB: usize = 1 << 20;
    let mut data = png(0);
    data.extend_from_slice(&bytes(21, 20 * MIB + 5 - data.len()));
    let loc = location(&create(srv.addr, "s.png", data.len() as u64, &[]));
    let id = loc.rsplit('/').next().expect("id").to_string();
    let resume = srv.dir.join(".pidrop/resume");
    let tail_len = || {
        std::fs::metadata(resume.join(format!("{id}.part")))
            .map(|m| m.len())
            .ok()
    };

    // A whole part in one PATCH goes straight through: nothing kept locally.
    let r = patch(srv.addr, &loc, 0, &data[..8 * MIB], &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(tail_len(), Some(0));
    assert!(resume.join(format!("{id}.s3")).exists());
    assert_eq!(b.multipart_uploads(&p).expect("uploads").len(), 1);
    // Three MiB do not fill the next part: they are the tail.
    let r = patch(srv.addr, &loc, 8 << 20, &data[8 * MIB..11 * MIB], &[]);
    assert_eq!(r.header("Upload-Offset"), Some("11534336"));
    assert_eq!(tail_len(), Some(3 << 20));

    // A PATCH that says it brings the rest but breaks off inside the part: the part is lost,
    // the offset is where it was.
    let addr = srv.addr;
    let mut s = crate::harness::connect(addr);
    let rest = data.len() - 11 * MIB;
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {rest}\r\n\r\n",
        11 * MIB
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&data[11 * MIB..13 * MIB]).expect("some");
    drop(s);
    let settled = crate::harness::eventually(std::time::Duration::from_secs(20), || {
        tus_offset(addr, &loc) == 11 * MIB
    });
    assert!(settled, "offset {}", tus_offset(addr, &loc));
    assert_eq!(tail_len(), Some(3 << 20));

    // A restart (kill -9): the upload goes on where it stood; its multipart upload is not
    // aborted like a request's.
    srv.restart();
    assert_eq!(b.multipart_uploads(&p).expect("uploads").len(), 1);
    assert_eq!(tus_offset(srv.addr, &loc), 11 * MIB);
    let r = patch(srv.addr, &loc, 11 << 20, &data[11 * MIB..], &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    let name = finished_name(&r);
    assert_eq!(
        read_body(&b, &format!("{p}{name}"), None),
        (200, data.clone())
    );
    assert!(b.multipart_uploads(&p).expect("uploads").is_empty());
    assert_eq!(tail_len(), None);
    assert!(!resume.join(format!("{id}.s3")).exists());
    let listed = srv.get("/files").json();
    let f = &listed["files"][0];
    assert_eq!(f["original_name"], "s.png");
    assert_eq!(f["album"], "summer");
    // The hash could not be carried over the restart: none rather than a wrong one.
    assert!(
        f["sha256"].is_null() || f["sha256"] == sha256_hex(&data),
        "{f}"
    );
    clean_up(&b, &p);
}

#[test]
fn a_terminated_resumable_upload_aborts_its_multipart_upload() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("tus-end");
    let srv = start_node(&p, &[]);
    let data = png(9 << 20);
    let loc = location(&create(srv.addr, "t.png", data.len() as u64, &[]));
    assert_eq!(patch(srv.addr, &loc, 0, &data[..8 << 20], &[]).status, 204);
    assert_eq!(b.multipart_uploads(&p).expect("uploads").len(), 1);
    let tus = ("Tus-Resumable", "1.0.0");
    assert_eq!(request(srv.addr, "DELETE", &loc, &[tus], b"").status, 204);
    assert!(b.multipart_uploads(&p).expect("uploads").is_empty());
    let id = loc.rsplit('/').next().expect("id");
    assert!(!srv.dir.join(format!(".pidrop/resume/{id}.s3")).exists());
    assert!(b.list(&p, None).expect("list").objects.is_empty());
}

#[test]
fn a_checksummed_patch_reaches_the_bucket_only_once_it_matched() {
    let Some(b) = bucket() else { return };
    let _one = LIFECYCLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = prefix("tus-sum");
    let srv = start_node(&p, &[]);
    let data = png(12 << 20);
    let loc = location(&create(srv.addr, "c.png", data.len() as u64, &[]));
    let id = loc.rsplit('/').next().expect("id").to_string();
    let tail = srv.dir.join(format!(".pidrop/resume/{id}.part"));
    // A whole part and more, with a wrong checksum: refused (460), nothing sent, nothing kept.
    let first = &data[..10 << 20];
    let wrong = format!("sha1 {}", sha1_b64(b"something else"));
    let r = patch(srv.addr, &loc, 0, first, &[("Upload-Checksum", &wrong)]);
    assert_eq!(r.status, 460, "{}", r.text());
    assert_eq!(tus_offset(srv.addr, &loc), 0);
    // With the right one: its whole part goes to the bucket, the rest stays in the tail.
    let right = format!("sha1 {}", sha1_b64(first));
    let r = patch(srv.addr, &loc, 0, first, &[("Upload-Checksum", &right)]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(offset_of(&r), 10 << 20);
    assert_eq!(
        std::fs::metadata(&tail).map(|m| m.len()).ok(),
        Some(2 << 20)
    );
    let rest = &data[10 << 20..];
    let sum = format!("sha1 {}", sha1_b64(rest));
    let r = patch(srv.addr, &loc, 10 << 20, rest, &[("Upload-Checksum", &sum)]);
    assert_eq!(r.status, 204, "{}", r.text());
    let name = finished_name(&r);
    assert_eq!(
        read_body(&b, &format!("{p}{name}"), None),
        (200, data.clone())
    );
    let listed = srv.get("/files").json();
    assert_eq!(listed["files"][0]["sha256"], sha256_hex(&data));
    assert!(b.multipart_uploads(&p).expect("uploads").is_empty());
    clean_up(&b, &p);
}
