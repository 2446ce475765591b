"""DivPrune (Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models",
CVPR 2025, arXiv 2503.02175), as a reducer before the language model.

Among an image's projected tokens, keep the most diverse subset by greedy max-min selection on the cosine
distance 1 - cos(x_i, x_j), as the official code does: the first token is the one farthest from its nearest
neighbour, every next one the token whose distance to the nearest token already kept is largest. The kept
tokens stay in their order in the image. It keeps as many tokens as DART would with the same settings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningMethod, ReducedImage, VisionInputs, register_method


def max_min_diverse(features: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of `count` rows of `features` (n, D), in the order greedy max-min selection picks them.

    A row already picked is never picked again; the official code could pick one twice only when every
    remaining row duplicates a picked one (distance 0), and then it would add nothing."""
    n = features.shape[0]
    count = min(count, n)
    if count <= 0:
        return torch.empty(0, dtype=torch.long, device=features.device)
    normed = F.normalize(features.float(), dim=-1)
    distance = 1.0 - normed @ normed.T
    if n == 1:
        return torch.zeros(1, dtype=torch.long, device=features.device)
    nearest_other = distance.topk(2, dim=0, largest=False).values[1]  # the smallest is each row's own, ~0
    # Indices stay on the device: no host round trip per pick.
    picked = torch.empty(count, dtype=torch.long, device=features.device)
    picked[0] = nearest_other.argmax()
    to_picked = distance[picked[0]].clone()  # each row's distance to the nearest picked row
    for i in range(1, count):
        to_picked[picked[i - 1]] = float("-inf")
        picked[i] = to_picked.argmax()
        to_picked = torch.minimum(to_picked, distance[picked[i]])
    return picked


def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    features = inputs.features
    count = dart_kept_count(features.shape[0], cfg, llava_next=inputs.llava_next)
    kept = max_min_diverse(features, count).sort().values
    return ReducedImage(features[kept], kept_patches=kept)


METHOD = register_method(PruningMethod(
    name="divprune",
    reduce=reduce,
    summary="before the language model, the most diverse tokens by greedy max-min cosine distance (arXiv 2503.02175)",
))
