#!/usr/bin/env bash
# Proves sizes are u64 end to end on 32-bit ARM: uploads SIZE bytes (default 4.5 GiB of zeros, a
# sparse file, so nothing large is written to create it) to the ARMv7 build under qemu, by PUT
# and by multipart POST (both with a Content-Length over 4 GiB), checks the size and sha256
# pidrop reports, and reads the last bytes back with a Range past 4 GiB. Slow under emulation
# (minutes); not part of CI.
# Usage: scripts/big-upload-32bit.sh [TARGET] [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-armv7-unknown-linux-musleabihf}
size=${2:-4831838208}
case "$t" in
  arm-unknown-linux-musleabihf) qemu="qemu-arm -cpu arm1176" ;;
  armv7-unknown-linux-musleabihf) qemu="qemu-arm -cpu cortex-a7" ;;
  *) echo "a 32-bit ARM target, please" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
$qemu "target/$t/release/pidrop" --listen 127.0.0.1:0 --dir "$dir/up" --min-free 0 --allow '*' --anonymous admin \
  --max-size 8G --body-timeout 120s >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^pidrop listening on //p' "$dir/out")
truncate -s "$size" "$dir/zeros.bin"
want=$(sha256sum "$dir/zeros.bin" | cut -d' ' -f1)
for how in put multipart; do
  echo "$how of $size bytes to $t…"
  start=$(date +%s)
  if [ "$how" = put ]; then
    json=$(curl -fsS -T "$dir/zeros.bin" "$url/upload/zeros.bin")
  else
    json=$(curl -fsS -F "file=@$dir/zeros.bin" "$url/upload")
  fi
  secs=$(( $(date +%s) - start ))
  echo "$json" | grep -q "\"size\":$size" || { echo "size wrong: $json"; exit 1; }
  echo "$json" | grep -q "\"sha256\":\"$want\"" || { echo "sha256 wrong: $json"; exit 1; }
  echo "ok: $how: $size bytes stored on $t in ${secs}s, size and sha256 match"
done
path=$(echo "$json" | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
got=$(curl -fsS -r "$((size - 16))-" "$url$path" | wc -c)
[ "$got" = 16 ] || { echo "Range past 4 GiB failed: $got bytes"; exit 1; }
echo "ok: Range request past 4 GiB returns the last 16 bytes"
