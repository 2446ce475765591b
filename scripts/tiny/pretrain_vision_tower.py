"""Pretrain the tiny CLIP vision tower on synthetic scenes, then write it in the openai layout.

    python scripts/tiny/pretrain_vision_tower.py --out checkpoints/tiny-work [--steps 1000] [--targets local scene]

Real LLaVA freezes a CLIP tower pretrained on web images; a random tower gives the language model nothing
to learn from. Here the tower learns targets computed from the scene's ground truth, read by
linear heads from every patch token of the layer LLaVA reads (`mm_vision_select_layer = -2`), so the
features the projector sees are exactly the trained ones. Two groups of targets:

- `local`: what the patch itself shows: the colour, the kind and the (colour, kind) object covering it,
  the word whose ink covers it, and its cell of the 3x3 grid; plus the scene's word from the CLS token.
- `scene`: context, as a web-trained CLIP's patch tokens carry it: what the patch's grid cell holds (an
  object or a word), and a summary of the whole scene (background, word, number of shapes, shapes of each
  colour and of each kind, which objects are present, what each cell holds).

`scene` puts what each question needs into every token, leaving the language model only the question and
the options to read, but then pruning cannot matter. With `local` alone, answers depend on the patches
that show them: a language model first trained on text with `--train_on_prompt` answers existence
questions from them (docs/tiny_model_history.md), not yet the word (named only on its own ink patches)
or the background colour (named by no local target). Single targets can be added to a group
(`--targets local background word`).
Scenes are drawn fresh for every batch. `--init` continues from a written tower (e.g. `local`, then both).
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
from transformers import CLIPVisionModel

from llava.data.scenes import BACKGROUNDS, COLORS, KINDS, WORDS, Scene, sample_scene
from llava.data.shapes import render
from llava.model.tiny_checkpoint import CLIP_MEAN, CLIP_STD, TinySpec, make_vision_model, write_vision_tower

logger = logging.getLogger("pretrain_vision_tower")
PATCH, GRID = 14, 24
COVERED = 0.3  # fraction of a patch's pixels that makes it "covered" by a shape or by text
CELLS = (np.arange(GRID)[:, None] // (GRID // 3)) * 3 + np.arange(GRID)[None, :] // (GRID // 3)  # (GRID, GRID)
N_OBJECTS = len(COLORS) * len(KINDS)
MAX_SHAPES = 4
# What a grid cell holds: 0 nothing, 1..N_OBJECTS a (colour, kind) object, then one class per word.
N_CELL_CLASSES = 1 + N_OBJECTS + len(WORDS)

LOCAL_CLASSES = {  # per-patch target -> number of classes
    "colour": 1 + len(COLORS), "kind": 1 + len(KINDS), "object": 1 + N_OBJECTS, "ink": 1 + len(WORDS), "cell": 9,
}
SCENE_CLASSES = {  # per-patch target -> (number of predictions, classes each)
    "cell_content": (1, N_CELL_CLASSES),
    "background": (1, len(BACKGROUNDS)),
    "word": (1, 1 + len(WORDS)),
    "n_shapes": (1, MAX_SHAPES + 1),
    "colour_counts": (len(COLORS), MAX_SHAPES + 1),
    "kind_counts": (len(KINDS), MAX_SHAPES + 1),
    "present": (N_OBJECTS, 2),
    "layout": (9, N_CELL_CLASSES),
}
TARGET_GROUPS = {"local": (*LOCAL_CLASSES, "cls_word"), "scene": tuple(SCENE_CLASSES)}
ALL_TARGETS = tuple(n for group in TARGET_GROUPS.values() for n in group)


def target_names(choices: list[str]) -> tuple[str, ...]:
    """Group names expanded to their targets, single target names kept; first occurrence wins the order."""
    expanded = (n for choice in choices for n in TARGET_GROUPS.get(choice, (choice,)))
    return tuple(dict.fromkeys(expanded))


# One value per image (predicted from every patch), unlike the per-patch grids and the CLS word.
SUMMARIES = tuple(n for n in SCENE_CLASSES if n != "cell_content")


def coverage(scene: Scene) -> np.ndarray:
    """(GRID, GRID) fraction of each patch that differs from the plain background."""
    pixels = np.asarray(render(scene), dtype=np.int16)
    background = np.array(BACKGROUNDS[scene.background], dtype=np.int16)
    mask = np.abs(pixels - background).sum(-1) > 30
    return mask.reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3))


def object_class(color: str, kind: str) -> int:
    return 1 + list(COLORS).index(color) * len(KINDS) + KINDS.index(kind)


def word_class(scene: Scene) -> int:
    """0 without a word, else 1.. WORDS."""
    return 0 if scene.word is None else 1 + WORDS.index(scene.word.text)


def local_targets(scene: Scene) -> dict[str, np.ndarray]:
    """(GRID, GRID) classes per patch: colour (0 none, 1.. COLORS), kind (0 none, 1.. KINDS), object (0 none,
    `object_class`), word of the ink (0 none, 1.. WORDS), grid cell (0..8). Each object is rendered alone
    to get its own coverage."""
    colour = np.zeros((GRID, GRID), dtype=np.int64)
    kind = np.zeros((GRID, GRID), dtype=np.int64)
    obj = np.zeros((GRID, GRID), dtype=np.int64)
    for shape in scene.shapes:
        covered = coverage(Scene(scene.background, (shape,), None)) >= COVERED
        colour[covered] = 1 + list(COLORS).index(shape.color)
        kind[covered] = 1 + KINDS.index(shape.kind)
        obj[covered] = object_class(shape.color, shape.kind)
    ink = np.zeros((GRID, GRID), dtype=np.int64)
    if scene.word is not None:
        ink[coverage(Scene(scene.background, (), scene.word)) >= COVERED] = word_class(scene)
    return {"colour": colour, "kind": kind, "object": obj, "ink": ink, "cell": CELLS.copy(),
            "cls_word": np.array([word_class(scene)])}


def scene_targets(scene: Scene) -> dict[str, np.ndarray]:
    """The scene summary: each value has SCENE_CLASSES[name][0] entries, except `cell_content`, which is the
    (GRID, GRID) class of what each patch's grid cell holds (0 nothing, `object_class`, then the words)."""
    layout = np.zeros(9, dtype=np.int64)
    present = np.zeros(N_OBJECTS, dtype=np.int64)
    colour_counts = np.zeros(len(COLORS), dtype=np.int64)
    kind_counts = np.zeros(len(KINDS), dtype=np.int64)
    for shape in scene.shapes:
        layout[shape.cell] = object_class(shape.color, shape.kind)
        present[layout[shape.cell] - 1] = 1
        colour_counts[list(COLORS).index(shape.color)] += 1
        kind_counts[KINDS.index(shape.kind)] += 1
    if scene.word is not None:
        layout[scene.word.cell] = N_OBJECTS + word_class(scene)
    return {
        "cell_content": layout[CELLS],
        "background": np.array([list(BACKGROUNDS).index(scene.background)]),
        "word": np.array([word_class(scene)]),
        "n_shapes": np.array([len(scene.shapes)]),
        "colour_counts": colour_counts,
        "kind_counts": kind_counts,
        "present": present,
        "layout": layout,
    }


def batch(rng: random.Random, size: int, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    scenes = [sample_scene(rng, split="train") for _ in range(size)]
    images = np.stack([np.asarray(render(s), dtype=np.float32) / 255.0 for s in scenes])
    # The CLIP processor on a 336 x 336 image only rescales and normalises (resize and crop are no-ops).
    pixels = (images - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    targets = []
    for s in scenes:
        t = local_targets(s) if set(names) & set(TARGET_GROUPS["local"]) else {}  # renders: skip if unused
        targets.append({**t, **scene_targets(s)})
    out = {"pixel_values": torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()}
    for name in names:
        out[name] = torch.from_numpy(np.stack([t[name] for t in targets]).reshape(size, -1))
    return out


class Heads(nn.Module):
    """Linear heads on every patch token: local targets, the patch's cell content, and the scene summary
    (predicted from each patch, so that each one carries it); `cls_word` reads the CLS token."""

    def __init__(self, width: int, names: tuple[str, ...]):
        super().__init__()
        sizes = {**LOCAL_CLASSES, "cls_word": 1 + len(WORDS), **{n: k * c for n, (k, c) in SCENE_CLASSES.items()}}
        self.heads = nn.ModuleDict({name: nn.Linear(width, sizes[name]) for name in names})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features: (B, 1 + patches, width) from the selected layer; the CLS token is not a LLaVA feature."""
        patches, cls = features[:, 1:], features[:, :1]
        return {name: head(cls if name == "cls_word" else patches) for name, head in self.heads.items()}


def losses_and_accuracy(logits: dict, targets: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed cross-entropy. Accuracy: local targets on the covered patches only (background is the easy
    majority); summary targets over all (patch, entry) predictions."""
    total, accuracy = 0.0, {}
    for name, out in logits.items():
        target = targets[name]
        if name not in SUMMARIES:
            flat, labels = out.reshape(-1, out.shape[-1]), target.reshape(-1)
            correct = out.argmax(-1) == target
            if name not in ("cell", "cell_content", "cls_word"):
                correct = correct[target > 0]
        else:  # one summary per image, predicted from every patch: (B, P, entries, classes)
            entries, classes = SCENE_CLASSES[name]
            out = out.reshape(*out.shape[:2], entries, classes)
            labels = target[:, None, :].expand(-1, out.shape[1], -1)
            flat, labels = out.reshape(-1, classes), labels.reshape(-1)
            correct = out.argmax(-1) == target[:, None, :]
        total = total + F.cross_entropy(flat, labels)
        accuracy[name] = float(correct.float().mean()) if correct.numel() else 1.0
    return total, accuracy


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="writes OUT/vision_tower/")
    parser.add_argument("--init", help="a vision_tower/ directory to continue from (default: random init)")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGET_GROUPS) + sorted(ALL_TARGETS),
                        default=["local", "scene"], help="groups and/or single targets, e.g. local background word")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select-layer", type=int, default=-2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    spec = TinySpec(seed=args.seed, vision_hidden_size=args.width, vision_layers=args.layers, vision_heads=args.heads)
    torch.manual_seed(args.seed)
    if args.init:
        tower = CLIPVisionModel.from_pretrained(args.init, dtype=torch.float32)
        if tower.config.hidden_size != args.width or tower.config.num_hidden_layers != args.layers:
            parser.error(f"--init {args.init} has width {tower.config.hidden_size} and "
                         f"{tower.config.num_hidden_layers} layers; --width/--layers say {args.width}/{args.layers}")
    else:
        tower = make_vision_model(spec)
    tower.train()
    names = target_names(args.targets)
    heads = Heads(args.width, names)
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    # A continuation draws other scenes than the run it continues.
    rng = random.Random(f"{args.seed}/continued" if args.init else args.seed)
    start = time.time()
    for step in range(1, args.steps + 1):
        data = batch(rng, args.batch_size, names)
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
    print(f"vision tower pretrained for {args.steps} steps on {'+'.join(args.targets)} targets: {path.parent} "
          f"(last batch: {', '.join(f'{k} {v:.2f}' for k, v in accuracy.items())}; {time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
