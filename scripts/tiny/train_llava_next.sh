#!/usr/bin/env bash
# The tiny LLaVA-1.6 embedded default (checkpoints/llava-v1.6-tiny) from the LLaVA-1.5 one, on the CPU.
# Every stage trains on fresh generated images (8-14 questions each, 2-4 options for multiple choice) in
# LLaVA-1.6's layout: anyres with the released checkpoints' grid pinpoints, spatial_unpad (the row separator
# image_newline starts from LLaVA-1.6's initialisation and trains), every weight but the frozen tower
# trained, prompts up to 2048 tokens.
#   anyres  stage 14's mix of the 1.5 recipe (scripts/tiny/train_all.sh), prompt tokens labelled
#   forms   multiple choice in every instruction form the eval workers write (LLaVA's, MMBench-CN's, Q-Bench's
#           English and Chinese), the other question types rehearsed
#   focus, focus2, focus3
#           the forms again, weighted to what the model still missed (relations and positions as multiple
#           choice, Q-Bench's forms, MMBench-CN's), at a higher learning rate
#   spatial, spatial2
#           colours by position, positions and relations as multiple choice, in LLaVA's and MMBench-CN's forms
#           (what MMBench, MMBench-CN and SEED-Bench still missed), at falling learning rates
# From `forms` on, the loss is over the answers only: the Chinese instructions are byte tokens the model never
# saw, and their loss would swamp every other gradient. Then packaging: fp16 safetensors, the tower inside
# the checkpoint (package_checkpoint.py).
# Each stage's data (DATA/<stage>) and output (WORK/<stage>) are skipped when they exist (delete WORK to
# start over); a stage resumes from its last checkpoint-N.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-.venv/bin/python}"
from="${FROM:-checkpoints/llava-v1.5-tiny}"
work="${WORK:-checkpoints/tiny-next-work}"
data="${DATA:-playground/data/tiny_train/next}"
out="${OUT:-checkpoints/llava-v1.6-tiny}"
pinpoints='[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]'

stage() {  # NAME FROM SEED IMAGES TEXT_ONLY_FRACTION STEPS LEARNING_RATE TRAIN_ON_PROMPT TYPES...
    local name=$1 start=$2 seed=$3 images=$4 text_only=$5 steps=$6 lr=$7 on_prompt=$8
    shift 8
    [ -f "$data/$name/llava_tiny_finetune.json" ] ||
        "$py" scripts/tiny/generate_data.py --out "$data/$name" --seed "$seed" --n-images "$images" --types "$@" \
            --text-only-fraction "$text_only" --skip-eval --turns 8 14 --stages 2 --mc-options 2 4
    [ -f "$work/$name/model.safetensors" ] ||
        "$py" -m llava.train.train --model_name_or_path "$start" --output_dir "$work/$name" --version v1 \
            --data_path "$data/$name/llava_tiny_finetune.json" --image_folder "$data/$name" \
            --train_on_prompt "$on_prompt" \
            --vision_tower "$from/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu \
            --mm_use_im_start_end False --mm_use_im_patch_token False \
            --image_aspect_ratio anyres --image_grid_pinpoints "$pinpoints" --mm_patch_merge_type spatial_unpad \
            --per_device_train_batch_size 8 --learning_rate "$lr" --lr_scheduler_type cosine --warmup_ratio 0.03 \
            --max_steps "$steps" --model_max_length 2048 --group_by_modality_length True \
            --save_strategy steps --save_steps 100 --save_total_limit 1 --logging_steps 10 --report_to none \
            --use_cpu True --dataloader_num_workers 1 --seed 0
}

stage anyres "$from" 20 3000 0.1 450 3e-4 True \
    color color shape count exist verify position relation relation relation relation verify_relation \
    verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation mc_relation mc_relation \
    mc_relation mc_relation mc_relation mc_word word choose background
stage forms "$work/anyres" 21 1500 0.05 200 1e-4 False \
    mc mc_position mc_relation mc_word mc_qbench mc_qbench mc_qbench mc_qbench_zh mc_qbench_zh mc_qbench_zh \
    mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn color shape count exist verify position relation verify_relation \
    verify_word word choose background
stage focus "$work/forms" 22 1500 0.05 300 2e-4 False \
    mc_relation mc_relation mc_relation mc_position mc_position relation relation position mc_qbench mc_qbench \
    mc_qbench mc_qbench_zh mc_qbench_zh mc_qbench_zh mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn mc count color \
    shape exist verify verify_relation verify_word word choose background
stage focus2 "$work/focus" 23 1500 0.05 300 2e-4 False \
    mc_relation mc_relation mc_relation mc_position mc_position relation position mc_qbench mc_qbench mc_qbench \
    mc_qbench mc_qbench_zh mc_qbench_zh mc_qbench_zh mc_qbench_zh mc_mmbench_cn mc_mmbench_cn mc mc mc count \
    color shape exist verify verify_relation word choose background
stage focus3 "$work/focus2" 24 1500 0.05 300 2e-4 False \
    mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn mc_mmbench_cn mc_relation mc_relation mc_relation \
    mc_position mc_position mc_word mc mc mc mc_qbench mc_qbench mc_qbench mc_qbench_zh mc_qbench_zh mc_qbench_zh \
    relation position count color shape exist verify verify_relation verify_word word choose background
stage spatial "$work/focus3" 25 1500 0.05 300 1.5e-4 False \
    mc_mmbench_cn_relation mc_mmbench_cn_relation mc_mmbench_cn_relation mc_mmbench_cn_position \
    mc_mmbench_cn_position mc_mmbench_cn_color mc_mmbench_cn_color mc_mmbench_cn mc_relation mc_relation mc_position \
    relation relation position verify_relation mc mc mc_qbench mc_qbench mc_qbench_zh mc_qbench_zh color shape count \
    exist verify verify_word word choose background mc_word
stage spatial2 "$work/spatial" 26 1500 0.05 300 1e-4 False \
    mc_color mc_color mc_position mc_position mc_relation mc_relation mc_mmbench_cn_color mc_mmbench_cn_color \
    mc_mmbench_cn_position mc_mmbench_cn_position mc_mmbench_cn_relation mc_mmbench_cn_relation mc_word mc mc \
    mc_mmbench_cn mc_qbench mc_qbench mc_qbench_zh mc_qbench_zh relation position color shape count exist verify \
    verify_relation verify_word word choose background
"$py" scripts/tiny/package_checkpoint.py --trained "$work/spatial2" --vision-tower "$from/vision_tower" --out "$out" \
    --tokenizer-model "$from/tokenizer.model"
