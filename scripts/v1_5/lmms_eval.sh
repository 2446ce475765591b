#!/usr/bin/env bash
# LLaVA-1.5 (default: the embedded tiny model and the offline sample tasks) with DART in lmms-eval, as the DART release's eval_scripts/lmms_eval.sh runs it.
# Usage: [CKPT=...] [TASKS=mme,pope] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/lmms_eval.sh [SPARSE] [RATIO] [MAX_KEPT]
# (settings and environment: scripts/lmms_eval_lib.sh; install: docs/LmmsEval.md)
MODEL=llava_dart DEFAULT_CKPT=checkpoints/llava-v1.5-tiny source "$(dirname "${BASH_SOURCE[0]}")/../lmms_eval_lib.sh" "$@"
