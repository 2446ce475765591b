#!/usr/bin/env bash
# Continue a tiny model's training on the fine-detail question forms (DocVQA, InfographicVQA, ChartQA, AI2D, MMStar),
# mixed with a replay of its earlier forms, and package the result over it. LLaVA-1.5: one round, about 45 min on one
# CPU core; LLaVA-1.6: two rounds, about 30 and 40 min. The two models can train side by side.
#
#     bash scripts/tiny/train_detail.sh 1.5        # checkpoints/llava-v1.5-tiny (pad, 576 image tokens)
#     bash scripts/tiny/train_detail.sh 1.6        # checkpoints/llava-v1.6-tiny (anyres)
#
# A round: fresh generated pages (each round its own seed) with 6-12 questions each, plus the replay; answers only,
# lr 5e-4 cosine from 20 warmup steps. Round 1 weights tables of words and bar charts 3:1 over the other kinds;
# round 2 (LLaVA-1.6) weights legends as much as those two. The shipped weights are not this script's output yet: its
# runs lose part of the earlier sets (docs/tiny_model_history.md, "Round 2").
# Environment: FROM (default: the model's checkpoint), OUT (default: FROM: the new weights replace the old, its card
# README.md is kept), WORK, DATA, STEPS (round 1's steps), LR, PYTHON.
# Each step is skipped when its output exists; training resumes from its last saved step.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:?usage: bash scripts/tiny/train_detail.sh 1.5|1.6}
py="${PYTHON:-.venv/bin/python}"
data="${DATA:-playground/data/tiny_train/detail}"
replay=(color color shape count exist verify position relation relation relation relation verify_relation
        verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation mc_relation mc_relation
        mc_relation mc_word word choose background mc_qbench mc_qbench_zh mc_mmbench_cn)
round1_kinds=(document chart document chart document chart infographic diagram mmstar)
round2_kinds=(document chart infographic document chart infographic diagram mmstar)
case $version in
    1.5) from="${FROM:-checkpoints/llava-v1.5-tiny}"; rounds=("1 51 9000 round1_kinds ${STEPS:-800}")
         batch=16; max_length=1536; image=(--image_aspect_ratio pad) ;;
    1.6) from="${FROM:-checkpoints/llava-v1.6-tiny}"
         rounds=("1 51 9000 round1_kinds ${STEPS:-500}" "2 53 8000 round2_kinds 600")
         batch=8; max_length=2048
         image=(--image_aspect_ratio anyres --mm_patch_merge_type spatial_unpad
                --image_grid_pinpoints '[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]') ;;
    *) echo "error: the version is 1.5 or 1.6, got '$version'" >&2; exit 2 ;;
esac
out="${OUT:-$from}"
work="${WORK:-checkpoints/tiny-detail-work-$version}"

detail_round() {  # ROUND SEED N_IMAGES KINDS_ARRAY_NAME STEPS: train $work/round<ROUND> from the round before
    local round=$1 seed=$2 n_images=$3 steps=$5 round_data="$data/round$1"
    local -n kinds=$4
    local start="$from"
    [ "$round" -eq 1 ] || start="$work/round$((round - 1))"
    [ -f "$round_data/llava_tiny_finetune.json" ] ||
        "$py" scripts/tiny/generate_data.py --skip-eval --out "$round_data" --seed 40 --n-images 1500 --turns 6 10 \
            --stages 2 --mc-options 2 4 --text-only-fraction 0.05 --types "${replay[@]}"
    [ -f "$round_data/llava_tiny_detail_mix.json" ] ||
        "$py" scripts/tiny/generate_detail_data.py --out "$round_data" --seed "$seed" --n-images "$n_images" \
            --turns 6 12 --kinds "${kinds[@]}" --mix-with "$round_data/llava_tiny_finetune.json"
    [ -f "$work/round$round/model.safetensors" ] ||
        "$py" -m llava.train.train --model_name_or_path "$start" --output_dir "$work/round$round" --version v1 \
            --data_path "$round_data/llava_tiny_detail_mix.json" --image_folder "$round_data" --train_on_prompt False \
            --vision_tower "$from/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu \
            --mm_use_im_start_end False --mm_use_im_patch_token False "${image[@]}" \
            --per_device_train_batch_size "$batch" --learning_rate "${LR:-5e-4}" --lr_scheduler_type cosine \
            --warmup_steps 20 --max_steps "$steps" --model_max_length "$max_length" --group_by_modality_length True \
            --save_strategy steps --save_steps 100 --save_total_limit 1 --logging_steps 10 --report_to none \
            --use_cpu True --dataloader_num_workers 1 --seed 0
}

for spec in "${rounds[@]}"; do
    # shellcheck disable=SC2086  # the spec is five words
    detail_round $spec
    last="$work/round${spec%% *}"
done
# Packaged beside the work folder first (the packager replaces its output, and FROM holds the tower it copies).
"$py" scripts/tiny/package_checkpoint.py --trained "$last" --vision-tower "$from/vision_tower" --out "$work-packaged" \
    --tokenizer-model "$from/tokenizer.model"
mkdir -p "$out"
for f in "$work-packaged"/*; do
    rm -rf "${out:?}/$(basename "$f")"
    cp -r "$f" "$out/"
done
