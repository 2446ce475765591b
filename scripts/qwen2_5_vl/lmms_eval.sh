#!/usr/bin/env bash
# Qwen2.5-VL with DART in lmms-eval, as the DART release's eval_scripts/lmms_eval.sh runs it.
# Usage: [CKPT=...] [TASKS=mme,pope] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/qwen2_5_vl/lmms_eval.sh [SPARSE] [RATIO] [MAX_KEPT]
# (settings and environment: scripts/lmms_eval_lib.sh; install: docs/LmmsEval.md)
MODEL=qwen2_5_vl_dart DEFAULT_CKPT=Qwen/Qwen2.5-VL-7B-Instruct source "$(dirname "${BASH_SOURCE[0]}")/../lmms_eval_lib.sh" "$@"
