"""FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2", arXiv 2403.06764), as a selection function.

After decoder layer K-1, keep the image tokens the last prompt token attended to most in layer K-1 (its
attention weights averaged over the heads), as FastV's reference code ranks them; layers K..N-1 run on
the kept tokens. The attention row is computed from layer K-1's queries and keys (`PruningInput`), so FastV
runs under sdpa and flash attention with the eager result. It keeps as many image tokens as DART would with
the same settings, so that the two compare at equal budgets.
"""

from __future__ import annotations

import torch

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, register_method


def top_attended(attention: torch.Tensor, span: tuple[int, int], count: int) -> torch.Tensor:
    """The `count` positions of the span [s, s+m) with the largest attention, ascending."""
    start, length = span
    count = min(count, length)
    return (attention[start : start + length].topk(count).indices + start).sort().values


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    count = dart_kept_count(inputs.span[1], cfg, llava_next=inputs.llava_next)
    return top_attended(inputs.attention, inputs.span, count)


METHOD = register_method(PruningMethod(
    name="fastv",
    select=select,
    inputs=frozenset({PruningInput.PREVIOUS_LAYER_ATTENTION}),
    summary="the image tokens the last prompt token attends to most in layer K-1 (arXiv 2403.06764)",
    check_splice=check_release_hints,
))
