#!/usr/bin/env bash
# Docker-free static builds for the Raspberry Pi. With no argument, builds all three targets;
# each binary lands at target/<triple>/release/pidrop.
#
#   aarch64-unknown-linux-musl      Pi 3/4/5 on 64-bit Pi OS     (rustup's std, zig as C toolchain)
#   armv7-unknown-linux-musleabihf  Pi 2/3/4 on 32-bit Pi OS     (build-std, zig as C toolchain)
#   arm-unknown-linux-musleabihf    Pi Zero/Zero W/1 (ARMv6)     (build-std, zig as C toolchain)
#   x86_64-unknown-linux-musl       a PC or NAS (amd64 package; only when named) (build-std, zig)
#
# rustup serves the standard library only for aarch64 musl here, so the other targets build
# std from source (-Zbuild-std, which needs RUSTC_BOOTSTRAP=1 on the pinned stable toolchain).
# All three compile their C (the bundled SQLite) and link with zig through cargo-zigbuild. Debian's armhf gcc cannot be used: its CRT objects are
# ARMv7 code and would crash a Pi Zero. The flags live here, not in .cargo/config.toml, so they
# never touch host builds. Set EXTRA_CARGO_ARGS to pass more (e.g. --no-default-features), and
# CARGO_TARGET_DIR to keep a variant apart (e.g. the s3-tls build: CARGO_TARGET_DIR=target/tls
# EXTRA_CARGO_ARGS="--features s3-tls").
set -euo pipefail
cd "$(dirname "$0")/.."

ZIG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.0
VENV=${PIDROP_ZIG_VENV:-$PWD/target/zig-venv}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf)

need_zig() {
  if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
  fi
  export PATH="$VENV/bin:$PATH"
}

for t in "${targets[@]}"; do
  echo "== building $t"
  case "$t" in
    aarch64-unknown-linux-musl)
      need_zig
      rustup target add "$t" >/dev/null
      cargo zigbuild --locked --release --target "$t" ${EXTRA_CARGO_ARGS:-}
      ;;
    armv7-unknown-linux-musleabihf|arm-unknown-linux-musleabihf|x86_64-unknown-linux-musl)
      need_zig
      upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
      # panic_unwind, not panic_abort: the HTTP core isolates a panicking request.
      env RUSTC_BOOTSTRAP=1 "CARGO_TARGET_${upper}_RUSTFLAGS=-C link-self-contained=no" \
        cargo zigbuild --locked --release --target "$t" -Zbuild-std=std,panic_unwind ${EXTRA_CARGO_ARGS:-}
      ;;
    *)
      echo "unknown target $t" >&2
      exit 2
      ;;
  esac
  ls -l "${CARGO_TARGET_DIR:-target}/$t/release/pidrop" | awk -v t="$t" '{print t ": " $5 " bytes"}'
done
