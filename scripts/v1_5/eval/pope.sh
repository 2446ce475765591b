#!/usr/bin/env bash
# POPE (accuracy, precision, recall, F1 per category).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/pope.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/pope

eval_answers llava.eval.model_vqa_loader "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava_pope_test.jsonl" \
    --image-folder "$D/val2014"

"$PY" -m llava.eval.eval_pope \
    --annotation-dir "$D/coco" \
    --question-file "$D/llava_pope_test.jsonl" \
    --result-file "$D/answers/$NAME.jsonl"
