#!/usr/bin/env bash
# Runs the answerability sets and the seed set through `hikitsugi eval --per-question`, keeps
# each question's outcome in target/answerability/<set>.jsonl, and prints each set's report.
# Then: python3 tests/answerability/fit.py target/answerability
# Usage: [OUT=DIR] tests/answerability/run.sh [BINARY] (default target/debug/hikitsugi)
set -euo pipefail
cd "$(dirname "$0")/../.."
binary="${1:-target/debug/hikitsugi}"
out="${OUT:-target/answerability}"
mkdir -p "$out"
for set in jsquad jaquad lawqa; do
    echo "== $set"
    "$binary" --config tests/demo/config.toml eval --json --per-question \
        --questions "tests/answerability/$set/questions.jsonl" \
        --contexts "tests/answerability/$set/contexts.jsonl" 2> "$out/$set.jsonl"
done
echo "== seed"
"$binary" --config tests/demo/config.toml eval --json --per-question \
    --questions ../shared/eval/seed/questions.jsonl --corpus ../shared/corpus/text 2> "$out/seed.jsonl"
