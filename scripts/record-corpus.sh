#!/usr/bin/env bash
# Re-records tests/corpus/multipart/ from real clients (see record-corpus.py for what and why).
# Needs: curl, python3 with requests + urllib3, httpie (`http`), node, Debian's chromium, and
# tests/browser's node_modules (`npm ci` there). Installs: apt-get install chromium curl;
# pip install requests urllib3 httpie.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund --silent)
exec python3 scripts/record-corpus.py
