#!/usr/bin/env bash
# SEED-Bench (accuracy per question type; upload file).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/seed.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/seed_bench

eval_answers llava.eval.model_vqa_loader "$D/answers/$NAME/merge.jsonl" \
    --question-file "$D/llava-seed-bench.jsonl" \
    --image-folder "$D"

mkdir -p "$D/answers_upload"

"$PY" -m llava.eval.convert_seed_for_submission \
    --annotation-file "$D/SEED-Bench.json" \
    --result-file "$D/answers/$NAME/merge.jsonl" \
    --result-upload-file "$D/answers_upload/$NAME.jsonl"
