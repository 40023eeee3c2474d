#!/usr/bin/env bash
# What `cargo build` on 32-bit Raspberry Pi OS makes: an armv7 *glibc* binary, where `off_t` is
# 32 bits. Builds it (zig as the C toolchain, glibc 2.31 as on Pi OS bullseye), runs it under
# qemu-user with Debian's armhf glibc, stores a 2.5 GiB file (sparse on the sending side), and
# downloads it whole and by Range past 2 GiB: before 64-bit sendfile offsets, every download past
# 2 GiB broke after the headers went out.
# Needs: qemu-user, curl, libc6-armhf-cross (apt), ~2.6 GB free disk.
# Usage: scripts/arm-gnu-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
t=armv7-unknown-linux-gnueabihf
VENV=${PIDROP_ZIG_VENV:-$PWD/target/zig-venv}
if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "ziglang==0.17.1" "cargo-zigbuild==0.24.0"
fi
export PATH="$VENV/bin:$PATH"
rustup target add "$t" >/dev/null
cargo zigbuild --locked --release --target "$t.2.31" --quiet
bin="target/$t/release/pidrop"
ls -l "$bin" | awk '{print "armv7 glibc binary: " $5 " bytes"}'

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
qemu-arm -cpu cortex-a7 -L /usr/arm-linux-gnueabihf "$bin" --listen 127.0.0.1:0 --dir "$dir/up" \
  --min-free 0 --allow "*" --anonymous admin --checksum off --max-size 8G >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^pidrop listening on //p' "$dir/out")
[ -n "$url" ] || { cat "$dir/log"; echo "no address"; exit 1; }

size=2684354560 # 2.5 GiB
truncate -s "$size" "$dir/big.bin"
printf 'END-MARKER' | dd of="$dir/big.bin" bs=1 seek=$((size - 10)) conv=notrunc status=none
json=$(curl -fsS -T "$dir/big.bin" "$url/upload/big.bin")
rm -f "$dir/big.bin"
path=$(printf '%s' "$json" | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
printf '%s' "$json" | grep -q "\"size\":$size" || { echo "size differs: $json"; exit 1; }
tail=$(curl -fsS -r "$((size - 10))-" "$url$path")
[ "$tail" = END-MARKER ] || { echo "Range past 2 GiB gave: $tail"; exit 1; }
mid=$(curl -fsS -r "2147483640-2147483655" "$url$path" | wc -c)
[ "$mid" = 16 ] || { echo "Range across 2 GiB gave $mid bytes"; exit 1; }
got=$(curl -fsS -o /dev/null -w '%{size_download}' "$url$path")
[ "$got" = "$size" ] || { echo "whole download gave $got of $size bytes"; cat "$dir/log"; exit 1; }
kill -TERM "$pid"; wait "$pid"
echo "$t (glibc): 2.5 GiB stored, downloaded whole and by Range past 2 GiB"
