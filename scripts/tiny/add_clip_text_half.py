"""Give a CLIP tower folder a tiny seeded CLIP text half and CLIP tokenizer, its vision weights untouched.

    python scripts/tiny/add_clip_text_half.py checkpoints/llava-v1.5-tiny/vision_tower [--seed 4]

CDPruner embeds the instruction with the text half of the vision tower's own CLIP checkpoint (as its official code
loads it beside the tower); the embedded default's tower was trained as a vision model alone, so its text half is
random-init (`llava.model.tiny_checkpoint.write_clip_text_half`: width 32, 2 layers, a 202-token BPE vocabulary).
New tiny checkpoints (`llava.model.tiny_checkpoint`, `scripts/tiny/pretrain_vision_tower.py`) get one as they are
written. Running it again writes the same text half (the seed decides it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors.torch import load_file

from llava.model.tiny_checkpoint import write_clip_text_half


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tower", type=Path, help="the tower folder (config.json, model.safetensors)")
    parser.add_argument("--seed", type=int, default=4, help="the text half's torch seed (the tiny checkpoints' seed + 4)")
    args = parser.parse_args(argv)
    before = {k: v for k, v in load_file(str(args.tower / "model.safetensors")).items() if k.startswith("vision_model.")}
    write_clip_text_half(args.tower, seed=args.seed)
    after = load_file(str(args.tower / "model.safetensors"))
    assert all(after[k].equal(v) and after[k].dtype == v.dtype for k, v in before.items()), "vision weights changed"
    print(f"{args.tower}: CLIP text half and tokenizer written; {len(before)} vision tensors unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
