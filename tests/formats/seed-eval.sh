#!/usr/bin/env bash
# The seed eval on the corpus texts and on Word and PowerPoint versions of them, side by side.
# The versions are written by make_versions.py (python-docx, python-pptx, in a virtual
# environment of their own from PyPI); each set's gold documents are renamed to the version's
# file names. Prints one row of retrieval and answer metrics per format.
#
#   tests/formats/seed-eval.sh [BINARY, default target/release/hikitsugi]
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/release/hikitsugi}
venv=${HIKITSUGI_FORMATS_VENV:-$HOME/.cache/hikitsugi-formats-venv}
if ! "$venv/bin/python" -c 'import docx, pptx' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet python-docx python-pptx
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=../shared/corpus/text
questions=../shared/eval/seed/questions.jsonl
"$venv/bin/python" tests/formats/make_versions.py "$binary" "$corpus" "$work"
printf '| format | questions | hit@1 | hit@5 | MRR@10 | abstain | false_abstain | answer recall |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for format in text docx pptx; do
  if [[ $format == text ]]; then
    dir=$corpus
    cp "$questions" "$work/questions.$format.jsonl"
  else
    dir=$work/$format
    sed "s/\\.txt\"/.$format\"/g" "$questions" >"$work/questions.$format.jsonl"
  fi
  if ! "$binary" --data-dir "$work/data-$format" eval --json \
    --questions "$work/questions.$format.jsonl" --corpus "$dir" \
    >"$work/report.$format.json" 2>"$work/eval.$format.log"; then
    cat "$work/eval.$format.log" >&2
    exit 1
  fi
  python3 - "$format" "$work/report.$format.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[2]))
def f(key):
    value = report.get(key)
    return "–" if value is None else f"{value:.2f}"
print(f"| {sys.argv[1]} | {report['questions']} | {f('hit@1')} | {f('hit@5')} | {f('mrr@10')} "
      f"| {f('abstain')} | {f('false_abstain')} | {f('answer_recall')} |")
PY
done
