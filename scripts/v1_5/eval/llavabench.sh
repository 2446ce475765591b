#!/usr/bin/env bash
# LLaVA-Bench in-the-wild (GPT-4 review: needs OPENAI_API_KEY, network and `pip install -e ".[review]"`;
# without the key, answers only).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/v1_5/eval/llavabench.sh [RATIO] [MAX_KEPT]
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
source "$(dirname "${BASH_SOURCE[0]}")/../../eval_lib.sh" "$@"
D=$DATA_ROOT/llava-bench-in-the-wild

eval_answers llava.eval.model_vqa "$D/answers/$NAME.jsonl" \
    --question-file "$D/questions.jsonl" \
    --image-folder "$D/images"

if [[ -z ${OPENAI_API_KEY:-} ]]; then
    echo "OPENAI_API_KEY is unset: skipping the GPT-4 review; answers are in $D/answers/$NAME.jsonl" >&2
    exit 0
fi

mkdir -p "$D/reviews"

"$PY" -m llava.eval.eval_gpt_review_bench \
    --question "$D/questions.jsonl" \
    --context "$D/context.jsonl" \
    --rule llava/eval/table/rule.json \
    --answer-list "$D/answers_gpt4.jsonl" "$D/answers/$NAME.jsonl" \
    --output "$D/reviews/$NAME.jsonl"

"$PY" -m llava.eval.summarize_gpt_review -f "$D/reviews/$NAME.jsonl"
