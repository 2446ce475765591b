"""Visual-token pruning, independent of the model family.

- `config`: the `DART_config` dict (historical keys) parsed into validated `PruningSettings` (the settings every
  method shares, carrying the chosen method's own `MethodSettings`). `DARTConfig` and `parse_dart_config` are
  the historical names of `PruningSettings` and `parse_pruning_settings`.
- `methods`: the method protocol and registry. Inside the language model: `dart`, `fastv`, `pdrop` and
  `random_baseline`; before it: `visionzip`, `divprune` and `pooling`. Each registers itself.
- `record`: `PruningRecord`, the per-call state (settings in, kept positions out).
- `engine`: `PruningHook`, called before every decoder layer; `backends`: what a LLaMA-style model supplies.

The user-facing settings (CLI flags, the server's request fields) are declared in `llava.pruning_settings`.
"""

from __future__ import annotations

import torch

from llava.model.pruning import (  # noqa: F401  (they register their methods)
    cdpruner, dart, dart_k0, divprune, fastv, holov, pdrop, pooling, random_baseline, sparsevlm, visionzip, vispruner,
)
from llava.model.pruning.config import (
    DARTConfig,
    MethodSettings,
    PruningConfigError,
    PruningSettings,
    make_dart_config,
    parse_dart_config,
    parse_pruning_settings,
)
from llava.model.pruning.methods import (
    PruningInput,
    PruningMethod,
    ReducedImage,
    SpanInputs,
    SplicedSample,
    VisionInputs,
    get_method,
    method_names,
    register_method,
)
from llava.model.pruning.record import USE_MODEL_CONFIG, ImageReduction, PrunedStage, PruningRecord


def keep_indices(
    normed: torch.Tensor,
    keys: torch.Tensor,
    image_span: tuple[int, int],
    cfg: PruningSettings,
    llava_next: bool = False,
) -> torch.Tensor:
    """`[0, s) + kept image tokens + [s+m, L)` for one sample with one image, ascending, shape (L',).

    normed: (L, D), keys: (L, H*d); an empty span (no image) keeps everything.
    """
    start, length = image_span
    seq_len = normed.shape[0]
    device = normed.device
    if length == 0:
        return torch.arange(seq_len, device=device)
    text = torch.arange(start + length, seq_len, device=device)
    kept_image = get_method(cfg.method).select(SpanInputs(image_span, text, normed, keys, llava_next), cfg)
    return torch.cat([torch.arange(start, device=device), kept_image, text])


__all__ = [
    "DARTConfig",
    "ImageReduction",
    "MethodSettings",
    "PruningConfigError",
    "PruningInput",
    "PrunedStage",
    "PruningMethod",
    "PruningRecord",
    "PruningSettings",
    "ReducedImage",
    "SpanInputs",
    "SplicedSample",
    "VisionInputs",
    "USE_MODEL_CONFIG",
    "get_method",
    "keep_indices",
    "make_dart_config",
    "method_names",
    "parse_dart_config",
    "parse_pruning_settings",
    "register_method",
]
