#!/usr/bin/env python3
"""Checks pidrop's HTTP caching and conditional-request behaviour with REDbot ("lint for HTTP",
PyPI `redbot`), against the real binary on 127.0.0.1.

Why: RFC 9110/9111 details (validators, 304s, If-Range, Cache-Control) are easy to get subtly
wrong, and REDbot probes them the way caches and browsers do. Every URL kind pidrop serves is
checked (the page, an asset, a stored file, a thumbnail, the listing, the login form, the
session); a note of level WARN or
BAD fails the check. Prints one line per URL and a closing `redbot: N passed, N failed`.

Usage: tests/redbot/check.py PATH_TO_PIDROP_BINARY
"""
import json
import os
import struct
import subprocess
import sys
import urllib.request
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import pidrop, run_checks  # noqa: E402

# Notes that are facts about pidrop's design, not defects: a listing must not be cached.
ACCEPTED = {"NO_STORE"}


def png(w=64, h=48):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def put(base, name, data):
    req = urllib.request.Request(f"{base}/upload/{name}", data=data, method="PUT")
    with urllib.request.urlopen(req) as r:
        return json.load(r)["files"][0]


def notes(url):
    out = subprocess.run(["redbot", "-o", "har", url], capture_output=True, text=True, timeout=120)
    har = json.loads(out.stdout)
    return [m for e in har["log"]["entries"] for m in e.get("_red_messages", [])]


def lint(base, path):
    """One URL through REDbot: no WARN or BAD note but the accepted ones."""
    bad = [m for m in notes(base + path)
           if m["level"] in ("WARN", "BAD") and m["note_id"] not in ACCEPTED]
    assert not bad, "; ".join(f"{m['level']} {m['note_id']}: {m['summary']}" for m in bad)


def main():
    with pidrop(sys.argv[1]) as (base, _work):
        text = put(base, "notes.txt", "Grüße\n".encode() * 300)
        photo = put(base, "photo.png", png())
        urls = ["/", "/static/app.js", "/static/style.css", text["url"], "/files?limit=5",
                "/login", "/session"]
        if photo.get("thumbnail_url"):
            urls.append(photo["thumbnail_url"])
        checks = []
        for path in urls:
            check = (lambda p: lambda: lint(base, p))(path)
            check.__name__ = path
            checks.append(check)
        run_checks("redbot", checks)


if __name__ == "__main__":
    main()
