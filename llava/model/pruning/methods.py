"""The method protocol: what a pruning method declares, and the registry the engine looks methods up in.

A method works in one of two places:

- inside the language model: a pure function `select(inputs, cfg) -> LongTensor` that, for one image span
  of one sample, returns the ascending positions of the image tokens to keep (or a `Selection`, which adds
  new tokens after them, where the positions are renumbered). It says where it prunes
  (`layers`: before layer K, the default, or before each of several layers, every stage choosing among the
  tokens the one before kept). Text and the tokens of other images are kept by the engine, not the method.
- before it: a pure function `reduce(inputs, cfg) -> ReducedImage` that turns one image's features into
  fewer tokens (by selecting some, pooling or merging them) before they are spliced into the prompt, so the
  language model only ever sees the shorter sequence (VisionZip, DivPrune, pooling).

Either way it declares the inputs it reads (`PruningInput`), so that only those are computed, and it is
registered by name; `DART_config['method']` (or `--pruning_method`) picks it. A method owns what only it
needs: its own settings (`settings_class`, parsed from its DART_config keys) and the checks of the settings'
hints against the prompt the splice made (`check_splice`, e.g. the DART release's span hints).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable
from typing import Any

import torch

from llava.model.pruning.config import OPTIONAL_KEYS, REQUIRED_KEYS, MethodSettings, PruningSettings


class PruningInput(enum.Enum):
    """What a method may ask the engine for, all taken just before the pruning layer K.

    The attention inputs are the softmax row of the sample's last token (the end of the prompt), averaged
    over the heads, (L,): what eager attention would return as that layer's attention weights for that row,
    computed from the layer's queries and keys alone, so that it needs no eager attention and no (L, L) matrix.
    """

    NORMED = "normed"  # layer K-1's output hidden states through the model's final norm, (L, D)
    KEYS = "keys"  # layer K-1's key states after RoPE, heads concatenated, (L, kv_heads * head_dim)
    PREVIOUS_LAYER_ATTENTION = "previous_layer_attention"  # the last token's attention in layer K-1 (FastV)
    PRUNING_LAYER_ATTENTION = "pruning_layer_attention"  # ... with layer K's own projections on its input (PDrop)
    # Every row of layer K-1's attention weights averaged over the heads, (L, L), causal, padding masked: for
    # methods that rank by the attention of several query tokens (SparseVLM's text raters).
    PREVIOUS_LAYER_ATTENTION_MATRIX = "previous_layer_attention_matrix"
    # The language model's input embeddings: of the sequence the stage prunes (L, D), and of the image's tokens
    # before any stage pruned them (original_length, D). The only input a stage before layer 0 can have.
    EMBEDDINGS = "embeddings"
    # Layer K-1's output hidden states, (L, D): the pruning layer's input, from which a method builds the tokens
    # it inserts (SparseVLM's recycled clusters).
    HIDDEN_STATES = "hidden_states"
    # Before the language model: the vision tower's [CLS] attention row at its select layer, summed over the
    # heads, with that layer's keys and the [CLS] feature (VisionZip).
    VISION_CLS_ATTENTION = "vision_cls_attention"


@dataclasses.dataclass(frozen=True)
class SpanInputs:
    """One image span of one sample, as a method sees it, in the sequence the pruning layer gets.

    That sequence is the prefill sequence (padding included) at the first stage, and the tokens the previous
    stage kept at a later one; every position below indexes it, and `select` answers in it too.
    span: (s, m): the image's (remaining) tokens are [s, s+m).
    text_positions: ascending positions of the prompt's text tokens after this image (not padding, not other
        images' tokens): where text pivots are taken. With one image and no padding, `[s+m, L)`.
    normed, keys: the sample's whole sequence, present when the method declared them.
    llava_next: the sequence is a LLaVA-1.6 (anyres) one, which has its own budget rule.
    attention: the last token's attention over the whole sequence, (L,), present when the method declared
        one of the attention inputs.
    stage: 0 at the method's first pruning layer, 1 at its second, ...
    padding: how many padding entries precede the sample's first token (left padding in a batch); a
        position minus `padding` is the one the sample has when run alone.
    original_length: how many tokens the image had before the first stage (a later stage's budget may be
        a fraction of it); 0 means `span`'s length.
    attention_matrix: (L, L) every row of layer K-1's attention, averaged over the heads, when declared.
    embeddings: (L, D) the input embeddings of the sequence; image_embeddings: (original_length, D) the
        image's input embeddings before any stage; both when `EMBEDDINGS` is declared. A token an earlier stage
        inserted has no input embedding: its row in `embeddings` is that of the image's last token.
    hidden_states: (L, D) layer K-1's output for the sequence, when `HIDDEN_STATES` is declared.
    renumbered: the stage renumbers the kept tokens' positions, so `select` may insert new tokens (`Selection`):
        a new token has no original position to keep.
    """

    span: tuple[int, int]
    text_positions: torch.Tensor
    normed: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    llava_next: bool = False
    stage: int = 0
    padding: int = 0
    attention: torch.Tensor | None = None
    original_length: int = 0
    attention_matrix: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    image_embeddings: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    renumbered: bool = False


@dataclasses.dataclass(frozen=True)
class Selection:
    """What `select` may return instead of the kept positions alone: `kept`, ascending positions of the span's
    tokens to keep, and `inserted`, (r, D) new tokens' hidden states (e.g. merged from deleted ones), which the
    engine places right after the span's kept tokens, in this order, for the layers from the stage on (their
    keys and values are cached like any kept token's, and later stages rank them as the span's tokens). Only
    when `SpanInputs.renumbered`: an inserted token takes the next consecutive position."""

    kept: torch.Tensor
    inserted: torch.Tensor | None = None


SelectFn = Callable[[SpanInputs, PruningSettings], "torch.Tensor | Selection"]


@dataclasses.dataclass(frozen=True)
class VisionInputs:
    """One image as a reducer before the language model sees it.

    features: (n, D) its tokens as the language model would get them (projected, crops merged).
    grid: (rows, cols) when `features` is one crop's patch grid, row-major; None otherwise (anyres merges).
    llava_next: the image belongs to a LLaVA-1.6 (anyres) model, which has its own budget rule.
    project: the multimodal projector, for methods that combine tower features before projecting them.
    tower_features: (n, C) the same patches at the vision tower's select layer, before the projector;
        tower_cls: (C,) the [CLS] token there; cls_attention: (n,) the [CLS] query's attention over the
        patches in that layer, summed over the heads; tower_keys: (n + 1, d) that layer's keys averaged over
        the heads, [CLS] first; head_attention: (heads, n) the [CLS] row per head as that layer's eager attention
        returns it (in the tower's dtype). Present when the method declared `VISION_CLS_ATTENTION`.
    instruction: the text of the prompt this image belongs to (`PruningRecord.instructions`), None if not given;
        vision_tower: the model's `CLIPVisionTower` (for methods that need more of its CLIP checkpoint, CDPruner).
    """

    features: torch.Tensor
    grid: tuple[int, int] | None = None
    llava_next: bool = False
    project: Callable[[torch.Tensor], torch.Tensor] | None = None
    tower_features: torch.Tensor | None = None
    tower_cls: torch.Tensor | None = None
    cls_attention: torch.Tensor | None = None
    tower_keys: torch.Tensor | None = None
    head_attention: torch.Tensor | None = None
    instruction: str | None = None
    vision_tower: Any = None


def reduce_images(encoded, method, settings, llava_next: bool, project, instructions=None,
                  vision_tower=None) -> tuple[list[torch.Tensor], list, float]:
    """Each image put through a method that reduces it before the language model.

    encoded: per image (its (n, D) tokens, its (rows, cols) grid or None, its tower's `SelectLayerOutputs` or
    None); project: the multimodal projector; instructions: per image, its prompt's instruction text or None;
    vision_tower: the model's vision tower. Returns the reduced tokens per image, an `ImageReduction` each, and
    the seconds the method took (not the tower).
    """
    from llava.model.pruning.record import ImageReduction

    features, reductions = [], []
    start = time.perf_counter()
    for i, (image_features, grid, tower) in enumerate(encoded):
        inputs = VisionInputs(
            image_features, grid, llava_next, project,
            tower_features=tower.patches if tower is not None else None,
            tower_cls=tower.cls if tower is not None else None,
            cls_attention=tower.cls_attention if tower is not None else None,
            tower_keys=tower.keys if tower is not None else None,
            head_attention=tower.head_attention if tower is not None else None,
            instruction=instructions[i] if instructions is not None else None,
            vision_tower=vision_tower,
        )
        reduced = method.reduce(inputs, settings)
        features.append(reduced.features)
        reductions.append(ImageReduction(image_features.shape[0], reduced.kept_patches))
    return features, reductions, time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class ReducedImage:
    """What a reducer made of one image: its new tokens (n', D), and, when they are a subset of its
    patches, which ones (ascending offsets in the image's tokens); None when tokens were pooled or merged."""

    features: torch.Tensor
    kept_patches: torch.Tensor | None = None


ReduceFn = Callable[[VisionInputs, PruningSettings], ReducedImage]


@dataclasses.dataclass(frozen=True)
class SplicedSample:
    """One sample's prompt as the splice made it, for a method to check its settings' hints against before
    it prunes: `spans` the (start, length) of each image, positions of the sample alone (no padding);
    `tokens` its token count; `model_config` the text model's config (e.g. the release's `text_length`)."""

    spans: list[tuple[int, int]]
    tokens: int
    model_config: Any


SpliceCheck = Callable[[SplicedSample, PruningSettings], tuple[str, ...]]


def at_layer_k(cfg: PruningSettings) -> tuple[int, ...]:
    """Prune once, after decoder layer K-1 (DART, random)."""
    return (cfg.K,)


def settings_renumber(cfg: PruningSettings) -> bool:
    """Whether the method's own settings say so (`renumbers_positions`, as PDrop's and SparseVLM's do)."""
    return bool(getattr(cfg.method_settings, "renumbers_positions", False))


@dataclasses.dataclass(frozen=True)
class PruningMethod:
    """A registered method: `select` (inside the language model) or `reduce` (before it), exactly one.

    layers(cfg): the ascending layers before which `select` prunes (each >= 1 and below the model's depth;
        0, before the first layer, only for a method that reads nothing but `EMBEDDINGS`).
    settings_class: the method's own settings (a `MethodSettings` subclass), whose fields are DART_config keys
        no other method has; parsed into `PruningSettings.method_settings`. None: the shared settings suffice.
    check_splice(sample, cfg): run on each sample before the first stage; returns the disagreements between
        the settings' hints and the spliced prompt, which the engine reports once each (the splice wins).
    renumbers_positions(cfg): after each stage the kept tokens get consecutive positions and decoding positions
        continue them (PyramidDrop and SparseVLM as released), where the backend can; by default, what the
        method's settings say (`settings_renumber`). False: kept tokens keep their original positions.
    one_crop: `reduce` reads one crop's patch grid of the tower (LLaVA-1.5's 'pad' or square images) and refuses
        the merged crops of anyres images (LLaVA-1.6); the sweep and the prefill benchmark check it before running.
    """

    name: str
    select: SelectFn | None = None
    inputs: frozenset[PruningInput] = frozenset()
    summary: str = ""
    layers: Callable[[PruningSettings], tuple[int, ...]] = at_layer_k
    settings_class: type[MethodSettings] | None = None
    check_splice: SpliceCheck | None = None
    reduce: ReduceFn | None = None
    renumbers_positions: Callable[[PruningSettings], bool] = settings_renumber
    one_crop: bool = False

    def __post_init__(self):
        if (self.select is None) == (self.reduce is None):
            raise ValueError(f"pruning method {self.name!r} needs exactly one of `select` and `reduce`")
        if self.settings_class is not None and not (isinstance(self.settings_class, type)
                                                    and issubclass(self.settings_class, MethodSettings)):
            raise ValueError(f"pruning method {self.name!r}: settings_class must be a MethodSettings subclass")

    @property
    def before_llm(self) -> bool:
        """The method reduces the image features before the language model (no stage inside it)."""
        return self.reduce is not None


_METHODS: dict[str, PruningMethod] = {}


def register_method(method: PruningMethod) -> PruningMethod:
    """Add `method` to the registry. Its settings' keys must be new to the DART_config: a key names one
    setting of one method, so that the keys of a method not chosen can be told apart and ignored."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"a pruning method named {method.name!r} is already registered")
    if method.settings_class is not None:
        taken = {key: "the shared settings" for key in REQUIRED_KEYS + OPTIONAL_KEYS}
        for other in _METHODS.values():
            if other is not method and other.settings_class is not None:
                taken.update({key: f"method {other.name!r}" for key in other.settings_class.keys()})
        clashes = {key: taken[key] for key in method.settings_class.keys() if key in taken}
        if clashes:
            raise ValueError(f"pruning method {method.name!r}: DART_config key(s) already taken: {clashes}")
    _METHODS[method.name] = method
    return method


def get_method(name: str) -> PruningMethod:
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; available: {method_names()}") from None


def method_names() -> list[str]:
    return sorted(_METHODS)
