#!/usr/bin/env python3
"""Whole-machine CPU (all of /proc/stat: user, nice, system, irq, softirq) for one 1 GiB upload
including the writeback that `sync` waits for (`--checksum off`), alternating builds: what a change that moves work
between pidrop and the kernel's threads costs in all.

Usage: python3 bench/experiments/system_cpu.py FILE BINARY[,BINARY...] put|tus
"""
import os, sys, time, tempfile, shutil
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench
def busy():
    f = open("/proc/stat").readline().split()[1:]
    v = list(map(int, f))
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
src = sys.argv[1]
work = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(src)))
bins = sys.argv[2].split(",")
mode = sys.argv[3]
srvs = {b: bench.Server(b, os.path.join(work, str(i)), "--checksum", "off") for i, b in enumerate(bins)}
time.sleep(0.3)
res = {b: [] for b in bins}
for _ in range(3):
    for b, s in srvs.items():
        os.sync(); time.sleep(1)
        c0 = busy(); t0 = time.perf_counter()
        if mode == "tus": bench.tus_upload(s.url, src)
        else: bench.zero_copy_upload(s.url, src, False)
        wall = time.perf_counter() - t0
        os.sync()
        c1 = busy()
        s.clear()
        res[b].append(f"{os.path.getsize(src)/wall/1e6:.0f} MB/s, system CPU {c1-c0:.2f} s")
for s in srvs.values(): s.stop()
shutil.rmtree(work, ignore_errors=True)
for b in bins: print(os.path.basename(b), " | ".join(res[b]))
