#!/usr/bin/env python3
"""`GET /metrics` through promtool (Debian's `prometheus` package): `promtool check metrics`
lints the exposition (names, types, HELP, units, histogram shape) the way Prometheus itself
reads it. Scraped from the real binary on 127.0.0.1 after uploads of every kind and a refusal,
so every family has values. Prints `promtool: N passed, N failed`.

Usage: tests/promtool/check.py PATH_TO_PIDROP_BINARY
"""
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import pidrop, run_checks  # noqa: E402


def call(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def promtool_check_metrics(base):
    call("PUT", f"{base}/upload/a.txt", b"hello\n")
    call("PUT", f"{base}/upload/x.exe", b"MZ")
    tus = {"Tus-Resumable": "1.0.0"}
    _, h, _ = call("POST", f"{base}/tus", b"", {**tus, "Upload-Length": "3", "Upload-Metadata": "filename ZC50eHQ="})
    call("PATCH", base + h["Location"], b"abc",
         {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    status, _, body = call("GET", f"{base}/metrics")
    assert status == 200, status
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    problems = (out.stdout + out.stderr).decode().strip()
    assert out.returncode == 0 and not problems, f"exit {out.returncode}: {problems}"


def main():
    with pidrop(sys.argv[1]) as (base, _work):
        run_checks("promtool", [promtool_check_metrics], base)


if __name__ == "__main__":
    main()
