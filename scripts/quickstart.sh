#!/usr/bin/env bash
# Sets up .venv and runs the main job on the embedded default: one question about one image, answered
# with and without DART. Until the trained tiny model lands, the default is a seeded random-init
# checkpoint built here (so its answers are noise; the pruning and the timing are real).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
py=.venv/bin/python
ckpt="${CKPT:-checkpoints/llava-v1.5-tiny-random}"
if [ ! -f "$ckpt/config.json" ]; then
    "$py" -m llava.model.tiny_checkpoint "$ckpt"
fi
image="${IMAGE:-checkpoints/sample.png}"
if [ ! -f "$image" ]; then
    "$py" -c "
from PIL import Image, ImageDraw
img = Image.new('RGB', (336, 336), (235, 235, 235))
ImageDraw.Draw(img).ellipse((120, 120, 200, 200), fill=(200, 30, 30))
img.save('$image')"
fi
for flags in "" "--sparse --pruned_layer 2 --max_num_trunction 128"; do
    # shellcheck disable=SC2086
    "$py" -m llava.eval.run_llava --model-path "$ckpt" --image-file "$image" --conv-mode vicuna_v1 \
        --query "What colour is the circle?" --temperature 0 --max_new_tokens 16 $flags
done
