"""PyramidDrop (Xing et al., arXiv 2410.17247), as a multi-stage selection function.

The decoder is split into stages; before each stage's first layer the image tokens are ranked by the
attention the last prompt token pays them, computed with that layer's own query and key projections on
its input (as PyramidDrop's reference code does), and the top fraction of the image's original token count
is kept. Every stage ranks only what the stage before kept. The reference's defaults for LLaVA-1.5-7B (32
layers) are layers 8, 16, 24 keeping 0.5, 0.25, 0.125.

The stages are PyramidDrop's own settings (`PDropSettings`, DART_config keys `pdrop_layers` / `pdrop_ratios`,
and `pdrop_positions`): no other method reads them, so they are parsed and checked here rather than with the
shared settings.

What the released code does (github.com/Cooperx521/PyramidDrop, `llava/model/modeling_llama_pdrop.py`:
`LlamaModel.pdrop_forward` and `LlamaModel.pdrop_rank_drop`; `llava/model/llava_arch.py`:
`prepare_inputs_labels_for_multimodal_pdrop`; `llava/model/language_model/llava_llama_pdrop.py`), and here:

- Where: after decoder layer `l - 1` for each `l` of `layer_list`, at prefill only (`hidden_states.shape[1] != 1`);
  the ranking uses layer `l`'s `input_layernorm`, `q_proj` and `k_proj` on that layer's input.
- Query: at inference, the row `prompt_len + image_tokens[stage] - 1` of the sample's unpadded sequence,
  `prompt_len` being its text length: the last prompt token. (Training uses every token before an answer;
  not reproduced.) Keys: the whole current sequence, causally masked, so every token up to the last.
- Score: `q k^T / sqrt(head_dim)` plus the mask, softmax in float32 cast back to the model's dtype, mean over
  heads, the image's columns; mean over the one query row.
- Positions: the query and keys get RoPE at the current `position_ids`, which after a stage are the kept
  tokens renumbered `0..L'-1` (`position_ids[i, :cur_len] = arange(cur_len)`): so stage n ranks on the
  positions stage n-1 gave, and every layer after a stage runs RoPE on them.
- Count: `int(image_tokens[i] * ratio)` of the image's ORIGINAL token count (`self.image_tokens`, the
  features' length; `image_token_ratio_list` with 1.0 prepended), `topk` on the scores, then the indices
  sorted ascending. Text tokens (before and after the image) are all kept. One image per sample (the first
  `<image>`); a sample without one is left as it is. The mask is then rebuilt for the pre-drop
  `(batch, seq_length)`, which under SDPA / flash attention without padding is the plain causal mask.
- Decoding: each step's `position_ids` start as the prompt's (the attention-mask cumsum of generate: the
  unpruned position), and at each stage layer the stage's drop is subtracted,
  `position - (int(N * ratio[stage]) - int(N * ratio[stage + 1]))`: after stage n the position is the
  original one minus the image tokens dropped so far, which continues the renumbered prefill.

Here, the default `pdrop_positions="renumbered"` does the same through the engine (`PruningHook` with a
backend that can embed new position ids): kept tokens get consecutive positions from the row's first real
token's, the next stage ranks with those, and decoding at a stage's layers uses the original position minus
the real tokens dropped up to that stage (`PrunedStage.position_shift`). `"original"` keeps each kept token's
original position (our earlier PDrop, as the engine's other methods do). Differences left: the attention row is
averaged over heads in float32 rather than in the model's dtype (can reorder near-ties in half precision);
`int(m * ratio)` is at least one token here; several images per sample are each ranked in their own span;
left-padded batches are supported (the release supports right padding at batch size 1 in practice). M-RoPE
families (Qwen-VL) have no renumbering rule in the release; there pdrop keeps original positions with a
one-time warning.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from llava.model.pruning.config import MethodSettings, PruningConfigError, PruningSettings, position_mode
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.fastv import top_attended
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, register_method
from llava.pruning_settings import DEFAULTS

REFERENCE_LAYERS = (8, 16, 24)  # of 32
REFERENCE_RATIOS = (0.5, 0.25, 0.125)


@dataclasses.dataclass(frozen=True)
class PDropSettings(MethodSettings):
    """PyramidDrop's stages: before each of `pdrop_layers`, keep that `pdrop_ratios` fraction of the image's
    original token count. None: the reference's layers 8, 16, 24 of 32, scaled to the model's depth, and
    ratios 0.5, 0.25, 0.125; ratios alone go with those layers. Both are filled in once the depth is known.
    pdrop_positions: "renumbered" (None, the default: the release's) gives the kept tokens consecutive positions
    after each stage; "original" keeps their original positions (see the module docstring)."""

    pdrop_layers: tuple[int, ...] | None = DEFAULTS["pdrop_layers"]
    pdrop_ratios: tuple[float, ...] | None = DEFAULTS["pdrop_ratios"]
    pdrop_positions: str | None = DEFAULTS["pdrop_positions"]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> PDropSettings:
        positions = position_mode(raw, "pdrop_positions")
        settings = cls(*_pdrop_stages(raw, num_hidden_layers), pdrop_positions=positions)
        return settings if num_hidden_layers is None else settings.with_default_stages(num_hidden_layers)

    @property
    def renumbers_positions(self) -> bool:
        """Read by the engine: the kept tokens get new consecutive positions after each stage."""
        return self.pdrop_positions != "original"

    def with_default_stages(self, num_hidden_layers: int) -> PDropSettings:
        """The configured stages, else the reference's layers scaled to the model's depth (distinct, within
        1..N-1) with the configured ratios or the reference's."""
        if self.pdrop_layers is not None:
            return self
        scaled = tuple(sorted({min(max(1, round(layer * num_hidden_layers / 32)), num_hidden_layers - 1)
                               for layer in REFERENCE_LAYERS}))
        ratios = self.pdrop_ratios if self.pdrop_ratios is not None else REFERENCE_RATIOS[: len(scaled)]
        if len(ratios) != len(scaled):
            raise PruningConfigError(f"DART_config['pdrop_ratios'] has {len(ratios)} ratios but the default layers "
                                     f"of a {num_hidden_layers}-layer model are {list(scaled)}: give pdrop_layers too")
        return dataclasses.replace(self, pdrop_layers=scaled, pdrop_ratios=ratios)


def _pdrop_stages(raw: Mapping[str, Any], num_hidden_layers: int | None):
    """PyramidDrop's (layers, ratios) as tuples, checked: ascending layers in 1..N-1, one ratio per layer,
    non-increasing, in (0, 1]."""
    layers, ratios = raw.get("pdrop_layers"), raw.get("pdrop_ratios")
    if layers is None and ratios is None:
        return None, None
    if ratios is None:
        raise PruningConfigError("DART_config['pdrop_layers'] needs ['pdrop_ratios'], one per layer")
    ratios = _number_list(ratios, "pdrop_ratios", float)
    if any(not 0 < r <= 1 for r in ratios) or list(ratios) != sorted(ratios, reverse=True):
        raise PruningConfigError(f"DART_config['pdrop_ratios']={list(ratios)} must be in (0, 1] and non-increasing")
    if layers is None:  # the default layers, filled in with the model's depth
        return None, ratios
    layers = _number_list(layers, "pdrop_layers", int)
    if len(layers) != len(ratios) or not layers:
        raise PruningConfigError(f"DART_config['pdrop_layers'] {list(layers)} and ['pdrop_ratios'] {list(ratios)} "
                                 "must have one ratio per layer")
    top = (num_hidden_layers - 1) if num_hidden_layers is not None else None
    if list(layers) != sorted(set(layers)) or layers[0] < 1 or (top is not None and layers[-1] > top):
        raise PruningConfigError(f"DART_config['pdrop_layers']={list(layers)} must be ascending and distinct, in "
                                 f"1..{top if top is not None else 'N-1'}")
    return layers, ratios


def _number_list(value: Any, key: str, kind: type) -> tuple:
    """A list, tuple or comma-separated string of numbers (the flags give strings) as a tuple of `kind`."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise PruningConfigError(f"DART_config[{key!r}] must be a list of numbers, got {value!r}")
    try:
        parsed = tuple(kind(item) for item in items if not isinstance(item, bool))
    except (TypeError, ValueError):
        raise PruningConfigError(f"DART_config[{key!r}] must be a list of numbers, got {value!r}") from None
    if len(parsed) != len(items) or (kind is int and any(float(i) != int(float(i)) for i in items)):
        raise PruningConfigError(f"DART_config[{key!r}] must be a list of {kind.__name__}s, got {value!r}")
    return parsed


def stages(cfg: PruningSettings) -> PDropSettings:
    """The settings' PyramidDrop stages; settings built without a depth (no layers yet) cannot prune."""
    own = cfg.method_settings
    if not isinstance(own, PDropSettings) or own.pdrop_layers is None:
        raise ValueError("pdrop's stages are filled in from the model's depth: parse the settings with "
                         "parse_pruning_settings(raw, num_hidden_layers)")
    return own


def kept_count(original_length: int, ratio: float) -> int:
    """int(m * ratio), the reference's rounding, at least one token."""
    return max(1, int(original_length * ratio))


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    original = inputs.original_length or inputs.span[1]
    ratio = stages(cfg).pdrop_ratios[inputs.stage]
    return top_attended(inputs.attention, inputs.span, kept_count(original, ratio))


METHOD = register_method(PruningMethod(
    name="pdrop",
    select=select,
    inputs=frozenset({PruningInput.PRUNING_LAYER_ATTENTION}),
    summary="several stages, each keeping a fraction of the image by the last prompt token's attention "
            "(arXiv 2410.17247)",
    layers=lambda cfg: stages(cfg).pdrop_layers,
    settings_class=PDropSettings,
    check_splice=check_release_hints,
))
