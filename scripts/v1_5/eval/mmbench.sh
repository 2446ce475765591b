#!/usr/bin/env bash
# MMBench dev (submission file; local circular accuracy when the TSV has answers). mmbench_cn.sh reuses it.
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/mmbench.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
SPLIT=${MMBENCH_SPLIT:-mmbench_dev_20230712}
D=$DATA_ROOT/${MMBENCH_DIR:-mmbench}

eval_answers llava.eval.model_vqa_mmbench "$D/answers/$SPLIT/$NAME.jsonl" \
    --question-file "$D/$SPLIT.tsv" \
    --lang "${MMBENCH_LANG:-en}" \
    --single-pred-prompt

mkdir -p "$D/answers_upload/$SPLIT"

"$PY" -m llava.eval.convert_mmbench_for_submission \
    --annotation-file "$D/$SPLIT.tsv" \
    --result-dir "$D/answers/$SPLIT" \
    --upload-dir "$D/answers_upload/$SPLIT" \
    --experiment "$NAME"

echo "submit $D/answers_upload/$SPLIT/$NAME.xlsx to the MMBench evaluation server (https://mmbench.opencompass.org.cn) for the official score"
