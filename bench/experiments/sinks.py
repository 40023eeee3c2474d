#!/usr/bin/env python3
"""Receive-side experiments behind bench/PROFILE.md: how much CPU a sink spends per GiB taking
a file from a loopback socket into a file (fsync at the end), for each way of moving the bytes.
The harness is the bench's ceiling (`bench.sink_ceiling`: `socket.sendfile` sender, the sink
thread's own CPU from RUSAGE_THREAD); only the sink differs.

Usage: python3 bench/experiments/sinks.py FILE [DIR] [ROUNDS]
  FILE    what to send (1 GiB of random bytes is what PROFILE.md used)
  DIR     where the sink writes (default: the directory of FILE)

Sinks:
  rw-8K, rw-64K, rw-1M   recv into a buffer of that size, write it (rw-1M is the bench's ceiling)
  splice                 socket -> 1 MiB pipe -> file (how pidrop takes a PUT body)
  stage                  recv 8 KiB, write into a 1 MiB pipe, splice it to the file every 512 KiB
                         (pidrop's multipart path before the third session)
  teescan                socket -> scan pipe, tee into a hold pipe, read the scan pipe 8 KiB at a
                         time (where a parser would look for the boundary), splice the hold pipe
                         to the file (pidrop's multipart path since, src/upload/tee.rs)
"""
import ctypes, fcntl, functools, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench  # noqa: E402

F_SETPIPE_SZ = 1031
SPLICE_F_MOVE = 1
SPLICE_F_NONBLOCK = 2
libc = ctypes.CDLL(None, use_errno=True)


def pipe(size=1 << 20):
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, size)
    return r, w


def drain(r, fd, n):
    while n:
        n -= os.splice(r, fd, n, flags=SPLICE_F_MOVE)


def splice(conn, fd):
    r, w = pipe()
    while n := os.splice(conn.fileno(), w, 1 << 20, flags=SPLICE_F_MOVE):
        drain(r, fd, n)


def stage(conn, fd):
    r, w = pipe()
    buf = bytearray(8 << 10)
    held = 0
    while n := conn.recv_into(buf):
        os.write(w, memoryview(buf)[:n])
        held += n
        if held >= 512 << 10:
            drain(r, fd, held)
            held = 0
    drain(r, fd, held)


def teescan(conn, fd):
    sr, sw = pipe()
    hr, hw = pipe()
    buf = bytearray(8 << 10)
    while n := os.splice(conn.fileno(), sw, 1 << 20, flags=SPLICE_F_MOVE):
        while n:
            k = libc.tee(sr, hw, ctypes.c_size_t(n), SPLICE_F_NONBLOCK)
            if k <= 0:
                raise OSError(ctypes.get_errno(), "tee")
            left = k
            while left:
                left -= os.readv(sr, [memoryview(buf)[:min(left, len(buf))]])
            drain(hr, fd, k)
            n -= k


SINKS = {
    "rw-8K": functools.partial(bench.recv_write, size=8 << 10),
    "rw-64K": functools.partial(bench.recv_write, size=64 << 10),
    "rw-1M": bench.recv_write,
    "splice": splice,
    "stage": stage,
    "teescan": teescan,
}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    src = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(src))
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    size = os.path.getsize(src)
    for _ in range(rounds):
        for name, sink in SINKS.items():
            wall, cpu = bench.sink_ceiling(src, out_dir, sink)
            print(f"{name:8} {size / wall / 1e6:6.0f} MB/s  sink CPU {cpu / (size / (1 << 30)):.2f} s/GiB",
                  flush=True)


if __name__ == "__main__":
    main()
