#!/usr/bin/env python3
"""The catalogue at scale: start-up time and RSS of pidrop with 0, 100k and 1M stored files,
and 400 x 64 KiB small files over 8 keep-alive connections (the durability cost per file).

How the files get there (a fast path, not HTTP): pidrop is started once on an empty upload dir
so it creates its catalogue, and stopped; then N empty data files with stored names are made and
their rows inserted with Python's sqlite3 module in one transaction, in pidrop's own schema
(the one it just created). Empty files, because start-up never reads them: what is measured is
the catalogue. The background consistency check then finds every row's file, and nothing to
repair.

Measured for each N: time from spawn to the first answered request (`/healthz`), VmRSS after
that, VmRSS and VmHWM after listing 20 pages of 100 (newest first, following `next`), and the
time of those 20 pages. Prints a table and writes bench/out/catalogue.md.

Usage: python3 bench/catalogue.py [N ...]   (default: 0 100000 1000000)
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Server, small_files, sh  # noqa: E402


def fill(binary, work, n):
    """An upload dir whose catalogue holds `n` files (see the module doc)."""
    srv = Server(binary, work)
    srv.stop()
    updir = os.path.join(work, "uploads")
    t0 = time.perf_counter()
    base = 1_700_000_000_000_000_000
    db = sqlite3.connect(os.path.join(updir, ".pidrop", "catalogue.sqlite"))
    rows = []
    for i in range(n):
        name = f"{i:032x}.jpg"
        open(os.path.join(updir, name), "wb").close()
        rows.append((name, f"IMG_{i:07d}.JPG", 0, "image/jpeg", "", base + i * 1_000_000, ""))
    db.executemany("INSERT INTO files (name, original_name, size, mime, sha256, uploaded_at, fields) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return time.perf_counter() - t0


def startup(binary, work):
    t0 = time.perf_counter()
    srv = Server(binary, work)
    while True:
        try:
            with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as r:
                health = json.load(r)
            break
        except OSError:
            time.sleep(0.001)
    return srv, time.perf_counter() - t0, health


def pages(srv, count=20, limit=100):
    t0 = time.perf_counter()
    cursor = None
    for _ in range(count):
        url = f"{srv.url}/files?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(url) as r:
            page = json.load(r)
        cursor = page.get("next")
        if not cursor:
            break
    return time.perf_counter() - t0


def small_file_rate(binary, work):
    srv = Server(binary, work + "/small")
    paths = []
    os.makedirs(work + "/files", exist_ok=True)
    for i in range(400):
        p = os.path.join(work, "files", f"f{i}.bin")
        with open(p, "wb") as f:
            f.write(os.urandom(64 << 10))
        paths.append(p)
    t0 = time.perf_counter()
    small_files(srv.url, paths, "put")
    rate = 400 / (time.perf_counter() - t0)
    srv.stop()
    return rate


def main():
    counts = [int(a) for a in sys.argv[1:]] or [0, 100_000, 1_000_000]
    binary = os.path.join(ROOT, "target", "release", "pidrop")
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    out = ["| files | fill (s) | start-up to first answer (ms) | RSS after start (KiB) | RSS after 20 pages (KiB) | peak (KiB) | 20 pages (ms) |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for n in counts:
        work = tempfile.mkdtemp(prefix="pidrop-cat-", dir=os.environ.get("BENCH_DIR", ROOT + "/target"))
        try:
            filled = fill(binary, work, n)
            subprocess.run(["sync"], check=False)
            srv, took, health = startup(binary, work)
            assert health["files"] == n, health
            rss0 = srv.status("VmRSS:")
            listed = pages(srv)
            row = f"| {n} | {filled:.1f} | {took * 1000:.0f} | {rss0} | {srv.status('VmRSS:')} | {srv.status('VmHWM:')} | {listed * 1000:.0f} |"
            srv.stop()
            print(row, flush=True)
            out.append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    work = tempfile.mkdtemp(prefix="pidrop-cat-", dir=os.environ.get("BENCH_DIR", ROOT + "/target"))
    try:
        rate = small_file_rate(binary, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.append("")
    out.append(f"400 x 64 KiB PUTs over 8 keep-alive connections: {rate:.0f} files/s")
    print(out[-1])
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "catalogue.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
