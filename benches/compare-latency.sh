#!/usr/bin/env bash
# Latency of a comparison against one answer, side by side in one run: `/v1/ask`, and
# `/v1/compare` over the five prefecture sections of the demo's application file (exactly 5
# groups, named in `groups`; 3 passages each), one client, one ask then one compare per round
# (so that both see the same load), after a warm-up of as many rounds. Prints p50/p95 of each
# and the ratio.
#
#   benches/compare-latency.sh [target/release/hikitsugi] [requests per endpoint, default 60]
#
# Needs curl. Uses the demo configuration on a scratch data directory and port 18081.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/hikitsugi}
rounds=${2:-60}
work=$(mktemp -d)
trap '[ -z "${server:-}" ] || { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; }; rm -rf "$work"' EXIT

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
time_request() { # endpoint body → seconds
  curl -s -o /dev/null -w '%{time_total}\n' -H 'Authorization: Bearer demo-public-key' \
    -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:18081$1"
}
measure() { # ask and compare in turn, so that both see the same load → two files of seconds
  for ((i = 0; i < rounds; i++)); do
    local q=${questions[i % ${#questions[@]}]}
    time_request /v1/ask "$(printf "$ask" "$q")" >>"$work/ask.raw"
    time_request /v1/compare "$(printf "$compare" "$q")" >>"$work/compare.raw"
  done
}
ask='{"question": "%s"}'
# The five prefectures' sections, as stored (normalised: the file's sixth top-level section is
# its cover table).
sections='"別添3-1希望する伴走支援(北海道)", "別添3-2希望する伴走支援(山梨県)", "別添3-3希望する伴走支援(京都府)", "別添3-4希望する伴走支援(宮崎県)", "別添3-5希望する伴走支援(沖縄県)"'
compare='{"question": "%s", "group_by": "section", "groups": ['$sections'], "per_group": 3, "filters": {"doc_id": "'$doc'"}}'
answered=$(curl -s -H 'Authorization: Bearer demo-public-key' -H 'Content-Type: application/json' \
  -d "$(printf "$compare" "${questions[0]}")" http://127.0.0.1:18081/v1/compare | grep -o '"found":true' | wc -l || true)
measure && rm "$work/ask.raw" "$work/compare.raw" # warm up
measure
sort -g "$work/ask.raw" >"$work/ask"
sort -g "$work/compare.raw" >"$work/compare"
quantile() { awk -v q="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * q + 0.5) + 1; printf "%.1f", v[i] * 1000 }' "$1"; }
for name in ask compare; do
  echo "$name: p50 $(quantile "$work/$name" 0.5) ms, p95 $(quantile "$work/$name" 0.95) ms ($rounds requests)"
done
echo "compare has 5 groups (the prefecture sections of the application file), $answered of them answering the first question"
awk -v a="$(quantile "$work/ask" 0.5)" -v c="$(quantile "$work/compare" 0.5)" \
  -v a95="$(quantile "$work/ask" 0.95)" -v c95="$(quantile "$work/compare" 0.95)" \
  'BEGIN { printf "compare / ask: p50 %.2f, p95 %.2f (goal <= 2)\n", c / a, c95 / a95 }'
