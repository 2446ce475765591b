"""VisPruner (Zhang et al., "Beyond Text-Visual Attention: Exploiting Visual Cues for Effective Token Pruning in
VLMs", ICCV 2025, arXiv 2412.01818), as a reducer before the language model.

As the official code does (`LlavaMetaForCausalLM.encode_images` in its `llava/model/llava_arch.py`), for T tokens
and the important ratio r (default 0.5):
1. important tokens: the int(T * r) patches first in the [CLS] attention order: the [CLS] row of the attention
   weights of the layer that outputs the select features, as eager attention returns them (in the tower's
   dtype), averaged over the heads, sorted descending;
2. diverse tokens: the rest, in that order, de-duplicated in rounds until T - int(T * r) are left: a round splits
   them by position in the current order into the even ones (a) and the odd ones (b), scores each token of a by
   its largest cosine similarity (of the tower's select-layer features) to a token of b, drops the
   min(8, remaining - wanted) highest-scoring tokens of a, and orders what is left as the rest of a (by score,
   descending) followed by b. The order therefore decides which tokens meet in a round;
3. the T kept patches, in their order in the image, through the projector (LLaVA projects all and keeps these).

T is the count DART keeps with the same settings (`dart_kept_count`). The sorts keep equal values in index order
(stable), the order CUDA's sort gives these sizes in the official runs [UNVERIFIED beyond the sizes tested].
Where the official code fails, we go on: when a holds fewer than the tokens to drop (fewer than about 16 left),
all of a is dropped; an odd count left makes a one longer than b (the official indexing raises).
Each image must be one crop of the tower (LLaVA-1.5); the official LLaVA-1.6 code keeps T per crop, which the
shared budget (one count per image) does not express, so anyres images are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from llava.model.pruning.config import MethodSettings, PruningConfigError, PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningInput, PruningMethod, ReducedImage, VisionInputs, register_method

ROUND_DROP = 8  # the official code's most tokens dropped per round


@dataclasses.dataclass(frozen=True)
class VisPrunerSettings(MethodSettings):
    """vispruner_important_ratio: the fraction r of the kept tokens chosen by [CLS] attention (int(T * r)); the
    official default 0.5."""

    vispruner_important_ratio: float = 0.5

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> VisPrunerSettings:
        ratio = raw.get("vispruner_important_ratio", cls.vispruner_important_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise PruningConfigError(
                f"DART_config['vispruner_important_ratio'] must be a number in [0, 1], got {ratio!r}")
        return cls(float(ratio))


def important_ratio(cfg: PruningSettings) -> float:
    own = cfg.method_settings if isinstance(cfg.method_settings, VisPrunerSettings) else VisPrunerSettings()
    return own.vispruner_important_ratio


def select_tokens(head_attention: torch.Tensor, features: torch.Tensor, count: int, ratio: float) -> torch.Tensor:
    """The indices VisPruner keeps of n patches: important ones first (attention order), then the diverse ones
    in the order the last round left them. head_attention: (heads, n); features: (n, C) at the select layer."""
    important = int(count * ratio)
    diverse = count - important
    order = head_attention.mean(dim=0).argsort(descending=True, stable=True)
    residual = order[important:]
    # In the features' own dtype, as the official code normalises and multiplies them.
    normed = features / features.norm(dim=-1, keepdim=True)
    while diverse > 0:
        remaining = residual.numel()
        drop = min(ROUND_DROP, remaining - diverse)
        if drop <= 0:
            break
        tokens = normed[residual]
        a, b = tokens[::2], tokens[1::2]
        scores = (a @ b.T).max(dim=-1).values
        distinct = scores.argsort(descending=True, stable=True)[min(drop, a.shape[0]):]
        residual = torch.cat([residual[::2][distinct], residual[1::2]])
    return torch.cat([order[:important], residual]) if diverse > 0 else order[:important]


def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    if inputs.head_attention is None or inputs.grid is None:
        raise ValueError("VisPruner needs each image as one crop of the vision tower (LLaVA-1.5's 'pad' or square "
                         "images); this image's tokens are several crops merged (anyres)")
    patches = inputs.tower_features
    count = dart_kept_count(patches.shape[0], cfg, llava_next=inputs.llava_next)
    if count >= patches.shape[0]:
        return ReducedImage(inputs.features, kept_patches=torch.arange(patches.shape[0], device=patches.device))
    kept = select_tokens(inputs.head_attention, patches, count, important_ratio(cfg)).sort().values
    return ReducedImage(inputs.features[kept], kept_patches=kept)


METHOD = register_method(PruningMethod(
    name="vispruner",
    reduce=reduce,
    one_crop=True,
    inputs=frozenset({PruningInput.VISION_CLS_ATTENTION}),
    summary="before the language model, [CLS]-attended important patches plus diverse ones by rounds of "
            "similarity de-duplication (arXiv 2412.01818)",
    settings_class=VisPrunerSettings,
))
