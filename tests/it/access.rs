//! Accounts and access through the real binary: `pidrop user`/`pidrop token` write the accounts
//! file (mode 0600, argon2id), the running server sees each change at once, and every role is
//! allowed exactly its actions — 401 without (or with bad) credentials, 403 for a known caller
//! whose role does not allow it; `--anonymous` decides for callers without credentials.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::harness::{name_of, request, Resp, Server};

/// `pidrop ARGS --dir DIR`, with `stdin` as its standard input; (status, stdout, stderr).
pub fn cli(srv: &Server, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args(args)
        .args(["--dir", &srv.dir.display().to_string()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pidrop user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("password");
    let out = child.wait_with_output().expect("output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

pub fn basic(name: &str, password: &str) -> String {
    let raw = format!("{name}:{password}");
    let encoded = pidrop::tus::headers::encode_base64(raw.as_bytes());
    format!("Basic {encoded}")
}

fn call(srv: &Server, method: &str, path: &str, auth: &str, body: &[u8]) -> Resp {
    let mut h = vec![];
    if !auth.is_empty() {
        h.push(("Authorization", auth));
    }
    request(srv.addr, method, path, &h, body)
}

#[test]
fn each_role_may_do_exactly_its_actions_and_changes_take_effect_at_once() {
    let srv = Server::start(&["--anonymous", "none"]);
    let r = srv.get("/files");
    assert_eq!(r.status, 401);
    assert!(r
        .header("WWW-Authenticate")
        .is_some_and(|c| c.starts_with("Basic realm=\"pidrop\"")));
    let page = request(
        srv.addr,
        "GET",
        "/files",
        &[("Sec-Fetch-Dest", "empty")],
        b"",
    );
    assert_eq!(page.status, 401);
    assert!(
        page.header("WWW-Authenticate").is_none(),
        "no browser dialog for the page's requests"
    );
    assert_eq!(srv.get("/").status, 200, "the page itself is open");

    for (name, role) in [
        ("ada", "admin"),
        ("mia", "member"),
        ("uli", "uploader"),
        ("vic", "viewer"),
    ] {
        let (code, out, err) = cli(
            &srv,
            &["user", "add", name, "--role", role],
            &format!("pw-{name}\n"),
        );
        assert_eq!(code, 0, "{out}{err}");
    }
    let file = srv.dir.join(".pidrop/users");
    let mode = std::fs::metadata(&file)
        .expect("accounts file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&file)
        .expect("read")
        .contains("user ada admin $argon2id$"));

    let ada = basic("ada", "pw-ada");
    let stored = call(&srv, "PUT", "/upload/a.txt", &ada, b"hello\n");
    assert_eq!(stored.status, 201);
    let url = format!("/files/{}", name_of(&stored));
    // (PUT, list, download, metrics) per role: 201/200 allowed, 403 not.
    for (name, want) in [
        ("ada", [201, 200, 200, 200]),
        ("mia", [201, 200, 200, 403]),
        ("uli", [201, 200, 404, 403]),
        ("vic", [403, 200, 200, 403]),
    ] {
        let auth = basic(name, &format!("pw-{name}"));
        let got = [
            call(&srv, "PUT", "/upload/b.txt", &auth, b"more\n").status,
            call(&srv, "GET", "/files", &auth, b"").status,
            call(&srv, "GET", &url, &auth, b"").status,
            call(&srv, "GET", "/metrics", &auth, b"").status,
        ];
        assert_eq!(got, want, "{name}");
        let delete = call(
            &srv,
            "DELETE",
            "/files/0123456789abcdef0123456789abcdef.txt",
            &auth,
            b"",
        );
        // Admins may delete anything, members and uploaders their own (so a missing file is a
        // 404 to them too), viewers nothing.
        let want = if name == "vic" { 403 } else { 404 };
        assert_eq!(delete.status, want, "{name} delete");
    }
    assert_eq!(
        call(&srv, "GET", "/files", &basic("ada", "wrong"), b"").status,
        401
    );
    assert_eq!(
        call(&srv, "GET", "/files", &basic("nobody", "pw"), b"").status,
        401
    );
    assert_eq!(call(&srv, "GET", "/files", "Digest x", b"").status, 401);

    // Removing a user takes effect at once, remembered credentials or not.
    assert_eq!(
        call(&srv, "GET", "/files", &basic("vic", "pw-vic"), b"").status,
        200
    );
    let (code, _, err) = cli(&srv, &["user", "remove", "vic"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        call(&srv, "GET", "/files", &basic("vic", "pw-vic"), b"").status,
        401
    );
    let (_, listed, _) = cli(&srv, &["user", "list"], "");
    // `admin` is the account the first start made (it printed its password).
    assert_eq!(listed, "admin admin\nada admin\nmia member\nuli uploader\n");
}

#[test]
fn tokens_are_shown_once_stored_hashed_and_revoked_at_once() {
    let srv = Server::start(&["--anonymous", "none"]);
    let (code, token, err) = cli(
        &srv,
        &[
            "token",
            "add",
            "backup",
            "--role",
            "viewer",
            "--expires",
            "30d",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert_eq!(token.len(), 48, "192 random bits as hex: {token}");
    let file = std::fs::read_to_string(srv.dir.join(".pidrop/users")).expect("accounts");
    assert!(!file.contains(&token), "only its hash is stored");
    let bearer = format!("Bearer {token}");
    assert_eq!(call(&srv, "GET", "/files", &bearer, b"").status, 200);
    assert_eq!(
        call(&srv, "PUT", "/upload/x.txt", &bearer, b"x\n").status,
        403
    );
    assert_eq!(call(&srv, "GET", "/files", "Bearer 00", b"").status, 401);
    let (_, listed, _) = cli(&srv, &["token", "list"], "");
    assert!(listed.starts_with("backup viewer expires 20"), "{listed}");
    assert_eq!(cli(&srv, &["token", "revoke", "backup"], "").0, 0);
    assert_eq!(call(&srv, "GET", "/files", &bearer, b"").status, 401);
    // An expired token (edited by hand) is refused.
    let (_, t2, _) = cli(&srv, &["token", "add", "old", "--role", "admin"], "");
    let path = srv.dir.join(".pidrop/users");
    let edited = std::fs::read_to_string(&path)
        .expect("read")
        .replace(" never", " 1000");
    std::fs::write(&path, edited).expect("edit");
    assert_eq!(
        call(&srv, "GET", "/files", &format!("Bearer {}", t2.trim()), b"").status,
        401
    );
}

#[test]
fn anonymous_callers_get_what_the_setting_gives() {
    let viewer = Server::start(&["--anonymous", "viewer"]);
    assert_eq!(viewer.get("/files").status, 200);
    assert_eq!(
        request(viewer.addr, "PUT", "/upload/a.txt", &[], b"a\n").status,
        401
    );
    let dropbox = Server::start(&["--anonymous", "dropbox"]);
    assert_eq!(
        request(dropbox.addr, "PUT", "/upload/a.txt", &[], b"a\n").status,
        201
    );
    assert_eq!(dropbox.get("/files").status, 401);
    let tus = request(
        dropbox.addr,
        "POST",
        "/tus",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "2"),
            ("Upload-Metadata", "filename YS50eHQ="),
        ],
        b"",
    );
    assert_eq!(tus.status, 201, "a drop box takes resumable uploads too");
    let open = Server::start(&[]);
    assert_eq!(
        open.get("/files").status,
        200,
        "the default keeps 0.1's open behaviour"
    );
}

#[test]
fn a_damaged_accounts_file_stops_start_up_with_its_line_number() {
    let root = crate::harness::TempDir::new("badusers");
    let users = root.0.join("users");
    std::fs::write(&users, "# ok\nuser ada boss $argon2id$x\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_pidrop"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &root.0.join("up").display().to_string(),
        ])
        .args(["--users", &users.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("unknown role"),
        "{err}"
    );
}

#[test]
fn guessing_is_throttled_per_address_and_logged_for_fail2ban() {
    let srv = Server::start(&["--anonymous", "none"]);
    assert_eq!(
        cli(&srv, &["user", "add", "ada", "--role", "admin"], "right\n").0,
        0
    );
    for i in 0..10 {
        let r = call(
            &srv,
            "GET",
            "/files",
            &basic("ada", &format!("guess{i}")),
            b"",
        );
        assert_eq!(r.status, 401, "guess {i}");
    }
    let r = call(&srv, "GET", "/files", &basic("ada", "right"), b"");
    assert_eq!(r.status, 429, "even the right password waits once blocked");
    let wait: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.json()["error"]["code"], "too_many_failures");
    let log = srv.log_text();
    assert_eq!(
        log.matches("authentication failure from 127.0.0.1").count(),
        10,
        "{log}"
    );
}

/// A drop box (`--anonymous dropbox`) with ada (admin), mia (member) and uli (uploader), each
/// with the password `pw-<name>`.
fn drop_box_with_three_accounts() -> Server {
    let srv = Server::start(&["--anonymous", "dropbox"]);
    for (name, role) in [("ada", "admin"), ("mia", "member"), ("uli", "uploader")] {
        let (code, _, err) = cli(
            &srv,
            &["user", "add", name, "--role", role],
            &format!("pw-{name}\n"),
        );
        assert_eq!(code, 0, "{err}");
    }
    srv
}

#[test]
fn delete_tokens_and_ownership_let_uploaders_delete_their_own_files_only() {
    let srv = drop_box_with_three_accounts();
    // A guest in the drop box gets a delete token with its upload, once.
    let guest = request(srv.addr, "PUT", "/upload/guest.txt", &[], b"from a guest\n");
    assert_eq!(guest.status, 201);
    let token = guest.json()["files"][0]["delete_token"]
        .as_str()
        .expect("delete token")
        .to_string();
    let url = format!("/files/{}", name_of(&guest));
    assert_eq!(request(srv.addr, "DELETE", &url, &[], b"").status, 401);
    assert_eq!(
        request(srv.addr, "DELETE", &url, &[("X-Delete-Token", "00ff")], b"").status,
        403
    );
    // Listings never show tokens; owners only to admins.
    let ada = basic("ada", "pw-ada");
    let listed = call(&srv, "GET", "/files", &ada, b"").json();
    assert_eq!(listed["files"][0]["owner"], "anonymous:127.0.0.1");
    assert!(listed["files"][0].get("delete_token").is_none());
    let mia = basic("mia", "pw-mia");
    assert!(call(&srv, "GET", "/files", &mia, b"").json()["files"][0]
        .get("owner")
        .is_none());
    assert_eq!(
        request(srv.addr, "DELETE", &url, &[("X-Delete-Token", &token)], b"").status,
        204
    );

    // Members and uploaders delete what they uploaded, not what others did.
    let mine = call(&srv, "PUT", "/upload/mine.txt", &mia, b"mia's\n");
    let mine = format!("/files/{}", name_of(&mine));
    let theirs = call(
        &srv,
        "PUT",
        "/upload/theirs.txt",
        &basic("uli", "pw-uli"),
        b"uli's\n",
    );
    let theirs = format!("/files/{}", name_of(&theirs));
    assert_eq!(call(&srv, "DELETE", &theirs, &mia, b"").status, 403);
    // An uploader sees only its own files; the others' are not there for it.
    let uli = basic("uli", "pw-uli");
    let seen = call(&srv, "GET", "/files", &uli, b"").json();
    let names: Vec<&str> = seen["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["original_name"].as_str())
        .collect();
    assert_eq!(names, ["theirs.txt"]);
    assert_eq!(call(&srv, "GET", &mine, &uli, b"").status, 404);
    assert_eq!(call(&srv, "DELETE", &mine, &uli, b"").status, 404);
    assert_eq!(call(&srv, "GET", &theirs, &uli, b"").status, 200);
    assert_eq!(call(&srv, "DELETE", &mine, &mia, b"").status, 204);
    assert_eq!(
        call(&srv, "DELETE", &theirs, &basic("uli", "pw-uli"), b"").status,
        204
    );

    // A tus upload's last answer carries its delete token.
    let r = crate::harness::tus_whole(srv.addr, "filename YS50eHQ=", b"abc");
    assert_eq!(r.status, 204);
    let token = r
        .header("Pidrop-Delete-Token")
        .expect("delete token")
        .to_string();
    let file = r.header("Pidrop-File-Url").expect("file").to_string();
    assert_eq!(
        request(
            srv.addr,
            "DELETE",
            &file,
            &[("X-Delete-Token", &token)],
            b""
        )
        .status,
        204
    );
}

#[test]
fn an_accounts_resumable_upload_is_nobody_elses_business() {
    let srv = drop_box_with_three_accounts();
    let tus = ("Tus-Resumable", "1.0.0");
    let mia = basic("mia", "pw-mia");
    let r = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            tus,
            ("Authorization", &mia),
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename YS50eHQ="),
        ],
        b"",
    );
    let loc = r.header("Location").expect("location").to_string();
    let head = |auth: &str| {
        let mut h = vec![tus];
        if !auth.is_empty() {
            h.push(("Authorization", auth));
        }
        request(srv.addr, "HEAD", &loc, &h, b"").status
    };
    assert_eq!(head(&mia), 200);
    assert_eq!(
        head(&basic("ada", "pw-ada")),
        200,
        "admins see every upload"
    );
    assert_eq!(head(&basic("uli", "pw-uli")), 404);
    assert_eq!(head(""), 404, "nor a guest");
    // A guest's upload is resumed by its URL alone (a phone may come back on another address).
    let r = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            tus,
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename Yi50eHQ="),
        ],
        b"",
    );
    let guest = r.header("Location").expect("location").to_string();
    assert_eq!(request(srv.addr, "HEAD", &guest, &[tus], b"").status, 200);
}
