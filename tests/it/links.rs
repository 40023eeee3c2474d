//! Share links through the real binary, on a server that gives callers without credentials
//! nothing (`--anonymous none`): a file link downloads its file and nothing else, an album
//! link lists and downloads its album, an upload link uploads into its album within its size
//! and count — by PUT, multipart and tus — and every link ends when revoked or expired (410).

use std::time::Duration;

use crate::access::{basic, cli};
use crate::harness::{eventually, name_of, original_names, png, request, Form, Resp, Server};
use crate::login::first_password;

struct Box {
    srv: Server,
    admin: String,
}

fn start() -> Box {
    let mut srv = Server::start_as_shipped(&["--anonymous", "none"]);
    let pw = first_password(&mut srv);
    Box {
        srv,
        admin: basic("admin", &pw),
    }
}

impl Box {
    fn as_admin(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        request(
            self.srv.addr,
            method,
            path,
            &[("Authorization", &self.admin)],
            body,
        )
    }

    fn make_link(&self, auth: &str, form: &str) -> Resp {
        request(
            self.srv.addr,
            "POST",
            "/links",
            &[
                ("Authorization", auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        )
    }

    /// A new link's token (from its URL) and id.
    fn link(&self, form: &str) -> (String, String) {
        let r = self.make_link(&self.admin, form);
        assert_eq!(r.status, 201, "{}", r.text());
        let j = r.json();
        assert!(j["qr_svg"].as_str().is_some_and(|s| s.starts_with("<svg")));
        assert!(j["full_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://")));
        let url = j["url"].as_str().expect("url");
        let token = url.strip_prefix("/s/").expect("/s/ url").to_string();
        (token, j["id"].as_str().expect("id").to_string())
    }

    fn with_link(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Resp {
        request(
            self.srv.addr,
            method,
            path,
            &[("X-Pidrop-Link", token)],
            body,
        )
    }
}

#[test]
fn a_file_link_downloads_its_file_and_nothing_else_until_revoked() {
    let b = start();
    let data = png(3000);
    let put = b.as_admin("PUT", "/upload/shared.png", &data);
    let name = name_of(&put);
    let other = name_of(&b.as_admin("PUT", "/upload/private.png", &png(10)));
    assert_eq!(b.srv.get(&format!("/files/{name}")).status, 401);
    let (token, id) = b.link(&format!("kind=file&target={name}"));
    let opened = b.srv.get(&format!("/s/{token}"));
    assert_eq!(opened.status, 200);
    assert_eq!(opened.body, data);
    assert_eq!(
        b.srv.get(&format!("/files/{name}?link={token}")).status,
        200
    );
    assert_eq!(
        b.srv.get(&format!("/files/{other}?link={token}")).status,
        404
    );
    assert_eq!(b.with_link("GET", "/files", &token, b"").status, 401);
    assert_eq!(
        b.with_link("PUT", "/upload/x.png", &token, &png(1)).status,
        401
    );
    // A guessed token is no link.
    assert_eq!(b.srv.get(&format!("/s/{}", "0".repeat(32))).status, 410);
    assert_eq!(
        b.as_admin("DELETE", &format!("/links/{id}"), b"").status,
        204
    );
    let gone = b.srv.get(&format!("/s/{token}"));
    assert_eq!(gone.status, 410);
    assert_eq!(gone.json()["error"]["code"], "link_gone");
    assert_eq!(
        b.srv.get(&format!("/files/{name}?link={token}")).status,
        410
    );
}

#[test]
fn an_album_link_lists_and_downloads_its_album_only() {
    let b = start();
    let a1 = name_of(&b.as_admin("PUT", "/upload/a1.png?album=Trip", &png(10)));
    b.as_admin("PUT", "/upload/a2.png?album=Trip", &png(20));
    let other = name_of(&b.as_admin("PUT", "/upload/o.png?album=Else", &png(30)));
    let (token, _) = b.link("kind=album&target=Trip&expires=1h");
    for path in ["/files", "/files?album=Else"] {
        let listed = b.with_link("GET", path, &token, b"");
        assert_eq!(original_names(&listed), ["a1.png", "a2.png"], "{path}");
    }
    assert_eq!(b.srv.get(&format!("/files/{a1}?link={token}")).status, 200);
    assert_eq!(
        b.srv.get(&format!("/files/{other}?link={token}")).status,
        404
    );
    assert_eq!(
        b.with_link("DELETE", &format!("/files/{a1}"), &token, b"")
            .status,
        401
    );
    let page = b.srv.get(&format!("/s/{token}"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<!doctype html>"));
    let session = b.with_link("GET", "/session", &token, b"").json();
    assert_eq!(session["link"]["kind"], "album");
    assert_eq!(session["link"]["target"], "Trip");
    assert_eq!(session["may"]["list"], true);
    assert_eq!(session["may"]["upload"], false);
}

#[test]
fn an_upload_link_uploads_into_its_album_within_its_limits() {
    let b = start();
    let (token, id) = b.link("kind=upload&target=Party&max_files=3&max_size=4K");
    // The link's album wins over the one asked for.
    let put = b.with_link("PUT", "/upload/p.png?album=Else", &token, &png(100));
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.json()["files"][0]["album"], "Party");
    assert!(put.json()["files"][0]["delete_token"].is_string());
    let big = b.with_link("PUT", "/upload/big.png", &token, &png(5000));
    assert_eq!(big.status, 413, "{}", big.text());
    let form = Form::new().file("file", "f.png", "image/png", &png(50));
    let (ctype, body) = form.finish();
    let multipart = request(
        b.srv.addr,
        "POST",
        "/upload",
        &[("X-Pidrop-Link", &token), ("Content-Type", &ctype)],
        &body,
    );
    assert_eq!(multipart.status, 201, "{}", multipart.text());
    // tus: every request carries the link; the album is the link's.
    let tus = ("Tus-Resumable", "1.0.0");
    let meta = format!("filename {}", pidrop::tus::headers::encode_base64(b"t.png"));
    let created = request(
        b.srv.addr,
        "POST",
        "/tus",
        &[
            tus,
            ("Upload-Length", "60"),
            ("Upload-Metadata", &meta),
            ("X-Pidrop-Link", &token),
        ],
        b"",
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let loc = created.header("Location").expect("location").to_string();
    let patched = request(
        b.srv.addr,
        "PATCH",
        &loc,
        &[
            tus,
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("X-Pidrop-Link", &token),
        ],
        &png(60 - png(0).len()),
    );
    assert_eq!(patched.status, 204, "{}", patched.text());
    // Three files: the link is used up.
    let more = b.with_link("PUT", "/upload/q.png", &token, &png(10));
    assert_eq!(more.status, 403);
    assert_eq!(more.json()["error"]["code"], "link_used_up");
    assert_eq!(b.with_link("GET", "/files", &token, b"").status, 401);
    let album = b.as_admin("GET", "/files?album=Party", b"").json();
    let files = album["files"].as_array().expect("files");
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|f| f["owner"] == format!("link:{id}")));
    let listed = b.as_admin("GET", "/links", b"").json();
    assert_eq!(listed["links"][0]["used_files"], 3);
    assert!(listed["links"][0].get("token").is_none());
    // Without the link, nothing may be uploaded here.
    assert_eq!(
        request(b.srv.addr, "PUT", "/upload/x.png", &[], &png(1)).status,
        401
    );
}

#[test]
fn members_make_and_see_their_own_links_viewers_none_and_links_expire() {
    let b = start();
    let (code, _, err) = cli(
        &b.srv,
        &["user", "add", "mia", "--role", "member"],
        "mia-pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        &b.srv,
        &["user", "add", "vic", "--role", "viewer"],
        "vic-pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let mia = basic("mia", "mia-pw");
    let made = b.make_link(&mia, "kind=album&target=Mine&expires=1h");
    assert_eq!(made.status, 201, "{}", made.text());
    b.link("kind=album&target=Admins");
    let hers = request(b.srv.addr, "GET", "/links", &[("Authorization", &mia)], b"").json();
    assert_eq!(hers["links"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        b.as_admin("GET", "/links", b"").json()["links"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let vic = basic("vic", "vic-pw");
    assert_eq!(b.make_link(&vic, "kind=album&target=X").status, 403);
    for bad in [
        "kind=nope&target=x",
        "kind=album",
        "kind=album&target=x&expires=400d",
        "kind=file&target=nothere.png",
    ] {
        let r = b.make_link(&b.admin, bad);
        assert!(r.status == 400 || r.status == 404, "{bad}: {}", r.status);
    }
    // A link that lasts three seconds: open now, gone (410) soon after.
    let (token, _) = b.link("kind=album&target=Mine&expires=3s");
    assert_eq!(b.with_link("GET", "/files", &token, b"").status, 200);
    assert!(eventually(Duration::from_secs(5), || {
        b.with_link("GET", "/files", &token, b"").status == 410
    }));
}
