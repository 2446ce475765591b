#!/usr/bin/env bash
# LLaVA-1.6 settings for Video-MME: its commands are those of scripts/v1_5/eval/videomme.sh, which needs a
# checkpoint whose family takes videos (CKPT=...); the tiny LLaVA-1.6 default does not (settings: scripts/eval_lib.sh).
# Usage: CKPT=... [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_6/eval/videomme.sh [RATIO] [RETAIN]
LLAVA_VERSION=1.6 exec bash "$(dirname "${BASH_SOURCE[0]}")/../../v1_5/eval/videomme.sh" "$@"
