#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short, bounded time with a small RSS limit.
# Seeds come from ../shared/corpus (multipart captures and edge cases) and a few hand-made
# request heads. Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shared=../../shared/corpus/multipart
export RUSTC_BOOTSTRAP=1
# Memory limits from measurement (60 s per target, `rss:` in libFuzzer's status lines): with
# ASan's default 256 MB quarantine the peaks were 449 (request_head) to 802 MB (multipart) and
# still growing, so a 384 MB limit failed at random with no finding. The targets' live heap is a
# few MB; the quarantine (freed memory held back to catch use-after-free, which safe Rust cannot
# commit) is what grew. With a 16 MB quarantine the peaks were 84–110 MB. The RSS limit is 2 GB
# (18× that), and a single allocation over 512 MB — which a parser fed at most 64 KiB must never
# make — is still reported as a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}

mkdir -p corpus/request_head corpus/chunked corpus/multipart corpus/disposition corpus/range corpus/tus_headers corpus/authorization corpus/s3_xml corpus/forwarded
printf 'POST /upload HTTP/1.1\r\nHost: pi.local\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n' > corpus/request_head/post
printf 'PUT /upload/a.jpg HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n' > corpus/request_head/chunked
printf 'GET http://pi.local/files?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' > corpus/request_head/absolute
printf '\x075\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n' > corpus/chunked/basic
printf '\x00\x00\x00\x00\x00\x00\x10\x00bytes=0-99' > corpus/range/basic
printf '\x00\x00\x00\x00\x00\x00\x10\x00bytes=-500' > corpus/range/suffix
printf 'form-data; name="f"; filename="C:\\Users\\me\\a%%22b.png"' > corpus/disposition/ie
printf "form-data; name=f; filename*=UTF-8''%%E2%%82%%AC.txt" > corpus/disposition/ext
printf 'filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,filetype aW1hZ2UvcG5n' > corpus/tus_headers/metadata
printf 'sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=' > corpus/tus_headers/sha1
printf 'sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=' > corpus/tus_headers/sha256
printf 'Basic YWRhOnNlY3JldA==' > corpus/authorization/basic
printf 'Bearer 0123456789abcdef' > corpus/authorization/bearer
printf '<ListBucketResult><Contents><Key>a&amp;b.png</Key><Size>3</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>' > corpus/s3_xml/list
printf '127.0.0.1/32, 10.0.0.0/8,::1' > corpus/forwarded/ranges
printf '/drop/' > corpus/forwarded/base
# Multipart seeds: the in-repo corpus recorded from real clients (and the shared edge cases
# when ../shared is there), each with its boundary rewritten to the target's "b0undary".
seed() { # FILE BOUNDARY OUT
  { printf '\x07\x40\x01\xff'; python3 -c 'import sys;d=open(sys.argv[1],"rb").read();sys.stdout.buffer.write(d.replace(sys.argv[2].encode(),b"b0undary"))' "$1" "$2"; } > "$3"
}
for f in ../tests/corpus/multipart/*.http; do
  b=$(sed -n "s/^boundary: *//p" "${f%.http}.yaml" | tr -d "'\"")
  seed "$f" "$b" "corpus/multipart/rec-$(basename "${f%.http}")"
done
if [ -d "$shared" ]; then
  i=0
  for f in "$shared"/edge-cases/*.http; do
    b=$(sed -n 's/^boundary: *//p' "${f%.http}.yaml" | tr -d "'\"")
    [ -n "$b" ] || continue
    seed "$f" "$b" "corpus/multipart/edge$i"
    i=$((i+1))
  done
else
  echo "no shared corpus at $shared: seeding from the in-repo corpus only"
fi

cargo fuzz build --release 2>&1 | tail -3
for t in request_head chunked multipart disposition range tus_headers authorization s3_xml forwarded; do
  dict=()
  case $t in
    multipart|disposition) dict=(-dict=dict/multipart.dict) ;;
    request_head|chunked) dict=(-dict=dict/http.dict) ;;
  esac
  echo "== fuzz $t for ${secs}s"
  log=$(mktemp)
  if cargo fuzz run --release "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 "${dict[@]}" >"$log" 2>&1; then
    grep -E '^(#[0-9]+.*DONE|Done)' "$log" || true
    rm -f "$log"
  else
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' -A3 "$log" | head -30
    rm -f "$log"
    echo "fuzz target $t failed"
    exit 1
  fi
done
