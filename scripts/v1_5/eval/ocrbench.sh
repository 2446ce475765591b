#!/usr/bin/env bash
# OCRBench (the official score: right answers out of 1000 on the full set, per question type).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/ocrbench.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/OCRBench

eval_answers llava.eval.model_vqa_ocrbench "$D/answers/$NAME.jsonl" \
    --question-file "$D/OCRBench/OCRBench.json" \
    --image-folder "$D/OCRBench_Images"

"$PY" -m llava.eval.eval_ocrbench \
    --annotation-file "$D/OCRBench/OCRBench.json" \
    --result-file "$D/answers/$NAME.jsonl" \
    --output-file "$D/results/${NAME}_OCRBench.json"
