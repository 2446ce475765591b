"""Random pruning: the baseline DART is compared against. Keeps as many image tokens as DART would."""

from __future__ import annotations

import torch

from llava.model.pruning.config import DARTConfig


def dart_kept_count(num_image_tokens: int, cfg: DARTConfig, llava_next: bool = False) -> int:
    """How many image tokens DART keeps when no budget is cut short: pivots + pivots_total * T."""
    pivots = min(cfg.pivot_image_token, num_image_tokens)
    per_pivot = cfg.budget_per_pivot(num_image_tokens, llava_next=llava_next)
    return min(num_image_tokens, pivots + cfg.num_pivots * per_pivot)


def select_image_tokens(
    normed: torch.Tensor,
    keys: torch.Tensor,
    image_span: tuple[int, int],
    cfg: DARTConfig,
    llava_next: bool = False,
) -> torch.Tensor:
    """A uniformly random subset of the image tokens (seeded by `cfg.seed`), ascending absolute indices."""
    start, length = image_span
    generator = torch.Generator().manual_seed(cfg.seed)
    count = dart_kept_count(length, cfg, llava_next=llava_next)
    chosen = torch.randperm(length, generator=generator)[:count].to(normed.device) + start
    return chosen.sort().values
