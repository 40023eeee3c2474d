#!/usr/bin/env python3
"""Draws pidrop's icons into static/: favicon.ico (a 32 px PNG inside an ICO), the 180 px
Apple touch icon, and the 192/512 px icons the web app manifest names ("Add to Home Screen").

Why a script: the icons are data made from a few shapes (a blue rounded square, a white arrow
dropping into a tray), so they are drawn here, reproducibly, with no image tool or font.
Usage: python3 scripts/make-icons.py
"""
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
BLUE, WHITE = (10, 99, 201), (255, 255, 255)


def inside(x, y):
    """The drawing on a 1x1 canvas: which colour (or None) covers point (x, y)."""
    r = 0.2  # corner radius of the background
    cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return None
    shaft = 0.44 <= x <= 0.56 and 0.18 <= y <= 0.50
    head = 0.50 <= y <= 0.68 and abs(x - 0.5) <= (0.68 - y) * 1.1
    tray = (0.22 <= x <= 0.78 and 0.74 <= y <= 0.82) or (
        (0.22 <= x <= 0.30 or 0.70 <= x <= 0.78) and 0.60 <= y <= 0.82)
    return WHITE if shaft or head or tray else BLUE


def png(size, ss=4):
    rows = []
    for py in range(size):
        row = bytearray(b"\x00")
        for px in range(size):
            acc, n = [0, 0, 0, 0], ss * ss
            for sy in range(ss):
                for sx in range(ss):
                    c = inside((px + (sx + 0.5) / ss) / size, (py + (sy + 0.5) / ss) / size)
                    if c:
                        acc[0] += c[0]; acc[1] += c[1]; acc[2] += c[2]; acc[3] += 255
            a = acc[3] // n
            row += bytes([acc[0] // max(1, acc[3] // 255), acc[1] // max(1, acc[3] // 255),
                          acc[2] // max(1, acc[3] // 255), a]) if a else b"\0\0\0\0"
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def ico(png_bytes, size):
    head = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png_bytes), 6 + 16)
    return head + entry + png_bytes


def main():
    open(os.path.join(OUT, "favicon.ico"), "wb").write(ico(png(32), 32))
    for size in (180, 192, 512):
        open(os.path.join(OUT, f"icon-{size}.png"), "wb").write(png(size, 2 if size > 200 else 4))
    print("icons written to", OUT)


if __name__ == "__main__":
    main()
