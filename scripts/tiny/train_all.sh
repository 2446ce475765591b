#!/usr/bin/env bash
# Reproduces the embedded default checkpoint (checkpoints/llava-v1.5-tiny) from nothing, on the CPU:
#   1. synthetic training data (scripts/tiny/generate_data.py; the eval sets are committed separately)
#   2. a 1024-piece SentencePiece tokenizer (every scene word one piece: prompts 3x shorter than with 512)
#   3. the tiny CLIP tower (pretrain_vision_tower.py), frozen afterwards: first on what each patch shows
#      (`local` targets), then continued with the background colour, the scene's word and what the patch's
#      grid cell holds added to every patch (never the whole scene: which patches are kept must matter)
#   4. a random-init 4-layer LLaMA in the original format (llava.model.tiny_checkpoint --layout base)
#   5. stage 0: the LLM alone on scenes described in text, with a language-model loss on every text token
#      (--train_on_prompt); trained on answers only, a from-scratch LLM never learns to look things up in
#      its context and stays at chance on yes/no (docs/tiny_model_history.md)
#   6. stage 1: captions with the `plain` template (projector 2e-3, LLM 3e-4)
#   7. stage 2: multi-turn question answering with the `v1` template, prompt tokens labelled too
#   8. stages 3-6, multiple choice with 2-4 options (ScienceQA has 2-4; stage 2 only ever showed 4):
#      3: fresh images (seed 1) with multiple choice x6, mixed with scenes described in words;
#      4: described scenes only, mostly multiple choice (batch 32, cheap steps: picking the letter is learnt
#         here far faster than with 576 image tokens in every sequence);
#      5: fresh images again (seed 2), multiple choice x8, 30% text-only knowledge questions
#      6: a short polish at lr 2e-4 on fresh images (seed 4), verify x4, position and relation x2
#   9. stages 7-12, the skills still missing, weighted up through the focused question types:
#      7: fresh images (seed 5): positions and relations (open, yes/no and multiple choice), checking a
#         quoted word (MME's OCR questions) and multiple choice about the written word
#      8: described scenes only (batch 32), relations x3 among positions, checks and multiple choice: the
#         comparison behind "Where is A relative to B?" is learnt in text (held-out 0.23 -> 0.77), where it
#         is cheap, as picking the letter was in stage 4
#      9 and 10: fresh images (seeds 7 and 8), relations x4 and their checks and multiple choice x3,
#         described scenes with relations mixed in
#      11: described scenes only (batch 32), checks of a quoted word and of a relation x3 each, relation
#          multiple choice x2: the claim checks learnt in text (held-out 0.57 -> 0.81)
#      12: fresh images (seed 10), the checks x3-4 and relation multiple choice x4
#  10. stages 13-18, relations as multiple choice (mc_relation), text first again:
#      13: described scenes only (batch 32), mc_relation x4, relation x2, mc_position x2
#      14: fresh images (seed 12), mc_relation x6, relation x4, colour x2, the checks x2
#      15: described scenes only (batch 32), mc_relation x5, relation x3, verify_relation x2
#      16-18: stage 14's mix on fresh images (seeds 14-16)
#  11. packaging: fp16 safetensors, the tower inside the checkpoint (package_checkpoint.py)
# About 8 h 10 min on 2 cores. Each step is skipped when its output exists (delete WORK to start over);
# stages 0, 2-5 and 7-18 resume from their last checkpoint-N.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-.venv/bin/python}"
work="${WORK:-checkpoints/tiny-work}"
out="${OUT:-checkpoints/llava-v1.5-tiny}"
data="${DATA:-playground/data/tiny_train}"
# Stages 3-18 get directories of their own: their JSON files have the names of stage 0's and stage 2's.
data3="$data/stage3" data4="$data/stage4" data5="$data/stage5" data6="$data/stage6"
n_images="${N_IMAGES:-12000}"
vision_local_steps="${VISION_LOCAL_STEPS:-1000}"
vision_context_steps="${VISION_CONTEXT_STEPS:-800}"
stage0_steps="${STAGE0_STEPS:-2500}"
stage0_decay_steps="${STAGE0_DECAY_STEPS:-700}"
stage1_steps="${STAGE1_STEPS:-200}"
stage2_steps="${STAGE2_STEPS:-1500}"
stage3_steps="${STAGE3_STEPS:-1500}"
stage4_steps="${STAGE4_STEPS:-1200}"
stage5_steps="${STAGE5_STEPS:-2000}"
stage6_steps="${STAGE6_STEPS:-600}"
stage7_steps="${STAGE7_STEPS:-1000}"
stage8_steps="${STAGE8_STEPS:-1200}"
stage9_steps="${STAGE9_STEPS:-1000}"
stage10_steps="${STAGE10_STEPS:-1000}"
stage11_steps="${STAGE11_STEPS:-1000}"
stage12_steps="${STAGE12_STEPS:-800}"
stage13_steps="${STAGE13_STEPS:-1500}"
stage14_steps="${STAGE14_STEPS:-800}"
stage15_steps="${STAGE15_STEPS:-2000}"
stage16_steps="${STAGE16_STEPS:-800}"
stage17_steps="${STAGE17_STEPS:-800}"
stage18_steps="${STAGE18_STEPS:-800}"
# Question types of stage 2, repeated to weight them towards the yes/no (existence, verification) and
# multiple-choice skills; 8-14 questions per image amortise the 576 image tokens of each sequence.
types=(color shape count exist exist exist position relation word verify verify verify choose background
       mc mc mc mc mc)
# Stage 0 asks about scenes described in words; 6000 of them are mixed into stage 2 so it keeps the skill.
described_types=(exist verify mc mc color shape)
# Stage 3: multiple choice x6, the written word x2 (TextVQA), yes/no x2 each so that they are kept.
stage3_types=(color shape count exist exist position relation word word verify verify choose background
              mc mc mc mc mc mc)
stage3_described_types=(mc mc mc exist verify color shape background)
stage5_types=(color shape count exist verify position relation word word choose background mc mc mc mc mc mc mc mc)
stage6_types=(color shape count exist exist verify verify verify verify position position relation relation word choose
              background mc mc mc mc)
stage7_types=(color shape count count exist verify position position position relation relation relation
              verify_word verify_word verify_word verify_relation verify_relation verify_relation mc mc
              mc_position mc_position mc_relation mc_relation mc_word mc_word word choose background)
stage7_described_types=(mc mc mc_position mc_relation mc_word position relation exist verify_relation verify_word
                        color shape)
stage8_described_types=(relation relation relation verify_relation verify_relation position position mc_relation
                        mc_position verify_word exist mc color shape)
stage9_types=(color shape count exist verify position position relation relation relation relation verify_relation
              verify_relation verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation
              mc_relation mc_relation mc_word mc_word word choose background)
stage9_described_types=(relation relation verify_relation mc_relation position mc_position mc mc verify_word exist
                        color shape)
stage11_described_types=(verify_word verify_word verify_word verify_relation verify_relation verify_relation
                         mc_relation mc_relation mc_position relation position exist mc color shape)
stage12_types=(color shape count exist verify position relation relation relation verify_relation verify_relation
               verify_relation verify_relation verify_word verify_word verify_word mc mc mc_position mc_position
               mc_relation mc_relation mc_relation mc_relation mc_word word choose background)
stage12_described_types=(verify_word verify_word verify_relation verify_relation mc_relation mc_relation relation
                         position mc exist color shape)
stage13_described_types=(mc_relation mc_relation mc_relation mc_relation relation relation mc_position mc_position
                         verify_relation verify_word mc_word mc exist color shape)
stage14_types=(color color shape count exist verify position relation relation relation relation verify_relation
               verify_relation verify_word verify_word mc mc mc_position mc_position mc_relation mc_relation mc_relation
               mc_relation mc_relation mc_relation mc_word word choose background)
stage14_described_types=(mc_relation mc_relation mc_relation relation mc_position verify_relation verify_word mc exist
                         color shape)
stage15_described_types=(mc_relation mc_relation mc_relation mc_relation mc_relation relation relation relation
                         verify_relation verify_relation mc_position position verify_word mc_word mc exist color shape)
llm_sizes=(--hidden-size 128 --intermediate-size 344 --num-attention-heads 4 --num-key-value-heads 4 --num-layers 4)
mkdir -p "$work"

[ -f "$data/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --skip-eval --out "$data" --n-images "$n_images" --turns 8 14 \
        --types "${types[@]}" --stages 0 1 2 --n-described 220000 --described-turns 4 4 \
        --described-types "${described_types[@]}" --described-in-finetune 6000
[ -f "$work/tokenizer.model" ] ||
    "$py" scripts/tiny/make_tokenizer.py --out "$work/tokenizer.model" --vocab-size 1024
[ -f "$work/local/vision_tower/model.safetensors" ] ||
    "$py" scripts/tiny/pretrain_vision_tower.py --out "$work/local" --targets local --steps "$vision_local_steps"
[ -f "$work/vision_tower/model.safetensors" ] ||
    "$py" scripts/tiny/pretrain_vision_tower.py --out "$work" --init "$work/local/vision_tower" \
        --targets local background word cell_content --steps "$vision_context_steps"
[ -f "$work/base/model.safetensors" ] ||
    "$py" -m llava.model.tiny_checkpoint "$work/base" --layout base "${llm_sizes[@]}" \
        --tokenizer-model "$work/tokenizer.model"

run=(--use_cpu True --report_to none --dataloader_num_workers 1 --seed 0 --weight_decay 0.0 --logging_steps 10)
[ -f "$work/stage0/model.safetensors" ] ||
    "$py" -m llava.train.train --model_name_or_path "$work/base" --version v1 --train_on_prompt True \
        --data_path "$data/llava_tiny_described.json" --output_dir "$work/stage0" --max_steps "$stage0_steps" \
        --per_device_train_batch_size 64 --model_max_length 512 --learning_rate 1e-3 --warmup_steps 50 \
        --lr_scheduler_type warmup_stable_decay \
        --lr_scheduler_kwargs "{\"num_decay_steps\": $stage0_decay_steps, \"min_lr_ratio\": 0.1}" \
        --save_strategy steps --save_steps 250 --save_total_limit 1 "${run[@]}"
common=(--vision_tower "$work/vision_tower" --mm_vision_select_layer -2 --mm_projector_type mlp2x_gelu
        --mm_use_im_start_end False --mm_use_im_patch_token False --image_aspect_ratio pad
        --image_folder "$data" --per_device_train_batch_size 16 --lr_scheduler_type cosine --warmup_ratio 0.03
        --model_max_length 1536 "${run[@]}")
[ -f "$work/stage1/model.safetensors" ] ||
    "$py" -m llava.train.train --model_name_or_path "$work/stage0" --version plain \
        --data_path "$data/llava_tiny_pretrain.json" --output_dir "$work/stage1" --max_steps "$stage1_steps" \
        --learning_rate 3e-4 --mm_projector_lr 2e-3 --save_strategy no "${common[@]}"
# Stages 2-6: question answering with the v1 template, prompt labelled, modality-grouped batches.
train_qa() {  # FROM OUT DATA_JSON STEPS LR [more arguments; a repeated flag's last value wins]
    "$py" -m llava.train.train --model_name_or_path "$1" --output_dir "$2" --data_path "$3" --max_steps "$4" \
        --learning_rate "$5" --version v1 --train_on_prompt True --group_by_modality_length True "${@:6}"
}
resumable=(--save_strategy steps --save_steps 250 --save_total_limit 1)
# Stages 3, 5 and 6: fresh images with 8-14 questions each, multiple choice with 2-4 options, described
# scenes with 3-6 questions mixed in.
mc_data=(--skip-eval --turns 8 14 --stages 2 --mc-options 2 4 --described-turns 3 6)
[ -f "$work/stage2/model.safetensors" ] ||
    train_qa "$work/stage1" "$work/stage2" "$data/llava_tiny_finetune.json" "$stage2_steps" 1e-3 \
        "${resumable[@]}" "${common[@]}"
[ -f "$data3/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --out "$data3" --seed 1 --n-images 6000 --types "${stage3_types[@]}" \
        --described-in-finetune 9000 --described-types "${stage3_described_types[@]}" "${mc_data[@]}"
[ -f "$work/stage3/model.safetensors" ] ||
    train_qa "$work/stage2" "$work/stage3" "$data3/llava_tiny_finetune.json" "$stage3_steps" 5e-4 \
        "${resumable[@]}" "${common[@]}" --image_folder "$data3"
[ -f "$data4/llava_tiny_described.json" ] ||
    "$py" scripts/tiny/generate_data.py --skip-eval --out "$data4" --seed 3 --stages 0 --n-described 40000 \
        --described-types mc mc mc mc mc mc exist verify --described-turns 1 4 --mc-options 2 4
[ -f "$work/stage4/model.safetensors" ] ||
    train_qa "$work/stage3" "$work/stage4" "$data4/llava_tiny_described.json" "$stage4_steps" 5e-4 \
        "${resumable[@]}" "${common[@]}" --per_device_train_batch_size 32
[ -f "$data5/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --out "$data5" --seed 2 --n-images 6000 --types "${stage5_types[@]}" \
        --text-only-fraction 0.3 --described-in-finetune 9000 \
        --described-types mc mc mc mc exist verify color shape background "${mc_data[@]}"
[ -f "$work/stage5/model.safetensors" ] ||
    train_qa "$work/stage4" "$work/stage5" "$data5/llava_tiny_finetune.json" "$stage5_steps" 5e-4 \
        "${resumable[@]}" "${common[@]}" --image_folder "$data5"
[ -f "$data6/llava_tiny_finetune.json" ] ||
    "$py" scripts/tiny/generate_data.py --out "$data6" --seed 4 --n-images 3000 --types "${stage6_types[@]}" \
        --text-only-fraction 0.3 --described-in-finetune 3000 \
        --described-types mc mc exist verify verify color shape background "${mc_data[@]}"
[ -f "$work/stage6/model.safetensors" ] ||
    train_qa "$work/stage5" "$work/stage6" "$data6/llava_tiny_finetune.json" "$stage6_steps" 2e-4 \
        --save_strategy no "${common[@]}" --image_folder "$data6"
# Stages 7-18, each from the stage before at lr 5e-4. An image stage: 6000 fresh images, 15% text-only
# questions, N described scenes mixed in. A text stage: described scenes only, 4-8 questions, batch 32.
image_stage() {  # STAGE SEED N_DESCRIBED TYPES_ARRAY DESCRIBED_TYPES_ARRAY (array names)
    local stage=$1 seed=$2 n_described=$3 steps="stage$1_steps" stage_data="$data/stage$1"
    local -n image_types=$4 mixed_types=$5
    [ -f "$stage_data/llava_tiny_finetune.json" ] ||
        "$py" scripts/tiny/generate_data.py --out "$stage_data" --seed "$seed" --n-images 6000 \
            --types "${image_types[@]}" --text-only-fraction 0.15 --described-in-finetune "$n_described" \
            --described-types "${mixed_types[@]}" "${mc_data[@]}"
    [ -f "$work/stage$stage/model.safetensors" ] ||
        train_qa "$work/stage$((stage - 1))" "$work/stage$stage" "$stage_data/llava_tiny_finetune.json" \
            "${!steps}" 5e-4 "${resumable[@]}" "${common[@]}" --image_folder "$stage_data"
}
text_stage() {  # STAGE SEED N_DESCRIBED DESCRIBED_TYPES_ARRAY (array name)
    local stage=$1 seed=$2 n_described=$3 steps="stage$1_steps" stage_data="$data/stage$1"
    local -n text_types=$4
    [ -f "$stage_data/llava_tiny_described.json" ] ||
        "$py" scripts/tiny/generate_data.py --skip-eval --out "$stage_data" --seed "$seed" --stages 0 \
            --n-described "$n_described" --described-types "${text_types[@]}" --described-turns 4 8 --mc-options 2 4
    [ -f "$work/stage$stage/model.safetensors" ] ||
        train_qa "$work/stage$((stage - 1))" "$work/stage$stage" "$stage_data/llava_tiny_described.json" \
            "${!steps}" 5e-4 "${resumable[@]}" "${common[@]}" --per_device_train_batch_size 32
}
image_stage 7 5 4000 stage7_types stage7_described_types
text_stage 8 6 40000 stage8_described_types
image_stage 9 7 6000 stage9_types stage9_described_types
image_stage 10 8 6000 stage9_types stage9_described_types  # stage 9's mix on fresh images
text_stage 11 9 32000 stage11_described_types
image_stage 12 10 6000 stage12_types stage12_described_types
text_stage 13 11 40000 stage13_described_types
image_stage 14 12 6000 stage14_types stage14_described_types
text_stage 15 13 48000 stage15_described_types
image_stage 16 14 6000 stage14_types stage14_described_types  # stage 14's mix on fresh images
image_stage 17 15 6000 stage14_types stage14_described_types
image_stage 18 16 6000 stage14_types stage14_described_types
"$py" scripts/tiny/package_checkpoint.py --trained "$work/stage18" --vision-tower "$work/vision_tower" --out "$out" \
    --tokenizer-model "$work/tokenizer.model"
