#!/usr/bin/env python3
"""Records multipart/form-data bodies from real clients into tests/corpus/multipart/.

Why: the parser and the upload path are tested at every split point against what real clients
send, and the repository must carry that data itself. This starts a capture server on
127.0.0.1, has each client upload the same two files and two text fields to it, and writes each
body as NAME.http with NAME.yaml (its boundary and the parts it must parse into, in the schema
of python-multipart's edge cases that the tests already read).

Clients: curl -F (percent escapes, and --form-escape), Python requests and urllib3, httpie,
Node's fetch with FormData, and Chromium (a FormData fetch and a plain form submit, driven by
playwright-core from tests/browser). A client that is missing is reported and skipped.

Usage: scripts/record-corpus.sh   (installs nothing; see the script for the tools it needs)
"""
import base64
import http.server
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "corpus", "multipart")
PHOTO_NAME = "photo.png"
NOTES_NAME = 'notes "q" ü.txt'
FIELDS = [("album", "holidays"), ("caption", "Grüße 👋 from the beach")]


def png_bytes(size):
    """A valid 4x4 PNG followed by a private ancillary chunk of deterministic noise."""
    rnd = random.Random(7)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(12)) for _ in range(4))
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    noise = bytes(rnd.randrange(256) for _ in range(size))
    return head + chunk(b"prVt", noise) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def notes_text():
    # Lines that look like boundaries, CRLF and LF, non-ASCII: what a parser can trip on.
    return ("Shopping list\r\n--not a boundary\r\n\r\n--\r\nÄpfel, Birnen\n" * 40).encode()


class Capture(http.server.BaseHTTPRequestHandler):
    bodies = []
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(Capture.page)))
        self.end_headers()
        self.wfile.write(Capture.page)

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Capture.bodies.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


PAGE = """<!doctype html><meta charset="utf-8">
<form id="f" method="post" action="/form" enctype="multipart/form-data">
<input type="file" name="photo"><input type="file" name="notes">
<input name="album" value="holidays"><input name="caption" value="Grüße 👋 from the beach">
</form>"""


def clients(url, photo, notes):
    """(name, argv or callable) for each client; each posts the files and fields to url."""
    fields_curl = [a for k, v in FIELDS for a in ("-F", f"{k}={v}")]
    files_curl = ["-F", f"photo=@{photo};filename={PHOTO_NAME};type=image/png",
                  "-F", f"notes=@{notes};type=text/plain"]
    py = sys.executable
    node_script = os.path.join(ROOT, "scripts", "record-corpus-node.mjs")
    yield "curl", ["curl", "-sS", "-o", "/dev/null", *files_curl, *fields_curl, url]
    yield "curl-form-escape", ["curl", "-sS", "-o", "/dev/null", "--form-escape", *files_curl,
                               *fields_curl, url]
    yield "python-requests", [py, "-c", f"""
import requests, sys
files = {{"photo": ({PHOTO_NAME!r}, open(sys.argv[1], "rb"), "image/png"),
         "notes": ({NOTES_NAME!r}, open(sys.argv[2], "rb"), "text/plain")}}
requests.post({url!r}, files=files, data={dict(FIELDS)!r}).raise_for_status()
""", photo, notes]
    yield "python-urllib3", [py, "-c", f"""
import urllib3, sys
fields = {{"photo": ({PHOTO_NAME!r}, open(sys.argv[1], "rb").read(), "image/png"),
          "notes": ({NOTES_NAME!r}, open(sys.argv[2], "rb").read(), "text/plain"),
          **{dict(FIELDS)!r}}}
assert urllib3.request("POST", {url!r}, fields=fields).status == 200
""", photo, notes]
    yield "httpie", ["http", "--ignore-stdin", "--quiet", "--multipart", "POST", url,
                     f"photo@{photo};type=image/png", f"notes@{notes};type=text/plain",
                     *[f"{k}={v}" for k, v in FIELDS]]
    yield "node-fetch", ["node", node_script, "fetch", url, photo, notes]
    yield "chromium-formdata", ["node", node_script, "chromium-formdata", url, photo, notes]
    yield "chromium-form-submit", ["node", node_script, "chromium-form", url, photo, notes]


def yaml_for(boundary, parts):
    out = [f"boundary: '{boundary}'", "expected:"]
    for name, filename, ctype, data in parts:
        out.append(f"  - name: {name}")
        out.append(f"    type: {'file' if filename else 'field'}")
        if filename:
            out.append(f"    file_name: '{filename}'")
            out.append(f"    content_type: '{ctype}'")
        out.append("    data: !!binary |")
        b64 = base64.b64encode(data).decode()
        out.extend("      " + b64[i:i + 76] for i in range(0, len(b64), 76))
    return "\n".join(out) + "\n"


def main():
    work = tempfile.mkdtemp(prefix="pidrop-corpus-")
    try:
        photo = os.path.join(work, PHOTO_NAME)
        notes = os.path.join(work, NOTES_NAME)
        photo_data, notes_data = png_bytes(20000), notes_text()
        open(photo, "wb").write(photo_data)
        open(notes, "wb").write(notes_data)
        Capture.page = PAGE.encode()
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/upload"
        os.makedirs(os.path.join(OUT, "inputs"), exist_ok=True)
        # What was sent, for the end-to-end test to compare stored files with.
        open(os.path.join(OUT, "inputs", "photo.png"), "wb").write(photo_data)
        open(os.path.join(OUT, "inputs", "notes.txt"), "wb").write(notes_data)
        expected = [("photo", PHOTO_NAME, "image/png", photo_data),
                    ("notes", NOTES_NAME, "text/plain", notes_data)]
        expected += [(k, None, None, v.encode()) for k, v in FIELDS]
        recorded, missing = [], []
        for name, argv in clients(url, photo, notes):
            if shutil.which(argv[0]) is None:
                missing.append(name)
                continue
            before = len(Capture.bodies)
            run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if run.returncode != 0 or len(Capture.bodies) != before + 1:
                print(f"{name}: failed ({run.returncode}): {run.stderr.strip()[-500:]}")
                missing.append(name)
                continue
            _, ctype, body = Capture.bodies[-1]
            boundary = ctype.split("boundary=", 1)[1].strip().strip('"')
            # Parts in the order the client sent them, so the test can compare in order.
            order = sorted(expected, key=lambda p: body.find(f'name="{p[0]}"'.encode()))
            open(os.path.join(OUT, f"{name}.http"), "wb").write(body)
            open(os.path.join(OUT, f"{name}.yaml"), "w").write(yaml_for(boundary, order))
            recorded.append(f"{name} ({len(body)} bytes)")
        srv.shutdown()
        print("recorded:", ", ".join(recorded))
        if missing:
            print("not recorded (client missing or failed):", ", ".join(missing))
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
