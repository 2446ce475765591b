"""Pretrain the tiny CLIP vision tower on synthetic scenes, then write it in the openai layout.

    python scripts/tiny/pretrain_vision_tower.py --out checkpoints/tiny-work [--steps 1500]

Real LLaVA freezes a CLIP tower pretrained on web images; a random tower gives the language model nothing
to learn from (DESIGN §7). Here the tower learns dense, per-patch targets computed from the scene's
geometry: which colour and which kind of shape covers the patch, whether text ink does, plus the word from
the CLS token. The heads read the layer LLaVA reads (`mm_vision_select_layer = -2`), so the patch
features the projector sees are exactly the trained ones. Scenes are drawn fresh for every batch.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llava.data.scenes import BACKGROUNDS, COLORS, KINDS, WORDS, Scene, sample_scene
from llava.data.shapes import render
from llava.model.tiny_checkpoint import CLIP_MEAN, CLIP_STD, TinySpec, make_vision_model, write_vision_tower

logger = logging.getLogger("pretrain_vision_tower")
PATCH, GRID = 14, 24
COVERED = 0.3  # fraction of a patch's pixels that makes it "covered" by a shape or by text


def coverage(scene: Scene) -> np.ndarray:
    """(GRID, GRID) fraction of each patch that differs from the plain background."""
    pixels = np.asarray(render(scene), dtype=np.int16)
    background = np.array(BACKGROUNDS[scene.background], dtype=np.int16)
    mask = np.abs(pixels - background).sum(-1) > 30
    return mask.reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3))


def patch_targets(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per patch: colour class (0 none, 1.. COLORS), kind class (0 none, 1.. KINDS), text ink (0/1);
    and the word class (0 none, 1.. WORDS). Each object is rendered alone to get its own coverage."""
    colour = np.zeros((GRID, GRID), dtype=np.int64)
    kind = np.zeros((GRID, GRID), dtype=np.int64)
    for shape in scene.shapes:
        covered = coverage(Scene(scene.background, (shape,), None)) >= COVERED
        colour[covered] = 1 + list(COLORS).index(shape.color)
        kind[covered] = 1 + KINDS.index(shape.kind)
    text = np.zeros((GRID, GRID), dtype=np.int64)
    word = 0
    if scene.word is not None:
        text = (coverage(Scene(scene.background, (), scene.word)) >= COVERED).astype(np.int64)
        word = 1 + WORDS.index(scene.word.text)
    return colour, kind, text, word


def batch(rng: random.Random, size: int) -> dict[str, torch.Tensor]:
    scenes = [sample_scene(rng, split="train") for _ in range(size)]
    images = np.stack([np.asarray(render(s), dtype=np.float32) / 255.0 for s in scenes])
    # The CLIP processor on a 336 x 336 image only rescales and normalises (resize and crop are no-ops).
    pixels = (images - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    targets = [patch_targets(s) for s in scenes]
    return {
        "pixel_values": torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
        "colour": torch.from_numpy(np.stack([t[0] for t in targets])).flatten(1),
        "kind": torch.from_numpy(np.stack([t[1] for t in targets])).flatten(1),
        "text": torch.from_numpy(np.stack([t[2] for t in targets])).flatten(1),
        "word": torch.tensor([t[3] for t in targets]),
    }


class Heads(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.colour = nn.Linear(width, 1 + len(COLORS))
        self.kind = nn.Linear(width, 1 + len(KINDS))
        self.text = nn.Linear(width, 2)
        self.word = nn.Linear(width, 1 + len(WORDS))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features: (B, 1 + patches, width) from the selected layer."""
        patches, cls = features[:, 1:], features[:, 0]
        return {"colour": self.colour(patches), "kind": self.kind(patches), "text": self.text(patches), "word": self.word(cls)}


def losses_and_accuracy(logits: dict, targets: dict) -> tuple[torch.Tensor, dict[str, float]]:
    total, accuracy = 0.0, {}
    for name, out in logits.items():
        target = targets[name]
        total = total + F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
        correct = out.argmax(-1) == target
        if name != "word":
            correct = correct[target > 0]  # accuracy on the covered patches: background is the easy majority
        accuracy[name] = float(correct.float().mean()) if correct.numel() else 1.0
    return total, accuracy


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="writes OUT/vision_tower/")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select-layer", type=int, default=-2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    spec = TinySpec(seed=args.seed, vision_hidden_size=args.width, vision_layers=args.layers, vision_heads=args.heads)
    torch.manual_seed(args.seed)
    tower = make_vision_model(spec).train()
    heads = Heads(args.width)
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    rng = random.Random(args.seed)
    start = time.time()
    for step in range(1, args.steps + 1):
        data = batch(rng, args.batch_size)
        hidden = tower(data["pixel_values"], output_hidden_states=True).hidden_states[args.select_layer]
        loss, accuracy = losses_and_accuracy(heads(hidden), data)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps:
            logger.info("step %d/%d loss %.3f acc %s (%.0fs)", step, args.steps, loss.item(),
                        " ".join(f"{k}={v:.2f}" for k, v in accuracy.items()), time.time() - start)
    path = write_vision_tower(Path(args.out), spec, model=tower.eval())
    print(f"vision tower pretrained for {args.steps} steps: {path.parent} "
          f"(last batch: {', '.join(f'{k} {v:.2f}' for k, v in accuracy.items())}; {time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
