#!/usr/bin/env bash
# TextVQA val (accuracy with the official soft score).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/textvqa.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/textvqa

eval_answers llava.eval.model_vqa_loader "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava_textvqa_val_v051_ocr.jsonl" \
    --image-folder "$D/train_images" \
    --is_textvqa

"$PY" -m llava.eval.eval_textvqa \
    --annotation-file "$D/TextVQA_0.5.1_val.json" \
    --result-file "$D/answers/$NAME.jsonl"
