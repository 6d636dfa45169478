#!/usr/bin/env bash
# Latency of a comparison against one answer, side by side in one run: `/v1/ask`, and
# `/v1/compare` over the five prefecture sections of the demo's application file (5 groups, 3
# passages each), one client, the same questions in turn. Prints p50/p95 of each and the ratio.
#
#   benches/compare-latency.sh [target/release/hikitsugi] [requests per endpoint, default 60]
#
# Needs curl. Uses the demo configuration on a scratch data directory and port 18081.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/hikitsugi}
rounds=${2:-60}
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

export HIKITSUGI_LISTEN=127.0.0.1:18081
"$binary" --config tests/demo/config.toml --data-dir "$work/data" ingest tests/demo/corpus >/dev/null 2>&1
"$binary" --config tests/demo/config.toml --data-dir "$work/data" serve >"$work/serve.log" 2>&1 &
server=$!
until curl -sf http://127.0.0.1:18081/readyz >/dev/null; do sleep 0.5; done

questions=(
  "伴走支援を受け入れる体制は"
  "デジタル人材の育成をどう進めるか"
  "地域のステークホルダーとの連携"
  "共同調達・共同利用の取組"
  "伴走支援で目指す姿"
  "対象となる市町村はどこか"
)
doc=000_973ae0bf84c8550d.txt
measure() { # endpoint body-template → seconds per request, one per line
  local endpoint=$1 template=$2
  for ((i = 0; i < rounds; i++)); do
    local q=${questions[i % ${#questions[@]}]}
    curl -s -o /dev/null -w '%{time_total}\n' -H 'Authorization: Bearer demo-public-key' \
      -H 'Content-Type: application/json' -d "$(printf "$template" "$q")" \
      "http://127.0.0.1:18081$endpoint"
  done
}
ask='{"question": "%s"}'
compare='{"question": "%s", "group_by": "section", "per_group": 3, "filters": {"doc_id": "'$doc'"}}'
measure /v1/ask "$ask" >/dev/null             # warm up
groups=$(curl -s -H 'Authorization: Bearer demo-public-key' -H 'Content-Type: application/json' \
  -d "$(printf "$compare" "${questions[0]}")" http://127.0.0.1:18081/v1/compare | grep -o '"key"' | wc -l)
measure /v1/ask "$ask" | sort -g >"$work/ask"
measure /v1/compare "$compare" | sort -g >"$work/compare"
quantile() { awk -v q="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * q + 0.5) + 1; printf "%.1f", v[i] * 1000 }' "$1"; }
for name in ask compare; do
  echo "$name: p50 $(quantile "$work/$name" 0.5) ms, p95 $(quantile "$work/$name" 0.95) ms ($rounds requests)"
done
echo "compare has $groups groups (section grouping of the application file)"
awk -v a="$(quantile "$work/ask" 0.5)" -v c="$(quantile "$work/compare" 0.5)" \
  -v a95="$(quantile "$work/ask" 0.95)" -v c95="$(quantile "$work/compare" 0.95)" \
  'BEGIN { printf "compare / ask: p50 %.2f, p95 %.2f (goal <= 2)\n", c / a, c95 / a95 }'
