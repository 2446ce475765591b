"""Spatial average pooling, as a reducer before the language model: the image's patch grid (rows x cols of
projected tokens) is average-pooled to an h x w grid, h = floor(sqrt(budget)) and w = floor(budget / h),
so that h * w <= the budget and the grid keeps roughly the image's shape (132 -> 11 x 12, 64 -> 8 x 8).
The budget is the count DART keeps with the same settings. Windows follow `adaptive_avg_pool2d`'s rule
(they overlap by a row or column when the sizes do not divide). The control that recent token-reduction
benchmarks find hard to beat.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningMethod, ReducedImage, VisionInputs, register_method


def pooled_shape(budget: int, grid: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the pooled grid: h * w <= budget, h <= rows, w <= cols."""
    rows, cols = grid
    height = max(1, min(rows, math.isqrt(max(budget, 1))))
    return height, max(1, min(cols, budget // height))


def average_pool(features: torch.Tensor, grid: tuple[int, int], shape: tuple[int, int]) -> torch.Tensor:
    """(rows * cols, D) row-major patch tokens -> (h * w, D) row-major pooled tokens."""
    rows, cols = grid
    image = features.T.reshape(1, -1, rows, cols)
    pooled = F.adaptive_avg_pool2d(image.float(), shape).to(features.dtype)
    return pooled.reshape(features.shape[1], -1).T


def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    features, grid = inputs.features, inputs.grid
    if grid is None:
        raise ValueError("pooling needs each image as one crop's patch grid (LLaVA-1.5's 'pad' or square images); "
                         "this image's tokens are several crops merged (anyres)")
    budget = dart_kept_count(features.shape[0], cfg, llava_next=inputs.llava_next)
    if budget >= features.shape[0]:
        return ReducedImage(features, kept_patches=torch.arange(features.shape[0], device=features.device))
    return ReducedImage(average_pool(features, grid, pooled_shape(budget, grid)))


METHOD = register_method(PruningMethod(
    name="pooling",
    reduce=reduce,
    one_crop=True,
    summary="before the language model, the patch grid average-pooled to at most the budget",
))
