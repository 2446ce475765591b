#!/usr/bin/env bash
# Q-Bench A1 (LLVisionQA): dev accuracy per question type and concern, and the answers file for Q-Bench's
# authors (SPLIT=test: the test answers are not public; the script says where to send the file).
# qbench_zh.sh reuses it with the Chinese instruction.
# Usage: [CKPT=...] [SPLIT=dev|test] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/qbench.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/qbench
SPLIT=${SPLIT:-dev}
QBENCH_LANG=${QBENCH_LANG:-en}
if [[ $QBENCH_LANG == en ]]; then RUN=llvisionqa_$SPLIT; else RUN=llvisionqa_${QBENCH_LANG}_$SPLIT; fi

eval_answers llava.eval.model_vqa_qbench "$D/answers/$RUN/$NAME.jsonl" \
    --questions-file "$D/llvisionqa_$SPLIT.json" \
    --image-folder "$D/images_llvisionqa/" \
    --lang "$QBENCH_LANG"

"$PY" -m llava.eval.eval_qbench \
    --questions-file "$D/llvisionqa_$SPLIT.json" \
    --result-file "$D/answers/$RUN/$NAME.jsonl" \
    --submission-file "$D/${RUN}_${NAME}_answers.jsonl"
