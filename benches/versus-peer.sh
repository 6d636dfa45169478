#!/usr/bin/env bash
# hikitsugi beside the Python peer of ../shared/bench/ (FastAPI + qdrant-client local mode +
# onnxruntime, the same e5 model file), in one run on this machine:
#   - ingest of the demo corpus: seconds, chunks/s and peak RSS of each;
#   - start-up: `serve` to a ready /readyz (hikitsugi) or a first answer (peer);
#   - /v1/search with `wrk -t1` at 1, 8 and 32 clients over the distinct questions of the seed,
#     JSQuAD and JaQuAD sets (the two services measured alternately, hikitsugi's query cache off,
#     so every request embeds its question);
#   - the query cache's effect on its own (hikitsugi, 8 clients, the same questions, cache on);
#   - resident memory of both services after the runs.
# Prints a Markdown table.
#
#   benches/versus-peer.sh [target/release/hikitsugi] [SECONDS per run]
#
# Needs wrk and curl (Debian), python3 (the peer's virtual environment is made by
# ../shared/bench/setup.sh) and the model `hikitsugi setup` made. Ports 18090 and 18091.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/hikitsugi}
seconds=${2:-12}
shared=../shared
model=${HIKITSUGI_CACHE_DIR:-$HOME/.cache/hikitsugi}/models/multilingual-e5-small-q4
work=$(mktemp -d)
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
[ -x "$binary" ] || { echo "no $binary: build it with cargo build --release" >&2; exit 1; }
[ -f "$model/model.onnx" ] || { echo "no model in $model: run \`$binary setup\`" >&2; exit 1; }
py=$("$shared/bench/setup.sh")

# At least 500 distinct questions, JSON-escaped, one per line.
"$py" benches/distinct-questions.py "$shared/eval" >"$work/questions"
questions=$(wc -l <"$work/questions")

peak_rss() { awk '/Maximum resident/ { printf "%.0f MB", $NF / 1024 }' "$1"; }
rss() { awk '/^VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
elapsed() { awk '/Elapsed \(wall clock\)/ { n = split($NF, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }

echo "ingesting the demo corpus with both" >&2
config=(--config tests/demo/config.toml --data-dir "$work/hikitsugi")
/usr/bin/time -v "$binary" "${config[@]}" ingest tests/demo/corpus >"$work/ingest.out" 2>"$work/ingest.time"
ingest_summary=$(grep -o '[0-9]* chunks in [0-9.]* s ([0-9.]* s embedding' "$work/ingest.time" | sed 's/ (/, /')
/usr/bin/time -v "$py" "$shared/bench/peer.py" ingest "$model" "$shared/corpus/text" "$work/peer" \
  >"$work/peer-ingest.out" 2>"$work/peer-ingest.time"

echo "starting both services" >&2
started=$(now_ms)
HIKITSUGI_LISTEN=127.0.0.1:18090 HIKITSUGI_MODEL__QUERY_CACHE=0 \
  "$binary" "${config[@]}" serve >"$work/serve.log" 2>&1 &
servers+=($!)
hikitsugi=$!
until curl -sf http://127.0.0.1:18090/readyz >/dev/null; do sleep 0.05; done
hikitsugi_start=$(($(now_ms) - started))
started=$(now_ms)
"$py" "$shared/bench/peer.py" serve "$model" "$work/peer" 18091 >"$work/peer.log" 2>&1 &
servers+=($!)
peer=$!
until curl -sf -X POST -H 'Content-Type: application/json' -d '{"query": "a"}' \
  http://127.0.0.1:18091/v1/search >/dev/null 2>&1; do sleep 0.05; done
peer_start=$(($(now_ms) - started))

load() { # PORT CLIENTS SECONDS [env...] → the wrk script's summary line
  local port=$1 clients=$2 duration=$3
  shift 3
  env WRK_QUESTIONS="$work/questions" "$@" wrk -t1 -c"$clients" -d"${duration}s" \
    -s benches/wrk-search.lua "http://127.0.0.1:$port" | grep '^requests'
}
figures() { sed -E 's/.*errors ([0-9]+), req\/s ([0-9.]+), p50 ([0-9.]+) ms, p95 ([0-9.]+) ms.*/\2 req\/s, p95 \4 ms (errors \1)/' <<<"$1"; }
ratio() { awk -v a="$(cut -d' ' -f1 <<<"$1")" -v b="$(cut -d' ' -f1 <<<"$2")" 'BEGIN { printf "%.2f×", a / b }'; }

load 18090 1 3 WRK_KEY=demo-wakayama-key >/dev/null
load 18091 1 3 WRK_ORG=pref-wakayama >/dev/null
rows=()
for clients in 1 8 32; do
  echo "load: $clients clients" >&2
  ours=$(figures "$(load 18090 "$clients" "$seconds" WRK_KEY=demo-wakayama-key)")
  theirs=$(figures "$(load 18091 "$clients" "$seconds" WRK_ORG=pref-wakayama)")
  rows+=("| $clients | $ours | $theirs | $(ratio "$ours" "$theirs") |")
done
hikitsugi_rss=$(rss "$hikitsugi")
peer_rss=$(rss "$peer")

echo "load: 8 clients with the query cache on" >&2
kill "$hikitsugi"
wait "$hikitsugi" 2>/dev/null || true
HIKITSUGI_LISTEN=127.0.0.1:18090 "$binary" "${config[@]}" serve >>"$work/serve.log" 2>&1 &
servers+=($!)
until curl -sf http://127.0.0.1:18090/readyz >/dev/null; do sleep 0.05; done
load 18090 8 3 WRK_KEY=demo-wakayama-key >/dev/null
cached=$(figures "$(load 18090 8 "$seconds" WRK_KEY=demo-wakayama-key)")
hits=$(curl -s http://127.0.0.1:18090/metrics | awk '/^hikitsugi_query_embedding_cache_total\{result="hit"\}/ { h = $2 } /^hikitsugi_query_embedding_cache_total\{result="miss"\}/ { m = $2 } END { if (h + m > 0) printf "%.0f%%", 100 * h / (h + m) }')

echo
echo "Demo corpus, $questions distinct questions, \`wrk -t1 -d${seconds}s\`, $(nproc) cores, $(date -u +%F):"
echo
echo "| clients | hikitsugi \`/v1/search\` | Python peer | ratio |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo "| 8, query cache on | $cached ($hits of embeddings from the cache) | | |"
echo "| RSS after the runs | $hikitsugi_rss | $peer_rss | |"
echo "| start-up (to ready) | $hikitsugi_start ms | $peer_start ms | |"
peer_ingest=$(sed -E 's/.*"chunks": ([0-9]+), "seconds": ([0-9.]+).*/\1 chunks in \2 s after the model load/' "$work/peer-ingest.out")
echo "| ingest of the demo corpus | ${ingest_summary}, peak RSS $(peak_rss "$work/ingest.time") | $peer_ingest, peak RSS $(peak_rss "$work/peer-ingest.time") | |"
echo "| ingest, whole command | $(elapsed "$work/ingest.time") s | $(elapsed "$work/peer-ingest.time") s | |"
