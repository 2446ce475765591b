"""The user-facing `DART_config` dict, parsed once into typed, validated settings.

Users' scripts set `model.config.DART_config = {...}` with the historical keys of the DART release, so
those names stay exactly as they are (including the `max_num_trunction` spelling). The dict is one flat
namespace; parsed, it splits in two:

- `PruningSettings`: what every method reads (K, the budgets, the pivots, the span hints, method, seed);
- `PruningSettings.method_settings`: the chosen method's own settings, an instance of the `MethodSettings`
  subclass the method declares (`PruningMethod.settings_class`, e.g. PyramidDrop's stages), which parses
  and checks its own keys. A method without one gets None.

`PruningSettings.to_dict()` writes the flat dict back, key for key the one the single dataclass of before
wrote, since the answer files are resumed by a fingerprint of it. `DARTConfig` and `parse_dart_config` are
the historical names of `PruningSettings` and `parse_pruning_settings`, kept for the code that uses them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from llava.pruning_settings import DEFAULTS

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
# The optional keys every method shares. A method's own keys are its settings class's fields
# (`method_settings_keys()`), allowed too.
OPTIONAL_KEYS = ("method", "seed") + SWITCH_KEYS


class PruningConfigError(ValueError):
    """A DART_config that cannot be used; the message names the offending key."""


# How a method that prunes in stages places the kept tokens afterwards (PyramidDrop, SparseVLM): new consecutive
# positions after each stage, as their releases do, or the original ones.
POSITION_MODES = ("renumbered", "original")


def position_mode(raw: Mapping[str, Any], key: str) -> str | None:
    """DART_config[key], one of POSITION_MODES or None (the method's default)."""
    mode = raw.get(key)
    if mode is not None and mode not in POSITION_MODES:
        raise PruningConfigError(f"DART_config[{key!r}]={mode!r} must be one of {list(POSITION_MODES)}")
    return mode


@dataclasses.dataclass(frozen=True)
class MethodSettings:
    """Base of a method's own settings: a frozen dataclass whose fields are its DART_config keys.

    A subclass gives each field a default (None: unset, left out of the dict) and implements `parse`. The
    keys of all methods share the DART_config namespace with the shared keys, so `register_method` refuses a
    key that is already taken.
    """

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def parse(cls, raw: Mapping[str, Any], num_hidden_layers: int | None) -> MethodSettings:
        """The settings from the method's keys present in `raw` (the others take their defaults), checked;
        defaults that depend on the model's depth are filled in when `num_hidden_layers` is given.
        Raises PruningConfigError naming the DART_config key."""
        raise NotImplementedError(f"{cls.__name__} must implement parse")

    def to_dict(self) -> dict[str, Any]:
        """The method's DART_config entries in field order: the set ones only, tuples as lists."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                values[field.name] = list(value) if isinstance(value, tuple) else value
        return values


@dataclasses.dataclass(frozen=True)
class PruningSettings:
    """Validated pruning settings: the ones every method shares, and the method's own.

    K: prune after decoder layer K-1, so layers K..N-1 run on the shorter sequence (1 <= K < N).
    image_token_start_index / image_token_length: optional explicit image span; the span is always taken
        from where the image features were spliced in, these are only checked against it.
    max_num_trunction: total budget M of selected (non-pivot) image tokens; None means
        M = m * (1 - reduction_ratio) for m image tokens.
    retain_token_num_for_llava_next: the budget for LLaVA-1.6 (anyres) sequences.
    pivot_image_token / pivot_text_token: number of pivots taken among image / text tokens.
    method: name of a registered pruning method (`llava.model.pruning.method_names()`).
    seed: seed for stochastic baselines (ignored by DART).
    method_settings: the method's own settings (its `settings_class`, e.g. `settings.method_settings.pdrop_layers`),
        None for a method without any.

    The defaults are the settings table's (`llava.pruning_settings.SETTINGS`).
    """

    K: int = DEFAULTS["K"]
    image_token_start_index: int | None = DEFAULTS["image_token_start_index"]
    image_token_length: int | None = DEFAULTS["image_token_length"]
    max_num_trunction: int | None = DEFAULTS["max_num_trunction"]
    reduction_ratio: float = DEFAULTS["reduction_ratio"]
    retain_token_num_for_llava_next: int | None = DEFAULTS["retain_token_num_for_llava_next"]
    pivot_image_token: int = DEFAULTS["pivot_image_token"]
    pivot_text_token: int = DEFAULTS["pivot_text_token"]
    method: str = DEFAULTS["method"]
    seed: int = 0
    method_settings: MethodSettings | None = None

    def __post_init__(self):
        if self.method_settings is not None and not isinstance(self.method_settings, MethodSettings):
            raise TypeError(f"method_settings must be a MethodSettings, got {type(self.method_settings).__name__}")

    @property
    def num_pivots(self) -> int:
        return self.pivot_image_token + self.pivot_text_token

    def to_dict(self) -> dict[str, Any]:
        """The DART_config dict: the shared keys in field order, then the method's own set ones (so every
        method's dict, and the settings id the answer files are resumed by, is the one it always was)."""
        values = {key: getattr(self, key) for key in SHARED_KEYS}
        if self.method_settings is not None:
            values.update(self.method_settings.to_dict())
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


# The DART_config keys of the shared settings, in the dict's order.
SHARED_KEYS = tuple(field.name for field in dataclasses.fields(PruningSettings) if field.name != "method_settings")


def dart_kept_count(num_image_tokens: int, cfg: PruningSettings, llava_next: bool = False) -> int:
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


def pruning_switched_off(raw: Mapping[str, Any] | PruningSettings | None) -> bool:
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


def method_settings_keys() -> dict[str, str]:
    """{DART_config key: the registered method whose settings class owns it}."""
    from llava.model.pruning import get_method, method_names  # late import: the methods register on package import

    owners = {}
    for name in method_names():
        settings_class = get_method(name).settings_class
        for key in settings_class.keys() if settings_class is not None else ():
            owners[key] = name
    return owners


def parse_pruning_settings(raw: Mapping[str, Any] | PruningSettings, num_hidden_layers: int | None = None,
                           unused_keys: tuple[str, ...] = ()) -> PruningSettings:
    """Validate a user's DART_config dict and return the typed settings.

    unused_keys: required keys the model family never reads (Qwen: `retain_token_num_for_llava_next`, which the
        DART release's Qwen dicts do not carry): they may be missing and take their defaults.
    The chosen method's own keys are parsed by its settings class. The keys of another registered method are
    accepted and ignored (left out of the settings and of `to_dict()`): settings are layered (a worker's
    flags, then a request's overrides), and switching the method must not require clearing the settings of
    the one before. A key no method owns is an error.
    Raises PruningConfigError naming the key for missing keys, unknown keys, wrong types or values
    out of range (K outside 1..num_hidden_layers-1, negative counts, ratio outside [0, 1)).
    """
    if isinstance(raw, PruningSettings):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise PruningConfigError(f"DART_config must be a dict or None, got {type(raw).__name__}")
    defaults = PruningSettings().to_dict()
    raw = {**{key: defaults[key] for key in unused_keys if key not in raw}, **raw}
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise PruningConfigError(f"DART_config is missing key(s) {missing}; required keys: {list(REQUIRED_KEYS)}")
    owners = method_settings_keys()
    allowed = REQUIRED_KEYS + OPTIONAL_KEYS + tuple(owners)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise PruningConfigError(f"DART_config has unknown key(s) {unknown}; allowed keys: {list(allowed)}")

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

    method = raw.get("method", DEFAULTS["method"])
    from llava.model.pruning import get_method, method_names  # late import: the methods register on package import

    if method not in method_names():
        raise PruningConfigError(f"DART_config['method']={method!r} is unknown; available: {method_names()}")
    pruning_switched_off(raw)  # checks the switch's type
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PruningConfigError(f"DART_config['seed'] must be an integer, got {seed!r}")

    settings_class = get_method(method).settings_class
    own = None
    if settings_class is not None:
        own = settings_class.parse({key: raw[key] for key in settings_class.keys() if key in raw}, num_hidden_layers)
    return PruningSettings(
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
        method_settings=own,
    )


def make_dart_config(**overrides: Any) -> dict[str, Any]:
    """A complete DART_config dict with the table's defaults (the paper's: K=2, 4+4 pivots, 128 kept),
    overridden by kwargs (any DART_config key, a method's own included)."""
    cfg = PruningSettings().to_dict()
    allowed = set(cfg) | set(OPTIONAL_KEYS) | set(method_settings_keys())
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise PruningConfigError(f"unknown DART setting(s) {unknown}; allowed: {sorted(allowed)}")
    cfg.update(overrides)
    return cfg


# The historical names, kept for the code written against them.
DARTConfig = PruningSettings
parse_dart_config = parse_pruning_settings
