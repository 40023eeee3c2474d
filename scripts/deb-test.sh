#!/usr/bin/env bash
# Checks the Debian packages (scripts/build-deb.sh) for real: lintian on all three; the ARM ones
# carry the right ELF for their Architecture (armhf: ARMv6, for a Pi Zero); the amd64 one is
# installed on this machine with dpkg, checked (binary, unit, conffiles, the service enabled),
# removed (conffiles stay) and purged (nothing of the package stays — but uploads always do).
# Needs root (dpkg). Prints one `ok`/`FAIL` line per check and `deb: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1
passed=0
failed=0
check() { # NAME COMMAND...
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    echo "ok $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    echo "$out" | sed 's/^/  /' | head -30
    failed=$((failed + 1))
  fi
}
deb() { echo "target/deb/pidrop_${version}_$1.deb"; }

lint() { lintian --fail-on error,warning --pedantic "$(deb "$1")"; }
elf_is() { # ARCH PATTERN (in `readelf -h -A` of the packaged binary)
  local tmp
  tmp=$(mktemp -d)
  dpkg-deb -x "$(deb "$1")" "$tmp"
  [ "$(dpkg-deb -f "$(deb "$1")" Architecture)" = "$1" ] &&
    readelf -h -A "$tmp/usr/bin/pidrop" | grep -Eq "$2"
  local r=$?
  rm -rf "$tmp"
  return $r
}

installed() {
  dpkg -i "$(deb amd64)" &&
    [ "$(/usr/bin/pidrop --version)" = "pidrop ${version%-1}" ] &&
    grep -q '^ExecStart=/usr/bin/pidrop' /lib/systemd/system/pidrop.service &&
    dpkg-query -W -f='${Conffiles}\n' pidrop | grep -q /etc/default/pidrop &&
    [ -L /etc/systemd/system/multi-user.target.wants/pidrop.service ] &&
    man -w pidrop >/dev/null
}
removed_keeps_conffiles_and_uploads() {
  mkdir -p /var/lib/pidrop && echo photo > /var/lib/pidrop/kept.jpg
  dpkg -r pidrop &&
    [ ! -e /usr/bin/pidrop ] && [ -e /etc/default/pidrop ] && [ -e /var/lib/pidrop/kept.jpg ]
}
purged_leaves_only_uploads() {
  local said
  said=$(dpkg -P pidrop 2>&1) &&
    echo "$said" | grep -q "/var/lib/pidrop were kept" &&
    [ ! -e /etc/default/pidrop ] && [ ! -e /lib/systemd/system/pidrop.service ] &&
    [ ! -e /etc/systemd/system/multi-user.target.wants/pidrop.service ] &&
    [ -e /var/lib/pidrop/kept.jpg ]
}

for a in arm64 armhf amd64; do
  check "lintian $a" lint "$a"
done
check "arm64 carries an AArch64 binary" elf_is arm64 'Machine: +AArch64'
check "armhf carries an ARMv6 binary (Pi Zero)" elf_is armhf 'Tag_CPU_arch: v6$'
check "amd64 carries an x86-64 binary" elf_is amd64 'Machine: +Advanced Micro Devices X86-64'
check "amd64 installs: binary, unit, conffile, enabled, man page" installed
check "remove keeps the conffile and the uploads" removed_keeps_conffiles_and_uploads
check "purge leaves only the uploads, and says so" purged_leaves_only_uploads
rm -rf /var/lib/pidrop
echo "deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
