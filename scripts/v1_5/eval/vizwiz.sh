#!/usr/bin/env bash
# VizWiz-VQA test (submission file for the EvalAI server).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/vizwiz.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/vizwiz

eval_answers llava.eval.model_vqa_loader "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava_test.jsonl" \
    --image-folder "$D/test"

mkdir -p "$D/answers_upload"

"$PY" -m llava.eval.convert_vizwiz_for_submission \
    --annotation-file "$D/llava_test.jsonl" \
    --result-file "$D/answers/$NAME.jsonl" \
    --result-upload-file "$D/answers_upload/$NAME.json"

echo "upload $D/answers_upload/$NAME.json to the VizWiz VQA Challenge on EvalAI (https://eval.ai)"
