#!/usr/bin/env bash
# Debian packages of pidrop, from the static musl binaries (one package runs on every Debian
# and Raspberry Pi OS release):
#
#   arm64  Pi 3/4/5 on 64-bit Pi OS       target/aarch64-unknown-linux-musl/release/pidrop
#   armhf  32-bit Pi OS, Pi Zero/1 too    target/arm-unknown-linux-musleabihf/release/pidrop
#          (Raspberry Pi OS's armhf is ARMv6, so the package carries the ARMv6 build)
#   amd64  a PC or NAS                    target/x86_64-unknown-linux-musl/release/pidrop
#
# Each package: /usr/bin/pidrop, the systemd unit, /etc/default/pidrop and the Avahi service
# file as conffiles, a man page made from `--help`, README, changelog and copyright, and
# maintainer scripts that enable and start the service with deb-systemd-helper/-invoke and never
# delete uploads. Built with dpkg-deb only (no debhelper). Binaries that are missing are built
# with scripts/build-arm.sh. Usage: scripts/build-deb.sh [ARCH...]   → target/deb/*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
revision=1
# Reproducible: file times and the changelog date from the last commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf amd64)

triple_of() {
  case "$1" in
    arm64) echo aarch64-unknown-linux-musl ;;
    armhf) echo arm-unknown-linux-musleabihf ;;
    amd64) echo x86_64-unknown-linux-musl ;;
    *) echo "unknown architecture $1" >&2; exit 2 ;;
  esac
}

# The man page, from the help text of a binary that runs here.
man_page() {
  local bin=$1
  python3 - "$bin" "$version" <<'PY'
import subprocess, sys
bin, version = sys.argv[1], sys.argv[2]
text = subprocess.run([bin, "--help"], capture_output=True, text=True, check=True).stdout
esc = lambda s: s.replace("\\", "\\e").replace("-", "\\-")
lines = text.splitlines()
print(f'.TH PIDROP 1 "" "pidrop {version}" "User Commands"')
print(".SH NAME\npidrop \\- a small, dependable file\\-upload server")
print(".SH SYNOPSIS\n.B pidrop\n[\\fIOPTIONS\\fR]\n.br\n.B pidrop check\n[\\fB\\-\\-repair\\fR | \\fB\\-\\-rebuild\\fR] [\\fIOPTIONS\\fR]")
print(".SH DESCRIPTION\nServes an upload page and an HTTP API for files dropped from phones, laptops and scripts on the LAN; "
      "validates them before they are stored and fsyncs them before it answers. "
      "Every option can also be set in the environment as PIDROP_\\fINAME\\fR; under systemd, in /etc/default/pidrop.")
print(".SH OPTIONS")
opts = [l for l in lines if l.startswith("  --")]
for i, l in enumerate(lines):
    if l.startswith("  --"):
        name, _, help_ = l.strip().partition(" ")
        extra = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("       ") else ""
        print(f".TP\n.B {esc(name)}\n{esc(help_.strip())} {esc(extra)}")
print(".SH FILES\n.TP\n/etc/default/pidrop\nsettings for the service\n.TP\n/var/lib/pidrop\nthe uploads (the service's state directory)")
print(".SH SEE ALSO\n/usr/share/doc/pidrop/README.md.gz")
PY
}

package() {
  local arch=$1 triple bin stage
  triple=$(triple_of "$arch")
  bin=target/$triple/release/pidrop
  [ -x "$bin" ] || scripts/build-arm.sh "$triple"
  stage=target/deb/stage-$arch
  rm -rf "$stage"
  install -D -m 755 "$bin" "$stage/usr/bin/pidrop"
  install -d -m 755 "$stage/lib/systemd/system" "$stage/etc/default" "$stage/etc/avahi/services" \
    "$stage/usr/share/doc/pidrop" "$stage/usr/share/man/man1" "$stage/usr/share/lintian/overrides" "$stage/DEBIAN"
  sed -e 's|^ExecStart=/usr/local/bin/pidrop|ExecStart=/usr/bin/pidrop|' -e 's|^\[Unit\]$|[Unit]\nDocumentation=man:pidrop(1)|' \
    systemd/pidrop.service > "$stage/lib/systemd/system/pidrop.service"
  install -m 644 systemd/pidrop.default "$stage/etc/default/pidrop"
  install -m 644 systemd/pidrop-avahi.service "$stage/etc/avahi/services/pidrop.service"
  install -m 644 packaging/deb/copyright "$stage/usr/share/doc/pidrop/copyright"
  install -m 644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/pidrop"
  gzip -9n < README.md > "$stage/usr/share/doc/pidrop/README.md.gz"
  gzip -9n < CHANGELOG.md > "$stage/usr/share/doc/pidrop/changelog.gz"
  printf 'pidrop (%s-%s) unstable; urgency=medium\n\n  * Packaged from the static musl build; see changelog.gz.\n\n -- pidrop maintainers <pidrop@users.noreply.codeberg.org>  %s\n' \
    "$version" "$revision" "$(date -R -u -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$stage/usr/share/doc/pidrop/changelog.Debian.gz"
  # The help text comes from a binary that runs here: the amd64 one (built if need be).
  local host_bin=target/x86_64-unknown-linux-musl/release/pidrop
  [ -x "$host_bin" ] || scripts/build-arm.sh x86_64-unknown-linux-musl
  man_page "$host_bin" | gzip -9n > "$stage/usr/share/man/man1/pidrop.1.gz"
  chmod 644 "$stage"/usr/share/doc/pidrop/* "$stage/usr/share/man/man1/pidrop.1.gz" "$stage/lib/systemd/system/pidrop.service"
  for s in postinst prerm postrm; do install -m 755 "packaging/deb/$s" "$stage/DEBIAN/$s"; done
  printf '/etc/default/pidrop\n/etc/avahi/services/pidrop.service\n' > "$stage/DEBIAN/conffiles"
  (cd "$stage" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) > "$stage/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  cat > "$stage/DEBIAN/control" <<EOF
Package: pidrop
Version: $version-$revision
Architecture: $arch
Maintainer: pidrop maintainers <pidrop@users.noreply.codeberg.org>
Installed-Size: $size
Depends: init-system-helpers (>= 1.54~)
Section: web
Priority: optional
Description: small, dependable file-upload server for a Raspberry Pi
 pidrop lets phones and laptops on the LAN drop photos, videos and documents
 onto a single-board computer from the browser (drag and drop, progress,
 resumable uploads), or with curl and scripts. Files are checked before they
 are stored and fsynced before an upload is confirmed; what is known of them
 lives in SQLite. One static binary, a few MiB of RAM, a hardened systemd unit.
EOF
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$stage" "target/deb/pidrop_${version}-${revision}_${arch}.deb" >/dev/null
  echo "target/deb/pidrop_${version}-${revision}_${arch}.deb"
}

mkdir -p target/deb
for a in "${arches[@]}"; do
  package "$a"
done
