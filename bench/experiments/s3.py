#!/usr/bin/env python3
"""A 1 GiB file into a Garage bucket on loopback: through pidrop (`--store s3`) three ways —
a PUT (streamed from the socket into parts), a tus upload in 8 MiB PATCHes (streamed, a part
per PATCH), a multipart form (spooled to the state dir, then sent) — each sent with bench.py's
zero-copy senders, against the same file put straight into Garage by boto3 (its managed
multipart upload, 8 MiB parts), alternating, so all see the same machine minute. Prints the
MB/s and the ratio to boto3 per way and round, and pidrop's CPU and peak RSS.

Usage: . garage-dir/env; python3 bench/experiments/s3.py FILE PIDROP_BINARY [ROUNDS]
(`scripts/garage.sh start DIR` writes the env file; boto3 from PyPI.)
"""
import os
import sys
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench  # noqa: E402


def main():
    src, binary = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    env = {k: os.environ[f"PIDROP_TEST_S3_{k}"] for k in ("ENDPOINT", "BUCKET", "REGION", "ACCESS_KEY", "SECRET_KEY")}
    s3 = boto3.client("s3", endpoint_url=env["ENDPOINT"], region_name=env["REGION"],
                      aws_access_key_id=env["ACCESS_KEY"], aws_secret_access_key=env["SECRET_KEY"])
    size = os.path.getsize(src)
    prefix = f"bench-{os.getpid()}/"
    work = tempfile.mkdtemp(prefix="pidrop-s3-bench-", dir=os.path.dirname(os.path.abspath(src)))
    os.environ["PIDROP_S3_ACCESS_KEY_ID"] = env["ACCESS_KEY"]
    os.environ["PIDROP_S3_SECRET_ACCESS_KEY"] = env["SECRET_KEY"]
    srv = bench.Server(binary, work, "--store", "s3", "--s3-endpoint", env["ENDPOINT"], "--s3-bucket", env["BUCKET"],
                       "--s3-region", env["REGION"], "--s3-prefix", prefix)
    time.sleep(0.3)
    idle = srv.status("VmRSS:")
    cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
    try:
        for r in range(rounds):
            t0 = time.perf_counter()
            s3.upload_file(src, env["BUCKET"], f"{prefix}direct-{r}", Config=cfg)
            direct = time.perf_counter() - t0
            mb = size / 1e6
            print(f"round {r}: boto3 direct {mb / direct:.0f} MB/s", flush=True)
            ways = [("PUT, streamed", lambda: bench.zero_copy_upload(srv.url, src, False)),
                    ("tus 8 MiB, streamed", lambda: bench.tus_upload(srv.url, src)),
                    ("form, spooled", lambda: bench.zero_copy_upload(srv.url, src, True))]
            for way, send in ways:
                wall, cpu, peak = srv.measure(send)
                print(f"  {way}: {mb / wall:.0f} MB/s = {direct / wall:.2f}x of boto3 |"
                      f" {cpu / (size / (1 << 30)):.2f} s CPU/GiB, peak RSS {peak / 1024:.1f} MiB"
                      f" (idle {idle / 1024:.1f} MiB)", flush=True)
    finally:
        srv.stop()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["BUCKET"], Prefix=prefix):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket=env["BUCKET"], Key=o["Key"])


if __name__ == "__main__":
    main()
