#!/usr/bin/env bash
# Passage embedding throughput of hikitsugi (benches/embed_throughput.rs: its ingest path, the
# default configuration) and of the Python peer (benches/peer-embed.py: ../shared/bench/peer.py's
# Embedder, batches of 16) on the identical list of texts, the peer's ~500-character chunks of
# ../shared/corpus/text, alternately in one run. Prints a Markdown table: tokens/s (the median of
# the rounds) and peak RSS.
#
#   benches/embed-versus-peer.sh [ROUNDS]
#
# Needs python3 (the peer's virtual environment is made by ../shared/bench/setup.sh) and the
# model `hikitsugi setup` made; builds the bench with `cargo bench --no-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shared=../shared
model=${HIKITSUGI_CACHE_DIR:-$HOME/.cache/hikitsugi}/models/multilingual-e5-small-q4
[ -f "$model/model.onnx" ] || { echo "no model in $model: run \`hikitsugi setup\`" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=$("$shared/bench/setup.sh")

"$py" - "$shared" >"$work/texts.jsonl" <<'PY'
import json, pathlib, sys
sys.path.insert(0, f"{sys.argv[1]}/bench")
from peer import chunks
for path in sorted(pathlib.Path(f"{sys.argv[1]}/corpus/text").glob("*.txt")):
    for chunk in chunks(path.read_text(encoding="utf-8")):
        print(json.dumps(chunk, ensure_ascii=False))
PY
cargo bench --bench embed_throughput --no-run -q 2>/dev/null

peak_rss() { awk '/Maximum resident/ { printf "%.0f", $NF / 1024 }' "$1"; }
for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  /usr/bin/time -v cargo bench -q --bench embed_throughput -- "$work/texts.jsonl" \
    >>"$work/hikitsugi.jsonl" 2>"$work/hikitsugi.time"
  peak_rss "$work/hikitsugi.time" >>"$work/hikitsugi.rss"; echo >>"$work/hikitsugi.rss"
  /usr/bin/time -v "$py" benches/peer-embed.py "$model" "$work/texts.jsonl" \
    >>"$work/peer.jsonl" 2>"$work/peer.time"
  peak_rss "$work/peer.time" >>"$work/peer.rss"; echo >>"$work/peer.rss"
done

"$py" - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
rows = {}
for name in ("hikitsugi", "peer"):
    runs = [json.loads(line) for line in open(f"{work}/{name}.jsonl") if line.strip()]
    rss = [int(line) for line in open(f"{work}/{name}.rss") if line.strip()]
    rows[name] = (runs, statistics.median(r["tokens_per_s"] for r in runs), max(rss))
texts, tokens = rows["peer"][0][0]["texts"], rows["peer"][0][0]["tokens"]
assert (rows["hikitsugi"][0][0]["texts"], rows["hikitsugi"][0][0]["tokens"]) == (texts, tokens), "different lists"
print(f"{texts} texts, {tokens} tokens, {len(rows['peer'][0])} rounds each\n")
print("| embedder | tokens/s (median) | every round | peak RSS |")
print("| --- | --- | --- | --- |")
for name, (runs, median, rss) in rows.items():
    every = ", ".join(str(r["tokens_per_s"]) for r in runs)
    print(f"| {name} | {median:.0f} | {every} | {rss} MB |")
print(f"\nratio hikitsugi / peer: {rows['hikitsugi'][1] / rows['peer'][1]:.2f}")
PY
