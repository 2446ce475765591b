#!/usr/bin/env bash
# MM-Vet (results file for the official GPT-4 grader).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/mmvet.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/mm-vet

eval_answers llava.eval.model_vqa "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava-mm-vet.jsonl" \
    --image-folder "$D/images"

mkdir -p "$D/results"

"$PY" -m llava.eval.convert_mmvet_for_eval \
    --src "$D/answers/$NAME.jsonl" \
    --dst "$D/results/$NAME.json"

echo "grade $D/results/$NAME.json with MM-Vet's GPT-4 grader (https://github.com/yuweihao/MM-Vet)"
