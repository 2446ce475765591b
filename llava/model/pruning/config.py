"""The user-facing `DART_config` dict, parsed once into a typed, validated dataclass.

Users' scripts set `model.config.DART_config = {...}` with the historical keys of the DART release, so
those names stay exactly as they are (including the `max_num_trunction` spelling).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

# The keys every DART_config dict must carry. `method` is ours and optional.
REQUIRED_KEYS = (
    "K",
    "image_token_start_index",
    "image_token_length",
    "max_num_trunction",
    "reduction_ratio",
    "retain_token_num_for_llava_next",
    "pivot_image_token",
    "pivot_text_token",
)
# The DART release's Qwen2-VL / Qwen2.5-VL wrappers also write their on/off switch into the dict ("Sparse"; the
# lowercase spelling is accepted too): a false switch means no pruning (`pruning_switched_off`).
SWITCH_KEYS = ("Sparse", "sparse")
OPTIONAL_KEYS = ("method", "seed", "pdrop_layers", "pdrop_ratios") + SWITCH_KEYS


class PruningConfigError(ValueError):
    """A DART_config that cannot be used; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class DARTConfig:
    """Validated pruning settings.

    K: prune after decoder layer K-1, so layers K..N-1 run on the shorter sequence (1 <= K < N).
    image_token_start_index / image_token_length: optional explicit image span; the span is always taken
        from where the image features were spliced in, these are only checked against it.
    max_num_trunction: total budget M of selected (non-pivot) image tokens; None means
        M = m * (1 - reduction_ratio) for m image tokens.
    retain_token_num_for_llava_next: the budget for LLaVA-1.6 (anyres) sequences.
    pivot_image_token / pivot_text_token: number of pivots taken among image / text tokens.
    method: name of a registered pruning method (`llava.model.pruning.method_names()`).
    seed: seed for stochastic baselines (ignored by DART).
    pdrop_layers / pdrop_ratios: PyramidDrop's stages: before each layer, keep that fraction of the image's
        original token count (None: the PyramidDrop release's layers 8, 16, 24 of 32, scaled to the model's
        depth, and ratios 0.5, 0.25, 0.125; ratios alone go with those layers).
    """

    K: int = 2
    image_token_start_index: int | None = None
    image_token_length: int | None = None
    max_num_trunction: int | None = 128
    reduction_ratio: float = 0.778
    retain_token_num_for_llava_next: int | None = None
    pivot_image_token: int = 4
    pivot_text_token: int = 4
    method: str = "dart"
    seed: int = 0
    pdrop_layers: tuple[int, ...] | None = None
    pdrop_ratios: tuple[float, ...] | None = None

    @property
    def num_pivots(self) -> int:
        return self.pivot_image_token + self.pivot_text_token

    def to_dict(self) -> dict[str, Any]:
        """The DART_config dict; PyramidDrop's stage keys only when set, so that every other method's dict
        (and the settings id the answer files are resumed by) is the one it always was."""
        values = dataclasses.asdict(self)
        for key in ("pdrop_layers", "pdrop_ratios"):
            if values[key] is None:
                del values[key]
            else:
                values[key] = list(values[key])
        return values

    def budget_per_pivot(self, num_image_tokens: int, llava_next: bool = False) -> int:
        """T = floor(M / (pivot_image_token + pivot_text_token)) (docs/DART.md, step 3).

        For LLaVA-1.5, M = max_num_trunction if set, else m * (1 - reduction_ratio).
        For LLaVA-1.6 (`llava_next`), M = min(retain_token_num_for_llava_next, m - pivot_image_token).
        """
        m = num_image_tokens
        if llava_next:
            if self.retain_token_num_for_llava_next is None:
                raise PruningConfigError(
                    "DART_config['retain_token_num_for_llava_next'] must be set to prune LLaVA-1.6 (anyres) inputs"
                )
            total = min(self.retain_token_num_for_llava_next, m - self.pivot_image_token)
        elif self.max_num_trunction is not None:
            total = self.max_num_trunction
        else:
            total = m * (1 - self.reduction_ratio)
        if self.num_pivots == 0:
            return 0
        return max(0, math.floor(total / self.num_pivots))


def dart_kept_count(num_image_tokens: int, cfg: DARTConfig, llava_next: bool = False) -> int:
    """How many image tokens DART keeps of an image's `num_image_tokens` when no budget is cut short:
    image pivots + (image + text pivots) * T. The budget every single-stage method is given, so that a
    comparison keeps the same number of tokens for each."""
    pivots = min(cfg.pivot_image_token, num_image_tokens)
    per_pivot = cfg.budget_per_pivot(num_image_tokens, llava_next=llava_next)
    return min(num_image_tokens, pivots + cfg.num_pivots * per_pivot)


def _check_int(cfg: Mapping[str, Any], key: str, *, allow_none: bool, minimum: int = 0) -> None:
    value = cfg[key]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise PruningConfigError(f"DART_config[{key!r}] must be an integer{' or None' if allow_none else ''}, got {value!r}")
    if value < minimum:
        raise PruningConfigError(f"DART_config[{key!r}] must be >= {minimum}, got {value}")


def pruning_switched_off(raw: Mapping[str, Any] | DARTConfig | None) -> bool:
    """True when a DART_config dict carries the release's switch (`Sparse`) set to false."""
    if not isinstance(raw, Mapping):
        return False
    for key in SWITCH_KEYS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise PruningConfigError(f"DART_config[{key!r}] must be true or false, got {raw[key]!r}")
            if not raw[key]:
                return True
    return False


def parse_dart_config(raw: Mapping[str, Any] | DARTConfig, num_hidden_layers: int | None = None,
                      unused_keys: tuple[str, ...] = ()) -> DARTConfig:
    """Validate a user's DART_config dict and return the typed settings.

    unused_keys: required keys the model family never reads (Qwen: `retain_token_num_for_llava_next`, which the
        DART release's Qwen dicts do not carry): they may be missing and take their defaults.
    Raises PruningConfigError naming the key for missing keys, unknown keys, wrong types or values
    out of range (K outside 1..num_hidden_layers-1, negative counts, ratio outside [0, 1)).
    """
    if isinstance(raw, DARTConfig):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise PruningConfigError(f"DART_config must be a dict or None, got {type(raw).__name__}")
    defaults = DARTConfig().to_dict()
    raw = {**{key: defaults[key] for key in unused_keys if key not in raw}, **raw}
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise PruningConfigError(f"DART_config is missing key(s) {missing}; required keys: {list(REQUIRED_KEYS)}")
    unknown = sorted(set(raw) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise PruningConfigError(
            f"DART_config has unknown key(s) {unknown}; allowed keys: {list(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )

    _check_int(raw, "K", allow_none=False, minimum=1)
    if num_hidden_layers is not None and raw["K"] >= num_hidden_layers:
        raise PruningConfigError(
            f"DART_config['K']={raw['K']} must be in 1..{num_hidden_layers - 1}: pruning happens before layer K "
            f"and the model has {num_hidden_layers} decoder layers"
        )
    for key in ("image_token_start_index", "image_token_length", "max_num_trunction", "retain_token_num_for_llava_next"):
        _check_int(raw, key, allow_none=True)
    for key in ("pivot_image_token", "pivot_text_token"):
        _check_int(raw, key, allow_none=False)

    ratio = raw["reduction_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise PruningConfigError(f"DART_config['reduction_ratio'] must be a number in [0, 1), got {ratio!r}")

    method = raw.get("method", "dart")
    from llava.model.pruning import get_method, method_names  # late import: the methods register on package import

    if method not in method_names():
        raise PruningConfigError(f"DART_config['method']={method!r} is unknown; available: {method_names()}")
    pruning_switched_off(raw)  # checks the switch's type
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PruningConfigError(f"DART_config['seed'] must be an integer, got {seed!r}")

    pdrop_layers, pdrop_ratios = _pdrop_stages(raw, num_hidden_layers)
    settings = DARTConfig(
        K=raw["K"],
        image_token_start_index=raw["image_token_start_index"],
        image_token_length=raw["image_token_length"],
        max_num_trunction=raw["max_num_trunction"],
        reduction_ratio=float(ratio),
        retain_token_num_for_llava_next=raw["retain_token_num_for_llava_next"],
        pivot_image_token=raw["pivot_image_token"],
        pivot_text_token=raw["pivot_text_token"],
        method=method,
        seed=seed,
        pdrop_layers=pdrop_layers,
        pdrop_ratios=pdrop_ratios,
    )
    resolve = get_method(method).resolve
    return resolve(settings, num_hidden_layers) if resolve is not None and num_hidden_layers is not None else settings


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
    """A list, tuple or comma-separated string of numbers as a tuple of `kind`."""
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


def make_dart_config(**overrides: Any) -> dict[str, Any]:
    """A complete DART_config dict with the paper's defaults (K=2, 4+4 pivots, 128 kept), overridden by kwargs."""
    cfg = DARTConfig().to_dict()
    unknown = sorted(set(overrides) - set(cfg) - set(OPTIONAL_KEYS))
    if unknown:
        raise PruningConfigError(f"unknown DART setting(s) {unknown}; allowed: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg
