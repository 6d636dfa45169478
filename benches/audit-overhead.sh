#!/usr/bin/env bash
# /v1/search throughput with the audit trail on and off, side by side: the same server binary,
# store and load (`wrk` with benches/wrk-search.lua), restarted between runs with
# HIKITSUGI_AUDIT__ENABLED=true/false; the two settings alternate for ROUNDS rounds, so that a
# drift of the machine's load affects both. Two loads:
#   - distinct: the distinct questions of ../shared/eval (seed, JSQuAD, JaQuAD; over 500) with
#     the query cache off, as benches/versus-peer.sh loads the service: each search embeds;
#   - repeated: the six questions of wrk-search.lua with the query cache on: a search costs
#     well under a millisecond, so this is the audit's worst case.
# Prints requests/s and latency of each run, the median requests/s of each setting, and on / off
# (the goal is >= 0.95).
#
#   benches/audit-overhead.sh [target/release/hikitsugi] [seconds per run, 15] [connections, 4] [rounds, 3]
#
# Needs wrk, curl and python3 (Debian). Uses the demo configuration on a scratch data directory
# (SQLite metadata, the default) and port 18082; the demo corpus is ingested first.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/hikitsugi}
seconds=${2:-15}
connections=${3:-4}
rounds=${4:-3}
shared=../shared
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "$0 needs $tool: apt-get install $tool" >&2; exit 1; }
done
work=$(mktemp -d)
trap '[ -z "${server:-}" ] || { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; }; rm -rf "$work"' EXIT

python3 benches/distinct-questions.py "$shared/eval" >"$work/questions"

export HIKITSUGI_LISTEN=127.0.0.1:18082
config=(--config tests/demo/config.toml --data-dir "$work/data")
"$binary" "${config[@]}" ingest tests/demo/corpus >/dev/null 2>&1

run() { # load (distinct|repeated), audit (on|off) → "requests/s summary" of one wrk run
  local load=$1 enabled=$2 cache=1024
  local -a questions=()
  [ "$enabled" = on ] && enabled=true || enabled=false
  if [ "$load" = distinct ]; then
    cache=0
    questions=(WRK_QUESTIONS="$work/questions")
  fi
  HIKITSUGI_AUDIT__ENABLED=$enabled HIKITSUGI_MODEL__QUERY_CACHE=$cache \
    "$binary" "${config[@]}" serve >>"$work/serve.log" 2>&1 &
  server=$!
  until curl -sf http://127.0.0.1:18082/readyz >/dev/null; do sleep 0.2; done
  # Warm up the model and caches.
  env "${questions[@]}" WRK_PATH=/v1/search wrk -t1 -c1 -d2s -s benches/wrk-search.lua \
    http://127.0.0.1:18082 >/dev/null
  env "${questions[@]}" WRK_PATH=/v1/search wrk -t1 -c"$connections" -d"${seconds}s" \
    -s benches/wrk-search.lua http://127.0.0.1:18082 >"$work/wrk.out"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
  local rate summary
  rate=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
  summary=$(grep '^requests ' "$work/wrk.out")
  echo "$rate $summary"
}

median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
summaries=()
for load in distinct repeated; do
  : >"$work/on"
  : >"$work/off"
  for ((round = 1; round <= rounds; round++)); do
    for setting in on off; do
      result=$(run "$load" "$setting")
      echo "$load questions, round $round, audit $setting: ${result%% *} requests/s (${result#* })"
      echo "${result%% *}" >>"$work/$setting"
    done
  done
  on=$(median "$work/on")
  off=$(median "$work/off")
  summaries+=("$(awk -v load="$load" -v on="$on" -v off="$off" \
    'BEGIN { printf "  %-8s  audit on %8.1f requests/s, off %8.1f: on / off %.3f (goal >= 0.95)", load, on, off, on / off }')")
done
records=$(HIKITSUGI_AUDIT__ENABLED=true "$binary" "${config[@]}" audit --limit 100000000 2>&1 >/dev/null | tail -n 1)
echo "/v1/search, $connections connections, ${seconds}s per run, $rounds rounds (median), $(wc -l <"$work/questions") distinct questions:"
printf '%s\n' "${summaries[@]}"
echo "  ($records written by the audited runs)"
