#!/usr/bin/env bash
# MME (perception and cognition scores).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/mme.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/MME

eval_answers llava.eval.model_vqa_loader "$D/answers/$NAME.jsonl" \
    --question-file "$D/llava_mme.jsonl" \
    --image-folder "$D/MME_Benchmark_release_version"

"$PY" -m llava.eval.convert_answer_to_mme --data-dir "$D" --experiment "$NAME"

"$PY" -m llava.eval.calculate_mme --results_dir "$D/eval_tool/answers/$NAME"
