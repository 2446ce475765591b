#!/usr/bin/env bash
# LLaVA-1.6: Q-Bench A1 (dev accuracy; SPLIT=test writes the answers for Q-Bench's authors).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_6/eval/qbench.sh [RATIO] [RETAIN]
# RETAIN: --retain_token_num_for_llava_next (default 320, the DART release's); CKPT unset: the tiny LLaVA-1.6
# default. The benchmark's commands are those of scripts/v1_5/eval/qbench.sh (settings: scripts/eval_lib.sh).
LLAVA_VERSION=1.6 exec bash "$(dirname "${BASH_SOURCE[0]}")/../../v1_5/eval/qbench.sh" "$@"
