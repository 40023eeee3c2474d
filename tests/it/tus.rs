//! Resumable uploads (tus 1.0 at `/tus`) through real sockets: every protocol rule a client
//! relies on, and pidrop's guarantees across requests — checked before stored (however the
//! first bytes are split), durable before acknowledged (kill -9 mid-PATCH), nothing past the
//! declared length, nothing listed until complete, expiry, space reservations, limits.

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{
    bytes, connect, eventually, list, png, read_response, request, sha256_hex, Resp, Server,
};

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

fn b64(s: &str) -> String {
    b64_bytes(s.as_bytes())
}

fn b64_bytes(data: &[u8]) -> String {
    String::from_utf8_lossy(&filter("base64", &["-w0"], data)).into_owned()
}

/// `data` through a command's stdin, its stdout back.
fn filter(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    child.wait_with_output().expect("output").stdout
}

/// `POST /tus` for a file called `name` of `len` bytes, with extra headers.
pub(crate) fn create(addr: SocketAddr, name: &str, len: u64, extra: &[(&str, &str)]) -> Resp {
    let meta = format!("filename {},album {}", b64(name), b64("summer"));
    let len = len.to_string();
    let mut h = vec![
        TUS,
        ("Upload-Length", len.as_str()),
        ("Upload-Metadata", &meta),
    ];
    h.extend_from_slice(extra);
    request(addr, "POST", "/tus", &h, b"")
}

pub(crate) fn location(r: &Resp) -> String {
    assert_eq!(r.status, 201, "{}", r.text());
    let loc = r.header("Location").expect("Location").to_string();
    assert!(loc.starts_with("/tus/") && loc.len() == 5 + 32, "{loc}");
    loc
}

pub(crate) fn patch(
    addr: SocketAddr,
    loc: &str,
    offset: u64,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Resp {
    let off = offset.to_string();
    let mut h = vec![TUS, OCTETS, ("Upload-Offset", off.as_str())];
    h.extend_from_slice(extra);
    let len = body.len().to_string();
    if body.is_empty() {
        h.push(("Content-Length", &len));
    }
    request(addr, "PATCH", loc, &h, body)
}

pub(crate) fn head(addr: SocketAddr, loc: &str) -> Resp {
    request(addr, "HEAD", loc, &[TUS], b"")
}

pub(crate) fn offset_of(r: &Resp) -> u64 {
    r.header("Upload-Offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Upload-Offset: {r:?}"))
}

fn listed(srv: &Server) -> Vec<serde_json::Value> {
    srv.get("/files").json()["files"]
        .as_array()
        .expect("files")
        .clone()
}

fn resume_dir(srv: &Server) -> Vec<String> {
    list(&srv.dir.join(".pidrop/resume"))
}

#[test]
fn options_says_what_is_offered_and_every_answer_speaks_tus() {
    let srv = Server::start(&["--max-size", "1G"]);
    let r = request(srv.addr, "OPTIONS", "/tus", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Tus-Version"), Some("1.0.0"));
    assert_eq!(r.header("Tus-Max-Size"), Some("1073741824"));
    assert_eq!(r.header("Tus-Checksum-Algorithm"), Some("sha1,sha256"));
    let ext = r.header("Tus-Extension").expect("extensions");
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} in {ext}");
    }
    // Without Tus-Resumable: 412 with the version spoken, and the tus header still sent.
    let r = request(srv.addr, "POST", "/tus", &[("Upload-Length", "5")], b"");
    assert_eq!(r.status, 412);
    assert_eq!(r.header("Tus-Version"), Some("1.0.0"));
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
    let r = request(
        srv.addr,
        "HEAD",
        "/tus/0123456789abcdef0123456789abcdef",
        &[TUS],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
    let r = request(srv.addr, "HEAD", "/tus/../../etc/passwd", &[TUS], b"");
    assert_eq!(r.status, 404);
    let r = request(srv.addr, "PUT", "/tus", &[TUS], b"x");
    assert_eq!(r.status, 405);
}

#[test]
fn an_upload_in_three_patches_is_listed_only_when_complete_with_its_name_and_fields() {
    let srv = Server::start(&[]);
    let data = png(40_000);
    let loc = location(&create(
        srv.addr,
        "holiday photo.png",
        data.len() as u64,
        &[],
    ));
    // 1 byte, then 2 KiB (still too few to check), then the rest.
    let mut at = 0u64;
    for piece in [&data[..1], &data[1..2049], &data[2049..]] {
        let before = head(srv.addr, &loc);
        assert_eq!(before.status, 200);
        assert_eq!(offset_of(&before), at);
        assert_eq!(
            before.header("Upload-Length"),
            Some(data.len().to_string().as_str())
        );
        assert_eq!(before.header("Cache-Control"), Some("no-store"));
        assert!(before.header("Upload-Expires").is_some());
        assert!(before
            .header("Upload-Metadata")
            .is_some_and(|m| m.contains("filename ")));
        assert!(
            listed(&srv).is_empty(),
            "nothing listed before the last byte"
        );
        let r = patch(srv.addr, &loc, at, piece, &[]);
        assert_eq!(r.status, 204, "{}", r.text());
        at += piece.len() as u64;
        assert_eq!(offset_of(&r), at);
    }
    let files = listed(&srv);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["original_name"], "holiday photo.png");
    assert_eq!(files[0]["type"], "image/png");
    assert_eq!(files[0]["fields"]["album"], "summer");
    assert_eq!(files[0]["sha256"], sha256_hex(&data).as_str());
    let got = srv.get(files[0]["url"].as_str().expect("url"));
    assert_eq!(got.body, data);
    // A finished upload still answers HEAD as complete (a client must not upload it again).
    let done = head(srv.addr, &loc);
    assert_eq!(offset_of(&done), data.len() as u64);
    assert!(done.header("Upload-Expires").is_none());
    assert_eq!(done.header("Pidrop-File-Url"), files[0]["url"].as_str());
    assert!(resume_dir(&srv).is_empty(), "{:?}", resume_dir(&srv));
}

#[test]
fn creation_refusals_come_before_any_byte_and_carry_no_location() {
    let srv = Server::start(&["--max-size", "1M"]);
    let too_big = create(srv.addr, "a.png", 2 << 20, &[]);
    assert_eq!(too_big.status, 413);
    assert!(too_big.header("Location").is_none());
    let bad_type = create(srv.addr, "tool.exe", 10, &[]);
    assert_eq!(bad_type.status, 415);
    assert!(bad_type.header("Location").is_none());
    let meta = format!("filename {}", b64("a.png"));
    for h in [
        vec![TUS, ("Upload-Metadata", meta.as_str())],
        vec![TUS, ("Upload-Length", "-1"), ("Upload-Metadata", &meta)],
        vec![
            TUS,
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename !!notbase64"),
        ],
        vec![TUS, ("Upload-Length", "5")],
        vec![
            TUS,
            ("Upload-Length", "5"),
            ("Upload-Defer-Length", "1"),
            ("Upload-Metadata", &meta),
        ],
    ] {
        let r = request(srv.addr, "POST", "/tus", &h, b"");
        assert_eq!(r.status, 400, "{h:?}: {}", r.text());
        assert!(r.header("Location").is_none());
    }
    assert!(resume_dir(&srv).is_empty());
}

#[test]
fn patch_rules_type_offset_length_checksum() {
    let srv = Server::start(&["--allow", "*"]);
    let data = bytes(3, 20_000);
    let loc = location(&create(srv.addr, "notes.bin", data.len() as u64, &[]));
    let r = request(
        srv.addr,
        "PATCH",
        &loc,
        &[TUS, ("Upload-Offset", "0"), ("Content-Type", "text/plain")],
        &data[..10],
    );
    assert_eq!(r.status, 415);
    let r = patch(srv.addr, &loc, 5, &data[..10], &[]);
    assert_eq!(r.status, 409);
    // Past the declared length: refused before a byte is read, nothing kept.
    let mut longer = data.clone();
    longer.push(0);
    let r = patch(srv.addr, &loc, 0, &longer, &[]);
    assert_eq!(r.status, 413);
    assert_eq!(offset_of(&head(srv.addr, &loc)), 0);
    // Checksums: unknown algorithm 400, mismatch 460 and the offset does not move.
    let r = patch(
        srv.addr,
        &loc,
        0,
        &data[..9000],
        &[("Upload-Checksum", "md5 XrY7u+Ae7tCTyyK7j1rNww==")],
    );
    assert_eq!(r.status, 400);
    let wrong = "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=";
    let r = patch(
        srv.addr,
        &loc,
        0,
        &data[..9000],
        &[("Upload-Checksum", wrong)],
    );
    assert_eq!(r.status, 460, "{}", r.text());
    assert_eq!(offset_of(&head(srv.addr, &loc)), 0);
    let sha1 = sha1_b64(&data[..9000]);
    let r = patch(
        srv.addr,
        &loc,
        0,
        &data[..9000],
        &[("Upload-Checksum", &format!("sha1 {sha1}"))],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(offset_of(&r), 9000);
    // A wrong checksum after bytes were written: they are cut off again.
    let r = patch(
        srv.addr,
        &loc,
        9000,
        &data[9000..15000],
        &[("Upload-Checksum", wrong)],
    );
    assert_eq!(r.status, 460);
    let r = patch(srv.addr, &loc, 9000, &data[9000..], &[]);
    assert_eq!(r.status, 204);
    let files = listed(&srv);
    assert_eq!(files[0]["sha256"], sha256_hex(&data).as_str());
    assert_eq!(files[0]["size"], data.len());
    // Complete: an empty PATCH at the end is answered, more is past the length.
    assert_eq!(
        patch(srv.addr, &loc, data.len() as u64, b"", &[]).status,
        204
    );
    assert_eq!(
        patch(srv.addr, &loc, data.len() as u64, b"x", &[]).status,
        413
    );
}

/// sha1 (coreutils `sha1sum`) as base64 (coreutils `base64`): independent of pidrop's code.
pub(crate) fn sha1_b64(data: &[u8]) -> String {
    let out = filter("sha1sum", &[], data);
    let hex = String::from_utf8_lossy(&out);
    let digest: Vec<u8> = (0..40)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    b64_bytes(&digest)
}

#[test]
fn first_bytes_that_are_not_what_the_name_says_end_the_upload_with_415() {
    let srv = Server::start(&[]);
    let text = vec![b'a'; 20_000];
    let loc = location(&create(srv.addr, "fake.png", text.len() as u64, &[]));
    // Too few to decide: held, acknowledged.
    let r = patch(srv.addr, &loc, 0, &text[..100], &[]);
    assert_eq!(r.status, 204);
    let r = patch(srv.addr, &loc, 100, &text[100..], &[]);
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(head(srv.addr, &loc).status, 404, "the upload is removed");
    assert!(resume_dir(&srv).is_empty());
    assert!(listed(&srv).is_empty());
    // A short file is checked when it ends.
    let loc = location(&create(srv.addr, "tiny.png", 50, &[]));
    assert_eq!(patch(srv.addr, &loc, 0, &text[..50], &[]).status, 415);
    assert!(listed(&srv).is_empty());
}

#[test]
fn creation_with_upload_defer_length_override_and_termination() {
    let srv = Server::start(&[]);
    let data = png(30_000);
    let meta = format!("filename {}", b64("p.png"));
    let len = data.len().to_string();
    // creation-with-upload: the POST carries the first bytes.
    let r = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            TUS,
            OCTETS,
            ("Upload-Length", &len),
            ("Upload-Metadata", &meta),
        ],
        &data[..10_000],
    );
    let loc = location(&r);
    assert_eq!(offset_of(&r), 10_000);
    // X-HTTP-Method-Override: PATCH on a POST.
    let r = request(
        srv.addr,
        "POST",
        &loc,
        &[
            TUS,
            OCTETS,
            ("Upload-Offset", "10000"),
            ("X-HTTP-Method-Override", "PATCH"),
        ],
        &data[10_000..],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(listed(&srv).len(), 1);
    // creation-defer-length: the length comes with a PATCH.
    let r = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            TUS,
            ("Upload-Defer-Length", "1"),
            ("Upload-Metadata", &meta),
        ],
        b"",
    );
    let loc = location(&r);
    assert_eq!(
        head(srv.addr, &loc).header("Upload-Defer-Length"),
        Some("1")
    );
    assert_eq!(patch(srv.addr, &loc, 0, &data[..20_000], &[]).status, 204);
    let r = patch(
        srv.addr,
        &loc,
        20_000,
        &data[20_000..],
        &[("Upload-Length", &len)],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(listed(&srv).len(), 2);
    // Termination: the bytes are gone when it answers.
    let loc = location(&create(srv.addr, "t.png", data.len() as u64, &[]));
    assert_eq!(patch(srv.addr, &loc, 0, &data[..12_000], &[]).status, 204);
    assert_eq!(resume_dir(&srv).len(), 1);
    let r = request(srv.addr, "DELETE", &loc, &[TUS], b"");
    assert_eq!(r.status, 204);
    assert!(resume_dir(&srv).is_empty());
    assert_eq!(head(srv.addr, &loc).status, 404);
    assert_eq!(listed(&srv).len(), 2);
}

/// Sends a PATCH head and `part` of a body of `len` bytes, and leaves the connection open.
fn start_patch(
    addr: SocketAddr,
    loc: &str,
    offset: u64,
    len: usize,
    part: &[u8],
) -> std::net::TcpStream {
    let mut s = connect(addr);
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(part).expect("part");
    s
}

#[test]
fn two_patches_at_once_one_proceeds_the_other_is_locked_out() {
    let srv = Server::start(&[]);
    let data = png(200_000);
    let loc = location(&create(srv.addr, "p.png", data.len() as u64, &[]));
    let mut first = start_patch(srv.addr, &loc, 0, data.len(), &data[..50_000]);
    // The second waits for the first to hold the upload.
    std::thread::sleep(Duration::from_millis(300));
    let r = patch(srv.addr, &loc, 0, &data, &[]);
    assert!(r.status == 423 || r.status == 409, "{}", r.status);
    first.write_all(&data[50_000..]).expect("rest");
    let r = read_response(&mut BufReader::new(first), false).expect("answer");
    assert_eq!(r.status, 204);
    let files = listed(&srv);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["sha256"], sha256_hex(&data).as_str());
}

#[test]
fn a_patch_cut_off_keeps_what_arrived_and_kill_9_keeps_what_was_acknowledged() {
    let mut srv = Server::start(&[]);
    let data = png(3 << 20);
    let loc = location(&create(srv.addr, "big.png", data.len() as u64, &[]));
    // A client that goes away mid-body: what arrived is kept and reported, never more.
    let s = start_patch(srv.addr, &loc, 0, data.len(), &data[..1_000_000]);
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    assert!(eventually(Duration::from_secs(5), || offset_of(&head(
        srv.addr, &loc
    )) == 1_000_000));
    // Acknowledged: 1 MB more. Then a PATCH in flight when the server is killed.
    let r = patch(srv.addr, &loc, 1_000_000, &data[1_000_000..2_000_000], &[]);
    assert_eq!(offset_of(&r), 2_000_000);
    let _s = start_patch(
        srv.addr,
        &loc,
        2_000_000,
        data.len() - 2_000_000,
        &data[2_000_000..2_500_000],
    );
    std::thread::sleep(Duration::from_millis(300));
    srv.restart();
    let after = offset_of(&head(srv.addr, &loc));
    assert!((2_000_000..=2_500_000).contains(&after), "{after}");
    let r = patch(srv.addr, &loc, after, &data[after as usize..], &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    let files = listed(&srv);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0]["sha256"],
        sha256_hex(&data).as_str(),
        "the whole file, hashed across a restart"
    );
    assert_eq!(srv.get(files[0]["url"].as_str().expect("url")).body, data);
}

#[test]
fn unfinished_uploads_expire_and_their_bytes_go() {
    let srv = Server::start(&["--resume-expiry", "2s"]);
    let data = png(50_000);
    let loc = location(&create(srv.addr, "e.png", data.len() as u64, &[]));
    let r = patch(srv.addr, &loc, 0, &data[..20_000], &[]);
    assert!(r.header("Upload-Expires").is_some());
    assert_eq!(resume_dir(&srv).len(), 1);
    assert!(
        eventually(Duration::from_secs(10), || resume_dir(&srv).is_empty()),
        "swept"
    );
    let r = head(srv.addr, &loc);
    assert!(r.status == 404 || r.status == 410, "{}", r.status);
    assert!(srv.log_text().contains("expired"));
}

#[test]
fn declared_lengths_are_reserved_and_unfinished_uploads_are_limited() {
    let srv = Server::start_on_tmpfs("64m", &["--min-free", "8M", "--max-resumable", "8"]);
    let first = location(&create(srv.addr, "a.png", 40 << 20, &[]));
    // Two uploads that do not both fit cannot both be started.
    let second = create(srv.addr, "b.png", 40 << 20, &[]);
    assert_eq!(second.status, 507, "{}", second.text());
    assert_eq!(request(srv.addr, "DELETE", &first, &[TUS], b"").status, 204);
    location(&create(srv.addr, "b.png", 40 << 20, &[]));
    // A quarter of --max-resumable per address: 2 here (one is unfinished already).
    location(&create(srv.addr, "c.png", 10, &[]));
    let r = create(srv.addr, "d.png", 10, &[]);
    assert_eq!(r.status, 429, "{}", r.text());
}

#[test]
fn cors_for_listed_origins_on_answers_and_errors_and_foreign_origins_refused() {
    let srv = Server::start(&["--origins", "http://photos.example"]);
    let origin = ("Origin", "http://photos.example");
    let r = request(
        srv.addr,
        "OPTIONS",
        "/tus",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "tus-resumable,upload-length",
            ),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://photos.example")
    );
    assert!(r
        .header("Access-Control-Allow-Methods")
        .is_some_and(|m| m.contains("PATCH")));
    assert!(r
        .header("Access-Control-Allow-Headers")
        .is_some_and(|h| h.contains("Upload-Offset")));
    let r = create(srv.addr, "a.png", 10, &[origin]);
    assert_eq!(r.status, 201);
    assert!(r
        .header("Access-Control-Expose-Headers")
        .is_some_and(|h| h.contains("Location") && h.contains("Upload-Offset")));
    // Errors too.
    let r = request(srv.addr, "POST", "/tus", &[origin], b"");
    assert_eq!(r.status, 412);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://photos.example")
    );
    // An origin not listed gets no CORS and cannot create.
    let r = create(srv.addr, "a.png", 10, &[("Origin", "http://evil.example")]);
    assert_eq!(r.status, 403);
    assert!(r.header("Access-Control-Allow-Origin").is_none());
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
}
