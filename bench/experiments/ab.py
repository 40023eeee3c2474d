#!/usr/bin/env python3
"""A/B of pidrop builds on one upload, alternating, so both see the same machine minute.

Usage: python3 bench/experiments/ab.py FILE BINARY[,BINARY...] [put|multipart|tus|put+tus|small-put|small-multipart] [ROUNDS] [-- pidrop args]
Prints MB/s and server CPU per GiB for each round of each binary. Uses bench.py's server
handling and its zero-copy sender (the ceiling's own), so the client costs the same for all.
`tus` sends FILE with tus in 8 MiB PATCHes over one connection; `put+tus` alternates a PUT and
a tus upload of FILE on each binary (their ratio is the cost of resumability). The small-* modes upload bench.py's 400 x 64 KiB files over 8 keep-alive curl connections
(FILE is then ignored) and print files/s.
"""
import os, shutil, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench  # noqa: E402


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    if len(args) < 2:
        raise SystemExit(__doc__)
    src, bins = args[0], args[1].split(",")
    mode = args[2] if len(args) > 2 else "multipart"
    multipart = mode.endswith("multipart")
    rounds = int(args[3]) if len(args) > 3 else 4
    gib = os.path.getsize(src) / (1 << 30) if os.path.exists(src) else 1
    work = tempfile.mkdtemp(prefix="pidrop-ab-", dir=os.path.dirname(os.path.abspath(src)) or ".")
    servers = {b: bench.Server(b, os.path.join(work, str(i)), *extra) for i, b in enumerate(bins)}
    time.sleep(0.3)
    results = {b: [] for b in bins}
    smalls = bench.make_smalls(work) if mode.startswith("small") else []
    try:
        for _ in range(rounds):
            for b, srv in servers.items():
                if smalls:
                    kind = "put" if mode == "small-put" else "multipart"
                    wall, _cpu, _peak = srv.measure(lambda: bench.small_files(srv.url, smalls, kind))
                    srv.clear()
                    results[b].append(f"{len(smalls) / wall:.0f} files/s")
                    continue
                kinds = {"put+tus": ["put", "tus"]}.get(mode, [mode])
                for kind in kinds:
                    send = {"tus": lambda: bench.tus_upload(srv.url, src),
                            "put": lambda: bench.zero_copy_upload(srv.url, src, False)}.get(
                        kind, lambda: bench.zero_copy_upload(srv.url, src, multipart))
                    wall, cpu, peak = srv.measure(send)
                    srv.clear()
                    label = f"{kind} " if len(kinds) > 1 else ""
                    results[b].append(f"{label}{os.path.getsize(src) / wall / 1e6:.0f} MB/s {cpu / gib:.2f} s/GiB "
                                      f"peak {peak / 1024:.1f} MiB")
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    for b in bins:
        print(os.path.basename(b), " | ".join(results[b]))


if __name__ == "__main__":
    main()
