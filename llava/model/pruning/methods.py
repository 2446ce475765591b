"""The method protocol: what a pruning method declares, and the registry the engine looks methods up in.

A method is a pure function `select(inputs, cfg) -> LongTensor` that, for one image span of one sample,
returns the ascending absolute positions of the image tokens to keep. It declares the inputs it reads
(`PruningInput`) so the engine computes only those, and it is registered by name; `DART_config['method']`
(or `--pruning_method`) picks it. Text and the tokens of other images are kept by the engine, not the method.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

import torch

from llava.model.pruning.config import DARTConfig


class PruningInput(enum.Enum):
    """What a method may ask the engine for, all taken just before the pruning layer K."""

    NORMED = "normed"  # layer K-1's output hidden states through the model's final norm, (L, D)
    KEYS = "keys"  # layer K-1's key states after RoPE, heads concatenated, (L, kv_heads * head_dim)


@dataclasses.dataclass(frozen=True)
class SpanInputs:
    """One image span of one sample, as a method sees it.

    span: (s, m): the image tokens are [s, s+m) of the sample's prefill sequence (padding included).
    text_positions: ascending absolute positions of the prompt's text tokens after this image (not padding,
        not other images' tokens): where text pivots are taken. With one image, `[s+m, L)`.
    normed, keys: the sample's whole sequence, present when the method declared them.
    llava_next: the sequence is a LLaVA-1.6 (anyres) one, which has its own budget rule.
    """

    span: tuple[int, int]
    text_positions: torch.Tensor
    normed: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    llava_next: bool = False


SelectFn = Callable[[SpanInputs, DARTConfig], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PruningMethod:
    """A registered method. `config_class` is the dataclass its settings parse into; every method takes
    its pruning layer from `K` (prune after decoder layer K-1)."""

    name: str
    select: SelectFn
    inputs: frozenset[PruningInput]
    config_class: type = DARTConfig
    summary: str = ""


_METHODS: dict[str, PruningMethod] = {}


def register_method(method: PruningMethod) -> PruningMethod:
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"a pruning method named {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def get_method(name: str) -> PruningMethod:
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; available: {method_names()}") from None


def method_names() -> list[str]:
    return sorted(_METHODS)
