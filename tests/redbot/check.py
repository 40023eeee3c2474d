#!/usr/bin/env python3
"""Checks pidrop's HTTP caching and conditional-request behaviour with REDbot ("lint for HTTP",
PyPI `redbot`), against the real binary on 127.0.0.1.

Why: RFC 9110/9111 details (validators, 304s, If-Range, Cache-Control) are easy to get subtly
wrong, and REDbot probes them the way caches and browsers do. Every URL kind pidrop serves is
checked (the page, an asset, a stored file, a thumbnail, the listing); a note of level WARN or
BAD fails the check. Prints one line per URL and a closing `redbot: N passed, N failed`.

Usage: tests/redbot/check.py PATH_TO_PIDROP_BINARY
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zlib

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


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="pidrop-redbot-")
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--dir", os.path.join(work, "up"),
                             "--min-free", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        base = proc.stdout.readline().decode().split()[-1]
        text = put(base, "notes.txt", "Grüße\n".encode() * 300)
        photo = put(base, "photo.png", png())
        urls = ["/", "/static/app.js", "/static/style.css", text["url"], "/files?limit=5"]
        if photo.get("thumbnail_url"):
            urls.append(photo["thumbnail_url"])
        passed = failed = 0
        for path in urls:
            bad = [m for m in notes(base + path)
                   if m["level"] in ("WARN", "BAD") and m["note_id"] not in ACCEPTED]
            if bad:
                failed += 1
                for m in bad:
                    print(f"FAIL {path}: {m['level']} {m['note_id']}: {m['summary']}")
            else:
                passed += 1
                print(f"ok   {path}")
        print(f"redbot: {passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
