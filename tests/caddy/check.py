#!/usr/bin/env python3
"""pidrop behind a real reverse proxy: Caddy (Debian's `caddy` package) on loopback with
`tls internal`, pidrop mounted under `/drop` with `--trusted-proxies 127.0.0.1/32
--base-path /drop`, and curl through it trusting the CA Caddy made. A guest uploads, a user
logs in (a `Secure` cookie for `/drop/`) and downloads; the client's own address (127.0.0.2,
curl's `--interface`) reaches pidrop through `X-Forwarded-For`. Prints `caddy: N passed, N
failed`.

Usage: tests/caddy/check.py PATH_TO_PIDROP_BINARY
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import Proxy, pidrop, run_checks  # noqa: E402

PASSWORD = "ada-secret-1"


def guest_upload_through_the_proxy_records_the_forwarded_client(env):
    proxy, work = env["proxy"], env["work"]
    path = os.path.join(work, "photo.png")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0" + os.urandom(5000))
    status, head, body = proxy.curl("/upload/photo.png", "--interface", "127.0.0.2", "-T", path)
    assert status == 201, (status, body)
    url = json.loads(body)["files"][0]["url"]
    assert url.startswith("/drop/files/"), url
    assert f"location: {url}" in head.lower(), head
    env["url"] = url
    env["bytes"] = open(path, "rb").read()
    status, _, body = proxy.curl("/files", "-u", f"ada:{PASSWORD}")
    owners = [f["owner"] for f in json.loads(body)["files"]]
    assert owners == ["anonymous:127.0.0.2"], owners


def login_through_the_proxy_gives_a_secure_cookie_for_the_base_path(env):
    proxy, work = env["proxy"], env["work"]
    jar = os.path.join(work, "jar")
    status, head, body = proxy.curl("/login", "-c", jar, "-H", "Accept: application/json",
                                    "-d", "name=ada", "-d", f"password={PASSWORD}")
    assert status == 200, (status, body)
    cookie = [l for l in head.splitlines() if l.lower().startswith("set-cookie:")][0]
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/drop/", "Secure"]:
        assert attr in cookie, cookie
    # The session downloads the guest's file, byte-exact, through the proxy.
    status, _, body = proxy.curl(env["url"][len("/drop"):], "-b", jar)
    assert status == 200 and body == env["bytes"], status
    status, _, body = proxy.curl("/session", "-b", jar)
    assert json.loads(body)["user"] == "ada", body
    status, _, _ = proxy.curl("/logout", "-b", jar, "-X", "POST")
    assert status == 204, status
    status, _, _ = proxy.curl("/files", "-b", jar)
    assert status == 401, status


def the_page_and_links_point_under_the_base_path_over_https(env):
    proxy = env["proxy"]
    status, _, body = proxy.curl("/")
    page = body.decode()
    assert status == 200 and 'src="/drop/static/app.js"' in page, page[:300]
    status, _, _ = proxy.curl("/static/app.js")
    assert status == 200, status
    status, _, body = proxy.curl("/links", "-u", f"ada:{PASSWORD}", "-d", "kind=album", "-d", "target=Fest")
    assert status == 201, (status, body)
    full = json.loads(body)["full_url"]
    assert full.startswith(f"https://localhost:{proxy.port}/drop/s/"), full


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="pidrop-caddy-")
    users = os.path.join(work, "users")
    subprocess.run([binary, "user", "add", "ada", "--role", "admin", "--users", users, "--dir", work],
                   input=(PASSWORD + "\n").encode(), check=True, capture_output=True)
    try:
        with pidrop(binary, "--trusted-proxies", "127.0.0.1/32", "--base-path", "/drop",
                    "--users", users, "--anonymous", "dropbox") as (url, _):
            proxy = Proxy(work, url.replace("http://", ""), "/drop")
            try:
                run_checks("caddy", [guest_upload_through_the_proxy_records_the_forwarded_client,
                                     login_through_the_proxy_gives_a_secure_cookie_for_the_base_path,
                                     the_page_and_links_point_under_the_base_path_over_https],
                           {"proxy": proxy, "work": work})
            finally:
                proxy.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
