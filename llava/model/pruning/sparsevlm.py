"""SparseVLM (Zhang et al., "SparseVLM: Visual Token Sparsification for Efficient Vision-Language Model
Inference", ICML 2025, arXiv 2410.04417), as a multi-stage selection function.

What the official code (github.com/Gumpest/SparseVLMs, `llava/model/language_model/modelling_sparse_llama.py`,
`LlamaDynamicvitModel.forward` and `LlamaDynamicvitSdpaAttention.forward`, `score.py` and `utils.py`, version
"1_0", the paper's) does for LLaVA-1.5, and what is kept:

1. Text raters, once per prompt, from the language model's input embeddings: with V the image's embeddings and
   T those of the text after it, `softmax(V @ T^T, over the text).mean(over the image)` scores each text token;
   the raters are the text tokens scoring above the mean score. Same here (`EMBEDDINGS`, in their dtype).
2. Layers 2, 6 and 15 (of 32) each run on the whole current sequence and the sequence is pruned after them,
   so here the stages are before layers 3, 7 and 16 and rank by layer 2's, 6's and 15's attention
   (`PREVIOUS_LAYER_ATTENTION_MATRIX`). Other depths scale 2, 6, 15 by depth / 32 (rounded, as pdrop does);
   DART_config['sparsevlm_layers'] (`SparseVLMSettings`) names other ranking layers, one per schedule entry.
3. The score of a token of the image's span: that layer's attention weights (causal softmax over the whole
   row), averaged over all heads, then over the rater rows. The top min(k_stage, v - 1) of the v tokens left
   in the span are kept, k_stage from the official schedules for a target of 192 / 128 / 96 / 64 tokens:
   (300, 200, 110), (303, 110, 36), (238, 48, 26), (66, 30, 17).
4. Budget: the target is the official one nearest to the count DART keeps with the same settings (a tie goes
   to the larger); the target names SparseVLM's token count averaged over the layers, not the last stage's.
5. Token recycling (`attn_postprocess_topk`'s deleted tokens, `cluster_and_merge` in utils.py): of the d
   deleted tokens of the span, the top p = int(0.3 d) + 1 by the same score (in `topk` order), taken from the
   ranking layer's output hidden states (the next layer's input, `HIDDEN_STATES`), are clustered into
   int(p / 10) + 1 tokens by density-peak clustering and merged (`cluster_and_merge` below); the merged tokens
   are inserted right after the span's kept tokens (`Selection`), so the next stage ranks, deletes and recycles
   them as the image's tokens (the official `v_token_num` counts them), and so does `num_kept_image_tokens`.
6. Positions: after each stage 1_0 numbers the sequence 0..L'-1 (`position_ids[:, :L']`), and a decoded token
   takes, in each layer, that layer's cache length as its position (`get_usable_length` in the SDPA attention).
   The engine's renumbering gives the same: consecutive positions from the row's first token after each stage,
   and at decoding the original position less the prefill tokens dropped plus those inserted up to the layer's
   stage, which is the layer's cache length in every layer (before the first stage too: nothing dropped).

`sparsevlm_positions="original"` keeps each kept token's original position and recycles nothing, as the official
version 2_0 does ("Keep Position ID", and its merge cancelled), but with 1_0's schedules and scores (2_0 also
has other schedules, a RoPE-bias correction of the scores and a head selection, not done here); an inserted
token has no original position. M-RoPE families (Qwen-VL) cannot renumber: there kept tokens keep their
original positions (with a one-time warning) and so nothing is recycled.

Differences left: the attention weights that rank are the eager ones (softmax in float32, cast back, then the
head mean in float32), the official SDPA path's are a softmax in the model's dtype, which can reorder near-ties
in half precision; the clustering's random 1e-6 density noise is replaced by a fixed tie rule (see
`cluster_and_merge`); the official code runs one sample (batch 1, no padding), here each sample of a batch
selects alone, each image span of a sample is ranked and recycled in its own span, and a left-padded row's
positions are numbered from its first real token.
"""

from __future__ import annotations

import torch

import dataclasses
from typing import Any, Mapping

from llava.model.pruning.config import (MethodSettings, PruningConfigError, PruningSettings, dart_kept_count,
                                        position_mode)
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.methods import PruningInput, PruningMethod, Selection, SpanInputs, register_method
from llava.pruning_settings import DEFAULTS

RECYCLED_FRACTION = 0.3  # of the deleted tokens, the top int(0.3 d) + 1 are recycled
CLUSTER_SIZE = 10  # ... into int(p / 10) + 1 merged tokens
REFERENCE_LAYERS = (2, 6, 15)  # of 32: the layers whose attention ranks; the sequence is pruned after each
SCHEDULES = {  # target: image tokens kept after each of those layers (score.py, version 1_0)
    192: (300, 200, 110),
    128: (303, 110, 36),
    96: (238, 48, 26),
    64: (66, 30, 17),
}


@dataclasses.dataclass(frozen=True)
class SparseVLMSettings(MethodSettings):
    """sparsevlm_layers: the layers whose attention ranks (the sequence is pruned after each), three, ascending,
    in 0..N-2; None: 2, 6, 15 of 32 scaled to the depth, filled in once the depth is known.
    sparsevlm_positions: "renumbered" (None, the default: version 1_0's) renumbers the kept tokens after each
    stage and recycles deleted tokens; "original" keeps original positions and recycles nothing (2_0's way)."""

    sparsevlm_layers: tuple[int, ...] | None = DEFAULTS["sparsevlm_layers"]
    sparsevlm_positions: str | None = DEFAULTS["sparsevlm_positions"]

    @property
    def renumbers_positions(self) -> bool:
        """Read by the engine: the kept tokens get new consecutive positions after each stage."""
        return self.sparsevlm_positions != "original"

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> SparseVLMSettings:
        positions = position_mode(raw, "sparsevlm_positions")
        return dataclasses.replace(cls._parse_layers(raw, num_hidden_layers), sparsevlm_positions=positions)

    @classmethod
    def _parse_layers(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> SparseVLMSettings:
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


def cluster_and_merge(x: torch.Tensor, cluster_num: int, rows_per_chunk: int = 64) -> torch.Tensor:
    """utils.py's `cluster_and_merge` for one sample: the (cluster_num, C) tokens merged from x (N, C).

    Distances ||x_i - x_j|| / sqrt(C); density_i = exp(-mean of the squared distances to its cluster_num nearest
    tokens, itself included); each token's distance to the nearest denser token (the largest distance of all
    for the densest); score = that distance x density; the cluster_num top-scoring tokens are the centres, in
    descending score; every token joins its nearest centre (the first on a tie), each centre its own cluster;
    a cluster's token is the sum of its members over (members + 1e-6), in x's dtype, as the official code.

    The official code adds uniform noise below 1e-6 to the densities "to ensure no tokens have the same
    density". Here there is no noise and a tie goes to the lower index: of two tokens of equal density the one
    earlier in x counts as denser, and of equal scores the earlier one is the centre first. That is the official
    result for a noise draw decreasing along x, keeps runs reproducible, and leaves the global random state alone
    (drawing from it would change what sampling generates afterwards). Unlike noise it never reorders densities
    that differ by less than 1e-6 (which in half precision, the models' dtype, the noise mostly rounds away).
    Distances are computed in chunks of rows, each as the official broadcast difference's norm, to bound memory.
    """
    count, channels = x.shape
    dist = torch.cat([(x[first : first + rows_per_chunk, None] - x[None]).norm(dim=-1, p=2)
                      for first in range(0, count, rows_per_chunk)]) / (channels ** 0.5)
    nearest = torch.topk(dist, k=cluster_num, dim=-1, largest=False).values
    density = (-(nearest ** 2).mean(dim=-1)).exp()
    index = torch.arange(count, device=x.device)
    # denser[i, j]: token j is denser than token i (the official `density[:, None, :] > density[:, :, None]`).
    tie = (density[None, :] == density[:, None]) & (index[None] < index[:, None])
    denser = (density[None, :] > density[:, None]) | tie
    mask = denser.to(x.dtype)
    parent_dist = (dist * mask + dist.max() * (1 - mask)).min(dim=-1).values
    score = parent_dist * density
    centres = torch.sort(score, descending=True, stable=True).indices[:cluster_num]
    assignment = dist[centres].argmin(dim=0)
    assignment[centres] = torch.arange(cluster_num, device=x.device)
    weight = x.new_ones(count, 1)
    total = weight.new_zeros(cluster_num, 1).index_add_(0, assignment, weight) + 1e-6
    return x.new_zeros(cluster_num, channels).index_add_(0, assignment, (x * (weight / total[assignment])).to(x.dtype))


def recycled(scores: torch.Tensor, kept: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor | None:
    """The merged tokens from the span's deleted ones: the top int(0.3 d) + 1 of the d deleted (ascending
    offsets, as `torch.where(pred_score_vis == 0)`) by score, in `topk` order, clustered into int(p / 10) + 1.
    scores: (v,) the span's scores; kept: offsets kept; hidden_states: (v, D) the span's layer output."""
    deleted = torch.ones_like(scores, dtype=torch.bool)
    deleted[kept] = False
    deleted = deleted.nonzero().flatten()
    if deleted.numel() == 0:
        return None
    chosen = deleted[scores[deleted].topk(int(deleted.numel() * RECYCLED_FRACTION) + 1).indices]
    return cluster_and_merge(hidden_states[chosen.to(hidden_states.device)], int(chosen.numel() / CLUSTER_SIZE) + 1)


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor | Selection:
    start, length = inputs.span
    text = inputs.text_positions.to(inputs.embeddings.device)
    if text.numel() == 0:  # nothing rates the image (the official code always has the question after it)
        return torch.arange(start, start + length, device=text.device)
    raters = text[text_raters(inputs.image_embeddings, inputs.embeddings[text])]
    count = kept_count(inputs.stage, inputs.original_length or length, length, cfg, inputs.llava_next)
    scores = image_scores(inputs.attention_matrix, inputs.span, raters.to(inputs.attention_matrix.device))
    top = scores.topk(count).indices
    kept = (top + start).sort().values.to(text.device)
    if not inputs.renumbered or inputs.hidden_states is None:  # original positions: no place for a new token
        return kept
    return Selection(kept, recycled(scores, top, inputs.hidden_states[start : start + length]))


METHOD = register_method(PruningMethod(
    name="sparsevlm",
    select=select,
    inputs=frozenset({PruningInput.EMBEDDINGS, PruningInput.PREVIOUS_LAYER_ATTENTION_MATRIX,
                      PruningInput.HIDDEN_STATES}),
    summary="three stages keeping the image tokens the text raters attend to most, recycling deleted ones as "
            "merged tokens, positions renumbered (arXiv 2410.04417)",
    layers=lambda cfg: tuple(layer + 1 for layer in ranking_layers(cfg)),
    settings_class=SparseVLMSettings,
    check_splice=check_release_hints,
))
