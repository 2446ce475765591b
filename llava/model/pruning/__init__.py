"""Visual-token pruning methods, registered by name.

A method is a pure function
    select_image_tokens(normed, keys, image_span, cfg, llava_next=False) -> LongTensor
returning the ascending absolute indices of the image tokens to keep (see `dart.select_image_tokens`).
`keep_indices` adds the text around the image; the decoder loop calls it from a single hook
(`LlavaLlamaModel`).
"""

from __future__ import annotations

import torch

from llava.model.pruning import dart, random_baseline
from llava.model.pruning.config import DARTConfig, PruningConfigError, make_dart_config, parse_dart_config

PRUNING_METHODS = {
    "dart": dart.select_image_tokens,
    "random": random_baseline.select_image_tokens,
}


def keep_indices(
    normed: torch.Tensor,
    keys: torch.Tensor,
    image_span: tuple[int, int],
    cfg: DARTConfig,
    llava_next: bool = False,
) -> torch.Tensor:
    """`[0, s) + kept image tokens + [s+m, L)` for one sample, ascending, shape (L',) (DESIGN §5 step 5).

    normed: (L, D), keys: (L, H*d); an empty span (no image) keeps everything.
    """
    start, length = image_span
    seq_len = normed.shape[0]
    device = normed.device
    if length == 0:
        return torch.arange(seq_len, device=device)
    kept_image = PRUNING_METHODS[cfg.method](normed, keys, image_span, cfg, llava_next=llava_next)
    return torch.cat(
        [torch.arange(start, device=device), kept_image, torch.arange(start + length, seq_len, device=device)]
    )


__all__ = [
    "PRUNING_METHODS",
    "DARTConfig",
    "PruningConfigError",
    "keep_indices",
    "make_dart_config",
    "parse_dart_config",
]
