"""What the Python checkers of third-party tools (tests/*/check.py) share: the real pidrop
binary on 127.0.0.1 with a fresh upload dir, and one closing `NAME: N passed, N failed` line
that `.ci/run` adds up.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile


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
