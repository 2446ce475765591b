#!/usr/bin/env bash
# Stage 2 with LoRA (r=128, alpha=256; projector lr 2e-5), as LLaVA-1.5's finetune_lora.sh: finetune.sh's
# recipe with the LoRA flags (later flags win). Load the result with:
#   --model-path ./checkpoints/llava-v1.5-7b-lora --model-base lmsys/vicuna-7b-v1.5
set -euo pipefail
exec bash "$(dirname "$0")/finetune.sh" \
    --lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5 \
    --learning_rate 2e-4 \
    --output_dir ./checkpoints/llava-v1.5-7b-lora \
    "$@"
