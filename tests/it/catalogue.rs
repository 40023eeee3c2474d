//! The catalogue through the real binary: an upload dir of pidrop 0.1 (one metadata sidecar per
//! file) is imported on first start and its sidecars removed, resumably; a damaged catalogue
//! is refused with the command that rebuilds it, and that command works.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// Writes a pidrop 0.1 upload dir: `n` files with sidecars, plus one with a damaged sidecar
/// and one with none. Returns the names in order.
fn make_v01_dir(dir: &std::path::Path, n: usize) -> Vec<String> {
    let meta = dir.join(".pidrop/meta");
    std::fs::create_dir_all(&meta).expect("meta dir");
    std::fs::create_dir_all(dir.join(".pidrop/tmp")).expect("tmp dir");
    let mut names = Vec::with_capacity(n + 2);
    for i in 0..n + 2 {
        let name = format!("{i:032x}.txt");
        let body = format!("file {i}\n");
        std::fs::write(dir.join(&name), &body).expect("data");
        let sidecar = format!(
            "pidrop-meta 1\noriginal_name\tnote {i}.txt\nsize\t{}\ntype\ttext/plain\nsha256\t\nuploaded_at\t{}\nfield\talbum\tA\\tB\nend\n",
            body.len(),
            1_700_000_000_000_000_000u128 + i as u128
        );
        if i == n {
            std::fs::write(meta.join(format!("{name}.meta")), b"garbage").expect("damaged");
        } else if i < n {
            std::fs::write(meta.join(format!("{name}.meta")), sidecar).expect("sidecar");
        }
        names.push(name);
    }
    names
}

/// A file whose modification time is an hour ago: a leftover from before the last start.
fn write_old(path: &std::path::Path, data: &[u8]) {
    std::fs::write(path, data).expect("write");
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .expect("mtime");
}

#[test]
fn a_v01_dir_is_imported_on_first_start_and_its_sidecars_removed() {
    let root = TempDir::new("v01");
    let dir = root.0.join("uploads");
    let n = 100_000;
    let names = make_v01_dir(&dir, n);
    let t = std::time::Instant::now();
    let srv = Server::start_in(root, dir.clone(), &[], &[]);
    eprintln!("imported {} files in {:?}", n + 2, t.elapsed());
    let health = srv.get("/healthz").json();
    assert_eq!(health["files"].as_u64(), Some(n as u64 + 2));
    let newest = srv.get("/files?limit=1").json();
    // The file without a sidecar is listed with what is known (its mtime is newest).
    assert_eq!(newest["files"][0]["name"], names[n + 1].as_str());
    let f = srv
        .get(&format!(
            "/files?limit=1&cursor={}-{}",
            1_700_000_000_000_000_000u128 + 6,
            names[6]
        ))
        .json();
    assert_eq!(f["files"][0]["original_name"], "note 5.txt");
    assert_eq!(f["files"][0]["fields"]["album"], "A\tB");
    assert_eq!(f["files"][0]["type"], "text/plain");
    assert!(!dir.join(".pidrop/meta").exists(), "sidecars removed");
    assert_eq!(srv.get(&format!("/files/{}", names[7])).body, b"file 7\n");
}

#[test]
fn an_import_cut_short_finishes_on_the_next_start_without_duplicates() {
    let root = TempDir::new("v01resume");
    let dir = root.0.join("uploads");
    let names = make_v01_dir(&dir, 300);
    let mut srv = Server::start_in(root, dir.clone(), &[], &[]);
    assert_eq!(srv.get("/healthz").json()["files"], 302);
    // As if the last start had died after importing, before removing the sidecars: some are
    // back (and one for a file the catalogue already has with other details).
    srv.kill9();
    make_v01_dir(&dir, 300);
    srv.restart();
    assert_eq!(srv.get("/healthz").json()["files"], 302, "no duplicates");
    assert!(!dir.join(".pidrop/meta").exists());
    assert_eq!(srv.get(&format!("/files/{}", names[0])).status, 200);
}

#[test]
fn a_damaged_catalogue_is_refused_and_rebuilt_from_the_files() {
    let srv = Server::start(&[]);
    let put = request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello");
    let name = name_of(&put);
    let dir = srv.dir.clone();
    let mut srv = srv;
    srv.kill9();
    let db = dir.join(".pidrop/catalogue.sqlite");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!(".pidrop/catalogue.sqlite{suffix}")));
    }
    std::fs::write(&db, vec![0x5a; 8192]).expect("damage");
    let bin = env!("CARGO_BIN_EXE_pidrop");
    let out = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("damaged") && err.contains("pidrop check --rebuild"),
        "{err}"
    );
    let rebuilt = Command::new(bin)
        .args(["check", "--rebuild", "--dir"])
        .arg(&dir)
        .output()
        .expect("rebuild");
    let text = String::from_utf8_lossy(&rebuilt.stdout);
    assert!(
        rebuilt.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert!(text.contains("listed 1 file(s) again"), "{text}");
    srv.restart();
    let files = srv.get("/files").json();
    assert_eq!(files["files"][0]["name"], name.as_str());
    assert_eq!(srv.get(&format!("/files/{name}")).body, b"hello");
    let aside = std::fs::read_dir(dir.join(".pidrop"))
        .expect("state")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("damaged-"));
    assert!(aside, "the old catalogue is kept aside");
}

#[test]
fn check_reports_and_repairs_by_hand() {
    let mut srv = Server::start(&[]);
    let put = request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello");
    let name = name_of(&put);
    srv.kill9();
    let dir = srv.dir.clone();
    std::fs::remove_file(dir.join(&name)).expect("rm by hand");
    let orphan = dir.join("0123456789abcdef0123456789abcdef.txt");
    // Older than a minute, as a crash leftover found later would be.
    write_old(&orphan, b"x");
    let bin = env!("CARGO_BIN_EXE_pidrop");
    let report = Command::new(bin)
        .args(["check", "--dir"])
        .arg(&dir)
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(1), "{text}");
    assert!(text.contains("1 data file(s) without a catalogue row (0 removed), 1 row(s) without a data file (0 dropped)"), "{text}");
    assert!(orphan.exists(), "a report changes nothing");
    let repair = Command::new(bin)
        .args(["check", "--repair", "--dir"])
        .arg(&dir)
        .output()
        .expect("repair");
    assert!(repair.status.success());
    assert!(!orphan.exists());
    let again = Command::new(bin)
        .args(["check", "--dir"])
        .arg(&dir)
        .output()
        .expect("check");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// A three-file multipart request killed at every step of its commit: after a restart it is
/// listed wholly or not at all, and no data file is left without a row.
#[test]
fn a_multipart_commit_cut_at_any_point_is_all_or_nothing() {
    for (point, listed) in [("renamed-one", 0), ("renamed-all", 0), ("committed", 3)] {
        let mut srv = Server::start_with_env(&[], &[("PIDROP_DEBUG_CRASH", point)]);
        let form = Form::new()
            .field("album", "crash")
            .file("a", "a.txt", "text/plain", b"one")
            .file("b", "b.txt", "text/plain", b"two")
            .file("c", "c.txt", "text/plain", b"three");
        let (ct, body) = form.finish();
        let mut s = connect(srv.addr);
        let _ = std::io::Write::write_all(&mut s, &upload_head(&ct, body.len(), true));
        let _ = std::io::Write::write_all(&mut s, &body);
        let answer = read_response(&mut std::io::BufReader::new(&s), false);
        assert!(
            answer.is_none(),
            "{point}: the process died before answering"
        );
        assert!(
            eventually(Duration::from_secs(5), || !srv.alive()),
            "{point}: aborted"
        );
        srv.restart(); // without the crash switch
        let files = srv.get("/files").json()["files"]
            .as_array()
            .expect("files")
            .len();
        assert_eq!(files, listed, "{point}");
        assert!(
            eventually(Duration::from_secs(30), || srv.stored_files().len()
                == listed),
            "{point}: data files without rows are removed: {:?}",
            srv.stored_files()
        );
        assert!(srv.temp_files().is_empty(), "{point}");
    }
}

/// A data file without a row at start is removed only if it still has none after the grace
/// period: a commit landing meanwhile (here, a row written by another process) keeps its file.
#[test]
fn a_file_whose_row_lands_during_the_grace_period_is_kept() {
    let mut srv = Server::start(&[]);
    assert_eq!(
        request(srv.addr, "PUT", "/upload/a.txt", &[], b"x").status,
        201
    );
    srv.kill9();
    let name = "0123456789abcdef0123456789abcdef.txt";
    let file = srv.dir.join(name);
    write_old(&file, b"late row");
    srv.restart();
    assert!(eventually(Duration::from_secs(10), || srv
        .log_text()
        .contains("removing those still without one")));
    let db = rusqlite::Connection::open(srv.dir.join(".pidrop/catalogue.sqlite")).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    db.execute(
        "INSERT INTO files (name, original_name, size, mime, sha256, uploaded_at, fields) VALUES (?1, 'late.txt', 8, 'text/plain', '', 1, '')",
        [name],
    )
    .expect("row");
    srv.wait_for_check();
    assert!(file.exists(), "{}", srv.log_text());
    assert_eq!(srv.get(&format!("/files/{name}")).body, b"late row");
}
