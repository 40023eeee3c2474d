#!/usr/bin/env python3
"""`--strip-gps` checked with exiftool (Debian's libimage-exiftool-perl): a photo made here
(examples/make_jpeg) is given phone-style EXIF with exiftool (make, model, time, GPS position),
uploaded by PUT, by a multipart POST (a large one, on the splice path) and by tus in 1 KiB
PATCHes, downloaded, and read back with exiftool: no GPS tag
remains, every other tag is the same, and every byte after the EXIF segment (the image data) is
unchanged. Without `--strip-gps` the position stays. Prints `exiftool: N passed, N failed`.

Usage: tests/exiftool/check.py PATH_TO_PIDROP PATH_TO_MAKE_JPEG
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import pidrop, run_checks  # noqa: E402

PHONE_TAGS = ["-Make=Google", "-Model=Pixel 8", "-DateTimeOriginal=2026:07:01 12:34:56",
              "-GPSLatitude=52.5163", "-GPSLatitudeRef=N", "-GPSLongitude=13.3777",
              "-GPSLongitudeRef=E", "-GPSAltitude=35", "-GPSAltitudeRef=0"]


def tags(path):
    out = subprocess.run(["exiftool", "-j", "-a", "-G1", path], capture_output=True, check=True)
    t = json.loads(out.stdout)[0]
    return {k: v for k, v in t.items() if not k.startswith(("System:", "File:", "ExifTool:", "SourceFile"))}


def after_exif(data):
    """The bytes after the APP1 Exif segment: the image data and everything else."""
    at = 2
    while at + 4 <= len(data):
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        end = at + 2 + length
        if marker == 0xE1 and data[at + 4:at + 10] == b"Exif\0\0":
            return data[end:]
        at = end
    raise AssertionError("no EXIF segment")


def photo(work, make_jpeg, size=("640", "480")):
    path = os.path.join(work, "IMG_20260701.jpg")
    subprocess.run([make_jpeg, *size, path], check=True)
    subprocess.run(["exiftool", "-q", "-overwrite_original", *PHONE_TAGS, path], check=True)
    before = tags(path)
    assert any(k.startswith("GPS:") for k in before), f"the test photo has no GPS: {before}"
    return path


def fetch(base, url):
    with urllib.request.urlopen(base + url) as r:
        return r.read()


def call(method, url, data=b"", headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def check_stored(base, work, original, meta, stripped):
    got = fetch(base, meta["url"])
    assert meta["gps_stripped"] is stripped, meta
    assert meta["sha256"] == hashlib.sha256(got).hexdigest(), "sha256 of what is stored"
    path = os.path.join(work, "back.jpg")
    with open(path, "wb") as f:
        f.write(got)
    before, after = tags(original), tags(path)
    gps_after = {k: v for k, v in after.items() if "GPS" in k}
    if stripped:
        assert not gps_after, f"GPS tags left: {gps_after}"
        kept = {k: v for k, v in before.items() if "GPS" not in k}
        assert {k: after.get(k) for k in kept} == kept, "other tags changed"
    else:
        assert gps_after, "GPS kept without --strip-gps"
    with open(original, "rb") as f:
        data = f.read()
    assert len(got) == len(data) and after_exif(got) == after_exif(data), "image data changed"


def put_photo(base, work, make_jpeg, stripped):
    original = photo(work, make_jpeg)
    with open(original, "rb") as f:
        _, _, body = call("PUT", f"{base}/upload/IMG_20260701.jpg", f.read())
    check_stored(base, work, original, json.loads(body)["files"][0], stripped)


def put_strips_gps_and_keeps_the_rest(base, work, make_jpeg):
    put_photo(base, work, make_jpeg, True)


def multipart_of_a_large_photo_strips_gps_too(base, work, make_jpeg):
    # Past 256 KiB a multipart body takes the tee/splice path: the head must still be held.
    original = photo(work, make_jpeg, ("3000", "2000"))
    with open(original, "rb") as f:
        data = f.read()
    assert len(data) > 256 << 10, len(data)
    b = "exiftoolcheckboundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    _, _, answer = call("POST", f"{base}/upload", body, {"Content-Type": f"multipart/form-data; boundary={b}",
                                                          "Accept": "application/json"})
    check_stored(base, work, original, json.loads(answer)["files"][0], True)


def tus_in_1_kib_patches_strips_gps_too(base, work, make_jpeg):
    original = photo(work, make_jpeg)
    with open(original, "rb") as f:
        data = f.read()
    tus = {"Tus-Resumable": "1.0.0"}
    meta = "filename " + base64.b64encode(b"tus.jpg").decode()
    _, h, _ = call("POST", f"{base}/tus", b"", {**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    loc = base + h["Location"]
    for at in range(0, len(data), 1024):
        call("PATCH", loc, data[at:at + 1024],
             {**tus, "Upload-Offset": str(at), "Content-Type": "application/offset+octet-stream"})
    with urllib.request.urlopen(f"{base}/files") as r:
        stored = [f for f in json.load(r)["files"] if f["original_name"] == "tus.jpg"]
    assert len(stored) == 1, stored
    check_stored(base, work, original, stored[0], True)


def main():
    binary, make_jpeg = sys.argv[1], sys.argv[2]

    def without_the_flag_gps_stays(_base, _work, _mj):
        with pidrop(binary) as (base, work):
            put_photo(base, work, make_jpeg, False)

    with pidrop(binary, "--strip-gps", "on") as (base, work):
        run_checks("exiftool", [put_strips_gps_and_keeps_the_rest, multipart_of_a_large_photo_strips_gps_too,
                                tus_in_1_kib_patches_strips_gps_too, without_the_flag_gps_stays],
                   base, work, make_jpeg)


if __name__ == "__main__":
    main()
