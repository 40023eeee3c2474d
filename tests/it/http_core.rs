//! The HTTP core through real sockets: framing, limits, deadlines, the pool, staying up.
//! Regression tests for tiny_http's defects are named t1_… to t6_….

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;

fn count_responses(raw: &[u8]) -> usize {
    String::from_utf8_lossy(raw).matches("HTTP/1.1 ").count()
}

#[test]
fn t1_huge_declared_body_refused_without_reading_keeps_the_server_small() {
    let mut srv = Server::start(&["--max-size", "1G"]);
    let base = srv.rss_kib();
    let mut s = connect(srv.addr);
    s.write_all(
        b"PUT /upload/video.mp4 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 107374182400\r\n\r\n",
    )
    .expect("head");
    s.write_all(&vec![0u8; 1 << 20]).expect("1 MB of body");
    let resp = read_response(&mut BufReader::new(s.try_clone().expect("clone")), false)
        .expect("an answer");
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["error"]["code"], "too_large");
    drop(s);
    assert!(srv.alive());
    assert_eq!(srv.get("/healthz").status, 200);
    assert!(
        srv.rss_kib() < base + 4096,
        "RSS grew from {base} to {} KiB",
        srv.rss_kib()
    );
}

#[test]
fn t1_client_disconnects_mid_body_while_the_handler_reads() {
    let mut srv = Server::start(&["--allow", "*"]);
    let base = srv.rss_kib();
    for _ in 0..3 {
        let mut s = connect(srv.addr);
        s.write_all(
            b"PUT /upload/big.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10737418240\r\n\r\n",
        )
        .expect("head");
        s.write_all(&bytes(1, 1 << 20)).expect("1 MB");
        drop(s);
    }
    assert!(
        eventually(Duration::from_secs(5), || srv.temp_files().is_empty()),
        "temp files left: {:?}",
        srv.temp_files()
    );
    assert!(srv.alive());
    assert!(srv.stored_files().is_empty());
    assert_eq!(
        srv.get("/files").json()["files"]
            .as_array()
            .map(|a| a.len()),
        Some(0)
    );
    assert!(
        srv.rss_kib() < base + 4096,
        "RSS grew from {base} to {} KiB",
        srv.rss_kib()
    );
}

#[test]
fn t2_oversized_request_line_headers_and_header_count() {
    let mut srv = Server::start(&[]);
    let base = srv.rss_kib();
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(20_000)
    );
    let out = raw(srv.addr, long_line.as_bytes());
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 414 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A 200 MiB header line: refused at 8 KiB, never buffered.
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        .expect("head");
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..200 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = raw(
        srv.addr,
        format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes(),
    );
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    assert!(srv.alive());
    assert!(
        srv.rss_kib() < base + 4096,
        "RSS grew from {base} to {} KiB",
        srv.rss_kib()
    );
}

/// A socket from another loopback address, so per-client limits see another client.
fn connect_from(ip: [u8; 4], addr: SocketAddr) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = (std::net::Ipv4Addr::from(ip), 0).into();
    sock.bind(&local.into()).expect("bind 127.0.0.x");
    sock.connect(&addr.into()).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

#[test]
fn t3_slow_header_clients_do_not_stop_another_clients_upload() {
    let srv = Server::start(&[
        "--header-timeout",
        "3s",
        "--workers",
        "8",
        "--per-client",
        "4",
    ]);
    // 300 connections from one address dripping a header.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from([127, 0, 0, 2], srv.addr);
        let _ = s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\n");
        slow.push(s);
    }
    let started = Instant::now();
    let (ct, body) = Form::new()
        .file("file", "photo.png", "image/png", &png(100_000))
        .finish();
    let resp = request(
        srv.addr,
        "POST",
        "/upload",
        &[("Content-Type", &ct), ("Accept", "application/json")],
        &body,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "upload waited {:?}",
        started.elapsed()
    );
    // Beyond the per-client share they were refused with 429 at once.
    let mut refused = 0;
    for s in slow.iter_mut().skip(4).take(20) {
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 429") {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 20);
}

#[test]
fn t3_a_dripping_header_gets_408_at_the_deadline() {
    let srv = Server::start(&["--header-timeout", "1s"]);
    let mut s = connect(srv.addr);
    let started = Instant::now();
    let mut got = Vec::new();
    for b in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = s.read_to_end(&mut got);
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn t4_accept_keeps_going_when_file_descriptors_run_out() {
    let mut srv = Server::start_with_shell(
        "ulimit -n 32",
        &["--workers", "2", "--queue", "200", "--per-client", "200"],
    );
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(s) = TcpStream::connect(srv.addr) {
            held.push(s);
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || srv
            .log_text()
            .contains("accept failed")),
        "no EMFILE seen"
    );
    drop(held);
    assert!(srv.alive(), "the server must not exit when accept fails");
    assert!(eventually(Duration::from_secs(10), || {
        TcpStream::connect(srv.addr).is_ok() && srv.get("/healthz").status == 200
    }));
}

#[test]
fn t5_a_fixed_pool_and_a_fast_503_when_full() {
    let srv = Server::start(&[
        "--workers",
        "2",
        "--queue",
        "2",
        "--per-client",
        "100",
        "--header-timeout",
        "5s",
    ]);
    let mut held = Vec::new();
    // Two busy workers and two queued connections (spaced, so each is placed before the next).
    for _ in 0..4 {
        held.push(connect(srv.addr));
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let resp = srv.get("/healthz");
    assert_eq!(resp.status, 503);
    assert!(resp.header("Retry-After").is_some());
    assert_eq!(resp.json()["error"]["code"], "busy");
    assert!(started.elapsed() < Duration::from_secs(1));
    // main (acceptor) + signal thread + 2 workers + the after-commit worker + the sweeper
    // (expired resumable uploads and files), however many connections arrive (the consistency check's thread ends once it
    // is done).
    srv.wait_for_check();
    let expected = 6;
    assert!(
        eventually(Duration::from_secs(5), || srv.threads() == expected),
        "{} threads",
        srv.threads()
    );
    for _ in 0..100 {
        held.push(connect(srv.addr));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        srv.threads(),
        expected,
        "threads must not grow with connections"
    );
}

#[test]
fn t6_smuggling_shapes_get_400_and_never_a_second_response() {
    let srv = Server::start(&[]);
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let shapes = [
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}", 5 + smuggled.len()),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0, {}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: +{}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x10\r\n\r\n{smuggled}"),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("PUT /upload/a.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n{smuggled}"),
    ];
    for shape in &shapes {
        let out = raw(srv.addr, shape.as_bytes());
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 "), "{shape:?} -> {text}");
        assert_eq!(count_responses(&out), 1, "{shape:?} -> {text}");
    }
    for te in [
        "gzip",
        "chunked, gzip",
        "gzip, chunked",
        "identity",
        "xchunked",
    ] {
        let req = format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n{smuggled}");
        let out = raw(srv.addr, req.as_bytes());
        assert!(
            String::from_utf8_lossy(&out).starts_with("HTTP/1.1 501 "),
            "{te}"
        );
        assert_eq!(count_responses(&out), 1, "{te}");
    }
}

#[test]
fn t6_header_injection_through_a_file_name_never_reaches_the_wire() {
    let srv = Server::start(&[]);
    // Browsers send CR/LF in names as %0D%0A; pidrop decodes and then strips them.
    let resp = post_form(
        srv.addr,
        Form::new().file(
            "file",
            "a%0D%0ASet-Cookie: pwned=1.png",
            "image/png",
            &png(10),
        ),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let url = resp.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let out = raw(
        srv.addr,
        format!("GET {url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let text = String::from_utf8_lossy(&out);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("set-cookie")),
        "{head}"
    );
    assert!(
        head.contains("Content-Disposition: inline; filename=\"aSet-Cookie: pwned=1.png\""),
        "{head}"
    );
}

#[test]
fn content_length_over_4_gib_parses() {
    let srv = Server::start(&["--max-size", "4G"]);
    let out = raw(srv.addr, b"PUT /upload/v.mp4 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000000000\r\nExpect: 100-continue\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("\"limit\":4294967296"), "{text}");
}

#[test]
fn keep_alive_and_http_1_0() {
    let srv = Server::start(&[]);
    let s = connect(srv.addr);
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    for _ in 0..3 {
        w.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("write");
        let resp = read_response(&mut r, false).expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
    // Pipelined: two requests in one write, two responses in order.
    w.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut r, false).expect("first").status, 200);
    assert_eq!(read_response(&mut r, false).expect("second").status, 404);
    let out = raw(srv.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
}

#[test]
fn keep_alive_idle_connections_are_closed() {
    let srv = Server::start(&["--keepalive-timeout", "1s"]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200 "));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn host_is_required_and_absolute_targets_work() {
    let srv = Server::start(&[]);
    let out = raw(srv.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400 "));
    let out = raw(srv.addr, b"GET http://localhost:8080/healthz HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 "));
    // Upgrade is not honoured: a normal answer, never 101.
    let out = raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 "));
}

#[test]
fn expect_100_continue_is_sent_only_when_the_body_is_wanted() {
    let srv = Server::start(&["--max-size", "1M"]);
    // Refused from the head: a final answer, no 100 Continue.
    let out = raw(srv.addr, b"PUT /upload/a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(!text.contains("100 Continue"));
    let out = raw(srv.addr, b"PUT /upload/a.exe HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 415 ") && !text.contains("100 Continue"),
        "{text}"
    );
    // Wanted: 100 first, then the body, then 201.
    let body = png(50);
    let mut s = connect(srv.addr);
    s.write_all(format!("PUT /upload/a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", body.len()).as_bytes()).expect("head");
    let mut first = [0u8; 25];
    s.read_exact(&mut first).expect("100 continue");
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&body).expect("body");
    let resp = read_response(&mut BufReader::new(s), false).expect("final");
    assert_eq!(resp.status, 201);
    let out = raw(
        srv.addr,
        b"PUT /upload/a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\nab",
    );
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 417 "));
}

#[test]
fn chunked_uploads_and_broken_chunks() {
    let srv = Server::start(&[]);
    let data = png(20_000);
    let mut req = b"PUT /upload/c.png HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for piece in data.chunks(7_000) {
        req.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\nX-Trailer: ok\r\n\r\n");
    let out = raw(srv.addr, &req);
    let resp = read_response(&mut BufReader::new(&out[..]), false).expect("response");
    assert_eq!(resp.status, 201, "{}", resp.text());
    let url = resp.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(srv.get(&url).body, data);
    let bad = b"PUT /upload/d.png HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    let out = raw(srv.addr, bad);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(srv.stored_files().len(), 1);
}

#[test]
fn a_panic_answers_500_and_the_worker_lives_on() {
    let srv = Server::start(&["--workers", "1"]);
    for _ in 0..3 {
        let resp = srv.get("/debug/panic");
        assert_eq!(resp.status, 500);
        assert_eq!(resp.json()["error"]["code"], "internal");
    }
    assert_eq!(srv.get("/healthz").status, 200);
}

#[test]
fn body_idle_timeout_answers_408_and_stores_nothing() {
    let srv = Server::start(&["--body-timeout", "1s"]);
    let mut s = connect(srv.addr);
    s.write_all(b"PUT /upload/a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
        .expect("head");
    s.write_all(&png(100)).expect("some body");
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(srv.stored_files().is_empty() && srv.temp_files().is_empty());
}

#[test]
fn a_client_that_never_reads_is_cut_off_by_the_write_timeout() {
    let srv = Server::start(&["--workers", "1", "--write-timeout", "1s", "--allow", "*"]);
    let data = bytes(3, 32 << 20);
    let resp = request(srv.addr, "PUT", "/upload/big.bin", &[], &data);
    assert_eq!(resp.status, 201);
    let url = resp.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let mut stuck = connect(srv.addr);
    stuck
        .write_all(format!("GET {url} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .expect("write");
    // The only worker is blocked writing to `stuck` until the write timeout frees it.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let resp = srv.get("/healthz");
    assert_eq!(resp.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(stuck);
}

#[test]
fn early_error_is_readable_while_the_client_is_still_sending() {
    let srv = Server::start(&["--max-size", "1M", "--allow", "*"]);
    let mut s = connect(srv.addr);
    // No Expect: the client just sends 8 MB; the server refuses after 1 MB.
    s.write_all(
        b"PUT /upload/x.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .expect("head");
    let w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let mut w = w;
        let chunk = bytes(5, 64 << 10);
        for _ in 0..128 {
            if w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_err()
                || w.write_all(&chunk).is_err()
                || w.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let resp = read_response(&mut BufReader::new(s), false).expect("the 413, not a reset");
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["error"]["code"], "too_large");
    let _ = writer.join();
    assert!(srv.stored_files().is_empty());
}

#[test]
fn sigterm_lets_in_flight_uploads_finish_and_exits_0() {
    let root = TempDir::new("notify");
    let sock_path = root.0.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let dir = root.0.join("uploads");
    let mut srv = Server::start_in(
        TempDir::new("srv"),
        dir,
        &[],
        &[("NOTIFY_SOCKET", sock_path.to_str().expect("utf8"))],
    );
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY");
    assert_eq!(&buf[..n], b"READY=1");
    let data = png(300_000);
    let mut s = connect(srv.addr);
    s.write_all(
        format!(
            "PUT /upload/slow.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .as_bytes(),
    )
    .expect("head");
    s.write_all(&data[..1000]).expect("part");
    std::thread::sleep(Duration::from_millis(200));
    let pid = srv.pid();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let n = notify.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1");
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&data[1000..]).expect("rest");
    let resp = read_response(&mut BufReader::new(s), false).expect("answer");
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(srv.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn access_log_has_one_line_per_request_without_query_strings() {
    let srv = Server::start(&[]);
    let _ = srv.get("/files?token=supersecret&limit=1");
    let _ = srv.get("/nothing-here");
    // A request's line is written after its answer: wait for both, in either order.
    assert!(eventually(Duration::from_secs(2), || {
        let log = srv.log_text();
        log.contains("\"GET /nothing-here\" 404")
            && log.contains("127.0.0.1 \"GET /files\" 200 in=0 out=")
    }));
    let log = srv.log_text();
    assert!(!log.contains("supersecret"));
}

#[test]
fn a_small_unread_body_is_drained_and_the_connection_kept() {
    let srv = Server::start(&[]);
    let s = connect(srv.addr);
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    // Refused before reading (type not allowed): 1000 unread bytes are drained.
    let body = vec![b'x'; 1000];
    w.write_all(
        format!(
            "PUT /upload/a.exe HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("head");
    w.write_all(&body).expect("body");
    let resp = read_response(&mut r, false).expect("415");
    assert_eq!(resp.status, 415);
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    w.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("next");
    assert_eq!(read_response(&mut r, false).expect("200").status, 200);
    // More than 64 KiB unread: answered, then closed.
    let big = vec![b'x'; 200_000];
    w.write_all(
        format!(
            "PUT /upload/b.exe HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .expect("head");
    let _ = w.write_all(&big);
    let resp = read_response(&mut r, false).expect("415");
    assert_eq!(resp.status, 415);
    assert_eq!(resp.header("Connection"), Some("close"));
}

#[test]
fn require_mount_refuses_to_start_off_the_expected_disk() {
    let root = TempDir::new("mount");
    // A plain directory is not a mount point: pidrop must refuse to start.
    let not_mounted = root.0.join("usb");
    std::fs::create_dir_all(&not_mounted).expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(not_mounted.join("uploads"))
        .arg("--require-mount")
        .arg(&not_mounted)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not mounted"), "{err}");
    assert!(
        !not_mounted.join("uploads").exists(),
        "nothing may be created on the SD card"
    );
    // The real mount point of the temp dir passes.
    let mount = std::process::Command::new("stat")
        .args(["-c", "%m"])
        .arg(&root.0)
        .output()
        .expect("stat");
    let mount = String::from_utf8_lossy(&mount.stdout).trim().to_string();
    let srv = Server::start_in(
        TempDir::new("srv"),
        root.0.join("up"),
        &["--require-mount", &mount],
        &[],
    );
    assert_eq!(srv.get("/healthz").status, 200);
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let root = TempDir::new("srv");
    let dir = root.0.join("up");
    let srv = Server::start_in(root, dir, &[], &[("JOURNAL_STREAM", "8:12345")]);
    let _ = srv.get("/healthz");
    assert!(eventually(Duration::from_secs(2), || srv
        .log_text()
        .contains("\"GET /healthz\" 200")));
    let log = srv.log_text();
    for line in log.lines() {
        assert!(line.starts_with('<') && !line.contains("Z INFO"), "{line}");
    }
}

#[test]
fn slow_headers_from_many_addresses_only_delay_a_normal_upload_until_the_deadline() {
    let srv = Server::start(&[
        "--header-timeout",
        "2s",
        "--workers",
        "8",
        "--queue",
        "16",
        "--per-client",
        "4",
    ]);
    // 40 addresses × 4 connections, each dripping a header: far more than workers + queue.
    let mut slow = Vec::new();
    for last in 2..42u8 {
        for _ in 0..4 {
            let mut s = connect_from([127, 0, 1, last], srv.addr);
            let _ = s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\n");
            slow.push(s);
        }
    }
    // A normal client is told to come back (503 + Retry-After), never left hanging, and its
    // upload lands once the deadline has cleared the slow ones.
    let started = Instant::now();
    let data = png(50_000);
    let mut refused = 0;
    let stored = loop {
        let resp = request(srv.addr, "PUT", "/upload/normal.png", &[], &data);
        if resp.status == 201 {
            break resp;
        }
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(resp.header("Retry-After").is_some());
        refused += 1;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still refused after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        srv.get(stored.json()["files"][0]["url"].as_str().expect("url"))
            .body,
        data
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?} ({refused} refusals)",
        started.elapsed()
    );
    drop(slow);
}

#[test]
fn a_full_pool_of_hashed_uploads_fits_the_units_task_limit() {
    // Every worker busy with an upload (each with its sha256 thread) and the thumbnailer up:
    // the process must stay within the systemd unit's TasksMax, or uploads fail on the Pi.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/pidrop.service"
    ))
    .expect("unit file");
    let tasks_max: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TasksMax="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TasksMax in the unit");
    let srv = Server::start(&["--allow", "*"]);
    // The default 16 workers, of which a quarter never take uploads: 12 uploads at once.
    let workers = 12u8;
    let mut conns = Vec::new();
    for i in 0..workers {
        let mut s = connect_from([127, 0, 1, 1 + i], srv.addr);
        s.write_all(
            format!(
                "PUT /upload/f{i}.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                2 << 20
            )
            .as_bytes(),
        )
        .expect("head");
        s.write_all(&bytes(u64::from(i), 1 << 20))
            .expect("half the body");
        conns.push(s);
    }
    let busy = eventually(Duration::from_secs(5), || {
        srv.threads() >= 2 * u64::from(workers)
    });
    let threads = srv.threads();
    assert!(busy, "only {threads} threads: not every upload is hashing");
    assert!(
        threads <= tasks_max,
        "{threads} threads > TasksMax={tasks_max}"
    );
    for (i, mut s) in conns.into_iter().enumerate() {
        s.write_all(&bytes(i as u64 + 100, 1 << 20)).expect("rest");
        let resp = read_response(&mut std::io::BufReader::new(&s), false).expect("response");
        assert_eq!(resp.status, 201, "{}", resp.text());
    }
}

/// A client that stays within `--per-client` is never refused: a connection the server closes
/// stops counting before the client can see it closed, so the client's next connection (curl
/// opens one at once) is not taken for one too many.
#[test]
fn a_client_within_its_connection_limit_is_never_refused() {
    let srv = Server::start(&["--per-client", "2"]);
    let held = connect(srv.addr); // one connection stays open throughout
    let mut refused = 0;
    for _ in 0..300 {
        let r = request(srv.addr, "GET", "/healthz", &[], b"");
        if r.status == 429 {
            refused += 1;
        }
    }
    drop(held);
    assert_eq!(
        refused, 0,
        "refused {refused} of 300 requests within the limit"
    );
}

/// A flood of refused connections is summed up in the log, not written a line each.
#[test]
fn a_flood_of_refusals_logs_a_summary_not_a_line_each() {
    let srv = Server::start(&["--per-client", "1"]);
    let held = connect(srv.addr);
    let mut refused = 0;
    for _ in 0..500 {
        let mut s = connect(srv.addr);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if out.starts_with(b"HTTP/1.1 429") {
            refused += 1;
        }
    }
    drop(held);
    assert_eq!(refused, 500);
    let log = srv.log_text();
    let lines = log.lines().filter(|l| l.contains("refused")).count();
    assert!(lines <= 2, "{lines} log lines for 500 refusals");
    assert!(log.contains("refused a connection from 127.0.0.1"), "{log}");
}

/// Slow bodies: uploads may hold only three quarters of the workers (short requests always get
/// one), and a body slower than `--min-rate` over a window gets 408, while a phone-speed upload
/// (50 KiB/s) is never cut off.
#[test]
fn slow_bodies_cannot_hold_every_worker_or_trickle_forever() {
    let srv = Server::start(&[
        "--workers",
        "4",
        "--min-rate",
        "1K/2s",
        "--body-timeout",
        "30s",
    ]);
    let start_trickle = |i: usize| {
        let mut s = connect(srv.addr);
        s.write_all(
            format!("PUT /upload/t{i}.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nab")
                .as_bytes(),
        )
        .expect("head");
        s
    };
    let mut trickles: Vec<TcpStream> = (0..3).map(start_trickle).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A fourth upload finds no upload worker: 503 at once, not a wait.
    let t = Instant::now();
    let fourth = request(srv.addr, "PUT", "/upload/x.txt", &[], b"hello");
    assert_eq!(fourth.status, 503, "{}", fourth.text());
    assert_eq!(fourth.header("Retry-After"), Some("1"));
    // A short request is answered at once.
    assert_eq!(srv.get("/healthz").status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The trickles (a byte every 300 ms, each read well within the idle timeout) are cut off.
    let cut = Instant::now();
    let mut statuses = Vec::new();
    for s in &mut trickles {
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    }
    while statuses.len() < 3 && cut.elapsed() < Duration::from_secs(10) {
        for s in &mut trickles {
            let _ = s.write_all(b"x");
        }
        for s in &mut trickles {
            let mut buf = [0u8; 512];
            if let Ok(n) = s.read(&mut buf) {
                if n > 0 {
                    statuses.push(String::from_utf8_lossy(&buf[..n]).to_string());
                }
            }
        }
    }
    assert_eq!(statuses.len(), 3, "every trickle was answered within 10 s");
    for s in &statuses {
        assert!(s.starts_with("HTTP/1.1 408"), "{s}");
        assert!(s.contains("too_slow"), "{s}");
    }
    assert!(srv.stored_files().is_empty() && srv.temp_files().is_empty());
    // 200 KiB at 50 KiB/s over 4 s: stored.
    let data = "a phone on weak Wi-Fi\n"
        .repeat(200 << 10 >> 5)
        .into_bytes();
    let mut s = connect(srv.addr);
    s.write_all(
        format!("PUT /upload/phone.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())
            .as_bytes(),
    )
    .expect("head");
    for c in data.chunks(5 << 10) {
        s.write_all(c).expect("body");
        std::thread::sleep(Duration::from_millis(100));
    }
    let resp = read_response(&mut BufReader::new(&s), false).expect("response");
    assert_eq!(resp.status, 201, "{}", resp.text());
}
