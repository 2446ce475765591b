#!/usr/bin/env bash
# VQAv2 test-dev (submission file for the EvalAI server).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/vqav2.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
SPLIT=llava_vqav2_mscoco_test-dev2015
D=$DATA_ROOT/vqav2

eval_answers llava.eval.model_vqa_loader "$D/answers/$SPLIT/$NAME/merge.jsonl" \
    --question-file "$D/$SPLIT.jsonl" \
    --image-folder "$D/test2015"

"$PY" -m llava.eval.convert_vqav2_for_submission --dir "$D" --split "$SPLIT" --ckpt "$NAME"

echo "upload $D/answers_upload/$SPLIT/$NAME.json to the VQA Challenge on EvalAI (https://eval.ai, test-dev phase)"
