#!/usr/bin/env python3
"""Receive-side experiments behind bench/PROFILE.md: how much CPU a sink spends per GiB taking
a file from a loopback socket into a file (fsync at the end), for each way of moving the bytes.
The sender is `socket.sendfile` (zero copy), the sink's CPU is its own thread's (RUSAGE_THREAD).

Usage: python3 bench/experiments/sinks.py FILE [DIR] [ROUNDS]
  FILE    what to send (1 GiB of random bytes is what PROFILE.md used)
  DIR     where the sink writes (default: the directory of FILE)

Sinks:
  rw-8K, rw-64K, rw-1M   recv into a buffer of that size, write it
  splice                 socket -> 1 MiB pipe -> file (how pidrop takes a PUT body)
  stage                  recv 8 KiB, write into a 1 MiB pipe, splice it to the file every 512 KiB
                         (pidrop's multipart path before the third session)
  teescan                socket -> scan pipe, tee into a hold pipe, read the scan pipe 8 KiB at a
                         time (where a parser would look for the boundary), splice the hold pipe
                         to the file (pidrop's multipart path since, src/http/tee.rs)
"""
import ctypes, fcntl, os, resource, socket, sys, threading, time

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


def sink(mode, conn, fd):
    if mode.startswith("rw-"):
        size = {"8K": 8 << 10, "64K": 64 << 10, "1M": 1 << 20}[mode[3:]]
        buf = bytearray(size)
        view = memoryview(buf)
        while n := conn.recv_into(buf):
            os.write(fd, view[:n])
    elif mode == "splice":
        r, w = pipe()
        while n := os.splice(conn.fileno(), w, 1 << 20, flags=SPLICE_F_MOVE):
            drain(r, fd, n)
    elif mode == "stage":
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
    elif mode == "teescan":
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
    else:
        raise SystemExit(f"unknown sink {mode}")


def run(mode, src, out_dir):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    res = {}

    def receive():
        conn, _ = srv.accept()
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        path = os.path.join(out_dir, "sink.out")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sink(mode, conn, fd)
        os.fsync(fd)
        os.close(fd)
        os.unlink(path)
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        res["cpu"] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        conn.close()

    t = threading.Thread(target=receive)
    t.start()
    t0 = time.perf_counter()
    c = socket.create_connection(srv.getsockname())
    with open(src, "rb") as f:
        c.sendfile(f)
    c.close()
    t.join()
    wall = time.perf_counter() - t0
    srv.close()
    size = os.path.getsize(src)
    print(f"{mode:8} {size / wall / 1e6:6.0f} MB/s  sink CPU {res['cpu'] / (size / (1 << 30)):.2f} s/GiB",
          flush=True)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    src = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(src))
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    for _ in range(rounds):
        for mode in ("rw-8K", "rw-64K", "rw-1M", "splice", "stage", "teescan"):
            run(mode, src, out_dir)


if __name__ == "__main__":
    main()
