#!/usr/bin/env python3
"""pidrop with `--store s3` against a real Garage, read back by a third-party client: boto3
(PyPI) reads every object straight from the bucket and compares it byte for byte with what was
sent, for every way in (streamed: a PUT of known length, a resumable upload by tuspy in 4 MiB
chunks — parts of 8 MiB, so a tail kept between them —; spooled: a chunked PUT, a multipart
form, an empty file), with the metadata another node relies on (on the object or in its sidecar); a refused
file leaves nothing in the bucket; and at the end the bucket and pidrop's listing are walked
side by side (every object listed, every listed file an object, no sidecar without its object,
no multipart upload left open).

With a second binary built with `--features s3-tls`, the same again over HTTPS: Caddy (`tls
internal`) in front of Garage, pidrop trusting Caddy's authority with `--s3-ca`, a presigned
redirect to an https:// URL fetched by curl; and a wrong authority stopping start-up at once.

Prints one line per check and a closing `s3: N passed, N failed` (`s3-tls:` with `--tls-only`).

`--tls-only` runs only the HTTPS check, with the given program as the s3-tls binary — a
script that runs an ARM build under qemu-user, say: ring's TLS on a Pi Zero's ARMv6.

Usage: . GARAGE_DIR/env; tests/s3/check.py PIDROP_BINARY [PIDROP_S3_TLS_BINARY]
       . GARAGE_DIR/env; tests/s3/check.py --tls-only PIDROP_S3_TLS_PROGRAM
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import boto3
from tusclient import client as tus_client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checker import Proxy, pidrop, run_checks  # noqa: E402

MIB = 1 << 20
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0"
ENV = {k: os.environ.get(f"PIDROP_TEST_S3_{k}", "") for k in ("ENDPOINT", "BUCKET", "REGION", "ACCESS_KEY", "SECRET_KEY")}


def bucket():
    return boto3.client("s3", endpoint_url=ENV["ENDPOINT"], region_name=ENV["REGION"],
                        aws_access_key_id=ENV["ACCESS_KEY"], aws_secret_access_key=ENV["SECRET_KEY"])


def s3_args(prefix, endpoint=None, *extra):
    return ("--store", "s3", "--s3-endpoint", endpoint or ENV["ENDPOINT"], "--s3-bucket", ENV["BUCKET"],
            "--s3-region", ENV["REGION"], "--s3-prefix", prefix, *extra)


def curl(url, *args, data=None):
    """(status, headers text, body) of one request."""
    out = subprocess.run(["curl", "-sS", "-D", "-", *args, url], input=data, capture_output=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode())
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.decode(), body


def keys(s3, prefix):
    out, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=ENV["BUCKET"], Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        out += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            return out


def open_uploads(s3, prefix):
    return s3.list_multipart_uploads(Bucket=ENV["BUCKET"], Prefix=prefix).get("Uploads", [])


def in_bucket(env, stored, data, original):
    """The object of `stored` (pidrop's JSON for it) is `data`, described for other nodes."""
    s3, prefix = env["s3"], env["prefix"]
    got = s3.get_object(Bucket=ENV["BUCKET"], Key=prefix + stored["name"])
    body = got["Body"].read()
    assert body == data, (stored["name"], len(body), len(data))
    # A streamed file's description is in its sidecar (its sha256 is known only at the end).
    meta = dict(got["Metadata"])
    if meta.get("pidrop-sidecar") == "1":
        side = s3.get_object(Bucket=ENV["BUCKET"], Key=f"{prefix}.pidrop/{stored['name']}")["Body"].read().decode()
        for line in side.splitlines():
            k, v = line.split(": ", 1)
            meta.setdefault(k.removeprefix("x-amz-meta-"), v)
    assert urllib.parse.unquote(meta["pidrop-name"]) == original, meta
    assert meta["pidrop-uploaded-at"] == stored["uploaded_at"], (meta, stored)
    assert got["ContentType"] == stored["type"], got["ContentType"]
    assert meta["pidrop-sha256"] == hashlib.sha256(data).hexdigest() == stored["sha256"], (meta, stored)
    # Streamed: the object itself carries only its name and type (the rest came at the end).
    env["streamed" if "pidrop-uploaded-at" not in got["Metadata"] else "spooled"].append(stored["name"])


def a_put_of_known_length_is_streamed_byte_exact(env):
    data = PNG + os.urandom(20 * MIB + 12345)  # three parts of 8 MiB, the last shorter
    path = os.path.join(env["work"], "put.png")
    with open(path, "wb") as f:
        f.write(data)
    status, _, body = curl(env["base"] + "/upload/gross%20bild.png", "-T", path)
    assert status == 201, (status, body)
    name = json.loads(body)["files"][0]["name"]
    in_bucket(env, json.loads(body)["files"][0], data, "gross bild.png")
    assert name in env["streamed"], "a PUT with a Content-Length is streamed"


def a_chunked_put_is_spooled_byte_exact(env):
    data = PNG + os.urandom(3 * MIB)
    status, _, body = curl(env["base"] + "/upload/chunked.png", "-T", "-", "-H", "Transfer-Encoding: chunked", data=data)
    assert status == 201, (status, body)
    in_bucket(env, json.loads(body)["files"][0], data, "chunked.png")
    assert json.loads(body)["files"][0]["name"] in env["spooled"]


def a_multipart_form_is_byte_exact_with_its_fields(env):
    data = PNG + os.urandom(MIB)
    path = os.path.join(env["work"], "Straße ☀.png")
    with open(path, "wb") as f:
        f.write(data)
    status, _, body = curl(env["base"] + "/upload", "-F", f"file=@{path}", "-F", "note=hallo")
    assert status == 201, (status, body)
    stored = json.loads(body)["files"][0]
    assert stored["fields"] == {"note": "hallo"}, stored
    in_bucket(env, stored, data, "Straße ☀.png")


def an_empty_file_is_an_empty_object(env):
    status, _, body = curl(env["base"] + "/upload/empty.txt", "-T", "-", data=b"")
    assert status == 201, (status, body)
    in_bucket(env, json.loads(body)["files"][0], b"", "empty.txt")
    # The next request on the same server is not held up (Garage's keep-alive quirk).
    start = time.monotonic()
    status, _, body = curl(env["base"] + "/upload/after-empty.txt", "-T", "-", data=b"next\n")
    assert status == 201 and time.monotonic() - start < 10, (status, body)
    in_bucket(env, json.loads(body)["files"][0], b"next\n", "after-empty.txt")


def a_resumable_upload_by_tuspy_is_byte_exact(env):
    data = PNG + os.urandom(9 * MIB + 99)
    path = os.path.join(env["work"], "resumable.png")
    with open(path, "wb") as f:
        f.write(data)
    up = tus_client.TusClient(env["base"] + "/tus").uploader(path, chunk_size=4 * MIB, metadata={"filename": "resumable.png"})
    up.upload()
    with urllib.request.urlopen(env["base"] + "/files") as r:
        stored = [f for f in json.load(r)["files"] if f["original_name"] == "resumable.png"]
    assert len(stored) == 1, stored
    in_bucket(env, stored[0], data, "resumable.png")
    assert stored[0]["name"] in env["streamed"], "a resumable upload of known length is streamed"


def a_refused_file_leaves_nothing_in_the_bucket(env):
    s3, prefix = env["s3"], env["prefix"]
    before = sorted(keys(s3, prefix))
    fake = b"MZ\x90\x00" + os.urandom(9 * MIB)  # a Windows program named as a photo
    status, _, body = curl(env["base"] + "/upload/holiday.png", "-T", "-", data=fake)
    assert status == 415, (status, body)
    assert json.loads(body)["error"], body
    assert sorted(keys(s3, prefix)) == before, "the bucket changed"
    assert not open_uploads(s3, prefix), open_uploads(s3, prefix)


def the_bucket_and_the_listing_agree(env):
    s3, prefix = env["s3"], env["prefix"]
    with urllib.request.urlopen(env["base"] + "/files") as r:
        listed = sorted(f["name"] for f in json.load(r)["files"])
    objects = keys(s3, prefix)
    stored = sorted(k[len(prefix):] for k in objects if not k.startswith(prefix + ".pidrop/"))
    sidecars = [k[len(prefix + ".pidrop/"):] for k in objects if k.startswith(prefix + ".pidrop/")]
    assert stored == listed == sorted(env["streamed"] + env["spooled"]), (stored, listed, env)
    assert set(sidecars) <= set(stored), sidecars
    assert not open_uploads(s3, prefix), open_uploads(s3, prefix)
    # A delete through pidrop removes the object and its sidecar.
    name = env["streamed"][0]
    status, _, _ = curl(f"{env['base']}/files/{name}", "-X", "DELETE")
    assert status == 204, status
    left = keys(s3, prefix)
    assert prefix + name not in left and f"{prefix}.pidrop/{name}" not in left, left


def over_https_through_caddy(env):
    s3, prefix, work = env["s3"], env["prefix"].replace("plain/", "tls/"), env["work"]
    proxy = Proxy(work, ENV["ENDPOINT"].replace("http://", ""), "")
    try:
        with pidrop(env["tls_binary"], *s3_args(prefix, proxy.base, "--s3-ca", proxy.ca, "--s3-downloads", "redirect")) as (base, _):
            data = PNG + os.urandom(9 * MIB)
            status, _, body = curl(base + "/upload/sicher.png", "-T", "-", data=data)
            assert status == 201, (status, body)
            stored = json.loads(body)["files"][0]
            got = s3.get_object(Bucket=ENV["BUCKET"], Key=prefix + stored["name"])["Body"].read()
            assert got == data, "object differs"
            status, head, _ = curl(base + stored["url"])
            assert status == 302, (status, head)
            location = [l.split(": ", 1)[1] for l in head.splitlines() if l.lower().startswith("location:")][0]
            assert location.startswith(proxy.base + "/"), location
            status, _, body = curl(location, "--cacert", proxy.ca)
            assert status == 200 and body == data, status
            status, _, _ = curl(f"{base}/files/{stored['name']}", "-X", "DELETE")
            assert status == 204, status
        # Trusting another authority (the system's): refused at once, with the reason.
        start = time.monotonic()
        out = subprocess.run([env["tls_binary"], "--listen", "127.0.0.1:0", "--dir", os.path.join(work, "up2"),
                              *s3_args(prefix, proxy.base, "--s3-ca", "/etc/ssl/certs/ca-certificates.crt")],
                             capture_output=True, timeout=60)
        said = out.stderr.decode() + out.stdout.decode()
        assert out.returncode != 0 and "certificate" in said.lower(), said
        assert time.monotonic() - start < 20, "waited for a certificate that will not verify"
        assert ENV["SECRET_KEY"] not in said
    finally:
        proxy.stop()


def main():
    tls_only = sys.argv[1] == "--tls-only"
    args = sys.argv[2:] if tls_only else sys.argv[1:]
    binary, tls_binary = args[0], args[-1] if tls_only or len(args) > 1 else None
    if not ENV["ENDPOINT"]:
        sys.exit("no Garage: source the env file scripts/garage.sh start wrote")
    os.environ["PIDROP_S3_ACCESS_KEY_ID"] = ENV["ACCESS_KEY"]
    os.environ["PIDROP_S3_SECRET_ACCESS_KEY"] = ENV["SECRET_KEY"]
    prefix = f"s3check-{os.getpid()}-{int(time.time())}/"
    s3 = bucket()
    work = tempfile.mkdtemp(prefix="pidrop-s3check-")
    checks = [a_put_of_known_length_is_streamed_byte_exact, a_chunked_put_is_spooled_byte_exact,
              a_multipart_form_is_byte_exact_with_its_fields, an_empty_file_is_an_empty_object,
              a_resumable_upload_by_tuspy_is_byte_exact, a_refused_file_leaves_nothing_in_the_bucket,
              the_bucket_and_the_listing_agree]
    if tls_binary:
        checks.append(over_https_through_caddy)
    if tls_only:
        checks = [over_https_through_caddy]
    env = {"s3": s3, "prefix": prefix + "plain/", "work": work, "streamed": [], "spooled": [], "tls_binary": tls_binary}
    try:
        if tls_only:
            run_checks("s3-tls", checks, env)  # exits
        with pidrop(binary, *s3_args(prefix + "plain/")) as (base, _):
            run_checks("s3", checks, {**env, "base": base})
    finally:
        for k in keys(s3, prefix):
            s3.delete_object(Bucket=ENV["BUCKET"], Key=k)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
