"""Random pruning: the baseline DART is compared against. Keeps as many image tokens as DART would."""

from __future__ import annotations

import torch

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.methods import PruningMethod, SpanInputs, register_method


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    """A uniformly random subset of the image tokens (seeded by `cfg.seed`), ascending absolute indices."""
    start, length = inputs.span
    generator = torch.Generator().manual_seed(cfg.seed)
    count = dart_kept_count(length, cfg, llava_next=inputs.llava_next)
    chosen = torch.randperm(length, generator=generator)[:count].to(inputs.text_positions.device) + start
    return chosen.sort().values


METHOD = register_method(PruningMethod(
    name="random",
    select=select,
    inputs=frozenset(),
    summary="as many image tokens as DART keeps, uniformly at random (seeded)",
    check_splice=check_release_hints,
))
