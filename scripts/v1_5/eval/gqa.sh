#!/usr/bin/env bash
# GQA testdev-balanced (accuracy).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/gqa.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
SPLIT=llava_gqa_testdev_balanced
D=$DATA_ROOT/gqa
GQADIR=$D/data

eval_answers llava.eval.model_vqa_loader "$D/answers/$SPLIT/$NAME/merge.jsonl" \
    --question-file "$D/$SPLIT.jsonl" \
    --image-folder "$D/data/images"

"$PY" -m llava.eval.convert_gqa_for_eval \
    --src "$D/answers/$SPLIT/$NAME/merge.jsonl" \
    --dst "$GQADIR/predictions/$NAME/testdev_balanced_predictions.json"

# Predictions and score per run name (the official tool reads <tier>_predictions.json from its data dir; a
# shared file would let one run's score overwrite another's).
"$PY" -m llava.eval.eval_gqa --data-dir "$GQADIR" --tier testdev_balanced \
    --predictions "predictions/$NAME/{tier}_predictions.json"
