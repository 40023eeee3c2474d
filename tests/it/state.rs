//! The upload dir's own state through the real binary: symlinks planted where pidrop keeps its
//! state are refused at start (nothing outside the upload dir is touched), a delete that cannot
//! remove the data file leaves it listed, and listing cursors are checked.

use std::process::Command;

use crate::harness::*;

/// Starts pidrop on `dir` expecting it to refuse; returns its stderr.
fn refused_start(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .output()
        .expect("run pidrop");
    assert_eq!(out.status.code(), Some(1), "must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn symlinked_state_dirs_are_refused_and_their_targets_untouched() {
    for planted in [".pidrop/tmp", ".pidrop/meta", ".pidrop/thumbs", ".pidrop"] {
        let root = TempDir::new("symlink");
        let victim = root.0.join("victim");
        std::fs::create_dir_all(&victim).expect("victim dir");
        std::fs::write(victim.join("precious.txt"), b"keep me").expect("victim file");
        std::fs::write(victim.join("x.meta.tmp"), b"keep me too").expect("victim file");
        let uploads = root.0.join("uploads");
        let link = uploads.join(planted);
        std::fs::create_dir_all(link.parent().expect("parent")).expect("state parent");
        std::os::unix::fs::symlink(&victim, &link).expect("plant symlink");
        if planted == ".pidrop/thumbs" && !cfg!(feature = "thumbnails") {
            continue;
        }
        let err = refused_start(&uploads);
        assert!(err.contains("symlink"), "{planted}: {err}");
        assert_eq!(
            std::fs::read(victim.join("precious.txt")).expect("still there"),
            b"keep me",
            "{planted}"
        );
        assert!(victim.join("x.meta.tmp").exists(), "{planted}");
    }
}

#[test]
fn a_delete_that_cannot_remove_the_file_keeps_it_listed() {
    let srv = Server::start(&[]);
    let put = request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello");
    let name = name_of(&put);
    srv.wait_for_check();
    // Root may unlink anything, so make the unlink itself fail: a non-empty directory in place.
    let path = srv.dir.join(&name);
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("dir in place");
    std::fs::write(path.join("x"), b"x").expect("non-empty");
    let del = request(srv.addr, "DELETE", &format!("/files/{name}"), &[], b"");
    assert_eq!(del.status, 500, "{}", del.text());
    let listed = srv.get("/files").json();
    assert_eq!(listed["files"][0]["name"], name.as_str(), "still listed");
    std::fs::remove_dir_all(&path).expect("undo");
    std::fs::write(&path, b"hello").expect("restore");
    let del = request(srv.addr, "DELETE", &format!("/files/{name}"), &[], b"");
    assert_eq!(del.status, 204);
    assert_eq!(
        srv.get("/files").json()["files"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn malformed_cursors_and_limits_are_answered_not_ignored() {
    let srv = Server::start(&[]);
    for i in 0..3 {
        let r = request(srv.addr, "PUT", &format!("/upload/{i}.txt"), &[], b"x");
        assert_eq!(r.status, 201);
    }
    for bad in [
        "abc",
        "12-",
        "-0123456789abcdef0123456789abcdef.txt",
        "1-../x",
        "x-y-z",
    ] {
        let r = srv.get(&format!("/files?cursor={bad}"));
        assert_eq!(r.status, 400, "cursor {bad:?}");
        assert_eq!(r.json()["error"]["code"], "bad_query");
    }
    let page = srv.get("/files?limit=0").json();
    assert_eq!(
        page["files"].as_array().map(Vec::len),
        Some(1),
        "limit 0 is 1"
    );
    let next = page["next"].as_str().expect("next");
    let rest = srv.get(&format!("/files?cursor={next}&limit=10")).json();
    assert_eq!(rest["files"].as_array().map(Vec::len), Some(2));
}

/// A catalogue commit that fails (the disk filled up by the data file itself) leaves nothing
/// behind: 507, the data file removed, nothing listed.
#[test]
fn a_failed_catalogue_write_leaves_nothing_behind() {
    let srv = Server::start_on_tmpfs("2m", &["--allow", "*", "--min-free", "0"]);
    let free = srv.get("/healthz").json()["free_bytes"]
        .as_u64()
        .expect("free");
    // Exactly the free space: the data fits, its catalogue row cannot.
    let data = bytes(5, usize::try_from(free).expect("small"));
    let r = request(srv.addr, "PUT", "/upload/fill.bin", &[], &data);
    assert_eq!(r.status, 507, "{}", r.text());
    // The tmpfs is mounted in the server's own mount namespace: look through its root.
    let inside = std::path::PathBuf::from(format!("/proc/{}/root", srv.pid()));
    let dir = inside.join(srv.dir.strip_prefix("/").expect("absolute"));
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, [".pidrop"], "only pidrop's state is left");
    assert!(std::fs::read_dir(dir.join(".pidrop/tmp"))
        .expect("tmp")
        .next()
        .is_none());
    assert_eq!(srv.get("/healthz").json()["files"], 0);
    // And once there is room again, uploads work.
    let ok = request(srv.addr, "PUT", "/upload/small.txt", &[], b"fits");
    assert_eq!(ok.status, 201, "{}", ok.text());
}
