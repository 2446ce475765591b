"""PyramidDrop (Xing et al., arXiv 2410.17247), as a multi-stage selection function.

The decoder is split into stages; before each stage's first layer the image tokens are ranked by the
attention the last prompt token pays them, computed with that layer's own query and key projections on
its input (as PyramidDrop's reference code does), and the top fraction of the image's original token count
is kept. Every stage ranks only what the stage before kept. The reference's defaults for LLaVA-1.5-7B (32
layers) are layers 8, 16, 24 keeping 0.5, 0.25, 0.125.

The stages are PyramidDrop's own settings (`PDropSettings`, DART_config keys `pdrop_layers` / `pdrop_ratios`):
no other method reads them, so they are parsed and checked here rather than with the shared settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from llava.model.pruning.config import MethodSettings, PruningConfigError, PruningSettings
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
    ratios 0.5, 0.25, 0.125; ratios alone go with those layers. Both are filled in once the depth is known."""

    pdrop_layers: tuple[int, ...] | None = DEFAULTS["pdrop_layers"]
    pdrop_ratios: tuple[float, ...] | None = DEFAULTS["pdrop_ratios"]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> PDropSettings:
        settings = cls(*_pdrop_stages(raw, num_hidden_layers))
        return settings if num_hidden_layers is None else settings.with_default_stages(num_hidden_layers)

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
