#!/usr/bin/env bash
# /v1/search latency with one client, idle and while a 200-page PDF is being uploaded (the write
# path's "uploads never stall searches" figure). Prints both p50/p95/p99 and their ratio.
#
#   benches/upload-contention.sh [target/release/hikitsugi]
#
# Needs wrk, curl and chromium (to print the PDF) from Debian. Uses the demo configuration on a
# scratch data directory and port 18080; the demo corpus is ingested first.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/hikitsugi}
work=$(mktemp -d)
trap '[ -z "${server:-}" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

# A 200-page PDF printed by Chromium from the demo corpus's text, repeated.
{
  echo '<html><head><meta charset="utf-8"><style>body{font-size:11pt} h1{page-break-before:always}</style></head><body>'
  for round in 1 2; do
    for file in tests/demo/corpus/00*.txt; do
      echo "<h1>第${round}部 $(basename "$file")</h1><pre style='white-space:pre-wrap'>"
      sed -e 's/&/\&amp;/g; s/</\&lt;/g' "$file"
      echo '</pre>'
    done
  done
  echo '</body></html>'
} > "$work/long.html"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
  --user-data-dir="$work/profile" --print-to-pdf="$work/long.pdf" "file://$work/long.html" 2>/dev/null
pages=$(grep -a -c '/Type /Page\b' "$work/long.pdf" || true)
echo "upload: $(du -k "$work/long.pdf" | cut -f1) KB PDF, about $pages pages"

export HIKITSUGI_LISTEN=127.0.0.1:18080 HIKITSUGI_SERVER__UPLOAD_TIMEOUT_MS=1800000
"$binary" --config tests/demo/config.toml --data-dir "$work/data" ingest tests/demo/corpus >/dev/null 2>&1
"$binary" --config tests/demo/config.toml --data-dir "$work/data" serve >"$work/serve.log" 2>&1 &
server=$!
until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do sleep 0.5; done

run() { wrk -t1 -c1 -d"$1" -s benches/wrk-search.lua http://127.0.0.1:18080 | grep '^requests'; }
run 5s >/dev/null  # warm up
idle=$(run 15s)
echo "idle:            $idle"
started=$(date +%s)
curl -s -o "$work/upload.json" -w '%{http_code}' -H 'Authorization: Bearer demo-hyogo-key' \
  -F "file=@$work/long.pdf;filename=long-report.pdf" http://127.0.0.1:18080/v1/documents \
  >"$work/upload.status" &
upload=$!
sleep 2
busy=$(run 15s)
echo "during upload:   $busy"
wait "$upload" || echo "curl failed with $?"
echo "upload answered $(cat "$work/upload.status") after $(($(date +%s) - started)) s: $(head -c 160 "$work/upload.json")"
p95() { sed -E 's/.*p95 ([0-9.]+) ms.*/\1/' <<<"$1"; }
awk -v idle="$(p95 "$idle")" -v busy="$(p95 "$busy")" \
  'BEGIN { printf "p95 during upload / idle p95: %.2f (goal <= 2)\n", busy / idle }'
