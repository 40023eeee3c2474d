#!/usr/bin/env python3
"""Offline dependency audit against a RustSec advisory-db snapshot (no network, no cargo-audit
build: installing cargo-audit or cargo-deny takes 10-15 minutes here).

Checks every package in Cargo.lock (the binary's crates and the test-only ones) against
crates/<name>/*.md in the database: a package is affected when its version matches none of the
advisory's `patched` and `unaffected` requirements. Vulnerabilities and `unmaintained` notices
fail the audit; other informational notices (unsound, notice) are printed. Withdrawn advisories
are skipped.

Usage: scripts/audit.py ADVISORY_DB(.tgz or directory) [Cargo.lock ...]
"""
import os, re, sys, tarfile, tempfile, tomllib


def parse_version(v):
    core = v.split("+")[0]
    core, _, pre = core.partition("-")
    parts = [int(x) for x in core.split(".")]
    while len(parts) < 3:
        parts.append(0)
    # A pre-release sorts before its release.
    return tuple(parts[:3]) + ((0, pre) if pre else (1, ""))


def matches(version, req):
    """One requirement: comma-separated comparators, e.g. ">= 1.2.3, < 1.3" or "^0.4"."""
    v = parse_version(version)
    for comp in req.split(","):
        comp = comp.strip()
        m = re.match(r"^(>=|<=|>|<|=|\^|~)?\s*([0-9][0-9A-Za-z.\-+]*)$", comp)
        if not m:
            raise ValueError(f"cannot read requirement {req!r}")
        op, ver = m.group(1) or "^", m.group(2)
        nums = ver.split("-")[0].split(".")
        r = parse_version(ver)
        if op == ">=" and not v >= r: return False
        if op == ">" and not v > r: return False
        if op == "<=" and not v <= r: return False
        if op == "<" and not v < r: return False
        if op == "=" and not v[:3] == r[:3]: return False
        if op in ("^", "~"):
            if v < r:
                return False
            major, minor = r[0], r[1]
            if op == "~" or (major == 0 and len(nums) >= 2 and minor != 0) or major == 0 and minor == 0 and len(nums) == 3:
                # ~x.y / ^0.y: same minor (and ^0.0.z: same patch)
                if op == "^" and major == 0 and minor == 0 and len(nums) == 3:
                    if v[:3] != r[:3]: return False
                elif v[0] != major or v[1] != minor:
                    return False
            elif v[0] != major:
                return False
    return True


def load_db(path):
    if os.path.isdir(path):
        return path
    tmp = tempfile.mkdtemp(prefix="advisory-db-")
    with tarfile.open(path) as t:
        t.extractall(tmp, filter="data")
    for root, dirs, _ in os.walk(tmp):
        if "crates" in dirs:
            return root
    raise SystemExit("no crates/ directory in the advisory database")


def advisories(db, name):
    d = os.path.join(db, "crates", name)
    if not os.path.isdir(d):
        return
    for f in sorted(os.listdir(d)):
        text = open(os.path.join(d, f), encoding="utf-8").read()
        m = re.search(r"```toml\n(.*?)\n```", text, re.S)
        if m:
            yield f, tomllib.loads(m.group(1))


def packages(lock):
    data = tomllib.load(open(lock, "rb"))
    return [(p["name"], p["version"]) for p in data.get("package", []) if "source" in p]


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    db = load_db(sys.argv[1])
    locks = sys.argv[2:] or ["Cargo.lock"]
    failures, notes, checked = [], [], 0
    for lock in locks:
        for name, version in packages(lock):
            checked += 1
            for f, adv in advisories(db, name):
                a = adv.get("advisory", {})
                if a.get("withdrawn"):
                    continue
                vers = adv.get("versions", {})
                ok = any(matches(version, r) for r in vers.get("patched", []) + vers.get("unaffected", []))
                if ok:
                    continue
                kind = a.get("informational") or "vulnerability"
                line = f"{name} {version}: {a.get('id')} ({kind}) {lock}"
                (failures if kind in ("vulnerability", "unmaintained") else notes).append(line)
    for n in notes:
        print("note:", n)
    for f in failures:
        print("FAIL:", f)
    print(f"audited {checked} packages from {', '.join(locks)}: {len(failures)} failing, {len(notes)} notes")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
