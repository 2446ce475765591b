"""Projectors from vision features to the language model's width, named as in LLaVA's configs."""

from __future__ import annotations

import re

from torch import nn

_MLP_GELU = re.compile(r"^mlp(\d+)x_gelu$")


def build_vision_projector(config) -> nn.Module:
    """`linear`, `mlp{N}x_gelu` (N Linear layers with GELU between) or `identity`.

    The module layout fixes the weight names (`mm_projector.0.weight`, `mm_projector.2.weight`, ...), so it
    must stay exactly as in LLaVA for original checkpoints to load.
    """
    projector_type = getattr(config, "mm_projector_type", "linear")
    if projector_type == "linear":
        return nn.Linear(config.mm_hidden_size, config.hidden_size)
    match = _MLP_GELU.match(projector_type)
    if match:
        depth = int(match.group(1))
        modules: list[nn.Module] = [nn.Linear(config.mm_hidden_size, config.hidden_size)]
        for _ in range(1, depth):
            modules += [nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)]
        return nn.Sequential(*modules)
    if projector_type == "identity":
        return nn.Identity()
    raise ValueError(f"unknown mm_projector_type {projector_type!r}: expected 'linear', 'mlp<N>x_gelu' or 'identity'")
