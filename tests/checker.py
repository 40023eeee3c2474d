"""What the Python checkers of third-party tools (tests/*/check.py) share: the real pidrop
binary on 127.0.0.1 with a fresh upload dir, and one closing `NAME: N passed, N failed` line
that `.ci/run` adds up.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


@contextlib.contextmanager
def pidrop(binary, *extra):
    """Starts pidrop; yields (base URL, a scratch dir); kills it and removes the dir after."""
    work = tempfile.mkdtemp(prefix="pidrop-check-")
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--dir", os.path.join(work, "up"),
                             "--min-free", "0", *(() if "--anonymous" in extra else ("--anonymous", "admin")),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        yield proc.stdout.readline().decode().split()[-1], work
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def run_checks(tool, checks, *args):
    """Runs each `check(*args)`; an exception is that check's failure. Prints the closing line
    and exits 1 if any failed."""
    passed = failed = 0
    for check in checks:
        try:
            check(*args)
            print(f"ok {check.__name__}")
            passed += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            print(f"FAIL {check.__name__}: {e}")
            failed += 1
    print(f"{tool}: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """Caddy (Debian's package) with `tls internal` on https://localhost:PORT in front of
    `upstream`, forwarding what is under `path` (e.g. "/drop"; "" for everything); `ca` is the
    certificate of the authority Caddy made, for curl and pidrop to trust."""

    def __init__(self, work, upstream, path):
        self.port = free_port()
        self.storage = os.path.join(work, "caddy")
        caddyfile = os.path.join(work, "Caddyfile")
        with open(caddyfile, "w") as f:
            f.write(f"""{{
\tadmin off
\tauto_https disable_redirects
\tskip_install_trust
\tstorage file_system {self.storage}
}}
https://localhost:{self.port} {{
\ttls internal
\thandle {path}/* {{
\t\treverse_proxy {upstream}
\t}}
}}
""")
        env = {**os.environ, "HOME": work, "XDG_DATA_HOME": work, "XDG_CONFIG_HOME": work}
        self.log = open(os.path.join(work, "caddy.log"), "w")
        self.proc = subprocess.Popen(["caddy", "run", "--config", caddyfile, "--adapter", "caddyfile"],
                                     stdout=self.log, stderr=self.log, env=env)
        self.ca = os.path.join(self.storage, "pki", "authorities", "local", "root.crt")
        self.base = f"https://localhost:{self.port}{path}"
        for _ in range(150):
            # pidrop answers /healthz; a bare S3 server answers anything, if only with a 403.
            up = self.curl("/healthz")[0] == 200 if path else self.curl("/")[0] != 0
            if os.path.exists(self.ca) and up:
                return
            time.sleep(0.1)
        raise RuntimeError("caddy did not come up: " + open(os.path.join(work, "caddy.log")).read())

    def curl(self, path, *args, data=None):
        """(status, headers text, body bytes) of one request through the proxy."""
        out = subprocess.run(
            ["curl", "-sS", "--cacert", self.ca, "--resolve", f"localhost:{self.port}:127.0.0.1",
             "-D", "-", *args, self.base + path],
            input=data, capture_output=True)
        if out.returncode != 0:
            return 0, out.stderr.decode(), b""
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, head.decode(), body

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
