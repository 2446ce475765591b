#!/usr/bin/env bash
# Reproduces the embedded default checkpoint (checkpoints/llava-v1.5-tiny) from nothing, on the CPU:
#   1. synthetic training data (scripts/tiny/generate_data.py; the eval sets are committed separately)
#   2. the tiny CLIP tower (pretrain_vision_tower.py), frozen afterwards: first on what each patch shows
#      (`local` targets), then continued with the scene context every patch should carry (`scene` targets)
#   3. a random-init 4-layer LLaMA in the original format (llava.model.tiny_checkpoint --layout base)
#   4. stage 1: captions with the `plain` template (projector + LLM: the LLM starts from random weights,
#      so unlike real LLaVA it must learn language here too)
#   5. stage 2: multi-turn question answering with the `v1` template (optionally a second, lower-lr pass)
#   6. packaging: fp16 safetensors, the tower inside the checkpoint (package_checkpoint.py)
# About 2 h 15 min on 2 cores. Each step is skipped when its output exists (delete WORK to start over).
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-.venv/bin/python}"
work="${WORK:-checkpoints/tiny-work}"
out="${OUT:-checkpoints/llava-v1.5-tiny}"
data="${DATA:-playground/data/tiny_train}"
n_images="${N_IMAGES:-12000}"
vision_local_steps="${VISION_LOCAL_STEPS:-1000}"
vision_scene_steps="${VISION_SCENE_STEPS:-700}"
stage1_steps="${STAGE1_STEPS:-300}"
stage2_steps="${STAGE2_STEPS:-1500}"
stage2b_steps="${STAGE2B_STEPS:-0}"  # a second, lower-lr pass over the stage-2 data (0 skips it)
# Question types of stage 2, repeated to weight them towards the yes/no (existence, verification) and
# multiple-choice skills; 8-14 questions per image amortise the 576 image tokens of each sequence.
types=(color shape count exist exist exist position relation word verify verify verify choose background
       mc mc mc mc mc)
# STAGE2_ARGS: extra flags for stage 2, e.g. "--save_strategy steps --save_steps 400" to probe it mid-way
# (scripts/tiny/probe_question_types.py); later flags win.
read -r -a stage2_extra <<< "${STAGE2_ARGS:-}"
llm_sizes=(--hidden-size 128 --intermediate-size 344 --num-attention-heads 4 --num-key-value-heads 4 --num-layers 4)
mkdir -p "$work"

[ -f "$data/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --skip-eval --out "$data" --n-images "$n_images" --turns 8 14 \
        --types "${types[@]}"
[ -f "$work/local/vision_tower/model.safetensors" ] ||
    "$py" scripts/tiny/pretrain_vision_tower.py --out "$work/local" --targets local --steps "$vision_local_steps"
[ -f "$work/vision_tower/model.safetensors" ] ||
    "$py" scripts/tiny/pretrain_vision_tower.py --out "$work" --init "$work/local/vision_tower" \
        --targets local scene --steps "$vision_scene_steps"
[ -f "$work/base/model.safetensors" ] ||
    "$py" -m llava.model.tiny_checkpoint "$work/base" --layout base "${llm_sizes[@]}"

common=(--vision_tower "$work/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu
        --mm_use_im_start_end False --mm_use_im_patch_token False --image_aspect_ratio pad
        --image_folder "$data" --per_device_train_batch_size 16 --lr_scheduler_type cosine --warmup_ratio 0.03
        --weight_decay 0.0 --logging_steps 10 --save_strategy no --model_max_length 1536 --use_cpu True
        --report_to none --dataloader_num_workers 1 --seed 0)
[ -f "$work/stage1/model.safetensors" ] ||
    "$py" -m llava.train.train --model_name_or_path "$work/base" --version plain \
        --data_path "$data/llava_tiny_pretrain.json" --output_dir "$work/stage1" \
        --max_steps "$stage1_steps" --learning_rate 2e-3 "${common[@]}"
[ -f "$work/stage2/model.safetensors" ] ||
    "$py" -m llava.train.train --model_name_or_path "$work/stage1" --version v1 \
        --data_path "$data/llava_tiny_finetune.json" --output_dir "$work/stage2" \
        --max_steps "$stage2_steps" --learning_rate 1.5e-3 "${common[@]}" ${stage2_extra[@]+"${stage2_extra[@]}"}
final="$work/stage2"
if ((stage2b_steps > 0)); then
    [ -f "$work/stage2b/model.safetensors" ] ||
        "$py" -m llava.train.train --model_name_or_path "$work/stage2" --version v1 \
            --data_path "$data/llava_tiny_finetune.json" --output_dir "$work/stage2b" \
            --max_steps "$stage2b_steps" --learning_rate 5e-4 "${common[@]}" --seed 1  # (the last --seed wins)
    final="$work/stage2b"
fi
"$py" scripts/tiny/package_checkpoint.py --trained "$final" --vision-tower "$work/vision_tower" --out "$out" \
    --tokenizer-model "$work/base/tokenizer.model"
