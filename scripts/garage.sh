#!/usr/bin/env bash
# A single-node Garage on loopback for the S3 tests: `scripts/garage.sh start DIR` writes
# DIR/garage.toml, starts `garage server` (its pid in DIR/pid, its log in DIR/log), assigns the
# layout, makes a key and a bucket, and writes DIR/env with the PIDROP_TEST_S3_* variables the
# tests read; `scripts/garage.sh stop DIR` stops it and removes DIR. Needs `garage` on PATH
# (`.ci/run` installs it with cargo: crates.io `garage`).
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$cmd" = stop ]; then
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$dir"
  exit 0
fi

mkdir -p "$dir/meta" "$dir/data"
s3=$(free_port); rpc=$(free_port); admin=$(free_port)
cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOML
g() { garage -c "$dir/garage.toml" "$@"; }
garage -c "$dir/garage.toml" server >"$dir/log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
node=$(g status 2>/dev/null | awk '/NO ROLE ASSIGNED/ { print $1; exit }')
[ -n "$node" ] || { cat "$dir/log"; echo "garage did not start" >&2; exit 1; }
g layout assign -z dc1 -c 1G "$node" >/dev/null
g layout apply --version 1 >/dev/null
keys=$(g key create pidrop-test)
key_id=$(printf '%s\n' "$keys" | awk -F': *' '/Key ID/ { print $2; exit }')
secret=$(printf '%s\n' "$keys" | awk -F': *' '/Secret key/ { print $2; exit }')
g bucket create pidrop-test >/dev/null
g bucket allow --read --write --owner pidrop-test --key pidrop-test >/dev/null
[ -n "$key_id" ] && [ -n "$secret" ] || { printf '%s\n' "$keys"; echo "no key made" >&2; exit 1; }
# The S3 API answers once the layout is applied; wait for it.
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$s3/" && break
  sleep 0.2
done
# Browsers may POST to the bucket from any page (direct uploads: a POST needs a policy signed
# by pidrop anyway) — the CORS rule README's S3 section shows, set here with curl's SigV4.
cors='<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>POST</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader></CORSRule></CORSConfiguration>'
md5=$(printf '%s' "$cors" | openssl dgst -md5 -binary | base64)
sha=$(printf '%s' "$cors" | sha256sum | cut -d' ' -f1)
curl -sSf --aws-sigv4 "aws:amz:garage:s3" -u "$key_id:$secret" -X PUT -H "Content-MD5: $md5" \
  -H "x-amz-content-sha256: $sha" --data-binary "$cors" "http://127.0.0.1:$s3/pidrop-test?cors=" >/dev/null
cat >"$dir/env" <<ENV
export PIDROP_TEST_S3_ENDPOINT=http://127.0.0.1:$s3
export PIDROP_TEST_S3_BUCKET=pidrop-test
export PIDROP_TEST_S3_REGION=garage
export PIDROP_TEST_S3_ACCESS_KEY=$key_id
export PIDROP_TEST_S3_SECRET_KEY=$secret
ENV
echo "garage: S3 API on http://127.0.0.1:$s3, key $key_id, bucket pidrop-test"
