#!/usr/bin/env bash
# ScienceQA-IMG test (accuracy; text-only questions are answered too, as in LLaVA).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/sqa.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/scienceqa

eval_answers llava.eval.model_vqa_science "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava_test_CQM-A.json" \
    --image-folder "$D/images/test" \
    --single-pred-prompt

"$PY" -m llava.eval.eval_science_qa \
    --base-dir "$D" \
    --result-file "$D/answers/$NAME.jsonl" \
    --output-file "$D/answers/${NAME}_output.jsonl" \
    --output-result "$D/answers/${NAME}_result.json"
