"""SparseVLM (Zhang et al., "SparseVLM: Visual Token Sparsification for Efficient Vision-Language Model
Inference", ICML 2025, arXiv 2410.04417), as a multi-stage selection function.

What the official code (github.com/Gumpest/SparseVLMs, `llava/model/language_model/modelling_sparse_llama.py`,
`LlamaDynamicvitModel.forward`, and `score.py`, version "1_0", the paper's) does for LLaVA-1.5, and what is kept:

1. Text raters, once per prompt, from the language model's input embeddings: with V the image's embeddings and
   T those of the text after it, `softmax(V @ T^T, over the text).mean(over the image)` scores each text token;
   the raters are the text tokens scoring above the mean score. Same here (`EMBEDDINGS`, in their dtype).
2. Layers 2, 6 and 15 (of 32) each run on the whole current sequence and the sequence is pruned after them,
   so here the stages are before layers 3, 7 and 16 and rank by layer 2's, 6's and 15's attention
   (`PREVIOUS_LAYER_ATTENTION_MATRIX`). Other depths scale 2, 6, 15 by depth / 32 (rounded, as pdrop does);
   DART_config['sparsevlm_layers'] (`SparseVLMSettings`) names other ranking layers, one per schedule entry.
3. The score of an image token: that layer's attention weights (causal softmax over the whole row), averaged
   over all heads, then over the rater rows. The top min(k_stage, v - 1) of the v image tokens left are kept,
   k_stage from the official schedules for a target of 192 / 128 / 96 / 64 tokens: (300, 200, 110),
   (303, 110, 36), (238, 48, 26), (66, 30, 17).
4. Budget: the target is the official one nearest to the count DART keeps with the same settings (a tie goes
   to the larger); the target names SparseVLM's token count averaged over the layers, not the last stage's.

Not done, because the engine only keeps subsets of the sequence's tokens (it cannot insert new ones):
- token recycling: after each stage the official code takes the top 30% (int(0.3 * d) + 1) of the d deleted
  image tokens by the same score, clusters them into int(that / 10) + 1 tokens by density-peak clustering
  (`cluster_and_merge`, with a random 1e-6 density tie-break) and inserts the merged tokens right after the
  kept image tokens, where later stages rank them with the image's tokens. Here deleted tokens are dropped, so
  each stage has those few tokens fewer (e.g. 300 + 9 after the first stage officially, 300 here).
- positions: version 1_0 renumbers the kept tokens' positions contiguously (and a decoded token takes, per
  layer, that layer's cache length as its position); here kept tokens keep their original positions, as the
  official version 2_0 ("Keep Position ID") does.
The official code runs one sample (batch 1, no padding); here each sample of a batch selects alone.
"""

from __future__ import annotations

import torch

import dataclasses
from typing import Any, Mapping

from llava.model.pruning.config import MethodSettings, PruningConfigError, PruningSettings, dart_kept_count
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, register_method

REFERENCE_LAYERS = (2, 6, 15)  # of 32: the layers whose attention ranks; the sequence is pruned after each
SCHEDULES = {  # target: image tokens kept after each of those layers (score.py, version 1_0)
    192: (300, 200, 110),
    128: (303, 110, 36),
    96: (238, 48, 26),
    64: (66, 30, 17),
}


@dataclasses.dataclass(frozen=True)
class SparseVLMSettings(MethodSettings):
    """The layers whose attention ranks (the sequence is pruned after each), three, ascending, in 0..N-2.
    None: 2, 6, 15 of 32 scaled to the depth, filled in once the depth is known."""

    sparsevlm_layers: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> SparseVLMSettings:
        layers = raw.get("sparsevlm_layers")
        if layers is not None:
            items = layers.split(",") if isinstance(layers, str) else layers
            try:
                layers = tuple(int(item) for item in items)
            except (TypeError, ValueError):
                raise PruningConfigError(f"DART_config['sparsevlm_layers'] must be 3 integers, got {layers!r}") from None
            top = num_hidden_layers - 2 if num_hidden_layers is not None else None
            if (len(layers) != len(REFERENCE_LAYERS) or list(layers) != sorted(set(layers)) or layers[0] < 0
                    or (top is not None and layers[-1] > top)):
                raise PruningConfigError(f"DART_config['sparsevlm_layers']={list(layers)} must be 3 ascending "
                                         f"distinct layers in 0..{top if top is not None else 'N-2'}")
            return cls(layers)
        if num_hidden_layers is None:
            return cls()
        scaled = tuple(min(max(0, round(layer * num_hidden_layers / 32)), num_hidden_layers - 2)
                       for layer in REFERENCE_LAYERS)
        if len(set(scaled)) != len(scaled):
            raise PruningConfigError(f"SparseVLM's layers 2, 6, 15 of 32 collide in a {num_hidden_layers}-layer "
                                     f"model ({list(scaled)}): give DART_config['sparsevlm_layers']")
        return cls(scaled)


def ranking_layers(cfg: PruningSettings) -> tuple[int, ...]:
    own = cfg.method_settings
    if not isinstance(own, SparseVLMSettings) or own.sparsevlm_layers is None:
        raise ValueError("sparsevlm's layers are filled in from the model's depth: parse the settings with "
                         "parse_pruning_settings(raw, num_hidden_layers)")
    return own.sparsevlm_layers


def schedule_for(target: int) -> tuple[int, ...]:
    """The official schedule whose target is nearest to `target`, a tie going to the larger."""
    return SCHEDULES[min(SCHEDULES, key=lambda t: (abs(t - target), -t))]


def text_raters(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """Offsets (into the text tokens) of the raters: the text tokens whose score, the softmax over the text of
    each image token's dot products averaged over the image tokens, exceeds the mean score."""
    scores = (image_embeddings @ text_embeddings.T).softmax(dim=1).mean(dim=0)
    return (scores > scores.mean()).nonzero().flatten()


def image_scores(attention_matrix: torch.Tensor, span: tuple[int, int], rater_positions: torch.Tensor) -> torch.Tensor:
    """The image tokens' attention from the rater rows (already averaged over heads), averaged over the raters."""
    start, length = span
    return attention_matrix[rater_positions][:, start : start + length].mean(dim=0)


def kept_count(stage: int, original_length: int, remaining: int, cfg: PruningSettings, llava_next: bool) -> int:
    """min(k_stage, v - 1) with v the image tokens left, as the official top-k."""
    schedule = schedule_for(dart_kept_count(original_length, cfg, llava_next=llava_next))
    return max(0, min(schedule[stage], remaining - 1))


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    start, length = inputs.span
    text = inputs.text_positions.to(inputs.embeddings.device)
    if text.numel() == 0:  # nothing rates the image (the official code always has the question after it)
        return torch.arange(start, start + length, device=text.device)
    raters = text[text_raters(inputs.image_embeddings, inputs.embeddings[text])]
    count = kept_count(inputs.stage, inputs.original_length or length, length, cfg, inputs.llava_next)
    scores = image_scores(inputs.attention_matrix, inputs.span, raters.to(inputs.attention_matrix.device))
    return (scores.topk(count).indices + start).sort().values.to(text.device)


METHOD = register_method(PruningMethod(
    name="sparsevlm",
    select=select,
    inputs=frozenset({PruningInput.EMBEDDINGS, PruningInput.PREVIOUS_LAYER_ATTENTION_MATRIX}),
    summary="three stages keeping the image tokens the text raters attend to most, without token recycling "
            "(arXiv 2410.04417)",
    layers=lambda cfg: tuple(layer + 1 for layer in ranking_layers(cfg)),
    settings_class=SparseVLMSettings,
    check_splice=check_release_hints,
))
