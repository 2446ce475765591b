#!/usr/bin/env bash
# Q-Bench-zh: qbench.sh with the Chinese instruction (--lang zh) on the same questions file.
# Usage: [CKPT=...] [SPLIT=dev|test] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/qbench_zh.sh [RATIO] [MAX_KEPT]
QBENCH_LANG=zh exec bash "$(dirname "${BASH_SOURCE[0]}")/qbench.sh" "$@"
