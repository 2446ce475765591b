#!/usr/bin/env bash
# Continue a tiny model's training on the fine-detail question forms (DocVQA, InfographicVQA, ChartQA, AI2D, MMStar),
# mixed with a replay of its earlier forms, and package the result over it. About 45 min (1.5) and 30 min (1.6) on one
# CPU core each; the two can run side by side.
#
#     bash scripts/tiny/train_detail.sh 1.5        # checkpoints/llava-v1.5-tiny (pad, 576 image tokens)
#     bash scripts/tiny/train_detail.sh 1.6        # checkpoints/llava-v1.6-tiny (anyres)
#
# Environment: FROM (default: the model's checkpoint), OUT (default: FROM: the new weights replace the old, its card
# README.md is kept), WORK, DATA, STEPS, LR, PYTHON.
# Each step is skipped when its output exists; training resumes from its last saved step.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:?usage: bash scripts/tiny/train_detail.sh 1.5|1.6}
py="${PYTHON:-.venv/bin/python}"
data="${DATA:-playground/data/tiny_train/detail}"
replay=(color color shape count exist verify position relation relation relation relation verify_relation
        verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation mc_relation mc_relation
        mc_relation mc_word word choose background mc_qbench mc_qbench_zh mc_mmbench_cn)
case $version in
    1.5) from="${FROM:-checkpoints/llava-v1.5-tiny}"; steps="${STEPS:-800}"; batch=16; max_length=1536
         image=(--image_aspect_ratio pad) ;;
    1.6) from="${FROM:-checkpoints/llava-v1.6-tiny}"; steps="${STEPS:-500}"; batch=8; max_length=2048
         image=(--image_aspect_ratio anyres --mm_patch_merge_type spatial_unpad
                --image_grid_pinpoints '[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]') ;;
    *) echo "error: the version is 1.5 or 1.6, got '$version'" >&2; exit 2 ;;
esac
out="${OUT:-$from}"
work="${WORK:-checkpoints/tiny-detail-work-$version}"

[ -f "$data/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --skip-eval --out "$data" --seed 40 --n-images 1500 --turns 6 10 --stages 2 \
        --mc-options 2 4 --text-only-fraction 0.05 --types "${replay[@]}"
[ -f "$data/llava_tiny_detail_mix.json" ] ||
    "$py" scripts/tiny/generate_detail_data.py --out "$data" --seed 51 --n-images 9000 --turns 6 12 \
        --kinds document chart document chart document chart infographic diagram mmstar \
        --mix-with "$data/llava_tiny_finetune.json"
[ -f "$work/model.safetensors" ] ||
    "$py" -m llava.train.train --model_name_or_path "$from" --output_dir "$work" --version v1 \
        --data_path "$data/llava_tiny_detail_mix.json" --image_folder "$data" --train_on_prompt False \
        --vision_tower "$from/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu \
        --mm_use_im_start_end False --mm_use_im_patch_token False "${image[@]}" \
        --per_device_train_batch_size "$batch" --learning_rate "${LR:-5e-4}" --lr_scheduler_type cosine \
        --warmup_steps 20 --max_steps "$steps" --model_max_length "$max_length" --group_by_modality_length True \
        --save_strategy steps --save_steps 100 --save_total_limit 1 --logging_steps 10 --report_to none \
        --use_cpu True --dataloader_num_workers 1 --seed 0
# Packaged beside the work folder first (the packager replaces its output, and FROM holds the tower it copies).
"$py" scripts/tiny/package_checkpoint.py --trained "$work" --vision-tower "$from/vision_tower" --out "$work-packaged" \
    --tokenizer-model "$from/tokenizer.model"
mkdir -p "$out"
for f in "$work-packaged"/*; do
    rm -rf "${out:?}/$(basename "$f")"
    cp -r "$f" "$out/"
done
