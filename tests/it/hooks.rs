//! Upload hooks with real commands: a scanner's veto (422, nothing stored) over the real bytes,
//! a scanner that hangs (503 at its timeout, its whole process group killed), post-commit hooks
//! that get hostile names only as JSON on stdin with a cleared environment, and a full queue
//! that drops with a warning instead of holding uploads.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{eventually, name_of, request, sha256_hex, Server, TempDir};

/// Writes an executable `sh` script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn put(srv: &Server, name: &str, body: &[u8]) -> crate::harness::Resp {
    request(srv.addr, "PUT", &format!("/upload/{name}"), &[], body)
}

#[test]
fn a_scanner_vetoes_before_anything_is_stored_and_sees_the_real_bytes() {
    let tools = TempDir::new("scan");
    let seen = tools.0.join("seen");
    let scan = script(
        &tools.0,
        "scan.sh",
        &format!(
            "cp \"$1\" '{}'\nif grep -q EVIL \"$1\"; then echo 'infected: Test.Sig.EVIL'; echo more; exit 1; fi",
            seen.display()
        ),
    );
    let srv = Server::start(&["--scan-cmd", &scan.display().to_string()]);
    let clean = b"a clean text file\n".repeat(1000);
    let r = put(&srv, "clean.txt", &clean);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        sha256_hex(&std::fs::read(&seen).expect("scanned copy")),
        sha256_hex(&clean)
    );
    let r = put(&srv, "bad.txt", b"this one is EVIL\n");
    assert_eq!(r.status, 422, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "rejected_by_scan");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("infected: Test.Sig.EVIL")),
        "{e}"
    );
    assert_eq!(srv.stored_files().len(), 1, "only the clean file");
    assert!(srv.temp_files().is_empty());
    // In a multipart request the veto is per file.
    let form = crate::harness::Form::new()
        .file("f", "a.txt", "text/plain", b"fine\n")
        .file("f", "b.txt", "text/plain", b"EVIL\n");
    let r = crate::harness::post_form(srv.addr, form);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["errors"][0]["code"], "rejected_by_scan");
    assert_eq!(srv.stored_files().len(), 2);
}

#[test]
fn a_scanner_that_hangs_is_killed_with_its_children_and_nothing_is_stored() {
    let tools = TempDir::new("hang");
    let pidfile = tools.0.join("child.pid");
    let scan = script(
        &tools.0,
        "hang.sh",
        &format!("sleep 60 &\necho $! > '{}'\nsleep 60", pidfile.display()),
    );
    let srv = Server::start(&[
        "--scan-cmd",
        &scan.display().to_string(),
        "--scan-timeout",
        "1s",
    ]);
    let started = Instant::now();
    let r = put(&srv, "a.txt", b"waiting for a verdict\n");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "scan_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(srv.stored_files().is_empty());
    let pid = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .to_string();
    assert!(
        eventually(Duration::from_secs(3), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the scanner's own child {pid} was killed with it"
    );
    // A scanner that cannot be started fails closed too.
    let srv = Server::start(&["--scan-cmd", "/nonexistent/scanner"]);
    assert_eq!(put(&srv, "a.txt", b"x\n").status, 503);
    assert!(srv.stored_files().is_empty());
}

#[test]
fn post_commit_hooks_get_names_only_as_json_and_a_cleared_environment() {
    let tools = TempDir::new("notify");
    let log = tools.0.join("events.log");
    let hook = script(
        &tools.0,
        "notify.sh",
        &format!(
            "{{ env | sort; echo ---; cat; echo; echo ===; }} >> '{}'",
            log.display()
        ),
    );
    let hook = hook.display().to_string();
    let srv = Server::start_with_env(
        &["--on-upload", &hook, "--on-delete", &hook],
        &[("SECRET_TOKEN", "do-not-leak")],
    );
    let hostile = "a;$(touch pwned)'\"`x`.txt";
    let encoded: String = hostile.bytes().map(|b| format!("%{b:02X}")).collect();
    let r = request(
        srv.addr,
        "PUT",
        &format!("/upload/{encoded}?note=%0Anewline"),
        &[],
        b"hello\n",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let stored = name_of(&r);
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("==="))
    }));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("PIDROP_EVENT=upload"), "{text}");
    assert!(text.contains(&format!("PIDROP_NAME={stored}")), "{text}");
    assert!(
        text.contains(&format!("PIDROP_SHA256={}", sha256_hex(b"hello\n"))),
        "{text}"
    );
    assert!(
        !text.contains("do-not-leak") && !text.contains("HOME="),
        "environment cleared: {text}"
    );
    let record = text
        .split("---\n")
        .nth(1)
        .and_then(|r| r.split("\n===").next())
        .expect("record");
    let json: serde_json::Value = serde_json::from_str(record.trim()).expect("JSON on stdin");
    assert_eq!(json["original_name"], hostile);
    assert_eq!(json["fields"]["note"], "\nnewline");
    assert!(!srv.dir.join("pwned").exists() && !tools.0.join("pwned").exists());
    let r = request(srv.addr, "DELETE", &format!("/files/{stored}"), &[], b"");
    assert_eq!(r.status, 204);
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("PIDROP_EVENT=delete"))
    }));
}

#[test]
fn a_full_hook_queue_drops_with_a_warning_and_never_holds_uploads() {
    let tools = TempDir::new("slow");
    let hook = script(&tools.0, "slow.sh", "sleep 2");
    let srv = Server::start(&["--on-upload", &hook.display().to_string(), "--allow", "*"]);
    let started = Instant::now();
    let mut s = crate::harness::connect(srv.addr);
    let mut reader = std::io::BufReader::new(s.try_clone().expect("clone"));
    for i in 0..300 {
        use std::io::Write;
        let head = format!(
            "PUT /upload/f{i}.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc"
        );
        s.write_all(head.as_bytes()).expect("write");
        let r = crate::harness::read_response(&mut reader, false).expect("answer");
        assert_eq!(r.status, 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        srv.log_text().contains("after-commit queue full"),
        "a warning for the dropped hooks"
    );
}
