#!/usr/bin/env python3
"""tuspy (PyPI `tuspy`, the official Python tus client) against the real pidrop binary on
127.0.0.1: an upload with metadata and per-chunk sha1 checksums, byte-exact and listed with its
original name and fields; and an upload stopped after two chunks, found again through tuspy's
URL storage by a new uploader and finished from the server's offset.

Prints one line per check and a closing `tuspy: N passed, N failed`.

Usage: tests/tuspy/check.py PATH_TO_PIDROP_BINARY
"""
import hashlib
import json
import os
import sys
import urllib.request

from tusclient import client
from tusclient.storage import filestorage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import pidrop, run_checks  # noqa: E402

MIB = 1 << 20


def jpeg(size):
    """A JPEG by its first bytes (SOI + JFIF APP0), then random data."""
    head = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return head + os.urandom(size - len(head))


def listed(base):
    with urllib.request.urlopen(f"{base}/files") as r:
        return json.load(r)["files"]


def download(base, url):
    with urllib.request.urlopen(base + url) as r:
        return r.read()


def with_metadata_and_checksums(base, work):
    data = jpeg(5 * MIB + 123)
    path = os.path.join(work, "beach day.jpg")
    with open(path, "wb") as f:
        f.write(data)
    tus = client.TusClient(f"{base}/tus")
    up = tus.uploader(path, chunk_size=MIB, upload_checksum=True,
                      metadata={"filename": "beach day.jpg", "filetype": "image/jpeg", "album": "Sommer ☀"})
    up.upload()
    files = [f for f in listed(base) if f["original_name"] == "beach day.jpg"]
    assert len(files) == 1, files
    f = files[0]
    assert f["fields"] == {"album": "Sommer ☀"}, f["fields"]
    assert f["type"] == "image/jpeg", f["type"]
    assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert download(base, f["url"]) == data


def resumed_by_a_new_uploader(base, work):
    data = jpeg(4 * MIB + 7)
    path = os.path.join(work, "resume.jpg")
    with open(path, "wb") as f:
        f.write(data)
    storage = filestorage.FileStorage(os.path.join(work, "tuspy-urls.json"))
    tus = client.TusClient(f"{base}/tus")
    meta = {"filename": "resume.jpg"}
    first = tus.uploader(path, chunk_size=MIB, metadata=meta, store_url=True, url_storage=storage)
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 2 * MIB, first.offset
    assert not [f for f in listed(base) if f["original_name"] == "resume.jpg"], "not listed yet"
    second = tus.uploader(path, chunk_size=MIB, metadata=meta, store_url=True, url_storage=storage)
    assert second.url == first.url, (second.url, first.url)
    assert second.offset == 2 * MIB, second.offset
    second.upload()
    files = [f for f in listed(base) if f["original_name"] == "resume.jpg"]
    assert len(files) == 1 and files[0]["sha256"] == hashlib.sha256(data).hexdigest(), files


def main():
    with pidrop(sys.argv[1]) as (base, work):
        run_checks("tuspy", [with_metadata_and_checksums, resumed_by_a_new_uploader], base, work)


if __name__ == "__main__":
    main()
