"""PyramidDrop (Xing et al., arXiv 2410.17247), as a multi-stage selection function.

The decoder is split into stages; before each stage's first layer the image tokens are ranked by the
attention the last prompt token pays them, computed with that layer's own query and key projections on
its input (as PyramidDrop's reference code does), and the top fraction of the image's original token count
is kept. Every stage ranks only what the stage before kept. The reference's defaults for LLaVA-1.5-7B (32
layers) are layers 8, 16, 24 keeping 0.5, 0.25, 0.125.
"""

from __future__ import annotations

import dataclasses

import torch

from llava.model.pruning.config import DARTConfig, PruningConfigError
from llava.model.pruning.fastv import top_attended
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, register_method

REFERENCE_LAYERS = (8, 16, 24)  # of 32
REFERENCE_RATIOS = (0.5, 0.25, 0.125)


def with_default_stages(cfg: DARTConfig, num_hidden_layers: int) -> DARTConfig:
    """The configured stages, else the reference's layers scaled to the model's depth (distinct, within
    1..N-1) with the configured ratios or the reference's."""
    if cfg.pdrop_layers is not None:
        return cfg
    scaled = tuple(sorted({min(max(1, round(layer * num_hidden_layers / 32)), num_hidden_layers - 1)
                           for layer in REFERENCE_LAYERS}))
    ratios = cfg.pdrop_ratios if cfg.pdrop_ratios is not None else REFERENCE_RATIOS[: len(scaled)]
    if len(ratios) != len(scaled):
        raise PruningConfigError(f"DART_config['pdrop_ratios'] has {len(ratios)} ratios but the default layers of a "
                                 f"{num_hidden_layers}-layer model are {list(scaled)}: give pdrop_layers too")
    return dataclasses.replace(cfg, pdrop_layers=scaled, pdrop_ratios=ratios)


def kept_count(original_length: int, ratio: float) -> int:
    """int(m * ratio), the reference's rounding, at least one token."""
    return max(1, int(original_length * ratio))


def select(inputs: SpanInputs, cfg: DARTConfig) -> torch.Tensor:
    original = inputs.original_length or inputs.span[1]
    return top_attended(inputs.attention, inputs.span, kept_count(original, cfg.pdrop_ratios[inputs.stage]))


METHOD = register_method(PruningMethod(
    name="pdrop",
    select=select,
    inputs=frozenset({PruningInput.PRUNING_LAYER_ATTENTION}),
    summary="several stages, each keeping a fraction of the image by the last prompt token's attention "
            "(arXiv 2410.17247)",
    layers=lambda cfg: cfg.pdrop_layers,
    resolve=with_default_stages,
))
