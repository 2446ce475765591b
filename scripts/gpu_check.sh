#!/usr/bin/env bash
# What the CPU suite cannot check, on one GPU in under 10 minutes: DART under flash_attention_2 / sdpa in bf16 and
# fp16 against fp32, every method on CUDA, batch 8 against batch 1, the prefill benchmark at 7B width.
# Fails at once, saying so, on a machine without a GPU. Extra args go to `python -m llava.eval.gpu_check`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "error: no .venv here: run 'bash scripts/setup_env.sh' first (with a CUDA build of torch, see README)" >&2
    exit 2
fi
exec .venv/bin/python -m llava.eval.gpu_check "$@"
