"""Reading weight files: safetensors first (no pickle), LLaVA's torch `.bin` files as a fallback."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

import torch
from safetensors.torch import load_file

logger = logging.getLogger(__name__)

PROJECTOR_PREFIX = "mm_projector."


def load_state_file(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` file, or a `.bin` file read with `weights_only=True`."""
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def find_weight_file(directory: str, stem: str) -> str | None:
    """`<stem>.safetensors` if present, else `<stem>.bin`, else None."""
    for suffix in (".safetensors", ".bin"):
        candidate = os.path.join(directory, stem + suffix)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_projector_state(path: str) -> dict[str, torch.Tensor]:
    """The projector's own state dict from a stage-1 file (`mm_projector.bin` / `.safetensors`) or its directory.

    Keys like `model.mm_projector.0.weight` become `0.weight`, ready for `mm_projector.load_state_dict`.
    """
    if os.path.isdir(path):
        found = find_weight_file(path, "mm_projector")
        if found is None:
            raise FileNotFoundError(f"no mm_projector.safetensors or mm_projector.bin in {path}")
        path = found
    state = load_state_file(path)
    projector = {k.split(PROJECTOR_PREFIX, 1)[1]: v for k, v in state.items() if PROJECTOR_PREFIX in k}
    if not projector:
        raise ValueError(f"{path} holds no '{PROJECTOR_PREFIX}*' weights (keys: {sorted(state)[:5]}...)")
    return projector


# Where a checkpoint keeps a copy of a local vision tower; `mm_vision_tower` then names it relative to the
# checkpoint, which the loader resolves (llava.model.builder.resolve_vision_tower).
VISION_TOWER_DIR = "vision_tower"


@contextlib.contextmanager
def portable_vision_tower(config, output_dir: str):
    """While saving into `output_dir`: a vision tower named by a local path (relative to the training run's
    working directory, so the checkpoint would load only from there) is copied into the checkpoint and named
    relative to it; a hub id stays as it is."""
    tower = getattr(config, "mm_vision_tower", None)
    if not tower or not os.path.isdir(tower):
        yield
        return
    target = os.path.join(output_dir, VISION_TOWER_DIR)
    if os.path.abspath(tower) != os.path.abspath(target):
        shutil.copytree(tower, target, dirs_exist_ok=True)
        logger.info("copied the vision tower %s into %s (mm_vision_tower: %r)", tower, target, VISION_TOWER_DIR)
    config.mm_vision_tower = VISION_TOWER_DIR
    try:
        yield
    finally:
        config.mm_vision_tower = tower


def save_llava_checkpoint(model, tokenizer, output_dir: str) -> None:
    """Save in LLaVA's layout: language model + projector weights; the vision tower is named by the config
    (`mm_vision_tower`) and loaded from there, so its weights are left out (a local tower is copied in, see
    `portable_vision_tower`), unless it was trained (`unfreeze_mm_vision_tower`): then they are saved under
    `model.vision_tower.vision_tower.*`, as in the released LLaVA-1.6 checkpoints."""
    keep_tower = bool(getattr(model.config, "unfreeze_mm_vision_tower", False))
    state = {k: v for k, v in model.state_dict().items() if keep_tower or "vision_tower" not in k}
    with portable_vision_tower(model.config, output_dir):
        model.save_pretrained(output_dir, state_dict=state)
    tokenizer.save_pretrained(output_dir)
