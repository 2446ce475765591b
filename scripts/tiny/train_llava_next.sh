#!/usr/bin/env bash
# The tiny LLaVA-1.6 embedded default (checkpoints/llava-v1.6-tiny) from the LLaVA-1.5 one, on the CPU:
#   1. fresh images (seed 20) with 8-14 questions each, stage 14's mix of the 1.5 recipe (scripts/tiny/train_all.sh)
#   2. one fine-tuning stage in LLaVA-1.6's layout: anyres with the released checkpoints' grid pinpoints,
#      spatial_unpad (the row separator image_newline starts from LLaVA-1.6's initialisation and trains),
#      every weight but the frozen tower trained, prompts up to 2048 tokens
#   3. a short stage on multiple choice in every instruction form the eval workers write (LLaVA's, MMBench-CN's,
#      Q-Bench's English and Chinese), on fresh images (seed 21), with the other question types rehearsed; the
#      loss is over the answers only: the Chinese instructions are byte tokens the model never saw, and their
#      loss would swamp every other gradient
#   4. packaging: fp16 safetensors, the tower inside the checkpoint (package_checkpoint.py)
# Each step is skipped when its output exists (delete WORK and WORK_FORMS to start over); steps 2 and 3
# resume from their last checkpoint-N.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-.venv/bin/python}"
from="${FROM:-checkpoints/llava-v1.5-tiny}"
work="${WORK:-checkpoints/tiny-next-work}"
out="${OUT:-checkpoints/llava-v1.6-tiny}"
data="${DATA:-playground/data/tiny_train/next}"
steps="${STEPS:-450}"
work_forms="${WORK_FORMS:-checkpoints/tiny-next-forms-work}"
data_forms="${DATA_FORMS:-playground/data/tiny_train/next-forms}"
steps_forms="${STEPS_FORMS:-200}"
types=(color color shape count exist verify position relation relation relation relation verify_relation
       verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation mc_relation mc_relation
       mc_relation mc_relation mc_relation mc_word word choose background)
forms=(mc mc_position mc_relation mc_word mc_qbench mc_qbench mc_qbench mc_qbench_zh mc_qbench_zh mc_qbench_zh
       mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn color shape count exist verify position relation verify_relation
       verify_word word choose background)
pinpoints='[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]'
[ -f "$data/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --out "$data" --seed 20 --n-images "${N_IMAGES:-3000}" --types "${types[@]}" \
        --text-only-fraction 0.1 --skip-eval --turns 8 14 --stages 2 --mc-options 2 4
train() {  # FROM OUT DATA STEPS LEARNING_RATE TRAIN_ON_PROMPT
    "$py" -m llava.train.train --model_name_or_path "$1" --output_dir "$2" --version v1 \
        --data_path "$3/llava_tiny_finetune.json" --image_folder "$3" --train_on_prompt "$6" \
        --vision_tower "$from/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu \
        --mm_use_im_start_end False --mm_use_im_patch_token False \
        --image_aspect_ratio anyres --image_grid_pinpoints "$pinpoints" --mm_patch_merge_type spatial_unpad \
        --per_device_train_batch_size 8 --learning_rate "$5" --lr_scheduler_type cosine --warmup_ratio 0.03 \
        --max_steps "$4" --model_max_length 2048 --group_by_modality_length True \
        --save_strategy steps --save_steps 100 --save_total_limit 1 --logging_steps 10 --report_to none \
        --use_cpu True --dataloader_num_workers 1 --seed 0
}
[ -f "$work/model.safetensors" ] || train "$from" "$work" "$data" "$steps" 3e-4 True
[ -f "$data_forms/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --out "$data_forms" --seed 21 --n-images "${N_IMAGES_FORMS:-1500}" \
        --types "${forms[@]}" --text-only-fraction 0.05 --skip-eval --turns 8 14 --stages 2 --mc-options 2 4
[ -f "$work_forms/model.safetensors" ] || train "$work" "$work_forms" "$data_forms" "$steps_forms" 1e-4 False
"$py" scripts/tiny/package_checkpoint.py --trained "$work_forms" --vision-tower "$from/vision_tower" --out "$out" \
    --tokenizer-model "$from/tokenizer.model"
