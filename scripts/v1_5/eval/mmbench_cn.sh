#!/usr/bin/env bash
# MMBench-CN dev: mmbench.sh on the Chinese split, with the Chinese answer-format request (--lang cn).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/mmbench_cn.sh [RATIO] [MAX_KEPT]
MMBENCH_SPLIT=mmbench_dev_cn_20231003 MMBENCH_DIR=mmbench_cn MMBENCH_LANG=cn \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/mmbench.sh" "$@"
