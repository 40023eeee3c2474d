#!/usr/bin/env bash
# Runs the ARM builds under qemu-user: the unit tests, then a smoke test that starts the ARM
# binary on 127.0.0.1, uploads a file with curl, downloads it back and compares. ARMv6 runs on
# an ARM1176 CPU model (a Pi Zero's), which faults on any ARMv7 instruction.
# Needs: scripts/build-arm.sh run first (same targets), qemu-user, curl, readelf for ARM.
# Usage: scripts/arm-test.sh [TARGET…]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PIDROP_ZIG_VENV:-$PWD/target/zig-venv}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf)

qemu_for() {
  case "$1" in
    aarch64-unknown-linux-musl) echo "qemu-aarch64 -cpu cortex-a53" ;;
    armv7-unknown-linux-musleabihf) echo "qemu-arm -cpu cortex-a7" ;;
    arm-unknown-linux-musleabihf) echo "qemu-arm -cpu arm1176" ;;
  esac
}

smoke() {
  local t=$1 qemu=$2 bin="target/$1/release/pidrop"
  local dir; dir=$(mktemp -d)
  trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' RETURN
  $qemu "$bin" --listen 127.0.0.1:0 --dir "$dir/up" --min-free 0 --anonymous admin >"$dir/out" 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(sed -n 's/^pidrop listening on //p' "$dir/out")
  [ -n "$url" ] || { cat "$dir/log"; echo "$t: no address"; return 1; }
  # A real PNG header then 3 MiB of random bytes.
  { printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0'; head -c 3145728 /dev/urandom; } >"$dir/in.png"
  # Multipart: scanned from a pipe while the file is spliced from its tee (src/upload/tee.rs).
  local json; json=$(curl -fsS -F "file=@$dir/in.png" -F who=qemu "$url/upload")
  local path; path=$(printf '%s' "$json" | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
  curl -fsS -o "$dir/back.png" "$url$path"
  cmp "$dir/in.png" "$dir/back.png"
  local want; want=$(sha256sum "$dir/in.png" | cut -d' ' -f1)
  printf '%s' "$json" | grep -q "\"sha256\":\"$want\"" || { echo "$t: sha256 differs: $json"; return 1; }
  # The same file as a PUT: its body is spliced socket -> pipe -> file.
  json=$(curl -fsS -T "$dir/in.png" "$url/upload/put.png")
  path=$(printf '%s' "$json" | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
  curl -fsS -o "$dir/back2.png" "$url$path"
  cmp "$dir/in.png" "$dir/back2.png"
  printf '%s' "$json" | grep -q "\"sha256\":\"$want\"" || { echo "$t: PUT sha256 differs: $json"; return 1; }
  kill -TERM "$pid"; wait "$pid"
  echo "$t: smoke test passed (multipart and PUT upload, download, sha256, SIGTERM exit 0)"
}

for t in "${targets[@]}"; do
  qemu=$(qemu_for "$t")
  [ -n "$qemu" ] || { echo "unknown target $t" >&2; exit 2; }
  upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
  echo "== unit tests on $t under $qemu"
  case "$t" in
    aarch64-unknown-linux-musl)
      export PATH="$VENV/bin:$PATH"
      env "CARGO_TARGET_${upper}_RUNNER=$qemu" \
        cargo-zigbuild test --locked --release --target "$t" --lib
      ;;
    *)
      export PATH="$VENV/bin:$PATH"
      # `cargo zigbuild test` is rejected; the cargo-zigbuild binary takes `test` directly.
      env RUSTC_BOOTSTRAP=1 "CARGO_TARGET_${upper}_RUSTFLAGS=-C link-self-contained=no" \
        "CARGO_TARGET_${upper}_RUNNER=$qemu" \
        cargo-zigbuild test --locked --release --target "$t" -Zbuild-std=std,panic_unwind --lib
      ;;
  esac
  if [ "$t" = arm-unknown-linux-musleabihf ]; then
    arch=$(readelf -A "target/$t/release/pidrop" | sed -n 's/.*Tag_CPU_arch: //p')
    echo "ARMv6 binary: Tag_CPU_arch: $arch"
    [ "$arch" = v6 ] || { echo "expected Tag_CPU_arch v6, got $arch"; exit 1; }
  fi
  smoke "$t" "$qemu"
done
