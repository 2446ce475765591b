"""VisionZip (Yang et al., "VisionZip: Longer is Better but Not Necessary in Vision Language Models",
CVPR 2025, arXiv 2412.04467), as a reducer before the language model.

At the vision tower's select layer, as the official code does:
1. dominant tokens: the [CLS] token and the d - 1 patches the [CLS] query attends to most in the layer
   that outputs the select features (attention summed over the heads), in their order in the image;
2. contextual tokens: of the remaining patches, c targets spaced evenly (every floor(r / c)-th of the r
   left), and every other remaining patch merged into the target its key (that layer's keys averaged over
   the heads, L2-normalised) is most similar to; a contextual token is the target plus the mean of the
   patches merged into it;
3. the d + c tokens, in tower space, go through the projector.
d + c is the count DART keeps with the same settings, split as the release's 54 + 10, 108 + 20 and
162 + 30 split 64, 128 and 192: d = round(27 / 32 of it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningInput, PruningMethod, ReducedImage, VisionInputs, register_method


def split_budget(count: int) -> tuple[int, int]:
    """(dominant, contextual) token counts; the dominant ones include [CLS]."""
    dominant = max(1, min(count, round(count * 27 / 32)))
    return dominant, count - dominant


def dominant_patches(cls_attention: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` patches with the largest [CLS] attention, ascending."""
    return cls_attention.topk(min(count, cls_attention.numel())).indices.sort().values


def contextual_tokens(features: torch.Tensor, keys: torch.Tensor, count: int) -> torch.Tensor:
    """`count` tokens from the (r, C) remaining patch `features` and their (r, d) `keys`: evenly spaced
    targets, each plus the mean of the patches whose key is most similar to its key (fewer if r < count)."""
    remaining = features.shape[0]
    if count <= 0 or remaining == 0:
        return features[:0]
    step = max(1, remaining // count)
    targets = torch.arange(0, remaining, step, device=features.device)[:count]
    is_target = torch.zeros(remaining, dtype=torch.bool, device=features.device)
    is_target[targets] = True
    normed = F.normalize(keys.float(), dim=-1)
    assignment = (normed[~is_target] @ normed[targets].T).argmax(dim=1)
    merged = features[~is_target].float()
    sums = torch.zeros(targets.numel(), features.shape[1], device=features.device).index_add_(0, assignment, merged)
    counts = torch.bincount(assignment, minlength=targets.numel()).clamp(min=1).unsqueeze(1)
    return (features[targets].float() + sums / counts).to(features.dtype)


def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    if inputs.tower_features is None or inputs.grid is None:
        raise ValueError("VisionZip needs each image as one crop of the vision tower (LLaVA-1.5's 'pad' or square "
                         "images); this image's tokens are several crops merged (anyres)")
    patches = inputs.tower_features
    count = dart_kept_count(patches.shape[0], cfg, llava_next=inputs.llava_next)
    if count >= patches.shape[0]:
        return ReducedImage(inputs.features, kept_patches=torch.arange(patches.shape[0], device=patches.device))
    dominant, contextual = split_budget(count)
    top = dominant_patches(inputs.cls_attention, dominant - 1)
    rest = torch.ones(patches.shape[0], dtype=torch.bool, device=patches.device)
    rest[top] = False
    tokens = torch.cat([
        inputs.tower_cls.unsqueeze(0),
        patches[top],
        contextual_tokens(patches[rest], inputs.tower_keys[1:][rest], contextual),
    ])
    return ReducedImage(inputs.project(tokens))


METHOD = register_method(PruningMethod(
    name="visionzip",
    reduce=reduce,
    one_crop=True,
    inputs=frozenset({PruningInput.VISION_CLS_ATTENTION}),
    summary="before the language model, [CLS]-attended dominant patches plus merged contextual tokens "
            "(arXiv 2412.04467)",
))
