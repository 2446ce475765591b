#!/usr/bin/env bash
# Video-MME (multiple choice about videos; the official accuracy by duration, domain and task type).
# Needs a checkpoint whose family takes videos (e.g. CKPT=Qwen/Qwen2-VL-7B-Instruct); the LLaVA default does not.
# Usage: CKPT=... [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/videomme.sh [RATIO] [MAX_KEPT]
# Frames per video: EVAL_ARGS="--max_num_frames 32 --fps 1" (lmms-eval's names; default 32, no fps cap).
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/videomme
# The release's parquet where it was downloaded, else its rows as JSON (the generated sample set).
QUESTIONS=$D/videomme/test-00000-of-00001.parquet
if [[ ! -f $QUESTIONS ]]; then QUESTIONS=$D/videomme/test.json; fi

eval_answers llava.eval.model_video_mme "$D/answers/$NAME.jsonl" \
    --question-file "$QUESTIONS" \
    --video-folder "$D/data"

"$PY" -m llava.eval.eval_video_mme \
    --question-file "$QUESTIONS" \
    --result-file "$D/answers/$NAME.jsonl" \
    --output-file "$D/results/${NAME}_videomme.json"
