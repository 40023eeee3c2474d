//! The drop box as shipped and the page's logins, through the real binary: the first start
//! makes an admin account and prints its password once; anonymous callers may upload but not
//! list or download; `POST /login` starts a session (an `HttpOnly; SameSite=Strict` cookie)
//! that survives a restart and ends at logout, at a password change, or when the account goes.

use crate::access::{basic, cli};
use crate::harness::{name_of, png, request, Resp, Server};

fn form_login(srv: &Server, name: &str, password: &str, accept: &str) -> Resp {
    let body = format!("name={name}&password={}", password.replace('+', "%2B"));
    request(
        srv.addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", accept),
        ],
        body.as_bytes(),
    )
}

/// The session cookie's `name=value` from a login's `Set-Cookie`.
fn session_cookie(r: &Resp) -> String {
    let set = r.header("Set-Cookie").expect("Set-Cookie");
    set.split(';').next().expect("pair").to_string()
}

fn get_with_cookie(srv: &Server, path: &str, cookie: &str) -> Resp {
    request(srv.addr, "GET", path, &[("Cookie", cookie)], b"")
}

/// The password the first start printed.
pub fn first_password(srv: &mut Server) -> String {
    let line = srv.stdout_line();
    let pw = line
        .strip_prefix("created the account admin with password ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no first-admin line: {line:?}"));
    assert!(line.contains("/login"), "{line}");
    pw.to_string()
}

#[test]
fn the_default_is_a_drop_box_whose_first_admin_is_printed_once() {
    let mut srv = Server::start_as_shipped(&[]);
    let pw = first_password(&mut srv);
    assert_eq!(pw.len(), 19, "{pw}");
    let users = std::fs::read_to_string(srv.dir.join(".pidrop/users")).expect("accounts file");
    assert!(users.contains("admin") && users.contains("$argon2id$") && !users.contains(&pw));

    // Anyone may drop a file; nobody without a login sees or fetches anything.
    let put = request(srv.addr, "PUT", "/upload/a.png", &[], &png(100));
    assert_eq!(put.status, 201, "{}", put.text());
    let url = put.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let listing = srv.get("/files");
    assert_eq!(listing.status, 401);
    assert!(listing.header("WWW-Authenticate").is_some());
    assert_eq!(srv.get(&url).status, 401);
    // The page's own requests never make the browser show its password dialog.
    let from_page = request(
        srv.addr,
        "GET",
        "/files",
        &[("Sec-Fetch-Dest", "empty")],
        b"",
    );
    assert_eq!(from_page.status, 401);
    assert!(from_page.header("WWW-Authenticate").is_none());
    let session = srv.get("/session").json();
    assert_eq!(session["user"], serde_json::Value::Null);
    assert_eq!(session["anonymous"], "dropbox");
    assert_eq!(session["may"]["upload"], true);
    assert_eq!(session["may"]["list"], false);

    // The printed password works for curl -u.
    let auth = basic("admin", &pw);
    let listed = request(srv.addr, "GET", "/files", &[("Authorization", &auth)], b"");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["files"].as_array().map(Vec::len), Some(1));

    // A restart neither makes another account nor prints the password again.
    srv.restart();
    assert_eq!(srv.get("/healthz").status, 200);
    let rest = srv.stop_and_read_stdout();
    assert!(!rest.contains("password"), "printed again: {rest}");
    let again = std::fs::read_to_string(srv.dir.join(".pidrop/users")).expect("accounts");
    assert_eq!(again, users);
}

#[test]
fn a_login_starts_a_session_that_survives_a_restart_and_ends_at_logout() {
    let mut srv = Server::start_as_shipped(&[]);
    let pw = first_password(&mut srv);

    // Wrong password: 401 JSON for scripts, the form again (no Basic dialog) for a browser.
    let wrong = form_login(&srv, "admin", "nope", "application/json");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("Set-Cookie").is_none());
    let page = form_login(&srv, "admin", "nope", "text/html");
    assert_eq!(page.status, 401);
    assert!(page.header("WWW-Authenticate").is_none());
    assert!(page.text().contains("<form") && page.text().contains("action=\"/login\""));
    // Unknown names are refused alike.
    assert_eq!(
        form_login(&srv, "nobody", "x", "application/json").status,
        401
    );

    // The form without JavaScript: 303 to the page, with the cookie.
    let ok = form_login(&srv, "admin", &pw, "text/html");
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("Location"), Some("/"));
    let set = ok.header("Set-Cookie").expect("cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = session_cookie(&ok);
    assert_eq!(get_with_cookie(&srv, "/files", &cookie).status, 200);
    let me = get_with_cookie(&srv, "/session", &cookie).json();
    assert_eq!(me["user"], "admin");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["may"]["delete"], true);

    // A login from another site is refused (login CSRF).
    let foreign = request(
        srv.addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://evil.example"),
        ],
        format!("name=admin&password={pw}").as_bytes(),
    );
    assert_eq!(foreign.status, 403);

    // Sessions live in the catalogue: a restart keeps them.
    srv.restart();
    assert_eq!(get_with_cookie(&srv, "/files", &cookie).status, 200);

    // Logout ends it on the server, not only in the browser.
    let out = request(srv.addr, "POST", "/logout", &[("Cookie", &cookie)], b"");
    assert_eq!(out.status, 204);
    assert!(out
        .header("Set-Cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(get_with_cookie(&srv, "/files", &cookie).status, 401);
    let me = get_with_cookie(&srv, "/session", &cookie).json();
    assert_eq!(me["user"], serde_json::Value::Null);
}

#[test]
fn a_password_change_or_a_removed_account_ends_its_sessions() {
    let mut srv = Server::start_as_shipped(&[]);
    let pw = first_password(&mut srv);
    let (code, _, err) = cli(
        &srv,
        &["user", "add", "mia", "--role", "member"],
        "mia-pass\n",
    );
    assert_eq!(code, 0, "{err}");
    let admin = session_cookie(&form_login(&srv, "admin", &pw, "application/json"));
    let mia = session_cookie(&form_login(&srv, "mia", "mia-pass", "application/json"));
    // A member's session uploads as the member.
    let put = request(
        srv.addr,
        "PUT",
        "/upload/m.png",
        &[("Cookie", &mia)],
        &png(10),
    );
    assert_eq!(put.status, 201);
    let name = name_of(&put);
    let auth = basic("admin", &pw);
    let meta = request(srv.addr, "GET", "/files", &[("Authorization", &auth)], b"").json();
    assert_eq!(meta["files"][0]["name"], name.as_str());
    assert_eq!(meta["files"][0]["owner"], "user:mia");

    let (code, _, err) = cli(&srv, &["user", "passwd", "admin"], "new-pass\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(get_with_cookie(&srv, "/files", &admin).status, 401);
    assert_eq!(get_with_cookie(&srv, "/files", &mia).status, 200);
    let (code, _, err) = cli(&srv, &["user", "remove", "mia"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(get_with_cookie(&srv, "/files", &mia).status, 401);
}

#[test]
fn login_forms_are_bounded_and_must_be_forms() {
    let mut srv = Server::start_as_shipped(&[]);
    let _ = first_password(&mut srv);
    let json = request(
        srv.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        br#"{"name":"admin"}"#,
    );
    assert_eq!(json.status, 400);
    assert_eq!(json.json()["error"]["code"], "bad_form");
    let huge = vec![b'a'; 10_000];
    let big = request(
        srv.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &huge,
    );
    assert_eq!(big.status, 413);
    let missing = form_login(&srv, "admin", "", "application/json");
    assert_eq!(missing.status, 401);
    assert_eq!(srv.get("/login").status, 200);
    assert!(srv
        .get("/login")
        .text()
        .contains("autocomplete=\"current-password\""));
}
