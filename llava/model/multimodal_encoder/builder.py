"""Builds the vision tower named by the config (`mm_vision_tower`)."""

from __future__ import annotations

import os

from llava.model.multimodal_encoder.clip_encoder import CLIPVisionTower


def build_vision_tower(vision_tower_cfg, **kwargs) -> CLIPVisionTower:
    name = getattr(vision_tower_cfg, "mm_vision_tower", getattr(vision_tower_cfg, "vision_tower", None))
    if name is None:
        raise ValueError("the config names no vision tower (mm_vision_tower is missing)")
    is_local = os.path.exists(name)
    if is_local or name.startswith(("openai", "laion")) or "ShareGPT4V" in name or "clip" in name.lower():
        return CLIPVisionTower(name, args=vision_tower_cfg, **kwargs)
    raise ValueError(f"unknown vision tower {name!r}: expected a CLIP model id or a local CLIP directory")
